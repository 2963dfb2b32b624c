"""Results of a model the page has since switched away from are dropped.

A change of model clears the tabs' results at once, but a request already running (a long file, a search of the
latent, a path of many steps) goes on, and its result used to land afterwards under the new model's name: a sound
and figures from the model that was chosen before. Each page session's last choice is kept (:class:`ChosenModels`,
set by the model picker's change event), and a handler wrapped by :func:`for_chosen_model` returns "leave the
outputs as they are" when the session chose another model while it ran.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import gradio as gr


class ChosenModels:
    """The model each page session chose last, for the ``limit`` sessions that chose most recently (an older session
    forgotten keeps its results, as before)."""

    def __init__(self, limit: int = 4096):
        self.limit = limit
        self._chosen: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def choose(self, request: gr.Request | None, label: str | None) -> None:
        session = getattr(request, "session_hash", None)
        if session is None or label is None:
            return
        with self._lock:
            self._chosen[session] = label
            self._chosen.move_to_end(session)
            while len(self._chosen) > self.limit:
                self._chosen.popitem(last=False)

    def moved_on(self, request: gr.Request | None, label: str | None) -> bool:
        """Whether the session of ``request`` has chosen a model other than ``label`` (the one a request ran on)."""
        session = getattr(request, "session_hash", None)
        with self._lock:
            chosen = self._chosen.get(session) if session is not None else None
        return chosen is not None and chosen != label


def for_chosen_model(chosen: ChosenModels, model_at: int):
    """Decorate a page handler ``(request, *inputs)`` whose input ``model_at`` is the model it runs on: its result is
    replaced by ``gr.skip()`` for every output when the session chose another model before it finished."""

    def wrap(handler):
        def run(request: gr.Request, *inputs):
            out = handler(request, *inputs)
            if not chosen.moved_on(request, inputs[model_at]):
                return out
            return [gr.skip() for _ in out] if isinstance(out, (list, tuple)) else gr.skip()

        run.__name__, run.__qualname__, run.__doc__ = handler.__name__, handler.__qualname__, handler.__doc__
        return run  # no functools.wraps: Gradio would read the handler's signature (through __wrapped__)

    return wrap
