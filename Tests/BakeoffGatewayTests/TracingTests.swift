import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffStore
import BakeoffTelemetry
import BakeoffTestSupport
import Foundation
import Testing

@Suite("Request and feedback spans (OpenTelemetry GenAI conventions)")
struct TracingTests {
    static let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test("a request without a trace starts one, with ids derived from its request id, and tells the upstream")
    func ownTrace() throws {
        let t = try #require(RequestTrace.start(traceparent: nil, tracestate: nil, requestID: "req_1", exporting: true))
        let ids = RequestTrace.derivedIDs(requestID: "req_1")
        #expect(t.traceID == ids.trace && t.spanID == ids.span && t.parent == nil && t.recorded)
        #expect(t.upstreamHeaders == ["traceparent: 00-\(ids.trace.hex)-\(ids.span.hex)-01"])
        #expect(RequestTrace.derivedIDs(requestID: "req_2").span != ids.span)
        #expect(RequestTrace.start(traceparent: nil, tracestate: nil, requestID: "req_1", exporting: false) == nil)
    }

    @Test("a caller's trace is continued: its trace id, its span as parent, the gateway's span as the upstream's parent")
    func callerTrace() throws {
        let t = try #require(RequestTrace.start(traceparent: Self.caller, tracestate: "rojo=1", requestID: "req_1", exporting: true))
        #expect(t.traceID.hex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(t.parent?.hex == "00f067aa0ba902b7")
        #expect(t.recorded && t.traceState == "rojo=1")
        #expect(t.upstreamHeaders == ["traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-\(t.spanID.hex)-01", "tracestate: rojo=1"])
    }

    @Test("an unsampled caller's trace is passed on untouched and not recorded; so is any trace when nothing is exported")
    func passedOn() throws {
        let unsampled = String(Self.caller.dropLast(2)) + "00"
        let t = try #require(RequestTrace.start(traceparent: unsampled, tracestate: nil, requestID: "req_1", exporting: true))
        #expect(!t.recorded)
        #expect(t.upstreamHeaders == ["traceparent: " + unsampled])
        let off = try #require(RequestTrace.start(traceparent: Self.caller, tracestate: "a=b", requestID: "req_1", exporting: false))
        #expect(!off.recorded && off.upstreamHeaders == ["traceparent: " + Self.caller, "tracestate: a=b"])
        // An invalid header starts a trace of the gateway's own.
        let bad = try #require(RequestTrace.start(traceparent: "00-zz", tracestate: nil, requestID: "req_1", exporting: true))
        #expect(bad.parent == nil && bad.traceID == RequestTrace.derivedIDs(requestID: "req_1").trace)
    }

    static func completion(stream: Bool, status: String = "ok", upstreamStatus: Int? = 200, logContent: Bool = false) -> (EventRecord, UpstreamReply.Completion) {
        var record = EventRecord(kind: .request, timestamp: 1_765_000_000_000_000, experiment: "exp")
        record.variant = "treatment"
        record.userID = "alice"
        record.requestID = "req_1"
        record.conversationID = "conv-9"
        record.latencyMs = 250
        record.ttftMs = stream ? 40 : nil
        record.inputTokens = 21
        record.outputTokens = 7
        record.status = status
        if logContent {
            record.messages = #"[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}]"#
            record.prompt = "be brief\nhi"
            record.response = "hello"
        }
        var context = UpstreamReply.Context(endpoint: .chatCompletions, stream: stream, clientWantsUsage: false, logContent: logContent,
                                            responseHeaders: [], started: 0, budgetLimit: 1000, record: record, readsResponseFacts: true)
        context.record = record
        var reply = UpstreamReply(context)
        _ = reply.responded(UpstreamResponseHead(status: upstreamStatus ?? 200, contentType: stream ? "text/event-stream" : "application/json"))
        if stream {
            let chunks = """
                data: {"id":"chatcmpl-1","model":"m2-2025","choices":[{"index":0,"delta":{"content":"hel"},"finish_reason":null}]}

                data: {"id":"chatcmpl-1","model":"m2-2025","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}

                data: [DONE]


                """
            _ = Array(chunks.utf8).withUnsafeBytes { reply.stream($0) { 40_000_000 } }
        } else {
            let body = #"{"id":"chatcmpl-2","model":"m2-2025","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"length"}],"usage":{"prompt_tokens":21,"completion_tokens":7}}"#
            _ = Array(body.utf8).withUnsafeBytes { reply.buffer($0, reserved: true) }
        }
        var done = reply.finish(.completed(status: upstreamStatus ?? 200), clientGone: false, now: 250_000_000)
        done.event = record
        done.event.latencyMs = 250
        return (record, done)
    }

    func attributes(_ span: Span) -> [String: AttributeValue] {
        Dictionary(span.attributes.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    @Test("a streamed chat request's span: name, kind, times, GenAI attributes, the answer's id, model and finish reason")
    func requestSpan() throws {
        let trace = try #require(RequestTrace.start(traceparent: Self.caller, tracestate: nil, requestID: "req_1", exporting: true))
        let start = RequestSpanStart(trace: trace, endpoint: .chatCompletions, requestModel: "m2", upstreamURL: "http://10.0.0.2:8000/v1/chat/completions", stream: true)
        let (event, done) = Self.completion(stream: true)
        let span = GatewaySpans.request(start, event: event, completion: done)
        #expect(span.name == "chat m2" && span.kind == .client)
        #expect(span.traceID == trace.traceID && span.parentSpanID == trace.parent && span.spanID == trace.spanID)
        #expect(span.start == 1_765_000_000_000_000_000 && span.end == 1_765_000_000_250_000_000)
        let a = attributes(span)
        #expect(a["gen_ai.operation.name"] == .string("chat"))
        #expect(a["gen_ai.provider.name"] == .string("openai"))
        #expect(a["gen_ai.request.model"] == .string("m2"))
        #expect(a["gen_ai.response.model"] == .string("m2-2025"))
        #expect(a["gen_ai.response.id"] == .string("chatcmpl-1"))
        #expect(a["gen_ai.response.finish_reasons"] == .strings(["stop"]))
        #expect(a["gen_ai.usage.input_tokens"] == .int(21) && a["gen_ai.usage.output_tokens"] == .int(7))
        #expect(a["gen_ai.request.stream"] == .bool(true))
        #expect(a["gen_ai.response.time_to_first_chunk"] == .double(0.04))
        #expect(a["gen_ai.conversation.id"] == .string("conv-9"))
        #expect(a["server.address"] == .string("10.0.0.2") && a["server.port"] == .int(8000))
        #expect(a["bakeoff.experiment"] == .string("exp") && a["bakeoff.variant"] == .string("treatment") && a["bakeoff.request_id"] == .string("req_1"))
        #expect(a["error.type"] == nil && span.status == .unset)
        #expect(a["gen_ai.input.messages"] == nil && a["bakeoff.user_id"] == nil, "no content without log_content")
    }

    @Test("a failed request's span has error.type (the upstream's status, else the gateway's) and status ERROR")
    func errorSpan() throws {
        let trace = try #require(RequestTrace.start(traceparent: nil, tracestate: nil, requestID: "req_1", exporting: true))
        let start = RequestSpanStart(trace: trace, endpoint: .completions, requestModel: "m", upstreamURL: "https://api.example.com/v1/completions", stream: false)
        let (event, done) = Self.completion(stream: false, status: "upstream_error", upstreamStatus: 503)
        let span = GatewaySpans.request(start, event: event, completion: done)
        #expect(span.name == "text_completion m")
        #expect(attributes(span)["error.type"] == .string("503"))
        #expect(attributes(span)["server.port"] == .int(443))
        #expect(span.status.code == .error)
        #expect(span.status.message == "answered HTTP 503")
    }

    @Test("error.type names the class of each failure", arguments: [
        (UpstreamOutcome.completed(status: 429), false, "429"),
        (.failed(.timeout, message: "no answer within 100 ms"), false, "timeout"),
        (.failed(.unreachable, message: "refused"), false, "unreachable"),
        (.failed(.brokenResponse, message: "broke off"), false, "broken_response"),
        (.failed(.shutdown, message: "stopping"), false, "gateway_shutdown"),
        (.cancelled, false, "client_cancelled"),
        (.completed(status: 200), true, "client_cancelled"),
    ])
    func errorTypes(_ outcome: UpstreamOutcome, _ clientGone: Bool, _ expected: String) throws {
        let record = EventRecord(kind: .request, timestamp: 0, experiment: "exp")
        var reply = UpstreamReply(UpstreamReply.Context(endpoint: .chatCompletions, stream: false, clientWantsUsage: false, logContent: false,
                                                        responseHeaders: [], started: 0, budgetLimit: 1000, record: record))
        if case .completed(let status) = outcome { _ = reply.responded(UpstreamResponseHead(status: status, contentType: "application/json")) }
        let done = reply.finish(outcome, clientGone: clientGone, now: 1)
        #expect(done.errorType == expected)
        let trace = try #require(RequestTrace.start(traceparent: nil, tracestate: nil, requestID: "r", exporting: true))
        let span = GatewaySpans.request(RequestSpanStart(trace: trace, endpoint: .chatCompletions, requestModel: "m", upstreamURL: "http://h/v1", stream: false),
                                        event: done.event, completion: done)
        #expect(attributes(span)["error.type"] == .string(expected))
        #expect(span.status.code == .error && !span.status.message.isEmpty)
        if expected == "429" { #expect(span.status.message == "the upstream answered HTTP 429") }
    }

    @Test("with log_content, the messages in GenAI's form and the user id")
    func content() throws {
        let trace = try #require(RequestTrace.start(traceparent: nil, tracestate: nil, requestID: "req_1", exporting: true))
        let start = RequestSpanStart(trace: trace, endpoint: .chatCompletions, requestModel: "m2", upstreamURL: "http://h/v1/chat/completions", stream: false)
        let (event, done) = Self.completion(stream: false, logContent: true)
        let a = attributes(GatewaySpans.request(start, event: event, completion: done))
        #expect(a["gen_ai.input.messages"] == .string(#"[{"role":"system","parts":[{"type":"text","content":"be brief"}]},{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#))
        #expect(a["gen_ai.output.messages"] == .string(#"[{"role":"assistant","parts":[{"type":"text","content":"hello"}],"finish_reason":"length"}]"#))
        #expect(a["bakeoff.user_id"] == .string("alice"))
    }

    @Test("feedback is a child of its request's span in the request's trace, linked to it")
    func feedbackSpan() {
        var event = EventRecord(kind: .feedback, timestamp: 1_765_000_100_000_000, experiment: "exp")
        event.name = "thumbs_up"
        event.value = 1
        event.requestID = "req_1"
        let request = RequestInfo(experiment: "exp", variant: "treatment", userID: "alice", conversationID: "conv-9", requestID: "req_1")
        let ids = RequestTrace.derivedIDs(requestID: "req_1")
        let span = GatewaySpans.feedback(event, request: request, trace: ids.trace, requestSpan: ids.span, flags: 1)
        #expect(span.name == "feedback thumbs_up" && span.kind == .internal)
        #expect(span.traceID == ids.trace && span.parentSpanID == ids.span)
        #expect(span.links == [SpanLink(traceID: ids.trace, spanID: ids.span)])
        let a = attributes(span)
        #expect(a["bakeoff.feedback.value"] == .double(1) && a["bakeoff.variant"] == .string("treatment") && a["bakeoff.request_id"] == .string("req_1"))
        #expect(span.start == 1_765_000_100_000_000_000)
    }
}

@Suite("Gateway in process: spans of requests and feedback")
struct GatewayTracingTests {
    static let alice = Fixture.user(in: "control")
    static let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    /// The spans an exporter sent (OTLP/JSON), each as its JSON object.
    static func exportedSpans(_ collector: ScriptedCollector) throws -> [JSONObject] {
        try collector.calls.withLock { $0 }.flatMap { call -> [JSONObject] in
            let doc = try JSONValue.parse(call.body)
            let rs = doc.root.object?["resourceSpans"]?.array ?? []
            return rs.flatMap { ($0.object?["scopeSpans"]?.array ?? []).flatMap { ($0.object?["spans"]?.array ?? []).compactMap(\.object) } }
        }
    }

    static func attribute(_ span: JSONObject, _ key: String) -> JSONObject? {
        span["attributes"]?.array?.first { $0.object?["key"]?.string == key }?.object?["value"]?.object
    }

    @Test("a request in the caller's trace: the upstream hears of the gateway's span, the span and its feedback reach the collector")
    func requestAndFeedback() throws {
        let collector = ScriptedCollector()
        let exporter = SpanExporter(settings: ExportSettings(endpoint: "http://collector.test/v1/traces", encoding: .json, exportIntervalMs: 10),
                                    source: TraceSource(resource: [], scopeName: "t", scopeVersion: "0"), transport: collector, log: { _ in })
        let h = try GatewayHarness(spans: exporter, always: .json(GatewayHarness.completion(prompt: 12, completion: 4), after: 250_000_000))
        let answer = h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.alice), headers: [("traceparent", Self.caller)])
        #expect(answer.status == 200)
        let requestID = try #require(answer.header("x-bakeoff-request-id"))
        let upstreamHeaders = try #require(h.upstream.calls.first).request.headers
        let span = RequestTrace.derivedIDs(requestID: requestID).span
        #expect(upstreamHeaders.contains("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-\(span.hex)-01"))
        let feedback = h.send("POST", "/v1/feedback", json: GatewayFeedbackTests.feedback(requestID))
        #expect(feedback.status == 200)
        exporter.shutdown(graceSeconds: 5)
        let spans = try Self.exportedSpans(collector)
        #expect(spans.count == 2)
        let request = try #require(spans.first { $0["name"]?.string == "chat m-control" })
        #expect(request["traceId"]?.string == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(request["parentSpanId"]?.string == "00f067aa0ba902b7")
        #expect(request["spanId"]?.string == span.hex)
        #expect(Self.attribute(request, "bakeoff.request_id")?["stringValue"]?.string == requestID)
        #expect(Self.attribute(request, "gen_ai.usage.input_tokens")?["intValue"]?.string == "12")
        #expect(Self.attribute(request, "server.address")?["stringValue"]?.string == "control.test")
        let fb = try #require(spans.first { $0["name"]?.string == "feedback csat" })
        #expect(fb["traceId"]?.string == "4bf92f3577b34da6a3ce929d0e0e4736", "feedback joins the caller's trace, remembered by the gateway")
        #expect(fb["parentSpanId"]?.string == span.hex)
        #expect(Self.attribute(fb, "bakeoff.feedback.value")?["doubleValue"]?.number == 4)
    }

    @Test("without export the caller's traceparent still reaches the upstream, untouched")
    func passedOnWithoutExport() throws {
        let h = try GatewayHarness()
        _ = h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.alice), headers: [("traceparent", Self.caller), ("tracestate", "k=v")])
        let headers = try #require(h.upstream.calls.first).request.headers
        #expect(headers.contains("traceparent: " + Self.caller) && headers.contains("tracestate: k=v"))
        _ = h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.alice))
        #expect(!(h.upstream.calls.last?.request.headers ?? []).contains { $0.hasPrefix("traceparent") })
    }
}
