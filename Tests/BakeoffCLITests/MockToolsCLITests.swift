import Foundation
import Testing
import BakeoffCLI
import BakeoffDevTools
import BakeoffEval
import BakeoffStatistics
import BakeoffTestSupport

@Suite("mock-dataset and mock-upstream's eval options")
struct MockToolsCLITests {
    @Test func mockDatasetWritesWhatEvalDatasetReads() throws {
        let r = try CLI.run(["mock-dataset", "--size", "25", "--seed", "4"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == MockQuality.dataset(size: 25, seed: 4).map { $0 + "\n" }.joined())
        let items = try EvalDataset.parse(Array(r.stdout.utf8), source: "mock.jsonl")
        #expect(items.count == 25)
        #expect(Set(items.map(\.id)).count == 25)
        for item in items {
            let messages = try #require(item.messagesJSON)
            let question = try #require((try JSONSerialization.jsonObject(with: Data(messages.utf8)) as? [[String: String]])?.first?["content"])
            #expect(item.reference == MockQuality.expectedAnswer(question: question))
            #expect(item.metadata.map(\.key) == ["topic"])
            #expect(MockQuality.builtInTopics.contains(item.metadata[0].value))
        }
        // Deterministic per seed; another seed, another dataset.
        #expect(try CLI.run(["mock-dataset", "--size", "25", "--seed=4"]).stdout == r.stdout)
        #expect(try CLI.run(["mock-dataset", "--size", "25", "--seed", "5"]).stdout != r.stdout)
    }

    @Test func mockDatasetToAFileWithTopics() throws {
        let path = try CLI.temporaryFile("", name: "dataset.jsonl")
        let r = try CLI.run(["mock-dataset", "--size", "40", "--topics", "billing, warranty ,gift cards", "--output", path])
        #expect(r.status == 0 && r.stdout.isEmpty, "\(r.stderr)")
        let items = try EvalDataset.read(path: path)
        #expect(items.count == 40)
        #expect(Set(items.map { $0.metadata[0].value }) == ["billing", "warranty", "gift cards"])
        #expect(items.map(\.id).first == "q-0001" && items.map(\.id).last == "q-0040")
    }

    @Test(arguments: [
        (["mock-dataset"], "--size N is required"),
        (["mock-dataset", "--size", "0"], "--size must be between 1 and 10000000, got 0"),
        (["mock-dataset", "--size", "ten"], "--size needs a whole number"),
        (["mock-dataset", "--size", "5", "--topics", "a,,b"], "--topics needs comma-separated names"),
        (["mock-dataset", "--size", "5", "--topics", "a,b,a"], "--topics names a twice"),
        (["mock-upstream", "--port", "0", "--quality", "support-v1"], "--quality needs MODEL=P"),
        (["mock-upstream", "--port", "0", "--quality", "=0.5"], "--quality needs MODEL=P"),
        (["mock-upstream", "--port", "0", "--quality", "support-v1=1.5"], "--quality support-v1 must be a probability between 0 and 1, got \"1.5\""),
        (["mock-upstream", "--port", "0", "--quality", "m=x"], "--quality m must be a probability"),
        (["mock-upstream", "--port", "0", "--quality", "m=0.5", "--quality", "m=0.6"], "--quality gives m twice"),
        (["mock-upstream", "--port", "0", "--quality-noise", "-0.1"], "--quality-noise must be between 0 and 1, got -0.1"),
        (["mock-upstream", "--port", "0", "--judge-position-bias", "2"], "--judge-position-bias must be between 0 and 1, got 2"),
        (["mock-upstream", "--port", "0", "--judge-garbage-rate", "1.01"], "--judge-garbage-rate must be between 0 and 1"),
        (["mock-upstream", "--port", "0", "--judge-model", ""], "--judge-model needs a model name"),
        (["mock-upstream", "--port", "0", "--quality", "m=0.5", "--judge-model", "m"], "m is given both --quality and --judge-model"),
        (["mock-upstream", "--port", "0", "--tls-key", "/nonexistent/key.pem"], "--tls-key needs --tls-cert"),
        (["mock-upstream", "--port", "0", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"], "--tls-cert /nonexistent/cert.pem: no such file"),
    ])
    func badValuesAreUsageErrors(_ arguments: [String], _ message: String) throws {
        let r = try CLI.run(arguments)
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("bakeoff: " + message), "\(r.stderr)")
    }

    @Test func mockUpstreamReadsTheEvalOptions() throws {
        let spec = try #require(BakeoffCLI.command(named: "mock-upstream")).spec
        let args = try ParsedArguments(["--port", "0", "--quality", "support-v1=0.6", "--quality", "team=a=0.75",
                                        "--quality-noise", "0.1", "--judge-model", "judge", "--judge-model", "judge-2",
                                        "--judge-position-bias", "0.2", "--judge-garbage-rate=0.05"], spec: spec)
        let options = try mockUpstreamOptions(args)
        #expect(options.quality == ["support-v1": 0.6, "team=a": 0.75], "the last = splits")
        #expect(options.qualityNoise == 0.1)
        #expect(options.judgeModels == ["judge", "judge-2"])
        #expect(options.judgePositionBias == 0.2)
        #expect(options.judgeGarbageRate == 0.05)
        let defaults = try mockUpstreamOptions(ParsedArguments(["--port", "0"], spec: spec))
        #expect(defaults.quality.isEmpty && defaults.judgeModels.isEmpty)
        #expect(defaults.tls == nil)
        #expect(defaults.qualityNoise == 0 && defaults.judgePositionBias == 0 && defaults.judgeGarbageRate == 0)
    }
}

@Suite("bakeoff plan, paired: requests an offline eval needs")
struct PairedPlanCLITests {
    @Test func winRateAndPairedMeansMatchPairedSampleSize() throws {
        let win = try CLI.run(["plan", "--win-rate", "0.55", "--tie-rate", "0.6", "--format", "json"])
        #expect(win.status == 0)
        let expected = try #require(PairedSampleSize.requests(winRate: 0.55, tieRate: 0.6, alpha: 0.05, power: 0.8))
        #expect(win.stdout.contains("\"requests\": \(expected.requests)"))
        let paired = try CLI.run(["plan", "--paired", "--mde", "0.05", "--sd-difference", "0.4", "--format", "json"])
        let plan = try #require(PairedSampleSize.requests(difference: 0.05, standardDeviation: 0.4, alpha: 0.05, power: 0.8))
        #expect(paired.stdout.contains("\"requests\": \(plan.requests)"))
        let table = try CLI.run(["plan", "--paired", "--mde", "0.05", "--std", "0.45", "--correlation", "0.6"])
        #expect(table.status == 0 && table.stdout.contains("requests"))
    }

    @Test(arguments: [
        (["plan", "--win-rate", "0.5"], "not 0.5"),
        (["plan", "--win-rate", "0.6", "--paired"], "either --win-rate"),
        (["plan", "--paired", "--mde", "0.05"], "--sd-difference"),
        (["plan", "--win-rate", "0.6", "--baseline", "0.5"], "counts requests"),
        (["plan", "--paired", "--mde", "0.1", "--std", "0.3", "--correlation", "2"], "between -1 and 1"),
    ])
    func mistakesAreUsageErrors(_ arguments: [String], _ message: String) throws {
        let r = try CLI.run(arguments)
        #expect(r.status == 2)
        #expect(r.stderr.contains(message), "\(r.stderr)")
    }
}

@Suite("Choices suggest the closest value")
struct ChoiceSuggestionTests {
    @Test func aMistypedFormatGetsASuggestion() throws {
        let r = try CLI.run(["plan", "--baseline", "0.5", "--mde", "0.05", "--format", "jsn"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("did you mean \"json\"?"), "\(r.stderr)")
    }
}

@Suite("bakeoff analyze --until")
struct AnalyzeUntilCLITests {
    @Test func untilLeavesOutLaterEventsAndSaysSo() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("until-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("events.jsonl").path
        #expect(try CLI.run(["simulate", "--preset", "seed-case-study", "--output", log]).status == 0)
        let whole = try CLI.run(["analyze", log, "--split", "0.2", "--format", "json"])
        let cut = try CLI.run(["analyze", log, "--split", "0.2", "--format", "json", "--until", "2026-11-10T00:00:00Z"])
        #expect(whole.status == 0 && cut.status == 0, "\(cut.stderr)")
        #expect(cut.stdout.contains("\"events_after_cut\": ") && !cut.stdout.contains("\"events_after_cut\": 0,"))
        #expect(whole.stdout.contains("\"events_after_cut\": 0"))
        let bad = try CLI.run(["analyze", log, "--until", "yesterday"])
        #expect(bad.status == 2 && bad.stderr.contains("RFC 3339"))
    }
}

@Suite("bakeoff analyze --timeseries")
struct TimeSeriesCLITests {
    /// Every point of the series equals `analyze --until` at its cut: the metrics entries, byte for byte.
    @Test func everyPointEqualsAnalyzeUntilItsCut() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("series-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("events.jsonl").path
        let db = dir.appendingPathComponent("store.db").path
        #expect(try CLI.run(["simulate", "--preset", "seed-case-study", "--output", log]).status == 0)
        #expect(try CLI.run(["import", "--db", db, log]).status == 0)
        let series = try CLI.run(["analyze", "--db", db, "--split", "0.2", "--method", "sequential", "--timeseries"])
        #expect(series.status == 0, "\(series.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(series.stdout.utf8)) as? [String: Any])
        #expect(json["schema"] as? String == "bakeoff.timeseries/1")
        let points = try #require(json["points"] as? [[String: Any]])
        #expect(points.count >= 14)
        for point in [points[2], points[points.count / 2], points[points.count - 1]] {
            let until = try #require(point["until"] as? String)
            let cut = try CLI.run(["analyze", "--db", db, "--split", "0.2", "--method", "sequential", "--until", until, "--format", "json"])
            #expect(cut.status == 0, "\(cut.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(cut.stdout.utf8)) as? [String: Any])
            let a = try JSONSerialization.data(withJSONObject: point["metrics"] as Any, options: [.sortedKeys])
            let b = try JSONSerialization.data(withJSONObject: report["metrics"] as Any, options: [.sortedKeys])
            #expect(a == b, "the point at \(until) differs from analyze --until")
        }
        // The same from the log.
        let fromLog = try CLI.run(["analyze", log, "--split", "0.2", "--method", "sequential", "--timeseries"])
        #expect(fromLog.stdout == series.stdout)

        // With a start: the days before it are the pre-period, not points (the store is not in time order, so
        // its earliest days are read late).
        let start = "2026-11-08T12:00:00Z"
        let withStart = try CLI.run(["analyze", "--db", db, "--split", "0.2", "--method", "sequential", "--start", start, "--timeseries"])
        #expect(withStart.status == 0, "\(withStart.stderr)")
        let later = try #require(try JSONSerialization.jsonObject(with: Data(withStart.stdout.utf8)) as? [String: Any])
        let first = try #require((later["points"] as? [[String: Any]])?.first)
        #expect(first["until"] as? String == "2026-11-09T00:00:00.000Z")
        let cut = try CLI.run(["analyze", "--db", db, "--split", "0.2", "--method", "sequential", "--start", start,
                               "--until", "2026-11-09T00:00:00Z", "--format", "json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(cut.stdout.utf8)) as? [String: Any])
        #expect(try JSONSerialization.data(withJSONObject: first["metrics"] as Any, options: [.sortedKeys])
                == JSONSerialization.data(withJSONObject: report["metrics"] as Any, options: [.sortedKeys]))
    }
}

@Suite("mock-upstream --tls-cert --tls-key")
struct MockUpstreamTLSCLITests {
    @Test func theCertificateAndKeyAreReadAndLookedAt() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let spec = try #require(BakeoffCLI.command(named: "mock-upstream")).spec
        let options = try mockUpstreamOptions(ParsedArguments(["--port", "0", "--tls-cert", certificates.serverFile, "--tls-key", certificates.keyFile], spec: spec))
        let tls = try #require(options.tls)
        #expect(tls.certificatePEM == (try String(contentsOfFile: certificates.serverFile, encoding: .utf8)))
        #expect(tls.keyPEM.contains("PRIVATE KEY-----"))

        // Swapped files are named before the server tries them.
        let swapped = try CLI.run(["mock-upstream", "--port", "0", "--tls-cert", certificates.keyFile, "--tls-key", certificates.serverFile])
        #expect(swapped.status == 2)
        #expect(swapped.stderr.contains("--tls-cert \(certificates.keyFile): holds no PEM certificate"), "\(swapped.stderr)")
    }
}
