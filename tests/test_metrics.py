"""Offline metrics: mel filterbank, reconstruction metrics (ideal values, orderings, SI-SDR facts), FD / KID."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaedemo import dsp
from vaedemo import metrics as M
from vaedemo.errors import AudioError

SR = 44100
RECON_KEYS = {"log_mel_l1", "audible_log_mel_l1", "multi_resolution_stft", "spectral_convergence", "si_sdr"}


def _music(seconds: float = 1.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Decaying harmonic tones plus a little noise: broadband, non-stationary, (samples, channels) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = []
    for c in range(channels):
        f0 = 110.0 * (1 + c)
        x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 30) if f0 * k < SR / 2)
        x = x * np.exp(-3 * (t % 0.25)) + 0.02 * rng.standard_normal(t.size)
        out.append(0.3 * x / np.abs(x).max())
    return np.stack(out, axis=1).astype(np.float32)


def _add_noise(x: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(x.shape)
    noise *= math.sqrt(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


def _lowpass(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    spec = np.fft.rfft(x, axis=0)
    spec[np.fft.rfftfreq(x.shape[0], 1 / SR) > cutoff_hz] = 0
    return np.fft.irfft(spec, n=x.shape[0], axis=0).astype(np.float32)


# ------------------------------------------------------------------------------------------------ spectra


@pytest.mark.parametrize(
    "sr,n_fft,n_mels", [(44100, 2048, 80), (22050, 1024, 64), (16000, 512, 40), (44100, 2048, 128)]
)
def test_mel_filterbank_shape_nonnegative_every_filter_nonempty(sr, n_fft, n_mels):
    fb = dsp.mel_filterbank(sr, n_fft, n_mels)
    assert fb.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == np.float32
    assert (fb >= 0).all()
    assert (fb.max(axis=1) > 0).all()
    # Slaney area normalisation: a filter wide enough to be sampled well integrates to ~1 over Hz
    bin_hz = sr / n_fft
    assert fb[-10:].sum(axis=1) * bin_hz == pytest.approx(np.ones(10), rel=0.05)


def test_mel_filterbank_rejects_bad_settings_and_returns_a_private_copy():
    with pytest.raises(ValueError, match="no FFT bin"):
        dsp.mel_filterbank(44100, 64, 128)
    with pytest.raises(ValueError):
        dsp.mel_filterbank(16000, 512, 40, fmin=100, fmax=9000)
    fb = dsp.mel_filterbank(16000, 512, 40)
    fb[:] = 0
    assert dsp.mel_filterbank(16000, 512, 40).max() > 0


def test_log_mel_spectrogram_shape_floor_and_determinism():
    x = _music(0.5, channels=2)
    a = M.log_mel_spectrogram(x, SR)
    assert a.shape == (2, 80, x.shape[0] // 512 + 1) and a.dtype == np.float32
    np.testing.assert_array_equal(a, M.log_mel_spectrogram(x, SR))
    assert M.log_mel_spectrogram(x[:, 0], SR, n_mels=64).shape == (1, 64, x.shape[0] // 512 + 1)
    silent = M.log_mel_spectrogram(np.zeros((1000, 1), np.float32), SR)
    np.testing.assert_allclose(silent, math.log(1e-5), rtol=1e-6)
    assert M.log_mel_spectrogram(np.zeros((10, 1), np.float32), SR).shape == (1, 80, 1)  # shorter than n_fft / 2


# ----------------------------------------------------------------------------------------- reconstruction


@pytest.mark.parametrize("x", [_music(0.5, channels=2), np.zeros((20000, 1), np.float32)], ids=["stereo", "silent"])
def test_identical_signals_give_ideal_values(x):
    m = M.reconstruction_metrics(x, x.copy(), SR)
    assert set(m) == RECON_KEYS
    assert m["log_mel_l1"] == m["audible_log_mel_l1"] == m["multi_resolution_stft"] == m["spectral_convergence"] == 0.0
    assert m["si_sdr"] == M.SI_SDR_CAP_DB
    assert all(isinstance(v, float) for v in m.values())


def test_level_difference_is_the_mean_square_ratio_in_db():
    x = _music(0.5)
    assert M.level_difference_db(x, 0.5 * x) == pytest.approx(-6.0206, abs=1e-3)
    assert M.level_difference_db(x, x.copy()) == 0.0
    silent = np.zeros_like(x)
    assert M.level_difference_db(silent, silent) == 0.0 and M.level_difference_db(x, silent) == -200.0


def _frame_periodic(n: int, hop: int, rms: float, seed: int = 2) -> np.ndarray:
    """A random hop-sample waveform repeated: what a transposed-conv decoder gives for a constant latent."""
    period = np.random.default_rng(seed).standard_normal(hop)
    x = np.tile(period, n // hop + 1)[:n]
    return (rms * x / np.sqrt(np.mean(x**2)))[:, None].astype(np.float32)


def _hat(seconds: float = 1.0, seed: int = 3) -> np.ndarray:
    """A hi-hat-like burst: twice-differenced (high-passed) noise, decaying; little energy under 4 kHz, which is
    where a decoder's frame-rate buzz shows."""
    noise = np.random.default_rng(seed).standard_normal(int(seconds * SR) + 2)
    x = np.diff(noise, 2) * np.exp(-np.arange(int(seconds * SR)) / (0.3 * SR))
    return (0.3 * x / np.abs(x).max())[:, None].astype(np.float32)


def test_hop_buzz_finds_a_frame_periodic_part_and_not_noise_or_gain():
    x, hop = _hat(), 512
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    assert M.hop_buzz_db(x, x.copy(), SR, hop) == 0.0
    buzzing = (x + _frame_periodic(len(x), hop, 0.1 * rms)).astype(np.float32)  # 20 dB under the sound
    assert M.hop_buzz_db(x, buzzing, SR, hop) > 6.0
    assert M.hop_buzz_db(x, 0.25 * buzzing, SR, hop) == pytest.approx(M.hop_buzz_db(x, buzzing, SR, hop), abs=1e-6)
    assert abs(M.hop_buzz_db(x, _add_noise(x, 20.0), SR, hop)) < 1.5  # as much broadband noise: no comb
    # periodic at another hop (lines every 100 Hz, some on the midpoints): no comb at this one's frame rate
    assert M.hop_buzz_db(x, (x + _frame_periodic(len(x), 441, 0.1 * rms)).astype(np.float32), SR, hop) < 1.5
    with pytest.raises(AudioError, match="needs at least 2049 samples"):
        M.hop_buzz_db(x[:1000], x[:1000], SR, hop)


def test_reconstruction_metrics_match_the_individual_functions():
    x = _music(0.5)
    y = _add_noise(x, 20)
    m = M.reconstruction_metrics(x, y, SR)
    assert m["log_mel_l1"] == pytest.approx(M.log_mel_l1(x, y, SR), rel=1e-6)
    assert m["audible_log_mel_l1"] == pytest.approx(M.audible_log_mel_l1(x, y, SR), rel=1e-6)
    assert m["multi_resolution_stft"] == pytest.approx(M.multi_resolution_stft(x, y), rel=1e-6)
    assert m["spectral_convergence"] == pytest.approx(M.spectral_convergence(x, y), rel=1e-6)
    assert m["si_sdr"] == pytest.approx(M.si_sdr(x, y), rel=1e-9)


def test_more_noise_is_worse_on_every_metric():
    x = _music(1.0, channels=2)
    mild = M.reconstruction_metrics(x, _add_noise(x, 40), SR)
    strong = M.reconstruction_metrics(x, _add_noise(x, 10), SR)
    for key in ("log_mel_l1", "audible_log_mel_l1", "multi_resolution_stft", "spectral_convergence"):
        assert 0 < mild[key] < strong[key], key
    assert mild["si_sdr"] > strong["si_sdr"]


def test_lower_lowpass_cutoff_is_worse():
    x = _music(1.0)
    keep_most, keep_little = _lowpass(x, 8000), _lowpass(x, 1000)
    for f in (lambda r, e: M.log_mel_l1(r, e, SR), M.multi_resolution_stft, M.spectral_convergence):
        assert 0 < f(x, keep_most) < f(x, keep_little)
    assert M.SI_SDR_CAP_DB > M.si_sdr(x, keep_most) > M.si_sdr(x, keep_little)


@pytest.mark.parametrize("gain", [0.05, 3.7, -1.0])
def test_si_sdr_is_invariant_to_the_gain_of_the_estimate(gain):
    x = _music(0.5)
    y = _add_noise(x, 15)
    assert M.si_sdr(x, gain * y) == pytest.approx(M.si_sdr(x, y), abs=1e-3)


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_si_sdr_of_signal_plus_independent_noise_is_the_snr(snr):
    x = _music(1.0)
    assert M.si_sdr(x, _add_noise(x, snr, seed=7)) == pytest.approx(snr, abs=0.5)


def test_silent_inputs_give_defined_values():
    x, z = _music(0.3), np.zeros((int(0.3 * SR), 1), np.float32)
    for ref, est in ((x, z), (z, x)):
        m = M.reconstruction_metrics(ref, est, SR)
        assert all(np.isfinite(v) for v in m.values())
        assert m["si_sdr"] == -M.SI_SDR_CAP_DB and m["log_mel_l1"] > 1
    assert M.spectral_convergence(x, z) == pytest.approx(1.0)  # nothing of the reference recovered
    assert M.spectral_convergence(z, x) == 1.0  # silent reference, non-silent estimate: defined as 1
    dc = np.full_like(x, 0.5)
    assert M.si_sdr(dc, dc) == M.SI_SDR_CAP_DB  # zero-mean: a constant is silent


def test_bad_pairs_raise_audio_error():
    x = _music(0.1)
    with pytest.raises(AudioError, match="differ in shape"):
        M.reconstruction_metrics(x, x[:-1], SR)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        M.si_sdr(x, bad)
    with pytest.raises(AudioError, match="empty"):
        M.log_mel_spectrogram(np.zeros((0, 1), np.float32), SR)


def _faded(x: np.ndarray, db_per_second: float) -> np.ndarray:
    """``x`` falling linearly in dB over its length: its late cells lie far below its loudest."""
    return (x * 10 ** (-db_per_second * np.arange(len(x))[:, None] / SR / 20)).astype(np.float32)


def test_distance_by_level_sums_to_log_mel_l1_and_finds_where_a_change_lies():
    x = _faded(_music(1.0), 100.0)  # from the peak down to about -100 dB
    for est in (_add_noise(x, 30), _lowpass(x, 4000), 0.5 * x):
        contribution, share = M.log_mel_l1_by_level(x, est, SR)
        assert contribution.shape == share.shape == (len(M.LEVEL_EDGES_DB) + 1,)
        assert contribution.sum() == pytest.approx(M.log_mel_l1(x, est, SR), rel=1e-5)
        assert share.sum() == pytest.approx(1.0) and (share > 0).all()
    floor = x + np.float32(1e-5) * np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    quiet, _ = M.log_mel_l1_by_level(x, floor, SR)  # noise ~100 dB below the peak: only the quietest cells change
    assert quiet[-1] > 0.9 * quiet.sum() > 0
    assert M.audible_log_mel_l1(x, floor, SR) < 0.01 < M.log_mel_l1(x, floor, SR)
    halved = M.audible_log_mel_l1(x, 0.5 * x, SR)  # -6 dB everywhere: ln 2 in every cell above the floor
    assert halved == pytest.approx(math.log(2), rel=0.01)
    contribution, share, audible = M.level_breakdown(x, floor, SR)  # both from one spectrogram pair
    assert np.array_equal(contribution, quiet) and np.array_equal(share, M.log_mel_l1_by_level(x, floor, SR)[1])
    assert audible == M.audible_log_mel_l1(x, floor, SR)


def test_the_strongest_partial_is_found_to_a_bin():
    t = np.arange(SR) / SR
    hit = (np.sin(2 * np.pi * 377 * t) + 0.3 * np.sin(2 * np.pi * 1131 * t) + 2 * np.sin(2 * np.pi * 30 * t)) * np.exp(-4 * t)
    assert abs(M.strongest_partial_hz(hit.astype(np.float32), SR) - 377) <= SR / 8192  # the 30 Hz rumble left out
    stereo = np.stack([hit, 0.5 * hit], axis=1).astype(np.float32)
    assert abs(M.strongest_partial_hz(stereo[:3000], SR) - 377) <= SR / 3000  # shorter than the FFT: zero-padded


def test_distance_by_level_of_identical_and_silent_clips():
    x, z = _music(0.3), np.zeros((int(0.3 * SR), 1), np.float32)
    contribution, _ = M.log_mel_l1_by_level(x, x, SR)
    assert (contribution == 0).all() and M.audible_log_mel_l1(x, x, SR) == 0
    contribution, share = M.log_mel_l1_by_level(z, x, SR)  # a silent reference: every cell is at its loudest
    assert share[0] == 1.0 and contribution[0] == pytest.approx(M.log_mel_l1(z, x, SR))
    assert M.audible_log_mel_l1(z, x, SR) == pytest.approx(M.log_mel_l1(z, x, SR))
    with pytest.raises(AudioError, match="differ in shape"):
        M.log_mel_l1_by_level(x, x[:-1], SR)


# --------------------------------------------------------------------------------------------- generation


def _gauss(n: int, d: int, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * (1 + 0.1 * np.arange(d)) + shift


def test_standardise_uses_reference_statistics():
    ref, other = _gauss(300, 5, 0.0, 0) * 50 + 7, _gauss(200, 5, 1.0, 1) * 50 + 7
    ref[:, 2] = 3.0  # a constant column must not explode
    z_ref, z_other = M.standardise(ref, other)
    np.testing.assert_allclose(z_ref.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(np.delete(z_ref.std(axis=0), 2), 1, rtol=1e-9)
    keep = [0, 1, 3, 4]
    expected = (other[:, keep] - ref[:, keep].mean(axis=0)) / ref[:, keep].std(axis=0)
    np.testing.assert_allclose(z_other[:, keep], expected, rtol=1e-9)
    np.testing.assert_allclose(z_other[:, 2], other[:, 2] - 3.0)  # constant column: centred only


def test_frechet_distance_is_zero_on_itself_and_grows_with_the_shift():
    a = _gauss(500, 16, 0.0, 0)
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    same, near, far = (M.frechet_distance(a, _gauss(500, 16, s, 1)) for s in (0.0, 0.5, 1.0))
    assert same < near < far
    assert same < 0.5 * near


def test_frechet_distance_of_a_change_of_spread_alone_is_its_known_value():
    """N(0, I) against N(0, 4 I) in d dimensions: tr(I + 4 I - 2 sqrt(I 4 I)) = 5d - 4d = d. The distance depends on
    the product of both covariances (the reference's covariance squared instead gave 3d)."""
    d = 8
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((8000, d)), 2 * rng.standard_normal((8000, d))
    assert M.frechet_distance(a, b, standardise_features=False) == pytest.approx(d, rel=0.1)


def test_kid_is_zero_within_noise_for_one_distribution_and_grows_with_the_shift():
    a = _gauss(400, 16, 0.0, 0)
    mean_same, std_same = M.kid(a, _gauss(400, 16, 0.0, 1), subsets=50, subset_size=200)
    assert abs(mean_same) <= 2 * std_same + 1e-3
    near, _ = M.kid(a, _gauss(400, 16, 0.5, 2), subsets=50, subset_size=200)
    far, _ = M.kid(a, _gauss(400, 16, 1.0, 3), subsets=50, subset_size=200)
    assert mean_same + 3 * std_same < near < far
    assert M.kid(a, a, subsets=5, subset_size=100, seed=3) == M.kid(a, a, subsets=5, subset_size=100, seed=3)


def test_paired_kid_scores_reconstructions_by_their_distribution_not_by_their_pairing():
    """Reconstructions of the very clips: the same distribution, each row close to its clip. Scored as independent
    sets, the close pairs drag KID far below 0 (what the decoder bound's row did); paired, it is 0 within noise, and
    a real difference of distributions still shows."""
    a = _gauss(200, 16, 0.0, 0)
    b = 0.9 * a + np.sqrt(1 - 0.9**2) * _gauss(200, 16, 0.0, 1)  # each row near its own; the same N(0, 1)
    naive, naive_std = M.kid(a, b, subsets=50, subset_size=100)
    paired, paired_std = M.kid(a, b, subsets=50, subset_size=100, paired=True)
    assert naive < -3 * naive_std and abs(paired) <= 2 * paired_std + 1e-3
    shifted, _ = M.kid(a, b + 0.5, subsets=50, subset_size=100, paired=True)
    assert shifted > paired + 3 * paired_std
    with pytest.raises(ValueError, match="paired feature sets must have as many rows"):
        M.kid(a, b[:50], paired=True)


def test_clip_features_shapes_and_batching():
    sr = 16000
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((n, c)).astype(np.float32) * 0.1 for n, c in ((8000, 1), (12000, 2), (8000, 2))]
    clips.append(np.zeros((4000, 1), np.float32))
    f = M.clip_features(clips, sr)
    assert f.shape == (4, 176) and np.isfinite(f).all()
    batch = np.stack([clips[0].repeat(2, axis=1), clips[2]])  # (N, samples, channels)
    g = M.clip_features(batch, sr)
    assert g.shape == (2, 176)
    np.testing.assert_allclose(g[1], f[2], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g[0], f[0], rtol=1e-5, atol=1e-7)  # identical channels downmix to the mono clip
    with pytest.raises(AudioError):
        M.clip_features(np.zeros((100, 1), np.float32), sr)


def test_clip_features_of_long_clips_go_a_few_at_a_time(monkeypatch):
    """32 clips of a minute went through one STFT call (about 5 GB): a call takes at most FEATURE_BATCH_SAMPLES
    samples (and one clip at least), with the features of one call for all."""
    rng = np.random.default_rng(1)
    clips = [rng.standard_normal((3000, 1)).astype(np.float32) * 0.1 for _ in range(7)]
    together = M.clip_features(clips, 16000)
    monkeypatch.setattr(M, "FEATURE_BATCH_SAMPLES", 7000)
    batch, sizes = M._features_of_batch, []
    monkeypatch.setattr(M, "_features_of_batch", lambda x, *a: sizes.append(len(x)) or batch(x, *a))
    np.testing.assert_allclose(M.clip_features(clips, 16000), together, rtol=1e-6, atol=1e-9)
    assert sizes == [2, 2, 2, 1]
    assert M.feature_batch(10**9) == 1 and M.feature_batch(1) == 32


def test_clip_features_tell_white_from_brown_noise():
    sr, rng = 16000, np.random.default_rng(0)
    white = lambda: rng.standard_normal((40, 4000, 1)).astype(np.float32) * 0.1
    brown = np.cumsum(rng.standard_normal((40, 4000, 1)), axis=1)
    brown = (0.1 * brown / np.abs(brown).max(axis=1, keepdims=True)).astype(np.float32)
    fa, fb, fc = M.clip_features(white(), sr), M.clip_features(white(), sr), M.clip_features(brown, sr)
    same, _ = M.kid(fa, fb, subsets=20, subset_size=40)
    other, _ = M.kid(fa, fc, subsets=20, subset_size=40)
    assert same < 0.1 * other
