"""The decoder's partial bank (fixed-pitch sinusoids with running phase): the table, pitch off the frame rate's
harmonics, the ramp, causality, streaming, chunking, bundles and partial weight loading (``train.init_from``)."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from conftest import assert_never_looks_ahead, assert_streams_like_offline, branch_share, impulse_reach, jitter_weights

from vaedemo.bundle import load, save_bundle
from vaedemo.config import load_config
from vaedemo.errors import ConfigError
from vaedemo.nn.partials import bank_table, frame_table, partial_table, render_partials
from vaedemo.nn.vae import AudioVAE
from vaedemo.train import init_weights
from vaedemo.training.module import VAEModule

BASE = ["model.sample_rate=16000", "model.clip_length=2048", "model.bands=4", "model.capacity=4", "model.ratios=[2, 4]",
        "model.latent_size=6", "model.flow_hidden=16"]  # fmt: skip
PARTIALS = ["model.partials=6"]


def _config(*extra: str, partials: bool = True):
    return load_config(None, BASE + (PARTIALS if partials else []) + list(extra))


def _model(*extra: str, partials: bool = True, loud: bool = False) -> AudioVAE:
    torch.manual_seed(0)
    model = AudioVAE(_config(*extra, partials=partials).model).eval()
    if loud:  # every path carries signal, and the bank well above its start
        jitter_weights(model)
        if partials:
            with torch.no_grad():
                model.decoder.partials.net[-1].conv.bias.add_(4.0)
    return model


def _render(amplitudes: torch.Tensor, partials: int, frame: int, first: int = 0) -> torch.Tensor:
    table = frame_table(partial_table(amplitudes.shape[1], partials, torch.float64), frame)
    return render_partials(amplitudes, table, first, torch.zeros_like(amplitudes[..., 0]))


# ------------------------------------------------------------------------------------------------------ config
def test_the_bank_is_off_by_default_and_its_key_is_validated():
    assert load_config(None, BASE).model.partials == 0
    assert _model(partials=False).decoder.partials is None
    with pytest.raises(ConfigError, match="model.partials"):
        _config("model.partials=-1")


# ------------------------------------------------------------------------------------------------------ the sinusoids
@pytest.mark.parametrize("bands, partials, frame", [(3, 8, 6), (5, 7, 12), (2, 33, 5), (4, 6, 64)])
@pytest.mark.parametrize("chunk", [1 << 22, 50, 1])
def test_the_bank_builds_its_table_piece_by_piece_as_the_whole(bands, partials, frame, chunk):
    """The model's table comes from bank_table, a band and a few partials at a time (the whole, in float64, took five
    times the table's memory: 3.5 GB for a bundle's 198 M values); the values are the same to the bit."""
    for dtype in (torch.float32, torch.float64):
        whole = frame_table(partial_table(bands, partials, dtype=torch.float64), frame).to(dtype)
        assert torch.equal(bank_table(bands, partials, frame, dtype, chunk=chunk), whole)
    with torch.device("meta"):
        assert bank_table(bands, partials, frame).shape == whole.shape


def test_the_table_holds_sinusoids_at_odd_multiples_of_a_quarter_bin():
    table = partial_table(2, 8, torch.float64)
    assert table.shape == (2, 8, 32)
    for i in range(8):  # sin(pi (2i + 1) n / 16 + phase): 2i + 1 whole periods in one period of the table (32)
        spectrum = np.abs(np.fft.rfft(table[1, i].numpy()))
        assert spectrum.argmax() == 2 * i + 1 and spectrum[2 * i + 1] > 0.99 * spectrum.sum()
    assert not torch.allclose(table[0], table[1])  # each sinusoid starts at its own phase


def test_a_held_amplitude_is_one_steady_sinusoid_off_the_frame_harmonics():
    """One sinusoid held for 40 frames: its spectrum peaks at its own pitch, which is not a multiple of the frame
    rate (the conv stack's only steady pitches), and it is continuous across frame boundaries."""
    partials, frame, frames = 16, 12, 40
    a = torch.zeros(1, 1, partials, frames, dtype=torch.float64)
    a[0, 0, 1] = 0.5
    y = _render(a, partials, frame)[0, 0].numpy()
    steady = y[frame:]  # after the first frame's ramp up from 0
    n = len(steady)
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(n), 16 * n))
    peak = spectrum.argmax() / (16 * n)  # cycles per sample
    assert peak == pytest.approx(3 / 64, abs=1 / (4 * n))  # (2i + 1) / (4 partials) with i = 1
    assert abs(peak * frame - round(peak * frame)) > 0.4  # half-way between harmonics of the frame rate (1 / frame)
    assert np.abs(np.diff(steady)).max() < 2 * np.pi * peak * 0.5 * 1.01  # no step anywhere
    assert np.abs(steady).max() == pytest.approx(0.5, rel=1e-3)


def test_amplitudes_ramp_from_the_previous_frame():
    partials, frame = 4, 8
    a = torch.zeros(1, 1, partials, 3, dtype=torch.float64)
    a[0, 0, 2, 1] = 1.0  # on in frame 1 only: ramps up over frame 1, down over frame 2
    y = _render(a, partials, frame)[0, 0]
    sines = partial_table(1, partials, torch.float64)[0, 2]
    n = torch.arange(3 * frame)
    ramp = torch.arange(1, frame + 1, dtype=torch.float64) / frame
    envelope = torch.cat([torch.zeros(frame), ramp, 1 - ramp])
    assert torch.allclose(y, envelope * sines[n % sines.shape[0]], atol=1e-12)


@pytest.mark.parametrize("start", [1, 5, 12, 29])
def test_rendering_from_any_frame_reads_the_absolute_index(start):
    """A stretch rendered from frame ``start`` (given the frame before it) is that stretch of the whole rendering
    (the sinusoids' phase is the absolute sample index), whatever the table's period against the frame."""
    partials, frame = 6, 10  # period 24 samples: 12 phases of 10-sample frames
    a = torch.rand(2, 3, partials, 30, dtype=torch.float64)
    whole = _render(a, partials, frame)
    table = frame_table(partial_table(3, partials, torch.float64), frame)
    assert table.shape == (3, 12, partials, frame)
    part = render_partials(a[..., start:], table, start, a[..., start - 1])
    assert torch.allclose(part, whole[..., start * frame :], atol=1e-12)
    # frame numbers one period of phases apart (and negative ones) read the same sinusoids
    assert torch.allclose(_render(a, partials, frame, start - 12), _render(a, partials, frame, start), atol=1e-12)
    assert not torch.allclose(_render(a, partials, frame, start + 1), _render(a, partials, frame, start))


# ------------------------------------------------------------------------------------------------------ in the model
@pytest.mark.parametrize("causal", [True, False])
def test_exact_length_and_gradients_with_the_bank(causal):
    model = _model(f"model.causal={causal}").train()
    for t in (1, 777, 2048, 5000):
        assert model(torch.randn(2, 1, t) * 0.1).audio.shape == (2, 1, t)
    model(torch.randn(2, 1, 3000) * 0.1).audio.pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.partials.parameters())


def test_a_fresh_bank_starts_26_db_under_its_band():
    """Each sinusoid starts near 0.05 of its band's rms: above the stack's output at a missed partial (about 24 dB
    under the input's), where the losses can pull it towards the input."""
    model = _model()
    with torch.no_grad():
        a = model.decoder.partials.amplitudes(torch.zeros(1, model.cfg.latent_size, 8), torch.ones(1, 4, 8))
    assert a.shape == (1, 4, 6, 8)
    assert 0.03 < a.median() < 0.08


def test_the_bank_follows_its_band_and_is_silent_where_the_stack_is():
    """Amplitudes are relative to the stack's band rms in each frame: twice the bands, twice the bank; silent
    bands, a silent bank (tails and gaps never teach it silence)."""
    from vaedemo.nn.partials import band_envelope

    bank = _model(loud=True).decoder.partials
    h = torch.randn(2, 6, 10)
    bands = torch.randn(2, 4, 10 * bank.frame)
    bands[1, :, 5 * bank.frame :] = 0.0
    with torch.no_grad():
        y, y2 = bank(h, bands), bank(h, 2 * bands)
    assert torch.allclose(y2, 2 * y, atol=1e-6) and y.abs().max() > 1e-2
    assert y[1, :, 6 * bank.frame :].abs().max() == 0  # the frame after the last sound ramps down to 0
    assert torch.allclose(band_envelope(bands, bank.frame)[0], bands[0].reshape(4, 10, -1).pow(2).mean(-1).sqrt())


@pytest.mark.parametrize("bands", [1, 4])
def test_a_causal_model_with_the_bank_never_looks_ahead(bands):
    assert_never_looks_ahead(_model("model.causal=true", f"model.bands={bands}", loud=True))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("bands,channels", [(1, 1), (4, 1), (4, 2)])
def test_a_stream_with_the_bank_is_the_offline_pass_delayed(causal, bands, channels):
    model = _model(f"model.causal={causal}", f"model.bands={bands}", f"model.channels={channels}", loud=True).double()
    x = assert_streams_like_offline(model, causal, resets=2)  # after a reset, the same stream again
    assert branch_share(model, "partials", x).abs().max() > 1e-2  # the bank is loud enough to be checked at all


def test_the_receptive_field_covers_the_bank():
    model = _model(loud=True)
    assert impulse_reach(model) <= model.receptive_field


def test_the_engine_in_chunks_equals_the_whole_pass(tmp_path):
    """Chunks start at multiples of the bank's period, so each chunk's sinusoids are the whole pass's; a margin one
    hop longer (chunks starting off the period) would not be."""
    from vaedemo.inference import Engine

    model = _model(loud=True)
    engine = Engine(save_bundle(model, tmp_path / "bank"), chunk_seconds=0.3)
    assert engine.margin % model.position_period == 0 and engine.chunk % model.position_period == 0
    x = (0.1 * torch.randn(16000 * 2 + 123, 1)).numpy()
    with torch.no_grad():
        whole = model(torch.from_numpy(x.T.copy())[None], sample=False).audio[0].T.numpy()
    chunked = engine.reconstruct(x, 16000)
    assert chunked.shape == x.shape
    assert np.abs(chunked - whole).max() < 1e-4 * np.abs(whole).max()
    engine.margin += model.hop
    assert np.abs(engine.reconstruct(x, 16000) - whole).max() > 1e-2 * np.abs(whole).max()


def test_the_bank_trains_at_its_own_rate(tmp_path):
    """One training step with both branches: train.partials_lr_factor scales the bank's steps alone (Adam's first
    step moves a parameter by about its lr), train.noise_lr_factor the noise branch's."""
    cfg = _config("model.noise_bands=5", "model.noise_hop=4", "train.batch_size=2", "train.max_steps=1",
                  "train.vae_steps=1", "train.beta_warmup_steps=1", "train.stft_sizes=[256, 128]",
                  "train.band_stft_sizes=[32, 16]", "train.lr=0.0001", "train.partials_lr_factor=30",
                  "train.noise_lr_factor=10", "train.grad_clip=null")  # fmt: skip
    torch.manual_seed(0)
    module = VAEModule(cfg)
    before = {n: p.detach().clone() for n, p in module.vae.named_parameters()}
    loader = torch.utils.data.DataLoader(0.1 * torch.randn(2, 1, cfg.model.clip_length), batch_size=2)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module, loader)
    moved = {n: float((p.detach() - before[n]).abs().max()) for n, p in module.vae.named_parameters()}
    branches = ("decoder.partials.", "decoder.noise.")
    bank, noise = (max(v for n, v in moved.items() if n.startswith(prefix)) for prefix in branches)
    rest = max(v for n, v in moved.items() if not n.startswith(branches))
    assert bank == pytest.approx(3e-3, rel=0.05) and noise == pytest.approx(1e-3, rel=0.05)
    assert rest == pytest.approx(1e-4, rel=0.05)
    with pytest.raises(ConfigError, match="train.partials_lr_factor"):
        _config("train.partials_lr_factor=0")


# ------------------------------------------------------------------------------------------------------ bundles
def test_bundle_round_trip_and_init_from_a_bundle_without_the_bank(tmp_path, capsys):
    model = _model(loud=True)
    bundle = load(save_bundle(model, tmp_path / "bank"))
    assert bundle.config.partials == 6
    x = 0.1 * torch.randn(1, 1, 3000)
    with torch.no_grad():
        assert torch.equal(bundle.model(x, sample=False).audio, model(x, sample=False).audio)
    source = _model(partials=False, loud=True)
    torch.manual_seed(1)
    target = AudioVAE(_config().model)
    fresh = {k: v.clone() for k, v in target.decoder.partials.state_dict().items()}
    init_weights(target, str(save_bundle(source, tmp_path / "plain")))
    assert "keep their fresh init" in capsys.readouterr().out
    assert all(torch.equal(target.state_dict()[k], v) for k, v in source.state_dict().items())
    assert all(torch.equal(v, fresh[k]) for k, v in target.decoder.partials.state_dict().items())


@pytest.mark.parametrize("streaming", [True, False])
def test_the_torchscript_export_carries_the_bank(tmp_path, streaming):
    from vaedemo.export import export_torchscript

    model = _model(loud=True)
    host = torch.jit.load(str(export_torchscript(save_bundle(model, tmp_path / "bank"), tmp_path / "m.ts", streaming)))
    x = 0.1 * torch.randn(1, 1, 20 * model.hop)
    with torch.no_grad():
        offline, exported = model(x, sample=False).audio, host(x)
    lag = host.latency - model.delay if streaming else 0  # a centred stream runs its look-ahead late
    assert torch.allclose(exported[..., lag:], offline[..., : x.shape[-1] - lag], atol=1e-5)
    assert branch_share(model, "partials", x).abs().max() > 1e-2
