#!/usr/bin/env python3
"""Independent reference for Bakeoff's metric definitions and statistics (pandas, gbstats, scipy).

Run from the package root (deterministic: fixed seeds, so re-running reproduces the committed files
byte for byte):

    .venv/bin/python scripts/reference/analysis_fixture.py

It GENERATES four small event logs itself (never through the Swift tool), re-reads each log from disk
as an ordinary consumer would, computes the expected results with pandas/gbstats/scipy, and writes

    Tests/BakeoffCoreTests/Fixtures/analysis/<name>.jsonl          the event log (JSON Lines)
    Tests/BakeoffCoreTests/Fixtures/analysis/<name>.expected.json  the expected results

Fixtures:
  basic    ~400 users, control/treatment 80/20, 1-3 conversations per user, 1-4 turns, every feedback
           kind, some errors, tokens, ttft; lines in time order; nothing unusual.
  messy    ~300 users with deliberate edge cases (listed in `messy()` below): lines out of time order,
           feedback before its request, task_completed sent with request_id only, ties and late lines
           with earlier ts among feedback for the same conversation, duplicate request ids, users whose
           later requests carry the other variant, a user whose first request by ts is later in the
           file, a first-request ts tie, feedback for targets that never appear, booleans as values,
           unused feedback names, a request without conversation_id, requests without output_tokens,
           UTC-day boundaries with +02:00 / -01:00 offsets, and a second experiment in the same file.
  abn      3 variants control/a/b split 0.5/0.25/0.25, alpha 0.1.
  oneunit  every user has exactly one conversation with one request and one task_completed, so the
           user-level (ratio, Welch) test equals scipy.stats.ttest_ind(equal_var=False): recorded as
           "welch_scipy_p_value" for task_completion.

Expected-file structure (every float written with repr, so it round-trips exactly):
  {
    "generator": str,
    "experiment": str,                       the experiment to analyze (pass it explicitly)
    "alpha": float,
    "control": "control",
    "split": {variant: planned share, ...}   control first; the allocation to pass to the plan
    "variants": {variant: {"users": int, "requests": int}}
                 users = users whose first request (by ts, ties -> earlier line) carries the variant;
                 requests = non-duplicate requests of those users (whatever variant each one carries)
    "srm_p_value": float                      scipy.stats.chisquare(users, total * shares)
    "data_quality": {"users_in_several_variants", "duplicate_request_ids", "feedback_missing_target"}
    "metrics": [ {                            one per (metric, non-control variant)
        "name", "level", "variant",
        "control":   {"mean", "users", "units"},   user-level: mean = sum m / sum d, users = users
        "treatment": {"mean", "users", "units"},   with d_i > 0, units = sum d
        "absolute_diff", "absolute_ci": [lo, hi], "p_value", "welch_df",
        "relative_lift",                            treatment mean / control mean - 1
        "relative_ci_kind": "bounded" | "exclusive" | "unbounded",
        "relative_ci": [lo, hi] (bounded: the interval; exclusive: [below, above], the lift lies
                        outside) or null (unbounded),
        "naive": {"control": {"mean", "units"}, "treatment": {"mean", "units"},
                  "absolute_diff", "p_value"}       unit = event: scipy ttest_ind, equal_var=True
        "welch_scipy_p_value"                       oneunit only
      } ]
    Statistics that are undefined (a side with fewer than 2 users or zero variance) are null.
    "quantiles": [ {"name", "variant", "value"} ]   numpy.quantile (linear) per variant

    Issue 4 (methods, corrections, Bayesian view, guardrail margins, decision; rules below):
    "sequential": [ {                         plan method sequential, no correction; one per (metric,
        "name", "variant", "absolute_diff",    treatment) with a non-degenerate test: gbstats
        "p_value", "absolute_ci": [lo, hi],    SequentialTwoSidedTTest (N* 5000, the fixture's alpha) on the
        "relative_ci_kind",                    RatioStatistics. relative_ci(_kind): Fieller's set for
        "relative_ci": [lo, hi] | null,        treatment / control - 1 (as the fixed "metrics" section) with
                                               the sequence's multiplier c (below) and variances of the mean
                                               var / n; null kind: control mean 0
        "relative_cs_gbstats": [lo, hi] | null gbstats' delta-method relative sequence (difference_type
      } ]                                      "relative"), for documentation only: not what the report shows
    "quantile_tests": [ {                     one per (quantile metric, treatment)
        "name", "variant",
        "control", "treatment":                the order-statistic summary of the arm (QuantileEstimate's
            {"level", "n", "users", "quantile", "lower", "upper", "below_sum", "below_sum_squares",
             "count_sum", "count_sum_squares", "below_count_sum_product"} | null (no values)
        "fixed", "sequential": {"difference", "p_value", "absolute_ci", "relative_ci"} | null (no test)
      } ]
    "adjusted": [ {                           one per (method fixed | sequential, correction holm | bh,
        "method", "correction", "name",        member of a corrected family, treatment); guardrails are not
        "variant", "kind": "metric" | "quantile", "family": "primary" | "secondary", "family_size",
        "p_value"                              raw p-value at the plan's alpha; null: no test, left out
        "adjusted_p_value", "interval_alpha",  statsmodels multipletests; the per-test level
        "absolute_ci",                         at interval_alpha (sequential: rho tuned at the plan's alpha)
        "significant", "verdict",              adjusted p < alpha; better | worse | changed | none
        "bayesian_ci"                          metrics: gbstats' credible interval at the plan's alpha (a
                                               posterior needs no multiplicity correction)
      } ]
    "bayesian": [ {"name", "variant", "chance_to_win", "mean", "standard_deviation", "ci": [lo, hi],
                   "risk_control", "risk_treatment"} ]
                                               gbstats EffectBayesianABTest: relative, flat prior, inverse
                                               when the goal is down, at alpha; metrics with a test and a
                                               nonzero control mean; risks [control, treatment] as gbstats
    "margins": {set: {metric: {"value", "relative"}}}      the guardrail margin sets used below; a
                                               metric with a margin is a guardrail (set C: two quantiles)
    "guardrail": [ {"margins", "method", "name", "variant", "margin", "relative", "estimate", "bound",
                    "p_value", "status"} ]    per margin set and method (no correction): every guardrail
                                               with a margin and a test, quantile guardrails included
    "decisions": [ {"scenario", "method", "correction", "primary", "margins" (set or null),
        "start_us", "as_of_us"                 the plan's start and report time (microseconds since the
                                               epoch); null: the data's first and last request
        "elapsed_days", "maximum_runtime_days", "minimum_detectable_effect",
        "minimum_detectable_effect_is_relative",
        "actions": {treatment: action}, "action", "treatment"}   the overall decision
      ]                                        actions: ship | roll_back | keep_running | stop_inconclusive

Analysis rules of the issue-4 sections (from the brief, implemented here independently):
  * Tests per (metric, treatment) on the user-level groups (mean = sum m / sum d, delta-method variance,
    n = users). A variance <= 1e-12 mean^2 counts as 0 (rounding noise of constant data). No test with
    fewer than 2 users on a side. Both variances 0: p = 1 and interval [0, 0] when the means are equal
    (such a test enters its family), no test otherwise. Fixed: Welch (scipy t, Welch-Satterthwaite df);
    sequential: gbstats (as above), rho^2 = (-2 log a + log(1 - 2 log a)) / N* always tuned at the
    plan's alpha a, so the p-value (eq. 155: min(1, sqrt(N rho^2 + 1) exp(-rho^2 N d^2 / var / (2 (N rho^2
    + 1))))) does not depend on the level; an interval at level l is d -/+ sqrt(2 (N rho^2 + 1)
    log(sqrt(N rho^2 + 1) / l) / (N rho^2)) se (eq. 9; equal to gbstats' when l = a), and excludes 0
    exactly when p < l. N = users of both arms. The sequential lift interval is Fieller's set for
    treatment / control - 1 with c = sqrt(2 (N rho^2 + 1) log(sqrt(N rho^2 + 1) / l) / (N rho^2)) and the
    per-group variances of the mean var / n; it excludes 0 exactly when p < l (checked).
  * Quantile metrics: per arm, every user of the variant is a cluster (users without values too); the
    quantile is x_(ceil(n p)), the outer-CI order statistics sit at ranks n p -/+ z sqrt(n p (1-p)) with
    z = norm.ppf(0.975), and the variance is gbstats' QuantileClusteredStatistic.variance_init / n (Deng et
    al., without gbstats' 1e-5 floor), as scripts/reference/quantile_fixtures.py. Fixed: normal reference;
    sequential: gbstats' sequence on (quantile, variance * users, users). No test when an arm has no
    values or fewer than 2, a rank bound falls outside [1, n] (n <= z^2 p/(1-p) or n <= z^2 (1-p)/p), or
    the standard error is 0.
  * Families: the primary metric (the plan's; default task_completion) across treatments; all other
    non-guardrail metrics, quantile metrics included, across metrics x treatments; guardrails are not
    corrected. Members without a p-value are left out (m counts the rest). Adjusted p-values: statsmodels
    multipletests "holm" / "fdr_bh". Per-test levels: holm: a rejected test (adjusted p < alpha) gets
    alpha / (m - r + 1), r its 1-based rank (ties take the first rank of their group); every other test
    the level of the first non-rejected one; bh: max(R, 1) alpha / m, R the rejections (Benjamini-
    Yekutieli); none: alpha. Corrected members' intervals are remade at their level (sequential: the
    sequence at that level with rho still tuned at alpha, as above). significant: adjusted p < alpha;
    guardrails: p < alpha.
  * Verdict: not significant -> none; goal none -> changed; else better / worse from the sign of the
    difference (the midpoint of the shown interval) and the goal.
  * Guardrail margins (goal down: higher is worse): d = treatment - control, or (treatment - control) /
    control with the delta-method variance (quantiles: the quantile difference or relative change and
    their standard errors, as the quantile tests); boundary b = +m (higher is worse) or -m.
    Fixed: df = Welch's of the absolute difference on both scales; H0 "harm >= margin": p =
    t.cdf((d - b) / se) (higher is worse) or t.sf((d - b) / se), bound = d +/- t.ppf(1 - alpha) se
    (quantiles: the normal distribution instead of t).
    Sequential (always valid): rho tuned at alpha, n = users of both arms (quantiles: every user of the
    two variants); bound = d +/- h with h the sequence's half-width at level min(2 alpha, 0.999); p2 =
    the two-sided sequential p-value of d - b (checked against gbstats with test_value = b); the
    one-sided p = p2 / 2 when d lies on the harmless side of b, else 1 - p2 / 2 (p < alpha exactly when
    the bound lies inside the margin, checked).
    Status within_margin when p < alpha; beyond_margin when the metric is significantly worse (the
    method's two-sided test) and the harm exceeds the margin; else unclear.
  * Decision: the rules are written above `decide` below.

Definitions implemented here (from the brief, independently of the Swift sources):
  * Only events of "experiment" count. A request whose request_id was already seen (file order) is
    a duplicate: ignored entirely and counted. conversation_id defaults to the request id; status
    defaults to "ok".
  * A user's variant is that of their first request by ts (ties -> earlier line); all their units
    count there. A conversation's user is the user of its first request in file order.
  * Feedback: a request_id target resolves to that request (and, for conversation metrics, to its
    conversation, even if a different conversation_id is given); otherwise conversation_id. A target
    without a request event is "missing" (counted for metric-used names only). The last feedback per
    (unit, name) wins: latest ts, ties -> later line. true/false are 1/0.
  * Units: task_completion / escalation_rate / csat: conversations with such feedback; avg_turns: every
    conversation, value = its requests; thumbs_up_rate: requests with thumbs_up feedback; repeat_usage:
    every user, 1 if requests on >= 2 distinct UTC days; error_rate: every request, 1 if status != ok;
    output_tokens: requests carrying output_tokens. Quantiles: latency_ms / ttft_ms of every
    non-duplicate request (errors included) in the variant of its user.
"""

import json
import math
import os
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import scipy
import statsmodels
from scipy import stats

import gbstats
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.frequentist.tests import FrequentistConfig, SequentialConfig, SequentialTwoSidedTTest, TwoSidedTTest
from gbstats.models.statistics import QuantileClusteredStatistic, RatioStatistic, SampleMeanStatistic
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffCoreTests", "Fixtures", "analysis")
GENERATOR = (
    f"scripts/reference/analysis_fixture.py; pandas {pd.__version__}, scipy {scipy.__version__}, "
    f"gbstats {getattr(gbstats, '__version__', '0.8.0')}, numpy {np.__version__}, statsmodels {statsmodels.__version__}"
)
EXPERIMENT = "support-bot-v2"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
T0 = datetime(2026, 11, 1, 8, 0, 0, tzinfo=timezone.utc)

# name -> (level, source)
METRICS = [
    ("task_completion", "conversation", ("feedback", "task_completed")),
    ("escalation_rate", "conversation", ("feedback", "escalated")),
    ("csat", "conversation", ("feedback", "csat")),
    ("avg_turns", "conversation", ("turns", None)),
    ("thumbs_up_rate", "request", ("feedback", "thumbs_up")),
    ("repeat_usage", "user", ("repeat", None)),
    ("error_rate", "request", ("error", None)),
    ("output_tokens", "request", ("field", "output_tokens")),
]
USED_FEEDBACK = {src[1] for _, _, src in METRICS if src[0] == "feedback"}
QUANTILES = [
    ("latency_p50", "latency_ms", 0.50),
    ("latency_p95", "latency_ms", 0.95),
    ("latency_p99", "latency_ms", 0.99),
    ("ttft_p50", "ttft_ms", 0.50),
    ("ttft_p95", "ttft_ms", 0.95),
]


def f(x):
    return None if x is None else float(x)


# ====================================================================== timestamps


def ts(dt, style="ms"):
    """Format a UTC datetime: "ms" 2026-11-01T10:00:00.123Z, "s" without fraction, "+02:00"/"-01:00"
    the same instant in that offset (with milliseconds)."""
    dt = dt.astimezone(timezone.utc)
    ms = dt.microsecond // 1000
    if style == "ms":
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"
    if style == "s":
        assert ms == 0
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    sign = 1 if style[0] == "+" else -1
    hours, minutes = int(style[1:3]), int(style[4:6])
    local = dt + sign * timedelta(hours=hours, minutes=minutes)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}" + style


def parse_ts_us(s):
    """Integer microseconds since the epoch (exact; no float rounding)."""
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    assert dt.tzinfo is not None, s
    return (dt - EPOCH) // timedelta(microseconds=1)


def ms_round(dt):
    return dt.replace(microsecond=(dt.microsecond // 1000) * 1000)


# ====================================================================== generation


class Gen:
    """Deterministic population generator. Events carry a private "_t" (a UTC datetime used for
    ordering) and "_style" (timestamp format); both are stripped when written."""

    def __init__(self, seed, experiment=EXPERIMENT, prefix=""):
        self.rng = np.random.default_rng(seed)
        self.experiment = experiment
        self.prefix = prefix
        self.n_user = self.n_conv = self.n_req = 0

    def uid(self):
        self.n_user += 1
        return f"{self.prefix}u-{self.n_user}"

    def cid(self):
        self.n_conv += 1
        return f"{self.prefix}c-{self.n_conv}"

    def rid(self):
        self.n_req += 1
        return f"{self.prefix}r-{self.n_req}"

    def request(self, t, variant, user, conv, req, latency_scale=1.0, p_error=0.03, p_ttft=0.9,
                p_tokens=1.0, explicit_ok=0.3):
        rng = self.rng
        latency = round(float(rng.lognormal(math.log(700 * latency_scale), 0.45)), 1)
        e = {"event": "request", "_t": ms_round(t), "experiment": self.experiment, "variant": variant,
             "user_id": user, "conversation_id": conv, "request_id": req, "latency_ms": latency}
        if rng.random() < p_ttft:
            e["ttft_ms"] = round(latency * float(rng.uniform(0.08, 0.3)), 1)
        if rng.random() < 0.5:
            e["input_tokens"] = int(rng.integers(40, 900))
        if rng.random() < p_tokens:
            e["output_tokens"] = int(rng.gamma(2.0, 90.0 * (1 + 0.4 * (latency_scale - 1)))) + 1
        if rng.random() < p_error:
            e["status"] = str(rng.choice(["error", "timeout", "rate_limited"]))
        elif rng.random() < explicit_ok:
            e["status"] = "ok"
        return e

    def feedback(self, t, user, name, value, conv=None, req=None):
        e = {"event": "feedback", "_t": ms_round(t), "experiment": self.experiment, "user_id": user}
        if conv is not None:
            e["conversation_id"] = conv
        if req is not None:
            e["request_id"] = req
        e["name"] = name
        e["value"] = value
        return e

    def binary(self, p, boolean_share):
        v = bool(self.rng.random() < p)
        return v if self.rng.random() < boolean_share else int(v)

    def population(self, n_users, split, effects, days=6.0, conv_weights=(0.45, 0.35, 0.2),
                   max_turns=4, p_task=0.85, p_esc=0.5, p_csat=0.3, p_thumbs=0.25, boolean_share=0.0,
                   task_by_request=0.0, one_unit=False):
        """Users with conversations, requests and feedback. `effects[variant]` gives task, esc,
        thumbs probabilities, csat shift, latency scale and error probability."""
        rng = self.rng
        names = list(split)
        probs = np.array([split[k] for k in names])
        events = []
        for _ in range(n_users):
            user = self.uid()
            variant = names[int(rng.choice(len(names), p=probs))]
            eff = effects[variant]
            start = T0 + timedelta(seconds=float(rng.uniform(0, days * 86400)))
            n_conv = 1 if one_unit else int(rng.choice([1, 2, 3], p=conv_weights))
            t = start
            for _ in range(n_conv):
                conv = self.cid()
                n_turns = 1 if one_unit else int(rng.integers(1, max_turns + 1))
                reqs = []
                for _ in range(n_turns):
                    req = self.rid()
                    reqs.append((req, t))
                    events.append(self.request(t, variant, user, conv, req, eff["latency"],
                                               p_error=eff["error"]))
                    if not one_unit and rng.random() < p_thumbs:
                        events.append(self.feedback(t + timedelta(seconds=float(rng.uniform(2, 40))), user,
                                                    "thumbs_up", self.binary(eff["thumbs"], boolean_share),
                                                    conv=conv if rng.random() < 0.5 else None, req=req))
                    t += timedelta(seconds=float(rng.uniform(15, 150)))
                end = t
                if one_unit or rng.random() < p_task:
                    value = self.binary(eff["task"], boolean_share)
                    ft = end + timedelta(seconds=float(rng.uniform(1, 60)))
                    if rng.random() < task_by_request:
                        req = reqs[int(rng.integers(0, len(reqs)))][0]
                        events.append(self.feedback(ft, user, "task_completed", value, req=req))
                    else:
                        events.append(self.feedback(ft, user, "task_completed", value, conv=conv))
                if not one_unit and rng.random() < p_esc:
                    events.append(self.feedback(end + timedelta(seconds=float(rng.uniform(1, 90))), user,
                                                "escalated", self.binary(eff["esc"], boolean_share), conv=conv))
                if not one_unit and rng.random() < p_csat:
                    score = int(np.clip(round(float(rng.normal(3.6 + eff["csat"], 1.1))), 1, 5))
                    events.append(self.feedback(end + timedelta(seconds=float(rng.uniform(1, 120))), user,
                                                "csat", score, conv=conv))
                # Next conversation: minutes to ~2 days later (so some users span UTC days).
                t = end + timedelta(seconds=float(rng.exponential(14 * 3600)))
        return events


def write_log(name, events):
    path = os.path.join(OUT, f"{name}.jsonl")
    with open(path, "w") as fh:
        for e in events:
            out = {}
            for k, v in e.items():
                if k == "_t":
                    out["ts"] = ts(v, e.get("_style", "ms"))
                elif k == "_style":
                    continue
                else:
                    out[k] = v
            # "event" and "ts" first, as in the documented format.
            ordered = {"event": out.pop("event"), "ts": out.pop("ts")}
            ordered.update(out)
            fh.write(json.dumps(ordered, separators=(",", ":"), ensure_ascii=False) + "\n")
    size = os.path.getsize(path)
    assert size < 500_000, (name, size)
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(events)} lines, {size} bytes)", file=sys.stderr)
    return path


def time_sorted(events):
    return sorted(events, key=lambda e: e["_t"])  # stable


TWO_ARM_EFFECTS = {
    "control": {"task": 0.72, "esc": 0.20, "thumbs": 0.60, "csat": 0.0, "latency": 1.0, "error": 0.03},
    "treatment": {"task": 0.80, "esc": 0.14, "thumbs": 0.70, "csat": 0.3, "latency": 1.15, "error": 0.05},
}


def basic():
    g = Gen(20261101)
    split = {"control": 0.8, "treatment": 0.2}
    events = time_sorted(g.population(400, split, TWO_ARM_EFFECTS, conv_weights=(0.55, 0.3, 0.15),
                                      max_turns=3, p_thumbs=0.2, p_esc=0.4, p_csat=0.25))
    return write_log("basic", events), split, 0.05


def abn():
    g = Gen(20261102)
    split = {"control": 0.5, "a": 0.25, "b": 0.25}
    effects = {
        "control": TWO_ARM_EFFECTS["control"],
        "a": {"task": 0.78, "esc": 0.17, "thumbs": 0.66, "csat": 0.2, "latency": 0.9, "error": 0.02},
        "b": {"task": 0.70, "esc": 0.25, "thumbs": 0.55, "csat": -0.2, "latency": 1.3, "error": 0.06},
    }
    events = time_sorted(g.population(360, split, effects, conv_weights=(0.5, 0.35, 0.15), max_turns=3,
                                      p_thumbs=0.2, boolean_share=0.3))
    return write_log("abn", events), split, 0.1


def oneunit():
    g = Gen(20261103)
    split = {"control": 0.5, "treatment": 0.5}
    effects = {k: dict(v, error=0.08) for k, v in TWO_ARM_EFFECTS.items()}
    events = time_sorted(g.population(240, split, effects, one_unit=True, boolean_share=0.2))
    return write_log("oneunit", events), split, 0.05


def messy():
    """Edge cases, each marked EDGE below."""
    g = Gen(20261104)
    rng = g.rng
    split = {"control": 0.8, "treatment": 0.2}
    base = g.population(290, split, TWO_ARM_EFFECTS, conv_weights=(0.5, 0.35, 0.15), max_turns=3,
                        p_thumbs=0.2, boolean_share=0.4,               # EDGE: booleans as values
                        task_by_request=0.3)                           # EDGE: task_completed by request_id only
    reqs = [e for e in base if e["event"] == "request"]
    by_user = {}
    for e in reqs:
        by_user.setdefault(e["user_id"], []).append(e)

    # EDGE: requests without output_tokens (not units of output_tokens).
    for e in rng.choice(reqs, size=25, replace=False):
        e.pop("output_tokens", None)

    # EDGE: some timestamps without fractional seconds or with an offset (same instants).
    for e in base:
        r = rng.random()
        if r < 0.05:
            e["_t"] = e["_t"].replace(microsecond=0)
            e["_style"] = "s"
        elif r < 0.12:
            e["_style"] = "+02:00"

    # EDGE: users whose later requests carry the other variant (the user stays in the first one).
    multi_users = [u for u, rs in by_user.items() if len(rs) >= 3]
    flipped = list(rng.choice(multi_users, size=6, replace=False))
    for u in flipped:
        first = min(by_user[u], key=lambda e: e["_t"])
        other = "treatment" if first["variant"] == "control" else "control"
        for e in by_user[u]:
            if e is not first and rng.random() < 0.7:
                e["variant"] = other
        if all(e["variant"] == first["variant"] for e in by_user[u]):
            by_user[u][-1]["variant"] = other

    # EDGE: feedback names no metric uses (ignored, never "missing").
    for e in rng.choice(reqs, size=20, replace=False):
        base.append(g.feedback(e["_t"] + timedelta(seconds=5), e["user_id"], str(rng.choice(["regenerated", "copied"])),
                               1, conv=e["conversation_id"], req=e["request_id"]))

    # Out-of-order file: every event's position is its ts plus noise of up to +-3 h, so lines are out of
    # time order and a fair share of feedback lands before its request.                 EDGE
    noisy = sorted(base, key=lambda e: e["_t"] + timedelta(seconds=float(rng.uniform(-3, 3) * 3600)))

    # Expected outcomes of the hand-made cases, verified against the reference after it has run:
    # (metric, unit key, value or None for "not a unit") and ("variant", user, variant).
    checks = []

    def at(fraction):
        return int(fraction * len(noisy))

    inserts = []  # (position in `noisy`, order, event); applied from the end so positions stay valid

    # EDGE: two task_completed feedbacks for one conversation with EQUAL ts: the later line wins.
    conv_tie = [e for e in reqs if e["user_id"] not in flipped][10]
    t_tie = conv_tie["_t"] + timedelta(hours=1)
    inserts.append((at(0.30), 0, g.feedback(t_tie, conv_tie["user_id"], "task_completed", 0, conv=conv_tie["conversation_id"])))
    inserts.append((at(0.60), 0, g.feedback(t_tie, conv_tie["user_id"], "task_completed", True, conv=conv_tie["conversation_id"])))
    # ...and the same for escalated, the other way round (later line says 0).
    inserts.append((at(0.31), 0, g.feedback(t_tie, conv_tie["user_id"], "escalated", 1, conv=conv_tie["conversation_id"])))
    inserts.append((at(0.61), 0, g.feedback(t_tie, conv_tie["user_id"], "escalated", 0, conv=conv_tie["conversation_id"])))
    checks += [("task_completion", conv_tie["conversation_id"], 1.0), ("escalation_rate", conv_tie["conversation_id"], 0.0)]

    # EDGE: a later line with an EARLIER ts loses.
    conv_late = [e for e in reqs if e["user_id"] not in flipped][40]
    t_late = conv_late["_t"] + timedelta(hours=2)
    inserts.append((at(0.20), 0, g.feedback(t_late, conv_late["user_id"], "task_completed", 1, conv=conv_late["conversation_id"])))
    inserts.append((at(0.80), 0, g.feedback(t_late - timedelta(seconds=10), conv_late["user_id"], "task_completed", 0,
                                            conv=conv_late["conversation_id"])))
    inserts.append((at(0.21), 0, g.feedback(t_late, conv_late["user_id"], "csat", 5, conv=conv_late["conversation_id"])))
    inserts.append((at(0.81), 0, g.feedback(t_late - timedelta(milliseconds=1), conv_late["user_id"], "csat", 1,
                                            conv=conv_late["conversation_id"])))
    checks += [("task_completion", conv_late["conversation_id"], 1.0), ("csat", conv_late["conversation_id"], 5.0)]
    # Thumbs on one request: a tie on ts (later line wins) after an earlier-ts line.
    r_th = [e for e in reqs if e["user_id"] not in flipped][70]
    t_th = r_th["_t"] + timedelta(minutes=30)
    inserts.append((at(0.40), 0, g.feedback(t_th, r_th["user_id"], "thumbs_up", False, req=r_th["request_id"])))
    inserts.append((at(0.50), 0, g.feedback(t_th, r_th["user_id"], "thumbs_up", True, req=r_th["request_id"])))
    inserts.append((at(0.70), 0, g.feedback(t_th - timedelta(minutes=1), r_th["user_id"], "thumbs_up", False,
                                            req=r_th["request_id"])))
    checks.append(("thumbs_up_rate", r_th["request_id"], 1.0))

    # EDGE: feedback with request_id AND a different (existing) conversation_id: the request's wins.
    r_a = [e for e in reqs if e["user_id"] not in flipped][100]
    r_b = [e for e in reqs if e["user_id"] not in flipped and e["conversation_id"] != r_a["conversation_id"]][130]
    inserts.append((at(0.9), 0, g.feedback(r_a["_t"] + timedelta(days=3), r_a["user_id"], "escalated", True,
                                           conv=r_b["conversation_id"], req=r_a["request_id"])))
    checks.append(("escalation_rate", r_a["conversation_id"], 1.0))

    # EDGE: feedback placed before its request in the file (explicitly, besides the noise).
    r_early = [e for e in reqs if e["user_id"] not in flipped][160]
    inserts.append((0, 0, g.feedback(r_early["_t"] + timedelta(minutes=3), r_early["user_id"], "task_completed", 1,
                                     req=r_early["request_id"])))

    # EDGE: duplicate request ids, later in the file, with different fields (ignored entirely; if they
    # counted they would change latency, errors, turns, tokens, days).
    dup_src = [e for e in reqs if e["user_id"] not in flipped]
    for i, k in enumerate((5, 55, 105, 155, 205)):
        src = dup_src[k]
        pos = next(j for j, e in enumerate(noisy) if e is src)
        d = dict(src)
        if i == 0:
            pass  # an exact copy
        else:
            d["latency_ms"] = 99999.0 + i
            d["ttft_ms"] = 55555.0 + i
            d["status"] = "error"
            d["output_tokens"] = 100000
            d["_t"] = src["_t"] + timedelta(days=2)
            d["_style"] = "ms"
            if i >= 3:
                d["conversation_id"] = f"c-dup-{i}"  # would be a new conversation if counted
                checks.append(("avg_turns", d["conversation_id"], None))
            checks.append(("error_rate", src["request_id"], 0.0 if src.get("status", "ok") == "ok" else 1.0))
        inserts.append((min(pos + 1 + 7 * i, len(noisy)), 0, d))

    # EDGE: feedback whose target never appears (metric names count as missing; unused names do not).
    ghost = [
        g.feedback(T0 + timedelta(days=1), "u-1", "task_completed", 1, conv="c-ghost-1"),
        g.feedback(T0 + timedelta(days=1, hours=1), "u-2", "escalated", False, conv="c-ghost-2"),
        g.feedback(T0 + timedelta(days=2), "u-3", "thumbs_up", 1, req="r-ghost-1"),
        g.feedback(T0 + timedelta(days=2), "u-3", "csat", 4, req="r-ghost-2", conv="c-ghost-3"),
        g.feedback(T0 + timedelta(days=3), "u-4", "task_completed", 0, req="r-ghost-3"),
        g.feedback(T0 + timedelta(days=3), "u-4", "regenerated", 1, req="r-ghost-4"),  # unused: not counted
    ]
    for i, e in enumerate(ghost):
        inserts.append((at(0.1 + 0.15 * i), 0, e))

    hand = []  # hand-made users, appended at chosen places
    # EDGE: a user whose first request by ts appears LATER in the file (variant treatment wins).
    u = g.uid()
    c1, c2 = g.cid(), g.cid()
    r_late_first = g.request(T0 + timedelta(days=1, hours=2), "treatment", u, c1, g.rid())
    r_early_line = g.request(T0 + timedelta(days=1, hours=5), "control", u, c2, g.rid())
    inserts.append((at(0.25), 0, r_early_line))
    inserts.append((at(0.75), 0, r_late_first))
    inserts.append((at(0.76), 0, g.feedback(T0 + timedelta(days=1, hours=6), u, "task_completed", 1, conv=c2)))
    inserts.append((at(0.77), 0, g.feedback(T0 + timedelta(days=1, hours=6), u, "task_completed", 0, conv=c1)))
    checks.append(("variant", u, "treatment"))
    # EDGE: first-request ts tie: the earlier line (control) wins.
    u = g.uid()
    c1 = g.cid()
    t = T0 + timedelta(days=2, hours=3)
    inserts.append((at(0.45), 0, g.request(t, "control", u, c1, g.rid())))
    inserts.append((at(0.46), 0, g.request(t, "treatment", u, c1, g.rid())))
    inserts.append((at(0.47), 0, g.feedback(t + timedelta(minutes=2), u, "task_completed", 1, conv=c1)))
    checks += [("variant", u, "control"), ("avg_turns", c1, 2.0)]

    # EDGE: a request without conversation_id (its conversation is its request id), with conversation-
    # level feedback addressed both ways.
    for k in range(2):
        u = g.uid()
        r = g.rid()
        e = g.request(T0 + timedelta(days=3, hours=k), "treatment" if k == 0 else "control", u, None, r)
        e.pop("conversation_id")
        inserts.append((at(0.5 + 0.01 * k), 0, e))
        inserts.append((at(0.52 + 0.01 * k), 0, g.feedback(T0 + timedelta(days=3, hours=k, minutes=5), u,
                                                           "task_completed", 1, conv=r)))
        inserts.append((at(0.54 + 0.01 * k), 0, g.feedback(T0 + timedelta(days=3, hours=k, minutes=6), u,
                                                           "csat", 2 + k, req=r)))
        checks += [("task_completion", r, 1.0), ("csat", r, 2.0 + k), ("avg_turns", r, 1.0)]

    # EDGE: UTC days around midnight with offsets. (user, variant, [(utc instant, style)], repeat?)
    midnight = T0.replace(hour=0) + timedelta(days=3)  # 2026-11-04T00:00Z
    day_cases = [
        # 22:30Z and 01:15+02:00 (= 23:15Z the same UTC day) -> one day
        ("treatment", [(midnight - timedelta(minutes=90), "ms"), (midnight - timedelta(minutes=45), "+02:00")]),
        # 23:50Z and 00:10Z the next day -> two days
        ("control", [(midnight - timedelta(minutes=10), "ms"), (midnight + timedelta(minutes=10), "ms")]),
        # 23:00Z and 02:30+02:00 (= 00:30Z next day) -> two days
        ("treatment", [(midnight - timedelta(minutes=60), "s"), (midnight + timedelta(minutes=30), "+02:00")]),
        # 01:30+02:00 (= 23:30Z) and 23:59:59.999Z -> one day
        ("control", [(midnight - timedelta(minutes=30), "+02:00"), (midnight - timedelta(milliseconds=1), "ms")]),
        # 23:30-01:00 (= 00:30Z next day) and 00:45Z -> one day (both on the 4th)
        ("treatment", [(midnight + timedelta(minutes=30), "-01:00"), (midnight + timedelta(minutes=45), "ms")]),
    ]
    for k, (variant, instants) in enumerate(day_cases):
        u = g.uid()
        checks.append(("repeat_usage", u, [0.0, 1.0, 1.0, 0.0, 0.0][k]))
        c = g.cid()
        for j, (t, style) in enumerate(instants):
            e = g.request(t, variant, u, c, g.rid(), p_error=0.0)
            e["_style"] = style
            inserts.append((at(0.55 + 0.03 * k + 0.01 * j), 0, e))
        inserts.append((at(0.56 + 0.03 * k), 0, g.feedback(instants[-1][0] + timedelta(minutes=1), u, "task_completed",
                                                           k % 2, conv=c)))

    # EDGE: another experiment in the same file, reusing some user ids (with other variants there).
    other = Gen(20261105, experiment="search-ranker-v1", prefix="x")
    other_events = other.population(30, {"control": 0.5, "treatment": 0.5}, TWO_ARM_EFFECTS)
    shared_users = ["u-1", "u-2", "u-3", "u-4", "u-5", "u-6"]
    for e in other_events:
        n = int(e["user_id"].split("-")[1])
        if n <= len(shared_users):
            e["user_id"] = shared_users[n - 1]
    other_events.append(other.feedback(T0 + timedelta(days=2), "u-1", "task_completed", 1, conv="xc-ghost"))
    other_events.append(other.feedback(T0 + timedelta(days=2), "u-1", "thumbs_up", 1, req="r-1"))  # main-exp id
    for e in other_events:
        inserts.append((int(rng.integers(0, len(noisy) + 1)), 1, e))

    # Apply: stable by position; several at one position keep list order.
    order = sorted(range(len(inserts)), key=lambda i: (inserts[i][0], i))
    out = []
    ins_idx = 0
    for pos in range(len(noisy) + 1):
        while ins_idx < len(order) and inserts[order[ins_idx]][0] == pos:
            out.append(inserts[order[ins_idx]][2])
            ins_idx += 1
        if pos < len(noisy):
            out.append(noisy[pos])
    assert ins_idx == len(order)
    return write_log("messy", out), split, 0.05, checks


# ====================================================================== reference analysis


def load(path, experiment):
    rows = []
    with open(path) as fh:
        for line_no, line in enumerate(fh):
            e = json.loads(line)
            e["_line"] = line_no
            rows.append(e)
    rows = [e for e in rows if e["experiment"] == experiment]
    return rows


def feedback_value(v):
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    return float(v)


def build_units(path, experiment):
    rows = load(path, experiment)
    req_rows = [e for e in rows if e["event"] == "request"]
    fb_rows = [e for e in rows if e["event"] == "feedback"]

    # --- requests, duplicates (file order)
    seen = set()
    kept = []
    duplicates = 0
    for e in sorted(req_rows, key=lambda e: e["_line"]):
        if e["request_id"] in seen:
            duplicates += 1
            continue
        seen.add(e["request_id"])
        kept.append(e)
    req = pd.DataFrame({
        "line": [e["_line"] for e in kept],
        "ts": [parse_ts_us(e["ts"]) for e in kept],
        "variant": [e["variant"] for e in kept],
        "user": [e["user_id"] for e in kept],
        "conversation": [e.get("conversation_id", e["request_id"]) for e in kept],
        "request": [e["request_id"] for e in kept],
        "latency_ms": [float(e["latency_ms"]) for e in kept],
        "ttft_ms": [float(e["ttft_ms"]) if "ttft_ms" in e else np.nan for e in kept],
        "output_tokens": [float(e["output_tokens"]) if "output_tokens" in e else np.nan for e in kept],
        "status": [e.get("status", "ok") for e in kept],
    })
    # UTC calendar day
    req["day"] = req["ts"] // (86400 * 10**6)

    # --- user assignment: first request by ts, ties -> earlier line
    first = req.sort_values(["ts", "line"]).groupby("user", sort=False).head(1)
    user_variant = dict(zip(first["user"], first["variant"]))
    several = int((req.groupby("user")["variant"].nunique() > 1).sum())
    req["assigned"] = req["user"].map(user_variant)

    # --- conversations: user of the first request in file order
    conv_first = req.sort_values("line").groupby("conversation", sort=False).head(1)
    conv_user = dict(zip(conv_first["conversation"], conv_first["user"]))
    turns = req.groupby("conversation").size()
    req_conv = dict(zip(req["request"], req["conversation"]))
    req_user = dict(zip(req["request"], req["user"]))

    # --- feedback targets
    missing = 0
    fb = []
    for e in fb_rows:
        name = e["name"]
        if "request_id" in e:
            r = e["request_id"]
            if r not in req_conv:
                missing += name in USED_FEEDBACK
                continue
            target_req, target_conv = r, req_conv[r]
        else:
            c = e["conversation_id"]
            if c not in conv_user:
                missing += name in USED_FEEDBACK
                continue
            target_req, target_conv = None, c
        if name not in USED_FEEDBACK:
            continue
        fb.append({"line": e["_line"], "ts": parse_ts_us(e["ts"]), "name": name, "request": target_req,
                   "conversation": target_conv, "value": feedback_value(e["value"])})
    fb = pd.DataFrame(fb, columns=["line", "ts", "name", "request", "conversation", "value"])

    # --- per-unit values: DataFrame(metric, user, value)
    units = []

    def add(metric, keys, users, values):
        units.append(pd.DataFrame({"metric": metric, "key": list(keys), "user": list(users),
                                   "value": np.asarray(values, float)}))

    for name, level, (kind, arg) in METRICS:
        if kind == "feedback":
            sub = fb[fb["name"] == arg].sort_values(["ts", "line"])
            if level == "conversation":
                last = sub.groupby("conversation", sort=False).tail(1)
                add(name, last["conversation"], last["conversation"].map(conv_user), last["value"])
            else:  # request level: feedback addressed to a request
                sub = sub[sub["request"].notna()]
                last = sub.groupby("request", sort=False).tail(1)
                add(name, last["request"], last["request"].map(req_user), last["value"])
        elif kind == "turns":
            add(name, turns.index, turns.index.map(conv_user), turns.values)
        elif kind == "repeat":
            days = req.groupby("user")["day"].nunique()
            add(name, days.index, days.index, (days.values >= 2).astype(float))
        elif kind == "error":
            add(name, req["request"], req["user"], (req["status"] != "ok").astype(float))
        elif kind == "field":
            sub = req[req[arg].notna()]
            add(name, sub["request"], sub["user"], sub[arg])
    units = pd.concat(units, ignore_index=True)
    units["variant"] = units["user"].map(user_variant)
    assert units["variant"].notna().all()

    quality = {"users_in_several_variants": several, "duplicate_request_ids": duplicates,
               "feedback_missing_target": missing}
    return req, user_variant, units, quality


def fieller(mt, vt, mc, vc, c):
    """{rho: (mt - rho mc)^2 <= c^2 (vt + rho^2 vc)}; returns kind, lower, upper for rho."""
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


def close(a, b, rel=1e-12, abs_=1e-15):
    return abs(a - b) <= max(rel * abs(b), abs_)


def ratio_stat(per_user):
    m = per_user["m"].to_numpy(float)
    d = per_user["d"].to_numpy(float)
    n = len(m)
    return RatioStatistic(n=n, m_statistic=SampleMeanStatistic(n=n, sum=float(m.sum()), sum_squares=float((m * m).sum())),
                          d_statistic=SampleMeanStatistic(n=n, sum=float(d.sum()), sum_squares=float((d * d).sum())),
                          m_d_sum_of_products=float((m * d).sum()))


def compare(units, metric, level, control, variant, alpha, with_welch):
    u = units[units["metric"] == metric]
    per_user = u.groupby(["variant", "user"])["value"].agg(m="sum", d="size").reset_index()
    groups = {v: per_user[per_user["variant"] == v] for v in (control, variant)}
    stat = {v: ratio_stat(groups[v]) for v in groups}
    res = {"name": metric, "level": level, "variant": variant}
    for side, v in (("control", control), ("treatment", variant)):
        s = stat[v]
        res[side] = {"mean": f(s.mean) if s.d_statistic.sum > 0 else None, "users": int(s.n),
                     "units": f(s.d_statistic.sum)}
    sc, st = stat[control], stat[variant]
    defined = sc.n >= 2 and st.n >= 2 and sc.variance > 0 and st.variance > 0 and sc.mean != 0
    for key in ("absolute_diff", "absolute_ci", "p_value", "welch_df", "relative_lift", "relative_ci_kind",
                "relative_ci"):
        res[key] = None
    if defined:
        test = TwoSidedTTest(sc, st, FrequentistConfig(difference_type="absolute", alpha=alpha))
        result = test.compute_result()
        assert result.error_message is None, result.error_message
        diff = test.point_estimate
        se = math.sqrt(test.variance)
        df = test.dof
        tstat = diff / se
        # gbstats computes 2 * (1 - cdf); the survival function is the same value without the
        # cancellation below ~1e-16 (the difference is far under the test tolerance).
        p = 2 * stats.t.sf(abs(tstat), df)
        assert abs(p - result.p_value) < 1e-14, (metric, p, result.p_value)
        assert close(diff, result.expected) and close(result.ci[0], diff - stats.t.ppf(1 - alpha / 2, df) * se)
        res["absolute_diff"] = f(diff)
        res["absolute_ci"] = [f(result.ci[0]), f(result.ci[1])]
        res["p_value"] = f(p)
        res["welch_df"] = f(df)
        res["relative_lift"] = f(st.mean / sc.mean - 1)
        crit = stats.t.ppf(1 - alpha / 2, df)
        kind, lo, hi = fieller(st.mean, st.variance / st.n, sc.mean, sc.variance / sc.n, crit)
        res["relative_ci_kind"] = kind
        res["relative_ci"] = None if lo is None else [f(lo - 1), f(hi - 1)]
        if with_welch:
            a = u[u["variant"] == variant]["value"].to_numpy(float)
            b = u[u["variant"] == control]["value"].to_numpy(float)
            assert (per_user["d"] == 1).all()
            welch = stats.ttest_ind(a, b, equal_var=False).pvalue
            assert close(welch, p, rel=1e-9, abs_=1e-13), (metric, welch, p)
            res["welch_scipy_p_value"] = f(welch)

    # Naive event-level analysis: units as independent samples, Student's t-test.
    a = u[u["variant"] == variant]["value"].to_numpy(float)
    b = u[u["variant"] == control]["value"].to_numpy(float)
    naive = {"control": {"mean": f(b.mean()) if len(b) else None, "units": int(len(b))},
             "treatment": {"mean": f(a.mean()) if len(a) else None, "units": int(len(a))},
             "absolute_diff": None, "p_value": None}
    if len(a) >= 2 and len(b) >= 2 and (a.var() > 0 or b.var() > 0):
        naive["absolute_diff"] = f(a.mean() - b.mean())
        naive["p_value"] = f(stats.ttest_ind(a, b, equal_var=True).pvalue)
    res["naive"] = naive
    return res


def analyze(name, path, split, alpha, experiment=EXPERIMENT, with_welch=()):
    req, user_variant, units, quality = build_units(path, experiment)
    variants = list(split)
    control = variants[0]
    users = pd.Series(user_variant).value_counts()
    assert set(users.index) <= set(variants), users
    requests = req["assigned"].value_counts()
    observed = np.array([users.get(v, 0) for v in variants], float)
    expected = observed.sum() * np.array([split[v] for v in variants])
    srm = stats.chisquare(observed, expected).pvalue

    metrics = []
    for metric, level, _ in METRICS:
        for v in variants[1:]:
            metrics.append(compare(units, metric, level, control, v, alpha, metric in with_welch))

    quantiles = []
    for qname, field, q in QUANTILES:
        for v in variants:
            values = req.loc[(req["assigned"] == v) & req[field].notna(), field].to_numpy(float)
            quantiles.append({"name": qname, "variant": v, "value": f(np.quantile(values, q))})

    payload = {
        "generator": GENERATOR,
        "experiment": experiment,
        "alpha": alpha,
        "control": control,
        "split": split,
        "variants": {v: {"users": int(users.get(v, 0)), "requests": int(requests.get(v, 0))} for v in variants},
        "srm_p_value": f(srm),
        "data_quality": quality,
        "metrics": metrics,
        "quantiles": quantiles,
    }
    payload.update(issue4(Context(req, user_variant, units, split, alpha), name))
    out = os.path.join(OUT, f"{name}.expected.json")
    with open(out, "w") as fh:
        json.dump(payload, fh, indent=1, allow_nan=False)
        fh.write("\n")
    print(f"wrote {os.path.relpath(out, ROOT)}", file=sys.stderr)
    return payload


# ====================================================================== issue 4: methods, corrections, decision
#
# Everything below is computed from the same per-user sums as `compare` (RatioStatistic per variant),
# with gbstats / scipy / statsmodels, following the analysis rules written in the module docstring.

N_STAR = 5000.0  # gbstats' default sequential tuning parameter, Bakeoff's default plan.sequentialTuning
Z95 = float(stats.norm.ppf(0.975))
DAY_US = 86400 * 10**6

# Built-in roles and goals (the brief's Metric.builtIn): name -> (role, goal)
ROLES = {
    "task_completion": ("primary", "up"),
    "escalation_rate": ("guardrail", "down"),
    "csat": ("secondary", "up"),
    "avg_turns": ("secondary", "down"),
    "thumbs_up_rate": ("secondary", "up"),
    "repeat_usage": ("secondary", "up"),
    "error_rate": ("guardrail", "down"),
    "output_tokens": ("secondary", "none"),
}
ROLES.update({q: ("secondary", "down") for q, _, _ in QUANTILES})

# Guardrail margin sets: metric -> (value, relative). A margin makes the metric a guardrail (set C turns
# two latency quantiles into guardrails, so they leave the secondary family).
MARGINS = {
    "A": {"escalation_rate": (0.02, False), "error_rate": (0.5, True)},
    "B": {"escalation_rate": (0.5, True), "error_rate": (0.05, False)},
    "C": {"escalation_rate": (0.25, False), "latency_p50": (50.0, False), "latency_p95": (0.35, True)},
}

# Decision scenarios: (name, method, correction, primary, margin set, days from the first request to the
# report time or None for the data's own span, maximum runtime days, (minimum detectable effect, relative))
SCENARIOS = [
    ("fixed-holm", "fixed", "holm", "task_completion", None, None, None, None),
    ("sequential-holm", "sequential", "holm", "task_completion", None, None, None, None),
    ("fixed-holm-28d", "fixed", "holm", "task_completion", None, 28.0, None, None),
    ("sequential-holm-28d", "sequential", "holm", "task_completion", None, 28.0, None, None),
    ("fixed-holm-max", "fixed", "holm", "task_completion", None, 28.0, 21.0, None),
    ("fixed-holm-mde-large", "fixed", "holm", "task_completion", None, 28.0, None, (0.5, True)),
    ("fixed-holm-mde-small", "fixed", "holm", "task_completion", None, 28.0, None, (0.01, False)),
    ("fixed-holm-margins", "fixed", "holm", "task_completion", "A", 28.0, None, None),
    ("sequential-holm-margins", "sequential", "holm", "task_completion", "A", 28.0, None, None),
    ("fixed-bh-thumbs", "fixed", "bh", "thumbs_up_rate", None, 28.0, None, None),
    ("fixed-holm-repeat", "fixed", "holm", "repeat_usage", "B", 28.0, None, None),
    ("fixed-holm-repeat-early", "fixed", "holm", "repeat_usage", None, 3.0, None, None),
    ("fixed-none-repeat", "fixed", "none", "repeat_usage", None, 28.0, None, None),
    ("sequential-holm-thumbs", "sequential", "holm", "thumbs_up_rate", None, 28.0, None, None),
    ("sequential-holm-margins-C", "sequential", "holm", "task_completion", "C", 28.0, None, None),
    ("fixed-bh-thumbs-margins-C", "fixed", "bh", "thumbs_up_rate", "C", 28.0, None, None),
    ("fixed-holm-repeat-margins-C", "fixed", "holm", "repeat_usage", "C", 28.0, None, None),
    ("sequential-holm-repeat-margins-C", "sequential", "holm", "repeat_usage", "C", 28.0, None, None),
]


class Est:
    """A group as the tests see it (mean, per-user variance, users), duck-typed for gbstats' tests."""

    def __init__(self, mean, variance, n):
        self.mean = float(mean)
        self.variance = float(variance)
        self.n = float(n)

    @property
    def unadjusted_mean(self):
        return self.mean

    @property
    def _has_zero_variance(self):
        return self.variance <= 0


def cleaned(stat):
    """The per-user estimate of a RatioStatistic; a delta-method variance <= 1e-12 mean^2 is rounding
    noise of constant data and counts as 0."""
    mean, var = float(stat.mean), float(stat.variance)
    if var <= 1e-12 * mean * mean:
        var = 0.0
    return Est(mean, var, stat.n)


def welch_parts(ec, et):
    vc, vt = ec.variance / ec.n, et.variance / et.n
    var = vc + vt
    df = var * var / (vt * vt / (et.n - 1) + vc * vc / (ec.n - 1))
    return var, df


def rho_squared(alpha):
    """rho^2 of the confidence sequence tuned for alpha at N* (eq. 161 of arXiv:2103.06476v7)."""
    l = -2 * math.log(alpha)
    return (l + math.log(l + 1)) / N_STAR


def sequence_half_width(variance, n, level, tuning_alpha):
    """Half-width of the asymptotic confidence sequence at `level` with rho tuned at `tuning_alpha`
    (eq. 9): sqrt(2 (N rho^2 + 1) log(sqrt(N rho^2 + 1) / level) / (N rho^2)) * se."""
    r2 = rho_squared(tuning_alpha)
    a = n * r2 + 1
    return math.sqrt(2 * a * math.log(math.sqrt(a) / level) / (n * r2)) * math.sqrt(variance)


def sequence_p_value(difference, variance, n, tuning_alpha):
    """The always-valid two-sided p-value min(1, 1 / e-value) of `difference` (eq. 155); it depends on the
    level only through rho."""
    r2 = rho_squared(tuning_alpha)
    a = n * r2 + 1
    return min(1.0, math.sqrt(a) * math.exp(-r2 * difference * difference * n / variance / (2 * a)))


def sequential(sa, sb, level, relative, tuning_alpha):
    """gbstats SequentialTwoSidedTTest (N* 5000) at the plan's alpha `tuning_alpha`: point estimate and
    p-value (which does not depend on the level); the interval at `level` with rho tuned at
    `tuning_alpha` (gbstats tunes rho at its own alpha, so the interval comes from the formula, checked to
    equal gbstats' when level == tuning_alpha)."""
    cfg = SequentialConfig(alpha=tuning_alpha, difference_type="relative" if relative else "absolute",
                           sequential_tuning_parameter=N_STAR)
    test = SequentialTwoSidedTTest(sa, sb, cfg)
    res = test.compute_result()
    assert res.error_message is None, res.error_message
    d, p, var, n = float(res.expected), float(res.p_value), float(test.variance), float(sa.n + sb.n)
    at_tuning = sequence_half_width(var, n, tuning_alpha, tuning_alpha)
    assert close(d - at_tuning, float(res.ci[0]), rel=1e-12, abs_=1e-14) \
        and close(d + at_tuning, float(res.ci[1]), rel=1e-12, abs_=1e-14), (d, at_tuning, res.ci)
    assert close(sequence_p_value(d, var, n, tuning_alpha), p, rel=1e-11, abs_=1e-15), (p, d, var, n)
    half = sequence_half_width(var, n, level, tuning_alpha)
    ci = [float(res.ci[0]), float(res.ci[1])] if level == tuning_alpha else [d - half, d + half]
    # the interval at the level excludes 0 exactly when p < level (up to rounding at the edge)
    if abs(abs(d) - half) > 1e-9 * half:
        assert (abs(d) > half) == (p < level), (d, half, p, level)
    return d, p, ci


def metric_test(sc, st, alpha, method, plan_alpha):
    """One metric, user unit (the rules of the docstring): None when no test applies, else
    {"diff", "p", "ci", "rel_ci", "df", "degenerate"}. sc / st are the RatioStatistics; intervals at
    `alpha` (the per-test level), sequential rho tuned at `plan_alpha`."""
    if min(sc.n, st.n) < 2:
        return None
    ec, et = cleaned(sc), cleaned(st)
    if not ec.variance + et.variance > 0:
        if ec.mean == et.mean:
            return {"diff": 0.0, "p": 1.0, "ci": [0.0, 0.0], "rel_ci": None, "df": None, "degenerate": True,
                    "ec": ec, "et": et}
        return None
    assert ec.variance > 0 and et.variance > 0, "one-sided zero variance: not in these fixtures"
    out = {"degenerate": False, "ec": ec, "et": et, "rel_ci": None, "df": None}
    if method == "fixed":
        var, df = welch_parts(ec, et)
        se = math.sqrt(var)
        d = et.mean - ec.mean
        crit = stats.t.ppf(1 - alpha / 2, df)
        out.update(diff=d, p=float(2 * stats.t.sf(abs(d / se), df)), ci=[d - crit * se, d + crit * se], df=df)
    else:
        d, p, ci = sequential(sc, st, alpha, False, plan_alpha)
        out.update(diff=d, p=p, ci=ci)
        if ec.mean != 0:
            # Fieller's set for treatment / control - 1 at the absolute sequence's multiplier, per-group
            # variances of the mean var / n: it excludes 0 exactly when the sequence does (p < alpha).
            n = ec.n + et.n
            c = sequence_half_width(1.0, n, alpha, plan_alpha)
            kind, lo, hi = fieller(et.mean, et.variance / et.n, ec.mean, ec.variance / ec.n, c)
            out["rel_kind"] = kind
            out["rel_ci"] = None if lo is None else [lo - 1, hi - 1]
            edge = abs(abs(d) - c * math.sqrt(ec.variance / ec.n + et.variance / et.n))
            if kind != "unbounded" and edge > 1e-9 * abs(d):
                excludes = (lo > 1 or hi < 1) if kind == "bounded" else lo < 1 < hi
                assert excludes == (p < alpha), (kind, lo, hi, p, alpha)
            # gbstats' delta-method relative sequence, kept for documentation (no longer the report's)
            out["rel_cs_gbstats"] = sequential(sc, st, alpha, True, plan_alpha)[2]
    return out


def order_stat(xs, rank):
    i = min(max(int(math.ceil(rank)), 1), len(xs))
    return xs[i - 1]


def quantile_summary(per_user, p):
    """Deng et al. sufficient statistics of one arm (as scripts/reference/quantile_fixtures.py):
    inverted-CDF quantile x_(ceil(n p)), outer-CI order statistics at n p -/+ z sqrt(n p (1-p)), and
    per user s_i = values <= quantile, c_i = values. Users are every user of the variant."""
    xs = sorted(v for u in per_user for v in u)
    n = len(xs)
    if n == 0:
        return None
    q = order_stat(xs, n * p)
    half = Z95 * math.sqrt(n * p * (1.0 - p))
    s = np.array([sum(1 for v in u if v <= q) for u in per_user], dtype=float)
    c = np.array([len(u) for u in per_user], dtype=float)
    return {"level": p, "n": n, "users": len(per_user), "quantile": q, "lower": order_stat(xs, n * p - half),
            "upper": order_stat(xs, n * p + half), "below_sum": float(s.sum()), "below_sum_squares": float((s * s).sum()),
            "count_sum": float(c.sum()), "count_sum_squares": float((c * c).sum()),
            "below_count_sum_product": float((s * c).sum())}


def quantile_stat(summary):
    return QuantileClusteredStatistic(
        n=summary["n"], n_star=summary["n"], nu=summary["level"], quantile_hat=summary["quantile"],
        quantile_lower=summary["lower"], quantile_upper=summary["upper"], main_sum=summary["below_sum"],
        main_sum_squares=summary["below_sum_squares"], denominator_sum=summary["count_sum"],
        denominator_sum_squares=summary["count_sum_squares"],
        main_denominator_sum_product=summary["below_count_sum_product"], n_clusters=summary["users"])


def quantile_degenerate(summary):
    n, p = summary["n"], summary["level"]
    return not (n > Z95 * Z95 * p / (1 - p)) or not (n > Z95 * Z95 * (1 - p) / p)


def quantile_test(sum_c, sum_t, alpha, method, plan_alpha):
    """The clustered order-statistic test: None when no test applies, else {"diff", "p", "ci", "rel_ci"}.
    Variances are gbstats' QuantileClusteredStatistic.variance_init / n (without gbstats' 1e-5 floor);
    fixed: normal reference; sequential: gbstats' sequence on per-user estimates (quantile, Var * users,
    users), rho tuned at `plan_alpha`, interval at `alpha`."""
    if sum_c is None or sum_t is None:
        return None
    if sum_c["n"] < 2 or sum_t["n"] < 2 or quantile_degenerate(sum_c) or quantile_degenerate(sum_t):
        return None
    qc, qt = quantile_stat(sum_c), quantile_stat(sum_t)
    vc, vt = qc.variance_init / qc.n, qt.variance_init / qt.n
    se = math.sqrt(vc + vt)
    if not (math.isfinite(se) and se > 0):
        return None
    # the absolute / relative point estimates and variances are gbstats TwoSidedTTest's
    ga = Est(qc.mean, vc * sum_c["users"], sum_c["users"])
    gb = Est(qt.mean, vt * sum_t["users"], sum_t["users"])
    d = qt.mean - qc.mean
    out = {"diff": d, "rel_ci": None, "degenerate": False, "ga": ga, "gb": gb,
           "se": se, "rel": None, "rel_se": None}
    if qc.mean > 0:
        out["rel"] = (qt.mean - qc.mean) / qc.mean
        out["rel_se"] = math.sqrt(vt / qc.mean**2 + vc * qt.mean**2 / qc.mean**4)
    if method == "fixed":
        z = float(stats.norm.ppf(1 - alpha / 2))
        out.update(p=float(2 * stats.norm.sf(abs(d / se))), ci=[d - z * se, d + z * se])
        if qc.mean > 0:
            rel = (qt.mean - qc.mean) / qc.mean
            rse = math.sqrt(vt / qc.mean**2 + vc * qt.mean**2 / qc.mean**4)
            out["rel_ci"] = [rel - z * rse, rel + z * rse]
    else:
        d2, p, ci = sequential(ga, gb, alpha, False, plan_alpha)
        assert close(d2, d)
        out.update(p=p, ci=ci)
        if qc.mean > 0:
            out["rel_ci"] = sequential(ga, gb, alpha, True, plan_alpha)[2]
    return out


def bayesian(sc, st, alpha, goal):
    """gbstats EffectBayesianABTest, relative, flat prior; None when gbstats declines."""
    cfg = EffectBayesianConfig(difference_type="relative", inverse=goal == "down", alpha=alpha)
    res = EffectBayesianABTest(sc, st, cfg).compute_result()
    if res.error_message is not None:
        return None
    return {"chance_to_win": f(res.chance_to_win), "mean": f(res.expected), "standard_deviation": f(res.uplift.stddev),
            "ci": [f(res.ci[0]), f(res.ci[1])], "risk_control": f(res.risk[0]), "risk_treatment": f(res.risk[1])}


def guardrail_status(p, alpha, significantly_worse, harm, margin):
    if p < alpha:
        return "within_margin"
    if significantly_worse and harm > margin:
        return "beyond_margin"
    return "unclear"


def delta_estimate(mc, vc, nc, mt, vt, nt, relative):
    """treatment - control, or (treatment - control) / control with the delta-method variance (per-user
    variances v, users n); returns the estimate and its variance."""
    if relative:
        return (mt - mc) / mc, vt / (mc * mc * nt) + vc * mt * mt / (mc**4 * nc)
    return mt - mc, vt / nt + vc / nc


def sequential_guardrail(d, var, n, margin, goal, alpha, significantly_worse, gb_groups, relative):
    """The always-valid non-inferiority check (the rules of the docstring): the one-sided bound of the
    confidence sequence at level min(2 alpha, 0.999) with rho tuned at alpha, and the one-sided p-value
    from the two-sided sequential p-value p2 of d - boundary (same rho): p2 / 2 on the harmless side of
    the boundary, else 1 - p2 / 2. p2 is checked against gbstats (test_value = boundary, alpha = alpha) on
    `gb_groups`, and p < alpha against the bound lying inside the margin."""
    higher_is_worse = goal == "down"
    boundary = margin if higher_is_worse else -margin
    half = sequence_half_width(var, n, min(2 * alpha, 0.999), alpha)
    bound = d + half if higher_is_worse else d - half
    p2 = sequence_p_value(d - boundary, var, n, alpha)
    sa, sb = gb_groups
    cfg = SequentialConfig(alpha=alpha, difference_type="relative" if relative else "absolute",
                           sequential_tuning_parameter=N_STAR, test_value=boundary)
    test = SequentialTwoSidedTTest(sa, sb, cfg)
    assert close(float(test.point_estimate), d, rel=1e-12) and close(float(test.variance), var, rel=1e-12), \
        (test.point_estimate, d, test.variance, var)
    assert close(float(test.p_value), p2, rel=1e-10, abs_=1e-15), (test.p_value, p2)
    harmless = d < boundary if higher_is_worse else d > boundary
    p = p2 / 2 if harmless else 1 - p2 / 2
    inside = bound < boundary if higher_is_worse else bound > boundary
    if abs(abs(d - boundary) - half) > 1e-9 * half:
        assert (p < alpha) == inside, (d, bound, boundary, p, alpha)
    harm = d if higher_is_worse else -d
    return {"estimate": f(d), "bound": f(bound), "p_value": f(p),
            "status": guardrail_status(p, alpha, significantly_worse, harm, margin)}


def guardrail_check(ec, et, margin, relative, goal, alpha, significantly_worse, method):
    """Fixed: one-sided Welch non-inferiority test against the margin (scipy t, Welch df of the absolute
    difference on both scales; relative via the delta method). Sequential: `sequential_guardrail` on the
    same estimate and variance, n = users of both arms."""
    d, var = delta_estimate(ec.mean, ec.variance, ec.n, et.mean, et.variance, et.n, relative)
    if method == "sequential":
        return sequential_guardrail(d, var, ec.n + et.n, margin, goal, alpha, significantly_worse, (ec, et), relative)
    _, df = welch_parts(ec, et)
    se = math.sqrt(var)
    higher_is_worse = goal == "down"
    boundary = margin if higher_is_worse else -margin
    statistic = (d - boundary) / se
    crit = stats.t.ppf(1 - alpha, df)
    if higher_is_worse:
        p, bound = stats.t.cdf(statistic, df), d + crit * se
    else:
        p, bound = stats.t.sf(statistic, df), d - crit * se
    harm = d if higher_is_worse else -d
    return {"estimate": f(d), "bound": f(bound), "p_value": f(p),
            "status": guardrail_status(p, alpha, significantly_worse, harm, margin)}


def quantile_guardrail_check(t, margin, relative, goal, alpha, significantly_worse, method):
    """A quantile guardrail: fixed, the one-sided normal test of H0 "harm >= margin" (bound d +/-
    norm.ppf(1 - alpha) se); sequential, `sequential_guardrail` with n = users of both arms (every user
    of the variant, as the quantile's clusters). d / se: the quantile difference, or the relative change
    with the delta-method standard error."""
    if relative and t["rel"] is None:
        return None
    d, se = (t["rel"], t["rel_se"]) if relative else (t["diff"], t["se"])
    ga, gb = t["ga"], t["gb"]
    higher_is_worse = goal == "down"
    if method == "sequential":
        return sequential_guardrail(d, se * se, ga.n + gb.n, margin, goal, alpha, significantly_worse, (ga, gb), relative)
    boundary = margin if higher_is_worse else -margin
    z = float(stats.norm.ppf(1 - alpha))
    statistic = (d - boundary) / se
    if higher_is_worse:
        p, bound = float(stats.norm.cdf(statistic)), d + z * se
    else:
        p, bound = float(stats.norm.sf(statistic)), d - z * se
    harm = d if higher_is_worse else -d
    return {"estimate": f(d), "bound": f(bound), "p_value": f(p),
            "status": guardrail_status(p, alpha, significantly_worse, harm, margin)}


def per_test_alphas(p, adjusted, correction, alpha):
    """Per-test interval levels agreeing with the adjusted p-values (see the docstring)."""
    m = len(p)
    if correction == "none":
        return [alpha] * m
    if correction == "bh":
        rejected = sum(1 for a in adjusted if a < alpha)
        return [alpha * (max(rejected, 1) / m)] * m
    order = sorted(range(m), key=lambda i: (p[i], i))
    # 0-based rank of each tie group's first member
    group_rank = {}
    for k, i in enumerate(order):
        group_rank[i] = k if k == 0 or p[i] != p[order[k - 1]] else group_rank[order[k - 1]]
    stop = next((group_rank[i] for i in order if not adjusted[i] < alpha), None)
    levels = [0.0] * m
    for i in range(m):
        r = group_rank[i] if stop is None else min(group_rank[i], stop)
        levels[i] = alpha / (m - r)
    return levels


def verdict(significant, up, goal):
    if not significant:
        return "none"
    if goal == "none":
        return "changed"
    return "better" if (up == (goal == "up")) else "worse"


class Context:
    """Per fixture: the per-user statistics of every metric and the quantile summaries per variant."""

    def __init__(self, req, user_variant, units, split, alpha):
        self.alpha = alpha
        self.variants = list(split)
        self.control = self.variants[0]
        self.treatments = self.variants[1:]
        self.split = split
        self.users = pd.Series(user_variant).value_counts()
        self.stats = {}
        self.raw_units = {}
        for metric, _, _ in METRICS:
            u = units[units["metric"] == metric]
            for v in self.variants:
                self.raw_units[(metric, v)] = u[u["variant"] == v]["value"].to_numpy(float)
            per_user = u.groupby(["variant", "user"])["value"].agg(m="sum", d="size").reset_index()
            for v in self.variants:
                self.stats[(metric, v)] = ratio_stat(per_user[per_user["variant"] == v])
        self.summaries = {}
        users_of = {v: sorted(u for u, w in user_variant.items() if w == v) for v in self.variants}
        for qname, field, q in QUANTILES:
            sub = req[req[field].notna()]
            values = {u: list(g[field].to_numpy(float)) for u, g in sub.groupby("user")}
            for v in self.variants:
                per_user = [values.get(u, []) for u in users_of[v]]
                self.summaries[(qname, v)] = quantile_summary(per_user, q)
        ts = req["ts"]
        self.first_us, self.last_us = int(ts.min()), int(ts.max())

    def metric_names(self):
        return [m for m, _, _ in METRICS] + [q for q, _, _ in QUANTILES]

    def test(self, name, v, level, method):
        """The test at the per-test `level` (intervals); sequential rho is tuned at the plan's alpha."""
        if name in dict((q, 1) for q, _, _ in QUANTILES):
            return quantile_test(self.summaries[(name, self.control)], self.summaries[(name, v)], level, method, self.alpha)
        return metric_test(self.stats[(name, self.control)], self.stats[(name, v)], level, method, self.alpha)

    def run(self, method, correction, primary="task_completion", margins=None):
        """Every (metric, treatment) of one plan: raw test at alpha, family, adjusted p, level,
        test at that level, significance, verdict, guardrail check."""
        alpha = self.alpha
        rows = []
        for name in self.metric_names():
            for v in self.treatments:
                role, goal = ROLES[name]
                if margins and name in margins:
                    role = "guardrail"  # a margin makes the metric a guardrail (set C: quantiles)
                r = {"name": name, "variant": v, "role": role, "goal": goal,
                     "kind": "quantile" if name.endswith(("_p50", "_p95", "_p99")) else "metric"}
                r["raw"] = self.test(name, v, alpha, method)
                r["p"] = None if r["raw"] is None else r["raw"]["p"]
                r["family"] = "primary" if name == primary else ("secondary" if role != "guardrail" else None)
                rows.append(r)
        for family in ("primary", "secondary"):
            members = [r for r in rows if r["family"] == family and r["p"] is not None]
            for r in rows:
                if r["family"] == family and r["p"] is None:
                    r.update(adjusted=None, level=alpha, at_level=None, family_size=len(members))
            if not members:
                continue
            p = [r["p"] for r in members]
            if correction == "none":
                adjusted = list(p)
            else:
                adjusted = list(multipletests(p, alpha=alpha, method={"holm": "holm", "bh": "fdr_bh"}[correction])[1])
            levels = per_test_alphas(p, adjusted, correction, alpha)
            for r, a, level in zip(members, adjusted, levels):
                r.update(adjusted=float(a), level=float(level), family_size=len(members),
                         at_level=self.test(r["name"], r["variant"], level, method))
        for r in rows:
            if r["family"] is None:  # guardrails: not corrected
                r.update(adjusted=None, level=alpha, at_level=r["raw"], family_size=1)
                r["significant"] = r["p"] is not None and r["p"] < alpha
            else:
                r["significant"] = r["adjusted"] is not None and r["adjusted"] < alpha
            shown = r["at_level"]
            up = shown is not None and shown["ci"][0] + shown["ci"][1] > 0
            r["verdict"] = verdict(r["significant"], up, r["goal"])
            r["guardrail"] = None
            if margins and r["role"] == "guardrail" and r["name"] in margins and r["goal"] != "none" \
                    and r["raw"] is not None and not r["raw"]["degenerate"]:
                value, relative = margins[r["name"]]
                worse = r["verdict"] == "worse"
                if r["kind"] == "quantile":
                    r["guardrail"] = quantile_guardrail_check(r["raw"], value, relative, r["goal"], alpha, worse, method)
                else:
                    ec, et = r["raw"]["ec"], r["raw"]["et"]
                    if not (relative and ec.mean == 0):
                        r["guardrail"] = guardrail_check(ec, et, value, relative, r["goal"], alpha, worse, method)
                if r["guardrail"] is not None:
                    r["guardrail"].update(margin=value, relative=relative)
        return rows


# ---------------------------------------------------------------------- decision (reference rules)
#
# Per treatment, with p the primary metric's result (its verdict uses the adjusted p-value):
#   1. roll_back  when p is significantly worse, or a guardrail (not the primary) is harmed: with a margin
#                 check, status beyond_margin; without one, verdict worse. (Does not wait for the runtime.)
#   2. if p is significantly better:
#        keep_running while a guardrail with a margin check is "unclear" (not yet within its margin);
#        keep_running while the minimum runtime is not reached (7 days rounded up to full weeks = 7;
#        runtime unknown counts as not reached);
#        else ship.
#   3. otherwise: stop_inconclusive when the maximum runtime is set and elapsed >= it;
#        stop_inconclusive when the method is fixed, a minimum detectable effect is planned, the minimum
#        runtime has passed and the sample already has the planned power for it (statsmodels
#        TTestIndPower.solve_power at alpha, power 0.8, ratio = planned treatment/control weights, effect
#        size = MDE / pooled per-user SD: ceil(nobs1) + ceil(nobs1 * ratio) <= metric users now);
#        else keep_running.
# Several treatments: ship the shippable one with the largest primary difference (signed by its goal);
# else roll_back if every treatment rolls back; else the first keep_running; else the first
# stop_inconclusive (treatments in the planned order).

POWER = 0.8


def sample_has_power(r, ctx, mde, relative):
    """True when the planned effect needs no more users than the primary metric has (rule 3)."""
    raw = r["raw"]
    sc, st = ctx.stats[(r["name"], ctx.control)], ctx.stats[(r["name"], r["variant"])]
    if min(sc.n, st.n) < 2 or sc.d_statistic.sum == 0:
        return False
    ec, et = cleaned(sc), cleaned(st)
    control_mean = ec.mean
    effect = abs(mde * control_mean) if relative else abs(mde)
    nc, nt = float(sc.n), float(st.n)
    pooled = ((nc - 1) * ec.variance + (nt - 1) * et.variance) / (nc + nt - 2)
    if not (pooled > 0 and effect > 0):
        return False
    ratio = ctx.split[r["variant"]] / ctx.split[ctx.control]
    nobs1 = TTestIndPower().solve_power(effect_size=effect / math.sqrt(pooled), nobs1=None, alpha=ctx.alpha,
                                        power=POWER, ratio=ratio, alternative="two-sided")
    needed = math.ceil(nobs1) + math.ceil(nobs1 * ratio)
    assert raw is not None
    return needed < 1e9 and needed <= nc + nt


def decide(ctx, rows, primary, elapsed, method, maximum, mde):
    per = {}
    min_days = 7.0
    for v in ctx.treatments:
        mine = {r["name"]: r for r in rows if r["variant"] == v}
        p = mine.get(primary)
        harmed = pending = 0
        for r in mine.values():
            if r["role"] != "guardrail" or r["name"] == primary:
                continue
            if r["guardrail"] is not None:
                harmed += r["guardrail"]["status"] == "beyond_margin"
                pending += r["guardrail"]["status"] == "unclear"
            elif r["verdict"] == "worse":
                harmed += 1
        days_left = max(0.0, min_days - (elapsed or 0.0))
        known = elapsed is not None
        if p is not None and p["verdict"] == "worse" or harmed:
            action = "roll_back"
        elif p is not None and p["verdict"] == "better":
            action = "keep_running" if pending or days_left > 0 or not known else "ship"
        elif maximum is not None and elapsed is not None and elapsed >= maximum:
            action = "stop_inconclusive"
        elif method == "fixed" and mde is not None and days_left == 0 and sample_has_power(p, ctx, *mde):
            action = "stop_inconclusive"
        else:
            action = "keep_running"
        per[v] = action

    def lift(v):
        r = next(r for r in rows if r["name"] == primary and r["variant"] == v)
        sc, st = ctx.stats.get((primary, ctx.control)), ctx.stats.get((primary, v))
        d = 0.0 if sc is None or st is None or sc.d_statistic.sum == 0 or st.d_statistic.sum == 0 else st.mean - sc.mean
        return -d if r["goal"] == "down" else d

    ships = [v for v in ctx.treatments if per[v] == "ship"]
    if len(ctx.treatments) == 1:
        overall = (per[ctx.treatments[0]], ctx.treatments[0])
    elif ships:
        overall = ("ship", max(ships, key=lift))
    elif all(a == "roll_back" for a in per.values()):
        overall = ("roll_back", ", ".join(ctx.treatments))
    elif any(a == "keep_running" for a in per.values()):
        overall = ("keep_running", next(v for v in ctx.treatments if per[v] == "keep_running"))
    else:
        overall = ("stop_inconclusive", next(v for v in ctx.treatments if per[v] == "stop_inconclusive"))
    return per, overall


def pair(ci):
    return None if ci is None else [f(ci[0]), f(ci[1])]


def issue4(ctx, name):
    """The expected values of the sequential, corrected, Bayesian, guardrail and decision sections."""
    alpha = ctx.alpha
    out = {}

    # sequential, uncorrected
    seq = []
    for metric, _, _ in METRICS:
        for v in ctx.treatments:
            t = metric_test(ctx.stats[(metric, ctx.control)], ctx.stats[(metric, v)], alpha, "sequential", alpha)
            if t is None or t["degenerate"]:
                continue
            seq.append({"name": metric, "variant": v, "absolute_diff": f(t["diff"]), "p_value": f(t["p"]),
                        "absolute_ci": pair(t["ci"]), "relative_ci_kind": t.get("rel_kind"),
                        "relative_ci": pair(t["rel_ci"]), "relative_cs_gbstats": pair(t.get("rel_cs_gbstats"))})
    out["sequential"] = seq

    # quantile tests (fixed and sequential, uncorrected) and the summaries behind them
    qt = []
    for qname, _, _ in QUANTILES:
        for v in ctx.treatments:
            entry = {"name": qname, "variant": v,
                     "control": ctx.summaries[(qname, ctx.control)], "treatment": ctx.summaries[(qname, v)]}
            for method in ("fixed", "sequential"):
                t = ctx.test(qname, v, alpha, method)
                entry[method] = None if t is None else {"difference": f(t["diff"]), "p_value": f(t["p"]),
                                                        "absolute_ci": pair(t["ci"]), "relative_ci": pair(t["rel_ci"])}
            qt.append(entry)
    out["quantile_tests"] = qt

    # corrected
    adjusted = []
    for method in ("fixed", "sequential"):
        for correction in ("holm", "bh"):
            for r in ctx.run(method, correction):
                if r["family"] is None:
                    continue
                e = {"method": method, "correction": correction, "name": r["name"], "variant": r["variant"],
                     "kind": r["kind"], "family": r["family"], "family_size": r["family_size"],
                     "p_value": f(r["p"]), "adjusted_p_value": f(r["adjusted"]),
                     "interval_alpha": f(r["level"]) if r["p"] is not None else None,
                     "absolute_ci": None if r["at_level"] is None or r["p"] is None else pair(r["at_level"]["ci"]),
                     "significant": r["significant"], "verdict": r["verdict"], "bayesian_ci": None}
                if r["kind"] == "metric" and r["p"] is not None and not r["raw"]["degenerate"]:
                    b = bayesian(ctx.stats[(r["name"], ctx.control)], ctx.stats[(r["name"], r["variant"])],
                                 alpha, r["goal"])
                    e["bayesian_ci"] = None if b is None else b["ci"]
                adjusted.append(e)
    out["adjusted"] = adjusted

    # Bayesian at the plan alpha
    bay = []
    for metric, _, _ in METRICS:
        for v in ctx.treatments:
            t = metric_test(ctx.stats[(metric, ctx.control)], ctx.stats[(metric, v)], alpha, "fixed", alpha)
            if t is None or t["degenerate"] or t["ec"].mean == 0:
                continue
            b = bayesian(ctx.stats[(metric, ctx.control)], ctx.stats[(metric, v)], alpha, ROLES[metric][1])
            if b is not None:
                bay.append(dict({"name": metric, "variant": v}, **b))
    out["bayesian"] = bay

    # guardrail margins (method matters only through "significantly worse")
    guard = []
    for margin_set in sorted(MARGINS):
        for method in ("fixed", "sequential"):
            for r in ctx.run(method, "none", margins=MARGINS[margin_set]):
                if r["guardrail"] is None:
                    continue
                g = r["guardrail"]
                guard.append({"margins": margin_set, "method": method, "name": r["name"], "variant": r["variant"],
                              "margin": g["margin"], "relative": g["relative"], "estimate": g["estimate"],
                              "bound": g["bound"], "p_value": g["p_value"], "status": g["status"]})
                if name == "oneunit" and not g["relative"] and method == "fixed" and r["kind"] == "metric":
                    # one unit per user: the per-user Welch test is statsmodels' CompareMeans on the units
                    cm = CompareMeans(DescrStatsW(ctx.raw_units[(r["name"], r["variant"])]),
                                      DescrStatsW(ctx.raw_units[(r["name"], ctx.control)]))
                    _, p_sm, _ = cm.ttest_ind(alternative="smaller", usevar="unequal", value=g["margin"])
                    bound_sm = cm.tconfint_diff(alpha=alpha, alternative="smaller", usevar="unequal")[1]
                    assert close(p_sm, g["p_value"], rel=1e-9) and close(bound_sm, g["bound"], rel=1e-9), \
                        (p_sm, g["p_value"], bound_sm, g["bound"])
    out["guardrail"] = guard

    # decisions
    decisions = []
    for sname, method, correction, primary, margin_set, days, maximum, mde in SCENARIOS:
        margins = MARGINS[margin_set] if margin_set else None
        rows = ctx.run(method, correction, primary=primary, margins=margins)
        if days is None:
            start = as_of = None
            elapsed = max(0.0, (ctx.last_us - ctx.first_us) / DAY_US)
        else:
            start, as_of = ctx.first_us, ctx.first_us + int(days * DAY_US)
            elapsed = days
        per, (action, treatment) = decide(ctx, rows, primary, elapsed, method, maximum, mde)
        decisions.append({"scenario": sname, "method": method, "correction": correction, "primary": primary,
                          "margins": margin_set, "start_us": start, "as_of_us": as_of, "elapsed_days": f(elapsed),
                          "maximum_runtime_days": maximum,
                          "minimum_detectable_effect": None if mde is None else mde[0],
                          "minimum_detectable_effect_is_relative": None if mde is None else mde[1],
                          "actions": per, "action": action, "treatment": treatment})
    out["decisions"] = decisions
    out["margins"] = {k: {m: {"value": v[0], "relative": v[1]} for m, v in s.items()} for k, s in MARGINS.items()}
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    path, split, alpha = basic()
    p = analyze("basic", path, split, alpha)
    assert p["data_quality"] == {"users_in_several_variants": 0, "duplicate_request_ids": 0,
                                 "feedback_missing_target": 0}, p["data_quality"]

    path, split, alpha, checks = messy()
    p = analyze("messy", path, split, alpha)
    _, user_variant, units, _ = build_units(path, EXPERIMENT)
    for metric, key, value in checks:
        if metric == "variant":
            assert user_variant[key] == value, (key, user_variant[key], value)
            continue
        got = units.loc[(units["metric"] == metric) & (units["key"] == key), "value"].tolist()
        assert got == ([] if value is None else [value]), (metric, key, got, value)
    print(f"messy: {len(checks)} hand-made cases check out", file=sys.stderr)
    dq = p["data_quality"]
    # 6 flipped users + the first-by-ts user + the ts-tie user; 5 duplicates; 5 metric-name ghosts.
    assert dq == {"users_in_several_variants": 8, "duplicate_request_ids": 5, "feedback_missing_target": 5}, dq

    path, split, alpha = abn()
    analyze("abn", path, split, alpha)

    path, split, alpha = oneunit()
    analyze("oneunit", path, split, alpha, with_welch=("task_completion", "error_rate", "output_tokens"))


if __name__ == "__main__":
    main()
