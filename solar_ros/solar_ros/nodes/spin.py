"""Run one node in its own process (the body of every node's ``main``) and stop it cleanly."""

from contextlib import contextmanager
import faulthandler
import os
import signal
import sys
from types import FrameType
from typing import Callable, Iterator, List, NoReturn, Optional

import rclpy
from rclpy.context import Context
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.utilities import get_default_context


def spin_node(make_node: Callable[[], Node], args: Optional[List[str]] = None) -> NoReturn:
    """Create the node with ``make_node``, spin it until Ctrl-C, SIGTERM or shutdown, and exit.

    The executor is rclpy's events executor (its C++ event queue takes a message from the
    middleware to its callback in a fraction of the default executor's time; see
    ``bench/control_latency.py``), spun a step at a time so that a shutdown ends the loop.

    Exit status 0 on SIGINT or SIGTERM, also when the signal comes twice: once the node spins,
    the first signal shuts the context down (rclpy's handler) and raises nothing, so a callback
    that is running (a learner's refit, which watches the context) ends on its own; later
    signals are ignored, so the node's cleanup is not cut short (see :func:`stop_by_context`).
    A signal while the node starts raises KeyboardInterrupt, which ends the start. The shutdown
    can land while the executor converts a message; the error that raises then is part of
    stopping, not a fault (:func:`quiet_after_stop`). Cleanup shuts the executor down before it
    destroys the node (as :mod:`solar_ros.nodes.bringup` does): an executor torn down after the
    node it spun once hung a sim node's exit in an event handler's ``__exit__``. A process
    still running :data:`STACKS_AFTER_STOP_S` after the first signal writes every thread's
    stack to stderr, so that a stop that hangs names the call it hangs in; a cleanup still
    running :data:`CLEANUP_LIMIT_S` after it began writes them and ends the process with status
    1 (:func:`limit_cleanup`). A node that cannot start (a bad parameter: ValueError, or a
    value outside its declared range) logs one line naming the problem and exits with status 1.
    The process then ends through :func:`end_process`.
    """
    stop_on_first_signal()  # before rclpy.init: rclpy's handlers then call this one
    node = None
    executor = None
    status = 0
    try:
        with quiet_after_stop(get_default_context()):
            rclpy.init(args=args)
            node = make_node()
            executor = EventsExecutor()
            executor.add_node(node)
            stop_by_context()
            while rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, ParameterException) as error:
        if node is not None:
            raise
        rclpy.logging.get_logger('solar_ros').fatal(f'cannot start: {error}')
        status = 1
    finally:
        ignore_stop_signals()
        with limit_cleanup():
            if executor is not None:
                executor.shutdown()  # lets go of the node's entities before they are destroyed
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()
    end_process(status)


def end_process(status: int) -> NoReturn:
    """End the process with ``status`` once its own cleanup is done, skipping Python's.

    Flushes stdout and stderr, then ``os._exit``: no atexit handler, no garbage collection
    of the interpreter's modules. That collection (torch's and the simulator's objects) took
    10-14 s per node process with six nodes stopping together beside other work on 2
    cores, against 0.1-0.4 s for the whole stop without it. Call it only after everything
    the process owns is closed: our nodes write their files whole and close them, the
    TensorBoard log flushes every write, and ``rclpy.try_shutdown`` ends ROS logging.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Seconds after the first stop signal at which a process that is still running writes the
# stack of every thread to stderr (faulthandler): a stop that hangs says where it hangs.
STACKS_AFTER_STOP_S = 10.0

# Seconds a process's cleanup (executor shutdown, node destruction, rclpy shutdown) may take
# before it writes every thread's stack and ends with status 1: normally 0.1-0.4 s.
CLEANUP_LIMIT_S = 10.0

# Whether the first stop signal raises KeyboardInterrupt (True until stop_by_context()).
_raise_on_stop = True


def stop_on_first_signal() -> None:
    """Make the first SIGINT or SIGTERM raise KeyboardInterrupt and ignore every later one.

    Install it before ``rclpy.init``, whose own handlers then call it after theirs. A second
    Ctrl-C (or a supervisor's SIGTERM after a SIGINT) can otherwise land while the first
    one is being handled, escape the cleanup and kill the process with a traceback.
    """
    global _raise_on_stop
    _raise_on_stop = True
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_once)


def stop_by_context() -> None:
    """From now on the first stop signal only makes later ones ignored; it raises nothing.

    Call it once an executor spins a context for which ``rclpy.init`` installed its signal
    handlers: they shut that context down on the signal, before calling ours, and the spin
    loop ends on it. A KeyboardInterrupt would instead land in whatever callback runs at
    that moment, and the events executor reports an exception that leaves a callback as a
    fatal error, with its stack, however the node then handles it.
    """
    global _raise_on_stop
    _raise_on_stop = False


def publish(node: Node, publisher: Publisher, msg: object) -> None:
    """Publish ``msg`` from a callback of ``node``, or drop it once a stop has begun.

    A stop signal shuts the node's context down in rclpy's signal-handling thread, which can
    happen while a callback runs (an encoder's forward pass, a simulator's render); the
    callback's publish then raises (rclpy's RCLError, "publisher's context is invalid") and
    the events executor would report it as a fatal error that ends the bringup with status 1.
    Such a message has no reader left, so it is dropped; any other failure raises.
    """
    with quiet_after_stop(node.context):
        publisher.publish(msg)


@contextmanager
def quiet_after_stop(context: Context) -> Iterator[None]:
    """End the block quietly where rclpy raises because a stop has shut ``context`` down.

    The shutdown runs in rclpy's signal-handling thread, so it can land while the block is
    inside rclpy (a node starting, the executor converting a message, a publish); rclpy then
    raises a RuntimeError (its RCLError: "context is invalid"). Once the context is down that
    error is part of stopping; while the context is up, a RuntimeError raises as any fault.
    """
    try:
        yield
    except RuntimeError:
        if context.ok():
            raise


@contextmanager
def limit_cleanup() -> Iterator[None]:
    """End the process with status 1 if the cleanup in the block outlasts :data:`CLEANUP_LIMIT_S`.

    A learner's process once hung in rclpy's ``Node.destroy_node`` (its C++
    ``destroy_when_not_in_use``, which finishes the node in rcl and the middleware) while
    every node of the system stopped together; rclpy holds the GIL there, so no Python
    thread can end the wait. faulthandler's own thread then writes every thread's stack to
    stderr, naming the call that hangs, and ends the process. It replaces the first
    signal's stack dump (:data:`STACKS_AFTER_STOP_S`); a cleanup that ends in time cancels
    both.
    """
    faulthandler.dump_traceback_later(CLEANUP_LIMIT_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def ignore_stop_signals() -> None:
    """Ignore SIGINT and SIGTERM from now on (cleanup has begun)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _stop_once(signum: int, frame: Optional[FrameType]) -> None:
    ignore_stop_signals()
    faulthandler.dump_traceback_later(STACKS_AFTER_STOP_S)
    if _raise_on_stop:
        raise KeyboardInterrupt
