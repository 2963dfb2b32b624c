"""Render one-shots (drum hits, pitched notes) from an SF2/SF3 soundfont with the fluidsynth CLI.

This module owns turning a soundfont into a folder of real sampled one-shots that :mod:`vaedemo.data.dataset` reads:

* :func:`~vaedemo.data.sf2.read_presets` lists a soundfont's presets from the RIFF ``phdr`` chunk (drum kits live in bank 128);
* per kit (or program) one standard MIDI file is written (:func:`midi_bytes`) with every (key, velocity) note spaced
  ``duration + 0.5`` s apart and an All Sound Off after each window, so tails never bleed into the next note;
* fluidsynth renders it once (reverb and chorus off); the render is cut at the known onsets, leading silence below
  -60 dBFS is trimmed, the duration fixed (pad/crop) with a short fade-out, silent notes (keys a kit lacks) skipped;
* one-shots identical to one already written are dropped (FluidR3_GM's 31 kits share most samples: ~500 distinct
  hits of ~4400), so duplicates cannot end up on both sides of a train/val split;
* files land in ``<out>/<preset-slug>/<key>_<velocity>.wav`` with a ``manifest.csv`` (file,kit,program,key,velocity);
  an earlier output in ``<out>`` is replaced as a whole (:func:`vaedemo.data.oneshots.replaced_folder`).

Usage::

    python -m vaedemo.data.soundfont --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 --kind drums --out data/drums
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..cli import user_errors
from ..errors import DataError
from .oneshots import first_seen, replaced_folder, write_manifest, write_oneshot
from .sf2 import DRUM_BANK, Preset, read_presets

DRUM_CHANNEL = 9  # 0-based MIDI channel 10: fluidsynth takes program changes there from bank 128
GM_DRUM_KEYS = tuple(range(35, 82))  # GM percussion map: 35 acoustic bass drum .. 81 open triangle
# a spread of GM families: piano, e-piano, mallets, organ, guitars, basses, strings, brass, reed, flute, leads, pad
DEFAULT_PROGRAMS = (0, 4, 11, 16, 24, 27, 33, 38, 40, 48, 56, 61, 65, 73, 80, 81, 88)
DEFAULT_PITCHES = tuple(range(36, 85))
DEFAULT_VELOCITIES = (40, 80, 120)
LEAD_S = 0.2  # silence before the first note
GAP_S = 0.5  # between the end of one note's window and the next onset
WINDOW_SLACK_S = 0.25  # extra audio cut after each onset, so trimming leading silence still leaves `duration`
SILENCE_DBFS = -60.0
FADE_S = 0.02
# a one-shot's longest --duration: a render holds every note's window in memory and on disk (--duration 3000 took
# 2.6 GB for one note, 100000 left a 13 GB temporary folder, 1e9 overflowed into "every note ... was silent")
MAX_DURATION_S = 60.0
MANIFEST_FIELDS = ["file", "kit", "program", "key", "velocity"]


# -------------------------------------------------------------------------------------------------------------- midi


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def note_onsets_ms(count: int, duration: float) -> list[int]:
    """Onset in milliseconds of each of ``count`` notes: LEAD_S, then every window + slack + gap."""
    step = round((duration + WINDOW_SLACK_S + GAP_S) * 1000)
    return [round(LEAD_S * 1000) + i * step for i in range(count)]


def midi_bytes(
    notes: list[tuple[int, int]], duration: float, channel: int, program: int, bank: int = 0, hold: float | None = None
) -> bytes:
    """A format-0 standard MIDI file playing ``notes`` [(key, velocity)] one after another.

    Timing is 1 tick = 1 ms (division 1000, tempo 1 s per quarter). Each note is held ``hold`` seconds (default
    ``duration``) and followed by All Sound Off (CC 120) at the end of its cut window.
    """
    hold_ms = round((duration if hold is None else hold) * 1000)
    off_ms = round((duration + WINDOW_SLACK_S) * 1000)
    events: list[tuple[int, int, bytes]] = [(0, 0, b"\xff\x51\x03" + (1_000_000).to_bytes(3, "big"))]
    if channel != DRUM_CHANNEL:  # bank select is ignored on the drum channel, which always reads bank 128
        events += [(0, 1, bytes([0xB0 | channel, 0, bank & 0x7F])), (0, 2, bytes([0xB0 | channel, 32, 0]))]
    events.append((0, 3, bytes([0xC0 | channel, program & 0x7F])))
    onsets = note_onsets_ms(len(notes), duration)
    for t, (key, vel) in zip(onsets, notes):
        events.append((t, 5, bytes([0x90 | channel, key, vel])))
        events.append((t + hold_ms, 4, bytes([0x80 | channel, key, 0])))
        events.append((t + off_ms, 4, bytes([0xB0 | channel, 120, 0])))
    end = (onsets[-1] if onsets else 0) + round((duration + WINDOW_SLACK_S + GAP_S) * 1000)
    events.sort(key=lambda e: (e[0], e[1]))
    track, last = bytearray(), 0
    for t, _, data in events:
        track += _vlq(t - last) + data
        last = t
    track += _vlq(end - last) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 1000) + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


# --------------------------------------------------------------------------------------------------------- rendering


def _fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise DataError("fluidsynth is not on PATH; install it (e.g. apt-get install fluidsynth) to render soundfonts.")
    return exe


def _render(exe: str, soundfont: Path, midi: Path, wav: Path, sample_rate: int, gain: float) -> np.ndarray:
    # dynamic sample loading decodes only the samples the notes use: 4x faster on SF3 (vorbis), same audio;
    # no default soundfont: fluidsynth would otherwise fall back to default-GM silently when ours fails to load
    cmd = [exe, "-ni", "-q", "-o", "synth.dynamic-sample-loading=1", "-o", "synth.default-soundfont=",
           "-g", str(gain), "-r", str(sample_rate), "-R", "0", "-C", "0", "-O", "float", "-T", "wav",
           "-F", str(wav), str(soundfont), str(midi)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    log = proc.stderr + proc.stdout
    if proc.returncode != 0 or not wav.is_file() or "Failed to load" in log:  # it exits 0 on a bad soundfont
        errors = [line for line in log.splitlines() if "error" in line.lower()] or log.strip().splitlines()
        raise DataError(f"fluidsynth could not render {soundfont} ({(errors or ['no output'])[0].strip()}).")
    x, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise DataError(f"fluidsynth rendered at {sr} Hz instead of the requested {sample_rate} Hz.")
    return x


def cut_oneshot(x: np.ndarray, start: int, length: int, sample_rate: int) -> np.ndarray | None:
    """The one-shot starting at or after ``start`` in ``x`` (samples, channels): leading silence below -60 dBFS
    trimmed, then exactly ``length`` samples (zero-padded) with a short fade-out; None when the window is silent."""
    window = np.ascontiguousarray(x[start : start + length + round(WINDOW_SLACK_S * sample_rate)])
    loud = np.abs(window.ravel()) > 10 ** (SILENCE_DBFS / 20)  # flat: much faster than a max over axis 1
    first = int(loud.argmax()) if loud.size else 0
    if not loud.size or not loud[first]:
        return None
    seg = window[first // x.shape[1] : first // x.shape[1] + length]
    out = np.zeros((length, x.shape[1]), dtype=np.float32)
    out[: len(seg)] = seg
    n = min(round(FADE_S * sample_rate), length)
    out[length - n :] *= (0.5 + 0.5 * np.cos(np.linspace(0, np.pi, n, dtype=np.float32)))[:, None]
    return out


def slug(name: str) -> str:
    """Folder name for a preset: lower case, runs of other characters as '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "preset"


@dataclass
class RenderSummary:
    """What :func:`render_soundfont` wrote."""

    out: Path
    files: int = 0
    presets: list[str] = field(default_factory=list)
    silent: int = 0  # notes skipped because the preset has nothing there
    duplicates: int = 0  # one-shots dropped because an identical one was already written
    clipped: int = 0  # one-shots whose peak reached full scale (lower --gain)
    seconds: float = 0.0

    def __str__(self) -> str:
        clip = f", {self.clipped} clipped (lower --gain)" if self.clipped else ""
        names = ", ".join(self.presets[:6]) + (f", ... {len(self.presets) - 6} more" if len(self.presets) > 6 else "")
        return (
            f"wrote {self.files} one-shots from {len(self.presets)} presets ({names}) to {self.out} in "
            f"{self.seconds:.1f} s; skipped {self.silent} silent notes and {self.duplicates} duplicates{clip}."
        )


@dataclass(frozen=True)
class _Render:
    """One fluidsynth call per preset; holds the settings shared by every preset of a :func:`render_soundfont` call."""

    exe: str
    soundfont: Path
    kind: str
    tmp: Path
    notes: list[tuple[int, int]]
    sample_rate: int
    duration: float
    gain: float

    def __call__(self, preset: Preset, folder: str) -> np.ndarray:
        drums = self.kind == "drums"
        hold = self.duration if drums else 0.75 * self.duration  # pitched notes get released inside the window
        midi, wav = self.tmp / f"{folder}.mid", self.tmp / f"{folder}.wav"
        channel = DRUM_CHANNEL if drums else 0
        midi.write_bytes(midi_bytes(self.notes, self.duration, channel, preset.program, preset.bank, hold))
        x = _render(self.exe, self.soundfont, midi, wav, self.sample_rate, self.gain)
        wav.unlink(missing_ok=True)
        return x


def _write_oneshots(
    x: np.ndarray, preset: Preset, folder: str, r: _Render, channels: int, subtype: str, summary: RenderSummary,
    seen: set[str] | None,
) -> list[dict]:  # fmt: skip
    """Cut the render ``x`` (samples, 2) at the note onsets, write the non-silent one-shots not in ``seen`` (content
    hashes; None keeps duplicates), count the rest in ``summary``, and return the manifest rows."""
    length = round(r.duration * r.sample_rate)
    rows = []
    for onset_ms, (key, vel) in zip(note_onsets_ms(len(r.notes), r.duration), r.notes):
        shot = cut_oneshot(x, round(onset_ms * r.sample_rate / 1000), length, r.sample_rate)
        if shot is None:
            summary.silent += 1
            continue
        if channels == 1:  # downmix per shot: touching the whole render costs more than the cutting
            shot = shot.mean(axis=1, keepdims=True)
        if seen is not None and not first_seen(shot, seen):
            summary.duplicates += 1
            continue
        summary.clipped += int(np.abs(shot).max() >= 1.0)
        rel = f"{folder}/{key}_{vel}.wav"
        write_oneshot(summary.out, rel, shot, r.sample_rate, subtype)
        rows.append({"file": rel, "kit": preset.name, "program": preset.program, "key": key, "velocity": vel})
    return rows


def render_soundfont(
    soundfont: str | Path,
    out: str | Path,
    kind: str = "drums",
    sample_rate: int = 44100,
    duration: float = 1.0,
    velocities: tuple[int, ...] = DEFAULT_VELOCITIES,
    programs: tuple[int, ...] | None = None,
    pitches: tuple[int, ...] | None = None,
    max_kits: int | None = None,
    gain: float = 0.7,
    channels: int = 1,
    jobs: int | None = None,
    subtype: str = "PCM_16",
    keep_duplicates: bool = False,
) -> RenderSummary:
    """Render one-shots of every drum kit (``kind="drums"``) or of GM ``programs`` in bank 0 (``"pitched"``).

    ``programs`` restricts the presets (default: all kits / :data:`DEFAULT_PROGRAMS`), ``pitches`` the keys (default
    GM percussion keys 35..81 / 36..84), ``max_kits`` the number of presets. One fluidsynth process per preset, up to
    ``jobs`` at a time. Writes ``<out>/<preset-slug>/<key>_<velocity>.wav`` (``subtype`` PCM_16, PCM_24 or FLOAT)
    and ``<out>/manifest.csv``; one-shots identical to an earlier one (in preset order) are dropped unless
    ``keep_duplicates``. The default gain keeps FluidR3_GM's loudest hit (TR-808 hi-hat, velocity 120) below full scale.
    """
    t0 = time.perf_counter()
    soundfont, out = Path(soundfont), Path(out)
    _check_settings(kind, velocities, pitches, programs, duration, gain, max_kits, jobs, sample_rate)
    chosen, keys = _choose_presets(soundfont, kind, programs, pitches, max_kits)
    notes = [(k, v) for k in keys for v in velocities]
    seen: set[str] | None = None if keep_duplicates else set()
    with replaced_folder(out, MANIFEST_FIELDS) as work, tempfile.TemporaryDirectory(prefix="vaedemo-sf-") as tmp:
        summary = RenderSummary(work, presets=[q.name for q in chosen])
        render = _Render(_fluidsynth(), soundfont, kind, Path(tmp), notes, sample_rate, duration, gain)
        rows: list[dict] = []
        for q, folder, x in _render_in_order(render, chosen, _folders(chosen), jobs or min(4, os.cpu_count() or 1)):
            rows += _write_oneshots(x, q, folder, render, channels, subtype, summary, seen)
        if not rows and not summary.duplicates:
            raise DataError(f"every note rendered from {soundfont} was silent (keys {min(keys)}..{max(keys)}).")
        write_manifest(work, rows, MANIFEST_FIELDS)
    summary.out = out  # where the one-shots now lie (they were written beside it)
    summary.files = len(rows)
    summary.seconds = time.perf_counter() - t0
    return summary


FLUIDSYNTH_RATES = (8000, 96000)  # the sample rates fluidsynth renders at (synth.sample-rate)


def _check_settings(kind: str, velocities, pitches, programs, duration: float, gain: float, max_kits, jobs,
                    sample_rate: int) -> None:  # fmt: skip
    """Each setting a caller can get wrong as one sentence before anything is rendered (NaN fails every comparison,
    so ``not 0 < x`` catches it where ``x <= 0`` would not). A rate outside fluidsynth's range came back in its own
    words, which named no option."""
    if kind not in ("drums", "pitched"):
        raise DataError(f"kind must be 'drums' or 'pitched', got '{kind}'.")
    midi_numbers = (*(pitches or ()), *(programs or ()))
    bad = [v for v in velocities if not 0 < v < 128] + [k for k in midi_numbers if not 0 <= k < 128]
    if bad or not velocities:
        raise DataError(f"velocities must be 1..127, pitches and programs 0..127; got {bad or 'no velocity'}.")
    lo, hi = FLUIDSYNTH_RATES
    if not lo <= sample_rate <= hi:
        raise DataError(f"the sample rate must be {lo}..{hi} Hz (fluidsynth's range), got {sample_rate}.")
    check_duration(duration, "the duration", sample_rate)
    if any(given is not None and len(given) == 0 for given in (pitches, programs)):  # None, not (), means "all"
        raise DataError("the pitches and programs, when given, must name at least one number.")
    if not 0 <= gain <= 10:
        raise DataError(f"the gain must be 0..10 (fluidsynth's range), got {gain}.")
    for what, n in (("kits (--max-kits)", max_kits), ("fluidsynth processes (--jobs)", jobs)):
        if n is not None and n < 1:
            raise DataError(f"the number of {what} must be at least 1, got {n}.")


def check_duration(duration: float, name: str, sample_rate: int) -> None:
    """Refuse a one-shot's duration (``name``: how the caller's user calls it) that is not above 0 and at most
    :data:`MAX_DURATION_S` (NaN included: it fails every comparison), or under one sample at ``sample_rate`` (a numpy
    traceback, or empty files counted as duplicates)."""
    if not 0 < duration <= MAX_DURATION_S:
        raise DataError(f"{name} must be above 0 and at most {MAX_DURATION_S:g} s (a one-shot), got {duration}.")
    if round(duration * sample_rate) < 1:
        raise DataError(f"{name} {duration:g} s is less than one sample at {sample_rate} Hz.")


def _choose_presets(
    soundfont: Path, kind: str, programs, pitches, max_kits: int | None
) -> tuple[list[Preset], tuple[int, ...]]:
    """The presets to render and the keys to play: drum kits (bank 128) or melodic programs of bank 0."""
    presets = read_presets(soundfont)
    if kind == "drums":
        chosen = [q for q in presets if q.bank == DRUM_BANK and (programs is None or q.program in programs)]
        keys = tuple(pitches) if pitches else GM_DRUM_KEYS
    else:
        chosen = [q for q in presets if q.bank == 0 and q.program in (programs or DEFAULT_PROGRAMS)]
        keys = tuple(pitches) if pitches else DEFAULT_PITCHES
    if max_kits is not None:
        chosen = chosen[:max_kits]
    if not chosen:
        what = "drum kits (presets in bank 128)" if kind == "drums" else "melodic presets in bank 0"
        raise DataError(f"{soundfont} has no {what}{' among programs ' + str(list(programs)) if programs else ''}.")
    return chosen, keys


def _folders(chosen: list[Preset]) -> list[str]:
    """One folder per preset: "Standard" -> standard; a second preset of the same name gets its program number."""
    folders: list[str] = []
    for q in chosen:
        folders.append(slug(q.name) if slug(q.name) not in folders else f"{slug(q.name)}-{q.program}")
    return folders


def _render_in_order(render: _Render, chosen: list[Preset], folders: list[str], workers: int):
    """Yield (preset, folder, render) in preset order while fluidsynth renders run ahead in a thread pool (cutting
    and writing stay in order, so duplicate removal is deterministic)."""
    with ThreadPoolExecutor(workers) as pool:
        todo = iter(zip(chosen, folders))
        pending = deque((q, f, pool.submit(render, q, f)) for q, f in itertools.islice(todo, workers + 1))
        while pending:
            q, folder, future = pending.popleft()
            x = future.result()
            pending.extend((nq, nf, pool.submit(render, nq, nf)) for nq, nf in itertools.islice(todo, 1))
            yield q, folder, x


# --------------------------------------------------------------------------------------------------------------- cli


def _int_list(text: str) -> tuple[int, ...]:
    """'40,80,120' or '35-81' or '36-48,60' -> ints."""
    values = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            if hi and int(hi) < int(lo):  # an empty range would leave the list empty, read as "all keys"
                raise argparse.ArgumentTypeError(f"a range goes from low to high, like 35-81, not '{part}'")
            if hi and not 0 <= int(lo) <= int(hi) <= 127:  # checked before it is expanded: 1-2000000000 took GBs
                raise argparse.ArgumentTypeError(f"MIDI numbers are 0..127, so a range lies within them, not '{part}'")
            values.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 40,80 or ranges like 35-81, not '{text}'") from None
    return tuple(values)


@user_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaedemo.data.soundfont", description=__doc__.split("\n\n")[0])
    ap.add_argument("--soundfont", required=True, help="SF2/SF3 file, e.g. /usr/share/sounds/sf2/FluidR3_GM.sf2")
    ap.add_argument("--kind", choices=("drums", "pitched"), required=True)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--sample-rate", type=int, default=44100)
    ap.add_argument("--duration", type=float, default=1.0, help=f"seconds per one-shot (at most {MAX_DURATION_S:g})")
    ap.add_argument("--velocities", type=_int_list, default=DEFAULT_VELOCITIES)
    ap.add_argument("--programs", type=_int_list, default=None, help="kit / GM program numbers (default: all kits)")
    ap.add_argument("--pitches", type=_int_list, default=None, help="keys (default 35-81 drums, 36-84 pitched)")
    ap.add_argument("--max-kits", type=int, default=None, help="render at most this many kits / programs")
    ap.add_argument("--gain", type=float, default=0.7, help="fluidsynth master gain")
    ap.add_argument("--channels", type=int, choices=(1, 2), default=1, help="1 = mono downmix, 2 = stereo")
    ap.add_argument("--jobs", type=int, default=None, help="fluidsynth processes at a time (default min(4, cpus))")
    ap.add_argument("--subtype", choices=("PCM_16", "PCM_24", "FLOAT"), default="PCM_16", help="wav sample format")
    ap.add_argument("--keep-duplicates", action="store_true", help="keep one-shots identical to an earlier one")
    a = ap.parse_args(argv)
    summary = render_soundfont(
        a.soundfont, a.out, a.kind, a.sample_rate, a.duration, a.velocities, a.programs, a.pitches,
        a.max_kits, a.gain, a.channels, a.jobs, a.subtype, a.keep_duplicates,
    )  # fmt: skip
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
