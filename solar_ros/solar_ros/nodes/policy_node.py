"""Policy node: serves a trained policy to the other nodes, without learning (deploy mode).

- publishes ``learner/model`` (std_msgs/String: the model checkpoint) and ``policy/gains``
  (solar_ros_msgs/TimeVaryingGains), both latched, once at start: the same two topics the
  learner publishes, so the encoder, latent filter and controller cannot tell the two apart.

Parameters: ``policy_dir`` (a run directory or a folder of ``solar_ros/pretrained``) and
``policy`` (its policy number; -1: the newest). A folder that cannot be served (missing,
incomplete, or a run the nodes cannot run: the MPC or VAE ablation) is a
ValueError naming it, raised before any topic exists.
"""

from pathlib import Path

from rcl_interfaces.msg import IntegerRange, ParameterDescriptor
from rclpy.node import Node
from solar_ros.core.checkpoint import CheckpointError
from solar_ros.learn.evaluate import load_gains
from solar_ros.nodes import qos
from solar_ros.nodes.conversions import gains_to_msg
from solar_ros.nodes.runnable import check_runnable_by_nodes
from solar_ros.nodes.spin import spin_node
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
from std_msgs.msg import String


class PolicyNode(Node):
    """Publish the model and gains of one trained policy, latched."""

    def __init__(self, node_name: str = 'policy', **kwargs) -> None:
        """Load the policy named by the parameters and publish it."""
        super().__init__(node_name, **kwargs)
        folder = self.declare_parameter(
            'policy_dir', '', ParameterDescriptor(
                description='run directory or pretrained folder whose policy is served',
                read_only=True)).value
        version = self.declare_parameter(
            'policy', -1, ParameterDescriptor(
                description='policy number in policy_dir; -1: the newest', read_only=True,
                integer_range=[IntegerRange(from_value=-1, to_value=1_000_000, step=1)])
        ).value
        if not folder:
            raise ValueError('parameter policy_dir: give the run directory or pretrained '
                             'folder of the policy to run')
        try:
            config, model_path, gains = load_gains(Path(folder),
                                                   None if version < 0 else version)
        except (OSError, CheckpointError, ValueError) as error:
            raise ValueError(f'parameter policy_dir: cannot serve {folder}: {error}') from None
        check_runnable_by_nodes(config, folder)
        self.gains = gains
        self.model_path = model_path.resolve()
        model_pub = self.create_publisher(String, 'learner/model', qos.LATCHED)
        gains_pub = self.create_publisher(GainsMsg, 'policy/gains', qos.LATCHED)
        model_pub.publish(String(data=str(self.model_path)))
        gains_pub.publish(gains_to_msg(gains, self.get_clock().now().to_msg()))
        self.get_logger().info(f'serving policy {gains.policy_version} of {folder}')


def main(args=None) -> None:
    """Run the policy node until shutdown."""
    spin_node(PolicyNode, args)


if __name__ == '__main__':
    main()
