"""`bakeoff analyze --db postgresql://...` computes the analysis inside PostgreSQL (per-user sums, rank-test counts,
quantile values and data-quality counts in SQL; only those come back) and gives the same report as the events of
the same data read from a SQLite store: the table and Markdown reports are identical, the JSON report's numbers
agree to 1e-9 relative (sums of fractional values are added in another order) and everything else is equal.

The data: a simulated experiment with a pre-period (CUPED), plus events that hit the rules one by one (duplicate
request ids, QA events, feedback out of its scale, per-request feedback without a request, unknown names,
implausible values, a user in two variants, a conversation of two users).
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import assert_same_report, run_bakeoff

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from postgres import ThrowawayPostgres, binaries  # noqa: E402

pytestmark = pytest.mark.skipif(binaries() is None, reason="PostgreSQL's server binaries are not installed (make deps)")

EXPERIMENT = "support-bot-v2"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def edge_cases(t0: datetime) -> list[dict]:
    """Events that each pin down one of the analysis's rules, from t0 on."""
    h = timedelta(hours=1)
    out: list[dict] = []

    def request(rid, user, variant, at, conversation="", latency=120.5, output=40, status="ok", qa=False):
        e = {"event": "request", "ts": iso(t0 + at), "experiment": EXPERIMENT, "request_id": rid, "user_id": user,
             "variant": variant, "status": status, "latency_ms": latency, "output_tokens": output, "input_tokens": 12}
        if conversation:
            e["conversation_id"] = conversation
        if qa:
            e["qa"] = True
        out.append(e)

    def feedback(name, value, at, request_id="", conversation="", qa=False):
        e = {"event": "feedback", "ts": iso(t0 + at), "experiment": EXPERIMENT, "name": name, "value": value}
        if request_id:
            e["request_id"] = request_id
        if conversation:
            e["conversation_id"] = conversation
        if qa:
            e["qa"] = True
        out.append(e)

    request("e-r1", "e-a", "control", 1 * h, "e-c1")
    request("e-r1", "e-b", "treatment", 2 * h, "e-c9")                 # a duplicate id
    request("e-r2", "e-switch", "control", 30 * h, "e-c2")             # a user in two variants
    request("e-r3", "e-switch", "treatment", 20 * h, "e-c3")
    request("e-r4", "e-c", "control", 5 * h, "e-shared")               # a conversation of two users
    request("e-r5", "e-d", "treatment", 6 * h, "e-shared")
    request("e-r6", "e-e", "control", 5 * h, "e-c6", latency=-4, output=3_000_000_000)  # implausible values
    request("e-qa", "e-admin", "treatment", 5 * h, qa=True)
    feedback("csat", 9, 6 * h, conversation="e-c6")                    # out of the scale
    feedback("csat", 3.5, 6 * h, conversation="e-c6")
    feedback("thumbs_up", True, 7 * h, conversation="e-c6")            # per request, without a request
    feedback("thumbs_up", False, 7 * h, request_id="e-r5")
    feedback("mood", 2, 8 * h, conversation="e-c6")                    # a name no metric reads
    feedback("task_completed", 1, 9 * h, request_id="e-nowhere")       # a target never seen
    feedback("task_completed", 1, 9 * h, request_id="e-qa", qa=True)
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The same log in a SQLite store and a PostgreSQL store; yields (log, sqlite path, url, start, until)."""
    directory = tmp_path_factory.mktemp("pganalysis")
    log = directory / "events.jsonl"
    run_bakeoff("simulate", "--preset", "seed-case-study", "--users", "3000", "--days", "21", "--seed", "11",
                "--experiment", EXPERIMENT, "--output", str(log))
    lines = log.read_text().splitlines()
    first = datetime.fromisoformat(json.loads(lines[0])["ts"].replace("Z", "+00:00"))
    start = (first + timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)
    lines += [json.dumps(e) for e in edge_cases(start + timedelta(days=1))]
    log.write_text("\n".join(lines) + "\n")
    sqlite = directory / "bakeoff.sqlite"
    run_bakeoff("import", "--db", str(sqlite), str(log))
    pg = ThrowawayPostgres()
    try:
        run_bakeoff("import", "--db", pg.url, str(log))
        yield log, sqlite, pg.url, iso(start), iso(start + timedelta(days=9, hours=5))
    finally:
        pg.close()


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("pgconfig") / "bakeoff.json"
    path.write_text(json.dumps({"split": 0.2, "metrics": [
        {"name": "task_completion"}, {"name": "escalation_rate", "margin": 0.01},
        {"name": "csat", "rank_test": "mann_whitney"}, {"name": "avg_turns", "rank_test": "mann_whitney"},
        {"name": "thumbs_up_rate"}, {"name": "repeat_usage"}, {"name": "error_rate", "rank_test": "mann_whitney"},
        {"name": "output_tokens", "rank_test": "mann_whitney"},
        {"name": "latency_p95", "role": "guardrail", "margin_relative": 0.15}, {"name": "ttft_p50"}]}))
    return path


CASES = {
    "defaults": [],
    "cuped": ["--start", "START"],
    "until": ["--start", "START", "--until", "UNTIL"],
    "config": ["--config", "CONFIG", "--start", "START"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_report_from_postgresql_is_the_report_of_the_events(stores, config, case):
    log, sqlite, url, start, until = stores
    args = [{"START": start, "UNTIL": until, "CONFIG": str(config)}.get(a, a) for a in CASES[case]]
    for fmt in ("table", "markdown"):
        from_pg = run_bakeoff("analyze", "--db", url, "--format", fmt, *args).stdout
        from_sqlite = run_bakeoff("analyze", "--db", str(sqlite), "--format", fmt, *args).stdout
        assert from_pg == from_sqlite, f"{fmt} differs"
    from_pg = json.loads(run_bakeoff("analyze", "--db", url, "--format", "json", *args).stdout)
    from_sqlite = json.loads(run_bakeoff("analyze", "--db", str(sqlite), "--format", "json", *args).stdout)
    from_log = json.loads(run_bakeoff("analyze", str(log), "--format", "json", *args).stdout)
    assert from_sqlite == from_log
    assert_same_report(from_pg, from_sqlite)
    # --read-events: the events read out of PostgreSQL, the event path's very bytes.
    assert json.loads(run_bakeoff("analyze", "--db", url, "--read-events", "--format", "json", *args).stdout) == from_sqlite
    # The edge cases reached the data-quality section.
    quality = json.dumps(from_pg.get("data_quality", from_pg))
    assert "mood" in quality


def test_assert_same_report_catches_a_difference():
    a = {"metrics": [{"name": "csat", "lift": 0.1234567890123, "n": 3}], "decision": "ship"}
    assert_same_report(a, json.loads(json.dumps(a)))
    with pytest.raises(AssertionError):
        assert_same_report(a, {"metrics": [{"name": "csat", "lift": 0.12346, "n": 3}], "decision": "ship"})
    with pytest.raises(AssertionError):
        assert_same_report(a, {"metrics": [{"name": "csat", "lift": 0.1234567890123, "n": 4}], "decision": "ship"})
    with pytest.raises(AssertionError):
        assert_same_report(a, {"metrics": [{"name": "csat", "lift": 0.1234567890123, "n": 3}], "decision": "stop"})


def test_a_role_without_temporary_tables_gets_the_same_report_from_the_events(stores):
    log, sqlite, url, start, _ = stores
    host = url.split("host=")[1]
    psql = [f"{binaries()}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-U", "postgres", "-d", "postgres"]
    grant = ("CREATE ROLE reader LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;"
             " REVOKE TEMPORARY ON DATABASE postgres FROM PUBLIC")
    subprocess.run(psql + ["-c", grant], check=True, capture_output=True)
    try:
        reader = url.replace("postgres@", "reader@", 1)
        denied = subprocess.run(psql[:-4] + ["-h", host, "-U", "reader", "-d", "postgres", "-c", "CREATE TEMP TABLE t (x int)"],
                                capture_output=True, text=True)
        assert denied.returncode != 0 and "permission denied" in denied.stderr
        from_reader = run_bakeoff("analyze", "--db", reader, "--start", start, "--format", "markdown").stdout
        from_sqlite = run_bakeoff("analyze", "--db", str(sqlite), "--start", start, "--format", "markdown").stdout
        assert from_reader == from_sqlite
    finally:
        subprocess.run(psql + ["-c", "GRANT TEMPORARY ON DATABASE postgres TO PUBLIC; DROP OWNED BY reader; DROP ROLE reader"],
                       check=True, capture_output=True)


def test_read_events_applies_to_a_postgresql_store_only(stores):
    log, sqlite, _, _, _ = stores
    for target in (["--db", str(sqlite)], [str(log)]):
        r = run_bakeoff("analyze", *target, "--read-events", check=False)
        assert r.returncode == 2 and "--read-events applies to a PostgreSQL store" in r.stderr, r.stderr


@pytest.mark.parametrize("args", [["--start", "2030-01-01T00:00:00Z"], ["--until", "2020-01-01T00:00:00Z"]])
def test_nothing_to_analyse_fails_as_the_events_do(stores, args):
    _, sqlite, url, _, _ = stores
    from_pg = run_bakeoff("analyze", "--db", url, *args, check=False)
    from_sqlite = run_bakeoff("analyze", "--db", str(sqlite), *args, check=False)
    assert from_pg.returncode == from_sqlite.returncode == 1
    assert from_pg.stderr.replace(url, "STORE") == from_sqlite.stderr.replace(str(sqlite), "STORE")
