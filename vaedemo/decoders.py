"""The two decoders behind :func:`vaedemo.audio.decode`: libsndfile, and ffmpeg run in a sandbox of whitelists.

Each first reports a :class:`Header` (what the file says about itself, before any audio is decoded) and then reads
at most a given number of frames, so :mod:`vaedemo.audio` can enforce its decode budget. ffmpeg runs with a protocol
whitelist of ``file`` only, a demuxer whitelist of single-file audio containers (:data:`FFMPEG_FORMATS`), the probed
demuxer forced for decoding, the path as a ``file:`` URL, and its output read from a pipe under a byte budget and a
timeout; its stderr (which names server paths) is discarded.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError

FFPROBE_TIMEOUT_SECONDS = 20.0
FFMPEG_TIMEOUT_SECONDS = 120.0

# ffprobe's format_name of the single-file audio containers the ffmpeg fallback may open. Deliberately absent: every
# demuxer that opens other files or URLs (hls, concat, dash, image2, imf, sdp, rtsp, ...) and text ones (tty, ...).
FFMPEG_FORMATS = frozenset(
    {
        "matroska,webm",
        "mov,mp4,m4a,3gp,3g2,mj2",
        "ogg",
        "wav",
        "w64",
        "flac",
        "mp3",
        "aac",
        "aiff",
        "caf",
        "au",
        "asf",
        "amr",
    }
)
# Demuxer options that keep a container from following references it may carry (mov "data references").
_DEMUXER_OPTIONS = {"mov": ["-enable_drefs", "0"]}
_PROBE_MAX_BYTES = 64 * 1024  # ffprobe prints a few hundred bytes for the fields asked for
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Header:
    """What a file says about itself before any audio is decoded."""

    sample_rate: int
    channels: int
    frames: int | None  # None when the container does not say
    exact: bool  # libsndfile's frame count is exact; ffprobe's duration is an estimate
    demuxer: str | None = None  # ffmpeg's demuxer name (fallback only)


def _undecodable(name: str) -> AudioError:
    return AudioError(f"{name} could not be decoded as audio.")


# ---------------------------------------------------------------------------------------------------- libsndfile


def _sf_path(p: Path) -> str | bytes:
    """The path as soundfile opens it: bytes on POSIX, so that a name that is not UTF-8 (an old archive's) opens too;
    text on Windows, where soundfile opens wide-character names."""
    return str(p) if os.name == "nt" else os.fsencode(p)


def soundfile_header(p: Path) -> Header | None:
    """The header as libsndfile reads it, or None when libsndfile does not read the format."""
    try:
        info = sf.info(_sf_path(p))
    except Exception:
        return None
    if info.format == "RAW":  # a .au without its magic: libsndfile reads any bytes as headerless 8 kHz audio
        return None
    frames = info.frames if 0 <= info.frames < 2**62 else None  # libsndfile says SF_COUNT_MAX when it cannot tell
    return Header(info.samplerate, info.channels, frames, exact=True)


def read_soundfile(p: Path, frames: int) -> np.ndarray | None:
    """At most ``frames`` frames from the start of ``p`` (soundfile allocates no more than the file holds)."""
    try:
        data, _ = sf.read(_sf_path(p), frames=frames, dtype="float32", always_2d=True)
    except Exception:
        return None
    return data


# ---------------------------------------------------------------------------------------------------- ffmpeg


def _file_url(p: Path) -> str:
    # "file:" keeps a name such as "http:x" or "concat:a|b" from being read as another protocol
    return "file:" + str(p.resolve())


def _ffmpeg_tools(name: str) -> tuple[str, str]:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if ffmpeg is None or ffprobe is None:
        raise AudioError(
            f"{name} is not in a format libsndfile can read (wav, flac, ogg, opus, mp3), and ffmpeg, "
            "which would read it, is not installed."
        )
    return ffmpeg, ffprobe


def _demuxer_whitelist() -> str:
    # ffmpeg matches each comma-separated name against the demuxer's names, so "mov" admits "mov,mp4,m4a,...".
    return ",".join(sorted(f.split(",")[0] for f in FFMPEG_FORMATS))


def ffprobe_header(p: Path, name: str) -> Header:
    """Probe the first audio stream with ffprobe; refuse containers outside :data:`FFMPEG_FORMATS`."""
    _, ffprobe = _ffmpeg_tools(name)
    cmd = [
        ffprobe, "-v", "error",
        "-protocol_whitelist", "file", "-format_whitelist", _demuxer_whitelist(),
        "-of", "json", "-select_streams", "a:0",
        # the fields of -show_format -show_streams that are needed, so tags of any size are never printed
        "-show_entries", "format=format_name,duration:stream=sample_rate,channels,duration",
        _file_url(p),
    ]  # fmt: skip
    out, timed_out, rc = _run_bounded(cmd, _PROBE_MAX_BYTES, FFPROBE_TIMEOUT_SECONDS)
    if timed_out or rc != 0 or len(out) >= _PROBE_MAX_BYTES:
        raise _undecodable(name)
    try:
        probe = json.loads(out)
        fmt = probe["format"]["format_name"]
        streams = probe.get("streams") or []
    except (ValueError, KeyError, TypeError):
        raise _undecodable(name) from None
    if fmt not in FFMPEG_FORMATS:  # the whitelist passed to ffprobe already refuses these; this says so plainly
        raise _undecodable(name)
    if not streams:
        raise AudioError(f"{name} has no audio stream.")
    s = streams[0]
    try:
        sr, channels = int(s["sample_rate"]), int(s["channels"])
    except (KeyError, TypeError, ValueError):
        raise _undecodable(name) from None
    seconds = _duration(s) or _duration(probe["format"])
    frames = round(seconds * sr) if seconds else None
    return Header(sr, channels, frames, exact=False, demuxer=fmt.split(",")[0])


def _duration(section: dict) -> float | None:
    try:
        seconds = float(section.get("duration", "nan"))
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def read_ffmpeg(p: Path, name: str, h: Header, frames: int) -> np.ndarray:
    """At most ``frames`` frames of the first audio stream, as float32 at the probed rate and channel count."""
    ffmpeg, _ = _ffmpeg_tools(name)
    assert h.demuxer is not None
    cmd = [
        ffmpeg, "-nostdin", "-v", "error",
        "-protocol_whitelist", "file", "-format_whitelist", h.demuxer, *_DEMUXER_OPTIONS.get(h.demuxer, []),
        "-f", h.demuxer,  # the probed demuxer, so the file cannot be read as something else between probe and decode
        "-i", _file_url(p),
        "-map", "0:a:0",
        "-t", f"{frames / h.sample_rate + 1:.6f}",  # a backstop: the reader below stops at the byte budget anyway
        # what was probed and checked against the limits, even if the stream changes rate or layout later on
        "-ac", str(h.channels), "-ar", str(h.sample_rate),
        "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    frame_bytes = 4 * h.channels
    out, timed_out, rc = _run_bounded(cmd, frames * frame_bytes, FFMPEG_TIMEOUT_SECONDS)
    if timed_out:
        raise AudioError(f"{name} took longer than {FFMPEG_TIMEOUT_SECONDS:g} s to decode.")
    complete = len(out) >= frames * frame_bytes  # stopped by the budget: ffmpeg was killed, its exit status moot
    if not complete and rc != 0:
        raise _undecodable(name)
    n = len(out) // frame_bytes
    return np.frombuffer(out, dtype="<f4", count=n * h.channels).reshape(n, h.channels)


def _run_bounded(cmd: list[str], max_bytes: int, timeout: float) -> tuple[bytearray, bool, int | None]:
    """Run ``cmd``, keeping at most ``max_bytes`` of its stdout; kill it at that point or after ``timeout`` seconds.

    Returns ``(stdout, timed_out, returncode)``. stderr is discarded: ffmpeg's messages name server paths and are
    not shown to users, and an unread stderr pipe could fill up and stall the process.
    """
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    out = bytearray()
    try:
        assert proc.stdout is not None
        while len(out) < max_bytes:
            chunk = proc.stdout.read(min(_CHUNK_BYTES, max_bytes - len(out)))
            if not chunk:
                break
            out += chunk
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    return out, timed_out.is_set(), proc.returncode
