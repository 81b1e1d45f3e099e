"""The SOLAR loop in one process: drive an environment and a :class:`SolarLearner`.

Any environment works that :func:`solar_ros.learn.rollout.run_episode` runs. Each episode
is recorded as it completes; each time the learner has enough episodes it updates the
policy. Killed and started again on the same run directory, the loop continues from the
learner's last checkpoint (see :mod:`solar_ros.learn.learner`).
"""

from pathlib import Path
from typing import Any, Callable, Union

import numpy as np
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.online import episode_noise
from solar_ros.learn.agent import LatentAgent, make_agent, MPCAgent
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode
from solar_ros.learn.learner import SolarLearner
from solar_ros.learn.probe import can_probe, load_or_collect
from solar_ros.learn.rollout import run_episode


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
        """Collect and learn until ``loop.iterations`` policy updates are done.

        With ``loop.check_rollouts`` the last policy then runs its checks, the policies tied
        at the top run their tie checks (``loop.tie_checks``, :meth:`SolarLearner.recheck`)
        and the run ends on the best-checked policy (:meth:`SolarLearner.finish`).
        """
        learner = self.learner
        if learner.pending():
            self.log(f'reusing {learner.pending()} recorded episodes of policy '
                     f'{learner.policy_version}')
        while True:
            if learner.ready():
                learner.update()
                continue
            learner.recheck()
            count, mean_action = learner.next_request()
            if not count:
                break
            agent = make_agent(self.config.loop.method, learner.model, learner.gains,
                               self.config.mpc)
            for _ in range(count):
                seed = learner.next_check_seed() if mean_action else \
                    learner.episode_seed(len(learner.store))
                learner.record(self.rollout(agent, seed, mean_action))
        learner.finish()
        return learner.gains

    def rollout(self, agent: Union[LatentAgent, MPCAgent], seed: int,
                mean_action: bool = False) -> Episode:
        """Run an episode from reset seed ``seed`` with ``agent`` and return it.

        ``mean_action`` runs it without exploration noise (a check, ``loop.check_rollouts``).
        """
        shape = (self.env.horizon, self.env.action_dim)
        noise = np.zeros(shape) if mean_action else \
            episode_noise(*shape, seed, self.config.loop.smooth_noise)
        return run_episode(self.env, agent, self.config.loop.task, seed, noise)
