"""Folder of audio -> fixed-length training clips: scan, decoded cache, deterministic train/val split, datasets.

This module owns the way from a folder on disk to the tensors a DataLoader batches:

* :func:`scan_audio` finds wav/flac/ogg/mp3/opus files recursively (suffixes case-insensitive, hidden folders such
  as the cache skipped), sorted by relative path so every machine sees the same order;
* every file is decoded once with :func:`vaedemo.audio.load_audio` at the configured rate and channel count and kept
  as a float32 ``.npy`` file of shape (channels, samples) under ``cfg.cache_dir`` (default ``<root>/.vaedemo_cache``),
  keyed by a hash of (relative path, size, mtime_ns, ctime_ns, device, inode, sample rate, channels, frames kept:
  a one-shot's start only); items are read from it with
  ``np.load(mmap_mode="r")``, so epochs never decode again (decodes of changed files, or at other settings, are
  left in place: another run may read them; a line says how much once it is over 1 GiB);
* the train/val split is a hash of (split_seed, relative path) compared to ``val_fraction``: stable across runs,
  machines and additions of other files;
* :class:`ClipDataset` yields torch.float32 tensors of shape (channels, clip_length): one clip from the start of each
  file (mode ``oneshot``), or crops (mode ``crops``: random for training, consecutive for validation);
* training clips can be augmented (``data.augment``): random gain, playback rate (soxr resampling: pitch and length
  change together, as a retuned drum), layering of a second clip, a random band limit and a random EQ
  (:mod:`vaedemo.data.eq`), so that a model of one soundfont's 500 samples meets more than those 500 waveforms.

A folder that is missing or holds no usable audio raises :class:`DataError` naming the folder and the skipped files.

>>> train, val = build_datasets(DataConfig(root="data/drums"))  # doctest: +SKIP
>>> train[0].shape  # doctest: +SKIP
torch.Size([1, 44032])
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import load_audio
from ..config import AugmentConfig, DataConfig
from ..errors import AudioError, DataError
from .eq import band_limited, random_eq

# the suffixes of what vaedemo.audio.decode reads (libsndfile's formats and the ffmpeg fallback's containers)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".m4a", ".mp4", ".aac", ".aif", ".aiff", ".aifc",
                  ".caf", ".au", ".w64", ".wma", ".webm", ".mka")  # fmt: skip
CACHE_DIRNAME = ".vaedemo_cache"
# training data is the user's own: the decode budget of uploads (128 MiB) would skip long recordings; 30 min of
# 48 kHz stereo (the duration limit, which still applies) is 173 M values
LOCAL_MAX_VALUES = 1 << 28
CACHE_VERSION = 2  # bump when what is cached changes (2: nothing silent below -80 dBFS is)
_MAX_LISTED = 5  # skipped files named in an error message
UNUSED_CACHE_NOTE = 1 << 30  # bytes of cache that a run does not read before a line says so
STALE_WRITE_SECONDS = 3600.0  # a decode written aside this long ago was never renamed into place: its writer died
PROGRESS_EVERY_S = 15.0  # a large folder decodes for minutes before the first step: a line this often says how far

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------- scanning


def _walk(root: Path, exclude: Path | None = None) -> tuple[list[Path], list[Path]]:
    """All non-hidden files under ``root`` as (audio, other), each sorted by relative posix path."""
    audio, other = [], []
    excluded = exclude.resolve() if exclude is not None else None
    real_root = root.resolve()
    seen = {real_root}

    def unreadable(e: OSError) -> None:  # a folder that cannot be listed: its files are not trained on, so say so
        if Path(e.filename or "") == root:
            raise DataError(f"data folder {root} cannot be read ({e.strerror}).")
        log.warning("skipping the folder %s: %s", e.filename, e.strerror)

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):  # a linked kit is read
        here = Path(dirpath)
        dirnames.sort()  # a folder reached twice is filed under the same path every time (the split hashes it)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and _first_visit(here / d, real_root, seen, excluded)]
        for name in filenames:
            if name.startswith("."):  # .DS_Store, ._kick.wav (macOS resource forks), temp files
                continue
            (audio if Path(name).suffix.lower() in AUDIO_SUFFIXES else other).append(here / name)

    def key(p: Path) -> str:
        return p.relative_to(root).as_posix()

    return _distinct(sorted(audio, key=key)), sorted(other, key=key)


def _distinct(files: list[Path]) -> list[Path]:
    """The first name of each audio file the walk reached under several (a file linked in beside itself, hard
    links): read under both, one copy could land in the validation split and the other in training. A file that
    cannot be stat'ed, or a file system without inode numbers (0), is kept: the decode reports what it must."""
    seen, out = set(), []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            out.append(path)
            continue
        identity = (st.st_dev, st.st_ino)
        if st.st_ino and identity in seen:
            continue
        seen.add(identity)
        out.append(path)
    if len(out) < len(files):
        log.warning("%d audio files are other names of files already found (links); each is read once.",
                    len(files) - len(out))  # fmt: skip
    return out


def _first_visit(folder: Path, real_root: Path, seen: set[Path], excluded: Path | None) -> bool:
    """Whether to walk into ``folder``: not the excluded one, not a folder already walked (two links to one kit would
    read it twice), and not one that holds the data folder (a link to a folder above it would walk its siblings, or
    the whole disk)."""
    real = folder.resolve()
    if real == excluded or real in seen or real_root.is_relative_to(real):
        return False
    seen.add(real)
    return True


def _check_root(root: Path) -> None:
    if not root.exists():
        raise DataError(f"data folder {root} does not exist.")
    if not root.is_dir():
        raise DataError(f"data folder {root} is not a folder (set data.root to a folder of audio files).")


def scan_audio(root: str | Path) -> list[Path]:
    """Audio files (:data:`AUDIO_SUFFIXES`, any case) under ``root``, recursively (linked folders included, each
    folder once), sorted by relative path.

    Hidden folders and files (names starting with '.') are skipped. Raises :class:`DataError` when ``root`` is not
    a folder.
    """
    root = Path(root)
    _check_root(root)
    return _walk(root)[0]


# ---------------------------------------------------------------------------------------------------------- caching


@dataclass(frozen=True)
class _Source:
    """One decoded file: read from the cache file when there is one, else from the array kept in memory."""

    rel: str  # relative posix path, what ``ClipDataset.files`` reports
    frames: int
    cache: Path | None
    array: np.ndarray | None = None

    def read(self) -> np.ndarray:
        """(channels, frames) float32, memory-mapped when cached."""
        if self.cache is None:
            return self.array
        try:
            return np.load(self.cache, mmap_mode="r")
        except FileNotFoundError:  # a re-rendered data folder, a cache cleared by hand
            raise DataError(f"the decoded copy of {self.rel} in {self.cache.parent} went away during training (was "
                            "the data folder replaced or its cache removed?); --resume continues from the last "
                            "checkpoint.") from None  # fmt: skip


def cache_key(rel: str, st: os.stat_result, sample_rate: int, channels: int, max_frames: int | None = None) -> str:
    """Hex sha1 naming the cached decode of one file; changes when the file or the decode settings change. The file
    is known by its inode and change time as well as its size and mtime: a copy that keeps the timestamps (cp -p,
    rsync -a, an archive) over a file of the same size, or a folder of the same names sharing a cache_dir, would
    otherwise be served the other audio."""
    text = (f"v{CACHE_VERSION}\0{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_dev}\0{st.st_ino}\0"
            f"{sample_rate}\0{channels}\0{max_frames}")  # fmt: skip
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()  # names need not be UTF-8 (old archives)


def _load_cached(path: Path, channels: int) -> np.ndarray | None:
    try:
        x = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if x.dtype != np.float32 or x.ndim != 2 or x.shape[0] != channels or x.shape[1] == 0:
        return None
    return x


# a file this quiet throughout is silence for training (-80 dBFS: dither at 16 bits is -90; the quietest shipped
# one-shot peaks at -46, the soundfont renderer drops notes below -60): the spectral losses divide by its magnitude,
# so a batch of such clips made a loss of 1e4 (dither) to 1e9 (digital silence) against a hit's 20-100
SILENCE_PEAK = 1e-4


class _Decoder:
    """Decodes files through the cache; falls back to memory (with one warning) when the cache is not writable.
    ``max_frames``: keep only a file's first frames (a one-shot's start; a long recording would otherwise be decoded,
    cached and mapped whole for the second of it that is used)."""

    def __init__(self, root: Path, cache_dir: Path, sample_rate: int, channels: int, max_frames: int | None = None):
        self.root, self.cache_dir, self.sample_rate, self.channels = root, cache_dir, sample_rate, channels
        self.max_frames = max_frames
        self.writable = True
        self.decoded = 0
        self.cached = 0

    def __call__(self, path: Path) -> _Source:
        rel = path.relative_to(self.root).as_posix()
        st = path.stat()
        target = self.cache_dir / f"{cache_key(rel, st, self.sample_rate, self.channels, self.max_frames)}.npy"
        hit = _load_cached(target, self.channels) if target.is_file() else None
        if hit is not None:
            self.cached += 1
            return _Source(rel, hit.shape[1], target)
        x = self._decode(path)
        self.decoded += 1
        if self.writable:
            tmp = self.cache_dir / f".{target.stem}.{os.getpid()}.tmp.npy"
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                np.save(tmp, x)
                os.replace(tmp, target)  # atomic: concurrent runs (DDP ranks) never read half a file
                return _Source(rel, x.shape[1], target)
            except OSError as e:
                with contextlib.suppress(OSError):  # a full disk leaves half a file otherwise
                    tmp.unlink(missing_ok=True)
                self.writable = False
                log.warning("cannot write the decoded cache in %s (%s); keeping audio in memory.", self.cache_dir, e)
        return _Source(rel, x.shape[1], None, x)

    def _decode(self, path: Path) -> np.ndarray:
        """(channels, samples) float32 at the model's rate and channels; AudioError for what cannot be trained on."""
        seconds = None if self.max_frames is None else self.max_frames / self.sample_rate
        x, _ = load_audio(path, self.sample_rate, self.channels, seconds, trim=seconds is not None,
                          max_values=LOCAL_MAX_VALUES)  # fmt: skip
        if x.shape[0] == 0:
            raise AudioError(f"{path.name} is too short to keep a sample at {self.sample_rate} Hz.")
        if not float(np.abs(x).max()) > SILENCE_PEAK:
            where = "" if seconds is None else f" in the first {seconds:.2f} s, all that a one-shot clip reads"
            raise AudioError(f"{path.name} is silent (no sample above -80 dBFS{where}).")
        return np.ascontiguousarray(x.T, dtype=np.float32)  # (channels, samples) inside the package


def oneshot_frames(clip_length: int, augment: AugmentConfig) -> int:
    """What a one-shot clip reads of its file at most: its start, retuned up to ``1 + augment.rate`` times faster
    (:meth:`ClipDataset._augmented`), and a margin for the resampler's filter at the cut."""
    return int(np.ceil(clip_length * (1 + augment.rate))) + 64 + 4096


# ------------------------------------------------------------------------------------------------------------ split


def _unit_hash(seed: int, rel: str) -> float:
    digest = hashlib.sha1(f"{seed}\0{rel}".encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_files(rels: list[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Deterministic (train, val) split of relative paths by a hash of (seed, path), order preserved.

    A file's side depends only on its own path, the seed and ``val_fraction``. When ``val_fraction > 0`` and there
    are at least two files, both sides get at least one; a single file always goes to train.
    """
    u = {rel: _unit_hash(seed, rel) for rel in rels}
    val = {rel for rel in rels if u[rel] < val_fraction}
    if val_fraction > 0 and len(rels) >= 2 and not val:
        val.add(min(rels, key=lambda r: u[r]))
    if rels and len(val) == len(rels):
        val.discard(max(rels, key=lambda r: u[r]))
    return [r for r in rels if r not in val], [r for r in rels if r in val]


# ---------------------------------------------------------------------------------------------------------- dataset


class ClipDataset(Dataset):
    """Fixed-length clips of decoded files, as torch.float32 (channels, clip_length).

    ``mode="oneshot"``: one clip per file, from its start, zero-padded or cropped. ``mode="crops"``: one item per
    whole ``clip_length`` in each file (at least one; shorter files are zero-padded); with ``random_crops`` each item
    is a crop at a random offset drawn with torch's RNG (seeded per DataLoader worker), otherwise item k of a file is
    the k-th consecutive crop.
    """

    def __init__(
        self,
        sources: list[_Source],
        clip_length: int,
        mode: str = "oneshot",
        random_crops: bool = False,
        sample_rate: int = 44100,
        channels: int = 1,
        augment: AugmentConfig | None = None,
    ):
        if mode not in ("oneshot", "crops"):
            raise ValueError(f"mode must be 'oneshot' or 'crops', got {mode!r}")
        self.sources = list(sources)
        self.clip_length = int(clip_length)
        self.mode = mode
        self.random_crops = random_crops and mode == "crops"
        self.sample_rate = sample_rate
        self.channels = channels
        a = augment or AugmentConfig()
        self.augment = a if (a.gain_db or a.rate or a.mix or a.eq_db or a.band_limit) else None
        counts = [1 if mode == "oneshot" else max(1, s.frames // self.clip_length) for s in self.sources]
        self._starts = np.cumsum([0] + counts).tolist()  # item index where each file begins

    @property
    def files(self) -> list[str]:
        """Relative paths (posix) of the files in this dataset, sorted."""
        return [s.rel for s in self.sources]

    @property
    def seconds(self) -> float:
        """Total duration of the decoded files."""
        return sum(s.frames for s in self.sources) / self.sample_rate

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} clips")
        if self.augment is None:
            return self.original(index)
        return torch.from_numpy(self._augmented(index))

    def original(self, index: int) -> torch.Tensor:
        """Item ``index`` as the file has it (no augmentation), (channels, clip_length)."""
        return torch.from_numpy(self._clip(index, self.clip_length))

    def _clip(self, index: int, length: int) -> np.ndarray:
        """(channels, length) float32 of item ``index`` (zero-padded at the end)."""
        f = bisect.bisect_right(self._starts, index) - 1
        src, k = self.sources[f], index - self._starts[f]
        n = self.clip_length
        if self.mode == "oneshot":
            start = 0
        elif self.random_crops:
            start = int(torch.randint(0, src.frames - n + 1, ()).item()) if src.frames > n else 0
        else:
            start = k * n
        seg = src.read()[:, start : start + length]
        if src.cache is not None and not np.isfinite(seg).all():  # decoding refuses such audio: the file was damaged
            raise DataError(f"the decoded copy of {src.rel} in {src.cache.parent} holds NaN or infinite samples (a "
                            f"damaged cache file): delete {src.cache.name} there, and the run decodes {src.rel} again "
                            "when it starts (--resume continues from the last checkpoint).")  # fmt: skip
        out = np.zeros((seg.shape[0], length), dtype=np.float32)
        out[:, : seg.shape[1]] = seg
        return out

    def _augmented(self, index: int) -> np.ndarray:
        """Item ``index`` changed by ``self.augment``, with torch's RNG (seeded per DataLoader worker)."""
        a, n = self.augment, self.clip_length

        def uniform(lo: float, hi: float) -> float:
            return lo + (hi - lo) * float(torch.rand(()))

        def retuned(i: int) -> np.ndarray:
            if not a.rate:
                return self._clip(i, n)
            import soxr

            factor = float(np.exp(uniform(-1.0, 1.0) * np.log1p(a.rate)))  # > 1: higher and shorter
            x = self._clip(i, int(np.ceil(n * factor)) + 64)
            y = soxr.resample(x.T, self.sample_rate * factor, self.sample_rate, quality="MQ").T
            out = np.zeros((x.shape[0], n), dtype=np.float32)
            out[:, : min(n, y.shape[1])] = y[:, :n]
            return out

        x = retuned(index)
        if a.mix and float(torch.rand(())) < a.mix:
            other = retuned(int(torch.randint(0, len(self), ())))
            offset = int(torch.randint(0, n // 2 + 1, ()))
            x[:, offset:] += other[:, : n - offset] * np.float32(10 ** (uniform(-12.0, 0.0) / 20))
        if a.band_limit and float(torch.rand(())) < a.band_limit:  # stored at a lower rate, then played through an EQ
            x = band_limited(x, self.sample_rate, uniform)
        if a.eq_db:
            x = random_eq(x, a.eq_db, self.sample_rate, uniform)
        if a.gain_db:
            x *= np.float32(10 ** (uniform(-a.gain_db, a.gain_db) / 20))
        peak = float(np.abs(x).max()) if x.size else 0.0
        if peak > 0.999:  # layering or gain may clip: scale back into [-1, 1]
            x *= np.float32(0.999 / peak)
        return x

    def __repr__(self) -> str:
        return (
            f"ClipDataset({len(self.sources)} files, {len(self)} clips of {self.clip_length} samples, "
            f"mode={self.mode!r}, random_crops={self.random_crops})"
        )


# ------------------------------------------------------------------------------------------------------ entry point


def _reason(err: AudioError, path: Path) -> str:
    """'b.wav is an empty file.' -> 'empty file'."""
    msg = str(err).strip().rstrip(".")
    for prefix in (str(path), path.name):
        if msg.startswith(prefix + " "):
            msg = msg[len(prefix) + 1 :]
            break
    for lead in ("is an ", "is a ", "is "):
        if msg.startswith(lead):
            return msg[len(lead) :]
    return msg


def _no_audio_message(root: Path, skipped: list[tuple[str, str]]) -> str:
    if not skipped:
        return (
            f"{root} holds no usable audio: no files found (searched recursively for "
            f"{', '.join(AUDIO_SUFFIXES)}; hidden folders are skipped)."
        )
    listed = "; ".join(f"{rel}: {why}" for rel, why in skipped[:_MAX_LISTED])
    more = f"; and {len(skipped) - _MAX_LISTED} more" if len(skipped) > _MAX_LISTED else ""
    n = len(skipped)
    return f"{root} holds no usable audio: {n} file{'s' if n != 1 else ''} skipped ({listed}{more})."


def _remove_stale_writes(cache_dir: Path) -> None:
    """Remove the decodes that a killed run left half-written beside the cache's files (``.KEY.PID.tmp.npy``, up to
    the size of a file's decode each, never read and never counted). An hour old: a write takes seconds, and a run on
    another machine sharing the folder may be writing one now."""
    try:
        entries = [e for e in os.scandir(cache_dir) if e.name.startswith(".") and e.name.endswith(".tmp.npy")]
    except OSError:  # no cache yet, or not readable: nothing to tidy
        return
    now = time.time()
    for e in entries:
        with contextlib.suppress(OSError):
            if now - e.stat(follow_symlinks=False).st_mtime > STALE_WRITE_SECONDS:
                os.unlink(e.path)


def _note_unused_cache(cache_dir: Path, used: set[str]) -> None:
    """Say so once the cache holds much that this run does not read. Decodes of changed or removed files stay, as do
    those of other settings (rate, channels, a one-shot's length), which another run may be reading now: nothing is
    deleted behind it."""
    try:
        unused = sum(e.stat().st_size for e in os.scandir(cache_dir)
                     if e.name.endswith(".npy") and not e.name.startswith(".") and e.name not in used)  # fmt: skip
    except OSError:  # no cache (not writable), or it changed while listed: nothing to say
        return
    if unused >= UNUSED_CACHE_NOTE:
        print(f"[vaedemo] note: {unused / 2**30:.1f} GiB of {cache_dir} are decodes this run does not read (of "
              "changed or removed files, or at other settings, which another run may read); deleting the folder "
              "reclaims them (what a run reads is decoded again).", file=sys.stderr)  # fmt: skip


def build_datasets(
    cfg: DataConfig, sample_rate: int, channels: int, clip_length: int
) -> tuple[ClipDataset, ClipDataset]:
    """Scan ``cfg.root``, decode through the cache at the model's rate and channels, split, and return
    ``(train, val)`` datasets of ``clip_length``-sample clips.

    Undecodable files are skipped with a warning. ``cfg.max_files`` keeps that many usable files, chosen by a hash of
    (split_seed, path) so the subset is spread over the folder rather than its first subfolder. Raises
    :class:`DataError` when the folder is missing or nothing usable remains.
    """
    root = Path(cfg.root)
    _check_root(root)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else root / CACHE_DIRNAME
    audio, other = _walk(root, exclude=cache_dir)
    skipped = [(p.relative_to(root).as_posix(), "not an audio file") for p in other]
    if cfg.max_files is not None:
        audio.sort(key=lambda p: _unit_hash(cfg.split_seed, "max_files\0" + p.relative_to(root).as_posix()))
    max_frames = oneshot_frames(clip_length, cfg.augment) if cfg.mode == "oneshot" else None
    decode = _Decoder(root, cache_dir, sample_rate, channels, max_frames)
    sources: list[_Source] = []
    said = time.monotonic()
    for done, path in enumerate(audio):
        if cfg.max_files is not None and len(sources) >= cfg.max_files:
            break
        if time.monotonic() - said >= PROGRESS_EVERY_S:
            said = time.monotonic()
            print(f"[vaedemo] reading {root}: {done} of {len(audio)} files ({decode.decoded} decoded, "
                  f"{decode.cached} from the cache, {len(skipped) - len(other)} skipped)", file=sys.stderr)  # fmt: skip
        try:
            sources.append(decode(path))
        except AudioError as e:
            rel = path.relative_to(root).as_posix()
            skipped.append((rel, _reason(e, path)))
            log.warning("skipping %s: %s", rel, e)
        except OSError as e:  # unreadable (permissions), vanished while scanning
            rel = path.relative_to(root).as_posix()
            skipped.append((rel, f"unreadable ({e.strerror or e})"))
            log.warning("skipping %s: %s", rel, e)
    if not sources:
        raise DataError(_no_audio_message(root, sorted(skipped)))
    sources.sort(key=lambda s: s.rel)
    _remove_stale_writes(cache_dir)
    _note_unused_cache(cache_dir, {s.cache.name for s in sources if s.cache is not None})
    log.info(
        "%s: %d audio files (%d decoded, %d from cache in %s), %d undecodable, %d other files ignored",
        root, len(sources), decode.decoded, decode.cached, cache_dir, len(skipped) - len(other), len(other),
    )  # fmt: skip
    train_rels, val_rels = split_files([s.rel for s in sources], cfg.val_fraction, cfg.split_seed)
    by_rel = {s.rel: s for s in sources}
    common = dict(clip_length=clip_length, mode=cfg.mode, sample_rate=sample_rate, channels=channels)
    train = ClipDataset([by_rel[r] for r in train_rels], random_crops=True, augment=cfg.augment, **common)
    val = ClipDataset([by_rel[r] for r in val_rels], random_crops=False, **common)
    return train, val


def validation_clips(train: ClipDataset, val: ClipDataset, cfg: DataConfig) -> ClipDataset:
    """What a run validates on: the validation split, or, when there is none (``data.val_fraction`` 0, a single
    file), the training clips as the files have them, said once. (Validating on the training set as it trains, its
    clips augmented afresh each time, scored a random augmentation: the same weights read 24 to 35.)"""
    if len(val):
        return val
    why = "data.val_fraction is 0" if cfg.val_fraction == 0 else "it holds a single usable file"
    print(f"[vaedemo] warning: {cfg.root} has no validation split ({why}); validating on the training clips as they "
          "are, so the val/ metrics measure training data.", file=sys.stderr)  # fmt: skip
    return ClipDataset(train.sources, train.clip_length, train.mode, random_crops=False, sample_rate=train.sample_rate,
                       channels=train.channels)  # fmt: skip
