"""A node's process stops once on the first SIGINT or SIGTERM; a second cannot cut it short.

Its process then ends without the interpreter's own finalisation (``spin.end_process``).
"""

import os
from pathlib import Path
import subprocess
import sys

import pytest

# A node whose callback is busy when the first signal comes (as a learner's refit is): it
# works until its context is shut down, as a refit does, and gets the second signal while it
# finishes. With START, the signal comes while the node is being created instead.
NODE_SCRIPT = """
import atexit
import os
import signal
import sys
import time

from rclpy.node import Node
from solar_ros.nodes import spin
from std_msgs.msg import String

FIRST, SECOND = (getattr(signal, name) for name in sys.argv[1:3])
AT_START = sys.argv[3] == 'START'
HANG = sys.argv[3] == 'HANG'  # one signal; the callback then outlasts the stack dump's delay
STUCK = sys.argv[3] == 'STUCK'  # one signal; the node's cleanup then never ends
# the callback publishes once the context is shut down: through spin.publish, or RAW
LATE = sys.argv[3] if sys.argv[3] in ('PUBLISH', 'RAW') else None
if HANG:
    spin.STACKS_AFTER_STOP_S = 0.5
if STUCK:
    spin.CLEANUP_LIMIT_S = 0.5
atexit.register(print, 'interpreter finalised', flush=True)


class BusyNode(Node):
    def __init__(self):
        super().__init__('busy')
        if AT_START:
            os.kill(os.getpid(), FIRST)
            time.sleep(10.0)
            print('start not interrupted', flush=True)
        self._publisher = self.create_publisher(String, 'late', 10)
        self._timer = self.create_timer(0.05, self._work)

    def _work(self):
        self.destroy_timer(self._timer)
        os.kill(os.getpid(), FIRST)
        deadline = time.monotonic() + 10.0
        while self.context.ok() and time.monotonic() < deadline:
            time.sleep(0.01)
        print(f'context shut down: {not self.context.ok()}', flush=True)
        if LATE == 'PUBLISH':
            spin.publish(self, self._publisher, String(data='late'))
        elif LATE == 'RAW':
            self._publisher.publish(String(data='late'))
        if not (HANG or STUCK):
            os.kill(os.getpid(), SECOND)
        time.sleep(1.5 if HANG else 0.3)
        print('cleanup done', flush=True)

    def destroy_node(self):
        if STUCK:
            time.sleep(60.0)
        super().destroy_node()


spin.spin_node(BusyNode)
print('spin_node returned', flush=True)
"""


def _node_process(tmp_path: Path, first: str, second: str,
                  when: str) -> subprocess.CompletedProcess:
    """Run NODE_SCRIPT with its signals and mode; return the finished process."""
    script = tmp_path / 'busy_node.py'
    script.write_text(NODE_SCRIPT)
    return subprocess.run([sys.executable, str(script), first, second, when],
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, PYTHONUNBUFFERED='1'))


def _run_node(tmp_path: Path, first: str, second: str, when: str, status: int = 0) -> str:
    """Run NODE_SCRIPT; return its output after checking how it ended.

    Exit status ``status``, no traceback, and the process ended in ``spin_node`` without
    running the interpreter's exit handlers.
    """
    done = _node_process(tmp_path, first, second, when)
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    assert 'spin_node returned' not in output, output
    assert 'interpreter finalised' not in output, output
    # The events executor logs an exception that leaves a callback as "Exception in".
    assert 'Traceback' not in output and 'Exception in' not in output, output
    return output


@pytest.mark.parametrize('first, second', [('SIGINT', 'SIGINT'), ('SIGTERM', 'SIGINT'),
                                           ('SIGINT', 'SIGTERM')])
def test_a_signal_shuts_a_busy_callback_down_and_a_second_one_is_ignored(
        tmp_path: Path, first: str, second: str):
    output = _run_node(tmp_path, first, second, 'SPIN')
    assert 'context shut down: True' in output and 'cleanup done' in output, output


@pytest.mark.parametrize('first', ['SIGINT', 'SIGTERM'])
def test_a_signal_while_the_node_starts_ends_it_cleanly(tmp_path: Path, first: str):
    output = _run_node(tmp_path, first, first, 'START')
    assert 'start not interrupted' not in output and 'cleanup done' not in output, output


def test_a_message_published_after_the_stop_is_dropped_without_a_fault(tmp_path: Path):
    output = _run_node(tmp_path, 'SIGINT', 'SIGINT', 'PUBLISH')
    assert 'context shut down: True' in output and 'cleanup done' in output, output


def test_a_plain_publish_after_the_stop_is_what_spin_publish_guards_against(tmp_path: Path):
    """That publish raises in rclpy, and the events executor reports it as a fatal error."""
    done = _node_process(tmp_path, 'SIGINT', 'SIGINT', 'RAW')
    output = done.stdout + done.stderr
    assert 'context shut down: True' in output, output
    assert "Exception in 'timers' callback" in output and 'context is invalid' in output, output


def test_signals_are_ignored_once_cleanup_has_begun(tmp_path: Path):
    script = tmp_path / 'ignore.py'
    script.write_text(
        'import os, signal, time\n'
        'from solar_ros.nodes.spin import ignore_stop_signals\n'
        'ignore_stop_signals()\n'
        'os.kill(os.getpid(), signal.SIGINT)\n'
        'os.kill(os.getpid(), signal.SIGTERM)\n'
        'time.sleep(0.2)\n'
        "print('still here', flush=True)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and 'still here' in done.stdout, done.stdout + done.stderr


def test_a_stop_that_outlasts_the_delay_writes_where_it_hangs(tmp_path: Path):
    output = _run_node(tmp_path, 'SIGINT', 'SIGINT', 'HANG')
    assert 'cleanup done' in output, output
    dump = output[output.index('most recent call first'):]
    assert '_work' in dump and 'spin_node' in dump, output


def test_a_cleanup_that_never_ends_ends_the_process_with_status_1_and_its_stack(
        tmp_path: Path):
    """A stand-in for a middleware that hangs in ``destroy_node`` (a fault we cannot cause)."""
    output = _run_node(tmp_path, 'SIGINT', 'SIGINT', 'STUCK', status=1)
    assert 'cleanup done' in output, output
    dump = output[output.index('most recent call first'):]
    assert 'destroy_node' in dump and 'spin_node' in dump, output
