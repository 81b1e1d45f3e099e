"""The one place that names the files of a run directory.

Layout::

    config.yaml                        the settings used
    episodes/episode_NNNNNN.npz        every episode, written as it is recorded (learn.episodes)
    checks/episode_NNNNNN.npz          the check episodes (loop.check_rollouts), kept apart
    checkpoints/model_NNNN.ckpt        the model that policy NNNN acts in
    checkpoints/learner_NNNN.ckpt      policy NNNN, its filter dynamics and the LQR-FLM state;
                                       written last, so its presence marks policy NNNN complete
    metrics.csv                        one row per policy update
    tensorboard/policy/                the same rows (``policy/*``, by episodes recorded)
    tensorboard/model/                 the model's ELBO terms (``model/*``, by model update)
    probe.npz                          the probe's episodes (learn.probe), made on first use
    validation.csv                     every policy on the validation seeds (learn.validate)
    evaluation_policy_NNNN.csv         policy NNNN on the evaluation seeds (learn.evaluate)

A pretrained folder (``solar_ros/pretrained/*``) has the same layout, without episodes.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import List


@dataclass(frozen=True)
class RunDir:
    """Paths of the files of the run directory ``root`` (nothing is created or read)."""

    root: Path

    def __post_init__(self) -> None:
        """Store ``root`` as a Path."""
        object.__setattr__(self, 'root', Path(self.root))

    @property
    def config(self) -> Path:
        """Return the path of the run's settings, config.yaml."""
        return self.root / 'config.yaml'

    @property
    def episodes(self) -> Path:
        """Return the folder of the recorded episodes."""
        return self.root / 'episodes'

    @property
    def checkpoints(self) -> Path:
        """Return the folder of the model and learner checkpoints."""
        return self.root / 'checkpoints'

    @property
    def metrics(self) -> Path:
        """Return the path of the per-update metrics table."""
        return self.root / 'metrics.csv'

    @property
    def tensorboard(self) -> Path:
        """Return the TensorBoard log folder."""
        return self.root / 'tensorboard'

    @property
    def checks(self) -> Path:
        """Return the folder of the check episodes, which no update fits on."""
        return self.root / 'checks'

    @property
    def probe(self) -> Path:
        """Return the path of the probe's episodes."""
        return self.root / 'probe.npz'

    @property
    def validation(self) -> Path:
        """Return the path of the validation table."""
        return self.root / 'validation.csv'

    def model(self, version: int) -> Path:
        """Return the path of the model checkpoint of policy ``version``."""
        return self.checkpoints / f'model_{version:04d}.ckpt'

    def learner(self, version: int) -> Path:
        """Return the path of the learner checkpoint of policy ``version``."""
        return self.checkpoints / f'learner_{version:04d}.ckpt'

    def evaluation(self, version: int) -> Path:
        """Return the name of policy ``version``'s evaluation table, in this folder."""
        return self.root / f'evaluation_policy_{version:04d}.csv'

    def evaluation_episodes(self, version: int) -> Path:
        """Return the name of policy ``version``'s per-episode evaluation table."""
        return self.root / f'evaluation_policy_{version:04d}_episodes.csv'

    def completed_policies(self) -> List[int]:
        """Return the versions whose learner checkpoint exists, in ascending order."""
        return sorted(int(path.stem.split('_')[1])
                      for path in self.checkpoints.glob('learner_*.ckpt'))

    def models(self) -> List[int]:
        """Return the versions whose model checkpoint exists, in ascending order."""
        return sorted(int(path.stem.split('_')[1])
                      for path in self.checkpoints.glob('model_*.ckpt'))
