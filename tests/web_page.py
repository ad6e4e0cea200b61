"""The web page in a real browser, for the e2e tests of the page: headless Chromium
(/usr/bin/chromium, Debian's) driven by playwright, a page that fails its test on any JavaScript
error, asking a question as a user does, and a whole-page screenshot."""
from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.system_deps import require_system

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
FINISHED = ':is([data-state="done"], [data-state="abstained"], [data-state="error"], ' \
           '[data-state="stopped"])'


@pytest.fixture(scope="module")
def browser():
    require_system("Chromium", Path(CHROMIUM).exists(), "apt-get install -y chromium")
    require_system("playwright", importlib.util.find_spec("playwright") is not None,
                   "pip install -e '.[dev]'")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def open_page(browser, url: str, **context_options):
    """A page of a fresh browser context at `url`/; fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1000, "height": 800}, **context_options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        response = page.goto(f"{url}/")
        assert response is not None and response.status == 200, response and response.status
        yield page
        assert errors == [], errors
    finally:
        context.close()


def turn(n: int) -> str:
    """The selector of the thread's n-th turn (1 is the first)."""
    return f"#thread > .turn:nth-child({n})"


def ask_in_page(page, question: str) -> str:
    """Type the question, press Enter, wait for the answer (the thread's new turn) to finish;
    its final state."""
    new = turn(page.locator("#thread > .turn").count() + 1)
    page.get_by_label("Question").fill(question)  # the textarea has a real label
    page.get_by_label("Question").press("Enter")
    page.wait_for_selector(f"{new} .answer{FINISHED}", state="attached", timeout=60_000)
    state = page.get_attribute(f"{new} .answer", "data-state")
    assert state != "error", page.locator(f"{new} .turn-error").inner_text()
    return state


def screenshot(page, path: Path) -> None:
    """The whole page as a PNG at `path`. The question box sticks to the bottom of the window,
    which a full-page capture would show in the middle of the thread: for the capture, it
    stays where it is in the page (after the thread), and goes back to sticking after."""
    path.parent.mkdir(exist_ok=True)
    path.unlink(missing_ok=True)
    page.eval_on_selector("#ask-form", "node => { node.style.position = 'static'; }")
    page.screenshot(path=str(path), full_page=True)
    page.eval_on_selector("#ask-form", "node => { node.style.position = ''; }")
