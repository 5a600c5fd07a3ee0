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
    /// A group-sequential design beside the fixed-horizon test: this many looks, equally spaced in users up to
    /// the design's maximum (nil: the fixed-horizon test alone).
    public var looks: Int?
    /// How the group-sequential design spends alpha over its looks.
    public var spending: AlphaSpending = .obrienFleming

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
    /// With `looks`: what the group-sequential design needs.
    public var groupSequential: GroupSequentialUsers?
    /// With `looks`, for comparison: the users over both groups the always-valid confidence sequence (two-sided, at
    /// its default N*) needs for the same power; nil when not reached below a billion.
    public var confidenceSequenceTotalN: Int?

    /// The most looks a plan takes: each look adds a recursion to every step of the power's search.
    public static let maximumLooks = 50

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
        if let looks = q.looks {
            guard looks >= 1, looks <= maximumLooks else {
                throw AnalysisError("the number of looks must be from 1 to \(maximumLooks), got \(looks)", remedy: .correctPlanInput(.looks))
            }
            result.groupSequential = GroupSequentialUsers(q, exactControlN: n1, ratio: ratio, looks: looks)
            let variance = q.standardDeviation.map { $0 * $0 } ?? q.baseline * (1 - q.baseline)
            result.confidenceSequenceTotalN = SequentialTest.users(effect: effect, variance: variance, ratio: ratio, alpha: q.alpha, power: q.power)
                .map { Int($0.rounded(.up)) }
        }
        return result
    }
}

/// The users a group-sequential design needs for the power of the fixed-horizon test: its maximum (the fixed
/// sample times the inflation factor) and what it uses on average, stopping at the first crossing.
///
/// Why beside the fixed horizon: the design may stop at any of its looks, so it must plan for a little more than the
/// fixed sample at most, and with a real effect it usually stops well before.
public struct GroupSequentialUsers: Sendable, Equatable {
    public var looks: Int
    public var spending: AlphaSpending
    public var oneSided: Bool
    /// The maximum sample over the fixed-horizon sample (at least 1), and the expected samples as fractions of it.
    public var design: GroupSequentialSampleSize
    /// The maximum per group: the fixed-horizon size times the inflation factor, rounded up.
    public var maximumControlN: Int
    public var maximumTreatmentN: Int
    public var maximumTotalN: Int { maximumControlN + maximumTreatmentN }
    /// Users over both groups the design uses on average when the planned effect is real, and when there is none.
    public var expectedTotalNAlternative: Int
    public var expectedTotalNNull: Int
    /// Users over both groups at each look: k / looks of the maximum, rounded up.
    public var usersAtLooks: [Int]
    /// At the maximum users and the planned daily traffic, the days the design may run.
    public var maximumDays: Int?

    init(_ q: SampleSizeQuestion, exactControlN n1: Double, ratio: Double, looks: Int) {
        self.looks = looks
        spending = q.spending
        oneSided = q.oneSided
        let fractions = (1...looks).map { Double($0) / Double(looks) }
        design = GroupSequentialDesign(alpha: q.alpha, spending: q.spending, twoSided: !q.oneSided).sampleSize(power: q.power, fractions: fractions)
        maximumControlN = Int((n1 * design.inflationFactor).rounded(.up))
        maximumTreatmentN = Int((n1 * ratio * design.inflationFactor).rounded(.up))
        let fixedTotal = n1 * (1 + ratio)
        expectedTotalNAlternative = Int((fixedTotal * design.expectedUnderAlternative).rounded(.up))
        expectedTotalNNull = Int((fixedTotal * design.expectedUnderNull).rounded(.up))
        let maximum = Double(maximumControlN + maximumTreatmentN)
        usersAtLooks = fractions.map { Int(($0 * maximum).rounded(.up)) }
        maximumDays = q.dailyUsers.map { Int((maximum / $0).rounded(.up)) }
    }

    /// The z boundaries at the looks: |z| (one-sided: z) at or beyond one stops the test.
    public var boundaries: [Double] { design.boundaries }

    /// Each boundary as the p-value a single test would need there (two-sided, or one-sided for a one-sided
    /// design): what the look's nominal p must be at most.
    public var nominalPValues: [Double] { boundaries.map { (oneSided ? 1 : 2) * Normal.sf($0) } }
}
