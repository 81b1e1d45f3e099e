"""Learner node: records every episode, refits SOLAR between episodes, publishes new gains.

- subscribes ``episode_events`` (whose STEP events carry the action the arm applied),
  ``policy/in_use`` (the controller's policy per episode) and ``camera/image_raw`` (with
  ``side_camera/image_raw`` for a two-view model, also ``close_camera/image_raw`` for a
  three-view one and ``top_camera/image_raw`` for a four-view one, matched by stamp;
  sensor-data QoS); an :class:`EpisodeRecorder` assembles each episode, labelled with the
  policy that ran it, and it is written to ``run_dir/episodes`` as soon as it is complete.
- publishes ``policy/gains`` (solar_ros_msgs/TimeVaryingGains) and ``learner/model``
  (std_msgs/String: the model checkpoint the gains act in), both latched, and
  ``learner/episode_budget`` (solar_ros_msgs/EpisodeBudget, latched): how many episodes it
  has asked for, which paces the episode runner.

It asks for exactly the episodes its next update needs (and again for any that arrive
incomplete or of another task, which it does not record, and for those still needed when
no episode event has come for ``ask_again_after`` seconds: an episode can be lost whole,
sent before the sim's writer matched this node's reader). Once they are recorded, it
refits the model and runs the LQR-FLM update (:class:`solar_ros.learn.learner.SolarLearner`)
in the executor's own thread, while no episode runs (nothing arrives for it meanwhile, and
torch runs as fast as in ``learn.run``; a fit in a second thread ran 1.5 times slower);
then it publishes the new policy and asks for the next episodes. With
``loop.check_rollouts`` it asks for each policy's checks (``mean_action`` in the budget,
with their reset seeds, ``check_seeds``, the seeds of ``learn.run``'s checks) once its
other rollouts are recorded, after the last policy's checks it publishes each
policy due for a tie check (``loop.tie_checks``) in turn and asks for that check, and then
it publishes the best-checked policy as the last (:meth:`SolarLearner.finish`). A shutdown (Ctrl-C,
SIGTERM) stops the refit at its next model update. Started on an
existing run directory, it resumes from the last complete policy.
"""

from pathlib import Path
import random
import time
from typing import Optional

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import Image
from solar_ros.images import ViewAssembler
from solar_ros.learn.episodes import Episode
from solar_ros.learn.learner import SolarLearner, UpdateStopped
from solar_ros.learn.recorder import EpisodeRecorder
from solar_ros.nodes import qos
from solar_ros.nodes.cameras import assemble_view, IMAGE_TOPICS, subscribe_views
from solar_ros.nodes.conversions import gains_to_msg, stamp_ns
from solar_ros.nodes.runnable import served_config
from solar_ros.nodes.spin import publish, spin_node
from solar_ros_msgs.msg import EpisodeBudget, EpisodeEvent, PolicyInUse
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
from std_msgs.msg import String


class LearnerNode(Node):
    """Record episodes and improve the policy between them."""

    def __init__(self, node_name: str = 'learner', **kwargs) -> None:
        """Declare parameters, open (or resume) the run and publish the current policy."""
        super().__init__(node_name, **kwargs)
        # First, so that destroy_node works even when a parameter below fails the start.
        self._updating = False
        self._closing = False
        run_dir = self.declare_parameter(
            'run_dir', 'runs/sawyer_stack', ParameterDescriptor(
                description='directory of episodes, checkpoints and metrics; an existing '
                            'run resumes', read_only=True)).value
        config = self.declare_parameter(
            'run_config', '', ParameterDescriptor(
                description='YAML with the model, lqr and loop sections; empty: the '
                            "task's installed config/sawyer_task<task>.yaml",
                read_only=True)).value

        def integer(name: str, default: int, description: str) -> int:
            descriptor = ParameterDescriptor(description=description, read_only=True,
                                             integer_range=[IntegerRange(
                                                 from_value=1, to_value=100_000, step=1)])
            return self.declare_parameter(name, default, descriptor).value

        horizon = integer('horizon', 30, "control steps per episode, T; the run config's "
                          'env.horizon replaces it where set, as in the sim node')
        self._task = self.declare_parameter('task', 1, ParameterDescriptor(
            description='the task this run learns (1, 2 or 3); episodes of another are not '
                        'recorded', read_only=True,
            integer_range=[IntegerRange(from_value=1, to_value=3, step=1)])).value
        action_dim = integer('action_dim', 7, 'joint velocities per command, du')
        self._ask_again_after = self.declare_parameter(
            'ask_again_after', 30.0, ParameterDescriptor(
                description='seconds without an episode event, while the next update still '
                            'needs episodes, after which they are asked for again; 0: never',
                read_only=True, floating_point_range=[FloatingPointRange(
                    from_value=0.0, to_value=3600.0, step=0.0)])).value
        config, settings = served_config(config, '', self._task)
        horizon = int(settings.env.get('horizon', horizon))
        self.learner = SolarLearner(settings, horizon, action_dim, Path(run_dir),
                                    log=self.get_logger().info,
                                    stop_when=lambda: not self.context.ok())
        where = Path(run_dir).resolve()
        if self.learner.policy_version or len(self.learner.store):
            self.get_logger().info(
                f'resuming the run in {where} at policy {self.learner.policy_version} '
                f'({len(self.learner.store)} episodes, {horizon} steps each); give another '
                'run_dir for a new run')
        else:
            self.get_logger().info(f'new run in {where}: {horizon} steps per episode')
        if self.learner.done():
            self.get_logger().warning(
                f'{run_dir} already has its last policy (loop.iterations '
                f'{settings.loop.iterations}): it records episodes but learns no more; run '
                f'its policy with learn:=false policy_dir:={run_dir}')
        self._image_size = self.learner.model_config.image_size
        self._recorder = EpisodeRecorder(horizon, action_dim)
        self._views = ViewAssembler()
        self._gains_pub = self.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED)
        self._model_pub = self.create_publisher(String, 'learner/model', qos.LATCHED)
        self._budget_pub = self.create_publisher(EpisodeBudget, 'learner/episode_budget',
                                                 qos.LATCHED)
        self._session = random.getrandbits(63)
        self._connected = False  # the first request is made
        self._issued = 0  # episodes asked for in this session
        self._mean_action = False  # whether the episodes asked for now are checks
        self._dropped = 0  # incomplete episodes seen so far (each is asked for again)
        self._heard = time.monotonic()  # when the last episode event came or a request went
        self.create_subscription(EpisodeEvent, 'episode_events', self._on_event, qos.EVENTS)
        self.create_subscription(PolicyInUse, 'policy/in_use', self._on_policy, qos.EVENTS)
        subscribe_views(self, self._on_image)
        self._publish()
        # A resumed run may already hold the episodes it needs: refit once spinning.
        self._resumed = self.create_timer(0.1, self._refit_after_resume)
        # The first request waits until the learner hears the topics it records from, so
        # that no episode it asks for runs before it can record it.
        self._connecting = self.create_timer(0.2, self._ask_once_connected)
        if self._ask_again_after > 0:
            self.create_timer(self._ask_again_after / 4, self._ask_again_if_unheard)

    def _ask(self, more: int, mean_action: Optional[bool] = None) -> None:
        """Ask the episode runner for ``more`` further episodes (0 republishes).

        ``mean_action`` says whether they run without exploration noise (the learner's
        checks, whose reset seeds the budget carries); None keeps the last request's.
        """
        if not self.context.ok() or self._closing:
            return
        self._issued += max(0, more)
        self._heard = time.monotonic()
        if mean_action is not None:
            self._mean_action = mean_action
        seeds = self.learner.check_seeds_left() if self._mean_action else []
        publish(self, self._budget_pub, EpisodeBudget(
            session=self._session, issued=self._issued, mean_action=self._mean_action,
            check_seeds=seeds))

    def _ask_once_connected(self) -> None:
        """Ask for the first episodes once every recorded topic has a publisher."""
        topics = ('episode_events', *IMAGE_TOPICS[:self.learner.model_config.views],
                  'policy/in_use')
        if not all(self.count_publishers(topic) for topic in topics):
            self.get_logger().info('waiting for the sim (or arm) and the controller',
                                   throttle_duration_sec=10.0)
            return
        self.destroy_timer(self._connecting)
        self._connected = True
        self._ask(*self.learner.next_request())

    def _ask_again_if_unheard(self) -> None:
        """Ask again for the episodes still needed when none has sent an event for a while.

        An episode can be lost whole (its events sent before the sim's writer matched this
        node's reader), and the episode runner then waits for a budget that this node
        thinks is in use. An episode asked for twice is recorded like any other.
        """
        if not self._connected or self._updating or self._closing or not self.context.ok():
            return
        if time.monotonic() - self._heard < self._ask_again_after:
            return
        count, mean_action = self.learner.next_request()
        if count > 0:
            self.get_logger().warning(
                f'no episode event for {self._ask_again_after:g} s while {count} episode(s) '
                'are still needed: asking for them again')
            self._ask(count, mean_action)

    @property
    def updating(self) -> bool:
        """Return whether a refit is running."""
        return self._updating

    def _publish(self) -> None:
        """Announce the current model checkpoint, then the gains acting in it.

        Skipped once the node is being destroyed or its context is shut down.
        """
        if not self.context.ok() or self._closing:
            return
        publish(self, self._model_pub, String(data=str(self.learner.model_path().resolve())))
        if self._connected:  # after the first request: ask for the next update's
            self._ask(*self.learner.next_request())
        publish(self, self._gains_pub,
                gains_to_msg(self.learner.gains, self.get_clock().now().to_msg()))

    def destroy_node(self) -> None:
        """Stop publishing, then destroy the node."""
        self._closing = True
        super().destroy_node()

    def _on_event(self, msg: EpisodeEvent) -> None:
        self._heard = time.monotonic()
        try:
            episode = self._recorder.on_event(
                msg.kind, msg.episode_id, msg.task_id, msg.step, msg.cost, msg.success,
                msg.final_distance, stamp_ns(msg.header), msg.action, msg.mean_action,
                msg.aim_offset, msg.seed if msg.has_seed else None)
        except ValueError as error:
            self.get_logger().error(f'step not recorded: {error}', throttle_duration_sec=1.0)
            return
        self._take(episode)

    def _on_policy(self, msg: PolicyInUse) -> None:
        self._take(self._recorder.on_policy(msg.episode_id, msg.policy_version))

    def _on_image(self, msg: Image, view: int) -> None:
        frame = assemble_view(self, self._views, msg, view, self._image_size,
                              self.learner.model_config.views, 'not recorded')
        if frame is not None:
            self._take(self._recorder.on_frame(frame, stamp_ns(msg.header)))

    def _take(self, episode: Optional[Episode]) -> None:
        """Store a completed episode and start a refit when enough are recorded."""
        if self._recorder.dropped > self._dropped:  # incomplete episodes: ask for them again
            self.get_logger().warning(self._recorder.last_problem)
            self._ask(self._recorder.dropped - self._dropped)
            self._dropped = self._recorder.dropped
        if episode is None:
            return
        if episode.task != self._task:
            self.get_logger().warning(
                f'the episode of seed {episode.seed}, task {episode.task}, not recorded: this '
                f'run learns task {self._task}')
            self._ask(1)
            return
        path = self.learner.record(episode)
        self.get_logger().debug(f'recorded {path.name}: policy {episode.policy_version}, '
                                f'success {episode.success}')
        self._refit_if_ready()
        count, mean_action = self.learner.next_request()
        if not (mean_action and count):
            return
        if not self._mean_action:  # the rollouts are in: now the checks
            self._ask(count, mean_action=True)
        elif episode.explored and episode.policy_version == self.learner.policy_version:
            self.get_logger().warning(
                f'the episode of seed {episode.seed} ran with exploration noise where a check '
                '(mean_action) was asked for; does the reset procedure copy mean_action into '
                'the episode events? It is kept as a rollout and the check is asked for again',
                throttle_duration_sec=10.0)
            self._ask(1)

    def _refit_after_resume(self) -> None:
        self.destroy_timer(self._resumed)
        self._refit_if_ready()

    def _refit_if_ready(self) -> None:
        """Refit now, in this callback, when the next update has its episodes.

        After the last policy's checks (``loop.check_rollouts``), each policy due for a tie
        check (``loop.tie_checks``, :meth:`SolarLearner.recheck`) is published in turn, then
        the run ends on the best-checked policy instead (:meth:`SolarLearner.finish`),
        published as the last.
        """
        if self.learner.recheck():
            self._publish()
            return
        if self.learner.finish():
            self._publish()
            self.get_logger().info(f'policy {self.learner.policy_version} is the last: '
                                   'learning is done')
            return
        if self.learner.ready() and not self._updating:
            self._updating = True
            try:
                self._refit()
            finally:
                self._updating = False

    def _refit(self) -> None:
        """Run one learner update and publish its result.

        A shutdown of the context (Ctrl-C, SIGTERM: rclpy's signal handler) stops the update
        at its next model update, without saving; the run resumes from the last complete
        policy.
        """
        try:
            self.learner.update()
        except UpdateStopped as stopped:
            self.get_logger().info(str(stopped))
            return
        self._publish()
        if self.learner.done():
            self.get_logger().info(f'policy {self.learner.policy_version} is the last '
                                   f'(loop.iterations {self.learner.config.loop.iterations}): '
                                   'learning is done')


def main(args=None) -> None:
    """Run the learner node until shutdown."""
    spin_node(LearnerNode, args)


if __name__ == '__main__':
    main()
