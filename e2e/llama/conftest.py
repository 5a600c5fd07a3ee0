"""Fixtures for the gateway against a real OpenAI-compatible server no one here wrote: llama.cpp's server
(llama-cpp-python's `python -m llama_cpp.server`), serving two tiny random-weight models that the session
writes itself (scripts/llama/make_tiny_gguf.py), behind a real `bakeoff serve`, called with the official
openai client. Helpers are in llama_helpers.py.

The llama.cpp side runs in its own venv (.venv-llama, made by `make llama-venv`, see mk/llama.mk): its python
comes in LLAMA_PY. The tests themselves run in .venv-test (openai, pytest), like e2e/gateway.

Every process started here is killed at teardown, also when a test fails.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .llama_helpers import BIN, LLAMA_PY, LLAMA_READY_TIMEOUT, MAKE_GGUF, MODEL_A, MODEL_B, N_CTX, LlamaServer, Process, \
    Registry, closed_port, run_llama_py
from processes import module_procs, procs  # noqa: F401  (the fixtures every e2e suite shares)


@pytest.fixture(scope="session", autouse=True)
def _prerequisites():
    if not os.path.exists(BIN):
        pytest.exit(f"the bakeoff binary is missing: {BIN} (run `make build` or set BAKEOFF_BIN)", returncode=2)
    if not os.path.exists(LLAMA_PY):
        pytest.skip(f"no llama.cpp venv at {LLAMA_PY}: `make llama-venv` makes it (needs a C and a C++ compiler), "
                    "or set LLAMA_PY")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Two tiny random-weight GGUF models (seeds 1 and 2), written with the gguf package for this session."""
    d = tmp_path_factory.mktemp("models")
    paths = {MODEL_A: d / "tiny-a.gguf", MODEL_B: d / "tiny-b.gguf"}
    for seed, (alias, path) in enumerate(paths.items(), start=1):
        run_llama_py(str(MAKE_GGUF), str(path), "--seed", str(seed))
        assert path.stat().st_size > 100_000, path
    return paths


@pytest.fixture(scope="session")
def session_procs():
    registry = Registry()
    try:
        yield registry
    finally:
        registry.cleanup()


@pytest.fixture(scope="session")
def llama(session_procs, tiny_models, tmp_path_factory) -> LlamaServer:
    """llama.cpp's server on 127.0.0.1 and a free port, serving both models (it swaps them on demand)."""
    d = tmp_path_factory.mktemp("llama")
    port = closed_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "models": [
            {"model": str(path), "model_alias": alias, "n_ctx": N_CTX, "n_threads": 1, "n_threads_batch": 1,
             "n_batch": 128, "seed": 7, "verbose": False}
            for alias, path in tiny_models.items()
        ],
    }
    config_path = d / "llama.json"
    config_path.write_text(json.dumps(config, indent=2))
    p = session_procs.add(Process("llama_cpp.server", [LLAMA_PY, "-m", "llama_cpp.server", "--config_file", str(config_path)],
                                  r"Uvicorn running on (http://\S+)", cwd=str(d)))
    p.wait_ready(LLAMA_READY_TIMEOUT)
    server = LlamaServer(p, port, config)
    # Both models answer (and are loaded once each before any timing matters).
    for alias in tiny_models:
        server.client().completions.create(model=alias, prompt="hello", max_tokens=1, temperature=0)
    return server
