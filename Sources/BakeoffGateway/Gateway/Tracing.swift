import BakeoffCore
import BakeoffHTTP
import BakeoffStore
import BakeoffTelemetry
import Synchronization

/// How a request joins a trace, decided when it arrives: the caller's trace (W3C `traceparent`) or one of its
/// own, the gateway's span in it, and what the upstream is told.
package struct RequestTrace: Sendable, Equatable {
    package var traceID: TraceID
    package var spanID: SpanID
    /// The caller's span, when the request came with a trace.
    package var parent: SpanID?
    package var traceState: String
    package var flags: UInt8
    /// Whether the gateway's span is exported: when the caller sampled its trace, or the request starts one.
    package var recorded: Bool
    /// `traceparent` (and `tracestate`) lines for the upstream request: the gateway's span as the parent when it
    /// is recorded, else the caller's context passed on as it came.
    package var upstreamHeaders: [String]

    /// The trace of a request with these headers; nil when the gateway neither exports spans nor has a caller's
    /// trace to pass on.
    package static func start(traceparent: String?, tracestate: String?, requestID: String, exporting: Bool) -> RequestTrace? {
        guard exporting || traceparent != nil else { return nil }
        let caller = traceparent.flatMap { TraceContext(traceparent: $0, tracestate: tracestate) }
        guard exporting || caller != nil else { return nil }
        let stateLine = caller.map { $0.traceState.isEmpty ? [] : ["tracestate: " + $0.traceState] } ?? []
        guard exporting else {
            guard let caller else { return nil }
            // Nothing is recorded: the caller's context goes on as it came (no span of the gateway's to derive).
            return RequestTrace(traceID: caller.traceID, spanID: caller.parentID, parent: caller.parentID, traceState: caller.traceState,
                                flags: caller.flags, recorded: false,
                                upstreamHeaders: ["traceparent: " + TraceContext.traceparent(trace: caller.traceID, span: caller.parentID, flags: caller.flags)] + stateLine)
        }
        let derived = derivedIDs(requestID: requestID)
        guard let caller else {
            return RequestTrace(traceID: derived.trace, spanID: derived.span, parent: nil, traceState: "", flags: 1, recorded: true,
                                upstreamHeaders: ["traceparent: " + TraceContext.traceparent(trace: derived.trace, span: derived.span, flags: 1)])
        }
        let parentForUpstream = caller.sampled ? derived.span : caller.parentID
        return RequestTrace(traceID: caller.traceID, spanID: derived.span, parent: caller.parentID, traceState: caller.traceState,
                            flags: caller.flags, recorded: caller.sampled,
                            upstreamHeaders: ["traceparent: " + TraceContext.traceparent(trace: caller.traceID, span: parentForUpstream, flags: caller.flags)] + stateLine)
    }

    /// The ids a request's span has without a caller's trace, from its request id: feedback finds its request's
    /// span from the id alone, after a restart or on another gateway.
    package static func derivedIDs(requestID: String) -> (trace: TraceID, span: SpanID) {
        let h = SHA256.hash(Array(requestID.utf8))
        func word(_ at: Int) -> UInt64 { h[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        let span = word(0) == 0 ? 1 : word(0)
        let trace = TraceID(high: word(8), low: word(16) == 0 && word(8) == 0 ? 1 : word(16))
        return (trace, SpanID(span))
    }
}

/// What a request's span needs that its event does not hold, fixed when the request is sent upstream.
package struct RequestSpanStart: Sendable {
    package var trace: RequestTrace
    /// `chat` or `text_completion` (GenAI's operation names).
    package var operation: String
    /// The model the upstream is asked for.
    package var requestModel: String
    package var serverAddress: String
    package var serverPort: Int?
    package var stream: Bool

    package init(trace: RequestTrace, endpoint: Endpoint, requestModel: String, upstreamURL: String, stream: Bool) {
        self.trace = trace
        operation = endpoint == .chatCompletions ? "chat" : "text_completion"
        self.requestModel = requestModel
        (serverAddress, serverPort) = Self.hostAndPort(upstreamURL)
        self.stream = stream
    }

    /// The host and port of an http(s) URL (the scheme's port when none is written).
    static func hostAndPort(_ url: String) -> (String, Int?) {
        var rest = Substring(url)
        var port: Int?
        if rest.hasPrefix("https://") { rest = rest.dropFirst(8); port = 443 } else if rest.hasPrefix("http://") { rest = rest.dropFirst(7); port = 80 }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostPort = authority.split(separator: "@").last ?? authority
        if hostPort.hasPrefix("["), let close = hostPort.firstIndex(of: "]") {
            let host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            return (String(host), after.hasPrefix(":") ? Int(after.dropFirst()) ?? port : port)
        }
        if let colon = hostPort.lastIndex(of: ":") {
            return (String(hostPort[..<colon]), Int(hostPort[hostPort.index(after: colon)...]) ?? port)
        }
        return (String(hostPort), port)
    }
}

/// The gateway's spans, as pure functions of what the request and its answer were (OpenTelemetry's GenAI
/// conventions, plus `bakeoff.*`).
package enum GatewaySpans {
    /// The span of a proxied request, once its answer is complete.
    package static func request(_ start: RequestSpanStart, event: EventRecord, completion: UpstreamReply.Completion) -> Span {
        let begin = UInt64(max(0, event.timestamp)) * 1000
        let end = begin + UInt64(max(0, (event.latencyMs ?? 0) * 1e6))
        var a: [Attribute] = [
            Attribute("gen_ai.operation.name", .string(start.operation)),
            Attribute("gen_ai.provider.name", .string("openai")),
            Attribute("gen_ai.request.model", .string(start.requestModel)),
            Attribute("gen_ai.request.stream", .bool(start.stream)),
            Attribute("server.address", .string(start.serverAddress)),
        ]
        if let port = start.serverPort { a.append(Attribute("server.port", .int(Int64(port)))) }
        if let model = completion.response.model { a.append(Attribute("gen_ai.response.model", .string(model))) }
        if let id = completion.response.id { a.append(Attribute("gen_ai.response.id", .string(id))) }
        if !completion.response.finishReasons.isEmpty { a.append(Attribute("gen_ai.response.finish_reasons", .strings(completion.response.finishReasons))) }
        if let n = event.inputTokens { a.append(Attribute("gen_ai.usage.input_tokens", .int(Int64(n)))) }
        if let n = event.outputTokens { a.append(Attribute("gen_ai.usage.output_tokens", .int(Int64(n)))) }
        if start.stream, let ttft = completion.ttftSeconds { a.append(Attribute("gen_ai.response.time_to_first_chunk", .double(ttft))) }
        a.append(Attribute("gen_ai.conversation.id", .string(event.conversationID.isEmpty ? event.requestID : event.conversationID)))
        a.append(Attribute("bakeoff.experiment", .string(event.experiment)))
        a.append(Attribute("bakeoff.variant", .string(event.variant)))
        a.append(Attribute("bakeoff.request_id", .string(event.requestID)))
        a.append(Attribute("bakeoff.status", .string(event.status)))
        if event.qa { a.append(Attribute("bakeoff.qa", .bool(true))) }
        var status = SpanStatus.unset
        if event.status != "ok" || completion.errorType != nil {
            let type = completion.errorType ?? event.status
            a.append(Attribute("error.type", .string(type)))
            let answered = completion.upstreamStatus.flatMap { $0 >= 400 ? "the upstream answered HTTP \($0)" : nil }
            status = SpanStatus(.error, message: completion.upstreamFailure ?? answered ?? type)
        }
        // Content only where the experiment logs it (log_content): traces often leave the team's own systems.
        if event.response != nil || event.prompt != nil || event.messages != nil {
            if let input = inputMessages(event, operation: start.operation) { a.append(Attribute("gen_ai.input.messages", .string(input))) }
            if let response = event.response {
                let finish = completion.response.finishReasons.first ?? (event.status == "ok" ? "stop" : "error")
                a.append(Attribute("gen_ai.output.messages", .string("[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
                    + JSONWriter.quote(response) + "}],\"finish_reason\":" + JSONWriter.quote(finish) + "}]")))
            }
            a.append(Attribute("bakeoff.user_id", .string(event.userID)))
        }
        return Span(traceID: start.trace.traceID, spanID: start.trace.spanID, parentSpanID: start.trace.parent,
                    traceState: start.trace.traceState, flags: start.trace.flags,
                    name: start.operation + " " + start.requestModel, kind: .client, start: begin, end: max(end, begin),
                    attributes: a, status: status)
    }

    /// The span of accepted feedback: a child of its request's span, linked to it.
    /// `requestSpan`: the request's span (`RequestTrace.derivedIDs`), in trace `trace`.
    package static func feedback(_ event: EventRecord, request: RequestInfo, trace: TraceID, requestSpan: SpanID, flags: UInt8) -> Span {
        let at = UInt64(max(0, event.timestamp)) * 1000
        var a: [Attribute] = [
            Attribute("bakeoff.experiment", .string(event.experiment)),
            Attribute("bakeoff.variant", .string(request.variant)),
            Attribute("bakeoff.request_id", .string(request.requestID)),
            Attribute("bakeoff.feedback.name", .string(event.name)),
            Attribute("bakeoff.feedback.value", .double(event.value)),
            Attribute("gen_ai.conversation.id", .string(request.conversationID.isEmpty ? request.requestID : request.conversationID)),
        ]
        a.append(Attribute("bakeoff.feedback.target", .string(event.requestID.isEmpty ? "conversation" : "request")))
        if event.qa { a.append(Attribute("bakeoff.qa", .bool(true))) }
        return Span(traceID: trace, spanID: SpanID.random(), parentSpanID: requestSpan, flags: flags, name: "feedback " + event.name,
                    kind: .internal, start: at, end: at, attributes: a, links: [SpanLink(traceID: trace, spanID: requestSpan)])
    }

    /// The request's messages in GenAI's form, `[{"role":..., "parts":[{"type":"text","content":...}]}]`.
    static func inputMessages(_ event: EventRecord, operation: String) -> String? {
        guard let messages = event.messages, let doc = try? JSONValue.parse(Array(messages.utf8)), let list = doc.root.array else {
            return event.prompt.map { "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":" + JSONWriter.quote($0) + "}]}]" }
        }
        var out: [String] = []
        for message in list {
            guard let m = message.object else { continue }
            let role = m["role"]?.string ?? "user"
            var parts: [String] = []
            if role == "tool" {
                parts.append("{\"type\":\"tool_call_response\"" + (m["tool_call_id"]?.string.map { ",\"id\":" + JSONWriter.quote($0) } ?? "")
                             + ",\"response\":" + JSONWriter.quote(text(of: m["content"])) + "}")
            } else {
                if let content = m["content"] {
                    if let s = content.string {
                        parts.append(textPart(s))
                    } else if let items = content.array {
                        for item in items {
                            guard let o = item.object else { continue }
                            let type = o["type"]?.string ?? "text"
                            if let t = o["text"]?.string { parts.append(textPart(t)) } else { parts.append("{\"type\":" + JSONWriter.quote(type) + "}") }
                        }
                    }
                }
                for call in m["tool_calls"]?.array ?? [] {
                    guard let c = call.object, let f = c["function"]?.object else { continue }
                    parts.append("{\"type\":\"tool_call\"" + (c["id"]?.string.map { ",\"id\":" + JSONWriter.quote($0) } ?? "")
                                 + ",\"name\":" + JSONWriter.quote(f["name"]?.string ?? "") + ",\"arguments\":" + JSONWriter.quote(f["arguments"]?.string ?? "") + "}")
                }
            }
            out.append("{\"role\":" + JSONWriter.quote(role) + ",\"parts\":[" + parts.joined(separator: ",") + "]}")
        }
        return "[" + out.joined(separator: ",") + "]"
    }

    private static func textPart(_ s: String) -> String { "{\"type\":\"text\",\"content\":" + JSONWriter.quote(s) + "}" }

    private static func text(of value: JSONValue?) -> String {
        if let s = value?.string { return s }
        return (value?.array ?? []).compactMap { $0.object?["text"]?.string }.joined(separator: "\n")
    }
}

/// The gateway's trace export: builds the spans and hands them to the exporter; remembers the callers' traces
/// of recent requests, so feedback joins the trace its request was in.
final class GatewayTracer: Sendable {
    let exporter: SpanExporter
    private let callerTraces = Mutex(CallerTraces())

    struct CallerTraces {
        var byRequest: [String: (TraceID, UInt8)] = [:]
        var order: [String] = []
        var next = 0
    }
    /// As many as the gateway's recent requests (`RecentRequests`).
    static let remembered = 1 << 17

    init(exporter: SpanExporter) { self.exporter = exporter }

    /// Notes a request's trace when it came from the caller (the only kind feedback cannot derive).
    func started(_ trace: RequestTrace, requestID: String) {
        guard trace.parent != nil else { return }
        callerTraces.withLock { c in
            if c.order.count < Self.remembered {
                c.order.append(requestID)
            } else {
                c.byRequest[c.order[c.next]] = nil
                c.order[c.next] = requestID
                c.next = (c.next + 1) % Self.remembered
            }
            c.byRequest[requestID] = (trace.traceID, trace.flags)
        }
    }

    func finished(_ start: RequestSpanStart, event: EventRecord, completion: UpstreamReply.Completion) {
        guard start.trace.recorded else { return }
        exporter.export(GatewaySpans.request(start, event: event, completion: completion))
    }

    /// Feedback accepted for `request` (the request itself, or the latest of the conversation it is about).
    func feedback(_ event: EventRecord, request: RequestInfo) {
        let derived = RequestTrace.derivedIDs(requestID: request.requestID)
        let (trace, flags) = callerTraces.withLock { $0.byRequest[request.requestID] } ?? (derived.trace, 1)
        guard flags & 1 == 1 else { return }
        exporter.export(GatewaySpans.feedback(event, request: request, trace: trace, requestSpan: derived.span, flags: flags))
    }
}
