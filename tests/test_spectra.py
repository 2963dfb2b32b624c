"""The spectral encoder: its features (a sine reads the same at any phase, a click lands in its energy step), its
place in a model (one-shots with silent tails, chunked reconstruction), its config and a start from a bundle with the
other encoder. Streaming and export of it are tested beside the wave encoder's (test_streaming, test_export)."""

import math

import numpy as np
import pytest
import torch
from conftest import jitter_weights

from vaedemo.bundle import save_bundle
from vaedemo.config import load_config
from vaedemo.errors import ConfigError, VaedemoError
from vaedemo.inference import Engine
from vaedemo.nn.spectra import AudioSpectra, energy_steps
from vaedemo.nn.vae import AudioVAE
from vaedemo.train import init_weights


def test_a_sine_reads_the_same_at_any_phase_and_silence_reads_as_the_floor():
    """Phase invariance, exactly where the sine sits on a bin of every window (2000 Hz at 16 kHz: bin 32 of the long
    window, 8 of the frame's, 1 of the energy steps')."""
    layer = AudioSpectra(1, 16000, 64)
    t = torch.arange(64 * 12) / 16000
    features = [layer(torch.sin(2 * math.pi * 2000 * t + phase)[None, None])[0, :, 3:-3] for phase in (0.0, 1.0, 2.5)]
    assert all(torch.allclose(features[0].exp(), f.exp(), rtol=1e-3, atol=1e-5) for f in features[1:])
    silent = layer(torch.zeros(1, 1, 64 * 4))
    assert silent.shape == (1, layer.features, 4)
    steps = energy_steps(64) * len(layer.groups)
    assert torch.allclose(silent[0, :-steps], torch.tensor(math.log(1e-5)))  # the spectra's floor
    assert torch.allclose(silent[0, -steps:], torch.tensor(0.5 * math.log(1e-7)))  # the energies'
    assert (silent[0, :, :1] <= features[0] + 1e-4).all()  # the sine raises features, or leaves them at their floor


def test_the_features_of_digital_silence_pass_a_finite_gradient():
    """A one-shot's padded tail is exact zeros: the magnitudes are square roots of powers, whose gradient at 0 is
    infinite unless the power has a floor (NaN weights after one training step)."""
    layer = AudioSpectra(1, 16000, 64)
    x = torch.zeros(1, 1, 64 * 8)
    x[0, 0, :100] = torch.randn(100)
    x.requires_grad_(True)
    layer(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[0, 0, :100].abs().sum() > 0


@pytest.mark.parametrize("causal", [False, True])
def test_a_click_lands_in_its_frames_energy_step(causal):
    hop = 64
    layer = AudioSpectra(1, 16000, hop, causal)
    steps, groups = energy_steps(hop), len(layer.groups)
    for where in (5 * hop + 3, 5 * hop + 30, 5 * hop + 63):
        x = torch.zeros(1, 1, hop * 10)
        x[0, 0, where] = 1.0
        energies = layer(x)[0, -steps * groups :].reshape(groups, steps, 10)
        assert int(energies[:, :, 5].mean(0).argmax()) == (where % hop) // (hop // steps)


def test_features_per_frame_exactly(tiny_config):
    layer = AudioSpectra(2, 16000, 64)
    x = torch.randn(3, 2, 64 * 7)
    assert layer(x).shape == (3, layer.features, 7)
    rows = x[:, :, None].contiguous(memory_format=torch.channels_last)  # the encoder's rows layout
    assert torch.allclose(layer(rows)[:, :, 0], layer(x), atol=1e-6)
    cfg = tiny_config("temporal", flows=0, model__encoder="spectral", model__encoder_width=8)
    model = AudioVAE(cfg.model)
    x = torch.randn(2, 1, 3 * cfg.model.clip_length + 5)
    out = model(x)
    assert out.audio.shape == x.shape and out.z.shape[-1] == -(-x.shape[-1] // model.hop)


def _spectral_engine(tiny_config, tmp_path, mode: str, **kw) -> Engine:
    cfg = tiny_config(mode, flows=0, model__encoder="spectral", model__encoder_width=8)
    torch.manual_seed(0)
    model = AudioVAE(cfg.model)
    jitter_weights(model)
    return Engine(save_bundle(model, tmp_path / f"spectral-{mode}"), **kw)


def test_a_one_shot_with_a_silent_tail_encodes_as_its_whole_clip(tiny_config, tmp_path):
    """The Engine computes a short hit's map only as far as the spectral encoder reads (its look-behind): the latent
    is the whole padded clip's."""
    eng = _spectral_engine(tiny_config, tmp_path, "single")
    hit = (np.random.default_rng(0).standard_normal(300) * np.exp(-np.arange(300) / 60)).astype(np.float32) * 0.5
    padded = torch.zeros(1, 1, eng.clip_length)
    padded[0, 0, :300] = torch.from_numpy(hit)
    with torch.no_grad():
        whole = eng.model.encode(padded).numpy()
    assert np.allclose(eng.encode(hit, eng.sample_rate), whole, atol=1e-5)


def test_temporal_chunks_of_a_spectral_model_have_no_seams(tiny_config, tmp_path):
    eng = _spectral_engine(tiny_config, tmp_path, "temporal", chunk_seconds=0.1)
    x = np.random.default_rng(1).standard_normal((20000, 1)).astype(np.float32) * 0.1
    assert eng.chunk < len(x)
    with torch.no_grad():
        whole = eng.model(torch.from_numpy(x.T[None].copy()), sample=False).audio[0].numpy().T
    assert np.allclose(eng.reconstruct(x, eng.sample_rate), whole, atol=1e-5)


def test_the_encoder_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="model.encoder must be one of wave, spectral, got 'fft'"):
        load_config(None, ["model.encoder=fft"])
    with pytest.raises(ConfigError, match="model.encoder spectral needs a hop .* of 4 to 4096 samples, got 32768"):
        load_config(None, ["model.encoder=spectral", "model.ratios=[32, 64]", "model.clip_length=32768"])
    with pytest.raises(ConfigError, match="model.encoder spectral needs a hop .* of 4 to 4096 samples, got 2"):
        load_config(None, ["model.encoder=spectral", "model.bands=1", "model.ratios=[2]", "model.clip_length=64"])
    with pytest.raises(ConfigError, match="model.encoder_width must be at most 4096"):
        load_config(None, ["model.encoder=spectral", "model.encoder_width=100000"])
    load_config(None, ["model.encoder=wave", "model.ratios=[32, 64]", "model.clip_length=32768"])  # the wave's own


def test_a_spectral_encoder_starts_afresh_over_a_wave_bundles_decoder(tiny_config, tmp_path, capsys):
    wave = AudioVAE(tiny_config("temporal", flows=0).model)
    jitter_weights(wave)
    path = save_bundle(wave, tmp_path / "wave")
    spectral = AudioVAE(tiny_config("temporal", flows=0, model__encoder="spectral", model__encoder_width=8).model)
    fresh = {k: v.clone() for k, v in spectral.state_dict().items() if k.startswith("encoder.")}
    with pytest.raises(VaedemoError, match="has model.encoder wave and this model spectral, whose stack would start "
                                           "untrained: set model.encoder: wave"):  # not meant: a config of the other kind
        init_weights(spectral, str(path))
    assert all(torch.equal(spectral.state_dict()[k], v) for k, v in fresh.items())  # refused before any copy
    init_weights(spectral, str(path), new_encoder=True)
    assert "encoder.net (another model.encoder)" in capsys.readouterr().out
    ours, theirs = spectral.state_dict(), wave.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k.startswith("decoder."))
    assert all(torch.equal(ours[k], v) for k, v in fresh.items())
    other = AudioVAE(tiny_config("temporal", flows=0, model__encoder="spectral", model__encoder_width=8,
                                 model__latent_size=5).model)  # fmt: skip
    with pytest.raises(VaedemoError, match="does not fit this model"):  # the decoder must still fit
        init_weights(other, str(path), new_encoder=True)
