"""Bad inputs on every topic of a running system: no node dies, the arm gets safe commands.

The tiny in-process system of ``test_system.py`` runs while a peer publishes, on each
topic the nodes listen to, messages that are malformed, non-finite, of the wrong size or
numerically impossible. An exception in any callback would end the executor's spin and
fail the test; every command published must be finite and within the velocity limits;
every recorded episode must hold finite data; and learning must reach its next policy.
"""

import math

import numpy as np
import pytest
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from solar_ros.learn.episodes import EpisodeStore
from solar_ros.nodes import qos
from solar_ros.nodes.bringup import Bringup, default_params
from solar_ros_msgs.msg import EpisodeEvent, LatentBelief, LatentPotential
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
from solar_ros_msgs.srv import ResetEpisode
from std_msgs.msg import Float64MultiArray, String
from test_system import _params, HORIZON

pytestmark = pytest.mark.slow  # a learning system: deselect with -m "not slow"

LIMITS = np.array([1.74, 1.328, 1.957, 1.957, 3.485, 3.485, 4.545])
NAN, INF = math.nan, math.inf


def _bad_gains() -> list:
    """Gains messages every node must refuse (T=5, dx=3, du=7 as in the tiny system)."""
    T, DX, DU = HORIZON, 3, 7

    def gains(**changes) -> GainsMsg:
        fields = {'policy_version': 99, 'horizon': T, 'state_dim': DX, 'action_dim': DU,
                  'feedback_gains': [0.1] * (T * DU * DX), 'feedforward': [0.0] * (T * DU),
                  'noise_chol': list(np.tile(np.eye(DU).ravel(), T)),
                  'dynamics': [0.1] * ((T - 1) * DX * (DX + DU)),
                  'process_noise': [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0] * (T - 1),
                  'initial_mean': [0.0] * DX, 'initial_covariance': [1.0, 0, 0, 0, 1.0, 0,
                                                                     0, 0, 1.0]}
        fields.update(changes)
        return GainsMsg(**fields)
    return [gains(feedback_gains=[5.0]),  # wrong length
            gains(feedback_gains=[NAN] * (T * DU * DX)),
            gains(feedback_gains=[1e308] * (T * DU * DX)),
            gains(initial_covariance=[0.0] * 9),  # not positive definite
            gains(process_noise=[-1.0] * ((T - 1) * 9)),
            gains(dynamics=[1e12] * ((T - 1) * DX * (DX + DU))),
            gains(action_dim=2)]


def test_bad_inputs_on_every_topic_leave_the_system_learning(tmp_path):
    system = Bringup([*default_params(), _params(tmp_path)])
    try:
        peer = rclpy.create_node('fault_injector', context=system.context)
        system.executor.add_node(peer)
        system.nodes.append(peer)
        commands = []
        peer.create_subscription(Float64MultiArray, 'velocity_controller/commands',
                                 lambda m: commands.append(np.array(m.data)), qos.COMMANDS)
        pub = {
            'image': peer.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data),
            'gains': peer.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED),
            'model': peer.create_publisher(String, 'learner/model', qos.LATCHED),
            'potential': peer.create_publisher(LatentPotential, 'latent_potential',
                                               qos.LATENT),
            'belief': peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT),
            'event': peer.create_publisher(EpisodeEvent, 'episode_events', qos.EVENTS),
        }
        reset = peer.create_client(ResetEpisode, 'reset_episode')
        assert system.spin_until(lambda: system.controller.policy_version == 0, timeout=60)
        system.spin_until(lambda: all(p.get_subscription_count() for p in pub.values()),
                          timeout=10)
        bad = [
            ('image', Image(height=64, width=64, encoding='rgb8', step=192, data=bytes(10))),
            ('image', Image(height=2, width=2, encoding='yuv422', step=4, data=bytes(8))),
            ('model', String(data='/nonexistent/model.ckpt')),
            ('potential', LatentPotential(dim=3, mean=[NAN] * 3, precision=[1.0] * 3)),
            ('potential', LatentPotential(dim=3, mean=[0.0] * 3, precision=[-1.0] * 3)),
            ('potential', LatentPotential(dim=50, mean=[0.0] * 50, precision=[1.0] * 50)),
            ('belief', LatentBelief(dim=3, step=0, mean=[INF] * 3, covariance=[1.0] * 9)),
            ('belief', LatentBelief(dim=3, step=999, mean=[0.0] * 3, covariance=[1.0] * 9)),
            ('event', EpisodeEvent(episode_id=10**6, kind=EpisodeEvent.STEP, step=1,
                                   cost=NAN, action=[NAN] * 7)),
            ('event', EpisodeEvent(episode_id=10**6, kind=9)),
            ('event', EpisodeEvent(episode_id=10**6 + 1, kind=EpisodeEvent.START,
                                   aim_offset=[NAN, INF])),
        ] + [('gains', message) for message in _bad_gains()]
        for topic, message in bad:
            pub[topic].publish(message)
            system.executor.spin_once(timeout_sec=0.05)
        reset.call_async(ResetEpisode.Request(task_id=7, seed=0))
        reset.call_async(ResetEpisode.Request(task_id=1, seed=2**63))
        # Learning goes on to its next policy, its episodes recorded intact.
        store = EpisodeStore(tmp_path / 'run' / 'episodes')
        assert system.spin_until(lambda: system.learner.learner.policy_version >= 1,
                                 timeout=180), 'no policy update after the bad inputs'
        assert system.controller.policy_version in (0, 1)  # policy 99 was never adopted
    finally:
        system.shutdown()
    assert commands, 'no command was sent'
    for command in commands:
        assert command.shape == (7,) and np.all(np.isfinite(command))
        assert np.all(np.abs(command) <= LIMITS)
    episodes = list(store)
    assert len(episodes) >= 2
    for episode in episodes:
        assert np.all(np.isfinite(episode.actions)) and np.all(np.isfinite(episode.costs))
        assert np.all(np.abs(episode.actions) <= LIMITS + 1e-12)
        assert episode.policy_version in (0, 1)
