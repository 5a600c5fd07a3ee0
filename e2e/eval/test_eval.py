"""`bakeoff eval` end to end: the real binary against real `bakeoff mock-upstream` processes (graded models with a
known quality, an MT-Bench judge), run as a new user and as a hostile one would.

Tests below include regression tests of the bugs this suite found (each failed before its fix).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from .eval_helpers import (ALIAS, BIN, EXPERIMENT, REPO, TREATMENT_PROMPT, BlackHole, FakeUpstream, Process, bakeoff,
                          closed_port, experiment, holm, judge_section, kill9, mock_dataset, raw_request, run_eval,
                          start_mock, user_in, write_config, write_jsonl)

PROMOTE = "promote to a live A/B"
DO_NOT_PROMOTE = "do not promote"
NEEDS_MORE = "needs more requests"

ALL_SCORERS = [{"type": "judge_pairwise"}, {"type": "exact_match"}, {"type": "token_f1"}, {"type": "valid_json"}]


# --- 1. a whole eval ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def whole(module_procs, module_work):
    """300 requests, support-v1 (quality 0.6) against support-v2 (0.75) on one mock, judged pairwise by the mock's
    judge, scored by exact match, token F1 and valid JSON; the JSON report, with a cache the other formats reuse."""
    mock = start_mock(module_procs, "--quality-noise", "0.1", quality={"support-v1": 0.6, "support-v2": 0.75}, judge=True)
    dataset = mock_dataset(module_work / "requests.jsonl", 300)
    section = {"judge": judge_section(mock.base_url), "scorers": ALL_SCORERS}
    config = write_config(module_work, [experiment(mock.base_url, eval_section=section)])
    cache = module_work / "cache.db"
    run = run_eval(config, dataset, "--cache", str(cache), "--format", "json")
    assert run.returncode == 0, run.describe()
    return SimpleNamespace(mock=mock, dataset=dataset, config=config, cache=cache, run=run, report=run.json, work=module_work)


def test_whole_eval_promotes_the_better_variant(whole):
    r = whole.report
    assert r["schema"] == "bakeoff.eval/1"
    assert r["experiment"] == EXPERIMENT
    assert r["requests"] == 300 and r["repetitions"] == 1
    assert r["control"] == "control"
    assert sorted(r["variants"]) == ["control", "treatment"]
    assert r["primary"] == "judge_pairwise"
    assert r["decision"]["action"] == PROMOTE, r["decision"]
    assert r["decision"]["variant"] == "treatment"
    assert any("judge_pairwise" in reason for reason in r["decision"]["reasons"])


def test_whole_eval_win_rate_with_its_interval(whole):
    (w,) = whole.report["win_rates"]
    assert w["scorer"] == "judge_pairwise" and w["variant"] == "treatment"
    assert w["requests"] == 300 and w["judgments"] == 600  # every pair judged in both orders
    assert w["wins"] + w["ties"] + w["losses"] == 300
    assert w["wins"] > w["losses"]
    assert 0.5 < w["ci_low"] < w["win_rate"] < w["ci_high"] <= 1
    # Truth: P(v2 right and v1 wrong) is about 0.15, so the win rate (ties count half) is about 0.575.
    assert 0.53 < w["win_rate"] < 0.62
    # An unbiased, deterministic judge: both orders agree, decisive verdicts are half first, half second.
    assert w["first_position_rate"] == pytest.approx(0.5)
    assert w["flip_rate"] == 0
    assert w["p_value"] < 1e-4


def test_whole_eval_exact_match_difference_is_the_true_one(whole):
    scores = {s["name"]: s for s in whole.report["scores"]}
    assert set(scores) == {"exact_match", "token_f1", "valid_json"}
    em = scores["exact_match"]
    assert em["variant"] == "treatment" and em["binary"] is True and em["requests"] == 300
    assert em["test"].startswith("McNemar")
    assert em["control_mean"] == pytest.approx(0.6, abs=0.08)
    assert em["variant_mean"] == pytest.approx(0.75, abs=0.08)
    assert em["difference"] == pytest.approx(em["variant_mean"] - em["control_mean"])
    assert em["ci_low"] <= 0.15 <= em["ci_high"], em
    assert abs(em["difference"] - 0.15) < 0.06
    assert em["only_variant"] > em["only_control"]
    f1 = scores["token_f1"]
    assert f1["test"] == "paired t" and f1["difference"] > 0 and f1["wilcoxon_p_value"] is not None
    vj = scores["valid_json"]  # the mock's answers are plain words: never JSON, for either variant
    assert vj["control_mean"] == 0 and vj["variant_mean"] == 0 and vj["p_value"] == 1


def test_whole_eval_holm_adjusts_every_comparison_together(whole):
    r = whole.report
    comparisons = r["scores"] + r["win_rates"]
    raw = [c["p_value"] for c in comparisons]
    adjusted = [c["adjusted_p_value"] for c in comparisons]
    for c in comparisons:
        assert c["adjusted_p_value"] >= c["p_value"], c
        assert c["adjusted_p_value"] <= 1
    for got, want in zip(adjusted, holm(raw)):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15)


def test_whole_eval_calls(whole):
    r = whole.report
    calls = {c["variant"]: c for c in r["calls"]}
    assert set(calls) == {"control", "treatment"}
    for c in calls.values():
        assert c["answers"] == 300 and c["failed"] == 0 and c["retries"] == 0 and c["cached"] == 0, c
        assert c["common_error"] is None
        assert c["mean_latency_ms"] > 0 and c["mean_output_tokens"] > 0
    assert r["judge_problems"] == [{"scorer": "judge_pairwise", "failed": 0, "unparseable": 0}]
    # 600 answers and 600 judge calls (300 pairs in both orders), no retries.
    assert whole.run.calls == 1200 and whole.run.retries == 0
    assert "failed" not in whole.run.stderr
    # The treatment's system prompt is longer than none: more input tokens on every request.
    tokens = next(m for m in r["metrics"] if m["name"] == "input_tokens")
    assert tokens["difference"] > 0


def test_table_format_from_the_cache(whole):
    run = run_eval(whole.config, whole.dataset, "--cache", str(whole.cache))
    assert run.returncode == 0, run.describe()
    assert run.calls == 0  # everything from the cache
    assert "calls kept from earlier runs" in run.stderr
    out = run.stdout
    assert f"Bakeoff offline eval: {EXPERIMENT}" in out
    assert f"Decision: {PROMOTE} treatment" in out
    for section in ("Pairwise judge", "Scorers", "Calls"):
        assert section in out
    for name in ("judge_pairwise", "exact_match", "token_f1", "valid_json"):
        assert name in out


def test_calls_file_traces_every_number_to_its_calls(whole):
    """--calls writes every answer and verdict, raw judge text included; the win rate recomputed from it is the
    report's."""
    path = whole.work / "calls.jsonl"
    run = run_eval(whole.config, whole.dataset, "--cache", str(whole.cache), "--format", "json", "--calls", str(path))
    assert run.returncode == 0, run.describe()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    answers = [r for r in rows if r["kind"] == "answer"]
    judgments = [r for r in rows if r["kind"] == "judgment"]
    assert len(answers) == 600 and len(judgments) == 600
    assert all(j["raw"] and j["verdict"] in ("A", "B", "C") for j in judgments)
    per_request = {}
    for j in judgments:
        won = {"C": 0.5, "A": 1.0 if j["first"] == "treatment" else 0.0, "B": 1.0 if j["second"] == "treatment" else 0.0}[j["verdict"]]
        per_request.setdefault(j["id"], []).append(won)
    scores = [(v[0] if v[0] == v[1] else 0.5) for v in per_request.values()]
    (w,) = run.json["win_rates"]
    assert w["win_rate"] == pytest.approx(sum(scores) / len(scores), abs=1e-12)


def test_a_damaged_live_store_keeps_the_report(whole):
    """--db naming a file that turns out not to be a store: the paid-for report still comes, the failure is said,
    exit 1."""
    damaged = whole.work / "damaged.db"
    damaged.write_bytes(os.urandom(4096))
    run = run_eval(whole.config, whole.dataset, "--cache", str(whole.cache), "--db", str(damaged))
    assert run.returncode == 1, run.describe()
    assert "Decision:" in run.stdout
    assert "live experiment could not be read" in run.stderr and "damaged.db" in run.stderr


def test_markdown_format(whole):
    run = run_eval(whole.config, whole.dataset, "--cache", str(whole.cache), "--format", "markdown")
    assert run.returncode == 0, run.describe()
    out = run.stdout
    assert out.startswith(f"## Bakeoff offline eval: {EXPERIMENT}")
    assert f"Decision: {PROMOTE} treatment" in out
    assert "|---|" in out  # tables
    assert re.search(r"^\| judge\\?_pairwise \| treatment \|", out, re.M)


def test_markdown_decision_is_bold(whole):
    run = run_eval(whole.config, whole.dataset, "--cache", str(whole.cache), "--format", "markdown")
    assert run.returncode == 0, run.describe()
    assert f"**Decision: {PROMOTE} treatment**" in run.stdout
    assert "\\*\\*Decision" not in run.stdout


class _Page(HTMLParser):
    """Collects the text of the element with id="decision" and every tag name."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.depth = 0
        self.decision = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("id") == "decision":
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.decision += data


def test_html_format_is_a_page_with_the_decision(whole):
    out = whole.work / "report.html"
    run = run_eval(whole.config, whole.dataset, "--cache", str(whole.cache), "--format", "html", "--output", str(out))
    assert run.returncode == 0, run.describe()
    assert run.stdout == ""
    assert f"report written to {out}" in run.stderr
    html = out.read_text()
    assert html.lower().startswith("<!doctype html>")
    assert html.rstrip().endswith("</html>")
    page = _Page()
    page.feed(html)
    assert f"Decision: {PROMOTE} treatment" in page.decision
    assert "script" not in page.tags  # nothing to run, nothing fetched: self-contained
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)


def test_html_escapes_every_less_than_sign(whole):
    out = whole.work / "report-lt.html"
    run = run_eval(whole.config, whole.dataset, "--cache", str(whole.cache), "--format", "html", "--output", str(out))
    assert run.returncode == 0, run.describe()
    html = out.read_text()
    stray = [html[max(0, m.start() - 20): m.start() + 20] for m in re.finditer(r"<(?![A-Za-z/!])", html)]
    assert not stray, stray


def test_a_renamed_control_reuses_every_answer_and_does_not_promote_the_worse_variant(whole):
    """The same variants with the better one as control: nothing is called again (answers are keyed by what the
    variant is, not by its role), and the worse variant is not promoted."""
    config = json.loads(whole.config.read_text())
    config["experiments"][0]["control"] = "treatment"
    path = whole.work / "swapped.json"
    path.write_text(json.dumps(config))
    run = run_eval(path, whole.dataset, "--cache", str(whole.cache), "--format", "json")
    assert run.returncode == 0, run.describe()
    assert run.calls == 0
    r = run.json
    assert r["control"] == "treatment"
    assert r["decision"]["action"] == DO_NOT_PROMOTE, r["decision"]
    assert r["decision"]["variant"] == "control"
    (w,) = r["win_rates"]
    assert w["ci_high"] < 0.5


def test_hostile_dataset_text_is_escaped_in_every_format(procs, work):
    """Questions and ids with markup, Markdown and terminal escapes reach the reports' side-by-side answers."""
    mock = start_mock(procs, quality={"support-v1": 0.0, "support-v2": 1.0}, judge=True)  # every request differs
    questions = ['<script>alert("x")</script> where is my order?',
                 "Tom & Jerry's \"refund\" </textarea><img src=x onerror=alert(1)>",
                 "line one\n\n## Injected heading\n| a | b |",
                 "color \x1b[31mRED\x1b[0m and a bell \x07 here",
                 "[click](javascript:alert(1)) **bold** `code`"]
    dataset = write_jsonl(work / "hostile.jsonl", [
        {"id": f"h<{i}>&", "messages": [{"role": "user", "content": q}], "metadata": {"topic": "<b>t</b>"}}
        for i, q in enumerate(questions)])
    config = write_config(work, [experiment(mock.base_url, eval_section={"judge": judge_section(mock.base_url),
                                                                         "scorers": [{"type": "judge_pairwise"}]})])
    cache = str(work / "cache.db")
    html_path = work / "r.html"
    html_run = run_eval(config, dataset, "--cache", cache, "--format", "html", "--output", str(html_path))
    assert html_run.returncode == 0, html_run.describe()
    html = html_path.read_text()
    page = _Page()
    page.feed(html)
    assert "img" not in page.tags and "script" not in page.tags and "textarea" not in page.tags
    assert "&lt;script&gt;" in html and "h&lt;0&gt;&amp;" in html
    assert "onerror=alert(1)" in html.replace("&#39;", "'")  # shown as text, not as an attribute
    md = run_eval(config, dataset, "--cache", cache, "--format", "markdown")
    assert md.returncode == 0 and md.calls == 0, md.describe()
    assert not re.search(r"(?<!\\)<", md.stdout), "an unescaped < in Markdown"  # "\\<img" is text, "<img" a tag
    assert not re.search(r"^#+ Injected", md.stdout, re.M)
    assert "\x1b" not in md.stdout and "\x07" not in md.stdout
    table = run_eval(config, dataset, "--cache", cache)
    assert table.returncode == 0, table.describe()
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout


# --- 2. equal variants, a judge biased to the first position ------------------------------------------------------

def test_equal_variants_with_a_position_biased_judge(procs, work):
    mock = start_mock(procs, "--quality-noise", "0.1", "--judge-position-bias", "0.3",
                      quality={"support-v1": 0.6, "support-v2": 0.6}, judge=True)
    dataset = mock_dataset(work / "requests.jsonl", 300, seed=2)
    # The noise makes some requests differ by chance; a test at 5% would then call a difference in about one run in
    # 20 (it did here), so this plan tests at 0.1%: the check is that nothing is found, not the error rate.
    section = {"judge": judge_section(mock.base_url), "scorers": [{"type": "judge_pairwise"}, {"type": "exact_match"}],
               "alpha": 0.001}
    config = write_config(work, [experiment(mock.base_url, eval_section=section)])
    run = run_eval(config, dataset, "--no-cache", "--format", "json")
    assert run.returncode == 0, run.describe()
    r = run.json
    assert r["alpha"] == 0.001
    assert r["decision"]["action"] == NEEDS_MORE, r["decision"]
    (w,) = r["win_rates"]
    assert w["ci_low"] <= 0.5 <= w["ci_high"], w
    assert w["adjusted_p_value"] > 0.001
    # 30% of the judge's verdicts are "[[A]]" whatever the answers: most decisive verdicts pick the first answer,
    # and a biased verdict in one order only makes the pair flip (about half of the pairs here).
    assert w["first_position_rate"] > 0.75, w
    assert 0.3 < w["flip_rate"] < 0.7, w
    em = next(s for s in r["scores"] if s["name"] == "exact_match")
    assert em["adjusted_p_value"] > 0.001 and em["ci_low"] <= 0 <= em["ci_high"], em


# --- 3. the requests exactly as the gateway sends them ------------------------------------------------------------

KEY_ENV = "BAKEOFF_E2E_EVAL_UPSTREAM_KEY"


def test_requests_are_sent_as_the_gateway_sends_them(procs, work):
    # Answers always differ (quality 0 against 1). The judge has an upstream model name of its own, which must
    # replace the runner's placeholder model.
    judge_mock_model = "judge-large"
    mock = start_mock(procs, "--judge-model", judge_mock_model, quality={"support-v1": 0.0, "support-v2": 1.0})
    conversations = [
        [{"role": "system", "content": "You are the DATASET's system message."},
         {"role": "user", "content": f"Where is my order #{10000 + i}? It was due today."}]
        for i in range(4)]
    dataset = write_jsonl(work / "requests.jsonl", [{"id": f"r{i}", "messages": m} for i, m in enumerate(conversations)])
    section = {"judge": judge_section(mock.base_url, model=judge_mock_model), "scorers": [{"type": "judge_pairwise"}]}
    e = experiment(mock.base_url, eval_section=section,
                   treatment_extra={"parameters": {"temperature": 0.3, "top_p": 0.9, "max_tokens": 64}})
    e["variants"][1]["upstream"].update({"api_key_env": KEY_ENV, "headers": {"X-Team": "support"}})
    config = write_config(work, [e])
    env = dict(os.environ, **{KEY_ENV: "sk-e2e-secret"})

    run = run_eval(config, dataset, "--no-cache", "--format", "json", env=env)
    assert run.returncode == 0, run.describe()
    recorded = mock.requests()
    by_model: dict[str, list[dict]] = {}
    for r in recorded:
        by_model.setdefault(r["json"]["model"], []).append(r)
    assert set(by_model) == {"support-v1", "support-v2", judge_mock_model}, sorted(by_model)  # never the alias
    assert all(r["json"]["model"] != ALIAS for r in recorded)

    control = sorted(by_model["support-v1"], key=lambda r: r["json"]["messages"][-1]["content"])
    treatment = sorted(by_model["support-v2"], key=lambda r: r["json"]["messages"][-1]["content"])
    assert len(control) == len(treatment) == 4
    for conversation, c, t in zip(conversations, control, treatment):
        assert c["path"] == t["path"] == "/v1/chat/completions"
        # Control: the dataset's messages as they are, no parameters of its own.
        assert c["json"]["messages"] == conversation
        assert "temperature" not in c["json"] and "authorization" not in c["headers"]
        # Treatment: its system prompt replaces the dataset's system message; its parameters, key and headers.
        assert t["json"]["messages"] == [{"role": "system", "content": TREATMENT_PROMPT}] + conversation[1:]
        assert t["json"]["temperature"] == 0.3 and t["json"]["top_p"] == 0.9 and t["json"]["max_tokens"] == 64
        assert t["headers"].get("authorization") == "<present>"
        assert t["headers"].get("x-team") == "support"
        for r in (c, t):
            assert r["json"]["stream"] is True  # streamed, as chat clients do (TTFT is measured)

    # The judge: both orders of each pair, at temperature 0, not streamed.
    judge = by_model[judge_mock_model]
    assert len(judge) == 8
    orders: dict[str, set] = {}
    for r in judge:
        assert r["json"]["temperature"] == 0 and r["json"]["stream"] is False
        prompt = r["json"]["messages"][-1]["content"]
        question = re.search(r"\[User Question\]\n(.*?)\n", prompt).group(1)
        a = re.search(r"\[The Start of Assistant A's Answer\]\n(.*?)\n\[The End", prompt, re.S).group(1)
        b = re.search(r"\[The Start of Assistant B's Answer\]\n(.*?)\n\[The End", prompt, re.S).group(1)
        assert a != b
        orders.setdefault(question, set()).add((a, b))
        assert "DATASET's system message" not in prompt  # the judge sees the question, not the system message
    assert len(orders) == 4
    for question, pairs in orders.items():
        assert len(pairs) == 2, (question, pairs)
        (a, b), other = sorted(pairs)[0], sorted(pairs)[1]
        assert other == (b, a)

    # The same requests through `bakeoff serve` with the same config: byte-identical upstream bodies (but "user").
    mock.clear()
    gateway = procs.add(Process("bakeoff serve", [BIN, "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
                                r"bakeoff serve listening on (http://\S+/v1)", env=env, cwd=str(work)))
    base = gateway.wait_ready().group(1)
    users = {v: user_in(EXPERIMENT, v) for v in ("control", "treatment")}
    for conversation in conversations:
        for variant in ("control", "treatment"):
            body = {"model": ALIAS, "user": users[variant], "messages": conversation, "stream": True}
            status, _, data = raw_request(base + "/chat/completions", method="POST", body=json.dumps(body))
            assert status == 200, data
    live = mock.requests()
    assert len(live) == 8

    def comparable(r):
        j = dict(r["json"])
        j.pop("user", None)
        h = {k: v for k, v in r["headers"].items() if k in ("authorization", "x-team", "content-type", "accept")}
        return json.dumps(j, sort_keys=True), json.dumps(h, sort_keys=True)

    assert sorted(map(comparable, live)) == sorted(map(comparable, control + treatment))


# --- 4. hostile upstreams -----------------------------------------------------------------------------------------

def test_flaky_upstream_failed_answers_are_counted_and_retries_reported(procs, work):
    variants = start_mock(procs, "--error-rate", "0.5", quality={"support-v1": 0.6, "support-v2": 0.75})
    judge = start_mock(procs, judge=True)
    dataset = mock_dataset(work / "requests.jsonl", 20)
    # One retry: a call fails for good with probability 1/4, so some of the 40 answers fail (and it stays quick).
    section = {"judge": judge_section(judge.base_url), "scorers": [{"type": "judge_pairwise"}, {"type": "exact_match"}],
               "retries": 1}
    config = write_config(work, [experiment(variants.base_url, eval_section=section)])
    run = run_eval(config, dataset, "--no-cache", "--format", "json")
    assert run.returncode == 0, run.describe()  # some answers exist
    r = run.json
    calls = {c["variant"]: c for c in r["calls"]}
    failed = sum(c["failed"] for c in calls.values())
    retries = sum(c["retries"] for c in calls.values())
    assert all(c["answers"] == 20 for c in calls.values())
    assert 0 < failed < 40, calls
    assert retries > 0 and run.retries >= retries
    assert f"{failed} answers failed after their retries" in run.stderr
    for c in calls.values():
        if c["failed"]:
            assert re.match(r"HTTP (429|500)", c["common_error"]), c
    # Requests missing an answer are left out of the pairing, not scored as wrong.
    em = next(s for s in r["scores"] if s["name"] == "exact_match")
    assert em["requests"] <= 20 and em["requests"] == next(w for w in r["win_rates"])["requests"]
    assert r["judge_problems"][0]["failed"] == 0


def test_streams_broken_mid_way_are_retried_never_scored(procs, work):
    """Both variants always give the expected answer; 30% of streams break after a word or three. A truncated
    answer kept as an answer would score 0 on exact match."""
    mock = start_mock(procs, "--fail-mid-stream-rate", "0.3", quality={"support-v1": 1.0, "support-v2": 1.0})
    dataset = mock_dataset(work / "requests.jsonl", 40)
    config = write_config(work, [experiment(mock.base_url, eval_section={"scorers": [{"type": "exact_match"}], "retries": 2})])
    run = run_eval(config, dataset, "--no-cache", "--format", "json")
    assert run.returncode == 0, run.describe()
    assert run.retries > 0
    r = run.json
    (em,) = r["scores"]
    assert em["control_mean"] == 1 and em["variant_mean"] == 1, em
    for c in r["calls"]:
        if c["failed"]:
            assert "broke off" in c["common_error"], c


def test_upstream_down_exits_1_naming_the_failure(work):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    dataset = mock_dataset(work / "requests.jsonl", 3)
    config = write_config(work, [experiment(url, eval_section={"scorers": [{"type": "exact_match"}], "retries": 1})])
    run = run_eval(config, dataset, "--no-cache", timeout=60)
    assert run.returncode == 1, run.describe()
    assert run.stdout == ""
    assert "no variant answered any request" in run.stderr
    assert "cannot reach the upstream" in run.stderr
    assert run.calls == 12 and run.retries == 6  # 6 answers, each tried twice


def test_upstream_that_never_answers_times_out(work):
    hole = BlackHole()
    try:
        dataset = mock_dataset(work / "requests.jsonl", 3)
        e = experiment(f"http://127.0.0.1:{hole.port}/v1", upstream_extra={"timeout_ms": 500},
                       eval_section={"scorers": [{"type": "exact_match"}], "retries": 1})
        config = write_config(work, [e])
        run = run_eval(config, dataset, "--no-cache", timeout=60)
    finally:
        hole.close()
    assert run.returncode == 1, run.describe()
    assert "did not answer within 500 ms" in run.stderr
    assert run.seconds < 20


@pytest.mark.parametrize("body, content_type", [
    (b"<html><body>Please log in to the hotel Wi-Fi</body></html>", "text/html"),
    (b"{}", "application/json"),
], ids=["html-page", "empty-object"])
def test_a_200_that_is_not_a_completion_is_a_failure(work, body, content_type):
    fake = FakeUpstream(body, content_type)
    try:
        dataset = mock_dataset(work / "requests.jsonl", 2)
        config = write_config(work, [experiment(fake.base_url, eval_section={"scorers": [{"type": "exact_match"}],
                                                                             "retries": 0})])
        run = run_eval(config, dataset, "--no-cache", "--format", "json", timeout=60)
    finally:
        fake.close()
    assert run.returncode == 1, run.describe()
    assert "no variant answered any request" in run.stderr


def test_guardrail_on_latency_stops_a_better_but_slower_variant(procs, work):
    fast = start_mock(procs, quality={"support-v1": 0.6})
    slow = start_mock(procs, latency_ms=60, quality={"support-v2": 0.9})
    dataset = mock_dataset(work / "requests.jsonl", 60)
    section = {"scorers": [{"type": "exact_match"}], "guardrails": [{"metric": "latency_ms", "margin": "10%"}]}
    config = write_config(work, [experiment(fast.base_url, slow.base_url, eval_section=section)])
    run = run_eval(config, dataset, "--no-cache", "--format", "json")
    assert run.returncode == 0, run.describe()
    r = run.json
    (g,) = r["guardrails"]
    assert g["name"] == "latency_ms" and g["state"] == "breached" and g["worsening"] > 40, g
    (em,) = r["scores"]
    assert em["difference"] > 0 and em["adjusted_p_value"] < 0.05  # better on the primary scorer...
    assert r["decision"]["action"] == DO_NOT_PROMOTE, r["decision"]  # ...but not promoted
    assert "guardrail latency_ms" in r["decision"]["reasons"][0]


def test_judge_down_leaves_the_other_scorers(procs, work):
    variants = start_mock(procs, quality={"support-v1": 0.6, "support-v2": 0.75})
    dataset = mock_dataset(work / "requests.jsonl", 10)
    section = {"judge": judge_section(f"http://127.0.0.1:{closed_port()}/v1"), "retries": 0,
               "scorers": [{"type": "judge_pairwise"}, {"type": "exact_match"}]}
    config = write_config(work, [experiment(variants.base_url, eval_section=section)])
    run = run_eval(config, dataset, "--no-cache", "--format", "json", timeout=60)
    assert run.returncode == 0, run.describe()
    r = run.json
    assert r["judge_problems"] == [{"scorer": "judge_pairwise", "failed": 20, "unparseable": 0}]
    assert r["win_rates"] == [] and r["decision"]["action"] == NEEDS_MORE
    assert "20 judge calls failed" in run.stderr
    assert [s["name"] for s in r["scores"]] == ["exact_match"]


# --- 5. a judge that answers garbage ------------------------------------------------------------------------------

def test_garbage_judge(procs, work):
    variants = start_mock(procs, quality={"support-v1": 0.6, "support-v2": 0.75})
    judge = start_mock(procs, "--judge-garbage-rate", "1", judge=True)
    dataset = mock_dataset(work / "requests.jsonl", 40)
    section = {"judge": judge_section(judge.base_url), "scorers": [{"type": "judge_pairwise"}, {"type": "exact_match"}]}
    config = write_config(work, [experiment(variants.base_url, eval_section=section)])
    run = run_eval(config, dataset, "--no-cache", "--format", "json")
    assert run.returncode == 0, run.describe()
    r = run.json
    assert r["judge_problems"] == [{"scorer": "judge_pairwise", "failed": 0, "unparseable": 80}]
    assert r["win_rates"] == []
    assert r["decision"]["action"] == NEEDS_MORE, r["decision"]
    assert "no usable verdict" in " ".join(r["decision"]["reasons"])
    assert "80 judge answers had no verdict" in run.stderr
    assert any(s["name"] == "exact_match" for s in r["scores"])  # the other scorers still report


# --- 6. interrupted and resumed -----------------------------------------------------------------------------------

def test_interrupted_run_resumes_from_the_cache(procs, work):
    mock = start_mock(procs, latency_ms=200, quality={"support-v1": 0.6, "support-v2": 0.75})
    dataset = mock_dataset(work / "requests.jsonl", 200)
    config = write_config(work, [experiment(mock.base_url, eval_section={"scorers": [{"type": "exact_match"}],
                                                                         "concurrency": 2})])
    cache = work / "cache.db"
    args = [BIN, "eval", "--config", str(config), "--dataset", str(dataset), "--cache", str(cache), "--format", "json"]
    # 2 calls in flight of 200 ms: 400 calls would take 40 s. Kill it once some answers are surely committed.
    proc = subprocess.Popen(args, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while mock.count() < 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(0.6)  # the runner commits its cache every 0.25 s
        assert proc.poll() is None, "the first run ended on its own"
    finally:
        kill9(proc)
    first = mock.count()
    assert 20 <= first < 400

    # Resumed (more calls in flight, which does not change what a call is): only what is missing is called.
    mock.clear()
    second = run_eval(config, dataset, "--cache", str(cache), "--format", "json", "--concurrency", "64")
    assert second.returncode == 0, second.describe()
    kept = int(re.search(r"([\d,]+) calls kept from earlier runs", second.stderr).group(1).replace(",", ""))
    assert 0 < kept <= first
    assert second.calls == 400 - kept
    assert mock.count() == 400 - kept < 400
    assert f"{kept} answers and 0 verdicts from the cache" in second.stderr
    r2 = second.json
    assert all(c["answers"] == 200 and c["failed"] == 0 for c in r2["calls"])
    assert sum(c["cached"] for c in r2["calls"]) == kept

    # A third run calls nothing and reports the same.
    mock.clear()
    third = run_eval(config, dataset, "--cache", str(cache), "--format", "json")
    assert third.returncode == 0, third.describe()
    assert third.calls == 0 and re.search(r"^bakeoff: 0 calls in", third.stderr, re.M)
    assert mock.count() == 0
    r3 = third.json
    assert r3["scores"] == r2["scores"] and r3["decision"] == r2["decision"]
    assert all(c["cached"] == 200 for c in r3["calls"])


def test_ctrl_c_stops_the_run_at_once_and_the_next_run_resumes(procs, work):
    mock = start_mock(procs, latency_ms=200, quality={"support-v1": 0.6, "support-v2": 0.75})
    dataset = mock_dataset(work / "requests.jsonl", 100)
    config = write_config(work, [experiment(mock.base_url, eval_section={"scorers": [{"type": "exact_match"}],
                                                                         "concurrency": 2})])
    cache = work / "cache.db"
    # SIGINT as a terminal's Ctrl-C gives it, whatever this run inherited: a shell that starts `make test` in the
    # background without job control has its children ignore SIGINT, and the eval would never see it.
    proc = subprocess.Popen([BIN, "eval", "--config", str(config), "--dataset", str(dataset), "--cache", str(cache)],
                            cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 30
        while mock.count() < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        proc.wait(10)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            kill9(proc)
        proc.stderr.close()
    assert proc.returncode != 0
    mock.clear()
    run = run_eval(config, dataset, "--cache", str(cache), "--concurrency", "64")
    assert run.returncode == 0, run.describe()
    kept = int(re.search(r"([\d,]+) calls kept from earlier runs", run.stderr).group(1).replace(",", ""))
    assert kept > 0 and run.calls == 200 - kept == mock.count()


def test_changing_a_variant_calls_only_that_variant_again(procs, work):
    """The cache is keyed by what makes an answer: a new treatment prompt calls the treatment again, not the
    control; a changed reference calls nothing (it is only scored again)."""
    mock = start_mock(procs, quality={"support-v1": 0.6, "support-v2": 0.75})
    dataset = mock_dataset(work / "requests.jsonl", 20)
    section = {"scorers": [{"type": "exact_match"}]}
    config = write_config(work, [experiment(mock.base_url, eval_section=section)])
    cache = str(work / "cache.db")
    first = run_eval(config, dataset, "--cache", cache, "--format", "json")
    assert first.returncode == 0 and first.calls == 40, first.describe()

    mock.clear()
    config = write_config(work, [experiment(mock.base_url, eval_section=section,
                                            treatment_extra={"system_prompt": "A new prompt."})])
    second = run_eval(config, dataset, "--cache", cache, "--format", "json")
    assert second.returncode == 0, second.describe()
    assert second.calls == 20 and {r["json"]["model"] for r in mock.requests()} == {"support-v2"}
    calls = {c["variant"]: c for c in second.json["calls"]}
    assert calls["control"]["cached"] == 20 and calls["treatment"]["cached"] == 0

    mock.clear()
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    for row in rows:
        row["reference"] = "nothing anyone says"
    changed = write_jsonl(work / "changed.jsonl", rows)
    third = run_eval(config, changed, "--cache", cache, "--format", "json")
    assert third.returncode == 0, third.describe()
    assert third.calls == 0 and mock.count() == 0
    (em,) = third.json["scores"]
    assert em["control_mean"] == 0 and em["variant_mean"] == 0


def test_no_cache_makes_every_call_and_keeps_nothing(procs, work):
    mock = start_mock(procs, quality={"support-v1": 0.6, "support-v2": 0.75})
    dataset = mock_dataset(work / "requests.jsonl", 20)
    config = write_config(work, [experiment(mock.base_url, eval_section={"scorers": [{"type": "exact_match"}]})])
    for _ in range(2):
        mock.clear()
        run = run_eval(config, dataset, "--no-cache")
        assert run.returncode == 0, run.describe()
        assert run.calls == 40 and mock.count() == 40
        assert "from the cache" not in run.stderr and "kept from earlier runs" not in run.stderr
    assert not (work / "bakeoff-eval.db").exists()
    both = run_eval(config, dataset, "--no-cache", "--cache", str(work / "c.db"))
    assert both.returncode == 2 and "either --cache or --no-cache" in both.stderr


# --- 7. broken datasets -------------------------------------------------------------------------------------------

GOOD = {"id": "ok-1", "messages": [{"role": "user", "content": "Where is my order?"}], "reference": "soon"}


@pytest.fixture(scope="module")
def plain_config(module_work):
    """A config whose upstream is never reached: every dataset below is refused before any call."""
    return write_config(module_work, [experiment(f"http://127.0.0.1:{closed_port()}/v1",
                                                 eval_section={"scorers": [{"type": "exact_match"}], "retries": 0})],
                        name="plain.json")


def _bad(lines):
    good2 = dict(GOOD, id="ok-2")
    return [GOOD, good2] + lines


@pytest.mark.parametrize("name, lines, line, words", [
    ("bad-json", _bad(['{"id": "x", "messages": [']), 3, ["not valid JSON", "column"]),
    ("missing-id", _bad([{"messages": GOOD["messages"]}]), 3, ['"id"', "required"]),
    ("duplicate-id", _bad([dict(GOOD)]), 3, ['"id"', '"ok-1"', "line 1"]),
    ("unknown-field", _bad([dict(GOOD, id="x", referense="soon")]), 3, ['"referense"', 'did you mean "reference"']),
    ("empty-messages", _bad([dict(GOOD, id="x", messages=[])]), 3, ['"messages"', "empty"]),
    ("no-role", _bad([dict(GOOD, id="x", messages=[{"content": "hi"}])]), 3, ['"messages[0].role"']),
    ("prompt-and-messages", _bad([dict(GOOD, id="x", prompt="hi")]), 3, ['"prompt"', '"messages"']),
    ("not-an-object", _bad(['["a list"]']), 3, ["JSON object"]),
])
def test_broken_dataset_line_is_named(plain_config, work, name, lines, line, words):
    path = write_jsonl(work / f"{name}.jsonl", lines)
    run = run_eval(plain_config, path, "--no-cache", cwd=work)
    assert run.returncode in (1, 2), run.describe()
    assert run.stdout == ""
    assert f"{path}:{line}:" in run.stderr, run.stderr
    for w in words:
        assert w in run.stderr, run.stderr
    assert "calls in" not in run.stderr  # refused before any call


@pytest.mark.parametrize("name, make, words", [
    ("empty", lambda p: p.write_text(""), ["empty"]),
    ("blank-lines", lambda p: p.write_text("\n  \n\t\n"), ["empty"]),
    ("directory", lambda p: p.mkdir(), ["is a directory"]),
    ("missing", lambda p: None, ["no such file"]),
])
def test_unusable_dataset_file(plain_config, work, name, make, words):
    path = work / f"{name}.jsonl"
    make(path)
    run = run_eval(plain_config, path, "--no-cache", cwd=work)
    assert run.returncode in (1, 2), run.describe()
    assert str(path) in run.stderr
    for w in words:
        assert w in run.stderr, run.stderr


def test_dataset_with_bom_and_crlf_is_read(procs, work):
    """A file saved by a Windows editor: byte order mark, CRLF line ends."""
    mock = start_mock(procs, quality={"support-v1": 0.6, "support-v2": 0.75})
    config = write_config(work, [experiment(mock.base_url, eval_section={"scorers": [{"type": "exact_match"}]})])
    path = work / "windows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(json.dumps(dict(GOOD, id=f"w{i}")).encode() for i in range(3)) + b"\r\n")
    run = run_eval(config, path, "--no-cache", "--format", "json")
    assert run.returncode == 0, run.describe()
    assert run.json["requests"] == 3


@pytest.mark.parametrize("name, content", [
    ("escape-line", b"\x1b[31mRED\x1b[0m\n"),
    ("duplicate-id", b'{"id":"\\u001b[2J","messages":[{"role":"user","content":"a"}]}\n'
                     b'{"id":"\\u001b[2J","messages":[{"role":"user","content":"b"}]}\n'),
    ("unknown-field", b'{"id":"a","\\u001b]0;owned\\u0007":1,"messages":[{"role":"user","content":"b"}]}\n'),
], ids=["escape-line", "duplicate-id", "unknown-field"])
def test_dataset_errors_do_not_echo_control_characters(plain_config, work, name, content):
    path = work / f"{name}.jsonl"
    path.write_bytes(content)
    run = run_eval(plain_config, path, "--no-cache", cwd=work)
    assert run.returncode in (1, 2), run.describe()
    assert f"{path}:" in run.stderr
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", run.stderr), repr(run.stderr)


# --- 8. config errors ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dataset(module_work):
    return write_jsonl(module_work / "tiny.jsonl", [GOOD])


def test_experiment_without_eval_says_to_add_one(work, tiny_dataset):
    config = write_config(work, [experiment("http://127.0.0.1:9/v1")])
    run = run_eval(config, tiny_dataset)
    assert run.returncode == 2, run.describe()
    assert f'experiment {EXPERIMENT} has no "eval"' in run.stderr
    assert "add one" in run.stderr and '"scorers"' in run.stderr


def test_the_readme_section_the_message_points_to_exists(work, tiny_dataset):
    config = write_config(work, [experiment("http://127.0.0.1:9/v1")])
    run = run_eval(config, tiny_dataset)
    section = re.search(r'README, "([^"]+)"', run.stderr).group(1)
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"^#+ .*{re.escape(section)}", readme, re.M | re.I), section
    assert "bakeoff eval" in readme


def test_judge_scorer_without_a_judge_names_the_json_path(work, tiny_dataset):
    config = write_config(work, [experiment("http://127.0.0.1:9/v1", eval_section={"scorers": [{"type": "judge_pairwise"}]})])
    run = run_eval(config, tiny_dataset)
    assert run.returncode in (1, 2), run.describe()
    assert f"{config}: experiments[0].eval.judge:" in run.stderr
    assert "judge_pairwise needs a judge" in run.stderr and '"upstream"' in run.stderr


def test_unknown_scorer_type_has_a_suggestion(work, tiny_dataset):
    config = write_config(work, [experiment("http://127.0.0.1:9/v1",
                                            eval_section={"scorers": [{"type": "exact_match"}, {"type": "tokn_f1"}]})])
    run = run_eval(config, tiny_dataset)
    assert run.returncode in (1, 2), run.describe()
    assert "experiments[0].eval.scorers[1].type" in run.stderr
    assert '"tokn_f1" is not a scorer type; did you mean "token_f1"?' in run.stderr


def test_unknown_eval_key_has_a_suggestion(work, tiny_dataset):
    config = write_config(work, [experiment("http://127.0.0.1:9/v1",
                                            eval_section={"scorers": [{"type": "exact_match"}], "concurency": 4})])
    run = run_eval(config, tiny_dataset)
    assert run.returncode in (1, 2), run.describe()
    assert "experiments[0].eval.concurency" in run.stderr and 'did you mean "concurrency"?' in run.stderr


def test_experiment_name_typo_has_a_suggestion(work, tiny_dataset):
    section = {"scorers": [{"type": "exact_match"}]}
    config = write_config(work, [experiment("http://127.0.0.1:9/v1", eval_section=section),
                                 experiment("http://127.0.0.1:9/v1", name="other-test", eval_section=section)
                                 | {"model": "other-bot"}])
    run = run_eval(config, tiny_dataset, "--experiment", "support-bot-v3")
    assert run.returncode == 2, run.describe()
    assert 'no experiment "support-bot-v3"' in run.stderr and 'did you mean "support-bot-v2"?' in run.stderr
    # Two experiments with an eval and none chosen: the message lists them.
    run = run_eval(config, tiny_dataset)
    assert run.returncode == 2, run.describe()
    assert "--experiment" in run.stderr and "support-bot-v2" in run.stderr and "other-test" in run.stderr


def test_serve_check_accepts_a_config_with_an_eval(work):
    section = {"judge": judge_section("http://127.0.0.1:9/v1"), "scorers": ALL_SCORERS, "concurrency": 4,
               "guardrails": [{"metric": "latency_ms", "margin": "10%"}]}
    config = write_config(work, [experiment("http://127.0.0.1:9/v1", eval_section=section)])
    run = bakeoff("serve", "--check", "--config", str(config), cwd=work)
    assert run.returncode == 0, run.describe()
    assert "valid" in run.stdout


def test_cache_in_a_missing_folder_is_called_a_cache(work, tiny_dataset):
    config = write_config(work, [experiment("http://127.0.0.1:9/v1", eval_section={"scorers": [{"type": "exact_match"}]})])
    run = run_eval(config, tiny_dataset, "--cache", str(work / "missing" / "cache.db"))
    assert run.returncode in (1, 2), run.describe()
    assert str(work / "missing") in run.stderr
    assert "event store" not in run.stderr and "cache" in run.stderr.split(":", 2)[-1]


def test_unwritable_output_is_refused_before_any_call(procs, work):
    mock = start_mock(procs, quality={"support-v1": 0.6, "support-v2": 0.75})
    dataset = mock_dataset(work / "requests.jsonl", 5)
    config = write_config(work, [experiment(mock.base_url, eval_section={"scorers": [{"type": "exact_match"}]})])
    run = run_eval(config, dataset, "--no-cache", "--format", "html", "--output", str(work / "missing" / "r.html"))
    assert run.returncode in (1, 2), run.describe()
    assert "--output" in run.stderr
    assert mock.count() == 0, "calls were made before the output path was checked"


# --- 9. concurrency -----------------------------------------------------------------------------------------------

def test_concurrency_bounds_the_calls_in_flight(procs, work):
    mock = start_mock(procs, latency_ms=100, quality={"support-v1": 0.6, "support-v2": 0.75})
    dataset = mock_dataset(work / "requests.jsonl", 20)
    config = write_config(work, [experiment(mock.base_url, eval_section={"scorers": [{"type": "exact_match"}]})])
    serial = run_eval(config, dataset, "--no-cache", "--concurrency", "1")
    assert serial.returncode == 0, serial.describe()
    parallel = run_eval(config, dataset, "--no-cache", "--concurrency", "16")
    assert parallel.returncode == 0, parallel.describe()
    assert serial.calls == parallel.calls == 40
    # One upstream (both variants on one mock): 40 calls of 100 ms one at a time take at least 4 s; 16 at a time,
    # three rounds. Timed by the run's own summary ("40 calls in 4.1 s"), which leaves out the process start.
    assert serial.run_seconds >= 3.9, serial.stderr
    assert parallel.run_seconds < serial.run_seconds / 3, (serial.stderr, parallel.stderr)
    assert parallel.seconds < serial.seconds
