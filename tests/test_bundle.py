import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import vaedemo
from vaedemo.bundle import load, save_bundle
from vaedemo.card import parameter_table
from vaedemo.errors import CheckpointError
from vaedemo.hub import BUNDLE_FILES, OPTIONAL_FILES
from vaedemo.nn.vae import AudioVAE


@pytest.fixture
def bundle_dir(tiny_config, tmp_path):
    cfg = tiny_config("single", flows=2)
    torch.manual_seed(0)
    model = AudioVAE(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # no zero-initialised layer left: round trips must carry real values
    return save_bundle(model, tmp_path / "bundle", {"name": "tiny", "metrics": {"val/stft_distance": 1.5}}), model


def _assert_same(model_a, model_b):
    sa, sb = model_a.state_dict(), model_b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    x = torch.randn(1, 1, 3000)
    with torch.no_grad():
        assert torch.equal(model_a.eval()(x, sample=False).audio, model_b.eval()(x, sample=False).audio)


def test_bundle_round_trips_bit_exactly(bundle_dir):
    path, model = bundle_dir
    assert sorted(p.name for p in path.iterdir()) == sorted(BUNDLE_FILES)
    bundle = vaedemo.load(path)
    _assert_same(model, bundle.model)
    assert bundle.config == model.cfg and bundle.meta["name"] == "tiny"
    assert "| total | AudioVAE |" in bundle.card and "val/stft_distance" in bundle.card
    assert not bundle.model.training
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o777 & ~mask  # a folder like any other the user makes (not mkdtemp's 0700)
    for f in path.iterdir():  # and files like any other (safetensors writes 0600: other users could not load them)
        assert f.stat().st_mode & 0o777 == 0o666 & ~mask, f.name


def test_bundle_from_hugging_face_cache_offline(bundle_dir, tmp_path, monkeypatch):
    """Builds the cache layout huggingface_hub writes (blobs, snapshots/<commit>, refs/main) and loads offline."""
    from fake_hub import offline_cache

    path, model = bundle_dir
    cache = tmp_path / "hf_cache"
    commit = offline_cache(cache, "someone/tiny-vae", path, BUNDLE_FILES, monkeypatch)
    snap = cache / "models--someone--tiny-vae" / "snapshots" / commit
    bundle = vaedemo.load("hf://someone/tiny-vae")
    _assert_same(model, bundle.model)
    assert bundle.path == snap
    assert vaedemo.load(f"hf://someone/tiny-vae@{commit}").path == snap
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        vaedemo.load("hf://someone/other-vae")
    for not_an_id in ("hf://no-slash", "hf:///x", "hf://../..", "hf://org/", "hf://a/b/c"):
        with pytest.raises(CheckpointError, match="not a Hub id"):
            vaedemo.load(not_an_id)
    for revision in ("../../models--someone--other/refs/main", "/tmp/ref", "main\nforged", "x" * 5000):
        with pytest.raises(CheckpointError, match="has a revision that is not a branch, tag or commit name") as e:
            vaedemo.load(f"hf://someone/tiny-vae@{revision}")
        assert "\n" not in str(e.value) and len(str(e.value)) < 200
    with pytest.raises(CheckpointError, match="is not a valid Hub id or revision") as e:
        vaedemo.load("hf://someone/" + "v" * 5000)
    assert len(str(e.value)) < 300


def test_other_format_version_is_refused(bundle_dir):
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    doc["format_version"] = 99
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="format version 99, but this vaedemo reads versions 1 to 2"):
        vaedemo.load(path)


def test_weights_that_do_not_fit_the_config(bundle_dir):
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    doc["model"]["latent_size"] = 16
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"do not fit its config \(\d+ tensors differ; first: .* wrong shape"):
        vaedemo.load(path)


def test_bad_config_and_missing_files(bundle_dir, tmp_path):
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    doc["model"]["bands"] = 3
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="model config this vaedemo cannot use: model.bands must be a power of two"):
        vaedemo.load(path)
    with pytest.raises(CheckpointError, match="not a bundle folder"):
        vaedemo.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        vaedemo.load(tmp_path / "empty")
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        vaedemo.load(path)


def test_loading_never_unpickles(bundle_dir, monkeypatch):
    path, _ = bundle_dir
    import pickle

    def boom(*a, **k):
        raise AssertionError("unpickling during bundle load")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(torch, "load", boom)
    vaedemo.load(path)


def test_parameter_table_sums(tiny_config):
    model = AudioVAE(tiny_config("temporal", flows=0).model)
    rows = parameter_table(model, depth=1)
    assert rows[-1][0] == "total"
    assert sum(n for _, _, n in rows[:-1]) == rows[-1][2]


def test_format_1_bundle_is_migrated(bundle_dir):
    """A format-1 config.json (one `config` with the audio format under `data` and the discriminator under `model`,
    `train.warmup_steps`) loads into the same model."""
    path, model = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    m = dict(doc["model"])
    data = {k: m.pop(k) for k in ("sample_rate", "channels", "clip_length")} | {"root": "somewhere"}
    m["discriminator"] = {"capacity": 2}
    old = {"format": "vaedemo-bundle", "format_version": 1, "meta": doc["meta"],
           "config": {"name": "old", "data": data, "model": m, "train": {"warmup_steps": 5}}}  # fmt: skip
    (path / "config.json").write_text(json.dumps(old))
    bundle = vaedemo.load(path)
    _assert_same(model, bundle.model)
    assert bundle.config == model.cfg
    assert bundle.training["train"] == {"vae_steps": 5, "discriminator": {"capacity": 2}}
    assert bundle.training["data"] == {"root": "somewhere"}


def test_training_keys_never_break_loading(bundle_dir):
    path, model = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    doc["training"] = {"train": {"a_key_from_the_future": 1, "vae_steps": "renamed later"}, "data": [1, 2]}
    (path / "config.json").write_text(json.dumps(doc))
    _assert_same(model, vaedemo.load(path).model)


def test_absurd_model_sizes_are_refused_before_building(bundle_dir):
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    doc["model"]["capacity"] = 4000  # within the per-key bound, but 8000-channel convs
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"describes a model of \d+ M parameters, above the limit"):
        vaedemo.load(path)


@pytest.mark.parametrize("key,value", [("latent_size", 10**9), ("capacity", 10**6), ("bands", 2**20)])
def test_absurd_config_values_are_refused_in_one_sentence(bundle_dir, key, value):
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    doc["model"][key] = value
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=rf"model.{key} must be at most \d+, got {value}"):
        vaedemo.load(path)


@pytest.mark.parametrize("key,value,message", [
    ("pqmf_attenuation", float("nan"), "model.pqmf_attenuation must be in"),
    ("pqmf_attenuation", 1e308, "model.pqmf_attenuation must be in"),
    ("kernel_size", -1, "model.kernel_size must be odd and positive"),
    ("dilations", [0, 3, 9], "model.dilations must be positive"),
    ("flow_hidden", -5, "model.flow_hidden must be positive"),
    ("flow_scale_bound", float("nan"), "model.flow_scale_bound must be in"),
    (None, [1, 2], "config.json has no model section \\(a mapping of the model's settings\\)"),
])  # fmt: skip
def test_hostile_config_values_are_refused_in_one_sentence(bundle_dir, key, value, message):
    """Values below a key's sense (a bundle from the Hub is a stranger's file): one sentence, not a traceback from
    the layer that meets them, nor a model that loads and decodes NaN."""
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    if key is None:
        doc["model"] = value
    else:
        doc["model"][key] = value
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=message):
        vaedemo.load(path)


def test_a_card_update_keeps_the_training_set_summary_and_new_weights_drop_it(bundle_dir, tmp_path):
    """evaluate --update-card re-saves a bundle with the same weights: its summary.* stays; a bundle re-exported with
    other weights (a training run's bundle/ after the next validation) loses the summary of the old weights."""
    path, model = bundle_dir
    copy = tmp_path / "b"
    shutil.copytree(path, copy)
    for name in OPTIONAL_FILES:
        (copy / name).write_text("summary of these weights")
    # the same tensors in another order: a card update still leaves the weight file as it was, byte for byte
    weights = load_file(str(copy / "model.safetensors"))
    save_file(dict(reversed(weights.items())), str(copy / "model.safetensors"), metadata={"format": "pt"})
    before = (copy / "model.safetensors").read_bytes()
    b = vaedemo.load(copy)
    save_bundle(b.model, copy, {**b.meta, "notes": "card updated"}, b.training)
    assert all((copy / name).read_text() == "summary of these weights" for name in OPTIONAL_FILES)
    assert (copy / "model.safetensors").read_bytes() == before and vaedemo.load(copy).meta["notes"] == "card updated"
    with torch.no_grad():
        next(b.model.parameters()).add_(1.0)
    save_bundle(b.model, copy, b.meta, b.training)
    assert not any((copy / name).exists() for name in OPTIONAL_FILES)


def test_a_card_names_the_decoders_branches():
    from vaedemo.card import _model_lines
    from vaedemo.config import ModelConfig

    assert not any("branches" in line for line in _model_lines(ModelConfig()))
    lines = _model_lines(ModelConfig(noise_bands=16, noise_hop=8, noise_relative=True, partials=32))
    branch = [line for line in lines if "branches" in line]
    assert branch == ["- decoder branches beside the conv stack: filtered noise, 16 magnitudes a band every 8 band "
                      "samples, relative to the stack's band level; a bank of 32 partials"]
    assert not any("encoder" in line for line in _model_lines(ModelConfig()))
    assert "- encoder: **spectral**" in "\n".join(_model_lines(ModelConfig(encoder="spectral", encoder_width=64)))


def test_a_save_killed_part_way_is_recovered(bundle_dir, tmp_path):
    """What a kill during save_bundle leaves: a half-written temporary folder (gone), the old bundle moved aside with
    its replacement never renamed in (back in place), one moved aside whose replacement arrived (gone)."""
    from vaedemo.bundle import recover_interrupted_saves

    path, _ = bundle_dir
    run = tmp_path / "run"
    (run / "bundles").mkdir(parents=True)
    shutil.copytree(path, run / ".bundle.old")  # killed between the two renames: no bundle in place
    (run / ".bundle-k3j2h1xx").mkdir()  # killed while writing
    shutil.copytree(path, run / "bundles" / "step-0000002")
    shutil.copytree(path, run / "bundles" / ".step-0000002.old")
    (run / "bundles" / ".step-0000004-a8d7f6gg").mkdir()
    (run / "notes-1").mkdir()  # not the saver's: left alone
    recover_interrupted_saves(run, "bundle")
    recover_interrupted_saves(run / "bundles", "step-")
    assert sorted(p.name for p in run.iterdir()) == ["bundle", "bundles", "notes-1"]
    assert [p.name for p in (run / "bundles").iterdir()] == ["step-0000002"]
    assert vaedemo.load(run / "bundle").meta["name"] == "tiny"


def _load_from(hub, cache, source: str = "hf://someone/vae"):
    """Load ``source`` in a fresh interpreter whose Hugging Face endpoint is the fake Hub (the endpoint is read when
    huggingface_hub is imported)."""
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(cache), HF_HUB_DISABLE_PROGRESS_BARS="1")
    env.pop("HF_HUB_OFFLINE", None)
    code = f"import vaedemo\ntry:\n    print(vaedemo.load({source!r}).path)\nexcept vaedemo.VaedemoError as e:\n    print(e)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout


def test_a_hub_bundle_comes_through_huggingface_hub_and_an_oversized_file_is_never_fetched(bundle_dir, tmp_path):
    from fake_hub import FakeHub

    path, _ = bundle_dir
    files = {name: (path / name).read_bytes() for name in BUNDLE_FILES}
    hub = FakeHub("someone/vae", files)
    try:
        out = _load_from(hub, tmp_path / "cache")
        assert "models--someone--vae/snapshots/" in out and sorted(hub.fetched) == sorted(BUNDLE_FILES)
    finally:
        hub.close()
    # the Hub gone (nothing listens at its address any more), HF_HUB_OFFLINE unset: the cache serves it, no traceback
    started = time.monotonic()
    assert "models--someone--vae/snapshots/" in _load_from(hub, tmp_path / "cache")
    assert time.monotonic() - started < 60  # one refused request, not five with backoff (27 s) before a traceback
    # the Hub lists the weights far larger than the model its config describes: refused before a byte of them
    hub = FakeHub("someone/vae", files, listed_sizes={"model.safetensors": 300_000_000})
    try:
        out = _load_from(hub, tmp_path / "cache2")
        assert "hf://someone/vae@c0ffee" in out and "holds a model.safetensors of 300.0 MB, more than the " in out
        assert "MB it can weigh, so it was not downloaded" in out and "model.safetensors" not in hub.fetched
    finally:
        hub.close()
    hub = FakeHub("someone/vae", files, listed_sizes={"README.md": 5_000_000})  # a card of 5 MB: refused unfetched
    try:
        assert "holds a README.md of 5.0 MB, more than the 1.0 MB it can weigh" in _load_from(hub, tmp_path / "cache3")
        assert hub.fetched == []
    finally:
        hub.close()


def test_a_bundle_file_linked_out_of_its_folder_is_refused(bundle_dir, tmp_path):
    """A bundle folder anyone hands over (a clone, an archive) could link its card to a secret of the server, which
    the demo would show on its page."""
    path, _ = bundle_dir
    secret = tmp_path / "secret.txt"
    secret.write_text("HF_TOKEN=hf_secret")
    (path / "README.md").unlink()
    (path / "README.md").symlink_to(secret)
    with pytest.raises(CheckpointError, match="README.md is not a file of the bundle"):
        vaedemo.load(path)
    (path / "README.md").unlink()
    (path / "notes.md").write_text("# a card kept under another name")
    (path / "README.md").symlink_to("notes.md")  # a link inside the bundle is its own file
    assert vaedemo.load(path).card == "# a card kept under another name"
    (path / "README.md").unlink()
    (path / "README.md").symlink_to(tmp_path)  # a folder
    with pytest.raises(CheckpointError, match="not a file of the bundle"):
        vaedemo.load(path)


def test_a_card_in_another_encoding_loads_and_an_oversized_one_is_refused(bundle_dir):
    path, _ = bundle_dir
    (path / "README.md").write_bytes("caf\xe9 au lait".encode("latin-1"))
    assert vaedemo.load(path).card == "caf\ufffd au lait"
    (path / "README.md").write_text("x" * 1_000_001)
    with pytest.raises(CheckpointError, match="README.md is larger than 1.0 MB"):
        vaedemo.load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": [1]}, "format_version that is not a whole number: \\[1\\]"),
        ({"format_version": "2"}, "format_version that is not a whole number: 2"),
        ({"format_version": True}, "format_version that is not a whole number: True"),  # JSON's true, not 1
        ({"format_version": 1, "config": {"model": [1]}}, "has a config.model that is not a mapping"),
        ({"format_version": 1, "config": {"data": ["sample_rate"]}}, "has a config.data that is not a mapping"),
        ({"format_version": 1, "config": {"train": "warmup_steps"}}, "has a config.train that is not a mapping"),
        ({"format_version": 1, "config": [1]}, "has a config that is not a mapping"),
        ({"format_version": 1}, "format-1 bundle has no config.model section"),  # (it built the default model)
        ({"format_version": 1, "config": {"data": {}, "model": None}}, "format-1 bundle has no config.model section"),
    ],
)  # fmt: skip
def test_a_malformed_config_is_one_sentence(bundle_dir, change, message):
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text()) | change
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=message):
        vaedemo.load(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (lambda t: t.replace('"model": {', '"model": {"latent_size": 3, ', 1), "writes the key 'latent_size' twice"),
        (lambda t: t.replace('"model": {', '"model": {}, "model": {', 1), "writes the key 'model' twice"),
        (lambda t: t.replace('"model": {', '"no_model": {', 1), "has no model section"),
        (lambda t: t.replace('"model": {', '"model": null, "no_model": {', 1), "has no model section"),
        (lambda t: t.replace('"meta": {', '"meta": "x", "no_meta": {', 1), "has a meta section that is not a mapping"),
        (lambda t: t.replace('"training": {', '"training": 7, "no_training": {', 1),
         "has a training section that is not a mapping"),
    ],
)  # fmt: skip
def test_a_config_that_json_would_read_one_way_silently_is_refused(bundle_dir, text, message):
    """JSON keeps the last of two equal keys, and a missing or empty model section read as every default: a bundle
    loaded with settings its file does not say (the YAML configs refuse the same since 2026-12-06)."""
    path, _ = bundle_dir
    (path / "config.json").write_text(text((path / "config.json").read_text()))
    with pytest.raises(CheckpointError, match=message):
        vaedemo.load(path)


def test_a_format_1_bundle_with_two_sample_rates_is_refused(bundle_dir):
    """Format 1 kept the audio format under ``data``; one that also says it under ``model`` took data's silently."""
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    model = dict(doc["model"], sample_rate=44100)
    legacy = {"format": "vaedemo-bundle", "format_version": 1, "meta": {},
              "config": {"model": model, "data": {"sample_rate": 22050}}}  # fmt: skip
    (path / "config.json").write_text(json.dumps(legacy))
    with pytest.raises(CheckpointError, match="sets both config.data.sample_rate and config.model.sample_rate"):
        vaedemo.load(path)


@pytest.mark.parametrize("depth", [600, 900])
def test_a_format_1_config_nested_deep_is_one_sentence(bundle_dir, depth):
    """json reads about 900 levels; the format-1 migration copied the document and failed at about 600 with a raw
    RecursionError, which also stopped the demo from starting."""
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    deep = "[" * depth + "]" * depth
    text = json.dumps({"format": "vaedemo-bundle", "format_version": 1, "meta": {}, "config": {"model": doc["model"],
                       "train": {"notes": "DEEP"}}}).replace('"DEEP"', deep)  # fmt: skip
    (path / "config.json").write_text(text)
    assert vaedemo.load(path).training["train"]["notes"] == json.loads(deep)  # the training's notes, carried over


@pytest.mark.parametrize("change", ["float16", "int32", "nan", "inf"])
def test_weights_of_another_type_or_not_finite_are_refused(bundle_dir, change):
    """Every type loaded (cast silently), and NaN or infinite weights decoded every sound to NaN."""
    path, model = bundle_dir
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(iter(state))
    if change in ("nan", "inf"):
        state[first].view(-1)[0] = float(change)
    else:
        state[first] = state[first].to(getattr(torch, change))
    save_file(state, str(path / "model.safetensors"))
    message = "are not all float32" if change in ("float16", "int32") else "hold values that are not finite"
    with pytest.raises(CheckpointError, match=message):
        vaedemo.load(path)


def test_a_config_nested_past_pythons_stack_is_not_json_to_us(bundle_dir):
    path, _ = bundle_dir
    (path / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(CheckpointError, match="is not valid JSON"):
        vaedemo.load(path)


def test_the_demo_skips_a_malformed_bundle_and_serves_the_others(bundle_dir, tmp_path):
    from vaedemo.demo.models import discover

    path, _ = bundle_dir
    shelf = tmp_path / "shelf"
    shutil.copytree(path, shelf / "good")
    shutil.copytree(path, shelf / "broken")
    doc = json.loads((shelf / "broken" / "config.json").read_text()) | {"format_version": {}}
    (shelf / "broken" / "config.json").write_text(json.dumps(doc))
    specs, default = discover(shelf)
    assert [s.label for s in specs] == ["good"] and default == "good"


def test_every_file_of_a_bundle_is_its_own_whoever_reads_or_copies_it(bundle_dir, tmp_path, capsys, monkeypatch):
    """A summary.json linked to a secret: not read by the latent map, not copied into the bundle by a card update (a
    copy turns the link into the secret's contents), not uploaded, and a summary written over it replaces the link."""
    import huggingface_hub

    from vaedemo.dataset_summary import JSON_FILE, LATENTS_FILE, read_summary
    from vaedemo.push_to_hub import main as push_main

    path, model = bundle_dir
    secret = tmp_path / "token"
    secret.write_text("hf_SECRET")
    (path / JSON_FILE).symlink_to(secret)
    (path / LATENTS_FILE).write_bytes(b"")
    with pytest.raises(CheckpointError, match="summary.json is not a file of the bundle"):
        read_summary(path)
    with pytest.raises(CheckpointError, match="summary.json is not a file of the bundle"):
        save_bundle(model, path, {"name": "card update"})  # the same weights: the summary would be kept
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda *a, **k: pytest.fail("the Hub was asked"))
    assert push_main([str(path), "org/repo"]) == 2
    assert "summary.json is not a file of the bundle" in capsys.readouterr().err
    from vaedemo.dataset_summary import TrainingSetSummary, write_summary

    victim = tmp_path / "bashrc"
    victim.write_text("export PATH")
    for planted in (".summary.json.tmp", ".summary.safetensors.tmp"):  # the names an earlier version wrote aside
        (path / planted).symlink_to(victim)
    write_summary(TrainingSetSummary(np.zeros((1, 4), np.float32), [{"file": "a.wav"}], "data/x", "z"), path)
    assert secret.read_text() == "hf_SECRET" and not (path / JSON_FILE).is_symlink()
    assert victim.read_text() == "export PATH" and read_summary(path).clips == [{"file": "a.wav"}]
    assert not [f for f in path.iterdir() if f.name.startswith(".summary") and not f.is_symlink()]  # nothing left aside


def test_files_larger_than_a_bundle_can_hold_are_refused_unread(bundle_dir):
    path, _ = bundle_dir
    config = path / "config.json"
    doc = json.loads(config.read_text())
    config.write_text(json.dumps(doc | {"meta": {"padding": "x" * 1_000_000}}))
    with pytest.raises(CheckpointError, match="config.json is larger than 1.0 MB"):
        vaedemo.load(path)
    config.write_text(json.dumps(doc))
    with open(path / "model.safetensors", "ab") as f:  # far more than the config's model can weigh
        f.truncate(50_000_000)
    with pytest.raises(CheckpointError, match="model.safetensors is larger than .* MB, more than a bundle's"):
        vaedemo.load(path)


def test_a_hub_snapshot_linking_outside_its_repos_cache_is_refused(bundle_dir, tmp_path, monkeypatch):
    from fake_hub import offline_cache

    path, _ = bundle_dir
    cache = tmp_path / "hf_cache"
    commit = offline_cache(cache, "someone/tiny-vae", path, BUNDLE_FILES, monkeypatch)
    card = cache / "models--someone--tiny-vae" / "snapshots" / commit / "README.md"
    secret = tmp_path / "secret.txt"
    secret.write_text("HF_TOKEN=hf_secret")
    card.unlink()
    card.symlink_to(secret)
    with pytest.raises(CheckpointError, match="README.md is not a file of the bundle"):
        vaedemo.load("hf://someone/tiny-vae")


def test_a_folder_laid_out_as_a_hub_snapshot_may_link_into_its_blobs_only(bundle_dir, tmp_path):
    """A snapshot of a cache anywhere (``hf download --cache-dir``) links its files into the repo's blobs; a folder
    handed over as ``models--x/snapshots/b`` showed a file beside them (README.md -> ../../secret.txt) as its card."""
    path, model = bundle_dir
    repo = tmp_path / "models--x"
    snapshot = repo / "snapshots" / "b"
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for f in path.iterdir():  # as huggingface_hub keeps them
        shutil.copy(f, repo / "blobs" / f.name)
        (snapshot / f.name).symlink_to(f"../../blobs/{f.name}")
    _assert_same(model, vaedemo.load(snapshot).model)
    (repo / "secret.txt").write_text("HF_TOKEN=hf_secret")
    (snapshot / "README.md").unlink()
    (snapshot / "README.md").symlink_to("../../secret.txt")
    with pytest.raises(CheckpointError, match="README.md is not a file of the bundle"):
        vaedemo.load(snapshot)


def test_a_config_without_a_format_version_says_so(bundle_dir):
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    del doc["format_version"]
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="config.json has no format_version."):
        vaedemo.load(path)


def test_a_model_whose_own_tables_are_huge_is_refused_before_building(bundle_dir):
    """The partial bank's frame table is a buffer kept out of the weights, of bands x 4 partials x partials x frame:
    6 GB at bands 128, partials 1024 and a ratio of 3, each within its key's bound and 17 M parameters."""
    path, _ = bundle_dir
    doc = json.loads((path / "config.json").read_text())
    doc["model"] |= {"bands": 128, "ratios": [3], "partials": 1024, "capacity": 1, "latent_size": 2,
                     "latent_mode": "temporal", "clip_length": 3840, "dilations": [1], "posterior_flow_layers": 0,
                     "prior_flow_layers": 0}  # fmt: skip
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"whose own tables hold \d+ M values, above the limit"):
        vaedemo.load(path)


def test_a_number_longer_than_python_reads_is_one_sentence(bundle_dir, tmp_path):
    from vaedemo.demo.models import discover

    path, model = bundle_dir
    shelf = tmp_path / "shelf"
    save_bundle(model, shelf / "good")
    text = (path / "config.json").read_text().replace('"format_version": 2', '"format_version": 2' + "0" * 5000, 1)
    (path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match="holds a number too long to read"):
        vaedemo.load(path)
    shutil.copytree(path, shelf / "broken")
    assert [s.label for s in discover(shelf)[0]] == ["good"]  # the other skipped (it stopped the demo's start)


def test_a_bundle_saved_as_dot_is_refused_in_one_sentence(bundle_dir, tmp_path, monkeypatch):
    """``export RUN .`` in an empty folder, and ``evaluate --checkpoint . --update-card`` inside a bundle, were a
    ValueError traceback ("PosixPath('.') has an empty name"), the latter after the whole evaluation; saved, the
    folder a shell is in would be replaced under it."""
    from vaedemo.evaluate import main as evaluate

    path, model = bundle_dir
    monkeypatch.chdir(path)
    for name in (".", "..", "sub/.."):
        with pytest.raises(CheckpointError, match=rf"{re.escape(name)} names a folder without its name; give it by name"):
            save_bundle(model, name)
    assert evaluate(["--checkpoint", ".", "--data", str(tmp_path / "none"), "--update-card"]) == 2  # before any work
    load(path)


def test_saving_over_anything_but_a_bundle_is_refused_and_it_stays(bundle_dir, tmp_path):
    """``export RUN OUT`` swapped the whole of OUT for the bundle: a run folder or a folder of bundles pointed at by
    mistake was deleted, a file moved aside."""
    path, model = bundle_dir
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match=r"run is not a bundle to replace \(.*run holds no config.json, so it is "
                                              r"not a vaedemo bundle\); give a new folder or a bundle."):  # fmt: skip
        save_bundle(model, run)
    assert (run / "notes.txt").read_text() == "mine" and (run / "checkpoints").is_dir()
    file = tmp_path / "model"
    file.write_text("mine")
    with pytest.raises(CheckpointError, match="exists and is not a folder"):
        save_bundle(model, file)
    assert file.read_text() == "mine"
    (path / ".git").mkdir()  # a clone of a Hub repo: replacing the folder would delete its history
    (path / ".gitattributes").write_text("*.safetensors filter=lfs")
    with pytest.raises(CheckpointError, match=r"holds .git and 1 more besides the bundle's files"):
        save_bundle(model, path, {"name": "again"})
    assert (path / ".git").is_dir() and vaedemo.load(path).meta["name"] == "tiny"
    (path / ".gitattributes").unlink()  # one foreign entry alone is refused as well
    with pytest.raises(CheckpointError, match=r"holds .git besides the bundle's files"):
        save_bundle(model, path, {"name": "again"})
    assert (path / ".git").is_dir() and vaedemo.load(path).meta["name"] == "tiny"
    shutil.rmtree(path / ".git")
    (path / ".summary.json.x1y2").write_text("")  # a killed summary's aside: this project's own, replaced with the rest
    save_bundle(model, path, {"name": "again"})  # a bundle (with a summary or not) is replaced as before
    assert vaedemo.load(path).meta["name"] == "again" and not (path / ".summary.json.x1y2").exists()
    other = tmp_path / "transformers-model"  # a config.json of something else: not ours to replace
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(CheckpointError, match=r"transformers-model is not a bundle to replace \(.* is not a vaedemo "
                                              r"bundle \(config.json has no"):  # fmt: skip
        save_bundle(model, other)
    assert json.loads((other / "config.json").read_text()) == {"model_type": "bert"}
    link = tmp_path / "latest"  # a link to a bundle: the link is replaced (twice), its target left as it is
    link.symlink_to(path)
    save_bundle(model, link, {"name": "linked"})
    save_bundle(model, link, {"name": "linked again"})
    assert not link.is_symlink() and vaedemo.load(link).meta["name"] == "linked again"
    assert vaedemo.load(path).meta["name"] == "again"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left aside
    # a run's own bundle folder is replaced whatever it holds: a file browser's .DS_Store, an emptied config.json
    (path / ".DS_Store").write_bytes(b"")
    (path / "config.json").write_text("")
    save_bundle(model, path, {"name": "the run's"}, own_folder=True)
    assert vaedemo.load(path).meta["name"] == "the run's" and not (path / ".DS_Store").exists()
    (tmp_path / "empty").mkdir()
    save_bundle(model, tmp_path / "empty")
    assert vaedemo.load(tmp_path / "empty").meta == {}


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_model_trained_in_another_precision_saves_a_float32_bundle_that_loads(tiny_config, tmp_path, dtype):
    """A run at trainer.precision 64-true left its weights float64 in the bundle: twice the size the loader allows."""
    model = AudioVAE(tiny_config("single", flows=2).model).to(dtype)
    path = save_bundle(model, tmp_path / "bundle")
    assert {t.dtype for t in load_file(path / "model.safetensors").values() if t.is_floating_point()} == {torch.float32}
    loaded = vaedemo.load(path).model
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a.float(), b), name


def test_a_save_beside_a_folder_that_cannot_be_written_is_refused_before_any_work(bundle_dir, tmp_path, monkeypatch):
    """The export and an evaluation's --update-card wrote only after their work, and failed then with a
    PermissionError traceback. The probe writes for real: os.access says yes to root wherever the file system says
    no (as it does in /sys, root or not)."""
    import tempfile

    from vaedemo.cli import check_outputs, check_writable
    from vaedemo.errors import VaedemoError

    _, model = bundle_dir
    try:
        Path(tempfile.mkdtemp(dir="/sys")).rmdir()
        pytest.skip("/sys takes new folders on this machine")
    except OSError:
        pass
    with pytest.raises(VaedemoError, match=r"/sys/a/bundle cannot be saved: /sys is not writable"):
        save_bundle(model, Path("/sys/a/bundle"))
    check_writable(tmp_path / "new" / "deeper", "a test")  # a folder to be made: its parent is probed, nothing left
    with pytest.raises(VaedemoError, match=r"--out /sys/report.md: /sys is not writable"):  # (the same probe)
        check_outputs(out="/sys/report.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
