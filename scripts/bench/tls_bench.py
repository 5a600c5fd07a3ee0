#!/usr/bin/env python3
"""What an HTTPS upstream costs the gateway, and proof that it reuses its upstream connections.

    tls_bench.py --bin .build/product/release/bakeoff [--rounds 3] [--duration 8] [--json out/bench/tls.json]
                 [--markdown BENCHMARKS.md]

Standard library only, plus the `openssl` command (a throwaway CA and a certificate for 127.0.0.1). Two
`bakeoff mock-upstream` processes that answer at once, one plain HTTP and one HTTPS (`--tls-cert`/`--tls-key`),
and in front of each a `bakeoff serve` of the same config but for the upstream's base_url and its
`"tls": {"ca_file": ...}`. `bakeoff load` drives each gateway (plain HTTP between the load and the gateway, so
the only TLS is the gateway's to its upstream): a closed loop (`--rate 0 --concurrency 8`) and an open loop at
1,000 req/s. Each run gets a fresh gateway (so its upstream connections are all opened during the run), a
warm-up load, then the measured load; plain and TLS alternate, their order rotating by round; medians over
rounds.

Per row: throughput and p50/p99 latency (`bakeoff load`'s JSON), the gateway's CPU per request (utime + stime
from /proc/PID/stat over the measured load, divided by its requests), the upstream connections the gateway
opened in the whole run (warm-up included; the mock's `/mock/stats`, checked against the gateway's
`bakeoff_upstream_connections_opened_total`), and TLS handshakes per 1,000 requests (the TLS mock's
`tls_handshakes` over the requests it served). Then what TLS adds per request: the difference in CPU and p50.

Prints a Markdown section to stdout (and with --markdown puts it into that file, replacing its section of the
same title: scripts/bench/bench_md.py); exit status 1 if a run had errors or a TLS run needed more handshakes per
1,000 requests than connections it kept (a gateway that does not reuse connections).
"""
import argparse
import http.client
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
MODEL = "bench-bot"
SECTION_TITLE = "## HTTPS upstreams: what TLS adds, and connection reuse"
START = time.monotonic()


def log(msg):
    print(f"[tls {time.monotonic() - START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit(f"tls_bench.py: openssl {' '.join(args)}: {r.stderr}")


def make_certificates(directory):
    """A CA, and a certificate it issued for 127.0.0.1 (P-256 keys)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "30", "-subj", "/CN=tls_bench CA", cwd=directory)
    openssl("req", *ec, "-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=directory)
    with open(os.path.join(directory, "san.ext"), "w") as fh:
        fh.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-out", "cert.pem", "-days", "30", "-extfile", "san.ext", cwd=directory)
    return {name: os.path.join(directory, f"{name}.pem") for name in ("ca", "key", "cert")}


class Processes:
    """Children with stderr to a file, each in a session of its own; all stopped at the end."""

    def __init__(self, directory):
        self.directory, self.children = directory, []

    def start(self, name, argv, ready):
        path = os.path.join(self.directory, name + ".stderr")
        err = open(path, "w+")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        self.children.append(p)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(path) as fh:
                for line in fh:
                    if ready in line:
                        return p, line.split(ready, 1)[1].split()[0]
            if p.poll() is not None:
                break
            time.sleep(0.05)
        with open(path) as fh:
            raise SystemExit(f"tls_bench.py: {name} did not start: {' '.join(argv)}\n{fh.read()[-2000:]}")

    def stop(self, p, timeout=30):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.children:
            self.children.remove(p)

    def stop_all(self):
        for p in list(self.children):
            self.stop(p, 10)


def cpu_seconds(pid):
    """utime + stime of the process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class MockStats:
    """`GET /mock/stats` over a kept-alive connection of its own. The mock closes it after a while idle; the
    connections it then opens again are taken off the counts, which are then the gateway's alone."""

    def __init__(self, base_url, ca_file):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme == "https":
            context = ssl.create_default_context(cafile=ca_file)
            self.connect = lambda: http.client.HTTPSConnection(u.hostname, u.port, timeout=10, context=context)
        else:
            self.connect = lambda: http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        self.conn, self.reopened = self.connect(), 0

    def get(self):
        try:
            self.conn.request("GET", "/mock/stats")
            r = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()
            self.conn = self.connect()
            self.reopened += 1
            self.conn.request("GET", "/mock/stats")
            r = self.conn.getresponse()
        stats = json.loads(r.read())
        stats["connections"] -= self.reopened
        if stats["tls"]:
            stats["tls_handshakes"] -= self.reopened
        return stats


def gateway_metric(base_url, name):
    with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def load(args, url, rate, duration):
    argv = [args.bin, "load", "--url", url + "/chat/completions", "--rate", f"{rate:g}", "--duration", f"{duration:g}",
            "--warmup", "0", "--users", "10000", "--model", MODEL, "--format", "json"]
    if rate == 0:
        argv += ["--concurrency", str(args.concurrency)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"tls_bench.py: bakeoff load failed ({r.returncode}): {' '.join(argv)}\n{r.stderr[-2000:]}")


def run_once(args, procs, workdir, kind, mock, stats, rate, tag):
    """A fresh gateway in front of `mock`, a warm-up, the measured load; what it measured."""
    upstream = {"base_url": mock, "model": "mock"}
    if kind == "tls":
        upstream["tls"] = {"ca_file": args.certs["ca"]}
    config = {"listen": "127.0.0.1:0", "threads": args.gateway_threads, "store": {"path": os.path.join(workdir, tag + ".db")},
              "experiments": [{"name": "bench", "model": MODEL, "variants": [{"name": "only", "weight": 1, "upstream": upstream}]}]}
    path = os.path.join(workdir, tag + ".json")
    with open(path, "w") as fh:
        json.dump(config, fh)
    gw, url = procs.start(tag, [args.bin, "serve", "--config", path], "listening on ")
    start = stats.get()
    warmup = load(args, url, rate, args.warmup)
    warm = stats.get()
    cpu0 = cpu_seconds(gw.pid)
    report = load(args, url, rate, args.duration)
    cpu = cpu_seconds(gw.pid) - cpu0
    end = stats.get()
    opened_metric = gateway_metric(url, "bakeoff_upstream_connections_opened_total")
    procs.stop(gw)
    served = end["requests"] - start["requests"]
    measured_served = end["requests"] - warm["requests"]
    handshakes = end["tls_handshakes"] - start["tls_handshakes"]
    measured_handshakes = end["tls_handshakes"] - warm["tls_handshakes"]
    return {"kind": kind, "rate": rate, "tag": tag, "report": report, "warmup_report": warmup, "throughput": report["rate"],
            "p50": report["latency_ms"]["p50"], "p99": report["latency_ms"]["p99"], "requests": report["requests"],
            "errors": report["errors"] + warmup["errors"], "skipped": report["skipped"], "warmup_skipped": warmup["skipped"],
            "warmup_p99": warmup["latency_ms"]["p99"],
            "cpu_us_per_request": cpu / max(1, report["requests"]) * 1e6,
            "upstream_requests": served, "gateway_connections_opened": opened_metric,
            "connections_opened": end["connections"] - start["connections"],
            "connections_opened_warmup": warm["connections"] - start["connections"],
            "connections_opened_measured": end["connections"] - warm["connections"],
            "tls_handshakes": handshakes, "handshakes_per_1000": handshakes / max(1, served) * 1000,
            "measured_handshakes_per_1000": measured_handshakes / max(1, measured_served) * 1000}


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def render(args, runs):
    lines = [SECTION_TITLE, "",
             f"`python3 scripts/bench/tls_bench.py --bin .build/product/release/bakeoff --rounds {args.rounds} --duration {args.duration:g} "
             f"--markdown BENCHMARKS.md`, {time.strftime('%Y-%m-%d')} ({os.cpu_count()} cores, load average "
             f"{args.loadavg} at the start, shared with other work; medians of {args.rounds} rounds of {args.warmup:g} s warm-up + {args.duration:g} s; "
             f"mocks answer at once with 20 tokens; gateway {args.gateway_threads} threads, SQLite store; "
             f"a fresh gateway per run, so every upstream connection it used was opened in the run).", "",
             "| load | upstream | throughput (req/s) | p50 (ms) | p99 (ms) | gateway CPU per request (µs) | upstream connections opened: warm-up, measured | TLS handshakes per 1,000 requests: whole run, measured |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    modes = [(0, f"closed loop, {args.concurrency} outstanding"), (args.rate, f"open loop, {args.rate:,} req/s")]
    adds = []
    for rate, label in modes:
        by = {k: [r for r in runs if r["rate"] == rate and r["kind"] == k] for k in ("plain", "tls")}
        for kind, name in (("plain", "HTTP"), ("tls", "HTTPS (ca_file)")):
            rs = by[kind]
            hs = f"{median(rs, 'handshakes_per_1000'):.2f}, {median(rs, 'measured_handshakes_per_1000'):.2f}" if kind == "tls" else "—"

            def span(key):
                low, high = min(r[key] for r in rs), max(r[key] for r in rs)
                return str(low) if low == high else f"{low}–{high}"
            conns = f"{span('connections_opened_warmup')}, {span('connections_opened_measured')}"
            lines.append(f"| {label} | {name} | {median(rs, 'throughput'):,.0f} | {median(rs, 'p50'):.3f} | {median(rs, 'p99'):.3f} | "
                         f"{median(rs, 'cpu_us_per_request'):.0f} | {conns} | {hs} |")
        cpu = median(by["tls"], "cpu_us_per_request") - median(by["plain"], "cpu_us_per_request")
        p50 = median(by["tls"], "p50") - median(by["plain"], "p50")
        adds.append(f"- {label}: TLS adds {cpu:+.0f} µs of gateway CPU and {p50 * 1000:+.0f} µs of p50 per request.")
    lines += ["", "What TLS to the upstream adds per request (TLS median minus plain median):", ""] + adds
    lines += ["", "The CPU is the gateway's alone (its side of TLS: OpenSSL through libcurl). In the closed loop the two "
              "cores are saturated by the load, the gateway and the mock together, so its p50 (outstanding requests over "
              "throughput) also carries the mock's own TLS work (GnuTLS); the open loop's p50 is closer to one request's "
              "own time, but moves with whatever else the machine runs (see the p99s), so the CPU is the steadier measure."]
    tls_open = [r for r in runs if r["kind"] == "tls" and r["rate"] > 0]
    plain_open = [r for r in runs if r["kind"] == "plain" and r["rate"] > 0]
    total_requests = sum(r["upstream_requests"] for r in runs if r["kind"] == "tls")
    total_handshakes = sum(r["tls_handshakes"] for r in runs if r["kind"] == "tls")
    lines += ["", f"Over all TLS runs, {total_handshakes:,} handshakes for {total_requests:,} upstream requests: connections "
              "are opened once and kept alive (libcurl's pool), so a handshake is paid per connection, not per request; "
              "the gateway's `bakeoff_upstream_connections_opened_total` matched the mock's count in every run. "
              "A fresh gateway opens its connections in the warm-up: one per request in flight while the first "
              "handshakes are under way, so at an open loop's rate a cold start against an HTTPS upstream opens up to "
              "as many connections as requests outstanding (the load's limit: 256) "
              f"(warm-up p99 of the TLS open loop {median(tls_open, 'warmup_p99'):.0f} ms, "
              f"{median(tls_open, 'warmup_skipped'):.0f} sends skipped at the limit; plain: {median(plain_open, 'warmup_p99'):.0f} ms, "
              f"{median(plain_open, 'warmup_skipped'):.0f}). The measured loads that followed opened "
              f"{sum(r['connections_opened_measured'] for r in runs if r['kind'] == 'tls')} more TLS connections in all "
              f"(plain: {sum(r['connections_opened_measured'] for r in runs if r['kind'] == 'plain')}; new ones come only when a "
              "stall of the shared machine lets requests pile up beyond the connections kept)."]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=os.environ.get("BAKEOFF_BIN", ".build/product/release/bakeoff"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=8)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--rate", type=int, default=1000, help="the open loop's rate")
    p.add_argument("--concurrency", type=int, default=8, help="the closed loop's requests outstanding")
    p.add_argument("--gateway-threads", type=int, default=2)
    p.add_argument("--json", help="also write every run's measurements here")
    p.add_argument("--markdown", help="put the section into this file (e.g. BENCHMARKS.md)")
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        raise SystemExit(f"tls_bench.py: {args.bin} not found (make build)")
    args.loadavg = open("/proc/loadavg").read().split()[0]
    with tempfile.TemporaryDirectory(prefix="tls-bench-") as workdir:
        args.certs = make_certificates(workdir)
        procs = Processes(workdir)

        def on_signal(signum, _frame):
            raise SystemExit(f"tls_bench.py: signal {signum}")
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            runs = measure(args, procs, workdir)
        finally:
            procs.stop_all()
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({"settings": {k: v for k, v in vars(args).items() if k != "certs"}, "runs": runs}, fh, indent=1)
    section = render(args, runs)
    print(section)
    if args.markdown:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_md import write_section
        write_section(args.markdown, section, SECTION_TITLE)
        log(f"wrote the section into {args.markdown}")
    problems = [f"{r['tag']}: {r['errors']} errors" for r in runs if r["errors"]]
    problems += [f"{r['tag']}: {r['tls_handshakes']} handshakes but the gateway says it opened {r['gateway_connections_opened']}"
                 for r in runs if r["kind"] == "tls" and r["tls_handshakes"] != r["gateway_connections_opened"]]
    # Reuse: each 1,000 requests cost no more handshakes than the connections kept, and a closed loop keeps no
    # more connections than its requests outstanding.
    problems += [f"{r['tag']}: {r['handshakes_per_1000']:.1f} handshakes per 1,000 requests for {r['tls_handshakes']} connections"
                 for r in runs if r["kind"] == "tls" and r["handshakes_per_1000"] > max(1, r["tls_handshakes"])]
    problems += [f"{r['tag']}: {r['tls_handshakes']} handshakes for {args.concurrency} requests outstanding"
                 for r in runs if r["kind"] == "tls" and r["rate"] == 0 and r["tls_handshakes"] > args.concurrency]
    for line in problems:
        log("PROBLEM " + line)
    sys.exit(1 if problems else 0)


def measure(args, procs, workdir):
    mock_args = [args.bin, "mock-upstream", "--port", "0", "--latency-ms", "0", "--jitter-ms", "0",
                 "--tokens-per-second", "0", "--output-tokens", "20", "--threads", "1"]
    _, plain = procs.start("mock-plain", mock_args, "listening on ")
    _, tls = procs.start("mock-tls", mock_args + ["--tls-cert", args.certs["cert"], "--tls-key", args.certs["key"]], "listening on ")
    mocks = {"plain": (plain, MockStats(plain, None)), "tls": (tls, MockStats(tls, args.certs["ca"]))}
    log(f"mocks {plain} and {tls}; {args.rounds} rounds x 2 loads x 2 upstreams of {args.warmup:g} + {args.duration:g} s")
    runs = []
    for rnd in range(args.rounds):
        for rate in (0, args.rate):
            kinds = ("plain", "tls") if (rnd + (rate > 0)) % 2 == 0 else ("tls", "plain")
            for kind in kinds:
                tag = f"{kind}-{'closed' if rate == 0 else rate}-r{rnd}"
                mock, stats = mocks[kind]
                run = run_once(args, procs, workdir, kind, mock, stats, rate, tag)
                runs.append(run)
                log(f"{tag}: {run['throughput']:.0f} req/s, p50 {run['p50']:.3f} ms, p99 {run['p99']:.3f} ms, "
                    f"CPU {run['cpu_us_per_request']:.0f} µs/request, {run['connections_opened_warmup']} + {run['connections_opened_measured']} "
                    f"upstream connections (warm-up + measured) for {run['upstream_requests']} requests (gateway says "
                    f"{run['gateway_connections_opened']:.0f}), warm-up p99 {run['warmup_p99']:.0f} ms and {run['warmup_skipped']} skipped, "
                    f"errors {run['errors']}")
    return runs


if __name__ == "__main__":
    main()
