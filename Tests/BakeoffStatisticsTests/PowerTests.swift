import Foundation
import Testing
import BakeoffStatistics

private struct PowerFixture: Decodable {
    struct Point: Decodable {
        let effectSize, nobs1, alpha, ratio: Double
        let alternative: String
        let power: Double
    }
    struct NaNPoint: Decodable {
        let effectSize, nobs1, alpha, ratio: Double
        let alternative: String
        let upperTail: Double
    }
    struct Solve: Decodable {
        let effectSize, alpha, power, ratio: Double
        let alternative: String
        let nobs1Statsmodels, nobs1Tight: Double
    }
    let power: [Point]
    let statsmodelsNan: [NaNPoint]
    let solve: [Solve]
}

private let fixture: PowerFixture = Fixture.load("power")

private func alternative(_ name: String) -> Alternative {
    guard let value = Alternative(rawValue: name) else { fatalError("unknown alternative \(name)") }
    return value
}

@Suite("Power of the two-sample t test against statsmodels TTestIndPower")
struct PowerTests {
    @Test("power matches TTestIndPower().power", arguments: ["two-sided", "larger", "smaller"])
    func power(alternativeName: String) {
        var tally = ErrorTally("TTestIndependentPower.power \(alternativeName)")
        for p in fixture.power where p.alternative == alternativeName {
            let value = TTestIndependentPower.power(
                effectSize: p.effectSize, nobs1: p.nobs1, alpha: p.alpha, ratio: p.ratio, alternative: alternative(p.alternative))
            tally.check(value, p.power, "d \(p.effectSize) n1 \(p.nobs1) alpha \(p.alpha) ratio \(p.ratio)")
        }
        #expect(tally.count > 500)
        tally.report()
    }

    @Test("where statsmodels returns NaN (scipy nctdtr fails in the far lower tail) the power is the upper tail")
    func statsmodelsNaN() {
        for p in fixture.statsmodelsNan {
            let value = TTestIndependentPower.power(
                effectSize: p.effectSize, nobs1: p.nobs1, alpha: p.alpha, ratio: p.ratio, alternative: alternative(p.alternative))
            #expect(abs(value - p.upperTail) <= 1e-12, "\(p)")
        }
    }

    @Test("solveNobs1 matches solve_power: tight root to 1e-9, statsmodels to 1e-6, same ceilings")
    func solve() {
        var tight = ErrorTally("TTestIndependentPower.solveNobs1 vs tight root")
        var loose = ErrorTally("TTestIndependentPower.solveNobs1 vs statsmodels solve_power")
        for s in fixture.solve {
            let n = TTestIndependentPower.solveNobs1(
                effectSize: s.effectSize, alpha: s.alpha, power: s.power, ratio: s.ratio, alternative: alternative(s.alternative))
            let context = "d \(s.effectSize) alpha \(s.alpha) power \(s.power) ratio \(s.ratio) \(s.alternative)"
            tight.check(n, s.nobs1Tight, context)
            loose.check(n, s.nobs1Statsmodels, context, relative: 1e-6, absolute: 0)
            #expect(n.rounded(.up) == s.nobs1Statsmodels.rounded(.up), "\(context): \(n)")
            #expect((n * s.ratio).rounded(.up) == (s.nobs1Statsmodels * s.ratio).rounded(.up), "\(context): \(n)")
        }
        #expect(tight.count > 500)
        tight.report()
        loose.report()
    }

    @Test("the seed's example needs 1179 users per arm")
    func seedExample() {
        let d = 0.05 / (0.75 * 0.25).squareRoot()
        let n = TTestIndependentPower.solveNobs1(effectSize: d, alpha: 0.05, power: 0.8, ratio: 1, alternative: .twoSided)
        #expect(n.rounded(.up) == 1179)
        let achieved = TTestIndependentPower.power(effectSize: d, nobs1: n, alpha: 0.05, ratio: 1, alternative: .twoSided)
        #expect(abs(achieved - 0.8) < 1e-13)
    }

    @Test("unreachable targets give NaN")
    func unreachable() {
        #expect(TTestIndependentPower.solveNobs1(effectSize: 0, alpha: 0.05, power: 0.8, ratio: 1, alternative: .twoSided).isNaN)
        #expect(TTestIndependentPower.solveNobs1(effectSize: -0.2, alpha: 0.05, power: 0.8, ratio: 1, alternative: .larger).isNaN)
        #expect(TTestIndependentPower.solveNobs1(effectSize: 0.2, alpha: 0.05, power: 0.8, ratio: 1, alternative: .smaller).isNaN)
        #expect(TTestIndependentPower.solveNobs1(effectSize: 0.2, alpha: 0.05, power: 1.2, ratio: 1, alternative: .twoSided).isNaN)
        // Negative effects work for two-sided and 'smaller'.
        let n = TTestIndependentPower.solveNobs1(effectSize: -0.2, alpha: 0.05, power: 0.8, ratio: 1, alternative: .smaller)
        let m = TTestIndependentPower.solveNobs1(effectSize: 0.2, alpha: 0.05, power: 0.8, ratio: 1, alternative: .larger)
        #expect(Accuracy.agrees(n, m, relative: 1e-12, absolute: 0))
    }

    @Test("huge effects return the smallest usable design")
    func hugeEffect() {
        let n = TTestIndependentPower.solveNobs1(effectSize: 20, alpha: 0.05, power: 0.8, ratio: 1, alternative: .twoSided)
        #expect(n == 1.5)
    }
}
