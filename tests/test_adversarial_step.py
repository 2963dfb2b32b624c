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
