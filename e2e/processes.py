"""What the end-to-end tests share: processes of the real `bakeoff` binary (and others) on free ports, read
ready from their stderr, and always stopped; raw HTTP requests; the assignment's hash bucket.

Imported by e2e/gateway/conftest.py and e2e/eval/eval_helpers.py.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

# Generous: the machine is shared and slow.
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
HTTP_TIMEOUT = 60.0


def bucket(experiment: str, user: str) -> int:
    """The seed's ABRouter bucket: md5 of "experiment:user" as a big integer, mod 10000."""
    return int(hashlib.md5(f"{experiment}:{user}".encode()).hexdigest(), 16) % 10000


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose stderr is drained by a thread; `wait_ready` finds the ready line.

    With `group`, it leads a process group of its own and signals go to the whole group: for servers that start
    workers of their own (MLflow), which would otherwise outlive it."""

    def __init__(self, name: str, args: list[str], ready: str, env: dict | None = None, cwd: str | None = None,
                 group: bool = False):
        self.name = name
        self.args = args
        self.group = group
        self.lines: list[str] = []
        self.ready_match: re.Match | None = None
        self._ready_re = re.compile(ready)
        self._ready = threading.Event()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env, cwd=cwd, start_new_session=group)
        self._reader = threading.Thread(target=self._drain, name=f"stderr-{name}", daemon=True)
        self._reader.start()

    def _drain(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if self.ready_match is None:
                m = self._ready_re.search(line)
                if m:
                    self.ready_match = m
                    self._ready.set()
        self._ready.set()  # EOF: wake a waiter

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> re.Match:
        self._ready.wait(timeout)
        if self.ready_match is None:
            code = self.proc.poll()
            self.kill()
            raise RuntimeError(f"{self.name} did not become ready within {timeout:.0f} s "
                               f"(exit status {code}); command: {' '.join(self.args)}\nstderr:\n{self.stderr}")
        return self.ready_match

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then waits; returns the exit status (kills it and fails if it does not exit in time)."""
        if self.alive():
            self._signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout:.0f} s of SIGTERM\nstderr:\n{self.stderr}")
        self._reader.join(5)
        if code < 0 and code != -signal.SIGTERM:
            # A crash (abort, trap, segfault) while stopping is never what a test expects: say what it printed.
            raise AssertionError(f"{self.name} died of signal {-code} ({signal.Signals(-code).name}) after SIGTERM\nstderr:\n{self.stderr}")
        return code

    def _signal(self, sig: int):
        if not self.group:
            self.proc.send_signal(sig)
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self):
        # A group's workers may outlive its leader.
        if self.alive() or self.group:
            self._signal(signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._reader.join(5)


class Registry:
    """Processes of one fixture scope, killed at its end."""

    def __init__(self):
        self.processes: list[Process] = []

    def add(self, p: Process) -> Process:
        self.processes.append(p)
        return p

    def cleanup(self):
        for p in self.processes:
            try:
                p.kill()
            except Exception:
                pass
            if p.proc.stderr:
                try:
                    p.proc.stderr.close()
                except Exception:
                    pass


def raw_request(url: str, method: str = "GET", body: bytes | str | None = None, headers: dict | None = None,
                timeout: float = HTTP_TIMEOUT):
    """One HTTP request with http.client: (status, headers dict lower-cased, body bytes)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path + (f"?{u.query}" if u.query else "")
        if isinstance(body, str):
            body = body.encode()
        hdrs = dict(headers or {})
        if body is not None and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


# Fixtures both suites use (their conftests import them, which registers them).

@pytest.fixture
def procs():
    """Processes started in a test, stopped at its end (also when it fails)."""
    registry = Registry()
    try:
        yield registry
    finally:
        registry.cleanup()


@pytest.fixture(scope="module")
def module_procs():
    """Processes shared by a module's tests, stopped after the last."""
    registry = Registry()
    try:
        yield registry
    finally:
        registry.cleanup()


def gateway_helpers():
    """e2e/gateway/conftest.py as a module of its own name, for other suites to use its gateway helpers (pytest
    imports each suite's conftest as `conftest`, so a plain import would find the wrong one)."""
    import importlib.util
    import sys
    name = "bakeoff_e2e_gateway_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gateway", "conftest.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
