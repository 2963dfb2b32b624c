"""The Latent map tab: sounds as points in a 2-D projection of the latent space, shaded by the prior's density, with
prior samples on the same map; click a point to hear it.

The sounds are the training set's (the summary shipped with the bundle: ``python -m vaedemo.dataset_summary``) or
those of a folder (``--data DIR``, and the examples). Points are coloured by a category: the GM drum family named from
the manifest's key (kick, snare, hi-hat, tom, cymbal, percussion) or another manifest column. For models with one
latent per clip the map also shows prior samples and, as its background, the prior's exact log-density on the map's
plane (see :func:`density_slice`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.events import Dependency

import vaedemo.demo.training_set as training_set  # not `from . import`: that names vaedemo.demo (a cycle)
from vaedemo import plots
from vaedemo.audio import load_audio
from vaedemo.data.dataset import AUDIO_SUFFIXES
from vaedemo.data.gm import FAMILIES, drum_family, drum_name
from vaedemo.data.oneshots import read_manifest
from vaedemo.dataset_summary import prior_log_prob
from vaedemo.errors import VaedemoError
from vaedemo.inference import Engine

from .chosen import for_chosen_model
from .common import (
    AUDIO_OUT,
    ROOT,
    UI,
    Audio,
    level_text,
    log,
    normalise_peak,
    number,
    peak_dbfs,
    shown,
    themed,
    user_errors,
)
from .guard import gated
from .models import pca
from .state import DemoState

MAP_MAX_FILES = 400
TRAINING_SET = "training set (from the bundle)"
COLOUR_BY = ["family", "kit", "key", "velocity", "program", "split"]  # manifest.csv columns; family from the key
N_PRIOR = 40  # prior samples on the map: seeds 0 .. N_PRIOR - 1 at temperature 1, as the Sample tab draws them
GRID = 64  # the density's grid, GRID x GRID points of the plane
MAP_HEIGHT = 420  # with the controls above it, the whole map is on the first screen at 1280x720
# The inputs of the map's draw, and whether the Latent map tab is the one on screen (for a redraw after a model change).
TAB_LABEL = "Latent map"
ON_SCREEN_JS = """
(f, c, m, _) => [f, c, m,
  document.querySelector('#tabs button[role="tab"][aria-selected="true"]')?.innerText.trim() === '%s']
""" % TAB_LABEL  # noqa: UP031 (the JS has braces of its own)
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
    """Points (the sounds, then the prior samples): names, their latents (summary vectors) and 2-D positions; per
    sound its categories and the file that plays it (None: decode its latent); the projection; the shading."""

    names: list[str]
    latents: np.ndarray
    xy: np.ndarray
    n_sounds: int
    meta: list[dict]
    files: list[Path | None]
    serve_files: bool  # files may be served as they are (a folder of --data or the examples: allowed paths)
    explained: np.ndarray
    shading: plots.Shading | None
    caption: str


def folder_files(folder: Path) -> tuple[list[Path], list[dict]]:
    """The audio files of a folder (at most MAP_MAX_FILES, an even subset) and their manifest.csv rows."""
    rows = read_manifest(folder)
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in AUDIO_SUFFIXES and ".vaedemo_cache" not in p.parts)  # fmt: skip
    if len(files) > MAP_MAX_FILES:  # an even, deterministic subset
        files = [files[i] for i in np.linspace(0, len(files) - 1, MAP_MAX_FILES).astype(int)]
    return files, [rows.get(p.relative_to(folder).as_posix(), {}) for p in files]


def categories(row: dict) -> dict:
    """A manifest row (or a summary's clip) -> what the map colours by: the GM family from the key, the key with its
    GM name ('38 Acoustic Snare'), kit, velocity, program and split as they are."""
    key = row.get("key", "")
    named = f"{key} {drum_name(key)}" if drum_name(key) else str(key)
    out = {c: str(row.get(c, "")) for c in ("kit", "velocity", "program", "split")}
    return {**out, "key": named, "family": row.get("family") or drum_family(key) or ""}


def _label(name: str, cats: dict) -> str:
    tags = " · ".join(cats[c] for c in ("family", "kit", "split") if cats.get(c))
    vel = f" · velocity {cats['velocity']}" if cats.get("velocity") else ""
    return f"{name} ({tags}{vel})" if tags or vel else name


def has_training_set(state: DemoState, model: str | None) -> bool:
    """Whether the model's bundle ships a training-set summary (a local bundle: its files; an hf:// id's once it is
    loaded, when its snapshot's folder is known)."""
    spec = state.models.specs.get(model or state.models.default)
    return spec is not None and spec.folder is not None and (spec.folder / "summary.json").is_file()


def source_choices(state: DemoState, model: str | None) -> list[str]:
    """What the map can show for a model: its training set (when its bundle has a summary), then the folders."""
    return ([TRAINING_SET] if has_training_set(state, model) else []) + list(state.folders)


def _training_files(data: str, files: list[str]) -> list[Path | None]:
    """The summary's clips as files of this machine: under the data folder it names (a folder inside the repository,
    not the repository itself: a stranger's summary naming "." would open every audio file of it), never outside it;
    None for those that are not here (their latents are decoded instead)."""
    repository = ROOT.resolve()
    root = (repository / data).resolve()  # an absolute data, "..", a link out: all resolve outside
    if not data or not root.is_relative_to(repository) or root == repository:
        return [None] * len(files)
    out = []
    for rel in files:
        p = (root / rel).resolve()
        out.append(p if p.is_relative_to(root) and p.is_file() else None)
    return out


def _sounds_of_training_set(eng: Engine, model: str):
    s = training_set.summary(eng)
    if s is None:
        raise VaedemoError(f"the model {shown(model)} has no training-set summary; choose a folder.")
    meta = [categories(c) for c in s.clips]
    names = [_label(str(c.get("file", "?")), m) for c, m in zip(s.clips, meta)]
    files = _training_files(s.data, [str(c.get("file", "")) for c in s.clips])
    what = f"the {len(names)} training-set sounds of {s.data or 'its data'} ({s.latent})"
    return s.latents.astype(np.float64), names, meta, files, what


def _sounds_of_folder(state: DemoState, eng: Engine, folder_name: str):
    if not isinstance(folder_name, str) or folder_name not in state.folders:
        raise VaedemoError(f"there is no folder called {shown(folder_name)} for the latent map.")
    files, rows = folder_files(state.folders[folder_name])
    vecs, keep = [], []
    for i, p in enumerate(files):
        try:
            x, _ = load_audio(p, eng.sample_rate, eng.channels, max_seconds=state.max_seconds, trim=True)
        except VaedemoError as e:  # a file that is not audio is left out of the map, and the map is drawn
            log.warning("latent map: skipping %s: %s", p, e)
            continue
        vecs.append(eng.mode.summary_vector(eng.encode(x, eng.sample_rate)))  # the first clip / mean over frames
        keep.append(i)
    if len(vecs) < 3:
        raise VaedemoError(f"the folder '{folder_name}' holds {len(vecs)} readable audio files; a map needs 3.")
    meta = [categories(rows[i]) for i in keep]
    names = [_label(files[i].name, m) for i, m in zip(keep, meta)]
    what = f"the {len(keep)} sounds of the folder '{folder_name}' (their latents' " + (
        "first clip)" if eng.mode.per_clip else "mean over frames)")
    return np.stack(vecs).astype(np.float64), names, meta, [files[i] for i in keep], what


def prior_samples(eng: Engine) -> np.ndarray:
    """N_PRIOR prior latents (N_PRIOR, D): seed k alone, temperature 1, the flow where there is one, so that prior
    sample k is the Sample tab's sound with 1 sample and seed k."""
    return np.concatenate([eng.sample_latents(1, 1.0, k, True) for k in range(N_PRIOR)]).astype(np.float64)


def density_slice(eng: Engine, mean: np.ndarray, components: np.ndarray, xy: np.ndarray) -> plots.Shading:
    """The prior's exact log p(z) on the map's plane: at each point (x, y) of a GRID x GRID grid over the map's
    extent, the latent ``mean + x c1 + y c2`` (the plane through the sounds' mean spanned by the two principal
    directions; every other direction held at the mean) goes through the prior flow. A slice of the density, not a
    marginal: it shows where on this plane the prior is dense, not how many samples project there."""
    lo, hi = xy.min(0), xy.max(0)
    pad = 0.08 * np.maximum(hi - lo, 1e-6)
    xs, ys = (np.linspace(lo[i] - pad[i], hi[i] + pad[i], GRID) for i in range(2))
    gx, gy = np.meshgrid(xs, ys)  # (GRID, GRID): rows are y
    z = mean + gx.reshape(-1, 1) * components[0] + gy.reshape(-1, 1) * components[1]
    logp = prior_log_prob(eng, z).reshape(GRID, GRID)
    return plots.Shading(xs, ys, logp, "log p(z)")


def _caption(eng: Engine, what: str, shaded: bool, n_prior: int) -> str:
    text = f"**Points:** {what}, each a 2-D projection of its latent vector onto its two principal directions."
    if n_prior:
        text += (f" **◇ {n_prior} prior samples** (seeds 0–{n_prior - 1}: the Sample tab with 1 sample, that seed, "
                 "temperature 1).")  # fmt: skip
    if shaded:
        prior = "learned flow prior" if eng.has_prior_flow else "Gaussian prior"
        text += (f" **Shading:** the {prior}'s exact log-density log p(z) on this plane through the sounds' mean (the "
                 f"other {eng.latent_size - 2} directions held at the mean): a slice; the stronger the shading, the "
                 "more likely. The points are projections onto the plane.")  # fmt: skip
    else:
        text += " No shading or prior samples: this model's latent is a time series (a point is its mean over frames)."
    return text + " Click a point to hear it."


def _map(state: DemoState, source: str, model: str) -> MapData:
    """The map of a source for a model, computed once: one latent vector per sound, projected, plus prior samples
    and the density for one-vector-per-clip models."""
    key = (model or state.models.default, source)
    if all(isinstance(k, str) for k in key) and key in state.maps:  # a raw request may send lists, ...
        return state.maps[key]
    eng = state.models.get(model)
    if source == TRAINING_SET:
        z, names, meta, files, what = _sounds_of_training_set(eng, key[0])
    else:
        z, names, meta, files, what = _sounds_of_folder(state, eng, source)
    components, _, ratio = pca(z, 2)
    components = np.vstack([components, np.zeros((2 - len(components), z.shape[1]))])
    mean = z.mean(0)
    zp = prior_samples(eng) if eng.mode.per_clip else np.zeros((0, z.shape[1]))
    both = np.concatenate([z, zp])
    xy = (both - mean) @ components.T
    shading = density_slice(eng, mean, components, xy) if eng.mode.per_clip else None
    names += [f"prior sample · seed {k}" for k in range(len(zp))]
    caption = _caption(eng, what, shading is not None, len(zp))
    state.maps[key] = MapData(names, both, xy, len(z), meta, files, source != TRAINING_SET, ratio, shading, caption)
    return state.maps[key]


@user_errors
def latent_map(state: DemoState, source: str, colour_by: str, model: str, selected: int | None = None):
    """-> (scatter figure, point choices [(name, index)]); ``latent_map.caption`` says what the map shows."""
    m = _map(state, source, model)
    colour = [r.get(colour_by, "") for r in m.meta] if colour_by in COLOUR_BY and any(m.meta) else None
    n = m.n_sounds
    fig = plots.latent_map_figure(m.xy[:n], m.names[:n], colour, colour_by, selected, m.explained, MAP_HEIGHT,
                                  prior_xy=m.xy[n:], prior_names=m.names[n:], shading=m.shading,
                                  first=FAMILIES)  # fmt: skip
    return themed(fig), [(name, str(i)) for i, name in enumerate(m.names)]


def caption(state: DemoState, source: str, model: str) -> str:
    return _map(state, source, model).caption


def _point_audio(state: DemoState, eng: Engine, m: MapData, i: int) -> tuple[np.ndarray, int, str]:
    """(audio, rate, what it is) of point i: the sound's file, else its latent decoded (prior samples: normalised
    for listening, as the Sample tab does)."""
    file = m.files[i] if i < m.n_sounds else None
    if file is not None:
        x, sr = load_audio(file, max_seconds=state.max_seconds, trim=True)
        return x, sr, ""
    if not eng.mode.per_clip:
        raise VaedemoError("the file of this point is not on this machine, and its latent (a mean over frames) is not "
                           "a sound.")  # fmt: skip
    y = eng.decode(m.latents[i].astype(np.float32))
    if i >= m.n_sounds:
        return normalise_peak(y), eng.sample_rate, f" · {level_text(peak_dbfs(y))}, normalised"
    return y, eng.sample_rate, " · decoded from its latent (the file is not here)"


@user_errors
def map_point(state: DemoState, source: str, index, colour_by: str, model: str):
    """A selected point -> (its audio file, its spectrogram, the map with the point ringed)."""
    m = _map(state, source, model)
    i = number(str(index).split(":")[0], "the point", 0, len(m.names) - 1)  # "index:time" from a map click
    if i < m.n_sounds and m.serve_files and m.files[i] is not None:
        x, sr = load_audio(m.files[i], max_seconds=state.max_seconds, trim=True)
        path, note = str(m.files[i]), ""
    else:  # a training-set file (not among the served paths) or a latent: a wav of its own
        x, sr, note = _point_audio(state, state.models.get(model), m, i)
        path = state.files.wav(x, sr, "point")
    fig = themed(plots.spectrogram_figure(plots.display_spectrogram(x, sr), m.names[i] + note, height=260))
    return path, fig, latent_map(state, source, colour_by, model, i)[0]


def _no_map():
    return themed(plots.empty_figure("Press 'Draw the map'", MAP_HEIGHT))


def build(state: DemoState, model: gr.Dropdown) -> Callable[[Dependency], None]:
    """The tab: the sounds and their colouring, the map (drawn on demand, when the tab opens, by hand or by a link,
    and again for another model while the tab is on screen) with its caption, the selected point. Returns what wires
    the map's answer to a change of model after the event that loads the model (see :func:`follow`)."""
    with gr.Tab(TAB_LABEL, id="map") as map_tab:
        choices = source_choices(state, None)
        with gr.Row(equal_height=True):
            source = gr.Dropdown(choices, value=choices[0] if choices else None, label="Sounds", elem_id="map-source")
            colour = gr.Dropdown(COLOUR_BY, value="family", label="Colour by")
            map_btn = gr.Button("Draw the map", variant="primary", size="lg", elem_id="map-btn")
        with gr.Row():
            with gr.Column(scale=3):
                map_fig = gr.Plot(_no_map(), show_label=False, elem_id="latent-map")
                map_caption = gr.Markdown("", elem_id="map-caption")  # what the points and the shading are
            with gr.Column(scale=2):
                point = gr.Dropdown([], label="Point")
                point_audio = Audio(label="Selected sound", elem_id="point-audio", **AUDIO_OUT)
                point_fig = gr.Plot(show_label=False)
        click = gr.Textbox(visible="hidden", elem_id="map-click")  # set by JS when a point is clicked
        on_screen = gr.Checkbox(False, visible="hidden")  # filled in by ON_SCREEN_JS: is this tab the one shown?

    @for_chosen_model(state.chosen, model_at=2)
    @gated(state.gate)
    def ui_map(f, c, m):
        fig, points = latent_map(state, f, c, m)
        return fig, gr.update(choices=points, value=None), None, None, caption(state, f, m)

    @for_chosen_model(state.chosen, model_at=3)
    @gated(state.gate)
    def ui_point(f, i, c, m):
        return *map_point(state, f, i, c, m), gr.update(value=str(i).split(":")[0])

    map_args = {"fn": ui_map, "inputs": [source, colour, model],
                "outputs": [map_fig, point, point_audio, point_fig, map_caption], **UI}  # fmt: skip
    for event in (map_btn.click, map_tab.select, colour.change, source.input):
        event(**map_args)
    point_out = [point_audio, point_fig, map_fig, point]
    point.input(ui_point, [source, point, colour, model], point_out, **UI)
    click.change(ui_point, [source, click, colour, model], point_out, **UI)

    def another_model(m):  # another model's map is cleared, and its own sounds offered
        options = source_choices(state, m)
        return (_no_map(), gr.update(choices=[], value=None), None, None, "",
                gr.update(choices=options, value=options[0] if options else None))

    def ui_map_on_screen(request: gr.Request, f, c, m, shown_now):  # ui_map is gated: the request comes first
        return ui_map(request, f, c, m) if shown_now else _unchanged(map_args["outputs"])

    def follow(model_loaded: Dependency) -> None:
        """After the chosen model is loaded (not beside it: the sounds offered are its own, those of an hf:// model's
        training set included, which are known once it is loaded; and one queued event at a time, see page.py), the
        map of the model before is cleared, and redrawn for the new one while the tab is on screen."""
        model_loaded.then(another_model, model, [map_fig, point, point_audio, point_fig, map_caption, source],
                          api_visibility="private").then(ui_map_on_screen, [source, colour, model, on_screen],
                                                         map_args["outputs"], js=ON_SCREEN_JS, **UI)  # fmt: skip

    return follow


def _unchanged(outputs: list) -> tuple:
    return tuple(gr.skip() for _ in outputs)
