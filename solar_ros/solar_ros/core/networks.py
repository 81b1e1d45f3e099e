"""Neural parts of the SOLAR model: image encoder, image decoder and the cost heads.

All are float32 torch modules. Images are (..., H, W, 3) with intensities in [0, 1]
(channels last, as rendered); the networks move the channels first internally.

Image likelihood: an element-wise Bernoulli on the [0, 1] intensities with logits from the
decoder (the negative sigmoid cross-entropy, without the continuous-Bernoulli normaliser),
as the SOLAR authors use. Chosen over a Gaussian because (a) it has no variance to tune or
learn, whose value would otherwise set the balance between reconstruction and the KL and
cost terms that the beta schedule was designed around; (b) the rendered scenes are nearly
two-tone (a disc on a plain background), where the cross-entropy keeps strong gradients on
the few pixels of the object while a fixed-variance Gaussian lets the background dominate.
Its value is not a normalised density of continuous images, but it is one fixed function
of the data, so ELBOs computed with it are comparable across models and training time.
"""

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as functional


def _check_size(image_size: int) -> None:
    if image_size < 16 or image_size % 16:
        raise ValueError(f'image_size must be a multiple of 16 (>= 16), got {image_size}')


class Encoder(nn.Module):
    """Map images to a Gaussian per latent dimension: mean and floored standard deviation.

    Four 4x4 stride-2 convolutions with ReLU (channels c, 2c, 2c, 2c) reduce H x W to
    H/16 x W/16, a ReLU dense layer of ``hidden`` units follows, then a linear head with
    2 * latent_dim outputs: the mean and std = softplus(x) + min_std. The std half of the
    head starts at zero (std = log 2 + min_std, weak evidence at the start of training).
    """

    def __init__(self, latent_dim: int, image_size: int = 64, channels: int = 16,
                 hidden: int = 128, min_std: float = 0.01, keypoints: int = 0,
                 dense_branch: int = 0, full_precision: bool = False,
                 observed: Optional[Sequence[bool]] = None) -> None:
        """Build the layers (sizes as in the class docstring; ``keypoints``: see below).

        With ``keypoints`` K > 0 the encoder is a spatial soft-argmax instead: two 4x4
        stride-2 convolutions (c, 2c) to H/4 x W/4, a 1x1 convolution to K feature maps,
        and for each map the expected image coordinates (x, y) in [-1, 1] under a softmax
        over its pixels; the mean and std heads read these 2K coordinates. The means are
        then nearly linear in the positions of the objects the maps track, which is what
        linear latent dynamics need; with the dense head the first few hundred updates
        give a latent that is a bent image of the position.

        ``dense_branch`` B > 0 (keypoints only) adds a dense branch to the mean: two more
        4x4 stride-2 convolutions (2c) on the H/4 x W/4 features, a ReLU layer of B units
        and a linear map to dx whose weights start at zero, so training begins from the
        keypoint mean. Soft-argmax coordinates alone read a block's position to about a
        centimetre; the branch can refine it to millimetres (docs/results.md, "Task 3 with a
        dense branch"). The std head reads the keypoints only.

        ``full_precision`` adds a head of dx (dx - 1) / 2 outputs, the strictly lower triangle
        of a factor L = diag(1 / std) + lower, so that the precision J = L L^T of
        :meth:`potential` is a full matrix: a camera can then be sure of some directions of
        the latent and say nothing about others, whatever their basis. The head starts at
        zero (J starts diagonal, as without it).

        ``observed`` (dx bools, default all True) names the latent dimensions the camera's
        potential speaks about: :meth:`potential` zeroes J's rows and columns (and h) on
        the others, which the other cameras of a product then decide alone
        (``ModelConfig.view_own_dims``).
        """
        super().__init__()
        _check_size(image_size)
        self.keypoints = keypoints
        if keypoints:
            self.convs = nn.ModuleList([
                nn.Conv2d(3, channels, 4, stride=2, padding=1),
                nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1)])
            self.feature_maps = nn.Conv2d(2 * channels, keypoints, 1)
            side = image_size // 4
            grid = torch.linspace(-1.0, 1.0, side)
            self.register_buffer('grid_x', grid.repeat(side), persistent=False)
            self.register_buffer('grid_y', grid.repeat_interleave(side), persistent=False)
            features = 2 * keypoints
        elif dense_branch:
            raise ValueError('Encoder: dense_branch needs a keypoint encoder (keypoints > 0)')
        else:
            widths = [3, channels, 2 * channels, 2 * channels, 2 * channels]
            self.convs = nn.ModuleList(
                nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1)
                for i in range(4))
            self.dense = nn.Linear(widths[-1] * (image_size // 16) ** 2, hidden)
            features = hidden
        self.mean_head = nn.Linear(features, latent_dim)
        self.std_head = nn.Linear(features, latent_dim)
        nn.init.zeros_(self.std_head.weight)
        nn.init.zeros_(self.std_head.bias)
        # Built last, so that without it the other layers draw the same initial weights.
        self.branch: Optional[nn.Module] = None
        self.branch_head: Optional[nn.Linear] = None
        if dense_branch:
            self.branch = nn.Sequential(
                nn.Conv2d(2 * channels, 2 * channels, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(2 * channels, 2 * channels, 4, stride=2, padding=1), nn.ReLU(),
                nn.Flatten(), nn.Linear(2 * channels * (image_size // 16) ** 2, dense_branch),
                nn.ReLU())
            self.branch_head = nn.Linear(dense_branch, latent_dim)
            nn.init.zeros_(self.branch_head.weight)
            nn.init.zeros_(self.branch_head.bias)
        self.lower_head: Optional[nn.Linear] = None
        if full_precision:
            self.lower_head = nn.Linear(features, latent_dim * (latent_dim - 1) // 2)
            nn.init.zeros_(self.lower_head.weight)
            nn.init.zeros_(self.lower_head.bias)
        self.latent_dim = latent_dim
        self.min_std = min_std
        mask = torch.ones(latent_dim, dtype=torch.float64)
        if observed is not None:
            if len(observed) != latent_dim:
                raise ValueError(f'Encoder: observed must hold {latent_dim} bools, '
                                 f'got {len(observed)}')
            mask = torch.tensor([float(bool(b)) for b in observed], dtype=torch.float64)
        # Built from the config, so not in the state dict (checkpoints stay as they were).
        self.register_buffer('observed', mask, persistent=False)

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode ``images`` (..., H, W, 3) float32 in [0, 1] to (mean, std), each (..., dx)."""
        mean, std, _ = self._heads(images)
        return mean, std

    def potential(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return the Gaussian potential of ``images`` (..., H, W, 3): J and h, float64.

        J is (..., dx) diagonal, std^-2, or with ``full_precision`` (..., dx, dx), L L^T
        (see ``__init__``); h = J mean, (..., dx).
        """
        mean, std, lower = self._heads(images)
        mean = mean.to(torch.float64)
        if lower is None:
            precision = std.to(torch.float64) ** -2 * self.observed
            return precision, precision * mean
        dx = self.latent_dim
        rows, cols = torch.tril_indices(dx, dx, offset=-1)
        strict = torch.zeros(*lower.shape[:-1], dx, dx, dtype=torch.float64)
        strict[..., rows, cols] = lower.to(torch.float64)
        factor = torch.diag_embed(1.0 / std.to(torch.float64)) + strict
        precision = factor @ factor.transpose(-1, -2) * torch.outer(self.observed,
                                                                    self.observed)
        return precision, (precision @ mean.unsqueeze(-1)).squeeze(-1)

    def _heads(self, images: torch.Tensor
               ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Return mean and std (..., dx) and the precision factor's lower triangle or None."""
        lead = images.shape[:-3]
        x = images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2)
        for conv in self.convs:
            x = functional.relu(conv(x))
        refinement = 0.0
        if self.keypoints:
            if self.branch is not None:
                refinement = self.branch_head(self.branch(x))
            attention = functional.softmax(self.feature_maps(x).flatten(2), dim=-1)
            x = torch.cat([attention @ self.grid_x, attention @ self.grid_y], dim=-1)
        else:
            x = functional.relu(self.dense(x.flatten(1)))
        mean = self.mean_head(x) + refinement
        std = functional.softplus(self.std_head(x)) + self.min_std
        lower = None if self.lower_head is None else self.lower_head(x).reshape(*lead, -1)
        return mean.reshape(*lead, self.latent_dim), std.reshape(*lead, self.latent_dim), lower


def _grouped(layers: Sequence[nn.Module]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return one layer per view as one grouped convolution's (weight, bias), copied."""
    return (torch.cat([layer.weight for layer in layers]).clone(),
            torch.cat([layer.bias for layer in layers]).clone())


def _batched(layers: Sequence[nn.Linear]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return one linear layer per view as (V, out, in) weights and (V, out, 1) biases, copied."""
    return (torch.stack([layer.weight for layer in layers]).clone(),
            torch.stack([layer.bias for layer in layers])[..., None].clone())


class KeypointEncoderStack:
    """The keypoint encoders of a model's camera views, run on one frame in one pass.

    For inference on a running episode: each view's convolutions become one grouped
    convolution over all views and their heads one batched product, so a two-view frame
    pays the operator overhead of about one view (``bench/model_speed.py``); dense branches
    (``Encoder(dense_branch=B)``) are stacked the same way. The weights are
    copied when the stack is built (rebuild it after training). The result is the product
    of the views' Gaussian potentials, as :meth:`solar_ros.core.model.SolarModel.encode`
    computes it, equal up to float32 rounding.
    """

    def __init__(self, encoders: Sequence[Encoder]) -> None:
        """Stack the weights of ``encoders`` (one per view, all keypoint encoders alike)."""
        if not self.can_stack(encoders):
            raise ValueError('KeypointEncoderStack needs keypoint encoders (keypoints > 0), '
                             'all with a dense branch of one size or all without')
        first = encoders[0]
        self.views = len(encoders)
        self.keypoints = first.keypoints
        self.min_std = first.min_std
        with torch.no_grad():
            self.convs = [_grouped([e.convs[i] for e in encoders])
                          for i in range(len(first.convs))]
            self.maps = _grouped([e.feature_maps for e in encoders])
            self.heads = [_batched([getattr(e, head) for e in encoders])
                          for head in ('mean_head', 'std_head')]
            # The branch: two convolutions, grouped, then its dense layer and head, batched.
            self.branch_convs: List[Tuple[torch.Tensor, torch.Tensor]] = []
            self.branch_dense: List[Tuple[torch.Tensor, torch.Tensor]] = []
            if first.branch is not None:
                layers = [[m for m in e.branch if isinstance(m, (nn.Conv2d, nn.Linear))]
                          + [e.branch_head] for e in encoders]
                self.branch_convs = [_grouped([view[i] for view in layers]) for i in (0, 1)]
                self.branch_dense = [_batched([view[i] for view in layers]) for i in (2, 3)]
        self.grid = torch.stack([first.grid_x, first.grid_y], dim=1)  # (P, 2)
        self.observed = torch.stack([e.observed for e in encoders])  # (V, dx)

    @staticmethod
    def can_stack(encoders: Sequence[Encoder]) -> bool:
        """Return whether ``encoders`` stack: diagonal keypoint encoders, branches alike.

        Full-precision encoders are encoded one by one (:meth:`SolarModel.encode`).
        """
        if not encoders or not all(e.keypoints and e.lower_head is None for e in encoders):
            return False
        units = {None if e.branch is None else e.branch_head.in_features for e in encoders}
        return len(units) == 1

    def _convolve(self, x: torch.Tensor,
                  layers: Sequence[Tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Apply grouped 4x4 stride-2 convolutions with ReLU, each view on its own channels."""
        for weight, bias in layers:
            x = functional.relu(functional.conv2d(x, weight, bias, stride=2, padding=1,
                                                  groups=self.views))
        return x

    def __call__(self, frame: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode one frame (H, W, 3 V) to its potential J (dx,), h (dx,) float64.

        The frame is uint8 (scaled to [0, 1] here) or float in [0, 1], as for
        :meth:`solar_ros.core.model.SolarModel.encode`.
        """
        views = self.views
        with torch.inference_mode():
            x = frame.permute(2, 0, 1)[None].to(torch.float32)
            if frame.dtype == torch.uint8:
                x = x / 255.0
            x = self._convolve(x, self.convs)
            refinement = 0.0
            if self.branch_convs:
                (dense_w, dense_b), (head_w, head_b) = self.branch_dense
                y = self._convolve(x, self.branch_convs).view(views, -1, 1)
                y = functional.relu(torch.baddbmm(dense_b, dense_w, y))
                refinement = torch.baddbmm(head_b, head_w, y)[..., 0]
            attention = functional.softmax(
                functional.conv2d(x, *self.maps, groups=views).flatten(2)[0], dim=-1)
            # (V K, 2) image coordinates -> (V, 2 K) as Encoder.forward: all x, then all y
            features = (attention @ self.grid).view(views, self.keypoints, 2) \
                .transpose(1, 2).reshape(views, 2 * self.keypoints, 1)
            (mean_w, mean_b), (std_w, std_b) = self.heads
            mean = torch.baddbmm(mean_b, mean_w, features)[..., 0] + refinement
            std = functional.softplus(torch.baddbmm(std_b, std_w, features)[..., 0]) \
                + self.min_std
            precision = std.to(torch.float64) ** -2 * self.observed
            return precision.sum(0), (mean.to(torch.float64) * precision).sum(0)


class Decoder(nn.Module):
    """Map latent states to Bernoulli logits of the image pixels.

    A ReLU dense layer to 2c x H/16 x W/16, then four 4x4 stride-2 transposed convolutions
    (channels 2c, 2c, c, out) with ReLU between them; the last layer is linear (logits).
    ``out_channels`` is 3 per camera view.
    """

    def __init__(self, latent_dim: int, image_size: int = 64, channels: int = 16,
                 out_channels: int = 3) -> None:
        """Build the layers (sizes as in the class docstring)."""
        super().__init__()
        _check_size(image_size)
        self.base = image_size // 16
        self.width = 2 * channels
        self.dense = nn.Linear(latent_dim, self.width * self.base ** 2)
        widths = [2 * channels, 2 * channels, 2 * channels, channels, out_channels]
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(widths[i], widths[i + 1], 4, stride=2, padding=1)
            for i in range(4))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode ``latents`` (..., dx) float32 to logits (..., H, W, out_channels)."""
        lead = latents.shape[:-1]
        x = functional.relu(self.dense(latents.reshape(-1, latents.shape[-1])))
        x = x.reshape(-1, self.width, self.base, self.base)
        for i, deconv in enumerate(self.deconvs):
            x = deconv(x)
            if i < len(self.deconvs) - 1:
                x = functional.relu(x)
        return x.permute(0, 2, 3, 1).reshape(*lead, *x.shape[-2:], x.shape[1])


def bernoulli_log_likelihood(logits: torch.Tensor, images: torch.Tensor,
                             weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Return sum over pixels of w (x log sigmoid(l) + (1 - x) log sigmoid(-l)).

    Args:
        logits: (..., H, W, 3) decoder output.
        images: (..., H, W, 3) intensities in [0, 1].
        weights: per-pixel weights w broadcastable to ``images``; None: 1 everywhere.

    Returns:
        (...) log-likelihood per image (module docstring on the choice).

    """
    terms = functional.binary_cross_entropy_with_logits(logits, images, reduction='none')
    if weights is not None:
        terms = terms * weights
    return -terms.sum(dim=(-3, -2, -1))


class QuadraticCostHead(nn.Module):
    """Predict the per-step cost from the latent state: 1/2 s^T C s + c^T s + const.

    C = L L^T is positive semi-definite by construction (L a free dx x dx matrix): the
    costs SOLAR targets are distances to a goal, and LQR on the learned cost is only
    well posed with a PSD state cost. The likelihood of an observed cost c is
    N(c; prediction, (cost_std + cost_rel_std |c|)^2): with ``cost_rel_std`` > 0 small
    costs, near the goal, are to be predicted more tightly than large ones.
    """

    def __init__(self, latent_dim: int, cost_std: float = 1.0, init_scale: float = 0.1,
                 cost_rel_std: float = 0.0) -> None:
        """Initialise L ~ init_scale * N(0, 1) (torch's global generator), c = 0, const = 0."""
        super().__init__()
        self.factor = nn.Parameter(init_scale * torch.randn(latent_dim, latent_dim))
        self.linear = nn.Parameter(torch.zeros(latent_dim))
        self.const = nn.Parameter(torch.zeros(()))
        self.cost_std = cost_std
        self.cost_rel_std = cost_rel_std

    def matrix(self) -> torch.Tensor:
        """Return C = L L^T, (dx, dx)."""
        return self.factor @ self.factor.T

    def forward(self, latents: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """Return the predicted cost (...) of latent states (..., dx).

        With ``detach_params`` the head's parameters are constants (gradients reach only
        ``latents``).
        """
        factor, linear, const = self.factor, self.linear, self.const
        if detach_params:
            factor, linear, const = factor.detach(), linear.detach(), const.detach()
        quad = 0.5 * torch.einsum('...i,ij,...j->...', latents, factor @ factor.T, latents)
        return quad + latents @ linear + const

    def log_likelihood(self, latents: torch.Tensor, costs: torch.Tensor,
                       detach_params: bool = False) -> torch.Tensor:
        """Return log N(costs; forward(latents), std^2), shape (...) like ``costs``.

        std = cost_std + cost_rel_std * |costs| (class docstring).
        """
        var = (self.cost_std + self.cost_rel_std * costs.abs()) ** 2
        residual = costs - self(latents, detach_params)
        return -0.5 * residual ** 2 / var - 0.5 * torch.log(2.0 * torch.pi * var)


class ResidualHead(nn.Module):
    """Read the cost's residuals linearly from the latent: r_t = W s_t + b_t, a training signal.

    r_t (d,) is the held block's offset from the aim (in the cost's units), b_t a bias per
    step (T, d), so that an aim that moves during the episode (a via-point) needs no state.
    Its likelihood N(r_t; W s_t + b_t, std^2 I) asks the encoder to hold the offset, the
    target's place in it included, where a linear read-out finds it. LQR-FLM never reads
    this head: it fits its own read-out to each update's rollouts.
    """

    def __init__(self, latent_dim: int, residual_dim: int, horizon: int, std: float) -> None:
        """Start from W = 0 and b = 0 (no random draws)."""
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(residual_dim, latent_dim))
        self.bias = nn.Parameter(torch.zeros(horizon, residual_dim))
        self.std = std

    def forward(self, latents: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """Return the read-out (..., T, d) of latent sequences (..., T, dx).

        With ``detach_params`` the head's parameters are constants (gradients reach only
        ``latents``).
        """
        weight, bias = self.weight, self.bias
        if detach_params:
            weight, bias = weight.detach(), bias.detach()
        return latents @ weight.T + bias

    def log_likelihood(self, latents: torch.Tensor, residuals: torch.Tensor,
                       detach_params: bool = False) -> torch.Tensor:
        """Return log N(residuals; forward(latents), std^2 I) per step, shape (..., T)."""
        error = residuals - self(latents, detach_params)
        var = self.std ** 2
        return (-0.5 * error ** 2 / var - 0.5 * math.log(2.0 * math.pi * var)).sum(-1)


class LogCostHead(nn.Module):
    """Predict log(c + eps) from the latent state with a small MLP: a training signal only.

    The squared distance that the quadratic head fits is flat at the goal, so it says little
    about the last centimetres. Its logarithm is steepest there: with the distance term
    (d / 0.1 m)^2 and eps = 0.01, d = 1 cm and 2 cm differ by 0.9 in log(c + eps) but by
    0.03 in c. Fitting it asks the encoder to resolve the offset near the goal. LQR-FLM
    never reads this head; it only shapes the representation.
    """

    def __init__(self, latent_dim: int, eps: float, std: float, hidden: int = 64) -> None:
        """Build the MLP dx -> hidden -> hidden -> 1 (ELU), torch's global generator."""
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ELU(),
                                 nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, 1))
        self.eps = eps
        self.std = std

    def forward(self, latents: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """Return the predicted log(c + eps), (...), of latent states (..., dx).

        With ``detach_params`` the head's parameters are constants (gradients reach only
        ``latents``).
        """
        if detach_params:
            params = {name: value.detach() for name, value in self.named_parameters()}
            return torch.func.functional_call(self, params, (latents,)).squeeze(-1)
        return self.net(latents).squeeze(-1)

    def log_likelihood(self, latents: torch.Tensor, costs: torch.Tensor,
                       detach_params: bool = False) -> torch.Tensor:
        """Return log N(log(max(c, 0) + eps); forward(latents), std^2), shape of ``costs``."""
        target = torch.log(costs.clamp(min=0.0) + self.eps)
        residual = target - self(latents, detach_params)
        var = self.std ** 2
        return -0.5 * residual ** 2 / var - 0.5 * math.log(2.0 * math.pi * var)
