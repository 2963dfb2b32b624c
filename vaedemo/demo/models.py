"""The models the demo offers: finding them (:func:`discover`), loading them into a small LRU cache of
:class:`~vaedemo.inference.Engine` objects (:class:`Models`), and each model's top latent directions (a PCA of
prior samples, computed once per model)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaedemo.bundle import read_bundle_config
from vaedemo.errors import CheckpointError, VaedemoError
from vaedemo.hub import resolve
from vaedemo.inference import Engine
from vaedemo.nn.modes import latent_mode

from .common import N_DIRECTIONS, log, shown


@dataclass
class ModelSpec:
    label: str
    source: str
    single: bool | None = None  # one latent per clip; None: not known before loading (hf:// ids)
    prior_flow: bool | None = None
    causal: bool | None = None  # no look-ahead (what the Live tab offers first)
    folder: Path | None = None  # where its files are: the source folder; an hf:// id's snapshot once loaded


RUN_BUNDLE = "bundle"  # the folder a training run writes its latest bundle to (train.run_dir/bundle)


def folder_label(folder: Path) -> str:
    """A bundle folder's name in the picker: its own, or for a training run's bundle (``runs/mine/bundle``) the run's,
    since every run's bundle folder has the same name."""
    folder = folder.resolve()
    return folder.parent.name if folder.name == RUN_BUNDLE and folder.parent.name else folder.name


def discover(checkpoints: str | Path = "checkpoints", extra: list[str] = ()) -> tuple[list[ModelSpec], str]:
    """The models to offer and the default label: ``extra`` (command line; the first one is the default) then the
    bundles in ``checkpoints`` (sorted; default the one named in ``checkpoints/DEFAULT``, else the first
    one-vector-per-clip model with a prior flow)."""
    specs: list[ModelSpec] = []

    def add(source: str, label: str) -> ModelSpec:
        if any(s.label == label for s in specs):
            label = source
        spec = ModelSpec(label, source)
        if not source.startswith("hf://"):
            spec.folder = Path(source)
            cfg, _, _ = read_bundle_config(resolve(source))  # refuses a folder that is not a bundle, with a sentence
            spec.single, spec.prior_flow, spec.causal = latent_mode(cfg).per_clip, cfg.prior_flow_layers > 0, cfg.causal
        specs.append(spec)
        return spec

    for src in extra:
        add(str(src), str(src) if str(src).startswith("hf://") else folder_label(Path(src)))
    given = {Path(s.source).resolve() for s in specs if not s.source.startswith("hf://")}
    shipped = []
    for d in sorted(p for p in Path(checkpoints).glob("[!.]*") if (p / "config.json").is_file()):
        if d.resolve() in given:  # a shipped bundle named with --checkpoint too is offered once, as the command line's
            continue
        try:
            shipped.append(add(str(d), d.name))
        except CheckpointError as e:
            log.warning("skipping %s: %s", d, e)
    if not specs:
        raise CheckpointError(
            f"no model to serve: {checkpoints}/ holds no bundle; pass one with --checkpoint PATH (a bundle folder "
            "or hf://org/repo)."
        )
    if extra:
        return specs, specs[0].label
    named = Path(checkpoints) / "DEFAULT"
    chosen = named.read_text().strip() if named.is_file() else ""
    best = next((s for s in shipped if s.label == chosen), None)
    best = best or next((s for s in shipped if s.single and s.prior_flow), shipped[0])
    return specs, best.label


def pca(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k principal directions of the rows of z: unit vectors (k, D), their variances, the variance ratios."""
    z = np.asarray(z, np.float64)
    _, s, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
    power = s**2
    return vt[:k], power[:k] / max(1, len(z) - 1), power[:k] / max(power.sum(), 1e-30)


@dataclass
class Directions:
    """Top principal directions of the prior's latent space: unit vectors (K, D), their std (K,), variance ratio."""

    components: np.ndarray
    scales: np.ndarray
    explained: np.ndarray


class Models:
    """Labels -> sources; loaded engines in an LRU cache of ``cache_size``; prior PCA per model, computed once."""

    def __init__(self, specs: list[ModelSpec], default: str, device: str = "cpu", cache_size: int = 3):
        self.specs = {s.label: s for s in specs}
        self.default, self.device, self.cache_size = default, device, cache_size
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._directions: dict[str, Directions] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    @property
    def labels(self) -> list[str]:
        return list(self.specs)

    def get(self, label: str | None) -> Engine:
        label = label or self.default
        if not isinstance(label, str) or label not in self.specs:  # picker labels only, never a path or an hf:// id
            raise VaedemoError(f"there is no model called {shown(label)}; choose one of: {', '.join(self.specs)}.")
        with self._lock:
            if label in self._engines:
                self._engines.move_to_end(label)
                return self._engines[label]
            loading = self._loading.setdefault(label, threading.Lock())
        with loading:  # one load per model at a time; other models stay usable meanwhile
            with self._lock:
                if label in self._engines:
                    return self._engines[label]
            engine = Engine(self.specs[label].source, device=self.device)
            spec = self.specs[label]
            spec.single, spec.prior_flow, spec.causal = engine.mode.per_clip, engine.has_prior_flow, engine.config.causal
            spec.folder = engine.bundle.path
            with self._lock:
                self._engines[label] = engine
                while len(self._engines) > self.cache_size:
                    self._engines.popitem(last=False)
        return engine

    def directions(self, label: str | None) -> Directions:
        """PCA of prior samples (flow prior where there is one; frames of temporal models count as vectors)."""
        label = label or self.default
        if not isinstance(label, str) or label not in self._directions:
            eng = self.get(label)  # refuses what is not a label
            z = eng.sample_latents(512, 1.0, 1234) if eng.mode.per_clip else eng.sample_latents(16, 1.0, 1234)
            components, var, ratio = pca(z.reshape(-1, eng.latent_size), N_DIRECTIONS)
            self._directions[label] = Directions(components, np.sqrt(var), ratio)
        return self._directions[label]
