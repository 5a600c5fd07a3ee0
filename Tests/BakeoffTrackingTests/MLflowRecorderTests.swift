import BakeoffCore
import BakeoffHTTP
import BakeoffTestSupport
import BakeoffTracking
import Synchronization
import Testing

@Suite("Recording a run: batches, artifacts, the run's end")
struct MLflowRecorderTests {
    static func record(metrics: Int = 3) -> TrackingRecord {
        var b = RecordBuilder(runName: "case-study to 2026-11-14", experiment: "case-study")
        b.tag(["mlflow.runName"], "case-study to 2026-11-14")
        b.tag(["mlflow.source.name"], "bakeoff analyze")
        b.tag(["bakeoff.decision"], "ship")
        b.param(["alpha"], 0.05)
        for i in 0..<metrics { b.metric(["m\(i)", "treatment", "lift"], Double(i) / 100) }
        var record = b.record
        record.artifacts = [.init(name: "report.json", contentType: "application/json", text: "{}\n"),
                            .init(name: "report.html", contentType: "text/html; charset=utf-8", text: "<html></html>")]
        return record
    }

    /// Milliseconds that go up by one at each look.
    static func clock() -> () -> Int64 {
        let t = Mutex<Int64>(1_000)
        return { t.withLock { $0 += 1; return $0 } }
    }

    @Test func aRunIsCreatedFilledUploadedAndFinished() throws {
        let fake = FakeMLflow(FakeMLflow.working())
        let run = try fake.client(environment: ["MLFLOW_TRACKING_TOKEN": "tok"]).record(Self.record(), experimentID: "7", now: Self.clock())
        #expect(fake.calls == ["POST /api/2.0/mlflow/runs/create", "POST /api/2.0/mlflow/runs/log-batch",
                               "PUT /api/2.0/mlflow-artifacts/artifacts/7/r1/artifacts/report.json",
                               "PUT /api/2.0/mlflow-artifacts/artifacts/7/r1/artifacts/report.html",
                               "POST /api/2.0/mlflow/runs/update"])
        #expect((run.experimentID, run.runID, run.url) == ("7", "r1", "http://mlflow.test:5000/#/experiments/7/runs/r1"))
        #expect(run.warnings.isEmpty)
        // MLflow's own tags come with the run; the rest in the batch.
        let create = try fake.body(0).object!
        #expect(create["experiment_id"]?.string == "7" && create["run_name"]?.string == "case-study to 2026-11-14")
        #expect(create["tags"]?.array?.compactMap { $0.object?["key"]?.string } == ["mlflow.runName", "mlflow.source.name"])
        let batch = try fake.body(1).object!
        #expect(batch["run_id"]?.string == "r1")
        #expect(batch["tags"]?.array?.compactMap { $0.object?["key"]?.string } == ["bakeoff.decision"])
        #expect(batch["params"]?.array?.first?.object?["value"]?.string == "0.05")
        #expect(batch["metrics"]?.array?.count == 3)
        #expect(batch["metrics"]?.array?[1].object?["value"]?.number == 0.01)
        #expect(batch["metrics"]?.array?[1].object?["step"]?.number == 0)
        let update = try fake.body(4).object!
        #expect(update["status"]?.string == "FINISHED" && update["end_time"]?.number != nil)
        let put = fake.upstream.calls[2].request
        #expect(put.body == Array("{}\n".utf8))
        #expect(put.headers.contains("Content-Type: application/json"))
        #expect(fake.upstream.calls.allSatisfy { $0.request.headers.contains("Authorization: Bearer tok") })
    }

    @Test func manyMetricsGoInSeveralBatches() throws {
        let fake = FakeMLflow(FakeMLflow.working())
        _ = try fake.client().record(Self.record(metrics: 2500), experimentID: "7", now: Self.clock())
        #expect(fake.calls.filter { $0.hasSuffix("runs/log-batch") }.count == 3)
    }

    @Test func aFailureMidWayMarksTheRunFailedAndSaysSo() throws {
        let fake = FakeMLflow { method, path, n in
            path.hasSuffix("runs/log-batch") ? FakeMLflow.error(500, "INTERNAL_ERROR", "database is locked") : FakeMLflow.working()(method, path, n)
        }
        let error = try #require(throws: TrackingError.self) { try fake.client().record(Self.record(), experimentID: "7", now: Self.clock()) }
        #expect(error.message == "MLflow at http://mlflow.test:5000: runs/log-batch failed with HTTP 500 INTERNAL_ERROR: database is locked; run r1 is marked FAILED")
        #expect(fake.calls.last == "POST /api/2.0/mlflow/runs/update")
        #expect(try fake.body(fake.calls.count - 1).object?["status"]?.string == "FAILED")
        #expect(!fake.calls.contains { $0.hasPrefix("PUT") })
    }

    @Test func aServerThatGoesAwayLeavesTheRunRunningAndSaysSo() throws {
        let fake = FakeMLflow { method, path, n in
            path.hasPrefix("/api/2.0/mlflow-artifacts") || path.hasSuffix("runs/update") ? .failure(.unreachable) : FakeMLflow.working()(method, path, n)
        }
        let error = try #require(throws: TrackingError.self) { try fake.client().record(Self.record(), experimentID: "7", now: Self.clock()) }
        #expect(error.kind == .unreachable)
        #expect(error.message.hasPrefix("MLflow at http://mlflow.test:5000: the upload of report.json: cannot reach the server"))
        #expect(error.message.hasSuffix("; run r1 could not be marked FAILED either and stays RUNNING"))
    }

    @Test func artifactsTheServerDoesNotServeAreLeftOutLoudly() throws {
        let fake = FakeMLflow(FakeMLflow.working(artifactURI: "s3://bucket/mlflow/7/r1/artifacts"))
        let run = try fake.client().record(Self.record(), experimentID: "7", now: Self.clock())
        #expect(!fake.calls.contains { $0.hasPrefix("PUT") })
        #expect(run.warnings.count == 1)
        #expect(run.warnings[0].contains("s3://bucket/mlflow/7/r1/artifacts"))
        #expect(run.warnings[0].contains("report.json and report.html are not in the run"))
        let tags = try fake.body(1).object?["tags"]?.array?.compactMap { $0.object?["key"]?.string }
        #expect(tags == ["bakeoff.decision", "bakeoff.artifacts"])
        #expect(try fake.body(fake.calls.count - 1).object?["status"]?.string == "FINISHED")
    }

    @Test func valuesCutToTheLimitsAreAWarning() throws {
        let fake = FakeMLflow(FakeMLflow.working())
        var b = RecordBuilder(runName: "r", experiment: "e")
        b.tag(["bakeoff.warnings"], String(repeating: "w", count: 9000))
        let run = try fake.client().record(b.record, experimentID: "7", now: Self.clock())
        #expect(run.warnings == ["1 values were cut to MLflow's length limits (bakeoff.warnings); report.json has them whole"])
    }

    @Test func theArtifactPathComesFromTheRunsArtifactURI() {
        #expect(MLflowClient.proxiedArtifactPath("mlflow-artifacts:/1/abc/artifacts") == "1/abc/artifacts")
        #expect(MLflowClient.proxiedArtifactPath("mlflow-artifacts://mlflow.example.com:5000/1/abc/artifacts") == "1/abc/artifacts")
        #expect(MLflowClient.proxiedArtifactPath("s3://bucket/1/abc/artifacts") == nil)
        #expect(MLflowClient.proxiedArtifactPath("/srv/mlruns/1/abc/artifacts") == nil)
        #expect(MLflowClient.proxiedArtifactPath("mlflow-artifacts:") == nil)
    }
}
