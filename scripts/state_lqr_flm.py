"""LQR-FLM on the simulated arm's true low-dimensional state, without images.

The oracle rungs that separate the policy optimiser from the image model (README, "Where
performance is lost"): the state is the 7 joint angles (rad) and the held block's offset
from the cost's aim point (m). As in SOLAR, the local dynamics' prior is a global linear model
fitted to ``--prior-episodes`` random-action episodes (joint-velocity noise
``--prior-std``; 0 episodes gives the uninformative MNIW). The cost is fitted to the
rollouts' costs as SOLAR fits it, or with ``--known-cost`` given exactly: the squared
distance (d / 0.1 m)^2 is a quadratic of the offset. ``--offset-noise`` adds white Gaussian
noise to the offset that the policy and the fits see (the true offset still decides the
cost and success), a stand-in for a latent that reads the block's position imprecisely;
``--offset-saturation S`` shows them S tanh(offset / S) instead, a reading that is exact
near the aim and compressed far from it, so that the cost is no longer a quadratic of what
they see. ``--cost-segments`` fits one cost per that many parts of the horizon.
Prints one line per iteration (the
noisy rollouts' and the mean action's final distance and success on ``--eval-episodes``
seeds), then the last policy's mean action on the 50 evaluation seeds of
``solar_ros.learn.evaluate`` with its 95% Wilson interval and the mean true offset before
the last step (its bias). Run with the workspace
environment:

    python scripts/state_lqr_flm.py [--task 1] [--kl-step 1.0] [--init-std 0.15]
        [--rollouts 10] [--iterations 10] [--data-strength 1.0] [--final-cost-weight 10]
        [--min-step-mult 0.1] [--max-step-mult 10]
        [--prior-episodes 60] [--prior-std 0.3] [--prior-scale 1e-5] [--squared-distance]
        [--known-cost] [--goal-clearance 0.0] [--offset-noise 0.0]
        [--offset-saturation 0.0] [--cost-segments 1]
        [--eval-episodes 10]
"""

import argparse
from typing import Optional, Tuple

import numpy as np
from solar_ros.core.cost import QuadraticCost
from solar_ros.core.local_dynamics import observed_trajectories, transition_stats
from solar_ros.core.lqr_flm import LQRFLM, LQRFLMConfig
from solar_ros.core.mniw import MNIW
from solar_ros.core.policy import LinearGaussianPolicy
from solar_ros.learn.evaluate import EVAL_SEED_BASE, wilson_interval
from solar_ros.sim.sawyer_config import SawyerStackConfig
from solar_ros.sim.sawyer_env import SawyerStackEnv
import torch

STATE_DIM = 10  # 7 joint angles and the 3-D block-to-goal offset
PRIOR_SEED = 600_000_000  # first seed of the random episodes behind the prior
FINAL_EPISODES = 50  # evaluation seeds of the last policy


def state(env: SawyerStackEnv) -> np.ndarray:
    """Return the true state of the arm, (10,): joint angles (rad), block minus aim point (m)."""
    return np.concatenate([env.joint_positions(), env.aim_offset()])


def rollout(env: SawyerStackEnv, policy: LinearGaussianPolicy, task: int, seed: int,
            rng: Optional[np.random.Generator],
            offset_noise: float = 0.0, saturation: float = 0.0) -> Tuple[np.ndarray, ...]:
    """Run one episode of ``policy``, with noise drawn from ``rng`` (None: the mean action).

    ``offset_noise`` (m) is the std of white noise on the offset the policy sees, drawn from
    a generator seeded by ``seed``, so a seed's observation noise is the same for every
    policy; ``saturation`` (m, 0: none) S replaces the offset seen by S tanh(offset / S).

    Returns:
        states (T, 10) as the policy saw them, actions (T, 7) rad/s, costs (T,), final
        distance (m), success, true offset before the last step (3,) m.

    """
    env.reset(task=task, seed=seed)
    sensor = np.random.default_rng(seed)
    states, actions, costs = [], [], []
    for t in range(env.horizon):
        s = state(env)
        offset = s[7:].copy()
        if saturation:
            s[7:] = saturation * np.tanh(offset / saturation)
        s[7:] += offset_noise * sensor.standard_normal(3)
        noise = np.zeros(env.action_dim) if rng is None else rng.standard_normal(env.action_dim)
        _, cost, _, info = env.step(policy.act(t, s, noise))
        states.append(s)
        actions.append(np.asarray(info['action']))
        costs.append(cost)
    return (np.array(states), np.array(actions), np.array(costs), info['final_distance'],
            info['success'], offset)


def main() -> None:
    """Run the iterations and print the progress."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', type=int, default=1)
    parser.add_argument('--kl-step', type=float, default=1.0)
    parser.add_argument('--init-std', type=float, default=0.15)
    parser.add_argument('--rollouts', type=int, default=10)
    parser.add_argument('--iterations', type=int, default=10)
    parser.add_argument('--data-strength', type=float, default=1.0)
    parser.add_argument('--final-cost-weight', type=float, default=10.0)
    parser.add_argument('--min-step-mult', type=float, default=0.1)
    parser.add_argument('--max-step-mult', type=float, default=10.0,
                        help='equal to --min-step-mult: a fixed KL step of kl_step * mult')
    parser.add_argument('--prior-episodes', type=int, default=60,
                        help='random episodes behind the global dynamics prior')
    parser.add_argument('--prior-std', type=float, default=0.3,
                        help='joint-velocity noise of those episodes, rad/s')
    parser.add_argument('--prior-scale', type=float, default=1e-5,
                        help='S0 of the MNIW prior, the expected process noise covariance '
                             '(rad^2, m^2): 1e-5 is about 3 mm per step')
    parser.add_argument('--squared-distance', action='store_true',
                        help="the environment's squared distance cost, (d / 0.1 m)^2")
    parser.add_argument('--goal-clearance', type=float, default=0.0,
                        help='height of the aim point above the resting goal point, m')
    parser.add_argument('--known-cost', action='store_true',
                        help='give LQR-FLM the squared distance cost exactly (implies '
                             '--squared-distance)')
    parser.add_argument('--offset-noise', type=float, default=0.0,
                        help='std of the white noise on the offset the policy and fits see, m')
    parser.add_argument('--offset-saturation', type=float, default=0.0,
                        help='S: the policy and fits see S tanh(offset / S), m (0: the offset)')
    parser.add_argument('--cost-segments', type=int, default=1,
                        help='one quadratic cost fit per this many parts of the horizon')
    parser.add_argument('--eval-episodes', type=int, default=10,
                        help='noise-free episodes per iteration (0: none)')
    args = parser.parse_args()
    squared = args.squared_distance or args.known_cost
    env = SawyerStackEnv(SawyerStackConfig(
        render=False, distance_cost='squared' if squared else 'linear',
        goal_clearance=args.goal_clearance))
    du, horizon = env.action_dim, env.horizon
    R = torch.diag(torch.as_tensor(env.config.action_cost, dtype=torch.float64))
    known = known_cost(R, env.config.distance_scale, horizon) if args.known_cost else None
    lqr = LQRFLM(STATE_DIM, du, horizon,
                 LQRFLMConfig(kl_step=args.kl_step, init_std=args.init_std,
                              data_strength=args.data_strength,
                              final_cost_weight=args.final_cost_weight,
                              min_step_mult=args.min_step_mult,
                              max_step_mult=args.max_step_mult,
                              cost_segments=args.cost_segments),
                 action_cost=R, known_cost=known)
    prior = MNIW.prior(STATE_DIM, du, horizon, scale=args.prior_scale)
    seen = {'offset_noise': args.offset_noise, 'saturation': args.offset_saturation}
    rng = np.random.default_rng(0)
    if args.prior_episodes:
        noise = LinearGaussianPolicy.initial(horizon, STATE_DIM, du, args.prior_std)
        runs = [rollout(env, noise, args.task, PRIOR_SEED + i, rng, **seen)
                for i in range(args.prior_episodes)]
        S, A = (torch.tensor(np.array([r[i] for r in runs]), dtype=torch.float64)
                for i in range(2))
        prior = prior.posterior(transition_stats(S, A))
    seed = 0
    for iteration in range(args.iterations + 1):
        runs = [rollout(env, lqr.policy, args.task, seed + i, rng, **seen)
                for i in range(args.rollouts)]
        seed += args.rollouts
        line = (f'iteration {iteration}: {seed} episodes, noisy: final distance '
                f'{np.mean([r[3] for r in runs]):.3f} m, '
                f'success {np.mean([r[4] for r in runs]):.0%}')
        if args.eval_episodes:
            means = [rollout(env, lqr.policy, args.task, EVAL_SEED_BASE + i, None, **seen)
                     for i in range(args.eval_episodes)]
            line += (f'; mean action: {np.mean([r[3] for r in means]):.3f} m, '
                     f'success {np.mean([r[4] for r in means]):.0%}')
        print(f'{line}; step_mult {lqr.step_mult:.2f}', flush=True)
        if iteration == args.iterations:
            break
        S, A, C = (torch.tensor(np.array([r[i] for r in runs]), dtype=torch.float64)
                   for i in range(3))
        lqr.update(observed_trajectories(S, A), A, C, prior=prior)
    final = [rollout(env, lqr.policy, args.task, EVAL_SEED_BASE + i, None, **seen)
             for i in range(FINAL_EPISODES)]
    successes = sum(bool(r[4]) for r in final)
    low, high = wilson_interval(successes, FINAL_EPISODES)
    print(f'policy {args.iterations} on {FINAL_EPISODES} evaluation seeds: success '
          f'{successes / FINAL_EPISODES:.0%} [{low:.0%}-{high:.0%}], final distance '
          f'{np.mean([r[3] for r in final]):.3f} m, mean offset before the last step '
          f'(x, y, z) {np.round(100 * np.mean([r[5] for r in final], axis=0), 2)} cm')


def known_cost(action_cost: torch.Tensor, scale: float, horizon: int) -> QuadraticCost:
    """Return the squared distance cost on x = [joints, offset, action], exactly quadratic.

    cost = |offset|^2 / scale^2 + 1/2 a^T R a, so C has 2 / scale^2 on the offset block
    and R on the action block (T, 17, 17); c = 0.
    """
    du = action_cost.shape[0]
    C = torch.zeros(STATE_DIM + du, STATE_DIM + du, dtype=torch.float64)
    C[7:STATE_DIM, 7:STATE_DIM] = 2.0 / scale ** 2 * torch.eye(3, dtype=torch.float64)
    C[STATE_DIM:, STATE_DIM:] = action_cost
    return QuadraticCost.tiled(C, torch.zeros(STATE_DIM + du, dtype=torch.float64), 0.0,
                               horizon)


if __name__ == '__main__':
    main()
