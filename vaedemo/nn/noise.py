"""RAVE's noise branch: filtered noise added to the decoder's PQMF bands (hi-hats, snares, cymbals).

A conv stack reads the decoder's last hidden map (at the band rate) and predicts, for each output band and each block
of ``hop`` band-rate samples, ``noise_bands`` non-negative filter magnitudes spread from 0 to the band's Nyquist.
Each block's magnitudes become a linear-phase FIR (the inverse real DFT, shifted to the middle and windowed: one
precomputed matrix, :func:`fir_basis`), which filters the block's ``hop`` samples out of one continuous stream of
uniform noise in [-1, 1] per band (each output sample reads the ``taps`` noise samples up to it). The stream is
continuous across blocks so that the filter's frequency resolution survives a short hop: a filter held for many
blocks makes exactly stationary filtered noise, as narrow as its taps allow (a ringing partial at any pitch, not only
at the frame rate's harmonics, where the transposed convolutions' output lies); segments drawn afresh for each block
would spread every line over the block rate. The branch stays local in time: a stream computes block k from block
k's features and the noise's sample indices.

Randomness: the noise is a hash of (seed, batch row, band, absolute sample index) (:func:`hashed_uniform`), not a draw
from torch's generator. A block's noise therefore depends on its absolute position only, so a stream that counts its
blocks reproduces the offline pass (exactly up to float rounding: in eval mode the offline pass sums the same
products in another order, below), and two calls with the same seed give the same sound. In training mode each
forward draws a fresh seed from torch's global generator (``torch.manual_seed`` makes a run reproducible) and each
batch row its own stream; in eval mode the seed is :attr:`NoiseGenerator.seed` (0 by default) and every row reads
row 0's stream, so inference is deterministic while the noise is still part of the sound, and a latent decodes to
the same sound wherever it sits in a batch (a prior sample drawn among n, a channel of a stereo file, the end of an
interpolation path: each as it decodes alone).

The noise bank (eval mode): since the noise is then fixed, the FIR sums can be taken in the other order, the noise
filtered once by each of the basis's ``noise_bands`` FIRs (:func:`noise_bank`) and each block's output a product of
its samples of that bank with its magnitudes (:func:`mix_bank`): 16 multiplies a sample instead of 30 taps, and no
hashing. A one-shot model decodes every clip from sample 0 with the same seed, so the bank of a signal's start is
kept (:class:`BankCache`, bounded in bytes) and a one-shot's noise costs 0.44 instead of 1.97 ms (16 bands of a 1 s
clip, one thread, the AVX2 EPYC). Chunks further into a signal and training (a fresh seed each forward) take the
taps as before.

Relative noise (``model.noise_relative``): the magnitudes are relative to the conv stack's own output in each band
(its running rms over the last frame, :func:`running_rms`, without gradient), so where the stack is silent the noise
is too, and training compares the noise with the input beside the stack as an incoherent sum, as it does the partial
bank (:mod:`~vaedemo.nn.partials`, ``train.incoherent_partials``). RAVE's absolute noise stayed silent here under
log-magnitude losses (docs/ablations_noise.md): noise at a random phase to the stack leaves the expected log magnitude
of their sum unchanged where it is the quieter part, while silent tails pull it down everywhere.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Act, Conv
from .fastconv import from_rows
from .partials import relative_amplitude


def positive_magnitude(x: torch.Tensor) -> torch.Tensor:
    """The decoder's amplitude map (2 sigmoid^2.3), shifted by -5 so that a fresh branch starts nearly silent
    (magnitudes near 2e-5, as RAVE's)."""
    return 2 * torch.sigmoid(x - 5.0) ** 2.3


def fir_basis(noise_bands: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(noise_bands, taps) matrix M, taps = 2 (noise_bands - 1): ``magnitudes @ M`` is the inverse real DFT of the
    magnitudes (zero phase), rolled by noise_bands - 1 samples and times a periodic Hann window: a symmetric
    linear-phase FIR centred on tap noise_bands - 1 whose first tap is 0 (the window's zero)."""
    k = noise_bands
    taps = 2 * (k - 1)
    n = torch.arange(taps, dtype=torch.float64) - (k - 1)  # time relative to the centre (the roll)
    freqs = torch.arange(k, dtype=torch.float64)
    weight = torch.full((k,), 2.0, dtype=torch.float64)
    weight[0] = weight[-1] = 1.0  # DC and Nyquist appear once in the spectrum, the others twice (conjugate pair)
    cosines = weight[:, None] * torch.cos(2 * math.pi * freqs[:, None] * n[None] / taps) / taps
    window = torch.hann_window(taps, periodic=True, dtype=torch.float64)  # zero at tap 0, peak on the centre tap
    return (cosines * window[None]).to(dtype)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32 with multipliers below 2^31, so that int64 products never overflow)."""
    mask = 0xFFFFFFFF  # a local: TorchScript cannot read module-level ints
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & mask
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & mask
    return x ^ (x >> 15)


def hashed_uniform(batch: int, rows: int, start: int, length: int, seed: int,
                   dtype: torch.dtype, device: torch.device) -> torch.Tensor:  # fmt: skip
    """(batch, rows, length) noise in [-1, 1): samples ``start`` to ``start + length`` (``start`` may be negative) of
    each row's stream, a function of (seed, batch row, row, absolute sample index) only."""
    mask = 0xFFFFFFFF
    key = _mix32(torch.tensor(seed, dtype=torch.int64, device=device) & mask)
    key = _mix32((key + torch.arange(batch, device=device).view(batch, 1, 1)) & mask)
    key = _mix32((key + torch.arange(rows, device=device).view(1, rows, 1)) & mask)
    index = torch.arange(start, start + length, device=device).view(1, length)
    exact = torch.float64 if dtype == torch.float64 else torch.float32
    out = torch.empty(batch, rows, length, dtype=dtype, device=device)
    for i in range(batch):  # one batch row at a time: its int64 temporaries stay in cache (batch 20: 33 -> 7 ms)
        bits = _mix32((key[i] + index) & mask) >> 8  # the top 24 bits: exact in float32 (half precision would round)
        out[i] = (bits.to(exact) * (2.0 / 2**24) - 1.0).to(dtype)
    return out


def running_rms(bands: torch.Tensor, window: int) -> torch.Tensor:
    """(B, bands, n) -> the rms of each band over the ``window`` samples up to and including each sample (zeros
    before the first), without gradient: the level relative noise follows, causal so that a stream needs only the
    last ``window`` - 1 samples."""
    # a difference of running sums, in float64 so that it stays exact to ~1e-16 of the power so far (a 10-minute
    # signal's tail to ~-110 dB): 3-4x faster than avg_pool1d with a stride of 1, which sums each window afresh
    total = F.pad(bands.detach().double().square().cumsum(-1), (window, 0))
    return ((total[..., window:] - total[..., :-window]) / window).to(bands.dtype).clamp_min(0.0).sqrt()


def block_magnitudes(x: torch.Tensor, bands: int, noise_bands: int, relative: bool = False) -> torch.Tensor:
    """The net's output (B, bands * noise_bands, blocks) -> magnitudes (B, bands, blocks, noise_bands): absolute
    (RAVE's) or, ``relative``, in units of the band's running rms (the partial bank's map)."""
    m = relative_amplitude(x) if relative else positive_magnitude(x)
    return m.reshape(m.shape[0], bands, noise_bands, m.shape[-1]).transpose(2, 3)


def filter_noise(magnitudes: torch.Tensor, basis: torch.Tensor, hop: int, seed: int, first_block: int,
                 per_row: bool = True) -> torch.Tensor:  # fmt: skip
    """Magnitudes (B, bands, blocks, noise_bands) -> filtered noise (B, bands, blocks * hop), the blocks numbered
    from ``first_block`` (0 offline; a stream's running count); each batch row filters a stream of its own, or, not
    ``per_row``, row 0's (inference: a sound's noise does not depend on its row)."""
    b, rows, blocks, _ = magnitudes.shape
    taps = basis.shape[-1]
    fir = magnitudes @ basis.to(magnitudes.dtype)  # (B, bands, blocks, taps)
    start = first_block * hop - (taps - 1)  # the taps - 1 samples before the first block's first output
    n = blocks * hop
    streams = b if per_row else 1  # one stream broadcast over the batch
    noise = hashed_uniform(streams, rows, start, n + taps - 1, seed, magnitudes.dtype, magnitudes.device)
    # output sample m of block k: sum over taps i of noise[m + i] fir[k, taps - 1 - i] (a convolution), one tap at a
    # time over every sample: each term a view of the noise times its block's tap, where a product of each sample's
    # window of taps with its filter first copies taps x the samples (16 magnitudes: 57 -> 22 ms for 10 s, one thread)
    y = torch.zeros(b, rows, blocks, hop, dtype=magnitudes.dtype, device=magnitudes.device)
    for i in range(taps):  # in place: one pass over y per tap, no temporaries (autograd needs only noise and fir)
        y.addcmul_(noise[..., i : i + n].reshape(streams, rows, blocks, hop), fir[..., taps - 1 - i, None])
    return y.reshape(b, rows, n)


def noise_bank(rows: int, start: int, length: int, seed: int, basis: torch.Tensor) -> torch.Tensor:
    """(1, rows, length, noise_bands): samples ``start`` to ``start + length`` of what :func:`filter_noise` (not
    ``per_row``) would output for magnitudes that are 1 in one bin and 0 elsewhere, for each bin: each row's noise
    stream (:func:`hashed_uniform`, batch row 0) filtered by each of the basis's FIRs."""
    taps = basis.shape[-1]
    noise = hashed_uniform(1, rows, start - (taps - 1), length + taps - 1, seed, basis.dtype, basis.device)
    return noise.unfold(-1, taps, 1) @ basis.flip(-1).T  # sample t reads noise t - taps + 1 .. t against taps reversed


def mix_bank(magnitudes: torch.Tensor, bank: torch.Tensor, hop: int) -> torch.Tensor:
    """Magnitudes (B, bands, blocks, noise_bands) and the bank of their samples (1, bands, blocks * hop, noise_bands)
    -> :func:`filter_noise`'s output (not ``per_row``) (B, bands, blocks * hop): each block's samples of the bank times
    its magnitudes (the FIR is linear in them, so these are its sums in another order), the bank shared by every row."""
    b, rows, blocks, k = magnitudes.shape
    y = bank.reshape(rows * blocks, hop, k) @ magnitudes.reshape(b, rows * blocks, k, 1)  # broadcast over the batch
    return y.reshape(b, rows, blocks * hop)


class BankCache:
    """The :func:`noise_bank` of a signal's start (sample 0) per seed (and dtype, device, shape), kept while the banks'
    bytes stay within ``limit_bytes`` (the least recently used dropped first). One bank serves every batch (its rows
    share it) and every length up to its own (its first samples); a longer request replaces it with one as long.
    Thread-safe: the demo's handlers share one model."""

    limit_bytes = 64 * 2**20  # the shipped shape's bank of a 1 s clip takes 2.8 MB, of 8 s (one chunk) 22 MB

    def __init__(self):
        self._banks: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # a copied or pickled model starts empty (a lock neither copies nor pickles)
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def start_of(self, rows: int, length: int, seed: int, basis: torch.Tensor) -> torch.Tensor | None:
        """(1, rows, length, noise_bands): the bank's first samples, or None when they would not fit."""
        key = (rows, seed, basis.dtype, basis.device, tuple(basis.shape))
        with self._lock:
            kept = self._banks.get(key)
            if kept is not None and kept.shape[2] >= length:
                self._banks.move_to_end(key)
                return kept[:, :, :length]
        if rows * length * basis.shape[0] * basis.element_size() > self.limit_bytes:
            return None
        with torch.inference_mode(False), torch.no_grad():  # a plain tensor: refinement differentiates through it
            bank = noise_bank(rows, 0, length, seed, basis.detach())
        with self._lock:
            kept = self._banks.get(key)  # another thread may have kept a longer one meanwhile: keep the longer
            if kept is None or kept.shape[2] <= length:
                self._banks[key] = bank
            self._banks.move_to_end(key)
            while sum(b.numel() * b.element_size() for b in self._banks.values()) > self.limit_bytes:
                self._banks.popitem(last=False)
        return bank


class NoiseGenerator(nn.Module):
    """Hidden map (B, channels, T) at the band rate -> filtered noise (B, bands, T), T a multiple of ``hop``.

    ``net`` (a strided conv to the block rate, then two convs; causal when ``causal``) predicts the magnitudes;
    ``seed`` is the noise seed in eval mode (training draws a fresh one per forward). ``relative``: the noise is
    scaled by the conv stack's bands' :func:`running_rms` over ``window`` samples (one latent frame)."""

    def __init__(self, channels: int, bands: int, noise_bands: int, hop: int, causal: bool = False,
                 relative: bool = False, window: int = 1):  # fmt: skip
        super().__init__()
        self.bands, self.noise_bands, self.hop = bands, noise_bands, hop
        self.relative, self.window = relative, window
        # a causal strided conv reads its whole block: harmless, a block lies inside one latent frame (see config)
        first = Conv(channels, channels, 2 * hop if hop > 1 else 3, stride=hop, causal=causal)
        self.net = nn.Sequential(first, Act(), Conv(channels, channels, 3, causal=causal), Act(),
                                 Conv(channels, bands * noise_bands, 3, causal=causal))  # fmt: skip
        self.register_buffer("basis", fir_basis(noise_bands), persistent=False)
        self.seed = 0
        self.banks = BankCache()

    @staticmethod
    def fresh_seed() -> int:
        """A training forward's seed, from torch's global generator."""
        return int(torch.randint(0, 2**31 - 1, (1,)).item())

    def magnitudes(self, h: torch.Tensor) -> torch.Tensor:
        """(B, channels, T), or rows (B, channels, 1, T) (:func:`~vaedemo.nn.fastconv.to_rows`) -> (B, bands,
        T / hop, noise_bands) filter magnitudes, one set per block."""
        x = self.net(h)
        return block_magnitudes(from_rows(x) if x.dim() == 4 else x, self.bands, self.noise_bands, self.relative)

    def forward(self, h: torch.Tensor, wave: torch.Tensor | None = None, offset: int = 0) -> torch.Tensor:
        """The noise for the hidden map ``h`` (either layout, see :meth:`magnitudes`), whose first sample is sample
        ``offset`` (a multiple of ``hop``) of a longer signal (a chunk of it); a relative branch needs the conv
        stack's bands ``wave`` as well."""
        noise = self.filtered(self.magnitudes(h), offset)
        if not self.relative:
            return noise
        assert wave is not None, "relative noise follows the conv stack's bands"
        return noise * running_rms(wave, self.window)

    def filtered(self, magnitudes: torch.Tensor, offset: int) -> torch.Tensor:
        """:func:`filter_noise` of the magnitudes of blocks from band sample ``offset`` on: in training a stream per
        batch row and a fresh seed; in eval mode row 0's stream of :attr:`seed` for every row, from a signal's start
        through the kept bank (the same sums in another order)."""
        if self.training:
            return filter_noise(magnitudes, self.basis, self.hop, self.fresh_seed(), offset // self.hop)
        if offset == 0:
            _, rows, blocks, _ = magnitudes.shape
            bank = self.banks.start_of(rows, blocks * self.hop, self.seed, self.basis.to(magnitudes.dtype))
            if bank is not None:
                return mix_bank(magnitudes, bank, self.hop)
        return filter_noise(magnitudes, self.basis, self.hop, self.seed, offset // self.hop, per_row=False)
