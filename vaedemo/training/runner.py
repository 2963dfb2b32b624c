"""Training runs started by another command (an ablation's variants, a recipe's steps), each to completion: a run
whose bundle has reached its ``train.max_steps`` is reused, an interrupted one resumes from its ``last.ckpt``, so the
command can be run again after a crash and goes on where it stopped. Each run is ``python -m vaedemo.train`` in a
subprocess, exactly what a user would type (and what the bundle's card then records)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..errors import VaedemoError


def comparable_keys(cfg) -> dict:
    """A config's keys (flattened) that a run's stored config must share with the config asked for: all but the model
    of a two-stage run, which stores the backbone's architecture filled in."""
    doc = cfg.to_dict()
    if cfg.model.latent_mode == "twostage":
        doc.pop("model")
    flat, todo = {}, [("", doc)]
    while todo:
        prefix, node = todo.pop()
        for key, value in node.items():
            if isinstance(value, dict):
                todo.append((f"{prefix}{key}.", value))
            else:
                flat[f"{prefix}{key}"] = value
    return flat


def differing_keys(have: dict, want: dict) -> list[str]:
    """The keys, sorted, where two :func:`comparable_keys` differ (one missing counts)."""
    return [k for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]


def first_difference(have: dict, want: dict, wanted_by: str) -> str:
    """The first key where two :func:`comparable_keys` differ, as "KEY: stored A, <wanted_by> B"."""
    key = differing_keys(have, want)[0]
    return f"{key}: stored {have.get(key)}, {wanted_by} {want.get(key)}"


def stored_differs(run_dir: Path, cfg, wanted_by: str) -> str | None:
    """Where the config stored in ``run_dir`` (the run's own) differs from ``cfg``; None when the same or absent."""
    from ..config import load_config

    stored = run_dir / "config.yaml"
    if not stored.is_file():
        return None
    have, want = comparable_keys(load_config(stored)), comparable_keys(cfg)
    return None if have == want else first_difference(have, want, wanted_by)


def finished(run_dir: Path, max_steps: int) -> bool:
    """Whether the run in ``run_dir`` has a bundle of at least ``max_steps`` training steps."""
    from ..bundle import read_bundle_config

    bundle = run_dir / "bundle"
    return bundle.is_dir() and read_bundle_config(bundle)[1].get("step", 0) >= max_steps


def train_command(config: str, overrides: list[str], resume: bool) -> list[str]:
    """The ``python -m vaedemo.train`` command line (argv) of a run."""
    cmd = [sys.executable, "-m", "vaedemo.train", "--config", config, *[a for o in overrides for a in ("--set", o)]]
    return cmd + (["--resume"] if resume else [])


def train_to_completion(config: str, overrides: list[str], tag: str, label: str, max_steps: int | None = None,
                        same_config: bool = False) -> Path:  # fmt: skip
    """Train, resume or reuse the run of ``config`` with ``overrides`` (which name its ``train.run_dir``); returns its
    bundle folder. ``max_steps``: where the run counts as finished when the config's own value is not it (a resumed
    run whose stored config an earlier command set). ``same_config``: a run folder that holds a run of another config
    (edited since it trained) is refused rather than reused or resumed. Progress lines go to stderr as
    ``[tag] label: ...``."""
    from ..config import load_config

    cfg = load_config(config, overrides)  # validates before anything runs
    run_dir = Path(cfg.train.run_dir)
    differs = stored_differs(run_dir, cfg, "now") if same_config else None
    if differs:
        raise VaedemoError(f"[{tag}] {label}: {run_dir} holds a run of another config ({differs}); remove the folder "
                           "to train it again as it is now.")  # fmt: skip
    steps = cfg.train.max_steps if max_steps is None else max_steps
    if finished(run_dir, steps):
        print(f"[{tag}] {label}: reusing {run_dir / 'bundle'}", file=sys.stderr)
        return run_dir / "bundle"
    cmd = train_command(config, overrides, resume=(run_dir / "checkpoints" / "last.ckpt").is_file())
    print(f"[{tag}] {label}: {' '.join(cmd[1:])}", file=sys.stderr)
    res = subprocess.run(cmd)
    if res.returncode != 0:
        raise VaedemoError(f"[{tag}] {label}: training failed (exit {res.returncode}); see its output above.")
    if not finished(run_dir, steps):  # e.g. a config whose max_steps is not the one expected
        raise VaedemoError(f"[{tag}] {label}: training ended before step {steps}; see its output above.")
    return run_dir / "bundle"
