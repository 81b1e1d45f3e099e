"""Run a latent policy on images in one process: encode, filter, act.

:class:`LatentAgent` runs :class:`solar_ros.core.online.OnlineStep`, the step the encoder,
latent filter and controller nodes split between them, in one process: per step the
encoder's potential updates the belief (one O(1) Kalman step), the policy acts on the
filtered mean, and the action actually applied drives the filter's prediction with the
gains' dynamics for that step. With a VAE-ablation model (``inference: vae``) the policy
acts on the encoder's mean of the current frame alone. :class:`MPCAgent` filters the same
way with the model's global dynamics and plans every action with the cross-entropy method
(the MPC ablation).
"""

from typing import Optional, Union

import numpy as np
from solar_ros.core.cem import CEMConfig, plan
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.model import SolarModel
from solar_ros.core.online import OnlineStep
from solar_ros.core.online_filter import OnlineKalmanFilter
import torch


class LatentAgent:
    """Act on camera images with a SOLAR model and time-varying gains, in one process."""

    def __init__(self, model: SolarModel, gains: TimeVaryingGains) -> None:
        """Use ``model``'s encoder and ``gains`` (policy plus filtering dynamics)."""
        self.online = OnlineStep(model, gains)
        self.online.adopt()

    @property
    def model(self) -> SolarModel:
        """Return the model whose encoder sees the frames."""
        return self.online.model

    @property
    def gains(self) -> TimeVaryingGains:
        """Return the policy and its filtering dynamics."""
        return self.online.gains

    @property
    def policy_version(self) -> int:
        """Return the version of the policy acting."""
        return self.online.gains.policy_version

    def reset(self, noise: np.ndarray) -> None:
        """Start an episode with exploration noise ``noise`` (T, du), standard normal."""
        self.online.start(noise)

    def act(self, image: np.ndarray) -> np.ndarray:
        """Return the action (du,) for the frame (H, W, 3 V) uint8 seen at the current step."""
        return self.online.step(image)

    def observe_action(self, action: np.ndarray) -> None:
        """Predict the next latent state from the action (du,) actually applied."""
        self.online.predict(action)


class MPCAgent:
    """Act by planning in the latent space of a model (the MPC ablation).

    Each step: filter the frame with the model's global mean dynamics, plan the remaining
    steps (at most ``config.horizon``) with :func:`solar_ros.core.cem.plan` under the
    model's learned cost, warm-started from the last plan shifted by one, and return the
    plan's first action. The exploration noise given to :meth:`reset` is not used: the
    planner's sampling is its exploration.
    """

    def __init__(self, model: SolarModel, config: CEMConfig, policy_version: int,
                 seed: int = 0) -> None:
        """Plan with ``model`` (its version is ``policy_version``) and ``config``."""
        self.model = model
        self.config = config
        self.policy_version = policy_version
        self.dynamics = model.dynamics()
        C, c, _ = model.cost_params()
        horizon = model.config.horizon
        self.C = C.expand(horizon, *C.shape)
        self.c = c.expand(horizon, *c.shape)
        du = model.config.action_dim
        self.high = torch.full((du,), config.action_bound, dtype=torch.float64)
        self.filter = OnlineKalmanFilter(model.config.latent_dim)
        self.generator = torch.Generator().manual_seed(seed)
        self.t = 0
        self._plan: Optional[torch.Tensor] = None

    def reset(self, noise: np.ndarray) -> None:
        """Start an episode (``noise`` is ignored; see the class docstring)."""
        del noise
        self.filter.reset(self.dynamics.mu0, self.dynamics.P0)
        self.t = 0
        self._plan = None

    def act(self, image: np.ndarray) -> np.ndarray:
        """Return the planned action (du,) for the frame (H, W, 3 V) uint8 of this step."""
        with torch.no_grad():
            potential = self.model.encode(torch.as_tensor(image)[None, None])
        mean, _ = self.filter.update(potential.J[0, 0], potential.h[0, 0])
        steps = min(self.config.horizon, self.model.config.horizon - self.t)
        start = None
        if self._plan is not None and len(self._plan) > 1:
            start = torch.cat([self._plan[1:], self._plan[-1:]])[:steps]
        t = self.t
        self._plan = plan(torch.from_numpy(mean), self.dynamics.F[t:t + steps - 1],
                          self.C[t:t + steps], self.c[t:t + steps], -self.high, self.high,
                          self.config, self.generator, start)
        return self._plan[0].numpy()

    def observe_action(self, action: np.ndarray) -> None:
        """Predict the next latent state from the action (du,) actually applied."""
        self.filter.predict(self.dynamics.F[self.t], self.dynamics.Q[self.t], action)
        self.t += 1


def make_agent(method: str, model: SolarModel, gains: TimeVaryingGains,
               mpc: CEMConfig) -> Union[LatentAgent, MPCAgent]:
    """Return the agent of a run's ``loop.method`` for its current model and gains.

    Policy 0 (the random policy) is a :class:`LatentAgent` for every method.
    """
    if method == 'mpc' and gains.policy_version > 0:
        return MPCAgent(model, mpc, gains.policy_version,
                        seed=gains.policy_version)
    return LatentAgent(model, gains)
