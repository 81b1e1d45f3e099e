"""The step probe: replays that reproduce the costs, a linear read-out, a real point-mass run."""

import dataclasses

from learning_runs import CHECKED_POINT_MASS
import numpy as np
import pytest
from solar_ros.learn import step_probe
from solar_ros.learn.episodes import EpisodeStore
from solar_ros.learn.evaluate import load_policy
from solar_ros.learn.step_probe import act_from_seeds, fit_read, read, replay_check
from solar_ros.learn.step_probe import replay_offsets
from solar_ros.sim.environments import make_env
import yaml


def test_the_read_out_recovers_an_affine_map_of_the_latent():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(5, 7, 4))
    A, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    W = fit_read(states, states @ A + b)
    assert W.shape == (5, 3)
    np.testing.assert_allclose(read(W, states[0, 0]), states[0, 0] @ A + b, atol=1e-10)
    np.testing.assert_allclose(read(W, states), states @ A + b, atol=1e-10)


def test_a_replay_reads_the_offsets_the_recorded_costs_measured(checked_run):
    env = make_env(CHECKED_POINT_MASS['env'])
    episode = next(iter(EpisodeStore(checked_run / 'episodes')))
    offsets = replay_offsets(env, episode)
    assert offsets.shape == (12, 2)
    # the point mass costs |position|^2 + w |a|^2, its position being the offset to the goal
    w = env.action_weight
    np.testing.assert_allclose((offsets ** 2).sum(1),
                               episode.costs - w * (episode.actions ** 2).sum(1), atol=1e-9)
    other = dataclasses.replace(episode, seed=episode.seed + 1)
    with pytest.raises(ValueError, match='does not replay: step 0'):
        replay_offsets(env, other)


def test_a_check_replays_with_its_policy_and_not_with_another(checked_run):
    env = make_env(CHECKED_POINT_MASS['env'])
    check = next(e for e in EpisodeStore(checked_run / 'checks') if e.policy_version == 3)
    offset, belief = replay_check(env, load_policy(checked_run, 3), check)
    assert offset.shape == (2,) and belief.shape == (2,)
    np.testing.assert_allclose(offset @ offset, check.costs[-1] - env.action_weight
                               * check.actions[-1] @ check.actions[-1], atol=1e-9)
    with pytest.raises(ValueError, match='policy 2 acts otherwise'):
        replay_check(env, load_policy(checked_run, 2), check)


def test_the_probe_reports_every_checked_policy_after_the_first(checked_run, capsys):
    reports = list(step_probe.probe_steps(checked_run, step_mults=(1.0, 4.0)))
    assert [r.version for r in reports] == [2, 3]
    env = make_env(CHECKED_POINT_MASS['env'])
    checks = list(EpisodeStore(checked_run / 'checks'))
    for r in reports:
        mine = [e for e in checks if e.policy_version == r.version]
        assert r.checks == 3 and r.stacked == sum(e.success for e in mine)
        np.testing.assert_allclose(
            r.checks_true, np.mean([replay_offsets(env, e)[-1] for e in mine], 0))
        assert [step.mult for step in r.further] == [1.0, 4.0]
        assert r.further[0].kl < r.further[1].kl  # four times the budget is used beyond one
        assert all(step.true is None and step.success is None for step in r.further)
        for offset in (r.rollouts_true, r.rollouts_read, r.belief, r.predicted,
                       r.read_rmse, *(step.predicted for step in r.further)):
            assert offset.shape == (2,) and np.all(np.isfinite(offset))
    assert step_probe.main([str(checked_run), '--policy', '3']) == 0
    out = capsys.readouterr().out
    assert 'policy 3: ' in out and 'policy 2: ' not in out
    assert "the controller's belief, read" in out and 'one more step of 10x the KL' in out


def test_further_steps_act_from_validation_seeds_as_policies_act_in_checks(checked_run, capsys):
    env = make_env(CHECKED_POINT_MASS['env'])
    checks = [e for e in EpisodeStore(checked_run / 'checks') if e.policy_version == 3]
    success, end = act_from_seeds(env, load_policy(checked_run, 3), 1, [e.seed for e in checks])
    assert success == np.mean([e.success for e in checks])
    np.testing.assert_allclose(end, np.mean([replay_offsets(env, e)[-1] for e in checks], 0))
    (report,) = step_probe.probe_steps(checked_run, [3], step_mults=(2.0,), episodes=2)
    (step,) = report.further
    assert step.success in (0.0, 0.5, 1.0) and step.true.shape == (2,)
    assert step_probe.main([str(checked_run), '--policy', '3', '--episodes', '2']) == 0
    assert 'the same, true' in capsys.readouterr().out


def test_the_probe_refuses_what_it_cannot_probe(checked_run, tmp_path, capsys):
    assert step_probe.main([str(checked_run), '--policy', '1']) == 2
    assert 'the first policy made by an LQR-FLM step' in capsys.readouterr().err
    assert step_probe.main([str(checked_run), '--policy', '9']) == 2
    assert 'model_0009' in capsys.readouterr().err
    assert step_probe.main([str(tmp_path)]) == 2
    assert 'not a run directory' in capsys.readouterr().err
    mpc = tmp_path / 'mpc'
    mpc.mkdir()
    settings = yaml.safe_load((checked_run / 'config.yaml').read_text())
    settings['loop']['method'] = 'mpc'
    (mpc / 'config.yaml').write_text(yaml.safe_dump(settings))
    assert step_probe.main([str(mpc)]) == 2
    assert 'a mpc run' in capsys.readouterr().err
    for bad in (['--step-mults', '0'], ['--threads', '0'], ['--episodes', '-1']):
        with pytest.raises(SystemExit):
            step_probe.main([str(checked_run), *bad])
