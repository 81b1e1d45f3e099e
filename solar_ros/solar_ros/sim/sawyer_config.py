"""Settings of the simulated stacking scene (:class:`SawyerStackConfig`), checked when built.

Lengths in metres, times in seconds, angles as named; every field carries a one-line
description that the sim node turns into its ROS parameter descriptions.
"""

from dataclasses import asdict, dataclass, field, fields
import math
from typing import Any, Dict, Mapping, Tuple

import numpy as np

TASKS = (1, 2, 3)
# The cameras in view order; each has the fields <name>_eye, <name>_target and <name>_fov_deg.
CAMERAS = ('camera', 'side_camera', 'close_camera', 'top_camera')
VIEWS = tuple(range(1, len(CAMERAS) + 1))
DISTANCE_COSTS = ('linear', 'squared')


def _doc(text: str, default: Any) -> Any:
    """Return a dataclass field with ``default`` and a description in its metadata."""
    return field(default=default, metadata={'doc': text})


@dataclass(frozen=True)
class SawyerStackConfig:
    """Settings of :class:`SawyerStackEnv`; every field has a default.

    Build one from a mapping (e.g. ROS parameters loaded from ``config/sim.yaml``) with
    :meth:`from_dict`. Lengths in metres, times in seconds, angles as named.
    """

    horizon: int = _doc('control steps per episode', 30)
    control_period: float = _doc('seconds between two actions', 0.1)
    substeps: int = _doc('physics steps per control period', 20)
    image_size: int = _doc('side of the square RGB image, pixels', 64)
    render: bool = _doc('render an image on every step (off gives empty observations)', True)
    action_cost: Tuple[float, ...] = _doc(
        'diagonal of R in the cost term 0.5 a^T R a, per joint, (rad/s)^-2', (0.01,) * 7)
    distance_cost: str = _doc(
        "distance term of the cost: 'linear' (d, m) or 'squared' ((d / distance_scale)^2)",
        'linear')
    distance_scale: float = _doc('distance at which the squared distance term is 1, m', 0.1)
    goal_clearance: float = _doc(
        'height of the aim point above the goal point (the held block resting on the'
        ' target): the cost measures the distance to the aim point, so that a policy'
        ' releases the block just above the target instead of pressing it into it, m', 0.0)
    approach_clearance: float = _doc(
        'extra height of the aim point during the first approach_steps steps: a via-point'
        ' above the target, so that a block starting beside it is lifted over it rather'
        ' than pushed into its side, m', 0.0)
    approach_steps: int = _doc(
        'steps at the start of an episode whose cost aims approach_clearance higher', 0)
    lean_length: float = _doc(
        "height above the held block's centre of the point whose horizontal offset from the"
        " centre, the block's lean, the cost also measures (aim_offset's entries 4 and 5):"
        ' a block let go leaning over topples off the target; 0: the cost measures the'
        ' position alone, m', 0.0)
    target_position: Tuple[float, ...] = _doc(
        'x, y of the target block centre on the table, m', (0.65, 0.0))
    task1_offset: Tuple[float, ...] = _doc(
        'task 1: held block start minus goal point (above and near), m', (-0.02, -0.06, 0.08))
    task2_offset: Tuple[float, ...] = _doc(
        'task 2: held block start minus goal point (farther away), m', (-0.12, -0.22, 0.16))
    task3_offset: Tuple[float, ...] = _doc(
        'task 3: held block start minus goal point (on the table beside), m',
        (0.0, -0.13, -0.05))
    held_position_noise: float = _doc(
        'half-width of the uniform x, y perturbation of the held block start, m', 0.015)
    target_position_noise: float = _doc(
        'half-width of the uniform x, y perturbation of the target block, m', 0.01)
    yaw_noise: float = _doc('half-width of the uniform perturbation of the hand yaw, rad', 0.05)
    block_size: float = _doc('edge of both cubes, m', 0.05)
    block_mass: float = _doc('mass of the held block, kg', 0.1)
    block_friction: float = _doc('lateral friction coefficient of blocks and table', 1.0)
    settle_time: float = _doc('time the scene settles after the release, s', 0.5)
    success_horizontal: float = _doc(
        'largest horizontal offset between the block centres for success, m', 0.015)
    success_vertical: float = _doc(
        'largest gap (or overlap) between the two blocks for success, m', 0.005)
    success_tilt_deg: float = _doc('largest tilt of the released block for success, deg', 10.0)
    camera_eye: Tuple[float, ...] = _doc('camera position, m', (1.0, -0.35, 0.38))
    camera_target: Tuple[float, ...] = _doc('point the camera looks at, m', (0.6, -0.1, 0.13))
    camera_fov_deg: float = _doc('vertical field of view of the camera, deg', 55.0)
    views: int = _doc(
        'cameras in the observation: 1 (the camera above), 2 (also the side camera below), 3'
        ' (also the close camera below) or 4 (also the top camera below), stacked on the'
        ' channel axis in that order', 1)
    side_camera_eye: Tuple[float, ...] = _doc(
        'side camera position, m (it looks along +y and sees x, which the first camera sees'
        ' as depth)', (0.62, -0.58, 0.3))
    side_camera_target: Tuple[float, ...] = _doc(
        'point the side camera looks at, m', (0.6, -0.05, 0.13))
    side_camera_fov_deg: float = _doc('vertical field of view of the side camera, deg', 45.0)
    close_camera_eye: Tuple[float, ...] = _doc(
        'close camera position, m (views: 3; it looks along -y onto the target, zoomed, where'
        ' the block is let go)', (0.62, 0.55, 0.5))
    close_camera_target: Tuple[float, ...] = _doc(
        'point the close camera looks at, m (just above the target block)', (0.65, 0.0, 0.09))
    close_camera_fov_deg: float = _doc('vertical field of view of the close camera, deg', 25.0)
    top_camera_eye: Tuple[float, ...] = _doc(
        'top camera position, m (views: 4; it looks down steeply onto the target from beyond'
        " it, so both of the target's horizontal axes lie across its image)", (0.85, 0.12, 0.62))
    top_camera_target: Tuple[float, ...] = _doc(
        'point the top camera looks at, m (just above the target block)', (0.65, 0.0, 0.09))
    top_camera_fov_deg: float = _doc('vertical field of view of the top camera, deg', 25.0)

    def __post_init__(self):
        """Check every value; raise ValueError naming the field."""
        for name in ('horizon', 'substeps', 'image_size'):
            if int(getattr(self, name)) < 1:
                raise ValueError(f'{name} must be a positive integer, got {getattr(self, name)}')
        if self.distance_cost not in DISTANCE_COSTS:
            raise ValueError(f'distance_cost must be one of {DISTANCE_COSTS},'
                             f' got {self.distance_cost!r}')
        for name in ('control_period', 'block_size', 'block_mass', 'success_horizontal',
                     'success_vertical', 'success_tilt_deg', 'distance_scale'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        for name in ('held_position_noise', 'target_position_noise', 'yaw_noise',
                     'block_friction', 'settle_time', 'goal_clearance',
                     'approach_clearance', 'lean_length'):
            if not getattr(self, name) >= 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if int(self.approach_steps) < 0:
            raise ValueError(f'approach_steps must be >= 0, got {self.approach_steps}')
        if self.views not in VIEWS:
            raise ValueError(f'views must be one of {VIEWS}, got {self.views!r}')
        lengths = {'action_cost': 7, 'target_position': 2, 'task1_offset': 3,
                   'task2_offset': 3, 'task3_offset': 3,
                   **{f'{camera}_{point}': 3 for camera in CAMERAS
                      for point in ('eye', 'target')}}
        for name, length in lengths.items():
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != length or not all(math.isfinite(v) for v in value):
                raise ValueError(f'{name} must hold {length} finite numbers, got {value}')
            object.__setattr__(self, name, value)
        if min(self.action_cost) < 0:
            raise ValueError(f'action_cost must be >= 0, got {self.action_cost}')
        for name in (f'{camera}_fov_deg' for camera in CAMERAS):
            if not 0 < getattr(self, name) < 180:
                raise ValueError(f'{name} must be in (0, 180), got {getattr(self, name)}')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'SawyerStackConfig':
        """Return a config with the defaults overridden by ``values``.

        Raises:
            ValueError: a key is not a field of the config, or a value is out of range.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown sim config keys {unknown}; known keys: {sorted(known)}')
        return cls(**{k: tuple(v) if isinstance(v, (list, tuple)) else v
                      for k, v in values.items()})

    def target_move(self, rng: np.random.Generator) -> np.ndarray:
        """Draw how far a reset moves the target block from ``target_position``: (2,) x, y, m.

        A reset's first draw from the generator of its seed (``SawyerStackEnv.reset``).
        """
        return rng.uniform(-self.target_position_noise, self.target_position_noise, 2)

    def target_shift(self, seed: int) -> float:
        """Return how far the reset with ``seed`` moves the target block, m (without a reset)."""
        return float(np.linalg.norm(self.target_move(np.random.default_rng(int(seed)))))

    def to_dict(self) -> Dict[str, Any]:
        """Return the fields as a plain dict (tuples for vectors)."""
        return asdict(self)

    @staticmethod
    def descriptions() -> Dict[str, str]:
        """Return a one-line description of every field, by field name."""
        return {f.name: f.metadata['doc'] for f in fields(SawyerStackConfig)}
