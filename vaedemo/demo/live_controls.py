"""The Live tab's four sliders, for both of its streams: the gains into and out of the model, and the latents bent
between its encoder and decoder (scaled toward the prior's centre, Gaussian noise added: what nn~ patches do to a
stream's latents).

The in-browser mode reads them in the page at its next hop. The server's stream (the microphone's chunks, a file
played through it) reads them for its page session at each piece it computes, so every change is also sent to the
server (:class:`ControlsStore`: four numbers a page session, the least recently changed forgotten first). A slider
that only steered one of the two streams, under the other's output, had moved nothing a presenter could hear.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import gradio as gr

from vaedemo.errors import VaedemoError

from .common import UI, user_errors

# each slider, by its key in the page's script: (its field of Controls, its range, label, info)
SLIDERS = {
    "input": ("input_db", (-12.0, 24.0), "Input gain (dB)", "the model's sound follows its level"),
    "output": ("output_db", (-12.0, 24.0), "Output gain (dB)", "for the room's speakers"),
    "scale": ("scale", (0.0, 2.0), "Latent scale", "0: the prior's centre; 1: as heard"),
    "noise": ("noise", (0.0, 2.0), "Latent noise", "standard deviations, every frame"),
}


@dataclass(frozen=True)
class Controls:
    """What the sliders set: dB into and out of the model, the latents' scale and the noise added to them."""

    input_db: float = 0.0
    output_db: float = 0.0
    scale: float = 1.0
    noise: float = 0.0


def checked(key: str, value) -> float:
    """A slider's value as the server takes it: a number within the slider's range, else one sentence."""
    if key not in SLIDERS:
        raise VaedemoError(f"there is no live control {str(key)[:40]!r}.")
    _, (low, high), label, _ = SLIDERS[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise VaedemoError(f"{label} must be a number.")
    if not low <= value <= high:
        raise VaedemoError(f"{label} must be from {low:g} to {high:g}, got {value:g}.")
    return float(value)


class ControlsStore:
    """Each page session's :class:`Controls` (the defaults for a session that has changed nothing), at most ``kept``
    sessions' (a server up for days meets many pages). Thread-safe: the sliders' events and the streams' pieces run
    in the server's worker threads."""

    def __init__(self, kept: int = 4096):
        self.kept = kept
        self._controls: OrderedDict[str, Controls] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: str) -> Controls:
        with self._lock:
            return self._controls.get(session, Controls())

    def set(self, session: str, key: str, value) -> Controls:
        field, *_ = SLIDERS.get(key, (None,))
        number = checked(key, value)
        with self._lock:
            controls = replace(self._controls.pop(session, Controls()), **{field: number})
            self._controls[session] = controls
            while len(self._controls) > self.kept:
                self._controls.popitem(last=False)
        return controls


def build(store: ControlsStore, session_of) -> None:
    """The four sliders, two rows of two (placed where the tab builds them); each change goes to the page's script
    (the in-browser mode) and to ``store`` under ``session_of(request)`` (the server's stream)."""
    made = {}
    for row in (("input", "output"), ("scale", "noise")):
        with gr.Row():
            for key in row:
                _, (low, high), label, info = SLIDERS[key]
                value = getattr(Controls(), SLIDERS[key][0])
                step = 1 if key in ("input", "output") else 0.05
                made[key] = gr.Slider(low, high, value=value, step=step, label=label, info=info,
                                      elem_id=f"browser-live-{key}")  # fmt: skip
    for key, slider in made.items():
        slider.change(_remembering(store, session_of, key), slider, None, trigger_mode="always_last",
                      js=f"(v) => {{ window.vaedemoBrowserLive.controls.{key} = v; return v; }}", **UI)  # fmt: skip


def _remembering(store: ControlsStore, session_of, key: str):
    """A slider's server handler: its value kept for the page session that sent it."""

    @user_errors
    def remember(request: gr.Request, value):
        store.set(session_of(request), key, value)

    return remember
