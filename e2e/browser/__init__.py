"""The dashboard in headless Chromium (Playwright, Debian's browser). A package, so that its conftest is imported as
browser.conftest and never replaces the `conftest` module that e2e/gateway's tests import names from."""
