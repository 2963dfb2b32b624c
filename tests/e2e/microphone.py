"""A headless Chromium on the Live tab whose (fake) microphone plays a file: a click every half second at 48 kHz."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import soundfile as sf

from .screenshots import CHROMIUM, CHROMIUM_ARGS


@contextlib.contextmanager
def live_tab_page(url: str, folder: Path):
    """The page at ``url`` on its Live tab, the microphone's file written in ``folder``."""
    from playwright.sync_api import sync_playwright

    sr = 48000  # a click every half second, as a microphone at 48 kHz would hear it
    clicks = np.zeros(6 * sr, np.float32)
    for k in range(12):
        clicks[k * sr // 2 : k * sr // 2 + 400] = 0.8 * np.sin(0.3 * np.arange(400))
    sf.write(folder / "mic.wav", clicks, sr, subtype="PCM_16")
    mic = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
           f"--use-file-for-fake-audio-capture={folder / 'mic.wav'}", "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + mic)  # never a downloaded browser
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(url)
        page.get_by_role("tab", name="Live").click()
        yield page
        browser.close()
