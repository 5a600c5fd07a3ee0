import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffStore
import BakeoffTestSupport
import Foundation
import Testing

/// A `Gateway` run in process: fake exchanges in, a scripted fake upstream, an in-memory event sink and a
/// clock that moves only when the script says so.
@Suite("Gateway in process: proxying")
struct GatewayProxyTests {
    static let alice = Fixture.user(in: "control")
    static let bob = Fixture.user(in: "treatment")

    @Test(arguments: [false, true])
    func aProxiedRequestWritesExactlyItsEvent(immediate: Bool) throws {
        let h = try GatewayHarness(immediate: immediate, always: .json(GatewayHarness.completion(prompt: 12, completion: 4), after: 250_000_000))
        let answer = h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.alice))
        #expect(answer.status == 200 && answer.text == GatewayHarness.completion(prompt: 12, completion: 4))
        #expect(answer.header("x-bakeoff-variant") == "control" && answer.header("x-bakeoff-experiment") == "exp")
        let requestID = try #require(answer.header("x-bakeoff-request-id"))
        var expected = EventRecord(kind: .request, timestamp: Make.t0, experiment: "exp")
        expected.variant = "control"
        expected.userID = Self.alice
        expected.conversationID = requestID
        expected.requestID = requestID
        expected.status = "ok"
        expected.latencyMs = 250
        expected.inputTokens = 12
        expected.outputTokens = 4
        #expect(h.events.wait(for: 1) == [expected])
        // What went upstream: the variant's URL, key and model.
        let call = try #require(h.upstream.calls.first)
        #expect(h.upstream.calls.count == 1)
        #expect(call.request.url == "http://control.test/v1/chat/completions")
        #expect(call.request.headers.contains("Authorization: Bearer \(GatewayHarness.upstreamKey)"))
        #expect(String(decoding: call.request.body, as: UTF8.self).contains("\"model\":\"m-control\""))
    }

    @Test func aStreamIsForwardedChunkByChunkInOrder() throws {
        let events = GatewayHarness.streamEvents(["One ", "two ", "three."], prompt: 30)
        let h = try GatewayHarness(always: .sse(events, firstAfter: 100_000_000, gap: 10_000_000))
        let answer = try #require(h.exchange("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.bob, stream: true)).wait())
        #expect(answer.streamed && answer.complete && !answer.failed)
        #expect(answer.status == 200 && answer.header("content-type") == "text/event-stream" && answer.header("x-bakeoff-variant") == "treatment")
        // One write per upstream event, in order; the usage chunk the gateway asked for is not the client's.
        let usageChunk = events[events.count - 2]
        #expect(answer.chunks.map { String(decoding: $0, as: UTF8.self) } == events.filter { $0 != usageChunk })
        let event = try #require(h.events.wait(for: 1).first)
        #expect(h.events.events.count == 1)
        #expect(event.status == "ok" && event.variant == "treatment")
        // The role chunk came at 100 ms, the first word 10 ms later; the last event 60 ms after the first.
        #expect(event.ttftMs == 110 && event.latencyMs == 160)
        #expect(event.inputTokens == 30 && event.outputTokens == 3)
        // The upstream was asked for the usage chunk on the client's behalf.
        let body = String(decoding: try #require(h.upstream.calls.first).request.body, as: UTF8.self)
        #expect(body.contains("\"include_usage\":true"))
    }

    /// Upstream failures: what the client gets and what the event says.
    @Test(arguments: [
        ("a 500", FakeUpstream.Script.json(#"{"error":{"message":"boom","type":"server_error"}}"#, status: 500), 500, nil, "upstream_error"),
        ("a connection failure", .failure(.unreachable), 502, "upstream_unreachable", "upstream_error"),
        ("a timeout", .failure(.timeout, "the upstream did not answer within 300000 ms"), 504, "upstream_timeout", "timeout"),
        ("a shutdown", .failure(.shutdown, "the gateway is shutting down"), 503, "shutting_down", "gateway_shutdown"),
    ] as [(String, FakeUpstream.Script, Int, String?, String)])
    func upstreamFailures(_ what: String, _ script: FakeUpstream.Script, _ status: Int, _ code: String?, _ eventStatus: String) throws {
        let h = try GatewayHarness(always: script)
        let answer = h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.alice))
        #expect(answer.status == status, "\(what)")
        if let code { #expect(answer.errorCode == code, "\(what)") } else { #expect(answer.text.contains("boom"), "\(what)") }
        #expect(answer.header("x-bakeoff-request-id") != nil, "\(what)")
        #expect(h.events.wait(for: 1).map(\.status) == [eventStatus], "\(what)")
    }

    @Test func aStreamBrokenMidwayEndsWithAnErrorEventAndIsCountedFailed() throws {
        let events = GatewayHarness.streamEvents()
        let h = try GatewayHarness(always: .brokenStream(Array(events.prefix(2))))
        let answer = try #require(h.exchange("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.alice, stream: true)).wait())
        #expect(answer.chunks.count == 3)
        #expect(answer.chunks.prefix(2).map { String(decoding: $0, as: UTF8.self) } == Array(events.prefix(2)))
        #expect(String(decoding: answer.chunks[2], as: UTF8.self).contains("upstream_broken_response"))
        #expect(answer.complete && !answer.failed)
        #expect(h.events.wait(for: 1).map(\.status) == ["upstream_error"])
    }

    @Test func aClientThatLeavesCancelsItsUpstreamCall() throws {
        let h = try GatewayHarness(always: .hang)
        let exchange = h.exchange("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.alice))
        #expect(exchange.answer.complete == false)
        exchange.departClient()
        #expect(exchange.wait()?.status == 499)
        #expect(h.upstream.calls.map(\.cancelled) == [true])
        #expect(h.events.wait(for: 1).map(\.status) == ["client_cancelled"])
    }

    @Test(arguments: [false, true])
    func anAnswerOverTheMemoryBudgetIsRefused(immediate: Bool) throws {
        let h = try GatewayHarness(immediate: immediate, always: .json(GatewayHarness.completion()))
        let exchange = h.exchange("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.alice), budget: 10)
        let answer = try #require(exchange.wait())
        #expect(answer.status == 503 && answer.errorCode == "over_capacity" && answer.header("retry-after") == "1")
        #expect(h.events.wait(for: 1).map(\.status) == ["gateway_overloaded"])
    }

    @Test func refusalsCallNoUpstreamAndWriteNoEvent() throws {
        let h = try GatewayHarness()
        #expect(h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(model: "gpt-4o")).errorCode == "model_not_found")
        #expect(h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: nil)).errorCode == "user_required")
        #expect(h.send("GET", "/v1/chat/completions").status == 405)
        #expect(h.upstream.calls.isEmpty && h.events.events.isEmpty)
    }

    @Test func aConversationStaysWithItsFirstUser() throws {
        let h = try GatewayHarness()
        let conversation = [("X-Bakeoff-Conversation", "conv-42")]
        #expect(h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.alice), headers: conversation).status == 200)
        let refused = h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.bob), headers: conversation)
        #expect(refused.status == 409 && refused.errorCode == "conversation_of_another_user")
        #expect(h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: Self.alice), headers: conversation).status == 200)
        // Known only to the store (say, after a restart): its owner there decides.
        let stored = MemoryEventSink(events: [Make.request("carol", "control", "req_old", conversation: "conv-7", at: Make.t0)])
        let h2 = try GatewayHarness()
        let g = Gateway(config: h2.gateway.config, events: stored, upstream: h2.upstream, clock: h2.clock)
        let exchange = FakeExchange(path: "/v1/chat/completions", headers: [("X-Bakeoff-Conversation", "conv-7")], json: GatewayHarness.chat(user: Self.bob))
        g.handle(exchange)
        #expect(exchange.wait()?.status == 409)
    }
}

@Suite("Gateway in process: feedback")
struct GatewayFeedbackTests {
    /// A user of `exp` on control.
    static let alice = Fixture.user(in: "control")

    /// A request through the harness; its id and feedback token.
    static func served(_ h: GatewayHarness, user: String = alice) throws -> (id: String, token: String) {
        let answer = h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: user))
        return (try #require(answer.header("x-bakeoff-request-id")), try #require(answer.header("x-bakeoff-feedback-token")))
    }

    static func feedback(_ id: String, user: String? = alice, name: String = "csat", value: String = "4") -> String {
        "{\"request_id\":\"\(id)\",\(user.map { "\"user\":\"\($0)\"," } ?? "")\"name\":\"\(name)\",\"value\":\(value)}"
    }

    @Test func feedbackIsAcknowledgedOnlyOnceTheSinkCommitsIt() throws {
        let h = try GatewayHarness()
        let (id, _) = try Self.served(h)
        h.events.mode = .hold
        let exchange = h.exchange("POST", "/v1/feedback", json: Self.feedback(id))
        #expect(!exchange.answer.complete && h.events.heldCount == 1)
        #expect(h.events.feedbackEvents.isEmpty)
        h.events.commitHeld()
        let answer = try #require(exchange.wait())
        #expect(answer.status == 200)
        #expect(answer.json?["status"] as? String == "recorded" && answer.json?["variant"] as? String == "control")
        let event = try #require(h.events.feedbackEvents.first)
        #expect(event.requestID == id && event.userID == Self.alice && event.name == "csat" && event.value == 4 && event.timestamp == Make.t0)
    }

    @Test func feedbackIsRefusedWhenTheSinkCannotWriteAndItsPlaceGivenBack() throws {
        let h = try GatewayHarness()
        let (id, _) = try Self.served(h)
        h.events.mode = .fail("disk I/O error")
        for _ in 0..<4 {
            let refused = h.send("POST", "/v1/feedback", json: Self.feedback(id))
            #expect(refused.status == 503 && refused.errorCode == "store_unavailable" && refused.header("retry-after") == "1")
            #expect(refused.text.contains("disk I/O error"))
        }
        // The failures took no place under the cap of 3.
        h.events.mode = .commit
        for _ in 0..<3 { #expect(h.send("POST", "/v1/feedback", json: Self.feedback(id)).status == 200) }
        let over = h.send("POST", "/v1/feedback", json: Self.feedback(id))
        #expect(over.status == 429 && over.errorCode == "feedback_limit_reached")
        #expect(h.events.feedbackEvents.count == 3)
    }

    @Test func theCapStartsFromWhatTheSinkHolds() throws {
        let h = try GatewayHarness()
        let (id, _) = try Self.served(h)
        for _ in 0..<2 { h.events.enqueue(Make.feedback("csat", 3, request: id, at: Make.t0)) }
        #expect(h.send("POST", "/v1/feedback", json: Self.feedback(id)).status == 200)
        #expect(h.send("POST", "/v1/feedback", json: Self.feedback(id)).status == 429)
    }

    @Test func theResponsesTokenStandsInForTheUser() throws {
        let h = try GatewayHarness()
        let (id, token) = try Self.served(h)
        let answer = h.send("POST", "/v1/feedback", json: Self.feedback(id, user: nil, name: "thumbs_up", value: "true"),
                            headers: [("X-Bakeoff-Feedback-Token", token)])
        #expect(answer.status == 200)
        // An hour after its lifetime, the token is refused.
        h.clock.advance(seconds: Double(h.gateway.config.access.feedbackTokenLifetimeSeconds) + 3600)
        let late = h.send("POST", "/v1/feedback", json: Self.feedback(id, user: nil), headers: [("X-Bakeoff-Feedback-Token", token)])
        #expect(late.status == 403 && late.errorCode == "feedback_token_expired")
    }

    @Test func feedbackFromAnotherUserOrOnAnUnknownRequestIsRefused() throws {
        let h = try GatewayHarness()
        let (id, _) = try Self.served(h)
        #expect(h.send("POST", "/v1/feedback", json: Self.feedback(id, user: "mallory")).errorCode == "feedback_user_mismatch")
        #expect(h.send("POST", "/v1/feedback", json: Self.feedback("req_000000000000000000000000")).errorCode == "request_not_found")
        #expect(h.send("POST", "/v1/feedback", json: Self.feedback(id, value: "9")).errorCode == "invalid_feedback")
        #expect(h.events.feedbackEvents.isEmpty)
    }

    @Test func aRequestOnlyTheSinkKnowsTakesFeedback() throws {
        let h = try GatewayHarness()
        h.events.enqueue(Make.request("dave", "treatment", "req_stored", conversation: "conv-s", at: Make.t0, experiment: "exp"))
        let answer = h.send("POST", "/v1/feedback", json: #"{"conversation_id":"conv-s","user":"dave","name":"task_completed","value":true}"#)
        #expect(answer.status == 200 && answer.json?["variant"] as? String == "treatment")
    }
}

@Suite("Gateway in process: small endpoints")
struct GatewayEndpointTests {
    @Test func healthFollowsTheSink() throws {
        let h = try GatewayHarness()
        #expect(h.send("GET", "/healthz").text == #"{"status":"ok"}"#)
        h.events.health = .failing(since: Date(), reason: "disk full")
        let failing = h.send("GET", "/healthz")
        #expect(failing.status == 503 && failing.text == #"{"status":"unavailable","reason":"disk full"}"#)
    }

    @Test func modelsAssignmentsAndMetrics() throws {
        let h = try GatewayHarness()
        let models = h.send("GET", "/v1/models")
        #expect(models.status == 200)
        #expect(((models.json?["data"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String } == ["bot", "anon-bot"])
        let user = Fixture.user(in: "treatment")
        let assigned = h.send("GET", "/v1/assignments", query: ["experiment": "exp", "user": user])
        #expect(assigned.json?["variant"] as? String == "treatment")
        #expect(h.send("GET", "/v1/assignments", query: ["experiment": "nope", "user": user]).errorCode == "experiment_not_found")
        _ = h.send("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: user))
        _ = h.events.wait(for: 1)  // counted just before its event is written
        h.clock.advance(seconds: 42)
        let metrics = h.send("GET", "/metrics").text
        #expect(metrics.contains(#"bakeoff_requests_total{experiment="exp",variant="treatment",status="ok"} 1"#))
        #expect(metrics.contains("bakeoff_events_written_total 1"))
        #expect(metrics.contains("bakeoff_uptime_seconds 42"))
        #expect(metrics.contains("bakeoff_upstream_calls_active 0"))
    }

    @Test func reportsNeedTheAdminKey() throws {
        let h = try GatewayHarness()
        let refused = h.send("GET", "/v1/experiments/exp/report")
        #expect(refused.status == 401 && refused.errorCode == "admin_key_required")
        let unknown = h.send("GET", "/v1/experiments/nope/report", headers: [Fixture.authorization])
        #expect(unknown.status == 404)
        let format = h.send("GET", "/v1/experiments/exp/report", headers: [Fixture.authorization], query: ["format": "pdf"])
        #expect(format.status == 400 && format.errorCode == "bad_format")
    }

    @Test func stopClosesTheSinkAndTheTransport() throws {
        let h = try GatewayHarness(always: .hang)
        let exchange = h.exchange("POST", "/v1/chat/completions", json: GatewayHarness.chat(user: "alice"))
        h.gateway.stop(graceSeconds: 0)
        #expect(exchange.wait()?.status == 503)
        #expect(h.events.closed)
    }
}
