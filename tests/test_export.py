"""TorchScript export for real-time hosts (nn~): what torch.jit.load gives back streams like Engine.stream, carries
nn~'s metadata, and the command line refuses what it cannot export with one sentence."""

import shutil

import numpy as np
import pytest
import torch

from vaedemo.bundle import save_bundle
from vaedemo.cli import USER_ERROR
from vaedemo.export import export_torchscript, main
from vaedemo.inference import Engine
from vaedemo.nn.vae import AudioVAE


def _bundle(tiny_config, tmp_path, causal: bool, channels: int = 1, mode: str = "temporal", noise: int = 0,
            encoder: str = "wave", bands: int = 4):  # fmt: skip
    cfg = tiny_config(mode, flows=2, model__causal=causal, model__channels=channels, model__noise_bands=noise,
                     model__noise_hop=2, model__encoder=encoder, model__encoder_width=8, model__bands=bands)
    torch.manual_seed(0)
    model = AudioVAE(cfg.model)
    with torch.no_grad():  # weights away from their initialisation, so that every path carries signal
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_bundle(model, tmp_path / f"b-{mode}-{causal}-{channels}-{noise}-{encoder}-{bands}")


@pytest.mark.parametrize("causal,channels,encoder", [(True, 1, "wave"), (False, 2, "wave"), (False, 1, "spectral"),
                                                      (True, 1, "spectral")])
def test_streaming_export_streams_like_the_engine(tiny_config, tmp_path, causal, channels, encoder):
    bundle = _bundle(tiny_config, tmp_path, causal, channels, encoder=encoder)
    path = export_torchscript(bundle, tmp_path / "model.ts", streaming=True)
    host = torch.jit.load(str(path))
    stream = Engine(bundle).stream()
    assert host.latency == stream.latency
    hop = stream.hop
    x = np.random.default_rng(3).standard_normal((hop * 24, channels)).astype(np.float32) * 0.1
    ours, theirs, pos = [], [], 0
    for k in range(24):
        n = min((1, 3, 2)[k % 3] * hop, len(x) - pos)  # uneven buffers, as a host may change its buffer size
        if n == 0:
            break
        with torch.no_grad():
            ours.append(host(torch.from_numpy(x[pos : pos + n].T.copy())[None])[0].numpy().T)
        theirs.append(stream.process(x[pos : pos + n]))
        pos += n
    assert pos == len(x)
    assert np.allclose(np.concatenate(ours), np.concatenate(theirs), atol=1e-5)
    host.reset()
    with torch.no_grad():
        again = host(torch.from_numpy(x[: 2 * hop].T.copy())[None])[0].numpy().T
    assert np.allclose(again, np.concatenate(ours)[: 2 * hop], atol=1e-6)  # reset starts afresh


@pytest.mark.parametrize("streaming,encoder,bands", [(True, "wave", 4), (False, "wave", 4), (False, "spectral", 4),
                                                     (False, "wave", 1)])  # fmt: skip
def test_methods_shapes_and_nn_tilde_metadata(tiny_config, tmp_path, streaming, encoder, bands):
    """(One band, offline: TorchScript compiled the PQMF's many-band branch too, and it had no tables there.)"""
    bundle = _bundle(tiny_config, tmp_path, causal=False, encoder=encoder, bands=bands)
    host = torch.jit.load(str(export_torchscript(bundle, tmp_path / "m.ts", streaming=streaming)))
    model = Engine(bundle).model
    hop, d = model.hop, model.latent.size
    assert host.get_methods() == ["encode", "decode", "forward"] and host.get_sample_rate() == model.sample_rate
    assert host.encode_params.tolist() == [1, 1, d, hop] and host.decode_params.tolist() == [d, hop, 1, 1]
    assert host.forward_params.tolist() == [1, 1, 1, 1] and len(host.encode_output_labels) == d
    x = 0.1 * torch.randn(2, 1, 6 * hop)
    with torch.no_grad():
        z = host.encode(x)
        assert z.shape == (2, d, 6) and host.decode(z).shape == (2, 1, 6 * hop) and host(x).shape == x.shape
        if not streaming:  # one call at a time: the offline model itself
            assert torch.allclose(host(x), model(x, sample=False).audio, atol=1e-6)
            assert torch.allclose(host.encode(x), model.encode(x), atol=1e-6)


def test_command_line_writes_a_loadable_file(tiny_config, tmp_path, capsys):
    bundle = _bundle(tiny_config, tmp_path, causal=True)
    assert main(["--torchscript", str(bundle), str(tmp_path / "live.ts"), "--streaming"]) == 0
    assert "wrote" in capsys.readouterr().out and torch.jit.load(str(tmp_path / "live.ts")).get_methods()


def test_command_line_refusals_are_one_sentence(tiny_config, tmp_path, capsys):
    single = _bundle(tiny_config, tmp_path, causal=False, mode="single")
    temporal = _bundle(tiny_config, tmp_path, causal=True)
    noisy = _bundle(tiny_config, tmp_path, causal=True, noise=4)
    cases = [
        ([str(noisy), str(tmp_path / "n.ts")], "only the streaming export carries"),
        ([str(tmp_path / "missing"), str(tmp_path / "a.ts")], "is not a bundle folder"),
        ([str(single), str(tmp_path / "b.ts"), "--streaming"], "encodes one latent vector per clip"),
        ([str(temporal), str(tmp_path / "no" / "c.ts")], "is not a folder"),
    ]
    for args, sentence in cases:
        assert main(["--torchscript", *args]) == USER_ERROR
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and sentence in err and "\n" not in err
    assert not list(tmp_path.glob("*.ts"))


def test_the_run_to_bundle_form_is_unchanged(tmp_path, capsys, monkeypatch):
    """``RUN OUT`` still makes a bundle from a run (here: refused with its own sentence); mixing forms is an error."""
    assert main([str(tmp_path / "no_run"), str(tmp_path / "bundle")]) == USER_ERROR
    assert "checkpoints/last.ckpt" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # a Hub id is no folder to write (as a path it made the local folder hf:/a/b)
    assert main([str(tmp_path / "no_run"), "hf://a/b"]) == USER_ERROR
    assert "error: hf://a/b is a Hub id, and export writes a bundle folder" in capsys.readouterr().err
    assert not (tmp_path / "hf:").exists()
    for argv in ([], ["--torchscript", "a", "b.ts", "run"], ["--torchscript", "a", "b.ts", "--name", "x"],
                 [str(tmp_path), "out", "--streaming"]):  # (--name named nothing of a TorchScript file: refused)
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2


def test_the_file_is_written_aside_and_never_over_the_bundle_or_a_folder(tiny_config, tmp_path, monkeypatch):
    """A folder at the path was torch's traceback; the bundle's own weights were overwritten (the bundle lost); a link
    at the path was written through; a full disk aborted the process with half a file over the earlier export."""
    import errno
    import os

    from vaedemo.bundle import load
    from vaedemo.errors import VaedemoError

    bundle = _bundle(tiny_config, tmp_path, causal=True)
    (tmp_path / "folder.ts").mkdir()
    with pytest.raises(VaedemoError, match="is a folder"):
        export_torchscript(bundle, tmp_path / "folder.ts")
    other = tmp_path / "other"
    shutil.copytree(bundle, other)
    # a new file there blocks the next save too; another bundle's weights were replaced (found by a helper's audit)
    for inside in (bundle / "model.safetensors", bundle / "model.ts", other / "model.safetensors"):
        with pytest.raises(VaedemoError, match=f"lies inside the bundle folder {inside.parent}: it would replace"):
            export_torchscript(bundle, inside)
    load(bundle)  # intact
    load(other)
    assert not (bundle / "model.ts").exists()
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (tmp_path / "link.ts").symlink_to(precious)
    export_torchscript(bundle, tmp_path / "link.ts")
    assert precious.read_text() == "keep me" and not (tmp_path / "link.ts").is_symlink()
    assert torch.jit.load(str(tmp_path / "link.ts")).get_methods()

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("vaedemo.export.os.replace", full)
    before = (tmp_path / "link.ts").read_bytes()
    with pytest.raises(VaedemoError, match="cannot write .*link.ts .No space left on device.; nothing was changed"):
        export_torchscript(bundle, tmp_path / "link.ts", streaming=True)
    assert (tmp_path / "link.ts").read_bytes() == before and not list(tmp_path.glob(".link.ts.*"))  # nothing aside


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_one_sentence(tiny_config, tmp_path, capsys):
    """Its model was built (whatever its size) and then torch's size-mismatch traceback, or a KeyError without a
    state_dict."""
    cfg = tiny_config("temporal", flows=0)
    other = AudioVAE(tiny_config("temporal", flows=0, model__capacity=6).model)
    weights = {f"vae.{k}": v for k, v in other.state_dict().items()}
    huge = cfg.to_dict()
    huge["model"]["capacity"] = 4000
    cases = [({"vaedemo_config": cfg.to_dict(), "state_dict": weights}, "do not fit its vaedemo_config"),
             ({"vaedemo_config": cfg.to_dict()}, "holds no state_dict of a model"),
             ({"vaedemo_config": huge, "state_dict": weights}, "M parameters, above the limit")]  # fmt: skip
    for i, (state, says) in enumerate(cases):
        torch.save(state, tmp_path / f"{i}.ckpt")
        assert main([str(tmp_path / f"{i}.ckpt"), str(tmp_path / f"out{i}")]) == USER_ERROR
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and says in err and "\n" not in err
        assert not (tmp_path / f"out{i}").exists()
