"""The linear probe of the held block's position: known answers and a real PyBullet run."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from solar_ros.core.model import SolarModel
from solar_ros.core.model_config import ModelConfig
from solar_ros.core.online import episode_noise
from solar_ros.learn.config import RunConfig
from solar_ros.learn.evaluate import load_gains, load_policy
from solar_ros.learn.pixel_probe import encoder_network, pixel_regression
from solar_ros.learn.probe import (
    collect, linear_probe, load_or_collect, main, NEAR_GOAL_FRAMES, probe_encoder, probe_model,
    probe_rollouts, probe_true_state, ProbeData, score, smoothed_means, target_line,
    target_positions)
from solar_ros.learn.rollout import run_episode
from solar_ros.learn.run_dir import RunDir
from solar_ros.sim.environments import make_env
from solar_ros.sim.point_mass import PointMassEnv
from solar_ros.sim.sawyer_config import SawyerStackConfig
from solar_ros.sim.sawyer_env import SawyerStackEnv


def test_linear_targets_score_one_and_noise_scores_about_zero():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(10, 20, 4))
    weights = rng.normal(size=(4, 3))
    exact = linear_probe(features, features @ weights + 0.5)
    np.testing.assert_allclose(exact.r2, 1.0, atol=1e-9)
    np.testing.assert_allclose(exact.rmse, 0.0, atol=1e-9)
    features = rng.normal(size=(40, 50, 4))
    noise = linear_probe(features, rng.normal(size=(40, 50, 3)))
    assert np.all(noise.r2 < 0.1)
    np.testing.assert_allclose(noise.rmse, 1.0, atol=0.1)


def test_probe_scores_only_the_held_out_episodes():
    features = np.zeros((4, 5, 1))
    features[:, :, 0] = np.arange(5)
    targets = np.repeat(features, 3, axis=-1)
    targets[2:] += 1.0  # the held-out half is shifted: fitted on the first half, it misses
    scores = linear_probe(features, targets)
    np.testing.assert_allclose(scores.rmse, 1.0)


def test_collect_records_the_block_offset_and_true_state_on_the_arm(tmp_path):
    with SawyerStackEnv(SawyerStackConfig(horizon=8, image_size=16)) as env:
        data = collect(env, task=1, episodes=12, std=0.3)
        start = env.reset(1, seed=700_000_000)
        offset = env.held_block_pose()[:3] - env.goal_position()
    assert data.images.shape == (12, 8, 16, 16, 3)
    assert data.actions.shape == (12, 8, 7)
    assert data.true_states.shape == (12, 8, 9)
    np.testing.assert_array_equal(data.images[0, 0], start)
    np.testing.assert_allclose(data.offsets[0, 0], offset)
    # task 1 starts the block about (-2, -6, +8) cm from the goal
    np.testing.assert_allclose(data.offsets[:, 0].mean(0), [-0.02, -0.06, 0.08], atol=0.02)
    assert np.abs(data.actions).max() > 0.05
    data.save(tmp_path / 'probe.npz')
    again = ProbeData.load(tmp_path / 'probe.npz')
    np.testing.assert_array_equal(again.offsets, data.offsets)
    scores = probe_true_state(data)  # the offset is nearly linear in the joint angles
    assert np.all(scores.r2 > 0.8), scores
    model = SolarModel(ModelConfig(latent_dim=3, action_dim=7, horizon=8, image_size=16,
                                   keypoints=4))
    assert probe_model(model, data).r2.shape == (3,)
    # each reset moves the target block by up to target_position_noise (1 cm) in x and y
    targets = target_positions(data)
    np.testing.assert_array_equal(targets, data.true_states[..., 7:9])
    np.testing.assert_allclose(targets[:, 0], targets[:, -1])  # it stands still
    assert np.all(np.abs(targets[:, 0] - [0.65, 0.0]) <= 0.01) and np.all(targets.std(0) > 0.002)
    assert linear_probe(smoothed_means(model, data), targets).r2.shape == (2,)
    assert probe_encoder(model, data, last=3).rmse.shape == (3,)


def test_a_run_keeps_its_probe_episodes_and_renders_other_counts_afresh(tmp_path):
    config = RunConfig.from_dict({'env': {'name': 'sawyer_stack', 'horizon': 3, 'image_size': 16},
                                  'model': {'latent_dim': 2, 'channels': 4}})
    with make_env(config.env) as env:
        kept = load_or_collect(tmp_path, env, config, episodes=2)  # rendered and saved
        assert len(load_or_collect(tmp_path, env, config, episodes=2).images) == 2
        more = load_or_collect(tmp_path, env, config, episodes=4)  # rendered, not saved
    np.testing.assert_array_equal(more.images[:2], kept.images)  # the same reset seeds first
    assert len(more.images) == 4
    assert len(ProbeData.load(RunDir(tmp_path).probe).images) == 2


def test_probe_data_needs_two_episodes_and_a_probeable_env(tmp_path):
    with pytest.raises(ValueError, match='2 episodes'):
        ProbeData(np.zeros((1, 2, 8, 8, 3), np.uint8), np.zeros((1, 2, 7)),
                  np.zeros((1, 2, 3)), np.zeros((1, 2, 9)))
    with pytest.raises(ValueError, match='block'):
        collect(PointMassEnv(horizon=3), task=1, episodes=2, std=0.1)
    assert main([str(tmp_path)]) == 2


def test_near_goal_probe_runs_the_policy_on_its_last_frames(capsys):
    policy_dir = Path(__file__).resolve().parents[1] / 'pretrained' / 'sawyer_task1'
    config, _, _ = load_gains(policy_dir)
    agent = load_policy(policy_dir)
    with make_env(config.env) as env:
        data = collect(env, task=1, episodes=4, std=0.0, agent=agent)
        episodes = []
        for index in range(4):  # as collect runs the policy, from the same seeds
            seed = 700_000_000 + index
            episodes.append(run_episode(env, agent, 1, seed,
                                        episode_noise(env.horizon, env.action_dim, seed)))
        aim_above_goal = np.tile(env.aim_position() - env.goal_position(), (env.horizon, 1))
    # a via-point: the first approach_steps steps aim approach_clearance higher still
    aim_above_goal[:env.config.approach_steps, 2] += env.config.approach_clearance
    for index, episode in enumerate(episodes):
        np.testing.assert_allclose(data.actions[index], episode.actions)
        np.testing.assert_array_equal(data.images[index], episode.images[:-1])
        # the episode records the true offset from the aim point before each action
        np.testing.assert_allclose(episode.aim_offsets, data.offsets[index] - aim_above_goal)
    # the policy brings the block within a few centimetres of the goal at the end
    assert np.linalg.norm(data.offsets[:, -1], axis=-1).max() < 0.05
    assert np.linalg.norm(data.offsets[:, 0], axis=-1).min() > 0.05
    # the learner's near-goal probe of recorded rollouts scores what the command's does:
    # offsets from the aim and from the goal differ by a constant, which the intercept takes
    logged = probe_rollouts(agent.model, episodes)
    np.testing.assert_allclose(logged.rmse, probe_model(agent.model, data, NEAR_GOAL_FRAMES).rmse,
                               rtol=1e-6)
    assert np.all(logged.rmse < 0.05), logged
    assert probe_rollouts(agent.model, episodes[:1] + [dataclasses.replace(
        episodes[1], aim_offsets=None)]) is None  # fewer than 2 episodes with the truth
    assert main([str(policy_dir), '--near-goal', '--episodes', '4', '--pixels', '2',
                 '--epochs', '1']) == 0
    out = capsys.readouterr().out
    assert f'last {NEAR_GOAL_FRAMES} frames of 4 episodes' in out
    rows = [line for line in out.splitlines() if line.startswith(
        ('latent', 'encoders', 'CNN from the frames (2 episodes)',
         "the model's encoder design", 'true state'))]
    assert len(rows) == 5 and all(len(row.split(')')[-1].split()) == 6 for row in rows)
    assert 'target block x, y from the latent (smoothed means): R^2 ' in out


def test_the_target_line_compares_the_error_with_the_targets_spread():
    true_states = np.zeros((4, 3, 9))
    true_states[:, :, 7] = np.array([0.0, 0.0, 0.01, 0.03])[:, None]  # scored: the last two
    data = ProbeData(np.zeros((4, 3, 8, 8, 3), np.uint8), np.zeros((4, 3, 7)),
                     np.zeros((4, 3, 3)), true_states)
    scores = score(np.zeros((2, 2)), np.full((2, 2), 0.005))
    line = target_line(scores, data, coefficients=1)
    assert line.endswith('RMSE 0.50 0.50 cm; std of the target x, y 1.00 0.00 cm;'
                         ' fitted on 2 placements'), line
    assert target_line(scores, data, coefficients=2).endswith(
        'fitted on 2 placements, too few for 2 coefficients: use --episodes 8')


def _square_frames(offsets: np.ndarray) -> np.ndarray:
    """(N, T, 16, 16, 3) frames with a white 3x3 square where offsets (N, T, 3) put it."""
    frames = np.zeros(offsets.shape[:2] + (16, 16, 3), np.uint8)
    rows = np.rint(6.5 + 250 * offsets[..., 0]).astype(int)  # 2 cm -> 5 pixels
    cols = np.rint(6.5 + 250 * offsets[..., 1]).astype(int)
    for index in np.ndindex(*offsets.shape[:2]):
        r, c = rows[index], cols[index]
        frames[index][r:r + 3, c:c + 3] = 255
    return frames


def test_pixel_regression_reads_what_the_frames_show_and_only_that():
    rng = np.random.default_rng(0)
    offsets = rng.uniform(-0.02, 0.02, size=(48, 6, 3))
    offsets[..., 2] = offsets[..., 0] + offsets[..., 1]
    frames = _square_frames(offsets)
    train, test = slice(0, 40), slice(40, None)
    predicted = pixel_regression(frames[train], offsets[train], frames[test], epochs=40)
    seen = score(offsets[test].reshape(-1, 3), predicted)
    assert np.all(seen.r2 > 0.8), seen
    hidden = rng.uniform(-0.02, 0.02, size=offsets.shape)  # nothing in the frames shows it
    predicted = pixel_regression(frames[train], hidden[train], frames[test], epochs=40)
    assert np.all(score(hidden[test].reshape(-1, 3), predicted).r2 < 0.3)
    with pytest.raises(ValueError, match='differ'):
        pixel_regression(frames[train], offsets[train], frames[test, :, :8], epochs=1)


def test_encoder_design_reads_the_square_through_a_linear_readout():
    rng = np.random.default_rng(1)
    offsets = rng.uniform(-0.02, 0.02, size=(48, 6, 3))
    offsets[..., 2] = offsets[..., 0] - offsets[..., 1]
    square = _square_frames(offsets).repeat(2, axis=2).repeat(2, axis=3)  # 32x32 frames
    frames = np.concatenate([square] * 2, axis=-1)  # two views alike
    config = ModelConfig(latent_dim=4, action_dim=1, horizon=2, image_size=32, views=2,
                         channels=8, hidden=32, keypoints=4)
    network = encoder_network(config)
    assert len(network.encoders) == 2 and network.readout.in_features == 8
    train, test = slice(0, 40), slice(40, None)
    predicted = pixel_regression(frames[train], offsets[train], frames[test], epochs=120,
                                 build=lambda: encoder_network(config))
    seen = score(offsets[test].reshape(-1, 3), predicted)
    assert np.all(seen.r2 > 0.8), seen
