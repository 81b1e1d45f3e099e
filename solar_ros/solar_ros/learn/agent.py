"""Run a latent policy on images in one process: encode, filter, act (solar-method.md 3.6).

This is the in-process counterpart of the encoder, latent filter and controller nodes: per
step the encoder's potential updates an :class:`OnlineKalmanFilter` (one O(1) step, not a
re-filter of the prefix), the policy acts on the filtered mean, and the action actually
applied drives the filter's prediction with the gains' dynamics for that step.
"""

import numpy as np
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.lds import OnlineKalmanFilter
from solar_ros.core.model import SolarModel
import torch


class LatentAgent:
    """Act on camera images with a SOLAR model and time-varying gains."""

    def __init__(self, model: SolarModel, gains: TimeVaryingGains) -> None:
        """Use ``model``'s encoder and ``gains`` (policy plus filtering dynamics)."""
        if gains.state_dim != model.config.latent_dim:
            raise ValueError(f'gains act on dx={gains.state_dim}, the model has '
                             f'dx={model.config.latent_dim}')
        self.model = model
        self.gains = gains
        self.filter = OnlineKalmanFilter(gains.state_dim)
        self.noise = np.zeros((gains.horizon, gains.action_dim))
        self.t = 0

    def reset(self, noise: np.ndarray) -> None:
        """Start an episode with exploration noise ``noise`` (T, du), standard normal."""
        if noise.shape != self.noise.shape:
            raise ValueError(f'noise: expected shape {self.noise.shape}, got {noise.shape}')
        self.noise = noise
        self.filter.reset(self.gains.dynamics.mu0, self.gains.dynamics.P0)
        self.t = 0

    def act(self, image: np.ndarray) -> np.ndarray:
        """Return the action (du,) for the frame (H, W, 3) uint8 seen at the current step."""
        with torch.no_grad():
            potential = self.model.encode(torch.as_tensor(image)[None, None])
        mean, _ = self.filter.update(potential.J[0, 0], potential.h[0, 0])
        return self.gains.policy.act(self.t, mean, self.noise[self.t]).numpy()

    def observe_action(self, action: np.ndarray) -> None:
        """Predict the next latent state from the action (du,) actually applied."""
        dynamics = self.gains.dynamics
        self.filter.predict(dynamics.F[self.t], dynamics.Q[self.t],
                            torch.as_tensor(action, dtype=torch.float64))
        self.t += 1
