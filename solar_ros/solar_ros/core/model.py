"""SOLAR's deep state-space model: encoder potentials, Bayesian time-varying LDS, decoder, cost.

Generative model (solar-method.md sections 1 and 2), for one sequence of horizon T:

    s_0 ~ N(0, I),  s_{t+1} | s_t, a_t ~ N(F_t [s_t; a_t], Sigma_t)   (t = 0..T-2),
    (F_t, Sigma_t) ~ MNIW prior (M0 = [I 0], V0 = I, S0 = prior_scale I, nu0 = dx + 2),
    o_t | s_t ~ Bernoulli(sigmoid(decoder(s_t))),   c_t | s_t ~ N(cost_head(s_t), cost_std^2).

Variational family: q(F, Sigma) q(s | o, a) with q(F, Sigma) a time-varying MNIW and
q(s) proportional to exp(E_q(F,Sigma)[log p(s | a, F, Sigma)]) times the encoder potentials
psi_t(s_t) = exp(-1/2 s_t^T J_t s_t + h_t^T s_t), J_t = diag(std_t^-2), h_t = mean_t / std_t^2.

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

from dataclasses import asdict, dataclass, fields, MISSING
import os
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .lds import (frame_posteriors, GaussianPotentials, kalman_smoother, LDSParams,
                  sample_backward, SmootherResult)
from .mniw import MNIW, mniw_natural_step
from .networks import bernoulli_log_likelihood, Decoder, Encoder, QuadraticCostHead

CHECKPOINT_KIND = 'solar_ros.SolarModel'
CHECKPOINT_VERSION = 1
INFERENCE = ('solar', 'vae')
ArrayLike = Union[np.ndarray, torch.Tensor]


class ModelInputError(ValueError):
    """Raised for images, actions or costs of the wrong shape, range or with non-finite values."""


@dataclass
class ModelConfig:
    """Every setting of :class:`SolarModel`, with the defaults used for the point mass.

    Attributes:
        latent_dim: dx, dimension of the latent state s_t.
        action_dim: du, dimension of the action a_t.
        horizon: T, number of states/images per sequence (the time-varying MNIW has T - 1).
        image_size: side of the square RGB images, a multiple of 16.
        views: V, cameras per observation, stacked on the channel axis (3 V channels).
            Each camera has its own encoder and the potentials multiply (a product of
            experts: J = sum_v J_v, h = sum_v h_v); the decoder predicts all 3 V channels.
        channels: width c of the conv networks (c, 2c, 2c, 2c channels).
        hidden: units of the encoder's dense layer.
        keypoints: K > 0 makes the encoder a spatial soft-argmax over K feature maps
            (see :class:`~solar_ros.core.networks.Encoder`); 0 keeps the dense encoder.
        min_std: floor added to the encoder's softplus standard deviation.
        cost_std: standard deviation of the cost likelihood N(c_t; cost_head(s_t), cost_std^2).
        action_cost_weight: w of the known action penalty w ||a||^2; it is subtracted from
            the observed costs before the cost head fits them, and cost_params() puts
            R = 2 w I in the action block.
        batch_size: sequences per update (B).
        learning_rate: Adam step size of the networks and the cost head.
        grad_clip: global gradient-norm clip of the network step.
        beta_start: beta at update 0.
        beta_increment: beta added per update.
        beta_max: cap of beta.
        mniw_step: rho, the natural-gradient step size of the MNIW per update, in (0, 1].
        prior_scale: S0 = prior_scale * I, the inverse-Wishart scale of the MNIW prior.
        init_noise: std of the N(0, 1) noise added to M0 to initialise q(F, Sigma).
        seed: seed of the network initialisation, minibatches and samples.
        inference: 'solar' (Kalman smoothing of the potentials under the LDS) or 'vae'
            (each frame on its own: the VAE ablation, module docstring).

    """

    latent_dim: int
    action_dim: int
    horizon: int
    image_size: int = 64
    views: int = 1
    channels: int = 16
    hidden: int = 128
    keypoints: int = 0
    min_std: float = 0.01
    cost_std: float = 1.0
    action_cost_weight: float = 0.0
    batch_size: int = 8
    learning_rate: float = 1e-3
    grad_clip: float = 5.0
    beta_start: float = 0.01
    beta_increment: float = 0.005
    beta_max: float = 1.0
    mniw_step: float = 0.1
    prior_scale: float = 2.0
    init_noise: float = 0.01
    seed: int = 0
    inference: str = 'solar'

    def __post_init__(self) -> None:
        """Check the values; raise ValueError naming the first bad one."""
        positive_ints = ('latent_dim', 'action_dim', 'views', 'channels', 'hidden',
                         'batch_size')
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(f'ModelConfig.{name} must be >= 1, got {getattr(self, name)}')
        if int(self.keypoints) < 0:
            raise ValueError(f'ModelConfig.keypoints must be >= 0, got {self.keypoints}')
        if self.horizon < 2:
            raise ValueError(f'ModelConfig.horizon must be >= 2, got {self.horizon}')
        if self.image_size < 16 or self.image_size % 16:
            raise ValueError(
                f'ModelConfig.image_size must be a multiple of 16, got {self.image_size}')
        for name in ('min_std', 'cost_std', 'learning_rate', 'grad_clip', 'prior_scale'):
            if not getattr(self, name) > 0:
                raise ValueError(f'ModelConfig.{name} must be > 0, got {getattr(self, name)}')
        for name in ('action_cost_weight', 'beta_start', 'beta_increment', 'init_noise'):
            if not getattr(self, name) >= 0:
                raise ValueError(f'ModelConfig.{name} must be >= 0, got {getattr(self, name)}')
        if not self.beta_max >= self.beta_start:
            raise ValueError(f'ModelConfig.beta_max must be >= beta_start, got {self.beta_max}')
        if self.inference not in INFERENCE:
            raise ValueError(f'ModelConfig.inference must be one of {INFERENCE}, '
                             f'got {self.inference!r}')
        if not 0 < self.mniw_step <= 1:
            raise ValueError(f'ModelConfig.mniw_step must be in (0, 1], got {self.mniw_step}')

    @classmethod
    def from_dict(cls, values: Dict) -> 'ModelConfig':
        """Build a config from a dict; unknown or missing required keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown ModelConfig keys {unknown}; known keys: {sorted(known)}')
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [name for name in required if name not in values]
        if missing:
            raise ValueError(f'ModelConfig needs {missing} (required: {required})')
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: Union[str, os.PathLike]) -> 'ModelConfig':
        """Build a config from a YAML file holding a mapping (optionally under key 'model')."""
        import yaml
        with open(path) as handle:
            values = yaml.safe_load(handle)
        if isinstance(values, dict) and isinstance(values.get('model'), dict):
            values = values['model']
        if not isinstance(values, dict):
            raise ValueError(f'{path} does not hold a mapping of ModelConfig settings')
        return cls.from_dict(values)

    def to_dict(self) -> Dict:
        """Return the settings as a plain dict (YAML/JSON-serialisable)."""
        return asdict(self)


@dataclass
class EpisodeBatch:
    """Training sequences: images o_t, actions a_t and costs c_t for t = 0..T-1.

    Attributes:
        images: (N, T, H, W, 3 V) uint8, V camera views stacked on the channel axis.
        actions: (N, T, du) float64.
        costs: (N, T) float64, the cost of state s_t and action a_t.

    """

    images: torch.Tensor
    actions: torch.Tensor
    costs: torch.Tensor

    def __post_init__(self) -> None:
        """Convert numpy arrays to tensors and check shapes, dtypes and values."""
        self.images = torch.as_tensor(self.images)
        self.actions = torch.as_tensor(self.actions, dtype=torch.float64)
        self.costs = torch.as_tensor(self.costs, dtype=torch.float64)
        if self.images.dtype != torch.uint8:
            raise ModelInputError(f'EpisodeBatch.images must be uint8, got {self.images.dtype}')
        check_sequences(self.images, self.actions, self.costs)

    def __len__(self) -> int:
        """Return the number of sequences N."""
        return self.images.shape[0]

    def select(self, index: ArrayLike) -> 'EpisodeBatch':
        """Return the sequences at ``index`` (indices or a boolean mask) as a new batch."""
        index = torch.as_tensor(index)
        return EpisodeBatch(self.images[index], self.actions[index], self.costs[index])


def check_sequences(images: torch.Tensor, actions: torch.Tensor,
                    costs: Optional[torch.Tensor] = None,
                    config: Optional[ModelConfig] = None) -> None:
    """Raise ModelInputError unless the arrays are consistent sequences.

    images (B, T, H, W, 3 V) uint8, or floating in [0, 1]; actions (B, T, du); costs (B, T);
    all finite. With ``config``, T, H = W, V and du must also match it.
    """
    if (images.ndim != 5 or images.shape[-1] % 3 or images.shape[-1] == 0
            or images.shape[2] != images.shape[3]):
        raise ModelInputError(
            f'images must have shape (B, T, H, H, 3 V), got {tuple(images.shape)}')
    batch, horizon, size = images.shape[0], images.shape[1], images.shape[2]
    if images.dtype != torch.uint8:
        if not images.is_floating_point():
            raise ModelInputError(f'images must be uint8 or floating, got {images.dtype}')
        if not torch.isfinite(images).all():
            raise ModelInputError('images contain non-finite values')
        low, high = images.min().item(), images.max().item()
        if low < 0.0 or high > 1.0:
            raise ModelInputError(
                f'floating images must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]')
    if actions.ndim != 3 or actions.shape[:2] != (batch, horizon):
        raise ModelInputError(
            f'actions must have shape ({batch}, {horizon}, du) to match images, '
            f'got {tuple(actions.shape)}')
    if not torch.isfinite(actions).all():
        raise ModelInputError('actions contain non-finite values')
    if costs is not None:
        if costs.shape != (batch, horizon):
            raise ModelInputError(
                f'costs must have shape ({batch}, {horizon}), got {tuple(costs.shape)}')
        if not torch.isfinite(costs).all():
            raise ModelInputError('costs contain non-finite values')
    if config is not None:
        expected = (config.horizon, config.image_size, config.views, config.action_dim)
        found = (horizon, size, images.shape[-1] // 3, actions.shape[-1])
        if found != expected:
            raise ModelInputError(
                f'sequences have (horizon, image size, views, action dim) = {found}, the '
                f'model expects {expected}')


def _as_float_images(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    return images.to(torch.float32)


class SolarModel(nn.Module):
    """The SOLAR latent state-space model (module docstring for the math).

    Attributes:
        config: the ModelConfig.
        encoder, decoder, cost_head: the float32 networks; with V > 1 views ``encoder`` is
            a ModuleList of V encoders, one per camera.
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
            encoders = [Encoder(dx, config.image_size, config.channels, config.hidden,
                                config.min_std, config.keypoints)
                        for _ in range(config.views)]
            self.encoder = encoders[0] if config.views == 1 else nn.ModuleList(encoders)
            self.decoder = Decoder(dx, config.image_size, config.channels, 3 * config.views)
            self.cost_head = QuadraticCostHead(dx, config.cost_std)
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.prior = MNIW.prior(dx, du, config.horizon, scale=config.prior_scale)
        noise = config.init_noise * torch.randn(
            self.prior.M.shape, generator=self.generator, dtype=torch.float64)
        self.q = MNIW(self.prior.M + noise, self.prior.V.clone(), self.prior.S.clone(),
                      self.prior.nu.clone())
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.learning_rate)
        self.num_updates = 0

    @property
    def beta(self) -> float:
        """Return the current KL/cost weight of the warm-up schedule."""
        c = self.config
        return min(c.beta_max, c.beta_start + c.beta_increment * self.num_updates)

    def encode(self, images: torch.Tensor) -> GaussianPotentials:
        """Return the encoder potentials of ``images`` (B, T, H, W, 3 V): J, h (B, T, dx) float64.

        With V > 1 views, the product of the views' Gaussian potentials (their J and h add).
        """
        images = _as_float_images(images)
        encoders = [self.encoder] if self.config.views == 1 else list(self.encoder)
        J = h = 0.0
        for view, encoder in enumerate(encoders):
            mean, std = encoder(images[..., 3 * view:3 * view + 3])
            precision = std.to(torch.float64) ** -2
            J, h = J + precision, h + mean.to(torch.float64) * precision
        return GaussianPotentials(J=J, h=h)

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
            Q = 0.5 * (Q + Q.transpose(-1, -2))
            F = Q @ e2
            D = e3 - e2.transpose(-1, -2) @ F
            D = 0.5 * (D + D.transpose(-1, -2))
            k = 0.5 * (stats.E_logdet_Sinv - torch.linalg.slogdet(e1)[1])
        params = LDSParams(F=F, Q=Q, mu0=torch.zeros(dx, dtype=torch.float64),
                           P0=torch.eye(dx, dtype=torch.float64))
        a = actions[:, :-1]
        J = torch.diag_embed(potentials.J) if potentials.J.ndim == 3 else potentials.J
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
        expected_log_psi = (-0.5 * (potentials.J * torch.diagonal(second, dim1=-2, dim2=-1))
                            + potentials.h * smoothed.means).sum(dim=(-2, -1))
        local_kl = expected_log_psi - smoothed.log_normalizer + const
        samples = sample_backward(params, augmented, actions, num_samples, self.generator)
        return smoothed, local_kl, samples

    def _terms(self, images: torch.Tensor, actions: torch.Tensor, costs: torch.Tensor,
               beta: float, num_data: int) -> Tuple[torch.Tensor, Dict, SmootherResult]:
        """Return the training loss, the per-term minibatch means and the smoother result."""
        float_images = _as_float_images(images)
        potentials = self.encode(images)
        smoothed, local_kl, samples = self._local_terms(potentials, actions)
        latents = samples[0].to(torch.float32)
        recon = bernoulli_log_likelihood(self.decoder(latents), float_images).sum(-1)
        target = (costs - self.config.action_cost_weight * (actions ** 2).sum(-1)).float()
        cost_ll = self.cost_head.log_likelihood(latents, target, detach_params=True).sum(-1)
        head_ll = self.cost_head.log_likelihood(latents.detach(), target).sum(-1)
        with torch.no_grad():
            global_kl = self.q.kl(self.prior).sum()
        local = recon + beta * (cost_ll.double() - local_kl)
        loss = -local.mean() - head_ll.mean()
        terms = {'elbo': local.mean() - beta * global_kl / num_data, 'recon': recon.mean(),
                 'cost_ll': cost_ll.mean(), 'local_kl': local_kl.mean(),
                 'global_kl': global_kl, 'beta': torch.tensor(beta)}
        return loss, terms, smoothed

    def elbo(self, batch: EpisodeBatch, beta: float = 1.0,
             num_data: Optional[int] = None) -> Dict[str, float]:
        """Estimate the ELBO per sequence of ``batch`` with one posterior sample each.

        Args:
            batch: sequences to score (all of them, in one pass).
            beta: weight of the cost and KL terms (1 gives the ELBO proper).
            num_data: N dividing the global KL; defaults to len(batch).

        Returns:
            dict of floats: 'elbo', 'recon', 'cost_ll', 'local_kl' (means per sequence),
            'global_kl' and 'beta'.

        """
        self._check_batch(batch)
        with torch.no_grad():
            _, terms, _ = self._terms(batch.images, batch.actions, batch.costs, beta,
                                      num_data or len(batch))
        return {key: float(value) for key, value in terms.items()}

    def infer(self, images: ArrayLike, actions: ArrayLike) -> SmootherResult:
        """Return the smoothed posterior q(s | o, a) of sequences (no gradients).

        Args:
            images: (B, T, H, W, 3 V) uint8 or float in [0, 1].
            actions: (B, T, du).

        """
        images, actions = torch.as_tensor(images), torch.as_tensor(actions, dtype=torch.float64)
        check_sequences(images, actions, config=self.config)
        with torch.no_grad():
            potentials = self.encode(images)
            if self.config.inference == 'vae':
                return frame_posteriors(potentials, actions)
            params, augmented, _ = self._local_lds(potentials, actions)
            return kalman_smoother(params, augmented, actions)

    def smoother(self, images: ArrayLike,
                 actions: ArrayLike) -> Callable[[MNIW], SmootherResult]:
        """Return a smoother of these sequences under any dynamics MNIW, for LQR-FLM's EM.

        The encoder runs once; each call of the returned function smooths the sequences
        with the expected-parameter LDS of the given MNIW (leading dim T - 1). In the VAE
        ablation it returns the independent frames' posteriors whatever the MNIW.

        Args:
            images: (B, T, H, W, 3 V) uint8 or float in [0, 1].
            actions: (B, T, du).

        """
        images, actions = torch.as_tensor(images), torch.as_tensor(actions, dtype=torch.float64)
        check_sequences(images, actions, config=self.config)
        with torch.no_grad():
            potentials = self.encode(images)

        def smooth(dynamics: MNIW) -> SmootherResult:
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
            observed = GaussianPotentials(J=potentials.J * keep[:, None],
                                          h=potentials.h * keep[:, None])
            smoothed = kalman_smoother(params or self.dynamics(), observed, actions)
            return torch.sigmoid(self.decoder(smoothed.means.to(torch.float32)))

    def fit(self, batch: EpisodeBatch, num_updates: int,
            progress: Optional[Callable[[int, Dict[str, float]], None]] = None,
            train_encoder: bool = True) -> List[Dict[str, float]]:
        """Train on ``batch`` for ``num_updates`` minibatch updates; return per-update terms.

        Each update draws config.batch_size sequences (without replacement within the
        update), takes one clipped Adam step of the networks on -ELBO (beta-weighted) and one
        natural-gradient step of q(F, Sigma) with N = len(batch). ``progress(i, terms)`` is
        called after update i (0-based) when given. With ``train_encoder`` False the
        encoder's weights stay as they are (its gradients are dropped before each step).
        """
        self._check_batch(batch)
        num_data = len(batch)
        size = min(self.config.batch_size, num_data)
        history = []
        self.train()
        for i in range(num_updates):
            index = torch.randperm(num_data, generator=self.generator)[:size]
            loss, terms, smoothed = self._terms(batch.images[index], batch.actions[index],
                                                batch.costs[index], self.beta, num_data)
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
