"""Encoder: PQMF bands -> residual dilated convs with strided downsampling -> posterior statistics.

Temporal mode gives (B, 2D, frames); single mode flattens the last conv map of a fixed-length clip into one vector
through a fully connected head and gives (B, 2D).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Config
from .blocks import Act, Conv, ResidualUnit


class Encoder(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        cin = cfg.data.channels * m.bands
        layers: list[nn.Module] = [Conv(cin, m.capacity, 7, causal=m.causal)]
        ch = m.capacity
        self.spans = [(6, 1)]  # (span in frames at this layer's input rate, stride so far) for receptive field
        stride = 1
        for r in m.ratios:
            for d in m.dilations:
                layers.append(ResidualUnit(ch, m.kernel_size, d, m.causal))
                self.spans.append((layers[-1].span, stride))
            layers += [Act(), Conv(ch, 2 * ch, 2 * r, stride=r, causal=m.causal)]
            self.spans.append((2 * r - 1, stride))
            stride *= r
            ch *= 2
        layers.append(Act())
        self.single = m.latent_mode == "single"
        out = m.single_channels if self.single else 2 * m.latent_size
        layers.append(Conv(ch, out, 3, causal=m.causal))
        self.spans.append((2, stride))
        self.net = nn.Sequential(*layers)
        if self.single:
            frames = cfg.data.clip_length // cfg.hop
            self.head = nn.Sequential(nn.Flatten(), Act(), nn.Linear(m.single_channels * frames, 2 * m.latent_size))

    @property
    def span(self) -> int:
        """Receptive field in PQMF-rate samples."""
        return sum(s * st for s, st in self.spans) + 1

    def forward(self, bands: torch.Tensor) -> torch.Tensor:
        h = self.net(bands)
        return self.head(h) if self.single else h
