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


# ------------------------------------------------------------------------------------------ names, paths, broken kits


def kit(root: Path, name: str, instruments: list[tuple[str, str]]) -> Path:
    """A kit folder ``root/name`` whose drumkit.xml lists (instrument, filename) pairs."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(f"<instrument><name>{i}</name><filename>{f}</filename></instrument>" for i, f in instruments)
    (folder / "drumkit.xml").write_text(f"<drumkit_info><name>{name}</name><instrumentList>{body}</instrumentList>"
                                        "</drumkit_info>")  # fmt: skip
    return folder


def test_instruments_and_kits_whose_names_slug_alike_write_distinct_files(tmp_path):
    for name in ("K 1", "k-1"):
        folder = kit(tmp_path / "kits", name, [("Kick 1", "a.wav"), ("Kick-1", "b.wav"), ("Kick 1", "c.wav")])
        for i, f in enumerate("abc"):
            sf.write(folder / f"{f}.wav", hit(44100, 100.0 * (i + 1) + 50.0 * (name == "k-1")), 44100)
    assert collect(tmp_path / "kits", tmp_path / "out", duration=0.2)["written"] == 6
    with open(tmp_path / "out" / "manifest.csv", newline="") as f:
        files = [r["file"] for r in csv.DictReader(f)]
    assert files == ["k-1/kick-1_1.wav", "k-1/kick-1-2_1.wav", "k-1/kick-1-3_1.wav",
                     "k-1-2/kick-1_1.wav", "k-1-2/kick-1-2_1.wav", "k-1-2/kick-1-3_1.wav"]  # fmt: skip
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.wav")) == sorted(files)


def test_sample_files_outside_the_kit_folder_are_left_out_with_a_warning(tmp_path, capsys):
    secret = tmp_path / "secret.wav"
    sf.write(secret, hit(44100, 300.0), 44100)
    folder = kit(tmp_path / "kits", "K", [("Abs", str(secret)), ("Up", "../../secret.wav"), ("Link", "link.wav"),
                                          ("Own", "own.wav")])  # fmt: skip
    (folder / "link.wav").symlink_to(secret)
    sf.write(folder / "own.wav", hit(44100, 100.0), 44100)
    assert [(n, [f.name for f in files]) for n, files in read_kit(folder).instruments] == [("Own", ["own.wav"])]
    xml = folder / "drumkit.xml"
    assert capsys.readouterr().err.splitlines() == [
        f"skipping {secret} in {xml}: it lies outside the kit's folder",
        f"skipping ../../secret.wav in {xml}: it lies outside the kit's folder",
        f"skipping link.wav in {xml}: it lies outside the kit's folder"]  # fmt: skip


def test_a_kit_whose_drumkit_xml_is_broken_is_skipped_with_a_warning(kits, tmp_path, capsys):
    (kits / "broken").mkdir()
    (kits / "broken" / "drumkit.xml").write_text("<drumkit_info><name>")
    assert collect(kits, tmp_path / "out", duration=0.5)["written"] == 4
    assert capsys.readouterr().err == (f"skipping the kit broken: {kits / 'broken' / 'drumkit.xml'} could not be read: "
                                       "no element found: line 1, column 20\n")  # fmt: skip
    for folder in ("Old Kit", "new"):
        (kits / folder / "drumkit.xml").write_text("not xml")
    with pytest.raises(DataError, match=r"^no kit under .* gave a one-shot \(0 silent, 0 undecodable files; unreadable "
                                        r"kits are named above\)\.$"):  # fmt: skip
        collect(kits, tmp_path / "out", duration=0.5)


# --------------------------------------------------------------------------------------------------- output folder


def wavs(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav") if ".vaedemo_cache" not in p.parts)


def test_collecting_again_replaces_the_earlier_output(kits, tmp_path):
    out = tmp_path / "out"
    xml = (kits / "Old Kit" / "drumkit.xml").read_text()  # made unreadable below, then put back
    collect(kits, out, duration=0.5)
    (out / ".vaedemo_cache").mkdir()  # what training adds to a data folder
    (out / ".vaedemo_cache" / "0a.npy").write_bytes(b"")
    (kits / "new" / "drumkit.xml").unlink()  # a kit fewer: its files must not stay behind
    collect(kits, out, duration=0.5)
    with open(out / "manifest.csv", newline="") as f:
        assert wavs(out) == sorted(r["file"] for r in csv.DictReader(f)) == ["old-kit/closed-hh_1.wav",
                                                                            "old-kit/kick-1_1.wav"]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drumkits", "out"]  # nothing left beside it
    (kits / "Old Kit" / "drumkit.xml").write_text("not xml")
    with pytest.raises(DataError, match="no kit under"):  # a failed run keeps the earlier output
        collect(kits, out, duration=0.5)
    assert wavs(out) == ["old-kit/closed-hh_1.wav", "old-kit/kick-1_1.wav"]
    for junk in ("old-kit/._kick-1_1.wav", ".DS_Store", "old-kit/.DS_Store"):  # a Mac's Finder looked at it
        (out / junk).write_bytes(b"\x00\x05\x16\x07")
    (kits / "Old Kit" / "drumkit.xml").write_text(xml)
    collect(kits, out, duration=0.5)  # still this builder's output: replaced, the browser's files with it
    assert wavs(out) == ["old-kit/closed-hh_1.wav", "old-kit/kick-1_1.wav"] and not (out / ".DS_Store").exists()
    (out / "old-kit" / "._notes.txt").write_bytes(b"")  # beside no file of the folder: not the browser's
    with pytest.raises(DataError, match="is not empty and is not an earlier output of this builder"):
        collect(kits, out, duration=0.5)
    (out / "old-kit" / "._notes.txt").unlink()
    (out / "mine").mkdir()  # a recording added to the dataset (training reads it too): a rebuild deleted it
    (out / "mine" / "snare_take3.wav").write_bytes(b"RIFF")
    with pytest.raises(DataError, match="is not empty and is not an earlier output of this builder"):
        collect(kits, out, duration=0.5)
    assert (out / "mine" / "snare_take3.wav").read_bytes() == b"RIFF"


def test_an_output_folder_of_other_files_or_a_file_is_refused_in_one_sentence(kits, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["--root", str(kits), "--out", str(mine)]) == 2
    assert capsys.readouterr().err == (
        f"error: {mine} is not empty and is not an earlier output of this builder (a manifest.csv with columns "
        "file,kit,instrument,family,license, the .wav files it lists and a training cache): choose another folder or "
        "empty it.\n")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    (tmp_path / "a-file").write_text("")
    assert main(["--root", str(kits), "--out", str(tmp_path / "a-file")]) == 2
    assert capsys.readouterr().err == f"error: the output folder {tmp_path / 'a-file'} is a file.\n"
    assert main(["--root", str(kits), "--out", str(tmp_path / "o"), "--duration", "nan"]) == 2
    assert capsys.readouterr().err == "error: --duration must be above 0 and at most 60 s (a one-shot), got nan.\n"


def test_a_duration_no_one_shot_has_is_refused_before_any_kit_is_read(kits, tmp_path, capsys):
    """--duration 1e7 was numpy's MemoryError traceback in cut_oneshot, for every file of every kit."""
    for duration, sentence in [("1e7", "--duration must be above 0 and at most 60 s (a one-shot), got 10000000.0."),
                               ("61", "--duration must be above 0 and at most 60 s (a one-shot), got 61.0."),
                               ("-1", "--duration must be above 0 and at most 60 s (a one-shot), got -1.0."),
                               # empty files, then counted as duplicates
                               ("1e-9", "--duration 1e-09 s is less than one sample at 44100 Hz.")]:
        assert main(["--root", str(kits), "--out", str(tmp_path / "o"), "--duration", duration]) == 2
        assert capsys.readouterr().err == f"error: {sentence}\n" and not (tmp_path / "o").exists()
    for rate in ("0", "1"):  # at 1 Hz every file failed to resample and was counted "undecodable"
        assert main(["--root", str(kits), "--out", str(tmp_path / "o"), "--sample-rate", rate]) == 2
        assert capsys.readouterr().err == f"error: --sample-rate must be 1000 to 192000 Hz, got {rate}.\n"


def test_the_training_cache_name_is_the_datasets():
    from vaedemo.data.dataset import CACHE_DIRNAME
    from vaedemo.data.oneshots import TRAINING_CACHE

    assert TRAINING_CACHE == CACHE_DIRNAME


def test_an_output_that_is_the_current_folder_is_refused_whatever_its_name(kits, tmp_path, monkeypatch):
    """``typo/..`` does not exist by that name but is the current folder: it was checked by name, found absent, and
    the current folder (a project with its .git) moved aside and deleted."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "notes.txt").write_text("mine")
    monkeypatch.chdir(project)
    for out in (Path("typo/.."), Path("."), tmp_path, Path.home()):
        with pytest.raises(DataError, match="is (the current folder or one above it|your home folder); choose a folder"):
            collect(kits, out, duration=0.5)
    assert sorted(p.name for p in project.iterdir()) == [".git", "notes.txt"]


def test_a_failure_between_the_two_renames_or_a_kill_keeps_the_earlier_dataset(kits, tmp_path, monkeypatch):
    out = tmp_path / "out"
    collect(kits, out, duration=0.5)
    before = sorted(p.name for p in out.iterdir())
    real_rename, calls = Path.rename, []

    def second_rename_fails(self, target):
        calls.append(self)
        if len(calls) == 2:  # the old dataset is aside, the new one not yet in place
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", second_rename_fails)
    with pytest.raises(OSError):
        collect(kits, out, duration=0.5)
    monkeypatch.setattr(Path, "rename", real_rename)
    assert sorted(p.name for p in out.iterdir()) == before and not list(tmp_path.glob(".out.*"))
    # killed between the renames (kill -9: no handler ran): the next run puts the earlier dataset back first
    staging = tmp_path / ".out.vaedemo-staging-k1ll3d00"  # mkdtemp's random part: eight of [a-z0-9_]
    staging.mkdir()
    (tmp_path / ".out.backup").mkdir()  # the user's, named alike: never taken for a builder's leftover
    (tmp_path / ".out.backup" / "my_take.wav").write_bytes(b"mine")
    out.rename(staging / "old")
    (staging / "new").mkdir()
    collect(kits, tmp_path / "other", duration=0.5)  # another output: this one's leftovers are not its business
    assert not out.exists()
    collect(kits, out, duration=0.5)
    assert sorted(p.name for p in out.iterdir()) == before and not staging.exists()
    assert (tmp_path / ".out.backup" / "my_take.wav").read_bytes() == b"mine"


def test_a_leftover_this_builder_cannot_tell_for_its_own_is_left_where_it_is(kits, tmp_path, capsys):
    """A killed run's earlier dataset of other columns (the other builder's, an older version's) is the user's only
    copy: not restored as this output, not deleted."""
    staging = tmp_path / ".out.vaedemo-staging-k1ll3d00"
    (staging / "old").mkdir(parents=True)
    (staging / "old" / "manifest.csv").write_text("file,kit,key,velocity,program\nkick.wav,a,36,100,0\n")
    (staging / "old" / "kick.wav").write_bytes(b"take")
    collect(kits, tmp_path / "out", duration=0.5)
    assert (staging / "old" / "kick.wav").read_bytes() == b"take"
    assert "holds an earlier dataset this builder did not write; left where it is" in capsys.readouterr().err
