"""The adversarial step computes both players' losses from one discriminator forward of each batch: the gradients it
leaves are the ones the separate passes give (the discriminator's hinge loss on real vs detached reconstructions; the
generator's losses with the real features computed without gradient), each landing on its own player only."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import pytest
import torch

from vaedemo.nn.losses import feature_matching, hinge_discriminator, hinge_generator
from vaedemo.training.module import VAEModule


def separate_pass_gradients(module: VAEModule, batch: torch.Tensor):
    """The gradients of the previous step's maths: three discriminator passes, no optimiser step in between."""
    t, d = module.cfg.train, module.discriminator
    out = module.vae(batch, sample=False, freeze_encoder=True)
    loss_d = hinge_discriminator(d(out.target_padded), d(out.audio_padded.detach()))
    grads_d = torch.autograd.grad(loss_d, list(d.parameters()))
    with torch.no_grad():
        real = d(out.target_padded)
    fake = d(out.audio_padded)
    loss_g = module.reconstruction_loss(out) + t.adversarial_weight * hinge_generator(fake)
    loss_g = loss_g + t.feature_matching_weight * feature_matching(real, fake)
    vae_params = [p for p in module.vae.parameters() if p.requires_grad]
    grads_g = torch.autograd.grad(loss_g, vae_params, allow_unused=True)
    return grads_d, grads_g


def assert_same_gradient(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal to float64 rounding (summation orders differ between one pass over 2B clips and passes over B)."""
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-12)


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
@pytest.mark.parametrize("mode,flows", [("single", 2), ("temporal", 0)])
def test_one_pass_gives_the_separate_passes_gradients(tiny_config, mode, flows):
    torch.manual_seed(0)
    # learning rates 0: the step leaves its gradients on the parameters and the weights as they were
    cfg = tiny_config(mode, flows=flows, train__vae_steps=0, train__discriminator_warmup_len=0, train__max_steps=1,
                      train__lr=0.0, train__disc_lr=0.0, train__grad_clip=0, train__decode_posterior_mean=True)
    module = VAEModule(cfg).double()  # float64: float32's rounding would hide small differences
    for p in module.discriminator.parameters():  # a discriminator whose scores are not all near 0
        torch.nn.init.normal_(p, std=0.3)
    batch = 0.3 * torch.randn(4, 1, cfg.model.clip_length, dtype=torch.float64)
    grads_d, grads_g = separate_pass_gradients(copy.deepcopy(module), batch)

    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, precision="64-true")  # fmt: skip
    trainer.fit(module, torch.utils.data.DataLoader(batch, batch_size=4))
    assert [p for _, p in module.phase_changes] == ["adversarial"]
    for p, g in zip(module.discriminator.parameters(), grads_d):
        assert_same_gradient(p.grad, g)
    vae_params = [p for p in module.vae.parameters() if p.requires_grad]
    assert sum(g is not None for g in grads_g) > 0
    for p, g in zip(vae_params, grads_g):
        if g is None:  # the frozen encoder: no gradient before, none now
            assert p.grad is None
        else:
            assert_same_gradient(p.grad, g)


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_bfloat16_discriminator_gives_the_float32_losses_to_bfloat16_rounding(tiny_config):
    """train.discriminator_precision bfloat16 runs the discriminator under autocast: its weights and gradients stay float32,
    its features reach the losses as float32, and the losses are the float32 ones to bfloat16 rounding; a real
    adversarial training step runs with it."""
    torch.manual_seed(0)
    cfg = tiny_config("temporal", flows=0, train__vae_steps=0, train__discriminator_warmup_len=0, train__max_steps=2)
    module = VAEModule(cfg)
    batch = 0.3 * torch.randn(4, 1, cfg.model.clip_length)
    out = module.vae(batch, sample=False)
    loss_d32, loss_g32, _ = module.adversarial_losses(out, 10**6)
    cfg.train.discriminator_precision = "bfloat16"
    real, fake = module.discriminator_features(out, detach_fake=False)
    assert {f.dtype for maps in real + fake for f in maps} == {torch.float32}
    loss_d16, loss_g16, _ = module.adversarial_losses(out, 10**6)
    assert loss_d16.dtype == loss_g16.dtype == torch.float32
    torch.testing.assert_close(loss_d16, loss_d32, rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(loss_g16, loss_g32, rtol=2e-2, atol=1e-3)
    assert not torch.equal(loss_d16, loss_d32)  # it did run in bfloat16
    loss_d16.backward(inputs=list(module.discriminator.parameters()))
    for p in module.discriminator.parameters():
        assert p.dtype == p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()

    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    before = [p.detach().clone() for p in module.discriminator.parameters()]
    trainer.fit(module, torch.utils.data.DataLoader(batch, batch_size=2))
    assert [p for _, p in module.phase_changes] == ["adversarial"] and module.steps_done == 2
    assert any(not torch.equal(a, p) for a, p in zip(before, module.discriminator.parameters()))
