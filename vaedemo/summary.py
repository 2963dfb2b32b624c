"""``python -m vaedemo.summary --config X [--set key=value ...]``: the model summary without training.

Prints parameters per module as Lightning's ``summarize`` does at the start of training (generator and
discriminator), plus the geometry (hop, latent rate, receptive field).
"""

from __future__ import annotations

import argparse
import sys

from .bundle import check_model_size
from .cli import user_errors
from .config import config_source, load_config


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.summary", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    check_model_size(cfg.model, config_source(args.config, args.overrides))
    from lightning.pytorch.utilities.model_summary import summarize

    from .training.module import VAEModule

    module = VAEModule(cfg)
    print(summarize(module, max_depth=args.depth))
    sr, hop = cfg.model.sample_rate, cfg.model.hop
    print(
        f"\nlatent: {cfg.model.latent_mode}, size {cfg.model.latent_size}; hop {hop} samples "
        f"({sr / hop:.2f} frames/s); receptive field {module.vae.receptive_field} samples "
        f"({1000 * module.vae.receptive_field / sr:.0f} ms); clip {cfg.model.clip_length} samples"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
