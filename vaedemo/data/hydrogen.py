"""Recorded drum kits as one-shots: the Hydrogen drum machine's kits (Debian's ``hydrogen-drumkits``) for evaluation.

The soundfonts this project trains and evaluates on are sampled kits rendered by one synthesiser; Hydrogen's kits are
other people's recordings (acoustic kits miked in rooms, hand percussion, analog and electronic machines), in their
own formats and levels. They are what "drums the model never heard" means, and are never trained on.

Each kit folder holds a ``drumkit.xml`` that lists its instruments and, per instrument, one or more sample files
(velocity layers). Every listed file is decoded, mixed to mono, resampled, cut like a soundfont render
(:func:`vaedemo.data.soundfont.cut_oneshot`: leading silence below -60 dBFS trimmed, a fixed duration with a short
fade-out), and written to ``<out>/<kit-slug>/<instrument-slug>_<n>.wav`` with a ``manifest.csv`` (file, kit,
instrument, family, license); an earlier output in ``<out>`` is replaced as a whole. Silent and duplicate one-shots are
dropped, and so are sample files outside their kit's folder and kits whose drumkit.xml cannot be read. Usage::

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

from ..audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, load_audio
from ..cli import user_errors
from ..errors import AudioError, DataError
from .oneshots import first_seen, replaced_folder, write_manifest, write_oneshot
from .soundfont import MAX_DURATION_S, check_duration, cut_oneshot, slug

DEFAULT_ROOT = Path("/usr/share/hydrogen/data/drumkits")
MANIFEST_FIELDS = ["file", "kit", "instrument", "family", "license"]
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
        # the old layout's <filename> is found twice (as a child, then by iter): one check, one warning per name
        files = [folder / n for n in dict.fromkeys(names) if n and (folder / n).is_file() and _inside(folder, n)]
        files = list(dict.fromkeys(files))
        if files:
            instruments.append((text(inst, "name") or files[0].stem, files))
    return Kit(text(root, "name") or folder.name, text(root, "license"), instruments)


def _inside(folder: Path, name: str) -> bool:
    """Whether the file a kit names lies in its folder: an absolute name or one with ``..`` (or a link out) could pull
    any audio file of the machine into the dataset, so such a name is left out with a warning."""
    if (folder / name).resolve().is_relative_to(folder.resolve()):
        return True
    print(f"skipping {name} in {folder / 'drumkit.xml'}: it lies outside the kit's folder", file=sys.stderr)
    return False


def unique_slugs(names: list[str]) -> list[str]:
    """:func:`slug` of each name, a later one whose slug is taken suffixed -2, -3, ... ("Kick 1", "Kick-1" -> kick-1,
    kick-1-2): two instruments (or kits) must not write one file."""
    slugs: list[str] = []
    for name in names:
        s, n = slug(name), 2
        while s in slugs:
            s, n = f"{slug(name)}-{n}", n + 1
        slugs.append(s)
    return slugs


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
    with replaced_folder(out, MANIFEST_FIELDS) as work:
        for folder, kit_slug in zip(kits, unique_slugs([p.name for p in kits])):
            rows += _collect_kit(folder, kit_slug, work, sample_rate, length, counts, seen)
        if not rows:  # raised inside the block: an earlier output is kept rather than replaced by an empty one
            raise DataError(f"no kit under {root} gave a one-shot ({counts['silent']} silent, {counts['undecodable']} "
                            "undecodable files; unreadable kits are named above).")  # fmt: skip
        write_manifest(work, rows, MANIFEST_FIELDS)
    return counts


def _collect_kit(
    folder: Path, kit_slug: str, out: Path, sample_rate: int, length: int, counts: dict[str, int], seen: set[str]
) -> list[dict]:
    """Write one kit's one-shots under ``out/kit_slug`` (counting the rest in ``counts``) and return the manifest rows;
    a kit whose drumkit.xml cannot be read is left out with a warning, as an undecodable sample is."""
    try:
        kit = read_kit(folder)
    except DataError as e:
        print(f"skipping the kit {folder.name}: {e}", file=sys.stderr)
        return []
    rows = []
    for (name, files), inst_slug in zip(kit.instruments, unique_slugs([name for name, _ in kit.instruments])):
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
            rel = f"{kit_slug}/{inst_slug}_{n}.wav"
            write_oneshot(out, rel, shot, sample_rate)
            rows.append({"file": rel, "kit": kit.name, "instrument": name, "family": drum_family_of(name),
                         "license": kit.license})  # fmt: skip
            counts["written"] += 1
    return rows


@user_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaedemo.data.hydrogen", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"the kits' folder (default {DEFAULT_ROOT})")
    ap.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per kit)")
    ap.add_argument("--sample-rate", type=int, default=44100)
    ap.add_argument("--duration", type=float, default=1.0, help=f"seconds per one-shot (at most {MAX_DURATION_S:g})")
    a = ap.parse_args(argv)
    if not MIN_SAMPLE_RATE <= a.sample_rate <= MAX_SAMPLE_RATE:  # (below, every file failed to resample: "undecodable")
        raise DataError(f"--sample-rate must be {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz, got {a.sample_rate}.")
    check_duration(a.duration, "--duration", a.sample_rate)  # before any kit is read: 1e7 was numpy's MemoryError
    counts = collect(a.root, a.out, a.sample_rate, a.duration)
    print(f"{a.out}: {counts['written']} one-shots ({counts['silent']} silent, {counts['duplicates']} duplicate, "
          f"{counts['undecodable']} undecodable files left out)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
