"""The encoder node publishes the model's potential, diagonal or full, over real DDS."""

from builtin_interfaces.msg import Time
import numpy as np
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from solar_ros.core.model import SolarModel
from solar_ros.core.model_config import ModelConfig
from solar_ros.core.online import OnlineStep
from solar_ros.nodes import qos
from solar_ros.nodes.conversions import potential_from_msg
from solar_ros.nodes.encoder_node import EncoderNode
from solar_ros_msgs.msg import LatentPotential
from spinning import spin_until, with_peer
from std_msgs.msg import Header
import torch


def test_a_full_precision_model_publishes_its_full_precision(context, tmp_path):
    model = SolarModel(ModelConfig(latent_dim=3, action_dim=7, horizon=5, image_size=16,
                                   channels=4, keypoints=4, precision='full'))
    with torch.no_grad():
        model.encoder.lower_head.bias.copy_(torch.tensor([0.8, -0.5, 0.3]))
    model.save(tmp_path / 'model.ckpt')
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    frame = Image(header=Header(stamp=Time(sec=3)), height=16, width=16, encoding='rgb8',
                  step=48, data=pixels.tobytes())
    node = EncoderNode(context=context, parameter_overrides=[
        Parameter('model_path', value=str(tmp_path / 'model.ckpt'))])
    peer, executor = with_peer(node, context, 'camera_peer')
    potentials = []
    camera = peer.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    reader = peer.create_subscription(LatentPotential, 'latent_potential', potentials.append,
                                      qos.LATENT)
    try:
        spin_until(executor, lambda: camera.get_subscription_count() > 0
                   and reader.get_publisher_count() > 0, 'the encoder')
        camera.publish(frame)
        spin_until(executor, lambda: len(potentials) == 1, 'the potential')
    finally:
        executor.shutdown()
        peer.destroy_node()
        node.destroy_node()
    J, h = potential_from_msg(potentials[0])
    online = OnlineStep(SolarModel.load(tmp_path / 'model.ckpt'))
    online.adopt()
    expected_J, expected_h = online.encode(pixels)
    assert J.shape == (3, 3) and abs(J[1, 0]) > 0.1
    np.testing.assert_allclose(J, expected_J, rtol=1e-9)
    np.testing.assert_allclose(h, expected_h, rtol=1e-6)
