import BakeoffStatistics

/// The inputs of a sample-size calculation, as `bakeoff plan` takes them.
public struct SampleSizeQuestion: Sendable {
    /// The control's current value: a rate in (0, 1), or a mean when `standardDeviation` is given.
    public var baseline: Double
    /// The smallest difference worth detecting (absolute, or relative to the baseline).
    public var minimumDetectableEffect: Double
    public var relative = false
    /// For a mean metric: the per-unit standard deviation; nil for a rate.
    public var standardDeviation: Double?
    public var alpha = 0.05
    public var power = 0.8
    /// Treatment's share of traffic.
    public var treatmentShare = 0.5
    public var oneSided = false
    public var dailyUsers: Double?

    public init(baseline: Double, minimumDetectableEffect: Double) {
        self.baseline = baseline
        self.minimumDetectableEffect = minimumDetectableEffect
    }
}

/// Users needed per group, by the article's method: Student t-test power with the noncentral t, solved exactly.
public struct SampleSize: Sendable, Equatable {
    public var controlN: Int
    public var treatmentN: Int
    public var totalN: Int { controlN + treatmentN }
    /// Cohen's d: the absolute effect over the standard deviation.
    public var effectSize: Double
    /// The exact (continuous) control size that reaches the power.
    public var exactControlN: Double
    public var absoluteEffect: Double
    public var days: Int?

    public static func solve(_ q: SampleSizeQuestion) throws(AnalysisError) -> SampleSize {
        guard q.alpha > 0 && q.alpha < 1 else { throw AnalysisError("alpha must be between 0 and 1, got \(q.alpha)", remedy: .correctPlanInput(.alpha)) }
        guard q.power > q.alpha && q.power < 1 else { throw AnalysisError("power must be between alpha and 1, got \(q.power)", remedy: .correctPlanInput(.power)) }
        guard q.treatmentShare > 0 && q.treatmentShare < 1 else {
            throw AnalysisError("the treatment's share of traffic must be between 0 and 1, got \(q.treatmentShare)", remedy: .correctPlanInput(.treatmentShare))
        }
        let sd: Double
        if let s = q.standardDeviation {
            guard s > 0, s.isFinite else { throw AnalysisError("the standard deviation must be positive, got \(s)", remedy: .correctPlanInput(.standardDeviation)) }
            sd = s
        } else {
            guard q.baseline > 0 && q.baseline < 1 else {
                throw AnalysisError("the baseline must be a rate between 0 and 1 (for a mean metric also give its standard deviation), got \(q.baseline)", remedy: .correctPlanInput(.baseline))
            }
            sd = (q.baseline * (1 - q.baseline)).squareRoot()
        }
        let effect = abs(q.relative ? q.minimumDetectableEffect * q.baseline : q.minimumDetectableEffect)
        guard effect > 0, effect.isFinite else { throw AnalysisError("the minimum detectable effect must be a non-zero difference, got \(q.minimumDetectableEffect)", remedy: .correctPlanInput(.minimumDetectableEffect)) }
        if q.standardDeviation == nil {
            let target = q.baseline + (q.relative ? q.minimumDetectableEffect * q.baseline : q.minimumDetectableEffect)
            guard target > 0 && target < 1 else {
                throw AnalysisError("the baseline \(q.baseline) changed by the minimum detectable effect \(q.minimumDetectableEffect) gives a rate of \(target), outside 0 to 1", remedy: .correctPlanInput(.minimumDetectableEffect))
            }
        }
        let d = effect / sd
        let ratio = q.treatmentShare / (1 - q.treatmentShare)
        let n1 = TTestIndependentPower.solveNobs1(effectSize: d, alpha: q.alpha, power: q.power, ratio: ratio,
                                                  alternative: q.oneSided ? .larger : .twoSided)
        guard n1.isFinite, n1 > 0, n1 < 1e13 else {
            throw AnalysisError("no sample size reaches that power (effect size \(d)); check the minimum detectable effect and the baseline", remedy: .correctPlanInput(.minimumDetectableEffect))
        }
        var result = SampleSize(controlN: Int(n1.rounded(.up)), treatmentN: Int((n1 * ratio).rounded(.up)), effectSize: d,
                                exactControlN: n1, absoluteEffect: effect)
        if let daily = q.dailyUsers {
            guard daily > 0 else { throw AnalysisError("daily users must be positive, got \(JSONWriter.number(daily))", remedy: .correctPlanInput(.dailyUsers)) }
            result.days = Int((Double(result.totalN) / daily).rounded(.up))
        }
        return result
    }
}
