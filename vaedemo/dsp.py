"""Signal-processing pieces shared by the losses, the metrics and the plots: mel scale, mel filterbank, windows.

Mel: Slaney mel scale with Slaney area normalisation (librosa's default ``htk=False, norm="slaney"``, the filters of
HiFi-GAN / BigVGAN mel losses). Windows: periodic Hann. Everything here is pure (cached by its arguments).
"""

from __future__ import annotations

import functools

import numpy as np
import torch


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(f < 1000.0, f * 3.0 / 200.0, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / logstep)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp(logstep * (m - 15.0)))


@functools.lru_cache(maxsize=32)
def _filterbank_cached(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower = (freqs[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - freqs[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    empty = np.flatnonzero(weights.max(axis=1) <= 0)
    if empty.size:
        raise ValueError(
            f"{empty.size} of {n_mels} mel filters contain no FFT bin (n_fft={n_fft} at {sample_rate} Hz); "
            "use fewer mels or a larger n_fft."
        )
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters as float32 ``(n_mels, n_fft // 2 + 1)``.

    Built like ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)`` (defaults).
    Raises ``ValueError`` for a band outside ``[0, sample_rate / 2]`` or when a filter would hold no FFT bin.

    >>> mel_filterbank(16000, 512, 40).shape
    (40, 257)
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0 + 1e-9:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={fmin}, fmax={fmax}, sr={sample_rate}.")
    if n_mels < 1 or n_fft < 2:
        raise ValueError(f"need n_mels >= 1 and n_fft >= 2, got n_mels={n_mels}, n_fft={n_fft}.")
    return _filterbank_cached(int(sample_rate), int(n_fft), int(n_mels), float(fmin), fmax).copy()


@functools.lru_cache(maxsize=32)
def mel_filterbank_tensor(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    return torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels))


@functools.lru_cache(maxsize=16)
def hann_window(n_fft: int) -> torch.Tensor:
    """Periodic Hann window (float32, CPU), cached: the one window of every STFT in vaedemo."""
    return torch.hann_window(n_fft, periodic=True, dtype=torch.float32)


def fitting_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """The filters of the largest of n_mels, n_mels / 2, ... whose every filter holds an FFT bin at this size
    (small FFTs at low rates cannot resolve many mel bands)."""
    while True:
        try:
            return mel_filterbank(sample_rate, n_fft, n_mels)
        except ValueError:
            if n_mels <= 1:
                raise
            n_mels //= 2


def stft_magnitude(x: torch.Tensor, n_fft: int, window: torch.Tensor, pad_mode: str = "constant") -> torch.Tensor:
    """Differentiable magnitude STFT of (..., T) audio, hop n_fft / 4, centred frames: (N, bins, frames) with the
    leading dims flattened. ``window`` on the input's device (a module buffer, or :func:`hann_window`)."""
    flat = x.reshape(-1, x.shape[-1])
    spec = torch.stft(flat, n_fft, n_fft // 4, window=window, center=True, pad_mode=pad_mode, return_complex=True)
    return spec.abs()
