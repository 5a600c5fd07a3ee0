#!/usr/bin/env python3
"""The gateway with a PostgreSQL store against the SQLite store, at the same load.

    pg_store_bench.py --bin .build/product/release/bakeoff [--out out/bench] [--markdown BENCHMARKS.md] [--quick]

Standard library only; reuses scripts/bench/gateway.py's helpers and e2e/postgres.py's throw-away cluster
(fsync on). Two `bakeoff mock-upstream` processes as in gateway.py; configurations, alternated in each round
(order rotating), medians over rounds:
  direct   `bakeoff load` straight to mock 1 (open loop only: the baseline of the overheads);
  sqlite   one `bakeoff serve`, SQLite store (the baseline of the ratios);
  pg       one `bakeoff serve`, PostgreSQL store;
  pg2      two `bakeoff serve` on the same PostgreSQL database, one `bakeoff load` each (half the
           concurrency, or half the rate).
Closed loop (`--rate 0`, 32 outstanding in all) and open loop at --rate (1,000 req/s in all).

Every run gets a fresh store (SQLite file, or PostgreSQL database) and fresh gateways; its warm-up is a
`bakeoff load` of its own, so that every request sent is in a report. After the run the gateways get SIGTERM
(which flushes) and the request events in the store are counted against the 200s the load reports: a
mismatch is reported in the Markdown and makes the exit status 1.

Writes OUT/pgstore.json and, with --markdown, the section SECTION_TITLE (quick mode: OUT/BENCHMARKS.quick.md).
"""
import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "e2e"))
from bench_md import publish  # noqa: E402
from gateway import (CLK_TCK, MODEL, Processes, env_num, machine_info, med, rotate,  # noqa: E402
                     session_cpu_seconds, versions)
from postgres import ThrowawayPostgres  # noqa: E402

SECTION_TITLE = "## Gateway with a PostgreSQL store against SQLite"
LABELS = {"direct": "Direct to mock upstream", "sqlite": "1 gateway, SQLite store (baseline)",
          "pg": "1 gateway, PostgreSQL store", "pg2": "2 gateways, one PostgreSQL store"}
START = time.monotonic()


def log(msg):
    print(f"[pgstore {time.monotonic() - START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def tree_cpu_seconds(pid):
    """CPU seconds of a process, its reaped children (cutime/cstime) and its live children: the postgres server."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()  # f[1] ppid, f[11] utime, f[12] stime, f[13] cutime, f[14] cstime
        if int(entry) == pid:
            total += sum(int(x) for x in f[11:15])
        elif int(f[1]) == pid:
            total += int(f[11]) + int(f[12])
    return total / CLK_TCK


def metrics(url):
    """The gateway's /metrics gauges and counters without labels, and the sum of bakeoff_requests_total."""
    with urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(bakeoff_\w+) (\S+)$", text, re.M)}
    out["requests_total"] = sum(float(v) for v in re.findall(r"^bakeoff_requests_total\{.*\} (\S+)$", text, re.M))
    return out


class QueuePoller(threading.Thread):
    """Samples each gateway's bakeoff_store_queue_depth every 0.25 s during a run; keeps the largest."""

    def __init__(self, urls):
        super().__init__(daemon=True)
        self.urls, self.max_depth, self.stop = urls, 0, threading.Event()

    def run(self):
        while not self.stop.wait(0.25):
            for u in self.urls:
                try:
                    self.max_depth = max(self.max_depth, int(metrics(u).get("bakeoff_store_queue_depth", 0)))
                except OSError:
                    pass


def loads(args, urls, rate, duration):
    """One `bakeoff load` per URL, all at once, the load split evenly; their JSON reports."""
    n = len(urls)
    procs = []
    for u in urls:
        argv = [args.bin, "load", "--url", u + "/chat/completions", "--rate", f"{rate / n:g}", "--duration",
                f"{duration:g}", "--warmup", "0", "--users", str(args.users), "--model", MODEL, "--format", "json"]
        if rate == 0:
            argv += ["--concurrency", str(args.concurrency // n)]
        procs.append((argv, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    reports = []
    for argv, p in procs:
        out, err = p.communicate()
        try:
            reports.append(json.loads(out))
        except json.JSONDecodeError:
            raise RuntimeError(f"bakeoff load failed ({p.returncode}): {' '.join(argv)}\n{err[-2000:]}")
    return reports


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick = os.environ.get("BENCH_PGSTORE_QUICK", "0") not in ("", "0")
    p.add_argument("--bin", default=os.environ.get("BAKEOFF_BIN", ".build/product/release/bakeoff"))
    p.add_argument("--out", default=os.environ.get("BENCH_OUT", "out/bench"))
    p.add_argument("--markdown")
    p.add_argument("--quick", action="store_true", default=quick, help="short runs (BENCH_PGSTORE_QUICK=1)")
    p.add_argument("--rounds", type=int, default=env_num("BENCH_PGSTORE_ROUNDS", None, int))
    p.add_argument("--duration", type=float, default=env_num("BENCH_PGSTORE_DURATION", None))
    p.add_argument("--warmup", type=float, default=env_num("BENCH_PGSTORE_WARMUP", None))
    p.add_argument("--rate", type=int, default=env_num("BENCH_PGSTORE_RATE", 1000, int))
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--users", type=int, default=10000)
    p.add_argument("--gateway-threads", type=int, default=2)
    p.add_argument("--command", default=os.environ.get("BENCH_COMMAND", "BENCH_ONLY=pgstore make bench"))
    args = p.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 7)
    args.duration = args.duration or (3 if args.quick else 6)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        raise SystemExit(f"pg_store_bench.py: {args.bin} not found (make build)")
    if args.quick and args.markdown:
        args.markdown = os.path.join(args.out, "BENCHMARKS.quick.md")
    os.makedirs(args.out, exist_ok=True)
    workdir = os.path.join(os.path.abspath(args.out), "pgstore")
    subprocess.run(["rm", "-rf", workdir])
    os.makedirs(workdir)
    procs = Processes(workdir)
    pg = None

    def on_signal(signum, _frame):
        raise SystemExit(f"pg_store_bench.py: signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        pg = ThrowawayPostgres(durable=True)
        result = measure(args, procs, workdir, pg)
    finally:
        procs.stop_all()
        if pg:
            pg.close()
    publish(result, args.out, "pgstore", render(result), args.markdown, SECTION_TITLE, log)
    if result["mismatches"]:
        log(f"MISMATCH: {len(result['mismatches'])} runs did not store every request: {result['mismatches']}")
        sys.exit(1)


def measure(args, procs, workdir, pg):
    pg_version = subprocess.run([f"{pg.bin}/postgres", "--version"], capture_output=True, text=True).stdout.strip()
    result = {"date": subprocess.run(["date"], capture_output=True, text=True).stdout.strip(),
              "command": args.command, "quick": args.quick,
              "settings": {"rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
                           "rate": args.rate, "concurrency": args.concurrency, "users": args.users,
                           "gateway_threads": args.gateway_threads},
              "machine": machine_info(), "versions": {**versions(args, ROOT, False), "postgres": pg_version}}
    log(f"{result['machine']['nproc']} cores, load {result['machine']['loadavg_start']}; {pg_version}; "
        f"{args.rounds} rounds x ({args.warmup} s warm-up + {args.duration} s)")
    mock_args = ["mock-upstream", "--port", "0", "--latency-ms", "0", "--jitter-ms", "0",
                 "--tokens-per-second", "0", "--output-tokens", "20", "--threads", "1"]
    mocks = []
    for i in (1, 2):
        proc = procs.start(f"mock{i}", [args.bin] + mock_args + ["--seed", str(i)])
        mocks.append(procs.wait_for_line(f"mock{i}", proc, r"listening on (http://\S+/v1)", 30).group(1))
    runs, mismatches, stderr_lines = [], [], {}

    def start_gateway(name, store):
        config = {"listen": "127.0.0.1:8080", "threads": args.gateway_threads, "store": store,
                  "experiments": [{"name": "bench", "model": MODEL, "split": 0.5, "variants": [
                      {"name": "control", "upstream": {"base_url": mocks[0], "model": "mock"}},
                      {"name": "treatment", "upstream": {"base_url": mocks[1], "model": "mock"}}]}]}
        cfg = os.path.join(workdir, name + ".json")
        with open(cfg, "w") as fh:
            json.dump(config, fh)
        # Gateways sharing a PostgreSQL store must sign feedback tokens with one key (given to all of them).
        gw = procs.start(name, [args.bin, "serve", "--config", cfg, "--listen", "127.0.0.1:0"],
                         env={"BAKEOFF_FEEDBACK_KEY": "pgstore-bench-feedback-key-0123456789"})
        return name, gw, procs.wait_for_line(name, gw, r"listening on (http://\S+/v1)", 60).group(1)

    def one(key, kind, rate, rnd):
        tag = f"{kind}-{'closed' if rate == 0 else rate}-r{rnd}"
        gws, store = [], None
        if kind == "sqlite":
            store = os.path.join(workdir, tag + ".db")
            gws.append(start_gateway(tag, {"path": store}))
        elif kind.startswith("pg"):
            store = "r_" + tag.replace("-", "_")
            pg.psql(f"CREATE DATABASE {store}")
            url = pg.url.replace("/postgres?", f"/{store}?")
            for i in range(2 if kind == "pg2" else 1):
                gws.append(start_gateway(f"{tag}-{i}", {"url": url}))
        urls = [u for _, _, u in gws] or [mocks[0]]
        loadavg = float(open("/proc/loadavg").read().split()[0])
        warm = loads(args, urls, rate, args.warmup)
        gw_cpu0 = sum(session_cpu_seconds(g.pid) for _, g, _ in gws)
        pg_cpu0 = tree_cpu_seconds(pg.server.pid)
        poller = QueuePoller([u for _, _, u in gws])
        poller.start()
        t0 = time.monotonic()
        reps = loads(args, urls, rate, args.duration)
        wall = time.monotonic() - t0
        poller.stop.set()
        poller.join()
        gw_cpu = sum(session_cpu_seconds(g.pid) for _, g, _ in gws) - gw_cpu0
        pg_cpu = tree_cpu_seconds(pg.server.pid) - pg_cpu0
        run = {"config": key, "kind": kind, "round": rnd, "offered_rate": rate, "wall_s": round(wall, 3),
               "loadavg_before": loadavg,
               "reports": reps, "warmup_reports": warm,
               "rate": sum(r["rate"] for r in reps), "requests": sum(r["requests"] for r in reps),
               "completed": sum(r["completed"] for r in reps), "errors": sum(r["errors"] for r in reps),
               "skipped": sum(r["skipped"] for r in reps),
               # One load: its quantiles; two: the mean of their p50s and the larger p99.
               "p50": sum(r["latency_ms"]["p50"] for r in reps) / len(reps),
               "p99": max(r["latency_ms"]["p99"] for r in reps)}
        if gws:
            run["gateway_cpu_ms_per_request"] = gw_cpu / max(1, run["requests"]) * 1000
            run["metrics_before_stop"] = [metrics(u) for _, _, u in gws]
            run["max_queue_depth"] = poller.max_depth
            stops = []
            for name, g, _ in gws:
                t = time.monotonic()
                os.killpg(g.pid, signal.SIGTERM)
                try:
                    g.wait(60)
                except subprocess.TimeoutExpired:
                    log(f"{name} did not stop within 60 s of SIGTERM: SIGKILL")
                procs.stop(name, g)
                procs.procs.remove((name, g))
                stops.append({"gateway": name, "exit": g.returncode, "stop_s": round(time.monotonic() - t, 3)})
                extra = [ln for ln in procs.stderr_text(name).splitlines()
                         if not re.search(r"listening on|^bakeoff: (stopping \(|stopped$)", ln)]
                if extra:
                    stderr_lines[name] = extra[:20]
            run["stops"] = stops
            answered = sum(r["completed"] for r in warm + reps)
            if kind == "sqlite":
                db = sqlite3.connect(store)
                rows = db.execute("SELECT status, count(*) FROM events WHERE kind = 'request' GROUP BY 1").fetchall()
                db.close()
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(store + suffix):
                        os.remove(store + suffix)
            else:
                run["pg_cpu_ms_per_request"] = pg_cpu / max(1, run["requests"]) * 1000
                out = pg._run("psql", "-h", pg.directory, "-U", "postgres", "-d", store, "-X", "-q", "-A", "-t",
                              "-F", "|", "-c", "SELECT status, count(*) FROM events WHERE kind = 'request' GROUP BY 1")
                rows = [(s, int(c)) for s, c in (ln.split("|") for ln in out.split())]
                pg.psql(f"DROP DATABASE {store}")
            stored = sum(c for _, c in rows)
            run["store"] = {"answered_200": answered, "stored": stored, "by_status": dict(rows),
                            "load_errors": sum(r["errors"] for r in warm + reps),
                            "gateway_requests_total": sum(m["requests_total"] for m in run["metrics_before_stop"]),
                            "dropped": sum(m.get("bakeoff_events_dropped_total", 0) for m in run["metrics_before_stop"]),
                            "write_errors": sum(m.get("bakeoff_store_write_errors_total", 0) for m in run["metrics_before_stop"])}
            if stored != answered:
                mismatches.append({"run": tag, **run["store"]})
        runs.append(run)
        log(f"round {rnd} {key:14s} rate {run['rate']:9.1f}  p50 {run['p50']:7.3f} ms  p99 {run['p99']:7.3f} ms  "
            f"errors {run['errors']} skipped {run['skipped']}"
            + (f"  gw cpu {run['gateway_cpu_ms_per_request'] * 1000:.0f} us/req" if gws else "")
            + (f"  pg cpu {run['pg_cpu_ms_per_request'] * 1000:.0f} us/req" if "pg_cpu_ms_per_request" in run else "")
            + (f"  stored {run['store']['stored']}/{run['store']['answered_200']}  max queue {run['max_queue_depth']}"
               if gws else ""))
        time.sleep(0.5)

    configs = [(f"{k}/closed", k, 0) for k in ("sqlite", "pg", "pg2")] + \
              [(f"{k}@{args.rate}", k, args.rate) for k in ("direct", "sqlite", "pg", "pg2")]
    for rnd in range(args.rounds):
        for key, kind, rate in rotate(configs, rnd):
            one(key, kind, rate, rnd)
    result.update(runs=runs, mismatches=mismatches, gateway_stderr=stderr_lines, mocks=mocks)
    result["summary"] = analyse(runs, args.rate)
    result["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    result["elapsed_s"] = round(time.monotonic() - START, 1)
    return result


def analyse(runs, rate):
    by = {}
    for r in runs:
        by.setdefault(r["config"], {})[r["round"]] = r
    s = {}
    for key, rr in by.items():
        v = list(rr.values())
        s[key] = {q: med([r.get(q) for r in v]) for q in ("rate", "p50", "p99", "gateway_cpu_ms_per_request",
                                                           "pg_cpu_ms_per_request")}
        s[key].update(rate_min=min(r["rate"] for r in v), rate_max=max(r["rate"] for r in v),
                      max_queue_depth=max((r.get("max_queue_depth") or 0) for r in v),
                      errors=sum(r["errors"] for r in v), skipped=sum(r["skipped"] for r in v),
                      stored=sum(r["store"]["stored"] for r in v if "store" in r),
                      answered=sum(r["store"]["answered_200"] for r in v if "store" in r))

    def per_round(a, b, q):
        """Median over rounds of a minus b (same round)."""
        return med([by[a][k][q] - by[b][k][q] for k in by.get(a, {}) if k in by.get(b, {})])
    for k in ("sqlite", "pg", "pg2"):
        s[f"{k}@{rate}"]["overhead_p50"] = per_round(f"{k}@{rate}", f"direct@{rate}", "p50")
        s[f"{k}@{rate}"]["overhead_p99"] = per_round(f"{k}@{rate}", f"direct@{rate}", "p99")
    base = s["sqlite/closed"]["rate"]

    def paired(a, b):
        """Median over rounds of a's throughput over b's in the same round (robust to a machine whose load drifts)."""
        return med([by[a][k]["rate"] / by[b][k]["rate"] for k in by[a] if k in by[b]])
    s["ratios"] = {"pg_over_sqlite_throughput": s["pg/closed"]["rate"] / base,
                   "pg2_over_sqlite_throughput": s["pg2/closed"]["rate"] / base,
                   "pg2_over_pg_throughput": s["pg2/closed"]["rate"] / s["pg/closed"]["rate"],
                   "pg_over_sqlite_throughput_paired": paired("pg/closed", "sqlite/closed"),
                   "pg2_over_sqlite_throughput_paired": paired("pg2/closed", "sqlite/closed"),
                   "pg_minus_sqlite_p50": per_round(f"pg@{rate}", f"sqlite@{rate}", "p50"),
                   "pg_minus_sqlite_p99": per_round(f"pg@{rate}", f"sqlite@{rate}", "p99")}
    return s


def render(res):
    s, st, m, v = res["summary"], res["settings"], res["machine"], res["versions"]
    rate, r = st["rate"], s["ratios"]
    lavg = [x["loadavg_before"] for x in res["runs"]]

    def f(x, d=3):
        return "—" if x is None else f"{x:,.{d}f}"

    def us(x):
        return "—" if x is None else f"{x * 1000:,.0f} µs"
    md = [SECTION_TITLE + "\n",
          f"`{res['command']}` (`scripts/bench/pg_store_bench.py`), {res['date']}"
          + (" — **quick mode** (short runs, development only)" if res["quick"] else "") + ".\n",
          f"- Machine: {m['nproc']} cores, `{m['cpu_model']}`, {m['kernel']}; load average "
          f"{' '.join(m['loadavg_start'])} at start, {' '.join(m['loadavg_end'])} at the end, {min(lavg):.1f}–{max(lavg):.1f} "
          "(1 minute) before the runs: the machine is shared with other jobs, so compare within a round.",
          f"- Versions: bakeoff commit {v['bakeoff_commit']}{' with uncommitted changes' if v['bakeoff_dirty'] else ''}"
          f" (binary sha256 {v['bakeoff_sha256']}…), {v['postgres']} (a throw-away cluster on a Unix socket, "
          "`fsync` on, default settings otherwise).",
          f"- Runs: {st['rounds']} rounds; each run {st['warmup_s']:g} s warm-up + {st['duration_s']:g} s measured, "
          f"configurations alternating (order rotating); medians over rounds. {st['users']:,} users, "
          f"{st['gateway_threads']} HTTP threads per gateway. Total {res['elapsed_s']:.0f} s.\n",
          "| Configuration | Closed-loop throughput, non-streaming (range over rounds) | vs SQLite | p50 / p99 at "
          f"{rate:,} req/s | Overhead over direct, p50 / p99 | Gateway CPU per request | PostgreSQL server CPU per "
          "request | Largest writer queue |",
          "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: |"]
    d = s[f"direct@{rate}"]
    md.append(f"| {LABELS['direct']} | — | — | {f(d['p50'])} / {f(d['p99'])} ms | — (baseline) | — | — | — |")
    for k in ("sqlite", "pg", "pg2"):
        c, o = s[f"{k}/closed"], s[f"{k}@{rate}"]
        ratio = "1.00 (baseline)" if k == "sqlite" else f"{c['rate'] / s['sqlite/closed']['rate']:.2f}"
        errs = "" if c["errors"] + o["errors"] + o["skipped"] == 0 else \
            f" ({c['errors'] + o['errors']} errors, {o['skipped']} skipped)"
        md.append(f"| {LABELS[k]} | {c['rate']:,.0f} req/s ({c['rate_min']:,.0f}–{c['rate_max']:,.0f}){errs} | {ratio} | {f(o['p50'])} / {f(o['p99'])} ms "
                  f"| {f(o['overhead_p50'])} / {f(o['overhead_p99'])} ms "
                  f"| {us(c['gateway_cpu_ms_per_request'])} closed / {us(o['gateway_cpu_ms_per_request'])} open"
                  f" | {'—' if k == 'sqlite' else us(c['pg_cpu_ms_per_request']) + ' closed / ' + us(o['pg_cpu_ms_per_request']) + ' open'}"
                  f" | {max(c['max_queue_depth'] or 0, o['max_queue_depth'] or 0):,} |")
    md.append("")
    md.append(f"Ratios: PostgreSQL / SQLite closed-loop throughput **{r['pg_over_sqlite_throughput']:.2f}** "
              f"(two gateways on PostgreSQL / one on SQLite: {r['pg2_over_sqlite_throughput']:.2f}; two / one on "
              f"PostgreSQL: {r['pg2_over_pg_throughput']:.2f}); paired within each round (median of the rounds' ratios), "
              f"PostgreSQL / SQLite {r['pg_over_sqlite_throughput_paired']:.2f} and two gateways / SQLite "
              f"{r['pg2_over_sqlite_throughput_paired']:.2f}; at {rate:,} req/s PostgreSQL minus SQLite latency "
              f"(the overhead difference, same round, median) p50 **{r['pg_minus_sqlite_p50']:+.3f} ms**, p99 "
              f"**{r['pg_minus_sqlite_p99']:+.3f} ms**.\n")
    tot = {k: (s[f"{k}/closed"]["gateway_cpu_ms_per_request"] or 0) + (s[f"{k}/closed"]["pg_cpu_ms_per_request"] or 0)
           for k in ("sqlite", "pg", "pg2")}
    md.append(f"CPU per request, gateways and PostgreSQL server together, closed loop: SQLite {us(tot['sqlite'])}, "
              f"PostgreSQL {us(tot['pg'])}, two gateways on PostgreSQL {us(tot['pg2'])}. On {m['nproc']} cores the "
              "gateways, the PostgreSQL server, the mocks and the load generators share the same CPUs, so a second "
              "gateway adds no capacity here: its row measures two writers on one store (and two gateways' threads "
              "on the same cores), not scaling across machines.\n")
    gw_runs = [x for x in res["runs"] if "store" in x]
    answered = sum(x["store"]["answered_200"] for x in gw_runs)
    if res["mismatches"]:
        md.append(f"**Not every request was stored**: {len(res['mismatches'])} of {len(gw_runs)} runs differ "
                  "(answered with 200 / request events stored): " + "; ".join(
                      f"{x['run']} {x['answered_200']:,} / {x['stored']:,}" for x in res["mismatches"]) + ".\n")
    else:
        md.append(f"Stored: all {answered:,} requests answered with 200 (warm-ups included) were in the store as "
                  f"request events, in each of the {len(gw_runs)} gateway runs; no events dropped, "
                  f"{sum(x['store']['write_errors'] for x in gw_runs):.0f} write errors.\n")
    if res["gateway_stderr"]:
        md.append("`bakeoff serve` wrote on stderr beyond its start and stop lines: " + "; ".join(
            f"{k}: `{ln[0]}`" for k, ln in list(res["gateway_stderr"].items())[:5]) + ".\n")
    md.append(
        "How measured: two `bakeoff mock-upstream` processes answer at once (20 tokens, one thread each); each "
        "gateway has one experiment, `split` 0.5, control on mock 1 and treatment on mock 2 (the setup of \"Gateway "
        "overhead and throughput\"), and logs every request to its store with the default flush interval (50 ms) "
        "and queue (100,000). SQLite: WAL, `synchronous=NORMAL`. PostgreSQL: each batch copied (COPY) into a "
        "temporary table of the writer's session, then moved into the events and committed in one message under an "
        "advisory lock (commits in id order), over one connection per gateway; the server shares the 2 cores with everything else. \"2 gateways\": both on one database, each sent half the load by its own "
        f"`bakeoff load` (closed loop: {st['concurrency'] // 2} outstanding each; open loop: {rate // 2:,} req/s "
        "each); its throughput is the sum, its p50 the mean of the two loads' p50s and its p99 the larger p99. "
        f"Closed loop: `bakeoff load --rate 0`, {st['concurrency']} requests outstanding in all, lower bounds for "
        "the gateway alone (the load generator, mocks and PostgreSQL share the cores). Open loop: requests on "
        f"schedule at {rate:,} req/s; an overhead is the gateway's latency minus direct's in the same round, median "
        "over rounds. Every run has a fresh store (file or database) and fresh gateways, and its warm-up is a "
        "separate `bakeoff load`, so every request sent is in a report; CPU per request is CPU time (/proc, user + "
        "system) over the measured load divided by its requests: the gateways' process groups, and separately the "
        "PostgreSQL server (postmaster, its live children and the children it reaped). The writer queue's depth "
        "(`bakeoff_store_queue_depth` on /metrics) is sampled every 0.25 s. After each run the gateways get SIGTERM "
        "(they flush), then the request events in the store are counted and compared with the 200s the loads "
        "report. Raw runs: `out/bench/pgstore.json`.\n")
    md.append("Reproduce: `BENCH_ONLY=pgstore make bench`; `BENCH_PGSTORE_QUICK=1` for short runs (written to "
              "`out/bench/BENCHMARKS.quick.md`); settings `BENCH_PGSTORE_ROUNDS`, `_DURATION`, `_WARMUP`, `_RATE`; "
              "`BENCH_PGSTORE=0` skips it in `make bench`.\n")
    return "\n".join(md)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"pg_store_bench.py: {e}", file=sys.stderr)
        sys.exit(1)
