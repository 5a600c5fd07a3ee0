import Foundation
import Testing
import BakeoffTestSupport
import BakeoffCore
import BakeoffHTTP
import BakeoffDevTools

/// MT-Bench's judge prompts (pair-v2 and single-v1), as `bakeoff eval` fills them.
enum MTBench {
    static let pairSystem = "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user question displayed below. ... After providing your explanation, output your final verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie."

    static func pair(_ question: String, _ a: String, _ b: String) -> String {
        "[User Question]\n\(question)\n\n[The Start of Assistant A's Answer]\n\(a)\n[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n\(b)\n[The End of Assistant B's Answer]"
    }

    static func single(_ question: String, _ answer: String, scale: Int = 10) -> String {
        "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. ... Begin your evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to \(scale) by strictly following this format: \"[[rating]]\", for example: \"Rating: [[5]]\".\n\n[Question]\n\(question)\n\n[The Start of Assistant's Answer]\n\(answer)\n[The End of Assistant's Answer]"
    }

    static func yesNo(_ question: String, _ answer: String) -> String {
        "Is the answer below correct? Reply with one sentence, then \"[[YES]]\" or \"[[NO]]\".\n\n[Question]\n\(question)\n\n[The Start of Assistant's Answer]\n\(answer)\n[The End of Assistant's Answer]"
    }
}

@Suite("Mock judge")
struct MockJudgeTests {
    static let question = "Can I change the delivery address for order #40417?"
    static let good = MockQuality.expectedAnswer(question: question)
    static let bad = MockQuality.wrongAnswer(question: question)

    static func judge(_ configure: (inout MockUpstream.Options) -> Void = { _ in }) throws -> MockCaller {
        try MockCaller { options in
            options.judgeModels = ["judge"]
            options.quality = ["judge": 0.5, "support-v1": 0.5]  // the judge role wins
            configure(&options)
        }
    }

    /// The verdict markers in a reply.
    static func verdicts(_ reply: String) -> [String] {
        ["[[A]]", "[[B]]", "[[C]]", "[[YES]]", "[[NO]]"].filter { reply.contains($0) }
    }

    @Test(arguments: [(true, false, "[[A]]"), (false, true, "[[B]]"), (true, true, "[[C]]"), (false, false, "[[C]]")])
    func pairwiseVerdicts(_ aGood: Bool, _ bGood: Bool, _ verdict: String) throws {
        let caller = try Self.judge()
        let a = aGood ? Self.good : Self.bad, b = bGood ? Self.good : Self.bad
        let reply = try #require(caller.chat(model: "judge", system: MTBench.pairSystem, user: MTBench.pair(Self.question, a, b)))
        #expect(Self.verdicts(reply) == [verdict], "\(reply)")
        #expect(reply.hasSuffix(" " + verdict), "an explanation, then the verdict: \(reply)")
        #expect(reply.dropLast(verdict.count + 1).hasSuffix("."))
        // Deterministic without bias or garbage.
        #expect(caller.chat(model: "judge", user: MTBench.pair(Self.question, a, b)) == reply)
        #expect(MockJudge.reply(.pairwise(question: Self.question, a: a, b: b)) == reply)
    }

    @Test func bothOrdersOfOnePair() throws {
        let caller = try Self.judge()
        let items = MockQuality.datasetItems(size: 50, seed: 4)
        for item in items {
            let wrong = MockQuality.wrongAnswer(question: item.question)
            let ab = try #require(caller.chat(model: "judge", user: MTBench.pair(item.question, item.reference, wrong)))
            let ba = try #require(caller.chat(model: "judge", user: MTBench.pair(item.question, wrong, item.reference)))
            #expect(Self.verdicts(ab) == ["[[A]]"] && Self.verdicts(ba) == ["[[B]]"], "\(ab) / \(ba)")
        }
    }

    @Test(arguments: [0.3, 1.0])
    func positionBias(_ bias: Double) throws {
        let caller = try Self.judge { $0.judgePositionBias = bias; $0.seed = 3 }
        let n = 400
        var first = 0
        for _ in 0..<n {
            // B is the good answer: every [[A]] is the bias.
            let reply = try #require(caller.chat(model: "judge", user: MTBench.pair(Self.question, Self.bad, Self.good)))
            let verdict = Self.verdicts(reply)
            #expect(verdict == ["[[A]]"] || verdict == ["[[B]]"], "\(reply)")
            if verdict == ["[[A]]"] { first += 1 }
        }
        #expect(withinBinomial(first, of: n, p: bias), "\(first) of \(n) [[A]] at bias \(bias)")
        // A pointwise judge has no position to prefer.
        let rating = try #require(caller.chat(model: "judge", user: MTBench.single(Self.question, Self.bad)))
        #expect(rating.hasSuffix("Rating: [[4]]"))
    }

    @Test func garbageRate() throws {
        let caller = try Self.judge { $0.judgeGarbageRate = 0.2; $0.judgePositionBias = 0.5; $0.seed = 5 }
        let n = 400
        var garbage = 0, first = 0, pairs = 0
        for i in 0..<n {
            let prompt = i % 2 == 0 ? MTBench.pair(Self.question, Self.bad, Self.good) : MTBench.single(Self.question, Self.good)
            let reply = try #require(caller.chat(model: "judge", user: prompt))
            if reply == MockJudge.garbageReply {
                garbage += 1
            } else if i % 2 == 0 {
                pairs += 1
                if Self.verdicts(reply) == ["[[A]]"] { first += 1 }
            } else {
                #expect(reply.hasSuffix("Rating: [[10]]"))
            }
        }
        #expect(!MockJudge.garbageReply.contains("[[") && !MockJudge.garbageReply.contains("Rating"))
        #expect(withinBinomial(garbage, of: n, p: 0.2), "\(garbage) of \(n) garbage")
        #expect(withinBinomial(first, of: pairs, p: 0.5), "position bias among the other pairwise calls: \(first) of \(pairs)")
    }

    @Test(arguments: [(10, 10, 4), (5, 5, 2), (7, 7, 2)])
    func pointwiseRatingsOnTheScaleAsked(_ scale: Int, _ top: Int, _ low: Int) throws {
        let caller = try Self.judge()
        let goodReply = try #require(caller.chat(model: "judge", user: MTBench.single(Self.question, Self.good, scale: scale)))
        let badReply = try #require(caller.chat(model: "judge", user: MTBench.single(Self.question, Self.bad, scale: scale)))
        #expect(goodReply == "The answer is correct and complete. Rating: [[\(top)]]")
        #expect(badReply == "The answer is not the expected one. Rating: [[\(low)]]")
        // The scale may be in the system prompt instead; without one it is 1 to 10.
        let prompt = "[Question]\n\(Self.question)\n\n[The Start of Assistant's Answer]\n\(Self.good)\n[The End of Assistant's Answer]"
        #expect(caller.chat(model: "judge", system: "Rate the answer on a scale from 1-\(scale): \"Rating: [[k]]\".", user: prompt)?.hasSuffix("[[\(top)]]") == true)
        #expect(caller.chat(model: "judge", user: prompt)?.hasSuffix("Rating: [[10]]") == true)
    }

    @Test func yesNo() throws {
        let caller = try Self.judge()
        #expect(caller.chat(model: "judge", user: MTBench.yesNo(Self.question, Self.good)) == "The answer is correct. [[YES]]")
        #expect(caller.chat(model: "judge", user: MTBench.yesNo(Self.question, Self.bad)) == "The answer is not correct. [[NO]]")
        // The format asked in the system prompt counts too.
        let plain = "[Question]\n\(Self.question)\n\n[The Start of Assistant's Answer]\n\(Self.bad)\n[The End of Assistant's Answer]"
        #expect(caller.chat(model: "judge", system: "Answer [[YES]] or [[NO]].", user: plain) == "The answer is not correct. [[NO]]")
    }

    @Test func aReferenceBlockAndWhiteSpaceAreIgnored() {
        let prompt = "[User Question]\n  \(Self.question)  \n\n[The Start of Reference Answer]\n\(Self.good)\n[The End of Reference Answer]\n\n[The Start of Assistant A's Answer]\n\(Self.bad)\n[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n  \(Self.good)\n\n[The End of Assistant B's Answer]"
        let task = MockJudge.task(prompt: prompt, instructions: "")
        #expect(task == .pairwise(question: Self.question, a: Self.bad, b: Self.good))
        #expect(MockJudge.task(prompt: "Which is better, A or B?", instructions: "") == nil)
        #expect(MockJudge.task(prompt: "[User Question]\nq\n\n[The Start of Assistant A's Answer]\na\n[The End of Assistant A's Answer]", instructions: "") == nil)
    }

    @Test func anUnreadablePromptIsA400() throws {
        let caller = try Self.judge { $0.judgeGarbageRate = 1 }
        let r = caller.post("/v1/chat/completions", MockCaller.chatBody(model: "judge", user: "Which answer is better, the first or the second?"))
        #expect(r.status == 400)
        let error = try #require(MockCaller.object(r.body)?["error"] as? [String: Any])
        #expect(error["type"] as? String == "invalid_request_error")
        #expect((error["message"] as? String)?.contains("[The Start of Assistant A's Answer]") == true)
        // Completions requests are judged by their prompt.
        let legacy = caller.post("/v1/completions", "{\"model\":\"judge\",\"prompt\":\(JSONWriter.quote(MTBench.pair(Self.question, Self.good, Self.bad)))}")
        #expect(legacy.status == 200 && MockCaller.content(legacy.body) == MockJudge.garbageReply)
    }

    @Test func streamedVerdicts() throws {
        let caller = try Self.judge { $0.tokensPerSecond = 5000 }
        let body = MockCaller.chatBody(model: "judge", user: MTBench.pair(Self.question, Self.good, Self.bad), extra: #","stream":true"#)
        let r = caller.post("/v1/chat/completions", body)
        #expect(r.outcome == .completed(status: 200))
        var text = ""
        for event in r.body.components(separatedBy: "\n\n") where event.hasPrefix("data: {") {
            let json = try #require(MockCaller.object(String(event.dropFirst(6))))
            text += ((json["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String ?? ""
        }
        #expect(text == MockJudge.reply(.pairwise(question: Self.question, a: Self.good, b: Self.bad)))
    }
}
