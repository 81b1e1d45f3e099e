"""The evaluation command runs a run's policy on fresh seeds and writes its table."""

import csv

from PIL import Image
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


def test_gifs_and_table_go_to_the_out_folder(tmp_path):
    run_dir, out = tmp_path / 'run', tmp_path / 'watch'
    SolarLearner(RunConfig.from_dict(SETTINGS), 4, 2, run_dir, log=lambda line: None)
    assert main([str(run_dir), '--episodes', '2', '--out', str(out), '--gifs']) == 0
    assert (out / 'evaluation_policy_0000.csv').exists()
    assert not (run_dir / 'evaluation_policy_0000.csv').exists()
    gifs = sorted(out.glob('*.gif'))
    assert [g.name for g in gifs] == ['policy_0000_task1_seed900000000.gif',
                                      'policy_0000_task1_seed900000001.gif']
    with Image.open(gifs[0]) as gif:
        assert gif.size == (16 * 4, 16 * 4)  # point mass: camera only, upscaled 4 times
        assert gif.n_frames > 1
