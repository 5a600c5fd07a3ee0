"""The live report (admin only) and `analyze --db` against the exported log."""
import json

import pytest

from conftest import ADMIN_KEY, run_bakeoff, split_experiment, start_gateway, start_mock, users_in

EXPERIMENT = "report-exp"
MODEL = "report-bot"
PER_VARIANT = 30


def test_live_report_and_offline_analysis(procs, tmp_path):
    mock = start_mock(procs)
    gateway = start_gateway(procs, tmp_path, [split_experiment(
        EXPERIMENT, MODEL, mock.base_url, mock.base_url, split=0.5,
        analysis={"metrics": [{"name": "csat", "role": "guardrail"}]})])
    client = gateway.client()
    users = {v: users_in(EXPERIMENT, v, PER_VARIANT, prefix="rep") for v in ("control", "treatment")}
    for variant, names in users.items():
        for i, user in enumerate(names):
            for turn in range(2):
                raw = client.chat.completions.with_raw_response.create(
                    model=MODEL, user=user, messages=[{"role": "user", "content": f"question {turn}"}],
                    extra_headers={"X-Bakeoff-Conversation": f"conv-{user}"})
                assert raw.headers["x-bakeoff-variant"] == variant
            status, _, body = gateway.post("/v1/feedback", {"request_id": raw.headers["x-bakeoff-request-id"], "user": user,
                                                            "name": "task_completed", "value": (i % 3 != 0)})
            assert status == 200, body
            status, _, body = gateway.post("/v1/feedback", {"conversation_id": f"conv-{user}", "user": user, "name": "csat", "value": 3 + i % 3})
            assert status == 200, body
    # One QA request, to see it excluded.
    client.chat.completions.create(model=MODEL, user="qa-user", messages=[{"role": "user", "content": "qa"}],
                                   extra_headers={"X-Bakeoff-Force-Variant": "treatment", "X-Bakeoff-Admin-Key": ADMIN_KEY})

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    status, headers, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/report?format=json", headers=admin)
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    report = json.loads(body)
    assert report["experiment"] == EXPERIMENT
    assert report["control"] == "control"
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["control"]["users"] == PER_VARIANT and by_name["treatment"]["users"] == PER_VARIANT, report["variants"]
    assert by_name["control"]["requests"] == 2 * PER_VARIANT and by_name["treatment"]["requests"] == 2 * PER_VARIANT
    assert report["data_quality"]["qa_requests_excluded"] == 1
    assert any(m["name"] == "csat" for m in report["metrics"]), [m["name"] for m in report["metrics"]]

    # Default format is JSON; the admin key also works in X-Bakeoff-Admin-Key.
    status, _, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/report", headers={"X-Bakeoff-Admin-Key": ADMIN_KEY})
    assert status == 200 and json.loads(body)["experiment"] == EXPERIMENT

    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Basic {ADMIN_KEY}"}):
        status, _, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/report?format=json", headers=headers)
        assert status == 401, (headers, body)
        assert json.loads(body)["error"]["message"]

    status, headers, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/report?format=markdown", headers=admin)
    assert status == 200, body
    assert headers["content-type"].startswith("text/markdown")
    assert EXPERIMENT in body.decode() and "|" in body.decode()

    # The time series: admin only; its last point is the report as of the end of today, the live report's numbers.
    for headers in ({}, {"Authorization": "Bearer wrong-key"}):
        status, _, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/timeseries", headers=headers)
        assert status == 401, (headers, body)
        assert b"metrics" not in body
    status, headers, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/timeseries", headers=admin)
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    series = json.loads(body)
    assert series["schema"] == "bakeoff.timeseries/1" and series["experiment"] == EXPERIMENT
    last = series["points"][-1]
    assert {v["name"]: v["users"] for v in last["variants"]} == {"control": PER_VARIANT, "treatment": PER_VARIANT}
    live = {(m["name"], m["variant"]): m for m in report["metrics"]}
    for m in last["metrics"]:
        assert m["p_value"] == live[(m["name"], m["variant"])]["p_value"], m["name"]
    status, _, body = gateway.get("/v1/experiments/no-such-exp/timeseries", headers=admin)
    assert status == 404, body

    status, _, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/report?format=pdf", headers=admin)
    assert status == 400, body
    status, _, body = gateway.get("/v1/experiments/no-such-exp/report?format=json", headers=admin)
    assert status == 404, body

    assert gateway.stop() == 0, gateway.process.stderr
    export = tmp_path / "export.jsonl"
    export.write_text(run_bakeoff("export", "--db", str(gateway.store), "--include-qa").stdout)
    from_store = run_bakeoff("analyze", "--db", str(gateway.store), "--format", "json").stdout
    from_log = run_bakeoff("analyze", str(export), "--format", "json").stdout
    assert json.loads(from_store)["experiment"] == EXPERIMENT
    assert from_store == from_log


def test_live_report_is_sequential_and_shows_plan_changes_after_the_start(procs, tmp_path):
    """The live report defaults to auto, which without a horizon is the sequential method; a plan changed after
    traffic began is listed."""
    mock = start_mock(procs)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def experiments(analysis):
        return [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, split=0.5, analysis=analysis)]

    first = start_gateway(procs, tmp_path, experiments({"alpha": 0.05, "min_runtime_days": 0}))
    client = first.client()
    for variant in ("control", "treatment"):
        for user in users_in(EXPERIMENT, variant, 5, prefix="plan"):
            client.chat.completions.create(model=MODEL, user=user, messages=[{"role": "user", "content": "hi"}])
    status, _, body = first.get(f"/v1/experiments/{EXPERIMENT}/report?format=json", headers=admin)
    assert status == 200, body
    report = json.loads(body)
    assert report["schema"] == "bakeoff.report/2"
    assert report["plan"]["method"] == "sequential" and report["plan"]["method_requested"] == "auto"
    assert "no horizon" in report["plan"]["method_reason"]
    assert report["plan"]["changes"] == []
    assert first.stop() == 0

    # Same store, a changed plan: the second start records it, and the report lists the change.
    second = start_gateway(procs, tmp_path, experiments({"alpha": 0.1, "min_runtime_days": 0, "method": "fixed"}))
    status, _, body = second.get(f"/v1/experiments/{EXPERIMENT}/report?format=json", headers=admin)
    assert status == 200, body
    report = json.loads(body)
    assert report["plan"]["method"] == "fixed"
    changes = [c for entry in report["plan"]["changes"] for c in entry["changes"]]
    assert "alpha: 0.05 → 0.1" in changes, changes
    assert "method: auto → fixed" in changes, changes
    status, _, body = second.get(f"/v1/experiments/{EXPERIMENT}/report?format=table", headers=admin)
    assert "Plan changes after the start" in body.decode() and "alpha: 0.05 → 0.1" in body.decode()
    # A restart with the same plan records nothing new.
    assert second.stop() == 0
    third = start_gateway(procs, tmp_path, experiments({"alpha": 0.1, "min_runtime_days": 0, "method": "fixed"}))
    status, _, body = third.get(f"/v1/experiments/{EXPERIMENT}/report?format=json", headers=admin)
    assert len(json.loads(body)["plan"]["changes"]) == 1
    assert third.stop() == 0
    offline = json.loads(run_bakeoff("analyze", "--db", str(third.store), "--format", "json").stdout)
    assert [c for entry in offline["plan"]["changes"] for c in entry["changes"]] == changes


def test_live_report_is_group_sequential_with_a_horizon_and_each_read_is_a_recorded_look(procs, tmp_path):
    """The live default (auto) with a horizon: a group-sequential report that says why; reading it records a look
    in the store (at most one per ten minutes), and a plan with recorded looks analyses with them."""
    import sqlite3
    mock = start_mock(procs)
    gateway = start_gateway(procs, tmp_path, [split_experiment(
        EXPERIMENT, MODEL, mock.base_url, mock.base_url, split=0.5,
        analysis={"max_runtime_days": 14, "group_sequential": {"spending": "pocock", "looks": "recorded"}})])
    client = gateway.client()
    for variant in ("control", "treatment"):
        for user in users_in(EXPERIMENT, variant, 10, prefix="gs"):
            raw = client.chat.completions.with_raw_response.create(model=MODEL, user=user, messages=[{"role": "user", "content": "hi"}])
            gateway.post("/v1/feedback", {"request_id": raw.headers["x-bakeoff-request-id"], "user": user,
                                          "name": "task_completed", "value": True})
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for _ in range(3):
        status, _, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/report?format=json", headers=admin)
        assert status == 200, body
    report = json.loads(body)
    plan = report["plan"]
    assert plan["method"] == "group-sequential" and plan["method_requested"] == "auto", plan
    assert "14 planned days" in plan["method_reason"], plan["method_reason"]
    gs = plan["group_sequential"]
    assert gs["spending"] == "pocock" and gs["planned_days"] == 14 and gs["looks"].endswith("recorded"), gs
    assert gs["history"] and gs["history"][-1]["boundary_z"] > 2, gs
    # Three reads within ten minutes: one look kept.
    with sqlite3.connect(gateway.store) as db:
        looks = db.execute("SELECT experiment, source FROM looks").fetchall()
    assert looks == [(EXPERIMENT, "report")], looks
    assert sqlite3.connect(gateway.store).execute("PRAGMA user_version").fetchone()[0] == 5
    # The text report says the method and where the test stands.
    status, _, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/report?format=table", headers=admin)
    text = body.decode()
    assert "Method auto: the plan has a horizon (14 planned days)" in text, text[:1500]
    assert "Pocock-type" in text and "of the horizon" in text
