#!/usr/bin/env python3
"""The analysis `bakeoff analyze` performs, written the ordinary way with pandas + scipy: the baseline
that `make bench` times against the Swift tool.

    .venv/bin/python scripts/bench/pandas_analysis.py EVENTS.jsonl [--split 0.2] [--experiment NAME]

Reads the JSON Lines log with pandas.read_json(lines=True, chunksize=...) (chunked only to bound
memory; single process), then computes, per variant:

  * users: assigned to the variant of their first request by ts (ties -> earlier line); duplicate
    request ids (file order) are dropped; conversation_id defaults to the request id, status to "ok";
  * the metrics task_completion / escalation_rate / csat (per conversation: the last task_completed /
    escalated / csat feedback by ts), avg_turns (requests per conversation), thumbs_up_rate (per request:
    last thumbs_up), repeat_usage (per user: requests on >= 2 distinct UTC days), error_rate (per request:
    status != "ok"), output_tokens (per request);
  * for each metric the per-user sums m_i (values) and d_i (units), the ratio mean sum(m)/sum(d), its
    delta-method variance, Welch's t-test (Welch-Satterthwaite df, scipy.stats.t), relative lift;
  * latency P50/P95/P99 and TTFT P50/P95 (numpy linear quantiles) per variant;
  * the sample-ratio-mismatch chi-square test (scipy.stats.chisquare).

Prints one compact JSON object: {"events": ..., "users": {...}, "srm_p_value": ...,
"metrics": {name: {variant: {"mean", "users", "units"}, "p_value", "relative_lift", "welch_df"}},
"quantiles": {name: {variant: value}}}.
"""

import argparse
import json
import sys

import numpy as np
import pandas as pd
from scipy import stats

REQUEST_COLUMNS = ["ts", "experiment", "variant", "user_id", "conversation_id", "request_id", "latency_ms",
                   "ttft_ms", "output_tokens", "status"]
FEEDBACK_COLUMNS = ["ts", "experiment", "conversation_id", "request_id", "name", "value"]
# metric -> feedback name, for the metrics that are "the last feedback of that name per unit"
CONVERSATION_FEEDBACK = {"task_completion": "task_completed", "escalation_rate": "escalated", "csat": "csat"}
REQUEST_FEEDBACK = {"thumbs_up_rate": "thumbs_up"}
METRIC_ORDER = ["task_completion", "escalation_rate", "csat", "avg_turns", "thumbs_up_rate", "repeat_usage",
                "error_rate", "output_tokens"]
QUANTILES = [("latency_p50", "latency_ms", 0.50), ("latency_p95", "latency_ms", 0.95),
             ("latency_p99", "latency_ms", 0.99), ("ttft_p50", "ttft_ms", 0.50), ("ttft_p95", "ttft_ms", 0.95)]


def read_events(path, chunksize):
    """Requests and feedback as two DataFrames; the index is the 0-based line number."""
    requests, feedback = [], []
    n_lines = 0
    reader = pd.read_json(path, lines=True, chunksize=chunksize, convert_dates=False)
    for chunk in reader:
        n_lines += len(chunk)
        chunk["ts"] = pd.to_datetime(chunk["ts"], utc=True).dt.tz_localize(None)  # naive UTC
        kind = chunk["event"]
        requests.append(chunk.loc[kind == "request", chunk.columns.intersection(REQUEST_COLUMNS)])
        feedback.append(chunk.loc[kind == "feedback", chunk.columns.intersection(FEEDBACK_COLUMNS)])
    req = pd.concat(requests).reindex(columns=REQUEST_COLUMNS)
    fb = pd.concat(feedback).reindex(columns=FEEDBACK_COLUMNS)
    return req, fb, n_lines


def ratio_test(per_user, control, treatment):
    """per_user: DataFrame(variant, m, d), one row per user with d > 0. Delta-method Welch t-test."""
    out = {}
    moments = {}
    for v in (control, treatment):
        g = per_user[per_user["variant"] == v]
        n = len(g)
        sum_m, sum_d = g["m"].sum(), g["d"].sum()
        out[v] = {"mean": float(sum_m / sum_d) if sum_d > 0 else None, "users": int(n), "units": float(sum_d)}
        if n >= 2:
            mu_m, mu_d = g["m"].mean(), g["d"].mean()
            var_m, var_d = g["m"].var(ddof=1), g["d"].var(ddof=1)
            cov = g["m"].cov(g["d"])  # ddof=1
            var = var_m / mu_d**2 - 2 * cov * mu_m / mu_d**3 + mu_m**2 * var_d / mu_d**4
            moments[v] = (n, sum_m / sum_d, var)
    out.update({"p_value": None, "relative_lift": None, "welch_df": None, "absolute_diff": None})
    if len(moments) == 2:
        (nc, mc, vc), (nt, mt, vt) = moments[control], moments[treatment]
        if vc > 0 and vt > 0 and mc != 0:
            sc, st = vc / nc, vt / nt
            se = np.sqrt(sc + st)
            df = (sc + st) ** 2 / (sc**2 / (nc - 1) + st**2 / (nt - 1))
            diff = mt - mc
            out["absolute_diff"] = float(diff)
            out["p_value"] = float(2 * stats.t.sf(abs(diff / se), df))
            out["welch_df"] = float(df)
            out["relative_lift"] = float(mt / mc - 1)
    return out


def analyze(path, split, control, experiment, chunksize):
    req, fb, n_lines = read_events(path, chunksize)
    if experiment is None:
        experiment = req["experiment"].mode().iat[0]
    req = req[req["experiment"] == experiment]
    fb = fb[fb["experiment"] == experiment]

    # Requests: first occurrence of each request id (file order) wins.
    req = req[~req["request_id"].duplicated()].copy()
    req["conversation_id"] = req["conversation_id"].fillna(req["request_id"])
    req["status"] = req["status"].fillna("ok")

    # Users: the variant of their first request by ts; idxmin keeps the earliest line among ties.
    first = req.loc[req.groupby("user_id", sort=False)["ts"].idxmin(), ["user_id", "variant"]]
    user_variant = first.set_index("user_id")["variant"]
    variants = user_variant.value_counts()
    treatment = next(v for v in variants.index if v != control)

    # Conversations belong to the user of their first request (file order).
    conv_user = req.drop_duplicates("conversation_id").set_index("conversation_id")["user_id"]
    req_index = req.set_index("request_id")[["conversation_id", "user_id"]]

    # Feedback targets: request_id if given (and its conversation), else conversation_id.
    fb = fb[fb["name"].isin(set(CONVERSATION_FEEDBACK.values()) | set(REQUEST_FEEDBACK.values()))].copy()
    fb["by_request"] = fb["request_id"].notna()
    fb["conversation"] = fb["conversation_id"].where(~fb["by_request"],
                                                     fb["request_id"].map(req_index["conversation_id"]))
    fb = fb[fb["conversation"].isin(conv_user.index)]  # drops targets without a request event
    fb["value"] = fb["value"].astype(float)  # true/false -> 1/0
    fb = fb.sort_values("ts", kind="stable")  # the last by ts wins; ties -> the later line

    units = {}  # metric -> DataFrame(user_id, value), one row per unit
    for metric, name in CONVERSATION_FEEDBACK.items():
        last = fb[fb["name"] == name].drop_duplicates("conversation", keep="last")
        units[metric] = pd.DataFrame({"user_id": last["conversation"].map(conv_user).to_numpy(),
                                      "value": last["value"].to_numpy()})
    turns = req.groupby("conversation_id").size()
    units["avg_turns"] = pd.DataFrame({"user_id": conv_user.reindex(turns.index).to_numpy(),
                                       "value": turns.to_numpy(float)})
    for metric, name in REQUEST_FEEDBACK.items():
        last = fb[(fb["name"] == name) & fb["by_request"]].drop_duplicates("request_id", keep="last")
        units[metric] = pd.DataFrame({"user_id": last["request_id"].map(req_index["user_id"]).to_numpy(),
                                      "value": last["value"].to_numpy()})
    days = req["ts"].dt.floor("D").groupby(req["user_id"]).nunique()
    units["repeat_usage"] = pd.DataFrame({"user_id": days.index, "value": (days.to_numpy() >= 2).astype(float)})
    units["error_rate"] = pd.DataFrame({"user_id": req["user_id"].to_numpy(),
                                        "value": (req["status"] != "ok").to_numpy(float)})
    tokens = req[req["output_tokens"].notna()]
    units["output_tokens"] = pd.DataFrame({"user_id": tokens["user_id"].to_numpy(),
                                           "value": tokens["output_tokens"].to_numpy(float)})

    metrics = {}
    for metric in METRIC_ORDER:
        per_user = units[metric].groupby("user_id")["value"].agg(m="sum", d="size")
        per_user["variant"] = per_user.index.map(user_variant)
        metrics[metric] = ratio_test(per_user, control, treatment)

    req["assigned"] = req["user_id"].map(user_variant)
    quantiles = {}
    for name, column, q in QUANTILES:
        values = req.groupby("assigned")[column].quantile(q)  # linear interpolation, NaN skipped
        quantiles[name] = {v: float(values[v]) for v in (control, treatment)}

    observed = np.array([variants.get(control, 0), variants.get(treatment, 0)], float)
    srm = stats.chisquare(observed, observed.sum() * np.array([1 - split, split]))
    return {
        "events": n_lines,
        "experiment": experiment,
        "users": {v: int(variants.get(v, 0)) for v in (control, treatment)},
        "requests": {v: int(n) for v, n in req["assigned"].value_counts().items()},
        "srm_p_value": float(srm.pvalue),
        "metrics": metrics,
        "quantiles": quantiles,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events")
    parser.add_argument("--split", type=float, default=0.2, help="planned treatment share (SRM check)")
    parser.add_argument("--control", default="control")
    parser.add_argument("--experiment", help="default: the experiment with the most requests")
    parser.add_argument("--chunksize", type=int, default=500_000, help="lines per read_json chunk")
    args = parser.parse_args()
    result = analyze(args.events, args.split, args.control, args.experiment, args.chunksize)
    json.dump(result, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
