import BakeoffStatistics
import Testing

private struct PairedFixture: Decodable {
    struct Binomial: Decodable { var k: Int; var n: Int; var p: Double; var alternative: String; var pValue: Double }
    struct McNemar: Decodable { var onlyFirst: Int; var onlySecond: Int; var pValue: Double }
    var generator: String
    var binomial: [Binomial]
    var mcnemar: [McNemar]
}

@Suite("Exact binomial and McNemar tests against scipy and statsmodels")
struct PairedTestsTests {
    private static let fixture = Fixture.load("paired", as: PairedFixture.self)

    @Test func binomialTestMatchesScipyBinomtest() {
        #expect(Self.fixture.binomial.count > 500)
        for c in Self.fixture.binomial {
            let alternative = BinomialTest.Alternative(rawValue: c.alternative)!
            let got = BinomialTest.pValue(successes: c.k, trials: c.n, p: c.p, alternative: alternative)
            #expect(Accuracy.agrees(got, c.pValue), "binomtest(\(c.k), \(c.n), \(c.p), \(c.alternative)): \(got) vs scipy \(c.pValue)")
        }
    }

    @Test func mcNemarExactMatchesStatsmodels() {
        for c in Self.fixture.mcnemar {
            let got = McNemarTest.exactPValue(onlyFirst: c.onlyFirst, onlySecond: c.onlySecond)
            #expect(Accuracy.agrees(got, c.pValue), "mcnemar(\(c.onlyFirst), \(c.onlySecond)): \(got) vs statsmodels \(c.pValue)")
        }
    }

    @Test func probabilitiesOfAllOutcomesSumToOne() {
        for (n, p) in [(0, 0.5), (1, 0.3), (40, 0.5), (1000, 0.01), (100_000, 0.37)] {
            let total = (0...n).reduce(0.0) { $0 + BinomialTest.pmf($1, n, p) }
            #expect(abs(total - 1) < 1e-9, "n \(n), p \(p): \(total)")
        }
    }
}
