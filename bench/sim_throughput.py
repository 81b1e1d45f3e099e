"""Print SawyerStackEnv steps per second with and without rendering.

Also prints PyBullet's bare render rate (getCameraImage of the same size with the
TinyRenderer, same scene, in a loop) measured in the same run, and the ratio of the
rendering environment's step rate to it. Single-threaded; run from the repository
root with the workspace environment sourced:

    python bench/sim_throughput.py [--steps 600] [--image-size 64]
"""

import argparse
import time

import numpy as np
import pybullet
from solar_ros.sim.sawyer_config import SawyerStackConfig
from solar_ros.sim.sawyer_env import SawyerStackEnv


def steps_per_second(env: SawyerStackEnv, steps: int) -> float:
    """Return control steps per second under seeded random actions, resets included."""
    rng = np.random.default_rng(0)
    env.reset(task=1, seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, done, _ = env.step(rng.uniform(env.action_low, env.action_high) * 0.3)
        if done:
            env.reset(task=1, seed=int(rng.integers(1000)))
    return steps / (time.perf_counter() - start)


def bare_renders_per_second(env: SawyerStackEnv, frames: int) -> float:
    """Return getCameraImage calls per second on the environment's scene and camera."""
    env.reset(task=1, seed=0)
    size = env.image_size
    view = env.client.computeViewMatrix(env.config.camera_eye, env.config.camera_target,
                                        (0, 0, 1))
    projection = env.client.computeProjectionMatrixFOV(env.config.camera_fov_deg, 1.0, 0.05, 5.0)
    start = time.perf_counter()
    for _ in range(frames):
        env.client.getCameraImage(size, size, view, projection,
                                  renderer=pybullet.ER_TINY_RENDERER,
                                  flags=pybullet.ER_NO_SEGMENTATION_MASK)
    return frames / (time.perf_counter() - start)


def main():
    """Measure and print the three rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=600, help='control steps per measurement')
    parser.add_argument('--image-size', type=int, default=64, help='image side, pixels')
    args = parser.parse_args()
    with SawyerStackEnv(SawyerStackConfig(render=True, image_size=args.image_size)) as env:
        rendered = steps_per_second(env, args.steps)
        bare = bare_renders_per_second(env, args.steps)
    with SawyerStackEnv(SawyerStackConfig(render=False, image_size=args.image_size)) as env:
        physics_only = steps_per_second(env, args.steps)
    size = args.image_size
    print(f'env steps/s, rendering {size}x{size}: {rendered:8.1f}')
    print(f'env steps/s, no rendering:      {physics_only:8.1f}')
    print(f'bare getCameraImage/s {size}x{size}:  {bare:8.1f}')
    print(f'rendering env step rate / bare render rate: {rendered / bare:.3f}')


if __name__ == '__main__':
    main()
