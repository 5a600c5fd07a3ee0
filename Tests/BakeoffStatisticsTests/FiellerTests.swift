import Foundation
import Testing
import BakeoffStatistics

private struct FiellerFixture: Decodable {
    struct Case: Decodable {
        let treatmentMean, varianceOfTreatmentMean, controlMean, varianceOfControlMean: Double
        let df, alpha, criticalValue: Double
        let kind: String
        let lower, upper: Double?
    }
    let cases: [Case]
}

private let fixture: FiellerFixture = Fixture.load("fieller")

@Suite("Fieller confidence sets")
struct FiellerTests {
    @Test("matches the closed-form quadratic with scipy's critical value")
    func references() {
        var tally = ErrorTally("Fieller.ratioSet")
        for c in fixture.cases {
            tally.check(-StudentT.quantile(c.alpha / 2, df: c.df), c.criticalValue, "critical value df \(c.df) alpha \(c.alpha)")
            let set = Fieller.ratioSet(
                treatmentMean: c.treatmentMean, varianceOfTreatmentMean: c.varianceOfTreatmentMean,
                controlMean: c.controlMean, varianceOfControlMean: c.varianceOfControlMean, criticalValue: c.criticalValue)
            switch (c.kind, set) {
            case ("bounded", .bounded(let interval)):
                tally.check(interval.lower, c.lower!, "lower \(c)")
                tally.check(interval.upper, c.upper!, "upper \(c)")
            case ("exclusive", .exclusive(let lowerBelow, let upperAbove)):
                tally.check(lowerBelow, c.lower!, "lowerBelow \(c)")
                tally.check(upperAbove, c.upper!, "upperAbove \(c)")
            case ("unbounded", .unbounded):
                break
            default:
                Issue.record("kind \(c.kind) expected, got \(set) for \(c)")
            }
        }
        tally.report()
    }

    @Test("bounded, exclusive and unbounded shapes")
    func shapes() {
        // Control mean far from zero: an interval around the ratio of means.
        let bounded = Fieller.ratioSet(treatmentMean: 0.78, varianceOfTreatmentMean: 1e-4, controlMean: 0.75,
                                       varianceOfControlMean: 1e-4, criticalValue: 1.96)
        guard case .bounded(let interval) = bounded else { Issue.record("\(bounded)"); return }
        #expect(interval.lower < 0.78 / 0.75 && 0.78 / 0.75 < interval.upper)
        // Control mean within the noise, treatment clearly non-zero: two rays.
        let exclusive = Fieller.ratioSet(treatmentMean: 10, varianceOfTreatmentMean: 0.01, controlMean: 0.5,
                                         varianceOfControlMean: 1, criticalValue: 1.96)
        guard case .exclusive(let below, let above) = exclusive else { Issue.record("\(exclusive)"); return }
        #expect(below < 0 && above > 0 && exclusive.contains(20) && exclusive.contains(-1e6) && !exclusive.contains(1))
        // Both within the noise: everything.
        #expect(Fieller.ratioSet(treatmentMean: 0.1, varianceOfTreatmentMean: 1, controlMean: 0.1,
                                 varianceOfControlMean: 1, criticalValue: 1.96) == .unbounded)
        // Zero variances: the point ratio.
        #expect(Fieller.ratioSet(treatmentMean: 3, varianceOfTreatmentMean: 0, controlMean: 2,
                                 varianceOfControlMean: 0, criticalValue: 1.96) == .bounded(ConfidenceInterval(lower: 1.5, upper: 1.5)))
        // Degenerate input does not trap.
        _ = Fieller.ratioSet(treatmentMean: .nan, varianceOfTreatmentMean: 1, controlMean: 1, varianceOfControlMean: 1, criticalValue: 2)
        _ = Fieller.ratioSet(treatmentMean: 1, varianceOfTreatmentMean: 0, controlMean: 0, varianceOfControlMean: 0, criticalValue: 2)
    }

    /// Random groups, and groups placed so that |t| is within 1e-8..1e-5 of the critical value.
    private static func groups(count: Int, seed: UInt64, nearBoundary: Bool) -> [(GroupEstimate, GroupEstimate, Double)] {
        var rng = SplitMix64(seed: seed)
        var result: [(GroupEstimate, GroupEstimate, Double)] = []
        let alphas = [0.01, 0.05, 0.1, 0.2]
        for i in 0..<count {
            let alpha = alphas[i % alphas.count]
            let nC = Double(Int.random(in: 2...50_000, using: &rng))
            let nT = Double(Int.random(in: 2...50_000, using: &rng))
            let scale = pow(10, Double.random(in: -3...3, using: &rng))
            let meanC = scale * Double.random(in: -2...2, using: &rng)
            let varC = pow(scale * Double.random(in: 0.01...3, using: &rng), 2)
            let varT = pow(scale * Double.random(in: 0.01...3, using: &rng), 2)
            let control = GroupEstimate(mean: meanC, variance: varC, n: nC)
            let se = (varC / nC + varT / nT).squareRoot()
            var treatment = GroupEstimate(mean: meanC + se * Double.random(in: -5...5, using: &rng), variance: varT, n: nT)
            if nearBoundary {
                let probe = TTest.welch(control: control, treatment: treatment, alpha: alpha)
                let gap = pow(10, Double.random(in: -8 ... -5, using: &rng)) * (Bool.random(using: &rng) ? 1 : -1)
                let sign: Double = Bool.random(using: &rng) ? 1 : -1
                treatment.mean = meanC + sign * probe.criticalValue * probe.standardError * (1 + gap)
            }
            result.append((control, treatment, alpha))
        }
        return result
    }

    @Test("ratio 1 is excluded exactly when Welch p < alpha", arguments: [false, true])
    func agreesWithWelch(nearBoundary: Bool) {
        var counts = (excluded: 0, included: 0)
        for (control, treatment, alpha) in Self.groups(count: 4000, seed: nearBoundary ? 7 : 11, nearBoundary: nearBoundary) {
            let welch = TTest.welch(control: control, treatment: treatment, alpha: alpha)
            let set = Fieller.ratioSet(
                treatmentMean: treatment.mean, varianceOfTreatmentMean: treatment.variance / treatment.n,
                controlMean: control.mean, varianceOfControlMean: control.variance / control.n,
                criticalValue: welch.criticalValue)
            let excluded = !set.contains(1)
            #expect(excluded == (welch.pValue < alpha), "\(control) \(treatment) alpha \(alpha): p \(welch.pValue), \(set)")
            if excluded { counts.excluded += 1 } else { counts.included += 1 }
        }
        // Both outcomes occur in quantity.
        #expect(counts.excluded > 500 && counts.included > 500)
    }
}
