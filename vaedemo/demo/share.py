"""A shareable state in the page's URL, so that a talk can be rehearsed and replayed: ``?model=drums_twostage&tab=sample
&seed=7&temperature=0.8&prior=gaussian`` chooses the model and the tab and sets the Sample tab's seed, temperature and
prior (``flow``, the default where the model has one, or ``gaussian``) when the page opens. Bad values are ignored
with one gentle message (never an error); the "Link to this view" button shows (and copies) the URL of what is on
screen now."""

from __future__ import annotations

import math
from collections.abc import Mapping

import gradio as gr

from .common import as_text, shown
from .state import DemoState

TABS = {"reconstruct": "Reconstruct", "sample": "Sample", "interpolate": "Interpolate", "map": "Latent map",
        "live": "Live"}  # fmt: skip
PARAMS = ("model", "tab", "seed", "temperature", "prior")  # what a link sets (the button's link replaces them)
PRIORS = {"flow": True, "gaussian": False}  # the link's prior -> the Sample tab's "Flow prior" switch
# The link of the current state, built in the browser: the page's address with the model, the selected tab and the
# Sample tab's seed, temperature and prior (the tab from the tab bar: its label -> its id; the prior only when it is
# the Gaussian of a model that has a flow prior, the flow being the default). Copied to the clipboard too.
LINK_JS = """
(model, seed, temperature, useFlow) => {
  const ids = %s;
  const label = document.querySelector('button[role="tab"][aria-selected="true"]')?.innerText.trim();
  const tab = Object.keys(ids).find((k) => ids[k] === label);
  const q = new URLSearchParams(window.location.search);
  for (const name of %s) q.delete(name);
  if (model) q.set('model', model);
  if (tab) q.set('tab', tab);
  q.set('seed', String(seed)); q.set('temperature', String(temperature));
  const switchable = !document.querySelector('#sample-use-flow input')?.disabled;  // the model has a flow prior
  if (switchable && !useFlow) q.set('prior', 'gaussian');
  const url = window.location.origin + window.location.pathname + '?' + q.toString();
  try { navigator.clipboard.writeText(url); } catch (e) {}
  return url;
}
""" % (dict(TABS), list(PARAMS))  # noqa: UP031 (the JS has braces of its own)


def _number(text: str, lo: float, hi: float, integer: bool) -> float | None:
    """A query value as a number in [lo, hi] (a whole one when ``integer``); None when it is not one."""
    try:
        v = float(text)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(v) or not lo <= v <= hi or (integer and not v.is_integer()):
        return None
    return int(v) if integer else v


def read_query(query: Mapping[str, str], models: list[str], max_seed: int, max_temperature: float,
               tabs=tuple(TABS)) -> tuple[dict, list[str]]:  # fmt: skip
    """The page's query parameters -> (the valid settings {model, tab, seed, temperature, prior (True: the flow)},
    what was ignored: one phrase per bad value). Unknown parameters (``__theme``, ...) are none of its business."""
    settings, ignored = {}, []
    checks = {
        "model": (lambda v: v if v in models else None, f"one of {', '.join(models)}"),
        "tab": (lambda v: v if v in tabs else None, f"one of {', '.join(tabs)}"),
        "seed": (lambda v: _number(v, 0, max_seed, True), f"a whole number from 0 to {max_seed}"),
        "temperature": (lambda v: _number(v, 0.0, max_temperature, False), f"a number from 0 to {max_temperature:g}"),
        "prior": (lambda v: PRIORS.get(v), " or ".join(PRIORS)),
    }
    for name, (check, expected) in checks.items():
        raw = query.get(name)
        if raw is None:
            continue
        value = check(raw.strip()) if isinstance(raw, str) and len(raw) <= 100 else None
        if value is None:
            ignored.append(f"{name}={shown(raw)} (expected {expected})")
        else:
            settings[name] = value
    return settings, ignored


def build(state: DemoState, model: gr.Dropdown, tabs: gr.Tabs, seed: gr.Slider, temperature: gr.Slider,
          use_flow: gr.Checkbox, demo: gr.Blocks, header: gr.Row, max_seed: int,
          max_temperature: float) -> tuple[gr.events.Dependency, gr.State]:  # fmt: skip
    """The link button (in the header row), the box that shows the link, and the query applied when the page opens.
    Returns that load event (for what must follow it) and the link's prior (None, True: the flow, False: the
    Gaussian), which the model's load applies to the "Flow prior" switch (a model's load sets the switch, and on a
    fresh page from a link that names a model two loads run, one as the page opens and one for the picker's change:
    each applies it). The prior holds until the switch is changed by hand."""
    with header:
        link_btn = gr.Button("Link to this view", size="sm", scale=0, min_width=150, elem_id="share-btn")
        link_box = gr.Textbox(visible="hidden", elem_id="share-link")  # the link, written by LINK_JS
    link_prior = gr.State(None)
    present = [t for t in TABS if t != "live" or any(getattr(b, "id", None) == "live" for b in tabs.children)]

    def apply(request: gr.Request):
        query = dict(getattr(request, "query_params", None) or {})
        settings, ignored = read_query(query, state.models.labels, max_seed, max_temperature, present)
        if ignored:
            gr.Info(as_text("Ignored from the link: " + "; ".join(ignored) + "."))
        return (gr.update(value=settings["model"]) if "model" in settings else gr.update(),
                gr.Tabs(selected=settings["tab"]) if "tab" in settings else gr.update(),
                gr.update(value=settings["seed"]) if "seed" in settings else gr.update(),
                gr.update(value=settings["temperature"]) if "temperature" in settings else gr.update(),
                settings.get("prior"))  # fmt: skip

    # queued (its message travels with the queue's events), with no limit: it computes nothing
    loaded = demo.load(apply, None, [model, tabs, seed, temperature, link_prior], api_visibility="private",
                       concurrency_limit=None)  # fmt: skip
    use_flow.input(lambda: None, None, link_prior, queue=False, api_visibility="private")  # changed by hand
    link_btn.click(None, [model, seed, temperature, use_flow], link_box, js=LINK_JS, api_visibility="private").then(
        show_link, link_box, None, api_visibility="private", concurrency_limit=None)  # fmt: skip
    return loaded, link_prior


def prior_switch(has_flow: bool, link_prior: bool | None) -> bool:
    """The "Flow prior" switch for a model just loaded: on where the model has a flow prior, unless the page's link
    asked for the Gaussian."""
    return has_flow and link_prior is not False


def show_link(url: str) -> None:
    """The link in a message that stays until it is closed (it is on the clipboard too, where the browser allows)."""
    if isinstance(url, str) and url.startswith(("http://", "https://")) and len(url) < 2000:
        gr.Info(as_text(f"Link to this view (copied): {url}"), duration=None, title="Link")
