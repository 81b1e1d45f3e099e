"""Run one node in its own process: the body of every node's ``main``."""

import signal
import sys
from typing import Callable, List, Optional

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.experimental import EventsExecutor
from rclpy.node import Node


def spin_node(make_node: Callable[[], Node], args: Optional[List[str]] = None) -> None:
    """Create the node with ``make_node`` and spin it until Ctrl-C, SIGTERM or shutdown.

    The executor is rclpy's events executor (its C++ event queue takes a message from the
    middleware to its callback in a fraction of the default executor's time; see
    ``bench/control_latency.py``), spun a step at a time so that a signal ends the loop.

    Exit status 0 on SIGINT or SIGTERM, also when the signal comes twice: once stopping has
    begun, further SIGINTs and SIGTERMs are ignored, so the node's cleanup (a learner
    finishing its checkpoint) is not cut short by a traceback. A SIGINT can land while the
    executor converts a message; the error that raises once shutdown has begun is part of
    stopping, not a fault. A node that cannot start (a bad parameter: ValueError, or a
    value outside its declared range) logs one line naming the problem and exits with
    status 1.
    """
    rclpy.init(args=args)
    node = None
    status = 0
    try:
        node = make_node()
        executor = EventsExecutor()
        executor.add_node(node)
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, ParameterException) as error:
        if node is not None:
            raise
        rclpy.logging.get_logger('solar_ros').fatal(f'cannot start: {error}')
        status = 1
    except RuntimeError:
        if rclpy.ok():
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if status:
        sys.exit(status)
