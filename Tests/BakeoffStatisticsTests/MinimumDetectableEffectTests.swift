import Foundation
import Testing
import BakeoffStatistics

private struct MDEFixture: Decodable {
    struct Point: Decodable {
        let nobs1, alpha, power, ratio: Double
        let alternative: String
        let effectSizeStatsmodels: Double?
        let statsmodelsOk: Bool
        let effectSizeTight: Double
    }
    let points: [Point]
}

private let fixture: MDEFixture = Fixture.load("mde")

private func alternative(_ name: String) -> Alternative {
    guard let value = Alternative(rawValue: name) else { fatalError("unknown alternative \(name)") }
    return value
}

@Suite("Minimum detectable effect against statsmodels TTestIndPower.solve_power(effect_size=None)")
struct MinimumDetectableEffectTests {
    @Test("solveEffectSize matches the tight root to 1e-9 and statsmodels to its solver tolerance",
          arguments: ["two-sided", "larger", "smaller"])
    func solve(alternativeName: String) {
        var tight = ErrorTally("solveEffectSize \(alternativeName) vs tight root")
        var loose = ErrorTally("solveEffectSize \(alternativeName) vs statsmodels solve_power")
        for p in fixture.points where p.alternative == alternativeName {
            let d = TTestIndependentPower.solveEffectSize(
                nobs1: p.nobs1, alpha: p.alpha, power: p.power, ratio: p.ratio, alternative: alternative(p.alternative))
            let context = "n1 \(p.nobs1) alpha \(p.alpha) power \(p.power) ratio \(p.ratio)"
            tight.check(d, p.effectSizeTight, context, absolute: 0)
            if p.statsmodelsOk, let sm = p.effectSizeStatsmodels {
                loose.check(d, sm, context, relative: 5e-3, absolute: 2e-5)
                #expect((d > 0) == (sm > 0), "\(context)")
            }
            #expect(alternativeName == "smaller" ? d < 0 : d > 0, "\(context): \(d)")
        }
        #expect(tight.count == 270)
        tight.report()
        loose.report()
    }

    @Test("power at the solved effect is the target; solveNobs1 at it gives nobs1 back")
    func roundTrip() {
        var powerTally = ErrorTally("power(solveEffectSize)")
        var nobsTally = ErrorTally("solveNobs1(solveEffectSize)")
        for nobs1 in [3.0, 4.5, 7, 20, 55, 300, 2500, 4e4, 7e5, 1e7] {
            for ratio in [0.25, 1, 4, 1.7] {
                for alpha in [0.01, 0.05, 0.1] {
                    for target in [0.5, 0.8, 0.9, 0.95] {
                        for alt in [Alternative.twoSided, .larger, .smaller] {
                            let d = TTestIndependentPower.solveEffectSize(
                                nobs1: nobs1, alpha: alpha, power: target, ratio: ratio, alternative: alt)
                            let context = "n1 \(nobs1) ratio \(ratio) alpha \(alpha) power \(target) \(alt)"
                            let achieved = TTestIndependentPower.power(
                                effectSize: d, nobs1: nobs1, alpha: alpha, ratio: ratio, alternative: alt)
                            powerTally.check(achieved, target, context)
                            let n = TTestIndependentPower.solveNobs1(
                                effectSize: d, alpha: alpha, power: target, ratio: ratio, alternative: alt)
                            nobsTally.check(n, nobs1, context, relative: 1e-8, absolute: 0)
                        }
                    }
                }
            }
        }
        powerTally.report()
        nobsTally.report()
    }

    @Test("'smaller' mirrors 'larger'; more users or a looser alpha detect smaller effects")
    func structure() {
        for n in [3.0, 100, 1e6] {
            let larger = TTestIndependentPower.solveEffectSize(nobs1: n, alpha: 0.05, power: 0.8, ratio: 1, alternative: .larger)
            let smaller = TTestIndependentPower.solveEffectSize(nobs1: n, alpha: 0.05, power: 0.8, ratio: 1, alternative: .smaller)
            #expect(smaller == -larger)
            let twoSided = TTestIndependentPower.solveEffectSize(nobs1: n, alpha: 0.05, power: 0.8, ratio: 1, alternative: .twoSided)
            #expect(twoSided > larger)
        }
        let a = TTestIndependentPower.solveEffectSize(nobs1: 1000, alpha: 0.05, power: 0.8, ratio: 1, alternative: .twoSided)
        let b = TTestIndependentPower.solveEffectSize(nobs1: 4000, alpha: 0.05, power: 0.8, ratio: 1, alternative: .twoSided)
        let c = TTestIndependentPower.solveEffectSize(nobs1: 1000, alpha: 0.1, power: 0.8, ratio: 1, alternative: .twoSided)
        #expect(b < a && c < a)
        // Quadrupling the sample about halves the MDE at large n.
        #expect(abs(a / b - 2) < 1e-3)
    }

    @Test("the seed's example: 1179 users per arm detect 0.05 absolute on a 0.75 baseline")
    func seedExample() {
        let d = TTestIndependentPower.solveEffectSize(nobs1: 1179, alpha: 0.05, power: 0.8, ratio: 1, alternative: .twoSided)
        let absolute = d * (0.75 * 0.25).squareRoot()
        #expect(absolute < 0.05 && absolute > 0.0499)
    }

    @Test("invalid or unreachable inputs give NaN")
    func invalid() {
        func mde(_ n: Double, _ alpha: Double, _ power: Double, _ ratio: Double) -> Double {
            TTestIndependentPower.solveEffectSize(nobs1: n, alpha: alpha, power: power, ratio: ratio, alternative: .twoSided)
        }
        #expect(mde(1, 0.05, 0.8, 1).isNaN)        // df = 0
        #expect(mde(.nan, 0.05, 0.8, 1).isNaN)
        #expect(mde(.infinity, 0.05, 0.8, 1).isNaN)
        #expect(mde(100, 0, 0.8, 1).isNaN)
        #expect(mde(100, 0.05, 1, 1).isNaN)
        #expect(mde(100, 0.05, 0, 1).isNaN)
        #expect(mde(100, 0.05, 0.8, 0).isNaN)
        #expect(mde(100, 0.05, 0.04, 1).isNaN)     // power below alpha
        #expect(mde(100, 0.2, 0.2, 1).isNaN)
        #expect(!mde(1.5, 0.05, 0.8, 1).isNaN)     // df = 1
    }

    @Test("days left at the observed traffic rate")
    func daysLeft() {
        #expect(DaysLeft.days(currentUsers: 1000, plannedUsers: 2358, usersPerDay: 200) == 6.79)
        #expect(DaysLeft.days(currentUsers: 2358, plannedUsers: 2358, usersPerDay: 200) == 0)
        #expect(DaysLeft.days(currentUsers: 3000, plannedUsers: 2358, usersPerDay: 0) == 0)
        #expect(DaysLeft.days(currentUsers: 1000, plannedUsers: 2358, usersPerDay: 0) == nil)
        #expect(DaysLeft.days(currentUsers: 1000, plannedUsers: 2358, usersPerDay: -5) == nil)
        #expect(DaysLeft.days(currentUsers: 1000, plannedUsers: 2358, usersPerDay: .infinity) == nil)
        #expect(DaysLeft.days(currentUsers: .nan, plannedUsers: 2358, usersPerDay: 10) == nil)
    }
}
