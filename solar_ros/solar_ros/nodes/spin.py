"""Run one node in its own process: the body of every node's ``main``."""

from typing import Callable, List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_node(make_node: Callable[[], Node], args: Optional[List[str]] = None) -> None:
    """Create the node with ``make_node`` and spin it until Ctrl-C or shutdown.

    A SIGINT can land while the executor converts a message; the error that raises once
    shutdown has begun is part of stopping, not a fault, and is not re-raised.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
