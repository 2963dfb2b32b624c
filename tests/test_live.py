"""The Live tab's handlers: microphone chunks of any size and rate through a streaming model, and a file through the
stream, give what the model's own Stream gives; models that cannot stream say so in one sentence."""

from __future__ import annotations

import io
import threading
import time

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
from e2e.tiny import tiny_bundle

from vaedemo.demo import live
from vaedemo.demo.live_controls import Controls, ControlsStore
from vaedemo.demo.models import Models, discover
from vaedemo.demo.state import DemoState
from vaedemo.errors import VaedemoError
from vaedemo.inference import Engine


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    root = tmp_path_factory.mktemp("live_bundles")
    tiny_bundle(root, "a_single", "model.latent_mode=single", "model.posterior_flow_layers=2", "model.prior_flow_layers=2")
    tiny_bundle(root, "b_causal", "model.latent_mode=temporal", "model.causal=true")
    tiny_bundle(root, "c_centred", "model.latent_mode=temporal")
    specs, default = discover(root)
    return DemoState(Models(specs, default))


def _signal(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    x = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.05 * rng.standard_normal((n, channels))
    return x.astype(np.float32)


_chunks = iter(range(10**9))


def _chunk(tmp_path, rate: int, data: np.ndarray) -> str:
    """A microphone chunk as the page sends it: a 16-bit wav file."""
    path = tmp_path / f"chunk{next(_chunks)}.wav"
    sf.write(path, data, rate, subtype="PCM_16")
    return str(path)


def test_only_models_with_a_latent_time_series_are_offered(state):
    assert live.live_models(state) == ["b_causal", "c_centred"]  # causal first: no look-ahead


def test_chunks_of_any_size_give_the_models_own_stream(state):
    """Browser chunks are not whole hops: the rest waits for the next chunk, and nothing is lost or repeated."""
    eng = state.models.get("b_causal")
    x = _signal(20 * eng.hop + 300)
    session = live.LiveSession(eng, "b_causal", eng.sample_rate, 1)
    cuts = [0, 1000, 1001, 4700, 9000, len(x)]
    got = np.concatenate([session.feed(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    whole = len(x) // eng.hop * eng.hop
    want = eng.stream().process(x[:whole])
    assert got.shape == want.shape == (whole, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert session.hops == whole // eng.hop
    assert "causal" in session.report() and "x real time" in session.report()


def _drain(listener) -> list:
    items = []
    while not listener.box.empty():
        items.append(listener.box.get_nowait())
    return items


def test_a_microphone_at_48_khz_is_resampled_once_per_session(state, tmp_path):
    sr = 48000
    x = (_signal(sr, 2) * 32767).astype(np.int16)  # one second of stereo, as the browser sends it
    relay = live.Relay()
    listener = relay.open("tab-1")
    for start in range(0, len(x), sr // 4):
        live.live_chunk(state, relay, "tab-1", _chunk(tmp_path, sr, x[start : start + sr // 4]), "b_causal")
    items = _drain(listener)
    out = []
    for wav, _ in items:
        y, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        assert rate == 44100 and y.shape[1] == 2
        out.append(y)
    y = np.concatenate(out)
    session = listener.session
    hop = session.hop
    held = session.resampler_delay + hop  # what the resampler holds back, and what waits for a whole hop
    assert 0 < session.resampler_delay < 441 and len(y) % hop == 0
    assert 44100 - held - hop < len(y) <= 44100  # a second in, a second out (less what is held back)
    assert np.isfinite(y).all() and np.abs(y).max() > 1e-3
    report = items[-1][1]
    assert "causal: no look-ahead" in report and "resampling 48 -> 44.1 kHz" in report


def test_the_listener_yields_what_the_chunks_post_and_ends_with_the_recording(state, tmp_path):
    relay = live.Relay()
    got = []

    def chunks():  # the microphone's events, once the listener has opened
        while relay.get("tab-1") is None:
            time.sleep(0.01)
        for k in range(3):
            chunk = _chunk(tmp_path, 44100, (_signal(11025, seed=k) * 32767).astype(np.int16))
            live.live_chunk(state, relay, "tab-1", chunk, "b_causal")
        relay.close("tab-1")

    feeder = threading.Thread(target=chunks)
    feeder.start()
    for wav, _report in live.listen(state, relay, "tab-1", "b_causal", seconds=30):
        got.append(sf.read(io.BytesIO(wav), always_2d=True)[0])
    feeder.join()
    assert sum(len(g) for g in got) == 3 * 11025 // 256 * 256  # whole hops of what came in (hop 256)
    assert relay.get("tab-1") is None  # the listener left no trace


def test_a_new_recording_ends_the_old_listener_and_listeners_are_bounded(state, tmp_path):
    relay = live.Relay(max_listeners=2)
    first = relay.open("tab-1")
    second = relay.open("tab-1")  # record pressed again in the same tab
    assert first.box.get_nowait() is live.END and relay.get("tab-1") is second
    relay.open("tab-2")
    with pytest.raises(VaedemoError, match="2 live streams are running already"):
        relay.open("tab-3")
    relay.close("tab-1", first)  # the old listener's own cleanup leaves the new one alone
    assert relay.get("tab-1") is second
    silence = _chunk(tmp_path, 44100, np.zeros(4410, np.int16))
    assert live.live_chunk(state, relay, "tab-9", silence, "b_causal") is None  # nobody listens


def test_a_model_that_cannot_stream_says_why(state):
    with pytest.raises(gr.Error, match="cannot stream"):
        next(live.listen(state, live.Relay(), "tab-1", "a_single"))


@pytest.mark.parametrize("label", ["b_causal", "c_centred"])
def test_a_file_through_the_stream_is_the_stream_of_the_whole_file(state, tmp_path, label):
    """Its last partial hop and the model's delay are pushed out with silence at the end (they never came out: 11 ms
    of a causal model, 127 ms of a centred one)."""
    eng = state.models.get(label)
    x = _signal(3 * 22050 + 700)
    path = tmp_path / "in.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    played = list(live.play_file(state, state.gate, None, str(path), label))
    got = np.concatenate([sf.read(io.BytesIO(w), dtype="float32", always_2d=True)[0] for w, _ in played])
    assert "- pieces of the file: 500 ms" in played[-1][1] and "browser" not in played[-1][1].split("\n")[2]
    stream = Engine(eng.bundle).stream()
    out = -(-(len(x) + stream.latency) // eng.hop) * eng.hop  # in whole hops, the file's last sample past the delay
    want = stream.process(np.concatenate([x, np.zeros((out - len(x), x.shape[1]), np.float32)]))
    assert got.shape == want.shape and len(got) >= len(x) + stream.latency
    np.testing.assert_allclose(got, want, atol=1.5 / 32768)  # the wav chunks are 16-bit: one step, and float error


def test_no_file_is_one_sentence(state):
    with pytest.raises(gr.Error, match="upload or record a sound to stream first|Upload or record a sound to stream"):
        next(live.play_file(state, state.gate, None, None, "b_causal"))


def test_the_first_step_of_playing_a_file_checks_the_model_and_the_file(state, tmp_path):
    """The page checks before it streams, so that a refusal is one message and no output is marked as failed."""
    with pytest.raises(VaedemoError, match="upload or record a sound to stream first"):
        live.check_playable(state, None, "b_causal")
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(VaedemoError, match="notes.wav could not be decoded as audio"):
        live.check_playable(state, str(tmp_path / "notes.wav"), "b_causal")
    sf.write(tmp_path / "hit.wav", _signal(4410), 44100)
    with pytest.raises(VaedemoError, match="choose a streaming model first"):
        live.check_playable(state, str(tmp_path / "hit.wav"), None)
    live.check_playable(state, str(tmp_path / "hit.wav"), "b_causal")  # (kept decoded for the stream's own step)


def test_the_stream_checked_at_the_start_serves_the_first_chunk_of_the_same_model(state, tmp_path):
    relay = live.Relay()
    listener = live._open(state, relay, "tab-1", "b_causal")
    made = listener.stream[1]
    chunk = _chunk(tmp_path, 44100, np.zeros(4096, np.int16))
    live.live_chunk(state, relay, "tab-1", chunk, "b_causal")
    assert listener.session.stream is made and listener.stream is None
    other = live._open(state, relay, "tab-2", "b_causal")
    causal_stream = other.stream[1]
    live.live_chunk(state, relay, "tab-2", chunk, "c_centred")  # the picker changed after record was pressed
    assert other.session.stream is not causal_stream and other.session.label == "c_centred"
    assert other.session.stream.latency > 0 and not other.session.causal


def test_a_hostile_chunk_is_one_sentence(state, tmp_path):
    """A chunk is decoded as an upload is (libsndfile or the sandboxed ffmpeg, within the budget), not by Gradio: a
    playlist naming a file on the server reads nothing, a long chunk is refused before it is decoded."""
    relay = live.Relay()
    relay.open("tab-1")
    with pytest.raises(gr.Error, match="uploaded file"):
        live.live_chunk(state, relay, "tab-1", [44100, [0, 0]], "b_causal")  # what type="numpy" would have taken
    with pytest.raises(gr.Error, match="is 3 s long; the limit is 2 s"):
        live.live_chunk(state, relay, "tab-1", _chunk(tmp_path, 8000, np.zeros(3 * 8000, np.int16)), "b_causal")
    secret = tmp_path / "secret.wav"
    sf.write(secret, _signal(44100), 44100)
    playlist = tmp_path / "pl.wav"  # an HLS playlist under an audio name
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{secret}\n#EXT-X-ENDLIST\n")
    opened = relay.get("tab-1").last_chunk
    with pytest.raises(gr.Error):
        live.live_chunk(state, relay, "tab-1", str(playlist), "b_causal")
    assert relay.get("tab-1").session is None  # nothing went through the stream
    assert relay.get("tab-1").last_chunk == opened  # garbage does not keep a listener alive
    # the recorder's last flush may be a wav header alone: nothing, not an error
    assert live.live_chunk(state, relay, "tab-1", _chunk(tmp_path, 44100, np.zeros((0, 1), np.int16)), "b_causal") is None


def test_one_client_cannot_take_every_live_place(state):
    relay = live.Relay(max_listeners=4, per_client=2)
    relay.open("tab-1", "ip:a")
    relay.open("tab-2", "ip:a")
    relay.open("tab-2", "ip:a")  # record pressed again in the same tab: still two
    with pytest.raises(VaedemoError, match="You already have 2 live streams running"):
        relay.open("tab-3", "ip:a")
    relay.open("tab-3", "ip:b")  # another client still gets a place
    with pytest.raises(gr.Error, match="You already have 2"):
        next(live.listen(state, relay, "tab-4", "b_causal", client="ip:a"))
    assert relay.get("tab-4") is None


def test_a_listener_whose_microphone_sends_nothing_ends_and_frees_its_place(state):
    relay = live.Relay(max_listeners=1)
    start = time.monotonic()
    assert list(live.listen(state, relay, "tab-1", "b_causal", idle=0.5)) == []
    assert time.monotonic() - start < 5 and relay.get("tab-1") is None
    relay.open("tab-2")  # its place is free


def test_a_file_through_the_stream_is_decoded_inside_the_gate(state, tmp_path):
    """Its decoding (the costly part of a wide, long file) counts against the client's requests like any other."""
    from vaedemo.demo.guard import Gate

    path, garbage = tmp_path / "in.wav", tmp_path / "garbage.wav"
    sf.write(path, _signal(44100), 44100)
    garbage.write_bytes(b"not audio" * 100)
    gate = Gate(per_client=1)
    # the client's one request is running: refused before anything is read
    with gate(None), pytest.raises(gr.Error, match="You already have 1 requests"):
        next(live.play_file(state, gate, None, str(garbage), "b_causal"))
    assert len(list(live.play_file(state, gate, None, str(path), "b_causal"))) == 3  # two pieces, and the end


def test_chunks_of_one_session_go_through_its_stream_one_at_a_time(state, tmp_path):
    """Two chunk events of one session at once (a raw client, a recording restarted while a chunk computes) fed one
    resampler and one scripted stream from two threads, which corrupted the heap: the server died of a segfault."""
    relay = live.Relay()
    listener = relay.open("tab-1")
    chunk = _chunk(tmp_path, 48000, (_signal(4800) * 32767).astype(np.int16))
    live.live_chunk(state, relay, "tab-1", chunk, "b_causal")
    stream = listener.session.stream
    process, inside, most = stream.process, [0], [0]

    def slow(x, *bent):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # long enough for another thread to come in, if it may
        try:
            return process(x, *bent)
        finally:
            inside[0] -= 1

    stream.process = slow
    threads = [threading.Thread(target=live.live_chunk, args=(state, relay, "tab-1", chunk, "b_causal")) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and listener.session.hops * listener.session.hop == sum(len(y) for y in _outputs(listener))


def _outputs(listener) -> list[np.ndarray]:
    return [sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)[0] for wav, _ in _drain(listener)]


def test_a_chunk_of_many_channels_streams_as_stereo(state, tmp_path):
    """As a file through the stream does: a raw request's 16 channels cost the shared live pool 8 stereo streams."""
    relay = live.Relay()
    listener = relay.open("tab-1")
    x = np.concatenate([_signal(11025, 3, seed=1), -_signal(11025, 3, seed=2)], axis=1)  # 6 channels
    live.live_chunk(state, relay, "tab-1", _chunk(tmp_path, 44100, x), "b_causal")
    assert listener.session.channels == 2 and all(y.shape[1] == 2 for y in _outputs(listener))


def test_a_new_rate_restarts_the_sessions_stream_rather_than_making_another(state, tmp_path):
    """A stream costs ~0.25 s to make (it is scripted): chunks whose rate alternates made one each, a few hundred
    times a tiny chunk's cost. The session's own stream starts afresh instead, as a new one would."""
    relay = live.Relay()
    listener = relay.open("tab-1")
    live.live_chunk(state, relay, "tab-1", _chunk(tmp_path, 44100, (_signal(4410) * 32767).astype(np.int16)), "b_causal")
    stream = listener.session.stream
    _drain(listener)
    second = _chunk(tmp_path, 48000, (_signal(9600, seed=5) * 32767).astype(np.int16))
    live.live_chunk(state, relay, "tab-1", second, "b_causal")
    assert listener.session.stream is stream and listener.session.rate == 48000
    got = np.concatenate(_outputs(listener))
    eng = state.models.get("b_causal")
    want = live.LiveSession(eng, "b_causal", 48000, 1).feed(sf.read(second, dtype="float32", always_2d=True)[0])
    np.testing.assert_allclose(got, np.clip(want, -1, 1), atol=1.5 / 32768)


def test_a_recording_is_started_within_the_clients_limit_on_requests(state, monkeypatch):
    """One session's recordings started forty at once each made a stream (scripting took the interpreter ~0.14 s a
    stream) before the relay replaced the listener of the one before: the other clients' requests waited 7-19 s."""
    from vaedemo.demo.guard import Gate

    gate = Gate(per_client=1)
    monkeypatch.setattr(state, "gate", gate)
    relay = live.Relay()
    with gate(None), pytest.raises(gr.Error, match="You already have 1 requests"):
        next(live.listen(state, relay, "tab-1", "b_causal", request=None))
    assert relay.get("tab-1") is None


def test_streams_made_at_once_are_scripted_once_and_each_has_caches_of_its_own(state, monkeypatch):
    """Scripting is not thread-safe: two streams started at the same moment on a fresh server failed with "Can't
    redefine method: forward"."""
    import vaedemo.inference

    scripted = []
    script = vaedemo.inference.script
    monkeypatch.setattr(vaedemo.inference, "script", lambda m: scripted.append(m) or script(m))
    eng = Engine(state.models.get("b_causal").bundle)  # fresh: nothing scripted yet
    streams, errors = [], []

    def make():
        try:
            streams.append(eng.stream())
        except Exception as e:  # the failure under test
            errors.append(e)

    threads = [threading.Thread(target=make) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(streams) == 6 and len(scripted) == 1
    x = _signal(8 * eng.hop)
    first = streams[0].process(x)
    assert np.array_equal(streams[1].process(x), first)  # a copy of the same model, not the caches of another
    assert not np.array_equal(streams[0].process(x), first)  # (its caches moved on: the same input sounds on)


def test_streams_of_two_models_made_at_once_and_an_engine_copied(state):
    """TorchScript's registry of classes is the process's: two models' first streams at once collided (each Engine
    locked only itself). An Engine with its lock and scripted stream still copies and pickles (both are left out)."""
    import copy
    import pickle

    engines = [Engine(state.models.get(label).bundle) for label in ("b_causal", "c_centred", "b_causal")]
    errors = []

    def make(eng):
        try:
            eng.stream()
        except Exception as e:  # the failure under test
            errors.append(e)

    threads = [threading.Thread(target=make, args=(eng,)) for eng in engines * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    twin = copy.deepcopy(engines[0])
    x = _signal(4 * twin.hop)
    assert np.array_equal(twin.stream().process(x), engines[0].stream().process(x))
    assert pickle.loads(pickle.dumps(engines[1])).stream().process(x).shape == x.shape


def test_a_microphone_sending_faster_than_real_time_is_refused(state, tmp_path, monkeypatch):
    """Nothing held a listener to real time: one streamed 784 s of audio in 60 s, a core the whole time, taken from
    everyone's live pool. A chunk's worth of slack covers a network's bunching."""
    clock = [1000.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])  # time stands still unless the test moves it
    relay = live.Relay()
    listener = relay.open("tab-1")
    listener.opened = clock[0]
    second = (_signal(44100) * 32767).astype(np.int16)
    for _ in range(2):  # the slack: two seconds at once
        live.live_chunk(state, relay, "tab-1", _chunk(tmp_path, 44100, second), "b_causal")
    with pytest.raises(gr.Error, match="This microphone sends audio faster than it can be recorded"):
        live.live_chunk(state, relay, "tab-1", _chunk(tmp_path, 44100, second), "b_causal")
    assert listener.seconds_in == 2.0
    clock[0] += 1.0  # a second later
    live.live_chunk(state, relay, "tab-1", _chunk(tmp_path, 44100, second), "b_causal")
    assert listener.seconds_in == 3.0


def test_an_empty_chunk_of_any_format_is_nothing_to_stream(state, tmp_path):
    relay = live.Relay()
    relay.open("tab-1")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    assert live.live_chunk(state, relay, "tab-1", str(empty), "b_causal") is None


def test_chunks_wait_for_their_session_outside_the_live_pool_and_a_replaced_one_is_dropped(state, tmp_path,
                                                                                               monkeypatch):  # fmt: skip
    """A session's chunks go one at a time; those waiting held live slots meanwhile (three of one session held three
    of the four, idle), and with the session's lock looked up before the slot and again inside it, a chunk for a
    recording that was replaced meanwhile held a slot while the new recording's chunk held the lock it waited for:
    the live pool stayed full for good."""
    import types

    from vaedemo.demo.guard import LIVE_STREAMS, Gate

    gate = Gate(per_client=8)
    monkeypatch.setattr(state, "gate", gate)
    relay = live.Relay()
    request = types.SimpleNamespace(client=types.SimpleNamespace(host="10.0.0.1"), session_hash="tab-1")
    chunk = _chunk(tmp_path, 44100, (_signal(4410) * 32767).astype(np.int16))
    old = relay.open("tab-1")
    busy = [gate(None, "live") for _ in range(LIVE_STREAMS)]  # other sessions' chunks hold every slot
    for cm in busy:
        cm.__enter__()
    first = threading.Thread(target=live.chunk_event, args=(state, relay, request, chunk, "b_causal"), daemon=True)
    first.start()  # the old recording's chunk: its lock taken, waiting for a slot
    time.sleep(0.2)
    new = relay.open("tab-1")  # record pressed again: a new listener
    second = threading.Thread(target=live.chunk_event, args=(state, relay, request, chunk, "b_causal"), daemon=True)
    second.start()
    time.sleep(0.2)
    assert gate._pools["live"]._value == 0 and first.is_alive() and second.is_alive()  # waiting, no slot taken
    for cm in busy:
        cm.__exit__(None, None, None)
    first.join(10)
    second.join(10)
    assert not first.is_alive() and not second.is_alive() and gate._pools["live"]._value == LIVE_STREAMS
    assert old.session is None and new.session is not None and new.seconds_in == 0.1  # the old one's chunk dropped


# ------------------------------------------------------------------------------------------------ the sliders
def test_a_streams_latents_bent_by_scale_and_noise(state):
    """Latent scale 0 decodes the prior's centre whatever comes in; noise is drawn from the stream's own generator,
    afresh after a reset; a scale of 1 without noise is the plain stream."""
    eng = state.models.get("b_causal")
    x, other = _signal(8 * eng.hop), _signal(8 * eng.hop, seed=1) * 3
    plain = eng.stream()
    assert np.array_equal(plain.process(x, 1.0, 0.0), eng.stream().process(x))
    centre = eng.stream().process(x, latent_scale=0.0)
    assert np.allclose(centre, eng.stream().process(other, latent_scale=0.0), atol=1e-6)
    assert not np.allclose(centre, eng.stream().process(x), atol=1e-3)
    noisy = eng.stream()
    first = noisy.process(x, latent_noise=0.5)
    assert np.array_equal(first, eng.stream().process(x, latent_noise=0.5))  # seeded at the stream's start
    assert not np.allclose(first, eng.stream().process(x), atol=1e-3)
    noisy.reset()
    assert np.array_equal(noisy.process(x, latent_noise=0.5), first)
    for bad in (float("nan"), -0.1, "1"):
        with pytest.raises(VaedemoError, match="latent_scale must be a number from 0 up"):
            eng.stream().process(x, latent_scale=bad)


def test_the_sliders_steer_the_servers_stream_of_a_file(state, tmp_path):
    """Each piece of a file played through the stream reads its page session's sliders: -6 dB out halves the
    output, +6 dB in is the stream of the file 6 dB louder, latent scale 0 is the prior's centre decoded."""
    path = tmp_path / "in.wav"
    x = _signal(44100)
    sf.write(path, x, 44100, subtype="FLOAT")

    def played(**controls) -> np.ndarray:
        state.live_controls = ControlsStore()
        for key, value in controls.items():
            state.live_controls.set("session:None", key, value)  # (a request-less call's session key)
        pieces = live.play_file(state, state.gate, None, str(path), "b_causal")
        return np.concatenate([sf.read(io.BytesIO(w), dtype="float32", always_2d=True)[0] for w, _ in pieces])

    plain = played()
    np.testing.assert_allclose(played(output=-6), plain * 10 ** (-6 / 20), atol=3 / 32768)
    sf.write(path, x * 10 ** (6 / 20), 44100, subtype="FLOAT")
    louder = played()
    sf.write(path, x, 44100, subtype="FLOAT")
    np.testing.assert_allclose(played(input=6), louder, atol=2 / 32768)
    assert not np.allclose(played(scale=0), plain, atol=1e-3)
    state.live_controls = ControlsStore()


def test_the_controls_store_checks_each_value_and_forgets_the_oldest_session():
    store = ControlsStore(kept=2)
    assert store.get("a") == Controls()
    assert store.set("a", "scale", 0.5) == Controls(scale=0.5)
    assert store.set("a", "input", 6) == Controls(input_db=6.0, scale=0.5)  # one slider leaves the others
    for key, value, message in (("scale", 2.5, "Latent scale must be from 0 to 2, got 2.5"),
                                ("output", float("nan"), "Output gain .dB. must be a number"),
                                ("noise", "1", "Latent noise must be a number"), ("gain", 1, "no live control 'gain'")):
        with pytest.raises(VaedemoError, match=message):
            store.set("a", key, value)
    store.set("b", "noise", 1)
    store.set("c", "output", -12)
    assert store.get("a") == Controls() and store.get("b") == Controls(noise=1.0)  # a: the least recently changed
