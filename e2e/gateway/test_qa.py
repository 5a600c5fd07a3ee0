"""QA: an admin forces a variant with X-Bakeoff-Force-Variant; such events are marked qa and left out of a
plain export."""
import json

import openai
import pytest

from conftest import ADMIN_KEY, split_experiment, start_gateway, start_mock, users_in

EXPERIMENT = "qa-exp"
MODEL = "qa-bot"
MESSAGES = [{"role": "user", "content": "test"}]


def test_force_variant(procs, tmp_path):
    control = start_mock(procs, reply_prefix="[control] ")
    treatment = start_mock(procs, reply_prefix="[treatment] ")
    gateway = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, control.base_url, treatment.base_url)])
    users = users_in(EXPERIMENT, "control", 4, prefix="qa")
    client = gateway.client()
    admin_client = gateway.client(api_key=ADMIN_KEY)  # the admin key as the bearer token
    force = {"X-Bakeoff-Force-Variant": "treatment"}

    forced_ids = []
    for i, user in enumerate(users):
        if i % 2:
            raw = admin_client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, user=user, extra_headers=force)
        else:
            raw = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=MESSAGES, user=user, extra_headers={**force, "X-Bakeoff-Admin-Key": ADMIN_KEY})
        assert raw.headers["x-bakeoff-variant"] == "treatment"
        assert raw.parse().choices[0].message.content.startswith("[treatment] ")
        forced_ids.append(raw.headers["x-bakeoff-request-id"])
    # Streams too.
    stream = admin_client.chat.completions.create(model=MODEL, messages=MESSAGES, user=users[0], extra_headers=force, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).startswith("[treatment] ")

    # Feedback on a QA request is QA too.
    status, _, body = gateway.post("/v1/feedback", {"request_id": forced_ids[0], "user": users[0], "name": "task_completed", "value": 1})
    assert status == 200, body

    # Without the key, or with a wrong one: 401, and nothing is forwarded.
    with pytest.raises(openai.AuthenticationError) as e:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, user=users[0], extra_headers=force)
    assert e.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, user=users[0],
                                       extra_headers={**force, "X-Bakeoff-Admin-Key": "not-the-key"})
    # An unknown variant is a bad request.
    with pytest.raises(openai.BadRequestError):
        admin_client.chat.completions.create(model=MODEL, messages=MESSAGES, user=users[0],
                                             extra_headers={"X-Bakeoff-Force-Variant": "nope"})

    # The user's own assignment is unchanged.
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, user=users[0])
    assert raw.headers["x-bakeoff-variant"] == "control"
    normal_id = raw.headers["x-bakeoff-request-id"]

    assert gateway.stop() == 0, gateway.process.stderr
    plain = gateway.export()
    assert [e["request_id"] for e in plain if e["event"] == "request"] == [normal_id]
    assert not any(e.get("qa") for e in plain)
    assert not [e for e in plain if e["event"] == "feedback"]
    everything = gateway.export(include_qa=True)
    qa_requests = [e for e in everything if e["event"] == "request" and e.get("qa")]
    assert len(qa_requests) == len(users) + 1
    assert {e["request_id"] for e in qa_requests} >= set(forced_ids)
    assert all(e["variant"] == "treatment" and e["qa"] is True for e in qa_requests)
    (fb,) = [e for e in everything if e["event"] == "feedback"]
    assert fb["qa"] is True and fb["request_id"] == forced_ids[0]


def test_force_variant_without_admin_key_configured(procs, tmp_path):
    mock = start_mock(procs)
    gateway = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)],
                            env={"BAKEOFF_ADMIN_KEY": ""})
    with pytest.raises(openai.PermissionDeniedError):
        gateway.client().chat.completions.create(
            model=MODEL, messages=MESSAGES, user="u", extra_headers={"X-Bakeoff-Force-Variant": "treatment", "X-Bakeoff-Admin-Key": "anything"})
    status, _, body = gateway.get(f"/v1/experiments/{EXPERIMENT}/report")
    assert status == 403, body


def test_feedback_on_a_qa_request_after_restart_is_qa(procs, tmp_path):
    mock = start_mock(procs)
    experiments = [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url)]
    first = start_gateway(procs, tmp_path, experiments)
    raw = first.client(api_key=ADMIN_KEY).chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, user="qa-restart", extra_headers={"X-Bakeoff-Force-Variant": "treatment"})
    rid = raw.headers["x-bakeoff-request-id"]
    assert first.stop() == 0
    second = start_gateway(procs, tmp_path, experiments)
    status, _, body = second.post("/v1/feedback", {"request_id": rid, "user": "qa-restart", "name": "task_completed", "value": 1})
    assert status == 200, body
    assert second.stop() == 0
    (fb,) = [e for e in second.export(include_qa=True) if e["event"] == "feedback"]
    assert fb["request_id"] == rid
    assert fb.get("qa") is True, fb
    assert not [e for e in second.export() if e["event"] == "feedback"], "a plain export holds the QA request's feedback"
