"""The gateway's OTLP trace export end to end: the real `bakeoff serve` and `bakeoff mock-upstream`, the official openai
client, a real Arize Phoenix and a capturing collector that decodes both OTLP/HTTP encodings.

What each test pins down, in the interface's words: one CLIENT span per proxied request named
"{gen_ai.operation.name} {gen_ai.request.model}" with the GenAI attributes and bakeoff.*; a feedback span in the
request's trace; W3C trace context continued, forwarded upstream with the gateway's span as parent, unsampled parents
honoured; content only with log_content; the config block and the standard OTEL_* variables; export that never
touches a client's answer, is counted in /metrics, logged (rate-limited), and flushed on SIGTERM.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import time

import openai
import pytest

from .otlp_helpers import (ADMIN_KEY, TRACEPARENT, FakeUpstream, by_request_id, closed_port, metric_value,
                           otlp_block, otlp_metrics, run_serve, split_experiment, start_gateway, start_mock, users_in,
                           wait_until)

EXPERIMENT = "otlp-exp"
MODEL = "otlp-bot"
MESSAGES = [{"role": "user", "content": "Where is my order?"}]
PROMPT = "Say hi"
MOCK_LATENCY_MS = 40  # every span of a request to the mock must last at least this long
OUTPUT_TOKENS = 12
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "bakeoff.user_id")
# error.type on a failed request's span when the upstream gave no HTTP status, as the interface names them (an
# upstream's own 4xx/5xx is its status as a string, "500").
ERROR_TYPES = {"unreachable": "unreachable", "timeout": "timeout", "client went away": "client_cancelled"}


@pytest.fixture(scope="module")
def mock(module_procs, otlp_gateway):
    return start_mock(module_procs, latency_ms=MOCK_LATENCY_MS, tokens_per_second=0, output_tokens=OUTPUT_TOKENS)


@pytest.fixture(scope="module")
def users():
    return {v: users_in(EXPERIMENT, v, 8, prefix="otlp") for v in ("control", "treatment")}


def experiments(mock, **extra) -> list[dict]:
    return [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, **extra)]


_gateways = iter(range(1_000_000))


def gateway(procs, tmp_path, mock_or_experiments, otlp: dict | None = None, env: dict | None = None, **top):
    exps = mock_or_experiments if isinstance(mock_or_experiments, list) else experiments(mock_or_experiments)
    if otlp is not None:
        top["otlp"] = otlp
    return start_gateway(procs, tmp_path / f"gw{next(_gateways)}", exps, env=env, **top)


class Call:
    """One request through the gateway: what the client saw, and the wall-clock window around it."""

    def __init__(self, kind: str, stream: bool, raw, t0: int, t1: int, text: str, usage, user: str):
        self.kind, self.stream, self.t0, self.t1, self.text, self.usage, self.user = kind, stream, t0, t1, text, usage, user
        self.status = raw.status_code
        self.request_id = raw.headers.get("x-bakeoff-request-id")
        self.variant = raw.headers.get("x-bakeoff-variant")

    @property
    def upstream_model(self) -> str:
        return f"{MODEL}-v1" if self.variant == "control" else f"{MODEL}-v2"

    @property
    def operation(self) -> str:
        return "chat" if self.kind == "chat" else "text_completion"


def call(gw, user: str, kind: str = "chat", stream: bool = False, headers: dict | None = None, api_key: str | None = None,
         model: str = MODEL, messages=None, **kw) -> Call:
    client = gw.client(api_key=api_key) if api_key else gw.client()
    t0 = time.time_ns()
    if kind == "chat":
        raw = client.chat.completions.with_raw_response.create(model=model, messages=messages or MESSAGES, user=user,
                                                               stream=stream, extra_headers=headers or {}, **kw)
    else:
        raw = client.completions.with_raw_response.create(model=model, prompt=PROMPT, user=user, stream=stream,
                                                          extra_headers=headers or {}, **kw)
    parsed = raw.parse()
    usage = None
    if stream:
        chunks = list(parsed)
        if kind == "chat":
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            text = "".join(c.choices[0].text for c in chunks if c.choices)
        usage = next((c.usage for c in chunks if c.usage), None)
    else:
        text = parsed.choices[0].message.content if kind == "chat" else parsed.choices[0].text
        usage = parsed.usage
    t1 = time.time_ns()
    assert raw.status_code == 200
    return Call(kind, stream, raw, t0, t1, text, usage, user)


def random_ids() -> tuple[str, str]:
    return os.urandom(16).hex(), os.urandom(8).hex()


def check_request_span(span: dict, c: Call, mock_port: int, input_tokens: int | None = None):
    """Everything the interface says of a successful request's span, in the normalised (decoded OTLP) form."""
    a = span["attributes"]
    assert span["name"] == f"{c.operation} {c.upstream_model}", span["name"]
    assert span["kind"] == "CLIENT", span["kind"]
    assert HEX32.match(span["trace_id"]) and span["trace_id"] != "0" * 32, span["trace_id"]
    assert HEX16.match(span["span_id"]) and span["span_id"] != "0" * 16, span["span_id"]
    assert span["status"]["code"] in ("UNSET", "OK"), span["status"]
    assert a["gen_ai.operation.name"] == c.operation
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == c.upstream_model
    assert a["gen_ai.response.model"] == c.upstream_model  # the mock names the model it was asked for
    prefix = "chatcmpl-mock" if c.kind == "chat" else "cmpl-mock"
    assert isinstance(a["gen_ai.response.id"], str) and a["gen_ai.response.id"].startswith(prefix), a.get("gen_ai.response.id")
    assert a["gen_ai.response.finish_reasons"] == ["stop"], a.get("gen_ai.response.finish_reasons")
    assert type(a["gen_ai.usage.output_tokens"]) is int and a["gen_ai.usage.output_tokens"] == OUTPUT_TOKENS, a
    assert type(a["gen_ai.usage.input_tokens"]) is int and a["gen_ai.usage.input_tokens"] >= 1, a
    if input_tokens is not None:
        assert a["gen_ai.usage.input_tokens"] == input_tokens, (a["gen_ai.usage.input_tokens"], input_tokens)
    assert a["gen_ai.request.stream"] is c.stream, a.get("gen_ai.request.stream")
    duration_s = (span["end_ns"] - span["start_ns"]) / 1e9
    if c.stream:
        ttfc = a["gen_ai.response.time_to_first_chunk"]
        assert type(ttfc) is float and 0 < ttfc <= duration_s + 1e-6, (ttfc, duration_s)
        assert ttfc >= MOCK_LATENCY_MS / 1000 * 0.9, ttfc  # the first chunk comes after the mock's latency
    else:
        assert "gen_ai.response.time_to_first_chunk" not in a, a
    assert a["server.address"] == "127.0.0.1", a.get("server.address")
    assert type(a["server.port"]) is int and a["server.port"] == mock_port, a.get("server.port")
    assert a["bakeoff.experiment"] == EXPERIMENT
    assert a["bakeoff.variant"] == c.variant
    assert a["bakeoff.request_id"] == c.request_id
    assert a.get("bakeoff.qa") in (None, False), a.get("bakeoff.qa")
    assert "error.type" not in a, a
    for key in CONTENT_KEYS:
        assert key not in a, (key, a)
    # The span covers the request: inside the client's window, and at least as long as the upstream took.
    slack = 5_000_000  # 5 ms: clock reads on either side
    assert c.t0 - slack <= span["start_ns"] <= span["end_ns"] <= c.t1 + slack, (c.t0, span["start_ns"], span["end_ns"], c.t1)
    assert duration_s >= MOCK_LATENCY_MS / 1000 * 0.9, duration_s


# --- Phoenix ---------------------------------------------------------------------------------------------------------

def test_spans_land_in_phoenix_with_the_genai_attributes(procs, tmp_path, mock, users, phoenix):
    """Chat and completions, streamed and not, through a real Phoenix: its REST API shows each request's span in the
    project named by the resource attribute, with the attributes Phoenix's GenAI view reads."""
    project = f"bakeoff-e2e-{os.urandom(3).hex()}"
    gw = gateway(procs, tmp_path, mock, otlp_block(phoenix.url, resource_attributes={"openinference.project.name": project}))
    conv = "conv-phoenix-1"
    calls = [
        call(gw, users["control"][0], "chat", headers={"X-Bakeoff-Conversation": conv}),
        call(gw, users["treatment"][0], "chat", stream=True, stream_options={"include_usage": True}),
        call(gw, users["treatment"][1], "chat", stream=True),  # the client asks for no usage; the gateway still counts
        call(gw, users["control"][1], "completions"),
        call(gw, users["treatment"][2], "completions", stream=True, stream_options={"include_usage": True}),
    ]
    spans = phoenix.wait_for_spans(project, len(calls))
    assert len(spans) == len(calls), [s["name"] for s in spans]
    got = {s["attributes"].get("bakeoff.request_id"): s for s in spans}
    assert set(got) == {c.request_id for c in calls}, got.keys()
    trace_ids = set()
    for c in calls:
        s, a = got[c.request_id], got[c.request_id]["attributes"]
        assert s["name"] == f"{c.operation} {c.upstream_model}", s["name"]
        assert s["status_code"] != "ERROR", s
        assert not s["parent_id"], s["parent_id"]
        trace_ids.add(s["context"]["trace_id"])
        assert a["gen_ai.operation.name"] == c.operation and a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.request.model"] == c.upstream_model and a["gen_ai.response.model"] == c.upstream_model
        assert a["gen_ai.usage.output_tokens"] == OUTPUT_TOKENS, a
        if c.usage is not None:
            assert a["gen_ai.usage.input_tokens"] == c.usage.prompt_tokens, (a, c.usage)
        assert a["gen_ai.response.finish_reasons"] == ["stop"]
        assert a["gen_ai.request.stream"] is c.stream
        assert ("gen_ai.response.time_to_first_chunk" in a) is c.stream, a
        assert a["bakeoff.experiment"] == EXPERIMENT and a["bakeoff.variant"] == c.variant
        assert a["gen_ai.conversation.id"] == (conv if c is calls[0] else c.request_id), a.get("gen_ai.conversation.id")
        assert a["server.port"] == int(mock.base_url.rsplit(":", 1)[1].split("/")[0])
        for key in CONTENT_KEYS:
            assert key not in a, (key, a)
    assert len(trace_ids) == len(calls)  # no traceparent: a new trace each
    # Nothing went to the default project.
    assert not [s for s in phoenix.spans("default") if s["attributes"].get("bakeoff.request_id") in got]


# --- the spans, exactly (capturing collector, protobuf) ----------------------------------------------------------------

def test_request_spans_have_every_attribute_with_its_type(procs, tmp_path, mock, users, collector):
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url, resource_attributes={"deployment.environment": "e2e"}))
    mock_port = int(mock.base_url.rsplit(":", 1)[1].split("/")[0])
    calls = [
        call(gw, users["control"][2], "chat"),
        call(gw, users["treatment"][3], "chat", stream=True, stream_options={"include_usage": True}),
        call(gw, users["control"][3], "completions"),
        call(gw, users["treatment"][4], "completions", stream=True),
    ]
    spans = by_request_id(collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id"), len(calls)))
    assert set(spans) == {c.request_id for c in calls}
    for c in calls:
        check_request_span(spans[c.request_id], c, mock_port, c.usage.prompt_tokens if c.usage else None)
        assert spans[c.request_id]["parent_span_id"] == ""  # no traceparent: a root span
        assert spans[c.request_id]["attributes"]["gen_ai.conversation.id"] == c.request_id
    assert len({s["trace_id"] for s in spans.values()}) == len(calls)
    assert len({s["span_id"] for s in spans.values()}) == len(calls)
    for s in spans.values():
        assert s["resource"]["service.name"] == "bakeoff", s["resource"]           # the default
        assert s["resource"]["deployment.environment"] == "e2e", s["resource"]     # resource_attributes
    for p in collector.accepted_posts():
        assert p.path == "/v1/traces", p.path  # a base URL without a path gets /v1/traces
        assert p.encoding == "protobuf" and p.content_type == "application/x-protobuf", p.headers  # the default


def test_finish_reason_length_and_qa_requests(procs, tmp_path, mock, users, collector):
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url))
    short = call(gw, users["control"][4], "chat", max_tokens=3)
    forced = call(gw, users["control"][5], "chat", headers={"X-Bakeoff-Force-Variant": "treatment"}, api_key=ADMIN_KEY)
    assert forced.variant == "treatment"
    spans = by_request_id(collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id"), 2))
    a = spans[short.request_id]["attributes"]
    assert a["gen_ai.response.finish_reasons"] == ["length"] and a["gen_ai.usage.output_tokens"] == 3, a
    assert a.get("bakeoff.qa") in (None, False), a
    q = spans[forced.request_id]["attributes"]
    assert q["bakeoff.qa"] is True, q
    assert q["bakeoff.variant"] == "treatment" and q["gen_ai.request.model"] == f"{MODEL}-v2", q


def test_response_model_is_the_one_the_upstream_names_and_unknown_usage_is_left_out(procs, tmp_path, collector, otlp_gateway):
    """gen_ai.request.model is what the gateway sent; gen_ai.response.model what the answer says; tokens the upstream
    did not report are absent, not 0."""
    named = FakeUpstream(response_model="snapshot-2025-06-01", usage=True)
    silent = FakeUpstream(response_model="snapshot-2025-06-01", usage=False, finish_reason=None)
    try:
        exps = [split_experiment(EXPERIMENT, MODEL, named.base_url, named.base_url),
                split_experiment("otlp-nousage", "nousage-bot", silent.base_url, silent.base_url)]
        gw = gateway(procs, tmp_path, exps, otlp_block(collector.url))
        c1 = call(gw, "u-named", "chat")
        c2 = call(gw, "u-named-2", "completions", stream=True)
        c3 = call(gw, "u-silent", "chat", model="nousage-bot")
        c4 = call(gw, "u-silent-2", "chat", model="nousage-bot", stream=True)
        spans = by_request_id(collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id"), 4))
        for c in (c1, c2):
            a = spans[c.request_id]["attributes"]
            assert a["gen_ai.request.model"] == c.upstream_model, a
            assert spans[c.request_id]["name"] == f"{c.operation} {c.upstream_model}"
            assert a["gen_ai.response.model"] == "snapshot-2025-06-01", a
            assert a["gen_ai.response.id"].endswith(tuple(f"-fake{i}" for i in range(1, 5))), a
            assert a["gen_ai.usage.input_tokens"] == 9 and a["gen_ai.usage.output_tokens"] == 6, a
            assert a["server.port"] == named.port
        for c in (c3, c4):
            a = spans[c.request_id]["attributes"]
            assert "gen_ai.usage.input_tokens" not in a and "gen_ai.usage.output_tokens" not in a, a
            assert "gen_ai.response.finish_reasons" not in a, a
            assert a["gen_ai.response.model"] == "snapshot-2025-06-01", a
    finally:
        named.close()
        silent.close()


# --- encodings, headers, endpoints -------------------------------------------------------------------------------------

def _shape(spans: list[dict]) -> list:
    """What must not depend on the encoding: everything but ids, times and per-request values."""
    volatile = {"bakeoff.request_id", "gen_ai.response.id", "gen_ai.conversation.id", "gen_ai.response.time_to_first_chunk"}
    out = []
    for s in spans:
        attrs = {k: (type(v).__name__ if k in volatile else v) for k, v in s["attributes"].items()}
        resource = {k: (type(v).__name__ if k in ("service.instance.id", "process.pid") else v) for k, v in s["resource"].items()}
        out.append((s["name"], s["kind"], s["status"]["code"], bool(s["parent_span_id"]), len(s["links"]),
                    json.dumps(attrs, sort_keys=True), json.dumps(resource, sort_keys=True), s["scope"]["name"]))
    return sorted(out)


def test_json_protocol_gives_the_same_spans_as_protobuf(procs, tmp_path, mock, users, collector):
    from .otlp_helpers import CaptureCollector
    json_collector = CaptureCollector()
    try:
        results = {}
        for protocol, c in (("http/protobuf", collector), ("http/json", json_collector)):
            gw = gateway(procs, tmp_path, mock, otlp_block(c.url, protocol=protocol))
            a = call(gw, users["control"][6], "chat", headers={"X-Bakeoff-Conversation": "conv-enc"})
            call(gw, users["treatment"][5], "chat", stream=True, stream_options={"include_usage": True})
            call(gw, users["control"][6], "completions", headers={"X-Bakeoff-Conversation": "conv-enc"})
            status, _, body = gw.post("/v1/feedback", {"request_id": a.request_id, "user": users["control"][6],
                                                       "name": "csat", "value": 4})
            assert status == 200, body
            spans = c.wait_for_spans(count=4)
            results[protocol] = (spans, a)
        pb, js = results["http/protobuf"][0], results["http/json"][0]
        assert _shape(js) == _shape(pb)
        for p in json_collector.posts:
            assert p.content_type == "application/json" and p.encoding == "json", p.headers
            assert p.problems == [], p.problems  # hex ids, integer enums, 64-bit integers as strings, camelCase
            assert p.path == "/v1/traces"
        for p in collector.posts:
            assert p.encoding == "protobuf"
        # Times are nanoseconds since the epoch in both (a millisecond or microsecond mix-up shows here).
        first = results["http/json"][1]
        (req,) = [s for s in js if s["attributes"].get("bakeoff.request_id") == first.request_id and not s["name"].startswith("feedback")]
        assert first.t0 - 5_000_000 <= req["start_ns"] <= req["end_ns"] <= first.t1 + 5_000_000, (first.t0, req["start_ns"], first.t1)
    finally:
        json_collector.close()


@pytest.mark.parametrize("suffix, path", [("", "/v1/traces"), ("/", "/v1/traces"), ("/custom/ingest/traces", "/custom/ingest/traces")])
def test_endpoint_path_rule(procs, tmp_path, mock, users, collector, suffix, path):
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url + suffix))
    call(gw, users["control"][0], "chat")
    collector.wait_for_spans()
    assert {p.path for p in collector.posts} == {path}


def test_headers_from_headers_env_arrive_url_decoded_and_stay_secret(procs, tmp_path, mock, users, collector):
    secret = "s3cr3t+token/42"
    env = {"BAKEOFF_TEST_OTLP_HEADERS": "Authorization=Bearer%20s3cr3t%2Btoken%2F42, X-Tenant=acme%2Cco,x-empty-ok=v"}
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url, headers_env="BAKEOFF_TEST_OTLP_HEADERS"), env=env)
    call(gw, users["control"][1], "chat")
    collector.wait_for_spans()
    for p in collector.posts:
        assert p.headers.get("authorization") == f"Bearer {secret}", p.headers
        assert p.headers.get("x-tenant") == "acme,co", p.headers
        assert p.headers.get("x-empty-ok") == "v", p.headers
    assert gw.stop() == 0
    assert secret not in gw.process.stderr and "s3cr3t%2B" not in gw.process.stderr, gw.process.stderr


def test_headers_env_naming_an_unset_variable_is_a_config_error(tmp_path, mock, otlp_gateway):
    config = {"listen": "127.0.0.1:0", "store": {"path": str(tmp_path / "s.db")},
              "otlp": {"endpoint": "http://127.0.0.1:4318", "headers_env": "BAKEOFF_TEST_OTLP_UNSET_HEADERS"},
              "experiments": experiments(mock)}
    r = run_serve(config, tmp_path)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "otlp.headers_env" in r.stderr and "BAKEOFF_TEST_OTLP_UNSET_HEADERS" in r.stderr, r.stderr


# --- the standard environment variables ---------------------------------------------------------------------------------

def test_env_only_configuration(procs, tmp_path, mock, users, collector):
    """No otlp block: OTEL_EXPORTER_OTLP_ENDPOINT is a base (+ /v1/traces), and the other OTEL_* variables apply."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url + "/base",
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-env-header=a%20b",
           "OTEL_SERVICE_NAME": "svc-from-env",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=e2e-env,team=ml",
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    gw = gateway(procs, tmp_path, mock, env=env)
    c = call(gw, users["control"][2], "chat")
    (span,) = collector.wait_for_spans()
    assert span["attributes"]["bakeoff.request_id"] == c.request_id
    (p,) = collector.posts
    assert p.path == "/base/v1/traces" and p.encoding == "json" and p.problems == [], (p.path, p.encoding, p.problems)
    assert p.headers.get("x-env-header") == "a b", p.headers
    assert span["resource"]["service.name"] == "svc-from-env", span["resource"]
    assert span["resource"]["deployment.environment"] == "e2e-env" and span["resource"]["team"] == "ml", span["resource"]


def test_signal_specific_variables_win(procs, tmp_path, mock, users, collector):
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is (no /v1/traces), and the TRACES_ variables beat the general ones."""
    from .otlp_helpers import CaptureCollector
    other = CaptureCollector()
    try:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": other.url,
               "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.url + "/exact/traces/path",
               "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
               "OTEL_EXPORTER_OTLP_HEADERS": "x-which=general", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-which=traces",
               "OTEL_BSP_SCHEDULE_DELAY": "100"}
        gw = gateway(procs, tmp_path, mock, env=env)
        call(gw, users["control"][3], "chat")
        collector.wait_for_spans()
        (p,) = collector.posts
        assert p.path == "/exact/traces/path" and p.encoding == "protobuf", (p.path, p.encoding)
        assert p.headers.get("x-which") == "traces", p.headers
        assert gw.stop() == 0
        assert other.posts == []
    finally:
        other.close()


def test_config_block_beats_env_and_env_fills_the_keys_it_leaves_out(procs, tmp_path, mock, users, collector):
    from .otlp_helpers import CaptureCollector
    other = CaptureCollector()
    try:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": other.url, "OTEL_SERVICE_NAME": "svc-env",
               "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
        gw = gateway(procs, tmp_path, mock, otlp_block(collector.url, service_name="svc-config"), env=env)
        call(gw, users["control"][4], "chat")
        (span,) = collector.wait_for_spans()
        assert span["resource"]["service.name"] == "svc-config"
        assert collector.posts[0].encoding == "json"  # protocol left out of the block: from the environment
        assert gw.stop() == 0
        assert other.posts == []
    finally:
        other.close()


@pytest.mark.parametrize("switch", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}])
def test_env_switches_turn_export_off(procs, tmp_path, mock, users, collector, switch):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100", **switch}
    gw = gateway(procs, tmp_path, mock, env=env)
    call(gw, users["control"][5], "chat")
    call(gw, users["treatment"][0], "chat", stream=True)
    assert gw.stop() == 0  # a stop flushes what is queued: anything exported would be here now
    assert collector.posts == [], [p.path for p in collector.posts]


# --- W3C trace context -----------------------------------------------------------------------------------------------

def _upstream_traceparents(mock, trace_id: str) -> list[str]:
    return [r["headers"].get("traceparent", "") for r in mock.requests()
            if trace_id in r["headers"].get("traceparent", "")]


def test_traceparent_is_continued_and_forwarded_with_the_gateways_span_as_parent(procs, tmp_path, mock, users, collector):
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url))
    calls = []
    for kind, stream in (("chat", False), ("chat", True), ("completions", False)):
        tid, pid = random_ids()
        c = call(gw, users["treatment"][1], kind, stream=stream,
                 headers={"traceparent": f"00-{tid}-{pid}-01", "tracestate": f"vendor=v{tid[:6]},other=x"})
        calls.append((c, tid, pid))
    spans = by_request_id(collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id"), len(calls)))
    for c, tid, pid in calls:
        s = spans[c.request_id]
        assert s["trace_id"] == tid, (s["trace_id"], tid)
        assert s["parent_span_id"] == pid, (s["parent_span_id"], pid)
        assert s["kind"] == "CLIENT"
        forwarded = _upstream_traceparents(mock, tid)
        assert forwarded == [f"00-{tid}-{s['span_id']}-01"], forwarded  # exactly one header, the gateway's span as parent
        (upstream,) = [r for r in mock.requests() if tid in r["headers"].get("traceparent", "")]
        assert upstream["headers"].get("tracestate") == f"vendor=v{tid[:6]},other=x", upstream["headers"]  # as it came


def test_without_export_a_callers_traceparent_is_still_passed_on(procs, tmp_path, mock, users):
    """Not in the brief's interface; the README says so."""
    gw = gateway(procs, tmp_path, mock)  # no otlp block, no OTEL_* variables
    tid, pid = random_ids()
    call(gw, users["control"][0], "chat", headers={"traceparent": f"00-{tid}-{pid}-01"})
    assert _upstream_traceparents(mock, tid) == [f"00-{tid}-{pid}-01"]


def test_without_traceparent_the_upstream_joins_the_gateways_new_trace(procs, tmp_path, mock, users, collector):
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url))
    mock.clear()
    c = call(gw, users["control"][6], "chat")
    (s,) = collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id") == c.request_id)
    forwarded = [r["headers"].get("traceparent") for r in mock.requests()]
    assert forwarded == [f"00-{s['trace_id']}-{s['span_id']}-01"], (forwarded, s["trace_id"], s["span_id"])


def test_unsampled_parent_exports_nothing_and_tells_the_upstream(procs, tmp_path, mock, users, collector):
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url))
    tid, pid = random_ids()
    unsampled = call(gw, users["control"][7], "chat", headers={"traceparent": f"00-{tid}-{pid}-00"})
    unsampled_stream = call(gw, users["control"][7], "chat", stream=True, headers={"traceparent": f"00-{tid}-{pid}-00"})
    # Flags are a bit field: 03 is sampled (plus W3C level 2's random-trace-id bit).
    tid3, pid3 = random_ids()
    sampled = call(gw, users["control"][7], "chat", headers={"traceparent": f"00-{tid3}-{pid3}-03"})
    assert gw.stop() == 0  # flushes: whatever would be exported is at the collector now
    spans = collector.spans()
    assert [s for s in spans if s["trace_id"] == tid] == [], "a span was exported for an unsampled parent"
    ids = {s["attributes"].get("bakeoff.request_id") for s in spans}
    assert unsampled.request_id not in ids and unsampled_stream.request_id not in ids
    assert sampled.request_id in ids, ids
    (s3,) = [s for s in spans if s["attributes"].get("bakeoff.request_id") == sampled.request_id]
    assert s3["trace_id"] == tid3 and s3["parent_span_id"] == pid3
    # The upstream still learns the trace and the decision not to sample (W3C: propagate sampled=0).
    for tp in _upstream_traceparents(mock, tid):
        m = TRACEPARENT.match(tp)
        assert m and m.group(1) == tid and m.group(3) == "00", tp
    assert len(_upstream_traceparents(mock, tid)) == 2


INVALID_TRACEPARENTS = {
    "zero trace id": "00-{z32}-{pid}-01",
    "zero parent id": "00-{tid}-{z16}-01",
    "version ff": "ff-{tid}-{pid}-01",
    "upper-case hex": "00-{TID}-{pid}-01",
    "short trace id": "00-{tid31}-{pid}-01",
    "bad flags": "00-{tid}-{pid}-0g",
    "version 00 with extra field": "00-{tid}-{pid}-01-extra",
    "garbage": "not a traceparent {tid}",
}


def test_invalid_traceparent_starts_a_new_trace(procs, tmp_path, mock, users, collector):
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url))
    sent = {}
    for label, template in INVALID_TRACEPARENTS.items():
        tid, pid = random_ids()
        header = template.format(z32="0" * 32, z16="0" * 16, tid=tid, pid=pid, TID=tid.upper(), tid31=tid[:31])
        c = call(gw, users["treatment"][2], "chat", headers={"traceparent": header})
        sent[c.request_id] = (label, header, tid, pid)
    spans = by_request_id(collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id") in sent, len(sent)))
    upstream = {r["headers"].get("traceparent") for r in mock.requests()}
    problems = []
    for rid, (label, header, tid, pid) in sent.items():
        s = spans[rid]
        if s["trace_id"] in (tid, tid.upper(), tid[:31]) or s["parent_span_id"] in (pid, "0" * 16) or s["trace_id"] == "0" * 32:
            problems.append(f"{label} ({header}): span continued it: trace {s['trace_id']} parent {s['parent_span_id']}")
        elif s["parent_span_id"]:
            problems.append(f"{label}: a new trace has no parent, got {s['parent_span_id']}")
        if f"00-{s['trace_id']}-{s['span_id']}-01" not in upstream:
            problems.append(f"{label}: the upstream did not get the new trace's traceparent")
        if header in upstream:
            problems.append(f"{label}: the invalid header was forwarded as is")
    assert problems == []


# --- feedback ---------------------------------------------------------------------------------------------------------

def test_feedback_span_is_a_child_of_the_request_span_with_a_link(procs, tmp_path, mock, users, collector):
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url))
    user = users["treatment"][3]
    tid, pid = random_ids()
    c = call(gw, user, "chat", headers={"traceparent": f"00-{tid}-{pid}-01", "X-Bakeoff-Conversation": "conv-fb-otlp"})
    for name, value in (("thumbs_up", 1), ("task_completed", True), ("csat", 4)):
        status, _, body = gw.post("/v1/feedback", {"request_id": c.request_id, "user": user, "name": name, "value": value})
        assert status == 200, body
    # Refused feedback makes no span.
    status, _, _ = gw.post("/v1/feedback", {"request_id": "req_" + "0" * 24, "user": user, "name": "csat", "value": 3})
    assert status == 404
    status, _, _ = gw.post("/v1/feedback", {"request_id": c.request_id, "user": "someone-else", "name": "csat", "value": 2})
    assert status == 403
    spans = collector.wait_for_spans(count=4)
    assert gw.stop() == 0
    spans = collector.spans()
    (req,) = [s for s in spans if s["name"].startswith("chat ")]
    feedback = {s["name"]: s for s in spans if s["name"].startswith("feedback ")}
    assert set(feedback) == {"feedback thumbs_up", "feedback task_completed", "feedback csat"}, [s["name"] for s in spans]
    for name, expected in (("thumbs_up", 1.0), ("task_completed", 1.0), ("csat", 4.0)):
        f = feedback[f"feedback {name}"]
        a = f["attributes"]
        assert f["kind"] == "INTERNAL", f["kind"]
        assert f["trace_id"] == req["trace_id"] == tid, (f["trace_id"], req["trace_id"])
        assert f["parent_span_id"] == req["span_id"], (f["parent_span_id"], req["span_id"])
        assert [(l["trace_id"], l["span_id"]) for l in f["links"]] == [(req["trace_id"], req["span_id"])], f["links"]
        assert f["span_id"] not in (req["span_id"], pid)
        assert a["bakeoff.experiment"] == EXPERIMENT and a["bakeoff.variant"] == c.variant
        assert a["bakeoff.request_id"] == c.request_id
        assert a["bakeoff.feedback.name"] == name
        assert type(a["bakeoff.feedback.value"]) is float and a["bakeoff.feedback.value"] == expected, a
        assert a["gen_ai.conversation.id"] == "conv-fb-otlp"
        assert f["start_ns"] >= req["end_ns"] - 1_000_000


def test_conversation_feedback_hangs_under_the_conversations_latest_request(procs, tmp_path, mock, users, collector):
    """Not in the brief's interface; the README says so."""
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url))
    user = users["control"][0]
    first = call(gw, user, "chat", headers={"X-Bakeoff-Conversation": "conv-fb-whole"})
    latest = call(gw, user, "chat", headers={"X-Bakeoff-Conversation": "conv-fb-whole"})
    status, _, body = gw.post("/v1/feedback", {"conversation_id": "conv-fb-whole", "user": user, "name": "csat", "value": 5})
    assert status == 200, body
    (f,) = collector.wait_for_spans(lambda s: s["name"] == "feedback csat")
    spans = by_request_id(collector.wait_for_spans(lambda s: s["name"].startswith("chat "), 2))
    req = spans[latest.request_id]
    a = f["attributes"]
    assert f["kind"] == "INTERNAL"
    assert a["gen_ai.conversation.id"] == "conv-fb-whole" and a["bakeoff.feedback.value"] == 5.0, a
    assert a["bakeoff.experiment"] == EXPERIMENT and a["bakeoff.variant"] == latest.variant, a
    assert (f["trace_id"], f["parent_span_id"]) == (req["trace_id"], req["span_id"]), (f, req)
    assert [(l["trace_id"], l["span_id"]) for l in f["links"]] == [(req["trace_id"], req["span_id"])]
    assert spans[first.request_id]["span_id"] != req["span_id"]


def test_feedback_after_a_restart_still_finds_its_requests_span(procs, tmp_path, mock, users, collector):
    """Not in the brief's interface; the README says request span ids derive from the request id, so feedback finds
    its request's span after a restart (a request that came without a traceparent: its trace too)."""
    exps = experiments(mock)
    directory = tmp_path / "restart"
    first = start_gateway(procs, directory, exps, otlp=otlp_block(collector.url))
    user = users["treatment"][6]
    c = call(first, user, "chat")
    assert first.stop() == 0
    (req,) = collector.wait_for_spans(lambda s: s["name"].startswith("chat "))
    second = start_gateway(procs, directory, exps, otlp=otlp_block(collector.url))
    status, _, body = second.post("/v1/feedback", {"request_id": c.request_id, "user": user, "name": "thumbs_up", "value": 1})
    assert status == 200, body
    (f,) = collector.wait_for_spans(lambda s: s["name"] == "feedback thumbs_up")
    assert f["attributes"]["bakeoff.request_id"] == c.request_id
    assert f["parent_span_id"] == req["span_id"], (f["parent_span_id"], req["span_id"])
    assert f["trace_id"] == req["trace_id"], (f["trace_id"], req["trace_id"])


# --- content ---------------------------------------------------------------------------------------------------------

def test_content_only_with_log_content(procs, tmp_path, mock, users, collector):
    content_users = users_in("otlp-content", "control", 2, prefix="content")
    exps = experiments(mock) + [split_experiment("otlp-content", "content-bot", mock.base_url, mock.base_url, log_content=True)]
    gw = gateway(procs, tmp_path, exps, otlp_block(collector.url))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my order \u2603?"}]
    off = call(gw, users["control"][1], "chat", messages=messages)
    on = call(gw, content_users[0], "chat", model="content-bot", messages=messages)
    on_stream = call(gw, content_users[1], "chat", model="content-bot", messages=messages, stream=True)
    spans = by_request_id(collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id"), 3))
    a = spans[off.request_id]["attributes"]
    for key in CONTENT_KEYS:
        assert key not in a, (key, a[key])
    for c in (on, on_stream):
        a = spans[c.request_id]["attributes"]
        assert a["bakeoff.user_id"] == c.user
        inputs = json.loads(a["gen_ai.input.messages"])
        outputs = json.loads(a["gen_ai.output.messages"])
        assert {"role": "user", "parts": [{"type": "text", "content": "Where is my order \u2603?"}]} in \
            [{k: m[k] for k in ("role", "parts") if k in m} for m in inputs], inputs
        assert {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]} in \
            [{k: m[k] for k in ("role", "parts") if k in m} for m in inputs], inputs
        assert len(outputs) == 1 and outputs[0]["role"] == "assistant", outputs
        assert outputs[0]["parts"] == [{"type": "text", "content": c.text}], (outputs, c.text)


# --- failures: the upstream --------------------------------------------------------------------------------------------

def test_upstream_failures_set_error_type_and_status(procs, tmp_path, collector, otlp_gateway):
    failing = start_mock(procs, error_rate=1.0, latency_ms=0)
    slow = start_mock(procs, latency_ms=3000)
    exps = [split_experiment("otlp-err", "err-bot", failing.base_url, failing.base_url),
            split_experiment("otlp-down", "down-bot", f"http://127.0.0.1:{closed_port()}/v1", f"http://127.0.0.1:{closed_port()}/v1"),
            split_experiment("otlp-slow", "slow-bot", slow.base_url, slow.base_url,
                             control_upstream={"timeout_ms": 300}, treatment_upstream={"timeout_ms": 300})]
    gw = gateway(procs, tmp_path, exps, otlp_block(collector.url))
    client = gw.client()
    seen = {}
    for model, user in (("err-bot", "e1"), ("err-bot", "e2"), ("down-bot", "d1"), ("slow-bot", "s1")):
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model=model, messages=MESSAGES, user=user)
        rid = e.value.response.headers.get("x-bakeoff-request-id")
        assert rid, e.value.response.headers
        seen[rid] = (model, e.value.status_code)
    spans = by_request_id(collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id") in seen, len(seen)))
    statuses = sorted(code for model, code in seen.values() if model == "err-bot")
    assert statuses == [429, 500], statuses
    for rid, (model, code) in seen.items():
        s = spans[rid]
        assert s["status"]["code"] == "ERROR", (model, s["status"])
        expected = {"err-bot": str(code), "down-bot": ERROR_TYPES["unreachable"], "slow-bot": ERROR_TYPES["timeout"]}[model]
        assert s["attributes"].get("error.type") == expected, (model, code, s["attributes"].get("error.type"))
        assert s["kind"] == "CLIENT" and s["name"].startswith("chat ")


def test_client_that_goes_away_mid_stream(procs, tmp_path, collector, otlp_gateway):
    slow = start_mock(procs, latency_ms=0, tokens_per_second=10, output_tokens=40)
    gw = gateway(procs, tmp_path, [split_experiment("otlp-gone", "gone-bot", slow.base_url, slow.base_url)],
                 otlp_block(collector.url))
    raw = gw.client().chat.completions.with_raw_response.create(model="gone-bot", messages=MESSAGES, user="g1", stream=True)
    rid = raw.headers["x-bakeoff-request-id"]
    stream = raw.parse()
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    (s,) = collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id") == rid, timeout=20)
    assert s["status"]["code"] == "ERROR", s["status"]
    assert s["attributes"].get("error.type") == ERROR_TYPES["client went away"], s["attributes"].get("error.type")
    assert s["end_ns"] - s["start_ns"] < 3_000_000_000  # ended when the client left, not when the 4 s answer would have


# --- failures: the collector -------------------------------------------------------------------------------------------

OTLP_FAILURE_LINE = re.compile(r"(?i)(otlp|trace|span).*(fail|error|refused|unreachable|timed out|timeout|503|dropp)")


def _timed_calls(gw, users, n: int) -> list[float]:
    durations = []
    for i in range(n):
        t = time.monotonic()
        call(gw, users["control"][i % 8], "chat")
        durations.append(time.monotonic() - t)
    return durations


def test_collector_down_clients_unaffected_counted_and_logged_rate_limited(procs, tmp_path, mock, users, otlp_gateway):
    gw = gateway(procs, tmp_path, mock, otlp_block(f"http://127.0.0.1:{closed_port()}", export_interval_ms=100, timeout_ms=1000))
    durations = []
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:  # exports fail every ~100 ms for 2.5 s
        durations += _timed_calls(gw, users, 2)
        time.sleep(0.1)
    assert max(durations) < 2.0 and statistics.median(durations) < 0.5, durations
    m = wait_until(lambda: (lambda m: m if (m["bakeoff_otlp_export_failures_total"] or 0) >= 3 else None)(otlp_metrics(gw)),
                   timeout=10, message="export failures counted")
    assert (m["bakeoff_otlp_spans_exported_total"] or 0) == 0, m
    assert m["bakeoff_otlp_queue_depth"] is not None, m
    status, _, body = gw.get("/healthz")
    assert status == 200, body  # export failing never makes the gateway unhealthy...
    assert json.loads(body).get("status") == "degraded", body  # ...but says so (README, not the brief)
    assert metric_value(gw.metrics(), "bakeoff_otlp_healthy") == 0
    lines = [l for l in gw.process.lines if OTLP_FAILURE_LINE.search(l)]
    assert lines, gw.process.stderr
    assert len(lines) <= 2, f"{m['bakeoff_otlp_export_failures_total']} failures logged in {len(lines)} lines:\n" + "\n".join(lines)
    started = time.monotonic()
    assert gw.stop() == 0
    assert time.monotonic() - started < 15, "the stop waited too long on a collector that is down"
    final = [l for l in gw.process.lines if OTLP_FAILURE_LINE.search(l)]
    assert final, gw.process.stderr


@pytest.mark.parametrize("status, retry_after", [(503, None), (429, "1")])
def test_collector_refusing_for_a_while_then_recovering(procs, tmp_path, mock, users, collector, status, retry_after):
    collector.fail_next(1, status, retry_after=retry_after)
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url, export_interval_ms=100))
    calls = [call(gw, users["treatment"][i], "chat") for i in range(3)]
    m = wait_until(lambda: (lambda m: m if (m["bakeoff_otlp_export_failures_total"] or 0) >= 1 else None)(otlp_metrics(gw)),
                   timeout=10, message="the refused export counted")
    # Retried (OTLP: 429 and 503 are retryable): every span arrives once, none twice.
    spans = collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id"), len(calls), timeout=20)
    rids = [s["attributes"]["bakeoff.request_id"] for s in spans]
    assert sorted(rids) == sorted(c.request_id for c in calls), rids
    m = wait_until(lambda: (lambda m: m if (m["bakeoff_otlp_spans_exported_total"] or 0) >= len(calls) else None)(otlp_metrics(gw)),
                   timeout=10, message="exported spans counted")
    assert m["bakeoff_otlp_spans_exported_total"] == len(calls), m
    assert (m["bakeoff_otlp_spans_dropped_total"] or 0) == 0, m
    assert any(not p.accepted for p in collector.posts)
    assert metric_value(gw.metrics(), "bakeoff_otlp_healthy") == 1  # healthy again after a success (README)
    assert json.loads(gw.get("/healthz")[2]).get("status") == "ok"


def _configured(procs, tmp_path, mock, collector, where: str, settings: dict):
    """A gateway exporting to `collector` with `settings` ({otlp key: value}) from the otlp block, or from the
    standard variables only (no block)."""
    env_names = {"export_interval_ms": "OTEL_BSP_SCHEDULE_DELAY", "timeout_ms": "OTEL_EXPORTER_OTLP_TIMEOUT",
                 "batch_size": "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "queue_size": "OTEL_BSP_MAX_QUEUE_SIZE"}
    if where == "config":
        return gateway(procs, tmp_path, mock, otlp_block(collector.url, **settings))
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, **{env_names[k]: str(v) for k, v in settings.items()}}
    return gateway(procs, tmp_path, mock, env=env)


def test_collector_rejecting_a_batch_drops_it_without_retry(procs, tmp_path, mock, users, collector):
    """Not in the brief's interface; the README says so: 400 (like 401, 415) is final, unlike 429/503."""
    collector.fail_next(1, 400)
    gw = gateway(procs, tmp_path, mock, otlp_block(collector.url, export_interval_ms=100))
    call(gw, users["control"][1], "chat")
    m = wait_until(lambda: (lambda m: m if (m["bakeoff_otlp_spans_dropped_total"] or 0) >= 1 else None)(otlp_metrics(gw)),
                   timeout=10, message="the rejected span dropped")
    assert m["bakeoff_otlp_spans_dropped_total"] == 1 and m["bakeoff_otlp_export_failures_total"] == 1, m
    assert [p.status for p in collector.posts] == [400]  # dropped after one try: no retry came before the drop
    later = call(gw, users["control"][2], "chat")
    collector.wait_for_spans(lambda s: s["attributes"].get("bakeoff.request_id") == later.request_id)


@pytest.mark.parametrize("where", ["config", "env"])
def test_hanging_collector_does_not_slow_clients(procs, tmp_path, mock, users, collector, where):
    collector.hang()
    gw = _configured(procs, tmp_path, mock, collector, where, {"export_interval_ms": 100, "timeout_ms": 1000})
    started = time.monotonic()
    durations = _timed_calls(gw, users, 10)
    assert max(durations) < 1.0 and statistics.median(durations) < 0.3, durations
    collector.wait_for_posts(1)
    m = otlp_metrics(gw)
    assert m["bakeoff_otlp_spans_exported_total"] in (None, 0), m
    # The 1 s timeout, not the default 10 s, ends the hung export.
    wait_until(lambda: (otlp_metrics(gw)["bakeoff_otlp_export_failures_total"] or 0) >= 1, timeout=7,
               message="the timed-out export counted")
    assert time.monotonic() - started < 8
    collector.release()
    call(gw, users["control"][0], "chat")  # a span after the recovery, whatever became of the timed-out batch
    wait_until(lambda: (otlp_metrics(gw)["bakeoff_otlp_spans_exported_total"] or 0) >= 1, timeout=15,
               message="export resumed after the collector recovered")


@pytest.mark.parametrize("where", ["config", "env"])
def test_bounded_queue_drops_and_counts(procs, tmp_path, mock, users, collector, where):
    collector.hang()
    gw = _configured(procs, tmp_path, mock, collector, where,
                     {"export_interval_ms": 100, "timeout_ms": 5000, "batch_size": 2, "queue_size": 4})
    n = 16
    durations = _timed_calls(gw, users, n)
    assert max(durations) < 1.0, durations
    m = otlp_metrics(gw)
    assert m["bakeoff_otlp_queue_depth"] is not None and m["bakeoff_otlp_queue_depth"] <= 4, m
    # At most 4 queued and 2 in the hung export: the rest is dropped and counted.
    assert (m["bakeoff_otlp_spans_dropped_total"] or 0) >= n - 4 - 2, m
    collector.release()
    assert gw.stop() == 0
    assert len(collector.spans()) <= 4 + 2, len(collector.spans())
    assert all(len(p.spans) <= 2 for p in collector.posts), [len(p.spans) for p in collector.posts]  # batch_size


@pytest.mark.parametrize("where", ["config", "env"])
def test_queued_spans_are_flushed_on_sigterm(procs, tmp_path, mock, users, collector, where):
    gw = _configured(procs, tmp_path, mock, collector, where, {"export_interval_ms": 60_000})
    calls = [call(gw, users["control"][i], "chat") for i in range(3)]
    status, _, body = gw.post("/v1/feedback", {"request_id": calls[0].request_id, "user": calls[0].user,
                                               "name": "thumbs_up", "value": 1})
    assert status == 200, body
    time.sleep(1.5 if where == "env" else 0.5)  # env: past the default delay (1 s), so the variable is what holds them
    assert collector.posts == []  # the batch delay is a minute: nothing yet
    assert otlp_metrics(gw)["bakeoff_otlp_queue_depth"] == 4
    assert gw.stop() == 0
    names = sorted(s["name"] for s in collector.spans())
    assert names == sorted([f"chat {c.upstream_model}" for c in calls] + ["feedback thumbs_up"]), names


# --- config errors ---------------------------------------------------------------------------------------------------

def _config(tmp_path, mock, otlp) -> dict:
    return {"listen": "127.0.0.1:0", "store": {"path": str(tmp_path / "s.db")}, "otlp": otlp, "experiments": experiments(mock)}


@pytest.mark.parametrize("check", [False, True], ids=["serve", "serve --check"])
def test_unknown_otlp_key_is_a_config_error_with_its_path(tmp_path, mock, check):
    r = run_serve(_config(tmp_path, mock, {"endpoint": "http://127.0.0.1:4318", "protocl": "http/json"}), tmp_path, check=check)
    assert r.returncode != 0, (r.returncode, r.stderr)
    assert "otlp.protocl" in r.stderr and "unknown key" in r.stderr, r.stderr
    assert '"protocol"' in r.stderr, r.stderr  # the suggestion, as for every other typo


@pytest.mark.parametrize("check", [False, True], ids=["serve", "serve --check"])
def test_grpc_protocol_is_refused(tmp_path, mock, check):
    r = run_serve(_config(tmp_path, mock, {"endpoint": "http://127.0.0.1:4317", "protocol": "grpc"}), tmp_path, check=check)
    assert r.returncode != 0, (r.returncode, r.stderr)
    assert "otlp.protocol" in r.stderr and "http/protobuf" in r.stderr and "http/json" in r.stderr, r.stderr


def test_grpc_protocol_from_env_is_refused(tmp_path, mock, otlp_gateway):
    config = {"listen": "127.0.0.1:0", "store": {"path": str(tmp_path / "s.db")}, "experiments": experiments(mock)}
    r = run_serve(config, tmp_path, env_extra={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
                                               "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert r.returncode != 0, r.stderr
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in r.stderr and "http/protobuf" in r.stderr, r.stderr


@pytest.mark.parametrize("otlp, path", [
    ({"endpoint": "ftp://127.0.0.1:4318"}, "otlp.endpoint"),
    ({"endpoint": "http://127.0.0.1:4318", "timeout_ms": "fast"}, "otlp.timeout_ms"),
    ({"endpoint": "http://127.0.0.1:4318", "batch_size": 0}, "otlp.batch_size"),
])
def test_bad_otlp_values_name_their_path(tmp_path, mock, otlp, path):
    r = run_serve(_config(tmp_path, mock, otlp), tmp_path, check=True)
    assert r.returncode != 0, r.stdout + r.stderr
    assert path in r.stderr, r.stderr
