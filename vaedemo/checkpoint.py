"""Checkpoint bundles: a folder with ``config.json``, ``model.safetensors`` (inference weights only) and ``README.md``.

Loading never unpickles anything: JSON and safetensors only. A bundle loads from a local folder or from a Hugging Face
Hub repo (``hf://org/repo`` or ``hf://org/repo@revision``) through huggingface_hub, which honours ``HF_HUB_OFFLINE``.
A bundle of another format version, or whose weights do not fit its config, raises :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import Config, config_from_dict
from .errors import CheckpointError, ConfigError
from .nn.vae import AudioVAE

FORMAT = "vaedemo-bundle"
FORMAT_VERSION = 1
BUNDLE_FILES = ("config.json", "model.safetensors", "README.md")


@dataclass
class Bundle:
    """A loaded bundle: the config, the model (eval mode, CPU) and what the card reports."""

    config: Config
    model: AudioVAE
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    source: str = ""
    card: str = ""

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.config.name


# ---------------------------------------------------------------------------------------------------------- tables
def parameter_table(model: torch.nn.Module, depth: int = 2) -> list[tuple[str, str, int]]:
    """(module path, type, parameter count) for every submodule down to ``depth`` levels, in definition order."""
    rows = []
    for name, mod in model.named_modules():
        level = name.count(".") + 1 if name else 0
        if 0 < level <= depth:
            n = sum(p.numel() for p in mod.parameters())
            if n:
                rows.append((name, type(mod).__name__, n))
    rows.append(("total", type(model).__name__, sum(p.numel() for p in model.parameters())))
    return rows


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def model_card(cfg: Config, model: AudioVAE, meta: dict[str, Any]) -> str:
    """A markdown model card: data, training, metrics, parameter table and the full config."""
    m, d = cfg.model, cfg.data
    flows = f"posterior flow {m.posterior_flow_layers} couplings, prior flow {m.prior_flow_layers} couplings"
    lines = [
        f"# {meta.get('name') or cfg.name}",
        "",
        "An audio VAE bundle of vaedemo (RAVE-style PQMF VAE with RealNVP flows).",
        "Load it with `vaedemo.load(PATH)` or open it in the demo with `python app.py --checkpoint PATH`.",
        "",
        "## Model",
        f"- latent mode: **{m.latent_mode}**, latent size {m.latent_size}, {flows}",
        f"- {d.sample_rate} Hz, {'stereo' if d.channels == 2 else 'mono'}, PQMF {m.bands} bands, ratios {m.ratios}, "
        f"hop {cfg.hop} samples ({d.sample_rate / cfg.hop:.1f} latent frames/s), causal: {m.causal}",
        f"- clip length {d.clip_length} samples ({d.clip_length / d.sample_rate:.3f} s)"
        + (" — one latent vector per clip" if m.latent_mode == "single" else " during training"),
        "",
        "## Training",
        f"- data: {meta.get('data', d.root)}",
        f"- steps: {meta.get('step', 'unknown')}, phase reached: {meta.get('phase', 'unknown')}",
        f"- training time: {meta.get('training_time', 'unknown')}, hardware: {meta.get('hardware', 'unknown')}",
    ]
    if meta.get("command"):
        lines.append(f"- command: `{meta['command']}`")
    if meta.get("notes"):
        lines.append(f"- notes: {meta['notes']}")
    metrics = meta.get("metrics") or {}
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, (int, float)) else f"| {k} | {v} |" for k, v in metrics.items()]
    if meta.get("evaluation"):
        from .evaluate import report_markdown

        body = report_markdown(meta.get("name") or cfg.name, meta["evaluation"]).split("\n", 2)[2]
        lines += ["", "## Evaluation", "", f"Reproduce: `{meta.get('evaluation_command', 'python -m vaedemo.evaluate')}`", ""]
        lines += [ln.replace("## ", "### ", 1) if ln.startswith("## ") else ln for ln in body.splitlines()]
    lines += ["", "## Parameters", "", "| module | type | parameters |", "|---|---|---|"]
    lines += [f"| {n} | {t} | {_fmt_params(c)} |" for n, t, c in parameter_table(model)]
    lines += ["", "## Config", "", "```json", cfg.to_json(), "```", ""]
    return "\n".join(lines)


def hardware_description() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU ({os.cpu_count()} cores, {cpu})"


# ---------------------------------------------------------------------------------------------------------- save
def save_bundle(model: AudioVAE, out_dir: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write a bundle folder atomically (a half-written bundle never replaces a good one)."""
    out = Path(out_dir)
    meta = dict(meta or {})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "vaedemo": str(FORMAT_VERSION)})
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.cfg.to_dict(), "meta": meta}
        (tmp / "config.json").write_text(json.dumps(doc, indent=2))
        (tmp / "README.md").write_text(model_card(model.cfg, model, meta))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------------------- load
def resolve(source: str | Path) -> Path:
    """A local folder for ``source``: itself, or the Hub snapshot of ``hf://org/repo[@revision]``."""
    s = str(source)
    if s.startswith("hf://"):
        repo = s[len("hf://") :]
        repo, _, revision = repo.partition("@")
        if repo.count("/") != 1:
            raise CheckpointError(f"'{s}' is not a Hub id; write hf://org/repo or hf://org/repo@revision.")
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            path = snapshot_download(repo_id=repo, revision=revision or None, allow_patterns=list(BUNDLE_FILES))
        except LocalEntryNotFoundError:
            raise CheckpointError(
                f"{s} is not in the local Hugging Face cache and the Hub cannot be reached (offline or HF_HUB_OFFLINE=1)."
            ) from None
        except (HfHubHTTPError, OSError, ValueError) as e:
            raise CheckpointError(f"{s} could not be downloaded from the Hugging Face Hub ({type(e).__name__}).") from None
        return Path(path)
    p = Path(s)
    if not p.is_dir():
        raise CheckpointError(f"checkpoint {s} is not a bundle folder (expected a folder with config.json).")
    return p


def read_bundle_config(path: Path) -> tuple[Config, dict[str, Any]]:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{path} holds no config.json, so it is not a vaedemo bundle.")
    try:
        doc = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{cfg_file} is not valid JSON.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vaedemo bundle (config.json has no '\"format\": \"{FORMAT}\"').")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is a bundle of format version {version}, but this vaedemo reads version {FORMAT_VERSION}."
        )
    try:
        cfg = config_from_dict(doc.get("config") or {}, str(cfg_file))
    except ConfigError as e:
        raise CheckpointError(f"{path} has a config this vaedemo cannot use: {e}") from None
    return cfg, doc.get("meta") or {}


def load(source: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Load a bundle from a folder or ``hf://org/repo[@revision]``; the model is returned in eval mode."""
    path = resolve(source)
    cfg, meta = read_bundle_config(path)
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{path} holds no model.safetensors.")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError):
        raise CheckpointError(f"{weights} is not a readable safetensors file.") from None
    model = AudioVAE(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        k = (missing or unexpected or wrong)[0]
        what = "missing" if missing else "unexpected" if unexpected else "of the wrong shape"
        n = len(missing) + len(unexpected) + len(wrong)
        raise CheckpointError(
            f"the weights in {weights} do not fit its config ({n} tensors differ; first: '{k}' is {what})."
        )
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    card = (path / "README.md").read_text() if (path / "README.md").is_file() else ""
    return Bundle(cfg, model, meta, path, str(source), card)


def push_to_hub(bundle_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a bundle folder to a Hub model repo (created if needed); returns the commit URL."""
    path = Path(bundle_dir)
    read_bundle_config(path)  # refuse to upload something that is not a bundle
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        folder_path=str(path), repo_id=repo_id, allow_patterns=list(BUNDLE_FILES), commit_message="Upload vaedemo bundle"
    )
    return str(info)
