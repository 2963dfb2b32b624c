"""AudioVAE: PQMF -> encoder -> latent -> decoder -> inverse PQMF, with the exact-length contract.

Exact length: ``forward`` returns exactly as many samples as it is given, for every length. The latent mode pads the
input on the right to its unit (the hop for a latent time series, the clip length for one vector per clip), folds
clips into the batch and back; the output is cropped to the input's length. The model is built from a
:class:`~vaedemo.config.ModelConfig` alone.

Causal models (``causal: true``, latent time series) never look ahead: output sample t depends on input samples
<= t only. A latent frame summarises a whole block of ``hop`` samples, so the decoder reads the frame *before* the
one it is in (a one-frame delay), and the PQMF filters are causal (a lag of taps - 1). The output is the input
delayed by :attr:`AudioVAE.delay` samples; training compares it with the input delayed as much, and the Engine
shifts it back offline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .decoder import Decoder
from .encoder import Encoder, spectral_stack, wave_stack
from .latent import Latent, full_precision
from .level import PeakLevel
from .modes import latent_mode
from .pqmf import PQMF


@dataclass
class VAEOutput:
    audio: torch.Tensor  # (B, C, T) exactly the input length
    z: torch.Tensor  # (B', D) single (B' = B * clips) or (B, D, frames) temporal
    kl: torch.Tensor  # (B',) per example
    bands_in: torch.Tensor  # PQMF bands of the padded input (what bands_out should match: delayed when causal)
    bands_out: torch.Tensor  # decoded PQMF bands (before synthesis)
    audio_padded: torch.Tensor  # (B', C, T_padded): the decoder output before cropping
    target_padded: torch.Tensor  # (B', C, T_padded): the padded input it is compared with (delayed when causal)
    stats: torch.Tensor  # posterior statistics from the encoder: (B', 2D) or (B', 2D, frames)
    # each share of bands_out of the branches that follow the conv stack's level (relative noise, a partial bank; none
    # without them, or with a level latent): what training's incoherent loss separates (their audio is the PQMF
    # synthesis of them, computed there and not on inference's path)
    follower_bands: tuple[torch.Tensor, ...] = ()


class AudioVAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.channels = cfg.channels
        self.sample_rate = cfg.sample_rate
        self.hop = cfg.hop
        self.clip_length = cfg.clip_length
        self.mode = latent_mode(cfg)
        bands = cfg.channels * cfg.bands
        arch = dict(capacity=cfg.capacity, ratios=cfg.ratios, dilations=cfg.dilations, kernel_size=cfg.kernel_size,
                    causal=cfg.causal)  # fmt: skip
        self.pqmf = PQMF(cfg.bands, cfg.pqmf_attenuation, causal=cfg.causal)
        self.frame_delay = 1 if cfg.causal and not self.mode.per_clip else 0
        if cfg.encoder == "spectral":
            stack = spectral_stack(cfg.channels, cfg.sample_rate, cfg.hop, self.mode.encoder_channels, cfg.encoder_width,
                                   cfg.dilations, cfg.kernel_size, cfg.causal)  # fmt: skip
        else:
            stack = wave_stack(bands, self.mode.encoder_channels, cfg.capacity, cfg.ratios, cfg.dilations,
                               cfg.kernel_size, cfg.causal)  # fmt: skip
        self.encoder = Encoder(stack, head=self.mode.encoder_head())
        self.decoder = Decoder(self.mode.decoder_channels, bands, head=self.mode.decoder_head(),
                               noise_bands=cfg.noise_bands, noise_hop=cfg.noise_hop, upsampler=cfg.upsampling,
                               partials=cfg.partials, noise_relative=cfg.noise_relative, **arch)  # fmt: skip
        self.latent = Latent(cfg)
        self.level = PeakLevel() if cfg.level_latent else None  # the clip's peak as a latent coordinate of its own

    @property
    def delay(self) -> int:
        """Samples by which the output lags the input: the PQMF's lag plus the decoder's one-frame delay."""
        return self.pqmf.delay + self.frame_delay * self.hop

    def _delayed(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        return F.pad(x, (samples, 0))[..., : x.shape[-1]] if samples else x

    @property
    def position_period(self) -> int:
        """Samples after which the output's dependence on absolute position repeats: the hop, or a partial bank's
        period (its sinusoids' phase is the absolute sample index); chunks that start at multiples of it decode as
        the whole signal does."""
        bank = self.decoder.partials
        return self.hop if bank is None else math.lcm(self.hop, self.cfg.bands * bank.period)

    @property
    def receptive_field(self) -> int:
        """Samples of context on either side that can influence one output sample (an upper bound)."""
        encoder = self.encoder.span if self.encoder.reads_audio else self.cfg.bands * self.encoder.span
        return encoder + self.cfg.bands * self.decoder.span + 2 * self.pqmf.taps

    @property
    def encoder_lookbehind(self) -> int:
        """Samples before a latent frame's first sample where the audio that frame depends on begins: past that
        much silence, a frame has seen nothing but zeros before it."""
        if self.encoder.reads_audio:
            return self.encoder.lookbehind
        return self.pqmf.lookbehind + self.cfg.bands * self.encoder.lookbehind

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.channels:
            raise ValueError(f"AudioVAE expects (batch, {self.channels}, samples), got {tuple(x.shape)}")
        if x.shape[-1] == 0:
            raise ValueError("AudioVAE got zero samples")

    # ------------------------------------------------------------------------------------------------ pieces
    def normalised(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the clips the encoder sees, their level coordinates or None): with a level latent, clips at one peak."""
        return self.level.normalise(clips) if self.level is not None else (clips, None)

    def _with_level(self, z: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
        return z if level is None else torch.cat([z, level[:, None].to(z.dtype)], dim=1)

    def encoder_map(self, clips: torch.Tensor) -> torch.Tensor:
        """The encoder's conv map (B', the mode's encoder channels, frames) of padded, folded, normalised audio: the
        posterior statistics before the latent mode's head."""
        return self.encoder.conv_map(clips if self.encoder.reads_audio else self.pqmf.analysis(clips))

    def encode(self, x: torch.Tensor, map_of: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Deterministic latents (the posterior mean) of any-length audio (B, C, T): (B * clips, D) for one vector
        per clip, (B, D, frames) for a time series. ``map_of``: what computes :meth:`encoder_map` of the clips
        (a caller that knows a quicker way to the same map, as the Engine does for hits with silent tails)."""
        stats, level = self.posterior_stats(x, map_of)
        return self._with_level(self.latent.posterior_mean(stats), level)

    def posterior_stats(self, x: torch.Tensor, map_of: Callable[[torch.Tensor], torch.Tensor] | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """(the encoder's posterior statistics, the level coordinates or None) of any-length audio (B, C, T), as
        :meth:`encode` reads its latents from them."""
        self._check(x)
        clips, level = self.normalised(self.mode.fold(self.mode.pad(x)))
        return self.encoder.head((map_of or self.encoder_map)(clips)), level

    def decode(self, z: torch.Tensor, frames: int | None = None, offset: int = 0) -> torch.Tensor:
        """Latents -> audio (B', C, frames * hop) or (B', C, clip_length).

        ``frames``: decode only the first that many latent frames (of a one-vector model's trajectory, of a time
        series): the audio's first ``frames * hop`` - the decoder's look-ahead samples
        (:func:`~vaedemo.nn.streaming.decoder_lookahead`) are the whole decode's, for less work. A level latent
        sets the gain from the whole clip's peak, so there the whole clip is decoded. ``offset``: the sample of a
        longer signal that the audio starts at, as in :meth:`forward`."""
        if self.level is not None:  # the last coordinate is the level
            return self.level.restore(self.pqmf.synthesis(self.decoder(z[:, :-1], None, offset // self.cfg.bands)), z[:, -1])
        return self.pqmf.synthesis(self.decoder(self._delayed(z, self.frame_delay), frames, offset // self.cfg.bands))

    def sample_latents(
        self,
        shape: tuple[int, ...],
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        use_flow: bool = True,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Prior latents of ``shape`` (the mode's :meth:`prior_shape`): the latent's prior, and the level's."""
        if self.level is None:
            return self.latent.sample_prior(shape, temperature, generator, use_flow, device, dtype)
        z = self.latent.sample_prior((shape[0], shape[1] - 1), temperature, generator, use_flow, device, dtype)
        return self._with_level(z, self.level.sample(shape[0], temperature, generator, device, dtype))

    def prior_base(self, z: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """Latent vectors (N, D) -> the prior's base space, where the prior is a standard Gaussian (``inverse``: back).
        The prior flow maps the latent's coordinates; a level coordinate's prior is a standard Gaussian already, and so
        is the whole latent's without a prior flow: those stay as they are."""
        if z.dim() != 2:
            raise ValueError(f"prior_base takes latent vectors (N, D), got shape {tuple(z.shape)}")
        flow = self.latent.prior_flow
        if flow is None:
            return z
        n = z.shape[1] - (self.level is not None)
        mapped = (flow.inverse if inverse else flow)(full_precision(z[:, :n]))[0].to(z.dtype)
        return torch.cat([mapped, z[:, n:]], dim=1)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per example of latents as :meth:`encode` gives them."""
        if self.level is None:
            return self.latent.prior_log_prob(z)
        return self.latent.prior_log_prob(z[:, :-1]) + self.level.log_prob(full_precision(z[:, -1]))

    # ------------------------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, sample: bool = True, freeze_encoder: bool = False, offset: int = 0) -> VAEOutput:
        """Encode, sample (or take the posterior mean) and decode; ``audio`` has exactly the input length.

        ``freeze_encoder`` runs the encoder and posterior without gradient (the adversarial phase of RAVE).
        ``offset``: the sample of a longer signal that ``x`` starts at (a multiple of the hop), so that a noise
        branch draws a chunk's noise where the whole signal's pass would (the noise is addressed by position).
        """
        self._check(x)
        b, _, t = x.shape
        padded = self.mode.fold(self.mode.pad(x))
        clips, level = self.normalised(padded)
        bands_in = self.pqmf.analysis(clips)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_encoder):
            stats = self.encoder(clips if self.encoder.reads_audio else bands_in)
        if sample:
            z, kl = self.latent.kl(stats, frozen_posterior=freeze_encoder)  # (the prior flow still learns from the KL)
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_encoder):  # the posterior flow's too
                z = self.latent.posterior_mean(stats)
            kl = z.new_zeros(z.shape[0])
        h = self.decoder.head(self._delayed(z, self.frame_delay))
        conv_bands, followers = self.decoder.parts(h, offset // self.cfg.bands)
        bands_out = sum(followers, conv_bands)
        y_padded = self.pqmf.synthesis(bands_out)
        if level is not None:
            y_padded, z = self.level.restore(y_padded, level), self._with_level(z, level)
            followers = []  # (the level's gain is the whole output's; not split here)
        y = self.mode.unfold(y_padded, b)[..., :t]
        # what a causal model's output should match: the input (and its bands) delayed as much as the model lags
        target = self._delayed(padded, self.delay)
        bands_target = self._delayed(bands_in, self.frame_delay * self.hop // self.cfg.bands)
        return VAEOutput(y, z, kl, bands_target, bands_out, y_padded, target, stats, tuple(followers))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        samples: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        use_flow: bool = True,
    ) -> torch.Tensor:
        """Decode n prior samples of about ``samples`` samples (default one clip; single mode: always one clip)."""
        weight = next(self.parameters())
        shape = self.mode.prior_shape(n, samples)
        return self.decode(self.sample_latents(shape, temperature, generator, use_flow, weight.device, weight.dtype))
