"""The camera topics: one per view, in the order of the model's views.

View 0 is the first camera (``camera/...``), view 1 the side camera (``side_camera/...``);
every image and camera info of one control step carries the step's stamp.
"""

from typing import Callable

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

IMAGE_TOPICS = ('camera/image_raw', 'side_camera/image_raw')
INFO_TOPICS = ('camera/camera_info', 'side_camera/camera_info')


def subscribe_views(node: Node, callback: Callable[[Image, int], None]) -> None:
    """Subscribe ``callback(msg, view)`` to every view's image topic (sensor-data QoS)."""
    for view, topic in enumerate(IMAGE_TOPICS):
        node.create_subscription(Image, topic,
                                 lambda msg, view=view: callback(msg, view),
                                 qos_profile_sensor_data)
