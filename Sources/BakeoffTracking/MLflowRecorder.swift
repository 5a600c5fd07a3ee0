/// A run MLflow holds now.
public struct RecordedRun: Sendable, Equatable {
    public var experimentID: String
    public var runID: String
    /// The run's page in MLflow's UI.
    public var url: String
    /// What the run lacks or has cut, to be said loudly (the run itself is complete otherwise).
    public var warnings: [String]
}

extension MLflowClient {
    /// Records `record` as a new run of the experiment `experimentID`: the run with MLflow's own tags, the
    /// params, metrics and other tags in batches within MLflow's limits, the artifacts, then FINISHED.
    ///
    /// A failure after the run exists marks it FAILED (when the server still answers) and says so. Artifacts
    /// go through the server's artifact proxy; a server that keeps them elsewhere (s3:, a path of its own)
    /// cannot take them over REST: the run is recorded without them, with a warning and a
    /// `bakeoff.artifacts` tag.
    public func record(_ record: TrackingRecord, experimentID: String, now: () -> Int64) throws(TrackingError) -> RecordedRun {
        let standard = record.tags.filter { $0.key.hasPrefix("mlflow.") }
        var tags = record.tags.filter { !$0.key.hasPrefix("mlflow.") }
        let run = try createRun(experimentID: experimentID, name: record.runName, startTimeMs: now(), tags: standard)
        var warnings: [String] = []
        let artifactPath = Self.proxiedArtifactPath(run.artifactURI)
        if artifactPath == nil && !record.artifacts.isEmpty {
            let names = record.artifacts.map(\.name).joined(separator: " and ")
            warnings.append("MLflow at \(server.displayURI) keeps this run's artifacts at \(run.artifactURI), which only MLflow's Python client can write to: \(names) are not in the run (start the server with --artifacts-destination and --default-artifact-root mlflow-artifacts:/ so that it takes them over REST)")
            tags.append(.init("bakeoff.artifacts", "not uploaded: the run's artifact store \(run.artifactURI) is not served by the tracking server"))
        }
        if !record.truncated.isEmpty {
            warnings.append("\(record.truncated.count) values were cut to MLflow's length limits (\(record.truncated.joined(separator: ", "))); report.json has them whole")
        }
        do throws(TrackingError) {
            for batch in LogBatch.chunk(metrics: record.metrics, params: record.params, tags: tags) {
                try logBatch(runID: run.id, batch, timestampMs: now())
            }
            if let artifactPath {
                for artifact in record.artifacts { try uploadArtifact(path: artifactPath, artifact) }
            }
            try updateRun(runID: run.id, status: "FINISHED", endTimeMs: now())
        } catch {
            var failed = error
            do throws(TrackingError) {
                try updateRun(runID: run.id, status: "FAILED", endTimeMs: now())
                failed.message += "; run \(run.id) is marked FAILED"
            } catch {
                failed.message += "; run \(run.id) could not be marked FAILED either and stays RUNNING"
            }
            throw failed
        }
        return RecordedRun(experimentID: experimentID, runID: run.id, url: server.runURL(experimentID: experimentID, runID: run.id),
                           warnings: warnings)
    }

    /// "1/RUN/artifacts" of "mlflow-artifacts:/1/RUN/artifacts" (or of "mlflow-artifacts://host:port/1/..."); nil
    /// for any other artifact store.
    package static func proxiedArtifactPath(_ artifactURI: String) -> String? {
        let scheme = "mlflow-artifacts:"
        guard artifactURI.hasPrefix(scheme) else { return nil }
        var rest = Substring(artifactURI.dropFirst(scheme.count))
        if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
            rest = rest[(rest.firstIndex(of: "/") ?? rest.endIndex)...]
        }
        let path = rest.split(separator: "/").joined(separator: "/")
        return path.isEmpty ? nil : path
    }
}
