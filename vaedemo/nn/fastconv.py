"""Convolutions in forms that run faster on CPU, with the same maths (float rounding aside): the discriminator's, and
transposed convolutions as phases of a stride-1 conv (the PQMF synthesis and the streaming decoder).

oneDNN is fast for dense convolutions with many channels and slow for the discriminator's other shapes: strided
convolutions with long kernels and few channels per group, convolutions of a single input channel, and 2-D
convolutions whose kernel spans one column. Measured on the development machine (1 thread, 16 clips of 1 s,
forward + backward): a stride-4, kernel-41 grouped conv 186 -> 115 ms as a polyphase conv; a 1-channel kernel-15
conv 128 -> 54 ms as a matrix product; a (5, 1) conv2d of a period discriminator 51 -> 10 ms as a conv1d.
Each function takes the module (weights, weight norm and all) so parameters and checkpoints stay as they are.
A transposed conv of stride s with one output channel (the PQMF synthesis) ran 3.3 ms per second of 16 bands, as
phases 0.43 ms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def polyphase_conv1d(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A stride-s conv as a stride-1 conv over the s polyphase components of its input: s times the channels,
    ceil(k / s) taps. Channel c*s + phase of the rearranged input is phase ``phase`` of channel c, which keeps
    every group's channels together."""
    (s,), (pad,), (k,) = conv.stride, conv.padding, conv.kernel_size
    b, c, length = x.shape
    xp = F.pad(x, (pad, pad + (-(length + 2 * pad)) % s))
    xs = xp.reshape(b, c, -1, s).transpose(2, 3).reshape(b, c * s, -1)
    out_length = (length + 2 * pad - k) // s + 1
    y = F.conv1d(xs, polyphase_weight(conv.weight, s), conv.bias, groups=conv.groups)  # weight norm applied
    return y[..., :out_length]


def polyphase_weight(w: torch.Tensor, s: int) -> torch.Tensor:
    """The weight (O, C, k) of a stride-s conv -> that of :func:`polyphase_conv1d`'s stride-1 conv, (O, C * s,
    ceil(k / s)): input channel c * s + phase, tap j reads the frame j of that phase (sample j * s + phase)."""
    o, c, k = w.shape
    taps = -(-k // s)
    return F.pad(w, (0, taps * s - k)).reshape(o, c, taps, s).transpose(2, 3).reshape(o, c * s, taps)


def single_channel_conv1d(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A stride-1 conv of one input channel as a matrix product of the input's frames with the kernels."""
    (pad,), (k,) = conv.padding, conv.kernel_size
    frames = F.pad(x[:, 0], (pad, pad)).unfold(-1, k, 1)  # (B, L, k), a view
    y = torch.matmul(frames, conv.weight[:, 0].T)  # (B, L, O)
    return (y + conv.bias).transpose(1, 2) if conv.bias is not None else y.transpose(1, 2)


def pointwise_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A kernel-1 conv (no groups; ``weight`` (O, C, 1)) as one batched matrix product with the bias folded in.
    oneDNN's conv of this shape ran badly on two threads: a (8, 24, 2752) batch 3.8 ms forward and 10.7 ms forward +
    backward, against 0.26 and 1.4 ms as a product (one thread: about the same either way); one clip 0.17-0.34 ms
    against 0.06-0.08. Tensors, not the module, as arguments: TorchScript exports call it too."""
    w = weight[:, :, 0].expand(x.shape[0], -1, -1)
    if bias is None:
        return torch.bmm(w, x)
    return torch.baddbmm(bias.unsqueeze(0).unsqueeze(-1), w, x)


def to_rows(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T) -> the same map as "rows", (B, C, 1, T) in channels-last memory: each time step's channels side by
    side, the layout oneDNN's convolutions take without reordering. The generator's stacks run in it (the blocks of
    :mod:`~vaedemo.nn.blocks` take either layout): an encoder or decoder stack of the shipped shape ran 1.25x faster
    than on (B, C, T), one clip, two threads, and training steps the same."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


def from_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows (B, C, 1, T) -> (B, C, T), a view (channels-last strides: what reads it copies it if it must)."""
    return x.squeeze(2)


def rows_weight(weight: torch.Tensor, keep: bool = False) -> torch.Tensor:
    """A conv's weight (O, I, k), or a transposed conv's (I, O, k), as a conv of rows takes it: as rows itself,
    (.., 1, k) in channels-last memory (else the conv makes that copy on every call). The parameters keep nn.Conv1d's layout:
    fused optimisers (whose CPU kernels pair a parameter with its moments by memory order), DDP's buckets and
    checkpoints expect it.

    ``keep`` (a model that only infers, see :func:`~vaedemo.nn.blocks.keep_rows_weights`): outside autograd the copy
    is kept, on the weight itself, while the weight stays the same tensor at the same version (0.3 ms of a one-shot's
    10 ms). Only there: a fused optimiser's step writes into a weight without bumping its version, and an edit
    through ``.data`` does not either, so a model in training would read a stale copy; an inference tensor has no
    version at all."""
    if not keep or weight.is_inference() or (weight.requires_grad and torch.is_grad_enabled()):
        return to_rows(weight)  # (the same layout either way, so the same sums)
    state = (weight.data_ptr(), weight._version, weight.dtype, weight.device, weight.shape)
    kept = getattr(weight, "rows_copy", None)
    if kept is None or kept[0] != state:
        with torch.inference_mode(False), torch.no_grad():  # a plain tensor: autograd may read it (refinement)
            kept = (state, to_rows(weight.detach()))
        weight.rows_copy = kept
    return kept[1]


def pointwise_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """:func:`pointwise_conv1d` of rows (see :func:`to_rows`): one matrix product of the (B * T, C) frames, rows out."""
    b, _, _, t = x.shape
    frames = x.permute(0, 2, 3, 1).reshape(b * t, x.shape[1])  # a view of channels-last memory
    w = weight[:, :, 0].t()
    y = frames @ w if bias is None else torch.addmm(bias, frames, w)
    return y.reshape(b, 1, t, -1).permute(0, 3, 1, 2)


def apply_conv1d(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` through the fastest equivalent form for its shape."""
    if conv.stride[0] > 1:
        return polyphase_conv1d(conv, x)
    if conv.in_channels == 1 and conv.groups == 1 and conv.dilation[0] == 1:
        return single_channel_conv1d(conv, x)
    return conv(x)


def fold_columns(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B * W, C, H): each column a sequence of its own, row b * W + w."""
    b, c, h, w = x.shape
    return x.permute(0, 3, 1, 2).reshape(b * w, c, h)


def column_conv(conv: nn.Conv2d, columns: torch.Tensor) -> torch.Tensor:
    """A conv2d with a (k, 1) kernel applied to :func:`fold_columns` output, as a conv1d over every column."""
    return F.conv1d(columns, conv.weight[..., 0], conv.bias, stride=conv.stride[0], padding=conv.padding[0])


def transposed_as_phases(weight: torch.Tensor, stride: int) -> torch.Tensor:
    """The weight (in, out, K) of a transposed conv of stride s as the weight (out * s, in, ceil(K / s)) of a stride-1
    conv over the input frames, padded by ceil(K / s) - 1 on the left: output block t (s samples) is the sum over
    phases q of W_q^T x[t - q], and channel o * s + j is sample j of block t of output channel o (see
    :func:`interleave_phases`)."""
    in_ch, out_ch, kernel = weight.shape
    phases = -(-kernel // stride)
    w = F.pad(weight, (0, phases * stride - kernel)).reshape(in_ch, out_ch, phases, stride)
    # conv tap i reads frame t - (phases - 1) + i, i.e. phase q = phases - 1 - i: flip the phases
    return w.permute(1, 3, 0, 2).reshape(out_ch * stride, in_ch, phases).flip(-1)


def interleave_phases(y: torch.Tensor, out_ch: int, stride: int) -> torch.Tensor:
    """(B, out * s, n) phases -> (B, out, n * s) samples: channel o * s + j is sample j of block t."""
    b, n = y.shape[0], y.shape[-1]
    return y.reshape(b, out_ch, stride, n).transpose(2, 3).reshape(b, out_ch, n * stride)
