"""Settings of :class:`~solar_ros.core.model.SolarModel`, checked when built."""

from dataclasses import asdict, dataclass, fields, MISSING
import os
from typing import Dict, Tuple, Union

INFERENCE = ('solar', 'vae')
PRECISION = ('diagonal', 'full')
# Settings that only weigh a term of the objective and shape no network or state: a model
# may take new values of them between updates (SolarModel.reweigh), a forked run among them.
OBJECTIVE_WEIGHTS = ('residual_std',)


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
        dense_branch: B > 0 adds a dense branch of B units to each keypoint encoder's mean
            (zero at the start of training; see the Encoder); 0: none.
        min_std: floor added to the encoder's softplus standard deviation.
        precision: 'diagonal' (each camera's potential has precision diag(std^-2)) or
            'full' (a full precision L L^T per camera, so that a camera that does not see a
            direction of the latent can leave it open whatever the basis; solar inference
            only; see the Encoder).
        cost_std: standard deviation of the cost likelihood N(c_t; cost_head(s_t), sigma_t^2)
            for a zero cost.
        cost_rel_std: growth of that std per unit of observed cost: sigma_t = cost_std +
            cost_rel_std |c_t| (0: the same std for every cost).
        recon_focus: f > 0 weighs each pixel's reconstruction term by 1 + f |o - m|, m the
            minibatch's mean frame: the moving arm and blocks count more than the static
            scene (0: the plain likelihood).
        view_weights: V positive weights of the cameras' reconstruction terms, in view
            order, so that a camera that sees what the others do not (a zoomed one) counts
            more; () weighs every camera 1. Multiplies the recon_focus weights.
        view_own_dims: V counts n_v >= 0, in view order: the latent's last n_1 + ... + n_V
            dimensions are split into one block per view, in view order, and view v's
            potential speaks only about its own block and the shared dimensions before
            them (its precision is zero on the other views' blocks), so what one camera
            alone sees (the target, for a zoomed camera) is not outweighed in the product
            by the cameras that do not see it; () shares every dimension (see
            :meth:`view_masks`).
        log_cost_weight: w > 0 adds w beta sum_t log N(log(c_t + eps); g(s~_t), std^2) to
            the objective, g a small MLP (:class:`~solar_ros.core.networks.LogCostHead`): a
            training signal that is steepest at the goal, where the squared cost is flat
            (0: no such head). LQR-FLM never reads g.
        log_cost_eps: eps of that target, in cost units.
        log_cost_std: std of that likelihood, in log units.
        residual_dim: d > 0 adds beta sum_t log N(r_t; W s~_t + b_t, residual_std^2 I) to the
            objective, r_t (d,) the cost's residuals (the held block's offset from the aim,
            in the cost's units, which training sequences then carry), W (d, dx) and b_t a
            bias per step (:class:`~solar_ros.core.networks.ResidualHead`): a training
            signal that asks the latent to hold the offset linearly, the target's place in
            it included (0: no such head). LQR-FLM never reads this head.
        residual_std: std of that likelihood, in the residuals' units; a trained model may
            take another (:data:`OBJECTIVE_WEIGHTS`, ``SolarModel.reweigh``).
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
            (each frame on its own: the VAE ablation, :mod:`solar_ros.core.model`).

    """

    latent_dim: int
    action_dim: int
    horizon: int
    image_size: int = 64
    views: int = 1
    channels: int = 16
    hidden: int = 128
    keypoints: int = 0
    dense_branch: int = 0
    min_std: float = 0.01
    precision: str = 'diagonal'
    cost_std: float = 1.0
    cost_rel_std: float = 0.0
    recon_focus: float = 0.0
    view_weights: Tuple[float, ...] = ()
    view_own_dims: Tuple[int, ...] = ()
    log_cost_weight: float = 0.0
    log_cost_eps: float = 0.01
    log_cost_std: float = 0.2
    residual_dim: int = 0
    residual_std: float = 0.1
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
        for name in ('keypoints', 'dense_branch', 'residual_dim'):
            if int(getattr(self, name)) < 0:
                raise ValueError(f'ModelConfig.{name} must be >= 0, got {getattr(self, name)}')
        if self.dense_branch and not self.keypoints:
            raise ValueError('ModelConfig.dense_branch needs keypoints > 0')
        if self.horizon < 2:
            raise ValueError(f'ModelConfig.horizon must be >= 2, got {self.horizon}')
        if self.image_size < 16 or self.image_size % 16:
            raise ValueError(
                f'ModelConfig.image_size must be a multiple of 16, got {self.image_size}')
        for name in ('min_std', 'cost_std', 'learning_rate', 'grad_clip', 'prior_scale',
                     'log_cost_eps', 'log_cost_std', 'residual_std'):
            if not getattr(self, name) > 0:
                raise ValueError(f'ModelConfig.{name} must be > 0, got {getattr(self, name)}')
        for name in ('action_cost_weight', 'beta_start', 'beta_increment', 'init_noise',
                     'cost_rel_std', 'recon_focus', 'log_cost_weight'):
            if not getattr(self, name) >= 0:
                raise ValueError(f'ModelConfig.{name} must be >= 0, got {getattr(self, name)}')
        if not self.beta_max >= self.beta_start:
            raise ValueError(f'ModelConfig.beta_max must be >= beta_start, got {self.beta_max}')
        if self.inference not in INFERENCE:
            raise ValueError(f'ModelConfig.inference must be one of {INFERENCE}, '
                             f'got {self.inference!r}')
        if self.precision not in PRECISION:
            raise ValueError(f'ModelConfig.precision must be one of {PRECISION}, '
                             f'got {self.precision!r}')
        if self.precision == 'full' and self.inference == 'vae':
            raise ValueError("ModelConfig.precision 'full' needs inference 'solar' (the VAE "
                             'ablation reads each potential as a diagonal posterior)')
        self.view_weights = tuple(float(w) for w in self.view_weights)
        if self.view_weights and (len(self.view_weights) != self.views
                                  or not all(w > 0 for w in self.view_weights)):
            raise ValueError(f'ModelConfig.view_weights must be {self.views} positive weights '
                             f'(one per view) or empty, got {list(self.view_weights)}')
        self.view_own_dims = tuple(int(n) for n in self.view_own_dims)
        if self.view_own_dims and (len(self.view_own_dims) != self.views
                                   or min(self.view_own_dims) < 0
                                   or sum(self.view_own_dims) > self.latent_dim):
            raise ValueError(f'ModelConfig.view_own_dims must be {self.views} counts >= 0 (one '
                             f'per view) summing to at most latent_dim={self.latent_dim}, '
                             f'or empty, got {list(self.view_own_dims)}')
        if not 0 < self.mniw_step <= 1:
            raise ValueError(f'ModelConfig.mniw_step must be in (0, 1], got {self.mniw_step}')

    def differences(self, other: 'ModelConfig') -> Tuple[str, ...]:
        """Return the names of the settings whose values differ in ``other``, in field order."""
        return tuple(f.name for f in fields(self)
                     if getattr(self, f.name) != getattr(other, f.name))

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
        values = asdict(self)
        values['view_weights'] = list(self.view_weights)
        values['view_own_dims'] = list(self.view_own_dims)
        return values

    def view_masks(self) -> Tuple[Tuple[bool, ...], ...]:
        """Return, per view, which of the dx latent dimensions its potential speaks about.

        V tuples of dx bools (:attr:`view_own_dims`): True on the shared dimensions and on
        the view's own block, False on the other views' blocks; every True without
        ``view_own_dims``.
        """
        dx = self.latent_dim
        owners = [None] * (dx - sum(self.view_own_dims))
        for view, count in enumerate(self.view_own_dims):
            owners += [view] * count
        return tuple(tuple(owner is None or owner == view for owner in owners)
                     for view in range(self.views))
