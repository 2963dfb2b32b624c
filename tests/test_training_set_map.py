"""The training-set summary (written by ``python -m vaedemo.dataset_summary``, read without unpickling), GM drum
families, the latent map of a training set shaded by the prior's density with prior samples on it, and the page's
link parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import soundfile as sf
from e2e.bundles import tiny_bundles

from vaedemo.data.gm import FAMILIES, GM_DRUM_FAMILY, drum_family, drum_group, drum_name
from vaedemo.dataset_summary import FORMAT, JSON_FILE, LATENTS_FILE, main, prior_log_prob, read_summary
from vaedemo.demo import typicality
from vaedemo.demo.latent_map import (
    N_PRIOR,
    TRAINING_SET,
    _training_files,
    caption,
    latent_map,
    map_point,
    source_choices,
)
from vaedemo.demo.models import Models, discover
from vaedemo.demo.share import read_query
from vaedemo.demo.state import DemoState
from vaedemo.errors import VaedemoError

ROOT = Path(__file__).resolve().parents[1]
SR = 44100
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_gm_drum_keys_are_named_and_grouped_in_families():
    assert set(GM_DRUM_FAMILY) == set(range(35, 82)) and set(GM_DRUM_FAMILY.values()) == set(FAMILIES)
    assert [drum_family(k) for k in (35, "36", "38", 42, "46.0", 45, 49, 51, 54, 39)] == \
        ["kick", "kick", "snare", "hi-hat", "hi-hat", "tom", "cymbal", "cymbal", "percussion", "percussion"]  # fmt: skip
    assert drum_name("42") == "Closed Hi-Hat" and drum_name(81) == "Open Triangle"
    assert drum_family(34) is drum_family("x") is drum_family("36.5") is drum_name(82) is None
    # the distance map's kinds: percussion split by whether it rings at a pitch
    assert [drum_group(k) for k in (36, "63", 81, 56, 54, 39, 58, 42)] == ["kick", "pitched percussion", "pitched percussion",
        "pitched percussion", "other percussion", "other percussion", "other percussion", "hi-hat"]  # fmt: skip
    assert drum_group(34) is drum_group("x") is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny bundle 'trained on' a folder of 8 sounds with a manifest (kick and hi-hat keys), and that folder."""
    tmp = tmp_path_factory.mktemp("summary")
    data = tmp / "data"
    (data / "kit").mkdir(parents=True)
    rows = ["file,kit,program,key,velocity"]
    t = np.arange(SR // 2) / SR
    for i in range(8):
        key = 36 if i < 4 else 42
        tone = np.sin(2 * np.pi * (60 + 40 * i) * t) if key == 36 else np.random.default_rng(i).standard_normal(len(t))
        sf.write(data / "kit" / f"{key}_{i}.wav", (0.5 * tone * np.exp(-8 * t)).astype(np.float32), SR)
        rows.append(f"kit/{key}_{i}.wav,Kit,0,{key},{40 + 10 * i}")
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    (data / "notes.wav").write_text("not audio")  # skipped
    bundle = tiny_bundles(tmp / "bundles", ("tiny_single_flow",))["tiny_single_flow"]
    return bundle, data


def test_the_summary_command_writes_small_files_that_read_back_without_pickle(trained, capsys):
    bundle, data = trained
    assert main([str(bundle), "--data", str(data)]) == 0
    assert "8 clips" in capsys.readouterr().out
    doc = json.loads((bundle / JSON_FILE).read_text())
    assert [c["family"] for c in doc["clips"]] == ["kick"] * 4 + ["hi-hat"] * 4
    assert {c["split"] for c in doc["clips"]} <= {"train", "val"} and doc["clips"][0]["file"] == "kit/36_0.wav"
    s = read_summary(bundle, 16)
    assert s.latents.shape == (8, 16) and s.latents.dtype == np.float32 and s.column("key")[0] == "36"
    n_train = sum(c["split"] == "train" for c in doc["clips"])
    assert len(s.reference) == n_train and np.all(np.diff(s.reference) >= 0)
    assert (bundle / LATENTS_FILE).stat().st_size < 10_000
    with pytest.raises(VaedemoError, match="does not fit its model"):
        read_summary(bundle, 32)
    assert read_summary(data) is None  # a folder without a summary


def test_a_summary_of_another_folder_than_the_training_one_or_of_an_unreadable_split_is_refused(trained, tmp_path,
                                                                                               capsys):  # fmt: skip
    """--data of another folder while the training one is there replaced the summary (8 clips) with one of that folder;
    a bundle whose data.val_fraction is null was a TypeError traceback. Found by a helper's audit."""
    import shutil

    bundle, data = trained
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    other = tmp_path / "other"
    shutil.copytree(data, other)

    def trained_on(**data_keys):
        doc = json.loads((copy / "config.json").read_text())
        doc["training"]["data"] = {**(doc["training"].get("data") or {}), **data_keys}
        (copy / "config.json").write_text(json.dumps(doc))

    trained_on(root=str(data))
    before = (copy / JSON_FILE).read_bytes() if (copy / JSON_FILE).exists() else None
    assert main([str(copy), "--data", str(other)]) == 2
    assert capsys.readouterr().err == (f"error: {copy} was trained on {data}, not {other}: the summary describes its "
                                       "training set (its clips, their split, the typicality's reference); give --data "
                                       f"{data}.\n")  # fmt: skip
    assert ((copy / JSON_FILE).read_bytes() if (copy / JSON_FILE).exists() else None) == before
    trained_on(root=str(tmp_path / "moved away"))  # its training folder gone: the folder given is taken
    assert main([str(copy), "--data", str(other)]) == 0
    trained_on(root=str(data), val_fraction=None)
    assert main([str(copy), "--data", str(data)]) == 2
    assert "training config has a data section this vaedemo cannot read (data.val_fraction, data.split_seed)" in \
        capsys.readouterr().err  # fmt: skip


def test_the_reference_is_the_training_clips_log_density(trained):
    from vaedemo.inference import Engine

    bundle, data = trained
    main([str(bundle), "--data", str(data)])
    eng = Engine(str(bundle))
    s = read_summary(bundle, eng.latent_size)
    train = np.array([c["split"] == "train" for c in s.clips])
    np.testing.assert_allclose(s.reference, np.sort(prior_log_prob(eng, s.latents[train])), atol=2e-3)
    ref = typicality.reference(eng)
    assert ref.training and len(ref) == train.sum()
    z = s.latents[np.flatnonzero(train)[0]]  # a training clip ranks inside the reference
    assert 0 <= typicality.percentile(eng, z).percentile <= 100


def test_a_broken_summary_is_refused_with_a_sentence(tmp_path):
    from safetensors.numpy import save_file

    save_file({"latents": np.zeros((2, 4), np.float32)}, str(tmp_path / LATENTS_FILE))
    (tmp_path / JSON_FILE).write_text('{"format": "something else", "clips": []}')
    with pytest.raises(VaedemoError, match="does not fit"):
        read_summary(tmp_path)
    (tmp_path / JSON_FILE).write_text("{not json")
    with pytest.raises(VaedemoError, match="could not be read"):
        read_summary(tmp_path)
    # any shape of JSON is a sentence, never a traceback that would stop the latent map and typicality
    clips = '"clips": [{}, {}]'
    for text, message in [("[1, 2]", "does not fit"), ("[" * 100_000 + "]" * 100_000, "could not be read"),
                          (f'{{"format": "{FORMAT}", {clips}, "typicality_reference": [1]}}', None),
                          (f'{{"format": "{FORMAT}", {clips}, "typicality_reference": {{"log_prob": ["a"]}}}}',
                           "typicality reference that is not a list of numbers"),
                          (f'{{"format": "{FORMAT}", {clips}, "typicality_reference": {{"log_prob": [[1], 2]}}}}',
                           "typicality reference that is not a list of numbers")]:  # fmt: skip
        (tmp_path / JSON_FILE).write_text(text)
        if message is None:  # a reference that is not a mapping holds no reference
            assert read_summary(tmp_path).reference is None
        else:
            with pytest.raises(VaedemoError, match=message):
                read_summary(tmp_path)


def test_summary_latents_that_are_unreadable_or_not_finite_float32_are_refused(tmp_path):
    """A garbage or bfloat16 summary.safetensors raised safetensors' own error or a TypeError, which the demo did not
    catch (its typicality failed on every request), and NaN or integer latents were read as they were."""
    import torch
    from safetensors.numpy import save_file
    from safetensors.torch import save_file as save_torch

    (tmp_path / JSON_FILE).write_text(json.dumps({"format": FORMAT, "clips": [{}, {}]}))
    latents = tmp_path / LATENTS_FILE
    cases = [(lambda: latents.write_bytes(b"\x10" * 64), "could not be read"),
             # (bfloat16: unreadable to numpy alone; with ml_dtypes installed, as onnx installs it, read and refused)
             (lambda: save_torch({"latents": torch.zeros(2, 4, dtype=torch.bfloat16)}, str(latents)),
              "could not be read|not finite float32"),
             (lambda: save_file({"latents": np.full((2, 4), np.nan, np.float32)}, str(latents)), "not finite float32"),
             (lambda: save_file({"latents": np.zeros((2, 4), np.int32)}, str(latents)), "not finite float32")]  # fmt: skip
    for write, message in cases:
        write()
        with pytest.raises(VaedemoError, match=message):
            read_summary(tmp_path)
    save_file({"latents": np.zeros((2, 4), np.float32)}, str(latents))
    assert read_summary(tmp_path, 4).latents.shape == (2, 4)


def test_a_hub_bundle_offers_its_training_set_once_loaded(trained, tmp_path, monkeypatch):
    """An hf:// id's files are somewhere in the Hugging Face cache: known once the model is loaded, and then its
    training-set summary is offered like a folder's."""
    from fake_hub import offline_cache

    from vaedemo.hub import BUNDLE_FILES, OPTIONAL_FILES

    bundle, data = trained
    main([str(bundle), "--data", str(data)])
    offline_cache(tmp_path / "cache", "someone/mapped", bundle, BUNDLE_FILES + OPTIONAL_FILES, monkeypatch)
    specs, default = discover(ROOT / "no-such-folder", ["hf://someone/mapped"])
    state = DemoState(Models(specs, default), max_seconds=3.0, folders={"examples": ROOT / "examples"})
    assert source_choices(state, default) == ["examples"]  # not loaded yet: nothing known of its files
    state.models.get(default)
    assert source_choices(state, default) == [TRAINING_SET, "examples"]


@pytest.fixture(scope="module")
def map_state(trained):
    bundle, data = trained
    main([str(bundle), "--data", str(data)])
    specs, default = discover(ROOT / "no-such-folder", [str(bundle)])
    return DemoState(Models(specs, default), max_seconds=3.0, folders={"examples": ROOT / "examples"})


def test_the_training_set_map_is_shaded_by_the_exact_prior_density_with_prior_samples(map_state):
    assert source_choices(map_state, None) == [TRAINING_SET, "examples"]
    fig, choices = latent_map(map_state, TRAINING_SET, "family", None)
    assert len(choices) == 8 + N_PRIOR and choices[-1][0] == f"prior sample · seed {N_PRIOR - 1}"
    shading = fig.data[0]
    assert isinstance(shading, go.Contour) and np.asarray(shading.z).shape == (64, 64)
    names = [t.name for t in fig.data[1:]]
    assert names == ["kick", "hi-hat", "prior sample"] and fig.data[-1].marker.symbol == "diamond-open"
    assert list(fig.data[-1].customdata) == list(range(8, 8 + N_PRIOR))  # clicks index the sounds, then the samples
    m = map_state.maps[(map_state.models.default, TRAINING_SET)]
    eng = map_state.models.get(None)
    # the shading is log p at the grid's latents: the plane through the mean, spanned by the map's two directions
    z_mean = m.latents[:8].mean(0)
    top = np.unravel_index(np.argmax(m.shading.z), m.shading.z.shape)
    xy = m.xy[:8]
    comp = np.linalg.lstsq(xy - xy.mean(0), m.latents[:8] - z_mean, rcond=None)[0]  # (2, D): the projection's rows
    z_top = z_mean + m.shading.xs[top[1]] * comp[0] + m.shading.ys[top[0]] * comp[1]
    assert prior_log_prob(eng, z_top)[0] == pytest.approx(m.shading.z[top], abs=1e-2)
    text = caption(map_state, TRAINING_SET, None)
    assert "exact log-density" in text and "a slice" in text
    # prior sample k is the Sample tab's seed k
    np.testing.assert_allclose(m.latents[8 + 3], eng.sample_latents(1, 1.0, 3, True)[0], atol=1e-6)


def test_points_of_the_training_set_map_play(map_state):
    # the summary names its data folder by an absolute path here: not trusted, so its sounds play from their latents
    audio, spec, ringed = map_point(map_state, TRAINING_SET, "5:1", "family", None)
    x, sr = sf.read(audio, always_2d=True)
    eng = map_state.models.get(None)
    m = map_state.maps[(map_state.models.default, TRAINING_SET)]
    np.testing.assert_allclose(x, eng.decode(m.latents[5].astype(np.float32)), atol=1e-4)  # 16-bit wav
    assert "42_5.wav" in spec.layout.title.text and "decoded from its latent" in spec.layout.title.text
    assert ringed.data[-1].name == "selected"
    audio, spec, _ = map_point(map_state, TRAINING_SET, str(8 + 2), "family", None)
    assert Path(audio).is_file() and spec.layout.title.text.startswith("prior sample · seed 2")


def test_training_files_are_found_only_under_their_data_folder_in_the_repository():
    files = _training_files("examples", ["timgm6mb-standard_kick.flac", "../README.md", "missing.wav"])
    assert files == [ROOT / "examples" / "timgm6mb-standard_kick.flac", None, None]
    assert _training_files("/etc", ["passwd"]) == [None] and _training_files("../x", ["a.wav"]) == [None]
    for whole_repository in (".", "examples/..", "./"):  # a stranger's summary would open every audio file of it
        assert _training_files(whole_repository, ["examples/timgm6mb-standard_kick.flac"]) == [None]


def test_link_parameters_are_checked_and_bad_ones_ignored():
    ok, ignored = read_query({"model": "b", "tab": "sample", "seed": "7", "temperature": "0.8", "__theme": "dark"},
                             ["a", "b"], 9999, 2.0)  # fmt: skip
    assert ok == {"model": "b", "tab": "sample", "seed": 7, "temperature": 0.8} and ignored == []
    ok, ignored = read_query({"model": "../x", "tab": "nope", "seed": "1.5", "temperature": "nan"}, ["a"], 9999, 2.0)
    assert ok == {} and len(ignored) == 4 and ignored[2].startswith("seed='1.5' (expected a whole number")
    ok, ignored = read_query({"seed": "1e400", "temperature": "-0.1"}, ["a"], 9999, 2.0)
    assert ok == {} and len(ignored) == 2
    ok, ignored = read_query({"seed": "x" * 10_000}, ["a"], 9999, 2.0)
    assert ok == {} and len(ignored[0]) < 200  # a long value is echoed as a short excerpt
    assert read_query({"prior": "gaussian"}, ["a"], 9999, 2.0) == ({"prior": False}, [])
    assert read_query({"prior": "flow"}, ["a"], 9999, 2.0) == ({"prior": True}, [])
    assert read_query({"prior": "normal"}, ["a"], 9999, 2.0) == ({}, ["prior='normal' (expected flow or gaussian)"])


def test_a_links_prior_sets_the_switch_where_the_model_has_a_flow():
    from vaedemo.demo.share import prior_switch

    assert [prior_switch(True, p) for p in (None, True, False)] == [True, True, False]
    assert [prior_switch(False, p) for p in (None, True, False)] == [False, False, False]  # no flow: Gaussian only


def test_threads_below_one_or_beyond_any_machine_is_one_sentence(tmp_path, capsys):
    for threads in ("0", "100000"):  # (100000 failed to map the threads' memory: an ImportError in safetensors)
        assert main([str(tmp_path), "--data", str(tmp_path), "--threads", threads]) == 2
        assert capsys.readouterr().err == f"error: --threads must be from 1 to 256, got {threads}.\n"


def test_a_summary_written_half_way_keeps_the_old_pair(tmp_path, monkeypatch):
    """Both files are written aside before either replaces its own: a full disk between them would have paired new
    latents with the old clips (read back without complaint when the counts match)."""
    from vaedemo.dataset_summary import TrainingSetSummary, write_summary

    write_summary(TrainingSetSummary(np.zeros((2, 4), np.float32), [{"file": "a.wav"}, {"file": "b.wav"}], "old", "z"),
                  tmp_path)  # fmt: skip

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError):
        write_summary(TrainingSetSummary(np.ones((2, 4), np.float32), [{"file": "c.wav"}, {"file": "d.wav"}], "new", "z"),
                      tmp_path)  # fmt: skip
    monkeypatch.undo()
    kept = read_summary(tmp_path)
    assert kept.data == "old" and not kept.latents.any() and sorted(p.name for p in tmp_path.iterdir()) == [
        JSON_FILE, LATENTS_FILE]  # fmt: skip
