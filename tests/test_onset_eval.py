"""The onset evaluation: loops built from a folder's kits, scored against the hits they were built from."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vaedemo import onset_eval
from vaedemo.onset_eval import SAMPLE_RATE, evaluate_folder, kit_parts, loop_part, main, score


def _shot(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A synthetic one-shot: a kick (a falling sine), a snare (a noise burst with a tone), a closed hi-hat (a short
    burst of high noise), an open one (a long one)."""
    t = np.arange(int(0.6 * SAMPLE_RATE)) / SAMPLE_RATE
    noise = rng.standard_normal(len(t))
    high = np.diff(noise, prepend=0.0)
    shots = {
        "kick": np.sin(2 * np.pi * (50 * t + 40 * (1 - np.exp(-t / 0.03)))) * np.exp(-t / 0.15),
        "snare": (0.6 * noise + 0.4 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.07),
        "closed": 0.5 * high * np.exp(-t / 0.02),
        "open": 0.5 * high * np.exp(-t / 0.5),
    }
    return (0.8 * shots[kind]).astype(np.float32)


def write_kit(folder: Path, rows: list[tuple[str, str, str]], seed: int = 0) -> Path:
    """A folder of synthetic one-shots with a recorded kit's manifest: (kind, instrument, family) per file."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i, (kind, instrument, family) in enumerate(rows):
        rel = f"kit/{kind}_{i}.wav"
        (folder / "kit").mkdir(exist_ok=True)
        sf.write(folder / rel, _shot(kind, rng), SAMPLE_RATE)
        manifest.append({"file": rel, "kit": "Synthetic", "instrument": instrument, "family": family})
    with open(folder / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "kit", "instrument", "family"])
        writer.writeheader()
        writer.writerows(manifest)
    return folder


KIT = [("kick", "Kick", "kick"), ("snare", "Snare", "snare"), ("closed", "Closed HH", "hi-hat"),
       ("open", "Open HH", "hi-hat")]  # fmt: skip


def test_a_kit_of_clear_hits_is_found_and_a_detector_that_finds_nothing_or_everything_scores_so(tmp_path):
    folder = write_kit(tmp_path / "kits", KIT)
    result = evaluate_folder(folder)
    assert result["kits"] == 1 and result["loops"] == 6
    assert result["recall"] >= 0.95 and result["precision"] >= 0.95
    nothing = evaluate_folder(folder, detector=lambda x, sr, s: np.array([0]))
    assert nothing["recall"] == 0.0 and nothing["precision"] == 1.0
    everything = evaluate_folder(folder, detector=lambda x, sr, s: np.arange(0, len(x), sr // 100))
    assert everything["recall"] == 1.0 and everything["precision"] < 0.5
    assert evaluate_folder(folder) == result  # the same loops for the same seed


def test_only_closed_hi_hats_keep_time():
    assert loop_part({"key": "42"}) == "hi-hat" and loop_part({"key": "42.0"}) == "hi-hat"
    assert loop_part({"key": "46"}) is None and loop_part({"key": "44"}) is None  # open, pedal
    assert loop_part({"key": "36"}) == "kick" and loop_part({"key": "37"}) == "snare"
    assert loop_part({"key": "49"}) is None  # a cymbal
    assert loop_part({"family": "hi-hat", "instrument": "Hi Hat Closed"}) == "hi-hat"
    assert loop_part({"family": "hi-hat", "instrument": "VariBreaks Hat 3 Cl"}) == "hi-hat"
    assert loop_part({"family": "hi-hat", "instrument": "Sabian Hat Open"}) is None
    assert loop_part({"family": "tom", "instrument": "Tom"}) is None


def test_a_kit_without_a_closed_hi_hat_is_left_out(tmp_path):
    folder = write_kit(tmp_path / "kits", [row for row in KIT if row[0] != "closed"])
    assert kit_parts(folder) == {}
    assert main(["--data", str(folder)]) != 0


def test_score_counts_hits_within_the_tolerance_and_leaves_the_start_out():
    truth = np.array([0, 1000, 5000])
    assert score(np.array([0, 1020, 9000]), truth, 30) == (0.5, 0.5)
    assert score(np.array([0]), truth, 30) == (0.0, 1.0)


def test_the_command_writes_its_report_and_numbers(tmp_path, capsys):
    folder = write_kit(tmp_path / "kits", KIT)
    out, js = tmp_path / "report.md", tmp_path / "numbers.json"
    assert main(["--data", str(folder), "--out", str(out), "--json", str(js)]) == 0
    assert "| recall | precision |" in out.read_text() and '"recall"' in js.read_text()
    assert main(["--data", str(folder), "--sensitivity", "0"]) != 0
    assert "sensitivity" in capsys.readouterr().err
    assert main(["--data", str(folder), "--seed", "-1"]) != 0
    assert "--seed must be a whole number" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "missing")]) != 0
    assert f"error: data folder {tmp_path / 'missing'} does not exist." in capsys.readouterr().err


@pytest.mark.parametrize("hats", onset_eval.HAT_DIVISIONS)
def test_the_pattern_keeps_time(hats):
    steps = onset_eval.pattern(hats, np.random.default_rng(0))
    assert len(steps) == onset_eval.STEPS
    assert all("hi-hat" in s for s in steps[:: 16 // hats])
    assert all("kick" in steps[i] for i in (0, 8, 16, 24)) and all("snare" in steps[i] for i in (4, 12, 20, 28))


def test_a_manifest_that_is_not_utf8_csv_is_ignored_with_a_warning(tmp_path, caplog):
    """A spreadsheet's export in cp1252, or a field over csv's limit, was a traceback in every reader."""
    import logging

    from vaedemo.data.oneshots import read_manifest

    folder = write_kit(tmp_path / "kits", KIT)
    (folder / "manifest.csv").write_bytes("file,kit,instrument,family\nkit/a.wav,Café Kit,Kick,kick\n".encode("cp1252"))
    with caplog.at_level(logging.WARNING):
        assert read_manifest(folder) == {}
    assert "does not read as UTF-8 CSV (UnicodeDecodeError)" in caplog.text
    (folder / "manifest.csv").write_text("file,kit\nkit/a.wav," + "x" * 200_000 + "\n")
    assert read_manifest(folder) == {}
    assert main(["--data", str(folder)]) != 0  # one sentence: no kit (the manifest said nothing)
