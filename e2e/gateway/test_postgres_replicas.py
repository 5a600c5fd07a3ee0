"""Many gateways on one PostgreSQL store: two `bakeoff serve` processes share a throw-away PostgreSQL server (on a
Unix socket, started by the test as a non-root user), take simulated chat traffic and feedback (each feedback sent
to the other gateway than the one that served its request), while one gateway is killed with SIGKILL midway and
the database is crashed and restarted once. Then:

- every feedback answered 200 is in the store;
- request events lost are within the documented window (what the killed gateway answered in the flush interval
  before the kill); the other gateway, which lived through the database's crash, lost none;
- no event is stored twice;
- `bakeoff analyze --db postgresql://...` (computed inside the database) gives the report of the exported log (numbers to 1e-9) and counts exactly the requests
  both gateways served (less the window);
- gateways running different plans for one experiment report it on /healthz and /metrics.
"""
from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import (ADMIN_KEY, assert_same_report, metric_value, raw_request, run_bakeoff, split_experiment, start_gateway, start_mock,
                      wait_until)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from postgres import ThrowawayPostgres, binaries  # noqa: E402

pytestmark = pytest.mark.skipif(binaries() is None, reason="PostgreSQL's server binaries are not installed (make deps)")

EXPERIMENT = "pg-exp"
MODEL = "pg-bot"
FEEDBACK_KEY = "shared-feedback-key-0123456789abcdef"
FLUSH_MS = 50


@pytest.fixture
def postgres():
    pg = ThrowawayPostgres()
    yield pg
    pg.close()


def start_replica(procs, directory: Path, pg: ThrowawayPostgres, experiment: dict):
    return start_gateway(procs, directory, [experiment], env={"BAKEOFF_FEEDBACK_KEY": FEEDBACK_KEY},
                         store={"url": pg.url, "flush_interval_ms": FLUSH_MS})


class Traffic:
    """Chat requests and feedback from a few threads, each to a gateway picked at random among those up."""

    def __init__(self, gateways: dict, users: int = 300, threads: int = 6, seed: int = 7):
        self.gateways = gateways          # name -> Gateway, changed by the test as gateways die and return
        self.up = set(gateways)
        self.users = [f"pg-user-{i}" for i in range(users)]
        self.threads = threads
        self.seed = seed
        self.lock = threading.Lock()
        self.served = []                  # (request id, user, gateway, monotonic time answered)
        self.acked = []                   # (request id, value, gateway asked, gateway that served)
        self.unanswered = []              # (request id, value): the gateway died before it answered
        self.feedback_refused = Counter()
        self.chat_failed = Counter()
        self.stopping = threading.Event()

    def worker(self, k: int):
        rng = random.Random(self.seed * 1000 + k)
        while not self.stopping.is_set():
            with self.lock:
                up = sorted(self.up)
            if not up:
                time.sleep(0.01)
                continue
            name = rng.choice(up)
            user = rng.choice(self.users)
            body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "user": user})
            try:
                status, headers, _ = raw_request(self.gateways[name].base_url + "/chat/completions", "POST", body, timeout=10)
            except OSError:
                with self.lock:
                    self.chat_failed[name] += 1
                continue
            if status != 200:
                with self.lock:
                    self.chat_failed[f"{name} {status}"] += 1
                continue
            rid = headers["x-bakeoff-request-id"]
            with self.lock:
                self.served.append((rid, user, name, time.monotonic()))
                others = sorted(self.up - {name}) or [name]
            asked = rng.choice(others)
            value = rng.random() < 0.6
            feedback = json.dumps({"request_id": rid, "user": user, "name": "task_completed", "value": value})
            try:
                status, _, answer = raw_request(self.gateways[asked].root + "/v1/feedback", "POST", feedback, timeout=10)
            except OSError:
                status, answer = 0, b""
            with self.lock:
                if status == 200:
                    self.acked.append((rid, value, asked, name))
                elif status == 0:
                    self.unanswered.append((rid, value))
                else:
                    self.feedback_refused[f"{asked} {status} {answer[:80]!r}"] += 1

    def __enter__(self):
        self.workers = [threading.Thread(target=self.worker, args=(k,), daemon=True) for k in range(self.threads)]
        for w in self.workers:
            w.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for w in self.workers:
            w.join(30)


def healthz(gateway) -> tuple[int, dict]:
    try:
        status, _, body = gateway.get("/healthz")
    except OSError:
        return 0, {}
    return status, json.loads(body)


def test_two_gateways_one_postgres_through_kill_and_database_crash(procs, tmp_path, postgres):
    mock = start_mock(procs, latency_ms=3)
    experiment = split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)
    a = start_replica(procs, tmp_path / "a", postgres, experiment)
    b = start_replica(procs, tmp_path / "b", postgres, experiment)
    gateways = {"a": a, "b": b}
    traffic = Traffic(gateways)
    crash_seen_unhealthy = False
    with traffic:
        time.sleep(3)
        # Gateway a dies with whatever it had not committed.
        with traffic.lock:
            traffic.up.discard("a")
        killed_at = time.monotonic()
        a.kill9()
        time.sleep(1.5)
        # The database crashes (immediate shutdown) and comes back 2 s later; b keeps serving meanwhile.
        postgres.crash()
        wait_until(lambda: healthz(b)[0] == 503, timeout=15, message="b's /healthz to say the store fails")
        crash_seen_unhealthy = True
        time.sleep(2)
        postgres.start()
        wait_until(lambda: healthz(b)[0] == 200, timeout=30, message="b's store to write again")
        # Gateway a comes back on the same store.
        a2 = start_replica(procs, tmp_path / "a2", postgres, experiment)
        gateways["a2"] = a2
        with traffic.lock:
            traffic.up.add("a2")
        time.sleep(3)
    assert crash_seen_unhealthy
    print(f"served {len(traffic.served)} acked {len(traffic.acked)} chat_failed {dict(traffic.chat_failed)} refused {dict(traffic.feedback_refused)}")
    metrics_b = b.metrics()
    assert b.stop() == 0 and a2.stop() == 0, b.process.stderr[-3000:] + a2.process.stderr[-3000:]

    events = [json.loads(line) for line in run_bakeoff("export", "--db", postgres.url, "--include-qa").stdout.splitlines() if line.strip()]
    requests = [e for e in events if e["event"] == "request"]
    feedback = [e for e in events if e["event"] == "feedback"]
    stored_ids = Counter(e["request_id"] for e in requests)
    served = traffic.served
    assert len(served) > 300, f"too little traffic: {len(served)} served, failures {traffic.chat_failed}"
    assert len(traffic.acked) > 200, f"too little feedback acknowledged: {len(traffic.acked)}; refused {traffic.feedback_refused}"
    assert any(asked != by for _, _, asked, by in traffic.acked), "no feedback went to the other gateway"

    problems = []
    duplicates = [rid for rid, n in stored_ids.items() if n > 1]
    if duplicates:
        problems.append(f"request events stored twice: {duplicates[:5]}")
    stored_feedback = Counter((e["request_id"], float(e["value"])) for e in feedback)
    missing_feedback = [(rid, v) for rid, v, _, _ in traffic.acked if stored_feedback[(rid, float(v))] == 0]
    if missing_feedback:
        problems.append(f"{len(missing_feedback)} acknowledged feedback not stored: {missing_feedback[:5]}")
    # Feedback sent to the gateway killed may have been committed before it could answer: stored, not acknowledged.
    # Anything else stored must have been acknowledged.
    sent = Counter((rid, float(v)) for rid, v, _, _ in traffic.acked) + Counter((rid, float(v)) for rid, v in traffic.unanswered)
    unexpected = stored_feedback - sent
    if unexpected or not len(traffic.acked) <= len(feedback) <= len(traffic.acked) + len(traffic.unanswered):
        problems.append(f"{len(feedback)} feedback events stored for {len(traffic.acked)} acknowledged and {len(traffic.unanswered)} "
                        f"unanswered; stored but neither: {list(unexpected)[:5]}")
    lost = [(rid, g, t) for rid, _, g, t in served if stored_ids[rid] == 0]
    print("lost", len(lost), [(g, round(killed_at - t, 3)) for rid, g, t in lost][:20], "cross", sum(1 for _, _, x, y in traffic.acked if x != y))
    window = FLUSH_MS / 1000 + 0.2  # the flush interval before the kill, and the commit in flight
    outside = [(rid, g, round(killed_at - t, 3)) for rid, g, t in lost if g != "a" or killed_at - t > window]
    if outside:
        problems.append(f"request events lost outside the kill window: {outside[:5]} ({len(outside)} in all)")
    served_ids = {rid for rid, _, _, _ in served}
    unknown = [rid for rid in stored_ids if rid not in served_ids]
    # A request answered while the client gave up on it is stored but not counted served; none here.
    if unknown:
        problems.append(f"stored requests nobody was answered for: {unknown[:5]}")
    assert not problems, "\n".join(problems) + f"\nchat failures {traffic.chat_failed}\nfeedback refused {traffic.feedback_refused}"

    # The analysis of the shared store: the same as the exported log's, and it counts what both gateways served.
    log = tmp_path / "export.jsonl"
    log.write_text(run_bakeoff("export", "--db", postgres.url).stdout)
    from_db = json.loads(run_bakeoff("analyze", "--db", postgres.url, "--format", "json").stdout)
    from_log = json.loads(run_bakeoff("analyze", str(log), "--format", "json").stdout)
    assert_same_report(from_db, from_log)
    served_and_stored = [s for s in served if stored_ids[s[0]]]
    users = {u for _, u, _, _ in served_and_stored}
    text = json.dumps(from_db)
    assert sum(v["users"] for v in from_db["variants"]) == len(users), text[:2000]
    # b counted the requests it served (the crash included) in /metrics; all of them are in the store.
    b_served = sum(1 for _, _, g, _ in served if g == "b")
    counted = sum(metric_value(metrics_b, "bakeoff_requests_total", experiment=EXPERIMENT, variant=v, status="ok") or 0
                  for v in ("control", "treatment"))
    assert counted == b_served, (counted, b_served)
    assert "the event store writes again" in b.process.stderr


def test_replicas_with_different_plans_are_a_health_problem(procs, tmp_path, postgres):
    mock = start_mock(procs)
    a = start_replica(procs, tmp_path / "a", postgres, split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, split=0.5))
    same = start_replica(procs, tmp_path / "same", postgres, split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, split=0.5))
    assert healthz(a) == (200, {"status": "ok"}) and healthz(same) == (200, {"status": "ok"})
    # A third gateway starts with a different split: it sees the others at once, they see it at their next heartbeat.
    other = start_replica(procs, tmp_path / "other", postgres, split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, split=0.2))
    status, body = healthz(other)
    assert status == 200 and body["status"] == "degraded", body
    assert any("split" in p and EXPERIMENT in p for p in body["problems"]), body
    wait_until(lambda: healthz(a)[1].get("status") == "degraded", timeout=20, message="a to see the other plan")
    assert metric_value(a.metrics(), "bakeoff_replicas_with_other_plans") == 1
    assert "runs a different plan" in a.process.stderr
    # The plan is recorded once per change however many gateways start: 0.5, then 0.2.
    assert postgres.psql(f"SELECT count(*) FROM plans WHERE experiment = '{EXPERIMENT}'").strip() == "2"
    # Once the odd one stops (and its heartbeat is old), the others are healthy again.
    assert other.stop() == 0
    wait_until(lambda: healthz(a) == (200, {"status": "ok"}), timeout=40, message="a healthy again")
    assert "run the same plans again" in a.process.stderr


def test_a_feedback_token_works_at_once_on_another_gateway(procs, tmp_path, postgres):
    """A browser sends feedback with the response's token as soon as it has the answer, and the load balancer
    takes it to another gateway, which has not seen the request committed yet (the first writes every 400 ms
    here): the feedback is still taken, once, for the right user."""
    mock = start_mock(procs)
    experiment = split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)
    store = {"url": postgres.url, "flush_interval_ms": 400}
    env = {"BAKEOFF_FEEDBACK_KEY": FEEDBACK_KEY}
    a = start_gateway(procs, tmp_path / "a", [experiment], env=env, store=store)
    b = start_gateway(procs, tmp_path / "b", [experiment], env=env, store=store)
    answers = []
    for k in range(12):
        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "user": f"token-user-{k}"})
        status, headers, _ = raw_request(a.base_url + "/chat/completions", "POST", body, timeout=10)
        assert status == 200
        token = headers["x-bakeoff-feedback-token"]
        rid = headers["x-bakeoff-request-id"]
        for target in ({"request_id": rid}, {"conversation_id": rid}):
            name = "thumbs_up" if "request_id" in target else "task_completed"
            feedback = json.dumps({**target, "feedback_token": token, "name": name, "value": True})
            answers.append((rid, raw_request(b.root + "/v1/feedback", "POST", feedback, timeout=10)[::2]))
    refused = [(rid, status, answer[:120]) for rid, (status, answer) in answers if status != 200]
    assert not refused, refused
    a.stop()
    b.stop()
    events = [json.loads(line) for line in run_bakeoff("export", "--db", postgres.url).stdout.splitlines()]
    feedback = [e for e in events if e["event"] == "feedback"]
    assert len(feedback) == 24
    users = {e["request_id"]: e["user_id"] for e in events if e["event"] == "request"}
    assert all(e["user_id"] == users[e.get("request_id") or e["conversation_id"]] for e in feedback)
