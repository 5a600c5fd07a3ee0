#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import BakeoffCore
import BakeoffGateway
import Dispatch
import Foundation
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools

let serveHelp = """
USAGE: bakeoff serve --config FILE [options]

Runs the A/B gateway: an OpenAI-compatible endpoint (POST /v1/chat/completions, /v1/completions) that
assigns each user to a variant for good, forwards to that variant's upstream, logs every request to the
embedded store and takes feedback (POST /v1/feedback). See the README for the config and every endpoint.

OPTIONS:
  --config FILE      The gateway config (JSON)
  --check            Validate the config, print what it sets up, and exit (0 when valid)
  --listen HOST:PORT Override the config's listen address (port 0 picks a free one)
  --store PATH       Override the config's store path
  --grace SECONDS    On SIGTERM/SIGINT, how long requests in flight may take to finish (default 30)

Admin features (live reports, X-Bakeoff-Force-Variant) need the environment variable named by
"admin_key_env" (default BAKEOFF_ADMIN_KEY).
"""

func runServe(_ args: inout Arguments) throws -> ExitCode {
    if args.wantsHelp { print(serveHelp); return .ok }
    guard let path = try args.option("--config") else { throw UsageError("give the gateway config: bakeoff serve --config bakeoff.json") }
    let check = args.flag("--check")
    let listen = try args.option("--listen")
    let storePath = try args.option("--store")
    let grace = try args.double("--grace") ?? 30
    try args.finish()
    var config = try GatewayConfig.load(path: path)
    if let listen {
        guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else {
            throw UsageError("--listen must be HOST:PORT, got \"\(listen)\"")
        }
        config.listenHost = String(listen[..<colon])
        config.listenPort = port
    }
    if let storePath { config.storePath = storePath }
    if check {
        print(config.summary())
        print("\(path): valid")
        return .ok
    }
    let gateway = try Gateway(config: config)
    // Stop on SIGTERM/SIGINT: stop accepting, let requests in flight finish, flush the store. Installed before
    // the ready line, so a SIGTERM sent as soon as it appears stops the gateway gracefully.
    let stop = StopSignal()
    try gateway.start()
    for note in gateway.startNotes { printError(note) }
    printError("bakeoff serve listening on http://\(config.listenHost):\(gateway.port)/v1 (store \(config.storePath); models: \(config.experiments.map(\.model).joined(separator: ", ")))")

    if config.access.feedbackKey == nil {
        printError("$\(config.access.feedbackKeyEnv) is not set: feedback tokens are signed with a random key and stop working at the next start (set it, the same on every gateway)")
    }
    stop.wait()
    printError("stopping (finishing requests in flight, flushing the store)")
    gateway.stop(graceSeconds: grace)
    printError("stopped")
    return .ok
}
