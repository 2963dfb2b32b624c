"""Decoder: the latent mode's head -> transposed-conv upsampling with residual dilated units -> PQMF bands.

Mirrors the encoder. The head (from the latent mode) turns a latent into the conv map the stack starts from. The
output bands are a waveform modulated by a positive amplitude (RAVE v2's ``mod_sigmoid``), plus, when
``noise_bands`` > 0, filtered noise predicted from the last hidden map (:mod:`~vaedemo.nn.noise`, RAVE's noise branch).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import Act, Conv, ConvUp, ResidualUnit, ResizeUp, stack_span
from .noise import NoiseGenerator


def mod_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return 2 * torch.sigmoid(x) ** 2.3 + 1e-7


class Decoder(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        capacity: int,
        ratios: list[int],
        dilations: list[int],
        kernel_size: int = 3,
        causal: bool = False,
        head: nn.Module | None = None,
        noise_bands: int = 0,
        noise_hop: int = 1,
        upsampler: str = "transposed",
    ):
        """``out_channels`` bands of waveform (each with its own amplitude channel internally); ``noise_bands`` > 0
        adds a noise branch whose filters have that many magnitudes, one set per ``noise_hop`` band samples;
        ``upsampler`` is ``transposed`` (:class:`ConvUp`, RAVE's) or ``resize`` (:class:`ResizeUp`)."""
        super().__init__()
        self.head = head if head is not None else nn.Identity()
        ch = capacity * 2 ** len(ratios)
        layers: list[nn.Module] = [Conv(in_channels, ch, 3, causal=causal)]
        self.upsampling = math.prod(ratios)
        up = ResizeUp if upsampler == "resize" else ConvUp
        for r in reversed(ratios):
            layers += [Act(), up(ch, ch // 2, r, causal=causal)]
            ch //= 2
            layers += [ResidualUnit(ch, kernel_size, d, causal) for d in dilations]
        layers += [Act(), Conv(ch, 2 * out_channels, 7, causal=causal)]
        self.net = nn.Sequential(*layers)
        # the noise branch reads the hidden map the final conv reads (after its activation)
        self.noise = NoiseGenerator(ch, out_channels, noise_bands, noise_hop, causal) if noise_bands > 0 else None

    @property
    def span(self) -> int:
        """Receptive field in PQMF-rate samples (summed from the blocks; the noise branch's stack where it reaches
        further than the final conv it runs beside)."""
        span = stack_span(self.net, self.upsampling)
        if self.noise is not None:
            span += max(0, stack_span(self.noise.net) - stack_span(self.net[-1:]))
        return span

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.bands(self.head(z))

    def bands(self, h: torch.Tensor) -> torch.Tensor:
        """The PQMF bands from the head's output (a latent trajectory): the conv stack, without the head (stage
        two of a two-stage model decodes trajectories through it)."""
        if self.noise is None:
            wave, amp = self.net(h).chunk(2, dim=1)
            return wave * mod_sigmoid(amp)
        for layer in self.net[:-1]:
            h = layer(h)
        wave, amp = self.net[-1](h).chunk(2, dim=1)
        return wave * mod_sigmoid(amp) + self.noise(h)
