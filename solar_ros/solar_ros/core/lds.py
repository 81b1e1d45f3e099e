"""Kalman filtering, smoothing and sampling of a time-varying LDS with Gaussian evidence.

Model, for B sequences of T steps with latent s_t (dx) and actions a_t (du):

    s_0 ~ N(mu0, P0),   s_{t+1} = F_t [s_t; a_t] + w_t,  w_t ~ N(0, Q_t),  t = 0..T-2,

and the evidence on s_t is a Gaussian potential psi_t(s) = exp(-1/2 s^T J_t s + h_t^T s)
(the encoder's output; J diagonal or full). The posterior over s_{0:T-1} is proportional
to the LDS prior times the potentials (a product of experts). Filtering adds each potential
to the predicted belief in information form (J_pred + J_t, h_pred + h_t); prediction and
the Rauch-Tung-Striebel smoother work with means and covariances. Everything is torch
float64 and differentiable.

``log_normalizer`` is log of the integral over s_{0:T-1} of the prior density times the
product of the (unnormalised) potentials.
"""

from dataclasses import dataclass
from typing import List, Tuple, Union

import numpy as np
from solar_ros.core.mniw import LDSSuffStats
from solar_ros.core.tensors import symmetrize
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]


@dataclass
class LDSParams:
    """Time-varying linear-Gaussian dynamics and initial state.

    Attributes:
        F: (T-1, dx, dx+du) or (B, T-1, dx, dx+du) transition matrices [A_t B_t].
        Q: (T-1, dx, dx) or (B, T-1, dx, dx) process-noise covariances.
        mu0: (dx,) or (B, dx) initial mean.
        P0: (dx, dx) or (B, dx, dx) initial covariance.

    """

    F: Tensor
    Q: Tensor
    mu0: Tensor
    P0: Tensor

    @property
    def state_dim(self) -> int:
        """Return dx."""
        return int(self.F.shape[-2])

    @property
    def action_dim(self) -> int:
        """Return du."""
        return int(self.F.shape[-1] - self.F.shape[-2])

    @property
    def horizon(self) -> int:
        """Return T = number of transitions + 1."""
        return int(self.F.shape[-3]) + 1


@dataclass
class GaussianPotentials:
    """Evidence psi_t(s) = exp(-1/2 s^T J_t s + h_t^T s) on every state.

    Attributes:
        J: (B, T, dx) diagonal precisions or (B, T, dx, dx) full precisions.
        h: (B, T, dx) precision-weighted means.

    """

    J: Tensor
    h: Tensor

    def full_precision(self) -> Tensor:
        """Return J as full matrices, (B, T, dx, dx)."""
        return torch.diag_embed(self.J) if self.J.dim() == 3 else self.J


@dataclass
class FilterResult:
    """Filtered beliefs p(s_t | evidence up to t).

    Attributes:
        means: (B, T, dx).
        covs: (B, T, dx, dx).
        log_normalizer: (B,) log Z of the whole sequence.
        pred_means: (B, T, dx) predicted means p(s_t | evidence before t).
        pred_covs: (B, T, dx, dx) predicted covariances.

    """

    means: Tensor
    covs: Tensor
    log_normalizer: Tensor
    pred_means: Tensor
    pred_covs: Tensor


@dataclass
class SmootherResult:
    """Smoothed posterior q(s_{0:T-1}).

    Attributes:
        means: (B, T, dx) E[s_t].
        covs: (B, T, dx, dx) Cov(s_t).
        cross_covs: (B, T-1, dx, dx) Cov(s_{t+1}, s_t).
        log_normalizer: (B,) log Z.
        stats: expected transition statistics with x = [s_t; a_t], y = s_{t+1}, leading
            dim T-1, summed over the B sequences.

    """

    means: Tensor
    covs: Tensor
    cross_covs: Tensor
    log_normalizer: Tensor
    stats: LDSSuffStats


def _potential_shape(potentials: GaussianPotentials) -> Tuple[int, int, int]:
    """Return (B, T, dx) of ``potentials`` or raise ValueError naming the bad shape."""
    h = potentials.h
    if h.dim() != 3:
        raise ValueError(f'potentials.h: expected shape (B, T, dx), got {tuple(h.shape)}')
    batch, horizon, dx = h.shape
    if tuple(potentials.J.shape) not in ((batch, horizon, dx), (batch, horizon, dx, dx)):
        raise ValueError(f'potentials.J: expected shape ({batch}, {horizon}, {dx}) or '
                         f'({batch}, {horizon}, {dx}, {dx}), got {tuple(potentials.J.shape)}')
    return batch, horizon, dx


def _check(params: LDSParams, potentials: GaussianPotentials,
           actions: Tensor) -> Tuple[int, int, int, int]:
    """Check shapes and values; return (B, T, dx, du) or raise ValueError naming the input."""
    h = potentials.h
    batch, horizon, dx = _potential_shape(potentials)
    if params.state_dim != dx or params.horizon != horizon:
        raise ValueError(f'params.F: expected (..., {horizon - 1}, {dx}, {dx}+du) for '
                         f'T={horizon}, dx={dx}, got {tuple(params.F.shape)}')
    du = params.action_dim
    if tuple(actions.shape) != (batch, horizon, du):
        raise ValueError(f'actions: expected shape ({batch}, {horizon}, {du}), '
                         f'got {tuple(actions.shape)}')
    for name, value in (('potentials.J', potentials.J), ('potentials.h', h),
                        ('actions', actions), ('params.F', params.F), ('params.Q', params.Q),
                        ('params.mu0', params.mu0), ('params.P0', params.P0)):
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f'{name}: contains NaN or inf')
    return batch, horizon, dx, du


def _step_params(params: LDSParams, t: int, batch: int) -> Tuple[Tensor, Tensor]:
    """Return F_t (B, dx, dx+du) and Q_t (B, dx, dx), broadcasting shared parameters."""
    F = params.F[..., t, :, :]
    Q = params.Q[..., t, :, :]
    return (F.expand(batch, *F.shape[-2:]).to(torch.float64),
            Q.expand(batch, *Q.shape[-2:]).to(torch.float64))


def _predict(mean: Tensor, cov: Tensor, F: Tensor, Q: Tensor,
             action: Tensor) -> Tuple[Tensor, Tensor]:
    """Return the predicted mean (B, dx) and covariance (B, dx, dx) of s_{t+1}."""
    dx = mean.shape[-1]
    A, Bm = F[..., :dx], F[..., dx:]
    pred_mean = (A @ mean.unsqueeze(-1) + Bm @ action.unsqueeze(-1)).squeeze(-1)
    return pred_mean, symmetrize(A @ cov @ A.transpose(-1, -2) + Q)


def _update(pred_mean: Tensor, pred_cov: Tensor, J: Tensor,
            h: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Add the potential (J (B, dx, dx), h (B, dx)) to a predicted belief in information form.

    Returns:
        filtered mean (B, dx), covariance (B, dx, dx) and the log-normaliser increment (B,):
        log of the integral of N(s; pred_mean, pred_cov) exp(-1/2 s^T J s + h^T s).

    """
    pred_chol = torch.linalg.cholesky(pred_cov)
    J_pred = torch.cholesky_inverse(pred_chol)
    h_pred = torch.cholesky_solve(pred_mean.unsqueeze(-1), pred_chol).squeeze(-1)
    J_post = symmetrize(J_pred + J)
    h_post = h_pred + h
    post_chol = torch.linalg.cholesky(J_post)
    cov = symmetrize(torch.cholesky_inverse(post_chol))
    mean = torch.cholesky_solve(h_post.unsqueeze(-1), post_chol).squeeze(-1)
    logdet_pred = 2.0 * torch.log(torch.diagonal(pred_chol, dim1=-2, dim2=-1)).sum(-1)
    logdet_post = 2.0 * torch.log(torch.diagonal(post_chol, dim1=-2, dim2=-1)).sum(-1)
    increment = 0.5 * ((h_post * mean).sum(-1) - (h_pred * pred_mean).sum(-1)
                       - logdet_pred - logdet_post)
    return mean, cov, increment


def kalman_filter(params: LDSParams, potentials: GaussianPotentials,
                  actions: ArrayLike) -> FilterResult:
    """Filter B sequences: p(s_t | psi_0..psi_t, a_0..a_{t-1}) for every t.

    Args:
        params: dynamics and initial state (see :class:`LDSParams`).
        potentials: evidence, J (B, T, dx) or (B, T, dx, dx) and h (B, T, dx).
        actions: (B, T, du); a_{T-1} is not used.

    Returns:
        :class:`FilterResult`.

    """
    actions = torch.as_tensor(actions, dtype=torch.float64)
    batch, horizon, dx, _ = _check(params, potentials, actions)
    J_all, h_all = potentials.full_precision().to(torch.float64), potentials.h.to(torch.float64)
    mean = params.mu0.to(torch.float64).expand(batch, dx)
    cov = params.P0.to(torch.float64).expand(batch, dx, dx)
    means: List[Tensor] = []
    covs: List[Tensor] = []
    pred_means: List[Tensor] = []
    pred_covs: List[Tensor] = []
    log_z = torch.zeros(batch, dtype=torch.float64)
    for t in range(horizon):
        if t > 0:
            F, Q = _step_params(params, t - 1, batch)
            mean, cov = _predict(mean, cov, F, Q, actions[:, t - 1])
        pred_means.append(mean)
        pred_covs.append(cov)
        mean, cov, increment = _update(mean, cov, J_all[:, t], h_all[:, t])
        log_z = log_z + increment
        means.append(mean)
        covs.append(cov)
    return FilterResult(torch.stack(means, 1), torch.stack(covs, 1), log_z,
                        torch.stack(pred_means, 1), torch.stack(pred_covs, 1))


def _gains(params: LDSParams, filtered: FilterResult, t: int, batch: int) -> Tensor:
    """Return the smoother gain G_t = P_t A_t^T P_pred_{t+1}^-1, (B, dx, dx)."""
    dx = filtered.means.shape[-1]
    F, _ = _step_params(params, t, batch)
    A = F[..., :dx]
    pred_chol = torch.linalg.cholesky(filtered.pred_covs[:, t + 1])
    # G^T = P_pred^-1 A P_t
    return torch.cholesky_solve(A @ filtered.covs[:, t], pred_chol).transpose(-1, -2)


def kalman_smoother(params: LDSParams, potentials: GaussianPotentials,
                    actions: ArrayLike) -> SmootherResult:
    """Smooth B sequences: q(s_t) and Cov(s_{t+1}, s_t) given all evidence (RTS).

    Args:
        params: dynamics and initial state.
        potentials: evidence on every state.
        actions: (B, T, du).

    Returns:
        :class:`SmootherResult` with the expected transition statistics for the MNIW.

    """
    actions = torch.as_tensor(actions, dtype=torch.float64)
    filtered = kalman_filter(params, potentials, actions)
    batch, horizon, dx = filtered.means.shape
    means = [filtered.means[:, -1]]
    covs = [filtered.covs[:, -1]]
    cross: List[Tensor] = []
    for t in range(horizon - 2, -1, -1):
        G = _gains(params, filtered, t, batch)
        next_mean, next_cov = means[0], covs[0]
        mean = filtered.means[:, t] + (
            G @ (next_mean - filtered.pred_means[:, t + 1]).unsqueeze(-1)).squeeze(-1)
        cov = symmetrize(filtered.covs[:, t]
                         + G @ (next_cov - filtered.pred_covs[:, t + 1]) @ G.transpose(-1, -2))
        cross.insert(0, next_cov @ G.transpose(-1, -2))
        means.insert(0, mean)
        covs.insert(0, cov)
    means_t, covs_t = torch.stack(means, 1), torch.stack(covs, 1)
    cross_t = (torch.stack(cross, 1) if cross
               else torch.zeros(batch, 0, dx, dx, dtype=torch.float64))
    return SmootherResult(means_t, covs_t, cross_t, filtered.log_normalizer,
                          _expected_stats(means_t, covs_t, cross_t, actions))


def _expected_stats(means: Tensor, covs: Tensor, cross: Tensor,
                    actions: Tensor) -> LDSSuffStats:
    """Return E[x x^T], E[y x^T], E[y y^T] per transition, summed over the batch."""
    m, a, m_next = means[:, :-1], actions[:, :-1], means[:, 1:]
    ss = covs[:, :-1] + m.unsqueeze(-1) * m.unsqueeze(-2)
    sa = m.unsqueeze(-1) * a.unsqueeze(-2)
    aa = a.unsqueeze(-1) * a.unsqueeze(-2)
    xx = torch.cat([torch.cat([ss, sa], -1), torch.cat([sa.transpose(-1, -2), aa], -1)], -2)
    ys = cross + m_next.unsqueeze(-1) * m.unsqueeze(-2)
    ya = m_next.unsqueeze(-1) * a.unsqueeze(-2)
    yx = torch.cat([ys, ya], -1)
    yy = covs[:, 1:] + m_next.unsqueeze(-1) * m_next.unsqueeze(-2)
    count = torch.full(xx.shape[1:2], float(means.shape[0]), dtype=torch.float64)
    return LDSSuffStats(xx=symmetrize(xx.sum(0)), yx=yx.sum(0), yy=symmetrize(yy.sum(0)),
                        count=count)


def frame_posteriors(potentials: GaussianPotentials, actions: ArrayLike) -> SmootherResult:
    """Return the per-frame posteriors q(s_t) = N(J_t^-1 h_t, J_t^-1), independent over t.

    The VAE ablation's inference: each potential is read as a posterior on its own, with
    no dynamics linking the frames (cross-covariances zero; log_normalizer zero, unused).

    Args:
        potentials: evidence, J (B, T, dx) diagonal or (B, T, dx, dx) full, h (B, T, dx).
        actions: (B, T, du), for the transition statistics.

    Returns:
        :class:`SmootherResult` of the independent frames.

    """
    batch, horizon, dx = _potential_shape(potentials)
    actions = torch.as_tensor(actions, dtype=torch.float64)
    if potentials.J.ndim == 3:
        means = potentials.h / potentials.J
        covs = torch.diag_embed(1.0 / potentials.J)
    else:
        covs = torch.cholesky_inverse(torch.linalg.cholesky(potentials.J))
        means = (covs @ potentials.h.unsqueeze(-1)).squeeze(-1)
    cross = torch.zeros(batch, horizon - 1, dx, dx, dtype=torch.float64)
    return SmootherResult(means, covs, cross, torch.zeros(batch, dtype=torch.float64),
                          _expected_stats(means, covs, cross, actions))


def sample_backward(params: LDSParams, potentials: GaussianPotentials, actions: ArrayLike,
                    num_samples: int, generator: torch.Generator) -> Tensor:
    """Draw posterior trajectories by forward filtering, backward sampling.

    Reparameterised: the samples are differentiable functions of the potentials and the
    parameters given the standard-normal draws from ``generator``.

    Returns:
        (num_samples, B, T, dx) float64.

    """
    actions = torch.as_tensor(actions, dtype=torch.float64)
    filtered = kalman_filter(params, potentials, actions)
    batch, horizon, dx = filtered.means.shape
    noise = torch.randn(num_samples, batch, horizon, dx, generator=generator,
                        dtype=torch.float64)
    last = torch.linalg.cholesky(filtered.covs[:, -1])
    sample = filtered.means[:, -1] + (last @ noise[:, :, -1].unsqueeze(-1)).squeeze(-1)
    samples = [sample]
    for t in range(horizon - 2, -1, -1):
        G = _gains(params, filtered, t, batch)
        mean = filtered.means[:, t] + (
            G @ (sample - filtered.pred_means[:, t + 1]).unsqueeze(-1)).squeeze(-1)
        cov = symmetrize(filtered.covs[:, t]
                         - G @ filtered.pred_covs[:, t + 1] @ G.transpose(-1, -2))
        jitter = 1e-10 * torch.eye(dx, dtype=torch.float64)
        chol = torch.linalg.cholesky(cov + jitter)
        sample = mean + (chol @ noise[:, :, t].unsqueeze(-1)).squeeze(-1)
        samples.insert(0, sample)
    return torch.stack(samples, 2)
