import BakeoffCore
import BakeoffHTTP
import BakeoffTracking
import Foundation

/// `--mlflow URI` and `--mlflow-experiment NAME`, declared once for `analyze` and `eval`.
let mlflowOptions: [Option] = [
    .single("--mlflow", "URI", "Also record the run in this MLflow tracking server (http:// or https://): the plan as params, the results as metrics, the decision as tags, the JSON and HTML reports as artifacts. Credentials from MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (README: \"Recording runs in MLflow\")"),
    .single("--mlflow-experiment", "NAME", "The MLflow experiment the run goes into, created when missing", default: "the experiment's name"),
]

/// Where `--mlflow` records. Read before any work, so a bad URL or half the credentials are a usage mistake.
struct MLflowTarget {
    var server: MLflowServer
    /// `--mlflow-experiment`, nil for the experiment's own name.
    var experiment: String?

    /// `uri` and `experiment` as `--mlflow` and `--mlflow-experiment` gave them (each command reads its own options).
    init?(uri: String?, experiment: String?) throws(UsageError) {
        guard let uri else {
            if experiment != nil { throw UsageError("--mlflow-experiment names the MLflow experiment --mlflow records into: give --mlflow URI too") }
            return nil
        }
        if let experiment, experiment.trimmingCharacters(in: .whitespaces).isEmpty { throw UsageError("--mlflow-experiment needs a name") }
        do {
            server = try MLflowServer(uri: uri, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw UsageError("--mlflow: \(error.message)")
        }
        self.experiment = experiment
    }

    /// Who runs the command, for the run's `mlflow.user` (as MLflow's client finds it).
    static var user: String? {
        let env = ProcessInfo.processInfo.environment
        return env["LOGNAME"] ?? env["USER"] ?? env["USERNAME"]
    }

    /// The id of the experiment the run goes into (created when missing); `name` unless `--mlflow-experiment`.
    func experimentID(default name: String) throws(TrackingError) -> String {
        try withClient { client throws(TrackingError) in try client.experimentID(named: experiment ?? name) }
    }

    /// Records `record` and says on stderr how it went: the run's id and page, warnings, or the one line of
    /// why not. False when it failed (the command then exits 1, its report printed all the same).
    func record(_ record: TrackingRecord, experimentID known: String? = nil, _ console: Console) -> Bool {
        do throws(TrackingError) {
            let run = try withClient { client throws(TrackingError) in
                let id = if let known { known } else { try client.experimentID(named: experiment ?? record.experiment) }
                return try client.record(record, experimentID: id, now: { Int64(Date().timeIntervalSince1970 * 1000) })
            }
            for warning in run.warnings { console.printError("warning: \(warning)") }
            console.printError("recorded in MLflow as run \(run.runID): \(run.url)")
            return true
        } catch {
            console.printError(error.message)
            return false
        }
    }

    private func withClient<T>(_ body: (MLflowClient) throws(TrackingError) -> T) throws(TrackingError) -> T {
        let transport = UpstreamClient()
        defer { transport.shutdown() }
        return try body(MLflowClient(server: server, transport: transport))
    }
}
