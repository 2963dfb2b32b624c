"""Two-stage models: one vector per clip over a frozen temporal autoencoder, trained by the real CLI on trajectories."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaedemo.bundle import load, save_bundle
from vaedemo.config import load_config
from vaedemo.errors import ConfigError
from vaedemo.inference import Engine
from vaedemo.nn.vae import AudioVAE
from vaedemo.train import run
from vaedemo.training.twostage import FROZEN, build_two_stage

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on tiny data loaders


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, drum_folder):
    """A tiny temporal bundle (random weights moved off their initialisation)."""
    from conftest import tiny_overrides

    cfg = load_config(None, tiny_overrides(drum_folder, tmp_path_factory.mktemp("bb"), "temporal", 0))
    torch.manual_seed(0)
    model = AudioVAE(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_bundle(model, tmp_path_factory.mktemp("backbone") / "b", {"name": "tiny temporal"}, cfg.to_dict())


def two_stage_overrides(drum_folder, run_dir, backbone) -> list[str]:
    from conftest import tiny_overrides

    return tiny_overrides(drum_folder, run_dir, "twostage", 2) + [
        f"train.backbone={backbone}", "train.trajectory_copies=2", "train.batch_size=4", "train.max_steps=6",
        "train.vae_steps=6", "train.val_every_n_steps=3", "model.latent_size=6", "model.head_hidden=16",
    ]  # fmt: skip


def test_cli_trains_a_self_contained_bundle_with_the_backbone_frozen(drum_folder, tmp_path, backbone):
    run_dir = run(None, two_stage_overrides(drum_folder, tmp_path / "run", backbone), resume=False)
    bundle = load(run_dir / "bundle")
    assert bundle.config.latent_mode == "twostage" and bundle.meta["step"] == 6
    frozen = {k: v for k, v in load(backbone).model.state_dict().items() if k.startswith(FROZEN)}
    state = bundle.model.state_dict()
    assert frozen and all(torch.equal(state[k], v) for k, v in frozen.items())  # the backbone did not move
    eng = Engine(bundle)
    z = eng.encode(np.random.default_rng(0).standard_normal(5000).astype(np.float32) * 0.1, 16000)
    assert z.shape == (3, 6)  # one vector per clip of 2048 samples
    assert eng.reconstruct(np.zeros(3000, np.float32), 16000).shape == (3000, 1)
    assert eng.sample(3, seed=1).shape == (3, 2048, 1) and eng.interpolate(z[0], z[1], 4).shape == (4, 2048, 1)


def test_resume_continues_from_the_saved_step(drum_folder, tmp_path, backbone):
    overrides = two_stage_overrides(drum_folder, tmp_path / "run", backbone)
    run(None, overrides + ["train.checkpoint_every_n_steps=3", "train.max_steps=3"], resume=False)
    run_dir = run(None, overrides + ["train.max_steps=5"], resume=True)
    assert load(run_dir / "bundle").meta["step"] == 5


def test_a_backbone_that_is_not_temporal_is_refused(drum_folder, tmp_path, tiny_config):
    single = save_bundle(AudioVAE(tiny_config("single").model), tmp_path / "single")
    cfg = load_config(None, two_stage_overrides(drum_folder, tmp_path / "run", single))
    with pytest.raises(ConfigError, match="must be a temporal bundle without a posterior flow"):
        build_two_stage(cfg)
    cfg.train.backbone = None
    with pytest.raises(ConfigError, match="needs train.backbone"):
        build_two_stage(cfg)
