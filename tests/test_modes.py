"""Latent modes: each mode class keeps its own contracts (fold/unfold, padding unit, heads, prior, numpy edge)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaedemo.config import LATENT_MODES, load_config
from vaedemo.nn.modes import MODES, latent_mode

BASE = ["model.sample_rate=16000", "model.clip_length=2048", "model.bands=4", "model.capacity=4", "model.ratios=[2, 4]",
        "model.latent_size=6", "model.single_channels=3"]  # fmt: skip


def mode_for(name: str):
    return latent_mode(load_config(None, BASE + [f"model.latent_mode={name}"]).model)


def test_every_configurable_mode_has_a_class():
    assert set(MODES) == set(LATENT_MODES)


@pytest.mark.parametrize("name", LATENT_MODES)
def test_fold_unfold_round_trip_and_padding_unit(name):
    mode = mode_for(name)
    x = torch.randn(2, 1, 3000)
    padded = mode.pad(x)
    assert padded.shape[-1] % mode.unit == 0 and padded.shape[-1] - 3000 < mode.unit
    assert torch.equal(padded[..., :3000], x)
    folded = mode.fold(padded)
    assert torch.equal(mode.unfold(folded, 2), padded)


@pytest.mark.parametrize("name", LATENT_MODES)
def test_heads_map_the_conv_map_to_statistics_and_back(name):
    mode = mode_for(name)
    frames = mode.frames_per_clip
    stats = mode.encoder_head()(torch.randn(5, mode.encoder_channels, frames))
    z = stats[:, : mode.latent_size]
    assert stats.shape[1] == 2 * mode.latent_size
    conv_in = mode.decoder_head()(z)
    assert conv_in.shape == (5, mode.decoder_channels, frames)


@pytest.mark.parametrize("name", LATENT_MODES)
def test_prior_shape_and_numpy_layout(name):
    mode = mode_for(name)
    shape = mode.prior_shape(3)
    z = torch.randn(shape)
    batch = mode.batch_to_numpy(z)
    assert batch.shape[0] == 3 and batch.shape[-1] == mode.latent_size and batch.dtype == np.float32
    one = batch[0]
    round_trip = mode.to_numpy(torch.from_numpy(mode.from_numpy(one)))  # single: (D,) comes back as one clip (1, D)
    assert np.array_equal(round_trip.reshape(one.shape), one)
    assert mode.summary_vector(one).shape == (mode.latent_size,)
    assert mode.describe(16000)


def test_single_mode_is_one_vector_per_clip_and_temporal_a_series():
    single, temporal = mode_for("single"), mode_for("temporal")
    assert single.per_clip and not temporal.per_clip
    assert single.prior_shape(2, samples=99999) == (2, 6)  # always one clip
    assert temporal.prior_shape(2, samples=5 * temporal.hop) == (2, 6, 5)
    clip_frames = temporal.clip_length // temporal.hop
    assert temporal.prior_shape(2) == (2, 6, clip_frames)  # no length: one clip
    assert temporal.prior_shape(2, samples=0) == (2, 6, 1)  # the shortest sound, not a clip (0 read as "no length")
    z = np.arange(12, dtype=np.float32).reshape(2, 6)  # two clips
    assert np.array_equal(single.sound_latent(z), z[0])
    assert np.array_equal(temporal.sound_latent(z), z) and np.allclose(temporal.summary_vector(z), z.mean(0))
    assert single.chunk_margin(10_000) == 0 and temporal.chunk_margin(10_000) % temporal.hop == 0
