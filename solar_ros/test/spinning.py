"""A node under test with a peer node in one executor; spinning until a condition holds."""

import time
from typing import Callable, Tuple

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


def with_peer(node: Node, context: rclpy.Context,
              name: str) -> Tuple[Node, SingleThreadedExecutor]:
    """Return a peer node named ``name`` and an executor that spins it and ``node``."""
    peer = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    for member in (node, peer):
        executor.add_node(member)
    return peer, executor


def spin_until(executor, done: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Spin ``executor`` until ``done()``; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    assert done(), f'timed out waiting for {what}'


def spin_for(executor, seconds: float) -> None:
    """Spin ``executor`` for ``seconds``, whatever happens meanwhile."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
