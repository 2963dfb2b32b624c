"""Soundfont rendering: preset parsing, MIDI bytes, one-shot cutting, a tiny real render, errors and the CLI."""

from __future__ import annotations

import csv
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vaedemo.data import soundfont as sfm
from vaedemo.data.sf2 import Preset, drum_kits, read_presets
from vaedemo.data.soundfont import cut_oneshot, main, midi_bytes, render_soundfont
from vaedemo.errors import DataError

FLUID_R3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
needs_fluidr3 = pytest.mark.skipif(not FLUID_R3.is_file(), reason=f"{FLUID_R3} is not installed (fluid-soundfont-gm)")
needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not on PATH")


def chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def tiny_sf2(path: Path) -> Path:
    """A RIFF skeleton with only the parts read_presets reads: INFO, sdta, and a pdta/phdr with two presets."""

    def rec(name: str, prog: int, bank: int) -> bytes:
        return struct.pack("<20sHHHIII", name.encode(), prog, bank, 0, 0, 0, 0)

    phdr = rec("Piano", 0, 0) + rec("Kit", 8, 128) + rec("EOP", 0, 0)
    body = b"sfbk" + chunk(b"LIST", b"INFO" + chunk(b"ifil", b"\2\0\1\0"))
    body += chunk(b"LIST", b"sdta" + chunk(b"smpl", b"\0" * 7))  # odd size: chunks are padded to even lengths
    body += chunk(b"LIST", b"pdta" + chunk(b"phdr", phdr))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


# ---------------------------------------------------------------------------------------------------------- presets


def test_read_presets_of_a_minimal_riff(tmp_path):
    assert read_presets(tiny_sf2(tmp_path / "t.sf2")) == [Preset("Piano", 0, 0), Preset("Kit", 8, 128)]
    assert drum_kits(tmp_path / "t.sf2") == [Preset("Kit", 8, 128)]


@needs_fluidr3
def test_read_presets_of_fluidr3_gm():
    presets = read_presets(FLUID_R3)
    kits = {q.program: q.name for q in presets if q.bank == 128}
    assert kits[0] == "Standard" and kits[25] == "TR-808" and kits[48] == "Orchestra Kit" and len(kits) == 31
    assert len([q for q in presets if q.bank == 0]) == 128
    assert not any(q.name == "EOP" for q in presets)


def test_missing_or_foreign_soundfont_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"soundfont .*missing\.sf2 does not exist\."):
        render_soundfont(tmp_path / "missing.sf2", tmp_path / "out")
    (tmp_path / "x.sf2").write_bytes(b"RIFF\0\0\0\0WAVEfmt ")
    with pytest.raises(DataError, match="is not a SoundFont"):
        read_presets(tmp_path / "x.sf2")


def test_missing_fluidsynth_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sfm.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="fluidsynth is not on PATH"):
        render_soundfont(tiny_sf2(tmp_path / "t.sf2"), tmp_path / "out")


# ------------------------------------------------------------------------------------------------------ midi, cuts


def test_midi_bytes_is_a_format0_file_with_every_note():
    notes = [(36, 100), (38, 60)]
    data = midi_bytes(notes, duration=1.0, channel=9, program=25, bank=128)
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, 1000)
    assert data[14:18] == b"MTrk" and struct.unpack(">I", data[18:22])[0] == len(data) - 22
    assert b"\xc9\x19" in data and b"\x99\x24\x64" in data and b"\x99\x26\x3c" in data
    assert data.endswith(b"\xff\x2f\x00") and data.count(b"\xb9\x78\x00") == 2  # All Sound Off per note
    assert sfm.note_onsets_ms(3, 1.0) == [200, 1950, 3700]
    assert sfm._vlq(0) == b"\0" and sfm._vlq(0x80) == b"\x81\x00" and sfm._vlq(1750) == b"\x8d\x56"


def test_cut_oneshot_trims_silence_fixes_length_and_fades():
    sr = 1000
    x = np.zeros((5000, 2), np.float32)
    x[1200:1600] = 0.5
    x[1190:1200] = 1e-4  # below -60 dBFS: trimmed
    shot = cut_oneshot(x, 1000, 300, sr)
    assert shot.shape == (300, 2) and shot[0, 0] == 0.5  # starts at the first sample above -60 dBFS
    assert shot[-1, 0] == 0 and 0 < shot[-15, 0] < 0.5 and shot[-21, 0] == 0.5  # 20 ms fade-out
    short = cut_oneshot(x, 1000, 1000, sr)
    assert short[399, 0] == 0.5 and not short[400:].any()  # padded with zeros
    assert cut_oneshot(x, 3000, 500, sr) is None and cut_oneshot(x, 9000, 500, sr) is None


def test_int_lists_and_slugs():
    assert sfm._int_list("40,80,120") == (40, 80, 120) and sfm._int_list("35-38,42") == (35, 36, 37, 38, 42)
    assert sfm.slug("TR-808") == "tr-808" and sfm.slug("Orchestra Kit") == "orchestra-kit"
    assert sfm.slug("!!") == "preset"


# --------------------------------------------------------------------------------------------------------- rendering


@needs_fluidsynth
@needs_fluidr3
def test_render_a_tiny_drum_subset(tmp_path):
    sr, duration = 22050, 0.5
    summary = render_soundfont(
        FLUID_R3, tmp_path, "drums", sample_rate=sr, duration=duration, velocities=(100,), pitches=(5, 36, 38),
        max_kits=1,
    )  # fmt: skip
    assert summary.files == 2 and summary.silent == 1 and summary.presets == ["Standard"]  # key 5 is not in the kit
    rows = list(csv.DictReader((tmp_path / "manifest.csv").read_text().splitlines()))
    assert list(rows[0]) == ["file", "kit", "program", "key", "velocity"]
    assert [(r["file"], r["kit"], r["program"], r["key"], r["velocity"]) for r in rows] == [
        ("standard/36_100.wav", "Standard", "0", "36", "100"),
        ("standard/38_100.wav", "Standard", "0", "38", "100"),
    ]
    shots = []
    for r in rows:
        x, file_sr = sf.read(str(tmp_path / r["file"]), dtype="float32", always_2d=True)
        assert file_sr == sr and x.shape == (round(duration * sr), 1)
        assert np.abs(x).max() > 0.01 and np.abs(x[:10]).max() > 0  # audible, starts at the hit
        assert abs(x[-1, 0]) < 1e-3  # faded out
        shots.append(x)
    assert not np.array_equal(*shots)  # kick and snare differ


@needs_fluidsynth
@needs_fluidr3
def test_identical_one_shots_are_written_once(tmp_path):
    kw = dict(sample_rate=22050, duration=0.3, velocities=(100,), pitches=(37,), programs=(0, 1))
    summary = render_soundfont(FLUID_R3, tmp_path / "a", "drums", **kw)
    assert (summary.files, summary.duplicates) == (1, 1)  # FluidR3's "Standard 1" side stick is "Standard"'s
    assert not (tmp_path / "a" / "standard-1").exists()
    kept = render_soundfont(FLUID_R3, tmp_path / "b", "drums", keep_duplicates=True, **kw)
    assert (kept.files, kept.duplicates) == (2, 0)


@needs_fluidsynth
def test_a_soundfont_fluidsynth_cannot_load_is_an_error_not_a_silent_fallback(tmp_path):
    with pytest.raises(DataError, match=r"fluidsynth could not render .*t\.sf2"):
        render_soundfont(tiny_sf2(tmp_path / "t.sf2"), tmp_path / "out", pitches=(36,), velocities=(100,))


@needs_fluidsynth
@needs_fluidr3
def test_only_silent_notes_is_an_error(tmp_path):
    with pytest.raises(DataError, match="every note rendered from .* was silent"):
        render_soundfont(FLUID_R3, tmp_path, sample_rate=22050, duration=0.2, velocities=(9,), pitches=(5,), max_kits=1)
    with pytest.raises(DataError, match=r"velocities must be 1..127, .*; got \[0, 128\]\."):
        render_soundfont(FLUID_R3, tmp_path, velocities=(0,), pitches=(0, 128))


# --------------------------------------------------------------------------------------------------------------- cli


def test_cli_prints_the_error_sentence_and_exits_non_zero(tmp_path, capsys):
    code = main(["--soundfont", str(tmp_path / "none.sf2"), "--kind", "drums", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == f"error: soundfont {tmp_path / 'none.sf2'} does not exist."


@needs_fluidsynth
@needs_fluidr3
def test_cli_renders_and_prints_a_summary(tmp_path, capsys):
    args = ["--soundfont", str(FLUID_R3), "--kind", "pitched", "--out", str(tmp_path), "--programs", "0",
            "--pitches", "60", "--velocities", "90", "--duration", "0.3", "--sample-rate", "22050"]  # fmt: skip
    assert main(args) == 0
    assert "wrote 1 one-shots from 1 presets (Yamaha Grand Piano)" in capsys.readouterr().out
    assert (tmp_path / "yamaha-grand-piano" / "60_90.wav").is_file()


@pytest.mark.parametrize("args, sentence", [
    (["--max-kits", "-1"], "the number of kits (--max-kits) must be at least 1, got -1."),
    (["--max-kits", "0"], "the number of kits (--max-kits) must be at least 1, got 0."),
    (["--jobs", "-1"], "the number of fluidsynth processes (--jobs) must be at least 1, got -1."),
    (["--jobs", "0"], "the number of fluidsynth processes (--jobs) must be at least 1, got 0."),
    (["--duration", "nan"], "the duration must be above 0 and at most 60 s (a one-shot), got nan."),
    (["--duration", "inf"], "the duration must be above 0 and at most 60 s (a one-shot), got inf."),
    # a render holds every note's window: 3000 took 2.6 GB for one note, 1e9 ended "every note ... was silent"
    (["--duration", "3000"], "the duration must be above 0 and at most 60 s (a one-shot), got 3000.0."),
    (["--duration", "1e9"], "the duration must be above 0 and at most 60 s (a one-shot), got 1000000000.0."),
    (["--velocities", "200"], "velocities must be 1..127, pitches and programs 0..127; got [200]."),
    (["--gain", "nan"], "the gain must be 0..10 (fluidsynth's range), got nan."),
    (["--pitches", ","], "the pitches and programs, when given, must name at least one number."),
    (["--programs", ""], "the pitches and programs, when given, must name at least one number."),
    # fluidsynth's own words named no option; under half a sample was a numpy traceback
    (["--sample-rate", "1"], "the sample rate must be 8000..96000 Hz (fluidsynth's range), got 1."),
    (["--sample-rate", "100000000"], "the sample rate must be 8000..96000 Hz (fluidsynth's range), got 100000000."),
    (["--duration", "1e-9"], "the duration 1e-09 s is less than one sample at 44100 Hz."),
])  # fmt: skip
def test_cli_settings_are_checked_in_one_sentence(tmp_path, capsys, args, sentence):
    out = tmp_path / "o"
    assert main(["--soundfont", str(tiny_sf2(tmp_path / "t.sf2")), "--kind", "drums", "--out", str(out), *args]) == 2
    assert capsys.readouterr().err == f"error: {sentence}\n" and not out.exists()


@pytest.mark.parametrize("flag,text,says", [
    ("--pitches", "81-35", "a range goes from low to high, like 35-81, not '81-35'"),
    # checked before it is expanded: 1-2000000000 took GBs, then a one-line error of every number
    ("--velocities", "1-2000000000", "MIDI numbers are 0..127, so a range lies within them, not '1-2000000000'"),
])  # fmt: skip
def test_an_empty_or_huge_range_is_refused_not_read_as_every_key(tmp_path, capsys, flag, text, says):
    with pytest.raises(SystemExit) as exit_:
        main(["--soundfont", str(tiny_sf2(tmp_path / "t.sf2")), "--kind", "drums", "--out", str(tmp_path / "o"),
              flag, text])  # fmt: skip
    assert exit_.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == (
        f"python -m vaedemo.data.soundfont: error: argument {flag}: {says}")


def test_an_out_that_is_a_file_or_holds_other_files_is_refused_in_one_sentence(tmp_path, capsys):
    font = tiny_sf2(tmp_path / "t.sf2")
    assert main(["--soundfont", str(font), "--kind", "drums", "--out", str(font)]) == 2
    assert capsys.readouterr().err == f"error: the output folder {font} is a file.\n"
    hydrogen = tmp_path / "hydrogen"  # another builder's output: its manifest has other columns
    (hydrogen / "kit").mkdir(parents=True)
    (hydrogen / "kit" / "kick_1.wav").write_bytes(b"")
    (hydrogen / "manifest.csv").write_text("file,kit,instrument,family,license\nkit/kick_1.wav,Kit,Kick,kick,\n")
    for folder in (tmp_path, hydrogen):
        assert main(["--soundfont", str(font), "--kind", "drums", "--out", str(folder)]) == 2
        assert capsys.readouterr().err == (
            f"error: {folder} is not empty and is not an earlier output of this builder (a manifest.csv with columns "
            "file,kit,program,key,velocity, the .wav files it lists and a training cache): choose another folder or empty "
            "it.\n")
    assert (hydrogen / "kit" / "kick_1.wav").is_file() and font.is_file()


@needs_fluidsynth
@needs_fluidr3
def test_rendering_again_replaces_the_earlier_output(tmp_path):
    out = tmp_path / "out"
    kw = dict(sample_rate=22050, duration=0.2, pitches=(36, 38), max_kits=1)
    render_soundfont(FLUID_R3, out, "drums", velocities=(40, 120), **kw)
    (out / ".vaedemo_cache").mkdir()  # what training adds to a data folder
    summary = render_soundfont(FLUID_R3, out, "drums", velocities=(80,), **kw)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert summary.out == out and files == ["standard/36_80.wav", "standard/38_80.wav"]  # no 40s and 120s left
    with open(out / "manifest.csv", newline="") as f:
        assert sorted(r["file"] for r in csv.DictReader(f)) == files
    with pytest.raises(DataError, match="was silent"):  # a failed render keeps the earlier output
        render_soundfont(FLUID_R3, out, "drums", sample_rate=22050, duration=0.2, velocities=(9,), pitches=(5,),
                         max_kits=1)  # fmt: skip
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == files
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # nothing left beside it
