"""Reference encodings of OTLP trace export requests, written by the official protobuf classes
(opentelemetry-proto), for Tests/BakeoffTelemetryTests/Fixtures/otlp_requests.json.

Each case describes spans in plain JSON; the Swift test builds the same spans and must produce exactly these
bytes (protobuf serialises fields in number order, as Bakeoff's writer does), and its OTLP/JSON must parse to
the same message. Run: make fixtures (or python scripts/reference/otlp_fixture.py with opentelemetry-proto).
"""
import json
import pathlib

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

OUT = pathlib.Path(__file__).resolve().parents[2] / "Tests/BakeoffTelemetryTests/Fixtures/otlp_requests.json"

CASES = [
    {
        "name": "chat span with every attribute kind",
        "resource": [["service.name", {"string": "bakeoff"}], ["openinference.project.name", {"string": "support-bot"}]],
        "scope": ["bakeoff.gateway", "0.1.0"],
        "spans": [{
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
            "parent_span_id": "a3ce929d0e0e4736", "trace_state": "vendor=x", "flags": 1,
            "name": "chat support-v2", "kind": 3, "start": 1765000000123456789, "end": 1765000000987654321,
            "attributes": [
                ["gen_ai.operation.name", {"string": "chat"}],
                ["gen_ai.request.stream", {"bool": True}],
                ["gen_ai.usage.input_tokens", {"int": 42}],
                ["gen_ai.usage.output_tokens", {"int": 0}],
                ["gen_ai.response.time_to_first_chunk", {"double": 0.125}],
                ["bakeoff.feedback.value", {"double": 0.0}],
                ["bakeoff.flag", {"bool": False}],
                ["gen_ai.response.finish_reasons", {"strings": ["stop", "length"]}],
                ["unicode", {"string": "é ünïcode ✓ \"quoted\"\n"}],
                ["empty", {"string": ""}],
                ["negative", {"int": -7}],
            ],
            "links": [],
            "status": [0, ""],
        }],
    },
    {
        "name": "error span, feedback span with a link, root span",
        "resource": [["service.name", {"string": "gw"}]],
        "scope": ["bakeoff.gateway", "0.1.0"],
        "spans": [
            {
                "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331", "parent_span_id": None,
                "trace_state": "", "flags": 1, "name": "text_completion m", "kind": 3,
                "start": 1, "end": 2, "attributes": [["error.type", {"string": "503"}]], "links": [],
                "status": [2, "upstream answered HTTP 503"],
            },
            {
                "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "0000000000000001",
                "parent_span_id": "b7ad6b7169203331", "trace_state": "", "flags": 1, "name": "feedback thumbs_up",
                "kind": 1, "start": 1765000000000000000, "end": 1765000000000000000,
                "attributes": [["bakeoff.feedback.value", {"double": 1.0}]],
                "links": [["0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", []]],
                "status": [0, ""],
            },
        ],
    },
]


def any_value(v):
    (kind, value), = v.items()
    if kind == "string":
        return AnyValue(string_value=value)
    if kind == "bool":
        return AnyValue(bool_value=value)
    if kind == "int":
        return AnyValue(int_value=value)
    if kind == "double":
        return AnyValue(double_value=value)
    if kind == "strings":
        a = AnyValue()
        for s in value:
            a.array_value.values.add(string_value=s)
        return a
    raise ValueError(kind)


def attributes(target, pairs):
    for key, value in pairs:
        target.append(KeyValue(key=key, value=any_value(value)))


def build(case):
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    attributes(rs.resource.attributes, case["resource"])
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = case["scope"]
    for s in case["spans"]:
        span = ss.spans.add()
        span.trace_id = bytes.fromhex(s["trace_id"])
        span.span_id = bytes.fromhex(s["span_id"])
        span.trace_state = s["trace_state"]
        if s["parent_span_id"]:
            span.parent_span_id = bytes.fromhex(s["parent_span_id"])
        span.flags = s["flags"]
        span.name = s["name"]
        span.kind = s["kind"]
        span.start_time_unix_nano = s["start"]
        span.end_time_unix_nano = s["end"]
        attributes(span.attributes, s["attributes"])
        for trace_id, span_id, link_attributes in s["links"]:
            link = span.links.add()
            link.trace_id = bytes.fromhex(trace_id)
            link.span_id = bytes.fromhex(span_id)
            attributes(link.attributes, link_attributes)
            link.flags = s["flags"]
        code, message = s["status"]
        if code or message:
            span.status.code = code
            span.status.message = message
    return req


def main():
    out = []
    for case in CASES:
        req = build(case)
        # Times as strings: they exceed what a JSON number holds exactly.
        spans = [{**s, "start": str(s["start"]), "end": str(s["end"])} for s in case["spans"]]
        out.append({**case, "spans": spans, "protobuf_hex": req.SerializeToString().hex(),
                    "message": json_format.MessageToDict(req, preserving_proto_field_name=True)})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(out)} cases)")


if __name__ == "__main__":
    main()
