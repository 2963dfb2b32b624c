"""DemoState: what the tabs share while the app runs. Every tab's handlers take it as their first argument."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import gradio as gr

from vaedemo.audio import Decoded, decode, shown_name
from vaedemo.errors import VaedemoError

from .chosen import ChosenModels
from .common import as_text
from .files import TempFiles
from .guard import Gate
from .live_controls import ControlsStore
from .models import Models

DECODED_KEPT = 4  # uploads kept decoded between an event's check and its handler
DECODED_MAX_VALUES = 4 * 1024 * 1024  # ... when they hold at most this many samples (16 MB; 30 s of 48 kHz stereo: 3 M)


class DemoState:
    """The models, the output files, the longest input used (``max_seconds``), the folders of the latent map
    (name -> folder of audio, ``manifest.csv`` optional), the per-client limits (``gate``) and the tabs' caches."""

    def __init__(self, models: Models, max_seconds: float = 30.0, folders: dict[str, Path] | None = None,
                 browser_live: bool = True):  # fmt: skip
        self.models, self.max_seconds = models, float(max_seconds)
        self.folders = {k: Path(v) for k, v in (folders or {}).items()}
        self.files = TempFiles()
        self.gate = Gate()
        self.chosen = ChosenModels()  # each page session's model: a result of another is dropped
        self.latents: OrderedDict[tuple, tuple] = OrderedDict()  # Interpolate: (latents, search note) of its sources
        self.maps: dict[tuple, Any] = {}  # Latent map: a MapData per (model, folder)
        # Uploads decoded by an event's first step (which checks them, see `check_readable`), kept for its second
        self.decoded: OrderedDict[tuple, Decoded] = OrderedDict()
        self.lock = threading.Lock()
        self.browser_live = browser_live  # the Live tab may send a causal model to the visitor's browser
        self.live_controls = ControlsStore()  # the Live tab's sliders, per page session, for the server's stream

    def load(self, path: str | None, what: str = "a sound") -> Decoded:
        """Decode an upload (any format, rate, channel count) within the decode budget; longer than max_seconds:
        only its start is decoded, with a warning (``Decoded.trimmed`` says so)."""
        if not path:
            raise VaedemoError(f"upload or record {what} first.")
        if not isinstance(path, str):  # a raw API request can send anything
            raise VaedemoError(f"{what} must be an uploaded file.")
        key = _file_key(path)
        with self.lock:
            d = self.decoded.get(key) if key else None
        if d is not None:  # decoded (and its trim warning shown) by the event's first step
            return d
        d = decode(path, max_seconds=self.max_seconds, trim=True)
        if d.trimmed:
            gr.Warning(as_text(trim_notice(Path(path).name, d, self.max_seconds)))
        if key and d.audio.size <= DECODED_MAX_VALUES:
            with self.lock:
                self.decoded[key] = d
                while len(self.decoded) > DECODED_KEPT:
                    self.decoded.popitem(last=False)
        return d

    def check_readable(self, path: str | None, what: str = "a sound") -> None:
        """The first step of a page event that reads an upload: decode it now (and keep it for the second step), so
        that a file that is not audio gets one error message and no output is marked as failed."""
        if path:
            self.load(path, what)


def _file_key(path: str) -> tuple | None:
    """What identifies an upload's content: its path, size and modification time (None when it cannot be read)."""
    try:
        st = Path(path).stat()
    except (OSError, ValueError):
        return None
    return (str(path), st.st_size, st.st_mtime_ns)


def trim_notice(name: str, d: Decoded, max_seconds: float) -> str:
    """The one sentence that says an input was trimmed to max_seconds."""
    length = f"is {d.seconds_in_file:.1f} s long" if d.seconds_in_file else f"is longer than {max_seconds:g} s"
    return f"{shown_name(name)} {length}; only the first {max_seconds:g} s are used."
