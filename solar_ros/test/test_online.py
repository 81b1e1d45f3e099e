"""OnlineStep: encode, filter and act in closed form, parts swapped only at episode starts."""

import numpy as np
import pytest
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.lds import LDSParams
from solar_ros.core.model import SolarModel
from solar_ros.core.model_config import ModelConfig
from solar_ros.core.networks import KeypointEncoderStack
from solar_ros.core.online import episode_noise, OnlineStep
from solar_ros.core.policy import LinearGaussianPolicy
import torch

T, DX, DU, SIZE = 5, 3, 2, 16


def _model(seed: int = 0, precision: str = 'diagonal') -> SolarModel:
    model = SolarModel(ModelConfig(latent_dim=DX, action_dim=DU, horizon=T, image_size=SIZE,
                                   channels=4, hidden=8, seed=seed, precision=precision))
    if precision == 'full':  # off-diagonal precisions from the start (the head starts at 0)
        with torch.no_grad():
            model.encoder.lower_head.bias.copy_(torch.tensor([0.8, -0.5, 0.3]))
    return model


def _gains(seed: int, version: int) -> TimeVaryingGains:
    rng = np.random.default_rng(seed)
    F = np.concatenate([0.9 * np.eye(DX) + 0.1 * rng.standard_normal((T - 1, DX, DX)),
                        rng.standard_normal((T - 1, DX, DU))], axis=-1)
    dynamics = LDSParams(F=torch.tensor(F), Q=torch.tensor(0.2 * np.eye(DX)).expand(
        T - 1, DX, DX).clone(), mu0=torch.tensor(rng.standard_normal(DX)),
        P0=torch.eye(DX, dtype=torch.float64))
    cov = 0.09 * torch.eye(DU, dtype=torch.float64).expand(T, DU, DU)
    policy = LinearGaussianPolicy.from_cov(K=torch.tensor(rng.standard_normal((T, DU, DX))),
                                           k=torch.tensor(rng.standard_normal((T, DU))),
                                           cov=cov.clone())
    return TimeVaryingGains(policy, dynamics, version, version)


def _frames(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (T, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.mark.parametrize('precision', ['diagonal', 'full'])
def test_step_is_the_closed_form_kalman_filter_and_policy(precision):
    model, gains = _model(precision=precision), _gains(1, 4)
    online = OnlineStep(model, gains, noise_scale=0.5)
    noise = episode_noise(T, DU, seed=11)
    online.start(noise)
    d, policy = gains.dynamics, gains.policy
    m, P = d.mu0.numpy(), d.P0.numpy()
    for t, frame in enumerate(_frames(2)):
        with torch.no_grad():
            potential = model.encode(torch.as_tensor(frame)[None, None])
        J, h = potential.J[0, 0].numpy(), potential.h[0, 0].numpy()
        assert J.shape == ((DX,) if precision == 'diagonal' else (DX, DX))
        if precision == 'full':
            assert abs(J[1, 0]) > 0.1  # a full matrix, not a diagonal one
        P_post = np.linalg.inv(np.linalg.inv(P) + (np.diag(J) if J.ndim == 1 else J))
        m_post = P_post @ (np.linalg.solve(P, m) + h)
        expected = (policy.K[t].numpy() @ m_post + policy.k[t].numpy()
                    + 0.5 * policy.chol[t].numpy() @ noise[t])
        action = online.step(frame)
        np.testing.assert_allclose(action, expected, atol=1e-9)
        assert online.predict(action) == (t + 1 < T)
        if t + 1 < T:
            F = d.F[t].numpy()
            m = F @ np.concatenate([m_post, action])
            P = F[:, :DX] @ P_post @ F[:, :DX].T + d.Q[t].numpy()
    assert online.t == T - 1


def test_filter_update_and_predict_match_the_information_form():
    gains = _gains(3, 1)
    online = OnlineStep(gains=gains)
    online.start()
    d = gains.dynamics
    m, P = d.mu0.numpy(), d.P0.numpy()
    rng = np.random.default_rng(4)
    for t in range(T):
        J, x = rng.uniform(0.5, 3.0, DX), rng.standard_normal(DX)
        mean, cov = online.update(J, J * x)
        P_post = np.linalg.inv(np.linalg.inv(P) + np.diag(J))
        m_post = P_post @ (np.linalg.solve(P, m) + J * x)
        np.testing.assert_allclose(cov, P_post, atol=1e-10)
        np.testing.assert_allclose(mean, m_post, atol=1e-10)
        action = rng.standard_normal(DU)
        if t + 1 < T:
            assert online.predict(action)
            F = d.F[t].numpy()
            m = F @ np.concatenate([m_post, action])
            P = F[:, :DX] @ P_post @ F[:, :DX].T + d.Q[t].numpy()
        else:
            assert not online.predict(action)


def test_new_parts_are_adopted_only_at_the_next_start():
    first, second = _gains(5, 1), _gains(6, 2)
    online = OnlineStep(gains=first)
    assert online.gains is None and online.pending
    online.start()
    online.offer(gains=second)
    state = np.ones(DX)
    np.testing.assert_allclose(online.act(state), first.policy.act(0, state, np.zeros(DU)))
    online.start()
    assert online.gains is second and not online.pending
    np.testing.assert_allclose(online.act(state), second.policy.act(0, state, np.zeros(DU)))


def test_stages_without_their_part_and_bad_noise_are_errors():
    online = OnlineStep()
    with pytest.raises(RuntimeError, match='no model'):
        online.encode(_frames(0)[0])
    with pytest.raises(RuntimeError, match='no gains'):
        online.act(np.zeros(DX))
    with pytest.raises(ValueError, match='noise: expected shape'):
        OnlineStep(gains=_gains(0, 0)).start(np.zeros((T + 1, DU)))
    with pytest.raises(ValueError, match='noise_scale'):
        OnlineStep(noise_scale=-1.0)
    wrong_dim = OnlineStep(_model(), _gains(0, 0))
    wrong_dim.offer(model=SolarModel(ModelConfig(latent_dim=DX + 1, action_dim=DU, horizon=T,
                                                 image_size=SIZE, channels=4, hidden=8)))
    with pytest.raises(ValueError, match='dx='):
        wrong_dim.start()


def test_episode_noise_is_a_function_of_the_seed():
    np.testing.assert_array_equal(episode_noise(T, DU, 7), episode_noise(T, DU, 7))
    assert not np.allclose(episode_noise(T, DU, 7), episode_noise(T, DU, 8))
    smooth = episode_noise(30, DU, 7, smooth=True)
    white = episode_noise(30, DU, 7)
    lag1 = [np.corrcoef(n[:-1, 0], n[1:, 0])[0, 1] for n in (smooth, white)]
    assert lag1[0] > 0.5 > lag1[1]


@pytest.mark.parametrize('views, branch, own', [(1, 0, ()), (2, 0, ()), (2, 6, ()),
                                                (2, 0, (0, 1))])
def test_keypoint_views_in_one_pass_equal_the_model_encoding(views, branch, own):
    """All views, with or without a branch or own dimensions, encode in one pass as the model."""
    model = SolarModel(ModelConfig(latent_dim=DX, action_dim=DU, horizon=T, image_size=SIZE,
                                   channels=4, keypoints=5, dense_branch=branch, views=views,
                                   view_own_dims=own, seed=3))
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():  # the std heads start at zero: give every view its own stds
        for encoder in model.view_encoders():
            encoder.std_head.weight.normal_(generator=generator)
            encoder.mean_head.bias.normal_(generator=generator)
            if branch:  # and the branch, which starts at zero, its own share of the mean
                encoder.branch_head.weight.normal_(generator=generator)
    assert KeypointEncoderStack.can_stack(model.view_encoders())
    online = OnlineStep(model, _gains(0, 1))
    online.start()
    frames = torch.randint(0, 256, (4, SIZE, SIZE, 3 * views), dtype=torch.uint8,
                           generator=generator)
    with torch.no_grad():
        expected = model.encode(frames[None])
    for t, frame in enumerate(frames.numpy()):
        J, h = online.encode(frame)
        np.testing.assert_allclose(J, expected.J[0, t].numpy(), rtol=1e-5)
        np.testing.assert_allclose(h, expected.h[0, t].numpy(), rtol=1e-5, atol=1e-6)
    assert len(set(np.round(expected.J[0, :, 0].numpy(), 6))) == len(frames)  # not constant
