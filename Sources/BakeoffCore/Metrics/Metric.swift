import Foundation

/// The unit a metric's values belong to; users always remain the unit of randomization.
public enum MetricLevel: String, Sendable, Codable, CaseIterable {
    case conversation, request, user
}

/// How values are summarized.
public enum MetricKind: String, Sendable, Codable, CaseIterable {
    /// Values 0 or 1; the mean is a rate.
    case proportion
    /// Any numeric values; the mean is compared.
    case mean
    /// A quantile of request values (latency, TTFT); shown with relative change.
    case quantile
}

/// Which direction of change is good.
public enum Goal: String, Sendable, Codable, CaseIterable {
    case up, down, none
}

/// What part a metric plays in the decision.
public enum MetricRole: String, Sendable, Codable, CaseIterable {
    case primary, secondary, guardrail
}

/// A number recorded on each request event.
public enum RequestField: String, Sendable, Codable, CaseIterable {
    case latencyMs = "latency_ms"
    case ttftMs = "ttft_ms"
    case inputTokens = "input_tokens"
    case outputTokens = "output_tokens"
}

/// Where a metric's per-unit value comes from.
public enum MetricSource: Sendable, Equatable, Hashable {
    /// The last feedback event of this name on the unit (latest `ts`, ties by file order).
    case feedback(String)
    /// The number of request events in a conversation.
    case turns
    /// 1 when the user has requests on two or more distinct UTC days.
    case repeatUsage
    /// 1 when a request's status is not `ok`.
    case errors
    /// A numeric field of the request event.
    case field(RequestField)
}

/// How far a guardrail may move the wrong way before it counts as harm (non-inferiority margin).
public struct GuardrailMargin: Sendable, Equatable {
    /// The margin: in the metric's units when absolute (0.01 = one point of a rate), a fraction of the
    /// control value when relative (0.15 = 15%).
    public var value: Double
    public var isRelative: Bool
    public init(value: Double, isRelative: Bool) {
        self.value = value
        self.isRelative = isRelative
    }
}

/// The values a feedback metric takes. The gateway refuses any other value (400), and the analysis leaves a
/// stored one out and counts it, so one bad value can neither skew nor stop a report.
public struct ValueBounds: Sendable, Equatable {
    public var lower: Double
    public var upper: Double
    /// Only whole numbers: a rating scale such as CSAT's 1-5.
    public var integers: Bool

    public init(lower: Double, upper: Double, integers: Bool) {
        self.lower = lower
        self.upper = upper
        self.integers = integers
    }

    /// Yes/no metrics: 0 or 1 (true or false).
    public static let yesNo = ValueBounds(lower: 0, upper: 1, integers: true)
    /// Numeric metrics without bounds of their own: any finite value of at most 1e12 in size.
    public static let defaultNumeric = ValueBounds(lower: -1e12, upper: 1e12, integers: false)
    /// CSAT's scale: whole numbers from 1 to 5.
    public static let csat = ValueBounds(lower: 1, upper: 5, integers: true)

    public func contains(_ x: Double) -> Bool {
        x.isFinite && x >= lower && x <= upper && (!integers || x == x.rounded())
    }

    /// What a value must be, in words ("true, false, 0 or 1", "a whole number from 1 to 5").
    public var requirement: String {
        if self == .yesNo { return "true, false, 0 or 1" }
        let range = "from \(JSONWriter.number(lower)) to \(JSONWriter.number(upper))"
        return integers ? "a whole number \(range)" : "a finite number \(range)"
    }
}

/// Extra tests a metric asks for on top of the standard one.
public enum RankTest: String, Sendable, Codable, CaseIterable {
    /// Mann-Whitney U on the per-unit values (ordinal scores such as CSAT).
    case mannWhitney = "mann_whitney"
}

/// A metric of the experiment, in the user's words: what it measures, at which level, which way is good.
public struct Metric: Sendable, Equatable {
    /// Machine name, as in JSON output and `--config` (`task_completion`).
    public var name: String
    /// Display name for tables (`Task completion`).
    public var title: String
    public var level: MetricLevel
    public var kind: MetricKind
    public var goal: Goal
    public var role: MetricRole
    public var source: MetricSource
    /// For quantile metrics: the quantile in (0, 1).
    public var quantile: Double?
    /// For guardrails: the harm allowed before the guardrail fails (tested one-sided); nil tests for any
    /// significant harm.
    public var margin: GuardrailMargin?
    /// A rank test reported alongside (Mann-Whitney for ordinal scores).
    public var rankTest: RankTest?
    /// Whether variance reduction (CUPED) applies when pre-experiment data exist.
    public var varianceReduction = true
    /// For numeric feedback metrics: the values accepted (default `ValueBounds.defaultNumeric`). Yes/no
    /// metrics always take 0 or 1.
    public var bounds: ValueBounds?

    /// The values this metric's feedback may take.
    public var acceptedValues: ValueBounds {
        kind == .proportion ? .yesNo : bounds ?? .defaultNumeric
    }

    public init(name: String, title: String? = nil, level: MetricLevel, kind: MetricKind, goal: Goal,
                role: MetricRole = .secondary, source: MetricSource, quantile: Double? = nil, bounds: ValueBounds? = nil) {
        self.name = name
        self.title = title ?? Metric.defaultTitle(name)
        self.level = level
        self.kind = kind
        self.goal = goal
        self.role = role
        self.source = source
        self.quantile = quantile
        self.bounds = bounds
    }

    static func defaultTitle(_ name: String) -> String {
        let spaced = name.replacingOccurrences(of: "_", with: " ")
        return spaced.prefix(1).uppercased() + spaced.dropFirst()
    }

    /// The metrics of the article's list, with the definitions of the README.
    public static let builtIn: [Metric] = [
        Metric(name: "task_completion", title: "Task completion", level: .conversation, kind: .proportion, goal: .up,
               role: .primary, source: .feedback("task_completed")),
        Metric(name: "escalation_rate", title: "Escalation rate", level: .conversation, kind: .proportion, goal: .down,
               role: .guardrail, source: .feedback("escalated")),
        Metric(name: "csat", title: "CSAT", level: .conversation, kind: .mean, goal: .up, source: .feedback("csat"), bounds: .csat),
        Metric(name: "avg_turns", title: "Avg turns", level: .conversation, kind: .mean, goal: .down, source: .turns),
        Metric(name: "thumbs_up_rate", title: "Thumbs up", level: .request, kind: .proportion, goal: .up,
               source: .feedback("thumbs_up")),
        Metric(name: "repeat_usage", title: "Repeat usage", level: .user, kind: .proportion, goal: .up, source: .repeatUsage),
        Metric(name: "error_rate", title: "Error rate", level: .request, kind: .proportion, goal: .down,
               role: .guardrail, source: .errors),
        Metric(name: "output_tokens", title: "Output tokens", level: .request, kind: .mean, goal: .none,
               source: .field(.outputTokens)),
        Metric(name: "latency_p50", title: "Latency P50", level: .request, kind: .quantile, goal: .down,
               source: .field(.latencyMs), quantile: 0.50),
        Metric(name: "latency_p95", title: "Latency P95", level: .request, kind: .quantile, goal: .down,
               source: .field(.latencyMs), quantile: 0.95),
        Metric(name: "latency_p99", title: "Latency P99", level: .request, kind: .quantile, goal: .down,
               source: .field(.latencyMs), quantile: 0.99),
        Metric(name: "ttft_p50", title: "TTFT P50", level: .request, kind: .quantile, goal: .down,
               source: .field(.ttftMs), quantile: 0.50),
        Metric(name: "ttft_p95", title: "TTFT P95", level: .request, kind: .quantile, goal: .down,
               source: .field(.ttftMs), quantile: 0.95),
    ]
}
