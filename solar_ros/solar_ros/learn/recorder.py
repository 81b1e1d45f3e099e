"""Assemble whole episodes from the three streams a running arm produces.

The learner node feeds it what arrives on the topics: episode events (start, step, end)
and camera frames, matched by their header stamps (the sim stamps the frame and the event
of one step alike; a real arm's bridge must do the same), and the controller's note of the
policy that runs each episode. Each STEP event carries the action the arm applied in that
step (after clipping; zero for a rejected command), so what is recorded is what the arm
did, aligned with the frames, whatever was published on the command topic. Topics are not
ordered with respect to one another, so every piece is buffered until the episode is
complete: the end event seen, the policy known, T + 1 frames and T steps. No ROS import.

Where the START and STEP events carry the held block's offset from the aim point (the
simulator's truth, ``EpisodeEvent.aim_offset``), the episode keeps the T offsets seen
before its actions (``Episode.aim_offsets``, which ``loop.lqr_cost: residuals`` fits the
cost to); where any of them is missing, it has none.

A recorded episode's ``seed`` is the reset seed its START event carries (the simulator's),
or the sim's episode id where the event has none (a real arm); its ``final_distance`` is
the one the END event reports, as ``learn.run`` records it. An
episode that is still incomplete when the next one starts is dropped and counted in
:attr:`EpisodeRecorder.dropped`, and so is one whose END arrives without its START (the
recorder subscribed after the episode began: a publisher is discovered before it sends
to a new subscriber), so that the learner asks for it again instead of waiting for it.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
from solar_ros.learn.episodes import Episode, EpisodeFormatError

START, STEP, END = 0, 1, 2  # solar_ros_msgs/EpisodeEvent kinds
EARLY_FRAMES = 8  # frames kept that arrive before their episode's start event
EARLY_POLICIES = 8  # policy notes kept that arrive before their episode's start event


@dataclass
class _Pending:
    """An episode being assembled."""

    episode_id: int
    task: int
    policy_version: Optional[int]
    seed: int  # the reset seed, or the episode id where the START event has none
    stamps: Dict[int, int] = field(default_factory=dict)  # step -> stamp (ns)
    costs: Dict[int, float] = field(default_factory=dict)  # step k -> cost of step k
    actions: Dict[int, np.ndarray] = field(default_factory=dict)  # step k -> action of step k
    offsets: Dict[int, np.ndarray] = field(default_factory=dict)  # step k -> (d,) m after step k
    explored: bool = True  # False: the START event asked for the mean action
    ended: bool = False
    success: bool = False
    final_distance: float = float('nan')


class EpisodeRecorder:
    """Turn events and frames into :class:`Episode` records."""

    def __init__(self, horizon: int, action_dim: int) -> None:
        """Record episodes of ``horizon`` steps with actions of ``action_dim`` values."""
        self.horizon = horizon
        self.action_dim = action_dim
        self._frames: Dict[int, np.ndarray] = {}  # stamp (ns) -> (H, W, 3) uint8
        self._episode: Optional[_Pending] = None
        self._policies: Dict[int, int] = {}  # episode id -> policy version, not yet started
        self._last_started = -1  # the highest episode id whose START was taken
        self.dropped = 0
        self.last_problem = ''  # why the last episode was dropped

    def on_event(self, kind: int, episode_id: int, task: int, step: int, cost: float,
                 success: bool, final_distance: float, stamp_ns: int,
                 action: Sequence[float] = (), mean_action: bool = False,
                 aim_offset: Sequence[float] = (),
                 seed: Optional[int] = None) -> Optional[Episode]:
        """Take an episode event; return the episode if it is now complete.

        Args:
            kind: START, STEP or END.
            episode_id: the sim's episode counter.
            task: task id of the episode.
            step: steps taken when the event was sent (0 at START, k after step k).
            cost: cost of the step (STEP) or of the last step (END).
            success: at END, whether the episode succeeded.
            final_distance: at END, the released block's distance to the goal, m.
            stamp_ns: header stamp in nanoseconds.
            action: at STEP, the (du,) action applied in the step, rad/s.
            mean_action: at START, whether the episode runs without exploration noise
                (recorded as ``Episode.explored`` False).
            aim_offset: at START and STEP, the (d,) offset of the held block from the aim
                point in the state after ``step`` steps, m; empty where not known.
            seed: at START, the seed the reset started from; None where it has none (the
                episode is then recorded with ``episode_id`` as its seed).

        Raises:
            ValueError: a STEP action of the wrong length or not finite, or an offset
                that is not finite or of another length than the episode's others (the
                event is not taken, so its episode will be dropped).

        """
        if kind == START and self._episode is not None \
                and self._episode.episode_id == episode_id:
            return None  # a resent copy of this episode's start
        offset = np.asarray(aim_offset, dtype=np.float64)
        if kind in (START, STEP) and not np.all(np.isfinite(offset)):
            raise ValueError(f'event {step} of episode {episode_id}: aim offset not finite '
                             f'({offset.tolist()}); the episode will be dropped')
        if kind == START:
            if self._episode is not None and not self._complete():
                self.dropped += 1
                self.last_problem = (f'episode {self._episode.episode_id} dropped: '
                                     'incomplete when the next one started')
            self._episode = _Pending(episode_id, task, self._policies.pop(episode_id, None),
                                     episode_id if seed is None else seed,
                                     explored=not mean_action)
            self._episode.stamps[0] = stamp_ns
            self._keep_offset(0, offset)
            self._last_started = max(self._last_started, episode_id)
        elif self._episode is None or self._episode.episode_id != episode_id:
            if kind == END and episode_id > self._last_started:
                self.dropped += 1
                self.last_problem = (f'episode {episode_id} dropped: it ended, but its start '
                                     'was not received')
            return None
        elif kind == STEP:
            applied = np.asarray(action, dtype=np.float64)
            if applied.shape != (self.action_dim,):
                raise ValueError(f'STEP {step} of episode {episode_id}: action of shape '
                                 f'{applied.shape}, expected ({self.action_dim},)')
            if not np.all(np.isfinite(applied)):
                raise ValueError(f'STEP {step} of episode {episode_id}: action not finite '
                                 f'({applied.tolist()}); the episode will be dropped')
            self._keep_offset(step, offset)
            self._episode.stamps[step] = stamp_ns
            self._episode.costs[step] = float(cost)
            self._episode.actions[step] = applied
        elif kind == END:
            self._episode.ended = True
            self._episode.success = bool(success)
            self._episode.final_distance = float(final_distance)
        return self._finish()

    def on_policy(self, episode_id: int, policy_version: int) -> Optional[Episode]:
        """Take the version of the policy that runs episode ``episode_id``.

        Returns the episode if it is now complete.
        """
        if self._episode is not None and self._episode.episode_id == episode_id:
            self._episode.policy_version = int(policy_version)
            return self._finish()
        self._policies[episode_id] = int(policy_version)
        for early in sorted(self._policies)[:-EARLY_POLICIES]:
            del self._policies[early]
        return None

    def on_frame(self, image: np.ndarray, stamp_ns: int) -> Optional[Episode]:
        """Take a camera frame (H, W, 3) uint8; return the episode if it is now complete."""
        self._frames[stamp_ns] = image
        wanted = set(self._episode.stamps.values()) if self._episode is not None else set()
        stale = [s for s in self._frames if s not in wanted]
        for stamp in sorted(stale)[:-EARLY_FRAMES]:
            del self._frames[stamp]
        return self._finish()

    def _keep_offset(self, step: int, offset: np.ndarray) -> None:
        """Keep the pending episode's offset after ``step`` steps, if the event had one.

        Raises:
            ValueError: its length differs from the episode's earlier offsets.

        """
        if not offset.size:
            return
        sizes = {kept.size for kept in self._episode.offsets.values()}
        if sizes and sizes != {offset.size}:
            raise ValueError(f'event {step} of episode {self._episode.episode_id}: aim offset '
                             f'of {offset.size} values, earlier ones {sizes.pop()}; the '
                             'episode will be dropped')
        self._episode.offsets[step] = offset

    def _complete(self) -> bool:
        """Return whether the pending episode has every piece."""
        episode = self._episode
        steps = range(self.horizon + 1)
        return (episode is not None and episode.ended and episode.policy_version is not None
                and all(k in episode.stamps and episode.stamps[k] in self._frames
                        for k in steps)
                and all(k in episode.costs and k in episode.actions
                        for k in range(1, self.horizon + 1)))

    def _finish(self) -> Optional[Episode]:
        """Return and forget the pending episode once complete."""
        if not self._complete():
            return None
        episode = self._episode
        images = np.stack([self._frames.pop(episode.stamps[k])
                           for k in range(self.horizon + 1)])
        steps = range(1, self.horizon + 1)
        costs = np.array([episode.costs[k] for k in steps])
        actions = np.stack([episode.actions[k] for k in steps])
        before = range(self.horizon)  # the offset seen before each action
        offsets = (np.stack([episode.offsets[k] for k in before])
                   if all(k in episode.offsets for k in before) else None)
        self._episode = None
        try:
            return Episode(images=images, actions=actions, costs=costs,
                           task=episode.task, seed=episode.seed,
                           success=episode.success, final_distance=episode.final_distance,
                           policy_version=episode.policy_version,
                           explored=episode.explored, aim_offsets=offsets)
        except EpisodeFormatError as error:  # e.g. a non-finite cost: never stored
            self.dropped += 1
            self.last_problem = f'episode {episode.episode_id} dropped: {error}'
            return None
