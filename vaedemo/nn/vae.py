"""AudioVAE: PQMF -> encoder -> latent -> decoder -> inverse PQMF, with the exact-length contract.

Exact length: ``forward`` returns exactly as many samples as it is given, for every length. Temporal models pad the
input on the right to a multiple of the hop and crop back; single-latent models pad to a whole number of clips,
fold the clips into the batch and crop back. The model is built from a :class:`~vaedemo.config.Config` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from .decoder import Decoder
from .encoder import Encoder
from .latent import Latent
from .pqmf import PQMF


@dataclass
class VAEOutput:
    audio: torch.Tensor  # (B, C, T) exactly the input length
    z: torch.Tensor  # (B', D) single (B' = B * clips) or (B, D, frames) temporal
    kl: torch.Tensor  # (B',) per example
    bands_in: torch.Tensor  # PQMF bands of the padded input
    bands_out: torch.Tensor  # decoded PQMF bands (before synthesis)
    audio_padded: torch.Tensor  # (B', C, T_padded): the decoder output before cropping
    target_padded: torch.Tensor  # (B', C, T_padded): the padded input it is compared with
    stats: torch.Tensor  # posterior statistics from the encoder: (B', 2D) or (B', 2D, frames)


class AudioVAE(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        m = cfg.model
        self.channels = cfg.data.channels
        self.sample_rate = cfg.data.sample_rate
        self.hop = cfg.hop
        self.single = m.latent_mode == "single"
        self.clip_length = cfg.data.clip_length
        self.pqmf = PQMF(m.bands, m.pqmf_attenuation)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.latent = Latent(m)

    # ------------------------------------------------------------------------------------------------ geometry
    @property
    def receptive_field(self) -> int:
        """Samples of context on either side that can influence one output sample (an upper bound)."""
        bands = self.cfg.model.bands
        return bands * (self.encoder.span + self.decoder.span) + 2 * self.pqmf.taps

    def frames_for(self, length: int) -> int:
        """Latent frames of a temporal model for ``length`` samples."""
        return -(-length // self.hop)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Pad on the right to a multiple of the hop (temporal) or of the clip length (single)."""
        unit = self.clip_length if self.single else self.hop
        t = x.shape[-1]
        return F.pad(x, (0, (-t) % unit)) if t % unit else x

    def _fold_clips(self, x: torch.Tensor) -> torch.Tensor:
        if not self.single:
            return x
        b, c, t = x.shape
        n = t // self.clip_length
        return x.reshape(b, c, n, self.clip_length).permute(0, 2, 1, 3).reshape(b * n, c, self.clip_length)

    def _unfold_clips(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        if not self.single:
            return y
        bn, c, t = y.shape
        n = bn // batch
        return y.reshape(batch, n, c, t).permute(0, 2, 1, 3).reshape(batch, c, n * t)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.channels:
            raise ValueError(f"AudioVAE expects (batch, {self.channels}, samples), got {tuple(x.shape)}")
        if x.shape[-1] == 0:
            raise ValueError("AudioVAE got zero samples")

    # ------------------------------------------------------------------------------------------------ pieces
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior statistics of padded, clip-folded audio (B', C, T): (B', 2D) or (B', 2D, frames)."""
        return self.encoder(self.pqmf.analysis(x))

    def decode_bands(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> audio (B', C, frames * hop) or (B', C, clip_length)."""
        return self.pqmf.synthesis(self.decoder(z))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic latents of any-length audio (B, C, T): (B * clips, D) single, (B, D, frames) temporal."""
        self._check(x)
        return self.latent.posterior_mean(self.encode(self._fold_clips(self._pad(x))))

    # ------------------------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, sample: bool = True, freeze_encoder: bool = False) -> VAEOutput:
        """Encode, sample (or take the posterior mean) and decode; ``audio`` has exactly the input length.

        ``freeze_encoder`` runs the encoder and posterior without gradient (the adversarial phase of RAVE).
        """
        self._check(x)
        b, _, t = x.shape
        padded = self._fold_clips(self._pad(x))
        bands_in = self.pqmf.analysis(padded)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_encoder):
            stats = self.encoder(bands_in)
        if sample:
            z, kl = self.latent.kl(stats, frozen_posterior=freeze_encoder)
        else:
            z = self.latent.posterior_mean(stats)
            kl = torch.zeros(z.shape[0], device=z.device)
        bands_out = self.decoder(z)
        y_padded = self.pqmf.synthesis(bands_out)
        y = self._unfold_clips(y_padded, b)[..., :t]
        return VAEOutput(y, z, kl, bands_in, bands_out, y_padded, padded, stats)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        frames: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        use_flow: bool = True,
    ) -> torch.Tensor:
        """Decode n prior samples: (n, C, clip_length) single, (n, C, frames * hop) temporal."""
        if not self.single and frames is None:
            raise ValueError("temporal models need the number of latent frames to sample")
        z = self.latent.sample_prior(n, None if self.single else frames, temperature, generator, use_flow)
        return self.decode(z)
