#!/usr/bin/env python3
"""Reference values for TTestIndependentPower.solveEffectSize (minimum detectable effect).

Writes Tests/BakeoffStatisticsTests/Fixtures/mde.json. For every grid point it records
  * effect_size_statsmodels: TTestIndPower().solve_power(effect_size=None, nobs1, alpha, power,
    ratio, alternative), which stops at brentq_expanding's xtol = 1e-5 (absolute), and
  * effect_size_tight: the root of the same power equation (statsmodels' TTestIndPower.power)
    solved by scipy brentq to full double precision, the value compared at 1e-9 relative.
statsmodels' sign convention: 'smaller' gives a negative effect size (the mirror of 'larger').
For 'smaller' at larger nobs1 statsmodels' expanding bracket search lands on a positive
"root" whose power is ~0 (it treats the NaN/inf of the wrong tail as a sign change), and at tiny
nobs1 with large effects its fallback raises; those points are flagged statsmodels_ok = false and only the tight root is compared there.
"""
import json
import math
import os
import sys
import warnings

import numpy as np
import scipy
import statsmodels
from scipy import optimize
from statsmodels.stats.power import TTestIndPower

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures", "mde.json")
GENERATOR = (f"scripts/reference/mde_fixtures.py; scipy {scipy.__version__}, "
             f"statsmodels {statsmodels.__version__}, numpy {np.__version__}")


def main():
    print(GENERATOR)
    analysis = TTestIndPower()
    points = []
    bad = 0
    for nobs1 in (3.0, 5.0, 10.0, 30.0, 100.0, 1000.0, 1e4, 1e5, 1e6, 1e7):
        for ratio in (0.25, 1.0, 4.0):
            for alpha in (0.01, 0.05, 0.1):
                for target in (0.5, 0.8, 0.9):
                    for alternative in ("two-sided", "larger", "smaller"):
                        kw = dict(nobs1=nobs1, alpha=alpha, ratio=ratio, alternative=alternative)
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            try:
                                sm = float(analysis.solve_power(effect_size=None, power=target, **kw))
                            except (ValueError, RuntimeError):
                                # its fixed-bracket fallback brentq(1e-8, 1 - 1e-8) cannot bracket
                                # roots above 1 (small nobs1).
                                sm = math.nan
                        sign = -1.0 if alternative == "smaller" else 1.0

                        def g(d):
                            value = analysis.power(effect_size=sign * d, **kw)
                            if math.isnan(value) and alternative == "two-sided":
                                # scipy's nctdtr fails in the far lower tail (below ~1e-15), as in
                                # stats_fixtures.py: the power is then the upper tail alone.
                                value = analysis.power(effect_size=d, nobs1=nobs1, alpha=alpha / 2,
                                                       ratio=ratio, alternative="larger")
                            return value - target

                        # Normal-approximation start, then expand a sign-changing bracket.
                        tail = alpha / 2 if alternative == "two-sided" else alpha
                        z = scipy.stats.norm.isf(tail) + scipy.stats.norm.ppf(target)
                        guess = z * math.sqrt(1 / nobs1 + 1 / (nobs1 * ratio))
                        lo, hi = guess * 0.5, guess * 2
                        while g(lo) > 0:
                            lo *= 0.5
                        while g(hi) < 0:
                            hi *= 2
                        tight = sign * float(optimize.brentq(g, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                                                             maxiter=1000))
                        achieved = float(analysis.power(effect_size=sm, **kw)) if math.isfinite(sm) else math.nan
                        ok = math.isfinite(sm) and sm * sign > 0 and abs(achieved - target) < 1e-2
                        if not ok:
                            bad += 1
                        points.append({"nobs1": nobs1, "alpha": alpha, "power": target, "ratio": ratio,
                                       "alternative": alternative,
                                       "effect_size_statsmodels": sm if math.isfinite(sm) else None,
                                       "statsmodels_ok": ok, "effect_size_tight": tight})
    print(f"{len(points)} points, {bad} where statsmodels solve_power misses the root", file=sys.stderr)
    with open(OUT, "w") as fh:
        json.dump({"generator": GENERATOR, "points": points}, fh, indent=1, allow_nan=False)
        fh.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
