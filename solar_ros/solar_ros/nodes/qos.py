"""Quality-of-service profiles shared by the solar_ros nodes."""

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

# Episode events must all arrive (the END event carries success): reliable and deep.
EVENTS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
# Commands follow the ros2_control forward command controller: reliable, a short queue.
COMMANDS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Per-frame latent messages: reliable, so lockstep control never loses a step.
LATENT = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# The current policy and model: a late joiner gets the latest one.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
