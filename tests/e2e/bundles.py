"""Tiny untrained bundles for the demo's tests: 44.1 kHz like the real models, small enough to run in milliseconds."""

from __future__ import annotations

from pathlib import Path

APP_TINY = [
    "model.sample_rate=44100",
    "model.clip_length=16384",  # 32 latent frames of hop 512 (0.37 s)
    "model.bands=8",
    "model.capacity=4",
    "model.ratios=[4, 4, 2]",
    "model.latent_size=16",
    "model.flow_hidden=32",
    "data.root=examples",
]
KINDS = {  # name: (latent mode, flow couplings, channels)
    "tiny_single_flow": ("single", 2, 1),
    "tiny_temporal": ("temporal", 0, 1),
    "tiny_stereo": ("single", 2, 2),
}


def tiny_bundles(out: Path, names=tuple(KINDS)) -> dict[str, Path]:
    """Write the bundles named in ``names`` under ``out``; returns name -> folder."""
    import torch

    from vaedemo.bundle import save_bundle
    from vaedemo.config import load_config
    from vaedemo.nn.vae import AudioVAE

    paths = {}
    for name in names:
        mode, flows, channels = KINDS[name]
        cfg = load_config(None, APP_TINY + [
            f"name={name}", f"model.latent_mode={mode}", f"model.channels={channels}",
            f"model.posterior_flow_layers={flows}", f"model.prior_flow_layers={flows}",
        ])  # fmt: skip
        torch.manual_seed(0)
        model = AudioVAE(cfg.model)
        with torch.no_grad():  # move away from the init so that outputs are not all near zero
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        paths[name] = save_bundle(model, out / name, {"name": name, "data": "none (untrained test bundle)"})
    return paths
