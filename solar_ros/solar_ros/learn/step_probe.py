"""Where LQR-FLM's steps take the goal offset: the controller's belief, the plan and the truth.

For each checked policy K >= 2 of a run this says, in the environment's own units (for the
arm: the held block's centre minus the aim point, metres), where policy K's noise-free
checks end and where the learner thought they would:

- **true**: the checks replayed in the simulator from their seeds and recorded actions;
- **belief**: the controller's filtered latent mean when it chose the last action (the
  model and local dynamics of policy K, as it acted), read out linearly;
- **predicted**: the mean end of policy K under update K's local model (the learner's fit,
  :func:`solar_ros.learn.cost_probe.update_fit`), read out the same way;
- **further steps**: the mean end after one more KL step from policy K, ``m`` times the
  configured KL, in the same local model and fitted cost: which way that cost and
  dynamics pull beyond the step that was taken; with ``--episodes N`` each such policy
  also acts, noise-free, from the first N validation seeds, for its true end and success.

The read-out is least squares from the smoothed latent means of the rollouts of policy K-1
(every step) to their true offsets, as recorded (``Episode.aim_offsets``) or, in runs made
before episodes recorded them, replayed in the simulator (its RMSE at their last step is
printed: a read-out error, not a policy's). The last step is the one before the episode's
final action, where the arm lets go. A belief near the truth with a prediction far from it
is an error of the local dynamics; a prediction near the truth whose further steps move
away from the aim, an error of the fitted cost; further steps that move towards the aim, a
step too small::

    python -m solar_ros.learn.step_probe RUN_DIR [--policy K [K ...]] [--step-mults 3 10]
        [--episodes N] [--threads 1]
"""

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
import sys
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from solar_ros.core.lqr import forward_marginals, solve_kl_step
from solar_ros.learn.agent import LatentAgent
from solar_ros.learn.config import RunConfig
from solar_ros.learn.cost_probe import episodes_of, probed_versions, update_fit
from solar_ros.learn.episodes import Episode, EpisodeStore
from solar_ros.learn.evaluate import load_policy
from solar_ros.learn.rollout import run_episode
from solar_ros.learn.run_dir import RunDir
from solar_ros.learn.validate import VALIDATION_SEED_BASE
from solar_ros.sim.environments import make_env
import torch

COST_TOLERANCE = 1e-6  # largest |replayed - recorded| cost of a step that counts as the same
ACTION_TOLERANCE = 1e-4  # largest |replayed - recorded| action of a check (rad/s on the arm)


@dataclass
class FurtherStep:
    """One more KL step from policy K in update K's local model and cost.

    Attributes:
        mult: its KL in multiples of ``lqr.kl_step``.
        kl: the trajectory KL it took, nats.
        predicted: read-out of its mean end under the local model, (d,).
        true: its mean end over the episodes it acted in, (d,); None if it did not act.
        success: the fraction of those episodes that succeeded; None if it did not act.

    """

    mult: float
    kl: float
    predicted: np.ndarray
    true: Optional[np.ndarray] = None
    success: Optional[float] = None


@dataclass
class StepReport:
    """Where policy K's checks end, believed, predicted and true; offsets (d,) in env units.

    Attributes:
        version: K.
        checks: number of checks of policy K.
        stacked: how many of them succeeded.
        rollouts_true: mean offset of the rollouts of policy K-1 at their last step.
        rollouts_read: the mean of its read-outs there (its error is the read-out's bias).
        checks_true: mean offset of policy K's checks at their last step.
        belief: mean read-out of the controller's belief there.
        predicted: read-out of policy K's mean end under update K's local model.
        further: one :class:`FurtherStep` per step multiple.
        read_rmse: RMSE of the read-out at the rollouts' last step, per axis.

    """

    version: int
    checks: int
    stacked: int
    rollouts_true: np.ndarray
    rollouts_read: np.ndarray
    checks_true: np.ndarray
    belief: np.ndarray
    predicted: np.ndarray
    further: List[FurtherStep]
    read_rmse: np.ndarray


def replay_offsets(env: Any, episode: Episode) -> np.ndarray:
    """Return the offset before each action of ``episode`` replayed in ``env``: (T, d).

    Raises:
        ValueError: if a replayed step's cost differs from the recorded one (another
            environment, or settings other than the run's).

    """
    env.reset(task=int(episode.task), seed=int(episode.seed))
    offsets = []
    for t, action in enumerate(episode.actions):
        offsets.append(env.aim_offset())
        _, cost, _, _ = env.step(action)
        if abs(cost - float(episode.costs[t])) > COST_TOLERANCE:
            raise ValueError(f'episode (task {episode.task}, seed {episode.seed}) does not '
                             f'replay: step {t} costs {cost:.6g}, recorded {episode.costs[t]:.6g}')
    return np.array(offsets)


def fit_read(states: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Return W (dx + 1, d): least squares offsets ~ [states, 1] W over all (N, T) samples."""
    dx = states.shape[-1]
    X = np.concatenate([states.reshape(-1, dx), np.ones((states[..., 0].size, 1))], 1)
    W, *_ = np.linalg.lstsq(X, offsets.reshape(X.shape[0], -1), rcond=None)
    return W


def read(W: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Return the offsets (..., d) that ``W`` reads from latent states (..., dx)."""
    states = np.asarray(states, dtype=np.float64)
    return states @ W[:-1] + W[-1]


def replay_check(env: Any, agent: LatentAgent, check: Episode) -> Tuple[np.ndarray, np.ndarray]:
    """Run ``check`` again with ``agent`` and no noise; return its last offset and belief.

    Returns:
        The offset (d,) before the last action, and the controller's belief mean (dx,)
        when it chose that action.

    Raises:
        ValueError: if the agent's actions differ from the recorded ones (not a check of
            this policy in this environment).

    """
    again = run_episode(env, agent, int(check.task), int(check.seed),
                        np.zeros_like(check.actions))
    if again.actions.shape != check.actions.shape or not np.allclose(
            again.actions, check.actions, rtol=0.0, atol=ACTION_TOLERANCE):
        raise ValueError(f'check (task {check.task}, seed {check.seed}) does not replay: '
                         f'policy {agent.policy_version} acts otherwise in it (another policy, '
                         'or a run made with another --threads)')
    return again.aim_offsets[-1], agent.online.belief()[0]


def act_from_seeds(env: Any, agent: LatentAgent, task: int, seeds: Sequence[int]
                   ) -> Tuple[float, np.ndarray]:
    """Run ``agent`` noise-free from each seed; return its success rate and mean end (d,).

    The end of an episode is its offset before the last action.
    """
    ends, successes = [], 0
    noise = np.zeros((agent.gains.horizon, agent.gains.action_dim))
    for seed in seeds:
        episode = run_episode(env, agent, task, seed, noise)
        ends.append(episode.aim_offsets[-1])
        successes += bool(episode.success)
    return successes / len(seeds), np.mean(ends, 0)


def probe_steps(run_dir: Path, versions: Optional[Sequence[int]] = None,
                step_mults: Sequence[float] = (3.0, 10.0), episodes: int = 0
                ) -> Iterator[StepReport]:
    """Yield a :class:`StepReport` for each checked policy K >= 2 (``versions``: those).

    ``episodes`` > 0: each further step's policy acts from that many validation seeds.

    Raises:
        ValueError: not an LQR-FLM run, a K < 2, or a policy without its model, checks or
            predecessor's rollouts.

    """
    files = RunDir(run_dir)
    config = RunConfig.from_yaml(files.config)
    if config.loop.method != 'solar':
        raise ValueError(f'{run_dir}: a {config.loop.method} run; the step probe follows '
                         "LQR-FLM's steps (loop.method: solar)")
    env = make_env(config.env)
    checks = list(EpisodeStore(files.checks))
    versions = probed_versions(run_dir, checks, versions)
    recorded = EpisodeStore(files.episodes).load()
    seeds = [VALIDATION_SEED_BASE + i for i in range(episodes)]
    for version in versions:
        agent = load_policy(run_dir, version)
        lqr, fit = update_fit(run_dir, config, agent.model, version, recorded)
        offsets = np.stack([replay_offsets(env, e) if e.aim_offsets is None else e.aim_offsets
                            for e in episodes_of(recorded, version - 1)])
        states = fit.local.trajectories.means.numpy()
        W = fit_read(states, offsets)
        rollout_ends = read(W, states[:, -1])
        mine = episodes_of(checks, version)
        check_offsets, beliefs = (np.stack(a) for a in zip(
            *(replay_check(env, agent, e) for e in mine)))
        # the gains hold LQR-FLM's policy with the rollouts' noise scale
        policy = agent.gains.policy.with_noise_scale(1.0 / config.loop.rollout_noise)
        dx = states.shape[-1]
        mean, _ = forward_marginals(fit.dynamics, policy)
        further = []
        for mult in step_mults:
            step = solve_kl_step(fit.dynamics, fit.cost, policy,
                                 config.lqr.kl_step * lqr.horizon * mult)
            end, _ = forward_marginals(fit.dynamics, step.policy)
            result = FurtherStep(float(mult), float(step.kl), read(W, end[-1, :dx].numpy()))
            if seeds:
                gains = dataclasses.replace(agent.gains, policy=step.policy)
                result.success, result.true = act_from_seeds(
                    env, LatentAgent(agent.model, gains), config.loop.task, seeds)
            further.append(result)
        yield StepReport(
            version=version, checks=len(mine), stacked=sum(bool(e.success) for e in mine),
            rollouts_true=offsets[:, -1].mean(0), rollouts_read=rollout_ends.mean(0),
            checks_true=check_offsets.mean(0),
            belief=read(W, beliefs).mean(0), predicted=read(W, mean[-1, :dx].numpy()),
            further=further,
            read_rmse=np.sqrt(((rollout_ends - offsets[:, -1]) ** 2).mean(0)))


def report_lines(report: StepReport, scale: float) -> List[str]:
    """Return the lines printed for ``report``, offsets times ``scale`` (100: cm)."""
    def row(name: str, offset: np.ndarray, note: str = '') -> str:
        values = ' '.join(f'{v:7.2f}' for v in scale * offset)
        return f'  {name:<34} {values}  |{scale * np.linalg.norm(offset):6.2f}|{note}'
    r = report
    lines = [f'policy {r.version}: {r.stacked} of {r.checks} checks succeeded',
             row(f'rollouts of policy {r.version - 1}, true', r.rollouts_true),
             row(f'rollouts of policy {r.version - 1}, read', r.rollouts_read),
             row(f'checks of policy {r.version}, true', r.checks_true),
             row("the controller's belief, read", r.belief),
             row("LQR-FLM's prediction, read", r.predicted)]
    for step in r.further:
        lines.append(row(f'one more step of {step.mult:g}x the KL, read', step.predicted,
                         f'  ({step.kl:.0f} nats)'))
        if step.true is not None:
            lines.append(row('  the same, true', step.true,
                             f'  ({step.success:.0%} succeeded)'))
    lines.append(row('read-out RMSE (rollouts, last step)', r.read_rmse))
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, print a block per policy and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dir', type=Path, help='run directory with checks')
    parser.add_argument('--policy', type=int, nargs='+',
                        help='the policies K >= 2 to probe (default: every checked one)')
    parser.add_argument('--step-mults', type=float, nargs='+', default=[3.0, 10.0],
                        help='further steps to try, in multiples of lqr.kl_step (default 3 10)')
    parser.add_argument('--episodes', type=int, default=0,
                        help='also run each further step noise-free from this many validation'
                             ' seeds, for its true end and success (default 0: none)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads, as the run was made with (learn.run --threads;'
                             ' default 1): with others the checks may not replay exactly')
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error('--threads must be >= 1')
    if args.episodes < 0:
        parser.error('--episodes must be >= 0')
    if not all(m > 0 for m in args.step_mults):
        parser.error('--step-mults must be > 0')
    torch.set_num_threads(args.threads)
    try:
        if not RunDir(args.run_dir).config.exists():
            raise ValueError(f'{args.run_dir} is not a run directory (no config.yaml)')
        scale = 100.0 if RunConfig.from_yaml(RunDir(args.run_dir).config).env.get(
            'name') == 'sawyer_stack' else 1.0
        print(f'offsets at the last step ({"cm" if scale == 100 else "env units"}, one column '
              'per axis, then |distance|)', flush=True)
        for report in probe_steps(args.run_dir, args.policy, args.step_mults, args.episodes):
            print('\n'.join(report_lines(report, scale)), flush=True)
    except (OSError, ValueError) as error:
        print(f'solar_ros.step_probe: cannot probe {args.run_dir}: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
