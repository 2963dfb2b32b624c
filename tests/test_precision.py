"""Dtypes and devices: what CUDA autocast produces (half-precision tensors meeting float32 ones) is handled where
they meet; float64 stays float64 through the model and sampling; outputs land on the model's device; every phase
trains under bf16-mixed; a GradScaler sees every step and an overflowing step is skipped through it."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision

from vaedemo.config import load_config
from vaedemo.dsp import hann_window, stft_magnitude
from vaedemo.nn.flows import RealNVP
from vaedemo.nn.latent import Latent
from vaedemo.nn.losses import MultiScaleMel, MultiScaleSTFT
from vaedemo.nn.pqmf import PQMF
from vaedemo.nn.vae import AudioVAE
from vaedemo.training.module import VAEModule

HALF = [torch.bfloat16, torch.float16]


@pytest.mark.parametrize("half", HALF)
def test_flow_under_autocast_keeps_the_input_dtype(half):
    flow = RealNVP(8, layers=3, hidden=16)
    for p in flow.parameters():  # not the identity
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(5, 8)
    with torch.autocast("cpu", dtype=half):  # the coupling nets run in half precision, x stays float32
        y, ld = flow(x)
        back, ld_inv = flow.inverse(y)
    assert y.dtype == ld.dtype == back.dtype == torch.float32 and ld.shape == (5,)
    assert torch.allclose(back, x, atol=0.05) and torch.allclose(ld, -ld_inv, atol=0.05)


@pytest.mark.parametrize("half", HALF)
def test_latent_densities_are_computed_in_full_precision_from_half_statistics(half):
    cfg = load_config(None, ["model.latent_size=4", "model.posterior_flow_layers=2", "model.prior_flow_layers=2"])
    latent = Latent(cfg.model)
    stats = torch.randn(3, 8, 5).to(half)  # a conv's output under autocast
    z, kl = latent.kl(stats)
    assert z.dtype == kl.dtype == torch.float32 and torch.isfinite(kl).all()
    assert latent.prior_log_prob(z.to(half)).dtype == torch.float32


@pytest.mark.parametrize("half", HALF)
def test_losses_and_pqmf_accept_half_precision_audio(half):
    target = 0.3 * torch.randn(2, 1, 4096)
    estimate = (target + 0.05 * torch.randn_like(target)).to(half)
    stft, mel = MultiScaleSTFT([512, 128]), MultiScaleMel([512, 256], 16000, 32)
    for loss in (stft, mel):
        value = loss(target, estimate)
        assert value.dtype == torch.float32
        assert torch.allclose(value, loss(target, estimate.float()), rtol=1e-6)
    pqmf = PQMF(4)
    bands = pqmf.analysis(target.to(half))
    assert bands.dtype == half and pqmf.synthesis(bands).dtype == half


def test_stft_magnitude_matches_torch_stft_and_its_gradient():
    x = torch.randn(2, 300, dtype=torch.float64, requires_grad=True)  # (gradcheck perturbs each sample: kept short)
    for n in (64, 16):
        w = hann_window(n).double()
        ref = torch.stft(x, n, n // 4, window=w, center=True, pad_mode="constant", return_complex=True).abs()
        assert torch.allclose(stft_magnitude(x, n, w), ref, atol=1e-12)
        assert torch.autograd.gradcheck(lambda t, n=n, w=w: stft_magnitude(t, n, w), (x,), atol=1e-6)
        silent = torch.zeros(1, 200, requires_grad=True)
        stft_magnitude(silent, n, hann_window(n)).sum().backward()
        assert torch.equal(silent.grad, torch.zeros_like(silent))  # zero bins: zero gradient, as for abs


@pytest.mark.parametrize("mode,flows", [("single", 2), ("temporal", 0)])
def test_float64_model_and_sampling_stay_float64(tiny_config, mode, flows):
    model = AudioVAE(tiny_config(mode, flows=flows).model).double().eval()
    x = 0.1 * torch.randn(2, 1, 3000, dtype=torch.float64)
    out = model(x)
    assert out.audio.dtype == out.z.dtype == out.kl.dtype == torch.float64
    assert model.sample(2).dtype == torch.float64
    assert model.encode(x).dtype == torch.float64


@pytest.mark.parametrize("mode,flows", [("single", 2), ("temporal", 0)])
def test_samples_land_on_the_models_device(tiny_config, mode, flows):
    model = AudioVAE(tiny_config(mode, flows=flows).model).eval().to("meta")
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).device.type == "meta"


def _fit(module: VAEModule, **trainer_kwargs) -> None:
    data = torch.utils.data.DataLoader(0.1 * torch.randn(2 * module.cfg.train.max_steps, 1, 2048), batch_size=2)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, **trainer_kwargs)  # fmt: skip
    trainer.fit(module, data)


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
@pytest.mark.parametrize("mode,flows", [("single", 2), ("temporal", 0)])
def test_every_phase_trains_under_bf16_mixed(tiny_config, mode, flows):
    cfg = tiny_config(mode, flows=flows, train__vae_steps=1, train__discriminator_warmup_len=1, train__max_steps=3)
    module = VAEModule(cfg)
    _fit(module, precision="bf16-mixed")
    assert [p for _, p in module.phase_changes] == ["vae", "discriminator_warmup", "adversarial"]
    assert module.skipped_steps == 0 and all(torch.isfinite(p).all() for p in module.parameters())


class _Overflows(VAEModule):
    """A module whose generator loss overflows at step 1."""

    def generator_loss(self, out, phase, step):
        loss, logs = super().generator_loss(out, phase, step)
        return (loss * float("inf") if step == 1 else loss), logs


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_a_grad_scaler_sees_every_step_and_skips_the_overflowing_one(tiny_config):
    module = _Overflows(tiny_config("temporal", flows=0, train__vae_steps=4, train__max_steps=4))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scales, update = [], scaler.update
    scaler.update = lambda *a, **k: (update(*a, **k), scales.append(scaler.get_scale()))
    before = {}
    snapshot = lambda batch, i: before.update({i: [p.detach().clone() for p in module.vae.parameters()]})
    module.on_train_batch_start = snapshot
    _fit(module, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    assert int(module.step) == 4 and len(scales) == 4  # the scaler saw every step, the bad one included
    assert module.skipped_steps >= 1 and scales[1] == scales[0] / 2  # step 1 overflowed: the scale halved
    after_bad_step = before[2]
    assert all(torch.equal(a, b) for a, b in zip(before[1], after_bad_step))  # step 1 changed nothing
    assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.parametrize("precision, half", [("bf16-mixed", "bfloat16"), ("16-mixed", "float16"), ("bf16-true", "bfloat16")])
def test_training_warns_of_half_precision_on_a_cpu_that_emulates_it(monkeypatch, precision, half):
    from vaedemo import train
    from vaedemo.config import TrainerConfig

    monkeypatch.setattr(train, "fast_cpu_kernels", lambda h: h != half)
    warning = train.slow_cpu_precision(TrainerConfig(accelerator="cpu", precision=precision))
    assert warning is not None and precision in warning and half in warning and "32-true" in warning
    assert train.slow_cpu_precision(TrainerConfig(accelerator="cpu", precision="32-true")) is None
    assert train.slow_cpu_precision(TrainerConfig(accelerator="gpu", precision=precision)) is None  # CUDA has them
    monkeypatch.setattr(train, "fast_cpu_kernels", lambda h: True)
    assert train.slow_cpu_precision(TrainerConfig(accelerator="cpu", precision=precision)) is None


def test_training_warns_of_a_bfloat16_discriminator_on_a_cpu_that_emulates_it(monkeypatch, tiny_config):
    from vaedemo import train

    cfg = tiny_config("temporal", flows=0, train__discriminator_precision="bfloat16", trainer__accelerator="cpu")
    monkeypatch.setattr(train, "fast_cpu_kernels", lambda h: False)
    assert "train.discriminator_precision bfloat16" in train.slow_cpu_discriminator(cfg)
    for setting in ("float32", "auto"):  # auto picks float32 on such a CPU: nothing to warn of
        other = tiny_config("temporal", flows=0, train__discriminator_precision=setting, trainer__accelerator="cpu")
        assert train.slow_cpu_discriminator(other) is None
    monkeypatch.setattr(train, "fast_cpu_kernels", lambda h: True)
    assert train.slow_cpu_discriminator(cfg) is None


def test_auto_discriminator_precision_follows_the_device(monkeypatch, tiny_config):
    from vaedemo.errors import ConfigError
    from vaedemo.training import precision

    precision.fast_bfloat16.cache_clear()
    monkeypatch.setattr(precision, "fast_cpu_kernels", lambda h: False)
    assert not precision.discriminator_in_bfloat16("auto", "cpu")
    assert precision.discriminator_in_bfloat16("bfloat16", "cpu") and not precision.discriminator_in_bfloat16("float32", "cpu")
    precision.fast_bfloat16.cache_clear()
    monkeypatch.setattr(precision, "fast_cpu_kernels", lambda h: True)
    assert precision.discriminator_in_bfloat16("auto", "cpu")
    precision.fast_bfloat16.cache_clear()
    with pytest.raises(ConfigError, match="train.discriminator_precision must be one of float32, bfloat16, auto"):
        tiny_config("temporal", flows=0, train__discriminator_precision="bf16")


def test_fast_cpu_kernels_answers_for_this_machine():
    from vaedemo.training.precision import fast_cpu_kernels

    assert isinstance(fast_cpu_kernels("bfloat16"), bool) and isinstance(fast_cpu_kernels("float16"), bool)
