"""The discriminator's CPU-friendly convolutions compute what the plain modules compute: same features, same losses
and the same gradients (for the discriminator's parameters and for the generated audio), to float tolerance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaedemo.config import DiscriminatorConfig
from vaedemo.nn.discriminator import Discriminator, PeriodDiscriminator, ScaleDiscriminator
from vaedemo.nn.fastconv import polyphase_conv1d, single_channel_conv1d
from vaedemo.nn.losses import feature_matching, hinge_discriminator, hinge_generator


def plain_features(d: Discriminator, x: torch.Tensor) -> list[list[torch.Tensor]]:
    """The sub-discriminators evaluated with the modules' own convolutions (the reference maths)."""
    out = []
    for sub in d.subs:
        if isinstance(sub, ScaleDiscriminator):
            h = x
            for _ in range(sub.downsample):
                h = F.avg_pool1d(h, 4, stride=2, padding=1, count_include_pad=False)
            feats = []
            for layer in sub.layers:
                h = F.leaky_relu(layer(h), 0.2)
                feats.append(h)
            out.append([*feats, sub.out(h)])
        elif isinstance(sub, PeriodDiscriminator):
            b, c, t = x.shape
            h = F.pad(x, (0, (-t) % sub.period), mode="reflect").reshape(b, c, -1, sub.period)
            feats = []
            for layer in [*sub.layers, sub.post]:
                h = F.leaky_relu(layer(h), 0.2)
                feats.append(h.permute(0, 3, 1, 2))  # the (B, period, C, rows) layout of the fast path
            out.append([*feats, sub.out(h).permute(0, 3, 1, 2)])
        else:
            out.append(sub(x))
    return out


def losses_and_grads(d: Discriminator, features_of, real: torch.Tensor, fake: torch.Tensor):
    fake = fake.clone().requires_grad_()
    d.zero_grad()
    loss_d = hinge_discriminator(features_of(d, real), features_of(d, fake.detach()))
    loss_d.backward()
    grads_d = [p.grad.clone() for p in d.parameters()]
    r, f = features_of(d, real), features_of(d, fake)
    loss_g = hinge_generator(f) + 10 * feature_matching(r, f)
    grad_fake = torch.autograd.grad(loss_g, fake)[0]
    return loss_d.detach(), loss_g.detach(), grads_d, grad_fake


@pytest.mark.parametrize("channels", [1, 2])
def test_fast_discriminator_matches_the_plain_convolutions(channels):
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(capacity=4, scales=2, periods=[2, 3, 5], stft_sizes=[64]), channels)
    real, fake = 0.3 * torch.randn(3, channels, 2000), 0.3 * torch.randn(3, channels, 2000)
    fast = losses_and_grads(d, lambda m, x: m(x), real, fake)
    plain = losses_and_grads(d, plain_features, real, fake)
    assert torch.allclose(fast[0], plain[0], rtol=1e-5) and torch.allclose(fast[1], plain[1], rtol=1e-5)
    for a, b in zip(fast[2], plain[2]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert torch.allclose(fast[3], plain[3], rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("length", [1000, 1001, 1003, 37])
def test_polyphase_and_single_channel_convs_equal_conv1d(length):
    torch.manual_seed(1)
    strided = torch.nn.Conv1d(8, 16, 41, stride=4, padding=20, groups=4)
    x = torch.randn(2, 8, length)
    assert torch.allclose(polyphase_conv1d(strided, x), strided(x), atol=1e-5)
    single = torch.nn.Conv1d(1, 6, 15, padding=7)
    x1 = torch.randn(2, 1, length)
    assert torch.allclose(single_channel_conv1d(single, x1), single(x1), atol=1e-5)
