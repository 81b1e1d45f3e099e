"""Evaluate a run's policy on fresh seeds: success rate, final distance and cost per task.

    python -m solar_ros.learn.evaluate RUN_DIR [--episodes 50] [--tasks 1 2 3] [--noise]
                                       [--out DIR] [--gifs]

Loads the run's settings (``config.yaml``) and its newest policy (or ``--policy N``), and
runs it on seeds ``EVAL_SEED_BASE + i``, which no training episode uses. By default the
exploration noise is off (the mean action K_t s_t + k_t); ``--noise`` keeps it. Success
rates come with their 95% Wilson score interval (``success_low``, ``success_high``). The table
is printed and written to ``evaluation_policy_NNNN.csv`` in ``--out`` (default: RUN_DIR),
with one row per episode in ``evaluation_policy_NNNN_episodes.csv``: its seed, success,
final distance and the environment's other numbers on how it ended (for the arm: where the
block was let go and where it came to rest, whether it fell off the target, how far the
reset moved the target, :class:`~solar_ros.sim.sawyer_env.SawyerStackEnv`), whose medians
and 90th percentiles (counts for yes-or-no ones) are printed too, with those over the
misses beside them (:func:`ending_lines`). ``--gifs``
also writes each episode there as a GIF, the camera beside a wide view, to watch the policy.
"""

import argparse
import csv
from pathlib import Path
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from solar_ros.core.checkpoint import load_checkpoint
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.model import SolarModel
from solar_ros.core.online import episode_noise
from solar_ros.learn.agent import LatentAgent, make_agent, MPCAgent
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode
from solar_ros.learn.learner import LEARNER_KIND, LEARNER_VERSION
from solar_ros.learn.rollout import run_episode
from solar_ros.learn.run_dir import RunDir
from solar_ros.learn.video import compose, wide_frames, write_gif
from solar_ros.sim.environments import make_env

EVAL_SEED_BASE = 900_000_000
DEFAULT_EPISODES = 50
COLUMNS = ['task', 'episodes', 'success_rate', 'success_low', 'success_high',
           'final_distance', 'mean_cost', 'noise']


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> Tuple[float, float]:
    """Return the Wilson score interval (low, high) of a success rate (95% for z = 1.96).

    Raises:
        ValueError: ``trials`` < 1 or ``successes`` outside [0, trials].
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f'need 0 <= successes <= trials and trials >= 1, '
                         f'got {successes} of {trials}')
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * np.sqrt(
        rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def format_rate(row: Dict[str, float]) -> str:
    """Return a row's success as ``80% [67-89%] of 50``."""
    return (f'{row["success_rate"]:.0%} [{row["success_low"]:.0%}-{row["success_high"]:.0%}]'
            f' of {row["episodes"]}')


def load_gains(run_dir: Path, version: Optional[int] = None
               ) -> Tuple[RunConfig, Path, TimeVaryingGains]:
    """Return a run's settings, and the model checkpoint and gains of one of its policies.

    Args:
        run_dir: a run directory or a pretrained folder.
        version: the policy; None: the newest complete one.

    Raises:
        FileNotFoundError: the folder, its config or the policy's checkpoints are missing.
        ValueError: a file is not what it should be (with the file named).

    """
    files = RunDir(run_dir)
    if version is None:
        done = files.completed_policies()
        if not done:
            raise FileNotFoundError(f'{files.checkpoints}: no learner checkpoint')
        version = done[-1]
    if not files.learner(version).is_file():
        raise FileNotFoundError(f'{files.learner(version)}: no such policy (complete ones: '
                                f'{files.completed_policies()})')
    config = RunConfig.from_yaml(files.config)
    state = load_checkpoint(files.learner(version), LEARNER_KIND, LEARNER_VERSION)
    return config, files.model(version), TimeVaryingGains.from_dict(state['gains'])


def load_policy(run_dir: Path, version: Optional[int] = None
                ) -> Union[LatentAgent, MPCAgent]:
    """Return the agent of policy ``version`` (default: newest) of the run's method."""
    config, model_path, gains = load_gains(run_dir, version)
    return make_agent(config.loop.method, SolarModel.load(model_path), gains, config.mpc)


class EndingRecorder:
    """Wrap an environment and keep the numbers of each episode's last ``info``.

    Yes-or-no entries (such as the arm's ``fell_off``) are kept as 1.0 or 0.0 and their
    names in :attr:`flags`, so that :func:`ending_lines` counts them.
    """

    def __init__(self, env: Any) -> None:
        """Forward everything to ``env``; :attr:`endings` and :attr:`flags` start empty."""
        self.env = env
        self.endings: List[Dict[str, float]] = []
        self.flags: List[str] = []
        self._episode: Dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        """Return the wrapped environment's attribute ``name``."""
        return getattr(self.env, name)

    def reset(self, task: int, seed: int) -> np.ndarray:
        """Start an episode of the environment; its ending will carry ``task`` and ``seed``."""
        self._episode = {'task': task, 'seed': seed}
        return self.env.reset(task=task, seed=seed)

    def step(self, action: np.ndarray) -> Tuple[np.ndarray, float, bool, Dict[str, Any]]:
        """Step the environment; at the episode's end keep its scalar ``info`` entries."""
        image, cost, done, info = self.env.step(action)
        if done:
            self.endings.append({**self._episode, **{
                key: float(value) for key, value in info.items()
                if isinstance(value, (bool, np.bool_, int, float, np.floating))
                and key != 'step'}})
            self.flags += [key for key, value in info.items()
                           if isinstance(value, (bool, np.bool_)) and key != 'success'
                           and key not in self.flags]
        return image, cost, done, info


def evaluate(env, agent: Union[LatentAgent, MPCAgent], task: int, episodes: int,
             noise: bool, seed_base: int = EVAL_SEED_BASE
             ) -> Tuple[Dict[str, float], List[Episode]]:
    """Run ``episodes`` episodes of ``task`` from seeds ``seed_base + i``.

    Returns:
        The row of :data:`COLUMNS` and the episodes.

    Raises:
        ValueError: ``episodes`` < 1.

    """
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    shape = (env.horizon, env.action_dim)
    runs = [run_episode(env, agent, task, seed,
                        episode_noise(*shape, seed) if noise else np.zeros(shape))
            for seed in range(seed_base, seed_base + episodes)]
    low, high = wilson_interval(sum(e.success for e in runs), episodes)
    row = {'task': task, 'episodes': episodes,
           'success_rate': float(np.mean([e.success for e in runs])),
           'success_low': low, 'success_high': high,
           'final_distance': float(np.mean([e.final_distance for e in runs])),
           'mean_cost': float(np.mean([e.costs.sum() for e in runs])), 'noise': noise}
    return row, runs


def ending_lines(endings: List[Dict[str, float]], flags: Sequence[str] = ()) -> List[str]:
    """Return one line per number of the episodes' endings (not task, seed or success).

    Each line reads ``name: median, 90th percentile`` over every episode, then, where some
    episodes failed and some succeeded, ``; misses median`` over the failed ones: a number
    whose misses' median stands apart (a target moved farther by the reset, a block let go
    more tilted) says what the misses have in common. A name in ``flags`` (a yes-or-no
    entry, 1.0 or 0.0) is counted instead: ``name: 12 of 50; misses 12 of 17`` (a miss
    whose block fell off the target, against one that rests on it too far off).
    """
    misses = [e for e in endings if not e['success']]
    some_missed = 0 < len(misses) < len(endings)
    lines = []
    for key in [k for k in endings[0] if k not in ('task', 'seed', 'success')]:
        values = [e[key] for e in endings]
        if key in flags:
            line = f'{key}: {sum(v > 0 for v in values)} of {len(values)}'
            if some_missed:
                line += f'; misses {sum(e[key] > 0 for e in misses)} of {len(misses)}'
        else:
            line = f'{key}: {np.median(values):.3f}, {np.percentile(values, 90):.3f}'
            if some_missed:
                line += f'; misses {np.median([e[key] for e in misses]):.3f}'
        lines.append(line)
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, evaluate, print and save the table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dir', type=Path, help='run directory of a SOLAR run')
    parser.add_argument('--episodes', type=int, default=DEFAULT_EPISODES,
                        help='episodes per task')
    parser.add_argument('--tasks', type=int, nargs='+', help="tasks (default: the run's)")
    parser.add_argument('--policy', type=int, help='policy version (default: newest)')
    parser.add_argument('--noise', action='store_true', help='keep the exploration noise')
    parser.add_argument('--out', type=Path, help='folder for the table (default: RUN_DIR)')
    parser.add_argument('--gifs', action='store_true',
                        help='also write a GIF of every episode (camera and wide view)')
    args = parser.parse_args(argv)
    if args.episodes < 1:
        print(f'solar_ros.evaluate: --episodes must be >= 1, got {args.episodes}',
              file=sys.stderr)
        return 2
    try:
        config = RunConfig.from_yaml(RunDir(args.run_dir).config)
        agent = load_policy(args.run_dir, args.policy)
    except (OSError, ValueError, RuntimeError) as error:
        print(f'solar_ros.evaluate: cannot load {args.run_dir}: {error}', file=sys.stderr)
        return 2
    env = EndingRecorder(make_env(config.env))
    out = args.out or args.run_dir
    out.mkdir(parents=True, exist_ok=True)
    version = agent.policy_version
    rows = []
    for task in args.tasks or [config.loop.task]:
        try:
            row, runs = evaluate(env, agent, task, args.episodes, args.noise)
        except ValueError as error:  # e.g. a task the environment does not have
            print(f'solar_ros.evaluate: task {task}: {error}', file=sys.stderr)
            return 2
        rows.append(row)
        for episode in runs if args.gifs else []:
            gif = out / f'policy_{version:04d}_task{task}_seed{episode.seed}.gif'
            write_gif(compose(episode, 4, wide_frames(env, episode)), gif)
            print(f'  task {task} seed {episode.seed}: success {episode.success}, final '
                  f'distance {episode.final_distance:.3f} -> {gif}')
    path, endings = RunDir(out).evaluation(version), RunDir(out).evaluation_episodes(version)
    with open(path, 'w', newline='') as out:
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    columns = list(env.endings[0])  # task, seed, then the environment's numbers
    with open(endings, 'w', newline='') as table:
        writer = csv.DictWriter(table, columns)
        writer.writeheader()
        writer.writerows(env.endings)
    print(f'policy {version} of {args.run_dir}, '
          f'exploration noise {"on" if args.noise else "off"}:')
    for row in rows:
        print(f'  task {row["task"]}: success {format_rate(row)}, '
              f'final distance {row["final_distance"]:.3f}, cost {row["mean_cost"]:.3f}; '
              "how the episodes ended (median and 90th percentile, or a count; the misses' "
              'beside):')
        for line in ending_lines([e for e in env.endings if e['task'] == row['task']],
                                 env.flags):
            print(f'    {line}')
    print(f'written to {path} and {endings}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
