#!/usr/bin/env python3
"""Reference values for CUPED: gbstats' TwoSidedTTest on RegressionAdjustedStatistic over a grid.

Run from the package root (idempotent: fixed seed, same output):

    .venv/bin/python scripts/reference/cuped_fixtures.py

Writes Tests/BakeoffStatisticsTests/Fixtures/gbstats_cuped.json. The committed file was made
with gbstats 0.8.0 (versions are printed and recorded in "generator"). Every float is written
with repr, so it round-trips exactly.

The grid: group sizes from 20 to 1e6 (some unequal), within-arm correlation of the post value y
with the pre-experiment value x of 0, 0.5 and 0.9, lifts including zero, alpha 0.05 and 0.1,
relative and absolute differences. Post and pre parts are SampleMeanStatistic. Sufficient
statistics are synthesized from target moments (not drawn per user), with the treatment's pre
mean off the control's by a random pre-period imbalance, so the pooled theta includes a
between-arm term as it does in real data. Two small cases are drawn per user and the users are
recorded too, to test accumulation. gbstats' pooled theta, the adjusted means and variances and
the test result (point estimate, CI, p-value, dof) are recorded.
"""

import json
import os
import sys

import numpy as np
import scipy

import gbstats
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import RegressionAdjustedStatistic, SampleMeanStatistic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures", "gbstats_cuped.json")
VERSION = getattr(gbstats, "__version__", None)
if VERSION is None:
    from importlib.metadata import version

    VERSION = version("gbstats")
GENERATOR = (
    f"scripts/reference/cuped_fixtures.py; gbstats {VERSION}, scipy {scipy.__version__}, "
    f"numpy {np.__version__}"
)

SIZES = [(20, 20), (20, 35), (100, 130), (1000, 1000), (10_000, 9_000), (100_000, 100_000), (1_000_000, 950_000)]
RHOS = [0.0, 0.5, 0.9]
LIFTS = [0.0, 0.01, 0.05, -0.2]  # treatment post mean / control post mean - 1
ALPHAS = [0.05, 0.1]
TYPES = ["relative", "absolute"]


def f(x):
    return float(x)


def arm(n, mu_y, var_y, mu_x, var_x, cov):
    sy, sx = n * mu_y, n * mu_x
    return RegressionAdjustedStatistic(
        n=n,
        post_statistic=SampleMeanStatistic(n=n, sum=f(sy), sum_squares=f((n - 1) * var_y + sy * sy / n)),
        pre_statistic=SampleMeanStatistic(n=n, sum=f(sx), sum_squares=f((n - 1) * var_x + sx * sx / n)),
        post_pre_sum_of_products=f((n - 1) * cov + sy * sx / n),
        theta=0,
    )


def from_users(users):
    y, x = users[:, 0], users[:, 1]
    n = len(users)
    return RegressionAdjustedStatistic(
        n=n,
        post_statistic=SampleMeanStatistic(n=n, sum=f(y.sum()), sum_squares=f((y * y).sum())),
        pre_statistic=SampleMeanStatistic(n=n, sum=f(x.sum()), sum_squares=f((x * x).sum())),
        post_pre_sum_of_products=f((y * x).sum()),
        theta=0,
    )


def sums(s):
    return {"n": s.n, "sum": s.sum, "sum_squares": s.sum_squares}


def arm_json(s):
    return {"n": s.n, "post": sums(s.post_statistic), "pre": sums(s.pre_statistic),
            "sum_of_products": s.post_pre_sum_of_products}


def copy(s):
    return RegressionAdjustedStatistic(
        n=s.n, post_statistic=s.post_statistic, pre_statistic=s.pre_statistic,
        post_pre_sum_of_products=s.post_pre_sum_of_products, theta=0)


def results(control, treatment):
    out = []
    theta = None
    for alpha in ALPHAS:
        for dtype in TYPES:
            # compute_theta writes theta into the statistics: fresh copies each time.
            a, b = copy(control), copy(treatment)
            test = TwoSidedTTest(a, b, FrequentistConfig(difference_type=dtype, alpha=alpha))
            r = test.compute_result()
            assert r.error_message is None, r.error_message
            # theta == 0 makes gbstats fall back to the post statistics (no theta attribute then).
            theta = f(getattr(test.stat_a, "theta", 0.0))
            out.append({
                "alpha": alpha, "difference_type": dtype, "point_estimate": f(r.expected),
                "ci_low": f(r.ci[0]), "ci_high": f(r.ci[1]), "p_value": f(r.p_value), "dof": f(test.dof),
                "standard_error": f(np.sqrt(test.variance)),
                "control_mean": f(test.stat_a.mean), "control_variance": f(test.stat_a.variance),
                "treatment_mean": f(test.stat_b.mean), "treatment_variance": f(test.stat_b.variance),
            })
    return theta, out


def main():
    rng = np.random.default_rng(20260416)
    cases = []
    for nc, nt in SIZES:
        for rho in RHOS:
            for lift in LIFTS:
                mu_x, sd_x = rng.uniform(1, 5), rng.uniform(0.5, 4)
                mu_y, sd_y = mu_x * rng.uniform(0.8, 1.3), rng.uniform(0.5, 4)
                # Pre-period imbalance of the order of the standard error of the pre mean.
                imbalance = rng.normal() * sd_x * np.sqrt(1 / nc + 1 / nt)
                sd_yt = sd_y * rng.uniform(0.8, 1.25)
                control = arm(nc, mu_y, sd_y ** 2, mu_x, sd_x ** 2, rho * sd_y * sd_x)
                treatment = arm(nt, mu_y * (1 + lift), sd_yt ** 2, mu_x + imbalance, sd_x ** 2, rho * sd_yt * sd_x)
                theta, res = results(control, treatment)
                cases.append({"label": f"n={nc}/{nt} rho={rho} lift={lift}", "rho": rho,
                              "control": arm_json(control), "treatment": arm_json(treatment),
                              "theta": theta, "results": res})
    drawn = []
    for label, (nc, nt), rho in [("drawn n=40/50 rho=0.7", (40, 50), 0.7), ("drawn n=60/45 rho=-0.4", (60, 45), -0.4)]:
        cov = [[4.0, rho * 2 * 1.5], [rho * 2 * 1.5, 2.25]]
        users_c = rng.multivariate_normal([10.0, 9.0], cov, size=nc).round(3)
        users_t = rng.multivariate_normal([10.6, 9.1], cov, size=nt).round(3)
        control, treatment = from_users(users_c), from_users(users_t)
        theta, res = results(control, treatment)
        drawn.append({"label": label, "rho": rho, "control": arm_json(control), "treatment": arm_json(treatment),
                      "control_users": users_c.tolist(), "treatment_users": users_t.tolist(),
                      "theta": theta, "results": res})
    all_cases = cases + drawn
    with open(OUT, "w") as fh:
        fh.write('{"generator": %s, "cases": [\n' % json.dumps(GENERATOR))
        for i, case in enumerate(all_cases):
            head = {k: v for k, v in case.items() if k != "results"}
            fh.write(json.dumps(head, allow_nan=False)[:-1] + ', "results": [\n')
            fh.write(",\n".join(" " + json.dumps(r, allow_nan=False) for r in case["results"]))
            fh.write("]}" + (",\n" if i + 1 < len(all_cases) else "\n"))
        fh.write("]}\n")
    json.loads(open(OUT).read())  # well-formed
    results_all = [r for c in all_cases for r in c["results"]]
    significant = sum(1 for r in results_all if r["p_value"] < r["alpha"])
    print(GENERATOR, file=sys.stderr)
    print(f"wrote {os.path.relpath(OUT, ROOT)}: {len(all_cases)} cases, {len(results_all)} results, "
          f"{significant} with p < alpha", file=sys.stderr)


if __name__ == "__main__":
    main()
