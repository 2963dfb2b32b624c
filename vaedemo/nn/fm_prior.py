"""A flow-matching (rectified-flow) prior over one-vector latents: a velocity field sampled in a few ODE steps.

Training pairs a Gaussian draw x0 with a latent z of the data, picks t ~ U(0, 1) and regresses the velocity at
x_t = (1 - t) x0 + t z onto z - x0 (Liu et al. 2022, rectified flow; Lipman et al. 2022, flow matching). Sampling
integrates dx/dt = v(x, t) from x0 ~ N(0, T^2 I) at t = 0 to t = 1 with ``steps`` Euler steps. Unlike RealNVP it
gives no exact density; it is trained after the model, on its latents, and compared with the other priors in
``python -m vaedemo.priors``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class FlowMatchingPrior(nn.Module):
    """Velocity MLP v(x, t) on (N, D) latents; ``sample`` integrates it from Gaussian noise."""

    def __init__(self, dim: int, hidden: int = 512, layers: int = 3, time_features: int = 32):
        super().__init__()
        self.dim, self.time_features = dim, time_features
        blocks: list[nn.Module] = []
        width = dim + time_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, dim))

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """Sinusoidal features of t in [0, 1]: (N,) -> (N, time_features)."""
        half = self.time_features // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=t.dtype) * (-math.log(1000.0) / max(1, half - 1)))
        angles = t[:, None] * freqs[None] * 2 * math.pi
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.time_embedding(t)], dim=1))

    def loss(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The flow-matching regression loss on a batch of data latents (N, D)."""
        x0 = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
        t = torch.rand(z.shape[0], generator=generator, dtype=z.dtype).to(z.device)
        xt = (1 - t[:, None]) * x0 + t[:, None] * z
        return (self(xt, t) - (z - x0)).square().sum(dim=1).mean()

    @torch.no_grad()
    def sample(self, x0: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """Integrate from the noise ``x0`` (N, D) at t = 0 to t = 1 with ``steps`` Euler steps."""
        x, dt = x0, 1.0 / steps
        for k in range(steps):
            t = torch.full((x.shape[0],), k * dt, dtype=x.dtype, device=x.device)
            x = x + dt * self(x, t)
        return x
