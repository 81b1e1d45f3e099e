"""Evaluate a run's policy on fresh seeds: success rate, final distance and cost per task.

    python -m solar_ros.learn.evaluate RUN_DIR [--episodes 20] [--tasks 1 2 3] [--noise]

Loads the run's settings (``config.yaml``) and its newest policy (or ``--policy N``), and
runs it on seeds ``EVAL_SEED_BASE + i``, which no training episode uses. By default the
exploration noise is off (the mean action K_t s_t + k_t); ``--noise`` keeps it. The table
is printed and written to ``RUN_DIR/evaluation_policy_NNNN.csv``.
"""

import argparse
import csv
from pathlib import Path
import sys
from typing import Dict, List, Optional, Union

import numpy as np
from solar_ros.core.checkpoint import load_checkpoint
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.model import SolarModel
from solar_ros.learn.agent import LatentAgent, make_agent, MPCAgent
from solar_ros.learn.config import RunConfig
from solar_ros.learn.learner import LEARNER_KIND, LEARNER_VERSION
from solar_ros.sim.environments import make_env
import torch

EVAL_SEED_BASE = 900_000_000
COLUMNS = ['task', 'episodes', 'success_rate', 'final_distance', 'mean_cost', 'noise']


def load_policy(run_dir: Path, version: Optional[int] = None
                ) -> Union[LatentAgent, MPCAgent]:
    """Return the agent of policy ``version`` (default: newest) of the run's method."""
    checkpoints = run_dir / 'checkpoints'
    if version is None:
        done = sorted(checkpoints.glob('learner_*.ckpt'))
        if not done:
            raise FileNotFoundError(f'{checkpoints}: no learner checkpoint')
        version = int(done[-1].stem.split('_')[1])
    state = load_checkpoint(checkpoints / f'learner_{version:04d}.ckpt', LEARNER_KIND,
                            LEARNER_VERSION)
    model = SolarModel.load(checkpoints / f'model_{version:04d}.ckpt')
    config = RunConfig.from_yaml(run_dir / 'config.yaml')
    return make_agent(config.loop.method, model, TimeVaryingGains.from_dict(state['gains']),
                      config.mpc)


def evaluate(env, agent: Union[LatentAgent, MPCAgent], task: int, episodes: int,
             noise: bool) -> Dict[str, float]:
    """Run ``episodes`` episodes of ``task`` and return the row of :data:`COLUMNS`."""
    successes, distances, costs = [], [], []
    for i in range(episodes):
        seed = EVAL_SEED_BASE + i
        image = env.reset(task=task, seed=seed)
        shape = (env.horizon, env.action_dim)
        eps = (torch.randn(*shape, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64).numpy() if noise else np.zeros(shape))
        agent.reset(eps)
        total, info = 0.0, {}
        for t in range(env.horizon):
            image, cost, done, info = env.step(agent.act(image))
            total += cost
            if t + 1 < env.horizon:
                agent.observe_action(np.asarray(info['action']))
            if done:
                break
        successes.append(bool(info.get('success', False)))
        distances.append(float(info['final_distance']))
        costs.append(total)
    return {'task': task, 'episodes': episodes, 'success_rate': float(np.mean(successes)),
            'final_distance': float(np.mean(distances)), 'mean_cost': float(np.mean(costs)),
            'noise': noise}


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, evaluate, print and save the table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dir', type=Path, help='run directory of a SOLAR run')
    parser.add_argument('--episodes', type=int, default=20, help='episodes per task')
    parser.add_argument('--tasks', type=int, nargs='+', help="tasks (default: the run's)")
    parser.add_argument('--policy', type=int, help='policy version (default: newest)')
    parser.add_argument('--noise', action='store_true', help='keep the exploration noise')
    args = parser.parse_args(argv)
    try:
        config = RunConfig.from_yaml(args.run_dir / 'config.yaml')
        agent = load_policy(args.run_dir, args.policy)
    except (OSError, ValueError, RuntimeError) as error:
        print(f'solar_ros.evaluate: cannot load {args.run_dir}: {error}', file=sys.stderr)
        return 2
    env = make_env(config.env)
    rows = [evaluate(env, agent, task, args.episodes, args.noise)
            for task in (args.tasks or [config.loop.task])]
    version = agent.policy_version
    path = args.run_dir / f'evaluation_policy_{version:04d}.csv'
    with open(path, 'w', newline='') as out:
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f'policy {version} of {args.run_dir}, '
          f'exploration noise {"on" if args.noise else "off"}:')
    for row in rows:
        print(f'  task {row["task"]}: success {row["success_rate"]:.0%} of {row["episodes"]}, '
              f'final distance {row["final_distance"]:.3f}, cost {row["mean_cost"]:.3f}')
    print(f'written to {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
