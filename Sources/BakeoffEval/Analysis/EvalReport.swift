/// The result of an offline eval: per scorer and metric the variants compared with the control, paired by
/// request; the pairwise judge's win rates; the judge's position bias; and the decision.
public struct EvalReport: Sendable {
    public var experiment: String
    /// Where the requests came from (the dataset's path).
    public var dataset: String
    public var variants: [String]
    public var control: Int
    public var requests: Int
    public var repetitions: Int
    public var alpha: Double
    /// The power "needs more requests" plans for.
    public var power: Double
    public var primary: String
    /// Per variant: how its calls went.
    public var calls: [VariantCalls]
    /// Per scorer (not pairwise) and non-control variant, paired by request, Holm-adjusted with the win rates.
    public var scores: [PairedComparison]
    /// Per pairwise judge and non-control variant.
    public var winRates: [WinRate]
    /// Per pairwise judge with three or more variants: Bradley-Terry strengths (the control at 0).
    public var rankings: [Ranking]
    /// Latency, time to first token, tokens, errors: per non-control variant, paired by request.
    public var metrics: [PairedComparison]
    /// Per guardrail and non-control variant.
    public var guardrails: [EvalGuardrailCheck]
    /// Requests where a variant and the control differ most on the primary scorer (side by side in HTML).
    public var differences: [ItemDifference]
    public var decision: EvalDecision
    /// Judge calls that failed or had no verdict, per scorer name.
    public var judgeProblems: [(scorer: String, failed: Int, unparseable: Int)]
    /// Set by the caller: the live experiment's result beside the offline one, when the store has it.
    public var live: LiveComparison?
    /// Set by the caller: people's labels against the judge (`EvalAnalysis.humanAgreement`), when imported.
    public var humanAgreement: [HumanAgreement] = []

    public var controlName: String { variants[control] }
}

/// How a variant's calls went.
public struct VariantCalls: Sendable, Equatable {
    public var variant: String
    public var answers: Int
    public var failed: Int
    public var cached: Int
    public var retries: Int
    public var meanLatencyMs: Double?
    public var p95LatencyMs: Double?
    public var meanTTFTMs: Double?
    public var meanInputTokens: Double?
    public var meanOutputTokens: Double?
    /// From the tokens and the variant's price, when the eval gives one.
    public var meanCostUSD: Double?
    /// The most common failure, if any.
    public var commonError: String?
}

/// A variant against the control on one per-request value (a scorer's mean over repetitions, or a metric).
public struct PairedComparison: Sendable, Equatable {
    public enum Test: String, Sendable { case pairedT = "paired t", mcnemar = "McNemar (exact)" }
    /// The scorer's or metric's name.
    public var name: String
    public var variant: String
    /// Yes/no values (compared with McNemar when each request has one answer per variant) or numbers.
    public var binary: Bool
    /// +1 higher is better, -1 lower is better, nil neither.
    public var direction: Int?
    /// Requests with a value for both.
    public var requests: Int
    public var controlMean: Double
    public var variantMean: Double
    /// Variant minus control, paired by request, with its (1 - alpha) interval (paired t).
    public var difference: Double
    public var ciLow: Double
    public var ciHigh: Double
    public var test: Test
    public var pValue: Double
    /// Holm across all scorer comparisons and win rates (nil for metrics, which are not corrected).
    public var adjustedPValue: Double?
    /// Wilcoxon signed-rank p (numeric values).
    public var wilcoxonP: Double?
    /// Binary: requests where only the variant passed, only the control.
    public var onlyVariant: Int?
    public var onlyControl: Int?
    /// Standard deviation of the per-request differences (for planning).
    public var sdDifference: Double

    public var relativeDifference: Double? { controlMean != 0 ? difference / abs(controlMean) : nil }

    /// Significant at `alpha` (on the adjusted p when there is one).
    public func significant(alpha: Double) -> Bool { (adjustedPValue ?? pValue) < alpha }

    /// Better (+1), worse (-1) or not significantly different (0), by the scorer's direction.
    public func verdict(alpha: Double) -> Int {
        guard significant(alpha: alpha), let direction else { return 0 }
        return difference * Double(direction) > 0 ? 1 : -1
    }
}

/// A variant against the control by a pairwise judge: per request win 1, tie 0.5, loss 0 (each repetition
/// judged in both orders; a verdict that flips with the order is a tie), averaged within the request.
public struct WinRate: Sendable, Equatable {
    public var scorer: String
    public var variant: String
    /// Requests with at least one usable verdict.
    public var requests: Int
    /// Requests the variant won, tied, lost (its mean score above, at, below one half).
    public var wins: Int
    public var ties: Int
    public var losses: Int
    public var winRate: Double
    public var ciLow: Double
    public var ciHigh: Double
    /// The sign test on the requests that were not tied.
    public var pValue: Double
    public var adjustedPValue: Double?
    /// Share of usable single-order verdicts that picked the answer shown first.
    public var firstPositionRate: Double?
    /// Share of repetitions where the two orders disagreed.
    public var flipRate: Double?
    /// Single-order verdicts used.
    public var judgments: Int
    /// Standard deviation of the per-request scores (for planning).
    public var sdScore: Double

    public func significant(alpha: Double) -> Bool { (adjustedPValue ?? pValue) < alpha }
    public func verdict(alpha: Double) -> Int { significant(alpha: alpha) ? (winRate > 0.5 ? 1 : -1) : 0 }
}

/// Bradley-Terry strengths of three or more variants by one pairwise judge.
public struct Ranking: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var variant: String
        /// Log-odds of beating the control (0 for the control).
        public var strength: Double
        public var ciLow: Double?
        public var ciHigh: Double?
        /// Chance of beating the control in one comparison.
        public var winProbability: Double
    }
    public var scorer: String
    public var entries: [Entry]
    /// Resamples whose fit was impossible (a variant that never won or never lost).
    public var skippedResamples: Int
}

/// A guardrail's state for one variant.
public struct EvalGuardrailCheck: Sendable, Equatable {
    public enum State: String, Sendable { case holds, unclear, breached }
    public var name: String
    public var variant: String
    public var state: State
    /// How much worse the variant is (positive: worse), and the worst end of its interval.
    public var worsening: Double
    public var worstCase: Double
    /// The margin in the metric's units.
    public var margin: Double
    /// The margin as said (or, when the guardrail cannot be checked, why).
    public var marginText: String
    /// Unclear: the requests that would bring the interval's worse end within the margin, at the worsening seen.
    public var requestsNeeded: Int?
}

/// A request where a variant and the control differ on the primary scorer.
public struct ItemDifference: Sendable, Equatable {
    public var item: String
    public var variant: String
    public var question: String
    public var controlAnswer: String
    public var variantAnswer: String
    public var reference: String?
    /// Variant minus control on the primary scorer (for a pairwise judge, the request's score minus one half).
    public var difference: Double
}

/// What to do with the candidate.
public struct EvalDecision: Sendable, Equatable {
    public enum Action: String, Sendable {
        case promote = "promote to a live A/B"
        case doNotPromote = "do not promote"
        case needsMoreRequests = "needs more requests"
    }
    public var action: Action
    /// The variant it is about (the best candidate).
    public var variant: String
    /// Why, in a sentence or two.
    public var reasons: [String]
    /// Needs more requests: how many in all would detect the effect.
    public var requestsNeeded: Int?
    /// Promote: users per group the live test needs, when the live baseline is known.
    public var liveUsersPerGroup: Int?
    /// Promote without a live baseline: how to get the live sample size.
    public var livePlanHint: String?
}

/// The live experiment's primary metric beside the offline estimate.
public struct LiveComparison: Sendable, Equatable {
    public var metric: String
    public var variant: String
    public var relativeLift: Double?
    public var ciLow: Double?
    public var ciHigh: Double?
    public var pValue: Double?
    public var users: Int
    public var note: String

    public init(metric: String, variant: String, relativeLift: Double?, ciLow: Double?, ciHigh: Double?, pValue: Double?, users: Int, note: String) {
        self.metric = metric
        self.variant = variant
        self.relativeLift = relativeLift
        self.ciLow = ciLow
        self.ciHigh = ciHigh
        self.pValue = pValue
        self.users = users
        self.note = note
    }
}
