"""Hold the time-varying linear-Gaussian policy that LQR-FLM improves.

The policy at step t is pi_t(a | s) = N(K_t s + k_t, S_t). Exploration noise is drawn through
the *lower* Cholesky factor L_t of S_t (S_t = L_t L_t^T), so a_t = K_t s + k_t + L_t eps_t
has exactly covariance S_t when eps_t ~ N(0, I).
All arrays are torch float64.
"""

from dataclasses import dataclass
import math
from typing import Optional, Union

import numpy as np
from solar_ros.core.tensors import symmetrize
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]


def _as_float64(value: ArrayLike, name: str) -> Tensor:
    """Return ``value`` as a float64 tensor; raise ValueError for non-numeric input."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.asarray(value, dtype=np.float64))
    if isinstance(value, Tensor):
        return value.to(torch.float64)
    raise ValueError(f'{name}: expected a torch tensor or numpy array, got {type(value)}')


@dataclass
class LinearGaussianPolicy:
    """Time-varying linear-Gaussian policy a_t ~ N(K_t s_t + k_t, cov_t).

    Attributes:
        K: (T, du, dx) float64 feedback gains.
        k: (T, du) float64 open-loop terms.
        cov: (T, du, du) float64 action covariances (symmetric positive definite).
        chol: (T, du, du) float64 lower Cholesky factors, cov_t = chol_t chol_t^T.

    """

    K: Tensor
    k: Tensor
    cov: Tensor
    chol: Tensor

    def __post_init__(self) -> None:
        """Check shapes and convert every field to float64."""
        self.K = _as_float64(self.K, 'K')
        self.k = _as_float64(self.k, 'k')
        self.cov = _as_float64(self.cov, 'cov')
        self.chol = _as_float64(self.chol, 'chol')
        if self.K.dim() != 3:
            raise ValueError(f'K: expected shape (T, du, dx), got {tuple(self.K.shape)}')
        horizon, du, _ = self.K.shape
        for name, value, shape in (('k', self.k, (horizon, du)),
                                   ('cov', self.cov, (horizon, du, du)),
                                   ('chol', self.chol, (horizon, du, du))):
            if tuple(value.shape) != shape:
                raise ValueError(f'{name}: expected shape {shape}, got {tuple(value.shape)}')

    @classmethod
    def from_cov(cls, K: Tensor, k: Tensor, cov: Tensor) -> 'LinearGaussianPolicy':
        """Build a policy from gains and covariances, computing the lower Cholesky factors.

        Args:
            K: (T, du, dx) feedback gains.
            k: (T, du) open-loop terms.
            cov: (T, du, du) action covariances; symmetrised before factorising.

        Returns:
            The policy; raises ValueError if some cov_t is not positive definite.

        """
        cov = symmetrize(_as_float64(cov, 'cov'))
        chol, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            bad = int(torch.nonzero(info)[0, 0])
            raise ValueError(f'cov: expected positive definite matrices, cov[{bad}] is not')
        return cls(K=K, k=k, cov=cov, chol=chol)

    @classmethod
    def initial(cls, horizon: int, state_dim: int, action_dim: int,
                std: float = 0.5) -> 'LinearGaussianPolicy':
        """Return the initial random policy: K = 0, k = 0, cov = std^2 I (std in action units).

        Args:
            horizon: number of time steps T (>= 1).
            state_dim: dx (>= 1).
            action_dim: du (>= 1).
            std: standard deviation of the exploration noise per action dimension (> 0).

        Returns:
            The policy with K (T, du, dx), k (T, du) zero and cov (T, du, du) = std^2 I.

        """
        for name, value in (('horizon', horizon), ('state_dim', state_dim),
                            ('action_dim', action_dim)):
            if int(value) < 1:
                raise ValueError(f'{name}: expected an integer >= 1, got {value}')
        if not std > 0:
            raise ValueError(f'std: expected a positive float, got {std}')
        eye = torch.eye(action_dim, dtype=torch.float64).expand(horizon, action_dim, action_dim)
        return cls(K=torch.zeros(horizon, action_dim, state_dim, dtype=torch.float64),
                   k=torch.zeros(horizon, action_dim, dtype=torch.float64),
                   cov=std ** 2 * eye.clone(), chol=std * eye.clone())

    @property
    def horizon(self) -> int:
        """Return the number of time steps T."""
        return self.K.shape[0]

    @property
    def state_dim(self) -> int:
        """Return the state dimension dx."""
        return self.K.shape[2]

    @property
    def action_dim(self) -> int:
        """Return the action dimension du."""
        return self.K.shape[1]

    def in_coordinates(self, A: Tensor, b: Tensor) -> 'LinearGaussianPolicy':
        """Return the same policy acting on new states s' given by old states s = A s' + b.

        Used when a refitted model changes the latent coordinates: K'_t = K_t A and
        k'_t = k_t + K_t b give the same mean action for the same underlying state; the
        covariances are unchanged.

        Args:
            A: (dx, dx') float64 linear part.
            b: (dx,) float64 offset.

        Returns:
            The policy with K' (T, du, dx'), k' (T, du) and this policy's covariances.

        """
        A, b = _as_float64(A, 'A'), _as_float64(b, 'b')
        if A.dim() != 2 or A.shape[0] != self.state_dim or tuple(b.shape) != (self.state_dim,):
            raise ValueError(f'A, b: expected shapes ({self.state_dim}, dx_new) and '
                             f'({self.state_dim},), got {tuple(A.shape)} and {tuple(b.shape)}')
        return LinearGaussianPolicy(K=self.K @ A, k=self.k + self.K @ b, cov=self.cov.clone(),
                                    chol=self.chol.clone())

    def with_noise_scale(self, scale: float) -> 'LinearGaussianPolicy':
        """Return the same mean policy with its action noise scaled by ``scale`` (> 0).

        The covariances become scale^2 cov_t (Cholesky factors scale chol_t); K and k are
        shared, not copied.
        """
        if not 0 < scale < float('inf'):
            raise ValueError(f'scale must be finite and > 0, got {scale}')
        return LinearGaussianPolicy(K=self.K, k=self.k, cov=self.cov * scale ** 2,
                                    chol=self.chol * scale)

    def precision(self) -> Tensor:
        """Return the inverse covariances cov_t^-1: (T, du, du)."""
        return symmetrize(torch.cholesky_inverse(self.chol))

    def act(self, t: int, s: ArrayLike, noise: Optional[ArrayLike] = None,
            generator: Optional[torch.Generator] = None) -> ArrayLike:
        """Return the action a_t = K_t s + k_t + L_t eps for state ``s`` at step ``t``.

        Args:
            t: time step in [0, T).
            s: (dx,) or (B, dx) state; numpy input gives numpy output.
            noise: standard-normal eps of shape (du,) or (B, du), e.g. one row of
                :func:`smoothed_noise`; if None, eps is drawn from ``generator``.
            generator: torch generator used when ``noise`` is None; pass neither noise
                nor generator to draw from torch's global generator.

        Returns:
            Action of shape (du,) or (B, du), float64.

        """
        if not 0 <= t < self.horizon:
            raise ValueError(f't: expected 0 <= t < {self.horizon}, got {t}')
        as_numpy = isinstance(s, np.ndarray)
        state = _as_float64(s, 's')
        if state.shape[-1] != self.state_dim or state.dim() > 2:
            raise ValueError(f's: expected shape ({self.state_dim},) or (B, {self.state_dim}),'
                             f' got {tuple(state.shape)}')
        lead = state.shape[:-1]
        if noise is None:
            eps = torch.randn(*lead, self.action_dim, dtype=torch.float64, generator=generator)
        else:
            eps = _as_float64(noise, 'noise')
            if tuple(eps.shape) != (*lead, self.action_dim):
                raise ValueError(f'noise: expected shape {(*lead, self.action_dim)},'
                                 f' got {tuple(eps.shape)}')
        action = state @ self.K[t].T + self.k[t] + eps @ self.chol[t].T
        return action.numpy() if as_numpy else action


def smoothed_noise(horizon: int, action_dim: int, generator: Optional[torch.Generator] = None,
                   sigma: float = 2.0) -> Tensor:
    """Draw one episode of exploration noise, Gaussian-smoothed over time.

    White noise eps_t ~ N(0, I) is convolved over time with a Gaussian kernel of standard
    deviation ``sigma`` steps (truncated at 4 sigma, cut at the episode ends). Each step's
    weights are renormalised to unit Euclidean norm, so every eps_t stays exactly N(0, I)
    marginally while neighbouring steps are correlated; sigma = 0 returns white noise.

    Args:
        horizon: number of time steps T.
        action_dim: du.
        generator: torch generator for reproducible draws.
        sigma: kernel standard deviation in time steps (>= 0).

    Returns:
        (T, du) float64 noise, to be passed row by row as ``noise`` to
        :meth:`LinearGaussianPolicy.act`.

    """
    if sigma < 0:
        raise ValueError(f'sigma: expected a float >= 0, got {sigma}')
    white = torch.randn(horizon, action_dim, dtype=torch.float64, generator=generator)
    if sigma == 0:
        return white
    steps = torch.arange(horizon, dtype=torch.float64)
    lag = steps[:, None] - steps[None, :]
    weights = torch.exp(-0.5 * (lag / sigma) ** 2) * (lag.abs() <= math.ceil(4 * sigma))
    weights = weights / weights.norm(dim=1, keepdim=True)
    return weights @ white
