"""The Interpolate tab: walk from sound A to sound B through the latent space, one position or the whole path."""

from __future__ import annotations

import math
from pathlib import Path

import gradio as gr
import numpy as np

import vaedemo.demo.typicality as typicality  # not `from . import`: that names vaedemo.demo (a cycle)
from vaedemo import plots
from vaedemo.audio import to_channels
from vaedemo.errors import VaedemoError
from vaedemo.inference import METHODS, Engine, path_positions

from .chosen import for_chosen_model
from .common import AUDIO_OUT, EXAMPLES, UI, Audio, choice, examples, flag, intro, level_text, number, themed, user_errors
from .guard import gated
from .sample import NORMALISE_LABEL, for_listening, new_seed
from .search import INTERPOLATION_PRIOR_WEIGHT, SWITCH, search_plan
from .state import DemoState

KINDS = ["sound file", "prior sample"]
MAX_STEPS = 8
WIDE_TITLES_STEPS = 5  # up to this many steps, each title gives its level with its unit
SOURCE_EXAMPLES = ["timgm6mb-standard_snare.flac", "timgm6mb-tr-808_kick.flac", "musescore-standard_crash.flac",
                   "timgm6mb-tr-808_closed-hat.flac"]  # fmt: skip


def _lag(eng: Engine) -> int:
    """Samples by which a temporal causal model's decoded audio lags its input (0 for the others): Engine.reconstruct
    runs such a model past the input's end and drops the lag; the path does the same, so that its ends are the
    reconstructions of A and B (not 21 ms late and 21 ms short for drums_causal)."""
    return 0 if eng.mode.per_clip else int(eng.model.delay)


def _decoded(eng: Engine, y: np.ndarray) -> np.ndarray:
    """Decoded audio (..., samples, channels) with the model's lag (see :func:`_lag`) dropped from its start."""
    return y[..., _lag(eng) :, :]


def _encoded(state: DemoState, eng: Engine, label: str, path: str, name: str, search: bool) -> tuple[np.ndarray, str]:
    """The latents of a source file and a note on their search (empty when not asked for), cached by (model, path,
    modification time, search): the position slider decodes from them without encoding or searching again."""
    p = Path(path)
    key = (label, str(p), p.stat().st_mtime if p.exists() else 0, search)
    cached = state.latents.get(key)
    if cached is None:
        d = state.load(path, f"a sound for {name}")
        x = to_channels(d.audio, eng.channels)  # the model's channels before resampling
        lag = math.ceil(_lag(eng) * d.sample_rate / eng.sample_rate)  # the input's end reaches the output past the lag
        x = np.pad(x, ((0, lag), (0, 0))) if lag else x
        steps, why_not = search_plan(eng, len(x), d.sample_rate, eng.channels, f"the sound for {name}") if search \
            else (0, "")  # fmt: skip
        note = f"The latents of {name} searched for {steps} steps." if steps else why_not
        cached = eng.encode(x, d.sample_rate, steps, INTERPOLATION_PRIOR_WEIGHT), note
        with state.lock:
            state.latents[key] = cached
            while len(state.latents) > 32:
                state.latents.popitem(last=False)
    return cached


def _source(state: DemoState, eng: Engine, model: str, kind: str, path: str | None, seed, name: str,
            search: bool) -> tuple[np.ndarray, str]:  # fmt: skip
    if choice(kind, f"the kind of {name}", KINDS) == "prior sample":
        return eng.sample_latents(1, 1.0, number(seed, f"the seed of {name}", 0, 2**31 - 1))[0], ""
    if not path:
        raise VaedemoError(f"choose a sound for {name} (upload one or pick an example), or use a prior sample.")
    if not isinstance(path, str):  # a raw API request can send anything
        raise VaedemoError(f"the sound for {name} must be an uploaded file.")
    z, note = _encoded(state, eng, model, path, name, search)
    return eng.mode.sound_latent(z), note


def _pair(state: DemoState, eng: Engine, model, kind_a, file_a, seed_a, kind_b, file_b, seed_b, refine=False):
    """The latents of sources A and B (temporal: cut to the same length) and the notes on their search."""
    search = flag(refine, SWITCH)
    a, note_a = _source(state, eng, model, kind_a, file_a, seed_a, "source A", search)
    b, note_b = _source(state, eng, model, kind_b, file_b, seed_b, "source B", search)
    n = min(len(a), len(b))  # temporal: frame by frame, cut to the shorter trajectory
    cut = f"The path is as long as the shorter source: {_seconds(eng, n)} (A {_seconds(eng, len(a))}, B " \
          f"{_seconds(eng, len(b))})." if a.ndim == 2 and len(a) != len(b) else ""  # fmt: skip
    notes = " ".join(note for note in (note_a, note_b, cut) if note)
    return ((a[:n], b[:n]) if a.ndim == 2 else (a, b)), notes


def _seconds(eng: Engine, frames: int) -> str:
    return f"{frames * eng.hop / eng.sample_rate:.1f} s"


def _typicality_of_path(eng: Engine, zs: np.ndarray) -> str:
    """One line: the typicality percentile of each step's latent ``zs`` (per-clip flow models only)."""
    if not typicality.available(eng):
        return "Typicality: not available for this model (it needs one latent vector per clip and a flow prior)."
    scores = [typicality.percentile(eng, z) for z in zs]
    pcts = [s.percentile for s in scores]
    line = f"Typicality of each step (percentile of log p(z) among {scores[0].against}; about 50 is typical): "
    line += " → ".join(f"{p:.0f}" for p in pcts)
    if min(pcts) < typicality.FAR_OUT:
        line += "\n\n⚠️ Part of this path is far outside what the model learned (below the 1st percentile)."
    return line


@user_errors
def interpolate(state: DemoState, kind_a, file_a, seed_a, kind_b, file_b, seed_b, steps, method, model: str,
                normalise=False, with_typicality: bool = False, refine=False):  # fmt: skip
    """The N-step path A -> B -> (wav paths, one figure with a row of spectrograms[, typicality line, with the notes
    on the latent search]); ``normalise``: each step peak-normalised to -1 dBFS (its raw peak level in its title);
    ``refine``: the sound files' latents searched (:mod:`.search`), so that the path starts and ends closer to them."""
    eng = state.models.get(model)
    steps = number(steps, "the number of steps", 2, MAX_STEPS)
    method = choice(method, "the interpolation method", METHODS)
    (a, b), notes = _pair(state, eng, model, kind_a, file_a, seed_a, kind_b, file_b, seed_b, refine)
    zs = eng.path_latents(a, b, path_positions(steps), method)  # decoded, and scored for typicality
    path, levels = zip(*(for_listening(y, normalise) for y in _decoded(eng, eng.decode_many(zs))))
    paths = [state.files.wav(y, eng.sample_rate, f"step{i + 1}") for i, y in enumerate(path)]
    compact = steps > WIDE_TITLES_STEPS  # narrower spectrograms: "−12 dBFS" titles ran into each other
    titles = [f"{i / (steps - 1):.2f}<br>{_step_level(lv, compact)}" for i, lv in enumerate(levels)]
    fig = themed(plots.spectrogram_row(list(path), eng.sample_rate, titles, height=280)).update_layout(margin={"t": 60})
    fig.update_annotations(font_size=13)
    if compact:
        fig.update_xaxes(title={"text": "time; peaks in dBFS"}, row=1, col=1)
    if with_typicality:
        return paths, fig, _typicality_of_path(eng, zs) + (f"\n\n{notes}" if notes else "")
    return paths, fig


def _step_level(db: float, bare: bool) -> str:
    """A step's peak level under its position: '−12 dBFS', or ``bare`` '−12' (the axis names the unit)."""
    text = level_text(db, short=True)
    return text.removesuffix(" dBFS") if bare else text


@user_errors
def interpolate_at(state: DemoState, kind_a, file_a, seed_a, kind_b, file_b, seed_b, position, method, model: str,
                   normalise=False, refine=False):  # fmt: skip
    """One point of the path at ``position`` in [0, 1] -> (wav, figure)."""
    eng = state.models.get(model)
    t = number(position, "the position", 0.0, 1.0, integer=False)
    method = choice(method, "the interpolation method", METHODS)
    (a, b), _ = _pair(state, eng, model, kind_a, file_a, seed_a, kind_b, file_b, seed_b, refine)
    z = eng.path_latents(a, b, [t], method)[0]
    y, level = for_listening(_decoded(eng, eng.decode(z)), normalise)
    title = f"Position {t:.2f} ({method}) · {level_text(level)}"
    fig = plots.spectrogram_figure(plots.display_spectrogram(y, eng.sample_rate), title, height=240)
    return state.files.wav(y, eng.sample_rate, "position"), themed(fig)


def check_sources(kind_a, file_a, seed_a, kind_b, file_b, seed_b) -> None:
    """The first step of the page's events: one error (and no output marked as failed) when a source has no sound."""
    for name, kind, path in (("A", kind_a, file_a), ("B", kind_b, file_b)):
        if kind == KINDS[0] and not path:
            raise gr.Error(f"Choose a sound for source {name} (upload one or pick an example), or use a prior sample.",
                           print_exception=False)  # fmt: skip


def check_files(state: DemoState, kind_a, file_a, seed_a, kind_b, file_b, seed_b) -> None:
    """The sources' files decode (they are kept decoded for the path's own step); else one sentence."""
    for name, kind, path in (("A", kind_a, file_a), ("B", kind_b, file_b)):
        if kind == KINDS[0] and isinstance(path, str):
            state.check_readable(path, f"the sound for source {name}")


def _source_column(name: str, example: str) -> tuple[list[gr.components.Component], gr.Button]:
    """Source A or B: a sound file (upload, microphone, examples) or a prior sample; returns [kind, file, seed] and
    the seed's dice button."""
    with gr.Column(min_width=260):
        kind = gr.Radio(KINDS, value=KINDS[0], label=f"Source {name}")
        first = EXAMPLES / example
        src = Audio(sources=["upload", "microphone"], type="filepath", label=f"Sound {name}", buttons=["download"],
                    elem_id=f"sound-{name.lower()}", elem_classes="compact-player",
                    value=str(first) if first.is_file() else None)  # fmt: skip
        with gr.Row(equal_height=True):
            src_seed = gr.Number(value=1 if name == "A" else 2, precision=0, label=f"Prior seed for {name}",
                                 min_width=120)  # fmt: skip
            dice = gr.Button("⚄", scale=0, min_width=60, elem_id=f"dice-{name.lower()}")
        gr.Examples(examples(SOURCE_EXAMPLES), src, label=f"Examples for {name}")
    return [kind, src, src_seed], dice


def _path_slots() -> tuple[list[gr.Column], list[gr.Audio]]:
    """A row of MAX_STEPS hidden players; a rendered path shows as many as it has steps."""
    path_slots, path_audio = [], []
    with gr.Row():
        for i in range(MAX_STEPS):
            with gr.Column(visible=False, min_width=150) as col:
                path_audio.append(Audio(label=f"Step {i + 1}", elem_classes="compact-player", **AUDIO_OUT))
            path_slots.append(col)
    return path_slots, path_audio


def build(state: DemoState, model: gr.Dropdown) -> tuple[list, list]:
    """The tab: sources A and B on the left; the method, steps, the path (its figure first) and a position
    (decoded as the slider moves) on the right. Returns the result components and their cleared values."""
    with gr.Tab("Interpolate", id="interpolate"):
        intro("Walk from sound A to sound B through the latent space (temporal models: frame by frame). "
              "Render the whole path, or slide the position.")  # fmt: skip
        with gr.Row():
            sources, dice_a = _source_column("A", "timgm6mb-standard_kick.flac")
            more, dice_b = _source_column("B", "timgm6mb-standard_open-hat.flac")
            sources += more
            with gr.Column(scale=3):
                with gr.Row(equal_height=True):
                    # prior: along the learned prior (Engine.path_latents); slerp, lerp: straight through the latents
                    method = gr.Radio(list(METHODS), value="prior", label="Interpolation", min_width=220)
                    steps = gr.Slider(2, MAX_STEPS, value=5, step=1, label="Steps in the path", min_width=150)
                    normalise = gr.Checkbox(value=True, label=NORMALISE_LABEL, min_width=150)
                    search = gr.Checkbox(value=False, label="Search the latents of A and B", min_width=150,
                                         elem_id="path-refine")  # fmt: skip
                    path_btn = gr.Button("Render the path", variant="primary", size="lg", scale=0, min_width=150,
                                         elem_id="path-btn")  # fmt: skip
                path_fig = gr.Plot(label="Path A → B", elem_id="path-fig")
                path_slots, path_audio = _path_slots()
                path_typical = gr.Markdown("", elem_id="path-typicality")
                position = gr.Slider(0, 1, value=0.5, step=0.05, label="Position A → B (drag or use the arrow keys)")
                with gr.Row():
                    pos_fig = gr.Plot(show_label=False, scale=2, elem_id="pos-fig")
                    pos_audio = Audio(label="Sound at this position", scale=1, elem_classes="compact-player", **AUDIO_OUT)

    @for_chosen_model(state.chosen, model_at=8)  # the six sources' inputs, steps, method, model
    @gated(state.gate)
    def ui_path(*args):
        *values, norm, refine = args
        paths, fig, typical = interpolate(state, *values, normalise=norm, with_typicality=True, refine=refine)
        pad = [None] * (MAX_STEPS - len(paths))
        return [gr.update(visible=i < len(paths)) for i in range(MAX_STEPS)] + paths + pad + [fig, typical]

    @for_chosen_model(state.chosen, model_at=8)  # the six sources' inputs, position, method, model
    @gated(state.gate)
    def ui_position(*args):
        *values, norm, refine = args
        return interpolate_at(state, *values, normalise=norm, refine=refine)

    @gated(state.gate)
    @user_errors
    def ui_check(*values):  # a missing source or a file that is not audio: one error, no output marked as failed
        check_sources(*values)
        check_files(state, *values)

    path_out = path_slots + path_audio + [path_fig, path_typical]
    at_position = {"fn": ui_position, "inputs": sources + [position, method, model, normalise, search],
                   "outputs": [pos_audio, pos_fig], **UI}  # fmt: skip
    # a new path: the position's sound follows it (it kept the last path's until the slider moved)
    path_btn.click(ui_check, sources, None, **UI).success(
        ui_path, sources + [steps, method, model, normalise, search], path_out, **UI).success(**at_position)  # fmt: skip
    position.input(ui_check, sources, None, trigger_mode="always_last", **UI).success(**at_position)
    for dice, seed_box, kind in ((dice_a, sources[2], sources[0]), (dice_b, sources[5], sources[3])):
        dice.click(lambda: (new_seed(), KINDS[1]), None, [seed_box, kind], **UI)
    cleared = [gr.update(visible=False)] * MAX_STEPS + [None] * MAX_STEPS + [None, "", None, None]
    return path_out + [pos_audio, pos_fig], cleared
