"""What the camera frames hold: a small CNN trained from frames to the held block's offset.

The linear probe (:mod:`solar_ros.learn.probe`) scores what a model's latent holds. This
bounds it from above for the same cameras: a convolutional network, trained by plain
regression on the true offsets of other episodes (privileged labels no SOLAR model sees),
reads the offset from the frames alone. If it reads the offset precisely where the latent
does not, the cameras resolve what success needs and the representation learning is what
loses it; if it does not either, the cameras are the limit.

:func:`encoder_network` builds the model's own encoders instead (fresh weights, the
model's sizes), read out linearly: trained the same way, it says whether that architecture
can hold the offset, and so whether SOLAR's objective or the encoder's design loses it.
"""

from typing import Callable, List, Optional

import numpy as np
from solar_ros.core.model import build_encoders
from solar_ros.core.model_config import ModelConfig
from solar_ros.core.networks import Encoder
from solar_ros.core.tensors import view_channels
import torch

BATCH_SIZE = 64
LEARNING_RATE = 1e-3
CENTIMETRES = 100.0  # the network regresses centimetres, whose scale suits its output


def pixel_network(channels: int, image_size: int) -> torch.nn.Module:
    """Return a CNN from (B, channels, H, W) frames in [0, 1] to (B, 3) offsets, cm.

    Three strided convolutions (32, 32, 64 channels) and a 128-unit hidden layer.
    """
    side = -(-image_size // 8)  # three stride-2 convolutions with padding
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 32, 5, 2, 2), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, 2, 1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, 2, 1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(64 * side * side, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 3))


class EncoderReadout(torch.nn.Module):
    """The model's encoders, one per camera view, read out linearly to the offset.

    Each view's :class:`~solar_ros.core.networks.Encoder` gives its mean (dx,); the means
    are concatenated and mapped linearly to the (3,) offset, cm: linear in the encoders'
    means, as the linear probe is in a latent.
    """

    def __init__(self, encoders: List[Encoder]) -> None:
        """Hold ``encoders`` (one per view, in view order) and a linear read-out."""
        super().__init__()
        self.encoders = torch.nn.ModuleList(encoders)
        self.readout = torch.nn.Linear(sum(e.latent_dim for e in encoders), 3)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Map (B, 3 V, H, W) frames in [0, 1] to (B, 3) offsets, cm."""
        images = frames.permute(0, 2, 3, 1)  # the encoders take (..., H, W, 3)
        means = [encoder(view_channels(images, view))[0]
                 for view, encoder in enumerate(self.encoders)]
        return self.readout(torch.cat(means, dim=-1))


def encoder_network(config: ModelConfig) -> EncoderReadout:
    """Return the encoders of a model with ``config`` (new weights) under a linear read-out."""
    return EncoderReadout(build_encoders(config))


def _frames(images: np.ndarray) -> torch.Tensor:
    """(N, T, H, W, C) uint8 -> (N T, C, H, W) float32 in [0, 1]."""
    flat = torch.as_tensor(images.reshape(-1, *images.shape[2:]))
    return flat.permute(0, 3, 1, 2).float() / 255.0


def pixel_regression(train_images: np.ndarray, train_offsets: np.ndarray,
                     test_images: np.ndarray, epochs: int = 30, seed: int = 0,
                     progress: Optional[Callable[[int, float], None]] = None,
                     build: Optional[Callable[[], torch.nn.Module]] = None) -> np.ndarray:
    """Train a network on the training frames; return its offsets for the test frames.

    Args:
        train_images: (N, T, H, W, C) uint8 training frames.
        train_offsets: (N, T, 3) their offsets, m.
        test_images: (M, T', H, W, C) uint8 frames to read.
        epochs: passes over the training frames.
        seed: seed of the initial weights and of the minibatch order.
        progress: called after each epoch with (epoch, last minibatch's squared error, cm^2).
        build: returns the network, from (B, C, H, W) frames to (B, 3) centimetres
            (default: :func:`pixel_network`); called after the seed is set.

    Returns:
        (M T', 3) predicted offsets, m, frame after frame.

    Raises:
        ValueError: training and test frames differ in shape, or ``epochs`` < 1.

    """
    if train_images.shape[2:] != test_images.shape[2:]:
        raise ValueError(f'training frames {train_images.shape[2:]} and test frames '
                         f'{test_images.shape[2:]} differ')
    if epochs < 1:
        raise ValueError(f'epochs must be >= 1, got {epochs}')
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    inputs = _frames(train_images)
    targets = torch.as_tensor(CENTIMETRES * train_offsets.reshape(-1, 3)).float()
    network = pixel_network(inputs.shape[1], inputs.shape[2]) if build is None else build()
    optimizer = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE)
    for epoch in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            loss = ((network(inputs[batch]) - targets[batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if progress is not None:
            progress(epoch + 1, float(loss.detach()))
    with torch.no_grad():
        return network(_frames(test_images)).double().numpy() / CENTIMETRES
