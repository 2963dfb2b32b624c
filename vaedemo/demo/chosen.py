"""Results of a model the page has since switched away from are dropped.

A change of model clears the tabs' results at once, but a request already running (a long file, a search of the
latent, a path of many steps) goes on, and its result used to land afterwards under the new model's name: a sound
and figures from the model that was chosen before. Each page session's last choice is kept (:class:`ChosenModels`,
set by the model picker's change event), and a handler wrapped by :func:`for_chosen_model` returns "leave the
outputs as they are" when the session chose another model while it ran. A choice recorded late (the change event
goes outside the queue) lets a stale result land, as before, and then clears it; it never drops a current one.
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
        self._chosen: OrderedDict[str, tuple[int, str]] = OrderedDict()  # session -> (choice number, label)
        self._count = 0
        self._lock = threading.Lock()

    def choose(self, request: gr.Request | None, label: str | None) -> None:
        session = getattr(request, "session_hash", None)
        if session is None or label is None:
            return
        with self._lock:
            self._count += 1
            self._chosen[session] = (self._count, label)
            self._chosen.move_to_end(session)
            while len(self._chosen) > self.limit:
                self._chosen.popitem(last=False)

    def last(self, request: gr.Request | None) -> tuple[int, str] | None:
        """The session's last choice (its number among all choices, the label); None when it has made none."""
        session = getattr(request, "session_hash", None)
        with self._lock:
            return self._chosen.get(session) if session is not None else None

    def moved_on(self, request: gr.Request | None, label: str | None, since: tuple[int, str] | None) -> bool:
        """Whether the session of ``request`` chose a model other than ``label`` (the one a request ran on) after
        ``since`` (its :meth:`last` choice when the request started). Only a choice made while the request ran
        counts: the picker's change event goes outside the queue and may be recorded after requests on the new model
        have run (the Latent map redraws on a change), which a comparison with the last choice alone would drop."""
        now = self.last(request)
        return now is not None and now != since and now[1] != label


def for_chosen_model(chosen: ChosenModels, model_at: int):
    """Decorate a page handler ``(request, *inputs)`` whose input ``model_at`` is the model it runs on: its result is
    replaced by ``gr.skip()`` for every output when the session chose another model before it finished."""

    def wrap(handler):
        def run(request: gr.Request, *inputs):
            since = chosen.last(request)
            out = handler(request, *inputs)
            if not chosen.moved_on(request, inputs[model_at], since):
                return out
            return [gr.skip() for _ in out] if isinstance(out, (list, tuple)) else gr.skip()

        run.__name__, run.__qualname__, run.__doc__ = handler.__name__, handler.__qualname__, handler.__doc__
        return run  # no functools.wraps: Gradio would read the handler's signature (through __wrapped__)

    return wrap
