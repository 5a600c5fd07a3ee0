import BakeoffCore
import BakeoffEval
import Foundation
import Testing

@Suite("Eval plan: the scorers, guardrails and settings of an experiment's \"eval\"")
struct EvalPlanTests {
    static func parse(_ text: String) throws(ConfigError) -> EvalPlan {
        var object = try ConfigObject.parse(Data(text.utf8), source: "bakeoff.json")
        return try EvalPlan.parse(&object)
    }

    static func error(_ text: String) -> ConfigError? {
        do { _ = try parse(text); return nil } catch { return error }
    }

    @Test func readsScorersGuardrailsAndSettings() throws {
        let plan = try Self.parse("""
            {"scorers": [{"type": "exact_match"}, {"type": "judge_pairwise", "name": "preference"},
                         {"type": "judge_pointwise", "name": "helpful", "scale": "1-5", "rubric": "Solves the problem."}, {"type": "valid_json"}],
             "guardrails": [{"scorer": "valid_json", "margin": 0.02}, {"metric": "latency_ms", "margin": "10%"}],
             "alpha": 0.01, "power": 0.9, "minimum_effect": 0.56, "repetitions": 3, "concurrency": 4, "retries": 2, "stream": false}
            """)
        #expect(plan.scorers.map(\.name) == ["exact_match", "preference", "helpful", "valid_json"])
        #expect(plan.primary == "preference")  // the first pairwise judge
        #expect(plan.guardrails == [EvalGuardrail(target: .scorer("valid_json"), margin: 0.02, relative: false),
                                    EvalGuardrail(target: .metric(.latencyMs), margin: 0.1, relative: true)])
        #expect(plan.alpha == 0.01 && plan.power == 0.9 && plan.minimumEffect == 0.56)
        #expect(plan.repetitions == 3 && plan.concurrency == 4 && plan.retries == 2 && !plan.stream)
        #expect(plan.needsJudge)
        guard case .judge(let helpful) = plan.scorers[2] else { Issue.record("not a judge"); return }
        #expect(helpful.mode == .pointwise(.rating(max: 5)))
        #expect(helpful.pointwisePrompt(question: "Q", answer: "A", reference: nil).user.contains("Solves the problem."))
    }

    @Test(arguments: [
        (#"{"scorers": []}"#, "scorers", "list at least one scorer"),
        (#"{"scorers": [{"type": "exact_macth"}]}"#, "scorers[0].type", "did you mean \"exact_match\""),
        (#"{"scorers": [{"type": "exact_match"}, {"type": "exact_match"}]}"#, "scorers[1].name", "unique"),
        (#"{"scorers": [{"type": "exact_match"}], "primary": "nope"}"#, "primary", "not a scorer"),
        (#"{"scorers": [{"type": "exact_match"}], "repetitoins": 2}"#, "repetitoins", "did you mean \"repetitions\""),
        (#"{"scorers": [{"type": "judge_pairwise"}], "guardrails": [{"scorer": "judge_pairwise", "margin": 0.1}]}"#, "guardrails[0].scorer", "pairwise judge"),
        (#"{"scorers": [{"type": "exact_match"}], "guardrails": [{"metric": "latency", "margin": 5}]}"#, "guardrails[0].metric", "latency_ms"),
        (#"{"scorers": [{"type": "exact_match"}], "guardrails": [{"metric": "latency_ms"}]}"#, "guardrails[0].margin", "needs a \"margin\""),
        (#"{"scorers": [{"type": "exact_match"}], "guardrails": [{"metric": "latency_ms", "margin": "ten"}]}"#, "guardrails[0].margin", "percentage"),
        (#"{"scorers": [{"type": "judge_pairwise"}], "minimum_effect": 0.4}"#, "minimum_effect", "above 0.5"),
        (#"{"scorers": [{"type": "judge_pointwise", "scale": "1-7"}]}"#, "scorers[0].scale", "\"1-5\""),
        (#"{"scorers": [{"type": "judge_pairwise", "scale": "1-5"}]}"#, "scorers[0].scale", "judge_pointwise"),
        (#"{"scorers": [{"type": "judge_pairwise", "template": {"user": "{question} {answer_a}"}}]}"#, "scorers[0].template.user", "{answer_b}"),
        (#"{"scorers": [{"type": "judge_pairwise", "template": {"user": "{question} {answer_a} {answr_b}"}}]}"#, "scorers[0].template.user", "did you mean {answer_b}"),
        (#"{"scorers": [{"type": "exact_match"}], "repetitions": 0}"#, "repetitions", "at least 1"),
        (#"{"scorers": [{"type": "exact_match"}], "concurrency": 5000}"#, "concurrency", "at most 1024"),
    ])
    func errorsNameTheirPath(text: String, path: String, message: String) throws {
        let error = try #require(Self.error(text))
        #expect(error.path == path)
        #expect(error.message.contains(message), "\(error)")
    }

    @Test func customTemplatesKeepLiteralBracesAndTheReferenceBlock() throws {
        let plan = try Self.parse(#"{"scorers": [{"type": "judge_pairwise", "use_reference": true, "template": {"system": "Answer {{\"verdict\": ...}}", "user": "Q: {question}\n[[reference]]R: {reference}\n[[/reference]]A: {answer_a}\nB: {answer_b}"}}]}"#)
        guard case .judge(let judge) = plan.scorers[0] else { Issue.record("not a judge"); return }
        let with = judge.pairwisePrompt(question: "q", answerA: "{answer_b}", answerB: "b", reference: "r")
        #expect(with.system == "Answer {\"verdict\": ...}")
        // One pass: an answer that looks like a placeholder stays as it is.
        #expect(with.user == "Q: q\nR: r\nA: {answer_b}\nB: b")
        let without = judge.pairwisePrompt(question: "q", answerA: "a", answerB: "b", reference: nil)
        #expect(without.user == "Q: q\nA: a\nB: b")
    }
}

@Suite("Judge verdicts and questions")
struct JudgeTests {
    @Test(arguments: [
        ("Assistant A is better. [[A]]", PairwiseVerdict.first),
        ("[[B]]", .second),
        ("Both fine. [[C]]", .tie),
        // The last marker is the verdict: the explanation may quote the format first.
        ("Format: \"[[A]]\" if A is better, \"[[B]]\" if B... My verdict: [[B]]", .second),
    ])
    func pairwise(text: String, verdict: PairwiseVerdict) {
        #expect(JudgeScorer.pairwiseVerdict(text) == verdict)
    }

    @Test func noMarkerIsNoVerdict() {
        #expect(JudgeScorer.pairwiseVerdict("I cannot decide.") == nil)
        #expect(JudgeScorer.pairwiseVerdict("[A] or [B]") == nil)
    }

    @Test func ratingsAndYesNo() {
        let rating = JudgeScorer(name: "r", mode: .pointwise(.rating(max: 10)))
        #expect(rating.pointwiseScore("Good. Rating: [[8]]") == 8)
        #expect(rating.pointwiseScore("e.g. [[5]] ... Rating: [[ 7.5 ]]") == 7.5)
        #expect(rating.pointwiseScore("Rating: 6") == 6)
        #expect(rating.pointwiseScore("Rating: [[11]]") == nil)
        #expect(rating.pointwiseScore("no score") == nil)
        let yesNo = JudgeScorer(name: "y", mode: .pointwise(.yesNo))
        #expect(yesNo.pointwiseScore("It does. [[YES]]") == 1)
        #expect(yesNo.pointwiseScore("Format [[YES]] or [[NO]]. Verdict: [[no]]") == 0)
        #expect(yesNo.pointwiseScore("maybe") == nil)
    }

    @Test func theJudgeSeesTheUserTurnsWithoutSystemMessages() {
        let single = EvalItem(id: "1", messagesJSON: #"[{"role":"system","content":"Be kind."},{"role":"user","content":"Refund?"}]"#)
        #expect(single.judgeQuestion == "Refund?")
        let turns = EvalItem(id: "2", messagesJSON: #"[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":[{"type":"text","text":"Refund?"}]}]"#)
        #expect(turns.judgeQuestion == "User: Hi\n\nAssistant: Hello!\n\nUser: Refund?")
        #expect(EvalItem(id: "3", prompt: "Translate: chat").judgeQuestion == "Translate: chat")
    }
}
