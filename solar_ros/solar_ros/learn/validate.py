"""Pick a run's best policy on validation seeds, apart from the seeds that report it.

    python -m solar_ros.learn.validate RUN_DIR [--episodes 50] [--policy K [K ...] | last]

Runs every policy of the run after the random one (or only those named by ``--policy``;
``last`` is the newest, the one a finished run ends on), by its mean action, on seeds
``VALIDATION_SEED_BASE + i`` (used neither by training nor by
:mod:`solar_ros.learn.evaluate`), writes one row per policy to ``RUN_DIR/validation.csv``
(after each policy; rows of policies validated before and not run again are kept) and
names the best of the table: the highest success rate, then the smallest mean final distance.
Report that policy with ``python -m solar_ros.learn.evaluate RUN_DIR --policy K``; choosing
it on the evaluation seeds themselves would overstate it.
"""

import argparse
import csv
from pathlib import Path
import sys
from typing import Dict, List, Optional

from solar_ros.learn.config import RunConfig
from solar_ros.learn.evaluate import DEFAULT_EPISODES, evaluate, format_rate, load_policy
from solar_ros.learn.run_dir import RunDir
from solar_ros.sim.environments import make_env

VALIDATION_SEED_BASE = 800_000_000
COLUMNS = ['policy', 'episodes', 'success_rate', 'success_low', 'success_high',
           'final_distance', 'mean_cost']


def best_policy(rows: List[Dict[str, float]]) -> int:
    """Return the policy of ``rows`` with the highest success rate, then smallest distance."""
    if not rows:
        raise ValueError('no policies to choose from')
    return int(max(rows, key=lambda r: (r['success_rate'], -r['final_distance']))['policy'])


def chosen_policies(requested: Optional[List[str]], versions: List[int]) -> List[int]:
    """Return the policies of ``requested`` (numbers or ``last``) among ``versions``.

    ``requested`` None means every one of ``versions`` (the learned policies, ascending).
    Raises ValueError for a word that is not a number or ``last``, or a policy not saved.
    """
    if requested is None:
        return versions
    chosen = set()
    for word in requested:
        if word == 'last':
            chosen.add(versions[-1])
            continue
        try:
            version = int(word)
        except ValueError:
            raise ValueError(f'--policy takes numbers or "last", got {word!r}') from None
        if version not in versions:
            raise ValueError(f'no learned policy {version} (saved: {versions})')
        chosen.add(version)
    return sorted(chosen)


def read_table(path: Path) -> Dict[int, Dict[str, float]]:
    """Return the rows of a ``validation.csv`` by policy (empty if there is none yet)."""
    if not path.exists():
        return {}
    with open(path, newline='') as table:
        reader = csv.DictReader(table)
        if reader.fieldnames != COLUMNS:
            raise ValueError(f'{path} has columns {reader.fieldnames}, not {COLUMNS}')
        rows = [{k: float(v) for k, v in row.items()} for row in reader]
    return {int(row['policy']): row for row in rows}


def write_table(path: Path, table: Dict[int, Dict[str, float]]) -> List[Dict[str, float]]:
    """Write ``table`` (rows by policy) to ``path`` in policy order; return its rows."""
    rows = [table[version] for version in sorted(table)]
    with open(path, 'w', newline='') as out:
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        writer.writerows({**row, 'policy': int(row['policy']),
                          'episodes': int(row['episodes'])} for row in rows)
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, validate the policies, write the table and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dir', type=Path, help='run directory of a SOLAR run')
    parser.add_argument('--episodes', type=int, default=DEFAULT_EPISODES,
                        help='episodes per policy')
    parser.add_argument('--policy', nargs='+', metavar='K',
                        help='validate only these policies (numbers, or "last")')
    args = parser.parse_args(argv)
    files = RunDir(args.run_dir)
    saved = [v for v in files.completed_policies() if v > 0]
    try:
        if args.episodes < 1:
            raise ValueError(f'--episodes must be >= 1, got {args.episodes}')
        config = RunConfig.from_yaml(files.config)
        if not saved:
            raise ValueError('no policy after the random one yet')
        versions = chosen_policies(args.policy, saved)
        table = {k: row for k, row in read_table(files.validation).items() if k in saved}
    except (OSError, ValueError) as error:
        print(f'solar_ros.validate: cannot use {args.run_dir}: {error}', file=sys.stderr)
        return 2
    env = make_env(config.env)
    for version in versions:
        row, _ = evaluate(env, load_policy(args.run_dir, version), config.loop.task,
                          args.episodes, noise=False, seed_base=VALIDATION_SEED_BASE)
        table[version] = {'policy': version, **{k: row[k] for k in COLUMNS[1:]}}
        rows = write_table(files.validation, table)  # a stopped validation keeps its rows
        print(f'policy {version}: success {format_rate(row)}, final distance '
              f'{row["final_distance"]:.3f}, cost {row["mean_cost"]:.3f}', flush=True)
    print(f'best on the validation seeds: policy {best_policy(rows)} '
          f'(table in {files.validation})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
