"""Encoder: PQMF bands -> residual dilated convs with strided downsampling -> a conv map -> the latent mode's head.

The conv stack gives ``out_channels`` at sr / hop; the head (from the latent mode) turns that map into posterior
statistics: the identity for a latent time series (B, 2D, frames), a fully connected layer for one vector (B, 2D).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Act, Conv, ResidualUnit


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
    ):
        super().__init__()
        layers: list[nn.Module] = [Conv(in_channels, capacity, 7, causal=causal)]
        ch = capacity
        self.spans = [(6, 1)]  # (span in frames at this layer's input rate, stride so far) for receptive field
        stride = 1
        for r in ratios:
            for d in dilations:
                layers.append(ResidualUnit(ch, kernel_size, d, causal))
                self.spans.append((layers[-1].span, stride))
            layers += [Act(), Conv(ch, 2 * ch, 2 * r, stride=r, causal=causal)]
            self.spans.append((2 * r - 1, stride))
            stride *= r
            ch *= 2
        layers += [Act(), Conv(ch, out_channels, 3, causal=causal)]
        self.spans.append((2, stride))
        self.net = nn.Sequential(*layers)
        self.head = head if head is not None else nn.Identity()

    @property
    def span(self) -> int:
        """Receptive field in PQMF-rate samples."""
        return sum(s * st for s, st in self.spans) + 1

    def forward(self, bands: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(bands))
