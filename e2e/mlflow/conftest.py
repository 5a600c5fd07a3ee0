"""Fixtures for `analyze --mlflow` and `eval --mlflow` against a real MLflow tracking server (PyPI `mlflow`, in
its own venv: MLFLOW_PY names its python).

The server runs on 127.0.0.1 on a free port with a SQLite store and the artifact proxy (`mlflow-artifacts:/`),
in a temporary folder; it and every process it starts are killed at teardown (its own process group), also
when a test fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import Process, Registry, closed_port, module_procs, procs  # noqa: E402,F401  (the fixtures the suites share)

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("BAKEOFF_BIN") or str(REPO / ".build" / "product" / "release" / "bakeoff")
MLFLOW_PY = os.environ.get("MLFLOW_PY") or str(REPO / ".venv-mlflow" / "bin" / "python")
# About 7 s on an idle machine of two cores; far more when it is busy.
START_TIMEOUT = 180.0


class MLflowServer:
    """`mlflow server` with one worker. Only the Host header 127.0.0.1:PORT is allowed (MLflow's protection
    against DNS rebinding), so a test can be refused by asking for localhost:PORT."""

    def __init__(self, registry: Registry, root: Path):
        self.port = closed_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        # The job runner (a dozen huey processes) is not needed for tracking.
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self.process = registry.add(Process(
            "mlflow server",
            [MLFLOW_PY, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{root}/mlflow.db", "--default-artifact-root", "mlflow-artifacts:/",
             "--artifacts-destination", str(root / "artifacts"), "--allowed-hosts", f"127.0.0.1:{self.port}"],
            r"Uvicorn running on http://", env=env, cwd=str(root), group=True))
        self.process.wait_ready(START_TIMEOUT)

    def api(self, endpoint: str, body: dict | None = None) -> dict:
        """One call of MLflow's REST API (POST with a body, else GET)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.uri}/api/2.0/mlflow/{endpoint}", data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def read_run(self, run_id: str, out: Path) -> dict:
        """The run as MLflow's Python client reads it; its artifacts downloaded into `out`."""
        r = subprocess.run([MLFLOW_PY, str(Path(__file__).with_name("read_run.py")), self.uri, run_id, str(out)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout)


@pytest.fixture(scope="session", autouse=True)
def _binaries_exist():
    if not os.path.exists(BIN):
        pytest.exit(f"the bakeoff binary is missing: {BIN} (run `make build` or set BAKEOFF_BIN)", returncode=2)
    if not os.path.exists(MLFLOW_PY):
        pytest.exit(f"MLflow's python is missing: {MLFLOW_PY} (run `make mlflow-venv` or set MLFLOW_PY)", returncode=2)


@pytest.fixture(scope="module")
def work():
    with tempfile.TemporaryDirectory(prefix="bakeoff-mlflow-e2e-") as d:
        yield Path(d)


@pytest.fixture(scope="module")
def mlflow_server(work, module_procs):
    root = work / "mlflow"
    root.mkdir()
    return MLflowServer(module_procs, root)
