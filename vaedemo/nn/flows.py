"""RealNVP: affine coupling layers with alternating masks, bounded log-scales and zero-initialised last layers.

Works on (N, D) tensors. ``forward(x) -> (y, logdet)`` and ``inverse(y) -> (x, logdet)``; the log-det is always of
shape (N,) (summed over every non-batch dim) and nothing is ever materialised at (N, D, D). A freshly built flow is
the identity, because the last layer of every coupling network starts at zero.

>>> flow = RealNVP(8, layers=4, hidden=32)
>>> x = torch.randn(3, 8)
>>> y, ld = flow(x)
>>> ld.shape
torch.Size([3])
"""

from __future__ import annotations

import torch
from torch import nn


class AffineCoupling(nn.Module):
    """y_b = x_b * exp(s(x_a)) + t(x_a), y_a = x_a; ``parity`` picks which half (even / odd dims) is x_a."""

    def __init__(self, dim: int, hidden: int, parity: int, bound: float):
        super().__init__()
        self.register_buffer("idx_a", torch.arange(parity, dim, 2), persistent=False)
        self.register_buffer("idx_b", torch.arange(1 - parity, dim, 2), persistent=False)
        da, db = len(self.idx_a), len(self.idx_b)
        self.bound = bound
        self.net = nn.Sequential(
            nn.Linear(da, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2 * db)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, xa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(xa).to(xa.dtype).chunk(2, dim=-1)  # autocast may run the net in half precision
        return self.bound * torch.tanh(s / self.bound), t  # soft clamp: |s| < bound

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa, xb = x[:, self.idx_a], x[:, self.idx_b]
        s, t = self._scale_shift(xa)
        y = x.index_copy(1, self.idx_b, xb * torch.exp(s) + t)
        return y, s.sum(dim=-1)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ya, yb = y[:, self.idx_a], y[:, self.idx_b]
        s, t = self._scale_shift(ya)
        x = y.index_copy(1, self.idx_b, (yb - t) * torch.exp(-s))
        return x, -s.sum(dim=-1)


class RealNVP(nn.Module):
    """A stack of affine couplings whose masks alternate between even and odd dimensions."""

    def __init__(self, dim: int, layers: int, hidden: int = 256, bound: float = 2.0):
        super().__init__()
        if dim < 2:
            raise ValueError("RealNVP needs at least 2 dimensions")
        self.dim = dim
        self.couplings = nn.ModuleList(AffineCoupling(dim, hidden, i % 2, bound) for i in range(layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for c in self.couplings:
            x, ld = c(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = y.new_zeros(y.shape[0])
        for c in reversed(self.couplings):
            y, ld = c.inverse(y)
            logdet = logdet + ld
        return y, logdet
