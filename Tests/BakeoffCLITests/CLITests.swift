import BakeoffCLI
import Foundation
import Testing

let goodRequest = #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"control","user_id":"u1","request_id":"r1","latency_ms":5}"#

@Suite("bakeoff command line", .serialized)
struct CLITests {
    @Test func analyzeNamesFileLineAndProblem() throws {
        let path = try CLI.temporaryFile(goodRequest + "\n\n" + #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"control","user_id":"u2","request_id":"r2","latency_ms":"slow"}"# + "\n")
        let r = try CLI.run(["analyze", path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("\(path):3:"))
        #expect(r.stderr.contains("\"latency_ms\" must be a number"))
        let skipped = try CLI.run(["analyze", path, "--skip-invalid"])
        #expect(skipped.status == 0, "\(skipped.stderr)")
        #expect(skipped.stdout.contains("lines skipped as invalid: 1"))
    }

    @Test func analyzeRejectsEmptyMissingAndDirectoryInputs() throws {
        let empty = try CLI.temporaryFile("")
        let r = try CLI.run(["analyze", empty])
        #expect(r.status == 1)
        #expect(r.stderr.contains("no events"))
        let missing = try CLI.run(["analyze", "/nonexistent/events.jsonl"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("No such file"))
        let dir = try CLI.run(["analyze", FileManager.default.temporaryDirectory.path])
        #expect(dir.status == 1)
        #expect(dir.stderr.contains("directory"))
    }

    /// The library names the remedy, the command line its flag: the message says "choose one (--experiment NAME)".
    @Test func libraryRemediesBecomeFlags() throws {
        let two = try CLI.temporaryFile(goodRequest + "\n" + goodRequest.replacingOccurrences(of: "\"e\"", with: "\"f\"").replacingOccurrences(of: "r1", with: "r9") + "\n")
        #expect(try CLI.run(["analyze", two]).stderr.contains("choose one (--experiment NAME)"))
        let noControl = try CLI.temporaryFile(goodRequest.replacingOccurrences(of: "\"control\"", with: "\"a\"") + "\n"
            + goodRequest.replacingOccurrences(of: "\"control\"", with: "\"b\"").replacingOccurrences(of: "u1", with: "u2").replacingOccurrences(of: "r1", with: "r2") + "\n")
        let r = try CLI.run(["analyze", noControl])
        #expect(r.status == 1)
        #expect(r.stderr.contains("say which one is the control (variants: a, b) (--control NAME)"), "\(r.stderr)")
    }

    /// `traffic --behaviour` is read by the one config reader: a mistake is named with its JSON path.
    @Test(arguments: [
        (#"{"treatment": {"completion": 1.5, "escalation": 0.1, "csat": 4, "turns": 3}}"#, "treatment.completion: must be between 0 and 1, got 1.5"),
        (#"{"treatment": {"completion": 0.8, "escalation": 0.1, "csat": 4}}"#, "treatment.turns: is required"),
        (#"{"treatment": {"completion": 0.8, "escalation": 0.1, "csat": 4, "turns": 3, "turn": 2}}"#, "treatment.turn"),
        (#"{"treatment": {"completion": 0.8, "completion": 0.7, "escalation": 0.1, "csat": 4, "turns": 3}}"#, "treatment.completion"),
    ])
    func trafficBehaviourErrorsNameTheirJSONPath(json: String, expected: String) throws {
        let path = try CLI.temporaryFile(json, name: "behaviour.json")
        let r = try CLI.run(["traffic", "--gateway", "http://127.0.0.1:1", "--behaviour", path])
        #expect(r.status == 1)
        #expect(r.stderr.contains(expected), "\(r.stderr)")
    }

    @Test func analyzeExplainsUnknownAndAmbiguousExperiments() throws {
        let path = try CLI.temporaryFile(goodRequest + "\n" + goodRequest.replacingOccurrences(of: "\"e\"", with: "\"f\"").replacingOccurrences(of: "r1", with: "r9") + "\n")
        let ambiguous = try CLI.run(["analyze", path])
        #expect(ambiguous.status == 1)
        #expect(ambiguous.stderr.contains("several experiments"))
        #expect(ambiguous.stderr.contains("--experiment"))
        let unknown = try CLI.run(["analyze", path, "--experiment", "nope"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("experiment \"nope\" not found"))
        let ok = try CLI.run(["analyze", path, "--experiment", "f"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("Only one variant"))
    }

    @Test func usageErrorsExitWithTwo() throws {
        let r = try CLI.run(["analyze", "x.jsonl", "--frobnicate"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("unknown option --frobnicate"))
        #expect(r.stderr.contains("see 'bakeoff analyze --help'"))
        #expect(r.stderr.split(separator: "\n").count <= 3, "the whole help printed: \(r.stderr)")
        let c = try CLI.run(["dance"])
        #expect(c.status == 2)
        // Typos get a suggestion, as git does.
        let typo = try CLI.run(["anlyze", "x.jsonl"])
        #expect(typo.status == 2 && typo.stderr.contains("did you mean \"analyze\"?"), "\(typo.stderr)")
        let option = try CLI.run(["analyze", "x.jsonl", "--splt", "0.2"])
        #expect(option.status == 2 && option.stderr.contains("did you mean --split?"), "\(option.stderr)")
        let help = try CLI.run(["help", "anlyze"])
        #expect(help.status == 2 && help.stderr.contains("did you mean \"analyze\"?"), "\(help.stderr)")
        let bad = try CLI.run(["plan", "--baseline", "0.75", "--mde", "lots"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("--mde needs a number"))
    }

    @Test func planGivesTheSeedsExampleAndJSON() throws {
        let r = try CLI.run(["plan", "--baseline", "0.75", "--mde", "0.05", "--format", "json", "--daily-users", "500"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(json["control_n"] as? Int == 1179)
        #expect(json["treatment_n"] as? Int == 1179)
        #expect(json["total_n"] as? Int == 2358)
        #expect(json["days"] as? Int == 5)
        #expect(json["effect_size"] is Double)
        let invalid = try CLI.run(["plan", "--baseline", "1.5", "--mde", "0.05"])
        #expect(invalid.status == 2)
        #expect(invalid.stderr.contains("the baseline must be a rate between 0 and 1"))
        #expect(invalid.stderr.contains("(--baseline; for a mean metric also --std)"), "\(invalid.stderr)")
    }

    @Test func assignAgreesWithVariantsAndKeepsOrder() throws {
        let ids = (0..<5000).map { "user-\($0)" } + ["Ünïcødé-用户-🙂", "", String(repeating: "x", count: 3000)]
        let input = ids.joined(separator: "\n") + "\n"
        let split = try CLI.run(["assign", "--experiment", "fine-tuned-v2-test", "--split", "0.2"], stdin: input)
        let variants = try CLI.run(["assign", "--experiment", "fine-tuned-v2-test", "--variants", "treatment=0.2,control=0.8"], stdin: input)
        #expect(split.status == 0, "\(split.stderr)")
        let lines = split.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == ids.count)
        #expect(split.stdout == variants.stdout)
        let share = Double(lines.filter { $0 == "treatment" }.count) / Double(lines.count)
        #expect(abs(share - 0.2) < 0.03)
        let badWeights = try CLI.run(["assign", "--experiment", "x", "--variants", "a=0.5,b=0.4"], stdin: "u\n")
        #expect(badWeights.status == 2)
        #expect(badWeights.stderr.contains("sum"))
    }

    @Test func simulateThenAnalyzeEndToEnd() throws {
        let dir = try CLI.temporaryFile("", name: "placeholder")
        let path = URL(fileURLWithPath: dir).deletingLastPathComponent().appendingPathComponent("case.jsonl").path
        let sim = try CLI.run(["simulate", "--preset", "seed-case-study", "--output", path])
        #expect(sim.status == 0, "\(sim.stderr)")
        #expect(sim.stderr.isEmpty, "no progress bar when stderr is not a terminal")
        let table = try CLI.run(["analyze", path, "--split", "0.2"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("Decision: SHIP treatment"))
        #expect(table.stdout.contains("Task completion"))
        let json = try CLI.run(["analyze", path, "--split", "0.2", "--format", "json"])
        let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        #expect((report["decision"] as! [String: Any])["action"] as? String == "ship")
        let markdown = try CLI.run(["analyze", path, "--split", "0.2", "--format", "markdown"])
        #expect(markdown.stdout.contains("| Task completion *"))
        let naive = try CLI.run(["analyze", path, "--unit", "event", "--format", "json"])
        #expect((try JSONSerialization.jsonObject(with: Data(naive.stdout.utf8)) as! [String: Any])["unit"] as? String == "event")
    }

    @Test func keepRunningEstimateMatchesStatsmodels() throws {
        // Reference: statsmodels TTestIndPower on the per-user delta-method variance of this log gives
        // 1,342 more users and 62.54 days (computed independently in Python during review).
        let dir = URL(fileURLWithPath: try CLI.temporaryFile("", name: "placeholder")).deletingLastPathComponent()
        let path = dir.appendingPathComponent("aa.jsonl").path
        #expect(try CLI.run(["simulate", "--preset", "aa", "--users", "300", "--output", path]).status == 0)
        let r = try CLI.run(["analyze", path, "--split", "0.5", "--mde", "0.05", "--format", "json"])
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let decision = json["decision"] as! [String: Any]
        #expect(decision["action"] as? String == "keep_running")
        #expect(decision["additional_users"] as? Int == 1342)
        #expect(abs((decision["additional_days"] as? Double ?? 0) - 62.54) < 0.01)
    }

    @Test func configErrorsNameTheJSONPath() throws {
        let events = try CLI.temporaryFile(goodRequest + "\n")
        let config = try CLI.temporaryFile(#"{"metrics": [{"name": "resolved", "feedback": "resolved", "goal": "sideways"}]}"#, name: "config.json")
        let r = try CLI.run(["analyze", events, "--config", config])
        #expect(r.status == 1)
        #expect(r.stderr.contains("metrics[0].goal"))
        let unknown = try CLI.temporaryFile(#"{"alpah": 0.1}"#, name: "config.json")
        let u = try CLI.run(["analyze", events, "--config", unknown])
        #expect(u.stderr.contains("alpah: unknown key"))
    }
}
