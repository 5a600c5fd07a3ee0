import BakeoffCore
import Synchronization
import BakeoffHTTP

/// One client request on its way through an upstream and back: carries out what its `UpstreamReply`
/// decides (forwards the answer, streamed chunks as they arrive) and hands the request's event to the
/// gateway once.
final class ProxiedRequest: Sendable {
    let gateway: Gateway
    let exchange: any HTTPExchanging
    /// For the upstream's failure lines.
    let url: String
    /// The request's span, when it is exported.
    let span: RequestSpanStart?

    /// What the client's thread (server) and the upstream's thread share.
    struct State {
        var reply: UpstreamReply
        var finished = false
        var clientGone = false
        /// The call, once started; dropped when it finishes (its handlers hold this request).
        var call: (any UpstreamCallHandle)?
        /// A cancel asked for before the call's handle was known.
        var cancelWanted = false
    }
    private let state: Mutex<State>

    init(gateway: Gateway, exchange: any HTTPExchanging, url: String, reply: UpstreamReply.Context, span: RequestSpanStart? = nil) {
        self.gateway = gateway
        self.exchange = exchange
        self.url = url
        self.span = span
        state = Mutex(State(reply: UpstreamReply(reply)))
    }

    func begin(_ request: UpstreamRequest) {
        exchange.onClientGone = { [self] in
            let cancel = state.withLock { s -> Bool in
                guard !s.finished else { return false }
                s.clientGone = true
                return true
            }
            if cancel { cancelUpstream() }
        }
        let call = gateway.upstream.start(request, handlers: UpstreamHandlers(
            onResponse: { [self] head in responded(head) },
            onData: { [self] bytes in received(bytes) },
            onFinish: { [self] outcome in finished(outcome) }
        ))
        let cancelNow = state.withLock { s -> Bool in
            guard !s.finished else { return false }
            s.call = call
            return s.cancelWanted
        }
        if cancelNow { call.cancel() }
    }

    /// Cancels the upstream call (now, or as soon as it has started).
    private func cancelUpstream() {
        let call = state.withLock { s -> (any UpstreamCallHandle)? in
            guard !s.finished else { return nil }
            if s.call == nil { s.cancelWanted = true }
            return s.call
        }
        call?.cancel()
    }

    private func responded(_ head: UpstreamResponseHead) {
        if let headers = state.withLock({ $0.reply.responded(head) }) {
            exchange.startStream(status: 200, headers: headers)
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        switch state.withLock({ $0.reply.mode }) {
        case .dropping:
            return
        case .buffering:
            // The answer is held until it is complete: it counts against the memory budget until sent.
            let reserved = exchange.reserveBuffer(bytes.count)
            if !state.withLock({ $0.reply.buffer(bytes, reserved: reserved) }) { cancelUpstream() }
        case .streaming:
            let clock = gateway.clock
            let out = state.withLock { $0.reply.stream(bytes) { clock.monotonicNanoseconds() } }
            if !out.isEmpty && !exchange.write(out) {
                // The client is gone or stopped reading: stop the upstream too.
                state.withLock { $0.clientGone = true }
                cancelUpstream()
            }
        }
    }

    private func finished(_ outcome: UpstreamOutcome) {
        let now = gateway.clock.monotonicNanoseconds()
        guard let done = state.withLock({ s -> UpstreamReply.Completion? in
            guard !s.finished else { return nil }
            s.finished = true
            s.call = nil
            return s.reply.finish(outcome, clientGone: s.clientGone, now: now)
        }) else { return }
        if let status = done.refusedStatus { gateway.metrics.recordRejected(status: status) }
        if let failure = done.upstreamFailure {
            gateway.upstreamLog.note(url, "upstream \(url) (\(done.event.experiment)/\(done.event.variant)) \(failure)")
        }
        switch done.reply {
        case .respond(let status, let headers, let body):
            exchange.respond(status: status, headers: headers, body: body)
        case .endStream(let tail, let failed):
            if !tail.isEmpty { exchange.write(tail) }
            exchange.finish(failed: failed)
        }
        if done.implausibleUsage { gateway.metrics.recordImplausibleUsage() }
        if done.event.usageMissing {
            gateway.upstreamLog.note(url + " usage", "upstream \(url) (\(done.event.experiment)/\(done.event.variant)) answered without token usage\(done.event.ttftMs != nil ? " in its stream (it ignores stream_options.include_usage)" : ""): those requests are logged with usage_missing and no token counts")
        }
        gateway.finished(done.event, latencySeconds: done.latencySeconds, ttftSeconds: done.ttftSeconds)
        if let span { gateway.tracer?.finished(span, event: done.event, completion: done) }
    }
}
