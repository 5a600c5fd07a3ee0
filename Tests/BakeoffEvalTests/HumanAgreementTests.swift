import BakeoffEval
import BakeoffStatistics
import Testing

/// An eval of `verdicts.count` requests: control 0, treatment 1, one pairwise judge; each request judged in
/// both orders with `verdicts[i]` (the treatment's result: its verdict in the order where it is shown first, and
/// the same or, for "flip", the opposite in the other order).
private func judged(_ verdicts: [String], repetitions: Int = 1) -> (EvalObservations, EvalPlan) {
    let n = verdicts.count
    let items = (0..<n).map { EvalItem(id: "q\($0)", prompt: "Question \($0)?") }
    var answers: [EvalAnswer] = [], judgments: [EvalJudgment] = []
    for i in 0..<n {
        for r in 0..<repetitions {
            for v in 0..<2 { answers.append(EvalAnswer(item: i, variant: v, repetition: r, status: "ok", text: "a\(v)")) }
            // r > 0: the judge says the opposite, which the agreement must not see (labelers saw repetition 0).
            let verdict = r == 0 ? verdicts[i] : (verdicts[i] == "win" ? "loss" : "win")
            let (treatmentFirst, controlFirst): (PairwiseVerdict, PairwiseVerdict)
            switch verdict {
            case "win": (treatmentFirst, controlFirst) = (.first, .second)
            case "loss": (treatmentFirst, controlFirst) = (.second, .first)
            case "tie": (treatmentFirst, controlFirst) = (.tie, .tie)
            case "flip": (treatmentFirst, controlFirst) = (.first, .first)  // always the first shown: a tie
            default: continue  // not judged
            }
            judgments.append(EvalJudgment(scorer: 0, item: i, repetition: r, first: 1, second: 0, raw: "x", verdict: treatmentFirst))
            judgments.append(EvalJudgment(scorer: 0, item: i, repetition: r, first: 0, second: 1, raw: "x", verdict: controlFirst))
        }
    }
    let o = EvalObservations(items: items, variants: ["control", "treatment"], control: 0, repetitions: repetitions, answers: answers, judgments: judgments)
    let plan = EvalPlan(scorers: [.judge(JudgeScorer(name: "preference", mode: .pairwise))])
    return (o, plan)
}

private func label(_ i: Int, _ verdict: LabelVerdict, by labeler: String = "ann", left: Bool? = nil) -> HumanLabel {
    HumanLabel(requestID: "q\(i)", variant: "treatment", control: "control", verdict: verdict, labeler: labeler, variantWasLeft: left)
}

@Suite("Judge-human agreement")
struct HumanAgreementTests {
    @Test func kappaOfJudgeAndPeopleOnTheirConfusionTable() throws {
        // Judge (rows) against people (columns), win/tie/loss: [[5, 1, 1], [1, 2, 1], [0, 1, 4]].
        let table = [[5, 1, 1], [1, 2, 1], [0, 1, 4]]
        let names: [LabelVerdict] = [.win, .tie, .loss]
        var judge: [String] = [], people: [LabelVerdict] = []
        for a in 0..<3 { for b in 0..<3 { for _ in 0..<table[a][b] { judge.append(names[a].rawValue); people.append(names[b]) } } }
        // A flip is a tie to the judge: make one of the judge's ties a flip.
        judge[judge.firstIndex(of: "tie")!] = "flip"
        let (o, plan) = judged(judge + ["none"], repetitions: 2)
        let labels = people.enumerated().map { label($0.offset, $0.element) } + [label(99, .win), label(people.count, .win)]
        let result = try #require(EvalAnalysis.humanAgreement(o, plan: plan, labels: labels).first)
        #expect(result.scorer == "preference")
        #expect(result.confusion == table)
        #expect(result.requests == 16)
        #expect(result.labels == 17 && result.unmatchedLabels == 1)  // request 16 has no judge verdict, q99 is not in the eval
        #expect(result.percentAgreement == 11.0 / 16)
        // statsmodels cohens_kappa on the table: 0.5238095238095238 (se 0.17138567412506772), linear 0.6 (0.16138291249213607).
        let kappa = try #require(result.kappa)
        #expect(abs(kappa.kappa - 0.5238095238095238) < 1e-12)
        #expect(abs(kappa.standardError - 0.17138567412506772) < 1e-12)
        let weighted = try #require(result.weightedKappa)
        #expect(abs(weighted.kappa - 0.6) < 1e-12)
        #expect(abs(weighted.standardError - 0.16138291249213607) < 1e-12)
        // The people's win rate: 7 wins, 4 ties, 6 losses (q16's win included, q99 not).
        let human = try #require(result.human)
        #expect(human.requests == 17 && human.wins == 7 && human.ties == 4 && human.losses == 6)
        #expect(human.scorer == "human")
        // The judge on the same requests: 7 wins, 4 ties (a flip one of them), 5 losses.
        let judgeRate = try #require(result.judge)
        #expect(judgeRate.requests == 16 && judgeRate.wins == 7 && judgeRate.ties == 4 && judgeRate.losses == 5)
    }

    @Test func thePeoplesWinRateIsTheJudgesStatistics() throws {
        // People who say what the judge says: the same win rate, interval and sign test as the eval's report.
        let verdicts = ["win", "win", "tie", "loss", "win", "win", "tie", "win", "loss", "win", "win", "tie"]
        let (o, plan) = judged(verdicts)
        let report = EvalAnalysis.run(o, .init(experiment: "e", dataset: "d", plan: plan))
        let judgeRate = try #require(report.winRates.first)
        let labels = verdicts.enumerated().map { label($0.offset, LabelVerdict(rawValue: $0.element)!) }
        let result = try #require(EvalAnalysis.humanAgreement(o, plan: plan, labels: labels).first)
        let human = try #require(result.human)
        #expect(human.winRate == judgeRate.winRate)
        #expect(human.ciLow == judgeRate.ciLow && human.ciHigh == judgeRate.ciHigh)
        #expect(human.pValue == judgeRate.pValue)
        #expect(human.sdScore == judgeRate.sdScore)
        #expect((human.wins, human.ties, human.losses) == (judgeRate.wins, judgeRate.ties, judgeRate.losses))
        #expect(result.percentAgreement == 1)
        #expect(result.kappa?.kappa == 1)
    }

    @Test func labelersAreAveragedAndTheirSideBiasMeasured() throws {
        let (o, plan) = judged(["win", "win", "loss", "tie"])
        let labels = [
            label(0, .win, by: "ann", left: true), label(0, .loss, by: "bob", left: true),   // disagree: a tie
            label(1, .win, by: "ann", left: false), label(1, .win, by: "bob", left: false),  // picked the right twice
            label(2, .loss, by: "ann", left: false),                                          // picked the left
            label(3, .tie, by: "bob", left: true),
        ]
        let result = try #require(EvalAnalysis.humanAgreement(o, plan: plan, labels: labels).first)
        #expect(result.labelers == 2 && result.labels == 6)
        #expect(result.confusion == [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
        let human = try #require(result.human)
        #expect((human.wins, human.ties, human.losses) == (1, 2, 1))
        // Decisive labels: ann left (win, left), bob right (loss, left), ann right, bob right, ann left: 2 of 5 left.
        #expect(human.firstPositionRate == 2.0 / 5)
        #expect(human.flipRate == nil)
    }

    @Test func undefinedKappaWhenBothPutEverythingInOneCategory() throws {
        let (o, plan) = judged(["win", "win", "win"])
        let result = try #require(EvalAnalysis.humanAgreement(o, plan: plan, labels: (0..<3).map { label($0, .win) }).first)
        #expect(result.kappa == nil && result.weightedKappa == nil)
        #expect(result.percentAgreement == 1)
        #expect(result.confusion == [[3, 0, 0], [0, 0, 0], [0, 0, 0]])
    }

    @Test func withoutLabelsNothingAndWithoutAJudgeThePeopleAlone() throws {
        let (o, plan) = judged(["win", "loss"])
        #expect(EvalAnalysis.humanAgreement(o, plan: plan, labels: []).isEmpty)
        #expect(EvalAnalysis.humanAgreement(o, plan: plan, labels: [HumanLabel(requestID: "q0", variant: "other", control: "control", verdict: .win, labeler: "a")]).isEmpty)
        let noJudge = EvalPlan(scorers: [.deterministic(DeterministicScorer(check: .exactMatch(caseSensitive: true, normalize: false)))])
        let result = try #require(EvalAnalysis.humanAgreement(o, plan: noJudge, labels: [label(0, .win), label(1, .tie)]).first)
        #expect(result.scorer == nil && result.judge == nil && result.kappa == nil && result.requests == 0)
        #expect(result.percentAgreement == nil)
        #expect(result.human?.winRate == 0.75)
    }

    @Test func computeTakesAnyJudgeScores() throws {
        let ids = ["a", "b", "c", "d"]
        let result = HumanAgreement.compute(scorer: "j", variant: "v", control: "c", requestIDs: ids, judgeScores: [1, 0.75, 0.5, nil],
                                            labels: ids.map { HumanLabel(requestID: $0, variant: "v", control: "c", verdict: .win, labeler: "x") })
        // 0.75 (a win in one repetition, a tie in the other) counts as a win.
        #expect(result.confusion == [[2, 0, 0], [1, 0, 0], [0, 0, 0]])
        #expect(result.requests == 3)
        #expect(result.human?.requests == 4)
    }
}
