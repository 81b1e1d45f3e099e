"""Camera frames of every supported encoding become the same RGB array."""

import numpy as np
import pytest
from solar_ros.images import frame_to_rgb, ImageFormatError


def _rgb(height: int, width: int) -> np.ndarray:
    """Return a (height, width, 3) uint8 test pattern."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize('encoding, to_raw', [
    ('rgb8', lambda rgb: rgb),
    ('bgr8', lambda rgb: rgb[..., ::-1]),
    ('rgba8', lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])),
    ('bgra8', lambda rgb: np.dstack([rgb[..., ::-1], np.zeros(rgb.shape[:2], np.uint8)])),
])
def test_colour_encodings_give_the_same_rgb(encoding, to_raw):
    rgb = _rgb(8, 8)
    raw = np.ascontiguousarray(to_raw(rgb))
    out = frame_to_rgb(encoding, 8, 8, raw.shape[1] * raw.shape[2], raw.tobytes(), size=8)
    np.testing.assert_array_equal(out, rgb)


def test_same_size_frame_is_unchanged_and_padded_rows_are_cut():
    rgb = _rgb(4, 4)
    padded = np.zeros((4, 4 * 3 + 5), np.uint8)
    padded[:, :12] = rgb.reshape(4, 12)
    out = frame_to_rgb('rgb8', 4, 4, 17, padded.tobytes(), size=4)
    np.testing.assert_array_equal(out, rgb)


def test_mono_is_grey_rgb_and_resize_averages():
    mono = np.array([[0, 100], [200, 40]], np.uint8).repeat(2, 0).repeat(2, 1)
    out = frame_to_rgb('mono8', 4, 4, 4, mono.tobytes(), size=2)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], [[0, 100], [200, 40]])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


@pytest.mark.parametrize('args, message', [
    (('yuv422', 2, 2, 4, bytes(8)), "encoding 'yuv422' not supported"),
    (('rgb8', 2, 2, 5, bytes(10)), 'step 5 is less than width'),
    (('rgb8', 2, 2, 6, bytes(11)), 'has 11 bytes, expected step \\* height = 12'),
    (('rgb8', 0, 2, 6, b''), 'both must be >= 1'),
])
def test_bad_frames_get_a_clear_error(args, message):
    with pytest.raises(ImageFormatError, match=message):
        frame_to_rgb(*args, size=64)
