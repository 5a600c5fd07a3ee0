import BakeoffCore
import BakeoffHTTP
import Dispatch
import Foundation
import Synchronization

/// Sends finished spans to an OTLP/HTTP collector from a thread of its own, in batches: what
/// `ExportSchedule` decides, carried out. `export` never blocks the caller.
public final class SpanExporter: Sendable {
    public let settings: ExportSettings
    let source: TraceSource
    package let transport: any UpstreamTransport
    private let log: RateLimitedLog
    private let state: Mutex<State>
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let exportedCount = Atomic<Int>(0)
    private let droppedCount = Atomic<Int>(0)
    private let failureCount = Atomic<Int>(0)

    struct State {
        var schedule: ExportSchedule
        var draining = false
        /// Stop sending when the drain has lasted past this time.
        var drainDeadline: UInt64 = .max
        var lastError: String?
        var running = false
    }

    /// Starts the exporting thread. `log` gets one line per kind of failure every 10 s at most.
    public init(settings: ExportSettings, source: TraceSource, transport: any UpstreamTransport, log: @escaping @Sendable (String) -> Void) {
        self.settings = settings
        self.source = source
        self.transport = transport
        self.log = RateLimitedLog(write: log)
        state = Mutex(State(schedule: ExportSchedule(batchSize: settings.batchSize, queueSize: settings.queueSize,
                                                     intervalMs: settings.exportIntervalMs), running: true))
        let thread = Thread { [self] in
            Thread.current.name = "bakeoff-otlp"
            run()
        }
        thread.name = "bakeoff-otlp"
        thread.start()
    }

    /// Queues a finished span (dropped, and counted, when the queue is full or the exporter stopped).
    public func export(_ span: Span) {
        let (accepted, wakes) = state.withLock { s -> (Bool, Bool) in
            guard s.running, !s.draining else { return (false, false) }
            let r = s.schedule.add(span, now: MonotonicClock.now())
            return (r.accepted, r.wakes)
        }
        if !accepted {
            droppedCount.add(1, ordering: .relaxed)
            log.note("queue", "OTLP: the span queue is full (\(settings.queueSize) spans): spans are dropped until \(settings.endpoint) takes them faster")
        }
        if wakes { wake.signal() }
    }

    /// Spans the collector took.
    public var exported: Int { exportedCount.load(ordering: .relaxed) }
    /// Spans given up on: queue full, refused, or still failing after every retry.
    public var dropped: Int { droppedCount.load(ordering: .relaxed) }
    /// Export calls that failed (each retry counts).
    public var failures: Int { failureCount.load(ordering: .relaxed) }
    public var queueDepth: Int { state.withLock { $0.schedule.depth } }
    /// The last export failure, nil once an export succeeds again.
    public var lastError: String? { state.withLock { $0.lastError } }

    /// Sends what is queued (waiting up to `graceSeconds`), then stops; later spans are dropped.
    public func shutdown(graceSeconds: Double = 5) {
        let first = state.withLock { s -> Bool in
            guard !s.draining else { return false }
            s.draining = true
            s.drainDeadline = MonotonicClock.now() &+ UInt64(max(0, graceSeconds) * 1e9)
            return true
        }
        guard first else { return }
        wake.signal()
        if stopped.wait(timeout: .now() + graceSeconds + Double(settings.timeoutMs) / 1000 + 1) == .timedOut {
            log.note("stop", "OTLP: \(queueDepth) spans were still queued for \(settings.endpoint) at the stop and are lost")
        }
    }

    private func run() {
        while true {
            let now = MonotonicClock.now()
            let step = state.withLock { s -> ExportSchedule.Step? in
                if s.draining && (now >= s.drainDeadline || s.schedule.depth == 0) {
                    s.running = false
                    return nil
                }
                return s.schedule.next(now: now, draining: s.draining)
            }
            guard let step else { break }
            switch step {
            case .wait(let until):
                if let until {
                    _ = wake.wait(timeout: .now() + .nanoseconds(Int(min(until &- min(until, now), 60_000_000_000))))
                } else {
                    wake.wait()
                }
            case .send(let spans, let retry):
                send(spans, retry: retry)
            }
        }
        let lost = state.withLock { $0.schedule.depth }
        if lost > 0 {
            droppedCount.add(lost, ordering: .relaxed)
            log.note("stop", "OTLP: \(lost) spans could not be sent to \(settings.endpoint) before the stop and are lost")
        }
        stopped.signal()
    }

    private func send(_ spans: [Span], retry: Int) {
        let body = settings.encoding.encode(spans, from: source)
        let request = UpstreamRequest(url: settings.endpoint, headers: ["Content-Type: " + settings.encoding.contentType,
                                                                       "User-Agent: bakeoff/" + BakeoffVersion.current] + settings.headers,
                                      body: body, timeoutMs: settings.timeoutMs, connectTimeoutMs: min(settings.timeoutMs, 5_000))
        let answer = transport.send(request)
        let rejected = (200..<300).contains(answer.status) ? ExportOutcomeReader.rejected(answer.body, encoding: settings.encoding) : nil
        let outcome = ExportOutcome.classify(status: answer.status, failure: answer.failure, retryAfter: answer.header("retry-after"),
                                             body: answer.text(limit: 300), rejected: rejected)
        let now = MonotonicClock.now()
        let settled = state.withLock { s -> ExportSchedule.Settled in
            let r = s.schedule.settle(outcome, now: now, draining: s.draining)
            if case .accepted = outcome { s.lastError = nil }
            return r
        }
        exportedCount.add(settled.exported, ordering: .relaxed)
        droppedCount.add(settled.dropped, ordering: .relaxed)
        switch outcome {
        case .accepted(let r, let message):
            if r > 0 { log.note("rejected", "OTLP: \(settings.endpoint) rejected \(r) of \(spans.count) spans: \(message)") }
        case .retryable(let reason, _), .refused(let reason):
            failureCount.add(1, ordering: .relaxed)
            state.withLock { $0.lastError = reason }
            let what = settled.retryAt != nil ? "will retry (attempt \(retry + 2) of \(ExportSchedule.attempts))"
                : "\(spans.count) spans dropped"
            log.note("failure", "OTLP: export to \(settings.endpoint) failed: \(reason); \(what)")
        }
    }
}

/// What a collector's answer says it rejected (`partial_success`): (spans, message), nil when nothing.
package enum ExportOutcomeReader {
    package static func rejected(_ body: [UInt8], encoding: OTLPProtocol) -> (Int64, String)? {
        encoding == .protobuf ? OTLPProtobuf.rejected(body) : rejectedJSON(body)
    }

    static func rejectedJSON(_ body: [UInt8]) -> (Int64, String)? {
        guard !body.isEmpty, let doc = try? JSONValue.parse(body), let partial = doc.root.object?["partialSuccess"]?.object else { return nil }
        let count = partial["rejectedSpans"].flatMap { $0.string.flatMap { Int64($0) } ?? $0.number.map { Int64($0) } } ?? 0
        let message = partial["errorMessage"]?.string ?? ""
        return count == 0 && message.isEmpty ? nil : (count, message)
    }
}
