"""The conv blocks compute the same map on (B, C, T) and on rows (B, C, 1, T) channels-last (the layout the
encoder and decoder stacks run in, see vaedemo.nn.fastconv.to_rows), forward and backward."""

import pytest
import torch

from vaedemo.nn.blocks import Conv, ConvUp, ResidualUnit, ResizeUp
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


def test_conv_weights_are_laid_out_for_rows_and_load_from_any_layout():
    """A conv's weight, unsqueezed to 2-D, is channels-last (a conv of rows takes it without a copy); a state dict
    saved contiguous (as bundles are) loads into it with the same values."""
    torch.manual_seed(0)
    a, b = ResidualUnit(8, 3, 1, False), ResidualUnit(8, 3, 1, False)
    assert a.conv1.conv.weight.unsqueeze(2).is_contiguous(memory_format=torch.channels_last)
    b.load_state_dict({k: v.contiguous() for k, v in a.state_dict().items()})
    assert b.conv1.conv.weight.unsqueeze(2).is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(b.conv1.conv.weight, a.conv1.conv.weight)
    x = torch.randn(1, 8, 32)
    assert torch.equal(b(x), a(x))
