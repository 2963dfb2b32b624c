"""``python -m vaedemo.distance_map --checkpoint B [--checkpoint B ...] --data DIR [--data DIR ...] [--clips 200]
[--out FILE]``

Where a reconstruction's log-mel distance lies, next to Opus on the same clips. The evaluation's log-mel L1
(:mod:`vaedemo.metrics`) averages the distance of log magnitudes over every cell of the spectrogram, so a cell 80 dB
below a hit's peak weighs as much as the hit: on 1 s drum one-shots about half of the cells lie there, and a codec
that leaves them alone is charged for them as much as for the attack. Per folder, this splits each system's mean
log-mel L1 by the level of the reference's cells below the clip's loudest (:func:`~vaedemo.metrics.log_mel_l1_by_level`),
gives the distance over the top 40 dB alone (:func:`~vaedemo.metrics.audible_log_mel_l1`, what a listener hears of a
one-shot), names the clips each model is farthest above Opus 24 kbps on, and, where the folder's manifest.csv says
what each clip is (a GM key, or a family column), gives both distances per kind of drum
(:func:`~vaedemo.data.gm.drum_group`: pitched percussion apart from the rest), and how far each system moves a
pitched hit's strongest partial (:func:`~vaedemo.metrics.strongest_partial_hz`), and how often onto a multiple of
a model's latent frame rate, where the frame-periodic output of transposed-convolution upsampling lies.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from .cli import check_outputs, emit_report, user_errors
from .data.gm import PITCHED, drum_group
from .data.oneshots import read_manifest
from .errors import VaedemoError
from .evaluate import default_seconds, evaluation_sets, load_named_clips, opus_round_trip
from .metrics import AUDIBLE_RANGE_DB, LEVEL_EDGES_DB, level_breakdown, strongest_partial_hz

OPUS_KBPS = (12, 24)
HARDEST = 5  # clips listed per model and folder


def band_labels(edges_db=LEVEL_EDGES_DB) -> list[str]:
    """'0-20 dB', '20-40 dB', ..., 'below 80 dB': the level bands' names (below the clip's loudest cell)."""
    bounds = [0.0, *edges_db]
    return [f"{a:g}-{b:g} dB" for a, b in zip(bounds[:-1], bounds[1:])] + [f"below {edges_db[-1]:g} dB"]


def clip_scores(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> dict:
    """One clip's distance by level band, in total, and over its audible range."""
    contribution, share, audible = level_breakdown(reference, estimate, sample_rate)
    return {"total": float(contribution.sum()), "bands": contribution, "share": share, "audible": audible}


def system_row(name: str, scores: list[dict]) -> dict:
    """A system's means over the clips of a folder."""
    return {"system": name, "log_mel_l1": float(np.mean([s["total"] for s in scores])),
            "audible": float(np.mean([s["audible"] for s in scores])),
            "bands": np.mean([s["bands"] for s in scores], axis=0).tolist(),
            "share": np.mean([s["share"] for s in scores], axis=0).tolist()}  # fmt: skip


def hardest_clips(names: list[str], model: list[dict], reference: list[dict]) -> dict:
    """A model's distance above the reference's (Opus 24 kbps) clip by clip: its mean, the share of the summed excess
    (over the clips where the model is above) that its worst fifth of the clips holds, and its :data:`HARDEST` clips."""
    excess = np.array([m["total"] - r["total"] for m, r in zip(model, reference)])
    order = np.argsort(-excess)
    positive = excess.clip(0).sum()
    worst_fifth = excess[order[: max(1, len(order) // 5)]].clip(0).sum()
    return {"clips": [(names[i], model[i]["total"], reference[i]["total"]) for i in order[:HARDEST]],
            "mean_excess": float(excess.mean()),
            "worst_fifth_share": float(worst_fifth / positive) if positive > 0 else None}  # fmt: skip


def clip_groups(folder: Path, names: list[str]) -> list[str] | None:
    """Each clip's kind of drum from the folder's manifest.csv (its GM key, else its family column; '' where the row
    says neither); None without a manifest or where no clip has a kind."""
    rows = read_manifest(folder)
    if not rows:
        return None
    groups = [drum_group(rows.get(n, {}).get("key")) or rows.get(n, {}).get("family") or "" for n in names]
    return groups if any(groups) else None


def group_rows(groups: list[str], scores: dict[str, list[dict]]) -> list[dict]:
    """Per kind of drum (most clips first; clips of no kind left out): its clip count and each system's mean
    distance over the top 40 dB and over all cells."""
    kinds = sorted({g for g in groups if g}, key=lambda g: (-groups.count(g), g))
    rows = []
    for kind in kinds:
        picked = [i for i, g in enumerate(groups) if g == kind]
        rows.append({"group": kind, "clips": len(picked), "audible": _group_means(scores, picked, "audible"),
                     "log_mel_l1": _group_means(scores, picked, "total")})  # fmt: skip
    return rows


def _group_means(scores: dict[str, list[dict]], picked: list[int], key: str) -> dict[str, float]:
    return {system: float(np.mean([v[i][key] for i in picked])) for system, v in scores.items()}


def on_harmonic(hz: float, frame_rate: float, tolerance: float) -> bool:
    """Whether ``hz`` lies within ``tolerance`` Hz of a multiple of ``frame_rate``."""
    return abs(hz - frame_rate * round(hz / frame_rate)) <= tolerance


def pitch_rows(clips: list[np.ndarray], outputs: dict[str, list[np.ndarray]], sr: int,
               frame_rates: dict[str, float]) -> dict:  # fmt: skip
    """On pitched hits: each system's median |error| of the strongest partial in cents, and the share of clips whose
    strongest partial lies on a multiple of its frame rate (``frame_rates[system]``; within one bin of the
    8192-point spectrum), with the inputs' share on the same grid beside it (the chance level)."""
    def share_on_harmonics(freqs: list[float], rate: float) -> float:
        return float(np.mean([on_harmonic(f, rate, sr / 8192) for f in freqs]))

    truth = [strongest_partial_hz(x, sr) for x in clips]
    systems = {}
    for system, ys in outputs.items():
        found, rate = [strongest_partial_hz(y, sr) for y in ys], frame_rates[system]
        cents = [abs(1200 * np.log2(f / t)) for f, t in zip(found, truth)]
        systems[system] = {"frame_rate": rate, "median_cents": float(np.median(cents)),
                           "on_harmonics": share_on_harmonics(found, rate),
                           "input_on_harmonics": share_on_harmonics(truth, rate)}  # fmt: skip
    return {"clips": len(clips), "systems": systems}


def system_names(engines: list) -> list[str]:
    """Each model's name in the tables: its bundle's name, or its path where two bundles share one."""
    names = [e.bundle.name for e in engines]
    return [str(e.bundle.path) if names.count(n) > 1 else n for e, n in zip(engines, names)]


def folder_map(engines: list, folder: Path, clips: int, opus: bool) -> dict:
    """Every system's row on one folder's evaluation clips (the first model's evaluation set and clip length: a
    one-vector model's own clip, else 1 s), and each model's hardest clips against Opus 24 kbps."""
    first = engines[0]
    sr, length = first.sample_rate, round(default_seconds(first) * first.sample_rate)
    files, _, described = evaluation_sets(folder, first, clips)
    named = [(f.relative_to(folder).as_posix(), x) for f, x in load_named_clips(files, sr, length, first.channels, clips)]
    if not named:
        raise VaedemoError(f"{folder} has no readable audio clips to map.")
    names = system_names(engines)
    clips = [x for _, x in named]
    outputs = {name: [e.reconstruct(x, sr) for x in clips] for name, e in zip(names, engines)}
    if opus:
        with tempfile.TemporaryDirectory() as tmp:
            for kbps in OPUS_KBPS:
                outputs[f"opus {kbps} kbps"] = [opus_round_trip(x, sr, kbps, Path(tmp)) for x in clips]
    scores = {name: [clip_scores(x, y, sr) for x, y in zip(clips, ys)] for name, ys in outputs.items()}
    reference = scores.get(f"opus {OPUS_KBPS[-1]} kbps")
    clip_names = [n for n, _ in named]
    hardest = {name: hardest_clips(clip_names, scores[name], reference) for name in names} if reference else {}
    groups = clip_groups(folder, clip_names) or []
    pitched = [i for i, g in enumerate(groups) if g == PITCHED]
    rates = {name: sr / e.hop for name, e in zip(names, engines)}  # Opus is measured on the first model's grid
    rates |= {name: sr / first.hop for name in outputs if name not in rates}
    pitch = pitch_rows([clips[i] for i in pitched], {k: [v[i] for i in pitched] for k, v in outputs.items()}, sr,
                       rates) if pitched else None  # fmt: skip
    return {"data": described, "clips": len(named), "seconds": length / sr,
            "rows": [system_row(k, v) for k, v in scores.items()], "hardest": hardest,
            "groups": group_rows(groups, scores) if groups else [], "pitch": pitch}  # fmt: skip


def report(results: list[dict], command: str = "") -> str:
    labels = band_labels()
    lines = ["# Where the log-mel distance lies", "", *([f"Reproduce: `{command}`", ""] if command else []),
             "Log-mel L1 (80 bands, 2048 / 512, as `python -m vaedemo.evaluate`) split by the level of the reference's "
             "cells below the clip's loudest cell: each band's cells' share of the distance (the bands sum to the "
             f"total), and the distance over the cells within {AUDIBLE_RANGE_DB:g} dB of the loudest alone.", ""]  # fmt: skip
    for r in results:
        share = r["rows"][0]["share"]
        lines += [f"## {r['data']}", "", f"{r['clips']} clips of {r['seconds']:.3f} s; share of the cells per band: "
                  + ", ".join(f"{lab} {100 * s:.0f} %" for lab, s in zip(labels, share)), "",
                  f"| system | log-mel L1 | top {AUDIBLE_RANGE_DB:g} dB alone | " + " | ".join(labels) + " |",
                  "|---|---|---|" + "---|" * len(labels)]  # fmt: skip
        for row in r["rows"]:
            lines.append(f"| {row['system']} | {row['log_mel_l1']:.3f} | {row['audible']:.3f} | "
                         + " | ".join(f"{b:.3f}" for b in row["bands"]) + " |")  # fmt: skip
        for name, h in r["hardest"].items():
            worst = "; ".join(f"{clip} {m:.2f} vs {o:.2f}" for clip, m, o in h["clips"])
            share_text = f"{100 * h['worst_fifth_share']:.0f} %" if h["worst_fifth_share"] is not None else "n/a"
            lines += ["", f"{name}: {h['mean_excess']:+.3f} against Opus {OPUS_KBPS[-1]} kbps on average; its worst "
                      f"fifth of the clips holds {share_text} of its excess summed over the clips where it is above; "
                      f"farthest above it: {worst}."]  # fmt: skip
        lines += group_table(r["groups"], [row["system"] for row in r["rows"]]) + pitch_lines(r["pitch"])
        lines.append("")
    return "\n".join(lines)


def group_table(groups: list[dict], systems: list[str]) -> list[str]:
    """Markdown lines: per kind of drum, each system's distance over the top 40 dB (over all cells in brackets)."""
    if not groups:
        return []
    lines = ["", f"By kind of drum (from the folder's manifest.csv): top {AUDIBLE_RANGE_DB:g} dB alone (all cells)", "",
             "| kind | clips | " + " | ".join(systems) + " |", "|---|---|" + "---|" * len(systems)]  # fmt: skip
    for g in groups:
        cells = " | ".join(f"{g['audible'][s]:.3f} ({g['log_mel_l1'][s]:.3f})" for s in systems)
        lines.append(f"| {g['group']} | {g['clips']} | {cells} |")
    return lines


def pitch_lines(pitch: dict | None) -> list[str]:
    if not pitch:
        return []
    lines = ["", f"Pitched percussion ({pitch['clips']} clips): the strongest partial's median error, and the share of "
             "clips whose strongest partial lies on a multiple of the frame rate (a model's own; Opus on the first "
             "model's), the inputs' share on the same grid in brackets", "",
             "| system | frame rate (Hz) | median pitch error (cents) | on the frame rate's harmonics (inputs) |",
             "|---|---|---|---|"]  # fmt: skip
    for system, p in pitch["systems"].items():
        lines.append(f"| {system} | {p['frame_rate']:.2f} | {p['median_cents']:.0f} | {100 * p['on_harmonics']:.0f} % "
                     f"({100 * p['input_on_harmonics']:.0f} %) |")  # fmt: skip
    return lines


@user_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaedemo.distance_map", description=__doc__.split("\n\n")[1])
    ap.add_argument("--checkpoint", action="append", required=True, help="bundle folder or hf://org/repo (repeatable)")
    ap.add_argument("--data", action="append", required=True, help="folder of clips (repeatable)")
    ap.add_argument("--clips", type=int, default=200, help="clips per folder, spread over it (default 200)")
    ap.add_argument("--no-opus", action="store_true", help="leave out Opus (and the hardest clips against it)")
    ap.add_argument("--out", help="write the markdown report here")
    ap.add_argument("--json", help="write the numbers here")
    a = ap.parse_args(argv)
    if a.clips < 1:
        raise VaedemoError("--clips must be at least 1.")
    check_outputs(a.data, out=a.out, json_path=a.json)  # before the work, not a traceback after it
    from .inference import Engine

    engines = [Engine(c) for c in a.checkpoint]
    if len({e.sample_rate for e in engines}) > 1:
        raise VaedemoError("the checkpoints differ in sample rate; map them one at a time.")
    results = [folder_map(engines, Path(d), a.clips, not a.no_opus) for d in a.data]
    command = "python -m vaedemo.distance_map " + " ".join(argv if argv is not None else sys.argv[1:])
    emit_report(report(results, command), results, a.out, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
