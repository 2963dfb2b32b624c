"""The demo's handler logic, independent of the page layout (``app.py`` only wires these to components).

Owns: finding the models to offer (:func:`discover`), a small LRU cache of loaded :class:`~vaedemo.inference.Engine`
objects (:class:`Models`), per-request output files in a per-app temporary folder cleaned up by age
(:class:`TempFiles`), and :class:`Demo`, whose methods are the handlers of each tab. Handlers take plain values
(file paths, numbers, the model's label) and return file paths, Plotly figures and text; every problem a user can
cause becomes a ``gr.Error`` with one sentence, so the server keeps serving.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import functools
import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import soundfile as sf

from . import plots
from .audio import load_audio, to_channels
from .bundle import read_bundle_config
from .card import parameter_table
from .hub import resolve
from .errors import CheckpointError, VaedemoError
from .inference import Engine, slerp
from .metrics import reconstruction_metrics

log = logging.getLogger("vaedemo.app")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".m4a", ".webm"}
MAX_SAMPLES, MAX_STEPS, N_DIRECTIONS, MAP_MAX_FILES = 8, 8, 4, 400
HARD_LIMIT_SECONDS = 600.0  # refused outright; anything above the app's max duration is trimmed with a warning
METRIC_LABELS = {"log_mel_l1": ("log-mel L1", "lower"), "multi_resolution_stft": ("multi-resolution STFT", "lower"),
                 "spectral_convergence": ("spectral convergence", "lower"),
                 "si_sdr": ("SI-SDR (dB)", "higher")}  # fmt: skip


def user_errors(fn):
    """Turn VaedemoError (and anything unexpected) into a gr.Error with one sentence; the server keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except VaedemoError as e:
            msg = str(e)  # "the audio ..." -> "The audio ..."; a leading file name stays as it is
            msg = msg[:1].upper() + msg[1:] if msg.split(" ", 1)[0].isalpha() else msg
            raise gr.Error(msg, print_exception=False) from None
        except Exception as e:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(e).__name__}); please try another sound or setting.") from None

    return wrapper


# ------------------------------------------------------------------------------------------------------ models
@dataclass
class ModelSpec:
    label: str
    source: str
    single: bool | None = None  # None: not known before loading (hf:// ids)
    prior_flow: bool | None = None


def discover(checkpoints: str | Path = "checkpoints", extra: list[str] = ()) -> tuple[list[ModelSpec], str]:
    """The models to offer and the default label: ``extra`` (command line; the first one is the default) then the
    bundles in ``checkpoints`` (sorted; default a single-latent model with a prior flow)."""
    specs: list[ModelSpec] = []

    def add(source: str, label: str) -> ModelSpec:
        if any(s.label == label for s in specs):
            label = source
        spec = ModelSpec(label, source)
        if not source.startswith("hf://"):
            cfg, _, _ = read_bundle_config(resolve(source))  # refuses a folder that is not a bundle, with a sentence
            spec.single, spec.prior_flow = cfg.latent_mode == "single", cfg.prior_flow_layers > 0
        specs.append(spec)
        return spec

    for src in extra:
        add(str(src), str(src) if str(src).startswith("hf://") else Path(src).resolve().name)
    shipped = []
    for d in sorted(p for p in Path(checkpoints).glob("[!.]*") if (p / "config.json").is_file()):
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
    best = next((s for s in shipped if s.single and s.prior_flow), shipped[0])
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
        if label not in self.specs:
            raise VaedemoError(f"there is no model called '{label}'; choose one of: {', '.join(self.specs)}.")
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
            spec.single, spec.prior_flow = engine.mode.per_clip, engine.has_prior_flow
            with self._lock:
                self._engines[label] = engine
                while len(self._engines) > self.cache_size:
                    self._engines.popitem(last=False)
        return engine

    def directions(self, label: str | None) -> Directions:
        """PCA of prior samples (flow prior where there is one; frames of temporal models count as vectors)."""
        label = label or self.default
        if label not in self._directions:
            eng = self.get(label)
            z = eng.sample_latents(512, 1.0, 1234) if eng.mode.per_clip else eng.sample_latents(16, 1.0, 1234)
            components, var, ratio = pca(z.reshape(-1, eng.latent_size), N_DIRECTIONS)
            self._directions[label] = Directions(components, np.sqrt(var), ratio)
        return self._directions[label]


class TempFiles:
    """Output files with unique names in a per-app folder; files older than ``max_age`` s are deleted."""

    def __init__(self, max_age: float = 3600.0):
        self.dir = Path(tempfile.mkdtemp(prefix="vaedemo-app-"))
        self.max_age, self._last_sweep = max_age, time.monotonic()
        atexit.register(shutil.rmtree, self.dir, True)

    def sweep(self, force: bool = False) -> int:
        """Delete old files (at most once a minute unless forced); returns how many were deleted."""
        if not force and time.monotonic() - self._last_sweep < 60:
            return 0
        self._last_sweep, now, n = time.monotonic(), time.time(), 0
        for p in self.dir.glob("*"):
            with contextlib.suppress(OSError):  # a file another request is deleting
                if now - p.stat().st_mtime > self.max_age:
                    p.unlink()
                    n += 1
        return n

    def wav(self, audio: np.ndarray, sample_rate: int, stem: str) -> str:
        """Write a wav at the audio's own loudness: 16-bit, or 32-bit float when it goes beyond full scale."""
        self.sweep()
        fd, name = tempfile.mkstemp(prefix=f"{stem}-", suffix=".wav", dir=self.dir)
        with open(fd, "wb") as f:
            peak = float(np.abs(audio).max()) if audio.size else 0.0
            sf.write(f, audio, sample_rate, format="WAV", subtype="PCM_16" if peak <= 1.0 else "FLOAT")
        return name


# ------------------------------------------------------------------------------------------------------ handlers
def _number(value, name: str, lo: float, hi: float, integer: bool = True) -> float:
    """A setting from the page or the API, checked: one sentence naming it when it is not a number in [lo, hi]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise VaedemoError(f"{name} must be a number, got '{value}'.") from None
    v = int(round(v)) if integer and np.isfinite(v) else v
    if not lo <= v <= hi:
        raise VaedemoError(f"{name} must be between {lo:g} and {hi:g}, got {v:g}.")
    return v


@dataclass
class MapData:
    files: list[Path]
    meta: list[dict]  # manifest.csv rows ({} for files it does not list)
    names: list[str]
    xy: np.ndarray
    explained: np.ndarray


class Demo:
    """The handlers of every tab. ``folders`` maps latent-map names to folders of audio (``manifest.csv`` optional)."""

    def __init__(self, models: Models, max_seconds: float = 30.0, folders: dict[str, Path] | None = None):
        self.models, self.max_seconds = models, float(max_seconds)
        self.folders = {k: Path(v) for k, v in (folders or {}).items()}
        self.files = TempFiles()
        self._latents: OrderedDict[tuple, np.ndarray] = OrderedDict()  # encodings of interpolation sources
        self._maps: dict[tuple, MapData] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ inputs
    def load(self, path: str | None, what: str = "a sound") -> tuple[np.ndarray, int]:
        """Decode an upload (any format, rate, channel count); longer than max_seconds: trimmed with a warning."""
        if not path:
            raise VaedemoError(f"upload or record {what} first.")
        x, sr = load_audio(path, max_seconds=HARD_LIMIT_SECONDS)
        limit = int(self.max_seconds * sr)
        if len(x) > limit:
            name, seconds = Path(path).name, len(x) / sr
            gr.Warning(f"{name} is {seconds:.1f} s long; only the first {self.max_seconds:g} s are used.")
            x = x[:limit]
        return x, sr

    def _encoded(self, eng: Engine, label: str, path: str) -> np.ndarray:
        p = Path(path)
        key = (label, str(p), p.stat().st_mtime if p.exists() else 0)
        z = self._latents.get(key)
        if z is None:
            z = eng.encode(*self.load(path))
            with self._lock:
                self._latents[key] = z
                while len(self._latents) > 32:
                    self._latents.popitem(last=False)
        return z

    # ------------------------------------------------------------------ model panel
    @user_errors
    def model_info(self, model: str) -> tuple[str, str, bool]:
        """(one-line summary, model card markdown, whether the model has a flow prior)."""
        eng = self.models.get(model)
        cfg, b = eng.config, eng.bundle
        params = parameter_table(eng.model)[-1][2]
        mode = eng.mode.describe(eng.sample_rate)
        summary = (f"**{model}** — {mode}; {'flow' if eng.has_prior_flow else 'Gaussian'} prior; "
                   f"{eng.sample_rate / 1000:g} kHz {'stereo' if eng.channels == 2 else 'mono'}; "
                   f"{params / 1e6:.2f} M parameters; "
                   + (f"trained {b.meta['step']} steps on " if b.meta.get("step") else "data: ")
                   + f"{b.meta.get('data') or (b.training.get('data') or {}).get('root', 'unknown')}.")  # fmt: skip
        return summary, b.card or "This bundle has no model card (README.md).", eng.has_prior_flow

    # ------------------------------------------------------------------ reconstruct
    @user_errors
    def reconstruct(self, path: str | None, model: str):
        """Upload -> (reconstruction wav, input figure, reconstruction figure, metrics markdown, metrics dict)."""
        eng = self.models.get(model)
        x, sr = self.load(path)
        y = eng.reconstruct(x, sr)
        out = self.files.wav(y, sr, "reconstruction")
        ch = f", {x.shape[1]} channels (mono mix shown)" if x.shape[1] > 1 else ""
        fig_in, fig_out = plots.spectrogram_figures(
            [x, y], sr, [f"Input — {len(x) / sr:.2f} s, {sr} Hz{ch}", "Reconstruction"]
        )
        metrics = reconstruction_metrics(to_channels(x, y.shape[1]), y, sr)  # a stereo model makes mono stereo
        rows = [f"| {METRIC_LABELS[k][0]} | {v:.3f} | {METRIC_LABELS[k][1]} is better |" for k, v in metrics.items()]
        table = "| metric | value | |\n|---|---|---|\n" + "\n".join(rows)
        return out, fig_in, fig_out, table, metrics

    # ------------------------------------------------------------------ sample
    def _prior(self, eng: Engine, n, temperature, seed, use_flow) -> np.ndarray:
        n = _number(n, "the number of samples", 1, MAX_SAMPLES)
        t = _number(temperature, "the temperature", 0.0, 3.0, integer=False)
        return eng.sample_latents(n, t, _number(seed, "the seed", 0, 2**31 - 1), bool(use_flow) and eng.has_prior_flow)

    @user_errors
    def sample(self, n, temperature, seed, use_flow, model: str) -> tuple[list[str], list]:
        """n prior samples -> (wav paths, spectrogram figures on one colour scale)."""
        eng = self.models.get(model)
        z = self._prior(eng, n, temperature, seed, use_flow)
        audio = [eng.decode(zi) for zi in z]
        paths = [self.files.wav(a, eng.sample_rate, f"sample{i + 1}") for i, a in enumerate(audio)]
        titles = [f"Sample {i + 1} (seed {int(seed)})" for i in range(len(audio))]
        return paths, plots.spectrogram_figures(audio, eng.sample_rate, titles, height=240)

    @user_errors
    def direction_labels(self, model: str) -> list[str]:
        d = self.models.directions(model)
        return [f"Direction {i + 1} ({e:.0%} of the variance)" for i, e in enumerate(d.explained)]

    @user_errors
    def move(self, n, temperature, seed, use_flow, model: str, *amounts: float):
        """Sample 1 of the gallery moved along the principal directions (amounts in std) -> (wav, figure)."""
        eng = self.models.get(model)
        d = self.models.directions(model)
        z = self._prior(eng, n, temperature, seed, use_flow)[0]
        a = np.zeros(len(d.scales))
        a[: len(amounts)] = np.asarray(amounts[: len(a)], np.float64)
        z = (z + (a * d.scales) @ d.components).astype(np.float32)  # broadcasts over the frames of temporal latents
        y = eng.decode(z)
        moved = ", ".join(f"{v:+.1f}" for v in a)
        title = f"Sample 1 moved by ({moved}) std"
        fig = plots.spectrogram_figure(plots.display_spectrogram(y, eng.sample_rate), title)
        return self.files.wav(y, eng.sample_rate, "direction"), fig

    # ------------------------------------------------------------------ interpolate
    def _source(self, eng: Engine, model: str, kind: str, path: str | None, seed, name: str) -> np.ndarray:
        if kind == "prior sample":
            return eng.sample_latents(1, 1.0, _number(seed, f"the seed of {name}", 0, 2**31 - 1))[0]
        if not path:
            raise VaedemoError(f"choose a sound for {name} (upload one or pick an example), or use a prior sample.")
        z = self._encoded(eng, model, path)
        return eng.mode.sound_latent(z)

    def _pair(self, eng, model, kind_a, file_a, seed_a, kind_b, file_b, seed_b):
        a = self._source(eng, model, kind_a, file_a, seed_a, "source A")
        b = self._source(eng, model, kind_b, file_b, seed_b, "source B")
        n = min(len(a), len(b))  # temporal: frame by frame, cut to the shorter trajectory
        return (a[:n], b[:n]) if a.ndim == 2 else (a, b)

    @user_errors
    def interpolate(self, kind_a, file_a, seed_a, kind_b, file_b, seed_b, steps, method, model: str):
        """The N-step path A -> B -> (wav paths, one figure with a row of spectrograms)."""
        eng = self.models.get(model)
        steps = _number(steps, "the number of steps", 2, MAX_STEPS)
        a, b = self._pair(eng, model, kind_a, file_a, seed_a, kind_b, file_b, seed_b)
        path = eng.interpolate(a, b, steps, method)
        paths = [self.files.wav(y, eng.sample_rate, f"step{i + 1}") for i, y in enumerate(path)]
        titles = [f"{i / (steps - 1):.2f}" for i in range(steps)]
        return paths, plots.spectrogram_row(list(path), eng.sample_rate, titles)

    @user_errors
    def interpolate_at(self, kind_a, file_a, seed_a, kind_b, file_b, seed_b, position, method, model: str):
        """One point of the path at ``position`` in [0, 1] -> (wav, figure)."""
        eng = self.models.get(model)
        t = _number(position, "the position", 0.0, 1.0, integer=False)
        if method not in ("slerp", "lerp"):
            raise VaedemoError(f"interpolation method must be 'slerp' or 'lerp', got '{method}'.")
        a, b = self._pair(eng, model, kind_a, file_a, seed_a, kind_b, file_b, seed_b)
        z = slerp(a, b, t) if method == "slerp" else ((1 - t) * a + t * b).astype(np.float32)
        y = eng.decode(z)
        fig = plots.spectrogram_figure(plots.display_spectrogram(y, eng.sample_rate), f"Position {t:.2f} ({method})")
        return self.files.wav(y, eng.sample_rate, "position"), fig

    # ------------------------------------------------------------------ latent map
    def _folder_files(self, folder: Path) -> tuple[list[Path], list[dict]]:
        rows: dict[str, dict] = {}
        if (folder / "manifest.csv").is_file():
            with open(folder / "manifest.csv", newline="") as f:
                rows = {r["file"]: r for r in csv.DictReader(f) if r.get("file")}
        files = sorted(p for p in folder.rglob("*")
                       if p.suffix.lower() in AUDIO_SUFFIXES and ".vaedemo_cache" not in p.parts)  # fmt: skip
        if len(files) > MAP_MAX_FILES:  # an even, deterministic subset
            files = [files[i] for i in np.linspace(0, len(files) - 1, MAP_MAX_FILES).astype(int)]
        return files, [rows.get(p.relative_to(folder).as_posix(), {}) for p in files]

    def _map(self, folder_name: str, model: str) -> MapData:
        key = (model or self.models.default, folder_name)
        if key in self._maps:
            return self._maps[key]
        if folder_name not in self.folders:
            raise VaedemoError(f"there is no folder called '{folder_name}' for the latent map.")
        eng = self.models.get(model)
        files, meta = self._folder_files(self.folders[folder_name])
        vecs, keep = [], []
        for i, p in enumerate(files):
            try:
                x, _ = load_audio(p, eng.sample_rate, eng.channels, max_seconds=HARD_LIMIT_SECONDS)
            except VaedemoError as e:
                log.warning("latent map: skipping %s: %s", p, e)
                continue
            z = eng.encode(x[: int(self.max_seconds * eng.sample_rate)], eng.sample_rate)
            vecs.append(eng.mode.summary_vector(z))  # the first clip / the mean over frames
            keep.append(i)
        if len(vecs) < 3:
            raise VaedemoError(f"the folder '{folder_name}' holds {len(vecs)} readable audio files; a map needs 3.")
        z = np.stack(vecs).astype(np.float64)
        components, _, ratio = pca(z, 2)
        xy = np.zeros((len(z), 2))
        xy[:, : len(components)] = (z - z.mean(0)) @ components.T
        meta = [meta[i] for i in keep]
        tags = [", ".join(f"{k} {r[k]}" for k in ("kit", "key", "velocity") if r.get(k)) for r in meta]
        names = [f"{files[i].name} ({t})" if t else files[i].name for i, t in zip(keep, tags)]
        self._maps[key] = MapData([files[i] for i in keep], meta, names, xy, ratio)
        return self._maps[key]

    @user_errors
    def latent_map(self, folder_name: str, colour_by: str, model: str, selected: int | None = None):
        """-> (scatter figure, point choices [(name, index)])."""
        m = self._map(folder_name, model)
        colour = [r.get(colour_by, "") for r in m.meta] if colour_by and any(m.meta) else None
        fig = plots.latent_map_figure(m.xy, m.names, colour, colour_by, selected, m.explained)
        return fig, [(n, str(i)) for i, n in enumerate(m.names)]

    @user_errors
    def map_point(self, folder_name: str, index, colour_by: str, model: str):
        """A selected point -> (its audio file, its spectrogram, the map with the point ringed)."""
        m = self._map(folder_name, model)
        i = _number(str(index).split(":")[0], "the point", 0, len(m.files) - 1)  # "index:time" from a map click
        x, sr = load_audio(m.files[i], max_seconds=HARD_LIMIT_SECONDS)
        fig = plots.spectrogram_figure(plots.display_spectrogram(x, sr), m.names[i])
        return str(m.files[i]), fig, self.latent_map(folder_name, colour_by, model, i)[0]
