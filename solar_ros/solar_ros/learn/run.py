"""Command line: run (or resume) SOLAR on a simulated environment without ROS.

    python -m solar_ros.learn.run --config solar_ros/config/point_mass.yaml --run-dir runs/pm
    python -m solar_ros.learn.run --config solar_ros/config/sawyer_task1.yaml \
        --set loop.method=mpc --run-dir runs/task1_mpc

Progress goes to standard output, one line per iteration; the run directory collects the
episodes, checkpoints and metrics (see :mod:`solar_ros.learn.loop`). Started again with the
same run directory, it resumes from the last complete iteration.
"""

import argparse
from pathlib import Path
import sys
from typing import List, Optional

from solar_ros.learn.config import RunConfig
from solar_ros.learn.loop import SolarLoop
from solar_ros.sim.environments import make_env
import torch


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, run the loop, and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', type=Path, required=True, help='run settings (YAML)')
    parser.add_argument('--run-dir', type=Path, required=True,
                        help='directory for episodes, checkpoints and metrics')
    parser.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                        help='replace one setting of the config (repeatable)')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0: torch default)')
    args = parser.parse_args(argv)
    try:
        config = RunConfig.from_yaml(args.config, args.set)
    except (OSError, ValueError) as error:
        print(f'solar_ros: bad config {args.config}: {error}', file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    env = make_env(config.env)
    try:
        loop = SolarLoop(env, config, args.run_dir)
    except ValueError as error:  # e.g. a pretrained folder, which cannot be refitted
        print(f'solar_ros: {error}', file=sys.stderr)
        return 2
    loop.run()
    print(f'solar_ros: run finished; metrics in {args.run_dir / "metrics.csv"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
