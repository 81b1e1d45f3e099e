"""Settings of a SOLAR run, read from one YAML file with sections env, model, lqr, loop, mpc.

Example (``solar_ros/config/point_mass.yaml``)::

    env:   {name: point_mass, horizon: 20}
    model: {latent_dim: 4, channels: 16}
    lqr:   {kl_step: 1.0, data_strength: 10.0}
    loop:  {pretrain_episodes: 40, iterations: 10}

A file may start from another: ``extends: sawyer_task3.yaml`` (a path relative to the file)
reads that one first, and each of this file's settings replaces the one of the same section
and key there (``config/sawyer_task1.yaml`` is task 3's with ``loop.task: 1``).

``model.horizon`` and ``model.action_dim`` default to the environment's; ``lqr`` holds the
:class:`solar_ros.core.lqr_flm.LQRFLMConfig` and ``mpc`` the planner settings
(:class:`solar_ros.core.cem.CEMConfig`) of ``loop.method: mpc``. Every section is checked
when the file is read: an unknown key or a bad value is one ValueError naming it, before any
work starts, so a typo never silently falls back to a default.
"""

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Type, TypeVar, Union

from solar_ros.core.cem import CEMConfig
from solar_ros.core.lqr_flm import LQRFLMConfig
from solar_ros.core.model_config import ModelConfig
import yaml

Section = TypeVar('Section')

SECTIONS = ('env', 'model', 'lqr', 'loop', 'mpc')
METHODS = ('solar', 'mpc')
LQR_COSTS = ('rollouts', 'model', 'residuals')
STEP_FROM = ('last', 'best_checked')
TIE_BREAKS = ('distance', 'newest')


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
        rollout_noise: scale of the exploration noise of the LQR-FLM policies' rollouts:
            the published gains of policies 1, 2, ... carry LQR-FLM's action covariance
            times its square (policy 0 keeps ``pretrain_std``). 1 samples the policy as
            LQR-FLM wrote it; below 1 the rollouts stay nearer the mean trajectory, which is
            what a trained policy runs without noise.
        method: 'solar' improves the policy by LQR-FLM; 'mpc' is the paper's MPC ablation:
            after the random policy 0, every episode plans with the cross-entropy method in
            the latent space of the current model (settings in the ``mpc`` section) and
            each "policy update" only refits the model.
        lqr_cost: the quadratic cost LQR-FLM minimises: 'rollouts' fits it afresh to the
            latest rollouts' smoothed latents and costs at each update (the authors');
            'model' takes the model's own cost head (:meth:`SolarModel.cost_params`),
            trained on every frame of the buffer together with the representation;
            'residuals' squares a linear read-out, fitted afresh to the latest rollouts'
            smoothed latents at each update, of the cost's residuals (the block's offset
            from the aim over the distance scale, recorded with every simulated episode:
            :func:`~solar_ros.sim.environments.cost_residual_scale`), where the cost is a
            squared offset (the nodes' episodes carry them in ``EpisodeEvent.aim_offset``).
        cost_fit_episodes: with 'rollouts', the cost is also fitted on up to this many
            earlier episodes of LQR-FLM's policies (the latest ones before the current
            rollouts; the random policy 0's are not used), smoothed by the refitted model:
            the cost does not depend on the policy, so the fit rests on more samples (40 did
            not steady task 3's late policies: docs/results.md, "Task 3 with a dense
            branch"). 0 fits the current rollouts alone.
        check_rollouts: after its rollouts each LQR-FLM policy (the last one included)
            runs this many check episodes by its mean action, without exploration noise
            (in one process on the same seeds for every policy). They are kept apart
            (the run directory's ``checks/``) and no update fits on them, so the learning
            is that of a run without them. The run then ends on the policy whose checks
            stacked most often (ties: ``tie_break``), saved as policy
            ``iterations + 1``: a late update that made the policy worse is not what the
            run leaves behind. The checks count towards the run's :attr:`episodes`,
            ``iterations`` times this many. 0: no checks, the run ends on policy
            ``iterations``.
        tie_checks: at most this many further checks after the last policy's, for the
            policies tied at the top of the check success rate: a round gives each of
            them one more check (the next seed of the checks, by its own model and
            gains), and rounds go on while several policies tie and the budget left pays
            for a whole round (:func:`solar_ros.learn.learner.tie_check_due`). A few
            checks per policy often tie; these tell the tied policies apart on more
            episodes before ``tie_break`` does (on six task-2 runs no share of
            30 check episodes between the two ended more runs at the goal:
            docs/results.md, "Tie checks"). Counted in :attr:`episodes` in full. Needs
            ``check_rollouts``.
        check_target_shift: m; the checks (tie checks included) reset only on the seeds
            whose reset moves the target block at least this far from its nominal place
            (the check seeds in their order, the others skipped), the states where a policy
            that aims at the target's average place misses first. On six finished task-2
            runs 3 such checks per policy with 0.01 ended three at the goal, 3 checks on
            any seed two (docs/results.md, "Checks where the target moved most"). 0: every
            seed. At most the env's ``target_position_noise``; needs ``check_rollouts``
            and an environment with a target block.
        tie_break: which of the policies tied at the top of the check success rate the
            run ends on (and ``step_from: best_checked`` steps from): 'distance' the one
            whose checks ended nearest the goal on average, 'newest' the latest of them,
            the one LQR-FLM stepped to last (on task 2's runs the later policies validate
            higher, while the mean final distance of 3 checks chose earlier, worse ones:
            docs/results.md, "The newest of the tied policies"). Tie checks, if any, run
            first. Needs ``check_rollouts``.
        step_from: the policy each LQR-FLM step starts from: 'last' is the current policy,
            on its own rollouts (the paper's); 'best_checked' is the current policy too,
            unless an earlier one's checks stacked more often: then the best-checked
            policy so far (the rule of the run's end), on that policy's own rollouts, with
            its saved LQR-FLM state and its policy carried into the refitted model's
            coordinates. An update that made the policy stack less often is stepped over
            instead of built on; while no check stacks, the steps are those of 'last'. The
            model still refits on every episode. Needs ``check_rollouts``;
            the MPC ablation, which takes no LQR-FLM steps, ignores it.

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
    rollout_noise: float = 1.0
    method: str = 'solar'
    lqr_cost: str = 'rollouts'
    cost_fit_episodes: int = 0
    check_rollouts: int = 0
    tie_checks: int = 0
    check_target_shift: float = 0.0
    step_from: str = 'last'
    tie_break: str = 'distance'

    @property
    def episodes(self) -> int:
        """Return the most episodes a run takes: pretraining, rollouts and checks."""
        return (self.pretrain_episodes
                + max(0, self.iterations - 1) * self.rollouts_per_iteration
                + self.iterations * self.check_rollouts + self.tie_checks)

    def __post_init__(self) -> None:
        """Check types and ranges; raise ValueError naming the bad setting."""
        for name in ('smooth_noise', 'refit_encoder'):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f'loop.{name} must be true or false, '
                                 f'got {getattr(self, name)!r}')
        counts = {'pretrain_episodes': 1, 'rollouts_per_iteration': 1, 'buffer_episodes': 1,
                  'pretrain_updates': 0, 'iterations': 0, 'refit_updates': 0,
                  'cost_fit_episodes': 0, 'check_rollouts': 0, 'tie_checks': 0}
        for name, low in counts.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f'loop.{name} must be >= {low} (an integer), got {value!r}')
        if self.pretrain_std is not None and not self.pretrain_std > 0:
            raise ValueError(f'loop.pretrain_std must be > 0 or null, got {self.pretrain_std}')
        if not 0 < self.rollout_noise < float('inf'):
            raise ValueError(f'loop.rollout_noise must be finite and > 0, '
                             f'got {self.rollout_noise}')
        if self.method not in METHODS:
            raise ValueError(f'loop.method must be one of {METHODS}, got {self.method!r}')
        if self.lqr_cost not in LQR_COSTS:
            raise ValueError(f'loop.lqr_cost must be one of {LQR_COSTS}, '
                             f'got {self.lqr_cost!r}')
        if self.step_from not in STEP_FROM:
            raise ValueError(f'loop.step_from must be one of {STEP_FROM}, '
                             f'got {self.step_from!r}')
        if self.tie_break not in TIE_BREAKS:
            raise ValueError(f'loop.tie_break must be one of {TIE_BREAKS}, '
                             f'got {self.tie_break!r}')
        if self.tie_break != 'distance' and not self.check_rollouts:
            raise ValueError(f'loop.tie_break: {self.tie_break} needs loop.check_rollouts > 0')
        if self.tie_checks and not self.check_rollouts:
            raise ValueError('loop.tie_checks needs loop.check_rollouts > 0')
        if isinstance(self.check_target_shift, bool) or not isinstance(
                self.check_target_shift, (int, float)) or not self.check_target_shift >= 0:
            raise ValueError(f'loop.check_target_shift must be a number >= 0 (m), '
                             f'got {self.check_target_shift!r}')
        if self.check_target_shift and not self.check_rollouts:
            raise ValueError('loop.check_target_shift needs loop.check_rollouts > 0')
        if self.step_from == 'best_checked' and not self.check_rollouts:
            raise ValueError('loop.step_from: best_checked needs loop.check_rollouts > 0')
        if self.pretrain_episodes < self.rollouts_per_iteration:
            raise ValueError(f'loop.pretrain_episodes ({self.pretrain_episodes}) must be >= '
                             f'loop.rollouts_per_iteration ({self.rollouts_per_iteration})')


def build_section(cls: Type[Section], section: str, values: Mapping[str, Any]) -> Section:
    """Return the dataclass ``cls`` built from a config section's ``values``.

    Raises:
        ValueError: naming the section's unknown keys, or the bad value.

    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f'unknown {section} settings {unknown}; known: {sorted(known)}')
    try:
        return cls(**values)
    except TypeError as error:  # a value of the wrong kind, e.g. a list for a number
        raise ValueError(f'{section}: {error}') from error


def check_env_section(env: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``env`` names a known environment with known, valid settings.

    An empty section passes: the nodes' run configs have none (the sim node has its own
    parameters), and ``learn.run`` then stops at once asking for ``env.name``.
    """
    if not env:
        return
    from solar_ros.sim.environments import env_settings
    env_settings(env)


def check_model_section(model: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``model`` holds known, valid ModelConfig settings.

    ``horizon`` and ``action_dim`` may be left out (they come from the environment). An
    empty section passes: files that only name an environment (for ``learn.video``); a run
    without ``model.latent_dim`` stops when its learner is made, before any episode.
    """
    if not model:
        return
    try:
        ModelConfig.from_dict({'horizon': 2, 'action_dim': 1, **model})
    except (TypeError, ValueError) as error:
        raise ValueError(f'model: {error}') from error


def read_sections(path: Path, extended_by: Sequence[Path] = ()) -> Dict[str, Any]:
    """Return the sections of a run config file, over those of the file it ``extends``.

    Args:
        path: the YAML file, a mapping of sections and optionally ``extends``.
        extended_by: the files that extend ``path``, resolved (to refuse a cycle).

    Raises:
        ValueError: naming the file when it is not a mapping, when ``extends`` is not a
            file name, or when the file it extends cannot be read or leads back to it.

    """
    with open(path) as stream:
        values = yaml.safe_load(stream) or {}
    if not isinstance(values, dict):
        raise ValueError(f'{path}: expected a mapping of sections {SECTIONS}')
    base = values.pop('extends', None)
    if base is None:
        return values
    if not isinstance(base, str) or not base:
        raise ValueError(f'{path}: extends must name a run config file, not {base!r}')
    base_path = path.parent / base
    chain = (*extended_by, path.resolve())
    if base_path.resolve() in chain:
        loop = [step.name for step in chain[chain.index(base_path.resolve()):]]
        raise ValueError(f'{path}: extends {base}, a cycle: {" -> ".join(loop + [loop[0]])}')
    try:
        merged = read_sections(base_path, chain)
    except OSError as error:
        raise ValueError(f'{path}: cannot read {base_path} (extends): {error.strerror}') from None
    for section, settings in values.items():
        if isinstance(settings, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **settings}
        else:
            merged[section] = settings
    return merged


@dataclass
class RunConfig:
    """All settings of one run; every section is checked when built.

    ``env`` and ``model`` stay mappings, because the environment's horizon and action
    dimension complete the model's; ``lqr``, ``loop`` and ``mpc`` are typed.
    """

    env: Dict[str, Any] = field(default_factory=dict)
    model: Dict[str, Any] = field(default_factory=dict)
    lqr: LQRFLMConfig = field(default_factory=LQRFLMConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    mpc: CEMConfig = field(default_factory=CEMConfig)

    def __post_init__(self) -> None:
        """Check the env and model sections (the typed ones checked themselves)."""
        check_env_section(self.env)
        check_model_section(self.model)
        if self.model.get('residual_dim'):
            self._check_residuals_recorded('model.residual_dim')
        if self.loop.lqr_cost == 'residuals':
            self._check_residuals_recorded('loop.lqr_cost residuals')
            from solar_ros.sim.environments import env_horizon
            self._check_residual_samples(env_horizon(self.env))
        if self.loop.check_target_shift:
            self._check_target_shift()

    def _check_target_shift(self) -> None:
        """Refuse ``loop.check_target_shift`` past the env's target noise, or without one."""
        shift = self.loop.check_target_shift
        if not self.env:
            raise ValueError('loop.check_target_shift needs the env section: the check seeds '
                             "are chosen by how far each one's reset moves the target block")
        from solar_ros.sim.environments import env_settings
        try:
            noise = env_settings(self.env).target_noise()
        except ValueError as error:
            raise ValueError(f'loop.check_target_shift: {error}') from error
        if shift > noise:
            raise ValueError(f'loop.check_target_shift ({shift} m) must be at most the '
                             f"env's target_position_noise ({noise} m), the most a reset "
                             'moves the target along one axis')

    def _check_residuals_recorded(self, reader: str) -> None:
        """Refuse ``reader`` (a setting) unless the env's cost is a squared recorded offset."""
        if not self.env:
            raise ValueError(f'{reader} needs the env section: the residuals are the '
                             "simulator's recorded offsets")
        from solar_ros.sim.environments import cost_residual_scale
        try:
            cost_residual_scale(self.env)
        except ValueError as error:
            raise ValueError(f'{reader}: {error}') from error

    def _check_residual_samples(self, horizon: int) -> None:
        """Refuse a residual read-out that an update's rollouts cannot fit.

        Each LQR-FLM step fits an affine read-out from ``model.latent_dim`` latent dims per
        cost segment on ``loop.rollouts_per_iteration`` rollouts x the segment's steps; it
        needs more samples than dims. Checked here, not after the pretraining it follows.
        """
        latent_dim = self.model.get('latent_dim')
        if latent_dim is None or self.loop.method != 'solar':
            return
        steps = horizon // self.lqr.cost_segments  # the shortest segment
        samples = self.loop.rollouts_per_iteration * steps
        if samples <= latent_dim:
            raise ValueError(
                f'loop.lqr_cost residuals: each update fits the read-out of '
                f'{latent_dim} latent dims (model.latent_dim) on loop.rollouts_per_iteration '
                f'({self.loop.rollouts_per_iteration}) x {steps} steps per cost segment '
                f'(env.horizon {horizon} / lqr.cost_segments {self.lqr.cost_segments}) = '
                f'{samples} samples; it needs more than {latent_dim}')

    @property
    def pretrain_std(self) -> float:
        """Return the random policy 0's joint-velocity std, rad/s (``loop`` or ``lqr``)."""
        std = self.loop.pretrain_std
        return self.lqr.init_std if std is None else std

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'RunConfig':
        """Build from a mapping with the sections of :data:`SECTIONS`."""
        unknown = set(values) - set(SECTIONS)
        if unknown:
            raise ValueError(f'unknown config sections {sorted(unknown)}; use {SECTIONS}')
        return cls(env=dict(values.get('env') or {}), model=dict(values.get('model') or {}),
                   lqr=build_section(LQRFLMConfig, 'lqr', values.get('lqr') or {}),
                   loop=build_section(LoopConfig, 'loop', values.get('loop') or {}),
                   mpc=build_section(CEMConfig, 'mpc', values.get('mpc') or {}))

    @classmethod
    def from_yaml(cls, path: Union[str, Path], overrides: Sequence[str] = ()) -> 'RunConfig':
        """Read a YAML file, then apply ``overrides``.

        Args:
            path: the file, a mapping of sections.
            overrides: settings ``section.key=value`` with a YAML value, e.g.
                ``loop.method=mpc`` or ``model.inference=vae``; they replace the file's.

        Raises:
            ValueError: naming the file when it (or a file it extends) is not a mapping or
                cannot be read, or the bad override.

        """
        values = read_sections(Path(path))
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
        return {'env': self.env, 'model': self.model, 'lqr': asdict(self.lqr),
                'loop': asdict(self.loop), 'mpc': asdict(self.mpc)}
