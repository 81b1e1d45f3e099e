"""The CEM planner finds the LQR optimum of a deterministic linear-quadratic problem."""

import pytest
from solar_ros.core.cem import CEMConfig, plan, sequence_costs
from solar_ros.core.cost import QuadraticCost
from solar_ros.core.lds import LDSParams
from solar_ros.core.lqr import lqr_backward
import torch

H, DX, DU = 6, 2, 1


def _problem():
    """Double integrator, position and velocity cost, small action cost."""
    dt = 0.5
    F = torch.tensor([[1.0, dt, 0.0], [0.0, 1.0, dt]], dtype=torch.float64).expand(
        H - 1, DX, DX + DU).clone()
    C = torch.diag(torch.tensor([1.0, 0.2, 0.1], dtype=torch.float64)).expand(
        H, DX + DU, DX + DU).clone()
    c = torch.zeros(H, DX + DU, dtype=torch.float64)
    c[:, 0] = -0.3  # the goal is off the origin: a linear term
    return F, C, c


def _lqr_actions(F, C, c, s0):
    """Return the optimal open-loop actions (H, du) of the deterministic problem."""
    eye = torch.eye(DX, dtype=torch.float64)
    dynamics = LDSParams(F=F, Q=1e-6 * eye.expand(H - 1, DX, DX).clone(),
                         mu0=s0, P0=1e-6 * eye)
    policy, _ = lqr_backward(dynamics, QuadraticCost(C, c))
    s, actions = s0, []
    for t in range(H):
        a = policy.K[t] @ s + policy.k[t]
        actions.append(a)
        if t + 1 < H:
            s = F[t] @ torch.cat([s, a])
    return torch.stack(actions)


def test_sequence_costs_add_up_the_steps():
    F, C, c = _problem()
    s0 = torch.tensor([1.0, -0.5], dtype=torch.float64)
    actions = torch.randn(3, H, DU, generator=torch.Generator().manual_seed(0),
                          dtype=torch.float64)
    expected = []
    for sequence in actions:
        s, total = s0, 0.0
        for t in range(H):
            x = torch.cat([s, sequence[t]])
            total += 0.5 * x @ C[t] @ x + c[t] @ x
            if t + 1 < H:
                s = F[t] @ x
        expected.append(total)
    torch.testing.assert_close(sequence_costs(s0, F, C, c, actions), torch.stack(expected))


def test_plan_matches_the_lqr_optimum():
    F, C, c = _problem()
    s0 = torch.tensor([1.0, -0.5], dtype=torch.float64)
    optimum = _lqr_actions(F, C, c, s0)
    bound = torch.full((DU,), 10.0, dtype=torch.float64)
    config = CEMConfig(horizon=H, samples=1000, elites=50, iterations=20, init_std=1.0)
    planned = plan(s0, F, C, c, -bound, bound, config, torch.Generator().manual_seed(1))
    assert planned.shape == (H, DU)
    torch.testing.assert_close(planned[0], optimum[0], atol=0.03, rtol=0.0)
    best = sequence_costs(s0, F, C, c, optimum[None])[0]
    assert sequence_costs(s0, F, C, c, planned[None])[0] <= best + 1e-3


def test_plan_respects_the_bounds_and_bad_settings_are_errors():
    F, C, c = _problem()
    s0 = torch.tensor([5.0, 0.0], dtype=torch.float64)
    bound = torch.full((DU,), 0.2, dtype=torch.float64)
    planned = plan(s0, F, C, c, -bound, bound, CEMConfig(horizon=H),
                   torch.Generator().manual_seed(2))
    assert torch.all(planned.abs() <= 0.2 + 1e-12)
    assert planned[0, 0] < -0.15  # pushes back towards the goal as hard as allowed
    with pytest.raises(ValueError, match='elites'):
        CEMConfig(samples=10, elites=20)
    with pytest.raises(ValueError, match='transitions'):
        plan(s0, F[:-1], C, c, -bound, bound, CEMConfig(), torch.Generator())
