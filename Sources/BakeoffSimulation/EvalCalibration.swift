import BakeoffEval
import BakeoffStatistics

/// Offline evals under simulation: two variants answer the same requests, a judge compares them in both
/// orders with a position bias, and the paired analysis (`EvalAnalysis`) is checked: no significant
/// difference at the nominal rate for equal variants, intervals that cover the true win rate and accuracy
/// difference.
///
/// The model: each request has a difficulty u ~ U(0, 1); a variant of accuracy q answers it correctly when
/// u < q (so variants are correlated, as real ones are), except that with probability `noise` the outcome
/// is a fresh Bernoulli(q) draw (so repetitions differ). The judge prefers the correct answer of a pair and
/// calls two correct or two wrong answers a tie, except that with probability `positionBias` it picks the
/// answer shown first whatever the answers. Then, with accuracies q_c and q_t, the request score (win 1,
/// tie 0.5, loss 0, a verdict that flips with the order a tie) has expectation
/// 0.5 + (1 − positionBias)(q_t − q_c) / 2: that is the true win rate the interval must cover.
struct OfflineEvalSimulation {
    var requests = 300
    var repetitions = 2
    var controlAccuracy = 0.6
    var noise = 0.3
    var positionBias = 0.3

    func run(settings: CalibrationSettings, index: Int, withEffect: Bool, into tally: inout CalibrationTally) {
        var random = RandomSource(seed: Calibration.streamSeed(settings.seed, index, withEffect, 5))
        let qc = controlAccuracy
        let qt = withEffect ? controlAccuracy * (1 + settings.effect) : controlAccuracy
        let alpha = settings.alpha
        func correct(_ u: Double, _ q: Double) -> Bool { random.bernoulli(noise) ? random.bernoulli(q) : u < q }
        var judgments: [EvalJudgment] = []
        var repeated: [[Double?]] = [[], []]  // per variant, per request: share correct over the repetitions
        var single: [[Double?]] = [[], []]    // the first repetition only
        for i in 0..<requests {
            let u = random.uniform()
            var sums = [0.0, 0.0]
            for r in 0..<repetitions {
                let c = correct(u, qc), t = correct(u, qt)
                sums[0] += c ? 1 : 0
                sums[1] += t ? 1 : 0
                if r == 0 { single[0].append(c ? 1 : 0); single[1].append(t ? 1 : 0) }
                // Variant 1 shown first, then variant 0 first.
                for (first, second, firstCorrect, secondCorrect) in [(1, 0, t, c), (0, 1, c, t)] {
                    let verdict: PairwiseVerdict
                    if random.bernoulli(positionBias) {
                        verdict = .first
                    } else {
                        verdict = firstCorrect == secondCorrect ? .tie : firstCorrect ? .first : .second
                    }
                    judgments.append(EvalJudgment(scorer: 0, item: i, repetition: r, first: first, second: second, raw: "", verdict: verdict))
                }
            }
            repeated[0].append(sums[0] / Double(repetitions))
            repeated[1].append(sums[1] / Double(repetitions))
        }
        let rejection: CalibrationQuantity = withEffect ? .power : .falsePositive
        let (rate, _) = EvalAnalysis.winRate(scorer: "judge", judgments: judgments, variant: 1, control: 0, names: ["control", "treatment"],
                                             items: requests, repetitions: repetitions, alpha: alpha)
        if let rate {
            if rate.pValue < alpha { tally.count(.evalWinRate, rejection) }
            let truth = 0.5 + (1 - positionBias) * (qt - qc) / 2
            if withEffect, rate.ciLow <= truth, truth <= rate.ciHigh { tally.count(.evalWinRate, .coverage) }
        }
        if let paired = EvalAnalysis.compare(name: "exact_match", variant: "treatment", control: repeated[0], candidate: repeated[1],
                                             binary: false, direction: 1, alpha: alpha, wilcoxon: false) {
            if paired.pValue < alpha { tally.count(.evalPairedDifference, rejection) }
            if withEffect, paired.ciLow <= qt - qc, qt - qc <= paired.ciHigh { tally.count(.evalPairedDifference, .coverage) }
        }
        if let mcnemar = EvalAnalysis.compare(name: "exact_match", variant: "treatment", control: single[0], candidate: single[1],
                                              binary: true, direction: 1, alpha: alpha, wilcoxon: false) {
            if mcnemar.pValue < alpha { tally.count(.evalMcNemar, rejection) }
        }
    }
}
