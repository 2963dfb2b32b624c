"""Writing a folder of one-shots: what the soundfont renderer (:mod:`.soundfont`) and the recorded-kit collector
(:mod:`.hydrogen`) share — content-hash deduplication, 16-bit WAV files under relative paths, one ``manifest.csv``."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf


def first_seen(shot: np.ndarray, seen: set[str]) -> bool:
    """True the first time these exact samples come by (their hash is added to ``seen``): soundfonts and kits reuse
    one sample under many names and notes, and a duplicate would count twice in training or evaluation."""
    digest = hashlib.sha1(np.ascontiguousarray(shot).tobytes()).hexdigest()
    if digest in seen:
        return False
    seen.add(digest)
    return True


def write_oneshot(out: Path, rel: str, shot: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """``shot`` (samples, channels) to ``out / rel``, clipped to full scale."""
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out / rel), np.clip(shot, -1.0, 1.0), sample_rate, subtype=subtype)


def write_manifest(out: Path, rows: list[dict], fields: list[str]) -> None:
    """``out/manifest.csv``: one row per written file, ``fields`` as columns (``file`` first)."""
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def read_manifest(folder: Path) -> dict[str, dict]:
    """``folder/manifest.csv``'s rows keyed by their ``file`` (a path relative to the folder); {} without one."""
    path = folder / "manifest.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {r["file"]: r for r in csv.DictReader(f) if r.get("file")}
