"""Streaming a temporal AudioVAE chunk by chunk, with cached convolutions (causal and centred models alike).

Every convolution keeps what it needs from the previous chunk: its left context (a causal conv keeps its last
``pad`` input samples), and a transposed conv, run as a causal conv over input frames followed by a depth-to-space
reshape, keeps its last input frames. Nothing is recomputed, so a chunk costs what its own samples cost.

A centred conv with padding (l, r) is the causal conv with padding l + r whose output is r samples late
(cached_conv / RAVE's trick); a centred transposed conv is late by the samples it crops on the left, the centred PQMF
by half its taps. Each cached block reports its ``delay``: how many of its own output samples it runs behind the
offline model, summed through the stack at each stage's rate (a strided conv whose delay is not a whole number of
output frames waits for the next one). A residual unit delays its skip path by its conv's lateness so that the two
branches line up. The stream's output is therefore the offline forward pass (:meth:`AudioVAE.forward` with
``sample=False``) delayed by :attr:`StreamingVAE.lookahead` samples: 0 for a causal model, the model's look-ahead
(its right receptive field, rounded up to whole frames where a strided conv needs it) for a centred one.

Offline, every conv pads its input with zeros on the left. A late block's first outputs stand for offline times
before 0, so every cached block zeroes the first ``input_delay`` samples it is fed: the stream then equals the
offline pass from its first sample on, not only once its caches have filled.

Convolutions run as one matrix product over a strided view of the input (kernel taps x channels): at the sizes of a
512-sample chunk this is as fast as ``conv1d`` for plain convs and 5-7x faster for dilated ones, whose CPU path in
``conv1d`` is slow for short inputs (measured: 8 vs 38 us at 32 channels, 32 samples, dilation 9).

A decoder's noise branch (:mod:`~vaedemo.nn.noise`) streams too: its conv stack is cached like the others, each
block's FIR filtering is local, and its noise is addressed by block index, so the stream reproduces the offline noise
exactly. The wave and the noise reach the bands at different lateness; the earlier one waits (:class:`Delay`) for
the other, which can add a few band samples to a centred model's look-ahead (none to a causal one). A partial bank
(:mod:`~vaedemo.nn.partials`) streams the same way: its stack cached, its sinusoids read at their absolute index,
the last frame's amplitudes kept for the next frame's ramp.

The module is TorchScript-able (see :mod:`vaedemo.export`). Only models with a latent time series stream: a
one-vector-per-clip model needs the whole clip before it can encode anything.
"""

from __future__ import annotations

import threading
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Act, Conv, ConvUp, ResidualUnit, ResizeUp
from .decoder import mod_sigmoid
from .fastconv import interleave_phases, transposed_as_phases
from .noise import block_magnitudes, filter_noise, running_rms
from .partials import band_envelope, frame_amplitudes, render_partials
from .spectra import TABLES, AudioSpectra, audio_features
from .vae import AudioVAE


def strided_lateness(pad: tuple[int, int], stride: int, input_delay: int) -> tuple[int, int]:
    """(history samples kept, output frames late) of a strided window with offline padding ``pad`` fed ``input_delay``
    samples late: the right padding makes the causal output late, rounded up to whole output frames."""
    align = (-(input_delay + pad[1])) % stride
    return pad[0] + pad[1] + align, (input_delay + pad[1] + align) // stride


class CachedConv(nn.Module):
    """A Conv1d (any stride, dilation, causal or centred padding) fed chunk by chunk.

    ``weight`` is (out, in, kernel) as in ``conv1d``; ``pad`` the offline (left, right) padding; ``input_delay`` how
    many input samples the stream runs behind the offline input (its first ones are zeroed, see the module doc).
    ``delay``: output samples behind the offline output."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, dilation: int,
                 pad: tuple[int, int], input_delay: int):  # fmt: skip
        super().__init__()
        out_ch, in_ch, kernel = weight.shape
        self.in_ch, self.kernel, self.stride, self.dilation = in_ch, kernel, stride, dilation
        self.context, self.delay = strided_lateness(pad, stride, input_delay)
        self.input_delay = input_delay
        # (out, kernel * in), kernel-major: one matrix product against the strided (kernel, in, frames) view
        self.register_buffer("matrix", weight.detach().permute(0, 2, 1).reshape(out_ch, kernel * in_ch).clone())
        self.register_buffer("bias", (bias.detach().clone() if bias is not None else weight.new_zeros(out_ch))[:, None])
        self.cache = torch.zeros(0)
        self.seen = 0

    @classmethod
    def of(cls, conv: Conv, input_delay: int) -> CachedConv:
        c = conv.conv
        return cls(c.weight, c.bias, c.stride[0], c.dilation[0], (conv.pad[0], conv.lookahead), input_delay)

    @torch.jit.export
    def reset(self) -> None:
        self.cache, self.seen = torch.zeros(0), 0

    def extend(self, x: torch.Tensor) -> torch.Tensor:
        """The chunk with its left context in front (zeroed where it stands for offline times before 0: the offline
        conv's zero padding)."""
        x = zero_before(x, self.seen, self.input_delay)
        self.seen += x.shape[-1]
        if self.context == 0:
            return x
        x, cache = with_history(self.cache, x, self.context)
        self.cache = cache
        return x

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The conv of an extended chunk (no padding)."""
        x = x.contiguous()
        b = x.shape[0]
        frames = (x.shape[-1] - self.dilation * (self.kernel - 1) - 1) // self.stride + 1
        # a view (batch, frame, tap, channel) of the input, then one copy into a matrix; the strides of a contiguous
        # (B, C, T) from its shape, not x.stride(): an ONNX export has no form for a traced stride
        t = x.shape[2]
        strides = [x.shape[1] * t, self.stride, self.dilation, t]
        taps = x.as_strided([b, frames, self.kernel, self.in_ch], strides, x.storage_offset())
        # frames-major, multiplied as its transpose: with a chunk's few frames MKL's product is 4-6x faster against a
        # transposed (column-major) right-hand side than against a row-major one of the same values
        taps = taps.reshape(b, frames, self.kernel * self.in_ch).transpose(1, 2)
        if b == 1:
            return torch.addmm(self.bias, self.matrix, taps[0]).unsqueeze(0)
        return torch.matmul(self.matrix, taps) + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolve(self.extend(x))


class CachedConvTranspose(nn.Module):
    """A transposed conv (stride s, kernel K; ``weight`` (in, out, K) as in ``conv_transpose1d``) fed chunk by chunk,
    the first ``crop_left`` samples of its full output cropped offline.

    Output block t (s samples) is sum_q W_q^T x[t - q] over the kernel's ceil(K / s) phases W_q: a causal conv over
    input frames with out * s channels, then a reshape of those channels into time. ``delay`` in output samples."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, crop_left: int, input_delay: int):
        super().__init__()
        out_ch = weight.shape[1]
        w = transposed_as_phases(weight.detach(), stride)
        phases = w.shape[-1]
        b = bias.detach().repeat_interleave(stride) if bias is not None else None
        self.frames = CachedConv(w, b, 1, 1, (phases - 1, 0), input_delay)
        self.out_ch, self.stride = out_ch, stride
        self.delay = input_delay * stride + crop_left

    @classmethod
    def of(cls, up: ConvUp, input_delay: int) -> CachedConvTranspose:
        return cls(up.conv.weight, up.conv.bias, up.ratio, up.lookahead, input_delay)

    @torch.jit.export
    def reset(self) -> None:
        self.frames.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return interleave_phases(self.frames(x), self.out_ch, self.stride)


class CachedResizeUp(nn.Module):
    """A :class:`~vaedemo.nn.blocks.ResizeUp` fed chunk by chunk: the nearest-neighbour upsampling is stateless, the
    conv after it is cached at the upsampled rate. ``delay`` in output samples."""

    def __init__(self, up: ResizeUp, input_delay: int):
        super().__init__()
        self.ratio = up.ratio
        self.conv = CachedConv.of(up.conv, input_delay * up.ratio)
        self.delay = self.conv.delay

    @torch.jit.export
    def reset(self) -> None:
        self.conv.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.repeat_interleave(self.ratio, dim=-1))


def with_history(cache: torch.Tensor, x: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A chunk (B, C, n) with the ``samples`` samples before it in front (zeros before the first chunk, or when the
    batch changes), and the cache for the next chunk: its last ``samples`` samples."""
    if cache.dim() != 3 or cache.shape[0] != x.shape[0]:
        cache = torch.zeros(x.shape[0], x.shape[1], samples, dtype=x.dtype, device=x.device)
    both = torch.cat([cache, x], dim=-1)
    return both, both[..., both.shape[-1] - samples :]


def zero_before(x: torch.Tensor, seen: int, start: int) -> torch.Tensor:
    """A chunk whose first sample is sample ``seen`` of its stream, with the samples before sample ``start`` zeroed
    (a late stream's first samples stand for offline times before 0, where the offline pass has zeros)."""
    if seen >= start:
        return x
    n = min(start - seen, x.shape[-1])
    return torch.cat([torch.zeros_like(x[..., :n]), x[..., n:]], dim=-1)


class Delay(nn.Module):
    """Delays a signal by ``samples`` (the first ones are zeros), across chunks."""

    def __init__(self, samples: int):
        super().__init__()
        self.samples = samples
        self.cache = torch.zeros(0)

    @torch.jit.export
    def reset(self) -> None:
        self.cache = torch.zeros(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.samples == 0:
            return x
        both, cache = with_history(self.cache, x, self.samples)
        self.cache = cache
        return both[..., : x.shape[-1]]


class CachedResidual(nn.Module):
    """A :class:`ResidualUnit`: the skip path waits for the (late) dilated conv, so both branches line up.

    The dilated conv's cache holds the unit's input itself (the activation is applied after the cache), so the
    skip path is a slice of the same extended chunk: the input ``lookahead`` samples ago, without a cache of its
    own."""

    def __init__(self, unit: ResidualUnit, input_delay: int):
        super().__init__()
        self.conv1 = CachedConv.of(unit.conv1, input_delay)
        self.skip_start = self.conv1.context - unit.lookahead  # = the left padding: the input lookahead samples ago
        # the 1x1 conv as frames x channels times its transpose: a chunk has few frames, and MKL's product with a
        # row-major (channels, frames) right-hand side is the slow one (128 x 128 by 2 frames: 26 -> 10 us)
        self.register_buffer("pointwise_t", unit.conv2.weight.detach()[..., 0].t().contiguous())
        self.register_buffer("pointwise_bias", unit.conv2.bias.detach()[None].clone())
        self.delay = self.conv1.delay

    @torch.jit.export
    def reset(self) -> None:
        self.conv1.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extended = self.conv1.extend(x)  # leaky_relu(0) = 0, so zeroed context stays zero after the activation
        h = F.leaky_relu_(self.conv1.convolve(F.leaky_relu(extended, 0.2)), 0.2)  # in place: the conv's output is fresh
        if h.shape[0] == 1:
            h = torch.addmm(self.pointwise_bias, h[0].t(), self.pointwise_t).t().unsqueeze(0)
        else:
            h = (torch.matmul(h.transpose(1, 2), self.pointwise_t) + self.pointwise_bias).transpose(1, 2)
        return extended[..., self.skip_start : self.skip_start + x.shape[-1]] + h


class LeakyReLU(nn.Module):
    """:class:`~vaedemo.nn.blocks.Act` in a stream (stateless; ``delay`` passes through)."""

    def __init__(self, input_delay: int):
        super().__init__()
        self.delay = input_delay

    @torch.jit.export
    def reset(self) -> None:
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2)


class CachedAudioSpectra(nn.Module):
    """:class:`~vaedemo.nn.spectra.AudioSpectra` fed chunk by chunk: its long window's worth of past samples kept, as
    a :class:`CachedConv` of the same kernel and stride keeps them (``delay`` in frames)."""

    def __init__(self, layer: AudioSpectra, input_delay: int):
        super().__init__()
        self.context, self.delay = strided_lateness(layer.pad, layer.hop, input_delay)
        self.hop, self.input_delay = layer.hop, input_delay
        self.left = layer.pad[0]  # where a frame's own samples begin after the start of its long window
        for name in TABLES:
            self.register_buffer(name, getattr(layer, name).clone())
        self.cache = torch.zeros(0)
        self.seen = 0

    @torch.jit.export
    def reset(self) -> None:
        self.cache, self.seen = torch.zeros(0), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = zero_before(x, self.seen, self.input_delay)
        self.seen += x.shape[-1]
        x, self.cache = with_history(self.cache, x, self.context)
        return audio_features(x, self.left, self.hop, self.long_window, self.short_window, self.step_window,
                              self.long_mels, self.short_mels, self.groups)  # fmt: skip


def _cached(layer: nn.Module, input_delay: int) -> nn.Module:
    if isinstance(layer, AudioSpectra):
        return CachedAudioSpectra(layer, input_delay)
    if isinstance(layer, Conv):
        return CachedConv.of(layer, input_delay)
    if isinstance(layer, ConvUp):
        return CachedConvTranspose.of(layer, input_delay)
    if isinstance(layer, ResizeUp):
        return CachedResizeUp(layer, input_delay)
    if isinstance(layer, ResidualUnit):
        return CachedResidual(layer, input_delay)
    if isinstance(layer, Act):
        return LeakyReLU(input_delay)
    raise TypeError(f"{type(layer).__name__} cannot stream")


def cached_stack(layers: nn.Sequential, input_delay: int) -> tuple[nn.ModuleList, int]:
    """The cached version of a conv stack and its output delay (each block's, summed at each stage's rate)."""
    out = []
    for layer in layers:
        out.append(_cached(layer, input_delay))
        input_delay = out[-1].delay
    return nn.ModuleList(out), input_delay


class _NoFlow(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x.new_zeros(x.shape[0])


class PosteriorMean(nn.Module):
    """:meth:`Latent.posterior_mean` for a latent time series, frame by frame (it has no memory)."""

    def __init__(self, model: AudioVAE):
        super().__init__()
        self.size = model.latent.size
        flow = model.latent.posterior_flow
        self.flow = flow if flow is not None else _NoFlow()

    def forward(self, stats: torch.Tensor) -> torch.Tensor:
        mu = stats[:, : self.size]
        b, d, f = mu.shape
        z = self.flow(mu.permute(0, 2, 1).reshape(b * f, d))[0]
        return z.reshape(b, f, d).permute(0, 2, 1)


class StreamingNoise(nn.Module):
    """The decoder's noise branch in a stream: its conv stack cached, each block's FIR filtering local to the block.

    The noise of block k is a hash of its absolute index (see :mod:`~vaedemo.nn.noise`), so counting the blocks
    emitted (offline index = stream index - the stack's delay in blocks) reproduces the offline noise exactly.
    ``delay`` in band-rate samples."""

    def __init__(self, model: AudioVAE, input_delay: int):
        super().__init__()
        noise = model.decoder.noise
        assert noise is not None
        self.net, frames = cached_stack(noise.net, input_delay)
        self.frames_late: int = frames
        self.bands, self.noise_bands, self.hop, self.seed = noise.bands, noise.noise_bands, noise.hop, noise.seed
        self.relative: bool = noise.relative
        self.register_buffer("basis", noise.basis.detach().clone())
        self.emitted = 0
        self.delay: int = frames * noise.hop

    @torch.jit.export
    def reset(self) -> None:
        for layer in self.net:
            layer.reset()
        self.emitted = 0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            h = layer(h)
        first = self.emitted - self.frames_late  # negative for blocks before offline time 0 (zeroed at synthesis)
        self.emitted += h.shape[-1]
        magnitudes = block_magnitudes(h, self.bands, self.noise_bands, self.relative)
        return filter_noise(magnitudes, self.basis, self.hop, self.seed, first, False)  # every row as offline: row 0's


class StreamingRms(nn.Module):
    """:func:`~vaedemo.nn.noise.running_rms` across chunks: keeps the last ``window`` - 1 samples. The input runs
    ``delay`` samples behind the offline signal; its first ``delay`` samples (what a centred stack makes of the time
    before the start) count as zeros, as the time before the start does offline."""

    def __init__(self, window: int, delay: int = 0):
        super().__init__()
        self.window, self.delay = window, delay
        self.cache = torch.zeros(0)
        self.emitted = 0

    @torch.jit.export
    def reset(self) -> None:
        self.cache = torch.zeros(0)
        self.emitted = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = zero_before(x, self.emitted, self.delay)
        self.emitted += x.shape[-1]
        both, cache = with_history(self.cache, x, self.window - 1)
        self.cache = cache
        return running_rms(both, self.window)[..., self.window - 1 :]


class StreamingPartials(nn.Module):
    """The decoder's partial bank in a stream: its conv stack cached, its sinusoids read at their absolute index.

    A frame's amplitudes are relative to the stack's bands in that frame, so both wait for whichever is later,
    rounded up to whole frames: the bands by ``conv_delay`` band samples less, the amplitudes by whole frames. Frame
    k's amplitudes ramp from frame k - 1's, so the stream keeps the last frame's; frames before offline time 0 are
    silent (offline, the first frame ramps up from 0). ``forward(latents, stack, bands)``: the conv stack's bands,
    whose level the amplitudes follow, and the bands so far (the stack's plus a relative noise's, or the stack's
    alone); gives those bands with the bank added, ``delay`` band samples behind the offline ones."""

    def __init__(self, model: AudioVAE, input_delay: int, conv_delay: int):
        super().__init__()
        bank = model.decoder.partials
        assert bank is not None
        self.net, frames = cached_stack(bank.net, input_delay)
        late = max(-(-conv_delay // bank.frame), frames)  # in frames
        self.amplitude_wait = Delay(late - frames)
        self.bands_wait = Delay(late * bank.frame - conv_delay)  # the stack's and the bands so far, side by side
        self.frames_late: int = late
        self.bands, self.partials, self.frame = bank.bands, bank.partials, bank.frame
        self.register_buffer("frames_table", bank.frames_table.detach().clone())
        self.emitted = 0
        self.previous = torch.zeros(0)
        self.delay: int = late * bank.frame

    @torch.jit.export
    def reset(self) -> None:
        for layer in self.net:
            layer.reset()
        self.amplitude_wait.reset()
        self.bands_wait.reset()
        self.emitted = 0
        self.previous = torch.zeros(0)

    def forward(self, h: torch.Tensor, stack: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            h = layer(h)
        h = self.amplitude_wait(h)
        stack, bands = self.bands_wait(torch.cat([stack, bands], dim=1)).chunk(2, dim=1)
        frames = h.shape[-1]
        a = frame_amplitudes(h, self.bands, self.partials, band_envelope(stack, self.frame))
        first = self.emitted - self.frames_late  # negative for frames before offline time 0
        index = torch.arange(first, first + frames, device=h.device)
        a = a * (index >= 0).to(a.dtype)
        if self.previous.dim() != 3 or self.previous.shape[0] != a.shape[0]:
            self.previous = torch.zeros_like(a[..., 0])
        y = render_partials(a, self.frames_table, first, self.previous)
        self.previous = a[..., -1]
        self.emitted += frames
        return bands + y


class NoBranch(nn.Module):
    """Stands in for the noise branch or the offline partial bank of a model without one (TorchScript needs a module
    with the same methods; ``forward`` is never called)."""

    @torch.jit.export
    def reset(self) -> None:
        pass

    def forward(self, h: torch.Tensor, bands: torch.Tensor | None = None) -> torch.Tensor:
        return h


class NoBank(NoBranch):
    """Stands in for a stream's partial bank in a model without one (the stream's call has its own signature)."""

    def forward(self, h: torch.Tensor, stack: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
        return bands


class StreamingEncoder(nn.Module):
    """The PQMF analysis (unless the stack reads the audio) and the encoder's conv stack in a stream: audio (B, C, n)
    in, n a multiple of the hop, the
    conv map (B, the encoder's channels, n / hop) out, ``lookahead`` frames behind the offline map of the audio fed so
    far (:meth:`AudioVAE.encoder_map`).

    ``lookahead`` is also how far the offline encoder reads ahead: from its first k frames' worth of audio alone, the
    first k - lookahead frames of the map are those of the whole audio's."""

    def __init__(self, model: AudioVAE):
        super().__init__()
        pqmf = model.pqmf
        self.bands, self.hop, self.channels = pqmf.bands, model.hop, model.channels
        self.analyses: bool = pqmf.bands > 1 and not model.encoder.reads_audio
        ahead = pqmf.lookahead
        # PQMF analysis: a strided FIR of each channel (unused for one band, the identity, or a stack reading audio)
        self.analysis = CachedConv(pqmf.h_analysis, None, pqmf.bands, 1, (pqmf.taps - 1 - ahead, ahead), 0)
        delay = self.analysis.delay if self.analyses else 0
        self.net, delay = cached_stack(model.encoder.net, delay)
        self.lookahead: int = delay  # latent frames

    @torch.jit.export
    def reset(self) -> None:
        self.analysis.reset()
        for layer in self.net:
            layer.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        if n % self.hop != 0:
            raise ValueError(f"a chunk must hold a multiple of {self.hop} samples, got {n}")
        if c != self.channels:  # the caches' views read self.channels: another count was cut or padded silently
            raise ValueError(f"a chunk must have {self.channels} channels, got {c}")
        h = x
        if self.analyses:
            h = self.analysis(x.reshape(b * c, 1, n)).reshape(b, c * self.bands, n // self.bands)
        for layer in self.net:
            h = layer(h)
        return h


class StreamingDecoder(nn.Module):
    """The decoder in a stream: latent frames (B, D, frames) in, audio (B, C, frames * hop) out, ``lookahead``
    samples behind the offline decode of the frames fed so far (:meth:`AudioVAE.decode`). ``input_delay``: frames
    by which the latents themselves run behind the offline ones (a stream's encoder look-ahead; 0 for latents given).

    ``lookahead`` (with ``input_delay`` 0) is also how far the offline decoder reads ahead: decoded from its first k
    frames alone, the first k * hop - lookahead samples are those of the whole decode."""

    def __init__(self, model: AudioVAE, input_delay: int = 0):
        super().__init__()
        pqmf = model.pqmf
        self.bands, self.channels = pqmf.bands, model.channels
        self.latent_size: int = model.decoder.net[0].conv.in_channels
        self.frame_delay = Delay(model.frame_delay)  # a causal decoder reads the previous frame (offline too)
        latents_delay = input_delay
        self.decoder, delay = cached_stack(model.decoder.net[:-1], input_delay)  # up to the hidden map the noise reads
        self.decoder_out = CachedConv.of(model.decoder.net[-1], delay)
        self.has_noise: bool = model.decoder.noise is not None
        # the wave and the noise reach the bands at different delays: the earlier of the two waits for the later
        self.noise: nn.Module = StreamingNoise(model, delay) if model.decoder.noise is not None else NoBranch()
        wave_delay = self.decoder_out.delay
        delay = max(wave_delay, self.noise.delay) if self.has_noise else wave_delay
        self.wave_wait = Delay(delay - wave_delay)
        self.noise_wait = Delay(delay - self.noise.delay if self.has_noise else 0)
        # relative noise follows the stack's bands, lined up with it
        self.relative_noise: bool = self.has_noise and bool(model.decoder.noise.relative)
        self.noise_level = StreamingRms(model.decoder.noise.window if self.relative_noise else 1, delay)
        # the partial bank reads the (frame-delayed) latents and the bands, and adds to them
        self.has_partials: bool = model.decoder.partials is not None
        self.partials: nn.Module = (StreamingPartials(model, latents_delay, delay) if model.decoder.partials is not None
                                    else NoBank())  # fmt: skip
        delay = self.partials.delay if self.has_partials else delay
        self.synthesis = CachedConvTranspose(pqmf.h_synthesis, None, pqmf.bands, pqmf.lookahead, delay)
        self.lookahead: int = self.synthesis.delay if pqmf.bands > 1 else delay

    @torch.jit.export
    def reset(self) -> None:
        self.frame_delay.reset()
        for layer in self.decoder:
            layer.reset()
        self.decoder_out.reset()
        self.noise.reset()
        self.partials.reset()
        self.wave_wait.reset()
        self.noise_wait.reset()
        self.noise_level.reset()
        self.synthesis.reset()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 3 or z.shape[1] != self.latent_size:  # (another size was cut or read out of bounds silently)
            raise ValueError(f"latents must be (batch, {self.latent_size}, frames), got {list(z.shape)}")
        h = self.frame_delay(z)
        latents = h
        for layer in self.decoder:
            h = layer(h)
        wave, amp = self.decoder_out(h).chunk(2, dim=1)
        stack = self.wave_wait(wave * mod_sigmoid(amp))
        bands = stack
        if self.has_noise:
            noise = self.noise_wait(self.noise(h))
            if self.relative_noise:  # follows the stack's level, as the bank does (the bank: the stack's alone)
                bands = stack + noise * self.noise_level(stack)
            else:  # RAVE's absolute noise is part of the stack
                stack = stack + noise
                bands = stack
        if self.has_partials:
            bands = self.partials(latents, stack, bands)
        h = bands
        b, n = h.shape[0], h.shape[-1]  # n samples of each band
        if self.bands > 1:
            h = self.synthesis(h.reshape(b * self.channels, self.bands, n)).reshape(b, self.channels, n * self.bands)
        return h


def decoder_lookahead(model: AudioVAE) -> int:
    """Samples the offline decoder reads ahead of its latents (see :class:`StreamingDecoder`)."""
    return StreamingDecoder(model).lookahead


def encoder_lookahead(model: AudioVAE) -> int:
    """Latent frames the offline encoder reads ahead of its audio (see :class:`StreamingEncoder`)."""
    return StreamingEncoder(model).lookahead


class StreamingVAE(nn.Module):
    """``process(chunk)``: (B, C, n) audio in, (B, C, n) out, n a multiple of the hop; ``reset()`` starts afresh.

    The output is :meth:`AudioVAE.forward` (posterior mean) of everything fed so far, delayed by ``lookahead``
    samples; relative to the input it lags by ``latency`` = ``model.delay`` (a causal model's own lag) +
    ``lookahead``."""

    def __init__(self, model: AudioVAE):
        super().__init__()
        if model.mode.per_clip:
            raise ValueError("only models with a latent time series stream")
        self.encoder = StreamingEncoder(model)
        self.encoder_lookahead: int = self.encoder.lookahead  # latent frames
        self.posterior_mean = PosteriorMean(model)
        self.decoder = StreamingDecoder(model, self.encoder_lookahead)
        self.lookahead: int = self.decoder.lookahead
        self.latency: int = model.delay + self.lookahead

    @torch.jit.export
    def reset(self) -> None:
        self.encoder.reset()
        self.decoder.reset()

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, n) audio -> (B, D, n / hop) posterior means, ``encoder_lookahead`` frames behind the offline ones."""
        return self.posterior_mean(self.encoder(x))

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, frames) latents -> (B, C, frames * hop) audio (a causal model reads each frame one frame late)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.inference_mode()
    def process(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


# TorchScript compiles classes into one registry per process: two modules of the same classes scripted at once (two
# streaming models' first recordings on a fresh server) failed with "Can't redefine method: forward on class ...".
# (catch_warnings, which changes the process's warning filters, is not thread-safe either.)
_SCRIPTING = threading.Lock()


def script(module: nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script`` without its deprecation warning, one module at a time in the process: TorchScript is what
    nn~ and other real-time hosts load, and what runs a stream's many small ops at about half the Python interpreter's
    overhead."""
    with _SCRIPTING, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=DeprecationWarning)
        return torch.jit.script(module)
