import BakeoffCore
import BakeoffHTTP
import Foundation

/// The calls of MLflow's REST API a run needs, over the tool's HTTP client.
///
/// Every failure is a `TrackingError` naming the server and MLflow's own error code and message.
public struct MLflowClient: Sendable {
    public let server: MLflowServer
    let transport: any UpstreamTransport
    /// Per call, connection included.
    let timeoutMs: Int

    public init(server: MLflowServer, transport: any UpstreamTransport, timeoutMs: Int = 30_000) {
        self.server = server
        self.transport = transport
        self.timeoutMs = timeoutMs
    }

    /// A run as MLflow created it.
    public struct Run: Sendable, Equatable {
        public var id: String
        /// Where the run's files go: "mlflow-artifacts:/1/RUN/artifacts" when the server stores them itself.
        public var artifactURI: String
    }

    /// The id of the experiment named `name`; created when there is none.
    public func experimentID(named name: String) throws(TrackingError) -> String {
        if let id = try existingExperiment(named: name) { return id }
        do throws(TrackingError) {
            let answer = try post("experiments/create", body: json { $0.value("name", name) })
            guard let id = answer?.object?["experiment_id"]?.string else { throw badAnswer("experiments/create", "no experiment_id") }
            return id
        } catch let error where error.kind == .refused(status: 400, errorCode: "RESOURCE_ALREADY_EXISTS") {
            // Created by someone else in between.
            if let id = try existingExperiment(named: name) { return id }
            throw error
        }
    }

    private func existingExperiment(named name: String) throws(TrackingError) -> String? {
        let id: String, stage: String?
        do throws(TrackingError) {
            let answer = try call("GET", "experiments/get-by-name?experiment_name=" + percentEncoded(name), body: nil)
            guard let e = answer?.object?["experiment"]?.object, let found = e["experiment_id"]?.string else {
                throw badAnswer("experiments/get-by-name", "no experiment")
            }
            (id, stage) = (found, e["lifecycle_stage"]?.string)
        } catch let error where error.kind == .refused(status: 404, errorCode: "RESOURCE_DOES_NOT_EXIST") {
            return nil
        }
        if stage == "deleted" {
            throw TrackingError(.deletedExperiment, "MLflow at \(server.displayURI): the experiment \"\(name)\" (id \(id)) is deleted and takes no runs: restore it (mlflow experiments restore --experiment-id \(id)) or record into an experiment of another name")
        }
        return id
    }

    /// A new run, RUNNING, with `tags` (MLflow's own: name, source, user).
    public func createRun(experimentID: String, name: String, startTimeMs: Int64, tags: [TrackingRecord.Entry<String>]) throws(TrackingError) -> Run {
        let answer = try post("runs/create", body: json { w in
            w.value("experiment_id", experimentID)
            w.value("run_name", name)
            w.value("start_time", Int(startTimeMs))
            w.array("tags") { w in for t in tags { w.object { w in w.value("key", t.key); w.value("value", t.value) } } }
        })
        guard let info = answer?.object?["run"]?.object?["info"]?.object, let id = info["run_id"]?.string,
              let artifactURI = info["artifact_uri"]?.string else {
            throw badAnswer("runs/create", "no run_id or artifact_uri")
        }
        return Run(id: id, artifactURI: artifactURI)
    }

    public func logBatch(runID: String, _ batch: LogBatch, timestampMs: Int64) throws(TrackingError) {
        _ = try post("runs/log-batch", body: batch.json(runID: runID, timestampMs: timestampMs))
    }

    /// Ends the run: "FINISHED" or "FAILED".
    public func updateRun(runID: String, status: String, endTimeMs: Int64) throws(TrackingError) {
        _ = try post("runs/update", body: json { w in
            w.value("run_id", runID)
            w.value("status", status)
            w.value("end_time", Int(endTimeMs))
        })
    }

    /// Uploads a file through the server's artifact proxy; `path` is the run's artifact URI without its
    /// "mlflow-artifacts:" scheme ("1/RUN/artifacts").
    public func uploadArtifact(path: String, _ artifact: TrackingRecord.Artifact) throws(TrackingError) {
        let segments = (path.split(separator: "/").map(String.init) + [artifact.name]).map(percentEncoded)
        _ = try call("PUT", "/api/2.0/mlflow-artifacts/artifacts/" + segments.joined(separator: "/"), body: artifact.bytes,
                     contentType: artifact.contentType, endpoint: "the upload of \(artifact.name)")
    }

    // MARK: - HTTP

    private func post(_ endpoint: String, body: [UInt8]) throws(TrackingError) -> JSONValue? {
        try call("POST", endpoint, body: body)
    }

    /// One call; `target` is an endpoint under /api/2.0/mlflow/, or a path from the root. The answer's JSON
    /// (nil for an empty body).
    private func call(_ method: String, _ target: String, body: [UInt8]?, contentType: String = "application/json",
                      endpoint: String? = nil) throws(TrackingError) -> JSONValue? {
        let name = endpoint ?? String(target.prefix { $0 != "?" })
        let url = server.uri + (target.hasPrefix("/") ? target : "/api/2.0/mlflow/" + target)
        var headers = ["Accept: application/json"]
        if body != nil { headers.append("Content-Type: \(contentType)") }
        if let authorization = server.authorization { headers.append("Authorization: \(authorization)") }
        var request = UpstreamRequest(url: url, headers: headers, body: body ?? [], timeoutMs: timeoutMs,
                                      connectTimeoutMs: min(timeoutMs, 10_000))
        request.method = method
        let answer = transport.send(request)
        guard answer.status != 0 else {
            // The transport speaks of "the upstream" (its gateway's words).
            let why = oneLine(answer.failure ?? "no answer").replacingOccurrences(of: "the upstream", with: "the server")
            throw TrackingError(.unreachable, "MLflow at \(server.displayURI): \(name): \(why)")
        }
        let parsed = answer.body.isEmpty ? nil : try? JSONValue.parse(answer.body).root
        guard (200..<300).contains(answer.status) else { throw refusal(name, answer, parsed) }
        if !answer.body.isEmpty && parsed == nil {
            throw badAnswer(name, "its answer is not JSON: \(oneLine(answer.text(limit: 200)))")
        }
        return parsed
    }

    /// An error status as a message: MLflow's error code and message, and what to do about the common ones.
    private func refusal(_ name: String, _ answer: HTTPAnswer, _ parsed: JSONValue?) -> TrackingError {
        let code = parsed?.object?["error_code"]?.string
        let mlflowMessage = parsed?.object?["message"]?.string
        let kind = TrackingError.Kind.refused(status: answer.status, errorCode: code)
        let head = "MLflow at \(server.displayURI): \(name) failed with HTTP \(answer.status)"
        if answer.status == 403, code == nil, answer.text().contains("Invalid Host header") {
            return TrackingError(kind, "\(head): it refuses the Host header \"\(server.hostHeader)\" (its protection against DNS rebinding): start the server with --allowed-hosts \(server.hostHeader) (or MLFLOW_SERVER_ALLOWED_HOSTS), or reach it under a name it allows")
        }
        var message = head
        if let code { message += " \(code)" }
        if let mlflowMessage {
            message += ": " + oneLine(mlflowMessage)
        } else if code == nil {
            let text = oneLine(answer.text(limit: 200))
            message += text.isEmpty ? " and no message" : ": \(text)"
            if parsed == nil { message += " (is \(server.displayURI) an MLflow tracking server?)" }
        }
        if answer.status == 401 {
            message += server.credentialSource.map { " (the credentials from \($0) were not accepted)" }
                ?? " (it asks for credentials: set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
        }
        return TrackingError(kind, message)
    }

    private func badAnswer(_ name: String, _ what: String) -> TrackingError {
        TrackingError(.badAnswer, "MLflow at \(server.displayURI): \(name) answered, but not as MLflow does (\(what)); is it an MLflow tracking server?")
    }

    private func json(_ body: (inout JSONWriter) -> Void) -> [UInt8] {
        var w = JSONWriter(pretty: false)
        w.object(nil, body)
        return w.bytes
    }
}

/// The first line of `text`, at most 300 characters: MLflow's messages can carry a whole SQL statement.
func oneLine(_ text: String) -> String {
    let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
    let trimmed = line.trimmingCharacters(in: .whitespaces)
    return trimmed.count > 300 ? String(trimmed.prefix(299)) + "…" : trimmed
}

/// `text` for a URL's path or query: unreserved characters as they are, every other byte %XX.
func percentEncoded(_ text: String) -> String {
    var out = ""
    for b in text.utf8 {
        let c = Character(Unicode.Scalar(b))
        if (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "-._~".contains(c) {
            out.append(c)
        } else {
            out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
        }
    }
    return out
}
