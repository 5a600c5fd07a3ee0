#!/usr/bin/env python3
"""Statistics from sufficient statistics: `bakeoff analyze --summary` vs gbstats' process_experiment_results.

    stats.py --bin .build/product/release/bakeoff [--out out/bench] [--markdown BENCHMARKS.md]
             [--metrics 100] [--users 10000] [--runs 11] [--gbstats-runs 5] [--cpu 0]

The issue's target: the statistics for 100 metrics x 2 arms from sufficient statistics at least 50x faster
than gbstats' `process_experiment_results` on the same inputs.

1. Draws per-user data (seeded) for --metrics metrics x 2 arms of --users users each and reduces it to the
   sums both tools take: 40% conversation-level proportions (m ~ Binomial(d, p_user), a ratio of per-user
   sums), 30% token-count ratios (request level), 20% per-user means with a pre-period covariate (CUPED) and
   10% plain per-user means; ratio metrics count only users with a unit. Writes OUT/stats-summary.csv (the
   `--summary` format, README "Sufficient statistics from your warehouse") and OUT/stats-config.json (the
   metrics, for `--config`).
2. gbstats 0.8.0, in process: one `process_experiment_results` call with the same sums in its query-row shape
   (`m{i}_users`, `m{i}_main_sum`, ...; statistic types "ratio", "mean" and "mean_ra" for CUPED), frequentist,
   two-sided, absolute differences, alpha 0.05 — the test `bakeoff analyze` runs — not sequential (bakeoff's
   report is not). One warm-up call, then --gbstats-runs timed calls; the median. The sequential variant
   (SequentialTwoSidedTTest) is timed too, for information.
3. Bakeoff: `BIN analyze --summary CSV --config CONFIG --format json` as a subprocess, one warm-up run, then
   --runs timed runs (wall time around the whole process, start-up included: conservative for bakeoff); the
   median; and in process with `--benchmark N` (parse, statistics, JSON report, N times).
4. Agreement: for every metric, bakeoff's p_value, absolute_diff and absolute_ci against gbstats' pValue,
   expected and ci (relative 1e-6). For CUPED metrics a report that matches gbstats' unadjusted test instead is
   reported as "CUPED not applied" (not as agreement).

Everything runs pinned to one CPU (--cpu, default 0; -1 leaves it unpinned). Writes OUT/stats.json and, with
--markdown, the section "## Statistics from sufficient statistics: bakeoff vs gbstats" of that file (replaced
in place, or appended). Exit status: 0 when measured and agreeing, 1 on disagreement.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

from bench_md import write_section
from importlib.metadata import version

import numpy as np
import pandas
import scipy

from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.gbstats import process_experiment_results
from gbstats.models.statistics import SampleMeanStatistic

SECTION_TITLE = "## Statistics from sufficient statistics: bakeoff vs gbstats"
TARGET_RATIO = 50.0
TOLERANCE = 1e-6


def log(msg):
    print(f"[stats] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data


def metric_kinds(count):
    """Per metric: 'proportion', 'ratio', 'cuped' or 'mean' (40/30/20/10%)."""
    kinds = []
    for k in range(count):
        share = k / count
        kinds.append("proportion" if share < 0.4 else "ratio" if share < 0.7 else "cuped" if share < 0.9 else "mean")
    return kinds


def draw(rng, kind, n, lift):
    """Per-user arrays (m, d, mp) of one arm; users without a unit already dropped; mp only for CUPED."""
    if kind == "proportion":
        d = rng.poisson(1.5, size=n) * (rng.random(n) < 0.8)  # some users never reach an outcome
        p = rng.beta(7.0 * (0.7 + lift), 7.0 * (0.3 - lift), size=n)
        m = rng.binomial(d, p)
        keep = d > 0
        return m[keep].astype(float), d[keep].astype(float), None
    if kind == "ratio":
        d = 1 + rng.poisson(2.0, size=n)
        scale = 210.0 * (1 + lift) / 4 * np.exp(0.3 * rng.standard_normal(n))
        m = np.round(rng.gamma(4.0 * d, scale))
        return m, d.astype(float), None
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.6], [0.6, 1.0]], size=n)
    y = np.round(10.0 * (1 + lift) + 3.0 * z[:, 0], 3)
    x = np.round(10.0 + 3.0 * z[:, 1], 3) if kind == "cuped" else None
    return y, np.ones(n), x


def generate(metrics, users, seed):
    rng = np.random.default_rng(seed)
    kinds = metric_kinds(metrics)
    data = []
    for k, kind in enumerate(kinds):
        lift = [0.0, 0.01, 0.03][k % 3]
        arms = []
        for arm, arm_lift in (("control", 0.0), ("treatment", lift)):
            m, d, x = draw(rng, kind, users, arm_lift)
            s = {"users": len(m), "sum": float(m.sum()), "sum_squares": float((m * m).sum()),
                 "units": float(d.sum()), "units_squares": float((d * d).sum()), "sum_units_products": float((m * d).sum())}
            if x is not None:
                s.update({"pre_sum": float(x.sum()), "pre_sum_squares": float((x * x).sum()),
                          "sum_pre_sum_products": float((m * x).sum())})
            arms.append((arm, s))
        data.append({"name": f"m{k:03d}", "kind": kind, "arms": arms})
    return data


def number(x):
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def write_inputs(data, users, out):
    columns = ["experiment", "variant", "metric", "assigned_users", "users", "sum", "sum_squares", "units",
               "units_squares", "sum_units_products", "pre_sum", "pre_sum_squares", "sum_pre_sum_products"]
    lines = [",".join(columns)]
    for metric in data:
        ratio = metric["kind"] in ("proportion", "ratio")
        for arm, s in metric["arms"]:
            row = {"experiment": "stats-bench", "variant": arm, "metric": metric["name"], "assigned_users": str(users),
                   "users": str(s["users"])}
            keys = ["sum", "sum_squares"] + (["units", "units_squares", "sum_units_products"] if ratio else [])
            keys += ["pre_sum", "pre_sum_squares", "sum_pre_sum_products"] if "pre_sum" in s else []
            row.update({key: number(s[key]) for key in keys})
            lines.append(",".join(row.get(c, "") for c in columns))
    csv_path = os.path.join(out, "stats-summary.csv")
    with open(csv_path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    config = {
        "experiment": "stats-bench", "control": "control", "split": 0.5, "alpha": 0.05, "builtin_metrics": False,
        "primary_metric": data[0]["name"],
        "metrics": [{"name": m["name"], "feedback": "f" + m["name"][1:], "level": "conversation",
                     "kind": "proportion" if m["kind"] == "proportion" else "mean", "goal": "up"} for m in data],
    }
    config_path = os.path.join(out, "stats-config.json")
    with open(config_path, "w") as fh:
        json.dump(config, fh, indent=1)
    return csv_path, config_path


# ---------------------------------------------------------------- gbstats


def gbstats_input(data, users, sequential):
    metrics, rows = {}, [{"dimension": "All", "variation": "0"}, {"dimension": "All", "variation": "1"}]
    for i, metric in enumerate(data):
        kind = metric["kind"]
        settings = {"id": metric["name"], "name": metric["name"], "main_metric_type": "count"}
        if kind in ("proportion", "ratio"):
            settings.update(statistic_type="ratio", denominator_metric_type="count")
        elif kind == "cuped":
            settings.update(statistic_type="mean_ra", covariate_metric_type="count")
        else:
            settings.update(statistic_type="mean")
        metrics[metric["name"]] = settings
        for row, (_, s) in zip(rows, metric["arms"]):
            p = f"m{i}_"
            row.update({p + "users": s["users"], p + "count": s["users"], p + "main_sum": s["sum"],
                        p + "main_sum_squares": s["sum_squares"]})
            if kind in ("proportion", "ratio"):
                row.update({p + "denominator_sum": s["units"], p + "denominator_sum_squares": s["units_squares"],
                            p + "main_denominator_sum_product": s["sum_units_products"]})
            if kind == "cuped":
                row.update({p + "covariate_sum": s["pre_sum"], p + "covariate_sum_squares": s["pre_sum_squares"],
                            p + "main_covariate_sum_product": s["sum_pre_sum_products"]})
    analysis = {"var_names": ["control", "treatment"], "var_ids": ["0", "1"], "weights": [0.5, 0.5],
                "baseline_index": 0, "stats_engine": "frequentist", "sequential_testing_enabled": sequential,
                "difference_type": "absolute", "alpha": 0.05}
    return {"metrics": metrics, "analyses": [analysis],
            "query_results": [{"rows": rows, "metrics": [m["name"] for m in data]}]}


def time_gbstats(payload, runs):
    results = process_experiment_results(payload)  # warm-up (and the results for the agreement check)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        process_experiment_results(payload)
        times.append(time.perf_counter() - start)
    return results, times


def gbstats_results(results):
    out = {}
    for r in results:
        v = r["analyses"][0]["dimensions"][0]["variations"][1]
        out[r["metric"]] = {"p_value": v["pValue"], "difference": v["expected"], "ci": list(v["ci"]),
                            "error": v.get("errorMessage")}
    return out


def unadjusted(metric):
    """gbstats' test of a CUPED metric without its covariate."""
    (_, c), (_, t) = metric["arms"]
    a = SampleMeanStatistic(n=c["users"], sum=c["sum"], sum_squares=c["sum_squares"])
    b = SampleMeanStatistic(n=t["users"], sum=t["sum"], sum_squares=t["sum_squares"])
    r = TwoSidedTTest(a, b, FrequentistConfig(difference_type="absolute", alpha=0.05)).compute_result()
    return {"p_value": r.p_value, "difference": r.expected, "ci": list(r.ci)}


# ---------------------------------------------------------------- bakeoff


def run_bakeoff(command, runs, report_path):
    probe = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = probe.stderr.decode(errors="replace")
    if probe.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({probe.returncode}):\n{err}")
    with open(report_path, "wb") as fh:
        fh.write(probe.stdout)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
    return json.loads(probe.stdout), times


def bakeoff_in_process(command, runs):
    """`--benchmark N`: bakeoff parses, analyses and renders the summary N times in one process; median from stderr."""
    proc = subprocess.run(command + ["--benchmark", str(runs)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.decode(errors="replace")
    match = re.search(r"median ([0-9.]+) ms over ([0-9]+) runs \(min ([0-9.]+) ms\)", err)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"{' '.join(command)} --benchmark {runs} failed ({proc.returncode}):\n{err}")
    return {"median_s": float(match.group(1)) / 1000, "min_s": float(match.group(3)) / 1000, "runs": int(match.group(2))}


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOLERANCE * abs(b) + 1e-12


def agreement(data, report, gb):
    bakeoff = {m["name"]: m for m in report.get("metrics", []) if m.get("variant") == "treatment"}
    out = {"checked": 0, "agree": 0, "cuped_not_applied": [], "disagree": [], "missing": [], "worst_relative": 0.0}
    for metric in data:
        name = metric["name"]
        b = bakeoff.get(name)
        if b is None:
            out["missing"].append(name)
            continue
        mine = {"p_value": b.get("p_value"), "difference": b.get("absolute_diff"), "ci": b.get("absolute_ci") or [None, None]}

        def matches(ref):
            pairs = [(mine["p_value"], ref["p_value"]), (mine["difference"], ref["difference"]),
                     (mine["ci"][0], ref["ci"][0]), (mine["ci"][1], ref["ci"][1])]
            return all(close(x, y) for x, y in pairs), pairs

        out["checked"] += 1
        ok, pairs = matches(gb[name])
        if ok:
            out["agree"] += 1
            for x, y in pairs:
                # gbstats computes p as 2 (1 - cdf): below ~1e-6 its p-values keep few relative digits.
                if abs(y) >= 1e-6:
                    out["worst_relative"] = max(out["worst_relative"], abs(x - y) / abs(y))
        elif metric["kind"] == "cuped" and matches(unadjusted(metric))[0]:
            out["cuped_not_applied"].append(name)
        else:
            out["disagree"].append({"metric": name, "kind": metric["kind"], "bakeoff": mine, "gbstats": gb[name]})
    return out


# ---------------------------------------------------------------- report


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "kernel": platform.release(),
            "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "git_commit": commit.stdout.decode().strip() or "unknown",
            "python": platform.python_version(), "gbstats": version("gbstats"), "pandas": pandas.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__}


def ms(seconds):
    return f"{seconds * 1000:,.1f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2f} ms"


def markdown(res):
    mc, a = res["machine"], res["agreement"]
    kinds = res["inputs"]["kinds"]
    md = [SECTION_TITLE, "",
          f"Written by `{res['command']}` (`scripts/bench/stats.py`) on {res['date']}.", "",
          f"- Machine: {mc['nproc']} cores, `{mc['cpu_model']}`, {mc['kernel']}; load average {mc['load_average']} "
          f"at start (the machine is shared with other jobs); everything pinned to CPU {res['cpu']}.",
          f"- Versions: bakeoff commit {mc['git_commit']}; gbstats {mc['gbstats']} (pandas {mc['pandas']}, numpy "
          f"{mc['numpy']}, scipy {mc['scipy']}, Python {mc['python']}).",
          f"- Inputs: {res['inputs']['metrics']} metrics x 2 arms, {res['inputs']['users']:,} users per arm: "
          f"{kinds['proportion']} conversation-level proportions and {kinds['ratio']} token ratios (ratios of per-user "
          f"sums), {kinds['cuped']} per-user means with a pre-period covariate (CUPED), {kinds['mean']} plain "
          f"per-user means. The same sums for both: `out/bench/stats-summary.csv` and gbstats' query rows.",
          "", "### Results", "",
          "| What | Median | Runs (s) |", "| --- | --- | --- |",
          f"| gbstats `process_experiment_results`, in process (frequentist, absolute, not sequential) | "
          f"{ms(res['gbstats']['median_s'])} | {', '.join(f'{t:.4f}' for t in res['gbstats']['runs_s'])} |",
          f"| gbstats, the same with sequential testing (information) | {ms(res['gbstats_sequential']['median_s'])} | "
          f"{', '.join(f'{t:.4f}' for t in res['gbstats_sequential']['runs_s'])} |",
          f"| `bakeoff analyze --summary ... --format json`, in process (`--benchmark {res['bakeoff_in_process']['runs']}`: "
          f"parse the CSV, the statistics, the JSON report) | {ms(res['bakeoff_in_process']['median_s'])} | "
          f"min {res['bakeoff_in_process']['min_s']:.4f} |",
          f"| `bakeoff analyze --summary ... --format json`, whole process (start-up included) | "
          f"{ms(res['bakeoff']['median_s'])} | {', '.join(f'{t:.4f}' for t in res['bakeoff']['runs_s'])} |",
          "", "| Target (the issue's) | Goal | Measured | Met |", "| --- | --- | --- | --- |",
          f"| gbstats time / bakeoff time, {res['inputs']['metrics']} metrics x 2 arms, both in process | ≥ {TARGET_RATIO:.0f}x | "
          f"{res['ratio']:.0f}x | {'yes' if res['ratio'] >= TARGET_RATIO else 'no'} |",
          f"| the same with bakeoff's process start-up counted against it | ≥ {TARGET_RATIO:.0f}x | "
          f"{res['ratio_whole_process']:.1f}x | {'yes' if res['ratio_whole_process'] >= TARGET_RATIO else 'no'} |", ""]
    text = (f"Same numbers from both: {a['agree']} of {res['inputs']['metrics']} metrics agree on the p-value, the "
            f"absolute difference and its 95% interval to {TOLERANCE:g} relative (worst {a['worst_relative']:.1e}; values "
            "below 1e-6 to 1e-12 absolute, since gbstats computes p as 2 (1 − cdf), which keeps few digits there)")
    if a["cuped_not_applied"]:
        text += (f"; for {len(a['cuped_not_applied'])} CUPED metrics bakeoff's report equals gbstats' unadjusted test "
                 f"(the report did not apply the pre-period covariate)")
    if a["disagree"] or a["missing"]:
        text += f"; DISAGREE: {', '.join(d['metric'] for d in a['disagree']) or '-'}; missing: {', '.join(a['missing']) or '-'}"
    md += [text + ".", "",
           "How measured: gbstats runs in the benchmark's Python process (one warm-up call, then "
           f"{len(res['gbstats']['runs_s'])} timed calls of `process_experiment_results` with all metrics in one "
           "query result, as GrowthBook calls it); bakeoff in process with `--benchmark N` (N parses of the same "
           "file's bytes, analyses and JSON reports, timed each), and as a subprocess (one warm-up run, then "
           f"{len(res['bakeoff']['runs_s'])} timed runs; wall time around the whole process, so start-up — mostly "
           "the dynamic loader binding libcurl's and libsqlite's dependencies — and writing the JSON report count "
           "against bakeoff). Bakeoff runs without the multiple-comparison correction here, since gbstats reports "
           "unadjusted tests. Medians. Raw numbers: `out/bench/stats.json`.", "",
           "Reproduce: `BENCH_ONLY=stats make bench` (only this), or `make bench` (this after the others); "
           "`BENCH_STATS=0` skips it; `BENCH_STATS_RUNS` sets the bakeoff runs.", ""]
    return "\n".join(md)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=".build/product/release/bakeoff", help="the bakeoff binary")
    p.add_argument("--out", default="out/bench")
    p.add_argument("--markdown", help="write the section into this Markdown file")
    p.add_argument("--metrics", type=int, default=100)
    p.add_argument("--users", type=int, default=10_000, help="users per arm")
    p.add_argument("--runs", type=int, default=11, help="timed bakeoff runs")
    p.add_argument("--gbstats-runs", type=int, default=5, help="timed gbstats calls")
    p.add_argument("--in-process-runs", type=int, default=200, help="bakeoff's in-process timed runs (--benchmark)")
    p.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: do not pin)")
    p.add_argument("--seed", type=int, default=20261124)
    args = p.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})  # bakeoff's processes inherit it
    os.makedirs(args.out, exist_ok=True)
    started = machine()

    log(f"drawing {args.metrics} metrics x 2 arms x {args.users:,} users")
    data = generate(args.metrics, args.users, args.seed)
    csv_path, config_path = write_inputs(data, args.users, args.out)

    log(f"gbstats process_experiment_results: 1 warm-up + {args.gbstats_runs} timed calls")
    results, gb_times = time_gbstats(gbstats_input(data, args.users, sequential=False), args.gbstats_runs)
    _, gb_seq_times = time_gbstats(gbstats_input(data, args.users, sequential=True), args.gbstats_runs)
    gb = gbstats_results(results)

    # No multiple-comparison correction: gbstats reports each metric's own test, and so must bakeoff here.
    command = [args.bin, "analyze", "--summary", csv_path, "--config", config_path, "--format", "json",
               "--correction", "none"]
    log(f"{' '.join(command)}: 1 warm-up + {args.runs} timed runs")
    report, bk_times = run_bakeoff(command, args.runs, os.path.join(args.out, "stats.bakeoff.json"))

    in_process = bakeoff_in_process(command, args.in_process_runs)
    res = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()), "command": os.environ.get("BENCH_COMMAND", "make bench"),
        "cpu": args.cpu, "machine": started,
        "inputs": {"metrics": args.metrics, "users": args.users, "seed": args.seed, "summary_csv": csv_path,
                   "config": config_path,
                   "kinds": {k: sum(1 for m in data if m["kind"] == k) for k in ("proportion", "ratio", "cuped", "mean")}},
        "gbstats": {"runs_s": gb_times, "median_s": statistics.median(gb_times)},
        "gbstats_sequential": {"runs_s": gb_seq_times, "median_s": statistics.median(gb_seq_times)},
        "bakeoff": {"runs_s": bk_times, "median_s": statistics.median(bk_times), "command": command},
        "bakeoff_in_process": in_process,
    }
    # The target compares like with like: both in process. The whole-process ratio is shown beside it.
    res["ratio"] = res["gbstats"]["median_s"] / in_process["median_s"]
    res["ratio_whole_process"] = res["gbstats"]["median_s"] / res["bakeoff"]["median_s"]
    res["met"] = res["ratio"] >= TARGET_RATIO and res["ratio_whole_process"] >= TARGET_RATIO
    res["agreement"] = agreement(data, report, gb)
    with open(os.path.join(args.out, "stats.json"), "w") as fh:
        json.dump(res, fh, indent=1)
    section = markdown(res)
    print(section)
    if args.markdown:
        write_section(args.markdown, section, SECTION_TITLE)
        log(f"wrote the section into {args.markdown}")
    a = res["agreement"]
    log(f"gbstats {res['gbstats']['median_s'] * 1000:.1f} ms, bakeoff {in_process['median_s'] * 1000:.2f} ms in process "
        f"({res['bakeoff']['median_s'] * 1000:.1f} ms whole process): {res['ratio']:.0f}x / {res['ratio_whole_process']:.1f}x (target {TARGET_RATIO:.0f}x: {'met' if res['met'] else 'NOT met'}); "
        f"agreement {a['agree']}/{a['checked']}, CUPED not applied {len(a['cuped_not_applied'])}, "
        f"disagree {len(a['disagree'])}, missing {len(a['missing'])}")
    if a["disagree"] or a["missing"]:
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"stats.py: {e}", file=sys.stderr)
        sys.exit(1)
