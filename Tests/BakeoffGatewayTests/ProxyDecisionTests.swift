import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffStore
import BakeoffTestSupport
import Foundation
import Testing

@Suite("Proxy decision: key, body, experiment, user, variant, conversation, upstream request")
struct ProxyDecisionTests {
    static func assign(_ json: String, headers: [(String, String)] = [], config: GatewayConfig = Fixture.standard,
                       endpoint: Endpoint = .chatCompletions, draw: Double = 0.5) -> Result<ProxyAssignment, OpenAIError> {
        ProxyDecision.assign(Fixture.request(json: json, headers: headers), endpoint: endpoint, config: config,
                             access: AccessCheck(config: config), requestID: "req_test", draw: { draw })
    }

    static let longID = String(repeating: "x", count: 513)

    /// The refusals a client meets, each with its status and OpenAI error code.
    @Test(arguments: [
        ("unknown model", GatewayHarness.chat(model: "gpt-4o"), [], 404, "model_not_found"),
        ("no user for a per-user experiment", GatewayHarness.chat(user: nil), [], 400, "user_required"),
        ("user id too long", GatewayHarness.chat(user: longID), [], 400, "user_too_long"),
        ("forced variant without the admin key", GatewayHarness.chat(), [("X-Bakeoff-Force-Variant", "treatment")], 401, "admin_key_required"),
        ("forced variant that does not exist", GatewayHarness.chat(), [("X-Bakeoff-Force-Variant", "nope"), Fixture.authorization], 400, "unknown_variant"),
        ("conversation id too long", GatewayHarness.chat(), [("X-Bakeoff-Conversation", longID)], 400, "conversation_too_long"),
        ("not JSON", "{\"model\":", [], 400, nil),
        ("no messages", "{\"model\":\"bot\",\"user\":\"alice\"}", [], 400, nil),
    ] as [(String, String, [(String, String)], Int, String?)])
    func refusals(_ what: String, _ json: String, _ headers: [(String, String)], _ status: Int, _ code: String?) throws {
        let error = try #require(Self.assign(json, headers: headers).failure, "\(what)")
        #expect(error.status == status, "\(what)")
        if let code { #expect(error.code == code, "\(what)") }
    }

    @Test func theUnknownModelErrorNamesTheModelsServed() throws {
        let error = try #require(Self.assign(GatewayHarness.chat(model: "gpt-4o")).failure)
        #expect(error.param == "model")
        #expect(error.message.contains("gpt-4o") && error.message.contains("bot, anon-bot"))
    }

    @Test func theBodyUserWinsThenSafetyIdentifierThenTheHeader() throws {
        let control = Fixture.user(in: "control"), treatment = Fixture.user(in: "treatment")
        let header = [("X-Bakeoff-User", treatment)]
        let body = try #require(Self.assign(GatewayHarness.chat(user: control), headers: header).success)
        #expect(body.user == control && body.variant.name == "control")
        let safety = try #require(Self.assign(GatewayHarness.chat(user: nil, extra: ",\"safety_identifier\":\"\(control)\""), headers: header).success)
        #expect(safety.user == control)
        let fromHeader = try #require(Self.assign(GatewayHarness.chat(user: nil), headers: header).success)
        #expect(fromHeader.user == treatment && fromHeader.variant.name == "treatment")
        // An empty "user" is no user: the header decides.
        let empty = try #require(Self.assign(GatewayHarness.chat(user: ""), headers: header).success)
        #expect(empty.user == treatment)
    }

    @Test(arguments: [(0.0, "control"), (0.49, "control"), (0.5, "treatment"), (0.99, "treatment")])
    func perRequestAssignmentUsesTheDraw(_ draw: Double, _ variant: String) throws {
        let a = try #require(Self.assign(GatewayHarness.chat(model: "anon-bot", user: nil), draw: draw).success)
        #expect(a.user == nil && a.variant.name == variant)
        #expect(a.conversation == "req_test")  // its own conversation
    }

    @Test func theAdminKeyForcesAVariantAsQA() throws {
        let control = Fixture.user(in: "control")
        let a = try #require(Self.assign(GatewayHarness.chat(user: control), headers: [("X-Bakeoff-Force-Variant", "treatment"), Fixture.authorization]).success)
        #expect(a.variant.name == "treatment" && a.qa)
    }

    @Test func clientKeysGuardTheModelEndpoints() throws {
        let config = Fixture.config(top: "\"client_keys_env\": \"TEST_CLIENT_KEYS\",",
                                    environment: GatewayHarness.environment.merging(["TEST_CLIENT_KEYS": "client-key-0123456789abcdef"]) { $1 })
        let missing = try #require(Self.assign(GatewayHarness.chat(), config: config).failure)
        #expect(missing.status == 401 && missing.code == "invalid_api_key" && missing.message.hasPrefix("You didn't provide"))
        let wrong = try #require(Self.assign(GatewayHarness.chat(), headers: [("Authorization", "Bearer nope")], config: config).failure)
        #expect(wrong.status == 401 && wrong.message.hasPrefix("Incorrect API key"))
        #expect(Self.assign(GatewayHarness.chat(), headers: [("Authorization", "Bearer client-key-0123456789abcdef")], config: config).success != nil)
        #expect(Self.assign(GatewayHarness.chat(), headers: [Fixture.authorization], config: config).success != nil)
    }

    /// A named conversation belongs to its first user; requests without a user are one anonymous owner.
    @Test(arguments: [
        ("alice", "alice", nil),
        ("alice", nil, nil),
        ("alice", "bob", 409),
        (nil, "alice", 409),
        (nil, "", nil),
    ] as [(String?, String?, Int?)])
    func aConversationOfAnotherUserIsRefused(_ user: String?, _ storedOwner: String?, _ status: Int?) throws {
        let json = user.map { GatewayHarness.chat(user: $0) } ?? GatewayHarness.chat(model: "anon-bot", user: nil)
        let a = try #require(Self.assign(json, headers: [("X-Bakeoff-Conversation", "c-1")]).success)
        let refusal = ProxyDecision.join(a, storedOwner: storedOwner)
        #expect(refusal?.status == status)
        if status != nil { #expect(refusal?.code == "conversation_of_another_user") }
    }

    @Test func anUnnamedConversationIsNeverJoined() throws {
        let a = try #require(Self.assign(GatewayHarness.chat(user: "alice")).success)
        #expect(a.namedConversation == nil)
        #expect(ProxyDecision.join(a, storedOwner: "bob") == nil)
    }

    @Test func thePlanRewritesTheBodyForTheVariantAndSignsAToken() throws {
        let user = Fixture.user(in: "control")
        let a = try #require(Self.assign(GatewayHarness.chat(user: user, stream: true), headers: [("X-Bakeoff-Conversation", "c-9")]).success)
        let plan = ProxyDecision.plan(a, endpoint: .chatCompletions, config: Fixture.standard, requestID: "req_test",
                                      wallClock: Make.t0, started: 42, tokens: Fixture.signer)
        #expect(plan.upstream.url == "http://control.test/v1/chat/completions")
        #expect(plan.upstream.headers.contains("Authorization: Bearer \(GatewayHarness.upstreamKey)"))
        #expect(plan.upstream.headers.contains("Accept: text/event-stream"))
        #expect(plan.upstream.capturesHeaders)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(plan.upstream.body)) as? [String: Any])
        #expect(body["model"] as? String == "m-control")
        #expect((body["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        #expect(plan.record.kind == .request && plan.record.timestamp == Make.t0)
        #expect(plan.record.variant == "control" && plan.record.userID == user && plan.record.conversationID == "c-9" && plan.record.requestID == "req_test")
        #expect(plan.entry == RequestInfo(experiment: "exp", variant: "control", userID: user, conversationID: "c-9", requestID: "req_test"))
        #expect(plan.claimsConversation)
        #expect(plan.reply.stream && !plan.reply.clientWantsUsage && plan.reply.started == 42)
        let headers = Dictionary(plan.reply.responseHeaders, uniquingKeysWith: { a, _ in a })
        #expect(headers["x-bakeoff-experiment"] == "exp" && headers["x-bakeoff-variant"] == "control" && headers["x-bakeoff-request-id"] == "req_test")
        let token = try #require(headers["x-bakeoff-feedback-token"])
        #expect(Fixture.signer.verify(token, user: user, now: Make.t0 / 1_000_000) == nil)
    }

    @Test func anAnonymousRequestIsItsOwnUserAndABlindExperimentHidesTheVariant() throws {
        let config = Fixture.config(top: "\"expose_variant\": false,")
        let a = try #require(Self.assign(GatewayHarness.chat(model: "anon-bot", user: nil), config: config).success)
        let plan = ProxyDecision.plan(a, endpoint: .completions, config: config, requestID: "req_test", wallClock: Make.t0, started: 0, tokens: Fixture.signer)
        #expect(plan.record.userID == "req_test" && plan.record.conversationID == "req_test")
        #expect(!plan.claimsConversation)
        #expect(plan.upstream.url.hasSuffix("/v1/completions"))
        #expect(!plan.reply.responseHeaders.contains { $0.0 == "x-bakeoff-variant" })
    }
}
