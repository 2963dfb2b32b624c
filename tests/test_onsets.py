"""Onsets and hit-by-hit reconstruction of performances through one-shot models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from vaedemo.onsets import HOP, detect_onsets, hit_segments, lay_hits

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


def test_silence_and_a_single_hit_give_only_the_start():
    assert list(detect_onsets(np.zeros(44100, np.float32), 44100)) == [0]


def test_segments_and_laying_keep_the_exact_length():
    onsets = np.array([0, 100, 1000, 5000])
    segs = hit_segments(onsets, 6000, clip_length=2048)
    assert segs == [(0, 100), (100, 1000), (1000, 3048), (5000, 6000)]
    hits = [np.ones((2048, 2), np.float32) for _ in segs]
    out = lay_hits(hits, onsets, 6000, 44100)
    assert out.shape == (6000, 2)
    assert np.allclose(out[:100], 1.0) and np.allclose(out[3048:5000], 0.0)  # each hit ends with its clip or fade


def test_a_loop_through_the_shipped_one_shot_model_is_cut_at_its_hits():
    from vaedemo.inference import Engine
    from vaedemo.metrics import log_mel_l1

    x, sr = sf.read(ROOT / "examples" / "drum_loop.flac", dtype="float32", always_2d=True)
    eng = Engine(ROOT / "checkpoints" / "drums_single_flow")
    by_hits = eng.reconstruct(x, sr)
    by_clips = eng._reconstruct_channels(x)  # what fixed one-clip cutting gives
    assert by_hits.shape == x.shape
    assert log_mel_l1(x, by_hits, sr) < log_mel_l1(x, by_clips, sr)
