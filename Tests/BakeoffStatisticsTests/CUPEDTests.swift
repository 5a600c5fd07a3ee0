import Foundation
import Testing
import BakeoffStatistics

private struct CUPEDFixture: Decodable {
    struct Sums: Decodable { let n, sum, sumSquares: Double }
    struct Arm: Decodable {
        let n: Double
        let post, pre: Sums
        let sumOfProducts: Double
    }
    struct Result: Decodable {
        let alpha: Double
        let differenceType: String
        let pointEstimate, ciLow, ciHigh, pValue, dof, standardError: Double
        let controlMean, controlVariance, treatmentMean, treatmentVariance: Double
    }
    struct Case: Decodable {
        let label: String
        let rho: Double
        let control, treatment: Arm
        let controlUsers, treatmentUsers: [[Double]]?
        let theta: Double
        let results: [Result]
    }
    let generator: String
    let cases: [Case]
}

private let fixture: CUPEDFixture = Fixture.load("gbstats_cuped")

private extension CUPEDMoments {
    init(_ arm: CUPEDFixture.Arm) {
        self.init(
            n: arm.n, post: SampleMoments(n: arm.post.n, sum: arm.post.sum, sumOfSquares: arm.post.sumSquares),
            pre: SampleMoments(n: arm.pre.n, sum: arm.pre.sum, sumOfSquares: arm.pre.sumSquares),
            sumOfProducts: arm.sumOfProducts)
    }
}

/// SplitMix64 with Box–Muller normals: a fixed-seed generator for the property tests.
private struct SeededNormals {
    var state: UInt64

    mutating func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Double(z >> 11) + 0.5) * 0x1p-53
    }

    mutating func normal() -> Double {
        (-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform())
    }

    /// One user's (y, x) with unit variances, correlation rho and the given means.
    mutating func pair(rho: Double, meanY: Double, meanX: Double) -> (y: Double, x: Double) {
        let x = normal(), e = normal()
        return (meanY + rho * x + (1 - rho * rho).squareRoot() * e, meanX + x)
    }
}

@Suite("CUPED against gbstats 0.8.0 RegressionAdjustedStatistic")
struct CUPEDTests {
    @Test("pooled theta and adjusted estimates match compute_theta and RegressionAdjustedStatistic")
    func adjustedEstimates() {
        var tally = ErrorTally("CUPED theta/estimates vs gbstats")
        for c in fixture.cases {
            let adjustment = CUPED.adjust(control: CUPEDMoments(c.control), treatment: CUPEDMoments(c.treatment))
            // theta is a ratio of near-cancelling sums when rho = 0: compare it on the scale of its noise.
            tally.check(adjustment.theta, c.theta, "\(c.label) theta", absolute: 1e-12)
            let r = c.results[0]
            tally.check(adjustment.control.mean, r.controlMean, "\(c.label) control mean")
            tally.check(adjustment.control.variance, r.controlVariance, "\(c.label) control variance")
            tally.check(adjustment.treatment.mean, r.treatmentMean, "\(c.label) treatment mean")
            tally.check(adjustment.treatment.variance, r.treatmentVariance, "\(c.label) treatment variance")
        }
        tally.report()
    }

    @Test("Welch on the adjusted estimates matches TwoSidedTTest, relative and absolute")
    func twoSidedTTest() {
        var tally = ErrorTally("CUPED.welch vs gbstats TwoSidedTTest")
        var absoluteTally = ErrorTally("TTest.welch on CUPED estimates vs gbstats (absolute)")
        for c in fixture.cases {
            let control = CUPEDMoments(c.control), treatment = CUPEDMoments(c.treatment)
            for r in c.results {
                let scale = DifferenceScale(rawValue: r.differenceType)!
                let (adjustment, result) = CUPED.test(control: control, treatment: treatment, alpha: r.alpha, scale: scale)
                let context = "\(c.label) alpha \(r.alpha) \(r.differenceType)"
                tally.check(result.difference, r.pointEstimate, "point estimate \(context)")
                tally.check(result.standardError, r.standardError, "se \(context)")
                tally.check(result.interval.lower, r.ciLow, "ci low \(context)")
                tally.check(result.interval.upper, r.ciHigh, "ci high \(context)")
                tally.check(result.pValue, r.pValue, "p \(context)")
                tally.check(result.degreesOfFreedom, r.dof, "dof \(context)")
                if scale == .absolute {
                    // The existing Welch test on the adjusted GroupEstimates is the same test.
                    let plain = TTest.welch(control: adjustment.control, treatment: adjustment.treatment, alpha: r.alpha)
                    absoluteTally.check(plain.difference, r.pointEstimate, "point estimate \(context)")
                    absoluteTally.check(plain.interval.lower, r.ciLow, "ci low \(context)")
                    absoluteTally.check(plain.interval.upper, r.ciHigh, "ci high \(context)")
                    absoluteTally.check(plain.pValue, r.pValue, "p \(context)")
                }
            }
        }
        tally.report()
        absoluteTally.report()
    }

    @Test("add accumulates exactly the sums gbstats was given")
    func accumulation() {
        var checked = 0
        for c in fixture.cases {
            guard let controlUsers = c.controlUsers, let treatmentUsers = c.treatmentUsers else { continue }
            for (users, arm) in [(controlUsers, c.control), (treatmentUsers, c.treatment)] {
                var moments = CUPEDMoments()
                for user in users { moments.add(post: user[0], pre: user[1]) }
                let expected = CUPEDMoments(arm)
                #expect(moments.n == expected.n)
                for (a, b) in [(moments.post.sum, expected.post.sum), (moments.post.sumOfSquares, expected.post.sumOfSquares),
                               (moments.pre.sum, expected.pre.sum), (moments.pre.sumOfSquares, expected.pre.sumOfSquares),
                               (moments.sumOfProducts, expected.sumOfProducts)] {
                    // numpy sums pairwise, Swift left to right.
                    #expect(Accuracy.agrees(a, b, relative: 1e-13, absolute: 0), "\(c.label): \(a) vs \(b)")
                }
            }
            checked += 1
        }
        #expect(checked == 2)
        var merged = CUPEDMoments()
        merged.add(post: 1, pre: 2)
        var other = CUPEDMoments()
        other.add(post: 3, pre: 5)
        merged += other
        #expect(merged == CUPEDMoments(
            n: 2, post: SampleMoments(n: 2, sum: 4, sumOfSquares: 10), pre: SampleMoments(n: 2, sum: 7, sumOfSquares: 29),
            sumOfProducts: 17))
        #expect(merged.covariance == 3)  // (17 - 4 * 7 / 2) / 1
    }

    @Test("uncorrelated covariate: theta 0 and the unadjusted test, exactly")
    func zeroCorrelationExact() {
        // Each post value appears once with x = +1 and once with x = -1: sum x = 0 = sum x y.
        var control = CUPEDMoments(), treatment = CUPEDMoments()
        for (i, y) in [3.0, 5, 4, 8, 6, 2, 7, 5].enumerated() {
            control.add(post: y, pre: 1)
            control.add(post: y, pre: -1)
            treatment.add(post: y + 0.5 * Double(i % 3), pre: 1)
            treatment.add(post: y + 0.5 * Double(i % 3), pre: -1)
        }
        let adjustment = CUPED.adjust(control: control, treatment: treatment)
        #expect(adjustment.theta == 0)
        #expect(adjustment.control == adjustment.unadjustedControl)
        #expect(adjustment.treatment == adjustment.unadjustedTreatment)
        #expect(adjustment.varianceReduction == 0)
        let adjusted = CUPED.welch(adjustment, alpha: 0.05, scale: .absolute)
        let plain = TTest.welch(control: control.unadjusted, treatment: treatment.unadjusted, alpha: 0.05)
        #expect(adjusted == plain)
    }

    @Test("random uncorrelated covariate: theta near 0, result near the unadjusted test")
    func zeroCorrelationRandom() {
        var rng = SeededNormals(state: 20260416)
        var control = CUPEDMoments(), treatment = CUPEDMoments()
        for _ in 0..<100_000 {
            let c = rng.pair(rho: 0, meanY: 10, meanX: 3)
            control.add(post: c.y, pre: c.x)
            let t = rng.pair(rho: 0, meanY: 10.01, meanX: 3)
            treatment.add(post: t.y, pre: t.x)
        }
        let adjustment = CUPED.adjust(control: control, treatment: treatment)
        #expect(abs(adjustment.theta) < 0.02)  // about 5 standard errors of 1 / sqrt(2e5)
        #expect(abs(adjustment.varianceReduction) < 1e-3)
        for scale in DifferenceScale.allCases {
            let adjusted = CUPED.welch(adjustment, alpha: 0.05, scale: scale)
            let plain = CUPED.welch(
                CUPEDAdjustment(
                    theta: 0, control: control.unadjusted, treatment: treatment.unadjusted,
                    unadjustedControl: control.unadjusted, unadjustedTreatment: treatment.unadjusted),
                alpha: 0.05, scale: scale)
            #expect(abs(adjusted.standardError / plain.standardError - 1) < 1e-3)
            #expect(abs(adjusted.difference - plain.difference) < 0.2 * plain.standardError)
        }
    }

    @Test("variance reduction is about rho^2 for large n", arguments: [0.3, 0.5, 0.9, -0.7])
    func varianceReductionRhoSquared(rho: Double) {
        var rng = SeededNormals(state: 7 &+ UInt64(bitPattern: Int64(rho * 1000)))
        var control = CUPEDMoments(), treatment = CUPEDMoments()
        for _ in 0..<100_000 {
            let c = rng.pair(rho: rho, meanY: 5, meanX: 2)
            control.add(post: c.y, pre: c.x)
            let t = rng.pair(rho: rho, meanY: 5.02, meanX: 2)
            treatment.add(post: t.y, pre: t.x)
        }
        let adjustment = CUPED.adjust(control: control, treatment: treatment)
        #expect(abs(adjustment.theta - rho) < 0.02)
        for reduction in [adjustment.controlVarianceReduction, adjustment.treatmentVarianceReduction, adjustment.varianceReduction] {
            #expect(abs(reduction - rho * rho) < 0.01, "rho \(rho): reduction \(reduction)")
        }
        // The standard error shrinks by sqrt(1 - rho^2).
        let adjusted = CUPED.welch(adjustment, alpha: 0.05, scale: .absolute)
        let plain = TTest.welch(control: control.unadjusted, treatment: treatment.unadjusted, alpha: 0.05)
        #expect(abs(adjusted.standardError / plain.standardError - (1 - rho * rho).squareRoot()) < 0.01)
    }

    @Test("fixture variance reductions track rho^2 for the largest groups")
    func fixtureVarianceReduction() {
        // With lift 0 the between-arm term of the pooled theta vanishes; the arms' y spreads differ
        // by up to 25%, so one pooled theta is slightly off each arm's own optimum.
        for c in fixture.cases where c.control.n >= 100_000 && c.label.hasSuffix("lift=0.0") {
            let adjustment = CUPED.adjust(control: CUPEDMoments(c.control), treatment: CUPEDMoments(c.treatment))
            #expect(abs(adjustment.controlVarianceReduction - c.rho * c.rho) < 0.02, "\(c.label)")
            #expect(abs(adjustment.treatmentVarianceReduction - c.rho * c.rho) < 0.02, "\(c.label)")
        }
    }

    @Test("degenerate inputs give NaN or zero, not a trap")
    func degenerate() {
        let empty = CUPEDMoments()
        #expect(CUPED.theta(control: empty, treatment: empty) == 0)
        #expect(empty.covariance == 0)
        #expect(empty.adjusted(theta: 2).variance == 0)
        var constantPre = CUPEDMoments()
        for y in [1.0, 2, 3] { constantPre.add(post: y, pre: 4) }
        #expect(CUPED.theta(control: constantPre, treatment: constantPre) == 0)
        _ = CUPED.test(control: empty, treatment: empty, alpha: 0.05, scale: .relative)
        _ = CUPED.test(control: constantPre, treatment: empty, alpha: 0.05, scale: .absolute)
    }
}
