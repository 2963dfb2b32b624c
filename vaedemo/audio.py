"""Audio at the edge of the package: decode, validate, resample, convert channels, save.

Arrays here are numpy float32 of shape (samples, channels). Everything a user can get wrong raises
:class:`AudioError` with one sentence. Decoding uses soundfile (wav/flac/ogg/opus/mp3 through libsndfile) and falls
back to ffmpeg for other containers (m4a, webm, ...) when ffmpeg is on PATH; resampling uses soxr.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

MAX_SECONDS_DEFAULT = 30 * 60  # anything longer is refused as absurd
MAX_CHANNELS = 16


def _decode_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(
            f"{path.name} is not in a format libsndfile can read (wav, flac, ogg, opus, mp3), and ffmpeg, "
            "which would read it, is not installed."
        )
    probe = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-f", "wav", "-acodec", "pcm_f32le", "-"],
        capture_output=True,
        timeout=120,
    )
    if probe.returncode != 0 or len(probe.stdout) < 44:
        raise AudioError(f"{path.name} could not be decoded as audio (ffmpeg could not read it either).")
    import io

    try:
        data, sr = sf.read(io.BytesIO(probe.stdout), dtype="float32", always_2d=True)
    except Exception:
        raise AudioError(f"{path.name} could not be decoded as audio.") from None
    return data, sr


def check_audio(x: np.ndarray, sr: int, name: str = "the audio", max_seconds: float | None = None) -> np.ndarray:
    """Validate an array of samples and return it as float32 (samples, channels)."""
    x = np.asarray(x)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        x = x.astype(np.float32) / max(abs(info.min), info.max)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise AudioError(f"{name} must be 1-D (samples) or 2-D (samples, channels), got shape {x.shape}.")
    if x.shape[1] > MAX_CHANNELS and x.shape[0] <= MAX_CHANNELS:
        x = x.T  # (channels, samples) given by mistake
    if x.shape[0] == 0:
        raise AudioError(f"{name} is empty (zero samples).")
    if x.shape[1] == 0 or x.shape[1] > MAX_CHANNELS:
        raise AudioError(f"{name} has {x.shape[1]} channels; vaedemo reads 1 to {MAX_CHANNELS}.")
    if not sr or sr < 1000 or sr > 768000:
        raise AudioError(f"{name} has an unusable sample rate of {sr} Hz.")
    limit = MAX_SECONDS_DEFAULT if max_seconds is None else max_seconds
    if x.shape[0] / sr > limit:
        raise AudioError(f"{name} is {x.shape[0] / sr:.0f} s long; the limit is {limit:.0f} s.")
    if not np.isfinite(x).all():
        raise AudioError(f"{name} contains NaN or infinite samples.")
    return x


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    channels: int | None = None,
    max_seconds: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode ``path`` to float32 (samples, channels); optionally resample and convert channels.

    Returns ``(audio, sample_rate)``. Raises :class:`AudioError` for missing, empty, undecodable, non-finite or
    absurdly long files.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"{p} does not exist or is not a file.")
    if p.stat().st_size == 0:
        raise AudioError(f"{p.name} is an empty file.")
    try:
        info = sf.info(str(p))
        limit = MAX_SECONDS_DEFAULT if max_seconds is None else max_seconds
        if info.samplerate and info.frames / info.samplerate > limit * 1.01 + 1:
            raise AudioError(f"{p.name} is {info.frames / info.samplerate:.0f} s long; the limit is {limit:.0f} s.")
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception:
        data, sr = _decode_ffmpeg(p)
    x = check_audio(data, sr, p.name, max_seconds)
    if sample_rate is not None:
        x = resample(x, sr, sample_rate)
        sr = sample_rate
    if channels is not None:
        x = to_channels(x, channels)
    return x, sr


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample (samples, channels) with soxr; the output has round(n * sr_out / sr_in) samples."""
    if sr_in == sr_out:
        return x
    y = soxr.resample(np.ascontiguousarray(x, dtype=np.float32), sr_in, sr_out, quality="HQ")
    return np.asarray(y, dtype=np.float32).reshape(-1, x.shape[1])


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
    """Write (samples, channels) or (samples,) audio; wav/flac/ogg chosen by the suffix."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    x = np.asarray(x, dtype=np.float32)
    fmt = p.suffix.lower().lstrip(".")
    sf.write(str(p), np.clip(x, -1.0, 1.0), sample_rate, subtype=subtype if fmt == "wav" else None)
    return p
