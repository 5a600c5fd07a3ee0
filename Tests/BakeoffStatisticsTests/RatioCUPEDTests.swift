import Foundation
import Testing
import BakeoffStatistics

private struct RatioCUPEDFixture: Decodable {
    struct Sums: Decodable { let n, sum, sumSquares: Double }
    struct Arm: Decodable {
        let n: Double
        let numerator, denominator, preNumerator, preDenominator: Sums
        let numeratorDenominator, preNumeratorPreDenominator, numeratorPreNumerator: Double
        let denominatorPreDenominator, numeratorPreDenominator, denominatorPreNumerator: Double
    }
    struct Estimate: Decodable { let mean, variance, unadjustedMean, unadjustedVariance: Double }
    struct Result: Decodable {
        let alpha: Double
        let differenceType: String
        let pointEstimate, standardError, statistic, dof, pValue, ciLow, ciHigh: Double
    }
    struct Case: Decodable {
        let label, kind: String
        let rho: Double
        let control, treatment: Arm
        let theta: Double
        let controlEstimate, treatmentEstimate: Estimate
        let controlUsers, treatmentUsers: [[Double]]?
        let results: [Result]
    }
    let generator: String
    let cases: [Case]
}

private let fixture: RatioCUPEDFixture = Fixture.load("ratio_cuped")

private extension SampleMoments {
    init(_ s: RatioCUPEDFixture.Sums) { self.init(n: s.n, sum: s.sum, sumOfSquares: s.sumSquares) }
}

private extension RatioCUPEDMoments {
    init(_ a: RatioCUPEDFixture.Arm) {
        self.init(
            n: a.n, numerator: SampleMoments(a.numerator), denominator: SampleMoments(a.denominator),
            preNumerator: SampleMoments(a.preNumerator), preDenominator: SampleMoments(a.preDenominator),
            numeratorDenominator: a.numeratorDenominator, preNumeratorPreDenominator: a.preNumeratorPreDenominator,
            numeratorPreNumerator: a.numeratorPreNumerator, denominatorPreDenominator: a.denominatorPreDenominator,
            numeratorPreDenominator: a.numeratorPreDenominator, denominatorPreNumerator: a.denominatorPreNumerator)
    }
}

// SplitMix64 and its normal() (seeded, reproducible) are in Support.swift.
private extension SplitMix64 {
    /// Two standard normals with correlation rho.
    mutating func pair(rho: Double) -> (Double, Double) {
        let a = normal(), b = normal()
        return (a, rho * a + (1 - rho * rho).squareRoot() * b)
    }
}

/// One arm of ratio data whose per-user linearizations have correlation `rho`: d, dp uniform on 1...5
/// (independent), m = ratio·d + 3e, mp = 0.6·dp + 2f with corr(e, f) = rho; the true ratio is `ratio`.
private func ratioArm(_ rng: inout SplitMix64, users: Int, ratio: Double, rho: Double) -> RatioCUPEDMoments {
    var arm = RatioCUPEDMoments()
    for _ in 0..<users {
        let d = Double(Int.random(in: 1...5, using: &rng)), dp = Double(Int.random(in: 1...5, using: &rng))
        let (e, f) = rng.pair(rho: rho)
        arm.add(numerator: ratio * d + 3 * e, denominator: d, preNumerator: 0.6 * dp + 2 * f, preDenominator: dp)
    }
    return arm
}

@Suite("CUPED for ratio metrics (RatioCUPED)")
struct RatioCUPEDTests {
    @Test("theta and adjusted estimates match numpy on the raw users")
    func estimates() {
        var tally = ErrorTally("RatioCUPED theta/estimates vs numpy")
        for c in fixture.cases {
            let control = RatioCUPEDMoments(c.control), treatment = RatioCUPEDMoments(c.treatment)
            let adjustment = RatioCUPED.adjust(control: control, treatment: treatment)
            // theta is a ratio of near-cancelling sums when rho = 0: compare it on the scale of its noise.
            tally.check(adjustment.theta, c.theta, "\(c.label) theta", absolute: 1e-12)
            for (arm, unadjusted, e) in [(adjustment.control, adjustment.unadjustedControl, c.controlEstimate),
                                         (adjustment.treatment, adjustment.unadjustedTreatment, c.treatmentEstimate)] {
                tally.check(arm.mean, e.mean, "\(c.label) adjusted mean")
                tally.check(arm.variance, e.variance, "\(c.label) adjusted variance")
                tally.check(unadjusted.mean, e.unadjustedMean, "\(c.label) unadjusted mean")
                tally.check(unadjusted.variance, e.unadjustedVariance, "\(c.label) unadjusted variance")
            }
            #expect(adjustment.control.n == c.control.n && adjustment.treatment.n == c.treatment.n)
            if c.label.hasPrefix("degenerate") && c.theta == 0 {
                #expect(adjustment.theta == 0, "\(c.label)")
                #expect(adjustment.control == adjustment.unadjustedControl, "\(c.label)")
            }
        }
        tally.report()
    }

    @Test("Welch on the adjusted ratios matches statsmodels (absolute) and scipy (relative)")
    func welch() {
        var tally = ErrorTally("RatioCUPED.test vs statsmodels/scipy")
        for c in fixture.cases {
            let control = RatioCUPEDMoments(c.control), treatment = RatioCUPEDMoments(c.treatment)
            for r in c.results {
                let scale = DifferenceScale(rawValue: r.differenceType)!
                let result = RatioCUPED.test(control: control, treatment: treatment, alpha: r.alpha, scale: scale).test
                let context = "\(c.label) alpha \(r.alpha) \(r.differenceType)"
                tally.check(result.difference, r.pointEstimate, "point estimate \(context)")
                tally.check(result.standardError, r.standardError, "se \(context)")
                tally.check(result.statistic, r.statistic, "statistic \(context)")
                tally.check(result.degreesOfFreedom, r.dof, "dof \(context)")
                tally.check(result.pValue, r.pValue, "p \(context)")
                tally.check(result.interval.lower, r.ciLow, "ci low \(context)")
                tally.check(result.interval.upper, r.ciHigh, "ci high \(context)")
            }
        }
        #expect(tally.count > 1000)
        tally.report()
    }

    @Test("add accumulates exactly the sums numpy recorded")
    func accumulation() {
        var checked = 0
        for c in fixture.cases {
            guard let controlUsers = c.controlUsers, let treatmentUsers = c.treatmentUsers else { continue }
            for (users, arm) in [(controlUsers, c.control), (treatmentUsers, c.treatment)] {
                var moments = RatioCUPEDMoments()
                for u in users { moments.add(numerator: u[0], denominator: u[1], preNumerator: u[2], preDenominator: u[3]) }
                // Integer-valued data: every sum is exact in both languages.
                #expect(moments == RatioCUPEDMoments(arm), "\(c.label)")
            }
            checked += 1
        }
        #expect(checked == 3)
    }

    @Test("with d = dp = 1 it is CUPED on the per-user means", arguments: [0.0, 0.4, 0.9, -0.7])
    func reducesToMeanCUPED(rho: Double) {
        var rng = SplitMix64(seed: 42 &+ UInt64(bitPattern: Int64(rho * 100)))
        for (nc, nt, missing) in [(2, 3, 0.0), (15, 11, 0.2), (400, 380, 0.0), (5000, 5200, 0.3)] {
            var ratioArms = [RatioCUPEDMoments(), RatioCUPEDMoments()]
            var meanArms = [CUPEDMoments(), CUPEDMoments()]
            for (arm, users) in [nc, nt].enumerated() {
                for _ in 0..<users {
                    let (e, f) = rng.pair(rho: rho)
                    let y = ((8 + 2 * e + 0.3 * Double(arm)) * 1000).rounded() / 1000
                    // Users without pre data enter with x = 0, as gbstats does for means.
                    let x = Double.random(in: 0..<1, using: &rng) < missing ? 0 : 5 + 1.5 * f
                    ratioArms[arm].add(numerator: y, denominator: 1, preNumerator: x, preDenominator: 1)
                    meanArms[arm].add(post: y, pre: x)
                }
            }
            let ratio = RatioCUPED.adjust(control: ratioArms[0], treatment: ratioArms[1])
            let mean = CUPED.adjust(control: meanArms[0], treatment: meanArms[1])
            let context = "rho \(rho) n \(nc)/\(nt)"
            // Equal up to rounding: the ratio forms subtract exact zeros (var d, cov(m, d)) the mean forms omit.
            #expect(Accuracy.agrees(ratio.theta, mean.theta, relative: 1e-12, absolute: 1e-13), "\(context): theta \(ratio.theta) vs \(mean.theta)")
            for (a, b) in [(ratio.control, mean.control), (ratio.treatment, mean.treatment),
                           (ratio.unadjustedControl, mean.unadjustedControl), (ratio.unadjustedTreatment, mean.unadjustedTreatment)] {
                #expect(a.n == b.n)
                #expect(Accuracy.agrees(a.mean, b.mean, relative: 1e-13, absolute: 0), "\(context): mean \(a.mean) vs \(b.mean)")
                #expect(Accuracy.agrees(a.variance, b.variance, relative: 1e-12, absolute: 1e-14), "\(context): variance \(a.variance) vs \(b.variance)")
            }
            for scale in DifferenceScale.allCases {
                let r = CUPED.welch(ratio, alpha: 0.05, scale: scale), m = CUPED.welch(mean, alpha: 0.05, scale: scale)
                for (a, b) in [(r.difference, m.difference), (r.standardError, m.standardError), (r.pValue, m.pValue),
                               (r.interval.lower, m.interval.lower), (r.interval.upper, m.interval.upper)] {
                    #expect(Accuracy.agrees(a, b, relative: 1e-10, absolute: 1e-14), "\(context) \(scale): \(a) vs \(b)")
                }
            }
        }
    }

    @Test("the adjusted 95% interval covers the true difference of ratios about 95% of the time")
    func coverage() {
        var rng = SplitMix64(seed: 20261124)
        let experiments = 1000, truth = 0.05
        var covered = 0, coveredUnadjusted = 0
        var widthRatio = 0.0
        for _ in 0..<experiments {
            let control = ratioArm(&rng, users: 300, ratio: 0.7, rho: 0.8)
            let treatment = ratioArm(&rng, users: 300, ratio: 0.7 + truth, rho: 0.8)
            let (adjustment, test) = RatioCUPED.test(control: control, treatment: treatment, alpha: 0.05, scale: .absolute)
            if test.interval.lower <= truth && truth <= test.interval.upper { covered += 1 }
            let plain = TTest.welch(control: adjustment.unadjustedControl, treatment: adjustment.unadjustedTreatment, alpha: 0.05)
            if plain.interval.lower <= truth && truth <= plain.interval.upper { coveredUnadjusted += 1 }
            widthRatio += test.standardError / plain.standardError / Double(experiments)
        }
        if ProcessInfo.processInfo.environment["BAKEOFF_STATS_REPORT"] != nil {
            print("[coverage] RatioCUPED 95% interval: adjusted \(covered) / \(experiments), unadjusted \(coveredUnadjusted) / \(experiments), standard-error ratio \(widthRatio)")
        }
        // Binomial(1000, 0.95) has standard deviation 6.9: about three either side.
        #expect((930...970).contains(covered), "adjusted coverage \(covered) / \(experiments)")
        #expect((930...970).contains(coveredUnadjusted), "unadjusted coverage \(coveredUnadjusted) / \(experiments)")
        // The interval narrows by about sqrt(1 - rho^2) = 0.6.
        #expect(abs(widthRatio - 0.6) < 0.02, "mean standard-error ratio \(widthRatio)")
    }

    @Test("variance reduction is about rho^2 for correlated ratio data", arguments: [0.3, 0.6, 0.9, -0.5])
    func varianceReduction(rho: Double) {
        var rng = SplitMix64(seed: 11 &+ UInt64(bitPattern: Int64(rho * 1000)))
        let control = ratioArm(&rng, users: 100_000, ratio: 0.7, rho: rho)
        let treatment = ratioArm(&rng, users: 100_000, ratio: 0.72, rho: rho)
        let adjustment = RatioCUPED.adjust(control: control, treatment: treatment)
        for reduction in [adjustment.controlVarianceReduction, adjustment.treatmentVarianceReduction, adjustment.varianceReduction] {
            #expect(abs(reduction - rho * rho) < 0.01, "rho \(rho): reduction \(reduction)")
        }
        // theta = cov(u, v) / var(v) with u = 3e / mean(d), v = 2f / mean(dp) and mean(d) = mean(dp) = 3.
        #expect(abs(adjustment.theta - 1.5 * rho) < 0.02, "theta \(adjustment.theta) for rho \(rho)")
    }

    @Test("degenerate inputs give theta 0 and finite estimates, not NaN")
    func degenerate() {
        let empty = RatioCUPEDMoments()
        #expect(RatioCUPED.theta(control: empty, treatment: empty) == 0)
        #expect(empty.postPreCovariance == 0)
        #expect(empty.adjusted(theta: 2) == GroupEstimate(mean: 0, variance: 0, n: 0))
        var one = RatioCUPEDMoments()
        one.add(numerator: 1, denominator: 2, preNumerator: 3, preDenominator: 4)
        #expect(RatioCUPED.theta(control: one, treatment: empty) == 0)
        #expect(RatioCUPED.adjust(control: one, treatment: one) == RatioCUPED.adjust(control: one, treatment: one))  // NaN would differ
        // Users with units but no pre data in one arm: theta 0, so neither arm is shifted.
        var rng = SplitMix64(seed: 3)
        let control = ratioArm(&rng, users: 50, ratio: 0.7, rho: 0.9)
        var noPre = RatioCUPEDMoments()
        for _ in 0..<50 { noPre.add(numerator: 2, denominator: 3, preNumerator: 0, preDenominator: 0) }
        let adjustment = RatioCUPED.adjust(control: control, treatment: noPre)
        #expect(adjustment.theta == 0)
        #expect(adjustment.control == adjustment.unadjustedControl)
        for value in [adjustment.control.mean, adjustment.control.variance, adjustment.treatment.mean, adjustment.treatment.variance] {
            #expect(value.isFinite)
        }
        // A zero post denominator (no units anywhere in an arm): theta 0, mean 0 as gbstats RatioStatistic.
        var noUnits = RatioCUPEDMoments()
        for _ in 0..<5 { noUnits.add(numerator: 0, denominator: 0, preNumerator: 1, preDenominator: 2) }
        let zero = RatioCUPED.adjust(control: noUnits, treatment: control)
        #expect(zero.theta == 0)
        #expect(zero.control == GroupEstimate(mean: 0, variance: 0, n: 5))
        // Constant pre ratio in every user: var(v) is rounding noise, theta 0.
        var constant = RatioCUPEDMoments(), constant2 = RatioCUPEDMoments()
        for k in 1...40 {
            let dp = Double(k % 4 + 1)
            constant.add(numerator: Double(k % 3), denominator: 2, preNumerator: 0.1 * dp, preDenominator: dp)
            constant2.add(numerator: Double(k % 5), denominator: 3, preNumerator: 0.1 * dp, preDenominator: dp)
        }
        #expect(RatioCUPED.theta(control: constant, treatment: constant2) == 0)
    }
}
