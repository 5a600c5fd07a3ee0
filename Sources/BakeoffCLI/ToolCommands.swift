import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools
import BakeoffGateway

let mockUpstreamSpec = CommandSpec(
    "mock-upstream",
    summary: "An OpenAI-compatible model server for tests, demos, benchmarks",
    usage: ["--port P [options]"],
    about: "An OpenAI-compatible model server for tests, the demo and benchmarks: POST /v1/chat/completions and /v1/completions (streamed or not), GET /v1/models, GET /mock/requests (the last requests as JSON lines). Prints \"mock-upstream listening on http://HOST:PORT/v1\" to stderr when ready; stops on SIGTERM or SIGINT.",
    options: [
        .single("--port", "P", "Port to listen on (0 picks a free one, shown in the ready line)"),
        .single("--host", "H", "IPv4 address to listen on", default: "127.0.0.1"),
        .single("--latency-ms", "MS", "Time to the first byte; non-streaming: to the whole answer", default: "200"),
        .single("--jitter-ms", "MS", "Uniform jitter around the latency, plus or minus", default: "50"),
        .single("--tokens-per-second", "R", "Pace of streamed tokens; 0 sends them at once", default: "50"),
        .single("--output-tokens", "N", "Tokens per reply, fewer if the request's max_tokens is smaller", default: "40"),
        .single("--error-rate", "F", "Share of requests answered 500 or 429 (alternately) with an OpenAI error", default: "0"),
        .single("--fail-mid-stream-rate", "F", "Share of streams aborted after a few chunks", default: "0"),
        .single("--reply-prefix", "TEXT", "Put TEXT at the start of every reply (e.g. to tell variants apart)"),
        .seed("Seed of the deterministic reply words and random draws"),
        .single("--threads", "N", "Server threads", default: "2"),
    ],
    notes: "--latency-ms 0 --jitter-ms 0 --tokens-per-second 0 answers at once, for overhead benchmarks."
)

let loadSpec = CommandSpec(
    "load",
    summary: "Send load to an OpenAI-compatible endpoint: latency percentiles",
    usage: ["--url URL [options]"],
    about: "Sends chat completion requests to an OpenAI-compatible endpoint and reports throughput and latency. Open loop at a fixed rate (sends on schedule whatever the latency; a send that finds --concurrency requests outstanding is counted as skipped), or closed loop with --rate 0.",
    options: [
        .single("--url", "URL", "The full endpoint, e.g. http://127.0.0.1:8080/v1/chat/completions"),
        .single("--rate", "R", "Requests per second; 0 keeps --concurrency requests outstanding", default: "1000"),
        .single("--duration", "S", "Measured seconds", default: "10"),
        .single("--warmup", "S", "Seconds sent first and not measured", default: "2"),
        .single("--concurrency", "N", "Most requests outstanding; in a closed loop, requests kept outstanding", default: "256"),
        .single("--users", "N", "Distinct \"user\" ids cycled through, user-0 ...", default: "10000"),
        .single("--model", "NAME", "The request's model", default: "support-bot"),
        .flag("--stream", "Ask for a streamed answer (then TTFT is reported)"),
        .single("--max-tokens", "N", "Add max_tokens to the requests"),
        .repeatable("--header", "'Name: value'", "An extra request header; may be repeated"),
        .single("--timeout", "S", "Per-request timeout in seconds", default: "60"),
        .choice("--format", LoadFormat.self, "Output format", default: "table"),
    ],
    notes: "Latencies cover requests answered completely with a 2xx status. Exit status 1 when none was."
)

enum LoadFormat: String, CaseIterable {
    case table, json
}

/// Serves until SIGTERM or SIGINT (process-wide signal handlers).
@Sendable func runMockUpstream(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    var options = MockUpstream.Options()
    guard let port = try args.int("--port") else { throw UsageError("--port is required (0 picks a free port)") }
    guard (0...65535).contains(port) else { throw UsageError("--port must be between 0 and 65535, got \(port)") }
    options.port = UInt16(port)
    if let host = args.string("--host") { options.host = host }
    if let v = try args.double("--latency-ms", in: 0...Double.greatestFiniteMagnitude, rule: "0 or more") { options.latencyMs = v }
    if let v = try args.double("--jitter-ms", in: 0...Double.greatestFiniteMagnitude, rule: "0 or more") { options.jitterMs = v }
    if let v = try args.double("--tokens-per-second", in: 0...Double.greatestFiniteMagnitude, rule: "0 or more") { options.tokensPerSecond = v }
    if let v = try args.int("--output-tokens", in: 0...Int.max, rule: "0 or more") { options.outputTokens = v }
    if let v = try args.double("--error-rate", in: 0...1, rule: "between 0 and 1") { options.errorRate = v }
    if let v = try args.double("--fail-mid-stream-rate", in: 0...1, rule: "between 0 and 1") { options.failMidStreamRate = v }
    if let seed = args.seed("--seed") { options.seed = seed }
    if let v = try args.int("--threads", in: 1...64, rule: "between 1 and 64") { options.threads = v }
    if let prefix = args.string("--reply-prefix") { options.replyPrefix = prefix }

    let stop = StopSignal()

    let mock = MockUpstream(options: options)
    try mock.start()
    console.note("mock-upstream listening on \(mock.baseURL)")
    stop.wait()
    mock.stop(graceSeconds: 1)
    return .ok
}

@Sendable func runLoad(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    let headers = args.strings("--header")
    for header in headers {
        guard let colon = header.firstIndex(of: ":"), colon != header.startIndex,
              !header[..<colon].contains(where: { $0 == " " || $0 == "\t" }) else {
            throw UsageError("--header needs 'Name: value', got \"\(header)\"")
        }
    }

    guard let url = args.string("--url") else { throw UsageError("--url is required, e.g. http://127.0.0.1:8080/v1/chat/completions") }
    guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw UsageError("--url must start with http:// or https://, got \"\(url)\"") }
    var options = LoadGenerator.Options(url: url)
    options.headers = headers
    if let v = try args.double("--rate", in: 0...Double.greatestFiniteMagnitude, rule: "0 (closed loop) or more") { options.rate = v }
    if let v = try args.double("--duration") {
        guard v > 0 else { throw UsageError("--duration must be more than 0 seconds, got \(v)") }
        options.durationSeconds = v
    }
    if let v = try args.double("--warmup", in: 0...Double.greatestFiniteMagnitude, rule: "0 or more seconds") { options.warmupSeconds = v }
    if let v = try args.int("--concurrency", in: 1...Int.max, rule: "1 or more") { options.concurrency = v }
    if let v = try args.int("--users", in: 1...Int.max, rule: "1 or more") { options.users = v }
    if let model = args.string("--model") { options.model = model }
    options.stream = args.flag("--stream")
    if let v = try args.int("--max-tokens", in: 0...Int.max, rule: "0 or more") { options.maxTokens = v }
    if let v = try args.double("--timeout") {
        guard v > 0 else { throw UsageError("--timeout must be more than 0 seconds, got \(v)") }
        options.timeoutMs = Int((v * 1000).rounded(.up))
    }
    let format = args.choice("--format", LoadFormat.self) ?? .table

    if format == .table {
        let mode = options.rate > 0 ? "\(JSONWriter.number(options.rate)) req/s" : "closed loop, \(options.concurrency) outstanding"
        console.printError("load: \(mode) for \(JSONWriter.number(options.durationSeconds)) s after \(JSONWriter.number(options.warmupSeconds)) s of warmup, against \(url)")
    }
    let report = LoadGenerator.run(options)
    try console.print(format == .json ? report.json() : report.table())
    if report.completed == 0 {
        console.printError("no request was answered successfully" + (report.errorsByKind.isEmpty ? "" : " (" + report.errorsByKind.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")"))
        return .failure
    }
    return .ok
}
