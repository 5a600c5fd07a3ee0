import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffReport
import BakeoffStatistics
import BakeoffStore
import Foundation
import Synchronization

let dashboardSpec = CommandSpec(
    "dashboard",
    summary: "The live dashboard of a store, read-only",
    usage: ["--db STORE [--config FILE] [options]"],
    about: "Serves the dashboard the gateway shows at /dashboard (experiments, each experiment's health, decision, scorecard and daily charts) for an event store, read-only, for people who only want to look. Each refresh reads only the events written since the last one.",
    options: [
        .single("--db", "STORE", "The event store (the gateway's SQLite file)"),
        .single("--config", "FILE", "The gateway config: each experiment's metrics and plan as the gateway has them", default: "the plan recorded in the store, with the built-in metrics"),
        .single("--listen", "HOST:PORT", "Where to listen (port 0 picks a free one)", default: "127.0.0.1:8090"),
        .single("--refresh", "SECONDS", "How often an open page refreshes itself; 0 = only on the button", default: "30"),
        .single("--evals", "FILE", "An eval cache (where bakeoff eval keeps its calls and reports) to list", default: "bakeoff-eval.db when it exists"),
    ],
    notes: "With BAKEOFF_ADMIN_KEY set (or the config's \"admin_key_env\"), the pages need it (a sign-in form sets a cookie). Without a key the dashboard is open, so it listens on this machine only (127.x.x.x or localhost)."
)

@Sendable func runDashboard(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    guard let db = args.string("--db") else { throw UsageError("give the event store: bakeoff dashboard --db bakeoff.db") }
    guard PostgresLocation.isURL(db) || FileManager.default.isReadableFile(atPath: db) else {
        throw UsageError("--db \(db): no such readable event store (the gateway's SQLite file, \"store\" in its config)")
    }
    let listen = args.string("--listen") ?? "127.0.0.1:8090"
    guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else {
        throw UsageError("--listen must be HOST:PORT, got \"\(listen)\"")
    }
    let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    let refresh = try args.double("--refresh", in: 0...86_400, rule: "between 0 and 86400 seconds") ?? 30

    var evals: [String] = []
    if let given = args.string("--evals") {
        guard FileManager.default.isReadableFile(atPath: given) else { throw UsageError("--evals \(given): no such readable eval cache (where bakeoff eval keeps its calls and reports)") }
        evals = [given]
    } else if FileManager.default.isReadableFile(atPath: "bakeoff-eval.db") {
        evals = ["bakeoff-eval.db"]
    }
    var keyEnv = "BAKEOFF_ADMIN_KEY"
    let listing: @Sendable () -> [DashboardSite.Experiment]
    if let configPath = args.string("--config") {
        let config = try GatewayConfig.load(path: configPath)
        keyEnv = config.adminKeyEnv
        var experiments: [DashboardSite.Experiment] = []
        for experiment in config.experiments {
            let options = try experiment.storeAnalysisOptions()
            let analysis = LiveAnalysis(path: db, options: options, plan: experiment.livePlan)
            experiments.append(DashboardSite.Experiment(name: experiment.name, model: experiment.model) { analysis })
        }
        let fixed = experiments
        listing = { fixed }
    } else {
        // The store's experiments at the start, and any a gateway records later (its plans), each read with
        // the plan recorded for it.
        let known = StoreExperiments(path: db, names: try StoreReader.experimentNames(path: db))
        listing = { known.now() }
    }
    let key = ProcessInfo.processInfo.environment[keyEnv].flatMap { $0.isEmpty ? nil : $0 }
    if let key, key.utf8.count < GatewayConfig.minimumSecretBytes {
        throw UsageError("$\(keyEnv) is \(key.utf8.count) bytes long; a key needs at least \(GatewayConfig.minimumSecretBytes) (e.g. openssl rand -hex 16)")
    }
    if key == nil && !HTTPServer.isLoopback(host) {
        throw UsageError("without a key the dashboard is open to anyone who reaches it: set \(keyEnv) to a secret to listen on \(host), or listen on 127.0.0.1")
    }
    let site = DashboardSite(listing: listing, evalCaches: evals, adminKey: key, readOnly: true, refreshSeconds: Int(refresh.rounded(.up)),
                             allowedHosts: key == nil ? ["127.0.0.1", "localhost", host.lowercased()] : nil)
    var options = HTTPServer.Options()
    options.host = host
    options.port = port
    options.maxConnections = 1024
    let server = HTTPServer(options: options) { exchange in
        let request = exchange.request
        if DashboardSite.owns(request.path) { return site.handle(exchange, request) }
        if request.path == "/" {
            return exchange.respond(status: 303, headers: [("Location", DashboardPages.root)], body: Array("See \(DashboardPages.root)\n".utf8))
        }
        exchange.respond(status: 404, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array("not found: the dashboard is at \(DashboardPages.root)\n".utf8))
    }
    let stop = StopSignal()
    try server.start()
    for note in server.notes { console.printError(note) }
    // Tools wait for this line: keep it as it is.
    console.note("bakeoff dashboard on http://\(host.contains(":") ? "[\(host)]" : host):\(server.port)\(DashboardPages.root) (store \(db), read-only\(key == nil ? ", open: no key set" : ", sign in with $\(keyEnv)"))")
    stop.wait()
    server.stop(graceSeconds: 5)
    return .ok
}

/// The experiments of a store without a config: those it held at the start, and any a gateway records later;
/// each with one `LiveAnalysis`, kept.
final class StoreExperiments: Sendable {
    let path: String
    private let known = Mutex<(names: [String], experiments: [String: DashboardSite.Experiment])>(([], [:]))

    init(path: String, names: [String]) {
        self.path = path
        for name in names { add(name) }
    }

    private func add(_ name: String) {
        let recorded = (try? PlanLog.history(path: path, experiment: name))?.last.map { PlanSnapshot(text: $0.plan) }
        var options = EventLog.Options()
        options.experiment = name
        let plan = recorded?.livePlan ?? PlanSnapshot(settings: []).livePlan
        options.experimentStart = plan.start
        let analysis = LiveAnalysis(path: path, options: options, plan: plan)
        let experiment = DashboardSite.Experiment(name: name, model: nil) { analysis }
        known.withLock { k in
            guard k.experiments[name] == nil else { return }
            k.names.append(name)
            k.experiments[name] = experiment
        }
    }

    func now() -> [DashboardSite.Experiment] {
        let have = Set(known.withLock { $0.names })
        for name in (try? PlanLog.experiments(path: path)) ?? [] where !have.contains(name) { add(name) }
        return known.withLock { k in k.names.compactMap { k.experiments[$0] } }
    }
}
