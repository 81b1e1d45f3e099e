"""The whole system over real DDS: sim, encoder, filter, controller, runner and learner.

Tiny settings (5-step episodes, a small model, a one-episode pretraining) keep each test
to seconds; the behaviour checked is the one of a full run.
"""

import importlib.util
import itertools
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Union

from ament_index_python.packages import get_package_share_directory
import numpy as np
import pytest
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from solar_ros.core.checkpoint import load_checkpoint
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import EpisodeStore
from solar_ros.learn.learner import check_seeds, LEARNER_KIND, LEARNER_VERSION
from solar_ros.nodes import qos
from solar_ros.nodes.bringup import Bringup, default_params
from solar_ros.sim.environments import env_settings
from solar_ros_msgs.msg import EpisodeEvent
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
import yaml

pytestmark = pytest.mark.slow  # seconds to minutes: deselect with -m "not slow"

HORIZON = 5
RUN_CONFIG = {
    'model': {'latent_dim': 3, 'channels': 4, 'hidden': 16, 'batch_size': 2,
              'action_cost_weight': 0.005},
    'lqr': {'kl_step': 1.0, 'init_std': 0.3},
    'loop': {'pretrain_episodes': 2, 'pretrain_updates': 3, 'iterations': 2,
             'rollouts_per_iteration': 2, 'refit_updates': 2},
}


def _params(tmp_path: Path, pretrain_updates: int = 3) -> Path:
    """Write the run config and a parameter file for the tiny system; return the latter."""
    run_config = dict(RUN_CONFIG, loop=dict(RUN_CONFIG['loop'],
                                            pretrain_updates=pretrain_updates))
    (tmp_path / 'run.yaml').write_text(yaml.safe_dump(run_config))
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'horizon': HORIZON, 'run_dir': str(tmp_path / 'run'),
        'run_config': str(tmp_path / 'run.yaml')}}}))
    return params


@pytest.fixture
def system(tmp_path):
    """Yield the in-process system with tiny settings."""
    bringup = Bringup([*default_params(), _params(tmp_path)])
    yield bringup
    bringup.shutdown()


def test_episodes_flow_through_all_nodes_and_the_new_policy_is_used(system, tmp_path):
    learner = system.learner.learner
    store = EpisodeStore(tmp_path / 'run' / 'episodes')

    def policy_one_recorded():
        return any(e.policy_version == 1 for e in store) if len(store) > 2 else False

    assert system.spin_until(policy_one_recorded, timeout=120), 'no episode of policy 1'
    assert system.controller.policy_version == 1
    # Paced by the learner: 2 pretraining episodes, 2 of policy 1, then learning is done
    # and no further episode starts.
    assert system.spin_until(lambda: learner.policy_version == 2
                             and not system.learner.updating, timeout=120)
    system.spin_until(lambda: False, timeout=3.0)
    assert len(store) == 4 and system.runner.started == 4
    episodes = list(store)
    assert episodes[0].policy_version == 0
    limits = np.array([1.74, 1.328, 1.957, 1.957, 3.485, 3.485, 4.545])
    for episode in episodes:
        assert episode.images.shape == (HORIZON + 1, 64, 64, 3)
        assert episode.actions.shape == (HORIZON, 7)
        assert np.all(np.abs(episode.actions) <= limits + 1e-12)
        assert episode.costs.shape == (HORIZON,) and np.all(episode.costs > 0)
        assert episode.task == 1
    # Consecutive frames differ: the arm moved under the commands.
    assert np.any(episodes[-1].images[0] != episodes[-1].images[-1])
    assert (tmp_path / 'run' / 'checkpoints' / 'learner_0001.ckpt').exists()


def test_the_nodes_learn_with_the_cost_read_out_from_the_events_offsets(tmp_path):
    """loop.lqr_cost residuals over DDS: the sim's events carry the block's offsets.

    The episodes the learner records hold them, each step's cost is the squared offset
    before it (plus the action term), and LQR-FLM's updates, which fit the cost to them
    and stop on an episode without, make policies 1 and 2.
    """
    params = _params(tmp_path)
    run_config = yaml.safe_load((tmp_path / 'run.yaml').read_text())
    scale = 0.1  # m: the squared cost is ||aim_offset / scale||^2
    run_config['env'] = {'name': 'sawyer_stack', 'distance_cost': 'squared',
                         'distance_scale': scale}
    run_config['loop']['lqr_cost'] = 'residuals'
    (tmp_path / 'run.yaml').write_text(yaml.safe_dump(run_config))
    system = Bringup([*default_params(), params])
    try:
        learner = system.learner.learner
        assert system.spin_until(lambda: learner.policy_version == 2
                                 and not system.learner.updating, timeout=180), \
            f'ended at policy {learner.policy_version}'
        episodes = list(learner.store)
        assert [e.policy_version for e in episodes] == [0, 0, 1, 1]
        for episode in episodes:
            assert episode.aim_offsets.shape == (HORIZON, 3)
            action_terms = 0.5 * 0.01 * np.sum(episode.actions ** 2, axis=1)
            np.testing.assert_allclose(episode.costs - action_terms,
                                       np.sum((episode.aim_offsets / scale) ** 2, axis=1),
                                       rtol=1e-9)
    finally:
        system.shutdown()


def test_check_rollouts_run_through_the_nodes_and_the_run_ends_on_the_best_checked(tmp_path):
    """loop.check_rollouts over DDS: the learner asks for the checks, the sim marks them.

    Policy 0: 2 episodes; policy 1: 2 rollouts, then 1 check; policy 2, the last: 1 check;
    if the two checks tie on success, one round of tie checks (``loop.tie_checks`` 2: the
    learner publishes policy 1, then policy 2, and asks for a check of each); then the
    better-checked of policies 1 and 2 is published as policy 3. Every check resets with
    the learner's seed, one where the target moved 1 cm or more (``loop.check_target_shift``).
    """
    params = _params(tmp_path)
    run_config = yaml.safe_load((tmp_path / 'run.yaml').read_text())
    run_config['env'] = {'name': 'sawyer_stack', 'horizon': HORIZON}
    run_config['loop'].update(check_rollouts=1, tie_checks=2, check_target_shift=0.01)
    (tmp_path / 'run.yaml').write_text(yaml.safe_dump(run_config))
    system = Bringup([*default_params(), params])
    try:
        learner = system.learner.learner
        assert system.spin_until(lambda: learner.done() and not system.learner.updating,
                                 timeout=180), f'ended at policy {learner.policy_version}'
        system.spin_until(lambda: False, timeout=3.0)
        episodes, checks = list(learner.store), list(learner.checks)
        assert [(e.policy_version, e.explored) for e in episodes] == [(0, True), (0, True),
                                                                      (1, True), (1, True)]
        tie = checks[0].success == checks[1].success
        assert [(e.policy_version, e.explored) for e in checks] == \
            [(1, False), (2, False)] * (2 if tie else 1)
        assert learner.policy_version == 3 and system.runner.started == len(checks) + 4
        config = RunConfig.from_dict(run_config)
        seeds = check_seeds(config, 0, (len(checks) + 1) // 2)  # policies 1 and 2 take turns
        assert [e.seed for e in checks] == [seeds[i // 2] for i in range(len(checks))]
        assert all(env_settings(run_config['env']).target_shift(e.seed) >= 0.01 for e in checks)

        def score(version: int) -> tuple:
            mine = [e for e in checks if e.policy_version == version]
            return (np.mean([e.success for e in mine]), -np.mean([e.final_distance for e in mine]))

        best = 1 if score(1) >= score(2) else 2
        saved = load_checkpoint(learner.files.learner(best), LEARNER_KIND, LEARNER_VERSION)
        np.testing.assert_array_equal(learner.gains.policy.k.numpy(),
                                      TimeVaryingGains.from_dict(saved['gains']).policy.k.numpy())
    finally:
        system.shutdown()


def test_bad_frames_and_bad_gains_are_rejected_and_the_system_goes_on(system, tmp_path):
    store = EpisodeStore(tmp_path / 'run' / 'episodes')
    assert system.spin_until(lambda: system.controller.policy_version == 0, timeout=30)
    peer = rclpy.create_node('bad_peer', context=system.context)
    system.executor.add_node(peer)
    system.nodes.append(peer)
    images = peer.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    gains = peer.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED)
    # A second peer listens as the nodes do, to show the bad messages were delivered.
    seen_gains, seen_images = [], []
    listener = rclpy.create_node('listener', context=system.context)
    system.executor.add_node(listener)
    system.nodes.append(listener)
    listener.create_subscription(GainsMsg, 'policy/gains',
                                 lambda m: seen_gains.append(m.policy_version),
                                 qos.LATCHED_READER)
    listener.create_subscription(Image, 'camera/image_raw',
                                 lambda m: seen_images.append(m.encoding),
                                 qos_profile_sensor_data)
    assert system.spin_until(lambda: gains.get_subscription_count() >= 3, timeout=10)
    images.publish(Image(height=64, width=64, encoding='rgb8', step=192, data=bytes(100)))
    images.publish(Image(height=2, width=2, encoding='yuv422', step=4, data=bytes(8)))
    gains.publish(GainsMsg(policy_version=99, horizon=HORIZON, state_dim=3, action_dim=7,
                           feedback_gains=[0.0] * 5))
    before = len(store)
    assert system.spin_until(lambda: len(store) >= before + 3 and 99 in seen_gains
                             and 'yuv422' in seen_images, timeout=60)
    assert system.controller.policy_version in (0, 1)  # 99 was rejected
    assert 99 not in [e.policy_version for e in store]


def _start(module: str, params: list, log: Path,
           domain: Optional[int] = None) -> subprocess.Popen:
    """Start ``solar_ros.nodes.<module>`` in its own process with the parameter files.

    ``domain`` gives it a ROS domain of its own (default: this test process's).
    """
    args = [sys.executable, '-m', f'solar_ros.nodes.{module}', '--ros-args']
    for path in params:
        args += ['--params-file', str(path)]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1',
               RCUTILS_LOGGING_BUFFERED_STREAM='0')
    if domain is not None:
        env['ROS_DOMAIN_ID'] = str(domain)
    return subprocess.Popen(args, stdout=open(log, 'w'), stderr=subprocess.STDOUT, env=env)


def _fresh_domain() -> int:
    """Return a ROS domain no earlier test of this process used.

    Then no stale endpoint of a killed node (still in DDS discovery for a while) can
    answer in place of a new one.
    """
    current = int(os.environ.get('ROS_DOMAIN_ID', '0'))
    return 101 + (current + next(_DOMAINS)) % 100


_DOMAINS = itertools.count(1)


class _EndCounter:
    """Count END events on episode_events in a background executor."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('end_counter', context=self.context)
        self.ends = 0
        self.node.create_subscription(EpisodeEvent, 'episode_events', self._on_event,
                                      qos.EVENTS)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.kind == EpisodeEvent.END:
            self.ends += 1

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` END events were seen."""
        deadline = time.monotonic() + timeout
        while self.ends < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.ends >= count

    def close(self) -> None:
        """Stop the executor and the context."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


# Longest wait for a node's log line, s: a bound on a hang, not a speed target (the wait ends
# at the line; six nodes recording the first episodes took over 120 s on a slow 2-core CI).
LOG_WAIT = 300.0


def _wait_for_text(path: Path, text: str, timeout: float = LOG_WAIT) -> bool:
    """Wait until the file ``path`` contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return True
        time.sleep(0.1)
    return False


def _every_log(folder: Path, processes: Dict[str, subprocess.Popen]) -> str:
    """Return each node's log in ``folder`` and whether it still runs, for a failure message.

    A node that never appears to the others (not started, crashed, or not discovered) shows
    in its own log.
    """
    parts = []
    for name, process in processes.items():
        state = 'running' if process.poll() is None else f'exited {process.returncode}'
        log = folder / f'{name}.log'
        text = log.read_text() if log.exists() else '(no log)'
        parts.append(f'--- {name} ({state}):\n{text[-3000:]}')
    return '\n'.join(parts)


def _exit_status(process: subprocess.Popen, timeout: float) -> Union[int, str]:
    """Return the process's exit status, or a line saying it still runs after ``timeout`` s."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return f'still running {timeout} s after the signal'


def _faults(log: str) -> List[str]:
    """Return the marks of a fault found in a node's log.

    The marks: a traceback, a C++ abort, an exception that left a callback (the events
    executor logs it as "Exception in").
    """
    return [mark for mark in ('Traceback', 'terminate called', 'Exception in') if mark in log]


def test_separate_processes_and_a_learner_killed_mid_refit_resumes(tmp_path):
    params = [*default_params(), _params(tmp_path, pretrain_updates=3000)]
    processes = {name: _start(name, params, tmp_path / f'{name}.log') for name in (
        'sim_node', 'encoder_node', 'latent_filter_node', 'controller_node',
        'episode_runner_node', 'learner_node')}
    counter = _EndCounter()
    try:
        learner_log = tmp_path / 'learner_node.log'
        assert _wait_for_text(learner_log, 'pretraining the model'), \
            _every_log(tmp_path, processes)
        processes['learner_node'].send_signal(signal.SIGKILL)
        processes['learner_node'].wait()
        assert 'policy 1 |' not in learner_log.read_text()
        # Paced by the learner, no episode starts while it pretrains or is gone.
        ends = counter.ends
        assert not counter.wait_for(ends + 1, timeout=3.0)
        # Restarted, the learner resumes the run and reuses the recorded episodes.
        # (with a short pretraining this time, to keep the test quick).
        restarted_log = tmp_path / 'learner_restarted.log'
        (tmp_path / 'run.yaml').write_text(yaml.safe_dump(RUN_CONFIG))
        processes['learner_node'] = _start('learner_node', params, restarted_log)
        assert _wait_for_text(restarted_log, 'resumed policy 0', 60), restarted_log.read_text()
        assert _wait_for_text(restarted_log, 'policy 1 |'), restarted_log.read_text()
        for name, process in processes.items():
            assert process.poll() is None, f'{name} exited: ' + (
                tmp_path / f'{name}.log').read_text()
    finally:
        counter.close()
        for process in processes.values():
            process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.parametrize('signals', [(signal.SIGINT,), (signal.SIGINT, signal.SIGINT),
                                     (signal.SIGTERM,)])
def test_every_node_exits_cleanly_on_a_signal_even_mid_pretraining(tmp_path, signals):
    """Exit status 0 within seconds, no traceback, a learner's pretraining stopped cleanly."""
    params = [*default_params(), _params(tmp_path, pretrain_updates=3000)]
    names = ('sim_node', 'encoder_node', 'latent_filter_node', 'controller_node',
             'episode_runner_node', 'learner_node')
    domain = _fresh_domain()
    processes = {name: _start(name, params, tmp_path / f'{name}.log', domain)
                 for name in names}
    try:
        learner_log = tmp_path / 'learner_node.log'
        assert _wait_for_text(learner_log, 'pretraining the model'), \
            _every_log(tmp_path, processes)
        for sig in signals:
            for process in processes.values():
                process.send_signal(sig)
            time.sleep(0.2)
        for name, process in processes.items():
            status = _exit_status(process, 15)
            assert status == 0, f'{name}, {status}: ' + (tmp_path / f'{name}.log').read_text()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    for name in names:
        text = (tmp_path / f'{name}.log').read_text()
        assert not _faults(text), f'{name}: {text}'
    assert 'update stopped before policy 1' in (tmp_path / 'learner_node.log').read_text()


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_the_bringup_exits_cleanly_on_a_signal_mid_pretraining(tmp_path, sig):
    log = tmp_path / 'bringup.log'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1',
               ROS_DOMAIN_ID=str(_fresh_domain()))
    process = subprocess.Popen(
        [sys.executable, '-m', 'solar_ros.nodes.bringup', '--params',
         str(_params(tmp_path, pretrain_updates=3000))],
        stdout=open(log, 'w'), stderr=subprocess.STDOUT, env=env)
    try:
        assert _wait_for_text(log, 'pretraining the model'), log.read_text()
        process.send_signal(sig)
        status = _exit_status(process, 15)
        assert status == 0, f'{status}: {log.read_text()}'
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert not _faults(text) and 'update stopped before policy 1' in text, text


def test_a_node_with_a_bad_parameter_exits_with_one_clear_error(tmp_path):
    params = [*default_params(), _params(tmp_path)]
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'run_config': str(tmp_path / 'missing.yaml'), 'velocity_limits': [1.0, -1.0]}}}))
    (tmp_path / 'task.yaml').write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'task': 7}}}))
    for name, expected, extra in (('learner_node', 'missing.yaml', bad),
                                  ('controller_node', 'velocity_limits', bad),
                                  ('episode_runner_node', 'task', tmp_path / 'task.yaml')):
        log = tmp_path / f'{name}.log'
        process = _start(name, [*params, extra], log, _fresh_domain())
        assert process.wait(timeout=60) == 1, log.read_text()
        text = log.read_text()
        assert 'cannot start' in text and expected in text, text
        assert 'Traceback' not in text and 'AttributeError' not in text, text


LAUNCH = """
import sys
from launch import LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

service = LaunchService(argv=[])
service.include_launch_description(IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]),
    launch_arguments=[arg.split(':=', 1) for arg in sys.argv[2:]]))
sys.exit(service.run())
"""


def test_launch_file_starts_the_system(tmp_path):
    missing = [name for name in ('launch', 'launch_ros')
               if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f'{" and ".join(missing)} cannot be imported (not on PyPI); with a ROS 2 '
                    'install this test runs launch/sawyer_stack.launch.py')
    _params(tmp_path)
    launch_file = Path(get_package_share_directory('solar_ros')) / 'launch' / \
        'sawyer_stack.launch.py'
    log = tmp_path / 'launch.log'
    process = subprocess.Popen(
        [sys.executable, '-c', LAUNCH, str(launch_file), 'namespace:=arm1', 'task:=2',
         f'run_dir:={tmp_path / "run"}', f'run_config:={tmp_path / "run.yaml"}'],
        stdout=open(log, 'w'), stderr=subprocess.STDOUT)
    try:
        assert _wait_for_text(log, 'policy 1 |'), log.read_text()
        text = log.read_text()
        assert '[arm1.sim]' in text and 'episode 1 (task 2) ended' in text, text
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    episodes = list(EpisodeStore(tmp_path / 'run' / 'episodes'))
    assert episodes and all(e.task == 2 for e in episodes)
