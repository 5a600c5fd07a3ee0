#!/usr/bin/env python3
"""Two builds of bakeoff side by side, in one run: analysis events/s and gateway overhead and throughput.

    compare_builds.py --base OLD/bakeoff --new NEW/bakeoff [--users 155000] [--runs 5] [--gateway-rounds 3]

Why: a restructuring must keep the benchmarks within noise, and on a shared 2-core machine only figures
measured in the same run, alternating the two builds, can be compared. The analysis runs on core 0
(`taskset`), alternating base and new, and reports the median wall time of each; the gateway part runs
scripts/bench/gateway.py in quick mode (no LiteLLM) for each build in turn, `--gateway-rounds` times, and
reports the medians of its per-run figures. Prints a Markdown table.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the bakeoff binary before")
    p.add_argument("--new", required=True, help="the bakeoff binary after")
    p.add_argument("--users", type=int, default=155000, help="simulated users in the analysis log (~16 events each)")
    p.add_argument("--runs", type=int, default=5, help="timed analysis runs per build")
    p.add_argument("--gateway-rounds", type=int, default=3, help="gateway.py quick runs per build (0 skips)")
    p.add_argument("--out", default=str(REPO / "out/bench/compare"))
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    builds = {"base": a.base, "new": a.new}

    log = out / f"events-{a.users}u.jsonl"
    if not log.exists():
        subprocess.run([a.new, "simulate", "--preset", "seed-case-study", "--users", str(a.users), "--output", str(log)],
                       check=True, stderr=subprocess.DEVNULL)
    with open(log, "rb") as f:
        lines = sum(1 for _ in f)
    walls = {name: [] for name in builds}
    for run in range(a.runs):
        order = list(builds.items()) if run % 2 == 0 else list(reversed(builds.items()))
        for name, binary in order:
            walls[name].append(timed(["taskset", "-c", "0", binary, "analyze", str(log), "--split", "0.2", "--format", "json"]))
    rows = []
    for name in builds:
        median = statistics.median(walls[name])
        rows.append((f"analysis, {lines:,} events, core 0 ({name})", f"median {median:.2f} s = {lines / median / 1e6:.2f} M events/s",
                     ", ".join(f"{w:.2f}" for w in walls[name])))

    figures = {name: {"p50": [], "p99": [], "closed": [], "cpu": []} for name in builds}
    for round_ in range(a.gateway_rounds):
        order = list(builds.items()) if round_ % 2 == 0 else list(reversed(builds.items()))
        for name, binary in order:
            target = out / f"gateway-{name}-{round_}"
            subprocess.run([sys.executable, str(REPO / "scripts/bench/gateway.py"), "--bin", binary, "--litellm", "",
                            "--quick", "--out", str(target)], check=True, stdout=subprocess.DEVNULL)
            summary = json.loads((target / "gateway.json").read_text())["summary"]
            overhead = summary["overheads"]["bakeoff@1000"]
            figures[name]["p50"].append(overhead["p50"])
            figures[name]["p99"].append(overhead["p99"])
            figures[name]["closed"].append(summary["configs"]["bakeoff/closed"]["rate"])
            figures[name]["cpu"].append(summary["configs"]["bakeoff/closed"]["gateway_cpu_ms_per_request"])
    if a.gateway_rounds:
        for name in builds:
            f = figures[name]
            rows.append((f"gateway ({name}), medians of {a.gateway_rounds} quick runs",
                         f"overhead at 1,000 req/s p50 {statistics.median(f['p50']):.3f} ms, p99 {statistics.median(f['p99']):.3f} ms; "
                         f"closed loop {statistics.median(f['closed']):,.0f} req/s, {statistics.median(f['cpu']) * 1000:.0f} µs CPU/request",
                         "; ".join(f"{x:.3f}/{y:.3f}/{z:,.0f}" for x, y, z in zip(f["p50"], f["p99"], f["closed"]))))
    print("| what | result | runs |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    (out / "compare.json").write_text(json.dumps({"walls": walls, "lines": lines, "gateway": figures}, indent=1))


if __name__ == "__main__":
    main()
