import BakeoffCore
import BakeoffStore
import Foundation
import Synchronization
import BakeoffHTTP
import BakeoffReport

/// `bakeoff serve`: an OpenAI-compatible gateway that assigns each user to a variant for good, forwards the
/// request to that variant's upstream, measures it, logs it to the embedded store, and takes feedback.
public final class Gateway: @unchecked Sendable {
    public let config: GatewayConfig
    let store: EventStore
    /// Created last in `init`: its thread must not outlive a failed init (opening the store can fail).
    let upstream: UpstreamClient
    let metrics = GatewayMetrics()
    /// The last 131,072 requests (tens of MB at most); feedback on older ones is found in the store.
    let recent = RecentRequests(capacity: 1 << 17)
    /// Per experiment, the feedback names its metrics read (the others are counted as "other" in /metrics).
    let feedbackNames: [String: Set<String>]
    private var server: HTTPServer!
    /// Signs the feedback token of every proxied response, and checks it when feedback comes back.
    let feedbackTokens: FeedbackTokenSigner
    /// Feedback accepted per target and name, for the cap (`GatewayAccess.feedbackLimit`).
    let feedbackLedger: FeedbackLedger
    let startedAt = Date()
    /// User and conversation ids longer than this are refused: they are kept in memory and in every event.
    static let maxIDBytes = 512
    /// The paths `handle` routes, for telling a wrong method (405) from an unknown path (404).
    static let knownPaths: Set<String> = ["/v1/chat/completions", "/v1/completions", "/v1/feedback", "/v1/models", "/v1/assignments", "/healthz", "/metrics"]

    /// Opens the store and prepares the server; `start()` begins listening. The admin key is the one the
    /// config resolved from the environment when it was loaded.
    public init(config: GatewayConfig) throws {
        self.config = config
        feedbackNames = Dictionary(uniqueKeysWithValues: config.experiments.map { experiment in
            (experiment.name, Set(experiment.analysis.metrics.compactMap { metric -> String? in
                if case .feedback(let name) = metric.source { return name }
                return nil
            }))
        })
        var key = config.access.feedbackKey ?? []
        if key.isEmpty {
            var g = SystemRandomNumberGenerator()
            key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
        }
        feedbackTokens = FeedbackTokenSigner(key: key, lifetimeSeconds: config.access.feedbackTokenLifetimeSeconds)
        feedbackLedger = FeedbackLedger(limit: config.access.feedbackLimit)
        // Write failures of the store go to stderr (the store limits them to one line a minute while they last).
        let storeOptions = StoreOptions(flushIntervalMs: config.flushIntervalMs, queueCapacity: config.queueCapacity,
                                        retentionDays: config.retentionDays.map(Double.init), report: { Self.log($0) })
        store = try EventStore(path: config.storePath, options: storeOptions)
        if case .stoppedAfter(let seconds) = store.integrityCheck {
            Self.log("\(config.storePath): the store is large: its check at start stopped after \(Int(seconds)) s without finding a problem; check it all offline with sqlite3 \(config.storePath) 'PRAGMA integrity_check'")
        }
        // Each start records the plan when it differs from the last one, so changes after the start show in the report.
        let now = WallClock.microseconds()
        for experiment in config.experiments {
            try PlanLog.record(path: config.storePath, experiment: experiment.name, plan: experiment.planSnapshot.text, timestamp: now)
        }
        upstream = UpstreamClient()
        var options = HTTPServer.Options()
        options.host = config.listenHost
        options.port = config.listenPort
        options.threads = config.threads
        options.maxBodyBytes = config.maxBodyBytes
        options.maxConnections = config.limits.maxConnections ?? GatewayConfig.Defaults.maxConnections
        options.lowerConnectionsToFit = config.limits.maxConnections == nil
        options.maxConnectionsPerAddress = config.limits.maxConnectionsPerAddress
        options.headerTimeoutMs = config.limits.headerTimeoutMs
        options.bodyTimeoutMs = config.limits.bodyTimeoutMs
        options.idleTimeoutMs = config.limits.idleTimeoutMs
        options.memoryBudgetBytes = config.limits.memoryBudgetBytes
        options.onRefusal = { [metrics] status in metrics.recordRejected(status: status) }
        options.refusalResponse = OpenAIError.refusal
        server = HTTPServer(options: options) { [unowned self] exchange in self.handle(exchange) }
    }

    public func start() throws { try server.start() }

    /// One line on standard error, as the CLI writes its messages.
    static func log(_ line: String) {
        FileHandle.standardError.write(Data(("bakeoff: " + line + "\n").utf8))
    }

    /// Upstream failures on stderr, one line per upstream every 10 s at most.
    let upstreamLog = RateLimitedLog { Gateway.log($0) }

    /// The port the gateway listens on.
    public var port: UInt16 { server.port }

    /// What the start had to tell the operator (e.g. fewer connections than the default), one line each.
    public var startNotes: [String] { server.notes }

    /// Stops accepting, lets requests in flight finish (up to `graceSeconds`), then flushes the store.
    public func stop(graceSeconds: Double = 30) {
        server.stop(graceSeconds: graceSeconds)
        upstream.shutdown()
        store.close()
    }

    // MARK: Routing

    func handle(_ exchange: HTTPExchange) {
        let request = exchange.request
        switch (request.method, request.path) {
        case ("POST", "/v1/chat/completions"): proxy(exchange, endpoint: .chatCompletions)
        case ("POST", "/v1/completions"): proxy(exchange, endpoint: .completions)
        case ("POST", "/v1/feedback"): feedback(exchange)
        case ("GET", "/v1/models"), ("GET", "/v1/assignments"):
            // With client keys, what the OpenAI API guards with a key is guarded here too.
            guard isClient(request) else { return fail(exchange, clientRefusal(request)) }
            if request.path == "/v1/models" { models(exchange) } else { assignment(exchange) }
        case ("GET", "/healthz"):
            if case .failing(_, let reason) = store.health {
                respondJSON(exchange, 503, "{\"status\":\"unavailable\",\"reason\":\(JSONWriter.quote(reason))}")
            } else {
                respondJSON(exchange, 200, "{\"status\":\"ok\"}")
            }
        case ("GET", "/metrics"): metricsPage(exchange)
        case ("GET", let path) where path.hasPrefix("/v1/experiments/") && path.hasSuffix("/report"):
            let name = String(path.dropFirst("/v1/experiments/".count).dropLast("/report".count))
            report(exchange, experiment: name.removingPercentEncoding ?? name)
        default:
            if Self.knownPaths.contains(request.path) {
                fail(exchange, OpenAIError(status: 405, message: "\(request.method) is not allowed on \(request.path)", type: "invalid_request_error", code: "method_not_allowed"))
            } else {
                fail(exchange, .notFound("no such endpoint: \(request.method) \(request.path)"))
            }
        }
    }

    func fail(_ exchange: HTTPExchange, _ error: OpenAIError, headers: [(String, String)] = []) {
        metrics.recordRejected(status: error.status)
        exchange.respond(status: error.status, headers: [("Content-Type", "application/json")] + headers, body: error.body)
    }

    func respondJSON(_ exchange: HTTPExchange, _ status: Int, _ json: String) {
        exchange.respond(status: status, headers: [("Content-Type", "application/json")], body: Array(json.utf8))
    }

    /// Whether the request carries the admin key (as a bearer token or in X-Bakeoff-Admin-Key).
    func isAdmin(_ request: HTTPRequest) -> Bool {
        guard let adminKey = config.adminKey else { return false }
        if let given = request.header("x-bakeoff-admin-key"), constantTimeEqual(given, adminKey) { return true }
        if let auth = request.header("authorization"), auth.hasPrefix("Bearer "), constantTimeEqual(String(auth.dropFirst(7)), adminKey) { return true }
        return false
    }

    /// With client keys configured: whether the request carries one (or the admin key) as a bearer token.
    func isClient(_ request: HTTPRequest) -> Bool {
        let keys = config.access.clientKeys
        if keys.isEmpty || isAdmin(request) { return true }
        guard let auth = request.header("authorization"), auth.hasPrefix("Bearer ") else { return false }
        let given = String(auth.dropFirst(7))
        // Every key is compared, so the time taken does not tell which one nearly matched.
        return keys.map { constantTimeEqual(given, $0) }.contains(true)
    }

    func clientRefusal(_ request: HTTPRequest) -> OpenAIError {
        let sent = request.header("authorization") != nil
        return OpenAIError(status: 401, message: sent ? "Incorrect API key provided: this gateway needs one of its client keys as \"Authorization: Bearer KEY\"" : "You didn't provide an API key: this gateway needs one of its client keys as \"Authorization: Bearer KEY\" (the OpenAI SDKs send their api_key so)", type: "invalid_request_error", code: "invalid_api_key")
    }

    func adminRefusal() -> OpenAIError {
        config.adminKey == nil
            ? OpenAIError(status: 403, message: "admin features are off: start the gateway with \(config.adminKeyEnv) set to a secret, then send it as a bearer token", type: "permission_error", code: "admin_disabled")
            : OpenAIError(status: 401, message: "this needs the admin key (\(config.adminKeyEnv)) as \"Authorization: Bearer KEY\" or \"X-Bakeoff-Admin-Key: KEY\"", type: "authentication_error", code: "admin_key_required")
    }

    // MARK: Proxy

    func proxy(_ exchange: HTTPExchange, endpoint: Endpoint) {
        let started = MonotonicClock.now()
        let wallClock = WallClock.microseconds()
        let request = exchange.request
        guard isClient(request) else { return fail(exchange, clientRefusal(request)) }
        let client: ClientRequest
        do { client = try ClientRequest.parse(request.body, endpoint: endpoint) } catch { return fail(exchange, error) }
        guard let experiment = config.experiment(forModel: client.model) else {
            let aliases = config.experiments.map(\.model).joined(separator: ", ")
            return fail(exchange, OpenAIError(status: 404, message: "The model `\(client.model)` does not exist on this gateway (models: \(aliases))", type: "invalid_request_error", code: "model_not_found", param: "model"))
        }
        let requestID = RequestID.make()
        // The body's "user" wins, then "safety_identifier" (OpenAI's successor of "user"), then the header.
        let bodyUser = client.user.flatMap { $0.isEmpty ? nil : $0 }
        let safetyUser = client.safetyIdentifier.flatMap { $0.isEmpty ? nil : $0 }
        let headerUser = request.header(config.userHeader).flatMap { $0.isEmpty ? nil : $0 }
        let user = bodyUser ?? safetyUser ?? headerUser
        if let user, user.utf8.count > Self.maxIDBytes {
            return fail(exchange, OpenAIError(status: 400, message: "the user id is \(user.utf8.count) bytes; at most \(Self.maxIDBytes) are allowed", type: "invalid_request_error", code: "user_too_long", param: bodyUser != nil ? "user" : safetyUser != nil ? "safety_identifier" : nil))
        }
        var variantIndex: Int
        if let user {
            variantIndex = experiment.assigner.armIndex(for: user)
        } else if experiment.perRequestAssignment {
            variantIndex = experiment.allocation.armIndex(forNormalized: Double(UInt64.random(in: 0..<10_000)) / 10_000)
        } else {
            return fail(exchange, OpenAIError(status: 400, message: "no user to assign: send the OpenAI \"user\" (or \"safety_identifier\") field or the \(config.userHeader) header (experiment \(experiment.name) assigns per user). LiteLLM's SDK drops user= for model names outside OpenAI's catalogue: pass safety_identifier=, extra_headers={\"\(config.userHeader)\": ...} or allowed_openai_params=[\"user\"]", type: "invalid_request_error", code: "user_required", param: "user"))
        }
        var qa = false
        if let forced = request.header("x-bakeoff-force-variant") {
            guard isAdmin(request) else { return fail(exchange, adminRefusal()) }
            guard let i = experiment.variants.firstIndex(where: { $0.name == forced }) else {
                return fail(exchange, OpenAIError(status: 400, message: "X-Bakeoff-Force-Variant: no variant \"\(forced)\" in \(experiment.name) (variants: \(experiment.variants.map(\.name).joined(separator: ", ")))", type: "invalid_request_error", code: "unknown_variant"))
            }
            variantIndex = i
            qa = true
        }
        let variant = experiment.variants[variantIndex]
        let namedConversation = request.header("x-bakeoff-conversation").flatMap { $0.isEmpty ? nil : $0 }
        let conversation = namedConversation ?? requestID
        guard conversation.utf8.count <= Self.maxIDBytes else {
            return fail(exchange, OpenAIError(status: 400, message: "X-Bakeoff-Conversation is \(conversation.utf8.count) bytes; at most \(Self.maxIDBytes) are allowed", type: "invalid_request_error", code: "conversation_too_long"))
        }
        // A conversation belongs to the user who first used it: another user's request naming it would mix
        // two users' turns and feedback (and let one user's feedback land on another's conversation).
        // Requests without a user count as one anonymous owner, who cannot join a named user's conversation.
        if namedConversation != nil, recent.conversation(conversation) == nil,
           let earlier = store.latestRequest(conversation: conversation), earlier.owner != (user ?? "") {
            return fail(exchange, conversationConflict(conversation))
        }
        let body = client.upstreamBody(model: variant.upstream.model, systemPrompt: variant.systemPrompt, parameters: variant.parameters, forceUsage: client.stream)
        var headers = ["Content-Type: application/json"]
        if let key = variant.upstream.apiKey { headers.append("Authorization: Bearer \(key)") }
        for h in variant.upstream.headers { headers.append("\(h.name): \(h.value)") }
        if client.stream { headers.append("Accept: text/event-stream") }
        let call = UpstreamCall(url: variant.upstream.url(endpoint == .chatCompletions ? "/chat/completions" : "/completions"),
                                headers: headers, body: body, timeoutMs: variant.upstream.timeoutMs, connectTimeoutMs: variant.upstream.connectTimeoutMs)
        // Rate-limit headers (retry-after, x-ratelimit-*) go back to the client, whose SDK backs off by them.
        call.capturesHeaders = true
        var record = EventRecord(kind: .request, timestamp: wallClock, experiment: experiment.name)
        record.variant = variant.name
        record.userID = user ?? requestID
        record.conversationID = conversation
        record.requestID = requestID
        record.qa = qa
        let logContent = experiment.logContent
        if logContent { record.prompt = client.promptText() }
        let entry = RecentRequests.Entry(experiment: experiment.name, variant: variant.name, userID: record.userID, conversationID: conversation, requestID: requestID, qa: qa)
        if !recent.insert(entry, claiming: namedConversation != nil) {
            return fail(exchange, conversationConflict(conversation))
        }

        var responseHeaders = [("x-bakeoff-experiment", experiment.name)]
        if config.exposesVariant(experiment) { responseHeaders.append(("x-bakeoff-variant", variant.name)) }
        responseHeaders.append(("x-bakeoff-request-id", requestID))
        responseHeaders.append(("x-bakeoff-feedback-token", feedbackTokens.token(requestID: requestID, user: record.userID, now: wallClock / 1_000_000)))
        let proxied = ProxiedRequest(gateway: self, exchange: exchange, call: call, endpoint: endpoint, stream: client.stream,
                                     clientWantsUsage: client.clientWantsUsage, started: started, record: record, logContent: logContent,
                                     responseHeaders: responseHeaders)
        proxied.begin()
    }

    func conversationConflict(_ conversation: String) -> OpenAIError {
        OpenAIError(status: 409, message: "conversation \"\(conversation)\" belongs to another user: each user needs conversation ids of their own (X-Bakeoff-Conversation)", type: "invalid_request_error", code: "conversation_of_another_user")
    }

    /// Writes the request's event and counts it; called once per proxied request.
    func finished(_ record: EventRecord, latencySeconds: Double, ttftSeconds: Double?) {
        metrics.recordRequest(experiment: record.experiment, variant: record.variant, status: record.status, latencySeconds: latencySeconds,
                              ttftSeconds: ttftSeconds, inputTokens: record.inputTokens, outputTokens: record.outputTokens)
        store.append(record)
    }

    // MARK: Other endpoints

    func models(_ exchange: HTTPExchange) {
        let created = Int(startedAt.timeIntervalSince1970)
        let items = config.experiments.map { "{\"id\":\(JSONWriter.quote($0.model)),\"object\":\"model\",\"created\":\(created),\"owned_by\":\"bakeoff\"}" }
        respondJSON(exchange, 200, "{\"object\":\"list\",\"data\":[\(items.joined(separator: ","))]}")
    }

    func assignment(_ exchange: HTTPExchange) {
        let query = exchange.request.query
        guard let name = query["experiment"], !name.isEmpty else {
            return fail(exchange, OpenAIError(status: 400, message: "give the experiment: /v1/assignments?experiment=NAME&user=ID", type: "invalid_request_error", code: "missing_parameter", param: "experiment"))
        }
        guard let experiment = config.experiment(named: name) ?? config.experiment(forModel: name) else {
            return fail(exchange, OpenAIError(status: 404, message: "no experiment \"\(name)\" (experiments: \(config.experiments.map(\.name).joined(separator: ", ")))", type: "invalid_request_error", code: "experiment_not_found", param: "experiment"))
        }
        if !config.exposesVariant(experiment) && !isAdmin(exchange.request) {
            return fail(exchange, OpenAIError(status: 403, message: "experiment \(experiment.name) is blind (expose_variant is false): assignments are for the admin key only", type: "permission_error", code: "variant_hidden"))
        }
        guard let user = query["user"], !user.isEmpty else {
            return fail(exchange, OpenAIError(status: 400, message: "give the user: /v1/assignments?experiment=\(name)&user=ID", type: "invalid_request_error", code: "missing_parameter", param: "user"))
        }
        let bucket = experiment.assigner.bucket(for: user)
        let variant = experiment.variants[experiment.assigner.armIndex(forBucket: bucket)]
        respondJSON(exchange, 200, "{\"experiment\":\(JSONWriter.quote(experiment.name)),\"model\":\(JSONWriter.quote(experiment.model)),\"user\":\(JSONWriter.quote(user)),\"variant\":\(JSONWriter.quote(variant.name)),\"bucket\":\(bucket),\"upstream_model\":\(JSONWriter.quote(variant.upstream.model))}")
    }

    func metricsPage(_ exchange: HTTPExchange) {
        let text = metrics.render(gauges: [
            ("bakeoff_store_queue_depth", "Events waiting for the store's writer.", Double(store.queueDepth)),
            ("bakeoff_events_written_total", "Events committed to the store.", Double(store.eventsWritten)),
            ("bakeoff_events_dropped_total", "Events dropped: the store's queue was full, or feedback refused while the store could not write.", Double(store.eventsDropped)),
            ("bakeoff_store_healthy", "1 while the store writes, 0 while its writes fail (and are retried).", store.health == .ok ? 1 : 0),
            ("bakeoff_store_write_errors_total", "Failed store writes (each is retried while the queue holds).", Double(store.writeErrors)),
            ("bakeoff_store_write_retries_total", "Store writes retried after a failure.", Double(store.writeRetries)),
            ("bakeoff_store_events_deleted_total", "Events deleted by store.retention_days.", Double(store.eventsDeleted)),
            ("bakeoff_requests_in_flight", "Requests being served.", Double(server.requestsInFlight)),
            ("bakeoff_upstream_calls_active", "Upstream calls in progress.", Double(upstream.activeCalls.load(ordering: .relaxed))),
            ("bakeoff_uptime_seconds", "Seconds since the gateway started.", Date().timeIntervalSince(startedAt).rounded()),
            ("bakeoff_http_connections_open", "Client connections open.", Double(server.openConnections)),
            ("bakeoff_http_max_connections", "Client connections accepted at once (after fitting the open-files limit).", Double(server.maxConnections)),
            ("bakeoff_http_connections_refused_total", "Connections refused at max_connections or max_connections_per_address.", Double(server.refusedConnections)),
            ("bakeoff_http_header_timeouts_total", "Connections closed for not sending their headers within header_timeout_ms.", Double(server.headerTimeouts)),
            ("bakeoff_http_body_timeouts_total", "Connections closed for not sending their body within body_timeout_ms.", Double(server.bodyTimeouts)),
            ("bakeoff_buffered_bytes", "Bytes of request bodies, stream buffers and upstream answers held now.", Double(server.budget.used)),
            ("bakeoff_memory_budget_bytes", "The most bytes requests may buffer together (memory_budget_bytes).", Double(server.budget.limit)),
        ])
        exchange.respond(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: Array(text.utf8))
    }

    func report(_ exchange: HTTPExchange, experiment name: String) {
        let request = exchange.request
        guard isAdmin(request) else { return fail(exchange, adminRefusal()) }
        guard let experiment = config.experiment(named: name) else {
            return fail(exchange, OpenAIError(status: 404, message: "no experiment \"\(name)\" (experiments: \(config.experiments.map(\.name).joined(separator: ", ")))", type: "invalid_request_error", code: "experiment_not_found"))
        }
        let formatName = request.query["format"] ?? "json"
        guard let format = ReportFormat(rawValue: formatName) else {
            return fail(exchange, OpenAIError(status: 400, message: "format must be one of \(ReportFormat.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(formatName)\"", type: "invalid_request_error", code: "bad_format", param: "format"))
        }
        // The analysis reads the whole store: off the server's threads.
        DispatchQueue.global().async { [self] in
            store.flush()
            do {
                var options = EventLog.Options()
                options.experiment = experiment.name
                options.metrics = experiment.analysis.metrics
                var plan = experiment.livePlan
                options.experimentStart = plan.start
                if let path = experiment.analysis.covariatesPath {
                    options.covariates = try CovariateTable.load(path: path, metrics: experiment.analysis.metrics)
                }
                let data = try StoreAnalysis.aggregate(path: config.storePath, options: options)
                plan.asOf = WallClock.microseconds()
                var report = try Analysis.run(data, plan: plan)
                report.planChanges = try StoreAnalysis.planChangesAfterStart(path: config.storePath, experiment: experiment.name, data: data, plan: plan)
                let type: String
                switch format {
                case .json: type = "application/json"
                case .markdown: type = "text/markdown; charset=utf-8"
                case .html: type = "text/html; charset=utf-8"
                case .table: type = "text/plain; charset=utf-8"
                }
                exchange.respond(status: 200, headers: [("Content-Type", type)], body: Array(report.render(format).utf8))
            } catch {
                fail(exchange, OpenAIError(status: 409, message: "no report for \(experiment.name) yet: \(error)", type: "invalid_request_error", code: "report_unavailable"))
            }
        }
    }
}

/// Request ids: `req_` and 24 random hex digits.
enum RequestID {
    static func make() -> String {
        var g = SystemRandomNumberGenerator()
        let a = g.next() as UInt64, b = g.next() as UInt32
        return "req_" + hex(a, 16) + hex(UInt64(b), 8)
    }

    static func hex(_ v: UInt64, _ digits: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }
}

extension RequestInfo {
    /// Who a conversation of this request belongs to: its user, or "" for a request without one (its user id
    /// is then its own request id).
    var owner: String { userID == requestID ? "" : userID }
}

/// The requests the gateway served recently, so feedback can find its request before the store has it.
final class RecentRequests: Sendable {
    /// The store's own description of a request, so that both lookups give the same type.
    typealias Entry = RequestInfo

    struct State {
        var byRequest: [String: Entry] = [:]
        var byConversation: [String: Entry] = [:]
        var order: [String] = []
        var next = 0
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) { self.capacity = capacity }

    /// Adds `entry`; with `claiming`, only when its conversation is new or already the same user's (false
    /// otherwise, and nothing is added).
    @discardableResult
    func insert(_ entry: Entry, claiming: Bool = false) -> Bool {
        state.withLock { s in
            if claiming, let owner = s.byConversation[entry.conversationID], owner.owner != entry.owner { return false }
            if s.order.count < capacity {
                s.order.append(entry.requestID)
            } else {
                let old = s.order[s.next]
                if let gone = s.byRequest.removeValue(forKey: old), s.byConversation[gone.conversationID]?.requestID == old {
                    s.byConversation[gone.conversationID] = nil
                }
                s.order[s.next] = entry.requestID
                s.next = (s.next + 1) % capacity
            }
            s.byRequest[entry.requestID] = entry
            s.byConversation[entry.conversationID] = entry
            return true
        }
    }

    func request(_ id: String) -> Entry? { state.withLock { $0.byRequest[id] } }
    func conversation(_ id: String) -> Entry? { state.withLock { $0.byConversation[id] } }
}
