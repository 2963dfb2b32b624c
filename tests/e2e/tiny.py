"""One tiny untrained bundle with any overrides (a causal temporal one for the Live tab's tests)."""

from __future__ import annotations

from pathlib import Path

TINY = ["model.sample_rate=44100", "model.clip_length=16384", "model.bands=8", "model.capacity=4",
        "model.ratios=[4, 4, 2]", "model.latent_size=8", "model.flow_hidden=16", "data.root=examples"]  # fmt: skip


def tiny_bundle(out: Path, name: str, *overrides: str) -> Path:
    """Write a tiny bundle ``out/name`` (44.1 kHz, hop 256, 8-d latent) and return its folder."""
    import torch

    from vaedemo.bundle import save_bundle
    from vaedemo.config import load_config
    from vaedemo.nn.vae import AudioVAE

    cfg = load_config(None, [*TINY, f"name={name}", *overrides])
    torch.manual_seed(0)
    model = AudioVAE(cfg.model)
    with torch.no_grad():  # away from the init, so that outputs are not near zero
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_bundle(model, out / name, {"name": name, "data": "none (untrained test bundle)"})
