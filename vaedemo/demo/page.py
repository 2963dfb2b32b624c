"""The page: header, model picker and card, the stable API endpoints, then one tab per module; create and launch."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

import vaedemo.demo.browser_live as browser_live
import vaedemo.demo.interpolate as interpolate_tab  # not `from . import x`: that names vaedemo.demo, which imports us
import vaedemo.demo.latent_map as latent_map_tab
import vaedemo.demo.live as live_tab
import vaedemo.demo.live_view as live_view
import vaedemo.demo.reconstruct as reconstruct_tab
import vaedemo.demo.sample as sample_tab
import vaedemo.demo.share as share
from vaedemo.card import parameter_table
from vaedemo.errors import VaedemoError

from .bodies import RequestBodies
from .common import CSS, EXAMPLES, ROOT, THEME, Audio, user_errors
from .files import MAX_TEMP_MB, MB, served
from .guard import MAX_WAITING, PER_CLIENT, file_size_bytes, gated, guard_inputs, pass_through, quiet_unknown_sessions
from .models import Models, discover
from .state import DemoState

# the page's script: the latent map's clicks and the Live tab's in-browser mode, each a function run once at load
PAGE_JS = (f"() => {{ ({latent_map_tab.JS.strip()})(); ({browser_live.JS.strip()})(); "
           f"({live_view.JS.strip()})(); }}")

AUTH_MESSAGE = "This vaedemo server asks for a user name and password."


@user_errors
def model_info(state: DemoState, model: str) -> tuple[str, str, bool]:
    """(one-line summary, model card markdown, whether the model has a flow prior)."""
    eng = state.models.get(model)
    b = eng.bundle
    params = parameter_table(eng.model)[-1][2]
    mode = eng.mode.describe(eng.sample_rate)
    summary = (f"**{model}** — {mode}; {'flow' if eng.has_prior_flow else 'Gaussian'} prior; "
               f"{eng.sample_rate / 1000:g} kHz {'stereo' if eng.channels == 2 else 'mono'}; "
               f"{params / 1e6:.2f} M parameters; "
               + (f"trained {b.meta['step']} steps on " if b.meta.get("step") else "data: ")
               + f"{b.meta.get('data') or (b.training.get('data') or {}).get('root', 'unknown')}.")  # fmt: skip
    return summary, b.card or "This bundle has no model card (README.md).", eng.has_prior_flow


def build_api(state: DemoState, default: str) -> None:
    """The stable API (gradio_client): hidden components and the named endpoints /reconstruct, /sample and
    /interpolate. Registered before the tabs, so that no UI event (private, auto-named after its function) can take
    these names. The number inputs hand their values over as they came (``guard.pass_through``): the handlers check
    them, so that ``n='abc'`` gets a sentence that names ``n``."""
    with gr.Column(visible=False):
        a_audio = Audio(type="filepath", label="audio")
        a_audio_b = Audio(type="filepath", label="audio_b")
        a_model = gr.Textbox(value=default, label="model")
        a_n = pass_through(gr.Number(value=4, precision=0, label="n"))
        a_temp = pass_through(gr.Number(value=1.0, label="temperature"))
        a_seed = pass_through(gr.Number(value=0, precision=0, label="seed"))
        a_flow = gr.Checkbox(value=True, label="use_flow")
        a_refine = gr.Checkbox(value=False, label="refine")
        a_steps = pass_through(gr.Number(value=5, precision=0, label="steps"))
        a_method = gr.Textbox(value="prior", label="method")
        a_out = Audio(type="filepath", label="reconstruction")
        a_metrics = gr.JSON(label="metrics")
        a_files = gr.File(file_count="multiple", label="audio files")
        a_btn = gr.Button()

    def reconstruct(audio: str, model: str, refine: bool, request: gr.Request) -> tuple[str, dict]:
        """Reconstruct an audio file: returns (wav at the input's rate, length and channels; metrics and what was used
        of the input: trimmed, seconds_used, seconds_in_file, refine_steps, refine_note). refine: search the latents
        (one-shots and sounds up to a few seconds; beyond that refine_steps 0, and refine_note says why)."""
        with state.gate(request):
            out, _, _, _, metrics = reconstruct_tab.reconstruct(state, audio, model, refine=refine)
        return out, metrics

    def sample(n: int, temperature: float, seed: int, use_flow: bool, model: str, request: gr.Request) -> list[str]:
        """n sounds from the prior (wav files at the model's rate); the same seed gives the same sounds."""
        with state.gate(request):
            return sample_tab.sample(state, n, temperature, seed, use_flow, model)[0]

    def interpolate(audio: str, audio_b: str, steps: int, method: str, model: str, refine: bool,
                    request: gr.Request) -> list[str]:  # fmt: skip
        """The path from audio to audio_b in `steps` wav files (method 'prior': a slerp where the learned prior is a
        Gaussian, so the path keeps to where the prior puts its mass; 'slerp' or 'lerp' through the latents); refine:
        from their latents searched (sounds up to a few seconds)."""
        file = interpolate_tab.KINDS[0]
        with state.gate(request):
            return interpolate_tab.interpolate(state, file, audio, 0, file, audio_b, 0, steps, method, model,
                                               refine=refine)[0]  # fmt: skip

    api = {"api_visibility": "public", "concurrency_limit": None}  # they wait in state.gate, see guard.py
    a_btn.click(reconstruct, [a_audio, a_model, a_refine], [a_out, a_metrics], api_name="reconstruct", **api)
    a_btn.click(sample, [a_n, a_temp, a_seed, a_flow, a_model], a_files, api_name="sample", **api)
    a_btn.click(interpolate, [a_audio, a_audio_b, a_steps, a_method, a_model, a_refine], a_files,
                api_name="interpolate", **api)  # fmt: skip


def build_demo(state: DemoState) -> gr.Blocks:
    """The page: model picker + card, then the Reconstruct, Sample, Interpolate, Latent map and Live tabs."""
    models = state.models
    summary, card, has_flow = model_info(state, models.default)
    with gr.Blocks(title="vaedemo — audio VAE latent space", delete_cache=(600, 3600), fill_width=True) as demo:
        with gr.Row(equal_height=True, elem_id="header") as header:
            gr.Markdown("# vaedemo · audio VAE latent space", elem_id="title")
            model = gr.Dropdown(models.labels, value=models.default, label="Model", scale=0, min_width=240,
                                elem_id="model-picker")  # fmt: skip
            info = gr.Markdown(summary, elem_id="summary")
        build_api(state, models.default)
        with gr.Tabs(elem_id="tabs") as tabs:
            rec_out, rec_examples = reconstruct_tab.build(state, model)
            use_flow, dirs, sample_out, sample_cleared, sample_controls = sample_tab.build(state, model, has_flow)
            interp_out, interp_cleared = interpolate_tab.build(state, model)
            map_follows = latent_map_tab.build(state, model)
            live_tab.build(state)
        # the state in the URL, the link button
        loaded, link_prior = share.build(state, model, tabs, sample_controls["seed"], sample_controls["temperature"],
                                         use_flow, demo, header, sample_tab.MAX_SEED, sample_tab.MAX_TEMPERATURE)  # fmt: skip
        with gr.Accordion("Model card: config, parameters per module, training data, metrics", open=False,
                          elem_id="model-card"):  # fmt: skip
            card_md = gr.Markdown(card)

        @gated(state.gate, "model-load")
        def on_model(m, prior):  # loads the model (LRU-cached) and its prior PCA
            s, c, flow = model_info(state, m)
            labels = [gr.update(label=lab) for lab in sample_tab.direction_labels(state, m)]
            return [s, c, gr.update(value=share.prior_switch(flow, prior), interactive=flow), *labels,
                    *reconstruct_tab.example_visibility(state, m)]  # fmt: skip

        # one model load at a time: the "model-load" pool. On a fresh page it follows the link's settings rather than
        # running beside them: with two queued events at load, the server could close the page's event stream after the
        # first one's result just as the second was accepted, and Gradio's page (6.31) never reopened it: the second's
        # outputs stayed pending for good (seen once in CI; reproduced with delayed messages)
        model_outputs = [info, card_md, use_flow, *dirs, *rec_examples]
        on_model_inputs = [model, link_prior]
        map_follows(model.change(on_model, on_model_inputs, model_outputs, concurrency_limit=None,
                                 api_visibility="private"))  # fmt: skip
        loaded.then(on_model, on_model_inputs, model_outputs, concurrency_limit=None, api_visibility="private")
        # another model's results are cleared (their sounds and figures came from the model that was chosen before),
        # and so are those of requests still running on it when they finish (vaedemo.demo.chosen)
        results = rec_out + sample_out + interp_out

        def on_another_model(request: gr.Request, m):
            state.chosen.choose(request, m)
            return [*reconstruct_tab.cleared(), *sample_cleared, *interp_cleared]

        model.change(on_another_model, model, results, api_visibility="private", queue=False)
    guard_inputs(demo)
    demo.vaedemo_state = state  # for launch(): the limits and the temporary files
    return demo


def check_listen_address(host: str, port: int) -> None:
    """One sentence, before the models load, where the server could not listen: Gradio's own message for a host that
    is not this machine's, or a port in use, is "Cannot find empty port in range", after a traceback."""
    if not 1 <= port <= 65535:
        raise VaedemoError(f"--port must be from 1 to 65535, got {port}.")
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise VaedemoError(f"--host {host} is not an address or a name of this machine (0.0.0.0 serves on all of its "
                           "addresses, 127.0.0.1 on itself only).") from None  # fmt: skip
    errors = [_bind_error(*a[:3], a[4]) for a in addresses]  # any will do: localhost may be ::1 first, IPv6 off
    if all(errors):
        e = next((e for e in errors if e.errno == errno.EADDRINUSE), errors[0])
        if e.errno == errno.EADDRINUSE:
            raise VaedemoError(f"port {port} is in use on {host}; stop what serves there or pass another --port.")
        raise VaedemoError(f"cannot serve on {host}:{port} ({e.strerror}); --host must be an address of this machine "
                           "(0.0.0.0 serves on all of them).")  # fmt: skip


def _bind_error(family, kind, proto, address) -> OSError | None:
    """What binding a socket to ``address`` raises (None: it can), as the server will bind it."""
    try:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: a closed one's port is free
            s.bind(address)
    except OSError as e:
        return e
    return None


def launch(demo: gr.Blocks, max_file_size: str = "50mb", queue_size: int = MAX_WAITING, concurrency: int = 2,
           allowed: list[Path] = (), per_client: int = PER_CLIENT, max_temp_mb: float = MAX_TEMP_MB,
           auth: list[tuple[str, str]] | None = None, **kwargs):  # fmt: skip
    """Launch with the demo's theme, CSS and limits: ``concurrency`` requests compute at a time, each client
    (IP address) may have ``per_client`` running or waiting, ``queue_size`` wait in all; uploads up to
    ``max_file_size``; temporary files up to ``max_temp_mb`` (see files.TempFiles); ``auth``: (user, password) pairs
    that may log in (None: no login)."""
    state: DemoState = demo.vaedemo_state
    state.gate.configure(concurrency, per_client, queue_size)
    state.files.max_bytes = int(max_temp_mb * MB)
    state.files.start()
    served(demo)
    quiet_unknown_sessions()
    # Gradio's queue only passes compute events on (they have no Gradio concurrency limit, and wait in the gate): its
    # workers outnumber what the gate may hold, and its queue is roomy, so that the gate decides who waits.
    demo.queue(default_concurrency_limit=concurrency, max_size=4 * max(queue_size, 16))
    served_live = browser_live.served_folders() if state.browser_live else []
    paths = [str(p.resolve()) for p in (EXAMPLES, *served_live, *allowed)]
    bodies = Middleware(RequestBodies, files=state.files, max_file_size=file_size_bytes(max_file_size))
    return demo.launch(theme=THEME, css=CSS, js=PAGE_JS, max_file_size=max_file_size, allowed_paths=paths,
                       app_kwargs={"middleware": [bodies]},
                       ssr_mode=False, footer_links=["api", "settings"], max_threads=state.gate.capacity + 16,
                       auth=auth or None, auth_message=AUTH_MESSAGE if auth else None, **kwargs)  # fmt: skip


def create(checkpoints: list[str] = (), data: list[str] = (), max_seconds: float = 30.0, device: str = "cpu",
           checkpoint_dir: Path = ROOT / "checkpoints", browser_live: bool = True) -> gr.Blocks:  # fmt: skip
    """Discover and load the default model, then build the page (raises VaedemoError with one sentence);
    ``browser_live``: the Live tab may send a causal model to the visitor's browser."""
    specs, default = discover(checkpoint_dir, list(checkpoints))
    models = Models(specs, default, device=device)
    models.get(default)
    folders = {"examples": EXAMPLES} if EXAMPLES.is_dir() else {}
    folders.update({Path(d).resolve().name: Path(d).resolve() for d in data})
    return build_demo(DemoState(models, max_seconds, folders, browser_live))
