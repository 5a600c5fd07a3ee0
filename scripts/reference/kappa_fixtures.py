#!/usr/bin/env python3
"""Reference values for Cohen's kappa of two raters (BakeoffStatistics `CohenKappa`): statsmodels
`statsmodels.stats.inter_rater.cohens_kappa` on contingency tables (rater one in rows, rater two in columns),
simple and with linear and quadratic weights on the category scores 0, 1, ..., k-1 (`wt="linear"` and
`wt="quadratic"`): kappa, its asymptotic standard error std_kappa, the standard error under kappa = 0
(std_kappa0), kappa_max, the z test of kappa = 0 (z_value, one- and two-sided p), and kappa_low/kappa_upp at
several alphas. statsmodels' `alpha` is one-sided (its default 0.025 is a 95% interval):
kappa -/+ norm.isf(alpha) * std_kappa.

Tables where kappa is undefined (one category only, or an empty table) are left out: statsmodels returns nan
with a warning there and `CohenKappa` returns nil (its tests check that separately).

Writes Tests/BakeoffStatisticsTests/Fixtures/kappa.json.
"""
import json
import os
import warnings

import numpy as np
import scipy
import statsmodels
from statsmodels.stats.inter_rater import KappaResults, cohens_kappa

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures", "kappa.json")
GENERATOR = (f"scripts/reference/kappa_fixtures.py; statsmodels {statsmodels.__version__}, "
             f"scipy {scipy.__version__}, numpy {np.__version__}")
ALPHAS = [0.025, 0.05, 0.005, 0.1]


def tables():
    """Hand-picked tables (textbook examples, zeros, perfect and opposite agreement) and random ones."""
    fixed = [
        [[20, 5], [10, 15]],                     # Wikipedia's example: kappa 0.4
        [[45, 15], [25, 15]],
        [[25, 35], [5, 35]],
        [[10, 0], [0, 10]],                      # perfect agreement
        [[0, 10], [10, 0]],                      # perfect disagreement: kappa -1
        [[0, 7], [0, 0]],                        # each rater one category, different ones: kappa 0
        [[5, 0], [3, 0]],                        # rater two uses one category
        [[1, 0], [0, 1]],
        [[1, 2], [3, 4]],
        [[22, 2, 2], [3, 19, 1], [1, 3, 27]],
        [[5, 0, 0], [0, 0, 0], [0, 0, 5]],       # a category neither uses
        [[0, 4, 0], [0, 0, 6], [3, 0, 0]],
        [[12, 3, 1], [0, 0, 0], [2, 5, 9]],
        [[88, 14, 18], [10, 40, 10], [2, 6, 12]],
        [[0, 0, 1], [0, 0, 0], [1, 0, 0]],
        # Fleiss, Levin and Paik, 3rd ed., table 18.7 (as in statsmodels' tests).
        [[106, 10, 4], [22, 28, 10], [2, 12, 6]],
        [[11, 2, 19, 4], [6, 7, 2, 1], [1, 4, 9, 3], [0, 1, 3, 7]],
    ]
    rng = np.random.default_rng(20250611)
    out = [np.array(t, dtype=float) for t in fixed]
    for k in (2, 3, 3, 3, 4, 5, 6):
        for n in (3, 8, 20, 60, 250, 2000, 40000):
            for agreement in (0.0, 0.4, 0.8, 0.97):
                # A table drawn from a mix of independent raters and agreeing ones, with skewed margins.
                p_row = rng.dirichlet(np.full(k, 0.8))
                p_col = rng.dirichlet(np.full(k, 0.8))
                p = (1 - agreement) * np.outer(p_row, p_col) + agreement * np.diag(p_row)
                p = p.ravel() / p.sum()
                t = rng.multinomial(n, p).reshape(k, k).astype(float)
                out.append(t)
    return out


def defined(t):
    nobs = t.sum()
    if nobs == 0:
        return False
    row = t.sum(1) / nobs
    col = t.sum(0) / nobs
    return not np.isclose((row * col).sum(), 1.0, rtol=0, atol=1e-15)


def result(t, wt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = cohens_kappa(t) if wt is None else cohens_kappa(t, wt=wt)
        lows, highs = [], []
        for a in ALPHAS:
            ra = KappaResults(kind=r.kind, kappa=r.kappa, kappa_max=r.kappa_max, weights=r.weights,
                              var_kappa=r.var_kappa, var_kappa0=r.var_kappa0, alpha=a)
            lows.append(float(ra.kappa_low))
            highs.append(float(ra.kappa_upp))
    values = {"kappa": float(r.kappa), "std_kappa": float(r.std_kappa), "std_kappa0": float(r.std_kappa0),
              "kappa_max": float(r.kappa_max), "z_value": float(r.z_value),
              "pvalue_one_sided": float(r.pvalue_one_sided), "pvalue_two_sided": float(r.pvalue_two_sided),
              "kappa_low": lows, "kappa_upp": highs}
    # nan (a variance rounded below zero, 0/0) is written as null.
    for key, v in list(values.items()):
        if isinstance(v, float) and not np.isfinite(v):
            values[key] = None
        elif isinstance(v, list):
            values[key] = [x if np.isfinite(x) else None for x in v]
    return values


def main():
    cases = []
    undefined = 0
    for t in tables():
        if not defined(t):
            undefined += 1
            continue
        for wt in (None, "linear", "quadratic"):
            if wt is not None and t.shape[0] == 2 and wt == "quadratic":
                continue  # the same as linear for two categories
            case = {"table": t.astype(int).tolist(), "weights": wt or "none"}
            case.update(result(t, wt))
            cases.append(case)
    with open(OUT, "w") as f:
        json.dump({"generator": GENERATOR, "alphas": ALPHAS, "cases": cases}, f, indent=None, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    kinds = {w: sum(1 for c in cases if c["weights"] == w) for w in ("none", "linear", "quadratic")}
    print(f"{len(cases)} kappa cases ({kinds}), {undefined} undefined tables left out -> {OUT}")


if __name__ == "__main__":
    main()
