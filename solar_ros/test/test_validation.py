"""The validation helper names the field, the expected and the actual size."""

import math
from types import SimpleNamespace

from message_samples import sample_messages
import numpy as np
import pytest
from solar_ros.validation import (
    check_vector, MessageValidationError, supported_kinds, validate_message)


def _gains(**changes):
    """Build a TimeVaryingGains-like object (T=4, dx=3, du=2) with ``changes`` applied."""
    fields = {f: getattr(sample_messages()['TimeVaryingGains'], f) for f in (
        'horizon', 'state_dim', 'action_dim', 'feedback_gains', 'feedforward', 'noise_chol',
        'dynamics', 'process_noise', 'initial_mean', 'initial_covariance')}
    fields.update(changes)
    return SimpleNamespace(**fields)


def test_every_sample_message_validates_with_documented_shapes():
    samples = sample_messages()
    arrays = validate_message(samples['TimeVaryingGains'])
    assert arrays['feedback_gains'].shape == (4, 2, 3)
    assert arrays['feedforward'].shape == (4, 2)
    assert arrays['noise_chol'].shape == (4, 2, 2)
    assert arrays['dynamics'].shape == (3, 3, 5)
    assert arrays['process_noise'].shape == (3, 3, 3)
    assert arrays['initial_covariance'].shape == (3, 3)
    # Row-major: K_t[i, j] is element (t*du + i)*dx + j of the flat array.
    flat = samples['TimeVaryingGains'].feedback_gains
    assert arrays['feedback_gains'][2, 1, 0] == flat[(2 * 2 + 1) * 3 + 0]
    assert validate_message(samples['LatentPotential'])['precision'].shape == (3, 3)
    assert validate_message(samples['LatentBelief'])['covariance'].shape == (3, 3)
    assert set(supported_kinds()) == {'LatentPotential', 'LatentBelief', 'TimeVaryingGains'}


def test_diagonal_precision_is_accepted():
    msg = SimpleNamespace(dim=3, mean=[0.0, 1.0, 2.0], precision=[1.0, 2.0, 3.0])
    arrays = validate_message(msg, 'LatentPotential')
    np.testing.assert_array_equal(arrays['precision'], [1.0, 2.0, 3.0])


def test_wrong_length_names_field_expected_and_actual():
    gains = _gains(feedforward=[0.0] * 7)
    with pytest.raises(MessageValidationError) as error:
        validate_message(gains, 'TimeVaryingGains')
    assert str(error.value) == (
        'TimeVaryingGains.feedforward: expected 8 (T*du = 4*2) values, got 7')


def test_wrong_length_with_two_allowed_shapes_lists_both():
    msg = SimpleNamespace(dim=3, mean=[0.0] * 3, precision=[1.0] * 4)
    with pytest.raises(MessageValidationError, match=(
            r'LatentPotential\.precision: expected 3 \(dim \(diagonal\) = 3\) or '
            r'9 \(dim\*dim \(full\) = 3\*3\) values, got 4')):
        validate_message(msg, 'LatentPotential')


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_non_finite_value_is_rejected(bad):
    mean = [0.0, bad, 2.0]
    msg = SimpleNamespace(dim=3, mean=mean, covariance=[1.0] * 9)
    expected = rf'LatentBelief\.mean: 1 non-finite value\(s\), first {bad} at index 1'
    with pytest.raises(MessageValidationError, match=expected):
        validate_message(msg, 'LatentBelief')


@pytest.mark.parametrize('dim_name', ['horizon', 'state_dim', 'action_dim'])
def test_negative_or_zero_dims_are_rejected(dim_name):
    for value in (-1, 0):
        expected = rf'TimeVaryingGains\.{dim_name}: expected a dim >= 1, got {value}'
        with pytest.raises(MessageValidationError, match=expected):
            validate_message(_gains(**{dim_name: value}), 'TimeVaryingGains')


def test_non_integer_dim_is_rejected():
    msg = SimpleNamespace(dim=2.0, mean=[0.0, 0.0], covariance=[1.0] * 4)
    with pytest.raises(MessageValidationError, match=r'LatentBelief\.dim: expected an integer'):
        validate_message(msg, 'LatentBelief')


def test_unknown_message_type_is_rejected():
    with pytest.raises(MessageValidationError, match="no validation rule for message type 'Foo'"):
        validate_message(SimpleNamespace(), 'Foo')


def test_check_vector():
    np.testing.assert_array_equal(check_vector('cmd', [1, 2], 2), [1.0, 2.0])
    with pytest.raises(MessageValidationError,
                       match=r'cmd: expected 7 \(size = 7\) values, got 6'):
        check_vector('cmd', [0.0] * 6, 7)
    with pytest.raises(MessageValidationError, match='cmd: expected a size >= 0, got -1'):
        check_vector('cmd', [], -1)
    with pytest.raises(MessageValidationError, match='non-finite'):
        check_vector('cmd', [0.0, math.nan], 2)
