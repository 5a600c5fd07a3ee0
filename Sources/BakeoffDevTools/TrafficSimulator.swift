import BakeoffCore
import BakeoffStatistics
import Dispatch
import Foundation
import Synchronization
import BakeoffHTTP
import BakeoffGateway
import BakeoffSimulation

/// Simulated users who chat with a gateway in conversations and leave feedback whose odds depend on the
/// variant that answered them: live traffic with a known truth, for the demo and end-to-end checks.
public struct TrafficSimulator: Sendable {
    /// How users served by one variant behave.
    public struct Behaviour: Sendable, Equatable {
        public var completion: Double
        public var escalation: Double
        public var csat: Double
        public var csatResponseRate = 0.6
        public var thumbsRate = 0.3
        public var likeRate = 0.7
        public var turns: Double

        public init(completion: Double, escalation: Double, csat: Double, turns: Double) {
            self.completion = completion
            self.escalation = escalation
            self.csat = csat
            self.turns = turns
        }

        /// The article's case study: control 71.3% completion, CSAT 3.8, 3.2 turns; treatment 78.9%, 4.1, 2.9.
        public static let seedCaseStudy: [String: Behaviour] = [
            "control": Behaviour(completion: 0.713, escalation: 0.287, csat: 3.8, turns: 3.2),
            "treatment": Behaviour(completion: 0.789, escalation: 0.211, csat: 4.1, turns: 2.9),
        ]
    }

    public struct Options: Sendable {
        /// The gateway's base URL, e.g. http://127.0.0.1:8080 (without /v1).
        public var gateway: String
        public var model = "support-bot"
        public var users = 400
        public var durationSeconds = 30.0
        /// Users chatting at the same time.
        public var concurrency = 24
        public var seed: UInt64 = 1
        /// Share of requests sent with "stream": true.
        public var streamShare = 0.5
        /// Behaviour per variant; a variant not listed behaves like control.
        public var behaviours = Behaviour.seedCaseStudy
        /// How alike one user's conversations are (Beta concentration of the user's own completion rate).
        public var userConcentration = 6.0
        public init(gateway: String) { self.gateway = gateway }
    }

    public struct Summary: Sendable {
        public var requests = 0
        public var failedRequests = 0
        public var conversations = 0
        public var feedback = 0
        public var failedFeedback = 0
        public var requestsByVariant: [String: Int] = [:]
        /// The first few failures, for the message when something is wrong.
        public var failures: [String] = []
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    /// Runs for the configured duration; `progress` (on the calling thread) gets the fraction of time elapsed
    /// and the requests so far.
    public func run(progress: ((Double, Int) -> Void)? = nil) -> Summary {
        let client = UpstreamClient()
        defer { client.shutdown() }
        final class Shared: Sendable {
            let summary = Mutex(Summary())
            let nextVisit = Atomic<Int>(0)
        }
        let shared = Shared()
        let start = Date()
        let deadline = start.addingTimeInterval(options.durationSeconds)
        let group = DispatchGroup()
        let options = self.options
        for worker in 0..<max(1, options.concurrency) {
            let thread = Thread {
                var rng = RandomSource(seed: options.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(worker))
                while Date() < deadline {
                    let visit = shared.nextVisit.add(1, ordering: .relaxed).newValue - 1
                    Self.converse(visit: visit, options: options, client: client, rng: &rng, summary: shared.summary)
                }
                group.leave()
            }
            group.enter()
            thread.start()
        }
        if let progress {
            while group.wait(timeout: .now() + 0.25) == .timedOut {
                progress(min(1, Date().timeIntervalSince(start) / options.durationSeconds), shared.summary.withLock { $0.requests })
            }
            progress(1, shared.summary.withLock { $0.requests })
        } else {
            group.wait()
        }
        return shared.summary.withLock { $0 }
    }

    /// One conversation of one user: several turns, then feedback.
    static func converse(visit: Int, options: Options, client: UpstreamClient, rng: inout RandomSource, summary: borrowing Mutex<Summary>) {
        let userIndex = visit % max(1, options.users)
        let user = "user-\(userIndex)"
        let conversation = "conv-\(userIndex)-\(visit / max(1, options.users))-\(options.seed)"
        // A user's own completion propensity: the same seed per user, so their conversations are alike.
        var userRNG = RandomSource(seed: options.seed ^ (UInt64(userIndex) &* 0xD6E8_FEB8_6659_FD93))
        let propensity = userRNG.uniform()
        var variant: String?
        var behaviour: Behaviour?
        var lastRequestID: String?
        var turns = 1
        var turn = 0
        while turn < turns {
            let stream = rng.bernoulli(options.streamShare)
            let body = "{\"model\":\(JSONWriter.quote(options.model)),\"messages\":[{\"role\":\"user\",\"content\":\"Turn \(turn + 1): where is my order \(visit)?\"}],\"user\":\(JSONWriter.quote(user))\(stream ? ",\"stream\":true" : "")}"
            let answer = post(client: client, url: options.gateway + "/v1/chat/completions", body: body,
                              headers: ["Content-Type: application/json", "X-Bakeoff-Conversation: \(conversation)"])
            guard answer.status == 200, let v = answer.header("x-bakeoff-variant") else {
                summary.withLock {
                    $0.requests += 1
                    $0.failedRequests += 1
                    if $0.failures.count < 5 { $0.failures.append("chat: HTTP \(answer.status) \(answer.failure ?? String(decoding: answer.body.prefix(200), as: UTF8.self))") }
                }
                return
            }
            if variant == nil {
                variant = v
                let b = options.behaviours[v] ?? options.behaviours["control"] ?? Behaviour.seedCaseStudy["control"]!
                behaviour = b
                turns = 1 + rng.poisson(max(0, b.turns - 1))
            }
            lastRequestID = answer.header("x-bakeoff-request-id")
            summary.withLock { $0.requests += 1; $0.requestsByVariant[v, default: 0] += 1 }
            turn += 1
        }
        guard let b = behaviour else { return }  // set with the variant by the first answer
        // The user's completion rate: Beta around the variant's rate, drawn by quantile from the user's
        // propensity so a user stays alike across conversations.
        let userRate = betaQuantileApprox(mean: b.completion, concentration: options.userConcentration, u: propensity)
        let completed = rng.bernoulli(userRate)
        let escalateGivenFailure = b.completion < 1 ? min(1, b.escalation / (1 - b.completion)) : 0
        let escalated = !completed && rng.bernoulli(escalateGivenFailure)
        var feedback: [(String, String, String)] = [
            ("conversation_id", conversation, "{\"name\":\"task_completed\",\"value\":\(completed)}"),
            ("conversation_id", conversation, "{\"name\":\"escalated\",\"value\":\(escalated)}"),
        ]
        if rng.bernoulli(b.csatResponseRate) {
            let score = min(5, max(1, (b.csat + 0.9 * rng.normal() + (completed ? 0.3 : -0.6)).rounded()))
            feedback.append(("conversation_id", conversation, "{\"name\":\"csat\",\"value\":\(Int(score))}"))
        }
        if let lastRequestID, rng.bernoulli(b.thumbsRate) {
            feedback.append(("request_id", lastRequestID, "{\"name\":\"thumbs_up\",\"value\":\(rng.bernoulli(b.likeRate))}"))
        }
        for (key, id, rest) in feedback {
            // Feedback names its user: the gateway takes feedback only from the user it is about.
            let body = "{\"\(key)\":\(JSONWriter.quote(id)),\"user\":\(JSONWriter.quote(user)),\(rest.dropFirst())"
            let answer = post(client: client, url: options.gateway + "/v1/feedback", body: body, headers: ["Content-Type: application/json"])
            summary.withLock {
                if answer.status == 200 { $0.feedback += 1 } else {
                    $0.failedFeedback += 1
                    if $0.failures.count < 5 { $0.failures.append("feedback: HTTP \(answer.status) \(answer.failure ?? String(decoding: answer.body.prefix(200), as: UTF8.self))") }
                }
            }
        }
        summary.withLock { $0.conversations += 1 }
    }

    /// A user's own rate: logit-normal around the variant's rate with the variance of a Beta of that
    /// concentration, taken at the user's fixed quantile `u` so a user stays alike across conversations.
    static func betaQuantileApprox(mean: Double, concentration: Double, u: Double) -> Double {
        let m = min(max(mean, 1e-6), 1 - 1e-6)
        let variance = m * (1 - m) / (concentration + 1)
        let sdLogit = sqrt(variance) / (m * (1 - m))
        let z = Normal.quantile(min(max(u, 1e-9), 1 - 1e-9))
        let logit = log(m / (1 - m)) + sdLogit * z
        let p = 1 / (1 + exp(-logit))
        return p
    }

    /// A blocking POST through the shared curl client.
    static func post(client: UpstreamClient, url: String, body: String, headers: [String]) -> HTTPAnswer {
        client.send(UpstreamRequest(url: url, headers: headers, body: Array(body.utf8), timeoutMs: 60_000, connectTimeoutMs: 5_000))
    }
}
