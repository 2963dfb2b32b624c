"""Training speed of the real command line: ``python -m vaedemo.bench --train [--device cuda] [--precision P ...]``.

Each measurement runs ``python -m vaedemo.train`` in a subprocess on a shipped config (its data folder when it
exists, else generated clips), with a short schedule: ``vae`` VAE-phase steps, then ``adversarial`` adversarial steps
(no discriminator warm-up, no validation). The phase lines the CLI prints are timestamped as they arrive, so
steps/s of each phase exclude start-up, data caching and the first step. While it runs, the GPU's busy percentage
is sampled with ``nvidia-smi`` when there is one. Any failure (a crash, a missing phase line) raises: a GPU check
must fail loudly. ``--source DIR`` measures another checkout's CLI with the same procedure (old commit vs new).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from .cli import USER_ERROR
from .errors import VaedemoError
from .yamlfile import read_yaml

PHASE_LINE = re.compile(r"\[vaedemo\] step (\d+): phase '(\w+)'")
STOP_LINE = re.compile(r"\[vaedemo\] stopped at step (\d+)")


class GPUSampler:
    """Samples ``nvidia-smi``'s utilisation.gpu every 200 ms in a thread; ``busy()`` is the median percentage."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        exe = shutil.which("nvidia-smi")
        while exe and not self._stop.is_set():
            res = subprocess.run([exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True)  # fmt: skip
            if res.returncode == 0 and res.stdout.strip():
                self.samples.append(float(res.stdout.split()[0]))
            self._stop.wait(0.2)

    def __enter__(self) -> GPUSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def busy(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


def synthetic_clips(folder: Path, n: int = 64, sample_rate: int = 44100) -> Path:
    """Decaying noise bursts and tones: stand-in data when a config's data folder is absent (a fresh GPU box)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(sample_rate) / sample_rate
    for i in range(n):
        hit = np.sin(2 * np.pi * rng.uniform(50, 400) * t) + rng.standard_normal(t.size) * rng.uniform(0.1, 1.0)
        sf.write(folder / f"hit{i:03d}.wav", (0.4 * hit * np.exp(-t * rng.uniform(5, 30))).astype(np.float32),
                 sample_rate, subtype="PCM_16")  # fmt: skip
    return folder


def _run_timed(cmd: list[str], cwd: Path, env: dict) -> list[tuple[float, str]]:
    """Run ``cmd`` and return its output lines with the time each arrived; raise with the tail if it fails."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter(), line.rstrip()))
    if proc.wait() == USER_ERROR and lines and lines[-1][1].startswith("error: "):
        # the trainer refused a setting (--precision bogus, --batch -1): its sentence, not a traceback around it
        raise VaedemoError(lines[-1][1].removeprefix("error: "))
    if proc.returncode != 0:
        tail = "\n".join(text for _, text in lines[-15:])
        raise RuntimeError(f"training failed (exit {proc.returncode}):\n{tail}")
    return lines


def _phase_rates(lines: list[tuple[float, str]]) -> tuple[float, float]:
    """Steps/s of each phase from the timestamps of the phase lines (the first step of the run is left out)."""
    marks = {}
    for t, text in lines:
        if m := PHASE_LINE.search(text):
            marks[m.group(2)] = (t, int(m.group(1)))
        elif m := STOP_LINE.search(text):
            marks["stop"] = (t, int(m.group(1)))
    missing = [k for k in ("vae", "adversarial", "stop") if k not in marks]
    if missing:
        raise RuntimeError(f"the training printed no '{missing[0]}' line; is this vaedemo's train CLI?")
    (t_vae, _), (t_adv, s_adv), (t_end, s_end) = marks["vae"], marks["adversarial"], marks["stop"]
    return s_adv / (t_adv - t_vae), (s_end - s_adv) / (t_end - t_adv)


def measure_cli(config: str, *, vae: int = 30, adversarial: int = 10, device: str = "cpu", precision: str = "32-true",
                batch: int | None = None, workers: int | None = None, threads: int | None = None,
                source: Path | None = None, overrides: list[str] | None = None) -> dict:  # fmt: skip
    """Steps/s of the VAE and the adversarial phase of ``python -m vaedemo.train`` on ``config`` (``overrides``:
    more ``--set KEY=VALUE`` for the training, e.g. ``train.discriminator_precision=bfloat16``)."""
    root = checkout(source)
    doc = yaml.safe_load((root / config).read_text()) or {}
    train = doc.get("train") or {}
    # the VAE phase's length was train.warmup_steps before it was renamed: use the key this checkout knows
    vae_key = "train.vae_steps" if "vae_steps" in train else "train.warmup_steps"
    with tempfile.TemporaryDirectory(prefix="vaedemo-trainbench-") as tmp:
        data_root = _data_root(doc, Path(tmp))
        sets = [f"train.run_dir={tmp}/run", f"data.root={data_root}", f"train.max_steps={vae + adversarial}",
                f"{vae_key}={vae}", "train.discriminator_warmup_len=0", "train.val_every_n_steps=100000",
                "train.checkpoint_every_n_steps=100000", f"trainer.accelerator={device}", f"trainer.precision={precision}"]
        sets += [f"train.batch_size={batch}"] * (batch is not None) + [f"train.num_workers={workers}"] * (workers is not None)
        sets += list(overrides or [])
        cmd = [sys.executable, "-m", "vaedemo.train", "--config", str(root / config)]
        cmd += [a for s in sets for a in ("--set", s)]
        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONWARNINGS": "ignore"}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        with GPUSampler() as gpu:
            lines = _run_timed(cmd, root, env)
    vae_rate, adv_rate = _phase_rates(lines)
    size = batch or int(train.get("batch_size", 8))
    label = Path(config).stem + "".join(f" {o}" for o in overrides or [])
    return {"config": label, "device": device, "precision": precision, "batch": size,
            "vae_steps_s": vae_rate, "adv_steps_s": adv_rate, "vae_clips_s": vae_rate * size,
            "adv_clips_s": adv_rate * size, "gpu_busy": gpu.busy()}  # fmt: skip


def checkout(source: Path | None) -> Path:
    """The checkout whose training CLI is timed (``--source``, default this one): configs are read relative to it."""
    return (source or Path(__file__).resolve().parents[1]).resolve()


def check_config(config: str, source: Path | None) -> None:
    """Refuse, before any training starts, a checkout that is none (its config was blamed) and a config that is not a
    file of it (a FileNotFoundError or IsADirectoryError traceback) or not a config (a YAML or AttributeError one)."""
    root = checkout(source)
    if not (root / "vaedemo" / "train.py").is_file():
        raise VaedemoError(f"--source {source} is not a vaedemo checkout (it has no vaedemo/train.py).")
    path = root / config
    where = "" if Path(config).is_absolute() else f" (read from {root})"
    if path.is_dir():
        raise VaedemoError(f"--config {config}{where} is a folder; give a YAML config file.")
    if not path.is_file():
        raise VaedemoError(f"--config {config}{where} does not exist.")
    doc = read_yaml(path, f"--config {config}{where}")
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k) or {}, dict) for k in ("data", "model", "train")):
        raise VaedemoError(f"--config {config}{where} is not a vaedemo config (a mapping of data, model, train and "
                           "trainer sections).")  # fmt: skip


def _data_root(doc: dict, tmp: Path) -> Path:
    """The config's data folder, or generated clips where it does not exist."""
    root = Path((doc.get("data") or {}).get("root", "data/drums"))
    root = root if root.is_absolute() else Path.cwd() / root
    return root if root.is_dir() else synthetic_clips(tmp / "clips")


def table(rows: list[dict]) -> str:
    head = "| config | device | precision | batch | VAE steps/s | adv. steps/s | VAE clips/s | adv. clips/s | GPU busy |"
    out = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        busy = f"{r['gpu_busy']:.0f} %" if r["gpu_busy"] is not None else "n/a"
        out.append(f"| {r['config']} | {r['device']} | {r['precision']} | {r['batch']} | {r['vae_steps_s']:.2f} | "
                   f"{r['adv_steps_s']:.2f} | {r['vae_clips_s']:.1f} | {r['adv_clips_s']:.1f} | {busy} |")  # fmt: skip
    return "\n".join(out)
