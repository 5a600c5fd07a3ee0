"""Fixtures for the gateway's end-to-end tests: real `bakeoff mock-upstream` and `bakeoff serve` processes on
free ports (port 0, the port read from the ready line on stderr), the official openai client, and helpers to
read the store back with `bakeoff export`.

Every process started here is killed at teardown, also when the test fails.
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

import openai
import pytest

import sys
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import HTTP_TIMEOUT, READY_TIMEOUT, STOP_TIMEOUT, Process, Registry, bucket, closed_port, module_procs, procs, raw_request  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("BAKEOFF_BIN") or str(REPO / ".build" / "product" / "release" / "bakeoff")

ADMIN_KEY = "test-admin-key-0123456789"
UPSTREAM_KEY_ENV = "BAKEOFF_TEST_UPSTREAM_KEY"
UPSTREAM_KEY = "sk-upstream-secret-abc"
CLIENT_KEY = "sk-client-key-must-not-leak"



def expected_variant(experiment: str, user: str, split: float) -> str:
    """The seed's ABRouter with a treatment share `split`."""
    return "treatment" if bucket(experiment, user) / 10000 < split else "control"


def users_in(experiment: str, variant: str, count: int, split: float = 0.5, prefix: str = "u") -> list[str]:
    """`count` user ids that the seed's ABRouter puts into `variant`."""
    found, i = [], 0
    while len(found) < count:
        user = f"{prefix}-{variant}-{i}"
        if expected_variant(experiment, user, split) == variant:
            found.append(user)
        i += 1
    return found


class Mock:
    def __init__(self, process: Process, options: dict):
        self.process = process
        self.options = options
        self.base_url = process.wait_ready().group(1)  # http://HOST:PORT/v1
        self.root = self.base_url[: -len("/v1")]

    def requests(self) -> list[dict]:
        status, _, body = raw_request(self.root + "/mock/requests")
        assert status == 200, body
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]

    def clear(self):
        status, _, body = raw_request(self.root + "/mock/requests", method="DELETE")
        assert status == 204, body

    def client(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="x", max_retries=0, timeout=HTTP_TIMEOUT, **kw)


def start_mock(registry: Registry, latency_ms: float = 0, jitter_ms: float = 0, tokens_per_second: float = 0,
               output_tokens: int = 12, error_rate: float = 0, fail_mid_stream_rate: float = 0,
               reply_prefix: str = "", seed: int = 1, threads: int = 2) -> Mock:
    args = [BIN, "mock-upstream", "--port", "0", "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms),
            "--tokens-per-second", str(tokens_per_second), "--output-tokens", str(output_tokens),
            "--error-rate", str(error_rate), "--fail-mid-stream-rate", str(fail_mid_stream_rate),
            "--seed", str(seed), "--threads", str(threads)]
    if reply_prefix:
        args += ["--reply-prefix", reply_prefix]
    p = registry.add(Process("mock-upstream", args, r"mock-upstream listening on (http://\S+/v1)"))
    return Mock(p, dict(reply_prefix=reply_prefix, seed=seed, output_tokens=output_tokens))


def split_experiment(name: str, model: str, control_url: str, treatment_url: str, split: float = 0.5,
                     control_upstream: dict | None = None, treatment_upstream: dict | None = None,
                     treatment_extra: dict | None = None, **extra) -> dict:
    """An experiment with `split` (treatment's share) and exactly the variants control and treatment."""
    control = {"name": "control", "upstream": {"base_url": control_url, "model": f"{model}-v1", **(control_upstream or {})}}
    treatment = {"name": "treatment", "upstream": {"base_url": treatment_url, "model": f"{model}-v2", **(treatment_upstream or {})},
                 **(treatment_extra or {})}
    return {"name": name, "model": model, "split": split, "variants": [control, treatment], **extra}


class Gateway:
    def __init__(self, process: Process, config_path: Path, store: Path, config: dict, env: dict):
        self.process = process
        self.config_path = config_path
        self.store = store
        self.config = config
        self.env = env
        self.base_url = process.wait_ready().group(1)
        self.root = self.base_url[: -len("/v1")]

    def client(self, api_key: str = CLIENT_KEY, **kw) -> openai.OpenAI:
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, **kw)

    def async_client(self, api_key: str = CLIENT_KEY, **kw) -> openai.AsyncOpenAI:
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, **kw)

    def get(self, path: str, headers: dict | None = None):
        return raw_request(self.root + path, headers=headers)

    def post(self, path: str, body, headers: dict | None = None):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        return raw_request(self.root + path, method="POST", body=body, headers=headers)

    def metrics(self) -> str:
        status, _, body = self.get("/metrics")
        assert status == 200, body
        return body.decode()

    def stop(self) -> int:
        """SIGTERM; returns the exit status."""
        return self.process.terminate()

    def kill9(self):
        self.process.proc.send_signal(signal.SIGKILL)
        self.process.proc.wait(30)

    def export(self, include_qa: bool = False, experiment: str | None = None) -> list[dict]:
        return export_store(self.store, include_qa=include_qa, experiment=experiment)


def run_bakeoff(*args: str, check: bool = True, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert r.returncode == 0, f"bakeoff {' '.join(args)} exited {r.returncode}\nstdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}"
    return r


def export_store(store: Path, include_qa: bool = False, experiment: str | None = None) -> list[dict]:
    args = ["export", "--db", str(store)]
    if include_qa:
        args.append("--include-qa")
    if experiment:
        args += ["--experiment", experiment]
    r = run_bakeoff(*args)
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def gateway_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["BAKEOFF_ADMIN_KEY"] = ADMIN_KEY
    env[UPSTREAM_KEY_ENV] = UPSTREAM_KEY
    env.update(extra or {})
    return env


def start_gateway(registry: Registry, directory: Path, experiments: list[dict], env: dict | None = None,
                  extra_args: tuple[str, ...] = (), **top) -> Gateway:
    directory.mkdir(parents=True, exist_ok=True)
    store = directory / "store.db"
    config = {"listen": "127.0.0.1:8080", "threads": 2, "store": {"path": str(store), "flush_interval_ms": 50}}
    config.update(top)
    config["experiments"] = experiments
    path = directory / "gateway.json"
    path.write_text(json.dumps(config, indent=2))
    env = gateway_env(env)
    p = registry.add(Process("bakeoff serve", [BIN, "serve", "--config", str(path), "--listen", "127.0.0.1:0", *extra_args],
                             r"bakeoff serve listening on (http://\S+/v1)", env=env, cwd=str(directory)))
    return Gateway(p, path, store, config, env)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message} (last: {last!r})")


def assert_same_report(a, b, rel: float = 1e-9, path: str = "$") -> None:
    """Two JSON reports are the same: equal structure, strings, booleans and integers, and floats equal to `rel`
    relative (sums added in another order differ in their last bits; a printed report does not)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a.keys() ^ b.keys())} differ"
        for k in a:
            assert_same_report(a[k], b[k], rel, f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_report(x, y, rel, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool), f"{path}: {a!r} vs {b!r}"
        assert a == b or abs(a - b) <= rel * max(abs(a), abs(b)), f"{path}: {a!r} vs {b!r}"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def metric_value(metrics_text: str, metric: str, **labels) -> float | None:
    """The value of the sample `name{labels}` (all given labels must match exactly), or None."""
    for line in metrics_text.splitlines():
        if not line.startswith(metric + "{") and line.split(" ")[0] != metric:
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != metric:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(4))
    return None


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    if not os.path.exists(BIN):
        pytest.exit(f"the bakeoff binary is missing: {BIN} (run `make build` or set BAKEOFF_BIN)", returncode=2)
