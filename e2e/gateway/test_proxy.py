"""Requests through the gateway with the official openai client: answers, usage, the x-bakeoff headers,
streams, and what the upstream of each variant receives."""
import json
import re

import pytest

from conftest import (UPSTREAM_KEY_ENV, CLIENT_KEY, expected_variant, split_experiment, start_gateway, start_mock,
                      users_in)

EXPERIMENT = "proxy-exp"
MODEL = "proxy-bot"
SYSTEM_PROMPT = "You are the treatment. Be brief."
MESSAGES = [{"role": "user", "content": "Where is my order?"}]
REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")


@pytest.fixture(scope="module")
def env(module_procs, tmp_path_factory):
    control = start_mock(module_procs, reply_prefix="[control] ", output_tokens=12)
    treatment = start_mock(module_procs, reply_prefix="[treatment] ", output_tokens=12)
    gateway = start_gateway(module_procs, tmp_path_factory.mktemp("proxy"), [
        split_experiment(EXPERIMENT, MODEL, control.base_url, treatment.base_url, split=0.5,
                         treatment_upstream={"api_key_env": UPSTREAM_KEY_ENV, "headers": {"X-Team": "support", "X-Extra": "42"}},
                         treatment_extra={"system_prompt": SYSTEM_PROMPT, "parameters": {"temperature": 0.25}}),
    ])
    # The reply each mock gives (the same words for every request), asked directly.
    replies = {}
    for name, mock in (("control", control), ("treatment", treatment)):
        c = mock.client()
        replies[name] = {
            "chat": c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content,
            "completions": c.completions.create(model="m", prompt="Say hi").choices[0].text,
        }
    return {"gateway": gateway, "mocks": {"control": control, "treatment": treatment}, "replies": replies,
            "users": {v: users_in(EXPERIMENT, v, 3) for v in ("control", "treatment")}}


def check_headers(headers, variant):
    assert headers["x-bakeoff-experiment"] == EXPERIMENT
    assert headers["x-bakeoff-variant"] == variant
    assert REQUEST_ID.match(headers["x-bakeoff-request-id"]), headers["x-bakeoff-request-id"]


@pytest.mark.parametrize("variant", ["control", "treatment"])
def test_chat_non_streaming(env, variant):
    user = env["users"][variant][0]
    raw = env["gateway"].client().chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, user=user)
    assert raw.status_code == 200
    check_headers(raw.headers, variant)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == env["replies"][variant]["chat"]
    assert completion.choices[0].message.content.startswith(f"[{variant}] ")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 12
    assert completion.usage.prompt_tokens >= 1
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


@pytest.mark.parametrize("variant", ["control", "treatment"])
def test_completions_non_streaming(env, variant):
    user = env["users"][variant][1]
    raw = env["gateway"].client().completions.with_raw_response.create(model=MODEL, prompt="Say hi", user=user)
    assert raw.status_code == 200
    check_headers(raw.headers, variant)
    completion = raw.parse()
    assert completion.object == "text_completion"
    assert completion.choices[0].text == env["replies"][variant]["completions"]
    assert completion.usage.completion_tokens == 12
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 12


def test_request_ids_are_unique(env):
    client = env["gateway"].client()
    user = env["users"]["control"][0]
    ids = {client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, user=user).headers["x-bakeoff-request-id"]
           for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize("variant", ["control", "treatment"])
def test_chat_streaming_without_usage(env, variant):
    user = env["users"][variant][2]
    raw = env["gateway"].client().chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, user=user, stream=True)
    assert raw.status_code == 200
    check_headers(raw.headers, variant)
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert len(chunks) > 3, chunks
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == env["replies"][variant]["chat"]
    # The gateway asks the upstream for usage on its own behalf, but must not pass that chunk on.
    assert all(c.usage is None for c in chunks), [c for c in chunks if c.usage is not None]
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("variant", ["control", "treatment"])
def test_chat_streaming_with_usage(env, variant):
    user = env["users"][variant][0]
    stream = env["gateway"].client().chat.completions.create(model=MODEL, messages=MESSAGES, user=user, stream=True,
                                                             stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == env["replies"][variant]["chat"]
    last = chunks[-1]
    assert last.usage is not None, chunks[-3:]
    assert last.choices == []
    assert last.usage.completion_tokens == 12
    assert last.usage.total_tokens == last.usage.prompt_tokens + 12
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("variant", ["control", "treatment"])
def test_completions_streaming(env, variant):
    user = env["users"][variant][1]
    client = env["gateway"].client()
    chunks = list(client.completions.create(model=MODEL, prompt="Say hi", user=user, stream=True))
    assert len(chunks) > 3
    assert "".join(c.choices[0].text for c in chunks if c.choices) == env["replies"][variant]["completions"]
    assert all(c.usage is None for c in chunks)
    chunks = list(client.completions.create(model=MODEL, prompt="Say hi", user=user, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == env["replies"][variant]["completions"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12


def test_upstreams_receive_variant_model_prompt_headers_and_key(env):
    mocks = env["mocks"]
    for m in mocks.values():
        m.clear()
    client = env["gateway"].client()
    messages = [{"role": "system", "content": "client system prompt"}, {"role": "user", "content": "hello there"}]
    control_user, treatment_user = env["users"]["control"][0], env["users"]["treatment"][0]
    client.chat.completions.create(model=MODEL, messages=messages, user=control_user, temperature=0.9)
    client.chat.completions.create(model=MODEL, messages=messages, user=treatment_user, temperature=0.9)
    list(client.chat.completions.create(model=MODEL, messages=MESSAGES, user=treatment_user, stream=True))

    (c,) = mocks["control"].requests()
    assert c["path"] == "/v1/chat/completions"
    body = json.loads(c["body"])
    assert body["model"] == f"{MODEL}-v1"
    assert body["messages"] == messages  # no system prompt configured for control: as sent
    assert body["temperature"] == 0.9
    assert body["user"] == control_user
    # No api_key_env on control: no Authorization at all, so the client's key never reaches an upstream.
    assert "authorization" not in c["headers"], c["headers"]
    assert "x-team" not in c["headers"]

    t, t_stream = mocks["treatment"].requests()
    body = json.loads(t["body"])
    assert body["model"] == f"{MODEL}-v2"
    assert body["messages"] == [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "hello there"}]
    assert body["temperature"] == 0.25  # the variant's parameters override the client's
    assert t["headers"]["x-team"] == "support"
    assert t["headers"]["x-extra"] == "42"
    # Exactly one Authorization (the upstream's key): the mock joins repeated headers with ", ".
    assert t["headers"]["authorization"] == "<present>", t["headers"]
    for h, v in t["headers"].items():
        assert CLIENT_KEY not in v, (h, v)

    body = json.loads(t_stream["body"])
    assert body["stream"] is True
    assert body["model"] == f"{MODEL}-v2"
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert t_stream["headers"]["authorization"] == "<present>"
    assert "text/event-stream" in t_stream["headers"].get("accept", "")


def test_user_header_instead_of_body_user(env):
    user = env["users"]["treatment"][1]
    raw = env["gateway"].client().chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers={"X-Bakeoff-User": user})
    check_headers(raw.headers, expected_variant(EXPERIMENT, user, 0.5))
