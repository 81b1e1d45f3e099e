"""Cross-entropy-method planning in a linear latent model: the planner of the MPC ablation.

The SOLAR paper compares LQR-FLM with model-predictive control that plans in the learned
latent space: from the filtered state, sample action sequences, score them by rolling
the model's mean dynamics s_{t+1} = F_t [s_t; a_t] forward under the learned quadratic
cost, refit a diagonal Gaussian to the best ones, repeat, and apply the first action.
Only torch; all tensors float64.
"""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


@dataclass(frozen=True)
class CEMConfig:
    """Settings of :func:`plan`.

    Attributes:
        horizon: planning steps H (fewer when the episode has fewer steps left).
        samples: action sequences drawn per iteration.
        elites: best sequences the next Gaussian is fitted to.
        iterations: refits of the sampling Gaussian.
        init_std: standard deviation of the first sampling Gaussian, action units.
        min_std: floor of the sampling standard deviation, action units.
        action_bound: samples are clipped to [-action_bound, action_bound] per component.

    """

    horizon: int = 10
    samples: int = 300
    elites: int = 30
    iterations: int = 6
    init_std: float = 0.5
    min_std: float = 1e-3
    action_bound: float = 1.0

    def __post_init__(self) -> None:
        """Check the values; raise ValueError naming the first bad one."""
        for name in ('horizon', 'samples', 'elites', 'iterations'):
            if int(getattr(self, name)) < 1:
                raise ValueError(f'CEMConfig.{name} must be >= 1, got {getattr(self, name)}')
        if self.elites > self.samples:
            raise ValueError(f'CEMConfig.elites ({self.elites}) must be <= samples '
                             f'({self.samples})')
        if not (self.init_std > 0 and self.min_std > 0 and self.action_bound > 0):
            raise ValueError('CEMConfig.init_std, min_std and action_bound must be > 0')


def sequence_costs(s0: Tensor, F: Tensor, C: Tensor, c: Tensor, actions: Tensor) -> Tensor:
    """Return the total model cost of action sequences from state ``s0``.

    Args:
        s0: (dx,) start state.
        F: (H-1, dx, dx+du) mean dynamics between the H planned steps.
        C: (H, dx+du, dx+du) cost Hessians.
        c: (H, dx+du) linear cost terms.
        actions: (N, H, du) candidate sequences.

    Returns:
        (N,) sum over the H steps of 1/2 x^T C_t x + c_t^T x with x_t = [s_t; a_t].

    """
    n, steps, _ = actions.shape
    s = s0.expand(n, -1)
    total = torch.zeros(n, dtype=torch.float64)
    for t in range(steps):
        x = torch.cat([s, actions[:, t]], dim=1)
        total = total + 0.5 * torch.einsum('ni,ij,nj->n', x, C[t], x) + x @ c[t]
        if t + 1 < steps:
            s = x @ F[t].T
    return total


def plan(s0: Tensor, F: Tensor, C: Tensor, c: Tensor, low: Tensor, high: Tensor,
         config: CEMConfig, generator: torch.Generator,
         init_mean: Optional[Tensor] = None) -> Tensor:
    """Return the planned action sequence (H, du): the mean of the last sampling Gaussian.

    Args:
        s0: (dx,) filtered latent state of the current step.
        F: (H-1, dx, dx+du) mean dynamics of the planned steps.
        C: (H, dx+du, dx+du) cost Hessians of the planned steps.
        c: (H, dx+du) linear cost terms of the planned steps.
        low: (du,) lower action bounds; samples are clipped to them.
        high: (du,) upper action bounds.
        config: sampling settings.
        generator: source of the samples.
        init_mean: (H, du) first sampling mean (e.g. the last plan shifted); zeros if None.

    """
    steps, du = C.shape[0], low.shape[0]
    if F.shape[0] != steps - 1:
        raise ValueError(f'F: expected {steps - 1} transitions for {steps} steps, '
                         f'got {F.shape[0]}')
    mean = torch.zeros(steps, du, dtype=torch.float64) if init_mean is None else init_mean
    std = torch.full((steps, du), config.init_std, dtype=torch.float64)
    for _ in range(config.iterations):
        noise = torch.randn(config.samples, steps, du, generator=generator,
                            dtype=torch.float64)
        candidates = torch.maximum(torch.minimum(mean + std * noise, high), low)
        costs = sequence_costs(s0, F, C, c, candidates)
        elite = candidates[torch.topk(costs, config.elites, largest=False).indices]
        mean = elite.mean(dim=0)
        std = elite.std(dim=0).clamp(min=config.min_std)
    return mean
