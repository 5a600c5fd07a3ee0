"""Fixtures for tests that drive pages in headless Chromium (helpers in browser_helpers.py).

- `browser` (session): Debian's chromium under Playwright's sync API, headless; launched once, closed at the end.
- `page`: a page in a fresh context (no cookies), 1280x900, with `page.watch` (a browser_helpers.Watch) recording
  console errors and warnings, uncaught page errors, failed requests and every request; every request to a host
  that is not this machine is aborted and listed in `watch.external`. `@pytest.mark.parametrize("page",
  ["desktop", "phone"], indirect=True)` runs a test on both.
- `phone_page`: the same at 390x844, device scale factor 2, mobile, touch.
- `watch`: `page.watch`.
- `new_page(device="desktop", **context_options)`: more pages, each in its own fresh context (two users, or a
  desktop and a phone in one test).
- `procs`, `module_procs` (from e2e/processes.py): servers started in a test, always stopped.

When a test fails, each of its pages is saved as a PNG under out/e2e-browser/ (the path is printed).
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import sync_playwright

from .browser_helpers import REPO, launch, new_page as _new_page
from processes import module_procs, procs  # noqa: F401  (the fixtures every e2e suite shares)

FAILURE_SHOTS = REPO / "out" / "e2e-browser"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item, so that a fixture's teardown knows whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright):
    try:
        b = launch(playwright)
    except RuntimeError as e:  # no chromium: one clear line, not an error per test
        pytest.exit(str(e), returncode=2)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def new_page(browser, request):
    """A factory: new_page(device="desktop"|"phone", **context_options) -> a page in a fresh context, with
    page.watch. Every context it made is closed after the test (saved as a PNG first if the test failed)."""
    pages = []

    def make(device: str = "desktop", **options):
        page = _new_page(browser, device, **options)
        pages.append(page)
        return page

    yield make
    report = getattr(request.node, "rep_call", None)
    for i, page in enumerate(pages):
        if report is not None and report.failed and not page.is_closed():
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
            path = FAILURE_SHOTS / f"{name}-{i}.png"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(path), full_page=True, timeout=15_000)
                print(f"the page at failure ({page.url}): {path}")
            except Exception as e:
                print(f"no screenshot of the page at failure: {e}")
        try:
            page.context.close()
        except Exception:
            pass


@pytest.fixture
def page(new_page, request):
    """A page in a fresh context: "desktop" (1280x900) unless parametrized indirectly with "phone"."""
    return new_page(getattr(request, "param", "desktop"))


@pytest.fixture
def phone_page(new_page):
    return new_page("phone")


@pytest.fixture
def watch(page):
    return page.watch
