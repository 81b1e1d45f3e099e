"""Several cameras as one observation: rendering, product-of-experts encoding, checks."""

import numpy as np
import pytest
from solar_ros.core.lds import GaussianPotentials
from solar_ros.core.model import SolarModel
from solar_ros.core.model_config import ModelConfig
from solar_ros.core.sequences import ModelInputError
from solar_ros.images import ViewAssembler, views_side_by_side
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode
from solar_ros.learn.loop import SolarLoop
from solar_ros.sim.point_mass import PointMassEnv
from solar_ros.sim.sawyer_config import SawyerStackConfig
from solar_ros.sim.sawyer_env import SawyerStackEnv
import torch


def test_views_stack_the_first_camera_then_a_different_side_close_and_top_camera():
    with SawyerStackEnv(SawyerStackConfig(views=1)) as one, \
            SawyerStackEnv(SawyerStackConfig(views=2)) as two, \
            SawyerStackEnv(SawyerStackConfig(views=3)) as three, \
            SawyerStackEnv(SawyerStackConfig(views=4)) as four:
        single, double, triple, quadruple = (env.reset(1, seed=4)
                                             for env in (one, two, three, four))
        assert single.shape == (64, 64, 3) and double.shape == (64, 64, 6)
        assert triple.shape == (64, 64, 9) and quadruple.shape == (64, 64, 12)
        np.testing.assert_array_equal(double[..., :3], single)
        np.testing.assert_array_equal(triple[..., :6], double)
        np.testing.assert_array_equal(quadruple[..., :9], triple)
        for view, other in ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)):
            difference = (quadruple[..., 3 * view:3 * view + 3].astype(int)
                          - quadruple[..., 3 * other:3 * other + 3].astype(int))
            assert np.abs(difference).mean() > 10, f'view {view} looks like view {other}'
        image, _, _, _ = four.step(np.zeros(7))
        assert image.shape == (64, 64, 12)
        # The close camera's zoom: a longer focal length than the side camera's.
        assert three.camera_intrinsics(2)[0, 0] > 1.5 * three.camera_intrinsics(1)[0, 0]
    with pytest.raises(ValueError, match='views'):
        SawyerStackConfig(views=5)
    with pytest.raises(ValueError, match='top_camera_fov_deg'):
        SawyerStackConfig(top_camera_fov_deg=0.0)
    with pytest.raises(ValueError, match='side_camera_fov_deg'):
        SawyerStackConfig(side_camera_fov_deg=180.0)
    with pytest.raises(ValueError, match='close_camera_target'):
        SawyerStackConfig(close_camera_target=(0.6, 0.0))


def test_encoder_potentials_of_views_multiply():
    torch.manual_seed(0)
    config = ModelConfig(latent_dim=3, action_dim=2, horizon=4, image_size=16, views=2,
                         channels=4, keypoints=4)
    model = SolarModel(config)
    images = torch.rand(2, 4, 16, 16, 6)
    both = model.encode(images)
    J = h = 0.0
    for view, encoder in enumerate(model.encoder):
        mean, std = encoder(images[..., 3 * view:3 * view + 3])
        J = J + std.double() ** -2
        h = h + mean.double() * std.double() ** -2
    torch.testing.assert_close(both.J, J)
    torch.testing.assert_close(both.h, h)
    assert model.decoder(torch.zeros(5, 3)).shape == (5, 16, 16, 6)
    smoothed = model.infer(images, torch.zeros(2, 4, 2))
    assert smoothed.means.shape == (2, 4, 3)
    with pytest.raises(ModelInputError, match='views'):
        model.infer(images[..., :3], torch.zeros(2, 4, 2))


@pytest.mark.parametrize('precision', ['diagonal', 'full'])
def test_a_views_own_dimensions_are_decided_by_that_view_alone(precision):
    torch.manual_seed(0)
    config = ModelConfig(latent_dim=5, action_dim=2, horizon=4, image_size=16, views=3,
                         channels=4, keypoints=4, precision=precision,
                         view_own_dims=(0, 1, 2))
    assert config.view_masks() == ((True, True, False, False, False),
                                   (True, True, True, False, False),
                                   (True, True, False, True, True))
    model = SolarModel(config)
    images = torch.rand(2, 4, 16, 16, 9)
    product = model.encode(images)
    J = product.full_precision()
    assert torch.all(torch.diagonal(J, dim1=-2, dim2=-1) > 0)  # every dimension observed
    views = [GaussianPotentials(*encoder.potential(images[..., 3 * v:3 * v + 3]))
             for v, encoder in enumerate(model.view_encoders())]
    for view, mask in zip(views, config.view_masks()):
        others = ~torch.tensor(mask)
        J_v = view.full_precision()
        assert torch.all(J_v[..., others, :] == 0) and torch.all(J_v[..., :, others] == 0)
        assert torch.all(view.h[..., others] == 0)
        assert torch.all(torch.diagonal(J_v, dim1=-2, dim2=-1)[..., ~others] > 0)
    # View 2's block (dimensions 3, 4): the product's potential there is view 2's alone.
    torch.testing.assert_close(J[..., 3:, 3:], views[2].full_precision()[..., 3:, 3:])
    torch.testing.assert_close(product.h[..., 3:], views[2].h[..., 3:])
    smoothed = model.infer(images, torch.zeros(2, 4, 2))
    assert torch.isfinite(smoothed.means).all()
    for bad in ((1, 2), (0, 3, 3), (0, -1, 1)):
        with pytest.raises(ValueError, match='view_own_dims'):
            ModelConfig(latent_dim=5, action_dim=2, horizon=4, views=3, view_own_dims=bad)


def test_single_view_model_keeps_its_checkpoint_layout():
    model = SolarModel(ModelConfig(latent_dim=3, action_dim=2, horizon=4, image_size=16))
    assert any(key.startswith('encoder.mean_head') for key in model.state_dict())


def test_episodes_hold_views_and_side_by_side_shows_them():
    images = np.zeros((3, 8, 8, 6), dtype=np.uint8)
    images[..., 3:] = 200
    episode = Episode(images, np.zeros((2, 7)), np.zeros(2), 1, 0, False, 0.1)
    assert episode.images.shape[-1] == 6
    wide = views_side_by_side(images[0])
    assert wide.shape == (8, 16, 3)
    assert wide[:, :8].max() == 0 and wide[:, 8:].min() == 200
    with pytest.raises(ValueError, match='3 V'):
        views_side_by_side(np.zeros((8, 8, 4), dtype=np.uint8))


def test_loop_refuses_an_env_with_other_views_than_the_model(tmp_path):
    config = RunConfig.from_dict({
        'env': {'name': 'point_mass', 'horizon': 4, 'image_size': 16},
        'model': {'latent_dim': 2, 'views': 2}, 'lqr': {}, 'loop': {}})
    with pytest.raises(ValueError, match='model.views'):
        SolarLoop(PointMassEnv(horizon=4, image_size=16), config, tmp_path)
    assert not (tmp_path / 'checkpoints').exists()


def test_view_assembler_stacks_the_views_of_one_stamp_in_view_order():
    assembler = ViewAssembler(keep=2)
    first, side = np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)
    assert assembler.add(0, 5, first, views=1) is first
    assert assembler.add(1, 5, side, views=1) is None, 'a view the model does not read'
    assert assembler.add(1, 10, side, views=2) is None, 'the first view is still to come'
    stacked = assembler.add(0, 10, first, views=2)
    np.testing.assert_array_equal(stacked, np.concatenate([first, side], axis=-1))
    # Pending stamps beyond keep are forgotten, oldest first ...
    for stamp in (20, 30, 40):
        assert assembler.add(0, stamp, first, views=2) is None
    assert assembler.add(1, 20, side, views=2) is None, 'stamp 20 fell beyond keep'
    assert assembler.add(1, 40, side, views=2) is not None
    # ... and so are those older than a completed one (their other view will not come).
    assert assembler.add(0, 50, first, views=2) is None
    assert assembler.add(0, 60, first, views=2) is None
    assert assembler.add(1, 60, side, views=2) is not None
    assert assembler.add(1, 50, side, views=2) is None
