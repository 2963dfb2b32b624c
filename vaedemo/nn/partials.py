"""A partial bank: fixed-frequency sinusoids with running phase, added to the decoder's PQMF bands.

Why: the transposed-conv stack decodes a latent held still to a waveform periodic in the hop (512 samples), so every
steady partial it makes lies on a multiple of the frame rate (86.13 Hz at 44.1 kHz); a pitched hit (timpani, toms,
cowbells, woodblocks) comes back on the nearest harmonic of it, a median 86-274 cents off (README, "Pitched hits ring
on the frame rate's harmonics"). No latent can fix that. This branch can: each PQMF band carries ``partials``
sinusoids at fixed frequencies spread evenly over the band (band-domain frequency (i + 1/2) / partials of the band's
Nyquist; the synthesis filter bank puts band k's sinusoids evenly over the k-th slice of the spectrum), whose phase
runs on with the absolute sample index, so a partial held over many frames is one steady sinusoid at its own pitch.

A small conv stack reads the latent trajectory (the decoder head's output) and predicts each sinusoid's amplitude
once per frame, relative to the conv stack's output: the rms of its band in that frame (:func:`band_envelope`,
without gradient). Where the stack is silent the bank is silent too, so the bank is never pushed towards silence by
the silence of tails and gaps (which, with free amplitudes, silenced it everywhere before it had learned which
pitches to play); it only shapes the spectrum of what the stack makes. Within a frame the amplitude ramps linearly
from the previous frame's value to the current one (the first frame's from 0), so partials fade in and out without
clicks and frame k depends on frames <= k of the stack's output only.

Frequencies are pi (2i + 1) / (2 partials) radians per band sample, so every sinusoid repeats after 4 partials band
samples: one precomputed table (bands, partials, 4 partials) read at the absolute index modulo its period gives any
stretch of any stream exactly, without the rounding of a large phase. Each sinusoid starts at its own fixed phase
(a golden-ratio sequence), so the bank does not add up to a click at sample 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Act, Conv


def partial_table(bands: int, partials: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(bands, partials, 4 partials): one period of each band's sinusoids, sin(pi (2i + 1) n / (2 partials) + phase)."""
    period = 4 * partials
    n = torch.arange(period, dtype=torch.int64)
    odd = 2 * torch.arange(partials, dtype=torch.int64) + 1
    cycles = (odd[:, None] * n[None]) % period  # exact: the phase in units of 2 pi / period
    golden = (math.sqrt(5) - 1) / 2
    index = torch.arange(bands * partials, dtype=torch.float64).reshape(bands, partials, 1)
    phase = 2 * math.pi * torch.frac(index * golden)
    return torch.sin(2 * math.pi * cycles.to(torch.float64)[None] / period + phase).to(dtype)


def relative_amplitude(x: torch.Tensor) -> torch.Tensor:
    """The net's output -> amplitudes >= 0 relative to the band's rms: softplus, shifted so that a fresh bank starts
    at about 0.05 per sinusoid (all of a band's together about 11 dB under the band with 64 of them), above the conv
    stack's output at a pitched hit's missed partial (about 24 dB under the input's)."""
    return F.softplus(x - 3.0)


def frame_amplitudes(x: torch.Tensor, bands: int, partials: int, envelope: torch.Tensor) -> torch.Tensor:
    """The net's output (B, bands * partials, frames) and the bands' envelope (B, bands, frames) -> each sinusoid's
    amplitude (B, bands, partials, frames)."""
    a = relative_amplitude(x)
    return a.reshape(a.shape[0], bands, partials, a.shape[-1]) * envelope.unsqueeze(2)


def band_envelope(bands: torch.Tensor, frame: int) -> torch.Tensor:
    """(B, bands, frames * frame) -> each band's rms in each frame (B, bands, frames), without gradient: the level
    the bank's amplitudes are relative to (the stack is not asked to get louder so that the bank can)."""
    b, k, n = bands.shape
    return bands.detach().reshape(b, k, n // frame, frame).square().mean(-1).sqrt()


def frame_table(table: torch.Tensor, frame: int) -> torch.Tensor:
    """The table cut into frames: (bands, phases, partials, frame), where frame k of a stream starts at sample
    k * frame and so at table phase k mod ``phases`` (phases = the table's period over its gcd with ``frame``)."""
    bands, partials, period = table.shape
    phases = period // math.gcd(period, frame)
    n = torch.arange(phases * frame) % period
    return table[..., n].reshape(bands, partials, phases, frame).permute(0, 2, 1, 3).contiguous()


def bank_table(bands: int, partials: int, frame: int, dtype: torch.dtype = torch.float32,
               chunk: int = 1 << 22) -> torch.Tensor:  # fmt: skip
    """``frame_table(partial_table(bands, partials), frame)``, the same values, written into the result a band and
    a few partials at a time (about ``chunk`` values): built whole, the float64 table and its copies took about 20
    bytes a value (a bundle's 198 M values within the tables' bound: 3.5 GB), this takes the result's 4."""
    period = 4 * partials
    phases = period // math.gcd(period, frame)
    out = torch.empty(bands, phases, partials, frame, dtype=dtype)
    if out.is_meta:  # only its shape is asked for (vaedemo.bundle.expected_shapes)
        return out
    n = torch.arange(phases * frame, dtype=torch.int64) % period
    golden = (math.sqrt(5) - 1) / 2
    step = max(1, chunk // len(n))
    for k in range(bands):
        for first in range(0, partials, step):
            i = torch.arange(first, min(first + step, partials), dtype=torch.int64)
            cycles = ((2 * i + 1)[:, None] * n[None]) % period  # as partial_table's, at the frames' phases
            phase = 2 * math.pi * torch.frac((k * partials + i).to(torch.float64)[:, None] * golden)
            sines = torch.sin(2 * math.pi * cycles.to(torch.float64) / period + phase)
            out[k, :, first : first + len(i)] = sines.reshape(len(i), phases, frame).permute(1, 0, 2)
    return out


def _per_frame(amplitudes: torch.Tensor, frames_table: torch.Tensor, first_frame: int) -> torch.Tensor:
    """Amplitudes (B, bands, partials, frames) held over each frame -> the bank's sum (B, bands, frames, frame): the
    frames padded to whole periods of the table so that the sum is one batched matrix product per (band, phase)."""
    b, bands, partials, frames = amplitudes.shape
    phases, frame = frames_table.shape[1], frames_table.shape[-1]
    lead = (first_frame % phases + phases) % phases  # >= 0 under Python's and TorchScript's rules alike
    total = -(-(lead + frames) // phases) * phases
    a = F.pad(amplitudes, (lead, total - lead - frames)).reshape(b, bands, partials, total // phases, phases)
    sums = torch.einsum("bkiqp,kpim->bkqpm", a, frames_table.to(amplitudes.dtype))
    return sums.reshape(b, bands, total, frame)[:, :, lead : lead + frames]


def render_partials(amplitudes: torch.Tensor, frames_table: torch.Tensor, first_frame: int,
                    previous: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Frame amplitudes (B, bands, partials, frames) -> the bank's sum per band (B, bands, frames * frame), the
    first frame being frame ``first_frame`` of the stream (0 offline; may be negative). Frame k's amplitudes ramp
    linearly from frame k - 1's (``previous`` (B, bands, partials) before the first frame: 0 offline) to its own."""
    before = torch.cat([previous.unsqueeze(-1), amplitudes[..., :-1]], dim=-1)
    frame = frames_table.shape[-1]
    ramp = torch.arange(1, frame + 1, dtype=amplitudes.dtype, device=amplitudes.device) / frame
    y = _per_frame(before, frames_table, first_frame) + _per_frame(amplitudes - before, frames_table, first_frame) * ramp
    return y.flatten(-2)


class PartialBank(nn.Module):
    """Latent trajectory (B, channels, frames) and the conv stack's bands -> sinusoids (B, bands, frames * frame).

    ``frame`` is band-rate samples per latent frame (the decoder's total upsampling); ``net`` is a conv of 3 frames
    (causal when ``causal``) and a pointwise conv to one relative amplitude per sinusoid."""

    def __init__(self, channels: int, bands: int, partials: int, frame: int, hidden: int = 128, causal: bool = False):
        super().__init__()
        self.bands, self.partials, self.frame = bands, partials, frame
        self.net = nn.Sequential(Conv(channels, hidden, 3, causal=causal), Act(), Conv(hidden, bands * partials, 1))
        self.register_buffer("frames_table", bank_table(bands, partials, frame), persistent=False)

    @property
    def period(self) -> int:
        """Band-rate samples after which the bank's sinusoids repeat in step with the frames."""
        return self.frames_table.shape[1] * self.frame

    def amplitudes(self, h: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
        """(B, channels, frames) and the bands' envelope (B, bands, frames) -> (B, bands, partials, frames)."""
        return frame_amplitudes(self.net(h), self.bands, self.partials, envelope)

    def forward(self, h: torch.Tensor, conv_bands: torch.Tensor) -> torch.Tensor:
        a = self.amplitudes(h, band_envelope(conv_bands, self.frame))
        return render_partials(a, self.frames_table, 0, torch.zeros_like(a[..., 0]))
