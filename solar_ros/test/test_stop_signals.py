"""A node's process stops once on the first SIGINT or SIGTERM; a second cannot cut it short."""

import os
from pathlib import Path
import subprocess
import sys

import pytest

# A node whose callback is busy when the first signal comes (as a learner's refit is) and
# gets the second one while it handles the first: the learner logs where the run resumes.
NODE_SCRIPT = """
import os
import signal
import sys
import time

from rclpy.node import Node
from solar_ros.nodes.spin import spin_node

FIRST, SECOND = (getattr(signal, name) for name in sys.argv[1:3])


class BusyNode(Node):
    def __init__(self):
        super().__init__('busy')
        self._timer = self.create_timer(0.05, self._work)

    def _work(self):
        self.destroy_timer(self._timer)
        try:
            os.kill(os.getpid(), FIRST)
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                time.sleep(0.01)
            print('first signal not delivered', flush=True)
        except KeyboardInterrupt:
            os.kill(os.getpid(), SECOND)
            time.sleep(0.3)
            print('cleanup done', flush=True)
            raise


spin_node(BusyNode)
print('exited', flush=True)
"""


@pytest.mark.parametrize('first, second', [('SIGINT', 'SIGINT'), ('SIGTERM', 'SIGINT'),
                                           ('SIGINT', 'SIGTERM')])
def test_a_second_signal_during_cleanup_is_ignored(tmp_path: Path, first: str, second: str):
    script = tmp_path / 'busy_node.py'
    script.write_text(NODE_SCRIPT)
    done = subprocess.run([sys.executable, str(script), first, second], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert 'cleanup done' in output and 'exited' in output, output
    assert 'Traceback' not in output, output


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
