import BakeoffStatistics
import Foundation
import Testing

private struct QuantileFixture: Decodable {
    struct Summary: Decodable {
        let n: Double
        let users: Double
        let quantile: Double
        let lower: Double
        let upper: Double
        let belowSum: Double
        let belowSumSquares: Double
        let countSum: Double
        let countSumSquares: Double
        let belowCountSumProduct: Double
        let degenerate: Bool
        let variance: Double?
        let naiveVariance: Double?
    }
    struct Result: Decodable {
        let difference: Double
        let standardError: Double
        let statistic: Double
        let pValue: Double
        let lower: Double
        let upper: Double
        let criticalValue: Double
    }
    struct Tests: Decodable {
        let absolute: Result
        let relative: Result
        let naiveAbsolute: Result
    }
    struct Case: Decodable {
        let dataset: String
        let level: Double
        let controlSummary: Summary
        let treatmentSummary: Summary
        let tests5: Tests?
        let tests10: Tests?
        let controlUsers: [[Double]]?
        let treatmentUsers: [[Double]]?
    }
    let z: Double
    let cases: [Case]
}

private let fixture: QuantileFixture = Fixture.load("gbstats_quantile")

private func estimate(_ s: QuantileFixture.Summary, level: Double) -> QuantileEstimate {
    QuantileEstimate(
        level: level, n: s.n, users: s.users, quantile: s.quantile, lower: s.lower, upper: s.upper,
        belowSum: s.belowSum, belowSumSquares: s.belowSumSquares, countSum: s.countSum,
        countSumSquares: s.countSumSquares, belowCountSumProduct: s.belowCountSumProduct)
}

private func check(_ tally: inout ErrorTally, _ r: DifferenceTest, _ e: QuantileFixture.Result, _ context: String) {
    tally.check(r.difference, e.difference, "\(context) difference")
    tally.check(r.standardError, e.standardError, "\(context) se")
    tally.check(r.statistic, e.statistic, "\(context) statistic")
    tally.check(r.pValue, e.pValue, "\(context) p")
    tally.check(r.interval.lower, e.lower, "\(context) lower")
    tally.check(r.interval.upper, e.upper, "\(context) upper")
    tally.check(r.criticalValue, e.criticalValue, "\(context) critical")
    #expect(r.degreesOfFreedom == .infinity)
}

@Suite("Quantile test (Deng et al. 2018, gbstats quantile statistics)")
struct QuantileTestTests {
    @Test("the per-user summary reproduces the reference order statistics and cluster sums")
    func summaries() {
        // Wichura's AS 241 and scipy's ndtri differ by an ulp here; the ranks below still agree.
        #expect(abs(QuantileEstimate.z - fixture.z) <= 1e-15 * fixture.z)
        var checked = 0
        // Users are stored with the first level of each dataset; summarize them at every level.
        var usersByDataset: [String: ([[Double]], [[Double]])] = [:]
        for c in fixture.cases {
            if let cu = c.controlUsers, let tu = c.treatmentUsers { usersByDataset[c.dataset] = (cu, tu) }
        }
        for c in fixture.cases {
            let (cu, tu) = usersByDataset[c.dataset]!
            for (users, s) in [(cu, c.controlSummary), (tu, c.treatmentSummary)] {
                let e = QuantileEstimate(users: users, level: c.level)
                #expect(e == estimate(s, level: c.level), "\(c.dataset) p=\(c.level)")
                #expect(e.isDegenerate == s.degenerate, "\(c.dataset) p=\(c.level)")
                checked += 1
            }
        }
        #expect(checked == 24)
    }

    @Test("variances match gbstats QuantileClusteredStatistic and QuantileStatistic")
    func variances() {
        var tally = ErrorTally("QuantileEstimate.variance")
        for c in fixture.cases {
            for (name, s) in [("control", c.controlSummary), ("treatment", c.treatmentSummary)] {
                let e = estimate(s, level: c.level)
                if let v = s.variance, let nv = s.naiveVariance {
                    tally.check(e.variance, v, "\(c.dataset) p=\(c.level) \(name) clustered")
                    tally.check(e.naiveVariance, nv, "\(c.dataset) p=\(c.level) \(name) naive")
                } else {
                    #expect(e.variance.isNaN && e.naiveVariance.isNaN, "\(c.dataset) p=\(c.level) \(name)")
                }
            }
        }
        tally.report()
    }

    @Test("difference and relative change match gbstats TwoSidedTTest estimates with a normal interval")
    func tests() {
        var tally = ErrorTally("QuantileTest")
        var compared = 0
        for c in fixture.cases {
            let control = estimate(c.controlSummary, level: c.level)
            let treatment = estimate(c.treatmentSummary, level: c.level)
            for (alpha, tests) in [(0.05, c.tests5), (0.1, c.tests10)] {
                let context = "\(c.dataset) p=\(c.level) alpha=\(alpha)"
                guard let t = tests else {
                    let r = QuantileTest.difference(control: control, treatment: treatment, alpha: alpha)
                    #expect(r.standardError.isNaN && r.pValue.isNaN && r.interval.lower.isNaN, "\(context)")
                    continue
                }
                check(&tally, QuantileTest.difference(control: control, treatment: treatment, alpha: alpha), t.absolute, "\(context) absolute")
                check(&tally, QuantileTest.relativeChange(control: control, treatment: treatment, alpha: alpha), t.relative, "\(context) relative")
                check(
                    &tally, QuantileTest.difference(control: control, treatment: treatment, alpha: alpha, clustered: false),
                    t.naiveAbsolute, "\(context) naive")
                compared += 1
            }
        }
        #expect(compared == 20)
        tally.report()
    }

    @Test("one event per user: the clustered variance stays close to the naive one")
    func singleEventUsers() {
        let users = (0..<500).map { [Double(($0 * 7919) % 1000)] }
        let e = QuantileEstimate(users: users, level: 0.5)
        #expect(e.n == 500 && e.users == 500)
        #expect(abs(e.variance / e.naiveVariance - 1) < 0.01)
    }

    @Test("A/A simulation with correlated per-user latencies: clustered 95% CI covers, naive undercovers")
    func coverage() {
        var rng = SplitMix64(seed: 0x0DE6_2018)
        func uniform() -> Double { (Double(rng.next() >> 11) + 0.5) * 0x1p-53 }
        func normal() -> Double { (-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform()) }
        func arm() -> [[Double]] {
            (0..<150).map { _ in
                let effect = 0.8 * normal()  // lognormal per-user effect
                let requests = 1 + Int(rng.next() % 10)
                return (0..<requests).map { _ in exp(6 + effect + 0.3 * normal()) }
            }
        }
        let experiments = 400
        let levels = [0.5, 0.95]
        var covered = [Int](repeating: 0, count: levels.count)
        var naiveCovered = [Int](repeating: 0, count: levels.count)
        for _ in 0..<experiments {
            let control = arm(), treatment = arm()
            for (i, p) in levels.enumerated() {
                let c = QuantileEstimate(users: control, level: p)
                let t = QuantileEstimate(users: treatment, level: p)
                let r = QuantileTest.difference(control: c, treatment: t, alpha: 0.05)
                let naive = QuantileTest.difference(control: c, treatment: t, alpha: 0.05, clustered: false)
                if r.interval.lower <= 0 && 0 <= r.interval.upper { covered[i] += 1 }
                if naive.interval.lower <= 0 && 0 <= naive.interval.upper { naiveCovered[i] += 1 }
            }
        }
        for (i, p) in levels.enumerated() {
            let rate = Double(covered[i]) / Double(experiments)
            let naiveRate = Double(naiveCovered[i]) / Double(experiments)
            if ProcessInfo.processInfo.environment["BAKEOFF_STATS_REPORT"] != nil {
                print("[coverage] P\(Int(p * 100)): clustered \(rate), naive \(naiveRate) over \(experiments) A/A experiments")
            }
            #expect(rate >= 0.92 && rate <= 0.98, "P\(Int(p * 100)) clustered coverage \(rate)")
            #expect(naiveRate < rate, "P\(Int(p * 100)) naive coverage \(naiveRate) vs clustered \(rate)")
        }
    }
}
