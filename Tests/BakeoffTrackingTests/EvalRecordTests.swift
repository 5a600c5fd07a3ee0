import BakeoffCore
import BakeoffEval
import BakeoffReport
import BakeoffTracking
import Foundation
import Testing

@Suite("An offline eval as an MLflow run")
struct EvalRecordTests {
    static let source = RunSource(command: "bakeoff eval", input: "data/requests.jsonl", version: "9.9.9", user: nil)

    /// Twenty requests: the treatment answers right more often and wins the judge's comparisons more often.
    static func evaluated() throws -> (EvalReport, EvalPlan) {
        var o = try ConfigObject.parse(Data(#"{"scorers": [{"type": "judge_pairwise", "name": "preference"}, {"type": "exact_match"}], "guardrails": [{"metric": "latency_ms", "margin": "10%"}]}"#.utf8), source: "t")
        let plan = try EvalPlan.parse(&o)
        let n = 20
        let items = (0..<n).map { EvalItem(id: "r\($0)", prompt: "q\($0)", reference: "yes") }
        var answers: [EvalAnswer] = [], judgments: [EvalJudgment] = []
        for i in 0..<n {
            answers.append(EvalAnswer(item: i, variant: 0, repetition: 0, status: "ok", text: i % 2 == 0 ? "yes" : "no", latencyMs: 100, outputTokens: 5))
            answers.append(EvalAnswer(item: i, variant: 1, repetition: 0, status: "ok", text: i % 5 == 0 ? "no" : "yes", latencyMs: 90 + Double(i), outputTokens: 6))
            let won = i % 4 != 0
            judgments.append(EvalJudgment(scorer: 0, item: i, repetition: 0, first: 1, second: 0, raw: "x", verdict: won ? .first : .second))
            judgments.append(EvalJudgment(scorer: 0, item: i, repetition: 0, first: 0, second: 1, raw: "x", verdict: won ? .second : .first))
        }
        let observations = EvalObservations(items: items, variants: ["control", "treatment"], control: 0, repetitions: 1, answers: answers, judgments: judgments)
        return (EvalAnalysis.run(observations, .init(experiment: "support-bot-v2", dataset: "data/requests.jsonl", plan: plan)), plan)
    }

    static let setups = [VariantSetup(name: "control", model: "support-v1", systemPrompt: nil, parameters: nil),
                         VariantSetup(name: "treatment", model: "support-v2", systemPrompt: "Be brief.", parameters: "temperature=0.3")]

    static func value<V>(_ entries: [TrackingRecord.Entry<V>], _ key: String) -> V? { entries.first { $0.key == key }?.value }

    @Test func thePlanAndEachVariantsSetupAreParams() throws {
        let (report, plan) = try Self.evaluated()
        let r = TrackingRecord.eval(report, plan: plan, variants: Self.setups, source: Self.source)
        #expect(Self.value(r.params, "experiment") == "support-bot-v2")
        #expect(Self.value(r.params, "dataset") == "data/requests.jsonl")
        #expect(Self.value(r.params, "control") == "control")
        #expect(Self.value(r.params, "variants") == "control,treatment")
        #expect(Self.value(r.params, "requests") == "20")
        #expect(Self.value(r.params, "primary_scorer") == "preference")
        #expect(Self.value(r.params, "scorers") == "preference,exact_match")
        #expect(Self.value(r.params, "guardrails") == "latency_ms")
        #expect(Self.value(r.params, "model/treatment") == "support-v2")
        #expect(Self.value(r.params, "system_prompt/treatment") == "Be brief.")
        #expect(Self.value(r.params, "parameters/treatment") == "temperature=0.3")
        #expect(Self.value(r.params, "system_prompt/control") == nil)
        #expect(r.runName == "support-bot-v2 eval of requests.jsonl")
    }

    @Test func scoresWinRatesAndCallsAreMetrics() throws {
        let (report, plan) = try Self.evaluated()
        let r = TrackingRecord.eval(report, plan: plan, variants: Self.setups, source: Self.source)
        let exact = try #require(report.scores.first { $0.name == "exact_match" })
        #expect(Self.value(r.metrics, "exact_match/treatment/lift") == exact.difference)
        #expect(Self.value(r.metrics, "exact_match/treatment/lift_ci_low") == exact.ciLow)
        #expect(Self.value(r.metrics, "exact_match/treatment/lift_ci_high") == exact.ciHigh)
        #expect(Self.value(r.metrics, "exact_match/treatment/relative_lift") == exact.relativeDifference)
        #expect(Self.value(r.metrics, "exact_match/treatment/p_value") == exact.pValue)
        #expect(Self.value(r.metrics, "exact_match/control/mean") == exact.controlMean)
        #expect(Self.value(r.metrics, "exact_match/treatment/mean") == exact.variantMean)
        let w = try #require(report.winRates.first)
        #expect(Self.value(r.metrics, "preference/treatment/win_rate") == w.winRate)
        #expect(Self.value(r.metrics, "preference/treatment/wins") == Double(w.wins))
        #expect(Self.value(r.metrics, "preference/treatment/adjusted_p_value") == w.adjustedPValue)
        let latency = try #require(report.metrics.first { $0.name == "latency_ms" })
        #expect(Self.value(r.metrics, "latency_ms/treatment/lift") == latency.difference)
        #expect(Self.value(r.metrics, "calls/treatment/answers") == 20)
        #expect(Self.value(r.metrics, "calls/control/mean_latency_ms") == 100)
        let g = try #require(report.guardrails.first)
        #expect(Self.value(r.tags, "bakeoff.guardrail/latency_ms/treatment") == g.state.rawValue)
        #expect(Set(r.metrics.map(\.key)).count == r.metrics.count)
    }

    @Test func theDecisionIsTaggedInWordsThatStay() throws {
        let (report, plan) = try Self.evaluated()
        let r = TrackingRecord.eval(report, plan: plan, variants: Self.setups, source: Self.source)
        let slugs: [EvalDecision.Action: String] = [.promote: "promote", .doNotPromote: "do_not_promote", .needsMoreRequests: "needs_more_requests"]
        #expect(Self.value(r.tags, "bakeoff.decision") == slugs[report.decision.action])
        #expect(Self.value(r.tags, "bakeoff.decision_variant") == report.decision.variant)
        #expect(Self.value(r.tags, "bakeoff.decision_reason") == report.decision.reasons.joined(separator: " "))
        #expect(Self.value(r.tags, "mlflow.source.name") == "bakeoff eval")
        #expect(Self.value(r.tags, "mlflow.user") == nil)
        #expect(r.artifacts.map(\.name) == ["report.json", "report.html"])
        #expect(r.artifacts[0].bytes == Array(report.render(.json).utf8))
    }
}
