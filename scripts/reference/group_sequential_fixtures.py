"""Reference boundaries of one-sided group-sequential tests with Lan-DeMets alpha spending, for
Tests/BakeoffStatisticsTests/Fixtures/group_sequential.json.

Two independent references:
- spotify-confidence's solver (`sequential_bound_solver.bounds`, the power family alpha * t^rho it implements);
- a solver written here on scipy's multivariate normal CDF (Z_1..Z_k with correlation sqrt(t_i / t_j)): each
  boundary found by bisection so that the probability of first crossing at that look equals what the spending
  function adds there, for every family (O'Brien-Fleming-type, Pocock-type, power).
For each case the file also holds the alpha spent at each look, so the Swift test can check its boundaries'
crossing probabilities too. Run: python scripts/reference/group_sequential_fixtures.py in a venv with
spotify-confidence and scipy (make fixtures).
"""
import json
import math
import pathlib

import numpy as np
from scipy.stats import multivariate_normal, norm
from spotify_confidence.analysis.frequentist.sequential_bound_solver import bounds as spotify_bounds

OUT = pathlib.Path(__file__).resolve().parents[2] / "Tests/BakeoffStatisticsTests/Fixtures/group_sequential.json"

LOOKS = {
    "2 equal": [0.5, 1.0],
    "5 equal": [0.2, 0.4, 0.6, 0.8, 1.0],
    "unequal": [0.1, 0.35, 0.5, 0.9, 1.0],
    "skipped days": [1 / 14, 2 / 14, 5 / 14, 6 / 14, 9 / 14, 13 / 14, 1.0],
}
SPENDING = {"obrienFleming": None, "pocock": None, "power1": 1.0, "power2": 2.0, "power3": 3.0}


def spent(kind, alpha, t):
    t = min(t, 1.0)
    if kind == "obrienFleming":
        return 2 * norm.sf(norm.isf(alpha / 2) / math.sqrt(t))
    if kind == "pocock":
        return alpha * math.log(1 + (math.e - 1) * t)
    return alpha * t ** SPENDING[kind]


def cdf_below(bounds_so_far, t):
    """P(Z_1 < c_1, ..., Z_k < c_k) under the null, correlation sqrt(t_i / t_j)."""
    k = len(bounds_so_far)
    if k == 1:
        return norm.cdf(bounds_so_far[0])
    cov = np.array([[math.sqrt(min(t[i], t[j]) / max(t[i], t[j])) for j in range(k)] for i in range(k)])
    return multivariate_normal(mean=np.zeros(k), cov=cov, maxpts=100000 * k, abseps=1e-8, releps=1e-8).cdf(
        np.array(bounds_so_far))


def mvn_bounds(kind, alpha, t):
    out, before, prev_spent = [], 1.0, 0.0
    for k in range(len(t)):
        target = spent(kind, alpha, t[k]) - prev_spent
        lo, hi = 0.0, 12.0
        for _ in range(40):
            mid = (lo + hi) / 2
            crossing = before - cdf_below(out + [mid], t[: k + 1])
            if crossing > target:
                lo = mid
            else:
                hi = mid
        c = (lo + hi) / 2
        out.append(c)
        before = cdf_below(out, t[: k + 1])
        prev_spent = spent(kind, alpha, t[k])
    return out


def main():
    cases = []
    for alpha in (0.025, 0.05):
        for looks_name, t in LOOKS.items():
            for kind in SPENDING:
                ref = mvn_bounds(kind, alpha, t)
                case = {"alpha": alpha, "looks": looks_name, "t": t, "spending": kind,
                        "rho": SPENDING[kind], "mvn_bounds": ref,
                        "spent": [spent(kind, alpha, x) for x in t]}
                if SPENDING[kind] is not None:
                    res = spotify_bounds(np.array(t), alpha, SPENDING[kind], 8.0, 1).df
                    case["spotify_bounds"] = [float(x) for x in res["zb"].values]
                cases.append(case)
                print(alpha, looks_name, kind, [round(x, 4) for x in ref],
                      [round(x, 4) for x in case.get("spotify_bounds", [])])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"cases": cases}, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
