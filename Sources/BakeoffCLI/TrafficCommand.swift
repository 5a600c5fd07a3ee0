import BakeoffCore
import BakeoffGateway
import Foundation
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools

let trafficSpec = CommandSpec(
    "traffic",
    summary: "Simulated users chat with a gateway and give feedback (demos)",
    usage: ["--gateway URL [options]"],
    about: "Simulated users chat with a running gateway in conversations (several turns, X-Bakeoff-Conversation) and leave feedback (task_completed, escalated, csat, thumbs_up) with odds that depend on the variant that answered them: live traffic with a known truth, for demos and end-to-end checks.",
    options: [
        .single("--gateway", "URL", "The gateway's base URL, e.g. http://127.0.0.1:8080"),
        .single("--model", "ALIAS", "The experiment's model alias", default: "support-bot"),
        .single("--users", "N", "Distinct users", default: "400"),
        .single("--duration", "S", "Seconds to run", default: "30"),
        .single("--concurrency", "C", "Users chatting at the same time", default: "24"),
        .single("--stream-share", "P", "Share of requests that stream", default: "0.5"),
        .seed("Random seed"),
        .single("--behaviour", "FILE", "How each variant's users behave, as JSON (see below)", default: "the article's case study for control and treatment"),
    ],
    notes: """
    A --behaviour file:
      {"control": {"completion": 0.713, "escalation": 0.287, "csat": 3.8,
                   "turns": 3.2}, ...}
    and optionally "csat_response_rate", "thumbs_rate" and "like_rate" for each variant.
    """
)

@Sendable func runTraffic(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    guard let gateway = args.string("--gateway") else { throw UsageError("--gateway is required, e.g. --gateway http://127.0.0.1:8080") }
    guard gateway.hasPrefix("http://") || gateway.hasPrefix("https://") else { throw UsageError("--gateway must be an http(s) URL, got \"\(gateway)\"") }
    var options = TrafficSimulator.Options(gateway: gateway.hasSuffix("/") ? String(gateway.dropLast()) : gateway)
    if let m = args.string("--model") { options.model = m }
    if let n = try args.int("--users", in: 1...Int.max, rule: "at least 1") { options.users = n }
    if let d = try args.double("--duration") {
        guard d > 0 && d <= 86_400 else { throw UsageError("--duration must be between 0 and 86400 seconds, got \(d)") }
        options.durationSeconds = d
    }
    if let c = try args.int("--concurrency", in: 1...1024, rule: "between 1 and 1024") { options.concurrency = c }
    if let p = try args.double("--stream-share", in: 0...1, rule: "between 0 and 1") { options.streamShare = p }
    if let s = args.seed("--seed") { options.seed = s }
    if let path = args.string("--behaviour") { options.behaviours = try loadBehaviours(path) }

    let bar = ProgressBar(label: "simulated users chatting", unit: "requests", scale: 1, console: console)
    let summary = TrafficSimulator(options: options).run { _, requests in
        bar.update(done: Int64(requests), total: nil)
    }
    bar.finish()
    let arms = summary.requestsByVariant.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    console.printError("traffic: \(summary.requests) requests (\(arms)), \(summary.conversations) conversations, \(summary.feedback) feedback events; \(summary.failedRequests) failed requests, \(summary.failedFeedback) failed feedback")
    for failure in summary.failures { console.printError("  e.g. \(failure)") }
    return summary.requests > 0 && summary.failedRequests * 10 <= summary.requests ? .ok : .failure
}

/// The `--behaviour` file: `{"VARIANT": {"completion", "escalation", "csat", "turns", ...}, ...}`, read by the
/// one config reader, so a mistake is named with its JSON path (and an unknown key is one).
private func loadBehaviours(_ path: String) throws -> [String: TrafficSimulator.Behaviour] {
    guard let data = FileManager.default.contents(atPath: path) else { throw UsageError("--behaviour: cannot read \(path)") }
    var root = try ConfigObject.parse(data, source: path)
    var out: [String: TrafficSimulator.Behaviour] = [:]
    for name in root.members.keys {
        guard var b = try root.object(name) else { continue }
        func required(_ key: String, _ range: ClosedRange<Double>) throws(ConfigError) -> Double {
            guard let v = try b.double(key, in: range) else { throw b.fail(key, "is required") }
            return v
        }
        var behaviour = TrafficSimulator.Behaviour(completion: try required("completion", 0...1), escalation: try required("escalation", 0...1),
                                                   csat: try required("csat", 1...5), turns: try required("turns", 1...1_000))
        if let v = try b.double("csat_response_rate", in: 0...1) { behaviour.csatResponseRate = v }
        if let v = try b.double("thumbs_rate", in: 0...1) { behaviour.thumbsRate = v }
        if let v = try b.double("like_rate", in: 0...1) { behaviour.likeRate = v }
        try b.finish()
        out[name] = behaviour
    }
    try root.finish()
    return out
}
