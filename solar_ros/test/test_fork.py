"""A run forked after one of its policies goes on from there with the settings given."""

import numpy as np
import pytest
from solar_ros.core.model import SolarModel
from solar_ros.learn import fork, run
from solar_ros.learn.episodes import EpisodeStore
from solar_ros.learn.learner import METRICS
from solar_ros.learn.metrics import MetricsLog
from solar_ros.learn.run_dir import RunDir
import yaml

SETTINGS = {
    'env': {'name': 'point_mass', 'horizon': 5, 'image_size': 16},
    'model': {'latent_dim': 2, 'channels': 4, 'hidden': 8, 'image_size': 16,
              'batch_size': 4, 'action_cost_weight': 0.01, 'residual_dim': 2},
    'loop': {'pretrain_episodes': 6, 'pretrain_updates': 4, 'iterations': 3,
             'rollouts_per_iteration': 3, 'refit_updates': 2, 'check_rollouts': 2},
}


def _run(config, run_dir, *settings):
    args = ['--config', str(config), '--run-dir', str(run_dir), '--threads', '1']
    for setting in settings:
        args += ['--set', setting]
    assert run.main(args) == 0


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """Return a finished run of three policy updates, with checks."""
    root = tmp_path_factory.mktemp('fork')
    config = root / 'run.yaml'
    config.write_text(yaml.safe_dump(SETTINGS))
    _run(config, root / 'source')
    return root / 'source'


def _files(run_dir):
    return {p.relative_to(run_dir): p.stat().st_mtime_ns for p in run_dir.rglob('*')}


def test_a_fork_holds_the_run_up_to_its_policy(source, tmp_path):
    before = _files(source)
    assert fork.main([str(source), str(tmp_path / 'fork'), '--policy', '2']) == 0
    src, dst = RunDir(source), RunDir(tmp_path / 'fork')
    assert dst.completed_policies() == [0, 1, 2] and dst.models() == [0, 1, 2]
    assert [e.policy_version for e in EpisodeStore(dst.episodes)] == [0] * 6 + [1] * 3
    assert {e.policy_version for e in EpisodeStore(dst.checks)} == {1}
    assert [r['policy'] for r in MetricsLog(dst.metrics, METRICS).rows()] == ['1', '2']
    assert dst.config.read_text() == src.config.read_text()
    assert (dst.checkpoints / 'learner_0002.ckpt').read_bytes() == \
        (src.checkpoints / 'learner_0002.ckpt').read_bytes()
    assert _files(source) == before, 'the source run is left as it was'
    assert not list(tmp_path.glob('.*partial')), 'no half-built folder is left'


def test_the_fork_goes_on_with_other_settings_from_the_same_episodes(source, tmp_path):
    target = tmp_path / 'fork'
    assert fork.main([str(source), str(target)]) == 0
    _run(RunDir(target).config, target, 'loop.refit_updates=3')
    assert yaml.safe_load(RunDir(target).config.read_text())['loop']['refit_updates'] == 3
    forked, original = (list(EpisodeStore(RunDir(d).episodes)) for d in (target, source))
    assert len(forked) == len(original) == 6 + 2 * 3  # policies 1 and 2 learned from
    # policy 1's rollouts are the original run's: the same policy on the same seeds
    for a, b in zip(forked[:9], original[:9]):
        assert a.seed == b.seed and np.array_equal(a.actions, b.actions)
    # after refits of other length the policies differ
    assert not np.array_equal(forked[-1].actions, original[-1].actions)
    rows = MetricsLog(RunDir(target).metrics, METRICS).rows()
    assert [r['policy'] for r in rows] == ['1', '2', '3']


def test_the_fork_goes_on_with_another_residual_std_but_no_other_model_setting(
        source, tmp_path, capsys):
    target = tmp_path / 'fork'
    assert fork.main([str(source), str(target), '--policy', '2']) == 0
    files = RunDir(target)
    args = ['--config', str(files.config), '--run-dir', str(target), '--threads', '1']
    assert run.main(args + ['--set', 'model.latent_dim=3']) == 2
    assert 'other model settings' in capsys.readouterr().err
    assert files.completed_policies() == [0, 1, 2], 'the refused run changed nothing'
    _run(files.config, target, 'model.residual_std=0.05')
    assert [SolarModel.load(files.model(k)).config.residual_std for k in (2, 3)] == [0.1, 0.05]
    assert yaml.safe_load(files.config.read_text())['model']['residual_std'] == 0.05


def test_a_fork_refuses_a_missing_policy_or_a_used_folder(source, tmp_path, capsys):
    assert fork.main([str(source), str(tmp_path / 'a'), '--policy', '9']) == 2
    assert 'no completed policy 9' in capsys.readouterr().err
    assert not (tmp_path / 'a').exists()
    used = tmp_path / 'used'
    used.mkdir()
    (used / 'notes.txt').write_text('mine')
    assert fork.main([str(source), str(used)]) == 2
    assert 'not empty' in capsys.readouterr().err
    assert [p.name for p in used.iterdir()] == ['notes.txt']
