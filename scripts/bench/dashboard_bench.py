#!/usr/bin/env python3
"""The dashboard's cost on a large store: its first load against one `bakeoff analyze --db`, and each refresh.

The store: `bakeoff simulate` (the case study, --users users over 14 days), sorted by time as a gateway writes
it, imported with `bakeoff import`. Measured in one run, on the same store:
- `analyze --db STORE --format json` (the baseline: one analysis of every event), median of --runs;
- `bakeoff dashboard --db STORE`: the first GET of the experiment page (every day's point built in one read),
  then refreshes: with no new event, and after 1,000 and 10,000 new events written (a later slice of the
  simulated log, appended with `bakeoff import` while the dashboard runs), median of --refreshes each.

The issue's targets: first load within one `analyze --db`; a refresh under 200 ms.

Usage: dashboard_bench.py --bin BAKEOFF [--users 600000] [--out out/bench] [--markdown BENCHMARKS.md]
"""
import argparse
import datetime
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_md import write_section  # noqa: E402

EXPERIMENT = "support-bot-v2"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=3600) as r:
        body = r.read()
        status = r.status
    return status, time.perf_counter() - t, body


def as_of(body):
    """What the page counted: its requests and feedback events."""
    m = re.search(r"([\d,]+) requests · ([\d,]+) feedback events", body.decode("utf-8", "replace"))
    return m.groups() if m else None


def timed(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def timed_cpu(cmd):
    """Wall seconds and CPU seconds (user + system) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_seconds(pid):
    """CPU seconds (user + system) a running process has used."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", required=True)
    p.add_argument("--users", type=int, default=600_000, help="simulated users (600,000: about 10 million events)")
    p.add_argument("--runs", type=int, default=3, help="analyze --db runs and dashboard first loads (median of each)")
    p.add_argument("--refreshes", type=int, default=9, help="refreshes per case (median)")
    p.add_argument("--out", default="out/bench")
    p.add_argument("--markdown")
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    work = os.path.join(a.out, "dashboard")
    os.makedirs(work, exist_ok=True)
    raw, log, extra, store = (os.path.join(work, n) for n in ("raw.jsonl", "events.jsonl", "extra.jsonl", "store.db"))
    for path in (store, store + "-wal", store + "-shm"):
        if os.path.exists(path):
            os.remove(path)

    print(f"[dashboard bench] simulating {a.users:,} users", file=sys.stderr)
    # The two weeks end tomorrow: the last days are live (their cuts still open), as on a running gateway.
    start = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=13)).strftime("%Y-%m-%dT00:00:00Z")
    spec = os.path.join(work, "spec.json")
    with open(spec, "w") as fh:
        json.dump({"preset": "seed-case-study", "start": start, "users": a.users}, fh)
    subprocess.run([a.bin, "simulate", "--spec", spec, "--days", "14", "--experiment", EXPERIMENT, "--output", raw], check=True)
    # Sorted by time as a gateway writes them (the simulator writes user by user); the last events are held
    # back to be written while the dashboard runs (1,000 then 10,000 before each refresh).
    subprocess.run(["sort", "-s", "-t", '"', "-k8,8", "-o", raw + ".sorted", raw], check=True,
                   env={**os.environ, "LC_ALL": "C"})
    with open(raw + ".sorted") as src:
        lines = src.readlines()
    os.remove(raw + ".sorted")
    os.remove(raw)
    keep = a.refreshes * 11_000
    held = lines[-keep:]
    with open(log, "w") as out:
        out.writelines(lines[:-keep])
    events = len(lines) - len(held)
    del lines
    print(f"[dashboard bench] importing {events:,} events", file=sys.stderr)
    import_s = timed([a.bin, "import", "--db", store, log])

    def start_dashboard():
        port = free_port()
        dash = subprocess.Popen([a.bin, "dashboard", "--db", store, "--listen", f"127.0.0.1:{port}", "--refresh", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return dash, f"http://127.0.0.1:{port}/dashboard/experiments/{EXPERIMENT}"
            except OSError:
                if time.time() > deadline or dash.poll() is not None:
                    dash.kill()
                    raise SystemExit(f"bakeoff dashboard did not start: {dash.stderr.read() if dash.poll() is not None else ''}")
                time.sleep(0.1)

    # Each run: one `analyze --db`, then the first load of a fresh `bakeoff dashboard` (taken in turns, so that a
    # slower spell of a shared machine falls on both); the medians of --runs.
    analyze, firsts, analyze_cpu, first_cpu = [], [], [], []
    for run in range(a.runs):
        wall, cpu = timed_cpu([a.bin, "analyze", "--db", store, "--split", "0.2", "--method", "sequential", "--format", "json"])
        analyze.append(wall)
        analyze_cpu.append(cpu)
        dash, url = start_dashboard()
        cpu = cpu_seconds(dash.pid)
        status, took, body = get(url)
        assert status == 200 and b"scorecard" in body, body[:500]
        firsts.append(took)
        first_cpu.append(cpu_seconds(dash.pid) - cpu)
        if run < a.runs - 1:
            dash.terminate()
            dash.wait(timeout=30)
    first = statistics.median(firsts)
    try:
        refresh = {"no new events": [get(url)[1] for _ in range(a.refreshes)]}
        fresh = {}
        start = 0
        for size in (1_000, 10_000):
            times, until_fresh = [], []
            for _ in range(a.refreshes):
                chunk = held[start:start + size]
                start += len(chunk)
                with open(extra, "w") as out:
                    out.writelines(chunk)
                before = as_of(get(url)[2])
                subprocess.run([a.bin, "import", "--db", store, extra], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                t0 = time.perf_counter()
                status, took, body = get(url)
                times.append(took)
                # How long until a page shows the new events (a large store's page answers with the last read
                # while the next one runs).
                deadline = time.perf_counter() + 600
                while b"newer events are being read" in body or as_of(body) == before:
                    if time.perf_counter() > deadline:
                        raise SystemExit("the page did not show the new events within 10 minutes")
                    time.sleep(0.05)
                    status, _, body = get(url)
                until_fresh.append(time.perf_counter() - t0)
            refresh[f"{size:,} new events"] = times
            fresh[f"{size:,} new events"] = until_fresh
    finally:
        dash.terminate()
        dash.wait(timeout=30)

    base = statistics.median(analyze)
    result = {
        "events": events, "users": a.users, "import_s": import_s,
        "analyze_db_s": analyze, "analyze_db_median_s": base,
        "first_load_s": firsts, "first_load_median_s": first, "first_load_ratio": first / base,
        "analyze_db_cpu_s": analyze_cpu, "first_load_cpu_s": first_cpu,
        "refresh_s": refresh, "refresh_median_ms": {k: statistics.median(v) * 1000 for k, v in refresh.items()},
        "until_fresh_s": fresh, "until_fresh_median_s": {k: statistics.median(v) for k, v in fresh.items()},
    }
    with open(os.path.join(a.out, "dashboard.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "refresh_s"}, indent=2))

    if a.markdown:
        command = os.environ.get("BENCH_COMMAND", "make bench BENCH_ONLY=dashboard")
        lines = [
            "## Dashboard: first load and refresh",
            "",
            f"`{command}` ({datetime.date.today().isoformat()}; `scripts/bench/dashboard_bench.py`). A store of "
            f"{events:,} events ({a.users:,} simulated users over 14 days, sorted by time as a gateway writes them). "
            "The baseline is one `bakeoff analyze --db STORE --format json` on the same store in the same run; the "
            "dashboard is `bakeoff dashboard --db STORE`, timed from outside with HTTP GETs of the experiment page "
            "(the whole page: every day's point, scorecard, charts).",
            "",
            "| measure | time | against `analyze --db` |",
            "| --- | ---: | ---: |",
            f"| `analyze --db` (median of {a.runs}) | {base:.2f} s | 1.00 |",
            f"| dashboard, first load (every day's point in one read; median of {a.runs}) | {first:.2f} s | {first / base:.2f} |",
        ]
        lines.append(f"| CPU time (user + system, median of {a.runs}): `analyze --db` on one core / the first load on two | "
                     f"{statistics.median(analyze_cpu):.1f} s / {statistics.median(first_cpu):.1f} s | "
                     f"{statistics.median(first_cpu) / statistics.median(analyze_cpu):.2f} |")
        for k, v in refresh.items():
            m = statistics.median(v)
            lines.append(f"| dashboard, refresh with {k} (median of {len(v)}) | {m * 1000:.0f} ms | {m / base:.3f} |")
        for k, v in fresh.items():
            m = statistics.median(v)
            lines.append(f"| until the page shows {k} (median of {len(v)}) | {m:.2f} s | {m / base:.3f} |")
        lines += ["", "Targets (issue 12): the first load within one `analyze --db`; each refresh under 200 ms. A refresh "
                  "answers with the newest completed read; on a store where a read with new events takes more than "
                  "200 ms, the page shows the last read (and says \"newer events are being read\") while the next read "
                  "runs on another thread: the last rows say how long until the page shows new events.", "",
                  "How the first load keeps within one analysis while it also computes a point per day: one thread reads "
                  "the store and parses its lines, another aggregates them and cuts the days (`ParsedLines`), and the "
                  "days' analyses run on a third thread of lower priority whenever a core is free. `analyze --db` reads "
                  "on one thread: the CPU row says what the dashboard's daily points cost in all.", ""]
        write_section(a.markdown, "\n".join(lines) + "\n", "## Dashboard: first load and refresh")


if __name__ == "__main__":
    main()
