"""The spectral encoder: its band features (a sine reads as its bin whatever its phase, a click lands in its energy
step), its place in a model (one-shots with silent tails, chunked reconstruction), its config and a start from a
bundle with the other encoder. Streaming and export of it are tested beside the wave encoder's (test_streaming,
test_export)."""

import math

import numpy as np
import pytest
import torch
from conftest import jitter_weights

from vaedemo.bundle import save_bundle
from vaedemo.config import load_config
from vaedemo.errors import ConfigError, VaedemoError
from vaedemo.inference import Engine
from vaedemo.nn.spectra import BandSpectra, energy_steps, feature_count
from vaedemo.nn.vae import AudioVAE
from vaedemo.train import init_weights


def _frames(features: torch.Tensor, bands: int, frame: int) -> torch.Tensor:
    """(1, features, frames) -> (bands, bins + steps, frames)."""
    return features[0].reshape(bands, frame + 1 + energy_steps(frame), -1)


@pytest.mark.parametrize("causal", [False, True])
def test_a_bands_sine_reads_as_its_bin_at_any_phase(causal):
    frame, k = 8, 3  # a window of 16 band samples: bin 3 is 3/16 of the band rate
    layer = BandSpectra(2, frame, causal)
    n = torch.arange(frame * 12, dtype=torch.float32)
    spectra = []
    for phase in (0.0, 1.0, 2.5):
        x = torch.zeros(1, 2, len(n))
        x[0, 0] = torch.sin(2 * math.pi * k * n / (2 * frame) + phase)
        spectra.append(_frames(layer(x), 2, frame)[:, : frame + 1, 2:-2])  # frames whose window is inside the sine
    for s in spectra:
        assert torch.allclose(s[0, k], torch.zeros(()), atol=1e-3)  # a full-scale sine: magnitude 1, log 0
        assert torch.allclose(s[0, [k - 1, k + 1]], torch.tensor(math.log(0.5)), atol=1e-3)  # the Hann's neighbours
        assert (s[0, [b for b in range(frame + 1) if abs(b - k) > 1]] < math.log(1e-4)).all()  # no leak further
        assert (s[1] < math.log(1e-4)).all()  # the silent band reads as the floor
    magnitudes = [s.exp() for s in spectra]  # (in the log, float32's rounding near the floor would dominate)
    assert all(torch.allclose(magnitudes[0], m, atol=1e-5) for m in magnitudes[1:])


@pytest.mark.parametrize("causal", [False, True])
def test_a_click_lands_in_its_frames_energy_step(causal):
    frame = 32
    layer = BandSpectra(1, frame, causal)
    steps = energy_steps(frame)
    for where in (5 * frame + 3, 5 * frame + 17, 5 * frame + 31):
        x = torch.zeros(1, 1, frame * 10)
        x[0, 0, where] = 1.0
        energies = _frames(layer(x), 1, frame)[0, frame + 1 :]  # (steps, frames)
        assert energies.shape == (steps, 10)
        assert int(energies[:, 5].argmax()) == (where % frame) // (frame // steps)


def test_features_per_frame_exactly(tiny_config):
    layer = BandSpectra(4, 16)
    assert layer(torch.randn(3, 4, 16 * 7)).shape == (3, feature_count(4, 16), 7)
    rows = torch.randn(3, 4, 1, 16 * 7).contiguous(memory_format=torch.channels_last)  # the encoder's rows layout
    assert torch.allclose(layer(rows)[:, :, 0], layer(rows[:, :, 0]), atol=1e-6)
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
    with pytest.raises(ConfigError, match="model.encoder spectral needs the product of model.ratios at most 1024"):
        load_config(None, ["model.encoder=spectral", "model.ratios=[32, 64]", "model.clip_length=32768"])
    with pytest.raises(ConfigError, match="model.encoder_width must be at most 4096"):
        load_config(None, ["model.encoder=spectral", "model.encoder_width=100000"])
    load_config(None, ["model.encoder=wave", "model.ratios=[32, 64]", "model.clip_length=32768"])  # the wave's own


def test_a_spectral_encoder_starts_afresh_over_a_wave_bundles_decoder(tiny_config, tmp_path, capsys):
    wave = AudioVAE(tiny_config("temporal", flows=0).model)
    jitter_weights(wave)
    path = save_bundle(wave, tmp_path / "wave")
    spectral = AudioVAE(tiny_config("temporal", flows=0, model__encoder="spectral", model__encoder_width=8).model)
    fresh = {k: v.clone() for k, v in spectral.state_dict().items() if k.startswith("encoder.")}
    init_weights(spectral, str(path))
    assert "encoder.net (another model.encoder)" in capsys.readouterr().out
    ours, theirs = spectral.state_dict(), wave.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k.startswith("decoder."))
    assert all(torch.equal(ours[k], v) for k, v in fresh.items())
    other = AudioVAE(tiny_config("temporal", flows=0, model__encoder="spectral", model__encoder_width=8,
                                 model__latent_size=5).model)  # fmt: skip
    with pytest.raises(VaedemoError, match="does not fit this model"):  # the decoder must still fit
        init_weights(other, str(path))
