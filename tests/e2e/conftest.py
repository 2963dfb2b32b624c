"""A demo server for the end-to-end tests: tiny bundles, launched in this process on a free port."""

from __future__ import annotations

import pytest

from vaedemo.demo.bench import free_port

from .bundles import tiny_bundles
from .screenshots import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(autouse=True, scope="module")
def _every_module_on_one_torch_thread(one_torch_thread):
    """Every end-to-end module runs as app.py does (the fixture is in tests/conftest.py)."""


@pytest.fixture(scope="session")
def e2e_bundles(tmp_path_factory):
    return tiny_bundles(tmp_path_factory.mktemp("e2e-bundles"), ("tiny_single_flow", "tiny_temporal"))


@pytest.fixture(scope="session")
def served_demo(e2e_bundles, tmp_path_factory):
    """(URL, Blocks) of a running demo: default model tiny_single_flow, tiny_temporal selectable."""
    from vaedemo.demo import create, launch

    empty = tmp_path_factory.mktemp("no-checkpoints")  # the test does not depend on what checkpoints/ holds
    demo = create([str(p) for p in e2e_bundles.values()], max_seconds=10.0, checkpoint_dir=empty)
    port = free_port()
    launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/", demo
    demo.close()


@pytest.fixture(scope="session")
def server(served_demo):
    """URL of the running demo (:func:`served_demo`)."""
    return served_demo[0]


@pytest.fixture(scope="module")
def browser():
    """The system chromium, one per test module (the modules that use it skip when it is not installed)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)  # never a downloaded browser
        yield browser
        browser.close()
