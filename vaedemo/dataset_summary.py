"""The training set's summary shipped with a bundle: where its sounds lie in the latent space.

``python -m vaedemo.dataset_summary BUNDLE --data data/drums_fluidr3`` encodes every clip of the folder the bundle was
trained on (the posterior mean of each file's first clip, as training saw it in ``oneshot`` mode; temporal models:
the mean over its frames) and writes two files into the bundle folder:

* ``summary.safetensors``: ``latents``, float32 (clips, latent size);
* ``summary.json``: per clip its file (relative to the data folder), its manifest columns (kit, key, program,
  velocity), its GM drum ``family`` (from the key, :mod:`vaedemo.data.gm`) and ``split`` (train / val, the bundle's own
  split: ``data.val_fraction`` and ``data.split_seed``); and for one-vector models with a flow prior the typicality
  reference: the sorted log-densities log p(z) of the training clips' latents under the prior flow, so that a sound's
  typicality can be a percentile *against the training clips*.

Reading a summary (:func:`read_summary`) parses JSON and safetensors only: nothing is unpickled. The files are not
part of the bundle's weights (``model.safetensors`` is untouched) and are small (~150 KB for 500 clips of 64-d).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .audio import load_audio
from .cli import as_user_file, check_writable, user_errors
from .data.dataset import scan_audio, split_files
from .data.gm import drum_family
from .data.oneshots import read_manifest
from .errors import AudioError, VaedemoError
from .hub import FILE_LIMITS, bundle_file, refuse_hub_id_for_writing

MAX_THREADS = 256  # --threads: more than any machine here has cores (100000 failed to map the threads' memory)
LATENTS_FILE = "summary.safetensors"
JSON_FILE = "summary.json"
FORMAT = "vaedemo-training-summary"
VERSION = 1
COLUMNS = ("kit", "key", "program", "velocity")  # manifest.csv columns kept per clip
MAX_CLIPS = 5000  # a summary stays small: 5000 x 64 float32 is 1.3 MB


@dataclass
class TrainingSetSummary:
    """Latents (clips, D) float32; per clip a dict (file, kit, key, program, velocity, family, split); the data folder
    it came from; ``reference``: sorted log p(z) of the training clips under the prior flow, or None."""

    latents: np.ndarray
    clips: list[dict]
    data: str = ""
    latent: str = ""
    reference: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def column(self, name: str) -> list[str]:
        return [str(c.get(name, "")) for c in self.clips]


@torch.inference_mode()
def prior_log_prob(engine, z: np.ndarray) -> np.ndarray:
    """Exact log p(z) in nats under an engine's prior (a flow where it has one) for latents (N, D) -> (N,)."""
    t = torch.as_tensor(np.asarray(z, np.float32).reshape(-1, engine.latent_size), device=engine.device)
    parts = [engine.model.prior_log_prob(t[i : i + 500]) for i in range(0, len(t), 500)]
    return torch.cat(parts).double().cpu().numpy() if parts else np.zeros(0)


def typicality_percentiles(reference: np.ndarray, log_p: np.ndarray) -> np.ndarray:
    """Percentiles (0-100) of log p values among a sorted reference (the training clips' log p): the typicality."""
    return 100.0 * np.searchsorted(reference, np.asarray(log_p, np.float64)) / len(reference)


def _clip_latent(engine, path: Path) -> np.ndarray:
    """The posterior mean of the first clip of a file (temporal models: the mean over its frames)."""
    seconds = engine.mode.unit / engine.sample_rate if engine.mode.per_clip else None
    x, _ = load_audio(path, engine.sample_rate, engine.channels, max_seconds=seconds or 30.0, trim=True)
    return engine.mode.summary_vector(engine.encode(x, engine.sample_rate))


def summarise(engine, data: str | Path, log=print) -> TrainingSetSummary:
    """Encode the folder's audio files (at most MAX_CLIPS) with the engine; undecodable files are skipped."""
    root = Path(data)
    files = scan_audio(root)[:MAX_CLIPS]
    rows = read_manifest(root)
    train_cfg = engine.bundle.training.get("data") or {}
    rels = [p.relative_to(root).as_posix() for p in files]
    try:
        _, val = split_files(rels, float(train_cfg.get("val_fraction", 0.0)), int(train_cfg.get("split_seed", 0)))
    except (TypeError, ValueError):  # a bundle from elsewhere may say anything there (null was a TypeError traceback)
        raise VaedemoError(f"{engine.bundle.path}'s training config has a data section this vaedemo cannot read "
                           "(data.val_fraction, data.split_seed), so which clips it trained on is unknown.") from None
    val = set(val)
    latents, clips = [], []
    for path, rel in zip(files, rels):
        try:
            latents.append(_clip_latent(engine, path))
        except AudioError as e:
            log(f"skipping {rel}: {e}")
            continue
        row = rows.get(rel, {})
        clip = {"file": rel, **{c: row[c] for c in COLUMNS if row.get(c, "") != ""}}
        clip["family"] = drum_family(row.get("key")) or ""
        clip["split"] = "val" if rel in val else "train"
        clips.append(clip)
    if not latents:
        raise VaedemoError(f"{root} holds no audio file that could be encoded.")
    z = np.stack(latents).astype(np.float32)
    reference = None
    if engine.mode.per_clip and engine.has_prior_flow:
        train = np.array([c["split"] == "train" for c in clips])
        reference = np.sort(prior_log_prob(engine, z[train]))
    latent = "posterior mean of each file's first clip" if engine.mode.per_clip else "mean over frames of the posterior mean"
    return TrainingSetSummary(z, clips, str(data), latent, reference)


def write_summary(summary: TrainingSetSummary, folder: str | Path) -> tuple[Path, Path]:
    from safetensors.numpy import save_file

    folder = Path(folder)
    doc = {"format": FORMAT, "version": VERSION, "data": summary.data, "latent": summary.latent,
           "clips": summary.clips, **summary.meta}  # fmt: skip
    if summary.reference is not None:
        doc["typicality_reference"] = {
            "what": "log p(z) in nats of the training clips' latents under the prior flow, sorted",
            "log_prob": [round(float(v), 3) for v in summary.reference],
        }
    latents, path = folder / LATENTS_FILE, folder / JSON_FILE
    # both written aside before either replaces its file (a full disk half-way must not pair new latents with the old
    # clips); a rename replaces a link by a file, where writing through it would overwrite what it points at
    with _aside(folder, LATENTS_FILE) as latents_aside, _aside(folder, JSON_FILE) as json_aside:
        save_file({"latents": np.ascontiguousarray(summary.latents, np.float32)}, str(latents_aside))
        json_aside.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        for aside, final in ((latents_aside, latents), (json_aside, path)):
            as_user_file(aside)
            os.replace(aside, final)
    return latents, path


@contextmanager
def _aside(folder: Path, name: str) -> Iterator[Path]:
    """A new file of a fresh name in ``folder`` (created exclusively: no link planted there is followed) to write
    ``name`` into before it is renamed over it; removed if the writing fails."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_summary(folder: str | Path, latent_size: int | None = None) -> TrainingSetSummary | None:
    """The summary in a bundle folder, or None when it has none. Reads JSON and safetensors only (never unpickles);
    raises VaedemoError for a summary that does not fit (wrong format, counts or latent size)."""
    folder = Path(folder)
    latents_path = bundle_file(folder, LATENTS_FILE, FILE_LIMITS[LATENTS_FILE])
    json_path = bundle_file(folder, JSON_FILE, FILE_LIMITS[JSON_FILE])
    if latents_path is None or json_path is None:
        return None
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        doc = json.loads(json_path.read_text())
        z = load_file(str(latents_path))["latents"]
    except (OSError, ValueError, KeyError, RecursionError, SafetensorError, TypeError) as e:
        # (TypeError: a dtype numpy has not, such as bfloat16)
        raise VaedemoError(f"the training-set summary in {folder.name} could not be read ({type(e).__name__}).") from None
    clips = doc.get("clips") if isinstance(doc, dict) else None
    ok = isinstance(doc, dict) and doc.get("format") == FORMAT and isinstance(clips, list)
    if not ok or not all(isinstance(c, dict) for c in clips) or z.ndim != 2 or len(z) != len(clips) or (
            latent_size and z.shape[1] != latent_size):  # fmt: skip
        raise VaedemoError(f"the training-set summary in {folder.name} does not fit its model.")
    if z.dtype != np.float32 or not np.isfinite(z).all():  # NaN latents put NaN on the map and in every percentile
        raise VaedemoError(f"the training-set summary in {folder.name} holds latents that are not finite float32 values.")
    reference = _typicality_reference(doc.get("typicality_reference"), folder)
    return TrainingSetSummary(z.astype(np.float32), clips, str(doc.get("data", "")), str(doc.get("latent", "")),
                              reference)  # fmt: skip


def _typicality_reference(entry, folder: Path) -> np.ndarray | None:
    """The sorted log-densities of the training clips' latents a summary keeps, or None when it keeps none."""
    ref = entry.get("log_prob") if isinstance(entry, dict) else None
    if not ref:
        return None
    try:
        values = np.asarray(ref, np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.ndim != 1 or not np.isfinite(values).all():
        raise VaedemoError(f"the training-set summary in {folder.name} has a typicality reference that is not a list "
                           "of numbers.")  # fmt: skip
    return np.sort(values)


def check_training_folder(engine, data: Path) -> None:
    """The summary describes the bundle's training set (its clips, their split, the typicality's reference): another
    folder while the one it trained on is still there is a mistake, which replaced the summary with one of, say, 5
    clips. A bundle whose training folder is gone (moved, another machine) takes the folder given."""
    from .evaluate import is_training_folder

    root = (engine.bundle.training.get("data") or {}).get("root")
    if isinstance(root, str) and root and Path(root).is_dir() and not is_training_folder(data, Path(root)):
        raise VaedemoError(f"{engine.bundle.path} was trained on {root}, not {data}: the summary describes its training "
                           f"set (its clips, their split, the typicality's reference); give --data {root}.")  # fmt: skip


@user_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaedemo.dataset_summary", description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", help="a bundle folder; the summary is written into it")
    ap.add_argument("--data", required=True, help="the folder the bundle was trained on (manifest.csv optional)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if not 1 <= args.threads <= MAX_THREADS:  # torch.set_num_threads raises for < 1; 100000 failed to map memory
        raise VaedemoError(f"--threads must be from 1 to {MAX_THREADS}, got {args.threads}.")
    refuse_hub_id_for_writing(args.bundle, "python -m vaedemo.dataset_summary")
    torch.set_num_threads(args.threads)
    from .inference import Engine

    engine = Engine(args.bundle)
    check_writable(Path(args.bundle), "the summary is written into the bundle")  # before every clip is encoded
    check_training_folder(engine, Path(args.data))
    summary = summarise(engine, args.data)
    for path in write_summary(summary, args.bundle):
        print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")
    n_val = sum(c["split"] == "val" for c in summary.clips)
    print(f"{len(summary.clips)} clips ({n_val} val), latents {summary.latents.shape[1]}-d; typicality reference: "
          + (f"{len(summary.reference)} training clips" if summary.reference is not None else "none"))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
