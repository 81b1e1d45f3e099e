"""The evaluation command runs a run's policy on fresh seeds and writes its table."""

import csv

from solar_ros.learn.config import RunConfig
from solar_ros.learn.evaluate import main
from solar_ros.learn.learner import SolarLearner

SETTINGS = {
    'env': {'name': 'point_mass', 'horizon': 4, 'image_size': 16},
    'model': {'latent_dim': 2, 'channels': 4, 'hidden': 8, 'image_size': 16},
    'loop': {'pretrain_episodes': 2, 'rollouts_per_iteration': 2},
}


def test_evaluation_of_the_random_policy_is_reproducible(tmp_path, capsys):
    SolarLearner(RunConfig.from_dict(SETTINGS), 4, 2, tmp_path, log=lambda line: None)
    assert main([str(tmp_path), '--episodes', '3', '--tasks', '1', '2']) == 0
    with open(tmp_path / 'evaluation_policy_0000.csv') as table:
        first = list(csv.DictReader(table))
    assert [row['task'] for row in first] == ['1', '2']
    assert all(row['episodes'] == '3' and row['noise'] == 'False' for row in first)
    assert 0.0 <= float(first[0]['success_rate']) <= 1.0
    assert main([str(tmp_path), '--episodes', '3', '--tasks', '1', '2']) == 0
    with open(tmp_path / 'evaluation_policy_0000.csv') as table:
        assert list(csv.DictReader(table)) == first
    assert 'policy 0 of' in capsys.readouterr().out


def test_a_directory_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert 'cannot load' in capsys.readouterr().err
