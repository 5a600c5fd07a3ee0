import Foundation
import Testing
import BakeoffTestSupport
import BakeoffCore
import BakeoffHTTP
import BakeoffDevTools

/// Calls a mock upstream over HTTP with one client, for the many-request tests.
final class MockCaller {
    let mock: MockUpstream
    let client = UpstreamClient()

    init(_ configure: (inout MockUpstream.Options) -> Void) throws {
        var options = MockUpstream.Options()
        options.latencyMs = 0
        options.jitterMs = 0
        options.tokensPerSecond = 0
        configure(&options)
        mock = MockUpstream(options: options)
        try mock.start()
    }

    deinit {
        client.shutdown()
        mock.stop()
    }

    func post(_ path: String, _ body: String) -> (status: Int, body: String, outcome: UpstreamOutcome?) {
        let recorder = CallRecorder()
        client.start(UpstreamRequest(url: "http://127.0.0.1:\(mock.port)\(path)", headers: ["Content-Type: application/json"],
                                     body: Array(body.utf8), timeoutMs: 10_000, connectTimeoutMs: 2000), handlers: recorder.handlers)
        let r = recorder.wait()
        return (r.status, r.body, r.outcome)
    }

    /// A chat request's body: an optional system message, then the user message.
    static func chatBody(model: String, system: String? = nil, user: String, extra: String = "") -> String {
        var messages: [String] = []
        if let system { messages.append("{\"role\":\"system\",\"content\":\(JSONWriter.quote(system))}") }
        messages.append("{\"role\":\"user\",\"content\":\(JSONWriter.quote(user))}")
        return "{\"model\":\(JSONWriter.quote(model)),\"messages\":[\(messages.joined(separator: ","))]\(extra)}"
    }

    /// The content of a non-streamed chat reply (nil when the call did not answer 200 with one).
    func chat(model: String, system: String? = nil, user: String) -> String? {
        let r = post("/v1/chat/completions", Self.chatBody(model: model, system: system, user: user))
        guard r.status == 200 else { return nil }
        return Self.content(r.body)
    }

    static func object(_ text: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }

    static func content(_ body: String) -> String? {
        guard let choice = (object(body)?["choices"] as? [[String: Any]])?.first else { return nil }
        return (choice["message"] as? [String: Any])?["content"] as? String ?? choice["text"] as? String
    }
}

/// Whether `count` successes of `n` are within 4.5 standard deviations of Binomial(n, p).
func withinBinomial(_ count: Int, of n: Int, p: Double) -> Bool {
    let sd = (Double(n) * p * (1 - p)).squareRoot()
    return abs(Double(count) - Double(n) * p) <= 4.5 * max(sd, 0.5)
}

@Suite("Mock quality: expected answers")
struct MockQualityTests {
    static let questions = MockQuality.datasetItems(size: 400, seed: 11).map(\.question)

    @Test func anExpectedAnswerIsAStableShortPhrase() {
        for question in Self.questions {
            let answer = MockQuality.expectedAnswer(question: question)
            let words = answer.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            #expect((3...6).contains(words.count), "\(answer)")
            #expect(Set(words).count == words.count, "distinct words: \(answer)")
            #expect(words.allSatisfy { MockQuality.answerVocabulary.contains($0) })
            #expect(MockQuality.expectedAnswer(question: question) == answer)
            #expect(MockQuality.expectedAnswer(question: "  \(question)\n") == answer, "trimmed before hashing")
        }
        // Pinned: the same on every run and platform (MD5 and xoshiro256**, no platform hashing).
        #expect(MockQuality.expectedAnswer(question: "Where is my order #12345?") == MockQualityTests.pinnedAnswer)
        #expect(MockQuality.difficulty(question: "Where is my order #12345?") == MockQualityTests.pinnedDifficulty)
        #expect(Set(Self.questions.map { MockQuality.expectedAnswer(question: $0) }).count > 390, "answers vary")
    }

    static let pinnedAnswer = "option policy new password number ready"
    static let pinnedDifficulty = 0.563588735327271

    @Test func aWrongAnswerDiffersButSharesAWordOrTwo() {
        for question in Self.questions {
            let right = MockQuality.expectedAnswer(question: question).split(separator: " ")
            let wrong = MockQuality.wrongAnswer(question: question).split(separator: " ")
            #expect(wrong != right)
            #expect(wrong.count == right.count)
            #expect(Set(wrong).count == wrong.count)
            let shared = Set(wrong).intersection(right).count
            #expect(shared == (right.count <= 4 ? 1 : 2), "\(right) / \(wrong)")
            #expect(MockQuality.wrongAnswer(question: question) == wrong.joined(separator: " "), "deterministic")
            #expect(!MockQuality.isGood(answer: wrong.joined(separator: " "), question: question))
            #expect(MockQuality.isGood(answer: " " + right.joined(separator: " ") + "\n", question: question))
        }
    }

    @Test(arguments: [0.1, 0.6, 0.75, 0.95])
    func difficultiesAreUniform(_ quality: Double) {
        let questions = MockQuality.datasetItems(size: 20_000, seed: 5).map(\.question)
        let below = questions.filter { MockQuality.difficulty(question: $0) < quality }.count
        #expect(withinBinomial(below, of: questions.count, p: quality), "\(below) of \(questions.count) below \(quality)")
        #expect(questions.allSatisfy { (0..<1).contains(MockQuality.difficulty(question: $0)) })
    }
}

@Suite("Mock quality: datasets")
struct MockDatasetTests {
    @Test func aSeedGivesOneDataset() throws {
        let a = MockQuality.dataset(size: 300, seed: 7)
        #expect(a == MockQuality.dataset(size: 300, seed: 7))
        #expect(a != MockQuality.dataset(size: 300, seed: 8))
        #expect(MockQuality.dataset(size: 0, seed: 7).isEmpty)
        #expect(Array(MockQuality.dataset(size: 500, seed: 7).prefix(300)) == a, "a longer dataset starts with the shorter")
        let items = MockQuality.datasetItems(size: 300, seed: 7)
        #expect(items.map(\.id) == (1...300).map { "q-" + String(repeating: "0", count: 4 - String($0).count) + String($0) })
        #expect(Set(items.map(\.question)).count == 300, "unique questions")
        #expect(Set(items.map(\.topic)) == Set(MockQuality.builtInTopics))
        for (item, line) in zip(items, a) {
            #expect(item.reference == MockQuality.expectedAnswer(question: item.question))
            let json = try #require(MockCaller.object(line))
            #expect(Set(json.keys) == ["id", "messages", "reference", "metadata"])
            #expect(json["id"] as? String == item.id)
            let messages = try #require(json["messages"] as? [[String: String]])
            #expect(messages == [["role": "user", "content": item.question]])
            #expect(json["reference"] as? String == item.reference)
            #expect(json["metadata"] as? [String: String] == ["topic": item.topic])
        }
    }

    @Test func otherTopicsGetGenericQuestions() {
        let items = MockQuality.datasetItems(size: 200, seed: 2, topics: ["warranty", "billing", "gift {topic} cards"])
        #expect(Set(items.map(\.topic)) == ["warranty", "billing", "gift {topic} cards"])
        #expect(Set(items.map(\.question)).count == 200)
        for item in items where item.topic != "billing" {
            #expect(item.question.contains(item.topic), "\(item.question)")
        }
        // A large one stays unique.
        let big = MockQuality.datasetItems(size: 20_000, seed: 3, topics: ["x"])
        #expect(Set(big.map(\.question)).count == 20_000)
        #expect(big.last?.id == "q-20000")
    }
}

@Suite("Mock quality: graded models")
struct MockGradedModelTests {
    static let items = MockQuality.datasetItems(size: 400, seed: 21)

    @Test(arguments: [(0.6, 0.0), (0.75, 0.0), (0.3, 0.5), (0.8, 1.0)])
    func theRateOfCorrectAnswersIsTheQuality(_ quality: Double, _ noise: Double) throws {
        let caller = try MockCaller { $0.quality = ["support-v1": quality]; $0.qualityNoise = noise }
        var correct = 0
        for item in Self.items {
            let answer = try #require(caller.chat(model: "support-v1", system: "You are support bot v1.", user: item.question))
            if answer == item.reference {
                correct += 1
            } else {
                #expect(answer == MockQuality.wrongAnswer(question: item.question))
            }
        }
        #expect(withinBinomial(correct, of: Self.items.count, p: quality), "\(correct) of \(Self.items.count) at quality \(quality)")
    }

    /// Phi, the correlation of two sets of 0/1 outcomes.
    static func phi(_ a: [Bool], _ b: [Bool]) -> Double {
        let n = Double(a.count)
        let pa = Double(a.filter { $0 }.count) / n, pb = Double(b.filter { $0 }.count) / n
        let pab = Double(zip(a, b).filter { $0 && $1 }.count) / n
        return (pab - pa * pb) / (pa * (1 - pa) * pb * (1 - pb)).squareRoot()
    }

    @Test func variantsAreCorrelatedPerQuestion() throws {
        let caller = try MockCaller { $0.quality = ["support-v1": 0.6, "support-v2": 0.75] }
        var v1: [Bool] = [], v2: [Bool] = []
        for item in Self.items {
            // Different system prompts, as variants have: only the last user message counts.
            v1.append(caller.chat(model: "support-v1", system: "You are v1.", user: item.question) == item.reference)
            v2.append(caller.chat(model: "support-v2", system: "Be terse. You are v2.", user: item.question) == item.reference)
        }
        #expect(zip(v1, v2).allSatisfy { !$0 || $1 }, "without noise the better model gets right what the worse one does")
        #expect(Self.phi(v1, v2) > 0.5)

        // With noise, still positively correlated (expected phi 0.18 at noise 0.5), and repetitions differ.
        let noisy = try MockCaller { $0.quality = ["support-v1": 0.6, "support-v2": 0.75]; $0.qualityNoise = 0.5; $0.seed = 9 }
        var n1: [Bool] = [], n2: [Bool] = []
        for item in Self.items {
            n1.append(noisy.chat(model: "support-v1", user: item.question) == item.reference)
            n2.append(noisy.chat(model: "support-v2", user: item.question) == item.reference)
        }
        #expect(Self.phi(n1, n2) > 0.02)
        #expect(zip(n1, n2).contains { $0 && !$1 }, "noise breaks the strict order")
        let question = Self.items[0].question
        let answers = Set((0..<40).map { _ in noisy.chat(model: "support-v1", user: question) })
        #expect(answers.count == 2, "the same question, answered right and wrong")
    }

    @Test func streamedCompletionsAndUsageOfGradedReplies() throws {
        let caller = try MockCaller { $0.quality = ["good": 1, "bad": 0]; $0.tokensPerSecond = 5000; $0.replyPrefix = "[x] " }
        let question = "Where is my order #12345?"
        let right = MockQuality.expectedAnswer(question: question), wrong = MockQuality.wrongAnswer(question: question)
        let words = right.split(separator: " ").count
        for (model, expected) in [("good", right), ("bad", wrong)] {
            // Whole, with usage counting words.
            let whole = caller.post("/v1/chat/completions", MockCaller.chatBody(model: model, user: question))
            #expect(MockCaller.content(whole.body) == expected)
            let usage = try #require(MockCaller.object(whole.body)?["usage"] as? [String: Int])
            #expect(usage["completion_tokens"] == expected.split(separator: " ").count)
            // Streamed: a word a chunk, the same text.
            let streamed = caller.post("/v1/chat/completions", MockCaller.chatBody(model: model, user: question, extra: #","stream":true,"stream_options":{"include_usage":true}"#))
            #expect(streamed.outcome == .completed(status: 200))
            var text = "", chunks = 0, completionTokens: Int?
            for event in streamed.body.components(separatedBy: "\n\n") where event.hasPrefix("data: {") {
                let json = try #require(MockCaller.object(String(event.dropFirst(6))))
                if let u = json["usage"] as? [String: Int] { completionTokens = u["completion_tokens"] }
                if let delta = ((json["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String, !delta.isEmpty {
                    text += delta
                    chunks += 1
                }
            }
            #expect(text == expected)
            #expect(chunks == expected.split(separator: " ").count)
            #expect(completionTokens == chunks)
        }
        // Legacy completions: the prompt is the question.
        let legacy = caller.post("/v1/completions", #"{"model":"good","prompt":"Where is my order #12345?"}"#)
        #expect(MockCaller.content(legacy.body) == right)
        // max_tokens cuts the answer like any other.
        let cut = caller.post("/v1/chat/completions", MockCaller.chatBody(model: "good", user: question, extra: #","max_tokens":2"#))
        let choice = try #require((MockCaller.object(cut.body)?["choices"] as? [[String: Any]])?.first)
        #expect(choice["finish_reason"] as? String == "length")
        #expect(MockCaller.content(cut.body) == right.split(separator: " ").prefix(2).joined(separator: " ") + " ")
        #expect(words >= 3)
        // The last user message is the question, whatever comes before it; other models keep their replies.
        let multi = caller.post("/v1/chat/completions", #"{"model":"good","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":[{"type":"text","text":"Where is my order #12345?"}]}]}"#)
        #expect(MockCaller.content(multi.body) == right)
        #expect(caller.chat(model: "other", user: question)?.hasPrefix("[x] ") == true)
    }
}
