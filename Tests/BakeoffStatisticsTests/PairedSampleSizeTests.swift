import BakeoffStatistics
import Testing

private struct PairedSampleSizeFixture: Decodable {
    struct Power: Decodable {
        var effectSize: Double
        var n: Double
        var alpha: Double
        var alternative: String
        var power: Double
    }
    struct Plan: Decodable {
        var effectSize: Double
        var alpha: Double
        var power: Double
        var alternative: String
        var n: Int
        var powerAtN: Double
        var powerBelow: Double?
    }
    struct FromSDs: Decodable {
        var difference, sdA, sdB, rho, sdOfDifferences, alpha, power: Double
        var n: Int
        var powerAtN: Double
    }
    struct Detectable: Decodable {
        var n: Int
        var alpha: Double
        var power: Double
        var alternative: String
        var effectSize: Double
    }
    struct SignPower: Decodable {
        var m: Int
        var winRate: Double
        var alpha: Double
        var critical: Int
        var power: Double
    }
    struct SignPlan: Decodable {
        var winRate, alpha, power, tieRate: Double
        var decisive: Int
        var firstReaching: Int
        var requests: Int
        var powerAtDecisive: Double
        var powerBelow: Double?
    }
    struct WinRate: Decodable {
        var n: Int
        var tieRate, alpha, power: Double
        var decisive: Int
        var winRate: Double?
    }
    var power: [Power]
    var plans: [Plan]
    var fromSds: [FromSDs]
    var detectable: [Detectable]
    var signPower: [SignPower]
    var signPlans: [SignPlan]
    var detectableWinRates: [WinRate]
}

private let fixture: PairedSampleSizeFixture = Fixture.load("paired_sample_size")

@Suite("Paired sample sizes against statsmodels TTestPower and scipy binomtest")
struct PairedSampleSizeTests {
    @Test("power of the paired t test matches TTestPower().power")
    func power() {
        var tally = ErrorTally("PairedSampleSize.power")
        for p in fixture.power {
            let got = PairedSampleSize.power(effectSize: p.effectSize, requests: p.n, alpha: p.alpha,
                                             alternative: Alternative(rawValue: p.alternative)!)
            tally.check(got, p.power, "d \(p.effectSize) n \(p.n) alpha \(p.alpha) \(p.alternative)")
        }
        #expect(tally.count > 200)
        tally.report()
    }

    @Test("requests: the smallest n reaching the target, as a brute force over TTestPower")
    func requests() throws {
        var tally = ErrorTally("PairedSampleSize.requests(difference:)")
        for p in fixture.plans {
            let context = "d \(p.effectSize) alpha \(p.alpha) power \(p.power) \(p.alternative)"
            let plan = try #require(PairedSampleSize.requests(
                difference: p.effectSize, standardDeviation: 1, alpha: p.alpha, power: p.power,
                alternative: Alternative(rawValue: p.alternative)!), "\(context)")
            #expect(plan.requests == p.n, "\(context): \(plan.requests) vs \(p.n)")
            tally.check(plan.power, p.powerAtN, context)
            if let below = p.powerBelow {
                let value = PairedSampleSize.power(effectSize: p.effectSize, requests: Double(p.n - 1), alpha: p.alpha,
                                                   alternative: Alternative(rawValue: p.alternative)!)
                tally.check(value, below, context + " at n - 1")
                #expect(value < p.power)
            }
        }
        for s in fixture.fromSds {
            let plan = try #require(PairedSampleSize.requests(difference: s.difference, sdA: s.sdA, sdB: s.sdB,
                                                              correlation: s.rho, alpha: s.alpha, power: s.power))
            tally.check(PairedSampleSize.standardDeviationOfDifferences(sdA: s.sdA, sdB: s.sdB, correlation: s.rho),
                        s.sdOfDifferences, "sd_d")
            tally.check(plan.standardDeviationOfDifferences, s.sdOfDifferences, "sd_d")
            #expect(plan.requests == s.n, "\(s): \(plan.requests)")
            tally.check(plan.power, s.powerAtN, "from sds \(s.difference)")
        }
        #expect(tally.count > 400)
        tally.report()
    }

    @Test("detectable effect at n matches the root of TTestPower().power")
    func detectable() throws {
        var tally = ErrorTally("PairedSampleSize.detectableEffectSize")
        for d in fixture.detectable {
            let got = try #require(PairedSampleSize.detectableEffectSize(
                requests: d.n, alpha: d.alpha, power: d.power, alternative: Alternative(rawValue: d.alternative)!))
            tally.check(got, d.effectSize, "n \(d.n) alpha \(d.alpha) power \(d.power) \(d.alternative)")
            if d.alternative == "larger" {
                let mirrored = try #require(PairedSampleSize.detectableEffectSize(requests: d.n, alpha: d.alpha, power: d.power,
                                                                                  alternative: .smaller))
                #expect(mirrored == -got)
            }
        }
        tally.report()
    }

    @Test("mean-difference edge cases")
    func meanEdges() throws {
        #expect(PairedSampleSize.requests(difference: 0, standardDeviation: 1) == nil)
        #expect(PairedSampleSize.requests(difference: -0.2, standardDeviation: 1, alternative: .larger) == nil)
        #expect(PairedSampleSize.requests(difference: 0.2, standardDeviation: 1, alternative: .smaller) == nil)
        #expect(PairedSampleSize.requests(difference: 0.2, standardDeviation: -1) == nil)
        #expect(PairedSampleSize.requests(difference: 0.2, standardDeviation: 1, power: 1) == nil)
        #expect(PairedSampleSize.requests(difference: 1e-9, standardDeviation: 1) == nil)  // ~8e18 requests
        #expect(PairedSampleSize.requests(difference: 0.2, sdA: 1, sdB: 1, correlation: 1.5) == nil)
        let exact = try #require(PairedSampleSize.requests(difference: 0.5, standardDeviation: 0))
        #expect(exact.requests == 2 && exact.power == 1 && exact.effectSize == .infinity)
        // Two-sided is symmetric; 'smaller' mirrors 'larger'.
        let up = try #require(PairedSampleSize.requests(difference: 0.3, standardDeviation: 1, alternative: .larger))
        let down = try #require(PairedSampleSize.requests(difference: -0.3, standardDeviation: 1, alternative: .smaller))
        #expect(up.requests == down.requests)
        #expect(PairedSampleSize.requests(difference: -0.3, standardDeviation: 1)?.requests
                == PairedSampleSize.requests(difference: 0.3, standardDeviation: 1)?.requests)
        #expect(PairedSampleSize.power(effectSize: 0.3, requests: 1, alpha: 0.05).isNaN)
        #expect(PairedSampleSize.detectableEffectSize(requests: 1) == nil)
        #expect(PairedSampleSize.detectableEffectSize(requests: 30, alpha: 0.05, power: 0.04) == nil)
    }

    @Test("sign test: critical count and exact power match binomtest's region and binom")
    func signPower() {
        var tally = ErrorTally("PairedSampleSize.signTestPower")
        for s in fixture.signPower {
            #expect(PairedSampleSize.signTestCriticalCount(decisiveRequests: s.m, alpha: s.alpha) == s.critical, "\(s)")
            let got = PairedSampleSize.signTestPower(decisiveRequests: s.m, winRate: s.winRate, alpha: s.alpha)
            tally.check(got, s.power, "m \(s.m) p \(s.winRate) alpha \(s.alpha)")
        }
        #expect(tally.count > 90)
        tally.report()
    }

    @Test("win-rate plans match the brute force over every m")
    func signPlans() throws {
        var tally = ErrorTally("PairedSampleSize.requests(winRate:)")
        for s in fixture.signPlans {
            let context = "p \(s.winRate) alpha \(s.alpha) power \(s.power) ties \(s.tieRate)"
            let plan = try #require(PairedSampleSize.requests(winRate: s.winRate, tieRate: s.tieRate, alpha: s.alpha, power: s.power))
            #expect(plan.decisiveRequests == s.decisive, "\(context): \(plan.decisiveRequests) vs \(s.decisive)")
            #expect(plan.requests == s.requests, "\(context): \(plan.requests) vs \(s.requests)")
            tally.check(plan.power, s.powerAtDecisive, context)
            #expect(plan.criticalCount == PairedSampleSize.signTestCriticalCount(decisiveRequests: s.decisive, alpha: s.alpha))
            if let below = s.powerBelow {
                let value = PairedSampleSize.signTestPower(decisiveRequests: s.decisive - 1, winRate: s.winRate, alpha: s.alpha)
                tally.check(value, below, context + " at m - 1")
                #expect(value < s.power)
            }
        }
        // The saw tooth is real: somewhere the first m reaching the target is not the answer.
        #expect(fixture.signPlans.contains { $0.firstReaching < $0.decisive })
        #expect(tally.count > 100)
        tally.report()
    }

    @Test("detectable win rate at n matches the root of the exact power")
    func detectableWinRate() {
        var tally = ErrorTally("PairedSampleSize.detectableWinRate")
        for w in fixture.detectableWinRates {
            let got = PairedSampleSize.detectableWinRate(requests: w.n, tieRate: w.tieRate, alpha: w.alpha, power: w.power)
            if let expected = w.winRate {
                tally.check(got ?? .nan, expected, "n \(w.n) ties \(w.tieRate) alpha \(w.alpha) power \(w.power)")
            } else {
                #expect(got == nil, "n \(w.n) alpha \(w.alpha): \(String(describing: got))")
            }
        }
        #expect(fixture.detectableWinRates.contains { $0.winRate == nil })
        tally.report()
    }

    @Test("win-rate edge cases")
    func winRateEdges() throws {
        #expect(PairedSampleSize.requests(winRate: 0.5) == nil)
        #expect(PairedSampleSize.requests(winRate: 0.6, tieRate: 1) == nil)
        #expect(PairedSampleSize.requests(winRate: 0.501) == nil)  // about 2 million decisive requests
        #expect(PairedSampleSize.signTestCriticalCount(decisiveRequests: 0, alpha: 0.05) == -1)
        #expect(PairedSampleSize.signTestPower(decisiveRequests: 5, winRate: 0.99, alpha: 0.05) == 0)
        // Symmetric in p <-> 1 - p.
        let a = try #require(PairedSampleSize.requests(winRate: 0.6, tieRate: 0.3))
        let b = try #require(PairedSampleSize.requests(winRate: 0.4, tieRate: 0.3))
        #expect(a.decisiveRequests == b.decisiveRequests && a.requests == b.requests)
    }
}
