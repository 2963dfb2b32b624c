"""The Live tab: a microphone (or a file) through a streaming model, chunk by chunk, with the latency it costs.

The browser sends the microphone in chunks of ``CHUNK_SECONDS``, each a small file that the server decodes as it
does any upload (libsndfile or the sandboxed ffmpeg, within the decode budget; a chunk longer than
``MAX_CHUNK_SECONDS`` is refused: Gradio's own numpy decoding of a streamed chunk would run an unsandboxed ffmpeg on
whatever a raw request sends, with no bound on its length). Each chunk is resampled to the model's rate (one
resampler per session, so that chunk edges leave no seams), cut into whole hops (the rest waits for the next chunk),
run through the model's :class:`~vaedemo.inference.Stream` and sent back as a streamed audio output, which Gradio
encodes to AAC segments that the browser plays as they arrive. What a listener hears lags the microphone by the
chunk the browser collects, the resampler, the model's delay (``Stream.latency``: a causal model's filters and one
latent frame; a centred model also waits for the samples it reads ahead), up to one hop waiting for a whole hop,
the compute, the network, and the browser's audio buffering. The tab states the parts the server
knows; the README gives what was measured end to end in a browser.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import soundfile as sf
import soxr

import vaedemo.demo.browser_live as browser_live  # (as page.py imports the tabs)
import vaedemo.demo.live_controls as live_controls
from vaedemo.audio import decode, resample, to_channels
from vaedemo.decoders import soundfile_header
from vaedemo.errors import VaedemoError
from vaedemo.inference import Engine, Stream

from .common import UI, Audio, intro, log, user_errors
from .guard import LIVE_STREAMS, Gate, client_key, gated
from .live_controls import Controls
from .state import DemoState

CHUNK_SECONDS = 0.25  # how much microphone audio the browser collects before it sends a chunk
MAX_CHUNK_SECONDS = 2.0  # a longer chunk is refused (a browser sends CHUNK_SECONDS; a stalled one somewhat more)
LIVE_SECONDS = 120  # one microphone stream's time limit: a stream holds one of the server's workers meanwhile
IDLE_SECONDS = 15  # a listener whose microphone has sent nothing for this long ends, freeing its place
LIVE_PER_CLIENT = 2  # listeners one client (IP address) may hold of the server's LIVE_STREAMS
FILE_CHUNK_SECONDS = 0.5  # "play a file through the stream" feeds the stream in pieces of this length
NO_MODEL = ("No model here can stream: streaming needs a model with a latent time series (latent_mode temporal); "
            "one latent vector per clip needs the whole clip before it can encode anything.")  # fmt: skip
READY = "Press record (or play a file through the stream): the figures of the stream appear here."


def live_models(state: DemoState) -> list[str]:
    """The labels of the models that stream (a latent time series), causal ones first: they have no look-ahead."""
    specs = state.models.specs  # discover() read each bundle's config once (hf:// ids: known after loading)
    labels = [label for label, spec in specs.items() if spec.single is False]
    return sorted(labels, key=lambda label: not specs[label].causal)


def at_most_stereo(audio: np.ndarray) -> np.ndarray:
    """(samples, channels) downmixed to two channels where it has more: a wide input would cost the shared live pool
    what several stereo streams do."""
    return to_channels(audio, min(2, audio.shape[1]))


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """A chunk of audio as a 16-bit wav file in memory (what a streamed gr.Audio output takes)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _resampler(rate: int, model_rate: int, channels: int) -> soxr.ResampleStream:
    # soxr's low quality (passband to ~80 % of Nyquist, 16-bit clean) holds back ~4 ms where HQ holds ~14 ms
    return soxr.ResampleStream(rate, model_rate, channels, "float32", quality="LQ")


def _held_back(rate: int, model_rate: int) -> int:
    """How many output samples a fresh resampler holds back (its delay), measured on a chunk of silence."""
    n = int(CHUNK_SECONDS * rate)
    return round(n * model_rate / rate) - len(_resampler(rate, model_rate, 1).resample_chunk(np.zeros(n, np.float32)))


class LiveSession:
    """One listener's stream: the model's Stream, a resampler from the input's rate, the samples waiting for a whole
    hop, and what the stream has cost so far."""

    def __init__(self, engine: Engine, label: str, rate: int, channels: int, stream: Stream | None = None):
        # a new stream costs ~0.25 s (it is scripted): a listener hands over the one it checked the model with
        self.stream = stream or engine.stream()  # one sentence (VaedemoError) when the model cannot stream
        self.label, self.rate, self.channels = label, int(rate), int(channels)
        self.causal = bool(engine.config.causal)
        self.model_rate, self.hop = engine.sample_rate, self.stream.hop
        self._to_model = None if self.rate == self.model_rate else _resampler(self.rate, self.model_rate, self.channels)
        self.resampler_delay = _held_back(self.rate, self.model_rate) if self._to_model else 0  # model-rate samples
        self._pending = np.zeros((0, self.channels), np.float32)
        self.compute_seconds, self.hops = 0.0, 0
        self.controls = Controls()  # the sliders' (live_controls), set by whoever feeds it, before each piece

    def fits(self, label: str, rate: int, channels: int) -> bool:
        return (label, int(rate), int(channels)) == (self.label, self.rate, self.channels)

    def feed(self, x: np.ndarray) -> np.ndarray:
        """Input audio (n, channels) at the input's rate -> the stream's output (m, channels) at the model's rate."""
        if self._to_model is not None:
            x = self._to_model.resample_chunk(np.ascontiguousarray(x, np.float32))
        x = np.concatenate([self._pending, x.reshape(-1, self.channels)])
        whole = len(x) // self.hop * self.hop
        self._pending = x[whole:]
        return self._process(x[:whole])

    def flush(self) -> np.ndarray:
        """The rest of what was fed: the resampler's held samples, the partial hop waiting and the model's delay,
        pushed out with silence (the end of a file played through the stream, whose last ~0.1 s never came out)."""
        held = np.zeros((0, self.channels), np.float32)
        if self._to_model is not None:
            held = self._to_model.resample_chunk(held, last=True).reshape(-1, self.channels)
        x = np.concatenate([self._pending, held])
        self._pending = x[:0]
        total = -(-(len(x) + self.stream.latency) // self.hop) * self.hop  # all of it out, in whole hops
        return self._process(np.concatenate([x, np.zeros((total - len(x), self.channels), np.float32)]))

    def _process(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros((0, self.channels), np.float32)
        c = self.controls
        start = time.perf_counter()
        y = self.stream.process(x * _gain(c.input_db) if c.input_db else x, c.scale, c.noise)
        self.compute_seconds += time.perf_counter() - start
        self.hops += len(x) // self.hop
        return y * _gain(c.output_db) if c.output_db else y

    @property
    def seconds_in(self) -> float:
        """Seconds of audio streamed so far (whole hops at the model's rate)."""
        return self.hops * self.hop / self.model_rate

    def report(self, chunk_seconds: float = CHUNK_SECONDS, pieces: str = "chunks from the browser") -> str:
        """What the stream's latency is made of, as far as the server knows it (Markdown); ``pieces``: what arrives
        ``chunk_seconds`` at a time."""
        ms = 1000.0 / self.model_rate
        kind = "causal: no look-ahead, only its filters' delay" if self.causal else "centred: it waits for the future it reads"
        lines = [
            f"**{self.label}** at {self.model_rate / 1000:g} kHz, hop {self.hop} samples ({self.hop * ms:.1f} ms)",
            f"- the model's delay: **{self.stream.latency * ms:.1f} ms** ({kind})",
            f"- {pieces}: {chunk_seconds * 1000:.0f} ms; waiting for a whole hop: up to {self.hop * ms:.1f} ms",
        ]
        if self._to_model is not None:
            rates = f"{self.rate / 1000:g} -> {self.model_rate / 1000:g} kHz"
            lines.append(f"- resampling {rates}: {self.resampler_delay * ms:.1f} ms")
        if self.hops:
            per_hop = 1000.0 * self.compute_seconds / self.hops
            lines.append(f"- compute: {per_hop:.2f} ms per hop, {self.seconds_in / self.compute_seconds:.0f}x real time "
                         f"({self.seconds_in:.1f} s streamed)")  # fmt: skip
        lines.append("- then the network and the browser's audio buffer (AAC segments): see the README's Live use.")
        return "\n".join(lines)


END = None  # what a relay posts to end a listener


@dataclass
class Listener:
    """One browser session's live stream: the outputs waiting to be sent, and the session once the first chunk came."""

    box: queue.Queue
    client: str = ""  # who opened it (guard.client_key): a client holds at most ``per_client`` listeners
    session: LiveSession | None = None
    stream: tuple[str, Stream] | None = None  # (model label, its stream) made when the recording starts
    last_chunk: float = 0.0  # time.monotonic() of the last chunk (or of the opening)
    opened: float = field(default_factory=time.monotonic)
    seconds_in: float = 0.0  # of microphone audio accepted: at most the time since the opening (and a chunk's slack)
    # one chunk at a time: two events of one session at once (a raw client, a recording restarted while a chunk
    # computes) would feed one resampler and one scripted stream from two threads, which corrupts the process's heap.
    # Re-entrant: a chunk's event takes it before its live slot (chunk_event), live_chunk again.
    lock: threading.RLock = field(default_factory=threading.RLock)


class Relay:
    """Microphone chunks arrive in one event and the streamed output leaves through another: Gradio streams an
    output only from a generator, and a microphone's stream event calls its handler once per chunk. So, per browser
    session, the chunk handler posts its output here and a listener (a generator started with the recording) yields
    it. At most ``max_listeners`` listen at once, at most ``per_client`` of them one client's (so that one client
    cannot take every place); a listener's backlog is bounded (a gone browser loses chunks, the server keeps its
    memory)."""

    def __init__(self, max_listeners: int = LIVE_STREAMS, backlog: int = 64, per_client: int = LIVE_PER_CLIENT):
        self.max_listeners, self.backlog, self.per_client = max_listeners, backlog, per_client
        self._listeners: dict[str, Listener] = {}
        self._lock = threading.Lock()

    def open(self, key: str, client: str = "") -> Listener:
        """A listener for the browser session ``key`` (ending the session's previous one), opened by ``client``."""
        with self._lock:
            old = self._listeners.get(key)
            others = [v for k, v in self._listeners.items() if k != key]
            if len(others) >= self.max_listeners:
                raise VaedemoError(f"{self.max_listeners} live streams are running already; please try again later.")
            if client and sum(v.client == client for v in others) >= self.per_client:
                raise VaedemoError(f"You already have {self.per_client} live streams running; stop one of them first.")
            listener = self._listeners[key] = Listener(queue.Queue(self.backlog), client, last_chunk=time.monotonic())
        if old is not None:
            _post(old.box, END)
        return listener

    def get(self, key: str) -> Listener | None:
        with self._lock:
            return self._listeners.get(key)

    def close(self, key: str, listener: Listener | None = None) -> None:
        """End the key's listener (only ``listener`` if given: a newer one for the same key stays)."""
        with self._lock:
            current = self._listeners.get(key)
            if current is None or (listener is not None and current is not listener):
                return
            del self._listeners[key]
        _post(current.box, END)


def _post(box: queue.Queue, item) -> None:
    with contextlib.suppress(queue.Full):  # nobody is listening any more
        box.put_nowait(item)


def listen(state: DemoState, relay: Relay, key: str, label: str, seconds: float = LIVE_SECONDS, client: str = "",
           idle: float = IDLE_SECONDS, request: gr.Request | None = None):  # fmt: skip
    """The streamed output of the key's microphone: yields (wav bytes, report) as chunks are processed, until the
    recording stops, ``seconds`` have passed or no chunk has come for ``idle`` seconds. The stream is made within
    the gate's per-client limit (``request``'s client): one session's recordings started forty at once replace each
    other's listener, and each made a stream before that."""
    with state.gate(request, "live"):  # (its listener opens first: the recording's first chunks find it while the
        listener = _open(state, relay, key, label, client)  # model loads, and stream once it has)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                item = listener.box.get(timeout=0.5)
            except queue.Empty:
                if time.monotonic() - listener.last_chunk > idle:
                    return
                continue
            if item is END:
                return
            yield item
    finally:
        relay.close(key, listener)


@user_errors
def _open(state: DemoState, relay: Relay, key: str, label: str, client: str = "") -> Listener:
    listener = relay.open(key, client)  # refused before the stream's cost (~0.25 s) when there is no place
    try:
        listener.stream = (label, state.models.get(label).stream())  # one sentence now if this model cannot stream
    except BaseException:
        relay.close(key, listener)
        raise
    return listener


def chunk_event(state: DemoState, relay: Relay, request: gr.Request, chunk: str | None, label: str) -> None:
    """A microphone chunk's event: through its session's listener (looked up once: none yet, or none any more, and
    the chunk is dropped), whose chunks wait for each other outside the live pool (the listener's lock before a
    slot: waiting chunks of one session held three of the four live slots, and a lock looked up twice, before and
    inside the slot, let two chunks each hold what the other waited for)."""
    key = _session(request)
    listener = relay.get(key)
    if listener is None:
        return
    with state.gate(request, "live", first=listener.lock):
        live_chunk(state, relay, key, chunk, label, listener)  # its listener sends the output and report


@user_errors
def live_chunk(state: DemoState, relay: Relay, key: str, chunk: str | None, label: str,
               listener: Listener | None = None) -> str | None:  # fmt: skip
    """One microphone chunk (the path of its file): through the key's stream (``listener``: the one the chunk came
    for), its output posted to the key's listener. Returns the stream's report (None when nobody listens, or a new
    recording has replaced the one the chunk came for)."""
    listener = listener or relay.get(key)
    if chunk is None or listener is None:
        return None
    if not isinstance(chunk, str):  # a raw request can send anything
        raise VaedemoError("the microphone chunk must be an uploaded file.")
    header = soundfile_header(Path(chunk))
    if _empty_file(chunk) or (header is not None and header.frames == 0):  # the recorder's last flush may hold a
        return None  # wav header alone
    d = decode(chunk, max_seconds=MAX_CHUNK_SECONDS)  # any rate, shape or channel count: one sentence if wrong
    listener.last_chunk = time.monotonic()  # (after the decode: a stream of garbage does not keep a listener)
    x, rate = at_most_stereo(d.audio), d.sample_rate  # as a file's stream
    with listener.lock:
        if relay.get(key) is not listener:  # replaced while the chunk waited: not the new recording's audio
            return None
        _in_real_time(listener, len(x) / rate)
        if listener.session is None or not listener.session.fits(label, rate, x.shape[1]):
            made, listener.stream = listener.stream, None  # fresh: nothing has gone through it yet
            stream = made[1] if made and made[0] == label else None  # (the picker may have changed since)
            engine, old = state.models.get(label), listener.session
            if stream is None and old is not None and old.label == label:  # another rate or channel count only:
                stream = old.stream  # the same model's stream afresh, not a new one to script (~0.25 s a chunk)
                stream.reset()
            listener.session = LiveSession(engine, label, rate, x.shape[1], stream)
        session = listener.session
        session.controls = state.live_controls.get(key)
        y = session.feed(x)
        report = session.report()
        if len(y):
            _post(listener.box, (wav_bytes(y, session.model_rate), report))
    return report


def _gain(db: float) -> np.float32:
    return np.float32(10 ** (db / 20))


def _empty_file(path: str) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False  # (decode says what is wrong with it)


def _in_real_time(listener: Listener, seconds: float) -> None:
    """Count a chunk of ``seconds`` against the listener's real time, or refuse it: a microphone sends its audio as it
    is recorded, and a client that sent faster (13 times real time, one core the whole time) took from everyone's
    share of the live pool what the limit of LIVE_STREAMS microphones for LIVE_SECONDS each meant to bound."""
    allowed = time.monotonic() - listener.opened + MAX_CHUNK_SECONDS  # (a chunk's worth of slack: network jitter)
    if listener.seconds_in + seconds > allowed:
        raise VaedemoError("This microphone sends audio faster than it can be recorded; the chunk was dropped.")
    listener.seconds_in += seconds


def check_playable(state: DemoState, path: str | None, label: str | None) -> None:
    """The first step of "play a file through the stream": a streaming model chosen and a file that decodes (kept
    decoded for the second step), or one sentence."""
    labels = live_models(state)
    if label not in labels:
        raise VaedemoError("choose a streaming model first." if labels else NO_MODEL)
    state.load(path, "a sound to stream")


@user_errors
def file_session(state: DemoState, path: str | None, label: str) -> tuple[LiveSession, np.ndarray]:
    """The session and the audio (at the model's rate, at most stereo) of "play a file through the stream"."""
    eng = state.models.get(label)
    d = state.load(path, "a sound to stream")
    x = at_most_stereo(d.audio)
    x = resample(x, d.sample_rate, eng.sample_rate)
    return LiveSession(eng, label, eng.sample_rate, x.shape[1]), x


def play_file(state: DemoState, gate: Gate, request: gr.Request, path: str | None, label: str):
    """Stream a file through the model in FILE_CHUNK_SECONDS pieces; yields (wav bytes, report). Its decoding waits
    in the gate as any request's does; then each piece waits on its own, so a long file never holds back the other
    tabs' requests."""
    with gate(request):
        session, x = file_session(state, path, label)
    step = int(FILE_CHUNK_SECONDS * session.model_rate)
    key = _session(request)
    for start in range(0, len(x) + step, step):  # and one piece more: the file's end, out of the stream
        session.controls = state.live_controls.get(key)  # (the sliders as they are now)
        with gate(request, "live"):
            y = session.feed(x[start : start + step]) if start < len(x) else session.flush()
        if len(y):
            yield wav_bytes(y, session.model_rate), session.report(FILE_CHUNK_SECONDS, "pieces of the file")


def build(state: DemoState) -> None:
    """The tab: its own picker of streaming models, the microphone and a file, the streamed output and its figures."""
    labels = live_models(state)
    with gr.Tab("Live", id="live"):
        intro("Your microphone through the model, live, chunk by chunk with cached convolutions.")
        # (made first, shown in the right column: the in-browser mode under the microphone plays it too)
        live_model = gr.Dropdown(labels, value=labels[0] if labels else None, label="Streaming model",
                                 interactive=bool(labels), elem_id="live-model", render=False)  # fmt: skip
        browser_status = browser_live.status_box()  # (its buttons on the left, its figures on the right)
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                # type "filepath": each chunk's file is decoded by live_chunk (bounded, sandboxed), not by Gradio
                mic = gr.Audio(sources=["microphone"], streaming=True, type="filepath", label="Microphone",
                               elem_id="live-mic")  # fmt: skip
                live_file = Audio(sources=["upload"], type="filepath", label="…or a file (no microphone in the room)",
                                  elem_id="live-file")  # fmt: skip
                play = gr.Button("Play the file through the stream", variant="primary", elem_id="live-play")
                browser_live.build(state, live_model)
            with gr.Column(scale=3):
                live_model.render()
                out = gr.Audio(streaming=True, autoplay=True, interactive=False, label="Through the model (live)",
                               elem_id="live-output")  # fmt: skip
                report = gr.Markdown(READY if labels else NO_MODEL, elem_id="live-report")
                browser_status.render()
                live_controls.build(state.live_controls, _session)  # for both streams

    relay = Relay()

    def on_record(request: gr.Request, label):
        yield from listen(state, relay, _session(request), label, client=client_key(request), request=request)

    def on_chunk(request: gr.Request, chunk, label):
        chunk_event(state, relay, request, chunk, label)

    def on_stop(request: gr.Request):
        relay.close(_session(request))

    @gated(state.gate)
    @user_errors
    def check_file(path, label):  # no file, one that is not audio, no model: one error, no output marked as failed
        check_playable(state, path, label)

    def on_file(request: gr.Request, path, label):
        yield from play_file(state, state.gate, request, path, label)

    mic.start_recording(on_record, live_model, [out, report], **UI)
    mic.stream(on_chunk, [mic, live_model], None, stream_every=CHUNK_SECONDS, time_limit=LIVE_SECONDS, **UI)
    mic.stop_recording(on_stop, None, None, queue=False, api_visibility="private")
    play.click(check_file, [live_file, live_model], None, **UI).success(on_file, [live_file, live_model], [out, report],
                                                                        **UI)
    log.debug("live tab: %d streaming models", len(labels))


def _session(request: gr.Request) -> str:
    """A browser tab's key: its Gradio session (a client may have several tabs, each with its own stream)."""
    return getattr(request, "session_hash", None) or client_key(request)

