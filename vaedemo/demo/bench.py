"""``python -m vaedemo.demo.bench [--checkpoint C] [--runs 5] [--cold-runs 3]``: the demo's latency.

The handlers of the tabs called directly, as the server calls them (median of ``--runs`` runs after a warm-up), and
the cold start of ``python app.py`` to its first served page (median of ``--cold-runs``). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vaedemo.bundle import save_bundle
from vaedemo.config import load_config
from vaedemo.errors import VaedemoError
from vaedemo.metrics import reconstruction_metrics
from vaedemo.nn.vae import AudioVAE

from .common import EXAMPLES, ROOT
from .interpolate import interpolate, interpolate_at
from .models import Models, discover
from .reconstruct import reconstruct
from .sample import move, sample
from .search import REFINE_STEPS
from .state import DemoState


def _median_ms(fn, runs: int) -> str:
    """Median wall-clock time of ``runs`` calls after a warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return f"{1000 * statistics.median(times):.0f} ms"


def _app_bundle(checkpoints: list[str], tmp: Path) -> str:
    """The bundle the app would serve by default; else an untrained one of configs/single_flow_mono.yaml."""
    try:
        specs, default = discover("checkpoints", checkpoints)
        return next(s.source for s in specs if s.label == default)
    except VaedemoError:
        torch.manual_seed(0)
        cfg = load_config("configs/single_flow_mono.yaml")
        meta = {"name": cfg.name, "data": "untrained (benchmark)"}
        return str(save_bundle(AudioVAE(cfg.model), tmp / cfg.name, meta, cfg.to_dict()))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for the app started by the benchmark and the e2e tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cold_start(bundle: str) -> float:
    """Seconds from starting ``python app.py`` to the first served page."""
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--checkpoint", bundle, "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
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


def _upload(tmp: Path) -> tuple[Path, np.ndarray, int]:
    """A 5 s, 16-bit upload of the example drum loop: (its file, its samples, its rate)."""
    loop, sr = sf.read(EXAMPLES / "drum_loop.flac", dtype="float32")
    x = np.resize(loop, 5 * sr)[:, None]
    sf.write(tmp / "upload.wav", x, sr, subtype="PCM_16")
    return tmp / "upload.wav", x, sr


def _handler_rows(state: DemoState, label: str, upload: Path, x: np.ndarray, sr: int, runs: int) -> list[tuple]:
    """Rows of (what, median, target) for the handlers that users wait for."""
    eng = state.models.get(label)

    def rec():
        _, fig_in, fig_out, _, _ = reconstruct(state, str(upload), label)
        return len(fig_in.to_json()) + len(fig_out.to_json())  # the server serialises the figures too

    kick, snare = str(EXAMPLES / "timgm6mb-standard_kick.flac"), str(EXAMPLES / "timgm6mb-standard_snare.flac")
    return [
        ("model", f"{label} ({eng.mode.name}, {eng.sample_rate} Hz)", ""),
        ("reconstruct a 5 s upload: decode, model, wav, 2 figures + JSON, metrics", _median_ms(rec, runs), "<= 300 ms"),
        ("- of which Engine.reconstruct", _median_ms(lambda: eng.reconstruct(x, sr), runs), ""),
        ("- of which reconstruction_metrics", _median_ms(lambda: reconstruction_metrics(x, x, sr), runs), ""),
        ("- both figures as JSON", f"{rec() / 1024:.0f} KB", ""),
        (f"reconstruct a one-shot with its latent searched ({REFINE_STEPS} steps)",
         _median_ms(lambda: reconstruct(state, snare, label, refine=True), runs), ""),
        ("slider release -> new audio (latent direction)",
         _median_ms(lambda: move(state, 4, 1.0, 0, True, label, 1.0, -0.5, 0, 0), runs), "<= 150 ms"),
        ("slider release -> new audio (interpolation position)",
         _median_ms(lambda: interpolate_at(state, "sound file", kick, 0, "sound file", snare, 0, 0.3, "slerp", label),
                    runs), "<= 150 ms"),
        ("sample 4 sounds with their figures", _median_ms(lambda: sample(state, 4, 1.0, 0, True, label), runs), ""),
        (f"render a 5-step path from searched latents of kick and snare ({REFINE_STEPS} steps each, not cached)",
         _median_ms(lambda: _uncached_searched_path(state, kick, snare, label), runs), ""),
    ]  # fmt: skip


def _uncached_searched_path(state: DemoState, a: str, b: str, label: str) -> None:
    state.latents.clear()  # the tab caches its sources' latents for the slider: measure the first render
    interpolate(state, "sound file", a, 0, "sound file", b, 0, 5, "slerp", label, refine=True)


def measure_app(checkpoints: list[str], runs: int, cold_runs: int) -> list[tuple[str, str, str]]:
    """The demo's handlers called directly (median of ``runs`` after a warm-up) and the cold start of app.py
    (median of ``cold_runs``): rows of (what, value, target)."""
    with tempfile.TemporaryDirectory(prefix="vaedemo-bench-") as tmp:
        bundle = _app_bundle(checkpoints, Path(tmp))
        specs, label = discover(Path(tmp) / "none", [bundle])
        state = DemoState(Models(specs, label))
        rows = _handler_rows(state, label, *_upload(Path(tmp)), runs)
        if cold_runs:  # (--cold-runs 0: the handlers alone)
            colds = [_cold_start(bundle) for _ in range(cold_runs)]
            rows.append((f"cold start: python app.py to a served page ({cold_runs} runs)",
                         f"{statistics.median(colds):.1f} s", "<= 10 s"))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.demo.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="bundle folder or hf:// id (default: the app's default model)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=5, help="timed runs per handler, after a warm-up")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold starts of app.py to time (0: none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))  # what app.py uses by default (2 requests at once)
    rows = measure_app(args.checkpoint, args.runs, args.cold_runs)
    print("| measure | median | target |\n|---|---|---|")
    print("\n".join(f"| {what} | {value} | {target} |" for what, value, target in rows))
    print(f"\n{torch.get_num_threads()} torch threads; median of {args.runs} runs after a warm-up.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
