"""The decoder's noise branch (RAVE's filtered noise, absolute or relative to the conv stack's level): shapes, silence
at init, the FIR, gradients, causality, streaming, bundles, training and partial weight loading (``train.init_from``)."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from conftest import assert_never_looks_ahead, assert_streams_like_offline, branch_share, impulse_reach, jitter_weights

from vaedemo.bundle import load, save_bundle
from vaedemo.config import load_config
from vaedemo.errors import ConfigError, VaedemoError
from vaedemo.nn.noise import BankCache, filter_noise, fir_basis, hashed_uniform, mix_bank, noise_bank, running_rms
from vaedemo.nn.streaming import StreamingRms, decoder_lookahead
from vaedemo.nn.vae import AudioVAE
from vaedemo.train import init_weights
from vaedemo.training.module import VAEModule

BASE = ["model.sample_rate=16000", "model.clip_length=2048", "model.bands=4", "model.capacity=4", "model.ratios=[2, 4]",
        "model.latent_size=6", "model.flow_hidden=16"]  # fmt: skip
NOISE = ["model.noise_bands=5", "model.noise_hop=4"]
RELATIVE = "model.noise_relative=true"


def _config(*extra: str, noise: bool = True):
    return load_config(None, BASE + (NOISE if noise else []) + list(extra))


def _model(*extra: str, noise: bool = True, loud: bool = False) -> AudioVAE:
    torch.manual_seed(0)
    model = AudioVAE(_config(*extra, noise=noise).model).eval()
    if loud:  # every path carries signal, and the noise well above silence
        jitter_weights(model)
        if noise:
            with torch.no_grad():
                model.decoder.noise.net[-1].conv.bias.add_(5.0)
    return model


def _noise_only(model: AudioVAE, x: torch.Tensor) -> torch.Tensor:
    return branch_share(model, "noise", x)


# ------------------------------------------------------------------------------------------------------ config
def test_noise_is_off_by_default_and_its_keys_are_validated():
    assert load_config(None, BASE).model.noise_bands == 0
    assert AudioVAE(load_config(None, BASE).model).decoder.noise is None
    with pytest.raises(ConfigError, match="model.noise_bands"):
        _config("model.noise_bands=1")
    with pytest.raises(ConfigError, match="train.noise_lr_factor"):  # its rate is tested beside the partial bank's
        _config("train.noise_lr_factor=0")
    with pytest.raises(ConfigError, match="model.noise_hop"):
        _config("model.noise_hop=3")  # prod(ratios) = 8
    load_config(None, BASE + ["model.ratios=[3, 3]", "model.clip_length=2052"])  # noise off: noise_hop is not checked
    assert not _config().model.noise_relative  # RAVE's absolute noise unless asked
    with pytest.raises(ConfigError, match="model.noise_relative needs a noise branch"):
        _config(RELATIVE, noise=False)


# ------------------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("mode,causal", [("temporal", False), ("temporal", True), ("single", False)])
@pytest.mark.parametrize("channels", [1, 2])
def test_exact_length_with_the_noise_branch(mode, channels, causal):
    model = _model(f"model.latent_mode={mode}", f"model.channels={channels}", f"model.causal={causal}")
    with torch.no_grad():
        for n in (1, 31, 2048, 2049, 5000):
            for sample in (True, False):
                out = model(torch.randn(2, channels, n), sample=sample)
                assert out.audio.shape == (2, channels, n)
                assert out.bands_out.shape == out.bands_in.shape


def test_the_branch_starts_near_silent_and_is_not_silent_once_trained():
    model = _model()
    x = 0.3 * torch.randn(2, 1, 4096)
    fresh = _noise_only(model, x)
    assert fresh.abs().max() > 0 and fresh.pow(2).mean().sqrt() < 1e-4
    loud = _noise_only(_model(loud=True), x)
    assert loud.pow(2).mean().sqrt() > 1e-2


def test_the_noise_is_seeded_in_eval_and_fresh_in_training():
    model = _model(loud=True)
    x = 0.3 * torch.randn(1, 1, 4096)
    assert torch.equal(_noise_only(model, x), _noise_only(model, x))  # eval: the fixed seed
    other = _noise_only(model, x)
    model.decoder.noise.seed = 1
    assert not torch.allclose(_noise_only(model, x), other)
    model.train()
    with torch.no_grad():
        a, b = model(x, sample=False).bands_out, model(x, sample=False).bands_out
    assert not torch.allclose(a, b)


def test_hashed_noise_is_uniform_and_addressed_by_sample():
    u = hashed_uniform(2, 3, -50, 10000, seed=7, dtype=torch.float64, device=torch.device("cpu"))
    assert u.min() >= -1 and u.max() < 1 and abs(float(u.mean())) < 0.01 and abs(float(u.var()) - 1 / 3) < 0.01
    assert not torch.allclose(u[0], u[1]) and not torch.allclose(u[:, 0], u[:, 1])  # rows and batch rows differ
    later = hashed_uniform(2, 3, 2450, 250, seed=7, dtype=torch.float64, device=torch.device("cpu"))
    assert torch.equal(later, u[:, :, 2500:2750])  # a sample's noise depends on its index only: streams can count


# --------------------------------------------------------------------------------------------------------- FIR
@pytest.mark.parametrize("k", [2, 5, 16])
def test_the_fir_is_the_windowed_shifted_inverse_dft_and_linear_phase(k):
    magnitudes = torch.rand(7, k, dtype=torch.float64)
    fir = magnitudes @ fir_basis(k, torch.float64)
    taps = 2 * (k - 1)
    reference = torch.fft.irfft(magnitudes, n=taps).roll(k - 1, -1) * torch.hann_window(taps, dtype=torch.float64)
    assert torch.allclose(fir, reference, atol=1e-12)
    assert torch.all(fir[:, 0] == 0)
    assert torch.allclose(fir[:, 1:], fir[:, 1:].flip(-1), atol=1e-12)  # symmetric about tap k - 1
    # linear phase: the spectrum times exp(+i w (k - 1)) is real (a real, zero-phase response delayed by k - 1)
    spectrum = torch.fft.rfft(fir, n=256)
    w = 2 * torch.pi * torch.arange(spectrum.shape[-1], dtype=torch.float64) / 256
    assert torch.allclose((spectrum * torch.exp(1j * w * (k - 1))).imag, torch.zeros(1, dtype=torch.float64), atol=1e-12)


def test_louder_magnitudes_give_louder_noise_where_they_are():
    """The FIR shapes the noise's spectrum: magnitudes only in the upper half of the band put the energy there."""
    model = _model()
    noise = model.decoder.noise
    from vaedemo.nn.noise import filter_noise

    high = torch.zeros(1, 4, 200, 5, dtype=torch.float64)
    high[..., 3:] = 1.0
    y = filter_noise(high, noise.basis.double(), noise.hop, 3, 0)
    power = torch.fft.rfft(y, dim=-1).abs().pow(2).mean(dim=(0, 1))
    half = power.shape[-1] // 2
    assert power[half:].sum() > 5 * power[: half // 2].sum()


def test_a_held_filter_makes_narrow_stationary_noise_across_blocks():
    """One magnitude bin held over many short blocks: the noise stream runs on across blocks, so the output's
    spectrum stays as narrow as the FIR's (a ringing partial at any pitch), not spread over the block rate."""
    from vaedemo.nn.noise import filter_noise

    k, hop, blocks = 32, 4, 2000
    line = torch.zeros(1, 1, blocks, k, dtype=torch.float64)
    line[..., 10] = 1.0  # bin 10 of 31 between 0 and the band's Nyquist
    y = filter_noise(line, fir_basis(k, torch.float64), hop, seed=3, first_block=0)[0, 0]
    power = torch.fft.rfft(y * torch.hann_window(len(y), dtype=torch.float64)).abs().pow(2)
    centre = 10 / (k - 1) * (len(power) - 1)
    near = (torch.arange(len(power)) - centre).abs() <= 2.5 / (k - 1) * (len(power) - 1)  # within 2.5 FIR bins
    assert power[near].sum() > 0.9 * power.sum()
    later = filter_noise(line[:, :, 1000:], fir_basis(k, torch.float64), hop, seed=3, first_block=1000)[0, 0]
    assert torch.allclose(later, y[1000 * hop :], atol=1e-12)  # a block's output depends on its position only


# ------------------------------------------------------------------------------------------------------ bank
@pytest.mark.parametrize(("batch", "k", "hop", "first"), [(1, 16, 8, 0), (3, 5, 4, 7), (2, 2, 1, -3)])
def test_the_noise_bank_times_the_magnitudes_is_the_filtered_noise(batch, k, hop, first):
    """The same sums in another order: any batch (every row reading row 0's stream), noise bands, hop and position (a
    negative one included)."""
    magnitudes = torch.rand(batch, 4, 60, k, dtype=torch.float64)
    bank = noise_bank(4, first * hop, 60 * hop, 11, fir_basis(k, torch.float64))
    want = filter_noise(magnitudes, fir_basis(k, torch.float64), hop, 11, first, per_row=False)
    assert torch.allclose(mix_bank(magnitudes, bank, hop), want, atol=1e-13)
    other_seed = noise_bank(4, first * hop, 60 * hop, 12, fir_basis(k, torch.float64))
    assert not torch.allclose(mix_bank(magnitudes, other_seed, hop), want)


def test_rows_filter_streams_of_their_own_in_training_and_row_0s_in_inference():
    magnitudes = torch.rand(1, 4, 60, 5, dtype=torch.float64).expand(3, -1, -1, -1)  # three rows alike
    basis = fir_basis(5, torch.float64)
    own, shared = (filter_noise(magnitudes, basis, 4, 11, 0, per_row=per_row) for per_row in (True, False))
    assert torch.equal(own[0], shared[0]) and not torch.allclose(own[1], own[0])
    assert torch.equal(shared[1], shared[0]) and torch.equal(shared[2], shared[0])


@pytest.mark.parametrize("relative", [False, True])
def test_a_latent_decodes_to_the_same_sound_wherever_it_sits_in_a_batch(relative):
    """Inference: the noise of a batch row is the noise of that sound decoded alone (a prior sample k of n is the
    sample its seed gives alone; the two channels of a stereo file are two mono files), through the bank and the taps,
    from a signal's start and further in; training still draws each row's noise afresh."""
    extra = [RELATIVE] if relative else []
    for model in (_model(*extra, loud=True).double(), _taps_only(_model(*extra, loud=True).double())):
        x = 0.3 * torch.randn(3, 1, 2048, dtype=torch.float64)
        with torch.no_grad():
            for offset in (0, 1024):
                together = model(x, sample=False, offset=offset).audio
                for i in range(3):
                    alone = model(x[i : i + 1], sample=False, offset=offset).audio
                    torch.testing.assert_close(together[i : i + 1], alone, atol=1e-12, rtol=0)
    model = _model(*extra, loud=True).train()
    h = torch.randn(1, 4, 256).expand(2, -1, -1)  # two rows alike
    wave = torch.rand(1, 4, 256).expand(2, -1, -1) if relative else None
    noise = model.decoder.noise(h, wave)
    assert not torch.allclose(noise[0], noise[1])


def _taps_only(model: AudioVAE) -> AudioVAE:
    model.decoder.noise.banks.limit_bytes = 0  # nothing fits: every call takes the taps
    return model


@pytest.mark.parametrize("relative", [False, True])
def test_an_eval_decode_through_the_kept_bank_equals_the_taps(relative):
    """A model in eval mode draws a signal's start from its kept bank: the same output as the taps, whatever comes
    first (a shorter signal, a smaller batch: the bank grows to the longest), for a chunk further in, and after a new
    seed."""
    extra = [RELATIVE] if relative else []
    banked, taps = _model(*extra, loud=True).double(), _taps_only(_model(*extra, loud=True).double())
    x = 0.3 * torch.randn(2, 1, 4096, dtype=torch.float64)
    with torch.inference_mode():
        for signal in (x[:1, :, :2048], x[..., :1024], x, x[:1], x[..., 1024:]):
            assert torch.allclose(banked(signal, sample=False).audio, taps(signal, sample=False).audio, atol=1e-12)
        assert torch.allclose(banked(x[..., 1024:], sample=False, offset=1024).audio,
                              taps(x[..., 1024:], sample=False, offset=1024).audio, atol=1e-12)  # fmt: skip
        assert [bank.shape[:3] for bank in banked.decoder.noise.banks._banks.values()] == [(1, 4, 4096 // 4)]
        banked.decoder.noise.seed = taps.decoder.noise.seed = 5
        assert torch.allclose(banked(x, sample=False).audio, taps(x, sample=False).audio, atol=1e-12)
    assert not taps.decoder.noise.banks._banks


def test_the_kept_banks_grow_to_what_is_asked_and_stay_within_their_bytes():
    cache, basis = BankCache(), fir_basis(5, torch.float64)
    first = cache.start_of(4, 500, 0, basis)
    grown = cache.start_of(4, 1000, 0, basis)  # a longer signal: the bank becomes (1, 4, 1000)
    assert torch.equal(first, noise_bank(4, 0, 500, 0, basis))
    assert torch.equal(grown, noise_bank(4, 0, 1000, 0, basis))
    assert [bank.shape[:3] for bank in cache._banks.values()] == [(1, 4, 1000)]
    assert torch.equal(cache.start_of(4, 500, 0, basis), noise_bank(4, 0, 500, 0, basis))  # its first samples
    one = 4 * 1000 * 5 * 8  # bytes of that bank
    cache.limit_bytes = 2 * one
    cache.start_of(4, 1000, 1, basis)  # another seed: a bank of its own
    cache.start_of(4, 10, 0, basis)  # a hit: seed 0 is now the most recent
    cache.start_of(4, 1000, 2, basis)  # seed 1 (the least recently used) goes
    assert sorted(key[1] for key in cache._banks) == [0, 2]
    assert cache.start_of(4, 3000, 0, basis) is None and len(cache._banks) == 2  # beyond the limit: not kept
    assert sum(b.numel() * b.element_size() for b in cache._banks.values()) <= cache.limit_bytes


def test_refinement_differentiates_through_a_bank_kept_in_inference_mode():
    """The demo's first reconstruction keeps the bank inside inference mode; a refinement after it takes gradients
    through it: the same gradients as through the taps."""
    banked, taps = _model(RELATIVE, loud=True).double(), _taps_only(_model(RELATIVE, loud=True).double())
    x = 0.3 * torch.randn(1, 1, 2048, dtype=torch.float64)
    with torch.inference_mode():
        banked(x, sample=False)
    grads = []
    for model in (banked, taps):
        z = model.encode(x).detach().requires_grad_(True)
        model.decode(z).pow(2).sum().backward()
        grads.append(z.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-10) and grads[0].abs().sum() > 0


def test_a_refined_chunk_draws_its_noise_where_the_chunk_lies():
    """Refinement decodes a chunk of a longer signal with the chunk's noise, as the plain pass does (with no steps,
    the same audio at every offset; the noise at another offset differs)."""
    from vaedemo.refine import refined_reconstruction

    model = _model(loud=True)
    x = 0.3 * torch.randn(1, 1, 2048)
    with torch.no_grad():
        plain = {k: model(x, sample=False, offset=k).audio for k in (0, 1024)}
    for k, audio in plain.items():
        torch.testing.assert_close(refined_reconstruction(model, x, 0, offset=k), audio)
    assert not torch.allclose(plain[0], plain[1024])


def test_a_copied_or_pickled_model_starts_with_no_kept_bank():
    import copy
    import io

    model = _model(loud=True)
    with torch.inference_mode():
        model(torch.randn(1, 1, 2048), sample=False)
    assert model.decoder.noise.banks._banks and not copy.deepcopy(model).decoder.noise.banks._banks
    saved = io.BytesIO()
    torch.save(model, saved)  # a whole model pickled (the project never loads pickles; users may save them)
    saved.seek(0)
    again = torch.load(saved, weights_only=False)
    assert not again.decoder.noise.banks._banks and again.decoder.noise.banks.start_of(4, 8, 0, fir_basis(5)) is not None


# ------------------------------------------------------------------------------------------------------ training
def test_gradients_reach_the_branch():
    model = _model().train()
    out = model(0.3 * torch.randn(2, 1, 2048))
    out.bands_out.pow(2).mean().backward()
    grads = [p.grad for p in model.decoder.noise.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("relative", [False, True])
def test_one_training_step_with_the_branch(tmp_path, relative):
    cfg = _config(*([RELATIVE] if relative else []), "train.batch_size=2", "train.max_steps=1", "train.vae_steps=1",
                  "train.beta_warmup_steps=1", "train.stft_sizes=[256, 128]", "train.band_stft_sizes=[32, 16]",
                  "train.mel_sizes=[256]")  # fmt: skip
    torch.manual_seed(0)
    module = VAEModule(cfg)
    before = {k: v.clone() for k, v in module.vae.decoder.noise.state_dict().items()}
    loader = torch.utils.data.DataLoader(0.1 * torch.randn(2, 1, cfg.model.clip_length), batch_size=2)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module, loader)
    assert int(module.step) == 1 and module.skipped_steps == 0
    after = module.vae.decoder.noise.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


# ----------------------------------------------------------------------------------------------- causal, stream
@pytest.mark.parametrize("relative", [False, True])
@pytest.mark.parametrize("bands", [1, 4])
def test_a_causal_model_with_noise_never_looks_ahead(bands, relative):
    """bands=1: no PQMF lag to hide a look-ahead behind (a centred noise stack fails here; with 4 bands it hides)."""
    extra = [RELATIVE] if relative else []
    assert_never_looks_ahead(_model("model.causal=true", f"model.bands={bands}", *extra, loud=True))  # one noise seed


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("bands,channels,relative", [(1, 1, False), (4, 1, False), (4, 2, False), (1, 1, True),
                                                     (4, 2, True)])  # fmt: skip
def test_a_stream_with_noise_is_the_offline_pass_delayed(causal, bands, channels, relative):
    extra = [RELATIVE] if relative else []
    model = _model(f"model.causal={causal}", f"model.bands={bands}", f"model.channels={channels}", *extra,
                   loud=True).double()  # fmt: skip
    x = assert_streams_like_offline(model, causal)
    assert _noise_only(model, x).abs().max() > 1e-2  # the branch is loud enough to be checked at all


@pytest.mark.parametrize("relative", [False, True])
def test_the_receptive_field_covers_the_noise_branch(relative):
    """The noise stack reads further than the final conv (relative noise, the stack's bands a frame back too); the
    receptive field (which sizes the Engine's chunk margins) grows with it. Both passes share the noise (eval
    seed): only the magnitudes can differ."""
    model = _model(*([RELATIVE] if relative else []), loud=True)
    assert model.decoder.span > _model(noise=False).decoder.span
    assert impulse_reach(model) <= model.receptive_field


# ------------------------------------------------------------------------------------------------------ bundles
def test_bundle_round_trip_with_the_branch(tmp_path):
    model = _model(loud=True)
    path = save_bundle(model, tmp_path / "noisy")
    bundle = load(path)
    assert bundle.config.noise_bands == 5 and bundle.config.noise_hop == 4
    assert any(k.startswith("decoder.noise.") for k in bundle.model.state_dict())
    x = 0.1 * torch.randn(1, 1, 3000)
    with torch.no_grad():
        assert torch.equal(bundle.model(x, sample=False).audio, model(x, sample=False).audio)


def test_init_from_a_bundle_without_the_branch_keeps_the_branch_fresh(tmp_path, capsys):
    source = _model(noise=False, loud=True)
    path = save_bundle(source, tmp_path / "plain")
    torch.manual_seed(1)
    target = AudioVAE(_config().model)
    fresh = {k: v.clone() for k, v in target.decoder.noise.state_dict().items()}
    init_weights(target, str(path))
    assert "keep their fresh init" in capsys.readouterr().out
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k
    assert all(torch.equal(v, fresh[k]) for k, v in target.decoder.noise.state_dict().items())


def test_init_from_still_refuses_any_other_difference(tmp_path):
    path = save_bundle(_model(noise=False), tmp_path / "plain")
    with pytest.raises(VaedemoError, match="does not fit this model"):
        init_weights(AudioVAE(_config("model.capacity=8").model), str(path))  # other shapes, noise or not
    with pytest.raises(VaedemoError, match="does not fit this model"):
        init_weights(AudioVAE(_config("model.posterior_flow_layers=2").model), str(path))  # a missing flow
    noisy = save_bundle(_model(), tmp_path / "noisy")
    with pytest.raises(VaedemoError, match="does not fit this model"):
        init_weights(AudioVAE(_config(noise=False).model), str(noisy))  # the bundle has tensors the model lacks


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("relative", [False, True])
def test_the_engine_in_chunks_equals_the_whole_pass(tmp_path, causal, relative):
    """Each chunk draws its noise at its own position in the signal (its offset), as the whole pass does there: in a
    reconstruction and in a decode."""
    from vaedemo.inference import Engine

    model = _model(f"model.causal={causal}", *([RELATIVE] if relative else []), loud=True)
    engine = Engine(save_bundle(model, tmp_path / "noisy"), chunk_seconds=0.3)
    x = (0.1 * torch.randn(16000 * 2 + 123, 1)).numpy()
    z = engine.encode(x, 16000)
    chunked, decoded = engine.reconstruct(x, 16000), engine.decode(z)
    engine.chunk = 10**9
    whole = engine.reconstruct(x, 16000)
    assert np.abs(chunked - whole).max() < 1e-4 * np.abs(whole).max()
    assert np.abs(decoded - engine.decode(z)).max() < 1e-4 * np.abs(decoded).max()


def test_the_engine_reconstructs_a_noise_model_deterministically_at_exact_length(tmp_path):
    from vaedemo.inference import Engine

    engine = Engine(save_bundle(_model(loud=True), tmp_path / "noisy"))
    x = (0.1 * torch.randn(5000, 1)).numpy()
    a, b = engine.reconstruct(x, 16000), engine.reconstruct(x, 16000)
    assert a.shape == x.shape and (a == b).all()  # the eval seed: the noise is part of the sound, and repeatable
    stream = engine.stream()
    assert stream.process(x[: 4 * engine.hop]).shape == (4 * engine.hop, 1)


# ------------------------------------------------------------------------------------------------ relative noise
def test_running_rms_is_the_rms_of_the_last_window_and_streams_in_uneven_chunks():
    x = torch.randn(2, 3, 100, dtype=torch.float64)
    window = 7
    direct = torch.stack([x[..., max(0, n - window + 1) : n + 1].square().sum(-1).div(window).sqrt()
                          for n in range(100)], dim=-1)  # fmt: skip
    assert torch.allclose(running_rms(x, window), direct, atol=1e-12)
    stream, cuts = StreamingRms(window), [0, 1, 4, 30, 31, 77, 100]
    pieces = [stream(x[..., a:b]) for a, b in zip(cuts, cuts[1:])]
    assert torch.allclose(torch.cat(pieces, dim=-1), direct, atol=1e-12)
    stream.reset()
    assert torch.allclose(stream(x[..., :50]), direct[..., :50], atol=1e-12)  # afresh after a reset
    late = StreamingRms(window, delay=9)  # what comes before the offline start is not part of the signal
    early = torch.randn(2, 3, 9, dtype=torch.float64)
    out = torch.cat([late(torch.cat([early, x[..., :20]], dim=-1)), late(x[..., 20:])], dim=-1)
    assert torch.equal(out[..., :9], torch.zeros_like(early)) and torch.allclose(out[..., 9:], direct, atol=1e-12)


def _parts(model: AudioVAE, x: torch.Tensor):
    with torch.no_grad():
        return model.decoder.parts(model.decoder.head(model.encode(x)))


def test_relative_noise_follows_the_stack_and_is_a_part_of_its_own():
    """Relative noise is a part beside the stack's (what the incoherent loss separates), scaled by the stack's level:
    silent where the stack is, twice as loud where it is twice as loud; absolute noise is inside the stack's part."""
    x = 0.3 * torch.randn(1, 1, 2048)
    absolute = _model(loud=True)
    stack, followers = _parts(absolute, x)
    assert followers == [] and _noise_only(absolute, x).abs().max() > 1e-2
    model = _model(RELATIVE, loud=True)
    stack, followers = _parts(model, x)
    assert len(followers) == 1 and followers[0].abs().max() > 1e-2
    with torch.no_grad():
        assert torch.allclose(stack + followers[0], model(x, sample=False).bands_out, atol=1e-6)
        hidden = model.decoder.net[:-1](model.decoder.head(model.encode(x)))
        noise = model.decoder.noise(hidden, 2 * stack)
        assert torch.allclose(noise, 2 * followers[0], atol=1e-6)  # the eval seed: the same noise, twice the level
        assert torch.equal(model.decoder.noise(hidden, torch.zeros_like(stack)), torch.zeros_like(stack))


def test_training_sees_relative_noise_beside_the_stack():
    """The training module synthesises each following part's audio, and those parts with the stack's add up to the
    reconstruction: the incoherent loss compares sqrt(|S(stack)|^2 + |S(noise)|^2) with the input."""
    module = VAEModule(_config(RELATIVE, "model.partials=4"))
    jitter_weights(module.vae)
    out = module.vae(0.3 * torch.randn(2, 1, 2048))
    followers = module._followers_audio(out)
    assert len(followers) == 2  # the noise, the bank
    spectra = module._spectra(out.target_padded, out.audio_padded, followers)
    assert len(spectra.parts) == 3
    assert torch.allclose(sum(spectra.parts), out.audio_padded, atol=1e-5)
    plain = VAEModule(_config(RELATIVE, "train.incoherent_partials=false"))
    assert plain._followers_audio(plain.vae(0.3 * torch.randn(2, 1, 2048))) == []  # the true sum, on request


@pytest.mark.parametrize("mode,causal", [("temporal", True), ("temporal", False), ("single", False), ("twostage", False)])
def test_a_decode_of_the_first_frames_alone_is_the_whole_decodes_start(mode, causal):
    """What a loop through a one-shot model relies on (a hit decoded only as far as it is kept): decoded from its first
    frames alone, every branch included, the audio up to the decoder's look-ahead before their end is the whole
    decode's; past it, a centred decoder's differs (it reads ahead)."""
    model = _model(f"model.latent_mode={mode}", f"model.causal={causal}", RELATIVE, "model.partials=4", loud=True).double()
    z = model.encode(0.3 * torch.randn(2, 1, 2048, dtype=torch.float64))
    lookahead = decoder_lookahead(model)
    assert (lookahead == 0) == causal
    with torch.no_grad():
        whole = model.decode(z)
        for frames in (1 + lookahead // model.hop + n for n in (0, 1, 5)):
            cut = model.decode(z, frames)
            assert cut.shape[-1] == frames * model.hop
            exact = frames * model.hop - lookahead  # at least a hop
            assert torch.allclose(cut[..., :exact], whole[..., :exact], rtol=0, atol=1e-12)
            assert causal or not torch.allclose(cut, whole[..., : cut.shape[-1]], rtol=0, atol=1e-9)


@pytest.mark.parametrize("causal", [True, False])
def test_a_stream_with_relative_noise_and_a_partial_bank_is_the_offline_pass_delayed(causal):
    model = _model(f"model.causal={causal}", RELATIVE, "model.partials=4", loud=True).double()
    assert_streams_like_offline(model, causal, resets=2)
    if causal:
        assert_never_looks_ahead(model.float())


def test_init_from_a_bundle_of_another_sample_rate_says_so(tmp_path, capsys):
    """Its tensors fit whatever the rate: a start from a 16 kHz model's filters at 22.05 kHz was silent."""
    rate = _config().model.sample_rate
    path = save_bundle(_model(), tmp_path / "b")
    init_weights(AudioVAE(_config().model), str(path))
    assert "warning" not in capsys.readouterr().err
    init_weights(AudioVAE(_config(f"model.sample_rate={rate * 2}").model), str(path))
    assert f"was trained at {rate} Hz and this model runs at {rate * 2} Hz" in capsys.readouterr().err
