"""The Reconstruct tab: encode a sound into the latent space and decode it again; spectrograms and metrics."""

from __future__ import annotations

import gradio as gr

from vaedemo import plots
from vaedemo.audio import to_channels
from vaedemo.metrics import reconstruction_metrics

from .common import AUDIO_OUT, UI, Audio, examples, intro, user_errors
from .state import DemoState

METRIC_LABELS = {"log_mel_l1": ("log-mel L1", "lower"), "multi_resolution_stft": ("multi-resolution STFT", "lower"),
                 "spectral_convergence": ("spectral convergence", "lower"),
                 "si_sdr": ("SI-SDR (dB)", "higher")}  # fmt: skip
NO_METRICS = "Metrics appear here."


@user_errors
def reconstruct(state: DemoState, path: str | None, model: str):
    """Upload -> (reconstruction wav, input figure, reconstruction figure, metrics markdown, metrics dict)."""
    eng = state.models.get(model)
    x, sr = state.load(path)
    y = eng.reconstruct(x, sr)
    out = state.files.wav(y, sr, "reconstruction")
    ch = f", {x.shape[1]} channels (mono mix shown)" if x.shape[1] > 1 else ""
    fig_in, fig_out = plots.spectrogram_figures(
        [x, y], sr, [f"Input — {len(x) / sr:.2f} s, {sr} Hz{ch}", "Reconstruction"]
    )
    metrics = reconstruction_metrics(to_channels(x, y.shape[1]), y, sr)  # a stereo model makes mono stereo
    rows = [f"| {METRIC_LABELS[k][0]} | {v:.3f} | {METRIC_LABELS[k][1]} is better |" for k, v in metrics.items()]
    table = "| metric | value | |\n|---|---|---|\n" + "\n".join(rows)
    return out, fig_in, fig_out, table, metrics


def build(state: DemoState, model: gr.Dropdown) -> None:
    """The tab: an input (upload, microphone, examples), the reconstruction, both spectrograms, the metrics."""
    with gr.Tab("Reconstruct"):
        intro("Encode a sound into the latent space and decode it again: what survives the bottleneck?")
        with gr.Row():
            with gr.Column():
                rec_in = Audio(sources=["upload", "microphone"], type="filepath", buttons=["download"],
                               label="Input (drop a file or record)")  # fmt: skip
                rec_btn = gr.Button("Reconstruct", variant="primary", size="lg")
                gr.Examples(examples(["timgm6mb-standard_snare.flac", "timgm6mb-tr-808_kick.flac",
                                      "musescore-standard_crash.flac", "drum_loop.flac"]), rec_in,
                            label="Examples (click one to reconstruct it)")  # fmt: skip
            with gr.Column():
                rec_out = Audio(label="Reconstruction (original loudness)", elem_id="rec-output", **AUDIO_OUT)
                rec_metrics = gr.Markdown(NO_METRICS)
        with gr.Row():
            rec_fig_in = gr.Plot(label="Input spectrogram", elem_id="spec-input")
            rec_fig_out = gr.Plot(label="Reconstruction spectrogram", elem_id="spec-output")
        rec_state = gr.State()

        def ui_reconstruct(path, m):
            return reconstruct(state, path, m)

        def ui_auto(path, m):  # a new input (upload, recording, example) runs at once; clearing it clears all
            return reconstruct(state, path, m) if path else (None, None, None, NO_METRICS, None)

        io = {"inputs": [rec_in, model], "outputs": [rec_out, rec_fig_in, rec_fig_out, rec_metrics, rec_state]}
        rec_btn.click(ui_reconstruct, **io, **UI)
        rec_in.change(ui_auto, **io, **UI)
