"""SOLAR's deep state-space model: encoder potentials, Bayesian time-varying LDS, decoder, cost.

Generative model (SOLAR paper; the SVAE of Johnson et al., 2016), for one sequence of horizon T:

    s_0 ~ N(0, I),  s_{t+1} | s_t, a_t ~ N(F_t [s_t; a_t], Sigma_t)   (t = 0..T-2),
    (F_t, Sigma_t) ~ MNIW prior (M0 = [I 0], V0 = I, S0 = prior_scale I, nu0 = dx + 2),
    o_t | s_t ~ Bernoulli(sigmoid(decoder(s_t))),   c_t | s_t ~ N(cost_head(s_t), sigma_t^2),
    sigma_t = cost_std + cost_rel_std |c_t|.

With ``log_cost_weight`` w > 0 an MLP g adds w beta sum_t log N(log(c_t + eps); g(s~_t), std^2)
to L below: a training signal only, steepest where the squared cost is flat (at the goal).
With ``residual_dim`` d > 0 a linear read-out adds beta sum_t log N(r_t; W s~_t + b_t,
residual_std^2 I) of the cost's residuals r_t (the sequences carry them): a training signal
only, which asks the latent to hold the block's offset linearly.

Variational family: q(F, Sigma) q(s | o, a) with q(F, Sigma) a time-varying MNIW and
q(s) proportional to exp(E_q(F,Sigma)[log p(s | a, F, Sigma)]) times the encoder potentials
psi_t(s_t) = exp(-1/2 s_t^T J_t s_t + h_t^T s_t), J_t = diag(std_t^-2), h_t = mean_t / std_t^2
(or, with ``precision: full``, J_t = L_t L_t^T a full matrix and h_t = J_t mean_t).

Expected-parameter LDS. Write e1 = E[Sigma^-1], e2 = E[Sigma^-1 F], e3 = E[F^T Sigma^-1 F].
Then E[log N(s'; F x, Sigma)] = log N(s'; Fbar x, Qbar) - 1/2 x^T D x + k with
Qbar = e1^-1, Fbar = Qbar e2, D = e3 - e2^T e1^-1 e2 (= dx V for an MNIW) and
k = -1/2 (E[log|Sigma|] + log|e1|) <= 0. So q(s) is the posterior of the ordinary LDS
(Fbar, Qbar) with the extra quadratic potential exp(-1/2 x_t^T D_t x_t) on x_t = [s_t; a_t]
(actions observed) folded into the encoder potentials, and

    E_q(s) q(F,Sigma)[log p(s | a)] - E_q[log q(s)] = log Z - E_q[sum_t log psi_t(s_t)]
                                                    - 1/2 sum_t a_t^T D_aa a_t + sum_t k_t,

with Z the Kalman log-normaliser of the augmented potentials. ``local_kl`` is minus this
(it is >= 0). The per-sequence objective, averaged over a minibatch of B of N sequences, is

    L = sum_t log p(o_t | s~_t) + beta * (sum_t log p(c_t | s~_t) - local_kl)
        - beta * KL(q(F, Sigma) || p(F, Sigma)) / N,

with s~ one backward (FFBS) sample of q(s), reparameterised. The networks take Adam steps on
-L with global-norm gradient clipping; the cost head gets the cost term at weight 1 (its own
gradient is not scaled by beta, as in the authors' separate optimiser). The MNIW is kept out
of autograd: its expected statistics are constants in L, and after each network step it
takes the natural-gradient SVI step eta <- (1 - rho) eta + rho (eta0 + N/B sum_batch T(s)),
with T the smoothed sufficient statistics of the minibatch. beta rises linearly per update
from beta_start by beta_increment up to beta_max (the warm-up against posterior collapse).

The VAE ablation (``inference: vae``, the paper's baseline without dynamics in inference):
q(s_t | o_t) is the encoder's Gaussian on its own, local_kl = sum_t KL(q(s_t) || N(0, I)),
and the same MNIW step fits the global dynamics to the independent frames' statistics; the
networks then learn nothing from the dynamics, which only serve LQR-FLM as a prior.

Precision: networks float32, everything Kalman and MNIW float64.
"""

from dataclasses import fields
import os
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .lds import (frame_posteriors, GaussianPotentials, kalman_smoother, LDSParams,
                  sample_backward, SmootherResult)
from .mniw import MNIW, mniw_natural_step
from .model_config import ModelConfig, OBJECTIVE_WEIGHTS
from .networks import (bernoulli_log_likelihood, Decoder, Encoder, LogCostHead,
                       QuadraticCostHead, ResidualHead)
from .sequences import ArrayLike, check_sequences, EpisodeBatch, ModelInputError
from .tensors import symmetrize, view_channels

CHECKPOINT_KIND = 'solar_ros.SolarModel'
CHECKPOINT_VERSION = 1


def _as_float_images(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    return images.to(torch.float32)


def build_encoders(config: ModelConfig) -> List[Encoder]:
    """Return new encoders of the design ``config`` sets, one per camera view, in view order.

    They draw their initial weights from torch's global generator (seed it first).
    """
    return [Encoder(config.latent_dim, config.image_size, config.channels, config.hidden,
                    config.min_std, config.keypoints, config.dense_branch,
                    config.precision == 'full', observed)
            for observed in config.view_masks()]


class SolarModel(nn.Module):
    """The SOLAR latent state-space model (module docstring for the math).

    Attributes:
        config: the ModelConfig.
        encoder, decoder, cost_head: the float32 networks; with V > 1 views ``encoder`` is
            a ModuleList of V encoders, one per camera.
        log_cost_head: the LogCostHead when config.log_cost_weight > 0, else None.
        residual_head: the ResidualHead when config.residual_dim > 0, else None.
        prior, q: the MNIW prior and variational posterior over (F_t, Sigma_t), leading dim
            T - 1, float64, outside autograd.
        num_updates: number of training updates done (drives beta).
        generator: torch generator of minibatches and samples.

    """

    def __init__(self, config: ModelConfig) -> None:
        """Build the networks and the MNIW prior/posterior, seeded by ``config.seed``."""
        super().__init__()
        self.config = config
        dx, du = config.latent_dim, config.action_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            encoders = build_encoders(config)
            self.encoder = encoders[0] if config.views == 1 else nn.ModuleList(encoders)
            self.decoder = Decoder(dx, config.image_size, config.channels, 3 * config.views)
            self.cost_head = QuadraticCostHead(dx, config.cost_std,
                                               cost_rel_std=config.cost_rel_std)
            self.log_cost_head = (LogCostHead(dx, config.log_cost_eps, config.log_cost_std)
                                  if config.log_cost_weight else None)
            self.residual_head = (ResidualHead(dx, config.residual_dim, config.horizon,
                                               config.residual_std)
                                  if config.residual_dim else None)
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.prior = MNIW.prior(dx, du, config.horizon, scale=config.prior_scale)
        noise = config.init_noise * torch.randn(
            self.prior.M.shape, generator=self.generator, dtype=torch.float64)
        self.q = MNIW(self.prior.M + noise, self.prior.V.clone(), self.prior.S.clone(),
                      self.prior.nu.clone())
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.learning_rate)
        self.num_updates = 0

    def reweigh(self, config: ModelConfig) -> None:
        """Take ``config``'s objective weights; every other setting must be this model's own.

        The weights (:data:`~solar_ros.core.model_config.OBJECTIVE_WEIGHTS`: the residual
        read-out's std) hold no parameters, so a trained model, a forked run's, can be
        fitted on with other values; the networks, the MNIW and the optimiser are kept.

        Raises:
            ValueError: ``config`` differs in another setting (naming them).

        """
        other = [name for name in self.config.differences(config)
                 if name not in OBJECTIVE_WEIGHTS]
        if other:
            raise ValueError(f"settings {other} differ from the trained model's (only "
                             f'{list(OBJECTIVE_WEIGHTS)} may change)')
        self.config = config
        if self.residual_head is not None:
            self.residual_head.std = config.residual_std

    @property
    def beta(self) -> float:
        """Return the current KL/cost weight of the warm-up schedule."""
        c = self.config
        return min(c.beta_max, c.beta_start + c.beta_increment * self.num_updates)

    def encode(self, images: torch.Tensor) -> GaussianPotentials:
        """Return the encoder potentials of ``images`` (B, T, H, W, 3 V), float64.

        J is (B, T, dx) diagonal or, with ``config.precision`` 'full', (B, T, dx, dx); h is
        (B, T, dx). With V > 1 views, the product of the views' Gaussian potentials (their
        J and h add).
        """
        images = _as_float_images(images)
        J = h = 0.0
        for view, encoder in enumerate(self.view_encoders()):
            precision, weighted_mean = encoder.potential(view_channels(images, view))
            J, h = J + precision, h + weighted_mean
        return GaussianPotentials(J=J, h=h)

    def view_encoders(self) -> List[Encoder]:
        """Return the encoder of each camera view, in view order."""
        return [self.encoder] if self.config.views == 1 else list(self.encoder)

    def dynamics(self) -> LDSParams:
        """Return the posterior mean dynamics: F = E[F] = M, Q = E[Sigma], s_0 ~ N(0, I)."""
        F, Q = self.q.mean_dynamics()
        dx = self.config.latent_dim
        return LDSParams(F=F.detach().clone(), Q=Q.detach().clone(),
                         mu0=torch.zeros(dx, dtype=torch.float64),
                         P0=torch.eye(dx, dtype=torch.float64))

    def cost_params(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the learned quadratic cost on x = [s; a]: cost = 1/2 x^T C x + c^T x + const.

        Returns:
            C (dx+du, dx+du) float64 with the cost head's L L^T in the state block and
            R = 2 * action_cost_weight * I in the action block; c (dx+du,); const ().

        """
        dx, du = self.config.latent_dim, self.config.action_dim
        with torch.no_grad():
            C = torch.zeros(dx + du, dx + du, dtype=torch.float64)
            C[:dx, :dx] = self.cost_head.matrix().to(torch.float64)
            C[dx:, dx:] = 2.0 * self.config.action_cost_weight * torch.eye(
                du, dtype=torch.float64)
            c = torch.zeros(dx + du, dtype=torch.float64)
            c[:dx] = self.cost_head.linear.to(torch.float64)
            const = self.cost_head.const.detach().to(torch.float64).clone()
        return C, c, const

    def _local_lds(self, potentials: GaussianPotentials, actions: torch.Tensor,
                   dynamics: Optional[MNIW] = None
                   ) -> Tuple[LDSParams, GaussianPotentials, torch.Tensor]:
        """Return the expected-parameter LDS, the augmented potentials and the KL constant.

        ``dynamics`` is the MNIW over (F_t, Sigma_t) to take expectations under (default:
        the global posterior q). The constant (B,) is 1/2 sum_t a_t^T D_aa a_t - sum_t k_t
        (module docstring).
        """
        dx = self.config.latent_dim
        with torch.no_grad():
            stats = (self.q if dynamics is None else dynamics).expected_stats()
            e1, e2, e3 = stats.E_Sinv, stats.E_Sinv_F, stats.E_Ft_Sinv_F
            Q = torch.linalg.inv(e1)
            Q = symmetrize(Q)
            F = Q @ e2
            D = e3 - e2.transpose(-1, -2) @ F
            D = symmetrize(D)
            k = 0.5 * (stats.E_logdet_Sinv - torch.linalg.slogdet(e1)[1])
        params = LDSParams(F=F, Q=Q, mu0=torch.zeros(dx, dtype=torch.float64),
                           P0=torch.eye(dx, dtype=torch.float64))
        a = actions[:, :-1]
        J = potentials.full_precision()
        extra_J = torch.nn.functional.pad(D[:, :dx, :dx], (0, 0, 0, 0, 0, 1))
        extra_h = torch.nn.functional.pad(
            -torch.einsum('tij,btj->bti', D[:, :dx, dx:], a), (0, 0, 0, 1))
        augmented = GaussianPotentials(J=J + extra_J, h=potentials.h + extra_h)
        const = 0.5 * torch.einsum('bti,tij,btj->b', a, D[:, dx:, dx:], a) - k.sum()
        return params, augmented, const

    def _local_terms(self, potentials: GaussianPotentials, actions: torch.Tensor,
                     num_samples: int = 1) -> Tuple[SmootherResult, torch.Tensor, torch.Tensor]:
        """Smooth, compute local_kl (B,) and draw samples (num_samples, B, T, dx) float64."""
        if self.config.inference == 'vae':
            frames = frame_posteriors(potentials, actions)
            var = 1.0 / potentials.J
            local_kl = 0.5 * (var + frames.means ** 2 - 1.0 - torch.log(var)).sum(dim=(-2, -1))
            eps = torch.randn(num_samples, *var.shape, generator=self.generator,
                              dtype=torch.float64)
            return frames, local_kl, frames.means + var.sqrt() * eps
        params, augmented, const = self._local_lds(potentials, actions)
        smoothed = kalman_smoother(params, augmented, actions)
        second = smoothed.covs + smoothed.means.unsqueeze(-1) * smoothed.means.unsqueeze(-2)
        if potentials.J.ndim == 4:
            quadratic = torch.einsum('btij,btij->b', potentials.J, second)
        else:
            quadratic = (potentials.J * torch.diagonal(second, dim1=-2, dim2=-1)).sum(dim=(-2, -1))
        expected_log_psi = -0.5 * quadratic + (potentials.h * smoothed.means).sum(dim=(-2, -1))
        local_kl = expected_log_psi - smoothed.log_normalizer + const
        samples = sample_backward(params, augmented, actions, num_samples, self.generator)
        return smoothed, local_kl, samples

    def _terms(self, images: torch.Tensor, actions: torch.Tensor, costs: torch.Tensor,
               beta: float, num_data: int, residuals: Optional[torch.Tensor] = None
               ) -> Tuple[torch.Tensor, Dict, SmootherResult]:
        """Return the training loss, the per-term minibatch means and the smoother result."""
        float_images = _as_float_images(images)
        potentials = self.encode(images)
        smoothed, local_kl, samples = self._local_terms(potentials, actions)
        latents = samples[0].to(torch.float32)
        recon = bernoulli_log_likelihood(self.decoder(latents), float_images,
                                         self._recon_weights(float_images)).sum(-1)
        target = (costs - self.config.action_cost_weight * (actions ** 2).sum(-1)).float()
        cost_ll = self.cost_head.log_likelihood(latents, target, detach_params=True).sum(-1)
        head_ll = self.cost_head.log_likelihood(latents.detach(), target).sum(-1)
        if self.log_cost_head is not None:
            weight = self.config.log_cost_weight
            cost_ll = cost_ll + weight * self.log_cost_head.log_likelihood(
                latents, target, detach_params=True).sum(-1)
            head_ll = head_ll + weight * self.log_cost_head.log_likelihood(
                latents.detach(), target).sum(-1)
        if self.residual_head is not None:
            residuals = residuals.float()
            cost_ll = cost_ll + self.residual_head.log_likelihood(
                latents, residuals, detach_params=True).sum(-1)
            head_ll = head_ll + self.residual_head.log_likelihood(
                latents.detach(), residuals).sum(-1)
        with torch.no_grad():
            global_kl = self.q.kl(self.prior).sum()
        local = recon + beta * (cost_ll.double() - local_kl)
        loss = -local.mean() - head_ll.mean()
        terms = {'elbo': local.mean() - beta * global_kl / num_data, 'recon': recon.mean(),
                 'cost_ll': cost_ll.mean(), 'local_kl': local_kl.mean(),
                 'global_kl': global_kl, 'beta': torch.tensor(beta)}
        return loss, terms, smoothed

    def _recon_weights(self, images: torch.Tensor) -> Optional[torch.Tensor]:
        """Return per-pixel reconstruction weights, or None where every weight is 1.

        ``images``: (B, T, H, W, 3 V) in [0, 1]. With recon_focus f the weight of a pixel
        is 1 + f |o - minibatch mean frame| (the pixels that differ from the mean frame are
        those of the arm and the blocks); view_weights multiply each camera's 3 channels.
        """
        weights = None
        if self.config.recon_focus:
            mean_frame = images.mean(dim=(0, 1), keepdim=True)
            weights = 1.0 + self.config.recon_focus * (images - mean_frame).abs()
        if self.config.view_weights:
            per_channel = torch.tensor(self.config.view_weights, dtype=images.dtype,
                                       device=images.device).repeat_interleave(3)
            weights = per_channel if weights is None else weights * per_channel
        return weights

    def elbo(self, batch: EpisodeBatch, beta: float = 1.0,
             num_data: Optional[int] = None) -> Dict[str, float]:
        """Estimate the ELBO per sequence of ``batch`` with one posterior sample each.

        Args:
            batch: sequences to score (all of them, in one pass).
            beta: weight of the cost and KL terms (1 gives the ELBO proper).
            num_data: N dividing the global KL; defaults to len(batch).

        Returns:
            dict of floats: 'elbo', 'recon', 'cost_ll' (with the weighted log-cost term
            when config.log_cost_weight > 0 and the residuals' term when residual_dim > 0),
            'local_kl' (means per sequence), 'global_kl' and 'beta'.

        """
        self._check_batch(batch)
        with torch.no_grad():
            _, terms, _ = self._terms(batch.images, batch.actions, batch.costs, beta,
                                      num_data or len(batch), batch.residuals)
        return {key: float(value) for key, value in terms.items()}

    def infer(self, images: ArrayLike, actions: ArrayLike) -> SmootherResult:
        """Return the smoothed posterior q(s | o, a) of sequences (no gradients).

        Args:
            images: (B, T, H, W, 3 V) uint8 or float in [0, 1].
            actions: (B, T, du).

        """
        return self.smoother(images, actions)(None)

    def smoother(self, images: ArrayLike,
                 actions: ArrayLike) -> Callable[[Optional[MNIW]], SmootherResult]:
        """Return a smoother of these sequences under any dynamics MNIW, for LQR-FLM's EM.

        The encoder runs once; each call of the returned function smooths the sequences
        with the expected-parameter LDS of the given MNIW (leading dim T - 1; None: the
        model's global posterior q). In the VAE
        ablation it returns the independent frames' posteriors whatever the MNIW.

        Args:
            images: (B, T, H, W, 3 V) uint8 or float in [0, 1].
            actions: (B, T, du).

        """
        images, actions = torch.as_tensor(images), torch.as_tensor(actions, dtype=torch.float64)
        check_sequences(images, actions, config=self.config)
        with torch.no_grad():
            potentials = self.encode(images)

        def smooth(dynamics: Optional[MNIW]) -> SmootherResult:
            if self.config.inference == 'vae':
                return frame_posteriors(potentials, actions)
            with torch.no_grad():
                params, augmented, _ = self._local_lds(potentials, actions, dynamics)
                return kalman_smoother(params, augmented, actions)
        return smooth

    def predict(self, images: ArrayLike, actions: ArrayLike, num_observed: int,
                params: Optional[LDSParams] = None) -> torch.Tensor:
        """Predict all frames from the first ``num_observed`` images and all actions.

        The encoder potentials of frames t >= num_observed are dropped; the smoothed means
        under ``params`` (default: :meth:`dynamics`) are decoded, so frames from
        num_observed on are open-loop predictions.

        Returns:
            (B, T, H, W, 3 V) float32 pixel probabilities in [0, 1].

        """
        images, actions = torch.as_tensor(images), torch.as_tensor(actions, dtype=torch.float64)
        check_sequences(images, actions, config=self.config)
        if not 1 <= num_observed <= self.config.horizon:
            raise ValueError(
                f'num_observed must be in [1, {self.config.horizon}], got {num_observed}')
        with torch.no_grad():
            potentials = self.encode(images)
            keep = (torch.arange(self.config.horizon) < num_observed).to(torch.float64)
            observed = GaussianPotentials(
                J=potentials.J * keep.reshape(-1, *[1] * (potentials.J.ndim - 2)),
                h=potentials.h * keep[:, None])
            smoothed = kalman_smoother(params or self.dynamics(), observed, actions)
            return torch.sigmoid(self.decoder(smoothed.means.to(torch.float32)))

    def fit(self, batch: EpisodeBatch, num_updates: int,
            progress: Optional[Callable[[int, Dict[str, float]], None]] = None,
            train_encoder: bool = True,
            stop: Optional[Callable[[], bool]] = None) -> List[Dict[str, float]]:
        """Train on ``batch`` for ``num_updates`` minibatch updates; return per-update terms.

        Each update draws config.batch_size sequences (without replacement within the
        update), takes one clipped Adam step of the networks on -ELBO (beta-weighted) and one
        natural-gradient step of q(F, Sigma) with N = len(batch). ``progress(i, terms)`` is
        called after update i (0-based) when given. With ``train_encoder`` False the
        encoder's weights stay as they are (its gradients are dropped before each step).
        ``stop()``, when given, is asked before each update; True ends the fit early (the
        history then has fewer entries than ``num_updates``).
        """
        self._check_batch(batch)
        num_data = len(batch)
        size = min(self.config.batch_size, num_data)
        history = []
        self.train()
        for i in range(num_updates):
            if stop is not None and stop():
                break
            index = torch.randperm(num_data, generator=self.generator)[:size]
            residuals = None if batch.residuals is None else batch.residuals[index]
            loss, terms, smoothed = self._terms(batch.images[index], batch.actions[index],
                                                batch.costs[index], self.beta, num_data,
                                                residuals)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not train_encoder:
                for parameter in self.encoder.parameters():
                    parameter.grad = None
            nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
            self.optimizer.step()
            stats = smoothed.stats
            self.q = mniw_natural_step(self.q, self.prior, _detach_stats(stats),
                                       num_data / size, self.config.mniw_step)
            self.num_updates += 1
            record = {key: float(value.detach()) for key, value in terms.items()}
            record['loss'] = float(loss.detach())
            history.append(record)
            if progress is not None:
                progress(i, record)
        self.eval()
        return history

    def _check_batch(self, batch: EpisodeBatch) -> None:
        if not isinstance(batch, EpisodeBatch):
            raise ModelInputError(f'expected an EpisodeBatch, got {type(batch).__name__}')
        check_sequences(batch.images, batch.actions, batch.costs, self.config)
        d = self.config.residual_dim
        if d and (batch.residuals is None or batch.residuals.shape[-1] != d):
            found = 'none' if batch.residuals is None else f'{batch.residuals.shape[-1]} each'
            raise ModelInputError(f'the model reads {d} cost residuals per step '
                                  f'(residual_dim), the sequences carry {found}')

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the whole model (config, networks, optimiser, MNIWs, counters) atomically."""
        payload = {
            'config': self.config.to_dict(),
            'networks': self.state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'q': _mniw_to_dict(self.q),
            'prior': _mniw_to_dict(self.prior),
            'num_updates': self.num_updates,
            'generator': self.generator.get_state(),
        }
        save_checkpoint(path, CHECKPOINT_KIND, CHECKPOINT_VERSION, payload)

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> 'SolarModel':
        """Read a model written by :meth:`save` (CheckpointError if corrupt or mismatched)."""
        payload = load_checkpoint(path, CHECKPOINT_KIND, CHECKPOINT_VERSION)
        model = cls(ModelConfig.from_dict(payload['config']))
        model.load_state_dict(payload['networks'])
        model.optimizer.load_state_dict(payload['optimizer'])
        model.q = MNIW(**payload['q'])
        model.prior = MNIW(**payload['prior'])
        model.num_updates = int(payload['num_updates'])
        model.generator.set_state(payload['generator'])
        model.eval()
        return model


def _mniw_to_dict(mniw: MNIW) -> Dict[str, torch.Tensor]:
    return {name: getattr(mniw, name).detach().clone() for name in ('M', 'V', 'S', 'nu')}


def _detach_stats(stats):
    return type(stats)(**{f.name: getattr(stats, f.name).detach() for f in fields(stats)})
