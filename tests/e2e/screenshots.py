"""Screenshots of every tab for the README: ``.venv/bin/python tests/e2e/screenshots.py [--checkpoint B ...]``.

Starts the app in this process (default model: the bundles in checkpoints/, or the ``--checkpoint`` ones), drives
the system chromium with Playwright (never a downloaded browser) through each tab, and writes small PNGs to
``docs/screenshots/``: the first screen of each tab at 1920x1080 (``--size 1280x720`` for a small projector),
palette-quantised with Pillow when it is installed. ``--dark`` uses the dark theme.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from vaedemo.demo.bench import free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


PENDING = ".progress-text, .eta-bar, .wrap.pending"
# what is still pending, for the message of a wait that timed out: each indicator's nearest element with an id, and
# the progress text it shows (a wait that fails says which event hung, not just that one did)
DESCRIBE_PENDING = f"""() => [...document.querySelectorAll('{PENDING}')].map(e => {{
    const owner = e.closest('[id]');
    return (owner ? '#' + owner.id : e.className) + ' ' + JSON.stringify((e.innerText || '').slice(0, 80)); }})"""


def wait_idle(page, timeout: float = 60.0) -> None:
    """Wait until no Gradio progress indicator is shown (an AssertionError naming what is still pending if one stays
    for ``timeout`` seconds)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_timeout(300)
    try:
        page.wait_for_function(f"() => !document.querySelector('{PENDING}')", timeout=timeout * 1000)
    except PlaywrightTimeout:
        raise AssertionError(f"still pending after {timeout:.0f} s: {page.evaluate(DESCRIBE_PENDING)}") from None
    page.wait_for_timeout(500)


def release_slider(page, label: str, value: float) -> None:
    """Set a gr.Slider by (the start of) its label: its input event (the demo's sliders decode on it), then its
    release event (pointerup on the range input)."""
    box = page.locator(f"input[type=range][aria-label^='range slider for {label}']").first
    box.fill(str(value))
    box.dispatch_event("pointerup")


def shrink(path: Path) -> None:
    try:
        from PIL import Image
    except ImportError:
        return
    img = Image.open(path).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def take(url: str, out: Path, width: int = 1920, height: int = 1080, full_page: bool = False) -> list[Path]:
    import soundfile as sf
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        # the Live tab's streamed output starts playing by itself, as it does after a click in a real browser; its
        # in-browser mode hears Chromium's fake microphone play the example drum loop (a wav file, as Chromium wants)
        loop, rate = sf.read(ROOT / "examples" / "drum_loop.flac", dtype="float32")
        sf.write(Path(tmp) / "mic.wav", loop, rate, subtype="PCM_16")
        live = ["--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={Path(tmp) / 'mic.wav'}"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *live])
        page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
        page.goto(url)
        page.get_by_role("tab", name="Reconstruct").wait_for()
        wait_idle(page)

        def shot(name: str) -> None:
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=full_page)
            shrink(path)
            shots.append(path)

        page.locator("input[type=file]").first.set_input_files(str(ROOT / "examples" / "timgm6mb-standard_snare.flac"))
        page.locator("#spec-output .js-plotly-plot").wait_for(timeout=60000)
        wait_idle(page)
        page.locator("#rec-refine input[type=checkbox]").check()  # the same snare again, its latent searched
        page.get_by_text("Latent searched for").wait_for(timeout=60000)
        wait_idle(page)
        shot("reconstruct")

        page.get_by_role("tab", name="Sample").click()
        page.get_by_role("button", name="Sample", exact=True).click()
        wait_idle(page)
        release_slider(page, "Direction 1", 1.5)
        wait_idle(page)
        shot("sample")

        page.get_by_role("tab", name="Interpolate").click()
        page.get_by_role("button", name="Render the path").click()
        wait_idle(page)
        release_slider(page, "Position A", 0.3)
        wait_idle(page)
        shot("interpolate")

        page.get_by_role("tab", name="Latent map").click()
        page.get_by_role("button", name="Draw the map").click()
        page.locator("#latent-map path.point").first.wait_for(timeout=120000)
        wait_idle(page)
        page.locator("#latent-map path.point").nth(2).click(force=True)
        wait_idle(page)
        shot("latent_map")

        page.get_by_role("tab", name="Live").click()
        page.locator("#live-file input[type=file]").set_input_files(str(ROOT / "examples" / "drum_loop.flac"))
        wait_idle(page)
        page.locator("#live-play").click()
        page.wait_for_function("() => document.querySelector('#live-output audio')?.currentTime > 1", timeout=60000)
        page.locator("#browser-live-start").click()  # (the first time, the model's stream is exported: ~16 s)
        page.wait_for_function("() => window.vaedemoBrowserLive.stats?.hops > 500", timeout=120000)  # the view full
        shot("live")
        page.locator("#browser-live-stop").click()
        browser.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", action="append", default=[])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--size", default="1920x1080", help="the browser's viewport, WIDTHxHEIGHT (default 1920x1080)")
    ap.add_argument("--full-page", action="store_true", help="the whole page, not only its first screen")
    ap.add_argument("--dark", action="store_true", help="the dark theme")
    a = ap.parse_args(argv)
    width, height = (int(v) for v in a.size.lower().split("x"))
    from vaedemo.demo import create, launch

    demo = create(a.checkpoint)
    port = free_port()
    launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        t0 = time.perf_counter()
        url = f"http://127.0.0.1:{port}/" + ("?__theme=dark" if a.dark else "")
        for path in take(url, Path(a.out), width, height, a.full_page):
            print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")
        print(f"took {time.perf_counter() - t0:.1f} s")
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
