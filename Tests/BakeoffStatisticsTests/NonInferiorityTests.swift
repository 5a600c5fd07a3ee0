import Foundation
import Testing
import BakeoffStatistics

private struct NonInferiorityFixture: Decodable {
    struct Group: Decodable { let n, mean, variance: Double }
    struct Case: Decodable {
        let label, direction, scale: String
        let margin, alpha: Double
        let control, treatment: Group
        let difference, statistic, pValue, df, bound: Double
    }
    let cases: [Case]
}

private let fixture: NonInferiorityFixture = Fixture.load("non_inferiority")

private extension GroupEstimate {
    init(_ group: NonInferiorityFixture.Group) { self.init(mean: group.mean, variance: group.variance, n: group.n) }
}

// SplitMix64 (seeded, reproducible) is shared with FiellerTests.swift.

@Suite("NonInferiority.welch")
struct NonInferiorityTests {
    private func run(_ c: NonInferiorityFixture.Case) -> NonInferiorityTest {
        NonInferiority.welch(
            control: GroupEstimate(c.control), treatment: GroupEstimate(c.treatment), margin: c.margin,
            scale: DifferenceScale(rawValue: c.scale)!, direction: HarmfulDirection(rawValue: c.direction)!,
            alpha: c.alpha)
    }

    private func check(scale: String, _ name: String) {
        var tally = ErrorTally(name)
        let cases = fixture.cases.filter { $0.scale == scale }
        #expect(cases.count > 40)
        for c in cases {
            let result = run(c)
            let context = "\(c.label) \(c.direction) margin \(c.margin) alpha \(c.alpha)"
            tally.check(result.difference, c.difference, "difference \(context)")
            tally.check(result.statistic, c.statistic, "statistic \(context)")
            tally.check(result.pValue, c.pValue, "p \(context)")
            tally.check(result.degreesOfFreedom, c.df, "df \(context)")
            tally.check(result.bound, c.bound, "bound \(context)")
            #expect(result.isNonInferior == (c.pValue < c.alpha), "decision \(context)")
        }
        tally.report()
    }

    @Test("absolute margin matches statsmodels CompareMeans.ttest_ind / tconfint_diff (usevar=unequal, one-sided)")
    func absoluteAgainstStatsmodels() { check(scale: "absolute", "NonInferiority absolute vs statsmodels") }

    @Test("relative margin matches an independent numpy/scipy delta-method computation")
    func relativeAgainstScipy() { check(scale: "relative", "NonInferiority relative vs numpy/scipy") }

    @Test("fixtures cover both decisions, directions and scales")
    func coverage() {
        for scale in ["absolute", "relative"] {
            for direction in HarmfulDirection.allCases {
                let cases = fixture.cases.filter { $0.scale == scale && $0.direction == direction.rawValue }
                #expect(cases.contains { $0.pValue < $0.alpha }, "\(scale) \(direction) shown")
                #expect(cases.contains { $0.pValue >= $0.alpha }, "\(scale) \(direction) not shown")
            }
        }
    }

    @Test("property: p < alpha exactly when the one-sided bound lies inside the margin")
    func decisionEquivalence() {
        var rng = SplitMix64(seed: 0x4E4F_4E49_4E46)
        var nearTies = 0, shown = 0, trials = 0
        for _ in 0..<20_000 {
            let mc = Double.random(in: 0.05...500, using: &rng)
            let control = GroupEstimate(
                mean: mc, variance: pow(mc * Double.random(in: 0.01...3, using: &rng), 2),
                n: Double(Int.random(in: 2...50_000, using: &rng)))
            let mt = mc * Double.random(in: 0.7...1.3, using: &rng)
            let treatment = GroupEstimate(
                mean: mt, variance: pow(mt * Double.random(in: 0.01...3, using: &rng), 2),
                n: Double(Int.random(in: 2...50_000, using: &rng)))
            let scale = DifferenceScale.allCases.randomElement(using: &rng)!
            let direction = HarmfulDirection.allCases.randomElement(using: &rng)!
            let alpha = [0.001, 0.01, 0.025, 0.05, 0.1, 0.2].randomElement(using: &rng)!
            let unit = scale == .absolute ? mc : 1
            let margin = unit * Double.random(in: -0.05...0.4, using: &rng)
            let r = NonInferiority.welch(
                control: control, treatment: treatment, margin: margin, scale: scale, direction: direction, alpha: alpha)
            trials += 1
            let inside = direction == .higherIsWorse ? r.bound < r.boundary : r.bound > r.boundary
            // The two sides agree in exact arithmetic; only a rounding-level tie could split them.
            let tie = abs(r.bound - r.boundary) <= 1e-10 * max(abs(r.boundary), r.standardError)
            if tie { nearTies += 1; continue }
            if r.isNonInferior { shown += 1 }
            #expect(r.isNonInferior == inside, "\(scale) \(direction) alpha \(alpha): p \(r.pValue) bound \(r.bound) boundary \(r.boundary)")
            #expect(r.isNonInferior == (r.pValue < alpha))
            #expect(r.boundary == (direction == .higherIsWorse ? margin : -margin))
            // The bound sits critical * se from the estimate, on the harmful side.
            let offset = direction == .higherIsWorse ? r.bound - r.difference : r.difference - r.bound
            #expect(Accuracy.agrees(offset, r.criticalValue * r.standardError, relative: 1e-12, absolute: 0))
            #expect(Accuracy.agrees(r.criticalValue, StudentT.quantile(1 - alpha, df: r.degreesOfFreedom), relative: 1e-10, absolute: 0))
        }
        #expect(nearTies <= 2)
        #expect(shown > trials / 10 && shown < trials * 9 / 10, "shown \(shown) of \(trials)")
    }

    @Test("property: the p-value at the bound used as margin is alpha", arguments: HarmfulDirection.allCases)
    func boundIsTheCriticalMargin(direction: HarmfulDirection) {
        let control = GroupEstimate(mean: 0.08, variance: 0.08 * 0.92, n: 5000)
        let treatment = GroupEstimate(mean: 0.085, variance: 0.085 * 0.915, n: 4800)
        for scale in DifferenceScale.allCases {
            for alpha in [0.01, 0.05, 0.1] {
                let first = NonInferiority.welch(
                    control: control, treatment: treatment, margin: 0, scale: scale, direction: direction, alpha: alpha)
                // The smallest margin that would be shown: |bound| on the harmful side.
                let critical = direction == .higherIsWorse ? first.bound : -first.bound
                let atBound = NonInferiority.welch(
                    control: control, treatment: treatment, margin: critical, scale: scale, direction: direction, alpha: alpha)
                #expect(Accuracy.agrees(atBound.pValue, alpha, relative: 1e-9, absolute: 0), "\(scale) \(alpha): \(atBound.pValue)")
                let wider = NonInferiority.welch(
                    control: control, treatment: treatment, margin: critical * 1.01 + 1e-9, scale: scale,
                    direction: direction, alpha: alpha)
                #expect(wider.isNonInferior)
                let narrower = NonInferiority.welch(
                    control: control, treatment: treatment, margin: critical * 0.99 - 1e-9, scale: scale,
                    direction: direction, alpha: alpha)
                #expect(!narrower.isNonInferior)
            }
        }
    }

    @Test("mirror: lowerIsWorse on a metric equals higherIsWorse on its negation")
    func mirror() {
        let control = GroupEstimate(mean: 0.75, variance: 0.1875, n: 3000)
        let treatment = GroupEstimate(mean: 0.74, variance: 0.1924, n: 2000)
        let negC = GroupEstimate(mean: -0.75, variance: 0.1875, n: 3000)
        let negT = GroupEstimate(mean: -0.74, variance: 0.1924, n: 2000)
        for scale in DifferenceScale.allCases {
            for margin in [0.0, 0.01, 0.02, 0.05] {
                let low = NonInferiority.welch(
                    control: control, treatment: treatment, margin: margin, scale: scale, direction: .lowerIsWorse, alpha: 0.05)
                let high = NonInferiority.welch(
                    control: negC, treatment: negT, margin: margin, scale: scale, direction: .higherIsWorse, alpha: 0.05)
                // Relative lifts are invariant under negating both means; absolute differences flip sign.
                let sign = scale == .absolute ? -1.0 : 1.0
                if scale == .absolute {
                    #expect(Accuracy.agrees(low.pValue, high.pValue, relative: 1e-12, absolute: 1e-300))
                    #expect(Accuracy.agrees(low.bound, sign * high.bound, relative: 1e-12, absolute: 1e-15))
                    #expect(low.isNonInferior == high.isNonInferior)
                } else {
                    #expect(low.difference == sign * high.difference)
                }
            }
        }
    }

    @Test("issue 4 example: P95 +15% and escalation +1 point as rules")
    func guardrailExample() {
        // Latency: treatment 5% slower on average; a 15% relative margin is shown, 0% is not.
        let latencyC = GroupEstimate(mean: 400, variance: 150 * 150, n: 2000)
        let latencyT = GroupEstimate(mean: 420, variance: 160 * 160, n: 2000)
        let within = NonInferiority.welch(
            control: latencyC, treatment: latencyT, margin: 0.15, scale: .relative, direction: .higherIsWorse, alpha: 0.05)
        #expect(within.isNonInferior && within.bound < 0.15 && within.difference == 0.05)
        let noHarm = NonInferiority.welch(
            control: latencyC, treatment: latencyT, margin: 0, scale: .relative, direction: .higherIsWorse, alpha: 0.05)
        #expect(!noHarm.isNonInferior && noHarm.pValue > 0.5)
        // Escalation 8% -> 8.3%: within one point at n = 10000 per arm, not within 0.1 point.
        let escC = GroupEstimate(mean: 0.08, variance: 0.08 * 0.92, n: 10_000)
        let escT = GroupEstimate(mean: 0.083, variance: 0.083 * 0.917, n: 10_000)
        #expect(NonInferiority.welch(
            control: escC, treatment: escT, margin: 0.01, scale: .absolute, direction: .higherIsWorse, alpha: 0.05).isNonInferior)
        #expect(!NonInferiority.welch(
            control: escC, treatment: escT, margin: 0.001, scale: .absolute, direction: .higherIsWorse, alpha: 0.05).isNonInferior)
    }

    @Test("degenerate groups give NaN or infinity, not a trap")
    func degenerate() {
        let constant = GroupEstimate(mean: 1, variance: 0, n: 10)
        for scale in DifferenceScale.allCases {
            for direction in HarmfulDirection.allCases {
                let r = NonInferiority.welch(
                    control: constant, treatment: constant, margin: 0, scale: scale, direction: direction, alpha: 0.05)
                #expect(r.pValue.isNaN && !r.isNonInferior)
            }
        }
        let zeroMean = GroupEstimate(mean: 0, variance: 1, n: 10)
        let r = NonInferiority.welch(
            control: zeroMean, treatment: GroupEstimate(mean: 1, variance: 1, n: 10), margin: 0.1, scale: .relative,
            direction: .higherIsWorse, alpha: 0.05)
        #expect(!r.isNonInferior)
        let single = GroupEstimate(mean: 2, variance: 0, n: 1)
        _ = NonInferiority.welch(
            control: single, treatment: GroupEstimate(mean: 1, variance: 1, n: 5), margin: 0.1, scale: .absolute,
            direction: .lowerIsWorse, alpha: 0.05)
        let empty = GroupEstimate(mean: 0, variance: 0, n: 0)
        _ = NonInferiority.welch(control: empty, treatment: empty, margin: 0, scale: .relative, direction: .lowerIsWorse, alpha: 0.05)
    }
}
