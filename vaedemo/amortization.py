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

from .cli import check_outputs, emit_report, user_errors
from .dataset_summary import prior_log_prob, read_summary, typicality_percentiles
from .errors import VaedemoError
from .evaluate import default_seconds, evaluation_sets, load_clips
from .metrics import log_mel_l1
from .refine import LR, prior_penalty, refine_latents


def mean_log_mel_l1(model, clips: torch.Tensor, z: torch.Tensor) -> float:
    """The evaluation's log-mel L1 (:func:`vaedemo.metrics.log_mel_l1`) of the audio ``z`` decodes, per clip, averaged."""
    with torch.no_grad():
        audio = model.mode.unfold(model.decode(z), len(clips))[..., : clips.shape[-1]]
    return float(np.mean([log_mel_l1(x.T, y.T, model.sample_rate) for x, y in zip(clips.numpy(), audio.numpy())]))


def typicality_reference(engine) -> np.ndarray | None:
    """The training clips' sorted log p (the demo's typicality reference), read from the bundle's training-set summary;
    None unless the model has one vector per clip, a flow prior and a summary with that reference."""
    if not (engine.mode.per_clip and engine.has_prior_flow and engine.bundle.path is not None):
        return None
    found = read_summary(engine.bundle.path, engine.latent_size)
    return None if found is None else found.reference


def typicality(engine, reference: np.ndarray | None, z: torch.Tensor, examples: int) -> tuple[float, int] | None:
    """(median typicality percentile, clips below the 1st percentile) of each clip's first latent vector among
    ``reference`` (:func:`typicality_reference`); None without one."""
    if reference is None:
        return None
    first = z.reshape(examples, -1, z.shape[-1])[:, 0]
    pct = typicality_percentiles(reference, prior_log_prob(engine, first.numpy()))
    return float(np.median(pct)), int((pct < 1).sum())


def folder_gap(engine, folder: Path, clips: int, steps: int, lr: float, prior_weight: float = 0.0) -> dict:
    """The gap on ``clips`` clips evenly spread over a folder's evaluation set (its validation split when the model
    was trained on it), at the evaluation's default length."""
    length = round(default_seconds(engine) * engine.sample_rate)
    files, _, described = evaluation_sets(folder, engine, 200)
    audio = load_clips(files, engine.sample_rate, length, engine.channels, clips)  # spread over the set
    if not audio:  # every file undecodable: numpy's "need at least one array to stack" otherwise
        raise VaedemoError(f"{folder} gave no usable clips to measure the amortisation gap on.")
    x = torch.from_numpy(np.stack([a.T for a in audio]))  # (B, C, T)
    model = engine.model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        start = model.encode(x)
    refined = refine_latents(model, x, start, steps, lr, prior_weight)
    seconds = time.perf_counter() - t0
    per_dim = start.transpose(0, 1).reshape(start.shape[1], -1)  # (D, clips) or (D, clips x frames)
    with torch.no_grad():
        nats = [float(prior_penalty(model, z, len(x)).mean()) for z in (start, refined)]
    reference = typicality_reference(engine)  # read once for both latents
    return {"data": described, "clips": len(audio), "steps": steps, "prior_weight": prior_weight,
            "encoder": mean_log_mel_l1(model, x, start), "refined": mean_log_mel_l1(model, x, refined),
            "encoder_nats": nats[0], "refined_nats": nats[1],
            "encoder_typicality": typicality(engine, reference, start, len(x)),
            "refined_typicality": typicality(engine, reference, refined, len(x)),
            "latent_shift_rms": float((refined - start).square().mean().sqrt()),
            "latent_spread": float(per_dim.std(dim=1).mean()) if per_dim.shape[1] > 1 else None,  # one vector: none
            "seconds": seconds}  # fmt: skip


def report(name: str, rows: list[dict], lr: float, prior_weight: float = 0.0) -> str:
    lines = [f"# Amortisation gap: {name}", "",
             f"Log-mel L1 of the decoded encoder latents and of latents refined for each clip (vaedemo.refine, lr {lr}, "
             f"prior weight {prior_weight:g}); -log p(z) under the model's prior in nats per latent coordinate, "
             "encoder -> refined (lower: more typical).", "",
             "| data | clips | encoder | refined | steps | -log p(z) / coordinate | typicality: median (below 1st) "
             "| latent shift (rms) | latents' spread | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        typical = " -> ".join(f"{t[0]:.1f} ({t[1]})" for t in (r["encoder_typicality"], r["refined_typicality"])) \
            if r["encoder_typicality"] else "n/a"  # fmt: skip
        lines.append(f"| {r['data']} | {r['clips']} | {r['encoder']:.3f} | {r['refined']:.3f} | {r['steps']} | "
                     f"{r['encoder_nats']:.2f} -> {r['refined_nats']:.2f} | {typical} | {r['latent_shift_rms']:.2f} | "
                     f"{'—' if r['latent_spread'] is None else format(r['latent_spread'], '.2f')} | "
                     f"{r['seconds']:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


@user_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaedemo.amortization", description=__doc__.split("\n\n")[1])
    ap.add_argument("--checkpoint", required=True, help="bundle folder or hf://org/repo")
    ap.add_argument("--data", action="append", required=True, help="folder of clips (repeatable)")
    ap.add_argument("--clips", type=int, default=24, help="clips per folder, spread over it (default 24)")
    ap.add_argument("--steps", type=int, default=100, help="search steps per clip (default 100)")
    ap.add_argument("--lr", type=float, default=LR, help=f"the search's Adam learning rate (default {LR})")
    ap.add_argument("--prior-weight", type=float, default=0.0,
                    help="weight of -log p(z) per latent coordinate in the search (default 0: the closest audio)")
    ap.add_argument("--out", help="write the markdown table here")
    ap.add_argument("--json", help="write the numbers here")
    a = ap.parse_args(argv)
    from .inference import MAX_REFINE_STEPS, Engine

    # --lr nan passed "<= 0" and was torch's traceback; --steps as the demo's and evaluate's refinement, bounded
    if a.clips < 1 or a.steps < 0 or not 0 < a.lr < float("inf") or not 0 <= a.prior_weight < float("inf"):
        raise VaedemoError("--clips must be at least 1, --steps and --prior-weight not negative and --lr positive.")
    if a.steps > MAX_REFINE_STEPS:
        raise VaedemoError(f"--steps must be at most {MAX_REFINE_STEPS}, got {a.steps}.")
    check_outputs(a.data, out=a.out, json_path=a.json)  # before the searches, not a traceback after them

    engine = Engine(a.checkpoint)
    rows = [folder_gap(engine, Path(d), a.clips, a.steps, a.lr, a.prior_weight) for d in a.data]
    emit_report(report(engine.bundle.name, rows, a.lr, a.prior_weight), rows, a.out, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
