"""Training losses: multi-scale STFT and log-mel distances, hinge adversarial losses and feature matching.

Multi-scale STFT (RAVE): for each FFT size n (hop n/4, Hann window), relative L2 of the linear magnitudes plus L1 of
the log magnitudes, summed over sizes. It applies to the full-band waveform and, optionally, to the PQMF bands.

Multi-scale log-mel (as in DAC / HiFi-GAN): L1 of ``ln(mel + 1e-5)`` per FFT size. A linear-frequency loss gives the
band below 700 Hz ~3 % of its weight; mel bands give it the share hearing (and the log-mel metric) gives it.

Frame buzz: how far the estimate's spectrum, summed over a clip, peaks more (or less) at the multiples of the latent
frame rate than the target's does (the evaluation's ``hop_buzz_db``), in dB either way. A decoder that upsamples with
transposed convolutions renders a smooth latent as a frame-periodic waveform, a comb at 86 Hz and its harmonics; per
bin the spectral losses see that comb as a few cells among thousands.

Both logs weigh a cell 80 dB below a hit's peak as much as the hit (their floors, 1e-7 and 1e-5, lie ~100 dB below a
loud clip's loudest cell). With ``floor_db`` the floor inside the logs rises, per example, to that many dB below the
target spectrogram's loudest cell: distances below it count little, and the loss spends the model on what is heard.
"""

from __future__ import annotations

import torch
from torch import nn

from ..dsp import BUZZ_BINS, fitting_mel_filterbank, frame_rate_lines, stft_magnitude
from .discriminator import Features


class Spectra:
    """Magnitude STFTs of one (target, estimate) pair, computed once per FFT size however many losses ask for it: the
    STFT and log-mel losses of the shipped configs share four sizes, whose STFTs (and their backward) ran twice."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self._pairs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def pair(self, n: int, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(target, estimate) magnitudes at FFT size ``n`` (every loss here uses a Hann window of that size)."""
        if n not in self._pairs:
            self._pairs[n] = (stft_magnitude(self.x, n, window), stft_magnitude(self.y, n, window))
        return self._pairs[n]


class IncoherentSpectra(Spectra):
    """:class:`Spectra` of a target and an estimate made of parts whose relative phase is arbitrary: the estimate's
    magnitude is sqrt(sum of the parts' squared magnitudes), the expected power of their sum over a uniformly random
    relative phase. A partial bank's sinusoids (:mod:`~vaedemo.nn.partials`) have fixed phases, and relative noise
    (:mod:`~vaedemo.nn.noise`) random ones, that owe nothing to the conv stack's or each other's; on the true sum, a
    part quieter than another at a bin leaves the expected log magnitude unchanged and gets no pull, so it never learns
    to supply what the other part misses."""

    def __init__(self, x: torch.Tensor, parts: list[torch.Tensor]):
        super().__init__(x, sum(parts))
        self.parts = parts

    def pair(self, n: int, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if n not in self._pairs:
            power = sum(stft_magnitude(p, n, window).square() for p in self.parts)
            self._pairs[n] = (stft_magnitude(self.x, n, window), power.add(1e-20).sqrt())
        return self._pairs[n]


def spectra_of_parts(target: torch.Tensor, parts: list[torch.Tensor]) -> Spectra:
    """The spectra of ``target`` and of an estimate in ``parts``: their true sum's for one part, else their incoherent
    sum's (:class:`IncoherentSpectra`), as for a conv stack and the branches that follow its level."""
    return Spectra(target, parts[0]) if len(parts) == 1 else IncoherentSpectra(target, parts)


def log_floor(target: torch.Tensor, eps: float, floor_db: float | None) -> torch.Tensor | float:
    """What the logs of a distance add to the magnitudes of ``target`` (B, bins, frames): ``eps``, or with ``floor_db``
    per example the larger of ``eps`` and the target's loudest cell ``floor_db`` dB down, (B, 1, 1)."""
    if floor_db is None:
        return eps
    peak = target.detach().amax(dim=(1, 2), keepdim=True)
    return torch.clamp(peak * 10 ** (-floor_db / 20), min=eps)


def stft_distance(sx: torch.Tensor, sy: torch.Tensor, eps: float, floor: torch.Tensor | float | None = None) -> torch.Tensor:
    """RAVE's distance of estimate magnitudes ``sy`` from target magnitudes ``sx``: relative L2 of the magnitudes plus
    the mean L1 of their logs, ``ln(s + floor)`` (``floor``: ``eps`` unless given, see :func:`log_floor`). Fused
    (:class:`_STFTDistance`) when the target needs no gradient, as in training."""
    floor = eps if floor is None else floor
    if sx.requires_grad:  # (the fused form has no gradient for the target)
        linear = torch.linalg.vector_norm(sx - sy) / (torch.linalg.vector_norm(sx) + eps)
        return linear + (torch.log(sx + floor) - torch.log(sy + floor)).abs().mean()
    return _STFTDistance.apply(sx, sy, eps, floor)


def log_mel_distance(filters: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, eps: float,
                     floor_db: float | None = None) -> torch.Tensor:  # fmt: skip
    """Mean L1 distance between ``ln(filters @ magnitude + floor)`` of target ``sx`` and estimate ``sy`` (``floor``:
    :func:`log_floor` of the target's mel spectrogram). Fused (:class:`_LogMelDistance`) when the target needs no
    gradient, as in training."""
    if sx.requires_grad:  # (the fused form has no gradient for the target)
        mx = torch.matmul(filters, sx)
        floor = log_floor(mx, eps, floor_db)
        return (torch.log(mx + floor) - torch.log(torch.matmul(filters, sy) + floor)).abs().mean()
    return _LogMelDistance.apply(filters, sx, sy, eps, floor_db)


class _STFTDistance(torch.autograd.Function):
    """:func:`stft_distance` with its gradient (for the estimate only) written out in four passes over the
    spectrogram; autograd's chain of the same expression made about fifteen (subtractions, norms, logs, abs, their
    backward one op at a time), and these spectrograms are the largest tensors of a training step."""

    @staticmethod
    def forward(ctx, sx: torch.Tensor, sy: torch.Tensor, eps: float, floor: torch.Tensor | float) -> torch.Tensor:
        difference = sy - sx
        norm_difference, norm_target = torch.linalg.vector_norm(difference), torch.linalg.vector_norm(sx)
        shifted = sy + floor
        log_difference = torch.log(shifted).sub_(torch.log(sx + floor))
        ctx.save_for_backward(difference, log_difference, shifted, norm_difference, norm_target)
        ctx.eps = eps
        return norm_difference / (norm_target + eps) + torch.linalg.vector_norm(log_difference, 1) / sy.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        difference, log_difference, shifted, norm_difference, norm_target = ctx.saved_tensors
        # d linear / d sy = (sy - sx) / (|sy - sx| (|sx| + eps)), zero where sy == sx everywhere
        linear = torch.where(norm_difference > 0, grad / ((norm_target + ctx.eps) * norm_difference), 0.0)
        # d log / d sy = sign(log difference) / (sy + eps) / count
        out = torch.sign(log_difference).div_(shifted).mul_(grad / shifted.numel())
        return None, out.addcmul_(difference, linear), None, None


class _LogMelDistance(torch.autograd.Function):
    """:func:`log_mel_distance` with its gradient (for the estimate only) written out: three passes over the mel
    spectrogram and the filters' transpose product, where autograd made about ten."""

    @staticmethod
    def forward(ctx, filters: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, eps: float,
                floor_db: float | None) -> torch.Tensor:  # fmt: skip
        mx = torch.matmul(filters, sx)
        floor = log_floor(mx, eps, floor_db)
        shifted = torch.matmul(filters, sy).add_(floor)
        log_difference = torch.log(shifted).sub_(torch.log(mx.add_(floor)))
        ctx.save_for_backward(filters, log_difference, shifted)
        return torch.linalg.vector_norm(log_difference, 1) / log_difference.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        filters, log_difference, shifted = ctx.saved_tensors
        per_mel = torch.sign(log_difference).div_(shifted).mul_(grad / shifted.numel())
        return None, None, torch.matmul(filters.transpose(0, 1), per_mel), None, None


class MultiScaleSTFT(nn.Module):
    def __init__(self, sizes: list[int], eps: float = 1e-7, floor_db: float | None = None):
        super().__init__()
        self.sizes = list(sizes)
        self.eps = eps
        self.floor_db = floor_db
        for n in self.sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor, spectra: Spectra | None = None) -> torch.Tensor:
        """Distance between target ``x`` and estimate ``y`` of shape (B, C, T): a scalar (``spectra``: the pair's
        magnitudes, shared with other losses)."""
        spectra = spectra or Spectra(x, y)
        total = x.new_zeros(())
        for n in self.sizes:
            sx, sy = spectra.pair(n, getattr(self, f"window_{n}"))
            total = total + stft_distance(sx, sy, self.eps, log_floor(sx, self.eps, self.floor_db))
        return total


class FrameBuzz(nn.Module):
    """Per example, the dB by which the estimate's comb at the multiples of ``sample_rate / hop`` (below ``max_hz``)
    stands further above (or below) the bins halfway between than the target's does, its magnitude averaged: the
    evaluation's :func:`vaedemo.metrics.hop_buzz_db` as a loss (power summed over channels and frames, as there). Both
    ways: the comb is the decoder's, not one sound's, so a one-sided hinge pushed the sounds that had little of it into
    notches at those frequencies (a mean of -2.6 dB). Both ratios take a floor of ``FLOOR`` times the target's power in
    those bins plus that of white noise at -80 dBFS (``SILENCE``), as the log losses' eps: a comb that far below the
    sound does not count, and an estimate near silence gets no gradient growing as 1 / its amplitude. An STFT of
    ``8 * hop`` puts the lines on every 8th bin (its hop, a quarter window, only changes how often the power is
    summed)."""

    FLOOR = 1e-3  # -30 dB
    SILENCE = 1.5e-8  # -80 dBFS: a Hann STFT (hop a quarter window) of unit white noise holds 1.5 x its samples a bin

    def __init__(self, hop: int, sample_rate: int, max_hz: float = 4000.0):
        super().__init__()
        self.n_fft = BUZZ_BINS * hop
        self.register_buffer("lines", torch.from_numpy(frame_rate_lines(hop, sample_rate, max_hz)), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def comb(self, magnitude: torch.Tensor, examples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(power at the lines, power at the midpoints), each (examples,), of magnitude STFTs (examples * channels,
        bins, frames), summed over channels and frames."""
        power = magnitude.square().sum(-1).reshape(examples, -1, magnitude.shape[1]).sum(1)
        half = BUZZ_BINS // 2
        return power[:, self.lines].sum(-1), 0.5 * (power[:, self.lines - half] + power[:, self.lines + half]).sum(-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor, spectra: Spectra | None = None) -> torch.Tensor:
        """Target ``x`` and estimate ``y`` (B, C, T): a scalar (``spectra``: the pair's magnitudes, shared)."""
        sx, sy = (spectra or Spectra(x, y)).pair(self.n_fft, self.window)
        target, estimate = self.comb(sx.detach(), len(x)), self.comb(sy, len(x))
        floor = self.FLOOR * 0.5 * (target[0] + target[1]) + self.SILENCE * len(self.lines) * x.shape[-1]

        def db(lines: torch.Tensor, between: torch.Tensor) -> torch.Tensor:
            return 10 * torch.log10((lines + floor) / (between + floor))

        return (db(*estimate) - db(*target)).abs().mean()


class MultiScaleMel(nn.Module):
    """Mean over FFT sizes of the L1 distance between ``ln(mel + eps)`` spectrograms (Slaney filters)."""

    def __init__(self, sizes: list[int], sample_rate: int, n_mels: int = 80, eps: float = 1e-5,
                 floor_db: float | None = None):  # fmt: skip
        super().__init__()
        self.sizes = list(sizes)
        self.eps = eps
        self.floor_db = floor_db
        for n in self.sizes:
            fb = fitting_mel_filterbank(sample_rate, n, n_mels)
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)
            self.register_buffer(f"mel_{n}", torch.from_numpy(fb), persistent=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor, spectra: Spectra | None = None) -> torch.Tensor:
        """Distance between target ``x`` and estimate ``y`` of shape (B, C, T): a scalar (``spectra``: the pair's
        magnitudes, shared with other losses)."""
        spectra = spectra or Spectra(x, y)
        terms = []
        for n in self.sizes:
            sx, sy = spectra.pair(n, getattr(self, f"window_{n}"))
            terms.append(log_mel_distance(getattr(self, f"mel_{n}"), sx, sy, self.eps, self.floor_db))
        return torch.stack(terms).mean()


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
