"""Encoder: PQMF bands -> a conv stack -> a conv map at the frame rate -> the latent mode's head.

Two stacks (``model.encoder``): ``wave``, RAVE's residual dilated convs over the bands' waveforms with strided
downsampling; ``spectral``, each band's log spectrum and energies per frame (:mod:`~vaedemo.nn.spectra`, no phase)
through residual dilated convs at the frame rate, which generalises further from few training sounds. Either gives
``out_channels`` at sr / hop; the head (from the latent mode) turns that map into posterior statistics: the identity
for a latent time series (B, 2D, frames), a fully connected layer for one vector (B, 2D).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import Act, Conv, ResidualUnit, stack_lookbehind, stack_span
from .fastconv import from_rows, to_rows
from .spectra import BandSpectra, feature_count


def wave_stack(in_channels: int, out_channels: int, capacity: int, ratios: list[int], dilations: list[int],
               kernel_size: int, causal: bool) -> list[nn.Module]:  # fmt: skip
    """RAVE's: residual units at each rate, each stride doubling the channels."""
    layers: list[nn.Module] = [Conv(in_channels, capacity, 7, causal=causal)]
    ch = capacity
    for r in ratios:
        layers += [ResidualUnit(ch, kernel_size, d, causal) for d in dilations]
        layers += [Act(), Conv(ch, 2 * ch, 2 * r, stride=r, causal=causal)]
        ch *= 2
    return layers + [Act(), Conv(ch, out_channels, 3, causal=causal)]


def spectral_stack(in_channels: int, out_channels: int, width: int, frame: int, dilations: list[int],
                   kernel_size: int, causal: bool) -> list[nn.Module]:  # fmt: skip
    """Band spectra per frame (``frame`` band samples), then ``width`` channels of residual units at the frame rate."""
    layers: list[nn.Module] = [BandSpectra(in_channels, frame, causal),
                               Conv(feature_count(in_channels, frame), width, 3, causal=causal)]  # fmt: skip
    layers += [ResidualUnit(width, kernel_size, d, causal) for d in dilations]
    return layers + [Act(), Conv(width, out_channels, 3, causal=causal)]


class Encoder(nn.Module):
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
        kind: str = "wave",
        width: int = 256,
    ):
        super().__init__()
        if kind == "spectral":
            frame = math.prod(ratios)
            layers = spectral_stack(in_channels, out_channels, width, frame, dilations, kernel_size, causal)
        else:
            layers = wave_stack(in_channels, out_channels, capacity, ratios, dilations, kernel_size, causal)
        self.net = nn.Sequential(*layers)
        self.head = head if head is not None else nn.Identity()

    @property
    def span(self) -> int:
        """Receptive field in PQMF-rate samples (summed from the blocks)."""
        return stack_span(self.net)

    @property
    def lookbehind(self) -> int:
        """How far before the start of its frame a frame's input begins, in PQMF-rate samples."""
        return stack_lookbehind(self.net)

    def conv_map(self, bands: torch.Tensor) -> torch.Tensor:
        """PQMF bands (B, bands, T) -> the conv stack's map (B, out_channels, frames), computed as rows (faster);
        contiguous (small at the frame rate), so that a posterior sample's ``randn_like`` draws as before."""
        return from_rows(self.net(to_rows(bands))).contiguous()

    def forward(self, bands: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv_map(bands))
