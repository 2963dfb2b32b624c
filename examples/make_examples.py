"""Regenerate the demo's example sounds: ``.venv/bin/python examples/make_examples.py``.

Drum one-shots are rendered with :mod:`vaedemo.data.soundfont` from the two *evaluation* soundfonts (never
FluidR3_GM, the training set) — the same as running, per soundfont::

    python -m vaedemo.data.soundfont --soundfont /usr/share/sounds/sf2/TimGM6mb.sf2 --kind drums \
        --programs 0,25 --pitches 36,38,42,46,49,50 --velocities 100 --duration 0.8 --gain 1.2 --out DIR
    python -m vaedemo.data.soundfont --soundfont /usr/share/sounds/sf3/MuseScore_General.sf3 --kind drums \
        --programs 0 --pitches 36,38,42,46,49,50 --velocities 100 --duration 0.8 --gain 1.2 --out DIR

then renamed to ``<kit>_<drum>.flac`` (16-bit FLAC). One longer sound, ``drum_loop.flac`` (two bars at 100 bpm,
4.8 s), is assembled from the TimGM6mb Standard kit hits. ``manifest.csv`` (file,kit,program,key,velocity) describes
every file, so the demo's latent map can colour the points by kit or drum.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from vaedemo.data.soundfont import render_soundfont, slug

HERE = Path(__file__).resolve().parent

SOUNDFONTS = [
    ("timgm6mb", Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), (0, 25)),
    ("musescore", Path("/usr/share/sounds/sf3/MuseScore_General.sf3"), (0,)),
]
DRUMS = {36: "kick", 38: "snare", 42: "closed-hat", 46: "open-hat", 49: "crash", 50: "tom"}
SR, BPM, VELOCITY = 44100, 100, 100
# two bars of 16th notes: (step, key, gain)
PATTERN = [(0, 49, 0.6), (0, 36, 1.0), (6, 36, 0.8), (10, 36, 0.9), (4, 38, 1.0), (12, 38, 1.0)]
PATTERN += [(s, 42, 0.7) for s in range(0, 16, 2) if s != 14] + [(14, 46, 0.7)]


def render_drums() -> list[dict]:
    rows = []
    for name, soundfont, programs in SOUNDFONTS:
        if not soundfont.is_file():
            raise SystemExit(f"error: {soundfont} is missing (apt-get install timgm6mb-soundfont "
                             "musescore-general-soundfont).")
        with tempfile.TemporaryDirectory() as tmp:
            render_soundfont(soundfont, tmp, "drums", SR, 0.8, (VELOCITY,), programs, tuple(DRUMS), gain=1.2,
                             keep_duplicates=True)  # fmt: skip
            with open(Path(tmp) / "manifest.csv") as f:
                for row in csv.DictReader(f):
                    x, sr = sf.read(Path(tmp) / row["file"], dtype="float32")
                    out = f"{name}-{slug(row['kit'])}_{DRUMS[int(row['key'])]}.flac"
                    sf.write(HERE / out, x, sr, subtype="PCM_16")
                    rows.append({**row, "file": out, "kit": f"{row['kit']} ({name})"})
    return rows


def drum_loop(rows: list[dict]) -> dict:
    kit = [r for r in rows if r["kit"] == "Standard (timgm6mb)"]
    hits = {int(r["key"]): sf.read(HERE / r["file"], dtype="float32")[0] for r in kit}
    step = round(SR * 60 / BPM / 4)
    out = np.zeros(32 * step + len(next(iter(hits.values()))), np.float32)
    for bar in range(2):
        for s, key, gain in PATTERN:
            start = (16 * bar + s) * step
            out[start : start + len(hits[key])] += gain * hits[key]
    out = out[: 32 * step]
    out *= 0.5 / np.abs(out).max()
    sf.write(HERE / "drum_loop.flac", out, SR, subtype="PCM_16")
    return {"file": "drum_loop.flac", "kit": "Standard (timgm6mb)", "program": 0, "key": "", "velocity": ""}


def main() -> int:
    for old in HERE.glob("*.flac"):
        old.unlink()
    rows = render_drums()
    rows.append(drum_loop(rows))
    with open(HERE / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "kit", "program", "key", "velocity"])
        writer.writeheader()
        writer.writerows(rows)
    size = sum((HERE / r["file"]).stat().st_size for r in rows)
    print(f"wrote {len(rows)} examples ({size / 1024:.0f} KB) and manifest.csv to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
