"""ONNX export: what onnxruntime computes from the files is what the bundle's model computes, at other batch sizes and
lengths than the export traced, and the command line refuses what it cannot write with one sentence."""

import json

import numpy as np
import pytest
import torch

from vaedemo.bundle import save_bundle
from vaedemo.cli import USER_ERROR
from vaedemo.export import main
from vaedemo.nn.vae import AudioVAE
from vaedemo.onnx_export import DECODE, ENCODE, INFO, STREAM_DECODE, STREAM_ENCODE, export_onnx

ort = pytest.importorskip("onnxruntime")  # (requirements-dev.txt has it; a user's install may not)


def _bundle(tiny_config, tmp_path, mode: str = "temporal", **model: object):
    cfg = tiny_config(mode, flows=2, **{f"model__{k}": v for k, v in model.items()})
    torch.manual_seed(0)
    vae = AudioVAE(cfg.model)
    with torch.no_grad():  # weights away from their initialisation, so that every path carries signal
        for p in vae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return vae.eval(), save_bundle(vae, tmp_path / "bundle")


def _run(path, name: str, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path))
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("model", [
    {"causal": True},
    {"causal": False, "channels": 2, "encoder": "spectral", "encoder_width": 8},
], ids=["causal", "stereo-spectral"])  # fmt: skip
def test_a_time_series_model_exports_for_any_batch_and_length(tiny_config, tmp_path, model):
    vae, bundle = _bundle(tiny_config, tmp_path, **model)
    out = export_onnx(bundle, tmp_path / "onnx")
    info = json.loads((out / INFO).read_text())
    assert info["hop"] == vae.hop and info["delay"] == vae.delay
    for batch, frames in [(1, 7), (3, 40)]:  # neither is what the export traced (two clips)
        x = (0.2 * np.random.default_rng(frames).standard_normal((batch, vae.channels, frames * vae.hop))).astype(np.float32)
        z = _run(out / ENCODE, "audio", x)
        with torch.no_grad():
            expected_z = vae.encode(torch.from_numpy(x)).numpy()
            expected_y = vae.decode(torch.from_numpy(z)).numpy()
        assert z.shape == (batch, info["latent_size"], frames)
        np.testing.assert_allclose(z, expected_z, atol=1e-4 * max(1.0, np.abs(expected_z).max()))
        y = _run(out / DECODE, "latents", z)
        assert y.shape == x.shape
        np.testing.assert_allclose(y, expected_y, atol=1e-4 * max(1e-3, np.abs(expected_y).max()))


def _two_stage_bundle(tmp_path, tmp_path_factory, drum_folder, *extra: str):
    """A tiny two-stage bundle over a backbone with a relative noise branch (the shipped default's kind)."""
    from conftest import tiny_backbone, tiny_overrides

    from vaedemo.config import load_config
    from vaedemo.training.twostage import build_two_stage

    noise = {"model__noise_bands": 2, "model__noise_hop": 4, "model__noise_relative": "true"}
    backbone = tiny_backbone(tmp_path_factory, drum_folder, "tiny noise", seed=1, **noise)
    overrides = tiny_overrides(drum_folder, tmp_path / "run", "twostage", 2) + [
        f"train.backbone={backbone}", "model.latent_size=6", "model.head_hidden=16", *extra]  # fmt: skip
    model, _ = build_two_stage(load_config(None, overrides))
    with torch.no_grad():  # stage two's own weights away from their initialisation too
        for name, p in model.named_parameters():
            if name.startswith(("encoder.head", "decoder.head", "latent")):
                p.add_(0.05 * torch.randn_like(p))
    return model.eval(), save_bundle(model, tmp_path / "bundle")


@pytest.mark.parametrize("mode", ["single", "twostage"])
def test_a_one_vector_model_exports_one_clip_per_vector(tiny_config, tmp_path, tmp_path_factory, drum_folder, mode):
    if mode == "single":
        vae, bundle = _bundle(tiny_config, tmp_path, "single")
    else:
        vae, bundle = _two_stage_bundle(tmp_path, tmp_path_factory, drum_folder)
    out = export_onnx(bundle, tmp_path / "onnx")
    info = json.loads((out / INFO).read_text())
    clip = info["clip_length"]
    assert clip == vae.cfg.clip_length
    x = (0.2 * np.random.default_rng(0).standard_normal((3, vae.channels, clip))).astype(np.float32)
    z = _run(out / ENCODE, "audio", x)  # three clips, where the export traced two
    with torch.no_grad():
        expected_z = vae.encode(torch.from_numpy(x)).numpy()
        expected_y = vae.decode(torch.from_numpy(z)).numpy()
    assert z.shape == (3, info["latent_size"])
    np.testing.assert_allclose(z, expected_z, atol=1e-4 * max(1.0, np.abs(expected_z).max()))
    y = _run(out / DECODE, "latents", z)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, expected_y, atol=1e-4 * max(1e-3, np.abs(expected_y).max()))


def test_the_command_line_writes_the_folder_and_refuses_one_holding_other_files(tiny_config, tmp_path, capsys,
                                                                                 monkeypatch):  # fmt: skip
    _, bundle = _bundle(tiny_config, tmp_path, causal=True)
    out = tmp_path / "onnx"
    assert main(["--onnx", str(bundle), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([ENCODE, DECODE, INFO])
    assert main(["--onnx", str(bundle), str(out)]) == 0  # an earlier export is replaced
    (out / "notes.txt").write_text("mine")
    assert main(["--onnx", str(bundle), str(out)]) == USER_ERROR
    assert "holds notes.txt, which replacing the folder would delete" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and (out / ENCODE).is_file()
    lone = tmp_path / "lone"  # a user's file named as an export's, no model.json beside it
    lone.mkdir()
    (lone / STREAM_ENCODE).write_text("mine")
    assert main(["--onnx", str(bundle), str(lone)]) == USER_ERROR
    assert f"holds {STREAM_ENCODE} without an export's {INFO}" in capsys.readouterr().err
    theirs = tmp_path / "theirs"  # a folder whose only file has an export's name but is the user's own
    theirs.mkdir()
    (theirs / INFO).write_text('{"mine": true}')
    assert main(["--onnx", str(bundle), str(theirs)]) == USER_ERROR
    assert f"holds a {INFO} that is not an ONNX export's" in capsys.readouterr().err
    assert (theirs / INFO).read_text() == '{"mine": true}'
    for where, says in [(tmp_path / "no" / "such", "is not a folder"), (bundle / "onnx", "lies inside the bundle's"),
                        (bundle, "lies inside the bundle's")]:  # fmt: skip
        assert main(["--onnx", str(bundle), str(where)]) == USER_ERROR
        assert says in capsys.readouterr().err
    with pytest.raises(SystemExit):  # another export's option: refused, not ignored
        main(["--onnx", str(bundle), str(tmp_path / "other"), "--name", "x"])
    assert "--onnx takes BUNDLE and OUT_FOLDER alone, or with --streaming" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")  # "." names no folder to write aside and rename: refused before the work
    assert main(["--onnx", str(bundle), "."]) == USER_ERROR
    assert "a folder of their own" in capsys.readouterr().err
    assert sorted(p.name for p in bundle.iterdir()) == sorted(["config.json", "model.safetensors", "README.md"])


@pytest.mark.parametrize("branch,model", [("a noise branch", {"noise_bands": 4, "noise_hop": 2}),
                                          ("a partial bank", {"partials": 4})])  # fmt: skip
def test_a_time_series_model_with_a_bank_per_length_is_refused_in_one_sentence(tiny_config, tmp_path, capsys, branch,
                                                                               model):  # fmt: skip
    """Its noise or partials come from a bank made for each length: the export fixed the decoder to the length it
    traced (onnxruntime then refused any other, or failed inside the graph)."""
    _, bundle = _bundle(tiny_config, tmp_path, causal=True, **model)
    assert main(["--onnx", str(bundle), str(tmp_path / "onnx")]) == USER_ERROR
    err = capsys.readouterr().err
    assert f"has {branch}" in err and "--torchscript" in err and err.count("\n") == 1
    assert not (tmp_path / "onnx").exists()


def test_a_level_latent_is_refused_in_one_sentence(tmp_path, tmp_path_factory, drum_folder, capsys):
    """Its peak and quantile map are computed in Python: the exporter failed with a dump of its graph."""
    _, bundle = _two_stage_bundle(tmp_path, tmp_path_factory, drum_folder, "model.level_latent=true")
    assert main(["--onnx", str(bundle), str(tmp_path / "onnx")]) == USER_ERROR
    err = capsys.readouterr().err
    assert "has a level latent" in err and err.count("\n") == 1


def test_an_exporter_failure_is_one_sentence_and_leaves_nothing_behind(tiny_config, tmp_path, capsys, monkeypatch):
    """torch.export's own failures are pages of coloured text: the first line, uncoloured, and no half-written folder
    (neither the output nor the folder written aside)."""

    def fails(*args, **kwargs):
        raise RuntimeError("\x1b[96mFailed to trace\x1b[0m\nthe graph dump...")

    _, bundle = _bundle(tiny_config, tmp_path, causal=True)
    monkeypatch.setattr(torch.onnx, "export", fails)
    assert main(["--onnx", str(bundle), str(tmp_path / "onnx")]) == USER_ERROR
    err = capsys.readouterr().err
    assert "could not be exported to ONNX (RuntimeError: Failed to trace)" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def _stream_onnx(out, half: str, x: np.ndarray, frames_per_chunk, hop: int) -> np.ndarray:
    """``x`` through ``half`` ("encode" / "decode") of an ONNX stream, chunk by chunk as model.json says: zero states
    first, then each call's next states."""
    info = json.loads((out / INFO).read_text())["stream"][half]
    session = ort.InferenceSession(str(out / info["file"]))
    given = session.get_inputs()[0].name
    states = [np.zeros(shape, np.float32) for shape in info["states"]]
    step = hop if half == "encode" else 1  # (samples or frames in one frame)
    outs, pos, k = [], 0, 0
    while pos < x.shape[-1]:
        n = frames_per_chunk[k % len(frames_per_chunk)] * step
        made, *states = session.run(None, {given: x[..., pos : pos + n], **{f"state_{i}": s for i, s in
                                                                            enumerate(states)}})  # fmt: skip
        outs.append(made)
        pos, k = pos + n, k + 1
    return np.concatenate(outs, axis=-1)


@pytest.mark.parametrize("model", [
    {"causal": True, "encoder": "spectral", "encoder_width": 8},
    {"causal": True},
    {"causal": True, "channels": 2, "bands": 1},  # (its first conv reads the stereo input itself)
], ids=["causal-spectral", "causal-wave", "causal-stereo-one-band"])  # fmt: skip
def test_a_causal_stream_exports_with_explicit_states_and_equals_the_offline_model(tiny_config, tmp_path, model):
    """Chunks of 1 to 5 frames through the two stream graphs, each call's states fed to the next: the offline model's
    latents and audio of the whole signal (a causal stream reads nothing ahead), so no state was dropped or fixed."""
    vae, bundle = _bundle(tiny_config, tmp_path, **model)
    out = export_onnx(bundle, tmp_path / "onnx", streaming=True, offline=False)  # (the offline graphs: tested above)
    info = json.loads((out / INFO).read_text())["stream"]
    assert info["batch"] == 1 and info["latency"] == vae.delay  # (a causal stream adds no look-ahead)
    assert info["encode"]["file"] == STREAM_ENCODE and info["decode"]["file"] == STREAM_DECODE
    session = ort.InferenceSession(str(out / STREAM_ENCODE))
    assert [i.name for i in session.get_inputs()] == info["encode"]["inputs"]
    assert [i.shape for i in session.get_inputs()[1:]] == info["encode"]["states"]
    frames = 24
    x = (0.2 * np.random.default_rng(1).standard_normal((1, vae.channels, frames * vae.hop))).astype(np.float32)
    with torch.no_grad():
        expected_z = vae.encode(torch.from_numpy(x)).numpy()
        expected_y = vae.decode(torch.from_numpy(expected_z)).numpy()
    z = _stream_onnx(out, "encode", x, (1, 3, 5, 1, 2), vae.hop)
    assert z.shape == expected_z.shape
    np.testing.assert_allclose(z, expected_z, atol=1e-4 * max(1.0, np.abs(expected_z).max()))
    y = _stream_onnx(out, "decode", expected_z, (2, 1, 5, 3), vae.hop)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, expected_y, atol=1e-4 * max(1e-3, np.abs(expected_y).max()))


@pytest.mark.parametrize("mode,model,says", [
    ("temporal", {"causal": False}, "has blocks that start late"),
    ("temporal", {"causal": False, "encoder": "spectral", "encoder_width": 8}, "has blocks that start late"),
    ("single", {}, "one latent vector per clip"),
], ids=["centred", "centred-spectral", "one-vector"])  # fmt: skip
def test_a_stream_the_explicit_states_cannot_carry_is_refused_in_one_sentence(tiny_config, tmp_path, capsys, mode,
                                                                              model, says):  # fmt: skip
    """A late block zeroes its first samples by counting them (so does a noise branch, refused before this by the
    offline export): graphs whose only state were the caches would differ from the stream at its start."""
    _, bundle = _bundle(tiny_config, tmp_path, mode, **model)
    assert main(["--onnx", str(bundle), str(tmp_path / "onnx"), "--streaming"]) == USER_ERROR
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    assert not (tmp_path / "onnx").exists()
