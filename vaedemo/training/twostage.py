"""Stage two of a two-stage model: one latent vector per clip, learned over a frozen temporal autoencoder.

The temporal autoencoder (``train.backbone``, a temporal bundle without a posterior flow) already turns a clip into
its latent trajectory (d dims x frames) and back into audio well. Stage two learns only the heads of
:class:`~vaedemo.nn.modes.TwoStageMode` and the latent (RealNVP posterior flow and prior): trajectory -> one vector
-> trajectory. Its training data are trajectories, computed once (``train.trajectory_copies`` augmented encodings of
every training clip), so thousands of steps take minutes on a CPU. The loss is the Gaussian negative log-likelihood
of the trajectory in units of each dimension's spread over the training set, plus beta x KL, plus (with
``train.mel_sizes``) a log-mel loss through the frozen decoder on a few clips of each batch; with
``train.finetune_decoder`` that loss trains the decoder too (with ``train.freeze_decoder`` the whole decoding side is
frozen and that loss, on the posterior means, trains the encoder head alone); with ``train.prior_level_weight``, a
loss on the levels of a few decoded prior samples against the training clips' (:mod:`vaedemo.nn.loudness`). The
result is an ordinary bundle: the backbone's conv stacks and the new heads in one file.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info

from ..bundle import load
from ..config import Config, ModelConfig, model_config_from_dict
from ..errors import ConfigError
from ..nn.level import peak_db
from ..nn.losses import FrameBuzz, MultiScaleMel, MultiScaleSTFT, spectra_of_parts
from ..nn.loudness import level_distance, loudest_frame_db, target_quantiles
from ..nn.vae import AudioVAE
from .module import (
    CLIPPING_KEY,
    apply_optimizer_settings,
    beta_at,
    branch_param_groups,
    finite_and_clipped,
    fused_adam_allowed,
    lr_factor_at,
    stop_if_done,
)

ARCHITECTURE_KEYS = ("sample_rate", "channels", "bands", "capacity", "ratios", "dilations", "kernel_size", "causal",
                     "pqmf_attenuation", "noise_bands", "noise_hop", "noise_relative", "partials", "upsampling",
                     "encoder", "encoder_width")  # fmt: skip
# the decoder's branches, each with its config keys: a two-stage model with a decoder of its own may add one that its
# backbone lacks (its weights then start fresh, or come from train.init_from)
BRANCHES = {"decoder.noise.": ("noise_bands", "noise_hop", "noise_relative"), "decoder.partials.": ("partials",)}
DECODER = ("decoder.net.", *BRANCHES)  # the backbone's decoder: its conv stack and its branches
ENCODER = "encoder.net."  # the backbone's encoder: its conv stack (the head on it is stage two's own)
FROZEN = (ENCODER, *DECODER)


def frozen_prefixes(cfg: Config) -> tuple[str, ...]:
    """The backbone's tensors that stay as train.backbone has them: its encoder always, its decoder unless
    train.finetune_decoder or train.freeze_decoder (a two-stage model's own decoder, from train.init_from)."""
    own_decoder = cfg.train.finetune_decoder or cfg.train.freeze_decoder
    return tuple(p for p in FROZEN if not (own_decoder and p in DECODER))


def untrained_prefixes(cfg: Config) -> tuple[str, ...]:
    """The tensors that get no gradient: the frozen backbone's, and with train.freeze_decoder the whole decoding side
    (stage two's decoder head and the decoder), so that only the encoder head and the flows learn; with
    train.freeze_encoder the encoding side (the encoder head and the posterior flow), so that every clip keeps its
    vector; with train.freeze_prior the prior flow, so that the prior's draws stay."""
    t = cfg.train
    decoding = ("decoder.",) if t.freeze_decoder else ()
    encoding = ("encoder.head.", "latent.posterior_flow.") if t.freeze_encoder else ()
    return frozen_prefixes(cfg) + decoding + encoding + (("latent.prior_flow.",) if t.freeze_prior else ())


def added_branches(cfg: Config, backbone: ModelConfig) -> tuple[str, ...]:
    """The prefixes of the decoder branches that the two-stage config asks for and the backbone lacks (allowed only to
    a decoder of the model's own: train.finetune_decoder, or train.freeze_decoder over such a model)."""
    added = tuple(p for p, keys in BRANCHES.items() if getattr(cfg.model, keys[0]) and not getattr(backbone, keys[0]))
    if added and not (cfg.train.finetune_decoder or cfg.train.freeze_decoder):
        key = BRANCHES[added[0]][0]
        raise ConfigError(f"model.{key} adds a decoder branch that train.backbone lacks: a two-stage model adds one only "
                          "to a decoder of its own (train.finetune_decoder).")  # fmt: skip
    return added


def two_stage_model_config(cfg: Config, backbone: ModelConfig, source: str, added: tuple[str, ...] = ()) -> ModelConfig:
    """The experiment's model config with the backbone's architecture (those keys come from the backbone, but for the
    keys of the branches in ``added`` that the config adds to a decoder of its own: :func:`added_branches`)."""
    if backbone.latent_mode != "temporal" or backbone.posterior_flow_layers:
        raise ConfigError(f"train.backbone {source} must be a temporal bundle without a posterior flow.")
    if backbone.causal:  # a one-vector model needs the whole clip: a causal backbone would only make it lag
        raise ConfigError(f"train.backbone {source} is causal; a two-stage model needs a centred backbone.")
    own = {k for prefix in added for k in BRANCHES[prefix]}
    values = cfg.model.to_dict() | {k: getattr(backbone, k) for k in ARCHITECTURE_KEYS if k not in own}
    values["trajectory_size"] = backbone.latent_size
    return model_config_from_dict(values, f"{source} + the two-stage config")


def build_two_stage(cfg: Config) -> tuple[AudioVAE, ModelConfig]:
    """The two-stage AudioVAE with the backbone's conv stacks loaded; frozen but for a fine-tuned decoder."""
    if not cfg.train.backbone:
        raise ConfigError("model.latent_mode twostage needs train.backbone (a temporal bundle folder or hf:// id).")
    backbone = load(cfg.train.backbone)
    added = added_branches(cfg, backbone.config)
    model_cfg = two_stage_model_config(cfg, backbone.config, cfg.train.backbone, added)
    model = AudioVAE(model_cfg)
    frozen = {k: v for k, v in backbone.model.state_dict().items() if k.startswith(FROZEN)}
    missing = [k for k in model.state_dict() if k.startswith(FROZEN) and not k.startswith(added) and k not in frozen]
    if missing:
        raise ConfigError(f"train.backbone {cfg.train.backbone} lacks {missing[0]} of the two-stage model.")
    model.load_state_dict(frozen, strict=False)
    return freeze(model, cfg), model_cfg


def resumed_two_stage(cfg: Config) -> AudioVAE:
    """A resumed run's model where train.backbone no longer loads (a folder moved or deleted, a Hub id offline): its
    architecture is the run's stored model config, resolved from the backbone when the run began, and its weights,
    the frozen stacks' included, come from its own last.ckpt (``vaedemo.train._run_weights``)."""
    return freeze(AudioVAE(cfg.model), cfg)


def freeze(model: AudioVAE, cfg: Config) -> AudioVAE:
    """``model`` with no gradient for the tensors that :func:`untrained_prefixes` names."""
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(untrained_prefixes(cfg)))
    return model


@torch.no_grad()
def encode_statistics(
    model: AudioVAE, dataset, copies: int, batch: int = 16, keep_clips: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The frozen encoder's posterior statistics (N, 2d, frames) of every clip of ``dataset``, ``copies`` times
    (a training set draws new augmentations each time); with ``keep_clips``, also the clips they encode (N, C, T),
    as the encoder saw them. The outputs are allocated whole once their size is known, after the first batch, and
    checked against the memory this machine has free: a large folder would otherwise be encoded for an hour and then
    killed (and concatenating the batches held everything twice)."""
    n = len(dataset)
    out = kept = None
    for copy in range(copies):
        for i in range(0, n, batch):
            clips = torch.stack([dataset[j] for j in range(i, min(i + batch, n))])
            clips, _ = model.normalised(model.mode.fold(model.mode.pad(clips)))  # at one peak with a level latent
            stats = model.encoder_map(clips)  # the temporal encoder's, before the two-stage head
            if out is None:
                shapes = [(copies * n, *stats.shape[1:])] + [(copies * n, *clips.shape[1:])] * keep_clips
                check_memory(shapes, n, copies)
                out = stats.new_empty(shapes[0])
                kept = clips.new_empty(shapes[1]) if keep_clips else None
            at = copy * n + i
            out[at : at + len(stats)] = stats
            if keep_clips:
                kept[at : at + len(clips)] = clips
    return (out, kept) if keep_clips else out


def available_memory() -> int | None:
    """Bytes of memory this machine can give without swapping (Linux's MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_memory(shapes: list[tuple[int, ...]], clips: int, copies: int) -> None:
    """A ConfigError when float32 tensors of ``shapes`` would not fit in the memory free now (with a quarter left for
    the training itself)."""
    need = sum(4 * torch.Size(shape).numel() for shape in shapes)
    free = available_memory()
    if free is not None and need > 0.75 * free:
        raise ConfigError(
            f"two-stage training keeps {copies} encodings of each of {clips} clips in memory, {need / 2**30:.1f} GiB, "
            f"and this machine has {free / 2**30:.1f} GiB free: lower train.trajectory_copies or data.max_files."
        )


class TwoStageModule(pl.LightningModule):
    """Trains the two-stage heads and latent on precomputed trajectory statistics (one phase: ``vae``)."""

    def __init__(self, cfg: Config, model: AudioVAE):
        super().__init__()
        self.cfg, self.vae = cfg, model
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("spread", torch.ones(model.cfg.trajectory_size, 1))
        # with train.prior_level_weight: what the sorted levels of the prior samples of a step should be (dB); set from
        # the data at every start, so not in checkpoints (runs of earlier versions resume)
        self.register_buffer("level_targets", torch.zeros(cfg.train.prior_level_samples), persistent=False)
        self.steps_done, self.skipped_steps, self.val_examples = 0, 0, []
        self.skipped_in_a_row: dict = {}
        self.phase_changes: list[tuple[int, str]] = []
        t = cfg.train
        floor = {"floor_db": t.loss_floor_db}
        self.mel = MultiScaleMel(t.mel_sizes, model.cfg.sample_rate, t.mel_bands, **floor) if t.mel_sizes else None
        # a decoder that learns needs the backbone's full-band STFT loss too: log-mel alone lets it blur fine structure
        self.stft = MultiScaleSTFT(t.stft_sizes, **floor) if t.decoder_stft_weight > 0 else None
        self.frame_buzz = FrameBuzz(model.cfg.hop, model.cfg.sample_rate) if t.frame_buzz_weight else None

    def set_spread(self, stats: torch.Tensor) -> None:
        """Each trajectory dimension's standard deviation over the training set: the loss's unit."""
        mu = stats[:, : self.vae.cfg.trajectory_size]
        self.spread.copy_(mu.transpose(0, 1).reshape(mu.shape[1], -1).std(dim=1, keepdim=True).clamp_min(1e-3))

    def set_level_targets(self, clips: torch.Tensor) -> None:
        """The training clips (N, C, T) whose level distribution the prior samples' should follow."""
        self.level_targets.copy_(target_quantiles(loudest_frame_db(clips), self.cfg.train.prior_level_samples))

    def prior_level_loss(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Wasserstein-1 distance in dB between the levels of a few decoded prior samples and the training clips'
        level quantiles, the samples' median level). The prior's draws are fixed: the gradient trains the decoding."""
        n = self.cfg.train.prior_level_samples
        with torch.no_grad():
            z = self.vae.latent.sample_prior((n, self.vae.cfg.latent_size), device=self.level_targets.device)
        levels = loudest_frame_db(self.audio(self.vae.decoder.head(z)))
        return level_distance(levels, self.level_targets), levels.detach().median()

    def configure_optimizers(self):
        t = self.cfg.train
        return torch.optim.Adam(self._trainable_groups(), lr=t.lr, betas=tuple(t.betas),
                                fused=fused_adam_allowed(self.trainer))  # fmt: skip

    def _trainable_groups(self) -> list[dict]:
        """The optimiser's groups: the weights that train (the frozen ones get none), each branch with its scale."""
        return branch_param_groups([(n, p) for n, p in self.vae.named_parameters() if p.requires_grad], self.cfg.train)

    def trajectory_nll(self, z: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per example (B,) of the trajectory in ``stats`` given the vector ``z``."""
        error = (self.vae.decoder.head(z) - stats[:, : self.vae.cfg.trajectory_size]) / self.spread
        return 0.5 * error.square().flatten(1).sum(1)

    def decoder_loss(self, z: torch.Tensor, stats: torch.Tensor, clips: torch.Tensor | None = None) -> torch.Tensor:
        """Multi-scale log-mel L1 (plus ``train.decoder_stft_weight`` x the multi-scale STFT loss and
        ``train.frame_buzz_weight`` x the frame-buzz loss), through the decoder,
        between the audio of the trajectory that ``z`` decodes to and a target: the clips themselves when given
        (``train.decoder_loss_target: audio``), else the audio of the clip's own (posterior-mean) trajectory. The
        trajectory loss weighs every frame and dimension alike, hearing does not (a quiet tail's error is small in the
        trajectory, large in log-mel)."""
        k = self.cfg.train.decoder_loss_clips
        z, stats = z[:k], stats[:k]
        if clips is not None:  # the clip itself: stage two may find trajectories that decode closer than the
            target = clips[:k]  # temporal encoder's own (it was never trained for this frozen decoder's errors)
        else:
            with torch.no_grad():
                target = self.audio(stats[:, : self.vae.cfg.trajectory_size])
        parts = self.audio_parts(self.vae.decoder.head(z))
        audio = sum(parts)
        spectra = spectra_of_parts(target, parts)  # computed as the losses ask, each size once
        loss = self.mel(target, audio, spectra)
        if self.stft is not None:
            loss = loss + self.cfg.train.decoder_stft_weight * self.stft(target, audio, spectra)
        if self.frame_buzz is not None:
            loss = loss + self.cfg.train.frame_buzz_weight * self.frame_buzz(target, audio, spectra)
        return loss

    def audio(self, trajectory: torch.Tensor) -> torch.Tensor:
        return self.vae.pqmf.synthesis(self.vae.decoder.bands(trajectory))

    def audio_parts(self, trajectory: torch.Tensor) -> list[torch.Tensor]:
        """The audio of ``trajectory`` as the decoder loss compares it: the conv stack's and, where
        train.incoherent_partials separates them, that of each branch that follows its level (relative noise, partial
        bank); else their sum alone."""
        stack, followers = self.vae.decoder.parts(trajectory)
        if not (followers and self.cfg.train.incoherent_partials):
            return [self.vae.pqmf.synthesis(sum(followers, stack))]
        return [self.vae.pqmf.synthesis(b) for b in (stack, *followers)]

    def objective(self, batch: torch.Tensor, clips: torch.Tensor | None, step: int) -> tuple[torch.Tensor, dict]:
        """(loss, logged terms) of a batch of trajectory statistics (and its clips, for an audio target) at ``step``."""
        t = self.cfg.train
        head = self.vae.encoder.head(batch)
        z, kl = self.vae.latent.kl(head)
        nll = self.trajectory_nll(z, batch)
        loss = (t.trajectory_weight * nll + beta_at(self.cfg, step) * kl).mean()
        logs = {"train/trajectory_nll": nll.mean().detach(), "train/kl": kl.mean().detach()}
        if self.mel is not None:  # with the decoding side frozen, the encoder head learns the vector reconstruction
            decoded = self.vae.latent.posterior_mean(head) if t.freeze_decoder else z  # (what reconstruction decodes)
            mel = self.decoder_loss(decoded, batch, clips)
            loss = loss + t.mel_weight * mel
            logs["train/decoder_mel"] = mel.detach()
        if t.prior_level_weight:
            distance, median = self.prior_level_loss()
            loss = loss + t.prior_level_weight * distance
            logs |= {"train/prior_level_distance_db": distance.detach(), "train/prior_level_median_db": median}
        return loss, logs

    def train(self, mode: bool = True):
        """Lightning switches the module to training mode each epoch; a frozen side stays in evaluation mode, so that
        its head's dropout does not move each vector away from what inference gives: a frozen decoding side
        (train.freeze_decoder), so that the encoder head learns the vectors that decoder renders best at inference; a
        frozen encoding side (train.freeze_encoder), so that the decoding side learns from the vectors inference
        encodes (its dropout moved them by about 0.2 rms, a posterior's spread being about 0.65)."""
        super().train(mode)
        if mode and self.cfg.train.freeze_decoder:
            self.vae.decoder.eval()
        if mode and self.cfg.train.freeze_encoder:
            self.vae.encoder.eval()
        return self

    def on_train_start(self) -> None:
        self.steps_done = int(self.step)
        stop_if_done(self)
        apply_optimizer_settings(self.optimizers().optimizer.param_groups, self._trainable_groups(), self.cfg.train.betas)

    def on_before_optimizer_step(self, optimizer) -> None:
        finite_and_clipped(self, optimizer, self.cfg.train.grad_clip)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CLIPPING_KEY] = True  # see train._warn_clipping_starts

    def training_step(self, batch: torch.Tensor | list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        # (statistics, clips) with train.decoder_loss_target: audio, statistics alone otherwise
        batch, clips = batch if isinstance(batch, (list, tuple)) else (batch, None)
        step = self.steps_done
        if not self.phase_changes:
            rank_zero_info(f"[vaedemo] step {step}: phase 'vae'")
            self.phase_changes.append((step, "vae"))
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = self.cfg.train.lr * lr_factor_at(self.cfg, step) * group.get("lr_scale", 1.0)
        loss, logs = self.objective(batch, clips, step)
        bs = batch.shape[0]
        self.log_dict(logs, on_step=False, on_epoch=True, batch_size=bs)
        self.log("step", float(step + 1), on_step=False, on_epoch=True, reduce_fx="max", batch_size=bs)
        self.step += 1
        self.steps_done += 1
        if self.steps_done >= self.cfg.train.max_steps:
            self.trainer.should_stop = True
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        head = self.vae.encoder.head(batch)
        nll = self.trajectory_nll(self.vae.latent.posterior_mean(head), batch)
        _, kl = self.vae.latent.kl(head)
        # per trajectory value, in units of its spread: comparable between configs of different sizes
        per_value = nll.mean() / (self.vae.cfg.trajectory_size * batch.shape[-1])
        self.log("val/trajectory_nll_per_value", per_value, prog_bar=True, batch_size=batch.shape[0])
        self.log("val/kl", kl.mean(), batch_size=batch.shape[0])


def trajectory_loaders(cfg: Config, model: AudioVAE) -> tuple:
    """(train loader, val loader, summary, training statistics, training clips): augmented statistics of the training
    clips, plain ones of the validation clips; the training clips as they are (unaugmented), where a level latent or
    train.prior_level_weight needs their levels (None otherwise: they would be one more copy of the data)."""
    from ..data.dataset import build_datasets, validation_clips

    m = model.cfg
    torch.manual_seed(cfg.train.seed)
    train_ds, val_ds = build_datasets(cfg.data, m.sample_rate, m.channels, m.clip_length)
    originals = None
    if model.level is not None or cfg.train.prior_level_weight:
        originals = torch.stack([train_ds.original(i) for i in range(len(train_ds))])
    if model.level is not None:  # the level's prior: the training clips' own peaks (not their augmented copies')
        model.level.fit(peak_db(originals))
    copies = cfg.train.trajectory_copies
    if cfg.train.decoder_loss_target == "audio" and cfg.train.mel_sizes:  # batches of (statistics, clips)
        train, clips = encode_statistics(model, train_ds, copies, keep_clips=True)
        train_data = torch.utils.data.TensorDataset(train, clips)
    else:
        train = train_data = encode_statistics(model, train_ds, copies)
    val = encode_statistics(model, validation_clips(train_ds, val_ds, cfg.data), 1)
    loader = torch.utils.data.DataLoader
    summary = (f"{len(train_ds)} train / {len(val_ds)} val clips from {cfg.data.root}, as trajectories of the frozen "
               f"{cfg.train.backbone} ({cfg.train.trajectory_copies} augmented encodings per training clip)")  # fmt: skip
    return (loader(train_data, batch_size=cfg.train.batch_size, shuffle=True, drop_last=len(train) > cfg.train.batch_size),
            loader(val, batch_size=cfg.train.batch_size), summary, train, originals)  # fmt: skip
