"""The browser harness itself, without the dashboard: the watch sees console errors, uncaught errors, failed and
external requests (and aborts the external ones); sign_in follows the dashboard's sign-in contract against a fake
server written here; scripts/screenshots.py signs in, saves both sizes and fails loudly.
"""
from __future__ import annotations

import html
import secrets
import subprocess
import sys
import threading
import urllib.parse

import pytest

from .browser_helpers import (COOKIE_NAME, REPO, SIGN_IN_FORM, QuietHandler, SignInError, cookie_of, eventually,
                              external_references, is_local, numbers_of, parse_number, png_size, screenshot, serve_http,
                              sign_in)
from processes import closed_port

# --- a static site: one page per thing the watch must see -----------------------------------------------------------

PAGES = {
    "clean.html": """<!doctype html><title>clean</title>
        <h1>All fine</h1> <a href="https://example.com/docs">a link is not a request</a>
        <p><span class="n" data-value="0.0734">7.3%</span> <span class="n">1,234</span>
           <span class="n">&minus;2.5 pp</span></p>
        <script>console.log("a log line is not a problem"); console.info("nor is this");</script>""",
    "console-error.html": """<!doctype html><title>console</title>
        <script>console.error("boom"); console.warn("careful");</script>""",
    "throws.html": """<!doctype html><title>throws</title>
        <script>throw new Error("kaboom");</script>""",
    "external.html": """<!doctype html><title>external</title>
        <link rel="stylesheet" href="https://fonts.googleapis.com/css">
        <script src="http://example.com/x.js"></script>
        <p>still here</p>""",
    "hints.html": """<!doctype html><title>hints</title>
        <link rel="icon" href="https://cdn.example.net/favicon.ico">
        <link rel="preconnect" href="https://fonts.gstatic.com">
        <link rel="canonical" href="https://example.com/hints">
        <p>hints</p>""",
    "websocket.html": """<!doctype html><title>ws</title>
        <script>window.wsEnd = new Promise(r => { const ws = new WebSocket("wss://example.com/socket");
                ws.onclose = () => r("closed"); ws.onerror = () => r("error"); });</script>""",
    "tall.html": """<!doctype html><title>tall</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <div style="height:3000px;background:linear-gradient(#fff,#48c)">tall</div>""",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The static pages above, served by Python's http.server on a free port of 127.0.0.1."""
    root = tmp_path_factory.mktemp("site")
    for name, text in PAGES.items():
        (root / name).write_text(text)
    with serve_http(QuietHandler, directory=root) as base:
        yield base


def test_a_clean_page_passes(page, site):
    response = page.goto(f"{site}/clean.html")
    assert response.status == 200
    assert page.locator("h1").inner_text() == "All fine"
    page.watch.assert_clean()
    assert page.watch.external == []
    assert page.watch.requests == [f"{site}/clean.html"]
    assert page.viewport_size == {"width": 1280, "height": 900}
    # data-value when there is one (the exact value behind the rounded text), else the text
    assert numbers_of(page, ".n") == [0.0734, 1234.0, -2.5]
    assert numbers_of(page, ".none") == []


def test_a_console_error_and_warning_are_recorded(page, watch, site):
    page.goto(f"{site}/console-error.html")
    assert [e["text"] for e in watch.console_errors] == ["boom"]
    assert watch.console_errors[0]["url"] == f"{site}/console-error.html"
    assert [e["text"] for e in watch.console_warnings] == ["careful"]
    with pytest.raises(AssertionError, match="console error: boom"):
        watch.assert_clean()
    watch.assert_clean(ignore=[r"console error: boom"])  # a test that expects one says so


def test_an_uncaught_error_is_recorded(page, site):
    page.goto(f"{site}/throws.html")
    assert len(page.watch.page_errors) == 1 and "kaboom" in page.watch.page_errors[0]
    with pytest.raises(AssertionError, match="page error: .*kaboom"):
        page.watch.assert_clean()


def test_requests_to_other_hosts_are_aborted_and_listed(page, site):
    page.goto(f"{site}/external.html")
    assert page.locator("p").inner_text() == "still here"
    watch = page.watch
    assert sorted(watch.external) == ["http://example.com/x.js", "https://fonts.googleapis.com/css"]
    # aborted by the route, before any name was looked up (a failed lookup would be ERR_NAME_NOT_RESOLVED)
    # (Chromium says "net::ERR_BLOCKED_BY_CLIENT.Inspector": blocked by the DevTools client, Playwright)
    failures = {r["url"]: r["failure"].split(".")[0] for r in watch.failed_requests}
    assert failures == {"http://example.com/x.js": "net::ERR_BLOCKED_BY_CLIENT",
                        "https://fonts.googleapis.com/css": "net::ERR_BLOCKED_BY_CLIENT"}
    assert watch.failed_local_requests == []
    with pytest.raises(AssertionError) as raised:
        watch.assert_clean()
    assert "external request (aborted): http://example.com/x.js" in str(raised.value)
    assert "external request (aborted): https://fonts.googleapis.com/css" in str(raised.value)


def test_an_icon_or_a_preconnect_to_another_host_fails_assert_clean(page, site):
    """Chromium fetches these outside the page's requests (no route sees them; its resolver stops them): the watch
    reads them off the DOM."""
    page.goto(f"{site}/hints.html")
    assert external_references(page) == ["https://cdn.example.net/favicon.ico", "https://fonts.gstatic.com/"]
    with pytest.raises(AssertionError) as raised:
        page.watch.assert_clean()
    assert "external reference in the page: https://cdn.example.net/favicon.ico" in str(raised.value)
    assert "external reference in the page: https://fonts.gstatic.com/" in str(raised.value)
    assert "canonical" not in str(raised.value) and "example.com/hints" not in str(raised.value)


def test_a_websocket_to_another_host_is_closed_and_listed(page, site):
    page.goto(f"{site}/websocket.html")
    assert page.evaluate("window.wsEnd") in ("closed", "error")
    assert page.watch.external == ["wss://example.com/socket"]


def test_fetches_to_other_hosts_and_to_a_closed_local_port_are_caught(page, site):
    page.goto(f"{site}/clean.html")
    port = closed_port()
    results = page.evaluate("""async (port) => {
        const out = [];
        for (const url of ["https://api.example.org/v1/x", `http://127.0.0.1:${port}/nothing`, "/clean.html"]) {
            try { out.push((await fetch(url)).status); } catch (e) { out.push("failed"); }
        }
        return out; }""", port)
    assert results == ["failed", "failed", 200]
    eventually(page, lambda: page.watch.failed_local_requests, what="the failed local request's event")
    assert page.watch.external == ["https://api.example.org/v1/x"]
    assert [r["url"] for r in page.watch.failed_local_requests] == [f"http://127.0.0.1:{port}/nothing"]
    with pytest.raises(AssertionError, match=f"failed request: GET http://127.0.0.1:{port}/nothing"):
        page.watch.assert_clean(ignore=["external request", "console error"])


def test_an_error_status_is_in_responses_and_in_the_console(page, site):
    page.goto(f"{site}/clean.html")
    assert page.evaluate("fetch('/missing.js').then(r => r.status)") == 404
    eventually(page, lambda: page.watch.error_responses and page.watch.console_errors, what="the 404's events")
    assert [(r["status"], r["url"]) for r in page.watch.error_responses] == [(404, f"{site}/missing.js")]
    assert any("404" in e["text"] for e in page.watch.console_errors)


def test_the_phone_page(phone_page, site):
    phone_page.goto(f"{site}/tall.html")
    assert phone_page.evaluate("[innerWidth, innerHeight, devicePixelRatio, matchMedia('(pointer: coarse)').matches]") \
        == [390, 844, 2, True]
    phone_page.watch.assert_clean()


@pytest.mark.parametrize("page", ["desktop", "phone"], indirect=True)
def test_page_parametrized_by_device(page, site, tmp_path):
    page.goto(f"{site}/tall.html")
    width = page.viewport_size["width"]
    assert width in (1280, 390)
    shot = screenshot(page, tmp_path / "deep" / "tall.png")
    w, h = png_size(shot)
    assert w == width and h >= 3000  # full page, one pixel per CSS pixel
    w, h = png_size(screenshot(page, tmp_path / "top.png", full_page=False))
    assert (w, h) == (page.viewport_size["width"], page.viewport_size["height"])


def test_each_page_has_a_fresh_context(new_page, site):
    a, b = new_page(), new_page("phone")
    assert a.context is not b.context and a.watch is not b.watch
    a.goto(f"{site}/console-error.html")
    b.goto(f"{site}/clean.html")
    assert a.watch.console_errors and not b.watch.console_errors


def test_is_local():
    for url in ["http://127.0.0.1:8080/x", "http://localhost/", "http://[::1]:9/", "http://127.0.0.2/",
                "data:text/plain,hi", "blob:http://127.0.0.1:1/abc", "about:blank", "ws://127.0.0.1:5/s"]:
        assert is_local(url), url
    for url in ["http://example.com/", "https://fonts.googleapis.com/css", "http://10.0.0.1/", "file:///etc/passwd",
                "http://127.0.0.1.example.com/", "wss://example.com/s", "http://0.0.0.0:80/"]:
        assert not is_local(url), url


def test_parse_number():
    assert parse_number("1,234") == 1234
    assert parse_number(" -3.5% ") == -3.5
    assert parse_number("\u22122.5 pp") == -2.5
    assert parse_number("+0.8") == 0.8
    assert parse_number("12 ms") == 12
    assert parse_number("1e-3") == 0.001
    for bad in ["", "n/a", "1.2.3", "3 to 4", "."]:
        with pytest.raises(ValueError):
            parse_number(bad)


# --- a fake dashboard that follows the sign-in contract -------------------------------------------------------------

KEY = "dashboard-key-" + "x" * 16


def form_page(error: str = "") -> str:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html><title>Sign in</title>{message}
        <form method="post" action="/dashboard/sign-in">
          <label for="key">Key</label> <input type="password" id="key" name="key" autocomplete="current-password">
          <button type="submit">Sign in</button>
        </form>"""


def dashboard_page(title: str, rows: int = 3) -> str:
    body = "".join(f'<tr><td>v{i}</td><td class="lift" data-value="{i / 100}">{i}%</td></tr>' for i in range(rows))
    return f"""<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
        <h1>{title}</h1><table>{body}</table>"""


class FakeDashboard(QuietHandler):
    """/dashboard: the form, or the dashboard with the cookie; POST /dashboard/sign-in: 303 and the cookie, or 401
    and the form with an error; more pages for the screenshot script (one broken, one noisy)."""

    token = secrets.token_hex(16)
    sign_ins: list[str] = []
    lock = threading.Lock()

    def signed_in(self) -> bool:
        cookies = [c.strip() for c in (self.headers.get("Cookie") or "").split(";")]
        return f"{COOKIE_NAME}={self.token}" in cookies

    def reply(self, status: int, body: str, headers: dict | None = None):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/favicon.ico":
            return self.reply(204, "")
        if not path.startswith("/dashboard"):
            return self.reply(404, "not found")
        if not self.signed_in():
            return self.reply(200, form_page())
        if path == "/dashboard":
            return self.reply(200, dashboard_page("Experiments"))
        if path == "/dashboard/experiments/support":
            return self.reply(200, dashboard_page("support", rows=120))
        if path == "/dashboard/broken":
            return self.reply(500, "<!doctype html><title>oops</title><p>internal error</p>")
        if path == "/dashboard/noisy":
            return self.reply(200, "<!doctype html><title>noisy</title><script>console.error('chart failed')</script>")
        return self.reply(404, "<!doctype html><title>404</title><p>no such page</p>")

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        if path != "/dashboard/sign-in":
            return self.reply(404, "not found")
        key = (form.get("key") or [""])[0]
        with self.lock:
            self.sign_ins.append(key)
        if secrets.compare_digest(key, KEY):
            cookie = f"{COOKIE_NAME}={self.token}; Path=/dashboard; HttpOnly; SameSite=Strict"
            return self.reply(303, "", {"Location": "/dashboard", "Set-Cookie": cookie})
        return self.reply(401, form_page("That key is not right."))


@pytest.fixture(scope="module")
def dashboard():
    with serve_http(FakeDashboard) as base:
        yield base


def test_sign_in_with_the_right_key(page, dashboard):
    response = sign_in(page, dashboard, KEY)
    assert response.status == 200 and page.url == f"{dashboard}/dashboard"
    posted = response.request.redirected_from
    assert posted is not None and posted.method == "POST" and posted.url == f"{dashboard}/dashboard/sign-in"
    assert posted.response().status == 303
    assert FakeDashboard.sign_ins[-1] == KEY
    cookie = cookie_of(page.context, COOKIE_NAME)
    assert cookie["value"] == FakeDashboard.token
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert COOKIE_NAME not in page.evaluate("document.cookie")  # HttpOnly: no script reads it
    assert numbers_of(page, ".lift") == [0.0, 0.01, 0.02]
    page.watch.assert_clean()
    # signed in already: no form to fill, said plainly
    with pytest.raises(SignInError, match="no sign-in form"):
        sign_in(page, dashboard, KEY)


def test_sign_in_with_a_wrong_key(page, dashboard):
    response = sign_in(page, dashboard, "not-the-key", check=False)
    assert response.status == 401
    assert page.locator(".error").inner_text() == "That key is not right."
    assert page.locator(SIGN_IN_FORM).count() == 1
    assert cookie_of(page.context, COOKIE_NAME) is None
    with pytest.raises(SignInError, match="status 401: That key is not right."):
        sign_in(page, dashboard, "still-not-the-key")
    # Chromium logs every error status, the document's too, as a console error: a test of an error page says so
    assert [e["text"] for e in page.watch.console_errors] == \
        ["Failed to load resource: the server responded with a status of 401 (Unauthorized)"] * 2
    page.watch.assert_clean(ignore=[r"status of 401"])


def test_sign_in_on_a_phone(phone_page, dashboard):
    sign_in(phone_page, dashboard, KEY)
    assert phone_page.locator("h1").inner_text() == "Experiments"
    phone_page.watch.assert_clean()


def test_sign_in_needs_the_form(page, site):
    with pytest.raises(SignInError, match="no sign-in form"):
        sign_in(page, site, KEY)  # a server without a dashboard: 404


# --- scripts/screenshots.py -----------------------------------------------------------------------------------------

def run_screenshots(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "screenshots.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_screenshots_of_two_pages(dashboard, tmp_path):
    r = run_screenshots("--base", dashboard, "--key", KEY, "--out", str(tmp_path / "shots"),
                        "overview=/dashboard", "experiment=/dashboard/experiments/support")
    assert r.returncode == 0, r.stderr
    sizes = {p.name: png_size(p) for p in (tmp_path / "shots").iterdir()}
    assert sorted(sizes) == ["experiment-desktop.png", "experiment-phone.png", "overview-desktop.png",
                             "overview-phone.png"]
    assert sizes["overview-desktop.png"][0] == 1280 and sizes["experiment-desktop.png"][0] == 1280
    assert sizes["overview-phone.png"][0] == 390 and sizes["experiment-phone.png"][0] == 390
    assert sizes["experiment-phone.png"][1] > 844  # the full page, not the screen


def test_screenshots_fail_on_a_wrong_key(dashboard, tmp_path):
    r = run_screenshots("--base", dashboard, "--key", "wrong", "--out", str(tmp_path), "overview=/dashboard")
    assert r.returncode == 1
    assert "sign-in failed" in r.stderr and "401" in r.stderr and "That key is not right." in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_screenshots_fail_on_an_error_status_or_a_console_error(dashboard, tmp_path):
    r = run_screenshots("--base", dashboard, "--key", KEY, "--out", str(tmp_path), "overview=/dashboard",
                        "broken=/dashboard/broken", "noisy=/dashboard/noisy")
    assert r.returncode == 1
    assert f"broken (desktop): {dashboard}/dashboard/broken answered 500" in r.stderr
    assert "broken (phone)" in r.stderr
    assert "noisy (desktop): console error: chart failed" in r.stderr
    assert "overview" not in r.stderr.split("problem(s):", 1)[1]
    assert (tmp_path / "overview-desktop.png").exists() and (tmp_path / "overview-phone.png").exists()


def test_screenshots_refuse_a_wrong_command_line(tmp_path):
    r = run_screenshots("--base", "http://127.0.0.1:9", "--key", "k", "--out", str(tmp_path), "no-path")
    assert r.returncode == 2 and "NAME=PATH" in r.stderr
