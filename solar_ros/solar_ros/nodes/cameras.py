"""The camera topics: one per view, in the order of the model's views.

View 0 is the first camera (``camera/...``), view 1 the side camera (``side_camera/...``),
view 2 the close camera (``close_camera/...``), view 3 the top camera (``top_camera/...``);
every image and camera info of one control step carries the step's stamp. A node
subscribes to every camera topic and reads those of its model's views.
"""

from typing import Callable, Optional

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from solar_ros.images import frame_to_rgb, ImageFormatError, ViewAssembler
from solar_ros.nodes.conversions import stamp_ns

IMAGE_TOPICS = ('camera/image_raw', 'side_camera/image_raw', 'close_camera/image_raw',
                'top_camera/image_raw')
INFO_TOPICS = ('camera/camera_info', 'side_camera/camera_info', 'close_camera/camera_info',
               'top_camera/camera_info')


def subscribe_views(node: Node, callback: Callable[[Image, int], None]) -> None:
    """Subscribe ``callback(msg, view)`` to every view's image topic (sensor-data QoS)."""
    for view, topic in enumerate(IMAGE_TOPICS):
        node.create_subscription(Image, topic,
                                 lambda msg, view=view: callback(msg, view),
                                 qos_profile_sensor_data)


def assemble_view(node: Node, assembler: ViewAssembler, msg: Image, view: int, size: int,
                  views: int, dropped: str) -> Optional[np.ndarray]:
    """Add camera ``view``'s image to ``assembler``; return the step's frame once complete.

    Args:
        node: logs (throttled) a frame it cannot read, as ``frame of view V <dropped>: ...``.
        assembler: collects the views of each stamp.
        msg: the image (any encoding :func:`solar_ros.images.frame_to_rgb` reads).
        view: the camera's view index.
        size: the model's image size (pixels, square).
        views: how many views a frame has.
        dropped: what happens to an unreadable frame ("rejected", "not recorded").

    Returns:
        (size, size, 3 views) uint8 once every view of the stamp is in, else None.

    """
    try:
        rgb = frame_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, size)
    except ImageFormatError as error:
        node.get_logger().error(f'frame of view {view} {dropped}: {error}',
                                throttle_duration_sec=1.0)
        return None
    return assembler.add(view, stamp_ns(msg.header), rgb, views)
