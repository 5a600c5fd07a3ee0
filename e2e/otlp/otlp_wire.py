"""OTLP trace payloads, both encodings, decoded into one normalised form, and built by hand for the harness's own tests.

The protobuf side uses opentelemetry-proto's generated classes (ExportTraceServiceRequest); the JSON side is a
decoder of its own, written to the OTLP/JSON rules (opentelemetry-proto's docs/specification.md, "JSON Protobuf
Encoding"): proto3's JSON mapping with lowerCamelCase keys, except that traceId/spanId/parentSpanId are hex strings
(not base64) and enums are integers (never their names); 64-bit integers are decimal strings. The JSON decoder is
tolerant where a receiver may be (numbers for 64-bit integers, snake_case keys) but lists every departure from what
an exporter should send in `problems`, so a test can require none.

A normalised span is a plain dict:

    {"trace_id": 32 lower-case hex, "span_id": 16 hex, "parent_span_id": 16 hex or "", "trace_state": str,
     "name": str, "kind": "INTERNAL" | "SERVER" | "CLIENT" | "PRODUCER" | "CONSUMER" | "UNSPECIFIED",
     "start_ns": int, "end_ns": int, "attributes": {key: value}, "events": [{"name", "time_ns", "attributes"}],
     "links": [{"trace_id", "span_id", "trace_state", "attributes"}], "status": {"code": "UNSET" | "OK" | "ERROR",
     "message": str}, "flags": int, "resource": {key: value}, "scope": {"name": str, "version": str}}

Attribute values: str, bool, int, float, bytes, list (array values), dict (kvlist values), None (empty AnyValue).
Python keeps bool and int apart in the comparisons the tests make (`type(v) is int`).
"""
from __future__ import annotations

import base64
import json
import re

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
KIND_NUMBERS = {v: k for k, v in KINDS.items()}
STATUS_CODES = {0: "UNSET", 1: "OK", 2: "ERROR"}
STATUS_NUMBERS = {v: k for k, v in STATUS_CODES.items()}

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


# --- protobuf ---------------------------------------------------------------------------------------------------------

def _pb():
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2
    return trace_service_pb2, common_pb2, resource_pb2, trace_pb2


def _pb_value(v):
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)  # string_value, bool_value, int_value, double_value, bytes_value


def _pb_attrs(kvs) -> dict:
    return {kv.key: _pb_value(kv.value) for kv in kvs}


def spans_from_protobuf(body: bytes) -> list[dict]:
    """The spans of an ExportTraceServiceRequest in protobuf (raises on a malformed body)."""
    trace_service_pb2, *_ = _pb()
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(body)
    out = []
    for rs in request.resource_spans:
        resource = _pb_attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = {"name": ss.scope.name, "version": ss.scope.version}
            for s in ss.spans:
                out.append({
                    "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(), "parent_span_id": s.parent_span_id.hex(),
                    "trace_state": s.trace_state, "name": s.name, "kind": KINDS.get(s.kind, str(s.kind)),
                    "start_ns": s.start_time_unix_nano, "end_ns": s.end_time_unix_nano,
                    "attributes": _pb_attrs(s.attributes),
                    "events": [{"name": e.name, "time_ns": e.time_unix_nano, "attributes": _pb_attrs(e.attributes)}
                               for e in s.events],
                    "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex(), "trace_state": l.trace_state,
                               "attributes": _pb_attrs(l.attributes)} for l in s.links],
                    "status": {"code": STATUS_CODES.get(s.status.code, str(s.status.code)), "message": s.status.message},
                    "flags": s.flags, "resource": resource, "scope": scope,
                })
    return out


def _pb_any(value, common_pb2):
    v = common_pb2.AnyValue()
    if value is None:
        return v
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, str):
        v.string_value = value
    elif isinstance(value, bytes):
        v.bytes_value = value
    elif isinstance(value, list):
        v.array_value.values.extend(_pb_any(x, common_pb2) for x in value)
    elif isinstance(value, dict):
        v.kvlist_value.values.extend(common_pb2.KeyValue(key=k, value=_pb_any(x, common_pb2)) for k, x in value.items())
    else:
        raise TypeError(f"no AnyValue for {value!r}")
    return v


def _pb_kvs(attrs: dict, common_pb2):
    return [common_pb2.KeyValue(key=k, value=_pb_any(v, common_pb2)) for k, v in attrs.items()]


def encode_protobuf(spans: list[dict]) -> bytes:
    """An ExportTraceServiceRequest in protobuf from normalised spans (grouped by resource and scope, in order)."""
    trace_service_pb2, common_pb2, resource_pb2, trace_pb2 = _pb()
    request = trace_service_pb2.ExportTraceServiceRequest()
    for resource, scope, group in _groups(spans):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(_pb_kvs(resource, common_pb2))
        ss = rs.scope_spans.add()
        ss.scope.name, ss.scope.version = scope["name"], scope["version"]
        for s in group:
            p = ss.spans.add()
            p.trace_id, p.span_id = bytes.fromhex(s["trace_id"]), bytes.fromhex(s["span_id"])
            p.parent_span_id = bytes.fromhex(s["parent_span_id"])
            p.trace_state, p.name, p.kind = s["trace_state"], s["name"], KIND_NUMBERS[s["kind"]]
            p.start_time_unix_nano, p.end_time_unix_nano = s["start_ns"], s["end_ns"]
            p.attributes.extend(_pb_kvs(s["attributes"], common_pb2))
            for e in s["events"]:
                p.events.add(name=e["name"], time_unix_nano=e["time_ns"], attributes=_pb_kvs(e["attributes"], common_pb2))
            for l in s["links"]:
                p.links.add(trace_id=bytes.fromhex(l["trace_id"]), span_id=bytes.fromhex(l["span_id"]),
                            trace_state=l["trace_state"], attributes=_pb_kvs(l["attributes"], common_pb2))
            p.status.code, p.status.message = STATUS_NUMBERS[s["status"]["code"]], s["status"]["message"]
            p.flags = s["flags"]
    return request.SerializeToString()


def _groups(spans):
    groups: list[tuple[dict, dict, list]] = []
    for s in spans:
        for resource, scope, group in groups:
            if resource == s["resource"] and scope == s["scope"]:
                group.append(s)
                break
        else:
            groups.append((s["resource"], s["scope"], [s]))
    return groups


# --- JSON -------------------------------------------------------------------------------------------------------------

_HEX = re.compile(r"^[0-9a-fA-F]*$")
_CAMEL = re.compile(r"_([a-z])")

# The keys each OTLP/JSON message may have (lowerCamelCase).
_KEYS = {
    "request": {"resourceSpans"},
    "resourceSpans": {"resource", "scopeSpans", "schemaUrl"},
    "resource": {"attributes", "droppedAttributesCount", "entityRefs"},
    "scopeSpans": {"scope", "spans", "schemaUrl"},
    "scope": {"name", "version", "attributes", "droppedAttributesCount"},
    "span": {"traceId", "spanId", "traceState", "parentSpanId", "flags", "name", "kind", "startTimeUnixNano",
             "endTimeUnixNano", "attributes", "droppedAttributesCount", "events", "droppedEventsCount", "links",
             "droppedLinksCount", "status"},
    "event": {"timeUnixNano", "name", "attributes", "droppedAttributesCount"},
    "link": {"traceId", "spanId", "traceState", "attributes", "droppedAttributesCount", "flags"},
    "status": {"message", "code"},
    "keyValue": {"key", "value"},
    "anyValue": {"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"},
}


class _JSONReader:
    def __init__(self):
        self.problems: list[str] = []

    def obj(self, value, kind: str, path: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected an object, got {type(value).__name__}")
        out = {}
        for key, v in value.items():
            camel = _CAMEL.sub(lambda m: m.group(1).upper(), key)
            if camel != key:
                self.problems.append(f"{path}.{key}: snake_case key (OTLP/JSON keys are lowerCamelCase: {camel})")
            if camel not in _KEYS[kind]:
                self.problems.append(f"{path}.{key}: unknown key for {kind}")
            out[camel] = v
        return out

    def list(self, value, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected an array, got {type(value).__name__}")
        return value

    def string(self, value, path: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string, got {value!r}")
        return value

    def int64(self, value, path: str) -> int:
        if value is None:
            return 0
        if isinstance(value, bool):
            raise ValueError(f"{path}: expected a 64-bit integer, got {value!r}")
        if isinstance(value, int):
            self.problems.append(f"{path}: 64-bit integer as a JSON number ({value}); proto3 JSON writes a decimal string")
            return value
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
            return int(value)
        raise ValueError(f"{path}: expected a 64-bit integer as a decimal string, got {value!r}")

    def uint32(self, value, path: str) -> int:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.isdigit():
                self.problems.append(f"{path}: 32-bit integer as a string ({value!r})")
                return int(value)
            raise ValueError(f"{path}: expected an integer, got {value!r}")
        return value

    def enum(self, value, names: dict, path: str):
        if value is None:
            return names[0]
        if isinstance(value, str):
            self.problems.append(f"{path}: enum as a name ({value!r}); OTLP/JSON requires the integer value")
            for number, name in names.items():
                if value.endswith(name):
                    return name
            raise ValueError(f"{path}: unknown enum name {value!r}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: expected an enum integer, got {value!r}")
        return names.get(value, str(value))

    def hex_id(self, value, size: int, path: str, required: bool) -> str:
        if value is None or value == "":
            if required:
                self.problems.append(f"{path}: missing")
            return ""
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a hex string, got {value!r}")
        if not _HEX.match(value) or len(value) != 2 * size:
            raise ValueError(f"{path}: {value!r} is not {2 * size} hex digits (OTLP/JSON ids are hex, not base64)")
        if value != value.lower():
            self.problems.append(f"{path}: upper-case hex {value!r} (accepted, but lower case is what SDKs send)")
        return value.lower()

    def any_value(self, value, path: str):
        v = self.obj(value, "anyValue", path)
        if not v:
            return None
        if len(v) > 1:
            self.problems.append(f"{path}: several value fields {sorted(v)}")
        (key, x), = list(v.items())[:1]
        if key == "stringValue":
            return self.string(x, path + ".stringValue")
        if key == "boolValue":
            if not isinstance(x, bool):
                raise ValueError(f"{path}.boolValue: expected true or false, got {x!r}")
            return x
        if key == "intValue":
            return self.int64(x, path + ".intValue")
        if key == "doubleValue":
            if isinstance(x, str) and x in ("NaN", "Infinity", "-Infinity"):
                return float(x.replace("Infinity", "inf"))
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise ValueError(f"{path}.doubleValue: expected a number, got {x!r}")
            return float(x)
        if key == "bytesValue":
            return base64.b64decode(self.string(x, path + ".bytesValue"))
        if key == "arrayValue":
            if not isinstance(x, dict) or set(x) - {"values"}:  # ArrayValue: {"values": [...]}
                raise ValueError(f"{path}.arrayValue: expected {{\"values\": [...]}}, got {x!r}")
            return [self.any_value(e, f"{path}.arrayValue.values[{i}]")
                    for i, e in enumerate(self.list(x.get("values"), path + ".arrayValue.values"))]
        if key == "kvlistValue":
            if not isinstance(x, dict) or set(x) - {"values"}:
                raise ValueError(f"{path}.kvlistValue: expected {{\"values\": [...]}}, got {x!r}")
            return self.attrs(x.get("values"), path + ".kvlistValue.values")
        raise ValueError(f"{path}: unknown value field {key!r}")

    def attrs(self, value, path: str) -> dict:
        out = {}
        for i, kv in enumerate(self.list(value, path)):
            kv = self.obj(kv, "keyValue", f"{path}[{i}]")
            key = self.string(kv.get("key"), f"{path}[{i}].key")
            if key in out:
                self.problems.append(f"{path}[{i}]: duplicate attribute key {key!r}")
            out[key] = self.any_value(kv.get("value"), f"{path}[{i}].value")
        return out


def spans_from_json(doc) -> tuple[list[dict], list[str]]:
    """The spans of an ExportTraceServiceRequest in OTLP/JSON (a parsed document or bytes), and the departures from
    the OTLP/JSON rules seen on the way. Raises ValueError on what no receiver could read."""
    if isinstance(doc, (bytes, bytearray, str)):
        doc = json.loads(doc)
    r = _JSONReader()
    out = []
    request = r.obj(doc, "request", "$")
    for i, rs in enumerate(r.list(request.get("resourceSpans"), "$.resourceSpans")):
        p = f"$.resourceSpans[{i}]"
        rs = r.obj(rs, "resourceSpans", p)
        resource = r.attrs(r.obj(rs.get("resource"), "resource", p + ".resource").get("attributes"), p + ".resource.attributes")
        for j, ss in enumerate(r.list(rs.get("scopeSpans"), p + ".scopeSpans")):
            q = f"{p}.scopeSpans[{j}]"
            ss = r.obj(ss, "scopeSpans", q)
            scope_doc = r.obj(ss.get("scope"), "scope", q + ".scope")
            scope = {"name": r.string(scope_doc.get("name"), q + ".scope.name"),
                     "version": r.string(scope_doc.get("version"), q + ".scope.version")}
            for k, s in enumerate(r.list(ss.get("spans"), q + ".spans")):
                sp = f"{q}.spans[{k}]"
                s = r.obj(s, "span", sp)
                status = r.obj(s.get("status"), "status", sp + ".status")
                events, links = [], []
                for m, e in enumerate(r.list(s.get("events"), sp + ".events")):
                    ep = f"{sp}.events[{m}]"
                    e = r.obj(e, "event", ep)
                    events.append({"name": r.string(e.get("name"), ep + ".name"),
                                   "time_ns": r.int64(e.get("timeUnixNano"), ep + ".timeUnixNano"),
                                   "attributes": r.attrs(e.get("attributes"), ep + ".attributes")})
                for m, l in enumerate(r.list(s.get("links"), sp + ".links")):
                    lp = f"{sp}.links[{m}]"
                    l = r.obj(l, "link", lp)
                    links.append({"trace_id": r.hex_id(l.get("traceId"), 16, lp + ".traceId", True),
                                  "span_id": r.hex_id(l.get("spanId"), 8, lp + ".spanId", True),
                                  "trace_state": r.string(l.get("traceState"), lp + ".traceState"),
                                  "attributes": r.attrs(l.get("attributes"), lp + ".attributes")})
                out.append({
                    "trace_id": r.hex_id(s.get("traceId"), 16, sp + ".traceId", True),
                    "span_id": r.hex_id(s.get("spanId"), 8, sp + ".spanId", True),
                    "parent_span_id": r.hex_id(s.get("parentSpanId"), 8, sp + ".parentSpanId", False),
                    "trace_state": r.string(s.get("traceState"), sp + ".traceState"),
                    "name": r.string(s.get("name"), sp + ".name"),
                    "kind": r.enum(s.get("kind"), KINDS, sp + ".kind"),
                    "start_ns": r.int64(s.get("startTimeUnixNano"), sp + ".startTimeUnixNano"),
                    "end_ns": r.int64(s.get("endTimeUnixNano"), sp + ".endTimeUnixNano"),
                    "attributes": r.attrs(s.get("attributes"), sp + ".attributes"),
                    "events": events, "links": links,
                    "status": {"code": r.enum(status.get("code"), STATUS_CODES, sp + ".status.code"),
                               "message": r.string(status.get("message"), sp + ".status.message")},
                    "flags": r.uint32(s.get("flags"), sp + ".flags"),
                    "resource": resource, "scope": scope,
                })
    return out, r.problems


def _json_value(value) -> dict:
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_json_value(x) for x in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _json_kvs(value)}}
    raise TypeError(f"no AnyValue for {value!r}")


def _json_kvs(attrs: dict) -> list:
    return [{"key": k, "value": _json_value(v)} for k, v in attrs.items()]


def encode_json(spans: list[dict]) -> bytes:
    """The same request in OTLP/JSON, written by the rules (hex ids, integer enums, int64 as strings)."""
    resource_spans = []
    for resource, scope, group in _groups(spans):
        out_spans = []
        for s in group:
            d = {"traceId": s["trace_id"], "spanId": s["span_id"], "name": s["name"], "kind": KIND_NUMBERS[s["kind"]],
                 "startTimeUnixNano": str(s["start_ns"]), "endTimeUnixNano": str(s["end_ns"]),
                 "attributes": _json_kvs(s["attributes"]),
                 "status": {"code": STATUS_NUMBERS[s["status"]["code"]], "message": s["status"]["message"]}}
            if s["parent_span_id"]:
                d["parentSpanId"] = s["parent_span_id"]
            if s["trace_state"]:
                d["traceState"] = s["trace_state"]
            if s["flags"]:
                d["flags"] = s["flags"]
            if s["events"]:
                d["events"] = [{"name": e["name"], "timeUnixNano": str(e["time_ns"]), "attributes": _json_kvs(e["attributes"])}
                               for e in s["events"]]
            if s["links"]:
                d["links"] = [{"traceId": l["trace_id"], "spanId": l["span_id"], "traceState": l["trace_state"],
                               "attributes": _json_kvs(l["attributes"])} for l in s["links"]]
            out_spans.append(d)
        resource_spans.append({"resource": {"attributes": _json_kvs(resource)},
                               "scopeSpans": [{"scope": dict(scope), "spans": out_spans}]})
    return json.dumps({"resourceSpans": resource_spans}).encode()


def make_span(name: str = "chat hand-made-model", trace_id: str = "", span_id: str = "", parent_span_id: str = "",
              kind: str = "CLIENT", start_ns: int = 0, end_ns: int = 0, attributes: dict | None = None,
              resource: dict | None = None, links: list | None = None, events: list | None = None,
              status: tuple[str, str] = ("UNSET", ""), scope=("bakeoff-e2e", "1.0")) -> dict:
    """A normalised span with every field set (random ids, the current time when none are given)."""
    import os
    import time
    now = time.time_ns()
    return {"trace_id": trace_id or os.urandom(16).hex(), "span_id": span_id or os.urandom(8).hex(),
            "parent_span_id": parent_span_id, "trace_state": "", "name": name, "kind": kind,
            "start_ns": start_ns or now - 250_000_000, "end_ns": end_ns or now, "attributes": dict(attributes or {}),
            "events": list(events or []), "links": list(links or []), "status": {"code": status[0], "message": status[1]},
            "flags": 0, "resource": dict(resource or {"service.name": "bakeoff-e2e"}),
            "scope": {"name": scope[0], "version": scope[1]}}
