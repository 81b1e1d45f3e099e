"""Print how long a model fit takes in the main thread and in a background thread.

The learner node refits in a background thread. By default glibc gives every thread its
own malloc arena, and torch's large short-lived buffers then cost a thread much more than
the main thread; ``solar_ros.learn.malloc.share_malloc_arena`` (called here unless
``--own-arenas``) makes the two equal. The task-1 model (8 latent dims, keypoint encoder,
64x64 images, 30 steps) is fitted on random sequences.

Usage: python bench/refit_thread.py [--updates 30] [--own-arenas]
"""

import argparse
import threading
import time

import numpy as np
from solar_ros.core.model import SolarModel
from solar_ros.core.model_config import ModelConfig
from solar_ros.core.sequences import EpisodeBatch
from solar_ros.learn.malloc import share_malloc_arena


def fit_seconds(batch: EpisodeBatch, updates: int) -> float:
    """Return the wall time of ``updates`` model updates on ``batch``, in seconds."""
    model = SolarModel(ModelConfig(latent_dim=8, action_dim=7, horizon=30, channels=16,
                                   keypoints=16, batch_size=8))
    start = time.perf_counter()
    model.fit(batch, updates)
    return time.perf_counter() - start


def main() -> None:
    """Parse the arguments, time both fits and print them with their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--updates', type=int, default=30, help='model updates per fit')
    parser.add_argument('--own-arenas', action='store_true',
                        help="keep glibc's default of one malloc arena per thread")
    args = parser.parse_args()
    shared = False if args.own_arenas else share_malloc_arena()
    rng = np.random.default_rng(0)
    batch = EpisodeBatch(rng.integers(0, 256, (16, 30, 64, 64, 3), dtype=np.uint8),
                         rng.normal(size=(16, 30, 7)), rng.random((16, 30)))
    main_seconds = fit_seconds(batch, args.updates)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault(
        'seconds', fit_seconds(batch, args.updates)))
    thread.start()
    thread.join()
    print(f'{args.updates} model updates, one shared malloc arena: {shared}')
    print(f'  main thread:       {main_seconds:.2f} s')
    print(f'  background thread: {result["seconds"]:.2f} s '
          f'(ratio {result["seconds"] / main_seconds:.2f})')


if __name__ == '__main__':
    main()
