"""Render the documentation images of the simulated stacking task into docs/.

Writes ``docs/sawyer_scenes.png`` (the three initial scenes, seed 0, as the 64x64
camera sees them, upscaled 4x with nearest neighbour, side by side),
``docs/sawyer_views.png`` (the same with both cameras of ``views: 2``, each scene's two
views side by side) and ``docs/sawyer_wide.png`` (task 3's initial scene from a wider
viewpoint). Run from the
repository root with the workspace environment sourced:

    python scripts/render_scenes.py [--out docs]
"""

import argparse
from pathlib import Path

import cv2
import numpy as np
from solar_ros.images import views_side_by_side
from solar_ros.sim.sawyer_config import SawyerStackConfig, TASKS
from solar_ros.sim.sawyer_env import SawyerStackEnv

UPSCALE = 4


def camera_scenes(env: SawyerStackEnv) -> np.ndarray:
    """Return the initial camera images of tasks 1..3 side by side, upscaled, (H, 3VW, 3)."""
    tiles = []
    for task in TASKS:
        image = views_side_by_side(env.reset(task=task, seed=0))
        tiles.append(np.kron(image, np.ones((UPSCALE, UPSCALE, 1), dtype=np.uint8)))
        tiles.append(np.full((image.shape[0] * UPSCALE, 8, 3), 255, dtype=np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


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
                  'sawyer_views.png': camera_scenes(both)}
    for name, image in images.items():
        cv2.imwrite(str(args.out / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        print(f'wrote {args.out / name} ({image.shape[1]}x{image.shape[0]})')


if __name__ == '__main__':
    main()
