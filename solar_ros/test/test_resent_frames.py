"""Messages sent before their reader matched, in lockstep: none may stall an episode.

The sim resends an unanswered frame with its stamp unchanged. A potential lost because the
filter's subscription matched after it went out is recovered only if the encoder answers
the copy again; a command answering a copy would step a lockstep sim twice, so the
controller instead holds a command back until the command topic's readers have matched, and
sends it again only when the sim has resent the answered frame twice after the answer.
"""

from contextlib import contextmanager

from builtin_interfaces.msg import Time
from message_samples import feedforward_gains
import numpy as np
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from solar_ros.core.model import SolarModel
from solar_ros.core.model_config import ModelConfig
from solar_ros.nodes import qos
from solar_ros.nodes.controller_node import COMMAND_TOPIC, ControllerNode
from solar_ros.nodes.conversions import answers, stamp_ns
from solar_ros.nodes.encoder_node import EncoderNode
from solar_ros_msgs.msg import EpisodeEvent, LatentBelief, LatentPotential
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
from spinning import spin_until, with_peer
from std_msgs.msg import Float64MultiArray, Header


def _frame(sec: int, seed: int) -> Image:
    """Return a random 16x16 rgb8 frame stamped ``sec`` seconds."""
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return Image(header=Header(stamp=Time(sec=sec)), height=16, width=16, encoding='rgb8',
                 step=48, data=pixels.tobytes())


def test_a_copy_of_the_frame_encoded_last_gets_its_potential_again(context, tmp_path):
    model_path = tmp_path / 'model.ckpt'
    SolarModel(ModelConfig(latent_dim=3, action_dim=7, horizon=5, image_size=16,
                           channels=4, keypoints=4)).save(model_path)
    node = EncoderNode(context=context,
                       parameter_overrides=[Parameter('model_path', value=str(model_path))])
    peer, executor = with_peer(node, context, 'camera_peer')
    camera = peer.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    potentials = []
    try:
        spin_until(executor, lambda: camera.get_subscription_count() > 0, 'the encoder')
        first = _frame(10, seed=0)
        camera.publish(first)
        spin_until(executor, lambda: answers(node._last_potential, first.header),
                   'the first frame encoded')
        # Only now does a reader of the potentials join: the first potential was lost.
        reader = peer.create_subscription(LatentPotential, 'latent_potential',
                                          potentials.append, qos.LATENT)
        spin_until(executor, lambda: reader.get_publisher_count() > 0
                   and node._publisher.get_subscription_count() > 0, 'the match')
        camera.publish(first)  # the sim's copy: same stamp, same pixels
        spin_until(executor, lambda: len(potentials) == 1, 'the potential of the copy')
        camera.publish(first)
        spin_until(executor, lambda: len(potentials) == 2, 'the potential of a second copy')
        camera.publish(_frame(11, seed=1))  # the next step's frame
        spin_until(executor, lambda: len(potentials) == 3, 'the next potential')
    finally:
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
    assert [p.step for p in potentials] == [0, 0, 1]
    assert [stamp_ns(p.header) for p in potentials] == [10 * 10**9] * 2 + [11 * 10**9]
    np.testing.assert_array_equal(potentials[0].mean, potentials[1].mean)
    np.testing.assert_array_equal(potentials[0].precision, potentials[1].precision)
    assert not np.array_equal(potentials[0].mean, potentials[2].mean)


T, DX, DU = 3, 2, 7  # the controller tests' horizon, latent and action dims


def _belief(episode_id: int, step: int) -> LatentBelief:
    return LatentBelief(episode_id=episode_id, step=step, dim=DX, mean=[0.5] * DX,
                        covariance=np.eye(DX).ravel().tolist())


def _start_episode(node: ControllerNode, peer, executor, mean_action: bool = False):
    """Give the controller gains of 0.1 rad/s feedforward, start episode 1; return events."""
    peer.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED).publish(
        feedforward_gains(T, DX, DU, 0.1))
    spin_until(executor, lambda: node.policy_version is not None, 'the gains')
    events = peer.create_publisher(EpisodeEvent, 'episode_events', qos.EVENTS)
    events.publish(EpisodeEvent(episode_id=1, task_id=1, kind=EpisodeEvent.START,
                                mean_action=mean_action))
    spin_until(executor, lambda: node._episode_id == 1, 'the episode start')
    return events


def _read_commands(peer, commands: list) -> None:
    """Append each command the peer receives, (du,) rad/s, to ``commands``."""
    peer.create_subscription(Float64MultiArray, COMMAND_TOPIC,
                             lambda msg: commands.append(np.array(msg.data)), qos.COMMANDS)


@contextmanager
def _controller(context, peer_name: str, **parameters):
    """Yield a controller node (with ``parameters``), a peer node and their executor."""
    node = ControllerNode(context=context, parameter_overrides=[
        Parameter(name, value=value) for name, value in parameters.items()])
    peer, executor = with_peer(node, context, peer_name)
    try:
        yield node, peer, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()


def test_the_controller_answers_each_step_once(context):
    commands = []
    with _controller(context, 'belief_peer') as (node, peer, executor):
        _read_commands(peer, commands)
        beliefs = peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT)
        events = _start_episode(node, peer, executor)
        for episode_id, step in ((1, 0), (1, 0), (1, 1), (1, 1), (1, 1)):
            beliefs.publish(_belief(episode_id, step))
        spin_until(executor, lambda: len(commands) == 2, 'the commands of steps 0 and 1')
        events.publish(EpisodeEvent(episode_id=2, task_id=1, kind=EpisodeEvent.START))
        spin_until(executor, lambda: node._episode_id == 2, 'the next episode start')
        beliefs.publish(_belief(2, 0))  # step 0 of a new episode is a new step
        spin_until(executor, lambda: len(commands) == 3, 'the next episode command')
        executor.spin_once(timeout_sec=0.3)  # room for a wrong extra command to arrive
    assert len(commands) == 3


def test_a_command_waits_for_its_reader_to_match(context):
    """A command answered before any reader of the topic matched is sent once one does."""
    commands = []
    with _controller(context, 'late_reader_peer') as (node, peer, executor):
        _start_episode(node, peer, executor, mean_action=True)
        peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT).publish(_belief(1, 0))
        spin_until(executor, lambda: node._answered == (1, 0), 'the answer to step 0')
        executor.spin_once(timeout_sec=0.2)
        # Only now does the sim's (or the filter's) subscription appear.
        _read_commands(peer, commands)
        spin_until(executor, lambda: len(commands) == 1, 'the command of step 0')
        executor.spin_once(timeout_sec=0.3)  # room for a wrong second command to arrive
    assert len(commands) == 1
    np.testing.assert_allclose(commands[0], 0.1)  # the mean action: the gains' feedforward


def test_a_reader_that_never_matches_holds_back_one_command_only(context):
    """A reader with an incompatible QoS is in the graph but never matched: wait once."""
    commands = []
    with _controller(context, 'incompatible_peer', match_wait=0.3) as (node, peer, executor):
        _read_commands(peer, commands)
        # Transient local: a volatile publisher never matches it.
        peer.create_subscription(Float64MultiArray, COMMAND_TOPIC, lambda msg: None,
                                 qos.LATCHED_READER)
        beliefs = peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT)
        spin_until(executor, lambda: node._readers() == (1, 2), 'one reader matched of two')
        _start_episode(node, peer, executor)
        for step in (0, 1):
            beliefs.publish(_belief(1, step))
            spin_until(executor, lambda: node._answered == (1, step), f'the answer to {step}')
            if step == 1:
                assert node._held is None  # sent at once: the same readers, no second wait
            spin_until(executor, lambda: len(commands) == step + 1, f'the command of {step}')
            if step == 0:
                assert node._gave_up == (1, 2)  # it waited match_wait, then sent it
    assert len(commands) == 2


def test_a_command_the_sim_lost_is_sent_again_after_two_copies_of_its_frame(context):
    """The sim resends a frame it has no command for; two copies after the answer: resend."""
    commands = []
    with _controller(context, 'lossy_sim_peer') as (node, peer, executor):
        _read_commands(peer, commands)
        beliefs = peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT)
        events = _start_episode(node, peer, executor, mean_action=True)
        stamp = Time(sec=20)
        step_1 = EpisodeEvent(header=Header(stamp=stamp), episode_id=1, task_id=1,
                              kind=EpisodeEvent.STEP, step=1)
        events.publish(step_1)  # the frame of step 1, then its belief
        belief = _belief(1, 1)
        belief.header.stamp = stamp
        beliefs.publish(belief)
        spin_until(executor, lambda: len(commands) == 1, 'the command of step 1')
        events.publish(step_1)  # the sim's first copy: the command may still be on its way
        beliefs.publish(belief)  # the filter's copy of its belief: no command either
        executor.spin_once(timeout_sec=0.3)
        assert len(commands) == 1
        events.publish(step_1)  # a second copy: the sim lost the command
        spin_until(executor, lambda: len(commands) == 2, 'the command sent again')
        events.publish(step_1)
        spin_until(executor, lambda: len(commands) == 3, 'again on a further copy')
        # A copy of another stamp (an earlier frame's, late) or step is not the answered one.
        events.publish(EpisodeEvent(header=Header(stamp=Time(sec=19)), episode_id=1,
                                    task_id=1, kind=EpisodeEvent.STEP, step=1))
        events.publish(EpisodeEvent(header=Header(stamp=stamp), episode_id=1, task_id=1,
                                    kind=EpisodeEvent.STEP, step=0))
        executor.spin_once(timeout_sec=0.3)
    assert len(commands) == 3
    for command in commands:
        np.testing.assert_array_equal(command, commands[0])


def test_no_command_is_sent_again_when_resending_is_off(context):
    commands = []
    with _controller(context, 'no_resend_peer', resend_after_copies=0) as (node, peer,
                                                                           executor):
        _read_commands(peer, commands)
        events = _start_episode(node, peer, executor, mean_action=True)
        start = EpisodeEvent(header=Header(stamp=Time(sec=30)), episode_id=1, task_id=1,
                             kind=EpisodeEvent.START, mean_action=True)
        belief = _belief(1, 0)
        belief.header.stamp = Time(sec=30)
        peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT).publish(belief)
        spin_until(executor, lambda: len(commands) == 1, 'the command of step 0')
        for _ in range(3):
            events.publish(start)
        spin_until(executor, lambda: node._copies_after_answer == 3, 'three copies')
        executor.spin_once(timeout_sec=0.3)
    assert len(commands) == 1
