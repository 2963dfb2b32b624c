"""vaedemo.bench's inference measurements on a tiny model: every column present, refined reconstruction timed on
request."""

from __future__ import annotations

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
    assert all(row.count("|") == len(COLUMNS) + 1 for row in rows)
