"""Plot learning curves of one or more runs: one line per run against episodes used.

    python -m solar_ros.learn.plot RUN_DIR [RUN_DIR ...] [--labels A B ...] [--out FILE]

Reads each run's ``metrics.csv`` (one row per policy update: the episodes used so far and
the mean final distance, success rate and mean cost of the rollouts behind the update)
and draws three panels, final distance, success rate and cost per episode, against the
number of episodes: solid lines for the training rollouts (exploration noise on). A run
validated with ``solar_ros.learn.validate`` also gets a dashed line: every policy by its
mean action on the validation seeds (``validation.csv``), at the episodes it was learned
from. Writes ``FILE`` (default: ``learning_curve.png`` in the first run directory).
"""

import argparse
import csv
from pathlib import Path
import sys
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
from solar_ros.learn.run_dir import RunDir  # noqa: E402

PANELS = (('final_distance', 'mean final distance'), ('success_rate', 'success rate'),
          ('mean_cost', 'mean cost per episode'))


def read_metrics(run_dir: Path) -> Dict[str, List[float]]:
    """Return the columns of ``run_dir/metrics.csv`` as float lists (empty run: empty lists)."""
    path = RunDir(run_dir).metrics
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no metrics (is {run_dir} a run directory?)')
    with open(path, newline='') as file:
        rows = list(csv.DictReader(file))
    columns = ['episodes'] + [name for name, _ in PANELS]
    return {name: [float(row[name]) for row in rows] for name in columns}


def read_validation(run_dir: Path) -> Dict[str, List[float]]:
    """Return ``validation.csv`` by policy: the episodes it was learned from and PANELS.

    Empty lists when the run has not been validated (``solar_ros.learn.validate``).
    """
    columns = ['episodes'] + [name for name, _ in PANELS]
    path = RunDir(run_dir).validation
    if not path.is_file():
        return {name: [] for name in columns}
    with open(RunDir(run_dir).metrics, newline='') as file:
        learned_from = {int(row['policy']): float(row['episodes'])
                        for row in csv.DictReader(file)}
    with open(path, newline='') as file:
        rows = [row for row in csv.DictReader(file) if int(row['policy']) in learned_from]
    return {'episodes': [learned_from[int(row['policy'])] for row in rows],
            **{name: [float(row[name]) for row in rows] for name, _ in PANELS}}


def plot_runs(run_dirs: Sequence[Path], labels: Sequence[str], out: Path) -> Path:
    """Draw the curves of ``run_dirs`` named ``labels`` into the PNG ``out``; return it."""
    figure, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4))
    for run_dir, label in zip(run_dirs, labels):
        metrics, validation = read_metrics(run_dir), read_validation(run_dir)
        for axis, (name, _) in zip(axes, PANELS):
            line, = axis.plot(metrics['episodes'], metrics[name], marker='o', markersize=3,
                              label=f'{label} (rollouts)')
            if validation['episodes']:
                axis.plot(validation['episodes'], validation[name], marker='s',
                          markersize=3, linestyle='--', color=line.get_color(),
                          label=f'{label} (validation, no noise)')
    for axis, (name, title) in zip(axes, PANELS):
        axis.set_title(title)
        axis.set_xlabel('episodes')
        axis.grid(alpha=0.3)
        if name == 'success_rate':
            axis.set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize='small')
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, plot, and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dirs', type=Path, nargs='+', help='run directories')
    parser.add_argument('--labels', nargs='+', help='one label per run (default: names)')
    parser.add_argument('--out', type=Path, help='PNG to write')
    args = parser.parse_args(argv)
    labels = args.labels or [run_dir.name for run_dir in args.run_dirs]
    if len(labels) != len(args.run_dirs):
        print(f'solar_ros.plot: {len(labels)} labels for {len(args.run_dirs)} runs',
              file=sys.stderr)
        return 2
    try:
        out = plot_runs(args.run_dirs, labels,
                        args.out or args.run_dirs[0] / 'learning_curve.png')
    except (OSError, KeyError, ValueError) as error:
        print(f'solar_ros.plot: {error}', file=sys.stderr)
        return 2
    print(f'written to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
