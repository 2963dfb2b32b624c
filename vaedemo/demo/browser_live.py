"""The Live tab's "in this browser" mode: a causal model's stream run by the visitor's own browser, microphone to
headphones in about a tenth of a second instead of the seconds of the streamed player.

The server's part is small. The model's stream is exported once to ONNX with its states explicit
(:func:`vaedemo.onnx_export.export_onnx` with ``streaming``, the stream's graphs alone), kept on disk under a hash
of the bundle's content (:func:`cache_root`), and served as files next to onnxruntime-web
(:mod:`vaedemo.demo.browser_runtime`). The browser does the rest (:data:`JS`, part of the page's script): an
AudioWorklet cuts the microphone into hops and plays what comes back (resampling both ways where the sound card
runs at another rate than the model: :mod:`vaedemo.demo.resample_js`); the page runs each hop through the two graphs
with onnxruntime-web (WebAssembly, one thread), carrying their states from hop to hop; sliders set the gains into and
out of the model and bend the latents between the graphs. No audio reaches the server. What a listener hears lags the
microphone by one hop collected, the compute, the hops buffered before playing (capped: a stall skips audio rather
than adding a delay that stays), the model's own delay, and the sound card's input and output latency; the page
shows each as it plays.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
import threading
from pathlib import Path

import gradio as gr

import vaedemo.demo.live_view as live_view
import vaedemo.demo.resample_js as resample_js
from vaedemo.errors import VaedemoError
from vaedemo.hub import WEIGHTS

from .common import UI, user_errors
from .state import DemoState

PREBUFFER_HOPS = 2  # hops the browser holds before it plays: one would underrun whenever a hop's compute is late
MAX_QUEUED_HOPS = PREBUFFER_HOPS + 2  # computed hops waiting to play; older ones are dropped (a stall adds no lasting delay)
MAX_PENDING_HOPS = 3  # microphone hops waiting for the compute; older ones are dropped (a slow browser skips, not lags)
KEPT_ON_SERVER = ("This server keeps its models on the server (--no-browser-live); Record and the file play through "
                  "it instead.")  # fmt: skip
NO_RUNTIME = ("Playing in this browser needs onnxruntime-web, which set-up installs: run bash scripts/setup.sh, or "
              "python -m vaedemo.demo.browser_runtime.")  # fmt: skip
INTRO = ("**Live in this browser**: the causal model runs in your browser (onnxruntime-web), about 0.1 s from "
         "microphone to ears, no audio sent to the server. Use headphones.")  # fmt: skip

# (the runtime's module and binary must be served with their types: a module script of another type is refused)
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


def cache_root() -> Path:
    """Where exported streams are kept between runs of the app: ``$VAEDEMO_CACHE/browser``, else
    ``$XDG_CACHE_HOME/vaedemo/browser``, else ``~/.cache/vaedemo/browser``."""
    base = os.environ.get("VAEDEMO_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vaedemo"
    return Path(base) / "browser"


def served_folders() -> list[Path]:
    """The folders whose files the page fetches (the app's allowed paths)."""
    from .browser_runtime import VENDOR  # (see runtime_files)

    return [VENDOR, cache_root()]


def runtime_files() -> dict[str, Path] | None:
    """onnxruntime-web's files, where set-up fetched them. (browser_runtime is imported here, not with this module:
    `python -m vaedemo.demo.browser_runtime`, set-up's fetch, imports this package first, and runpy warns of
    "unpredictable behaviour" when the module it runs was already imported.)"""
    from .browser_runtime import installed

    return installed()


STREAM_EXPORT = 1  # raised when the exported stream's files change: an earlier cache is then exported again
CONTENT = ("config.json", WEIGHTS)  # the files of a bundle that its stream is made from
KEPT_EXPORTS = 8  # exported streams kept (7.5 MB each for drums_causal); beyond them, the least recently used go
IN_USE_SECONDS = 3600  # an export used (or a temporary folder written) within the hour stays: a page may be loading it
RETRY_FAILED_SECONDS = 600  # a failed export is not tried again before this (a full disk may have been freed since)


def bundle_digest(folder: Path) -> str:
    """A bundle's content (its config and weights) and the exporter's version, as a short hash: a changed bundle, or
    a new exporter, is exported again."""
    import torch

    h = hashlib.sha256(f"{STREAM_EXPORT} torch {torch.__version__}".encode())
    for name in CONTENT:
        h.update((folder / name).read_bytes())
    return h.hexdigest()[:16]


def tidy(root: Path, now: float | None = None) -> list[Path]:
    """Bound the cache: of the exported streams (folders with a model.json) the :data:`KEPT_EXPORTS` most recently
    used stay, and so does any used within :data:`IN_USE_SECONDS`; a temporary folder that old (an export killed
    part-way) goes too. Returns what was removed."""
    import shutil
    import time

    from vaedemo.onnx_export import INFO

    now = time.time() if now is None else now
    used = {}  # folder -> its last use; read once (another server sharing the cache may remove one meanwhile)
    for p in root.iterdir() if root.is_dir() else []:
        with contextlib.suppress(OSError):
            if p.is_dir() and (p.name.startswith(".") or (p / INFO).is_file()):
                used[p] = p.stat().st_mtime
    exports = sorted((p for p in used if not p.name.startswith(".")), key=used.get, reverse=True)
    aside = [p for p in used if p.name.startswith(".")]  # (written_aside's: ".DIGEST-XXXX")
    gone = [p for p in exports[KEPT_EXPORTS:] + aside if now - used[p] > IN_USE_SECONDS]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def _file_state(path: Path) -> tuple:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


class BrowserStreams:
    """The exported streams, one folder per bundle content, each exported once. ``export_lock`` is held for an
    export (the page's request takes it before its compute slot, so that a second click waits outside the pool); a
    failed export is remembered, so a click does not pay for it again."""

    def __init__(self, root: Path | None = None):
        self.root = root
        self.export_lock = threading.Lock()
        self._digests: dict[tuple, str] = {}  # (path, size, mtime of each file) -> digest: a click hashes nothing
        self._failed: dict[str, tuple[str, float]] = {}  # digest -> (the export's sentence, when it failed)

    def _digest(self, bundle_folder: Path) -> str:
        key = tuple(_file_state(bundle_folder / name) for name in CONTENT)
        if key not in self._digests:
            self._digests[key] = bundle_digest(bundle_folder)
        return self._digests[key]

    def folder(self, bundle_folder: Path) -> Path:
        """The bundle's exported stream (exported now if it is not yet; call with ``export_lock`` held). Its use is
        noted (the folder's time), so that :func:`tidy` keeps what pages are playing."""
        import time

        from vaedemo.onnx_export import INFO, export_onnx

        out = (self.root or cache_root()) / self._digest(bundle_folder)
        sentence, when = self._failed.get(out.name, (None, 0.0))
        if sentence is not None and time.monotonic() - when < RETRY_FAILED_SECONDS:
            raise VaedemoError(sentence)
        if (out / INFO).is_file():
            with contextlib.suppress(OSError):  # (a cache this server may read but not write: kept as it is)
                os.utime(out)
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            export_onnx(bundle_folder, out, streaming=True, offline=False)
        except VaedemoError as e:
            self._failed[out.name] = (str(e), time.monotonic())
            raise
        self._failed.pop(out.name, None)
        with contextlib.suppress(OSError):  # (a cache that cannot be tidied fails no export that worked)
            tidy(out.parent)
        return out

    def info(self, engine, label: str) -> dict:
        """What the page's script needs to play ``engine``'s stream: the graphs', the runtime's and model.json's."""
        runtime = runtime_files()
        if runtime is None:
            raise VaedemoError(NO_RUNTIME)
        if not engine.bundle.config.causal:
            raise VaedemoError(f"{label} reads ahead (it is not causal); playing in this browser needs a causal model "
                               "such as drums_causal.")  # fmt: skip
        from vaedemo.onnx_export import INFO

        out = self.folder(Path(engine.bundle.path))
        model = json.loads((out / INFO).read_text())
        url = lambda p: f"gradio_api/file={p.resolve()}"
        return {"label": label, "model": model, "prebuffer": PREBUFFER_HOPS, "max_queued": MAX_QUEUED_HOPS,
                "max_pending": MAX_PENDING_HOPS,
                "encode": url(out / model["stream"]["encode"]["file"]),
                "decode": url(out / model["stream"]["decode"]["file"]),
                "runtime": {role: url(path) for role, path in runtime.items()}}  # fmt: skip


def stream_info(state: DemoState, streams: BrowserStreams, label: str) -> str:
    """The page's script's instructions for playing ``label`` (JSON), where this server sends models to browsers."""
    if not state.browser_live:
        raise VaedemoError(KEPT_ON_SERVER)
    if not isinstance(label, str) or not label:  # (the picker's label; None would mean the page's default model)
        raise VaedemoError("choose a streaming model first.")
    return json.dumps(streams.info(state.models.get(label), label))


def status_box() -> gr.HTML:
    """The mode's status line, which its script writes as it plays (made unrendered: the tab places it)."""
    return gr.HTML("<div id='browser-live-status'>In this browser: stopped.</div>", elem_id="browser-live-box", render=False)


def build(state: DemoState, live_model: gr.Dropdown) -> None:
    """The mode's part of the Live tab (under the microphone and the file): its buttons and the wiring; it plays the
    tab's streaming model."""
    streams = BrowserStreams()
    gr.Markdown(INTRO)
    with gr.Row():
        start = gr.Button("Play live in this browser", variant="secondary", scale=3, elem_id="browser-live-start")
        stop = gr.Button("Stop", scale=1, min_width=80, elem_id="browser-live-stop")
    live_view.box().render()
    info = gr.Textbox(visible=False, elem_id="browser-live-info")

    @user_errors
    def info_of(label):
        return stream_info(state, streams, label)

    def prepare(request: gr.Request, label):  # waits for another click's export outside the compute pool
        with state.gate(request, "compute", first=streams.export_lock):
            return info_of(label)

    # the click first arms the page's audio (an AudioContext started inside the click: browsers let sound start only
    # from a user's gesture), then the server prepares the files, then the page starts
    prepared = start.click(prepare, live_model, info, js="(m) => { window.vaedemoBrowserLive.arm(); return m; }", **UI)
    prepared.success(None, info, None, js="(i) => { window.vaedemoBrowserLive.start(i); }", api_visibility="private")
    prepared.failure(None, None, None, js="() => { window.vaedemoBrowserLive.stop(); }",  # (the toast says why)
                     api_visibility="private")  # fmt: skip
    stop.click(None, None, None, js="() => { window.vaedemoBrowserLive.stop(); }", api_visibility="private")
    # another model chosen while one plays: the new one plays (it had waited for the next Start, unheard)
    live_model.change(None, None, None, js="() => { window.vaedemoBrowserLive.restartIfPlaying(); }",
                      api_visibility="private")  # fmt: skip


# The page's script (a function run once when the page loads). live.arm() opens the AudioContext inside the click;
# live.start(info) loads the runtime and the graphs, asks for the microphone and plays; live.stop() ends it;
# live.process(info, samples) runs samples through a fresh stream without a microphone (the browser tests' check that
# the page computes what the model does).
JS = r"""
() => {
  // controls, read at every hop: the microphone's gain into the model (dB; the model's sound depends on its input's
  // level), the latents bent between encoder and decoder (scale toward the prior's centre, Gaussian noise in the
  // prior's standard deviations), the output's gain (dB)
  const NEUTRAL = {input: 0, scale: 1, noise: 0, output: 0};
  const live = window.vaedemoBrowserLive = {state: 'stopped', stats: null, controls: {...NEUTRAL}};
  __RESAMPLER__
  live.Resampler = VaedemoResampler;  // (the worklet's own, for the tests to check)
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  const show = (text) => { const el = document.querySelector('#browser-live-status'); if (el) el.textContent = text; };
  // the worklet: the microphone cut into hops at the model's rate, posted to the page; the page's hops queued and
  // played. Where the context runs at another rate than the model (Firefox runs it at the sound card's), it resamples
  // both ways; the hops and the figures it posts stay in the model's samples.
  const WORKLET = `
    __RESAMPLER__
    class VaedemoHops extends AudioWorkletProcessor {
      constructor(options) {
        super();
        const o = options.processorOptions;
        this.hop = o.hop; this.prebuffer = o.prebuffer; this.maxQueued = o.maxQueued;
        this.toModel = new VaedemoResampler(sampleRate, o.modelRate);
        this.toDevice = new VaedemoResampler(o.modelRate, sampleRate);
        this.modelPerDevice = o.modelRate / sampleRate;
        this.collected = new Float32Array(this.hop); this.filled = 0;
        this.queue = []; this.playing = null; this.at = 0; this.primed = false;
        this.underruns = 0; this.discarded = 0; this.calls = 0;
        this.port.onmessage = (e) => {
          this.queue.push(this.toDevice.push(e.data));
          while (this.queue.length > this.maxQueued) { this.queue.shift(); this.discarded++; }  // a burst after a stall
        };
      }
      process(inputs, outputs) {
        const heard = inputs[0] && inputs[0][0], x = heard && this.toModel.push(heard);
        if (x) {
          for (let i = 0; i < x.length;) {
            const n = Math.min(x.length - i, this.hop - this.filled);
            this.collected.set(x.subarray(i, i + n), this.filled);
            this.filled += n; i += n;
            if (this.filled === this.hop) { this.port.postMessage(this.collected.slice()); this.filled = 0; }
          }
        }
        const out = outputs[0];
        if (!this.primed && this.queue.length >= this.prebuffer) this.primed = true;
        for (let j = 0; j < out[0].length; j++) {
          let v = 0;
          if (this.primed) {
            if (!this.playing || this.at >= this.playing.length) { this.playing = this.queue.shift() || null; this.at = 0; }
            if (this.playing) v = this.playing[this.at++];
            else { this.primed = false; this.underruns++; }
          }
          for (const channel of out) channel[j] = v;
        }
        if (++this.calls % 32 === 0) {  // (about 10 times a second) what is buffered, for the page's latency figure
          const left = this.playing ? this.playing.length - this.at : 0;
          const queued = this.queue.reduce((sum, q) => sum + q.length, left) * this.modelPerDevice;
          this.port.postMessage({queued, underruns: this.underruns, discarded: this.discarded});
        }
        return true;
      }
    }
    registerProcessor('vaedemo-hops', VaedemoHops);`;

  const absolute = (url) => new URL(url, window.location.href).href;  // (a module import takes no relative name)
  const loadRuntime = (info) => new Promise((resolve, reject) => {
    if (window.ort) return resolve(window.ort);
    const s = document.createElement('script');
    s.src = absolute(info.runtime.js);
    s.onload = () => resolve(window.ort);
    s.onerror = () => reject(new Error('onnxruntime-web could not be loaded from the server'));
    document.head.appendChild(s);
  });

  async function sessions(info) {
    const ort = await loadRuntime(info);
    ort.env.wasm.numThreads = 1;  // threads need a cross-origin-isolated page, which this one is not
    ort.env.wasm.wasmPaths = {mjs: absolute(info.runtime.mjs), wasm: absolute(info.runtime.wasm)};
    const options = {executionProviders: ['wasm']};
    const [encode, decode] = await Promise.all([ort.InferenceSession.create(absolute(info.encode), options),
                                                ort.InferenceSession.create(absolute(info.decode), options)]);
    return {ort, encode, decode};
  }

  // one stream: a function from a hop of mono samples to a hop of mono output, its states carried between calls,
  // the gains and the latents set by `controls` (read at each call); `see` (if given) is shown each hop: the samples
  // heard, the latents decoded (after the sliders) and the samples to be played
  function stream(info, s, controls, see) {
    const m = info.model, channels = m.channels, hop = m.hop;
    const zeros = (shapes) => shapes.map((shape) =>
      new s.ort.Tensor('float32', new Float32Array(shape.reduce((a, b) => a * b, 1)), shape));
    let encoderStates = zeros(m.stream.encode.states), decoderStates = zeros(m.stream.decode.states);
    // one graph's call: its input and states in, its output and next states out
    const run = async (session, given, x, states) => {
      const feeds = {[given]: x};
      states.forEach((v, i) => { feeds['state_' + i] = v; });
      const r = await session.run(feeds);
      return [r, states.map((_, i) => r['next_state_' + i])];
    };
    return async (x) => {
      const audio = new Float32Array(channels * hop), into = Math.pow(10, controls.input / 20);
      for (let c = 0; c < channels; c++) for (let t = 0; t < hop; t++) audio[c * hop + t] = into * x[t];  // every channel
      let e, d;
      [e, encoderStates] = await run(s.encode, 'audio', new s.ort.Tensor('float32', audio, [1, channels, hop]),
                                     encoderStates);
      let z = e.latents;
      if (controls.scale !== 1 || controls.noise > 0) {
        const bent = Float32Array.from(z.data, (v) => controls.scale * v + controls.noise * gaussian());
        z = new s.ort.Tensor('float32', bent, z.dims);
      }
      [d, decoderStates] = await run(s.decode, 'latents', z, decoderStates);
      const y = d.audio.data, out = Math.pow(10, controls.output / 20) / channels;
      const mono = new Float32Array(hop);  // a stereo model's two channels mixed for the listener
      for (let c = 0; c < channels; c++) for (let t = 0; t < hop; t++) mono[t] += out * y[c * hop + t];
      // (the view's failure never stops the sound)
      if (see) try { see(x, z.data, z.dims[2], mono); } catch (err) { console.warn('vaedemo view:', err); }
      return mono;
    };
  }

  live.process = async (infoJson, samples, controls) => {
    const info = typeof infoJson === 'string' ? JSON.parse(infoJson) : infoJson;
    const step = stream(info, await sessions(info), {...NEUTRAL, ...controls}), hop = info.model.hop;
    const out = [];
    for (let p = 0; p + hop <= samples.length; p += hop) out.push(...await step(Float32Array.from(samples.slice(p, p + hop))));
    return out;
  };

  live.arm = () => {
    live.stop();
    live.state = 'starting';
    live.generation = (live.generation || 0) + 1;  // a later click's start supersedes this one's
    show('Preparing the model for this browser (the first time takes a while)...');
    live.context = new AudioContext({latencyHint: 'interactive'});  // (its rate is set again once the model is known)
    live.context.resume();
  };

  live.restartIfPlaying = () => {  // (the page has had the user's click on Start: its audio may start again)
    if (live.state === 'playing') document.getElementById('browser-live-start')?.click();
  };

  // the context the sound runs in, at `rate` where the browser resamples the microphone to it (Chromium, Safari);
  // where it refuses a microphone at another rate than the context's (Firefox), at the sound card's own rate, the
  // worklet resampling. Returns the microphone's node in it.
  const openContext = async (rate) => {
    if (live.context) live.context.close();
    live.context = null;  // (a constructor that throws leaves none to close twice)
    live.context = new AudioContext({sampleRate: rate, latencyHint: 'interactive'});
    await live.context.resume();
    try {
      return live.context.createMediaStreamSource(live.microphone);
    } catch (err) {
      if (!err || err.name !== 'NotSupportedError') throw err;
      live.context.close();
      live.context = null;
      live.context = new AudioContext({latencyHint: 'interactive'});
      await live.context.resume();
      return live.context.createMediaStreamSource(live.microphone);
    }
  };

  live.stop = () => {
    live.state = 'stopped';
    if (window.vaedemoLiveView) window.vaedemoLiveView.detach();
    if (live.timer) clearInterval(live.timer);
    if (live.microphone) live.microphone.getTracks().forEach((t) => t.stop());
    if (live.context) live.context.close();
    live.timer = live.microphone = live.context = live.node = null;
    show('In this browser: stopped.');
  };

  live.start = async (infoJson) => {
    live.lastInfo = infoJson;
    const generation = live.generation, current = () => live.state === 'starting' && live.generation === generation;
    if (!current()) return;  // stopped, or started again, meanwhile
    const info = JSON.parse(infoJson), m = info.model, rate = m.sample_rate, hop = m.hop;
    try {
      const s = await sessions(info);
      const view = window.vaedemoLiveView;
      const step = stream(info, s, live.controls, view && view.hop);
      if (!current()) return;
      const microphone = await navigator.mediaDevices.getUserMedia(
        {audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1}});
      if (!current()) { microphone.getTracks().forEach((t) => t.stop()); return; }
      live.microphone = microphone;
      const source = await openContext(rate);
      const url = URL.createObjectURL(new Blob([WORKLET], {type: 'text/javascript'}));
      await live.context.audioWorklet.addModule(url);
      if (!current()) return;
      const node = new AudioWorkletNode(live.context, 'vaedemo-hops', {numberOfInputs: 1, numberOfOutputs: 1,
        outputChannelCount: [2], processorOptions: {hop, modelRate: rate, prebuffer: info.prebuffer,
                                                    maxQueued: info.max_queued}});
      live.node = node;  // (the worklet: what it plays can be listened to)
      source.connect(node);
      node.connect(live.context.destination);
      if (view) view.attach(info);
      const stats = live.stats = {hops: 0, dropped: 0, underruns: 0, discarded: 0, queued: 0, computeMs: []};
      // the microphone's hops wait here, one computed at a time (the states run in order); beyond max_pending the
      // oldest are dropped, so a stall or a browser slower than real time skips audio instead of lagging for good
      const backlog = [];
      let computing = false;
      const pump = async () => {
        computing = true;
        try {
          while (backlog.length && live.state === 'playing') {
            const t0 = performance.now(), y = await step(backlog.shift());
            stats.computeMs.push(performance.now() - t0);
            if (stats.computeMs.length > 200) stats.computeMs.shift();
            stats.hops++;
            node.port.postMessage(y, [y.buffer]);
          }
        } finally { computing = false; }
      };
      node.port.onmessage = (e) => {
        if (!(e.data instanceof Float32Array)) { Object.assign(stats, e.data); return; }
        backlog.push(e.data);
        while (backlog.length > info.max_pending) { backlog.shift(); stats.dropped++; }
        if (!computing) pump();
      };
      live.state = 'playing';
      const hopMs = 1000 * hop / rate, cardRate = live.context.sampleRate;
      // where the worklet resamples, its filters' look-ahead, the way in and the way out
      const resampling = cardRate === rate ? 0 : 1000 * (VaedemoResampler.halfWidthOf(cardRate, rate) / cardRate +
                                                         VaedemoResampler.halfWidthOf(rate, cardRate) / rate);
      const card = resampling ? ` (the sound card at ${cardRate} Hz, resampled in the page)` : '';
      live.timer = setInterval(() => {
        const sorted = [...stats.computeMs].sort((a, b) => a - b), ms = sorted[sorted.length >> 1] || 0;
        const device = 1000 * ((live.context.baseLatency || 0) + (live.context.outputLatency || 0));
        const model = 1000 * m.stream.latency / rate, buffered = 1000 * stats.queued / rate;
        const total = hopMs + ms + buffered + model + resampling + device;
        show(`Live in this browser: ${info.label} at ${rate} Hz${card}. ` +
             `Compute ${ms.toFixed(1)} ms per ${hopMs.toFixed(1)} ms hop ` +
             `(${(hopMs / Math.max(ms, 1e-3)).toFixed(1)}x real time). Latency about ${total.toFixed(0)} ms: ` +
             `the hop ${hopMs.toFixed(0)}, compute ${ms.toFixed(0)}, buffered now ${buffered.toFixed(0)}, model ` +
             `${model.toFixed(0)}, ${resampling ? `resampling ${resampling.toFixed(1)}, ` : ''}` +
             `sound card output ${device.toFixed(0)} (its input adds its own). ` +
             `${stats.hops} hops, ${stats.underruns} gaps, ${stats.dropped + stats.discarded} skipped.`);
      }, 500);
    } catch (err) {
      if (live.generation !== generation || live.state === 'stopped') return;  // (stopped or superseded meanwhile)
      live.stop();
      show('Could not play in this browser: ' + (err && err.message ? err.message : err) + '.');
    }
  };
}
""".replace("__RESAMPLER__", resample_js.JS.strip())
