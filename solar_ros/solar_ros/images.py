"""Convert raw camera frames (sensor_msgs/Image fields) to the model's RGB input.

No ROS import: the encoder node passes the message's fields. Supports the encodings a
camera driver or the simulator publishes: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` and
``mono8``. Rows may be padded (``step`` > width * channels). Frames are resized with
area averaging to ``size x size``.
"""

from typing import Dict, Optional, Tuple

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


class ViewAssembler:
    """Match the camera views of one control step by their stamp and stack them.

    Each camera publishes on a topic of its own, all with the step's stamp; a frame is
    complete once every one of its ``views`` has arrived, and is returned as the
    (H, W, 3 V) array the model reads (view v in channels 3v..3v+2). Stamps older than a
    completed one can no longer complete and are forgotten, as are the oldest pending
    stamps beyond ``keep``.
    """

    def __init__(self, keep: int = 8) -> None:
        """Hold at most ``keep`` incomplete stamps."""
        self._keep = keep
        self._pending: Dict[int, Dict[int, np.ndarray]] = {}

    def add(self, view: int, stamp_ns: int, rgb: np.ndarray,
            views: int) -> Optional[np.ndarray]:
        """Take camera ``view``'s frame (H, W, 3) of ``stamp_ns`` (ns) out of ``views``.

        Returns:
            the stacked frame (H, W, 3 views) once all views of the stamp are in, else
            None (also for a view the model does not read, ``view >= views``).

        """
        if view >= views:
            return None
        if views == 1:
            return rgb
        frames = self._pending.setdefault(stamp_ns, {})
        frames[view] = rgb
        if len(frames) < views:
            for oldest in sorted(self._pending)[:-self._keep]:
                del self._pending[oldest]
            return None
        for stamp in [s for s in self._pending if s <= stamp_ns]:
            del self._pending[stamp]
        return np.concatenate([frames[v] for v in range(views)], axis=-1)
