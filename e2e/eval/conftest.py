"""Fixtures for the end-to-end tests of `bakeoff eval` (helpers in eval_helpers.py).

Every process started here is killed at teardown and every temporary folder removed, also when a test fails.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from .eval_helpers import BIN, Registry
from processes import module_procs, procs  # noqa: F401  (the fixtures both suites share)


@pytest.fixture(scope="session", autouse=True)
def _eval_binary_exists():
    if not os.path.exists(BIN):
        pytest.exit(f"the bakeoff binary is missing: {BIN} (run `make build` or set BAKEOFF_BIN)", returncode=2)


@pytest.fixture
def work():
    """A temporary folder, removed afterwards (eval runs use it as their working directory)."""
    with tempfile.TemporaryDirectory(prefix="bakeoff-eval-e2e-") as d:
        yield Path(d)


@pytest.fixture(scope="module")
def module_work():
    with tempfile.TemporaryDirectory(prefix="bakeoff-eval-e2e-") as d:
        yield Path(d)
