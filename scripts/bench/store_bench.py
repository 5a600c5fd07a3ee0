#!/usr/bin/env python3
"""The SQLite event store's size and writer throughput: schema version 4's layout against the compact rows.

    store_bench.py --bin .build/product/release/bakeoff [--events 100000] [--users 10000] [--batch 1000]
                   [--rounds 3] [--out out/bench] [--markdown BENCHMARKS.md]

Standard library only. Each round runs `bakeoff store-bench --format json`, which writes the same gateway-like
events (request ids in the gateway's shape, 10,000 users, latencies in nanoseconds, tokens, statuses, feedback on
a fifth of the requests) into fresh stores:
  version 4            a JSON line and text columns per event, as releases before the compact rows wrote them,
                       request ids of 24 random hex digits (the gateway's before);
  version 5            compact rows: interned strings, numbers as numbers, the lines rebuilt on read; the same
                       events (random ids);
  time-ordered ids     version 5 with the gateway's ids now (the time in milliseconds first: appended to the
                       request-id index rather than spread over it);
  EventStore.append    the same through the gateway's path (the writer thread's queue, then flush).
Bytes per event: the store file after close (its WAL checkpointed) over the events. Events/s: events committed
per second in transactions of --batch events, the writer's statements and settings alone (queue: append to
flushed), in wall-clock time and per CPU second of the process (the machine may be shared). Lines/s: every line
read back (StoreReader.forEachLine, what `export` and the analysis read). Medians
over the rounds; prints a Markdown table (and writes OUT/store.json; with --markdown, the section SECTION_TITLE).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_md import publish  # noqa: E402

SECTION_TITLE = "## SQLite event store: bytes per event and writer throughput"
START = time.monotonic()


def log(msg):
    print(f"[store {time.monotonic() - START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def run_round(args):
    cmd = [args.bin, "store-bench", "--format", "json", "--events", str(args.events), "--users", str(args.users),
           "--batch", str(args.batch)]
    if args.dir:
        cmd += ["--dir", args.dir]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"store_bench: {' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True, help="the bakeoff binary (a release build)")
    p.add_argument("--events", type=int, default=100_000, help="request events; feedback comes on top")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=1000, help="events per transaction")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dir", help="folder for the stores (a temporary one by default)")
    p.add_argument("--out", default="out/bench")
    p.add_argument("--markdown", help="put the section into this file (e.g. BENCHMARKS.md)")
    args = p.parse_args()

    rounds = []
    for k in range(args.rounds):
        result = run_round(args)
        rounds.append(result)
        log(f"round {k + 1}: " + ", ".join(f"{r['layout']}: {r['bytes_per_event']} B/event, {r['events_per_cpu_second']:.0f} events/CPU s"
                                          for r in result["layouts"]))
    layouts = [r["layout"] for r in rounds[0]["layouts"]]
    rows = []
    for i, name in enumerate(layouts):
        per_event = statistics.median(r["layouts"][i]["bytes_per_event"] for r in rounds)
        rate = statistics.median(r["layouts"][i]["events_per_second"] for r in rounds)
        cpu_rate = statistics.median(r["layouts"][i]["events_per_cpu_second"] for r in rounds)
        read = statistics.median(r["layouts"][i]["lines_read_per_second"] for r in rounds)
        cpu_read = statistics.median(r["layouts"][i]["lines_read_per_cpu_second"] for r in rounds)
        rows.append({"layout": name, "bytes_per_event": per_event, "events_per_second": rate, "events_per_cpu_second": cpu_rate,
                     "lines_read_per_second": read, "lines_read_per_cpu_second": cpu_read,
                     "rounds": [r["layouts"][i] for r in rounds]})
    base = rows[0]
    first = rounds[0]
    lines = [SECTION_TITLE, "",
             f"`python3 scripts/bench/store_bench.py --bin BIN` (`bakeoff store-bench`): {first['events']:,} events "
             f"({first['requests']:,} gateway-like requests of {first['users']:,} users, feedback on a fifth of them), "
             f"transactions of {first['batch']:,} events; the file after close over the events, and events committed "
             f"per second by the writer's statements alone (the queue row: `EventStore.append` to `flush`), and every "
             f"line read back with `StoreReader.forEachLine` (rebuilt from the columns in version 5); "
             f"medians of {args.rounds} rounds on {os.cpu_count()} cores.", "",
             "| layout | bytes/event | vs version 4 | events/s written | per CPU second | vs version 4 (CPU) "
             "| lines/s read (`export`) | per CPU second |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['layout']} | {r['bytes_per_event']:.1f} | {r['bytes_per_event'] / base['bytes_per_event']:.2f}x "
                     f"| {r['events_per_second']:,.0f} | {r['events_per_cpu_second']:,.0f} "
                     f"| {r['events_per_cpu_second'] / base['events_per_cpu_second']:.2f}x "
                     f"| {r['lines_read_per_second']:,.0f} | {r['lines_read_per_cpu_second']:,.0f} |")
    lines += ["", f"Load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])} (wall-clock rates "
              "depend on what else runs; the CPU-second rates less so)."]
    section = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    publish({"args": vars(args), "rows": rows}, args.out, "store", section, args.markdown, SECTION_TITLE, log)


if __name__ == "__main__":
    main()
