"""The conv blocks compute the same map on (B, C, T) and on rows (B, C, 1, T) channels-last (the layout the
encoder and decoder stacks run in, see vaedemo.nn.fastconv.to_rows), forward and backward."""

import pytest
import torch

from vaedemo.nn.blocks import Conv, ConvUp, ResidualUnit, ResizeUp, keep_rows_weights
from vaedemo.nn.fastconv import from_rows, to_rows

BLOCKS = {  # name: (block, its input channels)
    "conv k7": (lambda causal: Conv(3, 5, 7, causal=causal), 3),
    "conv dilated": (lambda causal: Conv(4, 4, 3, dilation=9, causal=causal), 4),
    "conv strided": (lambda causal: Conv(4, 8, 8, stride=4, causal=causal), 4),
    "conv k1": (lambda causal: Conv(4, 6, 1, causal=causal), 4),
    "conv up": (lambda causal: ConvUp(6, 3, 4, causal=causal), 6),
    "resize up": (lambda causal: ResizeUp(6, 3, 2, causal=causal), 6),
    "residual unit": (lambda causal: ResidualUnit(4, 3, 3, causal), 4),
}


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_a_block_of_rows_is_the_block_of_its_map(name, causal):
    make, channels = BLOCKS[name]
    torch.manual_seed(0)
    block = make(causal).double()
    x = torch.randn(2, channels, 64, dtype=torch.float64, requires_grad=True)
    plain = block(x)
    plain_grads = torch.autograd.grad(plain.square().sum(), [x, *block.parameters()])
    rows_in = to_rows(x)
    assert rows_in.is_contiguous(memory_format=torch.channels_last)
    rows = block(rows_in)
    assert rows.dim() == 4 and rows.shape[2] == 1
    assert torch.allclose(from_rows(rows), plain, atol=1e-12, rtol=0)
    rows_grads = torch.autograd.grad(from_rows(rows).square().sum(), [x, *block.parameters()])
    for want, got in zip(plain_grads, rows_grads):
        assert torch.allclose(got, want, atol=1e-10, rtol=0)


def test_a_causal_conv_up_reads_no_frame_ahead_of_its_output():
    """Output sample m of a causal ConvUp (ratio r) mixes input frames m // r - 1 and m // r: a change of frame t
    moves samples t * r to (t + 2) * r - 1 and none before (cropped a sample early, sample t * r - 1 read frame t: a
    causal decoder looked ahead)."""
    torch.manual_seed(0)
    r, frames = 4, 16
    block = ConvUp(6, 3, r, causal=True).double()
    x = torch.randn(2, 6, frames, dtype=torch.float64)
    with torch.no_grad():
        for t in (5, 0, frames - 1):
            moved = x.clone()
            moved[..., t] += 1.0
            changed = (block(moved) - block(x)).abs().amax(dim=(0, 1)) > 1e-12
            assert not changed[: t * r].any()
            assert torch.nonzero(changed).flatten().tolist() == list(range(t * r, min(frames, t + 2) * r))


def agree(unit, x):
    with torch.inference_mode():
        assert torch.allclose(from_rows(unit(to_rows(x))), unit(x), atol=1e-5, rtol=1e-5)


def test_an_inferring_model_keeps_its_weights_rows_copies_while_they_stay_the_same():
    """A model marked as only inferring (keep_rows_weights, as the Engine's is) keeps each weight's channels-last
    copy (vaedemo.nn.fastconv.rows_weight); loading other weights, an optimiser's step, a move to float64 and a
    frozen weight under autograd all give the (B, C, T) conv's result, and the parameters keep nn.Conv1d's layout."""
    torch.manual_seed(0)
    a, b = keep_rows_weights(ResidualUnit(8, 3, 3, False)), ResidualUnit(8, 3, 3, False)
    x = torch.randn(1, 8, 40)
    agree(a, x)
    assert hasattr(a.conv1.conv.weight, "rows_copy") and all(p.is_contiguous() for p in a.parameters())
    a.load_state_dict(b.state_dict())
    agree(a, x)
    loss = from_rows(a(to_rows(x))).square().sum()
    loss.backward()
    torch.optim.SGD(a.parameters(), lr=0.01).step()
    agree(a, x)
    agree(a.double(), x.double())
    a.requires_grad_(False)  # frozen: the kept copy under autograd, the input's gradient through it
    xd = x.double().requires_grad_(True)
    (grad_rows,) = torch.autograd.grad(from_rows(a(to_rows(xd))).sum(), xd)
    (grad_plain,) = torch.autograd.grad(a(xd).sum(), xd)
    assert torch.allclose(grad_rows, grad_plain, atol=1e-12, rtol=0)


def test_a_training_model_reads_its_weights_as_they_are_after_a_fused_step():
    """A fused Adam step writes into a weight without bumping its version: a model in training (not marked) copies
    its weights each call, so that validation between steps reads the trained weights, not a copy of the first."""
    torch.manual_seed(0)
    unit = ResidualUnit(8, 3, 3, False)
    opt = torch.optim.Adam(unit.parameters(), lr=0.05, fused=True)
    x = torch.randn(2, 8, 40)
    for _ in range(3):
        unit.eval()
        agree(unit, x)  # validation, as Lightning runs it
        unit.train()
        from_rows(unit(to_rows(x))).square().sum().backward()
        opt.step()
        opt.zero_grad()
    assert not hasattr(unit.conv1.conv.weight, "rows_copy")


def test_a_model_loaded_in_inference_mode_infers():
    """Its weights are inference tensors, which have no version to key a kept copy by: copied each call."""
    torch.manual_seed(0)
    with torch.inference_mode():
        unit = keep_rows_weights(ResidualUnit(8, 3, 3, False))
        agree(unit, torch.randn(1, 8, 40))
