"""Latency of normal requests through `bakeoff serve` with and without slowloris connections open.

Starts a mock upstream and a gateway (ports picked free, loopback only), sends paced non-streaming chat
completions through the official openai client, first with no other connections, then while a slowloris
process (e2e/gateway/slowloris.py) keeps --connections trickling connections open from several loopback
source addresses. Prints one JSON object: median and p99 latency of each phase, the gateway's RSS and CPU,
and its connection counters from /metrics.

    python scripts/bench/slowloris_latency.py --bin .build/product/release/bakeoff --connections 10000
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import http.client
from pathlib import Path

import openai

REPO = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def ready_url(proc: subprocess.Popen, pattern: str, lines: list[str], timeout: float = 30) -> str:
    found: list[str] = []
    event = threading.Event()

    def drain():
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            m = re.search(pattern, line)
            if m and not found:
                found.append(m.group(1))
                event.set()
        event.set()
    threading.Thread(target=drain, daemon=True).start()
    event.wait(timeout)
    if not found:
        raise SystemExit(f"not ready: {' '.join(proc.args)}\n" + "\n".join(lines))
    return found[0]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metrics(root: str) -> dict[str, float]:
    text = urllib.request.urlopen(root + "/metrics", timeout=30).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("bakeoff_http_") or line.startswith("bakeoff_buffered"):
            name, value = line.split(" ")
            out[name] = float(value)
    return out


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def fresh_get(root: str, path: str) -> float:
    """Milliseconds for a GET on a new connection (accept included)."""
    u = urllib.parse.urlsplit(root)
    start = time.perf_counter()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", path)
        conn.getresponse().read()
    finally:
        conn.close()
    return (time.perf_counter() - start) * 1000


def summary(latencies: list[float]) -> dict:
    if not latencies:
        return {"requests": 0}
    return {"requests": len(latencies), "median_ms": round(percentile(latencies, 0.5), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2), "max_ms": round(max(latencies), 2)}


def phase(client: openai.OpenAI, root: str, pid: int, seconds: float, rate: float) -> dict:
    latencies, fresh, failures, fresh_failures = [], [], 0, 0
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    rss_peak = 0.0
    i = 0
    while time.monotonic() - t0 < seconds:
        start = time.perf_counter()
        try:
            client.chat.completions.create(model="bot", user=f"u{i}", messages=[{"role": "user", "content": "Where is my order?"}])
            latencies.append((time.perf_counter() - start) * 1000)
        except Exception as e:  # noqa: BLE001 - counted, shown
            failures += 1
            print(f"request failed: {e!r}", file=sys.stderr)
        try:
            fresh.append(fresh_get(root, "/healthz"))
        except Exception as e:  # noqa: BLE001 - counted, shown
            fresh_failures += 1
            print(f"healthz on a new connection failed: {e!r}", file=sys.stderr)
        i += 1
        rss_peak = max(rss_peak, rss_mib(pid))
        time.sleep(max(0.0, 1 / rate - (time.perf_counter() - start)))
    elapsed = time.monotonic() - t0
    return {"chat_kept_alive": {**summary(latencies), "failures": failures},
            "healthz_new_connection": {**summary(fresh), "failures": fresh_failures},
            "gateway_cpu_percent": round(100 * (cpu_seconds(pid) - cpu0) / elapsed, 1),
            "gateway_rss_peak_mib": round(rss_peak, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / ".build/product/release/bakeoff"))
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--addresses", default="127.0.0.2-127.0.0.11")
    parser.add_argument("--seconds", type=float, default=30, help="length of each phase")
    parser.add_argument("--rate", type=float, default=20, help="normal requests per second (sequential)")
    parser.add_argument("--config", default="{}", help="extra top-level gateway config keys (JSON)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bakeoff-slowloris-"))
    procs: list[subprocess.Popen] = []
    try:
        mock = subprocess.Popen([args.bin, "mock-upstream", "--port", "0", "--latency-ms", "0", "--jitter-ms", "0", "--tokens-per-second", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        procs.append(mock)
        mock_url = ready_url(mock, r"listening on (http://\S+/v1)", [])
        upstream = {"base_url": mock_url, "model": "m"}
        config = {"listen": "127.0.0.1:0", "store": {"path": str(work / "store.db")}, **json.loads(args.config),
                  "experiments": [{"name": "e", "model": "bot", "split": 0.5, "variants": [
                      {"name": "control", "upstream": upstream}, {"name": "treatment", "upstream": upstream}]}]}
        (work / "gateway.json").write_text(json.dumps(config))
        gateway_lines: list[str] = []
        gateway = subprocess.Popen([args.bin, "serve", "--config", str(work / "gateway.json")], stderr=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, cwd=work)
        procs.append(gateway)
        base = ready_url(gateway, r"listening on (http://\S+/v1)", gateway_lines)
        root = base[: -len("/v1")]
        port = int(root.rsplit(":", 1)[1])
        client = openai.OpenAI(base_url=base, api_key="x", max_retries=0, timeout=30)
        for i in range(50):
            client.chat.completions.create(model="bot", user=f"w{i}", messages=[{"role": "user", "content": "hi"}])

        result = {"connections": args.connections, "addresses": args.addresses}
        result["idle_rss_mib"] = round(rss_mib(gateway.pid), 1)
        result["without"] = phase(client, root, gateway.pid, args.seconds, args.rate)

        loris_lines: list[str] = []
        loris = subprocess.Popen([sys.executable, str(REPO / "e2e/gateway/slowloris.py"), "--port", str(port),
                                  "--connections", str(args.connections), "--addresses", args.addresses,
                                  "--duration", str(args.seconds * 3 + 120)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(loris)
        threading.Thread(target=lambda: [loris_lines.append(l) for l in loris.stdout], daemon=True).start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            if loris_lines and json.loads(loris_lines[-1])["open"] >= 0.99 * args.connections:
                break
            time.sleep(0.5)
        result["seconds_to_open"] = round(time.monotonic() - t0, 1)
        result["with"] = phase(client, root, gateway.pid, args.seconds, args.rate)
        result["slowloris"] = json.loads(loris_lines[-1]) if loris_lines else None
        try:
            result["gateway_metrics"] = metrics(root)
        except OSError as e:
            result["gateway_metrics"] = repr(e)
        loris.terminate()
        loris.wait(30)
        print(json.dumps(result, indent=2))
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
