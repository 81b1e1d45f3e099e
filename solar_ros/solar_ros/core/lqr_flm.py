"""Improve a time-varying linear-Gaussian policy by LQR-FLM (solar-method.md section 3).

One update, from the latest rollouts of the current policy:

1. local dynamics: per transition t, the MNIW posterior over (F_t, Sigma_t) with the global
   model q(F_t, Sigma_t) as empirical-Bayes prior, eta_local = eta_global + lambda * stats_t
   (lambda = ``data_strength``); for latent states this alternates with re-smoothing the
   trajectories under the new local model (EM, :func:`fit_local_dynamics`);
2. cost: a quadratic fitted by least squares to (s, a, c) samples (:func:`fit_quadratic_cost`),
   or one per segment of the horizon (:func:`fit_segmented_cost`), then weighted per step
   by the objective's weights (:meth:`LQRFLM.step_weights`, the last one
   ``final_cost_weight``);
3. initial state: mean and diagonal variance of the smoothed s_0 (:func:`initial_state_estimate`);
4. policy: the KL-constrained maximum-entropy LQR step of :func:`lqr.solve_kl_step`, with the
   step epsilon = kl_step * T * step_mult and step_mult adapted from predicted versus actual
   improvement (:func:`lqr.adjust_step_mult`).

Trajectories are given as any object with ``means`` (N, T, dx), ``covs`` (N, T, dx, dx) and
``stats`` (:class:`mniw.LDSSuffStats` with leading dim T-1, summed over the N rollouts), such as
``lds.SmootherResult`` or :func:`observed_trajectories` for directly observed states; or as a
callable mapping the current local MNIW to such an object (a smoother), which turns on EM.
All math is torch float64.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Optional, Protocol, Tuple, Union

from solar_ros.core.cost import QuadraticCost
from solar_ros.core.lds import LDSParams
from solar_ros.core.lqr import adjust_step_mult, policy_cost, solve_kl_step
from solar_ros.core.mniw import LDSSuffStats, MNIW
from solar_ros.core.policy import LinearGaussianPolicy, symmetrize
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


def _check_batch(states: Tensor, actions: Tensor) -> None:
    """Raise ValueError unless states (N, T, dx) and actions (N, T, du) agree in N and T."""
    if states.dim() != 3:
        raise ValueError(f'states: expected shape (N, T, dx), got {tuple(states.shape)}')
    if actions.dim() != 3 or actions.shape[:2] != states.shape[:2]:
        raise ValueError(f'actions: expected shape ({states.shape[0]}, {states.shape[1]}, du),'
                         f' got {tuple(actions.shape)}')


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
    _check_batch(states, actions)
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


def _quadratic_features(z: Tensor) -> Tensor:
    """Return features [z_i z_j for i <= j, z, 1] of z (M, m): (M, m (m + 1) / 2 + m + 1)."""
    rows, cols = torch.triu_indices(z.shape[1], z.shape[1])
    return torch.cat([z[:, rows] * z[:, cols], z, torch.ones(z.shape[0], 1, dtype=z.dtype)], 1)


def fit_quadratic_cost(states: Tensor, actions: Tensor, costs: Tensor,
                       action_cost: Optional[Tensor] = None, ridge: float = 1e-6,
                       psd: bool = True) -> QuadraticCost:
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

    Args:
        states: (N, T, dx) states (smoothed latent means for image observations).
        actions: (N, T, du) actions.
        costs: (N, T) costs.
        action_cost: known (du, du) action Hessian R, or None to fit it.
        ridge: ridge added to the normal equations.
        psd: project the fitted Hessian onto the PSD cone.

    Returns:
        :class:`QuadraticCost` with T steps, the fitted constant included.

    """
    states = torch.as_tensor(states, dtype=torch.float64)
    actions = torch.as_tensor(actions, dtype=torch.float64)
    costs = torch.as_tensor(costs, dtype=torch.float64)
    _check_batch(states, actions)
    if tuple(costs.shape) != tuple(states.shape[:2]):
        raise ValueError(f'costs: expected shape {tuple(states.shape[:2])},'
                         f' got {tuple(costs.shape)}')
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
    phi = _quadratic_features(u)
    gram = phi.T @ phi + ridge * torch.eye(phi.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, phi.T @ target)
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
        solved = torch.linalg.solve(
            affine.T @ affine + ridge * torch.eye(m + 1, dtype=torch.float64),
            affine.T @ rest)
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
                       psd: bool = True) -> QuadraticCost:
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
        action_cost, ridge, psd: as for :func:`fit_quadratic_cost`.

    Returns:
        :class:`QuadraticCost` with T steps.

    """
    states = torch.as_tensor(states, dtype=torch.float64)
    actions = torch.as_tensor(actions, dtype=torch.float64)
    costs = torch.as_tensor(costs, dtype=torch.float64)
    _check_batch(states, actions)
    horizon = states.shape[1]
    if not 1 <= segments <= horizon:
        raise ValueError(f'segments: expected 1 <= segments <= T = {horizon}, got {segments}')
    fits = [fit_quadratic_cost(states[:, run], actions[:, run], costs[:, run], action_cost,
                               ridge, psd)
            for run in torch.arange(horizon).tensor_split(segments)]
    return QuadraticCost(C=torch.cat([f.C for f in fits]), c=torch.cat([f.c for f in fits]),
                         const=torch.cat([f.const for f in fits]))


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


@dataclass
class LQRFLMConfig:
    """Settings of :class:`LQRFLM` (defaults from the authors' Reacher run unless noted).

    Attributes:
        kl_step: KL step per time step in nats; epsilon = kl_step * T * step_mult.
        init_std: standard deviation of the initial random policy's actions.
        data_strength: lambda, weight of the rollouts against the global-model prior.
        em_max_iter: maximum number of local-dynamics EM iterations.
        em_tol: EM stopping threshold in nats.
        cost_ridge: ridge of the cost regression.
        psd_cost: project the fitted cost Hessian onto the PSD cone.
        cost_segments: fit one quadratic cost per this many contiguous parts of the horizon
            (:func:`fit_segmented_cost`); 1 shares one cost over all steps (the authors').
        final_cost_weight: weight of the last step's cost in the objective the policy
            minimises, sum_t w_t c_t with w_t = 1 before it (the fitted cost is scaled,
            and the rollouts' costs weighted alike for the step-size rule). Above 1 it
            favours where the episode ends over how fast it gets there.
        min_step_mult: lower clip of step_mult.
        max_step_mult: upper clip of step_mult.
        initial_var_floor: floor of the initial-state variances.
        improvement_from_samples: measure the actual improvement of the last step by the
            rollouts' mean total cost (old policy's rollouts minus the new one's) instead
            of by the expected costs under the old and the new local fit (the GPS rule).
            The SOLAR loop refits the model between updates, so the two fits live in
            different latent spaces and their expected costs are not comparable; a bad
            fit can then report progress while the rollouts get worse and grow the step.
            The rollouts' costs are noisy but measured in the task's own units.

    """

    kl_step: float = 2.0
    init_std: float = 0.5
    data_strength: float = 1.0
    em_max_iter: int = 100
    em_tol: float = 1e-3
    cost_ridge: float = 1e-6
    psd_cost: bool = True
    cost_segments: int = 1
    final_cost_weight: float = 1.0
    min_step_mult: float = 0.1
    max_step_mult: float = 10.0
    initial_var_floor: float = 1e-6
    improvement_from_samples: bool = True


@dataclass
class LocalFit:
    """The local model fitted by :meth:`LQRFLM.fit`.

    Attributes:
        dynamics: local mean dynamics F = E[F_t], Q = E[Sigma_t] and the estimated mu0, P0.
        cost: the fitted quadratic cost.
        local: local dynamics fit (posterior MNIW, trajectories, EM iterations).

    """

    dynamics: LDSParams
    cost: QuadraticCost
    local: LocalDynamicsFit


@dataclass
class UpdateResult:
    """Outcome of one :meth:`LQRFLM.update`.

    Attributes:
        policy: the new policy.
        eta: dual variable of the KL constraint.
        kl: predicted trajectory KL(new || old) in nats.
        epsilon: the KL step that was targeted.
        predicted_cost: expected cost of the new policy under the new local model.
        previous_cost: expected cost of the old policy under the new local model.
        step_mult: the step multiplier used.
        dual_iterations: backward passes done by the dual search.
        converged: whether the dual search hit epsilon within tolerance.
        fit: the local model.
        last_predicted_gain: the cost decrease the previous update predicted for its step
            (its previous_cost - predicted_cost), NaN at the first update.
        last_realised_gain: the decrease of the rollouts' mean (step-weighted) summed cost
            from the previous update's rollouts to these, NaN at the first update.

    """

    policy: LinearGaussianPolicy
    eta: float
    kl: float
    epsilon: float
    predicted_cost: float
    previous_cost: float
    step_mult: float
    dual_iterations: int
    converged: bool
    fit: LocalFit
    last_predicted_gain: float = float('nan')
    last_realised_gain: float = float('nan')


@dataclass
class _Prediction:
    """Costs recorded at an update for the next step-size adaptation."""

    previous_cost: float
    predicted_cost: float
    sample_cost: float


@dataclass
class LQRFLM:
    """LQR-FLM learner holding the current policy and the KL step-size state.

    Attributes:
        state_dim: dx.
        action_dim: du.
        horizon: T.
        config: settings.
        action_cost: known (du, du) action Hessian R of the cost, or None to fit it.
        known_cost: the whole cost over x = [s; a], (T, dx + du) blocks, when it is known
            (an oracle on the true state); None fits it to the rollouts' costs.
        policy: the current policy (initially the random policy of ``config.init_std``).
        step_mult: current KL step multiplier.

    """

    state_dim: int
    action_dim: int
    horizon: int
    config: LQRFLMConfig = field(default_factory=LQRFLMConfig)
    action_cost: Optional[Tensor] = None
    known_cost: Optional[QuadraticCost] = None
    policy: Optional[LinearGaussianPolicy] = None
    step_mult: float = 1.0
    _last: Optional[_Prediction] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        """Check the cost segments and create the initial policy when none is given."""
        if not 1 <= self.config.cost_segments <= self.horizon:
            raise ValueError(f'cost_segments must be in [1, T = {self.horizon}],'
                             f' got {self.config.cost_segments}')
        if not 0 < self.config.final_cost_weight < float('inf'):  # NaN fails too
            raise ValueError(f'final_cost_weight must be finite and > 0,'
                             f' got {self.config.final_cost_weight}')
        n = self.state_dim + self.action_dim
        if self.known_cost is not None and tuple(self.known_cost.C.shape) != (
                self.horizon, n, n):
            raise ValueError(f'known_cost: expected C of shape ({self.horizon}, {n}, {n}),'
                             f' got {tuple(self.known_cost.C.shape)}')
        if self.policy is None:
            self.policy = LinearGaussianPolicy.initial(self.horizon, self.state_dim,
                                                       self.action_dim, self.config.init_std)

    def fit(self, trajectories: Union[SmoothedTrajectories, Smoother], actions: Tensor,
            costs: Tensor, prior: MNIW) -> LocalFit:
        """Fit local dynamics, cost and initial state to the latest rollouts.

        Args:
            trajectories: smoothed trajectories or a smoother (see the module docstring).
            actions: (N, T, du) actions taken.
            costs: (N, T) costs, c_{n,t} = c(s_{n,t}, a_{n,t}).
            prior: global dynamics model, leading dim T-1.

        Returns:
            :class:`LocalFit`.

        """
        local = fit_local_dynamics(prior, trajectories, self.config.data_strength,
                                   self.config.em_max_iter, self.config.em_tol)
        means, covs = local.trajectories.means, local.trajectories.covs
        if tuple(means.shape[1:]) != (self.horizon, self.state_dim):
            raise ValueError(f'trajectories.means: expected shape (N, {self.horizon},'
                             f' {self.state_dim}), got {tuple(means.shape)}')
        F, Q = local.posterior.mean_dynamics()
        mu0, P0 = initial_state_estimate(means[:, 0], covs[:, 0], self.config.initial_var_floor)
        cost = self.known_cost if self.known_cost is not None else fit_segmented_cost(
            means, actions, costs, self.config.cost_segments, self.action_cost,
            self.config.cost_ridge, self.config.psd_cost)
        cost = cost.weighted(self.step_weights())
        return LocalFit(LDSParams(F=F, Q=Q, mu0=mu0, P0=P0), cost, local)

    def update(self, trajectories: Union[SmoothedTrajectories, Smoother], actions: Tensor,
               costs: Tensor, prior: MNIW) -> UpdateResult:
        """Fit the local model to rollouts of the current policy and take one KL step.

        The step multiplier is first adapted from the last update's predicted improvement
        and the actual one (see ``LQRFLMConfig.improvement_from_samples``), then the dual
        search targets
        epsilon = kl_step * T * step_mult. The new policy becomes :attr:`policy`.

        Args:
            trajectories: smoothed trajectories of rollouts of :attr:`policy`, or a smoother.
            actions: (N, T, du) actions taken.
            costs: (N, T) costs.
            prior: global dynamics model, leading dim T-1.

        Returns:
            :class:`UpdateResult` with the new policy and diagnostics.

        """
        fit = self.fit(trajectories, actions, costs, prior)
        previous_cost = policy_cost(fit.dynamics, fit.cost, self.policy)
        sample_cost = float((torch.as_tensor(costs, dtype=torch.float64)
                             * self.step_weights()).sum(-1).mean())
        last = self._last
        gains = (float('nan'), float('nan'))
        if last is not None:
            predicted = last.previous_cost - last.predicted_cost
            gains = (predicted, last.sample_cost - sample_cost)
            if self.config.improvement_from_samples:
                before, after = last.sample_cost, sample_cost
            else:
                before, after = last.previous_cost, previous_cost
            self.step_mult = adjust_step_mult(
                self.step_mult, before, before - predicted, after,
                self.config.min_step_mult, self.config.max_step_mult)
        epsilon = self.config.kl_step * self.horizon * self.step_mult
        step = solve_kl_step(fit.dynamics, fit.cost, self.policy, epsilon)
        self._last = _Prediction(previous_cost, step.expected_cost, sample_cost)
        self.policy = step.policy
        return UpdateResult(policy=step.policy, eta=step.eta, kl=step.kl, epsilon=epsilon,
                            predicted_cost=step.expected_cost, previous_cost=previous_cost,
                            step_mult=self.step_mult, dual_iterations=step.iterations,
                            converged=step.converged, fit=fit, last_predicted_gain=gains[0],
                            last_realised_gain=gains[1])

    def step_weights(self) -> Tensor:
        """Return the objective's step weights w_t (T,): ones, the last final_cost_weight."""
        weights = torch.ones(self.horizon, dtype=torch.float64)
        weights[-1] = self.config.final_cost_weight
        return weights

    def change_coordinates(self, old_states: Tensor, new_states: Tensor) -> float:
        """Carry :attr:`policy` over to new state coordinates, e.g. after a model refit.

        The policy's gains act on the old coordinates; a refitted encoder gives the same
        rollouts other latent states. The affine map old ~ A new + b is fitted on paired
        samples and the policy is re-expressed with it
        (:meth:`LinearGaussianPolicy.in_coordinates`), so the next KL step is taken
        from the policy that was actually run rather than from gains read in the wrong
        coordinates.

        Args:
            old_states: (..., dx) states in the policy's current coordinates.
            new_states: (..., dx) the same states in the new coordinates.

        Returns:
            The fraction of the old states' variance the map explains (1: exact).

        """
        A, b, r2 = fit_affine_map(new_states, old_states)
        self.policy = self.policy.in_coordinates(A, b)
        return r2

    def state_dict(self) -> Dict[str, Any]:
        """Return everything needed to resume: policy tensors, step_mult, last prediction."""
        return {'K': self.policy.K.clone(), 'k': self.policy.k.clone(),
                'cov': self.policy.cov.clone(), 'step_mult': self.step_mult,
                'last': None if self._last is None else asdict(self._last)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`."""
        self.policy = LinearGaussianPolicy.from_cov(state['K'], state['k'], state['cov'])
        self.step_mult = float(state['step_mult'])
        self._last = None if state['last'] is None else _Prediction(**state['last'])
