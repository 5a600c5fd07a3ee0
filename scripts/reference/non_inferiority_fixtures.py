#!/usr/bin/env python3
"""Reference values for the one-sided Welch non-inferiority test (NonInferiority.welch).

Run from the package root (idempotent: fixed seed, same output):

    .venv/bin/python scripts/reference/non_inferiority_fixtures.py

Writes Tests/BakeoffStatisticsTests/Fixtures/non_inferiority.json. Versions are printed and
recorded in "generator" (committed file: statsmodels 0.15, scipy 1.17). Every float is written
with repr, so it round-trips exactly.

Absolute margins come from statsmodels:

    cm = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))    # difference = t - c
    higher_is_worse: cm.ttest_ind(alternative="smaller", usevar="unequal", value=+margin)
                     cm.tconfint_diff(alpha, alternative="smaller", usevar="unequal")[1]  (upper)
    lower_is_worse:  cm.ttest_ind(alternative="larger",  usevar="unequal", value=-margin)
                     cm.tconfint_diff(alpha, alternative="larger",  usevar="unequal")[0]  (lower)

H0 is "treatment is worse by at least the margin": d >= +margin (higher is worse) or
d <= -margin (lower is worse). statsmodels' "smaller"/"larger" name H1 relative to `value`.

Relative margins (a fraction of the control mean) have no statsmodels counterpart; they come
from an independent numpy/scipy computation of the documented formula: the lift
(m_t - m_c) / m_c, the delta-method variance var_t / (m_c^2 n_t) + var_c m_t^2 / (m_c^4 n_c),
Welch–Satterthwaite df of the absolute difference, and scipy.stats.t cdf / sf / ppf.
"""

import json
import os
import sys

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures", "non_inferiority.json")
GENERATOR = (
    f"scripts/reference/non_inferiority_fixtures.py; statsmodels {statsmodels.__version__}, "
    f"scipy {scipy.__version__}, numpy {np.__version__}"
)


def f(x):
    return float(x)


def moments(a):
    return {"n": f(len(a)), "mean": f(np.mean(a)), "variance": f(np.var(a, ddof=1))}


def absolute_case(control, treatment, margin, direction, alpha):
    cm = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    if direction == "higherIsWorse":
        alternative, value = "smaller", margin
    else:
        alternative, value = "larger", -margin
    stat, p, df = cm.ttest_ind(alternative=alternative, usevar="unequal", value=value)
    low, high = cm.tconfint_diff(alpha=alpha, alternative=alternative, usevar="unequal")
    bound = high if direction == "higherIsWorse" else low
    return {"difference": f(np.mean(treatment) - np.mean(control)), "statistic": f(stat), "p_value": f(p),
            "df": f(df), "bound": f(bound)}


def relative_case(control, treatment, margin, direction, alpha):
    nc, nt = len(control), len(treatment)
    mc, mt = np.mean(control), np.mean(treatment)
    sc, st = np.var(control, ddof=1), np.var(treatment, ddof=1)
    a, b = sc / nc, st / nt
    df = (a + b) ** 2 / (a * a / (nc - 1) + b * b / (nt - 1))
    lift = (mt - mc) / mc
    se = np.sqrt(st / (mc**2 * nt) + sc * mt**2 / (mc**4 * nc))
    boundary = margin if direction == "higherIsWorse" else -margin
    stat = (lift - boundary) / se
    crit = stats.t.ppf(1 - alpha, df)
    if direction == "higherIsWorse":
        p, bound = stats.t.cdf(stat, df), lift + crit * se
    else:
        p, bound = stats.t.sf(stat, df), lift - crit * se
    return {"difference": f(lift), "statistic": f(stat), "p_value": f(p), "df": f(df), "bound": f(bound)}


def main():
    print(GENERATOR)
    rng = np.random.default_rng(20240604)
    # (label, direction, sampler control, sampler treatment, n_c, n_t, absolute margins, relative margins)
    designs = [
        ("p95 latency ms", "higherIsWorse", lambda n: rng.lognormal(6, 0.5, n), lambda n: rng.lognormal(6.05, 0.5, n),
         400, 380, [0.0, 20.0, 60.0, 200.0], [0.0, 0.05, 0.10, 0.15]),
        ("escalation rate", "higherIsWorse", lambda n: rng.binomial(1, 0.08, n), lambda n: rng.binomial(1, 0.085, n),
         5000, 5000, [0.0, 0.005, 0.01, 0.02], [0.1, 0.25]),
        ("completion rate", "lowerIsWorse", lambda n: rng.binomial(1, 0.75, n), lambda n: rng.binomial(1, 0.74, n),
         3000, 2000, [0.0, 0.01, 0.02, 0.05], [0.01, 0.03, 0.05]),
        ("tiny unequal variance", "higherIsWorse", lambda n: rng.normal(10, 3, n), lambda n: rng.normal(10.2, 0.5, n),
         3, 6, [0.5, 2.0, 10.0], [0.05, 0.5]),
        ("small satisfaction", "lowerIsWorse", lambda n: rng.integers(1, 6, n).astype(float),
         lambda n: rng.integers(1, 6, n).astype(float), 12, 9, [0.1, 1.0, 3.0], [0.1, 0.5]),
        ("big cost dollars", "higherIsWorse", lambda n: rng.gamma(2, 0.002, n), lambda n: rng.gamma(2, 0.00201, n),
         40000, 40000, [0.0, 1e-5, 1e-4], [0.01, 0.02, 0.05]),
        ("improvement beats margin", "lowerIsWorse", lambda n: rng.normal(0.5, 0.2, n),
         lambda n: rng.normal(0.6, 0.2, n), 800, 900, [-0.05, 0.0, 0.02], [-0.1, 0.0, 0.05]),
    ]
    cases = []
    for label, direction, sc, st, nc, nt, abs_margins, rel_margins in designs:
        control, treatment = sc(nc).astype(float), st(nt).astype(float)
        for alpha in (0.05, 0.025, 0.1):
            for scale, margins, fn in (("absolute", abs_margins, absolute_case), ("relative", rel_margins, relative_case)):
                for margin in margins:
                    case = {"label": label, "direction": direction, "scale": scale, "margin": margin, "alpha": alpha,
                            "control": moments(control), "treatment": moments(treatment)}
                    case.update(fn(control, treatment, margin, direction, alpha))
                    cases.append(case)
    shown = sum(c["p_value"] < c["alpha"] for c in cases)
    print(f"{len(cases)} cases, non-inferiority shown in {shown}", file=sys.stderr)
    assert 0 < shown < len(cases)
    with open(OUT, "w") as fh:
        json.dump({"generator": GENERATOR, "cases": cases}, fh, indent=1, allow_nan=False)
        fh.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
