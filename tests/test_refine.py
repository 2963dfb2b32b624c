"""Analysis by synthesis (vaedemo.refine, Engine.reconstruct(..., refine=N)): the same contract as a plain
reconstruction, never a worse latent by the search's own distance, the model left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaedemo.bundle import save_bundle
from vaedemo.errors import VaedemoError
from vaedemo.inference import Engine
from vaedemo.metrics import log_mel_spectrogram
from vaedemo.nn.vae import AudioVAE
from vaedemo.refine import SIZES, log_mels, prior_penalty, refine_latents, refined_reconstruction, spectral_distance


def _engine(tiny_config, tmp_path, mode, causal=False, **options):
    cfg = tiny_config(mode, flows=2, model__causal=causal)
    torch.manual_seed(0)
    model = AudioVAE(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Engine(save_bundle(model, tmp_path / f"b-{mode}-{causal}"), **options)


def _noise(samples, channels=1, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal((samples, channels))).astype(np.float32)


def test_the_search_distance_at_2048_points_is_the_evaluations_log_mel():
    x = torch.randn(2, 1, 9000) * 0.1
    expected = np.stack([log_mel_spectrogram(c.T.numpy(), 44100)[0] for c in x])
    assert SIZES[0] == 2048
    np.testing.assert_allclose(log_mels(x, 44100)[0].numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode,causal", [("temporal", False), ("temporal", True), ("single", False)])
def test_no_steps_is_the_plain_reconstruction(tiny_config, tmp_path, mode, causal):
    eng = _engine(tiny_config, tmp_path, mode, causal)
    x = torch.from_numpy(_noise(2 * eng.clip_length).T[None].copy())  # two clips: a one-vector model's chunk of two
    with torch.no_grad():
        plain = eng.model(x, sample=False).audio
    torch.testing.assert_close(refined_reconstruction(eng.model, x, 0), plain)
    audio = _noise(3000, 2)
    np.testing.assert_array_equal(eng.reconstruct(audio, 16000, refine=0), eng.reconstruct(audio, 16000))


@pytest.mark.parametrize("mode,causal", [("temporal", False), ("temporal", True), ("single", False)])
def test_refined_latents_decode_closer_by_the_search_distance(tiny_config, tmp_path, mode, causal):
    eng = _engine(tiny_config, tmp_path, mode, causal)
    model = eng.model
    x = torch.from_numpy(np.stack([_noise(eng.clip_length, seed=s).T for s in range(3)]))
    lag, t = model.delay, x.shape[-1]
    target = log_mels(x[..., : t - lag], model.sample_rate)

    def distance(z):
        with torch.no_grad():
            return spectral_distance(target, model.mode.unfold(model.decode(z), 3)[..., lag:t], model.sample_rate)

    with torch.no_grad():
        start = model.encode(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    refined = refine_latents(model, x, start, steps=6)
    assert refined.shape == start.shape
    assert (distance(refined) <= distance(start)).all() and (distance(refined) < distance(start) - 0.01).any()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("mode", ["temporal", "single"])
def test_a_prior_weight_keeps_the_searched_latents_where_the_prior_has_mass(tiny_config, tmp_path, mode):
    eng = _engine(tiny_config, tmp_path, mode)
    model = eng.model
    x = torch.from_numpy(np.stack([_noise(eng.clip_length, seed=s).T for s in range(3)]))
    target = log_mels(x, model.sample_rate)

    def objective(z, weight):
        with torch.no_grad():
            audio = model.mode.unfold(model.decode(z), 3)[..., : x.shape[-1]]
            return spectral_distance(target, audio, model.sample_rate) + weight * prior_penalty(model, z, 3)

    with torch.no_grad():
        start = model.encode(x)
    free, held = refine_latents(model, x, start, 8), refine_latents(model, x, start, 8, prior_weight=1.0)
    assert (objective(held, 1.0) <= objective(start, 1.0)).all()  # never worse by its own objective
    with torch.no_grad():
        assert (prior_penalty(model, held, 3) < prior_penalty(model, free, 3)).all()


@pytest.mark.parametrize("mode", ["temporal", "single"])
def test_a_refined_reconstruction_keeps_length_rate_and_channels(tiny_config, tmp_path, mode):
    eng = _engine(tiny_config, tmp_path, mode)
    for shape, sr in [((1000, 1), 16000), ((5000, 2), 16000), ((3000, 1), 44100), ((3 * eng.clip_length + 5, 1), 16000)]:
        x = _noise(*shape)
        y = eng.reconstruct(x, sr, refine=2)
        assert y.shape == shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert not np.array_equal(y, eng.reconstruct(x, sr))


@pytest.mark.parametrize("mode", ["temporal", "single"])
def test_encode_with_refine_gives_the_searched_latents_in_the_modes_layout(tiny_config, tmp_path, mode):
    eng = _engine(tiny_config, tmp_path, mode)
    x = _noise(eng.clip_length + 300, seed=3)  # a one-vector model: two clips, the second mostly padding
    plain, searched = eng.encode(x, eng.sample_rate), eng.encode(x, eng.sample_rate, refine=4)
    np.testing.assert_array_equal(eng.encode(x, eng.sample_rate, refine=0), plain)
    assert searched.shape == plain.shape and searched.dtype == np.float32 and not np.array_equal(searched, plain)
    clip = torch.from_numpy(x.T[None].copy())
    if eng.mode.per_clip:  # each clip searched against its own audio
        clip = eng.mode.fold(eng.mode.pad(clip))
    expected = refine_latents(eng.model, clip, eng.model.encode(clip).detach(), 4)  # the same search, by hand
    np.testing.assert_allclose(searched, eng.mode.to_numpy(expected), rtol=1e-5, atol=1e-6)


def test_a_causal_model_searches_the_whole_input_padded_by_its_lag_as_reconstruct_does(tiny_config, tmp_path):
    """encode(refine=N) compared the decode with only the first t - lag samples of the input (none of an input
    shorter than the lag: a reshape error); it searches on the input padded by the lag, as reconstruct does, and gives
    as many frames as encode without a search."""
    eng = _engine(tiny_config, tmp_path, "temporal", causal=True)
    lag = eng.model.delay
    assert lag > eng.hop
    for n in (lag // 2, lag + 3 * eng.hop + 5):
        x = _noise(n, seed=4)
        plain, searched = eng.encode(x, eng.sample_rate), eng.encode(x, eng.sample_rate, refine=3)
        assert searched.shape == plain.shape and np.isfinite(searched).all() and not np.array_equal(searched, plain)
    padded = torch.from_numpy(np.pad(x, ((0, lag), (0, 0))).T[None].copy())
    expected = refine_latents(eng.model, padded, eng.model.encode(padded).detach(), 3)  # the same search, by hand
    np.testing.assert_allclose(searched, eng.mode.to_numpy(expected)[: len(plain)], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_a_long_time_series_is_searched_chunk_by_chunk_as_reconstruct_searches_it(tiny_config, tmp_path, monkeypatch,
                                                                                  causal):  # fmt: skip
    """A search of the whole input held its autograd graph (4.4 GB for 4 minutes): encode(refine=N) searches each
    chunk with its margins, no search longer than a chunk and its margins, and each chunk's frames are those of the
    search of that chunk, a causal model's input padded by its lag."""
    from vaedemo import inference

    eng = _engine(tiny_config, tmp_path, "temporal", causal=causal, chunk_seconds=0.1)
    x, lag, hop = _noise(20000, seed=6), eng.model.delay, eng.hop
    seen, search = [], inference.searched_latents
    monkeypatch.setattr(inference, "searched_latents", lambda m, x, *a, **k: seen.append(x.shape[-1]) or search(m, x, *a, **k))
    searched = eng.encode(x, eng.sample_rate, refine=2)
    assert searched.shape == eng.encode(x, eng.sample_rate).shape
    assert len(seen) >= 3 and max(seen) <= eng.chunk + 2 * eng.margin < len(x)
    padded = torch.from_numpy(np.pad(x, ((0, lag), (0, 0))).T[None].copy())
    s, e, a, b = eng._chunks(padded.shape[-1])[1]  # the second chunk, margins on both sides
    assert 0 < a < s and e < b
    by_hand = search(eng.model, padded[..., a:b], 2, offset=a)[0, :, (s - a) // hop : (e - a) // hop].T.numpy()
    np.testing.assert_allclose(searched[s // hop : e // hop], by_hand, rtol=1e-5, atol=1e-6)


def test_a_one_vector_models_clips_are_searched_a_batch_at_a_time(tiny_config, tmp_path, monkeypatch):
    from vaedemo import inference

    eng = _engine(tiny_config, tmp_path, "single", batch=2)
    x = _noise(5 * eng.clip_length, seed=7)
    seen, search = [], inference.searched_latents
    monkeypatch.setattr(inference, "searched_latents", lambda m, x, *a, **k: seen.append(len(x)) or search(m, x, *a, **k))
    clips = eng.mode.fold(torch.from_numpy(x.T[None].copy()))
    all_at_once = refine_latents(eng.model, clips, eng.model.encode(clips).detach(), 3)
    np.testing.assert_allclose(eng.encode(x, eng.sample_rate, refine=3), all_at_once.numpy(), rtol=1e-5, atol=1e-5)
    assert seen == [2, 2, 1]


def test_a_one_vector_model_searches_each_clip_on_its_own(tiny_config, tmp_path):
    """Reconstruction and encoding alike: a clip's searched latent is the one it gets alone, whatever follows it."""
    eng = _engine(tiny_config, tmp_path, "single")
    sr, n = eng.sample_rate, eng.clip_length
    x = _noise(n + 700, seed=5)
    np.testing.assert_allclose(eng.reconstruct(x, sr, refine=4)[:n], eng.reconstruct(x[:n], sr, refine=4), atol=1e-5)
    np.testing.assert_allclose(eng.encode(x, sr, refine=4)[0], eng.encode(x[:n], sr, refine=4)[0], atol=2e-4)


@pytest.mark.parametrize("steps", [-1, 1001, 2.5, "3", True])  # (True would have searched one step)
def test_a_bad_number_of_steps_gets_one_sentence(tiny_config, tmp_path, steps):
    eng = _engine(tiny_config, tmp_path, "temporal")
    with pytest.raises(VaedemoError, match=r"^refine must be a whole number of steps from 0 to 1000, got .*\.$"):
        eng.reconstruct(_noise(1000), 16000, refine=steps)
    with pytest.raises(VaedemoError, match=r"^refine must be a whole number of steps from 0 to 1000, got .*\.$"):
        eng.encode(_noise(1000), 16000, refine=steps)


@pytest.mark.parametrize("weight", [-0.1, float("nan"), float("inf"), "1", True])
def test_a_bad_prior_weight_gets_one_sentence(tiny_config, tmp_path, weight):
    eng = _engine(tiny_config, tmp_path, "single")
    with pytest.raises(VaedemoError, match=r"^prior_weight must be a number from 0 up, got .*\.$"):
        eng.encode(_noise(1000), 16000, refine=2, prior_weight=weight)


def test_numpy_numbers_are_numbers(tiny_config, tmp_path):
    eng = _engine(tiny_config, tmp_path, "single")
    x = _noise(1000)
    np.testing.assert_array_equal(eng.encode(x, 16000, refine=np.int64(2), prior_weight=np.float32(0.5)),
                                  eng.encode(x, 16000, refine=2, prior_weight=0.5))  # fmt: skip
