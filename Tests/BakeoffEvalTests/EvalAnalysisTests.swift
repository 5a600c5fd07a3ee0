import BakeoffCore
import BakeoffEval
import BakeoffStatistics
import Foundation
import Testing

/// Observations built by hand: control is variant 0, treatment 1.
struct Observed {
    var items: [EvalItem]
    var answers: [EvalAnswer] = []
    var judgments: [EvalJudgment] = []
    var repetitions = 1

    init(_ n: Int) { items = (0..<n).map { EvalItem(id: "r\($0)", prompt: "q\($0)", reference: "yes") } }

    /// Both variants answer request `i` (repetition `r`) with these texts and latencies.
    mutating func answer(_ i: Int, control: String, treatment: String, latency: (Double, Double) = (100, 100), r: Int = 0) {
        answers.append(EvalAnswer(item: i, variant: 0, repetition: r, status: "ok", text: control, latencyMs: latency.0, outputTokens: 5))
        answers.append(EvalAnswer(item: i, variant: 1, repetition: r, status: "ok", text: treatment, latencyMs: latency.1, outputTokens: 5))
    }

    /// The judge's verdicts with the treatment shown first, then the control first.
    mutating func judge(_ i: Int, treatmentFirst: PairwiseVerdict?, controlFirst: PairwiseVerdict?, r: Int = 0) {
        judgments.append(EvalJudgment(scorer: 0, item: i, repetition: r, first: 1, second: 0, raw: "x", verdict: treatmentFirst))
        judgments.append(EvalJudgment(scorer: 0, item: i, repetition: r, first: 0, second: 1, raw: "x", verdict: controlFirst))
    }

    var observations: EvalObservations {
        EvalObservations(items: items, variants: ["control", "treatment"], control: 0, repetitions: repetitions, answers: answers, judgments: judgments)
    }
}

func plan(_ text: String) throws -> EvalPlan {
    var o = try ConfigObject.parse(Data(text.utf8), source: "t")
    return try EvalPlan.parse(&o)
}

@Suite("Eval analysis: paired by request")
struct EvalAnalysisTests {
    static let pairwisePlan = #"{"scorers": [{"type": "judge_pairwise", "name": "preference"}, {"type": "exact_match"}]}"#

    @Test func aVerdictThatFlipsWithTheOrderIsATieAndTheSignTestCountsRequests() throws {
        var o = Observed(10)
        for i in 0..<10 { o.answer(i, control: "no", treatment: "yes") }
        // 6 requests the treatment wins in both orders, 1 it loses in both, 2 flip (position bias), 1 tie.
        for i in 0..<6 { o.judge(i, treatmentFirst: .first, controlFirst: .second) }
        o.judge(6, treatmentFirst: .second, controlFirst: .first)
        o.judge(7, treatmentFirst: .first, controlFirst: .first)
        o.judge(8, treatmentFirst: .first, controlFirst: .first)
        o.judge(9, treatmentFirst: .tie, controlFirst: .tie)
        let report = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(Self.pairwisePlan)))
        let w = try #require(report.winRates.first)
        #expect((w.wins, w.ties, w.losses) == (6, 3, 1))
        #expect(abs(w.winRate - 0.75) < 1e-12)  // (6 + 3 x 0.5) / 10
        #expect(w.pValue == BinomialTest.pValue(successes: 6, trials: 7))
        #expect(w.flipRate == 0.2)
        // Decisive single-order verdicts: 6 x (A, B), (B, A), 2 x (A, A): 11 "A" of 18.
        #expect(w.firstPositionRate == 11.0 / 18.0)
        // The interval is a paired t on the request scores minus one half.
        let scores = [1, 1, 1, 1, 1, 1, 0, 0.5, 0.5, 0.5].map { $0 - 0.5 }
        let mean = scores.reduce(0, +) / 10
        let sd = sqrt(scores.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 9)
        let q = StudentT.quantile(0.975, df: 9)
        #expect(abs(w.ciLow - (0.5 + mean - q * sd / sqrt(10))) < 1e-12)
        #expect(abs(w.ciHigh - min(1, 0.5 + mean + q * sd / sqrt(10))) < 1e-12)
    }

    @Test func repetitionsAndOrdersAreAveragedWithinTheRequest() throws {
        var o = Observed(2)
        o.repetitions = 2
        for r in 0..<2 { o.answer(0, control: "no", treatment: "yes", r: r); o.answer(1, control: "no", treatment: "yes", r: r) }
        // Request 0: won in repetition 0, tied (flip) in repetition 1 -> 0.75; request 1: one order failed -> the other counts.
        o.judge(0, treatmentFirst: .first, controlFirst: .second, r: 0)
        o.judge(0, treatmentFirst: .first, controlFirst: .first, r: 1)
        o.judge(1, treatmentFirst: .second, controlFirst: nil, r: 0)
        o.judge(1, treatmentFirst: .second, controlFirst: .first, r: 1)
        let report = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(Self.pairwisePlan)))
        let w = try #require(report.winRates.first)
        #expect(w.requests == 2)
        #expect((w.wins, w.ties, w.losses) == (1, 0, 1))
        #expect(abs(w.winRate - (0.75 + 0) / 2) < 1e-12)
        #expect(w.judgments == 7)
    }

    @Test func yesNoScorersUseMcNemarOnTheDiscordantRequests() throws {
        var o = Observed(40)
        // 12 only the treatment gets right, 3 only the control, 10 both, 15 neither.
        for i in 0..<40 {
            let (c, t) = i < 12 ? ("no", "yes") : i < 15 ? ("yes", "no") : i < 25 ? ("yes", "yes") : ("no", "no")
            o.answer(i, control: c, treatment: t)
        }
        let report = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(#"{"scorers": [{"type": "exact_match"}]}"#)))
        let c = try #require(report.scores.first)
        #expect(c.binary && c.test == .mcnemar)
        #expect(c.onlyVariant == 12 && c.onlyControl == 3)
        #expect(c.pValue == McNemarTest.exactPValue(onlyFirst: 12, onlySecond: 3))
        #expect(abs(c.difference - 9.0 / 40) < 1e-12)
        #expect(abs(c.controlMean - 13.0 / 40) < 1e-12 && abs(c.variantMean - 22.0 / 40) < 1e-12)
        #expect(report.decision.action == .promote)
    }

    @Test func holmAdjustsAcrossScorersAndWinRates() throws {
        var o = Observed(30)
        for i in 0..<30 { o.answer(i, control: i % 3 == 0 ? "yes" : "no", treatment: i % 2 == 0 ? "yes" : "no") }
        for i in 0..<30 { o.judge(i, treatmentFirst: i % 4 == 0 ? .second : .first, controlFirst: i % 4 == 0 ? .first : .second) }
        let report = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(Self.pairwisePlan)))
        let raw = [report.scores[0].pValue, report.winRates[0].pValue]
        let adjusted = MultipleComparisons.adjustedPValues(raw, correction: .holm)
        #expect(report.scores[0].adjustedPValue == adjusted[0])
        #expect(report.winRates[0].adjustedPValue == adjusted[1])
    }

    @Test func aBreachedGuardrailStopsAPromotionAndAnUnclearOneAsksForMore() throws {
        var o = Observed(40)
        for i in 0..<40 {
            o.answer(i, control: "no", treatment: "yes", latency: (100 + Double(i % 5), 150 + Double(i % 7)))
            o.judge(i, treatmentFirst: .first, controlFirst: .second)
        }
        let breached = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(
            #"{"scorers": [{"type": "judge_pairwise"}], "guardrails": [{"metric": "latency_ms", "margin": "10%"}]}"#)))
        #expect(breached.decision.action == .doNotPromote)
        #expect(breached.guardrails.first?.state == .breached)
        #expect(breached.decision.reasons.first?.contains("latency_ms") == true)
        let holds = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(
            #"{"scorers": [{"type": "judge_pairwise"}], "guardrails": [{"metric": "latency_ms", "margin": 80}]}"#)))
        #expect(holds.guardrails.first?.state == .holds)
        #expect(holds.decision.action == .promote)
        // A margin between the estimate and the interval's worse end.
        let g = try #require(holds.guardrails.first)
        let margin = (g.worsening + g.worstCase) / 2
        let unclear = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(
            #"{"scorers": [{"type": "judge_pairwise"}], "guardrails": [{"metric": "latency_ms", "margin": \#(margin)}]}"#)))
        #expect(unclear.guardrails.first?.state == .unclear)
        #expect(unclear.decision.action == .needsMoreRequests)
    }

    @Test func noDifferenceAsksForMoreRequestsAndSaysHowMany() throws {
        var o = Observed(20)
        for i in 0..<20 {
            o.answer(i, control: "no", treatment: "yes")
            // Half the requests won in both orders, half lost: no difference.
            o.judge(i, treatmentFirst: i % 2 == 0 ? .first : .second, controlFirst: i % 2 == 0 ? .second : .first)
        }
        let report = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(
            #"{"scorers": [{"type": "judge_pairwise"}], "minimum_effect": 0.6}"#)))
        #expect(report.decision.action == .needsMoreRequests)
        let needed = try #require(report.decision.requestsNeeded)
        #expect(needed > 20)
    }
}

@Suite("Eval analysis: three variants")
struct EvalRankingTests {
    @Test func bradleyTerryRanksEveryVariantFromAllPairsWithTheControlAtZero() throws {
        let items = (0..<30).map { EvalItem(id: "r\($0)", prompt: "q\($0)") }
        var answers: [EvalAnswer] = []
        var judgments: [EvalJudgment] = []
        for i in 0..<30 {
            for v in 0..<3 { answers.append(EvalAnswer(item: i, variant: v, repetition: 0, status: "ok", text: "a\(v)")) }
            // Variant 2 beats 1 beats 0 most of the time; each pair in both orders.
            for (a, b) in [(0, 1), (0, 2), (1, 2)] {
                let winner = i % 5 == 0 ? a : b
                for (first, second) in [(a, b), (b, a)] {
                    let verdict: PairwiseVerdict = i % 7 == 0 ? .tie : winner == first ? .first : .second
                    judgments.append(EvalJudgment(scorer: 0, item: i, repetition: 0, first: first, second: second, raw: "", verdict: verdict))
                }
            }
        }
        let o = EvalObservations(items: items, variants: ["control", "b", "c"], control: 0, repetitions: 1, answers: answers, judgments: judgments)
        let report = EvalAnalysis.run(o, .init(experiment: "e", dataset: "d", plan: try plan(#"{"scorers": [{"type": "judge_pairwise"}]}"#)))
        let ranking = try #require(report.rankings.first)
        let comparisons = judgments.map { j in
            BradleyTerry.Comparison(j.first, j.second!, j.verdict == .first ? .firstWins : j.verdict == .second ? .secondWins : .tie)
        }
        let fit = try BradleyTerry.fit(comparisons, variantCount: 3, control: 0)
        #expect(ranking.entries.map(\.strength) == fit.strengths)
        #expect(ranking.entries[0].strength == 0)
        #expect(ranking.entries[2].strength > ranking.entries[1].strength && ranking.entries[1].strength > 0)
        let c = ranking.entries[2]
        #expect(try #require(c.ciLow) < c.strength && c.strength < (try #require(c.ciHigh)))
        // Two win rates against the control, Holm over both.
        #expect(report.winRates.map(\.variant) == ["b", "c"])
    }
}

/// The decision's regressions found by the hostile review (each failed before its fix).
@Suite("Eval decision: failures, unevaluable guardrails, several candidates, how many requests")
struct EvalDecisionTests {
    @Test func requestsNeededUseTheShareOfNonTiedRequestsWon() throws {
        var o = Observed(40)
        for i in 0..<40 {
            o.answer(i, control: "no", treatment: "yes")
            // 4 requests won in both orders, 36 tied, none lost.
            o.judge(i, treatmentFirst: i < 4 ? .first : .tie, controlFirst: i < 4 ? .second : .tie)
        }
        let report = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(#"{"scorers": [{"type": "judge_pairwise"}]}"#)))
        #expect(report.decision.action == .needsMoreRequests)
        // Every decisive request was won: sized for a near-certain win among the 10% not tied, not 0.55.
        let expected = try #require(PairedSampleSize.requests(winRate: 0.99, tieRate: 0.9, alpha: 0.05, power: 0.8)).requests
        #expect(report.decision.requestsNeeded == expected)
        #expect(expected < 200)
    }

    @Test func aCandidateFailingHalfItsCallsIsNotPromoted() throws {
        var o = Observed(100)
        for i in 0..<100 {
            o.answers.append(EvalAnswer(item: i, variant: 0, repetition: 0, status: "ok", text: "no", latencyMs: 100))
            if i % 2 == 0 {
                o.answers.append(EvalAnswer(item: i, variant: 1, repetition: 0, status: "upstream_error", error: "HTTP 500"))
            } else {
                o.answers.append(EvalAnswer(item: i, variant: 1, repetition: 0, status: "ok", text: "yes", latencyMs: 100))
                o.judge(i, treatmentFirst: .first, controlFirst: .second)
            }
        }
        let report = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(#"{"scorers": [{"type": "judge_pairwise"}]}"#)))
        #expect(report.winRates.first?.winRate == 1)  // the answers that came all won...
        #expect(report.decision.action == .doNotPromote)  // ...but half never came
        #expect(report.decision.reasons.first?.contains("failed 50 of 100 calls") == true, "\(report.decision.reasons)")
    }

    @Test func aGuardrailThatCannotBeCheckedIsNeverPassed() throws {
        var o = Observed(40)
        o.items = o.items.map { var item = $0; item.reference = nil; return item }
        for i in 0..<40 {
            o.answer(i, control: "no", treatment: "yes")
            o.judge(i, treatmentFirst: .first, controlFirst: .second)
        }
        let report = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(
            #"{"scorers": [{"type": "judge_pairwise"}, {"type": "exact_match"}], "guardrails": [{"scorer": "exact_match", "margin": 0.02}, {"metric": "ttft_ms", "margin": 50}]}"#)))
        #expect(report.guardrails.map(\.state) == [.unclear, .unclear])
        #expect(report.decision.action == .needsMoreRequests)
        #expect(report.decision.reasons.contains { $0.contains("exact_match cannot be checked") && $0.contains("reference") })
        #expect(report.decision.reasons.contains { $0.contains("ttft_ms cannot be checked") && $0.contains("stream") })
    }

    @Test func aPrimaryScorerWithoutADirectionIsRefused() {
        #expect(throws: ConfigError.self) { try plan(#"{"scorers": [{"type": "length"}]}"#) }
        #expect(throws: ConfigError.self) { try plan(#"{"scorers": [{"type": "length"}, {"type": "exact_match"}], "primary": "length"}"#) }
        // Without "primary", the first scorer with a direction is the primary.
        #expect((try? plan(#"{"scorers": [{"type": "length"}, {"type": "exact_match"}]}"#))?.primary == "exact_match")
    }

    @Test func theBestCandidateThatMayBePromotedIsNamedWhenTheBestMayNot() throws {
        let items = (0..<60).map { EvalItem(id: "r\($0)", prompt: "q\($0)") }
        var answers: [EvalAnswer] = []
        var judgments: [EvalJudgment] = []
        for i in 0..<60 {
            answers.append(EvalAnswer(item: i, variant: 0, repetition: 0, status: "ok", text: "c", latencyMs: 100))
            // b: always better but twice as slow; c: better on 2 requests of 3, as fast.
            answers.append(EvalAnswer(item: i, variant: 1, repetition: 0, status: "ok", text: "b", latencyMs: 200 + Double(i % 3)))
            answers.append(EvalAnswer(item: i, variant: 2, repetition: 0, status: "ok", text: "c2", latencyMs: 100 + Double(i % 2)))
            for (a, b) in [(0, 1), (0, 2), (1, 2)] {
                let winner = a == 0 && b == 2 ? (i % 3 == 0 ? 0 : 2) : b == 1 || a == 1 ? 1 : b
                for (first, second) in [(a, b), (b, a)] {
                    judgments.append(EvalJudgment(scorer: 0, item: i, repetition: 0, first: first, second: second, raw: "",
                                                  verdict: winner == first ? .first : .second))
                }
            }
        }
        let o = EvalObservations(items: items, variants: ["control", "b", "c"], control: 0, repetitions: 1, answers: answers, judgments: judgments)
        let report = EvalAnalysis.run(o, .init(experiment: "e", dataset: "d", plan: try plan(
            #"{"scorers": [{"type": "judge_pairwise"}], "guardrails": [{"metric": "latency_ms", "margin": "20%"}]}"#)))
        #expect(report.decision.action == .promote)
        #expect(report.decision.variant == "c")
        #expect(report.decision.reasons.contains { $0.contains("b scored higher but may not be promoted") })
    }

    @Test func onlyAnUnclearGuardrailLeftSizesForTheGuardrail() throws {
        var o = Observed(60)
        for i in 0..<60 {
            o.answer(i, control: "no", treatment: "yes", latency: (100, 108 + Double(i % 5) * 4))
            o.judge(i, treatmentFirst: .first, controlFirst: .second)
        }
        let first = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(
            #"{"scorers": [{"type": "judge_pairwise"}], "guardrails": [{"metric": "latency_ms", "margin": 50}]}"#)))
        let g = try #require(first.guardrails.first)
        let margin = g.worsening + (g.worstCase - g.worsening) / 2
        let report = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: try plan(
            #"{"scorers": [{"type": "judge_pairwise"}], "guardrails": [{"metric": "latency_ms", "margin": \#(margin)}]}"#)))
        #expect(report.decision.action == .needsMoreRequests)
        let unclear = try #require(report.guardrails.first)
        #expect(unclear.state == .unclear)
        #expect(report.decision.requestsNeeded == unclear.requestsNeeded)
        // The interval shrinks as 1/sqrt(n): half the distance to the margin needs about four times the requests.
        #expect(try #require(report.decision.requestsNeeded) > 60 * 3)
    }
}

@Suite("Eval analysis: cost from tokens and prices")
struct EvalCostTests {
    @Test func costPerRequestIsComparedPairedAndCanBeAGuardrail() throws {
        var o = Observed(20)
        for i in 0..<20 {
            o.answers.append(EvalAnswer(item: i, variant: 0, repetition: 0, status: "ok", text: "a", latencyMs: 10, inputTokens: 100, outputTokens: 50 + i))
            o.answers.append(EvalAnswer(item: i, variant: 1, repetition: 0, status: "ok", text: "b", latencyMs: 10, inputTokens: 120, outputTokens: 80 + i))
            o.judge(i, treatmentFirst: .first, controlFirst: .second)
        }
        let p = try plan(#"{"scorers": [{"type": "judge_pairwise"}], "prices": {"control": {"input_per_million": 1, "output_per_million": 2}, "treatment": {"input_per_million": 3, "output_per_million": 4}}, "guardrails": [{"metric": "cost_usd", "margin": "50%"}]}"#)
        #expect(p.prices["treatment"] == TokenPrice(inputPerMillion: 3, outputPerMillion: 4))
        let report = EvalAnalysis.run(o.observations, .init(experiment: "e", dataset: "d", plan: p))
        let cost = try #require(report.metrics.first { $0.name == "cost_usd" })
        // Control: (100 x 1 + (50 + i) x 2) / 1e6; treatment: (120 x 3 + (80 + i) x 4) / 1e6; i from 0 to 19.
        var control = 0.0, treatment = 0.0
        for i in 0..<20 {
            let d = Double(i)
            control += (100.0 + (50.0 + d) * 2.0) / 1e6 / 20.0
            treatment += (360.0 + (80.0 + d) * 4.0) / 1e6 / 20.0
        }
        #expect(abs(cost.controlMean - control) < 1e-12 && abs(cost.variantMean - treatment) < 1e-12)
        #expect(report.calls.first { $0.variant == "treatment" }?.meanCostUSD.map { abs($0 - treatment) < 1e-12 } == true)
        // Three times the cost: beyond a 50% margin.
        #expect(report.guardrails.first?.state == .breached)
        #expect(report.decision.action == .doNotPromote)
    }

    @Test func aPriceNeedsBothFields() {
        #expect(throws: ConfigError.self) { try plan(#"{"scorers": [{"type": "exact_match"}], "prices": {"control": {"input_per_million": 1}}}"#) }
        #expect(throws: ConfigError.self) { try plan(#"{"scorers": [{"type": "exact_match"}], "prices": {"control": {"input_per_million": 1, "output_per_milion": 2}}}"#) }
    }
}
