"""Kalman filter, smoother and sampler against the dense joint Gaussian posterior."""

import math

import numpy as np
import pytest
from solar_ros.core.lds import (frame_posteriors, GaussianPotentials, kalman_filter,
                                kalman_smoother, LDSParams, sample_backward)
from solar_ros.core.online_filter import OnlineKalmanFilter
import torch


def _problem(seed: int, batch: int = 2, horizon: int = 5, dx: int = 3, du: int = 2,
             full: bool = False):
    """Return a random time-varying LDS, potentials and actions."""
    g = torch.Generator().manual_seed(seed)

    def spd(*shape):
        A = torch.randn(*shape, generator=g, dtype=torch.float64)
        return A @ A.transpose(-1, -2) / shape[-1] + 0.3 * torch.eye(shape[-1],
                                                                     dtype=torch.float64)

    params = LDSParams(F=0.6 * torch.randn(horizon - 1, dx, dx + du, generator=g,
                                           dtype=torch.float64),
                       Q=spd(horizon - 1, dx, dx),
                       mu0=torch.randn(dx, generator=g, dtype=torch.float64),
                       P0=spd(dx, dx))
    J = spd(batch, horizon, dx, dx) if full else torch.rand(
        batch, horizon, dx, generator=g, dtype=torch.float64) + 0.2
    h = torch.randn(batch, horizon, dx, generator=g, dtype=torch.float64)
    actions = torch.randn(batch, horizon, du, generator=g, dtype=torch.float64)
    return params, GaussianPotentials(J=J, h=h), actions


def _dense(params: LDSParams, potentials: GaussianPotentials, actions: torch.Tensor, b: int):
    """Return the posterior mean (T*dx), covariance and log Z of sequence b, densely."""
    horizon, dx = potentials.h.shape[1], potentials.h.shape[2]
    # Prior joint of s_{0:T-1}: s = mean + L w with w the stacked noises.
    means = [params.mu0]
    for t in range(horizon - 1):
        A, B = params.F[t, :, :dx], params.F[t, :, dx:]
        means.append(A @ means[-1] + B @ actions[b, t])
    mean = torch.cat(means)
    n = horizon * dx
    transfer = torch.zeros(n, n, dtype=torch.float64)
    noise_cov = torch.block_diag(params.P0, *params.Q)
    for t in range(horizon):
        for k in range(t + 1):
            block = torch.eye(dx, dtype=torch.float64)
            for j in range(k, t):
                block = params.F[j, :, :dx] @ block
            transfer[t * dx:(t + 1) * dx, k * dx:(k + 1) * dx] = block
    prior_cov = transfer @ noise_cov @ transfer.T
    J = torch.block_diag(*potentials.full_precision()[b])
    h = potentials.h[b].reshape(-1)
    prior_prec = torch.linalg.inv(prior_cov)
    post_prec = prior_prec + J
    post_cov = torch.linalg.inv(post_prec)
    post_h = prior_prec @ mean + h
    post_mean = post_cov @ post_h
    log_z = 0.5 * (post_h @ post_mean - mean @ prior_prec @ mean
                   - torch.logdet(prior_cov) - torch.logdet(post_prec))
    return post_mean, post_cov, log_z


@pytest.mark.parametrize('full', [False, True])
def test_smoother_and_log_normalizer_equal_the_dense_posterior(full):
    params, potentials, actions = _problem(seed=1 + full, full=full)
    result = kalman_smoother(params, potentials, actions)
    horizon, dx = 5, 3
    for b in range(2):
        mean, cov, log_z = _dense(params, potentials, actions, b)
        torch.testing.assert_close(result.means[b].reshape(-1), mean, rtol=0, atol=1e-8)
        for t in range(horizon):
            block = cov[t * dx:(t + 1) * dx, t * dx:(t + 1) * dx]
            torch.testing.assert_close(result.covs[b, t], block, rtol=0, atol=1e-8)
        for t in range(horizon - 1):
            block = cov[(t + 1) * dx:(t + 2) * dx, t * dx:(t + 1) * dx]
            torch.testing.assert_close(result.cross_covs[b, t], block, rtol=0, atol=1e-8)
        assert float(result.log_normalizer[b]) == pytest.approx(float(log_z), abs=1e-8)


def test_filter_marginals_equal_the_dense_posterior_of_each_prefix():
    params, potentials, actions = _problem(seed=3)
    filtered = kalman_filter(params, potentials, actions)
    dx = 3
    for t in range(1, 6):
        prefix = LDSParams(params.F[:t - 1], params.Q[:t - 1], params.mu0, params.P0)
        cut = GaussianPotentials(potentials.J[:, :t], potentials.h[:, :t])
        mean, cov, _ = _dense(prefix, cut, actions[:, :t], 0)
        torch.testing.assert_close(filtered.means[0, t - 1], mean[-dx:], rtol=0, atol=1e-8)
        torch.testing.assert_close(filtered.covs[0, t - 1], cov[-dx:, -dx:], rtol=0, atol=1e-8)


def test_expected_statistics_are_the_pairwise_moments():
    params, potentials, actions = _problem(seed=4, batch=3)
    result = kalman_smoother(params, potentials, actions)
    t, dx = 2, 3
    xx = torch.zeros(5, 5, dtype=torch.float64)
    yx = torch.zeros(3, 5, dtype=torch.float64)
    for b in range(3):
        mean, cov, _ = _dense(params, potentials, actions, b)
        s, s_next = mean[t * dx:(t + 1) * dx], mean[(t + 1) * dx:(t + 2) * dx]
        x = torch.cat([s, actions[b, t]])
        Exx = torch.outer(x, x)
        Exx[:dx, :dx] += cov[t * dx:(t + 1) * dx, t * dx:(t + 1) * dx]
        xx += Exx
        Eyx = torch.outer(s_next, x)
        Eyx[:, :dx] += cov[(t + 1) * dx:(t + 2) * dx, t * dx:(t + 1) * dx]
        yx += Eyx
    torch.testing.assert_close(result.stats.xx[t], xx, rtol=0, atol=1e-8)
    torch.testing.assert_close(result.stats.yx[t], yx, rtol=0, atol=1e-8)
    assert float(result.stats.count[t]) == 3.0


def test_backward_samples_match_smoothed_moments():
    params, potentials, actions = _problem(seed=6, batch=1)
    smoothed = kalman_smoother(params, potentials, actions)
    samples = sample_backward(params, potentials, actions, 40_000,
                              torch.Generator().manual_seed(0))[:, 0]
    torch.testing.assert_close(samples.mean(0), smoothed.means[0], rtol=0, atol=0.02)
    centred = samples - samples.mean(0)
    cov = torch.einsum('nti,ntj->tij', centred, centred) / samples.shape[0]
    torch.testing.assert_close(cov, smoothed.covs[0], rtol=0, atol=0.03)
    pair = torch.einsum('ni,nj->ij', centred[:, 2], centred[:, 1]) / samples.shape[0]
    torch.testing.assert_close(pair, smoothed.cross_covs[0, 1], rtol=0, atol=0.03)


def test_gradients_through_samples_pass_gradcheck():
    params, potentials, actions = _problem(seed=7, batch=1, horizon=3, dx=2, du=1)

    def sampled(J, h):
        generator = torch.Generator().manual_seed(11)
        return sample_backward(params, GaussianPotentials(J, h), actions, 2, generator)

    J = potentials.J.clone().requires_grad_(True)
    h = potentials.h.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(sampled, (J, h), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize('change, message', [
    ('actions', r'actions: expected shape \(2, 5, 2\)'),
    ('nan', 'potentials.h: contains NaN'),
    ('horizon', r'params.F: expected'),
])
def test_bad_inputs_are_named(change, message):
    params, potentials, actions = _problem(seed=8)
    if change == 'actions':
        actions = actions[..., :1]
    elif change == 'nan':
        potentials.h[0, 1, 0] = math.nan
    else:
        params = LDSParams(params.F[:-1], params.Q[:-1], params.mu0, params.P0)
    with pytest.raises(ValueError, match=message):
        kalman_smoother(params, potentials, actions)


def test_frame_posteriors_read_each_potential_alone():
    gen = torch.Generator().manual_seed(5)
    J = 0.5 + torch.rand(2, 4, 3, dtype=torch.float64, generator=gen)
    h = torch.randn(2, 4, 3, dtype=torch.float64, generator=gen)
    actions = torch.randn(2, 4, 1, dtype=torch.float64, generator=gen)
    result = frame_posteriors(GaussianPotentials(J=J, h=h), actions)
    torch.testing.assert_close(result.means, h / J)
    torch.testing.assert_close(result.covs[1, 2], torch.diag(1.0 / J[1, 2]))
    t = 1  # x = [s_t; a_t], y = s_{t+1}, frames independent: no cross-covariance
    x = torch.cat([h[:, t] / J[:, t], actions[:, t]], 1)
    y = h[:, t + 1] / J[:, t + 1]
    xx = x.T @ x
    xx[:3, :3] += torch.diag((1.0 / J[:, t]).sum(0))
    torch.testing.assert_close(result.stats.xx[t], xx)
    torch.testing.assert_close(result.stats.yx[t], y.T @ x)
    yy = y.T @ y + torch.diag((1.0 / J[:, t + 1]).sum(0))
    torch.testing.assert_close(result.stats.yy[t], yy)
    full = frame_posteriors(GaussianPotentials(J=torch.diag_embed(J), h=h), actions)
    torch.testing.assert_close(full.means, result.means)
    torch.testing.assert_close(full.stats.xx, result.stats.xx)
    with pytest.raises(ValueError, match=r'expected shape \(2, 4, 3\) or'):
        frame_posteriors(GaussianPotentials(J=J[..., :2], h=h), actions)


def test_frame_posteriors_of_full_precisions_are_their_gaussians():
    gen = torch.Generator().manual_seed(6)
    factor = torch.randn(2, 4, 3, 3, dtype=torch.float64, generator=gen)
    J = factor @ factor.transpose(-1, -2) + 0.5 * torch.eye(3, dtype=torch.float64)
    h = torch.randn(2, 4, 3, dtype=torch.float64, generator=gen)
    result = frame_posteriors(GaussianPotentials(J=J, h=h),
                              torch.zeros(2, 4, 1, dtype=torch.float64))
    torch.testing.assert_close(result.covs, torch.linalg.inv(J))
    torch.testing.assert_close(result.means, torch.linalg.solve(J, h.unsqueeze(-1)).squeeze(-1))


def test_online_filter_reproduces_the_batch_filter_step_by_step():
    params, potentials, actions = _problem(seed=5, batch=1)
    batch = kalman_filter(params, potentials, actions)
    online = OnlineKalmanFilter(3)
    online.reset(params.mu0.numpy(), params.P0.numpy())
    for t in range(5):
        mean, cov = online.update(potentials.J[0, t].numpy(), potentials.h[0, t])
        np.testing.assert_allclose(mean, batch.means[0, t].numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(cov, batch.covs[0, t].numpy(), rtol=0, atol=1e-10)
        if t < 4:
            online.predict(params.F[t], params.Q[t], actions[0, t])
    assert online.log_normalizer == pytest.approx(float(batch.log_normalizer[0]), abs=1e-10)


def test_online_filter_rejects_wrong_sizes():
    online = OnlineKalmanFilter(3)
    online.reset(np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match=r'h: expected shape \(3,\)'):
        online.update(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match='J: contains NaN'):
        online.update(np.array([1.0, math.nan, 1.0]), np.ones(3))


def test_online_filter_two_updates_multiply_and_a_failed_predict_changes_nothing():
    params, potentials, actions = _problem(seed=9, batch=1)
    J, h = potentials.J[0].numpy(), potentials.h[0].numpy()
    twice, once = OnlineKalmanFilter(3), OnlineKalmanFilter(3)
    for online in (twice, once):
        online.reset(params.mu0, params.P0)
    twice.update(J[0], h[0])
    twice.update(J[1], h[1])  # two frames' evidence on one step: the product of both
    once.update(J[0] + J[1], h[0] + h[1])
    np.testing.assert_allclose(twice.mean, once.mean, atol=1e-12)
    np.testing.assert_allclose(twice.cov, once.cov, atol=1e-12)
    for online in (twice, once):  # and predicting twice is two steps of the dynamics
        online.predict(params.F[0], params.Q[0], actions[0, 0])
        online.predict(params.F[1], params.Q[1], actions[0, 1])
    np.testing.assert_allclose(twice.mean, once.mean, atol=1e-12)
    mean, cov = twice.mean.copy(), twice.cov.copy()
    with pytest.raises(np.linalg.LinAlgError):  # a process noise that is not a covariance
        twice.predict(params.F[2], -np.eye(3), actions[0, 2])
    np.testing.assert_array_equal(twice.mean, mean)
    np.testing.assert_array_equal(twice.cov, cov)
    twice.update(J[2], h[2])
    once.update(J[2], h[2])
    np.testing.assert_allclose(twice.mean, once.mean, atol=1e-12)
