"""The SOLAR loop resumes after a kill without losing or repeating rollouts."""

import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from solar_ros.core.checkpoint import load_checkpoint
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.model import SolarModel
from solar_ros.learn import run
from solar_ros.learn.agent import make_agent
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode, EpisodeStore
from solar_ros.learn.learner import (cost_residuals, LEARNER_KIND, LEARNER_VERSION, METRICS,
                                     model_batch)
from solar_ros.learn.learner import new_lqr
from solar_ros.learn.learner import SolarLearner
from solar_ros.learn.loop import SolarLoop
from solar_ros.learn.metrics import MetricsLog
from solar_ros.sim.environments import make_env
import torch
import yaml

CONFIGS = Path(__file__).resolve().parents[1] / 'config'
TINY = {
    'env': {'name': 'point_mass', 'horizon': 6, 'image_size': 32},
    'model': {'latent_dim': 2, 'channels': 4, 'hidden': 16, 'image_size': 32,
              'batch_size': 4, 'action_cost_weight': 0.01},
    'lqr': {'kl_step': 1.0, 'init_std': 0.1},
    'loop': {'pretrain_episodes': 8, 'pretrain_updates': 10, 'iterations': 2,
             'rollouts_per_iteration': 4, 'refit_updates': 400, 'buffer_episodes': 16},
}


def _start(config: Path, run_dir: Path) -> subprocess.Popen:
    """Start the loop's command line in a child process."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.Popen(
        [sys.executable, '-m', 'solar_ros.learn.run', '--config', str(config),
         '--run-dir', str(run_dir), '--threads', '1'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.slow
def test_killed_during_a_refit_the_loop_resumes_and_reuses_the_rollouts(tmp_path):
    config, run_dir = tmp_path / 'tiny.yaml', tmp_path / 'run'
    config.write_text(yaml.safe_dump(TINY))
    child = _start(config, run_dir)
    episodes = run_dir / 'episodes'
    # Policy 1 has recorded its 4 rollouts; the model is refitting (400 updates).
    deadline = time.monotonic() + 120
    while len(list(episodes.glob('episode_*.npz'))) < 12:
        assert child.poll() is None, child.stdout.read()
        assert time.monotonic() < deadline, 'the loop never reached iteration 1'
        time.sleep(0.05)
    assert (run_dir / 'checkpoints' / 'learner_0001.ckpt').exists()
    assert not (run_dir / 'checkpoints' / 'learner_0002.ckpt').exists()
    child.send_signal(signal.SIGKILL)
    child.wait()
    recorded = {p.name: p.stat().st_mtime_ns for p in episodes.glob('episode_*.npz')}
    assert len(recorded) == 12

    resumed = _start(config, run_dir)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert 'resumed policy 1' in output
    assert 'reusing 4 recorded episodes of policy 1' in output
    store = EpisodeStore(episodes)
    assert len(store) == 8 + 4
    for name, mtime in recorded.items():
        assert (episodes / name).stat().st_mtime_ns == mtime, f'{name} was rewritten'
    versions = [e.policy_version for e in store]
    assert versions == [0] * 8 + [1] * 4
    seeds = [e.seed for e in store]
    assert seeds == list(range(12))
    rows = MetricsLog(run_dir / 'metrics.csv', METRICS).rows()
    assert [int(r['policy']) for r in rows] == [1, 2]
    assert [int(r['episodes']) for r in rows] == [8, 12]
    assert np.isfinite([float(r['mean_cost']) for r in rows]).all()


@pytest.mark.parametrize('task', [1, 2, 3])
def test_each_stacking_config_stays_within_400_episodes_checks_included(task):
    """The episode budget of a stacking run: pretraining, rollouts and checks together."""
    config = RunConfig.from_yaml(CONFIGS / f'sawyer_task{task}.yaml')
    assert config.loop.check_rollouts > 0  # the run ends on its best-checked policy
    assert config.loop.episodes <= 400


def test_config_rejects_unknown_sections_and_settings(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config sections \['lopo'\]"):
        RunConfig.from_dict({'lopo': {}})
    with pytest.raises(ValueError, match=r"unknown loop settings \['iteratons'\]"):
        RunConfig.from_dict({'loop': {'iteratons': 3}})
    with pytest.raises(ValueError, match='loop.rollouts_per_iteration must be >= 1'):
        RunConfig.from_dict({'loop': {'rollouts_per_iteration': 0}})
    with pytest.raises(ValueError, match=r'pretrain_episodes \(4\) must be >='):
        RunConfig.from_dict({'loop': {'pretrain_episodes': 4, 'rollouts_per_iteration': 5}})
    for name in ('smooth_noise', 'refit_encoder'):
        with pytest.raises(ValueError, match=f'loop.{name} must be true or false'):
            RunConfig.from_dict({'loop': {name: 'no'}})
    path = tmp_path / 'list.yaml'
    path.write_text('- 1\n- 2\n')
    with pytest.raises(ValueError, match='expected a mapping'):
        RunConfig.from_yaml(path)


@pytest.mark.parametrize('section, settings, message', [
    ('lqr', {'kl_stepp': 1.0}, r"unknown lqr settings \['kl_stepp'\]"),
    ('lqr', {'kl_step': -1.0}, 'lqr.kl_step must be finite and > 0'),
    ('lqr', {'min_step_mult': 2.0, 'max_step_mult': 1.0}, 'lqr.max_step_mult'),
    ('mpc', {'sampels': 10}, r"unknown mpc settings \['sampels'\]"),
    ('mpc', {'elites': 50, 'samples': 10}, 'elites'),
    ('model', {'latent_dim': 4, 'chanels': 8}, r"unknown ModelConfig keys \['chanels'\]"),
    ('model', {'latent_dim': 0}, 'latent_dim must be >= 1'),
    ('loop', {'refit_updates': 1.5}, r'loop.refit_updates must be >= 0 \(an integer\)'),
    ('loop', {'cost_fit_episodes': 'all'}, r'loop.cost_fit_episodes must be >= 0 \(an'),
    ('loop', {'buffer_episodes': 0}, 'loop.buffer_episodes must be >= 1'),
    ('env', {'name': 'point_mass', 'horizn': 5}, r"unknown env settings \['horizn'\]"),
    ('env', {'name': 'sawyer_stack', 'views': 5}, 'views must be one of'),
    ('env', {'name': 'sawyr'}, 'env.name must be one of'),
])
def test_every_section_is_checked_when_the_config_is_read(section, settings, message):
    """A typo or bad value in any section is one ValueError before any work starts."""
    values = {**TINY, section: settings}
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(values)


def test_a_config_extends_another_setting_by_setting(tmp_path):
    (tmp_path / 'base.yaml').write_text(
        'env: {name: point_mass, horizon: 9}\nmodel: {latent_dim: 4, channels: 8}\n'
        'loop: {iterations: 3, task: 3}\n')
    (tmp_path / 'configs').mkdir()
    path = tmp_path / 'configs' / 'task1.yaml'  # the base named relative to this file
    path.write_text('extends: ../base.yaml\nloop: {task: 1}\nlqr: {kl_step: 0.5}\n')
    config = RunConfig.from_yaml(path, ['loop.iterations=5'])
    assert config.env == {'name': 'point_mass', 'horizon': 9}
    assert config.model == {'latent_dim': 4, 'channels': 8}
    assert (config.loop.task, config.loop.iterations, config.lqr.kl_step) == (1, 5, 0.5)
    # The shipped task-1 config is task 3's but for the task.
    task1, task3 = (RunConfig.from_yaml(CONFIGS / f'sawyer_task{task}.yaml').to_dict()
                    for task in (1, 3))
    assert task1['loop'].pop('task') == 1 and task3['loop'].pop('task') == 3
    assert task1 == task3


@pytest.mark.parametrize('text, message', [
    ('extends: missing.yaml\n', r'cannot read .*missing.yaml \(extends\)'),
    ('extends: [base.yaml]\n', 'extends must name a run config file'),
    ('extends: run.yaml\n', r'run.yaml: extends run.yaml, a cycle: run.yaml -> run.yaml$'),
    ('extends: b.yaml\n',
     r'c.yaml: extends run.yaml, a cycle: run.yaml -> b.yaml -> c.yaml -> run.yaml$'),
])
def test_a_bad_extends_is_one_error_naming_the_file(tmp_path, text, message):
    (tmp_path / 'b.yaml').write_text('extends: c.yaml\n')
    (tmp_path / 'c.yaml').write_text('extends: run.yaml\n')
    path = tmp_path / 'run.yaml'
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        RunConfig.from_yaml(path)


def test_overrides_replace_single_settings_with_yaml_values(tmp_path):
    path = tmp_path / 'run.yaml'
    path.write_text('env: {name: point_mass}\nmodel: {latent_dim: 4, channels: 8}\n'
                    'loop: {iterations: 3}\n')
    config = RunConfig.from_yaml(path, ['loop.method=mpc', 'model.inference=vae',
                                        'loop.iterations=5', 'lqr.kl_step=0.5'])
    assert config.loop.method == 'mpc' and config.loop.iterations == 5
    assert config.model == {'latent_dim': 4, 'channels': 8, 'inference': 'vae'}
    assert config.lqr.kl_step == 0.5
    for bad in ('loop.iterations', 'iterations=3', 'lopo.iterations=3'):
        with pytest.raises(ValueError, match='expected section.key=value'):
            RunConfig.from_yaml(path, [bad])
    with pytest.raises(ValueError, match='unknown loop settings'):
        RunConfig.from_yaml(path, ['loop.iteratons=3'])


def test_resuming_with_other_model_settings_is_an_error(tmp_path):
    run_dir = tmp_path / 'run'
    config = RunConfig.from_dict(TINY)
    SolarLearner(config, 6, 2, run_dir, log=lambda _: None)
    saved = (run_dir / 'config.yaml').read_text()
    changed = RunConfig.from_dict(dict(TINY, model=dict(TINY['model'], latent_dim=3)))
    with pytest.raises(ValueError, match='other model settings'):
        SolarLearner(changed, 6, 2, run_dir, log=lambda _: None)
    assert (run_dir / 'config.yaml').read_text() == saved
    SolarLearner(config, 6, 2, run_dir, log=lambda _: None)  # its own settings still resume


def test_episodes_already_recorded_count_for_a_new_run(tmp_path):
    run_dir = tmp_path / 'run'
    store = EpisodeStore(run_dir / 'episodes')
    for seed in range(3):
        store.append(Episode(images=np.zeros((7, 32, 32, 3), np.uint8),
                             actions=np.zeros((6, 2)), costs=np.ones(6), task=1, seed=seed,
                             success=False, final_distance=0.5, policy_version=0))
    learner = SolarLearner(RunConfig.from_dict(TINY), 6, 2, run_dir, log=lambda _: None)
    assert learner.pending() == 3 and learner.needed() == 8


def test_pretraining_noise_apart_from_the_lqr_flm_initial_policy(tmp_path):
    wide = RunConfig.from_dict(dict(TINY, loop=dict(TINY['loop'], pretrain_std=0.4)))
    learner = SolarLearner(wide, 6, 2, tmp_path / 'wide', log=lambda _: None)
    assert torch.allclose(learner.gains.policy.cov, 0.16 * torch.eye(2, dtype=torch.float64))
    assert torch.allclose(learner.lqr.policy.cov, 0.01 * torch.eye(2, dtype=torch.float64))
    resumed = SolarLearner(wide, 6, 2, tmp_path / 'wide', log=lambda _: None)
    assert torch.equal(resumed.gains.policy.cov, learner.gains.policy.cov)
    default = SolarLearner(RunConfig.from_dict(TINY), 6, 2, tmp_path / 'same',
                           log=lambda _: None)
    assert torch.equal(default.gains.policy.cov, default.lqr.policy.cov)
    with pytest.raises(ValueError, match='pretrain_std'):
        RunConfig.from_dict({'loop': {'pretrain_std': 0.0}})


def test_rollout_noise_scales_the_published_policies_noise_only(tmp_path):
    """loop.rollout_noise shrinks the rollouts' noise; LQR-FLM keeps its own policy."""
    quiet = RunConfig.from_dict(dict(TINY, loop=dict(TINY['loop'], iterations=1,
                                                     rollout_noise=0.5)))
    loop = SolarLoop(make_env(quiet.env), quiet, tmp_path / 'quiet', log=lambda _: None)
    loop.run()
    published, planned = loop.learner.gains.policy, loop.learner.lqr.policy
    assert loop.learner.policy_version == 1
    torch.testing.assert_close(published.cov, 0.25 * planned.cov)
    torch.testing.assert_close(published.chol, 0.5 * planned.chol)
    assert torch.equal(published.K, planned.K) and torch.equal(published.k, planned.k)
    with pytest.raises(ValueError, match='rollout_noise'):
        RunConfig.from_dict({'loop': {'rollout_noise': 0.0}})


@pytest.mark.slow
def test_cost_fit_episodes_add_the_earlier_lqr_flm_rollouts_not_the_random_ones(tmp_path):
    """loop.cost_fit_episodes: the cost fit also sees policy 1's rollouts, smoothed anew."""
    config = RunConfig.from_dict(dict(TINY, loop=dict(TINY['loop'], cost_fit_episodes=6)))
    loop = SolarLoop(make_env(config.env), config, tmp_path / 'run', log=lambda _: None)
    loop.run()
    learner = loop.learner
    assert learner.policy_version == 2 and learner.episodes_used == 12
    states, actions, costs = learner._cost_samples()  # for policy 3: episodes 6-11
    earlier = learner.store.load(8, 12)  # 6 and 7 are the random policy's
    assert [e.policy_version for e in earlier] == [1] * 4
    np.testing.assert_allclose(costs.numpy(), np.stack([e.costs for e in earlier]))
    np.testing.assert_allclose(actions.numpy(), np.stack([e.actions for e in earlier]))
    assert states.shape == (4, 6, 2)
    none = RunConfig.from_dict(TINY)
    assert SolarLearner(none, 6, 2, tmp_path / 'run', log=lambda _: None)._cost_samples() is None
    head = RunConfig.from_dict(dict(TINY, loop=dict(TINY['loop'], cost_fit_episodes=6,
                                                    lqr_cost='model')))
    assert SolarLearner(head, 6, 2, tmp_path / 'run', log=lambda _: None)._cost_samples() is None
    with pytest.raises(ValueError, match='cost_fit_episodes'):
        RunConfig.from_dict({'loop': {'cost_fit_episodes': -1}})


def _tiny_episode(aim_offsets, seed):
    """Return an explored episode of TINY's shapes with ``aim_offsets`` (6, d) or None."""
    return Episode(images=np.zeros((7, 32, 32, 3), np.uint8), actions=np.zeros((6, 2)),
                   costs=np.zeros(6), task=1, seed=seed, success=False, final_distance=0.1,
                   aim_offsets=aim_offsets)


def test_the_residual_cost_needs_recorded_offsets_of_a_squared_offset_cost(tmp_path):
    """loop.lqr_cost residuals: the offsets over the env's scale; clear errors otherwise."""
    config = RunConfig.from_dict(dict(TINY, loop=dict(TINY['loop'], lqr_cost='residuals')))
    offsets = np.arange(12.0).reshape(6, 2)

    def episode(aim_offsets):
        return _tiny_episode(aim_offsets, seed=3)
    residuals = cost_residuals(config, [episode(offsets), episode(2 * offsets)])
    np.testing.assert_allclose(residuals.numpy(), np.stack([offsets, 2 * offsets]))  # scale 1
    with pytest.raises(ValueError, match=r'1 of the episodes \(seeds \[3\]\) carry no'):
        cost_residuals(config, [episode(offsets), episode(None)])
    assert cost_residuals(RunConfig.from_dict(TINY), [episode(None)]) is None
    # The learner refuses to record a rollout without offsets (episodes from an arm whose
    # events carry none), before any update needs them; a check needs none.
    learner = SolarLearner(config, 6, 2, tmp_path / 'run', log=lambda _: None)
    with pytest.raises(ValueError, match='episode 3 carries no aim offsets'):
        learner.record(episode(None))
    assert len(learner.store) == 0
    learner.record(episode(offsets))
    check = episode(None)
    check.explored, check.policy_version = False, 1
    learner.record(check)
    assert (len(learner.store), len(learner.checks)) == (1, 1)
    linear = {'name': 'sawyer_stack', 'distance_cost': 'linear'}
    for env, message in (({}, 'needs the env section'), (linear, 'not a squared offset')):
        with pytest.raises(ValueError, match=f'loop.lqr_cost residuals.*{message}'):
            RunConfig.from_dict(dict(TINY, env=env, loop=dict(TINY['loop'],
                                                              lqr_cost='residuals')))


def test_a_model_that_reads_the_residuals_trains_on_the_recorded_offsets(tmp_path):
    """model.residual_dim: the batches carry the offsets over the env's scale; a run uses them."""
    config = RunConfig.from_dict(dict(TINY, model=dict(TINY['model'], residual_dim=2)))
    offsets = np.arange(12.0).reshape(6, 2)

    def episode(aim_offsets):
        return _tiny_episode(aim_offsets, seed=4)
    batch = model_batch(config, [episode(offsets), episode(2 * offsets)])
    np.testing.assert_allclose(batch.residuals.numpy(), np.stack([offsets, 2 * offsets]))
    assert model_batch(RunConfig.from_dict(TINY), [episode(None)]).residuals is None
    with pytest.raises(ValueError, match=r'model.residual_dim: 1 of the episodes \(seeds \[4\]'):
        model_batch(config, [episode(offsets), episode(None)])
    loop = SolarLoop(make_env(config.env), RunConfig.from_dict(dict(
        config.to_dict(), loop=dict(TINY['loop'], iterations=1))), tmp_path / 'run',
        log=lambda _: None)
    loop.run()  # the point mass records its offsets: the pretraining reads them
    assert loop.learner.model.residual_head.weight.abs().sum() > 0
    linear = {'name': 'sawyer_stack', 'distance_cost': 'linear'}
    for env, message in (({}, 'needs the env section'), (linear, 'not a squared offset')):
        with pytest.raises(ValueError, match=f'model.residual_dim.*{message}'):
            RunConfig.from_dict(dict(TINY, env=env, model=dict(TINY['model'], residual_dim=3)))


def test_a_residual_read_out_that_the_rollouts_cannot_fit_is_refused_before_the_run():
    """Each update fits dx + 1 coefficients per cost segment on its rollouts' steps."""
    def build(rollouts: int, segments: int, method: str = 'solar') -> RunConfig:
        # TINY: point mass of 6 steps, latent_dim 2
        return RunConfig.from_dict(dict(
            TINY, lqr=dict(TINY['lqr'], cost_segments=segments),
            loop=dict(TINY['loop'], lqr_cost='residuals', rollouts_per_iteration=rollouts,
                      method=method)))
    assert build(rollouts=1, segments=2).loop.rollouts_per_iteration == 1  # 3 samples > 2
    with pytest.raises(ValueError, match=r'loop.rollouts_per_iteration \(1\) x 2 steps per cost '
                       r'segment \(env.horizon 6 / lqr.cost_segments 3\) = 2 samples; it needs '
                       r'more than 2'):
        build(rollouts=1, segments=3)
    assert build(rollouts=1, segments=3, method='mpc').loop.method == 'mpc'  # no read-out
    sawyer = {'name': 'sawyer_stack', 'distance_cost': 'squared', 'horizon': 40}
    with pytest.raises(ValueError, match=r'\(1\) x 10 steps .* = 10 samples; it needs more '
                       r'than 20'):  # the run that lost its pretraining to this
        RunConfig.from_dict(dict(TINY, env=sawyer, model=dict(TINY['model'], latent_dim=20),
                                 lqr=dict(TINY['lqr'], cost_segments=4),
                                 loop=dict(TINY['loop'], lqr_cost='residuals',
                                           rollouts_per_iteration=1)))


@pytest.mark.slow
def test_checks_run_the_mean_action_apart_and_the_run_ends_on_the_best_checked_policy(
        tmp_path):
    """loop.check_rollouts: checks after each policy's rollouts; the learning is unchanged.

    Policy 0: episodes 0-7; policy 1: rollouts 8-11, then checks; policy 2, the last:
    checks only; the best-checked policy is then saved as policy 3.
    """
    short = dict(TINY['loop'], refit_updates=20)
    plain_config = RunConfig.from_dict(dict(TINY, loop=short))
    plain = SolarLoop(make_env(plain_config.env), plain_config, tmp_path / 'plain',
                      log=lambda _: None)
    plain.run()
    config = RunConfig.from_dict(dict(TINY, loop=dict(short, check_rollouts=2)))
    lines: list = []
    loop = SolarLoop(make_env(config.env), config, tmp_path / 'run', log=lines.append)
    loop.run()
    learner = loop.learner
    # The checks are kept apart: the rollouts and the policies are those of a plain run.
    episodes, checks = learner.store.load(), learner.checks.load()
    assert [e.policy_version for e in episodes] == [0] * 8 + [1] * 4
    for mine, theirs in zip(episodes, plain.learner.store.load(), strict=True):
        np.testing.assert_array_equal(mine.actions, theirs.actions)
    torch.testing.assert_close(_gains(learner, 2).policy.k, plain.learner.gains.policy.k)
    assert [(e.policy_version, e.explored) for e in checks] == [(1, False), (1, False),
                                                                (2, False), (2, False)]
    assert [e.seed for e in checks[:2]] == [e.seed for e in checks[2:]]  # the same states
    # A check is the mean action: with the policy's noise the same seed runs otherwise.
    agent = make_agent('solar', SolarModel.load(learner.model_path(2)), _gains(learner, 2),
                       config.mpc)
    np.testing.assert_allclose(loop.rollout(agent, checks[2].seed, True).actions,
                               checks[2].actions)
    assert not np.allclose(loop.rollout(agent, checks[2].seed).actions, checks[2].actions)
    scores = {v: (np.mean([e.success for e in checks if e.policy_version == v]),
                  -np.mean([e.final_distance for e in checks if e.policy_version == v]))
              for v in (1, 2)}
    best = max(scores, key=scores.get)
    assert learner.policy_version == 3 and learner.done()
    # a tie on the check success rate is said, with the command that tells the tied apart
    tied = [v for v in (1, 2) if scores[v][0] == scores[best][0]]
    ties = [line for line in lines if 'tie at' in line]
    assert len(ties) == (len(tied) > 1)
    assert all(f'chose policy {best}' in t and f'--policy {" ".join(map(str, tied))}' in t
               for t in ties)
    torch.testing.assert_close(learner.gains.policy.k, _gains(learner, best).policy.k)
    assert SolarModel.load(learner.model_path(3)).num_updates == \
        SolarModel.load(learner.model_path(best)).num_updates
    row = [r for r in MetricsLog(learner.files.metrics, METRICS).rows() if r['policy'] == '2'][0]
    assert float(row['check_success_rate']) == np.mean([e.success for e in checks[:2]])
    assert float(row['check_final_distance']) == pytest.approx(
        np.mean([e.final_distance for e in checks[:2]]))
    again = SolarLoop(make_env(config.env), config, tmp_path / 'run', log=lambda _: None)
    assert again.run().policy_version == 3
    assert len(again.learner.store) == 12 and len(again.learner.checks) == 4
    assert config.loop.episodes == 16 and plain_config.loop.episodes == 12
    with pytest.raises(ValueError, match='check_rollouts'):
        RunConfig.from_dict({'loop': {'check_rollouts': -1}})


@pytest.mark.slow
@pytest.mark.parametrize('tie_break', ['distance', 'newest'])
def test_policies_tied_on_their_checks_run_tie_checks_in_rounds_within_the_budget(
        tmp_path, tie_break):
    """loop.tie_checks: after the last policy's checks, the tied policies get more checks.

    With a success radius that every episode meets (``env.success_distance``), policies 1
    and 2 tie at 100% of their one check each: tie checks of 5 pay for two rounds of two
    (policy 1, then 2, each by its own mean action on the next check seed), not a third;
    ``loop.tie_break`` then chooses: the smaller mean final distance of three checks, or
    the newer policy, 2. Killed during the tie checks, the run goes on with the ones left.
    """
    env = dict(TINY['env'], success_distance=100.0)
    config = RunConfig.from_dict(dict(TINY, env=env, loop=dict(
        TINY['loop'], refit_updates=20, check_rollouts=1, tie_checks=5, tie_break=tie_break)))
    lines: list = []
    loop = SolarLoop(make_env(config.env), config, tmp_path / 'run', log=lines.append)
    loop.run()
    learner = loop.learner
    checks = learner.checks.load()
    assert [e.policy_version for e in checks] == [1, 2, 1, 2, 1, 2]
    assert all(not e.explored and e.success for e in checks)
    assert [e.seed for e in checks[0::2]] == [e.seed for e in checks[1::2]]
    assert len({e.seed for e in checks}) == 3
    assert sum('tie check' in line for line in lines) == 4
    for episode in checks[2:]:  # each tie check is its policy's mean action
        version = episode.policy_version
        agent = make_agent('solar', SolarModel.load(learner.model_path(version)),
                           _gains(learner, version), config.mpc)
        np.testing.assert_allclose(loop.rollout(agent, episode.seed, True).actions,
                                   episode.actions)
    distance = {v: np.mean([e.final_distance for e in checks if e.policy_version == v])
                for v in (1, 2)}
    best = min(distance, key=distance.get) if tie_break == 'distance' else 2
    assert sum(f'chose policy {best}' in line for line in lines) == 1
    assert learner.policy_version == 3 and learner.done()
    torch.testing.assert_close(learner.gains.policy.k, _gains(learner, best).policy.k)
    assert len(learner.store) + len(checks) == 18 < config.loop.episodes == 19
    # Killed after the first round of tie checks: the second is run again, alike.
    for path in sorted(learner.files.checks.glob('episode_*.npz'))[4:]:
        path.unlink()
    learner.files.learner(3).unlink()
    learner.files.model(3).unlink()
    again = SolarLoop(make_env(config.env), config, tmp_path / 'run', log=lambda _: None)
    assert again.run().policy_version == 3
    redone = again.learner.checks.load()
    assert [(e.policy_version, e.seed) for e in redone] == \
        [(e.policy_version, e.seed) for e in checks]
    np.testing.assert_allclose(redone[5].actions, checks[5].actions)
    torch.testing.assert_close(again.learner.gains.policy.k, _gains(learner, best).policy.k)
    with pytest.raises(ValueError, match='tie_checks'):
        RunConfig.from_dict({'loop': {'tie_checks': 2}})


@pytest.mark.slow
def test_step_from_best_checked_steps_over_a_worse_policy_from_the_best_ones_rollouts(
        tmp_path):
    """loop.step_from=best_checked: a step starts from an earlier policy that checked better.

    The point mass's success radius (``env.success_distance``, which changes nothing but the
    episodes' success flags) is chosen from a step_from=last run's check distances so that
    some policy's checks stack less often than an earlier one's. Up to that policy the run
    is that of step_from=last; the next update is LQR-FLM's step from the best-checked
    policy's saved state, on its own rollouts, carried into the refitted model's coordinates.
    """
    short = dict(TINY['loop'], refit_updates=20, iterations=8, check_rollouts=3)
    plain_config = RunConfig.from_dict(dict(TINY, loop=short))
    plain = SolarLoop(make_env(plain_config.env), plain_config, tmp_path / 'plain',
                      log=lambda _: None)
    plain.run()
    distances = {}
    for episode in plain.learner.checks:
        distances.setdefault(episode.policy_version, []).append(episode.final_distance)

    def first_step_over(radius: float):
        """Return (policy stepped over, base) under the rule for this radius, or None."""
        scores = {}
        for version in range(1, 8):
            scores[version] = (np.mean(np.array(distances[version]) < radius),
                               -np.mean(distances[version]))
            if scores[version][0] < max(rate for rate, _ in scores.values()):
                return version, max(scores, key=scores.get)
        return None

    cuts = sorted(d for runs in distances.values() for d in runs)
    radius = next(r for r in [(a + b) / 2 for a, b in zip(cuts, cuts[1:])]
                  if first_step_over(r))
    worse, base = first_step_over(radius)
    env = dict(TINY['env'], success_distance=float(radius))
    config = RunConfig.from_dict(dict(TINY, env=env,
                                      loop=dict(short, step_from='best_checked')))
    loop = SolarLoop(make_env(config.env), config, tmp_path / 'run', log=lambda _: None)
    loop.run()
    learner = loop.learner
    for version in range(1, worse + 1):  # the learning of step_from=last up to there
        torch.testing.assert_close(_gains(learner, version).policy.k,
                                   _gains(plain.learner, version).policy.k)
    assert not torch.allclose(_gains(learner, worse + 1).policy.k,
                              _gains(plain.learner, worse + 1).policy.k)
    # Policy worse + 1 is the step from base, on base's rollouts, in the refitted model.
    rollouts = [e for e in learner.store.load() if e.policy_version == base]
    images = np.stack([e.images[:-1] for e in rollouts])
    actions = np.stack([e.actions for e in rollouts])
    costs = np.stack([e.costs for e in rollouts])
    refitted = SolarModel.load(learner.model_path(worse + 1))
    lqr = new_lqr(learner.model_config, learner.config.lqr)
    lqr.load_state_dict(load_checkpoint(learner.files.learner(base), LEARNER_KIND,
                                        LEARNER_VERSION)['lqr'])
    lqr.change_coordinates(SolarModel.load(learner.model_path(base)).infer(images,
                                                                           actions).means,
                           refitted.infer(images, actions).means)
    step = lqr.update(refitted.smoother(images, actions), actions, costs, prior=refitted.q)
    torch.testing.assert_close(_gains(learner, worse + 1).policy.k, step.policy.k)
    torch.testing.assert_close(_gains(learner, worse + 1).policy.K, step.policy.K)
    assert learner.policy_version == 9 and learner.done()
    with pytest.raises(ValueError, match='check_rollouts'):
        RunConfig.from_dict({'loop': {'step_from': 'best_checked'}})
    with pytest.raises(ValueError, match='step_from'):
        RunConfig.from_dict({'loop': {'step_from': 'best'}})


def _gains(learner: SolarLearner, version: int) -> TimeVaryingGains:
    """Return the gains of policy ``version`` as the run saved them."""
    state = load_checkpoint(learner.files.learner(version), LEARNER_KIND, LEARNER_VERSION)
    return TimeVaryingGains.from_dict(state['gains'])


@pytest.mark.slow
def test_lqr_cost_from_the_model_is_the_cost_head_the_policy_minimises(tmp_path):
    """loop.lqr_cost=model hands LQR-FLM the model's cost head instead of a fresh fit."""
    policies = {}
    for source in ('rollouts', 'model'):
        config = RunConfig.from_dict(dict(TINY, loop=dict(TINY['loop'], iterations=1,
                                                          lqr_cost=source)))
        loop = SolarLoop(make_env(config.env), config, tmp_path / source, log=lambda _: None)
        loop.run()
        policies[source] = loop.learner.lqr.policy
    C, c, const = loop.learner.model.cost_params()
    cost = loop.learner.lqr.known_cost
    torch.testing.assert_close(cost.C, C.expand_as(cost.C))
    torch.testing.assert_close(cost.c, c.expand_as(cost.c))
    torch.testing.assert_close(cost.const, const.expand_as(cost.const))
    assert not torch.allclose(policies['model'].k, policies['rollouts'].k)
    with pytest.raises(ValueError, match='lqr_cost'):
        RunConfig.from_dict({'loop': {'lqr_cost': 'head'}})


@pytest.mark.slow
def test_a_run_reproduces_bit_for_bit_with_the_same_seed_and_threads(tmp_path):
    """Same config, seed and --threads 1 on one machine: identical episodes and metrics."""
    config = tmp_path / 'tiny.yaml'
    config.write_text(yaml.safe_dump(dict(TINY, loop=dict(TINY['loop'], refit_updates=5))))
    runs = [tmp_path / 'a', tmp_path / 'b']
    for run_dir in runs:
        child = _start(config, run_dir)
        output, _ = child.communicate(timeout=300)
        assert child.returncode == 0, output
    first, second = (list(EpisodeStore(run_dir / 'episodes')) for run_dir in runs)
    assert len(first) == len(second) == 12
    for a, b in zip(first, second):
        assert np.array_equal(a.images, b.images) and np.array_equal(a.actions, b.actions)
        assert np.array_equal(a.costs, b.costs)
    columns = ('mean_cost', 'final_distance', 'kl')
    rows = [MetricsLog(run_dir / 'metrics.csv', METRICS).rows() for run_dir in runs]
    assert [[r[c] for c in columns] for r in rows[0]] == [[r[c] for c in columns]
                                                          for r in rows[1]]


def test_a_pretrained_folder_cannot_be_learned_in_and_says_what_to_do(tmp_path, capsys):
    copy = tmp_path / 'copy'
    shutil.copytree(Path(__file__).resolve().parents[1] / 'pretrained' / 'sawyer_task1', copy)
    before = sorted(p.relative_to(copy) for p in copy.rglob('*'))
    assert run.main(['--config', str(copy / 'config.yaml'), '--run-dir', str(copy)]) == 2
    error = capsys.readouterr().err
    assert 'holds trained policies but no episodes' in error and 'learn.evaluate' in error
    assert sorted(p.relative_to(copy) for p in copy.rglob('*')) == before, 'nothing written'
