"""What every tab shares: paths and limits, the look of the page, the audio component, and how errors reach users."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.data_classes import FileData

from vaedemo.audio import shown_name
from vaedemo.errors import VaedemoError

log = logging.getLogger("vaedemo.app")  # the demo's log (skipped files, unexpected errors)
ROOT = Path(__file__).resolve().parents[2]  # the repository: app.py, examples/, checkpoints/
EXAMPLES = ROOT / "examples"
N_DIRECTIONS = 4  # latent directions (prior PCA) offered in the Sample tab

FONT = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "Noto Sans", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "DejaVu Sans Mono", "monospace"]
# System fonts only: Gradio's bundled Source Sans Pro semibold lacks glyphs, and the page loads nothing from outside.
THEME = gr.themes.Default(primary_hue="indigo", secondary_hue="amber", text_size="lg", font=FONT,
                          font_mono=MONO).set(block_label_text_size="*text_md", block_title_text_size="*text_md",
                                              block_info_text_size="*text_md")  # fmt: skip
# Projector first: the whole width, a one-line header, and the first screen of every tab (1280x720) holds its
# primary button and main figure. The Interpolate tab's players are a few cm wide (at 1280 px): Gradio's skip buttons
# (of little use in a one-second sound) pushed the buttons beside them out of the player, so they are hidden there.
# Plotly figures have transparent backgrounds (see `themed`); in the dark theme their text and grid lines are
# lightened here.
CSS = """
.gradio-container {max-width: 100% !important; padding: 0 12px !important}
main.contain {padding-top: 4px !important}
#header {align-items: center; gap: 12px; flex-wrap: nowrap}
#header > * {min-width: 0}
#title {flex: 0 0 auto !important; width: auto !important}
#title h1 {font-size: 1.5rem; margin: 0; white-space: nowrap}
#summary p {font-size: 0.95rem; line-height: 1.3; margin: 0; overflow: hidden; display: -webkit-box;
            -webkit-line-clamp: 2; -webkit-box-orient: vertical}
.intro p {font-size: 1.05rem; margin: 0 0 0.2rem}
.tab-wrapper button, button[role="tab"] {font-size: 1.15rem !important; font-weight: 600}
#typicality p {font-size: 1.05rem; margin: 0 0 0.3rem}
#rec-metrics table {font-size: 0.95rem; margin: 0}
#rec-metrics td, #rec-metrics th {padding: 4px 8px !important}
#rec-metrics td:last-child {white-space: nowrap}
.compact-player .rewind, .compact-player .skip {display: none !important}
#browser-live-view {width: 100%; height: auto; display: block; border-radius: 4px; cursor: zoom-in}
#browser-live-view:fullscreen {width: 100vw; height: 100vh; object-fit: contain; background: black; cursor: zoom-out}
#browser-live-view-caption {font-size: 0.9rem; opacity: 0.8; margin-top: 4px}
.dark .js-plotly-plot .main-svg text {fill: #e5e7eb !important}
.dark .js-plotly-plot .gridlayer path, .dark .js-plotly-plot .zerolinelayer path {stroke: #4b5563 !important}
"""
AUDIO_OUT = {"type": "filepath", "interactive": False, "buttons": ["download"]}
# UI events are not part of the API. Gradio hands them to their handlers at once (no concurrency limit of its own):
# the handlers wait in the demo's gate (guard.Gate), which limits each client and runs `concurrency` at a time.
UI = {"api_visibility": "private", "concurrency_limit": None}
PLAYABLE = {".wav", ".flac", ".mp3", ".ogg"}


def Audio(**kwargs) -> gr.Audio:  # noqa: N802 (used like the component class)
    """gr.Audio that sends wav/flac/mp3/ogg files as they are. (gr.Audio runs ffprobe on every file it sends to
    check that browsers can play it: 50-100 ms per file on a 2-core CPU, for formats every browser plays. A subclass
    would make Gradio write a .pyi stub next to its module, so the instance's postprocess is wrapped instead.)"""
    component = gr.Audio(**kwargs)
    checked = component.postprocess

    def postprocess(value):
        if isinstance(value, (str, Path)) and Path(value).suffix.lower() in PLAYABLE and Path(value).is_file():
            return FileData(path=str(value), orig_name=Path(value).name)
        return checked(value)

    component.postprocess = postprocess
    return component


def themed(fig, height: int | None = None):
    """A Plotly figure that follows the page's light/dark theme: transparent backgrounds, a mid-grey text colour
    that reads on both (the page's CSS lightens it further in the dark theme); ``height`` in px if given. Returns the
    figure; None passes."""
    if fig is not None:
        if height:
            fig.update_layout(height=height)
        fig.update_layout(paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", font={"color": "#6b7280"},
                          title_font_color="#6b7280", margin={"t": 40, "b": 40, "r": 10})  # fmt: skip
        fig.update_xaxes(gridcolor="rgba(128,128,128,0.25)", zerolinecolor="rgba(128,128,128,0.35)")
        fig.update_yaxes(gridcolor="rgba(128,128,128,0.25)", zerolinecolor="rgba(128,128,128,0.35)")
    return fig


PEAK_DBFS = -1.0  # what "normalised for listening" means: the peak at -1 dBFS


def peak_dbfs(audio: np.ndarray) -> float:
    """The peak level of audio in dBFS (-inf for silence)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def normalise_peak(audio: np.ndarray, target_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """audio scaled so that its peak is at ``target_dbfs`` (silence, or a peak below -120 dBFS, is left as it is)."""
    level = peak_dbfs(audio)
    if not math.isfinite(level) or level < -120:
        return audio
    return (audio * 10 ** ((target_dbfs - level) / 20)).astype(np.float32)


def level_text(db: float, short: bool = False) -> str:
    """A raw peak level as a title shows it: 'peak −23 dBFS' (short: '−23 dBFS'), 'silent'."""
    if not math.isfinite(db):
        return "silent"
    return ("" if short else "peak ") + f"{db:.0f} dBFS".replace("-", "−")


def examples(names: list[str]) -> list[list[str]]:
    """gr.Examples rows for the files of examples/ that exist."""
    return [[str(EXAMPLES / n)] for n in names if (EXAMPLES / n).is_file()]


def intro(text: str) -> gr.Markdown:
    """The sentence under a tab's name that says what the tab does."""
    return gr.Markdown(text, elem_classes="intro")


def user_errors(fn):
    """Turn VaedemoError (and anything unexpected) into a gr.Error with one sentence; the server keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except VaedemoError as e:
            msg = str(e)  # "the audio ..." -> "The audio ..."; a leading file name stays as it is
            msg = msg[:1].upper() + msg[1:] if msg.split(" ", 1)[0].isalpha() else msg
            raise gr.Error(as_text(msg), print_exception=False) from None
        except Exception as e:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(e).__name__}); please try another sound or setting.") from None

    return wrapper


def as_text(message: str) -> str:
    """A message for a toast (gr.Error, gr.Warning, gr.Info), which the page renders as HTML: a user's value quoted in
    it (a file name, a link's parameter) is shown as the text it is, not as markup (a crafted link put a login link
    into another visitor's page under the demo's name). Only "<" is escaped, which every tag needs: an API client
    reads the same string, and "Kick & Snare.wav" stays as it is there (an entity in a name shows decoded on the page,
    as text)."""
    return message.replace("<", "&lt;")


def shown(value) -> str:
    """A value from a user as messages may show it: a short (<= 60 characters), escaped excerpt."""
    text = value[:200] if isinstance(value, str) else repr(value)[:200]  # repr() of all of a 1 MB string: not needed
    out = shown_name(text)
    return f"'{out}'" if isinstance(value, str) and out == text else out  # quoted, as the excerpts are


def number(value, name: str, lo: float, hi: float, integer: bool = True) -> float:
    """A setting from the page or the API, checked: one sentence naming it when it is not a number in [lo, hi].

    Anything may arrive here (the API's number inputs pass their values through unchanged, so that a bad one gets
    this sentence rather than Gradio's generic error): numbers, strings such as ``'abc'`` or ``'1e400'``, lists."""
    if isinstance(value, str) and len(value) <= 100:
        value = value.strip()
    try:
        if isinstance(value, (list, tuple, dict, set, bytes)) or (isinstance(value, str) and len(value) > 100):
            raise ValueError
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise VaedemoError(f"{name} must be a number, got {shown(value)}.") from None
    if math.isnan(v):
        raise VaedemoError(f"{name} must be a number, got {shown(value)}.")
    if not (math.isfinite(v) and lo <= (int(round(v)) if integer else v) <= hi):
        raise VaedemoError(f"{name} must be between {_bound(lo)} and {_bound(hi)}, got {shown(value)}.")
    return int(round(v)) if integer else v


def _bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def flag(value, name: str) -> bool:
    """A switch from the page or the API: true/false (1/0 and the strings 'true'/'false' too), else one sentence."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise VaedemoError(f"{name} must be true or false, got {shown(value)}.")


def choice(value, name: str, options) -> str:
    """One of a fixed set of strings (an interpolation method, a folder, ...), else one sentence listing them."""
    if isinstance(value, str) and value in options:
        return value
    raise VaedemoError(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {shown(value)}.")
