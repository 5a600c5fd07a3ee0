/// One variant's answer to one request (one repetition): what was measured of the call, as live.
public struct EvalAnswer: Sendable, Equatable {
    public var item: Int
    public var variant: Int
    public var repetition: Int
    /// As a live request event's: "ok", "upstream_error", "timeout", ...
    public var status: String
    /// The answer's text (when `status` is "ok").
    public var text: String?
    public var latencyMs: Double?
    public var ttftMs: Double?
    public var inputTokens: Int?
    public var outputTokens: Int?
    /// Calls made for it (retries included); 0 when it came from the cache.
    public var attempts: Int
    /// Why it failed, when it did.
    public var error: String?

    public init(item: Int, variant: Int, repetition: Int, status: String, text: String? = nil, latencyMs: Double? = nil,
                ttftMs: Double? = nil, inputTokens: Int? = nil, outputTokens: Int? = nil, attempts: Int = 1, error: String? = nil) {
        self.item = item
        self.variant = variant
        self.repetition = repetition
        self.status = status
        self.text = text
        self.latencyMs = latencyMs
        self.ttftMs = ttftMs
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.attempts = attempts
        self.error = error
    }

    public var ok: Bool { status == "ok" && text != nil }
    public var cached: Bool { attempts == 0 }
}

/// A judge's verdict on one request (one repetition): pairwise, two answers in the order shown; pointwise,
/// one answer.
public struct EvalJudgment: Sendable, Equatable {
    /// The scorer's index in the plan.
    public var scorer: Int
    public var item: Int
    public var repetition: Int
    /// The variant shown first (as A), or judged alone.
    public var first: Int
    /// The variant shown second (as B); nil for a pointwise judgment.
    public var second: Int?
    /// The judge's answer as it came (nil when the call failed).
    public var raw: String?
    /// What the judge decided, pairwise (nil when its answer had no verdict, or the call failed).
    public var verdict: PairwiseVerdict?
    /// The score, pointwise.
    public var score: Double?
    /// Why there is no verdict, when there is none.
    public var error: String?
    /// Calls made (0: from the cache).
    public var attempts: Int

    public init(scorer: Int, item: Int, repetition: Int, first: Int, second: Int? = nil, raw: String? = nil,
                verdict: PairwiseVerdict? = nil, score: Double? = nil, error: String? = nil, attempts: Int = 1) {
        self.scorer = scorer
        self.item = item
        self.repetition = repetition
        self.first = first
        self.second = second
        self.raw = raw
        self.verdict = verdict
        self.score = score
        self.error = error
        self.attempts = attempts
    }
}

/// Everything an eval run observed: the analysis's input.
public struct EvalObservations: Sendable {
    public var items: [EvalItem]
    /// Variant names, in the experiment's order.
    public var variants: [String]
    public var control: Int
    public var repetitions: Int
    public var answers: [EvalAnswer]
    public var judgments: [EvalJudgment]

    public init(items: [EvalItem], variants: [String], control: Int, repetitions: Int, answers: [EvalAnswer], judgments: [EvalJudgment]) {
        self.items = items
        self.variants = variants
        self.control = control
        self.repetitions = repetitions
        self.answers = answers
        self.judgments = judgments
    }
}
