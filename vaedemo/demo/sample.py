"""The Sample tab: a gallery of sounds drawn from the prior, and sample 1 moved along the latent directions."""

from __future__ import annotations

import gradio as gr
import numpy as np

from vaedemo import plots
from vaedemo.inference import Engine

from .common import AUDIO_OUT, N_DIRECTIONS, UI, Audio, flag, intro, number, user_errors
from .guard import gated
from .state import DemoState

MAX_SAMPLES = 8


def _prior(eng: Engine, n, temperature, seed, use_flow) -> np.ndarray:
    n = number(n, "the number of samples", 1, MAX_SAMPLES)
    t = number(temperature, "the temperature", 0.0, 3.0, integer=False)
    seed = number(seed, "the seed", 0, 2**31 - 1)
    return eng.sample_latents(n, t, seed, flag(use_flow, "the flow prior switch (use_flow)") and eng.has_prior_flow)


@user_errors
def sample(state: DemoState, n, temperature, seed, use_flow, model: str) -> tuple[list[str], list]:
    """n prior samples -> (wav paths, spectrogram figures on one colour scale)."""
    eng = state.models.get(model)
    z = _prior(eng, n, temperature, seed, use_flow)
    audio = list(eng.decode_many(z))  # one batched decode
    paths = [state.files.wav(a, eng.sample_rate, f"sample{i + 1}") for i, a in enumerate(audio)]
    titles = [f"Sample {i + 1} (seed {number(seed, 'the seed', 0, 2**31 - 1)})" for i in range(len(audio))]
    return paths, plots.spectrogram_figures(audio, eng.sample_rate, titles, height=240)


@user_errors
def direction_labels(state: DemoState, model: str) -> list[str]:
    d = state.models.directions(model)
    return [f"Direction {i + 1} ({e:.0%} of the variance)" for i, e in enumerate(d.explained)]


@user_errors
def move(state: DemoState, n, temperature, seed, use_flow, model: str, *amounts: float):
    """Sample 1 of the gallery moved along the principal directions (amounts in std) -> (wav, figure)."""
    eng = state.models.get(model)
    d = state.models.directions(model)
    z = _prior(eng, n, temperature, seed, use_flow)[0]
    a = np.zeros(len(d.scales))
    for i, v in enumerate(amounts[: len(a)]):
        a[i] = number(v, f"direction {i + 1}", -3.0, 3.0, integer=False)
    z = (z + (a * d.scales) @ d.components).astype(np.float32)  # broadcasts over the frames of temporal latents
    y = eng.decode(z)
    moved = ", ".join(f"{v:+.1f}" for v in a)
    title = f"Sample 1 moved by ({moved}) std"
    fig = plots.spectrogram_figure(plots.display_spectrogram(y, eng.sample_rate), title)
    return state.files.wav(y, eng.sample_rate, "direction"), fig


def _gallery() -> tuple[list[gr.Column], list[gr.Audio], list[gr.Plot]]:
    """Two rows of four hidden slots (a spectrogram over a player); a sampling shows as many as it made."""
    slots, slot_audio, slot_fig = [], [], []
    for row in range(2):
        with gr.Row():
            for i in range(row * 4, row * 4 + 4):
                with gr.Column(visible=False, min_width=240) as col:
                    slot_fig.append(gr.Plot(show_label=False))
                    slot_audio.append(Audio(label=f"Sample {i + 1}", **AUDIO_OUT))
                slots.append(col)
    return slots, slot_audio, slot_fig


def _directions(state: DemoState, prior: list) -> list[gr.Slider]:
    """The latent directions panel: one slider per direction, decoded on release; returns the sliders."""
    with gr.Accordion("Latent directions", open=True):
        intro("Move sample 1 along the top principal directions of the prior (a PCA of prior samples), "
              "in standard deviations; it is decoded when you release a slider.")  # fmt: skip
        with gr.Row():
            dirs = [gr.Slider(-3, 3, value=0, step=0.1, label=f"Direction {i + 1}") for i in range(N_DIRECTIONS)]
        with gr.Row():
            dir_fig = gr.Plot(show_label=False)
            with gr.Column():
                dir_audio = Audio(label="Moved sample", **AUDIO_OUT)
                dir_reset = gr.Button("Reset directions")

    @gated(state.gate)
    def ui_move(*args):
        return move(state, *args)

    for d in dirs:
        d.release(ui_move, prior + dirs, [dir_audio, dir_fig], **UI)
    dir_reset.click(lambda: [0.0] * N_DIRECTIONS, None, dirs, **UI).then(
        ui_move, prior + dirs, [dir_audio, dir_fig], **UI)  # fmt: skip
    return dirs


def build(state: DemoState, model: gr.Dropdown, has_flow: bool) -> tuple[gr.Checkbox, list[gr.Slider]]:
    """The tab; returns what a change of model updates: the flow-prior switch and the direction sliders."""
    with gr.Tab("Sample"):
        intro("Draw latent vectors from the prior and decode them: new sounds the model invents. "
              "Temperature scales the prior's spread; the same seed gives the same sounds.")  # fmt: skip
        with gr.Row():
            n = gr.Slider(1, MAX_SAMPLES, value=4, step=1, label="Number of samples")
            temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature")
            seed = gr.Slider(0, 9999, value=0, step=1, label="Seed")
            use_flow = gr.Checkbox(value=has_flow, interactive=has_flow, label="Flow prior (off: plain Gaussian)")
        sample_btn = gr.Button("Sample", variant="primary", size="lg")
        slots, slot_audio, slot_fig = _gallery()
        prior = [n, temperature, seed, use_flow, model]
        dirs = _directions(state, prior)

    @gated(state.gate)
    def ui_sample(k, t, s, f, m):
        paths, figs = sample(state, k, t, s, f, m)
        pad = [None] * (MAX_SAMPLES - len(paths))
        return [gr.update(visible=i < len(paths)) for i in range(MAX_SAMPLES)] + paths + pad + figs + pad

    sample_btn.click(ui_sample, prior, slots + slot_audio + slot_fig, **UI)
    return use_flow, dirs
