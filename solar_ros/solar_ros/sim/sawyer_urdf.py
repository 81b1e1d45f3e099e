"""Generate the URDF of a Sawyer-style 7-DoF arm with a two-finger gripper.

The kinematic table holds the public figures of the Rethink Sawyer (joint origins,
position limits, maximum velocities, efforts and link masses; from
Rethink Robotics' published specifications). Shapes are plain cylinders drawn from each
joint to the next and boxes for the gripper; no meshes. The gripper is ours: a palm
on the flange (``right_hand``), two prismatic fingers that move along the hand's y
axis, and a fixed ``grip_point`` frame at the centre of a held block.
"""

from dataclasses import dataclass
import math
from pathlib import Path
from typing import Tuple

import numpy as np

ARM_JOINTS = tuple(f'right_j{i}' for i in range(7))
FINGER_JOINTS = ('finger_left_joint', 'finger_right_joint')
GRIP_LINK = 'grip_point'
HAND_LINK = 'right_hand'


@dataclass(frozen=True)
class JointSpec:
    """One revolute arm joint about its child's local z axis.

    Attributes:
        name: joint name, ``right_j0`` .. ``right_j6``.
        parent: parent link name.
        child: child link name.
        xyz: child frame origin in the parent frame, metres.
        rpy: child frame orientation in the parent frame (fixed-axis roll, pitch, yaw), rad.
        lower: lower position limit, rad.
        upper: upper position limit, rad.
        velocity: maximum joint speed, rad/s.
        effort: maximum joint torque, N m.
    """

    name: str
    parent: str
    child: str
    xyz: Tuple[float, float, float]
    rpy: Tuple[float, float, float]
    lower: float
    upper: float
    velocity: float
    effort: float


_HALF_PI = math.pi / 2
SAWYER_JOINTS = (
    JointSpec('right_j0', 'base', 'right_l0', (0.0, 0.0, 0.08), (0.0, 0.0, 0.0),
              -3.0503, 3.0503, 1.74, 80.0),
    JointSpec('right_j1', 'right_l0', 'right_l1', (0.081, 0.05, 0.237), (-_HALF_PI, _HALF_PI, 0.0),
              -3.8095, 2.2736, 1.328, 80.0),
    JointSpec('right_j2', 'right_l1', 'right_l2', (0.0, -0.14, 0.1425), (_HALF_PI, 0.0, 0.0),
              -3.0426, 3.0426, 1.957, 40.0),
    JointSpec('right_j3', 'right_l2', 'right_l3', (0.0, -0.042, 0.26), (-_HALF_PI, 0.0, 0.0),
              -3.0439, 3.0439, 1.957, 40.0),
    JointSpec('right_j4', 'right_l3', 'right_l4', (0.0, -0.125, -0.1265), (_HALF_PI, 0.0, 0.0),
              -2.9761, 2.9761, 3.485, 9.0),
    JointSpec('right_j5', 'right_l4', 'right_l5', (0.0, 0.031, 0.275), (-_HALF_PI, 0.0, 0.0),
              -2.9761, 2.9761, 3.485, 9.0),
    JointSpec('right_j6', 'right_l5', 'right_l6', (0.0, -0.11, 0.1053),
              (-_HALF_PI, -0.1745, math.pi), -4.7124, 4.7124, 4.545, 9.0),
)
# Flange offset of the fixed right_hand frame beyond right_l6, metres.
HAND_OFFSET = 0.0245
# Link masses, kg (published figures; about 19.2 kg in all).
LINK_MASSES = {'base': 2.07, 'right_l0': 5.32, 'right_l1': 4.51, 'right_l2': 1.75,
               'right_l3': 2.51, 'right_l4': 1.11, 'right_l5': 1.56, 'right_l6': 0.33}
# Cylinder radii of the simplified link shapes, metres (ours, for looks and contacts).
LINK_RADII = {'base': 0.08, 'right_l0': 0.07, 'right_l1': 0.06, 'right_l2': 0.055,
              'right_l3': 0.05, 'right_l4': 0.045, 'right_l5': 0.04, 'right_l6': 0.035}

# Gripper geometry in the right_hand frame (ours), metres and kg.
PALM_SIZE = (0.04, 0.13, 0.03)
PALM_MASS = 0.3
FINGER_SIZE = (0.02, 0.01, 0.04)
FINGER_MASS = 0.02
FINGER_TRAVEL = 0.06
# Centre of a held block below the palm: palm depth + half block + 2 mm clearance.
GRIP_DEPTH = PALM_SIZE[2] + 0.025 + 0.002

_ARM_COLOUR = '0.75 0.1 0.1 1'
_DARK_COLOUR = '0.2 0.2 0.22 1'


def _rpy_aligning_z(vector: np.ndarray) -> Tuple[float, float, float]:
    """Return fixed-axis rpy (rad) that turns the z axis onto ``vector`` (3,)."""
    direction = vector / np.linalg.norm(vector)
    pitch = math.atan2(math.hypot(direction[0], direction[1]), direction[2])
    yaw = math.atan2(direction[1], direction[0])
    return 0.0, pitch, yaw


def _inertial(mass: float, xyz: np.ndarray, length: float, radius: float) -> str:
    # Solid-cylinder moments, using the larger transverse one on all axes (shapes are rough).
    moment = mass * (3 * radius ** 2 + length ** 2) / 12
    return (f'<inertial><origin xyz="{_vec(xyz)}"/><mass value="{mass}"/>'
            f'<inertia ixx="{moment:.6g}" iyy="{moment:.6g}" izz="{moment:.6g}" '
            'ixy="0" ixz="0" iyz="0"/></inertial>')


def _vec(values) -> str:
    return ' '.join(f'{float(v):.6g}' for v in values)


def _shape(geometry: str, xyz, rpy, colour: str) -> str:
    origin = f'<origin xyz="{_vec(xyz)}" rpy="{_vec(rpy)}"/>'
    return (f'<visual>{origin}<geometry>{geometry}</geometry>'
            f'<material name="c{colour.replace(" ", "_")}"><color rgba="{colour}"/></material>'
            f'</visual><collision>{origin}<geometry>{geometry}</geometry></collision>')


def _cylinder_link(name: str, tip: np.ndarray, colour: str) -> str:
    """Return a link whose cylinder runs from its origin to ``tip`` (3,) metres."""
    radius = LINK_RADII[name]
    length = float(np.linalg.norm(tip))
    geometry = f'<cylinder radius="{radius}" length="{length:.6g}"/>'
    return (f'<link name="{name}">{_inertial(LINK_MASSES[name], tip / 2, length, radius)}'
            f'{_shape(geometry, tip / 2, _rpy_aligning_z(tip), colour)}</link>')


def _box_link(name: str, mass: float, size, xyz, colour: str) -> str:
    geometry = f'<box size="{_vec(size)}"/>'
    moment = mass * (max(size) ** 2) / 6
    inertial = (f'<inertial><origin xyz="{_vec(xyz)}"/><mass value="{mass}"/>'
                f'<inertia ixx="{moment:.6g}" iyy="{moment:.6g}" izz="{moment:.6g}" '
                'ixy="0" ixz="0" iyz="0"/></inertial>')
    return f'<link name="{name}">{inertial}{_shape(geometry, xyz, (0, 0, 0), colour)}</link>'


def _frame_link(name: str) -> str:
    # A massless frame; the tiny inertia keeps the URDF importer from inventing 1 kg.
    return (f'<link name="{name}"><inertial><mass value="1e-4"/>'
            '<inertia ixx="1e-8" iyy="1e-8" izz="1e-8" ixy="0" ixz="0" iyz="0"/>'
            '</inertial></link>')


def _fixed_joint(name: str, parent: str, child: str, xyz) -> str:
    return (f'<joint name="{name}" type="fixed"><parent link="{parent}"/>'
            f'<child link="{child}"/><origin xyz="{_vec(xyz)}"/></joint>')


def sawyer_urdf() -> str:
    """Return the URDF text of the Sawyer-style arm with its gripper.

    Returns:
        URDF XML as a string; links ``base``, ``right_l0`` .. ``right_l6``, ``right_hand``,
        ``gripper_palm``, ``finger_left``, ``finger_right``, ``grip_point``.
    """
    parts = ['<?xml version="1.0"?>', '<robot name="sawyer_style">']
    tips = [np.array(spec.xyz) for spec in SAWYER_JOINTS[1:]] + [np.array([0, 0, HAND_OFFSET])]
    parts.append(_cylinder_link('base', np.array(SAWYER_JOINTS[0].xyz), _DARK_COLOUR))
    for index, spec in enumerate(SAWYER_JOINTS):
        colour = _DARK_COLOUR if index % 2 else _ARM_COLOUR
        parts.append(_cylinder_link(spec.child, tips[index], colour))
        parts.append(
            f'<joint name="{spec.name}" type="revolute"><parent link="{spec.parent}"/>'
            f'<child link="{spec.child}"/><origin xyz="{_vec(spec.xyz)}" rpy="{_vec(spec.rpy)}"/>'
            f'<axis xyz="0 0 1"/><limit lower="{spec.lower}" upper="{spec.upper}" '
            f'effort="{spec.effort}" velocity="{spec.velocity}"/></joint>')
    parts.append(_frame_link(HAND_LINK))
    parts.append(_fixed_joint('right_hand_joint', 'right_l6', HAND_LINK, (0, 0, HAND_OFFSET)))
    parts.append(_box_link('gripper_palm', PALM_MASS, PALM_SIZE, (0, 0, PALM_SIZE[2] / 2),
                           _DARK_COLOUR))
    parts.append(_fixed_joint('gripper_palm_joint', HAND_LINK, 'gripper_palm', (0, 0, 0)))
    for side, sign in (('left', 1.0), ('right', -1.0)):
        link = f'finger_{side}'
        centre = (0, sign * FINGER_SIZE[1] / 2, FINGER_SIZE[2] / 2)
        parts.append(_box_link(link, FINGER_MASS, FINGER_SIZE, centre, '0.3 0.3 0.32 1'))
        parts.append(
            f'<joint name="{link}_joint" type="prismatic"><parent link="gripper_palm"/>'
            f'<child link="{link}"/><origin xyz="0 0 {PALM_SIZE[2]}"/>'
            f'<axis xyz="0 {sign:g} 0"/><limit lower="0" upper="{FINGER_TRAVEL}" '
            'effort="40" velocity="0.2"/></joint>')
    parts.append(_frame_link(GRIP_LINK))
    parts.append(_fixed_joint('grip_point_joint', HAND_LINK, GRIP_LINK, (0, 0, GRIP_DEPTH)))
    parts.append('</robot>')
    return '\n'.join(parts) + '\n'


def write_sawyer_urdf(directory: Path) -> Path:
    """Write the URDF into ``directory`` and return the file's path."""
    path = Path(directory) / 'sawyer_style.urdf'
    path.write_text(sawyer_urdf())
    return path
