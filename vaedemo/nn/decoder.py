"""Decoder: latent -> transposed-conv upsampling with residual dilated units -> PQMF bands.

Mirrors the encoder. Single mode maps the vector back to a conv map through a fully connected layer. The output
bands are a waveform modulated by a positive amplitude (RAVE v2's ``mod_sigmoid``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Config
from .blocks import Act, Conv, ConvUp, ResidualUnit


def mod_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return 2 * torch.sigmoid(x) ** 2.3 + 1e-7


class Decoder(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        ch = m.capacity * 2 ** len(m.ratios)
        self.single = m.latent_mode == "single"
        if self.single:
            self.frames = cfg.data.clip_length // cfg.hop
            self.head = nn.Linear(m.latent_size, m.single_channels * self.frames)
            cin = m.single_channels
        else:
            cin = m.latent_size
        layers: list[nn.Module] = [Conv(cin, ch, 3, causal=m.causal)]
        total = 1
        for r in m.ratios:
            total *= r
        stride = total
        self.spans = [(2, stride)]
        for r in reversed(m.ratios):
            layers += [Act(), ConvUp(ch, ch // 2, r, causal=m.causal)]
            self.spans.append((2, stride))
            stride //= r
            ch //= 2
            for d in m.dilations:
                layers.append(ResidualUnit(ch, m.kernel_size, d, m.causal))
                self.spans.append((layers[-1].span, stride))
        layers += [Act(), Conv(ch, 2 * cfg.data.channels * m.bands, 7, causal=m.causal)]
        self.spans.append((6, 1))
        self.net = nn.Sequential(*layers)

    @property
    def span(self) -> int:
        """Receptive field in PQMF-rate samples."""
        return sum(s * st for s, st in self.spans) + 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.single:
            z = self.head(z).reshape(z.shape[0], -1, self.frames)
        wave, amp = self.net(z).chunk(2, dim=1)
        return wave * mod_sigmoid(amp)
