"""Block stacking with a simulated Sawyer-style 7-DoF arm in PyBullet.

The arm (our URDF, see :mod:`solar_ros.sim.sawyer_urdf`) holds a 5 cm block in its
gripper and must set it on top of a target block on the table. Three initial
positions of rising difficulty (tasks 1, 2, 3) follow the SOLAR paper's Sawyer
experiments; in task 3 the held block rests on the table beside the target, so a
controller that greedily shrinks the distance pushes into the target's side.

Grasp model: while an episode runs, the held block is welded to the gripper's
``grip_point`` frame by a fixed constraint, and the fingers stand closed 1 mm from its
sides (block-gripper contacts are filtered out, so only the weld holds it). At the end
of the episode the weld is removed, the fingers open, the scene settles for
``settle_time`` seconds with the arm holding still, and success is judged on the
released block. The target block is static, like a brick pressed onto a baseplate.

Actions are joint velocities in rad/s for ``right_j0`` .. ``right_j6``; each is clipped to
the joint's maximum speed and, on every physics substep, to what keeps the joint
within its position limits. The joint motors are torque-limited, so when one joint
reverses hard the reaction can drive a neighbour past its speed limit (up to 3.5 times, at
the published efforts); like a real arm's drive, a speed governor then caps that joint's
speed for the substep, so no joint ever moves faster than its limit. Self-collisions of
the arm are not simulated.
"""

import math
from pathlib import Path
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from solar_ros.sim.quiet import quiet_native_output
from solar_ros.sim.sawyer_config import CAMERAS, SawyerStackConfig, TASKS
from solar_ros.sim.sawyer_urdf import (
    ARM_JOINTS, FINGER_JOINTS, FINGER_TRAVEL, GRIP_LINK, SAWYER_JOINTS,
    write_sawyer_urdf)

with quiet_native_output():  # PyBullet prints its build time on import
    import pybullet
    from pybullet_utils.bullet_client import BulletClient

JOINT_LOWER = np.array([spec.lower for spec in SAWYER_JOINTS])
JOINT_UPPER = np.array([spec.upper for spec in SAWYER_JOINTS])
JOINT_MAX_VELOCITY = np.array([spec.velocity for spec in SAWYER_JOINTS])
JOINT_MAX_EFFORT = np.array([spec.effort for spec in SAWYER_JOINTS])
# The neutral pose of a public Sawyer simulator, rad; the IK rest posture.
# A viewpoint farther back than the robot's camera, for documentation and videos (m).
WIDE_EYE = (1.45, -1.0, 0.85)
WIDE_TARGET = (0.35, 0.0, 0.15)
NEUTRAL_POSE = np.array([0.0, -1.18, 0.0, 2.18, 0.0, 0.57, 3.3161])
# Hand orientation (fixed-axis rpy, rad) of the neutral pose: pointing down, fingers
# along world y; episode yaws are added to its yaw.
_DOWN_RPY = (math.pi, 0.0, math.pi)


class SawyerStackEnv:
    """Stack a held block on a target block by joint velocity control.

    Protocol: ``reset(task, seed) -> obs``; ``step(action) -> (obs, cost, done, info)``.
    Observations are RGB images (image_size, image_size, 3 * views) uint8 from fixed
    cameras, the views stacked on the channel axis (channels 3v..3v+2 are camera v).
    ``info`` holds ``joint_positions`` (7,) rad, ``joint_velocities`` (7,) rad/s,
    ``held_block_pose`` and ``target_block_pose`` (7,) as x, y, z (m) and quaternion
    x, y, z, w, ``distance`` (m), ``step`` and ``action`` (7,) rad/s, the command after
    clipping to the velocity limits (what was applied); at the end also ``success`` (bool),
    ``final_distance`` (m), ``horizontal_offset`` (m), ``vertical_gap`` (m) and
    ``tilt_deg`` of the released block, ``fell_off`` (bool: it came to rest more than
    ``success_vertical`` under the target's top, off the target), and where and how it
    was let go:
    ``release_horizontal`` (m, horizontal offset of the block centres), ``release_height``
    (m, of the held block's bottom above the target's top) and ``release_tilt_deg`` (its
    tilt from upright in the gripper); and ``target_shift`` (m), how far the reset moved the
    target block horizontally from ``target_position``.
    """

    action_dim = 7

    def __init__(self, config: Optional[SawyerStackConfig] = None):
        """Connect a private PyBullet DIRECT client; nothing is built before reset."""
        self.config = config or SawyerStackConfig()
        self.horizon = int(self.config.horizon)
        self.image_size = int(self.config.image_size)
        self.action_high = JOINT_MAX_VELOCITY.copy()
        self.action_low = -JOINT_MAX_VELOCITY
        self._action_cost = np.array(self.config.action_cost)
        self._dt = self.config.control_period / self.config.substeps
        with quiet_native_output():  # the connection prints 'argv[0]='
            self._client = BulletClient(connection_mode=pybullet.DIRECT)
        self._urdf_dir = tempfile.TemporaryDirectory(prefix='solar_ros_sawyer_')
        self._urdf = write_sawyer_urdf(Path(self._urdf_dir.name))
        self.views = int(self.config.views)
        self._cameras = [(self._client.computeViewMatrix(eye, target, (0, 0, 1)),
                          self._client.computeProjectionMatrixFOV(fov, 1.0, 0.05, 5.0))
                         for eye, target, fov in self._camera_settings()[:self.views]]
        self._step = 0
        self._task = 0
        self._done = True

    # ----------------------------------------------------------------- episode
    def reset(self, task: int = 1, seed: int = 0) -> np.ndarray:
        """Start an episode from initial position ``task`` perturbed by ``seed``.

        Returns:
            the first observation, (image_size, image_size, 3 * views) uint8.

        Raises:
            ValueError: ``task`` is not 1, 2 or 3, or ``seed`` is negative.
        """
        if task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, got {task!r}')
        if int(seed) < 0:
            raise ValueError(f'seed must be >= 0, got {seed}')
        rng = np.random.default_rng(int(seed))
        cfg = self.config
        half = cfg.block_size / 2
        target_xy = np.array(cfg.target_position) + cfg.target_move(rng)
        offset = np.array(getattr(cfg, f'task{task}_offset'))
        held_xy_noise = rng.uniform(-cfg.held_position_noise, cfg.held_position_noise, 2)
        self._yaw = float(rng.uniform(-cfg.yaw_noise, cfg.yaw_noise))
        self._target_shift = float(np.linalg.norm(target_xy - np.array(cfg.target_position)))
        self._build_scene(np.array([target_xy[0], target_xy[1], half]))
        start = self.goal_position() + offset
        start[:2] += held_xy_noise
        # A held block never starts inside the table: it rests on it at the lowest.
        start[2] = max(start[2], half + 5e-4)
        self._set_arm(self.inverse_kinematics(start, self._yaw, seed_pose=NEUTRAL_POSE))
        self._grasp()
        self._task, self._step, self._done = task, 0, False
        return self.render()

    def step(self, action: np.ndarray) -> Tuple[np.ndarray, float, bool, Dict[str, Any]]:
        """Apply joint velocities ``action`` (7,) rad/s for one control period.

        Returns:
            observation (H, W, 3 * views) uint8, cost, done, info (class docstring).
            The cost is c_t = :meth:`distance_cost` of the distance to the aim point
            (:meth:`distance_to_aim`, with the block's lean where ``lean_length`` > 0) in
            the state *before* the action plus
            0.5 a^T R a of the clipped action: the cost of the state the action was chosen
            in, as the model and LQR-FLM read c_t = c(s_t, a_t) (costs paired with the
            frames after the actions put a fitted cost's minimum one step short of the
            goal along the approach). Where the last action leads is judged by ``success``
            and ``final_distance``, not by a cost.

        Raises:
            ValueError: ``action`` has the wrong shape or a non-finite entry.
            RuntimeError: no episode is running (call reset first).
        """
        if self._done:
            raise RuntimeError('no episode is running; call reset(task, seed) first')
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.action_dim,):
            raise ValueError(f'action must have shape ({self.action_dim},), got {a.shape}')
        if not np.all(np.isfinite(a)):
            raise ValueError(f'action must be finite, got {a.tolist()}')
        a = np.clip(a, self.action_low, self.action_high)
        cost = self.distance_cost(self.distance_to_aim()) + float(
            0.5 * np.sum(self._action_cost * a * a))
        for _ in range(self.config.substeps):
            self._substep(a)
        self._step += 1
        distance = self.distance_to_goal()
        self._done = self._step >= self.horizon
        info = self._info(distance)
        info['action'] = a
        if self._done:
            info.update(self._release_and_judge())
        return self.render(), cost, self._done, info

    # ----------------------------------------------------------------- state
    @property
    def task(self) -> int:
        """Return the task of the current episode (0 before the first reset)."""
        return self._task

    @property
    def steps_taken(self) -> int:
        """Return the number of control steps taken in the current episode."""
        return self._step

    def joint_positions(self) -> np.ndarray:
        """Return the arm's joint positions, (7,) rad."""
        states = self._client.getJointStates(self._robot, self._arm)
        return np.array([s[0] for s in states])

    def joint_velocities(self) -> np.ndarray:
        """Return the arm's joint velocities, (7,) rad/s."""
        states = self._client.getJointStates(self._robot, self._arm)
        return np.array([s[1] for s in states])

    def held_block_pose(self) -> np.ndarray:
        """Return the held block's pose, (7,): x, y, z (m), quaternion x, y, z, w."""
        position, orientation = self._client.getBasePositionAndOrientation(self._held)
        return np.array(position + orientation)

    def target_block_pose(self) -> np.ndarray:
        """Return the target block's pose, (7,): x, y, z (m), quaternion x, y, z, w."""
        position, orientation = self._client.getBasePositionAndOrientation(self._target)
        return np.array(position + orientation)

    def goal_position(self) -> np.ndarray:
        """Return the goal point for the held block's centre, (3,) m: on top of the target."""
        goal = np.array(self._client.getBasePositionAndOrientation(self._target)[0])
        goal[2] += self.config.block_size
        return goal

    def aim_position(self) -> np.ndarray:
        """Return the point the cost measures the held block's centre from, (3,) m.

        It is ``goal_clearance`` above :meth:`goal_position`, and ``approach_clearance``
        higher still while fewer than ``approach_steps`` steps have been taken.
        """
        height = self.config.goal_clearance
        if self._step < self.config.approach_steps:
            height += self.config.approach_clearance
        return self.goal_position() + np.array([0.0, 0.0, height])

    def aim_offset(self) -> np.ndarray:
        """Return the held block's offset from the aim, (3,) or (5,) m.

        x, y, z: its centre minus the aim point; where ``lean_length`` > 0, then its lean
        (:meth:`lean`) scaled by ``lean_length``, so that the cost's distance term also
        counts a block held over at an angle.
        """
        offset = self.held_block_pose()[:3] - self.aim_position()
        if self.config.lean_length > 0:
            offset = np.concatenate([offset, self.config.lean_length * self.lean()])
        return offset

    def lean(self) -> np.ndarray:
        """Return the horizontal part (x, y) of the held block's axis that starts vertical, (2,).

        Its norm is the sine of the block's tilt from upright, 0 when it is held level.
        """
        return self._rotation(self.held_block_pose())[:2, 2]

    def distance_to_aim(self) -> float:
        """Return the norm of :meth:`aim_offset`, m: the distance to the aim point, and lean."""
        return float(np.linalg.norm(self.aim_offset()))

    def distance_to_goal(self) -> float:
        """Return the distance from the held block's centre to the goal point, m."""
        return float(np.linalg.norm(self.held_block_pose()[:3] - self.goal_position()))

    def distance_cost(self, distance: float) -> float:
        """Return the cost's distance term for a distance (m) to the goal point.

        'linear' is the distance itself (m). 'squared' is (distance / distance_scale)^2:
        a quadratic cost model over a state that holds the position linearly fits it
        exactly, with its minimum at the goal, whereas a quadratic fitted to the linear
        distance (a cone) puts its minimum beyond the goal, along the direction of approach.
        """
        if self.config.distance_cost == 'squared':
            return float((distance / self.config.distance_scale) ** 2)
        return float(distance)

    @property
    def hand_yaw(self) -> float:
        """Return the yaw of the hand about the vertical of this episode, rad."""
        return self._yaw

    def inverse_kinematics(self, block_position: np.ndarray, yaw: float,
                           seed_pose: Optional[np.ndarray] = None) -> np.ndarray:
        """Return joint positions (7,) rad that put the grip point at ``block_position``.

        The gripper points straight down, turned by ``yaw`` (rad) about the vertical from
        its heading in the neutral pose.
        PyBullet's damped-least-squares IK starts from ``seed_pose`` (default: the current
        joints) and is pulled towards it in the null space; the simulation is unchanged.
        """
        current = self._client.getJointStates(self._robot, self._movable)
        saved = [s[0] for s in current]
        seed = self.joint_positions() if seed_pose is None else np.asarray(seed_pose, float)
        for index, value in zip(self._arm, seed):
            self._client.resetJointState(self._robot, index, float(value))
        orientation = self._client.getQuaternionFromEuler(
            (_DOWN_RPY[0], _DOWN_RPY[1], _DOWN_RPY[2] + float(yaw)))
        rest = list(seed) + [saved[-2], saved[-1]]
        ranges = list(JOINT_UPPER - JOINT_LOWER) + [FINGER_TRAVEL] * 2
        lower = list(JOINT_LOWER) + [0.0, 0.0]
        upper = list(JOINT_UPPER) + [FINGER_TRAVEL] * 2
        solution = None
        for _ in range(4):
            solution = self._client.calculateInverseKinematics(
                self._robot, self._grip_link, list(map(float, block_position)), orientation,
                lowerLimits=lower, upperLimits=upper, jointRanges=ranges, restPoses=rest,
                maxNumIterations=100, residualThreshold=1e-6)
            for index, value in zip(self._arm, solution[:7]):
                self._client.resetJointState(self._robot, index, value)
        # Put the joints back where they were (positions and velocities).
        for index, state in zip(self._movable, current):
            self._client.resetJointState(self._robot, index, state[0], state[1])
        return np.clip(np.array(solution[:7]), JOINT_LOWER, JOINT_UPPER)

    # ----------------------------------------------------------------- images
    def render(self) -> np.ndarray:
        """Return the observation, (image_size, image_size, 3 * views) uint8.

        Channels 3v..3v+2 hold camera v's RGB image; all zeros if render is off.
        """
        size = self.image_size
        if not self.config.render:
            return np.zeros((size, size, 3 * self.views), dtype=np.uint8)
        return np.concatenate([self.render_view(view, projection, size, size)
                               for view, projection in self._cameras], axis=-1)

    def render_view(self, view: Tuple[float, ...], projection: Tuple[float, ...],
                    width: int, height: int) -> np.ndarray:
        """Return an RGB image (height, width, 3) uint8 for PyBullet view/projection matrices."""
        _, _, rgba, _, _ = self._client.getCameraImage(
            width, height, view, projection, renderer=pybullet.ER_TINY_RENDERER,
            flags=pybullet.ER_NO_SEGMENTATION_MASK)
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()

    def render_wide(self, width: int = 800, height: int = 500) -> np.ndarray:
        """Return the scene from the wide documentation viewpoint, (height, width, 3) uint8."""
        view = self._client.computeViewMatrix(WIDE_EYE, WIDE_TARGET, (0, 0, 1))
        projection = self._client.computeProjectionMatrixFOV(50.0, width / height, 0.05, 6.0)
        return self.render_view(view, projection, width, height)

    def _camera_settings(self) -> List[Tuple[Tuple[float, ...], Tuple[float, ...], float]]:
        """Return (eye (3,) m, target (3,) m, vertical fov deg) of every camera, in view order."""
        return [tuple(getattr(self.config, f'{camera}_{setting}')
                      for setting in ('eye', 'target', 'fov_deg')) for camera in CAMERAS]

    def camera_intrinsics(self, view: int = 0) -> np.ndarray:
        """Return the pinhole matrix K (3, 3) of camera ``view`` in pixels (ROS pixel centres)."""
        _, _, fov = self._camera_settings()[view]
        focal = (self.image_size / 2) / math.tan(math.radians(fov) / 2)
        centre = (self.image_size - 1) / 2
        return np.array([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]])

    @property
    def client(self) -> BulletClient:
        """Return the PyBullet client of this environment (for rendering extra views)."""
        return self._client

    def close(self):
        """Disconnect PyBullet and delete the generated URDF."""
        if self._client is not None:
            self._client.disconnect()
            self._client = None
            self._urdf_dir.cleanup()

    def __enter__(self) -> 'SawyerStackEnv':
        """Return self for use in a with-statement."""
        return self

    def __exit__(self, *exc_info):
        """Close the environment."""
        self.close()

    # ----------------------------------------------------------------- internals
    def _build_scene(self, target_position: np.ndarray):
        """Rebuild the world from scratch so that each episode is bit-for-bit reproducible."""
        c, cfg = self._client, self.config
        c.resetSimulation()
        c.setPhysicsEngineParameter(deterministicOverlappingPairs=1)
        c.setGravity(0, 0, -9.81)
        c.setTimeStep(self._dt)
        self._static_box((0.7, 0.0, -0.025), (0.5, 0.6, 0.025), (0.82, 0.71, 0.55, 1))
        self._static_box((0.0, 0.0, -0.4), (0.12, 0.12, 0.4), (0.25, 0.25, 0.27, 1))
        self._static_box((0.4, 0.0, -0.81), (1.5, 1.5, 0.01), (0.5, 0.5, 0.5, 1))
        half = cfg.block_size / 2
        self._target = self._static_box(target_position, (half,) * 3, (0.1, 0.6, 0.15, 1))
        self._robot = c.loadURDF(str(self._urdf), useFixedBase=True,
                                 flags=pybullet.URDF_USE_INERTIA_FROM_FILE)
        names = {c.getJointInfo(self._robot, i)[1].decode(): i
                 for i in range(c.getNumJoints(self._robot))}
        self._links = {c.getJointInfo(self._robot, i)[12].decode(): i
                       for i in range(c.getNumJoints(self._robot))}
        self._arm = [names[n] for n in ARM_JOINTS]
        self._fingers = [names[n] for n in FINGER_JOINTS]
        self._movable = self._arm + self._fingers
        self._grip_link = self._links[GRIP_LINK]
        shape = c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=(half,) * 3)
        visual = c.createVisualShape(pybullet.GEOM_BOX, halfExtents=(half,) * 3,
                                     rgbaColor=(0.15, 0.3, 0.9, 1))
        self._held = c.createMultiBody(cfg.block_mass, shape, visual, (0, 0, 1))
        for body in (self._held, self._target):
            c.changeDynamics(body, -1, lateralFriction=cfg.block_friction)

    def _static_box(self, position, half_extents, colour) -> int:
        c = self._client
        shape = c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half_extents)
        visual = c.createVisualShape(pybullet.GEOM_BOX, halfExtents=half_extents,
                                     rgbaColor=colour)
        body = c.createMultiBody(0.0, shape, visual, list(position))
        c.changeDynamics(body, -1, lateralFriction=self.config.block_friction)
        return body

    def _set_arm(self, q: np.ndarray):
        for index, value in zip(self._arm, q):
            self._client.resetJointState(self._robot, index, float(value))
        self._apply_velocities(np.zeros(7), self.joint_positions())

    def _set_fingers(self, opening: float, reset: bool):
        for index in self._fingers:
            if reset:
                self._client.resetJointState(self._robot, index, opening)
            self._client.setJointMotorControl2(self._robot, index, pybullet.POSITION_CONTROL,
                                               targetPosition=opening, force=40.0)

    def _grasp(self):
        """Weld the held block to the grip point and close the fingers beside it."""
        c = self._client
        state = c.getLinkState(self._robot, self._grip_link, computeForwardKinematics=True)
        c.resetBasePositionAndOrientation(self._held, state[4], state[5])
        self._weld = c.createConstraint(self._robot, self._grip_link, self._held, -1,
                                        pybullet.JOINT_FIXED, (0, 0, 0), (0, 0, 0), (0, 0, 0))
        c.changeConstraint(self._weld, maxForce=2000.0)
        for link in ['gripper_palm', 'finger_left', 'finger_right']:
            c.setCollisionFilterPair(self._robot, self._held, self._links[link], -1, 0)
        self._set_fingers(self.config.block_size / 2 + 0.001, reset=True)

    def _apply_velocities(self, velocities: np.ndarray, q: np.ndarray):
        """Command joint velocities, clipped so that no joint passes its limits this substep.

        ``q`` (7,) rad: the joints' positions now.
        """
        v = np.clip(velocities, (JOINT_LOWER - q) / self._dt, (JOINT_UPPER - q) / self._dt)
        self._client.setJointMotorControlArray(
            self._robot, self._arm, pybullet.VELOCITY_CONTROL, targetVelocities=list(v),
            forces=list(JOINT_MAX_EFFORT))

    def _substep(self, velocities: np.ndarray):
        """Advance one physics substep under commanded joint velocities (7,) rad/s.

        After the step, a joint that the others' reaction drove past its speed limit is
        put back where the limit would have taken it, moving at the limit.
        """
        before = self.joint_positions()
        self._apply_velocities(velocities, before)
        self._client.stepSimulation()
        speed = self.joint_velocities()
        for i in np.flatnonzero(np.abs(speed) > JOINT_MAX_VELOCITY):
            capped = float(np.clip(speed[i], -JOINT_MAX_VELOCITY[i], JOINT_MAX_VELOCITY[i]))
            self._client.resetJointState(self._robot, self._arm[i],
                                         before[i] + capped * self._dt, capped)

    def _info(self, distance: float) -> Dict[str, Any]:
        return {'joint_positions': self.joint_positions(),
                'joint_velocities': self.joint_velocities(),
                'held_block_pose': self.held_block_pose(),
                'target_block_pose': self.target_block_pose(),
                'distance': distance, 'step': self._step}

    def _release_and_judge(self) -> Dict[str, Any]:
        """Open the gripper, let the scene settle, and judge the stack."""
        c, cfg = self._client, self.config
        release_horizontal, release_height = self._offset_from_target()
        release_tilt = self._tilt_deg(self.held_block_pose())
        c.removeConstraint(self._weld)
        self._set_fingers(FINGER_TRAVEL, reset=False)
        for _ in range(int(round(cfg.settle_time / self._dt))):
            self._substep(np.zeros(7))
        horizontal, gap = self._offset_from_target()
        held = self.held_block_pose()
        tilt = self._tilt_deg(held)
        success = (horizontal < cfg.success_horizontal and abs(gap) < cfg.success_vertical
                   and tilt < cfg.success_tilt_deg)
        return {'success': bool(success), 'final_distance': self.distance_to_goal(),
                'horizontal_offset': horizontal, 'vertical_gap': gap, 'tilt_deg': tilt,
                'fell_off': bool(gap < -cfg.success_vertical),
                'held_block_pose': held, 'joint_positions': self.joint_positions(),
                'joint_velocities': self.joint_velocities(),
                'release_horizontal': release_horizontal, 'release_height': release_height,
                'release_tilt_deg': release_tilt, 'target_shift': self._target_shift}

    def _rotation(self, pose: np.ndarray) -> np.ndarray:
        """Return the rotation matrix (3, 3) of a pose (7,); its columns are the body's axes."""
        return np.array(self._client.getMatrixFromQuaternion(pose[3:])).reshape(3, 3)

    def _tilt_deg(self, pose: np.ndarray) -> float:
        """Return a block's tilt at ``pose`` (7,), deg: from the vertical to its nearest axis."""
        vertical = np.max(np.abs(self._rotation(pose)[2]))  # a cube may rest on any face
        return math.degrees(math.acos(min(1.0, float(vertical))))

    def _offset_from_target(self) -> Tuple[float, float]:
        """Return the held block's offset from the target block now, (horizontal, gap) m.

        horizontal: distance between the block centres in x, y; gap: height of the held
        block's bottom above the target's top (0 when it rests on it).
        """
        held, target = self.held_block_pose(), self.target_block_pose()
        return (float(np.linalg.norm(held[:2] - target[:2])),
                float(held[2] - target[2] - self.config.block_size))
