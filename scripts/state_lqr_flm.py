"""LQR-FLM on the simulated arm's true low-dimensional state, without images.

The check that separates the policy optimiser from the image model: the state is the 7
joint angles (rad) and the held block's offset from the goal point (m), the cost is the
environment's, the local dynamics prior is the uninformative MNIW. Prints one line per
iteration with the rollouts' mean final distance. Run with the workspace environment:

    python scripts/state_lqr_flm.py [--task 1] [--kl-step 1.0] [--init-std 0.3]
        [--rollouts 10] [--iterations 15] [--data-strength 1.0] [--squared-distance]
"""

import argparse

import numpy as np
from solar_ros.core.lqr_flm import LQRFLM, LQRFLMConfig, observed_trajectories
from solar_ros.core.mniw import MNIW
from solar_ros.sim.sawyer_env import SawyerStackConfig, SawyerStackEnv
import torch

STATE_DIM = 10  # 7 joint angles and the 3-D block-to-goal offset


def state(env: SawyerStackEnv) -> np.ndarray:
    """Return the true state of the arm, (10,): joint angles (rad), block minus goal (m)."""
    return np.concatenate([env.joint_positions(),
                           env.held_block_pose()[:3] - env.goal_position()])


def main() -> None:
    """Run the iterations and print the progress."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', type=int, default=1)
    parser.add_argument('--kl-step', type=float, default=1.0)
    parser.add_argument('--init-std', type=float, default=0.3)
    parser.add_argument('--rollouts', type=int, default=10)
    parser.add_argument('--iterations', type=int, default=15)
    parser.add_argument('--data-strength', type=float, default=1.0)
    parser.add_argument('--squared-distance', action='store_true',
                        help="the environment's squared distance cost, (d / 0.1 m)^2")
    args = parser.parse_args()
    env = SawyerStackEnv(SawyerStackConfig(
        render=False, distance_cost='squared' if args.squared_distance else 'linear'))
    du = env.action_dim
    R = torch.diag(torch.as_tensor(env.config.action_cost, dtype=torch.float64))
    lqr = LQRFLM(STATE_DIM, du, env.horizon,
                 LQRFLMConfig(kl_step=args.kl_step, init_std=args.init_std,
                              data_strength=args.data_strength), action_cost=R)
    prior = MNIW.prior(STATE_DIM, du, env.horizon)
    rng = np.random.default_rng(0)
    seed = 0
    for iteration in range(args.iterations + 1):
        states, actions, costs, distances, successes = [], [], [], [], []
        for _ in range(args.rollouts):
            env.reset(task=args.task, seed=seed)
            seed += 1
            episode = ([], [], [])
            for t in range(env.horizon):
                s = state(env)
                _, cost, _, info = env.step(lqr.policy.act(t, s, rng.standard_normal(du)))
                a = np.asarray(info['action'])
                for values, value in zip(episode, (s, a, cost)):
                    values.append(value)
            states.append(episode[0])
            actions.append(episode[1])
            costs.append(episode[2])
            distances.append(info['final_distance'])
            successes.append(info['success'])
        print(f'iteration {iteration}: {seed} episodes, mean final distance '
              f'{np.mean(distances):.3f} m, success {np.mean(successes):.0%}, '
              f'step_mult {lqr.step_mult:.2f}', flush=True)
        S, A, C = (torch.tensor(np.array(x), dtype=torch.float64)
                   for x in (states, actions, costs))
        lqr.update(observed_trajectories(S, A), A, C, prior=prior)


if __name__ == '__main__':
    main()
