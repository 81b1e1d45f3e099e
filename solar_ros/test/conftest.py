"""Fixtures shared by the test modules."""

from learning_runs import CHECKED_POINT_MASS, finished_run
import pytest
import rclpy


@pytest.fixture
def context():
    """Yield an initialised rclpy context of its own; shut it down afterwards."""
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture(scope='session')
def checked_run(tmp_path_factory):
    """Return a finished point-mass run with checks (``CHECKED_POINT_MASS``); read it only."""
    return finished_run(CHECKED_POINT_MASS, tmp_path_factory.mktemp('checked_run'))
