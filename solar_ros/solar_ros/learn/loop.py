"""The SOLAR loop: pretrain the model, then alternate rollouts, model refits and LQR-FLM steps.

The loop is independent of where the data comes from: it drives any environment with
``reset(task, seed) -> image`` and ``step(action) -> (image, cost, done, info)``, where
``info['action']`` is the action actually applied (after clipping) and the last step's
``info`` holds ``success`` and ``final_distance``.

Run directory layout::

    config.yaml                 the settings used
    episodes/episode_*.npz      every episode, written as it completes (learn.episodes)
    checkpoints/model_NNNN.ckpt the model after iteration NNNN (0 = pretraining)
    checkpoints/learner_NNNN.ckpt  policy, filter dynamics, LQR-FLM state; written last,
                                so its presence marks iteration NNNN complete
    metrics.csv                 one row per iteration

Killed at any point and started again on the same run directory, the loop loads the last
complete iteration and reuses every episode already recorded by the current policy, so no
rollout is lost or collected twice.
"""

from pathlib import Path
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from solar_ros.core.checkpoint import load_checkpoint, save_checkpoint
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.lqr_flm import LQRFLM, LQRFLMConfig
from solar_ros.core.model import EpisodeBatch, ModelConfig, SolarModel
from solar_ros.core.policy import smoothed_noise
from solar_ros.learn.agent import LatentAgent
from solar_ros.learn.config import RunConfig
from solar_ros.learn.episodes import Episode, EpisodeStore
from solar_ros.learn.metrics import MetricsLog, progress_line
import torch
import yaml

LEARNER_KIND = 'solar_ros.learner'
LEARNER_VERSION = 1
METRICS = ['iteration', 'episodes', 'mean_cost', 'final_distance', 'success_rate',
           'model_fit_s', 'policy_update_s', 'kl', 'step_mult']


class SolarLoop:
    """One SOLAR run on one environment, checkpointed after every iteration."""

    def __init__(self, env: Any, config: RunConfig, run_dir: Path,
                 log: Callable[[str], None] = print) -> None:
        """Prepare the run directory ``run_dir`` (created if missing) for ``env``."""
        self.env = env
        self.config = config
        self.run_dir = Path(run_dir)
        self.log = log
        self.store = EpisodeStore(self.run_dir / 'episodes')
        self.checkpoints = self.run_dir / 'checkpoints'
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.run_dir / 'metrics.csv', METRICS)
        model_settings = {'horizon': env.horizon, 'action_dim': env.action_dim,
                          **config.model}
        self.model_config = ModelConfig.from_dict(model_settings)
        self.rng = np.random.default_rng(config.loop.seed)
        with open(self.run_dir / 'config.yaml', 'w') as out:
            yaml.safe_dump(config.to_dict(), out, sort_keys=False)

    # -- checkpoints ---------------------------------------------------------------------

    def last_complete_iteration(self) -> Optional[int]:
        """Return the last iteration whose learner checkpoint exists, or None."""
        done = sorted(self.checkpoints.glob('learner_*.ckpt'))
        return int(done[-1].stem.split('_')[1]) if done else None

    def _save(self, iteration: int, model: SolarModel, learner: LQRFLM,
              gains: TimeVaryingGains, episodes_used: int) -> None:
        """Write the model, then the learner state that marks the iteration complete."""
        model.save(self.checkpoints / f'model_{iteration:04d}.ckpt')
        save_checkpoint(self.checkpoints / f'learner_{iteration:04d}.ckpt', LEARNER_KIND,
                        LEARNER_VERSION, {'iteration': iteration,
                                          'episodes_used': episodes_used,
                                          'lqr': learner.state_dict(),
                                          'gains': gains.to_dict(),
                                          'rng': self.rng.bit_generator.state})

    def load(self, iteration: int) -> Dict[str, Any]:
        """Return the model, learner, gains and counters saved after ``iteration``."""
        state = load_checkpoint(self.checkpoints / f'learner_{iteration:04d}.ckpt',
                                LEARNER_KIND, LEARNER_VERSION)
        model = SolarModel.load(self.checkpoints / f'model_{iteration:04d}.ckpt')
        learner = self._new_learner()
        learner.load_state_dict(state['lqr'])
        self.rng.bit_generator.state = state['rng']
        return {'model': model, 'learner': learner,
                'gains': TimeVaryingGains.from_dict(state['gains']),
                'episodes_used': int(state['episodes_used'])}

    def _new_learner(self) -> LQRFLM:
        """Return a fresh LQR-FLM learner for this run's dims."""
        c = self.model_config
        action_cost = 2.0 * c.action_cost_weight * torch.eye(c.action_dim, dtype=torch.float64)
        return LQRFLM(state_dim=c.latent_dim, action_dim=c.action_dim, horizon=c.horizon,
                      config=LQRFLMConfig(**self.config.lqr), action_cost=action_cost)

    # -- data ------------------------------------------------------------------------------

    def _episode_seed(self, index: int) -> int:
        """Return the reset seed of episode number ``index`` of this run."""
        return self.config.loop.seed * 1_000_000 + index

    def _rollout(self, index: int, agent: Optional[LatentAgent], version: int) -> Episode:
        """Run one episode (random actions when ``agent`` is None), store it and return it."""
        loop = self.config.loop
        image = self.env.reset(task=loop.task, seed=self._episode_seed(index))
        images, actions, costs = [image], [], []
        if agent is not None:
            agent.reset(self._noise())
        info: Dict[str, Any] = {}
        for t in range(self.env.horizon):
            if agent is None:
                action = loop.random_action_std * self.rng.standard_normal(self.env.action_dim)
            else:
                action = agent.act(image)
            image, cost, done, info = self.env.step(action)
            applied = np.asarray(info.get('action', action), dtype=np.float64)
            if agent is not None and t + 1 < self.env.horizon:
                agent.observe_action(applied)
            images.append(image)
            actions.append(applied)
            costs.append(cost)
            if done:
                break
        episode = Episode(images=np.stack(images), actions=np.stack(actions),
                          costs=np.asarray(costs), task=loop.task,
                          seed=self._episode_seed(index),
                          success=bool(info.get('success', False)),
                          final_distance=float(info.get('final_distance', np.nan)),
                          policy_version=version)
        self.store.append(episode)
        return episode

    def _noise(self) -> np.ndarray:
        """Return one episode's standard-normal exploration noise, (T, du)."""
        shape = (self.env.horizon, self.env.action_dim)
        if self.config.loop.smooth_noise:
            generator = torch.Generator().manual_seed(int(self.rng.integers(2 ** 31)))
            return smoothed_noise(*shape, generator=generator).numpy()
        return self.rng.standard_normal(shape)

    def _collect(self, count: int, agent: Optional[LatentAgent], version: int,
                 first: int) -> List[Episode]:
        """Return ``count`` episodes from number ``first`` on, reusing recorded ones."""
        episodes = self.store.load(first, first + count)
        for episode in episodes:
            if episode.policy_version != version:
                raise RuntimeError(
                    f'{self.store.directory}: episode of policy {episode.policy_version} where'
                    f' policy {version} was expected; the run directory is inconsistent')
        if episodes:
            self.log(f'reusing {len(episodes)} recorded episodes of policy {version}')
        while len(episodes) < count:
            episodes.append(self._rollout(first + len(episodes), agent, version))
        return episodes

    @staticmethod
    def _batch(episodes: Sequence[Episode]) -> EpisodeBatch:
        """Return the model's training sequences: frames 0..T-1, actions and costs."""
        return EpisodeBatch(images=np.stack([e.images[:-1] for e in episodes]),
                            actions=np.stack([e.actions for e in episodes]),
                            costs=np.stack([e.costs for e in episodes]))

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> TimeVaryingGains:
        """Run (or resume) the whole schedule; return the final gains."""
        loop = self.config.loop
        done = self.last_complete_iteration()
        if done is None:
            state = self._pretrain()
            done = 0
        else:
            self.log(f'resuming after iteration {done} from {self.checkpoints}')
            state = self.load(done)
        model, learner, gains = state['model'], state['learner'], state['gains']
        used = state['episodes_used']
        for iteration in range(done + 1, loop.iterations + 1):
            agent = LatentAgent(model, gains)
            episodes = self._collect(loop.rollouts_per_iteration, agent, gains.policy_version,
                                     used)
            used += len(episodes)
            start = time.monotonic()
            if loop.refit_updates:
                buffer = self.store.load(max(0, used - loop.buffer_episodes), used)
                model.fit(self._batch(buffer), loop.refit_updates)
            fit_seconds = time.monotonic() - start
            start = time.monotonic()
            batch = self._batch(episodes)
            update = learner.update(model.smoother(batch.images, batch.actions),
                                    batch.actions, batch.costs, prior=model.q)
            gains = TimeVaryingGains(update.policy, update.fit.dynamics,
                                     policy_version=iteration,
                                     model_version=model.num_updates)
            policy_seconds = time.monotonic() - start
            self._save(iteration, model, learner, gains, used)
            self._report(iteration, used, episodes, fit_seconds, policy_seconds,
                         update.kl, update.step_mult)
        return gains

    def _pretrain(self) -> Dict[str, Any]:
        """Collect random episodes, fit the model, and checkpoint iteration 0."""
        loop = self.config.loop
        self.log(f'pretraining: {loop.pretrain_episodes} random episodes, '
                 f'{loop.pretrain_updates} model updates')
        episodes = self._collect(loop.pretrain_episodes, None, 0, 0)
        model = SolarModel(self.model_config)
        start = time.monotonic()
        model.fit(self._batch(episodes), loop.pretrain_updates, self._fit_progress)
        fit_seconds = time.monotonic() - start
        learner = self._new_learner()
        gains = TimeVaryingGains(learner.policy, model.dynamics(), policy_version=0,
                                 model_version=model.num_updates)
        self._save(0, model, learner, gains, len(episodes))
        self._report(0, len(episodes), episodes, fit_seconds, 0.0, 0.0, learner.step_mult)
        return {'model': model, 'learner': learner, 'gains': gains,
                'episodes_used': len(episodes)}

    def _fit_progress(self, update: int, terms: Dict[str, float]) -> None:
        """Log the model's ELBO every 100 updates of a long fit."""
        if (update + 1) % 100 == 0:
            self.log(f'  model update {update + 1}: elbo {terms["elbo"]:.1f} '
                     f'beta {terms["beta"]:.3f}')

    def _report(self, iteration: int, used: int, episodes: Sequence[Episode],
                fit_seconds: float, policy_seconds: float, kl: float,
                step_mult: float) -> None:
        """Append the iteration's metrics row and print its progress line."""
        row = {'iteration': iteration, 'episodes': used,
               'mean_cost': float(np.mean([e.costs.sum() for e in episodes])),
               'final_distance': float(np.mean([e.final_distance for e in episodes])),
               'success_rate': float(np.mean([e.success for e in episodes])),
               'model_fit_s': fit_seconds, 'policy_update_s': policy_seconds,
               'kl': float(kl), 'step_mult': float(step_mult)}
        self.metrics.append(row)
        self.log(progress_line(row))
