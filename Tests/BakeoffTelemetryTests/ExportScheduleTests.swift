import Testing
import BakeoffTelemetry

@Suite("When spans are sent, retried and dropped")
struct ExportScheduleTests {
    static let ms: UInt64 = 1_000_000
    func span(_ i: Int) -> Span {
        Span(traceID: TraceID(high: 1, low: UInt64(i) + 1), spanID: SpanID(UInt64(i) + 1), name: "s\(i)", kind: .client, start: 0, end: 0)
    }

    @Test("a full batch goes at once and wakes the exporter; a partial one when its oldest span has waited the interval")
    func batching() {
        var s = ExportSchedule(batchSize: 3, queueSize: 10, intervalMs: 1000)
        #expect(s.next(now: 0, draining: false) == .wait(until: nil))
        #expect(s.add(span(0), now: 0) == (true, true), "the first span waiting starts the interval: the exporter must know")
        #expect(s.next(now: 10 * Self.ms, draining: false) == .wait(until: 1000 * Self.ms))
        #expect(s.add(span(1), now: 20 * Self.ms) == (true, false))
        #expect(s.add(span(2), now: 30 * Self.ms).wakes)
        #expect(s.next(now: 30 * Self.ms, draining: false) == .send([span(0), span(1), span(2)], retry: 0))
        #expect(s.settle(.accepted(rejected: 0, message: ""), now: 40 * Self.ms).exported == 3)
        _ = s.add(span(3), now: 50 * Self.ms)
        #expect(s.next(now: 100 * Self.ms, draining: false) == .wait(until: 1050 * Self.ms))
        #expect(s.next(now: 1050 * Self.ms, draining: false) == .send([span(3)], retry: 0))
    }

    @Test("draining sends what waits without waiting for the interval")
    func draining() {
        var s = ExportSchedule(batchSize: 5, queueSize: 10, intervalMs: 60_000)
        _ = s.add(span(0), now: 0)
        #expect(s.next(now: 1, draining: true) == .send([span(0)], retry: 0))
    }

    @Test("a retryable failure is sent again after 1, 2, 4, 8 s (or the collector's Retry-After), then dropped")
    func retries() {
        var s = ExportSchedule(batchSize: 1, queueSize: 10, intervalMs: 1)
        _ = s.add(span(0), now: 0)
        var now: UInt64 = 0
        #expect(s.next(now: now, draining: false) == .send([span(0)], retry: 0))
        let delays: [UInt64] = [1000, 2000, 4000, 8000]
        for (i, delay) in delays.enumerated() {
            let settled = s.settle(.retryable(reason: "HTTP 503", retryAfterMs: nil), now: now)
            #expect(settled.retryAt == now + delay * Self.ms)
            #expect(settled.dropped == 0)
            #expect(s.next(now: now + delay * Self.ms - 1, draining: false) == .wait(until: now + delay * Self.ms))
            now += delay * Self.ms
            #expect(s.next(now: now, draining: false) == .send([span(0)], retry: i + 1))
        }
        let last = s.settle(.retryable(reason: "HTTP 503", retryAfterMs: nil), now: now)
        #expect(last.dropped == 1)
        #expect(last.retryAt == nil)
        #expect(s.depth == 0)
        // Retry-After wins when longer than the backoff, up to 30 s.
        _ = s.add(span(1), now: now)
        _ = s.next(now: now, draining: false)
        #expect(s.settle(.retryable(reason: "429", retryAfterMs: 7000), now: now).retryAt == now + 7000 * Self.ms)
        _ = s.next(now: now + 7000 * Self.ms, draining: false)
        #expect(s.settle(.retryable(reason: "429", retryAfterMs: 3_600_000), now: now).retryAt == now + 30_000 * Self.ms)
    }

    @Test("refused batches are dropped at once; rejected spans of an accepted batch count as dropped")
    func refusals() {
        var s = ExportSchedule(batchSize: 4, queueSize: 10, intervalMs: 1)
        for i in 0..<4 { _ = s.add(span(i), now: 0) }
        _ = s.next(now: 0, draining: false)
        #expect(s.settle(.refused(reason: "HTTP 400"), now: 0) == .init(exported: 0, dropped: 4, retryAt: nil))
        for i in 0..<4 { _ = s.add(span(i), now: 0) }
        _ = s.next(now: 0, draining: false)
        #expect(s.settle(.accepted(rejected: 1, message: "bad"), now: 0) == .init(exported: 3, dropped: 1, retryAt: nil))
    }

    @Test("the queue holds queue_size spans, the batch in hand included; beyond, spans are refused")
    func bounded() {
        var s = ExportSchedule(batchSize: 2, queueSize: 3, intervalMs: 1)
        for i in 0..<3 { #expect(s.add(span(i), now: 0).accepted) }
        #expect(!s.add(span(3), now: 0).accepted)
        _ = s.next(now: 0, draining: false)
        _ = s.settle(.retryable(reason: "down", retryAfterMs: nil), now: 0)
        #expect(s.depth == 3)
        #expect(!s.add(span(4), now: 0).accepted)
    }

    @Test("answers are classified as OTLP says: 429/502/503/504 and no answer retryable, other errors final")
    func classify() {
        #expect(ExportOutcome.classify(status: 200, failure: nil, retryAfter: nil, body: "", rejected: nil) == .accepted(rejected: 0, message: ""))
        #expect(ExportOutcome.classify(status: 0, failure: "connection refused", retryAfter: nil, body: "", rejected: nil) == .retryable(reason: "connection refused", retryAfterMs: nil))
        #expect(ExportOutcome.classify(status: 503, failure: nil, retryAfter: " 2", body: "", rejected: nil) == .retryable(reason: "HTTP 503", retryAfterMs: 2000))
        for status in [429, 502, 504] {
            guard case .retryable = ExportOutcome.classify(status: status, failure: nil, retryAfter: nil, body: "", rejected: nil) else { Issue.record("\(status)"); continue }
        }
        #expect(ExportOutcome.classify(status: 415, failure: nil, retryAfter: nil, body: "JSON unsupported", rejected: nil) == .refused(reason: "HTTP 415: JSON unsupported"))
    }
}
