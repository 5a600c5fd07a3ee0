import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools
import BakeoffGateway
import BakeoffStore
import Foundation

let serveSpec = CommandSpec(
    "serve",
    summary: "The A/B gateway: OpenAI API, sticky per user, logs and feedback",
    usage: ["--config FILE [options]"],
    about: "Runs the A/B gateway: an OpenAI-compatible endpoint (POST /v1/chat/completions, /v1/completions) that assigns each user to a variant for good, forwards to that variant's upstream, logs every request to the embedded store and takes feedback (POST /v1/feedback). See the README for the config and every endpoint.",
    options: [
        .single("--config", "FILE", "The gateway config (JSON)"),
        .flag("--check", "Validate the config, print what it sets up, and exit (0 when valid)"),
        .single("--listen", "HOST:PORT", "Override the config's listen address (port 0 picks a free one)"),
        .single("--store", "PATH", "Override the config's store path"),
        .single("--grace", "SECONDS", "On SIGTERM/SIGINT, how long requests in flight may take to finish", default: "30"),
        .single("--evals", "FILE", "An eval cache (where bakeoff eval keeps its calls and reports) for the dashboard to list", default: "bakeoff-eval.db when it exists"),
    ],
    notes: "Admin features (live reports, the dashboard at /dashboard, X-Bakeoff-Force-Variant) need the environment variable named by \"admin_key_env\" (default BAKEOFF_ADMIN_KEY)."
)

/// Serves until SIGTERM or SIGINT (process-wide signal handlers); `--check` returns at once.
@Sendable func runServe(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    guard let path = args.string("--config") else { throw UsageError("give the gateway config: bakeoff serve --config bakeoff.json") }
    let check = args.flag("--check")
    let listen = args.string("--listen")
    let storePath = args.string("--store")
    let grace = try args.double("--grace", in: 0...86_400, rule: "between 0 and 86400 seconds") ?? 30
    var config = try GatewayConfig.load(path: path)
    if let listen {
        guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else {
            throw UsageError("--listen must be HOST:PORT, got \"\(listen)\"")
        }
        config.listenHost = String(listen[..<colon])
        config.listenPort = port
    }
    if let storePath {
        config.storePath = storePath
        if let problem = config.sharedStoreProblem { throw UsageError("--store \(storePath): \(problem)") }
    }
    if let evals = args.string("--evals") {
        guard FileManager.default.isReadableFile(atPath: evals) else { throw UsageError("--evals \(evals): no such readable eval cache (where bakeoff eval keeps its calls and reports)") }
        config.dashboardEvalCaches = [evals]
    } else if FileManager.default.isReadableFile(atPath: "bakeoff-eval.db") {
        config.dashboardEvalCaches = ["bakeoff-eval.db"]
    }
    if check {
        // What serving would fail on at once, short of opening the store.
        if PostgresLocation.isURL(config.storePath) {
            _ = try PostgresLocation(url: config.storePath)
        } else {
            try EventStore.checkLocation(config.storePath)
        }
        try console.print(config.summary())
        try console.print("\(path): valid")
        return .ok
    }
    let gateway = try Gateway(config: config)
    // Stop on SIGTERM/SIGINT: stop accepting, let requests in flight finish, flush the store. Installed before
    // the ready line, so a SIGTERM sent as soon as it appears stops the gateway gracefully.
    let stop = StopSignal()
    try gateway.start()
    for note in gateway.startNotes { console.printError(note) }
    // Tools wait for this line (e2e/gateway, scripts): keep it as it is.
    console.note("bakeoff serve listening on http://\(config.listenHost):\(gateway.port)/v1 (store \(config.storePath); models: \(config.experiments.map(\.model).joined(separator: ", ")))")

    if config.access.feedbackKey == nil {
        console.printError("$\(config.access.feedbackKeyEnv) is not set: feedback tokens are signed with a random key and stop working at the next start (set it, the same on every gateway)")
    }
    stop.wait()
    console.printError("stopping (finishing requests in flight, flushing the store)")
    gateway.stop(graceSeconds: grace)
    console.printError("stopped")
    return .ok
}
