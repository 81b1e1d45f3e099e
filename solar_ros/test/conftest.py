"""Fixtures shared by the test modules."""

import pytest
import rclpy


@pytest.fixture
def context():
    """Yield an initialised rclpy context of its own; shut it down afterwards."""
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)
