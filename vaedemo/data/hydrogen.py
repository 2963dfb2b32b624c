"""Recorded drum kits as one-shots: the Hydrogen drum machine's kits (Debian's ``hydrogen-drumkits``) for evaluation.

The soundfonts this project trains and evaluates on are sampled kits rendered by one synthesiser; Hydrogen's kits are
other people's recordings (acoustic kits miked in rooms, hand percussion, analog and electronic machines), in their
own formats and levels. They are what "drums the model never heard" means, and are never trained on.

Each kit folder holds a ``drumkit.xml`` that lists its instruments and, per instrument, one or more sample files
(velocity layers). Every listed file is decoded, mixed to mono, resampled, cut like a soundfont render
(:func:`vaedemo.data.soundfont.cut_oneshot`: leading silence below -60 dBFS trimmed, a fixed duration with a short
fade-out), and written to ``<out>/<kit-slug>/<instrument-slug>_<n>.wav`` with a ``manifest.csv`` (file, kit,
instrument, family, license). Silent and duplicate one-shots are dropped. Usage::

    sudo apt-get install hydrogen-drumkits
    python -m vaedemo.data.hydrogen --out data/drums_hydrogen
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..cli import user_errors
from ..errors import AudioError, DataError
from .oneshots import first_seen, write_manifest, write_oneshot
from .soundfont import cut_oneshot, slug

DEFAULT_ROOT = Path("/usr/share/hydrogen/data/drumkits")
MAX_SOURCE_SECONDS = 30.0  # longer files are loops or ambiences, not hits
# An instrument's family from words in its name (first match wins: "hat" before "tom" for "tom hat", which no kit has,
# and "ride bell" is a cymbal, as GM's key 53 is).
FAMILY_WORDS = (
    ("hi-hat", ("hat", "hh", "chh", "ohh", "hihat")),
    ("kick", ("kick", "bass drum", "bassdrum", "bd", "kik")),
    ("snare", ("snare", "sd", "rim", "stick", "snr")),
    ("tom", ("tom",)),
    ("cymbal", ("cymbal", "crash", "ride", "splash", "china", "cym")),
)


def drum_family_of(name: str) -> str:
    """The family (as :data:`vaedemo.data.gm.FAMILIES` names them) of an instrument called ``name``: from its words,
    'percussion' when none matches."""
    words = " ".join(re.findall(r"[a-z]+", name.lower().replace("hi-hat", "hihat")))
    for family, keys in FAMILY_WORDS:
        if any(re.search(rf"\b{re.escape(k)}", words) for k in keys):
            return family
    return "percussion"


@dataclass
class Kit:
    name: str
    license: str
    instruments: list[tuple[str, list[Path]]]  # (instrument name, its sample files in the order the kit lists them)


def read_kit(folder: Path) -> Kit:
    """A kit's name, license and instruments from its ``drumkit.xml`` (files the XML names but the folder lacks are
    left out; the old format names one file per instrument, the newer one a layer list)."""
    try:
        root = ET.parse(folder / "drumkit.xml").getroot()
    except (OSError, ET.ParseError) as e:
        raise DataError(f"{folder / 'drumkit.xml'} could not be read: {e}") from e
    ns = re.match(r"\{.*\}", root.tag)
    prefix = ns.group(0) if ns else ""

    def text(node, tag: str) -> str:
        found = node.find(prefix + tag)
        return (found.text or "").strip() if found is not None else ""

    instruments = []
    for inst in root.iter(prefix + "instrument"):
        names = [text(inst, "filename")] + [(f.text or "").strip() for f in inst.iter(prefix + "filename")]
        files = list(dict.fromkeys(folder / n for n in names if n and (folder / n).is_file()))
        if files:
            instruments.append((text(inst, "name") or files[0].stem, files))
    return Kit(text(root, "name") or folder.name, text(root, "license"), instruments)


def oneshot(path: Path, sample_rate: int, length: int) -> np.ndarray | None:
    """One file -> (length, 1) float32: mono, resampled, cut as a soundfont render is; None when it is silent."""
    x, _ = load_audio(path, sample_rate, 1, max_seconds=MAX_SOURCE_SECONDS)
    return cut_oneshot(x, 0, length, sample_rate)


def collect(root: Path, out: Path, sample_rate: int = 44100, duration: float = 1.0) -> dict[str, int]:
    """Write every kit's one-shots under ``out`` with a manifest; returns counts (written, silent, duplicates,
    undecodable)."""
    kits = sorted(p for p in root.iterdir() if (p / "drumkit.xml").is_file()) if root.is_dir() else []
    if not kits:
        raise DataError(f"no Hydrogen kits (folders with a drumkit.xml) under {root}; install hydrogen-drumkits.")
    length = round(duration * sample_rate)
    counts = {"written": 0, "silent": 0, "duplicates": 0, "undecodable": 0}
    seen: set[str] = set()
    rows = []
    for folder in kits:
        kit = read_kit(folder)
        for name, files in kit.instruments:
            for n, path in enumerate(files, 1):
                try:
                    shot = oneshot(path, sample_rate, length)
                except AudioError as e:
                    print(f"skipping {path}: {e}", file=sys.stderr)
                    counts["undecodable"] += 1
                    continue
                if shot is None:
                    counts["silent"] += 1
                    continue
                if not first_seen(shot, seen):
                    counts["duplicates"] += 1
                    continue
                rel = f"{slug(folder.name)}/{slug(name)}_{n}.wav"
                write_oneshot(out, rel, shot, sample_rate)
                rows.append({"file": rel, "kit": kit.name, "instrument": name, "family": drum_family_of(name),
                             "license": kit.license})  # fmt: skip
                counts["written"] += 1
    write_manifest(out, rows, ["file", "kit", "instrument", "family", "license"])
    return counts


@user_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaedemo.data.hydrogen", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"the kits' folder (default {DEFAULT_ROOT})")
    ap.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per kit)")
    ap.add_argument("--sample-rate", type=int, default=44100)
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per one-shot")
    a = ap.parse_args(argv)
    if a.sample_rate <= 0 or a.duration <= 0:
        raise DataError("--sample-rate and --duration must be positive.")
    counts = collect(a.root, a.out, a.sample_rate, a.duration)
    print(f"{a.out}: {counts['written']} one-shots ({counts['silent']} silent, {counts['duplicates']} duplicate, "
          f"{counts['undecodable']} undecodable files left out)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
