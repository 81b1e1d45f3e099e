"""LQR-FLM on the simulated arm's true low-dimensional state, without images.

The check that separates the policy optimiser from the image model: the state is the 7
joint angles (rad) and the held block's offset from the goal point (m), the cost is the
environment's, the local dynamics prior is the uninformative MNIW. Prints one line per
iteration: the noisy rollouts' mean final distance and success, and the same for the
policy's mean action on ``--eval-episodes`` seeds that no rollout uses. Run with the
workspace environment:

    python scripts/state_lqr_flm.py [--task 1] [--kl-step 1.0] [--init-std 0.3]
        [--rollouts 10] [--iterations 15] [--data-strength 1.0] [--squared-distance]
        [--eval-episodes 10]
"""

import argparse
from typing import Optional, Tuple

import numpy as np
from solar_ros.core.lqr_flm import LQRFLM, LQRFLMConfig, observed_trajectories
from solar_ros.core.mniw import MNIW
from solar_ros.core.policy import LinearGaussianPolicy
from solar_ros.sim.sawyer_env import SawyerStackConfig, SawyerStackEnv
import torch

STATE_DIM = 10  # 7 joint angles and the 3-D block-to-goal offset
EVAL_SEED = 900_000_000  # first seed of the noise-free episodes


def state(env: SawyerStackEnv) -> np.ndarray:
    """Return the true state of the arm, (10,): joint angles (rad), block minus goal (m)."""
    return np.concatenate([env.joint_positions(),
                           env.held_block_pose()[:3] - env.goal_position()])


def rollout(env: SawyerStackEnv, policy: LinearGaussianPolicy, task: int, seed: int,
            rng: Optional[np.random.Generator]) -> Tuple[np.ndarray, ...]:
    """Run one episode of ``policy``, with noise drawn from ``rng`` (None: the mean action).

    Returns:
        states (T, 10), actions (T, 7) rad/s, costs (T,), final distance (m), success.

    """
    env.reset(task=task, seed=seed)
    states, actions, costs = [], [], []
    for t in range(env.horizon):
        s = state(env)
        noise = np.zeros(env.action_dim) if rng is None else rng.standard_normal(env.action_dim)
        _, cost, _, info = env.step(policy.act(t, s, noise))
        states.append(s)
        actions.append(np.asarray(info['action']))
        costs.append(cost)
    return (np.array(states), np.array(actions), np.array(costs), info['final_distance'],
            info['success'])


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
    parser.add_argument('--eval-episodes', type=int, default=10,
                        help='noise-free episodes per iteration (0: none)')
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
        runs = [rollout(env, lqr.policy, args.task, seed + i, rng) for i in range(args.rollouts)]
        seed += args.rollouts
        line = (f'iteration {iteration}: {seed} episodes, noisy: final distance '
                f'{np.mean([r[3] for r in runs]):.3f} m, '
                f'success {np.mean([r[4] for r in runs]):.0%}')
        if args.eval_episodes:
            means = [rollout(env, lqr.policy, args.task, EVAL_SEED + i, None)
                     for i in range(args.eval_episodes)]
            line += (f'; mean action: {np.mean([r[3] for r in means]):.3f} m, '
                     f'success {np.mean([r[4] for r in means]):.0%}')
        print(f'{line}; step_mult {lqr.step_mult:.2f}', flush=True)
        S, A, C = (torch.tensor(np.array([r[i] for r in runs]), dtype=torch.float64)
                   for i in range(3))
        lqr.update(observed_trajectories(S, A), A, C, prior=prior)


if __name__ == '__main__':
    main()
