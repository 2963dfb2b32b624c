"""Plotly figures for the demo: log-mel spectrograms (single, side by side, in a row) and the 2-D latent map.

Figures are kept small so that the browser stays fast on a projector laptop: spectrograms are computed from the
mono mix with at most :data:`MAX_MELS` mel bins and :data:`MAX_FRAMES` frames (the hop grows with the length), values
are rounded to whole dB and sent as int8 (a Plotly binary array: ~35 KB per figure), and figures that are compared
share one colour scale (the loudest of them at the top, an :data:`DB_RANGE` dB range below). Fonts are large, for a
projector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .audio import MAX_SAMPLE
from .dsp import hz_to_mel, mel_to_hz
from .metrics import log_mel_spectrogram

MAX_MELS = 64
MAX_FRAMES = 400
DB_RANGE = 80.0
DB_PER_NEPER = 20.0 / math.log(10.0)  # log-mel is a natural log of magnitudes
COLORSCALE = "Magma"
FONT = {"size": 16}
TICK_HZ = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
# Categories of the latent map: strong colours that read on light and dark pages and over its grey shading
CATEGORY_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#911eb4", "#42d4f4", "#9a6324", "#f032e6", "#bfef45",
                   "#469990", "#f58231", "#dcbeff", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075",
                   "#fabed4", "#a9a9a9")  # fmt: skip
PRIOR_COLOR = "#f59e0b"  # prior samples: amber open diamonds
SHADING_RANGE = 100.0  # nats of log-density the latent map's shading spans below its top


class Spectrogram:
    """A display spectrogram: ``db`` (mels, frames) in dB, frame times in s, the mel bins' centre frequencies."""

    def __init__(self, db: np.ndarray, times: np.ndarray, freqs: np.ndarray):
        self.db, self.times, self.freqs = db, times, freqs

    @property
    def peak(self) -> float:
        return float(self.db.max()) if self.db.size else 0.0


def display_spectrogram(audio: np.ndarray, sample_rate: int) -> Spectrogram:
    """Log-mel spectrogram of the mono mix of ``audio`` (samples[, channels]) for display, <= 64 x 400."""
    x = np.asarray(audio, np.float32)
    x = x.mean(axis=1) if x.ndim == 2 else x
    # a model's output may lie past what is read as audio (a prior sample at temperature 3 peaked at 2.5e3, and the
    # figure of its sound, already written, failed with the input's sentence): the figure shows it clipped there
    x = np.clip(np.nan_to_num(x), -MAX_SAMPLE, MAX_SAMPLE)
    n_fft = 2 ** max(6, round(math.log2(sample_rate * 0.046)))  # ~46 ms: 2048 at 44.1/48 kHz
    hop = max(n_fft // 4, math.ceil(len(x) / (MAX_FRAMES - 1)))
    for n_mels in (MAX_MELS, 48, 32, 16, 8):  # low rates: fewer mels so that every filter holds an FFT bin
        try:
            logmel = log_mel_spectrogram(x, sample_rate, n_fft, hop, n_mels)[0]
            break
        except ValueError:
            continue
    db = np.clip(np.round(logmel * DB_PER_NEPER), -128, 127).astype(np.int8)  # 1 dB steps: 1 byte per value
    times = np.round(np.arange(db.shape[1]) * hop / sample_rate, 4)
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2.0), n_mels + 2))
    return Spectrogram(db, times, edges[1:-1])


def shared_range(specs: Sequence[Spectrogram]) -> tuple[float, float]:
    """One colour scale for figures that are compared: (peak - DB_RANGE, peak) over all of them."""
    top = max(s.peak for s in specs)
    return top - DB_RANGE, top


def _freq_ticks(freqs: np.ndarray) -> dict:
    """Mel-bin axis labelled in Hz at round frequencies."""
    vals, text = [], []
    for hz in TICK_HZ:
        pos = float(np.interp(hz, freqs, np.arange(len(freqs))))
        if freqs[0] <= hz <= freqs[-1] and (not vals or pos - vals[-1] >= len(freqs) / 10):  # no crowded labels
            vals.append(pos)
            text.append(f"{hz // 1000}k" if hz >= 1000 else str(hz))
    return {"tickvals": vals, "ticktext": text, "title": {"text": "Hz"}}


def _heatmap(s: Spectrogram, zmin: float, zmax: float, colorbar: bool, name: str = "") -> go.Heatmap:
    return go.Heatmap(
        z=s.db, x=s.times, zmin=zmin, zmax=zmax, colorscale=COLORSCALE, name=name, showscale=colorbar,
        colorbar={"title": {"text": "dB"}, "thickness": 14},
        hovertemplate="%{x:.2f} s<br>bin %{y}<br>%{z:.1f} dB<extra></extra>",
    )  # fmt: skip


# tools nothing here needs: selections (nothing reads them), and zoom steps and autoscale beside the zoom box and reset
TOOLS_LEFT_OUT = ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d"]


def _layout(fig: go.Figure, title: str, height: int, toolbar: str = "v") -> go.Figure:
    """Title, size, margins and Plotly's toolbar (shown while the pointer is over the figure): upright at the right
    edge (``toolbar`` "v") where titles run along the top, since lying along it (``"h"``) it covered a narrow figure's
    title, the Interpolate tab's position and peak at 1280 px, which a presenter pointing at the figure wants read
    (upright, it covers the colour bar's labels instead: room of its own beside them would narrow every spectrogram
    by its width for a bar shown only while pointed at)."""
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 18}}, height=height, font=FONT,
        margin={"l": 60, "r": 10, "t": 44, "b": 44}, paper_bgcolor="white", plot_bgcolor="white",
        modebar={"orientation": toolbar, "remove": TOOLS_LEFT_OUT},
    )  # fmt: skip
    return fig


def spectrogram_figure(
    s: Spectrogram, title: str, zrange: tuple[float, float] | None = None, height: int = 320, colorbar: bool = True
) -> go.Figure:
    """One spectrogram as a heatmap (time in s, mel bins labelled in Hz)."""
    zmin, zmax = zrange or shared_range([s])
    fig = go.Figure(_heatmap(s, zmin, zmax, colorbar))
    fig.update_xaxes(title={"text": "time (s)"})
    fig.update_yaxes(**_freq_ticks(s.freqs))
    return _layout(fig, title, height)


def spectrogram_figures(
    audios: Sequence[np.ndarray], sample_rate: int, titles: Sequence[str], height: int = 320
) -> list[go.Figure]:
    """Figures of several sounds on one shared colour scale (e.g. input and reconstruction side by side)."""
    specs = [display_spectrogram(a, sample_rate) for a in audios]
    zr = shared_range(specs)
    return [spectrogram_figure(s, t, zr, height) for s, t in zip(specs, titles)]


def spectrogram_row(
    audios: Sequence[np.ndarray], sample_rate: int, titles: Sequence[str], height: int = 300
) -> go.Figure:
    """A row of spectrograms in one figure, one colour scale (e.g. the steps of an interpolation)."""
    specs = [display_spectrogram(a, sample_rate) for a in audios]
    zmin, zmax = shared_range(specs)
    fig = make_subplots(1, len(specs), shared_yaxes=True, subplot_titles=list(titles), horizontal_spacing=0.012)
    for i, s in enumerate(specs):
        fig.add_trace(_heatmap(s, zmin, zmax, i == len(specs) - 1, titles[i]), 1, i + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_xaxes(title={"text": "time"}, row=1, col=1)
    fig.update_yaxes(**_freq_ticks(specs[0].freqs), row=1, col=1)
    fig.update_annotations(font={"size": 15})
    return _layout(fig, "", height).update_layout(margin={"t": 36})


def empty_figure(message: str, height: int = 320) -> go.Figure:
    """A blank figure with a centred message (before anything has been computed)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"size": 18, "color": "#666"}, x=0.5, y=0.5,
                       xref="paper", yref="paper")  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", height)


@dataclass
class Shading:
    """A background for the latent map: ``z`` (len(ys), len(xs)) on the grid ``xs`` x ``ys``, a colour bar title."""

    xs: np.ndarray
    ys: np.ndarray
    z: np.ndarray
    title: str


def _shading_trace(s: Shading, levels: float = SHADING_RANGE) -> go.Contour:
    """Filled contours in a neutral grey that deepens with the value (reads on light and dark pages); the lowest
    ``levels`` units below the top are shown, lower values stay clear. No colour bar: the legend needs the room, and
    the caption says what the shading is (hovering gives no values: the points' hover wins)."""
    top = float(np.nanmax(s.z))
    return go.Contour(
        x=s.xs, y=s.ys, z=np.maximum(s.z, top - levels), zmin=top - levels, zmax=top, ncontours=12,
        colorscale=[[0, "rgba(128,128,128,0)"], [1, "rgba(128,128,128,0.65)"]], line={"width": 0.5},
        contours={"coloring": "fill", "showlines": True}, hoverinfo="skip", showlegend=False, showscale=False,
        name=s.title,
    )  # fmt: skip


def category_order(labels: Sequence[str], first: Sequence[str] = ()) -> list[str]:
    """Categories in legend order: those of ``first`` (in its order), then the rest sorted (by number when they start
    with one: '36 Bass Drum 1' before '100 ...'), '(none)' last."""
    rest = [c for c in dict.fromkeys(labels) if c not in first and c != "(none)"]

    def key(c: str):
        head = c.split(" ", 1)[0]
        return (0, float(head), c) if head.replace(".", "", 1).isdigit() else (1, 0.0, c)

    return [c for c in first if c in labels] + sorted(rest, key=key) + (["(none)"] if "(none)" in labels else [])


def latent_map_figure(
    xy: np.ndarray,
    names: Sequence[str],
    colour: Sequence | None = None,
    colour_name: str = "",
    selected: int | None = None,
    explained: Sequence[float] = (),
    height: int = 560,
    *,
    prior_xy: np.ndarray | None = None,
    prior_names: Sequence[str] = (),
    shading: Shading | None = None,
    first: Sequence[str] = (),
) -> go.Figure:
    """2-D scatter of latent vectors; every point carries its index in ``customdata`` (clicks select it).

    ``colour`` holds one category per point (a legend entry each, ordered by :func:`category_order` with ``first``
    first); ``prior_xy``: prior samples on the same map, open diamonds, indices after the points'; ``shading``: a
    background (the prior's log-density). The ``selected`` point (an index into points then prior samples) is ringed.
    """
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    prior = np.zeros((0, 2)) if prior_xy is None else np.asarray(prior_xy, np.float64).reshape(-1, 2)
    idx = np.arange(len(xy))
    hover = "%{text}<extra></extra>"
    size = 14 if len(xy) <= 60 else 10
    marker = {"size": size, "line": {"width": 1, "color": "white"}}
    fig = go.Figure()
    if shading is not None:
        fig.add_trace(_shading_trace(shading))
    if colour is None or not len(colour):
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", text=list(names), customdata=idx,
                                 marker=marker, hovertemplate=hover, name="sounds", showlegend=len(prior) > 0))  # fmt: skip
    else:
        labels = [str(v) if v not in ("", None) else "(none)" for v in colour]
        for k, cat in enumerate(category_order(labels, first)):
            m = np.array([lab == cat for lab in labels])
            fig.add_trace(go.Scatter(
                x=xy[m, 0], y=xy[m, 1], mode="markers", name=cat, text=[n for n, ok in zip(names, m) if ok],
                customdata=idx[m], hovertemplate=hover,
                marker={**marker, "color": CATEGORY_COLORS[k % len(CATEGORY_COLORS)]},
            ))  # fmt: skip
    if len(prior):
        fig.add_trace(go.Scatter(
            x=prior[:, 0], y=prior[:, 1], mode="markers", name="prior sample", text=list(prior_names),
            customdata=np.arange(len(xy), len(xy) + len(prior)), hovertemplate=hover,
            marker={"size": size + 2, "symbol": "diamond-open", "color": PRIOR_COLOR, "line": {"width": 2.5}},
        ))  # fmt: skip
    both = np.concatenate([xy, prior])
    if selected is not None and 0 <= selected < len(both):
        fig.add_trace(go.Scatter(x=[both[selected, 0]], y=[both[selected, 1]], mode="markers", hoverinfo="skip",
                                 marker={"size": 2.2 * size, "color": "rgba(0,0,0,0)",
                                         "line": {"width": 3, "color": "#6b7280"}},
                                 name="selected", showlegend=False))  # fmt: skip
    ev = list(explained) + [float("nan")] * 2
    fig.update_xaxes(title={"text": f"PC 1 ({ev[0]:.0%} of variance)" if ev[0] == ev[0] else "PC 1"}, zeroline=False)
    fig.update_yaxes(title={"text": f"PC 2 ({ev[1]:.0%} of variance)" if ev[1] == ev[1] else "PC 2"}, zeroline=False)
    fig.update_layout(legend={"title": {"text": colour_name}, "x": 1.01, "y": 1, "yanchor": "top",
                              "itemclick": "toggle", "font": {"size": 15}},
                      clickmode="event", hovermode="closest")  # fmt: skip
    return _layout(fig, "", height, toolbar="h").update_layout(margin={"t": 20})  # (its legend at the right edge)
