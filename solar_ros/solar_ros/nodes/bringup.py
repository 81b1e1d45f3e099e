"""Bring the whole system up in one process, for machines without the ``ros2`` CLI.

    python -m solar_ros.nodes.bringup [--run-dir DIR] [--task N] [--params FILE ...]

Starts the same node classes as ``launch/sawyer_stack.launch.py`` (sim, encoder, latent
filter, controller, episode runner, learner) in one single-threaded rclpy executor (the
learner refits in a thread of its own) with the same parameter files (``sim.yaml``,
then ``sawyer_stack.yaml``, then any ``--params``), and runs until the learner has
produced ``loop.iterations`` policies, or Ctrl-C. Progress is the nodes' log; the run
directory collects episodes, checkpoints and metrics.
"""

import argparse
from pathlib import Path
import sys
import tempfile
import time
from typing import List, Optional, Sequence

from ament_index_python.packages import get_package_share_directory
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from solar_ros.nodes.controller_node import ControllerNode
from solar_ros.nodes.encoder_node import EncoderNode
from solar_ros.nodes.episode_runner_node import EpisodeRunnerNode
from solar_ros.nodes.latent_filter_node import LatentFilterNode
from solar_ros.nodes.learner_node import LearnerNode
from solar_ros.nodes.sim_node import SimNode
import yaml


def default_params() -> List[Path]:
    """Return the installed parameter files, in the order they apply."""
    config = Path(get_package_share_directory('solar_ros')) / 'config'
    return [config / 'sim.yaml', config / 'sawyer_stack.yaml']


class Bringup:
    """The solar_ros nodes in one process and one executor."""

    def __init__(self, params: Sequence[Path], overrides: Optional[dict] = None) -> None:
        """Create a context with ``params`` files (later ones win) and ``overrides``."""
        files = [str(p) for p in params]
        if overrides:
            with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as extra:
                yaml.safe_dump({'/**': {'ros__parameters': overrides}}, extra)
            files.append(extra.name)
        args = ['--ros-args', *[a for f in files for a in ('--params-file', f)]]
        self.context = rclpy.Context()
        rclpy.init(args=args, context=self.context)
        self.learner = LearnerNode(context=self.context)
        self.sim = SimNode(context=self.context)
        self.encoder = EncoderNode(context=self.context)
        self.filter = LatentFilterNode(context=self.context)
        self.controller = ControllerNode(context=self.context)
        self.runner = EpisodeRunnerNode(context=self.context)
        self.nodes: List[Node] = [self.learner, self.sim, self.encoder, self.filter,
                                  self.controller, self.runner]
        self.executor = SingleThreadedExecutor(context=self.context)
        for node in self.nodes:
            self.executor.add_node(node)

    def spin_until(self, done, timeout: float = float('inf')) -> bool:
        """Spin until ``done()`` is true or ``timeout`` seconds pass; return ``done()``."""
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.1)
        return bool(done())

    def shutdown(self) -> None:
        """Destroy the nodes and the context."""
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, run the system until the learner is done, and return the status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run-dir', type=Path, help='run directory (default: parameter)')
    parser.add_argument('--task', type=int, help='initial position 1, 2 or 3')
    parser.add_argument('--run-config', type=Path, help='model/lqr/loop settings (YAML)')
    parser.add_argument('--params', type=Path, nargs='*', default=[],
                        help='extra ROS parameter files, applied last')
    args = parser.parse_args(argv)
    overrides = {}
    if args.run_dir:
        overrides['run_dir'] = str(args.run_dir)
    if args.task:
        overrides['task'] = args.task
    if args.run_config:
        overrides['run_config'] = str(args.run_config.resolve())
    bringup = Bringup([*default_params(), *args.params], overrides)
    iterations = bringup.learner.learner.config.loop.iterations
    try:
        bringup.spin_until(lambda: bringup.learner.learner.policy_version >= iterations
                           and not bringup.learner.updating)
        print(f'solar_ros: {iterations} policy updates done; '
              f'run directory {bringup.learner.learner.run_dir}')
    except KeyboardInterrupt:
        pass
    finally:
        bringup.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
