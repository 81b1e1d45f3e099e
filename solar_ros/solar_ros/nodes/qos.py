"""Quality-of-service profiles shared by the solar_ros nodes."""

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

# Episode events must all arrive (the END event carries success): reliable and deep.
EVENTS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
# Commands follow the ros2_control forward command controller: reliable, a short queue.
COMMANDS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Per-frame latent messages: reliable, so lockstep control never loses a step.
LATENT = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# The current policy and model: each publisher keeps its latest one for late joiners.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Their subscribers queue more than one, so that messages from several publishers arriving
# before the callback runs (the learner's latched policy and a newer or a bad one) are all
# seen in order instead of the last overwriting the rest.
LATCHED_READER = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
