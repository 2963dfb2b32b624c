"""The browser demo (Gradio): the page, one module per tab next to its handlers, and the demo's benchmark.

This package is the only part of vaedemo that imports Gradio; it uses the library (``vaedemo.inference``,
``vaedemo.plots``, ...) and the library never imports it. ``app.py`` parses the command line and calls
:func:`create` and :func:`launch`.

* ``page``: :func:`build_demo` (header, model picker and card, the stable API endpoints ``/reconstruct``,
  ``/sample`` and ``/interpolate``, then each tab), :func:`create`, :func:`launch`.
* ``reconstruct``, ``sample``, ``interpolate``, ``latent_map``: one tab each, its ``build`` function (layout and
  event wiring) next to its handlers. Handlers take the :class:`~vaedemo.demo.state.DemoState` and plain values
  (file paths, numbers, the model's label) and return file paths, Plotly figures and text; every problem a user can
  cause becomes a ``gr.Error`` with one sentence, so the server keeps serving.
* ``typicality``: the percentile of a latent's exact log-density under a flow prior among the training clips (from
  the bundle's training-set summary; else among the prior's own samples); Reconstruct and Interpolate show it.
  ``training_set``: a loaded model's training-set summary (``summary.json`` + ``summary.safetensors``), read once.
* ``share``: the state in the page's address (``?model=...&tab=...&seed=...&temperature=...``) and the link button.
* ``state``: :class:`~vaedemo.demo.state.DemoState`, what the tabs share at run time. ``models``: finding the
  bundles to offer, an LRU cache of loaded engines, latent directions. ``files``: output files (one stored copy
  each), the bound on temporary files, their removal at exit and on SIGTERM/SIGINT. ``guard``: per-client limits on
  requests, one sentence for inputs Gradio cannot read, logins. ``common``: paths, look (theme, CSS, figures that
  follow the light/dark theme, loudness for listening), the audio component, error handling, checked settings.
* ``bench``: ``python -m vaedemo.demo.bench``, the handlers' latency and the cold start of ``app.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # works offline: no version check, no telemetry
# Gradio reads $GRADIO_SERVER_PORT as a number when it is imported, and a value that is not one ends the import in a
# traceback: set it aside here, so that app.py's --port (whose default it is) reports it in one sentence instead.
INVALID_PORT = None if os.environ.get("GRADIO_SERVER_PORT", "0").strip().isdigit() else os.environ.pop("GRADIO_SERVER_PORT")

from .page import build_demo, create, launch  # noqa: E402 (after the environment above: Gradio reads it on import)

__all__ = ["INVALID_PORT", "build_demo", "create", "launch"]
