"""DemoState: what the tabs share while the app runs. Every tab's handlers take it as their first argument."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from vaedemo.audio import load_audio
from vaedemo.errors import VaedemoError

from .common import HARD_LIMIT_SECONDS
from .files import TempFiles
from .models import Models


class DemoState:
    """The models, the output files, the longest input used (``max_seconds``), the folders of the latent map
    (name -> folder of audio, ``manifest.csv`` optional) and the tabs' caches."""

    def __init__(self, models: Models, max_seconds: float = 30.0, folders: dict[str, Path] | None = None):
        self.models, self.max_seconds = models, float(max_seconds)
        self.folders = {k: Path(v) for k, v in (folders or {}).items()}
        self.files = TempFiles()
        self.latents: OrderedDict[tuple, np.ndarray] = OrderedDict()  # Interpolate: encodings of its sources
        self.maps: dict[tuple, Any] = {}  # Latent map: a MapData per (model, folder)
        self.lock = threading.Lock()

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
