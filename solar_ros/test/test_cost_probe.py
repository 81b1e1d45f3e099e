"""The cost probe: known answers on a quadratic cost, and a real point-mass run with checks."""

import numpy as np
import pytest
from solar_ros.core.cost import QuadraticCost
from solar_ros.learn import cost_probe
from solar_ros.learn.cost_probe import NEAR_GOAL_STEPS, score_cost
import torch


def _cost(horizon: int) -> QuadraticCost:
    """Return |s|^2 + 1/2 a^T a over s (2,), a (1,), for every step."""
    C = torch.diag(torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64))
    return QuadraticCost.tiled(C, torch.zeros(3, dtype=torch.float64), 0.0, horizon)


def test_the_true_cost_scores_one_and_a_cost_blind_near_the_goal_scores_about_zero():
    rng = np.random.default_rng(0)
    horizon = 20
    states = torch.as_tensor(rng.normal(size=(30, horizon, 2)))
    actions = torch.as_tensor(rng.normal(size=(30, horizon, 1)))
    true = _cost(horizon).evaluate(torch.cat([states, actions], -1)).numpy()
    exact = score_cost(_cost(horizon), states, actions, true)
    assert exact.all_steps == pytest.approx(1.0) and exact.last_step == pytest.approx(1.0)
    assert exact.near_goal == pytest.approx(1.0) and exact.episodes == 30
    assert exact.last_step_std == pytest.approx(true[:, -1].std())
    # the true cost of the last steps is noise the fitted cost cannot see
    blind = true.copy()
    blind[:, -NEAR_GOAL_STEPS:] = rng.normal(size=(30, NEAR_GOAL_STEPS))
    scores = score_cost(_cost(horizon), states, actions, blind)
    assert abs(scores.last_step) < 0.4 and abs(scores.near_goal) < 0.2
    assert scores.all_steps > 0.3  # the first half of the steps still ranks
    with pytest.raises(ValueError, match='true_costs'):
        score_cost(_cost(horizon), states, actions, true[:, :-1])


def test_the_probe_scores_every_checked_policy_after_the_first(checked_run, capsys):
    scored = dict(cost_probe.probe_policies(checked_run))
    assert sorted(scored) == [2, 3]
    for scores in scored.values():
        assert scores.episodes == 3
        assert -1.0 <= scores.all_steps <= 1.0 and scores.last_step_std >= 0.0
    assert cost_probe.main([str(checked_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[2:]] == [['2', '3'], ['3', '3']]
    assert float(lines[2].split()[2]) == pytest.approx(scored[2].all_steps, abs=0.005)


def test_the_probe_refuses_what_it_cannot_score(checked_run, tmp_path, capsys):
    assert cost_probe.main([str(checked_run), '--policy', '1']) == 2
    assert 'first policy with a fitted cost is 2' in capsys.readouterr().err
    assert cost_probe.main([str(checked_run), '--policy', '9']) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert cost_probe.main([str(tmp_path)]) == 2
    assert 'not a run directory' in capsys.readouterr().err
