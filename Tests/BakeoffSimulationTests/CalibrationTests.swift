import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffSimulation

/// `bakeoff calibrate`'s simulations at small sizes: the targets hold, the naive methods fail, runs repeat.
@Suite("Calibration runs")
struct CalibrationTests {
    static func settings(
        _ methods: Set<CalibrationMethod>, simulations: Int, days: Int, usersPerDay: Int, seed: UInt64 = 1
    ) -> CalibrationSettings {
        var s = CalibrationSettings()
        s.methods = methods
        s.simulations = simulations
        s.days = days
        s.usersPerDay = usersPerDay
        s.seed = seed
        return s
    }

    static func row(_ result: CalibrationResult, _ id: CalibrationRowID) throws -> CalibrationRow {
        try #require(result.rows.first { $0.id == id })
    }

    @Test func fixedHorizonHoldsItsFalsePositiveRateAndCoverageWhileCountingConversationsDoesNot() throws {
        let result = try Calibration.run(Self.settings([.fixed], simulations: 2000, days: 7, usersPerDay: 100), threads: 2)
        #expect(result.rows.map(\.id) == [.fixedMean, .fixedRatio, .naiveRatio])
        for id in [CalibrationRowID.fixedMean, .fixedRatio] {
            let row = try Self.row(result, id)
            let fpr = row.falsePositiveRate!.estimate, coverage = row.coverage!.estimate
            print("\(id.rawValue): A/A false-positive rate \(fpr), coverage \(coverage), power \(row.power!.estimate)")
            // About four Monte-Carlo standard errors around 0.05 and 0.95.
            #expect(fpr >= 0.03 && fpr <= 0.07, "\(id.rawValue) false-positive rate \(fpr)")
            #expect(coverage >= 0.93 && coverage <= 0.97, "\(id.rawValue) coverage \(coverage)")
        }
        let naive = try Self.row(result, .naiveRatio)
        print("naive per-conversation false-positive rate \(naive.falsePositiveRate!.estimate)")
        #expect(naive.falsePositiveRate!.estimate > 0.08)
        #expect(naive.passed)
    }

    @Test func offlineEvalsHoldTheirFalsePositiveRateWithAPositionBiasedJudgeAndCoverTheTruth() throws {
        let result = try Calibration.run(Self.settings([.offline], simulations: 1500, days: 1, usersPerDay: 4), threads: 2)
        #expect(result.rows.map(\.id) == [.evalWinRate, .evalPairedDifference, .evalMcNemar])
        for id in [CalibrationRowID.evalWinRate, .evalPairedDifference, .evalMcNemar] {
            let row = try Self.row(result, id)
            let fpr = row.falsePositiveRate!.estimate
            print("\(id.rawValue): A/A false-positive rate \(fpr), coverage \(row.coverage?.estimate ?? .nan), power \(row.power!.estimate)")
            // A judge that picks the answer shown first 30% of the time does not make equal variants differ.
            #expect(fpr <= 0.07, "\(id.rawValue) false-positive rate \(fpr)")
            if let coverage = row.coverage?.estimate { #expect(coverage >= 0.925 && coverage <= 0.975, "\(id.rawValue) coverage \(coverage)") }
        }
    }

    @Test func dailyPeekingInflatesTheFalsePositiveRateWhileTheSequentialTestHoldsIt() throws {
        let result = try Calibration.run(Self.settings([.peeking, .sequential], simulations: 1000, days: 14, usersPerDay: 100), threads: 2)
        for (peekingID, sequentialID) in [(CalibrationRowID.peekingMean, CalibrationRowID.sequentialMean), (.peekingRatio, .sequentialRatio)] {
            let peeking = try Self.row(result, peekingID).falsePositiveRate!.estimate
            let sequential = try Self.row(result, sequentialID)
            let fpr = sequential.falsePositiveRate!.estimate
            print("\(peekingID.rawValue) \(peeking), \(sequentialID.rawValue) \(fpr), coverage at every look \(sequential.coverage!.estimate)")
            #expect(peeking > 0.15, "naive peeking false-positive rate \(peeking)")
            #expect(fpr <= 0.05 + 0.015, "sequential false-positive rate \(fpr)")
            #expect(peeking > fpr + 0.1)
            #expect(sequential.coverage!.estimate >= 0.95)
            #expect(sequential.coverageAtEnd!.estimate >= sequential.coverage!.estimate)
        }
    }

    @Test func clusteredQuantileIntervalsCoverWhileTheNaiveOnesDoNot() throws {
        let result = try Calibration.run(Self.settings([.quantile], simulations: 400, days: 5, usersPerDay: 100), threads: 2)
        for (clusteredID, naiveID) in [(CalibrationRowID.quantileP50, CalibrationRowID.naiveQuantileP50), (.quantileP95, .naiveQuantileP95)] {
            let clustered = try Self.row(result, clusteredID).coverage!.estimate
            let naive = try Self.row(result, naiveID).coverage!.estimate
            print("\(clusteredID.rawValue): clustered coverage \(clustered), naive \(naive)")
            #expect(clustered >= 0.90 && clustered <= 0.98, "\(clusteredID.rawValue) clustered coverage \(clustered)")
            #expect(naive < clustered - 0.1, "\(naiveID.rawValue) naive coverage \(naive)")
        }
    }

    @Test func cupedReducesVarianceAndGainsPowerWithoutLosingCalibration() throws {
        let result = try Calibration.run(Self.settings([.fixed, .cuped], simulations: 500, days: 7, usersPerDay: 200), threads: 2)
        let cuped = try Self.row(result, .cuped)
        let unadjusted = try Self.row(result, .fixedMean)
        let reduction = try #require(result.meanVarianceReduction)
        print("CUPED: variance reduction \(reduction), power \(cuped.power!.estimate) vs \(unadjusted.power!.estimate)")
        // corr(before, during) is about 0.7 with the default model, so about half the variance goes.
        #expect(reduction > 0.4 && reduction < 0.6)
        #expect(cuped.power!.estimate > unadjusted.power!.estimate + 0.1)
        #expect(cuped.coverage!.estimate >= 0.92 && cuped.coverage!.estimate <= 0.98)
        #expect(cuped.note?.contains("lower on average") == true)
    }

    @Test func sameSeedGivesTheSameResultWhateverTheThreadsAndMethods() throws {
        let all = Self.settings(Set(CalibrationMethod.allCases), simulations: 40, days: 3, usersPerDay: 40, seed: 7)
        let one = try Calibration.run(all, threads: 1)
        let two = try Calibration.run(all, threads: 2)
        let again = try Calibration.run(all, threads: 3)
        #expect(one == two)
        #expect(one == again)
        #expect(one.rows.count == CalibrationRowID.allCases.count)
        // The streams of one method do not depend on which other methods run.
        var fixedOnly = all
        fixedOnly.methods = [.fixed]
        let subset = try Calibration.run(fixedOnly, threads: 2)
        #expect(subset.rows == one.rows.filter { $0.id.method == .fixed })
        // Seeds give different simulations, not the same ones in another order.
        var fixedRows: [[CalibrationRow]] = []
        for seed: UInt64 in [1, 2, 3, 7] {
            var other = fixedOnly
            other.seed = seed
            other.simulations = 64
            fixedRows.append(try Calibration.run(other, threads: 2).rows)
        }
        #expect(Set(fixedRows.map { $0.map { "\($0)" }.joined() }).count == fixedRows.count)
    }

    @Test func progressCountsEverySimulation() throws {
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var values: [Int] = []
        }
        let seen = Seen()
        _ = try Calibration.run(Self.settings([.fixed], simulations: 50, days: 2, usersPerDay: 20), threads: 2) { done in
            seen.lock.withLock { seen.values.append(done) }
        }
        #expect(seen.values.last == 50)
        #expect(seen.values == seen.values.sorted())
    }

    @Test func invalidSettingsSayWhatToChange() {
        var s = CalibrationSettings()
        s.effect = 0.5
        #expect(throws: CalibrationError.invalid("effect 0.5 makes treatment's completion rate 1.05, not below 1; use an effect below 0.428")) {
            try s.validate()
        }
        s = CalibrationSettings()
        s.usersPerDay = 3
        #expect(throws: CalibrationError.self) { try Calibration.run(s) }
        s = CalibrationSettings()
        s.methods = []
        do {
            try s.validate()
            Issue.record("no methods should be rejected")
        } catch {
            #expect(error.description.contains("fixed, peeking, sequential, group-sequential, relative, quantile, cuped"))
        }
    }

    @Test func targetsScaleWithAlphaAndReadAsTheIssueStatesThem() {
        #expect(CalibrationRowID.fixedMean.checks(alpha: 0.05, simulations: 4000).map(\.text) == ["FPR 0.04-0.06", "cov 0.93-0.97"])
        #expect(CalibrationRowID.peekingMean.checks(alpha: 0.05, simulations: 4000).map(\.text) == ["FPR > 0.15"])
        #expect(CalibrationRowID.sequentialRatio.checks(alpha: 0.05, simulations: 4000).map(\.text) == ["FPR <= 0.05", "cov >= 0.95"])
        #expect(CalibrationRowID.naiveQuantileP95.checks(alpha: 0.05, simulations: 4000).map(\.text) == ["cov < 0.93"])
        #expect(CalibrationRowID.fixedMean.checks(alpha: 0.01, simulations: 4000).map(\.text) == ["FPR 0.008-0.012", "cov 0.986-0.994"])
        let fpr = CalibrationRowID.fixedMean.checks(alpha: 0.05, simulations: 4000)[0]
        #expect(fpr.isMet(by: 0.04) && fpr.isMet(by: 0.06) && !fpr.isMet(by: 0.0399) && !fpr.isMet(by: 0.0601))
    }

    @Test func groupSequentialTargetsAreTheIssuesWithAMonteCarloAllowanceThatShrinksWithTheSimulations() {
        // 3 sqrt(0.05 * 0.95 / 4000) = 0.0103: about the 0.01 the fixed-horizon rows allow at the default size.
        #expect(CalibrationRowID.groupSequentialMean.checks(alpha: 0.05, simulations: 4000).map(\.text)
                == ["FPR 0.04-0.05 ±0.0103", "power vs fixed >= 0.9", "cov >= 0.95 ±0.0103"])
        #expect(CalibrationRowID.groupSequentialWeekdaysRatio.checks(alpha: 0.05, simulations: 40000).map(\.text) == ["FPR 0.04-0.05 ±0.0033"])
        let fpr = CalibrationRowID.groupSequentialTwiceDailyMean.checks(alpha: 0.05, simulations: 4000)[0]
        #expect(fpr.isMet(by: 0.0298) && fpr.isMet(by: 0.0602) && !fpr.isMet(by: 0.0296) && !fpr.isMet(by: 0.0604))
        let coverage = CalibrationRowID.groupSequentialRatio.checks(alpha: 0.05, simulations: 4000)[2]
        #expect(coverage.isMet(by: 0.9398) && !coverage.isMet(by: 0.9396))
        let power = CalibrationRowID.groupSequentialRatio.checks(alpha: 0.05, simulations: 4000)[1]
        #expect(power.isMet(by: 0.9) && !power.isMet(by: 0.8999))
    }

    @Test func groupSequentialHoldsItsFalsePositiveRateUnderDailyWeekdayAndTwiceDailyLooks() throws {
        let result = try Calibration.run(Self.settings([.groupSequential], simulations: 2000, days: 14, usersPerDay: 100), threads: 2)
        #expect(result.rows.map(\.id) == [.groupSequentialMean, .groupSequentialRatio, .groupSequentialWeekdaysMean,
                                          .groupSequentialWeekdaysRatio, .groupSequentialTwiceDailyMean, .groupSequentialTwiceDailyRatio])
        for row in result.rows {
            let fpr = row.falsePositiveRate!.estimate
            print("\(row.id.rawValue): A/A false-positive rate \(fpr)\(row.note.map { "; \($0)" } ?? "")")
            // About four Monte-Carlo standard errors around 0.05: daily naive peeking gives over 0.2 here.
            #expect(fpr >= 0.03 && fpr <= 0.07, "\(row.id.rawValue) false-positive rate \(fpr)")
        }
        for id in [CalibrationRowID.groupSequentialMean, .groupSequentialRatio] {
            let row = try Self.row(result, id)
            let coverage = row.coverage!.estimate, ratio = try #require(row.value(.powerVersusFixed))
            #expect(coverage >= 0.93, "\(id.rawValue) coverage of the repeated intervals \(coverage)")
            #expect(row.coverageAtEnd!.estimate >= coverage)
            // O'Brien-Fleming-type spending gives up little power at the fixed-horizon sample.
            #expect(ratio >= 0.9 && ratio <= 1.02, "\(id.rawValue) power \(row.power!.estimate) vs fixed \(row.fixedHorizonPower!.estimate)")
            #expect(row.note?.contains("14 looks; power") == true)
        }
        // Day 14 is a Friday: days 1-2 and 8-9 are a weekend.
        #expect(try Self.row(result, .groupSequentialWeekdaysMean).note?.hasPrefix("10 looks: the end of every Monday to Friday") == true)
        #expect(try Self.row(result, .groupSequentialTwiceDailyRatio).note?.hasPrefix("28 looks") == true)
    }

    @Test func theFixedHorizonPowerOfTheGroupSequentialRowsIsTheFixedRowsOwn() throws {
        // The same simulated data: the fixed-horizon test the group-sequential rows compare with is the fixed rows'.
        let result = try Calibration.run(Self.settings([.fixed, .groupSequential], simulations: 64, days: 5, usersPerDay: 200), threads: 2)
        #expect(try Self.row(result, .groupSequentialMean).fixedHorizonPower == Self.row(result, .fixedMean).power)
        #expect(try Self.row(result, .groupSequentialRatio).fixedHorizonPower == Self.row(result, .fixedRatio).power)
    }

    @Test func theBoundaryAtALookDependsOnlyOnTheLooksSoFar() {
        // The simulation computes every look's boundary at the end from the whole schedule; a look in a live
        // experiment knows only the looks so far. Both give the same boundaries.
        let design = GroupSequentialDesign(alpha: 0.05, spending: .obrienFleming, twoSided: true)
        let looks = (1...14).map { Look(information: Double(100 * $0 + $0 % 3), spendingTime: Double($0) / 14) }
        let all = design.boundaries(looks)
        for k in looks.indices {
            let soFar = design.currentBoundary(Array(looks[...k]))
            #expect(abs(soFar - all[k]) < 1e-6 || (soFar.isInfinite && all[k].isInfinite), "look \(k + 1): \(soFar) vs \(all[k])")
        }
    }

    @Test func wilsonIntervalMatchesTheTextbookValues() {
        // Wilson (1927) score interval; e.g. statsmodels proportion_confint(5, 100, method="wilson").
        let ci = MonteCarloRate(count: 5, trials: 100).interval()
        #expect(abs(ci.lower - 0.021543) < 1e-6)
        #expect(abs(ci.upper - 0.111750) < 1e-6)
        let zero = MonteCarloRate(count: 0, trials: 20).interval()
        #expect(zero.lower == 0)
        #expect(abs(zero.upper - 0.161125) < 1e-6)
    }

    @Test func rendersTableMarkdownAndJSON() throws {
        let result = try Calibration.run(Self.settings([.fixed, .sequential], simulations: 20, days: 2, usersPerDay: 40), threads: 1)
        let table = result.render(.table)
        #expect(table.contains("method"))
        #expect(table.contains("FPR [95% MC]"))
        #expect(table.contains("sequential, daily looks"))
        #expect(table.contains(result.passed ? "PASS: all" : "FAIL:"))
        let rowLines = table.split(separator: "\n").filter { $0.hasPrefix("fixed horizon") || $0.hasPrefix("sequential,") }
        #expect(rowLines.count == 4)
        #expect(rowLines.allSatisfy { $0.hasSuffix("PASS") || $0.hasSuffix("FAIL") })
        let markdown = result.render(.markdown)
        #expect(markdown.contains("| method | metric |"))
        let json = try #require(JSONSerialization.jsonObject(with: Data(result.render(.json).utf8)) as? [String: Any])
        #expect(json["schema"] as? String == "bakeoff.calibration/1")
        #expect(json["passed"] as? Bool == result.passed)
        let rows = try #require(json["rows"] as? [[String: Any]])
        #expect(rows.map { $0["id"] as? String } == ["fixed-mean", "fixed-ratio", "naive-conversations", "sequential-mean", "sequential-ratio"])
        let fpr = try #require(rows[0]["false_positive_rate"] as? [String: Any])
        #expect(fpr["simulations"] as? Int == 20)
    }
}
