"""Reference values of group-sequential tests with Lan-DeMets alpha spending, for
Tests/BakeoffStatisticsTests/Fixtures/group_sequential.json.

Two independent references for the boundaries:
- spotify-confidence's solver (`sequential_bound_solver.bounds`, the power family alpha * t^rho it implements);
- a solver written here on scipy's multivariate normal CDF (Z_1..Z_k with correlation sqrt(t_i / t_j)): each
  boundary found by root-finding so that the probability of first crossing at that look equals what the spending
  function adds there, for every family (O'Brien-Fleming-type, Pocock-type, power), one-sided and two-sided
  (symmetric: |Z_k| >= c_k).
For each case the file also holds the alpha spent at each look and, for spotify-confidence's boundaries, the
probability scipy gives of first crossing at each look, so the Swift test checks its own crossing probabilities
against an outside computation to 1e-5. A few designs also carry the power at a drift (the probability of crossing
the upper boundary when E[Z_k] = drift * sqrt(t_k)), for the maximum-sample and expected-sample computations.
The inflation factors of three two-sided designs (power 0.9) come from the same multivariate normal.
Run: python scripts/reference/group_sequential_fixtures.py in a venv with spotify-confidence and scipy
(make fixtures; about 25 minutes on two cores, mostly the 7-look cases); --inflation-only recomputes just those.
"""
import json
import math
import pathlib
import sys

import numpy as np
from scipy.optimize import brentq
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


def spent(kind, alpha, t, two_sided=False):
    """Alpha spent by t. Two-sided designs spend the one-sided function at alpha / 2 on each side (gsDesign's
    test.type 2, rpact, ldbounds): two-sided 0.05 is one-sided 0.025 twice."""
    if two_sided:
        return 2 * spent(kind, alpha / 2, t)
    t = min(t, 1.0)
    if kind == "obrienFleming":
        return 2 * norm.sf(norm.isf(alpha / 2) / math.sqrt(t))
    if kind == "pocock":
        return alpha * math.log(1 + (math.e - 1) * t)
    return alpha * t ** SPENDING[kind]


def continue_probability(bounds_so_far, t, two_sided, mean=None):
    """P(no crossing at looks 1..k): Z_i < c_i (one-sided) or |Z_i| < c_i (two-sided), correlation sqrt(t_i/t_j)."""
    k = len(bounds_so_far)
    c = np.array(bounds_so_far, dtype=float)
    mu = np.zeros(k) if mean is None else np.array(mean, dtype=float)
    if k == 1:
        hi = norm.cdf(c[0] - mu[0])
        return hi - norm.cdf(-c[0] - mu[0]) if two_sided else hi
    cov = np.array([[math.sqrt(min(t[i], t[j]) / max(t[i], t[j])) for j in range(k)] for i in range(k)])
    dist = multivariate_normal(mean=mu, cov=cov, maxpts=2000000 * k, abseps=1e-11, releps=1e-11)
    return dist.cdf(c, lower_limit=-c) if two_sided else dist.cdf(c)


def mvn_bounds(kind, alpha, t, two_sided):
    out, before, prev_spent = [], 1.0, 0.0
    for k in range(len(t)):
        target = spent(kind, alpha, t[k], two_sided) - prev_spent
        f = lambda c: (before - continue_probability(out + [c], t[: k + 1], two_sided)) - target
        c = brentq(f, 0.0, 12.0, xtol=1e-7)
        out.append(c)
        before = continue_probability(out, t[: k + 1], two_sided)
        prev_spent = spent(kind, alpha, t[k], two_sided)
    return out


def crossing(bounds, t, two_sided, drift=0.0):
    """Probability of first crossing at each look (upper side only when drift != 0 and one-sided)."""
    probs, before = [], 1.0
    for k in range(len(t)):
        mean = [drift * math.sqrt(x) for x in t[: k + 1]]
        now = continue_probability(bounds[: k + 1], t[: k + 1], two_sided, mean)
        probs.append(before - now)
        before = now
    return probs


def inflation(cases):
    """Maximum sample over the fixed-horizon sample for power 0.9 (two-sided 0.05, five equal looks): the drift at
    which scipy's probability of crossing is 0.9, over z_{0.975} + z_{0.9}, squared."""
    out = []
    for c in cases:
        if not (c["two_sided"] and c["looks"] == "5 equal"):
            continue
        b, t = c["mvn_bounds"], c["t"]
        drift = brentq(lambda x: 1 - continue_probability(b, t, True, [x * math.sqrt(v) for v in t]) - 0.9, 2, 6, xtol=1e-7)
        fixed = norm.isf(0.025) + norm.isf(0.1)
        out.append({"alpha": c["alpha"], "t": t, "spending": c["spending"], "rho": c["rho"], "power": 0.9,
                    "drift": drift, "inflation_factor": (drift / fixed) ** 2})
        print("inflation", c["spending"], round((drift / fixed) ** 2, 5), flush=True)
    return out


def main():
    if "--two-sided-obf-only" in sys.argv:
        # Recomputes the two-sided O'Brien-Fleming-type cases (spent at alpha / 2 per side) and the inflation factors.
        data = json.loads(OUT.read_text())
        for c in data["cases"]:
            if c["two_sided"] and c["spending"] == "obrienFleming":
                c["mvn_bounds"] = mvn_bounds(c["spending"], c["alpha"], c["t"], True)
                c["spent"] = [spent(c["spending"], c["alpha"], x, True) for x in c["t"]]
                print(c["looks"], [round(x, 4) for x in c["mvn_bounds"]], flush=True)
        data["inflation"] = inflation(data["cases"])
        OUT.write_text(json.dumps(data, indent=1) + "\n")
        return
    if "--inflation-only" in sys.argv:
        data = json.loads(OUT.read_text())
        data["inflation"] = inflation(data["cases"])
        OUT.write_text(json.dumps(data, indent=1) + "\n")
        return
    cases = []
    grid = [(a, name, kind, False) for a in (0.025, 0.05) for name in LOOKS for kind in SPENDING]
    grid += [(0.05, name, kind, True) for name in ("5 equal", "skipped days") for kind in ("obrienFleming", "pocock", "power3")]
    for alpha, looks_name, kind, two_sided in grid:
        t = LOOKS[looks_name]
        ref = mvn_bounds(kind, alpha, t, two_sided)
        case = {"alpha": alpha, "two_sided": two_sided, "looks": looks_name, "t": t, "spending": kind,
                "rho": SPENDING[kind], "mvn_bounds": ref, "spent": [spent(kind, alpha, x, two_sided) for x in t]}
        if SPENDING[kind] is not None and not two_sided:
            sb = [float(x) for x in spotify_bounds(np.array(t), alpha, SPENDING[kind], 8.0, 1).df["zb"].values]
            case["spotify_bounds"] = sb
            case["spotify_crossing"] = crossing(sb, t, False)
        cases.append(case)
        print(alpha, "two-sided" if two_sided else "one-sided", looks_name, kind, [round(x, 4) for x in ref],
              [round(x, 4) for x in case.get("spotify_bounds", [])], flush=True)
    # Power at a drift: the probability of crossing the upper boundary at each look.
    powers = []
    for alpha, looks_name, kind, drift in [(0.025, "5 equal", "obrienFleming", 3.0), (0.025, "skipped days", "pocock", 2.5),
                                           (0.05, "unequal", "power3", 2.8)]:
        t = LOOKS[looks_name]
        b = next(c["mvn_bounds"] for c in cases if c["alpha"] == alpha and c["looks"] == looks_name
                 and c["spending"] == kind and not c["two_sided"])
        powers.append({"alpha": alpha, "looks": looks_name, "t": t, "spending": kind, "rho": SPENDING[kind],
                       "bounds": b, "drift": drift, "crossing": crossing(b, t, False, drift)})
        print("power", alpha, looks_name, kind, drift, round(sum(powers[-1]["crossing"]), 6), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"cases": cases, "powers": powers, "inflation": inflation(cases)}, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
