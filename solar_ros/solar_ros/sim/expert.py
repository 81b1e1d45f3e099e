"""Scripted controllers for SawyerStackEnv that read the true simulator state.

Both move the held block's centre along Cartesian waypoints at a bounded speed and
turn each step's target into joint velocities with PyBullet's inverse kinematics:
``a = (q_ik - q) / control_period``, clipped to the joint speed limits.

- :class:`ScriptedExpert` lifts the block above the target first, moves over, then
  lowers it onto the goal point; it solves all three tasks.
- :class:`GreedyLineController` heads straight for the goal point; on task 3 this
  drives the held block into the target block's side.
"""

from abc import ABC, abstractmethod
from typing import List

import numpy as np

from solar_ros.sim.sawyer_env import SawyerStackEnv


class _WaypointController(ABC):
    """Follow waypoints for the held block centre, metres, at ``speed`` m/s."""

    def __init__(self, env: SawyerStackEnv, speed: float = 0.3, tolerance: float = 0.004):
        if speed <= 0:
            raise ValueError(f'speed must be > 0 m/s, got {speed}')
        self.env = env
        self.speed = speed
        self.tolerance = tolerance
        self._waypoints: List[np.ndarray] = []

    @abstractmethod
    def _plan(self) -> List[np.ndarray]:
        """Return the waypoints (each (3,) m) from the environment's current state."""

    def reset(self):
        """Plan the waypoints for the episode that the environment has just started."""
        self._waypoints = self._plan()

    def act(self) -> np.ndarray:
        """Return joint velocities (7,) rad/s for the next control step."""
        env = self.env
        block = env.held_block_pose()[:3]
        while len(self._waypoints) > 1 and (
                np.linalg.norm(self._waypoints[0] - block) < self.tolerance):
            self._waypoints.pop(0)
        towards = self._waypoints[0] - block
        reach = self.speed * env.config.control_period
        distance = float(np.linalg.norm(towards))
        target = block + (towards if distance <= reach else towards * (reach / distance))
        q = env.joint_positions()
        q_target = env.inverse_kinematics(target, env.hand_yaw)
        velocity = (q_target - q) / env.config.control_period
        return np.clip(velocity, env.action_low, env.action_high)


class ScriptedExpert(_WaypointController):
    """Lift, move over the target, then lower the block onto it.

    Args:
        env: the environment whose true state the expert reads.
        speed: Cartesian speed of the held block, m/s.
        clearance: height of the held block's bottom over the target's top while it
            moves across, m.
    """

    def __init__(self, env: SawyerStackEnv, speed: float = 0.3, clearance: float = 0.03):
        """Store the environment and the motion settings."""
        super().__init__(env, speed)
        self.clearance = clearance

    def _plan(self) -> List[np.ndarray]:
        goal = self.env.goal_position()
        start = self.env.held_block_pose()[:3]
        safe_z = goal[2] + self.clearance
        lift = np.array([start[0], start[1], max(start[2], safe_z)])
        above = np.array([goal[0], goal[1], safe_z])
        place = goal + np.array([0.0, 0.0, 0.002])
        return [lift, above, place]


class GreedyLineController(_WaypointController):
    """Move the held block in a straight line towards the goal point."""

    def _plan(self) -> List[np.ndarray]:
        return [self.env.goal_position() + np.array([0.0, 0.0, 0.002])]
