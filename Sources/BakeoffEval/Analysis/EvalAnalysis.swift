import BakeoffCore
import BakeoffStatistics
import Foundation

/// Turns an eval's observations into its report: every comparison paired by request (the unit that was
/// sampled: repetitions and both judging orders are averaged within it), Holm across the scorers and
/// variants, guardrails, the decision.
public enum EvalAnalysis {
    /// What the analysis needs besides the observations.
    public struct Context: Sendable {
        public var experiment: String
        public var dataset: String
        public var plan: EvalPlan
        /// Seed of the resampling (Bradley-Terry intervals).
        public var seed: UInt64 = 1
        /// Requests shown side by side in the report, at most.
        public var differencesShown = 10
        /// The live test's users per group, when it can be planned (see `EvalDecision.liveUsersPerGroup`).
        public var liveUsersPerGroup: Int?
        public var livePlanHint: String?

        public init(experiment: String, dataset: String, plan: EvalPlan) {
            self.experiment = experiment
            self.dataset = dataset
            self.plan = plan
        }
    }

    public static func run(_ o: EvalObservations, _ context: Context) -> EvalReport {
        let plan = context.plan
        let alpha = plan.alpha
        let k = o.variants.count
        let n = o.items.count
        let others = (0..<k).filter { $0 != o.control }

        // Answers by (item, variant): the repetitions, as ranges of one sorted index (no array per request).
        let order = o.answers.indices.sorted { (o.answers[$0].item * k + o.answers[$0].variant, $0) < (o.answers[$1].item * k + o.answers[$1].variant, $1) }
        var starts = [Int](repeating: order.count, count: n * k + 1)
        for (position, index) in order.enumerated().reversed() { starts[o.answers[index].item * k + o.answers[index].variant] = position }
        for slot in stride(from: n * k - 1, through: 0, by: -1) where starts[slot] > starts[slot + 1] { starts[slot] = starts[slot + 1] }
        func answers(_ i: Int, _ v: Int) -> [EvalAnswer] { order[starts[i * k + v]..<starts[i * k + v + 1]].map { o.answers[$0] } }

        // Per scorer (not pairwise), per request and variant: the mean over repetitions of its scores.
        var perRequest: [[[Double?]]] = []  // [scorer][variant][item]
        for scorer in plan.scorers {
            var table = [[Double?]](repeating: [Double?](repeating: nil, count: n), count: k)
            switch scorer {
            case .deterministic(let d):
                for i in 0..<n {
                    for v in 0..<k {
                        let values: [Double] = answers(i, v).compactMap { a in
                            guard a.ok, case .value(let x) = d.score(answer: a.text!, reference: o.items[i].reference) else { return nil }
                            return x
                        }
                        if !values.isEmpty { table[v][i] = values.reduce(0, +) / Double(values.count) }
                    }
                }
            case .judge(let j) where !j.isPairwise:
                var sums = [[Double]](repeating: [Double](repeating: 0, count: n), count: k)
                var counts = [[Int]](repeating: [Int](repeating: 0, count: n), count: k)
                let index = plan.scorers.firstIndex { $0.name == j.name }!
                for judgment in o.judgments where judgment.scorer == index {
                    guard let s = judgment.score else { continue }
                    sums[judgment.first][judgment.item] += s
                    counts[judgment.first][judgment.item] += 1
                }
                for v in 0..<k { for i in 0..<n where counts[v][i] > 0 { table[v][i] = sums[v][i] / Double(counts[v][i]) } }
            case .judge:
                break
            }
            perRequest.append(table)
        }

        // Scorer comparisons.
        var scores: [PairedComparison] = []
        for (s, scorer) in plan.scorers.enumerated() where !scorer.isPairwise {
            for v in others {
                let binary = scorer.kind == .binary && o.repetitions == 1
                if let c = compare(name: scorer.name, variant: o.variants[v], control: perRequest[s][o.control], candidate: perRequest[s][v],
                                   binary: binary, direction: scorer.direction, alpha: alpha, wilcoxon: !binary) {
                    scores.append(c)
                }
            }
        }

        // Pairwise judges.
        var winRates: [WinRate] = []
        var rankings: [Ranking] = []
        var requestScores: [String: [Int: [Double?]]] = [:]  // scorer -> variant -> per item score vs control
        for (s, scorer) in plan.scorers.enumerated() where scorer.isPairwise {
            let judgments = o.judgments.filter { $0.scorer == s }
            for v in others {
                let (rate, itemScores) = winRate(scorer: scorer.name, judgments: judgments, variant: v, control: o.control,
                                                 names: o.variants, items: n, repetitions: o.repetitions, alpha: alpha)
                if let rate { winRates.append(rate) }
                requestScores[scorer.name, default: [:]][v] = itemScores
            }
            if k >= 3 { rankings.append(ranking(scorer: scorer.name, judgments: judgments, o: o, seed: context.seed, alpha: alpha)) }
        }

        // Holm across every scorer comparison and win rate.
        let pValues = scores.map(\.pValue) + winRates.map(\.pValue)
        let adjusted = MultipleComparisons.adjustedPValues(pValues, correction: .holm)
        for i in scores.indices { scores[i].adjustedPValue = adjusted[i] }
        for i in winRates.indices { winRates[i].adjustedPValue = adjusted[scores.count + i] }

        // Call metrics, paired by request.
        var metrics: [PairedComparison] = []
        var callSummaries: [VariantCalls] = []
        for v in [o.control] + others {
            // Over the variant's answers in place (a run holds tens of thousands).
            var count = 0, failed = 0, cached = 0, retries = 0
            var latencies: [Double] = [], ttft: [Double] = [], input: [Double] = [], output: [Double] = [], cost: [Double] = []
            let price = plan.prices[o.variants[v]]
            var errors: [String: Int] = [:]
            for i in 0..<n {
                for index in order[starts[i * k + v]..<starts[i * k + v + 1]] {
                    let a = o.answers[index]
                    count += 1
                    if a.cached { cached += 1 }
                    retries += max(0, a.attempts - 1)
                    guard a.ok else { failed += 1; errors[a.error ?? a.status, default: 0] += 1; continue }
                    if let x = a.latencyMs { latencies.append(x) }
                    if let x = a.ttftMs { ttft.append(x) }
                    if let x = a.inputTokens { input.append(Double(x)) }
                    if let x = a.outputTokens { output.append(Double(x)) }
                    if let x = price?.cost(input: a.inputTokens, output: a.outputTokens) { cost.append(x) }
                }
            }
            latencies.sort()
            callSummaries.append(VariantCalls(
                variant: o.variants[v], answers: count, failed: failed, cached: cached, retries: retries,
                meanLatencyMs: mean(latencies), p95LatencyMs: latencies.isEmpty ? nil : latencies[min(latencies.count - 1, Int((Double(latencies.count) * 0.95).rounded(.up)) - 1)],
                meanTTFTMs: mean(ttft), meanInputTokens: mean(input), meanOutputTokens: mean(output), meanCostUSD: mean(cost),
                commonError: errors.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key))
        }
        for metric in EvalCallMetric.allCases {
            func value(_ a: [EvalAnswer]) -> Double? {
                switch metric {
                case .costUSD:
                    guard let first = a.first, let price = plan.prices[o.variants[first.variant]] else { return nil }
                    return mean(a.filter(\.ok).compactMap { price.cost(input: $0.inputTokens, output: $0.outputTokens) })
                case .errorRate: return a.isEmpty ? nil : Double(a.filter { !$0.ok }.count) / Double(a.count)
                case .latencyMs: return mean(a.filter(\.ok).compactMap(\.latencyMs))
                case .ttftMs: return mean(a.filter(\.ok).compactMap(\.ttftMs))
                case .inputTokens: return mean(a.filter(\.ok).compactMap { $0.inputTokens.map(Double.init) })
                case .outputTokens: return mean(a.filter(\.ok).compactMap { $0.outputTokens.map(Double.init) })
                }
            }
            let control = (0..<n).map { value(answers($0, o.control)) }
            for v in others {
                let candidate = (0..<n).map { value(answers($0, v)) }
                if let c = compare(name: metric.rawValue, variant: o.variants[v], control: control, candidate: candidate,
                                   binary: false, direction: -1, alpha: alpha, wilcoxon: metric != .errorRate) {
                    metrics.append(c)
                }
            }
        }

        // Guardrails. One that cannot be computed (no references for its scorer, no time to first token without
        // streaming, no request answered by both) is unclear: never passed.
        var guardrails: [EvalGuardrailCheck] = []
        for g in plan.guardrails {
            for v in others {
                let comparison: PairedComparison?
                switch g.target {
                case .scorer(let name): comparison = scores.first { $0.name == name && $0.variant == o.variants[v] }
                case .metric(let m): comparison = metrics.first { $0.name == m.rawValue && $0.variant == o.variants[v] }
                }
                guard let c = comparison, let direction = c.direction else {
                    let why: String
                    switch g.target {
                    case .scorer(let name): why = "\(name) has no value for requests answered by both (a reference-based scorer needs requests with a \"reference\")"
                    case .metric(let m):
                        why = m == .ttftMs ? "no time to first token was measured (it needs \"stream\": true)"
                            : m == .costUSD ? "no cost without both variants' \"prices\" and their token counts"
                            : "no request has \(m.rawValue) for both"
                    }
                    guardrails.append(EvalGuardrailCheck(name: g.name, variant: o.variants[v], state: .unclear, worsening: .nan,
                                                         worstCase: .nan, margin: g.margin, marginText: why))
                    continue
                }
                let margin = g.relative ? g.margin * abs(c.controlMean) : g.margin
                // Worsening: positive when the variant is worse.
                let worsening = -Double(direction) * c.difference
                let worstCase = direction > 0 ? -(c.ciLow) : c.ciHigh
                let state: EvalGuardrailCheck.State = worsening > margin ? .breached : worstCase > margin ? .unclear : .holds
                let marginText = g.relative ? "\(evalNumber(g.margin * 100))% of the control's \(evalNumber(c.controlMean))" : evalNumber(g.margin)
                var check = EvalGuardrailCheck(name: g.name, variant: o.variants[v], state: state, worsening: worsening,
                                               worstCase: worstCase, margin: margin, marginText: marginText)
                // Requests for the interval's worse end to come within the margin, at the worsening seen.
                if state == .unclear, margin > worsening, c.sdDifference > 0 {
                    let z = Normal.quantile(1 - alpha / 2)
                    check.requestsNeeded = Int((pow(z * c.sdDifference / (margin - worsening), 2)).rounded(.up)) + 1
                }
                guardrails.append(check)
            }
        }

        // The requests where variants differ most on the primary scorer.
        var differences: [ItemDifference] = []
        let primaryIndex = plan.scorers.firstIndex { $0.name == plan.primary }
        for v in others {
            var candidates: [(Int, Double)] = []
            if let p = primaryIndex {
                if plan.scorers[p].isPairwise {
                    let s = requestScores[plan.primary]?[v] ?? []
                    for (i, x) in s.enumerated() { if let x, x != 0.5 { candidates.append((i, x - 0.5)) } }
                } else {
                    for i in 0..<n {
                        if let a = perRequest[p][v][i], let b = perRequest[p][o.control][i], a != b { candidates.append((i, a - b)) }
                    }
                }
            }
            candidates.sort { abs($0.1) > abs($1.1) || (abs($0.1) == abs($1.1) && $0.0 < $1.0) }
            for (i, d) in candidates.prefix(context.differencesShown) {
                guard let va = answers(i, v).first(where: \.ok)?.text, let ca = answers(i, o.control).first(where: \.ok)?.text else { continue }
                differences.append(ItemDifference(item: o.items[i].id, variant: o.variants[v], question: o.items[i].judgeQuestion,
                                                  controlAnswer: ca, variantAnswer: va, reference: o.items[i].reference, difference: d))
            }
        }

        var judgeProblems: [(String, Int, Int)] = []
        for (s, scorer) in plan.scorers.enumerated() {
            guard case .judge = scorer else { continue }
            let js = o.judgments.filter { $0.scorer == s }
            let failed = js.filter { $0.raw == nil }.count
            let unparseable = js.filter { $0.raw != nil && $0.verdict == nil && $0.score == nil }.count
            judgeProblems.append((scorer.name, failed, unparseable))
        }

        let decision = decide(plan: plan, names: o.variants, control: o.control, scores: scores, winRates: winRates,
                              guardrails: guardrails, metrics: metrics, calls: callSummaries, context: context, requests: n)
        return EvalReport(experiment: context.experiment, dataset: context.dataset, variants: o.variants, control: o.control,
                          requests: n, repetitions: o.repetitions, alpha: alpha, power: plan.power, primary: plan.primary, calls: callSummaries,
                          scores: scores, winRates: winRates, rankings: rankings, metrics: metrics, guardrails: guardrails,
                          differences: differences, decision: decision, judgeProblems: judgeProblems, live: nil)
    }

    /// A variant against the control on per-request values; nil when no request has both.
    package static func compare(name: String, variant: String, control: [Double?], candidate: [Double?], binary: Bool,
                        direction: Int?, alpha: Double, wilcoxon: Bool) -> PairedComparison? {
        var a: [Double] = [], b: [Double] = []
        for (x, y) in zip(control, candidate) { if let x, let y { a.append(x); b.append(y) } }
        guard !a.isEmpty else { return nil }
        let d = zip(b, a).map { $0 - $1 }
        let t = PairedStatistics.pairedT(d, alpha: alpha)
        var c = PairedComparison(name: name, variant: variant, binary: binary, direction: direction, requests: a.count,
                                 controlMean: a.reduce(0, +) / Double(a.count), variantMean: b.reduce(0, +) / Double(b.count),
                                 difference: t.mean, ciLow: t.ciLow, ciHigh: t.ciHigh, test: .pairedT, pValue: t.p,
                                 sdDifference: t.sd)
        if binary {
            let onlyVariant = zip(a, b).filter { $0.0 == 0 && $0.1 == 1 }.count
            let onlyControl = zip(a, b).filter { $0.0 == 1 && $0.1 == 0 }.count
            c.test = .mcnemar
            c.pValue = McNemarTest.exactPValue(onlyFirst: onlyVariant, onlySecond: onlyControl)
            c.onlyVariant = onlyVariant
            c.onlyControl = onlyControl
        } else if wilcoxon {
            c.wilcoxonP = PairedStatistics.wilcoxon(d)
        }
        return c
    }

    /// The win rate of `variant` over `control` by one pairwise judge, and each request's score.
    package static func winRate(scorer: String, judgments: [EvalJudgment], variant v: Int, control c: Int, names: [String],
                        items n: Int, repetitions: Int, alpha: Double) -> (WinRate?, [Double?]) {
        // Per (item, repetition): the verdicts in each order, as "variant won" 1 / tie 0.5 / lost 0.
        var orderVC = [Double?](repeating: nil, count: n * repetitions)  // variant shown first
        var orderCV = [Double?](repeating: nil, count: n * repetitions)  // control shown first
        var firstPicks = 0, decisive = 0
        for j in judgments {
            guard let second = j.second, let verdict = j.verdict else { continue }
            let slot = j.item * repetitions + j.repetition
            let value: Double
            switch verdict {
            case .tie: value = 0.5
            case .first: value = j.first == v ? 1 : 0
            case .second: value = second == v ? 1 : 0
            }
            if j.first == v && second == c { orderVC[slot] = value } else if j.first == c && second == v { orderCV[slot] = value } else { continue }
            if verdict != .tie { decisive += 1; if verdict == .first { firstPicks += 1 } }
        }
        var itemScores = [Double?](repeating: nil, count: n)
        var flips = 0, pairsJudged = 0, used = 0
        for i in 0..<n {
            var values: [Double] = []
            for r in 0..<repetitions {
                let slot = i * repetitions + r
                switch (orderVC[slot], orderCV[slot]) {
                case (let x?, let y?):
                    pairsJudged += 1
                    used += 2
                    // Consistent in both orders, or else a tie (MT-Bench's rule).
                    if x == y { values.append(x) } else { values.append(0.5); flips += 1 }
                case (let x?, nil), (nil, let x?):
                    used += 1
                    values.append(x)
                case (nil, nil):
                    break
                }
            }
            if !values.isEmpty { itemScores[i] = values.reduce(0, +) / Double(values.count) }
        }
        let scores = itemScores.compactMap { $0 }
        guard !scores.isEmpty else { return (nil, itemScores) }
        let wins = scores.filter { $0 > 0.5 }.count, losses = scores.filter { $0 < 0.5 }.count
        let t = PairedStatistics.pairedT(scores.map { $0 - 0.5 }, alpha: alpha)
        let rate = WinRate(scorer: scorer, variant: names[v], requests: scores.count, wins: wins, ties: scores.count - wins - losses,
                           losses: losses, winRate: 0.5 + t.mean, ciLow: max(0, 0.5 + t.ciLow), ciHigh: min(1, 0.5 + t.ciHigh),
                           pValue: PairedStatistics.signTest(wins: wins, losses: losses), adjustedPValue: nil,
                           firstPositionRate: decisive > 0 ? Double(firstPicks) / Double(decisive) : nil,
                           flipRate: pairsJudged > 0 ? Double(flips) / Double(pairsJudged) : nil, judgments: used, sdScore: t.sd)
        return (rate, itemScores)
    }

    /// Bradley-Terry strengths of all variants by one pairwise judge (every single-order verdict a comparison,
    /// a tie half a win each), with percentile intervals from resampling requests.
    static func ranking(scorer: String, judgments: [EvalJudgment], o: EvalObservations, seed: UInt64, alpha: Double) -> Ranking {
        let k = o.variants.count
        var byItem = [[BradleyTerry.Comparison]](repeating: [], count: o.items.count)
        for j in judgments {
            guard let second = j.second, let verdict = j.verdict else { continue }
            let outcome: BradleyTerry.Outcome = verdict == .first ? .firstWins : verdict == .second ? .secondWins : .tie
            byItem[j.item].append(BradleyTerry.Comparison(j.first, second, outcome))
        }
        var random = SplitMix64(seed: seed)
        func next(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        let clusters = byItem.filter { !$0.isEmpty }
        guard let b = try? BradleyTerry.bootstrap(clusters: clusters, variantCount: k, control: o.control, replicates: 400,
                                                  confidence: 1 - alpha, nextIndex: next) else {
            // Not identifiable (a variant that never won or never lost): no strengths to show.
            return Ranking(scorer: scorer, entries: o.variants.map { Ranking.Entry(variant: $0, strength: .nan, ciLow: nil, ciHigh: nil, winProbability: .nan) },
                           skippedResamples: 0)
        }
        let entries = (0..<k).map { v in
            Ranking.Entry(variant: o.variants[v], strength: b.estimate.strengths[v],
                          ciLow: v == o.control ? nil : b.strengthIntervals[v].lower,
                          ciHigh: v == o.control ? nil : b.strengthIntervals[v].upper,
                          winProbability: b.estimate.winProbabilities[v])
        }
        return Ranking(scorer: scorer, entries: entries, skippedResamples: b.replicatesSkipped)
    }

    /// Promote, do not promote, or needs more requests: each candidate on the primary scorer, its guardrails and
    /// its failed calls; the report names the best candidate that may be promoted, else the best one.
    static func decide(plan: EvalPlan, names: [String], control: Int, scores: [PairedComparison], winRates: [WinRate],
                       guardrails: [EvalGuardrailCheck], metrics: [PairedComparison], calls: [VariantCalls],
                       context: Context, requests: Int) -> EvalDecision {
        let candidates = names.indices.filter { $0 != control }.map { names[$0] }
        func strength(_ variant: String) -> Double {
            if primaryIsPairwise(plan) { return winRates.first { $0.scorer == plan.primary && $0.variant == variant }?.winRate ?? -.infinity }
            guard let c = scores.first(where: { $0.name == plan.primary && $0.variant == variant }) else { return -.infinity }
            return c.difference * Double(c.direction ?? 1)
        }
        let decisions = candidates.sorted { strength($0) > strength($1) }.map {
            decide(variant: $0, plan: plan, names: names, control: control, scores: scores, winRates: winRates,
                   guardrails: guardrails, metrics: metrics, calls: calls, context: context, requests: requests)
        }
        guard let best = decisions.first else {
            return EvalDecision(action: .needsMoreRequests, variant: names[control], reasons: ["the experiment has no candidate besides the control"])
        }
        if var promoted = decisions.first(where: { $0.action == .promote }) {
            if promoted.variant != best.variant {
                promoted.reasons.append("\(best.variant) scored higher but may not be promoted: \(best.reasons.first ?? best.action.rawValue)")
            }
            return promoted
        }
        return decisions.first(where: { $0.action == .needsMoreRequests }) ?? best
    }

    /// The decision on one candidate.
    static func decide(variant: String, plan: EvalPlan, names: [String], control: Int, scores: [PairedComparison],
                       winRates: [WinRate], guardrails: [EvalGuardrailCheck], metrics: [PairedComparison], calls: [VariantCalls],
                       context: Context, requests: Int) -> EvalDecision {
        let alpha = plan.alpha
        let controlName = names[control]
        let tests = Double(max(1, scores.count + winRates.count))
        var decision = EvalDecision(action: .needsMoreRequests, variant: variant, reasons: [])
        // Failed calls: a candidate that fails more often than the control is not promoted, and a comparison of
        // the answers that came is no comparison when many did not.
        let own = calls.first { $0.variant == variant }, base = calls.first { $0.variant == controlName }
        if let own, own.answers > 0, own.failed == own.answers {
            decision.action = .doNotPromote
            decision.reasons = ["\(variant) failed all \(own.answers) of its calls\(own.commonError.map { " (most often: \($0))" } ?? "")"]
            return decision
        }
        var failureReasons: [String] = []
        if let own, let base, own.answers > 0, base.answers > 0 {
            let ownRate = Double(own.failed) / Double(own.answers), baseRate = Double(base.failed) / Double(base.answers)
            let errors = metrics.first { $0.name == EvalCallMetric.errorRate.rawValue && $0.variant == variant }
            if ownRate > baseRate, let e = errors, e.pValue < alpha {
                decision.action = .doNotPromote
                decision.reasons = ["\(variant) failed \(own.failed) of \(own.answers) calls against \(base.failed) of \(base.answers) for \(controlName) (paired p = \(formatP(e.pValue)))\(own.commonError.map { "; most often: \($0)" } ?? "")"]
                return decision
            }
            if own.failed + base.failed > 0 {
                failureReasons.append("\(own.failed) of \(variant)'s and \(base.failed) of \(controlName)'s answers failed and are left out of the comparison")
            }
        }
        let breached = guardrails.filter { $0.variant == variant && $0.state == .breached }
        let unclear = guardrails.filter { $0.variant == variant && $0.state == .unclear }
        var verdict = 0
        var primaryText = ""
        var requestsNeeded: Int?
        if primaryIsPairwise(plan), let w = winRates.first(where: { $0.scorer == plan.primary && $0.variant == variant }) {
            verdict = w.verdict(alpha: alpha)
            primaryText = "\(plan.primary): \(variant) wins \(evalPercent(w.winRate)) of requests against \(controlName) (\(evalPercent(w.ciLow)) to \(evalPercent(w.ciHigh)), sign test \(formatPEquals(w.adjustedPValue ?? w.pValue)) after Holm)"
            // The sign test counts the requests not tied: its target is the share of those the candidate wins.
            let decisive = w.wins + w.losses
            let observed = decisive > 0 ? Double(w.wins) / Double(decisive) : 0.5
            let target = plan.minimumEffect ?? (observed > 0.5 && observed < 1 ? observed : observed >= 1 ? 0.99 : 0.55)
            let tieRate = w.requests > 0 ? Double(w.ties) / Double(w.requests) : 0
            requestsNeeded = PairedStatistics.requestsForWinRate(target, tieRate: min(tieRate, 0.95), alpha: alpha / tests, power: plan.power)
        } else if let c = scores.first(where: { $0.name == plan.primary && $0.variant == variant }) {
            verdict = c.verdict(alpha: alpha)
            primaryText = "\(plan.primary): \(evalNumber(c.variantMean)) against \(evalNumber(c.controlMean)) for \(controlName) (difference \(evalSigned(c.difference)), \(evalSigned(c.ciLow)) to \(evalSigned(c.ciHigh)), \(formatPEquals(c.adjustedPValue ?? c.pValue)) after Holm)"
            let delta = plan.minimumEffect ?? c.difference
            requestsNeeded = PairedStatistics.requestsForMeanDifference(delta, sd: c.sdDifference, alpha: alpha / tests, power: plan.power)
        } else {
            decision.reasons = [primaryIsPairwise(plan)
                ? "the judge \(plan.primary) gave no usable verdict on \(variant) against \(controlName)"
                : "the primary scorer \(plan.primary) has no paired results: no request has a score for both \(variant) and \(controlName)"]
            decision.reasons += failureReasons
            return decision
        }
        if !breached.isEmpty {
            decision.action = .doNotPromote
            decision.reasons = breached.map { "guardrail \($0.name) got worse beyond its margin (\(evalSigned($0.worsening)) worse; margin \($0.marginText))" } + [primaryText]
        } else if verdict < 0 {
            decision.action = .doNotPromote
            decision.reasons = ["\(variant) is worse than \(controlName) on the primary scorer: " + primaryText]
        } else if verdict > 0 && unclear.isEmpty {
            decision.action = .promote
            decision.reasons = [primaryText] + (guardrails.isEmpty ? [] : ["every guardrail holds"])
            decision.liveUsersPerGroup = context.liveUsersPerGroup
            decision.livePlanHint = context.livePlanHint
        } else {
            decision.action = .needsMoreRequests
            decision.reasons = [verdict > 0 ? primaryText : "no significant difference yet: " + primaryText]
            decision.reasons += unclear.map { g in
                g.worstCase.isNaN ? "guardrail \(g.name) cannot be checked: \(g.marginText)"
                    : "guardrail \(g.name) is not yet shown to hold (up to \(evalSigned(g.worstCase)) worse; margin \(g.marginText))"
            }
            // What more requests must show: the primary's effect, or (once it is shown) the guardrails' margins.
            let needed = verdict > 0 ? unclear.compactMap(\.requestsNeeded).max() : requestsNeeded
            if let needed, needed > requests { decision.requestsNeeded = needed }
        }
        decision.reasons += failureReasons
        return decision
    }

    static func primaryIsPairwise(_ plan: EvalPlan) -> Bool { plan.scorer(named: plan.primary)?.isPairwise ?? false }

    static func mean(_ x: [Double]) -> Double? { x.isEmpty ? nil : x.reduce(0, +) / Double(x.count) }
}

/// A value in a sentence: three significant digits, whole numbers as they are.
package func evalNumber(_ x: Double) -> String {
    if x.isNaN { return "n/a" }
    if x == x.rounded() && abs(x) < 1e9 { return String(Int(x)) }
    return significant(x, 3)
}

/// A difference with its sign.
package func evalSigned(_ x: Double) -> String { (x > 0 ? "+" : "") + evalNumber(x) }

/// A share as a percentage ("61.5%").
package func evalPercent(_ x: Double) -> String { fixed(x * 100, 1) + "%" }
