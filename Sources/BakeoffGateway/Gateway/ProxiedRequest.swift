import BakeoffCore
import Synchronization

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

    struct State {
        var record: EventRecord
        var finished = false
        var clientGone = false
        var streaming = false
        var status = 0
        var contentType: String?
        var body: [UInt8] = []
        var sse = SSEParser()
        var ttftMs: Double?
        var usage: TokenUsage?
        var streamError: String?
        var text = ""
    }
    private let state: Mutex<State>

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
        self.state = Mutex(State(record: record))
    }

    func begin() {
        exchange.onClientGone = { [self] in
            let cancel = state.withLock { s -> Bool in
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

    private func responded(status: Int, contentType: String?) {
        let startStream = state.withLock { s -> Bool in
            s.status = status
            s.contentType = contentType
            s.streaming = stream && status == 200 && (contentType?.contains("text/event-stream") ?? false)
            return s.streaming
        }
        if startStream {
            exchange.startStream(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")] + responseHeaders)
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        let out: [UInt8]? = state.withLock { s in
            guard s.streaming else {
                s.body.append(contentsOf: bytes)
                return nil
            }
            var out: [UInt8] = []
            let endpoint = self.endpoint, clientWantsUsage = self.clientWantsUsage, logContent = self.logContent, started = self.started
            var ttft = s.ttftMs, usage = s.usage, streamError = s.streamError, text = s.text
            s.sse.feed(bytes) { raw, data in
                if let data {
                    let info = ChunkInfo.inspect(data, endpoint: endpoint)
                    if let u = info.usage { usage = u }
                    if info.hasContent && ttft == nil { ttft = MonotonicClock.milliseconds(since: started) }
                    if let e = info.error { streamError = e }
                    if logContent, let t = info.text { text += t }
                    // The gateway asked for usage on the client's behalf: the client does not get that chunk.
                    if info.isUsageOnly && !clientWantsUsage { return }
                }
                out.append(contentsOf: raw)
            }
            s.ttftMs = ttft
            s.usage = usage
            s.streamError = streamError
            s.text = text
            return out
        }
        if let out, !out.isEmpty { exchange.write(out) }
    }

    private func finished(_ outcome: UpstreamOutcome) {
        let latencyMs = MonotonicClock.milliseconds(since: started)
        guard var s = state.withLock({ s -> State? in
            guard !s.finished else { return nil }
            s.finished = true
            return s
        }) else { return }
        var record = s.record
        switch outcome {
        case .completed(let status):
            if s.streaming {
                let tail = s.sse.pending
                if !tail.isEmpty { exchange.write(tail) }
                exchange.finish()
                record.status = s.streamError == nil ? "ok" : "upstream_error"
            } else {
                let body = s.body
                if (200..<300).contains(status) {
                    let info = body.withUnsafeBytes { CompletionInfo.inspect($0, endpoint: endpoint) }
                    s.usage = info.usage
                    if logContent, let t = info.text { s.text = t }
                    record.status = "ok"
                } else {
                    record.status = "upstream_error"
                }
                exchange.respond(status: status, headers: [("Content-Type", s.contentType ?? "application/json")] + responseHeaders, body: body)
            }
        case .failed(let failure, let message):
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
            }
            if s.streaming {
                exchange.write(error.sseEvent)
                exchange.finish()
            } else {
                exchange.respond(status: error.status, headers: [("Content-Type", "application/json")] + responseHeaders, body: error.body)
            }
        case .cancelled:
            record.status = "client_cancelled"
            if s.streaming { exchange.finish(failed: true) } else {
                exchange.respond(status: 499, headers: responseHeaders, body: [])
            }
        }
        if s.clientGone { record.status = "client_cancelled" }
        record.latencyMs = latencyMs
        record.ttftMs = s.ttftMs
        record.inputTokens = s.usage?.input
        record.outputTokens = s.usage?.output
        if logContent { record.response = s.text }
        gateway.finished(record, latencySeconds: latencyMs / 1000, ttftSeconds: s.ttftMs.map { $0 / 1000 })
    }
}
