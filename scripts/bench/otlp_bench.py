#!/usr/bin/env python3
"""What OpenTelemetry trace export costs the gateway: export off against OTLP/HTTP protobuf and JSON.

    otlp_bench.py --bin .build/product/release/bakeoff [--out out/bench] [--markdown BENCHMARKS.md] [--quick]

Standard library only; reuses scripts/bench/gateway.py's and pg_store_bench.py's helpers. Two `bakeoff
mock-upstream` processes as in gateway.py and a collector in this process (a threaded HTTP server that reads
each export and answers 200, counting requests and bytes). Configurations, alternated in each round (order
rotating), medians over rounds:
  direct    `bakeoff load` straight to mock 1 (open loop only: the baseline of the overheads);
  off       one `bakeoff serve` (SQLite store), no trace export (the baseline of the ratios);
  protobuf  the same with "otlp": {"protocol": "http/protobuf"} to the collector;
  json      the same with "otlp": {"protocol": "http/json"}.
Closed loop (`--rate 0`, 32 outstanding) and open loop at --rate (1,000 req/s). After each run the gateway
gets SIGTERM (which flushes its spans) and the spans it reports exported are compared with the requests it
served: a span lost makes the exit status 1.

Writes OUT/otlp.json and, with --markdown, the section SECTION_TITLE (quick mode: OUT/BENCHMARKS.quick.md).
"""
import argparse
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "e2e"))
from bench_md import publish  # noqa: E402
from gateway import MODEL, Processes, env_num, machine_info, med, rotate, session_cpu_seconds, versions  # noqa: E402
from pg_store_bench import loads, metrics  # noqa: E402

SECTION_TITLE = "## Trace export (OpenTelemetry) against none"
LABELS = {"direct": "Direct to mock upstream", "off": "Gateway, no trace export (baseline)",
          "protobuf": "Gateway, OTLP http/protobuf", "json": "Gateway, OTLP http/json"}
START = time.monotonic()


def log(msg):
    print(f"[otlp {time.monotonic() - START:6.1f}s] {msg}", file=sys.stderr, flush=True)


class Collector(http.server.ThreadingHTTPServer):
    """Takes OTLP/HTTP exports: reads each body, answers 200 with an empty response of its content type."""
    daemon_threads = True

    def __init__(self):
        self.posts, self.bytes, self.lock = 0, 0, threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with collector.lock:
                    collector.posts += 1
                    collector.bytes += len(body)
                kind = self.headers.get("Content-Type", "application/x-protobuf")
                reply = b"{}" if "json" in kind else b""
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *a):
                pass
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def counts(self):
        with self.lock:
            return self.posts, self.bytes


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick = os.environ.get("BENCH_OTLP_QUICK", "0") not in ("", "0")
    p.add_argument("--bin", default=os.environ.get("BAKEOFF_BIN", ".build/product/release/bakeoff"))
    p.add_argument("--out", default=os.environ.get("BENCH_OUT", "out/bench"))
    p.add_argument("--markdown")
    p.add_argument("--quick", action="store_true", default=quick, help="short runs (BENCH_OTLP_QUICK=1)")
    p.add_argument("--rounds", type=int, default=env_num("BENCH_OTLP_ROUNDS", None, int))
    p.add_argument("--duration", type=float, default=env_num("BENCH_OTLP_DURATION", None))
    p.add_argument("--warmup", type=float, default=env_num("BENCH_OTLP_WARMUP", None))
    p.add_argument("--rate", type=int, default=env_num("BENCH_OTLP_RATE", 1000, int))
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--users", type=int, default=10000)
    p.add_argument("--gateway-threads", type=int, default=2)
    p.add_argument("--command", default=os.environ.get("BENCH_COMMAND", "BENCH_ONLY=otlp make bench"))
    args = p.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 7)
    args.duration = args.duration or (3 if args.quick else 6)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        raise SystemExit(f"otlp_bench.py: {args.bin} not found (make build)")
    if args.quick and args.markdown:
        args.markdown = os.path.join(args.out, "BENCHMARKS.quick.md")
    os.makedirs(args.out, exist_ok=True)
    workdir = os.path.join(os.path.abspath(args.out), "otlp")
    subprocess.run(["rm", "-rf", workdir])
    os.makedirs(workdir)
    procs = Processes(workdir)

    def on_signal(signum, _frame):
        raise SystemExit(f"otlp_bench.py: signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        result = measure(args, procs, workdir)
    finally:
        procs.stop_all()
    publish(result, args.out, "otlp", render(result), args.markdown, SECTION_TITLE, log)
    if result["lost"]:
        log(f"LOST SPANS: {result['lost']}")
        sys.exit(1)


def measure(args, procs, workdir):
    result = {"date": subprocess.run(["date"], capture_output=True, text=True).stdout.strip(),
              "command": args.command, "quick": args.quick,
              "settings": {"rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
                           "rate": args.rate, "concurrency": args.concurrency, "users": args.users,
                           "gateway_threads": args.gateway_threads},
              "machine": machine_info(), "versions": versions(args, ROOT, False)}
    log(f"{result['machine']['nproc']} cores, load {result['machine']['loadavg_start']}; "
        f"{args.rounds} rounds x ({args.warmup} s warm-up + {args.duration} s)")
    collector = Collector()
    mock_args = ["mock-upstream", "--port", "0", "--latency-ms", "0", "--jitter-ms", "0",
                 "--tokens-per-second", "0", "--output-tokens", "20", "--threads", "1"]
    mocks = []
    for i in (1, 2):
        proc = procs.start(f"mock{i}", [args.bin] + mock_args + ["--seed", str(i)])
        mocks.append(procs.wait_for_line(f"mock{i}", proc, r"listening on (http://\S+/v1)", 30).group(1))
    runs, lost, stderr_lines = [], [], {}

    def one(key, kind, rate, rnd):
        tag = f"{kind}-{'closed' if rate == 0 else rate}-r{rnd}"
        gw, url = None, mocks[0]
        if kind != "direct":
            config = {"listen": "127.0.0.1:0", "threads": args.gateway_threads,
                      "store": {"path": os.path.join(workdir, tag + ".db")},
                      "experiments": [{"name": "bench", "model": MODEL, "split": 0.5, "variants": [
                          {"name": "control", "upstream": {"base_url": mocks[0], "model": "mock"}},
                          {"name": "treatment", "upstream": {"base_url": mocks[1], "model": "mock"}}]}]}
            if kind != "off":
                config["otlp"] = {"endpoint": collector.url, "protocol": "http/" + kind}
            cfg = os.path.join(workdir, tag + ".json")
            with open(cfg, "w") as fh:
                json.dump(config, fh)
            gw = procs.start(tag, [args.bin, "serve", "--config", cfg], env={"BAKEOFF_FEEDBACK_KEY": "otlp-bench-feedback-key-0123456789"})
            url = procs.wait_for_line(tag, gw, r"listening on (http://\S+/v1)", 60).group(1)
        loadavg = float(open("/proc/loadavg").read().split()[0])
        loads(args, [url], rate, args.warmup)
        cpu0 = session_cpu_seconds(gw.pid) if gw else 0
        posts0, bytes0 = collector.counts()
        t0 = time.monotonic()
        reps = loads(args, [url], rate, args.duration)
        wall = time.monotonic() - t0
        r = reps[0]
        run = {"config": key, "kind": kind, "round": rnd, "offered_rate": rate, "wall_s": round(wall, 3),
               "loadavg_before": loadavg, "report": r, "rate": r["rate"], "requests": r["requests"],
               "errors": r["errors"], "skipped": r["skipped"], "p50": r["latency_ms"]["p50"], "p99": r["latency_ms"]["p99"]}
        if gw:
            run["gateway_cpu_ms_per_request"] = (session_cpu_seconds(gw.pid) - cpu0) / max(1, r["requests"]) * 1000
            before = metrics(url)
            os.killpg(gw.pid, signal.SIGTERM)
            try:
                gw.wait(60)
            except subprocess.TimeoutExpired:
                log(f"{tag} did not stop within 60 s of SIGTERM")
            procs.stop(tag, gw)
            procs.procs.remove((tag, gw))
            posts1, bytes1 = collector.counts()
            served = before["requests_total"]
            run["served"] = served
            if kind != "off":
                # Read after the load ended and before the stop: every request served has its span either exported
                # already or waiting in the queue that the stop flushes.
                run["spans_exported_before_stop"] = before.get("bakeoff_otlp_spans_exported_total", 0)
                run["spans_queued_at_stop"] = before.get("bakeoff_otlp_queue_depth", 0)
                run["spans_dropped"] = before.get("bakeoff_otlp_spans_dropped_total", 0)
                run["export_failures"] = before.get("bakeoff_otlp_export_failures_total", 0)
                run["collector_posts"], run["collector_bytes"] = posts1 - posts0, bytes1 - bytes0
                if run["spans_exported_before_stop"] + run["spans_queued_at_stop"] < served or run["spans_dropped"]:
                    lost.append({"run": tag, "served": served, "exported": run["spans_exported_before_stop"],
                                 "queued": run["spans_queued_at_stop"], "dropped": run["spans_dropped"]})
            extra = [ln for ln in procs.stderr_text(tag).splitlines()
                     if not re.search(r"listening on|^bakeoff: (stopping \(|stopped$)", ln)]
            if extra:
                stderr_lines[tag] = extra[:20]
            for suffix in ("", "-wal", "-shm"):
                path = os.path.join(workdir, tag + ".db" + suffix)
                if os.path.exists(path):
                    os.remove(path)
        runs.append(run)
        log(f"round {rnd} {key:16s} rate {run['rate']:9.1f}  p50 {run['p50']:7.3f} ms  p99 {run['p99']:7.3f} ms  "
            f"errors {run['errors']} skipped {run['skipped']}"
            + (f"  gw cpu {run['gateway_cpu_ms_per_request'] * 1000:.0f} us/req" if gw else "")
            + (f"  spans {run['spans_exported_before_stop']:.0f}+{run['spans_queued_at_stop']:.0f}/{run['served']:.0f}"
               f" in {run['collector_posts']} posts, {run['collector_bytes'] / max(1, run['served']):.0f} B/span"
               if "collector_posts" in run else ""))
        time.sleep(0.5)

    configs = [(f"{k}/closed", k, 0) for k in ("off", "protobuf", "json")] + \
              [(f"{k}@{args.rate}", k, args.rate) for k in ("direct", "off", "protobuf", "json")]
    for rnd in range(args.rounds):
        for key, kind, rate in rotate(configs, rnd):
            one(key, kind, rate, rnd)
    collector.shutdown()
    result.update(runs=runs, lost=lost, gateway_stderr=stderr_lines)
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
        s[key] = {q: med([r.get(q) for r in v]) for q in ("rate", "p50", "p99", "gateway_cpu_ms_per_request")}
        s[key].update(rate_min=min(r["rate"] for r in v), rate_max=max(r["rate"] for r in v),
                      errors=sum(r["errors"] for r in v), skipped=sum(r["skipped"] for r in v),
                      bytes_per_span=med([r["collector_bytes"] / max(1, r["served"]) for r in v if "collector_bytes" in r]))

    def per_round(a, b, q):
        return med([by[a][k][q] - by[b][k][q] for k in by.get(a, {}) if k in by.get(b, {})])

    def paired(a, b, q="rate"):
        return med([by[a][k][q] / by[b][k][q] for k in by[a] if k in by[b] and by[b][k].get(q)])
    for k in ("off", "protobuf", "json"):
        s[f"{k}@{rate}"]["overhead_p50"] = per_round(f"{k}@{rate}", f"direct@{rate}", "p50")
        s[f"{k}@{rate}"]["overhead_p99"] = per_round(f"{k}@{rate}", f"direct@{rate}", "p99")
    s["ratios"] = {f"{k}_over_off_throughput": paired(f"{k}/closed", "off/closed") for k in ("protobuf", "json")}
    for k in ("protobuf", "json"):
        s["ratios"][f"{k}_minus_off_cpu_closed"] = per_round(f"{k}/closed", "off/closed", "gateway_cpu_ms_per_request")
        s["ratios"][f"{k}_minus_off_cpu_open"] = per_round(f"{k}@{rate}", f"off@{rate}", "gateway_cpu_ms_per_request")
        s["ratios"][f"{k}_minus_off_p50"] = per_round(f"{k}@{rate}", f"off@{rate}", "p50")
        s["ratios"][f"{k}_minus_off_p99"] = per_round(f"{k}@{rate}", f"off@{rate}", "p99")
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
          f"`{res['command']}` (`scripts/bench/otlp_bench.py`), {res['date']}"
          + (" — **quick mode** (short runs, development only)" if res["quick"] else "") + ".\n",
          f"- Machine: {m['nproc']} cores, `{m['cpu_model']}`, {m['kernel']}; load average "
          f"{' '.join(m['loadavg_start'])} at start, {' '.join(m['loadavg_end'])} at the end, {min(lavg):.1f}–{max(lavg):.1f} "
          "(1 minute) before the runs: the machine is shared, so compare within a round.",
          f"- Versions: bakeoff commit {v['bakeoff_commit']}{' with uncommitted changes' if v['bakeoff_dirty'] else ''}"
          f" (binary sha256 {v['bakeoff_sha256']}…).",
          f"- Runs: {st['rounds']} rounds; each run {st['warmup_s']:g} s warm-up + {st['duration_s']:g} s measured, "
          f"configurations alternating (order rotating); medians over rounds. {st['users']:,} users, "
          f"{st['gateway_threads']} HTTP threads. Total {res['elapsed_s']:.0f} s.\n",
          "| Configuration | Closed-loop throughput (range over rounds) | vs no export (paired) | p50 / p99 at "
          f"{rate:,} req/s | Overhead over direct, p50 / p99 | Gateway CPU per request, closed / open | Bytes per span |",
          "| --- | ---: | ---: | --- | --- | ---: | ---: |"]
    d = s[f"direct@{rate}"]
    md.append(f"| {LABELS['direct']} | — | — | {f(d['p50'])} / {f(d['p99'])} ms | — (baseline) | — | — |")
    for k in ("off", "protobuf", "json"):
        c, o = s[f"{k}/closed"], s[f"{k}@{rate}"]
        ratio = "1.00 (baseline)" if k == "off" else f"{r[f'{k}_over_off_throughput']:.2f}"
        errs = "" if c["errors"] + o["errors"] + o["skipped"] == 0 else \
            f" ({c['errors'] + o['errors']} errors, {o['skipped']} skipped)"
        size = "—" if k == "off" else f"{med([c['bytes_per_span'], o['bytes_per_span']]):,.0f}"
        md.append(f"| {LABELS[k]} | {c['rate']:,.0f} req/s ({c['rate_min']:,.0f}–{c['rate_max']:,.0f}){errs} | {ratio} "
                  f"| {f(o['p50'])} / {f(o['p99'])} ms | {f(o['overhead_p50'])} / {f(o['overhead_p99'])} ms "
                  f"| {us(c['gateway_cpu_ms_per_request'])} / {us(o['gateway_cpu_ms_per_request'])} | {size} |")
    md.append("")
    md.append(f"What export adds, same round, median over rounds: gateway CPU per request protobuf "
              f"**{us(r['protobuf_minus_off_cpu_closed'])}** closed loop / {us(r['protobuf_minus_off_cpu_open'])} at "
              f"{rate:,} req/s, JSON {us(r['json_minus_off_cpu_closed'])} / {us(r['json_minus_off_cpu_open'])}; latency at "
              f"{rate:,} req/s protobuf p50 {r['protobuf_minus_off_p50']:+.3f} ms, p99 {r['protobuf_minus_off_p99']:+.3f} ms; "
              f"JSON p50 {r['json_minus_off_p50']:+.3f} ms, p99 {r['json_minus_off_p99']:+.3f} ms.\n")
    runs = [x for x in res["runs"] if "collector_posts" in x]
    if res["lost"]:
        md.append(f"**Spans lost** in {len(res['lost'])} of {len(runs)} runs: " + "; ".join(
            f"{x['run']} served {x['served']:.0f}, exported {x['exported']:.0f} + queued {x['queued']:.0f}, dropped {x['dropped']:.0f}"
            for x in res["lost"]) + ".\n")
    else:
        md.append(f"Every request's span was exported or queued for the stop's flush, in each of the {len(runs)} runs with export; "
                  f"none dropped, {sum(x['export_failures'] for x in runs):.0f} failed exports.\n")
    if res["gateway_stderr"]:
        md.append("`bakeoff serve` wrote on stderr beyond its start and stop lines: " + "; ".join(
            f"{k}: `{ln[0]}`" for k, ln in list(res["gateway_stderr"].items())[:5]) + ".\n")
    md.append(
        "How measured: as \"Gateway overhead and throughput\" (two `bakeoff mock-upstream` answering at once, one "
        "experiment split 0.5, SQLite store), with the gateway's `otlp` block pointing at a collector in the bench's "
        "own Python process (threaded HTTP server: reads each export, answers 200), default batching (512 spans or "
        "1 s). Content logging off (spans carry no prompt or answer). CPU per request is the gateway's process "
        "group's CPU time over the measured load divided by its requests; \"bytes per span\" is what the collector "
        "received over the spans of the measured load.\n")
    return "\n".join(md)


if __name__ == "__main__":
    main()
