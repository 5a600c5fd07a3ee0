#!/usr/bin/env python3
"""Reference values for BayesianEffectTest, from gbstats' EffectBayesianABTest.

Run from the package root (idempotent: same seed, same output):

    .venv/bin/python scripts/reference/bayesian_fixtures.py

Writes Tests/BakeoffStatisticsTests/Fixtures/gbstats_bayesian.json. Versions used for the
committed file: gbstats 0.8.0, scipy 1.17 (recorded in "generator" and printed). Every float is
written with repr, so it round-trips exactly.

Grid: mean (SampleMeanStatistic), proportion (ProportionStatistic) and ratio (RatioStatistic)
metrics; n from 20 to 1e6 with equal and unequal splits; exactly zero, null, small and large
effects; relative and absolute differences; flat, proper-relative and proper-absolute priors;
inverse false and true; alpha 0.05 and 0.1. Each case stores the groups' mean, variance and n
as gbstats computes them, which is all the test needs.
"""

import json
import os
import sys

import numpy as np
import scipy

import gbstats
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.models.statistics import ProportionStatistic, RatioStatistic, SampleMeanStatistic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffStatisticsTests", "Fixtures")
GB_VERSION = getattr(gbstats, "__version__", "0.8.0")
GENERATOR = (
    f"scripts/reference/bayesian_fixtures.py; gbstats {GB_VERSION}, scipy {scipy.__version__}, "
    f"numpy {np.__version__}"
)

NS = [20, 1000, 1_000_000]
# (label, treatment multiplier of the control effect size)
EFFECTS = [("zero", None), ("null", 0.0), ("small", 0.03), ("large", 0.5)]
SPLITS = [("equal", 1.0), ("unequal", 0.25)]
PRIORS = [
    ("flat", None),
    ("proper relative", {"mean": 0.0, "variance": 0.3 ** 2, "type": "relative"}),
    ("proper relative shifted", {"mean": 0.05, "variance": 0.1 ** 2, "type": "relative"}),
    ("proper absolute", {"mean": 0.1, "variance": 0.05, "type": "absolute"}),
]


def f(x):
    return float(x)


def sample_stat(v):
    v = np.asarray(v, dtype=float)
    return SampleMeanStatistic(n=len(v), sum=f(v.sum()), sum_squares=f((v * v).sum()))


def make_stat(kind, rng, n, lift):
    """A gbstats statistic for one group with n units; lift scales the control's parameter.

    Redrawn until the mean and variance are positive (gbstats declines to analyse otherwise).
    """
    while True:
        s = draw_stat(kind, rng, n, lift)
        if s.mean > 0 and s.variance > 0:
            return s


def draw_stat(kind, rng, n, lift):
    if kind == "mean":
        return sample_stat(rng.gamma(2.0, 150.0 * (1 + lift), n))
    if kind == "proportion":
        p = min(0.2 * (1 + lift), 0.95)
        return ProportionStatistic(n=n, sum=f(rng.binomial(n, p)))
    if kind == "ratio":
        d = (rng.poisson(3.0, n) + 1).astype(float)
        m = rng.binomial(d.astype(int), min(0.1 * (1 + lift), 0.95)).astype(float)
        return RatioStatistic(n=n, m_statistic=sample_stat(m), d_statistic=sample_stat(d),
                              m_d_sum_of_products=f((m * d).sum()))
    raise ValueError(kind)


def group_json(s):
    return {"n": f(s.n), "mean": f(s.mean), "variance": f(s.variance)}


def main():
    rng = np.random.default_rng(20240917)
    cases = []
    for kind in ("mean", "proportion", "ratio"):
        for n in NS:
            for split, frac in SPLITS:
                for effect, lift in EFFECTS:
                    n_t = max(int(n * frac), 20)
                    control = make_stat(kind, rng, n, 0.0)
                    if lift is None:
                        # Exactly zero effect: the treatment's statistics equal the control's.
                        if split != "equal":
                            continue
                        treatment = control
                    else:
                        treatment = make_stat(kind, rng, n_t, lift)
                    results = []
                    for i, (prior_label, prior) in enumerate(PRIORS):
                        for difference in ("relative", "absolute"):
                            for inverse in (False, True):
                                alpha = 0.05 if (i + inverse) % 2 == 0 else 0.1
                                if prior is None:
                                    gp = GaussianPrior()
                                    prior_type = "relative"
                                else:
                                    gp = GaussianPrior(mean=prior["mean"], variance=prior["variance"], proper=True)
                                    prior_type = prior["type"]
                                config = EffectBayesianConfig(difference_type=difference, inverse=inverse,
                                                              alpha=alpha, prior_type=prior_type, prior_effect=gp)
                                test = EffectBayesianABTest(control, treatment, config)
                                r = test.compute_result()
                                assert r.error_message is None, r.error_message
                                results.append({
                                    "prior": None if prior is None else {"mean": prior["mean"],
                                                                         "variance": prior["variance"],
                                                                         "type": prior["type"]},
                                    "difference": difference, "inverse": inverse, "alpha": alpha,
                                    "expected": f(r.expected), "stddev": f(r.uplift.stddev),
                                    "chance_to_win": f(r.chance_to_win),
                                    "risk_control": f(r.risk[0]), "risk_treatment": f(r.risk[1]),
                                    "ci_low": f(r.ci[0]), "ci_high": f(r.ci[1]),
                                })
                    cases.append({"label": f"{kind} n={n} {split} {effect}", "kind": kind,
                                  "control": group_json(control), "treatment": group_json(treatment),
                                  "results": results})
    # gbstats' uninformative output (chance 0.5, all else 0) for inputs it cannot analyse.
    degenerate = []
    good = SampleMeanStatistic(n=50, sum=100.0, sum_squares=260.0)
    for label, a, b, difference in (
        ("zero control mean, relative", SampleMeanStatistic(n=50, sum=0.0, sum_squares=10.0), good, "relative"),
        ("empty treatment", good, SampleMeanStatistic(n=0, sum=0.0, sum_squares=0.0), "absolute"),
        ("zero variance", good, SampleMeanStatistic(n=50, sum=100.0, sum_squares=200.0), "absolute"),
    ):
        r = EffectBayesianABTest(a, b, EffectBayesianConfig(difference_type=difference)).compute_result()
        assert r.error_message is not None
        degenerate.append({"label": label, "difference": difference, "control": group_json(a),
                           "treatment": group_json(b), "expected": f(r.expected), "stddev": f(r.uplift.stddev),
                           "chance_to_win": f(r.chance_to_win), "risk_control": f(r.risk[0]),
                           "risk_treatment": f(r.risk[1]), "ci_low": f(r.ci[0]), "ci_high": f(r.ci[1])})
    payload = {"generator": GENERATOR, "cases": cases, "degenerate": degenerate}
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "gbstats_bayesian.json")
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=1, allow_nan=False)
        fh.write("\n")
    print(GENERATOR)
    print(f"wrote {os.path.relpath(path, ROOT)}: {len(cases)} cases, "
          f"{sum(len(c['results']) for c in cases)} results", file=sys.stderr)


if __name__ == "__main__":
    main()
