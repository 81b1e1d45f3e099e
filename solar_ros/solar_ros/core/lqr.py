"""Solve KL-constrained maximum-entropy LQR steps for time-varying linear-Gaussian systems.

Problem (LQR-FLM, Levine and Abbeel, 2014, as SOLAR uses it): minimise
E_p[sum_t cost_t(x_t)] over linear-Gaussian policies pi subject to
sum_t E_p[KL(pi_t(.|s_t) || pi_old_t(.|s_t))] <= epsilon, where p is the state-action
distribution of pi under the dynamics s_{t+1} = F_t [s_t; a_t] + w_t, w_t ~ N(0, Q_t),
s_0 ~ N(mu0, P0). Dividing the Lagrangian by the dual variable eta turns it
into a maximum-entropy LQR with the augmented cost cost_t / eta - log pi_old_t(a | s), which
:func:`lqr_backward` solves exactly; :func:`solve_kl_step` searches eta so that the predicted
KL hits epsilon, and :func:`adjust_step_mult` adapts epsilon from predicted versus actual
improvement. Everything is torch float64 with symmetrised matrices.

Horizon convention: T states s_0..s_{T-1}, T actions, T-1 transitions (F: (T-1, dx, dx+du)).
"""

from dataclasses import dataclass
import math
from typing import NamedTuple, Optional, Protocol, Tuple

from solar_ros.core.cost import QuadraticCost
from solar_ros.core.policy import LinearGaussianPolicy
from solar_ros.core.tensors import symmetrize
import torch
from torch import Tensor


class LQRError(RuntimeError):
    """The backward pass found no positive-definite action Hessian below the eta limit."""


class GaussianDynamics(Protocol):
    """Time-varying linear-Gaussian dynamics, as held by ``lds.LDSParams``.

    Attributes:
        F: (T-1, dx, dx+du) transition matrices [A_t B_t].
        Q: (T-1, dx, dx) process-noise covariances.
        mu0: (dx,) initial-state mean.
        P0: (dx, dx) initial-state covariance.

    """

    F: Tensor
    Q: Tensor
    mu0: Tensor
    P0: Tensor


class BackwardResult(NamedTuple):
    """Output of :func:`lqr_backward`: the new policy and the eta actually used."""

    policy: LinearGaussianPolicy
    eta: float


@dataclass
class KLStepResult:
    """Output of :func:`solve_kl_step`.

    Attributes:
        policy: the new policy.
        eta: the dual variable that produced it.
        kl: predicted trajectory KL(new || old) in nats under the new policy's marginals.
        expected_cost: predicted sum over t of E[cost_t] under the new policy.
        iterations: number of backward passes done by the dual search.
        converged: whether |kl - epsilon| <= rtol * epsilon, or the constraint was inactive
            (kl < epsilon at the smallest eta tried).

    """

    policy: LinearGaussianPolicy
    eta: float
    kl: float
    expected_cost: float
    iterations: int
    converged: bool


def _check_problem(dynamics: GaussianDynamics, cost: QuadraticCost) -> Tuple[int, int, int]:
    """Return (T, dx, du) after checking that dynamics and cost agree."""
    horizon, n = cost.horizon, cost.size
    F = dynamics.F
    if F.dim() != 3 or F.shape[0] != horizon - 1 or F.shape[2] != n:
        raise ValueError(f'dynamics.F: expected shape ({horizon - 1}, dx, {n}),'
                         f' got {tuple(F.shape)}')
    dx = F.shape[1]
    if tuple(dynamics.Q.shape) != (horizon - 1, dx, dx):
        raise ValueError(f'dynamics.Q: expected shape {(horizon - 1, dx, dx)},'
                         f' got {tuple(dynamics.Q.shape)}')
    if tuple(dynamics.mu0.shape) != (dx,) or tuple(dynamics.P0.shape) != (dx, dx):
        raise ValueError(f'dynamics.mu0/P0: expected shapes ({dx},) and {(dx, dx)}, got'
                         f' {tuple(dynamics.mu0.shape)} and {tuple(dynamics.P0.shape)}')
    return horizon, dx, n - dx


def _check_policy(policy: LinearGaussianPolicy, horizon: int, dx: int, du: int,
                  name: str) -> None:
    """Raise ValueError unless ``policy`` has horizon T, state dim dx and action dim du."""
    shape = (policy.horizon, policy.action_dim, policy.state_dim)
    if shape != (horizon, du, dx):
        raise ValueError(f'{name}: expected a policy with K of shape {(horizon, du, dx)},'
                         f' got {shape}')


def kl_penalty_cost(old_policy: LinearGaussianPolicy) -> QuadraticCost:
    """Return -log pi_old_t(a | s) as a quadratic cost over x = [s; a], up to constants.

    With P = cov_old^-1: C_t = [[K^T P K, -K^T P], [-P K, P]] and c_t = [K^T P k; -P k].

    Args:
        old_policy: the policy the KL is measured against.

    Returns:
        The (T, dx+du) quadratic cost; its const is zero.

    """
    P = old_policy.precision()
    K, k = old_policy.K, old_policy.k
    PK = P @ K
    C = torch.cat([torch.cat([K.transpose(1, 2) @ PK, -PK.transpose(1, 2)], dim=2),
                   torch.cat([-PK, P], dim=2)], dim=1)
    Pk = (P @ k[..., None])[..., 0]
    c = torch.cat([(K.transpose(1, 2) @ Pk[..., None])[..., 0], -Pk], dim=1)
    return QuadraticCost(C=C, c=c)


def _riccati(dynamics: GaussianDynamics, C: Tensor, c: Tensor,
             dx: int) -> Optional[Tuple[Tensor, Tensor, Tensor]]:
    """Run the max-entropy backward pass; return (K, k, cov) or None if Q_aa is not PD."""
    horizon, n, _ = C.shape
    V = torch.zeros(dx, dx, dtype=torch.float64)
    v = torch.zeros(dx, dtype=torch.float64)
    K = torch.empty(horizon, n - dx, dx, dtype=torch.float64)
    k = torch.empty(horizon, n - dx, dtype=torch.float64)
    cov = torch.empty(horizon, n - dx, n - dx, dtype=torch.float64)
    for t in range(horizon - 1, -1, -1):
        Qxx, qx = C[t], c[t]
        if t < horizon - 1:
            F = dynamics.F[t]
            Qxx = Qxx + F.T @ V @ F
            qx = qx + F.T @ v
        Qxx = symmetrize(Qxx)
        chol, info = torch.linalg.cholesky_ex(Qxx[dx:, dx:])
        if int(info) != 0:
            return None
        K[t] = -torch.cholesky_solve(Qxx[dx:, :dx], chol)
        k[t] = -torch.cholesky_solve(qx[dx:, None], chol)[:, 0]
        cov[t] = torch.cholesky_inverse(chol)
        V = symmetrize(Qxx[:dx, :dx] + Qxx[:dx, dx:] @ K[t])
        v = qx[:dx] + Qxx[:dx, dx:] @ k[t]
    return K, k, cov


def lqr_backward(dynamics: GaussianDynamics, cost: QuadraticCost, eta: float = 1.0,
                 old_policy: Optional[LinearGaussianPolicy] = None,
                 max_eta: float = 1e16) -> BackwardResult:
    """Solve the max-entropy LQR for the cost cost / eta - log pi_old (or cost / eta alone).

    Backward recursion with V_T = 0: Q_xx = C_t + F_t^T V_{t+1} F_t, q_x = c_t + F_t^T v_{t+1}
    (Q_xx symmetrised), then K_t = -Q_aa^-1 Q_as, k_t = -Q_aa^-1 q_a, cov_t = Q_aa^-1 (the
    soft-optimal policy), V_t = Q_ss + Q_sa K_t, v_t = q_s + Q_sa k_t. Q_aa is factorised by
    Cholesky; if that fails anywhere and ``old_policy`` is given, the pass is redone with
    eta = eta_0 + delta, delta = 1e-4, 2e-4, 4e-4, ... (a larger eta weights the old policy's
    positive-definite precision more), until it succeeds or eta >= ``max_eta``.

    With ``old_policy`` None the gains K, k are the finite-horizon Riccati solution of the
    plain LQR for ``cost`` (eta only scales the covariance, cov_t = eta Q_aa(cost)^-1).

    Args:
        dynamics: time-varying dynamics with F (T-1, dx, dx+du) (Q, mu0, P0 are not used).
        cost: quadratic cost over x = [s; a] with T steps.
        eta: dual variable (> 0); the KL penalty weight relative to the cost.
        old_policy: the previous policy pi_old, or None for the plain max-entropy LQR.
        max_eta: give up (raise :class:`LQRError`) once eta reaches this value.

    Returns:
        :class:`BackwardResult` (policy, eta used).

    """
    horizon, dx, du = _check_problem(dynamics, cost)
    if not eta > 0:
        raise ValueError(f'eta: expected a positive float, got {eta}')
    eta = float(eta)
    if old_policy is None:
        solution = _riccati(dynamics, cost.C / eta, cost.c / eta, dx)
        if solution is None:
            raise LQRError('lqr_backward: Q_aa is not positive definite and there is no'
                           ' old policy whose KL penalty could make it so')
        return BackwardResult(LinearGaussianPolicy.from_cov(*solution), eta)
    _check_policy(old_policy, horizon, dx, du, 'old_policy')
    penalty = kl_penalty_cost(old_policy)
    eta0, delta = eta, 1e-4
    while True:
        solution = _riccati(dynamics, cost.C / eta + penalty.C, cost.c / eta + penalty.c, dx)
        if solution is not None:
            return BackwardResult(LinearGaussianPolicy.from_cov(*solution), eta)
        eta, delta = eta0 + delta, 2.0 * delta
        if eta >= max_eta:
            raise LQRError(f'lqr_backward: Q_aa is not positive definite for any eta'
                           f' < {max_eta:g} (started at {eta0:g})')


def forward_marginals(dynamics: GaussianDynamics,
                      policy: LinearGaussianPolicy) -> Tuple[Tensor, Tensor]:
    """Propagate the Gaussian state-action marginals of ``policy`` through ``dynamics``.

    s_0 ~ N(mu0, P0); a_t | s_t ~ N(K_t s_t + k_t, cov_t); s_{t+1} = F_t x_t + N(0, Q_t).

    Args:
        dynamics: time-varying dynamics (F, Q, mu0, P0) over T-1 transitions.
        policy: the policy with the same T, dx, du.

    Returns:
        mean (T, dx+du) and cov (T, dx+du, dx+du) of x_t = [s_t; a_t], float64.

    """
    horizon, dx, du = policy.horizon, policy.state_dim, policy.action_dim
    if tuple(dynamics.F.shape) != (horizon - 1, dx, dx + du):
        raise ValueError(f'dynamics.F: expected shape {(horizon - 1, dx, dx + du)},'
                         f' got {tuple(dynamics.F.shape)}')
    n = dx + du
    mean = torch.empty(horizon, n, dtype=torch.float64)
    cov = torch.empty(horizon, n, n, dtype=torch.float64)
    mu_s = torch.as_tensor(dynamics.mu0, dtype=torch.float64)
    cov_s = symmetrize(torch.as_tensor(dynamics.P0, dtype=torch.float64))
    for t in range(horizon):
        K = policy.K[t]
        cov_sa = cov_s @ K.T
        mean[t, :dx] = mu_s
        mean[t, dx:] = K @ mu_s + policy.k[t]
        cov[t, :dx, :dx] = cov_s
        cov[t, :dx, dx:] = cov_sa
        cov[t, dx:, :dx] = cov_sa.T
        cov[t, dx:, dx:] = symmetrize(K @ cov_sa + policy.cov[t])
        if t < horizon - 1:
            F = dynamics.F[t]
            mu_s = F @ mean[t]
            cov_s = symmetrize(F @ cov[t] @ F.T + dynamics.Q[t])
    return mean, cov


def policy_kl(new_policy: LinearGaussianPolicy, old_policy: LinearGaussianPolicy,
              state_mean: Tensor, state_cov: Tensor) -> Tensor:
    """Return E_{s_t ~ N(state_mean_t, state_cov_t)}[KL(new_t(.|s_t) || old_t(.|s_t))] per step.

    KL_t = 1/2 [tr(P S) - du + log|S_old| - log|S| + (dK m + dk)^T P (dK m + dk)
    + tr(dK^T P dK Sigma)], with S, S_old the covariances, P = S_old^-1, dK = K_old - K,
    dk = k_old - k, m and Sigma the state mean and covariance.

    Args:
        new_policy: the policy whose marginals are used (the KL's first argument).
        old_policy: the reference policy, same T, dx, du.
        state_mean: (T, dx) state marginal means under the new policy.
        state_cov: (T, dx, dx) state marginal covariances.

    Returns:
        (T,) float64 per-step expected KL in nats (not clamped).

    """
    horizon, dx, du = new_policy.horizon, new_policy.state_dim, new_policy.action_dim
    _check_policy(old_policy, horizon, dx, du, 'old_policy')
    if tuple(state_mean.shape) != (horizon, dx) or tuple(state_cov.shape) != (horizon, dx, dx):
        raise ValueError(f'state_mean/state_cov: expected shapes {(horizon, dx)} and'
                         f' {(horizon, dx, dx)}, got {tuple(state_mean.shape)} and'
                         f' {tuple(state_cov.shape)}')
    P = old_policy.precision()
    dK = old_policy.K - new_policy.K
    dmean = (dK @ state_mean[..., None])[..., 0] + old_policy.k - new_policy.k
    logdet_new = 2.0 * torch.log(torch.diagonal(new_policy.chol, dim1=1, dim2=2)).sum(-1)
    logdet_old = 2.0 * torch.log(torch.diagonal(old_policy.chol, dim1=1, dim2=2)).sum(-1)
    trace = torch.einsum('tij,tji->t', P, new_policy.cov)
    mahal = torch.einsum('ti,tij,tj->t', dmean, P, dmean)
    gain = torch.einsum('tai,tab,tbj,tji->t', dK, P, dK, state_cov)
    return 0.5 * (trace - du + logdet_old - logdet_new + mahal + gain)


def traj_kl(new_policy: LinearGaussianPolicy, old_policy: LinearGaussianPolicy,
            marginal_mean: Tensor, marginal_cov: Tensor) -> float:
    """Return sum_t max(0, KL_t) of :func:`policy_kl`, taking the state part of the marginals.

    Args:
        new_policy: policy that produced the marginals.
        old_policy: reference policy.
        marginal_mean: (T, dx+du) state-action means from :func:`forward_marginals`.
        marginal_cov: (T, dx+du, dx+du) state-action covariances.

    Returns:
        The trajectory KL in nats.

    """
    dx = new_policy.state_dim
    per_step = policy_kl(new_policy, old_policy, marginal_mean[:, :dx],
                         marginal_cov[:, :dx, :dx])
    return float(per_step.clamp(min=0.0).sum())


def expected_cost(cost: QuadraticCost, marginal_mean: Tensor, marginal_cov: Tensor) -> float:
    """Return sum_t E[cost_t(x_t)] = sum_t 1/2 tr(C_t Sigma_t) + 1/2 mu_t^T C_t mu_t + c_t^T mu_t.

    Args:
        cost: the quadratic cost (its constants included).
        marginal_mean: (T, dx+du) state-action means.
        marginal_cov: (T, dx+du, dx+du) state-action covariances.

    Returns:
        The expected total cost.

    """
    return float(cost.expected(marginal_mean, marginal_cov).sum())


def policy_cost(dynamics: GaussianDynamics, cost: QuadraticCost,
                policy: LinearGaussianPolicy) -> float:
    """Return the analytic expected total cost of ``policy`` under ``dynamics``."""
    return expected_cost(cost, *forward_marginals(dynamics, policy))


def solve_kl_step(dynamics: GaussianDynamics, cost: QuadraticCost,
                  old_policy: LinearGaussianPolicy, epsilon: float, eta_init: float = 1.0,
                  eta_min: float = 1e-8, eta_max: float = 1e16, max_iter: int = 50,
                  rtol: float = 0.1) -> KLStepResult:
    """Search the dual variable eta so that the new policy's trajectory KL equals ``epsilon``.

    The KL decreases as eta grows. Starting from ``eta_init`` inside [eta_min, eta_max], each
    backward pass tightens the bracket [lo, hi]: KL < epsilon makes eta the upper bound, KL >
    epsilon the lower bound. Until both sides are found eta moves a decade at a time (never
    past eta_min or eta_max), then it bisects the bracket in log space, eta = sqrt(lo hi).
    Stops when |KL - epsilon| <= rtol epsilon, when KL < epsilon at eta_min (the constraint
    is inactive), when eta changes by less than a factor 1 + 1e-6, or after ``max_iter``
    passes.

    Args:
        dynamics: time-varying dynamics (F, Q, mu0, P0).
        cost: quadratic cost over x = [s; a].
        old_policy: current policy; the KL is measured against it.
        epsilon: KL step in nats for the whole trajectory (> 0).
        eta_init: first eta tried.
        eta_min: lower end of the bracket.
        eta_max: upper end of the bracket (also the Cholesky fallback's limit).
        max_iter: maximum number of backward passes.
        rtol: relative KL tolerance.

    Returns:
        :class:`KLStepResult` of the last pass.

    """
    if not epsilon > 0:
        raise ValueError(f'epsilon: expected a positive float, got {epsilon}')
    if not 0 < eta_min <= eta_init <= eta_max:
        raise ValueError(f'eta_init: expected eta_min <= eta_init <= eta_max, got'
                         f' {eta_min}, {eta_init}, {eta_max}')
    lo, hi, eta = float(eta_min), float(eta_max), float(eta_init)
    found_lo = found_hi = False
    for iteration in range(1, max_iter + 1):
        policy, eta = lqr_backward(dynamics, cost, eta, old_policy, max_eta=eta_max)
        mean, cov = forward_marginals(dynamics, policy)
        kl = traj_kl(policy, old_policy, mean, cov)
        at_min = eta <= eta_min * (1.0 + 1e-6)
        converged = abs(kl - epsilon) <= rtol * epsilon or (kl < epsilon and at_min)
        if converged:
            break
        if kl < epsilon:
            hi, found_hi = eta, True
            new_eta = math.sqrt(lo * hi) if found_lo else max(0.1 * hi, eta_min)
        else:
            lo, found_lo = eta, True
            new_eta = math.sqrt(lo * hi) if found_hi else min(10.0 * lo, eta_max)
        if abs(math.log(new_eta / eta)) < 1e-6:
            break
        eta = new_eta
    return KLStepResult(policy=policy, eta=eta, kl=kl,
                        expected_cost=expected_cost(cost, mean, cov), iterations=iteration,
                        converged=converged)


def adjust_step_mult(step_mult: float, previous_cost: float, predicted_cost: float,
                     actual_cost: float, min_mult: float = 0.1, max_mult: float = 10.0) -> float:
    """Adapt the KL step multiplier from predicted versus actual improvement (GPS rule).

    predicted = previous_cost - predicted_cost and actual = previous_cost - actual_cost;
    mult = clip(predicted / (2 max(1e-4, predicted - actual)), 0.1, 5);
    the result is clip(mult * step_mult, min_mult, max_mult).

    Args:
        step_mult: current multiplier of the KL step.
        previous_cost: J(pi_{i-1}; model_{i-1}), the old policy's cost under the old fit.
        predicted_cost: J(pi_i; model_{i-1}), the new policy's cost predicted at update time.
        actual_cost: J(pi_i; model_i), the new policy's cost under the fit to its own data.
        min_mult: lower clip of the result.
        max_mult: upper clip of the result.

    Returns:
        The new step multiplier.

    """
    predicted = previous_cost - predicted_cost
    actual = previous_cost - actual_cost
    mult = predicted / (2.0 * max(1e-4, predicted - actual))
    mult = min(max(mult, 0.1), 5.0)
    return min(max(mult * step_mult, min_mult), max_mult)
