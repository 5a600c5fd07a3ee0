import Foundation
import Testing

/// `bakeoff calibrate` through the built binary, at tiny sizes: output format, exit status, usage errors.
@Suite("bakeoff calibrate command line", .serialized)
struct CalibrateCLITests {
    @Test func printsAnAlignedTableAndExitsByItsVerdict() throws {
        let r = try CLI.run(["calibrate", "--simulations", "24", "--days", "3", "--users-per-day", "40",
                             "--methods", "fixed,sequential", "--seed", "3", "--threads", "2"])
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        #expect(r.stdout.contains("24 simulations of 3 days x 40 new users a day"))
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let headerIndex = try #require(lines.firstIndex { $0.hasPrefix("method ") })
        let header = lines[headerIndex]
        for column in ["metric", "FPR [95% MC]", "power", "coverage [95% MC]", "target", "result"] {
            #expect(header.contains(column))
        }
        #expect(lines[headerIndex + 1].hasPrefix("-----"))
        let rows = Array(lines[(headerIndex + 2)...].prefix { !$0.isEmpty })
        #expect(rows.count == 5)
        // Aligned: every row ends its result column where the header does.
        #expect(rows.allSatisfy { $0.count == header.count && ($0.hasSuffix("PASS") || $0.hasSuffix("FAIL")) })
        let failed = rows.contains { $0.hasSuffix("FAIL") }
        #expect(r.status == (failed ? 1 : 0))
        #expect(r.stdout.contains(failed ? "FAIL:" : "PASS: all 5 rows"))
        #expect(r.stderr.contains("calibrate: 24 simulations in"))
    }

    @Test func aMissedTargetExitsWithOne() throws {
        // One look is no peeking: its false-positive rate stays near 0.05, below the 0.15 the row expects.
        let r = try CLI.run(["calibrate", "--simulations", "40", "--days", "1", "--users-per-day", "40", "--methods", "peeking"])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("FAIL: 2 of 2 rows miss their target"))
    }

    @Test func jsonCarriesTheRatesAndTheVerdict() throws {
        let r = try CLI.run(["calibrate", "--simulations", "16", "--days", "2", "--users-per-day", "30",
                             "--methods", "quantile,cuped", "--format", "json"])
        let json = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["schema"] as? String == "bakeoff.calibration/1")
        let passed = try #require(json["passed"] as? Bool)
        #expect(r.status == (passed ? 0 : 1))
        let rows = try #require(json["rows"] as? [[String: Any]])
        #expect(rows.compactMap { $0["id"] as? String } == ["quantile-p50", "quantile-p95", "naive-quantile-p50", "naive-quantile-p95", "cuped-mean"])
        let settings = try #require(json["settings"] as? [String: Any])
        #expect(settings["simulations"] as? Int == 16)
        #expect(settings["methods"] as? [String] == ["quantile", "cuped"])
    }

    @Test func groupSequentialRowsShowTheirLooksAndTheirPowerAgainstTheFixedHorizon() throws {
        let args = ["calibrate", "--simulations", "24", "--days", "7", "--users-per-day", "200", "--methods", "group-sequential", "--seed", "5"]
        let table = try CLI.run(args)
        #expect(table.status == 0 || table.status == 1, "\(table.stderr)")
        #expect(table.stdout.contains("group-sequential: O'Brien-Fleming-type spending over the 7 days, two-sided"))
        let lines = table.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let headerIndex = try #require(lines.firstIndex { $0.hasPrefix("method ") })
        let rows = Array(lines[(headerIndex + 2)...].prefix { !$0.isEmpty })
        #expect(rows.map { $0.prefix(31).trimmingCharacters(in: .whitespaces) } == [
            "group-sequential, daily looks", "group-sequential, daily looks", "group-sequential, weekday looks",
            "group-sequential, weekday looks", "group-sequential, 2 looks a day", "group-sequential, 2 looks a day",
        ])
        #expect(rows.allSatisfy { $0.count == lines[headerIndex].count })
        // 3 sqrt(0.05 * 0.95 / 24) = 0.1335.
        #expect(rows[0].contains("FPR 0.04-0.05 ±0.1335, power vs fixed >= 0.9, cov >= 0.95 ±0.1335"))
        // The notes and the explanation are wrapped to 80 columns.
        #expect(table.stdout.contains("A target with ± is one a correct method"))

        let json = try CLI.run(args + ["--format", "json"])
        let object = try #require(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let jsonRows = try #require(object["rows"] as? [[String: Any]])
        #expect(jsonRows.compactMap { $0["method"] as? String } == Array(repeating: "group-sequential", count: 6))
        let daily = jsonRows[0]
        let power = try #require((daily["power"] as? [String: Any])?["count"] as? Int)
        let fixedPower = try #require((daily["fixed_horizon_power"] as? [String: Any])?["count"] as? Int)
        if fixedPower > 0 { #expect(daily["power_vs_fixed"] as? Double == Double(power) / Double(fixedPower)) }
        #expect(jsonRows[2]["power"] is NSNull && jsonRows[2]["coverage"] is NSNull)
        let notes = jsonRows.compactMap { $0["note"] as? String }
        #expect(notes.count == 6)
        #expect(notes[0].hasPrefix("7 looks; power"))
        #expect(notes[2].hasPrefix("5 looks: the end of every Monday to Friday"))
        #expect(notes[4].hasPrefix("14 looks: after half of each day's users"))
    }

    @Test func sameSeedPrintsTheSameTable() throws {
        let args = ["calibrate", "--simulations", "16", "--days", "2", "--users-per-day", "30", "--methods", "fixed,relative", "--seed", "9"]
        let one = try CLI.run(args + ["--threads", "1"])
        let two = try CLI.run(args + ["--threads", "2"])
        #expect(one.stdout == two.stdout)
        #expect(!one.stdout.isEmpty)
    }

    @Test func usageMistakesExitWithTwoAndSayWhatToChange() throws {
        let unknown = try CLI.run(["calibrate", "--methods", "fixed,bogus"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("unknown method \"bogus\""))
        #expect(unknown.stderr.contains("USAGE: bakeoff calibrate"))
        let effect = try CLI.run(["calibrate", "--effect", "0.5"])
        #expect(effect.status == 2)
        #expect(effect.stderr.contains("use an effect below 0.428"))
        let simulations = try CLI.run(["calibrate", "--simulations", "0"])
        #expect(simulations.status == 2)
        #expect(simulations.stderr.contains("--simulations must be between 1 and 10000000, got 0"))
        let help = try CLI.run(["help", "calibrate"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("--users-per-day U"))
    }
}
