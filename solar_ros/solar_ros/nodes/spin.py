"""Run one node in its own process: the body of every node's ``main``."""

import signal
import sys
from types import FrameType
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

    Exit status 0 on SIGINT or SIGTERM, also when the signal comes twice: the first one
    shuts the context down and raises KeyboardInterrupt, later ones are ignored (see
    :func:`stop_on_first_signal`), so the node's cleanup (a learner finishing its
    checkpoint) is not cut short by a traceback. A SIGINT can land while the
    executor converts a message; the error that raises once shutdown has begun is part of
    stopping, not a fault. A node that cannot start (a bad parameter: ValueError, or a
    value outside its declared range) logs one line naming the problem and exits with
    status 1.
    """
    stop_on_first_signal()  # before rclpy.init: rclpy's handlers then call this one
    node = None
    status = 0
    try:
        rclpy.init(args=args)
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
        ignore_stop_signals()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if status:
        sys.exit(status)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_first_signal() -> None:
    """Make the first SIGINT or SIGTERM raise KeyboardInterrupt and ignore every later one.

    A second Ctrl-C (or a supervisor's SIGTERM after a SIGINT) can otherwise land while the
    first one's KeyboardInterrupt is being handled, escape the cleanup and kill the process
    with a traceback. rclpy's own handlers, installed by ``rclpy.init`` after this, shut
    the context down and then call this handler.
    """
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt_once)


def ignore_stop_signals() -> None:
    """Ignore SIGINT and SIGTERM from now on (cleanup has begun)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _interrupt_once(signum: int, frame: Optional[FrameType]) -> None:
    ignore_stop_signals()
    raise KeyboardInterrupt
