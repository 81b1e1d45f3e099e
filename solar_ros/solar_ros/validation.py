"""Check message arrays against their declared dims before any node uses them.

Every solar_ros message carries flat, row-major float64 arrays whose lengths follow
from dims in the same message (``dim``, ``horizon``, ``state_dim``, ``action_dim``).
:func:`validate_message` checks those lengths and that every value is finite, and
returns the arrays reshaped to their documented shapes. Any problem raises one
:class:`MessageValidationError` that names the field, the expected and the actual size.

The checks read fields by name, so they work on the generated message classes and on
any object with the same attributes; this module imports no ROS package.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, Sequence, Tuple

import numpy as np

Shape = Tuple[int, ...]


class MessageValidationError(ValueError):
    """A message field has the wrong size, a non-finite value, or a dim is invalid."""


@dataclass(frozen=True)
class _Field:
    """One array field: its allowed shapes, derived from the message's dims."""

    name: str
    shapes: Callable[[Dict[str, int]], Sequence[Tuple[Shape, str]]]


def _dims(msg: Any, kind: str, names: Sequence[str]) -> Dict[str, int]:
    """Read the integer dims ``names`` from ``msg``; each must be >= 1."""
    dims = {}
    for name in names:
        value = getattr(msg, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise MessageValidationError(
                f'{kind}.{name}: expected an integer dim, got {value!r}')
        if value < 1:
            raise MessageValidationError(f'{kind}.{name}: expected a dim >= 1, got {value}')
        dims[name] = int(value)
    return dims


# Per message type: the dims it declares and its array fields.
_SPECS: Dict[str, Tuple[Sequence[str], Sequence[_Field]]] = {
    'LatentPotential': (
        ('dim',),
        (
            _Field('mean', lambda d: [((d['dim'],), 'dim')]),
            _Field('precision', lambda d: [((d['dim'],), 'dim (diagonal)'),
                                           ((d['dim'], d['dim']), 'dim*dim (full)')]),
        ),
    ),
    'LatentBelief': (
        ('dim',),
        (
            _Field('mean', lambda d: [((d['dim'],), 'dim')]),
            _Field('covariance', lambda d: [((d['dim'], d['dim']), 'dim*dim')]),
        ),
    ),
    'TimeVaryingGains': (
        ('horizon', 'state_dim', 'action_dim'),
        (
            _Field('feedback_gains', lambda d: [
                ((d['horizon'], d['action_dim'], d['state_dim']), 'T*du*dx')]),
            _Field('feedforward', lambda d: [((d['horizon'], d['action_dim']), 'T*du')]),
            _Field('noise_chol', lambda d: [
                ((d['horizon'], d['action_dim'], d['action_dim']), 'T*du*du')]),
            _Field('dynamics', lambda d: [
                ((d['horizon'] - 1, d['state_dim'], d['state_dim'] + d['action_dim']),
                 '(T-1)*dx*(dx+du)')]),
            _Field('process_noise', lambda d: [
                ((d['horizon'] - 1, d['state_dim'], d['state_dim']), '(T-1)*dx*dx')]),
            _Field('initial_mean', lambda d: [((d['state_dim'],), 'dx')]),
            _Field('initial_covariance', lambda d: [
                ((d['state_dim'], d['state_dim']), 'dx*dx')]),
        ),
    ),
}


def supported_kinds() -> Tuple[str, ...]:
    """Names of the message types :func:`validate_message` knows."""
    return tuple(_SPECS)


def check_array(label: str, values: Any, shapes: Sequence[Tuple[Shape, str]]) -> np.ndarray:
    """Return ``values`` as float64 in the first of ``shapes`` whose size matches.

    Args:
        label: name used in errors, e.g. ``'LatentBelief.mean'``.
        values: a flat sequence of numbers.
        shapes: allowed ``(shape, description)`` pairs, e.g. ``[((4,), 'dx')]``.

    Raises:
        MessageValidationError: on a size that matches no shape or a non-finite value.

    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    for shape, _ in shapes:
        if array.size == int(np.prod(shape)):
            break
    else:
        expected = ' or '.join(
            f'{int(np.prod(shape))} ({description} = {"*".join(map(str, shape))})'
            for shape, description in shapes)
        raise MessageValidationError(
            f'{label}: expected {expected} values, got {array.size}')
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise MessageValidationError(
            f'{label}: {bad.size} non-finite value(s), first {array[bad[0]]} at index {bad[0]}')
    return array.reshape(shape)


def check_vector(label: str, values: Any, size: int) -> np.ndarray:
    """Return ``values`` as a finite float64 vector of length ``size``, or raise."""
    if size < 0:
        raise MessageValidationError(f'{label}: expected a size >= 0, got {size}')
    return check_array(label, values, [((size,), 'size')])


def validate_message(msg: Any, kind: str = '') -> Dict[str, np.ndarray]:
    """Check a solar_ros message and return its arrays in their documented shapes.

    Args:
        msg: a ``LatentPotential``, ``LatentBelief`` or ``TimeVaryingGains`` (or any
            object with the same fields).
        kind: the message type's name; defaults to ``type(msg).__name__``.

    Returns:
        field name -> float64 array, e.g. ``feedback_gains`` as ``(T, du, dx)``.

    Raises:
        MessageValidationError: naming the field, the expected and the actual size.

    """
    kind = kind or type(msg).__name__
    if kind not in _SPECS:
        raise MessageValidationError(
            f'no validation rule for message type {kind!r}; known: {", ".join(_SPECS)}')
    dim_names, fields = _SPECS[kind]
    dims = _dims(msg, kind, dim_names)
    return {field.name: check_array(f'{kind}.{field.name}', getattr(msg, field.name),
                                    field.shapes(dims))
            for field in fields}
