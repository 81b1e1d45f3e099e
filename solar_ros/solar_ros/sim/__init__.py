"""Simulated environments as plain Python classes (no ROS imports)."""
