"""Every solar_ros_msgs type crosses real DDS between two processes unchanged."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from message_samples import reset_response_for, sample_messages, sample_reset_request
import pytest
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from solar_ros_msgs.srv import ResetEpisode

PEER = Path(__file__).parent / 'fixtures' / 'message_peer.py'
TIMEOUT_S = 30.0


@pytest.fixture
def peer():
    """Start the publishing process; terminate it after the test."""
    process = subprocess.Popen([sys.executable, str(PEER)], env=dict(os.environ),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield process
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def node():
    """Create a test node in a context of its own."""
    context = rclpy.Context()
    rclpy.init(context=context)
    test_node = rclpy.create_node('message_roundtrip_test', context=context)
    yield test_node
    test_node.destroy_node()
    rclpy.try_shutdown(context=context)


def _spin_until(node, done, what: str, timeout: float = TIMEOUT_S, required: bool = True):
    executor = rclpy.executors.SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    executor.remove_node(node)
    assert done() or not required, f'timed out after {timeout} s waiting for {what}'


def test_every_message_round_trips_exactly(peer, node):
    expected = sample_messages()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    received = {}
    for name, msg in expected.items():
        node.create_subscription(type(msg), f'samples/{name}',
                                 lambda m, n=name: received.setdefault(n, m), latched)
    _spin_until(node, lambda: len(received) == len(expected),
                f'messages {sorted(set(expected) - set(received))}')
    for name, msg in expected.items():
        for field in msg.get_fields_and_field_types():
            assert getattr(received[name], field) == getattr(msg, field), f'{name}.{field}'
        assert received[name] == msg


def test_reset_service_round_trips(peer, node):
    client = node.create_client(ResetEpisode, 'samples/reset')
    _spin_until(node, client.service_is_ready, 'the ResetEpisode service')
    # A service found ready may not yet have matched the reply path (a DDS discovery
    # race): a request unanswered after a few seconds is sent again.
    futures = []
    deadline = time.monotonic() + TIMEOUT_S
    while not any(f.done() for f in futures) and time.monotonic() < deadline:
        futures.append(client.call_async(sample_reset_request()))
        _spin_until(node, lambda: any(f.done() for f in futures), 'the ResetEpisode response',
                    timeout=5.0, required=False)
    answered = [f for f in futures if f.done()]
    assert answered, f'no ResetEpisode response in {TIMEOUT_S} s'
    assert answered[0].result() == reset_response_for(sample_reset_request())
