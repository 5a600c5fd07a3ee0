"""Helpers for driving pages in headless Chromium with Playwright (sync API): launching Debian's browser, fresh
contexts that never let a request leave the machine and record what went wrong (`Watch`), the dashboard's sign-in,
reading numbers off a page, screenshots, and small local HTTP servers for tests.

Imported by e2e/browser/conftest.py (the pytest fixtures) and by scripts/screenshots.py; it needs no pytest.

Why Debian's browser: Playwright's own browser download (`playwright install`) cannot be fetched on these machines,
so the browser is Debian's `chromium` package (`make browser-deps`), launched by path.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import ipaddress
import os
import re
import shutil
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Response, Route, WebSocketRoute

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("BAKEOFF_BIN") or str(REPO / ".build" / "product" / "release" / "bakeoff")

# Generous, like e2e/processes.py: the machine is shared and slow. Playwright's own default is 30 s.
TIMEOUT_MS = 60_000

# The viewports tests and screenshots use. A phone is an iPhone-12-sized screen: 390x844 CSS pixels at twice the
# density, with a mobile browser's meta-viewport handling and touch.
DEVICES: dict[str, dict] = {
    "desktop": dict(viewport={"width": 1280, "height": 900}),
    "phone": dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True),
}

# What every context gets unless a test says otherwise: the same clock zone, language and motion everywhere, so a
# date or a number renders the same on every machine and a screenshot is not caught mid-animation; service workers
# blocked, because their requests would bypass the routing that keeps the browser off the network.
CONTEXT_DEFAULTS = dict(locale="en-US", timezone_id="UTC", color_scheme="light", reduced_motion="reduce",
                        service_workers="block")

# The dashboard's sign-in contract (the dashboard follows it; sign_in below and the tests check it).
SIGN_IN_PATH = "/dashboard/sign-in"
DASHBOARD_PATH = "/dashboard"
COOKIE_NAME = "bakeoff_dashboard"
SIGN_IN_FORM = f'form[method="post" i][action="{SIGN_IN_PATH}"]'
SUBMIT = 'button:not([type]), button[type="submit"], input[type="submit"]'


def chromium_path() -> str:
    """Debian's browser: $BAKEOFF_CHROMIUM, else `chromium` on PATH (/usr/bin/chromium, Debian's launcher script)."""
    path = os.environ.get("BAKEOFF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"Chromium not found at {path}: run `make browser-deps` (Debian's chromium package) "
                           "or set BAKEOFF_CHROMIUM")
    return path


def launch_options() -> dict:
    """Options for `playwright.chromium.launch`."""
    args = [
        # A second net under the routing in Watch: the browser resolves no name but localhost, so nothing it does
        # outside a page's requests (a preconnect or DNS prefetch hint, a background fetch) can reach the network.
        # The rules apply to IP literals too, hence the loopback addresses (written this way: "EXCLUDE [::1]" does
        # not match ::1).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.*, EXCLUDE ::1",
    ]
    if os.geteuid() == 0:
        # Chromium refuses to start its sandbox as root (Playwright already passes it by default; said here so a
        # change of that default does not break the root CI).
        args.append("--no-sandbox")
    return dict(executable_path=chromium_path(), headless=True, args=args)


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(**launch_options())


def is_local(url: str) -> bool:
    """True for a URL that stays on this machine: loopback hosts (127.0.0.0/8, ::1, localhost), or data:, blob:,
    about: URLs."""
    u = urllib.parse.urlsplit(url)
    if u.scheme in ("data", "blob", "about"):
        return True
    host = (u.hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# URLs a page's DOM makes the browser fetch, resolved. Some are fetched outside the page's requests, where no route
# sees them (an icon, a preconnect or DNS-prefetch hint): Watch reads them off the DOM instead. Links a person
# follows (<a href>, rel=canonical...) are not fetches and are left out.
_REFERENCES_JS = """() => {
  const out = [];
  const add = v => { if (v) { try { out.push(new URL(v, document.baseURI).href); } catch (e) {} } };
  const fetched = new RegExp("(^|\\\\s)(icon|apple-touch-icon|mask-icon|preconnect|dns-prefetch|prefetch|preload|"
                             + "modulepreload|prerender|stylesheet|manifest)(\\\\s|$)", "i");
  document.querySelectorAll("link[href]").forEach(e => { if (fetched.test(e.rel)) add(e.getAttribute("href")); });
  document.querySelectorAll("script[src], img[src], iframe[src], frame[src], embed[src], source[src], video[src], "
                            + "audio[src], track[src], input[type=image][src]")
    .forEach(e => add(e.getAttribute("src")));
  document.querySelectorAll("video[poster]").forEach(e => add(e.getAttribute("poster")));
  document.querySelectorAll("object[data]").forEach(e => add(e.getAttribute("data")));
  document.querySelectorAll("img[srcset], source[srcset]")
    .forEach(e => e.getAttribute("srcset").split(",").forEach(s => add(s.trim().split(/\\s+/)[0])));
  return out;
}"""


def external_references(page: Page) -> list[str]:
    """URLs in `page`'s DOM that the browser would fetch (scripts, styles, images, frames, icons, preconnect and
    prefetch hints...) and that point off this machine, in document order, without repeats."""
    seen: list[str] = []
    for url in page.evaluate(_REFERENCES_JS):
        if not is_local(url) and url not in seen:
            seen.append(url)
    return seen


@dataclass
class Watch:
    """What went wrong in one browser context, recorded as it happens (every page of the context, popups too).

    - `console_errors`, `console_warnings`: {"type", "text", "url"} of console messages of those types
    - `page_errors`: uncaught exceptions in a page, as "Name: message" strings
    - `failed_requests`: {"method", "url", "failure"} of requests that got no answer (also the aborted external ones)
    - `external`: URLs of requests (and WebSockets) to any host but this machine's, each aborted before it left
    - `requests`: the URL of every request the context made, in order
    - `responses`: {"status", "url", "method"} of every answer

    Chromium fetches a page's icon and acts on preconnect/DNS-prefetch hints outside the page's requests, where no
    route sees them: the browser's resolver stops those (launch_options), and problems() reads such URLs off the
    DOM of the context's open pages (external_references), so they fail assert_clean too.
    """
    console_errors: list[dict] = field(default_factory=list)
    console_warnings: list[dict] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[dict] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    responses: list[dict] = field(default_factory=list)
    _context: BrowserContext | None = field(default=None, repr=False)

    def attach(self, context: BrowserContext) -> "Watch":
        """Routes and listens on `context` (before any page of it loads anything)."""
        self._context = context
        context.route("**/*", self._route)
        context.route_web_socket(lambda url: not is_local(url), self._route_web_socket)
        context.on("console", self._console)
        context.on("weberror", lambda e: self.page_errors.append(_error_text(e.error)))
        context.on("request", lambda r: self.requests.append(r.url))
        context.on("requestfailed", lambda r: self.failed_requests.append(
            {"method": r.method, "url": r.url, "failure": r.failure or ""}))
        context.on("response", lambda r: self.responses.append(
            {"status": r.status, "url": r.url, "method": r.request.method}))
        return self

    def _route(self, route: Route):
        url = route.request.url
        if is_local(url):
            route.fallback()  # to the network (this machine); a route a test adds later runs before this one
        else:
            self.external.append(url)
            route.abort("blockedbyclient")

    def _route_web_socket(self, ws: WebSocketRoute):
        self.external.append(ws.url)
        ws.close()  # never connected to the server: a closed socket is all the page sees

    def _console(self, msg):
        if msg.type in ("error", "warning"):
            loc = msg.location or {}
            entry = {"type": msg.type, "text": msg.text, "url": loc.get("url", "")}
            (self.console_errors if msg.type == "error" else self.console_warnings).append(entry)

    @property
    def failed_local_requests(self) -> list[dict]:
        return [r for r in self.failed_requests if is_local(r["url"])]

    @property
    def error_responses(self) -> list[dict]:
        """Answers with a status of 400 or more (not part of assert_clean: a test of an error page expects one)."""
        return [r for r in self.responses if r["status"] >= 400]

    def external_references(self) -> list[str]:
        """external_references of every open page of the context (see that function)."""
        found: list[str] = []
        for page in self._context.pages if self._context else []:
            try:
                refs = external_references(page)
            except Exception:  # a page closing or navigating right now
                continue
            found += [u for u in refs if u not in found]
        return found

    def clear(self):
        """Forgets everything recorded so far (e.g. between two pages of one context)."""
        for name in ("console_errors", "console_warnings", "page_errors", "failed_requests", "external",
                     "requests", "responses"):
            getattr(self, name).clear()

    def problems(self, ignore: list[str] | tuple[str, ...] = ()) -> list[str]:
        """One line per console error, page error, external request or reference and failed local request; lines
        matching a regular expression in `ignore` left out."""
        lines = [f"console error: {e['text']}" + (f" ({e['url']})" if e["url"] else "") for e in self.console_errors]
        lines += [f"page error: {e}" for e in self.page_errors]
        lines += [f"external request (aborted): {u}" for u in self.external]
        lines += [f"external reference in the page: {u}" for u in self.external_references() if u not in self.external]
        lines += [f"failed request: {r['method']} {r['url']}: {r['failure']}" for r in self.failed_local_requests]
        return [line for line in lines if not any(re.search(p, line) for p in ignore)]

    def assert_clean(self, ignore: list[str] | tuple[str, ...] = ()):
        """Fails listing every console error, page error, external request or reference in an open page, and
        failed local request (minus those matching a regular expression in `ignore`)."""
        problems = self.problems(ignore)
        assert not problems, "the browser saw problems:\n  " + "\n  ".join(problems)


def _error_text(error) -> str:
    name = getattr(error, "name", "") or "Error"
    return f"{name}: {getattr(error, 'message', error)}"


def new_context(browser: Browser, device: str = "desktop", **options) -> BrowserContext:
    """A fresh context (no cookies, no storage) for `device` ("desktop" or "phone"), with a `Watch` attached as
    `context.watch`; `options` override Playwright's new_context options (viewport=..., storage_state=...)."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: one of {', '.join(DEVICES)}")
    context = browser.new_context(**{**CONTEXT_DEFAULTS, **DEVICES[device], **options})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    context.watch = Watch().attach(context)
    return context


def new_page(browser: Browser, device: str = "desktop", **options) -> Page:
    """A page in a fresh context (see new_context); the context's watch is also `page.watch`."""
    context = new_context(browser, device, **options)
    page = context.new_page()
    page.watch = context.watch
    return page


# --- the dashboard's sign-in ---------------------------------------------------------------------------------------

class SignInError(AssertionError):
    """Signing in did not end on the dashboard; the message says where it ended and what the page said."""


def sign_in(page: Page, base_url: str, key: str, check: bool = True) -> Response:
    """Signs in to the dashboard at `base_url` (e.g. http://127.0.0.1:PORT) with `key`, as a person would: opens
    /dashboard, expects the sign-in form (<form method="post" action="/dashboard/sign-in"> with a password input
    #key named "key" and a submit button), types the key, submits.

    Returns the response the submit led to: after a right key, the dashboard (200) reached by a 303 redirect
    (`response.request.redirected_from.response().status` is the POST's 303); after a wrong key, the form again
    (401) with an element of class "error". With `check` (the default) anything but a 200 at /dashboard with the
    `bakeoff_dashboard` cookie set raises SignInError; with check=False the caller judges.
    """
    base = base_url.rstrip("/")
    first = page.goto(base + DASHBOARD_PATH)
    form = page.locator(SIGN_IN_FORM)
    if form.count() == 0:
        status = first.status if first else "no response"
        raise SignInError(f"no sign-in form at {base}{DASHBOARD_PATH} (status {status}; signed in already, or the "
                          f"page lacks {SIGN_IN_FORM}): {_page_text(page)}")
    key_input = form.locator('input#key[name="key"][type="password"]')
    if key_input.count() != 1:
        raise SignInError(f"the sign-in form has no password input #key named \"key\": {form.inner_html()[:500]}")
    submit = form.locator(SUBMIT)
    if submit.count() == 0:
        raise SignInError(f"the sign-in form has no submit button: {form.inner_html()[:500]}")
    key_input.fill(key)
    with page.expect_navigation() as navigation:
        submit.first.click()
    response = navigation.value
    if check:
        path = urllib.parse.urlsplit(page.url).path
        if response is None or response.status != 200 or path != DASHBOARD_PATH:
            status = response.status if response else "no response"
            errors = page.locator(".error")
            said = errors.first.inner_text() if errors.count() else _page_text(page)
            raise SignInError(f"sign-in at {base} ended at {page.url} with status {status}: {said}")
        if cookie_of(page.context, COOKIE_NAME) is None:
            raise SignInError(f"sign-in at {base} reached the dashboard but set no {COOKIE_NAME} cookie")
    return response


def _page_text(page: Page, limit: int = 300) -> str:
    try:
        text = " ".join(page.locator("body").inner_text(timeout=5_000).split())
    except Exception:
        text = ""
    return text[:limit] or "(an empty page)"


def cookie_of(context: BrowserContext, name: str) -> dict | None:
    """The context's cookie `name` as Playwright gives it ({"name", "value", "domain", "path", "expires",
    "httpOnly", "secure", "sameSite": "Strict"|"Lax"|"None"}), or None."""
    for cookie in context.cookies():
        if cookie["name"] == name:
            return cookie
    return None


def eventually(page: Page, predicate, timeout_ms: float = TIMEOUT_MS, what: str = "the condition"):
    """Waits until `predicate()` (Python, e.g. over page.watch) is true, letting Playwright deliver the browser's
    events meanwhile; returns its value, or fails saying `what` did not happen. For what arrives as an event after
    the action that caused it (a failed request, a console message): never sleep a fixed time."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_ms / 1000:.0f} s")
        page.wait_for_timeout(50)


# --- reading a page ------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_number(text: str) -> float:
    """A number as a page shows it: "1,234", "-3.5%", "+0.8 pp", "−2" (a minus sign), "12 ms" -> float; the unit
    after the number is dropped. Raises ValueError for text that is not one number."""
    t = text.strip().replace("\u2212", "-").replace("\u2009", "").replace("\u00a0", " ").replace(",", "")
    m = re.match(r"^([+-]?[\d.]+(?:[eE][+-]?\d+)?)\s*(%|[A-Za-z]+)?$", t)
    if not m or not _NUMBER.match(m.group(1)):
        raise ValueError(f"not a number: {text!r}")
    return float(m.group(1))


def numbers_of(page: Page, selector: str) -> list[float]:
    """The numbers of every element matching `selector`, in document order: its data-value attribute when it has
    one (the exact value behind a rounded display), else its text (see parse_number)."""
    raw = page.eval_on_selector_all(
        selector, "els => els.map(e => e.hasAttribute('data-value') ? e.getAttribute('data-value') : e.textContent)")
    out = []
    for i, text in enumerate(raw):
        try:
            out.append(parse_number(text or ""))
        except ValueError:
            raise ValueError(f"{selector} [{i}]: not a number: {text!r}") from None
    return out


def screenshot(page: Page, path: str | Path, full_page: bool = True) -> Path:
    """Saves a PNG of `page` at `path` (folders made), one image pixel per CSS pixel (a phone's is 390 wide, not
    780), animations stopped and the caret hidden. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page, scale="css", animations="disabled", caret="hide")
    return path


def png_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of a PNG file, from its header."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


# --- small local servers for tests ---------------------------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler that does not log every request to stderr."""

    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def serve_http(handler_class=QuietHandler, directory: str | Path | None = None):
    """Runs an http.server on 127.0.0.1 at a free port in a thread; yields its base URL (http://127.0.0.1:PORT)
    and always stops it. `directory` is given to handlers that take one (SimpleHTTPRequestHandler's)."""
    handler = functools.partial(handler_class, directory=str(directory)) if directory is not None else handler_class
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="serve_http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
