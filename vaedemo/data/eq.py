"""Random equalisation of training clips (``data.augment.eq_db``): the tone of another microphone, room or sampler;
and random band limits (``data.augment.band_limit``): the bandwidth of a sample stored at a lower rate.

Drum samples differ in tone as much as in content: two kits' snares can be the same drum through different
microphones and preamps. A model trained on one soundfont learns its tone too. Each augmented clip goes through a
random cascade of the filters an engineer would reach for (RBJ "Audio EQ Cookbook" biquads): a low shelf, a peak
and a high shelf, each with a gain drawn in [-eq_db, +eq_db] dB at a random frequency. The filters are causal IIR
biquads, like a hardware EQ: nothing rings before an attack (a zero-phase FFT filter would smear one backwards).

Drum machines, old samplers and small soundfonts store many samples at 16-32 kHz: nothing above half that rate
survives. A model that only ever heard full-band clips renders its training kit's full-band top on such a sound
(measured: TimGM6mb's cymbals have 17 dB less energy at 11-16 kHz than FluidR3's, and their reconstructions put
back 11 dB of it; log-mel L1 0.79 where Opus 12 kbps, which keeps the band limit, has 0.55). ``band_limited`` sends
a clip through such a rate and back, with soxr's steep anti-aliasing filter, as the sampler did.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.signal import sosfilt

from ..audio import resample

# (kind, lowest and highest centre frequency in Hz, lowest and highest Q): Q 0.707 is a plain shelf
BANDS = (("lowshelf", 60.0, 400.0, 0.707, 0.707), ("peak", 200.0, 8000.0, 0.5, 2.0),
         ("highshelf", 2000.0, 12000.0, 0.707, 0.707))


def biquad(kind: str, freq: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One second-order section [b0, b1, b2, 1, a1, a2] of the RBJ cookbook (``kind``: lowshelf, peak, highshelf)."""
    a = 10 ** (gain_db / 40)
    w = 2 * math.pi * min(freq, 0.45 * sample_rate) / sample_rate
    cos, alpha = math.cos(w), math.sin(w) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        s = 1 if kind == "lowshelf" else -1  # the high shelf is the low shelf with the cosine terms' signs flipped
        root = 2 * math.sqrt(a) * alpha
        b = [a * ((a + 1) - s * (a - 1) * cos + root), s * 2 * a * ((a - 1) - s * (a + 1) * cos),
             a * ((a + 1) - s * (a - 1) * cos - root)]  # fmt: skip
        den = [(a + 1) + s * (a - 1) * cos + root, -s * 2 * ((a - 1) + s * (a + 1) * cos),
               (a + 1) + s * (a - 1) * cos - root]  # fmt: skip
    return np.array(b + den, dtype=np.float64) / den[0]


def random_eq(x: np.ndarray, max_db: float, sample_rate: int, uniform: Callable[[float, float], float]) -> np.ndarray:
    """``x`` (channels, samples) through a low shelf, a peak and a high shelf of random gains in [-max_db, max_db]
    dB, at log-uniform random frequencies; ``uniform(lo, hi)`` draws the numbers (the caller's seeded RNG)."""
    sections = []
    for kind, f_lo, f_hi, q_lo, q_hi in BANDS:
        freq = math.exp(uniform(math.log(f_lo), math.log(f_hi)))
        q = math.exp(uniform(math.log(q_lo), math.log(q_hi)))
        sections.append(biquad(kind, freq, uniform(-max_db, max_db), q, sample_rate))
    return sosfilt(np.stack(sections), x, axis=-1).astype(np.float32)


BAND_LIMIT_RATES = (0.36, 0.73)  # the lower rate as a fraction of the clip's: 16-32 kHz at 44.1 kHz


def band_limited(x: np.ndarray, sample_rate: int, uniform: Callable[[float, float], float]) -> np.ndarray:
    """``x`` (channels, samples) resampled to a rate drawn log-uniformly in :data:`BAND_LIMIT_RATES` of
    ``sample_rate`` and back: the same length, nothing left above about 0.45 x the lower rate."""
    low = sample_rate * math.exp(uniform(*map(math.log, BAND_LIMIT_RATES)))
    y = resample(resample(x.T, sample_rate, low), low, sample_rate).T  # soxr HQ, (samples, channels)
    out = np.zeros_like(x)
    out[:, : min(x.shape[1], y.shape[1])] = y[:, : x.shape[1]]
    return out
