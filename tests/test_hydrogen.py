"""Hydrogen drum kits -> one-shots: both drumkit.xml layouts, cutting, mono and rate, silent and duplicate files left
out, the manifest's families, and errors in one sentence."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vaedemo.data.hydrogen import collect, drum_family_of, main, read_kit
from vaedemo.errors import DataError

OLD_XML = """<drumkit_info><name>Old Kit</name><license>GPL</license><instrumentList>
<instrument><id>0</id><name>Kick 1</name><filename>kick.flac</filename></instrument>
<instrument><id>1</id><name>Closed HH</name><filename>hat.wav</filename></instrument>
<instrument><id>2</id><name>Gone</name><filename>missing.wav</filename></instrument>
</instrumentList></drumkit_info>"""
NEW_XML = """<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><name>New Kit</name><license>CC BY</license>
<instrumentList><instrument><id>0</id><name>Snare Rimshot</name>
<layer><filename>snare_soft.wav</filename></layer><layer><filename>snare_hard.wav</filename></layer>
<layer><filename>silent.wav</filename></layer><layer><filename>kick_copy.flac</filename></layer></instrument>
</instrumentList></drumkit_info>"""


def hit(sr: int, freq: float, channels: int = 1, delay: float = 0.05, seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.1) * (t >= delay)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


@pytest.fixture
def kits(tmp_path: Path) -> Path:
    root = tmp_path / "drumkits"
    old, new = root / "Old Kit", root / "new"
    old.mkdir(parents=True)
    new.mkdir()
    (old / "drumkit.xml").write_text(OLD_XML)
    (new / "drumkit.xml").write_text(NEW_XML)
    sf.write(old / "kick.flac", hit(48000, 60.0, channels=2), 48000)  # stereo at 48 kHz
    sf.write(old / "hat.wav", hit(44100, 7000.0), 44100)
    sf.write(new / "snare_soft.wav", hit(44100, 200.0) * 0.2, 44100)
    sf.write(new / "snare_hard.wav", hit(44100, 200.0), 44100)
    sf.write(new / "silent.wav", np.zeros((4410, 1), np.float32), 44100)
    sf.write(new / "kick_copy.flac", hit(48000, 60.0, channels=2), 48000)  # the same hit as the Old Kit's kick
    (root / "not-a-kit").mkdir()
    return root


def test_both_layouts_are_read_and_missing_files_left_out(kits):
    old, new = read_kit(kits / "Old Kit"), read_kit(kits / "new")
    assert (old.name, old.license, [n for n, _ in old.instruments]) == ("Old Kit", "GPL", ["Kick 1", "Closed HH"])
    assert (new.name, new.license) == ("New Kit", "CC BY")
    assert [f.name for f in new.instruments[0][1]] == ["snare_soft.wav", "snare_hard.wav", "silent.wav",
                                                       "kick_copy.flac"]  # fmt: skip


def test_kits_become_mono_one_shots_with_a_manifest(kits, tmp_path):
    out = tmp_path / "out"
    counts = collect(kits, out, sample_rate=44100, duration=0.5)
    assert counts == {"written": 4, "silent": 1, "duplicates": 1, "undecodable": 0}
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["file"], r["family"]) for r in rows] == [
        ("old-kit/kick-1_1.wav", "kick"), ("old-kit/closed-hh_1.wav", "hi-hat"),
        ("new/snare-rimshot_1.wav", "snare"), ("new/snare-rimshot_2.wav", "snare")]  # fmt: skip
    assert rows[2]["kit"] == "New Kit" and rows[2]["license"] == "CC BY"
    for r in rows:
        x, sr = sf.read(out / r["file"], always_2d=True)
        assert sr == 44100 and x.shape == (22050, 1)
        assert np.abs(x[0]) > 0.0  # leading silence (the 50 ms before the hit) trimmed
        assert np.abs(x[-1]).max() < 1e-3  # faded out


@pytest.mark.parametrize("name, family", [
    ("Kick (Tama Superstar 22\")", "kick"), ("c3 - bass drum 1", "kick"), ("Pearl Side Stick", "snare"),
    ("Hi-Hat Pedal (Paiste)", "hi-hat"), ("f#3 - hi-hat closed", "hi-hat"), ("Tom Low (Tama Superstar 16\")", "tom"),
    ("Crash/Ride Bell", "cymbal"), ("ride-cup", "cymbal"), ("Djembe1 Slap", "percussion"), ("Cowbell", "percussion"),
])  # fmt: skip
def test_families_from_instrument_names(name, family):
    assert drum_family_of(name) == family


def test_no_kits_is_one_sentence(tmp_path, capsys):
    with pytest.raises(DataError, match="no Hydrogen kits"):
        collect(tmp_path, tmp_path / "out")
    assert main(["--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: no Hydrogen kits") and err.count("\n") == 1
