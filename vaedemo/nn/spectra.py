"""Phase-invariant features of audio at the latent frame rate: the front of the spectral encoder.

RAVE's encoder reads the waveforms of the PQMF bands: the same drum at another phase, pitch or sample start looks
like other numbers, and an encoder trained on one soundfont's 456 one-shots generalises poorly to other kits
(docs/twostage.md, "The encoder is the limit"). These features keep what the decoder's spectral losses judge and drop
the phase. For every latent frame (``hop`` samples):

- a log-mel spectrum of a Hann window four frames long, centred on the frame (causal: ending where it ends): what
  sounds around the frame, finely resolved in frequency;
- a log-mel spectrum of the frame's own samples: what sounds in it;
- the log energy of the frame's own samples in a few equal steps, in up to 16 uniform frequency groups: where within
  the frame a hit starts, and in which register (the PQMF bands' envelopes, without the PQMF).

A stream (:mod:`~vaedemo.nn.streaming`) keeps the window's worth of past samples and computes the same features from
that history and the chunk (:func:`audio_features` is the one function of both). Like a strided conv, the block
reports ``span``, ``stride``, ``lookahead`` and ``lookbehind`` in input samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp import fitting_mel_filterbank
from .fastconv import from_rows, to_rows

LONG_MELS, SHORT_MELS = 128, 48
MAX_STEPS, MAX_GROUPS = 8, 16
EPS_MAGNITUDE = 1e-5  # the floor of the log-mel spectra (of unnormalised FFT magnitudes)
EPS_ENERGY = 1e-7  # -70 dB of a full-scale signal's energy
EPS_POWER = 1e-20  # under a magnitude's square root: its gradient at an exact zero (digital silence) stays finite
# the tables of :func:`audio_features`, in its order (a stream copies them by these names)
TABLES = ("long_window", "short_window", "step_window", "long_mels", "short_mels", "groups")


def energy_steps(hop: int) -> int:
    """How many equal steps a frame of ``hop`` samples is cut into for its energies."""
    return math.gcd(hop, MAX_STEPS)


def _groups(bins: int) -> torch.Tensor:
    """(groups, bins): each row averages one of up to :data:`MAX_GROUPS` uniform runs of FFT bins."""
    groups = min(MAX_GROUPS, bins)
    table = torch.zeros(groups, bins)
    for g, run in enumerate(torch.arange(bins).tensor_split(groups)):
        table[g, run] = 1.0 / len(run)
    return table


def _stft_power(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """|STFT|^2 of (N, T) audio, frames every ``hop`` from sample 0, no padding: (N, bins, frames). Squared parts
    rather than the complex ``abs``, which took 2.5x as long here (346 against 136 us for one clip's long spectrum,
    one thread) and which the energies would square again."""
    spectrum = torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True)
    return spectrum.real.square() + spectrum.imag.square()


def audio_features(x: torch.Tensor, left: int, hop: int, long_window: torch.Tensor, short_window: torch.Tensor,
                   step_window: torch.Tensor, long_mels: torch.Tensor, short_mels: torch.Tensor, groups: torch.Tensor,
                   eps_magnitude: float = EPS_MAGNITUDE, eps_energy: float = EPS_ENERGY,
                   eps_power: float = EPS_POWER) -> torch.Tensor:  # fmt: skip
    """The features of (B, C, T) audio already padded (or a stream's chunk with its history in front): one frame per
    ``hop`` samples whose long window starts at that frame's first sample, the frame's own samples ``left`` samples
    further; (B, C x features, frames). (The floors are arguments: TorchScript reads no module-level floats.)"""
    b, c, t = x.shape
    flat = x.reshape(b * c, t)
    n_long = long_window.shape[0]
    frames = (t - n_long) // hop + 1
    own = flat[:, left : left + frames * hop]
    long = torch.log(long_mels @ (_stft_power(flat, n_long, hop, long_window) + eps_power).sqrt() + eps_magnitude)
    short = torch.log(short_mels @ (_stft_power(own, hop, hop, short_window) + eps_power).sqrt() + eps_magnitude)
    n_step = step_window.shape[0]
    power = _stft_power(own, n_step, n_step, step_window) / (n_step * n_step)  # (N, bins, frames x steps)
    energy = 0.5 * torch.log(groups @ power + eps_energy)  # the log of an rms
    steps = energy.shape[-1] // frames
    energy = energy.reshape(b * c, -1, frames, steps).transpose(2, 3).reshape(b * c, -1, frames)
    return torch.cat([long, short, energy], dim=1).reshape(b, -1, frames)


class AudioSpectra(nn.Module):
    """(B, C, T) audio, T a multiple of ``hop`` -> (B, C x :attr:`features`, T / hop): log-mel spectra and energies."""

    def __init__(self, channels: int, sample_rate: int, hop: int, causal: bool = False):
        super().__init__()
        self.hop = self.stride = hop
        n_long = 4 * hop
        left = n_long - hop if causal else (n_long - hop) // 2
        self.pad = (left, n_long - hop - left)
        self.span = n_long - 1
        self.lookahead, self.lookbehind = self.pad[1], self.pad[0]
        n_step = hop // energy_steps(hop)
        # tables the module builds for itself, not weights (a bundle holds none of them)
        tables = (torch.hann_window(n_long), torch.hann_window(hop), torch.ones(n_step),
                  torch.from_numpy(fitting_mel_filterbank(sample_rate, n_long, LONG_MELS)),
                  torch.from_numpy(fitting_mel_filterbank(sample_rate, hop, SHORT_MELS)), _groups(n_step // 2 + 1))
        for name, table in zip(TABLES, tables, strict=True):
            self.register_buffer(name, table.float(), persistent=False)
        per_channel = len(self.long_mels) + len(self.short_mels) + len(self.groups) * energy_steps(hop)
        self.features = channels * per_channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T), or rows (B, C, 1, T), in the same layout out."""
        rows = x.dim() == 4
        y = audio_features(F.pad(from_rows(x) if rows else x, self.pad), self.pad[0], self.hop, self.long_window,
                           self.short_window, self.step_window, self.long_mels, self.short_mels, self.groups)
        return to_rows(y) if rows else y
