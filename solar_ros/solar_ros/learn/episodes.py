"""Recorded episodes, one NumPy ``.npz`` file each, written atomically as they complete.

An episode file holds ``images (T + 1, H, W, 3 V) uint8`` (the frame after reset and one
after each step; V camera views stacked on the channel axis), ``actions (T, du) float64``
(the commands actually sent), ``costs (T,) float64`` (the cost returned by each step) and
scalars ``task``, ``seed``, ``success``,
``final_distance`` (metres or the environment's unit) and ``policy_version``; from an
in-process simulation also ``aim_offsets (T, d) float64``, the true offset of the block (or
mass) from the aim point before each action. The format is
plain ``numpy.load``; any tool reads it. Files are written to a temporary name and renamed,
so a crash never leaves a half-written episode under its final name.
"""

from dataclasses import dataclass
import os
from pathlib import Path
import tempfile
from typing import Any, Iterator, List, Optional
import warnings

import numpy as np

EPISODE_GLOB = 'episode_*.npz'


class EpisodeFormatError(ValueError):
    """An episode has inconsistent shapes, bad values, or its file cannot be read."""


@dataclass
class Episode:
    """One rollout as recorded.

    Attributes:
        images: (T + 1, H, W, 3 V) uint8 RGB frames of V views stacked on the channel
            axis; frame t is seen before action t.
        actions: (T, du) float64 commands sent, in the environment's units (rad/s).
        costs: (T,) float64 cost of each step.
        task: task id the episode ran.
        seed: seed of the reset.
        success: whether the episode ended in success.
        final_distance: distance to the goal at the end.
        policy_version: version of the policy that produced it (0 = random).
        explored: whether the policy's exploration noise was on; False for a check
            episode run by the policy's mean action (``loop.check_rollouts``).
        aim_offsets: (T, d) float64 true offset from the aim point before each action
            (the environment's ``aim_offset()``: the held block's x, y, z on the arm, m),
            or None where the truth is not known (a real arm, episodes from the nodes).

    """

    images: np.ndarray
    actions: np.ndarray
    costs: np.ndarray
    task: int
    seed: int
    success: bool
    final_distance: float
    policy_version: int = 0
    explored: bool = True
    aim_offsets: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        """Check the shapes agree and every value is finite; raise EpisodeFormatError."""
        self.images = np.asarray(self.images)
        self.actions = np.asarray(self.actions, dtype=np.float64)
        self.costs = np.asarray(self.costs, dtype=np.float64)
        if (self.images.dtype != np.uint8 or self.images.ndim != 4
                or self.images.shape[-1] % 3 or self.images.shape[-1] == 0):
            raise EpisodeFormatError(
                f'images: expected (T + 1, H, W, 3 V) uint8, got {self.images.shape} '
                f'{self.images.dtype}')
        horizon = self.images.shape[0] - 1
        if self.actions.ndim != 2 or self.actions.shape[0] != horizon:
            raise EpisodeFormatError(
                f'actions: expected ({horizon}, du) for {horizon + 1} images, '
                f'got {self.actions.shape}')
        if self.costs.shape != (horizon,):
            raise EpisodeFormatError(f'costs: expected ({horizon},), got {self.costs.shape}')
        for name in ('actions', 'costs'):
            if not np.all(np.isfinite(getattr(self, name))):
                raise EpisodeFormatError(f'{name}: contains NaN or inf')
        if self.aim_offsets is not None:
            self.aim_offsets = np.asarray(self.aim_offsets, dtype=np.float64)
            if self.aim_offsets.ndim != 2 or self.aim_offsets.shape[0] != horizon:
                raise EpisodeFormatError(f'aim_offsets: expected ({horizon}, d), '
                                         f'got {self.aim_offsets.shape}')
            if not np.all(np.isfinite(self.aim_offsets)):
                raise EpisodeFormatError('aim_offsets: contains NaN or inf')
        if not np.isfinite(self.final_distance):
            raise EpisodeFormatError(f'final_distance: not finite ({self.final_distance})')

    @property
    def horizon(self) -> int:
        """Return the number of steps T."""
        return int(self.actions.shape[0])

    def save(self, path: Path) -> None:
        """Write the episode to ``path`` atomically (temporary file, then rename)."""
        truth = {} if self.aim_offsets is None else {'aim_offsets': self.aim_offsets}
        write_npz(path, images=self.images, actions=self.actions, costs=self.costs,
                  task=self.task, seed=self.seed, success=self.success,
                  final_distance=self.final_distance, policy_version=self.policy_version,
                  explored=self.explored, **truth)

    @classmethod
    def load(cls, path: Path) -> 'Episode':
        """Read an episode written by :meth:`save`; raise EpisodeFormatError if unreadable."""
        try:
            with np.load(path) as data:
                return cls(images=data['images'], actions=data['actions'],
                           costs=data['costs'], task=int(data['task']),
                           seed=int(data['seed']), success=bool(data['success']),
                           final_distance=float(data['final_distance']),
                           policy_version=int(data['policy_version']),
                           explored=bool(data['explored']) if 'explored' in data else True,
                           aim_offsets=data['aim_offsets'] if 'aim_offsets' in data else None)
        except (OSError, KeyError, ValueError) as error:
            if isinstance(error, EpisodeFormatError):
                raise EpisodeFormatError(f'{path}: {error}') from error
            raise EpisodeFormatError(f'{path}: not a readable episode file ({error})') from error


def write_npz(path: Path, **arrays: Any) -> None:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically (temporary file, synced, renamed).

    A crash leaves either the old file or the new one under ``path``, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix='.tmp_', suffix='.npz')
    try:
        with os.fdopen(handle, 'wb') as out:
            np.savez(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EpisodeStore:
    """The episodes of one run, numbered in the order they completed, in one directory.

    A new episode gets the number after the highest on disk, so a missing file leaves a gap
    and never makes a later episode overwrite an earlier one. A file that cannot be read is
    moved to ``corrupt/`` with a warning naming it, and the others load as before.
    """

    def __init__(self, directory: Path) -> None:
        """Use (and create) ``directory``; remove temporary files a crash left mid-write."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        for orphan in self.directory.glob('.tmp_*.npz'):
            orphan.unlink(missing_ok=True)

    def paths(self) -> List[Path]:
        """Return the episode files in completion order."""
        return sorted(self.directory.glob(EPISODE_GLOB))

    def __len__(self) -> int:
        """Return the number of stored episodes."""
        return len(self.paths())

    def append(self, episode: Episode) -> Path:
        """Store ``episode`` under the number after the highest stored; return its path."""
        paths = self.paths()
        number = int(paths[-1].stem.split('_')[1]) + 1 if paths else 0
        path = self.directory / f'episode_{number:06d}.npz'
        episode.save(path)
        return path

    def load(self, start: int = 0, stop: Optional[int] = None) -> List[Episode]:
        """Return the stored episodes at positions ``start`` up to (not including) ``stop``."""
        episodes = (self._read(path) for path in self.paths()[start:stop])
        return [episode for episode in episodes if episode is not None]

    def __iter__(self) -> Iterator[Episode]:
        """Iterate over every readable stored episode in order."""
        return (e for e in (self._read(path) for path in self.paths()) if e is not None)

    def _read(self, path: Path) -> Optional[Episode]:
        """Return the episode in ``path``, or None after moving an unreadable file aside."""
        try:
            return Episode.load(path)
        except EpisodeFormatError as error:
            aside = self.directory / 'corrupt'
            aside.mkdir(exist_ok=True)
            path.replace(aside / path.name)
            warnings.warn(f'{error}; moved to {aside}', RuntimeWarning, stacklevel=3)
            return None
