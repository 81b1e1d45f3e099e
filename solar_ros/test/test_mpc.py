"""The MPC ablation runs in the same loop and evaluation harness as SOLAR."""

from learning_runs import finished_run
import numpy as np
import pytest
from solar_ros.learn import evaluate
from solar_ros.learn.agent import LatentAgent, MPCAgent
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import EpisodeStore

TINY_MPC = {
    'env': {'name': 'point_mass', 'horizon': 6, 'image_size': 32},
    'model': {'latent_dim': 2, 'channels': 4, 'hidden': 16, 'image_size': 32,
              'batch_size': 4, 'action_cost_weight': 0.01, 'keypoints': 4},
    'lqr': {'init_std': 0.1},
    'loop': {'method': 'mpc', 'pretrain_episodes': 4, 'pretrain_updates': 5,
             'iterations': 2, 'rollouts_per_iteration': 2, 'refit_updates': 2},
    'mpc': {'horizon': 4, 'samples': 30, 'elites': 5, 'iterations': 2,
            'action_bound': 0.15},
}


def test_mpc_runs_records_and_evaluates_with_the_planner(tmp_path):
    run_dir = finished_run(TINY_MPC, tmp_path)
    episodes = list(EpisodeStore(run_dir / 'episodes'))
    assert [e.policy_version for e in episodes] == [0, 0, 0, 0, 1, 1]
    planned = np.concatenate([e.actions for e in episodes if e.policy_version == 1])
    assert np.all(np.abs(planned) <= 0.15 + 1e-12)
    assert isinstance(evaluate.load_policy(run_dir, 0), LatentAgent)
    agent = evaluate.load_policy(run_dir)
    assert isinstance(agent, MPCAgent) and agent.policy_version == 2
    assert evaluate.main([str(run_dir), '--episodes', '2']) == 0
    assert (run_dir / 'evaluation_policy_0002.csv').exists()


def test_unknown_method_and_mpc_settings_are_errors(tmp_path):
    with pytest.raises(ValueError, match='loop.method'):
        RunConfig.from_dict({'loop': {'method': 'ppo'}})
    with pytest.raises(ValueError, match='unknown config sections'):
        RunConfig.from_dict({'planner': {}})
