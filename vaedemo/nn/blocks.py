"""Building blocks: padded 1-D convs (causal or centred), residual dilated units, strided down/up-sampling.

Every block maps a length L to exactly L (or L / r, L * r for the resampling blocks): padding is explicit, so the
exact-length contract of :class:`~vaedemo.nn.vae.AudioVAE` only needs the input padded to a multiple of the hop.
Each block also reports its receptive field in its own input samples (``span``) and how it resamples (``stride`` /
``ratio``); :func:`stack_span` sums them over a stack, which sizes seamless chunking. ``lookahead`` says how far a
centred block reads ahead (0 when causal); :mod:`~vaedemo.nn.streaming` adds these up into a stream's latency.
``lookbehind``, how far a conv reads back, sums up (:func:`stack_lookbehind`) into where an encoder's output stops
depending on what came before (a one-shot's silent tail).

Every block takes its map as (B, C, T) or as rows, (B, C, 1, T) in channels-last memory
(:func:`~vaedemo.nn.fastconv.to_rows`), and returns the layout it was given: the encoder and decoder run their stacks
as rows, about 1.25x faster on CPU; a TorchScript export and the partial bank call them on (B, C, T).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fastconv import from_rows, interleave_phases, pointwise_conv1d, pointwise_rows, rows_weight, to_rows


def _split(total: int, causal: bool) -> tuple[int, int]:
    return (total, 0) if causal else (total // 2, total - total // 2)


class Conv(nn.Module):
    """Conv1d with 'same' padding (stride 1) or length / stride output (stride > 1), causal or centred."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int = 1, stride: int = 1, causal: bool = False):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, dilation=dilation)
        self.pad = _split(dilation * (kernel - 1) + 1 - stride, causal)
        self.span = dilation * (kernel - 1)
        self.stride = stride
        self.lookahead = self.pad[1]  # input samples read past an output's own position (its right padding)
        self.lookbehind = self.pad[0]  # and before it (its left padding)
        self.keep_rows_weight = False  # see keep_rows_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T), or rows (B, C, 1, T) (:func:`~vaedemo.nn.fastconv.to_rows`), in the same layout out."""
        c = self.conv
        left, right = self.pad
        if x.dim() == 4 and not torch.jit.is_scripting():  # (not compiled: a TorchScript export runs on (B, C, T))
            if left != right:
                x, left = F.pad(x, (left, right)), 0
            w = rows_weight(c.weight, self.keep_rows_weight)
            return F.conv2d(x, w, c.bias, (1, c.stride[0]), (0, left), (1, c.dilation[0]))
        if left == right:  # the conv pads inside itself: the same sums without a padded copy of the input
            return F.conv1d(x, c.weight, c.bias, c.stride, left, c.dilation)
        return c(F.pad(x, self.pad))


class ConvUp(nn.Module):
    """Transposed conv (kernel 2r, stride r) cropped to exactly length * r.

    Output sample m lies in input frame i = m // r and mixes frames i - 1 and i when causal (the surplus r samples
    are cropped on the right, as EnCodec does), frames i and i + 1 around the centre otherwise."""

    def __init__(self, cin: int, cout: int, ratio: int, causal: bool = False):
        super().__init__()
        self.ratio = ratio
        self.conv = nn.ConvTranspose1d(cin, cout, 2 * ratio, stride=ratio)
        self.crop = (0, ratio) if causal else _split(ratio, False)
        self.span = 2  # input frames that touch one output sample
        self.lookahead = self.crop[0]  # output samples cropped on the left: a stream that keeps them runs that late
        self.keep_rows_weight = False  # see keep_rows_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) or rows (B, C, 1, T), in the same layout out."""
        c = self.conv
        if x.dim() == 4 and not torch.jit.is_scripting():
            y = F.conv_transpose2d(x, rows_weight(c.weight, self.keep_rows_weight), c.bias, (1, c.stride[0]))
        else:
            y = c(x)
        return y[..., self.crop[0] : y.shape[-1] - self.crop[1]]


class ResizeUp(nn.Module):
    """Nearest-neighbour upsampling by r, then a conv of 2r + 1 taps at the new rate (causal or centred): length * r.

    Why not a transposed conv: its r kernel phases differ, so a constant input comes out periodic with period r, and
    through a decoder's whole stack a constant latent decodes to an exactly frame-periodic waveform (a comb at the
    frame rate and its harmonics, heard as a buzz under sustained partials). Here every output sample sees the same
    kernel over a piecewise-constant input: a constant input gives a constant output.

    Computed in polyphase form, the same sums in another order: output sample n * r + p reads input frames n - 1 .. n + 1
    (centred; n - 2 .. n when causal), and the taps that fall on one frame add up, so phase p is a 3-tap conv at the
    input rate. All r phases run as one conv with r * cout outputs, then interleave: 3 instead of 2r + 1 multiplies
    per output sample and input channel. The weights stay those of the (2r + 1)-tap conv."""

    def __init__(self, cin: int, cout: int, ratio: int, causal: bool = False):
        super().__init__()
        self.ratio = ratio
        self.conv = Conv(cin, cout, 2 * ratio + 1, causal=causal)
        self.span = 3  # input frames that touch one output sample: its own and, within r samples, each neighbour
        self.lookahead = self.conv.lookahead  # output samples the conv reads ahead (r when centred)
        left = self.conv.pad[0]  # r centred, 2r causal: tap k of phase p reads frame n + (p + k - left) // r
        first = -left // ratio
        self.frame_pad = (-first, 2 + first)
        taps = torch.zeros(ratio, 2 * ratio + 1, 3)
        for phase in range(ratio):
            for k in range(2 * ratio + 1):
                taps[phase, k, (phase + k - left) // ratio - first] = 1.0
        self.register_buffer("taps", taps, persistent=False)  # (phase, tap, frame): which frame each tap reads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) or rows (B, C, 1, T), in the same layout out (rows through (B, C, T): not a shipped shape)."""
        if x.dim() == 4:
            return to_rows(self.forward(from_rows(x)))
        w, b = self.conv.conv.weight, self.conv.conv.bias
        cout = w.shape[0]
        kernels = torch.einsum("pkf,oik->opif", self.taps.to(w.dtype), w).reshape(cout * self.ratio, w.shape[1], 3)
        bias = b.repeat_interleave(self.ratio) if b is not None else None
        z = F.conv1d(F.pad(x, self.frame_pad), kernels, bias)  # (B, cout * r, T): channel o * r + p is phase p
        return interleave_phases(z, cout, self.ratio)


class ResidualUnit(nn.Module):
    """x + conv1x1(act(conv_k,d(act(x)))): the dilated unit of RAVE v2 / DAC."""

    def __init__(self, channels: int, kernel: int, dilation: int, causal: bool):
        super().__init__()
        self.conv1 = Conv(channels, channels, kernel, dilation=dilation, causal=causal)
        self.conv2 = nn.Conv1d(channels, channels, 1)
        self.span = self.conv1.span
        self.lookahead = self.conv1.lookahead
        self.lookbehind = self.conv1.lookbehind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) or rows (B, C, 1, T), in the same layout out."""
        # in place where a tensor is the unit's own and nothing else reads it (neither backward needs it)
        h = F.leaky_relu(self.conv1(F.leaky_relu(x, 0.2)), 0.2, inplace=True)
        if x.dim() == 4:  # conv2(h), faster
            return pointwise_rows(h, self.conv2.weight, self.conv2.bias).add_(x)
        return pointwise_conv1d(h, self.conv2.weight, self.conv2.bias).add_(x)


def keep_rows_weights(model: nn.Module) -> nn.Module:
    """Mark ``model``'s convs to keep their weights' rows copies (:func:`~vaedemo.nn.fastconv.rows_weight`): for a
    model that only infers (the Engine's); one that trains must not be marked."""
    for module in model.modules():
        if isinstance(module, (Conv, ConvUp)):
            module.keep_rows_weight = True
    return model


def stack_span(layers: nn.Sequential, rate: int = 1) -> int:
    """Receptive field of a stack in samples at the rate of ``rate`` x its input's, from each block's span and
    resampling (for a decoder, ``rate`` is the total upsampling, so that the result is in output samples)."""
    total = 0
    for layer in layers:
        total += getattr(layer, "span", 0) * rate
        rate = rate * getattr(layer, "stride", 1) // getattr(layer, "ratio", 1)
    return total + 1


def stack_lookbehind(layers: nn.Sequential) -> int:
    """How far before an output's own position (output k of a stack that downsamples by R sits at input k * R) the
    input it depends on starts, in input samples: each block's ``lookbehind`` at its input's rate, summed."""
    total, rate = 0, 1
    for layer in layers:
        if hasattr(layer, "ratio"):
            raise ValueError("stack_lookbehind is for stacks that do not upsample")
        total += getattr(layer, "lookbehind", 0) * rate
        rate *= getattr(layer, "stride", 1)
    return total


class Act(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2)
