import BakeoffCore
import Synchronization
import BakeoffHTTP

/// One client request on its way through an upstream and back: forwards the answer (streamed chunks as
/// they arrive), measures latency, time to first token and tokens, and writes the request's event once.
final class ProxiedRequest: @unchecked Sendable {
    let gateway: Gateway
    let exchange: HTTPExchange
    let call: UpstreamCall
    let endpoint: Endpoint
    let stream: Bool
    let clientWantsUsage: Bool
    let started: UInt64
    let logContent: Bool
    let responseHeaders: [(String, String)]

    /// What the client's thread (MHD) and the upstream's thread (curl) share.
    struct Shared {
        var finished = false
        var clientGone = false
    }
    private let shared = Mutex(Shared())

    // Touched only on the upstream client's thread, where all call callbacks run in order.
    private var record: EventRecord
    private var streaming = false
    private var contentType: String?
    private var body: [UInt8] = []
    private var sse = SSEParser()
    private var ttftMs: Double?
    private var usage: TokenUsage?
    private var streamError: String?
    private var text = ""
    /// The upstream's answer did not fit in the memory budget: the call was cancelled, the client gets 503.
    private var overBudget = false

    init(gateway: Gateway, exchange: HTTPExchange, call: UpstreamCall, endpoint: Endpoint, stream: Bool, clientWantsUsage: Bool,
         started: UInt64, record: EventRecord, logContent: Bool, responseHeaders: [(String, String)]) {
        self.gateway = gateway
        self.exchange = exchange
        self.call = call
        self.endpoint = endpoint
        self.stream = stream
        self.clientWantsUsage = clientWantsUsage
        self.started = started
        self.logContent = logContent
        self.responseHeaders = responseHeaders
        self.record = record
    }

    func begin() {
        exchange.onClientGone = { [self] in
            let cancel = shared.withLock { s -> Bool in
                guard !s.finished else { return false }
                s.clientGone = true
                return true
            }
            if cancel { gateway.upstream.cancel(call) }
        }
        call.onResponse = { [self] status, type in responded(status: status, contentType: type) }
        call.onData = { [self] bytes in received(bytes) }
        call.onFinish = { [self] outcome in finished(outcome) }
        gateway.upstream.start(call)
    }

    /// The upstream's headers a client should see: rate limits and when to retry.
    private var passedHeaders: [(String, String)] {
        call.responseHeaders.filter { $0.name == "retry-after" || $0.name.hasPrefix("x-ratelimit-") }.map { ($0.name, $0.value) }
    }

    private func responded(status: Int, contentType: String?) {
        self.contentType = contentType
        streaming = stream && status == 200 && (contentType?.contains("text/event-stream") ?? false)
        if streaming {
            exchange.startStream(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")] + responseHeaders + passedHeaders)
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        guard streaming else {
            // The answer is held until it is complete: it counts against the memory budget until sent.
            guard !overBudget else { return }
            guard exchange.reserveBuffer(bytes.count) else {
                overBudget = true
                body = []
                gateway.upstream.cancel(call)
                return
            }
            body.append(contentsOf: bytes)
            return
        }
        var out: [UInt8] = []
        sse.feed(bytes) { raw, data in forward(raw, data, into: &out) }
        if !out.isEmpty && !exchange.write(out) {
            // The client is gone or stopped reading: stop the upstream too.
            shared.withLock { $0.clientGone = true }
            gateway.upstream.cancel(call)
        }
    }

    /// Notes what a stream event says and appends it to what the client gets (unless it is the usage chunk
    /// the gateway asked for on the client's behalf).
    private func forward(_ raw: UnsafeRawBufferPointer, _ data: UnsafeRawBufferPointer?, into out: inout [UInt8]) {
        // After the first token, a chunk matters only for its usage or an error (or its text, when content
        // is logged): most chunks skip the full inspection.
        if let data, ttftMs == nil || logContent || Self.mayCarryUsageOrError(data) {
            let info = ChunkInfo.inspect(data, endpoint: endpoint, includeText: logContent)
            if let u = info.usage { usage = u }
            if info.hasContent && ttftMs == nil { ttftMs = MonotonicClock.milliseconds(since: started) }
            if let e = info.error { streamError = e }
            if logContent, let t = info.text { text += t }
            if info.isUsageOnly && !clientWantsUsage { return }
        }
        out.append(contentsOf: raw)
    }

    /// Whether a chunk's payload has `"usage":` followed by an object, or an `"error"` key, or is not a plain
    /// JSON object (e.g. `[DONE]`): a quick byte scan that can only err towards a full inspection.
    static func mayCarryUsageOrError(_ data: UnsafeRawBufferPointer) -> Bool {
        let n = data.count
        guard n > 0, data[0] == UInt8(ascii: "{") else { return true }
        var i = 0
        while i + 7 <= n {
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

    /// One line on stderr about this call's upstream, rate-limited per upstream.
    private func logUpstreamFailure(_ what: @autoclosure () -> String) {
        gateway.upstreamLog.note(call.url, "upstream \(call.url) (\(record.experiment)/\(record.variant)) \(what())")
    }

    private func finished(_ outcome: UpstreamOutcome) {
        let latencyMs = MonotonicClock.milliseconds(since: started)
        guard let clientGone = shared.withLock({ s -> Bool? in
            guard !s.finished else { return nil }
            s.finished = true
            return s.clientGone
        }) else { return }
        var record = self.record
        switch outcome {
        case _ where overBudget && !clientGone:
            // Cancelled for the budget (or completed before the cancel took): the answer was dropped.
            let error = OpenAIError.overBudget(limit: exchange.budget.limit)
            record.status = "gateway_overloaded"
            gateway.metrics.recordRejected(status: error.status)
            exchange.respond(status: error.status, headers: [("Content-Type", "application/json")] + OpenAIError.overBudgetHeaders + responseHeaders, body: error.body)
        case .completed(let status):
            if streaming {
                var out: [UInt8] = []
                let unfinished = sse.finish { raw, data in forward(raw, data, into: &out) }
                out += unfinished
                if !out.isEmpty { exchange.write(out) }
                exchange.finish()
                record.status = streamError == nil ? "ok" : "upstream_error"
                if let streamError {
                    logUpstreamFailure("broke off a stream: \(streamError)")
                }
            } else {
                let body = self.body
                if (200..<300).contains(status) {
                    let info = body.withUnsafeBytes { CompletionInfo.inspect($0, endpoint: endpoint) }
                    usage = info.usage
                    if logContent, let t = info.text { text = t }
                    record.status = "ok"
                } else {
                    record.status = "upstream_error"
                    if status >= 500 {
                        logUpstreamFailure("answered HTTP \(status)")
                    }
                }
                exchange.respond(status: status, headers: [("Content-Type", contentType ?? "application/json")] + responseHeaders + passedHeaders, body: body)
            }
        case .failed(let failure, let message):
            if failure != .shutdown {
                logUpstreamFailure("failed: \(failure.rawValue): \(message)")
            }
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
            if streaming {
                exchange.write(error.sseEvent)
                exchange.finish()
            } else {
                exchange.respond(status: error.status, headers: [("Content-Type", "application/json")] + responseHeaders, body: error.body)
            }
        case .cancelled:
            record.status = "client_cancelled"
            if streaming { exchange.finish(failed: true) } else {
                exchange.respond(status: 499, headers: responseHeaders, body: [])
            }
        }
        if clientGone { record.status = "client_cancelled" }
        record.latencyMs = latencyMs
        record.ttftMs = ttftMs
        // A usage no model produces (negative, or billions of tokens) is left out, and counted.
        if let u = usage, !u.isPlausible {
            gateway.metrics.recordImplausibleUsage()
            usage = nil
        }
        record.inputTokens = usage?.input
        record.outputTokens = usage?.output
        if logContent { record.response = text }
        gateway.finished(record, latencySeconds: latencyMs / 1000, ttftSeconds: ttftMs.map { $0 / 1000 })
    }
}
