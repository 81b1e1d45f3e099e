"""Render the documentation images of the simulated stacking task into docs/.

Writes ``docs/sawyer_scenes.png`` (the three initial scenes, seed 0, as the 64x64
camera sees them, upscaled 4x with nearest neighbour, side by side),
``docs/sawyer_views.png`` (the same with both cameras of ``views: 2``, each scene's two
views side by side), ``docs/sawyer_wide.png`` (task 3's initial scene from a wider
viewpoint) and ``docs/close_cameras.png`` (task 2's close camera, looking along -y as its
config places it, above the same camera moved to look along -x and, below, to look down
steeply from beyond the target, through a scripted stack).
Run from the repository root with the workspace environment sourced:

    python scripts/render_scenes.py [--out docs]
"""

import argparse
from pathlib import Path

import cv2
import numpy as np
from solar_ros.core.tensors import view_channels
from solar_ros.images import views_side_by_side
from solar_ros.learn.config import RunConfig
from solar_ros.sim.environments import make_env
from solar_ros.sim.expert import ScriptedExpert
from solar_ros.sim.sawyer_config import CAMERAS, SawyerStackConfig, TASKS
from solar_ros.sim.sawyer_env import SawyerStackEnv

UPSCALE = 4
TASK2_CONFIG = Path(__file__).resolve().parents[1] / 'solar_ros' / 'config' / 'sawyer_task2.yaml'
CLOSE_FRAMES = (0, 10, 20, 29)  # steps of the scripted episode shown, the last before the release
ALONG_X_EYE = (1.2, 0.0, 0.5)  # m; the close camera looking along -x (docs/results.md)
STEEP_EYE = SawyerStackConfig().top_camera_eye  # m; where the top camera (views: 4) looks from
CLOSE_VIEW = CAMERAS.index('close_camera')


def upscale(image: np.ndarray) -> np.ndarray:
    """Return ``image`` (H, W, 3) upscaled ``UPSCALE`` times with nearest neighbour."""
    return np.kron(image, np.ones((UPSCALE, UPSCALE, 1), dtype=np.uint8))


def join_with_gaps(images: list[np.ndarray], axis: int) -> np.ndarray:
    """Return ``images`` (H, W, 3) uint8 joined along ``axis`` with 8-pixel white gaps."""
    tiles = []
    for image in images:
        gap_shape = list(image.shape)
        gap_shape[axis] = 8
        tiles += [image, np.full(gap_shape, 255, dtype=np.uint8)]
    return np.concatenate(tiles[:-1], axis=axis)


def camera_scenes(env: SawyerStackEnv) -> np.ndarray:
    """Return the initial camera images of tasks 1..3 side by side, upscaled, (H, 3VW, 3)."""
    return join_with_gaps([upscale(views_side_by_side(env.reset(task=task, seed=0)))
                           for task in TASKS], axis=1)


def close_camera_frames(env: SawyerStackEnv) -> np.ndarray:
    """Return the close camera at ``CLOSE_FRAMES`` of a scripted task-2 stack.

    The frames side by side, (64, 64 * len(CLOSE_FRAMES), 3) uint8; step 0 is the reset's.
    """
    observation = env.reset(task=2, seed=0)
    expert = ScriptedExpert(env)
    expert.reset()
    frames = []
    for step in range(max(CLOSE_FRAMES) + 1):
        if step:
            observation, _, done, _ = env.step(expert.act())
            if done:
                raise RuntimeError(f'the episode ended at step {step}, before {max(CLOSE_FRAMES)}')
        if step in CLOSE_FRAMES:
            frames.append(view_channels(observation, CLOSE_VIEW))
    return np.concatenate(frames, axis=1)


def close_cameras() -> np.ndarray:
    """Return task 2's close camera (along -y), then moved along -x and steep, upscaled."""
    env = RunConfig.from_yaml(TASK2_CONFIG).env
    rows = []
    for settings in [env] + [{**env, 'close_camera_eye': eye} for eye in (ALONG_X_EYE, STEEP_EYE)]:
        with make_env(settings) as scene:
            rows.append(upscale(close_camera_frames(scene)))
    return join_with_gaps(rows, axis=0)


def wide_view(env: SawyerStackEnv) -> np.ndarray:
    """Return task 3's initial scene seen from farther away, (500, 800, 3) uint8."""
    env.reset(task=3, seed=0)
    return env.render_wide(800, 500)


def main():
    """Render both images and write them as PNG files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=Path('docs'), help='output folder')
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with SawyerStackEnv() as env, SawyerStackEnv(SawyerStackConfig(views=2)) as both:
        images = {'sawyer_scenes.png': camera_scenes(env), 'sawyer_wide.png': wide_view(env),
                  'sawyer_views.png': camera_scenes(both), 'close_cameras.png': close_cameras()}
    for name, image in images.items():
        cv2.imwrite(str(args.out / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        print(f'wrote {args.out / name} ({image.shape[1]}x{image.shape[0]})')


if __name__ == '__main__':
    main()
