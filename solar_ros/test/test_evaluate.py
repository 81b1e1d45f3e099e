"""The evaluation command runs a run's policy on fresh seeds and writes its table."""

import csv

from learning_runs import finished_run
from PIL import Image
import pytest
from solar_ros.learn import evaluate, validate
from solar_ros.learn.config import RunConfig
from solar_ros.learn.learner import SolarLearner
from solar_ros.sim.environments import make_env

SETTINGS = {
    'env': {'name': 'point_mass', 'horizon': 4, 'image_size': 16},
    'model': {'latent_dim': 2, 'channels': 4, 'hidden': 8, 'image_size': 16},
    'loop': {'pretrain_episodes': 2, 'rollouts_per_iteration': 2},
}


def test_evaluation_of_the_random_policy_is_reproducible(tmp_path, capsys):
    SolarLearner(RunConfig.from_dict(SETTINGS), 4, 2, tmp_path, log=lambda line: None)
    assert evaluate.main([str(tmp_path), '--episodes', '3', '--tasks', '1', '2']) == 0
    with open(tmp_path / 'evaluation_policy_0000.csv') as table:
        first = list(csv.DictReader(table))
    assert [row['task'] for row in first] == ['1', '2']
    assert all(row['episodes'] == '3' and row['noise'] == 'False' for row in first)
    agent, env = evaluate.load_policy(tmp_path), make_env(SETTINGS['env'])
    for row in first:  # the table summarises the episodes of its seeds
        _, runs = evaluate.evaluate(env, agent, int(row['task']), 3, noise=False)
        successes = sum(e.success for e in runs)
        assert float(row['success_rate']) == pytest.approx(successes / 3)
        assert (float(row['success_low']), float(row['success_high'])) == pytest.approx(
            evaluate.wilson_interval(successes, 3))
        assert float(row['final_distance']) == pytest.approx(
            sum(e.final_distance for e in runs) / 3)
    with open(tmp_path / 'evaluation_policy_0000_episodes.csv') as table:
        endings = list(csv.DictReader(table))
    assert [(e['task'], e['seed']) for e in endings] == [
        (task, str(evaluate.EVAL_SEED_BASE + i)) for task in ('1', '2') for i in range(3)]
    assert [float(e['final_distance']) for e in endings[3:]] == pytest.approx(
        [e.final_distance for e in runs])  # runs: task 2's, from the loop above
    assert evaluate.main([str(tmp_path), '--episodes', '3', '--tasks', '1', '2']) == 0
    with open(tmp_path / 'evaluation_policy_0000.csv') as table:
        assert list(csv.DictReader(table)) == first
    out = capsys.readouterr().out
    assert 'policy 0 of' in out and 'final_distance:' in out


def test_a_directory_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert evaluate.main([str(tmp_path)]) == 2
    assert 'cannot load' in capsys.readouterr().err


def test_gifs_and_table_go_to_the_out_folder(tmp_path):
    run_dir, out = tmp_path / 'run', tmp_path / 'watch'
    SolarLearner(RunConfig.from_dict(SETTINGS), 4, 2, run_dir, log=lambda line: None)
    assert evaluate.main([str(run_dir), '--episodes', '2', '--out', str(out), '--gifs']) == 0
    assert (out / 'evaluation_policy_0000.csv').exists()
    assert not (run_dir / 'evaluation_policy_0000.csv').exists()
    gifs = sorted(out.glob('*.gif'))
    assert [g.name for g in gifs] == ['policy_0000_task1_seed900000000.gif',
                                      'policy_0000_task1_seed900000001.gif']
    with Image.open(gifs[0]) as gif:
        assert gif.size == (16 * 4, 16 * 4)  # point mass: camera only, upscaled 4 times
        assert gif.n_frames > 1


def test_selection_validates_every_learned_policy_on_its_own_seeds(tmp_path, capsys):
    run_dir = finished_run({**SETTINGS, 'loop': {
        **SETTINGS['loop'], 'pretrain_updates': 3, 'iterations': 2, 'refit_updates': 1}},
        tmp_path)
    assert validate.main([str(run_dir), '--episodes', '2']) == 0
    with open(run_dir / 'validation.csv', newline='') as table:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(table)]
    assert [row['policy'] for row in rows] == [1.0, 2.0]
    assert f'policy {validate.best_policy(rows)} (table in' in capsys.readouterr().out
    # the validation seeds are not the evaluation seeds
    agent = evaluate.load_policy(run_dir, 2)
    env = make_env(SETTINGS['env'])
    validation, _ = evaluate.evaluate(env, agent, 1, 2, False, validate.VALIDATION_SEED_BASE)
    assert validation['final_distance'] == rows[1]['final_distance']
    reported, _ = evaluate.evaluate(env, agent, 1, 2, False)
    assert reported['final_distance'] != validation['final_distance']


def test_validating_chosen_policies_keeps_the_other_rows(tmp_path, capsys):
    run_dir = finished_run({**SETTINGS, 'loop': {
        **SETTINGS['loop'], 'pretrain_updates': 3, 'iterations': 3, 'refit_updates': 1}},
        tmp_path)

    def table():
        with open(run_dir / 'validation.csv', newline='') as csv_file:
            return {row['policy']: row for row in csv.DictReader(csv_file)}

    assert validate.main([str(run_dir), '--episodes', '2', '--policy', 'last']) == 0
    assert list(table()) == ['3']
    assert validate.main([str(run_dir), '--episodes', '3', '--policy', '1']) == 0
    rows = table()
    assert list(rows) == ['1', '3'] and rows['1']['episodes'] == '3'
    assert rows['3']['episodes'] == '2'  # the row validated before is kept as it was
    agent, env = evaluate.load_policy(run_dir, 1), make_env(SETTINGS['env'])
    alone, _ = evaluate.evaluate(env, agent, 1, 3, False, validate.VALIDATION_SEED_BASE)
    assert float(rows['1']['final_distance']) == pytest.approx(alone['final_distance'])
    capsys.readouterr()
    for bad in ('7', 'best', '0'):
        assert validate.main([str(run_dir), '--policy', bad]) == 2
        assert 'cannot use' in capsys.readouterr().err
    assert list(table()) == ['1', '3']  # a refused request leaves the table alone
    (run_dir / 'validation.csv').write_text('policy,success\n1,0.5\n')
    assert validate.main([str(run_dir), '--policy', '2']) == 2
    assert 'has columns' in capsys.readouterr().err


def test_best_policy_prefers_success_then_distance(tmp_path, capsys):
    rows = [{'policy': 1, 'success_rate': 0.5, 'final_distance': 0.02},
            {'policy': 2, 'success_rate': 0.7, 'final_distance': 0.05},
            {'policy': 3, 'success_rate': 0.7, 'final_distance': 0.03}]
    assert validate.best_policy(rows) == 3
    SolarLearner(RunConfig.from_dict(SETTINGS), 4, 2, tmp_path, log=lambda line: None)
    assert validate.main([str(tmp_path)]) == 2
    assert 'no policy after the random one' in capsys.readouterr().err


def test_wilson_interval_known_values():
    low, high = evaluate.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(1.96 ** 2 / (10 + 1.96 ** 2))
    low, high = evaluate.wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(10 / (10 + 1.96 ** 2))
    low, high = evaluate.wilson_interval(45, 50)
    assert (low, high) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    for bad in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            evaluate.wilson_interval(*bad)


def test_zero_episodes_is_an_error_not_a_table(tmp_path):
    assert evaluate.main([str(tmp_path), '--episodes', '0']) == 2
    assert not list(tmp_path.glob('evaluation_*.csv'))


def test_unknown_task_is_an_error_not_a_traceback(tmp_path, capsys):
    settings = {'env': {'name': 'sawyer_stack', 'horizon': 3, 'image_size': 16},
                'model': {'latent_dim': 2, 'channels': 4, 'hidden': 8, 'image_size': 16}}
    SolarLearner(RunConfig.from_dict(settings), 3, 7, tmp_path, log=lambda line: None)
    assert evaluate.main([str(tmp_path), '--tasks', '9', '--episodes', '1']) == 2
    assert 'task 9' in capsys.readouterr().err
    assert not list(tmp_path.glob('evaluation_*.csv'))


def test_ending_lines_put_the_misses_median_beside_every_episodes_figures():
    endings = [{'task': 2, 'seed': s, 'success': float(s < 3), 'target_shift': 0.001 * s}
               for s in range(5)]  # seeds 3 and 4 miss, where the target moved farthest
    assert evaluate.ending_lines(endings) == ['target_shift: 0.002, 0.004; misses 0.004']
    assert evaluate.ending_lines(endings[:3]) == ['target_shift: 0.001, 0.002']  # no misses
    assert evaluate.ending_lines(endings[3:]) == ['target_shift: 0.004, 0.004']  # no stacks


def test_ending_lines_count_the_yes_or_no_endings():
    endings = [{'task': 2, 'seed': s, 'success': float(s < 2), 'fell_off': float(s == 4),
                'vertical_gap': -0.05 if s == 4 else 0.0} for s in range(5)]
    assert evaluate.ending_lines(endings, ['fell_off']) == [
        'fell_off: 1 of 5; misses 1 of 3', 'vertical_gap: 0.000, 0.000; misses 0.000']
    assert evaluate.ending_lines(endings[:2], ['fell_off']) == [
        'fell_off: 0 of 2', 'vertical_gap: 0.000, 0.000']
