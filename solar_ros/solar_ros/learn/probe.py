"""What the latent knows: a linear probe from latent states to the held block's position.

On random-action episodes of the arm (the pretraining distribution: joint-velocity noise of
``loop.pretrain_std`` rad/s, reset seeds ``PROBE_SEED_BASE + i``, which neither training,
validation nor evaluation use), the model's smoothed latent means (``SolarModel.infer``)
are regressed by least squares, with an intercept, onto the held block's offset from the
goal point (x, y, z, metres). The regression is fitted on the frames of the first half of
the episodes and scored on the frames of the other half: per-axis R^2 and RMSE (m). The
same regression from the arm's true state (7 joint angles and the target block's x, y,
9 numbers) says what a perfect state estimate would give, and the same regression from the
means of the encoders' product of experts (no dynamics) says whether the filter's fusion
loses what the encoders hold. ``--pixels N`` adds a CNN trained on the true offsets of N
other such episodes (:mod:`solar_ros.learn.pixel_probe`): what the cameras' frames hold;
and the model's own encoder design (new weights, linear read-out) trained the same way:
what that design can hold when the objective asks for the offset. The same regression from
the smoothed latent means to the target block's x, y (which each reset moves by up to
``target_position_noise``, 1 cm) says whether the latent knows where the block must go: a
latent that does not can only bring the block to where the target stands on average.

The probe episodes are rendered once per run and kept in ``RUN_DIR/probe.npz``, so every
policy update scores its model on the same frames (the ``probe_r2_*`` columns of
``metrics.csv``)::

    python -m solar_ros.learn.probe RUN_DIR [--policy K] [--episodes 20] [--pixels N]

Near the goal (``--near-goal``): the episodes are the policy's own, with its exploration
noise on (the spread a regression needs; same reset seeds; the MPC ablation's planner has
none), and the regression uses only
their last ``NEAR_GOAL_FRAMES`` frames, where the block is let go. Its RMSE says how
precisely the latent holds the offset where success is decided (horizontally within about
1.5 cm); these episodes are rendered on every call and not kept. Every policy update of an
in-process run logs the same RMSE for its model on the rollouts behind it, whose episodes
record their true offsets (``near_goal_rmse_*`` in ``metrics.csv``, :func:`probe_rollouts`)::

    python -m solar_ros.learn.probe RUN_DIR --near-goal [--policy K] [--episodes 20] [--pixels N]
"""

import argparse
from dataclasses import dataclass
from pathlib import Path
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
from solar_ros.core.lds import frame_posteriors
from solar_ros.core.model import SolarModel
from solar_ros.core.online import episode_noise
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode, write_npz
from solar_ros.learn.pixel_probe import encoder_network, pixel_regression
from solar_ros.learn.rollout import NoiseAgent, run_episode
from solar_ros.learn.run_dir import RunDir
from solar_ros.sim.environments import make_env
import torch

PROBE_SEED_BASE = 700_000_000
PIXEL_SEED_BASE = 710_000_000  # the episodes the CNN of --pixels is trained on
AXES = ('x', 'y', 'z')
NEAR_GOAL_FRAMES = 10  # the last frames of an episode, where the block is let go
TARGET_XY = slice(7, 9)  # the target block's x, y among ProbeData.true_states' 9 entries


@dataclass
class ProbeData:
    """Random-action episodes with the true quantities behind every frame.

    Attributes:
        images: (N, T, H, W, 3 V) uint8, frames o_0..o_{T-1}.
        actions: (N, T, du) float64, the actions applied (rad/s).
        offsets: (N, T, 3) float64, held block centre minus goal point at each frame, m.
        true_states: (N, T, 9) float64, the 7 joint angles (rad) and target x, y (m).

    """

    images: np.ndarray
    actions: np.ndarray
    offsets: np.ndarray
    true_states: np.ndarray

    def __post_init__(self) -> None:
        """Check that the arrays agree in (N, T) and that there are at least 2 episodes."""
        lead = self.images.shape[:2]
        for name in ('actions', 'offsets', 'true_states'):
            if getattr(self, name).shape[:2] != lead:
                raise ValueError(f'ProbeData.{name} has leading shape '
                                 f'{getattr(self, name).shape[:2]}, images {lead}')
        if lead[0] < 2:
            raise ValueError(f'a probe needs at least 2 episodes, got {lead[0]}')

    def save(self, path: Path) -> None:
        """Write the data to ``path`` atomically (temporary file, then rename)."""
        write_npz(path, images=self.images, actions=self.actions, offsets=self.offsets,
                  true_states=self.true_states)

    @classmethod
    def load(cls, path: Path) -> 'ProbeData':
        """Read data written by :meth:`save`."""
        with np.load(path) as data:
            return cls(**{name: data[name] for name in
                          ('images', 'actions', 'offsets', 'true_states')})


@dataclass
class ProbeScores:
    """Held-out scores of one probe: per axis (x, y, z on the arm; x, y on the point mass).

    Attributes:
        r2: (d,) coefficient of determination on the held-out frames.
        rmse: (d,) root-mean-square error on the held-out frames, m.

    """

    r2: np.ndarray
    rmse: np.ndarray


def can_probe(env: Any) -> bool:
    """Return whether ``env`` exposes the true block and arm state a probe needs."""
    return all(hasattr(env, name) for name in
               ('held_block_pose', 'goal_position', 'joint_positions', 'target_block_pose'))


def collect(env: Any, task: int, episodes: int, std: float,
            agent: Optional[Any] = None, smooth: bool = False,
            seed_base: int = PROBE_SEED_BASE) -> ProbeData:
    """Run ``episodes`` episodes of ``task`` and record the true state behind every frame.

    Without ``agent`` the actions are ``std`` times standard-normal noise drawn from each
    episode's reset seed (:func:`solar_ros.core.online.episode_noise`), as the random
    pretraining policy acts. With ``agent`` (a :class:`~solar_ros.learn.agent.LatentAgent`)
    the policy acts, with that noise as its exploration noise (``std`` is not used;
    ``smooth`` draws it time-correlated, as ``loop.smooth_noise``; an MPC agent ignores it).
    Episode i resets with seed ``seed_base + i``.

    Raises:
        ValueError: ``env`` cannot be probed (:func:`can_probe`) or ``episodes`` < 2.
    """
    if not can_probe(env):
        raise ValueError(f'{type(env).__name__} does not expose the block and arm state')
    agent = NoiseAgent(std) if agent is None else agent
    images, actions, offsets, states = [], [], [], []
    for index in range(episodes):
        seed = seed_base + index
        offset, state = [], []

        def record_true_state() -> None:
            offset.append(env.held_block_pose()[:3] - env.goal_position())
            state.append(np.concatenate([env.joint_positions(), env.target_block_pose()[:2]]))

        noise = episode_noise(env.horizon, env.action_dim, seed, smooth)
        episode = run_episode(env, agent, task, seed, noise, record_true_state)
        images.append(episode.images[:-1])
        actions.append(episode.actions)
        offsets.append(np.stack(offset))
        states.append(np.stack(state))
    return ProbeData(np.stack(images), np.stack(actions), np.stack(offsets), np.stack(states))


def load_or_collect(run_dir: Path, env: Any, config: RunConfig,
                    episodes: int = 20) -> ProbeData:
    """Return the run's ``episodes`` probe episodes, rendering and saving them on first use.

    The run keeps one set, ``RUN_DIR/probe.npz``, which every policy update scores; asked
    for another number of episodes than it holds, this renders that many (the same reset
    seeds, so the kept episodes come first) and leaves the file as it is.
    """
    path = RunDir(run_dir).probe
    kept = ProbeData.load(path) if path.exists() else None
    if kept is not None and len(kept.images) == episodes:
        return kept
    data = collect(env, config.loop.task, episodes, config.pretrain_std)
    if kept is None:
        data.save(path)
    return data


def linear_probe(features: np.ndarray, targets: np.ndarray) -> ProbeScores:
    """Fit targets ~ features by least squares on the first half of the episodes.

    Args:
        features: (N, T, d) regressors per frame.
        targets: (N, T, d) quantities to predict per frame.

    Returns:
        the scores on the frames of the last N - N // 2 episodes.

    """
    n = features.shape[0]
    split = n // 2
    design = np.concatenate([features, np.ones(features.shape[:2] + (1,))], axis=-1)
    train_x, test_x = design[:split].reshape(-1, design.shape[-1]), \
        design[split:].reshape(-1, design.shape[-1])
    d = targets.shape[-1]
    train_y, test_y = targets[:split].reshape(-1, d), targets[split:].reshape(-1, d)
    weights, *_ = np.linalg.lstsq(train_x, train_y, rcond=None)
    return score(test_y, test_x @ weights)


def score(truth: np.ndarray, predicted: np.ndarray) -> ProbeScores:
    """Return per-axis R^2 and RMSE of ``predicted`` against ``truth``, both (M, d) m."""
    residual = truth - predicted
    variance = np.maximum(truth.var(axis=0), 1e-12)
    return ProbeScores(r2=1.0 - (residual ** 2).mean(axis=0) / variance,
                       rmse=np.sqrt((residual ** 2).mean(axis=0)))


def smoothed_means(model: SolarModel, data: ProbeData) -> np.ndarray:
    """Return the model's smoothed latent means of the probe episodes, (N, T, dx)."""
    return model.infer(data.images, data.actions).means.numpy()


def probe_model(model: SolarModel, data: ProbeData, last: int = 0) -> ProbeScores:
    """Score the model's smoothed latent means on the probe episodes.

    ``last`` > 0 scores only each episode's last ``last`` frames (smoothed over the whole
    episode).
    """
    return linear_probe(smoothed_means(model, data)[:, -last:], data.offsets[:, -last:])


def target_positions(data: ProbeData) -> np.ndarray:
    """Return the target block's x, y behind every frame, (N, T, 2) m."""
    return data.true_states[..., TARGET_XY]


def probe_rollouts(model: SolarModel, episodes: Sequence[Episode],
                   last: int = NEAR_GOAL_FRAMES) -> Optional[ProbeScores]:
    """Score the model's smoothed latent means on recorded episodes' true aim offsets.

    The near-goal probe of a run's own rollouts, as a policy update logs it: the episodes
    that carry ``aim_offsets`` (recorded in simulation), their last ``last`` frames, the
    regression fitted on the first half of them and scored on the rest (:func:`linear_probe`).
    Only the position entries are scored (at most the first three, :data:`AXES`; the arm's
    ``aim_offset`` may go on with the block's lean). Returns None when fewer than 2 episodes
    carry offsets.
    """
    recorded = [episode for episode in episodes if episode.aim_offsets is not None]
    if len(recorded) < 2:
        return None
    images = np.stack([episode.images[:-1] for episode in recorded])
    actions = np.stack([episode.actions for episode in recorded])
    offsets = np.stack([episode.aim_offsets[:, :len(AXES)] for episode in recorded])
    latents = model.infer(images, actions).means.numpy()
    return linear_probe(latents[:, -last:], offsets[:, -last:])


def probe_encoder(model: SolarModel, data: ProbeData, last: int = 0) -> ProbeScores:
    """Score the means of the encoders' product of experts (h / J, no dynamics) likewise.

    These are the per-frame posteriors of the VAE ablation (:func:`frame_posteriors`).
    """
    with torch.no_grad():
        potentials = model.encode(torch.as_tensor(data.images))
    means = frame_posteriors(potentials, data.actions).means.numpy()
    return linear_probe(means[:, -last:], data.offsets[:, -last:])


def probe_pixels(train: ProbeData, data: ProbeData, last: int = 0, epochs: int = 30,
                 progress: Optional[Callable[[int, float], None]] = None,
                 build: Optional[Callable[[], torch.nn.Module]] = None) -> ProbeScores:
    """Score a network trained from ``train``'s frames to their offsets on ``data``'s frames.

    The frames scored are those :func:`linear_probe` scores (the last N - N // 2 episodes;
    with ``last`` > 0 their last ``last`` frames); ``build`` returns the network (default:
    the CNN); see :mod:`solar_ros.learn.pixel_probe`.
    """
    scored = slice(len(data.images) // 2, None)
    frames = slice(-last, None) if last else slice(None)
    predicted = pixel_regression(train.images, train.offsets, data.images[scored, frames],
                                 epochs, progress=progress, build=build)
    return score(data.offsets[scored, frames].reshape(-1, 3), predicted)


def probe_true_state(data: ProbeData, last: int = 0) -> ProbeScores:
    """Score the arm's true state (joint angles, target x, y) on the probe episodes.

    ``last`` as in :func:`probe_model`.
    """
    return linear_probe(data.true_states[:, -last:], data.offsets[:, -last:])


def report(rows: Sequence[Tuple[str, ProbeScores]]) -> List[str]:
    """Return the table lines: per representation, R^2 and RMSE (cm) of x, y and z."""
    width = max(len(label) for label, _ in rows)
    lines = [f'{"":{width}}  {"R^2 x":>6} {"y":>6} {"z":>6}  {"RMSE x":>7} {"y":>5} {"z":>5} cm']
    for label, scores in rows:
        r2 = ' '.join(f'{v:6.2f}' for v in scores.r2)
        rmse = ' '.join(f'{100 * v:5.2f}' for v in scores.rmse)
        lines.append(f'{label:{width}}  {r2}    {rmse}')
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, probe the run's model, print the table and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dir', type=Path, help='run directory (or a pretrained folder)')
    parser.add_argument('--policy', type=int,
                        help='probe the model of policy K (default: the newest)')
    parser.add_argument('--episodes', type=int, default=20,
                        help='probe episodes rendered on first use (half fit, half scored)')
    parser.add_argument('--near-goal', action='store_true',
                        help=f"the policy's own episodes, exploration noise on, and only "
                             f'their last {NEAR_GOAL_FRAMES} frames (module docstring)')
    parser.add_argument('--pixels', type=int, default=0, metavar='N',
                        help="also train a CNN, and the model's encoder design, from the "
                             'frames of N other such episodes to the offset: what the cameras '
                             'hold, and what the encoders could (0: off)')
    parser.add_argument('--epochs', type=int, default=30, help='--pixels: training epochs')
    args = parser.parse_args(argv)
    if args.episodes < 2:
        print('solar_ros.probe: --episodes must be at least 2', file=sys.stderr)
        return 2
    if args.pixels < 0 or args.epochs < 1:
        print('solar_ros.probe: --pixels must be >= 0 and --epochs >= 1', file=sys.stderr)
        return 2
    files = RunDir(args.run_dir)
    try:
        config = RunConfig.from_yaml(files.config)
        if args.policy is None:
            # the newest model, or for --near-goal the newest policy (its learner checkpoint too)
            versions = files.completed_policies() if args.near_goal else files.models()
            if not versions:
                raise ValueError(f'no checkpoints in {files.checkpoints}')
            version = versions[-1]
        else:
            version = args.policy
            if not files.model(version).exists():
                raise ValueError(f'{files.model(version)} does not exist')
        path = files.model(version)
        model = SolarModel.load(path)
        env = make_env(config.env)
        if not can_probe(env):
            raise ValueError(f'env {config.env.get("name")!r} has no block state to probe')
        agent = None  # the random policy, as the learner's policy 0 acts
        if args.near_goal:
            # Here, not at the top: evaluate imports the learner, which imports this module.
            from solar_ros.learn.evaluate import load_policy
            agent = load_policy(args.run_dir, version)
    except (OSError, ValueError) as error:
        print(f'solar_ros.probe: cannot probe {args.run_dir}: {error}', file=sys.stderr)
        return 2
    smooth = args.near_goal and config.loop.smooth_noise

    def episodes(count: int, seed_base: int) -> ProbeData:
        return collect(env, config.loop.task, count, config.pretrain_std, agent, smooth,
                       seed_base)

    if args.near_goal:
        data = episodes(args.episodes, PROBE_SEED_BASE)
        last = NEAR_GOAL_FRAMES
        print(f'{path.name}: linear probe of the held block offset on the last {last} frames '
              f'of {len(data.images)} episodes of the policy (exploration noise on; fitted on '
              f'{len(data.images) // 2}, scored on the rest)')
    else:
        data = load_or_collect(args.run_dir, env, config, args.episodes)
        last = 0
        print(f'{path.name}: linear probe of the held block offset on {len(data.images)} '
              f'random-action episodes (fitted on {len(data.images) // 2}, scored on the rest)')
    latents = smoothed_means(model, data)[:, -last:]  # inferred once for both probes
    rows = [('latent (smoothed means)', linear_probe(latents, data.offsets[:, -last:])),
            ('encoders (their product, no dynamics)', probe_encoder(model, data, last))]
    if args.pixels:
        print(f'training a CNN on the frames of {args.pixels} other episodes '
              f'({args.epochs} epochs)', flush=True)
        train = episodes(args.pixels, PIXEL_SEED_BASE)
        rows.append((f'CNN from the frames ({args.pixels} episodes)',
                     probe_pixels(train, data, last, args.epochs, _epoch_line)))
        print("training the model's encoder design on the same frames", flush=True)
        rows.append(("the model's encoder design (trained on the offsets)",
                     probe_pixels(train, data, last, args.epochs, _epoch_line,
                                  lambda: encoder_network(model.config))))
    rows.append(('true state (joint angles, target x, y)', probe_true_state(data, last)))
    for line in report(rows):
        print(line)
    print(target_line(linear_probe(latents, target_positions(data)[:, -last:]), data,
                      model.config.latent_dim + 1, last))
    return 0


def target_line(scores: ProbeScores, data: ProbeData, coefficients: int, last: int = 0) -> str:
    """Return the line of the target probe: R^2, RMSE and spread of the target's x, y.

    The spread is the standard deviation of the scored frames' target x, y (the last
    N - N // 2 episodes; with ``last`` > 0 their last ``last`` frames), cm: an RMSE near
    it says the latent does not know where the target is. The target stands still in an
    episode, so the regression is fitted on N // 2 placements; with no more placements
    than it has coefficients (``latent_dim`` + 1) it cannot generalise, and the line says so.
    """
    placements = len(data.images) // 2
    frames = slice(-last, None) if last else slice(None)
    spread = target_positions(data)[placements:, frames].reshape(-1, 2).std(axis=0)
    line = ('target block x, y from the latent (smoothed means): R^2 '
            + ' '.join(f'{v:.2f}' for v in scores.r2) + ', RMSE '
            + ' '.join(f'{100 * v:.2f}' for v in scores.rmse) + ' cm; std of the target x, y '
            + ' '.join(f'{100 * v:.2f}' for v in spread)
            + f' cm; fitted on {placements} placements')
    if placements <= coefficients:
        line += f', too few for {coefficients} coefficients: use --episodes {4 * coefficients}'
    return line


def _epoch_line(epoch: int, error: float) -> None:
    """Print the CNN's training progress every 10 epochs."""
    if epoch % 10 == 0:
        print(f'  epoch {epoch}: squared error {error:.3f} cm^2', flush=True)


if __name__ == '__main__':
    sys.exit(main())
