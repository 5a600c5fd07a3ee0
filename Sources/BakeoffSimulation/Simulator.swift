import Foundation
import BakeoffCore
import BakeoffStatistics

/// How one variant's users behave in a simulation: the known truth the analysis should recover.
public struct VariantBehaviour: Sendable, Equatable {
    /// Share of conversations that end with the task completed (feedback `task_completed`).
    public var completion = 0.75
    /// Share of conversations escalated to a human (feedback `escalated`), only among those not completed
    /// while it is at most 1 - completion.
    public var escalation = 0.25
    /// Mean CSAT on a 1-5 scale (feedback `csat`).
    public var csat = 4.0
    /// Share of conversations that leave a CSAT score.
    public var csatResponseRate = 0.5
    /// Share of conversations that report completion and escalation at all.
    public var outcomeRate = 1.0
    /// Mean requests per conversation (at least 1).
    public var turns = 3.0
    /// Share of requests that get a like or dislike (feedback `thumbs_up`).
    public var thumbsRate = 0.3
    /// Share of those that are likes.
    public var likeRate = 0.7
    /// Share of requests that fail (`status` `upstream_error`).
    public var errorRate = 0.01
    public var latencyMedianMs = 900.0
    public var latencyP95Ms = 2100.0
    public var ttftMedianMs = 250.0
    public var ttftP95Ms = 600.0
    public var inputTokens = 350.0
    public var outputTokens = 210.0

    public init() {}
}

/// What to simulate: users, split, duration and each variant's behaviour.
public struct SimulationSpec: Sendable {
    public var experiment = "support-bot-v2"
    public var users = 2000
    public var allocation: Allocation
    public var days = 14
    /// Start time, microseconds since the epoch (default 2026-11-01T00:00:00Z).
    public var start: Int64 = Int64(daysFromCivil(year: 2026, month: 11, day: 1)) * 86_400_000_000
    /// Mean conversations per user (1 + Poisson).
    public var conversationsPerUser = 2.5
    /// How alike one user's conversations are: per-user rates are Beta with this concentration (a + b).
    /// Smaller means more clustering within users; infinity means every conversation is independent.
    public var userConcentration = 4.0
    public var seed: UInt64 = 1
    /// Behaviour per variant name; variants not listed behave as `VariantBehaviour()`.
    public var behaviours: [String: VariantBehaviour] = [:]

    public init(allocation: Allocation) { self.allocation = allocation }

    /// Named presets: `seed-case-study` (the article's support-bot case study) and `aa` (no difference).
    public static func preset(_ name: String) throws(ConfigError) -> SimulationSpec {
        switch name {
        case "seed-case-study":
            // 80/20, 14 days, ~6,200 and ~1,550 dialogs; the case study's rates.
            var spec = SimulationSpec(allocation: try! Allocation(split: 0.2))
            spec.users = 3100
            spec.conversationsPerUser = 2.5
            var v1 = VariantBehaviour()
            v1.completion = 0.713; v1.escalation = 0.287; v1.csat = 3.8; v1.turns = 3.2
            v1.likeRate = 0.68; v1.latencyMedianMs = 900; v1.latencyP95Ms = 2100
            v1.ttftMedianMs = 240; v1.ttftP95Ms = 560; v1.outputTokens = 210
            var v2 = v1
            v2.completion = 0.789; v2.escalation = 0.211; v2.csat = 4.1; v2.turns = 2.9
            v2.likeRate = 0.74; v2.latencyMedianMs = 980; v2.latencyP95Ms = 2300
            v2.ttftMedianMs = 260; v2.ttftP95Ms = 610; v2.outputTokens = 236
            spec.behaviours = ["control": v1, "treatment": v2]
            return spec
        case "aa":
            var spec = SimulationSpec(allocation: try! Allocation(split: 0.5))
            spec.experiment = "aa-test"
            return spec
        default:
            throw ConfigError(source: "preset", path: "", message: "unknown preset \"\(name)\" (known: seed-case-study, aa)")
        }
    }

    /// Reads a spec from JSON (keys as in the README); unknown keys are errors.
    public static func parse(_ data: Data, source: String) throws(ConfigError) -> SimulationSpec {
        var root = try ConfigObject.parse(data, source: source)
        var spec: SimulationSpec
        if let presetName = try root.string("preset") { spec = try preset(presetName) } else {
            spec = SimulationSpec(allocation: try! Allocation(split: 0.5))
        }
        if let e = try root.string("experiment") { spec.experiment = e }
        if let u = try root.int("users", minimum: 1) { spec.users = u }
        if let d = try root.int("days", minimum: 1) { spec.days = d }
        if let s = try root.int("seed") { spec.seed = UInt64(s) }
        if let c = try root.double("conversations_per_user", in: 1...1000) { spec.conversationsPerUser = c }
        if let k = try root.double("user_concentration") {
            guard k > 0 else { throw root.fail("user_concentration", "must be positive (use a large number for independent conversations)") }
            spec.userConcentration = k
        }
        if let start = try root.string("start") {
            var s = start
            guard let t = s.withUTF8({ parseRFC3339(UnsafeRawBufferPointer($0)) }) else {
                throw root.fail("start", "\"\(start)\" is not an RFC 3339 time such as \"2026-11-01T00:00:00Z\"")
            }
            spec.start = t
        }
        if let variants = try root.objects("variants") {
            var arms: [Allocation.Arm] = []
            var behaviours: [String: VariantBehaviour] = [:]
            for var v in variants {
                guard let name = try v.string("name") else { throw v.fail("name", "each variant needs a name") }
                guard let weight = try v.double("weight", in: 0...1) else { throw v.fail("weight", "each variant needs a weight") }
                arms.append(Allocation.Arm(name: name, weight: weight))
                var b = spec.behaviours[name] ?? VariantBehaviour()
                try readBehaviour(&v, into: &b)
                try v.finish()
                behaviours[name] = b
            }
            do { spec.allocation = try Allocation(arms: arms) } catch {
                throw root.fail("variants", error.message)
            }
            spec.behaviours = behaviours
        }
        try root.finish()
        return spec
    }

    static func readBehaviour(_ o: inout ConfigObject, into b: inout VariantBehaviour) throws(ConfigError) {
        if let x = try o.double("completion", in: 0...1) { b.completion = x }
        if let x = try o.double("escalation", in: 0...1) { b.escalation = x }
        if let x = try o.double("csat", in: 1...5) { b.csat = x }
        if let x = try o.double("csat_response_rate", in: 0...1) { b.csatResponseRate = x }
        if let x = try o.double("outcome_rate", in: 0...1) { b.outcomeRate = x }
        if let x = try o.double("turns", in: 1...1000) { b.turns = x }
        if let x = try o.double("thumbs_rate", in: 0...1) { b.thumbsRate = x }
        if let x = try o.double("like_rate", in: 0...1) { b.likeRate = x }
        if let x = try o.double("error_rate", in: 0...1) { b.errorRate = x }
        if let x = try o.double("latency_median_ms", in: 0.001...1e8) { b.latencyMedianMs = x }
        if let x = try o.double("latency_p95_ms", in: 0.001...1e8) { b.latencyP95Ms = x }
        if let x = try o.double("ttft_median_ms", in: 0.001...1e8) { b.ttftMedianMs = x }
        if let x = try o.double("ttft_p95_ms", in: 0.001...1e8) { b.ttftP95Ms = x }
        if let x = try o.double("input_tokens", in: 0...1e7) { b.inputTokens = x }
        if let x = try o.double("output_tokens", in: 0...1e7) { b.outputTokens = x }
        if b.latencyP95Ms < b.latencyMedianMs { throw o.fail("latency_p95_ms", "must be at least latency_median_ms") }
        if b.ttftP95Ms < b.ttftMedianMs { throw o.fail("ttft_p95_ms", "must be at least ttft_median_ms") }
    }
}

/// Generates an experiment's event log from a spec: users assigned by the real `Assigner`, conversations,
/// turns and feedback drawn from each variant's behaviour with per-user random effects.
///
/// Events are written user by user (each user's in time order), not globally sorted by time: the
/// analysis does not depend on order.
public enum Simulator {
    public static func run(_ spec: SimulationSpec, emit: (EventRecord) throws -> Void) rethrows {
        var rng = RandomSource(seed: spec.seed)
        let assigner = Assigner(experiment: spec.experiment, allocation: spec.allocation)
        let behaviours = spec.allocation.names.map { spec.behaviours[$0] ?? VariantBehaviour() }
        let dayMicros: Int64 = 86_400_000_000
        let span = Int64(spec.days) * dayMicros
        let kappa = spec.userConcentration
        var requestCounter = 0
        var conversationCounter = 0
        for userNumber in 1...spec.users {
            let userID = "u-\(userNumber)"
            let arm = assigner.armIndex(for: userID)
            let variant = spec.allocation.names[arm]
            let b = behaviours[arm]
            // Per-user rates: the source of within-user correlation.
            let pComplete = rng.beta(mean: b.completion, concentration: kappa)
            let qCsat = rng.beta(mean: (b.csat - 1) / 4, concentration: kappa)
            let pLike = rng.beta(mean: b.likeRate, concentration: kappa)
            let extraTurns = b.turns > 1 ? rng.gamma(shape: kappa.isFinite ? kappa : 1e6) * (b.turns - 1) / (kappa.isFinite ? kappa : 1e6) : 0
            let escalateIfFailed = b.completion < 1 ? min(1, b.escalation / (1 - b.completion)) : 1
            let escalateIfDone = b.escalation > 1 - b.completion && b.completion > 0 ? (b.escalation - (1 - b.completion)) / b.completion : 0

            let conversations = 1 + rng.poisson(spec.conversationsPerUser - 1)
            let arrival = Int64(rng.uniform() * Double(span))
            var starts = (0..<conversations).map { i in i == 0 ? arrival : arrival + Int64(rng.uniform() * Double(span - arrival)) }
            starts.sort()
            for start in starts {
                conversationCounter += 1
                let conversationID = "c-\(conversationCounter)"
                let turns = 1 + rng.poisson(extraTurns)
                var t = spec.start + start
                for _ in 0..<turns {
                    requestCounter += 1
                    var e = EventRecord(kind: .request, timestamp: t, experiment: spec.experiment)
                    e.variant = variant
                    e.userID = userID
                    e.conversationID = conversationID
                    e.requestID = "r-\(requestCounter)"
                    let latency = rng.logNormal(median: b.latencyMedianMs, p95: b.latencyP95Ms)
                    e.latencyMs = (latency * 10).rounded() / 10
                    e.ttftMs = (min(latency, rng.logNormal(median: b.ttftMedianMs, p95: b.ttftP95Ms)) * 10).rounded() / 10
                    e.inputTokens = max(1, rng.poisson(b.inputTokens))
                    let failed = rng.bernoulli(b.errorRate)
                    e.status = failed ? "upstream_error" : "ok"
                    e.outputTokens = failed ? 0 : max(1, rng.poisson(b.outputTokens))
                    try emit(e)
                    t += Int64(latency * 1000)
                    if !failed && rng.bernoulli(b.thumbsRate) {
                        var f = feedback(spec, userID, conversationID, t + 2_000_000, "thumbs_up", rng.bernoulli(pLike) ? 1 : 0)
                        f.requestID = e.requestID
                        try emit(f)
                    }
                    t += Int64((10 + rng.uniform() * 50) * 1_000_000)
                }
                if rng.bernoulli(b.outcomeRate) {
                    let completed = rng.bernoulli(pComplete)
                    let escalated = rng.bernoulli(completed ? escalateIfDone : escalateIfFailed)
                    try emit(feedback(spec, userID, conversationID, t, "task_completed", completed ? 1 : 0))
                    try emit(feedback(spec, userID, conversationID, t + 1_000, "escalated", escalated ? 1 : 0))
                }
                if rng.bernoulli(b.csatResponseRate) {
                    var score = 1
                    for _ in 0..<4 where rng.bernoulli(qCsat) { score += 1 }
                    try emit(feedback(spec, userID, conversationID, t + 30_000_000, "csat", Double(score)))
                }
            }
        }
    }

    private static func feedback(_ spec: SimulationSpec, _ user: String, _ conversation: String, _ ts: Int64,
                                 _ name: String, _ value: Double) -> EventRecord {
        var f = EventRecord(kind: .feedback, timestamp: ts, experiment: spec.experiment)
        f.userID = user
        f.conversationID = conversation
        f.name = name
        f.value = value
        return f
    }
}
