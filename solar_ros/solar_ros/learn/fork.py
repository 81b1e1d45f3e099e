"""Copy a run up to one of its policies, to go on from there with other settings.

    python -m solar_ros.learn.fork RUN_DIR NEW_RUN_DIR [--policy 1]
    python -m solar_ros.learn.run --config NEW_RUN_DIR/config.yaml --run-dir NEW_RUN_DIR \
        --set loop.refit_updates=150

The new run directory gets what policy K was made from: the settings, the model and
learner checkpoints of policies 0 to K, the episodes those updates fitted, the checks of
policies 0 to K-1, the metrics rows up to K and the probe's episodes. ``learn.run`` on it
resumes at policy K: it records policy K's rollouts on the same seeds as the original run
(the same episodes, on the same machine and threads), and from there on follows the
settings given to it. The default K = 1 is the policy right after pretraining, the longest
part of a run, so two settings of the loop, LQR-FLM or cost fit are compared from one
pretrained model. Model settings cannot change (the checkpoints hold the networks; the run
refuses them), except the objective's weights, which hold no parameters
(``model.residual_std``: ``SolarModel.reweigh``); the TensorBoard logs, validation and
evaluation tables are not copied.
"""

import argparse
import csv
from pathlib import Path
import shutil
import sys
from typing import List, Optional

from solar_ros.core.checkpoint import load_checkpoint
from solar_ros.learn.episodes import Episode, EPISODE_GLOB
from solar_ros.learn.learner import LEARNER_KIND, LEARNER_VERSION
from solar_ros.learn.run_dir import RunDir


def fork_run(source: Path, target: Path, policy: int = 1) -> int:
    """Copy run ``source`` up to ``policy`` into the new directory ``target``.

    Returns the number of episodes copied (those the updates up to ``policy`` fitted).

    Raises:
        ValueError: ``target`` exists and is not empty, ``source`` has no completed
            ``policy``, or it has fewer episodes than that policy was made from.
    """
    src, target = RunDir(source), Path(target)
    if target.exists() and any(target.iterdir()):
        raise ValueError(f'{target} exists and is not empty')
    if policy not in src.completed_policies():
        raise ValueError(f'{src.root} has no completed policy {policy} '
                         f'(completed: {src.completed_policies()})')
    used = int(load_checkpoint(src.learner(policy), LEARNER_KIND,
                               LEARNER_VERSION)['episodes_used'])
    episodes = sorted(src.episodes.glob(EPISODE_GLOB))  # completion order, as the store
    if len(episodes) < used:
        raise ValueError(f'policy {policy} of {src.root} was made from {used} episodes, '
                         f'only {len(episodes)} are in {src.episodes}')
    # Built beside the target and renamed at the end: an interrupted fork leaves no run.
    dst = RunDir(target.parent / f'.{target.name}.partial')
    shutil.rmtree(dst.root, ignore_errors=True)
    dst.episodes.mkdir(parents=True)
    dst.checkpoints.mkdir()
    shutil.copy2(src.config, dst.config)
    for version in range(policy + 1):
        shutil.copy2(src.model(version), dst.model(version))
        shutil.copy2(src.learner(version), dst.learner(version))
    for path in episodes[:used]:
        shutil.copy2(path, dst.episodes / path.name)
    dst.checks.mkdir()
    for path in sorted(src.checks.glob(EPISODE_GLOB)):
        if Episode.load(path).policy_version < policy:
            shutil.copy2(path, dst.checks / path.name)
    if src.probe.exists():
        shutil.copy2(src.probe, dst.probe)
    if src.metrics.exists():
        with open(src.metrics, newline='') as table:
            reader = csv.DictReader(table)
            rows = [row for row in reader if int(row['policy']) <= policy]
            columns = reader.fieldnames
        with open(dst.metrics, 'w', newline='') as out:
            writer = csv.DictWriter(out, columns)
            writer.writeheader()
            writer.writerows(rows)
    if target.exists():
        target.rmdir()
    dst.root.rename(target)
    return used


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, fork the run and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dir', type=Path, help='run directory to copy from')
    parser.add_argument('new_run_dir', type=Path, help='new run directory (absent or empty)')
    parser.add_argument('--policy', type=int, default=1,
                        help='copy up to this policy (default 1: right after pretraining)')
    args = parser.parse_args(argv)
    try:
        used = fork_run(args.run_dir, args.new_run_dir, args.policy)
    except (OSError, ValueError) as error:
        print(f'solar_ros.fork: cannot fork {args.run_dir}: {error}', file=sys.stderr)
        return 2
    print(f'copied policies 0-{args.policy} and the {used} episodes they were made from to '
          f'{args.new_run_dir}; go on with\n  python -m solar_ros.learn.run --config '
          f'{RunDir(args.new_run_dir).config} --run-dir {args.new_run_dir} [--set ...]')
    return 0


if __name__ == '__main__':
    sys.exit(main())
