import Foundation
import Synchronization
import BakeoffHTTP

/// The gateway's counters and histograms, rendered in the Prometheus text format for `GET /metrics`.
public final class GatewayMetrics: Sendable {
    /// Upper bounds of the latency and TTFT histogram buckets, in seconds.
    static let bucketBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

    struct Histogram {
        var counts = [Int](repeating: 0, count: GatewayMetrics.bucketBounds.count + 1)
        var sum = 0.0
        var count = 0
        mutating func observe(_ seconds: Double) {
            guard seconds.isFinite, seconds >= 0 else { return }
            var i = 0
            while i < GatewayMetrics.bucketBounds.count && seconds > GatewayMetrics.bucketBounds[i] { i += 1 }
            counts[i] += 1
            sum += seconds
            count += 1
        }
    }

    struct ArmKey: Hashable { var experiment: String; var variant: String }
    struct RequestKey: Hashable { var experiment: String; var variant: String; var status: String }
    struct FeedbackKey: Hashable { var experiment: String; var name: String }

    struct State {
        var requests: [RequestKey: Int] = [:]
        var rejected: [Int: Int] = [:]
        var latency: [ArmKey: Histogram] = [:]
        var ttft: [ArmKey: Histogram] = [:]
        var inputTokens: [ArmKey: Int] = [:]
        var outputTokens: [ArmKey: Int] = [:]
        var feedback: [FeedbackKey: Int] = [:]
        var implausibleUsage = 0
        var usageMissing: [ArmKey: Int] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// One proxied request that reached an upstream (or failed trying).
    func recordRequest(experiment: String, variant: String, status: String, latencySeconds: Double, ttftSeconds: Double?, inputTokens: Int?, outputTokens: Int?,
                       usageMissing: Bool = false) {
        let arm = ArmKey(experiment: experiment, variant: variant)
        state.withLock { s in
            if usageMissing { s.usageMissing[arm, default: 0].addSaturating(1) }
            s.requests[RequestKey(experiment: experiment, variant: variant, status: status), default: 0].addSaturating(1)
            s.latency[arm, default: Histogram()].observe(latencySeconds)
            if let ttftSeconds { s.ttft[arm, default: Histogram()].observe(ttftSeconds) }
            if let inputTokens, inputTokens > 0 { s.inputTokens[arm, default: 0].addSaturating(inputTokens) }
            if let outputTokens, outputTokens > 0 { s.outputTokens[arm, default: 0].addSaturating(outputTokens) }
        }
    }

    /// A request refused before routing (bad JSON, unknown model, no user, too large...), by HTTP status.
    func recordRejected(status: Int) {
        state.withLock { $0.rejected[status, default: 0].addSaturating(1) }
    }

    /// An upstream answer whose token usage was impossible (negative or beyond `TokenUsage.maximum`).
    func recordImplausibleUsage() {
        state.withLock { $0.implausibleUsage.addSaturating(1) }
    }

    func recordFeedback(experiment: String, name: String) {
        state.withLock { $0.feedback[FeedbackKey(experiment: experiment, name: name), default: 0].addSaturating(1) }
    }

    /// The Prometheus exposition text; `gauges` are sampled at the moment of the scrape.
    func render(gauges: [(name: String, help: String, value: Double)]) -> String {
        let s = state.withLock { $0 }
        var out = ""
        func header(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        func label(_ v: String) -> String {
            "\"" + v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n") + "\""
        }
        func arm(_ k: ArmKey) -> String { "experiment=\(label(k.experiment)),variant=\(label(k.variant))" }

        header("bakeoff_requests_total", "counter", "Proxied requests by experiment, variant and status.")
        for (k, v) in s.requests.sorted(by: { ($0.key.experiment, $0.key.variant, $0.key.status) < ($1.key.experiment, $1.key.variant, $1.key.status) }) {
            out += "bakeoff_requests_total{experiment=\(label(k.experiment)),variant=\(label(k.variant)),status=\(label(k.status))} \(v)\n"
        }
        header("bakeoff_rejected_requests_total", "counter", "Requests refused before routing, by HTTP status.")
        for (code, v) in s.rejected.sorted(by: { $0.key < $1.key }) { out += "bakeoff_rejected_requests_total{code=\"\(code)\"} \(v)\n" }
        for (name, help, map) in [("bakeoff_request_duration_seconds", "Total latency of proxied requests.", s.latency),
                                  ("bakeoff_time_to_first_token_seconds", "Time to the first chunk with content (streams).", s.ttft)] {
            header(name, "histogram", help)
            for (k, h) in map.sorted(by: { ($0.key.experiment, $0.key.variant) < ($1.key.experiment, $1.key.variant) }) {
                var cumulative = 0
                for (i, bound) in Self.bucketBounds.enumerated() {
                    cumulative += h.counts[i]
                    out += "\(name)_bucket{\(arm(k)),le=\"\(bound)\"} \(cumulative)\n"
                }
                out += "\(name)_bucket{\(arm(k)),le=\"+Inf\"} \(h.count)\n"
                out += "\(name)_sum{\(arm(k))} \(h.sum)\n\(name)_count{\(arm(k))} \(h.count)\n"
            }
        }
        for (name, help, map) in [("bakeoff_input_tokens_total", "Prompt tokens reported by upstreams.", s.inputTokens),
                                  ("bakeoff_output_tokens_total", "Completion tokens reported by upstreams.", s.outputTokens)] {
            header(name, "counter", help)
            for (k, v) in map.sorted(by: { ($0.key.experiment, $0.key.variant) < ($1.key.experiment, $1.key.variant) }) {
                out += "\(name){\(arm(k))} \(v)\n"
            }
        }
        header("bakeoff_upstream_usage_missing_total", "counter", "Answered requests whose upstream reported no token usage (their token counts are unknown, not 0).")
        for (k, v) in s.usageMissing.sorted(by: { ($0.key.experiment, $0.key.variant) < ($1.key.experiment, $1.key.variant) }) {
            out += "bakeoff_upstream_usage_missing_total{\(arm(k))} \(v)\n"
        }
        header("bakeoff_upstream_usage_ignored_total", "counter", "Upstream answers whose token usage was negative or implausibly large (left out of the event).")
        out += "bakeoff_upstream_usage_ignored_total \(s.implausibleUsage)\n"
        header("bakeoff_feedback_total", "counter", "Feedback events committed, by experiment and name.")
        for (k, v) in s.feedback.sorted(by: { ($0.key.experiment, $0.key.name) < ($1.key.experiment, $1.key.name) }) {
            out += "bakeoff_feedback_total{experiment=\(label(k.experiment)),name=\(label(k.name))} \(v)\n"
        }
        for g in gauges {
            let type = g.name.hasSuffix("_total") ? "counter" : "gauge"
            header(g.name, type, g.help)
            out += "\(g.name) \(g.value == g.value.rounded() && abs(g.value) < 1e15 ? String(Int64(g.value)) : String(g.value))\n"
        }
        return out
    }
}

extension Int {
    /// Adds without trapping: a counter that would overflow stays at `Int.max`.
    mutating func addSaturating(_ n: Int) {
        let (sum, overflow) = addingReportingOverflow(n)
        self = overflow ? (n > 0 ? .max : .min) : sum
    }
}
