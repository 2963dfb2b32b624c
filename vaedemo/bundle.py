"""Checkpoint bundles: a folder with ``config.json``, ``model.safetensors`` (inference weights only) and ``README.md``.

``config.json`` (format 2) keeps the model apart from how it was made::

    {"format": "vaedemo-bundle", "format_version": 2,
     "model": {...ModelConfig...},          # all that loading reads: the model is rebuilt from it alone
     "training": {...data/train/trainer...}, # the experiment's resolved config, for the card and reproduction
     "meta": {...}}                          # name, steps, time, hardware, metrics, evaluation

so renaming or removing a training key never breaks loading. Format-1 bundles (one ``config`` holding everything)
are migrated on load. Loading never unpickles anything (JSON and safetensors only); shapes and sizes are checked
from the safetensors header against a model built on the ``meta`` device before any weight is allocated. Problems
raise :class:`CheckpointError` with one sentence.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .card import model_card
from .cli import as_user_file, check_writable, current_umask
from .config import ModelConfig, model_config_from_dict
from .errors import CheckpointError, ConfigError, VaedemoError
from .hub import BUNDLE_FILES, FILE_LIMITS, OPTIONAL_FILES, WEIGHTS, bundle_file, resolve, weights_file
from .nn.vae import AudioVAE

FORMAT = "vaedemo-bundle"
FORMAT_VERSION = 2
MAX_PARAMETERS = 200_000_000  # 800 MB of float32: far above any model this project trains, far below a crash
MAX_WEIGHT_BYTES = 4 * MAX_PARAMETERS + 100_000_000  # any weight file a bundle can have, its header included


@dataclass
class Bundle:
    """A loaded bundle: the model config, the model (eval mode), what the card reports and the training config."""

    config: ModelConfig
    model: AudioVAE
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    source: str = ""
    card: str = ""
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.training.get("name") or (self.path.name if self.path else "model")


# ---------------------------------------------------------------------------------------------------------- save
def save_bundle(
    model: AudioVAE, out_dir: str | Path, meta: dict[str, Any] | None = None, training: dict[str, Any] | None = None,
    own_folder: bool = False,
) -> Path:
    """Write a bundle folder atomically (a half-written bundle never replaces a good one). ``training`` is the
    experiment's config dict (its ``model`` section is dropped: the model config is stored on its own).
    ``own_folder``: the folder is the caller's own output (a run's bundles), replaced whatever it holds now (a
    .DS_Store a file browser left, a bundle of a newer format, a config.json a power cut emptied); else only an empty
    folder or a bundle holding only a bundle's files is replaced (:func:`check_replaceable`)."""
    out = Path(out_dir)
    check_named_folder(out)
    if not own_folder:
        check_replaceable(out)
    meta = dict(meta or {})
    training = {k: v for k, v in (training or {}).items() if k != "model"}
    out.parent.mkdir(parents=True, exist_ok=True)
    with written_aside(out) as tmp:
        state = {k: _as_stored(v) for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "vaedemo": str(FORMAT_VERSION)})
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.cfg.to_dict(),
               "training": training, "meta": meta}  # fmt: skip
        (tmp / "config.json").write_text(json.dumps(doc, indent=2))
        (tmp / "README.md").write_text(model_card(model.cfg, model, meta, training))
        _keep_unchanged(out, tmp)
        for f in tmp.iterdir():
            as_user_file(f)
    return out


def check_named_folder(out: Path) -> None:
    """A bundle to save is named by its folder's name, not "." or "..": the save replaces the whole folder, so a
    shell inside it would be left in a deleted one (and the save itself was a ValueError traceback, "empty name")."""
    if Path(out).name in ("", ".."):
        raise CheckpointError(f"{out} names a folder without its name; give it by name ({os.path.abspath(out)}): a "
                              "save replaces the whole folder, and a shell inside it would be left in a deleted one.")


@contextmanager
def written_aside(out: Path) -> Iterator[Path]:
    """A fresh folder beside ``out`` to write into; when the block ends without an error it takes ``out``'s place
    (a half-written folder never replaces a good one), and in any case nothing of it is left behind."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it private (0700); it is a folder like any the user makes
        yield tmp
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_replaceable(out: Path) -> None:
    """Refuse to save over anything but nothing, an empty folder or an earlier bundle that holds only a bundle's files:
    the save swaps the whole folder, so an export pointed at a run folder or at a folder of bundles deleted all of it,
    and a bundle's folder lost what else it held (a clone's .git). The folder it is written beside must be writable."""
    check_writable(out.parent, f"{out} cannot be saved")
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise CheckpointError(f"{out} exists and is not a folder; give a new folder or a bundle to replace.")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    try:
        _read_doc(out)
    except CheckpointError as e:
        raise CheckpointError(f"{out} is not a bundle to replace ({str(e).rstrip('.')}); give a new folder or a "
                              "bundle.") from None  # fmt: skip
    others = [name for name in entries if name not in BUNDLE_FILES + OPTIONAL_FILES and not _own_aside(name)]
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise CheckpointError(f"{out} holds {others[0][:80]}{more} besides the bundle's files, which replacing the "
                              "folder would delete; save to a new folder and copy the bundle's files over, or move "
                              "them out.")  # fmt: skip


def _own_aside(name: str) -> bool:
    """Whether ``name`` is a file this project writes aside in a bundle's folder and renames into place (left by a
    killed write): ``.summary.json.XXXX``, ``.README.md.XXXX``, ..."""
    return any(name.startswith(f".{own}.") for own in BUNDLE_FILES + OPTIONAL_FILES)


def _as_stored(tensor: torch.Tensor) -> torch.Tensor:
    """A weight as a bundle stores it: float32 (a run trained in float64 or bfloat16 gives a bundle like any other; the
    loader's size limit counts four bytes a value), other types as they are."""
    t = tensor.detach().cpu()
    return (t.float() if t.is_floating_point() else t).contiguous()


def _keep_unchanged(old: Path, new: Path) -> None:
    """A re-saved bundle with the same weights (a card update) keeps its weight file byte for byte (a shipped bundle's
    card update then changes no binary in git, whatever order the tensors were saved in) and its training-set
    summary; new weights drop the summary, since its latents came from the old ones. Only the bundle's own files are
    kept (:func:`~vaedemo.hub.bundle_file`): a copy would turn a link to a file elsewhere into that file's contents."""
    weights = bundle_file(old, WEIGHTS, MAX_WEIGHT_BYTES)  # None for a first save: nothing there yet
    if weights is not None and _same_weights(weights, new / WEIGHTS):
        shutil.copy2(weights, new / WEIGHTS)
        for name in OPTIONAL_FILES:
            kept = bundle_file(old, name, FILE_LIMITS[name])
            if kept is not None:
                shutil.copy2(kept, new / name)


def _same_weights(a: Path, b: Path) -> bool:
    """Whether two weight files hold the same tensors (their headers may differ: an older format version)."""
    if not a.is_file():
        return False
    try:
        old, new = load_file(str(a)), load_file(str(b))
    except (SafetensorError, OSError, ValueError):
        return False
    return old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)


def _replace(tmp: Path, out: Path) -> None:
    """Put the written folder ``tmp`` in the place of ``out`` (a link there is replaced, its target left as it is)."""
    if os.path.lexists(out):
        old = out.with_name(f".{out.name}.old")
        _remove(old)
        out.rename(old)
        tmp.rename(out)
        _remove(old)
    else:
        tmp.rename(out)


def _remove(path: Path) -> None:
    """Remove a folder, or a link (to a folder: the link alone), if there is one."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def recover_interrupted_saves(folder: Path, name_prefix: str) -> None:
    """Tidy what :func:`save_bundle` leaves in ``folder`` when killed part-way, for bundles whose names start with
    ``name_prefix`` (only the caller writes them): a half-written temporary folder goes; a bundle moved aside to be
    replaced comes back when its replacement never arrived, else goes."""
    for aside in folder.glob(f".{name_prefix}*.old"):
        out = folder / aside.name[1 : -len(".old")]
        if out.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.rename(out)
    for tmp in folder.glob(f".{name_prefix}*-*"):
        if tmp.is_dir() and not tmp.name.endswith(".old"):
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------- read
def migrate_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """Format 1 (``config`` = the whole experiment, audio format under ``data``, discriminator under ``model``) ->
    format 2. Only the model section is interpreted; the rest is carried over as the training config."""
    training = _mapping(doc.get("config"), "config")  # (the document is the reader's own: changed in place)
    stated = training.get("model") is not None
    model = _mapping(training.pop("model", None), "config.model")
    data = _mapping(training.get("data"), "config.data")
    train = training["train"] = _mapping(training.get("train"), "config.train")
    if not stated:  # as format 2 refuses a missing model section: every setting a default, silently, is no model
        raise CheckpointError("config.json of this format-1 bundle has no config.model section.")
    discriminator = model.pop("discriminator", None)
    if discriminator is not None:
        train["discriminator"] = discriminator
    for key in ("sample_rate", "channels", "clip_length"):
        if key in data and key in model:  # which one the model was trained at, the file cannot say
            raise CheckpointError(f"config.json of this format-1 bundle sets both config.data.{key} and "
                                  f"config.model.{key}.")  # fmt: skip
        if key in data:
            model[key] = data.pop(key)
    if "warmup_steps" in train:
        train["vae_steps"] = train.pop("warmup_steps")
    return {"format": FORMAT, "format_version": 2, "model": model, "training": training, "meta": doc.get("meta") or {}}


def _mapping(value: Any, what: str) -> dict[str, Any]:
    """A section of a format-1 config: a mapping, or nothing (None) read as an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CheckpointError(f"config.json of this format-1 bundle has a {what} that is not a mapping.")
    return value


MIGRATIONS = {1: migrate_v1}  # format version -> function to the next version


def _read_doc(path: Path) -> dict[str, Any]:
    cfg_file = bundle_file(path, "config.json", FILE_LIMITS["config.json"])
    if cfg_file is None:
        raise CheckpointError(f"{path} holds no config.json, so it is not a vaedemo bundle.")
    try:
        doc = json.loads(cfg_file.read_text(), object_pairs_hook=_object_without_repeats)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deeper than Python's stack
        raise CheckpointError(f"{path / 'config.json'} is not valid JSON.") from None
    except _RepeatedKeyError as e:
        raise CheckpointError(f"{path / 'config.json'} writes the key '{str(e.key)[:80]}' twice in one object (JSON "
                              "would keep the last without a word).") from None  # fmt: skip
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise CheckpointError(f"{path / 'config.json'} holds a number too long to read.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vaedemo bundle (config.json has no '\"format\": \"{FORMAT}\"').")
    version = doc.get("format_version")
    if version is None:
        raise CheckpointError(f"{path}'s config.json has no format_version.")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path}'s config.json has a format_version that is not a whole number: {str(version)[:20]}.")
    while version in MIGRATIONS:
        try:
            doc = MIGRATIONS[version](doc)
        except RecursionError:  # a value nested deeper than the migration walks (json reads deeper)
            raise CheckpointError(f"{path / 'config.json'} is nested too deeply to read.") from None
        version = doc["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is a bundle of format version {str(version)[:20]}, but this vaedemo reads versions 1 to "
            f"{FORMAT_VERSION}."
        )
    return doc


class _RepeatedKeyError(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refused where a key is written twice (``json`` keeps the last: a second ``model``
    section would silently replace the first)."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise _RepeatedKeyError(key)
        seen.add(key)
    return dict(pairs)


def read_bundle_config(path: Path) -> tuple[ModelConfig, dict[str, Any], dict[str, Any]]:
    """(model config, meta, training config) of a bundle folder, any supported format version."""
    doc = _read_doc(path)
    if not isinstance(doc.get("model"), dict):  # without one, every setting would silently be the default's
        raise CheckpointError(f"{path}'s config.json has no model section (a mapping of the model's settings).")
    for section in ("meta", "training"):
        if not isinstance(doc.get(section) or {}, dict):
            raise CheckpointError(f"{path}'s config.json has a {section} section that is not a mapping.")
    try:
        cfg = model_config_from_dict(doc["model"], str(path / "config.json"))
    except ConfigError as e:
        raise CheckpointError(f"{path} has a model config this vaedemo cannot use: {e}") from None
    return cfg, doc.get("meta") or {}, doc.get("training") or {}


# ---------------------------------------------------------------------------------------------------------- load
def expected_shapes(cfg: ModelConfig, where: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of the model the config describes, built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = AudioVAE(cfg)
    n = sum(p.numel() for p in model.parameters())
    if n > MAX_PARAMETERS:
        raise CheckpointError(
            f"{where} describes a model of {n / 1e6:.0f} M parameters, above the limit of {MAX_PARAMETERS / 1e6:.0f} M "
            "(check model.capacity, model.latent_size, model.flow_hidden)."
        )
    # tables the model builds for itself (buffers, some kept out of the weights: the partial bank's grows with bands x
    # partials^2 x the upsampling, 6 GB at bands 128, partials 1024 and a ratio of 3 within the bounds of each key)
    tables = sum(b.numel() for b in model.buffers())
    if tables > MAX_PARAMETERS:
        raise CheckpointError(
            f"{where} describes a model whose own tables hold {tables / 1e6:.0f} M values, above the limit of "
            f"{MAX_PARAMETERS / 1e6:.0f} M (check model.partials, model.bands, model.ratios)."
        )
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_model_size(cfg: ModelConfig, source: str) -> None:
    """A config's model within the limits a bundle's is held to, before it is built: ``model.capacity=4096`` (15 G
    parameters, 62 GB) ran out of memory building it. Raises :class:`CheckpointError` naming ``source``."""
    expected_shapes(cfg, source)


def _weights_limit(expected: dict[str, tuple[int, ...]]) -> int:
    """The most a weight file of these tensors can weigh: float32 values, and a header of their names and shapes."""
    return 8 + 65_536 + 256 * len(expected) + 4 * sum(math.prod(shape) for shape in expected.values())


def _check_weights(weights: Path, expected: dict[str, tuple[int, ...]]) -> None:
    try:
        with safe_open(str(weights), framework="pt") as f:
            slices = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
            stored = {k: tuple(v.get_shape()) for k, v in slices.items()}
            dtypes = {k: v.get_dtype() for k, v in slices.items()}
    except (SafetensorError, OSError, ValueError):
        raise CheckpointError(f"{weights} is not a readable safetensors file.") from None
    check_shapes(stored, expected, f"the weights in {weights} do not fit its config")
    other = next((k for k, dtype in dtypes.items() if dtype != "F32"), None)  # the model loads any type silently
    if other is not None:
        raise CheckpointError(f"the weights in {weights} are not all float32 (first: '{str(other)[:80]}' is "
                              f"{str(dtypes[other])[:10]}).")  # fmt: skip


def _check_finite(state: dict[str, torch.Tensor], weights: Path) -> None:
    """NaN or infinite weights load and decode every sound to NaN: refused as the bundle's fault, in one sentence."""
    bad = next((k for k, t in state.items() if not torch.isfinite(t).all()), None)
    if bad is not None:
        raise CheckpointError(f"the weights in {weights} hold values that are not finite (first in '{str(bad)[:80]}').")


def check_shapes(stored: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], what: str) -> None:
    """Refuse tensors (name -> shape) that are not those of :func:`expected_shapes`: ``what`` begins the sentence."""
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = [k for k in expected if k in stored and stored[k] != expected[k]]
    if missing or unexpected or wrong:
        k = (missing or unexpected or wrong)[0]
        kind = "missing" if missing else "unexpected" if unexpected else "of the wrong shape"
        n = len(missing) + len(unexpected) + len(wrong)
        raise CheckpointError(f"{what} ({n} tensors differ; first: '{str(k)[:80]}' is {kind}).")


def torch_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device this machine has, or one sentence: a name torch does not know ("nope"), or a
    device it cannot use (a GPU torch does not see, "meta", which holds no values) was torch's traceback at the first
    tensor moved there."""
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise VaedemoError(f"device must name a torch device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}.") from None
    try:
        torch.empty(0, device=d)  # (allocates nothing) what torch raises for a device it lacks
        usable = d.type != "meta"
    except (RuntimeError, AssertionError, NotImplementedError):  # AssertionError: "Torch not compiled with CUDA"
        usable = False
    if not usable:
        raise VaedemoError(f"device {str(d)!r} is not one this torch can use here; use 'cpu'.")
    return d


def load(source: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Load a bundle from a folder or ``hf://org/repo[@revision]``; the model is returned in eval mode on ``device``
    (one sentence when it is not a device this machine has, see :func:`torch_device`)."""
    device = torch_device(device)
    path = resolve(source)
    cfg, meta, training = read_bundle_config(path)
    expected = expected_shapes(cfg, path)
    weights = weights_file(source, path, _weights_limit(expected))
    _check_weights(weights, expected)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError):
        raise CheckpointError(f"{weights} is not a readable safetensors file.") from None
    _check_finite(state, weights)
    model = AudioVAE(cfg)
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    card_file = bundle_file(path, "README.md", FILE_LIMITS["README.md"])
    card = card_file.read_bytes().decode("utf-8", errors="replace") if card_file else ""  # shown as it is, never fatal
    return Bundle(cfg, model, meta, path, str(source), card, training)
