"""SOLAR for ROS 2: learn manipulation from images with structured latent models.

Subpackages:
    core   the algorithm (model, Kalman inference, MNIW, LQR, LQR-FLM); torch/numpy only.
    sim    simulators as plain Python environments; no ROS imports.
    nodes  thin ROS 2 adapters around core and sim.
"""
