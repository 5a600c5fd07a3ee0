import BakeoffCore
import BakeoffReport
import BakeoffStore
import Foundation

/// What a request asks for, by method and path.
package enum GatewayRoute: Equatable, Sendable {
    case proxy(Endpoint)
    case feedback
    case models
    case assignments
    case health
    case metrics
    /// `GET /v1/experiments/NAME/report` (the name percent-decoded).
    case report(experiment: String)
    /// `GET /v1/experiments/NAME/timeseries`: the report at the end of each day, as JSON.
    case timeSeries(experiment: String)

    /// The paths `route` knows, for telling a wrong method (405) from an unknown path (404).
    package static let knownPaths: Set<String> = ["/v1/chat/completions", "/v1/completions", "/v1/feedback", "/v1/models", "/v1/assignments", "/healthz", "/metrics"]

    /// The route of a request, or the error to answer: 405 for a known path with another method, 404 else.
    package static func route(method: String, path: String) -> Result<GatewayRoute, OpenAIError> {
        switch (method, path) {
        case ("POST", "/v1/chat/completions"): return .success(.proxy(.chatCompletions))
        case ("POST", "/v1/completions"): return .success(.proxy(.completions))
        case ("POST", "/v1/feedback"): return .success(.feedback)
        case ("GET", "/v1/models"): return .success(.models)
        case ("GET", "/v1/assignments"): return .success(.assignments)
        case ("GET", "/healthz"): return .success(.health)
        case ("GET", "/metrics"): return .success(.metrics)
        // The server has percent-decoded the path once: the name between is the name ("/" and "%" included).
        case ("GET", let path) where path.hasPrefix("/v1/experiments/") && path.hasSuffix("/timeseries"):
            return .success(.timeSeries(experiment: String(path.dropFirst("/v1/experiments/".count).dropLast("/timeseries".count))))
        case ("GET", let path) where path.hasPrefix("/v1/experiments/") && path.hasSuffix("/report"):
            return .success(.report(experiment: String(path.dropFirst("/v1/experiments/".count).dropLast("/report".count))))
        default:
            if knownPaths.contains(path) {
                return .failure(OpenAIError(status: 405, message: "\(method) is not allowed on \(path)", type: "invalid_request_error", code: "method_not_allowed"))
            }
            return .failure(.notFound("no such endpoint: \(method) \(path)"))
        }
    }
}

/// The answers of the small endpoints, as values: no I/O.
package enum GatewayPages {
    /// `GET /v1/models`: the model aliases, as OpenAI lists models.
    package static func models(_ config: GatewayConfig, created: Int) -> String {
        let items = config.experiments.map { "{\"id\":\(JSONWriter.quote($0.model)),\"object\":\"model\",\"created\":\(created),\"owned_by\":\"bakeoff\"}" }
        return "{\"object\":\"list\",\"data\":[\(items.joined(separator: ","))]}"
    }

    /// `GET /v1/assignments?experiment=NAME&user=ID`: a user's variant and bucket, or why not.
    package static func assignment(query: [String: String], config: GatewayConfig, isAdmin: Bool) -> Result<String, OpenAIError> {
        guard let name = query["experiment"], !name.isEmpty else {
            return .failure(OpenAIError(status: 400, message: "give the experiment: /v1/assignments?experiment=NAME&user=ID", type: "invalid_request_error", code: "missing_parameter", param: "experiment"))
        }
        guard let experiment = config.experiment(named: name) ?? config.experiment(forModel: name) else {
            return .failure(OpenAIError(status: 404, message: "no experiment \"\(name)\" (experiments: \(config.experiments.map(\.name).joined(separator: ", ")))", type: "invalid_request_error", code: "experiment_not_found", param: "experiment"))
        }
        if !config.exposesVariant(experiment) && !isAdmin {
            return .failure(OpenAIError(status: 403, message: "experiment \(experiment.name) is blind (expose_variant is false): assignments are for the admin key only", type: "permission_error", code: "variant_hidden"))
        }
        guard let user = query["user"], !user.isEmpty else {
            return .failure(OpenAIError(status: 400, message: "give the user: /v1/assignments?experiment=\(name)&user=ID", type: "invalid_request_error", code: "missing_parameter", param: "user"))
        }
        let bucket = experiment.assigner.bucket(for: user)
        let variant = experiment.variants[experiment.assigner.armIndex(forBucket: bucket)]
        return .success("{\"experiment\":\(JSONWriter.quote(experiment.name)),\"model\":\(JSONWriter.quote(experiment.model)),\"user\":\(JSONWriter.quote(user)),\"variant\":\(JSONWriter.quote(variant.name)),\"bucket\":\(bucket),\"upstream_model\":\(JSONWriter.quote(variant.upstream.model))}")
    }

    /// `GET /healthz`: 200 while the store writes, 503 with the reason while its writes fail. Other gateways of a
    /// shared store running a different plan make it "degraded", still 200: this gateway serves correctly, but
    /// the experiment's users are not all under one plan until the gateways are the same again.
    /// `traceExportError`: why the last span export failed (the gateway serves, but its traces are not
    /// arriving: degraded, still 200).
    package static func health(_ health: StoreHealth, replicaProblems: [String] = [], traceExportError: String? = nil) -> (status: Int, body: String) {
        var list = replicaProblems
        if let traceExportError { list.append("trace export failing: " + traceExportError) }
        let problems = list.isEmpty ? "" : ",\"problems\":[" + list.map(JSONWriter.quote).joined(separator: ",") + "]"
        if case .failing(_, let reason) = health {
            return (503, "{\"status\":\"unavailable\",\"reason\":\(JSONWriter.quote(reason))\(problems)}")
        }
        return (200, list.isEmpty ? "{\"status\":\"ok\"}" : "{\"status\":\"degraded\"\(problems)}")
    }

    /// One sentence per other gateway of a shared store running a different plan: which, and what differs there.
    package static func replicaProblems(_ others: [ReplicaPlans.OtherPlan], mine: [String: String]) -> [String] {
        others.map { other in
            let changes = PlanSnapshot(text: other.plan).changes(from: PlanSnapshot(text: mine[other.experiment] ?? ""))
            return "experiment \(JSONWriter.quote(other.experiment)): the gateway \(other.gateway) sharing the store runs a different plan (there: \(changes.joined(separator: "; ")))"
        }
    }

    /// What a report request asks for: the experiment and the format, or why not (admin only).
    package static func report(experiment name: String, query: [String: String], config: GatewayConfig, isAdmin: Bool, access: AccessCheck) -> Result<(GatewayExperiment, ReportFormat), OpenAIError> {
        guard isAdmin else { return .failure(access.adminRefusal()) }
        guard let experiment = config.experiment(named: name) else {
            return .failure(OpenAIError(status: 404, message: "no experiment \"\(name)\" (experiments: \(config.experiments.map(\.name).joined(separator: ", ")))", type: "invalid_request_error", code: "experiment_not_found"))
        }
        let formatName = query["format"] ?? "json"
        guard let format = ReportFormat(rawValue: formatName) else {
            return .failure(OpenAIError(status: 400, message: "format must be one of \(ReportFormat.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(formatName)\"", type: "invalid_request_error", code: "bad_format", param: "format"))
        }
        return .success((experiment, format))
    }

    /// The Content-Type of a report format.
    package static func contentType(_ format: ReportFormat) -> String {
        switch format {
        case .json: "application/json"
        case .markdown: "text/markdown; charset=utf-8"
        case .html: "text/html; charset=utf-8"
        case .table: "text/plain; charset=utf-8"
        }
    }
}
