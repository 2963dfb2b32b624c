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

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .dsp import hz_to_mel, mel_to_hz
from .metrics import log_mel_spectrogram

MAX_MELS = 64
MAX_FRAMES = 400
DB_RANGE = 80.0
DB_PER_NEPER = 20.0 / math.log(10.0)  # log-mel is a natural log of magnitudes
COLORSCALE = "Magma"
FONT = {"size": 16}
TICK_HZ = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
CATEGORY_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf")  # fmt: skip


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


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 18}}, height=height, font=FONT,
        margin={"l": 60, "r": 10, "t": 44, "b": 44}, paper_bgcolor="white", plot_bgcolor="white",
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


def _is_numeric(values: Sequence) -> bool:
    try:
        [float(v) for v in values if v not in ("", None)]
    except (TypeError, ValueError):
        return False
    return any(v not in ("", None) for v in values)


def latent_map_figure(
    xy: np.ndarray,
    names: Sequence[str],
    colour: Sequence | None = None,
    colour_name: str = "",
    selected: int | None = None,
    explained: Sequence[float] = (),
    height: int = 560,
) -> go.Figure:
    """2-D scatter of latent vectors; every point carries its index in ``customdata`` (clicks select it).

    ``colour`` holds one metadata value per point: text gives one legend entry per category, numbers a colour bar.
    The ``selected`` point is ringed.
    """
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    idx = np.arange(len(xy))
    hover = "%{text}<extra></extra>"
    marker = {"size": 16, "line": {"width": 1, "color": "white"}}
    fig = go.Figure()
    if colour is None or not len(colour):
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", text=list(names), customdata=idx,
                                 marker=marker, hovertemplate=hover, showlegend=False))  # fmt: skip
    elif _is_numeric(colour):
        vals = np.array([float(v) if v not in ("", None) else np.nan for v in colour])
        fig.add_trace(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", text=list(names), customdata=idx, hovertemplate=hover,
            marker={**marker, "color": vals, "colorscale": "Viridis", "showscale": True,
                    "colorbar": {"title": {"text": colour_name}}}, showlegend=False,
        ))  # fmt: skip
    else:
        labels = [str(v) if v not in ("", None) else "(none)" for v in colour]
        for k, cat in enumerate(dict.fromkeys(labels)):
            m = np.array([lab == cat for lab in labels])
            fig.add_trace(go.Scatter(
                x=xy[m, 0], y=xy[m, 1], mode="markers", name=cat, text=[n for n, ok in zip(names, m) if ok],
                customdata=idx[m], hovertemplate=hover,
                marker={**marker, "color": CATEGORY_COLORS[k % len(CATEGORY_COLORS)]},
            ))  # fmt: skip
    if selected is not None and 0 <= selected < len(xy):
        fig.add_trace(go.Scatter(x=[xy[selected, 0]], y=[xy[selected, 1]], mode="markers", hoverinfo="skip",
                                 marker={"size": 30, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "black"}},
                                 name="selected", showlegend=False))  # fmt: skip
    ev = list(explained) + [float("nan")] * 2
    fig.update_xaxes(title={"text": f"PC 1 ({ev[0]:.0%} of variance)" if ev[0] == ev[0] else "PC 1"}, zeroline=False)
    fig.update_yaxes(title={"text": f"PC 2 ({ev[1]:.0%} of variance)" if ev[1] == ev[1] else "PC 2"}, zeroline=False)
    fig.update_layout(legend={"title": {"text": colour_name}}, clickmode="event", hovermode="closest",
                      plot_bgcolor="#f7f7f7")  # fmt: skip
    return _layout(fig, "", height)
