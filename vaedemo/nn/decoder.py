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
from .fastconv import from_rows, to_rows
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
        noise_relative: bool = False,
    ):
        """``out_channels`` bands of waveform (each with its own amplitude channel internally); ``noise_bands`` > 0
        adds a noise branch whose filters have that many magnitudes, one set per ``noise_hop`` band samples;
        ``upsampler`` is ``transposed`` (:class:`ConvUp`, RAVE's) or ``resize`` (:class:`ResizeUp`); ``partials`` > 0
        adds that many fixed-pitch sinusoids per band (:class:`PartialBank`); ``noise_relative`` sets the noise's
        level relative to the stack's bands (:mod:`~vaedemo.nn.noise`)."""
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
        self.noise = (NoiseGenerator(ch, out_channels, noise_bands, noise_hop, causal, noise_relative, self.upsampling)
                      if noise_bands > 0 else None)  # fmt: skip
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
            if self.noise.relative:  # the stack's bands over the frame before each sample
                span += self.noise.window
        if self.partials is not None:  # the bands' envelope over a frame and the frame before (the ramp), its own stack
            span = max(span + 2 * self.upsampling, (stack_span(self.partials.net) + 1) * self.upsampling)
        return span

    def forward(self, z: torch.Tensor, frames: int | None = None, offset: int = 0) -> torch.Tensor:
        """Latents -> PQMF bands; ``frames``: only the first that many frames of the head's trajectory; ``offset``:
        see :meth:`parts`."""
        h = self.head(z)
        return self.bands(h if frames is None else h[..., :frames], offset)

    def bands(self, h: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """The PQMF bands from the head's output (a latent trajectory): the conv stack, without the head (stage
        two of a two-stage model decodes trajectories through it). ``offset``: see :meth:`parts`."""
        stack, followers = self.parts(h, offset)
        return sum(followers, stack)

    def parts(self, h: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """:meth:`bands` in parts: the conv stack's (with RAVE's absolute noise), and those of the branches that follow
        its bands' level, relative noise and the partial bank (none, one or both), which training may compare with
        the input as an incoherent sum beside it (see ``train.incoherent_partials``). ``offset``: the band sample
        of a longer signal that the first output sample is (a chunk's start), where the noise is drawn from."""
        hidden = to_rows(h)  # the stack runs as rows (faster, see fastconv.to_rows); the noise branch reads them too
        for layer in self.net[:-1]:
            hidden = layer(hidden)
        wave, amp = from_rows(self.net[-1](hidden)).chunk(2, dim=1)
        stack = wave * mod_sigmoid(amp)
        followers: list[torch.Tensor] = []
        if self.noise is not None:
            noise = self.noise(hidden, stack, offset)
            if self.noise.relative:
                followers.append(noise)
            else:
                stack = stack + noise
        if self.partials is not None:
            followers.append(self.partials(h, stack))
        return stack, followers
