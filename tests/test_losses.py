"""Reconstruction losses: known values, the low-frequency weighting of the log-mel loss, wiring into training."""

from __future__ import annotations

import math

import pytest
import torch

from vaedemo.errors import ConfigError
from vaedemo.nn.losses import IncoherentSpectra, MultiScaleMel, MultiScaleSTFT, Spectra
from vaedemo.training.module import VAEModule

SR = 44100


def noise(seed: int = 0, n: int = 8192) -> torch.Tensor:
    return torch.randn(2, 1, n, generator=torch.Generator().manual_seed(seed))


def band_stop(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """x with the FFT bins in [lo, hi) Hz removed."""
    spec = torch.fft.rfft(x)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
    spec[..., (freqs >= lo) & (freqs < hi)] = 0
    return torch.fft.irfft(spec, n=x.shape[-1])


def test_identical_signals_give_zero_and_a_gain_of_two_gives_ln2():
    mel = MultiScaleMel([2048, 512], SR)
    x = noise()
    assert mel(x, x).item() == 0.0
    # loud white noise: every mel band is far above the 1e-5 floor, so |ln(2 mel) - ln(mel)| = ln 2 everywhere
    assert mel(x, 2 * x).item() == pytest.approx(math.log(2), rel=1e-3)


def test_the_stft_distance_is_relative_to_the_target():
    """Of an estimate at twice the target's gain, per FFT size: |2S - S| / |S| = 1 plus |ln 2S - ln S| = ln 2. It is
    one-sided: target and estimate swapped, the linear term is relative to the estimate, |S - 2S| / |2S| = 0.5."""
    sizes = [2048, 512, 128]
    x = noise()
    assert MultiScaleSTFT(sizes)(x, 2 * x).item() == pytest.approx(len(sizes) * (1 + math.log(2)), rel=1e-3)


def test_low_frequencies_weigh_more_than_in_the_linear_stft_loss():
    x = noise(1)
    low, high = band_stop(x, 0, 700), band_stop(x, 15000, 15700)  # the same 700 Hz width removed
    mel, stft = MultiScaleMel([2048, 1024], SR), MultiScaleSTFT([2048, 1024])
    # in the linear-frequency loss both cuts cost about the same; in mel bands the low cut costs several times more
    assert stft(x, low).item() == pytest.approx(stft(x, high).item(), rel=0.3)
    assert mel(x, low).item() > 4 * mel(x, high).item()


def test_small_fft_sizes_use_fewer_mel_bands_and_gradients_flow():
    mel = MultiScaleMel([64], 16000, n_mels=80)  # 80 filters would leave some without an FFT bin at n=64
    assert mel.mel_64.shape[1] == 33 and mel.mel_64.shape[0] < 80
    assert mel.mel_64.max(dim=1).values.min() > 0
    y = noise(2, 4096).requires_grad_()
    mel(noise(3, 4096), y).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert not any(k.startswith("mel_") for k in mel.state_dict()), "filters are rebuilt, not stored in checkpoints"


def test_training_adds_the_weighted_mel_term(tiny_config):
    torch.manual_seed(0)
    base = VAEModule(tiny_config(mode="temporal", flows=0))
    with_mel = VAEModule(tiny_config(mode="temporal", flows=0, train__mel_sizes="[256, 128]", train__mel_weight=2.0))
    with_mel.load_state_dict(base.state_dict())
    x = torch.randn(2, 1, 2048) * 0.1
    out = base.vae(x, sample=False)
    extra = with_mel.reconstruction_loss(out) - base.reconstruction_loss(out)
    assert extra.item() == pytest.approx(2.0 * with_mel.mel(out.target_padded, out.audio_padded).item(), rel=1e-5)
    assert extra.item() > 0


def test_mel_sizes_must_be_powers_of_two(tiny_config):
    with pytest.raises(ConfigError, match="mel_sizes must be powers of two"):
        tiny_config(train__mel_sizes="[300]")


def test_the_loss_floor_reaches_every_spectral_loss_of_training_and_not_validation(tiny_config):
    module = VAEModule(tiny_config(mode="temporal", flows=0, train__mel_sizes="[256]", train__loss_floor_db=50.0))
    assert module.stft.floor_db == module.band_stft.floor_db == module.mel.floor_db == 50.0
    assert module.val_stft.floor_db is None  # validation distances stay comparable between runs
    with pytest.raises(ConfigError, match="loss_floor_db must be positive"):
        tiny_config(train__loss_floor_db=0)


def test_shared_spectra_give_the_same_losses_and_gradients():
    """The STFT and log-mel losses of one training step share their magnitude STFTs (Spectra): the same values and
    the same gradient as each loss computing its own, sizes shared or not."""
    from vaedemo.nn.losses import Spectra

    stft, mel = MultiScaleSTFT([2048, 1024, 256]), MultiScaleMel([4096, 1024, 256], SR)
    x = noise(2)

    def loss_and_grad(shared: bool):
        y = noise(3).requires_grad_(True)
        spectra = Spectra(x, y) if shared else None
        loss = stft(x, y, spectra) + 5.0 * mel(x, y, spectra)
        loss.backward()
        return loss.detach(), y.grad

    (separate, g_separate), (together, g_together) = loss_and_grad(False), loss_and_grad(True)
    torch.testing.assert_close(together, separate, rtol=1e-6, atol=0)
    torch.testing.assert_close(g_together, g_separate, rtol=1e-5, atol=1e-9)
    spectra = Spectra(x, noise(3))
    assert spectra.pair(1024, torch.hann_window(1024)) is spectra.pair(1024, torch.hann_window(1024))  # computed once


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_spectral_distances_match_the_plain_expressions(dtype):
    """Training computes the STFT and log-mel distances with their gradients written out (the target needs none);
    they give the values and the estimate's gradient of the plain autograd expressions, which run when the target
    does need a gradient. Including bins where estimate and target are silent and where they coincide."""
    from vaedemo.dsp import fitting_mel_filterbank, hann_window, stft_magnitude
    from vaedemo.nn.losses import log_floor, log_mel_distance, stft_distance

    x = noise(4, 3000).to(dtype)
    y0 = (0.5 * x + 0.3 * noise(5, 3000).to(dtype)).reshape(2, 3000)
    y0[0, :1000] = 0.0  # silent frames in the estimate
    x = x.reshape(2, 3000)
    tol = {"rtol": 1e-5, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-13}
    for n in (1024, 64):
        window = hann_window(n).to(dtype)
        filters = torch.from_numpy(fitting_mel_filterbank(SR, n, 80)).to(dtype)
        sx = stft_magnitude(x, n, window)
        results = []
        for plain in (False, True):
            y = y0.clone().requires_grad_(True)
            sy = stft_magnitude(y, n, window)
            target = sx.clone().requires_grad_(plain)  # a target that needs a gradient takes the plain expressions
            value = stft_distance(target, sy, 1e-7) + 3.0 * log_mel_distance(filters, target, sy, 1e-5)
            floored = stft_distance(target, sy, 1e-7, log_floor(target, 1e-7, 40.0))  # a raised floor, per example
            value = value + floored + log_mel_distance(filters, target, sy, 1e-5, floor_db=40.0)
            value.backward()
            results.append((value.detach(), y.grad))
        (fused, g_fused), (reference, g_reference) = results
        torch.testing.assert_close(fused, reference, **tol)
        torch.testing.assert_close(g_fused, g_reference, **tol)
        assert g_fused.abs().max() > 0
    for same in (stft_magnitude(x, 256, hann_window(256).to(dtype)), torch.zeros(2, 129, 13, dtype=dtype)):
        estimate = same.clone().requires_grad_(True)
        stft_distance(same, estimate, 1e-7).backward()  # estimate == target (even silent): distance 0, gradient 0
        assert torch.equal(estimate.grad, torch.zeros_like(same))


def test_a_raised_log_floor_leaves_what_lies_far_below_the_peak_out_of_the_loss():
    """With floor_db, an error 90 dB below the target's loudest cell hardly counts; one near it counts as before."""
    from vaedemo.nn.losses import MultiScaleMel, MultiScaleSTFT

    t = torch.arange(8192) / SR
    hit = (torch.sin(2 * torch.pi * 440 * t) * torch.exp(-t / 0.02)).reshape(1, 1, -1)  # decays to ~-800 dB: silence
    hiss = hit + 10 ** (-90 / 20) * noise(1)[:1]  # a faint noise floor 90 dB down
    steady = noise(2)[:1]  # white noise: every cell within a few dB of the loudest
    for make in (MultiScaleSTFT, lambda sizes, **kw: MultiScaleMel(sizes, SR, **kw)):
        loss, raised = make([1024, 256]), make([1024, 256], floor_db=40.0)
        assert raised(hit, hiss) < 0.05 * loss(hit, hiss)
        assert float(raised(steady, 0.5 * steady)) == pytest.approx(float(loss(steady, 0.5 * steady)), rel=0.1)


def test_incoherent_spectra_pull_a_quiet_part_up_where_the_other_falls_short_at_any_phase():
    """A target tone, a part at half its amplitude and a quiet second part (gain 0.1) at the same pitch: on the
    incoherent sum the loss falls as the quiet part grows, whatever the two parts' relative phase; on the true sum the
    sign of that pull depends on the phase (so over unrelated phases it averages out)."""
    t = torch.arange(4096, dtype=torch.float64) / 16000
    target = torch.sin(2 * math.pi * 500 * t)[None, None]
    main = 0.5 * torch.sin(2 * math.pi * 500 * t + 0.3)[None, None]
    loss = MultiScaleSTFT([512, 256]).double()
    pulls = {"incoherent": [], "true": []}
    for phase in torch.linspace(0, 2 * math.pi, 9)[:-1]:
        for kind, spectra in (("incoherent", IncoherentSpectra), ("true", lambda x, parts: Spectra(x, sum(parts)))):
            gain = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
            quiet = gain * torch.sin(2 * math.pi * 500 * t + 0.3 + phase)[None, None]
            (grad,) = torch.autograd.grad(loss(target, main + quiet, spectra(target, [main, quiet])), gain)
            pulls[kind].append(float(grad))
    assert all(g < 0 for g in pulls["incoherent"])
    assert min(pulls["true"]) < 0 < max(pulls["true"])
    x, parts = torch.randn(2, 1, 2048), [torch.randn(2, 1, 2048), torch.randn(2, 1, 2048)]
    sx, sy = IncoherentSpectra(x, parts).pair(512, torch.hann_window(512))
    m = [Spectra(x, p).pair(512, torch.hann_window(512))[1] for p in parts]
    assert torch.allclose(sy, (m[0] ** 2 + m[1] ** 2).sqrt(), atol=1e-5)


def frame_periodic(hop: int, n: int, seed: int = 5) -> torch.Tensor:
    """One random hop of waveform repeated: what a transposed conv makes of a constant latent, lines at sr / hop."""
    period = torch.randn(hop, generator=torch.Generator().manual_seed(seed))
    return period.repeat(n // hop)[:n]


def test_the_frame_buzz_loss_is_the_evaluations_buzz_either_way():
    """Zero for the target itself; for noise plus a frame-periodic part, the dB the metric (vaedemo.metrics.hop_buzz_db)
    reads, within the 0.5 dB its other STFT hop makes, and as much for an estimate with that much less comb than its
    target (notches); a gradient that lowers it."""
    from vaedemo.metrics import hop_buzz_db
    from vaedemo.nn.losses import FrameBuzz

    hop, n = 64, 16384
    buzz = FrameBuzz(hop, SR)
    x = noise(0, n)
    comb = x + frame_periodic(hop, n)
    assert buzz(x, x).item() == 0.0
    expected = sum(hop_buzz_db(a[0].numpy(), b[0].numpy(), SR, hop) for a, b in zip(x, comb)) / 2
    assert expected > 3 and buzz(x, comb).item() == pytest.approx(expected, abs=0.5)
    assert buzz(comb, x).item() == pytest.approx(buzz(x, comb).item(), abs=0.05)  # (the floor is the target's)
    y = comb.clone().requires_grad_(True)
    buzz(x, y).backward()
    assert buzz(x, (y - 0.1 * y.grad / y.grad.abs().max()).detach()).item() < buzz(x, comb).item()


def test_training_adds_the_weighted_frame_buzz_term_from_the_shared_spectra(tiny_config):
    torch.manual_seed(0)
    base = VAEModule(tiny_config(mode="temporal", flows=0))
    with_buzz = VAEModule(tiny_config(mode="temporal", flows=0, train__frame_buzz_weight=0.5))
    with_buzz.load_state_dict(base.state_dict())
    assert base.frame_buzz is None and with_buzz.frame_buzz.n_fft == 8 * with_buzz.cfg.model.hop
    x = torch.randn(2, 1, 2048) * 0.1
    out = base.vae(x, sample=False)
    extra = with_buzz.reconstruction_loss(out) - base.reconstruction_loss(out)
    term = with_buzz.frame_buzz(out.target_padded, out.audio_padded).item()
    assert term > 0 and extra.item() == pytest.approx(0.5 * term, rel=1e-4)


def test_the_frame_buzz_weight_is_checked(tiny_config):
    with pytest.raises(ConfigError, match="frame_buzz_weight must not be negative"):
        tiny_config(train__frame_buzz_weight=-1)
    with pytest.raises(ConfigError, match="frame_buzz_weight needs clips of at least 4 latent frames"):
        tiny_config(train__frame_buzz_weight=1, model__ratios="[4, 4]", model__clip_length=128)


def test_the_frame_buzz_loss_sums_channels_as_the_metric_and_keeps_quiet_estimates_bounded():
    """Stereo: power summed over channels, as vaedemo.metrics.hop_buzz_db sums it (a comb on one channel read 12 dB
    where the metric reads 21.5 when each channel counted apart). A comb 30 dB or more below the target counts for
    little, and an estimate near silence gets a bounded gradient (without the floor it grew as 1 / its amplitude:
    5e4 at 1e-7 against a silent target; with it at most about 30, at the floor, -80 dBFS)."""
    from vaedemo.metrics import hop_buzz_db
    from vaedemo.nn.losses import FrameBuzz

    hop, n = 64, 16384
    buzz = FrameBuzz(hop, SR)
    x = torch.randn(1, 2, n, generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[0, 1] += 3 * frame_periodic(hop, n)  # the comb on the right channel alone
    expected = hop_buzz_db(x[0].T.numpy(), y[0].T.numpy(), SR, hop)
    assert expected > 10 and buzz(x, y).item() == pytest.approx(expected, abs=0.5)
    assert buzz(x, x + 1e-3 * frame_periodic(hop, n)).item() < 0.5  # 60 dB down: under the floor
    for target in (x, torch.zeros_like(x)):
        for level in (1e-3, 1e-5, 1e-7):
            quiet = (level * frame_periodic(hop, n)).expand_as(x).clone().requires_grad_(True)
            loss = buzz(target, quiet)
            loss.backward()
            assert torch.isfinite(loss) and quiet.grad.abs().max() < 100.0, (level, quiet.grad.abs().max())
