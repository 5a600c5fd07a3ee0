#!/usr/bin/env python3
"""Turn the JSON results of scripts/bench/run.sh into a Markdown table (stdout) and BENCHMARKS.md.

    report.py RESULTS_DIR --markdown PATH

Every number written is read from RESULTS_DIR (produced by the commands run.sh ran) or computed from those
(rates, ratios, differences); the only other numbers are the goals, labelled as such.
"""

import argparse
import json
import os
import re
import statistics
import sys

GOAL_ASSIGN_RATIO = 10.0
GOAL_EVENTS_PER_SEC = 1_000_000
GOAL_ANALYZE_RATIO = 10.0
MIB = 1024.0  # /usr/bin/time reports KiB


def load(res, name):
    path = os.path.join(res, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def n(x, digits=0):
    return f"{x:,.{digits}f}"


def rate(x, unit):
    return f"{x / 1e6:,.2f} M {unit}/s" if x >= 1e6 else f"{x / 1e3:,.1f} k {unit}/s"


def mib(kb):
    return f"{kb / MIB:,.0f} MiB"


def met(ok):
    return "yes" if ok else "**NO**"


def runs_text(t):
    return ", ".join(f"{r['wall_s']:.3f} s" for r in t["runs"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--markdown", required=True)
    args = parser.parse_args()
    res = args.results

    machine = load(res, "machine")
    runtime = load(res, "runtime")
    py_assign = load(res, "assign_python")
    bk_assign = load(res, "assign_bakeoff")
    bk_empty = load(res, "assign_bakeoff_empty")
    counts = load(res, "assign_counts")
    logs = {k: load(res, "log_" + k) for k in ("big", "small", "dense")}
    timed = {k: load(res, "analyze_" + k) for k in ("big", "small", "dense")}
    pandas = load(res, "analyze_pandas")
    agree_small = load(res, "agreement_small")
    agree_big = load(res, "agreement_big")
    generated = []
    gen_path = os.path.join(res, "generated.txt")
    if os.path.exists(gen_path):
        generated = [line.strip() for line in open(gen_path) if line.strip()]
    runs = runtime["runs"]

    # ------------------------------------------------------------ figures
    ids = counts["ids"]
    py_ids = py_assign["python_ids_per_sec"]
    bk_ids = ids / bk_assign["median_wall_s"]
    assign_ratio = bk_ids / py_ids
    assign_ok = counts["output_lines"] == ids and counts["treatment"] == py_assign["treatment"]

    big = logs["big"]
    bk_eps = big["lines"] / timed["big"]["median_wall_s"]
    bk_rss = timed["big"]["median_max_rss_kb"]
    if pandas:
        pd_eps = big["lines"] / pandas["median_wall_s"]
        pd_rss = pandas["median_max_rss_kb"]
        analyze_ratio = bk_eps / pd_eps

    mem = []
    for key in ("small", "dense", "big"):
        lg, t = logs[key], timed[key]
        rss_b = t["median_max_rss_kb"] * 1024
        mem.append({"key": key, "users": lg["users"], "requests": lg["requests"], "lines": lg["lines"],
                    "bytes": lg["bytes"], "rss_kb": t["median_max_rss_kb"], "wall": t["median_wall_s"],
                    "per_user": rss_b / lg["users"], "per_event": rss_b / lg["lines"]})
    m = {r["key"]: r for r in mem}
    s, d, b = m["small"], m["dense"], m["big"]
    # Same users, more events (small -> dense); same events, more users (dense -> big).
    events_factor, events_rss_factor = d["lines"] / s["lines"], d["rss_kb"] / s["rss_kb"]
    users_factor, users_rss_factor = b["users"] / d["users"], b["rss_kb"] / d["rss_kb"]

    # ------------------------------------------------------------ table
    rows = [
        "| Benchmark | Baseline (same run) | Bakeoff | Ratio | Goal | Met |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| Assignment, {n(ids)} ids, 1 core | Python ABRouter: {rate(py_ids, 'ids')} | `bakeoff assign`: "
        f"{rate(bk_ids, 'ids')} (median {bk_assign['median_wall_s']:.3f} s) | {assign_ratio:.1f}x | ≥ 10x | "
        f"{met(assign_ratio >= GOAL_ASSIGN_RATIO)} |",
    ]
    if pandas:
        rows += [
            f"| Analysis throughput, {n(big['lines'])} events, 1 core | pandas + scipy: {rate(pd_eps, 'events')} "
            f"({pandas['median_wall_s']:.1f} s) | `bakeoff analyze`: {rate(bk_eps, 'events')} (median "
            f"{timed['big']['median_wall_s']:.2f} s) | {analyze_ratio:.1f}x | ≥ 1 M events/s and ≥ 10x | "
            f"{met(bk_eps >= GOAL_EVENTS_PER_SEC and analyze_ratio >= GOAL_ANALYZE_RATIO)} |",
            f"| Analysis peak RSS, same log | pandas + scipy: {mib(pd_rss)} | `bakeoff analyze`: {mib(bk_rss)} | "
            f"{pd_rss / bk_rss:.1f}x less | — | — |",
        ]
    else:
        rows.append(f"| Analysis throughput, {n(big['lines'])} events, 1 core | (pandas skipped) | "
                    f"`bakeoff analyze`: {rate(bk_eps, 'events')} | — | ≥ 1 M events/s | {met(bk_eps >= GOAL_EVENTS_PER_SEC)} |")
    table = "\n".join(rows)

    mem_rows = [
        "| Log | Users | Requests | Events (lines) | `bakeoff analyze` median wall | Peak RSS (median) | RSS / user | RSS / event |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    labels = {"small": "preset", "dense": "preset, 10 conversations/user", "big": "preset"}
    for r in mem:
        mem_rows.append(f"| {os.path.basename(logs[r['key']]['file'])} ({labels[r['key']]}) | {n(r['users'])} | "
                        f"{n(r['requests'])} | {n(r['lines'])} | {r['wall']:.2f} s | {mib(r['rss_kb'])} | "
                        f"{n(r['per_user'])} B | {n(r['per_event'])} B |")
    mem_table = "\n".join(mem_rows)

    def pieces_for(size):  # bakeoff's automatic choice (PartitionedLog.automaticPartitions)
        return 1 if size < 512 << 20 else -(-size // (128 << 20))
    piece_rows = [
        "| Log | Size | Events (lines) | in memory (`--partitions 1`): median wall, peak RSS | default: pieces, median wall, events/s, peak RSS |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key in ("small", "big"):
        whole, default = load(res, "analyze_" + key + "_memory"), timed[key]
        lg = logs[key]
        piece_rows.append(
            f"| {os.path.basename(lg['file'])} | {lg['bytes'] / 2**20:,.0f} MiB | {n(lg['lines'])} | "
            f"{whole['median_wall_s']:.2f} s, {mib(whole['median_max_rss_kb'])} | "
            f"{pieces_for(lg['bytes'])}, {default['median_wall_s']:.2f} s, {rate(lg['lines'] / default['median_wall_s'], 'events')}, "
            f"{mib(default['median_max_rss_kb'])} |")
    piece_table = "\n".join(piece_rows)

    print("\n" + table + "\n\n" + mem_table + "\n\n" + piece_table + "\n")

    # ------------------------------------------------------------ BENCHMARKS.md
    def agree_text(a, what):
        if a is None:
            return f"- {what}: not run."
        verdict = "agree" if a["agree"] else f"**DISAGREE** ({len(a['mismatches'])} mismatches: {a['mismatches'][:3]})"
        return (f"- {what}: {verdict} on {a['checked']} compared values; largest mean difference "
                f"{a['max_mean_diff']:.3g}, largest p-value difference {a['max_p_diff']:.3g}, largest relative "
                f"quantile difference {a['max_quantile_rel_diff']:.3g} (quantiles not enforced).")

    md = []
    md.append("# Benchmarks\n")
    md.append("Written by `make bench` (`scripts/bench/run.sh`, `scripts/bench/report.py`); every figure below was "
              "measured by that run. The machine is shared and noisy, so each comparison is against a baseline "
              "measured in the same run, Swift timings are medians, and ratios matter more than absolute rates.\n")
    md.append(f"## {machine['date']}: {machine['cpu_model']}, {machine['nproc']} cores\n")
    md.append("- Command: `make bench`")
    md.append(f"- Machine: `nproc` = {machine['nproc']}, CPU `{machine['cpu_model']}` (/proc/cpuinfo), "
              f"{machine['mem_total_kb'] / MIB / MIB:.1f} GiB RAM, {machine['kernel']}; load average at start "
              f"{machine['load_average_at_start']}")
    md.append(f"- Build: commit {machine['git_commit']}{' with uncommitted changes' if machine['git_dirty'] else ''}, "
              f"bakeoff binary sha256 {machine['bakeoff_sha256']}…, {machine['swift']}; baseline {machine['python']}")
    md.append(f"- `scripts/bench/run.sh` took {runtime['run_sh_seconds']} s"
              + (f" (logs generated this run: {', '.join(generated)})" if generated else " (all logs reused)")
              + f"; Swift timings are medians of {runs} runs, wall clock incl. start-up, reading and writing, "
              "pinned with `taskset -c 0`; peak RSS is `/usr/bin/time -v` \"Maximum resident set size\".\n")
    md.append("### Results\n")
    md.append(table + "\n")
    md.append("### Memory: what `bakeoff analyze`'s peak RSS scales with\n")
    md.append(mem_table + "\n")
    md.append("### Memory that stays fixed: reading in pieces\n")
    md.append(
        "Read in memory (`--partitions 1`, and the default below 512 MB of log), state grows with requests and "
        "conversations. In pieces (`--partitions N`, automatic above 512 MB: one piece per 128 MB of log, so every "
        "log in the tables above except the smallest) `bakeoff analyze` first writes each "
        "event as a binary record into one of N temporary files by a hash of its user, then aggregates one file "
        "at a time and adds the per-variant sums up; only one piece's state is alive at a time. The report is "
        "identical (`make test` checks this on the reference logs in 2, 3 and 7 pieces).\n")
    md.append(piece_table + "\n")
    md.append("### What the numbers mean\n")
    md.append(
        f"**Assignment.** `scripts/bench/assign_bench.py` runs the seed's `ABRouter.assign` verbatim over "
        f"{n(ids)} ids `user-<i>` on core 0 and reports ids per CPU-second of the fastest of its 3 loops "
        f"({py_assign['cpu_seconds']} s), ids built in memory beforehand, so reading, writing and interpreter "
        f"start-up are not counted for Python. `bakeoff assign` is timed as a whole process on core 0 reading "
        f"the same ids from a file and writing one variant per line to a file: runs {runs_text(bk_assign)}, "
        f"median {bk_assign['median_wall_s']:.3f} s = {rate(bk_ids, 'ids')}, {assign_ratio:.1f}x Python. "
        f"Process start-up alone (same command, empty input) took a median {bk_empty['median_wall_s']:.3f} s. "
        f"The comparison favours Python. Output check: {counts['output_lines']:,} lines, {counts['treatment']:,} "
        f"treatment vs Python's {py_assign['treatment']:,} "
        f"({'identical count' if assign_ok else '**MISMATCH**'}).\n")
    if pandas:
        md.append(
            f"**Analysis throughput.** `bakeoff analyze {os.path.basename(big['file'])} --split 0.2 --format json` "
            f"on core 0 ({n(big['lines'])} lines, {big['bytes'] / 1e9:.2f} GB, {n(big['users'])} users): runs "
            f"{runs_text(timed['big'])}, median {timed['big']['median_wall_s']:.2f} s = {rate(bk_eps, 'events')}, "
            f"peak RSS {mib(bk_rss)}. The baseline `scripts/bench/pandas_analysis.py` does the same analysis "
            f"(same assignment rule, metrics, delta-method Welch tests, quantiles and SRM test) the ordinary way: "
            f"`pandas.read_json(lines=True, chunksize=500000)`, groupbys and `scipy.stats`, one process on core 0, "
            f"run once: {pandas['median_wall_s']:.1f} s = {rate(pd_eps, 'events')}, peak RSS {mib(pd_rss)}. "
            f"Bakeoff is {analyze_ratio:.1f}x faster per core and uses {pd_rss / bk_rss:.1f}x less memory.\n")
    md.append(
        f"**Memory.** Three logs separate users from events, each read the default way (in pieces above 512 MB "
        f"of log). At the same {n(s['users'])} users, {events_factor:.1f}x the events ({n(s['lines'])} -> "
        f"{n(d['lines'])}, via 10 conversations per user instead of the preset's) changed peak RSS "
        f"{events_rss_factor:.2f}x ({mib(s['rss_kb'])} -> {mib(d['rss_kb'])}). At about the same number of "
        f"events, {users_factor:.1f}x the users ({n(d['users'])} -> {n(b['users'])}) changed it "
        f"{users_rss_factor:.2f}x ({mib(d['rss_kb'])} -> {mib(b['rss_kb'])}). The table after shows the same "
        f"logs read in memory, where state grows with requests and conversations.\n")
    md.append("### Same numbers from both sides\n")
    md.append("`scripts/bench/check_agreement.py` compares the pandas output with bakeoff's JSON report: users per "
              "variant, SRM p-value, and per metric and variant the mean (tolerance 1e-9), users, units and p-value "
              "(tolerance 1e-6).\n")
    md.append(agree_text(agree_small, "Small log (`check-*.jsonl`)"))
    md.append(agree_text(agree_big, f"Benchmark log (`{os.path.basename(big['file'])}`)") + "\n")
    md.append("### Reproduce\n")
    md.append("`make bench` (needs `taskset` and `/usr/bin/time`). Logs are simulated under `out/bench/` "
              "(`bakeoff simulate --preset seed-case-study --users N --seed 1`; not timed) and reused while their "
              "parameters are unchanged; timings are always re-measured. Quick run with smaller inputs: "
              "`BENCH_EVENTS_USERS=40000 BENCH_IDS=200000 make bench` (written to `out/bench/BENCHMARKS.quick.md`).")
    # The gateway section is written by scripts/bench/gateway.py (which run.sh runs after this): keep the one
    # already in the file until it is replaced, so a run without the gateway part does not drop it.
    kept = ""
    if os.path.exists(args.markdown):
        m = re.search(r"^## Gateway overhead and throughput\n.*?(?=^## |\Z)", open(args.markdown).read(),
                      re.MULTILINE | re.DOTALL)
        kept = m.group(0).rstrip("\n") if m else ""
    with open(args.markdown, "w") as fh:
        fh.write("\n".join(md) + "\n" + ("\n" + kept + "\n" if kept else ""))


if __name__ == "__main__":
    main()
