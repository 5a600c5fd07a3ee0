import Foundation
import BakeoffCore
import BakeoffStore
import BakeoffHTTP
import BakeoffEval
import BakeoffTelemetry

/// The configuration of `bakeoff serve`: where to listen, where to store events, and the experiments the
/// gateway routes (each a model alias split between upstream OpenAI-compatible servers).
///
/// Load with `GatewayConfig.load(path:)`. Every problem found is reported with its JSON path
/// (`gateway.json: experiments[0].variants[1].upstream.base_url: must start with http:// or https://`);
/// when there are several, the thrown `ConfigError` lists each on its own line
/// (`GatewayConfig.validate` returns them one by one).
public struct GatewayConfig: Sendable {
    /// IPv4 address to bind (`"localhost"` in the file is stored as `127.0.0.1`).
    public var listenHost: String
    public var listenPort: UInt16
    /// HTTP worker threads (1...64).
    public var threads: Int
    /// Request bodies larger than this get 413.
    public var maxBodyBytes: Int
    /// Header naming the user when the body has no `"user"`.
    public var userHeader: String
    /// Whether prompt and response text are stored (experiments may override; see `GatewayExperiment.logContent`).
    public var logContent: Bool
    /// The environment variable holding the admin bearer token.
    public var adminKeyEnv: String
    /// Its value at load time; nil when the variable is unset or empty.
    public var adminKey: String?
    /// The event store: an SQLite file, as given (relative paths are relative to the working directory), or a
    /// PostgreSQL URL (`store.url`; `PostgresLocation.isURL`) that several gateways may share.
    public var storePath: String
    /// The PostgreSQL password, from the variable `store.password_env` names at load time (nil: libpq's own
    /// PGPASSWORD, a password file, or none).
    public var storePassword: String?
    public var flushIntervalMs: Int
    public var queueCapacity: Int

    /// Why this gateway may not use its PostgreSQL store as configured, or nil. Gateways that share a store must
    /// sign feedback tokens with one key: with a random key per start, a token one gateway gave would be refused
    /// by the next, and the user's feedback lost.
    public var sharedStoreProblem: String? {
        guard PostgresLocation.isURL(storePath), access.feedbackKey == nil else { return nil }
        return Self.sharedStoreNeedsKey(access.feedbackKeyEnv)
    }

    static func sharedStoreNeedsKey(_ variable: String) -> String {
        "gateways sharing a PostgreSQL store must sign feedback tokens with one key: set $\(variable) (at least \(minimumSecretBytes) bytes) to the same value for every gateway"
    }
    /// Events older than this many days are deleted from the store (`store.retention_days`); nil keeps them all.
    public var retentionDays: Int? = nil
    /// Eval caches whose kept reports the dashboard lists (`bakeoff serve --evals`; not in the config file).
    public var dashboardEvalCaches: [String] = []
    public var experiments: [GatewayExperiment]
    /// Where the config came from (the file path, or the `source` given to `parse`).
    public var source: String
    /// Client keys, feedback tokens, what clients see of the assignment, the feedback cap.
    public var access = GatewayAccess()
    /// Where each request's span goes (`otlp`, or the `OTEL_*` variables); nil: no trace export.
    public var traceExport: ExportSettings?
    /// What the `OTEL_*` variables asked that is done otherwise, for stderr at the start.
    public var traceExportNotes: [String] = []

    /// Admin keys, client keys and the feedback-token key must be at least this long (bytes): a short
    /// secret can be guessed.
    public static let minimumSecretBytes = 16

    /// Whether clients may see `experiment`'s variant (response header, feedback reply, assignments).
    public func exposesVariant(_ experiment: GatewayExperiment) -> Bool {
        experiment.exposesVariantSetting ?? access.exposeVariant
    }
    /// Connection limits, deadlines and the memory budget of the HTTP server.
    public var limits = GatewayLimits()

    /// Defaults of every optional key.
    public enum Defaults {
        public static let listen = "127.0.0.1:8080"
        public static let threads = 2
        public static let maxBodyBytes = 10 * 1024 * 1024
        public static let userHeader = "X-Bakeoff-User"
        public static let adminKeyEnv = "BAKEOFF_ADMIN_KEY"
        public static let storePath = "bakeoff.db"
        public static let flushIntervalMs = 50
        public static let queueCapacity = 100_000
        public static let timeoutMs = 300_000
        public static let connectTimeoutMs = 5_000
        public static let maxConnections = 16_384
        public static let headerTimeoutMs = 10_000
        public static let bodyTimeoutMs = 30_000
        public static let idleTimeoutMs = 75_000
        public static let memoryBudgetBytes = 256 * 1024 * 1024
    }

    /// Sampling-parameter keys a variant may not override: the gateway takes them from the client's request.
    public static let refusedParameters = ClientRequest.reservedParameterKeys.union(["user"])

    /// Reads and validates the config at `path`; API keys are resolved from `environment`.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> GatewayConfig {
        try validate(path: path, environment: environment).get()
    }

    /// Parses and validates `data`; errors name `source` and the JSON path.
    public static func parse(_ data: Data, source: String, environment: [String: String]) throws(ConfigError) -> GatewayConfig {
        try validate(data, source: source, environment: environment).get()
    }

    /// Like `load`, but returns every problem found separately.
    public static func validate(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> Result<GatewayConfig, GatewayConfigErrors> {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return .failure(GatewayConfigErrors([ConfigError(source: path, path: "", message: "is a directory, not a config file")]))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            let message = FileManager.default.fileExists(atPath: path)
                ? "cannot be read (check its permissions)"
                : "no such file (see examples/gateway.json for a complete config)"
            return .failure(GatewayConfigErrors([ConfigError(source: path, path: "", message: message)]))
        }
        return validate(data, source: path, environment: environment)
    }

    /// Like `parse`, but returns every problem found separately.
    public static func validate(_ data: Data, source: String, environment: [String: String]) -> Result<GatewayConfig, GatewayConfigErrors> {
        let root: ConfigObject, duplicates: [JSONDuplicateKey]
        do { (root, duplicates) = try ConfigObject.parseDocument(data, source: source) } catch {
            return .failure(GatewayConfigErrors([error]))
        }
        let parser = GatewayConfigParser(source: source, environment: environment)
        for duplicate in duplicates {
            parser.problems.add(ConfigError(source: source, path: duplicate.path, message: ConfigObject.duplicateKeyMessage))
        }
        let config = parser.parseRoot(root)
        if let config, parser.problems.list.isEmpty { return .success(config) }
        return .failure(GatewayConfigErrors(parser.problems.list))
    }

    /// The experiment whose alias (`"model"`) is `alias`.
    public func experiment(forModel alias: String) -> GatewayExperiment? {
        experiments.first { $0.model == alias }
    }

    /// The experiment named `name`.
    public func experiment(named name: String) -> GatewayExperiment? {
        experiments.first { $0.name == name }
    }

    /// The listen address as `host:port`.
    public var listenAddress: String { "\(listenHost):\(listenPort)" }

    /// Human-readable summary for `bakeoff serve --check`. API keys are never printed, only whether their
    /// environment variable is set.
    public func summary() -> String {
        var lines: [String] = []
        lines.append("Config \(source): OK, \(experiments.count) experiment\(experiments.count == 1 ? "" : "s")")
        lines.append("  listen     http://\(listenAddress) (\(threads) thread\(threads == 1 ? "" : "s"), request bodies up to \(formatBytes(maxBodyBytes)))")
        lines.append("  users      \"user\" in the request body, else header \(userHeader)")
        lines.append("  limits     \(limits.summary)")
        lines.append("  store      \(storePath) (flush every \(flushIntervalMs) ms, queue of \(queueCapacity) events, \(retentionDays.map { "events kept \($0) day\($0 == 1 ? "" : "s")" } ?? "events kept forever"))")
        lines.append("  admin      bearer token from $\(adminKeyEnv) (\(adminKey == nil ? "not set" : "set"))")
        lines.append("  clients    " + (access.clientKeysEnv.map { "need one of the \(access.clientKeys.count) key\(access.clientKeys.count == 1 ? "" : "s") in $\($0)" } ?? "any client (no client keys)"))
        lines.append("  feedback   from the request's user, or a signed token (key from $\(access.feedbackKeyEnv): \(access.feedbackKey == nil ? "not set, a random key per start" : "set"); valid \(access.feedbackTokenLifetimeSeconds / 3600) h); at most \(access.feedbackLimit) per request or conversation and name")
        lines.append("  content    \(logContent ? "prompt and response text stored" : "not stored") by default")
        if let t = traceExport {
            lines.append("  traces     OTLP \(t.encoding.rawValue) to \(t.endpoint) as service \(t.serviceName)\(t.headers.isEmpty ? "" : " with headers " + t.headers.map { String($0.prefix { $0 != ":" }) }.joined(separator: ", ")) (batches of \(t.batchSize) every \(t.exportIntervalMs) ms, queue of \(t.queueSize))")
        } else {
            lines.append("  traces     not exported (add \"otlp\" or set OTEL_EXPORTER_OTLP_ENDPOINT)")
        }
        for e in experiments {
            lines.append("")
            lines.append("experiment \(e.name): clients send \"model\": \"\(e.model)\"")
            if !exposesVariant(e) { lines.append("  variants hidden from clients (blind): no variant header, no variant in feedback replies, assignments admin-only") }
            lines.append("  control variant \(e.control); users without an ID: \(e.perRequestAssignment ? "assigned at random per request" : "rejected (400)"); content \(e.logContent ? "stored" : "not stored")")
            var plan: [String] = []
            if let primary = e.analysis.primaryMetric { plan.append("primary metric \(primary)") }
            if let alpha = e.analysis.alpha { plan.append("alpha \(JSONWriter.number(alpha))") }
            if let power = e.analysis.power { plan.append("power \(JSONWriter.number(power))") }
            if let mde = e.analysis.minimumDetectableEffect {
                plan.append(e.analysis.minimumDetectableEffectIsRelative ? "mde \(JSONWriter.number(mde * 100))% relative" : "mde \(JSONWriter.number(mde))")
            }
            let live = e.livePlan
            switch live.method {
            case .sequential: plan.append("sequential (N* \(JSONWriter.number(live.sequentialTuning)))")
            case .fixed: plan.append("fixed horizon")
            case .groupSequential, .auto:
                let horizon = live.groupSequential.plannedUsers.map { "\(JSONWriter.number($0)) planned users" }
                    ?? live.maximumRuntimeDays.map { "\(JSONWriter.number($0)) planned days" }
                if let horizon {
                    plan.append("group-sequential (\(live.groupSequential.spending.name) over \(horizon), \(live.groupSequential.looks.name) looks)")
                } else {
                    plan.append(live.method == .auto ? "auto: sequential (N* \(JSONWriter.number(live.sequentialTuning))) until a horizon is planned" : "group-sequential without a horizon")
                }
            }
            plan.append("correction \(live.correction.configName)")
            plan.append("min runtime \(JSONWriter.number(live.effectiveMinimumRuntimeDays)) days")
            if let maximum = live.maximumRuntimeDays { plan.append("max runtime \(JSONWriter.number(maximum)) days") }
            lines.append("  analysis: " + plan.joined(separator: ", "))
            let margins = e.analysis.metrics.compactMap { m -> String? in
                guard let margin = m.margin else { return nil }
                return "\(m.name) " + (margin.isRelative ? "+\(JSONWriter.number(margin.value * 100))%" : "\(JSONWriter.number(margin.value))")
            }
            if !margins.isEmpty { lines.append("  guardrail margins: " + margins.joined(separator: ", ")) }
            if let path = e.analysis.covariatesPath { lines.append("  CUPED covariates from \(path)") }
            for v in e.variants {
                let u = v.upstream
                var line = "  \(v.name) \(formatShare(v.weight)) -> \(u.baseURL) model \(u.model)"
                if let env = u.apiKeyEnv { line += ", key from $\(env) (\(u.apiKey == nil ? "not set" : "set"))" } else { line += ", no key" }
                lines.append(line)
                var details = ["timeout \(u.timeoutMs) ms", "connect \(u.connectTimeoutMs) ms"]
                if let tls = u.tls { details.append("TLS certificate checked against the CAs in \(tls.caFile) only") }
                if !u.headers.isEmpty { details.append("headers " + u.headers.map(\.name).joined(separator: ", ")) }
                if let prompt = v.systemPrompt { details.append("system prompt of \(prompt.count) characters") }
                if !v.parameters.isEmpty { details.append("parameters " + v.parameters.map { "\($0.key)=\($0.json)" }.joined(separator: " ")) }
                lines.append("      " + details.joined(separator: "; "))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// What bounds the gateway's connections and memory (see README, "Limits that protect it").
public struct GatewayLimits: Sendable {
    /// Connections open at once; nil for the default, lowered to fit the open-files limit (a number set in
    /// the config is not lowered: the gateway refuses to start instead).
    public var maxConnections: Int?
    /// Per client address; 0 for no limit (behind a load balancer), nil for the default: none when listening
    /// on loopback, else a quarter of the connections.
    public var maxConnectionsPerAddress: Int?
    public var headerTimeoutMs = GatewayConfig.Defaults.headerTimeoutMs
    public var bodyTimeoutMs = GatewayConfig.Defaults.bodyTimeoutMs
    public var idleTimeoutMs = GatewayConfig.Defaults.idleTimeoutMs
    public var memoryBudgetBytes = GatewayConfig.Defaults.memoryBudgetBytes

    public init() {}

    /// One line for `serve --check`.
    public var summary: String {
        let connections = maxConnections.map { "\($0) connections" }
            ?? "\(GatewayConfig.Defaults.maxConnections) connections (fewer if the open-files limit is lower)"
        let perAddress: String
        switch maxConnectionsPerAddress {
        case nil: perAddress = "a quarter of them per client address (none on a loopback listener)"
        case 0: perAddress = "no limit per client address"
        case let n?: perAddress = "\(n) per client address"
        }
        return "\(connections), \(perAddress); headers within \(formatMs(headerTimeoutMs)), bodies within \(formatMs(bodyTimeoutMs)), idle connections closed after \(formatMs(idleTimeoutMs)); \(formatBytes(memoryBudgetBytes)) of buffered requests and answers at most"
    }
}

private func formatMs(_ ms: Int) -> String {
    ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
}

/// One experiment the gateway routes.
public struct GatewayExperiment: Sendable {
    /// The experiment name (hashed with the user ID for assignment, and written on every event).
    public var name: String
    /// The alias clients put in `"model"`.
    public var model: String
    public var control: String
    public var allocation: Allocation
    public var assigner: Assigner
    /// Requests without a user are assigned at random per request (otherwise they get 400).
    public var perRequestAssignment: Bool
    public var logContent: Bool
    /// The analysis plan, with `experiment`, `control` and `allocation` filled in from this experiment.
    public var analysis: ExperimentConfig
    /// In allocation order: `variants[assigner.armIndex(for: user)]` is the user's variant. With `"split"`
    /// that is treatment first, then control (as `Allocation(split:)`); otherwise the order of the file.
    public var variants: [GatewayVariant]
    /// `expose_variant` of the experiment, when it sets one (else the gateway's).
    public var exposesVariantSetting: Bool? = nil
    /// How `bakeoff eval` evaluates it offline (`"eval"`), if the config says.
    public var eval: GatewayEval? = nil

    public func variant(named name: String) -> GatewayVariant? {
        variants.first { $0.name == name }
    }

    /// The variant `userID` is assigned to.
    public func variant(for userID: String) -> GatewayVariant {
        variants[assigner.armIndex(for: userID)]
    }

    /// The plan of the live report: the analysis config, `auto` unless it names a method (group-sequential with a
    /// horizon, else the confidence sequence), since a live report is looked at again and again.
    public var livePlan: AnalysisPlan {
        var plan = analysis.plan
        if analysis.method == nil { plan.method = .auto }
        return plan
    }

    /// How the store is read for this experiment's live analysis: its metrics, the plan's start (the CUPED
    /// pre-period before it) and the covariate file, if any. The live report, the time series and an offline
    /// eval's live side all read it so, and so agree.
    public func storeAnalysisOptions() throws -> EventLog.Options {
        var options = EventLog.Options()
        options.experiment = name
        options.metrics = analysis.metrics
        options.experimentStart = livePlan.start
        if let path = analysis.covariatesPath {
            options.covariates = try CovariateTable.load(path: path, metrics: analysis.metrics)
        }
        return options
    }

    /// The plan as recorded in the store at each start.
    public var planSnapshot: PlanSnapshot {
        PlanSnapshot(config: analysis, allocation: allocation, control: control, defaultMethod: .auto)
    }

    /// What gateways sharing a store compare (see `ReplicaPlans`): the plan and what serves each variant (its
    /// weight, upstream and model, and a digest of its whole definition, whose headers may hold secrets), one
    /// setting per line as `PlanSnapshot` reads them.
    public var replicaPlan: PlanSnapshot {
        var settings = planSnapshot.settings
        for v in variants {
            var h = SHA256()
            h.update(Array(v.definition.utf8))
            let digest = h.finalize().prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
            settings.append(.init(key: "variant \(v.name)", value: "weight \(formatNumber(v.weight)), \(v.upstream.model) at \(v.upstream.baseURL), definition \(digest)"))
        }
        return PlanSnapshot(settings: settings)
    }
}

/// An experiment's offline eval: its plan and the judge's endpoint (a variant of its own, sent requests the
/// same way).
public struct GatewayEval: Sendable {
    public var plan: EvalPlan
    /// Nil when no scorer needs a judge.
    public var judge: GatewayVariant?
}

/// Who may call the gateway and what clients see.
public struct GatewayAccess: Sendable {
    /// The environment variable holding the client keys (comma-separated); nil lets any client in.
    public var clientKeysEnv: String?
    /// The keys one of which the proxy and feedback endpoints require (as a bearer token); empty: none needed.
    public var clientKeys: [String] = []
    /// The environment variable holding the key that signs feedback tokens.
    public var feedbackKeyEnv = "BAKEOFF_FEEDBACK_KEY"
    /// Its value; nil when unset (the gateway then signs with a random key made at start, so tokens do not
    /// outlive a restart nor work across gateways).
    public var feedbackKey: [UInt8]?
    /// How long a feedback token is accepted (seconds): a week by default.
    public var feedbackTokenLifetimeSeconds: Int64 = 7 * 86_400
    /// Whether clients see their variant (header, feedback reply, `/v1/assignments` without the admin key).
    public var exposeVariant = true
    /// Feedback events accepted per request or conversation and name; beyond it 429.
    public var feedbackLimit = 20

    public init() {}
}

/// One arm of an experiment: where its requests go and how they are changed.
public struct GatewayVariant: Sendable {
    public var name: String
    public var weight: Double
    public var upstream: UpstreamTarget
    /// Replaces the client's system message (or is prepended when there is none).
    public var systemPrompt: String?
    /// Sampling overrides: each value's JSON text (compact, numbers exact), in the order of the file.
    public var parameters: [(key: String, json: String)]

    /// What makes the variant's answers what they are, not its name (renaming a variant keeps its cached
    /// eval answers): the upstream, the model, the system prompt, the parameters and the headers.
    public var definition: String {
        var s = "url=\(upstream.baseURL)\nmodel=\(upstream.model)\nsystem=\(systemPrompt.map { JSONWriter.quote($0) } ?? "-")\n"
        s += "parameters=" + parameters.map { "\($0.key)=\($0.json)" }.joined(separator: ",") + "\n"
        s += "headers=" + upstream.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ",") + "\n"
        return s
    }
}

/// An OpenAI-compatible server.
public struct UpstreamTarget: Sendable {
    /// The `/v1` base, without trailing slash.
    public var baseURL: String
    /// The upstream's model name, which replaces the alias in forwarded requests.
    public var model: String
    public var apiKeyEnv: String?
    /// The value of `apiKeyEnv` at load time, sent as `Authorization: Bearer`.
    public var apiKey: String?
    /// Extra headers, in the order of the file.
    public var headers: [(name: String, value: String)]
    public var timeoutMs: Int
    public var connectTimeoutMs: Int
    /// How its https:// certificate is trusted (`"tls"`); nil: by the system's CAs.
    public var tls: UpstreamTLSSettings? = nil

    /// `baseURL + path`, e.g. `url("/chat/completions")`.
    public func url(_ path: String) -> String {
        path.isEmpty || path.hasPrefix("/") ? baseURL + path : baseURL + "/" + path
    }
}

/// Every problem found in a gateway config, each with its JSON path.
public struct GatewayConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) { self.errors = errors }

    /// One line per problem.
    public var description: String { errors.map(\.description).joined(separator: "\n") }

    /// One `ConfigError`: the only one, or for several a summary whose description lists each on its own line
    /// (`gateway.json: 3 problems:` then `gateway.json: threads: ...`, ...).
    public var combined: ConfigError {
        if errors.count == 1 { return errors[0] }
        let source = errors.first?.source ?? ""
        return ConfigError(source: source, path: "", message: "\(errors.count) problems:\n" + description)
    }
}

extension Result where Failure == GatewayConfigErrors {
    func get() throws(ConfigError) -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let errors): throw errors.combined
        }
    }
}

private func formatBytes(_ n: Int) -> String {
    if n >= 1 << 20, n % (1 << 20) == 0 { return "\(n >> 20) MiB" }
    if n >= 1 << 10, n % (1 << 10) == 0 { return "\(n >> 10) KiB" }
    return "\(n) bytes"
}

private func formatShare(_ w: Double) -> String {
    "\(JSONWriter.number(w)) (\(JSONWriter.number((w * 1e6).rounded() / 1e4))%)"
}
