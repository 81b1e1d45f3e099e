"""Messages sent before their reader matched, in lockstep: none may stall an episode.

The sim resends an unanswered frame with its stamp unchanged. A potential lost because the
filter's subscription matched after it went out is recovered only if the encoder answers
the copy again; a command answering a copy would step a lockstep sim twice, so the
controller instead holds a command back until the command topic's readers have matched.
"""

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


def test_the_controller_answers_each_step_once(context):
    T, DX, DU = 3, 2, 7
    node = ControllerNode(context=context)
    peer, executor = with_peer(node, context, 'belief_peer')
    commands = []
    peer.create_subscription(Float64MultiArray, COMMAND_TOPIC,
                             lambda msg: commands.append(np.array(msg.data)), qos.COMMANDS)
    gains = feedforward_gains(T, DX, DU, 0.1)
    beliefs = peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT)

    def belief(episode_id: int, step: int) -> LatentBelief:
        return LatentBelief(episode_id=episode_id, step=step, dim=DX, mean=[0.5] * DX,
                            covariance=np.eye(DX).ravel().tolist())

    try:
        peer.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED).publish(gains)
        spin_until(executor, lambda: node.policy_version is not None, 'the gains')
        events = peer.create_publisher(EpisodeEvent, 'episode_events', qos.EVENTS)
        events.publish(EpisodeEvent(episode_id=1, task_id=1, kind=EpisodeEvent.START))
        spin_until(executor, lambda: node._episode_id == 1, 'the episode start')
        for episode_id, step in ((1, 0), (1, 0), (1, 1), (1, 1), (1, 1)):
            beliefs.publish(belief(episode_id, step))
        spin_until(executor, lambda: len(commands) == 2, 'the commands of steps 0 and 1')
        events.publish(EpisodeEvent(episode_id=2, task_id=1, kind=EpisodeEvent.START))
        spin_until(executor, lambda: node._episode_id == 2, 'the next episode start')
        beliefs.publish(belief(2, 0))  # step 0 of a new episode is a new step
        spin_until(executor, lambda: len(commands) == 3, 'the next episode command')
        executor.spin_once(timeout_sec=0.3)  # room for a wrong extra command to arrive
    finally:
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
    assert len(commands) == 3


def test_a_command_waits_for_its_reader_to_match(context):
    """A command answered before any reader of the topic matched is sent once one does."""
    T, DX, DU = 3, 2, 7
    node = ControllerNode(context=context)
    peer, executor = with_peer(node, context, 'late_reader_peer')
    commands = []
    try:
        peer.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED).publish(
            feedforward_gains(T, DX, DU, 0.1))
        spin_until(executor, lambda: node.policy_version is not None, 'the gains')
        events = peer.create_publisher(EpisodeEvent, 'episode_events', qos.EVENTS)
        events.publish(EpisodeEvent(episode_id=1, task_id=1, kind=EpisodeEvent.START,
                                    mean_action=True))
        spin_until(executor, lambda: node._episode_id == 1, 'the episode start')
        peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT).publish(LatentBelief(
            episode_id=1, step=0, dim=DX, mean=[0.5] * DX,
            covariance=np.eye(DX).ravel().tolist()))
        spin_until(executor, lambda: node._answered == (1, 0), 'the answer to step 0')
        executor.spin_once(timeout_sec=0.2)
        # Only now does the sim's (or the filter's) subscription appear.
        peer.create_subscription(Float64MultiArray, COMMAND_TOPIC,
                                 lambda msg: commands.append(np.array(msg.data)), qos.COMMANDS)
        spin_until(executor, lambda: len(commands) == 1, 'the command of step 0')
        executor.spin_once(timeout_sec=0.3)  # room for a wrong second command to arrive
    finally:
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
    assert len(commands) == 1
    np.testing.assert_allclose(commands[0], 0.1)  # feedforward k_0 of the sample gains


def test_a_reader_that_never_matches_holds_back_one_command_only(context):
    """A reader with an incompatible QoS is in the graph but never matched: wait once."""
    T, DX, DU = 3, 2, 7
    node = ControllerNode(context=context,
                          parameter_overrides=[Parameter('match_wait', value=0.3)])
    peer, executor = with_peer(node, context, 'incompatible_peer')
    commands = []
    peer.create_subscription(Float64MultiArray, COMMAND_TOPIC,
                             lambda msg: commands.append(np.array(msg.data)), qos.COMMANDS)
    # Transient local: a volatile publisher never matches it.
    peer.create_subscription(Float64MultiArray, COMMAND_TOPIC, lambda msg: None,
                             qos.LATCHED_READER)
    beliefs = peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT)
    try:
        spin_until(executor, lambda: node._readers() == (1, 2), 'one reader matched of two')
        peer.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED).publish(
            feedforward_gains(T, DX, DU, 0.1))
        spin_until(executor, lambda: node.policy_version is not None, 'the gains')
        events = peer.create_publisher(EpisodeEvent, 'episode_events', qos.EVENTS)
        events.publish(EpisodeEvent(episode_id=1, task_id=1, kind=EpisodeEvent.START))
        spin_until(executor, lambda: node._episode_id == 1, 'the episode start')
        for step in (0, 1):
            beliefs.publish(LatentBelief(episode_id=1, step=step, dim=DX, mean=[0.5] * DX,
                                         covariance=np.eye(DX).ravel().tolist()))
            spin_until(executor, lambda: node._answered == (1, step), f'the answer to {step}')
            if step == 1:
                assert node._held is None  # sent at once: the same readers, no second wait
            spin_until(executor, lambda: len(commands) == step + 1, f'the command of {step}')
            if step == 0:
                assert node._gave_up == (1, 2)  # it waited match_wait, then sent it
    finally:
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
    assert len(commands) == 2
