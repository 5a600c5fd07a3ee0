"""The event store under `bakeoff serve`: a store that cannot be opened ends serve with its reason (exit 1, no
crash), and a full disk is retried, reported (/healthz 503, stderr, /metrics) and recovered from without
losing an event that fits in the queue or any feedback answered 200."""
import json
import os
import sqlite3
import subprocess
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from conftest import ADMIN_KEY, BIN, closed_port, metric_value, run_bakeoff, split_experiment, start_gateway, start_mock, users_in, wait_until

EXPERIMENT = "store-exp"
MODEL = "store-bot"
MESSAGES = [{"role": "user", "content": "tell me about my order " * 20}]

# The version 1 schema, as the first release wrote it (the old binary reads it; the new one upgrades it).
V1_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, experiment TEXT NOT NULL, kind TEXT NOT NULL,
    variant TEXT NOT NULL, user_id TEXT NOT NULL, conversation_id TEXT NOT NULL, request_id TEXT NOT NULL,
    status TEXT NOT NULL, qa INTEGER NOT NULL, line TEXT NOT NULL);
CREATE INDEX events_experiment ON events(experiment, id);
CREATE INDEX events_request ON events(request_id);
CREATE INDEX events_conversation ON events(conversation_id);
PRAGMA user_version = 1;
"""


def write_v1_store(path: Path, users: int = 400) -> int:
    """A version 1 store holding a simulated experiment's events; returns the number of events."""
    log = run_bakeoff("simulate", "--preset", "aa", "--users", str(users)).stdout.splitlines()
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    rows = []
    for line in log:
        e = json.loads(line)
        ts = int(datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp() * 1_000_000)
        kind = e["event"]
        conversation = e.get("conversation_id") or (e.get("request_id", "") if kind == "request" else "")
        rows.append((ts, e["experiment"], kind, e.get("variant", ""), e.get("user_id", ""), conversation,
                     e.get("request_id", ""), e.get("status", "ok") if kind == "request" else "", 0, line))
    db.executemany("INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()
    return len(rows)


def serve_config(directory: Path, store: str) -> Path:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    config = {"listen": "127.0.0.1:0", "store": {"path": store},
              "experiments": [split_experiment(EXPERIMENT, MODEL, url, url)]}
    path = directory / f"gateway-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(config))
    return path


def serve_once(config: Path, timeout: float = 20) -> tuple[int | None, str]:
    """Runs `bakeoff serve` until it exits (or `timeout`: then it is killed and the status is None)."""
    p = subprocess.Popen([BIN, "serve", "--config", str(config)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        return None, err.decode("utf-8", "replace")


def damaged_in_the_middle(directory: Path) -> Path:
    store = directory / "middle.db"
    assert write_v1_store(store) > 3000
    size = store.stat().st_size
    assert size > 1 << 20
    with open(store, "r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(os.urandom(8192))
    return store


def damaged_header(directory: Path) -> Path:
    store = directory / "header.db"
    write_v1_store(store, users=50)
    with open(store, "r+b") as f:
        f.write(b"\x5a" * 100)
    return store


def text_file(directory: Path) -> Path:
    path = directory / "notes.txt"
    path.write_text("not a database\n" * 200)
    return path


def a_directory(directory: Path) -> Path:
    path = directory / "a-folder"
    path.mkdir()
    return path


CASES = {
    "directory": (a_directory, "is a directory"),
    "missing-folder": (lambda d: d / "no-such-folder" / "store.db", "does not exist"),
    "text-file": (text_file, "not an event store"),
    "damaged-header": (damaged_header, "not an event store"),
    "garbage-in-the-middle": (damaged_in_the_middle, "is damaged"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_store_that_cannot_be_opened_ends_serve_with_its_reason(tmp_path, case):
    make, expected = CASES[case]
    store = make(tmp_path)
    config = serve_config(tmp_path, str(store))
    # The old abort was a race with the upstream client's thread: try several times.
    for attempt in range(6):
        code, err = serve_once(config)
        assert code == 1, f"attempt {attempt}: exit status {code}\n{err}"
        assert "unowned" not in err and "Fatal error" not in err and "stack trace" not in err.lower(), err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith(f"bakeoff: {store}:") and expected in lines[0], err
    if case == "garbage-in-the-middle":
        assert "backup" in err and ".dump" in err, err


def test_a_version1_store_is_upgraded_and_exports_the_same_bytes(procs, tmp_path):
    store = tmp_path / "store.db"
    count = write_v1_store(store, users=100)
    before = run_bakeoff("export", "--db", str(store), "--include-qa").stdout
    analysis = run_bakeoff("analyze", "--db", str(store), "--format", "json").stdout
    assert len(before.splitlines()) == count
    mock = start_mock(procs)
    gateway = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)])
    assert gateway.stop() == 0
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 5  # plans, looks and the compact rows included
    # The events are compact rows now; `events` is a view with the old columns.
    assert db.execute("SELECT count(*) FROM events WHERE kind = 'feedback' AND name = ''").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM event_rows").fetchone()[0] == count
    db.close()
    assert run_bakeoff("export", "--db", str(store), "--include-qa").stdout == before
    assert run_bakeoff("analyze", "--db", str(store), "--format", "json").stdout == analysis


def test_new_store_files_are_private(procs, tmp_path):
    mock = start_mock(procs)
    gateway = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)])
    gateway.client().chat.completions.create(model=MODEL, messages=MESSAGES, user="u1")
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(gateway.store) + suffix)
        assert path.exists(), path
        assert path.stat().st_mode & 0o777 == 0o600, f"{path}: {oct(path.stat().st_mode & 0o777)}"
    assert gateway.stop() == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (needs root; skipped where mount is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(directory: Path) -> Path:
    """Fills the file system of `directory` to the last byte with one file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_reported_retried_and_recovered_from(procs, tmp_path, small_disk):
    mock = start_mock(procs)
    gateway = start_gateway(procs, small_disk, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)],
                            log_content=True)
    client = gateway.client()
    users = users_in(EXPERIMENT, "control", 5, prefix="disk") + users_in(EXPERIMENT, "treatment", 5, prefix="disk")
    answered, feedback_ok, feedback_refused = [], [], 0

    def chat(i):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, user=users[i % len(users)])
        answered.append(raw.headers["x-bakeoff-request-id"])

    def feedback(request_id):
        nonlocal feedback_refused
        # The admin key may send feedback for any user (this test is about the store, not about who sends it).
        status, _, body = gateway.post("/v1/feedback", {"request_id": request_id, "name": "thumbs_up", "value": True},
                                       headers={"X-Bakeoff-Admin-Key": ADMIN_KEY})
        if status == 200:
            feedback_ok.append(request_id)
        else:
            assert status == 503, body
            assert json.loads(body)["error"]["code"] == "store_unavailable", body
            feedback_refused += 1
        return status

    for i in range(20):
        chat(i)
    assert feedback(answered[0]) == 200
    assert gateway.get("/healthz")[0] == 200

    filler = fill(small_disk)
    for i in range(20, 400):
        chat(i)
    status, _, body = wait_until(lambda: (r := gateway.get("/healthz")) and r[0] == 503 and r, timeout=30,
                                 message="/healthz 503 while the disk is full")
    health = json.loads(body)
    assert health["status"] == "unavailable"
    assert str(gateway.store) in health["reason"], health
    wait_until(lambda: "cannot write" in gateway.process.stderr, message="a line on stderr")
    assert sum("cannot write" in line for line in gateway.process.lines) == 1, gateway.process.stderr
    metrics = gateway.metrics()
    assert metric_value(metrics, "bakeoff_store_healthy") == 0
    assert metric_value(metrics, "bakeoff_store_write_errors_total") >= 1
    # Feedback is answered only once committed: while the disk is full it is refused.
    for request_id in answered[20:30]:
        feedback(request_id)
    assert feedback_refused >= 1
    assert metric_value(gateway.metrics(), "bakeoff_store_queue_depth") > 0

    filler.unlink()
    wait_until(lambda: gateway.get("/healthz")[0] == 200, timeout=60, message="/healthz 200 after space is freed")
    wait_until(lambda: "writes again" in gateway.process.stderr, message="the recovery line on stderr")
    for request_id in answered[30:40]:
        assert feedback(request_id) == 200
    metrics = gateway.metrics()
    assert metric_value(metrics, "bakeoff_store_healthy") == 1
    assert metric_value(metrics, "bakeoff_events_dropped_total") == feedback_refused
    assert gateway.stop() == 0

    events = gateway.export(include_qa=True)
    requests = {e["request_id"] for e in events if e["event"] == "request"}
    assert set(answered) <= requests, f"{len(set(answered) - requests)} of {len(answered)} answered requests are missing"
    rated = [e["request_id"] for e in events if e["event"] == "feedback"]
    assert sorted(rated) == sorted(feedback_ok)


def test_sigterm_right_after_the_ready_line_flushes_and_exits_0(procs, tmp_path):
    # The stop handler was installed only after the ready line (and a dispatch source registers late): a SIGTERM
    # sent at once killed the gateway without flushing, or was ignored.
    url = f"http://127.0.0.1:{closed_port()}/v1"
    for attempt in range(12):
        gateway = start_gateway(procs, tmp_path / f"run{attempt}", [split_experiment(EXPERIMENT, MODEL, url, url)])
        code = gateway.stop()
        assert code == 0, f"attempt {attempt}: exit status {code}\n{gateway.process.stderr}"
        assert "stopped" in gateway.process.stderr


def test_retention_deletes_old_events_off_the_request_path(procs, tmp_path):
    # A month-old experiment (the simulation starts 2026-11-01) in the store, then a gateway keeping 1 day.
    log = tmp_path / "old.jsonl"
    log.write_text(run_bakeoff("simulate", "--preset", "aa", "--users", "300").stdout)
    old = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(e["ts"] < datetime.now().strftime("%Y-%m-%d") for e in old)
    store = tmp_path / "store.db"
    run_bakeoff("import", "--db", str(store), str(log))
    mock = start_mock(procs)
    gateway = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)],
                            store={"path": str(store), "retention_days": 1})
    wait_until(lambda: metric_value(gateway.metrics(), "bakeoff_store_events_deleted_total") == len(old),
               message="retention to delete the old events")
    raw = gateway.client().chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, user="u1")
    assert gateway.stop() == 0
    events = gateway.export(include_qa=True)
    assert [e["request_id"] for e in events] == [raw.headers["x-bakeoff-request-id"]]
    assert "events kept 1 day" in run_bakeoff("serve", "--config", str(gateway.config_path), "--check").stdout
