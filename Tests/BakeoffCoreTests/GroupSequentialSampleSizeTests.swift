import BakeoffCore
import BakeoffStatistics
import Testing

/// `bakeoff plan`'s group-sequential design beside the fixed-horizon sample: the inflation factor against known
/// values and the statistics library, the users rounded up per group, and the confidence sequence to compare.
@Suite("Sample size of a group-sequential design")
struct GroupSequentialSampleSizeTests {
    static let fiveLooks = [0.2, 0.4, 0.6, 0.8, 1.0]

    static func question(looks: Int?, spending: AlphaSpending = .obrienFleming, power: Double = 0.9, oneSided: Bool = false) -> SampleSizeQuestion {
        var q = SampleSizeQuestion(baseline: 0.75, minimumDetectableEffect: 0.05)
        q.power = power
        q.looks = looks
        q.spending = spending
        q.oneSided = oneSided
        return q
    }

    @Test("five looks, two-sided 0.05, power 0.9: O'Brien-Fleming-type inflates the sample about 1.03 times, Pocock-type about 1.2")
    func inflationFactorsAreTheKnownOnes() throws {
        let obf = try #require(try SampleSize.solve(Self.question(looks: 5)).groupSequential)
        let pocock = try #require(try SampleSize.solve(Self.question(looks: 5, spending: .pocock)).groupSequential)
        print("inflation factor: O'Brien-Fleming-type \(obf.design.inflationFactor), Pocock-type \(pocock.design.inflationFactor)")
        #expect(abs(obf.design.inflationFactor - 1.03) < 0.01)
        #expect(abs(pocock.design.inflationFactor - 1.2) < 0.02)
        // The plan is the statistics library's design, not a copy of it.
        for (plan, spending) in [(obf, AlphaSpending.obrienFleming), (pocock, .pocock)] {
            let direct = GroupSequentialDesign(alpha: 0.05, spending: spending, twoSided: true).sampleSize(power: 0.9, fractions: Self.fiveLooks)
            #expect(plan.design == direct)
            #expect(plan.boundaries == direct.boundaries)
        }
        // The expected samples as the design has them: O'Brien-Fleming-type nearly never stops early without an effect.
        #expect(obf.design.expectedUnderAlternative < 1 && obf.design.expectedUnderNull > 0.95 * obf.design.inflationFactor)
        #expect(pocock.design.expectedUnderAlternative < obf.design.expectedUnderAlternative)
    }

    @Test func theMaximumIsTheFixedSampleTimesTheInflationRoundedUpPerGroup() throws {
        var q = Self.question(looks: 4, power: 0.8)
        q.treatmentShare = 0.2
        q.dailyUsers = 300
        let result = try SampleSize.solve(q)
        let gs = try #require(result.groupSequential)
        let inflation = gs.design.inflationFactor
        #expect(gs.maximumControlN == Int((result.exactControlN * inflation).rounded(.up)))
        #expect(gs.maximumTreatmentN == Int((result.exactControlN * 0.25 * inflation).rounded(.up)))
        #expect(gs.maximumTotalN >= result.totalN)
        let fixedTotal = result.exactControlN * 1.25
        #expect(gs.expectedTotalNAlternative == Int((fixedTotal * gs.design.expectedUnderAlternative).rounded(.up)))
        #expect(gs.expectedTotalNNull == Int((fixedTotal * gs.design.expectedUnderNull).rounded(.up)))
        #expect(gs.expectedTotalNAlternative < result.totalN)
        #expect(gs.usersAtLooks.count == 4 && gs.usersAtLooks.last == gs.maximumTotalN)
        #expect(gs.usersAtLooks == gs.usersAtLooks.sorted())
        #expect(gs.maximumDays == Int((Double(gs.maximumTotalN) / 300).rounded(.up)))
        // The nominal p at each look is the two-sided tail beyond its boundary.
        for (p, c) in zip(gs.nominalPValues, gs.boundaries) { #expect(abs(p - 2 * Normal.sf(c)) < 1e-15) }
    }

    @Test func theConfidenceSequenceIsPlannedWithTheSameEffectAndVariance() throws {
        let rate = try SampleSize.solve(Self.question(looks: 5))
        let expected = try #require(SequentialTest.users(effect: 0.05, variance: 0.75 * 0.25, ratio: 1, alpha: 0.05, power: 0.9))
        #expect(rate.confidenceSequenceTotalN == Int(expected))
        // Valid at any number of looks costs more users than five planned ones.
        #expect(try #require(rate.confidenceSequenceTotalN) > rate.groupSequential!.maximumTotalN)
        var mean = SampleSizeQuestion(baseline: 10, minimumDetectableEffect: 0.5)
        mean.standardDeviation = 4
        mean.looks = 3
        let meanResult = try SampleSize.solve(mean)
        #expect(meanResult.confidenceSequenceTotalN == SequentialTest.users(effect: 0.5, variance: 16, ratio: 1, alpha: 0.05, power: 0.8).map { Int($0) })
    }

    @Test func oneLookIsTheFixedHorizonTestAndNoLooksLeavesThePlanAsItWas() throws {
        let one = try #require(try SampleSize.solve(Self.question(looks: 1)).groupSequential)
        #expect(abs(one.design.inflationFactor - 1) < 1e-6)
        #expect(abs(one.boundaries[0] - Normal.quantile(0.975)) < 1e-6)
        let fixed = try SampleSize.solve(Self.question(looks: nil))
        #expect(fixed.groupSequential == nil && fixed.confidenceSequenceTotalN == nil)
    }

    @Test func aOneSidedPlanUsesAOneSidedDesign() throws {
        let gs = try #require(try SampleSize.solve(Self.question(looks: 5, oneSided: true)).groupSequential)
        let direct = GroupSequentialDesign(alpha: 0.05, spending: .obrienFleming, twoSided: false).sampleSize(power: 0.9, fractions: Self.fiveLooks)
        #expect(gs.oneSided && gs.design == direct)
        for (p, c) in zip(gs.nominalPValues, gs.boundaries) { #expect(abs(p - Normal.sf(c)) < 1e-15) }
    }

    @Test func looksOutsideTheRangeSayWhatToCorrect() {
        for looks in [0, SampleSize.maximumLooks + 1] {
            do {
                _ = try SampleSize.solve(Self.question(looks: looks))
                Issue.record("\(looks) looks should be refused")
            } catch {
                #expect(error.message == "the number of looks must be from 1 to \(SampleSize.maximumLooks), got \(looks)")
                #expect(error.remedy == .correctPlanInput(.looks))
            }
        }
    }
}
