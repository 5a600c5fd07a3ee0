import Foundation
import Testing
import BakeoffStatistics

private struct BayesianFixture: Decodable {
    struct Group: Decodable { let n, mean, variance: Double }
    struct Prior: Decodable {
        let mean, variance: Double
        let type: String
    }
    struct Result: Decodable {
        let prior: Prior?
        let difference: String
        let inverse: Bool
        let alpha: Double
        let expected, stddev, chanceToWin, riskControl, riskTreatment, ciLow, ciHigh: Double
    }
    struct Case: Decodable {
        let label, kind: String
        let control, treatment: Group
        let results: [Result]
    }
    struct Degenerate: Decodable {
        let label, difference: String
        let control, treatment: Group
        let expected, stddev, chanceToWin, riskControl, riskTreatment, ciLow, ciHigh: Double
    }
    let cases: [Case]
    let degenerate: [Degenerate]
}

private let fixture: BayesianFixture = Fixture.load("gbstats_bayesian")

private extension GroupEstimate {
    init(_ group: BayesianFixture.Group) { self.init(mean: group.mean, variance: group.variance, n: group.n) }
}

private func scale(_ name: String) -> DifferenceScale {
    guard let scale = DifferenceScale(rawValue: name) else { fatalError("unknown scale \(name)") }
    return scale
}

@Suite("Bayesian effect test against gbstats 0.8.0 EffectBayesianABTest")
struct BayesianGbstatsTests {
    @Test("posterior, chance to win, risks and credible interval", arguments: ["mean", "proportion", "ratio"])
    func grid(kind: String) {
        var tally = ErrorTally("BayesianEffectTest vs gbstats \(kind)")
        let cases = fixture.cases.filter { $0.kind == kind }
        #expect(cases.count >= 20)
        for c in cases {
            for r in c.results {
                let prior = r.prior.map { GaussianPrior(mean: $0.mean, variance: $0.variance, scale: scale($0.type)) }
                let result = BayesianEffectTest.compute(
                    control: GroupEstimate(c.control), treatment: GroupEstimate(c.treatment),
                    scale: scale(r.difference), prior: prior, inverse: r.inverse, alpha: r.alpha)
                let context = "\(c.label) \(r.difference) prior \(r.prior.map { "\($0.type) \($0.mean) \($0.variance)" } ?? "flat") inverse \(r.inverse) alpha \(r.alpha)"
                #expect(result.issue == nil)
                #expect(result.scale == scale(r.difference))
                tally.check(result.mean, r.expected, "mean \(context)")
                tally.check(result.standardDeviation, r.stddev, "sd \(context)")
                tally.check(result.chanceToWin, r.chanceToWin, "chance to win \(context)")
                tally.check(result.riskOfControl, r.riskControl, "risk control \(context)")
                tally.check(result.riskOfTreatment, r.riskTreatment, "risk treatment \(context)")
                // The interval's ends can sit near zero; 1e-12 of its width is the right floor there.
                let width = r.ciHigh - r.ciLow
                tally.check(result.interval.lower, r.ciLow, "ci low \(context)", absolute: 1e-12 * width)
                tally.check(result.interval.upper, r.ciHigh, "ci high \(context)", absolute: 1e-12 * width)
            }
        }
        tally.report()
    }

    @Test("inputs gbstats cannot analyse give its uninformative output and say why")
    func degenerate() {
        let issues: [BayesianEffect.Issue] = [.zeroControlMean, .emptyGroup, .nonPositiveVariance]
        #expect(fixture.degenerate.count == issues.count)
        for (d, issue) in zip(fixture.degenerate, issues) {
            let result = BayesianEffectTest.compute(
                control: GroupEstimate(d.control), treatment: GroupEstimate(d.treatment), scale: scale(d.difference))
            #expect(result.issue == issue, "\(d.label)")
            #expect(result.mean == d.expected && result.standardDeviation == d.stddev)
            #expect(result.chanceToWin == d.chanceToWin)
            #expect(result.riskOfControl == d.riskControl && result.riskOfTreatment == d.riskTreatment)
            #expect(result.interval == ConfidenceInterval(lower: d.ciLow, upper: d.ciHigh))
        }
    }
}

@Suite("Bayesian effect test properties")
struct BayesianPropertyTests {
    static let groups: [(GroupEstimate, GroupEstimate)] = [
        (GroupEstimate(mean: 0.75, variance: 0.1875, n: 1200), GroupEstimate(mean: 0.78, variance: 0.1716, n: 1100)),
        (GroupEstimate(mean: 310, variance: 48_000, n: 20), GroupEstimate(mean: 280, variance: 61_000, n: 35)),
        (GroupEstimate(mean: 0.1, variance: 0.3, n: 1e6), GroupEstimate(mean: 0.1003, variance: 0.31, n: 250_000)),
        (GroupEstimate(mean: -2, variance: 4, n: 500), GroupEstimate(mean: -1.5, variance: 5, n: 400)),
    ]

    @Test("flat prior: the credible interval is the fixed-horizon normal interval", arguments: [0.01, 0.05, 0.2])
    func flatPriorInterval(alpha: Double) {
        let z = Normal.quantile(1 - alpha / 2)
        for (control, treatment) in Self.groups {
            // Absolute: Welch's difference and standard error with a normal critical value.
            let welch = TTest.welch(control: control, treatment: treatment, alpha: alpha)
            let absolute = BayesianEffectTest.compute(control: control, treatment: treatment, scale: .absolute, alpha: alpha)
            #expect(absolute.mean == welch.difference)
            #expect(Accuracy.agrees(absolute.standardDeviation, welch.standardError, relative: 1e-15, absolute: 0))
            #expect(Accuracy.agrees(absolute.interval.lower, welch.difference - z * welch.standardError, relative: 1e-13, absolute: 1e-15 * welch.standardError))
            #expect(Accuracy.agrees(absolute.interval.upper, welch.difference + z * welch.standardError, relative: 1e-13, absolute: 1e-15 * welch.standardError))
            // Relative: the delta-method lift and standard error.
            let mc = control.mean, mt = treatment.mean
            let lift = (mt - mc) / mc
            let se = (treatment.variance / (mc * mc * treatment.n) + control.variance * mt * mt / (mc * mc * mc * mc * control.n)).squareRoot()
            let relative = BayesianEffectTest.compute(control: control, treatment: treatment, alpha: alpha)
            #expect(relative.scale == .relative)
            #expect(relative.mean == lift)
            #expect(Accuracy.agrees(relative.standardDeviation, se, relative: 1e-14, absolute: 0))
            #expect(Accuracy.agrees(relative.interval.lower, lift - z * se, relative: 1e-13, absolute: 1e-14 * se))
            #expect(Accuracy.agrees(relative.interval.upper, lift + z * se, relative: 1e-13, absolute: 1e-14 * se))
        }
    }

    @Test("zero effect: chance to win 1/2 and equal risks", arguments: [DifferenceScale.relative, .absolute], [false, true])
    func zeroEffect(scale: DifferenceScale, inverse: Bool) {
        for (control, _) in Self.groups {
            for prior in [nil, GaussianPrior(mean: 0, variance: 0.04, scale: .relative), GaussianPrior(mean: 0, variance: 3, scale: .absolute)] {
                let result = BayesianEffectTest.compute(control: control, treatment: control, scale: scale, prior: prior, inverse: inverse)
                #expect(result.mean == 0)
                #expect(result.chanceToWin == 0.5)
                #expect(result.riskOfControl == result.riskOfTreatment)
                // E|X| / 2 for X ~ N(0, sd^2).
                #expect(Accuracy.agrees(result.riskOfControl, result.standardDeviation / (2 * Double.pi).squareRoot(), relative: 1e-15, absolute: 0))
                #expect(result.interval.lower == -result.interval.upper)
            }
        }
    }

    @Test("risk of control minus risk of treatment is the posterior mean, sign flipped when lower is better",
          arguments: [DifferenceScale.relative, .absolute], [false, true])
    func riskDifference(scale: DifferenceScale, inverse: Bool) {
        for (control, treatment) in Self.groups {
            for prior in [nil, GaussianPrior(mean: 0.02, variance: 0.01, scale: .relative), GaussianPrior(mean: -0.1, variance: 2, scale: .absolute)] {
                let r = BayesianEffectTest.compute(control: control, treatment: treatment, scale: scale, prior: prior, inverse: inverse)
                let gap = r.riskOfControl - r.riskOfTreatment
                let expected = inverse ? -r.mean : r.mean
                #expect(Accuracy.agrees(gap, expected, relative: 1e-12, absolute: 1e-15 * r.standardDeviation), "\(gap) vs \(expected)")
                #expect(r.riskOfControl >= 0 && r.riskOfTreatment >= 0)
                // The better-looking arm carries the smaller risk and the larger chance.
                #expect((r.chanceToWin > 0.5) == (r.riskOfTreatment < r.riskOfControl))
                let flipped = BayesianEffectTest.compute(control: control, treatment: treatment, scale: scale, prior: prior, inverse: !inverse)
                #expect(Accuracy.agrees(r.chanceToWin + flipped.chanceToWin, 1, relative: 1e-15, absolute: 0))
                #expect(r.riskOfControl == flipped.riskOfTreatment && r.riskOfTreatment == flipped.riskOfControl)
            }
        }
    }

    @Test("a proper prior shrinks toward its mean; a very wide one is the flat prior")
    func priorShrinkage() {
        let (control, treatment) = Self.groups[0]
        let flat = BayesianEffectTest.compute(control: control, treatment: treatment)
        let tight = BayesianEffectTest.compute(control: control, treatment: treatment, prior: GaussianPrior(mean: 0, variance: 1e-4))
        #expect(abs(tight.mean) < abs(flat.mean) && tight.standardDeviation < flat.standardDeviation)
        let wide = BayesianEffectTest.compute(control: control, treatment: treatment, prior: GaussianPrior(mean: 0, variance: 1e12))
        #expect(Accuracy.agrees(wide.mean, flat.mean, relative: 1e-9, absolute: 0))
        // The same prior stated on either scale gives the same posterior.
        let absolutePrior = GaussianPrior(mean: 0.01 * control.mean, variance: 1e-4 * control.mean * control.mean, scale: .absolute)
        let a = BayesianEffectTest.compute(control: control, treatment: treatment, prior: GaussianPrior(mean: 0.01, variance: 1e-4))
        let b = BayesianEffectTest.compute(control: control, treatment: treatment, prior: absolutePrior)
        #expect(Accuracy.agrees(a.mean, b.mean, relative: 1e-13, absolute: 0))
        #expect(Accuracy.agrees(a.standardDeviation, b.standardDeviation, relative: 1e-13, absolute: 0))
    }

    @Test("far tails: risks stay finite, nonnegative and sum to |mean|")
    func farTails() {
        let control = GroupEstimate(mean: 0.1, variance: 0.09, n: 1e6)
        for mt in [0.2, 0.101, 0.0] {
            let treatment = GroupEstimate(mean: mt, variance: 0.09, n: 1e6)
            let r = BayesianEffectTest.compute(control: control, treatment: treatment, scale: .absolute)
            #expect(r.riskOfControl.isFinite && r.riskOfTreatment.isFinite)
            #expect(r.riskOfControl >= 0 && r.riskOfTreatment >= 0)
            #expect(Accuracy.agrees(r.riskOfControl - r.riskOfTreatment, r.mean, relative: 1e-12, absolute: 0))
        }
    }
}
