"""Latent filter node: one product-of-experts Kalman step per frame (SOLAR's run-time filter).

- subscribes ``latent_potential`` (the encoder's evidence), ``velocity_controller/commands``
  (the command actually sent, std_msgs/Float64MultiArray), ``policy/gains`` (latched; its
  dynamics F_t, Q_t and initial belief drive the filter) and ``episode_events``.
- publishes ``latent_belief`` (solar_ros_msgs/LatentBelief) for step t.

New gains are adopted at the next START, so one episode is filtered with one model; the
first gains, when they come after a START (a normal race at launch), start that episode.
Per episode: at START the belief resets to N(mu0, P0) of the current gains; then it
alternates: a potential updates the belief of step t and the belief is published; the
command of step t predicts step t + 1 with F_t, Q_t. A potential that arrives before its
START event is kept (the latest one) and used once the episode starts, so no frame is lost
to topic reordering. A copy of the potential used last (the same stamp: the encoder answers
the sim's resent frame again) is not used twice: while the step's command is awaited its
belief is published again, so a belief lost before the controller's subscription matched
is sent once more; otherwise the copy is dropped. A command the filter never saw (lost on
its way here, or rejected as bad) while the sim stepped is caught up from the sim's STEP
event, which carries the action the sim applied: the STEP event of step t + 1 arriving while
step t's command is awaited predicts with that action (with a warning), so the next frame is
filtered instead of the lockstep chain stalling; the same command arriving late afterwards is
recognised by its values and not taken for the next step's. Bad messages get a throttled
error and are skipped. The update and prediction are
:meth:`solar_ros.core.online.OnlineStep.update` and ``predict``, as in one process.
"""

from typing import Optional, Sequence

import numpy as np
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor
from rclpy.node import Node
from solar_ros.core.online import OnlineStep
from solar_ros.nodes import qos
from solar_ros.nodes.conversions import (answers, belief_to_msg, gains_from_msg,
                                         potential_from_msg, stamp_ns)
from solar_ros.nodes.spin import publish, spin_node
from solar_ros.validation import check_vector, MessageValidationError
from solar_ros_msgs.msg import EpisodeEvent, LatentBelief, LatentPotential
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
from std_msgs.msg import Float64MultiArray

IDLE, AWAIT_FRAME, AWAIT_COMMAND = 'idle', 'await_frame', 'await_command'


class LatentFilterNode(Node):
    """Filter the latent state of the running episode, one frame at a time."""

    def __init__(self, node_name: str = 'latent_filter', **kwargs) -> None:
        """Wire the topics; the filter starts with the first gains and START event."""
        super().__init__(node_name, **kwargs)
        self._action_dim = self.declare_parameter(
            'action_dim', 7, ParameterDescriptor(
                description='joint velocities per command, du (as for the controller)',
                read_only=True, integer_range=[IntegerRange(from_value=1, to_value=1000,
                                                            step=1)])).value
        self._online = OnlineStep()  # its gains are swapped in at episode starts
        self._state = IDLE
        self._episode_id = 0
        self._start_ns = 0
        self._early: Optional[LatentPotential] = None
        self._last_belief: Optional[LatentBelief] = None  # of the potential filtered last
        self._waiting_start: Optional[EpisodeEvent] = None  # a START seen before any gains
        # (du,) rad/s: the action of a STEP event the filter predicted with, for want of its
        # command; that command, if it still comes, is dropped
        self._caught_up: Optional[np.ndarray] = None
        self._publisher = self.create_publisher(LatentBelief, 'latent_belief', qos.LATENT)
        self.create_subscription(LatentPotential, 'latent_potential', self._on_potential,
                                 qos.LATENT)
        self.create_subscription(Float64MultiArray, 'velocity_controller/commands',
                                 self._on_command, qos.COMMANDS)
        self.create_subscription(GainsMsg, 'policy/gains', self._on_gains, qos.LATCHED_READER)
        self.create_subscription(EpisodeEvent, 'episode_events', self._on_event, qos.EVENTS)

    def _error(self, text: str) -> None:
        self.get_logger().error(text, throttle_duration_sec=1.0)

    def _on_gains(self, msg: GainsMsg) -> None:
        try:
            gains = gains_from_msg(msg, self._action_dim)
        except (MessageValidationError, ValueError) as error:
            self._error(f'gains rejected, keeping the current ones: {error}')
            return
        self._online.offer(gains=gains)
        waiting, self._waiting_start = self._waiting_start, None
        if waiting is not None:  # the first gains came after the episode's start
            self._on_event(waiting)

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.kind == EpisodeEvent.STEP:
            self._catch_up(msg)
            return
        if msg.kind != EpisodeEvent.START or msg.episode_id == self._episode_id:
            return  # not a start, or a resent copy of the running episode's start
        self._online.start()
        if self._online.gains is None:
            self.get_logger().info(
                'episode started before the first gains: waiting for them (policy/gains has '
                f"{self.count_publishers('policy/gains')} publisher(s) so far)")
            self._waiting_start = msg
            return
        self._episode_id, self._start_ns = msg.episode_id, stamp_ns(msg.header)
        self._state = AWAIT_FRAME
        early, self._early = self._early, None
        if early is not None and stamp_ns(early.header) >= self._start_ns:
            self._on_potential(early)

    def _on_potential(self, msg: LatentPotential) -> None:
        if answers(self._last_belief, msg.header):  # a copy of the potential filtered last
            if self._state == AWAIT_COMMAND:
                publish(self, self._publisher, self._last_belief)
            return
        if self._state != AWAIT_FRAME or stamp_ns(msg.header) < self._start_ns:
            self._early = msg
            return
        gains = self._online.gains
        try:
            if msg.dim != gains.state_dim:
                raise MessageValidationError(f'dim {msg.dim}, the policy has dx '
                                             f'{gains.state_dim}')
            J, h = potential_from_msg(msg)
            mean, cov = self._online.update(J, h)
        except (MessageValidationError, ValueError, RuntimeError) as error:
            # numpy's LinAlgError is a ValueError. The step still gets a belief, the prediction
            # without this frame's evidence, so that a lockstep system never waits forever.
            self._error(f'potential not used ({error}): acting on the prediction')
            mean, cov = self._online.belief()
        belief = belief_to_msg(msg.header, self._episode_id, self._online.t, mean, cov,
                               msg.model_version)
        publish(self, self._publisher, belief)
        self._last_belief = belief
        self._state = AWAIT_COMMAND

    def _catch_up(self, msg: EpisodeEvent) -> None:
        """Predict with a STEP event's action when the sim took the awaited step without us.

        The sim's STEP event of step t + 1 carries the action it applied in step t, (du,)
        rad/s; it comes with step t + 1's frame, after the command it answers.
        """
        if (self._state != AWAIT_COMMAND or msg.episode_id != self._episode_id
                or msg.step != self._online.t + 1):
            return
        try:
            action = check_vector('step event action', msg.action,
                                  self._online.gains.action_dim)
        except MessageValidationError as error:
            self._error(f'cannot catch up with the sim: {error}')
            return
        self.get_logger().warning(
            f'episode {self._episode_id}: the sim took step {self._online.t} without a usable '
            'command reaching the filter; predicting with the action of its step event',
            throttle_duration_sec=1.0)
        self._caught_up = action
        self._advance(action)

    def _on_command(self, msg: Float64MultiArray) -> None:
        caught_up, self._caught_up = self._caught_up, None
        if caught_up is not None and np.array_equal(caught_up, msg.data):
            return  # the late command of the step already predicted from its STEP event
        if self._state != AWAIT_COMMAND:
            return
        try:
            action = check_vector('command', msg.data, self._online.gains.action_dim)
        except MessageValidationError as error:
            self._error(f'command ignored by the filter: {error}')
            return
        self._advance(action)

    def _advance(self, action: Sequence[float]) -> None:
        """Predict the next step with step t's action (du,) rad/s, then filter its frame."""
        try:
            more = self._online.predict(action)
        except (ValueError, RuntimeError) as error:
            self._error(f'command not filtered (the prediction failed): {error}')
            return
        if not more:  # the episode's last step
            self._state = IDLE
            return
        self._state = AWAIT_FRAME
        early, self._early = self._early, None
        if early is not None and stamp_ns(early.header) > self._start_ns:
            self._on_potential(early)


def main(args=None) -> None:
    """Run the latent filter node until shutdown."""
    spin_node(LatentFilterNode, args)


if __name__ == '__main__':
    main()
