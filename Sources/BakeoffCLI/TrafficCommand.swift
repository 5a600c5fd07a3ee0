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

private struct BehaviourFile: Decodable {
    var completion: Double
    var escalation: Double
    var csat: Double
    var turns: Double
    var csat_response_rate: Double?
    var thumbs_rate: Double?
    var like_rate: Double?
}

private func loadBehaviours(_ path: String) throws -> [String: TrafficSimulator.Behaviour] {
    guard let data = FileManager.default.contents(atPath: path) else { throw UsageError("--behaviour: cannot read \(path)") }
    let decoded: [String: BehaviourFile]
    do { decoded = try JSONDecoder().decode([String: BehaviourFile].self, from: data) } catch {
        throw UsageError("--behaviour \(path): expected {\"VARIANT\": {\"completion\", \"escalation\", \"csat\", \"turns\"}, ...}: \(error)")
    }
    var out: [String: TrafficSimulator.Behaviour] = [:]
    for (name, b) in decoded {
        var behaviour = TrafficSimulator.Behaviour(completion: b.completion, escalation: b.escalation, csat: b.csat, turns: b.turns)
        if let v = b.csat_response_rate { behaviour.csatResponseRate = v }
        if let v = b.thumbs_rate { behaviour.thumbsRate = v }
        if let v = b.like_rate { behaviour.likeRate = v }
        guard (0...1).contains(behaviour.completion), (0...1).contains(behaviour.escalation), behaviour.turns >= 1 else {
            throw UsageError("--behaviour \(path): \(name): completion \(behaviour.completion) and escalation \(behaviour.escalation) must be between 0 and 1, turns \(behaviour.turns) at least 1")
        }
        out[name] = behaviour
    }
    return out
}
