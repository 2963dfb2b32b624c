"""``python -m vaedemo.priors --checkpoint B --train-data DIR --data DIR [--data DIR ...] [--out docs/priors.md]``

Compares priors over the same latent space of a one-vector-per-clip model: the standard Gaussian, the model's
learned RealNVP prior, and two priors fitted here to the model's latents of the training clips (posterior means of the
training split of ``--train-data``): a full-covariance Gaussian and a flow-matching prior (:mod:`vaedemo.nn.fm_prior`).
For every prior and every held-out
folder: KID and Frechet distance to the held-out clips, the real-vs-real floor and the decoder's bound beside them,
the samples' peak level, their diversity (mean distance from each sample to its nearest other sample, in
standardised clip features), memorisation (share of samples nearer to a training clip than 95 % of held-out clips
are), replay (the same against the training clips as the model decodes their latents, measured by held-out clips'
reconstructions: see :func:`replay_share`) and the time to draw and decode one sample. The decoder's bound is scored
paired with the clips it reconstructs (:func:`~vaedemo.metrics.kid`'s ``paired``). ``--temperature T`` (repeatable)
adds the RealNVP prior drawn at temperature T beside its draws at 1: colder draws stay nearer the prior's modes.
``--typical P`` (repeatable) adds the RealNVP prior restricted to where it puts the training clips: draws whose exact
log p(z) lies below the P-th percentile of the training clips' latents' are redrawn (:func:`typical_latents`; the
demo's typicality warns below the 1st).
Each prior is drawn ``--draws`` times (seeds ``--seed`` + 0, 1, ...) and its row is the mean over the draws, with every
draw's KID beside it: one draw's ± covers subsets of that draw, not another draw.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .card import draws_line, each_draw
from .cli import check_outputs, check_seed, emit_report, user_errors
from .dataset_summary import prior_log_prob
from .errors import VaedemoError
from .evaluate import (
    DEFAULT_DRAWS,
    MAX_DRAWS,
    check_draws,
    evaluation_sets,
    held_out_files,
    is_training_folder,
    level_summary,
    load_clips,
    peak_levels,
    peaks_dbfs,
    scores_over_draws,
)
from .inference import MAX_SOUNDS
from .metrics import clip_features, frechet_distance, kid, standardise
from .nn.fm_prior import FlowMatchingPrior


def training_latents(engine, folder: Path, seconds: float, limit: int = 2000) -> tuple[np.ndarray, list[np.ndarray]]:
    """(posterior means (N, D), clips) of the training split of the folder the model was trained on."""
    _, train_files, _ = held_out_files(folder, engine)
    if not train_files:
        raise VaedemoError(f"{folder} is not the folder this model was trained on (its training split is unknown).")
    clips = load_clips(train_files, engine.sample_rate, round(seconds * engine.sample_rate), engine.channels, limit)
    return np.stack([engine.encode(c, engine.sample_rate)[0] for c in clips]), clips


def train_flow_matching(z: np.ndarray, steps: int, seed: int = 0) -> FlowMatchingPrior:
    """A flow-matching prior fitted to the latents ``z`` (N, D) with Adam, batches of 256, lr decayed to 10 %."""
    torch.manual_seed(seed)
    prior = FlowMatchingPrior(z.shape[1])
    data = torch.from_numpy(z.astype(np.float32))
    opt = torch.optim.Adam(prior.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.1 ** (k / max(1, steps)))
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = data[torch.randint(0, len(data), (256,), generator=g)]
        opt.zero_grad()
        prior.loss(batch, g).backward()
        opt.step()
        sched.step()
    return prior.eval()


def fit_gaussian(z: np.ndarray) -> Callable[[torch.Tensor], np.ndarray]:
    """The full-covariance Gaussian of the latents ``z`` (N, D), as a map from standard normal noise (n, D) to its
    samples: the simplest prior fitted to the training latents, so that what RealNVP and flow matching gain beyond it
    is what the latents' shape has beyond their mean and covariance."""
    mean = z.mean(axis=0)
    cov = np.cov(z, rowvar=False) + 1e-6 * np.eye(z.shape[1])  # a floor: fewer clips than dimensions stays definite
    chol = np.linalg.cholesky(cov)
    return lambda x0: (mean + x0.double().numpy() @ chol.T).astype(np.float32)


TYPICAL_BLOCKS = 64  # blocks of n draws tried before a floor is called out of the prior's reach


def typical_latents(engine, n: int, seed: int, floor: float) -> np.ndarray:
    """n draws of the model's prior at temperature 1 whose exact log p(z) is at least ``floor`` (n, D): each block of
    n draws keeps those above it, the first block the seed's own draw (so a row's kept samples are the plain row's),
    each later one its own seed, until n are kept."""
    kept = []
    for block in range(TYPICAL_BLOCKS):
        block_seed = seed if block == 0 else int(np.random.SeedSequence([seed, block]).generate_state(1, np.uint64)[0])
        z = engine.sample_latents(n, 1.0, block_seed, use_flow=True)
        kept += list(z[prior_log_prob(engine, z) >= floor])
        if len(kept) >= n:
            return np.stack(kept[:n])
    raise VaedemoError(f"{TYPICAL_BLOCKS * n} draws of the prior gave {len(kept)} of the {n} samples at or above log p "
                       f"{floor:.1f}: that floor lies beyond where the prior draws.")  # fmt: skip


def draw(engine, prior: str, n: int, seed: int, fitted: dict[str, Callable[[torch.Tensor], np.ndarray]],
         temperature: float = 1.0, floor: float | None = None) -> tuple[np.ndarray, float]:  # fmt: skip
    """(n decoded samples (n, samples, C), seconds per sample) from one prior: the model's ("Gaussian", "RealNVP") at
    ``temperature`` or, with a log p ``floor``, at temperature 1 above it (:func:`typical_latents`), or one fitted
    here (``fitted``: its name -> its map from standard normal noise; at temperature 1)."""
    t0 = time.perf_counter()
    if prior in fitted:
        x0 = torch.randn((n, engine.latent_size), generator=torch.Generator().manual_seed(seed))
        z = fitted[prior](x0)
    elif floor is not None:
        z = typical_latents(engine, n, seed, floor)
    else:
        z = engine.sample_latents(n, temperature, seed, use_flow=prior == "RealNVP")
    audio = engine.decode_many(z)
    return audio, (time.perf_counter() - t0) / n


def nearest(a: np.ndarray, b: np.ndarray, same: bool = False) -> np.ndarray:
    """Distance from each row of ``a`` to its nearest row of ``b`` (excluding itself when ``same``)."""
    d = np.sqrt(np.maximum(0.0, (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T))
    if same:
        np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def sample_scores(real: np.ndarray, train: np.ndarray, fake: np.ndarray, paired: bool = False) -> dict[str, float]:
    """KID, FD, diversity and memorisation of samples ``fake`` against held-out ``real`` (clip features); ``paired``:
    ``fake`` row i was made from ``real`` row i (see :func:`~vaedemo.metrics.kid`)."""
    k, k_std = kid(real, fake, subsets=100, subset_size=max(2, min(len(real), len(fake)) // 2), paired=paired)
    real_z, train_z, fake_z = standardise(real, train, fake)
    threshold = np.percentile(nearest(real_z, train_z), 5)  # 95 % of held-out clips are farther from training
    return {"kid": float(k), "kid_std": float(k_std), "fd": float(frechet_distance(real, fake)),
            "diversity": float(nearest(fake_z, fake_z, same=True).mean()),
            "memorisation": float((nearest(fake_z, train_z) < threshold).mean())}  # fmt: skip


def replay_share(real: np.ndarray, decoded_train: np.ndarray, recon: np.ndarray, fake: np.ndarray) -> float:
    """Share of samples ``fake`` nearer a training clip as the model decodes it (its own latent, decoded) than 95 % of
    held-out clips' reconstructions ``recon`` are (clip features). Memorisation against the training clips as they
    are cannot see a prior that replays training latents: the decoder changes every sound by more than held-out
    clips lie from their nearest training clip, so even the training latents decoded score 0 %. Here those score
    100 % by construction (they are among the reference), and a prior's share says how often it lands about as near
    a training clip's latent as a held-out clip's reconstruction lands on its nearest. The margin comes from the
    folder's reconstructions: it reads as replay on the training folder's held-out split; on another folder, whose
    reconstructions lie farther from the training set, the margin is wider."""
    _, train_z, recon_z, fake_z = standardise(real, decoded_train, recon, fake)
    threshold = np.percentile(nearest(recon_z, train_z), 5)
    return float((nearest(fake_z, train_z) < threshold).mean())


def prior_scores(real: np.ndarray, fake: np.ndarray, train: np.ndarray, decoded_train: np.ndarray,
                 recon: np.ndarray) -> dict[str, float]:  # fmt: skip
    """Every number of a prior's row for one draw of its samples: :func:`sample_scores` and :func:`replay_share`."""
    return sample_scores(real, train, fake) | {"replay": replay_share(real, decoded_train, recon, fake)}


FITTED_GAUSSIAN = "Gaussian fitted to the training latents"


def tempered(temperature: float) -> str:
    """The name of the RealNVP prior's row at another temperature than 1."""
    return f"RealNVP, temperature {temperature:g}"


def typical(percentile: float) -> str:
    """The name of the RealNVP prior's row with draws below the training clips' ``percentile`` of log p redrawn."""
    return f"RealNVP, draws below percentile {percentile:g} of the training clips' log p redrawn"


def drawn(engine, prior: str, n: int, seeds: list[int], fitted: dict[str, Callable[[torch.Tensor], np.ndarray]],
          temperature: float = 1.0, floor: float | None = None) -> dict:  # fmt: skip
    """One draw of n samples per seed, kept as what the scores need: each draw's clip features, every sample's peak
    level and the mean time per sample."""
    features, peaks, times = [], [], []
    for seed in seeds:
        audio, per_sample = draw(engine, prior, n, seed, fitted, temperature, floor)
        features.append(clip_features(list(audio[:, : engine.clip_length]), engine.sample_rate))
        peaks += peaks_dbfs(audio)
        times.append(per_sample)
    return {"features": features, "levels": level_summary(peaks), "ms_per_sample": 1000 * float(np.mean(times))}


def compare(engine, train_data: Path, folders: list[Path], n: int, fm_steps: int, ode_steps: int, seed: int,
            temperatures: tuple[float, ...] = (), draws: int = DEFAULT_DRAWS,
            typicals: tuple[float, ...] = ()) -> dict:  # fmt: skip
    check_draws(draws)
    seconds = engine.clip_length / engine.sample_rate
    sr, length = engine.sample_rate, engine.clip_length
    z_train, train_clips = training_latents(engine, train_data, seconds)
    fm = train_flow_matching(z_train, fm_steps, seed)
    train_feats = clip_features(train_clips, sr)
    decoded = engine.decode_many(z_train)  # every training latent decoded: what a replay would sound like
    decoded_train = clip_features(list(decoded), sr)
    seeds = [seed + d for d in range(draws)]
    # first: a floor out of the prior's reach fails before the other priors are drawn and decoded
    typical_rows = {typical(p): drawn_typical(engine, n, seeds, typical_floor(engine, z_train, p), p) for p in typicals}
    fitted = {FITTED_GAUSSIAN: fit_gaussian(z_train), "flow matching": lambda x0: fm.sample(x0, ode_steps).numpy()}
    samples = {name: drawn(engine, name, n, seeds, fitted) for name in ("Gaussian", FITTED_GAUSSIAN, "RealNVP",
                                                                        "flow matching")}  # fmt: skip
    samples |= {tempered(t): drawn(engine, "RealNVP", n, seeds, fitted, t) for t in temperatures}
    samples |= typical_rows
    # what a prior that had learned the training set exactly could reach: n training clips' own latents, decoded, and
    # those clips themselves (on an unseen soundfont: the distance between the soundfonts)
    picked = np.random.default_rng(seed).permutation(len(train_clips))[:n]
    ideal = {"training latents, decoded (an exact prior of the training set)": decoded[picked],
             "training clips (real)": np.stack([train_clips[i] for i in picked])}
    # each set's features once: they do not depend on the held-out folder they are scored against
    features = {name: clip_features(list(audio[:, :length]), sr) for name, audio in ideal.items()}
    result = {"train_clips": len(train_clips), "samples": n, "draws": draws, "seeds": seeds, "ode_steps": ode_steps,
              "fm_steps": fm_steps, "temperatures": list(temperatures), "typicals": list(typicals),
              "train_peak_dbfs": peak_levels(train_clips)["median_peak_dbfs"], "folders": {}}  # fmt: skip
    for folder in folders:
        files, others, described = evaluation_sets(folder, engine, n)
        clips = load_clips(files, sr, length, engine.channels, n)
        if len(clips) < 2:  # KID, FD and the nearest other clip need two: one was the metrics' traceback
            raise VaedemoError(f"{folder} gave {len(clips)} usable clips; the comparison needs at least 2.")
        real = clip_features(clips, sr)
        recon = clip_features([engine.reconstruct(c, sr) for c in clips], sr)
        score = partial(prior_scores, train=train_feats, decoded_train=decoded_train, recon=recon)
        rows = {}
        for name, s in samples.items():
            rows[name] = scores_over_draws(real, s["features"], score) | s["levels"]
            rows[name]["ms_per_sample"] = s["ms_per_sample"]
        for name, audio in ideal.items():
            rows[name] = sample_scores(real, train_feats, features[name])
            rows[name].update(peak_levels(list(audio)))
            if name == "training clips (real)":
                del rows[name]["memorisation"]  # they are the training clips
            else:
                rows[name]["replay"] = replay_share(real, decoded_train, recon, features[name])
        rows["reconstructions (decoder bound)"] = sample_scores(real, train_feats, recon, paired=True)
        floor = load_clips(others, sr, length, engine.channels, n) if others else []
        if len(floor) >= 2:  # other real clips scored as if they were samples: how close a perfect generator could come
            rows["real clips (floor)"] = sample_scores(real, train_feats, clip_features(floor, sr))
            rows["real clips (floor)"].update(peak_levels(floor))
            if is_training_folder(folder, train_data):  # the floor is the training split itself
                del rows["real clips (floor)"]["memorisation"]
        result["folders"][described] = rows
    return result


def typical_floor(engine, z: np.ndarray, percentile: float) -> float:
    """The log p(z) below which ``--typical percentile`` redraws: that percentile of the latents ``z`` (N, D) (the
    training clips' posterior means) under the model's prior."""
    return float(np.percentile(prior_log_prob(engine, z), percentile))


def drawn_typical(engine, n: int, seeds: list[int], floor: float, percentile: float) -> dict:
    """:func:`drawn` for the RealNVP prior above ``floor``; a floor out of its reach named by its option."""
    try:
        return drawn(engine, "RealNVP", n, seeds, {}, floor=floor)
    except VaedemoError as e:
        raise VaedemoError(f"--typical {percentile:g}: {e}") from None


def _also(temperatures: list[float]) -> str:
    return f" (RealNVP also at {', '.join(f'{t:g}' for t in temperatures)})" if temperatures else ""


def _typical_line(percentiles: list[float]) -> str:
    if not percentiles:
        return ""
    which = f"percentile{'s' * (len(percentiles) > 1)} {', '.join(f'{p:g}' for p in percentiles)}"
    return f" RealNVP also with its draws below {which} of the training clips' latents' log p redrawn (at temperature 1)."


def report(name: str, result: dict) -> str:
    lines = [f"# Priors of {name}", "",
             f"{result['samples']} samples per prior and draw at temperature 1{_also(result['temperatures'])}."
             f"{_typical_line(result.get('typicals', []))} "
             f"{draws_line(result.get('seeds'))} Flow matching trained {result['fm_steps']} steps "
             f"on the posterior means of {result['train_clips']} training clips, sampled with {result['ode_steps']} "
             f"Euler steps. Training clips' median peak: {result['train_peak_dbfs']:.1f} dBFS.", ""]  # fmt: skip
    for folder, rows in result["folders"].items():
        lines += [f"## {folder}", "", "| prior | KID | KID of each draw | FD | median / lowest peak (dBFS) | diversity | "
                  "memorisation | replay | ms per sample |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for prior, r in rows.items():
            level = f"{r['median_peak_dbfs']:.1f} / {r['min_peak_dbfs']:.1f}" if "median_peak_dbfs" in r else ""
            ms = f"{r['ms_per_sample']:.1f}" if "ms_per_sample" in r else ""
            memo = f"{r['memorisation']:.0%}" if "memorisation" in r else ""
            replay = f"{r['replay']:.0%}" if "replay" in r else ""
            lines.append(f"| {prior} | {r['kid']:.3f} ± {r['kid_std']:.3f} | {each_draw(r)} | {r['fd']:.1f} | {level} | "
                         f"{r['diversity']:.2f} | {memo} | {replay} | {ms} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


MAX_FM_STEPS = 1_000_000  # the flow-matching prior's training (4000 by default, ~a minute here)
MAX_ODE_STEPS = 1000  # Euler steps of one sample (8 by default)


@user_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaedemo.priors", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="bundle folder or hf://org/repo")
    ap.add_argument("--train-data", required=True, help="the folder the model was trained on")
    ap.add_argument("--data", action="append", required=True, help="held-out folder (repeatable)")
    ap.add_argument("--samples", type=int, default=200, help="samples per prior (default 200)")
    ap.add_argument("--fm-steps", type=int, default=4000, help="training steps of the flow-matching prior (default 4000)")
    ap.add_argument("--ode-steps", type=int, default=8, help="Euler steps of a flow-matching sample (default 8)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the fit and the first draw of samples; draw d uses seed + d (default 0)")
    ap.add_argument("--draws", type=int, default=DEFAULT_DRAWS,
                    help=f"independent draws of samples per prior, their scores averaged (default {DEFAULT_DRAWS}, "
                         f"at most {MAX_DRAWS})")
    ap.add_argument("--temperature", type=float, action="append", default=[],
                    help="also draw the RealNVP prior at this temperature (repeatable; 1 always)")
    ap.add_argument("--typical", type=float, action="append", default=[], metavar="P",
                    help="also draw the RealNVP prior with draws below the P-th percentile of the training clips' "
                         "log p redrawn (repeatable; the demo's typicality warns below the 1st)")
    ap.add_argument("--out", help="write the markdown table here")
    ap.add_argument("--json", help="write the numbers here")
    a = ap.parse_args(argv)
    check_outputs([a.train_data, *a.data], out=a.out, json_path=a.json)  # before the work, not a traceback after it
    check_draws(a.draws)
    check_seed(a.seed)
    # a sample alone has no KID; 0 Euler steps divided by 0; above the bounds, --samples failed after the fit (in
    # Engine.sample's words, no flag named) and a billion ODE steps ran for ever
    if not (2 <= a.samples <= MAX_SOUNDS and 0 <= a.fm_steps <= MAX_FM_STEPS and 1 <= a.ode_steps <= MAX_ODE_STEPS):
        raise VaedemoError(f"--samples must be 2 to {MAX_SOUNDS}, --fm-steps 0 to {MAX_FM_STEPS} and --ode-steps 1 to "
                           f"{MAX_ODE_STEPS}, got {a.samples}, {a.fm_steps} and {a.ode_steps}.")  # fmt: skip
    if any(not 0 < t <= 3 for t in a.temperature):  # the demo's API takes up to 3 as well
        raise VaedemoError(f"--temperature must be above 0 and at most 3, got {a.temperature}.")
    if any(not 0 < p < 100 for p in a.typical):
        raise VaedemoError(f"--typical must be a percentile above 0 and below 100, got {a.typical}.")
    from .inference import Engine

    engine = Engine(a.checkpoint)
    if not engine.mode.per_clip:
        raise VaedemoError(f"{a.checkpoint} is a temporal model; the prior comparison is for one-vector-per-clip models.")
    result = compare(engine, Path(a.train_data), [Path(d) for d in a.data], a.samples, a.fm_steps, a.ode_steps, a.seed,
                     tuple(t for t in a.temperature if t != 1.0), a.draws, tuple(a.typical))  # fmt: skip
    emit_report(report(engine.bundle.name, result), result, a.out, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
