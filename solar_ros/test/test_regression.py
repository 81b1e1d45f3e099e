"""Tests for the least-squares fits: quadratic costs (shared and per segment), affine maps."""

import pytest
from solar_ros.core.cost import QuadraticCost
from solar_ros.core.regression import (fit_affine_map, fit_quadratic_cost, fit_residual_cost,
                                       fit_segmented_cost)
import torch

DT = torch.float64


def test_cost_fit_recovers_state_cost_with_known_action_cost():
    gen = torch.Generator().manual_seed(3)
    states = torch.randn(30, 5, 3, dtype=DT, generator=gen)
    actions = torch.randn(30, 5, 2, dtype=DT, generator=gen)
    M = torch.randn(3, 3, dtype=DT, generator=gen)
    R = torch.tensor([[0.5, 0.1], [0.1, 0.3]], dtype=DT)
    C = torch.block_diag(M @ M.T, R)
    c = torch.cat([torch.randn(3, dtype=DT, generator=gen), torch.zeros(2, dtype=DT)])
    true = QuadraticCost.tiled(C, c, 1.5, 5)
    costs = true.evaluate(torch.cat([states, actions], 2))
    fitted = fit_quadratic_cost(states, actions, costs, action_cost=R)
    torch.testing.assert_close(fitted.C, true.C, atol=1e-6, rtol=0)
    torch.testing.assert_close(fitted.c, true.c, atol=1e-6, rtol=0)
    torch.testing.assert_close(fitted.const, true.const, atol=1e-6, rtol=0)


def test_cost_fit_without_action_cost_and_psd_projection():
    gen = torch.Generator().manual_seed(4)
    states = torch.randn(40, 5, 2, dtype=DT, generator=gen)
    actions = torch.randn(40, 5, 1, dtype=DT, generator=gen)
    C = torch.tensor([[1.0, 0.2, 0.3], [0.2, -0.5, 0.0], [0.3, 0.0, 0.8]], dtype=DT)
    true = QuadraticCost.tiled(C, torch.tensor([0.1, -0.2, 0.3], dtype=DT), 0.0, 5)
    costs = true.evaluate(torch.cat([states, actions], 2))
    free = fit_quadratic_cost(states, actions, costs, psd=False)
    torch.testing.assert_close(free.C, true.C, atol=1e-6, rtol=0)
    projected = fit_quadratic_cost(states, actions, costs, psd=True)
    # The projection acts in standardised coordinates u = (x - mean) / std.
    x = torch.cat([states, actions], 2).reshape(-1, 3)
    d = x.std(dim=0)
    evals, evecs = torch.linalg.eigh(d[:, None] * C * d[None, :])
    expected = (evecs * evals.clamp(min=0)) @ evecs.T / d[:, None] / d[None, :]
    torch.testing.assert_close(projected.C[0], expected, atol=1e-6, rtol=0)
    assert float(torch.linalg.eigvalsh(projected.C[0]).min()) > -1e-9
    # With the curvature projected, the refitted linear and constant terms fit the costs
    # at least as well as the true ones would.
    xs = torch.cat([states, actions], 2)
    kept_true_linear = QuadraticCost.tiled(projected.C[0], true.c[0], 0.0, 5)
    residual = (projected.evaluate(xs) - costs).pow(2).mean()
    assert residual <= (kept_true_linear.evaluate(xs) - costs).pow(2).mean()


def test_cost_fit_is_well_conditioned_far_from_the_origin():
    """States with a large offset and little spread (like joint angles) fit as well."""
    gen = torch.Generator().manual_seed(8)
    states = 3.0 + 0.02 * torch.randn(20, 6, 4, dtype=DT, generator=gen)
    actions = torch.zeros(20, 6, 1, dtype=DT)
    goal = torch.full((4,), 3.0, dtype=DT)
    costs = 100.0 * (states - goal).pow(2).sum(-1)
    fit = fit_quadratic_cost(states, actions, costs, action_cost=torch.eye(1, dtype=DT))
    rmse = (fit.evaluate(torch.cat([states, actions], 2)) - costs).pow(2).mean().sqrt()
    assert rmse < 0.01 * costs.std()
    with pytest.raises(ValueError, match='costs'):
        fit_quadratic_cost(states, actions, costs[:, :4])


def test_affine_map_fit_recovers_an_exact_map_and_reports_its_fit():
    gen = torch.Generator().manual_seed(3)
    A = torch.randn(4, 3, dtype=DT, generator=gen)
    b = torch.randn(4, dtype=DT, generator=gen)
    source = torch.randn(10, 6, 3, dtype=DT, generator=gen)
    A_fit, b_fit, r2 = fit_affine_map(source, source @ A.T + b)
    assert torch.allclose(A_fit, A, atol=1e-6) and torch.allclose(b_fit, b, atol=1e-6)
    assert r2 == pytest.approx(1.0)
    noisy = source @ A.T + b + torch.randn(10, 6, 4, dtype=DT, generator=gen)
    assert fit_affine_map(source, noisy)[2] < 0.99
    with pytest.raises(ValueError, match='samples'):
        fit_affine_map(source[:1, :3], source[:1, :3])
    with pytest.raises(ValueError, match='leading shape'):
        fit_affine_map(source, source[:5])


def test_segmented_cost_fit_recovers_a_cost_that_changes_over_the_horizon():
    gen = torch.Generator().manual_seed(3)
    n, horizon, dx, du = 40, 6, 2, 1
    states = torch.randn(n, horizon, dx, generator=gen, dtype=torch.float64)
    actions = torch.randn(n, horizon, du, generator=gen, dtype=torch.float64)
    goals = torch.tensor([[1.0, 0.0]] * 3 + [[-1.0, 2.0]] * 3, dtype=torch.float64)
    costs = ((states - goals) ** 2).sum(-1) + 0.5 * 0.1 * actions[..., 0] ** 2
    R = 0.1 * torch.eye(du, dtype=torch.float64)
    x = torch.cat([states, actions], dim=2)
    split = fit_segmented_cost(states, actions, costs, 2, R)
    assert torch.allclose(split.evaluate(x), costs, atol=1e-6)
    shared = fit_segmented_cost(states, actions, costs, 1, R)
    assert (shared.evaluate(x) - costs).abs().max() > 1.0
    with pytest.raises(ValueError, match='segments'):
        fit_segmented_cost(states, actions, costs, horizon + 1, R)
    with pytest.raises(ValueError, match='states: expected shape'):
        fit_segmented_cost(states[0], actions, costs, 2, R)


def test_weighted_cost_fit_agrees_on_a_quadratic_and_finds_the_minimum_of_a_quartic():
    """Weighting by 1 / (c + floor) moves the fitted minimum of a quartic near its own.

    For a cost that really is quadratic the weighted fit equals the plain one.
    """
    gen = torch.Generator().manual_seed(11)
    states = torch.rand(40, 6, 1, dtype=DT, generator=gen) * 2.5 - 0.5  # most far right
    actions = torch.zeros(40, 6, 1, dtype=DT)
    R = torch.eye(1, dtype=DT)
    quadratic = 3.0 * (states[..., 0] - 0.2).pow(2)
    plain = fit_quadratic_cost(states, actions, quadratic, action_cost=R)
    weighted = fit_quadratic_cost(states, actions, quadratic, action_cost=R, floor=0.01)
    torch.testing.assert_close(weighted.C, plain.C, atol=1e-6, rtol=0)
    torch.testing.assert_close(weighted.c, plain.c, atol=1e-6, rtol=0)
    quartic = states[..., 0].pow(2) + states[..., 0].pow(4)  # minimum at 0

    def minimum(cost: QuadraticCost) -> float:
        return float(-cost.c[0, 0] / cost.C[0, 0, 0])

    far = minimum(fit_quadratic_cost(states, actions, quartic, action_cost=R))
    near = minimum(fit_quadratic_cost(states, actions, quartic, action_cost=R, floor=0.01))
    assert abs(far) > 0.15
    assert abs(near) < 0.2 * abs(far)
    for floor in (-0.1, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='floor'):
            fit_quadratic_cost(states, actions, quartic, action_cost=R, floor=floor)


def test_residual_cost_squares_an_exact_read_out():
    """An exact read-out r = W s + b of 12-D states: ||r||^2 + 1/2 a^T R a, of rank 3."""
    gen = torch.Generator().manual_seed(5)
    states = 3.0 + torch.randn(4, 10, 12, dtype=torch.float64, generator=gen)
    actions = torch.randn(4, 10, 2, dtype=torch.float64, generator=gen)
    W = torch.randn(3, 12, dtype=torch.float64, generator=gen)
    b = torch.randn(3, dtype=torch.float64, generator=gen)
    residuals = states @ W.T + b
    R = 0.2 * torch.eye(2, dtype=torch.float64)
    cost = fit_residual_cost(states, residuals, R)
    expected = (residuals ** 2).sum(-1) + 0.5 * ((actions @ R) * actions).sum(-1)
    torch.testing.assert_close(cost.evaluate(torch.cat([states, actions], -1)), expected)
    eigenvalues = torch.linalg.eigvalsh(cost.C[0, :12, :12])
    assert eigenvalues.min() > -1e-9 and int((eigenvalues > 1e-6).sum()) == 3
    torch.testing.assert_close(cost.C[3, 12:, 12:], R)
    with pytest.raises(ValueError, match='expected'):
        fit_residual_cost(states, residuals[:, :5], R)
    with pytest.raises(ValueError, match='action_cost'):
        fit_residual_cost(states, residuals, torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match='segments'):
        fit_residual_cost(states, residuals, R, segments=11)


def test_residual_cost_segments_follow_an_aim_that_moves():
    """The residual's offset changes at step 5 (a via-point): one read-out per half fits it."""
    gen = torch.Generator().manual_seed(6)
    states = torch.randn(5, 10, 4, dtype=torch.float64, generator=gen)
    W = torch.randn(2, 4, dtype=torch.float64, generator=gen)
    aim = torch.tensor([[0.0, 1.0]] * 5 + [[0.0, 0.0]] * 5, dtype=torch.float64)
    residuals = states @ W.T - aim
    R = torch.eye(1, dtype=torch.float64)
    x = torch.cat([states, torch.zeros(5, 10, 1, dtype=torch.float64)], -1)
    halves = fit_residual_cost(states, residuals, R, segments=2).evaluate(x)
    torch.testing.assert_close(halves, (residuals ** 2).sum(-1))
    shared = fit_residual_cost(states, residuals, R).evaluate(x)
    assert (shared - (residuals ** 2).sum(-1)).abs().max() > 0.1
