"""vaedemo.bench's inference measurements on a tiny model: the columns some row has, refined reconstruction timed on
request."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaedemo.bench import COLUMNS, measure_inference, table
from vaedemo.bundle import save_bundle
from vaedemo.inference import Engine
from vaedemo.nn.vae import AudioVAE


def test_refined_reconstruction_is_timed_only_when_asked(tiny_config, tmp_path):
    cfg = tiny_config("temporal", flows=0)
    torch.manual_seed(0)
    engine = Engine(save_bundle(AudioVAE(cfg.model), tmp_path / "b"))
    plain = measure_inference(engine, seconds=0.25, runs=1)
    refined = measure_inference(engine, seconds=0.25, runs=1, refine=3)
    assert plain["refined_rtf"] is None and plain["reconstruct_rtf"] > 0
    assert 0 < refined["refined_rtf"] < refined["reconstruct_rtf"]  # three steps cost more than one pass
    rows = table([{"model": "plain", **plain}, {"model": "refined", **refined}]).splitlines()
    assert "refined x RT" in rows[0] and len(rows) == 4
    assert "drum loop x RT" not in rows[0]  # a temporal model has no hit-by-hit loop: a column no row has is left out
    assert all(row.count("|") == rows[0].count("|") for row in rows) and "reconstruct x RT" in rows[0]
    alone = table([{"model": "plain", **plain}]).splitlines()
    assert "refined x RT" not in alone[0] and alone[0].count("|") == rows[0].count("|") - 1
    full = table([{c[0]: 1.0 for c in COLUMNS}]).splitlines()  # every column measured: all of them shown
    assert full[0].count("|") == len(COLUMNS) + 1


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full to stand for a full disk")
def test_a_json_the_disk_cannot_hold_is_one_sentence(tiny_config, tmp_path, capsys):
    """The rows were written with write_text: a full disk was an OSError traceback after the whole benchmark."""
    from vaedemo.bench import main

    cfg = tiny_config("temporal", flows=0)
    torch.manual_seed(0)
    bundle = save_bundle(AudioVAE(cfg.model), tmp_path / "b")
    assert main(["--checkpoint", str(bundle), "--runs", "1", "--seconds", "0.25", "--train-steps", "0", "--json",
                 "/dev/full"]) == 2  # fmt: skip
    assert capsys.readouterr().err.endswith("error: could not write /dev/full: No space left on device.\n")


def test_odd_arguments_are_one_sentence_before_any_model_loads(tmp_path, capsys, monkeypatch):
    """--runs 0 and --chunks 0 were statistics' "no median for empty data" (a traceback for --stream), --chunk 0 a
    row of 0.0 x real time, a --json folder a traceback after the whole benchmark, and no model to measure outside
    the repository an IndexError."""
    from vaedemo.bench import main

    common = ["--checkpoint", str(tmp_path / "not_loaded")]
    for extra, message in [(["--runs", "0"], "--runs, --chunks and --chunk must be at least 1 and --train-steps not "
                             "negative, got 0, 300, 512 and 3."),
                           (["--stream", "--chunk", "0"], "--runs, --chunks and --chunk must be at least 1"),
                           (["--seconds", "-1"], "--seconds must be above 0 and at most 1800 (the longest audio a "
                            "model takes), got -1.0."),
                           (["--refine", "-1"], "--refine must be from 0 to 1000 steps, got -1."),
                           (["--json", str(tmp_path)], f"--json {tmp_path} is a folder; give a file name.")]:
        assert main(common + extra) == 2
        assert capsys.readouterr().err.startswith(f"error: {message}")
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    assert capsys.readouterr().err == "error: no --config or --checkpoint given and no configs/*.yaml here to measure.\n"


def test_lengths_beyond_the_audio_limit_are_refused_before_any_model_loads(tmp_path, capsys):
    """--stream --chunk 1000000000 grew to 15 GB (only the hop was checked, by the stream), --seconds 20000 drew 10 GB
    of noise for the engine to refuse after 30 s, and --seconds 1e7 was numpy's MemoryError."""
    from vaedemo.bench import main

    common = ["--checkpoint", str(tmp_path / "not_loaded")]
    seconds = "--seconds must be above 0 and at most 1800 (the longest audio a model takes), got"
    for extra, message in [(["--stream", "--chunk", "1000000000", "--chunks", "1"],
                            "--chunk must be at most 131072 samples (about 3 s at 44.1 kHz), got 1000000000."),
                           (["--stream", "--chunk", "131072", "--chunks", "1000"], "--chunk times --chunks must be at "
                            "most 79380000 samples (30 min at 44.1 kHz), got 131072 x 1000."),
                           (["--seconds", "20000"], f"{seconds} 20000.0."), (["--seconds", "1e7"], f"{seconds} 10000000.0."),
                           (["--seconds", "nan"], f"{seconds} nan.")]:  # fmt: skip
        assert main(common + extra) == 2
        assert capsys.readouterr().err == f"error: {message}\n"


def test_a_model_the_worker_cannot_load_is_its_sentence_once(tmp_path, capsys):
    """The worker's "error: <sentence>" came back inside "error: benchmarking X failed: ...", with exit status 1."""
    from vaedemo.bench import main

    assert main(["--checkpoint", str(tmp_path / "nowhere"), "--runs", "1", "--train-steps", "0"]) == 2
    assert capsys.readouterr().err == (f"error: checkpoint {tmp_path / 'nowhere'} is not a bundle folder (expected a "
                                       "folder with config.json).\n")  # fmt: skip


def test_train_settings_are_one_sentence_before_any_training(tmp_path, capsys):
    """A missing config or a folder was a FileNotFoundError / IsADirectoryError traceback, --adv-steps 0 trained and
    then raised "the training printed no 'adversarial' line", --batch -1 a traceback around the trainer's sentence."""
    from vaedemo import bench

    root = Path(bench.__file__).resolve().parents[1]
    common = ["--train", "--runs", "1", "--vae-steps", "1", "--adv-steps", "1"]
    (tmp_path / "bad.yaml").write_text("a: [")  # these two, and a --source that is no checkout, were tracebacks
    (tmp_path / "list.yaml").write_text("- 1")
    for extra, message in [(["--config", str(tmp_path / "none.yaml")], f"--config {tmp_path / 'none.yaml'} does not "
                            "exist."),
                           (["--config", "configs"], f"--config configs (read from {root}) is a folder; give a YAML "
                            "config file."),
                           (["--adv-steps", "0"], "--vae-steps and --adv-steps must be at least 1 (each phase is "
                            "timed), got 1 and 0."),
                           (["--vae-steps", "-3"], "--vae-steps and --adv-steps must be at least 1 (each phase is "
                            "timed), got -3 and 1."),
                           (["--batch", "-1"], "--batch must be at least 1, got -1."),
                           (["--workers", "-1"], "--workers must be at least 0, got -1."),
                           (["--threads", "0"], "--threads must be at least 1, got 0."),
                           (["--config", str(tmp_path / "bad.yaml")], f"--config {tmp_path / 'bad.yaml'} is not valid "
                            "YAML (while parsing a flow node)."),
                           (["--config", str(tmp_path / "list.yaml")], f"--config {tmp_path / 'list.yaml'} is not a "
                            "vaedemo config (a mapping of data, model, train and trainer sections)."),
                           (["--source", str(tmp_path)], f"--source {tmp_path} is not a vaedemo checkout (it has no "
                            "vaedemo/train.py).")]:  # fmt: skip
        assert bench.main(common + extra) == 2
        assert capsys.readouterr().err == f"error: {message}\n"


def test_a_setting_the_trainer_refuses_is_its_sentence_not_a_traceback(tmp_path, capsys, monkeypatch):
    """--precision bogus was a traceback ending "RuntimeError: training failed (exit 2): <the trainer's sentence>"."""
    from vaedemo.bench import main

    monkeypatch.chdir(tmp_path)  # the config's data folder is absent here: a few generated clips, nothing trained
    args = ["--train", "--config", "configs/drums_temporal.yaml", "--precision", "bogus", "--runs", "1",
            "--vae-steps", "1", "--adv-steps", "1"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: trainer.precision must be one of 32-true,") and "got 'bogus'" in err
    assert err.count("\n") == 1 and "Traceback" not in err
