"""Generator and discriminator networks for the image GANs, weight initialization and the gradient penalty.

Two families, both for square images whose side is ``resolution = 4 * 2**k`` (``k >= 1``: 8, 16, 32, 64...);
the number of up- and down-sampling stages follows from ``resolution`` (``k`` of them), so the 32x32
defaults are the papers' networks and tests can use tiny 8x8 or 16x16 versions of the same design.

* **DCGAN** (Radford, Metz & Chintala 2016, "Unsupervised representation learning with deep convolutional
  generative adversarial networks"), in the 32x32 form of Gidel et al.'s public code (the DCGAN of Figure 1
  of "Adam is no better than normalized SGD", ICLR 2022 submission): strided transposed convolutions with batch
  norm and ReLU in the generator, strided convolutions with LeakyReLU(0.2) and batch norm (not on the first
  layer) in the discriminator.
* **ResNet WGAN-GP** (Gulrajani et al. 2017, "Improved training of Wasserstein GANs", with the residual
  architecture of Gidel, Berard, Vignoud, Vincent & Lacoste-Julien 2019, "A variational inequality perspective
  on generative adversarial networks", public code): the architecture of the image experiments of "Adam is no
  better than normalized SGD".

Generators map ``z`` of shape ``(B, z_dim)`` to images ``(B, channels, resolution, resolution)`` in
``[-1, 1]`` (tanh). Discriminators map images to logits / critic values of shape ``(B,)`` (no sigmoid).

Construction leaves PyTorch's default initialization; the papers' initialization is ``init_weights_``
(``N(0, 0.02)`` weights, zero biases), which takes an optional ``torch.Generator`` so that an environment can
draw it from its seeded random streams. ``gradient_penalty`` is the WGAN-GP regularizer of Gulrajani et al.

The networks keep their hyperparameters as attributes (``z_dim`` for generators, ``width``, ``channels``,
``resolution``) so that a game can read them back.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from minmax_envs._checks import check_int, check_real

__all__ = [
    "dcgan_generator",
    "dcgan_discriminator",
    "resnet_generator",
    "resnet_discriminator",
    "init_weights_",
    "gradient_penalty",
]


# --------------------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------------------

def _stages(resolution: int) -> int:
    """``k`` such that ``resolution == 4 * 2**k`` with ``k >= 1``, or a ``ValueError``."""
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise ValueError(f"resolution must be an int 4 * 2**k with k >= 1 (8, 16, 32, 64, ...), got {resolution!r}")
    k = (resolution // 4).bit_length() - 1
    if resolution < 8 or resolution != 4 * 2**k:
        raise ValueError(f"resolution must be an int 4 * 2**k with k >= 1 (8, 16, 32, 64, ...), got {resolution!r}")
    return k


class _Net(nn.Sequential):
    """A ``Sequential`` that remembers its hyperparameters (read by games and tests)."""

    def __init__(self, layers: list[nn.Module], **hparams: int) -> None:
        super().__init__(*layers)
        for name, value in hparams.items():
            setattr(self, name, value)


class _SpatialMean(nn.Module):
    """``(B, C, H, W) -> (B, C)``: the mean over the spatial dimensions."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(-2, -1))


# --------------------------------------------------------------------------------------------------------------
# DCGAN
# --------------------------------------------------------------------------------------------------------------

def dcgan_generator(z_dim: int = 100, width: int = 64, channels: int = 3, resolution: int = 32) -> nn.Module:
    """DCGAN generator (Radford et al. 2016) in the 32x32 form of Gidel et al. 2019's public code.

    With ``F = width``, ``k = log2(resolution / 4)`` and ``F_0 = F * 2**(k-1)`` (``4F`` at 32x32):

    1. ``Linear(z_dim -> F_0*4*4)`` - ``BatchNorm1d(F_0*4*4)`` - ``ReLU`` - reshape to ``(F_0, 4, 4)``
       (the "project and reshape" of Radford et al.; batch norm over the ``F_0*16`` features, as in Gidel et al.);
    2. ``k - 1`` stages ``ConvTranspose2d(C -> C/2, 4, stride 2, padding 1)`` - ``BatchNorm2d`` - ``ReLU``,
       halving the channels and doubling the side;
    3. ``ConvTranspose2d(F -> channels, 4, stride 2, padding 1)`` - ``Tanh``.

    At 32x32: ``z -> 4F x 4 x 4 -> 2F x 8 x 8 -> F x 16 x 16 -> channels x 32 x 32``. Every layer has a bias.
    Defaults (``z_dim = 100``, ``F = 64``, 32x32, 3 channels): 1,080,899 parameters.
    """
    z_dim = check_int("z_dim", z_dim)
    width = check_int("width", width)
    channels = check_int("channels", channels)
    k = _stages(resolution)
    c = width * 2 ** (k - 1)
    layers: list[nn.Module] = [
        nn.Linear(z_dim, c * 4 * 4),
        nn.BatchNorm1d(c * 4 * 4),
        nn.ReLU(),
        nn.Unflatten(1, (c, 4, 4)),
    ]
    for _ in range(k - 1):
        layers += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.BatchNorm2d(c // 2), nn.ReLU()]
        c //= 2
    layers += [nn.ConvTranspose2d(c, channels, 4, stride=2, padding=1), nn.Tanh()]
    return _Net(layers, z_dim=z_dim, width=width, channels=channels, resolution=resolution)


def dcgan_discriminator(width: int = 64, channels: int = 3, resolution: int = 32) -> nn.Module:
    """DCGAN discriminator (Radford et al. 2016) in the 32x32 form of Gidel et al. 2019's public code.

    With ``F = width`` and ``k = log2(resolution / 4)``:

    1. ``Conv2d(channels -> F, 4, stride 2, padding 1)`` - ``LeakyReLU(0.2)`` (no batch norm on the input layer);
    2. ``k - 1`` stages ``Conv2d(C -> 2C, 4, stride 2, padding 1)`` - ``BatchNorm2d`` - ``LeakyReLU(0.2)``;
    3. flatten - ``Linear(F * 2**(k-1) * 4 * 4 -> 1)``, one logit per image, shape ``(B,)`` (no sigmoid).

    At 32x32: ``channels x 32 x 32 -> F x 16 x 16 -> 2F x 8 x 8 -> 4F x 4 x 4 -> 1``. Every layer has a bias.
    Defaults (``F = 64``, 32x32, 3 channels): 663,745 parameters.
    """
    width = check_int("width", width)
    channels = check_int("channels", channels)
    k = _stages(resolution)
    c = width
    layers: list[nn.Module] = [nn.Conv2d(channels, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
    for _ in range(k - 1):
        layers += [nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2)]
        c *= 2
    layers += [nn.Flatten(), nn.Linear(c * 4 * 4, 1), nn.Flatten(0)]
    return _Net(layers, width=width, channels=channels, resolution=resolution)


# --------------------------------------------------------------------------------------------------------------
# ResNet WGAN-GP
# --------------------------------------------------------------------------------------------------------------

class _UpBlock(nn.Module):
    """Generator residual block, ``F x H x H -> F x 2H x 2H``.

    Residual: ``BN - ReLU - ConvTranspose2d(F -> F, 4, stride 2, padding 1) - BN - ReLU - Conv2d(F -> F, 3, pad 1)``;
    shortcut: ``ConvTranspose2d(F -> F, 1, stride 2, output_padding 1)`` (a 1x1 transposed convolution with stride 2
    gives ``2H - 1``; ``output_padding = 1`` makes it ``2H``, as in Gidel et al.'s code).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(), nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),
            nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
        )
        self.shortcut = nn.ConvTranspose2d(width, width, 1, stride=2, output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.residual(x)


class _FirstDownBlock(nn.Module):
    """The discriminator's first ("optimized") block, ``channels x H x H -> F x H/2 x H/2``.

    Residual: ``Conv2d(channels -> F, 3, pad 1) - ReLU - Conv2d(F -> F, 3, stride 2, pad 1)`` (no activation
    before the first convolution: its input is the image); shortcut: ``Conv2d(channels -> F, 1, stride 2)``.
    """

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, stride=2, padding=1),
        )
        self.shortcut = nn.Conv2d(channels, width, 1, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.residual(x)


class _DownBlock(nn.Module):
    """Discriminator residual block without batch norm.

    Down-sampling (``F x H x H -> F x H/2 x H/2``): residual ``ReLU - Conv2d(3, pad 1) - ReLU -
    Conv2d(3, stride 2, pad 1)``, shortcut ``Conv2d(F -> F, 1, stride 2)``. Plain (``down=False``): residual
    ``ReLU - Conv2d(3, pad 1) - ReLU - Conv2d(3, pad 1)``, identity shortcut.
    """

    def __init__(self, width: int, down: bool) -> None:
        super().__init__()
        stride = 2 if down else 1
        self.residual = nn.Sequential(
            nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(), nn.Conv2d(width, width, 3, stride=stride, padding=1),
        )
        self.shortcut = nn.Conv2d(width, width, 1, stride=2) if down else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.residual(x)


def resnet_generator(z_dim: int = 128, width: int = 128, channels: int = 3, resolution: int = 32) -> nn.Module:
    """ResNet WGAN-GP generator (Gulrajani et al. 2017; the 32x32 network of Gidel et al. 2019's public code).

    With ``F = width`` and ``k = log2(resolution / 4)`` (3 at 32x32), all convolutions ``F -> F``:

    1. ``Linear(z_dim -> 4*4*F)`` - reshape to ``(F, 4, 4)`` (no batch norm or activation here: every block
       starts with them);
    2. ``k`` up-sampling residual blocks (4 -> 8 -> 16 -> 32 at 32x32), each
       ``x -> ConvTranspose2d(1, stride 2, output_padding 1)(x) + [BN - ReLU - ConvTranspose2d(4, stride 2,
       padding 1) - BN - ReLU - Conv2d(3, padding 1)](x)``;
    3. ``BatchNorm2d(F)`` - ``ReLU`` - ``Conv2d(F -> channels, 3, padding 1)`` - ``Tanh``.

    Every convolution and linear layer has a bias. Defaults (``z_dim = 128``, ``F = 128``, 32x32,
    3 channels): 1,548,547 parameters.
    """
    z_dim = check_int("z_dim", z_dim)
    width = check_int("width", width)
    channels = check_int("channels", channels)
    k = _stages(resolution)
    layers: list[nn.Module] = [nn.Linear(z_dim, 4 * 4 * width), nn.Unflatten(1, (width, 4, 4))]
    layers += [_UpBlock(width) for _ in range(k)]
    layers += [nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, padding=1), nn.Tanh()]
    return _Net(layers, z_dim=z_dim, width=width, channels=channels, resolution=resolution)


def resnet_discriminator(width: int = 128, channels: int = 3, resolution: int = 32) -> nn.Module:
    """ResNet WGAN-GP critic (Gulrajani et al. 2017; the 32x32 network of Gidel et al. 2019's public code).

    No batch norm (it would make the gradient penalty couple the samples of a batch). With ``F = width`` and
    ``k = log2(resolution / 4)``:

    1. first block ``channels x R x R -> F x R/2 x R/2``:
       ``Conv2d(1, stride 2)(x) + [Conv2d(channels -> F, 3, pad 1) - ReLU - Conv2d(F -> F, 3, stride 2, pad 1)](x)``;
    2. ``max(k - 2, 0)`` down-sampling residual blocks, which bring the side to 8 (one at 32x32: 16 -> 8,
       two at 64x64, none at 16x16); each ``Conv2d(1, stride 2)(x) + [ReLU - Conv2d(3, pad 1) - ReLU -
       Conv2d(3, stride 2, pad 1)](x)``;
    3. two plain residual blocks ``x + [ReLU - Conv2d(3, pad 1) - ReLU - Conv2d(3, pad 1)](x)``;
    4. ``ReLU`` - mean over the spatial dimensions - ``Linear(F -> 1)``: one critic value per image, shape ``(B,)``.

    Choice the reference leaves open: at ``resolution = 8`` the first block already halves to 4x4 (the
    reference's "until 8x8" cannot be met), and the plain blocks then work at 4x4. Every convolution and
    linear layer has a bias. Defaults (``F = 128``, 32x32, 3 channels): 1,053,825 parameters.
    """
    width = check_int("width", width)
    channels = check_int("channels", channels)
    k = _stages(resolution)
    layers: list[nn.Module] = [_FirstDownBlock(channels, width)]
    layers += [_DownBlock(width, down=True) for _ in range(max(k - 2, 0))]
    layers += [_DownBlock(width, down=False) for _ in range(2)]
    layers += [nn.ReLU(), _SpatialMean(), nn.Linear(width, 1), nn.Flatten(0)]
    return _Net(layers, width=width, channels=channels, resolution=resolution)


# --------------------------------------------------------------------------------------------------------------
# Initialization and gradient penalty
# --------------------------------------------------------------------------------------------------------------

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@torch.no_grad()
def init_weights_(module: nn.Module, std: float = 0.02, *, generator: torch.Generator | None = None) -> nn.Module:
    """The DCGAN / WGAN-GP initialization (Radford et al. 2016; Gidel et al. 2019's code), in place.

    Linear and (transposed) convolution weights ``~ N(0, std^2)``, their biases 0; batch-norm scales
    ``~ N(1, std^2)``, shifts 0. Other parameters are left alone. Draws from ``generator`` (a
    ``torch.Generator`` on the parameters' device) when given, else from torch's global random state.
    Returns ``module``.
    """
    std = check_real("std", std, low=0.0)
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            nn.init.normal_(m.weight, 0.0, std, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, std, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def gradient_penalty(discriminator: nn.Module, real: Tensor, fake: Tensor, eps: Tensor,
                     target: float = 1.0, detach: bool = True) -> Tensor:
    """WGAN-GP gradient penalty (Gulrajani et al. 2017, eq. 3) without its weight ``lambda``.

    ``mean_i (||grad_x D(x_hat_i)||_2 - target)^2`` with ``x_hat = eps * real + (1 - eps) * fake``; ``eps`` of shape
    ``(B, 1, ..., 1)`` (one ``U[0, 1]`` draw per sample, drawn by the caller from its seeded streams). The gradient
    is taken per sample (``D`` summed over the batch, which is exact for a critic without batch norm) and kept in
    the graph (``create_graph=True``): backpropagating the result reaches ``D``'s parameters. With ``detach=True``
    (default) ``real`` and ``fake`` are detached: the penalty is a term of the discriminator's loss only, and never
    flows into the generator. ``detach=False`` keeps the penalty a function of whatever ``fake`` depends on (the
    generator's parameters), which gradient-field regularizers of the whole game (Nagarajan-Kolter) need.
    Returns a scalar; multiply by ``lambda`` (10 in the paper) outside.
    """
    target = check_real("target", target)
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.dim() < 2:
        raise ValueError(f"real and fake must be batches of shape (B, ...), got {tuple(real.shape)}")
    expected = (real.shape[0],) + (1,) * (real.dim() - 1)
    if tuple(eps.shape) != expected:
        raise ValueError(f"eps must have shape {expected} (one weight per sample), got {tuple(eps.shape)}")
    eps = eps.detach()
    if detach:
        real, fake = real.detach(), fake.detach()
    x_hat = eps * real + (1 - eps) * fake
    if not x_hat.requires_grad:
        x_hat.requires_grad_(True)
    out = discriminator(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norms = torch.linalg.vector_norm(grad.flatten(1), dim=1)
    return ((norms - target) ** 2).mean()
