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
