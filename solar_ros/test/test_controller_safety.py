"""The controller never publishes a non-finite or out-of-limit joint velocity command."""

import math

import numpy as np
import pytest
from rclpy.parameter import Parameter
from solar_ros.nodes import qos
from solar_ros.nodes.controller_node import (check_velocity_limits, COMMAND_TOPIC,
                                             ControllerNode, safe_command)
from solar_ros.nodes.conversions import gains_from_msg
from solar_ros.validation import MessageValidationError
from solar_ros_msgs.msg import EpisodeEvent, LatentBelief
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
from spinning import spin_until, with_peer
from std_msgs.msg import Float64MultiArray

SAWYER = np.array([1.74, 1.328, 1.957, 1.957, 3.485, 3.485, 4.545])  # rad/s
LIMITS = np.array([0.5, 1.0, 2.0])  # rad/s, a different limit per joint


def _assert_zero(action, limits=LIMITS, problem=''):
    """Assert that ``action`` gives zero velocity (du,) and a reason containing ``problem``."""
    command, reason = safe_command(action, limits)
    np.testing.assert_array_equal(command, np.zeros(len(limits)))
    assert reason is not None and problem in reason, reason


def eye(n: int, copies: int = 1) -> list:
    """Return ``copies`` identity matrices (copies, n, n) as a flat list."""
    return np.tile(np.eye(n), (copies, 1, 1)).ravel().tolist()


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize('joint', [0, 2])
def test_non_finite_values_give_zero_velocity(bad, joint):
    action = np.array([0.1, -0.2, 0.3])
    action[joint] = bad
    _assert_zero(action, problem=f'first {bad} at joint {joint}')


def test_all_nan_and_overflowed_actions_give_zero_velocity():
    _assert_zero(np.full(3, np.nan), problem='3 non-finite')
    with np.errstate(all='ignore'):
        overflowed = np.array([1e308, -1e308, 1e308]) * 10.0
    _assert_zero(overflowed, problem='non-finite')


def test_huge_finite_values_are_clamped_per_joint():
    command, reason = safe_command(np.array([1e308, -1e308, np.finfo(float).max]), LIMITS)
    assert reason is None
    np.testing.assert_array_equal(command, [0.5, -1.0, 2.0])


def test_values_just_inside_and_on_the_limits_pass_unchanged():
    for action in (LIMITS, -LIMITS, np.nextafter(LIMITS, 0.0), np.nextafter(-LIMITS, 0.0),
                   np.zeros(3), np.array([0.25, -0.999, 1.5])):
        command, reason = safe_command(action, LIMITS)
        assert reason is None
        np.testing.assert_array_equal(command, action)


def test_values_just_outside_the_limits_are_clamped_to_them():
    command, reason = safe_command(np.nextafter(LIMITS, np.inf), LIMITS)
    assert reason is None
    np.testing.assert_array_equal(command, LIMITS)
    command, reason = safe_command(np.array([-0.6, 1.5, -7.0]), LIMITS)
    assert reason is None
    np.testing.assert_array_equal(command, [-0.5, 1.0, -2.0])


def test_sawyer_limits_clamp_each_joint_to_its_own_limit():
    action = np.array([2.0, -2.0, 1.0, -3.0, 3.0, -4.0, 5.0])
    command, reason = safe_command(action, SAWYER)
    assert reason is None
    np.testing.assert_array_equal(command, [1.74, -1.328, 1.0, -1.957, 3.0, -3.485, 4.545])
    assert np.all(np.isfinite(command)) and np.all(np.abs(command) <= SAWYER)


def test_wrong_shapes_and_non_numbers_give_zero_velocity():
    _assert_zero(np.zeros(2), problem='shape (2,)')
    _assert_zero(np.zeros((1, 3)), problem='shape (1, 3)')
    _assert_zero(np.float64(0.1), problem='shape ()')
    _assert_zero(['a', 'b', 'c'], problem='not numeric')


@pytest.mark.parametrize('limits', [[0.5, -1.0, 2.0], [0.5, 0.0, 2.0], [0.5, math.nan, 2.0],
                                    [0.5, math.inf, 2.0]])
def test_bad_limits_give_zero_velocity_not_a_wrong_bound(limits):
    _assert_zero(np.array([0.1, 0.2, 0.3]), limits=np.array(limits), problem='velocity_limits')


def test_check_velocity_limits_accepts_and_rejects():
    np.testing.assert_array_equal(check_velocity_limits(SAWYER.tolist(), 7), SAWYER)
    for values, text in (([1.0] * 6, 'expected 7 values'), ([1.0] * 8, 'got 8'),
                         ([1.0] * 6 + [-1.0], '-1.0 at index 6'),
                         ([1.0] * 6 + [0.0], '0.0 at index 6'),
                         ([math.nan] + [1.0] * 6, 'nan at index 0'),
                         ([math.inf] * 7, 'inf at index 0'), (['fast'] * 7, 'numbers')):
        with pytest.raises(ValueError, match='parameter velocity_limits') as error:
            check_velocity_limits(values, 7)
        assert text in str(error.value)


@pytest.mark.parametrize('limits', [[-1.0] + [1.0] * 6, [1.0] * 6 + [0.0],
                                    [1.0] * 3 + [math.nan] + [1.0] * 3, [1.0] * 6, [1.0] * 8])
def test_controller_construction_fails_on_bad_velocity_limits(context, limits):
    with pytest.raises(ValueError, match='parameter velocity_limits'):
        ControllerNode(context=context,
                       parameter_overrides=[Parameter('velocity_limits', value=limits)])


def test_huge_gains_over_dds_give_only_finite_commands_within_limits(context):
    T, DX, DU = 4, 3, 7
    node = ControllerNode(context=context)
    peer, executor = with_peer(node, context, 'safety_peer')
    commands = []
    peer.create_subscription(Float64MultiArray, COMMAND_TOPIC,
                             lambda msg: commands.append(np.array(msg.data)), qos.COMMANDS)
    gains = GainsMsg(horizon=T, state_dim=DX, action_dim=DU,
                     feedback_gains=[1e6] * (T * DU * DX), feedforward=[0.0] * (T * DU),
                     noise_chol=eye(DU, T), dynamics=[0.0] * ((T - 1) * DX * (DX + DU)),
                     process_noise=eye(DX, T - 1), initial_mean=[0.0] * DX,
                     initial_covariance=eye(DX))
    # Gains at the largest accepted size (gains.MAX_MAGNITUDE) on huge but finite beliefs:
    # K s overflows to +inf, to inf - inf = NaN, is 0 (only noise) and is large but finite.
    means = [[2e303] * DX, [2e303, -2e303, 0.0], [0.0] * DX, [1e-3] * DX]
    beliefs = peer.create_publisher(LatentBelief, 'latent_belief', qos.LATENT)

    try:
        peer.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED).publish(gains)
        spin_until(executor, lambda: node.policy_version is not None, 'the gains')
        peer.create_publisher(EpisodeEvent, 'episode_events', qos.EVENTS).publish(
            EpisodeEvent(episode_id=1, task_id=1, kind=EpisodeEvent.START))
        spin_until(executor, lambda: node._episode_id == 1, 'the episode start')
        for t, mean in enumerate(means):
            beliefs.publish(LatentBelief(episode_id=1, step=t, dim=DX, mean=mean,
                                         covariance=eye(DX)))
            spin_until(executor, lambda: len(commands) == t + 1, f'command {t}')
    finally:
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
    for command in commands:
        assert command.shape == (DU,)
        assert np.all(np.isfinite(command)) and np.all(np.abs(command) <= SAWYER)
    np.testing.assert_array_equal(commands[0], np.zeros(DU))
    np.testing.assert_array_equal(commands[1], np.zeros(DU))
    assert np.any(commands[2] != 0.0)  # the noise alone: a real, small command
    np.testing.assert_array_equal(np.abs(commands[3]), SAWYER)  # saturated


def _gains_msg(**changes) -> GainsMsg:
    """Return valid gains (T=4, dx=3, du=7) with ``changes`` applied."""
    T, DX, DU = 4, 3, 7
    fields = {'horizon': T, 'state_dim': DX, 'action_dim': DU,
              'feedback_gains': [0.1] * (T * DU * DX), 'feedforward': [0.0] * (T * DU),
              'noise_chol': eye(DU, T), 'dynamics': [0.1] * ((T - 1) * DX * (DX + DU)),
              'process_noise': eye(DX, T - 1), 'initial_mean': [0.0] * DX,
              'initial_covariance': eye(DX)}
    fields.update(changes)
    return GainsMsg(**fields)


@pytest.mark.parametrize('changes, message', [
    ({'initial_covariance': [0.0] * 9}, 'P0 is not positive definite'),
    ({'process_noise': [-1.0] * 27}, 'Q is not positive definite'),
    ({'dynamics': [1e9] * 90}, 'F has an entry of size 1e'),
    ({'feedback_gains': [1e308] * 84}, 'K has an entry of size'),
    ({'action_dim': 2, 'feedback_gains': [0.0] * 24, 'feedforward': [0.0] * 8,
      'noise_chol': eye(2, 4), 'dynamics': [0.0] * 45}, 'action_dim: expected 7'),
])
def test_one_gains_check_for_filter_and_controller(changes, message):
    """Both nodes adopt gains through gains_from_msg(msg, action_dim): they agree."""
    assert gains_from_msg(_gains_msg(), 7).policy_version == 0
    with pytest.raises(MessageValidationError, match=message):
        gains_from_msg(_gains_msg(**changes), 7)
