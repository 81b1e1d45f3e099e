"""Print the time of one LQR-FLM update (local fit, cost fit and KL dual search).

Random stable time-varying linear system, states observed directly, 20 rollouts per update,
the authors' default MNIW as global prior. Times are medians over repeats, in milliseconds,
single-threaded torch float64 on the CPU.

Usage: python bench/lqr_speed.py [--repeats 5]
"""

import argparse
import statistics
import time
from typing import List, Tuple

from solar_ros.core.cost import QuadraticCost
from solar_ros.core.lds import LDSParams
from solar_ros.core.local_dynamics import observed_trajectories
from solar_ros.core.lqr import lqr_backward, solve_kl_step
from solar_ros.core.lqr_flm import LQRFLM
from solar_ros.core.mniw import MNIW
from solar_ros.core.policy import LinearGaussianPolicy
import torch

DT = torch.float64
CASES: List[Tuple[int, int, int]] = [(4, 2, 20), (10, 2, 50), (16, 7, 30)]


def make_problem(dx: int, du: int, horizon: int, rollouts: int = 20):
    """Return (system, cost, action_cost, states, actions, costs) for one benchmark case."""
    gen = torch.Generator().manual_seed(0)
    A = torch.eye(dx, dtype=DT) + 0.05 * torch.randn(horizon - 1, dx, dx, dtype=DT, generator=gen)
    B = 0.1 * torch.randn(horizon - 1, dx, du, dtype=DT, generator=gen)
    system = LDSParams(F=torch.cat([A, B], 2),
                       Q=1e-3 * torch.eye(dx, dtype=DT).expand(horizon - 1, dx, dx).clone(),
                       mu0=torch.ones(dx, dtype=DT), P0=0.01 * torch.eye(dx, dtype=DT))
    R = 0.1 * torch.eye(du, dtype=DT)
    cost = QuadraticCost.tiled(torch.block_diag(torch.eye(dx, dtype=DT), R),
                               torch.zeros(dx + du, dtype=DT), 0.0, horizon)
    policy = LinearGaussianPolicy.initial(horizon, dx, du, std=0.5)
    s = system.mu0 + 0.1 * torch.randn(rollouts, dx, dtype=DT, generator=gen)
    states, actions = [], []
    for t in range(horizon):
        a = policy.act(t, s, generator=gen)
        states.append(s)
        actions.append(a)
        if t < horizon - 1:
            s = torch.cat([s, a], 1) @ system.F[t].T + 0.03 * torch.randn(
                rollouts, dx, dtype=DT, generator=gen)
    states, actions = torch.stack(states, 1), torch.stack(actions, 1)
    costs = cost.evaluate(torch.cat([states, actions], 2))
    return system, cost, R, states, actions, costs


def median_ms(fn, repeats: int) -> float:
    """Return the median wall time of ``fn()`` in milliseconds after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    """Time the update and its parts for each case and print one line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, 20 rollouts/update')
    for dx, du, horizon in CASES:
        system, cost, R, states, actions, costs = make_problem(dx, du, horizon)
        prior = MNIW.prior(dx, du, horizon)
        trajectories = observed_trajectories(states, actions)

        def update():
            learner = LQRFLM(dx, du, horizon, action_cost=R)
            return learner.update(trajectories, actions, costs, prior)

        result = update()
        old = LinearGaussianPolicy.initial(horizon, dx, du, std=0.5)
        total = median_ms(update, args.repeats)
        backward = median_ms(lambda: lqr_backward(system, cost, 1.0, old), args.repeats)
        dual = median_ms(lambda: solve_kl_step(system, cost, old, 2.0 * horizon), args.repeats)
        print(f'dx={dx:3d} du={du:2d} T={horizon:3d}: LQR-FLM update {total:8.1f} ms'
              f' ({result.dual_iterations} dual iterations); one backward pass'
              f' {backward:6.2f} ms; dual search alone {dual:7.1f} ms')


if __name__ == '__main__':
    main()
