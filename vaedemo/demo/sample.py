"""The Sample tab: a gallery of sounds drawn from the prior, and sample 1 moved along the latent directions."""

from __future__ import annotations

import gradio as gr
import numpy as np

from vaedemo import plots
from vaedemo.inference import Engine

from .chosen import for_chosen_model
from .common import (
    AUDIO_OUT,
    N_DIRECTIONS,
    UI,
    Audio,
    flag,
    intro,
    level_text,
    normalise_peak,
    number,
    peak_dbfs,
    themed,
    user_errors,
)
from .guard import gated
from .state import DemoState

MAX_SAMPLES = 8
MAX_SEED = 9999  # the seed slider's range (the API takes any seed up to 2**31 - 1)
MAX_TEMPERATURE = 2.0  # the temperature slider's range (the API takes up to 3)
NORMALISE_LABEL = "Normalise loudness (−1 dBFS peak)"
COLOUR_BAR_PX = 84  # the right margin of every sample's figure: the last one's colour bar (ticks and "dB") fits in it


def _prior(eng: Engine, n, temperature, seed, use_flow) -> tuple[np.ndarray, list[int]]:
    """(latents of n sounds, their seeds): sample k is drawn with seed + k - 1 (modulo 2**31) alone, so that its
    seed (in its title) reproduces it with n = 1."""
    n = number(n, "the number of samples", 1, MAX_SAMPLES)
    t = number(temperature, "the temperature", 0.0, 3.0, integer=False)
    seed = number(seed, "the seed", 0, 2**31 - 1)
    flow = flag(use_flow, "the flow prior switch (use_flow)") and eng.has_prior_flow
    seeds = [(seed + k) % 2**31 for k in range(n)]
    return np.concatenate([eng.sample_latents(1, t, s, flow) for s in seeds]), seeds


def for_listening(audio: np.ndarray, normalise) -> tuple[np.ndarray, float]:
    """(audio peak-normalised to -1 dBFS when ``normalise``, its raw peak level in dBFS)."""
    level = peak_dbfs(audio)
    return (normalise_peak(audio) if flag(normalise, "the loudness switch (normalise)") else audio), level


@user_errors
def sample(state: DemoState, n, temperature, seed, use_flow, model: str, normalise=False) -> tuple[list[str], list]:
    """n prior samples -> (wav paths, spectrogram figures on one colour scale, one colour bar: the last figure's).
    Sample k uses seed + k - 1; ``normalise``: each is peak-normalised to -1 dBFS (the page's default; the API
    returns the raw level). Each title gives the sample's seed and its raw peak level."""
    eng = state.models.get(model)
    z, seeds = _prior(eng, n, temperature, seed, use_flow)
    audio, levels = zip(*(for_listening(a, normalise) for a in eng.decode_many(z)))  # one batched decode
    paths = [state.files.wav(a, eng.sample_rate, f"sample{i + 1}") for i, a in enumerate(audio)]
    titles = [f"Sample {i + 1} · seed {s} · {level_text(lv)}" for i, (s, lv) in enumerate(zip(seeds, levels))]
    figs = plots.spectrogram_figures(list(audio), eng.sample_rate, titles, height=230)
    for f in figs[:-1]:
        f.update_traces(showscale=False)  # one scale for all: one colour bar
    # each keeps the colour bar's room (after the theme's margins), so that the spectrograms are as wide as each other
    return paths, [themed(f).update_layout(title_font_size=15, margin_r=COLOUR_BAR_PX, margin_autoexpand=False)
                   for f in figs]  # fmt: skip


@user_errors
def direction_labels(state: DemoState, model: str) -> list[str]:
    d = state.models.directions(model)
    return [f"Direction {i + 1} ({e:.0%} of the variance)" for i, e in enumerate(d.explained)]


def moves_text(amounts: np.ndarray) -> str:
    """', directions 1 +2.0, 3 −1.0 std' for the directions moved (short enough for a half-width title at 1280 px)."""
    moved = [f"{i + 1} {v:+.1f}".replace("-", "−") for i, v in enumerate(amounts) if v]
    if not moved:
        return ", not moved"
    return f", direction{'s' if len(moved) > 1 else ''} {', '.join(moved)} std"


@user_errors
def move(state: DemoState, n, temperature, seed, use_flow, model: str, *amounts: float, normalise=False):
    """Sample 1 of the gallery moved along the principal directions (amounts in std) -> (wav, figure)."""
    eng = state.models.get(model)
    d = state.models.directions(model)
    z = _prior(eng, 1, temperature, seed, use_flow)[0][0]
    number(n, "the number of samples", 1, MAX_SAMPLES)
    a = np.zeros(len(d.scales))
    for i, v in enumerate(amounts[: len(a)]):
        a[i] = number(v, f"direction {i + 1}", -3.0, 3.0, integer=False)
    z = (z + (a * d.scales) @ d.components).astype(np.float32)  # broadcasts over the frames of temporal latents
    y, level = for_listening(eng.decode(z), normalise)
    title = f"Sample 1{moves_text(a)} · {level_text(level, short=True)}"
    fig = plots.spectrogram_figure(plots.display_spectrogram(y, eng.sample_rate), title, height=260)
    return state.files.wav(y, eng.sample_rate, "direction"), themed(fig)


def _gallery() -> tuple[list[gr.Column], list[gr.Audio], list[gr.Plot]]:
    """Two rows of four hidden slots (a spectrogram over a player); a sampling shows as many as it made."""
    slots, slot_audio, slot_fig = [], [], []
    for row in range(2):
        with gr.Row(elem_classes="gallery-row"):
            for i in range(row * 4, row * 4 + 4):
                with gr.Column(visible=False, min_width=240) as col:
                    slot_fig.append(gr.Plot(show_label=False, elem_classes="sample-fig"))
                    slot_audio.append(Audio(label=f"Sample {i + 1}", **AUDIO_OUT))
                slots.append(col)
    return slots, slot_audio, slot_fig


def _directions(state: DemoState, prior: list, normalise: gr.Checkbox) -> tuple[list[gr.Slider], list]:
    """The latent directions panel: one slider per direction, decoded as it moves (mouse or keyboard; the last
    position always wins); returns the sliders and its outputs."""
    with gr.Accordion("Latent directions", open=True):
        intro("Move sample 1 along the top principal directions of the prior (a PCA of prior samples), "
              "in standard deviations; drag a slider or use the arrow keys.")  # fmt: skip
        with gr.Row():
            dirs = [gr.Slider(-3, 3, value=0, step=0.1, label=f"Direction {i + 1}") for i in range(N_DIRECTIONS)]
        with gr.Row():
            dir_fig = gr.Plot(show_label=False, elem_id="direction-fig")
            with gr.Column():
                dir_audio = Audio(label="Moved sample", **AUDIO_OUT)
                dir_reset = gr.Button("Reset directions")

    @for_chosen_model(state.chosen, model_at=4)  # prior: n, temperature, seed, use_flow, model
    @gated(state.gate)
    def ui_move(*args):
        *values, norm = args
        return move(state, *values, normalise=norm)

    inputs = prior + dirs + [normalise]
    gr.on([d.input for d in dirs], ui_move, inputs, [dir_audio, dir_fig], trigger_mode="always_last", **UI)
    dir_reset.click(lambda: [0.0] * N_DIRECTIONS, None, dirs, **UI).then(
        ui_move, inputs, [dir_audio, dir_fig], **UI)  # fmt: skip
    return dirs, [dir_audio, dir_fig]


def build(state: DemoState, model: gr.Dropdown, has_flow: bool) -> tuple[gr.Checkbox, list[gr.Slider], list, list,
                                                                          dict]:  # fmt: skip
    """The tab; returns what a change of model updates: the flow-prior switch, the direction sliders, the result
    components and their cleared values; and the controls a link can set ({"seed": ..., "temperature": ...})."""
    with gr.Tab("Sample", id="sample"):
        intro("Draw latent vectors from the prior and decode them: new sounds the model invents. Temperature scales "
              "the prior's spread; sample k uses seed + k − 1, the same seed gives the same sounds.")  # fmt: skip
        with gr.Row(equal_height=True):
            n = gr.Slider(1, MAX_SAMPLES, value=4, step=1, label="Number of samples", min_width=160)
            temperature = gr.Slider(0.0, MAX_TEMPERATURE, value=1.0, step=0.05, label="Temperature", min_width=160)
            seed = gr.Slider(0, MAX_SEED, value=0, step=1, label="Seed", min_width=160)
            dice = gr.Button("⚄ New seed", min_width=120, scale=0, elem_id="sample-dice")
            with gr.Column(min_width=200, scale=1):
                use_flow = gr.Checkbox(value=has_flow, interactive=has_flow, label="Flow prior (off: plain Gaussian)",
                                       elem_id="sample-use-flow")
                normalise = gr.Checkbox(value=True, label=NORMALISE_LABEL)
            sample_btn = gr.Button("Sample", variant="primary", size="lg", min_width=140, scale=0, elem_id="sample-btn")
        slots, slot_audio, slot_fig = _gallery()
        prior = [n, temperature, seed, use_flow, model]
        dirs, dir_out = _directions(state, prior, normalise)

    @for_chosen_model(state.chosen, model_at=4)
    @gated(state.gate)
    def ui_sample(k, t, s, f, m, norm):
        paths, figs = sample(state, k, t, s, f, m, norm)
        pad = [None] * (MAX_SAMPLES - len(paths))
        return [gr.update(visible=i < len(paths)) for i in range(MAX_SAMPLES)] + paths + pad + figs + pad

    outputs = slots + slot_audio + slot_fig
    sample_btn.click(ui_sample, prior + [normalise], outputs, **UI)
    dice.click(new_seed, None, seed, **UI).then(ui_sample, prior + [normalise], outputs, **UI)
    cleared = [gr.update(visible=False)] * MAX_SAMPLES + [None] * (2 * MAX_SAMPLES) + [None, None]
    return use_flow, dirs, outputs + dir_out, cleared, {"seed": seed, "temperature": temperature}


def new_seed() -> int:
    """A fresh seed for the dice button (the page shows it, so that a good one can be noted and found again)."""
    return int(np.random.default_rng().integers(0, MAX_SEED + 1))
