"""Helpers for the end-to-end tests of the gateway's OTLP trace export (fixtures in conftest.py).

- `CaptureCollector`: an OTLP/HTTP receiver on loopback written here. It records every POST (path, headers, body),
  decodes protobuf (opentelemetry-proto's ExportTraceServiceRequest) and OTLP/JSON (otlp_wire's own decoder) into
  one normalised span form, and can be told to answer 503/429 to the next N posts or to hang.
- `Phoenix`: a real Arize Phoenix server (its own venv, .venv-phoenix) on loopback ports, its gRPC server kept on
  127.0.0.1 by a wrapper (Phoenix binds it to every interface otherwise), read back through its REST API.
- The gateway and `bakeoff mock-upstream` come from e2e/gateway/conftest.py (loaded here under another module name:
  pytest imports that file as `conftest`, and this suite has a conftest of its own).
"""
from __future__ import annotations

import gzip
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import otlp_wire

E2E = Path(__file__).resolve().parents[1]
REPO = E2E.parent
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))
from processes import HTTP_TIMEOUT, Process, Registry, closed_port, gateway_helpers, raw_request  # noqa: E402,F401


gw = gateway_helpers()
BIN = gw.BIN
ADMIN_KEY = gw.ADMIN_KEY
start_gateway = gw.start_gateway
start_mock = gw.start_mock
split_experiment = gw.split_experiment
users_in = gw.users_in
metric_value = gw.metric_value
wait_until = gw.wait_until
Gateway = gw.Gateway
Mock = gw.Mock

PHOENIX_PY = os.environ.get("PHOENIX_PY") or str(REPO / ".venv-phoenix" / "bin" / "python")

OTEL_ENV_PREFIXES = ("OTEL_",)


def clean_otel_env():
    """Removes every OTEL_* variable from this process's environment (the gateway inherits it): a developer's
    shell with OTEL_EXPORTER_OTLP_ENDPOINT set must not send the tests' spans elsewhere or change their config."""
    removed = {}
    for k in list(os.environ):
        if k.startswith(OTEL_ENV_PREFIXES):
            removed[k] = os.environ.pop(k)
    return removed


# --- the capturing collector ------------------------------------------------------------------------------------------

@dataclass
class Post:
    """One POST the collector got."""
    path: str
    headers: dict            # lower-cased names; repeated headers joined with ", "
    raw_headers: list        # (name, value) as received
    body: bytes              # as received (compressed if it was)
    content_type: str
    encoding: str            # "protobuf", "json" or "" (neither)
    spans: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # OTLP/JSON departures (otlp_wire.spans_from_json)
    error: str = ""          # why the body could not be decoded
    status: int = 0          # what the collector answered (0: nothing, the client went away while it hung)
    received_at: float = 0.0

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class CaptureCollector:
    """An OTLP/HTTP trace receiver on 127.0.0.1 (a free port): `url` is its base (http://127.0.0.1:PORT)."""

    def __init__(self):
        self.posts: list[Post] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._failures: list[tuple[int, dict]] = []
        self._hang = threading.Event()       # set: posts wait until released
        self._release = threading.Event()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                collector._handle(self)

            def do_GET(self):
                self._send(404, "text/plain", b"POST OTLP here\n")

            def _send(self, status, content_type, body, extra=()):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in extra:
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-capture", daemon=True)
        self._thread.start()

    # Control.

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None):
        """The next `count` posts are answered `status` (with `Retry-After` when given); their bodies are still
        recorded and decoded."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._lock:
            self._failures.extend([(status, headers)] * count)

    def hang(self):
        """Posts from now on wait (unanswered) until `release()`."""
        self._release.clear()
        self._hang.set()

    def release(self):
        self._hang.clear()
        self._release.set()

    def reset(self):
        with self._lock:
            self.posts.clear()
            self._failures.clear()
        self.release()

    def close(self):
        self.release()
        self._server.shutdown()
        self._server.server_close()

    # Reading.

    def accepted_posts(self) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.accepted]

    def spans(self, accepted_only: bool = True) -> list[dict]:
        """The spans of every post (only those answered 2xx by default), in arrival order."""
        with self._lock:
            return [s for p in self.posts if p.accepted or not accepted_only for s in p.spans]

    def wait_for_spans(self, predicate=lambda s: True, count: int = 1, timeout: float = 15.0) -> list[dict]:
        """Waits until at least `count` accepted spans satisfy `predicate`; returns those."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [s for p in self.posts if p.accepted for s in p.spans if predicate(s)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {count} span(s); got {len(found)} "
                                         f"matching of {sum(len(p.spans) for p in self.posts)} in {len(self.posts)} posts: "
                                         f"{[ (p.path, p.status, p.error, [s['name'] for s in p.spans]) for p in self.posts]}")
                self._changed.wait(min(left, 0.2))

    def wait_for_posts(self, count: int = 1, timeout: float = 15.0) -> list[Post]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {count} post(s); got {len(self.posts)}")
                self._changed.wait(min(left, 0.2))
            return list(self.posts)

    # Handling.

    def _handle(self, h):
        length = h.headers.get("Content-Length")
        if length is not None:
            body = h.rfile.read(int(length))
        elif h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(h.rfile)
        else:
            body = b""
        raw_headers = [(k, v) for k, v in h.headers.items()]
        headers: dict[str, str] = {}
        for k, v in raw_headers:
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        post = Post(path=h.path, headers=headers, raw_headers=raw_headers, body=body, content_type=ctype, encoding="",
                    received_at=time.time())
        data = body
        try:
            enc = headers.get("content-encoding", "").lower()
            if enc == "gzip":
                data = gzip.decompress(body)
            elif enc == "deflate":
                data = zlib.decompress(body)
            elif enc not in ("", "identity"):
                raise ValueError(f"unknown Content-Encoding {enc!r}")
            if ctype == otlp_wire.PROTOBUF:
                post.encoding = "protobuf"
                post.spans = otlp_wire.spans_from_protobuf(data)
            elif ctype == otlp_wire.JSON:
                post.encoding = "json"
                post.spans, post.problems = otlp_wire.spans_from_json(data)
            else:
                post.error = f"unsupported Content-Type {ctype!r}"
        except Exception as e:  # noqa: BLE001 - recorded for the test to see
            post.error = f"{type(e).__name__}: {e}"

        with self._lock:
            self.posts.append(post)
            failure = self._failures.pop(0) if self._failures and not post.error else None
            self._changed.notify_all()
        if self._hang.is_set():
            self._release.wait(120)
        if post.error:
            status, reply_type, reply, extra = (415 if "Content-Type" in post.error else 400), "text/plain", post.error.encode(), ()
        elif failure:
            status, extra = failure[0], tuple(failure[1].items())
            reply_type, reply = ("application/json", b'{"code": 14, "message": "unavailable"}')
        else:
            status, extra = 200, ()
            if post.encoding == "protobuf":
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
                reply_type, reply = otlp_wire.PROTOBUF, ExportTraceServiceResponse().SerializeToString()
            else:
                reply_type, reply = otlp_wire.JSON, b"{}"
        with self._lock:
            post.status = status
            self._changed.notify_all()
        h._send(status, reply_type, reply, extra)


def _read_chunked(rfile) -> bytes:
    out = b""
    while True:
        size = int(rfile.readline().split(b";")[0].strip(), 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return out
        out += rfile.read(size)
        rfile.readline()


# --- Phoenix ----------------------------------------------------------------------------------------------------------

# Phoenix's OTLP gRPC server binds [::]:PORT (every interface) whatever PHOENIX_HOST says; this keeps it on
# 127.0.0.1 by rewriting the address given to grpc.aio's add_insecure_port, then runs `phoenix serve`.
PHOENIX_WRAPPER = r"""
import sys
import grpc.aio._server as _server
_original = _server.Server.add_insecure_port
def _loopback_only(self, address):
    host, _, port = address.rpartition(":")
    if host in ("[::]", "0.0.0.0", "", "::", "localhost"):
        address = "127.0.0.1:" + port
    print("bakeoff-e2e: phoenix gRPC on " + address, file=sys.stderr, flush=True)
    return _original(self, address)
_server.Server.add_insecure_port = _loopback_only
from phoenix.server.main import main
sys.argv = ["phoenix", "serve"]
main()
"""


class Phoenix:
    """A Phoenix server on 127.0.0.1 (HTTP and gRPC ports free when picked), its data in a temporary folder."""

    def __init__(self, registry: Registry, python: str = PHOENIX_PY, ready_timeout: float = 120.0):
        if not os.path.exists(python):
            raise FileNotFoundError(f"Phoenix's python is missing: {python} (run `make .venv-phoenix/.packages` "
                                    f"or set PHOENIX_PY)")
        self._dir = tempfile.TemporaryDirectory(prefix="bakeoff-phoenix-")
        self.working_dir = Path(self._dir.name)
        self.port = closed_port()
        self.grpc_port = closed_port()
        while self.grpc_port == self.port:
            self.grpc_port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
        env.update(PHOENIX_WORKING_DIR=str(self.working_dir), PHOENIX_HOST="127.0.0.1", PHOENIX_PORT=str(self.port),
                   PHOENIX_GRPC_PORT=str(self.grpc_port), PHOENIX_TELEMETRY_ENABLED="false",
                   # No fetching from the internet on its own (a WASM sandbox binary, a docs MCP server): the tests
                   # run offline, and a machine that is online must not download anything either.
                   PHOENIX_ALLOW_EXTERNAL_RESOURCES="false", PHOENIX_DISABLE_AGENT_ASSISTANT="true",
                   PHOENIX_ENABLE_MCP_SERVER="false", DO_NOT_TRACK="1", PYTHONUNBUFFERED="1")
        # The ready line is ours: readiness is decided by polling the HTTP port below.
        self.process = registry.add(Process("phoenix", [python, "-c", PHOENIX_WRAPPER], r"bakeoff-e2e: phoenix gRPC on (\S+)",
                                            env=env, cwd=str(self.working_dir)))
        self.grpc_address = self.process.wait_ready(ready_timeout).group(1)
        deadline = time.monotonic() + ready_timeout
        while True:
            if not self.process.alive():
                raise RuntimeError(f"phoenix exited with {self.process.proc.poll()}\n{self.process.stderr[-4000:]}")
            try:
                status, _, _ = raw_request(self.url + "/healthz", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"phoenix did not answer on {self.url} within {ready_timeout:.0f} s\n"
                                   f"{self.process.stderr[-4000:]}")
            time.sleep(0.2)

    @property
    def traces_url(self) -> str:
        return self.url + "/v1/traces"

    def close(self):
        self.process.kill()
        self._dir.cleanup()

    def post_protobuf(self, body: bytes) -> tuple[int, bytes]:
        status, _, reply = raw_request(self.traces_url, method="POST", body=body,
                                       headers={"Content-Type": otlp_wire.PROTOBUF})
        return status, reply

    def spans(self, project: str, limit: int = 1000) -> list[dict]:
        """The project's spans as Phoenix's REST API returns them (an unknown project: [])."""
        out, cursor = [], None
        while True:
            query = {"limit": str(limit)}
            if cursor:
                query["cursor"] = cursor
            url = f"{self.url}/v1/projects/{urllib.parse.quote(project, safe='')}/spans?{urllib.parse.urlencode(query)}"
            status, _, body = raw_request(url)
            if status == 404:
                return []
            assert status == 200, (status, body[:2000])
            doc = json.loads(body)
            out += doc.get("data", [])
            cursor = doc.get("next_cursor")
            if not cursor:
                return out

    def wait_for_spans(self, project: str, count: int, predicate=lambda s: True, timeout: float = 20.0) -> list[dict]:
        """Polls until `count` spans of `project` satisfy `predicate` (Phoenix ingests in batches)."""
        deadline = time.monotonic() + timeout
        found: list = []
        while time.monotonic() < deadline:
            found = [s for s in self.spans(project) if predicate(s)]
            if len(found) >= count:
                return found
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {count} span(s) in Phoenix project "
                             f"{project!r}; found {len(found)}: {json.dumps(found)[:3000]}")


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of the TCP sockets a process listens on, from /proc (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            if v6:
                raw = bytes.fromhex(addr_hex)
                v6addr = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                addr = str(v6addr.ipv4_mapped or v6addr)  # ::ffff:127.0.0.1 (a dual-stack socket) is 127.0.0.1
            else:
                addr = ".".join(str(b) for b in bytes.fromhex(addr_hex)[::-1])
            out.append((addr, int(port_hex, 16)))
    return out


# --- the gateway with OTLP ------------------------------------------------------------------------------------------

def otlp_block(endpoint: str, **extra) -> dict:
    """An `otlp` config block with a short batch delay (the tests wait for spans), plus `extra`."""
    block = {"endpoint": endpoint, "export_interval_ms": 100}
    block.update(extra)
    return block


def otlp_metrics(gateway) -> dict:
    text = gateway.metrics()
    return {name: metric_value(text, name) for name in (
        "bakeoff_otlp_spans_exported_total", "bakeoff_otlp_spans_dropped_total",
        "bakeoff_otlp_export_failures_total", "bakeoff_otlp_queue_depth")}


TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def by_request_id(spans: list[dict]) -> dict:
    out = {}
    for s in spans:
        rid = s["attributes"].get("bakeoff.request_id")
        if rid is not None and not s["name"].startswith("feedback "):
            assert rid not in out, f"two request spans for {rid}: {out[rid]} and {s}"
            out[rid] = s
    return out


def run_serve(config: dict, directory: Path, env_extra: dict | None = None, check: bool = False,
              timeout: float = 30.0) -> subprocess.CompletedProcess:
    """`bakeoff serve [--check] --config FILE` on a config that must fail: the completed process (it is killed
    and the test fails if it starts serving instead)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "gateway.json"
    path.write_text(json.dumps(config, indent=2))
    args = [BIN, "serve", "--config", str(path), "--listen", "127.0.0.1:0"] + (["--check"] if check else [])
    env = gw.gateway_env(env_extra)
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(directory))
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"bakeoff serve did not stop within {timeout:.0f} s on a config it should refuse\n"
                             f"stderr: {e.stderr}") from None


# --- a tiny upstream whose answers name another model ---------------------------------------------------------------

class FakeUpstream:
    """An OpenAI-compatible upstream on 127.0.0.1 written here, for what `bakeoff mock-upstream` cannot do: its
    answers name `response_model` (not the model asked for, as a server that resolves an alias to a snapshot does),
    and carry usage only when `usage` is true. Records every request (path, lower-cased headers, parsed body)."""

    REPLY = "Hello from the fake upstream"

    def __init__(self, response_model: str = "fake-model-2025-01-01", usage: bool = True, finish_reason: str | None = "stop"):
        self.response_model = response_model
        self.usage = usage
        self.finish_reason = finish_reason
        self.requests: list[dict] = []
        self._count = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                upstream.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body})
                upstream._count += 1
                chat = self.path.endswith("/chat/completions")
                rid = f"{'chatcmpl' if chat else 'cmpl'}-fake{upstream._count}"
                usage = {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
                if not body.get("stream"):
                    choice = ({"index": 0, "message": {"role": "assistant", "content": upstream.REPLY},
                               "finish_reason": upstream.finish_reason} if chat else
                              {"index": 0, "text": upstream.REPLY, "finish_reason": upstream.finish_reason})
                    doc = {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": 1,
                           "model": upstream.response_model, "choices": [choice]}
                    if upstream.usage:
                        doc["usage"] = usage
                    data = json.dumps(doc).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                obj = "chat.completion.chunk" if chat else "text_completion"
                words = upstream.REPLY.split(" ")
                events = []
                for i, w in enumerate(words):
                    piece = w if i == 0 else " " + w
                    choice = ({"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat else
                              {"index": 0, "text": piece, "finish_reason": None})
                    events.append({"id": rid, "object": obj, "created": 1, "model": upstream.response_model,
                                   "choices": [choice]})
                last = ({"index": 0, "delta": {}, "finish_reason": upstream.finish_reason} if chat else
                        {"index": 0, "text": "", "finish_reason": upstream.finish_reason})
                events.append({"id": rid, "object": obj, "created": 1, "model": upstream.response_model, "choices": [last]})
                if upstream.usage and (body.get("stream_options") or {}).get("include_usage"):
                    events.append({"id": rid, "object": obj, "created": 1, "model": upstream.response_model,
                                   "choices": [], "usage": usage})
                for e in events:
                    self.wfile.write(b"data: " + json.dumps(e).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self._server.serve_forever, name="fake-upstream", daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()
