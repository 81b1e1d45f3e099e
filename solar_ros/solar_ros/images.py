"""Convert raw camera frames (sensor_msgs/Image fields) to the model's RGB input.

No ROS import: the encoder node passes the message's fields. Supports the encodings a
camera driver or the simulator publishes: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` and
``mono8``. Rows may be padded (``step`` > width * channels). Frames are resized with
area averaging to ``size x size``.
"""

from typing import Dict, Tuple

import cv2
import numpy as np

# encoding -> (channels, OpenCV conversion to RGB or None)
ENCODINGS: Dict[str, Tuple[int, int]] = {
    'rgb8': (3, -1),
    'bgr8': (3, cv2.COLOR_BGR2RGB),
    'rgba8': (4, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, cv2.COLOR_BGRA2RGB),
    'mono8': (1, cv2.COLOR_GRAY2RGB),
}


class ImageFormatError(ValueError):
    """A frame has an unsupported encoding or sizes that do not match its data."""


def frame_to_rgb(encoding: str, height: int, width: int, step: int, data: bytes,
                 size: int) -> np.ndarray:
    """Return the frame as a (size, size, 3) uint8 RGB array.

    Args:
        encoding: sensor_msgs/Image encoding, one of :data:`ENCODINGS`.
        height: rows in the frame, pixels.
        width: columns in the frame, pixels.
        step: bytes per row, >= width * channels.
        data: the row-major pixel bytes, ``step * height`` long.
        size: side of the square output, pixels.

    Raises:
        ImageFormatError: unsupported encoding, or sizes inconsistent with ``data``.

    """
    if encoding not in ENCODINGS:
        raise ImageFormatError(
            f'image encoding {encoding!r} not supported; use one of {sorted(ENCODINGS)}')
    channels, conversion = ENCODINGS[encoding]
    if height < 1 or width < 1:
        raise ImageFormatError(f'image size {width}x{height}: both must be >= 1')
    if step < width * channels:
        raise ImageFormatError(
            f'image step {step} is less than width * channels = {width * channels}')
    if len(data) != step * height:
        raise ImageFormatError(
            f'image data has {len(data)} bytes, expected step * height = {step * height}')
    rows = np.frombuffer(bytes(data), dtype=np.uint8).reshape(height, step)
    pixels = rows[:, :width * channels].reshape(height, width, channels)
    if conversion >= 0:
        pixels = cv2.cvtColor(pixels, conversion)
    if (height, width) != (size, size):
        pixels = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pixels)


def views_side_by_side(image: np.ndarray) -> np.ndarray:
    """Return camera views stacked on the channel axis (H, W, 3 V) as one (H, V W, 3) image."""
    if image.ndim != 3 or image.shape[-1] % 3 or image.shape[-1] == 0:
        raise ValueError(f'expected an (H, W, 3 V) image, got shape {image.shape}')
    views = np.split(image, image.shape[-1] // 3, axis=-1)
    return np.concatenate(views, axis=1)
