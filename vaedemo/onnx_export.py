"""A bundle as ONNX: ``encode.onnx`` and ``decode.onnx`` with a ``model.json`` beside them, for runtimes without
PyTorch (onnxruntime in a plugin, a browser, C++); with ``--streaming``, a causal model's stream too.

``python -m vaedemo.export --onnx BUNDLE OUT_FOLDER [--streaming]``. The two graphs are the offline model, each call on
its own (what ``AudioVAE.encode`` / ``decode`` compute, posterior means; nothing carries over between calls):

* encode: audio (batch, channels, samples) -> a latent time series (batch, latent_size, samples / hop), samples a
  multiple of ``hop``; a one-vector model takes exactly one clip (``clip_length`` samples) and gives (batch,
  latent_size);
* decode: the reverse, a time series of any number of frames or one vector per clip.

Batch and length are dynamic (a one-vector model's length is its clip); a time-series model with a noise branch or a
partial bank is refused (their banks are made for each length: the export would fix it), as is a level latent. A
causal model's output lags its input by ``delay`` samples (model.json), as it does in PyTorch.

``--streaming`` adds ``stream_encode.onnx`` and ``stream_decode.onnx``: the live stream
(:class:`~vaedemo.nn.streaming.StreamingVAE`), chunk by chunk, one signal (batch 1), each chunk any whole number of
frames. A graph keeps nothing between calls, so each cached convolution's past is an input ``state_i`` and an output
``next_state_i`` (:mod:`vaedemo.nn.stream_state`): zeros before the first chunk, then each call's next states. Only
a stream whose state is its caches alone exports this way (a causal model without a noise branch or partial bank);
others are refused in one sentence, and the TorchScript ``--streaming`` export carries them.

Written with PyTorch's ONNX exporter (``torch.export``; it needs the ``onnx`` and ``onnxscript`` packages), weights
inside each file; the folder is written aside and renamed into place, so a failed export leaves an earlier one as it
was.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from .cli import as_user_file
from .errors import VaedemoError

ENCODE, DECODE, INFO = "encode.onnx", "decode.onnx", "model.json"
STREAM_ENCODE, STREAM_DECODE = "stream_encode.onnx", "stream_decode.onnx"
FILES = (ENCODE, DECODE, INFO, STREAM_ENCODE, STREAM_DECODE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the exporter colours its messages
FORMAT = "vaedemo-onnx"
MAX_BATCH = 1024  # a bound the exporter needs for a dynamic dimension; far above any use


class _Method(nn.Module):
    """One of the model's methods as a module's forward: what the exporter traces."""

    def __init__(self, model, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(x)


def _check_exporter() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise VaedemoError("ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript "
                           "(and onnxruntime to run the files).") from None  # fmt: skip


def check_output_folder(out: Path, bundle: Path | None = None) -> None:
    """Nothing there, an empty folder, or an earlier ONNX export (its model.json says so) holding only its files: the
    export replaces the whole folder, and a folder holding anything else would lose it. Not inside the bundle's own
    folder (``bundle``), which would then hold a file other than a bundle's and refuse to be saved over."""
    if out.name in ("", ".", ".."):
        raise VaedemoError(f"give the ONNX files a folder of their own (a new name), not {str(out)!r}.")
    if bundle is not None and out.resolve().is_relative_to(bundle.resolve()):
        raise VaedemoError(f"{out} lies inside the bundle's folder {bundle}; give a folder outside it.")
    if not os.path.lexists(out):
        if not out.parent.is_dir():
            raise VaedemoError(f"{out.parent} is not a folder; create it first or choose another place for {out.name}.")
        return
    if not out.is_dir():
        raise VaedemoError(f"{out} exists and is not a folder; give a new folder for the ONNX files.")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    others = [name for name in entries if name not in FILES]
    if others or not _is_export(out / INFO):
        what = (others[0][:80] if others else f"a {INFO} that is not an ONNX export's" if INFO in entries
                else f"{entries[0]} without an export's {INFO}")  # fmt: skip
        raise VaedemoError(f"{out} holds {what}, which replacing the folder would delete; give a new folder.")


def _is_export(info: Path) -> bool:
    try:
        return json.loads(info.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):  # (unreadable, not JSON, not an object)
        return False


def _example_and_shapes(model) -> tuple[torch.Tensor, dict, dict]:
    """An input to trace (two clips) and the dynamic dimensions of the encoder's and the decoder's inputs (batch;
    length: a time series' frames, and the audio's samples as hop x frames)."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=MAX_BATCH)
    audio = 0.1 * torch.randn(2, model.channels, model.cfg.clip_length, generator=torch.Generator().manual_seed(0))
    if model.mode.per_clip:
        return audio, {0: batch}, {0: batch}
    frames = Dim("frames", min=2, max=2**20)  # (a length the encoder's strided convs and the PQMF pass through)
    return audio, {0: batch, 2: model.hop * frames}, {0: batch, 2: frames}


def _export(module: nn.Module, args: tuple, shapes: tuple, names: tuple[list[str], list[str]], path: Path,
            model_name: str, out: Path) -> None:  # fmt: skip
    """``module`` traced on ``args`` with the dynamic dimensions ``shapes`` (one entry per argument), its inputs and
    outputs named ``names``, written to ``path`` (inside the folder that will become ``out``); the exporter's failure
    on a model it cannot trace is one sentence, not its dump."""
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")  # (four lines a graph: torchvision,
    level = registry.level  # which this project does not use, is not installed)
    registry.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # (torch.export's notes on the model's Python-side caches)
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, dynamic_shapes=shapes, verbose=False,
                                        input_names=names[0], output_names=names[1])  # fmt: skip
    except Exception as e:  # (it writes nothing: an OSError is not this)
        first = ANSI.sub("", (str(e).strip().splitlines() or [""])[0])[:200]
        raise VaedemoError(f"{model_name} could not be exported to ONNX ({type(e).__name__}: {first}); nothing was "
                           f"changed at {out}.") from None  # fmt: skip
    finally:
        registry.setLevel(level)
    program.save(str(path), external_data=False)  # the weights inside the file: one file a graph
    as_user_file(path)


def _export_stream(model, name: str, tmp: Path, out: Path) -> dict:
    """stream_encode.onnx and stream_decode.onnx in ``tmp``: the stream's two halves with their states explicit
    (:mod:`vaedemo.nn.stream_state`); returns model.json's ``stream`` entry."""
    from torch.export import Dim

    from .nn.stream_state import ExplicitState, state_holders
    from .nn.streaming import StreamingVAE

    stream = StreamingVAE(model).eval()
    frames = Dim("frames", min=1, max=2**20)
    chunk = 0.1 * torch.randn(1, model.channels, 8 * model.hop, generator=torch.Generator().manual_seed(0))
    entry = {"batch": 1, "dtype": "float32", "chunk": "any whole number of frames: samples a multiple of hop",
             "latency": stream.latency, "first_states": "zeros"}  # fmt: skip
    halves = [("encode", stream.encoder, STREAM_ENCODE, chunk, {2: model.hop * frames}, ("audio", "latents")),
              ("decode", stream.decoder, STREAM_DECODE, None, {2: frames}, ("latents", "audio"))]  # fmt: skip
    for method, part, file, x, dims, (given, made) in halves:
        holders = state_holders(stream, part)
        states = [torch.zeros(m.state_shape) for m in holders]
        if x is None:  # the decoder traces on the encoder's latents of the same chunk
            with torch.no_grad():
                x = stream.encode(chunk)
            stream.reset()
        count = range(len(states))
        names = ([given, *(f"state_{i}" for i in count)], [made, *(f"next_state_{i}" for i in count)])
        _export(ExplicitState(stream, method, holders), (x, states), (dims, [None] * len(states)), names, tmp / file,
                name, out)  # fmt: skip
        entry[method] = {"file": file, "inputs": names[0], "outputs": names[1],
                         "states": [list(m.state_shape) for m in holders]}  # (state_i's shape, next_state_i's too)
    return entry


def check_exportable(b) -> None:
    """One sentence for what the graphs cannot carry: a time series' noise or partials (their banks are made for
    each length, which the export would fix), a level latent (its quantile map and the clip's peak are computed in
    Python, which ``torch.export`` cannot trace)."""
    branch = "a noise branch" if b.config.noise_bands else "a partial bank" if b.config.partials else None
    if branch and not b.model.mode.per_clip:  # (a one-vector model's length is its clip: one bank, traced)
        raise VaedemoError(f"{b.name} has {branch}, whose bank is made for each length, so its decoder cannot be "
                           "exported for any length; the TorchScript export (--torchscript BUNDLE OUT.ts --streaming) "
                           "carries it.")  # fmt: skip
    if b.model.level is not None:
        raise VaedemoError(f"{b.name} has a level latent (model.level_latent), which the ONNX export cannot carry; "
                           "export a model without one.")  # fmt: skip


def check_streamable(b) -> None:
    """One sentence for a model whose stream the ONNX graphs cannot carry: one vector per clip (it needs the whole
    clip), or a stream whose state counts samples (:func:`~vaedemo.nn.stream_state.counted_state`)."""
    from .nn.stream_state import counted_state
    from .nn.streaming import StreamingVAE

    if b.model.mode.per_clip:
        raise VaedemoError(f"{b.name} has one latent vector per clip, which needs the whole clip before it can encode: "
                           "only a model with a latent time series streams.")  # fmt: skip
    counts = counted_state(StreamingVAE(b.model))
    if counts:
        raise VaedemoError(f"{b.name} cannot stream as ONNX: its stream {counts}, a count the graphs' explicit states "
                           "do not carry; the TorchScript export (--torchscript BUNDLE OUT.ts --streaming) streams it.")


def model_info(bundle) -> dict:
    """What a runtime needs to feed the files: model.json's content."""
    m, cfg = bundle.model, bundle.config
    per_clip = m.mode.per_clip
    time_series = "(batch, latent_size, frames), frames = samples / hop"
    return {
        "format": FORMAT, "name": bundle.name, "sample_rate": cfg.sample_rate, "channels": m.channels,
        "latent_size": m.mode.latent_size, "hop": m.hop, "latent_mode": cfg.latent_mode, "causal": cfg.causal,
        "delay": m.delay, "clip_length": cfg.clip_length if per_clip else None,
        "encode": {"input": "audio (batch, channels, clip_length)" if per_clip else
                   "audio (batch, channels, samples), samples a multiple of hop",
                   "output": "latents (batch, latent_size)" if per_clip else f"latents {time_series}"},
        "decode": {"input": "latents (batch, latent_size)" if per_clip else f"latents {time_series}",
                   "output": "audio (batch, channels, clip_length)" if per_clip else
                   "audio (batch, channels, frames x hop)"},
    }  # fmt: skip


def export_onnx(bundle: str | Path, out: str | Path, streaming: bool = False, offline: bool = True) -> Path:
    """Write ``bundle`` (a folder or hf:// id) as ``out``/encode.onnx, decode.onnx and model.json; ``streaming``: also
    stream_encode.onnx and stream_decode.onnx (model.json's ``stream`` says how to feed them); not ``offline``: the
    stream's alone (what the demo's browser mode serves)."""
    from .bundle import load, written_aside

    _check_exporter()
    out = Path(out)
    b = load(bundle)
    check_output_folder(out, b.path)
    if offline:
        check_exportable(b)
    if streaming:
        check_streamable(b)
    model = b.model.float().eval()
    try:
        with written_aside(out) as tmp:
            if offline:
                example, encode_shapes, decode_shapes = _example_and_shapes(model)
                with torch.no_grad():  # a first pass fills what eval mode keeps between calls (a noise bank)
                    latents = model.encode(example)
                    model.decode(latents)
                _export(_Method(model, "encode"), (example,), (encode_shapes,), (["audio"], ["latents"]),
                        tmp / ENCODE, b.name, out)  # fmt: skip
                _export(_Method(model, "decode"), (latents,), (decode_shapes,), (["latents"], ["audio"]),
                        tmp / DECODE, b.name, out)  # fmt: skip
            info = model_info(b)
            if not offline:  # (no encode.onnx or decode.onnx to describe)
                del info["encode"], info["decode"]
            if streaming:
                info["stream"] = _export_stream(model, b.name, tmp, out)
            (tmp / INFO).write_text(json.dumps(info, indent=2))
            as_user_file(tmp / INFO)
    except OSError as e:
        raise VaedemoError(f"cannot write {out} ({e.strerror or type(e).__name__}); nothing was changed there.") from None
    return out
