#!/usr/bin/env python3
"""Gateway overhead and throughput: direct to a mock upstream vs `bakeoff serve` vs the LiteLLM proxy.

    gateway.py --bin .build/product/release/bakeoff --litellm .venv-litellm/bin/litellm \\
               [--out out/bench] [--markdown BENCHMARKS.md] [--quick]

Standard library only. What it does:

1. Starts two `bakeoff mock-upstream` processes (answer at once, 20 tokens, one thread each), `bakeoff serve`
   with one experiment (split 0.5: control -> mock 1, treatment -> mock 2; logging to its SQLite store, which
   is always on), and the LiteLLM proxy with the same two upstreams as two deployments of one model_name with
   weights 0.5/0.5. Every process runs in its own session and is killed (its whole process group) at the end,
   also on failure or SIGINT/SIGTERM.
2. Closed loop (`bakeoff load --rate 0 --concurrency C`), non-streaming and streaming, on three paths: direct
   (mock 1), Bakeoff, LiteLLM: the maximum throughput and its latency.
3. Picks the open-loop rate LiteLLM sustains ("low rate": the largest candidate at most half of LiteLLM's
   closed-loop maximum that a short probe shows it keeping up with, or --low-rate).
4. Open loop (`bakeoff load --rate R`): direct, Bakeoff and LiteLLM at the low rate; direct and Bakeoff at
   --rate (1,000 req/s).
5. Every configuration runs --rounds times, alternating (the order rotates from round to round), and the
   medians over rounds are reported; overhead = gateway minus direct of the same round, median over rounds.
6. A short sequential pass (one request at a time from Python) reads LiteLLM's own
   x-litellm-overhead-duration-ms header, as an extra.

Writes OUT/gateway.json (every run's raw report plus the summary) and, with --markdown, the section
"## Gateway overhead and throughput" of that file (replaced in place, or appended).
"""

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time

from bench_md import publish
import urllib.request

SECTION_TITLE = "## Gateway overhead and throughput"
# The targets.
GOAL_OVERHEAD_P50_MS = 0.2
GOAL_OVERHEAD_P99_MS = 1.0
GOAL_RATE = 1000
GOAL_MAX_RPS = 5000
GOAL_RATIO = 10.0
LOW_RATE_CANDIDATES = [500, 400, 300, 200, 150, 100, 75, 50, 40, 30, 20, 10, 5]
MODEL = "support-bot"
PATHS = ("direct", "bakeoff", "litellm")
LABELS = {"direct": "Direct to mock upstream", "bakeoff": "Bakeoff (`bakeoff serve`)", "litellm": "LiteLLM proxy"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_num(name, default, kind=float):
    value = os.environ.get(name)
    return kind(value) if value not in (None, "") else default


def log(msg):
    print(f"[gateway {time.monotonic() - START:6.1f}s] {msg}", file=sys.stderr, flush=True)


START = time.monotonic()


# ------------------------------------------------------------------------------------------ processes
class Processes:
    """Child processes, each the leader of its own session; stop_all() kills every process group."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []  # (name, Popen)

    def start(self, name, argv, env=None):
        out = open(os.path.join(self.workdir, name + ".out"), "wb")
        err = open(os.path.join(self.workdir, name + ".err"), "wb")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env={**os.environ, **(env or {})}, start_new_session=True, cwd=self.workdir)
        out.close()
        err.close()
        self.procs.append((name, proc))
        return proc

    def stderr_text(self, name):
        try:
            with open(os.path.join(self.workdir, name + ".err"), errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def wait_for_line(self, name, proc, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.stderr_text(name))
            if m:
                return m
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}) before it was ready:\n"
                                   f"{self.stderr_text(name)[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{name} not ready after {timeout} s:\n{self.stderr_text(name)[-3000:]}")

    def stop(self, name, proc, grace=10.0):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within {grace} s of SIGTERM: SIGKILL")
        # Also whatever the leader left behind in its group (uvicorn workers and the like).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self):
        for name, proc in reversed(self.procs):
            self.stop(name, proc)
        self.procs = []


def session_cpu_seconds(sid):
    """User + system CPU seconds of every live process in session `sid` (the gateway and its workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is state (field 3); session is field 6, utime 14, stime 15.
        if int(fields[3]) == sid:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(conn, body):
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data


# ------------------------------------------------------------------------------------------ load runs
def run_load(args, url, rate, stream=False, duration=None, warmup=None, cpu_sid=None):
    argv = [args.bin, "load", "--url", url + "/chat/completions", "--rate", str(rate),
            "--duration", f"{duration or args.duration:g}", "--warmup", f"{warmup if warmup is not None else args.warmup:g}",
            "--users", str(args.users), "--model", MODEL, "--format", "json"]
    if rate == 0:
        argv += ["--concurrency", str(args.concurrency)]
    if stream:
        argv.append("--stream")
    load_before = open("/proc/loadavg").read().split()[0]
    cpu0 = session_cpu_seconds(cpu_sid) if cpu_sid else None
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    cpu = session_cpu_seconds(cpu_sid) - cpu0 if cpu_sid else None
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = None
    if report is None:
        raise RuntimeError(f"bakeoff load failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")
    report["exit_status"] = proc.returncode
    report["loadavg_before"] = float(load_before)
    report["wall_s"] = round(elapsed, 3)
    if cpu is not None:
        report["gateway_cpu_s"] = round(cpu, 3)
    return report


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs):
    """Medians over rounds of one configuration's runs."""
    out = {"rounds": len(runs)}
    out["rate"] = med([r["rate"] for r in runs])
    out["errors"] = sum(r["errors"] for r in runs)
    out["skipped"] = sum(r["skipped"] for r in runs)
    out["completed"] = sum(r["completed"] for r in runs)
    for q in ("mean", "p50", "p90", "p99", "p999", "max"):
        out[q] = med([(r["latency_ms"] or {}).get(q) for r in runs])
    if any(r.get("ttft_ms") for r in runs):
        out["ttft_p50"] = med([(r["ttft_ms"] or {}).get("p50") for r in runs])
        out["ttft_p99"] = med([(r["ttft_ms"] or {}).get("p99") for r in runs])
    cpu = [r["gateway_cpu_s"] / max(1, r["requests"]) * 1000 for r in runs if r.get("gateway_cpu_s") is not None]
    # CPU includes warm-up requests too; the measured window dominates. Per request, in ms.
    if cpu:
        warm_factor = [(r["duration_s"] + r.get("warmup_s", 0)) / r["duration_s"] for r in runs]
        out["gateway_cpu_ms_per_request"] = med(cpu) / med(warm_factor) if warm_factor else med(cpu)
    return out


# ------------------------------------------------------------------------------------------ main
def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick = os.environ.get("BENCH_GATEWAY_QUICK", "0") not in ("", "0")
    p.add_argument("--bin", default=os.environ.get("BAKEOFF_BIN", ".build/product/release/bakeoff"))
    p.add_argument("--litellm", default=os.environ.get("LITELLM_BIN", ".venv-litellm/bin/litellm"),
                   help="the litellm command; '' skips LiteLLM")
    p.add_argument("--out", default=os.environ.get("BENCH_OUT", "out/bench"))
    p.add_argument("--markdown", help="write the section into this Markdown file")
    p.add_argument("--quick", action="store_true", default=quick, help="short runs (BENCH_GATEWAY_QUICK=1)")
    p.add_argument("--rounds", type=int, default=env_num("BENCH_GATEWAY_ROUNDS", None, int))
    p.add_argument("--duration", type=float, default=env_num("BENCH_GATEWAY_DURATION", None))
    p.add_argument("--warmup", type=float, default=env_num("BENCH_GATEWAY_WARMUP", None))
    p.add_argument("--rate", type=int, default=env_num("BENCH_GATEWAY_RATE", GOAL_RATE, int))
    p.add_argument("--low-rate", type=int, default=env_num("BENCH_GATEWAY_LOW_RATE", 0, int),
                   help="LiteLLM's open-loop rate; 0 finds it (BENCH_GATEWAY_LOW_RATE)")
    p.add_argument("--concurrency", type=int, default=env_num("BENCH_GATEWAY_CONCURRENCY", 32, int))
    p.add_argument("--users", type=int, default=10000)
    p.add_argument("--gateway-threads", type=int, default=env_num("BENCH_GATEWAY_THREADS", 2, int))
    p.add_argument("--litellm-workers", type=int, default=env_num("BENCH_LITELLM_WORKERS", 1, int))
    p.add_argument("--command", default=os.environ.get("BENCH_COMMAND", "make bench"),
                   help="the command written into the Markdown")
    args = p.parse_args()
    if args.rounds is None:
        args.rounds = 2 if args.quick else 3
    if args.duration is None:
        args.duration = 3 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        raise SystemExit(f"gateway.py: {args.bin} not found (make build)")
    use_litellm = bool(args.litellm)
    if use_litellm:
        args.litellm = os.path.abspath(args.litellm)
        if not os.access(args.litellm, os.X_OK):
            raise SystemExit(f"gateway.py: {args.litellm} not found (make bench installs it into .venv-litellm)")

    os.makedirs(args.out, exist_ok=True)
    # Configs, the processes' output and the store of this run (the store is removed at the end).
    workdir = os.path.join(os.path.abspath(args.out), "gateway")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    procs = Processes(workdir)

    def on_signal(signum, _frame):
        raise SystemExit(f"gateway.py: signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        result = measure(args, procs, workdir, use_litellm)
    finally:
        procs.stop_all()
        for name in os.listdir(workdir):
            if name.startswith("gateway.db"):
                os.remove(os.path.join(workdir, name))
    publish(result, args.out, "gateway", render(result), args.markdown, SECTION_TITLE, log)


def measure(args, procs, workdir, use_litellm):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = {"date": time.strftime("%Y-%m-%d", time.gmtime()),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": args.command, "quick": args.quick,
              "settings": {"rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
                           "rate": args.rate, "concurrency": args.concurrency, "users": args.users,
                           "gateway_threads": args.gateway_threads, "litellm_workers": args.litellm_workers,
                           "mock": "--latency-ms 0 --jitter-ms 0 --tokens-per-second 0 --output-tokens 20 --threads 1"},
              "machine": machine_info(), "versions": versions(args, root, use_litellm)}
    log(f"machine: {result['machine']['nproc']} cores, load {result['machine']['loadavg_start']}; "
        f"rounds {args.rounds} x {args.duration} s (+{args.warmup} s warm-up)")

    # -------------------------------------------------------------- processes
    mock_args = ["mock-upstream", "--port", "0", "--latency-ms", "0", "--jitter-ms", "0",
                 "--tokens-per-second", "0", "--output-tokens", "20", "--threads", "1"]
    mocks = []
    for i in (1, 2):
        proc = procs.start(f"mock{i}", [args.bin] + mock_args + ["--seed", str(i)])
        mocks.append(procs.wait_for_line(f"mock{i}", proc, r"listening on (http://\S+/v1)", 30).group(1))
    urls = {"direct": mocks[0]}
    config = {
        # serve checks the config's listen address before --listen overrides it, and port 0 is refused there.
        "listen": "127.0.0.1:8080", "threads": args.gateway_threads,
        "store": {"path": os.path.join(workdir, "gateway.db")},
        "experiments": [{"name": "bench", "model": MODEL, "split": 0.5, "variants": [
            {"name": "control", "upstream": {"base_url": mocks[0], "model": "mock"}},
            {"name": "treatment", "upstream": {"base_url": mocks[1], "model": "mock"}}]}]}
    with open(os.path.join(workdir, "gateway.json"), "w") as fh:
        json.dump(config, fh, indent=1)
    gw = procs.start("bakeoff", [args.bin, "serve", "--config", os.path.join(workdir, "gateway.json"),
                                 "--listen", "127.0.0.1:0"])
    urls["bakeoff"] = procs.wait_for_line("bakeoff", gw, r"listening on (http://\S+/v1)", 30).group(1)
    sids = {"bakeoff": gw.pid}
    log(f"mocks {mocks[0]} {mocks[1]}, bakeoff {urls['bakeoff']}")

    if use_litellm:
        port = free_port()
        with open(os.path.join(workdir, "litellm.yaml"), "w") as fh:
            fh.write("model_list:\n")
            for base in mocks:
                fh.write(f"  - model_name: {MODEL}\n    litellm_params:\n      model: openai/mock\n"
                         f"      api_base: \"{base}\"\n      api_key: \"none\"\n      weight: 0.5\n")
        t0 = time.monotonic()
        lp = procs.start("litellm", [args.litellm, "--config", os.path.join(workdir, "litellm.yaml"),
                                     "--host", "127.0.0.1", "--port", str(port),
                                     "--num_workers", str(args.litellm_workers)],
                         env={"LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
                              "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
        urls["litellm"] = f"http://127.0.0.1:{port}/v1"
        wait_http_ok(f"http://127.0.0.1:{port}/health/readiness", lp, procs, 180)
        result["litellm_ready_s"] = round(time.monotonic() - t0, 1)
        sids["litellm"] = lp.pid
        log(f"litellm {urls['litellm']} ready after {result['litellm_ready_s']} s")
    paths = [k for k in PATHS if k in urls]
    # A first request through each path (connections, lazy imports), not measured.
    for k in paths:
        with_conn(urls[k], lambda c: post(c, json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                                          "user": "warm"})))
    result["urls"] = urls
    runs = []

    def one(key, path, rate, stream, rnd):
        rep = run_load(args, urls[path], rate, stream=stream, cpu_sid=sids.get(path))
        rep["warmup_s"] = args.warmup
        rep.update({"config": key, "path": path, "round": rnd})
        runs.append(rep)
        lat = rep["latency_ms"] or {}
        log(f"round {rnd} {key:28s} rate {rep['rate']:9.1f}  p50 {lat.get('p50', float('nan')):8.3f} ms  "
            f"p99 {lat.get('p99', float('nan')):8.3f} ms  errors {rep['errors']} skipped {rep['skipped']}")
        time.sleep(0.5)

    # -------------------------------------------------------------- closed loop
    closed = [(f"{k}/closed{'/stream' if s else ''}", k, s) for k in paths for s in (False, True)]
    for rnd in range(args.rounds):
        for key, path, stream in rotate(closed, rnd):
            one(key, path, 0, stream, rnd)

    # -------------------------------------------------------------- the rate LiteLLM sustains
    low = args.low_rate
    probes = []
    if use_litellm and not low:
        lmax = med([r["rate"] for r in runs if r["config"] == "litellm/closed"])
        candidates = [c for c in LOW_RATE_CANDIDATES if c <= lmax / 2] or [LOW_RATE_CANDIDATES[-1]]
        for c in candidates:
            rep = run_load(args, urls["litellm"], c, duration=max(3, args.duration / 2), warmup=1)
            lat = rep["latency_ms"] or {}
            ok = (rep["errors"] == 0 and rep["skipped"] == 0 and rep["rate"] >= 0.97 * c
                  and lat.get("p99") is not None and lat["p99"] <= 5 * lat["p50"])
            probes.append({"rate": c, "achieved": rep["rate"], "p50": lat.get("p50"), "p99": lat.get("p99"),
                           "errors": rep["errors"], "skipped": rep["skipped"], "sustained": ok})
            log(f"probe litellm at {c}/s: achieved {rep['rate']:.1f}, p50 {lat.get('p50')}, p99 {lat.get('p99')}"
                f" -> {'sustained' if ok else 'not sustained'}")
            if ok:
                low = c
                break
        low = low or LOW_RATE_CANDIDATES[-1]
    elif not low:
        low = 50
    result["low_rate"] = low
    result["low_rate_probes"] = probes
    log(f"open-loop rates: {low}/s (all paths) and {args.rate}/s (direct, bakeoff)")

    # -------------------------------------------------------------- open loop
    opened = [(f"{k}@{low}", k, low) for k in paths] + \
             [(f"{k}@{args.rate}", k, args.rate) for k in paths if k != "litellm" and args.rate != low]
    for rnd in range(args.rounds):
        for key, path, rate in rotate(opened, rnd):
            one(key, path, rate, False, rnd)

    # -------------------------------------------------------------- LiteLLM's own overhead header (extra)
    sequential = {}
    n_seq = 100 if args.quick else 300
    for k in paths:
        sequential[k] = sequential_pass(urls[k], n_seq)
        log(f"sequential {k}: {sequential[k]}")
    result["sequential"] = sequential

    # -------------------------------------------------------------- the store: logging was on
    for name, proc in list(procs.procs):
        if name == "bakeoff":
            procs.stop(name, proc, grace=30)
            procs.procs.remove((name, proc))
    result["bakeoff_stderr_tail"] = procs.stderr_text("bakeoff")[-1500:]
    db = sqlite3.connect(os.path.join(workdir, "gateway.db"))
    rows = db.execute("SELECT variant, status, count(*) FROM events WHERE kind = 'request' GROUP BY 1, 2").fetchall()
    db.close()
    result["store_events"] = [{"variant": v, "status": s, "count": c} for v, s, c in rows]
    log(f"store: {rows}")

    result["runs"] = runs
    result["summary"] = analyse(result, runs, paths, low, args.rate)
    result["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    result["elapsed_s"] = round(time.monotonic() - START, 1)
    return result


def rotate(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def with_conn(base, fn):
    host, port = re.match(r"http://([^:/]+):(\d+)", base).groups()
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        return fn(conn)
    finally:
        conn.close()


def sequential_pass(base, n):
    """n requests one at a time over one kept-alive connection: client latency and LiteLLM's header."""
    def go(conn):
        lat, hdr = [], []
        for i in range(n):
            body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hello, how are you?"}],
                               "user": f"user-{i}"})
            t0 = time.perf_counter()
            status, headers, _ = post(conn, body)
            lat.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"sequential pass: {base} answered {status}")
            if "x-litellm-overhead-duration-ms" in headers:
                hdr.append(float(headers["x-litellm-overhead-duration-ms"]))
        lat.sort()
        out = {"requests": n, "p50_ms": round(statistics.median(lat), 3), "p99_ms": round(lat[int(0.99 * (n - 1))], 3)}
        if hdr:
            hdr.sort()
            out["litellm_overhead_header_p50_ms"] = round(statistics.median(hdr), 3)
            out["litellm_overhead_header_p99_ms"] = round(hdr[int(0.99 * (len(hdr) - 1))], 3)
        return out
    return with_conn(base, go)


def wait_http_ok(url, proc, procs, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"litellm exited ({proc.returncode}):\n{procs.stderr_text('litellm')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"litellm not ready after {timeout} s:\n{procs.stderr_text('litellm')[-3000:]}")


def machine_info():
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "mem_total_kb": mem, "kernel": " ".join(platform.uname()[2:3]),
            "loadavg_start": open("/proc/loadavg").read().split()[:3]}


def versions(args, root, use_litellm):
    def sh(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=root, timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    out = {"bakeoff_commit": sh(["git", "rev-parse", "--short", "HEAD"]) or "unknown",
           "bakeoff_dirty": bool(sh(["git", "status", "--porcelain", "--untracked-files=no"])),
           "bakeoff_sha256": sh(["sha256sum", args.bin]).split(" ")[0][:16]}
    if use_litellm:
        py = os.path.join(os.path.dirname(args.litellm), "python")
        out["litellm"] = sh([py, "-c", "import importlib.metadata as m; print(m.version('litellm'))"]) or "unknown"
        out["litellm_python"] = sh([py, "-c", "import platform; print(platform.python_version())"])
    return out


# ------------------------------------------------------------------------------------------ analysis
def analyse(result, runs, paths, low, high):
    by = {}
    for r in runs:
        by.setdefault(r["config"], []).append(r)
    configs = {k: summarize(v) for k, v in by.items()}

    def overhead(path, rate):
        """Per round: gateway minus direct at the same rate, same round; median over rounds."""
        gw = {r["round"]: r for r in by.get(f"{path}@{rate}", [])}
        dr = {r["round"]: r for r in by.get(f"direct@{rate}", [])}
        out = {}
        for q in ("p50", "p90", "p99", "p999", "mean"):
            diffs = [gw[k]["latency_ms"][q] - dr[k]["latency_ms"][q] for k in gw
                     if k in dr and gw[k]["latency_ms"] and dr[k]["latency_ms"]]
            out[q] = med(diffs)
            out[q + "_rounds"] = diffs
            # The difference of the medians, for comparison.
            if configs.get(f"{path}@{rate}") and configs.get(f"direct@{rate}"):
                out[q + "_of_medians"] = configs[f"{path}@{rate}"][q] - configs[f"direct@{rate}"][q]
        return out

    overheads = {}
    for rate in sorted({low, high}):
        for path in paths:
            if path != "direct" and f"{path}@{rate}" in by:
                overheads[f"{path}@{rate}"] = overhead(path, rate)
    ratio = None
    b, l = overheads.get(f"bakeoff@{low}"), overheads.get(f"litellm@{low}")
    if b and l:
        ratio = {q: (l[q] / b[q] if b[q] and b[q] > 0 else None) for q in ("p50", "p99")}
    hi = overheads.get(f"bakeoff@{high}", {})
    bc, bs = configs.get("bakeoff/closed", {}), configs.get("bakeoff/closed/stream", {})
    targets = [
        {"target": f"Bakeoff overhead p50 at {high:,} req/s, logging on", "goal": f"≤ {GOAL_OVERHEAD_P50_MS} ms",
         "value": hi.get("p50"), "unit": "ms", "met": hi.get("p50") is not None and hi["p50"] <= GOAL_OVERHEAD_P50_MS},
        {"target": f"Bakeoff overhead p99 at {high:,} req/s, logging on", "goal": f"≤ {GOAL_OVERHEAD_P99_MS:g} ms",
         "value": hi.get("p99"), "unit": "ms", "met": hi.get("p99") is not None and hi["p99"] <= GOAL_OVERHEAD_P99_MS},
        {"target": "Bakeoff closed-loop throughput, non-streaming", "goal": f"≥ {GOAL_MAX_RPS:,} req/s",
         "value": bc.get("rate"), "unit": "req/s", "met": (bc.get("rate") or 0) >= GOAL_MAX_RPS},
        {"target": "Bakeoff closed-loop throughput, streaming", "goal": f"≥ {GOAL_MAX_RPS:,} req/s",
         "value": bs.get("rate"), "unit": "req/s", "met": (bs.get("rate") or 0) >= GOAL_MAX_RPS},
    ]
    if ratio:
        for q in ("p50", "p99"):
            targets.append({"target": f"LiteLLM overhead / Bakeoff overhead, {q}, at {low} req/s",
                            "goal": f"≥ {GOAL_RATIO:g}x", "value": ratio[q], "unit": "x",
                            "met": ratio[q] is not None and ratio[q] >= GOAL_RATIO})
    return {"configs": configs, "overheads": overheads, "overhead_ratio": ratio, "targets": targets}


# ------------------------------------------------------------------------------------------ Markdown
def ms(x, digits=3):
    return "—" if x is None else f"{x:,.{digits}f} ms"


def ms_auto(x):
    if x is None:
        return "—"
    return f"{x:,.3f} ms" if abs(x) < 10 else f"{x:,.1f} ms"


def rps(x):
    return "—" if x is None else f"{x:,.0f}"


def render(res):
    s = res["summary"]
    c, o = s["configs"], s["overheads"]
    low, high = res["low_rate"], res["settings"]["rate"]
    st, v, m = res["settings"], res["versions"], res["machine"]
    paths = [k for k in PATHS if f"{k}/closed" in c]
    md = [SECTION_TITLE + "\n"]
    md.append(f"Written by `{res['command']}` (`scripts/bench/gateway.py`) on {res['date']}"
              + (" — **quick mode** (short runs, development only)" if res["quick"] else "") + ".\n")
    md.append(f"- Machine: {m['nproc']} cores, `{m['cpu_model']}`, {m['kernel']}; load average "
              f"{' '.join(m['loadavg_start'])} at start, {' '.join(m.get('loadavg_end', []))} at the end "
              "(the machine is shared with other jobs).")
    md.append(f"- Versions: bakeoff commit {v['bakeoff_commit']}{' with uncommitted changes' if v['bakeoff_dirty'] else ''}"
              f" (binary sha256 {v['bakeoff_sha256']}…)"
              + (f", LiteLLM {v['litellm']} (`litellm[proxy]`, Python {v.get('litellm_python', '?')}, "
                 f"{st['litellm_workers']} worker{'s' if st['litellm_workers'] != 1 else ''}, ready "
                 f"{res.get('litellm_ready_s', '?')} s after start)" if "litellm" in v else ", LiteLLM not run")
              + ".")
    md.append(f"- Runs: {st['rounds']} rounds of {st['duration_s']:g} s measured (+{st['warmup_s']:g} s warm-up) per "
              f"configuration, alternating; medians over rounds. Closed loop: {st['concurrency']} requests "
              f"outstanding. {st['users']:,} users. Total {res['elapsed_s']:.0f} s.\n")

    def row(path, rate, label):
        key = f"{path}@{rate}"
        cf = c.get(key)
        closed = c.get(f"{path}/closed", {})
        closed_s = c.get(f"{path}/closed/stream", {})
        maxcol = f"{rps(closed.get('rate'))} / {rps(closed_s.get('rate'))} req/s" if rate == min(low, high) else "″"
        if cf is None:
            if path == "litellm":
                return (f"| {label} | {rate:,} | not sustainable (closed-loop maximum {rps(closed.get('rate'))} req/s) "
                        f"| | | | {maxcol} |")
            return None
        ov = o.get(key)
        ovcol = "— (baseline)" if path == "direct" else f"{ms_auto(ov['p50'])} / {ms_auto(ov['p99'])}"
        ratio = "—"
        if path != "direct" and rate == low and s["overhead_ratio"]:
            r = s["overhead_ratio"]
            ratio = ("1x (reference)" if path == "bakeoff" else
                     f"{r['p50']:,.0f}x / {r['p99']:,.0f}x" if r["p50"] and r["p99"] else "—")
        extra = "" if cf["errors"] == 0 and cf["skipped"] == 0 else f" ({cf['errors']} errors, {cf['skipped']} skipped)"
        return (f"| {label} | {rate:,} (achieved {cf['rate']:,.1f}){extra} | {ms_auto(cf['p50'])} | {ms_auto(cf['p99'])} "
                f"| {ovcol} | {ratio} | {maxcol} |")

    md.append("### Results\n")
    rows = ["| Path | Open-loop rate, req/s | p50 | p99 | Overhead over direct, p50 / p99 | LiteLLM's overhead / "
            "Bakeoff's, p50 / p99 | Max throughput, closed loop: non-streaming / streaming |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for path in paths:
        for rate in sorted({low, high}):
            r = row(path, rate, LABELS[path])
            if r:
                rows.append(r)
    md.append("\n".join(rows) + "\n")

    md.append("| Target (the issue's) | Goal | Measured | Met |\n| --- | --- | --- | --- |")
    for t in s["targets"]:
        val = "—" if t["value"] is None else (f"{t['value']:,.3f} ms" if t["unit"] == "ms" else
                                              f"{t['value']:,.0f} req/s" if t["unit"] == "req/s" else f"{t['value']:,.1f}x")
        md.append(f"| {t['target']} | {t['goal']} | {val} | {'yes' if t['met'] else '**NO**'} |")
    md.append("")

    md.append("### Closed loop (maximum throughput)\n")
    rows = ["| Path | Mode | Throughput | p50 | p99 | TTFT p50 / p99 | Gateway CPU per request |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for path in paths:
        for stream in (False, True):
            cf = c.get(f"{path}/closed{'/stream' if stream else ''}")
            if not cf:
                continue
            ttft = f"{ms_auto(cf.get('ttft_p50'))} / {ms_auto(cf.get('ttft_p99'))}" if stream else "—"
            cpu = cf.get("gateway_cpu_ms_per_request")
            extra = "" if cf["errors"] == 0 else f" ({cf['errors']} errors)"
            rows.append(f"| {LABELS[path]} | {'streaming' if stream else 'non-streaming'} | {rps(cf['rate'])} req/s{extra} "
                        f"| {ms_auto(cf['p50'])} | {ms_auto(cf['p99'])} | {ttft} | "
                        f"{'—' if cpu is None else f'{cpu * 1000:,.0f} µs'} |")
    md.append("\n".join(rows) + "\n")

    md.append("### How measured\n")
    seq = res.get("sequential", {})
    ll = seq.get("litellm", {})
    ev = res.get("store_events", [])
    logged = sum(e["count"] for e in ev)
    split = ", ".join(f"{e['variant']} {e['count']:,}" for e in ev if e["status"] == "ok")
    probes = res.get("low_rate_probes") or []
    probe_text = ("; probes: " + ", ".join(f"{p_['rate']}/s {'kept up' if p_['sustained'] else 'did not keep up'} "
                                          f"(achieved {p_['achieved']:.1f}, p99 {ms_auto(p_['p99'])})" for p_ in probes)
                  if probes else " (set by BENCH_GATEWAY_LOW_RATE)" if "litellm" in paths else "")
    md.append(
        "Two `bakeoff mock-upstream` processes answer at once (`" + st["mock"] + "`). `bakeoff serve` "
        f"({st['gateway_threads']} HTTP threads) has one experiment with `split` 0.5, control on mock 1 and treatment "
        "on mock 2, and logs every request to its SQLite store (always on"
        + (f"; {logged:,} request events were in the store at the end: {split}" if ev else "") + "). "
        "The LiteLLM proxy has the same two mocks as two deployments of one `model_name` with `weight` 0.5 each "
        "(default settings otherwise, no master key, its bundled cost map). \"Direct\" is the same load sent "
        "straight to mock 1. Every path is measured by the same load generator, `bakeoff load`, with the same "
        "request (`{\"model\",\"messages\",\"user\"}`, users cycling through "
        f"{st['users']:,} ids), over kept-alive connections, all processes on the same 2 cores (nothing pinned). "
        "Open loop: requests go out on schedule at the given rate whatever the latency (no coordinated "
        "omission); latency runs from the send to the end of the answer; quantiles are exact over the measured "
        "window. Closed loop (`--rate 0`): a fixed number of requests outstanding, to find the maximum "
        "throughput; the load generator shares the 2 cores, so these are lower bounds for the gateway alone. "
        "Configurations alternate within each round (the order rotates every round) and the tables show medians "
        "over rounds; an overhead is gateway minus direct in the same round at the same rate, median over rounds. "
        f"LiteLLM's rate, {low} req/s, is the largest candidate at most half its closed-loop maximum that it "
        f"kept up with in a short probe (achieved ≥ 97% of the rate, no errors, p99 ≤ 5x p50){probe_text}; direct "
        f"and Bakeoff are measured at that rate too, so the ratio compares like with like, and direct and Bakeoff "
        f"again at {high:,} req/s. Gateway CPU per request is the gateway's process-group CPU time "
        "(/proc, user + system) over a run divided by the requests of the run including its warm-up. "
        "Raw runs: `out/bench/gateway.json`.\n")
    if seq:
        parts = [f"{LABELS[k].split(' (')[0]} {seq[k]['p50_ms']:.3f} ms" for k in PATHS if k in seq]
        md.append(
            f"Extra, one request at a time from Python (`http.client`, one kept-alive connection, "
            f"{seq[paths[0]]['requests']} requests per path): median latency " + ", ".join(parts) + "."
            + (f" LiteLLM's own `x-litellm-overhead-duration-ms` header: median {ll['litellm_overhead_header_p50_ms']:.2f} ms, "
               f"p99 {ll['litellm_overhead_header_p99_ms']:.2f} ms." if "litellm_overhead_header_p50_ms" in ll else "")
            + "\n")
    md.append("Reproduce: `make bench` runs this after the other benchmarks; `BENCH_ONLY=gateway make bench` runs "
              "only this; `BENCH_GATEWAY_QUICK=1` for short runs (written to `out/bench/BENCHMARKS.quick.md`). "
              "Settings: `BENCH_GATEWAY_ROUNDS`, `_DURATION`, `_WARMUP`, `_RATE`, `_LOW_RATE`, `_CONCURRENCY`, "
              "`BENCH_LITELLM_WORKERS`; `BENCH_GATEWAY=0` skips it.\n")
    return "\n".join(md)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"gateway.py: {e}", file=sys.stderr)
        sys.exit(1)
