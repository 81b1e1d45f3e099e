"""The checks' reset seeds (``loop.check_target_shift``): where the target block moved most."""

import numpy as np
import pytest
from solar_ros.learn.config import RunConfig
from solar_ros.learn.learner import CHECK_SEED_OFFSET, check_seeds
from solar_ros.sim.environments import env_settings, make_env

SAWYER = {'name': 'sawyer_stack'}


def test_without_a_target_shift_check_i_resets_with_the_ith_seed_of_the_checks():
    config = RunConfig.from_dict({'loop': {'seed': 3, 'check_rollouts': 2}})
    assert check_seeds(config, 0, 3) == [3_000_000 + CHECK_SEED_OFFSET + i for i in range(3)]
    assert check_seeds(config, 1, 2) == check_seeds(config, 0, 3)[1:]


def test_with_a_target_shift_the_checks_skip_the_seeds_whose_target_moved_less():
    config = RunConfig.from_dict({'env': SAWYER, 'loop': {
        'seed': 1, 'check_rollouts': 3, 'check_target_shift': 0.01}})
    seeds = check_seeds(config, 0, 8)
    assert check_seeds(config, 5, 3) == seeds[5:]  # a later start continues the same seeds
    first = 1_000_000 + CHECK_SEED_OFFSET
    settings = env_settings(SAWYER)
    candidates = range(first, seeds[-1] + 1)
    assert seeds == [s for s in candidates if settings.target_shift(s) >= 0.01]
    assert len(candidates) > len(seeds)  # some were skipped
    # The real reset moves the target block as far as the settings said, without a reset.
    env = make_env(SAWYER)
    try:
        for seed in seeds[:2]:
            env.reset(task=2, seed=seed)
            moved = np.linalg.norm(env.target_block_pose()[:2] -
                                   np.array(env.config.target_position))
            assert moved == pytest.approx(settings.target_shift(seed), abs=1e-6)
            assert moved >= 0.01
    finally:
        env.close()


@pytest.mark.parametrize('settings, message', [
    ({'loop': {'check_rollouts': 3, 'check_target_shift': -0.01}}, 'must be a number >= 0'),
    ({'loop': {'check_target_shift': 0.01}}, 'needs loop.check_rollouts'),
    ({'loop': {'check_rollouts': 3, 'check_target_shift': 0.01}}, 'needs the env section'),
    ({'env': {'name': 'point_mass'}, 'loop': {'check_rollouts': 3,
                                              'check_target_shift': 0.01}}, 'no target block'),
    ({'env': SAWYER, 'loop': {'check_rollouts': 3, 'check_target_shift': 0.02}},
     'at most the env'),
])
def test_a_target_shift_that_no_check_can_meet_is_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(settings)
