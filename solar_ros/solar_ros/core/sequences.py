"""Training sequences of images, actions and costs, and the checks every model input passes."""

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from .model_config import ModelConfig

ArrayLike = Union[np.ndarray, torch.Tensor]


class ModelInputError(ValueError):
    """Raised for images, actions or costs of the wrong shape, range or with non-finite values."""


@dataclass
class EpisodeBatch:
    """Training sequences: images o_t, actions a_t and costs c_t for t = 0..T-1.

    Attributes:
        images: (N, T, H, W, 3 V) uint8, V camera views stacked on the channel axis.
        actions: (N, T, du) float64.
        costs: (N, T) float64, the cost of state s_t and action a_t.
        residuals: (N, T, d) float64, the cost's residuals at s_t (the held block's offset
            from the aim, in the cost's units), or None; a model with
            ``residual_dim`` d > 0 trains on them.

    """

    images: torch.Tensor
    actions: torch.Tensor
    costs: torch.Tensor
    residuals: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        """Convert numpy arrays to tensors and check shapes, dtypes and values."""
        self.images = torch.as_tensor(self.images)
        self.actions = torch.as_tensor(self.actions, dtype=torch.float64)
        self.costs = torch.as_tensor(self.costs, dtype=torch.float64)
        if self.images.dtype != torch.uint8:
            raise ModelInputError(f'EpisodeBatch.images must be uint8, got {self.images.dtype}')
        check_sequences(self.images, self.actions, self.costs)
        if self.residuals is not None:
            self.residuals = torch.as_tensor(self.residuals, dtype=torch.float64)
            if self.residuals.ndim != 3 or self.residuals.shape[:2] != self.costs.shape:
                raise ModelInputError(
                    f'EpisodeBatch.residuals must have shape {tuple(self.costs.shape)} + (d,), '
                    f'got {tuple(self.residuals.shape)}')
            if not torch.isfinite(self.residuals).all():
                raise ModelInputError('EpisodeBatch.residuals contain non-finite values')

    def __len__(self) -> int:
        """Return the number of sequences N."""
        return self.images.shape[0]

    def select(self, index: ArrayLike) -> 'EpisodeBatch':
        """Return the sequences at ``index`` (indices or a boolean mask) as a new batch."""
        index = torch.as_tensor(index)
        return EpisodeBatch(self.images[index], self.actions[index], self.costs[index],
                            None if self.residuals is None else self.residuals[index])


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
