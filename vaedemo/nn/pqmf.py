"""Pseudo-QMF multiband analysis/synthesis (cosine-modulated filter bank with a Kaiser prototype).

The prototype low-pass is a Kaiser-windowed sinc whose cutoff is chosen so that its autocorrelation vanishes at the
non-zero multiples of 2M (the Kaiser design of Lin & Vaidyanathan): analysis followed by synthesis is then close to
the identity (>= 40 dB SNR on white noise away from the edges).
Filters are centred, so the pair adds no delay, or causal (for causal models), so it lags by taps - 1.

Shapes: analysis (B, C, T) -> (B, C * M, T / M), T a multiple of M; synthesis is the inverse.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from scipy.signal import firwin, kaiser_beta
from torch import nn

from .fastconv import interleave_phases, polyphase_weight, transposed_as_phases


def _prototype(bands: int, attenuation: float) -> np.ndarray:
    beta = kaiser_beta(attenuation)
    # length from Kaiser's formula at a transition width of about pi / (2M), rounded to 2M * k + 1 (odd, centred)
    n = int(math.ceil((attenuation - 8) / (2.285 * (math.pi / (2 * bands)))))
    taps = 2 * bands * max(1, math.ceil(n / (2 * bands))) + 1

    def objective(cutoff: float) -> float:
        h = firwin(taps, cutoff, window=("kaiser", beta), scale=False)
        r = np.correlate(h, h, mode="full")
        center = len(r) // 2
        lags = np.arange(2 * bands, center + 1, 2 * bands)
        return float(np.sum(r[center + lags] ** 2) + np.sum(r[center - lags] ** 2))

    res = minimize_scalar(objective, bounds=(0.5 / bands * 0.5, 0.5 / bands * 1.5), method="bounded")
    return firwin(taps, res.x, window=("kaiser", beta), scale=False)


def _filter_bank(bands: int, attenuation: float) -> tuple[np.ndarray, np.ndarray]:
    h = _prototype(bands, attenuation)
    n = np.arange(len(h)) - (len(h) - 1) / 2
    k = np.arange(bands)[:, None]
    phase = (-1.0) ** k * math.pi / 4
    arg = (2 * k + 1) * math.pi / (2 * bands) * n[None]
    analysis = 2 * h[None] * np.cos(arg + phase)
    synthesis = 2 * h[None] * np.cos(arg - phase)
    return analysis, synthesis


class PQMF(nn.Module):
    """M-band PQMF; ``bands == 1`` is the identity."""

    def __init__(self, bands: int, attenuation: float = 100.0, causal: bool = False):
        super().__init__()
        if bands < 1 or bands & (bands - 1):
            raise ValueError(f"PQMF bands must be a power of two, got {bands}")
        self.bands, self.causal = bands, causal
        if bands == 1:  # (every table, unused: TorchScript compiles the branches a band count never takes)
            for name in ("h_analysis", "h_synthesis", "h_analysis_phases", "h_phases"):
                self.register_buffer(name, torch.ones(1, 1, 1), persistent=False)
            return
        a, s = _filter_bank(bands, attenuation)
        # analysis: strided conv1d with M output channels; synthesis: polyphase transposed conv with stride M (the
        # same as zero-stuffing then filtering, without multiplying the zeros), gain M folded into the filters
        self.register_buffer("h_analysis", torch.tensor(a[:, None, ::-1].copy(), dtype=torch.float32), persistent=False)
        self.register_buffer("h_synthesis", torch.tensor(bands * s[:, None, :], dtype=torch.float32), persistent=False)
        self.register_buffer("h_analysis_phases", polyphase_weight(self.h_analysis, bands), persistent=False)
        # the synthesis runs as the M phases of one stride-1 conv: a CPU runs the strided transposed conv with one
        # output channel ~8x slower (see nn.fastconv)
        self.register_buffer("h_phases", transposed_as_phases(self.h_synthesis, bands).contiguous(), persistent=False)

    @property
    def taps(self) -> int:
        return self.h_analysis.shape[-1]

    @property
    def delay(self) -> int:
        """Samples by which synthesis(analysis(x)) lags x: 0 centred, taps - 1 causal (two linear-phase filters)."""
        return self.taps - 1 if self.causal and self.bands > 1 else 0

    @property
    def lookahead(self) -> int:
        """Samples a centred filter reads ahead (half its taps; 0 causal): the analysis pads that much on the right,
        the synthesis crops that much on the left."""
        return self.taps // 2 if not self.causal and self.bands > 1 else 0

    @property
    def lookbehind(self) -> int:
        """Samples the analysis filter reads before a band sample's own position (its left padding)."""
        if self.bands == 1:
            return 0
        return self.taps - 1 if self.causal else self.taps // 2

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C * M, T / M); channel c's bands are rows c*M .. c*M + M - 1."""
        if self.bands == 1:
            return x
        b, c, t = x.shape
        if t % self.bands:
            raise ValueError(f"PQMF analysis needs a length divisible by {self.bands}, got {t}")
        m = self.bands
        pad = (self.lookbehind, self.lookahead + (-(t + self.lookbehind + self.lookahead)) % m)
        # the strided conv as a stride-1 conv over the input's M phases (fastconv.polyphase_conv1d), which as rows
        # (B, M, 1, T / M) are a view of the padded samples, phases side by side in memory as oneDNN takes them:
        # 1 s at 44.1 kHz 404 -> 233 us, two threads
        phases = F.pad(x.reshape(b * c, t), pad).reshape(b * c, -1, m).transpose(1, 2).unsqueeze(2)
        h = self.h_analysis_phases.to(x.dtype)  # the filters follow the audio (half precision under autocast, float64)
        y = F.conv2d(phases, h.unsqueeze(2))[:, :, 0, : t // m]
        return y.reshape(b, c * m, t // m)

    def synthesis(self, y: torch.Tensor) -> torch.Tensor:
        """(B, C * M, T / M) -> (B, C, T)."""
        if self.bands == 1:
            return y
        b, cm, n = y.shape
        c = cm // self.bands
        q = self.h_phases.shape[-1]
        phases = F.conv1d(F.pad(y.reshape(b * c, self.bands, n), (q - 1, q - 1)), self.h_phases.to(y.dtype))
        full = interleave_phases(phases, 1, self.bands)  # the transposed conv's whole output
        start = 0 if self.causal else self.taps // 2  # causal: keep the filter's lag instead of trimming it
        return full[..., start : start + n * self.bands].reshape(b, c, n * self.bands)
