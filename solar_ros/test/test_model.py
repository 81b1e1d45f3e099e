"""SolarModel on image sequences of the 2-D point mass: learning, prediction, checkpoints, checks.

One model is trained once per module (a few hundred updates, single thread) and shared.
"""

import math

import numpy as np
import pytest
from solar_ros.core import model as model_module
from solar_ros.core.checkpoint import CheckpointError
from solar_ros.core.lds import GaussianPotentials, LDSParams
from solar_ros.core.model import SolarModel
from solar_ros.core.model_config import ModelConfig
from solar_ros.core.networks import (bernoulli_log_likelihood, Encoder, LogCostHead,
                                     QuadraticCostHead, ResidualHead)
from solar_ros.core.sequences import EpisodeBatch, ModelInputError
from solar_ros.sim.point_mass import PointMassEnv, random_episodes
import torch

pytestmark = pytest.mark.slow  # seconds to minutes: deselect with -m "not slow"

HORIZON = 12
OBSERVED = 3
UPDATES = 300


def make_batch(num, seed):
    """Return an EpisodeBatch of random-action point-mass episodes."""
    env = PointMassEnv(horizon=HORIZON)
    data = random_episodes(env, num, action_std=0.15, seed=seed)
    return EpisodeBatch(data['images'], data['actions'], data['costs'])


def make_config(**changes):
    """Return the test configuration (small latent, short horizon)."""
    values = {'latent_dim': 4, 'action_dim': 2, 'horizon': HORIZON, 'batch_size': 8,
              'seed': 3, 'action_cost_weight': 0.01}
    values.update(changes)
    return ModelConfig(**values)


@pytest.fixture(scope='module')
def trained():
    """Train one model; return it with its data and the held-out ELBO before training."""
    torch.set_num_threads(1)
    train, held_out = make_batch(48, seed=0), make_batch(16, seed=1000)
    model = SolarModel(make_config())
    before = model.elbo(held_out, num_data=len(train))
    history = model.fit(train, UPDATES)
    after = model.elbo(held_out, num_data=len(train))
    return {'model': model, 'train': train, 'held_out': held_out, 'before': before,
            'after': after, 'history': history}


def test_training_raises_held_out_elbo(trained):
    before, after = trained['before'], trained['after']
    print(f"held-out ELBO {before['elbo']:.1f} -> {after['elbo']:.1f}, "
          f"recon {before['recon']:.1f} -> {after['recon']:.1f}")
    assert np.isfinite(after['elbo'])
    assert after['elbo'] > before['elbo'] + 0.5 * abs(before['elbo'])
    assert after['local_kl'] >= 0.0 and after['global_kl'] >= 0.0
    assert trained['model'].num_updates == UPDATES
    assert len(trained['history']) == UPDATES


def test_learned_dynamics_predict_better_than_no_dynamics(trained):
    model, held_out = trained['model'], trained['held_out']
    target = held_out.images.float() / 255.0
    learned = model.predict(held_out.images, held_out.actions, OBSERVED)
    mean = model.dynamics()
    dx = model.config.latent_dim
    hold = torch.zeros_like(mean.F)
    hold[:, :, :dx] = torch.eye(dx, dtype=hold.dtype)
    static = model.predict(held_out.images, held_out.actions, OBSERVED,
                           LDSParams(F=hold, Q=mean.Q, mu0=mean.mu0, P0=mean.P0))
    future = slice(OBSERVED + 2, HORIZON)
    error_learned = ((learned[:, future] - target[:, future]) ** 2).mean().item()
    error_static = ((static[:, future] - target[:, future]) ** 2).mean().item()
    print(f'prediction MSE {OBSERVED + 2}..{HORIZON - 1} steps ahead of frame '
          f'{OBSERVED - 1}: learned {error_learned:.5f}, no dynamics {error_static:.5f}')
    assert error_learned < 0.95 * error_static


def test_dynamics_and_cost_params_shapes(trained):
    model = trained['model']
    params = model.dynamics()
    assert params.F.shape == (HORIZON - 1, 4, 6) and params.Q.shape == (HORIZON - 1, 4, 4)
    assert params.F.dtype == torch.float64
    assert torch.all(torch.linalg.eigvalsh(params.Q) > 0)
    C, c, const = model.cost_params()
    assert C.shape == (6, 6) and c.shape == (6,) and const.shape == ()
    assert torch.all(torch.linalg.eigvalsh(C) >= -1e-9)
    torch.testing.assert_close(C[4:, 4:], 0.02 * torch.eye(2, dtype=torch.float64))
    smoothed = model.infer(trained['held_out'].images, trained['held_out'].actions)
    assert smoothed.means.shape == (16, HORIZON, 4)


def test_checkpoint_round_trip_and_resume(trained, tmp_path):
    model, train = trained['model'], trained['train']
    path = tmp_path / 'model.ckpt'
    model.save(path)
    loaded = SolarModel.load(path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    for name in ('M', 'V', 'S', 'nu'):
        assert torch.equal(getattr(model.q, name), getattr(loaded.q, name))
    assert loaded.config == model.config and loaded.num_updates == model.num_updates
    small = train.select(range(8))
    original = model.fit(small, 2)
    resumed = loaded.fit(small, 2)
    assert original == resumed
    torch.testing.assert_close(model.q.M, loaded.q.M, rtol=0, atol=0)


def test_checkpoint_version_mismatch_and_corruption(tmp_path, monkeypatch):
    model = SolarModel(make_config())
    path = tmp_path / 'model.ckpt'
    model.save(path)
    monkeypatch.setattr(model_module, 'CHECKPOINT_VERSION', 2)
    with pytest.raises(CheckpointError, match='version 1, this code reads version 2'):
        SolarModel.load(path)
    monkeypatch.undo()
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match='corrupt'):
        SolarModel.load(path)


def test_same_seed_same_training():
    data = make_batch(8, seed=5)
    first, second = SolarModel(make_config()), SolarModel(make_config())
    assert first.fit(data, 2) == second.fit(data, 2)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key


def test_input_errors():
    model = SolarModel(make_config())
    data = make_batch(2, seed=7)
    images, actions = data.images, data.actions
    with pytest.raises(ModelInputError, match='images must have shape'):
        model.infer(images[:, :, :32], actions)
    with pytest.raises(ModelInputError, match=r'must lie in \[0, 1\]'):
        model.infer(images.float(), actions)
    nan_images = images.float() / 255.0
    nan_images[0, 0, 0, 0, 0] = float('nan')
    with pytest.raises(ModelInputError, match='non-finite'):
        model.infer(nan_images, actions)
    bad_actions = actions.clone()
    bad_actions[1, 2, 0] = float('inf')
    with pytest.raises(ModelInputError, match='actions contain non-finite'):
        model.infer(images, bad_actions)
    with pytest.raises(ModelInputError, match=r'\(horizon, image size, views, action dim\)'):
        model.infer(images[:, :-1], actions[:, :-1])
    with pytest.raises(ModelInputError, match='actions must have shape'):
        model.infer(images, actions[:1])
    with pytest.raises(ModelInputError, match='costs must have shape'):
        EpisodeBatch(data.images, data.actions, data.costs[:, :-1])
    with pytest.raises(ModelInputError, match='EpisodeBatch'):
        model.fit((images, actions), 1)


def test_config_from_dict_and_yaml(tmp_path):
    config = make_config()
    assert ModelConfig.from_dict(config.to_dict()) == config
    path = tmp_path / 'model.yaml'
    path.write_text('model:\n  latent_dim: 3\n  action_dim: 2\n  horizon: 5\n  lr: 0.1\n')
    with pytest.raises(ValueError, match=r"unknown ModelConfig keys \['lr'\]"):
        ModelConfig.from_yaml(path)
    path.write_text('latent_dim: 3\naction_dim: 2\nhorizon: 5\nmniw_step: 0.5\n')
    assert ModelConfig.from_yaml(path).mniw_step == 0.5
    with pytest.raises(ValueError, match='mniw_step'):
        make_config(mniw_step=0.0)
    with pytest.raises(ValueError, match=r"needs \['latent_dim'\]"):
        ModelConfig.from_dict({'action_dim': 2, 'horizon': 5})


def test_keypoint_encoder_reads_where_the_bright_spot_is():
    """The soft-argmax coordinates follow a bright square across the image, monotonically."""
    torch.manual_seed(0)
    encoder = Encoder(latent_dim=2, image_size=32, channels=4, keypoints=1)
    # Make the feature map a sharp detector of bright pixels: the coordinates then track them.
    with torch.no_grad():
        for conv in encoder.convs:
            conv.weight.fill_(1.0 / conv.weight[0].numel())
            conv.bias.zero_()
        encoder.feature_maps.weight.fill_(200.0)
        encoder.feature_maps.bias.zero_()
        encoder.mean_head.weight.copy_(torch.eye(2))
        encoder.mean_head.bias.zero_()
    images = torch.zeros(5, 32, 32, 3)
    for i, column in enumerate((2, 8, 14, 20, 26)):
        images[i, 14:18, column:column + 4] = 1.0
    mean, std = encoder(images)
    assert mean.shape == std.shape == (5, 2) and torch.all(std > 0)
    assert torch.all(mean[1:, 0] > mean[:-1, 0] + 0.2), mean  # x follows the square
    assert torch.all(mean[:, 1].abs() < 0.2), mean  # y stays near the middle row
    assert torch.all(mean.abs() <= 1.0)
    mean.sum().backward()
    assert encoder.feature_maps.weight.grad is not None


def test_dense_branch_starts_at_the_keypoint_mean_and_reads_more_finely():
    """The branch adds nothing at first; trained, it reads a square's brightness finely.

    Soft-argmax coordinates say where the square is; its brightness reaches them only
    through how sharp the attention is. Trained alike, the encoder with a dense branch
    reads the brightness with a far smaller error than the keypoint encoder alone.
    """
    torch.manual_seed(0)
    plain = Encoder(latent_dim=1, image_size=32, channels=4, keypoints=2)
    torch.manual_seed(0)
    branched = Encoder(latent_dim=1, image_size=32, channels=4, keypoints=2, dense_branch=16)
    generator = torch.Generator().manual_seed(1)
    brightness = 0.2 + 0.8 * torch.rand(64, generator=generator)
    images = torch.zeros(64, 32, 32, 3)
    images[:, 12:20, 12:20] = brightness[:, None, None, None]
    assert torch.equal(plain(images)[0], branched(images)[0])
    errors = []
    for encoder in (plain, branched):
        optimizer = torch.optim.Adam(encoder.parameters(), lr=3e-3)
        for _ in range(300):
            loss = ((encoder(images)[0][:, 0] - brightness) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        errors.append(loss.item() / brightness.var().item())
    assert errors[1] < errors[0] / 20, errors  # fractions of the variance left
    with pytest.raises(ValueError, match='keypoint'):
        Encoder(latent_dim=1, image_size=32, channels=4, dense_branch=16)
    with pytest.raises(ValueError, match='dense_branch needs keypoints'):
        ModelConfig(latent_dim=2, action_dim=1, horizon=3, dense_branch=8)
    with pytest.raises(ValueError, match='dense_branch must be >= 0'):
        ModelConfig(latent_dim=2, action_dim=1, horizon=3, keypoints=2, dense_branch=-1)


def test_full_precision_starts_diagonal_and_is_l_l_transpose():
    """With its head at zero a full-precision encoder gives the diagonal potential; then L L^T."""
    images = torch.rand(2, 3, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    diagonal = Encoder(latent_dim=3, image_size=16, channels=4, hidden=8)
    torch.manual_seed(0)
    full = Encoder(latent_dim=3, image_size=16, channels=4, hidden=8, full_precision=True)
    J_diagonal, h_diagonal = diagonal.potential(images)
    J, h = full.potential(images)
    assert J_diagonal.shape == (2, 3, 3) and J.shape == (2, 3, 3, 3)
    torch.testing.assert_close(J, torch.diag_embed(J_diagonal))
    torch.testing.assert_close(h, h_diagonal)
    with torch.no_grad():
        full.lower_head.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    J, h = full.potential(images)
    mean, std = full(images)
    factor = torch.diag_embed(1.0 / std.double())
    factor[..., 1, 0], factor[..., 2, 0], factor[..., 2, 1] = 0.5, -1.0, 2.0
    torch.testing.assert_close(J, factor @ factor.transpose(-1, -2))
    torch.testing.assert_close(h, (J @ mean.double().unsqueeze(-1)).squeeze(-1))
    assert torch.all(torch.linalg.eigvalsh(J) > 0)


def test_full_precision_lets_a_camera_leave_any_direction_open():
    """Two cameras, a latent z = R [a; b] in a basis turned by 45 degrees from what they see.

    Camera A sees a in half of the frames and nothing in the others; camera B always sees b.
    Trained on the product's likelihood of z, full precisions let A say nothing along R e_a
    when it sees nothing, so the product still knows z along R e_b; diagonal precisions
    cannot leave a turned direction open, and the product errs along R e_b as well.
    """
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(1)
    a, b = 2 * torch.rand(2, 96, generator=generator) - 1
    seen = torch.rand(96, generator=generator) < 0.5
    view_a, view_b = torch.zeros(2, 96, 16, 16, 3)
    view_a[:, 4:12, 4:12] = (seen * (0.6 + 0.4 * a))[:, None, None, None]
    view_b[:, 4:12, 4:12] = (0.6 + 0.4 * b)[:, None, None, None]
    rotation = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64) / 2 ** 0.5
    z = torch.stack([a, b], 1).double() @ rotation.T
    results = {}
    for full in (False, True):
        torch.manual_seed(0)
        encoders = [Encoder(2, 16, 4, 16, full_precision=full) for _ in range(2)]
        optimizer = torch.optim.Adam([p for e in encoders for p in e.parameters()], lr=3e-3)
        # 600 steps: with 300, the full-precision pair had not yet converged on one CPU
        # (AVX-512; NLL -1.04 against the diagonal pair's -1.64), on initial seeds 1 and 2
        # it had; with 600 it leads on seeds 0-2 by 1.8 nats or more there.
        for _ in range(600):
            (J_a, h_a), (J_b, h_b) = encoders[0].potential(view_a), encoders[1].potential(view_b)
            J = J_a + J_b if full else torch.diag_embed(J_a + J_b)
            mean = torch.linalg.solve(J, (h_a + h_b).unsqueeze(-1)).squeeze(-1)
            error = (z - mean).unsqueeze(-1)
            loss = (0.5 * (error.transpose(-1, -2) @ J @ error).squeeze()
                    - 0.5 * torch.logdet(J)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        along_b = ((z - mean.detach()) @ rotation[:, 1])[~seen]
        results[full] = (loss.item(), along_b.pow(2).mean().item())
    print('negative log-likelihood, squared error along R e_b where A sees nothing:', results)
    assert results[True][0] < results[False][0] - 1.0
    # Along R e_b the full pair's squared error is 3.8-36 times smaller than the diagonal
    # pair's over initial seeds 0-2 on one CPU (8.1 on seed 0; over 10 on another CPU):
    # the ratio varies with the CPU's kernels, so the bound asks for half.
    assert results[True][1] < results[False][1] / 2


def test_full_precision_model_trains_and_keeps_its_precision(tmp_path):
    """A two-view full-precision model: potentials add, the ELBO term is exact, it trains."""
    torch.set_num_threads(1)
    batch = make_batch(8, seed=0)
    images = torch.cat([batch.images, batch.images.flip(-1)], -1)
    two_views = EpisodeBatch(images, batch.actions, batch.costs)
    model = SolarModel(make_config(views=2, precision='full', batch_size=4))
    with torch.no_grad():
        for encoder in model.view_encoders():
            encoder.lower_head.bias.normal_(0.0, 0.5)
    potentials = model.encode(images)
    floats = images.float() / 255.0
    parts = [encoder.potential(floats[..., 3 * v:3 * v + 3])
             for v, encoder in enumerate(model.view_encoders())]
    torch.testing.assert_close(potentials.J, parts[0][0] + parts[1][0])
    torch.testing.assert_close(potentials.h, parts[0][1] + parts[1][1])
    # local_kl of full potentials that happen to be diagonal equals the diagonal form's
    diagonal = GaussianPotentials(J=torch.diagonal(potentials.J, dim1=-2, dim2=-1).detach(),
                                  h=potentials.h.detach())
    actions = torch.as_tensor(batch.actions, dtype=torch.float64)
    kls = []
    for J in (diagonal.J, torch.diag_embed(diagonal.J)):
        model.generator.manual_seed(0)
        kls.append(model._local_terms(GaussianPotentials(J=J, h=diagonal.h), actions)[1])
    torch.testing.assert_close(kls[0], kls[1])
    history = model.fit(two_views, 10)
    assert all(np.isfinite(step['elbo']) for step in history)
    model.save(tmp_path / 'full.ckpt')
    loaded = SolarModel.load(tmp_path / 'full.ckpt')
    assert loaded.config.precision == 'full'
    torch.testing.assert_close(loaded.encode(images).J, model.encode(images).J)
    assert model.predict(images[:2], batch.actions[:2], 3).shape == images[:2].shape
    with pytest.raises(ValueError, match="precision 'full' needs inference 'solar'"):
        make_config(precision='full', inference='vae')
    with pytest.raises(ValueError, match='precision must be one of'):
        make_config(precision='low')


def test_vae_ablation_reads_frames_alone_with_a_standard_normal_prior():
    torch.set_num_threads(1)
    model = SolarModel(make_config(inference='vae'))
    batch = make_batch(8, seed=2)
    potentials = model.encode(torch.as_tensor(batch.images))
    mean, var = potentials.h / potentials.J, 1.0 / potentials.J
    posterior = model.infer(batch.images, batch.actions)
    torch.testing.assert_close(posterior.means, mean)
    closed_form = 0.5 * (var + mean ** 2 - 1.0 - var.log()).sum(dim=(1, 2))
    _, local_kl, samples = model._local_terms(potentials, torch.as_tensor(batch.actions))
    torch.testing.assert_close(local_kl, closed_form)
    assert samples.shape == (1, 8, HORIZON, 4)
    smoother = model.smoother(batch.images, batch.actions)
    torch.testing.assert_close(smoother(model.prior).means, mean)  # no dynamics in it
    history = model.fit(batch, 20)
    assert all(np.isfinite(h['elbo']) for h in history)
    assert not torch.equal(model.q.M, SolarModel(make_config(inference='vae')).q.M)
    with pytest.raises(ValueError, match='inference'):
        make_config(inference='kalman')


def test_fit_without_the_encoder_keeps_the_representation():
    torch.set_num_threads(1)
    model = SolarModel(make_config())
    batch = make_batch(8, seed=5)
    encoder = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    decoder = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    model.fit(batch, 3, train_encoder=False)
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, encoder[key])
    assert any(not torch.equal(value, decoder[key])
               for key, value in model.decoder.state_dict().items())
    model.fit(batch, 3)
    assert any(not torch.equal(value, encoder[key])
               for key, value in model.encoder.state_dict().items())


@pytest.mark.parametrize('rel', [0.0, 0.5])
def test_cost_likelihood_is_gaussian_with_a_std_that_grows_with_the_cost(rel):
    head = QuadraticCostHead(2, cost_std=0.1, cost_rel_std=rel)
    with torch.no_grad():
        head.factor.copy_(torch.eye(2))  # predicted cost 1/2 |s|^2 + 0.3
        head.const.fill_(0.3)
    latents = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
    costs = torch.tensor([0.25, 2.0, 6.0])
    predicted = torch.tensor([0.3, 2.8, 5.3])
    expected = torch.distributions.Normal(predicted, 0.1 + rel * costs).log_prob(costs)
    torch.testing.assert_close(head.log_likelihood(latents, costs), expected)
    with pytest.raises(ValueError, match='cost_rel_std'):
        ModelConfig(latent_dim=2, action_dim=1, horizon=4, cost_rel_std=-1.0)


def test_reconstruction_weights_count_the_pixels_that_differ_from_the_mean_frame():
    logits = torch.randn(2, 3, 4, 4, 3)
    images = torch.rand(2, 3, 4, 4, 3)
    plain = bernoulli_log_likelihood(logits, images)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, images, torch.full_like(
        images, 2.0)), 2.0 * plain)
    config = {'latent_dim': 2, 'action_dim': 1, 'horizon': 3, 'image_size': 16}
    assert SolarModel(ModelConfig(**config))._recon_weights(images) is None
    focused = SolarModel(ModelConfig(**config, recon_focus=4.0))
    frames = torch.zeros(2, 3, 16, 16, 3)
    frames[0, 0, 5, 7] = 1.0  # a pixel lit in one frame of six: 1 - 1/6 from the mean
    weights = focused._recon_weights(frames)
    torch.testing.assert_close(weights[0, 0, 5, 7], torch.full((3,), 1.0 + 4.0 * 5 / 6))
    torch.testing.assert_close(weights[1, 2, 5, 7], torch.full((3,), 1.0 + 4.0 / 6))
    torch.testing.assert_close(weights[0, 0, 0, 0], torch.ones(3))


def test_view_weights_scale_each_cameras_channels_and_multiply_the_focus():
    config = {'latent_dim': 2, 'action_dim': 1, 'horizon': 3, 'image_size': 16, 'views': 2}
    frames = torch.zeros(2, 3, 16, 16, 6)
    frames[0, 0, 5, 7] = 1.0
    weighted = SolarModel(ModelConfig(**config, view_weights=[1.0, 4.0]))
    weights = weighted._recon_weights(frames)
    torch.testing.assert_close(weights, torch.tensor([1.0, 1.0, 1.0, 4.0, 4.0, 4.0]))
    both = SolarModel(ModelConfig(**config, view_weights=[1.0, 4.0], recon_focus=4.0))
    focused = both._recon_weights(frames)[0, 0, 5, 7]
    torch.testing.assert_close(focused, (1.0 + 4.0 * 5 / 6) * torch.tensor(
        [1.0, 1.0, 1.0, 4.0, 4.0, 4.0]))
    # the weighted camera's errors cost four times as much in the ELBO's reconstruction
    logits, images = torch.randn(2, 3, 16, 16, 6), torch.rand(2, 3, 16, 16, 6)
    per_view = [bernoulli_log_likelihood(logits[..., 3 * v:3 * v + 3],
                                         images[..., 3 * v:3 * v + 3]) for v in range(2)]
    torch.testing.assert_close(bernoulli_log_likelihood(logits, images, weighted._recon_weights(
        images)), per_view[0] + 4.0 * per_view[1])
    assert ModelConfig.from_dict(weighted.config.to_dict()) == weighted.config
    assert weighted.config.to_dict()['view_weights'] == [1.0, 4.0]
    for bad in ([1.0], [1.0, 0.0], [1.0, 2.0, 3.0]):
        with pytest.raises(ValueError, match='view_weights'):
            ModelConfig(**config, view_weights=bad)


def test_log_cost_likelihood_is_gaussian_in_log_cost_and_moves_only_what_it_should():
    torch.manual_seed(0)
    head = LogCostHead(2, eps=0.01, std=0.2)
    latents = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]], requires_grad=True)
    costs = torch.tensor([0.0, 0.04, -1e-9])  # a rounding-negative cost reads as 0
    predicted = head(latents)
    assert predicted.shape == (3,)
    expected = torch.distributions.Normal(predicted, 0.2).log_prob(
        torch.log(torch.tensor([0.01, 0.05, 0.01])))
    torch.testing.assert_close(head.log_likelihood(latents, costs), expected)
    head.log_likelihood(latents, costs, detach_params=True).sum().backward()
    assert latents.grad.abs().sum() > 0
    assert all(p.grad is None for p in head.parameters())
    # the log target separates 1 cm from 2 cm (squared distance / 0.1 m) far more than the cost
    near = torch.log(torch.tensor([0.01, 0.04]) + 0.01)
    assert near[1] - near[0] > 0.8 > 0.03
    with pytest.raises(ValueError, match='log_cost_std'):
        ModelConfig(latent_dim=2, action_dim=1, horizon=4, log_cost_std=0.0)
    with pytest.raises(ValueError, match='log_cost_eps'):
        ModelConfig(latent_dim=2, action_dim=1, horizon=4, log_cost_eps=0.0)
    with pytest.raises(ValueError, match='log_cost_weight'):
        ModelConfig(latent_dim=2, action_dim=1, horizon=4, log_cost_weight=-1.0)


def test_log_cost_head_is_trained_with_the_model_and_kept_in_its_checkpoint(tmp_path):
    torch.set_num_threads(1)
    assert SolarModel(make_config()).log_cost_head is None
    model = SolarModel(make_config(log_cost_weight=1.0))
    batch = make_batch(8, seed=6)
    before = {k: v.clone() for k, v in model.log_cost_head.state_dict().items()}
    plain = SolarModel(make_config()).fit(batch, 2)
    history = model.fit(batch, 2)
    assert history[0]['cost_ll'] != plain[0]['cost_ll']  # the log term is in the objective
    assert any(not torch.equal(value, before[key])
               for key, value in model.log_cost_head.state_dict().items())
    model.save(tmp_path / 'model.pt')
    loaded = SolarModel.load(tmp_path / 'model.pt')
    latents = torch.randn(5, 4)
    torch.testing.assert_close(loaded.log_cost_head(latents), model.log_cost_head(latents))


def test_residual_head_reads_the_residuals_linearly_with_a_bias_per_step():
    head = ResidualHead(latent_dim=2, residual_dim=3, horizon=2, std=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
        head.bias.copy_(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.1]]))
    latents = torch.tensor([[[1.0, 2.0], [0.0, -1.0]]], requires_grad=True)  # (1, T=2, dx)
    expected = torch.tensor([[[1.0, 4.0, 3.0], [0.0, -2.0, -0.9]]])
    torch.testing.assert_close(head(latents), expected)
    residuals = torch.zeros(1, 2, 3)
    log_likelihood = head.log_likelihood(latents, residuals, detach_params=True)
    torch.testing.assert_close(log_likelihood, torch.distributions.Normal(
        expected, 0.5).log_prob(residuals).sum(-1))
    log_likelihood.sum().backward()
    assert latents.grad.abs().sum() > 0
    assert all(p.grad is None for p in head.parameters())
    with pytest.raises(ValueError, match='residual_std'):
        ModelConfig(latent_dim=2, action_dim=1, horizon=4, residual_dim=3, residual_std=0.0)
    with pytest.raises(ValueError, match='residual_dim'):
        ModelConfig(latent_dim=2, action_dim=1, horizon=4, residual_dim=-1)


def test_residual_term_joins_the_objective_and_its_head_trains(tmp_path):
    torch.set_num_threads(1)
    batch = make_batch(8, seed=6)
    residuals = torch.randn(8, HORIZON, 3, generator=torch.Generator().manual_seed(0),
                            dtype=torch.float64)
    with_residuals = EpisodeBatch(batch.images, batch.actions, batch.costs, residuals)
    plain, model = SolarModel(make_config()), SolarModel(make_config(residual_dim=3))
    assert plain.residual_head is None
    # W = 0 and b = 0 at the start: the term is log N(r; 0, std^2 I), whatever the latent
    expected = torch.distributions.Normal(0.0, 0.1).log_prob(residuals).sum((-2, -1)).mean()
    gained = model.elbo(with_residuals)['cost_ll'] - plain.elbo(batch)['cost_ll']
    assert gained == pytest.approx(float(expected), rel=1e-4)
    with pytest.raises(ModelInputError, match='residual_dim'):
        model.fit(batch, 1)  # the sequences carry none
    with pytest.raises(ModelInputError, match='3 cost residuals per step'):
        model.fit(EpisodeBatch(batch.images, batch.actions, batch.costs, residuals[..., :2]), 1)
    with pytest.raises(ModelInputError, match='residuals must have shape'):
        EpisodeBatch(batch.images, batch.actions, batch.costs, residuals[:, :-1])
    assert len(with_residuals.select([0, 2]).residuals) == 2
    model.fit(with_residuals, 2)
    assert model.residual_head.weight.abs().sum() > 0
    model.save(tmp_path / 'model.pt')
    loaded = SolarModel.load(tmp_path / 'model.pt')
    latents = torch.randn(2, HORIZON, 4)
    torch.testing.assert_close(loaded.residual_head(latents), model.residual_head(latents))


def test_a_trained_model_takes_a_tighter_residual_std_and_nothing_else():
    torch.set_num_threads(1)
    batch = make_batch(4, seed=7)
    residuals = torch.randn(4, HORIZON, 3, generator=torch.Generator().manual_seed(1),
                            dtype=torch.float64)
    data = EpisodeBatch(batch.images, batch.actions, batch.costs, residuals)
    model = SolarModel(make_config(residual_dim=3))
    model.fit(data, 2)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    latents = torch.randn(2, HORIZON, 4)
    at_01 = model.residual_head.log_likelihood(latents, residuals[:2].float())
    model.reweigh(make_config(residual_dim=3, residual_std=0.05))
    assert model.config.residual_std == 0.05 and model.residual_head.std == 0.05
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    # log N(r; m, s^2) = -e^2 / (2 s^2) - log s - log(2 pi) / 2 per number, d = 3 per step
    error = (residuals[:2].float() - model.residual_head(latents)).pow(2).sum(-1)
    expected = at_01 - 0.5 * error * (1 / 0.05 ** 2 - 1 / 0.1 ** 2) + 3 * math.log(2.0)
    torch.testing.assert_close(
        model.residual_head.log_likelihood(latents, residuals[:2].float()), expected)
    model.fit(data, 1)  # it trains on with the new weight
    for change in ({'latent_dim': 5}, {'residual_dim': 2}, {'seed': 4}):
        with pytest.raises(ValueError, match=f"settings \\['{next(iter(change))}'\\] differ"):
            model.reweigh(make_config(residual_std=0.05, **dict({'residual_dim': 3}, **change)))
    assert model.config.residual_std == 0.05
