"""Encoder node: camera frames in, the SOLAR encoder's Gaussian potentials out.

- subscribes ``camera/image_raw`` (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8 or mono8,
  any size; resized to the model's input; sensor-data QoS) and, for a model of two to four
  views, ``side_camera/image_raw``, ``close_camera/image_raw`` and ``top_camera/image_raw``
  in that order (the frames of one step matched by stamp; the potential is the product of
  the views' potentials; a camera the model does not read is ignored), ``episode_events``
  (to number the frames of an episode) and ``learner/model`` (std_msgs/String, latched: the
  path of a new model checkpoint; the node loads it at once and swaps it in at the next
  episode start, so no frame waits for a load and each episode is encoded by one model).
- publishes ``latent_potential`` (solar_ros_msgs/LatentPotential: the diagonal precision,
  or the full one of a model with ``precision: full``).

A copy of the frame encoded last (the same stamp: the sim resends an unanswered frame in
lockstep) is answered with that frame's potential again, not encoded as a new step, so a
potential lost before the latent filter's subscription matched is sent once more.

A frame that cannot be converted gets a throttled error naming the problem and is skipped.
The encoding is :meth:`solar_ros.core.online.OnlineStep.encode`, as in one process.
"""

from typing import Optional

import numpy as np

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import Image
from solar_ros.core.checkpoint import CheckpointError
from solar_ros.core.model import SolarModel
from solar_ros.core.online import OnlineStep
from solar_ros.images import ViewAssembler
from solar_ros.nodes import qos
from solar_ros.nodes.cameras import assemble_view, subscribe_views
from solar_ros.nodes.conversions import answers, potential_to_msg
from solar_ros.nodes.spin import publish, spin_node
from solar_ros_msgs.msg import EpisodeEvent, LatentPotential
from std_msgs.msg import String


class EncoderNode(Node):
    """Encode each camera frame into a Gaussian potential on the latent state."""

    def __init__(self, node_name: str = 'encoder', **kwargs) -> None:
        """Declare parameters, load the model if one is given, and wire the topics."""
        super().__init__(node_name, **kwargs)
        path = self.declare_parameter(
            'model_path', '', ParameterDescriptor(
                description='model checkpoint to load at start; empty: wait for one on '
                            'learner/model', read_only=True)).value
        self._online = OnlineStep()  # its model is swapped in at episode starts
        self._model_version = 0
        self._episode_id = 0
        self._step = 0
        self._last_potential: Optional[LatentPotential] = None  # of the frame encoded last
        self._views = ViewAssembler()
        self._publisher = self.create_publisher(LatentPotential, 'latent_potential',
                                                qos.LATENT)
        subscribe_views(self, self._on_image)
        self.create_subscription(EpisodeEvent, 'episode_events', self._on_event, qos.EVENTS)
        self.create_subscription(String, 'learner/model', self._on_model, qos.LATCHED_READER)
        if path:
            self._load(path)

    def _load(self, path: str) -> None:
        """Load the model at ``path`` and swap it in; keep the old one on failure."""
        try:
            model = SolarModel.load(path)
        except (OSError, CheckpointError) as error:
            self.get_logger().error(f'cannot load model {path}: {error}; keeping the current')
            return
        self._online.offer(model=model)
        if self._online.model is None:
            self._adopt()
        self.get_logger().info(f'model loaded from {path}')

    def _adopt(self) -> None:
        """Switch to the model loaded last (at an episode start, or the first one)."""
        if self._online.pending:
            self._online.adopt()
            self._model_version += 1

    def _on_model(self, msg: String) -> None:
        self._load(msg.data)

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.kind == EpisodeEvent.START and msg.episode_id != self._episode_id:
            self._adopt()
            self._episode_id = msg.episode_id
            self._step = 0

    def _on_image(self, msg: Image, view: int) -> None:
        if self._online.model is None:
            self.get_logger().warning('no model yet: frame skipped', throttle_duration_sec=2.0)
            return
        config = self._online.model.config
        if view >= config.views:
            return  # a camera this model does not read
        if answers(self._last_potential, msg.header):  # a copy of the frame encoded last
            publish(self, self._publisher, self._last_potential)
            return
        frame = assemble_view(self, self._views, msg, view, config.image_size, config.views,
                              'rejected')
        if frame is None:
            return  # another view of this step is still to come, or a bad frame
        precision, h = self._online.encode(frame)
        mean = h / precision if precision.ndim == 1 else np.linalg.solve(precision, h)
        potential = potential_to_msg(msg.header, self._episode_id, self._step, mean,
                                     precision, self._model_version)
        publish(self, self._publisher, potential)
        self._step += 1
        self._last_potential = potential


def main(args=None) -> None:
    """Run the encoder node until shutdown."""
    spin_node(EncoderNode, args)


if __name__ == '__main__':
    main()
