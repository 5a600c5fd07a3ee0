import BakeoffCore

/// Who sends the spans: the OTLP resource (service name and the operator's attributes) and scope.
public struct TraceSource: Sendable, Equatable {
    public var resource: [Attribute]
    public var scopeName: String
    public var scopeVersion: String

    public init(resource: [Attribute], scopeName: String, scopeVersion: String) {
        self.resource = resource
        self.scopeName = scopeName
        self.scopeVersion = scopeVersion
    }
}

/// OTLP's two encodings over HTTP.
public enum OTLPProtocol: String, Sendable, CaseIterable {
    /// `application/x-protobuf`: what every collector takes (Phoenix takes nothing else).
    case protobuf = "http/protobuf"
    /// `application/json` (Langfuse, collectors): ids as hex, 64-bit numbers as strings.
    case json = "http/json"

    public var contentType: String { self == .protobuf ? "application/x-protobuf" : "application/json" }

    /// An `ExportTraceServiceRequest` holding `spans`.
    public func encode(_ spans: [Span], from source: TraceSource) -> [UInt8] {
        switch self {
        case .protobuf: OTLPProtobuf.request(spans, source)
        case .json: Array(OTLPJSON.request(spans, source).utf8)
        }
    }
}

/// `ExportTraceServiceRequest` in protobuf (opentelemetry/proto/collector/trace/v1).
enum OTLPProtobuf {
    static func request(_ spans: [Span], _ source: TraceSource) -> [UInt8] {
        var w = ProtobufWriter()
        w.messageField(1) { rs in  // resource_spans
            rs.messageField(1) { r in for a in source.resource { r.messageField(1) { keyValue(&$0, a) } } }  // resource
            rs.messageField(2) { ss in  // scope_spans
                ss.messageField(1) { scope in
                    scope.stringField(1, source.scopeName)
                    scope.stringField(2, source.scopeVersion)
                }
                for span in spans { ss.messageField(2) { write(span, &$0) } }
            }
        }
        return w.bytes
    }

    static func write(_ span: Span, _ w: inout ProtobufWriter) {
        w.bytesField(1, span.traceID.bytes)
        w.bytesField(2, span.spanID.bytes)
        w.stringField(3, span.traceState)
        if let parent = span.parentSpanID { w.bytesField(4, parent.bytes) }
        w.stringField(5, span.name, always: true)
        w.varintField(6, UInt64(span.kind.rawValue))
        w.fixed64Field(7, span.start)
        w.fixed64Field(8, span.end)
        for a in span.attributes { w.messageField(9) { keyValue(&$0, a) } }
        for link in span.links {
            w.messageField(13) { l in
                l.bytesField(1, link.traceID.bytes)
                l.bytesField(2, link.spanID.bytes)
                for a in link.attributes { l.messageField(4) { keyValue(&$0, a) } }
                l.fixed32Field(6, UInt32(span.flags))
            }
        }
        if span.status.code != .unset || !span.status.message.isEmpty {
            w.messageField(15) { s in
                s.stringField(2, span.status.message)
                s.varintField(3, UInt64(span.status.code.rawValue))
            }
        }
        w.fixed32Field(16, UInt32(span.flags))
    }

    static func keyValue(_ w: inout ProtobufWriter, _ a: Attribute) {
        w.stringField(1, a.key, always: true)
        w.messageField(2) { anyValue(&$0, a.value) }
    }

    static func anyValue(_ w: inout ProtobufWriter, _ v: AttributeValue) {
        switch v {
        case .string(let s): w.stringField(1, s, always: true)
        case .bool(let b):
            w.varint(2 << 3)
            w.varint(b ? 1 : 0)
        case .int(let i): w.int64Field(3, i, always: true)
        case .double(let d): w.doubleField(4, d, always: true)
        case .strings(let list):
            w.messageField(5) { array in for s in list { array.messageField(1) { $0.stringField(1, s, always: true) } } }
        }
    }

    /// What a collector's protobuf answer says it rejected: (spans, message), nil when it rejected nothing.
    static func rejected(_ body: [UInt8]) -> (Int64, String)? {
        var r = ProtobufReader(body)
        while let f = r.next() {
            guard f.field == 1, let partial = f.bytes else { continue }
            var p = ProtobufReader(partial)
            var count: Int64 = 0, message = ""
            while let g = p.next() {
                if g.field == 1, let v = g.varint { count = Int64(bitPattern: v) }
                if g.field == 2, let b = g.bytes { message = String(decoding: b, as: UTF8.self) }
            }
            return count == 0 && message.isEmpty ? nil : (count, message)
        }
        return nil
    }
}

/// `ExportTraceServiceRequest` in OTLP/JSON: the protobuf JSON mapping with lowerCamelCase names, except
/// that trace and span ids are hex (not base64) and enums are numbers.
enum OTLPJSON {
    static func request(_ spans: [Span], _ source: TraceSource) -> String {
        var s = "{\"resourceSpans\":[{\"resource\":{\"attributes\":" + attributes(source.resource) + "},\"scopeSpans\":[{\"scope\":{\"name\":"
        s += JSONWriter.quote(source.scopeName) + ",\"version\":" + JSONWriter.quote(source.scopeVersion) + "},\"spans\":["
        for (i, span) in spans.enumerated() {
            if i > 0 { s += "," }
            s += write(span)
        }
        return s + "]}]}]}"
    }

    static func write(_ span: Span) -> String {
        var s = "{\"traceId\":\"" + span.traceID.hex + "\",\"spanId\":\"" + span.spanID.hex + "\""
        if !span.traceState.isEmpty { s += ",\"traceState\":" + JSONWriter.quote(span.traceState) }
        if let parent = span.parentSpanID { s += ",\"parentSpanId\":\"" + parent.hex + "\"" }
        s += ",\"flags\":" + String(span.flags)
        s += ",\"name\":" + JSONWriter.quote(span.name) + ",\"kind\":" + String(span.kind.rawValue)
        s += ",\"startTimeUnixNano\":\"" + String(span.start) + "\",\"endTimeUnixNano\":\"" + String(span.end) + "\""
        s += ",\"attributes\":" + attributes(span.attributes)
        if !span.links.isEmpty {
            s += ",\"links\":[" + span.links.map { link in
                "{\"traceId\":\"" + link.traceID.hex + "\",\"spanId\":\"" + link.spanID.hex + "\",\"attributes\":" + attributes(link.attributes) + ",\"flags\":" + String(span.flags) + "}"
            }.joined(separator: ",") + "]"
        }
        if span.status.code != .unset || !span.status.message.isEmpty {
            s += ",\"status\":{"
            if !span.status.message.isEmpty { s += "\"message\":" + JSONWriter.quote(span.status.message) + "," }
            s += "\"code\":" + String(span.status.code.rawValue) + "}"
        }
        return s + "}"
    }

    static func attributes(_ list: [Attribute]) -> String {
        "[" + list.map { "{\"key\":" + JSONWriter.quote($0.key) + ",\"value\":" + value($0.value) + "}" }.joined(separator: ",") + "]"
    }

    static func value(_ v: AttributeValue) -> String {
        switch v {
        case .string(let s): "{\"stringValue\":" + JSONWriter.quote(s) + "}"
        case .bool(let b): "{\"boolValue\":" + (b ? "true" : "false") + "}"
        case .int(let i): "{\"intValue\":\"" + String(i) + "\"}"
        case .double(let d): d.isFinite ? "{\"doubleValue\":" + JSONWriter.number(d) + "}" : "{\"doubleValue\":\"" + (d.isNaN ? "NaN" : d > 0 ? "Infinity" : "-Infinity") + "\"}"
        case .strings(let list): "{\"arrayValue\":{\"values\":[" + list.map { "{\"stringValue\":" + JSONWriter.quote($0) + "}" }.joined(separator: ",") + "]}}"
        }
    }
}
