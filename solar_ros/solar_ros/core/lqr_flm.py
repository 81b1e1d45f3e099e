"""Improve a time-varying linear-Gaussian policy by LQR-FLM (SOLAR paper).

One update, from the latest rollouts of the current policy:

1. local dynamics: per transition t, the MNIW posterior over (F_t, Sigma_t) with the global
   model q(F_t, Sigma_t) as empirical-Bayes prior, eta_local = eta_global + lambda * stats_t
   (lambda = ``data_strength``); for latent states this alternates with re-smoothing the
   trajectories under the new local model (EM, :func:`local_dynamics.fit_local_dynamics`);
2. cost: a quadratic fitted by least squares to (s, a, c) samples
   (:func:`regression.fit_quadratic_cost`), or one per segment of the horizon
   (:func:`regression.fit_segmented_cost`), or, where the cost's residuals r are known
   (c = ||r||^2 + action term), the square of a linear read-out of r from s
   (:func:`regression.fit_residual_cost`); then weighted per step
   by the objective's weights (:meth:`LQRFLM.step_weights`, the last one
   ``final_cost_weight``);
3. initial state: mean and diagonal variance of the smoothed s_0
   (:func:`local_dynamics.initial_state_estimate`);
4. policy: the KL-constrained maximum-entropy LQR step of :func:`lqr.solve_kl_step`, with the
   step epsilon = kl_step * T * step_mult and step_mult adapted from predicted versus actual
   improvement (:func:`lqr.adjust_step_mult`).

Trajectories are smoothed (or observed) state sequences or a smoother, as described in
:mod:`solar_ros.core.local_dynamics`. All math is torch float64.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple, Union

from solar_ros.core.cost import QuadraticCost
from solar_ros.core.lds import LDSParams
from solar_ros.core.local_dynamics import (fit_local_dynamics, initial_state_estimate,
                                           LocalDynamicsFit, SmoothedTrajectories, Smoother)
from solar_ros.core.lqr import adjust_step_mult, policy_cost, solve_kl_step
from solar_ros.core.mniw import MNIW
from solar_ros.core.policy import LinearGaussianPolicy
from solar_ros.core.regression import fit_affine_map, fit_residual_cost, fit_segmented_cost
import torch
from torch import Tensor

CostSamples = Tuple[Tensor, Tensor, Tensor]
"""States (M, T, dx), actions (M, T, du) and costs (M, T) of more episodes for the cost fit."""


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
        cost_fit_floor: weight each cost sample by 1 / (c + cost_fit_floor) in the
            regression, so the fit is accurate near the goal where the costs are small
            (:func:`~solar_ros.core.regression.fit_quadratic_cost`); 0 weighs all alike.
        cost_segments: fit one quadratic cost per this many contiguous parts of the horizon
            (:func:`fit_segmented_cost`, or one residual read-out each: :func:`fit_residual_cost`);
            1 shares one cost over all steps (the authors').
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
    cost_fit_floor: float = 0.0
    cost_segments: int = 1
    final_cost_weight: float = 1.0
    min_step_mult: float = 0.1
    max_step_mult: float = 10.0
    initial_var_floor: float = 1e-6
    improvement_from_samples: bool = True

    def __post_init__(self) -> None:
        """Check the values; raise ValueError naming the first bad one."""
        for name in ('kl_step', 'init_std', 'em_tol', 'min_step_mult', 'initial_var_floor'):
            if not 0 < getattr(self, name) < float('inf'):  # NaN fails too
                raise ValueError(f'lqr.{name} must be finite and > 0, got {getattr(self, name)}')
        for name in ('data_strength', 'cost_ridge', 'cost_fit_floor'):
            if not 0 <= getattr(self, name) < float('inf'):
                raise ValueError(f'lqr.{name} must be finite and >= 0, got {getattr(self, name)}')
        for name in ('em_max_iter', 'cost_segments'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'lqr.{name} must be an integer >= 1, got {value!r}')
        for name in ('psd_cost', 'improvement_from_samples'):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f'lqr.{name} must be true or false, got {getattr(self, name)!r}')
        if not 0 < self.final_cost_weight < float('inf'):
            raise ValueError(f'lqr.final_cost_weight must be finite and > 0,'
                             f' got {self.final_cost_weight}')
        if not self.min_step_mult <= self.max_step_mult < float('inf'):
            raise ValueError(f'lqr.max_step_mult ({self.max_step_mult}) must be finite and'
                             f' >= min_step_mult ({self.min_step_mult})')


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
            (an oracle on the true state, or the model's cost head, which the learner sets
            before each update with ``loop.lqr_cost: model``); None fits it to the
            rollouts' costs.
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
        """Check the cost segments against T and create the initial policy if none is given."""
        if not 1 <= self.config.cost_segments <= self.horizon:
            raise ValueError(f'cost_segments must be in [1, T = {self.horizon}],'
                             f' got {self.config.cost_segments}')
        n = self.state_dim + self.action_dim
        if self.known_cost is not None and tuple(self.known_cost.C.shape) != (
                self.horizon, n, n):
            raise ValueError(f'known_cost: expected C of shape ({self.horizon}, {n}, {n}),'
                             f' got {tuple(self.known_cost.C.shape)}')
        if self.policy is None:
            self.policy = LinearGaussianPolicy.initial(self.horizon, self.state_dim,
                                                       self.action_dim, self.config.init_std)

    def fit(self, trajectories: Union[SmoothedTrajectories, Smoother], actions: Tensor,
            costs: Tensor, prior: MNIW, cost_samples: Optional[CostSamples] = None,
            residuals: Optional[Tensor] = None) -> LocalFit:
        """Fit local dynamics, cost and initial state to the latest rollouts.

        Args:
            trajectories: smoothed trajectories or a smoother (see the module docstring).
            actions: (N, T, du) actions taken.
            costs: (N, T) costs, c_{n,t} = c(s_{n,t}, a_{n,t}).
            prior: global dynamics model, leading dim T-1.
            cost_samples: more (states (M, T, dx), actions (M, T, du), costs (M, T)) that
                the cost is fitted on together with the rollouts' smoothed states (earlier
                rollouts: the cost does not depend on the policy, and a quadratic in dx
                dimensions has (dx + 1)(dx + 2) / 2 coefficients per segment); None: the
                rollouts alone.
            residuals: (N, T, d) the cost's residuals at the rollouts' steps, where the
                cost is ||r||^2 plus the action term: the cost is then the square of their
                read-out from the smoothed states (:func:`fit_residual_cost`) instead of a
                quadratic fitted to ``costs``; None fits ``costs``.

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
        if cost_samples is not None and residuals is not None:
            raise ValueError('cost_samples and residuals: the cost is fitted to one or the other')
        if self.known_cost is not None:
            cost = self.known_cost
        elif residuals is not None:
            if self.action_cost is None:
                raise ValueError('residuals: the residual cost needs the known action_cost R')
            cost = fit_residual_cost(means, residuals, self.action_cost,
                                     self.config.cost_segments)
        else:
            samples = (means, torch.as_tensor(actions, dtype=torch.float64),
                       torch.as_tensor(costs, dtype=torch.float64))
            if cost_samples is not None:
                samples = tuple(torch.cat([mine, torch.as_tensor(more, dtype=torch.float64)])
                                for mine, more in zip(samples, cost_samples))
            cost = fit_segmented_cost(*samples, self.config.cost_segments, self.action_cost,
                                      self.config.cost_ridge, self.config.psd_cost,
                                      self.config.cost_fit_floor)
        cost = cost.weighted(self.step_weights())
        return LocalFit(LDSParams(F=F, Q=Q, mu0=mu0, P0=P0), cost, local)

    def update(self, trajectories: Union[SmoothedTrajectories, Smoother], actions: Tensor,
               costs: Tensor, prior: MNIW, cost_samples: Optional[CostSamples] = None,
               residuals: Optional[Tensor] = None) -> UpdateResult:
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
            cost_samples: more samples for the cost fit, as for :meth:`fit`.
            residuals: the cost's residuals, as for :meth:`fit`.

        Returns:
            :class:`UpdateResult` with the new policy and diagnostics.

        """
        fit = self.fit(trajectories, actions, costs, prior, cost_samples, residuals)
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
