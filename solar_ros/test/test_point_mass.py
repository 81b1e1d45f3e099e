"""Tests of the image-observed 2-D point mass."""

import numpy as np
import pytest
from solar_ros.sim.environments import cost_residual_scale
from solar_ros.sim.point_mass import PointMassEnv, random_episodes


def disc_centre(image):
    """Return the (x, y) position of the disc in image units ([-1, 1]) from its brightness."""
    weight = image[..., 1].astype(float)
    size = image.shape[0]
    centres = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    x = (weight.sum(axis=0) * centres).sum() / weight.sum()
    y = -(weight.sum(axis=1) * centres).sum() / weight.sum()
    return np.array([x, y])


def test_velocity_dynamics_cost_and_info():
    env = PointMassEnv(horizon=3, noise_std=0.0, action_weight=0.5)
    obs = env.reset(seed=4)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    p0 = env.position.copy()
    assert 0.5 <= np.linalg.norm(p0) <= 0.9
    obs, cost, done, info = env.step(np.array([0.1, -0.05]))
    np.testing.assert_allclose(env.position, p0 + [0.1, -0.05])
    assert cost == pytest.approx(p0 @ p0 + 0.5 * 0.0125)
    assert not done and 'final_distance' not in info
    _, _, _, info = env.step(np.array([5.0, -5.0]))
    np.testing.assert_allclose(info['action'], [0.2, -0.2])
    _, _, done, info = env.step(np.zeros(2))
    assert done and info['final_distance'] == pytest.approx(np.linalg.norm(env.position))
    assert info['success'] == (info['final_distance'] < 0.1)
    with pytest.raises(RuntimeError):
        env.step(np.zeros(2))


def test_the_cost_is_the_square_of_the_offset():
    """cost_residual_scale is 1: c_t - w ||a_t||^2 = ||aim_offset before the step||^2."""
    assert cost_residual_scale({'name': 'point_mass'}) == 1.0
    env = PointMassEnv(horizon=3, noise_std=0.0, action_weight=0.5)
    env.reset(seed=2)
    for action in ([0.1, 0.0], [-0.05, 0.2]):
        offset = env.aim_offset()
        _, cost, _, _ = env.step(np.array(action))
        assert cost - 0.5 * float(np.dot(action, action)) == pytest.approx(offset @ offset)


def test_double_integrator_and_walls():
    env = PointMassEnv(dynamics='double_integrator', noise_std=0.0, damping=0.5)
    env.reset()
    p0 = env.position.copy()
    env.step(np.array([0.2, 0.0]))
    env.step(np.array([0.0, 0.0]))
    np.testing.assert_allclose(env.position, p0 + [0.2 + 0.1, 0.0])
    for _ in range(15):
        env.step(np.array([0.2, 0.2]))
    np.testing.assert_allclose(env.position, [1.0, 1.0])


def test_render_shows_disc_at_position_and_seeds_repeat():
    env = PointMassEnv()
    for seed in range(5):
        obs = env.reset(seed=seed)
        extent = env.extent
        np.testing.assert_allclose(disc_centre(obs) * extent, env.position, atol=0.02)
    a = random_episodes(env, 3, seed=7)
    b = random_episodes(env, 3, seed=7)
    c = random_episodes(env, 3, seed=8)
    np.testing.assert_array_equal(a['images'], b['images'])
    assert not np.array_equal(a['images'], c['images'])
    assert a['images'].shape == (3, 20, 64, 64, 3) and a['costs'].shape == (3, 20)
    # Anti-aliased rim: some pixels strictly between background and disc colour.
    green = a['images'][0, 0, ..., 1]
    assert np.any((green > 0) & (green < 255))


def test_bad_arguments():
    with pytest.raises(ValueError, match='dynamics'):
        PointMassEnv(dynamics='teleport')
    env = PointMassEnv()
    env.reset()
    with pytest.raises(ValueError, match='action'):
        env.step(np.array([np.nan, 0.0]))
