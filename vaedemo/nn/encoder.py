"""Encoder: audio -> a conv stack -> a conv map at the frame rate -> the latent mode's head.

Two stacks (``model.encoder``): ``wave``, RAVE's residual dilated convs over the PQMF bands' waveforms with strided
downsampling; ``spectral``, log-mel spectra and energies of the audio per frame (:mod:`~vaedemo.nn.spectra`, no
phase) through residual dilated convs at the frame rate, which generalises further from few training sounds. Either
gives ``out_channels`` at sr / hop; the head (from the latent mode) turns that map into posterior statistics: the
identity for a latent time series (B, 2D, frames), a fully connected layer for one vector (B, 2D).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Act, Conv, ResidualUnit, stack_lookbehind, stack_span
from .fastconv import from_rows, to_rows
from .spectra import AudioSpectra


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


def spectral_stack(channels: int, sample_rate: int, hop: int, out_channels: int, width: int, dilations: list[int],
                   kernel_size: int, causal: bool) -> list[nn.Module]:  # fmt: skip
    """Audio spectra per frame, then ``width`` channels of residual units at the frame rate."""
    front = AudioSpectra(channels, sample_rate, hop, causal)
    layers: list[nn.Module] = [front, Conv(front.features, width, 3, causal=causal)]
    layers += [ResidualUnit(width, kernel_size, d, causal) for d in dilations]
    return layers + [Act(), Conv(width, out_channels, 3, causal=causal)]


class Encoder(nn.Module):
    """``layers``: a stack of :func:`wave_stack` (reads PQMF bands) or :func:`spectral_stack` (reads the audio)."""

    def __init__(self, layers: list[nn.Module], head: nn.Module | None = None):
        super().__init__()
        self.net = nn.Sequential(*layers)
        self.reads_audio = isinstance(layers[0], AudioSpectra)
        self.head = head if head is not None else nn.Identity()

    @property
    def span(self) -> int:
        """Receptive field in samples of its input (PQMF-rate samples, or audio samples where it reads the audio)."""
        return stack_span(self.net)

    @property
    def lookbehind(self) -> int:
        """How far before the start of its frame a frame's input begins, in samples of its input (as :attr:`span`)."""
        return stack_lookbehind(self.net)

    def conv_map(self, x: torch.Tensor) -> torch.Tensor:
        """PQMF bands (B, bands, T), or the audio (B, C, T) where the stack reads it (:attr:`reads_audio`) -> the
        conv stack's map (B, out_channels, frames), computed as rows (faster); contiguous (small at the frame rate), so
        that a posterior sample's ``randn_like`` draws as before."""
        return from_rows(self.net(to_rows(x))).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv_map(x))
