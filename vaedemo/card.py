"""Model cards: the markdown README.md of a bundle (model, training, evaluation, parameters, config).

Also the evaluation report (:func:`report_markdown`), which both the card and ``python -m vaedemo.evaluate`` print.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .nn.modes import latent_mode


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


def _db(metrics: dict, key: str) -> str:
    """A signed dB figure, or a dash in results stored before that metric existed."""
    return f"{metrics[key]:+.1f}" if key in metrics else "—"


def _distance(metrics: dict, key: str) -> str:
    """A distance, or a dash in results stored before that metric existed."""
    return f"{metrics[key]:.3f}" if key in metrics else "—"


def each_draw(scores: dict) -> str:
    """Every draw's KID and their spread over draws, or nothing for a row of one set (a floor, a bound, a result
    stored before draws were averaged)."""
    draws = scores.get("kid_draws", [])
    if len(draws) < 2:
        return ""
    return f"{' / '.join(f'{k:.3f}' for k in draws)} (sd {scores['kid_draw_std']:.3f})"


def draws_line(seeds: list[int] | None) -> str:
    """What a prior's row is made of: one draw of samples, or the mean over several (peak levels pooled over them);
    nothing known of results stored before draws were recorded."""
    if not seeds:
        return "Prior rows: one draw of samples."
    if len(seeds) == 1:
        return f"Prior rows: one draw of samples (seed {seeds[0]}); KID ± is over subsets of it."
    return (f"Prior rows: the mean over {len(seeds)} draws of samples (seeds {', '.join(map(str, seeds))}; peak levels "
            "pooled over them); KID ± is over subsets within a draw.")


def report_markdown(name: str, results: list[dict]) -> str:
    """The evaluation report of :func:`vaedemo.evaluate.evaluate_folder` results."""
    lines = [f"# Evaluation of {name}", ""]
    for r in results:
        refined = (f"; refined {r['reconstruct_x_realtime_refined']:.1f}x" if "reconstruct_x_realtime_refined" in r
                   else "")  # fmt: skip
        lines += [f"## {r['data']}", "", f"{r['clips']} clips of {r['seconds']:.3g} s; reconstruction "
                  f"{r['reconstruct_x_realtime']:.0f}x real time{refined}.", "",
                  "| reconstruction | log-mel L1 | log-mel L1, top 40 dB | MR-STFT | spectral conv. | SI-SDR (dB) | "
                  "level (dB) | frame buzz (dB) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for sys_name, m in r["reconstruction"].items():
            lines.append(f"| {sys_name} | {m['log_mel_l1']:.3f} | {_distance(m, 'audible_log_mel_l1')} | "
                         f"{m['multi_resolution_stft']:.3f} | "
                         f"{m['spectral_convergence']:.3f} | {m['si_sdr']:.1f} | {_db(m, 'level_db')} | "
                         f"{_db(m, 'hop_buzz_db')} |")  # fmt: skip
        lines += ["", draws_line(r.get("prior_seeds")), "",
                  "| generation | KID | KID of each draw | FD | median / lowest peak (dBFS) |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for g_name, m in r["generation"].items():
            # a folder used whole has no floor row: the held-out clips' level is then on the bound's, beside its own
            level = " ".join(part for part in (
                f"{m['median_peak_dbfs']:.1f} / {m['min_peak_dbfs']:.1f}" if "median_peak_dbfs" in m else "",
                (f"(held-out clips: {m['real_peak_dbfs']:.1f})" if "median_peak_dbfs" in m else
                 f"held-out clips: {m['real_peak_dbfs']:.1f}") if "real_peak_dbfs" in m else "") if part)  # fmt: skip
            lines.append(f"| {g_name} | {m['kid']:.4f} ± {m['kid_std']:.4f} | {each_draw(m)} | {m['fd']:.2f} | "
                         f"{level} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def _model_lines(m: ModelConfig) -> list[str]:
    flows = f"posterior flow {m.posterior_flow_layers} couplings, prior flow {m.prior_flow_layers} couplings"
    return [
        "## Model",
        f"- latent mode: **{m.latent_mode}**, latent size {m.latent_size}"
        + (" plus the clip's peak level (normalised away before the backbone)" if m.level_latent else "") + f", {flows}",
        f"- {m.sample_rate} Hz, {'stereo' if m.channels == 2 else 'mono'}, PQMF {m.bands} bands, ratios {m.ratios}, "
        f"hop {m.hop} samples ({m.sample_rate / m.hop:.1f} latent frames/s), causal: {m.causal}",
        f"- clip length {m.clip_length} samples ({m.clip_length / m.sample_rate:.3f} s)"
        + (" — one latent vector per clip" if latent_mode(m).per_clip else " during training"),
        *_encoder_lines(m),
        *_branch_lines(m),
    ]


def _encoder_lines(m: ModelConfig) -> list[str]:
    """The encoder's stack where it is not RAVE's (the wave stack, said by nothing, as before it had another kind)."""
    if m.encoder != "spectral":
        return []
    return [f"- encoder: **spectral**, log-mel spectra and energies of the audio per latent frame (no phase), then "
            f"{m.encoder_width} channels of residual convs at the frame rate"]  # fmt: skip


def _branch_lines(m: ModelConfig) -> list[str]:
    """What the decoder adds beside its conv stack's bands (none for a plain RAVE-style decoder)."""
    branches = []
    if m.noise_bands:
        kind = "relative to the stack's band level" if m.noise_relative else "absolute (RAVE's)"
        branches.append(f"filtered noise, {m.noise_bands} magnitudes a band every {m.noise_hop} band samples, {kind}")
    if m.partials:
        branches.append(f"a bank of {m.partials} partials")
    return [f"- decoder branches beside the conv stack: {'; '.join(branches)}"] if branches else []


def _training_lines(meta: dict[str, Any], training: dict[str, Any]) -> list[str]:
    data = meta.get("data") or (training.get("data") or {}).get("root", "unknown")
    lines = [
        "## Training",
        f"- data: {data}",
        f"- steps: {meta.get('step', 'unknown')}, phase reached: {meta.get('phase', 'unknown')}",
        f"- training time: {meta.get('training_time', 'unknown')}, hardware: {meta.get('hardware', 'unknown')}",
    ]
    if meta.get("command"):
        lines.append(f"- command: `{meta['command']}`")
    start = (training.get("train") or {}).get("init_from")
    if start:  # a fine-tune: the steps above came after the source bundle's own training
        lines.append(f"- started from the weights of `{start}` (`train.init_from`)")
    if meta.get("recipe"):  # the whole chain of runs, where the command above is its last
        lines.append(f"- made from nothing (every training run it went through, in order): `{meta['recipe']}`")
    if meta.get("notes"):
        lines.append(f"- notes: {meta['notes']}")
    return lines


def _metric_lines(meta: dict[str, Any], name: str) -> list[str]:
    lines = []
    metrics = meta.get("metrics") or {}
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, (int, float)) else f"| {k} | {v} |" for k, v in metrics.items()]
    if meta.get("evaluation"):
        body = report_markdown(name, meta["evaluation"]).split("\n", 2)[2]
        lines += ["", "## Evaluation", "", f"Reproduce: `{meta.get('evaluation_command', 'python -m vaedemo.evaluate')}`", ""]
        lines += [ln.replace("## ", "### ", 1) if ln.startswith("## ") else ln for ln in body.splitlines()]
    return lines


def model_card(cfg: ModelConfig, model: torch.nn.Module, meta: dict[str, Any], training: dict[str, Any]) -> str:
    """A markdown model card: model, data, training, metrics, parameter table, model and training config."""
    name = meta.get("name") or training.get("name") or "vaedemo model"
    lines = [
        f"# {name}",
        "",
        "An audio VAE bundle of vaedemo (RAVE-style PQMF VAE with RealNVP flows).",
        "Load it with `vaedemo.load(PATH)` or open it in the demo with `python app.py --checkpoint PATH`.",
        "",
        *_model_lines(cfg),
        "",
        *_training_lines(meta, training),
        *_metric_lines(meta, name),
        "",
        "## Parameters",
        "",
        "| module | type | parameters |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {t} | {_fmt_params(c)} |" for n, t, c in parameter_table(model)]
    lines += ["", "## Model config", "", "```json", json.dumps(cfg.to_dict(), indent=2), "```"]
    if training:
        lines += ["", "## Training config", "", "```json", json.dumps(training, indent=2), "```"]
    return "\n".join(lines + [""])
