"""One instance of every solar_ros_msgs type with every field set to a distinct value.

Shared by the DDS round-trip test and the publisher process it starts, so that both
sides build the same messages; also the simplest valid gains message, for controller tests.
"""

from typing import Dict

import numpy as np

from solar_ros_msgs.msg import EpisodeEvent, LatentBelief, LatentPotential, TimeVaryingGains
from solar_ros_msgs.srv import ResetEpisode

# Awkward float64 values that a lossy conversion would change.
_VALUES = [0.1, -2.5e-300, 1.0 / 3.0, 6.02214076e23, -0.0, 12345.678901234567]


def _floats(n: int, offset: int) -> list:
    """Return ``n`` distinct float64 values; ``offset`` makes fields differ."""
    return [_VALUES[i % len(_VALUES)] * (1 + i + offset) for i in range(n)]


def _stamp(msg, sec: int, frame: str):
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = 123456789
    msg.header.frame_id = frame
    return msg


def sample_messages() -> Dict[str, object]:
    """Message type name -> a message with every field set (dx=3, du=2, T=4)."""
    dx, du, horizon = 3, 2, 4
    potential = _stamp(LatentPotential(), 11, 'camera')
    potential.episode_id = 2**40 + 7
    potential.step = 17
    potential.dim = dx
    potential.mean = _floats(dx, 1)
    potential.precision = _floats(dx * dx, 2)
    potential.model_version = 5

    belief = _stamp(LatentBelief(), 12, 'latent')
    belief.episode_id = 2**33 + 1
    belief.step = 29
    belief.dim = dx
    belief.mean = _floats(dx, 3)
    belief.covariance = _floats(dx * dx, 4)
    belief.model_version = 6

    gains = _stamp(TimeVaryingGains(), 13, 'latent')
    gains.policy_version = 9
    gains.model_version = 6
    gains.horizon = horizon
    gains.state_dim = dx
    gains.action_dim = du
    gains.feedback_gains = _floats(horizon * du * dx, 5)
    gains.feedforward = _floats(horizon * du, 6)
    gains.noise_chol = _floats(horizon * du * du, 7)
    gains.dynamics = _floats((horizon - 1) * dx * (dx + du), 8)
    gains.process_noise = _floats((horizon - 1) * dx * dx, 9)
    gains.initial_mean = _floats(dx, 10)
    gains.initial_covariance = _floats(dx * dx, 11)

    event = _stamp(EpisodeEvent(), 14, 'world')
    event.episode_id = 3
    event.task_id = 2
    event.kind = EpisodeEvent.END
    event.step = 30
    event.cost = 0.0123456789
    event.success = True
    event.aim_offset = _floats(3, 15)
    return {type(m).__name__: m for m in (potential, belief, gains, event)}


def sample_reset_request() -> ResetEpisode.Request:
    """Return a ResetEpisode request with both fields set."""
    return ResetEpisode.Request(task_id=3, seed=2**50 + 3)


def reset_response_for(request: ResetEpisode.Request) -> ResetEpisode.Response:
    """Return the service process's response: every field derived from the request."""
    return ResetEpisode.Response(
        success=True,
        message=f'task {request.task_id} seed {request.seed} \u2713',
        episode_id=request.seed + request.task_id)


def feedforward_gains(horizon: int, dx: int, du: int, feedforward: float) -> TimeVaryingGains:
    """Return gains whose mean action is ``feedforward`` rad/s on every joint and step.

    K = 0, identity noise Cholesky factors, zero dynamics with identity process noise.
    """
    return TimeVaryingGains(
        horizon=horizon, state_dim=dx, action_dim=du,
        feedback_gains=[0.0] * (horizon * du * dx), feedforward=[feedforward] * (horizon * du),
        noise_chol=np.tile(np.eye(du), (horizon, 1, 1)).ravel().tolist(),
        dynamics=[0.0] * ((horizon - 1) * dx * (dx + du)),
        process_noise=np.tile(np.eye(dx), (horizon - 1, 1, 1)).ravel().tolist(),
        initial_mean=[0.0] * dx, initial_covariance=np.eye(dx).ravel().tolist())
