"""The decode budget of vaedemo.audio, attacked with the files an attack review used against the public demo.

Attack files are made on the fly with ffmpeg / soundfile. Peak memory is measured in a fresh interpreter, as the
growth of ``ru_maxrss`` over the import baseline, so that other tests in this process do not blur it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import vaedemo.audio as audio
import vaedemo.decoders as decoders
from vaedemo.audio import MAX_SAMPLE_RATE, check_audio, decode, load_audio, shown_name
from vaedemo.errors import AudioError

ROOT = Path(__file__).resolve().parents[1]
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg/ffprobe not installed"
)
MB = 1024 * 1024
# A call may grow the interpreter by this much over its import baseline (~30 MB). Before the budget, the attacks below
# grew it by ~440 MB (the 30 s, 8-channel, 384 kHz FLAC and the 20 min Opus), so this bound tells the two apart.
MAX_GROWTH = 100 * MB
MAX_PEAK = 600 * MB


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=60)


def assert_one_sentence(msg: str) -> None:
    assert msg.endswith(".") and "\n" not in msg and len(msg) < 300, msg
    assert not re.search(r"[.;!?]\s+[A-Z]", msg), msg


def refusal(path: Path, **kw) -> str:
    with pytest.raises(AudioError) as e:
        decode(path, **kw)
    msg = str(e.value)
    assert_one_sentence(msg)
    return msg


_MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    from vaedemo.audio import decode
    from vaedemo.errors import AudioError

    def peak_kb():
        # VmHWM: this process's own high-water mark. ru_maxrss would carry over the forking parent's (pytest's)
        # peak across exec on Linux.
        try:
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    base = peak_kb()
    try:
        d = decode(sys.argv[1], **json.loads(sys.argv[2]))
        result = {"frames": len(d.audio), "trimmed": d.trimmed}
    except AudioError as e:
        result = {"error": str(e)}
    result.update(base=base, peak=peak_kb(), children=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps(result))
    """
)


def measured(path: Path, **kw) -> dict:
    """decode(path, **kw) in a fresh interpreter: its result and peak RSS (bytes), before and after the call."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), json.dumps(kw)],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    r = json.loads(out.stdout.strip().splitlines()[-1])
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, kilobytes on Linux
    for k in ("base", "peak", "children"):
        r[k] *= unit
    return r


def assert_small(r: dict) -> None:
    assert r["peak"] - r["base"] < MAX_GROWTH and r["peak"] < MAX_PEAK, r
    assert r["children"] < 3 * MAX_GROWTH, r  # ffprobe/ffmpeg themselves stay small too


# ------------------------------------------------------------------------------------------------ attack files


@pytest.fixture(scope="module")
def long_opus(tmp_path_factory) -> Path:
    """20 min of silence as WebM/Opus (~0.7 MB) named .wav: 10 s encoded once, then looped by stream copy (fast)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    d = tmp_path_factory.mktemp("opus")
    silence = ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "10"]
    ffmpeg(*silence, "-c:a", "libopus", "-b:a", "6k", str(d / "s.webm"))
    ffmpeg("-stream_loop", "119", "-i", str(d / "s.webm"), "-c", "copy", "-f", "webm", str(d / "long.wav"))
    return d / "long.wav"


@pytest.fixture()
def tone_mp3(tmp_path) -> Path:
    """A media file standing in for a file on the server's disk that a playlist points at."""
    p = tmp_path / "secret.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=1234:duration=2", str(p))
    return p


def unprotected_ffmpeg_reads(path: Path) -> bool:
    """Whether a plain ``ffmpeg -i path`` (what the old fallback ran) decodes any audio from ``path``."""
    r = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-"],
        capture_output=True, timeout=60, cwd=path.parent,
    )  # fmt: skip
    return r.returncode == 0 and len(r.stdout) > 1000


# ------------------------------------------------------------------------------------------------ memory


@needs_ffmpeg
def test_384khz_8ch_flac_is_refused_before_decoding_in_little_memory(tmp_path):
    p = tmp_path / "x.flac"  # ~20-60 KB on disk, 92 million samples decoded
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=384000:cl=7.1", "-t", "30", "-c:a", "flac", str(p))
    assert p.stat().st_size < 200_000
    r = measured(p)
    assert "192000 Hz" in r["error"], r
    assert_one_sentence(r["error"])
    assert_small(r)


@needs_ffmpeg
def test_long_opus_named_wav_is_trimmed_to_exactly_max_seconds(long_opus):
    d = decode(long_opus, max_seconds=30, trim=True)
    assert d.sample_rate == 48000 and d.trimmed
    assert abs(len(d.audio) - 30 * 48000) <= 1 and d.audio.shape[1] == 1
    assert d.seconds_in_file == pytest.approx(1200, abs=1)
    r = measured(long_opus, max_seconds=30, trim=True)
    assert abs(r["frames"] - 30 * 48000) <= 1 and r["trimmed"], r
    assert_small(r)


@needs_ffmpeg
def test_long_opus_without_trim_is_refused_before_decoding(long_opus):
    assert re.search(r"is 1200(\.\d)? s long; the limit is 30 s\.$", refusal(long_opus, max_seconds=30))
    # the default limit (30 min) admits 20 min, but 57.6 million samples are over the decode budget
    assert "million" in refusal(long_opus)
    r = measured(long_opus)
    assert "million" in r["error"], r
    assert_small(r)


# ------------------------------------------------------------------------------------------------ other files


@needs_ffmpeg
def test_hls_playlist_named_wav_is_refused(tmp_path, tone_mp3):
    p = tmp_path / "x.wav"
    p.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:5.0,\n{tone_mp3}\n#EXT-X-ENDLIST\n")
    assert unprotected_ffmpeg_reads(p)  # the attack is real: plain ffmpeg decodes the file it points at
    assert "playlist" in refusal(p)
    with pytest.raises(AudioError):
        load_audio(p, trim=True, max_seconds=1)


@needs_ffmpeg
def test_ffconcat_list_named_wav_is_refused(tmp_path, tone_mp3):
    p = tmp_path / "x.wav"
    p.write_text(f"ffconcat version 1.0\nfile '{tone_mp3.name}'\n")
    assert unprotected_ffmpeg_reads(p)
    assert "playlist" in refusal(p)


@needs_ffmpeg
@pytest.mark.parametrize(
    "text", ["#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:5.0,\n{}\n", "ffconcat version 1.0\nfile '{}'\n"]
)
def test_demuxer_whitelist_refuses_playlists_on_its_own(tmp_path, tone_mp3, monkeypatch, text):
    # the up-front text check is for a clear message; ffprobe's demuxer whitelist must stop playlists without it
    monkeypatch.setattr(audio, "_PLAYLIST_MAGIC", ())
    p = tmp_path / "x.wav"
    p.write_text(text.format(tone_mp3.name))
    assert "could not be decoded" in refusal(p)


@needs_ffmpeg
def test_384khz_is_refused_naming_the_limit_and_192khz_is_accepted(tmp_path):
    hi = tmp_path / "hi.wav"
    sf.write(hi, np.zeros((3840, 1), np.float32), 384000)
    assert f"{MAX_SAMPLE_RATE} Hz" in refusal(hi)
    mka = tmp_path / "hi.mka"  # the same through ffprobe
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=384000:cl=mono", "-t", "0.1", "-c:a", "pcm_f32le", str(mka))
    assert f"{MAX_SAMPLE_RATE} Hz" in refusal(mka)
    ok = tmp_path / "ok.wav"
    sf.write(ok, np.zeros((19200, 2), np.float32), 192000)
    x, sr = load_audio(ok)
    assert sr == 192000 and x.shape == (19200, 2)
    with pytest.raises(AudioError, match=f"{MAX_SAMPLE_RATE} Hz"):
        check_audio(np.zeros(100), 384000)


@pytest.mark.parametrize("suffix", ["wav", "flac"])
def test_soundfile_formats_trim_to_exactly_max_seconds(tmp_path, suffix):
    p = tmp_path / f"a.{suffix}"
    sf.write(p, np.full((3 * 16000, 2), 0.25, np.float32), 16000)
    d = decode(p, max_seconds=1.5, trim=True)
    assert d.audio.shape == (24000, 2) and d.trimmed and d.seconds_in_file == 3.0
    x, sr = load_audio(p, max_seconds=1.5, trim=True)
    assert x.shape == (24000, 2) and sr == 16000
    whole = decode(p, max_seconds=3, trim=True)
    assert whole.audio.shape == (48000, 2) and not whole.trimmed and whole.seconds_in_file == 3.0
    assert "3 s long; the limit is 1.5 s" in refusal(p, max_seconds=1.5)


def test_decoded_size_over_budget_is_refused_before_decoding(tmp_path, monkeypatch):
    p = tmp_path / "wide.wav"
    sf.write(p, np.zeros((16000, 8), np.float32), 16000)
    monkeypatch.setattr(audio, "read_soundfile", lambda *a: pytest.fail("decoded although over budget"))
    msg = refusal(p, max_values=100_000)
    assert "0.1 million samples (1 s of 8 channels at 16000 Hz)" in msg


@needs_ffmpeg
def test_container_without_duration_is_capped_while_decoding(tmp_path):
    p = tmp_path / "nodur.mka"  # written to a pipe, so the container never learns its duration
    with p.open("wb") as f:
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=f=440:r=16000:d=3", "-c:a", "flac",
             "-f", "matroska", "pipe:1"],
            stdout=f, check=True, timeout=60,
        )  # fmt: skip
    assert "longer than the limit of 2 s" in refusal(p, max_seconds=2)
    d = decode(p, max_seconds=2, trim=True)
    assert d.audio.shape == (32000, 1) and d.trimmed and d.seconds_in_file is None
    # the header said nothing about the length; the reader stopped at the budget (1 s)
    assert "holds more audio than the 0.0 million samples" in refusal(p, max_values=16000)
    whole = decode(p)
    assert whole.audio.shape == (48000, 1) and not whole.trimmed and whole.seconds_in_file == 3.0


@needs_ffmpeg
def test_ffmpeg_timeout_is_a_sentence(long_opus, monkeypatch):
    monkeypatch.setattr(decoders, "FFMPEG_TIMEOUT_SECONDS", 0.01)
    assert "took longer than 0.01 s to decode" in refusal(long_opus, max_seconds=600, trim=True)


# ------------------------------------------------------------------------------------------------ ordinary files


@needs_ffmpeg
def test_ffmpeg_formats_still_load(tmp_path):
    webm = tmp_path / "a.webm"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:r=48000:d=1", "-ac", "2", "-c:a", "libopus", str(webm))
    x, sr = load_audio(webm)
    assert sr == 48000 and x.shape[1] == 2 and abs(len(x) - 48000) < 2048 and np.abs(x).max() > 0.05
    d = decode(webm)
    assert not d.trimmed and d.seconds_in_file == pytest.approx(1, abs=0.05)
    mp4 = tmp_path / "av.mp4"  # video plus audio: the first audio stream is decoded
    ffmpeg("-f", "lavfi", "-i", "color=s=16x16:d=1", "-f", "lavfi", "-i", "sine=d=1", "-c:v", "mpeg4", "-c:a", "aac",
           "-shortest", str(mp4))  # fmt: skip
    x, sr = load_audio(mp4, sample_rate=16000, channels=1)
    assert sr == 16000 and x.shape[1] == 1 and abs(len(x) - 16000) < 1024
    video = tmp_path / "v.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=s=16x16:d=1", "-c:v", "mpeg4", str(video))
    assert "has no audio stream" in refusal(video)


def test_messages_show_a_short_escaped_excerpt_of_the_name(tmp_path):
    long = tmp_path / ("a" * 200 + ".wav")
    long.write_bytes(b"not audio" * 20)
    msg = refusal(long)
    assert "a" * 56 not in msg and len(msg) < 120
    odd = tmp_path / "x\x1b[31m\u202e.wav"
    odd.write_bytes(b"")
    msg = refusal(odd)
    assert "\x1b" not in msg and "\u202e" not in msg and "\\x1b" in msg
    assert refusal(tmp_path / "nope.wav") == "nope.wav does not exist or is not a file."  # no directory echoed
    assert shown_name("b.wav") == "b.wav" and len(shown_name("\n" * 100)) <= 60
