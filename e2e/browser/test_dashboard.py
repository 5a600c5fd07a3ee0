"""The dashboard in headless Chromium, as a product owner and a hostile visitor would use it.

A store holds two weeks of the case study (`bakeoff simulate`, imported), then a gateway serves it with live
traffic from `bakeoff traffic` on top. Checked: sign-in (cookie flags, wrong and missing key never show data),
the experiments list and the experiment page (no console error, no request leaving the machine, the numbers in
the DOM equal the JSON report's), the refresh, a phone's width, and `bakeoff dashboard --db` read-only.
"""
from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from processes import Process

from .browser_helpers import BIN, COOKIE_NAME, cookie_of, eventually, new_page, sign_in

ADMIN_KEY = "dashboard-admin-key-0123456789"
EXPERIMENT = "support-bot-v2"
MODEL = "support-bot"


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def site(module_procs, tmp_path_factory):
    """A gateway on a store with 14 days of history plus live traffic; its dashboard's base URL."""
    d = tmp_path_factory.mktemp("dashboard")
    start = (datetime.now(timezone.utc) - timedelta(days=14)).replace(hour=0, minute=0, second=0, microsecond=0)
    spec = d / "spec.json"
    spec.write_text(json.dumps({"preset": "seed-case-study", "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "users": 3000}))
    log = d / "history.jsonl"
    store = d / "store.db"
    subprocess.run([BIN, "simulate", "--spec", str(spec), "--experiment", EXPERIMENT, "--days", "14", "--output", str(log)], check=True)
    subprocess.run([BIN, "import", "--db", str(store), str(log)], check=True, capture_output=True)
    mock = module_procs.add(Process("mock-upstream", [BIN, "mock-upstream", "--port", "0", "--latency-ms", "20", "--jitter-ms", "10"],
                                    r"mock-upstream listening on (http://\S+/v1)"))
    upstream = mock.wait_ready().group(1)
    config = {"listen": "127.0.0.1:0", "threads": 2, "store": {"path": str(store), "flush_interval_ms": 50},
              "experiments": [{"name": EXPERIMENT, "model": MODEL, "split": 0.2, "variants": [
                  {"name": "control", "upstream": {"base_url": upstream, "model": "v1"}},
                  {"name": "treatment", "upstream": {"base_url": upstream, "model": "v2"}}]}]}
    path = d / "gateway.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "BAKEOFF_ADMIN_KEY": ADMIN_KEY}
    gw = module_procs.add(Process("bakeoff serve", [BIN, "serve", "--config", str(path)], r"bakeoff serve listening on (http://\S+)/v1",
                                  env=env, cwd=str(d)))
    base = gw.wait_ready().group(1)
    subprocess.run([BIN, "traffic", "--gateway", base, "--model", MODEL, "--users", "80", "--duration", "4", "--concurrency", "8"],
                   check=True, capture_output=True)
    return {"base": base, "store": store, "dir": d, "module_procs": module_procs}


def report_json(base: str) -> dict:
    status, _, body = http("GET", f"{base}/v1/experiments/{EXPERIMENT}/report?format=json", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert status == 200, body
    return json.loads(body)


def test_without_the_key_no_data_shows(site, page):
    base = site["base"]
    # The root shows the sign-in form, and nothing else.
    page.goto(f"{base}/dashboard")
    assert page.locator("#key").count() == 1
    assert page.locator("table, svg, [data-metric]").count() == 0
    # A deeper page answers 401 with the form; no experiment data in it.
    response = page.goto(f"{base}/dashboard/experiments/{EXPERIMENT}")
    assert response.status == 401
    assert page.locator("[data-metric], .scorecard, svg").count() == 0
    assert "users" not in page.inner_text("main")
    # A wrong key: 401 and a message, no cookie.
    response = sign_in(page, base, "not-the-key", check=False)
    assert response.status == 401
    assert "not the admin key" in page.inner_text(".error")
    assert cookie_of(page.context, COOKIE_NAME) is None
    # A forged cookie, the fragment header, a bearer key that is wrong: still nothing.
    for headers in ({"Cookie": f"{COOKIE_NAME}=bd1.99999999999.AAAA"}, {"X-Bakeoff-Fragment": "1"},
                    {"Authorization": "Bearer wrong"}, {"Cookie": f"{COOKIE_NAME}={ADMIN_KEY}"}):
        status, _, body = http("GET", f"{base}/dashboard/experiments/{EXPERIMENT}", headers=headers)
        assert status == 401, headers
        assert b"data-metric" not in body and b"scorecard" not in body
    # The key never goes in a URL: the form posts it.
    assert page.locator("form[method=post] input[type=password][name=key]").count() == 1
    page.watch.assert_clean(ignore=[r"status of 401"])


def test_experiment_page_numbers_equal_the_json_report(site, page):
    base = site["base"]
    sign_in(page, base, ADMIN_KEY)
    cookie = cookie_of(page.context, COOKIE_NAME)
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert ADMIN_KEY not in cookie["value"]
    # The list: the experiment with its users per variant.
    row = page.locator(f'tr[data-experiment="{EXPERIMENT}"]')
    assert row.count() == 1
    page.click(f'tr[data-experiment="{EXPERIMENT}"] a')
    page.wait_for_selector("table.scorecard")
    report = report_json(base)
    assert page.get_attribute(".banner[data-decision]", "data-decision") == report["decision"]["action"]
    users = {v["name"]: v["users"] for v in report["variants"]}
    text = page.inner_text("main")
    for name, n in users.items():
        assert f"{name} {n:,} users" in text, (name, n)
    # Every scorecard row's lift and p-value equal the report's (full precision in data-value).
    metrics = {m["name"]: m for m in report["metrics"] if m["variant"] == "treatment"}
    rows = page.locator("table.scorecard tr[data-metric]")
    assert rows.count() >= 3
    compared = 0
    for i in range(rows.count()):
        r = rows.nth(i)
        name = r.get_attribute("data-metric")
        if name not in metrics:
            continue  # a quantile row (latency P95): in the report's quantiles section
        m = metrics[name]
        lift = r.locator("td[data-value]").first
        if m["relative_lift"] is not None and lift.count():
            assert float(lift.get_attribute("data-value")) == pytest.approx(m["relative_lift"], rel=1e-12, abs=1e-15), name
            compared += 1
        p = r.locator("td.p[data-value]")
        if p.count():
            want = m["adjusted_p_value"] if m["adjusted_p_value"] is not None else m["p_value"]
            assert float(p.get_attribute("data-value")) == pytest.approx(want, rel=1e-12, abs=1e-300), name
    assert compared >= 3
    # The charts: one lift chart per metric with data, exposures and latency, with axis labels and a legend.
    assert page.locator("figure[data-metric] svg").count() >= 3
    assert page.locator("svg text:has-text('lift, %')").count() >= 1
    assert page.locator("figcaption:has-text('New users per day')").count() == 1
    assert page.locator("figcaption:text-is('Latency')").count() == 1
    assert page.locator("section.health").count() == 1
    page.watch.assert_clean()


def test_refresh_swaps_in_new_numbers(site, page):
    base = site["base"]
    sign_in(page, base, ADMIN_KEY)
    page.goto(f"{base}/dashboard/experiments/{EXPERIMENT}")
    before = report_json(base)["variants"]
    subprocess.run([BIN, "traffic", "--gateway", base, "--model", MODEL, "--users", "40", "--duration", "2", "--concurrency", "4", "--seed", "7"],
                   check=True, capture_output=True)
    after = report_json(base)["variants"]
    assert after != before
    requests_before = page.locator("main").inner_text()
    page.click("#refresh")
    eventually(page, lambda: "updated" in page.inner_text("#refreshed"), what="the refresh to finish")
    text = page.inner_text("main")
    assert text != requests_before
    for v in after:
        assert f"{v['name']} {v['users']:,} users" in text
    # The page itself was not reloaded: one document request.
    documents = [r for r in page.watch.requests if r.endswith(f"/dashboard/experiments/{EXPERIMENT}")]
    assert len(documents) == 2, documents  # the page, then the fragment
    page.watch.assert_clean()


def test_readable_on_a_phone(site, browser):
    page = new_page(browser, "phone")
    base = site["base"]
    sign_in(page, base, ADMIN_KEY)
    page.goto(f"{base}/dashboard/experiments/{EXPERIMENT}")
    page.wait_for_selector("table.scorecard")
    # Nothing wider than the screen but the tables' own scrolling boxes.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 392, width
    page.watch.assert_clean()
    page.context.close()


def test_sign_out_ends_the_session(site, page):
    base = site["base"]
    sign_in(page, base, ADMIN_KEY)
    page.click("form[action='/dashboard/sign-out'] button")
    page.wait_for_selector("#key")
    response = page.goto(f"{base}/dashboard/experiments/{EXPERIMENT}")
    assert response.status == 401
    page.watch.assert_clean(ignore=[r"status of 401"])


def test_read_only_dashboard_of_a_store(site, procs, page):
    store = site["store"]
    # Open (no key) only on this machine.
    refused = subprocess.run([BIN, "dashboard", "--db", str(store), "--listen", "0.0.0.0:0"], capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k != "BAKEOFF_ADMIN_KEY"}, timeout=30)
    assert refused.returncode == 2 and "BAKEOFF_ADMIN_KEY" in refused.stderr
    p = procs.add(Process("bakeoff dashboard", [BIN, "dashboard", "--db", str(store), "--listen", "127.0.0.1:0"],
                          r"bakeoff dashboard on (http://\S+)/dashboard",
                          env={k: v for k, v in os.environ.items() if k != "BAKEOFF_ADMIN_KEY"}))
    base = p.wait_ready().group(1)
    page.goto(f"{base}/dashboard")
    page.click(f'tr[data-experiment="{EXPERIMENT}"] a')
    page.wait_for_selector("table.scorecard")
    assert page.locator("figure[data-metric] svg").count() >= 3
    page.watch.assert_clean()


def test_dashboard_is_off_without_an_admin_key(procs, tmp_path):
    config = {"listen": "127.0.0.1:0", "store": {"path": str(tmp_path / "s.db")},
              "experiments": [{"name": "e", "model": "m", "split": 0.5, "variants": [
                  {"name": "control", "upstream": {"base_url": "http://127.0.0.1:9/v1", "model": "a"}},
                  {"name": "treatment", "upstream": {"base_url": "http://127.0.0.1:9/v1", "model": "b"}}]}]}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k != "BAKEOFF_ADMIN_KEY"}
    gw = procs.add(Process("bakeoff serve", [BIN, "serve", "--config", str(path)], r"bakeoff serve listening on (http://\S+)/v1", env=env))
    base = gw.wait_ready().group(1)
    for method, path_, body in (("GET", "/dashboard", None), ("GET", "/dashboard/experiments/e", None),
                                ("POST", "/dashboard/sign-in", b"key=anything")):
        status, _, text = http(method, base + path_, body=body)
        assert status == 403, (path_, status)
        assert b"BAKEOFF_ADMIN_KEY" in text


def test_a_guesser_elsewhere_does_not_lock_the_admin_out(site):
    """Wrong keys in bulk from one address get 429 there; the admin signing in from another address is let in."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    u = urlsplit(site["base"])

    def post(key: str, source: str) -> int:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60, source_address=(source, 0))
        try:
            conn.request("POST", "/dashboard/sign-in", body=f"key={key}&next=/dashboard",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            return conn.getresponse().status
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda i: post(f"guess-{i}", "127.0.0.2"), range(36)))
    assert statuses.count(401) == 30 and statuses.count(429) == 6, statuses
    assert post("guess-more", "127.0.0.2") == 429
    assert post(ADMIN_KEY, "127.0.0.1") == 303
