"""Every file under configs/ loads, builds its model and trains one step of every phase it schedules.

Ablation files are expanded into their variants (base config + shared overrides + the variant's overrides). Each
run keeps the config's model and losses and shrinks only what sets the cost: the batch (2 clips), the phase lengths
(one step per scheduled phase) and validation (off). The training loop is Lightning's, on random audio.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from vaedemo.bundle import save_bundle
from vaedemo.config import Config, load_config
from vaedemo.experiment import read_ablation, variant_overrides
from vaedemo.nn.vae import AudioVAE
from vaedemo.training.module import PHASES, VAEModule
from vaedemo.training.twostage import TwoStageModule, build_two_stage, encode_statistics

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
ABLATIONS = sorted((ROOT / "configs" / "ablations").glob("*.yaml"))


def all_configs() -> list[tuple[str, Config]]:
    out = [(p.stem, load_config(p)) for p in CONFIGS]
    for path in ABLATIONS:
        doc = read_ablation(path)
        for name in doc["variants"]:
            out.append((f"{path.stem}/{name}", load_config(ROOT / doc["base"], variant_overrides(doc, name))))
    return out


def scheduled_phases(cfg: Config) -> list[str]:
    t = cfg.train
    lengths = [t.vae_steps, t.discriminator_warmup_len, max(0, t.max_steps - t.vae_steps - t.discriminator_warmup_len)]
    return [phase for phase, n in zip(PHASES, lengths) if n > 0]


def one_step_per_phase(cfg: Config, phases: list[str]) -> Config:
    t = cfg.train
    t.batch_size = 2
    t.vae_steps = int("vae" in phases)
    t.discriminator_warmup_len = int("discriminator_warmup" in phases)
    t.max_steps = len(phases)
    t.lr_decay_start = 0 if t.lr_decay_start is not None else None
    t.beta_warmup_steps = min(t.beta_warmup_steps, 1)
    return cfg


def test_every_config_file_is_covered(monkeypatch):
    every_file = sorted((ROOT / "configs").rglob("*.yaml"))
    recipes = sorted((ROOT / "configs" / "recipes").glob("*.yaml"))  # chains of the configs above (tests/test_recipe.py)
    assert every_file == sorted(CONFIGS + ABLATIONS + recipes) and len(every_file) >= 6
    from vaedemo.recipe import Recipe

    monkeypatch.chdir(ROOT)  # a recipe names its configs from the repository's root
    for recipe in recipes:
        assert Recipe(recipe.relative_to(ROOT)).steps  # every step's config resolves, every input is a step's bundle


@pytest.mark.parametrize("name,cfg", all_configs(), ids=[n for n, _ in all_configs()])
def test_config_trains_one_step_of_each_phase(name, cfg, tmp_path):
    phases = scheduled_phases(cfg)
    assert phases, f"{name} schedules no training step"
    cfg = one_step_per_phase(cfg, phases)
    torch.manual_seed(0)
    audio = 0.1 * torch.randn(2 * len(phases), cfg.model.channels, cfg.model.clip_length)
    if cfg.model.latent_mode == "twostage":  # stage two trains on the frozen backbone's trajectories
        model, cfg.model = build_two_stage(cfg)
        module, data = TwoStageModule(cfg, model), encode_statistics(model, audio, copies=1)
    else:
        if cfg.train.encoder_distill_steps:  # its teacher: a bundle of the other encoder kind, as the shipped one was
            teacher = AudioVAE(dataclasses.replace(cfg.model, encoder="wave" if cfg.model.encoder != "wave" else "spectral"))
            cfg.train.init_from = str(save_bundle(teacher, tmp_path / "teacher"))  # on the day (the recipe makes it)
        module, data = VAEModule(cfg), audio
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module, loader)
    assert int(module.step) == len(phases)
    assert [phase for _, phase in module.phase_changes] == phases
    assert module.skipped_steps == 0
