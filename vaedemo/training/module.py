"""LightningModule wrapping AudioVAE: the three training phases with manual optimisation, epoch-level metrics.

Phases, counted in training batches (``self.step``, saved with every Lightning checkpoint):
1. ``vae``: reconstruction (multi-scale STFT, full band + PQMF bands) + beta * KL, generator only;
2. ``discriminator_warmup`` (``discriminator_warmup_len`` steps): the discriminator learns real vs reconstructed
   audio, the generator keeps its VAE loss and gets no adversarial gradient;
3. ``adversarial``: hinge loss + feature matching reach the generator; optionally the encoder is frozen. One
   discriminator forward of the real and of the reconstructed batch gives both players' losses; both optimisers step.
Every metric is logged per epoch only (per-step values are noise).
"""

from __future__ import annotations

import dataclasses
import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info

from ..config import Config
from ..errors import ConfigError, VaedemoError
from ..nn.discriminator import Discriminator, Features
from ..nn.latent import full_precision
from ..nn.losses import (
    FrameBuzz,
    MultiScaleMel,
    MultiScaleSTFT,
    Spectra,
    feature_matching,
    hinge_discriminator,
    hinge_generator,
    spectra_of_parts,
)
from ..nn.vae import AudioVAE
from .precision import discriminator_in_bfloat16

PHASES = ("vae", "discriminator_warmup", "adversarial")
# optimiser steps skipped one after another for non-finite gradients before the run stops: a step or two is a glitch
# the guard absorbs; a hundred is a diverged model or data of NaNs, which would otherwise "train" to the end unchanged
MAX_SKIPPED_IN_A_ROW = 100


def phase_at(cfg: Config, step: int) -> str:
    t = cfg.train
    if step < t.vae_steps:
        return "vae"
    if step < t.vae_steps + t.discriminator_warmup_len:
        return "discriminator_warmup"
    return "adversarial"


def phase_reached(cfg: Config, steps_done: int) -> str:
    """The phase of the last step a run that has completed ``steps_done`` steps trained in."""
    return phase_at(cfg, max(steps_done - 1, 0))


def beta_at(cfg: Config, step: int) -> float:
    """KL weight: log-linear ramp from beta_start to beta over beta_warmup_steps."""
    t = cfg.train
    if t.beta_warmup_steps <= 0 or step >= t.beta_warmup_steps or t.beta_start <= 0 or t.beta <= 0:
        return t.beta
    frac = step / t.beta_warmup_steps
    return math.exp(math.log(t.beta_start) + frac * (math.log(t.beta) - math.log(t.beta_start)))


def lr_factor_at(cfg: Config, step: int) -> float:
    """Multiplier of both learning rates: 1 until lr_decay_start, then log-linear to lr_final_factor at max_steps."""
    t = cfg.train
    start = t.lr_decay_start
    if start is None or step <= start or t.lr_final_factor >= 1.0:
        return 1.0
    frac = min(1.0, (step - start) / max(1, t.max_steps - start))
    return math.exp(frac * math.log(t.lr_final_factor))


def stop_if_done(module: pl.LightningModule) -> None:
    """At the start of a resumed run already at its train.max_steps: stop before any batch (Lightning would otherwise
    train one more step before the module's own check stops it). (A bundle of that step that the run lacks is written
    before the fit: see vaedemo.train's missed validation.)"""
    if module.steps_done >= module.cfg.train.max_steps:
        rank_zero_info(f"[vaedemo] the run is at step {module.steps_done} and train.max_steps is "
                       f"{module.cfg.train.max_steps}: nothing to train (raise it with --set train.max_steps=N)")  # fmt: skip
        module.trainer.should_stop = True


def apply_optimizer_settings(groups: list[dict], fresh: list[dict], betas) -> None:
    """The config's Adam betas and each group's learning-rate scale on an optimiser's groups (``fresh``: the same
    groups as :func:`branch_param_groups` makes them now). A resume restores the groups from the checkpoint whole, and
    a run resumed with other train.betas or train.noise_lr_factor trained on with the old ones while its config.yaml
    and its card said the new."""
    for group, new in zip(groups, fresh, strict=True):
        group["betas"] = tuple(betas)
        group["lr_scale"] = new.get("lr_scale", 1.0)


def _as_float32(features: list[Features]) -> list[Features]:
    return [[f.float() for f in maps] for maps in features]


def branch_param_groups(named: list[tuple[str, torch.nn.Parameter]], t) -> list[dict]:
    """Named parameters of a VAE as one optimiser's groups; the noise branch's and the partial bank's each in a group
    of its own with its learning-rate scale (``lr_scale``: train.noise_lr_factor, train.partials_lr_factor)."""
    branches = {"decoder.noise.": t.noise_lr_factor, "decoder.partials.": t.partials_lr_factor}
    rest = [p for n, p in named if not n.startswith(tuple(branches))]
    groups = [{"params": rest, "lr_scale": 1.0}]
    for prefix, scale in branches.items():
        params = [p for n, p in named if n.startswith(prefix)]
        groups += [{"params": params, "lr_scale": scale}] if params else []
    return groups


def fused_adam_allowed(trainer) -> bool:
    """Adam's fused kernel (one pass over all parameters: 14 -> 3 ms a step for a 1 M-parameter generator on CPU),
    except with a GradScaler: Lightning then leaves unscaling to the fused step, after the gradients have been clipped
    in :meth:`VAEModule.on_before_optimizer_step` (clipping gradients that are still scaled)."""
    plugin = getattr(trainer, "precision_plugin", None)
    return getattr(plugin, "scaler", None) is None


# in every checkpoint written since train.grad_clip clips (2026-12-06): a run checkpointed before trained unclipped
CLIPPING_KEY = "vaedemo_grad_clip_clips"


def finite_and_clipped(module, optimizer, grad_clip: float | None) -> None:
    """Clip ``optimizer``'s gradients by their global norm (one fused norm) to ``grad_clip``, and skip a step whose
    gradients are not finite (NaN guard); ``module`` counts skipped steps (``skipped_steps``, ``skipped_in_a_row``:
    per optimiser, so that a generator's finite steps do not hide a NaN critic).

    A skipped step drops the gradients, so the optimiser leaves every parameter (and its moments) untouched; a
    GradScaler has already seen the overflow while unscaling and lowers its scale. One host sync a step.
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not params:
        return
    grads = [p.grad for p in params]
    norm = torch.nn.utils.get_total_norm(grads, foreach=True)
    if not bool(torch.isfinite(norm)):
        module.skipped_steps += 1
        in_a_row = module.skipped_in_a_row[optimizer] = module.skipped_in_a_row.get(optimizer, 0) + 1
        if in_a_row >= MAX_SKIPPED_IN_A_ROW:
            raise VaedemoError(f"the last {MAX_SKIPPED_IN_A_ROW} optimiser steps all had gradients that are not "
                               "finite (NaN or Inf: the model diverged, or the data holds such values); stopped at "
                               f"step {module.steps_done}.")  # fmt: skip
        for p in params:
            p.grad = None
        return
    module.skipped_in_a_row[optimizer] = 0
    if grad_clip:  # it takes the parameters (and scales their .grad): given the gradients, whose own .grad is None,
        # it clipped nothing, and every run before 2026-12-06 trained unclipped
        torch.nn.utils.clip_grads_with_norm_(params, grad_clip, norm, foreach=True)


def distillation_teacher(cfg: Config) -> AudioVAE:
    """train.init_from's model, frozen, whose encoder a new encoder stack of another kind learns from first."""
    from ..bundle import load

    teacher = load(cfg.train.init_from).model.eval().requires_grad_(False)
    if teacher.cfg.encoder == cfg.model.encoder:  # init_weights copied the same stack: nothing to learn, silently
        raise ConfigError(f"train.encoder_distill_steps teaches a new encoder stack, and train.init_from "
                          f"{cfg.train.init_from} has the same model.encoder ({cfg.model.encoder}); set it to 0.")
    return teacher


class VAEModule(pl.LightningModule):
    def __init__(self, cfg: Config):
        super().__init__()
        self.automatic_optimization = False
        self.cfg = cfg
        self.vae = AudioVAE(cfg.model)
        if cfg.train.freeze_decoder:  # its weights get no gradient; gradients still flow through it to the encoder
            self.vae.decoder.requires_grad_(False)
        self.discriminator = Discriminator(cfg.train.discriminator, cfg.model.channels)
        t = cfg.train
        floor = {"floor_db": t.loss_floor_db}
        self.stft = MultiScaleSTFT(t.stft_sizes, **floor)
        self.band_stft = MultiScaleSTFT(t.band_stft_sizes, **floor) if t.multiband_loss else None
        self.mel = MultiScaleMel(t.mel_sizes, cfg.model.sample_rate, t.mel_bands, **floor) if t.mel_sizes else None
        self.frame_buzz = FrameBuzz(cfg.model.hop, cfg.model.sample_rate) if t.frame_buzz_weight else None
        # validation keeps the fixed floor, so that runs stay comparable
        self.val_stft = self.stft if t.loss_floor_db is None else MultiScaleSTFT(t.stft_sizes)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.phase_changes: list[tuple[int, str]] = []  # (step, phase) each time the phase changes in this process
        self.skipped_steps = 0  # logged as train/skipped_steps
        self.skipped_in_a_row: dict = {}  # per optimiser: a generator's finite steps must not hide a NaN critic
        self.steps_done = 0
        self.val_examples: list[torch.Tensor] = []
        # the encoder a new encoder stack learns from first (train.encoder_distill_steps), loaded at the start of
        # training while there are distillation steps left: in a tuple, so that it is no submodule (not trained, not in
        # the run's checkpoints; a run resumed within them reads it from train.init_from again)
        self.teacher: tuple[AudioVAE, ...] = ()

    # ------------------------------------------------------------------------------------------------ optimisers
    def configure_optimizers(self):
        t = self.cfg.train
        fused = fused_adam_allowed(self.trainer)
        gen = torch.optim.Adam(self._generator_groups(), lr=t.lr, betas=tuple(t.betas), fused=fused)
        dis = torch.optim.Adam(self.discriminator.parameters(), lr=t.disc_lr, betas=tuple(t.betas), fused=fused)
        return [gen, dis]

    def _generator_groups(self) -> list[dict]:
        """The VAE's parameters, frozen ones included (their groups are what a run's checkpoints hold)."""
        return branch_param_groups(list(self.vae.named_parameters()), self.cfg.train)

    @staticmethod
    def _param_groups(opt) -> list[dict]:
        """The parameter groups of an optimiser, wrapped by Lightning or not."""
        return opt.optimizer.param_groups if hasattr(opt, "optimizer") else opt.param_groups

    def _params_of(self, opt) -> list[torch.Tensor]:
        return [p for group in self._param_groups(opt) for p in group["params"] if p.requires_grad]

    def _backward_into(self, opt, loss: torch.Tensor, **kwargs) -> None:
        """Gradients of ``loss`` for ``opt``'s parameters only (the other player's get nothing from it), through
        Lightning's precision plugin: with a GradScaler (16-mixed) the loss is scaled here, and ``opt.step()`` unscales
        before :meth:`on_before_optimizer_step` clips, so the scaler sees every step."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss, inputs=self._params_of(opt), **kwargs)

    def on_before_optimizer_step(self, optimizer) -> None:
        finite_and_clipped(self, optimizer, self.cfg.train.grad_clip)

    # ------------------------------------------------------------------------------------------------ losses
    def reconstruction_loss(self, out) -> torch.Tensor:
        """Spectral distances in full precision: under autocast, FFTs, logs and norms of half-precision audio lose
        the quiet parts that these losses are for."""
        with torch.autocast(out.audio_padded.device.type, enabled=False):
            target, audio = full_precision(out.target_padded), full_precision(out.audio_padded)
            followers = self._followers_audio(out)
            spectra = self._spectra(target, audio, followers)  # the sizes the losses share are computed once
            loss = self.stft(target, audio, spectra)
            if self.band_stft is not None and self.cfg.model.bands > 1:
                bands_in, bands_out = full_precision(out.bands_in), full_precision(out.bands_out)
                band_spectra = self._spectra(bands_in, bands_out, self._followers(out.follower_bands))
                loss = loss + self.band_stft(bands_in, bands_out, band_spectra)
            if self.mel is not None:
                loss = loss + self.cfg.train.mel_weight * self.mel(target, audio, spectra)
            if self.frame_buzz is not None:
                loss = loss + self.cfg.train.frame_buzz_weight * self.frame_buzz(target, audio, spectra)
        return loss

    def distillation_loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean squared error between the encoder's posterior statistics of ``x`` and the teacher's (train.init_from's
        encoder): no decoding, so a step costs an encoder pass or two."""
        if not self.teacher:
            self.teacher = (distillation_teacher(self.cfg),)
        teacher = self.teacher[0].to(device=x.device, dtype=x.dtype)  # (no submodule: Lightning does not move it)
        self.teacher = (teacher,)
        with torch.no_grad():
            target = teacher.posterior_stats(x)[0]
        loss = F.mse_loss(self.vae.posterior_stats(x)[0], target)
        return loss, {"train/distill": loss.detach()}

    def _followers(self, bands: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """The shares of the branches that follow the conv stack's level (relative noise, partial bank) in full
        precision, where the incoherent loss separates them (else none)."""
        return [full_precision(b) for b in bands] if self.cfg.train.incoherent_partials else []

    def _followers_audio(self, out) -> list[torch.Tensor]:
        """:meth:`_followers` as audio: each share of ``out.audio_padded`` (its PQMF synthesis)."""
        return [self.vae.pqmf.synthesis(b) for b in self._followers(out.follower_bands)]

    def _spectra(self, target: torch.Tensor, estimate: torch.Tensor, followers: list[torch.Tensor]) -> Spectra:
        """The pair's spectra; with branches that follow the stack (and train.incoherent_partials), the estimate as
        the incoherent sum of the conv stack's part and each branch's (:class:`IncoherentSpectra`)."""
        return spectra_of_parts(target, [estimate - sum(followers), *followers] if followers else [estimate])

    def discriminator_features(self, out, detach_fake: bool) -> tuple[list[Features], list[Features]]:
        """The discriminator's features of real and of reconstructed audio. Two calls, not one over both batches: the
        generator's backward then runs through the reconstructions' half alone. With train.discriminator_precision
        bfloat16 (or auto, on a device that runs it natively) the discriminator runs under bfloat16 autocast and its
        features come back as float32, so that the losses on them are computed as before."""
        fake = out.audio_padded.detach() if detach_fake else out.audio_padded
        if not discriminator_in_bfloat16(self.cfg.train.discriminator_precision, fake.device.type):
            return self.discriminator(out.target_padded), self.discriminator(fake)
        with torch.autocast(fake.device.type, dtype=torch.bfloat16):
            real, fake = self.discriminator(out.target_padded), self.discriminator(fake)
        return _as_float32(real), _as_float32(fake)

    def forward_for_training(self, x: torch.Tensor, phase: str):
        """The model's output for one training step: posterior samples decoded, or the posterior means where one half
        of the model is fine-tuned for inference (which decodes the means)."""
        t = self.cfg.train
        if t.freeze_decoder:  # the encoder learns: the means decoded, the KL of the posterior they belong to
            out = self.vae(x, sample=False)
            return dataclasses.replace(out, kl=self.vae.latent.kl(out.stats)[1])
        frozen = t.decode_posterior_mean or (phase == "adversarial" and t.freeze_encoder)
        return self.vae(x, sample=not t.decode_posterior_mean, freeze_encoder=frozen)

    def generator_loss(self, out, phase: str, step: int, features=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruction + beta * KL, plus hinge + feature matching on the discriminator's ``features`` (real, fake)
        in the adversarial phase."""
        t = self.cfg.train
        recon = self.reconstruction_loss(out)
        beta = beta_at(self.cfg, step)
        kl = out.kl.mean()
        loss = recon + beta * kl
        logs = {"train/recon": recon.detach(), "train/kl": kl.detach(), "train/beta": torch.tensor(beta)}
        if phase == "adversarial":
            real, fake = features
            adv = hinge_generator(fake)
            fm = feature_matching(real, fake)  # the real features are targets: detached there
            loss = loss + t.adversarial_weight * adv + t.feature_matching_weight * fm
            logs["train/adv"] = adv.detach()
            logs["train/fm"] = fm.detach()
        logs["train/loss_g"] = loss.detach()
        return loss, logs

    def adversarial_losses(self, out, step: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The discriminator's hinge loss and the generator's loss from one discriminator forward of the real and of
        the reconstructed batch, as RAVE computes them: both against the discriminator as it is at the start of the step.
        (Before, the generator's loss came after the discriminator's update, from two more passes.) The caller sends
        each loss into its own player's parameters only."""
        real, fake = self.discriminator_features(out, detach_fake=False)
        loss_g, logs = self.generator_loss(out, "adversarial", step, (real, fake))
        return hinge_discriminator(real, fake), loss_g, logs

    def adversarial_backward(self, out, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Both players' gradients against the discriminator as it is at the start of the step, each loss into its
        own player's parameters only. One process: from one forward of each batch. DDP reduces a parameter's gradient
        when the backward of a graph that holds it runs, so there each player gets its own pass (the other player's
        parameters frozen): the same gradients, one discriminator forward more."""
        opt_g, opt_d = self.optimizers()
        if self.trainer.world_size == 1:
            loss_d, loss_g, logs = self.adversarial_losses(out, step)
            self._backward_into(opt_g, loss_g, retain_graph=True)  # the discriminator's graph serves both
            self._backward_into(opt_d, loss_d)
            return loss_d, logs
        with self.toggled_optimizer(opt_g):
            _, loss_g, logs = self.adversarial_losses(out, step)
            self._backward_into(opt_g, loss_g)
        with self.toggled_optimizer(opt_d):
            loss_d = self.discriminator_backward(out)
        return loss_d, logs

    def discriminator_backward(self, out) -> torch.Tensor:
        """The discriminator's hinge loss on real vs detached reconstructed audio, backward into its parameters."""
        loss_d = hinge_discriminator(*self.discriminator_features(out, detach_fake=True))
        self._backward_into(self.optimizers()[1], loss_d)
        return loss_d

    def on_train_start(self) -> None:
        self.steps_done = int(self.step)  # a host-side copy of the step buffer: reading the buffer would sync the GPU
        stop_if_done(self)
        if self.steps_done < self.cfg.train.encoder_distill_steps:
            self.teacher = (distillation_teacher(self.cfg),)
            rank_zero_info(f"[vaedemo] steps {self.steps_done}-{self.cfg.train.encoder_distill_steps - 1}: the encoder "
                           f"learns the posterior statistics of {self.cfg.train.init_from}'s (train.encoder_distill_steps)")
        opt_g, opt_d = self.optimizers()
        apply_optimizer_settings(self._param_groups(opt_g), self._generator_groups(), self.cfg.train.betas)
        apply_optimizer_settings(self._param_groups(opt_d), [{}], self.cfg.train.betas)
        setting = self.cfg.train.discriminator_precision
        if setting == "auto" and self.cfg.train.max_steps > self.cfg.train.vae_steps:
            bf16 = discriminator_in_bfloat16(setting, self.device.type)
            rank_zero_info(f"[vaedemo] discriminator in {'bfloat16' if bf16 else 'float32'} "
                           f"(train.discriminator_precision auto on {self.device.type})")  # fmt: skip

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        step = self.steps_done
        phase = phase_at(self.cfg, step)
        if not self.phase_changes or self.phase_changes[-1][1] != phase:
            rank_zero_info(f"[vaedemo] step {step}: phase '{phase}'")
            self.phase_changes.append((step, phase))
        opt_g, opt_d = self.optimizers()
        factor = lr_factor_at(self.cfg, step)
        for opt, base in ((opt_g, self.cfg.train.lr), (opt_d, self.cfg.train.disc_lr)):
            for group in self._param_groups(opt):
                group["lr"] = base * factor * group.get("lr_scale", 1.0)
        x = batch
        logs = {}
        if step < self.cfg.train.encoder_distill_steps:  # the teacher's statistics first (a vae-phase step)
            loss_g, g_logs = self.distillation_loss(x)
            self._backward_into(opt_g, loss_g)
            opt_g.step()
            if step + 1 == self.cfg.train.encoder_distill_steps:
                self.teacher = ()  # (its memory back)
                rank_zero_info(f"[vaedemo] step {step + 1}: the encoder learns from the decoded audio")
        elif phase == "adversarial":
            out = self.forward_for_training(x, phase)
            loss_d, g_logs = self.adversarial_backward(out, step)
            opt_g.step()
            opt_d.step()
        else:
            out = self.forward_for_training(x, phase)
            if phase == "discriminator_warmup":  # the discriminator learns; the generator gets no adversarial gradient
                loss_d = self.discriminator_backward(out)
                opt_d.step()
            loss_g, g_logs = self.generator_loss(out, phase, step)
            self._backward_into(opt_g, loss_g)
            opt_g.step()
        if phase != "vae":
            logs["train/loss_d"] = loss_d.detach()
        logs.update(g_logs)
        logs["train/lr"] = torch.tensor(self.cfg.train.lr * factor)
        bs = x.shape[0]
        self.log_dict(logs, on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
        self.log("phase", float(PHASES.index(phase)), on_step=False, on_epoch=True, reduce_fx="max", batch_size=bs)
        self.log("step", float(step + 1), on_step=False, on_epoch=True, reduce_fx="max", batch_size=bs)
        if "train/recon" in g_logs:  # (a distillation step logs train/distill alone: no reconstruction)
            self.log("recon", g_logs["train/recon"], on_step=False, on_epoch=True, prog_bar=True, batch_size=bs,
                     sync_dist=True)  # fmt: skip
        self.log("train/skipped_steps", float(self.skipped_steps), on_step=False, on_epoch=True, reduce_fx="max",
                 batch_size=bs)  # fmt: skip
        self.step += 1
        self.steps_done += 1
        if self.steps_done >= self.cfg.train.max_steps:
            self.trainer.should_stop = True

    # ------------------------------------------------------------------------------------------------ validation
    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        out = self.vae(batch, sample=False)
        recon = self.val_stft(out.target_padded, out.audio_padded)
        _, kl = self.vae.latent.kl(out.stats)
        bs = batch.shape[0]
        self.log("val/stft_distance", recon, on_epoch=True, prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/kl", kl.mean(), on_epoch=True, batch_size=bs, sync_dist=True)
        if batch_idx == 0:
            self.val_examples = [batch[:4].detach().cpu(), out.audio[:4].detach().cpu()]

    def on_validation_epoch_start(self) -> None:
        self.val_examples = []

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # lets `python -m vaedemo.export` rebuild the model from the Lightning checkpoint alone
        checkpoint["vaedemo_config"] = self.cfg.to_dict()
        checkpoint[CLIPPING_KEY] = True
