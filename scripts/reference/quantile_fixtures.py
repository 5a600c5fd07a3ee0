#!/usr/bin/env python3
"""Reference values for QuantileTest, from gbstats' QuantileClusteredStatistic / QuantileStatistic.

Run from the package root (idempotent: same seed, same output):

    .venv/bin/python scripts/reference/quantile_fixtures.py

Writes Tests/BakeoffStatisticsTests/Fixtures/gbstats_quantile.json and prints the versions used.

gbstats 0.8.0 takes the quantile sufficient statistics as given (GrowthBook computes them in
SQL), so the order statistics are computed here with the same rules QuantileTest documents:
with n events sorted x_(1) <= ... <= x_(n) and z = norm.ppf(0.975),
  quantile = x_(ceil(n p)), lower = x_(ceil(n p - z sqrt(n p (1-p)))), upper = x_(ceil(n p + z sqrt(n p (1-p)))),
  n_star = n, and per user (events <= quantile, events) for the cluster sums.
gbstats then gives the variances (QuantileClusteredStatistic.variance / n, QuantileStatistic.variance / n)
and the point estimate and variance of the absolute and relative difference (TwoSidedTTest).
The interval and p-value use the normal distribution (scipy.stats.norm), not gbstats' Welch t.
"""

import json
import math
import os

import numpy as np
import scipy
import scipy.stats

import gbstats
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import QuantileClusteredStatistic, QuantileStatistic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures", "gbstats_quantile.json")
GB_VERSION = getattr(gbstats, "__version__", "0.8.0")
GENERATOR = (
    f"scripts/reference/quantile_fixtures.py; gbstats {GB_VERSION}, scipy {scipy.__version__}, "
    f"numpy {np.__version__}"
)
Z = float(scipy.stats.norm.ppf(1.0 - 0.5 * 0.05))


def users_data(rng, n_users, max_requests, log_mean, user_sd, event_sd):
    users = []
    for _ in range(n_users):
        k = int(rng.integers(1, max_requests + 1))
        u = rng.normal(0.0, user_sd)
        users.append([round(float(math.exp(log_mean + u + rng.normal(0.0, event_sd))), 1) for _ in range(k)])
    return users


def order_stat(xs, rank):
    i = min(max(int(math.ceil(rank)), 1), len(xs))
    return xs[i - 1]


def summarize(users, p):
    xs = sorted(v for u in users for v in u)
    n = len(xs)
    q = order_stat(xs, n * p)
    half = Z * math.sqrt(n * p * (1.0 - p))
    lower = order_stat(xs, n * p - half)
    upper = order_stat(xs, n * p + half)
    s = np.array([sum(1 for v in u if v <= q) for u in users], dtype=float)
    c = np.array([len(u) for u in users], dtype=float)
    common = dict(n=n, n_star=n, nu=p, quantile_hat=q, quantile_lower=lower, quantile_upper=upper)
    clustered = QuantileClusteredStatistic(
        **common,
        main_sum=float(s.sum()), main_sum_squares=float((s * s).sum()),
        denominator_sum=float(c.sum()), denominator_sum_squares=float((c * c).sum()),
        main_denominator_sum_product=float((s * c).sum()), n_clusters=len(users),
    )
    naive = QuantileStatistic(**common)
    out = dict(
        n=n, users=len(users), quantile=q, lower=lower, upper=upper,
        below_sum=float(s.sum()), below_sum_squares=float((s * s).sum()),
        count_sum=float(c.sum()), count_sum_squares=float((c * c).sum()),
        below_count_sum_product=float((s * c).sum()),
        degenerate=bool(clustered._has_zero_variance and n <= Z * Z * max(p / (1 - p), (1 - p) / p)),
    )
    if out["degenerate"]:
        out["variance"] = None
        out["naive_variance"] = None
    else:
        out["variance"] = clustered.variance / n
        out["naive_variance"] = naive.variance / n
    return out, clustered, naive


def test(stat_a, stat_b, relative, alpha):
    t = TwoSidedTTest(stat_a, stat_b, FrequentistConfig(alpha=alpha, difference_type="relative" if relative else "absolute"))
    est = float(t.point_estimate)
    se = float(np.sqrt(t.variance))
    zc = float(scipy.stats.norm.ppf(1 - alpha / 2))
    stat = est / se
    return dict(
        difference=est, standard_error=se, statistic=stat,
        p_value=float(2 * scipy.stats.norm.sf(abs(stat))),
        lower=est - zc * se, upper=est + zc * se, critical_value=zc,
    )


def main():
    rng = np.random.default_rng(20180404)
    datasets = [
        # label, control args, treatment args
        ("clustered", (300, 10, 6.0, 0.8, 0.3), (300, 10, 6.0, 0.8, 0.3)),
        ("effect", (250, 8, 6.0, 0.6, 0.4), (280, 8, 6.15, 0.6, 0.4)),
        ("one_request_each", (400, 1, 5.0, 0.5, 0.5), (380, 1, 5.1, 0.5, 0.5)),
        ("small", (40, 4, 6.0, 0.5, 0.5), (45, 4, 6.0, 0.5, 0.5)),
    ]
    cases = []
    for label, a_args, b_args in datasets:
        control = users_data(rng, *a_args)
        treatment = users_data(rng, *b_args)
        for p in [0.5, 0.95, 0.99]:
            ca, sca, nva = summarize(control, p)
            tr, sct, nvt = summarize(treatment, p)
            case = dict(dataset=label, level=p, control_summary=ca, treatment_summary=tr)
            if not (ca["degenerate"] or tr["degenerate"]):
                for alpha in [0.05, 0.1]:
                    case[f"tests_{int(alpha * 100)}"] = dict(
                        absolute=test(sca, sct, False, alpha), relative=test(sca, sct, True, alpha),
                        naive_absolute=test(nva, nvt, False, alpha),
                    )
            cases.append(case)
        cases[-3]["control_users"] = control
        cases[-3]["treatment_users"] = treatment
    with open(OUT, "w") as f:
        json.dump(dict(generator=GENERATOR, z=Z, cases=cases), f, separators=(",", ":"))
        f.write("\n")
    print(GENERATOR)
    print(f"wrote {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
