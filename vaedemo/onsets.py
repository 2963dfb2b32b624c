"""Onsets of percussive audio, and cutting a performance into hits and laying decoded hits back.

A one-shot model (one latent vector per clip of about a second) knows single hits, not loops: a loop cut into fixed
clips puts hits anywhere in a clip, which the model never saw. So a long input is cut at its onsets instead; each
hit (from its onset to the next, at most one clip) is encoded as a one-shot, and the decoded hits are laid back at
their onset times, each faded out shortly after the next onset so that tails do not pile up.

Onset strength is the spectral flux of log magnitudes (positive changes, summed over bins and channels: a mono mix
would cancel what two channels in opposite polarity share), peak-picked against a moving median with a minimum gap;
a peak counts where the energy of some band also rises by RISE_DB (a steady sound's flux has peaks too, where nothing
starts).
Where no onset comes for more than a clip while the input still sounds (a held note, a pad, a long roll the detector
takes as one), cuts every clip length keep it from going silent (:func:`cover_long_gaps`). Plain numpy/scipy: no
learned detector, nothing downloaded.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import find_peaks, stft

HOP = 256  # at 44.1 kHz (and 48): 5.8 ms; other rates scale both to about the same durations (stft_size)
N_FFT = 1024
MIN_GAP_S = 0.05  # two onsets closer than this are one hit (flams, double triggers)
FADE_S = 0.03  # a decoded hit fades out over this long after the next onset
RISE_DB = 12.0  # a hit raises the energy of some band this much (a steady sound's bands fluctuate by a few dB)
RISE_FLOOR_DB = -40.0  # bands this far under a frame's total are not read for a rise
SOUNDING_DB = -50.0  # a stretch whose peak is this far below the input's is silent (a silent clip decodes at ~-33 dBFS)


def stft_size(sample_rate: int) -> tuple[int, int]:
    """(window, hop) in samples at ``sample_rate``: N_FFT and HOP at 44.1 kHz, at other rates the power of two
    nearest the same duration (and a quarter of it), so that frames span about the same time (at 16 kHz 1024 samples
    would be 64 ms: two hits 50 ms apart would share frames)."""
    n_fft = int(2 ** round(np.log2(N_FFT * sample_rate / 44100)))
    n_fft = min(max(n_fft, 64), 4 * N_FFT)
    return n_fft, n_fft * HOP // N_FFT


CHUNK_FRAMES = 4096  # STFT frames computed at a time (24 s at 44.1 kHz): the whole STFT of a 600 s input took 2.6 GB


def frame_count(length: int, n_fft: int, hop: int) -> int:
    """How many frames the STFT of ``length`` samples has, its end zero-padded to a whole frame (scipy's count with
    ``padded=True``; an input shorter than a window, which scipy refuses, is one frame)."""
    return max(0, -(-(length - n_fft) // hop)) + 1


def magnitude_chunks(x: np.ndarray, n_fft: int, hop: int, chunk: int | None = None):
    """|STFT| of ``x`` (samples, channels), frame k from sample k * hop, the end zero-padded, ``chunk`` frames at a
    time (default :data:`CHUNK_FRAMES` frames of all channels together, so that 16 channels take what one does:
    they had taken 16 times as much, +1.2 GB; what the whole STFT gives, to FFT rounding, within a chunk's memory):
    yields (channels, bins, frames) blocks in order."""
    chunk = chunk or max(1, CHUNK_FRAMES // x.shape[1])  # (read at the call: a test makes chunks small)
    total = frame_count(len(x), n_fft, hop)
    for first in range(0, total, chunk):
        last = min(first + chunk, total)
        segment = x[first * hop : (last - 1) * hop + n_fft]
        segment = np.pad(segment, ((0, (last - 1 - first) * hop + n_fft - len(segment)), (0, 0)))  # the input's end
        yield np.abs(stft(segment.T, nperseg=n_fft, noverlap=n_fft - hop, boundary=None, padded=False)[2])


def onset_features(x: np.ndarray, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """What the detector reads of ``x`` (samples,) or (samples, channels), a few numbers a frame, the STFT taken a
    chunk at a time (:func:`magnitude_chunks`): the onset strength, the flux of log magnitudes per frame (its rises,
    summed over bins and channels; (frames,) >= 0, frame 0 repeating frame 1's), and :func:`band_powers`."""
    x = x[:, None] if x.ndim == 1 else x
    flux, bands, previous = [], [], None
    for mag in magnitude_chunks(x, n_fft, hop):
        logmag = np.log1p(100.0 * mag)
        joined = logmag if previous is None else np.concatenate([previous, logmag], axis=-1)  # across the chunk edge
        flux.append(np.maximum(np.diff(joined, axis=-1), 0.0).sum(axis=(0, 1)))
        bands.append(band_powers(mag))
        previous = logmag[..., -1:]
    flux = np.concatenate(flux)
    return np.concatenate([[flux[0] if flux.size else 0.0], flux]), np.concatenate(bands, axis=-1)


def band_powers(mag: np.ndarray) -> np.ndarray:
    """The power of |STFT| magnitudes (channels, bins, frames), channels summed, in seven bands, (bands, frames): bins
    1-7, then six of an octave each from bin 8 (344 Hz at 44.1 kHz)."""
    power = (mag**2).sum(axis=0)  # (bins, frames), channels summed
    edges = np.unique(np.concatenate([[1], np.geomspace(8, power.shape[0], 7).astype(int)]))
    return np.add.reduceat(power[: edges[-1]], edges[:-1], axis=0)


def band_rise_db(bands: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """How far the energy rises at each of ``frames`` in the band (of :func:`band_powers`) where it rises most, in
    dB: the loudest of the frame and the next two against the quietest of frames k - 6 .. k - 3 (whose windows end
    before the attack that peaks the flux at frame k enters; at 44.1 kHz 12-35 ms earlier; the quietest, so that the
    tail of a hit 50 ms before, still decaying there, does not hide this one). A band more than RISE_FLOOR_DB under
    the frame's total is left out: a steady tone's far leakage rises and falls by tens of dB as its partials move."""
    tiny = 1e-12 * max(float(bands.max()), 1e-30)
    out = np.empty(len(frames))
    for i, k in enumerate(frames):
        before = bands[:, max(0, k - 6) : max(1, k - 2)].min(axis=1)
        after = bands[:, k : k + 3].max(axis=1)
        heard = after >= after.sum() * 10 ** (RISE_FLOOR_DB / 10)
        out[i] = 10 * np.log10((after[heard] + tiny) / (before[heard] + tiny)).max()
    return out


def detect_onsets(x: np.ndarray, sample_rate: int, sensitivity: float = 1.0) -> np.ndarray:
    """Sample positions of the onsets of ``x`` (samples,) or (samples, channels), sorted; 0 is always one (the start
    of the input)."""
    n_fft, hop = stft_size(sample_rate)
    flux, bands = onset_features(x, n_fft, hop)
    if flux.size < 3 or flux.max() <= 0:
        return np.array([0], dtype=np.int64)
    baseline = median_filter(flux, size=int(0.5 * sample_rate / hop) | 1, mode="nearest")
    threshold = baseline + sensitivity * flux.std()
    peaks, _ = find_peaks(flux, height=threshold, distance=max(1, int(MIN_GAP_S * sample_rate / hop)))
    # the flux's threshold is relative to its own spread, which a steady sound (noise, a held chord) makes tiny, so
    # that its fluctuations pass it; a hit also raises the energy in some band by RISE_DB
    peaks = peaks[band_rise_db(bands, peaks) >= RISE_DB]
    # frame k spans samples [k * hop, k * hop + n_fft): its flux peaks when the attack reaches the window's centre;
    # cut half a hop before that, so that the attack is never clipped
    positions = np.maximum(0, peaks * hop + n_fft // 2 - hop // 2)
    positions = positions[positions < len(x)]
    return np.unique(np.concatenate([[0], positions])).astype(np.int64)


def cover_long_gaps(onsets: np.ndarray, x: np.ndarray, clip_length: int) -> np.ndarray:
    """``onsets`` and, in every gap longer than a clip, a cut every ``clip_length`` samples where the next clip of
    ``x`` still sounds (its peak within SOUNDING_DB of the input's): a hit holds at most a clip, and what follows it
    before the next onset would be silent in the output."""
    floor = np.abs(x).max() * 10 ** (SOUNDING_DB / 20)
    out = []
    for start, nxt in zip(onsets, _next_onsets(onsets, len(x))):
        out.append(start)
        for cut in range(int(start) + clip_length, int(nxt), clip_length):
            if floor > 0 and np.abs(x[cut : min(cut + clip_length, nxt)]).max() >= floor:
                out.append(cut)
    return np.asarray(out, dtype=np.int64)


def hit_segments(onsets: np.ndarray, length: int, clip_length: int) -> list[tuple[int, int]]:
    """(start, end) of each hit: from its onset to the next onset, at most ``clip_length`` samples."""
    ends = _next_onsets(onsets, length)
    return [(int(s), int(min(e, s + clip_length))) for s, e in zip(onsets, ends)]


def kept_lengths(onsets: np.ndarray, length: int, clip_length: int, sample_rate: int) -> np.ndarray:
    """How many first samples of each decoded hit (clip_length long) :func:`lay_hits` uses: up to the end of its
    fade after the next onset, within the clip and the input (a decoder need not make the rest)."""
    nexts = _next_onsets(onsets, length)
    return np.minimum(np.minimum(nexts - onsets + _fade(sample_rate), length - onsets), clip_length)


def _fade(sample_rate: int) -> int:
    return max(1, int(FADE_S * sample_rate))


def _next_onsets(onsets: np.ndarray, length: int) -> np.ndarray:
    """Where each hit's successor starts: the next onset, the input's end for the last hit."""
    return np.append(onsets[1:], length)


def lay_hits(hits: list[np.ndarray], onsets: np.ndarray, length: int, sample_rate: int) -> np.ndarray:
    """Decoded hits (samples, C) placed at their onsets; each fades out over FADE_S after the next onset. A hit may
    be cut to its :func:`kept_lengths`: what lies past them is silenced anyway."""
    channels = hits[0].shape[1]
    out = np.zeros((length, channels), np.float32)
    fade = _fade(sample_rate)
    nexts = _next_onsets(onsets, length)
    for hit, start, nxt in zip(hits, onsets, nexts):
        n = min(len(hit), length - start)
        gain = np.ones(n, np.float32)
        keep = int(nxt - start)
        if keep < n:
            ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)[: n - keep]
            gain[keep : keep + len(ramp)] = ramp
            gain[keep + len(ramp) :] = 0.0
        out[start : start + n] += hit[:n] * gain[:, None]
    return out
