"""The Live tab's browser mode, server side: a causal model's stream is exported once per bundle content (the
stream's graphs alone) and reused; a model that reads ahead, or a missing runtime, is one sentence."""

import json
from pathlib import Path

import pytest
import torch

import vaedemo.onnx_export
from vaedemo.bundle import save_bundle
from vaedemo.demo import browser_live
from vaedemo.demo.browser_live import NO_RUNTIME, BrowserStreams
from vaedemo.errors import VaedemoError
from vaedemo.inference import Engine
from vaedemo.nn.vae import AudioVAE
from vaedemo.onnx_export import DECODE, ENCODE, INFO, STREAM_DECODE, STREAM_ENCODE

pytest.importorskip("onnxscript")


def _engine(tiny_config, tmp_path, causal: bool = True, seed: int = 0) -> Engine:
    cfg = tiny_config("temporal", flows=0, model__causal=causal)
    torch.manual_seed(seed)
    return Engine(save_bundle(AudioVAE(cfg.model).eval(), tmp_path / f"bundle{seed}{causal}"))


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    files = {role: tmp_path / f"runtime.{role}" for role in ("js", "mjs", "wasm")}
    monkeypatch.setattr(browser_live, "runtime_files", lambda: files)
    return files


def test_a_causal_stream_is_exported_once_per_bundle_content(tiny_config, tmp_path, monkeypatch, runtime):
    streams = BrowserStreams(tmp_path / "cache")
    engine = _engine(tiny_config, tmp_path)
    info = streams.info(engine, "tiny")
    folder = streams.folder(engine.bundle.path)
    assert sorted(p.name for p in folder.iterdir()) == sorted([INFO, STREAM_ENCODE, STREAM_DECODE])  # no ENCODE, DECODE
    assert not {ENCODE, DECODE} & {p.name for p in folder.iterdir()}
    assert info["model"] == json.loads((folder / INFO).read_text()) and info["model"]["stream"]["batch"] == 1
    assert "encode" not in info["model"] and "decode" not in info["model"]  # (the offline graphs' entries)
    assert info["encode"] == f"gradio_api/file={folder.resolve() / STREAM_ENCODE}"
    assert info["runtime"]["wasm"] == f"gradio_api/file={runtime['wasm'].resolve()}"

    def no_second_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(vaedemo.onnx_export, "export_onnx", no_second_export)
    assert streams.folder(engine.bundle.path) == folder  # reused
    other = _engine(tiny_config, tmp_path, seed=1)  # other weights: another folder, which needs an export
    with pytest.raises(AssertionError, match="exported again"):
        streams.folder(other.bundle.path)


def test_a_model_that_reads_ahead_or_a_missing_runtime_is_one_sentence(tiny_config, tmp_path, monkeypatch, runtime):
    streams = BrowserStreams(tmp_path / "cache")
    with pytest.raises(VaedemoError, match="reads ahead \\(it is not causal\\)"):
        streams.info(_engine(tiny_config, tmp_path, causal=False), "centred")
    monkeypatch.setattr(browser_live, "runtime_files", lambda: None)
    with pytest.raises(VaedemoError) as e:
        streams.info(_engine(tiny_config, tmp_path), "tiny")
    assert str(e.value) == NO_RUNTIME
    assert not (tmp_path / "cache").exists()  # nothing exported for either


def test_a_server_that_keeps_its_models_sends_none(tiny_config, tmp_path, runtime):
    """app.py --no-browser-live: the button's request is refused before anything is exported or served (the page
    test plays the same request's answer where the server sends models)."""
    import app
    from vaedemo.demo.browser_live import KEPT_ON_SERVER, stream_info
    from vaedemo.demo.models import Models, discover
    from vaedemo.demo.state import DemoState

    engine = _engine(tiny_config, tmp_path)
    specs, default = discover(tmp_path / "none", [str(engine.bundle.path)])
    streams = BrowserStreams(tmp_path / "cache")
    kept = DemoState(Models(specs, default), browser_live=False)
    with pytest.raises(VaedemoError) as e:
        stream_info(kept, streams, default)
    assert str(e.value) == KEPT_ON_SERVER and not (tmp_path / "cache").exists()
    assert app.parse_args(["--no-browser-live"]).no_browser_live and not app.parse_args([]).no_browser_live


def test_a_failed_export_is_remembered_not_paid_again_until_it_may_have_cleared(tiny_config, tmp_path, monkeypatch):
    import time

    calls = []

    def fails(*args, **kwargs):
        calls.append(1)
        raise VaedemoError("tiny could not be exported to ONNX (ConversionError: no).")

    monkeypatch.setattr(vaedemo.onnx_export, "export_onnx", fails)
    streams = BrowserStreams(tmp_path / "cache")
    engine = _engine(tiny_config, tmp_path)
    for _ in range(2):
        with pytest.raises(VaedemoError, match="could not be exported to ONNX"):
            streams.folder(engine.bundle.path)
    assert len(calls) == 1
    later = time.monotonic() + browser_live.RETRY_FAILED_SECONDS + 1  # (a full disk freed since, say): tried again
    monkeypatch.setattr(time, "monotonic", lambda: later)
    with pytest.raises(VaedemoError, match="could not be exported to ONNX"):
        streams.folder(engine.bundle.path)
    assert len(calls) == 2


def test_the_cache_keeps_the_exports_in_use_and_the_most_recent(tmp_path, monkeypatch):
    """Every new set of weights was exported for good (7.5 MB for drums_causal), and an export killed part-way left
    its temporary folder: the cache keeps the 8 most recently used exports and whatever was used within the hour."""
    import os

    from vaedemo.demo.browser_live import IN_USE_SECONDS, KEPT_EXPORTS, tidy

    now = 1_000_000.0
    ages = {f"{k:016x}": (k + 2) * IN_USE_SECONDS for k in range(KEPT_EXPORTS + 3)}  # 2 h old and older
    ages |= {"recent0": 60.0, "recent1": 120.0, ".0123-killed": 2 * IN_USE_SECONDS, ".4567-writing": 5.0}
    for name, age in ages.items():
        (tmp_path / name).mkdir()
        if not name.startswith("."):
            (tmp_path / name / INFO).write_text("{}")
        os.utime(tmp_path / name, (now - age, now - age))
    (tmp_path / "not-an-export").mkdir()  # (no model.json: not the cache's to judge)
    os.utime(tmp_path / "not-an-export", (0, 0))
    gone = {p.name for p in tidy(tmp_path, now)}
    oldest_first = sorted((n for n in ages if not n.startswith(".")), key=ages.get)
    assert gone == set(oldest_first[KEPT_EXPORTS:]) | {".0123-killed"}
    assert {p.name for p in tmp_path.iterdir()} == set(ages) - gone | {"not-an-export"}
    assert len(oldest_first[KEPT_EXPORTS:]) == 5 and "recent0" not in gone  # the recent ones counted among the 8
    busy = tmp_path / "busy"  # more exports in use than the cache keeps: none goes (a page may be loading it)
    busy.mkdir()
    for k in range(KEPT_EXPORTS + 2):
        (busy / f"{k:016x}").mkdir()
        (busy / f"{k:016x}" / INFO).write_text("{}")
        os.utime(busy / f"{k:016x}", (now - 60 * k, now - 60 * k))
    assert tidy(busy, now) == [] and len(list(busy.iterdir())) == KEPT_EXPORTS + 2
    # another server sharing the cache removes a folder while this one looks: skipped, not a failed click
    vanished, stat, looks = busy / f"{0:016x}", Path.stat, []

    def gone_after_its_first_look(p, **kw):  # (listed as a folder, then gone when its time is read)
        looks.append(p)
        if p == vanished and looks.count(p) > 1:
            raise FileNotFoundError(2, "No such file or directory")
        return stat(p, **kw)

    monkeypatch.setattr(Path, "stat", gone_after_its_first_look)
    assert tidy(busy, now) == [] and looks.count(vanished) == 2
