"""The page on a projector (a real browser at 1280x720): what must be on the first screen of each tab, one error for
a missing input, results cleared when the model changes, Plotly figures that follow the dark theme, sliders that
decode on keyboard changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from .screenshots import CHROMIUM, release_slider, wait_idle

ROOT = Path(__file__).resolve().parents[2]
W, H = 1280, 720
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no browser at {CHROMIUM} (apt-get install chromium)")  # fmt: skip


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": W, "height": H})
    page.goto(url)
    page.get_by_role("tab", name="Reconstruct").wait_for()
    wait_idle(page)
    return page


def in_first_screen(page, selector: str) -> bool:
    """The element is shown and lies wholly within the first 1280x720 screen (the page is not scrolled)."""
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["width"] > 50 and box["y"] >= 0 and box["y"] + box["height"] <= H and \
        box["x"] + box["width"] <= W  # fmt: skip


def choose_model(page, label: str) -> None:
    page.locator("#model-picker input").click()
    page.get_by_role("option", name=label).click()
    wait_idle(page)


def test_each_tab_shows_its_button_and_main_figure_on_the_first_screen(browser, server):
    page = open_page(browser, server)
    assert page.evaluate("window.scrollY") == 0
    assert in_first_screen(page, "#rec-btn") and in_first_screen(page, "#spec-input") and \
        in_first_screen(page, "#spec-output") and in_first_screen(page, "#ab-toggle")  # fmt: skip
    assert not page.locator("#model-card").first.evaluate("e => e.querySelector('.open') !== null")  # collapsed
    card = page.locator("#model-card").first.bounding_box()
    assert card["y"] > page.locator("#spec-input").first.bounding_box()["y"]  # below the tabs' content
    page.get_by_role("tab", name="Sample").click()
    page.get_by_role("button", name="Sample", exact=True).click()
    page.locator(".sample-fig .js-plotly-plot").first.wait_for(timeout=60000)
    assert in_first_screen(page, "#sample-btn") and in_first_screen(page, ".sample-fig")
    titles = page.locator(".sample-fig .gtitle").all_text_contents()
    assert titles[0].startswith("Sample 1 · seed 0 · peak") and titles[1].startswith("Sample 2 · seed 1 ·")
    page.get_by_role("tab", name="Interpolate").click()
    assert in_first_screen(page, "#path-btn") and in_first_screen(page, "#path-fig")
    page.get_by_role("tab", name="Latent map").click()
    assert in_first_screen(page, "#map-btn")
    box = page.locator("#latent-map").bounding_box()
    assert box["y"] < H / 2 and box["y"] + 0.75 * box["height"] <= H  # most of the map
    page.get_by_role("tab", name="Live").click()
    assert all(in_first_screen(page, s) for s in ("#live-mic", "#live-play", "#live-output", "#live-model"))
    page.close()


def test_every_button_of_the_interpolate_tabs_players_lies_inside_its_player(browser, server):
    """At 1280 px the path's step players are about 200 px wide: the buttons beside play were pushed out of them (the
    skip buttons, of little use in a one-second sound, are hidden there)."""
    page = open_page(browser, server)
    page.get_by_role("tab", name="Interpolate").click()
    page.locator("#path-btn").click()
    page.get_by_text("Step 5").wait_for(timeout=60000)
    wait_idle(page)
    outside = page.evaluate("""() => [...document.querySelectorAll('.compact-player')].filter((p) => p.offsetParent)
        .flatMap((p) => { const box = p.getBoundingClientRect();
            return [...p.querySelectorAll('button')].filter((b) => b.offsetParent).map((b) => b.getBoundingClientRect())
                .filter((b) => b.width > 0 && (b.left < box.left - 1 || b.right > box.right + 1))
                .map((b) => `${b.left}-${b.right} outside ${box.left}-${box.right}`); })""")
    players = page.locator(".compact-player").evaluate_all("ps => ps.filter((p) => p.offsetParent).length")
    assert players >= 7 and outside == []  # Sound A and B, five steps (the position's is drawn when it is moved)
    page.close()


# the boxes of a figure's toolbar (Plotly's modebar, shown while the pointer is over the figure) that cover one of its
# titles: the figure's own and its subplots'
TOOLBAR_OVER_TITLES = """(figure) => {
    const toolbar = figure.querySelector('.modebar').getBoundingClientRect();
    return [...figure.querySelectorAll('.gtitle, .annotation-text')].map((t) => [t.textContent, t.getBoundingClientRect()])
        .filter(([, b]) => b.width > 0 && b.right > toolbar.left && b.left < toolbar.right && b.bottom > toolbar.top &&
                b.top < toolbar.bottom).map(([text]) => text); }"""


def test_a_figures_toolbar_leaves_its_titles_readable(browser, server):
    """At 1280 px the position's figure is about 410 px wide, its title ("Position 0.30 (prior) · peak -19 dBFS")
    most of that: Plotly's toolbar, lying along the top while the figure is pointed at, covered it."""
    page = open_page(browser, server)
    page.get_by_role("tab", name="Interpolate").click()
    page.locator("#path-btn").click()
    page.get_by_text("Step 5").wait_for(timeout=60000)
    wait_idle(page)
    release_slider(page, "Position A", 0.3)
    page.locator("#pos-fig .gtitle").wait_for(timeout=60000)
    wait_idle(page)
    for figure in ("#path-fig", "#pos-fig"):
        page.locator(f"{figure} .js-plotly-plot").hover()
        page.locator(f"{figure} .modebar").wait_for(state="visible")
        titles = page.locator(f"{figure} .gtitle, {figure} .annotation-text").all_text_contents()
        assert titles and page.locator(f"{figure} .js-plotly-plot").evaluate(TOOLBAR_OVER_TITLES) == [], figure
    assert page.locator("#pos-fig .gtitle").text_content().startswith("Position 0.30")
    page.close()


def shown_errors(page) -> int:
    """Elements that show the word "Error" (Gradio's screen-reader announcement, .sr-only, is not shown)."""
    return page.evaluate("""() => [...document.querySelectorAll('body *')].filter((e) =>
        e.children.length === 0 && e.textContent.trim() === 'Error' && !e.closest('.sr-only')).length""")


def test_a_missing_input_gives_one_error_and_no_error_on_the_outputs(browser, server):
    page = open_page(browser, server)
    page.get_by_role("button", name="Reconstruct", exact=True).click()
    page.get_by_text("Upload or record a sound first").wait_for(timeout=30000)
    wait_idle(page)
    assert page.get_by_text("Upload or record a sound first").count() == 1
    assert page.get_by_text("Error", exact=True).count() == 1  # the message's title, no "Error" on every output
    page.locator(".toast-close").first.click()
    # the closed toast fades out: counted while still on screen, it would read as a second "Error"
    page.get_by_text("Upload or record a sound first").wait_for(state="detached", timeout=30000)
    page.get_by_role("tab", name="Interpolate").click()
    page.locator("#sound-b button[aria-label='Clear']").first.click()
    page.get_by_role("button", name="Render the path").click()
    page.get_by_text("Choose a sound for source B").wait_for(timeout=30000)
    wait_idle(page)
    assert page.get_by_text("Error", exact=True).count() == 1
    page.locator(".toast-close").first.click()
    page.get_by_text("Choose a sound for source B").wait_for(state="detached", timeout=30000)
    page.get_by_role("tab", name="Live").click()  # no file to stream: the message alone (it had marked both outputs)
    page.locator("#live-play").click()
    page.get_by_text("Upload or record a sound to stream first").wait_for(timeout=30000)
    wait_idle(page)
    assert shown_errors(page) == 1
    page.close()


def test_results_are_cleared_when_the_model_changes(browser, server):
    page = open_page(browser, server)
    page.locator("input[type=file]").first.set_input_files(str(ROOT / "examples" / "timgm6mb-tr-808_kick.flac"))
    page.locator("#spec-output .js-plotly-plot").wait_for(timeout=60000)
    wait_idle(page)
    assert page.locator("#typicality").inner_text().startswith("Typicality:")
    choose_model(page, "tiny_temporal")
    page.locator("#spec-output .js-plotly-plot").wait_for(state="detached", timeout=30000)
    assert page.locator("#rec-metrics").inner_text().strip() == "Metrics appear here."
    assert page.locator("#rec-output a[download]").count() == 0
    assert page.get_by_text("drum_loop.flac").first.is_visible()  # a temporal model's examples: the loop
    assert not page.get_by_text("musescore-standard_tom.flac").first.is_visible()  # the one-shots are for per-clip models
    page.close()


def test_a_result_still_running_when_the_model_changes_does_not_land(browser, served_demo, tmp_path):
    """A search of the latent over 6 s of a loop through the temporal model runs for seconds; the model changes
    meanwhile (which clears the outputs at once): its result, of the model chosen before, is dropped when it ends,
    and the outputs stay cleared."""
    import numpy as np
    import soundfile as sf

    loop, sr = sf.read(ROOT / "examples" / "drum_loop.flac", dtype="float32")
    sf.write(tmp_path / "six_seconds.wav", np.resize(loop, (6 * sr, *loop.shape[1:])), sr)  # the search's limit
    url, demo = served_demo
    page = open_page(browser, url)
    choose_model(page, "tiny_temporal")
    page.locator("#rec-refine input").check()
    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "six_seconds.wav"))
    page.wait_for_function("() => !!document.querySelector('#spec-output .wrap.pending, #spec-output .eta-bar')")
    choose_model(page, "tiny_single_flow")
    gate = demo.vaedemo_state.gate
    assert gate.in_flight() > 0  # the search still runs (about 3 s here): the test would prove nothing otherwise
    for _ in range(600):  # until the server has answered it
        if gate.in_flight() == 0:
            break
        page.wait_for_timeout(100)
    page.wait_for_timeout(1000)  # its answer has reached the page
    assert page.locator("#spec-output .js-plotly-plot").count() == 0
    assert page.locator("#rec-metrics").inner_text().strip() == "Metrics appear here."
    assert page.locator("#rec-output a[download]").count() == 0
    page.close()


def test_figures_follow_the_dark_theme_and_sliders_decode_on_arrow_keys(browser, server):
    page = open_page(browser, server + "?__theme=dark")
    page.get_by_role("tab", name="Sample").click()
    page.get_by_role("button", name="Sample", exact=True).click()
    page.locator(".sample-fig .js-plotly-plot").first.wait_for(timeout=60000)
    wait_idle(page)
    paper = page.locator(".sample-fig .main-svg").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert paper in ("rgba(0, 0, 0, 0)", "transparent")  # the figure shows the page's background
    behind = page.evaluate("""() => { let e = document.querySelector('.sample-fig');
        while (e && ['rgba(0, 0, 0, 0)', 'transparent'].includes(getComputedStyle(e).backgroundColor)) e = e.parentElement;
        const [r, g, b] = getComputedStyle(e || document.body).backgroundColor.match(/\\d+/g).map(Number);
        return r + g + b; }""")  # fmt: skip
    assert behind < 3 * 80  # a dark background
    text = page.locator(".sample-fig .main-svg text").first.evaluate("e => getComputedStyle(e).fill")
    assert sum(map(int, text[text.index("(") + 1 : -1].split(",")[:3])) > 3 * 150  # light text
    slider = page.locator("input[type=range][aria-label^='range slider for Direction 1']").first
    slider.focus()
    slider.press("ArrowRight")  # the keyboard, no mouse release
    page.locator("#direction-fig .js-plotly-plot").wait_for(timeout=60000)
    wait_idle(page)
    assert "+0.1" in page.locator("#direction-fig .gtitle").text_content()
    page.close()
