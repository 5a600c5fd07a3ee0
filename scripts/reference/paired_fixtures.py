#!/usr/bin/env python3
"""Reference values for the paired statistics of offline evals (issue 11).

Writes, under Tests/BakeoffStatisticsTests/Fixtures/:
  paired.json             the exact binomial test (scipy `binomtest`, the sign test on non-tied requests) and
                          McNemar's exact test (statsmodels `mcnemar(exact=True)`);
  paired_ttest.json       the paired t test: scipy `ttest_1samp` on the differences (statistic, pvalue, df,
                          `confidence_interval(1 - alpha)`) and `ttest_rel` on paired arrays; mean and standard
                          error from numpy;
  wilcoxon.json           scipy `wilcoxon(d, zero_method, correction, alternative, method)` for every zero method,
                          alternative and method ('auto', 'exact', 'asymptotic', and `PermutationMethod(n_resamples=inf)`,
                          the exact permutation distribution); the Hodges-Lehmann estimate as numpy's median of the
                          Walsh averages (d_i + d_j) / 2, i <= j;
  bradley_terry.json      Bradley-Terry strengths as Chatbot Arena's `compute_mle_elo` builds the data (a win counts
                          twice, a tie once for each side), fitted by statsmodels `GLM(Binomial, freq_weights)` with the
                          control's column dropped, checked against a plain Newton iteration; and one cluster
                          bootstrap replayed with the tests' LCG (percentiles by numpy);
  paired_sample_size.json statsmodels `TTestPower().power` (one-sample / paired t), the smallest n reaching a target
                          power (power at n - 1 and n recorded), the detectable effect at n (brentq to full precision);
                          the exact sign test's power with the rejection region from scipy `binomtest`, by brute force
                          over m, the requests needed, and the detectable win rate at n.
"""
import json
import math
import os
import warnings

import numpy as np
import scipy
import statsmodels
import statsmodels.api as sm
from scipy import optimize, special, stats
from scipy.sparse.csgraph import connected_components
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.power import TTestPower

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures")
OUT = os.path.join(FIXTURES, "paired.json")
GENERATOR = (f"scripts/reference/paired_fixtures.py; scipy {scipy.__version__}, "
             f"statsmodels {statsmodels.__version__}, numpy {np.__version__}")


def write(name, payload, indent=1):
    path = os.path.join(FIXTURES, name)
    with open(path, "w") as f:
        json.dump(payload, f, indent=indent, allow_nan=False)
        f.write("\n")
    return path


def binomial_and_mcnemar():
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


# ---------------------------------------------------------------- paired t test

SCIPY_ALTERNATIVE = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}


def ci_bound(x):
    """JSON has no infinities: an open end of a one-sided interval is null."""
    return float(x) if math.isfinite(x) else None


def paired_ttest():
    rng = np.random.RandomState(20250611)
    samples = []
    samples.append(("n2", [0.5, 1.75]))
    samples.append(("n3", [0.25, -0.5, 1.0]))
    samples.append(("n5 judge scores", [1.0, 0.0, 2.0, 1.0, -1.0]))
    samples.append(("n10 normal", list(np.round(rng.normal(0.3, 1.0, 10), 6))))
    samples.append(("n30 small effect", list(np.round(rng.normal(0.05, 0.4, 30), 6))))
    samples.append(("n30 negative", list(np.round(rng.normal(-0.8, 2.0, 30), 6))))
    samples.append(("n100 heavy tails", list(np.round(rng.standard_t(2, 100) * 0.7 + 0.2, 6))))
    samples.append(("n400 scores -4..4", [float(v) for v in rng.randint(-4, 5, 400)]))
    samples.append(("n1000 tiny effect", list(np.round(rng.normal(0.01, 1.0, 1000), 6))))
    samples.append(("n50 large offset", list(np.round(1e4 + rng.normal(0.0, 1e-2, 50), 8))))
    samples.append(("n20 huge t", list(np.round(rng.normal(5.0, 0.01, 20), 8))))
    cases = []
    for name, d in samples:
        d = [float(v) for v in d]
        arr = np.asarray(d)
        results = []
        for alpha in (0.05, 0.01, 0.2):
            for alternative in ("two-sided", "larger", "smaller"):
                r = stats.ttest_1samp(arr, 0.0, alternative=SCIPY_ALTERNATIVE[alternative])
                ci = r.confidence_interval(confidence_level=1 - alpha)
                results.append({"alpha": alpha, "alternative": alternative, "statistic": float(r.statistic),
                                "p_value": float(r.pvalue), "lower": ci_bound(ci.low), "upper": ci_bound(ci.high)})
        cases.append({"name": name, "differences": d, "mean": float(np.mean(arr)),
                      "standard_error": float(np.std(arr, ddof=1) / math.sqrt(len(arr))), "df": float(len(arr) - 1),
                      "results": results})
    # ttest_rel(variant, control) on separate arrays: the same test of variant - control.
    rel = []
    for n, shift, rho in ((8, 0.4, 0.5), (25, -0.1, 0.9), (200, 0.05, 0.3)):
        control = rng.normal(3.0, 1.0, n)
        variant = shift + 3.0 + rho * (control - 3.0) + math.sqrt(1 - rho * rho) * rng.normal(0.0, 1.0, n)
        control = [float(v) for v in np.round(control, 5)]
        variant = [float(v) for v in np.round(variant, 5)]
        for alternative in ("two-sided", "larger", "smaller"):
            r = stats.ttest_rel(variant, control, alternative=SCIPY_ALTERNATIVE[alternative])
            ci = r.confidence_interval(confidence_level=0.95)
            rel.append({"variant": variant, "control": control, "alpha": 0.05, "alternative": alternative,
                        "statistic": float(r.statistic), "p_value": float(r.pvalue), "df": float(r.df),
                        "lower": ci_bound(ci.low), "upper": ci_bound(ci.high)})
    path = write("paired_ttest.json", {"generator": GENERATOR, "one_sample": cases, "related": rel}, indent=None)
    print(f"{sum(len(c['results']) for c in cases)} paired t tests on {len(cases)} samples, {len(rel)} ttest_rel -> {path}")


# ---------------------------------------------------------------- Wilcoxon signed-rank

def hodges_lehmann(d):
    d = np.asarray(d, dtype=float)
    i, j = np.triu_indices(len(d))
    return float(np.median((d[i] + d[j]) / 2))


def auto_method(d):
    """The method scipy 1.17.1's method='auto' ends up using (_wilcoxon.py, _wilcoxon_nd)."""
    d = np.asarray(d)
    if len(d) > 50:
        return "approx"
    nonzero = np.abs(d[d != 0])
    has_ties = len(np.unique(nonzero)) < len(nonzero)
    if not has_ties and not np.any(d == 0):
        return "exact"
    # Pratt and zsplit rank the zeros too: two zeros are a tie, but any zero already leaves 'exact'.
    return "permutation" if len(d) <= 13 else "approx"


def wilcoxon():
    rng = np.random.RandomState(7)
    samples = []
    # Small, no ties or zeros: the exact distribution.
    for n in (1, 2, 3, 4, 5, 6, 8, 10, 12):
        samples.append((f"exact n{n}", list(np.round(rng.normal(0.4, 1.0, n), 4))))
    samples.append(("exact n20 all positive", list(np.round(np.abs(rng.normal(1.0, 1.0, 20)) + 0.001, 4))))
    samples.append(("exact n35", list(np.round(rng.normal(0.3, 1.0, 35), 5))))
    samples.append(("exact n50", list(np.round(rng.normal(-0.2, 1.0, 50), 6))))
    # Ties without zeros.
    samples.append(("ties n7", [1.0, -1.0, 2.0, 2.0, 3.0, -2.0, 1.0]))
    samples.append(("ties n13", [0.5, 1.0, -0.5, 1.5, 1.0, 2.0, -1.0, 0.5, 2.5, 1.0, 3.0, -1.5, 0.5]))
    samples.append(("ties n14", [1.0, -1.0, 2.0, 2.0, 3.0, -2.0, 1.0, 1.0, 4.0, -1.0, 2.0, 3.0, 1.0, 2.0]))
    samples.append(("ties n40", [float(v) for v in rng.choice([-2, -1, 1, 2, 3], 40)]))
    # Zeros (and ties), for each zero method.
    samples.append(("zeros n4", [1.0, -1.0, 0.0, 2.0]))
    samples.append(("zeros n6", [0.0, 1.5, -0.5, 0.0, 2.0, 3.0]))
    samples.append(("zeros n10", [0.0, 1.0, 2.0, -1.0, 0.0, 3.0, 1.0, 0.0, 2.0, 4.0]))
    samples.append(("zeros n13", [float(v) for v in rng.choice([-1, 0, 0, 1, 1, 2], 13)]))
    samples.append(("zeros n16", [float(v) for v in rng.choice([-2, -1, 0, 1, 2, 3], 16)]))
    samples.append(("zeros n25", [float(v) for v in rng.choice([-1, 0, 0, 1, 1, 2], 25)]))
    samples.append(("one nonzero n5", [0.0, 0.0, 3.0, 0.0, 0.0]))
    samples.append(("no ties n51", list(np.round(rng.normal(0.3, 1.0, 51), 6))))
    # Large: judge-score differences (-4..4), many ties and zeros; continuous differences.
    samples.append(("scores n300", [float(v) for v in rng.choice(np.arange(-4, 5), 300,
                                                                  p=[.02, .04, .08, .14, .3, .18, .12, .08, .04])]))
    samples.append(("continuous n1000", list(np.round(rng.normal(0.05, 1.0, 1000), 3))))
    cases = []
    for name, d in samples:
        d = [float(v) for v in d]
        arr = np.asarray(d)
        n = len(d)
        groups = []
        for zero_method in ("wilcox", "pratt", "zsplit"):
            for alternative in ("two-sided", "greater", "less"):
                methods = [("auto", False), ("auto", True), ("exact", False), ("approx", False), ("approx", True)]
                if 2 <= n <= 16:  # scipy's permutation_test needs two observations
                    methods.append(("permutation", False))
                statistic = None
                p_values = {}
                for method, correction in methods:
                    scipy_method = {"auto": "auto", "exact": "exact", "approx": "asymptotic",
                                    "permutation": stats.PermutationMethod(n_resamples=np.inf)}[method]
                    if method == "exact" and n > 300:
                        continue  # scipy's exact distribution costs O(n^3)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        r = stats.wilcoxon(arr, zero_method=zero_method, correction=correction,
                                           alternative=alternative, method=scipy_method)
                    assert statistic is None or statistic == float(r.statistic)
                    statistic = float(r.statistic)
                    p = float(r.pvalue)
                    if math.isnan(p):
                        # Only where no difference is non-zero (documented: Bakeoff returns p = 1 there).
                        assert zero_method != "zsplit" and not np.any(arr != 0)
                        continue
                    key = method + ("-corrected" if correction else "")
                    if method == "approx":
                        p_values[key] = [p, float(r.zstatistic)]
                    else:
                        p_values[key] = p
                used = auto_method(d)
                if used == "approx":
                    # 'auto' must be the method it resolves to (the same p-value as the explicit call).
                    assert p_values["auto"] == p_values["approx"][0]
                    assert p_values["auto-corrected"] == p_values["approx-corrected"][0]
                else:
                    assert p_values["auto"] == p_values[used] == p_values["auto-corrected"]
                    del p_values["auto-corrected"]
                groups.append({"zero_method": zero_method, "alternative": alternative, "statistic": statistic,
                               "auto_uses": used, "p_values": p_values})
        cases.append({"name": name, "differences": d, "hodges_lehmann": hodges_lehmann(d), "results": groups})
    # Hodges-Lehmann alone on a few more shapes (odd/even number of Walsh averages, duplicates, outliers).
    hl = []
    for n in (1, 2, 3, 4, 7, 9, 64, 129, 500):
        d = [float(v) for v in np.round(rng.standard_t(3, n), 3)]
        hl.append({"differences": d, "hodges_lehmann": hodges_lehmann(d)})
    hl.append({"differences": [2.0, 2.0, 2.0, 2.0], "hodges_lehmann": 2.0})
    hl.append({"differences": [-1e6, 0.0, 1.0, 2.0, 3.0, 1e9], "hodges_lehmann": hodges_lehmann([-1e6, 0, 1, 2, 3, 1e9])})
    path = write("wilcoxon.json", {"generator": GENERATOR, "cases": cases, "hodges_lehmann": hl}, indent=None)
    count = sum(len(g["p_values"]) for c in cases for g in c["results"])
    print(f"{count} Wilcoxon p-values on {len(cases)} samples -> {path}")


# ---------------------------------------------------------------- Bradley-Terry

def arena_design(comparisons, k, control):
    """Chatbot Arena's compute_mle_elo data: per ordered pair (a, b) one row y = 1 with weight 2 wins(a over b)
    + ties(a, b) and one row y = 0 with weight 2 wins(b over a) + ties(a, b); X has +1 for a and -1 for b (natural
    log scale instead of Arena's log 10), and the control's column is dropped (its strength is 0)."""
    win = np.zeros((k, k))
    for i, j, outcome, w in comparisons:
        if outcome == "first":
            win[i, j] += 2 * w
        elif outcome == "second":
            win[j, i] += 2 * w
        else:
            win[i, j] += w
            win[j, i] += w
    rows, ys, ws = [], [], []
    for a in range(k):
        for b in range(k):
            if a == b:
                continue
            x = np.zeros(k)
            x[a], x[b] = 1.0, -1.0
            for y, w in ((1.0, win[a, b]), (0.0, win[b, a])):
                if w > 0:
                    rows.append(x)
                    ys.append(y)
                    ws.append(w)
    X = np.delete(np.array(rows), control, axis=1)
    return X, np.array(ys), np.array(ws), win


def identifiable(win):
    k = len(win)
    graph = (win > 0).astype(int)
    count, _ = connected_components(graph, directed=True, connection="strong")
    return count == 1


def newton_fit(win, control):
    """Plain Newton on the log-likelihood sum_ab W_ab log sigma(s_a - s_b) with s_control = 0."""
    k = len(win)
    free = [v for v in range(k) if v != control]
    s = np.zeros(k)
    for _ in range(100):
        grad = np.zeros(k)
        hess = np.zeros((k, k))
        for a in range(k):
            for b in range(a + 1, k):
                n = win[a, b] + win[b, a]
                if n == 0:
                    continue
                p = 1 / (1 + math.exp(-(s[a] - s[b])))
                g = win[a, b] - n * p
                grad[a] += g
                grad[b] -= g
                h = n * p * (1 - p)
                hess[a, a] += h
                hess[b, b] += h
                hess[a, b] -= h
                hess[b, a] -= h
        step = np.linalg.solve(hess[np.ix_(free, free)], grad[free])
        s[free] += step
        if np.max(np.abs(step)) < 1e-15:
            break
    return s


def bt_fit(comparisons, k, control):
    X, y, w, win = arena_design(comparisons, k, control)
    assert identifiable(win)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.GLM(y, X, family=sm.families.Binomial(), freq_weights=w).fit(tol=1e-14, maxiter=200)
    params = np.insert(res.params, control, 0.0)
    check = newton_fit(win, control)
    assert np.max(np.abs(params - check)) < 1e-12, (params, check)
    return params


def lcg(seed):
    state = [seed % 2**64]

    def next_index(n):
        state[0] = (state[0] * 6364136223846793005 + 1442695040888963407) % 2**64
        return (state[0] >> 33) % n
    return next_index


def bradley_terry():
    rng = np.random.RandomState(11)
    cases = []

    def add(name, k, control, comparisons):
        s = bt_fit(comparisons, k, control)
        cases.append({"name": name, "variant_count": k, "control": control,
                      "comparisons": [{"first": i, "second": j, "outcome": o, "weight": w}
                                      for i, j, o, w in comparisons],
                      "strengths": [float(v) for v in s],
                      "win_probabilities": [float(1 / (1 + math.exp(-(v - s[control])))) for v in s],
                      "elo": [float(400 / math.log(10) * v + 1000) for v in s]})

    add("two variants", 2, 0, [(0, 1, "first", 30.0), (0, 1, "second", 45.0), (0, 1, "tie", 25.0),
                               (1, 0, "first", 12.0), (1, 0, "second", 9.0)])
    add("two variants, no ties", 2, 0, [(1, 0, "first", 7.0), (1, 0, "second", 3.0)])
    add("two variants, control second", 2, 1, [(0, 1, "first", 3.0), (0, 1, "second", 1.0), (0, 1, "tie", 1.0)])
    add("three variants, uneven", 3, 0,
        [(0, 1, "first", 40.0), (0, 1, "second", 52.0), (0, 1, "tie", 18.0),
         (0, 2, "first", 9.0), (0, 2, "second", 4.0), (0, 2, "tie", 2.0),
         (1, 2, "first", 3.0), (2, 1, "first", 1.0), (2, 1, "tie", 0.5)])
    add("three variants, a chain (0-1 and 1-2 only)", 3, 1,
        [(0, 1, "first", 5.0), (0, 1, "second", 8.0), (1, 2, "tie", 3.0), (1, 2, "first", 2.0),
         (2, 1, "first", 1.0)])
    add("four variants, weights", 4, 0,
        [(0, 1, "first", 12.5), (0, 1, "second", 20.0), (0, 1, "tie", 7.25),
         (0, 2, "first", 30.0), (0, 2, "second", 11.0), (0, 2, "tie", 9.0),
         (0, 3, "first", 2.0), (0, 3, "second", 6.0),
         (1, 2, "first", 8.0), (1, 2, "second", 2.0), (1, 3, "tie", 4.0), (3, 1, "first", 1.0),
         (2, 3, "second", 3.0), (3, 2, "second", 1.0)])
    add("four variants, control 2, ties only on one pair", 4, 2,
        [(0, 1, "first", 3.0), (1, 0, "first", 2.0), (1, 2, "tie", 6.0), (2, 3, "first", 10.0),
         (3, 2, "first", 1.0), (0, 3, "second", 2.0), (0, 3, "first", 5.0)])
    # A simulated eval: 60 requests, 3 variants, every pair judged in both orders, one comparison per row.
    truth = np.array([0.0, 0.4, -0.3])
    sim = []
    for _ in range(60):
        for a in range(3):
            for b in range(a + 1, 3):
                pa = 1 / (1 + math.exp(-(truth[a] - truth[b])))
                for first, second in ((a, b), (b, a)):
                    u = rng.uniform()
                    if u < pa - 0.1:
                        outcome = "first" if first == a else "second"
                    elif u < pa + 0.1:
                        outcome = "tie"
                    else:
                        outcome = "second" if first == a else "first"
                    sim.append((first, second, outcome, 1.0))
    add("simulated eval, 60 requests x 6 judgements", 3, 0, sim)

    # One cluster bootstrap, replayed with the tests' LCG: 12 requests of a 3-variant eval in which variant 2 lost
    # every comparison but two (requests 3 and 7), so resamples without either are not identifiable (skipped and
    # counted).
    clusters = []
    for r in range(12):
        u = rng.uniform()
        outcome01 = "first" if u < 0.35 else ("tie" if u < 0.55 else "second")
        clusters.append([(0, 1, outcome01, 1.0), (0, 2, "tie" if r == 3 else "first", 1.0),
                         (1, 2, "second" if r == 7 else "first", 1.0)])
    replicates, confidence, seed = 300, 0.9, 12345
    next_index = lcg(seed)
    values = []
    skipped = 0
    for _ in range(replicates):
        picked = [clusters[next_index(len(clusters))] for _ in range(len(clusters))]
        comparisons = [c for rows in picked for c in rows]
        _, _, _, win = arena_design(comparisons, 3, 0)
        if not identifiable(win):
            skipped += 1
            continue
        values.append(bt_fit(comparisons, 3, 0))
    values = np.array(values)
    tail = (1 - confidence) / 2
    strength_lo = np.percentile(values, 100 * tail, axis=0)
    strength_hi = np.percentile(values, 100 * (1 - tail), axis=0)
    probs = 1 / (1 + np.exp(-values))
    prob_lo = np.percentile(probs, 100 * tail, axis=0)
    prob_hi = np.percentile(probs, 100 * (1 - tail), axis=0)
    bootstrap = {"variant_count": 3, "control": 0, "replicates": replicates, "confidence": confidence, "seed": seed,
                 "clusters": [[{"first": i, "second": j, "outcome": o, "weight": w} for i, j, o, w in rows]
                              for rows in clusters],
                 "skipped": skipped, "used": len(values),
                 "strength_lower": [float(v) for v in strength_lo], "strength_upper": [float(v) for v in strength_hi],
                 "win_probability_lower": [float(v) for v in prob_lo],
                 "win_probability_upper": [float(v) for v in prob_hi]}
    path = write("bradley_terry.json", {"generator": GENERATOR, "fits": cases, "bootstrap": bootstrap}, indent=None)
    print(f"{len(cases)} Bradley-Terry fits, bootstrap {len(values)} used / {skipped} skipped -> {path}")


# ---------------------------------------------------------------- sample size

def ttest_power(d, n, alpha, alternative):
    return float(TTestPower().power(effect_size=d, nobs=n, alpha=alpha, alternative=alternative))


def smallest_n(d, alpha, target, alternative):
    """Smallest n >= 2 with TTestPower().power >= target, by a normal-approximation start and unit steps."""
    tail = alpha / 2 if alternative == "two-sided" else alpha
    z = stats.norm.isf(tail) + stats.norm.ppf(target)
    n = max(2, int(math.ceil((z / abs(d)) ** 2)))
    while n > 2 and ttest_power(d, n - 1, alpha, alternative) >= target:
        n -= 1
    while ttest_power(d, n, alpha, alternative) < target:
        n += 1
    return n


def sign_critical(m, alpha):
    """Largest c < m / 2 with scipy binomtest(c, m, 0.5).pvalue <= alpha (two-sided), or -1: the rejection region is
    k <= c or k >= m - c. Two-sided p-values grow with k below m / 2, so bisect."""
    lo, hi = -1, (m - 1) // 2  # invariant: lo rejects (or is -1); answer in [lo, hi]
    if m == 0:
        return -1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if stats.binomtest(mid, m, 0.5).pvalue <= alpha:
            lo = mid
        else:
            hi = mid - 1
    return lo


def sign_power(m, p, alpha, c=None):
    if c is None:
        c = sign_critical(m, alpha)
    if c < 0:
        return 0.0
    return float(special.bdtr(c, m, p) + special.bdtrc(m - c - 1, m, p))  # binom.cdf + binom.sf


def sign_requests(p, alpha, target):
    """Brute force, the documented rule: m_first = the first m reaching the target; limit = max(2 m_first,
    m_first + 50); answer = 1 + the last m <= limit still below the target. Also checks that no dip follows up to
    4 m_first. The critical count is advanced with 2 binom.cdf(c + 1, m, 1/2) <= alpha (fast) and checked against
    scipy binomtest's region every 37th m and around the answer."""
    powers, criticals = {}, {}
    c = -1
    m = 0
    first = None
    while True:
        m += 1
        # c(m) >= c(m - 1): advance while the next count still rejects.
        while 2 * (c + 1) < m and 2 * special.bdtr(c + 1, m, 0.5) <= alpha:
            c += 1
        if m % 37 == 0:
            assert c == sign_critical(m, alpha), (m, c)
        criticals[m] = c
        powers[m] = sign_power(m, p, alpha, c)
        if first is None and powers[m] >= target:
            first = m
        if first is not None and m >= max(4 * first, first + 50):
            break
    limit = max(2 * first, first + 50)
    below = [k for k in range(1, limit + 1) if powers[k] < target]
    answer = below[-1] + 1
    assert all(powers[k] >= target for k in range(answer, m + 1)), "a dip beyond the documented limit"
    for k in range(max(1, answer - 3), answer + 4):
        assert criticals[k] == sign_critical(k, alpha), (k, criticals[k])
    return answer, first, powers


def sample_size():
    # Power of the paired t test.
    grid = []
    for d in (0.05, 0.2, 0.5, 1.0, 2.5, -0.3):
        for n in (2, 3, 5, 10, 40, 200, 3000):
            for alpha in (0.05, 0.01):
                for alternative in ("two-sided", "larger", "smaller"):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        value = ttest_power(d, n, alpha, alternative)
                    if math.isnan(value):
                        continue  # scipy's nctdtr fails in the far lower tail (see stats_fixtures.py)
                    grid.append({"effect_size": d, "n": n, "alpha": alpha, "alternative": alternative,
                                 "power": value})
    # Smallest n, and the detectable effect at n.
    plans = []
    for d in (0.03, 0.1, 0.2, 0.35, 0.5, 0.8, 1.2, 2.0, 3.5):
        for alpha in (0.01, 0.05, 0.1):
            for target in (0.5, 0.8, 0.9, 0.95):
                for alternative in ("two-sided", "larger"):
                    n = smallest_n(d, alpha, target, alternative)
                    plans.append({"effect_size": d, "alpha": alpha, "power": target, "alternative": alternative,
                                  "n": n, "power_at_n": ttest_power(d, n, alpha, alternative),
                                  "power_below": ttest_power(d, n - 1, alpha, alternative) if n > 2 else None})
    # The same from sdA, sdB and rho (and a difference rather than an effect size).
    from_sds = []
    for difference, sd_a, sd_b, rho in ((0.1, 1.0, 1.2, 0.6), (2.5, 10.0, 10.0, 0.9), (0.05, 0.3, 0.25, 0.0),
                                        (-0.4, 2.0, 1.0, -0.3), (1.0, 3.0, 3.0, 0.99)):
        sd_d = math.sqrt(sd_a ** 2 + sd_b ** 2 - 2 * rho * sd_a * sd_b)
        n = smallest_n(difference / sd_d, 0.05, 0.8, "two-sided")
        from_sds.append({"difference": difference, "sd_a": sd_a, "sd_b": sd_b, "rho": rho, "sd_of_differences": sd_d,
                         "alpha": 0.05, "power": 0.8, "n": n,
                         "power_at_n": ttest_power(difference / sd_d, n, 0.05, "two-sided")})
    detectable = []
    for n in (3, 5, 12, 50, 400, 10000):
        for alpha in (0.05, 0.01):
            for target in (0.8, 0.9):
                for alternative in ("two-sided", "larger"):
                    def g(d):
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            value = ttest_power(d, n, alpha, alternative)
                        if math.isnan(value) and alternative == "two-sided":
                            # scipy's nctdtr fails in the far lower tail: the power is the upper tail alone.
                            value = ttest_power(d, n, alpha / 2, "larger")
                        return value - target
                    # A bracket around the normal approximation (far above the root statsmodels' power is
                    # NaN for large n, where scipy's nctdtr fails near 1).
                    tail = alpha / 2 if alternative == "two-sided" else alpha
                    guess = (stats.norm.isf(tail) + stats.norm.ppf(target)) / math.sqrt(n)
                    lo, hi = guess / 2, guess * 2
                    while g(lo) > 0:
                        lo /= 2
                    while g(hi) < 0:
                        hi *= 2
                    root = optimize.brentq(g, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=1000)
                    detectable.append({"n": n, "alpha": alpha, "power": target, "alternative": alternative,
                                       "effect_size": float(root)})
    # The exact sign test.
    sign_grid = []
    for m in (1, 5, 6, 9, 10, 20, 21, 57, 100, 101, 640, 2001):
        for p in (0.55, 0.7, 0.9, 0.2):
            for alpha in (0.05, 0.01):
                c = sign_critical(m, alpha)
                sign_grid.append({"m": m, "win_rate": p, "alpha": alpha, "critical": c,
                                  "power": sign_power(m, p, alpha, c)})
    sign_plans = []
    for p in (0.52, 0.55, 0.6, 0.65, 0.75, 0.9, 0.4, 0.15):
        for alpha in (0.05, 0.01):
            for target in (0.8, 0.9):
                if p == 0.52 and (alpha, target) != (0.05, 0.8):
                    continue  # thousands of m; one such case is enough
                m, first, powers = sign_requests(p, alpha, target)
                for tie_rate in (0.0, 0.2, 0.35):
                    total = m / (1 - tie_rate)
                    nearest = round(total)
                    total = nearest if abs(total - nearest) <= 1e-9 * total else math.ceil(total)
                    sign_plans.append({"win_rate": p, "alpha": alpha, "power": target, "tie_rate": tie_rate,
                                       "decisive": m, "first_reaching": first, "requests": int(total),
                                       "power_at_decisive": powers[m],
                                       "power_below": powers[m - 1] if m > 1 else None})
    win_rates = []
    for n in (10, 30, 100, 500, 2500):
        for tie_rate in (0.0, 0.25):
            for alpha in (0.05, 0.01):
                for target in (0.8, 0.9):
                    m = int(math.floor(n * (1 - tie_rate)))
                    c = sign_critical(m, alpha)
                    if c < 0:
                        win_rates.append({"n": n, "tie_rate": tie_rate, "alpha": alpha, "power": target,
                                          "decisive": m, "win_rate": None})
                        continue

                    def g(p):
                        return sign_power(m, p, alpha, c) - target
                    if g(1.0) < 0:
                        root = None
                    else:
                        root = float(optimize.brentq(g, 0.5, 1.0, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                                                     maxiter=1000))
                    win_rates.append({"n": n, "tie_rate": tie_rate, "alpha": alpha, "power": target,
                                      "decisive": m, "win_rate": root})
    path = write("paired_sample_size.json", {"generator": GENERATOR, "power": grid, "plans": plans,
                                             "from_sds": from_sds, "detectable": detectable,
                                             "sign_power": sign_grid, "sign_plans": sign_plans,
                                             "detectable_win_rates": win_rates}, indent=None)
    print(f"{len(grid)} powers, {len(plans) + len(from_sds)} plans, {len(detectable)} detectable effects, "
          f"{len(sign_grid)} sign-test powers, {len(sign_plans)} sign-test plans, {len(win_rates)} win rates -> {path}")


def main():
    binomial_and_mcnemar()
    paired_ttest()
    wilcoxon()
    bradley_terry()
    sample_size()


if __name__ == "__main__":
    main()
