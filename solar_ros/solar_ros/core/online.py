"""The online control step of a running episode: encode a frame, filter, act.

:class:`OnlineStep` is the one implementation of SOLAR's run-time loop, used in one process
by :class:`solar_ros.learn.agent.LatentAgent` and split across processes by the encoder,
latent filter and controller nodes, each calling its own stage:

- :meth:`OnlineStep.encode` (encoder): frame (H, W, 3 V) uint8 -> Gaussian potential
  J (dx,) diagonal precision, h (dx,) = J * mean;
- :meth:`OnlineStep.update` (filter): the product of experts of the belief and the
  potential, one O(1) Kalman update -> belief mean (dx,), covariance (dx, dx);
- :meth:`OnlineStep.act` (controller): a_t = K_t s_t + k_t + noise_scale L_t eps_t on the
  belief mean;
- :meth:`OnlineStep.predict` (filter): the belief of step t + 1 from the action applied at
  step t, through the gains' dynamics F_t, Q_t.

A model and gains given to :meth:`OnlineStep.offer` are adopted only at the next
:meth:`OnlineStep.start`, so each episode runs with one model and one policy. The
exploration noise of an episode is drawn one way everywhere: :func:`episode_noise` from the
episode's seed. Arrays in and out are numpy float64 (images uint8); no ROS.
"""

from typing import NamedTuple, Optional, Tuple

import numpy as np
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.model import SolarModel
from solar_ros.core.networks import KeypointEncoderStack
from solar_ros.core.online_filter import OnlineKalmanFilter
from solar_ros.core.policy import smoothed_noise
import torch


def episode_noise(horizon: int, action_dim: int, seed: int, smooth: bool = False) -> np.ndarray:
    """Return an episode's standard-normal exploration noise (T, du), seeded by ``seed``.

    ``smooth`` draws time-correlated noise (:func:`solar_ros.core.policy.smoothed_noise`).
    """
    generator = torch.Generator().manual_seed(int(seed))
    if smooth:
        return smoothed_noise(horizon, action_dim, generator=generator).numpy()
    return torch.randn(horizon, action_dim, generator=generator, dtype=torch.float64).numpy()


class _GainArrays(NamedTuple):
    """The adopted gains as numpy float64 copies, read on every step."""

    K: np.ndarray  # (T, du, dx) feedback gains
    k: np.ndarray  # (T, du) offsets
    L: np.ndarray  # (T, du, du) noise factors
    F: np.ndarray  # (T-1, dx, dx+du) filter dynamics [A B]
    Q: np.ndarray  # (T-1, dx, dx) process noise


class OnlineStep:
    """Encode, filter and act for one episode at a time (module docstring).

    Stages need what they use: :meth:`encode` a model; :meth:`update`, :meth:`act` and
    :meth:`predict` gains. Calling a stage whose part has not been adopted raises
    RuntimeError.
    """

    def __init__(self, model: Optional[SolarModel] = None,
                 gains: Optional[TimeVaryingGains] = None, noise_scale: float = 1.0) -> None:
        """Offer ``model`` and ``gains`` (adopted at the first :meth:`start`).

        ``noise_scale`` multiplies the policy noise L_t eps_t (0: the mean action).
        """
        if not noise_scale >= 0:
            raise ValueError(f'noise_scale must be >= 0, got {noise_scale}')
        self.noise_scale = float(noise_scale)
        self.model: Optional[SolarModel] = None
        self.gains: Optional[TimeVaryingGains] = None
        self._next_model = model
        self._next_gains = gains
        self._filter: Optional[OnlineKalmanFilter] = None
        self._stack: Optional[KeypointEncoderStack] = None  # the model's views in one pass
        self._arrays: Optional[_GainArrays] = None
        self._noise = np.zeros((0, 0))
        self.t = 0

    def offer(self, model: Optional[SolarModel] = None,
              gains: Optional[TimeVaryingGains] = None) -> None:
        """Keep ``model`` and/or ``gains`` for the next episode (None leaves that part)."""
        if model is not None:
            self._next_model = model
        if gains is not None:
            self._next_gains = gains

    @property
    def pending(self) -> bool:
        """Return whether a model or gains wait to be adopted at the next start."""
        return self._next_model is not None or self._next_gains is not None

    def adopt(self) -> None:
        """Switch to the model and gains offered last, if any (done by :meth:`start`)."""
        if self._next_model is not None:
            self.model, self._next_model = self._next_model, None
            encoders = self.model.view_encoders()
            self._stack = (KeypointEncoderStack(encoders)
                           if KeypointEncoderStack.can_stack(encoders) else None)
        if self._next_gains is not None:
            self.gains, self._next_gains = self._next_gains, None
            policy, dynamics = self.gains.policy, self.gains.dynamics
            self._arrays = _GainArrays(*(a.detach().numpy().astype(np.float64) for a in (
                policy.K, policy.k, policy.chol, dynamics.F, dynamics.Q)))
        if self.model is not None and self.gains is not None \
                and self.gains.state_dim != self.model.config.latent_dim:
            raise ValueError(f'gains act on dx={self.gains.state_dim}, the model has '
                             f'dx={self.model.config.latent_dim}')

    def start(self, noise: Optional[np.ndarray] = None) -> None:
        """Begin an episode: adopt what was offered, reset the belief to N(mu0, P0).

        Args:
            noise: (T, du) standard-normal exploration noise of the episode
                (:func:`episode_noise`); None: no noise (the mean actions).

        """
        self.adopt()
        self.t = 0
        gains = self.gains
        if gains is None:
            return
        if noise is None:
            noise = np.zeros((gains.horizon, gains.action_dim))
        noise = np.asarray(noise, dtype=np.float64)
        if noise.shape != (gains.horizon, gains.action_dim):
            raise ValueError(f'noise: expected shape {(gains.horizon, gains.action_dim)}, '
                             f'got {noise.shape}')
        self._noise = noise
        if self._filter is None or self._filter.state_dim != gains.state_dim:
            self._filter = OnlineKalmanFilter(gains.state_dim)
        self._filter.reset(gains.dynamics.mu0, gains.dynamics.P0)

    def _need_gains(self) -> TimeVaryingGains:
        if self.gains is None:
            raise RuntimeError('no gains adopted yet: offer gains, then start an episode')
        return self.gains

    def encode(self, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Return the frame's potential: J (dx,) diagonal or (dx, dx), h (dx,), float64.

        Args:
            image: (H, W, 3 V) uint8 frame of the model's size and views.

        """
        if self.model is None:
            raise RuntimeError('no model adopted yet: offer a model, then start an episode')
        frame = torch.tensor(image)  # a copy: frames from messages are read-only
        if self._stack is not None:
            J, h = self._stack(frame)
            return J.numpy(), h.numpy()
        with torch.no_grad():
            potential = self.model.encode(frame[None, None])
        return potential.J[0, 0].numpy(), potential.h[0, 0].numpy()

    def update(self, J: np.ndarray, h: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Multiply the belief of the current step by the potential; return (mean, cov)."""
        self._need_gains()
        return self._filter.update(J, h)

    def belief(self) -> Tuple[np.ndarray, np.ndarray]:
        """Return the current belief: mean (dx,) and covariance (dx, dx)."""
        self._need_gains()
        return self._filter.mean, self._filter.cov

    def act(self, mean: np.ndarray, t: Optional[int] = None) -> np.ndarray:
        """Return the action (du,) of the policy at step ``t`` (default: the current one).

        Floating-point overflow is not raised: huge gains give inf or NaN, for the caller
        (the controller's safety check) to reject.
        """
        gains = self._need_gains()
        t = self.t if t is None else int(t)
        if not 0 <= t < gains.horizon:
            raise ValueError(f't: expected 0 <= t < {gains.horizon}, got {t}')
        mean = np.asarray(mean, dtype=np.float64)
        if mean.shape != (gains.state_dim,):
            raise ValueError(f'mean: expected shape ({gains.state_dim},), got {mean.shape}')
        arrays = self._arrays
        with np.errstate(all='ignore'):
            action = arrays.K[t] @ mean + arrays.k[t]
            if t < len(self._noise) and self.noise_scale:
                action += self.noise_scale * (arrays.L[t] @ self._noise[t])
        return action

    def predict(self, action: np.ndarray) -> bool:
        """Move the belief to the next step with the action (du,) applied at this one.

        Returns:
            False (and nothing changes) when this was the episode's last step, else True.

        """
        gains = self._need_gains()
        if self.t + 1 >= gains.horizon:
            return False
        self._filter.predict(self._arrays.F[self.t], self._arrays.Q[self.t], action)
        self.t += 1
        return True

    def step(self, image: np.ndarray) -> np.ndarray:
        """Return the action (du,) for the frame of the current step: encode, update, act.

        With a VAE-ablation model (``inference: vae``) the policy acts on the encoder's mean
        of this frame alone, without the filter.
        """
        J, h = self.encode(image)
        if self.model.config.inference == 'vae':
            return self.act(h / J)
        mean, _ = self.update(J, h)
        return self.act(mean)
