"""Small tensor helpers shared by the core modules: symmetric parts and shape checks."""

from torch import Tensor


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
