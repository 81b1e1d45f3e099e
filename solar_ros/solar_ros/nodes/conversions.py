"""Convert between solar_ros messages and the core's NumPy/torch types.

Incoming messages go through :func:`solar_ros.validation.validate_message`, so a wrong
size or a non-finite value raises one :class:`MessageValidationError` naming the field.
"""

from typing import Optional, Tuple, Union

from builtin_interfaces.msg import Time
import numpy as np
from solar_ros.core.gains import TimeVaryingGains
from solar_ros.core.lds import LDSParams
from solar_ros.core.policy import LinearGaussianPolicy
from solar_ros.validation import MessageValidationError, validate_message
from solar_ros_msgs.msg import LatentBelief, LatentPotential
from solar_ros_msgs.msg import TimeVaryingGains as GainsMsg
from std_msgs.msg import Header
import torch


def stamp_ns(header: Header) -> int:
    """Return a header stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def answers(reply: Optional[Union[LatentPotential, LatentBelief]], header: Header) -> bool:
    """Return whether ``reply`` (None before the first) carries ``header``'s stamp.

    A node that answers each frame once tells a resent copy by this: its reply to the frame
    is already out.
    """
    return reply is not None and stamp_ns(reply.header) == stamp_ns(header)


def _flat(values) -> list:
    """Return a tensor or array as a flat list of floats (row-major)."""
    return np.asarray(values, dtype=np.float64).reshape(-1).tolist()


def gains_to_msg(gains: TimeVaryingGains, stamp: Time) -> GainsMsg:
    """Return the message of ``gains``, stamped ``stamp``."""
    p, d = gains.policy, gains.dynamics
    return GainsMsg(header=Header(stamp=stamp), policy_version=gains.policy_version,
                    model_version=gains.model_version, horizon=gains.horizon,
                    state_dim=gains.state_dim, action_dim=gains.action_dim,
                    feedback_gains=_flat(p.K), feedforward=_flat(p.k),
                    noise_chol=_flat(p.chol), dynamics=_flat(d.F), process_noise=_flat(d.Q),
                    initial_mean=_flat(d.mu0), initial_covariance=_flat(d.P0))


def gains_from_msg(msg: GainsMsg, action_dim: Optional[int] = None) -> TimeVaryingGains:
    """Return the core gains of a message, checked as every node that adopts gains does.

    The arrays are validated (shapes, finiteness), then
    :meth:`TimeVaryingGains.check_usable` (definite covariances, sane magnitudes) and, when
    given, ``action_dim`` against the message's du.

    Raises:
        MessageValidationError: naming what is wrong.

    """
    if action_dim is not None and msg.action_dim != action_dim:
        raise MessageValidationError(f'TimeVaryingGains.action_dim: expected {action_dim} '
                                     f"(the node's action_dim), got {msg.action_dim}")
    arrays = {name: torch.from_numpy(value)
              for name, value in validate_message(msg, 'TimeVaryingGains').items()}
    chol = torch.tril(arrays['noise_chol'])
    policy = LinearGaussianPolicy(K=arrays['feedback_gains'], k=arrays['feedforward'],
                                  cov=chol @ chol.transpose(-1, -2), chol=chol)
    dynamics = LDSParams(F=arrays['dynamics'], Q=arrays['process_noise'],
                         mu0=arrays['initial_mean'], P0=arrays['initial_covariance'])
    gains = TimeVaryingGains(policy, dynamics, int(msg.policy_version),
                             int(msg.model_version))
    try:
        gains.check_usable()
    except ValueError as error:
        raise MessageValidationError(str(error)) from None
    return gains


def potential_to_msg(header: Header, episode_id: int, step: int, mean: np.ndarray,
                     precision: np.ndarray, model_version: int) -> LatentPotential:
    """Return a potential message: mean (dx,), precision (dx,) diagonal or (dx, dx)."""
    return LatentPotential(header=header, episode_id=episode_id, step=step,
                           dim=int(mean.shape[0]), mean=_flat(mean),
                           precision=_flat(precision), model_version=model_version)


def potential_from_msg(msg: LatentPotential) -> Tuple[np.ndarray, np.ndarray]:
    """Return the information form (J, h) of a potential message, validated.

    Returns:
        J: (dx,) diagonal or (dx, dx) precision; h: (dx,) = J mean.

    """
    arrays = validate_message(msg, 'LatentPotential')
    J, mean = arrays['precision'], arrays['mean']
    h = J * mean if J.ndim == 1 else J @ mean
    return J, h


def belief_to_msg(header: Header, episode_id: int, step: int, mean: np.ndarray,
                  covariance: np.ndarray, model_version: int) -> LatentBelief:
    """Return a belief message: mean (dx,), covariance (dx, dx)."""
    return LatentBelief(header=header, episode_id=episode_id, step=step,
                        dim=int(mean.shape[0]), mean=_flat(mean), covariance=_flat(covariance),
                        model_version=model_version)
