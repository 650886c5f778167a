"""Image GAN networks: shapes, ranges, the papers' layer lists (parameter counts), init and the gradient penalty."""

import math

import pytest
import torch
from torch import nn

from minmax_envs.images.nets import (
    dcgan_discriminator,
    dcgan_generator,
    gradient_penalty,
    init_weights_,
    resnet_discriminator,
    resnet_generator,
)

GENERATORS = [dcgan_generator, resnet_generator]
DISCRIMINATORS = [dcgan_discriminator, resnet_discriminator]


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------------------------------------------------------
# Shapes and ranges
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("resolution, width, channels", [(8, 4, 3), (16, 3, 1), (32, 2, 2)])
def test_generator_maps_noise_to_images_in_minus_one_one(make, resolution, width, channels):
    torch.manual_seed(0)
    g = make(z_dim=5, width=width, channels=channels, resolution=resolution)
    init_weights_(g, std=1.0)  # large weights push tanh into saturation: the bound must still hold
    x = g(torch.randn(4, 5))
    assert x.shape == (4, channels, resolution, resolution)
    assert x.abs().max() <= 1.0
    assert x.std() > 0.1  # not a constant image
    assert (g.z_dim, g.width, g.channels, g.resolution) == (5, width, channels, resolution)
    g.eval()  # batch norm in eval mode handles a batch of one
    assert g(torch.randn(1, 5)).shape == (1, channels, resolution, resolution)


@pytest.mark.parametrize("make", DISCRIMINATORS)
@pytest.mark.parametrize("resolution, width, channels", [(8, 4, 3), (16, 3, 1), (32, 2, 2)])
def test_discriminator_maps_images_to_one_unbounded_value_each(make, resolution, width, channels):
    torch.manual_seed(0)
    d = make(width=width, channels=channels, resolution=resolution)
    init_weights_(d, std=1.0)
    out = d(5 * torch.randn(4, channels, resolution, resolution))
    assert out.shape == (4,)
    assert torch.isfinite(out).all()
    assert out.abs().max() > 1.0  # no sigmoid / tanh on the output
    assert (d.width, d.channels, d.resolution) == (width, channels, resolution)


@pytest.mark.parametrize("resolution, k", [(8, 1), (16, 2), (32, 3), (64, 4)])
def test_the_number_of_sampling_stages_follows_the_resolution(resolution, k):
    def count(net, cls):
        return sum(isinstance(m, cls) for m in net.modules())

    convt, conv = nn.ConvTranspose2d, nn.Conv2d
    # DCGAN: k transposed convolutions up, k strided convolutions down.
    assert count(dcgan_generator(z_dim=2, width=1, resolution=resolution), convt) == k
    assert count(dcgan_discriminator(width=1, resolution=resolution), conv) == k
    # ResNet G: k up-sampling blocks of two transposed convolutions (residual 4x4 and shortcut 1x1) each.
    assert count(resnet_generator(z_dim=2, width=1, resolution=resolution), convt) == 2 * k
    # ResNet D: first block (3 convs), max(k - 2, 0) down blocks (3 convs), two plain blocks (2 convs).
    assert count(resnet_discriminator(width=1, resolution=resolution), conv) == 3 + 3 * max(k - 2, 0) + 4


# ---------------------------------------------------------------------------------------------------------------
# Parameter counts of the papers' defaults (construction only, no forward pass)
# ---------------------------------------------------------------------------------------------------------------

def test_default_resnet_parameter_counts_match_the_layer_list():
    # F = 128, z = 128, 3 channels, 32x32. A conv/linear layer has in*out*kh*kw + out parameters; BatchNorm has 2C.
    F, z = 128, 128
    conv3 = F * F * 9 + F  # 147,584
    convt4 = F * F * 16 + F  # 262,272
    one_by_one = F * F + F  # 16,512
    bn = 2 * F  # 256
    # G: Linear(z -> 16F) + 3 up blocks [BN, ConvT 4x4, BN, Conv 3x3, shortcut ConvT 1x1] + BN + Conv3x3(F -> 3)
    linear = z * 16 * F + 16 * F  # 264,192
    up_block = bn + convt4 + bn + conv3 + one_by_one  # 426,880
    g_expected = linear + 3 * up_block + bn + (F * 3 * 9 + 3)
    assert g_expected == 1_548_547
    assert n_params(resnet_generator()) == g_expected
    # D: first block [Conv3x3(3 -> F), Conv3x3(F -> F, stride 2), shortcut Conv1x1(3 -> F)]
    #    + 1 down block [2 Conv3x3, shortcut Conv1x1] + 2 plain blocks [2 Conv3x3] + Linear(F -> 1)
    first = (3 * F * 9 + F) + conv3 + (3 * F + F)  # 151,680
    d_expected = first + (2 * conv3 + one_by_one) + 2 * (2 * conv3) + (F + 1)
    assert d_expected == 1_053_825
    assert n_params(resnet_discriminator()) == d_expected


def test_default_dcgan_parameter_counts_match_the_layer_list():
    # F = 64, z = 100, 3 channels, 32x32.
    F, z = 64, 100
    # G: Linear(z -> 4F*16) + BN1d(4F*16) + ConvT(4F -> 2F) + BN + ConvT(2F -> F) + BN + ConvT(F -> 3), all 4x4.
    g_expected = ((z * 64 * F + 64 * F) + 2 * 64 * F + (4 * F * 2 * F * 16 + 2 * F) + 4 * F
                  + (2 * F * F * 16 + F) + 2 * F + (F * 3 * 16 + 3))
    assert g_expected == 1_080_899
    assert n_params(dcgan_generator()) == g_expected
    # D: Conv(3 -> F) + Conv(F -> 2F) + BN + Conv(2F -> 4F) + BN, all 4x4 + Linear(4F*16 -> 1).
    d_expected = ((3 * F * 16 + F) + (F * 2 * F * 16 + 2 * F) + 4 * F + (2 * F * 4 * F * 16 + 4 * F) + 8 * F
                  + (64 * F + 1))
    assert d_expected == 663_745
    assert n_params(dcgan_discriminator()) == d_expected


def test_resnet_discriminator_has_no_batch_norm_and_generator_has_one_per_half_block():
    bns = [m for m in resnet_generator(z_dim=2, width=2, resolution=16).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 2 * 2 + 1
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                   for m in resnet_discriminator(width=2, resolution=16).modules())


# ---------------------------------------------------------------------------------------------------------------
# Initialization
# ---------------------------------------------------------------------------------------------------------------

def test_init_weights_draws_normal_weights_zero_biases_and_unit_batch_norm_scales():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(300, 300), nn.BatchNorm1d(5000), nn.Conv2d(8, 8, 3), nn.ConvTranspose2d(8, 8, 4))
    for p in net.parameters():  # start from values the init must overwrite
        nn.init.constant_(p, 3.0)
    assert init_weights_(net) is net
    lin, bn, conv, convt = net
    w = lin.weight  # 90,000 draws: the sample std is within 1% of 0.02 with overwhelming probability
    assert abs(w.std().item() - 0.02) < 0.02 * 0.02
    assert abs(w.mean().item()) < 3 * 0.02 / math.sqrt(w.numel())
    assert abs(bn.weight.mean().item() - 1.0) < 3 * 0.02 / math.sqrt(5000)
    assert abs(bn.weight.std().item() - 0.02) < 0.02 * 0.05
    for m in (conv, convt):
        assert abs(m.weight.std().item() - 0.02) < 0.02 * 0.25
    for m in (lin, bn, conv, convt):
        assert torch.count_nonzero(m.bias) == 0


def test_init_weights_uses_the_given_generator_and_std():
    def init(seed, std=0.02):
        torch.manual_seed(seed)  # the global state must not matter when a generator is given
        net = resnet_generator(z_dim=3, width=2, resolution=8)
        return init_weights_(net, std=std, generator=torch.Generator().manual_seed(7))

    a, b = init(0), init(1)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    big = init(0, std=0.5)
    assert big[0].weight.std() > 0.3


# ---------------------------------------------------------------------------------------------------------------
# Gradient penalty
# ---------------------------------------------------------------------------------------------------------------

class LinearCritic(nn.Module):
    """D(x) = <w, x> + c: its input gradient is w at every point."""

    def __init__(self, shape):
        super().__init__()
        self.lin = nn.Linear(math.prod(shape), 1).double()

    def forward(self, x):
        return self.lin(x.flatten(1)).squeeze(1)


@pytest.mark.parametrize("target", [1.0, 0.3, 0.0])
def test_gradient_penalty_of_a_linear_critic_is_norm_minus_target_squared(target):
    torch.manual_seed(0)
    shape = (2, 3, 3)
    d = LinearCritic(shape)
    real, fake = torch.randn(5, *shape, dtype=torch.float64), torch.randn(5, *shape, dtype=torch.float64)
    eps = torch.rand(5, 1, 1, 1, dtype=torch.float64)
    expected = (d.lin.weight.norm().item() - target) ** 2
    assert gradient_penalty(d, real, fake, eps, target=target).item() == pytest.approx(expected, rel=1e-12)


def test_gradient_penalty_matches_an_explicit_per_sample_autograd_computation():
    torch.manual_seed(0)
    d = resnet_discriminator(width=3, channels=2, resolution=8).double()
    init_weights_(d, std=0.3)
    real, fake = torch.randn(4, 2, 8, 8, dtype=torch.float64), torch.randn(4, 2, 8, 8, dtype=torch.float64)
    eps = torch.rand(4, 1, 1, 1, dtype=torch.float64)
    terms = []
    for i in range(4):  # one sample at a time: no reliance on summing over the batch
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(d(x).sum(), x)
        terms.append((g.flatten().norm() - 1.0) ** 2)
    expected = torch.stack(terms).mean()
    got = gradient_penalty(d, real, fake, eps)
    assert got.shape == ()
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)
    # the interpolation weight matters: eps = 1 evaluates at the real points, eps = 0 at the fake ones
    assert gradient_penalty(d, real, fake, torch.ones_like(eps)).item() != pytest.approx(
        gradient_penalty(d, real, fake, torch.zeros_like(eps)).item(), rel=1e-6)


def test_gradient_penalty_backpropagates_into_the_discriminator_only():
    torch.manual_seed(0)
    g = resnet_generator(z_dim=3, width=3, channels=2, resolution=8)
    d = resnet_discriminator(width=3, channels=2, resolution=8)
    init_weights_(d, std=0.3)
    fake = g(torch.randn(4, 3))
    real = torch.rand(4, 2, 8, 8) * 2 - 1
    penalty = 10.0 * gradient_penalty(d, real, fake, torch.rand(4, 1, 1, 1))
    penalty.backward()
    # Every weight gets a finite, non-zero gradient (second-order terms, create_graph=True). The output bias c
    # does not change grad_x D, so it is not in the penalty's graph (grad None); the other biases are (through
    # the ReLU masks) but the penalty is piecewise constant in them (grad 0).
    out_bias = d[-2].bias
    for name, p in d.named_parameters():
        if p is out_bias:
            assert p.grad is None
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert (p.grad.abs().sum() > 0) == name.endswith("weight"), name
    assert all(p.grad is None for p in g.parameters())  # a discriminator loss term only


def test_gradient_penalty_runs_through_a_dcgan_discriminator():
    torch.manual_seed(0)
    d = dcgan_discriminator(width=2, channels=1, resolution=8)
    real, fake = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    penalty = gradient_penalty(d, real, fake, torch.rand(3, 1, 1, 1))
    penalty.backward()
    assert torch.isfinite(penalty) and d[0].weight.grad is not None


# ---------------------------------------------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", GENERATORS + DISCRIMINATORS)
@pytest.mark.parametrize("resolution", [0, 4, 12, 24, 28, 7, -8, 32.0, True, "32"])
def test_resolution_must_be_four_times_a_power_of_two_at_least_eight(make, resolution):
    with pytest.raises(ValueError, match="resolution"):
        make(resolution=resolution)


@pytest.mark.parametrize("make", GENERATORS + DISCRIMINATORS)
@pytest.mark.parametrize("name, value", [("width", 0), ("width", -3), ("width", 2.5), ("channels", 0)])
def test_non_positive_width_or_channels_raise(make, name, value):
    with pytest.raises(ValueError, match=name):
        make(resolution=8, **{name: value})


@pytest.mark.parametrize("make", GENERATORS)
def test_non_positive_z_dim_raises(make):
    with pytest.raises(ValueError, match="z_dim"):
        make(z_dim=0, resolution=8)


def test_gradient_penalty_rejects_mismatched_shapes():
    d = LinearCritic((1, 2, 2))
    x = torch.zeros(3, 1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="eps"):
        gradient_penalty(d, x, x, torch.rand(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="eps"):
        gradient_penalty(d, x, x, torch.rand(1, 1, 1, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(d, x, x[:2], torch.rand(3, 1, 1, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="target"):
        gradient_penalty(d, x, x, torch.rand(3, 1, 1, 1, dtype=torch.float64), target=float("nan"))
