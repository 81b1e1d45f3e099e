"""Bring the whole system up in one process, for machines without the ``ros2`` CLI.

    python -m solar_ros.nodes.bringup [--run-dir DIR] [--task N] [--params FILE ...]
    python -m solar_ros.nodes.bringup --learn false --policy-dir DIR [--policy K]
                                      [--episodes N] [--task N]

Starts the same node classes as ``launch/sawyer_stack.launch.py`` (encoder, latent filter,
controller, sim, episode runner, learner; the policy node first in deploy mode) in one
single-threaded rclpy executor with the same parameter files (``sim.yaml``, then
``sawyer_stack.yaml``, then any ``--params``), and runs until the learner has produced
``loop.iterations`` policies (and, with ``loop.check_rollouts``, the best-checked one as
the last), or Ctrl-C. Progress is the nodes' log; the run
directory collects episodes, checkpoints and metrics.

The nodes are created in that order because, with Fast DDS and the events executor (as
measured, not promised by any API), a message reaches the subscribers of one process in
the order they were created: the encoder then sees a frame before the learner records it,
and the filter predicts with a command before the sim steps on it (which takes
milliseconds), so neither waits on the image-to-command path (``bench/control_latency.py``).

Deploy mode (``--learn false``): the policy node serves policy K (default: the newest) of
``--policy-dir`` (a run directory or a ``solar_ros/pretrained`` folder) in place of the
learner, with the exploration noise off, for ``--episodes`` episodes (0: until Ctrl-C).
"""

import argparse
from pathlib import Path
import sys
import tempfile
import time
from typing import List, NoReturn, Optional, Sequence

from ament_index_python.packages import get_package_share_directory
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from solar_ros.nodes.controller_node import ControllerNode
from solar_ros.nodes.encoder_node import EncoderNode
from solar_ros.nodes.episode_runner_node import EpisodeRunnerNode
from solar_ros.nodes.latent_filter_node import LatentFilterNode
from solar_ros.nodes.learner_node import LearnerNode
from solar_ros.nodes.policy_node import PolicyNode
from solar_ros.nodes.sim_node import SimNode
from solar_ros.nodes.spin import (end_process, ignore_stop_signals, limit_cleanup,
                                  quiet_after_stop, stop_by_context, stop_on_first_signal)
from solar_ros.sim.sawyer_config import TASKS
import yaml


def default_params() -> List[Path]:
    """Return the installed parameter files, in the order they apply."""
    config = Path(get_package_share_directory('solar_ros')) / 'config'
    return [config / 'sim.yaml', config / 'sawyer_stack.yaml']


class Bringup:
    """The solar_ros nodes in one process and one executor."""

    def __init__(self, params: Sequence[Path], overrides: Optional[dict] = None,
                 learn: bool = True, stop_on_signals: bool = False) -> None:
        """Create a context with ``params`` files (later ones win) and ``overrides``.

        ``learn`` False starts the policy node (deploy mode) in place of the learner;
        :attr:`learner` is then None and :attr:`policy` the policy node.
        ``stop_on_signals``: rclpy's SIGINT and SIGTERM handlers shut this context down (the
        command line's bringup; rclpy installs them only for its default context otherwise).
        """
        files = [str(p) for p in params]
        if overrides:
            with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as extra:
                yaml.safe_dump({'/**': {'ros__parameters': overrides}}, extra)
            files.append(extra.name)
        args = ['--ros-args', *[a for f in files for a in ('--params-file', f)]]
        self.context = rclpy.Context()
        rclpy.init(args=args, context=self.context, signal_handler_options=(
            SignalHandlerOptions.ALL if stop_on_signals else SignalHandlerOptions.NO))
        self.learner: Optional[LearnerNode] = None
        self.policy: Optional[PolicyNode] = None
        self.nodes: List[Node] = []
        self.executor = EventsExecutor(context=self.context)  # as in spin.spin_node
        try:
            if not learn:  # first: a policy it cannot serve is the error to report
                self.policy = self._add(PolicyNode(context=self.context))
            self.encoder = self._add(EncoderNode(context=self.context))
            self.filter = self._add(LatentFilterNode(context=self.context))
            self.controller = self._add(ControllerNode(context=self.context))
            self.sim = self._add(SimNode(context=self.context))
            self.runner = self._add(EpisodeRunnerNode(context=self.context))
            if learn:
                self.learner = self._add(LearnerNode(context=self.context))
        except BaseException:
            self.shutdown()  # a node that fails to start leaves nothing running
            raise

    def _add(self, node: Node) -> Node:
        """Add ``node`` to the executor and the list of nodes; return it."""
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def spin_until(self, done, timeout: float = float('inf')) -> bool:
        """Spin until ``done()``, a shut-down context or ``timeout`` s; return ``done()``."""
        deadline = time.monotonic() + timeout
        while not done() and self.context.ok() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.1)
        return bool(done())

    def shutdown(self) -> None:
        """Destroy the nodes and the context."""
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def main(argv: Optional[List[str]] = None) -> NoReturn:
    """Run the system (:func:`run_system`) and end the process with its status.

    The process ends through :func:`~solar_ros.nodes.spin.end_process`, as each node's own
    process does.
    """
    end_process(run_system(argv))


def run_system(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, run the system until the learner is done, and return the status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run-dir', type=Path, help='run directory (default: parameter)')
    parser.add_argument('--task', type=int, help='initial position 1, 2 or 3')
    parser.add_argument('--run-config', type=Path,
                        help="model/lqr/loop settings (YAML; default: the task's installed "
                             'config/sawyer_task<N>.yaml)')
    parser.add_argument('--params', type=Path, nargs='*', default=[],
                        help='extra ROS parameter files, applied last')
    parser.add_argument('--learn', choices=('true', 'false'), default='true',
                        help='false: run a trained policy (--policy-dir) without learning')
    parser.add_argument('--policy-dir', type=Path,
                        help='deploy mode: run directory or pretrained folder of the policy')
    parser.add_argument('--policy', type=int, default=-1,
                        help='deploy mode: policy number in --policy-dir (-1: the newest)')
    parser.add_argument('--episodes', type=int, default=0,
                        help='deploy mode: episodes to run (0: until Ctrl-C)')
    args = parser.parse_args(argv)
    learn = args.learn == 'true'
    if args.task is not None and args.task not in TASKS:
        parser.error(f'--task must be one of {list(TASKS)}, got {args.task}')
    if args.episodes < 0:
        parser.error(f'--episodes must be >= 0, got {args.episodes}')
    if learn and args.policy_dir:
        parser.error('--policy-dir serves a trained policy without learning; add --learn '
                     'false (learning continues in a run directory: --run-dir)')
    if not learn and not args.policy_dir:
        parser.error('--learn false runs a trained policy: give --policy-dir')
    overrides = {}
    if args.run_dir:
        overrides['run_dir'] = str(args.run_dir)
    if args.task is not None:
        overrides['task'] = args.task
    if args.run_config:
        overrides['run_config'] = str(args.run_config.resolve())
    if not learn:
        overrides.update(policy_dir=str(args.policy_dir.resolve()), policy=args.policy,
                         noise_scale=0.0, episodes=args.episodes, paced=False)
    stop_on_first_signal()  # SIGTERM stops as Ctrl-C does: a clean exit, status 0
    try:
        bringup = Bringup([*default_params(), *args.params], overrides, learn,
                          stop_on_signals=True)
    except (ValueError, ParameterException) as error:
        print(f'solar_ros.bringup: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a signal while the nodes start
        return 0
    stop_by_context()  # a signal now shuts the context down: spin_until returns
    try:
        with quiet_after_stop(bringup.context):  # a stop that landed while a message was taken
            if learn:
                learner = bringup.learner.learner
                if bringup.spin_until(lambda: learner.done() and not bringup.learner.updating):
                    print(f'solar_ros: {learner.config.loop.iterations} policy updates done, the '
                          f'run ends on policy {learner.policy_version}; run directory '
                          f'{learner.run_dir}')
            elif bringup.spin_until(lambda: bringup.runner.finished):
                runner = bringup.runner
                print(f'solar_ros: {runner.ended} episodes of policy '
                      f'{bringup.policy.gains.policy_version}, {runner.successes} stacked')
    except ExternalShutdownException:
        pass
    finally:
        ignore_stop_signals()
        with limit_cleanup():
            bringup.shutdown()
    return 0


if __name__ == '__main__':
    main()
