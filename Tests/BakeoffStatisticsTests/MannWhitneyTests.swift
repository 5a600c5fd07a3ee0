import Foundation
import Testing
import BakeoffStatistics

private struct MannWhitneyFixture: Decodable {
    struct Result: Decodable {
        let alternative: String
        let continuity: Bool
        let u: Double
        let p: Double?
    }
    struct Case: Decodable {
        let label: String
        let x, y: [Double]
        let results: [Result]
        let xCounts, yCounts: [Int]?
    }
    let cases: [Case]
}

private let mannWhitneyFixture: MannWhitneyFixture = Fixture.load("mann_whitney")

@Suite("MannWhitney")
struct MannWhitneyTests {
    @Test("Raw data: U and p equal scipy mannwhitneyu(method='asymptotic')")
    func rawAgainstScipy() {
        var tally = ErrorTally("MannWhitney raw vs scipy")
        for c in mannWhitneyFixture.cases {
            for r in c.results {
                let alternative = Alternative(rawValue: r.alternative == "greater" ? "larger" : r.alternative == "less" ? "smaller" : r.alternative)!
                let result = MannWhitney.test(c.x, c.y, alternative: alternative, continuity: r.continuity)
                let context = "\(c.label) \(r.alternative) continuity \(r.continuity)"
                #expect(result.u == r.u, "U \(context): got \(result.u), expected \(r.u)")
                if let p = r.p { tally.check(result.pValue, p, "p \(context)") } else {
                    #expect(result.pValue.isNaN, "p \(context): got \(result.pValue), expected NaN")
                }
                #expect(result.probabilityOfSuperiority == r.u / (Double(c.x.count) * Double(c.y.count)))
                #expect(result.n1 == Double(c.x.count) && result.n2 == Double(c.y.count))
            }
        }
        tally.report()
    }

    @Test("Counts per level give exactly the raw-data result")
    func countsIdenticalToRaw() {
        var compared = 0
        for c in mannWhitneyFixture.cases {
            guard let xCounts = c.xCounts, let yCounts = c.yCounts else { continue }
            for alternative in [Alternative.twoSided, .larger, .smaller] {
                for continuity in [true, false] {
                    let raw = MannWhitney.test(c.x, c.y, alternative: alternative, continuity: continuity)
                    let counted = MannWhitney.test(xCounts: xCounts, yCounts: yCounts, alternative: alternative, continuity: continuity)
                    #expect(raw.u == counted.u && raw.n1 == counted.n1 && raw.n2 == counted.n2, "\(c.label)")
                    #expect(raw.pValue == counted.pValue || (raw.pValue.isNaN && counted.pValue.isNaN), "\(c.label)")
                    #expect(raw.z == counted.z || (raw.z.isNaN && counted.z.isNaN), "\(c.label)")
                    compared += 1
                }
            }
        }
        #expect(compared >= 90)
    }

    @Test("Empty levels, empty samples, NaN data")
    func edges() {
        // Empty levels anywhere do not change anything.
        let a = MannWhitney.test(xCounts: [0, 3, 0, 5, 2], yCounts: [0, 4, 0, 4, 1], alternative: .twoSided)
        let b = MannWhitney.test(xCounts: [3, 5, 2], yCounts: [4, 4, 1], alternative: .twoSided)
        #expect(a == b)
        let empty = MannWhitney.test([], [1, 2], alternative: .twoSided)
        #expect(empty.pValue.isNaN && empty.u.isNaN)
        let nan = MannWhitney.test([1, .nan], [1, 2], alternative: .larger)
        #expect(nan.pValue.isNaN)
    }

    @Test("Probability of superiority: complete separation and symmetry")
    func superiority() {
        let r = MannWhitney.test([6, 7, 8, 9], [1, 2, 3], alternative: .larger)
        #expect(r.probabilityOfSuperiority == 1)
        let s = MannWhitney.test([1, 2, 3], [6, 7, 8, 9], alternative: .smaller)
        #expect(s.probabilityOfSuperiority == 0)
        #expect(r.pValue == s.pValue)
        let tie = MannWhitney.test(xCounts: [1, 1], yCounts: [1, 1], alternative: .twoSided)
        #expect(tie.probabilityOfSuperiority == 0.5)
    }
}
