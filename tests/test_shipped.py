"""The bundles that ship in checkpoints/: they load offline, carry their card and evaluation, and run."""

from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

import vaedemo
from vaedemo.audio import load_audio
from vaedemo.demo.models import discover
from vaedemo.inference import Engine

SHIPPED = sorted(p for p in (ROOT / "checkpoints").glob("[!.]*") if (p / "config.json").is_file())


def test_something_ships():
    assert SHIPPED, "checkpoints/ holds no bundle"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_bundle_loads_runs_and_documents_itself(path: Path):
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < 16 * 2**20, f"{path.name} is {size / 2**20:.1f} MB; bundles stay a few MB"
    bundle = vaedemo.load(path)
    for needle in ("## Training", "command: `python -m vaedemo.train --config configs/", "## Evaluation",
                   "python -m vaedemo.evaluate", "| opus 12 kbps |", "## Parameters"):
        assert needle in bundle.card, needle
    assert bundle.meta["step"] >= 1000 and bundle.meta["evaluation"]
    engine = Engine(bundle)
    x, sr = load_audio(ROOT / "examples" / "drum_loop.flac")
    y = engine.reconstruct(x, sr)
    assert y.shape == x.shape and np.isfinite(y).all()
    # a trained model is not silent and not exploding on a real drum loop
    ratio = np.sqrt((y**2).mean() / (x**2).mean())
    assert 0.1 < ratio < 10, ratio
    s = engine.sample(2, seed=3)
    assert np.array_equal(s, engine.sample(2, seed=3)) and np.isfinite(s).all()


def test_the_app_defaults_to_the_two_stage_flow_model():
    specs, default = discover(ROOT / "checkpoints")
    spec = next(s for s in specs if s.label == default)
    assert default == (ROOT / "checkpoints" / "DEFAULT").read_text().strip() == "drums_twostage"
    assert spec.single and spec.prior_flow


def test_the_live_model_streams_with_no_look_ahead():
    """drums_causal, the Live tab's default: its encoder and decoder read nothing ahead, and its stream lags only by the
    causal PQMF pair's 928 samples (21 ms), as the README states."""
    engine = Engine(ROOT / "checkpoints" / "drums_causal")
    assert engine.model.cfg.causal and engine.model.cfg.encoder == "spectral"
    stream = engine.stream()
    assert stream.latency == engine.model.delay == 928
