"""The SOLAR loop in one process: drive an environment and a :class:`SolarLearner`.

Any environment works that has ``horizon``, ``action_dim``, ``reset(task, seed) -> image``
and ``step(action) -> (image, cost, done, info)``, where ``info['action']`` is the action
actually applied (after clipping) and the last step's ``info`` holds ``success`` and
``final_distance``. Each episode is recorded as it completes; each time the learner has
enough episodes it updates the policy. Killed and started again on the same run
directory, the loop continues from the learner's last checkpoint (see
:mod:`solar_ros.learn.learner`).
"""

from pathlib import Path
from typing import Any, Callable, Dict, Union

import numpy as np
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.online import episode_noise
from solar_ros.learn.agent import LatentAgent, make_agent, MPCAgent
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode
from solar_ros.learn.learner import SolarLearner
from solar_ros.learn.probe import can_probe, load_or_collect


class SolarLoop:
    """One SOLAR run on one in-process environment."""

    def __init__(self, env: Any, config: RunConfig, run_dir: Path,
                 log: Callable[[str], None] = print) -> None:
        """Open (or resume) the run in ``run_dir`` on ``env``.

        Raises:
            ValueError: the environment's camera views (``env.views``, default 1) differ
                from the model's ``views``.
        """
        views = getattr(env, 'views', 1)
        if views != config.model.get('views', 1):
            raise ValueError(f'the environment renders {views} camera view(s) but '
                             f'model.views is {config.model.get("views", 1)}; set both alike')
        self.env = env
        self.config = config
        self.log = log
        self.learner = SolarLearner(config, env.horizon, env.action_dim, run_dir, log)
        if can_probe(env):
            self.learner.probe = load_or_collect(run_dir, env, config)

    def run(self) -> TimeVaryingGains:
        """Collect and learn until ``loop.iterations`` policy updates are done."""
        learner = self.learner
        if learner.pending():
            self.log(f'reusing {learner.pending()} recorded episodes of policy '
                     f'{learner.policy_version}')
        while learner.policy_version < self.config.loop.iterations:
            agent = make_agent(self.config.loop.method, learner.model, learner.gains,
                               self.config.mpc)
            while not learner.ready():
                learner.record(self.rollout(agent, len(learner.store)))
            learner.update()
        return learner.gains

    def rollout(self, agent: Union[LatentAgent, MPCAgent], index: int) -> Episode:
        """Run episode number ``index`` of the run with ``agent`` and return it."""
        seed = self.learner.episode_seed(index)
        noise = episode_noise(self.env.horizon, self.env.action_dim, seed,
                              self.config.loop.smooth_noise)
        return run_episode(self.env, agent, self.config.loop.task, seed, noise)


def run_episode(env: Any, agent: Union[LatentAgent, MPCAgent], task: int, seed: int,
                noise: np.ndarray) -> Episode:
    """Run one episode of ``task`` from reset seed ``seed`` and return it as recorded.

    Args:
        env: the environment (module docstring).
        agent: acts on each frame; told the action actually applied after each step.
        task: task id of the reset.
        seed: reset seed.
        noise: (T, du) standard-normal exploration noise (zeros: the mean action).

    """
    image = env.reset(task=task, seed=seed)
    agent.reset(noise)
    images, actions, costs = [image], [], []
    info: Dict[str, Any] = {}
    for t in range(env.horizon):
        action = agent.act(image)
        image, cost, done, info = env.step(action)
        applied = np.asarray(info.get('action', action), dtype=np.float64)
        if t + 1 < env.horizon:
            agent.observe_action(applied)
        images.append(image)
        actions.append(applied)
        costs.append(cost)
        if done:
            break
    return Episode(images=np.stack(images), actions=np.stack(actions),
                   costs=np.asarray(costs), task=task, seed=seed,
                   success=bool(info.get('success', False)),
                   final_distance=float(info.get('final_distance', np.nan)),
                   policy_version=agent.policy_version)
