"""The page in a seminar (a real browser at 1280x720): a file that is not audio gets one error and the server goes on;
a link with the model, tab, seed and temperature opens the page in that state; the link button gives that link."""

from __future__ import annotations

from pathlib import Path

import pytest

from .screenshots import CHROMIUM, wait_idle
from .test_layout import choose_model, in_first_screen, open_page, shown_errors

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no browser at {CHROMIUM} (apt-get install chromium)")  # fmt: skip


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """A text file named .wav, and a FLAC cut after its first 3000 bytes."""
    folder = tmp_path_factory.mktemp("bad-files")
    (folder / "notes.wav").write_text("these are speaker notes, not audio\n" * 20)
    (folder / "cut.flac").write_bytes((ROOT / "examples" / "timgm6mb-standard_snare.flac").read_bytes()[:3000])
    return folder


def one_error(page, text: str) -> None:
    """Exactly one error message, with ``text``, and no "Error" on any output component; then close it."""
    page.get_by_text(text).first.wait_for(timeout=30000)
    wait_idle(page)
    assert page.locator(".toast-body").count() == 1
    assert shown_errors(page) == 1  # the message's own title, no "Error" on any output
    page.locator(".toast-close").first.click()
    page.locator(".toast-body").first.wait_for(state="detached")


def test_a_file_that_is_not_audio_gets_one_error_on_every_tab_and_the_server_goes_on(browser, server, bad_files):
    page = open_page(browser, server)
    page.locator("#rec-input input[type=file]").set_input_files(str(bad_files / "notes.wav"))  # runs at once
    one_error(page, "notes.wav could not be decoded as audio.")
    page.get_by_role("button", name="Reconstruct", exact=True).click()
    one_error(page, "notes.wav could not be decoded as audio.")
    page.get_by_role("tab", name="Interpolate").click()
    page.locator("#sound-a button[aria-label='Clear']").first.click()
    page.locator("#sound-a input[type=file]").set_input_files(str(bad_files / "cut.flac"))
    page.locator("#sound-a audio, #sound-a .waveform-container, #sound-a button[aria-label='Clear']").first.wait_for()
    page.get_by_role("button", name="Render the path").click()
    one_error(page, "cut.flac could not be decoded as audio.")
    # the server goes on: a good file on the Reconstruct tab works
    page.get_by_role("tab", name="Reconstruct").click()
    page.locator("#rec-input button[aria-label='Clear']").first.click()
    wait_idle(page)
    page.locator("#rec-input input[type=file]").set_input_files(str(ROOT / "examples" / "timgm6mb-tr-808_kick.flac"))
    page.locator("#spec-output .js-plotly-plot").wait_for(timeout=60000)
    wait_idle(page)
    assert shown_errors(page) == 0
    page.close()


def test_a_link_sets_the_model_tab_seed_and_temperature(browser, server):
    page = open_page(browser, server + "?model=tiny_temporal&tab=sample&seed=7&temperature=0.8")
    page.wait_for_function("() => document.querySelector('#model-picker input').value === 'tiny_temporal'")
    assert page.locator("button[role=tab][aria-selected=true]").inner_text().strip() == "Sample"
    assert page.locator("input[aria-label^='number input for Seed']").input_value() == "7"
    assert float(page.locator("input[aria-label^='number input for Temperature']").input_value()) == 0.8
    assert in_first_screen(page, "#sample-btn")
    # the link button gives the link of what is on screen, after a change
    page.locator("input[aria-label^='number input for Seed']").fill("12")
    page.locator("input[aria-label^='number input for Seed']").press("Enter")
    page.locator("#share-btn").click()
    page.get_by_text("Link to this view (copied)").wait_for(timeout=30000)
    link = page.locator("#share-link textarea, #share-link input").first.input_value()
    assert link.startswith(server) and "model=tiny_temporal" in link and "tab=sample" in link
    assert "seed=12" in link and "temperature=0.8" in link and "prior=" not in link  # the flow: the default
    assert link in page.locator(".toast-body").first.inner_text()
    page.close()


def test_a_link_sets_the_prior_until_the_switch_is_changed_by_hand(browser, server):
    """The prior was left out of the link: a model's load set the switch (and a link that names a model loads it
    twice as the page opens)."""
    flow = "#sample-use-flow input[type=checkbox]"
    page = open_page(browser, server + "?model=tiny_single_flow&tab=sample&seed=3&prior=gaussian")
    wait_idle(page)
    assert not page.locator(flow).is_checked()
    page.locator("#share-btn").click()
    page.get_by_text("Link to this view (copied)").wait_for(timeout=30000)
    assert "prior=gaussian" in page.locator("#share-link textarea, #share-link input").first.input_value()
    page.locator(flow).check()  # by hand: the link's prior no longer holds
    choose_model(page, "tiny_temporal")
    choose_model(page, "tiny_single_flow")
    assert page.locator(flow).is_checked()
    page.close()


def test_bad_values_in_a_link_are_ignored_with_one_gentle_message(browser, server):
    page = open_page(browser, server + "?model=nope&seed=abc&temperature=9&tab=map")
    page.get_by_text("Ignored from the link").wait_for(timeout=30000)
    text = page.locator(".toast-body").first.inner_text()
    assert "model='nope'" in text and "seed='abc'" in text and "temperature='9'" in text and "tab=" not in text
    assert shown_errors(page) == 0
    assert page.locator("#model-picker input").input_value() == "tiny_single_flow"  # the default stays
    assert page.locator("button[role=tab][aria-selected=true]").inner_text().strip() == "Latent map"  # the good one
    page.locator("#latent-map path.point").first.wait_for(timeout=60000)  # a link to the map draws it
    page.close()


def test_markup_in_a_link_is_shown_as_text_not_rendered(browser, server):
    """A crafted link put a login link (or an image) into the visitor's page, in the demo's own message."""
    from urllib.parse import quote

    payload = '<a href="https://evil.example/login" id="evil">Log in again</a><img id="evil-img" src="x">'
    page = open_page(browser, server + "?model=" + quote(payload))
    page.get_by_text("Ignored from the link").wait_for(timeout=30000)
    toast = page.locator(".toast-body").first
    assert 'href="https://evil.example/login"' in toast.inner_text()  # the text as it came
    assert page.locator("#evil, #evil-img").count() == 0  # no element of it
    page.close()


def test_a_link_to_another_models_map_draws_that_models_map_and_a_model_change_redraws_it(browser, server):
    page = open_page(browser, server + "?model=tiny_temporal&tab=map")
    page.locator("#latent-map path.point").first.wait_for(timeout=60000)
    wait_idle(page)
    assert page.locator("#model-picker input").input_value() == "tiny_temporal"
    assert page.locator("#latent-map .contourlayer path").count() == 0  # a temporal model's map: no prior density
    assert "time series" in page.locator("#map-caption").inner_text()
    page.locator("#model-picker input").click()
    page.get_by_role("option", name="tiny_single_flow").click()
    page.locator("#latent-map .contourlayer path").first.wait_for(timeout=60000)  # redrawn for the flow model
    wait_idle(page)
    assert "exact log-density" in page.locator("#map-caption").inner_text()
    page.close()


def test_the_latent_map_is_shaded_by_the_prior_and_its_prior_samples_play(browser, server):
    page = open_page(browser, server)
    page.get_by_role("tab", name="Latent map").click()
    page.locator("#latent-map path.point").first.wait_for(timeout=60000)  # drawn when the tab opens
    wait_idle(page)
    assert page.locator("#latent-map .contourlayer path").count() > 0  # the prior's log-density
    legend = page.locator("#latent-map .legendtext").all_text_contents()
    assert legend[:2] == ["kick", "snare"] and legend[-1] == "prior sample"  # families by name, a discrete legend
    assert "exact log-density" in page.locator("#map-caption").inner_text()
    page.locator("#latent-map .scatterlayer .trace").last.locator("path.point").first.click(force=True)  # a sample
    page.locator("#point-audio a[download][href*='point-']").wait_for(timeout=30000)
    wait_idle(page)
    assert "prior sample · seed 0" in page.locator("#point-audio").locator("xpath=../..").inner_text()
    page.close()
