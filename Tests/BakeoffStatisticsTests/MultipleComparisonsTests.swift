import Foundation
import Testing
import BakeoffStatistics

private struct MultipleComparisonsFixture: Decodable {
    struct Case: Decodable {
        let label: String
        let p: [Double?]
        let holm: [Double?]
        let fdrBh: [Double?]
    }
    let cases: [Case]
}

private let multipleComparisonsFixture: MultipleComparisonsFixture = Fixture.load("multiple_comparisons")

@Suite("MultipleComparisons")
struct MultipleComparisonsTests {
    @Test("Adjusted p-values equal statsmodels multipletests", arguments: [Correction.holm, .benjaminiHochberg])
    func againstStatsmodels(correction: Correction) {
        var tally = ErrorTally("MultipleComparisons \(correction) vs statsmodels")
        for c in multipleComparisonsFixture.cases {
            let expected = correction == .holm ? c.holm : c.fdrBh
            let actual = MultipleComparisons.adjustedPValues(c.p, correction: correction)
            #expect(actual.count == expected.count, "\(c.label)")
            for (i, (a, e)) in zip(actual, expected).enumerated() {
                guard let e else {
                    #expect(a == nil, "\(c.label) [\(i)]: expected nil, got \(String(describing: a))")
                    continue
                }
                guard let a else {
                    Issue.record("\(c.label) [\(i)]: got nil, expected \(e)")
                    continue
                }
                tally.check(a, e, "\(c.label) [\(i)]")
            }
        }
        tally.report()
    }

    @Test("Holm and BH by hand: ties, p = 1, n = 1, unsorted, NaN")
    func byHand() {
        func adjust(_ p: [Double], _ correction: Correction) -> [Double] {
            MultipleComparisons.adjustedPValues(p, correction: correction)
        }
        #expect(adjust([0.03], .holm) == [0.03])
        #expect(adjust([0.03], .benjaminiHochberg) == [0.03])
        #expect(adjust([0.04, 0.01], .holm) == [0.04, 0.02])
        #expect(adjust([0.04, 0.01], .benjaminiHochberg) == [0.04, 0.02])
        #expect(adjust([0.5, 0.9, 1], .holm) == [1, 1, 1])
        #expect(adjust([0.02, 0.02, 0.02], .holm) == [0.06, 0.06, 0.06])
        #expect(adjust([0.02, 0.02, 0.02], .benjaminiHochberg) == [0.02, 0.02, 0.02])
        let withNaN = adjust([0.01, .nan, 0.02], .holm)
        #expect(withNaN[0] == 0.02 && withNaN[1].isNaN && withNaN[2] == 0.02)
        let missing: [Double?] = [nil, 0.01]
        let expectedMissing: [Double?] = [nil, 0.01]
        #expect(MultipleComparisons.adjustedPValues(missing, correction: .holm) == expectedMissing)
        let nothing = MultipleComparisons.adjustedPValues([Double?](), correction: .holm)
        #expect(nothing.count == 0)
        let mixed: [Double?] = [0.3, nil, 0.01]
        #expect(MultipleComparisons.adjustedPValues(mixed, correction: .none) == mixed)
    }

    @Test("Per-test levels: Holm thresholds, stop, ties; BY level with R = 0 -> 1")
    func perTestLevels() {
        // Holm at alpha 0.05, m = 4: sorted 0.001 (<0.0125), 0.01 (<0.05/3), 0.04 (>= 0.025: stop), 0.5.
        let family: [Double?] = [0.04, 0.001, 0.5, 0.01]
        let holm = MultipleComparisons.perTestAlphas(family, correction: .holm, alpha: 0.05)
        let expectedHolm: [Double?] = [0.025, 0.0125, 0.025, 0.05 / 3]
        #expect(holm == expectedHolm)
        // Ties share the first rank's threshold.
        let ties = MultipleComparisons.perTestAlphas([0.001, 0.001, 0.3], correction: .holm, alpha: 0.05)
        let expectedTies: [Double?] = [0.05 / 3, 0.05 / 3, 0.05]
        #expect(ties == expectedTies)
        // BH: 0.001 and 0.01 rejected at 0.05 (0.01 * 4/2 = 0.02); 0.04 * 4/3 and 0.5 are not, so R = 2.
        let bh = MultipleComparisons.perTestAlphas(family, correction: .benjaminiHochberg, alpha: 0.05)
        let expectedBH: [Double?] = [0.025, 0.025, 0.025, 0.025]
        #expect(bh == expectedBH)
        let none = MultipleComparisons.perTestAlphas([0.3, 0.9], correction: .benjaminiHochberg, alpha: 0.05)
        let expectedNone: [Double?] = [0.025, 0.025]
        #expect(none == expectedNone)
    }

    @Test("Correction.none reproduces TTest intervals")
    func noneMatchesTTest() {
        let test = TTest.welch(
            control: GroupEstimate(mean: 1.0, variance: 2.0, n: 40), treatment: GroupEstimate(mean: 1.6, variance: 3.0, n: 35),
            alpha: 0.05)
        let adjusted = MultipleComparisons.adjust([Comparison(test)], correction: .none, alpha: 0.05)[0]!
        #expect(adjusted.pValue == test.pValue)
        #expect(adjusted.interval == test.interval)
        #expect(adjusted.criticalValue == test.criticalValue)
    }

    @Test("NaN comparisons are left out of the family")
    func nanComparisons() {
        let comparisons = [
            Comparison(estimate: 1, standardError: 0.4, degreesOfFreedom: nil),
            Comparison(estimate: .nan, standardError: 0.4, degreesOfFreedom: 10),
            Comparison(estimate: 0, standardError: 0, degreesOfFreedom: nil),
            Comparison(estimate: 0.1, standardError: 0.4, degreesOfFreedom: 30),
        ]
        let result = MultipleComparisons.adjust(comparisons, correction: .holm, alpha: 0.05)
        #expect(result[1] == nil && result[2] == nil)
        let p0 = comparisons[0].pValue, p3 = comparisons[3].pValue
        #expect(result[0]?.adjustedPValue == p0 * 2)
        #expect(result[3]?.adjustedPValue == min(1, max(p0 * 2, p3)))
    }

    @Test("Adjusted intervals exclude 0 exactly when adjusted p < alpha (random families)",
          arguments: [Correction.none, .holm, .benjaminiHochberg])
    func intervalsAgreeWithPValues(correction: Correction) {
        // A fixed seed per correction (hashValue is randomized per process, so not used).
        var rng = SplitMix64(seed: 0xBAC0FF ^ UInt64(Correction.allCases.firstIndex(of: correction)!))
        var checked = 0, rejected = 0, nearBoundary = 0
        for family in 0..<3000 {
            let m = Int.random(in: 1...12, using: &rng)
            let alpha = [0.01, 0.05, 0.1, 0.2][family % 4]
            var comparisons: [Comparison] = []
            for _ in 0..<m {
                let se = Double.random(in: 0.01...5, using: &rng)
                // Statistics around the rejection boundaries, a few exact ties.
                let z = Bool.random(using: &rng) && !comparisons.isEmpty
                    ? comparisons.last!.statistic
                    : Double.random(in: -5...5, using: &rng)
                let df: Double? = Bool.random(using: &rng) ? nil : Double.random(in: 1...200, using: &rng).rounded()
                comparisons.append(Comparison(estimate: z * se, standardError: se, degreesOfFreedom: df))
            }
            let results = MultipleComparisons.adjust(comparisons, correction: correction, alpha: alpha)
            for (c, r) in zip(comparisons, results) {
                guard let r else { Issue.record("unexpected nil for \(c)"); continue }
                // Within rounding of the boundary the two verdicts may legitimately differ.
                if abs(r.adjustedPValue - alpha) <= 1e-9 * alpha { nearBoundary += 1; continue }
                let excludesZero = r.interval.lower > 0 || r.interval.upper < 0
                #expect(excludesZero == (r.adjustedPValue < alpha),
                        "\(correction) alpha \(alpha): \(c) -> \(r)")
                #expect(r.rejected == (r.adjustedPValue < alpha))
                #expect(r.perTestAlpha > 0 && r.perTestAlpha <= alpha)
                #expect(r.adjustedPValue >= r.pValue)
                checked += 1
                if r.rejected { rejected += 1 }
            }
        }
        #expect(checked > 15_000 && rejected > 1_000, "checked \(checked), rejected \(rejected)")
        #expect(nearBoundary < 10)
    }
}
