"""The sim node over real DDS: resets, lockstep steps, images, events and bad input.

The node runs in a process of its own (``python -m solar_ros.nodes.sim_node``); the
test talks to it through its topics and service only. The last test builds the node in
this process, to make its first episode fail after the simulator opened.
"""

import os
from pathlib import Path
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import rclpy
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from solar_ros.learn.config import read_sections, RunConfig
from solar_ros.nodes.sim_node import SimNode
from solar_ros.sim.environments import cost_residual_scale
from solar_ros.sim.sawyer_env import SawyerStackEnv
from solar_ros_msgs.msg import EpisodeEvent
from solar_ros_msgs.srv import ResetEpisode
from spinning import spin_for, spin_until
from std_msgs.msg import Float64MultiArray
import yaml

pytestmark = pytest.mark.slow  # seconds to minutes: deselect with -m "not slow"

TIMEOUT_S = 30.0
SETTLE_S = 1.0
HORIZON = 4
CONFIGS = Path(__file__).resolve().parents[1] / 'config'


def _start_node(*parameters: str) -> subprocess.Popen:
    arguments = ['--ros-args', '-p', f'horizon:={HORIZON}']
    for parameter in parameters:
        arguments += ['-p', parameter]
    return subprocess.Popen([sys.executable, '-m', 'solar_ros.nodes.sim_node', *arguments],
                            env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


class Peer:
    """A test node that records everything the sim node publishes."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('sim_node_test', context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.images, self.infos, self.joints, self.events = [], [], [], []
        self.node.create_subscription(Image, 'camera/image_raw', self.images.append,
                                      qos_profile_sensor_data)
        self.node.create_subscription(CameraInfo, 'camera/camera_info', self.infos.append,
                                      qos_profile_sensor_data)
        self.node.create_subscription(JointState, 'joint_states', self.joints.append, 10)
        self.node.create_subscription(
            EpisodeEvent, 'episode_events', self.events.append,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.commands = self.node.create_publisher(
            Float64MultiArray, 'velocity_controller/commands',
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.reset_client = self.node.create_client(ResetEpisode, 'reset_episode')

    def spin_until(self, done, what: str):
        spin_until(self.executor, done, what, TIMEOUT_S)

    def reset(self, task: int, seed: int) -> ResetEpisode.Response:
        if not self.reset_client.service_is_ready():
            self.spin_until(self.reset_client.service_is_ready, 'the reset_episode service')
            # Ready means our request reaches the server; the server may not have matched
            # our response reader yet, and a response sent before that is lost (a DDS
            # discovery race seen once in CI), so give discovery a moment to finish.
            spin_for(self.executor, SETTLE_S)
        future = self.reset_client.call_async(ResetEpisode.Request(task_id=task, seed=seed))
        self.spin_until(future.done, 'the reset response')
        return future.result()

    def event(self, episode: int, kind: int, step: int) -> EpisodeEvent:
        def found():
            return [e for e in self.events
                    if (e.episode_id, e.kind, e.step) == (episode, kind, step)]
        self.spin_until(found, f'event kind {kind} step {step} of episode {episode}')
        return found()[0]

    def command(self, values):
        self.spin_until(lambda: self.commands.get_subscription_count() > 0,
                        'the command subscriber')
        self.commands.publish(Float64MultiArray(data=[float(v) for v in values]))

    def close(self):
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def peer():
    """Create the recording test node in a context of its own."""
    recorder = Peer()
    yield recorder
    recorder.close()


def test_lockstep_reset_steps_images_events_and_bad_input(peer):
    process = _start_node('mode:=lockstep', 'start_task:=0')
    try:
        response = peer.reset(task=2, seed=1)
        assert response.success and response.episode_id == 1, response.message
        start = peer.event(1, EpisodeEvent.START, 0)
        assert start.task_id == 2 and start.cost == 0.0 and start.has_seed and start.seed == 1
        scale = cost_residual_scale(RunConfig.from_yaml(CONFIGS / 'sawyer_task1.yaml').env)
        before = start
        for step in range(1, HORIZON + 1):
            peer.command([0.2, -0.1, 0.0, 0.1, 0.0, 0.0, 9.0])
            event = peer.event(1, EpisodeEvent.STEP, step)
            assert event.cost > 0.0
            # The event carries the action applied: the last joint clipped to its limit.
            np.testing.assert_allclose(event.action, [0.2, -0.1, 0.0, 0.1, 0.0, 0.0, 4.545])
            # And the block's offset from the aim point: the step's cost is that of the
            # served run config (task 1's: a squared offset) before it plus 0.5 a^T R a.
            assert len(event.aim_offset) == 3
            action_term = 0.5 * 0.01 * float(np.sum(np.square(event.action)))
            residual = np.asarray(before.aim_offset) / scale
            assert event.cost - action_term == pytest.approx(residual @ residual, rel=1e-9)
            before = event
        end = peer.event(1, EpisodeEvent.END, HORIZON)
        assert end.success is False and end.cost == event.cost and len(end.aim_offset) == 0
        assert end.has_seed and end.seed == event.seed == 1
        peer.spin_until(lambda: len(peer.images) >= HORIZON + 1 and len(peer.infos) > 0,
                        'an image per step and the camera info')
        image = peer.images[-1]
        assert (image.height, image.width, image.encoding) == (64, 64, 'rgb8')
        assert len(image.data) == 64 * 64 * 3 and image.step == 3 * 64
        pixels = [np.frombuffer(bytes(m.data), np.uint8) for m in peer.images]
        assert any(not np.array_equal(pixels[0], p) for p in pixels[1:]), 'images never change'
        assert peer.infos[-1].k[0] > 0 and peer.infos[-1].k[8] == 1.0
        peer.spin_until(lambda: len(peer.joints) >= HORIZON + 1, 'joint states')
        assert peer.joints[-1].name == [f'right_j{i}' for i in range(7)]

        # A second episode: bad commands are treated as zero velocity, the node lives on.
        response = peer.reset(task=1, seed=0)
        assert response.success and response.episode_id == 2
        peer.event(2, EpisodeEvent.START, 0)
        peer.spin_until(lambda: peer.joints and peer.joints[-1].header.stamp
                        == peer.event(2, EpisodeEvent.START, 0).header.stamp, 'start joints')
        before = np.array(peer.joints[-1].position)
        peer.command([1.0, 2.0, 3.0])
        assert list(peer.event(2, EpisodeEvent.STEP, 1).action) == [0.0] * 7  # rejected
        peer.command([0.0, float('nan'), 0.0, 0.0, 0.0, 0.0, 0.0])
        stepped = peer.event(2, EpisodeEvent.STEP, 2)
        peer.spin_until(lambda: peer.joints[-1].header.stamp == stepped.header.stamp,
                        'the joint state of step 2')
        assert np.allclose(peer.joints[-1].position, before, atol=2e-3)
        assert process.poll() is None, 'the sim node died on a bad command'

        unknown = peer.reset(task=7, seed=0)
        assert not unknown.success and 'unknown task' in unknown.message
        assert unknown.episode_id == 0
        # Episode 2 is still running: a reset is refused, and the episode goes on.
        busy = peer.reset(task=3, seed=0)
        assert not busy.success and 'episode 2 is running (step 2 of' in busy.message
        peer.command([0.0] * 7)
        assert peer.event(2, EpisodeEvent.STEP, 3).task_id == 1
    finally:
        output = _stop(process)
    assert 'velocity command rejected' in output and 'has 3 values' in output, output


def test_lockstep_resends_a_frame_nobody_answered_and_warns_of_the_wait(peer):
    process = _start_node('mode:=lockstep', 'start_task:=0', 'lockstep_resend_after:=0.2',
                          'lockstep_stall_warning:=0.3')
    try:
        assert peer.reset(task=1, seed=3).success
        start = peer.event(1, EpisodeEvent.START, 0)

        def copies(messages):
            return [m for m in messages if m.header.stamp == start.header.stamp]
        peer.spin_until(lambda: len(copies(peer.images)) >= 3
                        and len(copies(peer.events)) >= 3, 'a frame and START sent twice more')
        assert all(bytes(m.data) == bytes(copies(peer.images)[0].data)
                   for m in copies(peer.images))
        peer.command([0.0] * 7)
        peer.event(1, EpisodeEvent.STEP, 1)
        steps = [e for e in peer.events if e.kind == EpisodeEvent.STEP and e.step == 1]
        assert len({(s.header.stamp.sec, s.header.stamp.nanosec) for s in steps}) == 1
    finally:
        output = _stop(process)
    warning = re.search(r'episode 1 waits at step 0: no command for [\d.]+ s, its frame sent '
                        r'\d+ more time\(s\); /velocity_controller/commands has 1 publisher',
                        output)
    assert warning and 'subscribers: /camera/image_raw 1' in output, output


def test_realtime_mode_steps_on_its_own_with_zero_velocity(peer):
    process = _start_node('mode:=realtime', 'start_task:=0')
    try:
        response = peer.reset(task=3, seed=2)
        assert response.success
        peer.event(1, EpisodeEvent.END, HORIZON)
        steps = [e for e in peer.events if e.kind == EpisodeEvent.STEP]
        assert [e.step for e in steps] == list(range(1, HORIZON + 1))
        peer.spin_until(lambda: len(peer.joints) >= HORIZON + 1, 'joint states')
        start = np.array(peer.joints[0].position)
        assert np.allclose(peer.joints[HORIZON].position, start, atol=2e-3)
    finally:
        _stop(process)


def test_a_start_that_fails_after_the_simulator_opened_closes_it(monkeypatch):
    closed = []
    real_close = SawyerStackEnv.close

    def close(env):
        closed.append(env)
        real_close(env)

    def fail(node, task, seed):  # the fault: the first episode cannot start
        raise RuntimeError('first episode failed')

    monkeypatch.setattr(SawyerStackEnv, 'close', close)
    monkeypatch.setattr(SimNode, '_start_episode', fail)
    context = rclpy.Context()
    rclpy.init(args=['--ros-args', '-p', f'horizon:={HORIZON}'], context=context)
    try:
        with pytest.raises(RuntimeError, match='first episode failed'):
            SimNode(context=context)
        # disconnected at once, not only when the context shuts down and destroys its nodes
        assert len(closed) == 1 and closed[0]._client is None
    finally:
        rclpy.try_shutdown(context=context)


def test_four_views_are_published_with_the_step_stamp_on_their_own_topics(peer, tmp_path):
    settings = read_sections(CONFIGS / 'sawyer_task1.yaml')
    settings['env']['views'] = settings['model']['views'] = 4
    run_config = tmp_path / 'four_views.yaml'
    run_config.write_text(yaml.safe_dump(settings))
    topics = ('camera', 'side_camera', 'close_camera', 'top_camera')
    images = {topic: [] for topic in topics}
    for topic in topics:
        peer.node.create_subscription(Image, f'{topic}/image_raw', images[topic].append,
                                      qos_profile_sensor_data)
    process = _start_node('mode:=lockstep', 'start_task:=0', f'run_config:={run_config}')
    try:
        assert peer.reset(task=2, seed=0).success
        start = peer.event(1, EpisodeEvent.START, 0)

        def of_start(topic):
            return [m for m in images[topic] if m.header.stamp == start.header.stamp]
        peer.spin_until(lambda: all(of_start(topic) for topic in topics),
                        'the start frame of every camera')
    finally:
        _stop(process)
    frames = {topic: of_start(topic)[0] for topic in topics}
    assert {m.header.frame_id for m in frames.values()} == {
        f'{topic}_optical_frame' for topic in topics}
    pixels = {topic: bytes(m.data) for topic, m in frames.items()}
    assert len(set(pixels.values())) == 4, 'two cameras show the same image'
