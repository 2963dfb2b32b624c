"""A real browser (the system chromium, driven by Playwright): upload, reconstruct, see the audio and both plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .screenshots import CHROMIUM, wait_idle

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no browser at {CHROMIUM} (apt-get install chromium)")  # fmt: skip


@pytest.fixture(scope="module")
def page(browser, server):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(server)
    page.get_by_role("tab", name="Reconstruct").wait_for()
    yield page
    page.close()


def test_upload_and_reconstruct_shows_audio_and_both_spectrograms(page, tmp_path):
    page.locator("input[type=file]").first.set_input_files(str(ROOT / "examples" / "timgm6mb-tr-808_snare.flac"))
    page.get_by_role("button", name="Reconstruct", exact=True).click()
    for plot in ("#spec-input", "#spec-output"):
        page.locator(f"{plot} .js-plotly-plot").wait_for(timeout=60000)
    wait_idle(page)
    assert page.locator("#spec-output .heatmaplayer").count() == 1
    assert "Reconstruction" in page.locator("#spec-output").inner_text()
    assert page.get_by_text("SI-SDR (dB)").is_visible()
    # the reconstruction player holds a file (its download link points at the served wav)
    assert page.locator("#rec-output a[download][href*='reconstruction-']").count() == 1
    page.screenshot(path=str(tmp_path / "reconstruct.png"), full_page=True)
    assert (tmp_path / "reconstruct.png").stat().st_size > 10_000


PLAYING = "() => ['A', 'B'].map(k => !!window.vaedemoAB && !window.vaedemoAB[k].paused)"


def test_ab_switches_between_input_and_reconstruction_at_the_same_moment(page):
    """Runs after the reconstruction above: A/B starts the input, then swaps to the output where the input was."""
    page.get_by_role("tab", name="Reconstruct").click()
    page.locator("#ab-toggle").click()
    page.wait_for_function(f"() => ({PLAYING})().join() === 'true,false'")
    assert "A (input)" in page.locator("#ab-now").inner_text()
    page.wait_for_function("() => window.vaedemoAB.A.currentTime > 0.2")
    page.locator("#ab-toggle").click()
    page.wait_for_function(f"() => ({PLAYING})().join() === 'false,true'")
    assert "B (reconstruction)" in page.locator("#ab-now").inner_text()
    t_a, t_b = page.evaluate("() => [window.vaedemoAB.A.currentTime, window.vaedemoAB.B.currentTime]")
    assert t_a > 0.2 and t_b >= t_a - 0.05  # B went on from where A was, not from the start
    assert "reconstruction-" in page.evaluate("() => window.vaedemoAB.B.src")
    page.locator("#ab-toggle").click()
    page.wait_for_function(f"() => ({PLAYING})().join() === 'true,false'")


def test_ticking_the_latent_search_reconstructs_the_same_input_again(page, tmp_path):
    """The switch alone re-runs the reconstruction of the input on screen, refined, and unticked in one pass."""
    page.get_by_role("tab", name="Reconstruct").click()
    hit = 0.3 * np.sin(np.arange(12000) * 0.05) * np.exp(-np.arange(12000) / 3000)  # shorter than the clip: one shot
    sf.write(tmp_path / "hit.wav", hit.astype(np.float32), 44100)
    page.locator("#rec-input button[aria-label='Clear']").first.click()  # the snare above leaves
    page.locator("#rec-input input[type=file]").set_input_files(str(tmp_path / "hit.wav"))
    page.locator("#rec-output a[download][href*='reconstruction-']").wait_for(timeout=60000)
    wait_idle(page)
    one_pass = page.locator("#rec-output a[download]").get_attribute("href")
    page.locator("#rec-refine input[type=checkbox]").check()
    page.get_by_text("Latent searched for").wait_for(timeout=60000)
    wait_idle(page)
    assert page.locator("#rec-output a[download]").get_attribute("href") != one_pass  # a new reconstruction
    page.locator("#rec-refine input[type=checkbox]").uncheck()
    page.get_by_text("Latent searched for").wait_for(state="detached", timeout=60000)
    wait_idle(page)
    assert page.get_by_text("SI-SDR (dB)").is_visible()


def test_the_path_can_start_and_end_at_searched_latents(page):
    page.get_by_role("tab", name="Interpolate").click()
    page.locator("#path-refine input[type=checkbox]").check()
    page.get_by_role("button", name="Render the path").click()
    page.get_by_text("The latents of source A searched for").wait_for(timeout=60000)
    wait_idle(page)
    assert page.get_by_text("The latents of source B searched for").is_visible()
    page.locator("#path-refine input[type=checkbox]").uncheck()
    page.get_by_role("tab", name="Reconstruct").click()


def test_clicking_a_point_of_the_latent_map_plays_it(page):
    page.get_by_role("tab", name="Latent map").click()
    page.get_by_role("button", name="Draw the map").click()
    page.locator("#latent-map path.point").first.wait_for(timeout=60000)
    wait_idle(page)
    page.locator("#latent-map path.point").nth(1).click(force=True)  # plotly_click -> hidden textbox -> handler
    page.locator("#point-audio a[download][href$='.flac']").wait_for(timeout=30000)
    assert page.locator("#latent-map .scatterlayer .trace").count() >= 2  # categories + the ring of the selection
