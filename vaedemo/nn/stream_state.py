"""A stream's state made explicit: the past each cached convolution keeps, as inputs and outputs of a function.

:class:`~vaedemo.nn.streaming.StreamingVAE` keeps its state inside its modules (each :class:`CachedConv`'s ``cache``,
each :class:`Delay`'s), which a graph runtime such as onnxruntime cannot do: a graph keeps nothing between calls.
:class:`ExplicitState` runs one half of the stream (``encode`` or ``decode``) with those caches passed in and gives
them back after the chunk, so the host carries them: zeros before the first chunk (what a fresh stream starts from),
then each call's new states as the next call's states.

That is the whole state only where no block counts samples: a causal model whose blocks all read their input from
the stream's first sample, without a noise branch or a partial bank. A centred model's late blocks zero the first
samples they see (they stand for times before the start), a noise branch addresses its noise by block number and a
partial bank its sinusoids' phase: each counts, in a Python int, what such graphs cannot carry.
:func:`counted_state` names the first such part.
"""

from __future__ import annotations

import torch
from torch import nn

from .streaming import StreamingNoise, StreamingPartials, StreamingVAE


def counted_state(stream: StreamingVAE) -> str | None:
    """What of the stream's state counts samples (so that its caches alone do not carry it), or None."""
    for module in stream.modules():
        if isinstance(module, StreamingNoise):
            return "has a noise branch, whose noise is numbered by the blocks already played"
        if isinstance(module, StreamingPartials):
            return "has a partial bank, whose sinusoids' phase counts the frames already played"
        if getattr(module, "input_delay", 0) > 0:
            return "has blocks that start late (a centred model's look-ahead) and zero their first samples"
    return None


def state_holders(stream: StreamingVAE, part: nn.Module) -> list[nn.Module]:
    """The modules of ``part`` (``stream.encoder`` or ``stream.decoder``) that keep a cache between chunks, in a fixed
    order. A cache has its shape only once a chunk has passed: the stream is fed one frame of silence (batch 1) and
    reset after."""
    with torch.no_grad():
        stream.reset()
        stream(torch.zeros(1, stream.encoder.channels, stream.encoder.hop))
    inside = {id(m) for m in part.modules()}
    holders = [m for m in stream.modules()
               if id(m) in inside and isinstance(getattr(m, "cache", None), torch.Tensor) and m.cache.dim() == 3]  # fmt: skip
    shapes = [tuple(m.cache.shape) for m in holders]
    stream.reset()
    for module, shape in zip(holders, shapes):
        module.state_shape = shape  # (batch 1, channels, samples kept)
    return holders


KEPT = ("cache", "seen")  # what a stream's modules change as a chunk passes (a count no block of such a stream reads)


class ExplicitState(nn.Module):
    """``forward(x, states)`` -> ``(y, new_states)``: ``stream.<method>(x)`` run from ``states`` (one tensor for each
    of ``holders``, shaped ``state_shape``), with the states it leaves after ``x``. The stream's own state is left as it
    was, so the module traces as a pure function (what ``torch.export`` requires of module attributes)."""

    def __init__(self, stream: StreamingVAE, method: str, holders: list[nn.Module]):
        super().__init__()
        self.stream, self.method, self.holders = stream, method, holders

    def forward(self, x: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        kept = [(m, name, getattr(m, name)) for m in self.stream.modules() for name in KEPT if hasattr(m, name)]
        for module, state in zip(self.holders, states):
            module.cache = state
        try:
            y = getattr(self.stream, self.method)(x)
            return y, [m.cache for m in self.holders]
        finally:
            for module, name, value in kept:
                setattr(module, name, value)
