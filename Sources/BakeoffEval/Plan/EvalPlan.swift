import BakeoffCore

/// How an experiment is evaluated offline: the scorers, the primary one, the guardrails and the decision's
/// thresholds, and how the calls are made (repetitions, concurrency, retries).
///
/// It is the `"eval"` object of an experiment in the gateway config, so an offline eval uses exactly the
/// variants that go live. The judge's endpoint is read by the gateway config (it is an upstream like a
/// variant's); everything else is here.
public struct EvalPlan: Sendable {
    /// In the order of the config; names are unique.
    public var scorers: [EvalScorer]
    /// The scorer the decision rests on (default: the first pairwise judge, else the first scorer).
    public var primary: String
    /// Scorers and call metrics that must not get worse beyond a margin.
    public var guardrails: [EvalGuardrail]
    public var alpha = 0.05
    public var power = 0.8
    /// The smallest effect on the primary scorer worth detecting, for "needs more requests": a win rate
    /// (e.g. 0.55) for a pairwise judge, a difference of means for other scorers. Nil: the observed effect.
    public var minimumEffect: Double?
    /// Answers per request and variant (above 1 measures sampling noise).
    public var repetitions = 1
    /// Calls in flight at once to one upstream (base URL).
    public var concurrency = 8
    /// Further attempts of a call that failed with 429, 5xx, a timeout or no connection.
    public var retries = 4
    /// Whether variant requests are streamed (as most chat clients do: time to first token is measured).
    public var stream = true
    /// The control's current value of the live primary metric (a rate), to size the live test when the
    /// gateway's store does not say.
    public var liveBaseline: Double?
    /// Each variant's price per million input and output tokens, by variant name: the cost of its calls.
    public var prices: [String: TokenPrice] = [:]

    public init(scorers: [EvalScorer], primary: String? = nil, guardrails: [EvalGuardrail] = []) {
        self.scorers = scorers
        self.primary = primary ?? scorers.first(where: \.isPairwise)?.name ?? scorers.first(where: { $0.direction != nil })?.name ?? scorers.first?.name ?? ""
        self.guardrails = guardrails
    }

    /// The scorer named `name`.
    public func scorer(named name: String) -> EvalScorer? { scorers.first { $0.name == name } }

    /// Whether some scorer needs a judge.
    public var needsJudge: Bool { scorers.contains { if case .judge = $0 { return true } else { return false } } }

    public static let keys = ["judge", "scorers", "primary", "guardrails", "alpha", "power", "minimum_effect",
                              "repetitions", "concurrency", "retries", "stream", "live_baseline", "prices"]

    /// Reads an `"eval"` object (its `"judge"` is left to the caller, which reads endpoints).
    package static func parse(_ object: inout ConfigObject) throws(ConfigError) -> EvalPlan {
        _ = object.take("judge")
        guard let entries = try object.objects("scorers"), !entries.isEmpty else {
            throw object.fail("scorers", "list at least one scorer, e.g. [{\"type\": \"judge_pairwise\"}, {\"type\": \"exact_match\"}] (types: \(EvalScorer.types.joined(separator: ", ")))")
        }
        var scorers: [EvalScorer] = []
        for var entry in entries {
            let scorer = try EvalScorer.parse(&entry)
            if scorers.contains(where: { $0.name == scorer.name }) {
                throw entry.fail("name", "\(JSONWriter.quote(scorer.name)) names another scorer already; give each a unique \"name\"")
            }
            scorers.append(scorer)
        }
        var plan = EvalPlan(scorers: scorers)
        if let primary = try object.string("primary") {
            guard plan.scorer(named: primary) != nil else {
                throw object.fail("primary", "\(JSONWriter.quote(primary)) is not a scorer of this eval (scorers: \(scorers.map(\.name).joined(separator: ", ")))")
            }
            plan.primary = primary
        }
        if let p = plan.scorer(named: plan.primary), p.direction == nil {
            throw object.fail(object["primary"] == nil ? "scorers" : "primary", "the primary scorer \(JSONWriter.quote(p.name)) has no better direction (a length without bounds): give it a \"goal\" (\"up\" or \"down\"), or name another \"primary\"")
        }
        if let list = try object.objects("guardrails") {
            for var g in list {
                plan.guardrails.append(try EvalGuardrail.parse(&g, scorers: scorers))
                try g.finishWithSuggestion(EvalGuardrail.keys)
            }
        }
        plan.alpha = try object.double("alpha", in: 0.000001...0.5) ?? plan.alpha
        plan.power = try object.double("power", in: 0.5...0.999999) ?? plan.power
        if let effect = try object.double("minimum_effect") {
            let primary = plan.scorer(named: plan.primary)!
            if primary.isPairwise {
                guard effect > 0.5 && effect < 1 else { throw object.fail("minimum_effect", "for the pairwise judge \(JSONWriter.quote(primary.name)) it is the win rate worth detecting, above 0.5 and below 1 (e.g. 0.55), got \(JSONWriter.number(effect))") }
            } else {
                guard effect != 0 else { throw object.fail("minimum_effect", "must not be 0: the difference of means of \(JSONWriter.quote(primary.name)) worth detecting") }
            }
            plan.minimumEffect = effect
        }
        plan.repetitions = try object.int("repetitions", minimum: 1) ?? plan.repetitions
        guard plan.repetitions <= 100 else { throw object.fail("repetitions", "at most 100 answers per request and variant, got \(plan.repetitions)") }
        plan.concurrency = try object.int("concurrency", minimum: 1) ?? plan.concurrency
        guard plan.concurrency <= 1024 else { throw object.fail("concurrency", "at most 1024 calls in flight per upstream, got \(plan.concurrency)") }
        plan.retries = try object.int("retries", minimum: 0) ?? plan.retries
        guard plan.retries <= 20 else { throw object.fail("retries", "at most 20 retries, got \(plan.retries)") }
        plan.stream = try object.bool("stream") ?? plan.stream
        if let baseline = try object.double("live_baseline") {
            guard baseline > 0 && baseline < 1 else { throw object.fail("live_baseline", "the control's current rate of the live primary metric, above 0 and below 1, got \(JSONWriter.number(baseline))") }
            plan.liveBaseline = baseline
        }
        if var prices = try object.object("prices") {
            for name in prices.members.keys {
                guard var price = try prices.object(name) else { continue }
                let input = try price.double("input_per_million")
                let output = try price.double("output_per_million")
                try price.finishWithSuggestion(["input_per_million", "output_per_million"])
                guard let input, let output, input >= 0, output >= 0, input.isFinite, output.isFinite else {
                    throw price.fail(nil, "a price needs \"input_per_million\" and \"output_per_million\": the variant's price per million tokens, not negative (e.g. {\"input_per_million\": 0.15, \"output_per_million\": 0.6})")
                }
                plan.prices[name] = TokenPrice(inputPerMillion: input, outputPerMillion: output)
            }
        }
        try object.finishWithSuggestion(keys)
        return plan
    }
}

/// What a variant's tokens cost.
public struct TokenPrice: Sendable, Equatable {
    public var inputPerMillion: Double
    public var outputPerMillion: Double

    public init(inputPerMillion: Double, outputPerMillion: Double) {
        self.inputPerMillion = inputPerMillion
        self.outputPerMillion = outputPerMillion
    }

    /// The cost of one call, when its usage is known.
    public func cost(input: Int?, output: Int?) -> Double? {
        guard let input, let output else { return nil }
        return (Double(input) * inputPerMillion + Double(output) * outputPerMillion) / 1_000_000
    }
}

/// A scorer or a measurement of the calls that must not get worse beyond a margin.
public struct EvalGuardrail: Sendable, Equatable {
    public enum Target: Sendable, Equatable {
        case scorer(String)
        case metric(EvalCallMetric)
    }
    public var target: Target
    /// How much worse is tolerated: in the metric's units, or a share of the control's value when `relative`.
    public var margin: Double
    public var relative: Bool

    public init(target: Target, margin: Double, relative: Bool) {
        self.target = target
        self.margin = margin
        self.relative = relative
    }

    public var name: String {
        switch target {
        case .scorer(let s): return s
        case .metric(let m): return m.rawValue
        }
    }

    static let keys = ["scorer", "metric", "margin"]

    /// `{"scorer": "valid_json", "margin": 0.02}`, `{"metric": "latency_ms", "margin": "10%"}`.
    static func parse(_ g: inout ConfigObject, scorers: [EvalScorer]) throws(ConfigError) -> EvalGuardrail {
        let scorer = try g.string("scorer")
        let metric = try g.enumValue("metric", EvalCallMetric.self)
        let target: Target
        switch (scorer, metric) {
        case (let s?, nil):
            guard let found = scorers.first(where: { $0.name == s }) else {
                throw g.fail("scorer", "\(JSONWriter.quote(s)) is not a scorer of this eval (scorers: \(scorers.map(\.name).joined(separator: ", ")))")
            }
            guard !found.isPairwise else {
                throw g.fail("scorer", "\(JSONWriter.quote(s)) is a pairwise judge, which has no value per variant to hold steady; guard a pointwise scorer or a metric")
            }
            guard found.direction != nil else {
                throw g.fail("scorer", "\(JSONWriter.quote(s)) has no better direction (a length without bounds); guard a scorer where higher is better")
            }
            target = .scorer(s)
        case (nil, let m?): target = .metric(m)
        case (nil, nil): throw g.fail(nil, "a guardrail names a \"scorer\" or a \"metric\" (\(EvalCallMetric.allCases.map(\.rawValue).joined(separator: ", ")))")
        case (_?, _?): throw g.fail("metric", "give either \"scorer\" or \"metric\", not both")
        }
        guard let raw = g.take("margin") else { throw g.fail("margin", "a guardrail needs a \"margin\": how much worse is tolerated, e.g. 0.02 or \"10%\"") }
        var margin: Double, relative = false
        if let n = raw.number {
            margin = n
        } else if let s = raw.string, s.hasSuffix("%"), let n = Double(s.dropLast().trimmingCharacters(in: .whitespaces)) {
            margin = n / 100
            relative = true
        } else {
            throw g.fail("margin", "must be a number (in the metric's units) or a percentage such as \"10%\", got \(raw.described)")
        }
        guard margin >= 0, margin.isFinite else { throw g.fail("margin", "must not be negative, got \(JSONWriter.number(margin))") }
        return EvalGuardrail(target: target, margin: margin, relative: relative)
    }
}

/// What is measured of every call, as live; lower is better for each.
public enum EvalCallMetric: String, Sendable, CaseIterable, Equatable {
    case latencyMs = "latency_ms"
    case ttftMs = "ttft_ms"
    case outputTokens = "output_tokens"
    case inputTokens = "input_tokens"
    case errorRate = "error_rate"
    /// From the tokens and the variant's price (`prices`).
    case costUSD = "cost_usd"
}

extension ConfigObject {
    /// Fails on the first key not read, with the closest known key as a suggestion.
    package func finishWithSuggestion(_ known: [String]) throws(ConfigError) {
        let unknown = Set(members.keys).subtracting(used).sorted()
        guard let first = unknown.first else { return }
        var message = "unknown key"
        if let guess = closestName(first, among: known) { message += "; did you mean \"\(guess)\"?" }
        message += " (known keys here: \(known.joined(separator: ", ")))"
        throw fail(first, message)
    }
}
