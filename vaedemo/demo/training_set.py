"""The training-set summary of a loaded model (``summary.json`` + ``summary.safetensors`` in its bundle folder, written
by ``python -m vaedemo.dataset_summary``), read once per engine. The latent map shows it; typicality ranks against it."""

from __future__ import annotations

import threading
import weakref

from vaedemo.dataset_summary import TrainingSetSummary, read_summary
from vaedemo.errors import VaedemoError
from vaedemo.inference import Engine

from .common import log

_summaries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> its summary (or None)
_lock = threading.Lock()


def summary(eng: Engine) -> TrainingSetSummary | None:
    """The engine's bundle's summary; None when the bundle has none (or a broken one: logged, the demo goes on)."""
    with _lock:
        if eng not in _summaries:
            found = None
            if eng.bundle.path is not None:
                try:
                    found = read_summary(eng.bundle.path, eng.latent_size)
                except VaedemoError as e:
                    log.warning("ignoring the training-set summary of %s: %s", eng.bundle.path, e)
            _summaries[eng] = found
        return _summaries[eng]
