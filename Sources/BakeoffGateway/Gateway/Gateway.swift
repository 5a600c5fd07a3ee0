import BakeoffCore
import BakeoffStore
import Foundation
import Synchronization
import BakeoffHTTP
import BakeoffReport
import BakeoffTelemetry

/// `bakeoff serve`: an OpenAI-compatible gateway that assigns each user to a variant for good, forwards the
/// request to that variant's upstream, measures it, logs it to the embedded store, and takes feedback.
///
/// Its decisions are pure functions (`GatewayRoute`, `ProxyDecision`, `UpstreamReply`, `FeedbackDecision`);
/// the methods here ask them and carry out what they say, through the event sink, the upstream transport,
/// the clock and the exchange.
public final class Gateway: Sendable {
    public let config: GatewayConfig
    let events: any GatewayEventSink
    let upstream: any UpstreamTransport
    let clock: any GatewayClock
    let access: AccessCheck
    let metrics = GatewayMetrics()
    /// The last 131,072 requests (tens of MB at most); feedback on older ones is found in the store.
    let recent = RecentRequests(capacity: 1 << 17)
    let feedbackRules: FeedbackRules
    /// The HTTP server, for a gateway that listens (`init(config:)`); none in process.
    private let server = Mutex<HTTPServer?>(nil)
    /// The event loops the server and the upstream calls run on (ended by `stop`).
    private let ownLoops = Mutex<[EventLoop]>([])
    /// Signs the feedback token of every proxied response, and checks it when feedback comes back.
    let feedbackTokens: FeedbackTokenSigner
    /// Feedback accepted per target and name, for the cap (`GatewayAccess.feedbackLimit`).
    let feedbackLedger: FeedbackLedger
    /// Each experiment's live analysis (see `LiveAnalyses`).
    let live = LiveAnalyses()
    /// The dashboard at /dashboard (admin key; off without one).
    let dashboard: DashboardSite
    /// Each read of an experiment's live report or dashboard page, kept in the store as a look.
    let looks: LookRecorder
    /// Wall-clock microseconds at the start.
    let startedAt: Int64
    /// Monotonic nanoseconds at the start.
    let startedMonotonic: UInt64
    /// Each request's span and each feedback's, to an OpenTelemetry collector (`otlp`); nil without export.
    let tracer: GatewayTracer?

    /// Opens the store, records the plans and prepares the server; `start()` begins listening. The admin key
    /// is the one the config resolved from the environment when it was loaded.
    public convenience init(config: GatewayConfig) throws {
        // Write failures of the store go to stderr (the store limits them to one line a minute while they last).
        let storeOptions = StoreOptions(flushIntervalMs: config.flushIntervalMs, queueCapacity: config.queueCapacity,
                                        retentionDays: config.retentionDays.map(Double.init), report: { Self.log($0) })
        let store: EventStore
        if PostgresLocation.isURL(config.storePath) {
            // Every libpq connection of this process (the writer's, the look-ups', the reports') takes it from there.
            if let password = config.storePassword { setenv("PGPASSWORD", password, 1) }
            var options = storeOptions
            let plans = Dictionary(config.experiments.map { ($0.name, $0.replicaPlan.text) }, uniquingKeysWith: { a, _ in a })
            options.replica = ReplicaPlans(gateway: Self.replicaName(), plans: plans) { others in
                let problems = GatewayPages.replicaProblems(others, mine: plans)
                if problems.isEmpty { Self.log("the gateways sharing the store run the same plans again") }
                for problem in problems { Self.log(problem) }
            }
            store = try EventStore(postgres: PostgresLocation(url: config.storePath), options: options)
        } else {
            store = try EventStore(path: config.storePath, options: storeOptions)
        }
        if case .stoppedAfter(let seconds) = store.integrityCheck {
            Self.log("\(config.storePath): the store is large: its check at start stopped after \(Int(seconds)) s without finding a problem; check it all offline with sqlite3 \(config.storePath) 'PRAGMA integrity_check'")
        }
        // Each start records the plan when it differs from the last one, so changes after the start show in the report.
        let now = WallClock.microseconds()
        for experiment in config.experiments {
            try PlanLog.record(path: config.storePath, experiment: experiment.name, plan: experiment.planSnapshot.text, timestamp: now)
        }
        for note in config.traceExportNotes { Self.log(note) }
        let spans = config.traceExport.map { settings in
            SpanExporter(settings: settings, source: Self.traceSource(settings), transport: UpstreamClient(), log: { Self.log($0) })
        }
        // Created last: their threads must not outlive a failed init. The server and the upstream calls share
        // event loops: a request is read, sent, answered and logged on one thread.
        let loops = (0..<max(1, config.threads)).map { EventLoop(name: "bakeoff-loop-\($0)") }
        self.init(config: config, events: StoreEventSink(store: store), upstream: UpstreamClient(loops: loops), spans: spans)
        ownLoops.withLock { $0 = loops }
        var options = HTTPServer.Options()
        options.host = config.listenHost
        options.port = config.listenPort
        options.threads = config.threads
        options.loops = loops
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
        let server = HTTPServer(options: options) { [unowned self] exchange in self.handle(exchange) }
        self.server.withLock { $0 = server }
    }

    /// A gateway on the given event sink, upstream transport and clock, without a server of its own: hand it
    /// exchanges with `handle` (tests run it in process so). The sink and the transport are closed by `stop`.
    /// `spans`: where request and feedback spans go (nil: nowhere); stopped by `stop`.
    public init(config: GatewayConfig, events: any GatewayEventSink, upstream: any UpstreamTransport, clock: any GatewayClock = SystemClock(),
                spans: SpanExporter? = nil) {
        self.config = config
        tracer = spans.map(GatewayTracer.init)
        self.events = events
        self.upstream = upstream
        self.clock = clock
        access = AccessCheck(config: config)
        feedbackRules = FeedbackRules(config: config)
        var key = config.access.feedbackKey ?? []
        if key.isEmpty {
            var g = SystemRandomNumberGenerator()
            key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
        }
        feedbackTokens = FeedbackTokenSigner(key: key, lifetimeSeconds: config.access.feedbackTokenLifetimeSeconds)
        feedbackLedger = FeedbackLedger(limit: config.access.feedbackLimit)
        startedAt = clock.wallMicroseconds()
        startedMonotonic = clock.monotonicNanoseconds()
        let live = self.live
        let sites = config.experiments.map { experiment in
            DashboardSite.Experiment(name: experiment.name, model: experiment.model) {
                try live.analysis(of: experiment, storePath: config.storePath)
            }
        }
        let events = self.events
        let looks = LookRecorder(path: config.storePath)
        self.looks = looks
        dashboard = DashboardSite(
            experiments: sites, evalCaches: config.dashboardEvalCaches, adminKey: config.adminKey,
            disabled: config.adminKey == nil ? "Admin features are off: start the gateway with \(config.adminKeyEnv) set to a secret, then sign in with it." : nil,
            readOnly: false, beforeRead: { events.flush() },
            storeProblems: {
                if case .failing(_, let reason) = events.health { return [reason] + events.replicaProblems }
                return events.replicaProblems
            },
            now: { [clock] in clock.wallMicroseconds() },
            recordLook: { [clock] name in looks.record(name, now: clock.wallMicroseconds(), source: "dashboard") })
    }

    /// This gateway among others sharing a store: host name, process id and start time.
    static func replicaName() -> String {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(name.isEmpty ? "localhost" : name):\(getpid())@\(Date().formatted(.iso8601))"
    }

    func liveAnalysis(_ experiment: GatewayExperiment) throws -> LiveAnalysis {
        try live.analysis(of: experiment, storePath: config.storePath)
    }

    public func start() throws { try server.withLock { $0 }?.start() }

    /// One line on standard error, as the CLI writes its messages.
    static func log(_ line: String) {
        FileHandle.standardError.write(Data(("bakeoff: " + line + "\n").utf8))
    }

    /// Upstream failures on stderr, one line per upstream every 10 s at most.
    let upstreamLog = RateLimitedLog { Gateway.log($0) }

    /// The port the gateway listens on.
    public var port: UInt16 { server.withLock { $0 }?.port ?? 0 }

    /// What the start had to tell the operator (e.g. fewer connections than the default), one line each.
    public var startNotes: [String] { server.withLock { $0 }?.notes ?? [] }

    /// Stops accepting, lets requests in flight finish (up to `graceSeconds`), then flushes the store.
    public func stop(graceSeconds: Double = 30) {
        server.withLock { $0 }?.stop(graceSeconds: graceSeconds)
        upstream.shutdown()
        for loop in ownLoops.withLock({ $0 }) { loop.shutdown() }
        events.close()
        // Spans last: those of the requests just finished go too (up to 5 s more).
        if let tracer {
            tracer.exporter.shutdown(graceSeconds: 5)
            tracer.exporter.transport.shutdown()
        }
    }

    /// The resource and scope the gateway's spans come from.
    static func traceSource(_ settings: ExportSettings) -> TraceSource {
        TraceSource(resource: [Attribute("service.name", .string(settings.serviceName)),
                               Attribute("service.version", .string(BakeoffVersion.current)),
                               Attribute("telemetry.sdk.name", .string("bakeoff")),
                               Attribute("telemetry.sdk.language", .string("swift"))] + settings.resourceAttributes,
                    scopeName: "bakeoff.gateway", scopeVersion: BakeoffVersion.current)
    }

    // MARK: Routing

    /// Answers one request (on a server thread; the answer may follow later from another).
    public func handle(_ exchange: any HTTPExchanging) {
        let request = exchange.request
        if DashboardSite.owns(request.path) { return dashboard.handle(exchange, request) }
        let route: GatewayRoute
        switch GatewayRoute.route(method: request.method, path: request.path) {
        case .success(let r): route = r
        case .failure(let error): return fail(exchange, error)
        }
        switch route {
        case .proxy(let endpoint): proxy(exchange, request, endpoint: endpoint)
        case .feedback: feedback(exchange, request)
        case .models, .assignments:
            // With client keys, what the OpenAI API guards with a key is guarded here too.
            guard access.isClient(request) else { return fail(exchange, access.clientRefusal(request)) }
            if route == .models {
                respondJSON(exchange, 200, GatewayPages.models(config, created: Int(startedAt / 1_000_000)))
            } else {
                switch GatewayPages.assignment(query: request.query, config: config, isAdmin: access.isAdmin(request)) {
                case .success(let json): respondJSON(exchange, 200, json)
                case .failure(let error): fail(exchange, error)
                }
            }
        case .health:
            let (status, json) = GatewayPages.health(events.health, replicaProblems: events.replicaProblems,
                                                     traceExportError: tracer?.exporter.lastError)
            respondJSON(exchange, status, json)
        case .metrics: metricsPage(exchange)
        case .report(let name): report(exchange, request, experiment: name)
        case .timeSeries(let name): timeSeries(exchange, request, experiment: name)
        }
    }

    func fail(_ exchange: any HTTPExchanging, _ error: OpenAIError, headers: [(String, String)] = []) {
        metrics.recordRejected(status: error.status)
        exchange.respond(status: error.status, headers: [("Content-Type", "application/json")] + headers, body: error.body)
    }

    func respondJSON(_ exchange: any HTTPExchanging, _ status: Int, _ json: String) {
        exchange.respond(status: status, headers: [("Content-Type", "application/json")], body: Array(json.utf8))
    }

    // MARK: Proxy

    func proxy(_ exchange: any HTTPExchanging, _ request: HTTPRequest, endpoint: Endpoint) {
        let started = clock.monotonicNanoseconds()
        let wallClock = clock.wallMicroseconds()
        let requestID = RequestID.make(wallMicroseconds: wallClock)
        let assignment: ProxyAssignment
        switch ProxyDecision.assign(request, endpoint: endpoint, config: config, access: access, requestID: requestID,
                                    draw: { Double(SecureRandom.next() % 10_000) / 10_000 }) {
        case .success(let a): assignment = a
        case .failure(let error): return fail(exchange, error)
        }
        // A named conversation not seen lately: its owner is in the store, if anywhere.
        if let named = assignment.namedConversation, recent.conversation(named) == nil,
           let refusal = ProxyDecision.join(assignment, storedOwner: events.latestRequestQuickly(conversation: named)?.owner) {
            return fail(exchange, refusal)
        }
        let trace = RequestTrace.start(traceparent: request.header("traceparent"), tracestate: request.header("tracestate"),
                                       requestID: requestID, exporting: tracer != nil)
        let plan = ProxyDecision.plan(assignment, endpoint: endpoint, config: config, requestID: requestID,
                                      wallClock: wallClock, started: started, tokens: feedbackTokens, trace: trace)
        // Claimed here, under the lock of the recent requests, so two users cannot both take a new conversation.
        guard recent.insert(plan.entry, claiming: plan.claimsConversation) else {
            return fail(exchange, ProxyDecision.conversationConflict(assignment.conversation))
        }
        var span: RequestSpanStart?
        if let tracer, let trace, trace.recorded {
            tracer.started(trace, requestID: requestID)
            span = RequestSpanStart(trace: trace, endpoint: endpoint, requestModel: assignment.variant.upstream.model,
                                    upstreamURL: plan.upstream.url, stream: assignment.client.stream)
        } else if let tracer, let trace {
            tracer.started(trace, requestID: requestID)
        }
        ProxiedRequest(gateway: self, exchange: exchange, url: plan.upstream.url, reply: plan.reply, span: span).begin(plan.upstream)
    }

    /// Writes the request's event and counts it; called once per proxied request.
    func finished(_ record: EventRecord, latencySeconds: Double, ttftSeconds: Double?) {
        metrics.recordRequest(experiment: record.experiment, variant: record.variant, status: record.status, latencySeconds: latencySeconds,
                              ttftSeconds: ttftSeconds, inputTokens: record.inputTokens, outputTokens: record.outputTokens,
                              usageMissing: record.usageMissing)
        events.enqueue(record)
    }

    // MARK: Feedback

    /// Records feedback for a request or conversation; answers 200 only once the event is committed.
    func feedback(_ exchange: any HTTPExchanging, _ request: HTTPRequest) {
        let read: FeedbackDecision
        switch FeedbackDecision.read(request, rules: feedbackRules, access: access) {
        case .success(let d): read = d
        case .failure(let error): return fail(exchange, error)
        }
        // A shared store that cannot write may not answer look-ups either (a server that stopped answering):
        // the feedback would be refused at its write anyway, so it is refused now, without waiting on the server.
        if events.isShared, case .failing(_, let reason) = events.health {
            let (refusal, headers) = storeRefusal(reason)
            return fail(exchange, refusal, headers: headers)
        }
        // A shared store's look-ups may wait on the network: off the threads that answer clients.
        if events.isShared {
            return DispatchQueue.global().async { [self] in lookUpAndRecord(read, answering: exchange) }
        }
        lookUpAndRecord(read, answering: exchange)
    }

    /// The rest of `feedback`: the token's request first (it tells who may send this feedback), then the target.
    private func lookUpAndRecord(_ read: FeedbackDecision, answering exchange: any HTTPExchanging) {
        let tokenRequest = read.tokenRequestID
        lookUp({ [self] in tokenRequest.flatMap(lookUpRequest) }, mayBeElsewhere: tokenRequest != nil) { [self] signed in
            if signed == nil && tokenRequest != nil, let refusal = unreachable() { return fail(exchange, refusal.0, headers: refusal.1) }
            var decision = read
            let target: FeedbackTarget
            switch decision.target(signed: signed, signer: feedbackTokens, now: clock.wallMicroseconds() / 1_000_000) {
            case .success(let t): target = t
            case .failure(let error): return fail(exchange, error)
            }
            lookUp({ [self] in
                switch target {
                case .request(let id): lookUpRequest(id)
                case .conversation(let id): recent.conversation(id) ?? events.latestRequest(conversation: id)
                }
            }, mayBeElsewhere: true) { [self, decision] found in
                if found == nil, let refusal = unreachable() { return fail(exchange, refusal.0, headers: refusal.1) }
                admit(decision, found, answering: exchange)
            }
        }
    }

    /// With nothing found: the refusal to give when the shared store could not be asked (503, to retry: a 404 would
    /// tell the client to give up on feedback that may well be for a real request).
    private func unreachable() -> (OpenAIError, [(String, String)])? {
        guard events.isShared, events.lookupsFailing else { return nil }
        return storeRefusal("\(config.storePath): the event store did not answer the look-up")
    }

    /// Feedback's 503 while the store cannot take it, with why.
    private func storeRefusal(_ reason: String) -> (OpenAIError, [(String, String)]) {
        FeedbackAdmission.storeFailure(StoreError(.failing, path: config.storePath, reason))
    }

    /// Looks up a request, and when a shared store does not have it, looks again a few times (off the server's
    /// threads): another gateway may have served it and not committed it yet (it writes every flush interval).
    private func lookUp(_ find: @escaping @Sendable () -> RequestInfo?, mayBeElsewhere: Bool,
                        then: @escaping @Sendable (RequestInfo?) -> Void) {
        let found = find()
        guard found == nil, mayBeElsewhere, events.isShared, !events.lookupsFailing else { return then(found) }
        lookUpAgain(find, delays: Self.sharedLookUpDelays(flushIntervalMs: config.flushIntervalMs), then: then)
    }

    /// How long to wait before each further look-up of a request a shared store does not have yet: past two
    /// flush intervals of another gateway, then half a second and a second more (a busy database).
    static func sharedLookUpDelays(flushIntervalMs: Int) -> [Double] {
        [Double(2 * flushIntervalMs + 50) / 1000, 0.5, 1.0]
    }

    /// Looks up again after each delay (off the server's threads) until found or the delays run out.
    private func lookUpAgain(_ lookUp: @escaping @Sendable () -> RequestInfo?, delays: [Double],
                             then: @escaping @Sendable (RequestInfo?) -> Void) {
        guard let delay = delays.first else { return then(nil) }
        DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [self] in
            if let found = lookUp() { return then(found) }
            if events.lookupsFailing { return then(nil) }
            lookUpAgain(lookUp, delays: Array(delays.dropFirst()), then: then)
        }
    }

    private func admit(_ decision: FeedbackDecision, _ found: RequestInfo?, answering exchange: any HTTPExchanging) {
        switch decision.admit(found, now: clock.wallMicroseconds()) {
        case .success(let admission): record(admission, about: found, answering: exchange)
        case .failure(let error): fail(exchange, error)
        }
    }

    /// A request the gateway served: recently (in memory), or from the store.
    private func lookUpRequest(_ id: String) -> RequestInfo? {
        recent.request(id) ?? events.request(id: id)
    }

    /// Takes the feedback's place under the cap, writes it, and answers once the sink has committed it (or
    /// could not: its place is then given back).
    private func record(_ admission: FeedbackAdmission, about request: RequestInfo?, answering exchange: any HTTPExchanging) {
        let admitted = feedbackLedger.take(admission.ledgerKey) {
            admission.stored.evaluate { target, name in
                switch target {
                case .request(let id): events.feedbackCount(requestID: id, name: name)
                case .conversation(let id): events.feedbackCount(conversationID: id, name: name)
                }
            }
        }
        guard admitted else { return fail(exchange, admission.limitRefusal) }
        events.write(admission.event) { [self] error in
            if let error {
                feedbackLedger.giveBack(admission.ledgerKey)
                let (refusal, headers) = FeedbackAdmission.storeFailure(error)
                fail(exchange, refusal, headers: headers)
            } else {
                metrics.recordFeedback(experiment: admission.event.experiment, name: admission.metricName)
                respondJSON(exchange, 200, admission.reply)
                if let tracer, let request { tracer.feedback(admission.event, request: request) }
            }
        }
    }

    // MARK: Other endpoints

    func metricsPage(_ exchange: any HTTPExchanging) {
        let store = events.counters
        let server = self.server.withLock { $0 }
        let gauges: [(name: String, help: String, value: Double)] = [
            ("bakeoff_store_queue_depth", "Events waiting for the store's writer.", Double(store.queueDepth)),
            ("bakeoff_events_written_total", "Events committed to the store.", Double(store.written)),
            ("bakeoff_events_dropped_total", "Events dropped: the store's queue was full, or feedback refused while the store could not write.", Double(store.dropped)),
            ("bakeoff_store_healthy", "1 while the store writes, 0 while its writes fail (and are retried).", events.health == .ok ? 1 : 0),
            ("bakeoff_replicas_with_other_plans", "Other live gateways sharing the store that run a different plan for one of this gateway's experiments.", Double(events.replicaProblems.count)),
            ("bakeoff_store_write_errors_total", "Failed store writes (each is retried while the queue holds).", Double(store.writeErrors)),
            ("bakeoff_store_write_retries_total", "Store writes retried after a failure.", Double(store.writeRetries)),
            ("bakeoff_store_events_deleted_total", "Events deleted by store.retention_days.", Double(store.deleted)),
            ("bakeoff_requests_in_flight", "Requests being served.", Double(server?.requestsInFlight ?? 0)),
            ("bakeoff_upstream_calls_active", "Upstream calls in progress.", Double(upstream.callsInProgress)),
            ("bakeoff_upstream_connections_opened_total", "Connections opened to upstreams (each one TLS handshake for https://); far fewer than the requests while connections are reused.", Double(upstream.connectionsOpened)),
            ("bakeoff_uptime_seconds", "Seconds since the gateway started.", (Double(clock.monotonicNanoseconds() &- startedMonotonic) / 1e9).rounded()),
            ("bakeoff_http_connections_open", "Client connections open.", Double(server?.openConnections ?? 0)),
            ("bakeoff_http_max_connections", "Client connections accepted at once (after fitting the open-files limit).", Double(server?.maxConnections ?? 0)),
            ("bakeoff_http_connections_refused_total", "Connections refused at max_connections or max_connections_per_address.", Double(server?.refusedConnections ?? 0)),
            ("bakeoff_http_header_timeouts_total", "Connections closed for not sending their headers within header_timeout_ms.", Double(server?.headerTimeouts ?? 0)),
            ("bakeoff_http_body_timeouts_total", "Connections closed for not sending their body within body_timeout_ms.", Double(server?.bodyTimeouts ?? 0)),
            ("bakeoff_buffered_bytes", "Bytes of request bodies, stream buffers and upstream answers held now.", Double(server?.budget.used ?? 0)),
            ("bakeoff_memory_budget_bytes", "The most bytes requests may buffer together (memory_budget_bytes).", Double(server?.budget.limit ?? config.limits.memoryBudgetBytes)),
        ]
        var text = metrics.render(gauges: gauges + traceGauges())
        if let server {
            text += server.streamDelays.prometheus(name: "bakeoff_stream_chunk_delay_seconds",
                                                   help: "How long a streamed chunk waited between its arrival from the upstream and its hand-off to the client's socket.")
        }
        exchange.respond(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: Array(text.utf8))
    }

    /// /metrics of the trace export (none without it).
    private func traceGauges() -> [(name: String, help: String, value: Double)] {
        guard let exporter = tracer?.exporter else { return [] }
        return [
            ("bakeoff_otlp_spans_exported_total", "Spans the OpenTelemetry collector took.", Double(exporter.exported)),
            ("bakeoff_otlp_spans_dropped_total", "Spans given up on: queue full, refused by the collector, or still failing after every retry.", Double(exporter.dropped)),
            ("bakeoff_otlp_export_failures_total", "Span exports that failed (each retry counts).", Double(exporter.failures)),
            ("bakeoff_otlp_queue_depth", "Spans waiting to be exported.", Double(exporter.queueDepth)),
            ("bakeoff_otlp_healthy", "1 while span exports succeed, 0 since the last one failed.", exporter.lastError == nil ? 1 : 0),
        ]
    }

    func report(_ exchange: any HTTPExchanging, _ request: HTTPRequest, experiment name: String) {
        let experiment: GatewayExperiment, format: ReportFormat
        switch GatewayPages.report(experiment: name, query: request.query, config: config, isAdmin: access.isAdmin(request), access: access) {
        case .success(let chosen): (experiment, format) = chosen
        case .failure(let error): return fail(exchange, error)
        }
        // The analysis reads the whole store: off the server's threads.
        DispatchQueue.global().async { [self] in
            events.flush()
            let now = clock.wallMicroseconds()
            looks.record(experiment.name, now: now, source: "report")
            do {
                let report = try liveAnalysis(experiment).refresh(now: now).report
                exchange.respond(status: 200, headers: [("Content-Type", GatewayPages.contentType(format))], body: Array(report.render(format).utf8))
            } catch {
                fail(exchange, OpenAIError(status: 409, message: "no report for \(experiment.name) yet: \(error)", type: "invalid_request_error", code: "report_unavailable"))
            }
        }
    }
}

extension Gateway {
    /// `GET /v1/experiments/NAME/timeseries` (admin): the live report at the end of each day, as JSON.
    func timeSeries(_ exchange: any HTTPExchanging, _ request: HTTPRequest, experiment name: String) {
        var query = request.query
        query["format"] = "json"
        let experiment: GatewayExperiment
        switch GatewayPages.report(experiment: name, query: query, config: config, isAdmin: access.isAdmin(request), access: access) {
        case .success(let chosen): experiment = chosen.0
        case .failure(let error): return fail(exchange, error)
        }
        // Each day's analysis reads the store: off the server's threads.
        DispatchQueue.global().async { [self] in
            events.flush()
            do {
                let series = try liveAnalysis(experiment).refresh(now: clock.wallMicroseconds()).series
                exchange.respond(status: 200, headers: [("Content-Type", "application/json")], body: Array(series.renderJSON().utf8))
            } catch {
                fail(exchange, OpenAIError(status: 409, message: "no time series for \(experiment.name) yet: \(error)", type: "invalid_request_error", code: "report_unavailable"))
            }
        }
    }
}

/// Request ids: `req_` and 24 hex digits, the first 12 the milliseconds since 1970 and the other 12 random.
///
/// Why time first: the store indexes requests by id, and ids that grow with time land at the end of that
/// index, so a batch of events dirties a few pages instead of one page per event (random ids made the store's
/// writer rewrite most of the index on every commit). 48 random bits per millisecond keep ids unguessable
/// enough for look-ups; feedback on a request needs its signed token or its user anyway. About twice the
/// SQLite writer's throughput (BENCHMARKS.md, "SQLite event store").
enum RequestID {
    static func make(wallMicroseconds: Int64 = WallClock.microseconds()) -> String {
        let millis = UInt64(max(0, wallMicroseconds / 1000)) & 0xFFFF_FFFF_FFFF
        let random = SecureRandom.next() & 0xFFFF_FFFF_FFFF
        return String(unsafeUninitializedCapacity: 28) { buffer in
            let prefix: StaticString = "req_"
            prefix.withUTF8Buffer { for (i, b) in $0.enumerated() { buffer[i] = b } }
            let digits: StaticString = "0123456789abcdef"
            digits.withUTF8Buffer { hex in
                for i in 0..<12 {
                    buffer[4 + i] = hex[Int((millis >> UInt64(44 - 4 * i)) & 0xF)]
                    buffer[16 + i] = hex[Int((random >> UInt64(44 - 4 * i)) & 0xF)]
                }
            }
            return 28
        }
    }
}

/// Random numbers from the system's secure generator, fetched 4 KiB at a time (one system call per 512
/// numbers instead of one or two per request).
enum SecureRandom {
    private struct Pool {
        var words = [UInt64](repeating: 0, count: 512)
        var next = 512
    }
    private static let pool = Mutex(Pool())
    /// The kernel's secure generator (Glibc's module has no `getrandom`).
    private static let urandom = open("/dev/urandom", O_RDONLY | O_CLOEXEC)

    static func next() -> UInt64 {
        pool.withLock { p in
            if p.next == p.words.count {
                let filled = urandom >= 0 ? p.words.withUnsafeMutableBytes { read(urandom, $0.baseAddress, $0.count) } : -1
                if filled != p.words.count * 8 {
                    var g = SystemRandomNumberGenerator()
                    for i in p.words.indices { p.words[i] = g.next() }
                }
                p.next = 0
            }
            defer { p.next += 1 }
            return p.words[p.next]
        }
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

/// Each experiment's live analysis, made on first use and kept: the report, the time series and the dashboard
/// read the store through it, so a later read costs only the events written since.
final class LiveAnalyses: Sendable {
    private let all = Mutex<[String: LiveAnalysis]>([:])

    func analysis(of experiment: GatewayExperiment, storePath: String) throws -> LiveAnalysis {
        if let known = all.withLock({ $0[experiment.name] }) { return known }
        let made = LiveAnalysis(path: storePath, options: try experiment.storeAnalysisOptions(), plan: experiment.livePlan)
        return all.withLock { all in
            if let known = all[experiment.name] { return known }
            all[experiment.name] = made
            return made
        }
    }
}
