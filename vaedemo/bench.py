"""``python -m vaedemo.bench --config X [--config Y] [--checkpoint C] [--seconds 10] [--runs 5]``

``python -m vaedemo.bench --app [--checkpoint C] [--runs 7]`` measures the demo instead (see :func:`measure_app`).

For each model: parameters, GFLOPs per second of audio, encode / decode / reconstruct speed as a real-time factor
(audio seconds per wall-clock second, median of ``--runs`` runs after a warm-up), training steps per second (VAE
phase and adversarial phase, batch and clip length of the config) and peak memory. Each model is measured in a fresh
subprocess so that peak memory (max RSS) is its own. Prints a markdown table.
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


def _median_time(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(target: str, kind: str, seconds: float, runs: int, train_steps: int) -> dict:
    """Measurements of one model, in this process."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .bundle import Bundle, load
    from .config import config_from_dict, load_config
    from .inference import Engine
    from .nn.vae import AudioVAE
    from .training.module import VAEModule

    if kind == "checkpoint":
        bundle = load(target)
        engine = Engine(bundle)
        train_cfg = config_from_dict({"model": bundle.config.to_dict()}, target)
    else:
        train_cfg = load_config(target)
        torch.manual_seed(0)
        engine = Engine(Bundle(train_cfg.model, AudioVAE(train_cfg.model).eval(), {}, None, target))
    cfg = train_cfg.model
    model = engine.model
    sr, ch, clip = cfg.sample_rate, cfg.channels, cfg.clip_length
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((int(seconds * sr), ch))).astype(np.float32)
    z = engine.encode(audio, sr)

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        one = torch.from_numpy(audio[: clip if engine.mode.per_clip else sr].T.copy())[None]
        model(one, sample=False)
    per_second = one.shape[-1] / sr
    gflops = counter.get_total_flops() / 1e9 / per_second

    t_enc = _median_time(lambda: engine.encode(audio, sr), runs)
    t_dec = _median_time(lambda: engine.decode(z), runs)
    t_rec = _median_time(lambda: engine.reconstruct(audio, sr), runs)
    t_sample = _median_time(lambda: engine.sample(1, seed=0), runs)
    sample_seconds = clip / sr

    # training throughput: one real training step of each phase, outside Lightning
    module = VAEModule(train_cfg).train()
    t = train_cfg.train
    opt_g = torch.optim.Adam(module.vae.parameters(), lr=t.lr)
    opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=t.disc_lr)
    batch = 0.1 * torch.randn(t.batch_size, ch, clip)

    def step(phase: str) -> None:
        out = module.vae(batch, sample=True, freeze_encoder=phase == "adversarial" and t.freeze_encoder)
        if phase != "vae":
            opt_d.zero_grad()
            module.discriminator_loss(out).backward()
            opt_d.step()
        opt_g.zero_grad()
        module.generator_loss(out, phase, 10**9)[0].backward()
        opt_g.step()

    t_vae = _median_time(lambda: step("vae"), train_steps)
    t_adv = _median_time(lambda: step("adversarial"), train_steps)
    params = sum(p.numel() for p in model.parameters())
    return {
        "model": Path(target).stem if kind == "config" else Path(target).name,
        "mode": cfg.latent_mode,
        "params_M": params / 1e6,
        "disc_params_M": sum(p.numel() for p in module.discriminator.parameters()) / 1e6,
        "gflops_per_s": gflops,
        "encode_rtf": seconds / t_enc,
        "decode_rtf": (len(z) * clip / sr if engine.mode.per_clip else seconds) / t_dec,
        "reconstruct_rtf": seconds / t_rec,
        "sample_ms": 1000 * t_sample,
        "sample_rtf": sample_seconds / t_sample,
        "train_vae_steps_s": 1 / t_vae,
        "train_adv_steps_s": 1 / t_adv,
        "batch": f"{t.batch_size}x{clip}",
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
    ("sample_ms", "1 prior sample (ms)", "{:.1f}"),
    ("train_vae_steps_s", "train steps/s VAE", "{:.2f}"),
    ("train_adv_steps_s", "train steps/s adv.", "{:.2f}"),
    ("batch", "batch", "{}"),
    ("peak_mem_MB", "peak RSS (MB)", "{:.0f}"),
]


def table(rows: list[dict]) -> str:
    head = "| " + " | ".join(c[1] for c in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(fmt.format(r[k]) for k, _, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def _app_bundle(checkpoints: list[str], tmp: Path) -> str:
    """The bundle the app would serve by default; else an untrained one of configs/single_flow_mono.yaml."""
    from .app_logic import discover
    from .errors import VaedemoError

    try:
        specs, default = discover("checkpoints", checkpoints)
        return next(s.source for s in specs if s.label == default)
    except VaedemoError:
        import torch

        from .bundle import save_bundle
        from .config import load_config
        from .nn.vae import AudioVAE

        torch.manual_seed(0)
        cfg = load_config("configs/single_flow_mono.yaml")
        meta = {"name": cfg.name, "data": "untrained (benchmark)"}
        return str(save_bundle(AudioVAE(cfg.model), tmp / cfg.name, meta, cfg.to_dict()))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for the app started by the benchmark and the e2e tests)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cold_start(bundle: str) -> float:
    """Seconds from starting ``python app.py`` to the first served page."""
    import urllib.request

    port = free_port()
    app = Path(__file__).resolve().parents[1] / "app.py"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(app), "--checkpoint", bundle, "--host", "127.0.0.1", "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while time.perf_counter() - t0 < 120:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with status {proc.returncode} before serving a page")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("app.py served no page within 120 s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure_app(checkpoints: list[str], runs: int, cold_runs: int) -> list[tuple[str, str, str]]:
    """The demo's handlers called directly (median of ``runs`` after a warm-up) and the cold start of app.py
    (median of ``cold_runs``): rows of (what, value, target)."""
    import tempfile

    import soundfile as sf

    from .app_logic import Demo, Models, discover
    from .metrics import reconstruction_metrics

    examples = Path(__file__).resolve().parents[1] / "examples"
    ms = lambda fn: f"{1000 * _median_time(fn, runs):.0f} ms"  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="vaedemo-bench-") as tmp:
        bundle = _app_bundle(checkpoints, Path(tmp))
        specs, label = discover(Path(tmp) / "none", [bundle])
        demo = Demo(Models(specs, label))
        eng = demo.models.get(label)
        loop, sr = sf.read(examples / "drum_loop.flac", dtype="float32")
        x = np.resize(loop, 5 * sr)[:, None]
        upload = Path(tmp) / "upload.wav"
        sf.write(upload, x, sr, subtype="PCM_16")  # a 5 s, 16-bit upload

        def reconstruct():
            _, fig_in, fig_out, _, _ = demo.reconstruct(str(upload), label)
            return len(fig_in.to_json()) + len(fig_out.to_json())  # the server serialises the figures too

        kick, snare = str(examples / "timgm6mb-standard_kick.flac"), str(examples / "timgm6mb-standard_snare.flac")
        rows = [
            ("model", f"{label} ({eng.mode.name}, {eng.sample_rate} Hz)", ""),
            ("reconstruct a 5 s upload: decode, model, wav, 2 figures + JSON, metrics", ms(reconstruct), "<= 300 ms"),
            ("- of which Engine.reconstruct", ms(lambda: eng.reconstruct(x, sr)), ""),
            ("- of which reconstruction_metrics", ms(lambda: reconstruction_metrics(x, x, sr)), ""),
            ("- both figures as JSON", f"{reconstruct() / 1024:.0f} KB", ""),
            ("slider release -> new audio (latent direction)",
             ms(lambda: demo.move(4, 1.0, 0, True, label, 1.0, -0.5, 0, 0)), "<= 150 ms"),
            ("slider release -> new audio (interpolation position)",
             ms(lambda: demo.interpolate_at("sound file", kick, 0, "sound file", snare, 0, 0.3, "slerp", label)),
             "<= 150 ms"),
            ("sample 4 sounds with their figures", ms(lambda: demo.sample(4, 1.0, 0, True, label)), ""),
        ]  # fmt: skip
        colds = [_cold_start(bundle) for _ in range(cold_runs)]
        rows.append((f"cold start: python app.py to a served page ({cold_runs} runs)",
                     f"{statistics.median(colds):.1f} s", "<= 10 s"))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", default=[], help="YAML config (untrained weights)")
    parser.add_argument("--checkpoint", action="append", default=[], help="bundle folder or hf:// id")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length for encode/decode/reconstruct")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--app", action="store_true", help="benchmark the demo's handlers and cold start instead")
    parser.add_argument("--cold-runs", type=int, default=3, help="--app: cold starts of app.py to time")
    parser.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker:
        kind, target = args._worker
        print(json.dumps(measure(target, kind, args.seconds, args.runs, args.train_steps)))
        return 0
    if args.app:
        import os

        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))  # what app.py uses by default (2 requests at once)
        rows = measure_app(args.checkpoint, args.runs, args.cold_runs)
        print("| measure | median | target |\n|---|---|---|")
        print("\n".join(f"| {what} | {value} | {target} |" for what, value, target in rows))
        print(f"\n{torch.get_num_threads()} torch threads; median of {args.runs} runs after a warm-up.")
        return 0
    targets = [("config", c) for c in args.config] + [("checkpoint", c) for c in args.checkpoint]
    if not targets:
        targets = [("config", str(p)) for p in sorted(Path("configs").glob("*.yaml"))]
    rows = []
    for kind, target in targets:
        cmd = [sys.executable, "-m", "vaedemo.bench", "--_worker", kind, target, "--seconds", str(args.seconds),
               "--runs", str(args.runs), "--train-steps", str(args.train_steps)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"error: benchmarking {target} failed: {res.stderr.strip().splitlines()[-1]}", file=sys.stderr)
            return 1
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"measured {target}", file=sys.stderr)
    print(table(rows))
    print(f"\n{rows[0]['threads']} torch threads; x RT = seconds of audio per second of compute (median of "
          f"{args.runs} runs of {args.seconds:g} s after a warm-up); training steps: median of {args.train_steps}.")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
