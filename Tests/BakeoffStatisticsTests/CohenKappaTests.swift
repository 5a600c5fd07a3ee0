import BakeoffStatistics
import Testing

private struct KappaFixture: Decodable {
    struct Case: Decodable {
        var table: [[Int]]
        var weights: String
        var kappa: Double
        var stdKappa: Double?
        var stdKappa0: Double?
        var kappaMax: Double
        var zValue: Double?
        var pvalueOneSided: Double?
        var pvalueTwoSided: Double?
        var kappaLow: [Double?]
        var kappaUpp: [Double?]
    }
    var generator: String
    /// statsmodels' one-sided alphas of `kappaLow` / `kappaUpp`.
    var alphas: [Double]
    var cases: [Case]
}

@Suite("Cohen's kappa against statsmodels cohens_kappa")
struct CohenKappaTests {
    private static let fixture = Fixture.load("kappa", as: KappaFixture.self)

    @Test func matchesStatsmodels() throws {
        #expect(Self.fixture.cases.count >= 500)
        var tally = ErrorTally("cohens_kappa")
        for c in Self.fixture.cases {
            let weights = try #require(CohenKappa.Weights(rawValue: c.weights))
            let context = "\(c.table) \(c.weights)"
            let k = try #require(CohenKappa(table: c.table, weights: weights), "\(context): undefined")
            tally.check(k.kappa, c.kappa, context)
            tally.check(k.maximum, c.kappaMax, context + " kappa_max")
            // statsmodels' nan standard errors are variances rounded below zero: exactly 0 here.
            if let s = c.stdKappa { tally.check(k.standardError, s, context + " std_kappa", absolute: 1e-9) } else { #expect(k.standardError < 1e-7, "\(context)") }
            if let s = c.stdKappa0 { tally.check(k.nullStandardError, s, context + " std_kappa0", absolute: 1e-9) } else { #expect(k.nullStandardError < 1e-7, "\(context)") }
            if let z = c.zValue, k.nullStandardError > 1e-6 {
                tally.check(try #require(k.zValue), z, context + " z")
                tally.check(try #require(k.pValue), try #require(c.pvalueTwoSided), context + " p", absolute: 1e-12)
                tally.check(try #require(k.pValueOneSided), try #require(c.pvalueOneSided), context + " p one-sided", absolute: 1e-12)
            }
            for (a, (low, high)) in zip(Self.fixture.alphas, zip(c.kappaLow, c.kappaUpp)) {
                guard let low, let high else { continue }
                // statsmodels' alpha is one-sided; ours two-sided.
                let interval = a == 0.025 ? (k.ciLow, k.ciHigh) : k.interval(alpha: 2 * a)
                tally.check(interval.0, low, context + " low at \(a)", absolute: 1e-9)
                tally.check(interval.1, high, context + " high at \(a)", absolute: 1e-9)
            }
        }
        tally.report()
    }

    @Test func aTextbookExample() throws {
        // Wikipedia: 50 proposals, 20 yes-yes, 15 no-no, 5 and 10 disagreements: kappa 0.4.
        let k = try #require(CohenKappa(table: [[20, 5], [10, 15]]))
        #expect(abs(k.kappa - 0.4) < 1e-15)
        #expect(k.observedAgreement == 0.7)
        #expect(abs(k.expectedAgreement - 0.5) < 1e-15)
        #expect(k.count == 50)
        #expect(k.ciLow < 0.4 && k.ciHigh > 0.4)
    }

    @Test(arguments: [
        [[0, 0], [0, 0]],          // no ratings
        [[7, 0], [0, 0]],          // both raters, one category: agreement is perfect but not beyond chance
        [[0, 0, 0], [0, 4, 0], [0, 0, 0]],
        [[3]],
    ])
    func undefinedWhenBothRatersUseOneCategory(_ table: [[Int]]) {
        for w in CohenKappa.Weights.allCases { #expect(CohenKappa(table: table, weights: w) == nil) }
    }

    @Test func definedWhenOnlyOneRaterUsesOneCategory() throws {
        let k = try #require(CohenKappa(table: [[0, 7], [0, 0]]))
        #expect(k.kappa == 0)
        let m = try #require(CohenKappa(table: [[5, 0], [3, 0]]))
        #expect(m.kappa == 0)
    }

    @Test func perfectAndOppositeAgreement() throws {
        let perfect = try #require(CohenKappa(first: [0, 1, 2, 2, 1, 0], second: [0, 1, 2, 2, 1, 0], categories: 3))
        #expect(perfect.kappa == 1)
        #expect(perfect.standardError == 0)
        let opposite = try #require(CohenKappa(table: [[0, 10], [10, 0]]))
        #expect(opposite.kappa == -1)
    }

    @Test func pairedRatingsMakeTheTable() {
        #expect(CohenKappa.table([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], categories: 3) == [[1, 1, 0], [0, 1, 0], [1, 0, 1]])
    }

    @Test func weightsMatterOnlyForThreeOrMoreCategories() throws {
        let t = [[20, 5], [10, 15]]
        let simple = try #require(CohenKappa(table: t)), linear = try #require(CohenKappa(table: t, weights: .linear))
        #expect(abs(simple.kappa - linear.kappa) < 1e-15)
        // Near misses count less with weights: a win mistaken for a tie is not a win mistaken for a loss.
        let near = [[10, 4, 0], [2, 10, 2], [0, 4, 10]]
        let plain = try #require(CohenKappa(table: near)), weighted = try #require(CohenKappa(table: near, weights: .quadratic))
        #expect(weighted.kappa > plain.kappa)
    }
}
