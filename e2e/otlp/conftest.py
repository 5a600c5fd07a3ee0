"""Fixtures for the end-to-end tests of the gateway's OTLP trace export (helpers in otlp_helpers.py, the OTLP
encodings in otlp_wire.py).

- `phoenix` (session): a real Arize Phoenix on loopback ports (its gRPC server too), data in a temporary folder,
  started once and shared; it starts in the background when the tests are collected (~10 s on an idle machine,
  much more on a loaded one), and the tests that use it run last. `phoenix.wait_for_spans(project, n)` polls its
  REST API.
- `collector`: a fresh capturing OTLP/HTTP collector (otlp_helpers.CaptureCollector) per test.
- `otlp_gateway`: the `bakeoff` binary, checked once to exist and to know the `otlp` config block (otherwise the
  run stops with one line saying so, not a failure per test).
- `procs`, `module_procs` (from e2e/processes.py): processes started in a test or module, always stopped.

Every OTEL_* variable of the shell running the tests is removed first: the gateway inherits the environment, and a
developer's OTEL_EXPORTER_OTLP_ENDPOINT must not redirect or reconfigure the tests' spans.
"""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest

from .otlp_helpers import BIN, CaptureCollector, Phoenix, Registry, clean_otel_env, run_serve
from processes import module_procs, procs  # noqa: F401  (the fixtures every e2e suite shares)


@pytest.fixture(scope="session", autouse=True)
def _no_otel_env():
    removed = clean_otel_env()
    yield removed
    os.environ.update(removed)


class _PhoenixStarter:
    """Phoenix takes 10 s or more to start (its imports and SQLite migrations): it is started in a thread as soon as
    the tests are collected, so that it comes up while the tests that do not need it run (those that do run last)."""

    def __init__(self):
        self.registry = Registry()
        self.server = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="phoenix-start", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.server = Phoenix(self.registry)
        except BaseException as e:  # noqa: BLE001 - raised again in the fixture
            self.error = e

    def get(self):
        self.thread.join()
        if isinstance(self.error, FileNotFoundError):
            pytest.exit(str(self.error), returncode=2)
        if self.error is not None:
            raise self.error
        return self.server

    def close(self):
        self.registry.cleanup()  # kills it, also while it is still starting
        self.thread.join(30)
        if self.server is not None:
            self.server.close()


_phoenix: _PhoenixStarter | None = None


def _needs_phoenix(item) -> bool:
    return "phoenix" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    items[:] = [i for i in items if not _needs_phoenix(i)] + [i for i in items if _needs_phoenix(i)]


def pytest_collection_finish(session):
    """After -k/-m deselection: start Phoenix only when a test that will run needs it."""
    global _phoenix
    if _phoenix is None and not session.config.option.collectonly and any(_needs_phoenix(i) for i in session.items):
        _phoenix = _PhoenixStarter()


def pytest_sessionfinish(session, exitstatus):
    global _phoenix
    if _phoenix is not None:
        _phoenix.close()
        _phoenix = None


@pytest.fixture(scope="session")
def phoenix():
    global _phoenix
    if _phoenix is None:  # not started at collection (e.g. requested dynamically)
        _phoenix = _PhoenixStarter()
    return _phoenix.get()


@pytest.fixture
def collector():
    c = CaptureCollector()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def otlp_gateway():
    """The binary, once checked to exist and to accept an `otlp` block (`serve --check`)."""
    if not os.path.exists(BIN):
        pytest.exit(f"the bakeoff binary is missing: {BIN} (run `make build` or set BAKEOFF_BIN)", returncode=2)
    with tempfile.TemporaryDirectory(prefix="bakeoff-otlp-check-") as d:
        config = {"listen": "127.0.0.1:0", "store": {"path": str(Path(d) / "store.db")},
                  "otlp": {"endpoint": "http://127.0.0.1:4318"},
                  "experiments": [{"name": "check", "model": "check", "split": 0.5, "variants": [
                      {"name": "control", "upstream": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}},
                      {"name": "treatment", "upstream": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}}]}]}
        r = run_serve(config, Path(d), check=True)
        if r.returncode != 0:
            pytest.exit(f"{BIN} does not accept an `otlp` block yet (serve --check exited {r.returncode}):\n"
                        f"{(r.stdout + r.stderr)[-2000:]}", returncode=2)
    return BIN
