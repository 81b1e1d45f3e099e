"""Local time-varying dynamics for LQR-FLM, fitted with the global model as prior.

Trajectories are given as any object with ``means`` (N, T, dx), ``covs`` (N, T, dx, dx) and
``stats`` (:class:`mniw.LDSSuffStats` with leading dim T-1, summed over the N rollouts), such as
``lds.SmootherResult`` or :func:`observed_trajectories` for directly observed states; or as a
callable mapping the current local MNIW to such an object (a smoother), which turns on EM
(SOLAR paper). All math is torch float64.
"""

from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Tuple, Union

from solar_ros.core.mniw import LDSSuffStats, MNIW
from solar_ros.core.tensors import check_trajectory_batch
import torch
from torch import Tensor


class SmoothedTrajectories(Protocol):
    """Posterior summaries of N rollouts' states, e.g. ``lds.SmootherResult``.

    Attributes:
        means: (N, T, dx) posterior means of s_t.
        covs: (N, T, dx, dx) posterior covariances of s_t.
        stats: expected transition statistics, leading dim T-1, summed over the rollouts.

    """

    means: Tensor
    covs: Tensor
    stats: LDSSuffStats


Smoother = Callable[[MNIW], SmoothedTrajectories]


@dataclass
class ObservedTrajectories:
    """Directly observed states seen as (trivially) smoothed trajectories.

    Attributes:
        means: (N, T, dx) the states.
        covs: (N, T, dx, dx) zeros.
        stats: exact transition statistics (leading dim T-1).

    """

    means: Tensor
    covs: Tensor
    stats: LDSSuffStats


def transition_stats(states: Tensor, actions: Tensor) -> LDSSuffStats:
    """Return the exact per-step transition statistics of observed state sequences.

    With x = [s_t; a_t] and y = s_{t+1}: xx_t = sum_n x x^T, yx_t = sum_n y x^T,
    yy_t = sum_n y y^T and count_t = N, for t = 0..T-2.

    Args:
        states: (N, T, dx) states.
        actions: (N, T, du) actions (the last one is unused).

    Returns:
        :class:`mniw.LDSSuffStats` with leading dim T-1, float64.

    """
    states = torch.as_tensor(states, dtype=torch.float64)
    actions = torch.as_tensor(actions, dtype=torch.float64)
    check_trajectory_batch(states, actions)
    x = torch.cat([states[:, :-1], actions[:, :-1]], dim=2)
    y = states[:, 1:]
    return LDSSuffStats(xx=torch.einsum('nti,ntj->tij', x, x),
                        yx=torch.einsum('nti,ntj->tij', y, x),
                        yy=torch.einsum('nti,ntj->tij', y, y),
                        count=torch.full((x.shape[1],), float(x.shape[0]), dtype=torch.float64))


def observed_trajectories(states: Tensor, actions: Tensor) -> ObservedTrajectories:
    """Wrap directly observed states (N, T, dx) and actions (N, T, du) for :class:`LQRFLM`."""
    states = torch.as_tensor(states, dtype=torch.float64)
    n, horizon, dx = states.shape
    return ObservedTrajectories(means=states,
                                covs=torch.zeros(n, horizon, dx, dx, dtype=torch.float64),
                                stats=transition_stats(states, actions))


@dataclass
class LocalDynamicsFit:
    """Output of :func:`fit_local_dynamics`.

    Attributes:
        posterior: local MNIW per transition (leading dim T-1).
        trajectories: the last smoothed trajectories (E-step output under ``posterior``'s
            predecessor; for observed states, the states themselves).
        iterations: number of M-steps done.
        converged: whether the KL between successive local posteriors fell below tol
            (always True for fixed trajectories).

    """

    posterior: MNIW
    trajectories: SmoothedTrajectories
    iterations: int
    converged: bool


def fit_local_dynamics(prior: MNIW, trajectories: Union[SmoothedTrajectories, Smoother],
                       data_strength: float = 1.0, max_iter: int = 100,
                       tol: float = 1e-3) -> LocalDynamicsFit:
    """Fit the local time-varying dynamics posterior with the global model as prior.

    M-step: q_t = prior_t.posterior(data_strength * stats_t), the conjugate MNIW update in
    natural parameters eta_local = eta_prior + data_strength * stats. If ``trajectories`` is a
    smoother (a callable MNIW -> trajectories), the loop starts by smoothing under the global
    model and then alternates smoothing under q and the M-step (EM / mean-field VB), stopping
    when sum_t KL(q_new || q_old) < tol or after ``max_iter`` M-steps. Fixed trajectories
    (observed states) need a single M-step.

    Args:
        prior: global model q(F_t, Sigma_t), leading dim T-1.
        trajectories: smoothed trajectories, or a smoother to be called with the current MNIW.
        data_strength: lambda >= 0, weight of the data against the prior (0 returns the prior).
        max_iter: maximum number of M-steps for the EM loop.
        tol: EM stopping threshold in nats.

    Returns:
        :class:`LocalDynamicsFit`.

    """
    if data_strength < 0:
        raise ValueError(f'data_strength: expected a float >= 0, got {data_strength}')
    if max_iter < 1:
        raise ValueError(f'max_iter: expected an integer >= 1, got {max_iter}')
    smoother = trajectories if callable(trajectories) else None
    current = smoother(prior) if smoother is not None else trajectories
    posterior = prior.posterior(current.stats.scaled(data_strength))
    if smoother is None:
        return LocalDynamicsFit(posterior, current, 1, True)
    for iteration in range(2, max_iter + 1):
        current = smoother(posterior)
        updated = prior.posterior(current.stats.scaled(data_strength))
        change = float(updated.kl(posterior).sum())
        posterior = updated
        if change < tol:
            return LocalDynamicsFit(posterior, current, iteration, True)
    return LocalDynamicsFit(posterior, current, max_iter, False)


def initial_state_estimate(means0: Tensor, covs0: Optional[Tensor] = None,
                           floor: float = 1e-6) -> Tuple[Tensor, Tensor]:
    """Estimate the initial-state distribution N(mu0, P0) from smoothed s_0 of N rollouts.

    mu0 is the mean of the smoothed means; P0 is diagonal, with the variance of the means
    across rollouts plus the mean smoothed variance (law of total variance), floored at
    ``floor``.

    Args:
        means0: (N, dx) smoothed means of s_0.
        covs0: (N, dx, dx) smoothed covariances of s_0, or None for observed states.
        floor: lower bound of the variances.

    Returns:
        (mu0 (dx,), P0 (dx, dx)) float64.

    """
    means0 = torch.as_tensor(means0, dtype=torch.float64)
    if means0.dim() != 2:
        raise ValueError(f'means0: expected shape (N, dx), got {tuple(means0.shape)}')
    mu0 = means0.mean(0)
    var = ((means0 - mu0) ** 2).mean(0)
    if covs0 is not None:
        var = var + torch.diagonal(torch.as_tensor(covs0, dtype=torch.float64),
                                   dim1=1, dim2=2).mean(0)
    return mu0, torch.diag(var.clamp(min=floor))
