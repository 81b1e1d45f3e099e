"""Small tensor helpers shared by the core modules: symmetric parts, shape checks, views."""

from typing import TypeVar

import numpy as np
from torch import Tensor

Images = TypeVar('Images', Tensor, np.ndarray)


def symmetrize(matrix: Tensor) -> Tensor:
    """Return (M + M^T) / 2 over the last two dims of ``matrix``."""
    return 0.5 * (matrix + matrix.transpose(-1, -2))


def check_trajectory_batch(states: Tensor, actions: Tensor) -> None:
    """Raise ValueError unless states (N, T, dx) and actions (N, T, du) agree in N and T."""
    if states.dim() != 3:
        raise ValueError(f'states: expected shape (N, T, dx), got {tuple(states.shape)}')
    if actions.dim() != 3 or actions.shape[:2] != states.shape[:2]:
        raise ValueError(f'actions: expected shape ({states.shape[0]}, {states.shape[1]}, du),'
                         f' got {tuple(actions.shape)}')


def view_channels(images: Images, view: int) -> Images:
    """Return camera ``view``'s RGB channels (..., H, W, 3) of ``images`` (..., H, W, 3 V).

    The views are stacked on the channel axis in view order: view v is channels 3v..3v+2.
    """
    return images[..., 3 * view:3 * view + 3]
