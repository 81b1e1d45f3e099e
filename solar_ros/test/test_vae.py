"""The VAE ablation runs in the same loop and evaluation harness as SOLAR."""

from learning_runs import finished_run
import numpy as np
from solar_ros.learn import evaluate
from solar_ros.learn.episodes import EpisodeStore
import torch

TINY_VAE = {
    'env': {'name': 'point_mass', 'horizon': 6, 'image_size': 32},
    'model': {'latent_dim': 2, 'channels': 4, 'hidden': 16, 'image_size': 32,
              'batch_size': 4, 'action_cost_weight': 0.01, 'inference': 'vae'},
    'lqr': {'init_std': 0.1},
    'loop': {'pretrain_episodes': 4, 'pretrain_updates': 5, 'iterations': 2,
             'rollouts_per_iteration': 2, 'refit_updates': 2},
}


def test_vae_ablation_learns_in_the_loop_and_acts_on_the_frame_alone(tmp_path):
    run_dir = finished_run(TINY_VAE, tmp_path)
    episodes = list(EpisodeStore(run_dir / 'episodes'))
    assert [e.policy_version for e in episodes] == [0, 0, 0, 0, 1, 1]
    agent = evaluate.load_policy(run_dir)
    assert agent.policy_version == 2 and agent.model.config.inference == 'vae'
    policy = agent.gains.policy
    assert bool(policy.K.abs().sum() > 0)
    frame = episodes[-1].images[3]
    agent.reset(np.zeros((6, 2)))
    for t in range(3):  # whatever came before, the action depends on this frame only
        agent.act(episodes[-1].images[t])
        agent.observe_action(np.full(2, 0.1))
    with torch.no_grad():
        potential = agent.model.encode(torch.as_tensor(frame)[None, None])
    mean = potential.h[0, 0] / potential.J[0, 0]
    np.testing.assert_allclose(agent.act(frame), (policy.K[3] @ mean + policy.k[3]).numpy())
    assert evaluate.main([str(run_dir), '--episodes', '2']) == 0
