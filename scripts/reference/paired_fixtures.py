#!/usr/bin/env python3
"""Reference values for the paired tests of offline evals: the exact binomial test (scipy `binomtest`, the sign
test on non-tied requests) and McNemar's exact test (statsmodels `mcnemar(exact=True)`).

Writes Tests/BakeoffStatisticsTests/Fixtures/paired.json.
"""
import json
import os

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures", "paired.json")
GENERATOR = (f"scripts/reference/paired_fixtures.py; scipy {scipy.__version__}, "
             f"statsmodels {statsmodels.__version__}, numpy {np.__version__}")


def main():
    binomial = []
    for n in (1, 2, 5, 10, 17, 30, 100, 250, 1000, 5000):
        for k in sorted({0, 1, n // 4, n // 3, n // 2, (2 * n) // 3, n - 1, n}):
            if k < 0 or k > n:
                continue
            for p in (0.5, 0.3, 0.8, 0.01):
                for alternative in ("two-sided", "greater", "less"):
                    binomial.append({"k": k, "n": n, "p": p, "alternative": alternative,
                                     "p_value": float(stats.binomtest(k, n, p, alternative=alternative).pvalue)})
    mc = []
    for b in (0, 1, 3, 7, 12, 40, 150):
        for c in (0, 2, 5, 9, 60, 151):
            table = [[10, b], [c, 10]]
            mc.append({"only_first": b, "only_second": c, "p_value": float(mcnemar(table, exact=True).pvalue)})
    with open(OUT, "w") as f:
        json.dump({"generator": GENERATOR, "binomial": binomial, "mcnemar": mc}, f, indent=1)
        f.write("\n")
    print(f"{len(binomial)} binomial tests, {len(mc)} McNemar tests -> {OUT}")


if __name__ == "__main__":
    main()
