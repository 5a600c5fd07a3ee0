"""`bakeoff analyze --mlflow` and `bakeoff eval --mlflow` against a real MLflow tracking server, read back through
MLflow's own Python client: every param, metric (against the JSON report's own numbers), tag and artifact; and the
ways recording fails (server down, a Host header it refuses, a deleted experiment, MLflow's own refusal).
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from .conftest import BIN
from eval.eval_helpers import TREATMENT_PROMPT, experiment, judge_section, mock_dataset, run_eval, start_mock, write_config
from processes import closed_port

RECORDED = re.compile(r"^bakeoff: recorded in MLflow as run ([0-9a-f]{32}): (\S+)$", re.M)
EVAL_DECISIONS = {"promote to a live A/B": "promote", "do not promote": "do_not_promote",
                  "needs more requests": "needs_more_requests"}


def bakeoff(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120, cwd=cwd, stdin=subprocess.DEVNULL)


def recorded(stderr: str) -> tuple[str, str]:
    """The run id and UI URL the command printed on stderr."""
    m = RECORDED.search(stderr)
    assert m, f"no 'recorded in MLflow' line on stderr:\n{stderr}"
    return m.group(1), m.group(2)


def comparison(metrics: dict, key: str, lift, ci, relative, relative_ci, p, adjusted_p):
    """The metrics of one arm against the control, as the README lists them (missing numbers are not sent)."""
    for suffix, value in (("lift", lift), ("lift_ci_low", ci[0] if ci else None), ("lift_ci_high", ci[1] if ci else None),
                          ("relative_lift", relative), ("relative_lift_ci_low", relative_ci[0] if relative_ci else None),
                          ("relative_lift_ci_high", relative_ci[1] if relative_ci else None), ("p_value", p),
                          ("adjusted_p_value", adjusted_p)):
        if value is not None:
            metrics[f"{key}/{suffix}"] = value


def put(metrics: dict, key: str, value):
    if value is not None:
        metrics[key] = value


# --- analyze -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def events(work):
    path = work / "case-study.jsonl"
    r = bakeoff("simulate", "--preset", "seed-case-study", "--output", str(path))
    assert r.returncode == 0, r.stderr
    return path


@pytest.fixture(scope="module")
def analyzed(mlflow_server, events, work):
    """The case study analysed with --mlflow into the default experiment (the experiment's own name), read back."""
    r = bakeoff("analyze", str(events), "--split", "0.2", "--format", "json", "--mlflow", mlflow_server.uri)
    assert r.returncode == 0, r.stderr
    run_id, url = recorded(r.stderr)
    out = work / "analyze-artifacts"
    run = mlflow_server.read_run(run_id, out)
    return SimpleNamespace(result=r, report=json.loads(r.stdout), run_id=run_id, url=url, run=run, artifacts=out)


def test_analyze_records_a_finished_run_and_says_where(analyzed, mlflow_server):
    run, report = analyzed.run, analyzed.report
    assert run["status"] == "FINISHED"
    assert run["experiment_name"] == report["experiment"] == "support-bot-v2"
    assert analyzed.url == f"{mlflow_server.uri}/#/experiments/{run['experiment_id']}/runs/{analyzed.run_id}"
    assert run["run_name"] == f"support-bot-v2 to {report['period']['last'][:10]}"
    assert run["end_time"] >= run["start_time"]
    assert len(analyzed.result.stderr.strip().splitlines()) == 1, analyzed.result.stderr


def test_analyze_params_are_the_plan_and_the_data(analyzed, events):
    report = analyzed.report
    expected = {
        "experiment": "support-bot-v2", "input": str(events), "alpha": "0.05", "power": "0.8", "unit": "user",
        "method": "fixed", "correction": "holm", "control": "control", "primary_metric": "task_completion",
        "allocation": "treatment=0.2,control=0.8", "min_runtime_days": "7",
        "period_first": report["period"]["first"], "period_last": report["period"]["last"],
        "metrics": ",".join(dict.fromkeys([m["name"] for m in report["metrics"]] + [q["name"] for q in report["quantiles"]])),
    }
    for v in report["variants"]:
        expected[f"users/{v['name']}"] = str(v["users"])
        expected[f"requests/{v['name']}"] = str(v["requests"])
    assert analyzed.run["params"] == expected


def test_analyze_metrics_are_the_json_reports_numbers(analyzed):
    report = analyzed.report
    control = report["control"]
    expected: dict = {}
    for m in report["metrics"]:
        put(expected, f"{m['name']}/{control}/mean", m["control"]["mean"])
        put(expected, f"{m['name']}/{m['variant']}/mean", m["treatment"]["mean"])
        comparison(expected, f"{m['name']}/{m['variant']}", m["absolute_diff"], m["absolute_ci"], m["relative_lift"],
                   m["relative_ci"], m["p_value"], m["adjusted_p_value"])
    for q in report["quantiles"]:
        c, t = q["control"]["value"], q["treatment"]["value"]
        put(expected, f"{q['name']}/{control}/value", c)
        put(expected, f"{q['name']}/{q['variant']}/value", t)
        comparison(expected, f"{q['name']}/{q['variant']}", t - c if c is not None and t is not None else None,
                   q["absolute_ci"], q["relative_change"], q["relative_ci"], q["p_value"], q["adjusted_p_value"])
    put(expected, "srm/p_value", report["srm"]["p_value"])
    put(expected, "elapsed_days", report["plan"]["elapsed_days"])
    expected["events/requests"] = report["events"]["requests"]
    expected["events/feedback"] = report["events"]["feedback"]
    assert len(expected) > 100
    # Exact: the numbers go as the shortest decimal that reads back as the same double, as the JSON report's do.
    assert analyzed.run["metrics"] == expected


def test_analyze_tags_hold_the_decision(analyzed):
    tags, report = analyzed.run["tags"], analyzed.report
    decision = report["decision"]
    assert tags["bakeoff.decision"] == decision["action"] == "ship"
    assert tags["bakeoff.decision_variant"] == decision["treatment"] == "treatment"
    assert tags["bakeoff.decision_reason"] == decision["reason"]
    assert tags["bakeoff.decision/treatment"] == "ship"
    assert tags["bakeoff.decision_reason/treatment"] == decision["reason"]
    assert tags["bakeoff.srm"] == report["srm"]["status"]
    assert tags["bakeoff.command"] == "analyze" and tags["bakeoff.schema"] == "bakeoff.report/2"
    assert tags["mlflow.runName"] == analyzed.run["run_name"]
    assert tags["mlflow.source.name"] == "bakeoff analyze" and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.note.content"].startswith("**ship** treatment: ")
    assert "bakeoff.artifacts" not in tags


def test_analyze_artifacts_are_the_reports_as_printed(analyzed, events):
    assert analyzed.run["artifacts"] == ["report.html", "report.json"]
    assert (analyzed.artifacts / "report.json").read_text() == analyzed.result.stdout
    html = bakeoff("analyze", str(events), "--split", "0.2", "--format", "html")
    assert html.returncode == 0, html.stderr
    assert (analyzed.artifacts / "report.html").read_text() == html.stdout


# --- eval --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def evaluated(mlflow_server, module_procs, work):
    """60 requests, support-v1 against support-v2 on the mock, judged pairwise and by exact match, recorded into the
    MLflow experiment "offline evals"."""
    folder = work / "eval"
    folder.mkdir()
    mock = start_mock(module_procs, quality={"support-v1": 0.6, "support-v2": 0.8}, judge=True)
    dataset = mock_dataset(folder / "requests.jsonl", 60)
    section = {"judge": judge_section(mock.base_url), "scorers": [{"type": "judge_pairwise"}, {"type": "exact_match"}]}
    config = write_config(folder, [experiment(mock.base_url, eval_section=section)])
    r = run_eval(config, dataset, "--no-cache", "--format", "json", "--mlflow", mlflow_server.uri,
                 "--mlflow-experiment", "offline evals")
    assert r.returncode == 0, r.describe()
    run_id, url = recorded(r.stderr)
    out = work / "eval-artifacts"
    return SimpleNamespace(run=mlflow_server.read_run(run_id, out), report=r.json, stdout=r.stdout, dataset=dataset,
                           artifacts=out, url=url)


def test_eval_records_its_plan_and_each_variants_setup(evaluated):
    run, report = evaluated.run, evaluated.report
    assert run["status"] == "FINISHED" and run["experiment_name"] == "offline evals"
    assert run["run_name"] == "support-bot-v2 eval of requests.jsonl"
    assert run["params"] == {
        "experiment": "support-bot-v2", "dataset": str(evaluated.dataset), "control": "control",
        "variants": ",".join(report["variants"]), "requests": "60", "repetitions": "1", "alpha": "0.05", "power": "0.8",
        "primary_scorer": report["primary"], "scorers": "judge_pairwise,exact_match",
        "model/control": "support-v1", "model/treatment": "support-v2",
        "system_prompt/treatment": TREATMENT_PROMPT, "parameters/treatment": "temperature=0.3",
    }


def test_eval_metrics_are_the_json_reports_numbers(evaluated):
    report = evaluated.report
    control = report["control"]
    expected: dict = {}
    for c in report["scores"] + report["metrics"]:
        expected[f"{c['name']}/{control}/mean"] = c["control_mean"]
        expected[f"{c['name']}/{c['variant']}/mean"] = c["variant_mean"]
        comparison(expected, f"{c['name']}/{c['variant']}", c["difference"], [c["ci_low"], c["ci_high"]],
                   c["difference"] / abs(c["control_mean"]) if c["control_mean"] != 0 else None, None,
                   c["p_value"], c["adjusted_p_value"])
    for w in report["win_rates"]:
        k = f"{w['scorer']}/{w['variant']}"
        for suffix, value in (("win_rate", w["win_rate"]), ("win_rate_ci_low", w["ci_low"]), ("win_rate_ci_high", w["ci_high"]),
                              ("p_value", w["p_value"]), ("adjusted_p_value", w["adjusted_p_value"]), ("wins", w["wins"]),
                              ("ties", w["ties"]), ("losses", w["losses"])):
            put(expected, f"{k}/{suffix}", value)
    for c in report["calls"]:
        for field in ("answers", "failed", "cached", "retries", "mean_latency_ms", "p95_latency_ms", "mean_ttft_ms",
                      "mean_input_tokens", "mean_output_tokens", "mean_cost_usd"):
            put(expected, f"calls/{c['variant']}/{field}", c[field])
    put(expected, "decision/requests_needed", report["decision"]["requests_needed"])
    put(expected, "decision/live_users_per_group", report["decision"]["live_users_per_group"])
    assert evaluated.run["metrics"] == expected


def test_eval_tags_and_artifacts(evaluated):
    tags, decision = evaluated.run["tags"], evaluated.report["decision"]
    assert tags["bakeoff.decision"] == EVAL_DECISIONS[decision["action"]]
    assert tags["bakeoff.decision_variant"] == decision["variant"]
    assert tags["bakeoff.decision_reason"] == " ".join(decision["reasons"])
    assert tags["mlflow.source.name"] == "bakeoff eval" and tags["bakeoff.schema"] == "bakeoff.eval/1"
    assert evaluated.run["artifacts"] == ["report.html", "report.json"]
    assert (evaluated.artifacts / "report.json").read_text() == evaluated.stdout
    assert "<html" in (evaluated.artifacts / "report.html").read_text()


# --- failures ----------------------------------------------------------------------------------------------------

def test_analyze_with_mlflow_down_prints_the_report_and_exits_1(events):
    uri = f"http://127.0.0.1:{closed_port()}"
    r = bakeoff("analyze", str(events), "--split", "0.2", "--format", "json", "--mlflow", uri)
    assert r.returncode == 1
    assert json.loads(r.stdout)["decision"]["action"] == "ship"
    assert r.stderr.startswith(f"bakeoff: MLflow at {uri}: experiments/get-by-name: cannot reach the server"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_eval_with_mlflow_down_stops_before_any_call(procs, work):
    folder = work / "eval-down"
    folder.mkdir()
    mock = start_mock(procs, judge=True)
    dataset = mock_dataset(folder / "requests.jsonl", 5)
    config = write_config(folder, [experiment(mock.base_url, eval_section={"judge": judge_section(mock.base_url),
                                                                           "scorers": [{"type": "judge_pairwise"}]})])
    uri = f"http://127.0.0.1:{closed_port()}"
    r = run_eval(config, dataset, "--no-cache", "--mlflow", uri)
    assert r.returncode == 1, r.describe()
    assert r.stdout == ""
    assert f"MLflow at {uri}: experiments/get-by-name: cannot reach the server" in r.stderr
    assert "nothing was called" in r.stderr
    assert mock.count() == 0


def test_a_host_header_mlflow_refuses_is_explained(mlflow_server, events):
    # The server allows the Host 127.0.0.1:PORT only; localhost reaches it under another name.
    uri = f"http://localhost:{mlflow_server.port}"
    r = bakeoff("analyze", str(events), "--split", "0.2", "--mlflow", uri)
    assert r.returncode == 1
    assert "Task completion" in r.stdout
    assert f'refuses the Host header "localhost:{mlflow_server.port}"' in r.stderr, r.stderr
    assert f"--allowed-hosts localhost:{mlflow_server.port}" in r.stderr


def test_a_deleted_experiment_is_said_with_what_to_do(mlflow_server, events):
    experiment_id = mlflow_server.api("experiments/create", {"name": "retired"})["experiment_id"]
    mlflow_server.api("experiments/delete", {"experiment_id": experiment_id})
    r = bakeoff("analyze", str(events), "--split", "0.2", "--mlflow", mlflow_server.uri, "--mlflow-experiment", "retired")
    assert r.returncode == 1
    assert "Task completion" in r.stdout
    assert f'the experiment "retired" (id {experiment_id}) is deleted' in r.stderr, r.stderr
    assert f"mlflow experiments restore --experiment-id {experiment_id}" in r.stderr


def test_mlflows_own_error_code_and_message_are_said(mlflow_server, events):
    r = bakeoff("analyze", str(events), "--split", "0.2", "--mlflow", mlflow_server.uri, "--mlflow-experiment", "x" * 600)
    assert r.returncode == 1
    assert "Task completion" in r.stdout
    assert r.stderr.strip() == (f"bakeoff: MLflow at {mlflow_server.uri}: experiments/create failed with HTTP 400 "
                                "INVALID_PARAMETER_VALUE: 'name' exceeds the maximum length of 500 characters")


def test_a_url_that_is_not_http_is_a_usage_mistake(events):
    r = bakeoff("analyze", str(events), "--mlflow", "file:///tmp/mlruns")
    assert r.returncode == 2
    assert r.stdout == ""
    assert "http:// or https://" in r.stderr
