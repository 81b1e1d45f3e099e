"""The Kalman filter of a running episode, one step at a time, in numpy.

The same model as :mod:`solar_ros.core.lds` (s_0 ~ N(mu0, P0), s_{t+1} = F_t [s_t; a_t] + w_t,
evidence exp(-1/2 s^T J s + h^T s) per frame) and the same arithmetic as its batched
:func:`~solar_ros.core.lds.kalman_filter`, for one sequence as its frames arrive: O(1) work
per step. It runs on every control step of the encoder-filter-controller path, where a
12-dimensional step in numpy takes a small fraction of the batched torch routine's time
(``bench/model_speed.py``); the batched filter stays in torch for training, where it must be
differentiable. The predicted belief's information form is computed by :meth:`predict`
(and :meth:`reset`), which run while the arm moves, so that :meth:`update`, which runs
between a frame and the action, only adds the frame's potential and inverts once.
"""

from typing import Tuple

import numpy as np


def _finite(value: object, name: str) -> np.ndarray:
    """Return ``value`` as a float64 array, raising ValueError when it is not finite."""
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f'{name}: contains NaN or inf')
    return array


def _vector(value: object, name: str, size: int) -> np.ndarray:
    """Return ``value`` as a finite float64 vector of length ``size`` or raise ValueError."""
    array = _finite(value, name)
    if array.shape != (size,):
        raise ValueError(f'{name}: expected shape ({size},), got {array.shape}')
    return array


def _inverse_cholesky(matrix: np.ndarray) -> Tuple[np.ndarray, float]:
    """Return the inverse of a symmetric positive-definite ``matrix`` and its log-determinant.

    Raises:
        numpy.linalg.LinAlgError: ``matrix`` is not positive definite.

    """
    chol = np.linalg.cholesky(matrix)
    chol_inv = np.linalg.inv(chol)
    return chol_inv.T @ chol_inv, 2.0 * float(np.log(np.diagonal(chol)).sum())


class OnlineKalmanFilter:
    """Filter one episode: :meth:`reset`, then per step :meth:`update` and :meth:`predict`.

    Inputs are array-likes (numpy, torch CPU tensors, lists); the belief is numpy float64:
    :attr:`mean` (dx,), :attr:`cov` (dx, dx). :attr:`log_normalizer` accumulates the log of
    the evidence's integral against the predicted belief, as the batched filter's.
    """

    def __init__(self, state_dim: int) -> None:
        """Create a filter for latent dimension ``state_dim`` (reset before use)."""
        if state_dim < 1:
            raise ValueError(f'state_dim must be >= 1, got {state_dim}')
        self.state_dim = state_dim
        self.log_normalizer = 0.0
        self._set(np.zeros(state_dim), np.eye(state_dim))  # mean, cov, information form

    def reset(self, mu0: object, P0: object) -> None:
        """Start from the prior belief s_0 ~ N(mu0 (dx,), P0 (dx, dx)).

        Raises:
            ValueError: a wrong shape, a non-finite value, or P0 not positive definite.

        """
        dx = self.state_dim
        mean = _vector(mu0, 'mu0', dx)
        P0 = _finite(P0, 'P0')
        if P0.shape != (dx, dx):
            raise ValueError(f'P0: expected shape ({dx}, {dx}), got {P0.shape}')
        self._set(mean.copy(), 0.5 * (P0 + P0.T))
        self.log_normalizer = 0.0

    def _set(self, mean: np.ndarray, cov: np.ndarray) -> None:
        """Make N(mean, cov) the belief, with its information form; nothing changes on error.

        Raises:
            numpy.linalg.LinAlgError: ``cov`` is not positive definite.

        """
        J, logdet_cov = _inverse_cholesky(cov)
        self.mean, self.cov, self._info = mean, cov, (J, J @ mean, logdet_cov)

    def update(self, J: object, h: object) -> Tuple[np.ndarray, np.ndarray]:
        """Add the potential J ((dx,) diagonal or (dx, dx)), h (dx,); return (mean, cov).

        Raises:
            ValueError: a wrong shape or a non-finite value.
            numpy.linalg.LinAlgError: the belief is not positive definite.

        """
        dx = self.state_dim
        J = _finite(J, 'J')
        if J.shape == (dx,):
            J = np.diag(J)
        elif J.shape != (dx, dx):
            raise ValueError(f'J: expected shape ({dx},) or ({dx}, {dx}), got {J.shape}')
        h = _vector(h, 'h', dx)
        J_pred, h_pred, logdet_pred_cov = self._info
        J_post = J_pred + J
        cov, logdet_J_post = _inverse_cholesky(0.5 * (J_post + J_post.T))
        h_post = h_pred + h
        mean = cov @ h_post
        # log of the integral of N(s; pred) exp(-1/2 s^T J s + h^T s), as lds._update
        self.log_normalizer += 0.5 * (float(h_post @ mean) - float(h_pred @ self.mean)
                                      - logdet_pred_cov - logdet_J_post)
        self.mean, self.cov = mean, 0.5 * (cov + cov.T)
        self._info = (J_post, h_post, -logdet_J_post)
        return self.mean, self.cov

    def predict(self, F: object, Q: object, action: object) -> Tuple[np.ndarray, np.ndarray]:
        """Move the belief through s' = F [s; a] + w, w ~ N(0, Q); return (mean, cov).

        Args:
            F: (dx, dx + du) transition [A B].
            Q: (dx, dx) process-noise covariance.
            action: (du,) the action applied.

        Raises:
            ValueError: a wrong shape or a non-finite value.
            numpy.linalg.LinAlgError: the predicted covariance is not positive definite;
                the belief is then left as it was.

        """
        dx = self.state_dim
        F, Q = _finite(F, 'F'), _finite(Q, 'Q')
        if F.ndim != 2 or F.shape[0] != dx or F.shape[1] < dx:
            raise ValueError(f'F: expected shape ({dx}, {dx}+du), got {F.shape}')
        if Q.shape != (dx, dx):
            raise ValueError(f'Q: expected shape ({dx}, {dx}), got {Q.shape}')
        action = _vector(action, 'action', F.shape[1] - dx)
        A, B = F[:, :dx], F[:, dx:]
        cov = A @ self.cov @ A.T + Q
        self._set(A @ self.mean + B @ action, 0.5 * (cov + cov.T))
        return self.mean, self.cov
