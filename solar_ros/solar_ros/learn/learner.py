"""The SOLAR learner: recorded episodes in, a new policy out, everything kept on disk.

It does not care where episodes come from (an environment driven in-process by
:mod:`solar_ros.learn.loop`, or topics recorded by the learner node). Its schedule:

1. Policy 0 is random: K = 0, k = 0, noise std ``loop.pretrain_std`` (by default
   ``lqr.init_std``, the std of the LQR-FLM initial policy that bounds its first step).
2. Once ``loop.pretrain_episodes`` episodes of policy 0 are recorded, :meth:`update`
   pretrains the model on them and takes the first LQR-FLM step on the latest
   ``loop.rollouts_per_iteration`` of them, giving policy 1.
3. After that, every ``loop.rollouts_per_iteration`` episodes of the current policy,
   :meth:`update` refits the model on the latest ``loop.buffer_episodes`` episodes, carries
   the policy over to the refitted model's latent coordinates (an affine map fitted on the
   new rollouts' smoothed states, logged as ``coords_r2``) and takes the next LQR-FLM step
   on the new rollouts.

:meth:`record` may be called from another thread while :meth:`update` runs (the learner
node records episodes while it refits).

The run directory's files are named in :mod:`solar_ros.learn.run_dir`.

A learner created on an existing run directory loads the newest complete checkpoint and
counts the episodes its policy already recorded, so no episode is lost or redone.
"""

from dataclasses import replace
import itertools
from pathlib import Path
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from solar_ros.core.checkpoint import load_checkpoint, save_checkpoint
from solar_ros.core.cost import QuadraticCost
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.lqr_flm import CostSamples, LQRFLM, LQRFLMConfig
from solar_ros.core.model import SolarModel
from solar_ros.core.model_config import ModelConfig
from solar_ros.core.policy import LinearGaussianPolicy
from solar_ros.core.sequences import EpisodeBatch
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode, EPISODE_GLOB, EpisodeStore
from solar_ros.learn.metrics import MetricsLog, progress_line, TensorBoardLog
from solar_ros.learn.probe import AXES, probe_model, probe_rollouts, ProbeData
from solar_ros.learn.run_dir import RunDir
from solar_ros.sim.environments import cost_residual_scale, env_settings
import torch
import yaml

LEARNER_KIND = 'solar_ros.learner'
LEARNER_VERSION = 1
PROGRESS_SECONDS = 20.0  # longest quiet time during a model fit
CHECK_SEED_OFFSET = 900_000  # the check seeds are seed * 1e6 + this + j (check_seeds)
METRICS = ['policy', 'episodes', 'mean_cost', 'final_distance', 'success_rate',
           'model_fit_s', 'policy_update_s', 'kl', 'step_mult', 'predicted_gain',
           'realised_gain', 'coords_r2', 'probe_r2_x', 'probe_r2_y', 'probe_r2_z',
           'near_goal_rmse_x', 'near_goal_rmse_y', 'near_goal_rmse_z',
           'check_success_rate', 'check_final_distance']


class UpdateStopped(RuntimeError):
    """Raised by :meth:`SolarLearner.update` when ``stop_when()`` ends the refit early."""


class SolarLearner:
    """Model, LQR-FLM state and run directory of one SOLAR run."""

    def __init__(self, config: RunConfig, horizon: int, action_dim: int, run_dir: Path,
                 log: Callable[[str], None] = print,
                 stop_when: Optional[Callable[[], bool]] = None) -> None:
        """Open (or resume) the run in ``run_dir`` for episodes of ``horizon`` steps.

        Args:
            config: the run's settings.
            horizon: T, steps per episode (the model's horizon).
            action_dim: du, the action dimension.
            run_dir: directory for episodes, checkpoints and metrics (created if missing).
            log: where progress lines go.
            stop_when: asked before each model update of :meth:`update`; True stops the
                update without saving (a node passes "my context is shut down").

        Raises:
            ValueError: ``run_dir`` holds trained policies but no episodes (a pretrained
                folder), so no update could refit the model.

        """
        self.config = config
        self.run_dir = Path(run_dir)
        self.log = log
        self.files = RunDir(self.run_dir)
        trained = [v for v in self.files.completed_policies() if v > 0]  # 0: random
        if trained and not any(self.files.episodes.glob(EPISODE_GLOB)):
            raise ValueError(
                f'run directory {run_dir} holds trained policies but no episodes (a pretrained '
                'folder?), and the model cannot be refitted without them; learn in a new run '
                f'directory, or run its policy: python -m solar_ros.learn.evaluate {run_dir}, '
                f'or the nodes with learn:=false policy_dir:={run_dir}')
        self.store = EpisodeStore(self.files.episodes)
        self.checks = EpisodeStore(self.files.checks)
        self._checked: List[Episode] = []  # the current policy's check episodes
        # Every policy's check outcomes once the tie checks (loop.tie_checks) have begun.
        self._tie_round: Optional[CheckOutcomes] = None
        self._lock = threading.Lock()
        self._stop_when = stop_when
        self._last_progress = time.monotonic()
        self._pending = 0
        self.files.checkpoints.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.files.metrics, METRICS)
        self.board = TensorBoardLog(self.files.tensorboard / 'policy')
        # Episodes with the true block position: each update's model is scored on them
        # (probe_r2_* columns; NaN without them, as in the learner node).
        self.probe: Optional[ProbeData] = None
        self.model_config = ModelConfig.from_dict(
            {'horizon': horizon, 'action_dim': action_dim, **config.model})
        done = self._last_checkpoint()
        if done is None:
            self.model = SolarModel(self.model_config)
            self.lqr = new_lqr(self.model_config, self.config.lqr)
            self.gains = TimeVaryingGains(self._random_policy(), self.model.dynamics(), 0, 0)
            self.episodes_used = 0
            self._pending = len(self._current(len(self.store)))  # episodes already on disk
            self._save()
        else:
            self._load(done)
            self.log(f'resumed policy {done} from {self.files.checkpoints}')
        # The model-fit curve of an update cut short is hidden; the redone one replaces it.
        self.fit_board = TensorBoardLog(self.files.tensorboard / 'model',
                                        purge_from=self.model.num_updates + 1)
        with open(self.files.config, 'w') as out:
            yaml.safe_dump(config.to_dict(), out, sort_keys=False)

    # -- schedule ----------------------------------------------------------------------

    @property
    def policy_version(self) -> int:
        """Return the version of the current policy (0: random)."""
        return self.gains.policy_version

    def needed(self) -> int:
        """Return how many episodes of the current policy the next update needs."""
        loop = self.config.loop
        return loop.pretrain_episodes if self.policy_version == 0 else \
            loop.rollouts_per_iteration

    def pending(self) -> int:
        """Return how many recorded episodes of the current policy no update has used yet."""
        with self._lock:
            return self._pending

    def next_request(self) -> Tuple[int, bool]:
        """Return the count of the current policy's next episodes and whether they are checks.

        First the rollouts its update fits on, with exploration noise; then, with
        ``loop.check_rollouts``, its checks, run by the mean action (:meth:`checks_left`).
        The count is 0 when the next step is an update (:meth:`ready`) or :meth:`finish`,
        and once the run needs no more episodes.
        """
        loop = self.config.loop
        version = self.policy_version
        if version > loop.iterations:
            return 0, False
        if self._tie_round is not None:
            return self.checks_left(), True
        rollouts = 0 if version == loop.iterations else self.needed() - self.pending()
        if rollouts > 0:
            return rollouts, False
        return self.checks_left(), True

    def done(self) -> bool:
        """Return whether the run has its last policy (after the checks' choice, if any)."""
        loop = self.config.loop
        last = loop.iterations + 1 if loop.check_rollouts and loop.iterations else \
            loop.iterations
        return self.policy_version >= last

    def checks_left(self) -> int:
        """Return the check episodes the current policy still needs (``loop.check_rollouts``).

        Every policy after the random one, up to the last (``loop.iterations``), runs that
        many checks after its rollouts (in one process on the same seeds,
        :meth:`next_check_seed`). During the tie checks (:meth:`recheck`) it is 1 while the
        current policy is the one due for the next tie check.
        """
        if not 0 < self.policy_version <= self.config.loop.iterations:
            return 0
        with self._lock:
            if self._tie_round is not None:
                return int(self._tie_check_due() == self.policy_version)
            return max(0, self.config.loop.check_rollouts - len(self._checked))

    def ready(self) -> bool:
        """Return whether :meth:`update` can run: an update is left, its episodes are in."""
        return (self.policy_version < self.config.loop.iterations and self._tie_round is None
                and self.pending() >= self.needed() and not self.checks_left())

    def record(self, episode: Episode) -> Path:
        """Store ``episode`` and return its file.

        Episodes of an older policy (finished while an update ran) are kept on disk and in
        the model's refit buffer, but only the current policy's count towards its update.
        A check episode (``explored`` False, of a policy after the random one) goes to the
        checks folder instead: it measures the policy and no update fits on it.

        Raises:
            ValueError: the episode's horizon is not the model's, or ``loop.lqr_cost`` is
                ``residuals`` and an explored episode has no ``aim_offsets``.

        """
        if episode.horizon != self.model_config.horizon:
            raise ValueError(f'episode of {episode.horizon} steps; the model expects '
                             f'{self.model_config.horizon}')
        if (self.config.loop.lqr_cost == 'residuals' and episode.explored
                and episode.aim_offsets is None):
            raise ValueError(f'episode {episode.seed} carries no aim offsets, and loop.lqr_cost '
                             'residuals fits the cost to them: the episode events must carry '
                             "the held block's offset from the aim point (EpisodeEvent."
                             'aim_offset: the sim node sends it, a real arm needs a bridge '
                             'that does)')
        with self._lock:
            if not episode.explored and episode.policy_version > 0:
                path = self.checks.append(episode)
                if episode.policy_version == self.policy_version:
                    self._checked.append(episode)
                if self._tie_round is not None:
                    self._tie_round.setdefault(episode.policy_version, []).append(
                        (episode.success, episode.final_distance))
                return path
            path = self.store.append(episode)
            if episode.policy_version == self.policy_version:
                self._pending += 1
        return path

    def next_check_seed(self) -> int:
        """Return the reset seed of the current policy's next check (:func:`check_seeds`).

        Check i of every policy has the same seed, so the policies are compared on the same
        initial states.
        """
        with self._lock:
            index = len(self._checked)
        return check_seeds(self.config, index, 1)[0]

    def check_seeds_left(self) -> List[int]:
        """Return the reset seeds of the checks the current policy still needs, in order."""
        left = self.checks_left()
        with self._lock:
            index = len(self._checked)
        return check_seeds(self.config, index, left)

    def episode_seed(self, index: int) -> int:
        """Return the reset seed of this run's episode number ``index``."""
        return self.config.loop.seed * 1_000_000 + index

    # -- the update ------------------------------------------------------------------------

    def update(self) -> TimeVaryingGains:
        """Refit the model and take one LQR-FLM step on the pending episodes.

        Raises:
            RuntimeError: the run has had its ``loop.iterations`` updates, or fewer
                episodes than :meth:`needed` (or checks) are recorded.
            UpdateStopped: ``stop_when()`` became true during the refit; nothing was saved
                and the learner still holds the last complete policy's gains.

        """
        if not self.ready():
            raise RuntimeError(f'policy {self.policy_version} of {self.config.loop.iterations}: '
                               f'{self.pending()} episodes pending, {self.needed()} needed, '
                               f'{self.checks_left()} checks left')
        loop = self.config.loop
        with self._lock:
            used = len(self.store)
            checks = list(self._checked)
        fresh = self._current(used)[:self.needed()]
        base, steps_on = self.policy_version, fresh
        if self.policy_version and loop.step_from == 'best_checked' and loop.method == 'solar':
            scores = check_scores(self.checks)
            best = best_checked(scores, loop.tie_break)
            if scores[best][0] > scores[self.policy_version][0]:
                base = best
                state = load_checkpoint(self.files.learner(base), LEARNER_KIND,
                                        LEARNER_VERSION)
                steps_on = self._rollouts_of(base, int(state['episodes_used']), used)
                # its policy, carried below to the refitted model
                self.lqr = new_lqr(self.model_config, self.config.lqr)
                self.lqr.load_state_dict(state['lqr'])
                self.log(f'policy {self.policy_version + 1} steps from policy {base}, whose '
                         f"checks stacked more often than policy {self.policy_version}'s")
        rollouts = steps_on[-loop.rollouts_per_iteration:]
        batch = episode_batch(rollouts)
        start = time.monotonic()
        coords_r2 = 1.0
        if self.policy_version == 0:
            self.log(f'pretraining the model: {len(fresh)} episodes, '
                     f'{loop.pretrain_updates} updates')
            self.model.fit(model_batch(self.config, fresh), loop.pretrain_updates,
                           self._fit_progress, stop=self._stop_when)
            self._check_stop()
        elif loop.refit_updates:
            buffer = self.store.load(max(0, used - loop.buffer_episodes), used)
            carry = loop.method == 'solar'  # the MPC planner has no gains to carry over
            # The policy carried over is in the latent coordinates of its own model.
            own = self.model if base == self.policy_version else \
                SolarModel.load(self.model_path(base))
            before = own.infer(batch.images, batch.actions).means if carry else None
            self.model.fit(model_batch(self.config, buffer), loop.refit_updates,
                           self._fit_progress, train_encoder=loop.refit_encoder,
                           stop=self._stop_when)
            self._check_stop()
            if before is not None:
                after = self.model.infer(batch.images, batch.actions).means
                coords_r2 = self.lqr.change_coordinates(before, after)
        fit_seconds = time.monotonic() - start
        start = time.monotonic()
        if loop.method == 'mpc':  # the planner acts in the refitted model; no LQR-FLM
            gains = TimeVaryingGains(self.gains.policy, self.model.dynamics(),
                                     policy_version=self.policy_version + 1,
                                     model_version=self.model.num_updates)
            kl, step_mult, cost_gains = 0.0, 0.0, (float('nan'), float('nan'))
        else:
            if loop.lqr_cost == 'model':
                self.lqr.known_cost = QuadraticCost.tiled(*self.model.cost_params(),
                                                          self.model.config.horizon)
            result = self.lqr.update(self.model.smoother(batch.images, batch.actions),
                                     batch.actions, batch.costs, prior=self.model.q,
                                     cost_samples=self._cost_samples(),
                                     residuals=cost_residuals(self.config, rollouts))
            # LQR-FLM keeps its own policy; the rollouts may explore less.
            gains = TimeVaryingGains(result.policy.with_noise_scale(loop.rollout_noise),
                                     result.fit.dynamics,
                                     policy_version=self.policy_version + 1,
                                     model_version=self.model.num_updates)
            kl, step_mult = result.kl, result.step_mult
            cost_gains = (result.last_predicted_gain, result.last_realised_gain)
        policy_seconds = time.monotonic() - start
        with self._lock:
            self.gains = gains
            self.episodes_used = used
            self._pending = 0
            self._checked = []
        self._save()
        self._report(fresh, checks, fit_seconds, policy_seconds, kl, step_mult, cost_gains,
                     coords_r2)
        return self.gains

    def recheck(self) -> bool:
        """Make the policy due for the next tie check current; return whether it changed.

        Once the last policy (``loop.iterations``) has its ``loop.check_rollouts`` checks,
        ``loop.tie_checks`` further checks go to the policies tied at the top of the check
        success rate, one round at a time (:func:`tie_check_due`). Each runs by its own
        model and gains: this loads the due policy, whose check :meth:`next_request` then
        asks for; the caller runs (or announces) it like a new policy. The tie checks
        follow from the checks on disk, so a resumed run goes on with them.
        """
        if not self._start_tie_round():
            return False
        with self._lock:
            due = self._tie_check_due()
            count = len(self._tie_round.get(due, []))
        if due is None:
            return False
        self.log(f'tie check {count + 1} of policy {due}')
        if due == self.policy_version:
            return False
        self._load(due)
        return True

    def _start_tie_round(self) -> bool:
        """Begin the tie checks if due; return whether they are under way."""
        loop = self.config.loop
        if self._tie_round is not None:
            return True
        if not loop.tie_checks or self.policy_version != loop.iterations or self.checks_left():
            return False
        outcomes = check_outcomes(self.checks)
        with self._lock:
            self._tie_round = outcomes
        return True

    def _tie_check_due(self) -> Optional[int]:
        """Return the policy due for the next tie check, or None (call under the lock)."""
        loop = self.config.loop
        return tie_check_due(scores_of(self._tie_round), loop.check_rollouts, loop.tie_checks)

    def finish(self) -> bool:
        """End the run on the policy whose check episodes stacked most; return whether it did.

        Once the last policy (``loop.iterations``) has its ``loop.check_rollouts`` checks,
        and the tie checks (:meth:`recheck`, ``loop.tie_checks``) are done, the policy with
        the highest check success rate (ties: ``loop.tie_break``), with its
        model, is saved as policy ``iterations + 1``, the one the run leaves behind. Nothing
        happens without checks, before the last policy's are all recorded, while a tie
        check is due, or when the run has already ended so.
        """
        loop = self.config.loop
        if not loop.check_rollouts or self.done():
            return False
        if self._start_tie_round():
            with self._lock:
                if self._tie_check_due() is not None:
                    return False
        elif self.policy_version != loop.iterations or self.checks_left():
            return False
        with self._lock:
            used = len(self.store)
            tie_round = None if self._tie_round is None else scores_of(self._tie_round)
        scores = check_scores(self.checks) if tie_round is None else tie_round
        for version, (rate, distance, count) in scores.items():
            self.log(f'checks of policy {version}: success {rate:.0%}, '
                     f'final distance {distance:.3f} ({count} episodes)')
        best = best_checked(scores, loop.tie_break)
        self._load(best)
        self.gains = replace(self.gains, policy_version=loop.iterations + 1)
        self.episodes_used, self._pending = used, 0
        self._save()
        self.log(f'the run ends on policy {best}, saved as policy {self.policy_version}')
        tied = tied_with_best(scores)
        if len(tied) > 1:
            self.log(tie_line(tied, scores[best][0], best, self.run_dir, tied,
                              loop.tie_break))
        return True

    def _rollouts_of(self, version: int, start: int, stop: int) -> List[Episode]:
        """Return the rollouts policy ``version`` ran for its update (episodes start..stop)."""
        runs = [e for e in self.store.load(start, stop)
                if e.policy_version == version and e.explored]
        return runs[:self.config.loop.rollouts_per_iteration]

    def stopped(self) -> UpdateStopped:
        """Return the error that says the running update stopped and where the run resumes."""
        return UpdateStopped(f'update stopped before policy {self.policy_version + 1}; '
                             f'the run resumes from policy {self.policy_version}')

    def _check_stop(self) -> None:
        """Raise UpdateStopped if the update is to stop (checked after each model fit)."""
        if self._stop_when is not None and self._stop_when():
            raise self.stopped()

    def _cost_samples(self) -> Optional[CostSamples]:
        """Return the earlier LQR-FLM episodes' samples for the cost fit, or None.

        The latest ``loop.cost_fit_episodes`` episodes before the current rollouts whose
        policy is not the random one, smoothed by the current model; None when there are
        none, the setting is 0 or LQR-FLM takes the model's cost head (``loop.lqr_cost``),
        which no fit replaces.
        """
        count = self.config.loop.cost_fit_episodes
        if not count or self.config.loop.lqr_cost != 'rollouts':
            return None
        return cost_samples(self.model, self.store.load(max(0, self.episodes_used - count),
                                                        self.episodes_used))

    def _current(self, stop: int) -> List[Episode]:
        """Return the current policy's episodes recorded after the last update, up to ``stop``."""
        return [e for e in self.store.load(self.episodes_used, stop)
                if e.policy_version == self.policy_version]

    def _fit_progress(self, update: int, terms: Dict[str, float]) -> None:
        """Send the ELBO terms to TensorBoard every 10 updates; log them every 100.

        A line also comes whenever PROGRESS_SECONDS passed since the last one, so that a
        slow machine still shows progress at least that often.
        """
        if (update + 1) % 10 == 0:
            self.fit_board.scalars('model', terms, self.model.num_updates)
        now = time.monotonic()
        if update == 0:
            self._last_progress = now
        if (update + 1) % 100 == 0 or now - self._last_progress >= PROGRESS_SECONDS:
            self.log(f'  model update {update + 1}: elbo {terms["elbo"]:.1f} '
                     f'beta {terms["beta"]:.3f}')
            self._last_progress = now

    def _report(self, episodes: Sequence[Episode], checks: Sequence[Episode],
                fit_seconds: float, policy_seconds: float, kl: float, step_mult: float,
                cost_gains: Tuple[float, float], coords_r2: float) -> None:
        """Append the metrics row of the episodes that led to the new policy and log it.

        ``checks`` are the previous policy's check episodes (``check_*`` columns).

        ``cost_gains`` are the last KL step's predicted and realised cost decrease
        (:class:`~solar_ros.core.lqr_flm.UpdateResult`), in the model's cost units.
        ``near_goal_rmse_*``: how precisely the new model's latent holds the true aim offset
        on the last frames of ``episodes`` (:func:`~solar_ros.learn.probe.probe_rollouts`,
        environment units: m on the arm), from policy 2 on; NaN where the episodes carry
        no offsets (from the nodes) or for an axis the environment lacks.
        """
        row = {'policy': self.policy_version, 'episodes': self.episodes_used,
               'mean_cost': float(np.mean([e.costs.sum() for e in episodes])),
               'final_distance': float(np.mean([e.final_distance for e in episodes])),
               'success_rate': float(np.mean([e.success for e in episodes])),
               'model_fit_s': fit_seconds, 'policy_update_s': policy_seconds,
               'kl': float(kl), 'step_mult': float(step_mult),
               'predicted_gain': float(cost_gains[0]),
               'realised_gain': float(cost_gains[1]),
               'coords_r2': coords_r2}
        row.update({'check_success_rate': float(np.mean([e.success for e in checks]))
                    if checks else float('nan'),
                    'check_final_distance': float(np.mean([e.final_distance for e in checks]))
                    if checks else float('nan')})
        r2 = [float('nan')] * len(AXES) if self.probe is None else \
            probe_model(self.model, self.probe).r2
        row.update({f'probe_r2_{axis}': float(value) for axis, value in zip(AXES, r2)})
        # The new model near the goal, on the learned policy's rollouts (not policy 0's).
        near = probe_rollouts(self.model, episodes) if self.policy_version > 1 else None
        rmse = np.full(len(AXES), np.nan)
        if near is not None:
            rmse[:len(near.rmse)] = near.rmse  # the point mass has x, y only
        row.update({f'near_goal_rmse_{axis}': float(value) for axis, value in zip(AXES, rmse)})
        self.metrics.append(row)
        self.board.scalars('policy', row, self.episodes_used)
        self.log(progress_line(row))

    # -- checkpoints -----------------------------------------------------------------------

    def model_path(self, version: Optional[int] = None) -> Path:
        """Return the model checkpoint of policy ``version`` (default: the current one)."""
        version = self.policy_version if version is None else version
        return self.files.model(version)

    def _last_checkpoint(self) -> Optional[int]:
        """Return the newest policy whose learner checkpoint exists, or None."""
        done = self.files.completed_policies()
        return done[-1] if done else None

    def _save(self) -> None:
        """Write the model, then the learner state that marks the policy complete."""
        self.model.save(self.model_path())
        save_checkpoint(self.files.learner(self.policy_version),
                        LEARNER_KIND, LEARNER_VERSION,
                        {'episodes_used': self.episodes_used, 'lqr': self.lqr.state_dict(),
                         'gains': self.gains.to_dict()})

    def _load(self, version: int) -> None:
        """Restore the model, LQR-FLM state and gains of policy ``version``."""
        state = load_checkpoint(self.files.learner(version),
                                LEARNER_KIND, LEARNER_VERSION)
        self.model = SolarModel.load(self.model_path(version))
        try:
            self.model.reweigh(self.model_config)
        except ValueError as error:
            raise ValueError(
                f'{self.run_dir}: the run was made with other model settings than the '
                f"config given now ({error}); resume with the run's own config.yaml or use "
                'a new run directory') from None
        self.lqr = new_lqr(self.model_config, self.config.lqr)
        self.lqr.load_state_dict(state['lqr'])
        self.gains = TimeVaryingGains.from_dict(state['gains'])
        self.episodes_used = int(state['episodes_used'])
        self._pending = len(self._current(len(self.store)))
        self._checked = [e for e in self.checks if e.policy_version == version]

    def _random_policy(self) -> LinearGaussianPolicy:
        """Return policy 0, the random policy of the pretraining episodes."""
        if self.config.loop.pretrain_std is None:
            return self.lqr.policy
        c = self.model_config
        return LinearGaussianPolicy.initial(c.horizon, c.latent_dim, c.action_dim,
                                            self.config.pretrain_std)


CheckScores = Dict[int, Tuple[float, float, int]]
"""Per checked policy: its check success rate, mean final distance (m) and check count."""
CheckOutcomes = Dict[int, List[Tuple[bool, float]]]
"""Per checked policy: each of its checks' success and final distance (m)."""


def check_seeds(config: RunConfig, start: int, count: int) -> List[int]:
    """Return the reset seeds of checks ``start`` to ``start + count - 1`` of every policy.

    The candidates are ``loop.seed * 1e6 + CHECK_SEED_OFFSET + j`` for j = 0, 1, ...; with
    ``loop.check_target_shift`` only those whose reset moves the target block at least that
    far count (the env's settings tell it from the seed, without a reset).
    """
    first = config.loop.seed * 1_000_000 + CHECK_SEED_OFFSET
    shift = config.loop.check_target_shift
    if not shift:
        return list(range(first + start, first + start + count))
    settings = env_settings(config.env)
    seeds = (seed for seed in itertools.count(first) if settings.target_shift(seed) >= shift)
    return list(itertools.islice(seeds, start, start + count))


def check_outcomes(checks: Iterable[Episode]) -> CheckOutcomes:
    """Return each checked policy's check outcomes."""
    outcomes: CheckOutcomes = {}
    for episode in checks:
        outcomes.setdefault(episode.policy_version, []).append(
            (episode.success, episode.final_distance))
    return outcomes


def scores_of(outcomes: CheckOutcomes) -> CheckScores:
    """Return each policy's check success rate, mean final distance and count."""
    return {version: (float(np.mean([s for s, _ in runs])), float(np.mean([d for _, d in runs])),
                      len(runs))
            for version, runs in sorted(outcomes.items())}


def check_scores(checks: Iterable[Episode]) -> CheckScores:
    """Return each checked policy's check success rate, mean final distance and count."""
    return scores_of(check_outcomes(checks))


def tie_check_due(scores: CheckScores, check_rollouts: int, tie_checks: int) -> Optional[int]:
    """Return the policy due for the next tie check (``loop.tie_checks``), or None.

    The policies tied at the top of the check success rate (:func:`tied_with_best`) take
    their tie checks in rounds, each of them one more check per round: the tied policy with
    the fewest checks (then the earliest) is due. A round starts only while the checks left
    of the ``tie_checks`` (the checks beyond ``check_rollouts`` per policy) pay for all of
    it, and the checks end once a single policy leads.

    Args:
        scores: every checked policy's success rate, mean final distance and check count.
        check_rollouts: the checks each policy ran after its rollouts.
        tie_checks: the tie checks of the whole run.

    """
    if not scores:
        return None
    tied = tied_with_best(scores)
    if len(tied) < 2:
        return None
    counts = {version: scores[version][2] for version in tied}
    level = max(counts.values())
    if min(counts.values()) == level:  # a round is complete: the next one
        level += 1
    spent = sum(max(0, count - check_rollouts) for _, _, count in scores.values())
    if sum(level - count for count in counts.values()) > tie_checks - spent:
        return None
    return min(tied, key=lambda version: (counts[version], version))


def best_checked(scores: CheckScores, tie_break: str = 'distance') -> int:
    """Return the policy with the highest check success rate.

    Ties (``loop.tie_break``): 'distance' the smaller mean final distance, 'newest' the
    later policy.
    """
    if tie_break == 'newest':
        return max(scores, key=lambda v: (scores[v][0], v))
    return max(scores, key=lambda v: (scores[v][0], -scores[v][1]))


def tied_with_best(scores: CheckScores) -> List[int]:
    """Return the policies whose check success rate is the highest, ascending.

    More than one means the mean final distance of a few checks chose the run's end
    policy among them: validation (:mod:`solar_ros.learn.validate`) tells them apart.
    """
    top = scores[best_checked(scores)][0]
    return [version for version, (rate, _, _) in sorted(scores.items()) if rate == top]


def tie_line(tied: Sequence[int], rate: float, chosen: int, run_dir: Path,
             unvalidated: Sequence[int], tie_break: str = 'distance') -> str:
    """Return the line that says policies ``tied`` tie at check success ``rate``.

    It names the rule that chose among them (``loop.tie_break``) and ends on the command
    that validates the ``unvalidated`` ones among them.
    """
    rule = 'the newest' if tie_break == 'newest' else 'the smaller mean final distance'
    return (f'policies {_listed(tied)} tie at {rate:.0%} of their checks; {rule} chose '
            f'policy {chosen}; to tell them apart: python -m '
            f'solar_ros.learn.validate {run_dir} --policy {_listed(unvalidated)}')


def _listed(versions: Sequence[int]) -> str:
    """Return policy numbers separated by spaces."""
    return ' '.join(str(v) for v in versions)


def episode_batch(episodes: Sequence[Episode],
                  residuals: Optional[torch.Tensor] = None) -> EpisodeBatch:
    """Return the model's training sequences: frames 0..T-1, actions, costs (residuals)."""
    return EpisodeBatch(images=np.stack([e.images[:-1] for e in episodes]),
                        actions=np.stack([e.actions for e in episodes]),
                        costs=np.stack([e.costs for e in episodes]), residuals=residuals)


def model_batch(config: RunConfig, episodes: Sequence[Episode]) -> EpisodeBatch:
    """Return the model's training sequences, with the cost's residuals where it reads them.

    With ``model.residual_dim`` > 0 the batch carries r_t = ``aim_offsets[t]`` /
    :func:`~solar_ros.sim.environments.cost_residual_scale` (N, T, d), as LQR-FLM's
    residual cost does (:func:`cost_residuals`).

    Raises:
        ValueError: the model reads residuals and an episode carries no recorded offsets.

    """
    return episode_batch(episodes, residuals_of(config, episodes, 'model.residual_dim')
                         if config.model.get('residual_dim') else None)


def new_lqr(model_config: ModelConfig, config: LQRFLMConfig) -> LQRFLM:
    """Return a fresh LQR-FLM learner for the model's dims, with its action cost R."""
    c = model_config
    action_cost = 2.0 * c.action_cost_weight * torch.eye(c.action_dim, dtype=torch.float64)
    return LQRFLM(state_dim=c.latent_dim, action_dim=c.action_dim, horizon=c.horizon,
                  config=config, action_cost=action_cost)


def cost_residuals(config: RunConfig, rollouts: Sequence[Episode]) -> Optional[torch.Tensor]:
    """Return the rollouts' cost residuals (N, T, d) for ``loop.lqr_cost: residuals``.

    r_t = ``aim_offsets[t]`` / :func:`~solar_ros.sim.environments.cost_residual_scale` of
    the env section, so that the state cost is ||r_t||^2; None for the other costs.

    Raises:
        ValueError: a rollout carries no recorded offsets (episodes from the nodes).

    """
    if config.loop.lqr_cost != 'residuals':
        return None
    return residuals_of(config, rollouts, 'loop.lqr_cost residuals')


def residuals_of(config: RunConfig, episodes: Sequence[Episode], reader: str) -> torch.Tensor:
    """Return the episodes' recorded offsets over the env's residual scale, (N, T, d).

    Raises:
        ValueError: an episode carries no recorded offsets (``reader`` names who asked).

    """
    missing = [episode.seed for episode in episodes if episode.aim_offsets is None]
    if missing:
        raise ValueError(f'{reader}: {len(missing)} of the episodes (seeds {missing[:5]}) '
                         'carry no recorded offsets; only the in-process simulators '
                         'record them')
    scale = cost_residual_scale(config.env)
    return torch.as_tensor(np.stack([episode.aim_offsets for episode in episodes]) / scale,
                           dtype=torch.float64)


def cost_samples(model: SolarModel, earlier: Sequence[Episode]) -> Optional[CostSamples]:
    """Return the extra samples of LQR-FLM's cost fit from ``earlier`` episodes, or None.

    The episodes of the random policy 0 are left out; the rest are smoothed by ``model``:
    (means (M, T, dx), actions (M, T, du), costs (M, T)), float64. None when none is left.
    """
    kept = [e for e in earlier if e.policy_version > 0]
    if not kept:
        return None
    batch = episode_batch(kept)
    means = model.infer(batch.images, batch.actions).means
    return (means, torch.as_tensor(batch.actions, dtype=torch.float64),
            torch.as_tensor(batch.costs, dtype=torch.float64))
