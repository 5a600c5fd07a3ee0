#!/usr/bin/env python3
"""Reference values for CUPED on ratio metrics (RatioCUPED), computed from raw per-user data.

Run from the package root (idempotent: fixed seed, same output):

    .venv/bin/python scripts/reference/ratio_cuped_fixtures.py

Writes Tests/BakeoffStatisticsTests/Fixtures/ratio_cuped.json. Versions are printed and recorded in
"generator". Every float is written with repr, so it round-trips exactly.

gbstats 0.8.0 (the version on PyPI) has no regression adjustment for ratio metrics: its
RegressionAdjustedStatistic takes a post and a pre *mean* (SampleMeanStatistic/ProportionStatistic),
and RegressionAdjustedRatioStatistic only exists in later GrowthBook sources. So the expected values
come from an independent numpy computation on the raw users, not from the sums Bakeoff uses:

  * per user, the delta-method linearizations u = (m - R d) / mean(d) of the post ratio R = sum m /
    sum d, and v = (mp - Rp dp) / mean(dp) of the pre ratio Rp = sum mp / sum dp;
  * theta = np.cov(u, v)[0, 1] / np.var(v, ddof=1) on both arms' users pooled into one sample (R, Rp
    and the means of the pooled sample), as gbstats compute_theta pools the users for means; theta is
    0 when an arm has no post or pre units, with fewer than 2 users, or when the pooled var(u) or
    var(v) is below 1e-9 of the size of the terms that cancel in it (the same rule as RatioCUPED);
  * per arm (its own R, Rp, means): adjusted mean R - theta Rp, per-user variance
    np.var(u - theta v, ddof=1); unadjusted mean R and variance np.var(u, ddof=1);
  * absolute scale: the Welch test on per-user pseudo-values w = adjusted mean + (u - theta v) - its
    mean (whose mean and variance are the adjusted ones), with statsmodels CompareMeans
    (ttest_ind and tconfint_diff, usevar="unequal"), checked against scipy.stats.ttest_ind
    (equal_var=False);
  * relative scale: CUPED.welch's formula, lift (adj_t - adj_c) / R_c with the delta-method variance
    var_t / (R_c^2 n_t) + var_c R_t^2 / (R_c^4 n_c), Welch df of the absolute difference, scipy.stats.t.

Cross-checks with gbstats 0.8.0 where it applies (asserted, not written): np.var(u) equals
RatioStatistic.variance; for per-user mean metrics (d = dp = 1) theta, the adjusted means and
variances and the whole TwoSidedTTest result equal gbstats' RegressionAdjustedStatistic (the
reduction RatioCUPED must satisfy).

The grid: three kinds of metric (a conversation-level proportion m ~ Binomial(d, p_user); a
token-count ratio, m the sum of d Gamma draws rounded to integers; a per-user mean, d = dp = 1), group
sizes 30 to 200,000, latent post/pre correlations 0, 0.5, 0.9 and -0.6, lifts including zero, users
without pre-period data (mp = dp = 0; x = 0 with dp = 1 for the mean kind) both naturally (no pre
conversations) and forced for 30% of users, plus degenerate cases (constant pre ratio, an arm without
pre data, two users per arm) and two small cases whose raw users are recorded to test accumulation.
"""

import json
import os
import sys

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

import gbstats
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import RatioStatistic, RegressionAdjustedStatistic, SampleMeanStatistic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures", "ratio_cuped.json")
try:
    from importlib.metadata import version as _version

    GBSTATS_VERSION = _version("gbstats")
except Exception:  # pragma: no cover
    GBSTATS_VERSION = getattr(gbstats, "__version__", "unknown")
GENERATOR = (
    f"scripts/reference/ratio_cuped_fixtures.py; numpy {np.__version__}, scipy {scipy.__version__}, "
    f"statsmodels {statsmodels.__version__}, gbstats {GBSTATS_VERSION} (cross-checks only)"
)

NEGLIGIBLE = 1e-9
ALPHAS = [0.05, 0.1]
TYPES = ["absolute", "relative"]


def f(x):
    return float(x)


# ---------------------------------------------------------------- data


def simulate(rng, kind, n, rho, lift, missing, base):
    """One arm's users as an (n, 4) array of m, d, mp, dp."""
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    if kind == "mean":
        m = np.round(base * (1 + lift) + 2.0 * z[:, 0], 3)
        mp = np.round(base + 1.5 * z[:, 1], 3)
        d = np.ones(n)
        dp = np.ones(n)
        if missing:
            mp[rng.random(n) < missing] = 0.0  # no pre data: x = 0, as gbstats
        return np.column_stack([m, d, mp, dp])
    activity = rng.gamma(2.0, 1.25, size=n)
    d = 1.0 + rng.poisson(activity)
    dp = rng.poisson(1.2 * activity).astype(float)  # some users had no pre-period conversations
    if kind == "proportion":
        logit = np.log(base / (1 - base))
        p = 1 / (1 + np.exp(-(logit + np.log1p(lift) + 0.8 * z[:, 0])))
        pp = 1 / (1 + np.exp(-(logit + 0.8 * z[:, 1])))
        m = rng.binomial(d.astype(int), p).astype(float)
        mp = rng.binomial(dp.astype(int), pp).astype(float)
    else:  # token-count ratio: per-unit Gamma(4, scale) with a per-user scale
        scale_post = base * (1 + lift) / 4 * np.exp(0.35 * z[:, 0])
        scale_pre = base / 4 * np.exp(0.35 * z[:, 1])
        m = np.round(rng.gamma(4.0 * d, scale_post))
        mp = np.where(dp > 0, np.round(rng.gamma(4.0 * np.maximum(dp, 1), scale_pre)), 0.0)
    if missing:
        gone = rng.random(n) < missing
        mp[gone] = 0.0
        dp[gone] = 0.0
    return np.column_stack([m, d, mp, dp])


def sums(users):
    m, d, mp, dp = (users[:, k] for k in range(4))

    def sm(x):
        return {"n": f(len(x)), "sum": f(x.sum()), "sum_squares": f((x * x).sum())}

    return {
        "n": f(len(users)), "numerator": sm(m), "denominator": sm(d), "pre_numerator": sm(mp),
        "pre_denominator": sm(dp), "numerator_denominator": f((m * d).sum()),
        "pre_numerator_pre_denominator": f((mp * dp).sum()), "numerator_pre_numerator": f((m * mp).sum()),
        "denominator_pre_denominator": f((d * dp).sum()), "numerator_pre_denominator": f((m * dp).sum()),
        "denominator_pre_numerator": f((d * mp).sum()),
    }


# ---------------------------------------------------------------- reference computation


def linearize(users):
    """u, v per user and the ratios, with this sample's own R, Rp and means (None when undefined)."""
    m, d, mp, dp = (users[:, k] for k in range(4))
    u = v = None
    r = m.sum() / d.sum() if d.sum() != 0 else 0.0
    rp = mp.sum() / dp.sum() if dp.sum() != 0 else 0.0
    if d.mean() != 0:
        u = (m - r * d) / d.mean()
    if dp.mean() != 0:
        v = (mp - rp * dp) / dp.mean()
    return r, rp, u, v


def negligible(var, num, den):
    """The same zero-variance rule as RatioCUPED.isNegligible, from raw values."""
    n = len(num)
    if n <= 1 or den.mean() == 0:
        return True
    r = num.sum() / den.sum()
    terms = ((num * num).sum() + 2 * abs(r * (num * den).sum()) + r * r * (den * den).sum()) / ((n - 1) * den.mean() ** 2)
    return not (var > NEGLIGIBLE * terms)


def pooled_theta(control, treatment):
    for arm in (control, treatment):
        if arm[:, 1].sum() == 0 or arm[:, 3].sum() == 0:
            return 0.0
    joint = np.vstack([control, treatment])
    if len(joint) <= 1:
        return 0.0
    _, _, u, v = linearize(joint)
    var_u, var_v = np.var(u, ddof=1), np.var(v, ddof=1)
    if negligible(var_v, joint[:, 2], joint[:, 3]) or negligible(var_u, joint[:, 0], joint[:, 1]):
        return 0.0
    return f(np.cov(u, v, ddof=1)[0, 1] / var_v)


def arm_estimates(users, theta):
    n = len(users)
    r, rp, u, v = linearize(users)
    if u is None or n <= 1:
        unadjusted_variance = 0.0
        w = np.zeros(n)
    else:
        unadjusted_variance = f(np.var(u, ddof=1))
        w = u - theta * v if (theta != 0 and v is not None) else u
        # gbstats 0.8.0 RatioStatistic on the same users: the same delta-method variance.
        m, d = users[:, 0], users[:, 1]
        gb = RatioStatistic(
            n=n, m_statistic=SampleMeanStatistic(n=n, sum=f(m.sum()), sum_squares=f((m * m).sum())),
            d_statistic=SampleMeanStatistic(n=n, sum=f(d.sum()), sum_squares=f((d * d).sum())),
            m_d_sum_of_products=f((m * d).sum()))
        assert abs(gb.variance - unadjusted_variance) <= 1e-8 * abs(unadjusted_variance) + 1e-300, (gb.variance, unadjusted_variance)
    adjusted_mean = f(r - theta * rp)
    adjusted_variance = f(np.var(w, ddof=1)) if n > 1 else 0.0
    return {"mean": adjusted_mean, "variance": adjusted_variance, "unadjusted_mean": f(r),
            "unadjusted_variance": unadjusted_variance}, adjusted_mean + (w - w.mean())


def welch(control, treatment, est_c, est_t, w_c, w_t):
    out = []
    nc, nt = len(control), len(treatment)
    for alpha in ALPHAS:
        cm = CompareMeans(DescrStatsW(w_t), DescrStatsW(w_c))
        t_abs, p_abs, df = cm.ttest_ind(usevar="unequal")
        lo_abs, hi_abs = cm.tconfint_diff(alpha=alpha, usevar="unequal")
        sp = stats.ttest_ind(w_t, w_c, equal_var=False)
        assert abs(sp.pvalue - p_abs) <= 1e-10 * p_abs + 1e-300, (sp.pvalue, p_abs)
        diff_abs = est_t["mean"] - est_c["mean"]
        se_abs = np.sqrt(est_t["variance"] / nt + est_c["variance"] / nc)
        for dtype in TYPES:
            if dtype == "absolute":
                diff, se, p, lo, hi = diff_abs, se_abs, p_abs, lo_abs, hi_abs
                stat = t_abs
            else:
                ma, mb = est_c["unadjusted_mean"], est_t["unadjusted_mean"]
                diff = diff_abs / ma
                se = np.sqrt(est_t["variance"] / (ma * ma * nt) + est_c["variance"] * mb * mb / (ma ** 4 * nc))
                stat = diff / se
                p = min(1.0, 2 * stats.t.sf(abs(stat), df))
                half = stats.t.ppf(1 - alpha / 2, df) * se
                lo, hi = diff - half, diff + half
            out.append({"alpha": alpha, "difference_type": dtype, "point_estimate": f(diff), "standard_error": f(se),
                        "statistic": f(stat), "dof": f(df), "p_value": f(p), "ci_low": f(lo), "ci_high": f(hi)})
    return out


def gbstats_mean_check(control, treatment, theta, est_c, est_t, results):
    """For d = dp = 1: gbstats 0.8.0 RegressionAdjustedStatistic must give the same numbers."""

    def stat(users):
        y, x = users[:, 0], users[:, 2]
        n = len(users)
        return RegressionAdjustedStatistic(
            n=n, post_statistic=SampleMeanStatistic(n=n, sum=f(y.sum()), sum_squares=f((y * y).sum())),
            pre_statistic=SampleMeanStatistic(n=n, sum=f(x.sum()), sum_squares=f((x * x).sum())),
            post_pre_sum_of_products=f((y * x).sum()), theta=0)

    def close(a, b, rel=1e-8, absolute=1e-12):
        return abs(a - b) <= absolute + rel * abs(b)

    for r in results:
        test = TwoSidedTTest(stat(control), stat(treatment), FrequentistConfig(difference_type=r["difference_type"], alpha=r["alpha"]))
        g = test.compute_result()
        assert close(f(getattr(test.stat_a, "theta", 0.0)), theta, absolute=1e-10), (test.stat_a, theta)
        assert close(test.stat_a.mean, est_c["mean"]) and close(test.stat_b.mean, est_t["mean"])
        assert close(test.stat_a.variance, est_c["variance"]) and close(test.stat_b.variance, est_t["variance"])
        for key, mine in [("expected", r["point_estimate"]), ("p_value", r["p_value"])]:
            assert close(f(getattr(g, key)), mine), (key, getattr(g, key), mine)
        assert close(f(g.ci[0]), r["ci_low"]) and close(f(g.ci[1]), r["ci_high"]), (g.ci, r)


def case(label, kind, rho, control, treatment, record_users=False):
    theta = pooled_theta(control, treatment)
    est_c, w_c = arm_estimates(control, theta)
    est_t, w_t = arm_estimates(treatment, theta)
    results = welch(control, treatment, est_c, est_t, w_c, w_t) if min(len(control), len(treatment)) > 1 else []
    if kind == "mean" and (control[:, 1] == 1).all() and (treatment[:, 1] == 1).all():
        gbstats_mean_check(control, treatment, theta, est_c, est_t, results)
    out = {"label": label, "kind": kind, "rho": rho, "control": sums(control), "treatment": sums(treatment),
           "theta": theta, "control_estimate": est_c, "treatment_estimate": est_t}
    if record_users:
        out["control_users"] = control.tolist()
        out["treatment_users"] = treatment.tolist()
    out["results"] = results
    return out


# ---------------------------------------------------------------- grid


def main():
    rng = np.random.default_rng(20261124)
    cases = []
    sizes = [(30, 40), (200, 180), (2000, 2000), (20_000, 25_000), (200_000, 200_000)]
    bases = {"proportion": 0.7, "ratio": 210.0, "mean": 10.0}
    for kind in ["proportion", "ratio", "mean"]:
        for nc, nt in sizes:
            for rho in [0.0, 0.5, 0.9, -0.6]:
                lift = [0.0, 0.03, -0.05][int(rng.integers(3))]
                missing = 0.3 if rng.random() < 0.4 else 0.0
                control = simulate(rng, kind, nc, rho, 0.0, missing, bases[kind])
                treatment = simulate(rng, kind, nt, rho, lift, missing, bases[kind])
                label = f"{kind} n={nc}/{nt} rho={rho} lift={lift} missing={missing}"
                cases.append(case(label, kind, rho, control, treatment))

    # Degenerate inputs.
    control = simulate(rng, "proportion", 300, 0.5, 0.0, 0.0, 0.7)
    treatment = simulate(rng, "proportion", 280, 0.5, 0.05, 0.0, 0.7)
    for arm in (control, treatment):
        arm[:, 3] = np.maximum(arm[:, 3], 1) * 2
        arm[:, 2] = 0.25 * arm[:, 3]  # every user's pre ratio is 0.25: var(v) = 0
    cases.append(case("degenerate: constant pre ratio", "proportion", 0.0, control, treatment))
    control = simulate(rng, "ratio", 300, 0.7, 0.0, 0.0, 210.0)
    treatment = simulate(rng, "ratio", 300, 0.7, 0.03, 0.0, 210.0)
    treatment[:, 2:] = 0.0  # no pre data in one arm
    cases.append(case("degenerate: no pre data in treatment", "ratio", 0.7, control, treatment))
    control = simulate(rng, "mean", 500, 0.6, 0.0, 0.0, 10.0)
    treatment = simulate(rng, "mean", 500, 0.6, 0.02, 0.0, 10.0)
    control[:, 2] = 4.0
    treatment[:, 2] = 4.0  # constant covariate, d = dp = 1: gbstats theta 0 too
    cases.append(case("degenerate: constant covariate, mean", "mean", 0.0, control, treatment))
    control = np.array([[2.0, 3.0, 1.0, 2.0], [1.0, 1.0, 2.0, 4.0]])
    treatment = np.array([[3.0, 4.0, 1.0, 1.0], [0.0, 2.0, 2.0, 3.0]])
    cases.append(case("degenerate: two users per arm", "proportion", 0.0, control, treatment, record_users=True))

    # Small drawn cases with their users, to test accumulation with RatioCUPEDMoments.add.
    for label, kind, (nc, nt), rho in [("drawn proportion n=25/30", "proportion", (25, 30), 0.8),
                                       ("drawn ratio n=40/35", "ratio", (40, 35), 0.6)]:
        control = simulate(rng, kind, nc, rho, 0.0, 0.2, bases[kind])
        treatment = simulate(rng, kind, nt, rho, 0.05, 0.2, bases[kind])
        cases.append(case(label, kind, rho, control, treatment, record_users=True))

    with open(OUT, "w") as fh:
        fh.write('{"generator": %s, "cases": [\n' % json.dumps(GENERATOR))
        for i, c in enumerate(cases):
            head = {k: v for k, v in c.items() if k != "results"}
            fh.write(json.dumps(head, allow_nan=False)[:-1] + ', "results": [\n')
            fh.write(",\n".join(" " + json.dumps(r, allow_nan=False) for r in c["results"]))
            fh.write("]}" + (",\n" if i + 1 < len(cases) else "\n"))
        fh.write("]}\n")
    json.loads(open(OUT).read())  # well-formed
    results = [r for c in cases for r in c["results"]]
    significant = sum(1 for r in results if r["p_value"] < r["alpha"])
    zero_theta = sum(1 for c in cases if c["theta"] == 0)
    print(GENERATOR, file=sys.stderr)
    print(f"wrote {os.path.relpath(OUT, ROOT)}: {len(cases)} cases ({zero_theta} with theta 0), {len(results)} results, "
          f"{significant} with p < alpha", file=sys.stderr)


if __name__ == "__main__":
    main()
