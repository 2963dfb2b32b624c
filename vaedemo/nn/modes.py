"""Latent modes: what a latent is and how audio is cut to produce it, one class per mode.

A mode owns everything that differs between latent layouts: the padding unit of the input, how clips are folded
into the batch and back, the heads between the conv stacks and the latent, the shape of a prior sample, and the
numpy layout at the package's edge. :class:`~vaedemo.nn.vae.AudioVAE`, the Engine, the demo and the benchmarks
ask the mode instead of branching on its name; a new mode is one subclass here plus its tests.

* :class:`TemporalMode`: a latent time series, one D-vector every ``hop`` samples. Tensors (B, D, frames); numpy
  (frames, D). Any length; long audio is processed in chunks whose margins cover the receptive field.
* :class:`SingleMode`: one D-vector per fixed-length clip of ``clip_length`` samples. Longer audio is cut into
  clips that are folded into the batch. Tensors (B * clips, D); numpy (clips, D).
* :class:`TwoStageMode`: one D-vector per clip too, but the conv stacks are those of a temporal autoencoder (kept
  frozen while this mode's heads train): the encoder head maps the clip's whole latent trajectory (the posterior
  mean, ``trajectory_size`` x frames) to the vector's statistics, the decoder head the vector back to a trajectory.
  With ``level_latent`` the clip's peak level is one more coordinate, outside what the heads learn
  (:mod:`vaedemo.nn.level`): ``latent_size`` is what is learned, the numpy edge has one more.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import VaedemoError
from .blocks import Act


class LatentMode:
    """Base class: the temporal layout, which every mode shares at the level of the conv stacks."""

    name = ""
    per_clip = False  # True: one latent vector per fixed-length clip (sampling, interpolation by clip)

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.learned_size = cfg.latent_size  # what the heads, the posterior and the prior flows produce
        self.latent_size = cfg.latent_size + int(cfg.level_latent)  # the latent at the numpy edge (+ the level)
        self.hop = cfg.hop
        self.clip_length = cfg.clip_length
        self.frames_per_clip = cfg.clip_length // cfg.hop

    # ---------------------------------------------------------------------------------------------- geometry
    @property
    def unit(self) -> int:
        """The input is padded on the right to a multiple of this many samples."""
        return self.hop

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        return F.pad(x, (0, (-t) % self.unit)) if t % self.unit else x

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """Padded audio (B, C, T) -> what the encoder sees."""
        return x

    def unfold(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        """Decoder output -> (batch, C, T); the inverse of :meth:`fold`."""
        return y

    def chunk_margin(self, receptive_field: int) -> int:
        """Samples of context on each side of a chunk for chunked processing to equal whole-signal processing."""
        return math.ceil(receptive_field / self.hop) * self.hop

    # ---------------------------------------------------------------------------------------------- heads
    @property
    def encoder_channels(self) -> int:
        """Channels of the conv encoder's last layer."""
        return 2 * self.learned_size

    @property
    def decoder_channels(self) -> int:
        """Channels the conv decoder's first layer takes."""
        return self.learned_size

    def encoder_head(self) -> nn.Module:
        """Conv map -> posterior statistics."""
        return nn.Identity()

    def decoder_head(self) -> nn.Module:
        """Latent -> the conv decoder's input map."""
        return nn.Identity()

    # ---------------------------------------------------------------------------------------------- prior
    def prior_shape(self, n: int, samples: int | None = None) -> tuple[int, ...]:
        """Shape of n prior latents decoding to ``samples`` samples (default: one clip), at least one frame."""
        # None is "one clip"; 0 (a length under half a hop, rounded) is the shortest sound, not the default
        frames = max(1, round((self.clip_length if samples is None else samples) / self.hop))
        return (n, self.latent_size, frames)

    # ---------------------------------------------------------------------------------------------- numpy edge
    def to_numpy(self, z: torch.Tensor) -> np.ndarray:
        """Latents of one sound, (1, D, frames) -> float32 (frames, D), in C order whatever the tensor's strides."""
        return np.ascontiguousarray(z[0].T.cpu().numpy(), dtype=np.float32)

    def batch_to_numpy(self, z: torch.Tensor) -> np.ndarray:
        """Latents of n sounds, (n, D, frames) -> float32 (n, frames, D)."""
        return z.permute(0, 2, 1).cpu().numpy().astype(np.float32)

    def batch_from_numpy(self, z: np.ndarray) -> np.ndarray:
        """Latents of n sounds (n, frames, D) -> the decoder's layout (n, D, frames)."""
        return np.ascontiguousarray(np.asarray(z, np.float32).transpose(0, 2, 1))

    def from_numpy(self, z: np.ndarray) -> np.ndarray:
        """(frames, D) -> the decoder's layout (1, D, frames)."""
        return np.ascontiguousarray(np.asarray(z, np.float32).reshape(-1, self.latent_size).T[None])

    def sound_latent(self, z: np.ndarray) -> np.ndarray:
        """What interpolation moves between: the whole trajectory (frames, D), also given as one sound (1, frames, D)
        as ``sample_latents(1)`` gives it."""
        z = np.asarray(z, np.float32)
        if z.ndim == 3 and len(z) != 1:
            raise VaedemoError(f"interpolation moves between two sounds: got latents of {len(z)} sounds for one end.")
        return z[0] if z.ndim == 3 else z

    def summary_vector(self, z: np.ndarray) -> np.ndarray:
        """One D-vector per sound (for maps): the mean over frames."""
        return np.asarray(z, np.float32).reshape(-1, self.latent_size).mean(0)

    def describe(self, sample_rate: int) -> str:
        return f"{self.latent_size}-d latent every {self.hop} samples ({sample_rate / self.hop:.0f} frames/s)"


class TemporalMode(LatentMode):
    name = "temporal"


class ClipToFrames(nn.Linear):
    """Linear layer from one vector to a (channels, frames) map (a Linear, so its weights keep their names)."""

    def __init__(self, latent_size: int, channels: int, frames: int):
        super().__init__(latent_size, channels * frames)
        self.frames = frames

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z).reshape(z.shape[0], -1, self.frames)


class SingleMode(LatentMode):
    name = "single"
    per_clip = True

    @property
    def unit(self) -> int:
        return self.clip_length

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        n = t // self.clip_length
        return x.reshape(b, c, n, self.clip_length).permute(0, 2, 1, 3).reshape(b * n, c, self.clip_length)

    def unfold(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        bn, c, t = y.shape
        n = bn // batch
        return y.reshape(batch, n, c, t).permute(0, 2, 1, 3).reshape(batch, c, n * t)

    def chunk_margin(self, receptive_field: int) -> int:
        return 0  # clips are encoded and decoded independently

    @property
    def encoder_channels(self) -> int:
        return self.cfg.single_channels

    @property
    def decoder_channels(self) -> int:
        return self.cfg.single_channels

    def encoder_head(self) -> nn.Module:
        features = self.cfg.single_channels * self.frames_per_clip
        return nn.Sequential(nn.Flatten(), Act(), nn.Linear(features, 2 * self.learned_size))

    def decoder_head(self) -> nn.Module:
        return ClipToFrames(self.learned_size, self.cfg.single_channels, self.frames_per_clip)

    def prior_shape(self, n: int, samples: int | None = None) -> tuple[int, ...]:
        return (n, self.latent_size)

    def to_numpy(self, z: torch.Tensor) -> np.ndarray:
        """(clips, D) -> float32 (clips, D)."""
        return z.cpu().numpy().astype(np.float32)

    def batch_to_numpy(self, z: torch.Tensor) -> np.ndarray:
        return z.cpu().numpy().astype(np.float32)

    def batch_from_numpy(self, z: np.ndarray) -> np.ndarray:
        """One vector per sound (n, D) -> (n, D)."""
        return np.ascontiguousarray(np.asarray(z, np.float32).reshape(-1, self.latent_size))

    def from_numpy(self, z: np.ndarray) -> np.ndarray:
        """(D,) or (clips, D) -> (clips, D)."""
        return np.ascontiguousarray(np.asarray(z, np.float32).reshape(-1, self.latent_size))

    def sound_latent(self, z: np.ndarray) -> np.ndarray:
        """The first clip's vector (D,)."""
        return np.asarray(z, np.float32).reshape(-1, self.latent_size)[0]

    def summary_vector(self, z: np.ndarray) -> np.ndarray:
        return self.sound_latent(z)

    def describe(self, sample_rate: int) -> str:
        return f"one {self.latent_size}-d latent per {self.clip_length / sample_rate:.2f} s clip"


class TrajectoryEncoder(nn.Module):
    """Posterior statistics of a temporal encoder (B, 2d, F) -> statistics of one vector (B, 2D): an MLP over the
    trajectory's mean (B, d * F)."""

    def __init__(self, trajectory_size: int, frames: int, hidden: int, latent_size: int, dropout: float = 0.0):
        super().__init__()
        self.trajectory_size = trajectory_size
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(trajectory_size * frames, hidden), nn.SiLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden, 2 * latent_size),
        )  # fmt: skip

    def forward(self, stats: torch.Tensor) -> torch.Tensor:
        return self.net(stats[:, : self.trajectory_size])


class TrajectoryDecoder(nn.Module):
    """One vector (B, D) -> a latent trajectory (B, d, F) for a temporal decoder."""

    def __init__(self, latent_size: int, hidden: int, trajectory_size: int, frames: int, dropout: float = 0.0):
        super().__init__()
        self.shape = (trajectory_size, frames)
        self.net = nn.Sequential(
            nn.Linear(latent_size, hidden), nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Dropout(dropout), nn.Linear(hidden, trajectory_size * frames),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(z.shape[0], *self.shape)


class TwoStageMode(SingleMode):
    name = "twostage"

    @property
    def encoder_channels(self) -> int:
        return 2 * self.cfg.trajectory_size

    @property
    def decoder_channels(self) -> int:
        return self.cfg.trajectory_size

    def encoder_head(self) -> nn.Module:
        c = self.cfg
        return TrajectoryEncoder(c.trajectory_size, self.frames_per_clip, c.head_hidden, self.learned_size, c.head_dropout)

    def decoder_head(self) -> nn.Module:
        c = self.cfg
        return TrajectoryDecoder(self.learned_size, c.head_hidden, c.trajectory_size, self.frames_per_clip, c.head_dropout)

    def describe(self, sample_rate: int) -> str:
        level = " plus its peak level" if self.cfg.level_latent else ""
        return (f"one {self.learned_size}-d latent{level} per {self.clip_length / sample_rate:.2f} s clip, over a "
                f"{self.cfg.trajectory_size}-d temporal autoencoder")  # fmt: skip


MODES: dict[str, type[LatentMode]] = {m.name: m for m in (TemporalMode, SingleMode, TwoStageMode)}


def latent_mode(cfg: ModelConfig) -> LatentMode:
    """The mode object of a model config."""
    return MODES[cfg.latent_mode](cfg)
