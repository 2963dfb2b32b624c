"""Writing a folder of one-shots: what the soundfont renderer (:mod:`.soundfont`) and the recorded-kit collector
(:mod:`.hydrogen`) share — content-hash deduplication, 16-bit WAV files under relative paths, one ``manifest.csv``."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import DataError

# training's decoded cache inside a data folder: dataset.CACHE_DIRNAME, not imported (that module loads torch)
TRAINING_CACHE = ".vaedemo_cache"


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
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:  # as read_manifest reads it, anywhere
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def read_manifest(folder: Path) -> dict[str, dict]:
    """``folder/manifest.csv``'s rows keyed by their ``file`` (a path relative to the folder); {} without one, and
    with a warning for one that does not read as UTF-8 CSV (a spreadsheet's export in another encoding, a field of
    more than 128 KiB): a manifest only names what the files are."""
    path = folder / "manifest.csv"
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return {r["file"]: r for r in csv.DictReader(f) if r.get("file")}
    except (UnicodeDecodeError, csv.Error) as e:
        logging.getLogger(__name__).warning("ignoring %s: it does not read as UTF-8 CSV (%s)", path,
                                            type(e).__name__)  # fmt: skip
        return {}


# A builder replaces its output folder as a whole rather than writing into it: files of an earlier run that this one does
# not write (other velocities, kits, instruments) would otherwise stay, and training reads every audio file in the folder,
# manifest or not. The new folder is written beside the old one and swapped in only when complete, so a failed or
# interrupted run leaves the earlier dataset as it was. Only a folder that holds nothing but an earlier output of the
# same builder is replaced: pointed at a folder of other files by mistake, a builder refuses rather than deletes them.


@contextmanager
def replaced_folder(out: Path, fields: list[str]) -> Iterator[Path]:
    """An empty folder to write a dataset into (manifest columns ``fields``), put in the place of ``out`` when the block
    ends without an error, and removed when it raises."""
    target = Path(os.path.abspath(out))  # lexically: "." and "a/.." get a name; a link to a folder is itself replaced
    _check_replaceable(out, target, fields)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _tidy_leftovers(target, fields)  # after the check: it refuses the current folder before anything moves
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent))  # one file system: renames
    except OSError as e:
        raise DataError(f"cannot create the output folder {out} ({e.strerror}).") from None
    old = staging / "old"
    try:
        (staging / "new").mkdir()  # mkdir, not mkdtemp's private mode: the dataset gets the usual permissions
        yield staging / "new"
        if os.path.lexists(target):  # a link to a folder is itself replaced
            target.rename(old)
        (staging / "new").rename(target)
    except BaseException:
        if os.path.lexists(old) and not os.path.lexists(target):
            old.rename(target)  # failed between the two renames: the earlier dataset goes back, not into the bin
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _staging_prefix(target: Path) -> str:
    """The name a builder's staging folders beside ``target`` start with: marked as a builder's, so that nothing of
    the user's (a ``.drums.backup``, another output's staging) is ever taken for one."""
    return f".{target.name}.vaedemo-staging-"


def _tidy_leftovers(target: Path, fields: list[str]) -> None:
    """Remove what a builder killed mid-run (kill -9, a power cut) left beside ``target``: its staging folders, with an
    earlier dataset put back where the kill came between the two renames (when it is one: :func:`_earlier_output`)."""
    prefix = _staging_prefix(target)
    for staging in target.parent.iterdir():
        rest = staging.name[len(prefix) :]  # mkdtemp's random part: another output's name cannot pass for it
        ours = staging.name.startswith(prefix) and re.fullmatch(r"[a-z0-9_]{8}", rest)
        if not ours or not staging.is_dir() or staging.is_symlink():
            continue
        old = staging / "old"
        if old.is_dir() and not _earlier_output(old, fields):  # not one this builder can tell for its own: kept
            print(f"[vaedemo] warning: {old} holds an earlier dataset this builder did not write; left where it is.",
                  file=sys.stderr)  # fmt: skip
            continue
        if old.is_dir() and not os.path.lexists(target):
            old.rename(target)
        shutil.rmtree(staging, ignore_errors=True)


def _check_replaceable(out: Path, target: Path, fields: list[str]) -> None:
    """Refuse, before anything is written, an output that is a file, a folder holding more than a builder's earlier
    output, or a folder the user stands in or lives in (``x/..`` is the current folder: it is checked as what it is,
    ``target``, never by the name as written)."""
    here, home = Path.cwd().resolve(), Path.home().resolve()
    if target.exists() and not target.is_dir():
        raise DataError(f"the output folder {out} is a file.")
    real = target.resolve()
    if real == home or here.is_relative_to(real):
        what = "your home folder" if real == home else "the current folder or one above it"
        raise DataError(f"the output folder {out} is {what}; choose a folder of its own.")
    if target.is_dir() and any(target.iterdir()) and not _earlier_output(target, fields):
        raise DataError(f"{out} is not empty and is not an earlier output of this builder (a manifest.csv with "
                        f"columns {','.join(fields)}, the .wav files it lists and a training cache): choose another "
                        "folder or empty it.")  # fmt: skip


# what a file browser writes into any folder it shows: not the user's work (a Mac's Finder on a shared or exFAT drive
# writes ._NAME beside each NAME, and .DS_Store), so a rebuild may replace it with the folder
BROWSER_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def _browser_file(name: str, beside: set[str]) -> bool:
    return name in BROWSER_FILES or (name.startswith("._") and name[2:] in beside)


def _earlier_output(out: Path, fields: list[str]) -> bool:
    """Whether ``out`` holds only what a builder writes (its manifest and the .wav files it lists) and training adds
    (its cache). A .wav file the manifest does not list is the user's (a recording added to the dataset, which
    training reads as well): a rebuild would delete it."""
    try:
        with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            if next(rows, None) != fields:
                return False
            listed = {row[0] for row in rows if row}
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    for folder, subfolders, files in os.walk(out):
        if Path(folder) == out:
            subfolders[:] = [d for d in subfolders if d != TRAINING_CACHE]
            files = [f for f in files if f != "manifest.csv"]
        rel = Path(folder).relative_to(out)
        names = set(files)
        files = [f for f in files if not _browser_file(f, names)]
        if any(not f.endswith(".wav") or (rel / f).as_posix() not in listed for f in files):
            return False
    return True
