"""Prior-sample loudness matching (vaedemo.nn.loudness and train.prior_level_weight in stage two)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaedemo.config import load_config
from vaedemo.errors import ConfigError
from vaedemo.nn.loudness import level_distance, loudest_frame_db, target_quantiles

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on tiny data loaders


def test_the_level_is_the_loudest_frames_rms_in_db():
    t = torch.arange(4096) / 16000
    sine = 0.5 * torch.sin(2 * math.pi * 1000 * t)  # 32 full periods per 512-sample frame
    clip = torch.zeros(2, 1, 4096)
    clip[0, 0] = sine
    clip[1, 0, 1024:1536] = 2 * sine[:512]  # one loud frame in silence
    levels = loudest_frame_db(clip)
    assert levels[0].item() == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)
    assert levels[1].item() == pytest.approx(levels[0].item() + 20 * math.log10(2), abs=0.01)
    assert loudest_frame_db(torch.zeros(1, 2, 1000)).item() == -120.0  # silence: the floor, not -inf


def test_a_partial_last_frame_and_a_second_channel_count():
    clip = torch.zeros(1, 2, 1100)  # two full frames and 76 samples
    clip[0, 1, 1030:] = 1.0  # the loud part lies in the partial frame, on the second channel only
    # mean square over channels (0.5), over a frame padded with zeros (70 of 512 samples): 0.5 * 70 / 512
    assert loudest_frame_db(clip).item() == pytest.approx(10 * math.log10(0.5 * 70 / 512), abs=1e-4)


def test_targets_are_quantiles_and_the_distance_ignores_order():
    levels = torch.tensor([-30.0, -10.0, -20.0, -40.0, -25.0])
    q = target_quantiles(levels, 4)
    np.testing.assert_allclose(q.numpy(), np.quantile(levels.numpy(), [0.125, 0.375, 0.625, 0.875]), rtol=1e-6)
    shuffled = q[torch.tensor([2, 0, 3, 1])].clone().requires_grad_()
    assert level_distance(shuffled, q).item() == 0.0  # the same values in any order: the same distribution
    quieter = (q - 6.0).requires_grad_()
    d = level_distance(quieter, q)
    d.backward()
    assert d.item() == pytest.approx(6.0)
    assert torch.all(quieter.grad < 0)  # descending the distance raises every level


def test_prior_level_weight_needs_a_two_stage_model_without_a_level_latent():
    with pytest.raises(ConfigError, match="prior_level_weight needs model.latent_mode twostage"):
        load_config(None, ["model.latent_mode=temporal", "train.prior_level_weight=1"])
    with pytest.raises(ConfigError, match="without model.level_latent"):
        load_config(None, ["model.latent_mode=twostage", "model.level_latent=true", "train.prior_level_weight=1"])
    with pytest.raises(ConfigError, match="prior_level_samples must be at least 2"):
        load_config(None, ["model.latent_mode=twostage", "train.prior_level_weight=1", "train.prior_level_samples=1"])


def test_the_loudness_loss_trains_the_decoding_not_the_prior(drum_folder, tmp_path, backbone):
    """Its gradient reaches the decoder head (and a fine-tuned decoder), never the prior flow or the encoder side; the
    targets are the training clips' level quantiles; the CLI trains with it."""
    from test_twostage import two_stage_overrides

    from vaedemo.bundle import load
    from vaedemo.train import _module_and_data, run

    overrides = two_stage_overrides(drum_folder, tmp_path / "run", backbone) + [
        "train.mel_sizes=[256, 128]", "train.decoder_loss_clips=2", "train.decoder_loss_target=audio",
        "train.finetune_decoder=true", "train.prior_level_weight=1", "train.prior_level_samples=4",
        "model.prior_flow_layers=2"]  # fmt: skip
    module, train, _, _ = _module_and_data(load_config(None, overrides))
    clips = torch.stack([c for _, c in train.dataset])
    assert module.level_targets.shape == (4,) and torch.all(module.level_targets.diff() >= 0)
    assert module.level_targets.min() >= loudest_frame_db(clips).min() - 6  # near the clips' own (augmented) levels
    distance, median = module.prior_level_loss()
    distance.backward()
    assert distance.item() > 0 and torch.isfinite(median)
    grads = {n: p.grad for n, p in module.vae.named_parameters() if p.requires_grad}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("decoder.head."))
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("decoder.net."))
    assert all(g is None for n, g in grads.items() if "prior" in n or n.startswith("encoder."))
    assert load(run(None, overrides, resume=False) / "bundle").meta["step"] == 6
