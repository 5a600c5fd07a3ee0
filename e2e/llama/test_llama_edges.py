"""The gateway and llama.cpp's server off the happy path: a prompt over the context (streamed and not), a
stream the server cuts short for the next request, a client that leaves mid-stream, a stream whose deltas are
all empty, and a kept-alive upstream connection that the server closed while idle.

Each test names what llama-cpp-python does on the wire (checked against the server directly where it matters),
then what the gateway must make of it.
"""
from __future__ import annotations

import json
import socket
import time

import openai
import pytest

from .llama_helpers import MODEL_A, MODEL_B, N_CTX, SlowTailRelay, metric_value, start_gateway, users_in, wait_until

EXPERIMENT = "llama-edges"
ALIAS = "llama-edge-bot"
UPSTREAM_MODEL = {"control": MODEL_A, "treatment": MODEL_B}
PARAMS_EXPERIMENT = "llama-params"
PARAMS_ALIAS = "llama-param-bot"
SYSTEM_PROMPT = "You answer in three words."
SLOW_TAIL_EXPERIMENT = "llama-slow-tail"
SLOW_TAIL_ALIAS = "llama-slow-tail-bot"
SLOW_TAIL_SECONDS = 0.3
# Far more tokens than the context holds (each word is at least one token).
LONG = " ".join(["word"] * (N_CTX + 100))


@pytest.fixture(scope="module")
def edge(llama, module_procs, tmp_path_factory):
    relay = SlowTailRelay(llama.port, delay=SLOW_TAIL_SECONDS)
    gateway = start_gateway(module_procs, tmp_path_factory.mktemp("edges"), [{
        "name": EXPERIMENT, "model": ALIAS, "split": 0.5,
        "variants": [{"name": v, "upstream": {"base_url": llama.base_url, "model": UPSTREAM_MODEL[v]}} for v in ("control", "treatment")],
    }, {
        # One variant that rewrites the request: its own system prompt and sampling values.
        "name": PARAMS_EXPERIMENT, "model": PARAMS_ALIAS,
        "variants": [{"name": "short", "weight": 1, "upstream": {"base_url": llama.base_url, "model": MODEL_B},
                      "system_prompt": SYSTEM_PROMPT, "parameters": {"max_tokens": 3, "temperature": 0}}],
    }, {
        # llama.cpp through a relay that holds the end of each streamed body back a little after [DONE].
        "name": SLOW_TAIL_EXPERIMENT, "model": SLOW_TAIL_ALIAS,
        "variants": [{"name": "control", "weight": 1, "upstream": {"base_url": relay.base_url, "model": MODEL_A}}],
    }])
    try:
        yield {"gateway": gateway, "llama": llama, "relay": relay, "user": users_in(EXPERIMENT, "control", 1, prefix="edge")[0]}
    finally:
        relay.close()


def event_of(gateway, request_id: str) -> dict:
    def find():
        found = [e for e in gateway.export() if e["event"] == "request" and e["request_id"] == request_id]
        return found[0] if found else None
    return wait_until(find, message=f"the event of {request_id}")


def over_context(endpoint: str) -> dict:
    return {"messages": [{"role": "user", "content": LONG}]} if endpoint == "chat" else {"prompt": LONG}


def api(client: openai.OpenAI, endpoint: str):
    return client.chat.completions if endpoint == "chat" else client.completions


def test_variant_system_prompt_and_parameters_reach_the_server(edge):
    """The variant's system prompt replaces the client's and its parameters override the client's sampling
    values: llama.cpp's usage shows both (3 tokens, and the prompt of the variant's messages)."""
    gateway, llama = edge["gateway"], edge["llama"]
    messages = [{"role": "system", "content": "You are verbose."}, {"role": "user", "content": "Where is my order?"}]
    expected = llama.client().chat.completions.create(
        model=MODEL_B, messages=[{"role": "system", "content": SYSTEM_PROMPT}, messages[1]], max_tokens=3, temperature=0)
    for stream in (False, True):
        raw = gateway.client().chat.completions.with_raw_response.create(
            model=PARAMS_ALIAS, user=edge["user"], messages=messages, max_tokens=50, temperature=1.5, stream=stream)
        if stream:
            chunks = list(raw.parse())
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert chunks[-1].choices[0].finish_reason == "length"
        else:
            answer = raw.parse()
            text = answer.choices[0].message.content
            assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == \
                   (expected.usage.prompt_tokens, expected.usage.completion_tokens)
            e = event_of(gateway, raw.headers["x-bakeoff-request-id"])
            assert (e["input_tokens"], e["output_tokens"]) == (expected.usage.prompt_tokens, 3), e
        assert text == expected.choices[0].message.content


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_prompt_over_the_context_non_streamed(edge, endpoint):
    """llama.cpp answers 400 context_length_exceeded, OpenAI-shaped: passed through, the event an error."""
    gateway = edge["gateway"]
    with pytest.raises(openai.BadRequestError) as caught:
        api(gateway.client(), endpoint).create(model=ALIAS, user=edge["user"], max_tokens=8, **over_context(endpoint))
    err = caught.value
    assert err.status_code == 400
    assert err.code == "context_length_exceeded", err.body
    rid = err.response.headers["x-bakeoff-request-id"]
    e = event_of(gateway, rid)
    assert e["variant"] == "control"
    assert e["status"] == "upstream_error", e
    assert "input_tokens" not in e and "output_tokens" not in e, e


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_prompt_over_the_context_streamed(edge, endpoint):
    """Streamed, llama-cpp-python answers 200 text/event-stream with an empty body: no event at all, not even
    [DONE] (its error is lost inside the server). The client must not take that for an empty answer: the
    gateway ends the stream with an error event, as for any stream that breaks off, and logs upstream_error."""
    llama, gateway = edge["llama"], edge["gateway"]
    path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
    status, headers, body = llama.post(path, {"model": MODEL_A, "stream": True, "max_tokens": 8, **over_context(endpoint)})
    assert (status, headers["content-type"].split(";")[0], body) == (200, "text/event-stream", b""), (status, headers, body[:300])

    before = gateway.metrics()
    chunks, error = [], None
    try:
        raw = api(gateway.client(), endpoint).with_raw_response.create(model=ALIAS, user=edge["user"], max_tokens=8,
                                                                       stream=True, **over_context(endpoint))
        rid = raw.headers["x-bakeoff-request-id"]
        for chunk in raw.parse():
            chunks.append(chunk)
    except openai.APIStatusError as e:  # an error status instead of a stream would do as well
        error, rid = e, e.response.headers["x-bakeoff-request-id"]
    except openai.APIError as e:  # the error event in the stream
        error = e
    e = event_of(gateway, rid)
    assert e["status"] == "upstream_error", f"an empty stream without [DONE] was logged as {e['status']!r}: {e}"
    assert error is not None, f"the client got an empty stream and no error ({len(chunks)} chunks)"
    arm = {"experiment": EXPERIMENT, "variant": "control"}
    rose = (metric_value(gateway.metrics(), "bakeoff_requests_total", status="upstream_error", **arm) or 0) - \
           (metric_value(before, "bakeoff_requests_total", status="upstream_error", **arm) or 0)
    assert rose == 1


def test_stream_cut_short_by_the_next_request(edge):
    """llama-cpp-python (interrupt_requests, on by default) ends a running stream as soon as another request
    waits for the model: `data: [DONE]` with no finish_reason on any chunk. The answer is truncated, so its
    event must not say ok (its latency and length would pass for a complete answer's)."""
    gateway, user = edge["gateway"], edge["user"]
    client = gateway.client()
    raw = client.completions.with_raw_response.create(model=ALIAS, user=user, prompt="hello", max_tokens=N_CTX - 16,
                                                      temperature=0, stream=True)
    rid = raw.headers["x-bakeoff-request-id"]
    stream = iter(raw.parse())
    chunks = [next(stream)]
    # Another request for the same model while the first still generates.
    other = client.completions.create(model=ALIAS, user=user, prompt="hi", max_tokens=4, temperature=0)
    assert other.choices[0].finish_reason == "length"
    try:
        for chunk in stream:
            chunks.append(chunk)
    except openai.APIError:
        pass  # the gateway may well tell the client with an error event that the answer is cut short
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [], f"the server did not cut the stream short ({len(chunks)} chunks, {finish}): the test proves nothing"
    assert len(chunks) < N_CTX - 16
    e = event_of(gateway, rid)
    assert e["status"] != "ok", f"a stream the upstream cut short (no finish_reason) was logged as ok: {e}"
    assert e["status"] == "upstream_error", e


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_client_that_stops_reading_at_done(edge, endpoint):
    """openai-python stops reading a stream at `data: [DONE]` and closes the connection at once. llama.cpp's
    server (uvicorn) writes the end of the HTTP body separately, just after [DONE], so the gateway can see the
    client leave before its upstream call has formally ended (about 1 stream in 150 through this gateway with
    nothing in between; always with SlowTailRelay widening the gap to 0.3 s). The client got the whole answer:
    the event must say ok, not client_cancelled, and its latency ends at [DONE], not when the upstream's
    connection got round to its last bytes."""
    gateway, relay = edge["gateway"], edge["relay"]
    delayed = relay.delayed
    kw = dict(messages=[{"role": "user", "content": "Where is my order?"}]) if endpoint == "chat" else dict(prompt="hello")
    start = time.monotonic()
    raw = api(gateway.client(), endpoint).with_raw_response.create(model=SLOW_TAIL_ALIAS, user=edge["user"], max_tokens=4,
                                                                   temperature=0, stream=True, **kw)
    chunks = list(raw.parse())
    elapsed_ms = (time.monotonic() - start) * 1000
    assert chunks[-1].choices[0].finish_reason == "length"
    e = event_of(gateway, raw.headers["x-bakeoff-request-id"])
    assert relay.delayed > delayed, "the relay held nothing back: the test proves nothing"
    assert e["status"] == "ok", f"a stream the client read to [DONE] was logged as {e['status']!r}: {e}"
    assert e["latency_ms"] <= elapsed_ms + 25, f"latency {e['latency_ms']} ms, the client had it all after {elapsed_ms:.1f} ms"


def test_client_leaves_mid_stream(edge):
    """The client closes its connection after the first bytes of a long stream: the event says
    client_cancelled, the gateway cancels its upstream call (llama.cpp stops generating) and the next request
    is answered at once."""
    gateway, user = edge["gateway"], edge["user"]
    host, port = gateway.root.removeprefix("http://").split(":")
    body = json.dumps({"model": ALIAS, "user": user, "prompt": "hello", "max_tokens": N_CTX - 16, "temperature": 0,
                       "stream": True}).encode()
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = b""
        while b"data:" not in head:
            head += s.recv(4096)
    rid = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
               if line.lower().startswith(b"x-bakeoff-request-id:"))
    e = event_of(gateway, rid)
    assert e["status"] == "client_cancelled", e
    start = time.monotonic()
    answer = gateway.client().completions.create(model=ALIAS, user=user, prompt="hi", max_tokens=4, temperature=0)
    assert answer.choices[0].finish_reason == "length"
    assert time.monotonic() - start < 5


def test_stream_whose_deltas_are_all_empty(edge):
    """Byte tokens that never complete a UTF-8 character: llama-cpp-python streams them as `""` deltas (and
    loses them: the same request unstreamed has text). No content reached the client, so the event has no
    time to first token at all (not 0, not the time of an empty chunk), and the stream is otherwise whole."""
    gateway, llama = edge["gateway"], edge["llama"]
    # The byte tokens <0xE2>, <0x82>, <0xAC> (ids 3 + byte): the model then writes only those bytes.
    kw = dict(prompt="hello", max_tokens=6, temperature=0, logit_bias={"229": 100, "133": 100, "175": 100})
    direct = [c for c in llama.client().completions.create(model=MODEL_A, stream=True, **kw)]
    assert all(c.choices[0].text == "" for c in direct), [c.choices[0].text for c in direct]

    raw = gateway.client().completions.with_raw_response.create(model=ALIAS, user=edge["user"], stream=True, **kw)
    chunks = list(raw.parse())
    assert chunks and chunks[-1].choices[0].finish_reason == "length"
    assert all(c.choices[0].text == "" for c in chunks)
    e = event_of(gateway, raw.headers["x-bakeoff-request-id"])
    assert e["status"] == "ok", e
    assert e.get("ttft_ms") is None, e
    assert e["latency_ms"] > 0


def test_upstream_connection_closed_while_idle(edge):
    """uvicorn (llama-cpp-python's HTTP server) closes an idle kept-alive connection after 5 s. The gateway's
    next request must go out on a fresh connection, not fail on the dead one."""
    gateway, user = edge["gateway"], edge["user"]
    client = gateway.client()
    first = client.chat.completions.create(model=ALIAS, user=user, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert first.usage.completion_tokens == 2
    time.sleep(5.3)
    for stream in (True, False):
        raw = client.chat.completions.with_raw_response.create(model=ALIAS, user=user, messages=[{"role": "user", "content": "hi"}],
                                                               max_tokens=2, stream=stream)
        if stream:
            assert list(raw.parse())[-1].choices[0].finish_reason == "length"
        else:
            assert raw.parse().usage.completion_tokens == 2
        assert event_of(gateway, raw.headers["x-bakeoff-request-id"])["status"] == "ok"
