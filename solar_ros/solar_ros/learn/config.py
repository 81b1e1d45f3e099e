"""Settings of a SOLAR run, read from one YAML file with sections env, model, lqr, loop, mpc.

Example (``solar_ros/config/point_mass.yaml``)::

    env:   {name: point_mass, horizon: 20}
    model: {latent_dim: 4, channels: 16}
    lqr:   {kl_step: 1.0, data_strength: 10.0}
    loop:  {pretrain_episodes: 40, iterations: 10}

``model.horizon`` and ``model.action_dim`` default to the environment's; ``mpc`` holds the
planner settings (:class:`solar_ros.core.cem.CEMConfig`) of ``loop.method: mpc``. Unknown
keys are errors, so a typo never silently falls back to a default.
"""

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import yaml

SECTIONS = ('env', 'model', 'lqr', 'loop', 'mpc')
METHODS = ('solar', 'mpc')


@dataclass
class LoopConfig:
    """The outer SOLAR loop's schedule (SOLAR paper, Algorithm 1).

    Attributes:
        task: task id passed to every ``env.reset``.
        seed: base seed; episode n is reset with seed ``seed * 1_000_000 + n``, and its
            exploration noise is drawn from the same seed.
        pretrain_episodes: episodes of the random policy 0 before the first model fit;
            must be >= rollouts_per_iteration.
        pretrain_std: noise std of the random policy 0, rad/s for the arm; None uses
            ``lqr.init_std``. Wide pretraining data cover more of the state space for the
            model, while LQR-FLM's first step stays within its KL bound of a policy with
            ``lqr.init_std``, so a smaller init_std keeps the rollouts near the planned
            trajectory.
        pretrain_updates: model updates on the pretraining episodes.
        iterations: policy updates to run; the last policy is number ``iterations``.
        rollouts_per_iteration: episodes of the current policy per LQR-FLM step.
        refit_updates: model updates per policy update after pretraining (0 freezes it).
        refit_encoder: whether those refits also train the encoder; False keeps the
            latent representation of the pretrained model (only the dynamics, decoder and
            cost head are refitted), so the policy's coordinates stay fixed.
        buffer_episodes: the model refits on the latest this many episodes.
        smooth_noise: draw time-correlated exploration noise (the paper's option).
        method: 'solar' improves the policy by LQR-FLM; 'mpc' is the paper's MPC ablation:
            after the random policy 0, every episode plans with the cross-entropy method in
            the latent space of the current model (settings in the ``mpc`` section) and
            each "policy update" only refits the model.

    """

    task: int = 1
    seed: int = 0
    pretrain_episodes: int = 40
    pretrain_std: Optional[float] = None
    pretrain_updates: int = 500
    iterations: int = 10
    rollouts_per_iteration: int = 10
    refit_updates: int = 50
    refit_encoder: bool = True
    buffer_episodes: int = 200
    smooth_noise: bool = False
    method: str = 'solar'

    def __post_init__(self) -> None:
        """Check types and ranges; raise ValueError naming the bad setting."""
        for name in ('smooth_noise', 'refit_encoder'):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f'loop.{name} must be true or false, '
                                 f'got {getattr(self, name)!r}')
        for name in ('pretrain_episodes', 'rollouts_per_iteration', 'buffer_episodes'):
            if getattr(self, name) < 1:
                raise ValueError(f'loop.{name} must be >= 1, got {getattr(self, name)}')
        for name in ('pretrain_updates', 'iterations', 'refit_updates'):
            if getattr(self, name) < 0:
                raise ValueError(f'loop.{name} must be >= 0, got {getattr(self, name)}')
        if self.pretrain_std is not None and not self.pretrain_std > 0:
            raise ValueError(f'loop.pretrain_std must be > 0 or null, got {self.pretrain_std}')
        if self.method not in METHODS:
            raise ValueError(f'loop.method must be one of {METHODS}, got {self.method!r}')
        if self.pretrain_episodes < self.rollouts_per_iteration:
            raise ValueError(f'loop.pretrain_episodes ({self.pretrain_episodes}) must be >= '
                             f'loop.rollouts_per_iteration ({self.rollouts_per_iteration})')


@dataclass
class RunConfig:
    """All settings of one run: raw env and model/lqr dicts plus the loop schedule."""

    env: Dict[str, Any] = field(default_factory=dict)
    model: Dict[str, Any] = field(default_factory=dict)
    lqr: Dict[str, Any] = field(default_factory=dict)
    loop: LoopConfig = field(default_factory=LoopConfig)
    mpc: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'RunConfig':
        """Build from a mapping with the sections of :data:`SECTIONS`."""
        unknown = set(values) - set(SECTIONS)
        if unknown:
            raise ValueError(f'unknown config sections {sorted(unknown)}; use {SECTIONS}')
        loop = dict(values.get('loop') or {})
        names = {f.name for f in fields(LoopConfig)}
        if set(loop) - names:
            raise ValueError(f'unknown loop settings {sorted(set(loop) - names)}')
        return cls(env=dict(values.get('env') or {}), model=dict(values.get('model') or {}),
                   lqr=dict(values.get('lqr') or {}), loop=LoopConfig(**loop),
                   mpc=dict(values.get('mpc') or {}))

    @classmethod
    def from_yaml(cls, path: Union[str, Path], overrides: Sequence[str] = ()) -> 'RunConfig':
        """Read a YAML file, then apply ``overrides``.

        Args:
            path: the file, a mapping of sections.
            overrides: settings ``section.key=value`` with a YAML value, e.g.
                ``loop.method=mpc`` or ``model.inference=vae``; they replace the file's.

        Raises:
            ValueError: naming the file when it is not a mapping, or the bad override.

        """
        with open(path) as stream:
            values = yaml.safe_load(stream) or {}
        if not isinstance(values, dict):
            raise ValueError(f'{path}: expected a mapping of sections {SECTIONS}')
        for override in overrides:
            name, sep, value = override.partition('=')
            section, dot, key = name.partition('.')
            if not (sep and dot and key) or section not in SECTIONS:
                raise ValueError(f'override {override!r}: expected section.key=value with a '
                                 f'section of {SECTIONS}')
            values.setdefault(section, {})
            values[section] = {**(values[section] or {}), key: yaml.safe_load(value)}
        return cls.from_dict(values)

    def to_dict(self) -> Dict[str, Any]:
        """Return the settings as plain data, as written to the run directory."""
        return {'env': self.env, 'model': self.model, 'lqr': self.lqr,
                'loop': asdict(self.loop), 'mpc': self.mpc}
