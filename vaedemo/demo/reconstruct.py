"""The Reconstruct tab: encode a sound into the latent space and decode it again; spectrograms and metrics."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import numpy as np

import vaedemo.demo.typicality as typicality  # not `from . import`: that names vaedemo.demo (a cycle)
from vaedemo import plots
from vaedemo.audio import MAX_SAMPLE, resample, shown_name, to_channels
from vaedemo.errors import VaedemoError
from vaedemo.inference import Engine, Reconstruction, TooManyHitsError
from vaedemo.metrics import reconstruction_metrics

from .chosen import for_chosen_model
from .common import AUDIO_OUT, UI, Audio, examples, flag, intro, level_text, peak_dbfs, themed, user_errors
from .guard import gated
from .search import REFINE_SECONDS, REFINE_STEPS, SWITCH, search_plan
from .state import DemoState, trim_notice

METRIC_LABELS = {"log_mel_l1": ("log-mel L1", "lower"), "audible_log_mel_l1": ("log-mel L1, top 40 dB", "lower"),
                 "multi_resolution_stft": ("multi-resolution STFT", "lower"),
                 "spectral_convergence": ("spectral convergence", "lower"),
                 "si_sdr": ("SI-SDR (dB)", "higher")}  # fmt: skip
NO_METRICS = "Metrics appear here."
NO_TYPICALITY = "Typicality (how likely the sound is under the learned prior) appears here."
ONE_SHOTS = ["timgm6mb-standard_snare.flac", "timgm6mb-tr-808_kick.flac", "musescore-standard_crash.flac",
             "timgm6mb-tr-808_closed-hat.flac", "musescore-standard_tom.flac"]  # fmt: skip
LOOPS = ["drum_loop.flac", "timgm6mb-standard_snare.flac"]
# The seminar's first slide: what the model is and what each tab shows (collapsed: the controls stay on screen)
ABOUT = """\
**An audio VAE** (a variational autoencoder, RAVE-style) squeezes a sound into a **latent vector** (the one-shot \
models: 64 numbers per ~1 s drum hit; the temporal one: 16 numbers every 12 ms) and decodes latent vectors back \
into sound. Its **prior** is a learned density over the latent space, a RealNVP normalizing flow: sampling it invents \
new sounds, and its exact log-density p(z) says how typical any sound's latent is.

* **Reconstruct**: encode and decode a sound; what survives the bottleneck, and how typical the sound is \
(its percentile among the training clips).
* **Sample**: new sounds drawn from the prior; a seed finds one again, the temperature narrows or widens the prior.
* **Interpolate**: walk from sound A to sound B through the latent space.
* **Latent map**: the training set's sounds as points coloured by drum family, prior samples on the same map, \
shaded by the prior's density.

**Link to this view** (top right) gives the address of what is on screen: the model, the tab, the seed and the temperature."""
AB_IDLE = "A = input, B = reconstruction: **A/B** plays one and switches to the other at the same moment."
# In the browser, with two players of its own (the files behind the download links of both audio components): whichever
# of A and B plays pauses and the other plays on from the same moment; nothing playing, A starts from the beginning.
# Returns the label beside the button.
AB_TOGGLE = """
() => {
  const url = (id) => document.querySelector(id + ' a[download]')?.href;
  const urls = {A: url('#rec-input'), B: url('#rec-output')};
  if (!urls.A || !urls.B) return 'Reconstruct a sound first: then **A/B** switches between input and output.';
  const ab = (window.vaedemoAB ||= {});
  for (const k of ['A', 'B']) {
    if (!ab[k] || ab[k].dataset.url !== urls[k]) {
      if (ab[k]) ab[k].pause();
      ab[k] = new Audio(urls[k]);
      ab[k].dataset.url = urls[k];
    }
  }
  const from = !ab.A.paused ? ab.A : !ab.B.paused ? ab.B : null;
  const to = from === ab.A ? ab.B : ab.A;
  to.currentTime = from ? from.currentTime : 0;
  if (from) from.pause();
  to.play();
  return 'Now playing **' + (to === ab.A ? 'A (input)' : 'B (reconstruction)') + '**: click again to switch.';
}
"""
FIGURE_CHANNELS = 2  # metrics and figures use at most a stereo mix, at the model's rate
MAX_HITS = 600  # a performance's hits rebuilt by a one-vector model in one request, each a clip's encode and decode
# (about 4 ms here: 2-3 s in all); 16 channels of hits every 60 ms had taken 32 s, and three such requests both of the
# server's compute slots for minutes (a Sample click waited 81 s). A busy 30 s stereo loop has about 360.


def channel_pairs(channels: int) -> list[slice]:
    """The groups of an input's channels that go through the model together: two at a time."""
    return [slice(i, i + 2) for i in range(0, channels, 2)]


def reconstruct_channels(eng: Engine, x: np.ndarray, sr: int, refine: int = 0, max_hits: int | None = None
                         ) -> Reconstruction:  # fmt: skip
    """Engine.reconstruction of any channel count, two channels at a time: memory grows with the length and the
    channel count of the input, but the model never sees more than a stereo input's worth at once. Its hits are
    those of every pair, summed (None where the model did not cut the input); more than ``max_hits`` of them in all:
    :class:`~vaedemo.inference.TooManyHitsError` (its count that of the pair that went over)."""
    if x.shape[1] <= 2:
        return eng.reconstruction(x, sr, refine, max_hits)
    y, hits = np.empty_like(x), []
    for pair in channel_pairs(x.shape[1]):
        left = None if max_hits is None else max_hits - sum(h or 0 for h in hits)
        part = eng.reconstruction(x[:, pair], sr, refine, left)
        y[:, pair] = part.audio if part.audio.shape[1] == y[:, pair].shape[1] else part.audio.mean(1, keepdims=True)
        hits.append(part.hits)
    return Reconstruction(y, None if hits[0] is None else sum(hits))


def _for_metrics(a: np.ndarray, sr: int, rate: int, channels: int) -> np.ndarray:
    """What the figures and metrics read: the figures' channels at ``rate``, within what is read as audio (an input
    near the decoder's bound of 1000 came back at 1.9e3, and the metrics refused the reconstruction)."""
    return np.clip(resample(to_channels(a, channels), sr, rate), -MAX_SAMPLE, MAX_SAMPLE)


@user_errors
def reconstruct(state: DemoState, path: str | None, model: str, with_typicality: bool = False, refine: bool = False):
    """Upload -> (reconstruction wav, input figure, reconstruction figure, metrics markdown, result dict), and with
    ``with_typicality`` a sixth item: the typicality Markdown (see typicality.py; the page shows it). With ``refine``
    the latents are searched (:func:`search.search_plan` says for how many steps; the result's ``refine_steps``, 0 when the
    input is beyond the demo's bound, which the table then says).

    The reconstruction keeps the input's rate, length and channels; the metrics and both figures are computed on a mix
    of at most two channels at the model's rate, so that a 192 kHz, 16-channel upload costs about what the same
    duration of stereo at the model's rate does. The result dict holds the metrics and what was used of the input
    (``trimmed``, ``seconds_used``, ``seconds_in_file``, ``refine_steps``, and ``refine_note``: why a search asked for
    did not run, else empty; the /reconstruct API returns it)."""
    search = flag(refine, SWITCH)
    eng = state.models.get(model)
    d = state.load(path)
    x, sr = d.audio, d.sample_rate
    n, c_in = x.shape
    steps, why_not = search_plan(eng, n, sr, c_in, by_hits=True) if search else (0, "")
    started = time.perf_counter()
    try:
        rec = reconstruct_channels(eng, x, sr, steps, MAX_HITS)
    except TooManyHitsError:
        raise VaedemoError(too_many_hits(state, Path(path).name, model or state.models.default, c_in)) from None
    y, hits = rec.audio, rec.hits
    took = time.perf_counter() - started
    score = typicality.score_audio(eng, x, sr) if with_typicality else None
    typical = typicality.describe(score) if with_typicality else None
    if score is not None and steps:  # the search's latent is not the one scored (unweighted, it leaves the prior)
        typical += "\n\nScored: the encoder's latent, before the search."
    out = state.files.wav(y, sr, "reconstruction")
    k = min(FIGURE_CHANNELS, y.shape[1])  # a stereo model makes mono stereo
    rate = eng.sample_rate if n * eng.sample_rate >= sr else sr  # a few samples at a high rate: not resampled to none
    ref, est = _for_metrics(x, sr, rate, k), _for_metrics(y, sr, rate, k)
    notice = trim_notice(Path(path).name, d, state.max_seconds) if d.trimmed else ""
    result = {"trimmed": d.trimmed, "seconds_used": round(n / sr, 3), "refine_steps": steps, "refine_note": why_not,
              "seconds_in_file": None if d.seconds_in_file is None else round(d.seconds_in_file, 3), "hits": hits}  # fmt: skip
    del d, x, y, rec  # the input at its own rate and channel count is not needed any more
    ch = f", {c_in} ch. (mix)" if c_in > 1 else ""  # (short: the title spans half the page at 1280 px)
    fig_in, fig_out = plots.spectrogram_figures(
        [ref, est], rate, [f"Input — {n / sr:.2f} s, {sr} Hz{ch}", "Reconstruction"]
    )
    metrics = reconstruction_metrics(ref, est, rate)
    rows = [f"| {METRIC_LABELS[m][0]} ({METRIC_LABELS[m][1]} is better) | {v:.3f} |" for m, v in metrics.items()]
    # the levels side by side: the reconstruction plays as decoded, and a model gives its own level to an input far
    # from its training clips' (a -58 dBFS snare came back at -30; digital silence as a faint hit)
    rows.append(f"| peak, input → reconstruction | {level_text(peak_dbfs(ref), True)} → "
                f"{level_text(peak_dbfs(est), True)} |")
    table = "| metric | value |\n|---|---|\n" + "\n".join(rows)
    searched = f"Latent searched for {steps} steps: {took:.1f} s." if steps else why_not
    table += "".join(f"\n\n{line}" for line in (searched, hits_note(state, hits, c_in), notice) if line)
    res = (out, themed(fig_in), themed(fig_out), table, {**metrics, **result})
    return (*res, typical) if with_typicality else res


def too_many_hits(state: DemoState, name: str, model: str, channels: int) -> str:
    """The sentence for a performance beyond :data:`MAX_HITS`, with the model that takes it whole, if any."""
    across = f" across its {channels} channels" if channels > 2 else ""
    loops = loop_model(state)
    whole = f", and {loops} (a latent time series) takes it whole" if loops else ""
    return (f"{shown_name(name)} holds more than {MAX_HITS} hits{across}: {model} rebuilds a performance hit by hit, a "
            f"clip each, at most {MAX_HITS} a request here; a shorter excerpt has fewer{whole}.")


def loop_model(state: DemoState) -> str | None:
    """The model to suggest for a whole performance: one with a latent time series, a centred one first (offline,
    its look-ahead costs nothing and it reconstructs closer than a causal one); None where there is none."""
    temporal = sorted((label for label, spec in state.models.specs.items() if spec.single is False),
                      key=lambda label: bool(state.models.specs[label].causal))  # fmt: skip
    return temporal[0] if temporal else None


def hits_note(state: DemoState, hits: int | None, channels: int = 1) -> str:
    """What a one-shot model did with a performance (it knows single hits), and which model follows a whole one."""
    if hits is None:
        return ""
    loops = loop_model(state)
    better = f"; for loops, **{loops}** (a latent time series) follows the whole performance" if loops else ""
    cut = (f"cut into {hits} hits in all (two channels at a time, each pair of its {channels} at its own onsets)"
           if channels > 2 else f"cut at {hits} detected onsets")  # fmt: skip
    return f"One vector per hit: the input was {cut} and rebuilt hit by hit{better}."


def check_input(path) -> None:
    """The first step of a reconstruction: one error (and no output marked as failed) when there is no input."""
    if not path:
        raise gr.Error("Upload or record a sound first (or click one of the examples).", print_exception=False)


def per_clip(state: DemoState, model: str | None) -> bool:
    """Whether the model has one latent vector per clip (its examples are one-shots; otherwise the loop comes first)."""
    spec = state.models.specs.get(model or state.models.default)
    return spec is None or spec.single is not False


def example_visibility(state: DemoState, model: str | None) -> list:
    """gr.update()s for the two example sets: one-shots for per-clip models, the loop for temporal ones."""
    shots = per_clip(state, model)
    return [gr.update(visible=shots), gr.update(visible=not shots)]


def build(state: DemoState, model: gr.Dropdown) -> list:
    """The tab: an input (upload, microphone, examples), both spectrograms, the reconstruction, the metrics and the
    typicality. Returns its result components (a change of model clears them) and its two columns of examples."""
    with gr.Tab("Reconstruct", id="reconstruct"):
        with gr.Accordion("About this demo: the model, and what each tab shows", open=False, elem_id="about"):
            gr.Markdown(ABOUT, elem_classes="intro")
        intro("Encode a sound into the latent space and decode it again: what survives the bottleneck?")
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                rec_in = Audio(sources=["upload", "microphone"], type="filepath", buttons=["download"],
                               label="Input (drop a file or record)", elem_id="rec-input")  # fmt: skip
                with gr.Row(equal_height=True):  # A/B next to the button: on the first screen of a small projector
                    rec_btn = gr.Button("Reconstruct", variant="primary", size="lg", scale=3, elem_id="rec-btn")
                    ab_btn = gr.Button("A/B ⇄", size="lg", scale=1, min_width=90, elem_id="ab-toggle")
                refine = gr.Checkbox(False, label="Search the latent (closer, slower)", elem_id="rec-refine",
                                     info=f"Fits the latent to this input through the decoder: {REFINE_STEPS} steps, "
                                          f"sounds up to {REFINE_SECONDS:g} s.")  # fmt: skip
                ab_now = gr.Markdown(AB_IDLE, elem_id="ab-now")
                shots = per_clip(state, None)
                with gr.Column(visible=shots) as shot_col:
                    gr.Examples(examples(ONE_SHOTS), rec_in, label="Drum one-shots (click one to reconstruct it)")
                with gr.Column(visible=not shots) as loop_col:
                    gr.Examples(examples(LOOPS), rec_in, label="Examples (click one to reconstruct it)")
            with gr.Column(scale=5):
                with gr.Row():
                    rec_fig_in = gr.Plot(show_label=False, elem_id="spec-input", min_width=300)
                    rec_fig_out = gr.Plot(show_label=False, elem_id="spec-output", min_width=300)
                with gr.Row():
                    with gr.Column(min_width=300):
                        rec_out = Audio(label="Reconstruction (not normalised)", elem_id="rec-output", **AUDIO_OUT)
                    with gr.Column():
                        rec_typical = gr.Markdown(NO_TYPICALITY, elem_id="typicality")
                        rec_metrics = gr.Markdown(NO_METRICS, elem_id="rec-metrics")
        rec_state = gr.State()

    @for_chosen_model(state.chosen, model_at=1)
    @gated(state.gate)
    def ui_reconstruct(path, m, search):
        out, f_in, f_out, table, result, typical = reconstruct(state, path, m, with_typicality=True, refine=search)
        return out, themed(f_in, 270), themed(f_out, 270), table, result, typical

    def ui_auto(request: gr.Request, path, m, search):  # a new input runs at once; clearing it clears all
        return ui_reconstruct(request, path, m, search) if path else cleared()

    @gated(state.gate)
    @user_errors
    def ui_check(path):  # a missing input or a file that is not audio: one error, no output marked as failed
        check_input(path)
        state.check_readable(path)

    @gated(state.gate)
    @user_errors
    def ui_check_upload(path):  # as ui_check; a cleared input is no error (it clears the results)
        state.check_readable(path)

    ab_btn.click(None, None, ab_now, js=AB_TOGGLE, api_visibility="private")
    io = {"inputs": [rec_in, model, refine],
          "outputs": [rec_out, rec_fig_in, rec_fig_out, rec_metrics, rec_state, rec_typical]}  # fmt: skip
    rec_btn.click(ui_check, rec_in, None, **UI).success(ui_reconstruct, **io, **UI)
    rec_in.change(ui_check_upload, rec_in, None, **UI).success(ui_auto, **io, **UI)
    refine.input(ui_auto, **io, **UI)  # ticked or not, the same input again: A/B the search against one pass
    return [*io["outputs"]], [shot_col, loop_col]


def cleared() -> tuple:
    """What the result components show before (or after a change of model) anything is reconstructed."""
    return None, None, None, NO_METRICS, None, NO_TYPICALITY
