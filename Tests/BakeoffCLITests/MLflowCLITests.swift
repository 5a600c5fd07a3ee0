import BakeoffCLI
import Foundation
import Testing

@Suite("analyze and eval --mlflow on the command line")
struct MLflowCLITests {
    /// Nothing listens there.
    static let down = "http://127.0.0.1:1"

    static func log() throws -> String {
        var lines: [String] = []
        for i in 0..<40 {
            let variant = i % 2 == 0 ? "control" : "treatment"
            lines.append(#"{"event":"request","ts":"2026-11-0\#(1 + i % 5)T10:00:00Z","experiment":"e","variant":"\#(variant)","user_id":"u\#(i)","request_id":"r\#(i)","latency_ms":5}"#)
        }
        return try CLI.temporaryFile(lines.joined(separator: "\n") + "\n")
    }

    @Test func theServerMustBeHTTPAndIsCheckedBeforeAnyWork() throws {
        let r = try CLI.run(["analyze", "/nonexistent/events.jsonl", "--mlflow", "file:///tmp/mlruns"])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("bakeoff: --mlflow: \"file:///tmp/mlruns\" is not the URL of an MLflow tracking server: give one starting with http:// or https://"))
        let alone = try CLI.run(["analyze", try Self.log(), "--mlflow-experiment", "x"])
        #expect(alone.status == 2)
        #expect(alone.stderr.contains("give --mlflow URI too"))
        let series = try CLI.run(["analyze", try Self.log(), "--timeseries", "--mlflow", Self.down])
        #expect(series.status == 2)
        #expect(series.stderr.contains("--mlflow records one report; leave out --timeseries"))
    }

    @Test func anUnreachableServerCostsTheExitStatusNotTheReport() throws {
        let r = try CLI.run(["analyze", try Self.log(), "--format", "json", "--mlflow", Self.down])
        #expect(r.status == 1)
        #expect(r.stdout.contains(#""schema": "bakeoff.report/2""#))
        #expect(r.stderr.hasPrefix("bakeoff: MLflow at \(Self.down): experiments/get-by-name: cannot reach the server"))
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test func evalStopsBeforeItsCallsWhenMLflowCannotBeReached() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-mlflow-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = """
            {"experiments": [{"name": "support", "model": "support-bot", "split": 0.5,
              "variants": [{"name": "control", "upstream": {"base_url": "\(Self.down)/v1", "model": "v1"}},
                           {"name": "treatment", "upstream": {"base_url": "\(Self.down)/v1", "model": "v2"}}],
              "eval": {"scorers": [{"type": "exact_match"}]}}]}
            """
        try config.write(toFile: dir + "/bakeoff.json", atomically: true, encoding: .utf8)
        try #"{"id": "q1", "prompt": "hi", "reference": "hello"}"#.write(toFile: dir + "/requests.jsonl", atomically: true, encoding: .utf8)
        let r = try CLI.run(["eval", "--config", dir + "/bakeoff.json", "--dataset", dir + "/requests.jsonl", "--no-cache", "--mlflow", Self.down])
        #expect(r.status == 1)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.contains("MLflow at \(Self.down): experiments/get-by-name: cannot reach the server"))
        #expect(r.stderr.contains("nothing was called"))
        #expect(!r.stderr.contains("calls in"))
    }
}
