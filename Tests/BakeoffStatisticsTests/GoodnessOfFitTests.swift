import Testing
import BakeoffStatistics

private struct GoodnessOfFitFixture: Decodable {
    struct Case: Decodable {
        let observed, proportions: [Double]
        let statistic, pvalue, df, gbstatsP: Double
    }
    struct GbstatsOnly: Decodable {
        let observed, proportions: [Double]
        let gbstatsP: Double
    }
    let cases: [Case]
    let gbstatsOnly: [GbstatsOnly]
}

private let fixture: GoodnessOfFitFixture = Fixture.load("goodness_of_fit")

@Suite("Chi-square goodness of fit (sample ratio mismatch)")
struct GoodnessOfFitTests {
    @Test("matches scipy.stats.chisquare and gbstats check_srm")
    func references() {
        var tally = ErrorTally("ChiSquareTest.goodnessOfFit")
        for c in fixture.cases {
            let result = ChiSquareTest.goodnessOfFit(observed: c.observed, expectedProportions: c.proportions)
            let context = "\(c.observed) vs \(c.proportions)"
            tally.check(result.statistic, c.statistic, "statistic \(context)")
            tally.check(result.pValue, c.pvalue, "p (scipy) \(context)")
            tally.check(result.pValue, c.gbstatsP, "p (gbstats) \(context)")
            #expect(result.degreesOfFreedom == c.df)
        }
        for c in fixture.gbstatsOnly {
            let result = ChiSquareTest.goodnessOfFit(observed: c.observed, expectedProportions: c.proportions)
            tally.check(result.pValue, c.gbstatsP, "p (gbstats) \(c.observed) vs \(c.proportions)")
        }
        tally.report()
    }

    @Test("proportions need not be normalized")
    func normalization() {
        let a = ChiSquareTest.goodnessOfFit(observed: [520, 480], expectedProportions: [0.5, 0.5])
        let b = ChiSquareTest.goodnessOfFit(observed: [520, 480], expectedProportions: [1, 1])
        #expect(a == b)
        #expect(Accuracy.agrees(a.statistic, 1.6, relative: 1e-15, absolute: 0))
    }

    @Test("malformed input gives NaN, not a trap")
    func malformed() {
        #expect(ChiSquareTest.goodnessOfFit(observed: [1, 2], expectedProportions: [1]).pValue.isNaN)
        #expect(ChiSquareTest.goodnessOfFit(observed: [5], expectedProportions: [1]).pValue.isNaN)
        #expect(ChiSquareTest.goodnessOfFit(observed: [], expectedProportions: []).pValue.isNaN)
    }
}
