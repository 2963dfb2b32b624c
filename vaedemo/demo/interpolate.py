"""The Interpolate tab: walk from sound A to sound B through the latent space, one position or the whole path."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from vaedemo import plots
from vaedemo.audio import to_channels
from vaedemo.errors import VaedemoError
from vaedemo.inference import Engine, slerp

from .common import AUDIO_OUT, EXAMPLES, UI, Audio, choice, examples, intro, number, user_errors
from .guard import gated
from .state import DemoState

KINDS = ["sound file", "prior sample"]
METHODS = ["slerp", "lerp"]
MAX_STEPS = 8
SOURCE_EXAMPLES = ["timgm6mb-standard_snare.flac", "timgm6mb-tr-808_kick.flac", "musescore-standard_crash.flac",
                   "timgm6mb-tr-808_closed-hat.flac"]  # fmt: skip


def _encoded(state: DemoState, eng: Engine, label: str, path: str, name: str) -> np.ndarray:
    """The latents of a source file, cached by (model, path, modification time)."""
    p = Path(path)
    key = (label, str(p), p.stat().st_mtime if p.exists() else 0)
    z = state.latents.get(key)
    if z is None:
        d = state.load(path, f"a sound for {name}")
        z = eng.encode(to_channels(d.audio, eng.channels), d.sample_rate)  # the model's channels before resampling
        with state.lock:
            state.latents[key] = z
            while len(state.latents) > 32:
                state.latents.popitem(last=False)
    return z


def _source(state: DemoState, eng: Engine, model: str, kind: str, path: str | None, seed, name: str) -> np.ndarray:
    if choice(kind, f"the kind of {name}", KINDS) == "prior sample":
        return eng.sample_latents(1, 1.0, number(seed, f"the seed of {name}", 0, 2**31 - 1))[0]
    if not path:
        raise VaedemoError(f"choose a sound for {name} (upload one or pick an example), or use a prior sample.")
    if not isinstance(path, str):  # a raw API request can send anything
        raise VaedemoError(f"the sound for {name} must be an uploaded file.")
    return eng.mode.sound_latent(_encoded(state, eng, model, path, name))


def _pair(state: DemoState, eng: Engine, model, kind_a, file_a, seed_a, kind_b, file_b, seed_b):
    a = _source(state, eng, model, kind_a, file_a, seed_a, "source A")
    b = _source(state, eng, model, kind_b, file_b, seed_b, "source B")
    n = min(len(a), len(b))  # temporal: frame by frame, cut to the shorter trajectory
    return (a[:n], b[:n]) if a.ndim == 2 else (a, b)


@user_errors
def interpolate(state: DemoState, kind_a, file_a, seed_a, kind_b, file_b, seed_b, steps, method, model: str):
    """The N-step path A -> B -> (wav paths, one figure with a row of spectrograms)."""
    eng = state.models.get(model)
    steps = number(steps, "the number of steps", 2, MAX_STEPS)
    method = choice(method, "the interpolation method", METHODS)
    a, b = _pair(state, eng, model, kind_a, file_a, seed_a, kind_b, file_b, seed_b)
    path = eng.interpolate(a, b, steps, method)
    paths = [state.files.wav(y, eng.sample_rate, f"step{i + 1}") for i, y in enumerate(path)]
    titles = [f"{i / (steps - 1):.2f}" for i in range(steps)]
    return paths, plots.spectrogram_row(list(path), eng.sample_rate, titles)


@user_errors
def interpolate_at(state: DemoState, kind_a, file_a, seed_a, kind_b, file_b, seed_b, position, method, model: str):
    """One point of the path at ``position`` in [0, 1] -> (wav, figure)."""
    eng = state.models.get(model)
    t = number(position, "the position", 0.0, 1.0, integer=False)
    method = choice(method, "the interpolation method", METHODS)
    a, b = _pair(state, eng, model, kind_a, file_a, seed_a, kind_b, file_b, seed_b)
    z = slerp(a, b, t) if method == "slerp" else ((1 - t) * a + t * b).astype(np.float32)
    y = eng.decode(z)
    fig = plots.spectrogram_figure(plots.display_spectrogram(y, eng.sample_rate), f"Position {t:.2f} ({method})")
    return state.files.wav(y, eng.sample_rate, "position"), fig


def _source_column(name: str, example: str) -> list[gr.components.Component]:
    """Source A or B: a sound file (upload, microphone, examples) or a prior sample; returns [kind, file, seed]."""
    with gr.Column():
        kind = gr.Radio(KINDS, value=KINDS[0], label=f"Source {name}")
        first = EXAMPLES / example
        src = Audio(sources=["upload", "microphone"], type="filepath", label=f"Sound {name}", buttons=["download"],
                    value=str(first) if first.is_file() else None)  # fmt: skip
        src_seed = gr.Number(value=1 if name == "A" else 2, precision=0, label=f"Prior seed for {name}")
        gr.Examples(examples(SOURCE_EXAMPLES), src, label=f"Examples for {name}")
    return [kind, src, src_seed]


def _path_slots() -> tuple[list[gr.Column], list[gr.Audio]]:
    """A row of MAX_STEPS hidden players; a rendered path shows as many as it has steps."""
    path_slots, path_audio = [], []
    with gr.Row():
        for i in range(MAX_STEPS):
            with gr.Column(visible=False, min_width=150) as col:
                path_audio.append(Audio(label=f"Step {i + 1}", **AUDIO_OUT))
            path_slots.append(col)
    return path_slots, path_audio


def build(state: DemoState, model: gr.Dropdown) -> None:
    """The tab: sources A and B, the method, a position (decoded on release) and the whole path in steps."""
    with gr.Tab("Interpolate"):
        intro("Walk from sound A to sound B through the latent space (temporal models: frame by frame). "
              "Slide the position, or render the whole path.")  # fmt: skip
        with gr.Row():
            sources = _source_column("A", "timgm6mb-standard_kick.flac")
            sources += _source_column("B", "timgm6mb-standard_open-hat.flac")
        with gr.Row():
            method = gr.Radio(METHODS, value="slerp", label="Interpolation")
            position = gr.Slider(0, 1, value=0.5, step=0.05, label="Position A → B (decoded on release)")
            steps = gr.Slider(2, MAX_STEPS, value=5, step=1, label="Steps in the path")
        with gr.Row():
            pos_fig = gr.Plot(show_label=False)
            with gr.Column():
                pos_audio = Audio(label="Sound at this position", **AUDIO_OUT)
                path_btn = gr.Button("Render the path", variant="primary", size="lg")
        path_fig = gr.Plot(label="Path A → B", elem_id="path-fig")
        path_slots, path_audio = _path_slots()

    @gated(state.gate)
    def ui_path(*args):
        paths, fig = interpolate(state, *args)
        pad = [None] * (MAX_STEPS - len(paths))
        return [gr.update(visible=i < len(paths)) for i in range(MAX_STEPS)] + paths + pad + [fig]

    @gated(state.gate)
    def ui_position(*args):
        return interpolate_at(state, *args)

    path_btn.click(ui_path, sources + [steps, method, model], path_slots + path_audio + [path_fig], **UI)
    position.release(ui_position, sources + [position, method, model], [pos_audio, pos_fig], **UI)
