import BakeoffCore
import Dispatch
import Foundation
import Synchronization
import BakeoffHTTP
import BakeoffGateway
import BakeoffSimulation

/// A load generator for OpenAI-compatible endpoints (the gateway, an upstream directly, or another proxy).
///
/// Open loop (`rate > 0`): requests go out on a fixed schedule whatever the latency, so a slow server cannot
/// slow the generator down and hide its own latency (coordinated omission); a send that finds `concurrency`
/// requests outstanding is counted as skipped, not queued. Closed loop (`rate == 0`): `concurrency` requests
/// are kept outstanding, to find the maximum throughput.
///
/// Requests sent during the warmup are not measured; requests sent in the measured window are followed to
/// their end, even after the window.
public struct LoadGenerator: Sendable {
    public struct Options: Sendable {
        /// The full endpoint, e.g. `http://127.0.0.1:8080/v1/chat/completions`.
        public var url: String
        /// Requests per second; 0 runs a closed loop.
        public var rate: Double = 1000
        public var durationSeconds: Double = 10
        public var warmupSeconds: Double = 2
        /// Open loop: the most requests outstanding (more are skipped). Closed loop: requests kept outstanding.
        public var concurrency: Int = 256
        /// Distinct `"user"` ids cycled through (`user-0` ... `user-<users-1>`).
        public var users: Int = 10_000
        public var model: String = "support-bot"
        public var stream: Bool = false
        public var maxTokens: Int?
        /// Extra headers as "Name: value" lines.
        public var headers: [String] = []
        public var timeoutMs: Int = 60_000
        public var connectTimeoutMs: Int = 5_000

        public init(url: String) { self.url = url }
    }

    public let options: Options

    public init(options: Options) { self.options = options }

    /// Runs the load (blocking) and returns the report.
    public static func run(_ options: Options) -> LoadReport { LoadGenerator(options: options).run() }

    /// Runs the load (blocking) and returns the report.
    public func run() -> LoadReport {
        let run = LoadRun(options: options)
        return run.execute()
    }
}

/// The outcome of a load run. Latencies are in milliseconds and cover successful (2xx) requests only.
public struct LoadReport: Sendable {
    public struct Latency: Sendable {
        public var mean: Double?
        public var p50: Double?
        public var p90: Double?
        public var p99: Double?
        public var p999: Double?
        public var max: Double?
    }
    public struct TimeToFirstToken: Sendable {
        public var p50: Double?
        public var p99: Double?
    }

    public var url: String
    /// The offered rate (0 for a closed loop).
    public var offeredRate: Double
    public var concurrency: Int
    public var stream: Bool
    /// Requests sent in the measured window.
    public var requests: Int
    /// Of those, answered completely with a 2xx status.
    public var completed: Int
    /// Of those, failed: a non-2xx status or no complete answer.
    public var errors: Int
    /// Errors by HTTP status ("500", "429") or failure ("unreachable", "timeout", "brokenResponse", "cancelled").
    public var errorsByKind: [String: Int]
    /// Sends due in the measured window that found `concurrency` requests outstanding (open loop only).
    public var skipped: Int
    /// The measured window.
    public var durationSeconds: Double
    /// Completed requests per second of the measured window.
    public var rate: Double
    public var latencyMs: Latency
    /// Time to the first data, for streams (nil when not streaming).
    public var ttftMs: TimeToFirstToken?

    /// One JSON object: requests, completed, errors, errors_by_kind, skipped, duration_s, rate,
    /// latency_ms{mean,p50,p90,p99,p999,max}, ttft_ms{p50,p99} or null, plus url, offered_rate, concurrency, stream.
    public func json() -> String {
        var w = JSONWriter(pretty: false)
        w.object { o in
            o.value("url", url)
            o.value("offered_rate", offeredRate)
            o.value("concurrency", concurrency)
            o.value("stream", stream)
            o.value("requests", requests)
            o.value("completed", completed)
            o.value("errors", errors)
            o.object("errors_by_kind") { e in
                for (kind, count) in errorsByKind.sorted(by: { $0.key < $1.key }) { e.value(kind, count) }
            }
            o.value("skipped", skipped)
            o.value("duration_s", durationSeconds)
            o.value("rate", rate)
            o.object("latency_ms") { l in
                l.value("mean", latencyMs.mean)
                l.value("p50", latencyMs.p50)
                l.value("p90", latencyMs.p90)
                l.value("p99", latencyMs.p99)
                l.value("p999", latencyMs.p999)
                l.value("max", latencyMs.max)
            }
            if let ttftMs {
                o.object("ttft_ms") { t in
                    t.value("p50", ttftMs.p50)
                    t.value("p99", ttftMs.p99)
                }
            } else {
                o.value("ttft_ms", nil as Double?)
            }
        }
        return w.text
    }

    /// A short aligned summary for a terminal.
    public func table() -> String {
        func ms(_ v: Double?) -> String { v.map { String(format: "%.2f", $0) } ?? "—" }
        let mode = offeredRate > 0
            ? "open loop at \(JSONWriter.number(offeredRate)) req/s, at most \(concurrency) outstanding"
            : "closed loop, \(concurrency) outstanding"
        var lines = [
            "target      \(url)\(stream ? " (streaming)" : "")",
            "mode        \(mode), \(JSONWriter.number(durationSeconds)) s measured",
            "requests    \(requests) sent, \(completed) completed, \(errors) errors, \(skipped) skipped",
            "rate        \(String(format: "%.1f", rate)) req/s completed",
            "latency ms  mean \(ms(latencyMs.mean))  p50 \(ms(latencyMs.p50))  p90 \(ms(latencyMs.p90))  p99 \(ms(latencyMs.p99))  p99.9 \(ms(latencyMs.p999))  max \(ms(latencyMs.max))",
        ]
        if let ttftMs { lines.append("ttft ms     p50 \(ms(ttftMs.p50))  p99 \(ms(ttftMs.p99))") }
        if !errorsByKind.isEmpty {
            lines.append("errors      " + errorsByKind.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }
}

/// The exact quantile of sorted samples (nearest rank), nil when there are none.
func nearestRank(_ sorted: [Double], _ p: Double) -> Double? {
    guard !sorted.isEmpty else { return nil }
    let rank = Int((p * Double(sorted.count)).rounded(.up))
    return sorted[min(sorted.count - 1, max(0, rank - 1))]
}

private func monotonicNs() -> UInt64 { MonotonicClock.now() }

private func sleep(untilNs deadline: UInt64) {
    var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
}

/// One request's timings.
private final class RequestTiming: Sendable {
    let sentNs: UInt64
    let measured: Bool
    /// When its first data arrived (0: not yet).
    let firstDataNs = Atomic<UInt64>(0)
    init(sentNs: UInt64, measured: Bool) {
        self.sentNs = sentNs
        self.measured = measured
    }
}

private final class LoadRun: Sendable {
    struct Results {
        var requests = 0
        var skipped = 0
        var completed = 0
        var latencies: [Double] = []
        var ttfts: [Double] = []
        var errors: [String: Int] = [:]
    }

    let options: Options
    typealias Options = LoadGenerator.Options
    let client = UpstreamClient()
    let results = Mutex(Results())
    /// Requests sent and not finished. Changed and read sequentially consistently with `draining`, so the
    /// wait at the end and the finish that reaches zero never both miss each other.
    let outstanding = Atomic<Int>(0)
    /// Set when the sends are over: the finish that then leaves none outstanding signals `drained`.
    let draining = Atomic<Bool>(false)
    let drained = DispatchSemaphore(value: 0)
    let sequence = Atomic<Int>(0)
    let headers: [String]
    let bodyHead: [UInt8]
    let bodyTail: [UInt8]
    let startNs: UInt64
    let warmEndNs: UInt64
    let endNs: UInt64

    /// The run starts when it is made (its client is up by then).
    init(options: Options) {
        self.options = options
        startNs = monotonicNs()
        warmEndNs = startNs + UInt64(max(0, options.warmupSeconds) * 1e9)
        endNs = warmEndNs + UInt64(max(0, options.durationSeconds) * 1e9)
        headers = ["Content-Type: application/json"] + options.headers
        bodyHead = Array("{\"model\":\(JSONWriter.quote(options.model)),\"messages\":[{\"role\":\"user\",\"content\":\"Hello, I need help with my order. Where is it?\"}],\"user\":\"user-".utf8)
        var tail = "\""
        if options.stream { tail += ",\"stream\":true" }
        if let m = options.maxTokens { tail += ",\"max_tokens\":\(m)" }
        bodyTail = Array((tail + "}").utf8)
    }

    func execute() -> LoadReport {
        let concurrency = max(1, options.concurrency)
        if options.rate > 0 {
            let period = 1e9 / options.rate
            var i: UInt64 = 0
            while true {
                let due = startNs + UInt64(Double(i) * period)
                if due >= endNs { break }
                if due > monotonicNs() { sleep(untilNs: due) }
                let measured = due >= warmEndNs
                if outstanding.load(ordering: .relaxed) >= concurrency {
                    if measured { results.withLock { $0.skipped += 1 } }
                } else {
                    send(measured: measured)
                }
                i += 1
            }
        } else {
            for _ in 0..<concurrency { send(measured: startNs >= warmEndNs) }
            sleep(untilNs: endNs)
        }
        // Follow every request of the window to its end (the client's timeout bounds this).
        draining.store(true, ordering: .sequentiallyConsistent)
        let deadline = DispatchTime.now() + .milliseconds(options.timeoutMs + options.connectTimeoutMs + 2_000)
        while outstanding.load(ordering: .sequentiallyConsistent) > 0 {
            // A signal left from an earlier zero only makes the loop look again.
            if drained.wait(timeout: deadline) == .timedOut { break }
        }
        client.shutdown()
        return report()
    }

    func send(measured: Bool) {
        let k = sequence.add(1, ordering: .relaxed).oldValue % max(1, options.users)
        var body = bodyHead
        body.append(contentsOf: String(k).utf8)
        body.append(contentsOf: bodyTail)
        let request = UpstreamRequest(url: options.url, headers: headers, body: body,
                                      timeoutMs: options.timeoutMs, connectTimeoutMs: options.connectTimeoutMs)
        let timing = RequestTiming(sentNs: monotonicNs(), measured: measured)
        if measured { results.withLock { $0.requests += 1 } }
        outstanding.add(1, ordering: .sequentiallyConsistent)
        client.start(request, handlers: UpstreamHandlers(
            onData: { _ in
                if timing.firstDataNs.load(ordering: .relaxed) == 0 { timing.firstDataNs.store(monotonicNs(), ordering: .relaxed) }
            },
            onFinish: { [self] outcome in finished(timing, outcome) }
        ))
    }

    func finished(_ timing: RequestTiming, _ outcome: UpstreamOutcome) {
        let now = monotonicNs()
        if timing.measured {
            results.withLock { r in
                switch outcome {
                case .completed(let status) where (200..<300).contains(status):
                    r.completed += 1
                    r.latencies.append(Double(now - timing.sentNs) / 1e6)
                    let firstDataNs = timing.firstDataNs.load(ordering: .relaxed)
                    if options.stream && firstDataNs > 0 {
                        r.ttfts.append(Double(firstDataNs - timing.sentNs) / 1e6)
                    }
                case .completed(let status):
                    r.errors[String(status), default: 0] += 1
                case .failed(let failure, _):
                    r.errors[failure.rawValue, default: 0] += 1
                case .cancelled:
                    r.errors["cancelled", default: 0] += 1
                }
            }
        }
        // Closed loop: the next request replaces this one while the window lasts (started before this one
        // stops counting, so the count never touches 0 early).
        if options.rate <= 0 && now < endNs {
            send(measured: now >= warmEndNs)
        }
        if outstanding.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 && draining.load(ordering: .sequentiallyConsistent) {
            drained.signal()
        }
    }

    func report() -> LoadReport {
        let r = results.withLock { $0 }
        let latencies = r.latencies.sorted()
        let ttfts = r.ttfts.sorted()
        let duration = max(0, options.durationSeconds)
        let latency = LoadReport.Latency(
            mean: latencies.isEmpty ? nil : latencies.reduce(0, +) / Double(latencies.count),
            p50: nearestRank(latencies, 0.5), p90: nearestRank(latencies, 0.9), p99: nearestRank(latencies, 0.99),
            p999: nearestRank(latencies, 0.999), max: latencies.last
        )
        return LoadReport(
            url: options.url, offeredRate: max(0, options.rate), concurrency: max(1, options.concurrency),
            stream: options.stream, requests: r.requests, completed: r.completed,
            errors: r.errors.values.reduce(0, +), errorsByKind: r.errors, skipped: r.skipped,
            durationSeconds: duration, rate: duration > 0 ? Double(r.completed) / duration : 0,
            latencyMs: latency,
            ttftMs: options.stream ? LoadReport.TimeToFirstToken(p50: nearestRank(ttfts, 0.5), p99: nearestRank(ttfts, 0.99)) : nil
        )
    }
}
