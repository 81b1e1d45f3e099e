"""SOLAR learns from images in CI-sized versions of the full loop.

Pretraining on random episodes, then LQR-FLM iterations with the model refitted between
them. On the image-observed point mass (``config/point_mass_ci.yaml``) the learned policy,
run without exploration noise on fresh seeds, must bring the mass at least four times
closer to the goal than the random policy does on the same seeds (ten times closer with the
cost read out from its residuals, ``loop.lqr_cost: residuals``). On task 1 of the
simulated arm (``config/sawyer_task1_ci.yaml``, 48x48 images, three updates) the cost
must fall: the rollouts' and, without noise on fresh seeds, the policy's.
"""

import csv
import math
from pathlib import Path

import pytest
from solar_ros.learn import evaluate, run
from solar_ros.learn.learner import METRICS
from solar_ros.learn.metrics import MetricsLog

pytestmark = pytest.mark.slow  # seconds to minutes: deselect with -m "not slow"

CONFIGS = Path(__file__).resolve().parents[1] / 'config'


def learn_and_evaluate(config: Path, run_dir: Path, episodes: int, *settings: str) -> tuple:
    """Run ``config``; return its metrics rows and the evaluations before and after.

    ``settings`` (``section.key=value``) replace the config's. Before: the random policy 0
    with its noise; after: the last policy's mean action.
    """
    overrides = [arg for setting in settings for arg in ('--set', setting)]
    assert run.main(['--config', str(config), '--run-dir', str(run_dir), '--threads', '1',
                     *overrides]) == 0
    rows = MetricsLog(run_dir / 'metrics.csv', METRICS).rows()
    assert [int(r['policy']) for r in rows] == list(range(1, len(rows) + 1))
    assert evaluate.main([str(run_dir), '--policy', '0', '--noise',
                          '--episodes', str(episodes)]) == 0
    assert evaluate.main([str(run_dir), '--episodes', str(episodes)]) == 0

    def table(version: int) -> dict:
        with open(run_dir / f'evaluation_policy_{version:04d}.csv', newline='') as file:
            return {k: float(v) for k, v in next(csv.DictReader(file)).items()
                    if k != 'noise'}
    return rows, table(0), table(len(rows))


def test_the_loop_learns_to_reach_the_goal(tmp_path, capsys):
    rows, before, after = learn_and_evaluate(CONFIGS / 'point_mass_ci.yaml', tmp_path / 'run',
                                             20)
    print(capsys.readouterr().out)
    assert all(math.isnan(float(r['probe_r2_x'])) for r in rows)  # no block to probe
    # but the mass's true offset is recorded, and each model from the second is scored on it
    near = [[float(r[f'near_goal_rmse_{axis}']) for axis in 'xyz'] for r in rows]
    assert all(math.isnan(v) for v in near[0]), near  # policy 0's rollouts: not a learned one
    assert all(0.0 < x < 1.0 and 0.0 < y < 1.0 and math.isnan(z) for x, y, z in near[1:]), near
    assert after['final_distance'] <= 0.25 * before['final_distance'], (before, after)
    assert after['mean_cost'] < before['mean_cost'], (before, after)


def test_the_loop_learns_from_the_cost_residuals(tmp_path, capsys):
    """loop.lqr_cost residuals: the read-out of the mass's offset brings it near the goal."""
    rows, before, after = learn_and_evaluate(CONFIGS / 'point_mass_ci.yaml', tmp_path / 'run',
                                             20, 'loop.lqr_cost=residuals',
                                             'loop.iterations=3')
    print(capsys.readouterr().out)
    assert len(rows) == 3
    assert after['final_distance'] <= 0.1 * before['final_distance'], (before, after)
    assert after['mean_cost'] < 0.2 * before['mean_cost'], (before, after)


def test_the_arm_cost_falls_on_task_1(tmp_path, capsys):
    rows, before, after = learn_and_evaluate(CONFIGS / 'sawyer_task1_ci.yaml',
                                             tmp_path / 'run', 10)
    print(capsys.readouterr().out)
    rollout_costs = [float(r['mean_cost']) for r in rows]  # row k: policy k-1's rollouts
    assert rollout_costs[-1] < 0.8 * rollout_costs[0], rollout_costs
    assert after['mean_cost'] < 0.75 * before['mean_cost'], (before, after)
    assert after['final_distance'] < before['final_distance'], (before, after)
    # every update scored its model with the probe of the block's position
    for axis in 'xyz':
        scores = [float(r[f'probe_r2_{axis}']) for r in rows]
        assert all(math.isfinite(v) and v <= 1.0 for v in scores), (axis, scores)
        near = [float(r[f'near_goal_rmse_{axis}']) for r in rows]
        # in metres, and within the arm's reach: scored on the rollouts' true offsets
        assert math.isnan(near[0]) and all(0.0 < v < 0.5 for v in near[1:]), (axis, near)
    assert (tmp_path / 'run' / 'probe.npz').exists()
