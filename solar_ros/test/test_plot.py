"""Learning curves are drawn from real metrics files; bad arguments are clear errors."""

from PIL import Image
from solar_ros.learn import plot
from solar_ros.learn.learner import METRICS
from solar_ros.learn.metrics import MetricsLog


def _run(path, final_distances):
    log = MetricsLog(path / 'metrics.csv', METRICS)
    for i, distance in enumerate(final_distances):
        log.append({'policy': i + 1, 'episodes': 10 * (i + 1), 'mean_cost': 2 * distance,
                    'final_distance': distance, 'success_rate': float(distance < 0.2),
                    'model_fit_s': 1.0, 'policy_update_s': 0.1, 'kl': 1.0,
                    'step_mult': 1.0, 'predicted_gain': 0.5, 'realised_gain': 0.4,
                    'coords_r2': 1.0, 'probe_r2_x': 0.9, 'probe_r2_y': 0.9,
                    'probe_r2_z': 0.9, 'near_goal_rmse_x': 0.01, 'near_goal_rmse_y': 0.01,
                    'near_goal_rmse_z': 0.01, 'check_success_rate': float('nan'),
                    'check_final_distance': float('nan')})
    return path


def test_two_runs_one_png(tmp_path, capsys):
    a = _run(tmp_path / 'a', [0.7, 0.3, 0.1])
    b = _run(tmp_path / 'b', [0.7, 0.6])
    assert plot.main([str(a), str(b), '--labels', 'solar', 'vae']) == 0
    out = a / 'learning_curve.png'
    assert str(out) in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.format == 'PNG' and image.width > 2 * image.height
    assert plot.read_metrics(a)['final_distance'] == [0.7, 0.3, 0.1]


def test_validation_is_placed_at_the_episodes_each_policy_was_learned_from(tmp_path):
    a = _run(tmp_path / 'a', [0.7, 0.3, 0.1])
    assert plot.read_validation(a)['episodes'] == []
    (a / 'validation.csv').write_text(
        'policy,episodes,success_rate,final_distance,mean_cost\n'
        '1,20,0.0,0.5,4.0\n2,20,0.5,0.05,1.0\n3,20,0.75,0.02,0.8\n')
    assert plot.read_validation(a) == {
        'episodes': [10.0, 20.0, 30.0], 'final_distance': [0.5, 0.05, 0.02],
        'success_rate': [0.0, 0.5, 0.75], 'mean_cost': [4.0, 1.0, 0.8]}
    assert plot.main([str(a), '--out', str(tmp_path / 'curves.png')]) == 0


def test_bad_arguments(tmp_path, capsys):
    a = _run(tmp_path / 'a', [0.5])
    assert plot.main([str(a), '--labels', 'x', 'y']) == 2
    assert '2 labels for 1 runs' in capsys.readouterr().err
    assert plot.main([str(tmp_path / 'missing')]) == 2
    assert 'no metrics' in capsys.readouterr().err
