"""Print the speed of the SOLAR model's parts on this CPU.

Figures: encoder time per frame (forward, no gradient); a running episode's encoding of
one two-camera frame by the keypoint encoders view by view (``SolarModel.encode``) and in
one pass (``KeypointEncoderStack``), without and with a 64-unit dense branch, and with
full-precision potentials (``precision: full``, view by view); one step of the online
Kalman filter (update + predict); and one training update (encoder, smoother, sample,
decoder, backward, Adam and the MNIW natural-gradient step) for the stated batch and
horizon, with diagonal and with full-precision potentials.

Usage: python bench/model_speed.py [--threads 1] [--batch 8] [--horizon 20] [--latent 4]
"""

import argparse
from dataclasses import replace
import time

from solar_ros.core.model import SolarModel
from solar_ros.core.model_config import ModelConfig
from solar_ros.core.networks import KeypointEncoderStack
from solar_ros.core.online_filter import OnlineKalmanFilter
from solar_ros.core.sequences import EpisodeBatch
from solar_ros.sim.point_mass import PointMassEnv, random_episodes
import torch


def best_time(function, repeats: int) -> float:
    """Return the smallest wall time of ``repeats`` calls of ``function``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--horizon', type=int, default=20)
    parser.add_argument('--latent', type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = PointMassEnv(horizon=args.horizon)
    data = random_episodes(env, max(args.batch, 8), seed=0)
    batch = EpisodeBatch(data['images'], data['actions'], data['costs'])
    config = ModelConfig(latent_dim=args.latent, action_dim=2, horizon=args.horizon,
                         batch_size=args.batch)
    model = SolarModel(config)
    print(f'torch threads: {args.threads}, latent dim {args.latent}, action dim 2, '
          f'image 64x64x3')

    frames = batch.images[:4].reshape(-1, 1, 64, 64, 3)
    with torch.no_grad():
        encode = best_time(lambda: model.encoder(frames.float() / 255.0), 5)
    print(f'encoder: {1e3 * encode / len(frames):.3f} ms per frame '
          f'(batches of {len(frames)} frames)')

    frame = torch.randint(0, 256, (64, 64, 6), dtype=torch.uint8)
    diagonal_by_view = {}  # seconds per 100 frames, by dense-branch size
    for branch in (0, 64):
        views = SolarModel(ModelConfig(latent_dim=12, action_dim=7, horizon=args.horizon,
                                       views=2, keypoints=16, dense_branch=branch))
        stack = KeypointEncoderStack(views.view_encoders())
        with torch.no_grad():
            by_view = best_time(
                lambda: [views.encode(frame[None, None]) for _ in range(100)], 5)
        in_one = best_time(lambda: [stack(frame) for _ in range(100)], 5)
        print(f'two-camera frame (keypoint encoders, dx=12, dense branch {branch}): '
              f'{10 * by_view:.3f} ms view by view, {10 * in_one:.3f} ms in one pass '
              f'({by_view / in_one:.1f} x faster)')
        diagonal_by_view[branch] = by_view
    full = SolarModel(ModelConfig(latent_dim=12, action_dim=7, horizon=args.horizon, views=2,
                                  keypoints=16, precision='full'))
    with torch.no_grad():
        full_by_view = best_time(lambda: [full.encode(frame[None, None]) for _ in range(100)], 5)
    print(f'two-camera frame with full precisions (dx=12, view by view): '
          f'{10 * full_by_view:.3f} ms ({full_by_view / diagonal_by_view[0]:.2f} x the diagonal)')

    params = model.dynamics()
    filt = OnlineKalmanFilter(args.latent)
    filt.reset(params.mu0, params.P0)
    with torch.no_grad():
        potentials = model.encode(batch.images[:1])
    actions = batch.actions[0]
    steps = args.horizon - 1

    def run_filter():
        filt.reset(params.mu0, params.P0)
        for t in range(steps):
            filt.update(potentials.J[0, t], potentials.h[0, t])
            filt.predict(params.F[t], params.Q[t], actions[t])

    per_step = best_time(run_filter, 5) / steps
    print(f'online filter: {1e6 * per_step:.1f} us per step (update + predict, '
          f'dx={args.latent})')

    model.fit(batch, 2)
    update = best_time(lambda: model.fit(batch, 1), 5)
    print(f'training update: {1e3 * update:.1f} ms (batch {args.batch} sequences x '
          f'horizon {args.horizon} = {args.batch * args.horizon} frames)')
    full_model = SolarModel(replace(config, precision='full'))
    full_model.fit(batch, 2)
    full_update = best_time(lambda: full_model.fit(batch, 1), 5)
    print(f'training update with full precisions: {1e3 * full_update:.1f} ms '
          f'({full_update / update:.2f} x the diagonal)')


if __name__ == '__main__':
    main()
