"""LQR controller node: latent beliefs and time-varying gains in, joint velocities out.

- subscribes ``latent_belief`` (step t's filtered mean), ``policy/gains`` (latched, so a
  late joiner gets the current policy) and ``episode_events`` (new exploration noise per
  episode).
- publishes ``velocity_controller/commands`` (std_msgs/Float64MultiArray, rad/s, reliable),
  a_t = K_t s_t + k_t + noise_scale * L_t eps_t, clamped to ``velocity_limits``, and at
  each episode start ``policy/in_use`` (solar_ros_msgs/PolicyInUse): the policy that runs
  the episode, which the learner records it under.

New gains are adopted at the next episode start (the first ones at once), so each episode
runs one policy. The action is :meth:`solar_ros.core.online.OnlineStep.act` and the
exploration noise of episode n is :func:`solar_ros.core.online.episode_noise` with seed
``seed + n``, as in one process; an episode whose START event has ``mean_action`` runs
without it (the learner's checks, ``loop.check_rollouts``). Each step of an episode is
answered once: a copy of a belief already answered (the same episode and step; the filter
sends one again when the sim resends an unanswered frame in lockstep) gets no command, as a
second command would step a lockstep sim twice. So that the one command is not lost, it is
held back in lockstep while the publisher has matched no reader of the command topic, or
fewer than the ROS graph shows (a reliable publisher sends nothing to a reader it has not yet
matched), for at most ``match_wait`` seconds; only the latest command is held. Should it be
lost all the same, the sim says so: it sends the frame of a step it has no command for again
every ``lockstep_resend_after`` seconds, with the frame's episode event. When
``resend_after_copies`` such copies of the event of the step answered last arrive after the
answer, the command went out nearly a resend interval (less the event's latency) before
the last of them was sent, so the sim has lost it rather than not yet received it: the same
command is sent again (with a throttled warning), once per further copy.

Safety: a gains message that fails validation or whose action dim differs from
``velocity_limits`` is rejected with an error and the last good policy is kept; a belief
whose dim differs from the policy's gets zero velocity; in ``realtime`` mode a timer sends
zero velocity whenever the last belief is older than ``stale_after`` seconds.

Guaranteed, whatever arrives on the subscribed topics: every message published on
``velocity_controller/commands`` holds du = ``action_dim`` finite values in rad/s, value i
within [-velocity_limits[i], +velocity_limits[i]]. The action is computed with numpy's
floating-point errors silenced and every command goes through :func:`safe_command`, the last
line of defence: a finite action is clamped joint by joint (saturation, silent); one that is
not finite (e.g. finite but huge gains that overflow to inf or NaN) or has the wrong shape is
replaced by zero velocity, with a throttled error naming the topic and the problem. At start,
:func:`check_velocity_limits` requires ``action_dim`` entries, each finite and > 0; a bad
value raises ValueError naming the parameter before any topic is created.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.time import Time
from solar_ros.core.online import episode_noise, OnlineStep
from solar_ros.nodes import qos
from solar_ros.nodes.conversions import gains_from_msg, stamp_ns
from solar_ros.nodes.spin import publish, spin_node
from solar_ros.validation import MessageValidationError, validate_message
from solar_ros_msgs.msg import EpisodeEvent, LatentBelief, PolicyInUse
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
from std_msgs.msg import Float64MultiArray

MODES = ('lockstep', 'realtime')
COMMAND_TOPIC = 'velocity_controller/commands'
MATCH_POLL = 0.01  # s between checks whether a held command's readers have matched


def check_velocity_limits(values: Sequence[float], action_dim: int) -> np.ndarray:
    """Return the per-joint speed limits as a float64 array, or raise ValueError.

    Args:
        values: the ``velocity_limits`` parameter, one speed limit per joint in rad/s.
        action_dim: du, the number of joints commanded (the ``action_dim`` parameter).

    Returns:
        (du,) float64 limits in rad/s, every one finite and > 0.

    Raises:
        ValueError: naming the parameter and its value when the length is not du or an
            entry is not finite or not > 0.

    """
    try:
        limits = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'parameter velocity_limits: expected {action_dim} numbers (rad/s), '
                         f'got {values!r}') from None
    if limits.shape != (action_dim,):
        raise ValueError(f'parameter velocity_limits: expected {action_dim} values (one per '
                         f'joint, action_dim), got {limits.size}: {np.ravel(limits).tolist()}')
    bad = np.flatnonzero(~(np.isfinite(limits) & (limits > 0)))
    if bad.size:
        raise ValueError(f'parameter velocity_limits: every entry must be finite and > 0 '
                         f'(rad/s), got {limits[bad[0]]} at index {bad[0]}: {limits.tolist()}')
    return limits


def safe_command(action: np.ndarray,
                 limits: np.ndarray) -> Tuple[np.ndarray, Optional[str]]:
    """Return the command to publish for ``action`` and the problem found, or None.

    A finite action of the right shape is clamped to [-limits, +limits] joint by joint
    (saturation is not a problem). Anything else gives zero velocity and the reason: an
    action that cannot be read as numbers, has the wrong shape or holds NaN or +-inf, or
    limits that are not all finite and > 0 (then ``np.clip`` would return wrong bounds).
    The command returned is always finite, and within the limits whenever they are valid.

    Args:
        action: (du,) joint velocities in rad/s.
        limits: (du,) per-joint speed limits in rad/s.

    Returns:
        command: (du,) float64 joint velocities in rad/s, zero when ``reason`` is not None.
        reason: None when the command is the clamped action, else what was wrong.

    """
    limits = np.asarray(limits, dtype=np.float64).reshape(-1)
    zero = np.zeros(limits.shape[0])
    if not np.all(np.isfinite(limits) & (limits > 0)):
        return zero, f'velocity_limits {limits.tolist()} are not all finite and > 0'
    try:
        values = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as error:
        return zero, f'action is not numeric ({error})'
    if values.shape != limits.shape:
        return zero, f'action has shape {values.shape}, expected {limits.shape}'
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        return zero, (f'{bad.size} non-finite value(s) in the action, first {values[bad[0]]} '
                      f'at joint {bad[0]}')
    return np.clip(values, -limits, limits), None


class ControllerNode(Node):
    """Apply the current time-varying linear-Gaussian policy to the filtered latent state."""

    def __init__(self, node_name: str = 'controller', **kwargs) -> None:
        """Declare parameters and wire the topics."""
        super().__init__(node_name, **kwargs)
        limits = self.declare_parameter(
            'velocity_limits', [1.74, 1.328, 1.957, 1.957, 3.485, 3.485, 4.545],
            ParameterDescriptor(description='per-joint speed limit in rad/s, each finite and '
                                            '> 0; commands are clamped to +-limit; its '
                                            'length must be action_dim; settable while '
                                            'running (checked alike)')).value
        action_dim = self.declare_parameter(
            'action_dim', 7, ParameterDescriptor(
                description='joint velocities per command, du (as for the learner)',
                read_only=True)).value
        # Checked before any topic exists: a bad value fails the construction.
        self._limits = check_velocity_limits(limits, action_dim)
        self._noise_scale = self.declare_parameter(
            'noise_scale', 1.0, ParameterDescriptor(
                description='multiplies the policy noise L_t eps_t (0: mean action); '
                            'settable while running',
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=10.0)])
        ).value
        self._seed = self.declare_parameter(
            'seed', 0, ParameterDescriptor(
                description='exploration noise of episode n is drawn with seed + n',
                read_only=True,
                integer_range=[IntegerRange(from_value=0, to_value=2**31 - 1, step=1)])).value
        self._mode = self.declare_parameter(
            'mode', 'lockstep', ParameterDescriptor(
                description='lockstep: one command per belief; realtime: also send zero '
                            'velocity when the belief is stale', read_only=True)).value
        if self._mode not in MODES:
            raise ValueError(f'parameter mode must be one of {MODES}, got {self._mode!r}')
        self._stale_after = self.declare_parameter(
            'stale_after', 0.25, ParameterDescriptor(
                description='realtime: seconds after which a belief is stale', read_only=True,
                floating_point_range=[FloatingPointRange(from_value=0.01,
                                                         to_value=10.0)])).value
        self._smooth_noise = self.declare_parameter(
            'smooth_noise', False, ParameterDescriptor(
                description='time-correlated exploration noise (as loop.smooth_noise)',
                read_only=True)).value
        if not isinstance(self._smooth_noise, bool):
            raise ValueError(f'parameter smooth_noise must be a bool, got {self._smooth_noise!r}')
        self._match_wait = self.declare_parameter(
            'match_wait', 2.0, ParameterDescriptor(
                description='lockstep: seconds a command may be held back while the command '
                            'topic has no matched reader, or fewer than the graph shows (one '
                            'sent before a reader matched is lost to it); 0: never held',
                read_only=True, floating_point_range=[FloatingPointRange(
                    from_value=0.0, to_value=60.0)])).value
        self._resend_after_copies = self.declare_parameter(
            'resend_after_copies', 2, ParameterDescriptor(
                description='lockstep: copies of the episode event of the step answered last, '
                            'arriving after the answer, after which the command is sent again '
                            '(the sim lost it); 0: never', read_only=True,
                integer_range=[IntegerRange(from_value=0, to_value=100, step=1)])).value
        self._online = OnlineStep(noise_scale=self._noise_scale)
        self._action_dim = action_dim
        self._waiting_start: Optional[EpisodeEvent] = None  # a START seen before any gains
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._episode_id = 0
        self._last_belief_time = None
        self._answered: Optional[Tuple[int, int]] = None  # (episode id, step) answered last
        self._answered_stamp: Optional[int] = None  # its frame's stamp, ns
        self._last_command: Optional[Float64MultiArray] = None  # the answer, as sent
        self._copies_after_answer = 0  # events of the answered frame arrived since the answer
        self._publisher = self.create_publisher(Float64MultiArray, COMMAND_TOPIC,
                                                qos.COMMANDS)
        self._held: Optional[Float64MultiArray] = None  # the command held back, the latest
        self._held_since: Optional[Time] = None  # when the command now held was held back
        # (matched, in the graph) readers when a held command last waited in vain: a reader
        # that never matches (incompatible QoS) does not hold back every command
        self._gave_up: Optional[Tuple[int, int]] = None
        self._release = self.create_timer(MATCH_POLL, self._release_held)
        self._release.cancel()  # running only while a command is held
        self._in_use = self.create_publisher(PolicyInUse, 'policy/in_use', qos.EVENTS)
        self.create_subscription(LatentBelief, 'latent_belief', self._on_belief, qos.LATENT)
        self.create_subscription(GainsMsg, 'policy/gains', self._on_gains, qos.LATCHED_READER)
        self.create_subscription(EpisodeEvent, 'episode_events', self._on_event, qos.EVENTS)
        if self._mode == 'realtime':
            self.create_timer(self._stale_after / 2.0, self._on_timer)

    @property
    def policy_version(self) -> Optional[int]:
        """Return the version of the policy in use, or None before the first one."""
        gains = self._online.gains
        return None if gains is None else gains.policy_version

    def _on_set_parameters(self, parameters: List[Parameter]) -> SetParametersResult:
        """Apply new velocity limits or noise scale at once, checked as at start."""
        limits, scale = self._limits, self._online.noise_scale
        for parameter in parameters:
            if parameter.name == 'velocity_limits':
                try:
                    limits = check_velocity_limits(parameter.value, self._action_dim)
                except ValueError as error:
                    return SetParametersResult(successful=False, reason=str(error))
            elif parameter.name == 'noise_scale':
                scale = float(parameter.value)
        self._limits, self._online.noise_scale = limits, scale
        return SetParametersResult(successful=True)

    def _error(self, text: str) -> None:
        self.get_logger().error(text, throttle_duration_sec=1.0)

    def _send(self, action: np.ndarray) -> None:
        """Publish the (du,) action in rad/s if it is safe, else zero velocity and an error."""
        command, problem = safe_command(action, self._limits)
        if problem is not None:
            # Its own call site, so that other errors' throttling cannot hide this one.
            self.get_logger().error(
                f'{self._publisher.topic_name}: unsafe command ({problem}): sending zero '
                'velocity', throttle_duration_sec=1.0)
        self._deliver(Float64MultiArray(data=command.tolist()))

    def _readers(self) -> Tuple[int, int]:
        """Return the command topic's readers: matched by this publisher, and in the graph."""
        return (self._publisher.get_subscription_count(),
                self.count_subscribers(self._publisher.topic_name))

    def _unmatched(self, readers: Tuple[int, int]) -> bool:
        """Return whether a command sent now could miss a reader of the command topic.

        A reader that the graph already shows may not have matched this publisher yet, and a
        reliable publisher sends nothing to a reader it has not matched: a command lost so
        leaves a lockstep sim, or the latent filter, waiting for it forever.
        """
        matched, in_graph = readers
        return (matched == 0 or matched < in_graph) and readers != self._gave_up

    def _deliver(self, msg: Float64MultiArray) -> None:
        """Publish ``msg``, or hold it back (replacing any held) while a reader is unmatched.

        Only in lockstep: in realtime the next command follows within a control period.
        """
        if self._mode == 'lockstep' and self._match_wait > 0 and (
                self._held is not None or self._unmatched(self._readers())):
            if self._held is None:
                self._held_since = self.get_clock().now()
                self._release.reset()
            self._held = msg
            return
        self._last_command = msg
        publish(self, self._publisher, msg)

    def _release_held(self) -> None:
        """Send the held command once every reader matched, or after ``match_wait`` s."""
        if self._held is None:
            self._release.cancel()
            return
        readers = self._readers()
        waited = (self.get_clock().now() - self._held_since).nanoseconds * 1e-9
        if self._unmatched(readers):
            if waited < self._match_wait:
                return
            self._gave_up = readers
            self.get_logger().warning(
                f'{self._publisher.topic_name}: a command waited {waited:.1f} s for its readers '
                f'to match ({readers[0]} of {readers[1]}); sent anyway')
        msg, self._held = self._held, None
        self._release.cancel()
        self._last_command = msg
        publish(self, self._publisher, msg)

    def _zero(self) -> None:
        self._send(np.zeros(len(self._limits)))

    def _on_gains(self, msg: GainsMsg) -> None:
        try:
            gains = gains_from_msg(msg, self._action_dim)
        except (MessageValidationError, ValueError) as error:
            self._error(f'gains rejected, keeping policy {self.policy_version}: {error}')
            return
        self._online.offer(gains=gains)
        if self._online.gains is None:
            self._adopt()
            if self._waiting_start is not None:  # the episode started before any gains
                self._start(self._waiting_start)

    def _adopt(self) -> None:
        """Switch to the policy received last (at an episode start, or the first one)."""
        if not self._online.pending:
            return
        self._online.adopt()
        gains = self._online.gains
        self.get_logger().info(
            f'policy {gains.policy_version} in use (T={gains.horizon}, '
            f'dx={gains.state_dim}, du={gains.action_dim})')

    def _on_event(self, msg: EpisodeEvent) -> None:
        if (msg.episode_id, msg.step) == self._answered and \
                stamp_ns(msg.header) == self._answered_stamp:
            self._on_copy_of_answered_frame(msg.step)
        if msg.kind != EpisodeEvent.START or msg.episode_id == self._episode_id:
            return  # not a start, or a resent copy of the running episode's start
        self._episode_id = msg.episode_id
        self._adopt()
        self._start(msg)

    def _start(self, msg: EpisodeEvent) -> None:
        """Begin episode ``msg`` with the current policy; wait for one if none came yet."""
        gains = self._online.gains
        self._waiting_start = None if gains is not None else msg
        if gains is not None:
            shape = (gains.horizon, gains.action_dim)
            self._online.start(np.zeros(shape) if msg.mean_action else episode_noise(
                *shape, self._seed + int(msg.episode_id), self._smooth_noise))
            publish(self, self._in_use, PolicyInUse(
                header=msg.header, episode_id=msg.episode_id,
                policy_version=gains.policy_version, model_version=gains.model_version))

    def _on_copy_of_answered_frame(self, step: int) -> None:
        """Send the last command again once the sim has resent its frame often enough."""
        self._copies_after_answer += 1
        if (self._mode != 'lockstep' or not self._resend_after_copies
                or self._copies_after_answer < self._resend_after_copies
                or self._held is not None or self._last_command is None):
            return
        self.get_logger().warning(
            f'the sim sent the frame of step {step} {self._copies_after_answer} more time(s) '
            'after this node answered it: the command was lost, sending it again',
            throttle_duration_sec=1.0)
        publish(self, self._publisher, self._last_command)

    def _on_belief(self, msg: LatentBelief) -> None:
        if (msg.episode_id, msg.step) == self._answered:
            return  # a copy of the belief answered last
        self._answered = (msg.episode_id, msg.step)
        self._answered_stamp = stamp_ns(msg.header)
        self._copies_after_answer = 0
        self._last_belief_time = self.get_clock().now()
        gains = self._online.gains
        if gains is None:
            self.get_logger().warning('no policy yet: holding zero velocity',
                                      throttle_duration_sec=1.0)
            self._zero()
            return
        if msg.dim != gains.state_dim or msg.step >= gains.horizon:
            self._error(f'belief (dim {msg.dim}, step {msg.step}) does not fit policy '
                        f'{gains.policy_version} (dx={gains.state_dim}, T={gains.horizon}): '
                        'holding zero velocity')
            self._zero()
            return
        try:
            mean = validate_message(msg, 'LatentBelief')['mean']
        except MessageValidationError as error:
            self._error(f'belief rejected, holding zero velocity: {error}')
            self._zero()
            return
        self._send(self._online.act(mean, t=int(msg.step)))  # inf/NaN: _send rejects them

    def _on_timer(self) -> None:
        now = self.get_clock().now()
        if (self._last_belief_time is None
                or (now - self._last_belief_time).nanoseconds * 1e-9 > self._stale_after):
            self._zero()


def main(args=None) -> None:
    """Run the controller node until shutdown."""
    spin_node(ControllerNode, args)


if __name__ == '__main__':
    main()
