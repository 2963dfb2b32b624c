import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from vaedemo.audio import as_samples, check_audio, load_audio, resample, save_audio, to_channels
from vaedemo.errors import AudioError

SR = 16000


def _sine(n=SR, ch=1):
    t = np.arange(n) / SR
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([x] * ch, axis=1).astype(np.float32)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_subtypes_decode_to_float(tmp_path, subtype):
    p = tmp_path / "a.wav"
    sf.write(p, _sine(), SR, subtype=subtype)
    x, sr = load_audio(p)
    assert sr == SR and x.dtype == np.float32 and x.shape == (SR, 1)
    assert abs(np.abs(x).max() - 0.5) < 0.02


@pytest.mark.parametrize("fmt,subtype", [("flac", "PCM_16"), ("ogg", "VORBIS"), ("ogg", "OPUS"), ("mp3", "MPEG_LAYER_III")])
def test_compressed_formats(tmp_path, fmt, subtype):
    sr = 48000 if subtype == "OPUS" else SR
    p = tmp_path / f"a.{fmt}"
    x = _sine(sr, 2)
    sf.write(p, x, sr, format=fmt.upper() if fmt != "mp3" else "MP3", subtype=subtype)
    y, sr2 = load_audio(p)
    assert sr2 == sr and y.shape[1] == 2 and abs(y.shape[0] - sr) < sr * 0.1


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_ffmpeg_fallback_for_m4a(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, _sine(), SR)
    m4a = tmp_path / "a.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    x, sr = load_audio(m4a)
    assert sr == SR and abs(x.shape[0] - SR) < 2048 and np.abs(x).max() > 0.3


def test_resample_and_channels(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, _sine(SR, 2), SR)
    x, sr = load_audio(p, sample_rate=44100, channels=1)
    assert sr == 44100 and x.shape == (44100, 1)
    assert resample(_sine(), SR, 8000).shape == (8000, 1)
    assert resample(_sine(2, 2), 192000, 44100).shape == (1, 2)  # rounds to none: its nearest sample
    six = np.random.default_rng(0).standard_normal((100, 6)).astype(np.float32)
    assert to_channels(six, 2).shape == (100, 2)
    assert to_channels(six, 1).shape == (100, 1)
    assert np.array_equal(to_channels(_sine(10), 2)[:, 0], to_channels(_sine(10), 2)[:, 1])


def test_a_stereo_downmix_puts_the_odd_channels_left_and_the_even_right():
    """The odd channels (1, 3, 5, counted from 1) are averaged into the left, the even ones into the right, as the
    downmix promises; swapped, every multichannel file came out mirrored."""
    six = np.random.default_rng(0).standard_normal((100, 6)).astype(np.float32)
    stereo = to_channels(six, 2)
    np.testing.assert_allclose(stereo[:, 0], six[:, [0, 2, 4]].mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(stereo[:, 1], six[:, [1, 3, 5]].mean(axis=1), atol=1e-6)


def test_save_round_trip(tmp_path):
    x = _sine(1000, 2)
    p = save_audio(tmp_path / "o.wav", x, SR, subtype="FLOAT")
    y, _ = load_audio(p)
    assert np.allclose(x, y)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 10), "could not be decoded"),
        (lambda p: sf.write(p, np.zeros((0, 1)), SR), "empty"),
        (lambda p: sf.write(p, np.full((100, 1), np.nan), SR, subtype="FLOAT"), "NaN or infinite"),
        (lambda p: sf.write(p, np.full((100, 1), 1e30), SR, subtype="FLOAT"), r"samples up to 1e\+30, far beyond full"),
    ],
)
def test_bad_files_raise_audio_error(tmp_path, make, message):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError, match=message):
        load_audio(p)


def test_samples_far_beyond_full_scale_are_refused_before_they_overflow():
    """A model decodes 1e30 to NaN, and float64's 1e300 would become float32's inf (a misleading "infinite")."""
    from vaedemo.audio import as_samples

    with pytest.raises(AudioError, match=r"^the audio has samples up to 1e\+300, far beyond full scale"):
        as_samples(np.full(10, -1e300))
    assert as_samples(np.full(10, 999.0)).max() == 999.0  # a hot float file (above 1.0) is still audio


def test_truncated_wav(tmp_path):
    p = tmp_path / "t.wav"
    sf.write(p, _sine(), SR)
    data = p.read_bytes()
    p.write_bytes(data[:30])
    with pytest.raises(AudioError):
        load_audio(p)


def test_missing_and_too_long(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        load_audio(tmp_path / "nope.wav")
    p = tmp_path / "long.wav"
    sf.write(p, np.zeros((SR * 3, 1), np.float32), SR)
    with pytest.raises(AudioError, match=r"3 s long; the limit is 2 s"):
        load_audio(p, max_seconds=2)
    with pytest.raises(AudioError, match=r"is 2\.0001 s long; the limit is 2 s\.$"):  # not "is 2 s long"
        check_audio(np.zeros((2 * SR + 1, 1), np.float32), SR, max_seconds=2)


def test_check_audio_arrays():
    assert check_audio(np.zeros(10, np.int16), SR).dtype == np.float32
    assert check_audio(np.zeros((2, 500)), SR).shape == (500, 2)  # (channels, samples) by mistake is transposed
    with pytest.raises(AudioError, match="inf"):
        check_audio(np.array([0.0, np.inf]), SR)
    with pytest.raises(AudioError, match="channels"):
        check_audio(np.zeros((100, 40)), SR)


@pytest.mark.timeout(60)  # (soxr given a NaN rate never returned)
@pytest.mark.parametrize("rate", [float("nan"), float("inf"), np.float32("nan"), "44100", True, None, 0, 999, 192001])
def test_a_sample_rate_that_is_not_a_usable_number_is_one_sentence(tmp_path, rate):
    """NaN passed every comparison and hung soxr; a string was a TypeError from a comparison; True is 1 to Python."""
    says = r"^the audio has an unusable sample rate of .* Hz; vaedemo reads 1000 to 192000 Hz\.$"
    with pytest.raises(AudioError, match=says):
        check_audio(np.zeros(100, np.float32), rate)
    with pytest.raises(AudioError, match="unusable sample rate"):
        resample(np.zeros((100, 1), np.float32), SR, rate)
    with pytest.raises(AudioError, match="unusable sample rate"):
        save_audio(tmp_path / "a.wav", np.zeros(100, np.float32), rate)
    assert check_audio(np.zeros(100), np.float64(44100.0)).shape == (100, 1)  # a numpy number is a number


def test_a_file_is_saved_at_a_whole_number_of_hz():
    with pytest.raises(AudioError, match="a file's sample rate must be a whole number of Hz, got 44100.5"):
        save_audio("unused.wav", np.zeros(100, np.float32), 44100.5)


RAGGED = "must be an array of numbers, with rows of equal length"


@pytest.mark.parametrize("samples,says", [(["0.1", "x"], "must be an array of numbers, got text"),
                                          ([[0.1, 0.2], [0.3]], RAGGED), ([0.1, object()], RAGGED),
                                          (np.full(10, 0.1 + 0.1j), "is complex; audio samples must be real numbers")])
def test_samples_that_are_not_real_numbers_are_one_sentence(samples, says):
    """Text and ragged rows were numpy's ValueError; complex samples lost their imaginary part without a word."""
    with pytest.raises(AudioError, match=f"^the audio {says}\\.$"):
        check_audio(samples, SR)
    with pytest.raises(AudioError, match=says):
        as_samples(samples)


def test_integer_pcm_is_scaled_as_files_store_it():
    """8-bit WAV is unsigned with its silence at 128 (it came out at +0.5); int64, what a list of Python ints becomes,
    has no PCM scale (divided by 2**63 it came out silent): refused, as are other unsigned integers."""
    np.testing.assert_allclose(as_samples(np.array([0, 128, 255], np.uint8))[:, 0], [-1, 0, 127 / 128])
    np.testing.assert_allclose(as_samples(np.array([-128, 0, 64], np.int8))[:, 0], [-1, 0, 0.5])
    np.testing.assert_allclose(as_samples(np.array([-32768, 16384], np.int16))[:, 0], [-1, 0.5])
    np.testing.assert_allclose(as_samples(np.array([-(2**31), 2**30], np.int32))[:, 0], [-1, 0.5])
    for x in ([int(v * 32767) for v in _sine(100)[:, 0]], np.zeros(10, np.uint64), np.zeros(10, np.uint16)):
        with pytest.raises(AudioError, match=r"^the audio holds u?int(64|16) integers, which are no PCM format: pass "
                                             r"float32 samples in \[-1, 1\], or int16 or int32 PCM\.$"):  # fmt: skip
            check_audio(x, SR)


def test_a_short_multichannel_sound_keeps_its_samples_by_channels_layout():
    """An array reads as (channels, samples) given by mistake only when its second axis is longer than any channel
    count and its first could be one; a sound of fewer samples than channels is (samples, channels) as given
    (transposed, a single stereo frame became two mono samples, three frames of five channels five of three)."""
    for shape in ((1, 2), (3, 5), (16, 16)):
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        assert np.array_equal(check_audio(x, SR), x)
