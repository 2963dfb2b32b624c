"""Onsets and hit-by-hit reconstruction of performances through one-shot models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import stft

from vaedemo.onsets import HOP, cover_long_gaps, detect_onsets, hit_segments, kept_lengths, lay_hits

ROOT = Path(__file__).resolve().parents[1]


def clicks(sr: int, times: list[float], seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.zeros(int(sr * seconds), np.float32)
    for t in times:
        n = int(0.08 * sr)
        s = int(t * sr)
        x[s : s + n] += (rng.standard_normal(n) * np.exp(-np.arange(n) / (0.01 * sr))).astype(np.float32)[: len(x) - s]
    return 0.5 * x


def test_onsets_of_a_click_track_are_found_within_a_hop():
    sr, times = 44100, [0.25, 0.6, 0.9, 1.4, 1.45, 2.0]  # 1.45 is 50 ms after 1.4: still a hit of its own
    found = detect_onsets(clicks(sr, times, 2.5), sr)
    assert found[0] == 0
    hits = found[1:] / sr
    assert len(hits) == len(times)
    assert np.all(np.abs(hits - np.array(times)) <= 2 * HOP / sr)
    assert np.all(hits <= np.array(times) + 1e-9)  # never after the attack


@pytest.mark.parametrize("channels", [1, 2])
def test_the_stft_taken_a_chunk_at_a_time_finds_what_the_whole_stft_finds(monkeypatch, channels):
    """The detector reads a few numbers a frame of the STFT, taken CHUNK_FRAMES frames at a time: the whole STFT of a
    600 s input took 2.6 GB. Chunks of 7 frames (hits across their edges, a last chunk padded) give the same."""
    from vaedemo import onsets

    sr, times = 44100, [0.25, 0.6, 0.9, 1.4, 1.45, 2.0]
    x = np.stack([clicks(sr, times, 2.5) * (1 - 0.3 * c) for c in range(channels)], axis=1)[:-37]
    whole = np.abs(stft(x.T, nperseg=1024, noverlap=768, boundary=None, padded=True)[2])  # the whole STFT at once
    rises = np.maximum(np.diff(np.log1p(100.0 * whole), axis=-1), 0.0).sum(axis=(0, 1))
    whole_flux = np.concatenate([rises[:1], rises])  # (frame 0 repeats frame 1's)
    flux, bands = onsets.onset_features(x, 1024, 256)
    monkeypatch.setattr(onsets, "CHUNK_FRAMES", 14)
    chunks = list(onsets.magnitude_chunks(x, 1024, 256))
    chunked = np.concatenate(chunks, axis=-1)
    per_chunk = 14 // channels  # CHUNK_FRAMES frames of all channels together (16 channels had taken 16 times one's)
    assert {c.shape[-1] for c in chunks[:-1]} == {per_chunk}
    assert len(chunks) == -(-whole.shape[-1] // per_chunk) > 25  # (as the features and the detector below take them)
    assert chunked.shape == whole.shape and np.allclose(chunked, whole, rtol=1e-5, atol=1e-7)  # (FFT batch rounding)
    small_flux, small_bands = onsets.onset_features(x, 1024, 256)
    assert np.allclose(small_flux, whole_flux, rtol=1e-5) and np.allclose(small_flux, flux, rtol=1e-5)
    assert np.allclose(small_bands, onsets.band_powers(whole), rtol=1e-5) and np.allclose(small_bands, bands, rtol=1e-5)
    found = detect_onsets(x, sr)
    assert len(found) == len(times) + 1
    monkeypatch.setattr(onsets, "CHUNK_FRAMES", 4096)
    assert np.array_equal(detect_onsets(x, sr), found)


def test_each_onset_lies_a_margin_before_its_attack():
    """The cut lies half a hop before the centre of the frame where the flux peaks, so that the attack is never
    clipped; without that half hop the cuts fell 0.2-0.4 ms before the clicks, still 'never after' them."""
    sr, times = 44100, [0.25, 0.6, 0.9, 1.4, 1.45, 2.0]
    found = detect_onsets(clicks(sr, times, 2.5), sr)[1:]
    assert len(found) == len(times)
    assert np.all(np.array(times) - found / sr >= 0.001)  # 3.1-7.5 ms here (half a hop: 2.9 ms)


@pytest.mark.parametrize("sr", [11025, 16000, 22050, 48000])
def test_hits_50_ms_apart_are_found_at_other_sample_rates(sr):
    """The STFT spans about the same time at every rate (at 16 kHz a 1024-sample window is 64 ms: hits 50 ms apart
    shared its frames, and 11.025 kHz found 3 of 8)."""
    times = [0.3 + 0.05 * i for i in range(8)]
    found = detect_onsets(clicks(sr, times, 1.2), sr)[1:] / sr
    assert len(found) == len(times) and np.all(np.abs(found - times) <= 0.015)


def steady_sounds(sr: int, seconds: float) -> dict[str, np.ndarray]:
    t = np.arange(int(seconds * sr)) / sr
    return {
        "white noise": 0.3 * np.random.default_rng(1).standard_normal(len(t)),
        "sawtooth": 0.5 * (2 * ((110 * t) % 1) - 1),
        "held chord": sum(np.sin(2 * np.pi * f * t) for f in (220, 277.2, 329.6)) / 3,
        "vibrato": 0.5 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5 * t)),
    }


@pytest.mark.parametrize("name", ["white noise", "sawtooth", "held chord", "vibrato"])
def test_a_steady_sound_has_no_onsets(name):
    """Its flux has peaks over the threshold, which is relative to the flux's own spread (19-43 cuts in 3 s before
    the band-rise check): no band's energy rises there as a hit's does."""
    sr = 44100
    assert list(detect_onsets(steady_sounds(sr, 3.0)[name].astype(np.float32), sr)) == [0]


def test_hits_over_a_steady_sound_are_found():
    sr, times = 44100, [0.25, 0.6, 0.9, 1.4, 2.0]
    bed = 0.05 * steady_sounds(sr, 2.5)["white noise"] + 0.1 * steady_sounds(sr, 2.5)["held chord"]
    found = detect_onsets((clicks(sr, times, 2.5) + bed).astype(np.float32), sr)
    assert len(found) == len(times) + 1 and np.all(np.abs(found[1:] / sr - times) <= 2 * HOP / sr)


def test_silence_and_a_single_hit_give_only_the_start():
    assert list(detect_onsets(np.zeros(44100, np.float32), 44100)) == [0]


def test_channels_in_opposite_polarity_keep_their_onsets():
    """A mono mix would cancel them (a loop whose right channel is inverted had no onsets after 0)."""
    sr, times = 44100, [0.25, 0.6, 0.9]
    left = clicks(sr, times, 1.5)
    found = detect_onsets(np.stack([left, -left], axis=1), sr)
    assert len(found) == len(times) + 1 and np.all(np.abs(found[1:] / sr - times) <= 2 * HOP / sr)


def test_a_sound_held_past_a_clip_is_cut_every_clip_and_silence_is_not():
    sr, clip = 16000, 8000
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * sr) / sr).astype(np.float32)
    assert list(cover_long_gaps(np.array([0]), tone[:, None], clip)) == [0, 8000, 16000, 24000, 32000, 40000]
    hit_then_silence = np.zeros(3 * sr, np.float32)
    hit_then_silence[:400] = 0.5
    hit_then_silence[40000:40400] = 0.5
    onsets = np.array([0, 40000])
    assert list(cover_long_gaps(onsets, hit_then_silence[:, None], clip)) == [0, 40000]  # the silence between: no cut
    assert list(cover_long_gaps(np.array([0]), np.zeros((3 * sr, 2), np.float32), clip)) == [0]


def test_a_one_shot_model_keeps_what_follows_its_last_onset_and_inverted_channels(tiny_config, tmp_path):
    """A held sound longer than a clip, and a loop whose channels are in opposite polarity, come back sounding to the
    end (they fell silent after the first clip: no onset there)."""
    from vaedemo.bundle import save_bundle
    from vaedemo.inference import Engine
    from vaedemo.nn.vae import AudioVAE

    torch.manual_seed(0)
    eng = Engine(save_bundle(AudioVAE(tiny_config("single").model), tmp_path / "b"))
    sr, clip = eng.sample_rate, eng.clip_length
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * clip) / sr).astype(np.float32)
    assert np.abs(eng.reconstruct(tone, sr)[-clip // 2 :]).max() > 0
    loop = clicks(sr, [0.01, 2.5 * clip / sr], 4 * clip / sr)
    y = eng.reconstruct(np.stack([loop, -loop], axis=1), sr)
    assert np.abs(y[int(2.5 * clip) : 3 * clip]).max(axis=0).min() > 0  # the second hit, in both channels


def test_segments_and_laying_keep_the_exact_length():
    onsets = np.array([0, 100, 1000, 5000])
    segs = hit_segments(onsets, 6000, clip_length=2048)
    assert segs == [(0, 100), (100, 1000), (1000, 3048), (5000, 6000)]
    hits = [np.ones((2048, 2), np.float32) for _ in segs]
    out = lay_hits(hits, onsets, 6000, 44100)
    assert out.shape == (6000, 2)
    assert np.allclose(out[:100], 1.0) and np.allclose(out[3048:5000], 0.0)  # each hit ends with its clip or fade


def test_hits_cut_to_their_kept_lengths_are_laid_as_whole_clips_are():
    onsets, sr = np.array([0, 100, 1000, 5000]), 44100
    kept = kept_lengths(onsets, 6000, 2048, sr)
    fade = int(0.03 * sr)
    assert list(kept) == [100 + fade, 2048, 2048, 1000]  # to the fade's end after the next onset, within clip and input
    hits = list(np.random.default_rng(0).standard_normal((4, 2048, 2)).astype(np.float32))
    cut = [hit[:n] for hit, n in zip(hits, kept)]
    assert np.array_equal(lay_hits(cut, onsets, 6000, sr), lay_hits(hits, onsets, 6000, sr))


@pytest.mark.parametrize("channels,inputs", [(1, 2), (2, 3)])
def test_a_loop_decoded_hit_by_hit_as_far_as_each_is_kept_equals_whole_clips_laid(tiny_config, tmp_path, channels, inputs,
                                                                                  monkeypatch):  # fmt: skip
    """Each hit's decode stops at its kept length plus the decoder's look-ahead, and its encoder map at the encoder's
    reach past the hit's end (the rest is a silent clip's); a decoder whose every branch reads ahead (relative noise,
    a partial bank) gives what encoding and decoding every hit's whole clip and laying it gives, the hits taken a
    block at a time or all at once; more hits than max_hits are refused before any is decoded."""
    from vaedemo import inference
    from vaedemo.bundle import save_bundle
    from vaedemo.inference import Engine, TooManyHitsError, cost_batches
    from vaedemo.nn.vae import AudioVAE

    cfg = tiny_config("twostage", model__channels=channels, model__noise_bands=5, model__noise_hop=2,
                      model__noise_relative=True, model__partials=4)  # fmt: skip
    torch.manual_seed(0)
    model = AudioVAE(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    eng = Engine(save_bundle(model, tmp_path / "b"), batch=3)  # several batches, of hits kept short and long
    sr = eng.sample_rate
    mono = clicks(sr, [0.02, 0.1, 0.14, 0.35, 0.4, 0.45, 0.5, 0.55, 0.9, 0.95, 1.3], 1.5)
    x = np.stack([mono * (1 - 0.2 * c) for c in range(inputs)], axis=1)
    length, batch = eng.clip_length, eng.batch
    onsets = cover_long_gaps(detect_onsets(x, sr), x, length)
    segments = hit_segments(onsets, len(x), length)
    clips = [np.pad(x[s:e], ((0, length - (e - s)), (0, 0))) for s, e in segments]
    # some batch of each side is cut short, as the Engine batches them (hits sorted by what each keeps, by length)
    kept, ends = kept_lengths(onsets, len(x), length, sr), np.array([e - s for s, e in segments])
    assert len(clips) >= 8
    assert min(kept[rows].max() for rows in cost_batches(kept, batch)) + eng.decoder_lookahead_samples < length
    reach = eng.encoder_reach_samples + eng.encoder_lookahead_frames * eng.hop
    assert min(ends[rows].max() for rows in cost_batches(ends, batch)) + reach < length
    # the reference: the model's forward pass over every hit's whole clip, in the Engine's decode batches, each
    # channel group on its own
    groups = torch.from_numpy(np.stack([eng._groups(clip) for clip in clips], axis=1))  # (G, hits, C_model, clip)
    with torch.no_grad():
        whole = torch.stack([torch.cat([eng.model(g[i : i + batch], sample=False).audio for i in range(0, len(g), batch)])
                             for g in groups]).numpy()  # fmt: skip
    hits = [eng._ungroup(whole[:, i], inputs) for i in range(len(clips))]
    expected = lay_hits(hits, onsets, len(x), sr)
    y = eng.reconstruct(x, sr)
    assert y.shape == x.shape
    assert np.allclose(y, expected, rtol=0, atol=1e-6) and np.abs(expected).max() > 0.01
    counted = eng.reconstruction(x, sr, max_hits=len(clips))  # the same audio, with the count of what it was cut into
    assert np.array_equal(counted.audio, y) and counted.hits == len(clips) == eng.hits(x, sr)
    monkeypatch.setattr(inference, "HITS_PER_BLOCK", 4)  # blocks of hits that cut the decode's batches of 3
    assert np.allclose(eng.reconstruct(x, sr), expected, rtol=0, atol=1e-6)
    assert eng.reconstruction(x[: length + 1], sr).hits is None  # shorter than two clips: clip by clip
    monkeypatch.setattr(eng, "_through_clips", None)  # (refused before anything is encoded or decoded)
    with pytest.raises(TooManyHitsError, match=f"holds {len(clips)} hits, more than the {len(clips) - 1} allowed"):
        eng.reconstruction(x, sr, max_hits=len(clips) - 1)


def test_a_loop_through_the_shipped_one_shot_model_is_cut_at_its_hits():
    from vaedemo.inference import Engine
    from vaedemo.metrics import log_mel_l1

    x, sr = sf.read(ROOT / "examples" / "drum_loop.flac", dtype="float32", always_2d=True)
    eng = Engine(ROOT / "checkpoints" / "drums_single_flow")
    by_hits = eng.reconstruct(x, sr)
    by_clips = eng._reconstruct_channels(x)  # what fixed one-clip cutting gives
    assert by_hits.shape == x.shape
    assert log_mel_l1(x, by_hits, sr) < log_mel_l1(x, by_clips, sr)
