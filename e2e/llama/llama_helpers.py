"""Helpers for the end-to-end tests against llama.cpp's server (fixtures in conftest.py): the llama.cpp server and
`bakeoff serve` processes, a relay that slows the end of the server's streams, and readers of /metrics and of
server-sent events. `Process`, `Registry`, `raw_request`, `closed_port` and `bucket` come from e2e/processes.py.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import HTTP_TIMEOUT, Process, Registry, bucket, closed_port, gateway_helpers, raw_request  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("BAKEOFF_BIN") or str(REPO / ".build" / "product" / "release" / "bakeoff")
LLAMA_PY = os.environ.get("LLAMA_PY") or str(REPO / ".venv-llama" / "bin" / "python")
MAKE_GGUF = REPO / "scripts" / "llama" / "make_tiny_gguf.py"

ADMIN_KEY = "test-admin-key-0123456789"
# llama.cpp's server starts in about a second here; generous for a busy machine.
LLAMA_READY_TIMEOUT = 60.0
# The model aliases the llama.cpp server knows: two "fine-tunes" (different random weights), one per variant.
MODEL_A = "tiny-a"
MODEL_B = "tiny-b"
N_CTX = 512


def run_llama_py(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    r = subprocess.run([LLAMA_PY, *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{LLAMA_PY} {' '.join(args)} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


class LlamaServer:
    def __init__(self, process: Process, port: int, config: dict):
        self.process = process
        self.port = port
        self.config = config
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.root = f"http://127.0.0.1:{port}"

    def client(self, **kw) -> openai.OpenAI:
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return openai.OpenAI(base_url=self.base_url, api_key="unused", max_retries=0, **kw)

    def post(self, path: str, body: dict, headers: dict | None = None):
        return raw_request(self.root + path, method="POST", body=json.dumps(body), headers=headers)


class SlowTailRelay:
    """A TCP relay to the llama.cpp server that passes every byte through unchanged but holds the rest of an
    answer back for `delay` seconds right after the chunk that carries `data: [DONE]`.

    uvicorn already writes the end of a streamed body (the last chunk, `0\\r\\n\\r\\n`) separately from the
    [DONE] event, about 0.15 ms later here; this widens that gap, as a slower network or a busier server would,
    so that what happens in it is seen every time instead of once in a few hundred streams."""

    MARK = b"data: [DONE]"

    def __init__(self, upstream_port: int, delay: float = 0.3):
        self.upstream_port = upstream_port
        self.delay = delay
        self.delayed = 0  # how many times a tail was held back
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._closed = False
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool):
        pending = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not answers:
                    dst.sendall(data)
                    continue
                pending += data
                while True:
                    i = pending.find(self.MARK)
                    # The [DONE] event ends with a blank line, and its HTTP chunk with CRLF.
                    end = pending.find(b"\n\n\r\n", i) if i >= 0 else -1
                    if end < 0:
                        break
                    cut = end + 4
                    dst.sendall(pending[:cut])
                    pending = pending[cut:]
                    self.delayed += 1
                    time.sleep(self.delay)
                if self.MARK not in pending:
                    dst.sendall(pending)
                    pending = b""
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self._closed = True
        self._listener.close()


# e2e/gateway's helpers, shared rather than copied.
_gw = gateway_helpers()


class Gateway(_gw.Gateway):
    """e2e/gateway's Gateway, without client keys (the llama gateway has none) and without its environment."""

    def __init__(self, process: Process, config_path: Path, store: Path, config: dict):
        super().__init__(process, config_path, store, config, env={})

    def client(self, **kw) -> openai.OpenAI:
        return super().client(api_key="unused", **kw)


def start_gateway(registry: Registry, directory: Path, experiments: list[dict], **top) -> Gateway:
    directory.mkdir(parents=True, exist_ok=True)
    store = directory / "store.db"
    config = {"listen": "127.0.0.1:0", "threads": 2, "store": {"path": str(store), "flush_interval_ms": 20}, **top,
              "experiments": experiments}
    path = directory / "gateway.json"
    path.write_text(json.dumps(config, indent=2))
    env = dict(os.environ, BAKEOFF_ADMIN_KEY=ADMIN_KEY)
    p = registry.add(Process("bakeoff serve", [BIN, "serve", "--config", str(path)],
                             r"bakeoff serve listening on (http://\S+/v1)", env=env, cwd=str(directory)))
    return Gateway(p, path, store, config)


users_in = _gw.users_in
metric_value = _gw.metric_value


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    return _gw.wait_until(predicate, timeout=timeout, interval=interval, message=message)


def sse_events(body: bytes) -> list[str]:
    """The data payloads of a server-sent-events body, in order (events split on blank lines, any line ending)."""
    text = body.decode("utf-8")
    events = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", text):
        data = [line[5:].removeprefix(" ") for line in re.split(r"\r\n|\n|\r", block) if line.startswith("data:")]
        if data:
            events.append("\n".join(data))
    return events
