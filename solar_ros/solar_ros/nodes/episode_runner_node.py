"""Episode runner node: starts episodes one after another through ``reset_episode``.

It calls the ``reset_episode`` service (solar_ros_msgs/ResetEpisode) with ``task`` and seed
``seed + n`` for episode n, once the service is available and again after each END event
on ``episode_events``, until ``episodes`` episodes have started (0: forever). With
``paced`` (the default) it starts an episode only while the learner's budget
(``learner/episode_budget``, solar_ros_msgs/EpisodeBudget) allows: it has started fewer
episodes than the learner asked for in its session, so no episode runs that the learner
will not use, and none while it refits; each reset carries the budget's ``mean_action``
(episodes the learner wants run without exploration noise, its checks), and such an episode
resets with the seed the budget gives it (``check_seeds``, for the last episodes asked
for), so that the policies' checks start from the same states. Kept apart from the
controller so that the controller stays a pure function of beliefs and gains, and so that
a real arm can replace this node with its own reset procedure (keeping the same budget
protocol, and copying ``mean_action`` into the episode's events).

A reset whose response and START event both fail to arrive within ``reset_timeout``
seconds is sent again, with the same seed, every ``reset_timeout`` seconds until one of
them comes: a request or response can be lost while the service's endpoints are still
matching, even after ``service_is_ready()``. A duplicate is harmless, as the sim refuses a
reset while an episode runs; such a refusal of a resent reset means an earlier copy
started the episode, so the runner waits for that episode's END.
"""

from typing import Optional

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.timer import Timer
from solar_ros.nodes import qos
from solar_ros.nodes.spin import spin_node
from solar_ros_msgs.msg import EpisodeBudget, EpisodeEvent
from solar_ros_msgs.srv import ResetEpisode


class EpisodeRunnerNode(Node):
    """Reset the arm into a new episode whenever the last one ends."""

    def __init__(self, node_name: str = 'episode_runner', **kwargs) -> None:
        """Declare parameters and start the first episode once the service is up."""
        super().__init__(node_name, **kwargs)

        def integer(name: str, default: int, description: str, low: int = 0,
                    high: int = 2**31 - 1) -> int:
            descriptor = ParameterDescriptor(description=description, read_only=True,
                                             integer_range=[IntegerRange(
                                                 from_value=low, to_value=high, step=1)])
            return self.declare_parameter(name, default, descriptor).value

        self.task = integer('task', 1, 'task id of every episode (1, 2 or 3)', 1, 3)
        self._seed = integer('seed', 0, 'episode n is reset with seed + n')
        self._episodes = integer('episodes', 0, 'episodes to run; 0 runs forever')
        self._paced = self.declare_parameter('paced', True, ParameterDescriptor(
            description='start episodes only as the learner asks (learner/episode_budget); '
                        'false: one after another (deploy mode)', read_only=True)).value
        self._reset_timeout = self.declare_parameter('reset_timeout', 5.0, ParameterDescriptor(
            description='s to wait for the response or START event of a reset before sending it '
                        'again', read_only=True,
            floating_point_range=[FloatingPointRange(from_value=0.1, to_value=600.0)])).value
        self.started = 0
        self.ended = 0
        self.successes = 0
        self._running = False  # an episode was started and its END not seen yet
        self._ready = False  # the reset service is available
        self._budget: Optional[EpisodeBudget] = None
        self._started_in_session = 0
        self.resends = 0  # resets sent again for want of a response or START event
        self._unanswered: Optional[ResetEpisode.Request] = None  # no response nor START yet
        self._resend_timer: Optional[Timer] = None
        self._client = self.create_client(ResetEpisode, 'reset_episode')
        self.create_subscription(EpisodeEvent, 'episode_events', self._on_event, qos.EVENTS)
        self.create_subscription(EpisodeBudget, 'learner/episode_budget', self._on_budget,
                                 qos.LATCHED_READER)
        self._waiting = self.create_timer(0.2, self._start_when_ready)

    @property
    def finished(self) -> bool:
        """Return whether the configured number of episodes has ended."""
        return 0 < self._episodes <= self.ended

    def _start_when_ready(self) -> None:
        if not self._client.service_is_ready():
            self.get_logger().info('waiting for reset_episode', throttle_duration_sec=5.0)
            return
        self._waiting.cancel()
        self._ready = True
        self._try_start()

    def _allowed(self) -> bool:
        """Return whether the learner's budget (when paced) allows one more episode."""
        if not self._paced:
            return True
        return self._budget is not None and self._started_in_session < self._budget.issued

    def _try_start(self) -> None:
        """Start the next episode if none runs, the service is up and the budget allows."""
        if not self._ready or self._running or not self._allowed():
            return
        if self._episodes and self.started >= self._episodes:
            return
        mean_action = bool(self._paced and self._budget.mean_action)
        request = ResetEpisode.Request(task_id=self.task, seed=self._next_seed(mean_action),
                                       mean_action=mean_action)
        self.started += 1
        self._started_in_session += 1
        self._running = True
        self._unanswered = request
        self._resend_timer = self.create_timer(self._reset_timeout, self._resend)
        self._send(request, resent=False)

    def _next_seed(self, mean_action: bool) -> int:
        """Return the next episode's reset seed: the budget's check seed, or seed + n.

        The budget's ``check_seeds`` belong to its last ``len(check_seeds)`` episodes asked
        for (of ``issued`` in the session).
        """
        own = self._seed + self.started
        if not mean_action:
            return own
        seeds = self._budget.check_seeds
        index = self._started_in_session - (self._budget.issued - len(seeds))
        return int(seeds[index]) if 0 <= index < len(seeds) else own

    def _send(self, request: ResetEpisode.Request, resent: bool) -> None:
        self._client.call_async(request).add_done_callback(
            lambda future: self._on_reset(future, request, resent))

    def _resend(self) -> None:
        """Send the unanswered reset again (called every ``reset_timeout`` seconds)."""
        if self._unanswered is None:
            return
        self.resends += 1
        self.get_logger().warning(
            f'no response nor START event {self._reset_timeout:g} s after the reset with '
            f'seed {self._unanswered.seed}: sending it again')
        self._send(self._unanswered, resent=True)

    def _answered(self) -> None:
        """Stop resending: the reset was answered or its episode started."""
        self._unanswered = None
        if self._resend_timer is not None:
            self.destroy_timer(self._resend_timer)
            self._resend_timer = None

    def _on_reset(self, future, request: ResetEpisode.Request, resent: bool) -> None:
        response = future.result()
        if request is not self._unanswered:
            return  # a copy of a reset already answered, or of an earlier episode's
        self._answered()
        if response.success:
            return
        if resent:
            self.get_logger().info(
                f'the resent reset with seed {request.seed} was refused ({response.message}); '
                'an earlier copy started the episode: waiting for its END')
            return
        self._running = False
        self.get_logger().error(f'reset failed: {response.message}')

    def _on_budget(self, msg: EpisodeBudget) -> None:
        if self._budget is None or msg.session != self._budget.session:
            self._started_in_session = 0  # a new learner session counts from zero
        self._budget = msg
        self._try_start()

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.kind == EpisodeEvent.STEP:
            return
        self._answered()  # a START, or an END whose START was missed
        if msg.kind != EpisodeEvent.END:
            return
        self._running = False
        self.ended += 1
        self.successes += int(msg.success)
        self.get_logger().debug(  # the sim logs the episode's end at INFO
            f'episode {msg.episode_id} (task {msg.task_id}) ended after {msg.step} steps: '
            f'success {msg.success}, last cost {msg.cost:.3f}')
        self._try_start()


def main(args=None) -> None:
    """Run the episode runner until shutdown."""
    spin_node(EpisodeRunnerNode, args)


if __name__ == '__main__':
    main()
