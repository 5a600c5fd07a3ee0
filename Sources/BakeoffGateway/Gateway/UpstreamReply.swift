import BakeoffCore
import BakeoffHTTP

/// What the client gets of an upstream's answer, and the request's event: a state machine fed what the
/// upstream call reports, returning what to send (no I/O; `ProxiedRequest` carries it out). It measures
/// latency, time to first token and tokens, and forwards a stream's events as they arrive (less the usage
/// chunk the gateway asked for on the client's behalf).
package struct UpstreamReply {
    /// What the plan fixed before the call.
    package struct Context: Sendable {
        package var endpoint: Endpoint
        /// The client asked for a stream.
        package var stream: Bool
        /// The client asked for the usage chunk itself (else it is taken out).
        package var clientWantsUsage: Bool
        /// Prompt and response text go into the event.
        package var logContent: Bool
        /// The gateway's headers on every answer (experiment, variant, request id, feedback token).
        package var responseHeaders: [(String, String)]
        /// Monotonic nanoseconds when the request arrived.
        package var started: UInt64
        /// The memory budget, for the message of a refusal over it.
        package var budgetLimit: Int
        /// The request's event so far.
        package var record: EventRecord
        /// What the answer says of itself (id, model, finish reasons) is read: the request's span shows it.
        package var readsResponseFacts = false

        package init(endpoint: Endpoint, stream: Bool, clientWantsUsage: Bool, logContent: Bool, responseHeaders: [(String, String)],
                     started: UInt64, budgetLimit: Int, record: EventRecord, readsResponseFacts: Bool = false) {
            self.endpoint = endpoint
            self.stream = stream
            self.clientWantsUsage = clientWantsUsage
            self.logContent = logContent
            self.responseHeaders = responseHeaders
            self.started = started
            self.budgetLimit = budgetLimit
            self.record = record
            self.readsResponseFacts = readsResponseFacts
        }
    }

    /// What happens to a piece of the answer.
    package enum Mode: Equatable {
        /// No answer yet, or a whole one being held until it is complete.
        case buffering
        /// Forwarded as it arrives.
        case streaming
        /// Dropped: the answer did not fit in the memory budget.
        case dropping
    }

    /// The answer the client gets at the end.
    package enum ClientReply {
        /// A complete response.
        case respond(status: Int, headers: [(String, String)], body: [UInt8])
        /// The end of a started stream: `tail` written (if any), then the stream finished (`failed` aborts it).
        case endStream(tail: [UInt8], failed: Bool)
    }

    /// What to do once the call is over.
    package struct Completion {
        package var reply: ClientReply
        /// The request's event, complete.
        package var event: EventRecord
        package var latencySeconds: Double
        package var ttftSeconds: Double?
        /// What to say about the upstream on stderr (rate-limited), if anything went wrong there.
        package var upstreamFailure: String?
        /// A status to count as the gateway's own refusal (the answer was over the memory budget).
        package var refusedStatus: Int?
        /// The usage the upstream reported was impossible (left out of the event).
        package var implausibleUsage: Bool
        /// The answer carried a completion's text (`choices[0].message.content`, `text`, or a stream's
        /// content): a 200 that is not a completion (an HTML page, `{}`) has none.
        package var answered: Bool
        /// What the answer said of itself (with `Context.readsResponseFacts`).
        package var response = ResponseFacts()
        /// The upstream's HTTP status, when it answered.
        package var upstreamStatus: Int?
        /// The class of the failure, for a span's `error.type` (nil when the request succeeded): the upstream's
        /// HTTP status ("503"), `timeout`, `unreachable`, `broken_response`, `stream_error`, `incomplete_stream`,
        /// `truncated_stream`, `client_cancelled`, `gateway_overloaded` or `gateway_shutdown`.
        package var errorType: String?
    }

    package let context: Context
    package private(set) var mode = Mode.buffering
    private var contentType: String?
    /// The upstream's rate-limit headers, which the client sees.
    private var passedHeaders: [(String, String)] = []
    private var body: [UInt8] = []
    private var sse = SSEParser()
    private var ttftMs: Double?
    private var usage: TokenUsage?
    private var streamError: String?
    private var text = ""
    private var answered = false
    private var facts = ResponseFacts()
    private var upstreamStatus: Int?
    /// When the stream's `[DONE]` was forwarded: the answer is complete, whatever the client does next.
    private var doneAt: UInt64?
    /// Some choice of the stream got a `finish_reason`.
    private var finishSeen = false

    package init(_ context: Context) { self.context = context }

    /// The upstream's status and headers: the head of the client's stream to start, when the answer streams.
    package mutating func responded(_ head: UpstreamResponseHead) -> [(String, String)]? {
        contentType = head.contentType
        upstreamStatus = head.status
        passedHeaders = head.headers.filter { $0.name == "retry-after" || $0.name.hasPrefix("x-ratelimit-") }.map { ($0.name, $0.value) }
        guard context.stream && head.status == 200 && (head.contentType?.contains("text/event-stream") ?? false) else { return nil }
        mode = .streaming
        return [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")] + context.responseHeaders + passedHeaders
    }

    /// A piece of a whole answer, `reserved` in the memory budget or not: false when it did not fit (the
    /// call is then to be cancelled; the client gets 503).
    package mutating func buffer(_ bytes: UnsafeRawBufferPointer, reserved: Bool) -> Bool {
        guard mode == .buffering else { return true }
        guard reserved else {
            mode = .dropping
            body = []
            return false
        }
        body.append(contentsOf: bytes)
        return true
    }

    /// A piece of a streamed answer: the bytes to forward now. `now` is read only while the first token is
    /// awaited.
    package mutating func stream(_ bytes: UnsafeRawBufferPointer, now: () -> UInt64) -> [UInt8] {
        var out: [UInt8] = []
        var parser = sse
        sse = SSEParser()  // `forward` mutates self: the parser is taken out for the call
        parser.feed(bytes) { raw, data in forward(raw, data, into: &out, now: now) }
        sse = parser
        return out
    }

    /// Notes what a stream event says and appends it to what the client gets (unless it is the usage chunk
    /// the gateway asked for on the client's behalf).
    private mutating func forward(_ raw: UnsafeRawBufferPointer, _ data: UnsafeRawBufferPointer?, into out: inout [UInt8], now: () -> UInt64) {
        // After the first token, a chunk matters only for its usage or an error (or its text, when content
        // is logged): most chunks skip the full inspection.
        if let data, ttftMs == nil || context.logContent || context.readsResponseFacts || Self.mayCarryUsageOrError(data) {
            let info = ChunkInfo.inspect(data, endpoint: context.endpoint, includeText: context.logContent,
                                         includeResponse: context.readsResponseFacts)
            if context.readsResponseFacts {
                if facts.id == nil { facts.id = info.response.id }
                if facts.model == nil { facts.model = info.response.model }
                facts.finishReasons += info.response.finishReasons
            }
            if let u = info.usage { usage = u }
            if info.finishes { finishSeen = true }
            if info.isDone && doneAt == nil { doneAt = now() }
            if info.hasContent && ttftMs == nil { ttftMs = Double(now() &- context.started) / 1e6 }
            if let e = info.error { streamError = e }
            if let t = info.text {
                answered = true
                if context.logContent { text += t }
            }
            if info.isUsageOnly && !context.clientWantsUsage { return }
        }
        out.append(contentsOf: raw)
    }

    /// Whether a chunk's payload has `"usage":` followed by an object, an `"error"` key, a `"finish_reason"`
    /// that is a string, or is not a plain JSON object (e.g. `[DONE]`): a quick byte scan that can only err
    /// towards a full inspection.
    package static func mayCarryUsageOrError(_ data: UnsafeRawBufferPointer) -> Bool {
        let n = data.count
        guard n > 0, data[0] == UInt8(ascii: "{") else { return true }
        let finishReason: StaticString = "finish_reason\""
        var i = 0
        while i + 7 <= n {
            if data[i] == 0x22 && i + 15 <= n && data[i + 1] == 0x66 && data[i + 14] == 0x22
                && finishReason.withUTF8Buffer({ key in (0..<14).allSatisfy { data[i + 1 + $0] == key[$0] } }) {
                var j = i + 15
                while j < n && (data[j] == 0x20 || data[j] == 0x3A || data[j] == 0x09 || data[j] == 0x0A || data[j] == 0x0D) { j += 1 }
                if j < n && data[j] == 0x22 { return true }
            }
            if data[i] == 0x22 {
                // "usage" or "error"
                if data[i + 6] == 0x22 {
                    let a = data[i + 1], b = data[i + 2], c = data[i + 3], d = data[i + 4], e = data[i + 5]
                    if a == 0x65 && b == 0x72 && c == 0x72 && d == 0x6F && e == 0x72 { return true }  // error
                    if a == 0x75 && b == 0x73 && c == 0x61 && d == 0x67 && e == 0x65 {  // usage
                        var j = i + 7
                        while j < n && (data[j] == 0x20 || data[j] == 0x3A || data[j] == 0x09 || data[j] == 0x0A || data[j] == 0x0D) { j += 1 }
                        if j < n && data[j] != 0x6E { return true }  // anything but null
                    }
                }
            } else if data[i] == 0x5C {
                return true  // escapes: let the real parser decide
            }
            i += 1
        }
        return false
    }

    /// The call is over: the client's answer and the request's event. `clientGone`: the client left first.
    package mutating func finish(_ outcome: UpstreamOutcome, clientGone: Bool, now: UInt64) -> Completion {
        // A stream is complete at its [DONE]: a client that hangs up then (as OpenAI's SDK does, before the
        // upstream's last bytes) had its whole answer, and the request ended there.
        let complete = doneAt != nil
        let endedEarly = complete && (outcome == .cancelled || clientGone)
        let outcome = complete && outcome == .cancelled ? .completed(status: upstreamStatus ?? 200) : outcome
        let clientGone = clientGone && !complete
        let latencyMs = Double((endedEarly ? doneAt ?? now : now) &- context.started) / 1e6
        let json = [("Content-Type", "application/json")]
        var record = context.record
        let reply: ClientReply
        var upstreamFailure: String?
        var refusedStatus: Int?
        var errorType: String?
        switch outcome {
        case _ where mode == .dropping && !clientGone:
            // Cancelled for the budget (or completed before the cancel took): the answer was dropped.
            let error = OpenAIError.overBudget(limit: context.budgetLimit)
            record.status = "gateway_overloaded"
            errorType = record.status
            refusedStatus = error.status
            reply = .respond(status: error.status, headers: json + OpenAIError.overBudgetHeaders + context.responseHeaders, body: error.body)
        case .completed(let status):
            if mode == .streaming {
                var out: [UInt8] = []
                var parser = sse
                sse = SSEParser()
                let unfinished = parser.finish { raw, data in forward(raw, data, into: &out, now: { now }) }
                out += unfinished
                record.status = streamError == nil ? "ok" : "upstream_error"
                if let streamError {
                    upstreamFailure = "broke off a stream: \(streamError)"
                    errorType = "stream_error"
                } else if doneAt == nil && !finishSeen {
                    // Ended without [DONE] or a finish_reason (llama.cpp's server answers a prompt over its
                    // context so: an empty stream): the client gets an error event rather than an answer that
                    // looks complete.
                    let error = OpenAIError(status: 502, message: "the upstream ended its stream without [DONE] or a finish_reason", type: "server_error", code: "upstream_incomplete_stream")
                    out += error.sseEvent
                    record.status = "upstream_error"
                    upstreamFailure = "ended a stream without [DONE] or a finish_reason"
                    errorType = "incomplete_stream"
                } else if !finishSeen {
                    // [DONE] after answers that never said why they ended: cut short (llama.cpp's server stops a
                    // stream so when another request waits), not a complete answer.
                    record.status = "upstream_error"
                    upstreamFailure = "ended a stream with [DONE] but no finish_reason (cut short)"
                    errorType = "truncated_stream"
                }
                reply = .endStream(tail: out, failed: false)
            } else {
                if (200..<300).contains(status) {
                    let info = body.withUnsafeBytes { CompletionInfo.inspect($0, endpoint: context.endpoint) }
                    usage = info.usage
                    facts = info.response
                    answered = info.text != nil
                    if context.logContent, let t = info.text { text = t }
                    record.status = "ok"
                } else {
                    record.status = "upstream_error"
                    errorType = String(status)
                    if status >= 500 { upstreamFailure = "answered HTTP \(status)" }
                }
                reply = .respond(status: status, headers: [("Content-Type", contentType ?? "application/json")] + context.responseHeaders + passedHeaders, body: body)
            }
        case .failed(let failure, let message):
            if failure != .shutdown { upstreamFailure = "failed: \(failure.rawValue): \(message)" }
            errorType = failure.errorType
            let error: OpenAIError
            switch failure {
            case .timeout:
                error = OpenAIError(status: 504, message: message, type: "server_error", code: "upstream_timeout")
                record.status = "timeout"
            case .unreachable:
                error = OpenAIError(status: 502, message: message, type: "server_error", code: "upstream_unreachable")
                record.status = "upstream_error"
            case .brokenResponse:
                error = OpenAIError(status: 502, message: message, type: "server_error", code: "upstream_broken_response")
                record.status = "upstream_error"
            case .shutdown:
                error = OpenAIError(status: 503, message: message, type: "server_error", code: "shutting_down")
                record.status = "gateway_shutdown"
            }
            reply = mode == .streaming
                ? .endStream(tail: error.sseEvent, failed: false)
                : .respond(status: error.status, headers: json + context.responseHeaders, body: error.body)
        case .cancelled:
            record.status = "client_cancelled"
            errorType = record.status
            reply = mode == .streaming ? .endStream(tail: [], failed: true) : .respond(status: 499, headers: context.responseHeaders, body: [])
        }
        if clientGone {
            record.status = "client_cancelled"
            errorType = record.status
        }
        record.latencyMs = latencyMs
        record.ttftMs = ttftMs
        // A usage no model produces (negative, or billions of tokens) is left out, and counted.
        var implausible = false
        if let u = usage, !u.isPlausible {
            implausible = true
            usage = nil
        }
        record.inputTokens = usage?.input
        record.outputTokens = usage?.output
        record.usageMissing = usage == nil && !implausible && record.status == "ok"
        if context.logContent { record.response = text }
        body = []
        return Completion(reply: reply, event: record, latencySeconds: latencyMs / 1000, ttftSeconds: ttftMs.map { $0 / 1000 },
                          upstreamFailure: upstreamFailure, refusedStatus: refusedStatus, implausibleUsage: implausible, answered: answered,
                          response: facts, upstreamStatus: upstreamStatus, errorType: errorType)
    }
}

extension UpstreamFailure {
    /// The failure's name in a span's `error.type`.
    var errorType: String {
        switch self {
        case .unreachable: "unreachable"
        case .timeout: "timeout"
        case .brokenResponse: "broken_response"
        case .shutdown: "gateway_shutdown"
        }
    }
}
