"""The demo's presenter features, handlers called directly: typicality under the flow prior, loudness normalised for
listening, per-sample seeds, figures that follow the page's light/dark theme."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from e2e.bundles import tiny_bundles

from vaedemo.demo import typicality
from vaedemo.demo.common import normalise_peak, peak_dbfs
from vaedemo.demo.interpolate import interpolate, interpolate_at
from vaedemo.demo.models import Models, discover
from vaedemo.demo.reconstruct import reconstruct
from vaedemo.demo.sample import move, sample
from vaedemo.demo.state import DemoState

ROOT = Path(__file__).resolve().parents[1]
TWOSTAGE = ROOT / "checkpoints" / "drums_twostage"
SR = 44100

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as app.py runs (tests/conftest.py)


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    bundles = tiny_bundles(tmp_path_factory.mktemp("presenter-bundles"), ("tiny_single_flow", "tiny_temporal"))
    specs, default = discover(tmp_path_factory.mktemp("none"), [str(p) for p in bundles.values()])
    return DemoState(Models(specs, default), max_seconds=3.0)


@pytest.fixture(scope="module")
def drums():
    if not (TWOSTAGE / "config.json").is_file():
        pytest.skip("checkpoints/drums_twostage is not here")
    specs, default = discover(ROOT / "no-such-folder", [str(TWOSTAGE)])
    return DemoState(Models(specs, default), max_seconds=3.0)


# ---------------------------------------------------------------------------------------------------- typicality
def test_typicality_of_a_drum_hit_a_prior_sample_and_white_noise(drums):
    eng = drums.models.get(None)
    assert typicality.available(eng)
    ref = typicality.reference(eng)
    assert len(ref) == typicality.N_REFERENCE and typicality.reference(eng) is ref  # once per model
    snare, sr = sf.read(ROOT / "examples" / "timgm6mb-standard_snare.flac", dtype="float32", always_2d=True)
    lp, pct = typicality.score_audio(eng, snare, sr)
    assert np.isfinite(lp) and pct > 5  # a drum hit like those it learned (measured: ~33rd percentile)
    z = eng.sample_latents(1, 1.0, 99)[0]
    assert 1 < typicality.percentile(eng, z)[1] < 99.9  # the prior's own sample
    noise = np.clip(0.9 * np.random.default_rng(0).standard_normal((SR, 1)), -1, 1).astype(np.float32)
    score = typicality.score_audio(eng, noise, SR)
    assert score[1] < typicality.FAR_OUT  # full-scale white noise: far outside what it learned
    assert "far outside what the model learned" in typicality.describe(score)
    assert "far outside" not in typicality.describe((lp, pct)) and "percentile" in typicality.describe((lp, pct))


def test_ordinal_percentiles():
    assert [typicality.ordinal(p) for p in (0.2, 1, 2, 3, 11, 12, 13, 21, 33, 99.6)] == \
        ["0th", "1st", "2nd", "3rd", "11th", "12th", "13th", "21st", "33rd", "100th"]  # fmt: skip


def test_reconstruct_shows_typicality_only_where_there_is_a_flow_prior_and_clips(state, drums):
    kick = str(ROOT / "examples" / "timgm6mb-tr-808_kick.flac")
    *_, metrics, text = reconstruct(drums, kick, None, with_typicality=True)
    assert " percentile." in text and "log p(z)" in text and "typicality" not in metrics  # the API is unchanged
    assert len(reconstruct(state, kick, "tiny_single_flow")) == 5
    text = reconstruct(state, kick, "tiny_temporal", with_typicality=True)[-1]
    assert "not available for this model" in text
    _, _, line = interpolate(drums, "prior sample", None, 1, "sound file", kick, 0, 3, "slerp", None,
                             with_typicality=True)  # fmt: skip
    assert line.startswith("Typicality of each step") and line.count("→") == 2


# ---------------------------------------------------------------------------------------------------- loudness
def test_normalise_peak():
    x = (0.01 * np.sin(np.arange(1000) * 0.1))[:, None].astype(np.float32)
    assert peak_dbfs(normalise_peak(x)) == pytest.approx(-1.0, abs=1e-4)
    assert peak_dbfs(x) == pytest.approx(-40.0, abs=0.01)
    silence = np.zeros((100, 1), np.float32)
    assert normalise_peak(silence) is silence and peak_dbfs(silence) == -np.inf


def peak_of(path: str) -> float:
    return peak_dbfs(sf.read(path, dtype="float32")[0])


def test_sample_is_normalised_for_listening_with_its_raw_level_and_seed_in_each_title(state):
    raw, raw_figs = sample(state, 3, 1.0, 40, True, "tiny_single_flow")  # the API's default: the raw level
    loud, figs = sample(state, 3, 1.0, 40, True, "tiny_single_flow", normalise=True)
    for k, (r, n, f) in enumerate(zip(raw, loud, figs)):
        level = peak_of(r)
        assert peak_of(n) == pytest.approx(-1.0, abs=0.05)
        title = f.layout.title.text
        assert f"Sample {k + 1} · seed {40 + k} · peak" in title and f"{level:.0f} dBFS".replace("-", "−") in title
    alone, _ = sample(state, 1, 1.0, 41, True, "tiny_single_flow")  # sample 2 is seed 41 on its own
    assert np.allclose(sf.read(alone[0])[0], sf.read(raw[1])[0], atol=1e-3)  # batched decode: rounding only
    assert [f.data[0].showscale for f in figs] == [False, False, True]  # one colour bar for the shared scale
    moved, fig = move(state, 3, 1.0, 40, True, "tiny_single_flow", 1.0, 0, 0, 0, normalise=True)
    assert peak_of(moved) == pytest.approx(-1.0, abs=0.05) and "dBFS" in fig.layout.title.text


def test_interpolation_is_normalised_for_listening(state):
    args = ("prior sample", None, 1, "prior sample", None, 2)
    paths, fig = interpolate(state, *args, 3, "slerp", "tiny_single_flow", normalise=True)
    assert all(peak_of(p) == pytest.approx(-1.0, abs=0.05) for p in paths)
    assert "dBFS" in fig.layout.annotations[0].text
    raw, _ = interpolate_at(state, *args, 0.5, "slerp", "tiny_single_flow")
    loud, pos_fig = interpolate_at(state, *args, 0.5, "slerp", "tiny_single_flow", normalise=True)
    assert peak_of(loud) == pytest.approx(-1.0, abs=0.05)
    assert f"{peak_of(raw):.0f} dBFS".replace("-", "−") in pos_fig.layout.title.text  # the raw level


# ---------------------------------------------------------------------------------------------------- theme
def test_figures_follow_the_page_theme(state):
    _, figs = sample(state, 1, 1.0, 0, True, "tiny_single_flow")
    layout = figs[0].layout
    assert layout.paper_bgcolor == layout.plot_bgcolor == "rgba(0,0,0,0)"  # transparent on light and dark pages
