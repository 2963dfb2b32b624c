"""``python -m vaedemo.amortization --checkpoint B --data DIR [--data DIR ...] [--clips 24] [--steps 100]``

The amortisation gap of a model: how much closer to a clip its decoder comes from a latent found for that clip
alone (:mod:`vaedemo.refine`: Adam on the latent through the frozen decoder, on a multi-scale log-mel distance,
starting from the encoder's latent) than from the encoder's own latent, in the evaluation's log-mel L1. A large gap
says the encoder, not the decoder, limits reconstruction; a small one, the decoder. The refined latents cost a search
per clip (about three decoder passes a step): ``Engine.reconstruct(..., refine=steps)``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .cli import emit_report, user_errors
from .errors import VaedemoError
from .evaluate import default_seconds, evaluation_sets, load_clips
from .metrics import log_mel_l1
from .refine import LR, refine_latents


def mean_log_mel_l1(model, clips: torch.Tensor, z: torch.Tensor) -> float:
    """The evaluation's log-mel L1 (:func:`vaedemo.metrics.log_mel_l1`) of the audio ``z`` decodes, per clip, averaged."""
    with torch.no_grad():
        audio = model.mode.unfold(model.decode(z), len(clips))[..., : clips.shape[-1]]
    return float(np.mean([log_mel_l1(x.T, y.T, model.sample_rate) for x, y in zip(clips.numpy(), audio.numpy())]))


def folder_gap(engine, folder: Path, clips: int, steps: int, lr: float) -> dict:
    """The gap on ``clips`` clips evenly spread over a folder's evaluation set (its validation split when the model
    was trained on it), at the evaluation's default length."""
    length = round(default_seconds(engine) * engine.sample_rate)
    files, _, described = evaluation_sets(folder, engine, 200)
    audio = load_clips(files, engine.sample_rate, length, engine.channels, clips)  # spread over the set
    x = torch.from_numpy(np.stack([a.T for a in audio]))  # (B, C, T)
    model = engine.model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        start = model.encode(x)
    refined = refine_latents(model, x, start, steps, lr)
    seconds = time.perf_counter() - t0
    per_dim = start.transpose(0, 1).reshape(start.shape[1], -1)  # (D, clips) or (D, clips x frames)
    return {"data": described, "clips": len(audio), "steps": steps,
            "encoder": mean_log_mel_l1(model, x, start), "refined": mean_log_mel_l1(model, x, refined),
            "latent_shift_rms": float((refined - start).square().mean().sqrt()),
            "latent_spread": float(per_dim.std(dim=1).mean()), "seconds": seconds}  # fmt: skip


def report(name: str, rows: list[dict], lr: float) -> str:
    lines = [f"# Amortisation gap: {name}", "",
             f"Log-mel L1 of the decoded encoder latents and of latents refined for each clip (vaedemo.refine, lr {lr}).", "",
             "| data | clips | encoder | refined | steps | latent shift (rms) | latents' spread | seconds |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['data']} | {r['clips']} | {r['encoder']:.3f} | {r['refined']:.3f} | {r['steps']} | "
                     f"{r['latent_shift_rms']:.2f} | {r['latent_spread']:.2f} | {r['seconds']:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


@user_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaedemo.amortization", description=__doc__.split("\n\n")[1])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", action="append", required=True, help="folder of clips (repeatable)")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--out", help="write the markdown table here")
    ap.add_argument("--json", help="write the numbers here")
    a = ap.parse_args(argv)
    if a.clips < 1 or a.steps < 0 or a.lr <= 0:
        raise VaedemoError("--clips must be at least 1, --steps not negative and --lr positive.")
    from .inference import Engine

    engine = Engine(a.checkpoint)
    rows = [folder_gap(engine, Path(d), a.clips, a.steps, a.lr) for d in a.data]
    emit_report(report(engine.bundle.name, rows, a.lr), rows, a.out, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
