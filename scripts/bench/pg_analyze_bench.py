#!/usr/bin/env python3
"""Analysing a 10-million-event experiment stored in PostgreSQL: inside the database against exporting the events.

    pg_analyze_bench.py --bin .build/product/release/bakeoff [--users 600000] [--runs 3]
                        [--work /tmp/pganalyze] [--out out/bench] [--markdown BENCHMARKS.md] [--keep]
    pg_analyze_bench.py --render out/bench/pganalyze.json [--markdown BENCHMARKS.md]   (the section again, nothing run)

Standard library only; e2e/postgres.py's throw-away cluster (Unix socket, fsync on, default settings otherwise)
and scripts/bench/gateway.py's helpers. The events: `bakeoff simulate` (the case study, --users users over 14
days: 600,000 gives about 9.8 million events), sorted by time as a gateway writes them (dashboard_bench.py's
recipe), imported with `bakeoff import` into PostgreSQL and into SQLite (the import times are context). Then,
in rounds (the order rotating from round to round), on the same events:

  pg        bakeoff analyze --db postgresql://... --format json      (inside PostgreSQL: only sums come back)
  export    bakeoff export --db postgresql://... > exported.jsonl, then bakeoff analyze exported.jsonl
  sqlite    bakeoff analyze --db store.db --format json
  log       bakeoff analyze events.jsonl --format json
  summary   psql --csv -v experiment=... -v start=... -f scripts/sql/summary.postgres.sql > summary.csv,
            then bakeoff analyze --summary summary.csv --format json (2 metrics only). The file as it is gets
            a quadratic plan here (nested loops over CTE scans estimated at a row or two), so this path runs
            it with PGOPTIONS='-c enable_nestloop=off'; the file as it is runs once, after the rounds, cancelled
            by statement_timeout after --as-is-timeout seconds.

Each command: wall time, CPU time of the client (user + system) and its peak RSS (GNU time), and the PostgreSQL
server's CPU time over the command (/proc: the postmaster, its live children and those it reaped). A path whose
first run takes longer than --long seconds runs once. The JSON reports of export, sqlite and log must be
byte-identical (every run), and pg's the same to 1e-9 relative in every number (its sums are added in another
order) and equal elsewhere; the exported log must be byte-identical to the imported one; the summary path's two
metrics are checked against the event analysis. Writes OUT/pganalyze.json and, with --markdown, the section
SECTION_TITLE. The work directory (several GB) is deleted at the end unless --keep.
"""
import argparse
import csv
import datetime
import filecmp
import hashlib
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "e2e"))
from bench_md import publish, write_section  # noqa: E402
from gateway import CLK_TCK, machine_info, versions  # noqa: E402
from postgres import ThrowawayPostgres  # noqa: E402

SECTION_TITLE = "## Analysing an experiment stored in PostgreSQL (10 million events)"
EXPERIMENT = "support-bot-v2"
START = time.monotonic()
ORDER = ["pg", "export", "sqlite", "log", "summary"]


def log(msg):
    print(f"[pganalyze {time.monotonic() - START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


class Server:
    """The PostgreSQL server's CPU seconds: the postmaster, its live children, and the children it reaped."""

    def __init__(self, pg):
        self.pg = pg
        self.pid = pg.server.pid

    def _stats(self):
        own, children = 0, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            f = stat[stat.rindex(")") + 2:].split()  # f[1] ppid, f[11] utime, f[12] stime, f[13] cutime, f[14] cstime
            if int(entry) == self.pid:
                own = sum(int(x) for x in f[11:15])
            elif int(f[1]) == self.pid:
                children[int(entry)] = int(f[11]) + int(f[12])
        return own, children

    def settle(self, baseline=None, timeout=10.0):
        """Waits until the backends a command started have exited and been reaped (their CPU is then in the
        postmaster's cutime); gives the live children."""
        deadline = time.monotonic() + timeout
        while True:
            _, children = self._stats()
            if baseline is not None and set(children) <= baseline or time.monotonic() > deadline:
                return set(children)
            if baseline is None:
                # The long-lived processes: checkpointer, background writer, WAL writer, launchers.
                time.sleep(0.2)
                _, again = self._stats()
                if set(again) == set(children):
                    return set(children)
            time.sleep(0.02)

    def cpu(self):
        own, children = self._stats()
        return (own + sum(children.values())) / CLK_TCK


def run(cmd, server, stdout=None, env=None, check=True):
    """Runs `cmd` (stdout to the file `stdout`, or discarded): wall, client CPU, client peak RSS, server CPU;
    with check=False a failure is returned (its exit status and standard error) instead of stopping."""
    baseline = server.settle()
    cpu0 = server.cpu()
    load = loadavg()
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL
    err_path = os.path.join(WORK, "stderr.txt")
    # GNU time forks the command from its own small process: a peak RSS taken by wait4 from Python would never be
    # below Python's own (the kernel keeps the larger of the parent's and the child's, across exec).
    time_path = os.path.join(WORK, "time.txt")
    timed = [TIME, "-f", "%U %S %M", "-o", time_path] + cmd if TIME else cmd
    with open(err_path, "wb") as err:
        t = time.perf_counter()
        p = subprocess.Popen(timed, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    user, system, rss_kb = ru.ru_utime, ru.ru_stime, ru.ru_maxrss
    if TIME:
        fields = open(time_path).read().split()[-3:]  # after "Command exited with non-zero status N", if any
        user, system, rss_kb = float(fields[0]), float(fields[1]), int(fields[2])
    if stdout:
        out.close()
    stderr = open(err_path, errors="replace").read()
    if p.returncode != 0 and check:
        raise SystemExit(f"pg_analyze_bench.py: {' '.join(cmd)} failed ({p.returncode}):\n{stderr[-3000:]}")
    server.settle(baseline)
    return {"exit": p.returncode, "stderr": stderr[-2000:], "wall_s": wall, "cpu_s": user + system, "user_s": user, "sys_s": system,
            "rss_mb": rss_kb / 1024, "pg_cpu_s": server.cpu() - cpu0, "loadavg_before": load}


def combine(*steps):
    """Two steps run one after the other, as one: times and CPU add, the peak RSS is the larger."""
    return {"wall_s": sum(s["wall_s"] for s in steps), "cpu_s": sum(s["cpu_s"] for s in steps),
            "user_s": sum(s["user_s"] for s in steps), "sys_s": sum(s["sys_s"] for s in steps),
            "rss_mb": max(s["rss_mb"] for s in steps), "pg_cpu_s": sum(s["pg_cpu_s"] for s in steps),
            "loadavg_before": steps[0]["loadavg_before"]}


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def median_of(runs):
    keys = ("wall_s", "cpu_s", "user_s", "sys_s", "rss_mb", "pg_cpu_s")
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {"runs": len(runs)}


def main():
    global WORK
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=os.environ.get("BAKEOFF_BIN", ".build/product/release/bakeoff"))
    p.add_argument("--users", type=int, default=int(os.environ.get("BENCH_PGANALYZE_USERS") or 600_000),
                   help="simulated users (600,000: about 9.8 million events)")
    p.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_PGANALYZE_RUNS") or 3))
    p.add_argument("--long", type=float, default=120.0, help="a path whose first run takes longer runs once")
    p.add_argument("--as-is-timeout", type=float, default=float(os.environ.get("BENCH_PGANALYZE_AS_IS_TIMEOUT") or 120),
                   help="seconds the summary SQL as it is runs before it is cancelled (0: not run)")
    p.add_argument("--work", default="/tmp/pganalyze")
    p.add_argument("--out", default="out/bench")
    p.add_argument("--markdown")
    p.add_argument("--keep", action="store_true", help="keep the work directory (the log, the SQLite store)")
    p.add_argument("--command", default=os.environ.get("BENCH_COMMAND", "BENCH_ONLY=pganalyze make bench"))
    p.add_argument("--render", metavar="JSON", help="only write the section again from a pganalyze.json (nothing is run)")
    a = p.parse_args()
    if a.render:
        section = render(json.load(open(a.render)))
        print(section)
        if a.markdown:
            write_section(a.markdown, section, SECTION_TITLE)
        return
    a.bin = os.path.abspath(a.bin)
    if not os.access(a.bin, os.X_OK):
        raise SystemExit(f"pg_analyze_bench.py: {a.bin} not found (make build)")
    WORK = os.path.abspath(a.work)
    marker = os.path.join(WORK, ".pg_analyze_bench")
    if os.path.isdir(WORK) and os.listdir(WORK) and not os.path.exists(marker):
        raise SystemExit(f"pg_analyze_bench.py: {WORK} holds other files: give an empty or new --work directory")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    open(marker, "w").close()
    # About 2.1 GB of log per 600,000 users; the raw and sorted logs, the exported one, the SQLite file, the
    # PostgreSQL store with its WAL, and the summary query's temporary files: about 20 GB in all at that size.
    need = 25e9 * a.users / 600_000
    for path in (WORK, "/tmp"):
        free = shutil.disk_usage(path).free
        if free < need:
            raise SystemExit(f"pg_analyze_bench.py: {free / 1e9:.1f} GB free in {path}, {need / 1e9:.0f} GB needed "
                             f"for {a.users:,} users (--users sets the size)")
    os.makedirs(a.out, exist_ok=True)

    def on_signal(signum, _frame):
        raise SystemExit(f"pg_analyze_bench.py: signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pg = None
    try:
        pg = ThrowawayPostgres(durable=True)
        result = measure(a, pg)
    finally:
        if pg:
            pg.close()
        if not a.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    publish(result, a.out, "pganalyze", render(result), a.markdown, SECTION_TITLE, log)
    if not result["identical"]:
        log("MISMATCH: the reports differ (see pganalyze.json)")
        sys.exit(1)


def measure(a, pg):
    server = Server(pg)
    raw, events, exported, store, summary = (os.path.join(WORK, n) for n in
                                             ("raw.jsonl", "events.jsonl", "exported.jsonl", "store.db", "summary.csv"))
    url = pg.url
    pg_version = subprocess.run([f"{pg.bin}/postgres", "--version"], capture_output=True, text=True).stdout.strip()
    settings = {}
    for name in ("shared_buffers", "work_mem", "effective_cache_size", "max_parallel_workers_per_gather", "fsync",
                 "synchronous_commit", "max_wal_size", "jit", "cursor_tuple_fraction", "max_connections"):
        settings[name] = pg.psql(f"SHOW {name}").strip()
    result = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": a.command, "users": a.users, "runs": a.runs, "long_s": a.long,
              "machine": machine_info(), "versions": {**versions(a, ROOT, False), "postgres": pg_version},
              "pg_settings": settings}
    log(f"{result['machine']['nproc']} cores, load {result['machine']['loadavg_start']}; {pg_version}; {settings}")

    log(f"simulating {a.users:,} users")
    t = time.perf_counter()
    subprocess.run([a.bin, "simulate", "--preset", "seed-case-study", "--users", str(a.users), "--experiment",
                    EXPERIMENT, "--output", raw], check=True)
    # Sorted by time as a gateway writes them (the simulator writes user by user): field 8 between quotes is "ts".
    subprocess.run(["sort", "-s", "-t", '"', "-k8,8", "-S", "25%", "-T", WORK, "-o", events, raw], check=True,
                   env={**os.environ, "LC_ALL": "C"})
    os.remove(raw)
    with open(events, "rb") as fh:
        n = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b""))
        fh.seek(0)
        first = json.loads(fh.readline())
    start = first["ts"][:10] + "T00:00:00Z"  # the experiment's first day: the whole log is its period
    log_bytes = os.path.getsize(events)
    result |= {"events": n, "log_bytes": log_bytes, "start": start, "prepare_s": time.perf_counter() - t}
    log(f"{n:,} events, {log_bytes / 1e9:.2f} GB of log, from {start}")

    log("importing into PostgreSQL")
    imports = {"pg": run([a.bin, "import", "--db", url, events], server)}
    # What autovacuum would do on a long-lived store before anyone reads it: statistics for the planner, and the
    # hint bits and visibility map written once (otherwise the first read after the import writes every page).
    imports["pg_vacuum"] = run(["psql", "-X", "-q", "-d", url, "-c", "VACUUM (ANALYZE)", "-c", "CHECKPOINT"], server)
    log("importing into SQLite")
    imports["sqlite"] = run([a.bin, "import", "--db", store, events], server)
    result["imports"] = imports
    size = pg.psql("SELECT sum(pg_table_size(c.oid)), sum(pg_indexes_size(c.oid)) FROM pg_inherits i "
                   "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass").split("|")
    result["sizes"] = {"pg_table_bytes": int(size[0]), "pg_index_bytes": int(size[1]),
                       "pg_database_bytes": int(pg.psql("SELECT pg_database_size(current_database())")),
                       "sqlite_bytes": os.path.getsize(store)}
    log(f"sizes {result['sizes']}; imports " + ", ".join(f"{k} {v['wall_s']:.1f} s" for k, v in imports.items()))

    export_sql = "SELECT line FROM events WHERE qa = 0 ORDER BY id"
    result["plans"] = {"export_cursor": pg.psql("EXPLAIN DECLARE c NO SCROLL CURSOR FOR " + export_sql)}

    psql = ["psql", "-X", "-q", "-d", url]
    commands = {
        "pg": [a.bin, "analyze", "--db", url, "--format", "json"],
        "export": [a.bin, "export", "--db", url],
        "export_analyze": [a.bin, "analyze", exported, "--format", "json"],
        "sqlite": [a.bin, "analyze", "--db", store, "--format", "json"],
        "log": [a.bin, "analyze", events, "--format", "json"],
        "summary_sql": psql + ["--csv", "-v", f"experiment={EXPERIMENT}", "-v", f"start={start}",
                               "-f", os.path.join(ROOT, "scripts/sql/summary.postgres.sql")],
        "summary_analyze": [a.bin, "analyze", "--summary", summary, "--format", "json"],
    }
    result["commands"] = {k: " ".join(v) for k, v in commands.items()}
    # The README's SQL as it is gets a plan of nested loops over CTE scans the planner estimates at a row or
    # two (actual: every user, every conversation): quadratic in users, it does not finish on this store. The
    # timed path runs the same file with nested loops off in its session (PGOPTIONS: `SET enable_nestloop = off`,
    # the server's settings unchanged); the file as it is runs once, cancelled by statement_timeout.
    nestloop_off = {"PGOPTIONS": "-c enable_nestloop=off"}
    result["summary_session"] = nestloop_off["PGOPTIONS"]
    literal = open(os.path.join(ROOT, "scripts/sql/summary.postgres.sql")).read() \
        .replace(":'experiment'", f"'{EXPERIMENT}'").replace(":'start'", f"'{start}'")
    result["plans"]["summary_as_is"] = pg.psql("EXPLAIN " + literal)
    result["plans"]["summary_nestloop_off"] = pg.psql("SET enable_nestloop = off; EXPLAIN " + literal)
    runs = {k: [] for k in ("pg", "export", "export_step", "export_analyze", "sqlite", "log", "summary",
                            "summary_sql", "summary_analyze")}
    hashes = {k: [] for k in ("pg", "export", "sqlite", "log")}
    reports = {}
    pg_reports = []
    exported_identical = []
    once = set()

    def do(path):
        if path == "pg":
            out = os.path.join(WORK, "report.pg.json")
            runs["pg"].append(run(commands["pg"], server, stdout=out))
            pg_reports.append(json.load(open(out)))
        elif path == "export":
            e = run(commands["export"], server, stdout=exported)
            exported_identical.append(os.path.getsize(exported) == log_bytes and filecmp.cmp(exported, events, shallow=False))
            out = os.path.join(WORK, "report.export.json")
            r = run(commands["export_analyze"], server, stdout=out)
            runs["export_step"].append(e)
            runs["export_analyze"].append(r)
            runs["export"].append(combine(e, r))
        elif path in ("sqlite", "log"):
            out = os.path.join(WORK, f"report.{path}.json")
            runs[path].append(run(commands[path], server, stdout=out))
        elif path == "summary":
            s = run(commands["summary_sql"], server, stdout=summary, env=nestloop_off)
            out = os.path.join(WORK, "report.summary.json")
            r = run(commands["summary_analyze"], server, stdout=out)
            runs["summary_sql"].append(s)
            runs["summary_analyze"].append(r)
            runs["summary"].append(combine(s, r))
            with open(summary) as fh:
                result["summary_csv"] = fh.read()
            reports["summary"] = json.load(open(out))
            return
        hashes[path].append(sha(out))
        reports.setdefault(path, json.load(open(out)))

    for rnd in range(a.runs):
        order = ORDER[rnd % len(ORDER):] + ORDER[:rnd % len(ORDER)]
        for path in order:
            if path in once:
                continue
            counts = {k: len(v) for k, v in runs.items()}
            do(path)
            for k, v in runs.items():
                for x in v[counts[k]:]:
                    x["round"] = rnd + 1
            last = runs[path][-1]
            log(f"round {rnd + 1}: {path} {last['wall_s']:.1f} s (client CPU {last['cpu_s']:.1f} s, "
                f"server CPU {last['pg_cpu_s']:.1f} s, RSS {last['rss_mb']:.0f} MB)")
            if rnd == 0 and last["wall_s"] > a.long:
                once.add(path)
                log(f"{path} took longer than {a.long:.0f} s: it runs once")

    if a.as_is_timeout > 0:
        log(f"the summary SQL as it is, cancelled after {a.as_is_timeout:.0f} s")
        x = run(commands["summary_sql"], server, stdout=os.path.join(WORK, "summary.as-is.csv"), check=False,
                env={"PGOPTIONS": f"-c statement_timeout={int(a.as_is_timeout * 1000)}"})
        x["finished"] = x["exit"] == 0 and "ERROR" not in x["stderr"] and os.path.getsize(os.path.join(WORK, "summary.as-is.csv")) > 0
        result["summary_as_is"] = x
        log(f"as it is: {'finished' if x['finished'] else 'cancelled'} after {x['wall_s']:.1f} s: {x['stderr'].strip()[:200]}")

    result["runs_raw"] = runs
    result["medians"] = {k: median_of(v) for k, v in runs.items() if v}
    all_hashes = {h for k, v in hashes.items() if k != "pg" for h in v}
    result["report_sha256"] = hashes
    differences = [compare_reports(x, reports["log"]) for x in pg_reports]
    result["pg_differences"] = [d for d in differences if d]
    result["pg_max_rel_diff"] = max((relative_differences(x, reports["log"]) for x in pg_reports), default=0.0)
    result["identical"] = len(all_hashes) == 1 and all(exported_identical) and not result["pg_differences"]
    result["exported_log_identical"] = exported_identical
    result["summary_check"] = check_summary(reports.get("log"), reports.get("summary"))
    result["total_s"] = time.monotonic() - START
    return result


def compare_reports(a, b, rel=1e-9, path="$"):
    """Where two JSON reports differ (a list of places): structure, strings, booleans and integers exactly, floats
    to `rel` relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in compare_reports(a[k], b[k], rel, f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in compare_reports(x, y, rel, f"{path}[{i}]")]
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    if numbers and (isinstance(a, float) or isinstance(b, float)):
        return [] if a == b or abs(a - b) <= rel * max(abs(a), abs(b)) else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def relative_differences(a, b):
    """The largest relative difference between numbers at the same place of two reports of the same shape."""
    if isinstance(a, dict) and isinstance(b, dict):
        return max((relative_differences(a[k], b[k]) for k in a if k in b), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        return max((relative_differences(x, y) for x, y in zip(a, b)), default=0.0)
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b)) and a != b:
        return abs(a - b) / max(abs(a), abs(b))
    return 0.0


def check_summary(events_report, summary_report):
    """The summary path's two metrics against the event analysis: the same users, units, means, differences and
    (unadjusted) p-values; gives the fields compared and the largest relative difference."""
    if not events_report or not summary_report:
        return None
    worst, compared = 0.0, 0
    by_name = {(m["name"], m["variant"]): m for m in events_report["metrics"]}
    for m in summary_report["metrics"]:
        e = by_name[(m["name"], m["variant"])]
        pairs = [(m["control"]["users"], e["control"]["users"]), (m["treatment"]["users"], e["treatment"]["users"]),
                 (m["control"]["units"], e["control"]["units"]), (m["treatment"]["units"], e["treatment"]["units"]),
                 (m["control"]["mean"], e["control"]["mean"]), (m["treatment"]["mean"], e["treatment"]["mean"]),
                 (m["absolute_diff"], e["absolute_diff"]), (m["std_error"], e["std_error"]), (m["p_value"], e["p_value"])]
        for x, y in pairs:
            compared += 1
            worst = max(worst, abs(x - y) / max(abs(y), 1e-300) if x != y else 0.0)
    return {"metrics": [m["name"] for m in summary_report["metrics"]], "fields": compared, "max_rel_diff": worst,
            "event_metrics": [m["name"] for m in events_report["metrics"]],
            "event_quantiles": len(events_report.get("quantiles") or [])}


def fmt_s(x):
    return f"{x:.1f} s" if x >= 10 else f"{x:.2f} s"


def render(r):
    m = r["medians"]
    mi = r["machine"]
    n = r["events"]
    v = r["versions"]
    base = m["pg"]["wall_s"]
    raw = r["runs_raw"]

    def wall(k):
        w = [x["wall_s"] for x in raw[k]]
        digits = 1 if max(w) >= 10 else 2
        return fmt_s(m[k]["wall_s"]) + (f" ({min(w):.{digits}f}–{max(w):.{digits}f})" if len(w) > 1 else "")

    def paired(k):
        """The median over rounds of this path's wall time over path 1's in the same round."""
        # Each path runs once a round, so its i-th run is in round i + 1.
        pg = {x.get("round", i + 1): x["wall_s"] for i, x in enumerate(raw["pg"])}
        ratios = [x["wall_s"] / pg[x.get("round", i + 1)] for i, x in enumerate(raw[k]) if x.get("round", i + 1) in pg]
        return f"{statistics.median(ratios):.2f}" if ratios else "—"
    loads = [x["loadavg_before"] for v in raw.values() for x in v]
    lines = [
        SECTION_TITLE,
        "",
        f"`{r['command']}` ({r['date']}; `scripts/bench/pg_analyze_bench.py`). One experiment of {n:,} events "
        f"({r['users']:,} simulated users over 14 days, `bakeoff simulate --preset seed-case-study`, sorted by time as a "
        f"gateway writes them: a {r['log_bytes'] / 1e9:.2f} GB log), imported with `bakeoff import` into a PostgreSQL "
        f"store ({r['sizes']['pg_table_bytes'] / 1e9:.2f} GB of table in day partitions and "
        f"{r['sizes']['pg_index_bytes'] / 1e9:.2f} GB of indexes) and into an SQLite store "
        f"({r['sizes']['sqlite_bytes'] / 1e9:.2f} GB). Every path analyses the same events in the same run.",
        "",
        f"- Machine: {mi['nproc']} cores, `{mi['cpu_model']}`, {mi['mem_total_kb'] / 1048576:.0f} GB, {mi['kernel']}; "
        f"load average {' '.join(mi['loadavg_start'])} at the start: the machine is shared with other jobs, so the "
        "paths are taken in turns (the order rotating from run to run) and a busy spell falls on all of them.",
        f"- Versions: bakeoff commit {v['bakeoff_commit']}{' with uncommitted changes' if v['bakeoff_dirty'] else ''} "
        f"(binary sha256 {v['bakeoff_sha256']}…), {v['postgres']}.",
        "- PostgreSQL: a throw-away cluster (e2e/postgres.py: `initdb -A trust --no-sync -E UTF8 --locale=C.UTF-8`) "
        "on a Unix socket (`listen_addresses=''`), `max_connections=200`; every other setting is the default: "
        + ", ".join(f"`{k}={val}`" for k, val in r["pg_settings"].items() if k != "max_connections")
        + ". After the import, `VACUUM (ANALYZE)` and `CHECKPOINT` (what autovacuum does to a long-lived store: "
        "planner statistics, and hint bits and the visibility map written once, not by the first read). Reads come "
        "from a warm OS page cache (everything fits in memory; no cache is dropped).",
        f"- Runs: medians of {r['runs']} runs per path, taken in turns; a path whose first run took more than "
        f"{r['long_s']:.0f} s ran once (the runs column). \"vs 1\": the ratio of the medians, and the median over "
        "rounds of its ratio to path 1 in the same round. CPU is user + system time: the client's from GNU "
        "time (`/usr/bin/time`, as is its peak RSS), the "
        "PostgreSQL server's from /proc (the postmaster, its live children and the children it reaped: the backend "
        "serving the command, parallel workers, checkpointer). Peak RSS is the client's (psql's for 4a). The load "
        f"average (1 minute) before the runs was {min(loads):.1f}–{max(loads):.1f} on {mi['nproc']} cores (our own "
        "previous command included): other jobs shared the machine, so every time here is pessimistic. Total "
        f"{r['total_s'] / 60:.1f} minutes, setup included.",
        "",
        "| path | runs | wall time, median (range) | vs 1: medians / rounds | client CPU | PostgreSQL CPU | client peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def row(label, k, server=True):
        x = m[k]
        return (f"| {label} | {x['runs']} | {wall(k)} | {x['wall_s'] / base:.2f} / {paired(k)} |"
                f" {fmt_s(x['cpu_s'])} | {fmt_s(x['pg_cpu_s']) if server else '—'} | {x['rss_mb']:,.0f} MB |")
    lines += [
        row("**1. `bakeoff analyze --db postgresql://…`** (inside PostgreSQL: only sums come back)", "pg"),
        row("2. `bakeoff export --db postgresql://… > log`, then `bakeoff analyze log`: total", "export"),
        row("&nbsp;&nbsp;&nbsp;2a. `bakeoff export --db postgresql://… > log`", "export_step"),
        row("&nbsp;&nbsp;&nbsp;2b. `bakeoff analyze log` (the exported log)", "export_analyze", server=False),
        row("3. `bakeoff analyze --db store.db` (SQLite)", "sqlite", server=False),
        row("3. `bakeoff analyze events.jsonl` (the log that was imported)", "log", server=False),
        row("4. `psql --csv … -f scripts/sql/summary.postgres.sql`, then `bakeoff analyze --summary`: total "
            "(**2 metrics only**; nested loops off, below)", "summary"),
        row("&nbsp;&nbsp;&nbsp;4a. `PGOPTIONS='-c enable_nestloop=off' psql --csv … -f scripts/sql/summary.postgres.sql`",
            "summary_sql"),
        row("&nbsp;&nbsp;&nbsp;4b. `bakeoff analyze --summary summary.csv`", "summary_analyze", server=False),
    ]
    asis = r.get("summary_as_is")
    if asis:
        took = fmt_s(asis["wall_s"]) if asis["finished"] else f"> {asis['wall_s']:.0f} s (cancelled)"
        lines.append(f"| &nbsp;&nbsp;&nbsp;4a as the README gives it (nested loops on) | 1 | {took} | "
                     f"{'' if asis['finished'] else '> '}{asis['wall_s'] / base:.1f} | {fmt_s(asis['cpu_s'])} | "
                     f"{fmt_s(asis['pg_cpu_s'])} | {asis['rss_mb']:,.0f} MB |")

    pgc, log_m, exp_m = m["pg"], m["log"], m["export"]
    lines += [
        "",
        f"Path 1 makes the per-user sums, the rank-test counts, the quantile metrics' values (in the sketch's buckets "
        f"beyond a million values a variant) and the data-quality counts inside PostgreSQL, in temporary tables of "
        f"one transaction (its session sets `work_mem=256MB`, `jit=off`, `enable_nestloop=off` and `temp_buffers=1GB` "
        f"for itself; the server's settings are the ones above), and takes back only those: the server's CPU is {fmt_s(pgc['pg_cpu_s'])} and bakeoff's "
        f"{fmt_s(pgc['cpu_s'])} (peak RSS {pgc['rss_mb']:,.0f} MB), against {fmt_s(exp_m['pg_cpu_s'])} and "
        f"{fmt_s(exp_m['cpu_s'])} ({exp_m['rss_mb']:,.0f} MB) for path 2, which sends {r['log_bytes'] / 1e9:.1f} GB "
        f"of events and parses them. The temporary tables are not scanned by parallel workers, so most of path 1 "
        f"runs on one core of the server.",
    ]
    imp = r["imports"]
    lines += [
        "",
        "Imports (context; one run each): "
        f"`bakeoff import --db postgresql://…` {fmt_s(imp['pg']['wall_s'])} (client CPU {fmt_s(imp['pg']['cpu_s'])}, "
        f"PostgreSQL CPU {fmt_s(imp['pg']['pg_cpu_s'])}, peak RSS {imp['pg']['rss_mb']:,.0f} MB), then "
        f"`VACUUM (ANALYZE)` + `CHECKPOINT` {fmt_s(imp['pg_vacuum']['wall_s'])}; `bakeoff import --db store.db` (SQLite) "
        f"{fmt_s(imp['sqlite']['wall_s'])} (CPU {fmt_s(imp['sqlite']['cpu_s'])}, peak RSS {imp['sqlite']['rss_mb']:,.0f} MB).",
        "",
    ]
    ident = r["identical"]
    nrep = sum(len(h) for k, h in r["report_sha256"].items() if k != "pg")
    npg = len(r["report_sha256"].get("pg", []))
    lines.append(
        ("Reports: **the same**. " if ident else "Reports: **DIFFERENT** (see out/bench/pganalyze.json). ")
        + f"The {nrep} `--format json` reports of paths 2 and 3 (every run) are byte-for-byte the same; "
        + f"path 1's {npg} agree with them in every string, count and decision, and in every other number to "
        + f"{r.get('pg_max_rel_diff', 0):.1e} relative at most (sums of fractional values added in another order)"
        + (f"; differences beyond 1e-9: {r['pg_differences'][0][:5]}" if r.get("pg_differences") else "")
        + "; every exported log was byte-identical to the imported one "
        + f"({sum(r['exported_log_identical'])} of {len(r['exported_log_identical'])}).")
    sc = r["summary_check"]
    if sc:
        lines += ["", f"Path 4 is not the same analysis: it computes only {' and '.join(f'`{x}`' for x in sc['metrics'])} "
                  f"(the README's warehouse SQL) where the event analysis reports {len(sc['event_metrics'])} metrics and "
                  f"{sc['event_quantiles']} quantiles (latency, TTFT), request counts and a data-quality section; its Holm "
                  "correction is over 2 metrics. On those two, the users, units, "
                  "means, differences, standard errors and unadjusted p-values agree with the event analysis "
                  f"({sc['fields']} numbers, largest relative difference {sc['max_rel_diff']:.1e}). `:start` is the "
                  f"experiment's first day ({r['start']}): the whole log is the period, as in the event analysis, and "
                  "the pre-period (CUPED) sums are 0."]
    if asis:
        plan = r["plans"]["summary_as_is"]
        est = {}
        for name in ("req r", "assignment a"):
            hit = re.search(r"CTE Scan on " + name + r"\b.*?rows=(\d+)", plan)
            est[name] = int(hit.group(1)) if hit else None
        users, requests, conversations = csv_counts(r.get("summary_csv", ""))
        lines += ["", "The SQL file as the README gives it cannot finish on this store in useful time: the planner "
                  f"estimates the deduplicated requests at {est['req r']} rows and the users' assignments at "
                  f"{est['assignment a']} (there are {requests:,} and {users:,}; the filters on CTE scans get default "
                  f"selectivities), so it joins them with nested loops that compare every conversation ({conversations:,} "
                  "with an outcome) with every conversation, and every user with every user: quadratic, on the order "
                  "of 10¹² comparisons here. "
                  + (f"Given {asis['wall_s']:.0f} s, it was cancelled by `statement_timeout`. " if not asis["finished"] else
                     f"It finished in {fmt_s(asis['wall_s'])}. ")
                  + "Row 4 runs the same file with nested loops off in psql's session (`PGOPTIONS='-c "
                  "enable_nestloop=off'`, i.e. `SET enable_nestloop = off`; the server's settings unchanged): hash and "
                  "merge joins, each sort spilling to temporary files at the default `work_mem`."]
    lines.append("")
    lines.append("Raw runs, plans and commands: `out/bench/pganalyze.json`. Reproduce: `BENCH_ONLY=pganalyze make bench` "
                 "(`BENCH_PGANALYZE_USERS`, `BENCH_PGANALYZE_RUNS` and `BENCH_PGANALYZE_AS_IS_TIMEOUT` set the size, the "
                 "runs and the cancelled run's limit; `BENCH_PGANALYZE=0` skips it in `make bench`). It needs about 25 GB "
                 "free in /tmp at the default size and deletes its work directory (/tmp/pganalyze) and cluster at the end.")
    return "\n".join(lines) + "\n"


def csv_counts(text):
    """Users (assigned), requests (output_tokens units) and conversations with an outcome (task_completion units)
    in the summary CSV."""
    rows = list(csv.DictReader(io.StringIO(text)))
    users = sum(int(x["assigned_users"]) for x in rows if x["metric"] == "output_tokens")
    requests = sum(int(x["units"]) for x in rows if x["metric"] == "output_tokens")
    conversations = sum(int(x["units"]) for x in rows if x["metric"] == "task_completion")
    return users, requests, conversations


WORK = "/tmp/pganalyze"
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None

if __name__ == "__main__":
    main()
