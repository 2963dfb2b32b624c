"""Audio at the edge of the package: decode, validate, resample, convert channels, save.

Arrays here are numpy float32 of shape (samples, channels). Everything a user can get wrong raises
:class:`AudioError` with one sentence. Decoding uses soundfile (wav/flac/ogg/opus/mp3 through libsndfile) and falls
back to ffmpeg for other containers (m4a, webm, ...) when ffmpeg is on PATH; resampling uses soxr.

This module is where untrusted files from the public demo first meet the server, so it owns the **decode budget**:

* A file's size says nothing about the size of its decoded audio (57 KB of FLAC can declare 30 s of 8 channels at
  384 kHz; 4 MB of Opus can hold hours). So the header is read first (``soundfile.info``, or ``ffprobe`` for the
  fallback) and a file is refused *before* decoding when its rate exceeds :data:`MAX_SAMPLE_RATE`, its channel count
  :data:`MAX_CHANNELS`, its duration ``max_seconds`` (unless ``trim``), or when what would be decoded
  (frames x channels) exceeds ``max_values`` (:data:`MAX_DECODED_VALUES` by default, 128 MiB of float32).
* Headers can lie, so decoding itself never reads more than the plan allows: ``sf.read(frames=...)``, and ffmpeg's
  output is read from a pipe in chunks and the process killed once the byte budget is reached or after
  :data:`~vaedemo.decoders.FFMPEG_TIMEOUT_SECONDS`.
* ffmpeg can be made to read *other* files (HLS playlists, ffconcat lists, ...), which would let an upload read the
  server's disk. Text playlists are refused before ffmpeg sees them, and ffmpeg runs inside whitelists of
  protocols and single-file audio containers (:mod:`vaedemo.decoders`).
* Messages never echo more than a short, escaped excerpt of a file name (:func:`shown_name`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .decoders import Header, ffprobe_header, read_ffmpeg, read_soundfile, soundfile_header
from .errors import AudioError

MAX_SECONDS_DEFAULT = 30 * 60  # anything longer is refused as absurd
MAX_CHANNELS = 16
MAX_SAMPLE = 1000.0  # float samples beyond this (60 dB over full scale) are not audio at any level a model can use
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 192_000  # the metrics fail at >= 352.8 kHz, and nothing here needs more than 192 kHz
MAX_DECODED_VALUES = 32 * 1024 * 1024  # frames x channels one decode may hold: 128 MiB as float32
# Text files that tell ffmpeg to read other files: refused up front with a clear sentence.
_PLAYLIST_MAGIC = (b"#extm3u", b"ffconcat")
_NAME_CHARS = 60  # longest file name excerpt a message echoes


@dataclass(frozen=True)
class Decoded:
    """What :func:`decode` returns: the audio, and whether it is all of the file."""

    audio: np.ndarray  # float32 (samples, channels), finite, non-empty
    sample_rate: int
    trimmed: bool  # True when the file was longer than max_seconds and only its start was decoded (trim=True)
    seconds_in_file: float | None  # the file's duration: exact, the container's estimate, or None when unknown


# ---------------------------------------------------------------------------------------------------- messages


def shown_name(name: str) -> str:
    """A file name as messages may show it: as is when short and printable, else a ``repr`` of a short excerpt."""
    if name.isprintable() and len(name) <= _NAME_CHARS:
        return name
    shown = repr(name)
    k = min(len(name), _NAME_CHARS)
    while len(shown) > _NAME_CHARS:
        k -= 1
        shown = repr(name[:k] + "...")
    return shown


def _secs(seconds: float) -> str:
    return f"{seconds:.1f}".removesuffix(".0")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _too_long(name: str, seconds: float | None, limit: float) -> AudioError:
    if seconds is None:
        return AudioError(f"{name} is longer than the limit of {_secs(limit)} s.")
    length, shown_limit = _secs(seconds), _secs(limit)
    digits = 1
    while float(length) <= float(shown_limit) and digits < 6:  # "is 2 s long; the limit is 2 s" for 2.00002 s
        digits += 1
        length, shown_limit = (f"{v:.{digits}f}".rstrip("0").rstrip(".") for v in (seconds, limit))
    if float(length) <= float(shown_limit):
        length = f"just over {shown_limit}"
    return AudioError(f"{name} is {length} s long; the limit is {shown_limit} s.")


def _over_budget(name: str, frames: int | None, h: Header, max_values: int) -> AudioError:
    budget = f"the {max_values / 1e6:.1f} million samples one file may decode to"
    if frames is None:  # found while decoding: the header did not say, or understated, how long the file is
        return AudioError(f"{name} holds more audio than {budget}.")
    return AudioError(
        f"{name} would decode to {frames * h.channels / 1e6:.1f} million samples ({_secs(frames / h.sample_rate)} s of "
        f"{_plural(h.channels, 'channel')} at {h.sample_rate} Hz), more than {budget}."
    )


def check_channels(name: str, channels: int) -> None:
    """Refuse a channel count outside 1 to :data:`MAX_CHANNELS` in one sentence."""
    if channels < 1 or channels > MAX_CHANNELS:
        raise AudioError(f"{name} has {channels} channels; vaedemo reads 1 to {MAX_CHANNELS}.")


def is_number(value) -> bool:
    """A real number as an argument: an int or a float, numpy's too; not a bool (True is 1 to Python) or a string."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _usable_rate(sr) -> bool:
    # NaN fails every comparison, so it is tested by name: soxr given a NaN rate never returns
    return is_number(sr) and math.isfinite(sr) and MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE


def check_rate(name: str, sr) -> None:
    """Refuse a sample rate that is not a finite number from :data:`MIN_SAMPLE_RATE` to :data:`MAX_SAMPLE_RATE`."""
    if not _usable_rate(sr):
        shown = sr if isinstance(sr, (int, float, np.number)) and not isinstance(sr, bool) else repr(sr)
        raise AudioError(
            f"{name} has an unusable sample rate of {shown} Hz; vaedemo reads {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz."
        )


def _check_rate_and_channels(name: str, sr: float | None, channels: int) -> None:
    check_channels(name, channels)
    check_rate(name, sr)


# ---------------------------------------------------------------------------------------------------- arrays


def real_array(x, name: str = "the audio") -> np.ndarray:
    """``x`` as a numpy array of real numbers (bool, integer or float), or one sentence: text, ragged rows and None were
    numpy's tracebacks, and complex samples lost their imaginary part without a word."""
    try:
        x = np.asarray(x)
        if x.dtype.kind == "O":  # numbers among other objects (None, an int beyond int64): numbers if each is one
            x = x.astype(np.float64)
    except (TypeError, ValueError):
        raise AudioError(f"{name} must be an array of numbers, with rows of equal length.") from None
    if x.dtype.kind == "c":
        raise AudioError(f"{name} is complex; audio samples must be real numbers.")
    if x.dtype.kind not in "biuf":
        raise AudioError(f"{name} must be an array of numbers, got {'text' if x.dtype.kind in 'US' else x.dtype}.")
    return x


def _pcm_to_float(x: np.ndarray, name: str) -> np.ndarray:
    """Integer PCM as float32 in [-1, 1]: int16 and int32 by their full scale, 8-bit as files store it (WAV's unsigned,
    silence at 128; AIFF's signed). Wider or other unsigned integers have no PCM convention to follow: int64 is what a
    Python list of whole numbers becomes, and scaled by 2**63 it came out silent."""
    bits = 8 * x.dtype.itemsize
    if x.dtype.kind == "u" and bits == 8:
        return (x.astype(np.float32) - 128) / 128
    if x.dtype.kind == "i" and bits in (8, 16, 32):
        return x.astype(np.float32) / 2 ** (bits - 1)
    raise AudioError(f"{name} holds {x.dtype.name} integers, which are no PCM format: pass float32 samples in "
                     "[-1, 1], or int16 or int32 PCM.")  # fmt: skip


def as_samples(x, name: str = "the audio") -> np.ndarray:
    """Any array of samples as float32 (samples, channels): 1-D is mono; integer PCM (int16, int32, 8-bit: unsigned
    with silence at 128 as WAV stores it, or signed) is scaled to [-1, 1]. Refuses other integer types (int64, what a
    list of Python ints becomes), complex or non-numeric values, other shapes, empty and non-finite arrays with one
    sentence."""
    x = real_array(x, name)
    if x.dtype.kind in "iu":
        x = _pcm_to_float(x, name)
    elif x.dtype.kind == "f" and x.size and np.isfinite(x.max()) and np.isfinite(x.min()):  # (no copy: a max, a min)
        peak = max(float(x.max()), -float(x.min()))
        if peak > MAX_SAMPLE:  # a model decodes such a level to NaN; the float32 cast may overflow to inf
            raise AudioError(f"{name} has samples up to {peak:.3g}, far beyond full scale (1.0); at most "
                             f"{MAX_SAMPLE:g} is read as audio.")  # fmt: skip
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise AudioError(f"{name} must be 1-D (samples) or 2-D (samples, channels), got shape {x.shape}.")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise AudioError(f"{name} is empty (shape {x.shape}).")
    if not np.isfinite(x).all():
        raise AudioError(f"{name} contains NaN or infinite samples.")
    return x


def check_audio(x: np.ndarray, sr: int, name: str = "the audio", max_seconds: float | None = None) -> np.ndarray:
    """Validate audio for the model: :func:`as_samples`, then the rate, channel count and duration limits."""
    x = real_array(x, name)
    if x.ndim == 2 and x.shape[1] > MAX_CHANNELS and x.shape[0] <= MAX_CHANNELS:
        x = x.T  # (channels, samples) given by mistake
    x = as_samples(x, name)
    _check_rate_and_channels(name, sr, x.shape[1])
    limit = MAX_SECONDS_DEFAULT if max_seconds is None else max_seconds
    if x.shape[0] / sr > limit:
        raise _too_long(name, x.shape[0] / sr, limit)
    return x


# ---------------------------------------------------------------------------------------------------- decoding


def decode(
    path: str | Path, max_seconds: float | None = None, trim: bool = False, *, max_values: int = MAX_DECODED_VALUES
) -> Decoded:
    """Decode ``path`` within the decode budget to float32 (samples, channels) at the file's own rate.

    ``max_seconds`` (default :data:`MAX_SECONDS_DEFAULT`) is the duration that will be used: a longer file is refused,
    or with ``trim=True`` decoded only up to ``max_seconds`` and returned with ``trimmed=True``. Files whose rate,
    channel count or decoded size (frames x channels > ``max_values``) is over the limits are refused before
    decoding. Raises :class:`AudioError` with one sentence for anything wrong with the file.
    """
    limit = MAX_SECONDS_DEFAULT if max_seconds is None else float(max_seconds)
    if not 0 < limit < math.inf or max_values < 1:  # the caller's mistake, not the user's
        raise ValueError(f"max_seconds must be positive and finite, max_values at least 1: {max_seconds}, {max_values}")
    p = Path(path)
    name = shown_name(p.name)
    _check_file(p, name)
    data = None
    header = soundfile_header(p)
    if header is not None:
        cap = _frames_to_decode(name, header, limit, trim, max_values)
        data = read_soundfile(p, cap + 1)
    if data is None:  # not a libsndfile format, or libsndfile failed on it: the ffmpeg fallback
        header = ffprobe_header(p, name)
        cap = _frames_to_decode(name, header, limit, trim, max_values)
        data = read_ffmpeg(p, name, header, cap + 1)
    return _finish(name, data, header, cap, limit, trim, max_values)


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    channels: int | None = None,
    max_seconds: float | None = None,
    trim: bool = False,
    *,
    max_values: int = MAX_DECODED_VALUES,
) -> tuple[np.ndarray, int]:
    """Decode ``path`` to float32 (samples, channels); optionally resample and convert channels.

    Returns ``(audio, sample_rate)``; see :func:`decode` for ``max_seconds``, ``trim`` and ``max_values`` (use
    :func:`decode` to learn whether the audio was trimmed). Raises :class:`AudioError` for missing, empty,
    undecodable, non-finite, too long or too large files.
    """
    d = decode(path, max_seconds, trim, max_values=max_values)
    x, sr = d.audio, d.sample_rate
    if sample_rate is not None:
        x = resample(x, sr, sample_rate)
        sr = sample_rate
    if channels is not None:
        x = to_channels(x, channels)
    return x, sr


def _check_file(p: Path, name: str) -> None:
    try:
        if not p.is_file():
            raise AudioError(f"{name} does not exist or is not a file.")
        if p.stat().st_size == 0:
            raise AudioError(f"{name} is an empty file.")
        with p.open("rb") as f:
            head = f.read(64)
    except OSError:
        raise AudioError(f"{name} could not be read.") from None
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(_PLAYLIST_MAGIC):
        raise AudioError(f"{name} is a playlist that points at other files, not audio.")


def _limit_frames(limit: float, sample_rate: int) -> int:
    return math.floor(limit * sample_rate + 1e-9)  # never over max_seconds, which check_audio enforces again


def _frames_to_decode(name: str, h: Header, limit: float, trim: bool, max_values: int) -> int:
    """Refuse what the header already shows to be over the limits; return the most frames decoding may keep."""
    _check_rate_and_channels(name, h.sample_rate, h.channels)
    limit_frames = _limit_frames(limit, h.sample_rate)
    if h.frames is not None:
        # ffprobe's duration is an estimate (mp3 by bitrate, ...): refuse early only when clearly over the limit;
        # decoding finds the exact length (one frame past the cap tells).
        slack = 0 if h.exact else int(0.01 * limit_frames) + h.sample_rate
        if not trim and h.frames > limit_frames + slack:
            raise _too_long(name, h.frames / h.sample_rate, limit)
        wanted = min(h.frames, limit_frames)
        if wanted * h.channels > max_values:
            raise _over_budget(name, wanted, h, max_values)
    return min(limit_frames, max_values // h.channels)


def _finish(
    name: str, data: np.ndarray, h: Header, cap: int, limit: float, trim: bool, max_values: int
) -> Decoded:
    """``data`` holds at most cap + 1 frames; one more than cap means the file goes on beyond what may be kept."""
    trimmed = len(data) > cap
    if trimmed:
        if cap < _limit_frames(limit, h.sample_rate):  # the budget, not the duration, ran out: the header lied
            raise _over_budget(name, None, h, max_values)
        if not trim:
            raise _too_long(name, h.frames / h.sample_rate if h.frames and h.frames > cap else None, limit)
        data = data[:cap]
        seconds = h.frames / h.sample_rate if h.frames and h.frames > cap else None
    else:
        seconds = len(data) / h.sample_rate  # decoded to the end: exact
    x = check_audio(data, h.sample_rate, name, limit)
    return Decoded(x, h.sample_rate, trimmed, seconds)


# ---------------------------------------------------------------------------------------------------- conversion


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample (samples, channels) with soxr; the output has round(n * sr_out / sr_in) samples, and at least one
    when the input has any (a sample or two at 192 kHz would round to none: the models need one). Either rate outside
    :func:`check_rate`'s range is one sentence (given a NaN rate, soxr never returns)."""
    check_rate("the audio", sr_in)
    check_rate("the resampled audio", sr_out)
    if sr_in == sr_out:
        return x
    y = soxr.resample(np.ascontiguousarray(x, dtype=np.float32), sr_in, sr_out, quality="HQ")
    y = np.asarray(y, dtype=np.float32).reshape(-1, x.shape[1])
    if len(y) == 0 and len(x):
        y = np.asarray(x[:1], dtype=np.float32)  # its nearest sample
    return y


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Explicit channel conversion: downmix by averaging, upmix mono by copying."""
    n = x.shape[1]
    if n == channels:
        return x
    if channels == 1:
        return x.mean(axis=1, keepdims=True)
    if n == 1:
        return np.repeat(x, channels, axis=1)
    if channels == 2:
        # odd channels to the left, even to the right: a plain, predictable downmix of multichannel files
        return np.stack([x[:, 0::2].mean(axis=1), x[:, 1::2].mean(axis=1)], axis=1)
    raise AudioError(f"cannot convert {n} channels to {channels}.")


def save_audio(path: str | Path, x: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write (samples, channels) or (samples,) audio; wav/flac/ogg chosen by the suffix. The rate is a whole number
    of Hz within :func:`check_rate`'s range (a file stores no other)."""
    check_rate("the audio to save", sample_rate)
    if sample_rate != int(sample_rate):
        raise AudioError(f"a file's sample rate must be a whole number of Hz, got {sample_rate}.")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    x = np.asarray(x, dtype=np.float32)
    fmt = p.suffix.lower().lstrip(".")
    sf.write(str(p), np.clip(x, -1.0, 1.0), int(sample_rate), subtype=subtype if fmt == "wav" else None)
    return p
