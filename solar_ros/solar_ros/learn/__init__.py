"""The SOLAR learning loop and its run directory: episodes, checkpoints, metrics, progress.

Torch and NumPy only, no ROS: the learner node and ``make run`` both drive it.
"""
