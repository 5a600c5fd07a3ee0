"""Issue 9: feedback no client can break or bias, and what a hostile client tries against the gateway.

Each test is a regression test for one finding of the issue (numbered as there); each failed on the gateway
before the fix."""
from __future__ import annotations

import http.server
import json
import threading

import pytest

from conftest import (ADMIN_KEY, BIN, expected_variant, run_bakeoff, split_experiment, start_gateway,
                      start_mock, users_in, metric_value)

EXPERIMENT = "hostile-exp"
MODEL = "hostile-bot"
MESSAGES = [{"role": "user", "content": "hello"}]


def post(gateway, payload, headers=None):
    status, hdrs, body = gateway.post("/v1/feedback", payload, headers=headers)
    return status, (json.loads(body) if body else None)


def chat(gateway, user=None, conversation=None, body_extra=None, headers=None):
    payload = {"model": MODEL, "messages": MESSAGES, **(body_extra or {})}
    if user is not None:
        payload["user"] = user
    hdrs = dict(headers or {})
    if conversation:
        hdrs["X-Bakeoff-Conversation"] = conversation
    status, h, body = gateway.post("/v1/chat/completions", payload, headers=hdrs)
    return status, h, json.loads(body)


def report(gateway, fmt="json"):
    status, _, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/report?format={fmt}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    return status, body.decode()


@pytest.fixture
def gw(procs, tmp_path):
    mock = start_mock(procs)
    return start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)])


# 1. Nothing accepted can break an analysis.

def test_per_request_feedback_on_a_conversation_is_refused_and_the_report_survives(gw):
    status, h, _ = chat(gw, user="alice", conversation="conv-alice")
    assert status == 200
    status, body = post(gw, {"conversation_id": "conv-alice", "user": "alice", "name": "thumbs_up", "value": True})
    assert status == 400 and "request_id" in body["error"]["message"], body
    status, body = post(gw, {"request_id": h["x-bakeoff-request-id"], "user": "alice", "name": "thumbs_up", "value": True})
    assert status == 200, body
    status, text = report(gw)
    assert status == 200, text


def test_stored_values_the_plan_cannot_use_are_counted_not_fatal(procs, tmp_path):
    """A custom name stored as a number, then made a yes/no metric by a new plan; and a per-request name
    stored without its request (as an older gateway or an import could leave it)."""
    mock = start_mock(procs)
    experiment = split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)
    first = start_gateway(procs, tmp_path, [experiment])
    for user in ("u1", "u2", "u3", "u4"):
        status, h, _ = chat(first, user=user, conversation=f"c-{user}")
        status, body = post(first, {"conversation_id": f"c-{user}", "user": user, "name": "resolved", "value": 7})
        assert status == 200, body
        status, body = post(first, {"conversation_id": f"c-{user}", "user": user, "name": "task_completed", "value": 1})
        assert status == 200, body
    assert first.stop() == 0
    # An old-style event: thumbs_up (per request) on a conversation only.
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"event": "feedback", "ts": "2026-12-01T00:00:00Z", "experiment": EXPERIMENT, "user_id": "u1",
                               "conversation_id": "c-u1", "name": "thumbs_up", "value": 1}) + "\n")
    run_bakeoff("import", "--db", str(first.store), str(old))
    experiment["analysis"] = {"metrics": [{"name": "resolution", "feedback": "resolved", "kind": "proportion"}]}
    second = start_gateway(procs, tmp_path, [experiment])
    status, text = report(second)
    assert status == 200, text
    quality = json.loads(text)["data_quality"]["unusable_feedback"]
    reasons = {(u["name"], u["count"]) for u in quality}
    assert ("resolved", 4) in reasons and ("thumbs_up", 1) in reasons, quality
    assert any("resolved = 7" in u["example"] for u in quality), quality
    status, table = report(second, "table")
    assert status == 200 and "feedback left out, resolved value not true, false, 0 or 1: 4" in table, table
    r = run_bakeoff("analyze", "--db", str(second.store), "--format", "json")
    assert json.loads(r.stdout)["data_quality"]["unusable_feedback"], r.stdout


# 2. Feedback comes from the user it is about.

def test_another_users_feedback_is_refused_and_moves_nothing(gw):
    victim, attacker = "victim-user", "attacker-user"
    status, h, _ = chat(gw, user=victim, conversation="conv-victim")
    rid = h["x-bakeoff-request-id"]
    assert post(gw, {"request_id": rid, "user": victim, "name": "task_completed", "value": True})[0] == 200
    for payload, headers in (({"request_id": rid, "user": attacker}, None),
                             ({"conversation_id": "conv-victim", "user": attacker}, None),
                             ({"request_id": rid}, {"X-Bakeoff-User": attacker}),
                             ({"request_id": rid}, None)):
        status, body = post(gw, {**payload, "name": "task_completed", "value": False}, headers=headers)
        assert status == 403, (payload, body)
        assert "variant" not in json.dumps(body), body
        assert "user" in body["error"]["message"], body
    # The header names the user as well as the body does.
    assert post(gw, {"request_id": rid, "name": "csat", "value": 5}, headers={"X-Bakeoff-User": victim})[0] == 200
    feedback = [e for e in gw.export() if e["event"] == "feedback"]
    assert [(e["name"], e["value"]) for e in feedback] == [("task_completed", 1), ("csat", 5)], feedback


def test_feedback_token_stands_in_for_the_user(gw):
    status, h, _ = chat(gw, user="browser-user", conversation="conv-browser")
    rid, token = h["x-bakeoff-request-id"], h["x-bakeoff-feedback-token"]
    assert post(gw, {"request_id": rid, "feedback_token": token, "name": "thumbs_up", "value": 1})[0] == 200
    assert post(gw, {"conversation_id": "conv-browser", "name": "csat", "value": 4}, headers={"X-Bakeoff-Feedback-Token": token})[0] == 200
    # A token is bound to its request: not another user's, not altered.
    status, h2, _ = chat(gw, user="someone-else")
    status, body = post(gw, {"request_id": h2["x-bakeoff-request-id"], "feedback_token": token, "name": "thumbs_up", "value": 0})
    assert status == 403 and body["error"]["code"] == "feedback_token_mismatch", body
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    status, body = post(gw, {"request_id": rid, "feedback_token": forged, "name": "thumbs_up", "value": 0})
    assert status == 403 and body["error"]["code"] == "invalid_feedback_token", body
    stored = [e for e in gw.export() if e["event"] == "feedback"]
    assert all(e["user_id"] == "browser-user" for e in stored) and len(stored) == 2


def test_a_conversation_belongs_to_its_first_user(gw):
    assert chat(gw, user="owner", conversation="conv-shared")[0] == 200
    status, _, body = chat(gw, user="intruder", conversation="conv-shared")
    assert status == 409 and body["error"]["code"] == "conversation_of_another_user", body
    assert chat(gw, user="owner", conversation="conv-shared")[0] == 200
    assert gw.stop() == 0
    requests = [e for e in gw.export() if e["event"] == "request"]
    assert [e["user_id"] for e in requests] == ["owner", "owner"]


def test_blind_experiment_hides_the_variant(procs, tmp_path):
    mock = start_mock(procs)
    gw = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, expose_variant=False)])
    status, h, _ = chat(gw, user="blind-user")
    assert status == 200 and "x-bakeoff-variant" not in h and "x-bakeoff-request-id" in h
    status, body = post(gw, {"request_id": h["x-bakeoff-request-id"], "user": "blind-user", "name": "task_completed", "value": 1})
    assert status == 200 and "variant" not in body, body
    status, _, body = gw.get(f"/v1/assignments?experiment={EXPERIMENT}&user=blind-user")
    assert status == 403, body
    status, _, body = gw.get(f"/v1/assignments?experiment={EXPERIMENT}&user=blind-user", headers={"X-Bakeoff-Admin-Key": ADMIN_KEY})
    assert status == 200 and json.loads(body)["variant"] == expected_variant(EXPERIMENT, "blind-user", 0.5)


def test_client_keys_guard_the_proxy_and_feedback(procs, tmp_path):
    mock = start_mock(procs)
    key = "client-key-0123456789abcdef"
    gw = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)],
                       env={"BAKEOFF_CLIENT_KEYS": f"other-key-0123456789abcdef, {key}"}, client_keys_env="BAKEOFF_CLIENT_KEYS")
    status, _, body = chat(gw, user="k-user")
    assert status == 401 and body["error"]["code"] == "invalid_api_key", body
    status, _, body = chat(gw, user="k-user", headers={"Authorization": "Bearer wrong-key-0123456789"})
    assert status == 401, body
    reply = gw.client(api_key=key).chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, user="k-user")
    rid, token = reply.headers["x-bakeoff-request-id"], reply.headers["x-bakeoff-feedback-token"]
    assert post(gw, {"request_id": rid, "user": "k-user", "name": "csat", "value": 3})[0] == 401
    assert post(gw, {"request_id": rid, "user": "k-user", "name": "csat", "value": 3}, headers={"Authorization": f"Bearer {key}"})[0] == 200
    for path in ("/v1/models", f"/v1/assignments?experiment={EXPERIMENT}&user=k-user"):
        assert gw.get(path)[0] == 401
        assert gw.get(path, headers={"Authorization": f"Bearer {key}"})[0] == 200
    # A made-up token does not stand in for the key, and tells nothing about which targets exist.
    for target in ({"request_id": rid}, {"request_id": "req_000000000000000000000000"}, {"conversation_id": "no-such"}):
        status, body = post(gw, {**target, "feedback_token": "bk1.9999999999.cmVxXzE.AAAA", "name": "csat", "value": 3})
        assert status == 401, (target, body)
    # A browser holds the token, not a key.
    assert post(gw, {"request_id": rid, "feedback_token": token, "name": "thumbs_up", "value": 1})[0] == 200


# 3. Values on their metric's scale.

def test_csat_and_numeric_values_stay_within_their_bounds(procs, tmp_path):
    mock = start_mock(procs)
    gw = start_gateway(procs, tmp_path, [split_experiment(
        EXPERIMENT, MODEL, mock.base_url, mock.base_url,
        analysis={"metrics": [{"name": "nps", "feedback": "nps", "kind": "mean", "scale": [0, 10]},
                              {"name": "minutes_saved", "feedback": "minutes_saved", "kind": "mean", "min": 0, "max": 120}]})])
    status, h, _ = chat(gw, user="scale-user", conversation="conv-scale")
    for value in (1e12, -1e12, 99, 0, 6, 4.5, "4", True):
        status, body = post(gw, {"conversation_id": "conv-scale", "user": "scale-user", "name": "csat", "value": value})
        assert status == 400, (value, body)
    for name, value in (("nps", 11), ("nps", 7.5), ("minutes_saved", -1), ("minutes_saved", 121), ("custom", 1e13)):
        status, body = post(gw, {"conversation_id": "conv-scale", "user": "scale-user", "name": name, "value": value})
        assert status == 400, (name, value, body)
    for name, value in (("csat", 5), ("nps", 10), ("minutes_saved", 2.5), ("custom", -3)):
        status, body = post(gw, {"conversation_id": "conv-scale", "user": "scale-user", "name": name, "value": value})
        assert status == 200, (name, value, body)
    status, text = report(gw)
    assert status == 200, text
    assert gw.stop() == 0
    stored = sorted((e["name"], e["value"]) for e in gw.export() if e["event"] == "feedback")
    assert stored == [("csat", 5), ("custom", -3), ("minutes_saved", 2.5), ("nps", 10)], stored


def test_feedback_names_are_identifiers_and_markdown_reports_escape_names(gw, tmp_path):
    status, h, _ = chat(gw, user="md-user")
    rid = h["x-bakeoff-request-id"]
    for name in ("[x](https://evil.example)", "a" * 65, "with space", "é"):
        status, body = post(gw, {"request_id": rid, "user": "md-user", "name": name, "value": 1})
        assert status == 400, (name, body)
    assert post(gw, {"request_id": rid, "user": "md-user", "name": "ok_name-1.v2", "value": 1})[0] == 200
    # A log from elsewhere may hold any name: the Markdown report shows it as code, never as a link.
    log = tmp_path / "evil.jsonl"
    lines = [{"event": "request", "ts": "2026-12-01T00:00:00Z", "experiment": "e", "variant": v, "user_id": f"u{i}",
              "request_id": f"r{i}", "latency_ms": 100} for i, v in enumerate(["control", "treatment"] * 3)]
    lines.append({"event": "feedback", "ts": "2026-12-01T00:01:00Z", "experiment": "e", "user_id": "u0", "request_id": "r0",
                  "name": "[x](https://evil.example)", "value": 1})
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    md = run_bakeoff("analyze", str(log), "--format", "markdown").stdout
    assert "[x](https://evil.example)" in md and "`[x](https://evil.example)`" in md, md


# 7. Absurd upstream usage.

class AbsurdUpstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    usages = [{"prompt_tokens": 9000000000000000000, "completion_tokens": 9000000000000000000},
              {"prompt_tokens": 9000000000000000000, "completion_tokens": 1},
              {"prompt_tokens": -5, "completion_tokens": -7},
              {"prompt_tokens": 3, "completion_tokens": 4}]
    served = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        usage = self.usages[AbsurdUpstream.served % len(self.usages)]
        AbsurdUpstream.served += 1
        body = json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                           "usage": usage}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_absurd_upstream_usage_is_ignored_and_counted(procs, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AbsurdUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        gw = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, url, url)])
        for i in range(4):
            status, _, body = chat(gw, user=f"usage-{i}")
            assert status == 200, body
        status, _, _ = gw.get("/healthz")
        assert status == 200 and gw.process.alive()
        text = gw.metrics()
        assert metric_value(text, "bakeoff_upstream_usage_ignored_total") == 3, text
        for line in text.splitlines():
            if line.startswith(("bakeoff_input_tokens_total{", "bakeoff_output_tokens_total{")):
                assert float(line.rsplit(" ", 1)[1]) >= 0, line
        inputs = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("bakeoff_input_tokens_total{")]
        assert sum(inputs) == 3, text
        assert gw.stop() == 0
        events = [e for e in gw.export() if e["event"] == "request"]
        assert len(events) == 4
        assert sorted(e.get("input_tokens", -1) for e in events) == [-1, -1, -1, 3], events
    finally:
        server.shutdown()


# 8. safety_identifier, as LiteLLM's SDK sends it.

def test_safety_identifier_is_the_user_and_user_wins(gw):
    user = users_in(EXPERIMENT, "treatment", 1, prefix="safe")[0]
    status, h, body = chat(gw, body_extra={"safety_identifier": user})
    assert status == 200, body
    assert h["x-bakeoff-variant"] == "treatment"
    other = users_in(EXPERIMENT, "control", 1, prefix="safe")[0]
    status, h, _ = chat(gw, user=other, body_extra={"safety_identifier": user})
    assert h["x-bakeoff-variant"] == "control"
    status, h, _ = chat(gw, body_extra={"safety_identifier": user}, headers={"X-Bakeoff-User": other})
    assert h["x-bakeoff-variant"] == "treatment"
    assert gw.stop() == 0
    stored = [e["user_id"] for e in gw.export() if e["event"] == "request"]
    assert stored == [user, other, user]


# 9. Short secrets, the feedback cap.

def test_short_admin_key_is_refused_at_start(tmp_path):
    import subprocess, os
    config = tmp_path / "g.json"
    config.write_text(json.dumps({"experiments": [split_experiment("e", "m", "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")]}))
    env = dict(os.environ, BAKEOFF_ADMIN_KEY="x")
    r = subprocess.run([BIN, "serve", "--check", "--config", str(config)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "admin_key_env" in r.stderr and "at least 16" in r.stderr, r.stderr


def test_feedback_per_target_and_name_is_capped(procs, tmp_path):
    mock = start_mock(procs)
    gw = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)], feedback_limit=5)
    status, h, _ = chat(gw, user="cap-user")
    rid = h["x-bakeoff-request-id"]
    answers = [post(gw, {"request_id": rid, "user": "cap-user", "name": "thumbs_up", "value": i % 2})[0] for i in range(8)]
    assert answers == [200] * 5 + [429] * 3, answers
    # Names no metric reads share one allowance: new names do not add rows without end.
    fresh = [post(gw, {"request_id": rid, "user": "cap-user", "name": f"n{i}", "value": 1})[0] for i in range(8)]
    assert fresh == [200] * 5 + [429] * 3, fresh
    assert post(gw, {"request_id": rid, "user": "cap-user", "name": "csat", "value": 4})[0] == 200
    assert gw.stop() == 0
    assert len([e for e in gw.export() if e["event"] == "feedback"]) == 11
    # The cap holds across a restart: the count comes from the store.
    again = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)], feedback_limit=5)
    assert post(again, {"request_id": rid, "user": "cap-user", "name": "thumbs_up", "value": 1})[0] == 429
    assert post(again, {"request_id": rid, "user": "cap-user", "name": "csat", "value": 5})[0] == 200


def test_anonymous_requests_take_feedback_by_their_request_id(procs, tmp_path):
    mock = start_mock(procs)
    gw = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, per_request_assignment=True)])
    status, h, _ = chat(gw)
    assert status == 200
    assert post(gw, {"request_id": h["x-bakeoff-request-id"], "name": "thumbs_up", "value": 1})[0] == 200
    assert post(gw, {"request_id": h["x-bakeoff-request-id"], "user": "someone", "name": "csat", "value": 4})[0] == 200


def test_an_anonymous_request_cannot_take_over_a_users_conversation(procs, tmp_path):
    """Review finding: with per-request assignment, a request without a user naming alice's conversation took
    it over (alice then got 409 on her own conversation, and 403 on its feedback)."""
    mock = start_mock(procs)
    gw = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, per_request_assignment=True)])
    assert chat(gw, user="alice", conversation="c-alice")[0] == 200
    status, _, body = chat(gw, conversation="c-alice")
    assert status == 409, body
    assert chat(gw, user="alice", conversation="c-alice")[0] == 200
    assert post(gw, {"conversation_id": "c-alice", "user": "alice", "name": "task_completed", "value": 1})[0] == 200
    # Nor can a user join an anonymous conversation.
    assert chat(gw, conversation="c-anon")[0] == 200
    assert chat(gw, user="bob", conversation="c-anon")[0] == 409


def test_declared_bodies_hold_no_budget(procs, tmp_path):
    """Review finding: bodies were charged to the memory budget on their declared length, so a few idle
    connections declaring large bodies got every other request 503."""
    import socket, time
    mock = start_mock(procs)
    gw = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)],
                       memory_budget_bytes=2 << 20, max_body_bytes=2 << 20)
    port = int(gw.root.rsplit(":", 1)[1])
    idle = []
    try:
        for declared in (1 << 20, (1 << 20) - 16):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{" % declared)
            idle.append(s)
        time.sleep(0.5)
        for i in range(5):
            status, _, body = chat(gw, user=f"budget-{i}")
            assert status == 200, body
    finally:
        for s in idle:
            s.close()


def test_conflicting_content_lengths_are_refused(gw):
    import socket
    port = int(gw.root.rsplit(":", 1)[1])
    # (libmicrohttpd answers -1 and 2^64 itself, before the gateway sees the request: 400 and 413.)
    for lengths, status in (((b"5", b"6"), b"400"), ((b"-1",), b"400"), ((b"18446744073709551616",), b"413")):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            head = b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\n" + b"".join(b"Content-Length: " + v + b"\r\n" for v in lengths) + b"\r\n{}"
            s.sendall(head)
            reply = s.recv(65536)
            assert reply.startswith(b"HTTP/1.1 " + status), (lengths, reply)
            if len(lengths) > 1:
                assert b"several Content-Length headers" in reply, reply


def test_a_store_deleted_while_serving_is_reported_not_silently_written(procs, tmp_path):
    """Review finding: removing the store's files while the gateway ran left /healthz at 200 and feedback
    answered 200 that no file held afterwards."""
    import os, time
    mock = start_mock(procs)
    gw = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)])
    status, h, _ = chat(gw, user="del-user")
    assert post(gw, {"request_id": h["x-bakeoff-request-id"], "user": "del-user", "name": "csat", "value": 4})[0] == 200
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(str(gw.store) + suffix)
        except FileNotFoundError:
            pass
    status, h, _ = chat(gw, user="del-user")
    assert status == 200
    status, body = post(gw, {"request_id": h["x-bakeoff-request-id"], "user": "del-user", "name": "csat", "value": 5})
    assert status == 503 and body["error"]["code"] == "store_unavailable", body
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and gw.get("/healthz")[0] != 503:
        time.sleep(0.1)
    status, _, body = gw.get("/healthz")
    assert status == 503 and b"deleted" in body, body
    assert "deleted, moved or replaced" in gw.process.stderr


def test_an_imported_negative_latency_does_not_stop_the_report(procs, tmp_path):
    """Review finding: one imported request with "latency_ms": -5 made analyze --db exit 1 and the live
    report answer 409 for the whole store."""
    mock = start_mock(procs)
    experiment = split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)
    gw = start_gateway(procs, tmp_path, [experiment])
    for i in range(4):
        assert chat(gw, user=f"neg-{i}")[0] == 200
    assert gw.stop() == 0
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"event": "request", "ts": "2026-12-01T00:00:00Z", "experiment": EXPERIMENT, "variant": "control",
                               "user_id": "neg-x", "request_id": "r-neg", "latency_ms": -5, "ttft_ms": -1, "output_tokens": -3}) + "\n")
    run_bakeoff("import", "--db", str(gw.store), str(odd))
    r = run_bakeoff("analyze", "--db", str(gw.store), "--format", "json")
    assert json.loads(r.stdout)["data_quality"]["implausible_request_values"] == 1
    again = start_gateway(procs, tmp_path, [experiment])
    status, text = report(again)
    assert status == 200, text


def test_metrics_reading_names_the_gateway_refuses_are_config_errors(tmp_path):
    import subprocess
    config = tmp_path / "g.json"
    config.write_text(json.dumps({"experiments": [split_experiment("e", "m", "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1",
                                                                  analysis={"metrics": [{"name": "x", "feedback": "a b"}]})]}))
    r = subprocess.run([BIN, "serve", "--check", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "experiments[0].analysis.metrics" in r.stderr and "a b" in r.stderr, r.stderr


def test_upstream_failures_are_logged_once_per_upstream_and_interval(procs, tmp_path):
    """An upstream that is down fails every request: the gateway says so on stderr (it used to say nothing),
    one line per upstream every 10 s, with the count of those held back."""
    from conftest import closed_port
    url = f"http://127.0.0.1:{closed_port()}/v1"
    gw = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, url, url)])
    for i in range(5):
        status, _, body = chat(gw, user=f"down-{i}")
        assert status == 502, body
    lines = [line for line in gw.process.lines if "upstream " in line and "failed: unreachable" in line]
    assert len(lines) == 1 and url in lines[0] and EXPERIMENT in lines[0], gw.process.stderr
