import Foundation
import Testing
import BakeoffStatistics

private struct SequentialFixture: Decodable {
    struct Sums: Decodable { let n, sum, sumSquares: Double }
    struct Group: Decodable {
        let n: Double
        let sum, sumSquares: Double?  // mean and proportion
        let numerator, denominator: Sums?  // ratio
        let sumOfProducts: Double?
        let mean, variance: Double
    }
    struct Result: Decodable {
        let alpha, tuning: Double
        let differenceType: String
        let pointEstimate, standardError, ciLow, ciHigh, pValue: Double
        let fixedCiLow, fixedCiHigh, fixedPValue: Double
    }
    struct Case: Decodable {
        let label, kind: String
        let control, treatment: Group
        let results: [Result]
    }
    let cases: [Case]
}

private let fixture: SequentialFixture = Fixture.load("gbstats_sequential")

/// The GroupEstimate gbstats would use for this statistic, from the sufficient statistics only.
private func estimate(_ group: SequentialFixture.Group, kind: String) -> GroupEstimate {
    switch kind {
    case "mean":
        let m = SampleMoments(n: group.n, sum: group.sum!, sumOfSquares: group.sumSquares!)
        return GroupEstimate(mean: m.mean, variance: m.variance, n: m.n)
    case "proportion":
        let p = group.sum! / group.n
        return GroupEstimate(mean: p, variance: p * (1 - p), n: group.n)
    case "ratio":
        let num = group.numerator!, den = group.denominator!
        let r = RatioMoments(
            n: group.n, numerator: SampleMoments(n: num.n, sum: num.sum, sumOfSquares: num.sumSquares),
            denominator: SampleMoments(n: den.n, sum: den.sum, sumOfSquares: den.sumSquares),
            sumOfProducts: group.sumOfProducts!)
        return GroupEstimate(mean: r.mean, variance: r.variance, n: r.n)
    default:
        fatalError("unknown kind \(kind)")
    }
}

private func scale(_ name: String) -> DifferenceScale { DifferenceScale(rawValue: name)! }

/// The fixed-horizon Welch interval on the same scale (gbstats TwoSidedTTest).
private func fixedHorizon(control: GroupEstimate, treatment: GroupEstimate, alpha: Double, scale: DifferenceScale, sequential: SequentialDifferenceTest) -> ConfidenceInterval {
    let welch = TTest.welch(control: control, treatment: treatment, alpha: alpha)
    switch scale {
    case .absolute:
        return welch.interval
    case .relative:
        let half = welch.criticalValue * sequential.standardError
        return ConfidenceInterval(lower: sequential.difference - half, upper: sequential.difference + half)
    }
}

@Suite("Sequential test against gbstats 0.8.0 SequentialTwoSidedTTest")
struct SequentialTests {
    @Test("estimate, standard error, interval and p-value match", arguments: ["mean", "proportion", "ratio"])
    func matchesGbstats(kind: String) {
        var tally = ErrorTally("SequentialTest vs gbstats \(kind)")
        var compared = 0
        for c in fixture.cases where c.kind == kind {
            let control = estimate(c.control, kind: kind), treatment = estimate(c.treatment, kind: kind)
            tally.check(control.mean, c.control.mean, "\(c.label) control mean")
            tally.check(control.variance, c.control.variance, "\(c.label) control variance")
            tally.check(treatment.variance, c.treatment.variance, "\(c.label) treatment variance")
            for r in c.results {
                let result = SequentialTest.twoSided(
                    control: control, treatment: treatment, alpha: r.alpha, scale: scale(r.differenceType),
                    tuningParameter: r.tuning)
                let context = "\(c.label) \(r.differenceType) alpha \(r.alpha) N* \(r.tuning)"
                tally.check(result.difference, r.pointEstimate, "estimate \(context)", relative: 1e-12, absolute: 1e-15)
                tally.check(result.standardError, r.standardError, "se \(context)", relative: 1e-12, absolute: 1e-15)
                tally.check(result.interval.lower, r.ciLow, "ci low \(context)", relative: 1e-12, absolute: 1e-15)
                tally.check(result.interval.upper, r.ciHigh, "ci high \(context)", relative: 1e-12, absolute: 1e-15)
                // p-values below 1e-15 (where gbstats' e-value overflows to p = 0) are compared absolutely.
                tally.check(result.pValue, r.pValue, "p \(context)", relative: 1e-10, absolute: 1e-15)
                #expect(result.scale == scale(r.differenceType))
                compared += 1
            }
        }
        #expect(compared == 420)
        tally.report()
    }

    @Test("the sequential interval contains the fixed-horizon interval", arguments: DifferenceScale.allCases)
    func widerThanFixedHorizon(scale: DifferenceScale) {
        for c in fixture.cases {
            let control = estimate(c.control, kind: c.kind), treatment = estimate(c.treatment, kind: c.kind)
            for r in c.results where r.differenceType == scale.rawValue {
                let result = SequentialTest.twoSided(
                    control: control, treatment: treatment, alpha: r.alpha, scale: scale, tuningParameter: r.tuning)
                let fixed = fixedHorizon(control: control, treatment: treatment, alpha: r.alpha, scale: scale, sequential: result)
                let context = "\(c.label) \(scale) alpha \(r.alpha) N* \(r.tuning)"
                #expect(result.interval.lower < fixed.lower && fixed.upper < result.interval.upper, "\(context)")
                // Against gbstats' own fixed-horizon interval too.
                #expect(result.interval.lower < r.fixedCiLow && r.fixedCiHigh < result.interval.upper, "\(context)")
                #expect(result.pValue >= r.fixedPValue || result.pValue == 1, "\(context)")
            }
        }
    }

    @Test("p-value in [0, 1], and p < alpha exactly when the interval excludes 0",
          arguments: DifferenceScale.allCases, [0.01, 0.05, 0.1, 0.2])
    func duality(scale: DifferenceScale, alpha: Double) {
        var significant = 0, total = 0
        for c in fixture.cases {
            let control = estimate(c.control, kind: c.kind), treatment = estimate(c.treatment, kind: c.kind)
            for tuning in [100.0, 1000, 5000, 100_000, 1e7] {
                let result = SequentialTest.twoSided(
                    control: control, treatment: treatment, alpha: alpha, scale: scale, tuningParameter: tuning)
                let excludesZero = result.interval.lower > 0 || result.interval.upper < 0
                #expect(result.pValue >= 0 && result.pValue <= 1)
                #expect(excludesZero == (result.pValue < alpha), "\(c.label) \(scale) alpha \(alpha) N* \(tuning): p \(result.pValue), \(result.interval)")
                total += 1
                if excludesZero { significant += 1 }
            }
        }
        // Both outcomes occur, so the equivalence is not vacuous.
        #expect(significant > 0 && significant < total)
    }

    @Test("fields are consistent; the default tuning parameter is gbstats' 5,000")
    func consistency() {
        #expect(SequentialTest.defaultTuningParameter == 5000)
        let control = GroupEstimate(mean: 0.75, variance: 0.1875, n: 1200)
        let treatment = GroupEstimate(mean: 0.78, variance: 0.1716, n: 1100)
        for scale in DifferenceScale.allCases {
            let defaulted = SequentialTest.twoSided(control: control, treatment: treatment, alpha: 0.05, scale: scale)
            let explicit = SequentialTest.twoSided(
                control: control, treatment: treatment, alpha: 0.05, scale: scale, tuningParameter: 5000)
            #expect(defaulted == explicit)
            #expect(Accuracy.agrees(defaulted.statistic, defaulted.difference / defaulted.standardError, relative: 1e-15, absolute: 0))
            let width = defaulted.interval.upper - defaulted.interval.lower
            #expect(Accuracy.agrees(width, 2 * defaulted.criticalValue * defaulted.standardError, relative: 1e-12, absolute: 0))
        }
        let absolute = SequentialTest.twoSided(control: control, treatment: treatment, alpha: 0.05, scale: .absolute)
        #expect(Accuracy.agrees(absolute.difference, 0.03, relative: 1e-12, absolute: 0))
        let relative = SequentialTest.twoSided(control: control, treatment: treatment, alpha: 0.05, scale: .relative)
        #expect(Accuracy.agrees(relative.difference, 0.04, relative: 1e-12, absolute: 0))
        // rho^2 from eq. 161 at alpha 0.05: (2 log 20 + log(1 + 2 log 20)) / N*.
        let l = 2 * log(20.0)
        #expect(Accuracy.agrees(SequentialTest.rhoSquared(alpha: 0.05, tuningParameter: 5000), (l + log(1 + l)) / 5000, relative: 1e-14, absolute: 0))
    }

    @Test("a smaller alpha gives a wider interval; the interval is narrowest near N = N*")
    func monotonicity() {
        let control = GroupEstimate(mean: 2, variance: 3, n: 2500)
        let treatment = GroupEstimate(mean: 2.1, variance: 3.2, n: 2500)
        var previous = 0.0
        for alpha in [0.2, 0.1, 0.05, 0.01, 0.001] {
            let result = SequentialTest.twoSided(control: control, treatment: treatment, alpha: alpha, scale: .absolute)
            #expect(result.criticalValue > previous)
            previous = result.criticalValue
        }
        // With N = 5,000, the multiplier is smaller at N* = 5,000 than far from it.
        let at = SequentialTest.twoSided(control: control, treatment: treatment, alpha: 0.05, scale: .absolute, tuningParameter: 5000)
        for tuning in [100.0, 1e6] {
            let away = SequentialTest.twoSided(control: control, treatment: treatment, alpha: 0.05, scale: .absolute, tuningParameter: tuning)
            #expect(at.criticalValue < away.criticalValue)
        }
    }

    @Test("degenerate groups give NaN or infinity, not a trap")
    func degenerate() {
        let constant = GroupEstimate(mean: 1, variance: 0, n: 10)
        let same = SequentialTest.twoSided(control: constant, treatment: constant, alpha: 0.05, scale: .absolute)
        #expect(same.pValue.isNaN)
        let zeroControl = GroupEstimate(mean: 0, variance: 1, n: 10)
        _ = SequentialTest.twoSided(control: zeroControl, treatment: GroupEstimate(mean: 1, variance: 1, n: 10), alpha: 0.05, scale: .relative)
        let empty = GroupEstimate(mean: 0, variance: 0, n: 0)
        _ = SequentialTest.twoSided(control: empty, treatment: empty, alpha: 0.05, scale: .relative)
    }

    @Test("the sample for sequential power is the smallest N where effect / se reaches the sequence's width plus z_power")
    func usersForPower() throws {
        for (effect, variance, ratio) in [(0.05, 0.19, 1.0), (0.02, 0.25, 0.25), (1.5, 40.0, 3.0)] {
            let n = try #require(SequentialTest.users(effect: effect, variance: variance, ratio: ratio, alpha: 0.05, power: 0.8))
            let rho2 = SequentialTest.rhoSquared(alpha: 0.05, tuningParameter: SequentialTest.defaultTuningParameter)
            func margin(_ n: Double) -> Double {
                let se = (variance / (n / (1 + ratio)) + variance / (n * ratio / (1 + ratio))).squareRoot()
                return effect / se - SequentialTest.criticalValue(n: n, alpha: 0.05, rhoSquared: rho2) - Normal.quantile(0.8)
            }
            #expect(margin(n) >= 0 && margin(n - 1) < 0, "effect \(effect): N \(n)")
            // Wider than the fixed-horizon test, so it needs more users than the t-test's plan.
            let nobs1 = TTestIndependentPower.solveNobs1(effectSize: effect / variance.squareRoot(), alpha: 0.05, power: 0.8,
                                                         ratio: ratio, alternative: .twoSided)
            #expect(n > nobs1 * (1 + ratio), "effect \(effect): \(n) vs fixed \(nobs1 * (1 + ratio))")
        }
        #expect(SequentialTest.users(effect: 1e-9, variance: 1, ratio: 1, alpha: 0.05, power: 0.8) == nil)
        #expect(SequentialTest.users(effect: 0, variance: 1, ratio: 1, alpha: 0.05, power: 0.8) == nil)
    }
}
