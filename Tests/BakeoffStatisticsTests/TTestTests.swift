import Foundation
import Testing
import BakeoffStatistics

private struct TTestFixture: Decodable {
    struct Group: Decodable { let n, mean, variance: Double }
    struct Result: Decodable { let statistic, pvalue, df, ciLow, ciHigh: Double }
    struct Case: Decodable {
        let label: String
        let alpha: Double
        let control, treatment: Group
        let welch, student: Result
    }
    let cases: [Case]
}

private struct GbstatsFixture: Decodable {
    struct Sums: Decodable { let n, sum, sumSquares: Double }
    struct Ratio: Decodable {
        let n: Double
        let numerator, denominator: Sums
        let sumOfProducts, mean, variance, covariance: Double
    }
    struct RatioCase: Decodable {
        let label: String
        let alpha: Double
        let control, treatment: Ratio
        let pointEstimate, ciLow, ciHigh, pValue, dof: Double
    }
    struct Mean: Decodable { let n, sum, sumSquares, mean, variance: Double }
    struct MeanCase: Decodable {
        let label: String
        let alpha: Double
        let control, treatment: Mean
        let pointEstimate, ciLow, ciHigh, pValue, dof: Double
    }
    let ratioCases: [RatioCase]
    let meanCases: [MeanCase]
}

private let ttestFixture: TTestFixture = Fixture.load("ttest")
private let gbstatsFixture: GbstatsFixture = Fixture.load("gbstats_ttest")

private extension GroupEstimate {
    init(_ group: TTestFixture.Group) { self.init(mean: group.mean, variance: group.variance, n: group.n) }
}

private extension SampleMoments {
    init(_ sums: GbstatsFixture.Sums) { self.init(n: sums.n, sum: sums.sum, sumOfSquares: sums.sumSquares) }
}

private extension RatioMoments {
    init(_ ratio: GbstatsFixture.Ratio) {
        self.init(
            n: ratio.n, numerator: SampleMoments(ratio.numerator), denominator: SampleMoments(ratio.denominator),
            sumOfProducts: ratio.sumOfProducts)
    }
}

@Suite("t tests against scipy.stats.ttest_ind")
struct ScipyTTestTests {
    @Test("Welch (equal_var=False): statistic, p-value, df, confidence interval")
    func welch() {
        var tally = ErrorTally("TTest.welch vs scipy")
        for c in ttestFixture.cases {
            let result = TTest.welch(control: GroupEstimate(c.control), treatment: GroupEstimate(c.treatment), alpha: c.alpha)
            let context = "\(c.label) alpha \(c.alpha)"
            tally.check(result.statistic, c.welch.statistic, "statistic \(context)")
            tally.check(result.pValue, c.welch.pvalue, "p \(context)")
            tally.check(result.degreesOfFreedom, c.welch.df, "df \(context)")
            tally.check(result.interval.lower, c.welch.ciLow, "ci low \(context)")
            tally.check(result.interval.upper, c.welch.ciHigh, "ci high \(context)")
            tally.check(result.difference, c.treatment.mean - c.control.mean, "difference \(context)")
        }
        tally.report()
    }

    @Test("Student (pooled variance): statistic, p-value, df, confidence interval")
    func student() {
        var tally = ErrorTally("TTest.student vs scipy")
        for c in ttestFixture.cases {
            let result = TTest.student(control: GroupEstimate(c.control), treatment: GroupEstimate(c.treatment), alpha: c.alpha)
            let context = "\(c.label) alpha \(c.alpha)"
            tally.check(result.statistic, c.student.statistic, "statistic \(context)")
            tally.check(result.pValue, c.student.pvalue, "p \(context)")
            tally.check(result.degreesOfFreedom, c.student.df, "df \(context)")
            tally.check(result.interval.lower, c.student.ciLow, "ci low \(context)")
            tally.check(result.interval.upper, c.student.ciHigh, "ci high \(context)")
        }
        tally.report()
    }

    @Test("fields are consistent with each other", arguments: [0.01, 0.05, 0.2])
    func internalConsistency(alpha: Double) {
        let control = GroupEstimate(mean: 0.75, variance: 0.1875, n: 1200)
        let treatment = GroupEstimate(mean: 0.78, variance: 0.1716, n: 1100)
        for result in [TTest.welch(control: control, treatment: treatment, alpha: alpha),
                       TTest.student(control: control, treatment: treatment, alpha: alpha)] {
            #expect(Accuracy.agrees(result.statistic, result.difference / result.standardError, relative: 1e-15, absolute: 0))
            #expect(Accuracy.agrees(result.criticalValue, StudentT.quantile(1 - alpha / 2, df: result.degreesOfFreedom), relative: 1e-12, absolute: 0))
            #expect(Accuracy.agrees(result.interval.upper - result.interval.lower, 2 * result.criticalValue * result.standardError, relative: 1e-12, absolute: 0))
            // The interval excludes 0 exactly when p < alpha.
            #expect((result.interval.lower > 0 || result.interval.upper < 0) == (result.pValue < alpha))
        }
    }

    @Test("degenerate groups give NaN or infinity, not a trap")
    func degenerate() {
        let constant = GroupEstimate(mean: 1, variance: 0, n: 10)
        let result = TTest.welch(control: constant, treatment: constant, alpha: 0.05)
        #expect(result.pValue.isNaN)
        let single = GroupEstimate(mean: 2, variance: 0, n: 1)
        _ = TTest.welch(control: single, treatment: GroupEstimate(mean: 1, variance: 1, n: 5), alpha: 0.05)
        _ = TTest.student(control: single, treatment: single, alpha: 0.05)
        let zero = GroupEstimate(mean: 0, variance: 0, n: 0)
        _ = TTest.welch(control: zero, treatment: zero, alpha: 0.05)
    }
}

@Suite("Ratio and mean metrics against gbstats 0.8.0")
struct GbstatsTests {
    @Test("RatioMoments mean, covariance and delta-method variance match RatioStatistic")
    func ratioMoments() {
        var tally = ErrorTally("RatioMoments vs gbstats")
        for c in gbstatsFixture.ratioCases {
            for (name, group) in [("control", c.control), ("treatment", c.treatment)] {
                let moments = RatioMoments(group)
                tally.check(moments.mean, group.mean, "\(c.label) \(name) mean")
                tally.check(moments.covariance, group.covariance, "\(c.label) \(name) covariance")
                tally.check(moments.variance, group.variance, "\(c.label) \(name) variance")
            }
        }
        tally.report()
    }

    @Test("Welch on RatioMoments matches TwoSidedTTest(difference_type=absolute)")
    func ratioTTest() {
        var tally = ErrorTally("TTest.welch vs gbstats ratio")
        for c in gbstatsFixture.ratioCases {
            let control = RatioMoments(c.control), treatment = RatioMoments(c.treatment)
            let result = TTest.welch(
                control: GroupEstimate(mean: control.mean, variance: control.variance, n: control.n),
                treatment: GroupEstimate(mean: treatment.mean, variance: treatment.variance, n: treatment.n),
                alpha: c.alpha)
            let context = "\(c.label) alpha \(c.alpha)"
            tally.check(result.difference, c.pointEstimate, "point estimate \(context)")
            tally.check(result.interval.lower, c.ciLow, "ci low \(context)")
            tally.check(result.interval.upper, c.ciHigh, "ci high \(context)")
            tally.check(result.pValue, c.pValue, "p \(context)")
            tally.check(result.degreesOfFreedom, c.dof, "dof \(context)")
        }
        tally.report()
    }

    @Test("Welch on SampleMoments matches TwoSidedTTest on SampleMeanStatistic")
    func meanTTest() {
        var tally = ErrorTally("TTest.welch vs gbstats mean")
        for c in gbstatsFixture.meanCases {
            let control = SampleMoments(n: c.control.n, sum: c.control.sum, sumOfSquares: c.control.sumSquares)
            let treatment = SampleMoments(n: c.treatment.n, sum: c.treatment.sum, sumOfSquares: c.treatment.sumSquares)
            tally.check(control.mean, c.control.mean, "\(c.label) control mean")
            tally.check(control.variance, c.control.variance, "\(c.label) control variance")
            tally.check(treatment.variance, c.treatment.variance, "\(c.label) treatment variance")
            let result = TTest.welch(
                control: GroupEstimate(mean: control.mean, variance: control.variance, n: control.n),
                treatment: GroupEstimate(mean: treatment.mean, variance: treatment.variance, n: treatment.n),
                alpha: c.alpha)
            let context = "\(c.label) alpha \(c.alpha)"
            tally.check(result.difference, c.pointEstimate, "point estimate \(context)")
            tally.check(result.interval.lower, c.ciLow, "ci low \(context)")
            tally.check(result.interval.upper, c.ciHigh, "ci high \(context)")
            tally.check(result.pValue, c.pValue, "p \(context)")
            tally.check(result.degreesOfFreedom, c.dof, "dof \(context)")
        }
        tally.report()
    }

    @Test("add accumulates the sufficient statistics")
    func accumulation() {
        var moments = SampleMoments(n: 0, sum: 0, sumOfSquares: 0)
        for x in [2.0, 4, 4, 4, 5, 5, 7, 9] { moments.add(x) }
        #expect(moments == SampleMoments(n: 8, sum: 40, sumOfSquares: 232))
        #expect(moments.mean == 5)
        #expect(Accuracy.agrees(moments.variance, 32.0 / 7, relative: 1e-15, absolute: 0))

        var ratio = RatioMoments()
        let users: [(Double, Double)] = [(1, 3), (0, 1), (2, 2), (1, 4), (0, 2)]
        for (m, d) in users { ratio.add(numerator: m, denominator: d) }
        #expect(ratio.n == 5)
        #expect(ratio.numerator == SampleMoments(n: 5, sum: 4, sumOfSquares: 6))
        #expect(ratio.denominator == SampleMoments(n: 5, sum: 12, sumOfSquares: 34))
        #expect(ratio.sumOfProducts == 11)
        #expect(ratio.mean == 4.0 / 12)
        // cov = (11 - 4 * 12 / 5) / 4
        #expect(Accuracy.agrees(ratio.covariance, (11 - 48.0 / 5) / 4, relative: 1e-15, absolute: 0))
        let muM = 0.8, muD = 2.4
        let expected = ratio.numerator.variance / (muD * muD) - 2 * ratio.covariance * muM / (muD * muD * muD)
            + muM * muM * ratio.denominator.variance / (muD * muD * muD * muD)
        #expect(Accuracy.agrees(ratio.variance, expected, relative: 1e-14, absolute: 0))
    }

    @Test("degenerate moments follow gbstats")
    func degenerate() {
        #expect(SampleMoments(n: 0, sum: 0, sumOfSquares: 0).mean == 0)
        #expect(SampleMoments(n: 1, sum: 3, sumOfSquares: 9).variance == 0)
        var constant = SampleMoments(n: 0, sum: 0, sumOfSquares: 0)
        for _ in 0..<10 { constant.add(0.1) }
        #expect(constant.variance >= 0)
        #expect(RatioMoments().mean == 0)
        #expect(RatioMoments().variance == 0)
        #expect(RatioMoments().covariance == 0)
    }
}
