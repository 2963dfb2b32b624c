"""Where the log-mel distance lies: ``python -m vaedemo.distance_map`` on real (tiny) bundles and real Opus."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from vaedemo.distance_map import band_labels, clip_groups, group_rows, hardest_clips, main, on_harmonic, pitch_rows
from vaedemo.metrics import LEVEL_EDGES_DB, log_mel_l1


def test_band_labels_name_every_band():
    assert band_labels((20.0, 40.0)) == ["0-20 dB", "20-40 dB", "below 40 dB"]
    assert len(band_labels()) == len(LEVEL_EDGES_DB) + 1


def test_hardest_clips_rank_by_the_excess_over_the_reference():
    model = [{"total": t} for t in (0.5, 0.9, 0.2, 0.4, 0.3)]
    reference = [{"total": t} for t in (0.3, 0.3, 0.3, 0.3, 0.3)]
    h = hardest_clips(["a", "b", "c", "d", "e"], model, reference)
    assert [c[0] for c in h["clips"]] == ["b", "a", "d", "e", "c"]
    assert h["mean_excess"] == pytest.approx(0.16)
    assert h["worst_fifth_share"] == pytest.approx(0.6 / 0.9)  # b's 0.6 of the 0.6 + 0.2 + 0.1 above the reference
    assert hardest_clips(["a"], [{"total": 0.1}], [{"total": 0.2}])["worst_fifth_share"] is None


@pytest.mark.skipif(shutil.which("opusenc") is None, reason="opus-tools not installed")
def test_the_map_of_a_model_and_opus_adds_up(backbone, drum_folder, tmp_path, capsys):
    from vaedemo.evaluate import default_seconds, evaluation_sets, load_clips
    from vaedemo.inference import Engine

    out, numbers = tmp_path / "map.md", tmp_path / "map.json"
    assert main(["--checkpoint", str(backbone), "--data", str(drum_folder), "--clips", "4",
                 "--out", str(out), "--json", str(numbers)]) == 0  # fmt: skip
    (folder,) = json.loads(numbers.read_text())
    assert folder["clips"] == 4 and folder["seconds"] == pytest.approx(1.0, abs=1e-3)
    engine = Engine(backbone)
    name = engine.bundle.name
    rows = {r["system"]: r for r in folder["rows"]}
    assert set(rows) == {name, "opus 12 kbps", "opus 24 kbps"}
    for r in rows.values():
        assert sum(r["bands"]) == pytest.approx(r["log_mel_l1"], rel=1e-5)
        assert sum(r["share"]) == pytest.approx(1.0)
    # the model's row is the evaluation's log-mel L1 of its reconstructions
    files, _, _ = evaluation_sets(drum_folder, engine, 4)
    clips = load_clips(files, engine.sample_rate, round(default_seconds(engine) * engine.sample_rate), 1, 4)
    by_hand = np.mean([log_mel_l1(x, engine.reconstruct(x, engine.sample_rate), engine.sample_rate) for x in clips])
    assert rows[name]["log_mel_l1"] == pytest.approx(by_hand, rel=1e-5)
    hardest = folder["hardest"][name]
    assert len(hardest["clips"]) == 4 and all(name.startswith("hit_") for name, _, _ in hardest["clips"])
    text = out.read_text()
    assert "| opus 24 kbps |" in text and "top 40 dB alone" in text and text in capsys.readouterr().out
    assert f"Reproduce: `python -m vaedemo.distance_map --checkpoint {backbone} --data {drum_folder}" in text


def test_distances_by_kind_of_drum_come_from_the_manifest(backbone, drum_folder, tmp_path):
    names = ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]
    assert clip_groups(tmp_path, names) is None  # no manifest
    (tmp_path / "manifest.csv").write_text("file,key,family\na.wav,36,\nb.wav,63,\nc.wav,64,\nd.wav,,cymbal\n")
    groups = clip_groups(tmp_path, names)
    assert groups == ["kick", "pitched percussion", "pitched percussion", "cymbal", ""]
    scores = {"m": [{"audible": a, "total": a / 2} for a in (0.1, 0.2, 0.4, 0.8, 9.0)]}
    rows = group_rows(groups, scores)
    assert [(r["group"], r["clips"]) for r in rows] == [("pitched percussion", 2), ("cymbal", 1), ("kick", 1)]
    assert rows[0]["audible"]["m"] == pytest.approx(0.3) and rows[0]["log_mel_l1"]["m"] == pytest.approx(0.15)
    # a folder with a manifest gets the table; its kinds' clips add up to the clips of known kind
    (drum_folder / "manifest.csv").write_text("file,key\n" + "".join(f"hit_{i:02d}.wav,{56 + i}\n" for i in range(12)))
    try:
        out = tmp_path / "map.md"
        assert main(["--checkpoint", str(backbone), "--data", str(drum_folder), "--clips", "6", "--no-opus",
                     "--out", str(out)]) == 0  # fmt: skip
    finally:
        (drum_folder / "manifest.csv").unlink()
    text = out.read_text()
    assert "By kind of drum" in text and "| pitched percussion |" in text  # keys 56-67: cowbell, vibraslap, bongos ...
    kinds_table = text.split("By kind of drum")[1].split("Pitched percussion (")[0]
    table = [line for line in kinds_table.splitlines() if line.startswith("| ") and line.split(" | ")[1].isdigit()]
    assert sum(int(line.split(" | ")[1]) for line in table) == 6
    assert "Pitched percussion (" in text and "median pitch error (cents)" in text


def test_pitch_errors_and_the_frame_rate_harmonics():
    sr, rate = 44100, 44100 / 512
    assert on_harmonic(3 * rate + 4, rate, 5.4) and not on_harmonic(3.5 * rate, rate, 5.4)
    t = np.arange(sr) / sr

    def tone(hz):
        return (0.5 * np.sin(2 * np.pi * hz * t) * np.exp(-3 * t)).astype(np.float32)[:, None]

    pitches = [377.0, 623.0, 1130.0]
    clips = [tone(f) for f in pitches]
    snapped = [tone(rate * round(f / rate)) for f in pitches]  # what a frame-periodic decoder gives
    rows = pitch_rows(clips, {"exact": clips, "snapped": snapped, "coarser": snapped}, sr,
                      {"exact": rate, "snapped": rate, "coarser": 4 * rate})  # fmt: skip
    assert rows["clips"] == 3
    assert rows["systems"]["exact"] == {"frame_rate": rate, "median_cents": 0.0, "on_harmonics": 0.0,
                                        "input_on_harmonics": 0.0}  # fmt: skip
    expected = np.median([abs(1200 * np.log2(rate * round(f / rate) / f)) for f in pitches])
    assert rows["systems"]["snapped"]["on_harmonics"] == 1.0
    assert rows["systems"]["snapped"]["median_cents"] == pytest.approx(expected, abs=30)  # to a 5.4 Hz bin
    # each system is judged on its own frame rate's grid: the same outputs lie on 86 Hz's harmonics, not 345 Hz's
    assert rows["systems"]["coarser"]["on_harmonics"] < 1.0 and rows["systems"]["coarser"]["frame_rate"] == 4 * rate


def test_two_bundles_of_one_name_are_told_apart_by_their_paths(backbone, tmp_path):
    from vaedemo.distance_map import system_names
    from vaedemo.inference import Engine

    twin = tmp_path / "twin"
    shutil.copytree(backbone, twin)
    a, b = Engine(backbone), Engine(twin)
    assert system_names([a]) == [a.bundle.name]
    assert system_names([a, b]) == [str(a.bundle.path), str(b.bundle.path)]


def test_bad_arguments_get_one_sentence(backbone, drum_folder, tmp_path, capsys):
    assert main(["--checkpoint", str(backbone), "--data", str(drum_folder), "--clips", "0"]) != 0
    assert capsys.readouterr().err.strip() == "error: --clips must be at least 1."
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--checkpoint", str(backbone), "--data", str(empty), "--no-opus"]) != 0
    assert capsys.readouterr().err.strip() == f"error: {empty} holds no audio files to evaluate on."
    missing = tmp_path / "no" / "report.md"  # refused before the models load and the clips are scored
    assert main(["--checkpoint", str(tmp_path / "none"), "--data", str(empty), "--out", str(missing)]) != 0
    assert capsys.readouterr().err.strip() == f"error: --out {missing}: the folder {missing.parent} does not exist."
