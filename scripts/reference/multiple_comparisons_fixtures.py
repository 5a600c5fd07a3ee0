#!/usr/bin/env python3
"""Reference values for MultipleComparisons and MannWhitney, from statsmodels and scipy.

Run from the package root (idempotent: same seed, same output):

    .venv/bin/python scripts/reference/multiple_comparisons_fixtures.py

Writes Tests/BakeoffStatisticsTests/Fixtures/multiple_comparisons.json and mann_whitney.json and
prints the library versions. Floats are written with repr (exact round trip); NaN is written as null.

- multiple_comparisons.json: statsmodels multipletests(p, method='holm' | 'fdr_bh') adjusted
  p-values. NaN inputs (null) are left out of the family before calling statsmodels, which is the
  documented Swift behaviour (statsmodels itself has no NaN policy).
- mann_whitney.json: scipy mannwhitneyu(x, y, use_continuity=..., alternative=...,
  method='asymptotic') on raw data; ordinal cases also carry counts per level.
"""

import json
import math
import os
import sys

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.multitest import multipletests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures")
GENERATOR = (
    f"scripts/reference/multiple_comparisons_fixtures.py; scipy {scipy.__version__}, "
    f"statsmodels {statsmodels.__version__}, numpy {np.__version__}"
)


def f(x):
    x = float(x)
    return None if math.isnan(x) else x


def write(name, payload):
    payload = {"generator": GENERATOR, **payload}
    path = os.path.join(OUT, name)
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=1, allow_nan=False)
        fh.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)}", file=sys.stderr)


# ---------------------------------------------------------------- multiple comparisons

def adjust(p, method):
    """statsmodels on the non-NaN entries; NaN positions give None."""
    p = [float("nan") if v is None else v for v in p]
    idx = [i for i, v in enumerate(p) if not math.isnan(v)]
    out = [None] * len(p)
    if idx:
        _, corrected, _, _ = multipletests(np.array([p[i] for i in idx]), alpha=0.05, method=method)
        for i, c in zip(idx, corrected):
            out[i] = f(c)
    return out


def multiple_comparisons():
    rng = np.random.default_rng(20240604)
    families = [
        ("single", [0.03]),
        ("single p=1", [1.0]),
        ("single p=0", [0.0]),
        ("two", [0.04, 0.01]),
        ("ties", [0.01, 0.02, 0.02, 0.02, 0.5, 0.01]),
        ("all equal", [0.2] * 5),
        ("p = 1 and near", [1.0, 0.999, 0.6, 1.0]),
        ("unsorted", [0.3, 0.001, 0.04, 0.012, 0.9, 0.0004, 0.049]),
        ("tiny", [1e-300, 3e-20, 1e-10, 0.5]),
        ("with NaN", [0.01, None, 0.03, None, 0.2]),
        ("all NaN", [None, None]),
        ("empty", []),
        ("classic BH example", [0.01, 0.04, 0.03, 0.005, 0.5, 0.9, 0.002, 0.02]),
    ]
    for k in range(40):
        m = int(rng.integers(1, 30))
        kind = k % 4
        if kind == 0:
            p = rng.uniform(0, 1, m)
        elif kind == 1:
            p = rng.uniform(0, 0.1, m)
        elif kind == 2:
            p = np.round(rng.uniform(0, 0.2, m), 2)  # many ties
        else:
            p = 10 ** rng.uniform(-12, 0, m)
        families.append((f"random {k} kind {kind} m {m}", [float(v) for v in p]))
    cases = []
    for label, p in families:
        cases.append({"label": label, "p": p, "holm": adjust(p, "holm"), "fdr_bh": adjust(p, "fdr_bh")})
    write("multiple_comparisons.json", {"cases": cases})


# ---------------------------------------------------------------- Mann-Whitney

def mwu(x, y, alternative, continuity):
    r = stats.mannwhitneyu(x, y, use_continuity=continuity, alternative=alternative, method="asymptotic")
    return {"u": f(r.statistic), "p": f(r.pvalue)}


def mann_whitney():
    rng = np.random.default_rng(7)
    cases = []

    def add(label, x, y, counts=None):
        x = [float(v) for v in x]
        y = [float(v) for v in y]
        results = []
        for alternative in ("two-sided", "greater", "less"):
            for continuity in (True, False):
                results.append({"alternative": alternative, "continuity": continuity, **mwu(x, y, alternative, continuity)})
        case = {"label": label, "x": x, "y": y, "results": results}
        if counts is not None:
            case["x_counts"], case["y_counts"] = counts
        cases.append(case)

    def ordinal(label, px, py, n1, n2, levels=5):
        x = rng.choice(np.arange(1, levels + 1), size=n1, p=px)
        y = rng.choice(np.arange(1, levels + 1), size=n2, p=py)
        xc = [int((x == v).sum()) for v in range(1, levels + 1)]
        yc = [int((y == v).sum()) for v in range(1, levels + 1)]
        add(label, x, y, (xc, yc))

    csat = [0.05, 0.08, 0.17, 0.35, 0.35]
    better = [0.03, 0.06, 0.15, 0.36, 0.40]
    for n1, n2 in [(5, 7), (20, 20), (50, 80), (200, 150), (1000, 1000), (3000, 2500)]:
        ordinal(f"CSAT same n1 {n1} n2 {n2}", csat, csat, n1, n2)
        ordinal(f"CSAT shifted n1 {n1} n2 {n2}", better, csat, n1, n2)
    ordinal("CSAT two levels used", [0, 0, 0, 0.5, 0.5], [0, 0, 0, 0.7, 0.3], 40, 30)
    ordinal("binary levels", [0.4, 0.6], [0.5, 0.5], 100, 120, levels=2)
    # All equal: sigma = 0.
    add("all equal", [4, 4, 4], [4, 4], ([0, 0, 0, 3, 0], [0, 0, 0, 2, 0]))
    add("all equal n 1", [3], [3], ([0, 0, 1, 0, 0], [0, 0, 1, 0, 0]))
    # Tiny n.
    add("1 vs 1", [2.0], [1.0], ([0, 1], [1, 0]))
    add("1 vs 2", [1.0], [2.0, 3.0], ([1, 0, 0], [0, 1, 1]))
    add("2 vs 1 tie", [1.0, 2.0], [2.0], ([1, 1], [0, 1]))
    add("complete separation", [6, 7, 8, 9], [1, 2, 3], None)
    # Continuous.
    for n1, n2, shift in [(8, 12, 0.5), (30, 25, 0.0), (100, 100, 0.2), (500, 700, -0.1), (2000, 50, 0.3)]:
        add(f"normal n1 {n1} n2 {n2} shift {shift}", rng.normal(shift, 1, n1), rng.normal(0, 1, n2))
    add("lognormal heavy tail", rng.lognormal(0, 2, 60), rng.lognormal(0.3, 2, 45))
    add("rounded continuous (ties)", np.round(rng.normal(0, 1, 80), 1), np.round(rng.normal(0.2, 1, 90), 1))
    write("mann_whitney.json", {"cases": cases})


def main():
    print(f"scipy {scipy.__version__}, statsmodels {statsmodels.__version__}, numpy {np.__version__}")
    multiple_comparisons()
    mann_whitney()


if __name__ == "__main__":
    main()
