import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffTestSupport
import Foundation
import Testing

@Suite("Upstream outcome: the client's answer and the request's event")
struct UpstreamReplyTests {
    static let started: UInt64 = 5_000_000_000
    static let gatewayHeaders = [("x-bakeoff-experiment", "exp"), ("x-bakeoff-request-id", "req_1")]

    static func reply(stream: Bool = false, clientWantsUsage: Bool = false, logContent: Bool = false) -> UpstreamReply {
        var record = EventRecord(kind: .request, timestamp: Make.t0, experiment: "exp")
        record.variant = "control"
        record.userID = "alice"
        record.requestID = "req_1"
        record.conversationID = "req_1"
        return UpstreamReply(UpstreamReply.Context(endpoint: .chatCompletions, stream: stream, clientWantsUsage: clientWantsUsage,
                                                   logContent: logContent, responseHeaders: gatewayHeaders, started: started,
                                                   budgetLimit: 1000, record: record))
    }

    static func feed(_ reply: inout UpstreamReply, _ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { reply.buffer($0, reserved: true) }
    }

    static func stream(_ reply: inout UpstreamReply, _ text: String, at now: UInt64) -> String {
        String(decoding: Array(text.utf8).withUnsafeBytes { reply.stream($0) { now } }, as: UTF8.self)
    }

    static func respond(_ completion: UpstreamReply.Completion) -> (status: Int, headers: [(String, String)], body: [UInt8])? {
        if case .respond(let status, let headers, let body) = completion.reply { return (status, headers, body) }
        return nil
    }

    static func endStream(_ completion: UpstreamReply.Completion) -> (tail: String, failed: Bool)? {
        if case .endStream(let tail, let failed) = completion.reply { return (String(decoding: tail, as: UTF8.self), failed) }
        return nil
    }

    @Test func aCompleteAnswerIsForwardedWithItsTokensAndLatency() throws {
        var r = Self.reply()
        let streamHead = r.responded(UpstreamResponseHead(status: 200, contentType: "application/json; charset=utf-8",
                                                          headers: [("x-ratelimit-remaining-requests", "9"), ("server", "x")]))
        #expect(streamHead == nil)
        #expect(r.mode == .buffering)
        let answer = GatewayHarness.completion(prompt: 21, completion: 7)
        #expect(Self.feed(&r, String(answer.prefix(30))) && Self.feed(&r, String(answer.dropFirst(30))))
        let done = r.finish(.completed(status: 200), clientGone: false, now: Self.started + 250_000_000)
        let (status, headers, body) = try #require(Self.respond(done))
        #expect(status == 200 && String(decoding: body, as: UTF8.self) == answer)
        #expect(headers.first?.1 == "application/json; charset=utf-8")
        #expect(headers.contains { $0 == ("x-bakeoff-request-id", "req_1") })
        #expect(headers.contains { $0 == ("x-ratelimit-remaining-requests", "9") })
        #expect(!headers.contains { $0.0 == "server" })
        #expect(done.event.status == "ok" && done.event.latencyMs == 250 && done.event.ttftMs == nil)
        #expect(done.event.inputTokens == 21 && done.event.outputTokens == 7)
        #expect(done.latencySeconds == 0.25 && done.upstreamFailure == nil && done.refusedStatus == nil && !done.implausibleUsage)
    }

    /// Each way a call ends, answered without a stream: the status the client gets, its error code, the
    /// event's status, and whether the upstream's failure goes to stderr.
    @Test(arguments: [
        (UpstreamOutcome.completed(status: 500), 500, nil, "upstream_error", true),
        (.completed(status: 429), 429, nil, "upstream_error", false),
        (.completed(status: 400), 400, nil, "upstream_error", false),
        (.failed(.timeout, message: "the upstream did not answer within 100 ms"), 504, "upstream_timeout", "timeout", true),
        (.failed(.unreachable, message: "cannot reach the upstream"), 502, "upstream_unreachable", "upstream_error", true),
        (.failed(.brokenResponse, message: "the upstream's response broke off"), 502, "upstream_broken_response", "upstream_error", true),
        (.failed(.shutdown, message: "the gateway is shutting down"), 503, "shutting_down", "gateway_shutdown", false),
        (.cancelled, 499, nil, "client_cancelled", false),
    ] as [(UpstreamOutcome, Int, String?, String, Bool)])
    func outcomes(_ outcome: UpstreamOutcome, _ status: Int, _ code: String?, _ eventStatus: String, _ logged: Bool) throws {
        var r = Self.reply()
        if case .completed(let s) = outcome {
            _ = r.responded(UpstreamResponseHead(status: s, contentType: "application/json", headers: [("retry-after", "2")]))
            _ = Self.feed(&r, "{\"error\":{\"message\":\"upstream says no\",\"type\":\"x\"}}")
        }
        let done = r.finish(outcome, clientGone: false, now: Self.started + 1_000_000)
        let answer = try #require(Self.respond(done))
        #expect(answer.status == status)
        let json = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
        if let code {
            #expect((json?["error"] as? [String: Any])?["code"] as? String == code)
        } else if case .completed = outcome {
            #expect(String(decoding: answer.body, as: UTF8.self).contains("upstream says no"))  // the upstream's own body
            #expect(answer.headers.contains { $0 == ("retry-after", "2") })
        }
        #expect(done.event.status == eventStatus)
        #expect(done.event.latencyMs == 1)
        #expect((done.upstreamFailure != nil) == logged)
    }

    @Test func aStreamIsForwardedInOrderWithoutTheUsageChunkItDidNotAskFor() throws {
        var r = Self.reply(stream: true)
        let started = r.responded(UpstreamResponseHead(status: 200, contentType: "text/event-stream", headers: [("retry-after", "1")]))
        let head = try #require(started)
        #expect(head.first! == ("Content-Type", "text/event-stream"))
        #expect(head.contains { $0 == ("x-bakeoff-experiment", "exp") } && head.contains { $0 == ("retry-after", "1") })
        #expect(r.mode == .streaming)
        let events = GatewayHarness.streamEvents(["Hello", " world"], prompt: 9)
        var sent = ""
        // The role chunk has no content: the first token is the next one, 80 ms in.
        sent += Self.stream(&r, events[0], at: Self.started + 50_000_000)
        sent += Self.stream(&r, events[1], at: Self.started + 80_000_000)
        // An event split across pieces is forwarded once it is whole.
        let split = events[2].index(events[2].startIndex, offsetBy: 20)
        #expect(Self.stream(&r, String(events[2][..<split]), at: Self.started + 90_000_000).isEmpty)
        sent += Self.stream(&r, String(events[2][split...]), at: Self.started + 95_000_000)
        for e in events[3...] { sent += Self.stream(&r, e, at: Self.started + 99_000_000) }
        let done = r.finish(.completed(status: 200), clientGone: false, now: Self.started + 120_000_000)
        let usageChunk = events[4]
        #expect(sent == events.filter { $0 != usageChunk }.joined())
        let end = try #require(Self.endStream(done))
        #expect(end.tail.isEmpty && !end.failed)
        #expect(done.event.status == "ok" && done.event.ttftMs == 80 && done.event.latencyMs == 120)
        #expect(done.event.inputTokens == 9 && done.event.outputTokens == 2)
        #expect(done.ttftSeconds == 0.08)
    }

    @Test func aClientThatAskedForUsageGetsItsChunk() {
        var r = Self.reply(stream: true, clientWantsUsage: true)
        _ = r.responded(UpstreamResponseHead(status: 200, contentType: "text/event-stream"))
        let events = GatewayHarness.streamEvents()
        let sent = events.map { Self.stream(&r, $0, at: Self.started) }.joined()
        #expect(sent == events.joined())
    }

    @Test func aStreamBrokenMidwayEndsWithAnErrorEvent() throws {
        var r = Self.reply(stream: true)
        _ = r.responded(UpstreamResponseHead(status: 200, contentType: "text/event-stream"))
        let events = GatewayHarness.streamEvents()
        _ = Self.stream(&r, events[0] + events[1], at: Self.started + 10_000_000)
        let done = r.finish(.failed(.brokenResponse, message: "the upstream's response broke off: Transferred a partial file"), clientGone: false, now: Self.started + 30_000_000)
        let end = try #require(Self.endStream(done))
        #expect(end.tail.hasPrefix("data: {\"error\":") && end.tail.contains("upstream_broken_response") && end.tail.hasSuffix("\n\n"))
        #expect(!end.failed)
        #expect(done.event.status == "upstream_error" && done.event.ttftMs == 10 && done.event.outputTokens == nil)
        #expect(done.upstreamFailure?.hasPrefix("failed: brokenResponse") == true)
    }

    @Test func anErrorEventInsideAStreamMarksTheRequestFailed() throws {
        var r = Self.reply(stream: true)
        _ = r.responded(UpstreamResponseHead(status: 200, contentType: "text/event-stream"))
        let sent = Self.stream(&r, "data: {\"error\":{\"message\":\"overloaded\"}}\n\n", at: Self.started)
        #expect(sent.contains("overloaded"))
        let done = r.finish(.completed(status: 200), clientGone: false, now: Self.started)
        #expect(done.event.status == "upstream_error")
        #expect(done.upstreamFailure?.contains("broke off a stream") == true)
    }

    @Test func aCancelledStreamIsAbortedAndAClientGoneIsCounted() throws {
        var r = Self.reply(stream: true)
        _ = r.responded(UpstreamResponseHead(status: 200, contentType: "text/event-stream"))
        let done = r.finish(.cancelled, clientGone: true, now: Self.started)
        let end = try #require(Self.endStream(done))
        #expect(end.failed && end.tail.isEmpty)
        #expect(done.event.status == "client_cancelled")
        // A client gone also wins over a complete answer.
        var whole = Self.reply()
        _ = whole.responded(UpstreamResponseHead(status: 200, contentType: "application/json"))
        #expect(whole.finish(.completed(status: 200), clientGone: true, now: Self.started).event.status == "client_cancelled")
    }

    @Test func aStreamRequestAnsweredWithoutAStreamIsRelayedWhole() throws {
        var r = Self.reply(stream: true)
        let streamHead = r.responded(UpstreamResponseHead(status: 503, contentType: "application/json"))
        #expect(streamHead == nil)
        #expect(r.mode == .buffering)
        _ = Self.feed(&r, "{\"error\":{\"message\":\"busy\"}}")
        let answer = try #require(Self.respond(r.finish(.completed(status: 503), clientGone: false, now: Self.started)))
        #expect(answer.status == 503)
    }

    @Test func anAnswerOverTheMemoryBudgetIsDroppedAndRefused() throws {
        var r = Self.reply()
        _ = r.responded(UpstreamResponseHead(status: 200, contentType: "application/json"))
        let kept = Array("{\"id\":".utf8).withUnsafeBytes { r.buffer($0, reserved: false) }
        #expect(!kept)
        #expect(r.mode == .dropping)
        let done = r.finish(.cancelled, clientGone: false, now: Self.started)
        let answer = try #require(Self.respond(done))
        #expect(answer.status == 503 && answer.headers.contains { $0 == ("Retry-After", "1") })
        #expect(String(decoding: answer.body, as: UTF8.self).contains("memory budget of 1000 bytes"))
        #expect(done.event.status == "gateway_overloaded" && done.refusedStatus == 503)
        // Gone first: the client is not there to read a 503.
        var gone = Self.reply()
        _ = gone.responded(UpstreamResponseHead(status: 200, contentType: "application/json"))
        _ = Array("x".utf8).withUnsafeBytes { gone.buffer($0, reserved: false) }
        #expect(gone.finish(.cancelled, clientGone: true, now: Self.started).event.status == "client_cancelled")
    }

    @Test func anImpossibleUsageIsLeftOutAndCounted() throws {
        var r = Self.reply()
        _ = r.responded(UpstreamResponseHead(status: 200, contentType: "application/json"))
        _ = Self.feed(&r, GatewayHarness.completion(prompt: -3, completion: 4))
        let done = r.finish(.completed(status: 200), clientGone: false, now: Self.started)
        #expect(done.implausibleUsage && done.event.inputTokens == nil && done.event.outputTokens == nil)
    }

    @Test func loggedContentKeepsTheResponseText() {
        var r = Self.reply(stream: true, logContent: true)
        _ = r.responded(UpstreamResponseHead(status: 200, contentType: "text/event-stream"))
        for e in GatewayHarness.streamEvents(["Hel", "lo"]) { _ = Self.stream(&r, e, at: Self.started) }
        #expect(r.finish(.completed(status: 200), clientGone: false, now: Self.started).event.response == "Hello")
    }

    /// The quick scan errs only towards a full inspection.
    @Test(arguments: [
        ("{\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}", false),
        ("{\"choices\":[],\"usage\":null}", false),
        ("{\"choices\":[],\"usage\":{\"prompt_tokens\":1}}", true),
        ("{\"error\":{\"message\":\"x\"}}", true),
        ("{\"choices\":[{\"delta\":{\"content\":\"a \\\"quote\\\"\"}}]}", true),
        ("[DONE]", true),
    ])
    func theQuickScanFindsUsageAndErrors(_ payload: String, _ inspect: Bool) {
        #expect(Array(payload.utf8).withUnsafeBytes { UpstreamReply.mayCarryUsageOrError($0) } == inspect)
    }
}

/// What llama.cpp's server does (e2e/llama found each): streams without usage, empty streams, streams cut short,
/// and OpenAI's SDK hanging up at [DONE].
@Suite("Upstream outcome: streams that end oddly")
struct UpstreamStreamEndTests {
    static let started: UInt64 = 5_000_000_000

    static func streaming() -> UpstreamReply {
        var r = UpstreamReplyTests.reply(stream: true)
        _ = r.responded(UpstreamResponseHead(status: 200, contentType: "text/event-stream"))
        return r
    }

    static func chunk(_ content: String, finish: String? = nil) -> String {
        "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(content)\"},\"finish_reason\":\(finish.map { "\"\($0)\"" } ?? "null")}]}\n\n"
    }

    @Test("a client that hangs up after [DONE] had its whole answer: ok, and the latency ends at [DONE]")
    func hangUpAtDone() throws {
        for cancelled in [false, true] {
            var r = Self.streaming()
            _ = UpstreamReplyTests.stream(&r, Self.chunk("hi"), at: Self.started + 10_000_000)
            _ = UpstreamReplyTests.stream(&r, Self.chunk("", finish: "stop"), at: Self.started + 15_000_000)
            _ = UpstreamReplyTests.stream(&r, "data: [DONE]\n\n", at: Self.started + 20_000_000)
            let done = r.finish(cancelled ? .cancelled : .completed(status: 200), clientGone: true, now: Self.started + 90_000_000)
            #expect(done.event.status == "ok", "cancelled: \(cancelled)")
            #expect(done.event.latencyMs == 20)
            #expect(done.errorType == nil)
        }
    }

    @Test("a stream that ends with nothing (no [DONE], no finish_reason) is an upstream error the client hears of")
    func emptyStream() throws {
        var r = Self.streaming()
        let done = r.finish(.completed(status: 200), clientGone: false, now: Self.started + 7_000_000)
        let end = try #require(UpstreamReplyTests.endStream(done))
        #expect(end.tail.contains("upstream_incomplete_stream") && !end.failed)
        #expect(done.event.status == "upstream_error" && done.errorType == "incomplete_stream")
        #expect(done.upstreamFailure == "ended a stream without [DONE] or a finish_reason")
        #expect(!done.event.usageMissing)
    }

    @Test("a stream whose answer never says why it ended, then [DONE], was cut short: an upstream error")
    func truncated() {
        var r = Self.streaming()
        _ = UpstreamReplyTests.stream(&r, Self.chunk("a"), at: Self.started + 10_000_000)
        _ = UpstreamReplyTests.stream(&r, Self.chunk("b"), at: Self.started + 11_000_000)
        _ = UpstreamReplyTests.stream(&r, "data: [DONE]\n\n", at: Self.started + 12_000_000)
        let done = r.finish(.completed(status: 200), clientGone: false, now: Self.started + 13_000_000)
        #expect(done.event.status == "upstream_error" && done.errorType == "truncated_stream")
    }

    @Test("an answer without usage is marked usage_missing (unknown counts, not 0) in the event's line")
    func usageMissing() {
        var r = Self.streaming()
        _ = UpstreamReplyTests.stream(&r, Self.chunk("a"), at: Self.started + 10_000_000)
        _ = UpstreamReplyTests.stream(&r, Self.chunk("", finish: "length"), at: Self.started + 11_000_000)
        _ = UpstreamReplyTests.stream(&r, "data: [DONE]\n\n", at: Self.started + 12_000_000)
        let done = r.finish(.completed(status: 200), clientGone: false, now: Self.started + 13_000_000)
        #expect(done.event.status == "ok" && done.event.usageMissing)
        #expect(done.event.inputTokens == nil && done.event.outputTokens == nil)
        #expect(done.event.jsonLine().contains(",\"status\":\"ok\",\"usage_missing\":true"))
        // With usage, nothing is said.
        var full = Self.streaming()
        for e in GatewayHarness.streamEvents(["x"], prompt: 3) { _ = UpstreamReplyTests.stream(&full, e, at: Self.started + 1) }
        let ok = full.finish(.completed(status: 200), clientGone: false, now: Self.started + 2)
        #expect(!ok.event.usageMissing && !ok.event.jsonLine().contains("usage_missing"))
    }

    @Test("the quick scan sends a chunk with a finish_reason to the full inspection, not one with null")
    func quickScanFindsFinishReason() {
        let finishing = Array(#"{"choices":[{"index":0,"delta":{},"finish_reason" : "stop"}]}"#.utf8)
        let running = Array(#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}"#.utf8)
        #expect(finishing.withUnsafeBytes { UpstreamReply.mayCarryUsageOrError($0) })
        #expect(!running.withUnsafeBytes { UpstreamReply.mayCarryUsageOrError($0) })
    }
}
