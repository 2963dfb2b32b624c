"""``python -m vaedemo.export RUN_DIR OUT_DIR``: a checkpoint bundle from a Lightning run's ``last.ckpt``.

``RUN_DIR`` is a training run folder (or a ``.ckpt`` file). The Lightning checkpoint is read with
``torch.load(weights_only=True)``; the bundle keeps the generator weights only (no discriminator, no optimiser).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import user_errors
from .errors import CheckpointError


def export(run: str | Path, out_dir: str | Path, name: str | None = None) -> Path:
    import torch

    from .bundle import save_bundle
    from .card import hardware_description
    from .config import config_from_dict
    from .nn.vae import AudioVAE
    from .training.module import phase_reached

    path = Path(run)
    ckpt = path if path.is_file() else path / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise CheckpointError(f"{ckpt} does not exist; give a run folder with checkpoints/last.ckpt or a .ckpt file.")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a damaged or foreign file
        raise CheckpointError(f"{ckpt} is not a readable Lightning checkpoint ({type(e).__name__}).") from None
    if "vaedemo_config" not in state:
        raise CheckpointError(f"{ckpt} was not written by vaedemo's training (it stores no vaedemo_config).")
    cfg = config_from_dict(state["vaedemo_config"], str(ckpt))
    model = AudioVAE(cfg.model)
    weights = {k[len("vae.") :]: v for k, v in state["state_dict"].items() if k.startswith("vae.")}
    model.load_state_dict(weights, strict=True)
    step = int(state["state_dict"].get("step", 0))
    seconds = float((state.get("callbacks") or {}).get("BundleExport", {}).get("training_time_s", 0.0))
    meta = {"name": name or cfg.name, "step": step, "phase": phase_reached(cfg, step),
            "hardware": hardware_description(), "data": cfg.data.root}
    if seconds:
        meta.update(training_time=f"{seconds / 60:.1f} min", training_time_s=round(seconds, 1))
    return save_bundle(model, out_dir, meta, cfg.to_dict())


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="training run folder or .ckpt file")
    parser.add_argument("out", help="bundle folder to write")
    parser.add_argument("--name", help="model name for the card")
    args = parser.parse_args(argv)
    out = export(args.run, args.out, args.name)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
