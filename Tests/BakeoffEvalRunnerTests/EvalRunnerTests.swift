import BakeoffCore
import BakeoffEval
import BakeoffEvalRunner
import BakeoffGateway
import BakeoffHTTP
import BakeoffStore
import BakeoffTestSupport
import Foundation
import Synchronization
import Testing

/// A config with two variants on two upstreams and a judge on a third.
func evalConfig(_ eval: String = #"{"judge": {"upstream": {"base_url": "http://judge.test/v1", "model": "gpt-judge"}}, "scorers": [{"type": "judge_pairwise", "name": "preference"}, {"type": "exact_match"}], "retries": 2}"#) throws -> GatewayConfig {
    let text = """
        {"experiments": [{"name": "support", "model": "support-bot",
          "variants": [
            {"name": "control", "weight": 0.5, "upstream": {"base_url": "http://v1.test/v1", "model": "support-v1"}},
            {"name": "treatment", "weight": 0.5, "upstream": {"base_url": "http://v2.test/v1", "model": "support-v2", "headers": {"X-Team": "bots"}},
             "system_prompt": "Answer in one sentence.", "parameters": {"temperature": 0.3}}],
          "eval": \(eval)}]}
        """
    return try GatewayConfig.parse(Data(text.utf8), source: "bakeoff.json", environment: [:])
}

func chatAnswer(_ text: String) -> String {
    "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\(JSONWriter.quote(text))},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}"
}

/// Answers like a model and a judge: the treatment's answer is the reference, the control's is not; the
/// judge prefers an answer "yes" wherever it is shown.
func scriptedUpstream(judgeVerdict: @escaping @Sendable (String) -> String = { prompt in
    // The request body: the prompt's line breaks are JSON escapes there.
    let a = prompt.range(of: #"[The Start of Assistant A's Answer]\nyes\n"#) != nil
    let b = prompt.range(of: #"[The Start of Assistant B's Answer]\nyes\n"#) != nil
    return a == b ? "Equal. [[C]]" : a ? "A is right. [[A]]" : "B is right. [[B]]"
}) -> FakeUpstream {
    FakeUpstream(immediate: true) { request, _ in
        let body = String(decoding: request.body, as: UTF8.self)
        if request.url.hasPrefix("http://judge.test") {
            return .json(chatAnswer(judgeVerdict(body)))
        }
        return .json(chatAnswer(request.url.hasPrefix("http://v2.test") ? "yes" : "no"))
    }
}

func items(_ n: Int) -> [EvalItem] {
    (0..<n).map { EvalItem(id: "r\($0)", messagesJSON: "[{\"role\":\"system\",\"content\":\"Be kind.\"},{\"role\":\"user\",\"content\":\"Question \($0)?\"}]", reference: "yes") }
}

@Suite("Eval runner: requests as the gateway sends them, judging in both orders, retries, the cache")
struct EvalRunnerTests {
    @Test func sendsEachRequestToEachVariantExactlyAsTheGatewayWouldAndJudgesBothOrders() throws {
        let config = try evalConfig()
        let experiment = config.experiments[0]
        let upstream = scriptedUpstream()
        let runner = EvalRunner(experiment: experiment, eval: experiment.eval!, items: items(3), transport: upstream, cache: nil)
        let (o, stats) = runner.run()
        #expect(o.answers.count == 6)
        #expect(o.answers.allSatisfy { $0.ok })
        #expect(o.judgments.count == 6)  // 3 requests x 2 orders
        #expect(stats.calls == 12)
        let calls = upstream.calls.map(\.request)
        let treatment = try #require(calls.first { $0.url == "http://v2.test/v1/chat/completions" })
        let body = String(decoding: treatment.body, as: UTF8.self)
        // The variant's model, system prompt and parameters, as the gateway rewrites a client's request.
        #expect(body.contains("\"model\":\"support-v2\""))
        #expect(body.contains("Answer in one sentence."))
        #expect(!body.contains("Be kind."))
        #expect(body.contains("\"temperature\":0.3"))
        #expect(treatment.headers.contains("X-Team: bots"))
        // The same bytes the gateway's own path makes.
        let client = try ClientRequest.parse(Array("{\"model\":\"support-bot\",\"messages\":\(items(3)[0].messagesJSON!),\"stream\":true}".utf8), endpoint: .chatCompletions)
        let gatewayRequest = ProxyDecision.upstreamRequest(client, variant: experiment.variants[1], endpoint: .chatCompletions)
        #expect(calls.contains { $0.body == gatewayRequest.body && $0.url == gatewayRequest.url })
        // The judge: temperature 0 by default, both orders of each pair.
        let judgeCalls = calls.filter { $0.url.hasPrefix("http://judge.test") }
        #expect(judgeCalls.count == 6)
        #expect(judgeCalls.allSatisfy { String(decoding: $0.body, as: UTF8.self).contains("\"temperature\":0") })
        let orders = Set(o.judgments.map { "\($0.item)-\($0.first)-\($0.second!)" })
        #expect(orders.count == 6)
        #expect(o.judgments.allSatisfy { $0.verdict != nil })
        // The judge always prefers the treatment's "yes", in either position.
        let report = EvalAnalysis.run(o, .init(experiment: "support", dataset: "d", plan: experiment.eval!.plan))
        #expect(report.winRates.first?.winRate == 1)
        #expect(report.winRates.first?.flipRate == 0)
        #expect(report.winRates.first?.firstPositionRate == 0.5)
    }

    @Test func retriesRateLimitsAndServerErrorsButNotBadRequests() throws {
        let config = try evalConfig(#"{"scorers": [{"type": "exact_match"}], "retries": 3}"#)
        let experiment = config.experiments[0]
        let controlCalls = Mutex(0)
        let upstream = FakeUpstream(immediate: true) { request, _ in
            if request.url.hasPrefix("http://v1.test") {
                // The control: refused twice (429 with retry-after 0, then 503), then answers.
                let attempt = controlCalls.withLock { n in defer { n += 1 }; return n }
                if attempt == 0 { return .json("{\"error\":{\"message\":\"slow down\"}}", status: 429, headers: [("retry-after", "0")]) }
                if attempt == 1 { return .json("{\"error\":{\"message\":\"busy\"}}", status: 503, headers: [("retry-after", "0")]) }
                return .json(chatAnswer("yes"))
            }
            // The treatment: a bad request, which would fail again.
            return .json("{\"error\":{\"message\":\"unknown parameter\"}}", status: 400)
        }
        let runner = EvalRunner(experiment: experiment, eval: experiment.eval!, items: items(1), transport: upstream, cache: nil)
        let (o, stats) = runner.run()
        let control = try #require(o.answers.first { $0.variant == 0 })
        let treatment = try #require(o.answers.first { $0.variant == 1 })
        #expect(control.ok)
        #expect(control.attempts == 3)
        #expect(!treatment.ok)
        #expect(treatment.attempts == 1)
        #expect(treatment.error?.contains("HTTP 400") == true)
        #expect(treatment.error?.contains("unknown parameter") == true)
        #expect(stats.retries == 2)
        #expect(stats.failedAnswers == 1)
    }

    @Test func anInterruptedRunResumesFromTheCacheWithoutCallingAgain() throws {
        let config = try evalConfig()
        let experiment = config.experiments[0]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("eval-cache-\(UUID().uuidString).db").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        do {
            let cache = try EvalCache(path: path)
            let runner = EvalRunner(experiment: experiment, eval: experiment.eval!, items: items(4), transport: scriptedUpstream(), cache: cache)
            _ = runner.run()
            try cache.close()
        }
        // Again: nothing is called.
        let cache = try EvalCache(path: path)
        #expect(cache.entriesAtOpen == 16)
        let upstream = scriptedUpstream()
        let (o, stats) = EvalRunner(experiment: experiment, eval: experiment.eval!, items: items(4), transport: upstream, cache: cache).run()
        #expect(upstream.calls.isEmpty)
        #expect(stats.calls == 0)
        #expect(stats.cachedAnswers == 8 && stats.cachedJudgments == 8)
        #expect(o.answers.allSatisfy { $0.ok && $0.cached })
        // A new judge template re-scores the same answers: only judge calls are made.
        var eval = experiment.eval!
        guard case .judge(var judge) = eval.plan.scorers[0] else { Issue.record("not a judge"); return }
        judge.template.system += " Be strict."
        eval.plan.scorers[0] = .judge(judge)
        let upstream2 = scriptedUpstream()
        let (_, stats2) = EvalRunner(experiment: experiment, eval: eval, items: items(4), transport: upstream2, cache: cache).run()
        #expect(stats2.cachedAnswers == 8)
        #expect(stats2.calls == 8)
        #expect(upstream2.calls.allSatisfy { $0.request.url.hasPrefix("http://judge.test") })
        // A changed variant (another system prompt) is a different variant: its answers are made again.
        var changed = experiment
        changed.variants[1].systemPrompt = "Answer in two sentences."
        let upstream3 = scriptedUpstream()
        let (_, stats3) = EvalRunner(experiment: changed, eval: experiment.eval!, items: items(4), transport: upstream3, cache: cache).run()
        #expect(stats3.cachedAnswers == 4)
        #expect(upstream3.calls.filter { $0.request.url.hasPrefix("http://v2.test") }.count == 4)
        #expect(upstream3.calls.filter { $0.request.url.hasPrefix("http://v1.test") }.isEmpty)
    }

    @Test func aJudgeAnswerWithoutAVerdictIsCountedNotGuessed() throws {
        let config = try evalConfig()
        let experiment = config.experiments[0]
        let upstream = scriptedUpstream(judgeVerdict: { _ in "I cannot compare these." })
        let (o, stats) = EvalRunner(experiment: experiment, eval: experiment.eval!, items: items(2), transport: upstream, cache: nil).run()
        #expect(stats.unparseableJudgments == 4)
        #expect(o.judgments.allSatisfy { $0.verdict == nil && $0.raw == "I cannot compare these." })
        let report = EvalAnalysis.run(o, .init(experiment: "support", dataset: "d", plan: experiment.eval!.plan))
        #expect(report.winRates.isEmpty)
        #expect(report.decision.action == .needsMoreRequests)
        #expect(report.judgeProblems.first?.unparseable == 4)
    }

    @Test func failedAnswersAreNotJudgedAndTheRunStillEnds() throws {
        let config = try evalConfig()
        let experiment = config.experiments[0]
        let upstream = FakeUpstream(immediate: true) { request, _ in
            request.url.hasPrefix("http://v2.test") ? .failure(.unreachable) : .json(chatAnswer("no"))
        }
        let (o, stats) = EvalRunner(experiment: experiment, eval: experiment.eval!, items: items(2), transport: upstream, cache: nil).run()
        #expect(o.judgments.isEmpty)
        #expect(stats.failedAnswers == 2)
        // Unreachable is retried (2 retries in this config): 3 attempts each.
        #expect(o.answers.filter { $0.variant == 1 }.allSatisfy { $0.attempts == 3 && $0.status == "upstream_error" })
    }
}

@Suite("Eval config in the gateway config")
struct EvalConfigTests {
    @Test func pricesNameVariantsOfTheExperimentAndJudgeScorersNeedAJudge() throws {
        do {
            _ = try evalConfig(#"{"scorers": [{"type": "exact_match"}], "prices": {"contrl": {"input_per_million": 1, "output_per_million": 2}}}"#)
            Issue.record("a price for no variant was accepted")
        } catch let error as ConfigError {
            #expect(error.path == "experiments[0].eval.prices.contrl")
            #expect(error.message.contains("not a variant"))
        }
        do {
            _ = try evalConfig(#"{"scorers": [{"type": "judge_pairwise"}]}"#)
            Issue.record("a judge scorer without a judge was accepted")
        } catch let error as ConfigError {
            #expect(error.path == "experiments[0].eval.judge")
        }
        let config = try evalConfig(#"{"scorers": [{"type": "exact_match"}], "prices": {"control": {"input_per_million": 1, "output_per_million": 2}}}"#)
        #expect(config.experiments[0].eval?.plan.prices["control"]?.outputPerMillion == 2)
    }
}

@Suite("Eval runner: answers too large to keep")
struct EvalRunnerLimitTests {
    @Test(arguments: [true, false])
    func anAnswerOverTheLimitIsAFailureNotRetriedStreamedOrNot(streamed: Bool) throws {
        let config = try evalConfig(#"{"scorers": [{"type": "exact_match"}], "retries": 3, "stream": \#(streamed)}"#)
        let experiment = config.experiments[0]
        let piece = String(repeating: "x", count: 6 << 20)
        let upstream = FakeUpstream(immediate: true) { request, _ in
            if request.url.hasPrefix("http://v1.test") { return .json(chatAnswer("yes")) }
            if streamed {
                let chunk = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(piece)\"}}]}\n\n"
                return .sse([chunk, chunk, chunk, "data: [DONE]\n\n"])
            }
            return .json(chatAnswer(piece + piece + piece))
        }
        let (o, stats) = EvalRunner(experiment: experiment, eval: experiment.eval!, items: items(1), transport: upstream, cache: nil).run()
        let big = try #require(o.answers.first { $0.variant == 1 })
        #expect(!big.ok)
        #expect(big.error?.contains("larger than 16 MB") == true, "\(big.error ?? "")")
        #expect(big.attempts == 1)
        #expect(stats.retries == 0)
    }
}

@Suite("Eval call queue: concurrency per upstream, what is retried, how long to wait")
struct CallQueueTests {
    @Test func startsAtMostTheLimitPerUpstreamAndTheNextWhenOneFinishes() {
        var q = CallQueue(limit: 2)
        #expect(q.submit(0, upstream: "a") == [0])
        #expect(q.submit(1, upstream: "a") == [1])
        #expect(q.submit(2, upstream: "a") == [])
        #expect(q.submit(3, upstream: "b") == [3])
        #expect(q.waitingCount == 1 && q.inFlightCount == 3)
        #expect(q.finished(upstream: "a") == [2])
        #expect(q.finished(upstream: "b") == [])
        #expect(q.drain() == [])
    }

    @Test(arguments: [
        (429, "upstream_error", true), (500, "upstream_error", true), (503, "upstream_error", true),
        (400, "upstream_error", false), (404, "upstream_error", false), (504, "timeout", true), (502, "upstream_error", true),
        (200, "ok", false), (499, "client_cancelled", false),
    ])
    func retries(status: Int, outcome: String, expected: Bool) {
        #expect(CallQueue.isRetryable(httpStatus: status, status: outcome) == expected)
    }

    @Test func waitsWhatRetryAfterAsksOrBacksOffExponentiallyWithJitter() {
        #expect(CallQueue.retryDelay(attempt: 1, retryAfter: "7", unit: 0.3) == 7)
        #expect(CallQueue.retryDelay(attempt: 1, retryAfter: "100000", unit: 0.3) == 120)
        #expect(CallQueue.retryDelay(attempt: 1, retryAfter: nil, unit: 0) == 0.25)
        #expect(CallQueue.retryDelay(attempt: 1, retryAfter: nil, unit: 1) == 0.5)
        #expect(CallQueue.retryDelay(attempt: 4, retryAfter: nil, unit: 1) == 4)
        #expect(CallQueue.retryDelay(attempt: 20, retryAfter: nil, unit: 1) == 30)
        #expect(CallQueue.retryDelay(attempt: 2, retryAfter: "Wed, 21 Oct 2015 07:28:00 GMT", unit: 1) == 1)
    }
}
