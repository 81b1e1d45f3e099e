"""Tests for the linear-Gaussian policy, the quadratic cost and the KL-constrained LQR."""

from types import SimpleNamespace

import numpy as np
import pytest
from solar_ros.core.cost import QuadraticCost
from solar_ros.core.lqr import (adjust_step_mult, forward_marginals, kl_penalty_cost,
                                lqr_backward, LQRError, policy_cost, policy_kl, solve_kl_step,
                                traj_kl)
from solar_ros.core.policy import LinearGaussianPolicy, smoothed_noise
import torch

DT = torch.float64


def random_problem(seed, dx=4, du=2, horizon=12):
    """Return (dynamics, cost, A, B, Qs, R) of a random LDS with a block-diagonal PD cost."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.eye(dx, dtype=DT) + 0.3 * torch.randn(horizon - 1, dx, dx, dtype=DT, generator=gen)
    B = torch.randn(horizon - 1, dx, du, dtype=DT, generator=gen)
    Ms = torch.randn(dx, dx, dtype=DT, generator=gen)
    Mr = torch.randn(du, du, dtype=DT, generator=gen)
    Qs = Ms @ Ms.T + 0.1 * torch.eye(dx, dtype=DT)
    R = Mr @ Mr.T + 0.1 * torch.eye(du, dtype=DT)
    C = torch.block_diag(Qs, R)
    noise = 0.1 * torch.randn(horizon - 1, dx, dx, dtype=DT, generator=gen)
    dynamics = SimpleNamespace(F=torch.cat([A, B], dim=2),
                               Q=noise @ noise.transpose(1, 2) + 0.01 * torch.eye(dx, dtype=DT),
                               mu0=torch.randn(dx, dtype=DT, generator=gen),
                               P0=0.1 * torch.eye(dx, dtype=DT))
    cost = QuadraticCost.tiled(C, torch.zeros(dx + du, dtype=DT), 0.0, horizon)
    return dynamics, cost, A, B, Qs, R


def textbook_riccati(A, B, Qs, R):
    """Return the finite-horizon discrete Riccati gains K (T, du, dx), last gain zero."""
    horizon = A.shape[0] + 1
    P = Qs.clone()
    gains = [torch.zeros(B.shape[2], A.shape[1], dtype=DT)]
    for t in range(horizon - 2, -1, -1):
        K = -torch.linalg.solve(R + B[t].T @ P @ B[t], B[t].T @ P @ A[t])
        P = Qs + A[t].T @ P @ A[t] + A[t].T @ P @ B[t] @ K
        gains.append(K)
    return torch.stack(gains[::-1])


def random_policy(seed, horizon, dx, du, scale=0.5):
    """Return a random linear-Gaussian policy."""
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(horizon, du, du, dtype=DT, generator=gen)
    return LinearGaussianPolicy.from_cov(
        scale * torch.randn(horizon, du, dx, dtype=DT, generator=gen),
        scale * torch.randn(horizon, du, dtype=DT, generator=gen),
        0.2 * M @ M.transpose(1, 2) + 0.1 * torch.eye(du, dtype=DT))


def gaussian_kl(m1, S1, m2, S2):
    """Return KL(N(m1, S1) || N(m2, S2)) computed densely."""
    S2inv = torch.linalg.inv(S2)
    d = m2 - m1
    return 0.5 * (torch.trace(S2inv @ S1) + d @ S2inv @ d - m1.shape[0]
                  + torch.logdet(S2) - torch.logdet(S1))


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_plain_lqr_equals_textbook_riccati(seed):
    dynamics, cost, A, B, Qs, R = random_problem(seed)
    policy, eta = lqr_backward(dynamics, cost, eta=2.0)
    assert eta == 2.0
    torch.testing.assert_close(policy.K, textbook_riccati(A, B, Qs, R), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(policy.k, torch.zeros_like(policy.k))
    # Max-entropy covariance: eta * Q_aa^-1; at the last step Q_aa = R.
    torch.testing.assert_close(policy.cov[-1], 2.0 * torch.linalg.inv(R))
    torch.testing.assert_close(policy.chol @ policy.chol.transpose(1, 2), policy.cov)
    assert torch.all(torch.triu(policy.chol, diagonal=1) == 0)


def test_vanishing_kl_penalty_recovers_riccati():
    dynamics, cost, A, B, Qs, R = random_problem(3)
    old = random_policy(3, 12, 4, 2)
    policy, _ = lqr_backward(dynamics, cost, eta=1e-9, old_policy=old)
    torch.testing.assert_close(policy.K, textbook_riccati(A, B, Qs, R), rtol=1e-5, atol=1e-6)


def test_linear_terms_match_open_loop_quadratic_program():
    """The mean policy's rollout from mu0 minimises the deterministic cost over all actions."""
    dynamics, cost, A, B, _, _ = random_problem(4, horizon=6)
    gen = torch.Generator().manual_seed(4)
    cost = QuadraticCost(cost.C, torch.randn(6, 6, dtype=DT, generator=gen))
    policy, _ = lqr_backward(dynamics, cost)
    mean, _ = forward_marginals(dynamics, policy)
    actions = torch.zeros(6, 2, dtype=DT, requires_grad=True)

    def total(u):
        s, out = dynamics.mu0, 0.0
        for t in range(6):
            x = torch.cat([s, u[t]])
            out = out + 0.5 * x @ cost.C[t] @ x + cost.c[t] @ x
            if t < 5:
                s = dynamics.F[t] @ x
        return out

    hess = torch.autograd.functional.hessian(total, actions.detach()).reshape(12, 12)
    grad = torch.autograd.grad(total(actions), actions)[0].reshape(12)
    optimum = -torch.linalg.solve(hess, grad).reshape(6, 2)
    torch.testing.assert_close(mean[:, 4:], optimum, rtol=1e-8, atol=1e-8)


def test_forward_marginals_and_cost_match_monte_carlo():
    dynamics, cost, _, _, _, _ = random_problem(5, horizon=8)
    policy = random_policy(5, 8, 4, 2)
    mean, cov = forward_marginals(dynamics, policy)
    gen = torch.Generator().manual_seed(55)
    n = 40000
    s = dynamics.mu0 + torch.randn(n, 4, dtype=DT, generator=gen) @ torch.linalg.cholesky(
        dynamics.P0).T
    xs = []
    for t in range(8):
        a = policy.act(t, s, generator=gen)
        xs.append(torch.cat([s, a], dim=1))
        if t < 7:
            w = torch.randn(n, 4, dtype=DT, generator=gen) @ torch.linalg.cholesky(
                dynamics.Q[t]).T
            s = xs[-1] @ dynamics.F[t].T + w
    x = torch.stack(xs, dim=1)
    scale = cov.diagonal(dim1=1, dim2=2).sqrt()
    assert torch.all((x.mean(0) - mean).abs() < 5 * scale / n ** 0.5)
    sample_cov = torch.einsum('nti,ntj->tij', x - mean, x - mean) / n
    assert torch.all((sample_cov - cov).abs() < 0.03 * scale[:, :, None] * scale[:, None, :])
    sampled = cost.evaluate(x).sum(1)
    assert abs(sampled.mean() - policy_cost(dynamics, cost, policy)) < 4 * sampled.std() / n ** 0.5


def test_policy_kl_equals_dense_joint_gaussian_kl():
    dx, du, horizon = 3, 2, 4
    new = random_policy(6, horizon, dx, du)
    old = random_policy(7, horizon, dx, du)
    gen = torch.Generator().manual_seed(8)
    mean = torch.randn(horizon, dx, dtype=DT, generator=gen)
    M = torch.randn(horizon, dx, dx, dtype=DT, generator=gen)
    cov = M @ M.transpose(1, 2) + 0.1 * torch.eye(dx, dtype=DT)
    per_step = policy_kl(new, old, mean, cov)
    for t in range(horizon):
        joint = []
        for pol in (new, old):
            K = pol.K[t]
            m = torch.cat([mean[t], K @ mean[t] + pol.k[t]])
            S = torch.cat([torch.cat([cov[t], cov[t] @ K.T], 1),
                           torch.cat([K @ cov[t], K @ cov[t] @ K.T + pol.cov[t]], 1)], 0)
            joint.append((m, S))
        torch.testing.assert_close(per_step[t], gaussian_kl(*joint[0], *joint[1]))
    assert abs(float(policy_kl(new, new, mean, cov).abs().max())) < 1e-12


def test_kl_penalty_cost_is_negative_log_density_up_to_constant():
    old = random_policy(9, 3, 3, 2)
    penalty = kl_penalty_cost(old)
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(5, 3, 5, dtype=DT, generator=gen)
    nll = torch.stack([-torch.distributions.MultivariateNormal(
        x[:, t, :3] @ old.K[t].T + old.k[t], scale_tril=old.chol[t]).log_prob(x[:, t, 3:])
        for t in range(3)], dim=1)
    diff = penalty.evaluate(x) - nll
    torch.testing.assert_close(diff, diff[:1].expand_as(diff))


@pytest.mark.parametrize('epsilon', [0.5, 5.0, 50.0])
def test_kl_step_hits_target_within_ten_percent(epsilon):
    dynamics, cost, _, _, _, _ = random_problem(10, horizon=15)
    old = LinearGaussianPolicy.initial(15, 4, 2, std=0.5)
    result = solve_kl_step(dynamics, cost, old, epsilon)
    assert result.converged
    assert abs(result.kl - epsilon) <= 0.1 * epsilon
    mean, cov = forward_marginals(dynamics, result.policy)
    assert traj_kl(result.policy, old, mean, cov) == pytest.approx(result.kl)
    assert result.expected_cost < policy_cost(dynamics, cost, old)


def test_increasing_eta_moves_policy_toward_old():
    dynamics, cost, _, _, _, _ = random_problem(11)
    old = random_policy(11, 12, 4, 2)
    kls, gaps = [], []
    for eta in [1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e2, 1e4, 1e6, 1e8, 1e10]:
        policy, _ = lqr_backward(dynamics, cost, eta, old)
        kls.append(traj_kl(policy, old, *forward_marginals(dynamics, policy)))
        gaps.append(float((policy.K - old.K).abs().max()))
    assert all(b < a for a, b in zip(kls, kls[1:]))
    assert all(b < a for a, b in zip(gaps, gaps[1:]))
    assert kls[-1] < 1e-9 and gaps[-1] < 1e-4


def test_cholesky_fallback_raises_eta():
    dynamics, cost, _, _, _, _ = random_problem(12, horizon=5)
    C = cost.C.clone()
    C[:, 4:, 4:] = -torch.eye(2, dtype=DT)
    concave = QuadraticCost(C, cost.c)
    old = LinearGaussianPolicy.initial(5, 4, 2, std=1.0)
    policy, eta = lqr_backward(dynamics, concave, eta=0.5, old_policy=old)
    assert eta > 0.5
    assert torch.all(torch.linalg.eigvalsh(policy.cov) > 0)
    with pytest.raises(LQRError):
        lqr_backward(dynamics, concave, eta=0.5)


def test_adjust_step_mult():
    # Improvement exactly as predicted: predicted - actual -> 0, so mult hits its cap 5.
    assert adjust_step_mult(1.0, 10.0, 6.0, 6.0) == pytest.approx(5.0)
    # Actual improvement half the predicted one: mult = 4 / (2 * 2) = 1.
    assert adjust_step_mult(2.0, 10.0, 6.0, 8.0) == pytest.approx(2.0)
    # Got worse: mult = 4 / (2 * 6) = 1/3.
    assert adjust_step_mult(0.6, 10.0, 6.0, 12.0) == pytest.approx(0.2)
    # Much worse: mult clipped to 0.1, result floored at min_mult.
    assert adjust_step_mult(0.5, 10.0, 6.0, 50.0) == pytest.approx(0.1)
    assert adjust_step_mult(9.0, 10.0, 6.0, 6.0) == pytest.approx(10.0)


def test_policy_act_and_initial():
    policy = LinearGaussianPolicy.initial(5, 3, 2, std=0.5)
    torch.testing.assert_close(policy.cov, 0.25 * torch.eye(2, dtype=DT).expand(5, 2, 2))
    full = random_policy(13, 5, 3, 2)
    s = np.array([1.0, -2.0, 0.5])
    noise = np.array([0.3, -1.0])
    a = full.act(2, s, noise=noise)
    assert isinstance(a, np.ndarray)
    expected = full.K[2].numpy() @ s + full.k[2].numpy() + full.chol[2].numpy() @ noise
    np.testing.assert_allclose(a, expected)
    with pytest.raises(ValueError, match='noise'):
        full.act(0, s, noise=np.zeros(3))
    with pytest.raises(ValueError, match='cov'):
        LinearGaussianPolicy.from_cov(full.K, full.k, -full.cov)


def test_smoothed_noise_is_unit_variance_and_correlated():
    gen = torch.Generator().manual_seed(14)
    draws = torch.stack([smoothed_noise(20, 2, gen, sigma=2.0) for _ in range(4000)])
    var = draws.var(dim=0)
    assert torch.all((var - 1.0).abs() < 0.1)
    lag1 = (draws[:, 1:] * draws[:, :-1]).mean(dim=(0, 2))
    assert torch.all(lag1 > 0.8)


def test_kl_step_with_inactive_constraint_stops_at_eta_min():
    dynamics, cost, _, _, _, _ = random_problem(15, horizon=6)
    old = LinearGaussianPolicy.initial(6, 4, 2, std=0.5)
    policy, _ = lqr_backward(dynamics, cost, 1e-8, old)
    mean, cov = forward_marginals(dynamics, policy)
    unconstrained = traj_kl(policy, old, mean, cov)
    result = solve_kl_step(dynamics, cost, old, 10.0 * unconstrained)
    assert result.converged and result.eta == pytest.approx(1e-8)
    assert result.kl < 10.0 * unconstrained
