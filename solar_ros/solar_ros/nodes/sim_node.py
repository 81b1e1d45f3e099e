"""ROS 2 node around SawyerStackEnv: camera, joint states and episodes over topics.

Interfaces (all names relative, so namespaces and remaps apply):

- publishes ``camera/image_raw`` (sensor_msgs/Image, rgb8) and ``camera/camera_info``
  with sensor-data QoS (with ``views: 2`` also ``side_camera/image_raw`` and
  ``side_camera/camera_info``, with ``views: 3`` also ``close_camera/...``, with ``views:
  4`` also ``top_camera/...``),
  ``joint_states`` (sensor_msgs/JointState, ``right_j0`` .. ``right_j6``, rad and rad/s)
  and ``episode_events`` (solar_ros_msgs/EpisodeEvent, reliable, depth 100). Image,
  camera info, joint state and event of one control step share one header stamp, so a
  learner can match them.
- subscribes ``velocity_controller/commands`` (std_msgs/Float64MultiArray, 7 joint
  velocities in rad/s, reliable; the ros2_control forward command controller
  convention). A command of the wrong length or with NaN/inf is rejected with a
  throttled error and counts as zero velocity.
- serves ``reset_episode`` (solar_ros_msgs/ResetEpisode); an unknown task id, or a reset
  while an episode runs (before its END event), gets ``success=False`` and a message, and
  the running episode goes on. The request's ``mean_action`` is copied to the episode's
  events, which tell the controller to leave out the exploration noise.

Clocking (parameter ``mode``): ``lockstep`` takes one control step per received
command, so learning runs as fast as the simulation; ``realtime`` steps on a timer at
the control rate with the latest command, replaced by zero velocity once it is older
than ``command_timeout_periods`` control periods. Between episodes nothing is stepped.
Images are best effort, and a node may join after a frame went out: in lockstep, when no
command has come ``lockstep_resend_after`` seconds after a frame, that frame and its
event (stamps unchanged, so receivers can tell the copy) are sent again, instead of the
episode waiting forever; after ``lockstep_stall_warning`` seconds a warning says which step
waits and how many peers the command and image topics have. The encoder answers a copy with
its potential again and the latent filter with its belief again, so a message lost on any of
those links before its reader matched is recovered; the controller answers each step once,
as a command carries no stamp that could tell a second answer from the next step's command,
and sends that command again only once two copies of its frame came after its answer; a
command lost to the latent filter alone is made up from the STEP event's ``action``.
The environment's parameters are those of SawyerStackConfig (see config/sim.yaml); the
``env`` section of the run config the learner (or, in deploy mode, the policy node) serves
(``run_config``, by default the installed config of ``task``) overrides them, so the sim
renders the cameras and charges the cost the model was trained with.
"""

import math
from typing import Any, Optional, Sequence

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, JointState
from solar_ros.nodes.cameras import IMAGE_TOPICS, INFO_TOPICS
from solar_ros.nodes.runnable import env_settings, served_config
from solar_ros.nodes.spin import publish, spin_node
from solar_ros.sim.sawyer_config import SawyerStackConfig, TASKS
from solar_ros.sim.sawyer_env import SawyerStackEnv
from solar_ros.sim.sawyer_urdf import ARM_JOINTS
from solar_ros_msgs.msg import EpisodeEvent
from solar_ros_msgs.srv import ResetEpisode
from std_msgs.msg import Float64MultiArray, Header

MODES = ('lockstep', 'realtime')
# Episode events must all arrive (the END event carries success): reliable and deep.
EVENT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
# Commands follow the forward command controller: reliable, a short queue.
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class SimNode(Node):
    """Run the simulated stacking task and expose it through ROS 2 interfaces."""

    def __init__(self, node_name: str = 'sim', **kwargs):
        """Declare parameters, build the environment, then wire publishers and services."""
        super().__init__(node_name, **kwargs)
        self._env: Optional[SawyerStackEnv] = None  # first: destroy_node after a failed start
        self._mode = self._declare(
            'mode', 'lockstep', 'lockstep: one control step per command; realtime: a timer '
            'at the control rate')
        if self._mode not in MODES:
            raise ValueError(f'parameter mode must be one of {MODES}, got {self._mode!r}')
        self._timeout_periods = self._declare(
            'command_timeout_periods', 2.0,
            'realtime: a command older than this many control periods becomes zero velocity',
            floating_point_range=[FloatingPointRange(from_value=0.5, to_value=100.0)])
        self._resend_after = self._declare(
            'lockstep_resend_after', 1.0,
            'lockstep: seconds without a command after which the last frame is sent again',
            floating_point_range=[FloatingPointRange(from_value=0.05, to_value=60.0)])
        self._stall_warning = self._declare(
            'lockstep_stall_warning', 10.0,
            'lockstep: seconds without a command after which a warning names the waiting step '
            'and the peers of the command and image topics (again every as many seconds)',
            floating_point_range=[FloatingPointRange(from_value=0.1, to_value=3600.0)])
        start_task = self._declare(
            'start_task', 1, 'task of the episode started at launch; 0 waits for a reset',
            integer_range=[IntegerRange(from_value=0, to_value=max(TASKS), step=1)])
        start_seed = self._declare('start_seed', 0, 'seed of the episode started at launch',
                                   integer_range=[IntegerRange(from_value=0, to_value=2**31 - 1,
                                                               step=1)])
        self._frame_ids = (
            self._declare('camera_frame_id', 'camera_optical_frame',
                          "frame_id of the first camera's images and camera info"),
            self._declare('side_camera_frame_id', 'side_camera_optical_frame',
                          "frame_id of the side camera's images and camera info (views: 2)"),
            self._declare('close_camera_frame_id', 'close_camera_optical_frame',
                          "frame_id of the close camera's images and camera info (views: 3)"),
            self._declare('top_camera_frame_id', 'top_camera_optical_frame',
                          "frame_id of the top camera's images and camera info (views: 4)"))
        task = self._declare(
            'task', 1, 'the task the system runs (1, 2 or 3): with run_config empty, its '
            'installed config/sawyer_task<task>.yaml serves the env section',
            integer_range=[IntegerRange(from_value=min(TASKS), to_value=max(TASKS), step=1)])
        run_config = self._declare(
            'run_config', '', 'run config whose env section (cameras, cost, aim point) '
            "overrides the settings below; empty: the task's installed config")
        policy_dir = self._declare(
            'policy_dir', '', 'deploy mode: the run directory or pretrained folder whose '
            'config.yaml is used in place of run_config')
        descriptions = SawyerStackConfig.descriptions()
        defaults = SawyerStackConfig().to_dict()
        values = {name: self._declare(name, defaults[name], description)
                  for name, description in descriptions.items()}
        source, served = served_config(run_config, policy_dir, task)
        overrides = env_settings(served)
        values.update(overrides)
        if overrides:
            self.get_logger().info(f'environment settings {sorted(overrides)} from {source}')
        self._env = SawyerStackEnv(SawyerStackConfig.from_dict(values))
        try:
            self._start(start_task, start_seed)
        except BaseException:  # the caller gets no node to destroy: close PyBullet here
            self.destroy_node()
            raise

    def _start(self, start_task: int, start_seed: int) -> None:
        """Create the publishers, subscription, service and timer; start the first episode."""
        self._period = self._env.config.control_period
        views = range(self._env.views)
        self._camera_infos = [self._make_camera_info(view) for view in views]
        self._image_pubs = [self.create_publisher(Image, IMAGE_TOPICS[view],
                                                  qos_profile_sensor_data) for view in views]
        self._info_pubs = [self.create_publisher(CameraInfo, INFO_TOPICS[view],
                                                 qos_profile_sensor_data) for view in views]
        self._joint_pub = self.create_publisher(JointState, 'joint_states', 10)
        self._event_pub = self.create_publisher(EpisodeEvent, 'episode_events', EVENT_QOS)
        self._command_sub = self.create_subscription(
            Float64MultiArray, 'velocity_controller/commands', self._on_command, COMMAND_QOS)
        self.create_service(ResetEpisode, 'reset_episode', self._on_reset)
        self._episode_id = 0
        self._seed = 0  # the running episode's reset seed, which its events carry
        self._mean_action = False  # the running episode's events carry the reset's flag
        self._running = False
        self._command = np.zeros(self._env.action_dim)
        self._command_time: Optional[Time] = None
        self._last_frame: Optional[tuple] = None
        self._last_frame_time = self.get_clock().now()
        self._frame_sent_at = self._last_frame_time  # the first send of the last frame
        self._copies_sent = 0  # of the last frame
        if self._mode == 'realtime':
            self.create_timer(self._period, self._on_timer)
        else:
            self.create_timer(self._resend_after / 2, self._resend_if_waiting)
        if start_task:
            self._start_episode(start_task, start_seed)
        self.get_logger().info(
            f'simulated Sawyer-style stacking ready: mode {self._mode}, control period '
            f'{self._period} s, horizon {self._env.horizon}, '
            f'{self._env.image_size}x{self._env.image_size} images')

    def _declare(self, name: str, default: Any, description: str, **ranges) -> Any:
        value = list(default) if isinstance(default, tuple) else default
        descriptor = ParameterDescriptor(description=description, read_only=True, **ranges)
        return self.declare_parameter(name, value, descriptor).value

    # ----------------------------------------------------------------- callbacks
    def _on_reset(self, request: ResetEpisode.Request,
                  response: ResetEpisode.Response) -> ResetEpisode.Response:
        if request.task_id not in TASKS:
            response.success = False
            response.message = f'unknown task {request.task_id}; tasks are {list(TASKS)}'
            response.episode_id = 0
            self.get_logger().warning(response.message)
            return response
        if self._running:
            response.success = False
            response.message = (f'episode {self._episode_id} is running (step '
                                f'{self._env.steps_taken} of {self._env.horizon}); reset after '
                                'its END event')
            response.episode_id = 0
            self.get_logger().warning(response.message)
            return response
        self._start_episode(int(request.task_id), int(request.seed), bool(request.mean_action))
        response.success = True
        response.episode_id = self._episode_id
        response.message = (f'episode {self._episode_id}: task {request.task_id}, '
                            f'seed {request.seed}, horizon {self._env.horizon}')
        return response

    def _on_command(self, msg: Float64MultiArray):
        command = self._validated(msg)
        if self._mode == 'realtime':
            self._command = command
            self._command_time = self.get_clock().now()
        elif self._running:
            self._step(command)
        else:
            self.get_logger().warning(
                'command ignored: no episode is running (call reset_episode)',
                throttle_duration_sec=1.0)

    def _on_timer(self):
        if not self._running:
            return
        command = self._command
        stale_after = self._timeout_periods * self._period
        if (self._command_time is None or (self.get_clock().now() - self._command_time)
                .nanoseconds * 1e-9 > stale_after):
            command = np.zeros(self._env.action_dim)
        self._step(command)

    def _resend_if_waiting(self):
        if not self._running or self._last_frame is None:
            return
        waited = (self.get_clock().now() - self._last_frame_time).nanoseconds * 1e-9
        if waited >= self._resend_after:
            publishers = (*self._image_pubs, *self._info_pubs, self._joint_pub,
                          self._event_pub)
            for publisher, msg in zip(publishers, self._last_frame):
                publish(self, publisher, msg)
            self._last_frame_time = self.get_clock().now()
            self._copies_sent += 1
            self._warn_if_stalled()

    def _warn_if_stalled(self) -> None:
        """Warn every ``lockstep_stall_warning`` s while a frame waits that long for a command."""
        waited = (self.get_clock().now() - self._frame_sent_at).nanoseconds * 1e-9
        if waited < self._stall_warning:
            return
        commands = self._command_sub.topic_name
        readers = ', '.join(f'{topic} {self.count_subscribers(topic)}' for topic in (
            *(publisher.topic_name for publisher in self._image_pubs),
            self._event_pub.topic_name))
        self.get_logger().warning(
            f'episode {self._episode_id} waits at step {self._env.steps_taken}: no command for '
            f'{waited:.1f} s, its frame sent {self._copies_sent} more time(s); {commands} has '
            f'{self.count_publishers(commands)} publisher(s); subscribers: {readers}',
            throttle_duration_sec=self._stall_warning)

    # ----------------------------------------------------------------- internals
    def _validated(self, msg: Float64MultiArray) -> np.ndarray:
        """Return the command (7,) rad/s, or zeros with a throttled error when it is bad."""
        values = np.asarray(msg.data, dtype=np.float64)
        problem = None
        if values.shape != (self._env.action_dim,):
            problem = f'has {values.size} values, expected {self._env.action_dim}'
        elif not np.all(np.isfinite(values)):
            problem = f'holds non-finite values {values.tolist()}'
        if problem is None:
            return values
        self.get_logger().error(f'velocity command rejected: it {problem}; using zero velocity',
                                throttle_duration_sec=1.0)
        return np.zeros(self._env.action_dim)

    def _start_episode(self, task: int, seed: int, mean_action: bool = False):
        image = self._env.reset(task=task, seed=seed)
        self._episode_id += 1
        self._seed = seed
        self._mean_action = mean_action
        self._running = True
        self._command = np.zeros(self._env.action_dim)
        self._command_time = None
        self._publish(image, EpisodeEvent.START, 0.0, False)

    def _step(self, command: np.ndarray):
        image, cost, done, info = self._env.step(command)
        self._publish(image, EpisodeEvent.STEP, cost, False, action=info['action'])
        if done:
            self._running = False
            self._publish(None, EpisodeEvent.END, cost, info['success'], info['final_distance'])
            self.get_logger().info(
                f'episode {self._episode_id} (task {self._env.task}) ended: success '
                f'{info["success"]}, final distance {info["final_distance"]:.3f} m')

    def _publish(self, image: Optional[np.ndarray], kind: int, cost: float, success: bool,
                 final_distance: float = math.nan, action: Sequence[float] = ()):
        """Publish one step's messages, all with one stamp.

        With ``image`` (H, W, 3 V) uint8: each view's image and camera info and the joint
        states, then the event with the held block's offset from the aim point (3,) m in the
        state the image shows; without (the END event): the event alone.
        """
        stamp = self.get_clock().now().to_msg()
        offset = () if image is None else self._env.aim_offset().tolist()
        event = EpisodeEvent(header=Header(stamp=stamp, frame_id=self._frame_ids[0]),
                             episode_id=self._episode_id, has_seed=True, seed=self._seed,
                             task_id=self._env.task, kind=kind, step=self._env.steps_taken,
                             mean_action=self._mean_action,
                             cost=float(cost), success=bool(success),
                             final_distance=float(final_distance),
                             action=[float(a) for a in action], aim_offset=offset)
        if image is None:
            publish(self, self._event_pub, event)
            return
        images, infos = [], []
        for view, rgb in enumerate(np.split(image, self._env.views, axis=-1)):
            header = Header(stamp=stamp, frame_id=self._frame_ids[view])
            images.append(self._image_msg(rgb, header))
            self._camera_infos[view].header = header
            infos.append(self._camera_infos[view])
        joints = JointState(header=Header(stamp=stamp), name=list(ARM_JOINTS),
                            position=self._env.joint_positions().tolist(),
                            velocity=self._env.joint_velocities().tolist())
        for publisher, msg in zip((*self._image_pubs, *self._info_pubs, self._joint_pub,
                                   self._event_pub), (*images, *infos, joints, event)):
            publish(self, publisher, msg)
        self._last_frame = (*images, *infos, joints, event)
        self._last_frame_time = self._frame_sent_at = self.get_clock().now()
        self._copies_sent = 0

    @staticmethod
    def _image_msg(image: np.ndarray, header: Header) -> Image:
        height, width, _ = image.shape
        return Image(header=header, height=height, width=width, encoding='rgb8',
                     is_bigendian=0, step=3 * width, data=np.ascontiguousarray(image).tobytes())

    def _make_camera_info(self, view: int) -> CameraInfo:
        size = self._env.image_size
        k = self._env.camera_intrinsics(view)
        projection = np.zeros((3, 4))
        projection[:, :3] = k
        return CameraInfo(height=size, width=size, distortion_model='plumb_bob',
                          d=[0.0] * 5, k=k.ravel().tolist(),
                          r=np.eye(3).ravel().tolist(), p=projection.ravel().tolist())

    def destroy_node(self):
        """Close the simulator, then destroy the node."""
        if self._env is not None:
            self._env.close()
        super().destroy_node()


def main(args=None) -> None:
    """Run the sim node until shutdown (works with Jazzy and Kilted rclpy)."""
    spin_node(SimNode, args)


if __name__ == '__main__':
    main()
