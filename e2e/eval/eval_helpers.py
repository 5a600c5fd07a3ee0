"""Helpers for the end-to-end tests of `bakeoff eval`: real `bakeoff mock-upstream` (and `bakeoff serve`) processes
on free ports, datasets from `bakeoff mock-dataset`, configs, and `bakeoff eval` runs with timeouts.

`Process`, `Registry`, `raw_request`, `closed_port` and `bucket` come from e2e/processes.py, shared with the
gateway's tests.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import sys
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import Process, Registry, bucket, closed_port, raw_request  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("BAKEOFF_BIN") or str(REPO / ".build" / "product" / "release" / "bakeoff")

READY_TIMEOUT = 60.0
HTTP_TIMEOUT = 30.0
EVAL_TIMEOUT = 90.0  # a run that does not end by then is a hang

JUDGE_MODEL = "judge"


def user_in(experiment: str, variant: str, split: float = 0.5) -> str:
    """A user id that the gateway puts into `variant` ("treatment" below the split, else "control")."""
    i = 0
    while True:
        user = f"u-{variant}-{i}"
        if (bucket(experiment, user) / 10000 < split) == (variant == "treatment"):
            return user
        i += 1


class Mock:
    """A running `bakeoff mock-upstream`: its /v1 base URL and its recorded requests (the last 1000)."""

    def __init__(self, process: Process):
        self.process = process
        self.base_url = process.wait_ready().group(1)  # http://HOST:PORT/v1
        self.root = self.base_url[: -len("/v1")]

    def requests(self) -> list[dict]:
        """The recorded model requests, oldest first; each with its body parsed as JSON ("json")."""
        status, _, body = raw_request(self.root + "/mock/requests")
        assert status == 200, body
        out = []
        for line in body.decode().splitlines():
            if line.strip():
                r = json.loads(line)
                try:
                    r["json"] = json.loads(r["body"])
                except ValueError:
                    r["json"] = None
                out.append(r)
        return out

    def count(self) -> int:
        return len(self.requests())

    def clear(self):
        status, _, body = raw_request(self.root + "/mock/requests", method="DELETE")
        assert status == 204, body


def start_mock(registry: Registry, *extra: str, latency_ms: float = 0, quality: dict | None = None,
               judge: bool = False, seed: int = 1) -> Mock:
    """A mock answering at once (no jitter, tokens all at once) unless `latency_ms`; `quality` maps model names to
    their share of correct answers; `judge` makes JUDGE_MODEL an MT-Bench judge; `extra` are further options."""
    args = [BIN, "mock-upstream", "--port", "0", "--latency-ms", str(latency_ms), "--jitter-ms", "0",
            "--tokens-per-second", "0", "--seed", str(seed)]
    for model, q in (quality or {}).items():
        args += ["--quality", f"{model}={q}"]
    if judge:
        args += ["--judge-model", JUDGE_MODEL]
    args += list(extra)
    p = registry.add(Process("mock-upstream", args, r"mock-upstream listening on (http://\S+/v1)"))
    return Mock(p)


# --- datasets and configs -----------------------------------------------------------------------------------------

def mock_dataset(path: Path, size: int, seed: int = 1) -> Path:
    r = subprocess.run([BIN, "mock-dataset", "--size", str(size), "--seed", str(seed), "--output", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sum(1 for line in path.read_text().splitlines() if line.strip()) == size
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


EXPERIMENT = "support-bot-v2"
ALIAS = "support-bot"
TREATMENT_PROMPT = "You are the support bot, version two. Answer in a few words."


def experiment(control_url: str, treatment_url: str | None = None, eval_section: dict | None = None,
               name: str = EXPERIMENT, control_model: str = "support-v1", treatment_model: str = "support-v2",
               treatment_extra: dict | None = None, upstream_extra: dict | None = None, **extra) -> dict:
    """The live experiment: control (support-v1) and treatment (support-v2, its own system prompt and parameters)."""
    e = {"name": name, "model": ALIAS, "split": 0.5, "variants": [
        {"name": "control", "upstream": {"base_url": control_url, "model": control_model, **(upstream_extra or {})}},
        {"name": "treatment", "upstream": {"base_url": treatment_url or control_url, "model": treatment_model, **(upstream_extra or {})},
         "system_prompt": TREATMENT_PROMPT, "parameters": {"temperature": 0.3}, **(treatment_extra or {})},
    ], **extra}
    if eval_section is not None:
        e["eval"] = eval_section
    return e


def judge_section(url: str, model: str = JUDGE_MODEL, **extra) -> dict:
    return {"upstream": {"base_url": url, "model": model, **extra}}


def write_config(directory: Path, experiments: list[dict], name: str = "bakeoff.json") -> Path:
    config = {"listen": "127.0.0.1:8080", "threads": 2,
              "store": {"path": str(directory / "store.db"), "flush_interval_ms": 50},
              "experiments": experiments}
    path = directory / name
    path.write_text(json.dumps(config, indent=2))
    return path


# --- running bakeoff ----------------------------------------------------------------------------------------------

class Run:
    def __init__(self, args: list[str], proc: subprocess.CompletedProcess, seconds: float):
        self.args = args
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.seconds = seconds

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def calls(self) -> int:
        """The calls this run made, from its summary line on stderr ("1,200 calls in 2.1 s (0 retries)")."""
        m = re.search(r"^bakeoff: ([\d,]+) calls in [\d.]+ s \(([\d,]+) retries\)", self.stderr, re.M)
        assert m, f"no summary line on stderr:\n{self.stderr}"
        return int(m.group(1).replace(",", ""))

    @property
    def run_seconds(self) -> float:
        """The seconds the run's summary line reports (the calls, without starting the process)."""
        m = re.search(r"^bakeoff: [\d,]+ calls in ([\d.]+) s", self.stderr, re.M)
        assert m, f"no summary line on stderr:\n{self.stderr}"
        return float(m.group(1))

    @property
    def retries(self) -> int:
        m = re.search(r"^bakeoff: [\d,]+ calls in [\d.]+ s \(([\d,]+) retries\)", self.stderr, re.M)
        assert m, f"no summary line on stderr:\n{self.stderr}"
        return int(m.group(1).replace(",", ""))

    def describe(self) -> str:
        return (f"bakeoff {' '.join(self.args)} exited {self.returncode} after {self.seconds:.1f} s\n"
                f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}")


def bakeoff(*args: str, cwd: Path | str | None = None, env: dict | None = None, timeout: float = EVAL_TIMEOUT) -> Run:
    started = time.monotonic()
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
                       stdin=subprocess.DEVNULL)
    return Run(list(args), p, time.monotonic() - started)


def run_eval(config: Path, dataset: Path, *args: str, cwd: Path | None = None, env: dict | None = None,
             timeout: float = EVAL_TIMEOUT) -> Run:
    """`bakeoff eval` in `cwd` (default: the config's folder, so the default cache never lands in the repo)."""
    return bakeoff("eval", "--config", str(config), "--dataset", str(dataset), *args,
                   cwd=cwd or config.parent, env=env, timeout=timeout)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


class BlackHole:
    """A TCP server that accepts connections and never answers (an upstream that hangs)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self.connections.append(c)
            except (socket.timeout, OSError):
                continue

    def close(self):
        self._stop = True
        self._thread.join(2)
        for c in self.connections:
            c.close()
        self.sock.close()


def kill9(proc: subprocess.Popen):
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


class FakeUpstream:
    """An HTTP server (in this process) that answers every POST with status 200 and a fixed body: an upstream
    that is not an OpenAI-compatible server (a captive portal, a wrong base URL)."""

    def __init__(self, body: bytes, content_type: str):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
