"""The controller's exploration noise: the policy's in each episode, none in a check episode."""

from message_samples import feedforward_gains
import numpy as np
from solar_ros.nodes import qos
from solar_ros.nodes.controller_node import COMMAND_TOPIC, ControllerNode
from solar_ros_msgs.msg import EpisodeEvent, LatentBelief
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
from spinning import spin_until, with_peer
from std_msgs.msg import Float64MultiArray

T, DX, DU = 3, 2, 7
FEEDFORWARD = 0.1  # rad/s, every joint and step; K = 0, so the mean action is k


def test_a_start_with_mean_action_runs_the_episode_without_noise(context):
    node = ControllerNode(context=context)
    peer, executor = with_peer(node, context, 'noise_peer')
    commands = {1: [], 2: []}
    episode = {'id': 1}
    peer.create_subscription(Float64MultiArray, COMMAND_TOPIC,
                             lambda msg: commands[episode['id']].append(np.array(msg.data)),
                             qos.COMMANDS)
    gains = feedforward_gains(T, DX, DU, FEEDFORWARD)
    events = peer.create_publisher(EpisodeEvent, 'episode_events', qos.EVENTS)
    beliefs = peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT)
    try:
        peer.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED).publish(gains)
        spin_until(executor, lambda: node.policy_version is not None, 'the gains')
        for episode_id, mean_action in ((1, True), (2, False)):
            episode['id'] = episode_id
            events.publish(EpisodeEvent(episode_id=episode_id, task_id=1,
                                        kind=EpisodeEvent.START, mean_action=mean_action))
            spin_until(executor, lambda: node._episode_id == episode_id, 'the episode start')
            for t in range(T):
                beliefs.publish(LatentBelief(episode_id=episode_id, step=t, dim=DX,
                                             mean=[0.5] * DX,
                                             covariance=np.eye(DX).ravel().tolist()))
                spin_until(executor, lambda: len(commands[episode_id]) == t + 1,
                           f'command {t} of episode {episode_id}')
    finally:
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
    np.testing.assert_allclose(np.stack(commands[1]), FEEDFORWARD)
    assert np.all(np.abs(np.stack(commands[2]) - FEEDFORWARD) > 1e-6)
