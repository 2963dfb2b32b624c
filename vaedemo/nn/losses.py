"""Training losses: multi-scale STFT distance, hinge adversarial losses and feature matching.

Multi-scale STFT (RAVE): for each FFT size n (hop n/4, Hann window), relative L2 of the linear magnitudes plus L1 of
the log magnitudes, summed over sizes. It applies to the full-band waveform and, optionally, to the PQMF bands.
"""

from __future__ import annotations

import torch
from torch import nn

from .discriminator import Features


class MultiScaleSTFT(nn.Module):
    def __init__(self, sizes: list[int], eps: float = 1e-7):
        super().__init__()
        self.sizes = list(sizes)
        self.eps = eps
        for n in self.sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def magnitude(self, x: torch.Tensor, n: int) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        spec = torch.stft(
            flat, n, n // 4, window=getattr(self, f"window_{n}"), center=True, pad_mode="constant", return_complex=True
        )
        return spec.abs()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distance between target ``x`` and estimate ``y`` of shape (B, C, T): a scalar."""
        total = x.new_zeros(())
        for n in self.sizes:
            sx, sy = self.magnitude(x, n), self.magnitude(y, n)
            linear = torch.linalg.norm(sx - sy) / (torch.linalg.norm(sx) + self.eps)
            log = (torch.log(sx + self.eps) - torch.log(sy + self.eps)).abs().mean()
            total = total + linear + log
        return total


def hinge_discriminator(real: list[Features], fake: list[Features]) -> torch.Tensor:
    loss = real[0][-1].new_zeros(())
    for r, f in zip(real, fake):
        loss = loss + torch.relu(1 - r[-1]).mean() + torch.relu(1 + f[-1]).mean()
    return loss / len(real)


def hinge_generator(fake: list[Features]) -> torch.Tensor:
    return sum(-f[-1].mean() for f in fake) / len(fake)


def feature_matching(real: list[Features], fake: list[Features]) -> torch.Tensor:
    """Mean over every feature map (score maps excluded) of the L1 distance relative to the real map's scale."""
    terms = []
    for r, f in zip(real, fake):
        for fr, ff in zip(r[:-1], f[:-1]):
            fr = fr.detach()
            terms.append((fr - ff).abs().mean() / (fr.abs().mean() + 1e-7))
    return torch.stack(terms).mean()
