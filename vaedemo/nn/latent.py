"""Posterior (diagonal Gaussian, optionally pushed through a RealNVP flow), prior (standard normal or a RealNVP flow)
and the KL term between them.

Latents are (B, D) in single mode and (B, D, frames) in temporal mode; flows act on each D-vector (frames are folded
into the batch) and every per-example quantity (log-density, KL) has shape (B,).

KL: analytic when both sides are Gaussian; otherwise one Monte-Carlo sample,
``log q(z_K|x) - log p(z_K)`` with ``log q(z_K) = log N(z_0; mu, sigma) - log|det df/dz_0|`` and
``log p(z) = log N(g^-1(z); 0, I) + log|det dg^-1/dz|``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .flows import RealNVP

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p=0.0, logvar_p=0.0) -> torch.Tensor:
    """Elementwise KL(N(mu_q, var_q) || N(mu_p, var_p))."""
    mu_p = torch.as_tensor(mu_p, dtype=mu_q.dtype, device=mu_q.device)
    logvar_p = torch.as_tensor(logvar_p, dtype=mu_q.dtype, device=mu_q.device)
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1)


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 (what CUDA autocast gives out of a conv) -> float32; float32 and float64 stay as they are.
    Densities, KL terms and flows are computed at this precision: exp and log of half-precision values overflow."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def standard_normal_log_prob(u: torch.Tensor) -> torch.Tensor:
    """Sum over dim 1 of log N(u; 0, I) for (N, D) input -> (N,)."""
    return -0.5 * (u**2 + LOG_2PI).sum(dim=1)


def _fold(z: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """(B, D) or (B, D, F) -> (N, D) for the flows."""
    if z.dim() == 2:
        return z, tuple(z.shape)
    b, d, f = z.shape
    return z.permute(0, 2, 1).reshape(b * f, d), (b, d, f)


def _unfold(z: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    if len(shape) == 2:
        return z
    b, d, f = shape
    return z.reshape(b, f, d).permute(0, 2, 1)


def _per_example(v: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Per-vector values (N,) -> per-example sums (B,)."""
    return v.reshape(shape[0], -1).sum(dim=1)


class Latent(nn.Module):
    def __init__(self, m: ModelConfig):
        super().__init__()
        self.size = m.latent_size
        self.posterior_flow = (
            RealNVP(m.latent_size, m.posterior_flow_layers, m.flow_hidden, m.flow_scale_bound)
            if m.posterior_flow_layers
            else None
        )
        self.prior_flow = (
            RealNVP(m.latent_size, m.prior_flow_layers, m.flow_hidden, m.flow_scale_bound)
            if m.prior_flow_layers
            else None
        )

    @staticmethod
    def split(stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output (B, 2D[, F]) -> mean and std of the Gaussian."""
        mu, raw = full_precision(stats).chunk(2, dim=1)
        return mu, F.softplus(raw) + 1e-4

    def posterior_mean(self, stats: torch.Tensor) -> torch.Tensor:
        """Deterministic code: the Gaussian mean pushed through the posterior flow."""
        mu, _ = self.split(stats)
        if self.posterior_flow is None:
            return mu
        flat, shape = _fold(mu)
        return _unfold(self.posterior_flow(flat)[0], shape)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per example, shape (B,)."""
        flat, shape = _fold(full_precision(z))
        if self.prior_flow is None:
            return _per_example(standard_normal_log_prob(flat), shape)
        u, ld = self.prior_flow(flat)
        return _per_example(standard_normal_log_prob(u) + ld, shape)

    def sample_posterior(self, stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample z_K and its log-density log q(z_K | x) per example, shape (B,)."""
        mu, std = self.split(stats)
        z0 = mu + std * torch.randn_like(mu)
        flat0, shape = _fold(z0)
        mu_f, _ = _fold(mu)
        std_f, _ = _fold(std)
        log_q = -0.5 * (((flat0 - mu_f) / std_f) ** 2 + LOG_2PI).sum(dim=1) - torch.log(std_f).sum(dim=1)
        flat = flat0
        if self.posterior_flow is not None:
            flat, ld = self.posterior_flow(flat0)
            log_q = log_q - ld
        return _unfold(flat, shape), _per_example(log_q, shape)

    def kl(self, stats: torch.Tensor, frozen_posterior: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """A posterior sample z and KL(q(z|x) || p(z)) per example, shape (B,).

        Analytic when posterior and prior are both Gaussian, one Monte-Carlo sample otherwise. With
        ``frozen_posterior`` the posterior side carries no gradient (encoder frozen); the prior flow still learns.
        """
        if self.posterior_flow is None and self.prior_flow is None:
            mu, std = self.split(stats)
            z = mu + std * torch.randn_like(mu)
            kl = gaussian_kl(mu, 2 * torch.log(std))
            kl = kl.reshape(kl.shape[0], -1).sum(dim=1)
            return (z.detach(), kl.detach()) if frozen_posterior else (z, kl)
        if frozen_posterior:
            with torch.no_grad():
                z, log_q = self.sample_posterior(stats)
        else:
            z, log_q = self.sample_posterior(stats)
        return z, log_q - self.prior_log_prob(z)

    def sample_prior(
        self,
        shape: tuple[int, ...],
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        use_flow: bool = True,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Prior latents of ``shape`` ((n, D) or (n, D, frames), from the latent mode) on ``device``.
        ``use_flow=False`` samples the plain Gaussian. The noise is drawn on the CPU (a CPU ``generator``), so a seed
        gives the same latents on every device."""
        u = torch.randn(shape, generator=generator, dtype=dtype).to(device) * temperature
        if self.prior_flow is None or not use_flow:
            return u
        flat, fshape = _fold(u)
        return _unfold(self.prior_flow.inverse(flat)[0], fshape)
