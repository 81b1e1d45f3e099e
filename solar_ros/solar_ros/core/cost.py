"""Hold the time-varying quadratic cost over state-action vectors x = [s; a].

cost_t(x) = 1/2 x^T C_t x + c_t^T x + const_t, for t = 0..T-1. All arrays torch float64.
"""

from dataclasses import dataclass
from typing import Optional

from solar_ros.core.tensors import symmetrize
import torch
from torch import Tensor


@dataclass
class QuadraticCost:
    """Quadratic cost per time step over x = [s; a] of size n = dx + du.

    Attributes:
        C: (T, n, n) float64 symmetric Hessians (symmetrised on construction).
        c: (T, n) float64 linear terms.
        const: (T,) float64 constants; zeros when not given.

    """

    C: Tensor
    c: Tensor
    const: Optional[Tensor] = None

    def __post_init__(self) -> None:
        """Check shapes, convert to float64 and symmetrise C."""
        self.C = symmetrize(torch.as_tensor(self.C, dtype=torch.float64))
        self.c = torch.as_tensor(self.c, dtype=torch.float64)
        if self.C.dim() != 3 or self.C.shape[1] != self.C.shape[2]:
            raise ValueError(f'C: expected shape (T, n, n), got {tuple(self.C.shape)}')
        horizon, n, _ = self.C.shape
        if tuple(self.c.shape) != (horizon, n):
            raise ValueError(f'c: expected shape {(horizon, n)}, got {tuple(self.c.shape)}')
        if self.const is None:
            self.const = torch.zeros(horizon, dtype=torch.float64)
        self.const = torch.as_tensor(self.const, dtype=torch.float64)
        if tuple(self.const.shape) != (horizon,):
            raise ValueError(f'const: expected shape ({horizon},),'
                             f' got {tuple(self.const.shape)}')

    @classmethod
    def tiled(cls, C: Tensor, c: Tensor, const: float, horizon: int) -> 'QuadraticCost':
        """Return the cost (C (n, n), c (n,), scalar const) repeated over ``horizon`` steps."""
        C = torch.as_tensor(C, dtype=torch.float64)
        c = torch.as_tensor(c, dtype=torch.float64)
        return cls(C=C.expand(horizon, *C.shape).clone(), c=c.expand(horizon, *c.shape).clone(),
                   const=torch.full((horizon,), float(const), dtype=torch.float64))

    def weighted(self, weights: Tensor) -> 'QuadraticCost':
        """Return the cost with step t scaled by ``weights[t]`` (T,), w_t cost_t(x)."""
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if tuple(weights.shape) != (self.horizon,):
            raise ValueError(f'weights: expected shape ({self.horizon},),'
                             f' got {tuple(weights.shape)}')
        return QuadraticCost(C=weights[:, None, None] * self.C, c=weights[:, None] * self.c,
                             const=weights * self.const)

    @property
    def horizon(self) -> int:
        """Return the number of time steps T."""
        return self.C.shape[0]

    @property
    def size(self) -> int:
        """Return n = dx + du, the size of x."""
        return self.C.shape[1]

    def evaluate(self, x: Tensor) -> Tensor:
        """Return the per-step cost of state-action sequences.

        Args:
            x: (..., T, n) state-action vectors [s_t; a_t].

        Returns:
            (..., T) float64 costs.

        """
        x = torch.as_tensor(x, dtype=torch.float64)
        if tuple(x.shape[-2:]) != (self.horizon, self.size):
            raise ValueError(f'x: expected shape (..., {self.horizon}, {self.size}),'
                             f' got {tuple(x.shape)}')
        quad = 0.5 * torch.einsum('...ti,tij,...tj->...t', x, self.C, x)
        return quad + (x * self.c).sum(-1) + self.const

    def expected(self, mean: Tensor, cov: Tensor) -> Tensor:
        """Return E[cost_t] under x_t ~ N(mean_t, cov_t) for every step.

        Args:
            mean: (T, n) marginal means of x_t.
            cov: (T, n, n) marginal covariances of x_t.

        Returns:
            (T,) float64: 1/2 tr(C_t cov_t) + 1/2 mean_t^T C_t mean_t + c_t^T mean_t + const_t.

        """
        if tuple(mean.shape) != (self.horizon, self.size):
            raise ValueError(f'mean: expected shape {(self.horizon, self.size)},'
                             f' got {tuple(mean.shape)}')
        if tuple(cov.shape) != (self.horizon, self.size, self.size):
            raise ValueError(f'cov: expected shape {(self.horizon, self.size, self.size)},'
                             f' got {tuple(cov.shape)}')
        trace = 0.5 * torch.einsum('tij,tji->t', self.C, cov)
        return trace + self.evaluate(mean)
