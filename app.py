"""The vaedemo browser demo: ``python app.py [--checkpoint PATH|hf://org/repo ...] [--host H] [--port P] [--share]``.

Page layout and launch only; the handlers live in :mod:`vaedemo.app_logic`, the figures in :mod:`vaedemo.plots`,
the model math in :class:`vaedemo.inference.Engine`. Stable API endpoints (gradio_client): ``/reconstruct``,
``/sample`` and ``/interpolate`` (see the README).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # works offline: no version check, no telemetry

import gradio as gr  # noqa: E402
from gradio.data_classes import FileData  # noqa: E402

from vaedemo import plots  # noqa: E402
from vaedemo.app_logic import MAX_SAMPLES, MAX_STEPS, N_DIRECTIONS, Demo, Models, discover  # noqa: E402
from vaedemo.errors import VaedemoError  # noqa: E402

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
THEME = gr.themes.Default(primary_hue="indigo", secondary_hue="amber", text_size="lg")
CSS = """
.gradio-container {max-width: 1600px !important}
#title h1 {font-size: 2.3rem; margin-bottom: 0}
.intro p {font-size: 1.2rem; margin: 0.2rem 0 0.6rem}
.tab-wrapper button, button[role="tab"] {font-size: 1.2rem !important; font-weight: 600}
#summary p {font-size: 1.1rem}
"""
# Plotly clicks on the latent map -> the hidden #map-click textbox (gr.Plot has no select event).
JS = """
() => {
  const attach = () => document.querySelectorAll('#latent-map .js-plotly-plot').forEach((div) => {
    if (div.__vaedemo || !div.on) return;
    div.__vaedemo = true;
    div.on('plotly_click', (ev) => {
      const p = ev.points && ev.points[0];
      const box = document.querySelector('#map-click textarea, #map-click input');
      if (!p || p.customdata === undefined || !box) return;
      box.value = `${p.customdata}:${Date.now()}`;
      box.dispatchEvent(new Event('input', {bubbles: true}));
    });
  });
  new MutationObserver(attach).observe(document.body, {childList: true, subtree: true});
}
"""
KINDS = ["sound file", "prior sample"]
PLAYABLE = {".wav", ".flac", ".mp3", ".ogg"}


def Audio(**kwargs) -> gr.Audio:  # noqa: N802 (used like the component class)
    """gr.Audio that sends wav/flac/mp3/ogg files as they are. (gr.Audio runs ffprobe on every file it sends to
    check that browsers can play it: 50-100 ms per file on a 2-core CPU, for formats every browser plays. A subclass
    would make Gradio write an app.pyi stub next to this file, so the instance's postprocess is wrapped instead.)"""
    component = gr.Audio(**kwargs)
    checked = component.postprocess

    def postprocess(value):
        if isinstance(value, (str, Path)) and Path(value).suffix.lower() in PLAYABLE and Path(value).is_file():
            return FileData(path=str(value), orig_name=Path(value).name)
        return checked(value)

    component.postprocess = postprocess
    return component


AUDIO_OUT = {"type": "filepath", "interactive": False, "buttons": ["download"]}
# UI events are not part of the API; all model work shares one concurrency group (launch(concurrency=...) at a time)
UI = {"api_visibility": "private", "concurrency_id": "compute"}


def _examples(names: list[str]) -> list[list[str]]:
    return [[str(EXAMPLES / n)] for n in names if (EXAMPLES / n).is_file()]


def build_demo(logic: Demo) -> gr.Blocks:
    """The page: model picker + card, then the Reconstruct, Sample, Interpolate and Latent map tabs."""
    models = logic.models
    summary, card, has_flow = logic.model_info(models.default)
    with gr.Blocks(title="vaedemo — audio VAE latent space", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# vaedemo: listen to the latent space of an audio VAE", elem_id="title")
        with gr.Row(equal_height=True):
            model = gr.Dropdown(models.labels, value=models.default, label="Model", scale=1, min_width=260)
            info = gr.Markdown(summary, elem_id="summary")
        with gr.Accordion("Model card: config, parameters per module, training data, metrics", open=False):
            card_md = gr.Markdown(card)

        # ---- the stable API (gradio_client): hidden components, named endpoints; registered first, so that no
        # UI event (private, auto-named after its function) can take these names
        with gr.Column(visible=False):
            a_audio = Audio(type="filepath", label="audio")
            a_audio_b = Audio(type="filepath", label="audio_b")
            a_model = gr.Textbox(value=models.default, label="model")
            a_n = gr.Number(value=4, precision=0, label="n")
            a_temp = gr.Number(value=1.0, label="temperature")
            a_seed = gr.Number(value=0, precision=0, label="seed")
            a_flow = gr.Checkbox(value=True, label="use_flow")
            a_steps = gr.Number(value=5, precision=0, label="steps")
            a_method = gr.Textbox(value="slerp", label="method")
            a_out = Audio(type="filepath", label="reconstruction")
            a_metrics = gr.JSON(label="metrics")
            a_files = gr.File(file_count="multiple", label="audio files")
            a_btn = gr.Button()

        def reconstruct(audio: str, model: str) -> tuple[str, dict]:
            """Reconstruct an audio file: returns (wav at the input's rate, length and channels; metrics)."""
            out, _, _, _, metrics = logic.reconstruct(audio, model)
            return out, metrics

        def sample(n: int, temperature: float, seed: int, use_flow: bool, model: str) -> list[str]:
            """n sounds from the prior (wav files at the model's rate); the same seed gives the same sounds."""
            return logic.sample(n, temperature, seed, use_flow, model)[0]

        def interpolate(audio: str, audio_b: str, steps: int, method: str, model: str) -> list[str]:
            """The path from audio to audio_b in `steps` wav files (method 'slerp' or 'lerp')."""
            return logic.interpolate(KINDS[0], audio, 0, KINDS[0], audio_b, 0, steps, method, model)[0]

        api = {"concurrency_id": "compute", "api_visibility": "public"}
        a_btn.click(reconstruct, [a_audio, a_model], [a_out, a_metrics], api_name="reconstruct", **api)
        a_btn.click(sample, [a_n, a_temp, a_seed, a_flow, a_model], a_files, api_name="sample", **api)
        a_btn.click(interpolate, [a_audio, a_audio_b, a_steps, a_method, a_model], a_files, api_name="interpolate",
                    **api)  # fmt: skip

        with gr.Tab("Reconstruct"):
            gr.Markdown("Encode a sound into the latent space and decode it again: what survives the bottleneck?",
                        elem_classes="intro")  # fmt: skip
            with gr.Row():
                with gr.Column():
                    rec_in = Audio(sources=["upload", "microphone"], type="filepath", buttons=["download"],
                                   label="Input (drop a file or record)")  # fmt: skip
                    rec_btn = gr.Button("Reconstruct", variant="primary", size="lg")
                    gr.Examples(_examples(["timgm6mb-standard_snare.flac", "timgm6mb-tr-808_kick.flac",
                                           "musescore-standard_crash.flac", "drum_loop.flac"]), rec_in,
                                label="Examples (click one to reconstruct it)")  # fmt: skip
                with gr.Column():
                    rec_out = Audio(label="Reconstruction (original loudness)", elem_id="rec-output", **AUDIO_OUT)
                    rec_metrics = gr.Markdown("Metrics appear here.")
            with gr.Row():
                rec_fig_in = gr.Plot(label="Input spectrogram", elem_id="spec-input")
                rec_fig_out = gr.Plot(label="Reconstruction spectrogram", elem_id="spec-output")
            rec_state = gr.State()
            rec_args = {"fn": logic.reconstruct, "inputs": [rec_in, model],
                        "outputs": [rec_out, rec_fig_in, rec_fig_out, rec_metrics, rec_state]}  # fmt: skip

            def ui_auto(path, m):  # a new input (upload, recording, example) runs at once; clearing it clears all
                return logic.reconstruct(path, m) if path else (None, None, None, "Metrics appear here.", None)

            rec_btn.click(**rec_args, **UI)
            rec_in.change(**{**rec_args, "fn": ui_auto}, **UI)

        with gr.Tab("Sample"):
            gr.Markdown("Draw latent vectors from the prior and decode them: new sounds the model invents. "
                        "Temperature scales the prior's spread; the same seed gives the same sounds.",
                        elem_classes="intro")  # fmt: skip
            with gr.Row():
                n = gr.Slider(1, MAX_SAMPLES, value=4, step=1, label="Number of samples")
                temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature")
                seed = gr.Slider(0, 9999, value=0, step=1, label="Seed")
                use_flow = gr.Checkbox(value=has_flow, interactive=has_flow, label="Flow prior (off: plain Gaussian)")
            sample_btn = gr.Button("Sample", variant="primary", size="lg")
            slots, slot_audio, slot_fig = [], [], []
            for row in range(2):
                with gr.Row():
                    for i in range(row * 4, row * 4 + 4):
                        with gr.Column(visible=False, min_width=240) as col:
                            slot_fig.append(gr.Plot(show_label=False))
                            slot_audio.append(Audio(label=f"Sample {i + 1}", **AUDIO_OUT))
                        slots.append(col)
            with gr.Accordion("Latent directions", open=True):
                gr.Markdown("Move sample 1 along the top principal directions of the prior (a PCA of prior samples), "
                            "in standard deviations; it is decoded when you release a slider.",
                            elem_classes="intro")  # fmt: skip
                with gr.Row():
                    dirs = [gr.Slider(-3, 3, value=0, step=0.1, label=f"Direction {i + 1}")
                            for i in range(N_DIRECTIONS)]  # fmt: skip
                with gr.Row():
                    dir_fig = gr.Plot(show_label=False)
                    with gr.Column():
                        dir_audio = Audio(label="Moved sample", **AUDIO_OUT)
                        dir_reset = gr.Button("Reset directions")

            def ui_sample(k, t, s, f, m):
                paths, figs = logic.sample(k, t, s, f, m)
                pad = [None] * (MAX_SAMPLES - len(paths))
                return [gr.update(visible=i < len(paths)) for i in range(MAX_SAMPLES)] + paths + pad + figs + pad

            prior = [n, temperature, seed, use_flow, model]
            sample_btn.click(ui_sample, prior, slots + slot_audio + slot_fig, **UI)
            for d in dirs:
                d.release(logic.move, prior + dirs, [dir_audio, dir_fig], **UI)
            dir_reset.click(lambda: [0.0] * N_DIRECTIONS, None, dirs, **UI).then(
                logic.move, prior + dirs, [dir_audio, dir_fig], **UI)  # fmt: skip

        with gr.Tab("Interpolate"):
            gr.Markdown("Walk from sound A to sound B through the latent space (temporal models: frame by frame). "
                        "Slide the position, or render the whole path.", elem_classes="intro")  # fmt: skip
            sources = []
            with gr.Row():
                for name, example in (("A", "timgm6mb-standard_kick.flac"), ("B", "timgm6mb-standard_open-hat.flac")):
                    with gr.Column():
                        kind = gr.Radio(KINDS, value=KINDS[0], label=f"Source {name}")
                        first = EXAMPLES / example
                        src = Audio(sources=["upload", "microphone"], type="filepath", label=f"Sound {name}",
                                    buttons=["download"], value=str(first) if first.is_file() else None)  # fmt: skip
                        src_seed = gr.Number(value=1 if name == "A" else 2, precision=0, label=f"Prior seed for {name}")
                        gr.Examples(_examples(["timgm6mb-standard_snare.flac", "timgm6mb-tr-808_kick.flac",
                                               "musescore-standard_crash.flac", "timgm6mb-tr-808_closed-hat.flac"]),
                                    src, label=f"Examples for {name}")  # fmt: skip
                        sources += [kind, src, src_seed]
            with gr.Row():
                method = gr.Radio(["slerp", "lerp"], value="slerp", label="Interpolation")
                position = gr.Slider(0, 1, value=0.5, step=0.05, label="Position A → B (decoded on release)")
                steps = gr.Slider(2, MAX_STEPS, value=5, step=1, label="Steps in the path")
            with gr.Row():
                pos_fig = gr.Plot(show_label=False)
                with gr.Column():
                    pos_audio = Audio(label="Sound at this position", **AUDIO_OUT)
                    path_btn = gr.Button("Render the path", variant="primary", size="lg")
            path_fig = gr.Plot(label="Path A → B", elem_id="path-fig")
            path_slots, path_audio = [], []
            with gr.Row():
                for i in range(MAX_STEPS):
                    with gr.Column(visible=False, min_width=150) as col:
                        path_audio.append(Audio(label=f"Step {i + 1}", **AUDIO_OUT))
                    path_slots.append(col)

            def ui_path(*args):
                paths, fig = logic.interpolate(*args)
                pad = [None] * (MAX_STEPS - len(paths))
                return [gr.update(visible=i < len(paths)) for i in range(MAX_STEPS)] + paths + pad + [fig]

            path_btn.click(ui_path, sources + [steps, method, model], path_slots + path_audio + [path_fig],
                           **UI)  # fmt: skip
            position.release(logic.interpolate_at, sources + [position, method, model], [pos_audio, pos_fig],
                             **UI)  # fmt: skip

        with gr.Tab("Latent map") as map_tab:
            gr.Markdown("Every sound of a folder as one point: a 2-D PCA projection of its latent vector. Similar "
                        "sounds should land close together. Click a point (or pick it below) to hear it.",
                        elem_classes="intro")  # fmt: skip
            folder_names = list(logic.folders)
            with gr.Row():
                folder = gr.Dropdown(folder_names, value=folder_names[0] if folder_names else None, label="Folder")
                colour = gr.Dropdown(["kit", "key", "velocity", "program"], value="kit",
                                     label="Colour by (manifest.csv)")  # fmt: skip
                map_btn = gr.Button("Draw the map", variant="primary", size="lg")
            map_fig = gr.Plot(plots.empty_figure("Press 'Draw the map'", 560), show_label=False, elem_id="latent-map")
            with gr.Row():
                point = gr.Dropdown([], label="Point", scale=2)
                point_audio = Audio(label="Selected sound", scale=2, elem_id="point-audio", **AUDIO_OUT)
            point_fig = gr.Plot(show_label=False)
            click = gr.Textbox(visible="hidden", elem_id="map-click")

            def ui_map(f, c, m):
                fig, choices = logic.latent_map(f, c, m)
                return fig, gr.update(choices=choices, value=None)

            map_args = {"fn": ui_map, "inputs": [folder, colour, model], "outputs": [map_fig, point],
                        **UI}  # fmt: skip
            map_btn.click(**map_args)
            map_tab.select(**map_args)
            colour.change(**map_args)
            folder.change(**map_args)

            def ui_point(f, i, c, m):
                return *logic.map_point(f, i, c, m), gr.update(value=str(i).split(":")[0])

            point_out = [point_audio, point_fig, map_fig, point]
            point.input(ui_point, [folder, point, colour, model], point_out, **UI)
            click.change(ui_point, [folder, click, colour, model], point_out, **UI)

        def on_model(m):  # loads the model (LRU-cached) and its prior PCA
            s, c, flow = logic.model_info(m)
            labels = [gr.update(label=lab) for lab in logic.direction_labels(m)]
            return [s, c, gr.update(value=flow, interactive=flow), *labels]

        gr.on([model.change, demo.load], on_model, model, [info, card_md, use_flow, *dirs],
              concurrency_id="model-load", concurrency_limit=1, api_visibility="private")  # fmt: skip
        model.change(lambda: (plots.empty_figure("Press 'Draw the map'", 560), gr.update(choices=[], value=None)),
                     None, [map_fig, point], api_visibility="private")  # the map of another model is cleared

    return demo


def launch(demo: gr.Blocks, max_file_size: str = "50mb", queue_size: int = 64, concurrency: int = 2,
           allowed: list[Path] = (), **kwargs):  # fmt: skip
    """Queue (bounded, ``concurrency`` jobs at a time) and launch with the demo's theme, CSS and limits."""
    demo.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    paths = [str(p.resolve()) for p in (EXAMPLES, *allowed)]
    return demo.launch(theme=THEME, css=CSS, js=JS, max_file_size=max_file_size, allowed_paths=paths, ssr_mode=False,
                       footer_links=["api", "settings"], **kwargs)  # fmt: skip


def create(checkpoints: list[str] = (), data: list[str] = (), max_seconds: float = 30.0, device: str = "cpu",
           checkpoint_dir: Path = ROOT / "checkpoints") -> gr.Blocks:  # fmt: skip
    """Discover and load the default model, then build the page (raises VaedemoError with one sentence)."""
    specs, default = discover(checkpoint_dir, list(checkpoints))
    models = Models(specs, default, device=device)
    models.get(default)
    folders = {"examples": EXAMPLES} if EXAMPLES.is_dir() else {}
    folders.update({Path(d).resolve().name: Path(d).resolve() for d in data})
    return build_demo(Demo(models, max_seconds, folders))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python app.py", description="The vaedemo browser demo.")
    add = ap.add_argument
    add("--checkpoint", action="append", default=[], help="bundle folder or hf://org/repo[@rev]; repeatable; the first "
        "is the default model (default: the bundles in checkpoints/, preferring a single-latent flow model)")
    add("--host", default=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        help="default $GRADIO_SERVER_NAME or 127.0.0.1")
    add("--port", type=int, default=os.environ.get("GRADIO_SERVER_PORT") or 7860,
        help="default $GRADIO_SERVER_PORT or 7860")
    add("--share", action="store_true", help="also serve through a public gradio.live link")
    add("--data", action="append", default=[], help="folder of audio for the latent map; repeatable")
    add("--max-seconds", type=float, default=30.0, help="longer inputs are trimmed, with a warning (default 30)")
    add("--max-file-size", default="50mb", help="largest upload (default 50mb)")
    add("--device", default="auto", help="cpu, cuda, ... (default: cuda when available)")
    add("--concurrency", type=int, default=2, help="requests computed at the same time, others queue (default 2)")
    add("--threads", type=int, default=None, help="torch threads per request (default: cores / concurrency)")
    return ap.parse_args(argv)  # argparse applies type= to string defaults: a bad $GRADIO_SERVER_PORT is reported


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    try:
        demo = create(a.checkpoint, a.data, a.max_seconds, device)
    except VaedemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    # one request per group of cores: a multi-threaded op stalls badly when another request (or process) holds a core
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(a.threads or max(1, cores // a.concurrency))
    launch(demo, a.max_file_size, concurrency=a.concurrency, allowed=[Path(d) for d in a.data], server_name=a.host,
           server_port=a.port, share=a.share)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
