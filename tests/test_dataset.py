"""Dataset pipeline: scanning, decoded cache, deterministic split, clip shapes per mode, channel handling, errors."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vaedemo.config import DataConfig
from vaedemo.data import dataset as ds
from vaedemo.data.dataset import ClipDataset, build_datasets, scan_audio, split_files
from vaedemo.errors import DataError

SR = 8000
L = 800  # clip length in samples


def write(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype if path.suffix.lower() == ".wav" else None)
    return path


def ramp(n: int, channels: int = 1) -> np.ndarray:
    """Distinct, exactly representable values: a crop reveals where it came from."""
    x = (np.arange(n, dtype=np.float32) / 2**15).reshape(-1, 1)
    return np.repeat(x, channels, axis=1) if channels > 1 else x


def cfg(root: Path, channels: int = 1, **kw) -> tuple[DataConfig, int]:
    """A data config and the model's channel count (the model owns rate, channels and clip length)."""
    return DataConfig(**({"root": str(root)} | kw)), channels


def build(spec: tuple[DataConfig, int]):
    data, channels = spec
    return build_datasets(data, SR, channels, L)


def drums(root: Path, n: int = 8) -> list[str]:
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        rel = f"{'kicks' if i % 2 else 'snares'}/hit{i}.{'flac' if i % 3 == 0 else 'wav'}"
        write(root / rel, (0.3 * rng.standard_normal((400 + 100 * i, 1))).astype(np.float32))
        names.append(rel)
    return sorted(names)


# ------------------------------------------------------------------------------------------------------------- scan


def test_scan_is_recursive_case_insensitive_sorted_and_skips_hidden(tmp_path):
    for rel in ["b/z.WAV", "a.Flac", "b/a.ogg", ".vaedemo_cache/c.wav", ".git/d.wav", "b/._e.wav", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in scan_audio(tmp_path)]
    assert found == ["a.Flac", "b/a.ogg", "b/z.WAV"]


def test_linked_folders_are_read_once_and_a_link_loop_ends(tmp_path):
    kit, data = tmp_path / "kit", tmp_path / "data"
    for rel in ["kick.wav", "sub/snare.wav"]:
        (kit / rel).parent.mkdir(parents=True, exist_ok=True)
        (kit / rel).write_bytes(b"x")
    data.mkdir()
    (data / "own.wav").write_bytes(b"x")
    (data / "kit").symlink_to(kit)  # a kit linked in, not copied
    (data / "kit_again").symlink_to(kit)
    (kit / "sub" / "up").symlink_to(kit)  # a loop
    (data / "parent").symlink_to(tmp_path)  # above the data folder: its siblings (and kit) are not the data
    (tmp_path / "sibling").mkdir()
    (tmp_path / "sibling" / "other.wav").write_bytes(b"x")
    found = [p.relative_to(data).as_posix() for p in scan_audio(data)]
    assert found == ["kit/kick.wav", "kit/sub/snare.wav", "own.wav"]


def test_a_file_reached_under_two_names_is_read_once(tmp_path, caplog):
    """Linked in beside itself (or hard-linked), one file was two clips, and the split (a hash of each path) could
    put one in training and the other in validation."""
    (tmp_path / "kits").mkdir()
    (tmp_path / "kits" / "kick.wav").write_bytes(b"x")
    (tmp_path / "a_kick.wav").symlink_to(tmp_path / "kits" / "kick.wav")
    os.link(tmp_path / "kits" / "kick.wav", tmp_path / "z_kick.wav")
    (tmp_path / "snare.wav").write_bytes(b"x")  # the same bytes, another file: kept
    with caplog.at_level(logging.WARNING, logger="vaedemo.data.dataset"):
        found = [p.relative_to(tmp_path).as_posix() for p in scan_audio(tmp_path)]
    assert found == ["a_kick.wav", "snare.wav"] and "2 audio files are other names of files already found" in caplog.text


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg makes the m4a file")
def test_every_container_the_decoder_reads_is_training_data(tmp_path):
    """The README's "any files soundfile or ffmpeg read": aiff and m4a were skipped as "not an audio file"."""
    x = (0.3 * np.random.default_rng(0).standard_normal((2 * L, 1))).astype(np.float32)
    write(tmp_path / "a.wav", x)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(tmp_path / "a.wav"), str(tmp_path / "b.aiff"),
                    str(tmp_path / "c.m4a")], check=True)  # fmt: skip
    (tmp_path / "a.wav").unlink()
    assert [p.name for p in scan_audio(tmp_path)] == ["b.aiff", "c.m4a"]
    train, val = build((DataConfig(root=str(tmp_path), val_fraction=0.5), 1))
    assert len(train) + len(val) >= 2


# ------------------------------------------------------------------------------------------------------------ split


def test_split_is_deterministic_disjoint_and_stable_when_files_are_added():
    rels = [f"kit/{i:03d}.wav" for i in range(200)]
    train, val = split_files(rels, 0.2, seed=3)
    assert (train, val) == split_files(rels, 0.2, seed=3)
    assert not set(train) & set(val) and sorted(train + val) == rels
    assert 20 <= len(val) <= 60
    train2, val2 = split_files(rels + ["kit/new.wav"], 0.2, seed=3)
    assert set(val) <= set(val2) and set(train) <= set(train2)  # no file changes side
    assert split_files(rels, 0.2, seed=4) != (train, val)


def test_split_guarantees_both_sides_and_never_an_empty_train():
    assert [len(s) for s in split_files(["a.wav", "b.wav"], 0.001)] == [1, 1]
    assert [len(s) for s in split_files(["a.wav", "b.wav", "c.wav"], 0.999)] == [1, 2]
    assert split_files(["a.wav"], 0.9) == (["a.wav"], [])
    assert split_files(["a.wav", "b.wav"], 0.0) == (["a.wav", "b.wav"], [])


def test_build_datasets_split_reports_files_and_is_repeatable(tmp_path):
    names = drums(tmp_path / "d")
    train, val = build(cfg(tmp_path / "d", val_fraction=0.25))
    assert train.files and val.files and not set(train.files) & set(val.files)
    assert sorted(train.files + val.files) == names
    again = build(cfg(tmp_path / "d", val_fraction=0.25))
    assert (again[0].files, again[1].files) == (train.files, val.files)


def test_max_files_keeps_a_deterministic_subset(tmp_path):
    drums(tmp_path, 8)
    a = build(cfg(tmp_path, max_files=3, val_fraction=0.0))[0].files
    assert len(a) == 3 and a == build(cfg(tmp_path, max_files=3, val_fraction=0.0))[0].files


# ------------------------------------------------------------------------------------------------------------ modes


def test_oneshot_items_are_one_padded_or_cropped_clip_per_file(tmp_path):
    write(tmp_path / "short.wav", ramp(300))
    write(tmp_path / "long.wav", ramp(3 * L + 5))
    train, val = build(cfg(tmp_path, val_fraction=0.0))
    assert len(train) == 2 and len(val) == 0
    items = {f: train[i] for i, f in enumerate(train.files)}
    for x in items.values():
        assert x.dtype == torch.float32 and x.shape == (1, L)
    np.testing.assert_array_equal(items["long.wav"][0].numpy(), ramp(L)[:, 0])
    np.testing.assert_array_equal(items["short.wav"][0, :300].numpy(), ramp(300)[:, 0])
    assert not items["short.wav"][0, 300:].any()
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=2)))
    assert batch.shape == (2, 1, L)


def test_crops_train_items_are_random_crops_one_per_whole_clip(tmp_path):
    n = 3 * L + L // 2
    write(tmp_path / "long.wav", ramp(n))
    write(tmp_path / "short.wav", ramp(L // 2))
    train, _ = build(cfg(tmp_path, mode="crops", val_fraction=0.0))
    assert train.files == ["long.wav", "short.wav"] and len(train) == 3 + 1

    def starts() -> list[int]:
        out = []
        for k in range(3):  # items 0..2 come from long.wav
            x = train[k][0].numpy()
            start = int(round(float(x[0]) * 2**15))
            np.testing.assert_array_equal(x, ramp(n)[start : start + L, 0])
            out.append(start)
        return out

    torch.manual_seed(0)
    first = starts()
    torch.manual_seed(0)
    assert starts() == first  # torch's RNG: seeding (and DataLoader worker seeds) make crops reproducible
    assert len({tuple(starts()) for _ in range(5)}) > 1
    short = train[3]
    assert short.shape == (1, L) and not short[0, L // 2 :].any()


def test_crops_val_items_are_consecutive_and_deterministic(tmp_path):
    write(tmp_path / "a.wav", ramp(3 * L + 7))
    write(tmp_path / "b.wav", ramp(2 * L))
    train, val = build(cfg(tmp_path, mode="crops", val_fraction=0.5))
    assert len(train.files) == 1 and len(val.files) == 1
    n = 3 * L + 7 if val.files == ["a.wav"] else 2 * L
    assert len(val) == n // L
    for k in range(len(val)):
        np.testing.assert_array_equal(val[k][0].numpy(), ramp(n)[k * L : (k + 1) * L, 0])
        assert torch.equal(val[k], val[k])
    with pytest.raises(IndexError):
        val[len(val)]


# --------------------------------------------------------------------------------------------- channels, resampling


def test_stereo_is_downmixed_and_mono_upmixed(tmp_path):
    stereo = np.stack([np.full(L, 0.5), np.full(L, -0.1)], axis=1).astype(np.float32)
    write(tmp_path / "stereo.wav", stereo)
    write(tmp_path / "mono.flac", np.full((L, 1), 0.25, np.float32), subtype=None)
    mono_ds, _ = build(cfg(tmp_path, channels=1, val_fraction=0.0))
    stereo_ds, _ = build(cfg(tmp_path, channels=2, val_fraction=0.0))
    m = dict(zip(mono_ds.files, (mono_ds[i] for i in range(len(mono_ds)))))
    s = dict(zip(stereo_ds.files, (stereo_ds[i] for i in range(len(stereo_ds)))))
    assert m["stereo.wav"].shape == (1, L) and s["mono.flac"].shape == (2, L)
    assert torch.allclose(m["stereo.wav"], torch.tensor(0.2))
    assert torch.allclose(s["stereo.wav"][0], torch.tensor(0.5))
    assert torch.allclose(s["stereo.wav"][1], torch.tensor(-0.1))
    assert torch.allclose(s["mono.flac"], torch.tensor(0.25), atol=1e-4)


def test_files_are_resampled_to_the_configured_rate(tmp_path):
    write(tmp_path / "hi.wav", np.zeros((2 * SR, 1), np.float32) + 0.1, sr=2 * SR)
    train, _ = build(cfg(tmp_path, mode="crops", val_fraction=0.0))
    assert train.sources[0].frames == SR and len(train) == SR // L


# ------------------------------------------------------------------------------------------------------------ cache


def test_cache_is_written_and_reused_without_decoding(tmp_path, monkeypatch):
    names = drums(tmp_path, 4)
    first, _ = build(cfg(tmp_path, val_fraction=0.0))
    cached = sorted((tmp_path / ".vaedemo_cache").glob("*.npy"))
    assert len(cached) == len(names)
    assert all(np.load(p, mmap_mode="r").dtype == np.float32 for p in cached)

    def no_decode(*a, **k):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(ds, "load_audio", no_decode)
    second, _ = build(cfg(tmp_path, val_fraction=0.0))
    assert second.files == first.files
    for i in range(len(first)):
        assert torch.equal(first[i], second[i])
    assert isinstance(second.sources[0].read(), np.memmap)


def test_cache_key_changes_with_file_and_settings(tmp_path, monkeypatch):
    write(tmp_path / "a.wav", ramp(L))
    build(cfg(tmp_path, val_fraction=0.0))
    calls = []
    real = ds.load_audio
    monkeypatch.setattr(ds, "load_audio", lambda *a, **k: calls.append(a) or real(*a, **k))
    write(tmp_path / "a.wav", ramp(2 * L))
    os.utime(tmp_path / "a.wav", ns=(1, 10**18))  # new mtime even on coarse file systems
    train, _ = build(cfg(tmp_path, val_fraction=0.0))
    assert len(calls) == 1 and train.sources[0].frames == 2 * L
    build(cfg(tmp_path, val_fraction=0.0, channels=2))
    assert len(calls) == 2


def test_cache_dir_setting_and_unwritable_cache_fallback(tmp_path, caplog):
    write(tmp_path / "d" / "a.wav", ramp(L))
    build(cfg(tmp_path / "d", val_fraction=0.0, cache_dir=str(tmp_path / "c")))
    assert len(list((tmp_path / "c").glob("*.npy"))) == 1 and not (tmp_path / "d" / ".vaedemo_cache").exists()
    (tmp_path / "file").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="vaedemo.data.dataset"):
        train, _ = build(cfg(tmp_path / "d", val_fraction=0.0, cache_dir=str(tmp_path / "file" / "c")))
    assert "cannot write the decoded cache" in caplog.text
    np.testing.assert_array_equal(train[0][0].numpy(), ramp(L)[:, 0])


# ----------------------------------------------------------------------------------------------------------- errors


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="data folder .*nope does not exist"):
        build(cfg(tmp_path / "nope"))


def test_empty_folder_error_names_the_folder(tmp_path):
    (tmp_path / ".vaedemo_cache").mkdir()
    with pytest.raises(DataError) as e:
        build(cfg(tmp_path))
    assert str(tmp_path) in str(e.value) and "no files found" in str(e.value)


def test_folder_without_usable_audio_lists_skipped_files(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.wav").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.wav").write_bytes(b"RIFF garbage, not audio")
    with pytest.raises(DataError) as e:
        build(cfg(tmp_path))
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path} holds no usable audio: 3 files skipped (")
    assert "a.txt: not an audio file" in msg and "b.wav: empty file" in msg and "sub/c.wav: " in msg
    assert msg.endswith(").") and "\n" not in msg


def test_undecodable_files_are_skipped_with_a_warning(tmp_path, caplog):
    write(tmp_path / "good.wav", ramp(L))
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    with caplog.at_level(logging.WARNING, logger="vaedemo.data.dataset"):
        train, val = build(cfg(tmp_path, val_fraction=0.5))
    assert train.files == ["good.wav"] and val.files == []
    assert "bad.wav" in caplog.text
    assert "ClipDataset(1 files" in repr(train) and train.seconds == pytest.approx(L / SR)


def test_clip_dataset_rejects_unknown_mode():
    with pytest.raises(ValueError):
        ClipDataset([], L, mode="loops")


# ------------------------------------------------------------------------------------------------------ augmentation


def sine(freq: float, n: int = 4 * L, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32).reshape(-1, 1)


def peak_hz(x: torch.Tensor) -> float:
    spec = np.abs(np.fft.rfft(x[0].numpy() * np.hanning(x.shape[-1])))
    return float(np.fft.rfftfreq(x.shape[-1], 1 / SR)[spec.argmax()])


def test_augmentation_changes_training_clips_only_and_is_seeded(tmp_path):
    for i in range(6):
        write(tmp_path / f"tone{i}.wav", sine(400 + 100 * i))
    aug = cfg(tmp_path, val_fraction=0.3)
    aug[0].augment.gain_db, aug[0].augment.rate, aug[0].augment.mix = 6.0, 0.2, 0.5
    train, val = build(aug)
    plain_train, plain_val = build(cfg(tmp_path, val_fraction=0.3))
    assert len(val) > 0 and val.augment is None
    for i in range(len(val)):
        assert torch.equal(val[i], plain_val[i])
    torch.manual_seed(0)
    first = [train[i] for i in range(len(train))]
    torch.manual_seed(0)
    again = [train[i] for i in range(len(train))]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(x.shape == (1, L) and x.dtype == torch.float32 and x.abs().max() <= 1.0 for x in first)
    assert any(not torch.equal(a, b) for a, b in zip(first, (plain_train[i] for i in range(len(train)))))


def test_gain_stays_in_its_range_and_rate_retunes_the_pitch(tmp_path):
    write(tmp_path / "tone.wav", sine(500.0))
    spec = cfg(tmp_path, val_fraction=0.0)
    data = spec[0]
    data.augment.gain_db = 6.0
    train, _ = build(spec)
    torch.manual_seed(1)
    ratios = [float(train[0].abs().max()) / 0.5 for _ in range(40)]
    assert 10 ** (-6 / 20) - 1e-3 <= min(ratios) < 0.8 and 1.3 < max(ratios) <= 10 ** (6 / 20) + 1e-3
    data.augment.gain_db, data.augment.rate = 0.0, 0.25
    train, _ = build(spec)
    torch.manual_seed(2)
    peaks = [peak_hz(train[0]) for _ in range(40)]
    # playback rate in [1/1.25, 1.25]: 500 Hz lands in [400, 625] Hz (10 Hz bins at L=800), and both ways occur
    assert 390 <= min(peaks) < 480 and 520 < max(peaks) <= 635


def test_mix_layers_a_second_clip_and_rescales_clipping(tmp_path):
    write(tmp_path / "a.wav", sine(300.0, amp=0.9))
    write(tmp_path / "b.wav", sine(1100.0, amp=0.9))
    spec = cfg(tmp_path, val_fraction=0.0)
    data = spec[0]
    data.augment.mix = 1.0
    train, _ = build(spec)
    torch.manual_seed(3)
    for _ in range(10):
        x = train[0][0].numpy()  # "a" plus a layer of "a" or "b" at -12..0 dB
        assert np.abs(x).max() <= 0.999 + 1e-6
        spec = np.abs(np.fft.rfft(x))
        assert spec[30] > 50  # 300 Hz of "a" is always there (a full-scale 10 Hz bin holds ~360)
    torch.manual_seed(3)
    layered_b = [np.abs(np.fft.rfft(train[0][0].numpy()))[110] > 10 for _ in range(30)]
    assert any(layered_b) and not all(layered_b)  # "b" (1100 Hz) is layered in about half of the draws


def test_augment_values_are_checked(tmp_path):
    from vaedemo.config import load_config
    from vaedemo.errors import ConfigError

    with pytest.raises(ConfigError, match="data.augment.mix must be a probability"):
        load_config(None, ["data.augment.mix=1.5"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, ["data.augment.pitch=0.1"])


@pytest.mark.parametrize(("kind", "freq", "gain", "expected"), [
    ("lowshelf", 200.0, 6.0, (6.0, 3.0, 0.0)), ("highshelf", 5000.0, -6.0, (0.0, -3.0, -6.0)),
    ("peak", 1000.0, 9.0, (0.0, 9.0, 0.0))])  # fmt: skip
def test_eq_filters_have_their_gain_where_the_cookbook_puts_it(kind, freq, gain, expected):
    """Response at 20 Hz, at the centre frequency and at 20 kHz: a shelf has half its gain (in dB) at its frequency."""
    from scipy.signal import sosfreqz

    from vaedemo.data.eq import biquad

    _, h = sosfreqz(biquad(kind, freq, gain, 0.707 if kind != "peak" else 1.0, 44100)[None], worN=[20, freq, 20000], fs=44100)
    assert np.allclose(20 * np.log10(np.abs(h)), expected, atol=0.15)


def band_db(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(10 * np.log10(spec[(f >= lo) & (f < hi)].sum()))


def augmented_draws(root: Path, audio: np.ndarray, seed: int, **augment) -> tuple[np.ndarray, list[np.ndarray]]:
    """One file of ``audio``: its plain training clip, and 30 augmented draws of it (torch seeded with ``seed``)."""
    write(root / "noise.wav", audio.reshape(-1, 1))
    spec = cfg(root, val_fraction=0.0)
    plain = build(spec)[0][0][0].numpy()
    for key, value in augment.items():
        setattr(spec[0].augment, key, value)
    train, _ = build(spec)
    torch.manual_seed(seed)
    return plain, [train[0][0].numpy() for _ in range(30)]


def test_eq_changes_the_tone_both_ways_within_its_range_and_rings_nothing_before_an_attack(tmp_path):
    noise = np.random.default_rng(0).standard_normal(4 * L).astype(np.float32) * 0.1
    noise[: L // 2] = 0.0  # silence, then the "hit"
    plain, draws = augmented_draws(tmp_path, noise, seed=4, eq_db=9.0)
    assert all(np.all(x[: L // 2] == 0.0) for x in draws)  # causal filters: nothing before the attack
    nyquist = SR / 2
    for lo, hi in [(0.0, 150.0), (0.45 * nyquist, nyquist)]:  # the bottom and the top of the spectrum
        change = [band_db(x, lo, hi) - band_db(plain, lo, hi) for x in draws]
        assert min(change) < -2.0 and max(change) > 2.0  # cut in some clips, boosted in others
        assert min(change) > -27.5 and max(change) < 27.5  # three filters of at most 9 dB each
    from vaedemo.config import load_config
    from vaedemo.errors import ConfigError

    with pytest.raises(ConfigError, match="data.augment.eq_db must be in"):
        load_config(None, ["data.augment.eq_db=30"])


def test_band_limit_removes_the_top_of_some_clips_as_a_lower_sample_rate_would_and_keeps_their_length(tmp_path):
    from vaedemo.data.eq import BAND_LIMIT_RATES

    noise = np.random.default_rng(1).standard_normal(4 * L).astype(np.float32) * 0.1
    plain, draws = augmented_draws(tmp_path, noise, seed=5, band_limit=0.5)
    assert all(x.shape == plain.shape for x in draws)
    lowest_nyquist, highest_nyquist = (r * SR / 2 for r in BAND_LIMIT_RATES)
    above = 1.05 * highest_nyquist  # past every lower rate's Nyquist (soxr's stop band starts at it)
    top = [band_db(x, above, SR / 2) - band_db(plain, above, SR / 2) for x in draws]
    limited = [t < -30.0 for t in top]  # gone (to the FFT window's leakage), or untouched
    assert 5 <= sum(limited) <= 25 and all(abs(t) < 1e-3 for t, cut in zip(top, limited) if not cut)
    for x, cut in zip(draws, limited):
        if cut:  # what lies below every lower rate's band edge passes (within soxr's passband ripple)
            assert abs(band_db(x, 100.0, 0.9 * lowest_nyquist) - band_db(plain, 100.0, 0.9 * lowest_nyquist)) < 0.5
    from vaedemo.config import load_config
    from vaedemo.errors import ConfigError

    with pytest.raises(ConfigError, match="data.augment.band_limit must be a probability"):
        load_config(None, ["data.augment.band_limit=2"])


# --------------------------------------------------------------------------------------------------- odd training data


def test_a_file_name_that_is_not_utf8_is_trained_on(tmp_path):
    """Names from old archives (Latin-1 bytes) reach Python as surrogates: hashing them for the cache and the split
    raised UnicodeEncodeError, which stopped the whole run."""
    name = os.fsdecode(b"kick\xff.wav")
    os.rename(write(tmp_path / "kick.wav", ramp(L)), tmp_path / name)
    write(tmp_path / "snare.wav", ramp(L))
    train, val = build(cfg(tmp_path, val_fraction=0.5))
    assert sorted(train.files + val.files) == sorted([name, "snare.wav"])


def test_text_with_an_au_suffix_is_not_audio(tmp_path):
    """libsndfile reads any bytes in a .au without its magic as headerless 8 kHz audio: a README trained as noise."""
    from vaedemo.audio import decode
    from vaedemo.errors import AudioError

    (tmp_path / "README.au").write_text("# notes\n" * 200)
    with pytest.raises(AudioError):
        decode(tmp_path / "README.au")
    write(tmp_path / "kick.au", ramp(L), subtype="FLOAT")  # a real one (its magic and header) still decodes
    assert decode(tmp_path / "kick.au").audio.shape == (L, 1)


def test_the_cache_never_serves_another_files_audio(tmp_path):
    """The same relative name, size and mtime but other audio (a copy that keeps timestamps, a second folder sharing
    cache_dir) is decoded afresh."""
    cache = str(tmp_path / "shared")
    for kit, scale in (("kitA", 1.0), ("kitB", 0.5)):
        write(tmp_path / kit / "kick.wav", scale * ramp(L))
        os.utime(tmp_path / kit / "kick.wav", ns=(10**18, 10**18))
    a, _ = build(cfg(tmp_path / "kitA", val_fraction=0.0, cache_dir=cache))
    b, _ = build(cfg(tmp_path / "kitB", val_fraction=0.0, cache_dir=cache))
    np.testing.assert_array_equal(b.original(0).numpy()[0], 0.5 * ramp(L)[:, 0])
    shutil.copy2(tmp_path / "kitA" / "kick.wav", tmp_path / "kitB" / "kick.wav")  # cp -p over a file of its size
    b, _ = build(cfg(tmp_path / "kitB", val_fraction=0.0, cache_dir=cache))
    np.testing.assert_array_equal(b.original(0).numpy()[0], ramp(L)[:, 0])


def test_a_one_shot_keeps_only_the_start_it_reads_and_crops_keep_the_whole_file(tmp_path):
    """A one-shot clip reads its file's start (retuned faster at most 1 + augment.rate times): a long recording was
    decoded, cached and mapped whole (29 min of FLAC, 2 MB on disk, made a 1.8 GB cache)."""
    n = 60 * SR
    write(tmp_path / "long.wav", ramp(n) % 0.5)
    train, _ = build(cfg(tmp_path, val_fraction=0.0))
    kept = ds.oneshot_frames(L, DataConfig().augment)
    assert train.sources[0].frames == kept < n
    np.testing.assert_array_equal(train.original(0).numpy()[0], (ramp(n) % 0.5)[:L, 0])
    train, _ = build(cfg(tmp_path, val_fraction=0.0, mode="crops"))
    assert train.sources[0].frames == n and len(train) == n // L


def test_a_silent_file_is_skipped_with_its_reason(tmp_path, caplog):
    write(tmp_path / "silence.wav", np.zeros((L, 1), np.float32))
    write(tmp_path / "almost.wav", np.full((L, 1), 1e-30, np.float32))
    write(tmp_path / "dither.wav", np.full((L, 1), 3e-5, np.float32))  # about 16-bit dither, -90 dBFS
    write(tmp_path / "kick.wav", ramp(L))
    with caplog.at_level(logging.WARNING, logger="vaedemo.data.dataset"):
        train, _ = build(cfg(tmp_path, val_fraction=0.0))
    assert train.files == ["kick.wav"] and "silence.wav is silent (no sample above -80 dBFS in the first" in caplog.text
    assert "dither.wav is silent" in caplog.text
    (tmp_path / "kick.wav").unlink()
    with pytest.raises(DataError, match="almost.wav: silent"):
        build(cfg(tmp_path, val_fraction=0.0))


def test_a_cache_removed_during_training_is_one_sentence(tmp_path):
    write(tmp_path / "kick.wav", ramp(L))
    train, _ = build(cfg(tmp_path, val_fraction=0.0))
    shutil.rmtree(tmp_path / ".vaedemo_cache")
    with pytest.raises(DataError, match="the decoded copy of kick.wav in .* went away during training .* --resume cont"):
        train[0]


def test_a_damaged_cache_file_is_one_sentence_not_nan_clips(tmp_path):
    """A cached decode is memory-mapped as it is: NaN written into it (a bit flip, another tool) reached the losses as
    NaN clips. Read, a clip says which file to delete; a new run decodes the audio again."""
    write(tmp_path / "kick.wav", ramp(L))
    train, _ = build(cfg(tmp_path, val_fraction=0.0))
    (cached,) = (tmp_path / ".vaedemo_cache").glob("*.npy")
    damaged = np.load(cached, mmap_mode="r+")
    damaged[0, 10] = np.nan
    damaged.flush()
    del damaged
    with pytest.raises(DataError, match=f"decoded copy of kick.wav .* NaN or infinite samples .* delete {cached.name}"):
        train[0]
    cached.unlink()
    again, _ = build(cfg(tmp_path, val_fraction=0.0))
    assert torch.isfinite(again[0]).all()


def test_a_cache_removed_under_a_dataloader_worker_is_the_same_one_sentence(tmp_path, capsys):
    """With train.num_workers > 0 torch raises the worker's DataError again in the main process with the worker's
    traceback as its message: the command line prints the sentence alone."""
    from vaedemo.cli import user_errors

    write(tmp_path / "kick.wav", ramp(L))
    train, _ = build(cfg(tmp_path, val_fraction=0.0))
    shutil.rmtree(tmp_path / ".vaedemo_cache")

    @user_errors
    def main() -> int:
        next(iter(torch.utils.data.DataLoader(train, num_workers=1)))
        return 0

    assert main() == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the decoded copy of kick.wav in ") and err.endswith("last checkpoint.\n"), err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_a_large_folder_says_how_far_its_reading_is(tmp_path, capsys, monkeypatch):
    for i in range(3):
        write(tmp_path / f"k{i}.wav", ramp(L))
    monkeypatch.setattr(ds, "PROGRESS_EVERY_S", 0.0)
    build(cfg(tmp_path, val_fraction=0.0))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[vaedemo] reading")]
    assert lines[-1] == f"[vaedemo] reading {tmp_path}: 2 of 3 files (2 decoded, 0 from the cache, 0 skipped)"
    build(cfg(tmp_path, val_fraction=0.0))
    assert f"{tmp_path}: 2 of 3 files (0 decoded, 2 from the cache" in capsys.readouterr().err


def test_a_cache_holding_decodes_the_run_does_not_read_says_how_much_and_keeps_them(tmp_path, capsys, monkeypatch):
    """A changed file's old decode stays in the cache (another run may read it): past UNUSED_CACHE_NOTE a line says
    how much that is and how to reclaim it; nothing is deleted."""
    write(tmp_path / "kick.wav", ramp(L))
    write(tmp_path / "snare.wav", ramp(L))
    monkeypatch.setattr(ds, "UNUSED_CACHE_NOTE", 1)
    build(cfg(tmp_path, val_fraction=0.0))
    assert "note:" not in capsys.readouterr().err  # every decode in the cache is read
    write(tmp_path / "kick.wav", -ramp(L))  # changed: decoded again, its old decode kept
    os.utime(tmp_path / "kick.wav", ns=(1, 1))
    build(cfg(tmp_path, val_fraction=0.0))
    cache = tmp_path / ".vaedemo_cache"
    old = (cache / next(iter(os.listdir(cache)))).stat().st_size  # every entry has the same size here
    assert len(list(cache.glob("*.npy"))) == 3
    err = capsys.readouterr().err
    assert f"[vaedemo] note: {old / 2**30:.1f} GiB of {cache} are decodes this run does not read (of changed" in err
    monkeypatch.setattr(ds, "UNUSED_CACHE_NOTE", old + 1)
    build(cfg(tmp_path, val_fraction=0.0))
    assert "note:" not in capsys.readouterr().err


def test_without_a_validation_split_the_run_validates_on_the_training_clips_as_they_are(tmp_path, capsys):
    """Validating on the training set as it trains scored a random augmentation each time (the same weights read
    24 to 35); now its clips as the files have them, said once."""
    from vaedemo.config import AugmentConfig
    from vaedemo.data.dataset import validation_clips

    for i in range(3):
        write(tmp_path / f"hit{i}.wav", (i + 1) * ramp(L))
    data = DataConfig(root=str(tmp_path), val_fraction=0.0, augment=AugmentConfig(gain_db=6.0, rate=0.1))
    train, val = build_datasets(data, SR, 1, L)
    checked = validation_clips(train, val, data)
    assert "has no validation split (data.val_fraction is 0); validating on the training clips" in capsys.readouterr().err
    assert len(checked) == 3 and all(torch.equal(checked[i], train.original(i)) for i in range(3))
    data = DataConfig(root=str(tmp_path), val_fraction=0.5)
    train, val = build_datasets(data, SR, 1, L)
    assert validation_clips(train, val, data) is val and capsys.readouterr().err == ""


def test_a_folder_that_cannot_be_listed_is_named_not_silently_left_out(tmp_path, caplog, monkeypatch):
    """os.walk drops listing errors: a sub-folder of 40 snares at mode 000 was left out of training without a word,
    and an unreadable data folder read as "no files found"."""
    for sub in ("readable", "snares"):
        (tmp_path / sub).mkdir()
        sf.write(tmp_path / sub / "hit.wav", np.zeros(100, np.float32), 16000)
    real = os.scandir

    def scandir(path="."):
        if Path(path).name in ("snares", "locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with caplog.at_level(logging.WARNING, logger="vaedemo.data.dataset"):
        assert [p.relative_to(tmp_path).as_posix() for p in scan_audio(tmp_path)] == ["readable/hit.wav"]
    assert f"skipping the folder {tmp_path / 'snares'}: Permission denied" in caplog.text
    (tmp_path / "locked").mkdir()
    with pytest.raises(DataError, match=r"data folder .*locked cannot be read \(Permission denied\)"):
        scan_audio(tmp_path / "locked")


def test_a_decode_left_half_written_by_a_killed_run_is_removed_once_stale(tmp_path):
    """A run killed while it wrote a decode aside left the file (up to a file's decode each) for ever: never read,
    never counted. One an hour old goes; a fresh one (a run elsewhere writing it now) stays."""
    write(tmp_path / "kick.wav", ramp(L))
    cache = tmp_path / ".vaedemo_cache"
    cache.mkdir()
    stale, fresh = cache / ".abc.4242.tmp.npy", cache / ".def.4243.tmp.npy"
    for p in (stale, fresh):
        p.write_bytes(b"half a decode")
    old = time.time() - 2 * ds.STALE_WRITE_SECONDS
    os.utime(stale, (old, old))
    build(cfg(tmp_path, val_fraction=0.0))
    assert not stale.exists() and fresh.exists() and len([p for p in cache.glob("*.npy") if p.name[0] != "."]) == 1
