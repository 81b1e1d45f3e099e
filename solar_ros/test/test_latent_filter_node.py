"""The latent filter node over DDS gives the closed-form Kalman beliefs, step by step."""


from types import SimpleNamespace

from builtin_interfaces.msg import Time
import numpy as np
import pytest
from rclpy.parameter import Parameter
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.lds import LDSParams
from solar_ros.core.policy import LinearGaussianPolicy
from solar_ros.nodes import qos
from solar_ros.nodes.conversions import gains_to_msg, potential_to_msg
from solar_ros.nodes.latent_filter_node import LatentFilterNode
from solar_ros_msgs.msg import EpisodeEvent, LatentBelief, LatentPotential
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
from spinning import spin_until, with_peer
from std_msgs.msg import Float64MultiArray, Header
import torch

DX, DU, T = 3, 2, 4


def _random_gains(rng: np.random.Generator) -> TimeVaryingGains:
    """Return gains whose dynamics are a random stable LDS with full-rank noise."""
    F = np.concatenate([0.9 * np.eye(DX) + 0.1 * rng.standard_normal((T - 1, DX, DX)),
                        rng.standard_normal((T - 1, DX, DU))], axis=-1)
    A = rng.standard_normal((T - 1, DX, DX))
    Q = 0.1 * A @ A.transpose(0, 2, 1) + 0.05 * np.eye(DX)
    B = rng.standard_normal((DX, DX))
    dynamics = LDSParams(F=torch.tensor(F), Q=torch.tensor(Q),
                         mu0=torch.tensor(rng.standard_normal(DX)),
                         P0=torch.tensor(B @ B.T + np.eye(DX)))
    return TimeVaryingGains(LinearGaussianPolicy.initial(T, DX, DU, 0.3), dynamics, 3, 7)


def _random_episode(seed: int):
    """Return random gains, potentials' (T, dx) means and precisions and (T, du) actions."""
    rng = np.random.default_rng(seed)
    gains = _random_gains(rng)
    return (gains, rng.standard_normal((T, DX)), rng.uniform(0.5, 4.0, (T, DX)),
            rng.standard_normal((T, DU)))


def _closed_form(gains: TimeVaryingGains, means, precisions, actions):
    """Return the filtered (mean, cov) per step, in plain numpy information form."""
    d = gains.dynamics
    m, P = d.mu0.numpy(), d.P0.numpy()
    beliefs = []
    for t in range(T):
        J = np.diag(precisions[t])
        P_post = np.linalg.inv(np.linalg.inv(P) + J)
        m_post = P_post @ (np.linalg.solve(P, m) + J @ means[t])
        beliefs.append((m_post, P_post))
        if t < T - 1:
            F = d.F[t].numpy()
            m = F @ np.concatenate([m_post, actions[t]])
            P = F[:, :DX] @ P_post @ F[:, :DX].T + d.Q[t].numpy()
    return beliefs


@pytest.fixture
def filter_system(context):
    """Yield the filter node and a peer's publishers, the beliefs received and spin()."""
    node = LatentFilterNode(context=context,
                            parameter_overrides=[Parameter('action_dim', value=DU)])
    peer, executor = with_peer(node, context, 'filter_peer')
    beliefs = []
    peer.create_subscription(LatentBelief, 'latent_belief', beliefs.append, qos.LATENT)
    system = SimpleNamespace(
        node=node, beliefs=beliefs,
        spin=lambda done, what: spin_until(executor, done, what),
        linger=lambda: executor.spin_once(timeout_sec=0.3),  # room for a wrong extra message
        gains=peer.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED),
        events=peer.create_publisher(EpisodeEvent, 'episode_events', qos.EVENTS),
        potentials=peer.create_publisher(LatentPotential, 'latent_potential', qos.LATENT),
        commands=peer.create_publisher(Float64MultiArray, 'velocity_controller/commands',
                                       qos.COMMANDS))
    yield system
    executor.shutdown()
    node.destroy_node()
    peer.destroy_node()


def _start(system: SimpleNamespace, gains: TimeVaryingGains) -> None:
    """Send the gains and episode 1's START (stamped 10 s); wait until a frame is awaited."""
    system.gains.publish(gains_to_msg(gains, Time(sec=1)))
    system.spin(lambda: system.node._online.pending, 'the gains')
    system.events.publish(EpisodeEvent(header=Header(stamp=Time(sec=10)), episode_id=1,
                                       task_id=1, kind=EpisodeEvent.START))
    system.spin(lambda: system.node._state == 'await_frame', 'the start')


def _assert_beliefs(beliefs, expected) -> None:
    """Assert each belief's mean and covariance equal the expected (mean, cov)."""
    assert len(beliefs) == len(expected)
    for belief, (mean, cov) in zip(beliefs, expected):
        np.testing.assert_allclose(belief.mean, mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.reshape(belief.covariance, (DX, DX)), cov,
                                   rtol=1e-9, atol=1e-12)


def test_beliefs_match_the_closed_form_kalman_filter(filter_system):
    gains, means, precisions, actions = _random_episode(5)
    system = filter_system
    _start(system, gains)
    for t in range(T):
        system.potentials.publish(potential_to_msg(Header(stamp=Time(sec=10 + t)), 1, t,
                                                   means[t], precisions[t], 7))
        system.spin(lambda: len(system.beliefs) == t + 1, f'belief {t}')
        system.commands.publish(Float64MultiArray(data=actions[t].tolist()))
    # A resent START of the running episode changes nothing.
    system.events.publish(EpisodeEvent(header=Header(stamp=Time(sec=10)), episode_id=1,
                                       task_id=1, kind=EpisodeEvent.START))
    system.linger()
    assert [b.step for b in system.beliefs] == list(range(T))
    assert all(b.episode_id == 1 and b.model_version == 7 for b in system.beliefs)
    _assert_beliefs(system.beliefs, _closed_form(gains, means, precisions, actions))


def test_a_potential_that_cannot_be_used_still_gives_the_step_a_belief(filter_system):
    """Lockstep never waits forever: the step gets the prediction, without the frame."""
    gains = _random_gains(np.random.default_rng(6))
    system = filter_system
    _start(system, gains)
    system.potentials.publish(potential_to_msg(Header(stamp=Time(sec=10)), 1, 0,
                                               np.zeros(DX + 1), np.ones(DX + 1), 7))
    system.spin(lambda: len(system.beliefs) == 1, 'a belief for the step')
    np.testing.assert_allclose(system.beliefs[0].mean, gains.dynamics.mu0.numpy())
    np.testing.assert_allclose(np.reshape(system.beliefs[0].covariance, (DX, DX)),
                               gains.dynamics.P0.numpy())


def test_a_copy_of_the_potential_used_last_is_answered_again_and_never_used_twice(
        filter_system):
    """The encoder answers the sim's resent frame again; the filter must not filter it twice."""
    gains, means, precisions, actions = _random_episode(7)
    system = filter_system

    def potential(t: int) -> LatentPotential:
        return potential_to_msg(Header(stamp=Time(sec=10 + t)), 1, t, means[t],
                                precisions[t], 7)

    _start(system, gains)
    system.potentials.publish(potential(0))
    system.spin(lambda: len(system.beliefs) == 1, 'belief 0')
    system.potentials.publish(potential(0))  # a copy while the command is awaited
    system.spin(lambda: len(system.beliefs) == 2, 'belief 0 again')
    system.commands.publish(Float64MultiArray(data=actions[0].tolist()))
    system.spin(lambda: system.node._state == 'await_frame', 'the prediction')
    system.potentials.publish(potential(0))  # a late copy: not the frame of step 1
    system.potentials.publish(potential(1))
    system.spin(lambda: len(system.beliefs) == 3, 'belief 1')
    system.linger()
    assert [b.step for b in system.beliefs] == [0, 0, 1]
    expected = _closed_form(gains, means, precisions, actions)
    _assert_beliefs(system.beliefs, [expected[0], expected[0], expected[1]])


def test_a_command_the_filter_missed_is_caught_up_from_the_sims_step_event(filter_system):
    """The sim stepped on a command the filter never saw: its STEP event carries the action."""
    gains, means, precisions, actions = _random_episode(8)
    system = filter_system

    def step_event(step: int, action: np.ndarray) -> EpisodeEvent:
        return EpisodeEvent(header=Header(stamp=Time(sec=10 + step)), episode_id=1, task_id=1,
                            kind=EpisodeEvent.STEP, step=step, action=action.tolist())

    _start(system, gains)
    system.potentials.publish(potential_to_msg(Header(stamp=Time(sec=10)), 1, 0, means[0],
                                               precisions[0], 7))
    system.spin(lambda: len(system.beliefs) == 1, 'belief 0')
    system.events.publish(step_event(0, actions[0]))  # the event of frame 0: not a step taken
    system.linger()
    assert system.node._state == 'await_command'
    system.events.publish(step_event(1, actions[0]))  # the sim applied step 0's action
    system.spin(lambda: system.node._state == 'await_frame', 'the caught-up prediction')
    system.potentials.publish(potential_to_msg(Header(stamp=Time(sec=11)), 1, 1, means[1],
                                               precisions[1], 7))
    system.spin(lambda: len(system.beliefs) == 2, 'belief 1')
    system.commands.publish(Float64MultiArray(data=actions[0].tolist()))  # step 0's, late
    system.linger()
    assert system.node._online.t == 1, "the late command was taken for step 1's"
    system.commands.publish(Float64MultiArray(data=actions[1].tolist()))
    system.spin(lambda: system.node._online.t == 2, "step 1's command")
    system.potentials.publish(potential_to_msg(Header(stamp=Time(sec=12)), 1, 2, means[2],
                                               precisions[2], 7))
    system.spin(lambda: len(system.beliefs) == 3, 'belief 2')
    assert [b.step for b in system.beliefs] == [0, 1, 2]
    _assert_beliefs(system.beliefs, _closed_form(gains, means, precisions, actions)[:3])
