"""The warehouse SQL for DuckDB and ClickHouse (scripts/sql/summary.duckdb.sql, summary.clickhouse.sql) against the
SQLite version (scripts/sql/summary.sql, itself checked against `EventAggregator` by SummaryInputTests) on the
same events table, and `bakeoff analyze --summary` on what each writes.

One store is made with `bakeoff import` from a simulated log plus hand-made edge cases, so its `events` table is
exactly Bakeoff's. It holds four experiments:
  support-bot-v2  the simulation (with a pre-period: the start is halfway) plus the edge cases' users
  sim-only        the same simulated lines under another name (so the edge cases' share of the above is known)
  edge-cases      only the edge cases, whose sums are worked out by hand below (EDGE_USERS)
  other-experiment  one user who must not appear anywhere
and, written into the table directly, rows that a warehouse copy may hold but `bakeoff import` never writes:
  warehouse-rows  a request with an empty conversation_id and feedback on an unknown request (WAREHOUSE_USERS)
SQLite runs summary.sql on the store itself (Python's sqlite3, the shell's :experiment/:start as named
parameters); the table is copied into DuckDB (from the rows Python's sqlite3 reads) and into chDB (with
ClickHouse's sqlite() table function), and each runs its dialect's file. The results must be equal row for row,
the edge cases must give the hand-computed sums in every engine, each engine's own CSV must print every number
exactly, and `bakeoff analyze --summary --format json` must give the same report from each engine's CSV.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sqlite3
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("BAKEOFF_BIN") or str(REPO / ".build" / "product" / "release" / "bakeoff")
SQL = REPO / "scripts" / "sql"

EXPERIMENT, SIM_ONLY, EDGE, OTHER = "support-bot-v2", "sim-only", "edge-cases", "other-experiment"
WAREHOUSE = "warehouse-rows"
START = "2026-11-08T00:00:00Z"  # halfway through the simulated 14 days: the first half is the pre-period
S = datetime(2026, 11, 8, tzinfo=timezone.utc)
H = timedelta(hours=1)

COLUMNS = ["experiment", "variant", "metric", "assigned_users", "users", "sum", "sum_squares", "units",
           "units_squares", "sum_units_products", "pre_sum", "pre_sum_squares", "pre_units", "pre_units_squares",
           "pre_sum_pre_units_products", "sum_pre_sum_products", "units_pre_units_products",
           "sum_pre_units_products", "units_pre_sum_products"]
NAMES = {"experiment", "variant", "metric"}
# Counts and sums of products of counts: whole numbers, compared exactly and printed without a fraction by the
# dialects (SQLite's TOTAL and printf give them as "6989.0").
INTEGER_COLUMNS = {"assigned_users", "users", "units", "units_squares", "pre_units", "pre_units_squares",
                   "units_pre_units_products"}
METRICS = ["output_tokens", "task_completion"]  # the files' ORDER BY metric

# Each edge-case user's variant and, per metric, (m, d, mp, dp): the post-period sum and units and the pre-period
# ones (0 without), by the analysis's rules. The comment says which rule the user pins down: a dialect that broke
# it would give other sums.
EDGE_USERS = {
    # Stored control first but later by time: in treatment (first request by time), both requests count there;
    # feedback reaches x-c2 through its request; the pre-period has one conversation and one request; a post
    # feedback naming a pre-period request is dropped.
    "x-switch": ("treatment", {"task_completion": (1, 2, 1, 1), "output_tokens": (30, 2, 100, 1)}),
    # Two outcomes at the same time: the later stored (1) counts; a QA request in treatment is left out (else
    # the user would be in treatment); feedback on an unknown conversation is dropped.
    "x-tie": ("control", {"task_completion": (1, 1, 0, 0), "output_tokens": (41, 1, 0, 0)}),
    # The later by time (1) counts although stored first.
    "x-late": ("control", {"task_completion": (1, 1, 0, 0), "output_tokens": (42, 1, 0, 0)}),
    # A request id stored twice after the start counts once, the first stored (50, not 70); the same id before
    # the start counts in the pre-period; feedback on an unknown request is dropped.
    "x-dup": ("control", {"output_tokens": (50, 1, 5, 1)}),
    # A request without output_tokens (null) is not a unit of it; feedback through the request (which has no
    # conversation id: the store files it under the request id).
    "x-none": ("treatment", {"task_completion": (1, 1, 0, 0)}),
    # "value": true / false are 1 / 0, directly and through a request, before and after the start.
    "x-bool": ("treatment", {"task_completion": (1, 2, 1, 1), "output_tokens": (65, 2, 60, 1)}),
    # x-sc1's first stored request is x-own1's (x-own2's is earlier by time): the outcome is x-own1's.
    "x-own1": ("control", {"task_completion": (0, 1, 0, 0), "output_tokens": (44, 1, 0, 0)}),
    "x-own2": ("treatment", {"output_tokens": (45, 1, 0, 0)}),
    # 90,000,001² = 8,100,000,180,000,001 needs 16 digits: printing with 15 loses it.
    "x-big": ("control", {"output_tokens": (90000001, 1, 3, 1)}),
    # Two first requests at the same time: the first stored (treatment) decides.
    "x-eq": ("treatment", {"task_completion": (1, 1, 0, 0), "output_tokens": (93, 2, 0, 0)}),
    # A request exactly at the start is in the post-period.
    "x-solo": ("treatment", {"output_tokens": (48, 1, 0, 0)}),
}
# Only in edge-cases: a variant whose one user has no unit of either metric, so its rows have users = 0 and
# zero sums.
CANARY = ("x-canary", "canary")
# warehouse-rows: w-a's request has an empty conversation_id (the store files a request without one under its
# request id, so only a warehouse table has this), and w-a's feedback names a request that is not there: it is
# dropped, so w-a has no task_completion unit. (A ClickHouse LEFT JOIN without join_use_nulls gives the missing
# request's conversation_id as '' instead of NULL, and the feedback would complete conversation ''.)
WAREHOUSE_USERS = {"w-a": ("control", {"output_tokens": (5, 1, 0, 0)})}


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def edge_events(experiment: str, canary: bool) -> list[dict]:
    """The hand-made events of EDGE_USERS, in storage order."""
    def request(user, variant, rid, conversation, t, output=40, qa=False):
        e = {"event": "request", "ts": ts(t), "experiment": experiment, "variant": variant, "user_id": user}
        if conversation is not None:
            e["conversation_id"] = conversation
        e.update({"request_id": rid, "latency_ms": 100, "output_tokens": output, "status": "ok"})
        if qa:
            e["qa"] = True
        return e

    def completed(user, value, t, request=None, conversation=None, qa=False):
        e = {"event": "feedback", "ts": ts(t), "experiment": experiment, "user_id": user}
        if conversation is not None:
            e["conversation_id"] = conversation
        if request is not None:
            e["request_id"] = request
        e.update({"name": "task_completed", "value": value})
        if qa:
            e["qa"] = True
        return e

    events = [
        request("x-switch", "control", "x-r1", "x-c1", S + 3 * H, output=10),
        request("x-switch", "treatment", "x-r2", "x-c2", S + 1 * H, output=20),
        completed("x-switch", 1, S + 4 * H, conversation="x-c1"),
        completed("x-switch", 0, S + 4 * H, request="x-r2"),
        request("x-switch", "control", "x-p1", "x-pc1", S - 48 * H, output=100),
        completed("x-switch", 1, S - 47 * H, conversation="x-pc1"),
        completed("x-switch", 0, S + 5 * H, request="x-p1"),

        request("x-tie", "control", "x-t1", "x-tc1", S + 2 * H, output=41),
        completed("x-tie", 0, S + 3 * H, conversation="x-tc1"),
        completed("x-tie", 1, S + 3 * H, conversation="x-tc1"),
        request("x-tie", "treatment", "x-tq", "x-tqc", S + 1 * H, output=999, qa=True),
        completed("x-tie", 1, S + 3 * H, conversation="x-ghost"),

        request("x-late", "control", "x-l1", "x-lc1", S + 2 * H, output=42),
        completed("x-late", 1, S + 6 * H, conversation="x-lc1"),
        completed("x-late", 0, S + 5 * H, conversation="x-lc1"),

        request("x-qa", "treatment", "x-q1", "x-qc1", S + 2 * H, output=999, qa=True),
        completed("x-qa", 1, S + 3 * H, conversation="x-qc1", qa=True),

        request("x-dup", "control", "x-d1", "x-dc0", S - 24 * H, output=5),
        request("x-dup", "control", "x-d1", "x-dc1", S + 4 * H, output=50),
        request("x-dup", "control", "x-d1", "x-dc1", S + 4 * H, output=70),
        completed("x-dup", 1, S + 5 * H, request="x-missing"),

        request("x-none", "treatment", "x-n1", None, S + 6 * H, output=None),
        completed("x-none", 1, S + 7 * H, request="x-n1"),

        request("x-bool", "treatment", "x-b1", "x-bc1", S + 1 * H, output=30),
        request("x-bool", "treatment", "x-b2", "x-bc2", S + 1.5 * H, output=35),
        completed("x-bool", True, S + 2 * H, conversation="x-bc1"),
        completed("x-bool", False, S + 2 * H, request="x-b2"),
        request("x-bool", "treatment", "x-bp1", "x-bpc1", S - 30 * H, output=60),
        completed("x-bool", True, S - 29 * H, conversation="x-bpc1"),

        request("x-own1", "control", "x-s1", "x-sc1", S + 3 * H, output=44),
        request("x-own2", "treatment", "x-s2", "x-sc1", S + 2 * H, output=45),
        completed("x-own1", 0, S + 4 * H, conversation="x-sc1"),

        request("x-big", "control", "x-g1", "x-gc1", S + 1 * H, output=90000001),
        request("x-big", "control", "x-gp1", "x-gpc1", S - 10 * H, output=3),

        request("x-eq", "treatment", "x-e1", "x-ec1", S + 1 * H, output=46),
        request("x-eq", "control", "x-e2", "x-ec2", S + 1 * H, output=47),
        completed("x-eq", 1, S + 2 * H, conversation="x-ec1"),

        request("x-solo", "treatment", "x-z1", "x-zc1", S, output=48),
    ]
    if canary:
        user, variant = CANARY
        events += [
            request(user, variant, "x-k1", "x-kc1", S + 1 * H, output=None),
            request(user, variant, "x-kp1", "x-kpc1", S - 5 * H, output=7),
        ]
    return events


def warehouse_rows() -> list[tuple]:
    """WAREHOUSE_USERS's rows (the table's columns after id), by hand: the store writes no such rows."""
    def us(t: datetime) -> int:
        return int(t.timestamp()) * 1_000_000

    request = {"event": "request", "ts": ts(S + H), "experiment": WAREHOUSE, "variant": "control", "user_id": "w-a",
               "request_id": "w-r1", "latency_ms": 100, "output_tokens": 5, "status": "ok"}
    feedback = {"event": "feedback", "ts": ts(S + 2 * H), "experiment": WAREHOUSE, "user_id": "w-a",
                "request_id": "w-gone", "name": "task_completed", "value": 1}
    return [
        (us(S + H), WAREHOUSE, "request", "control", "w-a", "", "w-r1", "ok", 0,
         json.dumps(request, separators=(",", ":")), ""),
        (us(S + 2 * H), WAREHOUSE, "feedback", "", "w-a", "", "w-gone", "", 0,
         json.dumps(feedback, separators=(",", ":")), "task_completed"),
    ]


def expected_rows(users: dict, canary: bool) -> dict:
    """(variant, metric) -> the sums of EDGE_USERS, exact integers."""
    users = dict(users)
    if canary:
        users[CANARY[0]] = (CANARY[1], {})
    rows = {}
    for variant in sorted({v for v, _ in users.values()}):
        for metric in METRICS:
            units = [ms[metric] for v, ms in users.values() if v == variant and metric in ms]
            def total(f):
                return sum(f(*u) for u in units)
            rows[(variant, metric)] = {
                "assigned_users": sum(1 for v, _ in users.values() if v == variant), "users": len(units),
                "sum": total(lambda m, d, mp, dp: m), "sum_squares": total(lambda m, d, mp, dp: m * m),
                "units": total(lambda m, d, mp, dp: d), "units_squares": total(lambda m, d, mp, dp: d * d),
                "sum_units_products": total(lambda m, d, mp, dp: m * d),
                "pre_sum": total(lambda m, d, mp, dp: mp), "pre_sum_squares": total(lambda m, d, mp, dp: mp * mp),
                "pre_units": total(lambda m, d, mp, dp: dp), "pre_units_squares": total(lambda m, d, mp, dp: dp * dp),
                "pre_sum_pre_units_products": total(lambda m, d, mp, dp: mp * dp),
                "sum_pre_sum_products": total(lambda m, d, mp, dp: m * mp),
                "units_pre_units_products": total(lambda m, d, mp, dp: d * dp),
                "sum_pre_units_products": total(lambda m, d, mp, dp: m * dp),
                "units_pre_sum_products": total(lambda m, d, mp, dp: d * mp),
            }
    return rows


def number(column: str, value):
    """A result field as a Python number: int for INTEGER_COLUMNS (which must be whole), float otherwise."""
    x = float(value) if isinstance(value, str) else value
    if column in INTEGER_COLUMNS:
        assert float(x) == int(x), f"{column} = {value!r} is not a whole number"
        return int(x)
    return float(x)


def normalized(columns: list[str], rows: list) -> list[dict]:
    assert columns == COLUMNS
    return [{c: (v if c in NAMES else number(c, v)) for c, v in zip(columns, row)} for row in rows]


def parse_csv(text: str) -> tuple[list[str], list[list[str]]]:
    records = list(csv.reader(io.StringIO(text)))
    return records[0], records[1:]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def results():
    """Every engine's result for every experiment: {(engine, experiment): (columns, typed rows, csv text)}."""
    if not os.path.exists(BIN):
        pytest.exit(f"the bakeoff binary is missing: {BIN} (run `make build` or set BAKEOFF_BIN)", returncode=2)
    import chdb.session
    import duckdb
    import pandas

    with tempfile.TemporaryDirectory(prefix="bakeoff-warehouse-") as d:
        work = Path(d)
        sim = work / "sim.jsonl"
        # The case study, 1,500 users over 14 days: about 25,000 events, with task_completed feedback and output
        # tokens; the start halfway leaves a week of pre-period.
        done = run("simulate", "--preset", "seed-case-study", "--users", "1500", "--seed", "11", "--output", str(sim))
        assert done.returncode == 0, done.stderr
        sim_lines = sim.read_text().splitlines()
        assert len(sim_lines) > 10_000
        marker = f'"experiment":"{EXPERIMENT}"'
        assert all(line.count(marker) == 1 for line in sim_lines)
        lines = sim_lines + [json.dumps(e, separators=(",", ":")) for e in edge_events(EXPERIMENT, canary=False)]
        lines += [line.replace(marker, f'"experiment":"{SIM_ONLY}"') for line in sim_lines]
        lines += [json.dumps(e, separators=(",", ":")) for e in edge_events(EDGE, canary=True)]
        lines += [json.dumps(e, separators=(",", ":")) for e in [
            {"event": "request", "ts": ts(S + 2 * H), "experiment": OTHER, "variant": "treatment", "user_id": "x-other",
             "conversation_id": "x-oc1", "request_id": "x-o1", "latency_ms": 100, "output_tokens": 43, "status": "ok"},
            {"event": "feedback", "ts": ts(S + 3 * H), "experiment": OTHER, "user_id": "x-other",
             "conversation_id": "x-oc1", "name": "task_completed", "value": 1}]]
        log = work / "events.jsonl"
        log.write_text("\n".join(lines) + "\n")
        store = work / "store.db"
        done = run("import", "--db", str(store), str(log))
        assert done.returncode == 0, done.stderr

        out = {}
        experiments = [EXPERIMENT, SIM_ONLY, EDGE, WAREHOUSE, "no-such-experiment"]

        # SQLite: the store itself. Its rows as `sqlite3 -csv -header` writes them.
        sqlite_sql = (SQL / "summary.sql").read_text()
        db = sqlite3.connect(store)
        try:
            assert db.execute("SELECT count(*) FROM events").fetchone()[0] == len(lines)
            db.executemany("""INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id,
                status, qa, line, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", warehouse_rows())
            db.commit()
            rows_in_table = len(lines) + len(warehouse_rows())
            table = pandas.read_sql_query("SELECT * FROM events ORDER BY id", db)
            for experiment in experiments:
                cur = db.execute(sqlite_sql, {"experiment": experiment, "start": START})
                columns, rows = [c[0] for c in cur.description], cur.fetchall()
                text = io.StringIO()
                csv.writer(text, lineterminator="\n").writerows([columns, *rows])
                out[("sqlite", experiment)] = (columns, rows, text.getvalue())
        finally:
            db.close()
        assert list(table.columns) == ["id", "ts", "experiment", "kind", "variant", "user_id", "conversation_id",
                                       "request_id", "status", "qa", "line", "name"]

        # DuckDB: the same table, with the SQLite types; the CSV is DuckDB's own (COPY).
        duck_sql = (SQL / "summary.duckdb.sql").read_text()
        con = duckdb.connect()
        try:
            con.execute("""CREATE TABLE events (id BIGINT, ts BIGINT, experiment VARCHAR, kind VARCHAR, variant VARCHAR,
                user_id VARCHAR, conversation_id VARCHAR, request_id VARCHAR, status VARCHAR, qa BIGINT, line VARCHAR,
                name VARCHAR)""")
            con.register("source", table)
            con.execute("INSERT INTO events SELECT * FROM source")
            con.unregister("source")
            assert con.execute("SELECT count(*) FROM events").fetchone()[0] == rows_in_table
            for experiment in experiments:
                con.execute("SET VARIABLE experiment = ?", [experiment])
                con.execute("SET VARIABLE start = ?", [START])
                cur = con.execute(duck_sql)
                columns, rows = [c[0] for c in cur.description], cur.fetchall()
                path = work / f"duckdb-{experiment}.csv"
                con.execute(f"COPY ({duck_sql.rstrip().rstrip(';')}) TO '{path}' (HEADER)")
                out[("duckdb", experiment)] = (columns, rows, path.read_text())
        finally:
            con.close()

        # ClickHouse (chDB): the store copied with the sqlite() table function, as the file's header says; the
        # CSV is ClickHouse's own (CSVWithNames), the typed rows come through a DataFrame.
        ch_sql = (SQL / "summary.clickhouse.sql").read_text()
        session = chdb.session.Session(str(work / "chdb"))
        try:
            session.query("""CREATE TABLE events (id Int64, ts Int64, experiment String, kind String, variant String,
                user_id String, conversation_id String, request_id String, status String, qa Int64, line String,
                name String) ENGINE = MergeTree ORDER BY (experiment, id)""")
            session.query(f"""INSERT INTO events SELECT id, ts, experiment, kind, variant, user_id, conversation_id,
                request_id, status, qa, line, name FROM sqlite('{store}', 'events')""")
            assert int(str(session.query("SELECT count() FROM events", "CSV")).strip()) == rows_in_table
            for experiment in experiments:
                params = {"experiment": experiment, "start": START}
                text = str(session.query(ch_sql, "CSVWithNames", params=params))
                frame = session.query(ch_sql, "DataFrame", params=params)
                rows = [list(r) for r in frame.itertuples(index=False)]
                out[("clickhouse", experiment)] = (list(frame.columns) if len(frame.columns) else parse_csv(text)[0],
                                                   rows, text)
        finally:
            session.close()

        yield {"results": out, "work": work}


ENGINES = ["sqlite", "duckdb", "clickhouse"]


@pytest.mark.parametrize("experiment", [EXPERIMENT, SIM_ONLY, EDGE, WAREHOUSE])
@pytest.mark.parametrize("engine", ["duckdb", "clickhouse"])
def test_the_dialect_gives_the_sqlite_rows(results, engine, experiment):
    columns, rows, _ = results["results"][("sqlite", experiment)]
    want = normalized(columns, rows)
    columns, rows, _ = results["results"][(engine, experiment)]
    got = normalized(columns, rows)
    assert [(r["variant"], r["metric"]) for r in got] == [(r["variant"], r["metric"]) for r in want]
    for g, w in zip(got, want):
        for c in COLUMNS:
            if c in NAMES or c in INTEGER_COLUMNS:
                assert g[c] == w[c], f"{engine} {experiment} {w['variant']} {w['metric']} {c}"
            else:
                assert g[c] == pytest.approx(w[c], rel=1e-12, abs=0), \
                    f"{engine} {experiment} {w['variant']} {w['metric']} {c}"


def test_an_experiment_without_events_gives_no_rows(results):
    for engine in ENGINES:
        columns, rows, _ = results["results"][(engine, "no-such-experiment")]
        assert rows == [], engine


@pytest.mark.parametrize("engine", ENGINES)
def test_the_edge_cases_give_the_hand_computed_sums(results, engine):
    columns, rows, _ = results["results"][(engine, EDGE)]
    got = {(r["variant"], r["metric"]): r for r in normalized(columns, rows)}
    want = expected_rows(EDGE_USERS, canary=True)
    assert list(got) == list(want)  # the order too: by variant, then metric
    for key, sums in want.items():
        assert got[key]["experiment"] == EDGE
        for c, value in sums.items():
            assert got[key][c] == value, f"{engine} {key} {c}"  # exact: every sum is an integer below 2^53
    assert got[("canary", "output_tokens")]["users"] == 0 and got[("canary", "output_tokens")]["assigned_users"] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_warehouse_only_rows_give_the_hand_computed_sums(results, engine):
    columns, rows, _ = results["results"][(engine, WAREHOUSE)]
    got = {(r["variant"], r["metric"]): r for r in normalized(columns, rows)}
    want = expected_rows(WAREHOUSE_USERS, canary=False)
    assert list(got) == list(want)
    for key, sums in want.items():
        for c, value in sums.items():
            assert got[key][c] == value, f"{engine} {key} {c}"
    assert got[("control", "task_completion")]["users"] == 0


def test_the_edge_cases_add_exactly_their_users_to_the_simulation(results):
    """support-bot-v2 = sim-only + the edge users, sum by sum (SQLite; the dialects equal it), and the simulated
    pre-period is there."""
    r = results["results"]
    mixed = {(x["variant"], x["metric"]): x for x in normalized(*r[("sqlite", EXPERIMENT)][:2])}
    sim = {(x["variant"], x["metric"]): x for x in normalized(*r[("sqlite", SIM_ONLY)][:2])}
    edge = expected_rows(EDGE_USERS, canary=False)
    assert set(mixed) == set(sim) == set(edge) == {(v, m) for v in ("control", "treatment") for m in METRICS}
    for key in mixed:
        for c in COLUMNS:
            if c not in NAMES:
                assert mixed[key][c] == sim[key][c] + edge[key][c], f"{key} {c}"
        # Every analysed user has a unit here; a week of pre-period covers part of them.
        assert sim[key]["users"] == sim[key]["assigned_users"] > 100
        assert 0 < sim[key]["pre_units"] < sim[key]["units"]
        assert sim[key]["pre_sum"] > 0 and sim[key]["sum_pre_sum_products"] > 0


@pytest.mark.parametrize("engine", ["duckdb", "clickhouse"])
def test_the_dialect_prints_every_number_exactly(results, engine):
    """The engine's own CSV: counts as whole numbers, and every float as digits that read back to the same double
    (shortest round-trip), here with sums that need 16 digits."""
    for experiment in (EXPERIMENT, EDGE):
        _, typed, text = results["results"][(engine, experiment)]
        columns, rows = parse_csv(text)
        assert columns == COLUMNS and len(rows) == len(typed)
        for printed, values in zip(rows, typed):
            for c, s, v in zip(columns, printed, values):
                if c in NAMES:
                    assert s == v
                    continue
                if c in INTEGER_COLUMNS:
                    assert re.fullmatch(r"\d+", s), f"{engine} {c} printed as {s!r}"
                assert float(s) == float(v) and not math.isnan(float(s)), f"{engine} {experiment} {c}: {s!r} vs {v!r}"
    _, _, text = results["results"][(engine, EDGE)]
    control_tokens = next(r for r in parse_csv(text)[1] if r[1] == "control" and r[2] == "output_tokens")
    squares = float(control_tokens[COLUMNS.index("sum_squares")])
    assert squares == 41**2 + 42**2 + 50**2 + 44**2 + 90000001**2 == 8100000180007882


def test_analyze_reads_each_engines_csv_to_the_same_report(results):
    work = results["work"]
    reports = {}
    for engine in ENGINES:
        path = work / f"summary-{engine}.csv"
        path.write_text(results["results"][(engine, EXPERIMENT)][2])
        done = run("analyze", "--summary", str(path), "--format", "json", "--split", "0.2", "--runtime-days", "7")
        assert done.returncode == 0, f"{engine}: {done.stderr}"
        reports[engine] = json.loads(done.stdout)
    report = reports["sqlite"]
    assert report["experiment"] == EXPERIMENT
    assert {m["name"] for m in report["metrics"]} == set(METRICS)
    assert all(m["cuped"] is not None for m in report["metrics"])  # the pre-period columns were read
    assert report["srm"]["status"] != "not_run"
    assert reports["duckdb"] == report
    assert reports["clickhouse"] == report
