"""How well LQR-FLM's cost ranks the states a policy reaches: the fitted cost against the true one.

LQR-FLM moves each policy towards the minimum of a quadratic cost over the latent state
and action (SOLAR paper; :mod:`solar_ros.core.regression`). For policy K (K >= 2) that cost
is fitted again here exactly as the learner fitted it when it made K: in model K, on the
rollouts of policy K-1 (with ``loop.cost_fit_episodes`` earlier episodes;
``loop.lqr_cost: model`` takes the model's cost head instead). It is then scored on policy
K's checks (``loop.check_rollouts`` noise-free episodes that no fit saw), whose smoothed
latent means it is evaluated at: the Pearson correlation of the fitted and the true cost of
every step, over all steps, over the last ``NEAR_GOAL_STEPS`` and at the last step alone,
with the spread (std) of the true cost there. A correlation near 1 over all steps and near
0 at the end says the cost ranks the approach but not where the block ends, so LQR-FLM's
steps cannot tell a policy that stacks from one that lets go a few centimetres off::

    python -m solar_ros.learn.cost_probe RUN_DIR [--policy K [K ...]]
"""

import argparse
from dataclasses import dataclass
from pathlib import Path
import sys
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from solar_ros.core.cost import QuadraticCost
from solar_ros.core.lqr_flm import LocalFit, LQRFLM
from solar_ros.core.model import SolarModel
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode, EpisodeStore
from solar_ros.learn.learner import cost_residuals, cost_samples, episode_batch, new_lqr
from solar_ros.learn.run_dir import RunDir
import torch

NEAR_GOAL_STEPS = 10  # the last steps of an episode, where the block is let go


@dataclass
class CostScores:
    """Correlation of a fitted cost with the true one on held-out episodes.

    Attributes:
        all_steps: over every step of every episode.
        near_goal: over the last ``NEAR_GOAL_STEPS`` steps.
        last_step: over the last step (one sample per episode).
        last_step_std: std of the true cost at the last step, cost units.
        episodes: number of episodes scored.

    """

    all_steps: float
    near_goal: float
    last_step: float
    last_step_std: float
    episodes: int


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Return the Pearson correlation of two equal-sized arrays (NaN if either is constant)."""
    a, b = np.ravel(a), np.ravel(b)
    if a.std() == 0 or b.std() == 0:
        return float('nan')
    return float(np.corrcoef(a, b)[0, 1])


def score_cost(cost: QuadraticCost, states: torch.Tensor, actions: torch.Tensor,
               true_costs: np.ndarray) -> CostScores:
    """Score ``cost`` (T steps) against the true costs of held-out episodes.

    Args:
        cost: the quadratic cost per step over x = [s; a].
        states: (N, T, dx) latent states (smoothed means).
        actions: (N, T, du) actions taken.
        true_costs: (N, T) the environment's cost of each step.

    """
    x = torch.cat([torch.as_tensor(states, dtype=torch.float64),
                   torch.as_tensor(actions, dtype=torch.float64)], -1)
    fitted = cost.evaluate(x).numpy()
    true_costs = np.asarray(true_costs, dtype=np.float64)
    if fitted.shape != true_costs.shape:
        raise ValueError(f'true_costs: expected shape {fitted.shape}, got {true_costs.shape}')
    last = min(NEAR_GOAL_STEPS, true_costs.shape[1])
    return CostScores(all_steps=correlation(fitted, true_costs),
                      near_goal=correlation(fitted[:, -last:], true_costs[:, -last:]),
                      last_step=correlation(fitted[:, -1], true_costs[:, -1]),
                      last_step_std=float(true_costs[:, -1].std()),
                      episodes=len(true_costs))


def episodes_of(episodes: Sequence[Episode], version: int) -> List[Episode]:
    """Return the episodes of policy ``version`` among ``episodes``, in their order."""
    return [e for e in episodes if e.policy_version == version]


def probed_versions(run_dir: Path, checks: Sequence[Episode],
                    versions: Optional[Sequence[int]]) -> List[int]:
    """Return the policies K >= 2 to probe: ``versions``, or (None) every checked one.

    Args:
        run_dir: the run directory.
        checks: the run's check episodes.
        versions: the policies asked for; None: every policy from 2 on with checks and a
            model, in order.

    Raises:
        ValueError: a K < 2, or a policy without its model or checks; (``versions`` None)
            no such policy.

    """
    files = RunDir(run_dir)
    checked = sorted({e.policy_version for e in checks if e.policy_version >= 2})
    if versions is None:
        versions = [v for v in checked if files.model(v).exists()]
        if not versions:
            raise ValueError(f'{run_dir}: no checked policy after the first '
                             '(loop.check_rollouts: 0?)')
    for version in versions:
        if version < 2:
            raise ValueError(f'policy {version}: the first policy with a fitted cost is 2 '
                             '(the first policy made by an LQR-FLM step from a fitted model)')
        if not files.model(version).exists():
            raise ValueError(f'{files.model(version)} does not exist')
        if version not in checked:
            raise ValueError(f'{run_dir}: no checks of policy {version} (loop.check_rollouts)')
    return list(versions)


def update_fit(run_dir: Path, config: RunConfig, model: SolarModel, version: int,
               episodes: Sequence[Episode]) -> Tuple[LQRFLM, LocalFit]:
    """Return LQR-FLM and the local fit (dynamics, weighted cost) that made policy ``version``.

    The fit is the learner's: in model K = ``version``, on the rollouts of policy K-1 with
    the ``loop.cost_fit_episodes`` episodes before them (``loop.lqr_cost: model``: the
    model's cost head; ``residuals``: the read-out of their recorded residuals).

    Args:
        run_dir: the run directory (for messages).
        config: the run's settings.
        model: model ``version``, the one the policy was made in.
        version: K >= 2.
        episodes: the run's episodes in the order recorded.

    Raises:
        ValueError: if the rollouts of policy K-1 are not in the run.

    """
    c = model.config
    first = next((i for i, e in enumerate(episodes) if e.policy_version == version - 1), None)
    if first is None:
        raise ValueError(f'{run_dir}: no rollouts of policy {version - 1}')
    mine = episodes_of(episodes, version - 1)
    rollouts = episode_batch(mine)
    count = config.loop.cost_fit_episodes
    samples = cost_samples(model, episodes[max(0, first - count):first]) if count else None
    lqr = new_lqr(c, config.lqr)
    if config.loop.lqr_cost == 'model':
        lqr.known_cost = QuadraticCost.tiled(*model.cost_params(), c.horizon)
    fit = lqr.fit(model.smoother(rollouts.images, rollouts.actions), rollouts.actions,
                  rollouts.costs, prior=model.q, cost_samples=samples,
                  residuals=cost_residuals(config, mine))
    return lqr, fit


def lqr_cost(run_dir: Path, config: RunConfig, model: SolarModel, version: int,
             episodes: Sequence[Episode]) -> QuadraticCost:
    """Return the cost LQR-FLM fitted to make policy ``version``, unweighted (T steps).

    Arguments and errors as for :func:`update_fit`.
    """
    lqr, fit = update_fit(run_dir, config, model, version, episodes)
    return fit.cost.weighted(1.0 / lqr.step_weights())


def probe_policies(run_dir: Path, versions: Optional[Sequence[int]] = None
                   ) -> Iterator[Tuple[int, CostScores]]:
    """Yield (K, scores) of the cost behind each policy K on that policy's checks.

    Args:
        run_dir: the run directory.
        versions: the policies K >= 2 to score; None: every policy from 2 on that has checks
            and a model, in order.

    Raises:
        ValueError: if the run lacks a policy's model, its checks or its predecessor's
            rollouts, a K < 2, or (``versions`` None) there is no such policy.

    """
    files = RunDir(run_dir)
    config = RunConfig.from_yaml(files.config)
    checks = list(EpisodeStore(files.checks))
    versions = probed_versions(run_dir, checks, versions)
    episodes = EpisodeStore(files.episodes).load()
    for version in versions:
        mine = episodes_of(checks, version)
        model = SolarModel.load(files.model(version))
        cost = lqr_cost(run_dir, config, model, version, episodes)
        batch = episode_batch(mine)
        yield version, score_cost(cost, model.infer(batch.images, batch.actions).means,
                                  batch.actions, batch.costs)


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, print a line per policy and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dir', type=Path, help='run directory with checks')
    parser.add_argument('--policy', type=int, nargs='+',
                        help='the policies K >= 2 to probe (default: every checked one)')
    args = parser.parse_args(argv)
    try:
        if not RunDir(args.run_dir).config.exists():
            raise ValueError(f'{args.run_dir} is not a run directory (no config.yaml)')
        scores = probe_policies(args.run_dir, args.policy)
        print(f"correlation of LQR-FLM's fitted cost with the true cost on each policy's "
              f'checks (last {NEAR_GOAL_STEPS} steps: near the goal)')
        print(f'{"policy":>6} {"checks":>6} {"all steps":>9} {"near goal":>9} '
              f'{"last step":>9} {"true cost std, last step":>24}')
        for version, s in scores:
            print(f'{version:6d} {s.episodes:6d} {s.all_steps:9.2f} {s.near_goal:9.2f} '
                  f'{s.last_step:9.2f} {s.last_step_std:24.3f}', flush=True)
    except (OSError, ValueError) as error:
        print(f'solar_ros.cost_probe: cannot probe {args.run_dir}: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
