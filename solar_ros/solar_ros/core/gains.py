"""What the learner hands to the controller: a latent policy and the dynamics to filter with.

This is the core counterpart of the ``solar_ros_msgs/TimeVaryingGains`` message: the
time-varying linear-Gaussian policy a_t = K_t s_t + k_t + L_t eps_t acts on the filtered
latent mean s_t, and the filter predicts between steps with the local dynamics
s_{t+1} = F_t [s_t; a_t] + w_t, w_t ~ N(0, Q_t), from s_0 ~ N(mu0, P0). Torch float64.
"""

from dataclasses import dataclass
from typing import Any, Dict

from solar_ros.core.lds import LDSParams
from solar_ros.core.policy import LinearGaussianPolicy
import torch

MAX_MAGNITUDE = 1e6  # largest gain, dynamics or mean entry a node accepts


@dataclass
class TimeVaryingGains:
    """A policy, its filtering dynamics and their versions.

    Attributes:
        policy: K (T, du, dx), k (T, du), covariance and lower Cholesky factor (T, du, du).
        dynamics: F (T-1, dx, dx+du), Q (T-1, dx, dx), mu0 (dx,), P0 (dx, dx).
        policy_version: increases with every policy update (0: the initial policy).
        model_version: version of the model whose latent space both live in.

    """

    policy: LinearGaussianPolicy
    dynamics: LDSParams
    policy_version: int = 0
    model_version: int = 0

    def __post_init__(self) -> None:
        """Check that the policy and the dynamics agree on T, dx and du; raise ValueError."""
        policy, dynamics = self.policy, self.dynamics
        horizon, dx, du = policy.horizon, policy.state_dim, policy.action_dim
        expected = {'F': (horizon - 1, dx, dx + du), 'Q': (horizon - 1, dx, dx),
                    'mu0': (dx,), 'P0': (dx, dx)}
        for name, shape in expected.items():
            actual = tuple(getattr(dynamics, name).shape)
            if actual != shape:
                raise ValueError(f'dynamics.{name}: expected shape {shape} for the policy '
                                 f'(T={horizon}, dx={dx}, du={du}), got {actual}')

    @property
    def horizon(self) -> int:
        """Return T."""
        return self.policy.horizon

    @property
    def state_dim(self) -> int:
        """Return dx."""
        return self.policy.state_dim

    @property
    def action_dim(self) -> int:
        """Return du."""
        return self.policy.action_dim

    def to_dict(self) -> Dict[str, Any]:
        """Return the tensors and versions as a plain dict (for checkpoints)."""
        d = self.dynamics
        return {'K': self.policy.K, 'k': self.policy.k, 'cov': self.policy.cov,
                'F': d.F, 'Q': d.Q, 'mu0': d.mu0, 'P0': d.P0,
                'policy_version': self.policy_version, 'model_version': self.model_version}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> 'TimeVaryingGains':
        """Rebuild gains written by :meth:`to_dict`."""
        policy = LinearGaussianPolicy.from_cov(values['K'], values['k'], values['cov'])
        dynamics = LDSParams(*(torch.as_tensor(values[name], dtype=torch.float64)
                               for name in ('F', 'Q', 'mu0', 'P0')))
        return cls(policy, dynamics, int(values['policy_version']),
                   int(values['model_version']))

    def check_usable(self, max_magnitude: float = MAX_MAGNITUDE) -> None:
        """Raise ValueError unless the gains can run: finite, definite and of sane size.

        Checked: every array finite; the initial covariance P0, the process noises Q_t and
        the policy covariances positive definite (a Cholesky factor exists); every entry of
        K, k, F and mu0 at most ``max_magnitude`` in size (larger ones overflow the filter
        or the action). One check for every node that adopts gains, so that all accept or
        reject a policy together.
        """
        d, p = self.dynamics, self.policy
        arrays = {'K': p.K, 'k': p.k, 'cov': p.cov, 'F': d.F, 'Q': d.Q, 'mu0': d.mu0,
                  'P0': d.P0}
        for name, value in arrays.items():
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f'gains: {name} is not finite')
        for name in ('K', 'k', 'F', 'mu0'):
            size = float(arrays[name].abs().max()) if arrays[name].numel() else 0.0
            if size > max_magnitude:
                raise ValueError(f'gains: {name} has an entry of size {size:.3g}, above '
                                 f'{max_magnitude:.3g}')
        for name in ('P0', 'Q', 'cov'):
            _, info = torch.linalg.cholesky_ex(arrays[name])
            if bool((info != 0).any()):
                raise ValueError(f'gains: {name} is not positive definite')
