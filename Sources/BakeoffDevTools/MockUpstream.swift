import BakeoffCore
import Dispatch
import Foundation
import Synchronization
import BakeoffHTTP
import BakeoffGateway
import BakeoffSimulation

/// An OpenAI-compatible model server for tests, the demo and benchmarks: chat and legacy completions, streamed
/// or not, with a configurable latency, token rate, error rate and mid-stream failures. Replies are
/// deterministic words from the seed.
///
/// For offline evals it also has a known truth (`MockQuality`): models named in `quality` answer each question
/// with its expected answer or a wrong one at a controlled rate, and models named in `judgeModels` act as an
/// MT-Bench judge (`MockJudge`). Those replies are split into tokens at spaces (one word a chunk when
/// streamed; `completion_tokens` counts words), are cut by `max_tokens` like the others, and get no
/// `replyPrefix`.
///
/// It records the last requests it got (`recentRequests`, and `GET /mock/requests` as JSON lines) so tests can
/// check what a gateway forwarded, and counts the connections it accepted (`GET /mock/stats`): with `tls` (it
/// then serves HTTPS) each one began with a TLS handshake, so a client that reuses its connections shows it.
public final class MockUpstream: Sendable {
    public struct Options: Sendable {
        public var host: String = "127.0.0.1"
        /// 0 picks a free port (see `port` after start).
        public var port: UInt16 = 0
        /// Time to the first byte (non-streaming: to the whole answer), plus or minus `jitterMs` (uniform).
        public var latencyMs: Double = 200
        public var jitterMs: Double = 50
        /// Pace of the streamed content chunks after the first; 0 sends them all at once.
        public var tokensPerSecond: Double = 50
        /// Content chunks per reply (fewer when the request's `max_tokens` is smaller).
        public var outputTokens: Int = 40
        /// Share of requests answered with 500 or 429 (alternately) and an OpenAI error body.
        public var errorRate: Double = 0
        /// Share of streams aborted after a few chunks.
        public var failMidStreamRate: Double = 0
        public var seed: UInt64 = 1
        /// Server threads.
        public var threads: Int = 2
        /// Put at the start of every reply (e.g. to tell which variant answered).
        public var replyPrefix: String = ""
        /// How many recent requests are kept for `recentRequests`.
        public var recordLimit: Int = 1000
        /// Models (the request body's `model`) with a known quality in [0, 1]: their reply is exactly
        /// `MockQuality.expectedAnswer(question:)` when they answer correctly, else `MockQuality.wrongAnswer`.
        /// The question is the last user message (system messages are ignored: variants differ in system
        /// prompt), or a completions request's prompt. A question is answered correctly when its difficulty
        /// (uniform in [0, 1) from its hash, the same for every model) is below the quality, so the expected
        /// rate of correct answers is exactly the quality, and better models get right what worse ones do.
        public var quality: [String: Double] = [:]
        /// Share of calls to a `quality` model whose correctness is drawn afresh, Bernoulli(quality), from the
        /// per-request random source instead of the question's difficulty (repetitions then differ). The
        /// expected rate stays the quality; the correlation between models falls.
        public var qualityNoise: Double = 0
        /// Models that act as an LLM judge on MT-Bench prompts (see `MockJudge`); they take precedence over
        /// `quality`.
        public var judgeModels: Set<String> = []
        /// Share of pairwise judge calls answered "[[A]]" whatever the answers (a judge that prefers the first).
        public var judgePositionBias: Double = 0
        /// Share of judge calls answered without any verdict (`MockJudge.garbageReply`).
        public var judgeGarbageRate: Double = 0
        /// Serve HTTPS with this certificate and key instead of plain HTTP.
        public var tls: HTTPServer.TLS? = nil
        public init() {}
    }

    /// A request as the mock received it. Headers are lower-cased, in arrival order, with their real values.
    public struct RecordedRequest: Sendable {
        public var method: String
        public var path: String
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        /// The first header of that name (case-insensitive).
        public func header(_ name: String) -> String? {
            let lower = name.lowercased()
            return headers.first { $0.name == lower }?.value
        }

        public var bodyText: String { String(decoding: body, as: UTF8.self) }
    }

    public let options: Options
    /// Set by `start`.
    private let server = Mutex<HTTPServer?>(nil)
    private let requestCounter = Atomic<UInt64>(0)
    private let errorCounter = Atomic<Int>(0)
    private let records: Mutex<(items: [RecordedRequest], next: Int)>
    /// The reply's content chunks, JSON-escaped (without quotes); chunk 0 carries the reply prefix.
    private let escapedTokens: [String]
    /// The whole reply for `outputTokens` chunks, JSON-escaped.
    private let escapedReply: String

    public init(options: Options) {
        self.options = options
        records = Mutex((items: [], next: 0))
        var rng = RandomSource(seed: options.seed)
        var tokens: [String] = []
        let count = max(0, options.outputTokens)
        tokens.reserveCapacity(count)
        for i in 0..<count {
            var word = mockVocabulary[rng.int(below: mockVocabulary.count)]
            if i == 0 {
                word = options.replyPrefix + word.prefix(1).uppercased() + word.dropFirst()
            }
            let last = i == count - 1
            tokens.append(word + (last ? "." : " "))
        }
        escapedTokens = tokens.map { String(JSONWriter.quote($0).dropFirst().dropLast()) }
        escapedReply = escapedTokens.joined()
    }

    deinit { stop() }

    /// The port it listens on (after `start`).
    public var port: UInt16 { server.withLock { $0 }?.port ?? 0 }

    /// The OpenAI base URL, e.g. `http://127.0.0.1:8000/v1` (`https://` with `tls`).
    public var baseURL: String { "\(options.tls == nil ? "http" : "https")://\(options.host):\(port)/v1" }

    /// Connections accepted so far; with `tls`, TLS handshakes (including those the client gave up on, e.g. for
    /// a certificate it does not trust).
    public var connectionsAccepted: Int { server.withLock { $0 }?.acceptedConnections ?? 0 }

    /// Binds and starts serving.
    public func start() throws {
        var serverOptions = HTTPServer.Options()
        serverOptions.refusalResponse = OpenAIError.refusal
        serverOptions.host = options.host
        serverOptions.port = options.port
        serverOptions.threads = max(1, options.threads)
        // Its clients (the gateway under test, load tools) all come from one address: no per-address limit.
        serverOptions.maxConnectionsPerAddress = 0
        serverOptions.tls = options.tls
        let server = HTTPServer(options: serverOptions) { [unowned self] exchange in self.handle(exchange) }
        try server.start()
        self.server.withLock { $0 = server }
    }

    /// Stops serving; requests still waiting get 503, streams in progress are aborted after `graceSeconds`.
    public func stop(graceSeconds: Double = 0) {
        server.withLock { $0 }?.stop(graceSeconds: graceSeconds)
    }

    /// The last requests (up to `recordLimit`), oldest first; `/mock/...` requests are not recorded.
    public var recentRequests: [RecordedRequest] {
        records.withLock { r in
            guard r.items.count >= options.recordLimit, r.next > 0 else { return r.items }
            return Array(r.items[r.next...] + r.items[..<r.next])
        }
    }

    /// Forgets the recorded requests.
    public func clearRecentRequests() {
        records.withLock { $0 = (items: [], next: 0) }
    }

    /// Model requests received so far (chat and completions, including those answered with errors).
    public var requestsReceived: Int { Int(requestCounter.load(ordering: .relaxed)) }

    /// `GET /mock/stats`: `{"requests": model requests received, "connections": connections accepted,
    /// "tls": whether it serves HTTPS, "tls_handshakes": the connections when it does, else 0}`. The
    /// `/mock/stats` request itself comes on a connection too, counted if it is a new one.
    public var statsJSON: String {
        let connections = connectionsAccepted
        return "{\"requests\":\(requestsReceived),\"connections\":\(connections),\"tls\":\(options.tls != nil),\"tls_handshakes\":\(options.tls == nil ? 0 : connections)}"
    }

    // MARK: - Handling

    private func record(_ request: HTTPRequest) {
        let limit = options.recordLimit
        guard limit > 0 else { return }
        let item = RecordedRequest(method: request.method, path: request.path, headers: request.headers, body: request.body)
        records.withLock { r in
            if r.items.count < limit {
                r.items.append(item)
            } else {
                r.items[r.next] = item
                r.next = (r.next + 1) % limit
            }
        }
    }

    private func handle(_ exchange: HTTPExchange) {
        let request = exchange.request
        if request.path.hasPrefix("/mock/") {
            handleControl(exchange)
            return
        }
        record(request)
        switch request.path {
        case "/v1/chat/completions", "/v1/completions":
            guard request.method == "POST" else {
                respondError(exchange, status: 405, message: "Method \(request.method) is not allowed on \(request.path); use POST.", type: "invalid_request_error")
                return
            }
            handleCompletion(exchange, chat: request.path == "/v1/chat/completions")
        case "/v1/models":
            let body = "{\"object\":\"list\",\"data\":[{\"id\":\"mock\",\"object\":\"model\",\"created\":0,\"owned_by\":\"bakeoff\"}]}"
            exchange.respond(status: 200, headers: jsonHeaders, body: Array(body.utf8))
        default:
            respondError(exchange, status: 404, message: "Unknown request URL: \(request.method) \(request.path).", type: "invalid_request_error", code: "unknown_url")
        }
    }

    /// `GET /mock/requests`: the recorded requests as JSON lines (authorization headers as "<present>");
    /// `DELETE /mock/requests` forgets them. `GET /mock/stats`: what it counted (see `statsJSON`).
    private func handleControl(_ exchange: HTTPExchange) {
        let request = exchange.request
        if request.path == "/mock/stats" && request.method == "GET" {
            exchange.respond(status: 200, headers: jsonHeaders, body: Array(statsJSON.utf8))
            return
        }
        guard request.path == "/mock/requests" else {
            respondError(exchange, status: 404, message: "Unknown request URL: \(request.method) \(request.path).", type: "invalid_request_error", code: "unknown_url")
            return
        }
        switch request.method {
        case "GET":
            var text = ""
            for item in recentRequests {
                var headers: [(String, String)] = []
                for (name, value) in item.headers {
                    let shown = name == "authorization" || name == "proxy-authorization" ? "<present>" : value
                    if let i = headers.firstIndex(where: { $0.0 == name }) {
                        headers[i].1 += ", " + shown
                    } else {
                        headers.append((name, shown))
                    }
                }
                text += "{\"method\":\(JSONWriter.quote(item.method)),\"path\":\(JSONWriter.quote(item.path)),\"headers\":{"
                text += headers.map { "\(JSONWriter.quote($0.0)):\(JSONWriter.quote($0.1))" }.joined(separator: ",")
                text += "},\"body\":\(JSONWriter.quote(item.bodyText))}\n"
            }
            exchange.respond(status: 200, headers: [("Content-Type", "application/x-ndjson")], body: Array(text.utf8))
        case "DELETE":
            clearRecentRequests()
            exchange.respond(status: 204, headers: [], body: [])
        default:
            respondError(exchange, status: 405, message: "Method \(request.method) is not allowed on \(request.path).", type: "invalid_request_error")
        }
    }

    private func handleCompletion(_ exchange: HTTPExchange, chat: Bool) {
        let request: ClientRequest
        do {
            request = try ClientRequest.parse(exchange.request.body, endpoint: chat ? .chatCompletions : .completions)
        } catch {
            exchange.respond(status: error.status, headers: [("Content-Type", "application/json")], body: error.body)
            return
        }
        var graded = Reply(
            chat: chat,
            model: request.model,
            stream: request.stream,
            includeUsage: request.clientWantsUsage,
            maxTokens: (request.integer("max_completion_tokens") ?? request.integer("max_tokens")).map { max(0, min($0, 1_000_000_000)) },
            promptTokens: max(1, request.promptText().utf8.count / 4),
            index: requestCounter.add(1, ordering: .relaxed).newValue,
            tokens: escapedTokens,
            whole: escapedReply
        )
        var rng = RandomSource(seed: options.seed ^ (graded.index &* 0x9E37_79B9_7F4A_7C15))
        let delay = max(0, options.latencyMs + options.jitterMs * (2 * rng.uniform() - 1)) / 1000
        let isError = options.errorRate > 0 && rng.uniform() < options.errorRate
        let failStream = options.failMidStreamRate > 0 && rng.uniform() < options.failMidStreamRate
        // Graded and judge models: their own content, drawn after the draws above (which stay as they were).
        var unjudgeable = false
        if !isError, let content = gradedContent(request, chat: chat, rng: &rng) {
            if let content {
                graded.setContent(content)
            } else {
                unjudgeable = true
            }
        }
        let work: @Sendable () -> Void
        let reply = graded
        if unjudgeable {
            work = { [self] in
                respondError(exchange, status: 400, message: MockJudge.unrecognizedMessage, type: "invalid_request_error")
            }
        } else if isError {
            let rateLimited = errorCounter.add(1, ordering: .relaxed).newValue % 2 == 0
            work = { [self] in
                if rateLimited {
                    respondError(exchange, status: 429, message: "Rate limit reached for requests (the mock upstream's error rate).", type: "requests", code: "rate_limit_exceeded")
                } else {
                    respondError(exchange, status: 500, message: "The server had an error while processing your request (the mock upstream's error rate).", type: "server_error")
                }
            }
        } else if reply.stream {
            work = { [self] in stream(exchange, reply, failStream: failStream) }
        } else {
            work = { [self] in respondWhole(exchange, reply) }
        }
        if delay <= 0 {
            work()
        } else {
            DispatchQueue.global().asyncAfter(deadline: .now() + delay, execute: work)
        }
    }

    private struct Reply: Sendable {
        var chat: Bool
        var model: String
        var stream: Bool
        var includeUsage: Bool
        var maxTokens: Int?
        var promptTokens: Int
        var index: UInt64
        /// The content's chunks, JSON-escaped, and all of them joined.
        var tokens: [String]
        var whole: String

        var id: String { (chat ? "chatcmpl-mock" : "cmpl-mock") + String(index) }

        /// `text` as the content: one chunk a word (each but the last with its following space).
        mutating func setContent(_ text: String) {
            let words = text.split(separator: " ", omittingEmptySubsequences: false)
            tokens = words.indices.map { i in
                let token = String(words[i]) + (i == words.count - 1 ? "" : " ")
                return String(JSONWriter.quote(token).dropFirst().dropLast())
            }
            whole = tokens.joined()
        }
    }

    /// The content of a reply of a `quality` model (its answer) or a judge model (its verdict): nil for other
    /// models, .some(nil) for a judge prompt without the markers.
    private func gradedContent(_ request: ClientRequest, chat: Bool, rng: inout RandomSource) -> String?? {
        let isJudge = options.judgeModels.contains(request.model)
        let quality = options.quality[request.model]
        guard isJudge || quality != nil else { return nil }
        let question = chat ? MockUpstream.lastUserMessage(request.body) ?? request.promptText() : request.promptText()
        if isJudge {
            guard let task = MockJudge.task(prompt: question, instructions: request.promptText()) else { return .some(nil) }
            return MockJudge.reply(task, positionBias: options.judgePositionBias, garbageRate: options.judgeGarbageRate, rng: &rng)
        }
        return MockQuality.answer(question: question, quality: quality!, noise: options.qualityNoise, rng: &rng)
    }

    /// The text of the last message with role "user" of a chat request body (string content, or its text parts
    /// joined by newlines); nil when there is none.
    static func lastUserMessage(_ body: [UInt8]) -> String? {
        guard let document = try? JSONValue.parse(body, trailingCommas: false),
              let messages = document.root.object?["messages"]?.array else { return nil }
        for message in messages.reversed() {
            guard let m = message.object, m["role"]?.string == "user", let content = m["content"] else { continue }
            if let text = content.string { return text }
            if let parts = content.array {
                return parts.compactMap { $0.object?["text"]?.string }.joined(separator: "\n")
            }
        }
        return nil
    }

    private func tokenCount(_ reply: Reply) -> Int {
        min(reply.tokens.count, reply.maxTokens ?? Int.max)
    }

    private func finishReason(_ reply: Reply) -> String {
        tokenCount(reply) < reply.tokens.count ? "length" : "stop"
    }

    private func usage(_ reply: Reply, completion: Int) -> String {
        "{\"prompt_tokens\":\(reply.promptTokens),\"completion_tokens\":\(completion),\"total_tokens\":\(reply.promptTokens + completion)}"
    }

    private func respondWhole(_ exchange: HTTPExchange, _ reply: Reply) {
        let n = tokenCount(reply)
        let content = n == reply.tokens.count ? reply.whole : reply.tokens[0..<n].joined()
        var text = "{\"id\":\"\(reply.id)\",\"object\":\"\(reply.chat ? "chat.completion" : "text_completion")\",\"created\":\(time(nil)),\"model\":\(JSONWriter.quote(reply.model)),\"choices\":[{"
        if reply.chat {
            text += "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"\(content)\"},\"logprobs\":null"
        } else {
            text += "\"text\":\"\(content)\",\"index\":0,\"logprobs\":null"
        }
        text += ",\"finish_reason\":\"\(finishReason(reply))\"}],\"usage\":\(usage(reply, completion: n))}"
        exchange.respond(status: 200, headers: jsonHeaders, body: Array(text.utf8))
    }

    private func stream(_ exchange: HTTPExchange, _ reply: Reply, failStream: Bool) {
        let n = tokenCount(reply)
        let head = "data: {\"id\":\"\(reply.id)\",\"object\":\"\(reply.chat ? "chat.completion.chunk" : "text_completion")\",\"created\":\(time(nil)),\"model\":\(JSONWriter.quote(reply.model)),\"choices\":["
        let tail = reply.includeUsage ? ",\"usage\":null}\n\n" : "}\n\n"
        let chat = reply.chat
        let tokens = reply.tokens
        @Sendable func contentEvent(_ i: Int) -> String {
            chat
                ? head + "{\"index\":0,\"delta\":{\"content\":\"\(tokens[i])\"},\"logprobs\":null,\"finish_reason\":null}]" + tail
                : head + "{\"text\":\"\(tokens[i])\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]" + tail
        }
        let finishEvent = chat
            ? head + "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"\(finishReason(reply))\"}]" + tail
            : head + "{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"\(finishReason(reply))\"}]" + tail
        let closing = (reply.includeUsage ? head + "],\"usage\":\(usage(reply, completion: n))}\n\n" : "") + "data: [DONE]\n\n"
        // A failing stream stops after a few content chunks.
        let failAfter = failStream ? min(n, max(1, min(3, n / 2))) : -1

        exchange.startStream(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
        var first = chat ? head + "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]" + tail : ""
        let interval = options.tokensPerSecond > 0 ? 1 / options.tokensPerSecond : 0
        if interval == 0 || n <= 1 || failAfter == 0 {
            // Everything at once.
            let sent = failAfter >= 0 ? failAfter : n
            for i in 0..<sent { first += contentEvent(i) }
            if failAfter < 0 { first += finishEvent + closing }
            exchange.write(Array(first.utf8))
            if failAfter >= 0 { abort(exchange) } else { exchange.finish() }
            return
        }
        first += contentEvent(0)
        guard exchange.write(Array(first.utf8)) else { return }
        if failAfter == 1 { abort(exchange); return }
        // The following chunks at their own deadlines from the start, so timer delays do not add up; each
        // schedules the next, never blocking a thread.
        let start = DispatchTime.now().uptimeNanoseconds
        let intervalNs = UInt64(interval * 1e9)
        @Sendable func send(_ i: Int) {
            if i == failAfter { abort(exchange); return }
            if i == n {
                exchange.write(Array((finishEvent + closing).utf8))
                exchange.finish()
                return
            }
            guard exchange.write(Array(contentEvent(i).utf8)) else { exchange.finish(failed: true); return }
            let next = i + 1
            // The finish chunk follows the last token right away.
            if next == n {
                send(next)
            } else {
                DispatchQueue.global().asyncAfter(deadline: DispatchTime(uptimeNanoseconds: start + UInt64(next) * intervalNs)) { send(next) }
            }
        }
        DispatchQueue.global().asyncAfter(deadline: DispatchTime(uptimeNanoseconds: start + intervalNs)) { send(1) }
    }

    /// Aborts a stream a moment after its last write. Failing it while libmicrohttpd is still sending (not
    /// suspended, waiting for data) leaves the socket open until the connection's next event, because the
    /// server runs with MHD_USE_TURBO, which skips the shutdown on close; failing it once the connection is
    /// suspended closes it at once.
    private func abort(_ exchange: HTTPExchange) {
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.02) { exchange.finish(failed: true) }
    }

    private func respondError(_ exchange: HTTPExchange, status: Int, message: String, type: String, code: String? = nil) {
        let error = OpenAIError(status: status, message: message, type: type, code: code)
        exchange.respond(status: error.status, headers: jsonHeaders, body: error.body)
    }
}

private let jsonHeaders = [("Content-Type", "application/json")]

/// Plain words for the replies.
let mockVocabulary = [
    "the", "order", "refund", "account", "shipping", "we", "can", "help", "you", "with", "your", "request",
    "please", "check", "status", "update", "delivery", "today", "tomorrow", "support", "team", "will", "reply",
    "soon", "thanks", "for", "waiting", "password", "reset", "link", "email", "sent", "invoice", "payment",
    "card", "address", "changed", "ticket", "number", "is", "ready", "and", "a", "new", "item", "in", "stock",
    "return", "label", "printed", "our", "policy", "allows", "thirty", "days", "to", "confirm", "details",
    "here", "are", "steps", "next", "option", "settings",
]
