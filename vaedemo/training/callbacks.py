"""Callbacks: resumable ``last.ckpt``, bundle export at each validation, audio + spectrogram logging.

``last.ckpt`` is written atomically every ``checkpoint_every_n_steps`` training batches, at the end, and when
training is interrupted (Ctrl-C, SIGTERM), so a killed run resumes at the step it last saved.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from safetensors import SafetensorError

from ..bundle import recover_interrupted_saves, save_bundle
from ..card import hardware_description
from ..dsp import hann_window, stft_magnitude
from ..errors import VaedemoError
from .module import PHASES, VAEModule, phase_reached


class LastCheckpoint(pl.Callback):
    def __init__(self, run_dir: Path, every_n_steps: int):
        self.path = Path(run_dir) / "checkpoints" / "last.ckpt"
        self.every = max(1, every_n_steps)

    def save(self, trainer: pl.Trainer) -> None:
        tmp = self.path.with_suffix(".ckpt.tmp")
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            trainer.save_checkpoint(tmp, weights_only=False)
        except OSError as e:  # a full disk (the run's, or the system temp folder Lightning writes through)
            if trainer.is_global_zero:
                tmp.unlink(missing_ok=True)  # half a file would fill the disk a resume needs
            kept = (f"{self.path.name} still holds the last step saved: make room, then --resume" if self.path.exists()
                    else "no step was saved yet: make room, then start again")
            raise VaedemoError(f"the checkpoint could not be written in {self.path.parent} ({e.strerror or e}); "
                               f"{kept}.") from None
        if trainer.is_global_zero:
            os.replace(tmp, self.path)

    def on_train_batch_end(self, trainer, pl_module: VAEModule, outputs, batch, batch_idx) -> None:
        if pl_module.steps_done % self.every == 0:
            self.save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        # Ctrl-C, and SIGTERM (kill, docker stop, systemd, timeout), which Lightning turns into SIGTERMException; only
        # while fitting: a trainer.validate (a resume's missed validation) holds no optimizer or loop state to save.
        # Not on other errors: one may come half-way through a step (between the generator's and the discriminator's
        # updates), from diverged weights, from a config that --resume would keep, or on one DDP rank while the others
        # wait in a collective; the last periodic checkpoint is the state to resume from.
        fitting = trainer.state.fn == TrainerFn.FITTING
        if fitting and isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            self.save(trainer)


class BundleExport(pl.Callback):
    """After each validation: ``run_dir/bundle`` (latest) and ``run_dir/bundles/step-N`` (the last ``keep``)."""

    def __init__(self, run_dir: Path, keep: int = 3, command: str = "", data_summary: str = ""):
        self.run_dir = Path(run_dir)
        self.keep = keep
        self.command = command
        self.data_summary = data_summary
        self.started = time.monotonic()
        self.previous_time = 0.0

    def on_fit_start(self, trainer, pl_module) -> None:
        self.started = time.monotonic()
        if trainer.is_global_zero:  # a run killed while it wrote a bundle resumes without its leftovers
            recover_interrupted_saves(self.run_dir, "bundle")
            recover_interrupted_saves(self.run_dir / "bundles", "step-")

    def state_dict(self) -> dict:
        return {"training_time_s": self.previous_time + time.monotonic() - self.started}

    def load_state_dict(self, state: dict) -> None:
        self.previous_time = float(state.get("training_time_s", 0.0))

    def resume_for_validation(self, checkpoint: dict) -> None:
        """Before a trainer.validate of a checkpoint (which restores only the weights): its training time so far."""
        self.load_state_dict(checkpoint.get("callbacks", {}).get(type(self).__name__, {}))
        self.started = time.monotonic()

    def on_validation_end(self, trainer, pl_module: VAEModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        step = int(pl_module.step)
        seconds = self.previous_time + time.monotonic() - self.started
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        meta = {
            "name": pl_module.cfg.name,
            "step": step,
            "phase": phase_reached(pl_module.cfg, step),
            "training_time": f"{seconds / 60:.1f} min",
            "training_time_s": round(seconds, 1),
            "hardware": hardware_description() + (f" x {trainer.world_size} processes" if trainer.world_size > 1 else ""),
            "command": self.command,
            "data": self.data_summary,
            "metrics": metrics,
        }
        training = pl_module.cfg.to_dict()
        folder = self.run_dir / "bundles"
        try:
            save_bundle(pl_module.vae, self.run_dir / "bundle", meta, training, own_folder=True)
            save_bundle(pl_module.vae, folder / f"step-{step:07d}", meta, training, own_folder=True)
        except (OSError, SafetensorError) as e:  # a full disk: a raw traceback, a bundle save never replaces a good one
            raise VaedemoError(f"the bundle of step {step} could not be written in {self.run_dir} ({e}); the run's "
                               "checkpoints/last.ckpt holds its last saved step: make room, then --resume.") from None
        for old in sorted(folder.glob("step-*"))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)


def spectrogram_image(x: torch.Tensor, n_fft: int = 1024) -> np.ndarray:
    """(T,) audio -> (freq, frames) log-magnitude image in [0, 1], low frequencies at the bottom."""
    spec = stft_magnitude(x.float()[None], n_fft, hann_window(n_fft), pad_mode="reflect")[0]
    img = torch.log10(spec + 1e-5)
    img = ((img - img.max() + 5.0) / 5.0).clamp(0, 1)
    return img.flip(0).numpy()


class AudioLogger(pl.Callback):
    """Every ``every_n`` validations (0: never): input/reconstruction audio, spectrograms and prior samples to
    TensorBoard."""

    def __init__(self, every_n: int = 1, examples: int = 2):
        self.every_n = every_n
        self.examples = examples
        self.count = 0

    def on_validation_end(self, trainer, pl_module: VAEModule) -> None:
        if not self.every_n or trainer.sanity_checking or not trainer.is_global_zero or not pl_module.val_examples:
            return
        self.count += 1
        if (self.count - 1) % self.every_n:
            return
        writer = getattr(trainer.logger, "experiment", None)
        if writer is None or not hasattr(writer, "add_audio"):
            return
        sr = pl_module.cfg.model.sample_rate
        step = int(pl_module.step)
        real, recon = pl_module.val_examples
        vae = pl_module.vae
        with torch.no_grad():
            g = torch.Generator().manual_seed(step)
            samples = vae.sample(self.examples, generator=g).cpu()
        groups = {"input": real, "reconstruction": recon, "prior_sample": samples}
        for name, audio in groups.items():
            for i in range(min(self.examples, audio.shape[0])):
                mono = audio[i].mean(0)
                writer.add_audio(f"{name}/{i}", mono.clamp(-1, 1).unsqueeze(0), step, sample_rate=sr)
                writer.add_image(f"{name}_spectrogram/{i}", spectrogram_image(mono), step, dataformats="HW")
        writer.add_scalar("phase_index", PHASES.index(phase_reached(pl_module.cfg, step)), step)
