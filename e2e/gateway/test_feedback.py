"""Feedback: by request id and by conversation, its errors, and the stored events after a graceful stop."""
import json

import pytest

from conftest import split_experiment, start_gateway, start_mock, users_in

EXPERIMENT = "fb-exp"
MODEL = "fb-bot"
MESSAGES = [{"role": "user", "content": "help me"}]


@pytest.fixture
def gateway(procs, tmp_path):
    mock = start_mock(procs)
    return start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)])


def post_feedback(gateway, payload):
    status, _, body = gateway.post("/v1/feedback", payload)
    return status, json.loads(body) if body else None


def test_feedback_round_trip(gateway):
    client = gateway.client()
    u1 = users_in(EXPERIMENT, "treatment", 1, prefix="fb")[0]
    u2 = users_in(EXPERIMENT, "control", 1, prefix="fb")[0]

    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, user=u1)
    rid = raw.headers["x-bakeoff-request-id"]
    status, body = post_feedback(gateway, {"request_id": rid, "user": u1, "name": "task_completed", "value": True})
    assert status == 200, body
    assert body["status"] == "recorded"
    assert body["experiment"] == EXPERIMENT and body["variant"] == "treatment"
    assert body["conversation_id"] == rid  # a request without a conversation is its own

    conversation = "conv-feedback-test-1"
    ids = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, user=u2,
                                                               extra_headers={"X-Bakeoff-Conversation": conversation})
        ids.append(raw.headers["x-bakeoff-request-id"])
    status, body = post_feedback(gateway, {"conversation_id": conversation, "user": u2, "name": "csat", "value": 4})
    assert status == 200, body
    assert body["variant"] == "control" and body["conversation_id"] == conversation and body["value"] == 4

    # Errors.
    status, body = post_feedback(gateway, {"request_id": "req_000000000000000000000000", "user": u1, "name": "task_completed", "value": True})
    assert status == 404 and body["error"]["code"] == "request_not_found", body
    status, body = post_feedback(gateway, {"conversation_id": "conv-never-seen", "user": u1, "name": "csat", "value": 3})
    assert status == 404, body
    for bad in ({"request_id": rid, "name": "task_completed", "value": "yes"},
                {"request_id": rid, "name": "task_completed"},
                {"request_id": rid, "value": 1},
                {"request_id": rid, "name": "", "value": 1},
                {"name": "task_completed", "value": 1},
                {"request_id": 17, "name": "task_completed", "value": 1},
                # A yes/no metric's feedback must be yes or no: a 7 would stop the experiment's analysis.
                {"request_id": rid, "name": "task_completed", "value": 7},
                {"request_id": rid, "name": "csat", "value": 1e308},
                {"request_id": rid, "name": "odd\u2028name", "value": 1}):
        status, body = post_feedback(gateway, {"user": u1, **bad})
        assert status == 400, (bad, body)
        assert body["error"]["message"], body
    status, _, body = gateway.post("/v1/feedback", b"{not json")
    assert status == 400 and "error" in json.loads(body)

    assert gateway.stop() == 0, gateway.process.stderr
    events = gateway.export()
    requests = [e for e in events if e["event"] == "request"]
    feedback = [e for e in events if e["event"] == "feedback"]
    assert len(requests) == 3
    assert [e["conversation_id"] for e in requests if e["user_id"] == u2] == [conversation, conversation]
    assert len(feedback) == 2, feedback
    done, csat = sorted(feedback, key=lambda e: e["name"])[::-1]
    assert done["name"] == "task_completed" and done["value"] in (1, True)
    assert done["experiment"] == EXPERIMENT and done["user_id"] == u1
    assert done["request_id"] == rid and done["conversation_id"] == rid
    assert csat["name"] == "csat" and csat["value"] == 4
    assert csat["experiment"] == EXPERIMENT and csat["user_id"] == u2 and csat["conversation_id"] == conversation
    assert not csat.get("request_id"), csat  # feedback on a whole conversation


def test_feedback_after_restart_finds_the_stored_request(procs, tmp_path):
    """A request served by an earlier run is found in the store (not only in memory)."""
    mock = start_mock(procs)
    experiments = [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)]
    first = start_gateway(procs, tmp_path, experiments)
    raw = first.client().chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, user="restart-user", extra_headers={"X-Bakeoff-Conversation": "conv-restart"})
    rid = raw.headers["x-bakeoff-request-id"]
    assert first.stop() == 0
    second = start_gateway(procs, tmp_path, experiments)
    status, body = post_feedback(second, {"request_id": rid, "user": "restart-user", "name": "thumbs_up", "value": 1})
    assert status == 200, body
    status, body = post_feedback(second, {"conversation_id": "conv-restart", "user": "restart-user", "name": "csat", "value": 5})
    assert status == 200, body
    assert second.stop() == 0
    feedback = [e for e in second.export() if e["event"] == "feedback"]
    assert {(e["name"], e["user_id"], e["conversation_id"]) for e in feedback} == {
        ("thumbs_up", "restart-user", "conv-restart"), ("csat", "restart-user", "conv-restart")}


@pytest.mark.parametrize("body, where", [
    (b'{"name": "csat", "value": 4,', "at byte"),
    (b'{"name": "csat", "value": 1e400}', "at byte"),
    (b'{"name": "\xff"}', "at byte"),
    (b"[" * 100_000, "at byte"),
])
def test_invalid_feedback_json_says_where(gateway, body, where):
    """Invalid JSON in feedback names the cause and the byte, as the chat endpoints do (it was one generic line)."""
    status, reply = post_feedback(gateway, body)
    assert status == 400, reply
    assert reply["error"]["code"] == "invalid_feedback", reply
    assert "not valid JSON" in reply["error"]["message"] and where in reply["error"]["message"], reply
    assert gateway.get("/healthz")[0] == 200
