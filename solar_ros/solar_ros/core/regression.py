"""Least-squares fits: quadratic costs over states and actions, affine maps between coordinates.

The cost fits give LQR-FLM its quadratic c(s, a) from (s, a, c) samples of the latest
rollouts (SOLAR paper), or from (s, r) samples where the cost is a sum of squared residuals
r (:func:`fit_residual_cost`); the affine map carries a policy's gains across a change of
latent coordinates after a model refit. All math is torch float64.
"""

from typing import Optional, Tuple

from solar_ros.core.cost import QuadraticCost
from solar_ros.core.tensors import check_trajectory_batch, symmetrize
import torch
from torch import Tensor


def _quadratic_features(z: Tensor) -> Tensor:
    """Return features [z_i z_j for i <= j, z, 1] of z (M, m): (M, m (m + 1) / 2 + m + 1)."""
    rows, cols = torch.triu_indices(z.shape[1], z.shape[1])
    return torch.cat([z[:, rows] * z[:, cols], z, torch.ones(z.shape[0], 1, dtype=z.dtype)], 1)


def fit_quadratic_cost(states: Tensor, actions: Tensor, costs: Tensor,
                       action_cost: Optional[Tensor] = None, ridge: float = 1e-6,
                       psd: bool = True, floor: float = 0.0) -> QuadraticCost:
    """Fit one quadratic cost over x = [s; a], shared by all steps, to cost samples.

    The cost c_{n,t} is taken to be c(s_{n,t}, a_{n,t}). With ``action_cost`` R (du, du) known,
    the target c - 1/2 a^T R a is regressed on the state only and C = blkdiag(C_ss, R),
    c = [c_s; 0] (no state-action cross terms, as in the authors' method); without it the
    regression uses the full x with cross terms. The fit is ridge least squares on the
    features [u_i u_j (i <= j), u, 1] of the standardised u = (z - mean) / std, closed form
    (without standardising, states far from the origin with little spread, such as joint
    angles or learned latents, make these features nearly collinear).

    Choice of fit: the free quadratic is fitted first, because least squares is exact and
    unbiased for costs that really are quadratic and is solved in closed form (the authors'
    positive-definite fit needs 1000 SGD steps and only approaches the optimum). Its Hessian is
    then projected onto the positive semi-definite cone (negative eigenvalues set to zero; with
    ``psd`` True): a Hessian with negative curvature makes the LQR objective unbounded below in
    those directions, so the backward pass would chase extrapolation errors of the fit far from
    the data, kept in check only by the eta-increase fallback. When the fitted Hessian is
    already PSD (as for a convex true cost and enough data) the projection changes nothing;
    otherwise the linear and constant terms are refitted with the projected Hessian fixed.

    With ``floor`` > 0 the squares are weighted by 1 / (c' + floor), c' the (state) cost
    target clipped at 0: the residual is then measured relative to the cost, as if its
    noise grew with it. Where a cost is not exactly quadratic in the states, the plain fit
    spends its accuracy on the large costs far from the goal and may place the minimum a
    little off; the weighted one fits the low costs near the goal closely, where the task
    is decided. For an exactly quadratic cost both give the same answer.

    Args:
        states: (N, T, dx) states (smoothed latent means for image observations).
        actions: (N, T, du) actions.
        costs: (N, T) costs.
        action_cost: known (du, du) action Hessian R, or None to fit it.
        ridge: ridge added to the normal equations.
        psd: project the fitted Hessian onto the PSD cone.
        floor: weight floor in cost units (0: every sample weighs the same).

    Returns:
        :class:`QuadraticCost` with T steps, the fitted constant included.

    Raises:
        ValueError: shapes disagree, or ``floor`` is negative or not finite.

    """
    states = torch.as_tensor(states, dtype=torch.float64)
    actions = torch.as_tensor(actions, dtype=torch.float64)
    costs = torch.as_tensor(costs, dtype=torch.float64)
    check_trajectory_batch(states, actions)
    if tuple(costs.shape) != tuple(states.shape[:2]):
        raise ValueError(f'costs: expected shape {tuple(states.shape[:2])},'
                         f' got {tuple(costs.shape)}')
    if not 0.0 <= floor < float('inf'):
        raise ValueError(f'floor: expected a finite value >= 0, got {floor}')
    n, horizon, dx = states.shape
    du = actions.shape[2]
    target = costs.reshape(-1)
    if action_cost is not None:
        R = symmetrize(torch.as_tensor(action_cost, dtype=torch.float64))
        if tuple(R.shape) != (du, du):
            raise ValueError(f'action_cost: expected shape {(du, du)}, got {tuple(R.shape)}')
        flat_a = actions.reshape(-1, du)
        target = target - 0.5 * torch.einsum('mi,ij,mj->m', flat_a, R, flat_a)
        z = states.reshape(-1, dx)
    else:
        z = torch.cat([states, actions], dim=2).reshape(-1, dx + du)
    m = z.shape[1]
    # Standardised coordinates u = (z - centre) / scale keep the features well conditioned
    # when the states sit far from the origin with little spread (joint angles, latents).
    centre = z.mean(dim=0)
    scale = z.std(dim=0).clamp(min=1e-8) if z.shape[0] > 1 else torch.ones(m, dtype=z.dtype)
    u = (z - centre) / scale
    sample_weight = 1.0 / (target.clamp(min=0.0) + floor) if floor > 0 else \
        torch.ones_like(target)
    phi = _quadratic_features(u)
    weighted_phi = phi * sample_weight[:, None]
    gram = weighted_phi.T @ phi + ridge * torch.eye(phi.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, weighted_phi.T @ target)
    rows, cols = torch.triu_indices(m, m)
    quad = torch.zeros(m, m, dtype=torch.float64)
    quad[rows, cols] = weights[:rows.shape[0]]
    # 1/2 u^T H u = sum_{i<=j} w_ij u_i u_j  =>  H_ii = 2 w_ii, H_ij = H_ji = w_ij.
    hessian_u = quad + quad.T
    linear_u = weights[rows.shape[0]:rows.shape[0] + m]
    const_u = weights[-1]
    if psd:
        evals, evecs = torch.linalg.eigh(hessian_u)
        hessian_u = symmetrize((evecs * evals.clamp(min=0.0)) @ evecs.T)
        # The projection changes the function; refit the linear and constant terms to the
        # costs with the projected curvature held fixed.
        rest = target - 0.5 * torch.einsum('mi,ij,mj->m', u, hessian_u, u)
        affine = torch.cat([u, torch.ones(u.shape[0], 1, dtype=torch.float64)], dim=1)
        weighted_affine = affine * sample_weight[:, None]
        solved = torch.linalg.solve(
            weighted_affine.T @ affine + ridge * torch.eye(m + 1, dtype=torch.float64),
            weighted_affine.T @ rest)
        linear_u, const_u = solved[:m], solved[m]
    # Back to z: u = D^-1 (z - centre) with D = diag(scale).
    hessian = symmetrize(hessian_u / scale[:, None] / scale[None, :])
    linear = linear_u / scale - hessian @ centre
    const = float(const_u - (linear_u / scale) @ centre + 0.5 * centre @ hessian @ centre)
    if action_cost is not None:
        hessian = torch.block_diag(hessian, R)
        linear = torch.cat([linear, torch.zeros(du, dtype=torch.float64)])
    return QuadraticCost.tiled(hessian, linear, const, horizon)


def fit_segmented_cost(states: Tensor, actions: Tensor, costs: Tensor, segments: int,
                       action_cost: Optional[Tensor] = None, ridge: float = 1e-6,
                       psd: bool = True, floor: float = 0.0) -> QuadraticCost:
    """Fit one quadratic cost per contiguous segment of the horizon, a time-varying cost.

    The T steps are split into ``segments`` runs of near-equal length (the first ones one
    step longer when T does not divide); each run gets its own :func:`fit_quadratic_cost` on
    its steps' samples. Where a single fit averages over the whole approach, the last
    segment's fit sees only the states where the task ends, so its minimum sits where
    those costs are lowest.

    Args:
        states: (N, T, dx) states.
        actions: (N, T, du) actions.
        costs: (N, T) costs.
        segments: number of segments, 1 <= segments <= T (1 is :func:`fit_quadratic_cost`).
        action_cost, ridge, psd, floor: as for :func:`fit_quadratic_cost`.

    Returns:
        :class:`QuadraticCost` with T steps.

    """
    states = torch.as_tensor(states, dtype=torch.float64)
    actions = torch.as_tensor(actions, dtype=torch.float64)
    costs = torch.as_tensor(costs, dtype=torch.float64)
    check_trajectory_batch(states, actions)
    horizon = states.shape[1]
    if not 1 <= segments <= horizon:
        raise ValueError(f'segments: expected 1 <= segments <= T = {horizon}, got {segments}')
    fits = [fit_quadratic_cost(states[:, run], actions[:, run], costs[:, run], action_cost,
                               ridge, psd, floor)
            for run in torch.arange(horizon).tensor_split(segments)]
    return QuadraticCost(C=torch.cat([f.C for f in fits]), c=torch.cat([f.c for f in fits]),
                         const=torch.cat([f.const for f in fits]))


def fit_affine_map(source: Tensor, target: Tensor,
                   ridge: float = 1e-8) -> Tuple[Tensor, Tensor, float]:
    """Fit target ~ A source + b by least squares over paired samples.

    Args:
        source: (..., dx_s) samples.
        target: (..., dx_t) the paired samples, same leading shape.
        ridge: ridge on A, relative to the mean squared source feature.

    Returns:
        (A (dx_t, dx_s), b (dx_t,), r2): the map and the fraction of the target's variance
        it explains (1: exact).

    """
    source = torch.as_tensor(source, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    if source.shape[:-1] != target.shape[:-1]:
        raise ValueError(f'source {tuple(source.shape)} and target {tuple(target.shape)}: '
                         'expected the same leading shape')
    x, y = source.reshape(-1, source.shape[-1]), target.reshape(-1, target.shape[-1])
    if x.shape[0] <= x.shape[1]:
        raise ValueError(f'{x.shape[0]} samples cannot fix an affine map from '
                         f'{x.shape[1]} dims')
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc
    gram = gram + ridge * gram.diagonal().mean().clamp(min=1e-12) * torch.eye(
        x.shape[1], dtype=torch.float64)
    A = torch.linalg.solve(gram, xc.T @ yc).T
    b = y_mean - A @ x_mean
    residual = float(((yc - xc @ A.T) ** 2).sum())
    total = float((yc ** 2).sum())
    return A, b, 1.0 - residual / total if total > 0 else 1.0


def fit_residual_cost(states: Tensor, residuals: Tensor, action_cost: Tensor,
                      segments: int = 1, ridge: float = 1e-8) -> QuadraticCost:
    """Fit a cost c(s, a) = ||W s + b||^2 + 1/2 a^T R a from residual samples.

    For a cost that is a sum of squared residuals, c_t = ||r_t||^2 + 1/2 a_t^T R a_t with
    r_t (d,) known at every step (the simulators' squared distance to the aim is one: r is
    the offset divided by the distance scale), the affine read-out r ~ W s + b is fitted by
    least squares (:func:`fit_affine_map`) and squared. Each sample then carries d numbers
    instead of one, the fit has d (dx + 1) coefficients instead of the (dx + 1)(dx + 2) / 2
    of a free quadratic, and the cost is PSD with rank <= d and its minimum where the
    read-out says the residual is zero: it does not extrapolate a quadratic's curvature
    from samples far from the goal to the goal itself. With ``segments`` > 1 each
    contiguous part of the horizon has its own read-out (as :func:`fit_segmented_cost`), for
    residuals whose aim moves during the episode (a via-point).

    Args:
        states: (N, T, dx) states (smoothed latent means for image observations).
        residuals: (N, T, d) the cost's residuals at those states.
        action_cost: (du, du) known action Hessian R.
        segments: number of contiguous parts of the horizon, 1 <= segments <= T.
        ridge: ridge of the read-out, relative to the mean squared state feature.

    Returns:
        :class:`QuadraticCost` over x = [s; a] with T steps, per segment C = blkdiag(2 W^T W,
        R), c = [2 W^T b; 0], const = ||b||^2.

    """
    states = torch.as_tensor(states, dtype=torch.float64)
    residuals = torch.as_tensor(residuals, dtype=torch.float64)
    action_cost = torch.as_tensor(action_cost, dtype=torch.float64)
    if states.dim() != 3 or residuals.dim() != 3 or states.shape[:2] != residuals.shape[:2]:
        raise ValueError(f'states {tuple(states.shape)} and residuals {tuple(residuals.shape)}:'
                         ' expected (N, T, dx) and (N, T, d)')
    if action_cost.dim() != 2 or action_cost.shape[0] != action_cost.shape[1]:
        raise ValueError(f'action_cost: expected shape (du, du), got {tuple(action_cost.shape)}')
    horizon, dx, du = states.shape[1], states.shape[2], action_cost.shape[0]
    if not 1 <= segments <= horizon:
        raise ValueError(f'segments: expected 1 <= segments <= {horizon}, got {segments}')
    C = torch.zeros(horizon, dx + du, dx + du, dtype=torch.float64)
    c = torch.zeros(horizon, dx + du, dtype=torch.float64)
    const = torch.zeros(horizon, dtype=torch.float64)
    C[:, dx:, dx:] = action_cost
    for steps in torch.arange(horizon).tensor_split(segments):
        W, b, _ = fit_affine_map(states[:, steps], residuals[:, steps], ridge)
        C[steps, :dx, :dx] = 2.0 * W.T @ W
        c[steps, :dx] = 2.0 * W.T @ b
        const[steps] = b @ b
    return QuadraticCost(C=C, c=c, const=const)
