#!/usr/bin/env python3
"""Reference values for SequentialTest: gbstats' SequentialTwoSidedTTest over a grid.

Run from the package root (idempotent: fixed seed, same output):

    .venv/bin/python scripts/reference/sequential_fixtures.py

Writes Tests/BakeoffStatisticsTests/Fixtures/gbstats_sequential.json. The committed file was made
with gbstats 0.8.0 (versions are printed and recorded in "generator"). Every float is written
with repr, so it round-trips exactly.

The grid: three statistic kinds (SampleMeanStatistic, ProportionStatistic, RatioStatistic),
group sizes from 20 to 1e6 (some unequal), effects including zero, alpha 0.05 and 0.1, tuning
parameter N* 1000 / 5000 / 100000, relative and absolute differences. Sufficient statistics are
synthesized from target moments (not drawn per user), so n = 1e6 costs nothing; the test feeds
exactly these sums to the Swift code. The fixed-horizon TwoSidedTTest result is recorded too.

An overflow warning from numpy (exp in the e-value) is expected: gbstats then reports p = 0.
"""

import json
import os
import sys

import numpy as np
import scipy

import gbstats
from gbstats.frequentist.tests import FrequentistConfig, SequentialConfig, SequentialTwoSidedTTest, TwoSidedTTest
from gbstats.models.statistics import ProportionStatistic, RatioStatistic, SampleMeanStatistic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures", "gbstats_sequential.json")
VERSION = getattr(gbstats, "__version__", None)
if VERSION is None:
    from importlib.metadata import version

    VERSION = version("gbstats")
GENERATOR = (
    f"scripts/reference/sequential_fixtures.py; gbstats {VERSION}, scipy {scipy.__version__}, "
    f"numpy {np.__version__}"
)

SIZES = [(20, 20), (20, 35), (100, 130), (1000, 1000), (10_000, 9_000), (100_000, 100_000), (1_000_000, 950_000)]
LIFTS = [0.0, 0.005, 0.03, 0.12, -0.3]  # treatment mean / control mean - 1
ALPHAS = [0.05, 0.1]
TUNING = [1000.0, 5000.0, 100_000.0]
TYPES = ["relative", "absolute"]


def f(x):
    return float(x)


def mean_stat(n, mu, var):
    s = n * mu
    return SampleMeanStatistic(n=n, sum=f(s), sum_squares=f((n - 1) * var + s * s / n))


def proportion_stat(n, p):
    return ProportionStatistic(n=n, sum=f(round(n * p)))


def ratio_stat(n, mu_m, var_m, mu_d, var_d, cov):
    m, d = mean_stat(n, mu_m, var_m), mean_stat(n, mu_d, var_d)
    return RatioStatistic(n=n, m_statistic=m, d_statistic=d, m_d_sum_of_products=f((n - 1) * cov + n * mu_m * mu_d))


def stat_json(s):
    if isinstance(s, RatioStatistic):
        return {"n": s.n, "numerator": stat_json(s.m_statistic), "denominator": stat_json(s.d_statistic),
                "sum_of_products": s.m_d_sum_of_products, "mean": f(s.mean), "variance": f(s.variance)}
    if isinstance(s, ProportionStatistic):
        return {"n": s.n, "sum": s.sum, "sum_squares": s.sum, "mean": f(s.mean), "variance": f(s.variance)}
    return {"n": s.n, "sum": s.sum, "sum_squares": s.sum_squares, "mean": f(s.mean), "variance": f(s.variance)}


def groups(kind, rng, nc, nt, lift):
    """(control, treatment) statistics with treatment mean about (1 + lift) times control's."""
    if kind == "mean":
        mu, sd = rng.uniform(1, 5), rng.uniform(0.5, 4)
        return mean_stat(nc, mu, sd * sd), mean_stat(nt, mu * (1 + lift), (sd * rng.uniform(0.8, 1.25)) ** 2)
    if kind == "proportion":
        p = rng.uniform(0.05, 0.6)
        return proportion_stat(nc, p), proportion_stat(nt, p * (1 + lift))
    # ratio: tokens per request style, numerator correlated with denominator
    mu_d, sd_d = rng.uniform(1.5, 6), rng.uniform(0.5, 3)
    r, sd_m, corr = rng.uniform(0.2, 3), rng.uniform(0.5, 5), rng.uniform(0.1, 0.8)

    def one(n, ratio):
        mu_m = ratio * mu_d
        return ratio_stat(n, mu_m, sd_m * sd_m, mu_d, sd_d * sd_d, corr * sd_m * sd_d)

    return one(nc, r), one(nt, r * (1 + lift))


def main():
    rng = np.random.default_rng(20260415)
    cases = []
    for kind in ["mean", "proportion", "ratio"]:
        for nc, nt in SIZES:
            for lift in LIFTS:
                control, treatment = groups(kind, rng, nc, nt, lift)
                results = []
                for alpha in ALPHAS:
                    for tuning in TUNING:
                        for dtype in TYPES:
                            seq = SequentialTwoSidedTTest(
                                control, treatment,
                                SequentialConfig(difference_type=dtype, alpha=alpha, sequential_tuning_parameter=tuning))
                            fixed = TwoSidedTTest(control, treatment, FrequentistConfig(difference_type=dtype, alpha=alpha))
                            r, fr = seq.compute_result(), fixed.compute_result()
                            assert r.error_message is None, (kind, nc, nt, lift, r.error_message)
                            results.append({
                                "alpha": alpha, "tuning": tuning, "difference_type": dtype,
                                "point_estimate": f(r.expected), "standard_error": f(np.sqrt(seq.variance)),
                                "ci_low": f(r.ci[0]), "ci_high": f(r.ci[1]), "p_value": f(r.p_value),
                                "fixed_ci_low": f(fr.ci[0]), "fixed_ci_high": f(fr.ci[1]), "fixed_p_value": f(fr.p_value),
                            })
                cases.append({"label": f"{kind} n={nc}/{nt} lift={lift}", "kind": kind,
                              "control": stat_json(control), "treatment": stat_json(treatment), "results": results})
    payload = {"generator": GENERATOR, "cases": cases}
    with open(OUT, "w") as fh:
        # One result per line: readable diffs at a third of the indented size.
        fh.write('{"generator": %s, "cases": [\n' % json.dumps(GENERATOR))
        for i, case in enumerate(cases):
            head = {k: v for k, v in case.items() if k != "results"}
            fh.write(json.dumps(head, allow_nan=False)[:-1] + ', "results": [\n')
            fh.write(",\n".join(" " + json.dumps(r, allow_nan=False) for r in case["results"]))
            fh.write("]}" + (",\n" if i + 1 < len(cases) else "\n"))
        fh.write("]}\n")
    json.loads(open(OUT).read())  # well-formed
    results = [r for c in cases for r in c["results"]]
    significant = sum(1 for r in results if r["p_value"] < r["alpha"])
    print(GENERATOR, file=sys.stderr)
    print(f"wrote {os.path.relpath(OUT, ROOT)}: {len(cases)} cases, {len(results)} results, {significant} with p < alpha", file=sys.stderr)


if __name__ == "__main__":
    main()
