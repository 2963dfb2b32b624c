"""``python -m vaedemo.train --config configs/X.yaml [--set key=value ...] [--resume]``

Trains an AudioVAE with Lightning. The run folder (``train.run_dir``) gets the resolved ``config.yaml``,
``checkpoints/last.ckpt`` (for ``--resume``), TensorBoard logs in ``tb/`` and a bundle in ``bundle/`` after each
validation. ``--resume`` continues from ``last.ckpt`` with the run's stored config (plus any ``--set``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import signal
import sys
import warnings
from pathlib import Path

from .cli import check_writable, user_errors
from .errors import VaedemoError
from .training.precision import fast_cpu_kernels
from .training.run_lock import RunLock


class _LightningNoise(logging.Filter):
    """Lines Lightning prints on every run that say nothing about this one: an advertisement, and a note that our own
    model summary (two levels deep) replaces its default."""

    LINES = ("💡 Tip: ", "Trainer already configured with model summary callbacks")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.LINES)


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _LightningNoise) for f in target.filters):
            target.addFilter(_LightningNoise())
    # a deprecation inside Lightning itself under this torch, on every run
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def build_trainer(cfg, run_dir: Path, command: str, data_summary: str, extra_callbacks=()):
    import lightning.pytorch as pl
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import ModelSummary, TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.strategies import DDPStrategy

    from .training.callbacks import AudioLogger, BundleExport, LastCheckpoint

    _quiet_lightning()
    t, tr = cfg.train, cfg.trainer
    strategy = tr.strategy
    if strategy == "ddp":
        # the discriminator is unused during the VAE phase
        strategy = DDPStrategy(find_unused_parameters=True)
    callbacks = [
        ModelSummary(max_depth=2),
        TQDMProgressBar(),
        LastCheckpoint(run_dir, t.checkpoint_every_n_steps),
        BundleExport(run_dir, command=command, data_summary=data_summary),
        AudioLogger(t.log_audio_every_n_val),
        *extra_callbacks,
    ]
    try:
        return pl.Trainer(
            accelerator=tr.accelerator,
            devices=tr.devices,
            num_nodes=tr.num_nodes,
            strategy=strategy,
            precision=tr.precision,
            max_epochs=-1,
            max_steps=-1,  # the module stops at train.max_steps training batches (phases count batches, not optimizer steps)
            val_check_interval=t.val_every_n_steps,
            check_val_every_n_epoch=None,
            limit_val_batches=t.val_batches,
            num_sanity_val_steps=0,
            logger=TensorBoardLogger(str(run_dir), name="tb", version=""),
            enable_checkpointing=False,
            callbacks=callbacks,
            log_every_n_steps=1,
            use_distributed_sampler=True,
        )
    except MisconfigurationException as e:  # e.g. trainer.accelerator=gpu where torch sees no GPU
        raise VaedemoError(f"the trainer settings cannot run on this machine: {e}") from None
    except ValueError as e:  # an accelerator or strategy Lightning does not know (its sentence lists the known ones)
        raise VaedemoError(f"the trainer settings are not valid: {e}") from None
    except ImportError as e:  # an accelerator whose package is not installed (tpu: torch_xla)
        raise VaedemoError(f"the trainer settings need a package this machine does not have: {e}") from None


def make_loaders(cfg):
    import torch

    from .data.dataset import build_datasets, validation_clips

    train_ds, val_ds = build_datasets(cfg.data, cfg.model.sample_rate, cfg.model.channels, cfg.model.clip_length)
    common = dict(batch_size=cfg.train.batch_size, num_workers=cfg.train.num_workers, pin_memory=torch.cuda.is_available())
    if cfg.train.num_workers:
        common["persistent_workers"] = True
    train = torch.utils.data.DataLoader(train_ds, shuffle=True, drop_last=len(train_ds) > cfg.train.batch_size, **common)
    val = torch.utils.data.DataLoader(validation_clips(train_ds, val_ds, cfg.data), shuffle=False, **common)
    summary = f"{len(train_ds)} train / {len(val_ds)} val clips from {cfg.data.root}"
    return train, val, summary


def _module_and_data(cfg, resume: bool = False) -> tuple:
    """(LightningModule, train loader, val loader, data summary) for the config's kind of model (``resume``: the
    weights come from last.ckpt, not from train.init_from)."""
    if cfg.model.latent_mode == "twostage":  # stage two over a frozen temporal autoencoder: trains on trajectories
        from .training.twostage import TwoStageModule, frozen_prefixes, trajectory_loaders

        model, whole = _two_stage_model(cfg, resume)
        if cfg.train.init_from and not resume:  # e.g. a fine-tune of a shipped two-stage model with another loss
            init_weights(model, cfg.train.init_from, keep=frozen_prefixes(cfg))  # or over a retrained decoder: the
            # frozen stacks are train.backbone's, whatever backbone the earlier two-stage bundle was trained over
        if resume:
            _run_weights(model, Path(cfg.train.run_dir) / "checkpoints" / "last.ckpt", cfg.train.backbone, whole)
        train, val, summary, train_stats, train_clips = trajectory_loaders(cfg, model)
        module = TwoStageModule(cfg, model)
        module.set_spread(train_stats)
        if cfg.train.prior_level_weight:
            module.set_level_targets(train_clips)
        return module, train, val, summary
    from .training.module import VAEModule

    module = VAEModule(cfg)
    if cfg.train.init_from and not resume:  # a new encoder stack is meant where it learns over the bundle's decoder
        new_encoder = cfg.train.encoder_distill_steps > 0 or cfg.train.freeze_decoder
        init_weights(module.vae, cfg.train.init_from, new_encoder=new_encoder)
    return module, *make_loaders(cfg)


def _two_stage_model(cfg, resume: bool) -> tuple:
    """(the two-stage model over train.backbone, whether every weight must come from the run's last.ckpt). A resumed
    run whose backbone no longer loads goes on from its own weights, which hold the frozen stacks too."""
    from .training.twostage import build_two_stage, resumed_two_stage

    try:
        model, cfg.model = build_two_stage(cfg)  # the run stores the resolved model config (backbone architecture)
        return model, False
    except VaedemoError as e:
        if not resume:
            raise
        print(f"[vaedemo] note: train.backbone no longer loads ({str(e).rstrip('.')}); the run resumes from its own weights in "
              "last.ckpt, its frozen stacks included", file=sys.stderr)  # fmt: skip
        return resumed_two_stage(cfg), True


def _run_weights(model, last: Path, backbone: str, whole: bool = False) -> None:
    """A resumed two-stage run's own weights from its last.ckpt, before its training trajectories are encoded: they
    came from train.backbone as it is now (Lightning restores the run's frozen encoder only afterwards), and a
    backbone retrained since (its run rewrites its bundle) made the run's data with another encoder than its own.
    ``whole``: the model was built without its backbone, so last.ckpt must hold every one of its tensors."""
    import torch

    from .training.twostage import ENCODER

    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    own = {k.removeprefix("vae."): v for k, v in state.items() if k.startswith("vae.")}
    current = model.state_dict()
    missing = [k for k in current if k not in own]
    if whole and missing:
        raise VaedemoError(f"{last} lacks {missing[0]} of the model, and train.backbone {backbone} does not load to "
                           "give it: set train.backbone to where the backbone bundle is now.")  # fmt: skip
    encoder = [k for k in own if k.startswith(ENCODER)]  # (the encoder's head is stage two's own: it trains)
    if not whole and any(not torch.equal(own[k], current[k]) for k in encoder if k in current):
        print(f"[vaedemo] note: train.backbone {backbone} has changed since this run began; the run's own frozen "
              "encoder (from last.ckpt) encodes its trajectories", file=sys.stderr)  # fmt: skip
    model.load_state_dict(own, strict=False)


# modules a model may add on top of a bundle's architecture: absent from the bundle, they keep their fresh init
NEW_BRANCHES = ("decoder.noise.", "decoder.partials.", "level.")


def init_weights(vae, source: str, keep: tuple[str, ...] = (), new_encoder: bool = False) -> None:
    """Copy a bundle's weights into ``vae``: every tensor must exist in both with the same shape, except that the
    tensors of a branch the bundle lacks (:data:`NEW_BRANCHES`, e.g. the noise branch), and an encoder stack of another
    kind than the bundle's (``model.encoder``), keep their fresh init. Such a stack must be meant (``new_encoder``: the
    run trains it over the bundle's decoder) or kept (``keep``): a config written for the other kind was trained on
    from an untrained encoder.
    Tensors whose names start with a prefix in ``keep`` are checked the same way but keep ``vae``'s values."""
    from .bundle import load
    from .training.twostage import ENCODER  # (the encoder's stack: one of another kind than the bundle's starts afresh)

    bundle = load(source)
    state = bundle.model.state_dict()
    own = vae.state_dict()
    rates = (bundle.config.sample_rate, vae.cfg.sample_rate)
    if rates[0] != rates[1]:  # the shapes fit whatever the rate: a start from another rate was silent
        print(f"[vaedemo] warning: train.init_from {source} was trained at {rates[0]} Hz and this model runs at "
              f"{rates[1]} Hz: its filters start tuned to other frequencies.", file=sys.stderr)  # fmt: skip
    kept = {k: v.clone() for k, v in own.items() if k.startswith(keep)}
    new = NEW_BRANCHES
    if bundle.config.encoder != vae.cfg.encoder:  # another encoder stack over the bundle's decoder: it starts afresh
        state = {k: v for k, v in state.items() if not k.startswith(ENCODER)}
        new = (*new, ENCODER)
    fresh = sorted(k for k in own if k not in state and k.startswith(new))
    differ = sorted((set(own) - set(fresh)) ^ set(state)) + [k for k in own if k in state and own[k].shape != state[k].shape]
    if differ:
        raise VaedemoError(
            f"train.init_from {source} does not fit this model ({len(differ)} tensors differ; first: '{differ[0][:80]}'); "
            "it must have the same architecture (bands, capacity, ratios, latent size and mode)."
        )
    started = [k for k in fresh if not k.startswith(keep)]  # (kept ones are vae's own: a two-stage backbone's)
    fresh_stack = any(k.startswith(ENCODER) for k in started)
    if fresh_stack and not new_encoder:
        raise VaedemoError(
            f"train.init_from {source} has model.encoder {bundle.config.encoder} and this model {vae.cfg.encoder}, whose "
            f"stack would start untrained: set model.encoder: {bundle.config.encoder}, or train the new stack over its "
            "decoder (train.encoder_distill_steps or train.freeze_decoder)."
        )
    vae.load_state_dict(state | kept, strict=not fresh)
    if started:
        parts = sorted({k.rsplit(".", 1)[0] for k in started if not k.startswith(ENCODER)})
        parts += ["encoder.net (another model.encoder)"] if fresh_stack else []
        print(f"train.init_from {source}: {len(started)} tensors of a new branch keep their fresh init "
              f"({', '.join(parts)})")  # fmt: skip


def trains_on_cpu(trainer_cfg) -> bool:
    """Whether the trainer config puts the run on the CPU (explicitly, or "auto" on a machine without CUDA)."""
    import torch

    return trainer_cfg.accelerator == "cpu" or (trainer_cfg.accelerator == "auto" and not torch.cuda.is_available())


def slow_cpu_precision(trainer_cfg) -> str | None:
    """A warning when the run trains in half precision on a CPU without fast kernels for it, else None.

    oneDNN runs bfloat16 convolutions fast on CPUs with AVX-512 (an AMD EPYC with AVX512_BF16: 183 GFLOP/s against
    59 in float32 on one thread; bf16-mixed trained drums_temporal's adversarial phase 1.55x faster than 32-true on
    two idle threads, its VAE phase 1.11x), but emulates them on an AVX2-only CPU (a bfloat16 matrix product under
    1 GFLOP/s there), and float16 on CPUs without AVX512_FP16 or AMX-FP16 (3.3 GFLOP/s on that EPYC)."""
    precision = str(trainer_cfg.precision)
    if not trains_on_cpu(trainer_cfg) or not precision.startswith(("bf16", "16")):
        return None
    half = "bfloat16" if precision.startswith("bf16") else "float16"
    if fast_cpu_kernels(half):
        return None
    return (f"trainer.precision {precision} on a CPU without fast {half} kernels: its convolutions are emulated and "
            "may run many times slower than trainer.precision=32-true.")


def decay_never_starts(cfg) -> str | None:
    """A warning when train.lr_decay_start is at or past the run's last step (train.max_steps - 1; the rate decays
    after its start): the setting was accepted and did nothing."""
    t = cfg.train
    if t.lr_decay_start is None or t.lr_decay_start < t.max_steps - 1 or t.lr_final_factor >= 1.0:
        return None
    return (f"train.lr_decay_start ({t.lr_decay_start}) is at or past the run's last step ({t.max_steps - 1}; "
            "train.max_steps - 1): the learning rate stays constant for this whole run (lower the start, or raise "
            "train.max_steps when resuming).")


def untrained_encoder_frozen(cfg) -> str | None:
    """A warning when train.decode_posterior_mean freezes an encoder that no train.init_from trained: the option is a
    fine-tune of a trained bundle's decoder (a two-stage model's encoder is its backbone's: trained)."""
    t = cfg.train
    if not t.decode_posterior_mean or t.init_from or cfg.model.latent_mode == "twostage":
        return None
    return ("train.decode_posterior_mean freezes the encoder and trains the decoder on its posterior means, but no "
            "train.init_from gives it a trained encoder: this run decodes the means of an untrained one (set "
            "train.init_from to a trained bundle).")


def slow_cpu_discriminator(cfg) -> str | None:
    """A warning when train.discriminator_precision is bfloat16 (not auto) on a CPU without fast kernels for it."""
    if cfg.train.discriminator_precision != "bfloat16" or not trains_on_cpu(cfg.trainer) or fast_cpu_kernels("bfloat16"):
        return None
    return ("train.discriminator_precision bfloat16 on a CPU without fast bfloat16 kernels: the discriminator's "
            "convolutions are emulated and may run many times slower than in float32 (auto picks for the machine).")


def run(config_path: str | None, overrides: list[str], resume: bool, command: str = "") -> Path:
    """Train (or resume) and return the run folder."""
    from .bundle import check_model_size
    from .config import config_source, load_config

    cfg = load_config(config_path, overrides)
    check_model_size(cfg.model, config_source(config_path, overrides))
    run_dir = Path(cfg.train.run_dir)
    _check_run_dir(run_dir)
    with RunLock(run_dir):  # (before anything in the folder is read: another training may be writing it)
        return _run_alone(cfg, config_path, overrides, resume, command)


def _run_alone(cfg, config_path: str | None, overrides: list[str], resume: bool, command: str) -> Path:
    """:func:`run` in a run folder no other training is using."""
    from .config import load_config

    run_dir = Path(cfg.train.run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    stored = run_dir / "config.yaml"
    earlier = [p.name for p in (run_dir / "bundle", run_dir / "bundles") if p.exists()]
    if resume and not last.is_file() and stored.is_file() and not earlier:  # stopped before it saved anything
        print(f"[vaedemo] note: {run_dir} holds no checkpoint yet (its run stopped before its first): it starts from "
              "step 0 with its config.yaml and --set", file=sys.stderr)  # fmt: skip
        cfg, resume = load_config(stored, overrides), False
    if resume:
        if not last.is_file():
            raise VaedemoError(f"nothing to resume: {last} does not exist (start the run without --resume).")
        asked, trained = cfg, load_config(stored)
        cfg = load_config(stored, overrides)  # the run's own config; --set may extend it (e.g. train.max_steps)
        _check_same_model(trained.model, cfg.model)
        _check_same_training_state(trained, cfg)
        saved = _read_checkpoint(last)  # (read once, memory-mapped, for the checks that follow)
        _warn_clipping_starts(saved, last, cfg.train.grad_clip)
        step = saved["state_dict"].get("step")
        for warning in resume_warnings(trained, cfg, None if step is None else int(step)):
            print(f"[vaedemo] warning: {warning}", file=sys.stderr)
        if config_path:
            _warn_file_not_used(config_path, asked, cfg, stored)
    elif last.is_file():
        raise VaedemoError(
            f"{run_dir} already holds a training run; pass --resume to continue it or set another train.run_dir."
        )
    elif earlier:  # a new run would replace them: an earlier run's results, its checkpoint deleted or never written
        raise VaedemoError(f"{run_dir} holds an earlier run's {' and '.join(earlier)} but no checkpoint to continue it "
                           f"from ({last}); set another train.run_dir, or move them away to start over here.")  # fmt: skip
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from .training.callbacks import BundleExport

    for warning in (slow_cpu_precision(cfg.trainer), slow_cpu_discriminator(cfg), decay_never_starts(cfg),
                    untrained_encoder_frozen(cfg)):
        if warning:
            print(f"[vaedemo] warning: {warning}", file=sys.stderr)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    trainer = build_trainer(cfg, run_dir, command, "")  # first: settings this machine cannot run fail before the data
    module, train_loader, val_loader, summary = _module_and_data(cfg, resume)  # (which may take minutes) is read
    next(c for c in trainer.callbacks if isinstance(c, BundleExport)).data_summary = summary  # for the bundles' cards
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.dump_yaml(stored)
    try:
        checkpoint = _missed_validation(last, run_dir, cfg.train) if resume else None
        if checkpoint is not None:  # stopped after its checkpoint, before its bundle (logged at TensorBoard step 0)
            next(c for c in trainer.callbacks if isinstance(c, BundleExport)).resume_for_validation(checkpoint)
            trainer.validate(module, val_loader, ckpt_path=str(last), verbose=False, weights_only=True)
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if resume else None, weights_only=True)
    except SIGTERMException:  # a SystemExit of code None: the process would exit 0, as if the run had finished
        print(f"[vaedemo] stopped by SIGTERM at step {int(module.step)}, saved in {last}; continue it with --resume",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(128 + signal.SIGTERM) from None
    except SystemExit:  # Lightning's answer to Ctrl-C (exit 1, its own line alone), the step saved as for SIGTERM
        if not trainer.interrupted:
            raise
        print(f"[vaedemo] stopped by Ctrl-C at step {int(module.step)}, saved in {last}; continue it with --resume",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(128 + signal.SIGINT) from None
    if trainer.is_global_zero:
        print(f"[vaedemo] stopped at step {int(module.step)}; bundle: {run_dir / 'bundle'}")
    return run_dir


def resume_warnings(trained, asked, step: int | None) -> list[str]:
    """What a resume with other settings changes besides its length (warnings): a longer run that trained the VAE
    alone goes on into the discriminator's phases past train.vae_steps, and a learning rate that its decay had lowered
    goes up where the decay is stretched to a new last step (or moved, or removed)."""
    from .training.module import phase_at

    if step is None:
        return []
    out = []
    longer = asked.train.max_steps > trained.train.max_steps
    last_phases = phase_at(trained, trained.train.max_steps - 1), phase_at(asked, asked.train.max_steps - 1)
    # (stage two has no discriminator)
    if longer and asked.model.latent_mode != "twostage" and last_phases[0] == "vae" != last_phases[1]:
        out.append(f"the run trained the VAE alone, and its steps from train.vae_steps ({asked.train.vae_steps}) on "
                   f"train with the discriminator (its warm-up, then adversarially); to train the VAE alone for longer, "
                   f"raise train.vae_steps with train.max_steps.")  # fmt: skip
    now = phase_at(trained, step), phase_at(asked, step)
    # --set train.vae_steps=100 at step 40 took an adversarial run back to the VAE alone without a word (past the run's
    # own end, its next phase is no one's)
    if step < trained.train.max_steps and now[0] != now[1]:
        out.append(f"the settings put step {step} in the {now[1]} phase, where the run would be in the {now[0]} phase "
                   "(train.vae_steps, train.discriminator_warmup_len): it goes on in that phase from here.")  # fmt: skip
    jump = _rate_jump(trained, asked, step)
    if jump:
        out.append(jump)
    return out


def _rate_jump(trained, asked, step: int) -> str | None:
    """A warning where the resumed run's learning rate at ``step`` is above the one the run stands at, with the --set
    that goes on from that rate: the rate itself as train.lr (and the discriminator's), its decay starting there."""
    from .training.module import lr_factor_at

    factor = lr_factor_at(trained, step)
    before, after = factor * trained.train.lr, lr_factor_at(asked, step) * asked.train.lr
    if after <= 1.01 * before:
        return None
    keep = f"--set train.lr={before:.4g}"
    if asked.model.latent_mode != "twostage":
        keep += f" --set train.disc_lr={factor * trained.train.disc_lr:.4g}"
    final = asked.train.lr_final_factor
    then = f", decaying to {final:g} times it at the last step" if final < 1 else ""
    return (f"the learning rate goes up at step {step}, from {before:.3g} to {after:.3g} (its decay, from "
            f"train.lr_decay_start to train.max_steps, as the settings now give it); {keep} --set "
            f"train.lr_decay_start={step} goes on from the rate where it stands{then}.")


def _read_checkpoint(last: Path) -> dict:
    """last.ckpt, memory-mapped. A checkpoint cut short (a full disk while it was saved) or not one at all fails here
    in one sentence, not in a traceback from the first reader."""
    import torch

    try:
        state = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises several types for a damaged or foreign file
        # (the way on: its latest bundle's weights, with fresh optimisers, in a folder of its own)
        bundle = last.parent.parent / "bundle"
        raise VaedemoError(f"{last} is not a readable checkpoint ({type(e).__name__}), so the run cannot resume from "
                           f"it; its bundles hold the weights of its last validations: to go on from the latest, start "
                           f"a run in another train.run_dir with --set train.init_from={bundle}.") from None  # fmt: skip
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise VaedemoError(f"{last} is not a Lightning checkpoint of a training run (it has no state_dict).")
    return state


def _missed_validation(last: Path, run_dir: Path, train) -> dict | None:
    """The checkpoint when it stands at a step that should have a bundle and the run's bundle is older: a validation
    step, its checkpoint saved before its validation ran (each step's is) and the run killed or stopped during it; or
    train.max_steps, a run stopped between its last checkpoint and its last validation. A resume goes on after that
    step (or, at max_steps, trains nothing), so that validation would never run. None otherwise."""
    import torch

    from .bundle import read_bundle_config

    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", {})
    if "step" not in state:
        return None
    step = int(state["step"])
    if step < train.max_steps and step % train.val_every_n_steps:
        return None
    bundle = run_dir / "bundle"
    try:
        done = read_bundle_config(bundle)[1].get("step", -1) if (bundle / "config.json").is_file() else -1
    except VaedemoError:  # (a config.json a power cut emptied: the validation's bundle replaces it)
        done = -1
    return checkpoint if done < step else None


def _warn_file_not_used(config_path: str, asked, used, stored: Path) -> None:
    """--resume continues with the run's stored config (and --set), not the --config file, which only names the run
    folder: say so where the file says otherwise (a learning rate edited in the file before a resume was silently
    not used)."""
    from .training.runner import comparable_keys, differing_keys

    have, want = comparable_keys(used), comparable_keys(asked)
    keys = differing_keys(have, want)
    if not keys:
        return
    shown = "; ".join(f"{k}: {have.get(k)} in the run, {want.get(k)} in the file" for k in keys[:3])
    more = f"; and {len(keys) - 3} more" if len(keys) > 3 else ""
    print(f"[vaedemo] warning: --resume continues with the run's own config ({stored}) and --set, not {config_path}, "
          f"which differs from it ({shown}{more}); pass --set KEY=VALUE to change a key on resume.",
          file=sys.stderr)  # fmt: skip


def _warn_clipping_starts(checkpoint: dict, last: Path, grad_clip: float | None) -> None:
    """A run checkpointed before train.grad_clip clipped (2026-12-06) trained unclipped whatever its config.yaml says:
    resumed, it would be clipped from here on, silently changing how it trains mid-run."""
    from .training.module import CLIPPING_KEY

    if grad_clip and not checkpoint.get(CLIPPING_KEY):
        print(f"[vaedemo] warning: {last} was written before train.grad_clip clipped (2026-12-06): the run trained "
              f"unclipped so far, and its gradients are clipped to {grad_clip:g} from here on; --set "
              "train.grad_clip=0 continues it as it trained.", file=sys.stderr)  # fmt: skip


def _check_run_dir(run_dir: Path) -> None:
    """A train.run_dir that cannot hold the run is one sentence before anything runs: it failed as a FileExistsError
    or NotADirectoryError traceback once the data had been read and the model built."""
    existing = next((p for p in (run_dir, *run_dir.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        what = "is a file" if existing == run_dir else f"lies under {existing}, which is a file"
        raise VaedemoError(f"train.run_dir {run_dir} {what}; set it to a folder.")
    check_writable(existing, f"train.run_dir {run_dir} cannot be written")


def _check_same_training_state(stored, asked) -> None:
    """--resume restores the discriminator's weights and the optimisers' parameter groups from last.ckpt: a --set that
    changes the discriminator, or which parameters of a two-stage model train, failed as torch's traceback (a size
    mismatch, "a parameter group that doesn't match") once the data had been read."""
    if stored.model.latent_mode == "twostage":
        from .training.twostage import untrained_prefixes

        if untrained_prefixes(stored) != untrained_prefixes(asked):
            keys = ("freeze_encoder", "freeze_decoder", "freeze_prior", "finetune_decoder")
            key = next(k for k in keys if getattr(stored.train, k) != getattr(asked.train, k))
            raise VaedemoError(
                f"--resume continues the run's optimiser, and --set changes which weights train (train.{key}: "
                f"{getattr(stored.train, key)} in the run, {getattr(asked.train, key)} asked); train it in another "
                "train.run_dir (train.init_from=<this run>/bundle starts from its weights)."
            )
        return
    have, want = stored.train.discriminator, asked.train.discriminator
    if have != want:
        key = next(f.name for f in dataclasses.fields(have) if getattr(have, f.name) != getattr(want, f.name))
        raise VaedemoError(
            f"--resume continues the run's discriminator, and --set changes it (train.discriminator.{key}: "
            f"{getattr(have, key)} in the run, {getattr(want, key)} asked); train it in another train.run_dir "
            "(train.init_from=<this run>/bundle starts from its model's weights)."
        )


def _check_same_model(stored, asked) -> None:
    """--resume continues the checkpoint's model: a --set that changes it would fail on the weights' shapes. (A
    two-stage run takes its conv stacks' architecture from its backbone, whatever --set says: those keys are not
    compared; its decoder's branches are.)"""
    import dataclasses

    have, want = dataclasses.asdict(stored), dataclasses.asdict(asked)
    if stored.latent_mode == "twostage":  # its conv stacks' keys are the backbone's (a branch it adds is its own)
        from .training.twostage import ARCHITECTURE_KEYS, BRANCHES

        own = {k for keys in BRANCHES.values() for k in keys}
        have = {k: v for k, v in have.items() if k not in ARCHITECTURE_KEYS or k in own}
    key = next((k for k in have if have[k] != want[k]), None)
    if key is not None:
        raise VaedemoError(
            f"--resume continues the run's model, and --set changes it (model.{key}: {have[key]} in the run, "
            f"{want[key]} asked); train it in another train.run_dir (train.init_from=<this run>/bundle starts from "
            "its weights where they fit)."
        )


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="YAML config (defaults for every key not given)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, e.g. --set model.latent_size=256 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in train.run_dir from last.ckpt")
    args = parser.parse_args(argv)
    command = "python -m vaedemo.train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    run(args.config, args.overrides, args.resume, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
