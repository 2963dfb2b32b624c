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


class _CentredSTFTMagnitude(torch.autograd.Function):
    """|torch.stft| (centred frames, zero padding, hop n / 4) with a backward written out: the chain rule through the
    magnitude in one pass (gradient x spectrum / magnitude), the adjoint of the real FFT, then an overlap-add of four
    shifted copies instead of the generic index_add of torch.stft's backward. Autograd's own chain (real and imaginary
    parts, squares, a floor, a square root, then torch.stft's backward) made a dozen passes over every spectrogram;
    on CPU the spectral losses' elementwise work, not their FFTs, was half of a VAE training step."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, window: torch.Tensor, n_fft: int) -> torch.Tensor:
        spec = torch.stft(x, n_fft, n_fft // 4, window=window, center=True, pad_mode="constant", return_complex=True)
        parts = torch.view_as_real(spec)  # squares and a root: 2.5x faster than complex abs (hypot) on CPU
        magnitude = parts[..., 0].square().add_(parts[..., 1].square()).sqrt_()
        ctx.save_for_backward(window, spec, magnitude)
        ctx.n_fft, ctx.length = n_fft, x.shape[-1]
        return magnitude

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        window, spec, magnitude = ctx.saved_tensors
        n, hop, length = ctx.n_fft, ctx.n_fft // 4, ctx.length
        # d|z| / d(re, im) = (re, im) / |z|; a zero bin (spectrum exactly 0) gets a zero gradient, as for abs. The
        # adjoint of rfft is n * irfft of the gradient with the bins that irfft counts twice halved: one real scale.
        twice = torch.full((spec.shape[1], 1), 0.5, dtype=magnitude.dtype, device=magnitude.device)
        twice[0] = twice[-1] = 1.0
        scale = (grad / magnitude.clamp_min(1e-30)).mul_(twice)
        frames = torch.fft.irfft(spec * scale, n=n, dim=1).mul_(n * window[:, None])  # (N, n, frames)
        batch, _, count = frames.shape
        quarters = frames.transpose(1, 2).reshape(batch, count, 4, hop)
        out = frames.new_zeros(batch, (count + 3) * hop)
        for j in range(4):  # hop = n / 4: each sample lies in exactly four frames
            out[:, j * hop : (j + count) * hop] += quarters[:, :, j].reshape(batch, count * hop)
        return out[:, n // 2 : n // 2 + length], None, None


BUZZ_BINS = 8  # an STFT of 8 hops: the multiples of sample_rate / hop fall on every 8th bin, the midpoints 4 bins away


def frame_rate_lines(hop: int, sample_rate: int, max_hz: float) -> np.ndarray:
    """The bins of an STFT of ``BUZZ_BINS * hop`` samples at the multiples of ``sample_rate / hop`` up to ``max_hz``
    whose midpoint above still lies in the spectrum: where the evaluation's frame buzz
    (:func:`vaedemo.metrics.hop_buzz_db`) and the loss on it (:class:`vaedemo.nn.losses.FrameBuzz`) read the comb."""
    lines = np.arange(1, int(max_hz * hop / sample_rate) + 1) * BUZZ_BINS
    return lines[lines + BUZZ_BINS // 2 <= BUZZ_BINS * hop // 2]


def stft_magnitude(x: torch.Tensor, n_fft: int, window: torch.Tensor, pad_mode: str = "constant") -> torch.Tensor:
    """Differentiable magnitude STFT of (..., T) audio, hop n_fft / 4, centred frames: (N, bins, frames) with the
    leading dims flattened. ``window`` on the input's device (a module buffer, or :func:`hann_window`). The gradient
    at a zero bin is zero, as for ``abs``."""
    dtype = torch.promote_types(x.dtype, torch.float32)  # no half-precision FFTs; float64 stays float64
    flat, window = x.reshape(-1, x.shape[-1]).to(dtype), window.to(dtype)
    if pad_mode != "constant" or n_fft % 4:
        spec = torch.stft(flat, n_fft, n_fft // 4, window=window, center=True, pad_mode=pad_mode, return_complex=True)
        return spec.abs()
    return _CentredSTFTMagnitude.apply(flat, window, n_fft)
