"""The Latent map tab: every sound of a folder as one point (a 2-D PCA of its latent vector); click one to hear it."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from vaedemo import plots
from vaedemo.audio import load_audio
from vaedemo.errors import VaedemoError

from .common import AUDIO_OUT, UI, Audio, intro, log, number, shown, themed, user_errors
from .guard import gated
from .models import pca
from .state import DemoState

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".m4a", ".webm"}
MAP_MAX_FILES = 400
COLOUR_BY = ["kit", "key", "velocity", "program"]  # columns of manifest.csv
# Plotly clicks on the latent map -> the hidden #map-click textbox (gr.Plot has no select event); the page's js.
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


@dataclass
class MapData:
    files: list[Path]
    meta: list[dict]  # manifest.csv rows ({} for files it does not list)
    names: list[str]
    xy: np.ndarray
    explained: np.ndarray


def folder_files(folder: Path) -> tuple[list[Path], list[dict]]:
    """The audio files of a folder (at most MAP_MAX_FILES, an even subset) and their manifest.csv rows."""
    rows: dict[str, dict] = {}
    if (folder / "manifest.csv").is_file():
        with open(folder / "manifest.csv", newline="") as f:
            rows = {r["file"]: r for r in csv.DictReader(f) if r.get("file")}
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in AUDIO_SUFFIXES and ".vaedemo_cache" not in p.parts)  # fmt: skip
    if len(files) > MAP_MAX_FILES:  # an even, deterministic subset
        files = [files[i] for i in np.linspace(0, len(files) - 1, MAP_MAX_FILES).astype(int)]
    return files, [rows.get(p.relative_to(folder).as_posix(), {}) for p in files]


def _map(state: DemoState, folder_name: str, model: str) -> MapData:
    """The map of a folder for a model, computed once: one summary latent vector per readable file, projected."""
    key = (model or state.models.default, folder_name)
    if all(isinstance(k, str) for k in key) and key in state.maps:  # a raw request may send lists, ...
        return state.maps[key]
    if not isinstance(folder_name, str) or folder_name not in state.folders:
        raise VaedemoError(f"there is no folder called {shown(folder_name)} for the latent map.")
    eng = state.models.get(model)
    files, meta = folder_files(state.folders[folder_name])
    vecs, keep = [], []
    for i, p in enumerate(files):
        try:
            x, _ = load_audio(p, eng.sample_rate, eng.channels, max_seconds=state.max_seconds, trim=True)
        except VaedemoError as e:
            log.warning("latent map: skipping %s: %s", p, e)
            continue
        z = eng.encode(x, eng.sample_rate)
        vecs.append(eng.mode.summary_vector(z))  # the first clip / the mean over frames
        keep.append(i)
    if len(vecs) < 3:
        raise VaedemoError(f"the folder '{folder_name}' holds {len(vecs)} readable audio files; a map needs 3.")
    z = np.stack(vecs).astype(np.float64)
    components, _, ratio = pca(z, 2)
    xy = np.zeros((len(z), 2))
    xy[:, : len(components)] = (z - z.mean(0)) @ components.T
    meta = [meta[i] for i in keep]
    tags = [", ".join(f"{k} {r[k]}" for k in ("kit", "key", "velocity") if r.get(k)) for r in meta]
    names = [f"{files[i].name} ({t})" if t else files[i].name for i, t in zip(keep, tags)]
    state.maps[key] = MapData([files[i] for i in keep], meta, names, xy, ratio)
    return state.maps[key]


@user_errors
def latent_map(state: DemoState, folder_name: str, colour_by: str, model: str, selected: int | None = None):
    """-> (scatter figure, point choices [(name, index)])."""
    m = _map(state, folder_name, model)
    colour = [r.get(colour_by, "") for r in m.meta] if colour_by and any(m.meta) else None
    fig = themed(plots.latent_map_figure(m.xy, m.names, colour, colour_by, selected, m.explained, height=480))
    return fig, [(n, str(i)) for i, n in enumerate(m.names)]


@user_errors
def map_point(state: DemoState, folder_name: str, index, colour_by: str, model: str):
    """A selected point -> (its audio file, its spectrogram, the map with the point ringed)."""
    m = _map(state, folder_name, model)
    i = number(str(index).split(":")[0], "the point", 0, len(m.files) - 1)  # "index:time" from a map click
    x, sr = load_audio(m.files[i], max_seconds=state.max_seconds, trim=True)
    fig = themed(plots.spectrogram_figure(plots.display_spectrogram(x, sr), m.names[i], height=260))
    return str(m.files[i]), fig, latent_map(state, folder_name, colour_by, model, i)[0]


def _no_map():
    return themed(plots.empty_figure("Press 'Draw the map'", 480))


def build(state: DemoState, model: gr.Dropdown) -> None:
    """The tab: folder and colouring, the map (drawn on demand and when the tab opens), the selected point."""
    with gr.Tab("Latent map") as map_tab:
        intro("Every sound of a folder as one point: a 2-D PCA projection of its latent vector. Similar "
              "sounds should land close together. Click a point (or pick it below) to hear it.")  # fmt: skip
        folder_names = list(state.folders)
        with gr.Row(equal_height=True):
            folder = gr.Dropdown(folder_names, value=folder_names[0] if folder_names else None, label="Folder")
            colour = gr.Dropdown(COLOUR_BY, value="kit", label="Colour by (manifest.csv)")
            map_btn = gr.Button("Draw the map", variant="primary", size="lg", elem_id="map-btn")
        with gr.Row():
            map_fig = gr.Plot(_no_map(), show_label=False, elem_id="latent-map", scale=3)
            with gr.Column(scale=2):
                point = gr.Dropdown([], label="Point")
                point_audio = Audio(label="Selected sound", elem_id="point-audio", **AUDIO_OUT)
                point_fig = gr.Plot(show_label=False)
        click = gr.Textbox(visible="hidden", elem_id="map-click")  # set by JS when a point is clicked

    @gated(state.gate)
    def ui_map(f, c, m):
        fig, choices = latent_map(state, f, c, m)
        return fig, gr.update(choices=choices, value=None)

    @gated(state.gate)
    def ui_point(f, i, c, m):
        return *map_point(state, f, i, c, m), gr.update(value=str(i).split(":")[0])

    map_args = {"fn": ui_map, "inputs": [folder, colour, model], "outputs": [map_fig, point], **UI}
    for event in (map_btn.click, map_tab.select, colour.change, folder.change):
        event(**map_args)
    point_out = [point_audio, point_fig, map_fig, point]
    point.input(ui_point, [folder, point, colour, model], point_out, **UI)
    click.change(ui_point, [folder, click, colour, model], point_out, **UI)
    model.change(lambda: (_no_map(), gr.update(choices=[], value=None), None, None), None,
                 [map_fig, point, point_audio, point_fig], api_visibility="private")  # another model's map cleared  # fmt: skip
