"""Errors as the openai client (and raw HTTP clients) see them."""
import json

import openai
import pytest

from conftest import closed_port, raw_request, split_experiment, start_gateway, start_mock, users_in

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def env(module_procs, tmp_path_factory):
    ok = start_mock(module_procs)
    flaky = start_mock(module_procs, error_rate=1.0)
    down = f"http://127.0.0.1:{closed_port()}/v1"
    gateway = start_gateway(module_procs, tmp_path_factory.mktemp("errors"), [
        split_experiment("err-exp", "bot", ok.base_url, ok.base_url),
        split_experiment("down-exp", "down", down, down),
        split_experiment("flaky-exp", "flaky", flaky.base_url, flaky.base_url),
    ], max_body_bytes=65536)
    return {"gateway": gateway}


def error_of(body: bytes) -> dict:
    payload = json.loads(body)
    assert isinstance(payload.get("error"), dict), payload
    assert isinstance(payload["error"].get("message"), str) and payload["error"]["message"], payload
    return payload["error"]


def test_unknown_model_is_not_found(env):
    with pytest.raises(openai.NotFoundError) as e:
        env["gateway"].client().chat.completions.create(model="no-such-model", messages=MESSAGES, user="u1")
    assert e.value.status_code == 404
    assert "no-such-model" in e.value.message
    with pytest.raises(openai.NotFoundError):
        env["gateway"].client().completions.create(model="no-such-model", prompt="x", user="u1")


def test_no_user_is_bad_request(env):
    with pytest.raises(openai.BadRequestError) as e:
        env["gateway"].client().chat.completions.create(model="bot", messages=MESSAGES)
    assert e.value.status_code == 400
    assert e.value.code == "user_required"


def test_user_from_header_when_the_body_user_is_empty_and_ids_are_bounded(env):
    status, headers, data = env["gateway"].post("/v1/chat/completions", {"model": "bot", "user": "", "messages": MESSAGES},
                                                headers={"X-Bakeoff-User": "header-user"})
    assert status == 200, data
    status, _, data = env["gateway"].post("/v1/chat/completions", {"model": "bot", "user": "u" * 600, "messages": MESSAGES})
    assert status == 400 and error_of(data)["code"] == "user_too_long", data
    status, _, data = env["gateway"].post("/v1/chat/completions", {"model": "bot", "user": "u1", "messages": MESSAGES},
                                          headers={"X-Bakeoff-Conversation": "c" * 600})
    assert status == 400 and error_of(data)["code"] == "conversation_too_long", data


def test_clients_that_hang_up_mid_body_leave_nothing_behind(env):
    import socket
    import time
    import urllib.parse
    gateway = env["gateway"]
    port = urllib.parse.urlparse(gateway.root).port
    body = json.dumps({"model": "bot", "user": "u1", "messages": MESSAGES}).encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request[: len(request) - 20])
        s.close()
    deadline = time.monotonic() + 10
    in_flight = None
    while time.monotonic() < deadline:
        status, _, text = gateway.get("/metrics")
        in_flight = [l for l in text.decode().splitlines() if l.startswith("bakeoff_requests_in_flight ")]
        if in_flight and in_flight[0].split()[1] == "1":  # the /metrics request itself
            break
        time.sleep(0.2)
    assert in_flight and in_flight[0].split()[1] == "1", in_flight


def test_missing_messages_is_bad_request(env):
    status, _, body = env["gateway"].post("/v1/chat/completions", {"model": "bot", "user": "u1"})
    assert status == 400
    assert "messages" in error_of(body)["message"]


@pytest.mark.parametrize("body", [b"{not json", b'{"model": "bot", "messages": [', b"", b"[1, 2]", b'"text"'])
def test_malformed_json_is_400(env, body):
    status, headers, data = env["gateway"].post("/v1/chat/completions", body)
    assert status == 400, data
    assert headers["content-type"].startswith("application/json")
    error_of(data)


def test_oversized_body_is_413(env):
    big = json.dumps({"model": "bot", "user": "u1", "messages": [{"role": "user", "content": "x" * 100_000}]})
    status, headers, data = env["gateway"].post("/v1/chat/completions", big)
    assert status == 413, data
    error_of(data)
    # Just under the limit still works.
    fits = json.dumps({"model": "bot", "user": "u1", "messages": [{"role": "user", "content": "x" * 60_000}]})
    status, _, data = env["gateway"].post("/v1/chat/completions", fits)
    assert status == 200, data


def test_oversized_body_through_the_client(env):
    with pytest.raises(openai.APIStatusError) as e:
        env["gateway"].client().chat.completions.create(model="bot", user="u1",
                                                        messages=[{"role": "user", "content": "y" * 100_000}])
    assert e.value.status_code == 413


def test_upstream_down_is_502(env):
    client = env["gateway"].client()
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="down", messages=MESSAGES, user="u1")
    assert e.value.status_code == 502
    assert e.value.code == "upstream_unreachable"
    assert e.value.response.headers["x-bakeoff-experiment"] == "down-exp"
    # Streams too: the upstream fails before any byte, so the client gets a plain 502.
    with pytest.raises(openai.APIStatusError) as e:
        list(client.chat.completions.create(model="down", messages=MESSAGES, user="u1", stream=True))
    assert e.value.status_code == 502


def test_upstream_errors_pass_through(env):
    client = env["gateway"].client()
    statuses = []
    for i in range(4):
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="flaky", messages=MESSAGES, user=f"flaky-{i}")
        statuses.append(e.value.status_code)
        assert isinstance(e.value, openai.InternalServerError if e.value.status_code == 500 else openai.RateLimitError)
        assert "error rate" in e.value.message
        assert e.value.response.headers["x-bakeoff-variant"] in ("control", "treatment")
    assert set(statuses) == {500, 429}, statuses
    with pytest.raises(openai.APIStatusError) as e:
        list(client.chat.completions.create(model="flaky", messages=MESSAGES, user="flaky-s", stream=True))
    assert e.value.status_code in (500, 429)


def test_unknown_endpoint_and_method(env):
    status, _, body = env["gateway"].get("/v1/nothing-here")
    assert status == 404
    error_of(body)
    status, _, body = env["gateway"].get("/v1/chat/completions")
    assert status == 405
    error_of(body)


def test_mid_stream_failure(procs, tmp_path):
    mock = start_mock(procs, fail_mid_stream_rate=1.0, tokens_per_second=50, output_tokens=20)
    full = start_mock(procs, tokens_per_second=0, output_tokens=20).client().chat.completions.create(
        model="m", messages=MESSAGES).choices[0].message.content
    gateway = start_gateway(procs, tmp_path, [split_experiment("mid-exp", "mid", mock.base_url, mock.base_url)])
    user = users_in("mid-exp", "control", 1)[0]
    stream = gateway.client().chat.completions.create(model="mid", messages=MESSAGES, user=user, stream=True)
    text, failed = "", None
    try:
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    except Exception as e:  # an openai error, or the HTTP library's for a cut stream
        failed = e
    print(f"mid-stream: error={failed!r} got {len(text)} of {len(full)} characters")
    assert failed is not None or len(text) < len(full), "the stream went through although the upstream cut it"
    assert full.startswith(text)
    assert gateway.stop() == 0, gateway.process.stderr
    (event,) = [e for e in gateway.export() if e["event"] == "request"]
    assert event["status"] == "upstream_error", event
    assert event["variant"] == "control" and event["user_id"] == user
