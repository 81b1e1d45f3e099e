"""SOLAR learns the image-observed point mass: a CI-sized version of the full loop.

Pretraining on random episodes, then LQR-FLM iterations with the model refitted between
them (``config/point_mass_ci.yaml``); the learned policy, run without exploration noise on
fresh seeds, must bring the mass at least four times closer to the goal than the random policy
does on the same seeds.
"""

import csv
from pathlib import Path

from solar_ros.learn import evaluate, run
from solar_ros.learn.learner import METRICS
from solar_ros.learn.metrics import MetricsLog

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'point_mass_ci.yaml'
EPISODES = 20


def test_the_loop_learns_to_reach_the_goal(tmp_path, capsys):
    run_dir = tmp_path / 'run'
    assert run.main(['--config', str(CONFIG), '--run-dir', str(run_dir), '--threads', '1']) == 0
    rows = MetricsLog(run_dir / 'metrics.csv', METRICS).rows()
    assert [int(r['policy']) for r in rows] == list(range(1, len(rows) + 1))

    # The random policy is all noise; the learned one is run by its mean action.
    assert evaluate.main([str(run_dir), '--policy', '0', '--noise',
                          '--episodes', str(EPISODES)]) == 0
    assert evaluate.main([str(run_dir), '--episodes', str(EPISODES)]) == 0
    print(capsys.readouterr().out)

    def table(version: int) -> dict:
        with open(run_dir / f'evaluation_policy_{version:04d}.csv', newline='') as file:
            return {k: float(v) for k, v in next(csv.DictReader(file)).items()
                    if k != 'noise'}
    before, after = table(0), table(len(rows))
    assert after['final_distance'] <= 0.25 * before['final_distance'], (before, after)
    assert after['mean_cost'] < before['mean_cost'], (before, after)
