import BakeoffCore
import BakeoffHTTP
import BakeoffTestSupport
import BakeoffTracking
import Testing

/// An MLflow server in process: each call answered by `route` from its method and path (from the root, with
/// the query), and every call kept.
struct FakeMLflow {
    typealias Script = FakeUpstream.Script
    static let base = "http://mlflow.test:5000"
    let upstream: FakeUpstream

    init(_ route: @escaping @Sendable (_ method: String, _ path: String, _ n: Int) -> Script) {
        upstream = FakeUpstream { request, n in route(request.method, String(request.url.dropFirst(Self.base.count)), n) }
    }

    func client(environment: [String: String] = [:]) throws -> MLflowClient {
        MLflowClient(server: try MLflowServer(uri: Self.base, environment: environment), transport: upstream)
    }

    /// "POST /api/2.0/mlflow/runs/create", ... in order.
    var calls: [String] { upstream.calls.map { "\($0.request.method) \($0.request.url.dropFirst(Self.base.count))" } }

    /// The JSON body of the call number `n`.
    func body(_ n: Int) throws -> JSONValue { try JSONValue.parse(upstream.calls[n].request.body).root }

    static func text(_ status: Int, _ text: String, contentType: String = "text/plain") -> Script {
        Script([.head(status: status, contentType: contentType, headers: []), .data(Array(text.utf8)), .finish(.completed(status: status))])
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> Script {
        var w = JSONWriter(pretty: false)
        w.object { w in w.value("error_code", code); w.value("message", message) }
        return .json(w.text, status: status)
    }

    /// A server that works: experiment 7 exists when `exists`, the run is r1, artifacts under `artifactURI`.
    static func working(exists: Bool = true, artifactURI: String = "mlflow-artifacts:/7/r1/artifacts") -> @Sendable (String, String, Int) -> Script {
        { method, path, _ in
            if path.hasPrefix("/api/2.0/mlflow/experiments/get-by-name") {
                return exists ? .json(#"{"experiment": {"experiment_id": "7", "name": "e", "lifecycle_stage": "active"}}"#)
                    : error(404, "RESOURCE_DOES_NOT_EXIST", "Could not find experiment with name 'e'")
            }
            switch path {
            case "/api/2.0/mlflow/experiments/create": return .json(#"{"experiment_id": "7"}"#)
            case "/api/2.0/mlflow/runs/create": return .json(#"{"run": {"info": {"run_id": "r1", "experiment_id": "7", "artifact_uri": "\#(artifactURI)"}}}"#)
            case "/api/2.0/mlflow/runs/log-batch", "/api/2.0/mlflow/runs/update": return .json("{}")
            default: return method == "PUT" ? .json("") : text(404, "<html>not found</html>", contentType: "text/html")
            }
        }
    }
}

@Suite("MLflow's REST API through a fake transport")
struct MLflowClientTests {
    @Test func aMissingExperimentIsCreated() throws {
        let fake = FakeMLflow(FakeMLflow.working(exists: false))
        #expect(try fake.client().experimentID(named: "support bot/v2") == "7")
        #expect(fake.calls == ["GET /api/2.0/mlflow/experiments/get-by-name?experiment_name=support%20bot%2Fv2",
                               "POST /api/2.0/mlflow/experiments/create"])
        #expect(try fake.body(1).object?["name"]?.string == "support bot/v2")
    }

    @Test func anExperimentCreatedByAnotherClientInBetweenIsTaken() throws {
        let fake = FakeMLflow { _, path, n in
            switch n {
            case 0: return FakeMLflow.error(404, "RESOURCE_DOES_NOT_EXIST", "Could not find experiment with name 'e'")
            case 1: return FakeMLflow.error(400, "RESOURCE_ALREADY_EXISTS", "Experiment(name=e) already exists.")
            default: return .json(#"{"experiment": {"experiment_id": "9", "lifecycle_stage": "active"}}"#)
            }
        }
        #expect(try fake.client().experimentID(named: "e") == "9")
        #expect(fake.calls.count == 3)
    }

    @Test func aDeletedExperimentIsSaidWithWhatToDo() throws {
        let fake = FakeMLflow { _, _, _ in .json(#"{"experiment": {"experiment_id": "2", "name": "gone", "lifecycle_stage": "deleted"}}"#) }
        let error = try #require(throws: TrackingError.self) { try fake.client().experimentID(named: "gone") }
        #expect(error.kind == .deletedExperiment)
        #expect(error.message.contains("\"gone\" (id 2) is deleted"))
        #expect(error.message.contains("mlflow experiments restore --experiment-id 2"))
    }

    @Test func anUnreachableServerIsNamedWithWhyInOneLine() throws {
        let fake = FakeMLflow { _, _, _ in .failure(.unreachable, "cannot reach the upstream: Could not connect to server") }
        let error = try #require(throws: TrackingError.self) { try fake.client().experimentID(named: "e") }
        #expect(error.kind == .unreachable)
        #expect(error.message == "MLflow at http://mlflow.test:5000: experiments/get-by-name: cannot reach the server: Could not connect to server")
    }

    @Test func mlflowsErrorCodeAndMessageAreSaidOnOneLine() throws {
        // MLflow appends the whole SQL statement to some messages.
        let fake = FakeMLflow { _, _, _ in
            FakeMLflow.error(400, "INVALID_PARAMETER_VALUE", "Invalid value \"a//b\" for parameter 'params[0].key'\n[SQL: INSERT INTO ...]\n(Background ...)")
        }
        let error = try #require(throws: TrackingError.self) {
            try fake.client().createRun(experimentID: "7", name: "r", startTimeMs: 1, tags: [])
        }
        #expect(error.kind == .refused(status: 400, errorCode: "INVALID_PARAMETER_VALUE"))
        #expect(error.message == "MLflow at http://mlflow.test:5000: runs/create failed with HTTP 400 INVALID_PARAMETER_VALUE: Invalid value \"a//b\" for parameter 'params[0].key'")
    }

    @Test func aRefusedHostHeaderIsExplained() throws {
        let fake = FakeMLflow { _, _, _ in FakeMLflow.text(403, "Invalid Host header - possible DNS rebinding attack detected") }
        let error = try #require(throws: TrackingError.self) { try fake.client().experimentID(named: "e") }
        #expect(error.kind == .refused(status: 403, errorCode: nil))
        #expect(error.message.contains("refuses the Host header \"mlflow.test:5000\""))
        #expect(error.message.contains("--allowed-hosts mlflow.test:5000"))
    }

    @Test func aPermissionErrorKeepsMLflowsWords() throws {
        let fake = FakeMLflow { _, _, _ in FakeMLflow.error(403, "PERMISSION_DENIED", "Permission denied") }
        let error = try #require(throws: TrackingError.self) { try fake.client().experimentID(named: "e") }
        #expect(error.message == "MLflow at http://mlflow.test:5000: experiments/get-by-name failed with HTTP 403 PERMISSION_DENIED: Permission denied")
    }

    @Test func missingOrRefusedCredentialsSayWhereCredentialsComeFrom() throws {
        let fake = FakeMLflow { _, _, _ in FakeMLflow.text(401, "You are not authenticated. Please see the documentation.") }
        let anonymous = try #require(throws: TrackingError.self) { try fake.client().experimentID(named: "e") }
        #expect(anonymous.message.contains("You are not authenticated"))
        #expect(anonymous.message.contains("set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"))
        let client = try fake.client(environment: ["MLFLOW_TRACKING_TOKEN": "wrong"])
        let refused = try #require(throws: TrackingError.self) { try client.experimentID(named: "e") }
        #expect(refused.message.hasSuffix("(the credentials from MLFLOW_TRACKING_TOKEN were not accepted)"))
        #expect(fake.upstream.calls.last?.request.headers.contains("Authorization: Bearer wrong") == true)
    }

    @Test func somethingElseThanMLflowIsSuspected() throws {
        let fake = FakeMLflow { _, _, _ in FakeMLflow.text(404, "<!doctype html>\n<title>404 Not Found</title>", contentType: "text/html") }
        let error = try #require(throws: TrackingError.self) { try fake.client().experimentID(named: "e") }
        #expect(error.message == "MLflow at http://mlflow.test:5000: experiments/get-by-name failed with HTTP 404: <!doctype html> (is http://mlflow.test:5000 an MLflow tracking server?)")
        let notJSON = FakeMLflow { _, _, _ in FakeMLflow.text(200, "hello") }
        let bad = try #require(throws: TrackingError.self) { try notJSON.client().experimentID(named: "e") }
        #expect(bad.kind == .badAnswer)
    }
}
