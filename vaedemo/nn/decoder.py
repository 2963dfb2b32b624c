"""Decoder: the latent mode's head -> transposed-conv upsampling with residual dilated units -> PQMF bands.

Mirrors the encoder. The head (from the latent mode) turns a latent into the conv map the stack starts from. The
output bands are a waveform modulated by a positive amplitude (RAVE v2's ``mod_sigmoid``), plus, when
``noise_bands`` > 0, filtered noise predicted from the last hidden map (:mod:`~vaedemo.nn.noise`, RAVE's noise branch),
and, when ``partials`` > 0, a bank of steady sinusoids at fixed pitches predicted from the latent trajectory
(:mod:`~vaedemo.nn.partials`: partials off the frame rate's harmonics, which the conv stack cannot make).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import Act, Conv, ConvUp, ResidualUnit, ResizeUp, stack_span
from .noise import NoiseGenerator
from .partials import PartialBank


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
        partials: int = 0,
    ):
        """``out_channels`` bands of waveform (each with its own amplitude channel internally); ``noise_bands`` > 0
        adds a noise branch whose filters have that many magnitudes, one set per ``noise_hop`` band samples;
        ``upsampler`` is ``transposed`` (:class:`ConvUp`, RAVE's) or ``resize`` (:class:`ResizeUp`); ``partials`` > 0
        adds that many fixed-pitch sinusoids per band (:class:`PartialBank`)."""
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
        # the partial bank reads the head's output (the trajectory): one amplitude per sinusoid and frame, relative to
        # the stack's bands
        self.partials = PartialBank(in_channels, out_channels, partials, self.upsampling, causal=causal) if partials else None

    @property
    def span(self) -> int:
        """Receptive field in PQMF-rate samples (summed from the blocks; the noise branch's stack where it reaches
        further than the final conv it runs beside)."""
        span = stack_span(self.net, self.upsampling)
        if self.noise is not None:
            span += max(0, stack_span(self.noise.net) - stack_span(self.net[-1:]))
        if self.partials is not None:  # the bands' envelope over a frame and the frame before (the ramp), its own stack
            span = max(span + 2 * self.upsampling, (stack_span(self.partials.net) + 1) * self.upsampling)
        return span

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.bands(self.head(z))

    def bands(self, h: torch.Tensor) -> torch.Tensor:
        """The PQMF bands from the head's output (a latent trajectory): the conv stack, without the head (stage
        two of a two-stage model decodes trajectories through it)."""
        bands, partials = self.parts(h)
        return bands if partials is None else bands + partials

    def parts(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`bands` in its two parts: the conv stack's (with its noise), and the partial bank's (None without
        one), which training may compare with the input as an incoherent sum (see ``train.incoherent_partials``)."""
        bands = self._conv_bands(h)
        return bands, (self.partials(h, bands) if self.partials is not None else None)

    def _conv_bands(self, h: torch.Tensor) -> torch.Tensor:
        """The conv stack's bands (its waveform times its amplitude, plus the noise branch's noise)."""
        if self.noise is None:
            wave, amp = self.net(h).chunk(2, dim=1)
            return wave * mod_sigmoid(amp)
        for layer in self.net[:-1]:
            h = layer(h)
        wave, amp = self.net[-1](h).chunk(2, dim=1)
        return wave * mod_sigmoid(amp) + self.noise(h)
