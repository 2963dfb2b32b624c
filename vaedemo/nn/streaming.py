"""Streaming a causal temporal AudioVAE chunk by chunk, with cached convolutions.

Every convolution keeps what it needs from the previous chunk: a causal conv keeps its last ``pad`` input samples
(its left context), a transposed conv and the PQMF synthesis keep the part of their output that overlaps the next
chunk (overlap-add), and the decoder keeps the last latent frame (its one-frame delay). Nothing is recomputed, so a
chunk costs what its own samples cost. The concatenated output equals the offline forward pass of the whole signal
(:meth:`AudioVAE.forward` with ``sample=False``): the input delayed by :attr:`AudioVAE.delay` samples.

Only causal models with a latent time series stream: a centred convolution would need samples from the future, and
a one-vector-per-clip model needs the whole clip before it can encode anything.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Act, Conv, ConvUp, ResidualUnit
from .decoder import mod_sigmoid
from .vae import AudioVAE


class _CachedConv:
    """A causal :class:`Conv` fed chunk by chunk: its left padding comes from the previous chunk."""

    def __init__(self, conv: Conv):
        self.conv, self.context = conv, conv.pad[0]
        self.cache: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.cache is None:
            self.cache = x.new_zeros(*x.shape[:-1], self.context)
        both = torch.cat([self.cache, x], dim=-1)
        self.cache = both[..., both.shape[-1] - self.context :]
        return self.conv.conv(both)


class _CachedConvUp:
    """A causal :class:`ConvUp`: the r samples past the chunk's end (minus the bias, counted once) go to the next."""

    def __init__(self, up: ConvUp):
        self.up, self.ratio = up, up.ratio
        self.overlap: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up.conv(x)
        keep = x.shape[-1] * self.ratio
        if self.overlap is not None:
            y = torch.cat([y[..., : self.ratio] + self.overlap, y[..., self.ratio :]], dim=-1)
        bias = self.up.conv.bias[:, None] if self.up.conv.bias is not None else 0.0
        self.overlap = y[..., keep:] - bias
        return y[..., :keep]


class _CachedResidual:
    def __init__(self, unit: ResidualUnit):
        self.unit, self.conv1 = unit, _CachedConv(unit.conv1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.unit.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.2)), 0.2))


def _cached(layer: nn.Module):
    if isinstance(layer, Conv):
        return _CachedConv(layer)
    if isinstance(layer, ConvUp):
        return _CachedConvUp(layer)
    if isinstance(layer, ResidualUnit):
        return _CachedResidual(layer)
    if isinstance(layer, (Act, nn.Identity)):
        return layer
    raise TypeError(f"{type(layer).__name__} cannot stream")


class StreamingVAE:
    """``process(chunk)``: (B, C, n) audio in, (B, C, n) out, n a multiple of the hop; ``reset()`` starts afresh."""

    def __init__(self, model: AudioVAE):
        if not model.cfg.causal or model.mode.per_clip:
            raise ValueError("only causal models with a latent time series stream")
        self.model = model
        self.reset()

    def reset(self) -> None:
        m = self.model
        self.encoder = [_cached(layer) for layer in m.encoder.net]
        self.decoder = [_cached(layer) for layer in m.decoder.net]
        self.analysis_cache: torch.Tensor | None = None
        self.synthesis_overlap: torch.Tensor | None = None
        self.last_frame: torch.Tensor | None = None

    def _analysis(self, x: torch.Tensor) -> torch.Tensor:
        pqmf = self.model.pqmf
        if pqmf.bands == 1:
            return x
        b, c, n = x.shape
        flat = x.reshape(b * c, 1, n)
        if self.analysis_cache is None:
            self.analysis_cache = flat.new_zeros(b * c, 1, pqmf.taps - 1)
        both = torch.cat([self.analysis_cache, flat], dim=-1)
        self.analysis_cache = both[..., n:]
        y = F.conv1d(both, pqmf.h_analysis.to(x.dtype), stride=pqmf.bands)
        return y.reshape(b, c * pqmf.bands, n // pqmf.bands)

    def _synthesis(self, y: torch.Tensor) -> torch.Tensor:
        pqmf = self.model.pqmf
        if pqmf.bands == 1:
            return y
        b, cm, n = y.shape
        c = cm // pqmf.bands
        full = F.conv_transpose1d(y.reshape(b * c, pqmf.bands, n), pqmf.h_synthesis.to(y.dtype), stride=pqmf.bands)
        keep = n * pqmf.bands
        if self.synthesis_overlap is not None:
            tail = self.synthesis_overlap.shape[-1]
            full = torch.cat([full[..., :tail] + self.synthesis_overlap, full[..., tail:]], dim=-1)
        self.synthesis_overlap = full[..., keep:]
        return full[..., :keep].reshape(b, c, keep)

    def _delay_frame(self, z: torch.Tensor) -> torch.Tensor:
        if self.last_frame is None:
            self.last_frame = torch.zeros_like(z[..., :1])
        delayed = torch.cat([self.last_frame, z[..., :-1]], dim=-1)
        self.last_frame = z[..., -1:]
        return delayed

    @torch.inference_mode()
    def process(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.model.hop:
            raise ValueError(f"a chunk must hold a multiple of {self.model.hop} samples, got {x.shape[-1]}")
        h = self._analysis(x)
        for layer in self.encoder:
            h = layer(h)
        z = self._delay_frame(self.model.latent.posterior_mean(self.model.encoder.head(h)))
        h = self.model.decoder.head(z)
        for layer in self.decoder:
            h = layer(h)
        wave, amp = h.chunk(2, dim=1)
        return self._synthesis(wave * mod_sigmoid(amp))
