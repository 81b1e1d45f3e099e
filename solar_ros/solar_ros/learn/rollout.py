"""One episode of an environment driven by an agent, recorded as an :class:`Episode`.

Any environment works that has ``horizon``, ``action_dim``, ``reset(task, seed) -> image``
and ``step(action) -> (image, cost, done, info)``, where ``info['action']`` is the action
actually applied (after clipping) and the last step's ``info`` holds ``success`` and
``final_distance``; an environment with ``aim_offset()`` (the simulators) also has the true
offset from the aim point recorded before each action (``Episode.aim_offsets``). An agent
has ``reset(noise)``, ``act(image) -> action``, ``observe_action(applied)`` and
``policy_version``: the SOLAR and MPC agents of :mod:`solar_ros.learn.agent`, or
:class:`NoiseAgent`, the random policy.
"""

from typing import Any, Callable, Dict, List, Optional

import numpy as np
from solar_ros.learn.episodes import Episode


class NoiseAgent:
    """The random policy: action t is ``std`` times the episode's noise at t (rad/s)."""

    policy_version = 0

    def __init__(self, std: float) -> None:
        """Act with standard deviation ``std`` (rad/s)."""
        self.std = std
        self._noise = np.zeros((0, 0))
        self._step = 0

    def reset(self, noise: np.ndarray) -> None:
        """Start an episode with ``noise`` (T, du), standard normal."""
        self._noise, self._step = noise, 0

    def act(self, image: np.ndarray) -> np.ndarray:
        """Return the next (du,) action; ``image`` is not looked at."""
        action = self.std * self._noise[self._step]
        self._step += 1
        return action

    def observe_action(self, action: np.ndarray) -> None:
        """Ignore the applied action: the noise does not depend on it."""


def run_episode(env: Any, agent: Any, task: int, seed: int, noise: np.ndarray,
                before_action: Optional[Callable[[], None]] = None) -> Episode:
    """Run one episode of ``task`` from reset seed ``seed`` and return it as recorded.

    Args:
        env: the environment (module docstring).
        agent: acts on each frame; told the action actually applied after each step.
        task: task id of the reset.
        seed: reset seed.
        noise: (T, du) standard-normal exploration noise (zeros: the mean action).
        before_action: called before each action, with the environment in the state the
            frame shows (a probe reads the true state there).

    """
    image = env.reset(task=task, seed=seed)
    agent.reset(noise)
    images, actions, costs = [image], [], []
    truth = getattr(env, 'aim_offset', None)
    offsets: List[np.ndarray] = []
    info: Dict[str, Any] = {}
    for t in range(env.horizon):
        if truth is not None:
            offsets.append(np.asarray(truth(), dtype=np.float64))
        if before_action is not None:
            before_action()
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
                   policy_version=agent.policy_version, explored=bool(np.any(noise)),
                   aim_offsets=np.stack(offsets) if offsets else None)
