import Foundation
import Testing
import BakeoffStatistics

/// Written by scripts/reference/group_sequential_fixtures.py (spotify-confidence and scipy's multivariate normal).
private struct GroupSequentialFixture: Decodable {
    struct Case: Decodable {
        var alpha: Double
        var twoSided: Bool
        var looks: String
        var t: [Double]
        var spending: String
        var rho: Double?
        var mvnBounds: [Double]
        var spent: [Double]
        var spotifyBounds: [Double]?
        var spotifyCrossing: [Double]?
    }
    struct PowerCase: Decodable {
        var alpha: Double
        var looks: String
        var t: [Double]
        var spending: String
        var rho: Double?
        var bounds: [Double]
        var drift: Double
        var crossing: [Double]
    }
    struct Inflation: Decodable {
        var alpha: Double
        var t: [Double]
        var spending: String
        var rho: Double?
        var power: Double
        var drift: Double
        var inflationFactor: Double
    }
    var cases: [Case]
    var powers: [PowerCase]
    var inflation: [Inflation]
}

private let fixture: GroupSequentialFixture = Fixture.load("group_sequential")

private func spending(_ name: String, _ rho: Double?) -> AlphaSpending {
    switch name {
    case "obrienFleming": return .obrienFleming
    case "pocock": return .pocock
    default: return .power(rho: rho ?? 1)
    }
}

@Suite("Group-sequential boundaries (Lan-DeMets alpha spending)")
struct GroupSequentialTests {
    static let equalLooks = [0.2, 0.4, 0.6, 0.8, 1.0]

    @Test("O'Brien-Fleming-type spending, five equal looks, one-sided 0.025 and two-sided 0.05: the published boundaries")
    func obrienFleming() {
        let b = GroupSequential.boundaries(fractions: Self.equalLooks, alpha: 0.025, spending: .obrienFleming)
        let two = GroupSequentialDesign(alpha: 0.05).boundaries(Look.fractions(Self.equalLooks))
        for (k, want) in [4.877, 3.357, 2.680, 2.290, 2.031].enumerated() {
            #expect(abs(b[k] - want) < 2e-3, "\(b)")
            #expect(abs(two[k] - want) < 2e-3, "two-sided: \(two)")
        }
    }

    @Test("power family rho 3, five equal looks, one-sided 0.025: spotify-confidence's boundaries")
    func powerFamily() {
        let b = GroupSequential.boundaries(fractions: Self.equalLooks, alpha: 0.025, spending: .power(rho: 3))
        for (got, want) in zip(b, [3.540, 2.974, 2.604, 2.306, 2.045]) {
            #expect(abs(got - want) < 2e-3, "\(b)")
        }
    }

    @Test("one look at the planned size is the fixed-horizon test")
    func singleLook() {
        for spending in [AlphaSpending.obrienFleming, .pocock, .power(rho: 2)] {
            let b = GroupSequential.boundaries(fractions: [1], alpha: 0.025, spending: spending)
            #expect(abs(b[0] - 1.959964) < 1e-5)
            let two = GroupSequentialDesign(alpha: 0.05, spending: spending, twoSided: true).boundaries(Look.fractions([1]))
            #expect(abs(two[0] - 1.959964) < 1e-5)
        }
    }

    @Test("every boundary agrees with scipy's multivariate-normal solver to 1e-4", arguments: fixture.cases.indices)
    func againstMultivariateNormal(_ i: Int) {
        let c = fixture.cases[i]
        let design = GroupSequentialDesign(alpha: c.alpha, spending: spending(c.spending, c.rho), twoSided: c.twoSided)
        let b = design.boundaries(Look.fractions(c.t))
        // scipy's CDF is good to about 1e-9 absolute: a look that spends less than 1e-6 is beyond its resolution.
        for (k, (got, want)) in zip(b, c.mvnBounds).enumerated() where c.spent[k] - (k > 0 ? c.spent[k - 1] : 0) >= 1e-6 {
            #expect(abs(got - want) < 1e-4, "\(c.spending) \(c.looks) alpha \(c.alpha) look \(k + 1): \(got) vs \(want)")
        }
        // The first look alone is the normal quantile of what it spends, however little.
        let first = -Normal.quantile(c.spent[0] / (c.twoSided ? 2 : 1))
        #expect(abs(b[0] - first) < 1e-6 * first, "first look \(b[0]) vs \(first)")
        if let spotify = c.spotifyBounds {
            for (k, (got, want)) in zip(b, spotify).enumerated() {
                #expect(abs(got - want) < 3e-4, "spotify-confidence \(c.looks) rho \(c.rho ?? 0) look \(k + 1): \(got) vs \(want)")
            }
        }
    }

    @Test("the crossing probability of every boundary under the null is the alpha spent there, to 1e-5", arguments: fixture.cases.indices)
    func crossingIsSpent(_ i: Int) {
        let c = fixture.cases[i]
        let design = GroupSequentialDesign(alpha: c.alpha, spending: spending(c.spending, c.rho), twoSided: c.twoSided)
        let looks = Look.fractions(c.t)
        // Our own boundaries spend what the function adds at each look ...
        let crossing = design.crossingProbabilities(looks, bounds: design.boundaries(looks))
        var before = 0.0
        for (k, p) in crossing.enumerated() {
            #expect(abs(p.upper + p.lower - (c.spent[k] - before)) < 1e-5, "look \(k + 1)")
            before = c.spent[k]
        }
        // ... and on spotify-confidence's boundaries our recursion gives scipy's crossing probabilities.
        if let spotify = c.spotifyBounds, let reference = c.spotifyCrossing {
            for (k, p) in design.crossingProbabilities(looks, bounds: spotify).enumerated() {
                #expect(abs(p.upper - reference[k]) < 1e-5, "look \(k + 1): \(p.upper) vs scipy \(reference[k])")
            }
        }
    }

    @Test("the probability of crossing under a drift equals scipy's", arguments: fixture.powers.indices)
    func powerUnderDrift(_ i: Int) {
        let c = fixture.powers[i]
        let design = GroupSequentialDesign(alpha: c.alpha, spending: spending(c.spending, c.rho), twoSided: false)
        let got = design.crossingProbabilities(Look.fractions(c.t), bounds: c.bounds, drift: c.drift)
        for (k, p) in got.enumerated() {
            #expect(abs(p.upper - c.crossing[k]) < 1e-5, "look \(k + 1): \(p.upper) vs \(c.crossing[k])")
        }
    }

    @Test("a look's information and its spending time are separate: calendar spending, information correlation")
    func spendingTimeApartFromInformation() {
        let design = GroupSequentialDesign(alpha: 0.05)
        // Users grow slower than the calendar: the first week brings 60% of the users of two weeks.
        let looks = [Look(information: 600, spendingTime: 0.5), Look(information: 1000, spendingTime: 1)]
        let b = design.boundaries(looks)
        let p = design.crossingProbabilities(looks, bounds: b)
        #expect(abs(p[0].upper + p[0].lower - design.spent(at: 0.5)) < 1e-7)
        // Two-sided: the one-sided function at alpha / 2 on each side (gsDesign, rpact), not the function at alpha.
        #expect(abs(design.spent(at: 0.5) - 2 * AlphaSpending.obrienFleming.spent(alpha: 0.025, at: 0.5)) < 1e-15)
        #expect(abs(p.reduce(0) { $0 + $1.upper + $1.lower } - 0.05) < 1e-6)
        // The same spending with information growing with the calendar gives another final boundary.
        let even = design.boundaries(Look.fractions([0.5, 1]))
        #expect(abs(b[0] - even[0]) < 1e-9)
        #expect(abs(b[1] - even[1]) > 1e-3)
    }

    @Test("the repeated p-value is below alpha exactly when the boundary is crossed", arguments: [true, false])
    func repeatedPValueMatchesBoundary(twoSided: Bool) {
        let looks = Look.fractions([1.0 / 14, 3.0 / 14, 4.0 / 14, 7.0 / 14, 8.0 / 14])
        for alpha in [0.05, 0.025, 0.01, 0.05 / 3] {
            let design = GroupSequentialDesign(alpha: alpha, spending: .obrienFleming, twoSided: twoSided)
            let c = design.currentBoundary(looks)
            #expect(design.repeatedPValue(z: c + 1e-6, looks: looks) < alpha)
            #expect(design.repeatedPValue(z: c - 1e-6, looks: looks) >= alpha)
            #expect(abs(design.repeatedPValue(z: c, looks: looks) - alpha) < alpha * 1e-6)
        }
        // Between levels, the p-value is the level whose boundary the statistic is (to 0.5% relative: a monotone
        // cubic through 25 levels; exact at alpha and its Holm shares).
        let design = GroupSequentialDesign(alpha: 0.05, twoSided: twoSided)
        for level in [0.3, 0.04, 0.012, 0.003, 2.5e-5] {
            var d = design
            d.alpha = level
            let z = d.currentBoundary(looks)
            let p = design.repeatedPValue(z: z, looks: looks)
            #expect(abs(p / level - 1) < 5e-3, "level \(level): p \(p)")
        }
        #expect(design.repeatedPValue(z: 0, looks: looks) == 1)
        // A look that spends nothing yet (spending time 0) rejects at no level.
        #expect(design.repeatedPValue(z: 9, looks: [Look(information: 10, spendingTime: 0)]) == 1)
        if !twoSided { #expect(design.repeatedPValue(z: -3, looks: looks) == 1) }
    }

    @Test("the median-unbiased estimate after an early stop lies between zero and the naive estimate")
    func medianUnbiased() {
        let design = GroupSequentialDesign(alpha: 0.05)
        let looks = Look.fractions([0.25, 0.5])
        let c = design.boundaries(looks)
        let z = c[1] + 0.3
        let mue = design.medianUnbiasedZ(z: z, looks: looks)
        #expect(mue > 0 && mue < z, "\(mue) vs naive \(z)")
        #expect(design.medianUnbiasedZ(z: -z, looks: looks) == -mue)
        // At the first look nothing came before: the estimate is the naive one.
        let first = design.medianUnbiasedZ(z: c[0] + 0.5, looks: [looks[0]])
        #expect(abs(first - (c[0] + 0.5)) < 1e-6)
        // Median-unbiased by simulation: at the MUE's drift half the stopped paths are at least this extreme.
        let drift = mue / (0.5).squareRoot()
        var generator = SplitMix64(seed: 7)
        var extreme = 0
        let runs = 40_000
        for _ in 0..<runs {
            let w1 = drift * 0.25 + 0.5 * generator.normal()
            let w2 = w1 + drift * 0.25 + 0.5 * generator.normal()
            let z1 = w1 / 0.5, z2 = w2 / (0.5).squareRoot()
            if z1 >= c[0] || (z1 > -c[0] && z2 >= z) { extreme += 1 }
        }
        #expect(abs(Double(extreme) / Double(runs) - 0.5) < 0.01)
    }

    @Test("plan: the inflation factor of two-sided designs agrees with scipy's to 1e-3", arguments: fixture.inflation.indices)
    func inflationFactor(_ i: Int) {
        let c = fixture.inflation[i]
        let design = GroupSequentialDesign(alpha: c.alpha, spending: spending(c.spending, c.rho), twoSided: true)
        let size = design.sampleSize(power: c.power, fractions: c.t)
        #expect(abs(size.drift - c.drift) < 1e-3, "\(c.spending): drift \(size.drift) vs \(c.drift)")
        #expect(abs(size.inflationFactor - c.inflationFactor) < 1e-3, "\(c.spending): \(size.inflationFactor) vs \(c.inflationFactor)")
        // The expected sample under the alternative is below the maximum, and above it under no effect.
        #expect(size.expectedUnderAlternative < size.inflationFactor)
        #expect(size.expectedUnderAlternative < size.expectedUnderNull)
        #expect(size.expectedUnderNull <= size.inflationFactor + 1e-12)
    }

    @Test("one look is the fixed-horizon test: inflation factor 1")
    func oneLookInflation() {
        let one = GroupSequentialDesign(alpha: 0.05).sampleSize(power: 0.8, fractions: [1])
        #expect(abs(one.inflationFactor - 1) < 1e-5)
        #expect(abs(one.expectedUnderAlternative - 1) < 1e-5)
    }

    @Test("many close looks (a year of daily looks) stay accurate and fast enough")
    func manyLooks() {
        let t = (1...365).map { Double($0) / 365 }
        let design = GroupSequentialDesign(alpha: 0.05)
        let looks = Look.fractions(t)
        let b = design.boundaries(looks)
        let crossed = design.crossingProbabilities(looks, bounds: b).reduce(0) { $0 + $1.upper + $1.lower }
        #expect(abs(crossed - 0.05) < 1e-5)
        #expect(b.last! > 1.96 && b.last! < 2.4, "\(b.last!)")
    }
}

@Suite("Group-sequential futility (non-binding beta spending)")
struct GroupSequentialFutilityTests {
    @Test("under the planned effect each futility boundary is crossed with the beta spent there, and meets efficacy at the horizon",
          arguments: [AlphaSpending.obrienFleming, .pocock, .power(rho: 2)])
    func betaSpent(_ spending: AlphaSpending) {
        let design = GroupSequentialDesign(alpha: 0.05, spending: spending)
        let looks = Look.fractions([0.25, 0.5, 0.75, 1])
        let drift = design.drift(forPower: 0.8, looks: looks)
        let futility = design.futilityBoundaries(looks, beta: 0.2, spending: spending, drift: drift, horizonInformation: 1)
        let efficacy = design.boundaries(looks)
        #expect(abs(futility[3] - efficacy[3]) < 1e-12)
        for k in 0..<3 { #expect(futility[k] < efficacy[k]) }
        // The recursion over the continuation region (futility, efficacy) under the drift: lower crossings are beta's.
        var before = 0.0
        for k in 0..<3 {
            let p = GroupSequentialDesign.lowerCrossing(looks, upper: efficacy, lower: futility, drift: drift)[k]
            let spent = spending.spent(alpha: 0.2, at: looks[k].spendingTime)
            #expect(abs(p - (spent - before)) < 1e-6, "look \(k + 1): \(p) vs \(spent - before)")
            before = spent
        }
        // Under no effect the futility boundary stops most experiments before the horizon.
        let null = GroupSequentialDesign.lowerCrossing(looks, upper: efficacy, lower: futility, drift: 0)
        #expect(null.reduce(0, +) > 0.5)
    }
}
