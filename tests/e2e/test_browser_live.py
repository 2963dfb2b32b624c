"""The Live tab's "in this browser" mode in a real browser: onnxruntime-web plays a causal model's stream from a
(fake, file-fed) microphone, and the page's stream computes what the model computes, hop by hop, states carried."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vaedemo.demo import live_controls
from vaedemo.demo.bench import free_port
from vaedemo.demo.browser_runtime import installed

from .microphone import live_tab_page
from .screenshots import CHROMIUM, wait_idle
from .tiny import tiny_bundle

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no browser at {CHROMIUM} (apt-get install chromium)")  # fmt: skip
STATUS = "document.querySelector('#browser-live-status').textContent"
# the view's last n columns, strip by strip (RGBA rows of the canvas), and how many columns it has drawn
READ_VIEW = """(n) => {
  const v = window.vaedemoLiveView, c = document.querySelector('#browser-live-view'), g = c.getContext('2d');
  const strip = ([top, bottom]) => Array.from(g.getImageData(c.width - n, top, n, bottom - top).data);
  return {layout: v.layout, columns: v.columns, microphone: strip(v.layout.microphone), latents: strip(v.layout.latents),
          output: strip(v.layout.output)};
}"""


SLIDERS_SET: list[tuple] = []  # (key, value) of each slider change the server's store took


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from vaedemo.demo import create, launch

    assert installed(), "onnxruntime-web is not installed: bash scripts/setup.sh (python -m vaedemo.demo.browser_runtime)"
    root = tmp_path_factory.mktemp("browser-live")
    causal = tiny_bundle(root, "tiny_causal", "model.latent_mode=temporal", "model.causal=true")
    centred = tiny_bundle(root, "tiny_centred", "model.latent_mode=temporal")
    mp = pytest.MonkeyPatch()
    mp.setenv("VAEDEMO_CACHE", str(root / "cache"))  # (the exported streams: not the user's cache)
    keep = live_controls.ControlsStore.set  # what the server's store is given, seen as it keeps it
    mp.setattr(live_controls.ControlsStore, "set", lambda store, *a: SLIDERS_SET.append(a[1:]) or keep(store, *a))
    demo = create([str(causal), str(centred)], max_seconds=10.0, checkpoint_dir=root / "no-checkpoints")
    port = free_port()
    launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/", root, causal
    demo.close()
    mp.undo()


@pytest.fixture(scope="module")
def page(server):
    url, root, _ = server
    with live_tab_page(url, root) as page:
        yield page


def test_the_microphone_plays_through_the_model_in_the_browser(page):
    page.locator("#browser-live-start").click()
    page.wait_for_function(f"() => {STATUS}.startsWith('Live in this browser')", timeout=120_000)
    page.wait_for_function("() => window.vaedemoBrowserLive.stats.hops > 100", timeout=30_000)  # > 0.6 s of hops
    status = page.evaluate(STATUS)
    _the_view_shows_the_latents_it_decodes(page)
    info = json.loads(page.evaluate("() => window.vaedemoBrowserLive.lastInfo"))
    hop, cap = info["model"]["hop"], info["max_queued"]
    # a stall of the page (a busy main thread: a heavy page, a slow laptop) leaves no lasting delay: what piled up
    # meanwhile is skipped, and what is buffered to play comes back within its cap (it had grown by the stall, for good)
    page.evaluate("() => { const t = performance.now(); while (performance.now() - t < 1500) {} }")
    page.wait_for_timeout(1000)
    stats = page.evaluate("() => window.vaedemoBrowserLive.stats")
    page.locator("#browser-live-stop").click()
    page.wait_for_function(f"() => {STATUS} === 'In this browser: stopped.'")
    print(f"\nin this browser: {status}")
    assert "x real time" in status and "Latency about" in status
    assert stats["dropped"] + stats["discarded"] > 0 and stats["queued"] <= cap * hop
    assert page.locator(".toast-body, [data-testid=toast-body]").count() == 0  # no error on the way


# over `seconds` of the sound card's clock: the microphone's hops per second that reached the page (computed or
# skipped), and the peak of what the worklet played
HOPS_AND_PEAK = """async (seconds) => {
  const live = window.vaedemoBrowserLive, c = live.context, a = c.createAnalyser(), wave = new Float32Array(a.fftSize);
  live.node.connect(a);
  const count = () => [c.currentTime, live.stats.hops + live.stats.dropped];
  let peak = 0;
  const [t0, h0] = count();
  while (c.currentTime - t0 < seconds) {
    await new Promise((r) => setTimeout(r, 20));
    a.getFloatTimeDomainData(wave);
    for (const v of wave) peak = Math.max(peak, Math.abs(v));
  }
  const [t1, h1] = count();
  live.node.disconnect(a);
  return {hopsPerSecond: (h1 - h0) / (t1 - t0), peak};
}"""


# Firefox with its sound card at 48 kHz: a context made without a rate runs at the card's, and a microphone in a
# context at any other rate is refused as Firefox words it (undone by window.undoFirefox)
AS_FIREFOX = """() => {
  const Native = window.AudioContext, connect = Native.prototype.createMediaStreamSource;
  class CardAt48k extends Native { constructor(options = {}) { super({sampleRate: 48000, ...options}); } }
  CardAt48k.prototype.createMediaStreamSource = function (stream) {
    if (this.sampleRate !== 48000) throw new DOMException('AudioContext.createMediaStreamSource: Connecting ' +
      'AudioNodes from AudioContexts with different sample-rate is currently not supported.', 'NotSupportedError');
    return connect.call(this, stream);
  };
  window.AudioContext = CardAt48k;
  window.undoFirefox = () => { window.AudioContext = Native; };
}"""


def test_a_browser_refusing_the_models_rate_plays_at_the_cards(page):
    """A browser that refuses the microphone in a context at the model's rate (Firefox's NotSupportedError) gets one
    at the sound card's rate, 48 kHz, the worklet resampling both ways: the 44.1 kHz model gets its hops at its own
    rate (172 a second of hop 256, not 188), what it gives back is played, and the status says so."""
    page.evaluate(AS_FIREFOX)
    try:
        page.locator("#browser-live-start").click()
        page.wait_for_function(f"() => {STATUS}.startsWith('Live in this browser')", timeout=120_000)
        page.wait_for_function("() => window.vaedemoBrowserLive.stats.hops > 100", timeout=30_000)
        status, rate = page.evaluate(f"() => [{STATUS}, window.vaedemoBrowserLive.context.sampleRate]")
        heard = page.evaluate(HOPS_AND_PEAK, 2.0)
        seen = page.evaluate(READ_VIEW, 100)
        page.locator("#browser-live-stop").click()
    finally:
        page.evaluate("() => window.undoFirefox()")
    assert rate == 48000 and "at 44100 Hz (the sound card at 48000 Hz, resampled in the page)" in status, status
    assert ", resampling 1.2, sound card output" in status, status  # (0.6 ms each way)
    assert heard["hopsPerSecond"] == pytest.approx(44100 / 256, rel=0.03) and heard["peak"] > 1e-3, heard
    assert _rgb(seen["microphone"]).max() > 100 and _rgb(seen["output"]).max() > 100
    assert page.locator(".toast-body, [data-testid=toast-body]").count() == 0


# a sine pushed through the worklet's resampler, whole and in the worklet's blocks of 128
RESAMPLE = """([from, to, hz, n]) => {
  const x = Float32Array.from({length: n}, (_, i) => 0.5 * Math.sin(2 * Math.PI * hz * i / from));
  const whole = new window.vaedemoBrowserLive.Resampler(from, to), r = new window.vaedemoBrowserLive.Resampler(from, to);
  const blocks = [];
  for (let i = 0; i < n; i += 128) blocks.push(...r.push(x.subarray(i, i + 128)));
  return {whole: Array.from(whole.push(x)), blocks, halfWidth: whole.halfWidth};
}"""


@pytest.mark.parametrize("rates", [(48000, 44100), (44100, 48000), (44100, 44100)])
def test_the_worklets_resampler(page, rates):
    """Output n at input time n * from / to: a sine comes out as the sine at the new rate (within 1e-5), the same in
    any chunking, one output per input time the input reaches past the filter's half width; a tone the new rate
    cannot carry is 60 dB down."""
    a, b = rates
    got = page.evaluate(RESAMPLE, [a, b, 1000, a])
    y, w = np.array(got["whole"]), got["halfWidth"]
    assert got["blocks"] == got["whole"]
    assert abs(len(y) - (a - (w if a != b else 0)) * b / a) <= 1
    settled = int(np.ceil(2 * w * b / a))  # (the first outputs see the silence before the sine)
    n = np.arange(settled, len(y))
    np.testing.assert_allclose(y[settled:], 0.5 * np.sin(2 * np.pi * 1000 * n / b), atol=1e-5)
    if a > b:
        alias = np.array(page.evaluate(RESAMPLE, [a, b, 22800, a])["whole"])[settled:]
        assert np.sqrt(np.mean(alias**2)) < 1e-3 * 0.5


def _rgb(strip: list[int]) -> np.ndarray:
    return np.array(strip, np.int32).reshape(-1, 4)[:, :3]


def _set_slider(page, slider: str, value: str) -> None:
    field = page.locator(f"#browser-live-{slider} input[type=number]")
    field.fill(value)
    field.press("Enter")
    page.wait_for_function(f"() => window.vaedemoBrowserLive.controls.{slider} === {value}", timeout=10_000)


def _the_view_shows_the_latents_it_decodes(page) -> None:
    """The moving picture as it plays: a column a hop, the microphone's sound on top, the latents in rows that
    differ; with the latent scale at 0 (the decoder given the prior's centre) every latent row turns the middle
    colour."""
    seen = page.evaluate(READ_VIEW, 100)  # 1.2 s: two of the fake microphone's clicks
    layout = seen["layout"]
    assert seen["columns"] > 100 and layout["dims"] == 8  # (the tiny model's latents)
    assert _rgb(seen["microphone"]).max() > 100 and _rgb(seen["output"]).max() > 100  # the model's sound too
    assert len({tuple(c) for c in _rgb(seen["latents"])}) > 4  # rows and hops of their own colours
    _set_slider(page, "scale", "0")
    drawn = page.evaluate("() => window.vaedemoLiveView.columns")
    page.wait_for_function(f"() => window.vaedemoLiveView.columns > {drawn + 10}", timeout=10_000)
    centre = _rgb(page.evaluate(READ_VIEW, 5)["latents"])
    assert (centre == np.array(layout["middle"])).all()
    _set_slider(page, "scale", "1")
    brightness = {}  # the bottom strip is what is played: 36 dB less of it is darker
    for gain in ("24", "-12"):
        _set_slider(page, "output", gain)
        drawn = page.evaluate("() => window.vaedemoLiveView.columns")
        page.wait_for_function(f"() => window.vaedemoLiveView.columns > {drawn + 110}", timeout=20_000)
        brightness[gain] = _rgb(page.evaluate(READ_VIEW, 100)["output"]).sum(axis=1).mean()
    _set_slider(page, "output", "0")
    assert brightness["-12"] < 0.7 * brightness["24"], brightness
    view = page.locator("#browser-live-view")  # a click: full screen for a projector; another: back
    view.click()
    page.wait_for_function("() => document.fullscreenElement?.id === 'browser-live-view'", timeout=5_000)
    view.click()
    page.wait_for_function("() => !document.fullscreenElement", timeout=5_000)


def test_the_views_spectrum_is_an_analysers(page):
    """A column's spectrum, computed in the page from the hop's own samples, is what a Web Audio analyser gives for
    them: a Blackman window, |X| / N in dB re full scale, spread over the bytes (a sine at -26 dBFS and noise)."""
    from vaedemo.demo.live_view import DB_RANGE, FFT_SIZE

    n = np.arange(FFT_SIZE)
    x = (0.1 * np.sin(2 * np.pi * 1000.5 * n / 44100) + 1e-3 * np.random.default_rng(1).standard_normal(FFT_SIZE))
    got = np.array(page.evaluate("(x) => Array.from(window.vaedemoLiveView.spectrum(x))", x.tolist()))
    window = 0.42 - 0.5 * np.cos(2 * np.pi * n / FFT_SIZE) + 0.08 * np.cos(4 * np.pi * n / FFT_SIZE)
    db = 20 * np.log10(np.abs(np.fft.rfft(window * x))[: FFT_SIZE // 2] / FFT_SIZE + 1e-30)
    expected = np.clip(np.floor(255 * (db - DB_RANGE[0]) / (DB_RANGE[1] - DB_RANGE[0])), 0, 255)
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1  # (float32 in the page)
    assert got.argmax() == round(1000.5 / 44100 * FFT_SIZE) and got.max() > 200 and np.median(got) < 100


def test_the_page_stream_computes_what_the_model_computes(page, server):
    """The page's own stream (the same function the microphone's hops go through) over 40 hops of a signal: the
    offline model's reconstruction (a causal stream reads nothing ahead), so every hop's states reached the next."""
    from vaedemo.bundle import load

    _, _, causal = server
    model = load(causal).model.float().eval()
    x = (0.2 * np.random.default_rng(0).standard_normal(40 * model.hop)).astype(np.float32)
    if not page.evaluate("() => window.vaedemoBrowserLive.lastInfo"):  # (run alone: have the server send it)
        page.locator("#browser-live-start").click()
        page.wait_for_function("() => window.vaedemoBrowserLive.lastInfo", timeout=120_000)
        page.locator("#browser-live-stop").click()
    info = page.evaluate("() => window.vaedemoBrowserLive.lastInfo")  # what the server sent for the causal model
    y = np.array(page.evaluate("([i, x]) => window.vaedemoBrowserLive.process(i, x)", [info, x.tolist()]), np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)[None, None], sample=False).audio[0, 0].numpy()
    assert json.loads(info)["label"] == "tiny_causal"
    np.testing.assert_allclose(y, expected, atol=1e-4 * np.abs(expected).max())
    # the controls: 6 dB into the model, half its latents decoded, 12 dB less out of it
    controls = {"input": 6, "scale": 0.5, "noise": 0, "output": -12}
    bent = page.evaluate("([i, x, c]) => window.vaedemoBrowserLive.process(i, x, c)", [info, x.tolist(), controls])
    with torch.no_grad():
        z = model.encode(10 ** (6 / 20) * torch.from_numpy(x)[None, None])
        expected = 10 ** (-12 / 20) * model.decode(0.5 * z)[0, 0].numpy()
    np.testing.assert_allclose(np.array(bent, np.float32), expected, atol=1e-4 * np.abs(expected).max())


def test_the_sliders_reach_the_playing_stream_and_the_server(page):
    SLIDERS_SET.clear()
    for slider, value in (("input", "6"), ("output", "-3"), ("scale", "0.5"), ("noise", "0.25")):
        _set_slider(page, slider, value)
    wait_idle(page)  # each change also went to the server (for its stream), which took it without a message
    assert page.locator(".toast-body, [data-testid=toast-body]").count() == 0
    assert SLIDERS_SET == [("input", 6), ("output", -3), ("scale", 0.5), ("noise", 0.25)]


def test_another_model_chosen_while_playing_plays_and_a_centred_one_is_refused_in_one_sentence(page):
    """A model chosen while one plays starts at once (it had waited, unheard, for the next Start); a centred one is
    refused in one sentence and the page stops, its audio closed."""
    assert page.evaluate("() => document.getElementById('browser-live-start').tagName") == "BUTTON"
    page.locator("#browser-live-start").click()  # the causal model playing
    page.wait_for_function("() => window.vaedemoBrowserLive.state === 'playing'", timeout=120_000)
    page.locator("#live-model input").click()
    page.get_by_role("option", name="tiny_centred").click()  # chosen while it plays: no click on Start
    toast = page.locator(".toast-body, [data-testid=toast-body]").first
    toast.wait_for(timeout=30_000)
    assert "reads ahead (it is not causal)" in toast.inner_text()
    page.wait_for_function(f"() => {STATUS} === 'In this browser: stopped.'")  # not left "preparing", its audio closed
    assert page.evaluate("() => window.vaedemoBrowserLive.state") == "stopped"
