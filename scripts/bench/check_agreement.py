#!/usr/bin/env python3
"""Check that scripts/bench/pandas_analysis.py and `bakeoff analyze --format json` did the same work.

    .venv/bin/python scripts/bench/check_agreement.py PANDAS.json BAKEOFF.json [--mean-tol 1e-9] [--p-tol 1e-6]

Compares users per variant, the SRM p-value, and per metric and variant the mean, users and units (means
to --mean-tol, absolute), and the p-value (to --p-tol, absolute). Quantiles are reported (largest
relative difference) but not enforced: bakeoff's quantiles are exact only up to 2^20 values per variant
and within 0.005% beyond. Prints one JSON line {"agree": bool, "checked": n, "mismatches": [...],
"max_mean_diff": ..., "max_p_diff": ..., "max_quantile_rel_diff": ...} and exits 1 on disagreement.
"""

import argparse
import json
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pandas_json")
    parser.add_argument("bakeoff_json")
    parser.add_argument("--mean-tol", type=float, default=1e-9)
    parser.add_argument("--p-tol", type=float, default=1e-6)
    args = parser.parse_args()
    pd_res = json.load(open(args.pandas_json))
    bk = json.load(open(args.bakeoff_json))

    mismatches = []
    checked = 0
    max_mean = max_p = max_q = 0.0

    def num(label, a, b, tol):
        nonlocal checked
        checked += 1
        if a is None or b is None:
            if a is not b:
                mismatches.append({"what": label, "pandas": a, "bakeoff": b})
            return 0.0
        diff = abs(a - b)
        if not diff <= tol:
            mismatches.append({"what": label, "pandas": a, "bakeoff": b, "diff": diff})
        return diff

    bk_users = {v["name"]: v["users"] for v in bk["variants"]}
    for v, n in pd_res["users"].items():
        num(f"users[{v}]", n, bk_users.get(v), 0)
    max_p = max(max_p, num("srm_p_value", pd_res["srm_p_value"], bk["srm"]["p_value"], args.p_tol))

    bk_metrics = {m["name"]: m for m in bk["metrics"]}
    for name, pm in pd_res["metrics"].items():
        bm = bk_metrics.get(name)
        if bm is None:
            mismatches.append({"what": f"{name} missing from bakeoff report"})
            continue
        for side in ("control", "treatment"):
            variant = bk["control"] if side == "control" else bm["variant"]
            ps = pm[variant]
            max_mean = max(max_mean, num(f"{name}.{side}.mean", ps["mean"], bm[side]["mean"], args.mean_tol))
            num(f"{name}.{side}.users", ps["users"], bm[side]["users"], 0)
            num(f"{name}.{side}.units", ps["units"], bm[side]["units"], 0)
        max_p = max(max_p, num(f"{name}.p_value", pm["p_value"], bm["p_value"], args.p_tol))

    for q in bk.get("quantiles", []):
        for side in ("control", "treatment"):
            variant = bk["control"] if side == "control" else q["variant"]
            a, b = pd_res["quantiles"][q["name"]][variant], q[side]["value"]
            if a and b is not None:
                max_q = max(max_q, abs(a - b) / abs(a))

    result = {"agree": not mismatches, "checked": checked, "mismatches": mismatches,
              "max_mean_diff": max_mean, "max_p_diff": max_p, "max_quantile_rel_diff": max_q}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    sys.exit(0 if not mismatches else 1)


if __name__ == "__main__":
    main()
