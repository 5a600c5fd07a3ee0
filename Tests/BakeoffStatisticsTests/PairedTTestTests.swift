import BakeoffStatistics
import Testing

private struct PairedTTestFixture: Decodable {
    struct Result: Decodable {
        var alpha: Double
        var alternative: String
        var statistic: Double
        var pValue: Double
        var lower: Double?
        var upper: Double?
    }
    struct Sample: Decodable {
        var name: String
        var differences: [Double]
        var mean: Double
        var standardError: Double
        var df: Double
        var results: [Result]
    }
    struct Related: Decodable {
        var variant: [Double]
        var control: [Double]
        var alpha: Double
        var alternative: String
        var statistic: Double
        var pValue: Double
        var df: Double
        var lower: Double?
        var upper: Double?
    }
    var oneSample: [Sample]
    var related: [Related]
}

private let fixture: PairedTTestFixture = Fixture.load("paired_ttest")

@Suite("Paired t test against scipy ttest_1samp / ttest_rel")
struct PairedTTestTests {
    @Test("mean, standard error, df, t, p-value and interval match scipy", arguments: ["two-sided", "larger", "smaller"])
    func matchesScipy(alternativeName: String) {
        let alternative = Alternative(rawValue: alternativeName)!
        var tally = ErrorTally("PairedTTest.test \(alternativeName)")
        for sample in fixture.oneSample {
            for r in sample.results where r.alternative == alternativeName {
                let got = PairedTTest.test(differences: sample.differences, alpha: r.alpha, alternative: alternative)
                let context = "\(sample.name), alpha \(r.alpha)"
                tally.check(got.meanDifference, sample.mean, context)
                tally.check(got.standardError, sample.standardError, context)
                tally.check(got.standardDeviation, sample.standardError * Double(sample.differences.count).squareRoot(), context)
                #expect(got.degreesOfFreedom == sample.df, "\(context)")
                #expect(got.count == sample.differences.count)
                tally.check(got.statistic, r.statistic, context)
                tally.check(got.pValue, r.pValue, context)
                tally.check(got.interval.lower, r.lower ?? -.infinity, context)
                tally.check(got.interval.upper, r.upper ?? .infinity, context)
            }
        }
        #expect(tally.count > 150)
        tally.report()
    }

    @Test("from paired arrays, as ttest_rel(variant, control)")
    func related() {
        var tally = ErrorTally("PairedTTest.test(variant:control:)")
        for r in fixture.related {
            let got = PairedTTest.test(variant: r.variant, control: r.control, alpha: r.alpha,
                                       alternative: Alternative(rawValue: r.alternative)!)
            tally.check(got.statistic, r.statistic, "n \(r.variant.count) \(r.alternative)")
            tally.check(got.pValue, r.pValue, "n \(r.variant.count) \(r.alternative)")
            tally.check(got.interval.lower, r.lower ?? -.infinity, "n \(r.variant.count) \(r.alternative)")
            tally.check(got.interval.upper, r.upper ?? .infinity, "n \(r.variant.count) \(r.alternative)")
            #expect(got.degreesOfFreedom == r.df)
        }
        tally.report()
    }

    @Test("the critical value is the t quantile the interval uses")
    func criticalValue() {
        let d = [0.3, -0.1, 0.8, 0.2, 0.5, -0.4, 0.9]
        let two = PairedTTest.test(differences: d, alpha: 0.05)
        #expect(Accuracy.agrees(two.criticalValue, -StudentT.quantile(0.025, df: 6), relative: 1e-15))
        #expect(Accuracy.agrees(two.interval.upper - two.meanDifference, two.criticalValue * two.standardError, relative: 1e-14))
        let one = PairedTTest.test(differences: d, alpha: 0.05, alternative: .larger)
        #expect(Accuracy.agrees(one.criticalValue, -StudentT.quantile(0.05, df: 6), relative: 1e-15))
        #expect(Accuracy.agrees(two.standardDeviation, two.standardError * 7.0.squareRoot(), relative: 1e-15))
    }

    @Test("fewer than two differences: nothing known, p = 1, the whole line")
    func tooFew() {
        for d in [[], [2.5]] {
            for alternative in [Alternative.twoSided, .larger, .smaller] {
                let r = PairedTTest.test(differences: d, alternative: alternative)
                #expect(r.count == d.count)
                #expect(r.meanDifference == (d.first ?? 0))
                #expect(r.standardDeviation == .infinity && r.standardError == .infinity && r.criticalValue == .infinity)
                #expect(r.degreesOfFreedom == 0 && r.statistic == 0 && r.pValue == 1)
                #expect(r.interval == ConfidenceInterval(lower: -.infinity, upper: .infinity))
            }
        }
    }

    @Test("all differences equal: a point interval; infinite t and p = 0 unless they are all 0")
    func constant() {
        // scipy: ttest_1samp([1, 1, 1]) gives t = inf, p = 0, interval [1, 1].
        let r = PairedTTest.test(differences: [1, 1, 1])
        #expect(r.statistic == .infinity && r.pValue == 0 && r.standardError == 0)
        #expect(r.interval == ConfidenceInterval(lower: 1, upper: 1))
        #expect(PairedTTest.test(differences: [1, 1, 1], alternative: .larger).pValue == 0)
        #expect(PairedTTest.test(differences: [1, 1, 1], alternative: .smaller).pValue == 1)
        let negative = PairedTTest.test(differences: [-0.5, -0.5], alternative: .smaller)
        #expect(negative.statistic == -.infinity && negative.pValue == 0)
        #expect(negative.interval == ConfidenceInterval(lower: -.infinity, upper: -0.5))
        // Equal values that do not average exactly (0.1 * 3 / 3) are still constant.
        let tenths = PairedTTest.test(differences: [0.1, 0.1, 0.1])
        #expect(tenths.meanDifference == 0.1 && tenths.standardDeviation == 0 && tenths.statistic == .infinity)
        // All zeros: no difference at all (scipy: NaN).
        let zeros = PairedTTest.test(differences: [0, 0, 0, 0])
        #expect(zeros.statistic == 0 && zeros.pValue == 1 && zeros.interval == ConfidenceInterval(lower: 0, upper: 0))
    }

    @Test("NaN differences give NaN")
    func nan() {
        let r = PairedTTest.test(differences: [1, .nan, 2])
        #expect(r.meanDifference.isNaN && r.pValue.isNaN && r.statistic.isNaN)
    }
}
