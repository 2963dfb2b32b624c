"""``python -m vaedemo.export RUN_DIR OUT_DIR``: a checkpoint bundle from a Lightning run's ``last.ckpt``.
``python -m vaedemo.export --torchscript BUNDLE OUT.ts [--streaming]``: a TorchScript file for real-time hosts.
``python -m vaedemo.export --onnx BUNDLE OUT_FOLDER [--streaming]``: encode.onnx and decode.onnx, and the stream's
graphs (:mod:`vaedemo.onnx_export`).

``RUN_DIR`` is a training run folder (or a ``.ckpt`` file). The Lightning checkpoint is read with
``torch.load(weights_only=True)``; the bundle keeps the generator weights only (no discriminator, no optimiser).

The TorchScript file follows nn~'s conventions (those of the ``nn_tilde`` Python package, v1.6, whose ``Module`` is
not used: it pins another torch): methods ``encode``, ``decode`` and ``forward`` on float (batch, channels, samples)
tensors; for each, a buffer ``<method>_params`` = [in channels, in ratio, out channels, out ratio] and the string
lists ``<method>_input_labels`` / ``<method>_output_labels``; ``get_methods()``, ``get_attributes()`` (none),
``get_buffer_attributes()`` (none) and ``get_sample_rate()``. Buffers hold a multiple of the hop samples (latent
frames for ``decode``). Without ``--streaming`` every call is processed on its own (the offline model, zero-padded at
both ends); with it, every call continues the previous one through cached convolutions
(:mod:`vaedemo.nn.streaming`), and ``reset()`` starts afresh; a streaming ``decode`` expects what a streaming
``encode`` gives (a centred model's first latent frames stand for the padding before time 0 and are zeroed). Only
models with a latent time series export.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .cli import as_user_file, user_errors
from .errors import CheckpointError, VaedemoError
from .nn.decoder import mod_sigmoid
from .nn.streaming import NoBranch, PosteriorMean, StreamingVAE, script
from .nn.vae import AudioVAE


def export(run: str | Path, out_dir: str | Path, name: str | None = None) -> Path:
    from .bundle import check_shapes, expected_shapes, save_bundle
    from .card import hardware_description
    from .config import config_from_dict
    from .training.module import phase_reached

    if str(out_dir).startswith("hf://"):  # (as a path, "hf://a/b" made a local folder hf:/a/b)
        raise VaedemoError(f"{str(out_dir)[:80]} is a Hub id, and export writes a bundle folder: write it to a folder, "
                           "then upload that with python -m vaedemo.push_to_hub FOLDER org/name.")  # fmt: skip
    path = Path(run)
    ckpt = path if path.is_file() else path / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise CheckpointError(f"{ckpt} does not exist; give a run folder with checkpoints/last.ckpt or a .ckpt file.")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a damaged or foreign file
        raise CheckpointError(f"{ckpt} is not a readable Lightning checkpoint ({type(e).__name__}).") from None
    if "vaedemo_config" not in state:
        raise CheckpointError(f"{ckpt} was not written by vaedemo's training (it stores no vaedemo_config).")
    cfg = config_from_dict(state["vaedemo_config"], str(ckpt))
    states = state.get("state_dict")
    if not isinstance(states, dict):
        raise CheckpointError(f"{ckpt} holds no state_dict of a model.")
    weights = {k[len("vae.") :]: v for k, v in states.items() if isinstance(k, str) and k.startswith("vae.")}
    # checked as a bundle's weights are, before the model is built: a config of a model too large to build is refused
    check_shapes({k: tuple(v.shape) if isinstance(v, torch.Tensor) else () for k, v in weights.items()},
                 expected_shapes(cfg.model, ckpt), f"the weights in {ckpt} do not fit its vaedemo_config")  # fmt: skip
    model = AudioVAE(cfg.model)
    model.load_state_dict(weights, strict=True)
    step = int(states.get("step", 0))
    seconds = float((state.get("callbacks") or {}).get("BundleExport", {}).get("training_time_s", 0.0))
    meta = {"name": name or cfg.name, "step": step, "phase": phase_reached(cfg, step),
            "hardware": hardware_description(), "data": cfg.data.root}
    if seconds:
        meta.update(training_time=f"{seconds / 60:.1f} min", training_time_s=round(seconds, 1))
    return save_bundle(model, out_dir, meta, cfg.to_dict())


class OfflineVAE(nn.Module):
    """The offline model in TorchScript: every call on its own (what ``AudioVAE.encode`` / ``decode`` / ``forward``
    with the posterior mean compute), the input zero-padded to a multiple of the hop."""

    def __init__(self, model: AudioVAE):
        super().__init__()
        self.pqmf, self.encoder, self.decoder = model.pqmf, model.encoder.net, model.decoder.net
        self.reads_audio: bool = model.encoder.reads_audio  # a spectral encoder reads the audio, not the bands
        self.posterior_mean = PosteriorMean(model)
        self.hop, self.frame_delay = model.hop, model.frame_delay
        self.has_partials: bool = model.decoder.partials is not None  # a partial bank reads the latents themselves
        self.partials: nn.Module = model.decoder.partials if model.decoder.partials is not None else NoBranch()

    @torch.jit.export
    def reset(self) -> None:
        pass  # nothing carries over between calls

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, [0, (self.hop - x.shape[-1] % self.hop) % self.hop])
        return self.posterior_mean(self.encoder(x if self.reads_audio else self.pqmf.analysis(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.frame_delay > 0:  # a causal decoder reads the previous frame
            z = F.pad(z, [self.frame_delay, 0])[..., : z.shape[-1]]
        wave, amp = self.decoder(z).chunk(2, dim=1)
        bands = wave * mod_sigmoid(amp)
        if self.has_partials:
            bands = bands + self.partials(z, bands)
        return self.pqmf.synthesis(bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))[..., : x.shape[-1]]


class HostModule(nn.Module):
    """What a real-time host loads: ``encode``, ``decode``, ``forward`` (and ``reset``) with nn~'s metadata."""

    def __init__(self, model: AudioVAE, streaming: bool):
        super().__init__()
        self.core = StreamingVAE(model) if streaming else OfflineVAE(model)
        self.sample_rate, self.streaming = model.sample_rate, streaming
        # samples by which the output lags the input: a causal model's own lag, plus a centred one's look-ahead
        self.latency: int = self.core.latency if isinstance(self.core, StreamingVAE) else model.delay
        c, d, hop = model.channels, model.latent.size, model.hop
        audio = [f"(signal) audio channel {i}" for i in range(c)]
        latent = [f"(signal) latent dimension {i}" for i in range(d)]
        for method, params, labels in [("encode", [c, 1, d, hop], (audio, latent)),
                                       ("decode", [d, hop, c, 1], (latent, audio)),
                                       ("forward", [c, 1, c, 1], (audio, audio))]:  # fmt: skip
            self.register_buffer(f"{method}_params", torch.tensor(params))
            setattr(self, f"{method}_input_labels", labels[0])
            setattr(self, f"{method}_output_labels", labels[1])
        self.methods = ["encode", "decode", "forward"]

    @torch.jit.export
    def get_methods(self) -> list[str]:
        return self.methods

    @torch.jit.export
    def get_attributes(self) -> list[str]:
        return []

    @torch.jit.export
    def get_buffer_attributes(self) -> list[str]:
        return []

    @torch.jit.export
    def get_sample_rate(self) -> int:
        return self.sample_rate

    @torch.jit.export
    def reset(self) -> None:
        self.core.reset()  # (no isinstance here: TorchScript may compile it against another StreamingVAE type)

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.core.encode(x)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.core.decode(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.core(x)


def export_torchscript(bundle: str | Path, out: str | Path, streaming: bool = False) -> Path:
    """Write ``bundle``'s model as a TorchScript file for nn~ and other hosts (see the module doc)."""
    from .bundle import load

    b = load(bundle)
    if b.model.mode.per_clip:
        raise VaedemoError(
            f"{b.name} cannot be exported for real-time hosts: it encodes one latent vector per clip, which needs the "
            "whole clip; only models with a latent time series export."
        )
    if b.config.noise_bands and not streaming:  # the offline form rebuilds the decoder without the noise branch
        raise VaedemoError(f"{b.name} has a noise branch, which only the streaming export carries; add --streaming.")
    path = Path(out)
    if not path.parent.is_dir():
        raise VaedemoError(f"{path.parent} is not a folder; create it first or choose another path for {path.name}.")
    if path.is_dir():
        raise VaedemoError(f"{path} is a folder; give the path of the TorchScript file to write, such as {path / 'model.ts'}.")
    # inside the exported bundle's folder (as --onnx refuses it) or another's, whose weights it replaced
    inside = b.path if b.path is not None and path.resolve().is_relative_to(b.path.resolve()) else None
    if inside is not None or (path.parent / "model.safetensors").exists():
        raise VaedemoError(f"{path} lies inside the bundle folder {inside or path.parent}: it would replace the bundle's "
                           "own file or, beside them, make the next save to the bundle refuse to replace it; write it "
                           "outside.")  # fmt: skip
    module = HostModule(b.model.float().eval(), streaming)
    buffer = io.BytesIO()  # torch's own writer aborts the process on a full disk, half a file written over the old one
    torch.jit.save(script(module), buffer)
    # written aside, then renamed over the path: an earlier export survives a failed write, and a link at the path is
    # replaced rather than written through
    try:
        fd, aside = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise VaedemoError(f"cannot write into {path.parent} ({e.strerror or type(e).__name__}).") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
        as_user_file(Path(aside))
        os.replace(aside, path)
    except OSError as e:
        raise VaedemoError(f"cannot write {path} ({e.strerror or type(e).__name__}); nothing was changed there.") from None
    finally:
        Path(aside).unlink(missing_ok=True)
    return path


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", help="training run folder or .ckpt file")
    parser.add_argument("out", nargs="?", help="bundle folder to write")
    parser.add_argument("--name", help="model name for the card")
    parser.add_argument("--torchscript", nargs=2, metavar=("BUNDLE", "OUT_TS"),
                        help="write BUNDLE (a folder or hf:// id) as a TorchScript file for nn~ and other hosts")  # fmt: skip
    parser.add_argument("--streaming", action="store_true",
                        help="--torchscript: each call continues the previous one; --onnx: also the stream's graphs")
    parser.add_argument("--onnx", nargs=2, metavar=("BUNDLE", "OUT_FOLDER"),
                        help="write BUNDLE as encode.onnx, decode.onnx and model.json in OUT_FOLDER (--streaming: "
                             "the stream's graphs too)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.onnx:
        if args.run or args.out or args.torchscript or args.name:
            parser.error("--onnx takes BUNDLE and OUT_FOLDER alone, or with --streaming")
        from .onnx_export import export_onnx

        out = export_onnx(*args.onnx, streaming=args.streaming)
        stream = ", stream_encode.onnx, stream_decode.onnx" if args.streaming else ""
        print(f"wrote {out}: encode.onnx, decode.onnx{stream}, model.json")
        return 0
    if args.torchscript:
        if args.run or args.out or args.name:
            parser.error("--torchscript takes BUNDLE and OUT_TS alone, or with --streaming")
        out = export_torchscript(*args.torchscript, streaming=args.streaming)
        print(f"wrote {out} ({'streaming' if args.streaming else 'one call at a time'})")
        return 0
    if not (args.run and args.out) or args.streaming:
        parser.error("give RUN OUT (a bundle from a run), --torchscript BUNDLE OUT_TS [--streaming] or --onnx BUNDLE "
                     "OUT_FOLDER [--streaming]")
    out = export(args.run, args.out, args.name)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
