"""The OTLP harness itself, without the gateway: Phoenix takes a span built here with opentelemetry-proto and gives it
back through its REST API, and keeps every socket on loopback; the capturing collector decodes the protobuf and the
JSON encoding of one hand-made span into the same normalised span, flags JSON that departs from OTLP/JSON, and its
failure modes (503/429, hanging) behave as the gateway's tests assume.
"""
from __future__ import annotations

import gzip
import json
import os
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime

import pytest

from . import otlp_wire
from .otlp_helpers import listening_sockets, raw_request


def rich_span(**kw) -> dict:
    """A span using every value type and every part of a span (events, links, status, kvlist, bytes)."""
    return otlp_wire.make_span(
        name="chat harness-model",
        parent_span_id="00f067aa0ba902b7",
        start_ns=1_700_000_000_123_456_789, end_ns=1_700_000_000_987_654_321,
        attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "harness-model", "gen_ai.request.stream": True,
            "gen_ai.usage.input_tokens": 17, "gen_ai.usage.output_tokens": 2**53 + 1, "neg": -5,
            "gen_ai.response.time_to_first_chunk": 0.125, "gen_ai.response.finish_reasons": ["stop", "length"],
            "unicode": "h\u00e9llo \u2603 \"quoted\"\n", "empty": "", "nothing": None, "blob": b"\x00\xffbytes",
            "nested": {"a": 1, "b": [True, 2.5, "x"]},
        },
        resource={"service.name": "bakeoff-e2e", "openinference.project.name": "harness"},
        events=[{"name": "first_chunk", "time_ns": 1_700_000_000_500_000_000, "attributes": {"n": 1}}],
        links=[{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", "trace_state": "k=v",
                "attributes": {"bakeoff.link": "request"}}],
        status=("ERROR", "upstream said 500"),
        **kw)


def post(url: str, body: bytes, content_type: str, headers: dict | None = None, timeout: float = 10):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# --- the normalised form -------------------------------------------------------------------------------------------

def test_both_encodings_round_trip_to_the_same_span():
    span = rich_span()
    from_pb = otlp_wire.spans_from_protobuf(otlp_wire.encode_protobuf([span]))
    from_json, problems = otlp_wire.spans_from_json(otlp_wire.encode_json([span]))
    assert problems == []
    assert from_pb == [span]
    assert from_json == [span]
    # int and bool stay apart, and 2**53+1 survives (a float would round it).
    attrs = from_json[0]["attributes"]
    assert type(attrs["gen_ai.usage.input_tokens"]) is int and attrs["gen_ai.usage.output_tokens"] == 2**53 + 1
    assert type(attrs["gen_ai.request.stream"]) is bool and type(attrs["gen_ai.response.time_to_first_chunk"]) is float


def test_json_decoder_lists_what_an_exporter_should_not_send():
    span = rich_span()
    doc = json.loads(otlp_wire.encode_json([span]))
    s = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    s["kind"] = "SPAN_KIND_CLIENT"                              # enum by name
    s["startTimeUnixNano"] = int(s["startTimeUnixNano"])        # int64 as a number
    s["parent_span_id"] = s.pop("parentSpanId")                 # snake_case key
    spans, problems = otlp_wire.spans_from_json(doc)
    assert spans == [span]  # still readable
    assert any("enum as a name" in p for p in problems), problems
    assert any("startTimeUnixNano" in p and "JSON number" in p for p in problems), problems
    assert any("snake_case" in p and "parent_span_id" in p for p in problems), problems
    # Base64 ids (proto3's default mapping for bytes) are what OTLP/JSON forbids: unreadable as ids.
    s["traceId"] = "S/kvNXezTaajzpKdDg5HNg=="
    with pytest.raises(ValueError, match="hex"):
        otlp_wire.spans_from_json(doc)


# --- the capturing collector ---------------------------------------------------------------------------------------

def test_collector_decodes_protobuf_and_json_identically(collector):
    span = rich_span()
    for body, ctype in ((otlp_wire.encode_protobuf([span]), otlp_wire.PROTOBUF),
                        (otlp_wire.encode_json([span]), otlp_wire.JSON),
                        (gzip.compress(otlp_wire.encode_protobuf([span])), otlp_wire.PROTOBUF)):
        headers = {"Content-Encoding": "gzip"} if body[:2] == b"\x1f\x8b" else {}
        status, reply_headers, reply = post(collector.url + "/v1/traces", body, ctype, {"X-Test": "1", **headers})
        assert status == 200, reply
        assert reply_headers["Content-Type"] == ctype
    pb, js, gz = collector.posts
    assert (pb.encoding, js.encoding, gz.encoding) == ("protobuf", "json", "protobuf")
    assert pb.spans == js.spans == gz.spans == [span]
    assert js.problems == [] and pb.path == "/v1/traces" and pb.headers["x-test"] == "1"
    assert collector.spans() == [span, span, span]


def test_collector_refuses_other_content_types_and_garbage(collector):
    status, _, _ = post(collector.url + "/v1/traces", b"{}", "text/plain")
    assert status == 415
    status, _, _ = post(collector.url + "/v1/traces", b"\xff\xff\xff", otlp_wire.PROTOBUF)
    assert status == 400
    assert [p.accepted for p in collector.posts] == [False, False] and collector.spans() == []


def test_collector_fails_then_recovers_and_hangs_on_request(collector):
    body = otlp_wire.encode_protobuf([rich_span()])
    collector.fail_next(1, 503, retry_after="1")
    collector.fail_next(1, 429)
    s1, h1, _ = post(collector.url + "/v1/traces", body, otlp_wire.PROTOBUF)
    s2, _, _ = post(collector.url + "/v1/traces", body, otlp_wire.PROTOBUF)
    s3, _, _ = post(collector.url + "/v1/traces", body, otlp_wire.PROTOBUF)
    assert (s1, h1.get("Retry-After"), s2, s3) == (503, "1", 429, 200)
    assert len(collector.spans(accepted_only=False)) == 3 and len(collector.spans()) == 1

    collector.hang()
    started = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
        post(collector.url + "/v1/traces", body, otlp_wire.PROTOBUF, timeout=0.5)
    assert time.monotonic() - started < 5
    collector.release()
    assert post(collector.url + "/v1/traces", body, otlp_wire.PROTOBUF)[0] == 200
    collector.wait_for_spans(count=2)  # the hung post was answered 200 on release; the last one too


# --- Phoenix ---------------------------------------------------------------------------------------------------------

def test_phoenix_takes_a_protobuf_span_and_gives_it_back(phoenix):
    project = f"harness-{os.urandom(4).hex()}"
    span = otlp_wire.make_span(
        name="chat harness-model", kind="CLIENT",
        attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "harness-model", "gen_ai.usage.input_tokens": 11,
                    "gen_ai.usage.output_tokens": 7, "gen_ai.response.finish_reasons": ["stop"],
                    "bakeoff.experiment": "harness-exp", "bakeoff.request_id": "req_" + "0" * 24},
        resource={"service.name": "bakeoff-e2e", "openinference.project.name": project})
    status, reply = phoenix.post_protobuf(otlp_wire.encode_protobuf([span]))
    assert status == 200, reply
    # Phoenix's HTTP receiver takes protobuf only (what the notes say; the gateway's default must be protobuf).
    status, _, _ = raw_request(phoenix.traces_url, method="POST", body=otlp_wire.encode_json([span]),
                               headers={"Content-Type": otlp_wire.JSON})
    assert status == 415

    (got,) = phoenix.wait_for_spans(project, 1)
    assert got["name"] == span["name"]
    assert got["context"] == {"trace_id": span["trace_id"], "span_id": span["span_id"]}
    assert not got["parent_id"]
    attrs = got["attributes"]
    assert attrs["gen_ai.request.model"] == "harness-model" and attrs["bakeoff.experiment"] == "harness-exp"
    assert attrs["gen_ai.usage.input_tokens"] == 11 and attrs["gen_ai.response.finish_reasons"] == ["stop"]
    start = datetime.fromisoformat(got["start_time"]).timestamp()
    assert abs(start - span["start_ns"] / 1e9) < 1e-3
    assert phoenix.spans("no-such-project-" + os.urandom(4).hex()) == []
    # Other projects do not see it.
    assert all(s["context"]["span_id"] != span["span_id"] for s in phoenix.spans("default"))


def test_phoenix_listens_on_loopback_only(phoenix):
    sockets = listening_sockets(phoenix.process.pid)
    ports = {port for _, port in sockets}
    assert {phoenix.port, phoenix.grpc_port} <= ports, (sockets, phoenix.port, phoenix.grpc_port)
    assert all(addr in ("127.0.0.1", "::1") for addr, _ in sockets), sockets
