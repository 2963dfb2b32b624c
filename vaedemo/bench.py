"""``python -m vaedemo.bench --config X [--config Y] [--checkpoint C] [--seconds 10] [--runs 5]``
``python -m vaedemo.bench --stream [--causal] --config X [--checkpoint C] [--chunk 512] [--chunks 300]``

The demo's latency (its handlers, the cold start of ``app.py``) is measured by ``python -m vaedemo.demo.bench``.

For each model: parameters, GFLOPs per second of audio, encode / decode / reconstruct speed as a real-time factor
(audio seconds per wall-clock second, median of ``--runs`` runs after a warm-up; a one-shot model reconstructs one
clip, and the shipped drum loop hit by hit), training steps per second (VAE
phase and adversarial phase, batch and clip length of the config) and peak memory. Each model is measured in a fresh
subprocess so that peak memory (max RSS) is its own. Prints a markdown table.

``--stream``: live streaming on ONE torch thread: milliseconds per chunk (median over ``--chunks`` chunks after a
warm-up of 50) and the real-time factor, for :meth:`Engine.stream` and for the streaming TorchScript export (saved and
loaded back as a host would), and each stream's latency. ``--causal`` sets ``model.causal: true`` on configs.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .audio import MAX_SECONDS_DEFAULT
from .cli import USER_ERROR, check_outputs, checked_device, user_errors, write_outputs
from .errors import VaedemoError

# --stream's bounds, checked before a model loads: --chunk 10**9 grew to 15 GB (a chunk is held whole, with every
# layer's output for it). A live chunk is a few hundred to a few thousand samples; about 3 s at 44.1 kHz is plenty.
MAX_CHUNK = 2**17  # samples
MAX_STREAMED = MAX_SECONDS_DEFAULT * 44100  # samples timed in all (--chunk x --chunks): 30 min at 44.1 kHz


def _median_time(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _load(target: str, kind: str, overrides: list[str] | None = None):
    """(Engine, training Config) of a bundle (its model with default training settings) or of a YAML config
    (untrained weights, seed 0)."""
    import torch

    from .bundle import Bundle, check_model_size, load
    from .config import config_from_dict, config_source, load_config
    from .inference import Engine
    from .nn.vae import AudioVAE

    if kind == "checkpoint":
        bundle = load(target)
        return Engine(bundle), config_from_dict({"model": bundle.config.to_dict()}, target)
    train_cfg = load_config(target, overrides)
    check_model_size(train_cfg.model, config_source(target, overrides))
    torch.manual_seed(0)
    return Engine(Bundle(train_cfg.model, AudioVAE(train_cfg.model).eval(), {}, None, target)), train_cfg


LOOP = Path(__file__).resolve().parents[1] / "examples" / "drum_loop.flac"  # a real performance: 18 hits in 4.8 s


def measure_inference(engine, seconds: float, runs: int, refine: int = 0) -> dict:
    """GFLOPs per second of audio and the real-time factors of encode / decode / reconstruct / one prior sample.

    A one-shot model (one latent per clip) reconstructs what it is for, one one-shot of its clip length; a longer
    input goes hit by hit (one whole clip decoded per detected onset), so its speed depends on how many hits the
    audio has: that is measured on the shipped drum loop (``loop_rtf``), not on noise, whose onsets are arbitrary.
    With ``refine``, also the same reconstruction from latents refined by that many steps (``refined_rtf``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sr, clip = engine.sample_rate, engine.clip_length
    audio = (0.1 * np.random.default_rng(0).standard_normal((int(seconds * sr), engine.channels))).astype(np.float32)
    z = engine.encode(audio, sr)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        one = torch.from_numpy(audio[: clip if engine.mode.per_clip else sr].T.copy())[None]
        engine.model(one, sample=False)
    rec = audio[:clip] if engine.mode.per_clip else audio
    t_enc = _median_time(lambda: engine.encode(audio, sr), runs)
    t_dec = _median_time(lambda: engine.decode(z), runs)
    t_rec = _median_time(lambda: engine.reconstruct(rec, sr), runs)
    t_sample = _median_time(lambda: engine.sample(1, seed=0), runs)
    return {
        "gflops_per_s": counter.get_total_flops() / 1e9 / (one.shape[-1] / sr),
        "encode_rtf": seconds / t_enc,
        "decode_rtf": (len(z) * clip / sr if engine.mode.per_clip else seconds) / t_dec,
        "reconstruct_rtf": len(rec) / sr / t_rec,
        "refined_rtf": len(rec) / sr / _median_time(lambda: engine.reconstruct(rec, sr, refine=refine), runs)
        if refine else None,
        "loop_rtf": _loop_rtf(engine, runs) if engine.mode.per_clip else None,
        "sample_ms": 1000 * t_sample,
        "sample_rtf": clip / sr / t_sample,
    }


def _loop_rtf(engine, runs: int) -> float:
    import soundfile as sf

    loop, sr = sf.read(LOOP, dtype="float32", always_2d=True)
    return len(loop) / sr / _median_time(lambda: engine.reconstruct(loop, sr), runs)


def _median_chunk_ms(process, chunk, chunks: int, warmup: int = 50) -> float:
    for _ in range(warmup):
        process(chunk)
    times = []
    for _ in range(chunks):
        t0 = time.perf_counter()
        process(chunk)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def measure_stream(engine, chunk: int, chunks: int) -> dict:
    """Median ms per ``chunk``-sample chunk (one torch thread) of Engine.stream and of the streaming TorchScript
    export, as real-time factors too (a chunk's duration over its compute time)."""
    import io

    import torch

    from .export import HostModule
    from .nn.streaming import script

    torch.set_num_threads(1)
    audio = (0.1 * np.random.default_rng(0).standard_normal((chunk, engine.channels))).astype(np.float32)
    stream = engine.stream()
    engine_ms = _median_chunk_ms(stream.process, audio, chunks)
    buffer = io.BytesIO()
    torch.jit.save(script(HostModule(engine.model, streaming=True)), buffer)
    buffer.seek(0)
    host = torch.jit.load(buffer)
    with torch.inference_mode():
        host_ms = _median_chunk_ms(host, torch.from_numpy(audio.T.copy())[None], chunks)
    seconds = chunk / engine.sample_rate
    return {"chunk": chunk, "latency_ms": 1000 * stream.latency / engine.sample_rate,
            "stream_ms": engine_ms, "stream_rtf": seconds / (engine_ms / 1000),
            "script_ms": host_ms, "script_rtf": seconds / (host_ms / 1000)}  # fmt: skip


STREAM_COLUMNS = [
    ("model", "model", "{}"),
    ("causal", "causal", "{}"),
    ("chunk", "chunk (samples)", "{}"),
    ("latency_ms", "latency (ms)", "{:.1f}"),
    ("stream_ms", "Engine.stream ms / chunk", "{:.3f}"),
    ("stream_rtf", "Engine.stream x RT", "{:.1f}"),
    ("script_ms", "TorchScript ms / chunk", "{:.3f}"),
    ("script_rtf", "TorchScript x RT", "{:.1f}"),
]


def main_stream(args) -> int:
    """One row per model: streaming speed on one thread (see the module doc)."""
    targets = [("config", c) for c in args.config] + [("checkpoint", c) for c in args.checkpoint]
    rows = []
    for kind, target in targets or [("config", "configs/drums_temporal.yaml")]:
        engine, _ = _load(target, kind, ["model.causal=true"] if args.causal and kind == "config" else None)
        row = {"model": Path(target).stem if kind == "config" else Path(target).name, "causal": engine.config.causal,
               **measure_stream(engine, args.chunk, args.chunks)}  # fmt: skip
        rows.append(row)
        print(f"measured {target}", file=sys.stderr)
    head = "| " + " | ".join(c[1] for c in STREAM_COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in STREAM_COLUMNS) + "|"
    body = ["| " + " | ".join(fmt.format(r[k]) for k, _, fmt in STREAM_COLUMNS) + " |" for r in rows]
    print("\n".join([head, sep, *body]))
    print(f"\n1 torch thread; median of {args.chunks} chunks after 50 of warm-up; x RT = a chunk's duration over its "
          "compute time; latency: how far the output lags the input.")
    if args.json:
        write_outputs({args.json: json.dumps(rows, indent=2)})  # (a full disk: one sentence, nothing half-written)
    return 0


def measure_training_steps(train_cfg, steps: int) -> dict:
    """Median time of one real optimiser step of the VAE and of the adversarial phase (discriminator + generator
    step), outside Lightning, on a random batch of the config's size."""
    import torch

    from .training.module import VAEModule

    module = VAEModule(train_cfg).train()
    t = train_cfg.train
    opt_g = torch.optim.Adam(module.vae.parameters(), lr=t.lr, fused=True)  # as training, where no GradScaler is
    opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=t.disc_lr, fused=True)
    batch = 0.1 * torch.randn(t.batch_size, train_cfg.model.channels, train_cfg.model.clip_length)

    def step(phase: str) -> None:
        out = module.vae(batch, sample=True, freeze_encoder=phase == "adversarial" and t.freeze_encoder)
        opt_g.zero_grad()
        if phase == "vae":
            module.generator_loss(out, phase, 10**9)[0].backward()
        else:  # as VAEModule.training_step: one discriminator pass, each loss into its own player
            opt_d.zero_grad()
            loss_d, loss_g, _ = module.adversarial_losses(out, 10**9)
            loss_g.backward(inputs=[p for p in module.vae.parameters() if p.requires_grad], retain_graph=True)
            loss_d.backward(inputs=list(module.discriminator.parameters()))
            opt_d.step()
        opt_g.step()

    return {
        "train_vae_steps_s": 1 / _median_time(lambda: step("vae"), steps),
        "train_adv_steps_s": 1 / _median_time(lambda: step("adversarial"), steps),
        "disc_params_M": sum(p.numel() for p in module.discriminator.parameters()) / 1e6,
        "batch": f"{t.batch_size}x{train_cfg.model.clip_length}",
    }


def measure(target: str, kind: str, seconds: float, runs: int, train_steps: int, refine: int = 0) -> dict:
    """Measurements of one model, in this process."""
    import torch

    engine, train_cfg = _load(target, kind)
    return {
        "model": Path(target).stem if kind == "config" else Path(target).name,
        "mode": engine.mode.name,
        "params_M": sum(p.numel() for p in engine.model.parameters()) / 1e6,
        **measure_inference(engine, seconds, runs, refine),
        **(measure_training_steps(train_cfg, train_steps) if train_steps else {}),  # (--train-steps 0: inference alone)
        "peak_mem_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


COLUMNS = [
    ("model", "model", "{}"),
    ("mode", "latent", "{}"),
    ("params_M", "params (M)", "{:.2f}"),
    ("gflops_per_s", "GFLOPs / s audio", "{:.2f}"),
    ("encode_rtf", "encode x RT", "{:.0f}"),
    ("decode_rtf", "decode x RT", "{:.0f}"),
    ("reconstruct_rtf", "reconstruct x RT", "{:.0f}"),
    ("refined_rtf", "refined x RT", "{:.1f}"),
    ("loop_rtf", "drum loop x RT", "{:.0f}"),
    ("sample_ms", "1 prior sample (ms)", "{:.1f}"),
    ("train_vae_steps_s", "train steps/s VAE", "{:.2f}"),
    ("train_adv_steps_s", "train steps/s adv.", "{:.2f}"),
    ("batch", "batch", "{}"),
    ("peak_mem_MB", "peak RSS (MB)", "{:.0f}"),
]


def table(rows: list[dict]) -> str:
    """The rows as markdown; a column no row has (refined without --refine, the loop for temporal models) is left out."""
    columns = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    head = "| " + " | ".join(c[1] for c in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join("" if r.get(k) is None else fmt.format(r[k]) for k, _, fmt in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.bench", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--config", action="append", default=[], help="YAML config (untrained weights)")
    add("--checkpoint", action="append", default=[], help="bundle folder or hf:// id")
    add("--seconds", type=float, default=10.0,
        help=f"audio length for encode/decode/reconstruct (at most {MAX_SECONDS_DEFAULT})")
    add("--runs", type=int, default=5)
    add("--train-steps", type=int, default=3, help="training steps timed per phase (0: none)")
    add("--refine", type=int, default=0, help="also time reconstruction with this many steps of latent refinement")
    add("--json", help="also write the rows as JSON here")
    add("--train", action="store_true", help="time the real training CLI instead (vaedemo.bench_train)")
    add("--device", default="cpu", help="--train: cpu or cuda")
    add("--precision", action="append", default=[], help="--train: 32-true, bf16-mixed, 16-mixed (repeatable)")
    add("--vae-steps", type=int, default=30, help="--train: VAE-phase steps timed")
    add("--adv-steps", type=int, default=10, help="--train: adversarial steps timed")
    add("--batch", type=int, default=None, help="--train: batch size (default: the config's)")
    add("--workers", type=int, default=None, help="--train: data loader workers (default: the config's)")
    add("--threads", type=int, default=None, help="--train: OMP_NUM_THREADS of the training process")
    add("--source", action="append", default=[], help="--train: checkout(s) whose CLI to time (default: this one)")
    add("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
        help="--train: a config override for every timed run (repeatable)")
    add("--stream", action="store_true", help="time live streaming instead (one thread, ms per chunk)")
    add("--causal", action="store_true", help="--stream: set model.causal=true on --config models")
    add("--chunk", type=int, default=512, help=f"--stream: samples per chunk (a multiple of the hop, at most {MAX_CHUNK})")
    add("--chunks", type=int, default=300,
        help=f"--stream: chunks timed (after 50 of warm-up; --chunk x --chunks at most {MAX_STREAMED})")
    add("--_worker", nargs=2, help=argparse.SUPPRESS)
    return parser


def main_train(args) -> int:
    """Time the training CLI for every (source, config, precision). A setting refused, here before any training or by
    the trainer, is one sentence (exit 2); any other failure raises (exit 1)."""
    from .bench_train import check_config, measure_cli
    from .bench_train import table as train_table

    checked_device(args.device)
    check_train_counts(args)
    configs = args.config or ["configs/drums_single_flow.yaml", "configs/drums_temporal.yaml"]
    sources = [Path(s) for s in args.source] or [None]
    for source in sources:
        for config in configs:
            check_config(config, source)
    rows = []
    for source in sources:
        for config in configs:
            for precision in args.precision or ["32-true"]:
                for _ in range(args.runs):
                    row = measure_cli(config, vae=args.vae_steps, adversarial=args.adv_steps, device=args.device,
                                      precision=precision, batch=args.batch, workers=args.workers,
                                      threads=args.threads, source=source, overrides=args.overrides)  # fmt: skip
                    row["config"] = f"{row['config']} ({source})" if source else row["config"]
                    rows.append(row)
                    print(f"measured {row['config']} {precision}: {row['vae_steps_s']:.2f} / {row['adv_steps_s']:.2f} "
                          "steps/s", file=sys.stderr)  # fmt: skip
    print(train_table(_medians(rows)))
    if args.json:
        write_outputs({args.json: json.dumps(rows, indent=2)})  # (a full disk: one sentence, nothing half-written)
    return 0


def check_train_counts(args) -> None:
    """--train's counts, before any training: --adv-steps 0 trained, then found no adversarial phase to time, and the
    trainer refused --batch -1 only after the data was made (a setting only it knows, --precision, is its sentence)."""
    if args.vae_steps < 1 or args.adv_steps < 1:
        raise VaedemoError(f"--vae-steps and --adv-steps must be at least 1 (each phase is timed), got "
                           f"{args.vae_steps} and {args.adv_steps}.")  # fmt: skip
    for flag, value, least in (("--batch", args.batch, 1), ("--workers", args.workers, 0), ("--threads", args.threads, 1)):
        if value is not None and value < least:
            raise VaedemoError(f"{flag} must be at least {least}, got {value}.")


def _medians(rows: list[dict]) -> list[dict]:
    """One row per (config, device, precision): the median of every number over the repeated runs."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["config"], r["device"], r["precision"]), []).append(r)
    out = []
    for runs in groups.values():
        row = dict(runs[0])
        for k, v in row.items():
            if isinstance(v, float):
                values = [r[k] for r in runs if r[k] is not None]
                row[k] = statistics.median(values) if values else None
        out.append(row)
    return out


def check_arguments(args) -> None:
    """Counts and lengths in one sentence each, before any model loads: --runs 0 or --chunks 0 was statistics'
    "no median for empty data", --chunk 0 a table of 0.0 x real time, a --json folder a traceback after the whole
    benchmark."""
    from .inference import check_refine_option

    if args.runs < 1 or args.chunks < 1 or args.chunk < 1 or args.train_steps < 0:
        raise VaedemoError(f"--runs, --chunks and --chunk must be at least 1 and --train-steps not negative, got "
                           f"{args.runs}, {args.chunks}, {args.chunk} and {args.train_steps}.")  # fmt: skip
    if not 0 < args.seconds <= MAX_SECONDS_DEFAULT:  # longer is refused by the engine, after GBs of noise are drawn
        raise VaedemoError(f"--seconds must be above 0 and at most {MAX_SECONDS_DEFAULT} (the longest audio a model "
                           f"takes), got {args.seconds}.")  # fmt: skip
    check_stream_lengths(args.chunk, args.chunks)
    check_refine_option(args.refine)
    check_outputs(json_path=args.json)


def check_stream_lengths(chunk: int, chunks: int) -> None:
    """Refuse a --chunk or a --chunk x --chunks that no live stream uses and this machine may not hold or finish."""
    if chunk > MAX_CHUNK:
        raise VaedemoError(f"--chunk must be at most {MAX_CHUNK} samples (about 3 s at 44.1 kHz), got {chunk}.")
    if chunk * chunks > MAX_STREAMED:
        raise VaedemoError(f"--chunk times --chunks must be at most {MAX_STREAMED} samples (30 min at 44.1 kHz), "
                           f"got {chunk} x {chunks}.")  # fmt: skip


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    check_arguments(args)
    if args._worker:
        kind, target = args._worker
        print(json.dumps(measure(target, kind, args.seconds, args.runs, args.train_steps, args.refine)))
        return 0
    if args.train:
        return main_train(args)
    if args.stream:
        return main_stream(args)
    targets = [("config", c) for c in args.config] + [("checkpoint", c) for c in args.checkpoint]
    if not targets:
        targets = [("config", str(p)) for p in sorted(Path("configs").glob("*.yaml"))]
    if not targets:  # run outside the repository: rows[0] below was an IndexError
        raise VaedemoError("no --config or --checkpoint given and no configs/*.yaml here to measure.")
    rows = []
    for kind, target in targets:
        cmd = [sys.executable, "-m", "vaedemo.bench", "--_worker", kind, target, "--seconds", str(args.seconds),
               "--runs", str(args.runs), "--train-steps", str(args.train_steps), "--refine", str(args.refine)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode == USER_ERROR and res.stderr.strip():  # a bad bundle or config: the worker's sentence,
            raise VaedemoError(res.stderr.strip().splitlines()[-1].removeprefix("error: "))  # not "failed: error: ..."
        if res.returncode != 0:
            why = (res.stderr.strip().splitlines() or [f"its process ended with status {res.returncode}"])[-1]
            print(f"error: benchmarking {target} failed: {why}", file=sys.stderr)  # (killed: nothing on stderr)
            return 1
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"measured {target}", file=sys.stderr)
    print(table(rows))
    print(f"\n{rows[0]['threads']} torch threads; x RT = seconds of audio per second of compute (median of "
          f"{args.runs} runs of {args.seconds:g} s after a warm-up; a one-shot model reconstructs one clip, and the "
          f"drum loop hit by hit)" + (f"; training steps: median of {args.train_steps}." if args.train_steps else "."))
    if args.json:
        write_outputs({args.json: json.dumps(rows, indent=2)})  # (a full disk: one sentence, nothing half-written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
