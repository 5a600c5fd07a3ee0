#!/usr/bin/env python3
"""Reference values for the BakeoffStatistics tests, from scipy, statsmodels and gbstats.

Run from the package root (idempotent: same seed, same output):

    .venv/bin/python scripts/reference/stats_fixtures.py

Writes JSON files to Tests/BakeoffStatisticsTests/Fixtures/. Versions used for the committed
files: scipy 1.17, statsmodels 0.15, gbstats 0.8.0 (recorded in each file's "generator").
Every float is written with repr, so it round-trips exactly.

Where the reference library is known to be less accurate than the test tolerance (scipy's
stdtr at df = 1, |t| = 1e-8 is off by 3e-9 relative), the value comes from the closed form for
df = 1 or 2 instead and the point says so in "source".
"""

import json
import math
import os
import sys

import numpy as np
import scipy
import statsmodels
from scipy import optimize, stats
from statsmodels.stats.power import TTestIndPower

import gbstats
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import RatioStatistic, SampleMeanStatistic
from gbstats.utils import check_srm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures")
GENERATOR = (
    f"scripts/reference/stats_fixtures.py; scipy {scipy.__version__}, "
    f"statsmodels {statsmodels.__version__}, gbstats {getattr(gbstats, '__version__', '0.8.0')}, "
    f"numpy {np.__version__}"
)


def f(x):
    """A plain Python float (numpy scalars do not serialize)."""
    return float(x)


def write(name, payload):
    payload = {"generator": GENERATOR, **payload}
    path = os.path.join(OUT, name)
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=1, allow_nan=False)
        fh.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)}", file=sys.stderr)


def close(a, b, rel=1e-12, abs_=1e-15):
    return abs(a - b) <= max(rel * abs(b), abs_)


# ---------------------------------------------------------------- normal

def normal():
    xs = [0.0, 1e-300, 1e-12, 1e-3, 0.1, 0.5, 1.0, 1.5, 1.6448536269514722, 1.959963984540054, 2.0,
          2.5, 3.0, 4.0, 5.0, 6.0, 7.5, 8.5, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 35.0, 37.0]
    xs = sorted(set(xs + [-x for x in xs]))
    dist = [{"x": x, "cdf": f(stats.norm.cdf(x)), "sf": f(stats.norm.sf(x))} for x in xs]
    ps = [1e-300, 1e-250, 1e-200, 1e-150, 1e-100, 1e-50, 1e-30, 1e-20, 1e-15, 1e-12, 1e-10, 1e-8,
          1e-6, 1e-5, 1e-4, 1e-3, 0.005, 0.01, 0.025, 0.05, 0.07, 0.075, 0.0751, 0.1, 0.2, 0.25, 0.3,
          0.4, 0.45, 0.49, 0.499999, 0.5]
    ps = sorted(set(ps + [1 - p for p in ps if p >= 1e-15]))
    quant = [{"p": p, "x": f(stats.norm.ppf(p))} for p in ps]
    write("normal.json", {"distribution": dist, "quantile": quant})


# ---------------------------------------------------------------- student t

T_DFS = [1, 1.5, 2, 3, 5, 10, 30, 100, 1000, 1e4, 1e5, 1e6]


def t_closed_form(t, df):
    """(cdf, sf) for df = 1 or 2 in a form that keeps relative accuracy in both tails."""
    if df == 1:
        if t >= 0:
            return 0.5 + math.atan(t) / math.pi, math.atan2(1.0, t) / math.pi
        return math.atan2(1.0, -t) / math.pi, 0.5 + math.atan(-t) / math.pi
    if df == 2:
        r = math.sqrt(2 + t * t)
        small = 1 / (r * (r + abs(t)))  # 0.5 (1 - |t| / r)
        return (1 - small, small) if t >= 0 else (small, 1 - small)
    raise ValueError(df)


def student_t():
    ts = [1e-300, 1e-12, 1e-8, 1e-4, 0.01, 0.1, 0.5, 1.0, 1.5, 1.7, 1.96, 2.0, 2.5, 3.0, 4.0, 5.0,
          7.0, 10.0, 15.0, 20.0, 37.0, 50.0, 100.0, 1e3, 1e5, 1e10]
    ts = ts + [-t for t in ts] + [0.0]
    dist = []
    overridden = 0
    for df in T_DFS:
        for t in ts:
            cdf, sf = f(stats.t.cdf(t, df)), f(stats.t.sf(t, df))
            source = "scipy"
            if df in (1, 2):
                ccdf, csf = t_closed_form(t, df)
                if not (close(cdf, ccdf) and close(sf, csf)):
                    cdf, sf, source = ccdf, csf, "closed-form"
                    overridden += 1
            dist.append({"t": t, "df": df, "cdf": cdf, "sf": sf, "source": source})
    ps = [1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-3, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.45,
          0.49, 0.499, 0.4999999]
    ps = ps + [0.5] + [1 - p for p in ps]
    quant = [{"p": p, "df": df, "t": f(stats.t.ppf(p, df))} for df in T_DFS for p in ps]
    print(f"student t: {overridden} points from closed forms", file=sys.stderr)
    write("student_t.json", {"distribution": dist, "quantile": quant})


# ---------------------------------------------------------------- chi-square

def chi_squared():
    dfs = [1, 1.5, 2, 2.5, 3, 4, 5, 7.3, 10, 15, 20, 30, 50, 75, 99.5, 100]
    multiples = [1e-6, 0.01, 0.1, 0.3, 0.5, 0.8, 1, 1.2, 1.5, 2, 3, 5, 10, 20]
    absolute = [1e-10, 1e-3, 0.5, 2.705543454095404, 3.841458820694124, 6.6348966010212145, 1000.0]
    points = []
    for df in dfs:
        for x in sorted(set([df * m for m in multiples] + absolute)):
            points.append({"x": x, "df": df, "cdf": f(stats.chi2.cdf(x, df)), "sf": f(stats.chi2.sf(x, df))})
    write("chi_squared.json", {"distribution": points})


# ---------------------------------------------------------------- noncentral t

def noncentral_t():
    dfs = [2, 3, 5, 10, 20, 50, 100, 1000, 1e4, 1e5]
    ncs = [0.0, 0.1, 0.5, 1.0, 2.0, 2.8, 3.0, 5.0, 8.0, 10.0]
    ts = [-5.0, -3.0, -2.5758293035489004, -1.959963984540054, -1.0, -0.5, 0.0, 0.5, 1.0,
          1.6448536269514722, 1.959963984540054, 2.0, 2.5, 3.0, 4.0, 5.0, 8.0, 12.0]
    points = []
    skipped = 0
    for df in dfs:
        for nc in ncs:
            for t in ts:
                cdf, sf = f(stats.nct.cdf(t, df, nc)), f(stats.nct.sf(t, df, nc))
                if math.isnan(cdf) or math.isnan(sf):
                    # scipy (Boost) gives NaN for some far lower tails (cdf < ~1e-15); left out.
                    skipped += 1
                    continue
                points.append({"t": t, "df": df, "nc": nc, "cdf": cdf, "sf": sf})
    print(f"noncentral t: {skipped} points where scipy returns NaN left out", file=sys.stderr)
    write("noncentral_t.json", {"distribution": points})


# ---------------------------------------------------------------- t tests

def moments(a):
    a = np.asarray(a, dtype=float)
    return {"n": f(len(a)), "mean": f(np.mean(a)), "variance": f(np.var(a, ddof=1))}


def ttests(rng):
    cases = []
    designs = [
        # (label, n_control, n_treatment, sampler control, sampler treatment)
        ("tiny normal", 2, 3, lambda n: rng.normal(0, 1, n), lambda n: rng.normal(1, 2, n)),
        ("small normal", 5, 7, lambda n: rng.normal(10, 1, n), lambda n: rng.normal(10.5, 3, n)),
        ("unequal variance", 20, 80, lambda n: rng.normal(0, 5, n), lambda n: rng.normal(0.8, 0.5, n)),
        ("lognormal latency", 200, 180, lambda n: rng.lognormal(5, 1, n), lambda n: rng.lognormal(5.1, 1.1, n)),
        ("binary conversion", 1000, 1000, lambda n: rng.binomial(1, 0.75, n), lambda n: rng.binomial(1, 0.78, n)),
        ("binary 80/20 split", 4000, 1000, lambda n: rng.binomial(1, 0.75, n), lambda n: rng.binomial(1, 0.8, n)),
        ("scores 1-5", 300, 310, lambda n: rng.integers(1, 6, n), lambda n: rng.integers(1, 6, n)),
        ("big null", 10000, 10000, lambda n: rng.normal(3, 2, n), lambda n: rng.normal(3, 2, n)),
        ("big strong effect", 20000, 20000, lambda n: rng.normal(0, 1, n), lambda n: rng.normal(0.08, 1, n)),
        ("huge effect tiny p", 500, 500, lambda n: rng.normal(0, 1, n), lambda n: rng.normal(1.5, 1, n)),
        ("negative effect", 50, 60, lambda n: rng.exponential(2, n), lambda n: rng.exponential(1.2, n)),
        ("cost dollars", 1200, 1100, lambda n: rng.gamma(2, 0.002, n), lambda n: rng.gamma(2, 0.0021, n)),
    ]
    for label, nc_, nt_, sc, st in designs:
        control, treatment = sc(nc_).astype(float), st(nt_).astype(float)
        for alpha in (0.05, 0.01, 0.1, 0.2):
            case = {"label": label, "alpha": alpha, "control": moments(control), "treatment": moments(treatment)}
            for key, equal_var in (("welch", False), ("student", True)):
                res = stats.ttest_ind(treatment, control, equal_var=equal_var)
                ci = res.confidence_interval(confidence_level=1 - alpha)
                case[key] = {"statistic": f(res.statistic), "pvalue": f(res.pvalue), "df": f(res.df),
                             "ci_low": f(ci.low), "ci_high": f(ci.high)}
            cases.append(case)
    write("ttest.json", {"cases": cases})


# ---------------------------------------------------------------- gbstats

def sample_stat(values):
    v = np.asarray(values, dtype=float)
    return SampleMeanStatistic(n=len(v), sum=f(v.sum()), sum_squares=f((v * v).sum()))


def stat_json(s):
    return {"n": f(s.n), "sum": f(s.sum), "sum_squares": f(s.sum_squares)}


def gbstats_cases(rng):
    ratio_cases, mean_cases = [], []
    designs = [
        # (label, users control, users treatment, sessions mean, conversion c, conversion t)
        ("small", 30, 35, 2.0, 0.3, 0.35),
        ("medium", 800, 820, 3.0, 0.2, 0.22),
        ("80/20", 4000, 1000, 1.5, 0.5, 0.52),
        ("large null", 20000, 20000, 4.0, 0.1, 0.1),
        ("large effect", 20000, 20000, 4.0, 0.1, 0.108),
    ]
    for label, n_c, n_t, lam, pc, pt in designs:
        groups = {}
        for name, n, p in (("control", n_c, pc), ("treatment", n_t, pt)):
            d = rng.poisson(lam, n) + 1  # sessions per user
            m = rng.binomial(d, p).astype(float)  # conversions per user
            groups[name] = (m, d.astype(float))
        for alpha in (0.05, 0.1):
            stats_ = {}
            for name, (m, d) in groups.items():
                stats_[name] = RatioStatistic(n=len(m), m_statistic=sample_stat(m), d_statistic=sample_stat(d),
                                              m_d_sum_of_products=f((m * d).sum()))
            test = TwoSidedTTest(stats_["control"], stats_["treatment"],
                                 FrequentistConfig(difference_type="absolute", alpha=alpha))
            res = test.compute_result()
            case = {"label": label, "alpha": alpha}
            for name, s in stats_.items():
                case[name] = {"n": f(s.n), "numerator": stat_json(s.m_statistic),
                              "denominator": stat_json(s.d_statistic),
                              "sum_of_products": f(s.m_d_sum_of_products),
                              "mean": f(s.mean), "variance": f(s.variance), "covariance": f(s.covariance)}
            case["point_estimate"] = f(res.expected)
            case["ci_low"], case["ci_high"] = f(res.ci[0]), f(res.ci[1])
            case["p_value"] = f(res.p_value)
            case["dof"] = f(test.dof)
            ratio_cases.append(case)
    # Mean metrics through SampleMeanStatistic (per-user values).
    for label, n_c, n_t, scale_c, scale_t in (("latency", 150, 160, 300.0, 320.0), ("cost", 5000, 5100, 0.002, 0.00199)):
        xc, xt = rng.gamma(2.0, scale_c, n_c), rng.gamma(2.0, scale_t, n_t)
        sc, st = sample_stat(xc), sample_stat(xt)
        for alpha in (0.05, 0.01):
            test = TwoSidedTTest(sc, st, FrequentistConfig(difference_type="absolute", alpha=alpha))
            res = test.compute_result()
            mean_cases.append({"label": label, "alpha": alpha,
                               "control": {**stat_json(sc), "mean": f(sc.mean), "variance": f(sc.variance)},
                               "treatment": {**stat_json(st), "mean": f(st.mean), "variance": f(st.variance)},
                               "point_estimate": f(res.expected), "ci_low": f(res.ci[0]), "ci_high": f(res.ci[1]),
                               "p_value": f(res.p_value), "dof": f(test.dof)})
    write("gbstats_ttest.json", {"ratio_cases": ratio_cases, "mean_cases": mean_cases})


# ---------------------------------------------------------------- chi-square goodness of fit

def goodness_of_fit():
    cases = []
    designs = [
        ([5000, 5000], [0.5, 0.5]),
        ([5063, 4937], [0.5, 0.5]),
        ([5200, 4800], [0.5, 0.5]),
        ([8000, 2000], [0.8, 0.2]),
        ([8100, 1900], [0.8, 0.2]),
        ([79, 21], [80, 20]),
        ([3, 1], [1, 1]),
        ([3340, 3301, 3359], [1, 1, 1]),
        ([3500, 3200, 3300], [1 / 3, 1 / 3, 1 / 3]),
        ([5050, 2480, 2470], [0.5, 0.25, 0.25]),
        ([1200, 1000, 1010, 990, 1005], [0.2, 0.2, 0.2, 0.2, 0.2]),
        ([700, 150, 150], [0.7, 0.15, 0.15]),
        ([60000, 40000], [0.5, 0.5]),  # p far below 1e-300? no: ~1e-2000 underflows to 0
        ([51000, 49000], [0.5, 0.5]),
        ([100, 120, 80, 110, 95, 105, 90, 100], [1] * 8),
    ]
    for observed, weights in designs:
        total = sum(observed)
        expected = [w / sum(weights) * total for w in weights]
        res = stats.chisquare(observed, expected)
        srm = check_srm(observed, weights)
        cases.append({"observed": [f(o) for o in observed], "proportions": [f(w) for w in weights],
                      "statistic": f(res.statistic), "pvalue": f(res.pvalue), "df": f(len(observed) - 1),
                      "gbstats_p": f(srm)})
    # gbstats-only: an arm with zero weight is skipped in the statistic but counts in df.
    srm_only = []
    for observed, weights in (([500, 480, 20], [0.5, 0.5, 0.0]), ([0, 0], [0.5, 0.5])):
        srm_only.append({"observed": [f(o) for o in observed], "proportions": [f(w) for w in weights],
                         "gbstats_p": f(check_srm(observed, weights))})
    write("goodness_of_fit.json", {"cases": cases, "gbstats_only": srm_only})


# ---------------------------------------------------------------- power

EFFECTS = [0.05 / math.sqrt(0.75 * 0.25), 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0]


def power():
    analysis = TTestIndPower()
    grid, nan_points = [], []
    for d in EFFECTS:
        for nobs1 in (2.0, 5.0, 10.0, 30.0, 100.0, 1000.0, 1e4, 1e5):
            for alpha in (0.01, 0.05, 0.1):
                for ratio in (1.0, 0.25, 4.0):
                    for alternative in ("two-sided", "larger", "smaller"):
                        pw = f(analysis.power(effect_size=d, nobs1=nobs1, alpha=alpha, ratio=ratio,
                                              alternative=alternative))
                        point = {"effect_size": d, "nobs1": nobs1, "alpha": alpha, "ratio": ratio,
                                 "alternative": alternative}
                        if not math.isnan(pw):
                            grid.append({**point, "power": pw})
                            continue
                        # statsmodels returns NaN when scipy's nctdtr fails in the far lower tail
                        # (a probability below ~1e-15). Keep the point with what is still known:
                        # the upper rejection tail (statsmodels 'larger' at the per-tail alpha),
                        # which is the whole two-sided power to within that lower tail.
                        if alternative == "two-sided":
                            upper = f(analysis.power(effect_size=d, nobs1=nobs1, alpha=alpha / 2, ratio=ratio,
                                                     alternative="larger"))
                        else:
                            upper = 0.0
                        nan_points.append({**point, "upper_tail": upper})
    solved = []
    for d in EFFECTS:
        for alpha in (0.01, 0.05, 0.1):
            for target in (0.8, 0.9, 0.95):
                for ratio in (1.0, 0.25, 4.0):
                    for alternative in ("two-sided", "larger"):
                        kw = dict(effect_size=d, alpha=alpha, ratio=ratio, alternative=alternative)
                        sm = f(analysis.solve_power(nobs1=None, power=target, **kw))

                        def g(n):
                            return analysis.power(nobs1=n, **kw) - target

                        lo, hi = sm * 0.9, sm * 1.1
                        tight = f(optimize.brentq(g, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps,
                                                  maxiter=500))
                        solved.append({"effect_size": d, "alpha": alpha, "power": target, "ratio": ratio,
                                       "alternative": alternative, "nobs1_statsmodels": sm, "nobs1_tight": tight})
    # The seed's example: baseline 0.75, absolute MDE 0.05, alpha 0.05, power 0.8, equal split.
    seed = [s for s in solved if s["effect_size"] == EFFECTS[0] and s["alpha"] == 0.05 and s["power"] == 0.8
            and s["ratio"] == 1.0 and s["alternative"] == "two-sided"][0]
    assert math.ceil(seed["nobs1_statsmodels"]) == 1179, seed
    for s in solved:
        if math.ceil(s["nobs1_statsmodels"]) != math.ceil(s["nobs1_tight"]) or \
                math.ceil(s["nobs1_statsmodels"] * s["ratio"]) != math.ceil(s["nobs1_tight"] * s["ratio"]):
            print(f"warning: statsmodels' solver tolerance changes the ceiling: {s}", file=sys.stderr)
    print(f"power: {len(nan_points)} grid points where statsmodels returns NaN", file=sys.stderr)
    write("power.json", {"power": grid, "statsmodels_nan": nan_points, "solve": solved})


# ---------------------------------------------------------------- Fieller

def fieller_closed_form(mt, vt, mc, vc, c):
    """Fieller's set {r: (mt - r mc)^2 <= c^2 (vt + r^2 vc)} from the quadratic formula."""
    a = mc * mc - c * c * vc
    b = mt * mc
    k = mt * mt - c * c * vt
    disc = b * b - a * k
    if a > 0:
        root = math.sqrt(disc)
        return "bounded", (b - root) / a, (b + root) / a
    if disc <= 0:
        return "unbounded", None, None
    root = math.sqrt(disc)
    r1, r2 = (b - root) / a, (b + root) / a
    return "exclusive", min(r1, r2), max(r1, r2)


def fieller(rng):
    cases = []
    specs = []
    # Bounded: control mean well away from zero.
    for _ in range(12):
        mc = rng.uniform(0.05, 10)
        specs.append((mc * rng.uniform(0.7, 1.4), (mc * rng.uniform(0.005, 0.2)) ** 2,
                      mc, (mc * rng.uniform(0.005, 0.2)) ** 2))
    # Exclusive: control mean within the noise, treatment clearly away from zero.
    for _ in range(6):
        se_c = rng.uniform(0.5, 2)
        specs.append((rng.uniform(5, 20) * rng.choice([-1, 1]), rng.uniform(0.01, 0.5) ** 2,
                      se_c * rng.uniform(0.1, 1.0) * rng.choice([-1, 1]), se_c ** 2))
    # Unbounded: both within the noise.
    for _ in range(6):
        specs.append((rng.uniform(-0.5, 0.5), rng.uniform(0.5, 2) ** 2, rng.uniform(-0.5, 0.5), rng.uniform(0.5, 2) ** 2))
    # Realistic A/B relative lifts (conversion 0.75, n per arm ~1e3..1e5).
    for n in (1000.0, 5000.0, 20000.0, 100000.0):
        pc, pt = 0.75, 0.75 + rng.uniform(-0.02, 0.02)
        specs.append((pt, pt * (1 - pt) / n, pc, pc * (1 - pc) / n))
    for i, (mt, vt, mc, vc) in enumerate(specs):
        df = float([3, 10, 50, 1000, 1e5][i % 5])
        alpha = [0.05, 0.1, 0.01][i % 3]
        c = f(stats.t.ppf(1 - alpha / 2, df))
        kind, lo, hi = fieller_closed_form(mt, vt, mc, vc, c)
        case = {"treatment_mean": f(mt), "variance_of_treatment_mean": f(vt), "control_mean": f(mc),
                "variance_of_control_mean": f(vc), "df": df, "alpha": alpha, "critical_value": c, "kind": kind}
        if lo is not None:
            case["lower"], case["upper"] = f(lo), f(hi)
        cases.append(case)
    kinds = {k: sum(1 for c in cases if c["kind"] == k) for k in ("bounded", "exclusive", "unbounded")}
    assert all(v > 0 for v in kinds.values()), kinds
    write("fieller.json", {"cases": cases})


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240601)
    normal()
    student_t()
    chi_squared()
    noncentral_t()
    ttests(rng)
    gbstats_cases(rng)
    goodness_of_fit()
    power()
    fieller(rng)


if __name__ == "__main__":
    main()
