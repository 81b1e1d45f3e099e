"""Tests for LQR-FLM: local dynamics, initial state and the policy-improvement loop."""

import numpy as np
import pytest
from solar_ros.core.cost import QuadraticCost
from solar_ros.core.lds import LDSParams
from solar_ros.core.local_dynamics import (fit_local_dynamics, initial_state_estimate,
                                           observed_trajectories, transition_stats)
from solar_ros.core.lqr import forward_marginals, lqr_backward, policy_cost
from solar_ros.core.lqr_flm import LQRFLM, LQRFLMConfig
from solar_ros.core.mniw import MNIW
from solar_ros.core.policy import LinearGaussianPolicy
import torch

DT = torch.float64


def rollouts(dynamics, policy, num, gen, cost=None):
    """Sample ``num`` rollouts: states (N, T, dx), actions (N, T, du), costs (N, T) or None."""
    dx = dynamics.mu0.shape[0]
    s = dynamics.mu0 + torch.randn(num, dx, dtype=DT, generator=gen) @ torch.linalg.cholesky(
        dynamics.P0).T
    states, actions = [], []
    for t in range(policy.horizon):
        a = policy.act(t, s, generator=gen)
        states.append(s)
        actions.append(a)
        if t < policy.horizon - 1:
            noise = torch.randn(num, dx, dtype=DT, generator=gen)
            s = torch.cat([s, a], 1) @ dynamics.F[t].T + noise @ torch.linalg.cholesky(
                dynamics.Q[t]).T
    states, actions = torch.stack(states, 1), torch.stack(actions, 1)
    costs = None if cost is None else cost.evaluate(torch.cat([states, actions], 2))
    return states, actions, costs


def time_varying_system(seed, dx=3, du=2, horizon=6, noise=0.05):
    """Return random time-varying dynamics with process-noise std ``noise``."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.eye(dx, dtype=DT) + 0.2 * torch.randn(horizon - 1, dx, dx, dtype=DT, generator=gen)
    B = torch.randn(horizon - 1, dx, du, dtype=DT, generator=gen)
    return LDSParams(F=torch.cat([A, B], 2),
                     Q=noise ** 2 * torch.eye(dx, dtype=DT).expand(horizon - 1, dx, dx).clone(),
                     mu0=torch.zeros(dx, dtype=DT), P0=torch.eye(dx, dtype=DT))


def test_transition_stats_are_sums_over_rollouts():
    gen = torch.Generator().manual_seed(0)
    states = torch.randn(5, 4, 3, dtype=DT, generator=gen)
    actions = torch.randn(5, 4, 2, dtype=DT, generator=gen)
    stats = transition_stats(states, actions)
    t = 2
    x = torch.cat([states[:, t], actions[:, t]], 1)
    torch.testing.assert_close(stats.xx[t], x.T @ x)
    torch.testing.assert_close(stats.yx[t], states[:, t + 1].T @ x)
    torch.testing.assert_close(stats.yy[t], states[:, t + 1].T @ states[:, t + 1])
    assert stats.count.tolist() == [5.0, 5.0, 5.0]


def test_many_samples_recover_time_varying_dynamics():
    system = time_varying_system(1, noise=0.2)
    gen = torch.Generator().manual_seed(1)
    policy = LinearGaussianPolicy.initial(6, 3, 2, std=1.0)
    states, actions, _ = rollouts(system, policy, 4000, gen)
    prior = MNIW.prior(3, 2, 6)
    fit = fit_local_dynamics(prior, observed_trajectories(states, actions), data_strength=1.0)
    F, Q = fit.posterior.mean_dynamics()
    # Standard errors: about 0.2 / sqrt(4000) = 0.003 for F; the prior adds about
    # (S0 + (F - M0)(F - M0)^T) / 4000 = 0.003 to E[Sigma] = 0.04 I.
    torch.testing.assert_close(F, system.F, atol=0.02, rtol=0)
    torch.testing.assert_close(Q, system.Q, atol=0.008, rtol=0)
    assert fit.iterations == 1 and fit.converged


def test_few_samples_stay_near_prior():
    system = time_varying_system(2)
    gen = torch.Generator().manual_seed(2)
    policy = LinearGaussianPolicy.initial(6, 3, 2, std=1.0)
    states, actions, _ = rollouts(system, policy, 2, gen)
    prior = MNIW.prior(3, 2, 6)
    weak = fit_local_dynamics(prior, observed_trajectories(states, actions), data_strength=0.02)
    gap_prior = (weak.posterior.M - prior.M).norm()
    assert gap_prior < 0.1 * (system.F - prior.M).norm()
    # The data pull the mean towards the truth in proportion to their strength.
    distances = []
    for strength in [0.0, 0.02, 1.0, 100.0]:
        fit = fit_local_dynamics(prior, observed_trajectories(states, actions), strength)
        distances.append(float((fit.posterior.M - system.F).norm()))
    assert all(b < a for a, b in zip(distances, distances[1:]))
    none = fit_local_dynamics(prior, observed_trajectories(states, actions), 0.0)
    torch.testing.assert_close(none.posterior.M, prior.M)


def test_initial_state_estimate_uses_total_variance():
    means0 = torch.tensor([[0.0, 1.0], [2.0, 1.0]], dtype=DT)
    covs0 = torch.stack([torch.diag(torch.tensor([0.5, 0.0], dtype=DT))] * 2)
    mu0, P0 = initial_state_estimate(means0, covs0)
    torch.testing.assert_close(mu0, torch.tensor([1.0, 1.0], dtype=DT))
    torch.testing.assert_close(P0, torch.diag(torch.tensor([1.5, 1e-6], dtype=DT)))


def point_mass(horizon=20, dt=0.2, noise=1e-3):
    """Return the 2-D point mass (position, velocity; force input) and its goal-reaching cost."""
    A = torch.eye(4, dtype=DT)
    A[0, 2] = A[1, 3] = dt
    B = torch.zeros(4, 2, dtype=DT)
    B[2, 0] = B[3, 1] = dt
    system = LDSParams(F=torch.cat([A, B], 1).expand(horizon - 1, 4, 6).clone(),
                       Q=noise * torch.eye(4, dtype=DT).expand(horizon - 1, 4, 4).clone(),
                       mu0=torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=DT),
                       P0=0.01 * torch.eye(4, dtype=DT))
    R = 0.1 * torch.eye(2, dtype=DT)
    C = torch.block_diag(torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=DT)), R)
    return system, QuadraticCost.tiled(C, torch.zeros(6, dtype=DT), 0.0, horizon), R


@pytest.mark.parametrize('seed', [0, 1])
def test_lqr_flm_reaches_optimal_cost_on_known_linear_system(seed):
    """States observed directly; the global prior is a model fitted to random rollouts."""
    system, cost, R = point_mass()
    optimal, _ = lqr_backward(system, cost, eta=1e-12)
    best = policy_cost(system, cost, optimal)
    gen = torch.Generator().manual_seed(seed)
    random = LinearGaussianPolicy.initial(20, 4, 2, std=0.5)
    states, actions, _ = rollouts(system, random, 50, gen)
    prior = MNIW.prior(4, 2, 20).posterior(transition_stats(states, actions))
    learner = LQRFLM(4, 2, 20, action_cost=R)
    initial = policy_cost(system, cost, learner.policy)
    for _ in range(10):
        states, actions, costs = rollouts(system, learner.policy, 20, gen, cost)
        result = learner.update(observed_trajectories(states, actions), actions, costs, prior)
        assert result.converged
        assert abs(result.kl - result.epsilon) <= 0.1 * result.epsilon
    final = policy_cost(system, cost, learner.policy)
    assert initial > 4 * best
    assert final <= 1.05 * best


def test_state_dict_round_trip_resumes_step_adaptation():
    system, cost, R = point_mass(horizon=8)
    gen = torch.Generator().manual_seed(5)
    prior = MNIW.prior(4, 2, 8)
    learner = LQRFLM(4, 2, 8, action_cost=R)
    for _ in range(2):
        states, actions, costs = rollouts(system, learner.policy, 20, gen, cost)
        learner.update(observed_trajectories(states, actions), actions, costs, prior)
    resumed = LQRFLM(4, 2, 8, action_cost=R)
    resumed.load_state_dict(learner.state_dict())
    states, actions, costs = rollouts(system, learner.policy, 20, gen, cost)
    a = learner.update(observed_trajectories(states, actions), actions, costs, prior)
    b = resumed.update(observed_trajectories(states, actions), actions, costs, prior)
    assert a.step_mult == b.step_mult and a.step_mult != 1.0
    torch.testing.assert_close(a.policy.K, b.policy.K)


@pytest.mark.parametrize('scale', [3.0, 0.3])
def test_step_follows_the_rollouts_costs(scale):
    """Rollouts of the new policy costing more shrink the KL step; costing less grow it.

    The second batch is the first one with its costs scaled: with the sample rule the
    measured improvement is the change of the rollouts' mean total cost.
    """
    system, cost, R = point_mass(horizon=8)
    gen = torch.Generator().manual_seed(6)
    prior = MNIW.prior(4, 2, 8)
    learner = LQRFLM(4, 2, 8, LQRFLMConfig(improvement_from_samples=True), action_cost=R)
    states, actions, costs = rollouts(system, learner.policy, 20, gen, cost)
    first = learner.update(observed_trajectories(states, actions), actions, costs, prior)
    assert np.isnan(first.last_predicted_gain) and np.isnan(first.last_realised_gain)
    result = learner.update(observed_trajectories(states, actions), actions, scale * costs,
                            prior)
    assert (result.step_mult < 0.5) if scale > 1 else (result.step_mult > 1.0)
    # the realised gain is the drop of the mean step-weighted summed cost between batches
    total = float((costs * learner.step_weights()).sum(-1).mean())
    assert result.last_realised_gain == pytest.approx((1.0 - scale) * total)
    assert result.last_predicted_gain == pytest.approx(
        first.previous_cost - first.predicted_cost)
    assert result.last_predicted_gain > 0


def test_change_coordinates_keeps_the_mean_actions_of_the_same_states():
    """A refitted model's states s' with s = A s' + b: the policy acts as before."""
    gen = torch.Generator().manual_seed(4)
    T, dx, du = 5, 3, 2
    lqr = LQRFLM(state_dim=dx, action_dim=du, horizon=T, config=LQRFLMConfig(init_std=0.3))
    lqr.policy = LinearGaussianPolicy.from_cov(
        torch.randn(T, du, dx, dtype=DT, generator=gen),
        torch.randn(T, du, dtype=DT, generator=gen), lqr.policy.cov)
    old_policy = lqr.policy
    A = torch.eye(dx, dtype=DT) + 0.5 * torch.randn(dx, dx, dtype=DT, generator=gen)
    b = torch.randn(dx, dtype=DT, generator=gen)
    new_states = torch.randn(8, T, dx, dtype=DT, generator=gen)
    old_states = new_states @ A.T + b
    assert lqr.change_coordinates(old_states, new_states) == pytest.approx(1.0)
    zero = torch.zeros(8, du, dtype=DT)
    for t in range(T):
        assert torch.allclose(lqr.policy.act(t, new_states[:, t], zero),
                              old_policy.act(t, old_states[:, t], zero), atol=1e-6)
    assert torch.equal(lqr.policy.cov, old_policy.cov)
    with pytest.raises(ValueError, match='shapes'):
        old_policy.in_coordinates(A[:2], b)


def test_noise_scale_scales_the_action_noise_and_keeps_the_mean():
    gen = torch.Generator().manual_seed(5)
    T, dx, du = 4, 3, 2
    policy = LinearGaussianPolicy.from_cov(
        torch.randn(T, du, dx, dtype=DT, generator=gen),
        torch.randn(T, du, dtype=DT, generator=gen),
        0.09 * torch.eye(du, dtype=DT).expand(T, du, du))
    quieter = policy.with_noise_scale(0.5)
    s, eps = torch.randn(dx, dtype=DT, generator=gen), torch.randn(du, dtype=DT, generator=gen)
    for t in range(T):
        mean = policy.act(t, s, torch.zeros(du, dtype=DT))
        torch.testing.assert_close(quieter.act(t, s, torch.zeros(du, dtype=DT)), mean)
        torch.testing.assert_close(quieter.act(t, s, eps) - mean,
                                   0.5 * (policy.act(t, s, eps) - mean))
    torch.testing.assert_close(quieter.cov, 0.25 * policy.cov)
    for bad in (0.0, -1.0, float('nan')):
        with pytest.raises(ValueError, match='scale'):
            policy.with_noise_scale(bad)


def test_final_cost_weight_brings_the_last_state_nearer_the_goal():
    """Weighting the last step trades a slower approach for ending closer to the goal."""
    system, cost, R = point_mass(horizon=10)
    prior = MNIW.prior(4, 2, 10).posterior(transition_stats(
        *rollouts(system, LinearGaussianPolicy.initial(10, 4, 2, std=0.5), 50,
                  torch.Generator().manual_seed(0))[:2]))
    final_distance, summed_cost = {}, {}
    for weight in (1.0, 30.0):
        gen = torch.Generator().manual_seed(1)
        learner = LQRFLM(4, 2, 10, LQRFLMConfig(final_cost_weight=weight), action_cost=R)
        for _ in range(8):
            states, actions, costs = rollouts(system, learner.policy, 20, gen, cost)
            learner.update(observed_trajectories(states, actions), actions, costs, prior)
        means, _ = forward_marginals(system, learner.policy)
        final_distance[weight] = float(means[-1, :2].norm())
        summed_cost[weight] = policy_cost(system, cost, learner.policy)
    assert final_distance[30.0] < 0.5 * final_distance[1.0]
    assert summed_cost[30.0] > summed_cost[1.0]
    torch.testing.assert_close(LQRFLM(4, 2, 10, LQRFLMConfig(final_cost_weight=3.0))
                               .step_weights(), torch.tensor([1.0] * 9 + [3.0], dtype=DT))
    for bad in (0.0, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='final_cost_weight'):
            LQRFLM(4, 2, 10, LQRFLMConfig(final_cost_weight=bad))


def test_known_cost_is_used_instead_of_the_fit():
    """With the true cost given, costs that say nothing (zeros) still lead to the optimum."""
    system, cost, R = point_mass()
    optimal, _ = lqr_backward(system, cost, eta=1e-12)
    best = policy_cost(system, cost, optimal)
    gen = torch.Generator().manual_seed(2)
    states, actions, _ = rollouts(system, LinearGaussianPolicy.initial(20, 4, 2, std=0.5),
                                  50, gen)
    prior = MNIW.prior(4, 2, 20).posterior(transition_stats(states, actions))
    learner = LQRFLM(4, 2, 20, action_cost=R, known_cost=cost)
    for _ in range(10):
        states, actions, costs = rollouts(system, learner.policy, 20, gen, cost)
        learner.update(observed_trajectories(states, actions), actions,
                       torch.zeros_like(costs), prior)
    assert policy_cost(system, cost, learner.policy) <= 1.05 * best
    with pytest.raises(ValueError, match='known_cost'):
        LQRFLM(3, 2, 20, known_cost=cost)


def test_cost_segments_must_be_positive():
    with pytest.raises(ValueError, match='cost_segments'):
        LQRFLM(2, 1, 6, LQRFLMConfig(cost_segments=0))


def test_cost_samples_of_earlier_rollouts_complete_the_cost_fit():
    """Two rollouts cannot pin a quadratic per 5-step segment; 30 earlier ones can."""
    system, cost, R = point_mass()
    gen = torch.Generator().manual_seed(3)
    random = LinearGaussianPolicy.initial(20, 4, 2, std=0.5)
    prior = MNIW.prior(4, 2, 20).posterior(transition_stats(*rollouts(system, random, 50,
                                                                      gen)[:2]))
    learner = LQRFLM(4, 2, 20, LQRFLMConfig(cost_segments=4), action_cost=R)
    states, actions, costs = rollouts(system, random, 2, gen, cost)
    earlier = rollouts(system, random, 30, gen, cost)
    fits = {name: learner.fit(observed_trajectories(states, actions), actions, costs, prior,
                              samples).cost
            for name, samples in (('alone', None), ('with earlier', earlier))}
    torch.testing.assert_close(fits['with earlier'].C, cost.C, atol=1e-4, rtol=0)
    torch.testing.assert_close(fits['with earlier'].c, cost.c, atol=1e-4, rtol=0)
    assert (fits['alone'].C - cost.C).abs().max() > 0.05
    result = learner.update(observed_trajectories(states, actions), actions, costs, prior,
                            earlier)
    torch.testing.assert_close(result.fit.cost.C, fits['with earlier'].C)


def test_residuals_give_the_cost_that_their_scalar_costs_hide():
    """The point mass's cost is ||p / sqrt(2)||^2: two rollouts' residuals recover it exactly.

    The costs passed are zeros, so the fit can only have come from the residuals; LQR-FLM
    then reaches the optimum as with the true cost.
    """
    system, cost, R = point_mass()
    optimal, _ = lqr_backward(system, cost, eta=1e-12)
    best = policy_cost(system, cost, optimal)
    gen = torch.Generator().manual_seed(4)
    random = LinearGaussianPolicy.initial(20, 4, 2, std=0.5)
    prior = MNIW.prior(4, 2, 20).posterior(transition_stats(*rollouts(system, random, 50,
                                                                      gen)[:2]))
    learner = LQRFLM(4, 2, 20, action_cost=R)

    def residuals(states):
        return states[..., :2] / 2.0 ** 0.5

    states, actions, _ = rollouts(system, random, 2, gen)
    fit = learner.fit(observed_trajectories(states, actions), actions,
                      torch.zeros(2, 20, dtype=DT), prior, residuals=residuals(states))
    torch.testing.assert_close(fit.cost.C, cost.C, atol=1e-6, rtol=0)
    torch.testing.assert_close(fit.cost.c, cost.c, atol=1e-6, rtol=0)
    for _ in range(10):
        states, actions, _ = rollouts(system, learner.policy, 20, gen)
        learner.update(observed_trajectories(states, actions), actions,
                       torch.zeros(20, 20, dtype=DT), prior, residuals=residuals(states))
    assert policy_cost(system, cost, learner.policy) <= 1.05 * best
    with pytest.raises(ValueError, match='one or the other'):
        learner.fit(observed_trajectories(states, actions), actions, torch.zeros(20, 20), prior,
                    (states, actions, torch.zeros(20, 20)), residuals(states))
    with pytest.raises(ValueError, match='action_cost'):
        LQRFLM(4, 2, 20).fit(observed_trajectories(states, actions), actions,
                             torch.zeros(20, 20), prior, residuals=residuals(states))
