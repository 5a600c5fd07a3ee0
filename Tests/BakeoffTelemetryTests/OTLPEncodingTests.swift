import BakeoffCore
import Foundation
import Testing
import BakeoffTelemetry

/// The reference cases of scripts/reference/otlp_fixture.py: spans described in JSON and the bytes the official
/// protobuf classes wrote for them.
struct OTLPFixture {
    var name: String
    var source: TraceSource
    var spans: [Span]
    var protobuf: [UInt8]
    var message: JSONValue

    static func all() throws -> [OTLPFixture] {
        let url = try #require(Bundle.module.url(forResource: "otlp_requests", withExtension: "json", subdirectory: "Fixtures"))
        let doc = try JSONValue.parse(Array(try Data(contentsOf: url)))
        return try (doc.root.array ?? []).map { try OTLPFixture($0) }
    }

    init(_ v: JSONValue) throws {
        let o = try #require(v.object)
        name = o["name"]?.string ?? ""
        let scope = o["scope"]?.array ?? []
        source = TraceSource(resource: try Self.attributes(o["resource"]), scopeName: scope[0].string ?? "", scopeVersion: scope[1].string ?? "")
        spans = try (o["spans"]?.array ?? []).map { s in
            let s = try #require(s.object)
            let status = s["status"]?.array ?? []
            return Span(
                traceID: try #require(TraceID(hex: Substring(s["trace_id"]?.string ?? ""))),
                spanID: try #require(SpanID(hex: Substring(s["span_id"]?.string ?? ""))),
                parentSpanID: s["parent_span_id"]?.string.flatMap { SpanID(hex: Substring($0)) },
                traceState: s["trace_state"]?.string ?? "", flags: UInt8(s["flags"]?.number ?? 0),
                name: s["name"]?.string ?? "", kind: SpanKind(rawValue: Int(s["kind"]?.number ?? 0)) ?? .internal,
                start: UInt64(s["start"]?.string ?? "") ?? 0, end: UInt64(s["end"]?.string ?? "") ?? 0,
                attributes: try Self.attributes(s["attributes"]),
                links: try (s["links"]?.array ?? []).map { l in
                    let parts = l.array ?? []
                    return SpanLink(traceID: try #require(TraceID(hex: Substring(parts[0].string ?? ""))),
                                    spanID: try #require(SpanID(hex: Substring(parts[1].string ?? ""))),
                                    attributes: try Self.attributes(parts[2]))
                },
                status: SpanStatus(SpanStatus.Code(rawValue: Int(status[0].number ?? 0)) ?? .unset, message: status[1].string ?? ""))
        }
        let hex = Array((o["protobuf_hex"]?.string ?? "").utf8)
        protobuf = stride(from: 0, to: hex.count, by: 2).map { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
        message = try #require(o["message"])
    }

    static func attributes(_ v: JSONValue?) throws -> [Attribute] {
        try (v?.array ?? []).map { pair in
            let p = pair.array ?? []
            let key = p[0].string ?? ""
            let value = try #require(p[1].object?.members.first)
            switch value.key {
            case "string": return Attribute(key, .string(value.value.string ?? ""))
            case "bool": return Attribute(key, .bool(value.value.bool ?? false))
            case "int": return Attribute(key, .int(Int64(value.value.number ?? 0)))
            case "double": return Attribute(key, .double(value.value.number ?? 0))
            default: return Attribute(key, .strings((value.value.array ?? []).compactMap(\.string)))
            }
        }
    }
}

@Suite("OTLP encoding against the official protobuf classes")
struct OTLPEncodingTests {
    @Test("protobuf bytes equal opentelemetry-proto's, case by case")
    func protobufBytes() throws {
        let fixtures = try OTLPFixture.all()
        #expect(fixtures.count >= 2)
        for f in fixtures {
            let mine = OTLPProtocol.protobuf.encode(f.spans, from: f.source)
            #expect(mine == f.protobuf, "\(f.name): \(mine.count) bytes against \(f.protobuf.count)")
        }
    }

    @Test("OTLP/JSON holds the same message: hex ids, string nanoseconds and 64-bit integers, numeric enums")
    func jsonMessage() throws {
        for f in try OTLPFixture.all() {
            let json = try JSONValue.parse(OTLPProtocol.json.encode(f.spans, from: f.source))
            let rs = try #require(json.root.object?["resourceSpans"]?.array?.first?.object)
            let expected = try #require(f.message.object?["resource_spans"]?.array?.first?.object)
            #expect(rs["resource"]?.object?["attributes"]?.array?.count == expected["resource"]?.object?["attributes"]?.array?.count)
            let spans = try #require(rs["scopeSpans"]?.array?.first?.object?["spans"]?.array)
            #expect(spans.count == f.spans.count)
            for (span, want) in zip(spans, f.spans) {
                let s = try #require(span.object)
                #expect(s["traceId"]?.string == want.traceID.hex)
                #expect(s["spanId"]?.string == want.spanID.hex)
                #expect(s["parentSpanId"]?.string == want.parentSpanID?.hex)
                #expect(s["startTimeUnixNano"]?.string == String(want.start))
                #expect(s["endTimeUnixNano"]?.string == String(want.end))
                #expect(s["kind"]?.number == Double(want.kind.rawValue))
                #expect(s["name"]?.string == want.name)
                let attributes = try #require(s["attributes"]?.array)
                #expect(attributes.count == want.attributes.count)
                for (a, w) in zip(attributes, want.attributes) {
                    let o = try #require(a.object)
                    #expect(o["key"]?.string == w.key)
                    let v = try #require(o["value"]?.object)
                    switch w.value {
                    case .string(let x): #expect(v["stringValue"]?.string == x)
                    case .bool(let x): #expect(v["boolValue"]?.bool == x)
                    case .int(let x): #expect(v["intValue"]?.string == String(x))
                    case .double(let x): #expect(v["doubleValue"]?.number == x)
                    case .strings(let x): #expect(v["arrayValue"]?.object?["values"]?.array?.compactMap { $0.object?["stringValue"]?.string } == x)
                    }
                }
                if want.status.code != .unset {
                    #expect(s["status"]?.object?["code"]?.number == Double(want.status.code.rawValue))
                    #expect(s["status"]?.object?["message"]?.string == want.status.message)
                }
                #expect((s["links"]?.array ?? []).count == want.links.count)
            }
        }
    }

    @Test("a collector's partial success is read from protobuf and JSON answers")
    func partialSuccess() {
        // ExportTraceServiceResponse { partial_success { rejected_spans: 3, error_message: "bad" } }
        let body: [UInt8] = [0x0A, 0x07, 0x08, 0x03, 0x12, 0x03, 0x62, 0x61, 0x64]
        #expect(ExportOutcomeReader.rejected(body, encoding: .protobuf)?.0 == 3)
        #expect(ExportOutcomeReader.rejected(body, encoding: .protobuf)?.1 == "bad")
        #expect(ExportOutcomeReader.rejected([], encoding: .protobuf) == nil)
        #expect(ExportOutcomeReader.rejected(Array("{\"partialSuccess\":{\"rejectedSpans\":\"2\",\"errorMessage\":\"x\"}}".utf8), encoding: .json)?.0 == 2)
        #expect(ExportOutcomeReader.rejected(Array("{}".utf8), encoding: .json) == nil)
        #expect(ExportOutcomeReader.rejected(Array("{\"partialSuccess\":{}}".utf8), encoding: .json) == nil)
    }
}
