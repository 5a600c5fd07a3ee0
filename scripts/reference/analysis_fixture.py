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
  }

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
from scipy import stats

import gbstats
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import RatioStatistic, SampleMeanStatistic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffCoreTests", "Fixtures", "analysis")
GENERATOR = (
    f"scripts/reference/analysis_fixture.py; pandas {pd.__version__}, scipy {scipy.__version__}, "
    f"gbstats {getattr(gbstats, '__version__', '0.8.0')}, numpy {np.__version__}"
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
    out = os.path.join(OUT, f"{name}.expected.json")
    with open(out, "w") as fh:
        json.dump(payload, fh, indent=1, allow_nan=False)
        fh.write("\n")
    print(f"wrote {os.path.relpath(out, ROOT)}", file=sys.stderr)
    return payload


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
