"""Phase-invariant features of PQMF bands at the latent frame rate: the front of the spectral encoder.

RAVE's encoder reads the waveform of each band: the same drum at another phase, pitch or sample start looks like
other numbers, and an encoder trained on one soundfont's 456 one-shots generalises poorly to other kits
(docs/twostage.md, "The encoder is the limit"). These features keep what the decoder's spectral losses judge and drop
the phase: for every latent frame and band, the log magnitude spectrum of a Hann window two frames long, and the log
energy of the frame's own samples in a few equal steps (where within the frame a hit starts, which the spectrum's
window blurs).

Computed as a strided convolution of each band with fixed kernels (the window's cosine and sine at each bin, and box
windows), so that it is a block like the others: a frame's window is centred on the frame (causal: it ends where the
frame ends), it reports ``span``, ``stride``, ``lookahead`` and ``lookbehind`` as :class:`~vaedemo.nn.blocks.Conv`
does, and it streams (:mod:`~vaedemo.nn.streaming`) by keeping its window's worth of past samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .fastconv import from_rows, to_rows

EPS_MAGNITUDE = 1e-5  # about -100 dB of a full-scale sine's magnitude: the floor of the log spectrum
EPS_ENERGY = 1e-7  # -70 dB of a full-scale signal's energy
MAX_STEPS = 8  # energy steps per frame (fewer where the frame has fewer band samples)


def energy_steps(frame: int) -> int:
    """How many equal steps a frame of ``frame`` band samples is cut into for its energies."""
    return math.gcd(frame, MAX_STEPS)


def feature_count(bands: int, frame: int) -> int:
    """Features per latent frame: each band's ``frame + 1`` spectrum bins and its energy steps."""
    return bands * (frame + 1 + energy_steps(frame))


def band_features(x: torch.Tensor, dft: torch.Tensor, boxes: torch.Tensor, stride: int,
                  eps_magnitude: float = EPS_MAGNITUDE, eps_energy: float = EPS_ENERGY) -> torch.Tensor:  # fmt: skip
    """The features of bands already padded (or a stream's chunk with its history in front): (B, bands, T) in, one
    frame per ``stride`` samples after the first window out, (B, bands x (bins + steps), frames). (The floors are
    arguments so that TorchScript, which reads no module-level floats, compiles it for a stream.)"""
    b, c, t = x.shape
    each = x.reshape(b * c, 1, t)  # every band through the same kernels
    spectrum = F.conv1d(each, dft, stride=stride)  # (B x bands, 2 x bins, frames): real parts, then imaginary
    real, imag = spectrum.chunk(2, dim=1)
    magnitude = torch.log(torch.sqrt(real.square() + imag.square()) + eps_magnitude)
    energy = torch.log(F.conv1d(each.square(), boxes, stride=stride) + eps_energy)
    return torch.cat([magnitude, 0.5 * energy], dim=1).reshape(b, -1, spectrum.shape[-1])  # 0.5: the log of an rms


class BandSpectra(nn.Module):
    """(B, bands, T) PQMF bands -> (B, :func:`feature_count`, T / frame) log spectra and energies, frame by frame."""

    def __init__(self, bands: int, frame: int, causal: bool = False):
        super().__init__()
        self.bands, self.frame = bands, frame
        self.kernel = 2 * frame
        self.stride = frame
        left = self.kernel - frame if causal else (self.kernel - frame) // 2
        self.pad = (left, self.kernel - frame - left)
        self.span = self.kernel - 1
        self.lookahead, self.lookbehind = self.pad[1], self.pad[0]
        n = torch.arange(self.kernel, dtype=torch.float64)
        window = 0.5 - 0.5 * torch.cos(2 * math.pi * (n + 0.5) / self.kernel)
        angle = 2 * math.pi * torch.arange(frame + 1, dtype=torch.float64)[:, None] * n / self.kernel
        gain = 2 / window.sum()  # a band's full-scale sine at a bin's frequency has magnitude 1
        dft = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window * gain  # (2 x bins, kernel): real, imaginary
        steps = energy_steps(frame)
        width = frame // steps
        boxes = torch.zeros(steps, self.kernel, dtype=torch.float64)
        for s in range(steps):  # the frame's own samples start where the window's left padding ends
            boxes[s, left + s * width : left + (s + 1) * width] = 1.0 / width
        # tables the module builds for itself, not weights (a bundle holds none of them)
        self.register_buffer("dft", dft.float()[:, None], persistent=False)
        self.register_buffer("boxes", boxes.float()[:, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, bands, T), or rows (B, bands, 1, T), in the same layout out."""
        rows = x.dim() == 4
        y = band_features(F.pad(from_rows(x) if rows else x, self.pad), self.dft, self.boxes, self.stride)
        return to_rows(y) if rows else y
