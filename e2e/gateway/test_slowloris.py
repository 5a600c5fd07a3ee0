"""Connections and memory are bounded, and clients still get served: slowloris connections from several
addresses, a gateway started under a low open-files soft limit, deadlines, the per-address limit and the
memory budget, against a real `bakeoff serve`."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import openai
import pytest

from conftest import metric_value, raw_request, split_experiment, start_gateway, start_mock, wait_until

SLOWLORIS = Path(__file__).resolve().parent / "slowloris.py"
MESSAGES = [{"role": "user", "content": "Where is my order?"}]


class Loris:
    """e2e/gateway/slowloris.py in its own process (so its work does not slow the test's client)."""

    def __init__(self, port: int, connections: int, addresses: str, interval: float = 1.0):
        self.proc = subprocess.Popen([sys.executable, str(SLOWLORIS), "--port", str(port), "--connections", str(connections),
                                      "--addresses", addresses, "--interval", str(interval), "--duration", "120"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.last: dict = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.last = json.loads(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def loris_registry():
    started: list[Loris] = []
    yield started
    for loris in started:
        loris.stop()


def port_of(gateway) -> int:
    return urllib.parse.urlparse(gateway.root).port


def soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line in /proc/PID/limits")


def start_under_low_soft_limit(procs, tmp_path, experiments, **top):
    """A gateway started with the open-files soft limit at 1,024 (the hard limit unchanged), as shells do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        return start_gateway(procs, tmp_path / "gw", experiments, **top)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_clients_are_served_while_thousands_of_slowloris_connections_are_open(procs, tmp_path, loris_registry):
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 8192:
        pytest.skip("the hard open-files limit is below 8,192: not enough for 3,000 connections on both sides")
    mock = start_mock(procs, latency_ms=0, jitter_ms=0, tokens_per_second=0)
    gateway = start_under_low_soft_limit(procs, tmp_path, [split_experiment("e", "bot", mock.base_url, mock.base_url)])
    client = gateway.client(timeout=5)
    client.chat.completions.create(model="bot", user="warm", messages=MESSAGES)

    # 3,000 connections trickling a header byte a second, from six addresses: beyond the soft limit the
    # gateway was started with, under its (default) per-address limit.
    loris = Loris(port_of(gateway), 3000, "127.0.0.2-127.0.0.7")
    loris_registry.append(loris)
    wait_until(lambda: loris.last.get("open", 0) >= 2950, timeout=30, message="3,000 slowloris connections open")

    # Normal requests succeed while they are open, and while they are cut off and replaced (the header
    # deadline is 10 s): the official client, no retries, 5 s timeout.
    started = time.monotonic()
    served = 0
    while time.monotonic() - started < 14:
        reply = client.chat.completions.create(model="bot", user=f"u{served}", messages=MESSAGES)
        assert reply.choices[0].message.content
        served += 1
        status, _, body = raw_request(gateway.root + "/healthz", timeout=5)
        assert status == 200, body
        time.sleep(0.1)
    assert served >= 20

    metrics = gateway.metrics()
    assert metric_value(metrics, "bakeoff_http_header_timeouts_total") >= 1000, metrics
    assert metric_value(metrics, "bakeoff_http_connections_open") >= 1000, metrics
    assert loris.last["closed_by_server"] >= 1000, loris.last
    # The soft limit of 1,024 was raised to the hard limit at start.
    assert soft_open_files(gateway.process.pid) == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert gateway.process.alive()


def test_deadlines_and_the_per_address_limit_close_what_holds_connections(procs, tmp_path, loris_registry):
    mock = start_mock(procs, latency_ms=0, jitter_ms=0, tokens_per_second=0)
    gateway = start_gateway(procs, tmp_path / "gw", [split_experiment("e", "bot", mock.base_url, mock.base_url)],
                            header_timeout_ms=1000, body_timeout_ms=1000, max_connections_per_address=50)
    loris = Loris(port_of(gateway), 200, "127.0.0.2", interval=0.2)
    loris_registry.append(loris)
    # One address gets 50 connections; the rest are refused, and those it has are closed after 1 s.
    wait_until(lambda: (metric_value(gateway.metrics(), "bakeoff_http_connections_refused_total") or 0) >= 50,
               message="connections over the per-address limit refused")
    wait_until(lambda: (metric_value(gateway.metrics(), "bakeoff_http_header_timeouts_total") or 0) >= 50,
               message="trickling connections closed at the header deadline")
    assert metric_value(gateway.metrics(), "bakeoff_http_connections_open") <= 60  # 50, and a few of our own
    reply = gateway.client(timeout=5).chat.completions.create(model="bot", user="u1", messages=MESSAGES)
    assert reply.choices[0].message.content
    loris.stop()

    # A body that trickles is cut off at the body deadline.
    import socket
    s = socket.create_connection(("127.0.0.1", port_of(gateway)))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    s.settimeout(0.3)
    closed = False
    deadline = time.monotonic() + 10
    while not closed and time.monotonic() < deadline:
        try:
            closed = s.recv(100) == b""
        except socket.timeout:
            s.sendall(b" ")
        except OSError:
            closed = True
    s.close()
    assert closed
    assert metric_value(gateway.metrics(), "bakeoff_http_body_timeouts_total") == 1


def test_requests_beyond_the_memory_budget_get_503_with_retry_after(procs, tmp_path):
    # A slow upstream holds the first request (and its 700 kB body) for a while.
    mock = start_mock(procs, latency_ms=3000, jitter_ms=0, tokens_per_second=0)
    gateway = start_gateway(procs, tmp_path / "gw", [split_experiment("e", "bot", mock.base_url, mock.base_url)],
                            max_body_bytes=1 << 20, memory_budget_bytes=1 << 20)
    big = [{"role": "user", "content": "x" * 700_000}]
    first: dict = {}
    threading.Thread(target=lambda: first.update(reply=gateway.client().chat.completions.create(
        model="bot", user="u1", messages=big)), daemon=True).start()
    wait_until(lambda: (metric_value(gateway.metrics(), "bakeoff_buffered_bytes") or 0) >= 700_000,
               message="the first body charged to the budget")

    with pytest.raises(openai.APIStatusError) as refused:
        gateway.client().chat.completions.create(model="bot", user="u2", messages=big)
    assert refused.value.status_code == 503
    assert refused.value.response.headers.get("retry-after") == "1"
    assert refused.value.body["code"] == "over_capacity"
    status, _, _ = raw_request(gateway.root + "/healthz")
    assert status == 200
    assert metric_value(gateway.metrics(), "bakeoff_rejected_requests_total", code="503") == 1

    # Once the first is answered its bytes are given back, and the same request goes through; the SDK's
    # own retry (which waits Retry-After) would have done it.
    wait_until(lambda: "reply" in first, timeout=30, message="the first request answered")
    wait_until(lambda: metric_value(gateway.metrics(), "bakeoff_buffered_bytes") == 0, message="the budget released")
    reply = gateway.client().chat.completions.create(model="bot", user="u2", messages=big)
    assert reply.choices[0].message.content


def test_an_upstream_answer_beyond_the_memory_budget_is_refused_not_buffered(procs, tmp_path):
    # About 2 MB of answer against a budget of 1 MiB.
    mock = start_mock(procs, latency_ms=0, jitter_ms=0, tokens_per_second=0, output_tokens=300_000)
    gateway = start_gateway(procs, tmp_path / "gw", [split_experiment("e", "bot", mock.base_url, mock.base_url)],
                            max_body_bytes=1 << 20, memory_budget_bytes=1 << 20)
    with pytest.raises(openai.APIStatusError) as refused:
        gateway.client().chat.completions.create(model="bot", user="u1", messages=MESSAGES)
    assert refused.value.status_code == 503
    assert refused.value.response.headers.get("retry-after") == "1"
    assert refused.value.body["code"] == "over_capacity"
    wait_until(lambda: metric_value(gateway.metrics(), "bakeoff_buffered_bytes") == 0, message="the budget released")
    wait_until(lambda: metric_value(gateway.metrics(), "bakeoff_requests_total", experiment="e", variant="control",
                                    status="gateway_overloaded") or metric_value(gateway.metrics(), "bakeoff_requests_total",
                                    experiment="e", variant="treatment", status="gateway_overloaded"),
               message="the request counted as gateway_overloaded")
    # A shorter answer fits.
    reply = gateway.client().chat.completions.create(model="bot", user="u1", messages=MESSAGES, max_tokens=20)
    assert reply.choices[0].message.content


def test_slowloris_from_the_clients_own_address_does_not_lock_it_out(procs, tmp_path, loris_registry):
    """A slowloris from 127.0.0.1, the address the normal client uses too: on the default loopback listener
    there is no per-address limit (it would be one limit for every local client), so the deadlines and
    max_connections carry it."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 12000:
        pytest.skip("the hard open-files limit is below 12,000: not enough for 5,000 connections on both sides")
    mock = start_mock(procs, latency_ms=0, jitter_ms=0, tokens_per_second=0)
    gateway = start_gateway(procs, tmp_path / "gw", [split_experiment("e", "bot", mock.base_url, mock.base_url)])
    client = gateway.client(timeout=5)
    loris = Loris(port_of(gateway), 5000, "127.0.0.1")
    loris_registry.append(loris)
    wait_until(lambda: loris.last.get("open", 0) >= 4900, timeout=30, message="5,000 slowloris connections open")
    started = time.monotonic()
    served = 0
    while time.monotonic() - started < 12:
        reply = client.chat.completions.create(model="bot", user=f"own-{served}", messages=MESSAGES)
        assert reply.choices[0].message.content
        served += 1
        assert raw_request(gateway.root + "/healthz", timeout=5)[0] == 200
        time.sleep(0.1)
    assert served >= 20
    assert metric_value(gateway.metrics(), "bakeoff_http_header_timeouts_total") >= 1000
