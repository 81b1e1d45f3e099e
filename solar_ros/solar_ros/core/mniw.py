"""Matrix-normal-inverse-Wishart (MNIW) distributions over linear-Gaussian dynamics.

(F, Sigma) ~ MNIW(M, V, S, nu) means Sigma ~ IW(S, nu) and, given Sigma, F ~ MN(M, Sigma, V):
vec(F) ~ N(vec(M), V kron Sigma), with F (n, m), Sigma (n, n). For latent dynamics
s_{t+1} = F [s_t; a_t] + w, w ~ N(0, Sigma): n = dx rows, m = dx + du columns.

Natural parameters, paired with the statistics
(-1/2 Sigma^-1, Sigma^-1 F, -1/2 F^T Sigma^-1 F, -1/2 log|Sigma|):
eta1 = S + M V^-1 M^T, eta2 = M V^-1, eta3 = V^-1, eta4 = nu + m + n + 1. Observing
transitions y = F x + w adds their sums (yy^T, yx^T, xx^T, count) to (eta1, eta2, eta3,
eta4), which is the conjugate posterior.

Every class and function works on any leading batch dims (for time-varying dynamics, a
leading dim T - 1), in torch float64.
"""

from dataclasses import dataclass
import math
from typing import Tuple

from solar_ros.core.tensors import symmetrize
import torch
from torch import Tensor

JITTER = 1e-8


def _eye(n: int, like: Tensor) -> Tensor:
    """Return the (n, n) identity with the dtype and device of ``like``."""
    return torch.eye(n, dtype=like.dtype, device=like.device)


def _inv_spd(matrix: Tensor) -> Tensor:
    """Return the inverse of symmetric positive-definite ``matrix`` via Cholesky."""
    return symmetrize(torch.cholesky_inverse(torch.linalg.cholesky(symmetrize(matrix))))


def _logdet_spd(matrix: Tensor) -> Tensor:
    """Return log|matrix| of symmetric positive-definite ``matrix`` (...,)."""
    chol = torch.linalg.cholesky(symmetrize(matrix))
    return 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)


def multi_digamma(a: Tensor, p: int) -> Tensor:
    """Return the multivariate digamma psi_p(a) = sum_{i=0}^{p-1} psi(a - i/2)."""
    offsets = torch.arange(p, dtype=a.dtype, device=a.device) / 2.0
    return torch.digamma(a.unsqueeze(-1) - offsets).sum(-1)


@dataclass
class LDSSuffStats:
    """Sufficient statistics of transitions y = s_{t+1} given x = [s_t; a_t].

    Attributes:
        xx: (..., m, m) sum of x x^T.
        yx: (..., n, m) sum of y x^T.
        yy: (..., n, n) sum of y y^T.
        count: (...) number of transitions.

    """

    xx: Tensor
    yx: Tensor
    yy: Tensor
    count: Tensor

    def scaled(self, factor: float) -> 'LDSSuffStats':
        """Return the statistics multiplied by ``factor`` (as if seen ``factor`` times)."""
        return LDSSuffStats(self.xx * factor, self.yx * factor, self.yy * factor,
                            self.count * factor)


@dataclass
class MNIWExpectedStats:
    """Expectations under an MNIW.

    Attributes:
        E_Sinv: (..., n, n) E[Sigma^-1].
        E_Sinv_F: (..., n, m) E[Sigma^-1 F].
        E_Ft_Sinv_F: (..., m, m) E[F^T Sigma^-1 F].
        E_logdet_Sinv: (...) E[log|Sigma^-1|].

    """

    E_Sinv: Tensor
    E_Sinv_F: Tensor
    E_Ft_Sinv_F: Tensor
    E_logdet_Sinv: Tensor


@dataclass
class MNIWNatural:
    """Natural parameters eta1 (..., n, n), eta2 (..., n, m), eta3 (..., m, m), eta4 (...)."""

    eta1: Tensor
    eta2: Tensor
    eta3: Tensor
    eta4: Tensor


@dataclass
class MNIW:
    """Matrix-normal-inverse-Wishart over (F (n, m), Sigma (n, n)); see the module docstring.

    Attributes:
        M: (..., n, m) mean of F.
        V: (..., m, m) column covariance of F.
        S: (..., n, n) inverse-Wishart scale.
        nu: (...) degrees of freedom, > n - 1.

    """

    M: Tensor
    V: Tensor
    S: Tensor
    nu: Tensor

    def __post_init__(self) -> None:
        """Convert to float64 and check that the shapes agree; raise ValueError."""
        self.M, self.V, self.S = (torch.as_tensor(x, dtype=torch.float64)
                                  for x in (self.M, self.V, self.S))
        self.nu = torch.as_tensor(self.nu, dtype=torch.float64)
        if self.M.dim() < 2:
            raise ValueError(f'MNIW.M: expected shape (..., n, m), got {tuple(self.M.shape)}')
        *batch, n, m = self.M.shape
        expected = {'V': (*batch, m, m), 'S': (*batch, n, n)}
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != tuple(shape):
                raise ValueError(f'MNIW.{name}: expected shape {tuple(shape)}, '
                                 f'got {tuple(getattr(self, name).shape)}')
        if tuple(self.nu.shape) != tuple(batch):
            raise ValueError(
                f'MNIW.nu: expected shape {tuple(batch)}, got {tuple(self.nu.shape)}')
        if not bool(torch.all(self.nu > n - 1)):
            raise ValueError(f'MNIW.nu: every value must exceed n - 1 = {n - 1}')

    @property
    def rows(self) -> int:
        """Return n, the number of rows of F."""
        return int(self.M.shape[-2])

    @property
    def cols(self) -> int:
        """Return m, the number of columns of F."""
        return int(self.M.shape[-1])

    @classmethod
    def prior(cls, dx: int, du: int, horizon: int, scale: float = 2.0) -> 'MNIW':
        """Return the authors' prior for each of the horizon - 1 transitions.

        M0 = [I 0] (identity on the state, zero on the action), V0 = I, S0 = scale * I,
        nu0 = dx + 2, so E[Sigma] = scale * I. Leading dim horizon - 1.
        """
        if horizon < 2:
            raise ValueError(f'horizon must be >= 2 for at least one transition, got {horizon}')
        steps, m = horizon - 1, dx + du
        M = torch.zeros(steps, dx, m, dtype=torch.float64)
        M[:, :, :dx] = torch.eye(dx, dtype=torch.float64)
        V = torch.eye(m, dtype=torch.float64).expand(steps, m, m).clone()
        S = scale * torch.eye(dx, dtype=torch.float64).expand(steps, dx, dx).clone()
        return cls(M, V, S, torch.full((steps,), dx + 2.0, dtype=torch.float64))

    def to_natural(self) -> MNIWNatural:
        """Return the natural parameters (module docstring)."""
        V_inv = _inv_spd(self.V)
        eta2 = self.M @ V_inv
        return MNIWNatural(eta1=symmetrize(self.S + eta2 @ self.M.transpose(-1, -2)), eta2=eta2,
                           eta3=V_inv, eta4=self.nu + self.rows + self.cols + 1)

    @classmethod
    def from_natural(cls, natural: MNIWNatural) -> 'MNIW':
        """Return the MNIW with natural parameters ``natural``."""
        V = _inv_spd(natural.eta3)
        M = natural.eta2 @ V
        n, m = M.shape[-2], M.shape[-1]
        S = symmetrize(natural.eta1 - M @ natural.eta2.transpose(-1, -2))
        return cls(M, V, S, natural.eta4 - m - n - 1)

    def posterior(self, stats: LDSSuffStats) -> 'MNIW':
        """Return the conjugate posterior after observing transitions with ``stats``."""
        natural = self.to_natural()
        return MNIW.from_natural(MNIWNatural(
            eta1=natural.eta1 + symmetrize(stats.yy), eta2=natural.eta2 + stats.yx,
            eta3=natural.eta3 + symmetrize(stats.xx), eta4=natural.eta4 + stats.count))

    def expected_stats(self) -> MNIWExpectedStats:
        """Return E[Sigma^-1], E[Sigma^-1 F], E[F^T Sigma^-1 F] and E[log|Sigma^-1|].

        Closed forms: nu S^-1, nu S^-1 M, nu M^T S^-1 M + n V, and
        psi_n(nu / 2) + n log 2 - log|S|; a 1e-8 I jitter keeps the matrices definite.
        """
        n, m = self.rows, self.cols
        nu = self.nu[..., None, None]
        S_inv = _inv_spd(self.S)
        E_Sinv = nu * S_inv + JITTER * _eye(n, self.S)
        E_Sinv_F = nu * S_inv @ self.M
        E_Ft_Sinv_F = (symmetrize(nu * self.M.transpose(-1, -2) @ S_inv @ self.M) + n * self.V
                       + JITTER * _eye(m, self.V))
        E_logdet = multi_digamma(self.nu / 2.0, n) + n * math.log(2.0) - _logdet_spd(self.S)
        return MNIWExpectedStats(E_Sinv, E_Sinv_F, E_Ft_Sinv_F, E_logdet)

    def mean_dynamics(self) -> Tuple[Tensor, Tensor]:
        """Return E[F] = M (..., n, m) and E[Sigma] = S / (nu - n - 1) (..., n, n).

        Raises:
            ValueError: nu <= n + 1, where E[Sigma] does not exist.

        """
        n = self.rows
        if not bool(torch.all(self.nu > n + 1)):
            raise ValueError(f'E[Sigma] needs nu > n + 1 = {n + 1}')
        return self.M, self.S / (self.nu - n - 1)[..., None, None]

    def log_prob(self, F: Tensor, Sigma: Tensor) -> Tensor:
        """Return log p(F, Sigma), (...,), for F (..., n, m) and Sigma (..., n, n)."""
        n, m = self.rows, self.cols
        Sigma_inv = _inv_spd(Sigma)
        logdet_sigma = _logdet_spd(Sigma)
        diff = F - self.M
        quad = torch.diagonal(_inv_spd(self.V) @ diff.transpose(-1, -2) @ Sigma_inv @ diff,
                              dim1=-2, dim2=-1).sum(-1)
        log_mn = (-0.5 * n * m * math.log(2 * math.pi) - 0.5 * m * logdet_sigma
                  - 0.5 * n * _logdet_spd(self.V) - 0.5 * quad)
        trace = torch.diagonal(self.S @ Sigma_inv, dim1=-2, dim2=-1).sum(-1)
        log_iw = (0.5 * self.nu * _logdet_spd(self.S) - 0.5 * self.nu * n * math.log(2.0)
                  - torch.mvlgamma(self.nu / 2.0, n)
                  - 0.5 * (self.nu + n + 1) * logdet_sigma - 0.5 * trace)
        return log_mn + log_iw

    def kl(self, other: 'MNIW') -> Tensor:
        """Return KL(self || other), (...,), in nats.

        KL of the inverse-Wishart parts (equal to that of the Wishart precisions) plus the
        expected KL of the matrix normals given Sigma, under self.
        """
        n, m = self.rows, self.cols
        nu1, nu2 = self.nu, other.nu
        S1_inv = _inv_spd(self.S)
        # Wishart precisions W(S1^-1, nu1) and W(S2^-1, nu2): A2^-1 A1 = S2 S1^-1.
        trace_w = torch.diagonal(other.S @ S1_inv, dim1=-2, dim2=-1).sum(-1)
        logdet_w = _logdet_spd(other.S) - _logdet_spd(self.S)
        kl_iw = (-0.5 * nu2 * logdet_w + 0.5 * nu1 * (trace_w - n)
                 + torch.mvlgamma(nu2 / 2.0, n) - torch.mvlgamma(nu1 / 2.0, n)
                 + 0.5 * (nu1 - nu2) * multi_digamma(nu1 / 2.0, n))
        V2_inv = _inv_spd(other.V)
        diff = self.M - other.M
        trace_v = torch.diagonal(V2_inv @ self.V, dim1=-2, dim2=-1).sum(-1)
        quad = torch.diagonal(V2_inv @ diff.transpose(-1, -2) @ S1_inv @ diff,
                              dim1=-2, dim2=-1).sum(-1)
        kl_mn = 0.5 * (n * trace_v + nu1 * quad - n * m
                       + n * (_logdet_spd(other.V) - _logdet_spd(self.V)))
        return kl_iw + kl_mn


def mniw_natural_step(q: MNIW, prior: MNIW, stats: LDSSuffStats, scale: float,
                      step: float) -> MNIW:
    """Return q after one natural-gradient SVI step (the SVAE of Johnson et al., 2016).

    eta <- (1 - step) eta_q + step (eta_prior + scale * stats), where ``scale`` = N / B
    rescales minibatch statistics to the data set. ``step`` = 1 gives the conjugate
    posterior ``prior.posterior(stats.scaled(scale))``.
    """
    if not 0.0 < step <= 1.0:
        raise ValueError(f'step must be in (0, 1], got {step}')
    eta_q, eta_p = q.to_natural(), prior.to_natural()
    target = (eta_p.eta1 + scale * symmetrize(stats.yy), eta_p.eta2 + scale * stats.yx,
              eta_p.eta3 + scale * symmetrize(stats.xx), eta_p.eta4 + scale * stats.count)
    current = (eta_q.eta1, eta_q.eta2, eta_q.eta3, eta_q.eta4)
    mixed = [(1.0 - step) * a + step * b for a, b in zip(current, target)]
    return MNIW.from_natural(MNIWNatural(*mixed))
