import Foundation
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
    about: "An OpenAI-compatible model server for tests, the demo and benchmarks: POST /v1/chat/completions and /v1/completions (streamed or not), GET /v1/models, GET /mock/requests (the last requests as JSON lines), GET /mock/stats (requests received and connections accepted, as JSON). Serves HTTPS with --tls-cert and --tls-key (PEM files). Prints \"mock-upstream listening on http://HOST:PORT/v1\" (https:// with TLS) to stderr when ready; stops on SIGTERM or SIGINT.",
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
        .repeatable("--quality", "MODEL=P", "Requests for MODEL are answered correctly with probability P (0 to 1): the reply is the question's expected answer, else a wrong one; may be repeated"),
        .single("--quality-noise", "F", "Share of --quality calls whose correctness is a fresh draw, not the question's difficulty (repetitions then differ)", default: "0"),
        .repeatable("--judge-model", "NAME", "Requests for NAME are judged as MT-Bench judge prompts (pairwise [[A]]/[[B]]/[[C]], Rating: [[k]], [[YES]]/[[NO]]); may be repeated"),
        .single("--judge-position-bias", "F", "Share of pairwise judge calls answered [[A]] whatever the answers", default: "0"),
        .single("--judge-garbage-rate", "F", "Share of judge calls answered without any verdict", default: "0"),
        .single("--tls-cert", "PEM", "Serve HTTPS with this certificate (PEM; intermediates may follow it); needs --tls-key"),
        .single("--tls-key", "PEM", "The certificate's private key (PEM, unencrypted)"),
    ],
    notes: """
    --latency-ms 0 --jitter-ms 0 --tokens-per-second 0 answers at once, for overhead benchmarks.

    With --tls-cert and --tls-key it serves HTTPS, and GET /mock/stats counts its TLS handshakes ("tls_handshakes": one per connection accepted): a client that keeps its connections alive makes few. A gateway trusts a certificate that no public CA issued through its upstream's "tls": {"ca_file": "ca.pem"}.

    For offline evals: the question of a request is its last user message (system messages are ignored) or its prompt. Each question has one expected answer (3 to 6 words, the reference of bakeoff mock-dataset) and a difficulty, uniform in 0 to 1 and the same for every model; a --quality model answers correctly when the difficulty is below P, so the expected rate of correct answers is exactly P (with --quality-noise too) and, without noise, a better model gets right what a worse one does. A judge finds the question and answers by MT-Bench's markers ([User Question], [The Start of Assistant A's Answer], ...; pointwise [Question], [The Start of Assistant's Answer]); an answer is good when it is the expected answer. A judge prompt without the markers gets a 400 error.
    """
)

let mockDatasetSpec = CommandSpec(
    "mock-dataset",
    summary: "Write a synthetic eval dataset that the mock upstream grades",
    usage: ["--size N [options]"],
    about: "Writes N support-bot questions as an eval dataset in JSON Lines, one request a line: {\"id\", \"messages\": [one user message], \"reference\", \"metadata\": {\"topic\"}}. Each reference is the answer mock-upstream gives to the question when a graded model (its quality option) answers it correctly. The same --seed and --topics give the same dataset.",
    options: [
        .single("--size", "N", "Number of requests"),
        .seed("Seed of the questions and their topics"),
        .single("--topics", "LIST", "Comma-separated topics; billing, shipping, account, returns and technical have their own questions, other names generic ones", default: "billing,shipping,account,returns,technical"),
        .single("--output", "FILE", "Write to FILE instead of stdout (- is stdout)"),
    ]
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
    let options = try mockUpstreamOptions(args)
    let stop = StopSignal()

    let mock = MockUpstream(options: options)
    try mock.start()
    console.note("mock-upstream listening on \(mock.baseURL)")
    stop.wait()
    mock.stop(graceSeconds: 1)
    return .ok
}

/// The mock's options from `mock-upstream`'s arguments, every value checked.
package func mockUpstreamOptions(_ args: ParsedArguments) throws(UsageError) -> MockUpstream.Options {
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
    for entry in args.strings("--quality") {
        guard let equals = entry.lastIndex(of: "="), equals != entry.startIndex else {
            throw UsageError("--quality needs MODEL=P, e.g. support-v1=0.6, got \"\(entry)\"")
        }
        let model = String(entry[..<equals]), text = String(entry[entry.index(after: equals)...])
        guard let p = Double(text), (0...1).contains(p) else {
            throw UsageError("--quality \(model) must be a probability between 0 and 1, got \"\(text)\"")
        }
        guard options.quality[model] == nil else { throw UsageError("--quality gives \(model) twice") }
        options.quality[model] = p
    }
    if let v = try args.double("--quality-noise", in: 0...1, rule: "between 0 and 1") { options.qualityNoise = v }
    for model in args.strings("--judge-model") {
        guard !model.isEmpty else { throw UsageError("--judge-model needs a model name") }
        guard options.quality[model] == nil else {
            throw UsageError("\(model) is given both --quality and --judge-model; a model is graded or a judge, not both")
        }
        options.judgeModels.insert(model)
    }
    if let v = try args.double("--judge-position-bias", in: 0...1, rule: "between 0 and 1") { options.judgePositionBias = v }
    if let v = try args.double("--judge-garbage-rate", in: 0...1, rule: "between 0 and 1") { options.judgeGarbageRate = v }
    options.tls = try mockTLS(certificate: args.string("--tls-cert"), key: args.string("--tls-key"))
    return options
}

/// The certificate and key of `--tls-cert` and `--tls-key`, read and given a first look (PEM, the right kind),
/// so that a mix-up is named here rather than as a failed start; nil when neither is given.
func mockTLS(certificate: String?, key: String?) throws(UsageError) -> HTTPServer.TLS? {
    guard certificate != nil || key != nil else { return nil }
    guard let certificate, let key else {
        throw UsageError(certificate == nil ? "--tls-key needs --tls-cert (the certificate that goes with the key)" : "--tls-cert needs --tls-key (the certificate's private key)")
    }
    func read(_ option: String, _ path: String) throws(UsageError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("\(option) \(path): " + (FileManager.default.fileExists(atPath: path) ? "cannot be read (check its permissions)" : "no such file"))
        }
        return String(decoding: data, as: UTF8.self)
    }
    let certificateText = try read("--tls-cert", certificate), keyText = try read("--tls-key", key)
    guard certificateText.contains("-----BEGIN CERTIFICATE-----") else {
        throw UsageError("--tls-cert \(certificate): holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    }
    guard !keyText.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") else {
        throw UsageError("--tls-key \(key): the key is encrypted; write an unencrypted copy with: openssl pkey -in \(key) -out plain-key.pem")
    }
    guard keyText.contains("PRIVATE KEY-----") else {
        throw UsageError("--tls-key \(key): holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
    }
    return HTTPServer.TLS(certificatePEM: certificateText, keyPEM: keyText)
}

@Sendable func runMockDataset(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    guard let size = try args.int("--size", in: 1...10_000_000, rule: "between 1 and 10000000") else {
        throw UsageError("--size N is required (the number of requests)")
    }
    var topics = MockQuality.builtInTopics
    if let list = args.string("--topics") {
        topics = []
        for name in list.split(separator: ",", omittingEmptySubsequences: false) {
            var topic = Substring(name)
            while topic.first == " " { topic.removeFirst() }
            while topic.last == " " { topic.removeLast() }
            guard !topic.isEmpty else { throw UsageError("--topics needs comma-separated names, got \"\(list)\"") }
            guard !topics.contains(String(topic)) else { throw UsageError("--topics names \(topic) twice") }
            topics.append(String(topic))
        }
    }
    let seed = args.seed("--seed") ?? 1
    let output = args.string("--output")
    let file = try output.flatMap { $0 == "-" ? nil : try OutputFile(creating: $0) }
    defer { file?.close() }
    let buffer = OutputBuffer(file ?? console.output)
    for item in MockQuality.datasetItems(size: size, seed: seed, topics: topics) {
        try buffer.writeLine(item.jsonLine)
    }
    try buffer.flush()
    try file?.finish()
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
