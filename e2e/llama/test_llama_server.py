"""The gateway between the official openai client and llama.cpp's server (llama-cpp-python), a real
OpenAI-compatible server no one here wrote: chat and completions, streamed and not, usage in streams, TTFT,
feedback, the stored events and /metrics.

The two variants are two tiny random-weight models (tiny-a, tiny-b) on one llama.cpp server. Their text is
nonsense, so nothing here expects given words: what the gateway returns is compared with what the same model
says when asked directly with the same request (temperature 0, the models are deterministic), which also
proves each variant reached its own model.

All traffic is sent once by the module's `traffic` fixture (a few seconds); each test checks one aspect of it.
"""
from __future__ import annotations

import json
import re
import time

import openai
import pytest

from .llama_helpers import MODEL_A, MODEL_B, N_CTX, metric_value, sse_events, start_gateway, users_in, wait_until

EXPERIMENT = "llama-exp"
ALIAS = "llama-bot"
UPSTREAM_MODEL = {"control": MODEL_A, "treatment": MODEL_B}
VARIANTS = ("control", "treatment")
MAX_TOKENS = 8
MESSAGES = [{"role": "system", "content": "You are a support bot."},
            {"role": "user", "content": "Where is my order?"}]
PROMPT = "hello, where is my order"
REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")
# The explicit marker a request event should carry when the upstream reported no token usage (a stream from
# llama.cpp's server, which ignores stream_options.include_usage), and its counter in /metrics. See
# test_stream_without_upstream_usage_is_marked.
USAGE_MISSING_KEY = "usage_missing"
USAGE_MISSING_METRIC = "bakeoff_upstream_usage_missing_total"


def sampling(endpoint: str, stream: bool = False, include_usage: bool = False) -> dict:
    kw: dict = {"max_tokens": MAX_TOKENS, "temperature": 0, "seed": 1}
    if endpoint == "chat":
        kw["messages"] = MESSAGES
    else:
        kw["prompt"] = PROMPT
    if stream:
        kw["stream"] = True
        if include_usage:
            kw["stream_options"] = {"include_usage": True}
    return kw


def create(client: openai.OpenAI, endpoint: str):
    return client.chat.completions if endpoint == "chat" else client.completions


def chunk_text(chunk, endpoint: str) -> str:
    if not chunk.choices:
        return ""
    c = chunk.choices[0]
    return (c.delta.content or "") if endpoint == "chat" else (c.text or "")


class Call:
    """One request through the gateway and what the client saw of it."""

    def __init__(self, endpoint: str, variant: str, user: str, stream: bool, include_usage: bool = False, raw: bool = False):
        self.endpoint, self.variant, self.user = endpoint, variant, user
        self.stream, self.include_usage, self.raw = stream, include_usage, raw
        self.request_id = ""
        self.feedback_token = ""
        self.headers: dict = {}
        self.text = ""
        self.usage = None            # the usage object the client got, if any
        self.chunks: list = []       # parsed chunks of a stream
        self.events: list[str] = []  # raw data payloads of a raw stream
        self.body = b""              # raw bytes of a raw stream
        self.finish_reason = None
        self.elapsed_ms = 0.0
        self.ttft_ms = None          # client side: to the first chunk with content

    def __repr__(self):
        return f"Call({self.endpoint}, {self.variant}, stream={self.stream}, usage={self.include_usage}, raw={self.raw}, {self.request_id})"


def send(gateway, call: Call) -> Call:
    client = gateway.client()
    api = create(client, call.endpoint)
    kw = dict(sampling(call.endpoint, call.stream, call.include_usage), model=ALIAS, user=call.user)
    start = time.monotonic()
    if call.raw:
        with api.with_streaming_response.create(**kw) as r:
            assert r.status_code == 200
            call.headers = dict(r.headers)
            call.body = b"".join(r.iter_bytes())
        call.events = sse_events(call.body)
    elif call.stream:
        raw = api.with_raw_response.create(**kw)
        call.headers = dict(raw.headers)
        for chunk in raw.parse():
            call.chunks.append(chunk)
            t = chunk_text(chunk, call.endpoint)
            if t and call.ttft_ms is None:
                call.ttft_ms = (time.monotonic() - start) * 1000
            call.text += t
            if chunk.choices and chunk.choices[0].finish_reason:
                call.finish_reason = chunk.choices[0].finish_reason
            if chunk.usage is not None:
                call.usage = chunk.usage
    else:
        raw = api.with_raw_response.create(**kw)
        call.headers = dict(raw.headers)
        answer = raw.parse()
        call.chunks = [answer]
        call.text = answer.choices[0].message.content if call.endpoint == "chat" else answer.choices[0].text
        call.finish_reason = answer.choices[0].finish_reason
        call.usage = answer.usage
    call.elapsed_ms = (time.monotonic() - start) * 1000
    call.request_id = call.headers.get("x-bakeoff-request-id", "")
    call.feedback_token = call.headers.get("x-bakeoff-feedback-token", "")
    return call


@pytest.fixture(scope="module")
def traffic(llama, module_procs, tmp_path_factory):
    """The gateway (two variants on the llama.cpp server), the reference answers asked directly, every request,
    feedback, then the store's events and /metrics once everything is written."""
    gateway = start_gateway(module_procs, tmp_path_factory.mktemp("gateway"), [{
        "name": EXPERIMENT, "model": ALIAS, "split": 0.5, "log_content": True,
        "variants": [{"name": v, "upstream": {"base_url": llama.base_url, "model": UPSTREAM_MODEL[v]}} for v in VARIANTS],
    }])
    users = {v: users_in(EXPERIMENT, v, 2, prefix="llama") for v in VARIANTS}

    # What each model answers to each request when asked directly (non-streamed): text and usage.
    reference = {}
    for v in VARIANTS:
        for endpoint in ("chat", "completions"):
            answer = create(llama.client(), endpoint).create(model=UPSTREAM_MODEL[v], **sampling(endpoint))
            text = answer.choices[0].message.content if endpoint == "chat" else answer.choices[0].text
            reference[(v, endpoint)] = {"text": text, "usage": answer.usage, "finish_reason": answer.choices[0].finish_reason,
                                        "model": answer.model}
    metrics_before = gateway.metrics()

    calls: list[Call] = []
    for v in VARIANTS:  # grouped by variant: the llama.cpp server swaps its loaded model when the alias changes
        for endpoint in ("chat", "completions"):
            user = users[v][0]
            calls.append(send(gateway, Call(endpoint, v, user, stream=False)))
            calls.append(send(gateway, Call(endpoint, v, user, stream=True)))
            calls.append(send(gateway, Call(endpoint, v, user, stream=True, include_usage=True)))
            calls.append(send(gateway, Call(endpoint, v, users[v][1], stream=True, raw=True)))
            calls.append(send(gateway, Call(endpoint, v, users[v][1], stream=True, include_usage=True, raw=True)))

    # Feedback on two answers: one by its feedback token alone (as a browser would), one by its user.
    feedback = []
    by_token = next(c for c in calls if c.variant == "treatment" and c.stream and not c.raw)
    status, _, body = gateway.post("/v1/feedback", {"request_id": by_token.request_id, "feedback_token": by_token.feedback_token,
                                                    "name": "thumbs_up", "value": 1})
    feedback.append((by_token, "thumbs_up", status, json.loads(body or b"null")))
    by_user = next(c for c in calls if c.variant == "control" and not c.stream)
    status, _, body = gateway.post("/v1/feedback", {"request_id": by_user.request_id, "user": by_user.user,
                                                    "name": "task_completed", "value": True})
    feedback.append((by_user, "task_completed", status, json.loads(body or b"null")))

    expected = len(calls) + len(feedback)
    events = wait_until(lambda: (lambda e: e if len(e) >= expected else None)(gateway.export()),
                        message=f"{expected} events in the store")
    return {"gateway": gateway, "llama": llama, "calls": calls, "reference": reference, "feedback": feedback,
            "events": events, "metrics_before": metrics_before, "metrics_after": gateway.metrics()}


def request_event(traffic, call: Call) -> dict:
    found = [e for e in traffic["events"] if e["event"] == "request" and e["request_id"] == call.request_id]
    assert len(found) == 1, (call, found)
    return found[0]


def calls(traffic, endpoint: str | None = None, stream: bool | None = None, raw: bool | None = None,
          include_usage: bool | None = None) -> list[Call]:
    return [c for c in traffic["calls"]
            if (endpoint is None or c.endpoint == endpoint) and (stream is None or c.stream == stream)
            and (raw is None or c.raw == raw) and (include_usage is None or c.include_usage == include_usage)]


# --- The llama.cpp server itself, asked directly: what the gateway has to work with.

def test_the_models_answer_directly(traffic):
    """The reference answers: MAX_TOKENS word pieces (the tiny models never end early), real usage, and two
    models that say different things (so a variant that reached the wrong model shows)."""
    ref = traffic["reference"]
    for (variant, endpoint), r in ref.items():
        assert r["finish_reason"] == "length", (variant, endpoint, r)
        assert r["usage"].completion_tokens == MAX_TOKENS, r
        assert 1 < r["usage"].prompt_tokens < N_CTX, r
        assert r["usage"].total_tokens == r["usage"].prompt_tokens + r["usage"].completion_tokens
        assert r["text"], r
    for endpoint in ("chat", "completions"):
        assert ref[("control", endpoint)]["text"] != ref[("treatment", endpoint)]["text"]


def test_llama_server_streams_no_usage(llama):
    """What the gateway must cope with: llama-cpp-python's server ignores stream_options.include_usage (no
    chunk carries `usage`), separates events with LF and ends the stream with `data: [DONE]`."""
    for path, body in (("/v1/chat/completions", {"messages": MESSAGES}), ("/v1/completions", {"prompt": PROMPT})):
        status, headers, raw = llama.post(path, {"model": MODEL_A, "stream": True, "stream_options": {"include_usage": True},
                                                 "max_tokens": MAX_TOKENS, "temperature": 0, **body})
        assert status == 200 and headers["content-type"].startswith("text/event-stream"), (status, headers)
        events = sse_events(raw)
        assert events[-1] == "[DONE]", raw[-200:]
        assert raw.endswith(b"data: [DONE]\n\n") and b"\r" not in raw, raw[-200:]
        assert not any("usage" in json.loads(e) for e in events[:-1]), raw


# --- What the client gets through the gateway.

def test_every_answer_has_the_gateway_headers(traffic):
    for call in traffic["calls"]:
        h = call.headers
        assert h["x-bakeoff-experiment"] == EXPERIMENT, call
        assert h["x-bakeoff-variant"] == call.variant, call
        assert REQUEST_ID.match(h["x-bakeoff-request-id"]), h
        assert h["x-bakeoff-feedback-token"].startswith("bk1."), h
        if call.stream:
            assert h["content-type"].startswith("text/event-stream"), h
    assert len({c.request_id for c in traffic["calls"]}) == len(traffic["calls"])


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_non_streamed_answers_are_the_models(traffic, endpoint):
    for call in calls(traffic, endpoint, stream=False):
        ref = traffic["reference"][(call.variant, endpoint)]
        answer = call.chunks[0]
        assert answer.object == ("chat.completion" if endpoint == "chat" else "text_completion")
        if endpoint == "chat":
            assert answer.choices[0].message.role == "assistant"
        assert call.text == ref["text"], (call, ref)  # the variant's own model answered
        assert answer.model == ref["model"]
        assert call.finish_reason == "length"
        assert call.usage is not None
        assert (call.usage.prompt_tokens, call.usage.completion_tokens, call.usage.total_tokens) == \
               (ref["usage"].prompt_tokens, ref["usage"].completion_tokens, ref["usage"].total_tokens)


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_streamed_answers_through_the_openai_client(traffic, endpoint):
    for call in calls(traffic, endpoint, stream=True, raw=False):
        ref = traffic["reference"][(call.variant, endpoint)]
        kind = "chat.completion.chunk" if endpoint == "chat" else "text_completion"
        assert all(c.object == kind for c in call.chunks), call.chunks
        assert call.text == ref["text"], (call, ref)
        assert call.finish_reason == "length"
        assert call.ttft_ms is not None and call.ttft_ms > 0
        content_chunks = [c for c in call.chunks if chunk_text(c, endpoint)]
        assert len(content_chunks) >= 2, call.chunks  # streamed piece by piece, not in one lump
        if not call.include_usage:
            assert all(c.usage is None for c in call.chunks), call.chunks


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_raw_streams_are_valid_sse_ending_with_done(traffic, endpoint):
    for call in calls(traffic, endpoint, raw=True):
        assert call.events, call.body
        assert call.events[-1] == "[DONE]", call.body[-300:]
        assert call.events.count("[DONE]") == 1
        payloads = [json.loads(e) for e in call.events[:-1]]
        assert all("error" not in p for p in payloads), payloads
        assert all(p["choices"] for p in payloads if p.get("usage") is None), payloads
        text = "".join((ch.get("delta", {}).get("content") or "") if endpoint == "chat" else (ch.get("text") or "")
                       for p in payloads for ch in p["choices"][:1])
        assert text == traffic["reference"][(call.variant, endpoint)]["text"]
        # Nothing after [DONE]; the body ends with the blank line that ends the event.
        assert call.body.rstrip(b"\r\n").endswith(b"data: [DONE]"), call.body[-100:]
        assert call.body.endswith(b"\n\n") or call.body.endswith(b"\r\n\r\n"), call.body[-20:]
        if not call.include_usage:
            # The gateway asks the upstream for usage on its own behalf; a client that did not ask must never
            # see a usage chunk.
            assert not any(p.get("usage") is not None for p in payloads), payloads


@pytest.mark.xfail(strict=True, reason="llama.cpp's server (llama-cpp-python 0.3.36) ignores stream_options.include_usage "
                   "and sends no usage chunk (test_llama_server_streams_no_usage); the gateway cannot invent exact counts "
                   "without the model's tokenizer, so the client gets none either")
@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_stream_ends_with_the_usage_chunk_the_client_asked_for(traffic, endpoint):
    for call in calls(traffic, endpoint, stream=True, raw=False, include_usage=True):
        ref = traffic["reference"][(call.variant, endpoint)]
        last = call.chunks[-1]
        assert last.usage is not None and last.choices == [], call.chunks[-2:]
        assert last.usage.prompt_tokens == ref["usage"].prompt_tokens
        assert last.usage.completion_tokens == ref["usage"].completion_tokens


# --- Feedback.

def test_feedback_on_the_answers(traffic):
    for call, name, status, body in traffic["feedback"]:
        assert status == 200, (call, body)
        assert body["status"] == "recorded" and body["experiment"] == EXPERIMENT and body["variant"] == call.variant, body
    stored = [e for e in traffic["events"] if e["event"] == "feedback"]
    assert sorted((e["request_id"], e["name"]) for e in stored) == \
           sorted((c.request_id, name) for c, name, _, _ in traffic["feedback"])
    for e in stored:
        assert e["experiment"] == EXPERIMENT
        assert e["value"] in (1, True)


# --- The store's events.

def test_one_ok_event_per_request_with_its_variant(traffic):
    requests = [e for e in traffic["events"] if e["event"] == "request"]
    assert len(requests) == len(traffic["calls"])
    for call in traffic["calls"]:
        e = request_event(traffic, call)
        assert e["experiment"] == EXPERIMENT
        assert e["variant"] == call.variant
        assert e["user_id"] == call.user
        assert e["status"] == "ok", e
        assert e["conversation_id"] == call.request_id


def test_latency_and_ttft_are_plausible(traffic):
    for call in traffic["calls"]:
        e = request_event(traffic, call)
        # The gateway's clock starts after the client's and stops before the client has read the whole answer:
        # never more than the client saw. The openai client stops reading a stream at [DONE], before the
        # upstream's transfer (which the gateway times) has formally ended: a few ms of slack there.
        slack = 25 if call.stream and not call.raw else 1
        assert 0 < e["latency_ms"] <= call.elapsed_ms + slack, (call, e, call.elapsed_ms)
        if call.stream:
            assert "ttft_ms" in e, e
            assert 0 < e["ttft_ms"] <= e["latency_ms"], e
            if call.ttft_ms is not None:
                assert e["ttft_ms"] <= call.ttft_ms + 1, (e, call.ttft_ms)
        else:
            assert e.get("ttft_ms") is None or 0 < e["ttft_ms"] <= e["latency_ms"], e


def test_non_streamed_tokens_are_the_servers_usage(traffic):
    for call in calls(traffic, stream=False):
        e = request_event(traffic, call)
        assert e.get("input_tokens") == call.usage.prompt_tokens, (e, call.usage)
        assert e.get("output_tokens") == call.usage.completion_tokens, (e, call.usage)
        assert USAGE_MISSING_KEY not in e, e


def test_stream_without_upstream_usage_is_marked(traffic):
    """llama.cpp sends no usage in streams. The stream's event must then either carry the counts (which, at
    temperature 0, are those of the same request unstreamed) or say explicitly that the upstream reported none;
    never a 0, and never nothing at all, which reads like a request that was simply not counted, and makes the
    output_tokens metric and the token counters quietly cover only the non-streamed requests."""
    for call in calls(traffic, stream=True):
        e = request_event(traffic, call)
        ref = traffic["reference"][(call.variant, call.endpoint)]["usage"]
        assert e.get("input_tokens") != 0 and e.get("output_tokens") != 0, e
        if "input_tokens" in e or "output_tokens" in e:
            assert (e.get("input_tokens"), e.get("output_tokens")) == (ref.prompt_tokens, ref.completion_tokens), (e, ref)
        else:
            assert e.get(USAGE_MISSING_KEY) is True, \
                f"a stream whose upstream sent no usage is logged without token counts and without saying why: {e}"
    streams = {v: len([c for c in calls(traffic, stream=True) if c.variant == v]) for v in VARIANTS}
    before, after = traffic["metrics_before"], traffic["metrics_after"]
    for v in VARIANTS:
        labels = {"experiment": EXPERIMENT, "variant": v}
        delta = (metric_value(after, USAGE_MISSING_METRIC, **labels) or 0) - (metric_value(before, USAGE_MISSING_METRIC, **labels) or 0)
        assert delta == streams[v], f"{USAGE_MISSING_METRIC}{labels} rose by {delta}, expected {streams[v]}"


def test_logged_content_is_what_the_client_got(traffic):
    for call in traffic["calls"]:
        e = request_event(traffic, call)
        expected = call.text if not call.raw else traffic["reference"][(call.variant, call.endpoint)]["text"]
        assert e.get("response") == expected, (call, e)
        if call.endpoint == "chat":
            assert json.loads(e["messages"]) == MESSAGES if isinstance(e.get("messages"), str) else e.get("messages") == MESSAGES
        else:
            assert e.get("prompt") == PROMPT


# --- /metrics.

def test_metrics_counters_rose(traffic):
    before, after = traffic["metrics_before"], traffic["metrics_after"]

    def delta(metric, **labels):
        return (metric_value(after, metric, **labels) or 0) - (metric_value(before, metric, **labels) or 0)

    for v in VARIANTS:
        arm = {"experiment": EXPERIMENT, "variant": v}
        mine = [c for c in traffic["calls"] if c.variant == v]
        assert delta("bakeoff_requests_total", status="ok", **arm) == len(mine)
        assert delta("bakeoff_request_duration_seconds_count", **arm) == len(mine)
        assert delta("bakeoff_time_to_first_token_seconds_count", **arm) == len([c for c in mine if c.stream])
        ttft_sum = delta("bakeoff_time_to_first_token_seconds_sum", **arm)
        assert 0 < ttft_sum <= delta("bakeoff_request_duration_seconds_sum", **arm)
        # Tokens: at least every non-streamed answer's usage; streams add theirs when counted.
        non_streamed = [c for c in mine if not c.stream]
        assert delta("bakeoff_input_tokens_total", **arm) >= sum(c.usage.prompt_tokens for c in non_streamed) > 0
        assert delta("bakeoff_output_tokens_total", **arm) >= sum(c.usage.completion_tokens for c in non_streamed) > 0
    assert delta("bakeoff_feedback_total", experiment=EXPERIMENT, name="thumbs_up") == 1
    assert delta("bakeoff_feedback_total", experiment=EXPERIMENT, name="task_completed") == 1
