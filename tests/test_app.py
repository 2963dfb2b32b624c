"""The demo's handlers called directly (no server): every tab, the model picker, and the files users get wrong."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import soundfile as sf
from e2e.bundles import tiny_bundles
from gradio.utils import get_upload_folder

from vaedemo import inference, plots
from vaedemo.demo import build_demo, typicality
from vaedemo.demo.files import FILE_OVERHEAD_BYTES, GRACE_SECONDS, TempFiles
from vaedemo.demo.interpolate import WIDE_TITLES_STEPS, interpolate, interpolate_at
from vaedemo.demo.latent_map import N_PRIOR, latent_map, map_point
from vaedemo.demo.models import Models, discover
from vaedemo.demo.page import model_info
from vaedemo.demo.reconstruct import METRIC_LABELS, reconstruct
from vaedemo.demo.sample import COLOUR_BAR_PX, direction_labels, move, sample
from vaedemo.demo.search import REFINE_SECONDS, REFINE_STEPS
from vaedemo.demo.state import DemoState
from vaedemo.errors import CheckpointError, VaedemoError
from vaedemo.inference import Reconstruction

ROOT = Path(__file__).resolve().parents[1]
SR = 44100

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as app.py runs (tests/conftest.py)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return tiny_bundles(tmp_path_factory.mktemp("app-bundles"))


@pytest.fixture(scope="module")
def state(bundles, tmp_path_factory):
    plain = tmp_path_factory.mktemp("plain")  # a folder without manifest.csv
    for i in range(4):
        sf.write(plain / f"hit{i}.wav", np.sin(np.arange(8000) * (0.02 + 0.01 * i)) * 0.3, 22050)
    specs, default = discover(tmp_path_factory.mktemp("none"), [str(p) for p in bundles.values()])
    folders = {"examples": ROOT / "examples", "plain": plain, "tiny": ROOT / "examples" / "missing"}
    return DemoState(Models(specs, default), max_seconds=3.0, folders=folders)


def noise(n: int, channels: int = 1, seed: int = 0, amp: float = 0.2) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal((n, channels))).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("uploads")
    x = noise(22050)
    sf.write(d / "good.wav", x, SR, subtype="PCM_16")
    data = (d / "good.wav").read_bytes()
    out = {
        "empty": d / "empty.wav",
        "text": d / "text.wav",
        "truncated_header": d / "truncated_header.wav",
        "truncated": d / "truncated.wav",
        "nan": d / "nan.wav",
        "six_channels": d / "six.wav",
        "8k": d / "8k.wav",
        "96k": d / "96k.wav",
        "24bit": d / "24bit.wav",
        "one_sample": d / "one.wav",
        "silence": d / "silence.wav",
        "stereo": d / "stereo.flac",
        "long": d / "long.wav",
    }
    out["empty"].write_bytes(b"")
    out["text"].write_text("this is a text file, not a sound\n" * 20)
    out["truncated_header"].write_bytes(data[:30])
    out["truncated"].write_bytes(data[: len(data) // 2])
    y = x.copy()
    y[100] = np.nan
    sf.write(out["nan"], y, SR, subtype="FLOAT")
    sf.write(out["six_channels"], noise(5000, 6), SR)
    sf.write(out["8k"], noise(8000), 8000)
    sf.write(out["96k"], noise(48000), 96000)
    sf.write(out["24bit"], x, SR, subtype="PCM_24")
    sf.write(out["one_sample"], x[:1], SR)
    sf.write(out["silence"], np.zeros((SR, 1)), SR)
    sf.write(out["stereo"], noise(30000, 2), SR)
    sf.write(out["long"], noise(5 * SR), SR)
    if shutil.which("ffmpeg"):
        out["mp3"] = d / "a.mp3"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(d / "good.wav"), str(out["mp3"])], check=True)
    return out


# ---------------------------------------------------------------------------------------------------- models
def test_discover_prefers_a_single_latent_flow_model_and_explains_an_empty_folder(bundles, tmp_path):
    with pytest.raises(CheckpointError, match="no model to serve.*--checkpoint"):
        discover(tmp_path, [])
    for name in ("tiny_temporal", "tiny_single_flow"):
        shutil.copytree(bundles[name], tmp_path / f"{'a' if name == 'tiny_temporal' else 'b'}_{name}")
    (tmp_path / "not_a_bundle").mkdir()
    specs, default = discover(tmp_path, [])
    assert [s.label for s in specs] == ["a_tiny_temporal", "b_tiny_single_flow"] and default == "b_tiny_single_flow"
    (tmp_path / "DEFAULT").write_text("a_tiny_temporal\n")  # a deliberate choice wins
    assert discover(tmp_path, [])[1] == "a_tiny_temporal"
    specs, default = discover(tmp_path, [str(bundles["tiny_stereo"])])
    assert default == "tiny_stereo" and len(specs) == 3  # the command line comes first
    specs, default = discover(tmp_path, [str(tmp_path / "a_tiny_temporal")])  # a shipped one named again: once
    assert [s.label for s in specs] == ["a_tiny_temporal", "b_tiny_single_flow"] and default == "a_tiny_temporal"
    with pytest.raises(CheckpointError, match="not a bundle folder"):
        discover(tmp_path, [str(tmp_path / "missing")])


def test_a_training_runs_bundle_is_offered_under_the_runs_name(bundles, tmp_path):
    """Every run writes its bundle to RUN_DIR/bundle: `--checkpoint runs/mine/bundle` was offered as 'bundle' (and a
    second run's by its whole path), where the README's run is called mine."""
    for run in ("mine", "other"):
        shutil.copytree(bundles["tiny_temporal"], tmp_path / "runs" / run / "bundle")
    specs, default = discover(tmp_path / "none", [str(tmp_path / "runs" / r / "bundle") for r in ("mine", "other")])
    assert [s.label for s in specs] == ["mine", "other"] and default == "mine"


def test_models_are_cached_in_a_small_lru(bundles, tmp_path):
    specs, default = discover(tmp_path, [str(p) for p in bundles.values()])
    models = Models(specs, default, cache_size=2)
    a = models.get("tiny_single_flow")
    assert models.get("tiny_single_flow") is a and models.get(None) is a
    models.get("tiny_temporal")
    models.get("tiny_stereo")  # evicts the least recently used one
    assert list(models._engines) == ["tiny_temporal", "tiny_stereo"]
    assert models.get("tiny_single_flow") is not a
    with pytest.raises(VaedemoError, match="no model called 'nope'"):
        models.get("nope")


def test_create_without_any_model_is_one_sentence(tmp_path):
    import app

    with pytest.raises(VaedemoError, match="pass one with --checkpoint"):
        app.create([], checkpoint_dir=tmp_path)
    assert app.main(["--checkpoint", str(tmp_path / "nowhere")]) == 2


def test_command_line_honours_gradio_environment(monkeypatch):
    import app

    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    a = app.parse_args(["--checkpoint", "x", "--checkpoint", "hf://org/repo"])
    assert (a.host, a.port, a.checkpoint, a.share) == ("0.0.0.0", 7999, ["x", "hf://org/repo"], False)
    assert app.parse_args(["--port", "8001", "--host", "localhost", "--share"]).port == 8001


def test_a_bad_port_in_the_environment_is_one_sentence_not_a_traceback_in_gradio(tmp_path):
    # Gradio reads $GRADIO_SERVER_PORT as a number when imported: a fresh interpreter, as a user would start it
    env = {**os.environ, "GRADIO_SERVER_PORT": "abc"}
    res = subprocess.run([sys.executable, str(ROOT / "app.py"), "--checkpoint", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "argument --port: invalid int value: 'abc'" in res.stderr


@pytest.mark.parametrize(
    "flags, sentence",
    [(["--device", "cuda:7"], "--device cuda:7"), (["--device", "gpu"], "must name a torch device"),
     (["--max-file-size", "50"], "whole number and a unit"), (["--port", "99999"], "--port must be from 1 to 65535"),
     # overflowed the JSON Gradio sends the page, reported as "localhost is not accessible"
     (["--max-file-size", "99999999999999999999gb"], "--max-file-size must be at most 1tb; got '99999999999999999999gb'."),
     (["--host", "999.1.1.1"], "--host 999.1.1.1 is not an address or a name of this machine"),
     (["--host", "192.0.2.1"], "cannot serve on 192.0.2.1:7860"), (["--threads", "0"], "--threads must be at least 1"),
     (["--data", "/nonexistent"], "--data /nonexistent is not a folder"),
     # each of these started (or loaded the models) before failing: every reconstruction for --max-seconds inf or nan,
     # int() for --max-temp-mb nan or inf, "can't start new thread" for --threads 100000
     (["--max-seconds", "inf"], "--max-seconds must be above 0 and at most 1800 (the longest audio a model takes), "
      "got inf."), (["--max-seconds", "nan"], "--max-seconds must be above 0 and at most 1800"),
     (["--max-seconds", "3600"], "--max-seconds must be above 0 and at most 1800"),
     (["--max-temp-mb", "nan"], "--max-temp-mb must be a finite number of megabytes above 0, got nan."),
     (["--max-temp-mb", "inf"], "--max-temp-mb must be a finite number of megabytes above 0, got inf."),
     (["--threads", "100000"], "--threads must be at least 1 and at most"), (["--per-client", "0"], "--per-client")],
)  # fmt: skip
def test_settings_this_machine_cannot_use_are_one_sentence(tmp_path, capsys, flags, sentence):
    import app

    assert app.main(["--checkpoint", str(tmp_path / "nowhere"), *flags]) == 2
    err = capsys.readouterr().err
    assert sentence in err and err.count("\n") == 1


def test_a_port_in_use_is_one_sentence_before_the_models_load(tmp_path, capsys):
    import socket

    import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert app.main(["--checkpoint", str(tmp_path / "nowhere"), "--port", str(port)]) == 2
    assert capsys.readouterr().err == f"error: port {port} is in use on 127.0.0.1; stop what serves there or pass " \
                                      "another --port.\n"  # fmt: skip


def test_model_info(state):
    summary, card, flow = model_info(state, "tiny_single_flow")
    assert "16-d latent" in summary and "flow prior" in summary and flow is True
    assert "## Parameters" in card and "## Model config" in card
    assert model_info(state, "tiny_temporal")[2] is False


# ---------------------------------------------------------------------------------------------------- reconstruct
@pytest.mark.parametrize(
    "name, rate, frames, channels",
    [("8k", 8000, 8000, 1), ("96k", 96000, 48000, 1), ("24bit", SR, 22050, 1), ("six_channels", SR, 5000, 6),
     ("one_sample", SR, 1, 1), ("silence", SR, SR, 1), ("stereo", SR, 30000, 2), ("truncated", SR, 11014, 1),
     ("mp3", SR, None, 1)],
)  # fmt: skip
@pytest.mark.parametrize("model", ["tiny_single_flow", "tiny_temporal"])
def test_reconstruct_keeps_rate_length_and_channels(state, files, name, rate, frames, channels, model):
    if name not in files:
        pytest.skip("ffmpeg is not installed")
    out, fig_in, fig_out, table, metrics = reconstruct(state, str(files[name]), model)
    info = sf.info(out)
    expected = frames if frames is not None else sf.info(files[name]).frames
    assert (info.samplerate, info.frames, info.channels) == (rate, expected, channels)
    assert np.isfinite([metrics[k] for k in METRIC_LABELS]).all() and "SI-SDR" in table
    assert metrics["trimmed"] is False and metrics["seconds_used"] == pytest.approx(expected / rate, abs=1e-3)
    z_in, z_out = fig_in.data[0].z, fig_out.data[0].z
    assert z_in.shape[0] <= plots.MAX_MELS and z_in.shape[1] <= plots.MAX_FRAMES and z_in.dtype == np.int8
    assert (fig_in.data[0].zmin, fig_in.data[0].zmax) == (fig_out.data[0].zmin, fig_out.data[0].zmax)  # one scale
    assert z_out.shape == z_in.shape


@pytest.mark.parametrize(
    "name, message",
    [("empty", "empty.wav is an empty file."), ("text", "text.wav could not be decoded as audio"),
     ("truncated_header", "truncated_header.wav could not be decoded as audio"),
     ("nan", "nan.wav contains NaN or infinite samples.")],
)  # fmt: skip
def test_reconstruct_refuses_bad_files_with_one_sentence(state, files, name, message):
    with pytest.raises(gr.Error) as e:
        reconstruct(state, str(files[name]), "tiny_single_flow")
    assert e.value.message.startswith(message) and e.value.message.count(". ") == 0


def test_reconstruct_without_input_or_with_an_unknown_model(state, files):
    with pytest.raises(gr.Error, match="Upload or record a sound first."):
        reconstruct(state, None, "tiny_single_flow")
    with pytest.raises(gr.Error, match="There is no model called 'gone'"):
        reconstruct(state, str(files["stereo"]), "gone")


def test_long_input_is_trimmed_with_a_warning(state, files):
    with pytest.warns(UserWarning, match=r"long.wav is 5.0 s long; only the first 3 s are used."):
        out, _, _, table, result = reconstruct(state, str(files["long"]), "tiny_temporal")
    assert sf.info(out).frames == 3 * SR
    assert "only the first 3 s are used" in table  # the page says so below the metrics, the API in its result
    assert (result["trimmed"], result["seconds_used"], result["seconds_in_file"]) == (True, 3.0, 5.0)


@pytest.mark.parametrize("model", ["tiny_single_flow", "tiny_stereo"])
def test_many_channels_at_a_high_rate_are_reconstructed_two_at_a_time(state, tmp_path, model):
    x = noise(4800, 5)
    sf.write(tmp_path / "wide.wav", x, 96000, subtype="FLOAT")
    out, fig_in, _, _, result = reconstruct(state, str(tmp_path / "wide.wav"), model)
    info = sf.info(out)
    assert (info.samplerate, info.frames, info.channels) == (96000, 4800, 5)
    eng = state.models.get(model)
    whole = eng.reconstruct(x, 96000)  # the engine's own channel grouping: the same result
    assert np.allclose(sf.read(out, dtype="float32")[0], whole, atol=2 / 32768)
    assert "96000 Hz, 5 ch. (mix)" in fig_in.layout.title.text and not result["trimmed"]


def test_the_reconstruction_plays_as_decoded_and_the_table_gives_both_peaks(state, tmp_path):
    quiet = noise(9000, amp=0.01)
    sf.write(tmp_path / "quiet.wav", quiet, SR, subtype="FLOAT")
    out, _, _, table, _ = reconstruct(state, str(tmp_path / "quiet.wav"), "tiny_temporal")
    expected = state.models.get("tiny_temporal").reconstruct(quiet, SR)
    got, _ = sf.read(out, dtype="float32", always_2d=True)
    assert sf.info(out).subtype == "PCM_16" and np.abs(got - expected).max() <= 1 / 32768 + 1e-6  # no normalisation
    shown = lambda a: f"{20 * np.log10(np.abs(a).max()):.0f} dBFS".replace("-", "−")
    assert f"| peak, input → reconstruction | {shown(quiet)} → {shown(expected)} |" in table
    loud = TempFiles().wav(np.full((100, 1), 1.5, np.float32), SR, "loud")
    assert sf.info(loud).subtype == "FLOAT" and sf.read(loud)[0].max() == 1.5  # beyond full scale: float, unclipped


@pytest.mark.parametrize("model", ["tiny_single_flow", "tiny_temporal", "tiny_stereo"])
def test_the_latent_search_refines_short_sounds_and_says_so(state, files, model):
    plain_out, _, _, _, plain = reconstruct(state, str(files["stereo"]), model)
    out, _, _, table, result = reconstruct(state, str(files["stereo"]), model, refine=True)
    assert result["refine_steps"] == REFINE_STEPS and plain["refine_steps"] == 0
    assert f"Latent searched for {REFINE_STEPS} steps" in table
    typical = reconstruct(state, str(files["stereo"]), model, with_typicality=True, refine=True)[5]
    scored = typicality.available(state.models.get(model))  # one vector per clip and a flow prior
    assert typical.endswith("Scored: the encoder's latent, before the search.") == scored
    got, want = sf.read(out, dtype="float32")[0], sf.read(plain_out, dtype="float32")[0]
    assert got.shape == want.shape and np.abs(got - want).max() > 1e-3  # other latents, another sound


def test_the_latent_search_is_bounded_and_says_why_it_did_not_run(state, files, tmp_path):
    sf.write(tmp_path / "four.wav", noise(SR // 2, 4) * 0, SR)  # half a second of 4 channels fits
    assert reconstruct(state, str(tmp_path / "four.wav"), "tiny_temporal", refine=True)[4]["refine_steps"] > 0
    sf.write(tmp_path / "wide.wav", noise(2 * SR, 6), SR)  # 2 s x 6 channels through a mono model: 12 s decoded
    out, _, _, table, result = reconstruct(state, str(tmp_path / "wide.wav"), "tiny_temporal", refine=True)
    assert result["refine_steps"] == 0 and sf.info(out).channels == 6
    assert f"takes up to {REFINE_SECONDS:g} s of audio (channels counted) and this input has 12.0 s" in table
    loop = noise(int(2.5 * SR))  # a one-shot model decodes a performance hit by hit: not searched
    sf.write(tmp_path / "loop.wav", loop, SR)
    out, _, _, table, result = reconstruct(state, str(tmp_path / "loop.wav"), "tiny_single_flow", refine=True)
    assert result["refine_steps"] == 0 and "reconstructed hit by hit in one pass" in table
    assert result["refine_note"] in table  # the API says what the page says
    plain = state.models.get("tiny_single_flow").reconstruct(loop, SR)
    assert np.abs(sf.read(out, dtype="float32", always_2d=True)[0] - plain).max() <= 1 / 32768 + 1e-6
    with pytest.raises(gr.Error) as e:
        reconstruct(state, str(files["stereo"]), "tiny_temporal", refine="maybe")
    assert e.value.message == "The latent search switch (refine) must be true or false, got 'maybe'."


def test_stereo_model_keeps_stereo(state, files):
    out, *_ = reconstruct(state, str(files["stereo"]), "tiny_stereo")
    assert sf.info(out).channels == 2
    out, *_ = reconstruct(state, str(files["24bit"]), "tiny_stereo")  # mono in, stereo model: stereo out
    assert sf.info(out).channels == 2


def age(path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_output_files_are_unique_and_cleaned_up():
    tmp = TempFiles(max_age=0)
    a, b = (tmp.wav(np.zeros((10, 1), np.float32), SR, "same") for _ in range(2))
    assert a != b and Path(a).parent == tmp.dir
    assert Path(get_upload_folder()).resolve() in Path(a).resolve().parents  # Gradio serves it without a copy
    assert tmp.sweep(force=True) == 0  # younger than the grace period: its request may not have fetched it yet
    for p in (a, b):
        age(p, GRACE_SECONDS + 1)
    assert tmp.sweep(force=True) == 2 and not Path(a).exists()
    tmp.close()
    assert not tmp.dir.exists()


def test_temporary_files_are_bounded_oldest_first(tmp_path):
    # the page's file and three of the wavs below (2000 bytes + header), each with its overhead
    tmp = TempFiles(max_bytes=5000 + 3 * 2044 + 4 * FILE_OVERHEAD_BYTES)
    page = tmp.dir / "example.flac"  # there when the server starts: kept whatever the bound, and counted
    page.write_bytes(b"x" * 5000)
    tmp.start(every=3600)
    paths = []
    for i in range(6):
        paths.append(Path(tmp.wav(np.zeros((1000, 1), np.float32), SR, f"out{i}")))
        age(paths[-1], 100 - i)  # out0 is the oldest
    tmp.sweep(force=True)
    assert [p.exists() for p in paths] == [False, False, False, True, True, True] and page.exists()
    assert tmp.total_bytes() <= tmp.max_bytes
    tmp.max_bytes = 10**9
    fresh = Path(tmp.wav(np.zeros((10, 1), np.float32), SR, "fresh"))
    age(fresh, 2 * 3600)
    assert tmp.sweep(force=True) == 1 and not fresh.exists()  # older than max_age
    tmp.close()


def test_many_tiny_uploads_are_bounded_by_count_and_their_cost_on_disk():
    """80 000 uploads of one byte each (Gradio's upload route takes 1000 files a request, outside any handler) passed
    the bound on bytes: 16 MB by size, 660 MB on disk, and every output's sweep walked them all."""
    tmp = TempFiles(max_bytes=10**9, max_files=20)
    uploads = []
    for i in range(50):  # as Gradio keeps them: a folder of its own each
        folder = tmp.dir / f"upload{i:02d}"
        folder.mkdir()
        uploads.append(folder / "a.wav")
        uploads[-1].write_bytes(b"x")
        age(uploads[-1], 100 - i)  # upload00 the oldest
    assert tmp.total_bytes() == 50 * (1 + FILE_OVERHEAD_BYTES)
    assert tmp.sweep(force=True) == 30 and [p.exists() for p in uploads] == [False] * 30 + [True] * 20
    tmp.max_files, tmp.max_bytes = 10**6, 10 * (1 + FILE_OVERHEAD_BYTES)
    assert tmp.sweep(force=True) == 10 and sum(p.exists() for p in uploads) == 10
    tmp.close()


def test_an_upload_is_admitted_where_old_files_can_make_room_for_it():
    """Uploads arrive before any handler: one is admitted while the files no sweep may delete yet (within the grace
    period), what admitted uploads have yet to send and itself fit the bound; older files are deleted to make room."""
    kb = 1000 + FILE_OVERHEAD_BYTES  # a 1000-byte file as the bound counts it
    tmp = TempFiles(max_bytes=4 * kb)
    old = [tmp.dir / f"old{i}" for i in range(2)]
    for i, path in enumerate(old):
        path.write_bytes(b"x" * 1000)
        age(path, 100 - i)
    young = tmp.dir / "young"
    young.write_bytes(b"x" * 1000)
    assert tmp.admit_upload(kb)  # within the bound as it is
    assert old[0].exists()
    assert tmp.admit_upload(kb)  # the oldest file goes
    assert not old[0].exists() and old[1].exists()
    assert tmp.admit_upload(kb)  # the next one
    assert not old[1].exists() and young.exists()
    assert not tmp.admit_upload(kb)  # the young file and three to come: one more passes the bound
    (tmp.dir / "arrived").write_bytes(b"x" * 1000)  # one of them arrives: a young file
    tmp.upload_received(kb)
    tmp.upload_done(0)
    assert not tmp.admit_upload(kb)
    age(young, 100)
    assert tmp.admit_upload(kb) and not young.exists()  # old now: deleted to make room
    tmp.close()


def test_an_arriving_upload_is_counted_once():
    """Gradio writes an upload as it arrives: its bytes so far were counted as a young file and again as
    reserved, and valid uploads were refused at about half the bound."""
    tmp = TempFiles(max_bytes=2600 + FILE_OVERHEAD_BYTES)  # one file's overhead: the arriving one's
    assert tmp.admit_upload(1000) and tmp.admit_upload(1000)
    (tmp.dir / "tmp-arriving").write_bytes(b"x" * 600)  # the first, part way
    tmp.upload_received(600)
    tmp.sweep(force=True)
    assert tmp.admit_upload(600)  # 600 there, 400 and 1000 to come, and 600: the bound exactly
    assert not tmp.admit_upload(1)
    tmp.upload_done(400)  # the first fails part way: what it never sent is free again
    assert tmp.admit_upload(400) and not tmp.admit_upload(1)
    tmp.close()


def test_an_upload_that_pauses_keeps_its_file_while_it_may_still_arrive():
    """Gradio writes an arriving upload to a "tmp..." file at the top of its folder; an upload may pause for 30 s
    before it is cut off, and a sweep deleted its file after the 3 s every other file is kept."""
    from vaedemo.demo.files import UPLOAD_PAUSE_SECONDS

    tmp = TempFiles(max_bytes=1000 + FILE_OVERHEAD_BYTES)
    arriving, output = tmp.root / "tmpab12cd", tmp.dir / "old.wav"
    for path in (arriving, output):
        path.write_bytes(b"x" * 1000)
        age(path, GRACE_SECONDS + 5)
    tmp.sweep(force=True)  # over the bound: the old output goes, the paused upload stays
    assert arriving.exists() and not output.exists()
    tmp.max_bytes = 0
    tmp.sweep(force=True)
    assert arriving.exists()
    age(arriving, UPLOAD_PAUSE_SECONDS + 1)
    tmp.sweep(force=True)
    assert not arriving.exists()  # cut off by now: its file is any old file
    tmp.close()


def test_an_upload_that_stops_sending_is_cut_off_and_its_place_freed(monkeypatch):
    """A connection that claimed a length and sent nothing held its place in the bound for as long as it stayed
    open (uvicorn has no timeout on reading a body)."""
    import asyncio

    from vaedemo.demo import bodies

    monkeypatch.setattr(bodies, "STALL_SECONDS", 0.2)
    tmp = TempFiles(max_bytes=10**6)

    async def reads_the_body(scope, receive, send):  # as Gradio's upload route does, then answers
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def one_part_then_nothing():
        if not sent:
            sent.append(1)
            return {"type": "http.request", "body": b"x" * 100, "more_body": True}
        await asyncio.sleep(60)

    sent, replies = [], []

    async def reply(message):
        replies.append(message)

    scope = {"type": "http", "path": "/gradio_api/upload", "headers": [(b"content-length", b"1000")]}
    middleware = bodies.RequestBodies(reads_the_body, tmp, max_file_size=10**6)
    asyncio.run(asyncio.wait_for(middleware(scope, one_part_then_nothing, reply), 10))
    assert replies[0]["status"] == 408 and replies[1]["body"].startswith(b"The upload stopped arriving")
    assert tmp._incoming == 0 and tmp.admit_upload(10**6 - FILE_OVERHEAD_BYTES - 100)  # only what came counts
    tmp.close()


# ---------------------------------------------------------------------------------------------------- sample
def test_sample_gallery_is_deterministic_and_switches_prior(state):
    paths, figs = sample(state, 3, 0.8, 5, True, "tiny_single_flow")
    assert len(paths) == len(figs) == 3
    # one colour bar, the last figure's, and every figure its room: spectrograms of one width
    assert [f.data[0].showscale for f in figs] == [False, False, True]
    assert all(f.layout.margin.r == COLOUR_BAR_PX and f.layout.margin.autoexpand is False for f in figs)
    assert all((sf.info(p).samplerate, sf.info(p).frames) == (SR, 16384) for p in paths)
    again, _ = sample(state, 3, 0.8, 5, True, "tiny_single_flow")
    gauss, _ = sample(state, 3, 0.8, 5, False, "tiny_single_flow")
    first = sf.read(paths[0])[0]
    assert np.array_equal(first, sf.read(again[0])[0]) and not np.array_equal(first, sf.read(gauss[0])[0])
    temporal, _ = sample(state, 2, 1.0, 0, True, "tiny_temporal")  # no flow prior: the switch is ignored
    assert len(temporal) == 2


@pytest.mark.parametrize("n, temperature, seed, message", [(0, 1, 0, "between 1 and 8"), (9, 1, 0, "between 1 and 8"),
                                                          (2, 5.0, 0, "temperature must be between 0 and 3"),
                                                          (2, 1.0, "abc", "seed must be a number")])  # fmt: skip
def test_sample_refuses_bad_settings(state, n, temperature, seed, message):
    with pytest.raises(gr.Error, match=message):
        sample(state, n, temperature, seed, True, "tiny_single_flow")


@pytest.mark.parametrize("model", ["tiny_single_flow", "tiny_temporal"])
def test_latent_directions(state, model):
    labels = direction_labels(state, model)
    assert len(labels) == 4 and labels[0].startswith("Direction 1 (")
    assert state.models.directions(model) is state.models.directions(model)  # PCA computed once per model
    still, _ = move(state, 2, 1.0, 3, True, model, 0, 0, 0, 0)
    moved, fig = move(state, 2, 1.0, 3, True, model, 2.0, 0, -1.0, 0)
    first = sample(state, 2, 1.0, 3, True, model)[0][0]
    assert np.allclose(sf.read(still)[0], sf.read(first)[0], atol=1e-4)  # zero offsets: sample 1 itself
    assert not np.allclose(sf.read(moved)[0], sf.read(still)[0]) and "directions 1 +2.0, 3 −1.0 std" in fig.layout.title.text


# ---------------------------------------------------------------------------------------------------- interpolate
@pytest.mark.parametrize("model", ["tiny_single_flow", "tiny_temporal"])
def test_interpolate_path_and_position(state, files, model):
    kick = str(ROOT / "examples" / "timgm6mb-standard_kick.flac")
    args = ("sound file", str(files["stereo"]), 0, "sound file", kick, 0)
    paths, fig = interpolate(state, *args, 4, "slerp", model)
    assert len(paths) == 4 and len(fig.data) == 4  # a row of 4 spectrograms in one figure
    start, _ = interpolate_at(state, *args, 0.0, "slerp", model)
    assert np.allclose(sf.read(start)[0], sf.read(paths[0])[0], atol=1e-4)
    end, _ = interpolate_at(state, *args, 1.0, "lerp", model)
    assert np.allclose(sf.read(end)[0], sf.read(paths[-1])[0], atol=1e-4)
    mixed, _ = interpolate(state, "prior sample", None, 3, "sound file", kick, 0, 3, "lerp", model)
    assert len(mixed) == 3


def test_a_temporal_path_between_sources_of_two_lengths_says_it_is_the_shorters(state, files, tmp_path):
    eng = state.models.get("tiny_temporal")
    sf.write(tmp_path / "long.wav", noise(3 * SR), SR)
    sf.write(tmp_path / "short.wav", noise(SR // 2), SR)
    args = ("sound file", str(tmp_path / "long.wav"), 0, "sound file", str(tmp_path / "short.wav"), 0, 3, "lerp")
    paths, _, notes = interpolate(state, *args, "tiny_temporal", with_typicality=True)
    frames = len(eng.encode(noise(SR // 2), SR))
    assert f"The path is as long as the shorter source: {frames * eng.hop / SR:.1f} s (A 3.0 s, B" in notes
    assert sf.info(paths[0]).frames == frames * eng.hop
    same = ("sound file", str(tmp_path / "long.wav"), 0, "sound file", str(tmp_path / "long.wav"), 0, 3, "lerp")
    assert "shorter source" not in interpolate(state, *same, "tiny_temporal", with_typicality=True)[2]


def test_a_long_paths_titles_give_bare_levels_and_the_axis_their_unit(state, files):
    """Eight steps' "−12 dBFS" titles ran into each other at 1280 px: there the axis says dBFS once."""
    kick = str(ROOT / "examples" / "timgm6mb-standard_kick.flac")
    args = ("sound file", str(files["stereo"]), 0, "sound file", kick, 0)
    for steps, unit_in_titles in ((WIDE_TITLES_STEPS, True), (WIDE_TITLES_STEPS + 1, False)):
        _, fig = interpolate(state, *args, steps, "slerp", "tiny_temporal", normalise=True)
        titles = [a.text for a in fig.layout.annotations]
        assert len(titles) == steps and all(re.fullmatch(r"\d\.\d\d<br>(−?\d+( dBFS)?|silent)", t) for t in titles)
        assert all(("dBFS" in t) == unit_in_titles for t in titles if "silent" not in t)
        assert ("dBFS" in fig.layout.xaxis.title.text) != unit_in_titles


@pytest.mark.parametrize("model", ["tiny_single_flow", "tiny_temporal"])
def test_interpolate_from_searched_latents(state, files, model, tmp_path):
    kick = str(ROOT / "examples" / "timgm6mb-standard_kick.flac")
    args = ("sound file", str(files["stereo"]), 0, "sound file", kick, 0)
    plain, _, plain_line = interpolate(state, *args, 3, "slerp", model, with_typicality=True)
    searched, _, line = interpolate(state, *args, 3, "slerp", model, with_typicality=True, refine=True)
    assert "searched" not in plain_line
    assert (f"\n\nThe latents of source A searched for {REFINE_STEPS} steps. The latents of source B searched for "
            f"{REFINE_STEPS} steps.") in line  # (then a temporal path's length, the shorter source's)
    assert not np.allclose(sf.read(searched[0])[0], sf.read(plain[0])[0], atol=1e-3)  # the path starts elsewhere
    cached = len(state.latents)
    start, _ = interpolate_at(state, *args, 0.0, "slerp", model, refine=True)  # the slider: the same latents, cached
    assert np.allclose(sf.read(start)[0], sf.read(searched[0])[0], atol=1e-4) and len(state.latents) == cached
    sf.write(tmp_path / "long.wav", noise(int(6.5 * SR)), SR)  # longer than the search's bound, not than the demo's
    roomy = DemoState(state.models, max_seconds=10.0)
    _, _, line = interpolate(roomy, "prior sample", None, 3, "sound file", str(tmp_path / "long.wav"), 0, 3, "lerp",
                             model, with_typicality=True, refine=True)  # fmt: skip
    assert re.search(rf"\n\nThe latent search takes up to {REFINE_SECONDS:g} s of audio \(channels counted\) and the "
                     r"sound for source B has 6\.[57] s: the encoder's latents were used\.( The path is as long|$)",
                     line)  # fmt: skip


def test_interpolate_ends_are_a_causal_models_reconstructions(tmp_path):
    # a temporal causal model's decoded audio lags its input (PQMF + one frame): the path drops the lag, as
    # Engine.reconstruct does, so that its first and last steps are the reconstructions of A and B
    import torch
    from e2e.bundles import APP_TINY

    from vaedemo.bundle import save_bundle
    from vaedemo.config import load_config
    from vaedemo.nn.vae import AudioVAE

    cfg = load_config(None, APP_TINY + ["name=tiny_causal", "model.latent_mode=temporal", "model.causal=true",
                                        "model.posterior_flow_layers=0", "model.prior_flow_layers=0"])  # fmt: skip
    torch.manual_seed(0)
    model = AudioVAE(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert model.delay > 0
    bundle = save_bundle(model, tmp_path / "tiny_causal", {"name": "tiny_causal", "data": "none"})
    specs, default = discover(tmp_path / "none", [str(bundle)])
    causal = DemoState(Models(specs, default))
    kick, hat = (str(ROOT / "examples" / f"timgm6mb-standard_{n}.flac") for n in ("kick", "open-hat"))
    paths, _ = interpolate(causal, "sound file", kick, 0, "sound file", hat, 0, 3, "lerp", default)
    for step, source in ((paths[0], kick), (paths[-1], hat)):
        rec = sf.read(reconstruct(causal, source, default)[0])[0]
        assert np.allclose(sf.read(step)[0][: len(rec)], rec, atol=1e-4)
    start, _ = interpolate_at(causal, "sound file", kick, 0, "sound file", hat, 0, 0.0, "lerp", default)
    assert np.allclose(sf.read(start)[0], sf.read(paths[0])[0], atol=1e-4)


def test_interpolate_needs_both_sources(state):
    with pytest.raises(gr.Error, match="Choose a sound for source B"):
        interpolate(state, "prior sample", None, 1, "sound file", None, 0, 5, "slerp", "tiny_single_flow")
    with pytest.raises(gr.Error, match="The number of steps must be between 2 and 8"):
        interpolate(state, "prior sample", None, 1, "prior sample", None, 2, 20, "slerp", "tiny_single_flow")
    with pytest.raises(gr.Error, match="The position must be between 0 and 1"):
        interpolate_at(state, "prior sample", None, 1, "prior sample", None, 2, 1.5, "slerp", "tiny_single_flow")


# ---------------------------------------------------------------------------------------------------- latent map
def test_latent_map_of_the_examples_is_coloured_by_the_manifest(state):
    fig, choices = latent_map(state, "examples", "kit", "tiny_single_flow")
    n_files = len(list((ROOT / "examples").glob("*.flac")))
    assert len(choices) == n_files + N_PRIOR  # the sounds, then the prior samples
    sounds = {t.name for t in fig.data if isinstance(t, go.Scatter)} - {"prior sample"}
    assert sounds == {"Standard (timgm6mb)", "TR 808 (timgm6mb)", "Standard (musescore)"}
    audio, spec, ringed = map_point(state, "examples", "2:1700000000", "kit", "tiny_single_flow")
    assert Path(audio).is_file() and Path(audio).parent == ROOT / "examples"
    assert choices[2][0].startswith(Path(audio).name) and ringed.data[-1].name == "selected"
    keys, _ = latent_map(state, "examples", "key", "tiny_temporal")
    names = [t.name for t in keys.data]
    assert "36 Bass Drum 1" in names and "42 Closed Hi-Hat" in names  # keys are categories with their GM names
    assert not any(getattr(t.marker, "showscale", None) for t in keys.data if isinstance(t, go.Scatter))
    families, _ = latent_map(state, "examples", "family", "tiny_single_flow")
    assert [t.name for t in families.data if isinstance(t, go.Scatter)] == [
        "kick", "snare", "hi-hat", "tom", "cymbal", "(none)", "prior sample"]  # fmt: skip  (none): the loop


def test_latent_map_without_manifest_and_errors(state):
    fig, choices = latent_map(state, "plain", "kit", "tiny_temporal")
    assert len(choices) == 4 and len(fig.data) == 1  # a temporal model: no prior samples, no shading
    with pytest.raises(gr.Error, match="holds 0 readable audio files"):
        latent_map(state, "tiny", "kit", "tiny_single_flow")
    with pytest.raises(gr.Error, match="no folder called 'x'"):
        latent_map(state, "x", "kit", "tiny_single_flow")
    with pytest.raises(gr.Error, match="The point must be between 0 and 3"):
        map_point(state, "plain", "7", "kit", "tiny_temporal")


# ---------------------------------------------------------------------------------------------------- page
def test_the_page_builds_with_named_api_endpoints(state):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. a handler wired with the wrong number of inputs
        blocks = build_demo(state)
    names = {fn.api_name for fn in blocks.fns.values() if fn.api_visibility == "public"}
    assert names == {"reconstruct", "sample", "interpolate"}
    # every audio input reaches a handler as a file path, decoded by vaedemo.audio within its budget: type "numpy"
    # would have Gradio run ffmpeg on a request's file unsandboxed (a playlist reads server files) and unbounded
    inputs = [b for b in blocks.blocks.values() if isinstance(b, gr.Audio) and b.interactive is not False]
    assert len(inputs) >= 5 and {b.type for b in inputs} == {"filepath"}


def test_a_fresh_page_and_a_change_of_model_send_one_queued_event_at_a_time(state):
    """Two queued events sent at once raced Gradio's event stream: the server closed the stream after the first one's
    result just as the second was accepted, the page (Gradio 6.31) did not open it again, and the second's outputs
    stayed pending for good (a CI run's fresh page waited 60 s). What runs at load, and what a change of model sets
    off, are one chain each."""
    blocks = build_demo(state)
    fns = list(blocks.fns.values())
    at_load = [fn for fn in fns if any(event == "load" for _, event in fn.targets)]
    assert [fn.name for fn in at_load] == ["apply"] and at_load[0].queue  # the link's settings first
    assert [fn.name for fn in fns if fn.trigger_after == at_load[0]._id] == ["on_model"]  # then the model's card
    picker = next(b._id for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "model-picker")
    on_change = [fn for fn in fns if (picker, "change") in fn.targets and fn.queue]
    assert [fn.name for fn in on_change] == ["on_model"]  # (the results are cleared outside the queue)
    chain, fn = [], on_change[0]
    while fn is not None:
        chain.append(fn.name)
        fn = next((f for f in fns if f.trigger_after == fn._id), None)
    assert chain == ["on_model", "another_model", "ui_map_on_screen"]  # the map follows the model once it is loaded


def test_spectrogram_display_is_small_for_long_audio():
    s = plots.display_spectrogram(noise(60 * SR, 2), SR)
    assert s.db.shape[0] == 64 and 300 < s.db.shape[1] <= 400 and s.db.dtype == np.int8
    assert plots.display_spectrogram(noise(1000), 1000).db.shape[0] < 64  # low rates: fewer mel bins, no error
    assert len(plots.spectrogram_figure(s, "x").to_json()) < 60_000


# ---------------------------------------------------------------------------------------------------- guards
@pytest.mark.parametrize(
    "value, message",
    [("abc", "The seed must be a number, got 'abc'."), ("1e400", "The seed must be between 0 and 2147483647, got '1e400'."),
     (float("nan"), "The seed must be a number, got nan."), ([3], "The seed must be a number, got [3]."),
     (None, "The seed must be a number, got None."), (-1, "The seed must be between 0 and 2147483647, got -1.")],
)  # fmt: skip
def test_settings_of_any_type_get_one_sentence(state, value, message):
    with pytest.raises(gr.Error) as e:
        sample(state, 1, 1.0, value, True, "tiny_single_flow")
    assert e.value.message == message
    assert sample(state, "2", " 0.5 ", "7", "true", "tiny_single_flow")[0]  # strings of numbers are numbers


def test_user_input_is_echoed_as_a_short_escaped_excerpt(state):
    for call in (lambda v: sample(state, 1, 1.0, 0, True, v), lambda v: sample(state, v, 1.0, 0, True, None),
                 lambda v: interpolate(state, "prior sample", None, 1, "prior sample", None, 2, 3, v, None),
                 lambda v: latent_map(state, v, "kit", None)):  # fmt: skip
        with pytest.raises(gr.Error) as e:
            call("\x1b[2J" + "x" * 100_000)
        assert len(e.value.message) < 200 and "x" * 56 not in e.value.message and "\x1b" not in e.value.message
    with pytest.raises(gr.Error, match="use_flow.* must be true or false"):
        sample(state, 1, 1.0, 0, {"a": 1}, None)


def test_a_result_of_a_model_the_page_switched_away_from_is_dropped(state, files, monkeypatch):
    """A change of model clears the results at once; a request still running on the model before returns "leave
    the outputs as they are" when it ends, so that its sound does not land under the new model's name. A choice
    recorded while a request on that same model runs (the change event goes outside the queue, after the Latent
    map's redraw on the new model may have started) drops nothing."""
    from types import SimpleNamespace

    import vaedemo.demo.reconstruct as reconstruct_tab

    blocks = build_demo(state)
    handler = {fn.name: fn.fn for fn in blocks.fns.values()}
    page = SimpleNamespace(client=SimpleNamespace(host="10.0.0.9"), session_hash="page-1")
    other = SimpleNamespace(client=SimpleNamespace(host="10.0.0.9"), session_hash="page-2")
    path, (first, second) = str(files["stereo"]), state.models.labels[:2]
    run = reconstruct_tab.reconstruct
    chosen_meanwhile = []  # (request, label) the next reconstruction records while it computes

    def reconstruct_while_the_page_chooses(*args, **kwargs):  # the page's picker changes while this one computes
        out = run(*args, **kwargs)
        while chosen_meanwhile:
            handler["on_another_model"](*chosen_meanwhile.pop())
        return out

    monkeypatch.setattr(reconstruct_tab, "reconstruct", reconstruct_while_the_page_chooses)

    def skipped(out):
        return [isinstance(v, dict) and v == gr.skip() for v in out]

    ran = handler["ui_reconstruct"](page, path, first, False)  # nothing chosen: the page's first model
    assert ran[0] is not None and not any(skipped(ran))
    chosen_meanwhile.append((page, second))  # the page switches while a request on `first` runs
    dropped = handler["ui_reconstruct"](page, path, first, False)
    assert len(dropped) == len(ran) and all(skipped(dropped))
    assert not any(skipped(handler["ui_reconstruct"](page, path, second, False)))  # the model now chosen
    assert not any(skipped(handler["ui_reconstruct"](page, path, first, False)))  # a request started after the switch
    chosen_meanwhile.append((page, first))  # recorded late, while a request on the model chosen runs: kept
    assert not any(skipped(handler["ui_reconstruct"](page, path, first, False)))
    chosen_meanwhile.append((other, second))  # another page's choice is its own
    assert not any(skipped(handler["ui_reconstruct"](page, path, first, False)))


def test_gate_limits_each_client_and_the_server():
    from types import SimpleNamespace

    from vaedemo.demo.guard import Gate

    def client(host):
        return SimpleNamespace(client=SimpleNamespace(host=host), session_hash="s")

    gate = Gate(concurrency=2, per_client=2, max_waiting=1)  # nothing below waits for a slot
    a, b = client("10.0.0.1"), client("10.0.0.2")
    with contextlib.ExitStack() as held:
        held.enter_context(gate(a))
        with pytest.raises(gr.Error, match="You already have 2 requests running or waiting; wait for one") as e:
            held.enter_context(gate(a, "model-load"))
            held.enter_context(gate(a))
        assert e.value.print_exception is False and gate.in_flight("ip:10.0.0.1") == 2
    with contextlib.ExitStack() as held:
        for c, pool in ((a, "compute"), (b, "compute"), (client("10.0.0.3"), "model-load")):
            held.enter_context(gate(c, pool))
        with pytest.raises(gr.Error, match="The server is busy"):  # 3 = concurrency + max_waiting
            held.enter_context(gate(client("10.0.0.4")))
    assert gate.in_flight() == 0


def test_a_request_that_fails_inside_the_gate_gives_its_place_back():
    """A handler's error (a refused input, a failed reconstruction) leaves the gate as a finished request does; kept
    counted, a client that failed per_client times was refused for good."""
    from types import SimpleNamespace

    from vaedemo.demo.guard import Gate

    gate = Gate(concurrency=1, per_client=2, max_waiting=1)
    a = SimpleNamespace(client=SimpleNamespace(host="10.0.0.1"), session_hash="s")
    for _ in range(3):
        with pytest.raises(VaedemoError, match="not audio"), gate(a):
            raise VaedemoError("the file is not audio.")
    assert gate.in_flight() == 0
    with gate(a):
        assert gate.in_flight("ip:10.0.0.1") == 1


def test_logins_from_the_command_line_and_the_environment():
    from vaedemo.demo.guard import parse_auth

    assert parse_auth(["ann:pa:ss"], "bob:x, cy:y\nd:z") == [("ann", "pa:ss"), ("bob", "x"), ("cy", "y"), ("d", "z")]
    assert parse_auth([], None) == []
    for bad in ("ann", "ann:", ":secret"):
        with pytest.raises(VaedemoError, match="user:password") as e:
            parse_auth([bad])
        assert "secret" not in str(e.value)
    with pytest.raises(VaedemoError, match="without a ':'"):  # it may be a password alone: nothing of it shown
        parse_auth(["hunter2"])


def test_a_message_quoting_markup_is_shown_as_text():
    """The page renders a toast's message as HTML: a file name or a link's value in it was markup there."""
    from vaedemo.demo.common import user_errors

    @user_errors
    def refuse():
        raise VaedemoError('<a href="https://evil.example">x</a>.wav is not audio & never was.')

    with pytest.raises(gr.Error) as e:
        refuse()
    assert e.value.message == '&lt;a href="https://evil.example">x&lt;/a>.wav is not audio & never was.'


def test_the_figure_of_a_sound_beyond_what_is_read_as_audio_is_drawn_clipped():
    """A prior sample at temperature 3 (which the API takes) peaked at 2.5e3: its figure failed with the sentence
    meant for an input, after the sound had been written."""
    x = np.sin(np.arange(SR) / 10.0).astype(np.float32)[:, None] * 2500
    x[100] = np.nan
    spec = plots.display_spectrogram(x, SR)
    assert spec.db.size and np.isfinite(spec.db).all()


def test_a_reconstruction_beyond_what_is_read_as_audio_still_gets_its_figures_and_metrics(state, tmp_path,
                                                                                        monkeypatch):  # fmt: skip
    """An input near the decoder's bound (1000) came back at 1.9e3: its sound was written, then the metrics refused it
    with the sentence meant for an input."""
    eng = state.models.get("tiny_temporal")
    loud = lambda x, sr, refine=0, max_hits=None: Reconstruction(np.full(x.shape, 2000.0, np.float32), None)
    monkeypatch.setattr(eng, "reconstruction", loud)
    sf.write(tmp_path / "loud.wav", noise(9000, amp=100.0), SR, subtype="FLOAT")
    out, fig_in, fig_out, table, result = reconstruct(state, str(tmp_path / "loud.wav"), "tiny_temporal")
    assert sf.read(out)[0].max() == 2000.0 and "| metric | value |" in table and np.isfinite(result["log_mel_l1"])


def test_a_performance_through_a_one_shot_model_says_it_was_rebuilt_hit_by_hit(state, tmp_path):
    """A loop dropped on the default model is cut at its onsets: the table says so, and which model follows loops."""
    eng = state.models.get("tiny_single_flow")
    sr = eng.sample_rate
    x = np.zeros((3 * eng.clip_length, 1), np.float32)
    rng = np.random.default_rng(0)
    for start in np.linspace(0.1, 0.9, 5) * len(x):
        n = int(0.05 * sr)
        x[int(start) : int(start) + n, 0] += (0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.01 * sr)))
    sf.write(tmp_path / "loop.wav", x, sr)
    *_, table, result = reconstruct(state, str(tmp_path / "loop.wav"), "tiny_single_flow")
    assert result["hits"] == eng.hits(x, sr) >= 5
    assert f"cut at {result['hits']} detected onsets and rebuilt hit by hit; for loops, **tiny_temporal**" in table
    *_, table, result = reconstruct(state, str(tmp_path / "loop.wav"), "tiny_temporal")
    assert result["hits"] is None and "hit by hit" not in table


def test_a_performance_of_many_channels_counts_the_hits_of_each_pair(state, tmp_path):
    """Two channels at a time, each pair cut at its own onsets: the count was the first pair's alone."""
    eng = state.models.get("tiny_single_flow")
    sr, n = eng.sample_rate, 3 * eng.clip_length
    x = np.zeros((n, 4), np.float32)
    rng = np.random.default_rng(1)
    for channel, count in ((0, 2), (2, 6)):  # few hits on the first pair, more on the second
        for start in np.linspace(0.1, 0.9, count) * n:
            m = int(0.05 * sr)
            x[int(start) : int(start) + m, channel] += 0.5 * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.01 * sr))
    sf.write(tmp_path / "wide.wav", x, sr)
    *_, table, result = reconstruct(state, str(tmp_path / "wide.wav"), "tiny_single_flow")
    assert result["hits"] == eng.hits(x[:, :2], sr) + eng.hits(x[:, 2:], sr) > eng.hits(x[:, :2], sr) + 1
    assert f"cut into {result['hits']} hits in all (two channels at a time" in table


def _four_channel_clicks(eng, tmp_path, clicks: int) -> tuple[np.ndarray, int]:
    """Three clips of four channels with ``clicks`` clicks on all of them, written to wide.wav: (audio, rate)."""
    sr, n = eng.sample_rate, 3 * eng.clip_length
    x = np.zeros((n, 4), np.float32)
    for start in np.linspace(0.1, 0.9, clicks) * n:
        x[int(start) : int(start) + 400] = 0.5
    sf.write(tmp_path / "wide.wav", x, sr)
    return x, sr


def test_a_performance_beyond_the_hits_a_request_may_rebuild_is_one_sentence(state, tmp_path, monkeypatch):
    """A one-vector model's work grows with the hits: 16 channels of hits every 60 ms took 32 s of a compute slot."""
    import vaedemo.demo.reconstruct as page

    eng = state.models.get("tiny_single_flow")
    x, sr = _four_channel_clicks(eng, tmp_path, 6)
    sf.write(tmp_path / "loop.wav", x[:, 0], sr)
    hits = eng.hits(x[:, :2], sr) + eng.hits(x[:, 2:], sr)
    monkeypatch.setattr(page, "MAX_HITS", hits)
    assert reconstruct(state, str(tmp_path / "wide.wav"), "tiny_single_flow")[4]["hits"] == hits
    monkeypatch.setattr(page, "MAX_HITS", hits - 1)  # the second pair goes over
    with pytest.raises(gr.Error, match=f"wide.wav holds more than {hits - 1} hits across its 4 channels: "
                                       "tiny_single_flow rebuilds a performance hit by hit.*tiny_temporal"):  # fmt: skip
        reconstruct(state, str(tmp_path / "wide.wav"), "tiny_single_flow")
    monkeypatch.setattr(page, "MAX_HITS", eng.hits(x[:, :1], sr) - 1)
    with pytest.raises(gr.Error, match=r"loop.wav holds more than \d+ hits: tiny_single_flow rebuilds"):
        reconstruct(state, str(tmp_path / "loop.wav"), "tiny_single_flow")


def test_a_performance_is_cut_at_its_onsets_once_per_request(state, tmp_path, monkeypatch):
    """The hit count comes with the reconstruction: the onsets of a 4-channel loop were found twice per pair (once
    to count the hits, once to cut them), 11 % of a 30 s loop's time."""
    eng = state.models.get("tiny_single_flow")
    x, sr = _four_channel_clicks(eng, tmp_path, 4)
    n = len(x)
    calls = []
    real = inference.detect_onsets
    monkeypatch.setattr(inference, "detect_onsets", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    *_, result = reconstruct(state, str(tmp_path / "wide.wav"), "tiny_single_flow")
    assert calls == [(n, 2), (n, 2)]  # one pair, then the other
    assert result["hits"] == eng.hits(x[:, :2], sr) + eng.hits(x[:, 2:], sr) >= 2
