"""``python -m vaedemo.onset_eval --data DIR [--data DIR ...] [--sensitivity 1.0] [--seed 0] [--out FILE] [--json FILE]``

How well the onset detector (:mod:`vaedemo.onsets`) finds the hits of drum loops, the cuts a one-shot model
reconstructs a loop by. Loops are built from a folder of one-shots whose ``manifest.csv`` says each file's kit and what
it is (a GM key, as the soundfont renders have, or a ``family`` and an ``instrument`` column, as the recorded kits
have): for every kit with a kick, a snare and a closed hi-hat (what keeps time; an open one rings over the next steps),
two bars at 100, 140 and 170 bpm, hi-hats in eighths and in sixteenths, the kick on beats 1 and 3 (and on the "and" of
3 half the time), the snare on 2 and 4; each hit a random one-shot of its part (the folders hold each at several
velocities or layers), the loop normalised to its peak. The truth is every step where something was hit; a hit counts
as found when a detected onset lies within 30 ms of it (recall), a detection as right when it lies within 30 ms of a hit
(precision). The input's start, always an onset, is left out of both. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .audio import load_audio
from .cli import check_outputs, check_seed, emit_report, user_errors
from .data.gm import drum_family
from .data.oneshots import read_manifest
from .errors import VaedemoError
from .onsets import detect_onsets

SAMPLE_RATE = 44100
TOLERANCE_S = 0.03
TEMPOS_BPM = (100, 140, 170)
HAT_DIVISIONS = (8, 16)  # hi-hats on every eighth or every sixteenth
STEPS = 32  # two bars of sixteenths
PARTS = ("kick", "snare", "hi-hat")


def loop_part(row: dict) -> str | None:
    """Which of PARTS a manifest row is: its GM key's family or its ``family`` column, a hi-hat only when closed (GM
    key 42, or "closed" / "cl" in its instrument's name); None for anything else."""
    family = drum_family(row.get("key")) or row.get("family")
    if family != "hi-hat":
        return family if family in PARTS else None
    closed = drum_family(row.get("key")) and str(row.get("key")).split(".")[0] == "42"
    return family if closed or re.search(r"clos|\bcl\b", row.get("instrument") or "", re.IGNORECASE) else None


def kit_parts(folder: Path) -> dict[str, dict[str, list[Path]]]:
    """{kit: {part: [files]}} of the kits in ``folder``'s manifest that have all PARTS (see :func:`loop_part`)."""
    kits: dict[str, dict[str, list[Path]]] = {}
    for rel, row in sorted(read_manifest(folder).items()):
        part = loop_part(row)
        if part:
            kits.setdefault(row.get("kit") or "", {}).setdefault(part, []).append(folder / rel)
    return {kit: parts for kit, parts in kits.items() if set(PARTS) <= set(parts)}


def pattern(hats: int, rng: np.random.Generator) -> list[list[str]]:
    """The families hit at each of the STEPS sixteenths (an empty list: a rest)."""
    steps = []
    for i in range(STEPS):
        s = i % 16
        hit = []
        if s in (0, 8) or (s == 10 and rng.random() < 0.5):
            hit.append("kick")
        if s in (4, 12):
            hit.append("snare")
        if hats == 16 or s % 2 == 0:
            hit.append("hi-hat")
        steps.append(hit)
    return steps


def build_loop(parts: dict[str, list[Path]], bpm: float, hats: int, rng: np.random.Generator,
               load: Callable[[Path], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(a mono loop, the sample positions of its hits): two bars and half a second of the last hits' tails."""
    step = int(round(60 / bpm / 4 * SAMPLE_RATE))
    length = STEPS * step + SAMPLE_RATE // 2
    out = np.zeros(length, np.float32)
    truth = []
    for i, families in enumerate(pattern(hats, rng)):
        start = i * step
        for family in families:
            shot = load(parts[family][rng.integers(len(parts[family]))])
            n = min(len(shot), length - start)
            out[start : start + n] += shot[:n]
        if families:
            truth.append(start)
    return out / max(float(np.abs(out).max()), 1e-9), np.array(truth, dtype=np.int64)


def score(detected: np.ndarray, truth: np.ndarray, tolerance: int) -> tuple[float, float]:
    """(recall, precision) of ``detected`` onsets against the ``truth`` hits, the input's start left out."""
    found, hits = detected[detected > 0], truth[truth > 0]
    recall = float(np.mean([np.any(np.abs(found - t) <= tolerance) for t in hits])) if len(hits) else 1.0
    precision = float(np.mean([np.any(np.abs(truth - d) <= tolerance) for d in found])) if len(found) else 1.0
    return recall, precision


def evaluate_folder(folder: Path, sensitivity: float = 1.0, seed: int = 0,
                    detector: Callable[..., np.ndarray] = detect_onsets) -> dict:  # fmt: skip
    """The mean recall and precision of ``detector`` over the loops built from ``folder``'s kits."""
    if not folder.is_dir():
        raise VaedemoError(f"{folder} is not a folder.")
    kits = kit_parts(folder)
    if not kits:
        raise VaedemoError(f"{folder} has no kit with a kick, a snare and a closed hi-hat in its manifest.csv.")
    cache: dict[Path, np.ndarray] = {}

    def load(path: Path) -> np.ndarray:
        if path not in cache:
            cache[path] = load_audio(path, SAMPLE_RATE, 1)[0][:, 0]
        return cache[path]

    rng = np.random.default_rng(seed)
    rows = []
    for parts in kits.values():
        for bpm in TEMPOS_BPM:
            for hats in HAT_DIVISIONS:
                loop, truth = build_loop(parts, bpm, hats, rng, load)
                detected = detector(loop, SAMPLE_RATE, sensitivity)
                rows.append(score(detected, truth, int(TOLERANCE_S * SAMPLE_RATE)))
    recall, precision = np.mean(rows, axis=0)
    return {"folder": str(folder), "kits": len(kits), "loops": len(rows), "recall": float(recall),
            "precision": float(precision)}  # fmt: skip


def report(results: list[dict], command: str) -> str:
    lines = [f"Onsets of built drum loops (`{command}`): a hit found within {TOLERANCE_S * 1000:.0f} ms.", "",
             "| folder | kits | loops | recall | precision |", "|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        lines.append(f"| {r['folder']} | {r['kits']} | {r['loops']} | {r['recall']:.3f} | {r['precision']:.3f} |")
    return "\n".join(lines)


@user_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaedemo.onset_eval", description=__doc__.split("\n\n")[1])
    ap.add_argument("--data", action="append", required=True, help="folder of one-shots with a manifest.csv (repeatable)")
    ap.add_argument("--sensitivity", type=float, default=1.0, help="the detector's threshold in standard deviations of "
                    "the onset strength (default 1.0, what reconstruction uses)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="which one-shots the loops draw (default 0)")
    ap.add_argument("--out", help="write the markdown report here")
    ap.add_argument("--json", help="write the numbers here")
    a = ap.parse_args(argv)
    if not 0 < a.sensitivity < float("inf"):
        raise VaedemoError("--sensitivity must be a positive number.")
    check_seed(a.seed)
    check_outputs(a.data, out=a.out, json_path=a.json)  # before the work, not a traceback after it
    results = [evaluate_folder(Path(d), a.sensitivity, a.seed) for d in a.data]
    command = "python -m vaedemo.onset_eval " + " ".join(argv if argv is not None else sys.argv[1:])
    emit_report(report(results, command), results, a.out, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
