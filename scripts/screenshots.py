"""Screenshots of the dashboard's pages on a desktop and a phone, signed in, for a person to look at.

    .venv-test/bin/python scripts/screenshots.py --base http://127.0.0.1:PORT --key KEY --out DIR \\
        overview=/dashboard experiment=/dashboard/experiments/support

Signs in as a person would (browser_helpers.sign_in: the form at /dashboard, the bakeoff_dashboard cookie), then
for each NAME=PATH saves DIR/NAME-desktop.png (1280 CSS pixels wide) and DIR/NAME-phone.png (390 wide), both of
the full page, after the network went idle. Headless Chromium from Debian (`make browser-deps`); no request leaves
the machine (requests to other hosts are aborted, and count as a problem).

Exits 1, saying why on stderr, when the sign-in fails, or when any page answers an error status, shows the sign-in
form instead of itself, logs a console error, throws, asks for another host or has a local request fail (the
pages that loaded are still saved); 2 for a wrong command line.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e" / "browser"))
from browser_helpers import (SIGN_IN_FORM, TIMEOUT_MS, SignInError, launch, new_context, screenshot,  # noqa: E402
                             sign_in)

from playwright.sync_api import Error as PlaywrightError, sync_playwright  # noqa: E402

DEVICES = ("desktop", "phone")


def parse_pages(items: list[str], parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    pages = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path.startswith("/") or "/" in name or name in (".", ".."):
            parser.error(f"a page is NAME=PATH with PATH starting with /, not {item!r}")
        if name in {n for n, _ in pages}:
            parser.error(f"the page name {name!r} is given twice")
        pages.append((name, path))
    return pages


def shoot(context, base: str, name: str, path: str, device: str, out: Path, timeout_ms: float) -> list[str]:
    """Loads one page in `context` and saves its screenshot; returns its problems (empty when it is fine)."""
    watch = context.watch
    watch.clear()
    page = context.new_page()
    url = base + path
    problems = []
    try:
        try:
            response = page.goto(url, wait_until="load", timeout=timeout_ms)
        except PlaywrightError as e:
            return [f"{name} ({device}): {url} did not load: {e.message.splitlines()[0]}"]
        try:
            page.wait_for_load_state("networkidle", timeout=timeout_ms)
        except PlaywrightError:
            problems.append(f"{name} ({device}): the network did not go idle within {timeout_ms / 1000:.0f} s "
                            "(a request that never ends, such as an EventSource, keeps it busy)")
        if response is None:
            problems.append(f"{name} ({device}): {url} gave no response")
        elif response.status >= 400:
            problems.append(f"{name} ({device}): {url} answered {response.status}")
        if page.locator(SIGN_IN_FORM).count() and not path.startswith("/dashboard/sign-in"):
            problems.append(f"{name} ({device}): {url} shows the sign-in form, not the page (signed out?)")
        problems += [f"{name} ({device}): {p}" for p in watch.problems()]
        file = screenshot(page, out / f"{name}-{device}.png", full_page=True)
        print(f"{file}", flush=True)
    finally:
        page.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the gateway's root URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--key", required=True, help="the dashboard's key (the admin key)")
    parser.add_argument("--out", required=True, type=Path, help="folder for NAME-desktop.png and NAME-phone.png")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_MS / 1000, help="seconds per page (default 60)")
    parser.add_argument("pages", nargs="+", metavar="NAME=PATH", help="e.g. overview=/dashboard")
    args = parser.parse_args(argv)
    pages = parse_pages(args.pages, parser)
    base = args.base.rstrip("/")
    timeout_ms = args.timeout * 1000
    started = time.monotonic()

    problems: list[str] = []
    with sync_playwright() as playwright:
        try:
            browser = launch(playwright)
        except RuntimeError as e:
            print(f"screenshots: {e}", file=sys.stderr)
            return 1
        try:
            state = None
            for device in DEVICES:
                # The phone's context starts with the desktop's cookies: one sign-in for both.
                context = new_context(browser, device, **({"storage_state": state} if state else {}))
                try:
                    if state is None:
                        page = context.new_page()
                        try:
                            sign_in(page, base, args.key)
                        except SignInError as e:
                            print(f"screenshots: sign-in failed: {e}", file=sys.stderr)
                            return 1
                        except PlaywrightError as e:
                            print(f"screenshots: sign-in failed: {e.message.splitlines()[0]}", file=sys.stderr)
                            return 1
                        finally:
                            page.close()
                        problems += [f"sign-in: {p}" for p in context.watch.problems()]
                        state = context.storage_state()
                    for name, path in pages:
                        problems += shoot(context, base, name, path, device, args.out, timeout_ms)
                finally:
                    context.close()
        finally:
            browser.close()

    if problems:
        print(f"screenshots: {len(problems)} problem(s):\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"screenshots: {len(pages) * len(DEVICES)} saved in {args.out} ({time.monotonic() - started:.1f} s)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
