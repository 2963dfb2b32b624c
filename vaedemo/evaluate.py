"""``python -m vaedemo.evaluate --checkpoint C --data DIR [--data DIR2 ...] [--out report.md] [--update-card]``

Evaluates a bundle on folders of audio clips (each file cut or padded to ``--seconds``):

- reconstruction on held-out clips — log-mel L1, multi-resolution STFT distance, spectral convergence, SI-SDR, and
  two diagnostics: the level difference (log-mel L1 favours quiet reconstructions) and the buzz at the model's frame
  rate — with Opus at 6/12/24 kbps (opusenc/opusdec, when installed) on the same clips as baselines;
- generation: KID and Frechet distance over handcrafted clip features between prior samples and the held-out clips,
  for the flow prior and the plain Gaussian prior of the same model, with the real-vs-real value as the floor (other
  real clips of the same folder: the training split for the training folder, the files not picked otherwise) and
  the model's reconstructions of the same clips as the decoder's bound (a prior at that bound is limited by the
  decoder, not by the prior). Each prior's row is the mean over ``--draws`` draws of samples (seeds ``--seed`` + 0,
  1, ...: another ``--seed`` shares draws with this one unless it is ``--draws`` or more apart), each draw's KID kept.

When DIR is the bundle's training folder only its validation split is used (the same hash split as training);
any other folder (another soundfont, say) is used whole, up to ``--max-clips`` files spread over it. ``--update-card``
stores the results in the bundle (``config.json`` meta and the README model card), so the card's numbers are the
command's output.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from .card import report_markdown
from .cli import check_outputs, check_seed, emit_report, user_errors
from .config import DataConfig
from .errors import AudioError, VaedemoError
from .hub import refuse_hub_id_for_writing

RECON_KEYS = ("log_mel_l1", "audible_log_mel_l1", "multi_resolution_stft", "spectral_convergence", "si_sdr", "level_db",
              "hop_buzz_db")
OPUS_BITRATES = (6, 12, 24)
# the held-out clips one evaluation holds (values, all clips together; their reconstructions as many again): 512 MiB
# as float32, 200 clips of 15 s mono. A long --seconds zero-pads every clip to it, so without a bound a typo (3600)
# allocated tens of GiB before failing with a traceback.
MAX_EVALUATED_VALUES = 128 * 1024 * 1024
# A clip's metrics and features hold its spectra whole, about 5 MB a second of mono audio at 44.1 kHz (two clips of
# 240 s: 2.2 GB): within the bound above, --seconds 1500 would have taken about 12 GB. A clip holds at most a minute of
# mono at 44.1 kHz (30 s of stereo).
MAX_CLIP_VALUES = 60 * 44100
# draws of prior samples averaged for each prior's row: one draw's KID moves from seed to seed (see scores_over_draws)
DEFAULT_DRAWS = 5


def held_out_files(data: Path, engine) -> tuple[list[Path], list[Path], str]:
    """(evaluation files, other files of the folder, description): the val split for the training folder."""
    from .data.dataset import scan_audio, split_files

    files = scan_audio(data)
    if not files:
        raise VaedemoError(f"{data} holds no audio files to evaluate on.")
    trained = engine.bundle.training.get("data") or {}
    if not isinstance(trained, dict):
        raise VaedemoError(f"{engine.bundle.path}'s training config has a data section that is not a mapping, so which "
                           "files it trained on is unknown.")  # fmt: skip
    d = {**dataclasses.asdict(DataConfig()), **trained}  # how it was trained
    try:
        if is_training_folder(data, Path(d["root"])):
            rels = [f.relative_to(data).as_posix() for f in files]
            train, val = split_files(rels, d["val_fraction"], d["split_seed"])
            return [data / r for r in val], [data / r for r in train], f"{data} (validation split: {len(val)} files)"
    except (TypeError, ValueError):  # a bundle from elsewhere may say anything there
        raise VaedemoError(f"{engine.bundle.path}'s training config has a data section this vaedemo cannot read "
                           "(data.root, data.val_fraction, data.split_seed), so which files it trained on is "
                           "unknown.") from None  # fmt: skip
    return files, [], f"{data} (all {len(files)} files, not seen in training)"


def is_training_folder(data: Path, root: Path) -> bool:
    """Whether ``data`` is the folder a bundle's training read, its ``data.root`` as the training command gave it: a
    relative root of two parts or more (``data/drums_fluidr3``, from the repository) is the folder of that path from
    here, or any folder whose path ends with it (the same folder named from elsewhere: its training clips are not held
    out). A one-part root (``drums``) is too common a name to match anywhere but here."""
    if root.resolve() == data.resolve():
        return True
    parts = root.parts
    if root.is_absolute() or len(parts) < 2:
        return False
    return any(p.parts[-len(parts) :] == parts for p in (data.absolute(), data.resolve()))


def spread(files: list[Path], limit: int) -> list[Path]:
    """At most ``limit`` files evenly spread over the sorted list: every kit / instrument folder is represented."""
    if len(files) <= limit:
        return files
    return [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]


def evaluation_sets(data: Path, engine, limit: int) -> tuple[list[Path], list[Path], str]:
    """(evaluation files, floor files, description). The floor's files are real clips that the evaluation clips are
    compared with as if they were samples: the training split for the training folder; for any other folder, its
    files that were not picked for the evaluation (disjoint, same soundfont), so every folder has a floor."""
    files, others, described = held_out_files(data, engine)
    picked = spread(files, limit)
    if not others and len(files) - len(picked) >= 2:  # one file left over is no set to compare with: no floor
        chosen = set(picked)
        others = [f for f in files if f not in chosen]
        described = f"{data} ({len(picked)} of {len(files)} files, not seen in training; the others are the floor's)"
    return picked, others, described


def load_named_clips(files: list[Path], sr: int, length: int, channels: int, limit: int) -> list[tuple[Path, np.ndarray]]:
    """(file, its first ``length`` samples, zero-padded to that) for at most ``limit`` files spread over the list; a
    file that cannot be read is skipped with a note."""
    from .audio import load_audio
    from .data.dataset import SILENCE_PEAK

    clips = []
    for f in spread(files, limit):
        try:
            x, _ = load_audio(f, sr, channels)
        except AudioError as e:
            print(f"skipping {f}: {e}", file=sys.stderr)
            continue
        x = x[:length]
        if not float(np.abs(x).max(initial=0.0)) > SILENCE_PEAK:  # as training skips it: its metrics are of nothing
            print(f"skipping {f}: silent (no sample above -80 dBFS in its first {length / sr:.2f} s).", file=sys.stderr)
            continue
        clips.append((f, np.pad(x, ((0, length - len(x)), (0, 0)))))
    return clips


def load_clips(files: list[Path], sr: int, length: int, channels: int, limit: int) -> list[np.ndarray]:
    return [x for _, x in load_named_clips(files, sr, length, channels, limit)]


def _codec(cmd: list[str]) -> None:
    """Run opusenc or opusdec; what it prints is shown only where it fails (opusenc names every chunk of a float WAV
    it skips, "fact" and "PEAK", even with --quiet: two lines a clip, thousands in an evaluation)."""
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode:
        raise VaedemoError(f"{cmd[0]} failed (exit {done.returncode}): {done.stdout.strip()[-500:]}")


def opus_round_trip(x: np.ndarray, sr: int, kbps: int, tmp: Path) -> np.ndarray:
    from .audio import load_audio, save_audio

    wav, opus, out = tmp / "in.wav", tmp / "x.opus", tmp / "out.wav"
    save_audio(wav, x, sr, subtype="FLOAT")
    _codec(["opusenc", "--quiet", "--bitrate", str(kbps), str(wav), str(opus)])
    _codec(["opusdec", "--quiet", "--rate", str(sr), "--float", str(opus), str(out)])
    y, _ = load_audio(out, sr, x.shape[1])
    y = y[: len(x)]
    return np.pad(y, ((0, len(x) - len(y)), (0, 0)))


def _pair_metrics(ref: np.ndarray, est: np.ndarray, sr: int, hop: int) -> dict[str, float]:
    from .metrics import hop_buzz_db, hop_buzz_min_samples, level_difference_db, reconstruction_metrics

    row = reconstruction_metrics(ref, est, sr) | {"level_db": level_difference_db(ref, est)}
    if len(ref) >= hop_buzz_min_samples(hop):
        row["hop_buzz_db"] = hop_buzz_db(ref, est, sr, hop)
    return row


def _mean_metrics(pairs, hop: int) -> dict[str, float]:
    """Each metric's mean over (reference, estimate, sample rate) pairs; the buzz is measured at the model's hop
    (for an Opus row too, whose value is then the baseline). Clips too short for the buzz leave it out (the report
    shows a dash): a NaN there was written into --json and the bundle's config.json, which JSON readers refuse."""
    rows = [_pair_metrics(ref, est, sr, hop) for ref, est, sr in pairs]
    return {k: float(np.mean([r[k] for r in rows])) for k in RECON_KEYS if all(k in r for r in rows)}


def evaluate_folder(
    engine, data: Path, seconds: float, max_clips: int, samples: int, opus: bool, seed: int = 0, refine: int = 0,
    draws: int = DEFAULT_DRAWS,
) -> dict:
    from .metrics import clip_features, frechet_distance, kid

    check_draws(draws)
    sr, ch = engine.sample_rate, engine.channels
    length = int(round(seconds * sr))
    files, others, described = evaluation_sets(data, engine, max_clips)
    clips = load_clips(files, sr, length, ch, max_clips)
    if len(clips) < 2:
        raise VaedemoError(f"{data} gave {len(clips)} usable clips; the evaluation needs at least 2.")
    t0 = time.perf_counter()
    recon = [engine.reconstruct(x, sr) for x in clips]
    seconds_recon = time.perf_counter() - t0
    result: dict = {"data": described, "clips": len(clips), "seconds": seconds,
                    "reconstruction": {"model": _mean_metrics(((x, y, sr) for x, y in zip(clips, recon)), engine.hop)},
                    "reconstruct_x_realtime": len(clips) * seconds / seconds_recon}
    if refine:  # analysis by synthesis beside the one-pass encoder (vaedemo.refine); the decoder bound stays one-pass
        t0 = time.perf_counter()
        refined = [engine.reconstruct(x, sr, refine=refine) for x in clips]
        result["reconstruct_x_realtime_refined"] = len(clips) * seconds / (time.perf_counter() - t0)
        pairs = ((x, y, sr) for x, y in zip(clips, refined))
        result["reconstruction"][f"model, refined ({refine} steps)"] = _mean_metrics(pairs, engine.hop)
    if opus and shutil.which("opusenc") and shutil.which("opusdec"):
        with tempfile.TemporaryDirectory() as tmp:
            for kbps in OPUS_BITRATES:
                pairs = ((x, opus_round_trip(x, sr, kbps, Path(tmp)), sr) for x in clips)
                result["reconstruction"][f"opus {kbps} kbps"] = _mean_metrics(pairs, engine.hop)

    # generation: prior samples vs held-out clips; floor: other real clips (of the same folder) vs the same clips
    n = min(samples, len(clips)) if samples else len(clips)
    real = clip_features(clips, sr)
    gen: dict = {}
    floor_clips = load_clips(others, sr, length, ch, n) if others else []
    if len(floor_clips) < 2:  # KID and FD need two clips a set: one other file (or one readable) makes no floor
        if others:
            print(f"no real-vs-real floor for {data}: {len(floor_clips)} other usable clip(s), it needs 2.",
                  file=sys.stderr)
        others = []
    else:
        gen["real vs real (floor)"] = _generation_scores(real, clip_features(floor_clips, sr), kid, frechet_distance)
    # the decoder's bound: its reconstructions of the very clips (paired with them); prior samples seldom beat it
    gen["reconstructions (decoder bound)"] = _generation_scores(real, clip_features(recon, sr), kid, frechet_distance,
                                                                paired=True)  # fmt: skip
    gen["reconstructions (decoder bound)"].update(peak_levels(recon))
    gen["real vs real (floor)" if others else "reconstructions (decoder bound)"]["real_peak_dbfs"] = peak_levels(clips)[
        "median_peak_dbfs"]  # the held-out clips' own level, for the samples' loudness to be read against
    priors = [("flow prior", True), ("gaussian prior", False)] if engine.has_prior_flow else [("gaussian prior", False)]
    result["prior_draws"], result["prior_seeds"] = draws, [seed + d for d in range(draws)]
    score = partial(_generation_scores, kid=kid, frechet_distance=frechet_distance)
    for name, use_flow in priors:
        features, peaks = [], []
        for d in range(draws):  # a draw at a time: only its features and peaks are kept
            audio = engine.sample(n, temperature=1.0, seed=seed + d, use_flow=use_flow, seconds=seconds)[:, :length]
            # zero-padded to the clips' length as the clips are: a one-vector model's sample is one clip whatever
            # --seconds asks, and features of 1 s against 2 s clips (half of them silence) made KID 100 times worse
            audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1]), (0, 0)))
            features.append(clip_features(list(audio), sr))
            peaks += peaks_dbfs(audio)
        gen[name] = scores_over_draws(real, features, score) | level_summary(peaks)
    result["generation"] = gen
    return result


def check_options(seconds: float, max_clips: int, samples: int, values_per_second: float) -> None:
    """The clip length and counts of an evaluation, in one sentence each (a negative count or length came out as
    numpy's traceback, a count of 1 as the metrics' after the reconstructions were done); ``values_per_second``:
    sample rate x channels, for the bound on what the clips hold."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise VaedemoError(f"--seconds must be a length above 0, got {seconds}.")
    if seconds * values_per_second > MAX_CLIP_VALUES:
        most = MAX_CLIP_VALUES / values_per_second
        raise VaedemoError(f"--seconds is at most {most:.3g} for this model (each metric holds a clip's spectra whole), "
                           f"got {seconds:g}.")  # fmt: skip
    if max_clips < 2:
        raise VaedemoError(f"--max-clips must be at least 2 (KID and FD compare sets of clips), got {max_clips}.")
    if samples != 0 and samples < 2:
        raise VaedemoError(f"--samples must be 0 (as many as clips) or at least 2, got {samples}.")
    if max_clips * round(seconds * values_per_second) > MAX_EVALUATED_VALUES:
        most = MAX_EVALUATED_VALUES / values_per_second / max_clips
        raise VaedemoError(f"{max_clips} clips of {seconds:g} s are more audio than one evaluation holds; at "
                           f"--max-clips {max_clips}, --seconds may be at most {most:.3g}.")  # fmt: skip


MAX_DRAWS = 100  # each draw decodes as many prior samples as there are clips; 10^9 draws' seeds alone filled 24 GB


def check_draws(draws: int) -> None:
    if draws < 1:
        raise VaedemoError(f"The priors need at least 1 draw of samples, got {draws}.")
    if draws > MAX_DRAWS:
        raise VaedemoError(f"--draws may be at most {MAX_DRAWS}, got {draws}.")


def peaks_dbfs(clips) -> list[float]:
    """Each clip's peak level in dBFS (silence: -200)."""
    return [20 * np.log10(max(float(np.abs(c).max()), 1e-10)) for c in clips]


def level_summary(peaks: list[float]) -> dict[str, float]:
    return {"median_peak_dbfs": float(np.median(peaks)), "min_peak_dbfs": float(np.min(peaks))}


def peak_levels(clips) -> dict[str, float]:
    """Median and lowest peak level (dBFS) of a set of clips: prior samples should sound as loud as real hits."""
    return level_summary(peaks_dbfs(clips))


def scores_over_draws(real: np.ndarray, draws: list[np.ndarray], score) -> dict:
    """The scores ``score(real, fake)`` of several independent draws of prior samples (their clip features) against
    the same clips: each number's mean over the draws, and every draw's KID with their spread over draws
    (``kid_draw_std``, ddof 1; 0 for one draw). One draw's ``kid_std`` is over subsets of that draw: it says how sure
    that draw's KID is, not where another draw's lands (drums_twostage's flow prior on TimGM6mb: 0.83 to 1.43 over
    seeds 0-4, seed 0's ± 0.20), so a target near the line read on one draw is decided by its seed."""
    rows = [score(real, fake) for fake in draws]
    out: dict = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    out["kid_draws"] = [float(r["kid"]) for r in rows]
    out["kid_draw_std"] = float(np.std(out["kid_draws"], ddof=1)) if len(rows) > 1 else 0.0
    return out


def _generation_scores(real, fake, kid, frechet_distance, paired: bool = False) -> dict[str, float]:
    # subsets of half the smaller set (1000 at most), so that the spread over subsets means something
    k, k_std = kid(real, fake, subsets=100, subset_size=max(2, min(len(real), len(fake), 2000) // 2), paired=paired)
    return {"kid": float(k), "kid_std": float(k_std), "fd": float(frechet_distance(real, fake))}


def default_seconds(engine) -> float:
    """The clips' length when none is asked for: a one-vector model's own clip (the 1 s models: 44032 samples, 0.998 s),
    whose one latent covers exactly that; 1 s for a latent time series, which takes any length. (Evaluated on 44100
    samples, a one-vector model got a second clip of the last 68 samples; its decoded near-silence against the
    reference's faded tail cost 0.056 log-mel L1 on every clip.)"""
    return engine.clip_length / engine.sample_rate if engine.mode.per_clip else 1.0


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="bundle folder or hf://org/repo")
    parser.add_argument("--data", action="append", required=True, help="folder of audio clips (repeatable)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="clip length for every metric, at most 60 for a mono 44.1 kHz model (default: a one-vector "
                        "model's own clip, 1 s otherwise)")
    parser.add_argument("--max-clips", type=int, default=200, help="clips per folder, spread over it (default 200)")
    parser.add_argument("--samples", type=int, default=0, help="prior samples a draw (default and most: as many as clips)")
    parser.add_argument("--no-opus", action="store_true", help="skip the Opus baselines")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first draw of prior samples; draw d uses seed + d (default 0)")
    parser.add_argument("--draws", type=int, default=DEFAULT_DRAWS,
                        help=f"independent draws of prior samples, their scores averaged (default {DEFAULT_DRAWS}, "
                             f"at most {MAX_DRAWS})")
    parser.add_argument("--refine", type=int, default=0,
                        help="also reconstruct from latents searched for this many steps (default 0: not)")
    parser.add_argument("--out", help="write the markdown report here")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--update-card", action="store_true", help="store the results in the bundle's card")
    args = parser.parse_args(argv)
    from .inference import Engine, check_refine_option

    if args.update_card:
        refuse_hub_id_for_writing(args.checkpoint, "--update-card")
        from .bundle import check_named_folder, check_replaceable

        check_named_folder(Path(args.checkpoint))  # before the evaluation, not after it
        check_replaceable(Path(args.checkpoint))
    check_outputs(args.data, out=args.out, json_path=args.json)  # before the work, not a traceback after it
    check_draws(args.draws)
    check_refine_option(args.refine)
    check_seed(args.seed)
    engine = Engine(args.checkpoint)
    seconds = default_seconds(engine) if args.seconds is None else args.seconds
    check_options(seconds, args.max_clips, args.samples, engine.sample_rate * engine.channels)
    results = [evaluate_folder(engine, Path(d), seconds, args.max_clips, args.samples, not args.no_opus, args.seed,
                               args.refine, args.draws) for d in args.data]  # fmt: skip
    emit_report(report_markdown(engine.bundle.name, results), results, args.out, args.json)
    if args.update_card:
        from .bundle import save_bundle

        meta = dict(engine.bundle.meta)
        meta["evaluation"] = results
        meta["evaluation_command"] = "python -m vaedemo.evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
        save_bundle(engine.model, engine.bundle.path, meta, engine.bundle.training)
        print(f"updated the card of {engine.bundle.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
