"""``python -m vaedemo.experiment configs/ablations/NAME.yaml [--out docs/NAME.md]``: train and compare variants.

An ablation file names a base config, the overrides every variant shares (the equal budget), the variants (each a
list of overrides) and the folders to evaluate on::

    base: configs/drums_single_flow.yaml
    run_root: runs/ablations/flows
    shared: [train.max_steps=3000, train.vae_steps=3000]
    evaluate: {data: [data/drums_fluidr3], seconds: 1.0, max_clips: 100}   # also samples, opus, draws
    variants:
      no_flows: [model.posterior_flow_layers=0, model.prior_flow_layers=0]
      both_flows: []

Each variant trains in ``run_root/NAME`` with ``python -m vaedemo.train`` (a finished run is reused, an interrupted
one resumes), is evaluated with :mod:`vaedemo.evaluate`, and lands in one table: ``run_root/results.md`` and
``results.csv`` (and ``--out``), with the metrics, parameter counts and training time.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from .cli import check_outputs, user_errors
from .errors import ConfigError
from .yamlfile import read_yaml

KEYS = {"base", "run_root", "shared", "evaluate", "variants", "description"}


def read_ablation(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"ablation file {path} does not exist.")
    doc = read_yaml(path) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must map the keys {', '.join(sorted(KEYS))} to their values.")
    unknown = set(doc) - KEYS
    if unknown:
        raise ConfigError(f"unknown key '{sorted(unknown)[0]}' in {path}; known keys: {', '.join(sorted(KEYS))}.")
    for key in ("base", "variants"):
        if key not in doc:
            raise ConfigError(f"{path} needs a '{key}' entry.")
    if not isinstance(doc["variants"], dict) or not doc["variants"]:
        raise ConfigError(f"'variants' in {path} must map names to lists of overrides.")
    doc.setdefault("run_root", f"runs/ablations/{path.stem}")
    doc.setdefault("shared", [])
    doc.setdefault("evaluate", {})
    check_entry_types(doc, path)
    check_evaluate_options(doc["evaluate"], path)
    return doc


def _overrides(value) -> bool:
    """A list of ``key=value`` overrides (a string was read letter by letter, a number was a TypeError)."""
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_entry_types(doc: dict, path: Path) -> None:
    """``base`` and ``run_root`` folders' names, ``shared`` and every variant lists of overrides (a variant may be
    empty: the base as it is), before any variant trains: each was a TypeError at its turn, and a ``run_root`` of
    [1, 2] trained every variant into a folder named so before the table failed."""
    for key in ("base", "run_root"):
        if not isinstance(doc[key], str) or not doc[key].strip():
            raise ConfigError(f"'{key}' in {path} must be a path, got {doc[key]!r}.")
    if not _overrides(doc["shared"]):
        raise ConfigError(f"'shared' in {path} must be a list of key=value overrides, got {doc['shared']!r}.")
    for name, overrides in doc["variants"].items():
        if not isinstance(name, str) or not (overrides is None or _overrides(overrides)):
            raise ConfigError(f"variant {name!r} in {path} must be a name with a list of key=value overrides, got "
                              f"{overrides!r}.")  # fmt: skip


EVALUATE_KEYS = {"data", "seconds", "max_clips", "samples", "opus", "draws"}


def check_evaluate_options(opts, path: Path) -> None:
    """The ``evaluate`` mapping, checked before any variant trains (a bad value would fail after the first one)."""
    if not isinstance(opts, dict):
        raise ConfigError(f"'evaluate' in {path} must map options to values, got {opts!r}.")
    unknown = set(opts) - EVALUATE_KEYS
    if unknown:
        raise ConfigError(f"unknown evaluate option '{sorted(unknown)[0]}' in {path}; known: "
                          f"{', '.join(sorted(EVALUATE_KEYS))}.")  # fmt: skip
    draws = opts.get("draws", 1)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ConfigError(f"evaluate.draws in {path} must be a whole number of at least 1, got {draws!r}.")
    # each was int() / float()'s traceback, or evaluate's sentence, after the first variant had trained; a folder
    # given as a string was read letter by letter, and opus: "no" was true
    data = opts.get("data", [])
    if not isinstance(data, list) or not all(isinstance(d, str) and d for d in data):
        raise ConfigError(f"evaluate.data in {path} must be a list of folders, got {data!r}.")
    for key, least in (("max_clips", 2), ("samples", 0)):
        value = opts.get(key, least)
        if isinstance(value, bool) or not isinstance(value, int) or value < least or (key == "samples" and value == 1):
            wanted = "0 or at least 2" if key == "samples" else f"at least {least}"
            raise ConfigError(f"evaluate.{key} in {path} must be a whole number, {wanted}, got {value!r}.")
    seconds = opts.get("seconds", 1.0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < float("inf"):
        raise ConfigError(f"evaluate.seconds in {path} must be a length above 0, got {seconds!r}.")
    if not isinstance(opts.get("opus", False), bool):
        raise ConfigError(f"evaluate.opus in {path} must be true or false, got {opts['opus']!r}.")


def variant_overrides(doc: dict, name: str) -> list[str]:
    return list(doc["shared"]) + list(doc["variants"][name] or []) + [f"train.run_dir={doc['run_root']}/{name}",
                                                                       f"name={name}"]


def train_variant(doc: dict, name: str) -> Path:
    """Train (or resume, or reuse) one variant; returns its bundle folder."""
    from .training.runner import train_to_completion

    return train_to_completion(doc["base"], variant_overrides(doc, name), "experiment", name, same_config=True)


def evaluate_variant(bundle: Path, opts: dict) -> list[dict]:
    from .evaluate import DEFAULT_DRAWS, default_seconds, evaluate_folder
    from .inference import Engine

    engine = Engine(bundle)
    # without seconds, evaluate's own default: 1 s was a one-vector model's clip and 68 samples (0.08 worse log-mel
    # L1 for drums_single_flow on TimGM6mb than python -m vaedemo.evaluate gives)
    seconds = float(opts["seconds"]) if "seconds" in opts else default_seconds(engine)
    return [evaluate_folder(engine, Path(d), seconds, int(opts.get("max_clips", 100)),
                            int(opts.get("samples", 0)), bool(opts.get("opus", False)),
                            draws=int(opts.get("draws", DEFAULT_DRAWS))) for d in opts.get("data", [])]  # fmt: skip


def row_for(name: str, bundle: Path, results: list[dict]) -> dict:
    from .bundle import load

    b = load(bundle)
    m = b.config
    row = {
        "variant": name,
        "latent": f"{m.latent_mode} {m.latent_size}" + (" + level" if m.level_latent else ""),
        "posterior flow": m.posterior_flow_layers,
        "prior flow": m.prior_flow_layers,
        "params (M)": round(sum(p.numel() for p in b.model.parameters()) / 1e6, 3),
        "steps": b.meta.get("step"),
        "train time (min)": round(float(b.meta.get("training_time_s", 0)) / 60, 1),
    }
    for r in results:
        tag = Path(r["data"].split(" (")[0]).name
        rec = r["reconstruction"]["model"]
        row[f"{tag} log-mel L1"] = round(rec["log_mel_l1"], 4)
        row[f"{tag} MR-STFT"] = round(rec["multi_resolution_stft"], 4)
        row[f"{tag} SI-SDR"] = round(rec["si_sdr"], 2)
        gen = r["generation"]
        prior = "flow prior" if "flow prior" in gen else "gaussian prior"
        row[f"{tag} KID (model prior)"] = round(gen[prior]["kid"], 4)
        row[f"{tag} KID std (model prior)"] = round(gen[prior]["kid_std"], 4)  # spread over the KID subsets
        if len(gen[prior].get("kid_draws", [])) > 1:  # spread over draws of samples (the KID is their mean)
            row[f"{tag} KID std over draws (model prior)"] = round(gen[prior]["kid_draw_std"], 4)
        row[f"{tag} KID (gaussian)"] = round(gen["gaussian prior"]["kid"], 4)
        if "real vs real (floor)" in gen:
            row[f"{tag} KID floor"] = round(gen["real vs real (floor)"]["kid"], 4)
    return row


def write_table(rows: list[dict], run_root: Path, title: str, out: Path | None) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    md = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    text = "\n".join(md) + "\n"
    run_root.mkdir(parents=True, exist_ok=True)
    (run_root / "results.md").write_text(text)
    with open(run_root / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.experiment", description=__doc__.split("\n\n")[0])
    parser.add_argument("ablation", help="configs/ablations/NAME.yaml")
    parser.add_argument("--out", help="also write the markdown table here (e.g. docs/ablations.md)")
    parser.add_argument("--only", action="append", help="run only these variants (repeatable)")
    args = parser.parse_args(argv)
    path = Path(args.ablation)
    doc = read_ablation(path)
    if args.out and not Path(args.out).is_dir():
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # (made for the table, as it always was)
        except OSError as e:
            raise ConfigError(f"--out {args.out}: its folder cannot be made ({e.strerror or e}).") from None
    check_outputs(out=args.out)  # before the training, not after every variant has trained
    missing = next((d for d in doc["evaluate"].get("data", []) if not Path(d).is_dir()), None)
    if missing is not None:
        raise ConfigError(f"evaluate.data in {path} names {missing}, which is not a folder.")
    unknown = next((name for name in args.only or () if name not in doc["variants"]), None)
    if unknown is not None:  # before any variant trains (a typo after a good name trained the good one first)
        raise ConfigError(f"no variant '{unknown}' in {path}; it has {', '.join(doc['variants'])}.")
    rows = []
    for name in args.only or list(doc["variants"]):
        bundle = train_variant(doc, name)
        results = evaluate_variant(bundle, doc["evaluate"])
        (Path(doc["run_root"]) / name / "evaluation.json").write_text(json.dumps(results, indent=2))
        rows.append(row_for(name, bundle, results))
    title = doc.get("description") or f"Ablation {path.stem}"
    print(write_table(rows, Path(doc["run_root"]), title, Path(args.out) if args.out else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
