"""ROS 2 nodes: thin adapters from messages to solar_ros.core and solar_ros.sim."""
