"""Discriminator: multi-scale waveform (MelGAN) + multi-period (HiFi-GAN) + optional multi-resolution STFT.

Every sub-discriminator returns a list of feature maps whose last element is the score map; the combined
discriminator returns one such list per sub-discriminator. Weight norm on every conv. Training only: the
discriminator is never part of an exported bundle.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..config import DiscriminatorConfig
from .fastconv import apply_conv1d, column_conv, fold_columns

Features = list[torch.Tensor]


class ScaleDiscriminator(nn.Module):
    def __init__(self, channels: int, capacity: int, downsample: int):
        super().__init__()
        self.downsample = downsample
        c = capacity
        self.layers = nn.ModuleList(
            [
                weight_norm(nn.Conv1d(channels, c, 15, padding=7)),
                weight_norm(nn.Conv1d(c, 4 * c, 41, stride=4, padding=20, groups=math.gcd(c, 4))),
                weight_norm(nn.Conv1d(4 * c, 16 * c, 41, stride=4, padding=20, groups=math.gcd(4 * c, 16))),
                weight_norm(nn.Conv1d(16 * c, 16 * c, 5, padding=2)),
            ]
        )
        self.out = weight_norm(nn.Conv1d(16 * c, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> Features:
        for _ in range(self.downsample):
            x = F.avg_pool1d(x, 4, stride=2, padding=1, count_include_pad=False)
        feats = []
        for layer in self.layers:
            x = F.leaky_relu(apply_conv1d(layer, x), 0.2)
            feats.append(x)
        feats.append(self.out(x))
        return feats


class PeriodDiscriminator(nn.Module):
    def __init__(self, channels: int, capacity: int, period: int):
        super().__init__()
        self.period = period
        chans = [channels, capacity, 4 * capacity, 16 * capacity]
        self.layers = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (5, 1), stride=(3, 1), padding=(2, 0))) for a, b in zip(chans[:-1], chans[1:])
        )
        self.post = weight_norm(nn.Conv2d(chans[-1], chans[-1], (5, 1), padding=(2, 0)))
        self.out = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> Features:
        """Feature maps of shape (B, period, channels, rows): the (k, 1) convs run as conv1d over each column."""
        b, c, t = x.shape
        x = F.pad(x, (0, (-t) % self.period), mode="reflect" if t > self.period else "constant")
        h = fold_columns(x.reshape(b, c, -1, self.period))
        feats = []
        for layer in [*self.layers, self.post]:
            h = F.leaky_relu(column_conv(layer, h), 0.2)
            feats.append(h.reshape(b, self.period, *h.shape[1:]))
        out = column_conv(self.out, h)
        feats.append(out.reshape(b, self.period, *out.shape[1:]))
        return feats


class STFTDiscriminator(nn.Module):
    """2-D convs over the complex spectrogram (real and imaginary parts as channels)."""

    def __init__(self, channels: int, capacity: int, n_fft: int):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        chans = [2 * channels, capacity, capacity, capacity]
        self.layers = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (3, 9), stride=(1, 2) if i else 1, padding=(1, 4)))
            for i, (a, b) in enumerate(zip(chans[:-1], chans[1:]))
        )
        self.out = weight_norm(nn.Conv2d(capacity, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> Features:
        b, c, t = x.shape
        spec = torch.stft(x.reshape(b * c, t), self.n_fft, self.n_fft // 4, window=self.window, return_complex=True)
        h = torch.view_as_real(spec).permute(0, 3, 2, 1)  # (B*C, 2, frames, freq)
        h = h.reshape(b, c * 2, h.shape[2], h.shape[3])
        feats = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            feats.append(h)
        feats.append(self.out(h))
        return feats


class Discriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig, channels: int):
        super().__init__()
        subs: list[nn.Module] = [ScaleDiscriminator(channels, cfg.capacity, i) for i in range(cfg.scales)]
        subs += [PeriodDiscriminator(channels, cfg.capacity, p) for p in cfg.periods]
        subs += [STFTDiscriminator(channels, cfg.capacity, n) for n in cfg.stft_sizes]
        if not subs:
            raise ValueError("the discriminator needs at least one scale, period or STFT size")
        self.subs = nn.ModuleList(subs)

    def forward(self, x: torch.Tensor) -> list[Features]:
        return [d(x) for d in self.subs]
