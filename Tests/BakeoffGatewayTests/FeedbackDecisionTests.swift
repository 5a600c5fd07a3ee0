import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffStore
import BakeoffTestSupport
import Foundation
import Testing

@Suite("Feedback decision: body, lookups, sender, value, cap")
struct FeedbackDecisionTests {
    static let now = Make.t0 / 1_000_000

    /// The whole decision with what the lookups found: the token's request by id, the target from `known`.
    static func decide(_ json: String, headers: [(String, String)] = [], known: [RequestInfo] = [Fixture.served, Fixture.anonymous],
                       config: GatewayConfig = Fixture.standard, at seconds: Int64 = now) -> Result<FeedbackAdmission, OpenAIError> {
        let request = Fixture.request(json: json, headers: headers)
        var decision: FeedbackDecision
        switch FeedbackDecision.read(request, rules: FeedbackRules(config: config), access: AccessCheck(config: config)) {
        case .success(let d): decision = d
        case .failure(let e): return .failure(e)
        }
        let signed = decision.tokenRequestID.flatMap { id in known.first { $0.requestID == id } }
        let target: FeedbackTarget
        switch decision.target(signed: signed, signer: Fixture.signer, now: seconds) {
        case .success(let t): target = t
        case .failure(let e): return .failure(e)
        }
        let found: RequestInfo? = switch target {
        case .request(let id): known.first { $0.requestID == id }
        case .conversation(let id): known.last { $0.conversationID == id }
        }
        return decision.admit(found, now: seconds * 1_000_000)
    }

    static func token(for info: RequestInfo = Fixture.served, at seconds: Int64 = now) -> String {
        Fixture.signer.token(requestID: info.requestID, user: info.userID, now: seconds)
    }

    /// The refusals users hit, with the status, the OpenAI error code and the parameter named.
    @Test(arguments: [
        ("an empty body", "", [], 400, "invalid_feedback", nil),
        ("not JSON", "{\"name\":", [], 400, "invalid_feedback", nil),
        ("a value of the wrong type", #"{"request_id":"req_1","user":"alice","name":"csat","value":"five"}"#, [], 400, "invalid_feedback", "value"),
        ("no name", #"{"request_id":"req_1","user":"alice","value":4}"#, [], 400, "invalid_feedback", "name"),
        ("a name that is no identifier", #"{"request_id":"req_1","user":"alice","name":"c sat","value":4}"#, [], 400, "invalid_feedback", "name"),
        ("no value", #"{"request_id":"req_1","user":"alice","name":"csat"}"#, [], 400, "invalid_feedback", "value"),
        ("no target", #"{"user":"alice","name":"csat","value":4}"#, [], 400, "invalid_feedback", "request_id"),
        ("an unknown request", #"{"request_id":"req_nope","user":"alice","name":"csat","value":4}"#, [], 404, "request_not_found", "request_id"),
        ("an unknown conversation", #"{"conversation_id":"conv-nope","user":"alice","name":"csat","value":4}"#, [], 404, "conversation_not_found", "conversation_id"),
        ("another user's request", #"{"request_id":"req_1","user":"mallory","name":"csat","value":4}"#, [], 403, "feedback_user_mismatch", "user"),
        ("another user's request (header)", #"{"request_id":"req_1","name":"csat","value":4}"#, [("X-Bakeoff-User", "mallory")], 403, "feedback_user_mismatch", "user"),
        ("no user", #"{"request_id":"req_1","name":"csat","value":4}"#, [], 403, "feedback_user_required", "user"),
        ("a CSAT out of its scale", #"{"request_id":"req_1","user":"alice","name":"csat","value":7}"#, [], 400, "invalid_feedback", "value"),
        ("a yes/no metric given 0.5", #"{"conversation_id":"conv-1","user":"alice","name":"task_completed","value":0.5}"#, [], 400, "invalid_feedback", "value"),
        ("true for a CSAT", #"{"request_id":"req_1","user":"alice","name":"csat","value":true}"#, [], 400, "invalid_feedback", "value"),
        ("a per-request metric on a conversation", #"{"conversation_id":"conv-1","user":"alice","name":"thumbs_up","value":1}"#, [], 400, "invalid_feedback", "request_id"),
        ("a malformed token", #"{"request_id":"req_1","name":"csat","value":4,"feedback_token":"abc"}"#, [], 403, "invalid_feedback_token", nil),
    ] as [(String, String, [(String, String)], Int, String, String?)])
    func refusals(_ what: String, _ json: String, _ headers: [(String, String)], _ status: Int, _ code: String, _ param: String?) throws {
        let error = try #require(Self.decide(json, headers: headers).failure, "\(what)")
        #expect(error.status == status, "\(what)")
        #expect(error.code == code, "\(what)")
        #expect(error.param == param, "\(what)")
    }

    @Test func acceptedFeedbackIsTheEventToWriteAndTheReply() throws {
        let admission = try #require(Self.decide(#"{"request_id":"req_1","user":"alice","name":"csat","value":4}"#).success)
        var expected = EventRecord(kind: .feedback, timestamp: Make.t0, experiment: "exp")
        expected.userID = "alice"
        expected.conversationID = "conv-1"
        expected.requestID = "req_1"
        expected.name = "csat"
        expected.value = 4
        #expect(admission.event == expected)
        #expect(admission.reply == #"{"status":"recorded","experiment":"exp","variant":"control","conversation_id":"conv-1","name":"csat","value":4}"#)
        #expect(admission.metricName == "csat")
        #expect(admission.ledgerKey == "exp\u{0}r\u{0}req_1\u{0}csat")
        #expect(admission.stored == StoredFeedbackCount(target: .request("req_1"), name: "csat", namesRead: ["csat", "escalated", "task_completed", "thumbs_up"]))
        #expect(admission.limitRefusal.status == 429 && admission.limitRefusal.code == "feedback_limit_reached")
    }

    @Test func feedbackOnAConversationAndNamesNoMetricReadsShareOneAllowance() throws {
        let admission = try #require(Self.decide(#"{"conversation_id":"conv-1","user":"alice","name":"my_signal","value":12.5}"#).success)
        #expect(admission.event.requestID.isEmpty && admission.event.conversationID == "conv-1")
        #expect(admission.metricName == "other")
        #expect(admission.ledgerKey == "exp\u{0}c\u{0}conv-1\u{0}")
        #expect(admission.stored.name == nil && admission.stored.target == .conversation("conv-1"))
        // All names, less those metrics read.
        let counts = ["": 10, "csat": 2, "task_completed": 3]
        #expect(admission.stored.evaluate { _, name in counts[name] ?? 0 } == 5)
    }

    @Test(arguments: [
        ("the user in the body", #"{"request_id":"req_1","user":"alice","name":"thumbs_up","value":true}"#, [(String, String)]()),
        ("the user header", #"{"request_id":"req_1","name":"thumbs_up","value":1}"#, [("X-Bakeoff-User", "alice")]),
        ("the admin key", #"{"request_id":"req_1","name":"thumbs_up","value":0}"#, [Fixture.authorization]),
        ("an anonymous request's own id", #"{"request_id":"req_anon","name":"thumbs_up","value":1}"#, []),
    ])
    func theSenderMayBe(_ what: String, _ json: String, _ headers: [(String, String)]) {
        #expect(Self.decide(json, headers: headers).success != nil, "\(what)")
    }

    @Test func aValidTokenStandsInForTheUserAndTheClientKey() throws {
        let json = #"{"request_id":"req_1","name":"csat","value":5,"feedback_token":"\#(Self.token())"}"#
        #expect(Self.decide(json).success != nil)
        // In the header instead of the body; on the request's conversation too.
        #expect(Self.decide(#"{"conversation_id":"conv-1","name":"task_completed","value":true}"#, headers: [("X-Bakeoff-Feedback-Token", Self.token())]).success != nil)
        // With client keys: a valid token is enough, without one the key is needed.
        let keyed = Fixture.config(top: "\"client_keys_env\": \"TEST_CLIENT_KEYS\",",
                                   environment: GatewayHarness.environment.merging(["TEST_CLIENT_KEYS": "client-key-0123456789abcdef"]) { $1 })
        #expect(Self.decide(json, config: keyed).success != nil)
        let refused = try #require(Self.decide(#"{"request_id":"req_1","user":"alice","name":"csat","value":5}"#, config: keyed).failure)
        #expect(refused.status == 401 && refused.code == "invalid_api_key")
        let forged = try #require(Self.decide(#"{"request_id":"req_1","name":"csat","value":5,"feedback_token":"bk1.9999999999.cmVxXzE.AAAA"}"#, config: keyed).failure)
        #expect(forged.status == 401)
    }

    @Test func tokenChecks() throws {
        let expiredAt = Self.now + Fixture.standard.access.feedbackTokenLifetimeSeconds
        let expired = try #require(Self.decide(#"{"request_id":"req_1","name":"csat","value":5,"feedback_token":"\#(Self.token())"}"#, at: expiredAt).failure)
        #expect(expired.status == 403 && expired.code == "feedback_token_expired")
        // Signed for another user than the request's.
        let otherUser = Fixture.signer.token(requestID: "req_1", user: "mallory", now: Self.now)
        let forged = try #require(Self.decide(#"{"request_id":"req_1","name":"csat","value":5,"feedback_token":"\#(otherUser)"}"#).failure)
        #expect(forged.status == 403 && forged.code == "invalid_feedback_token")
        // Another request's token.
        let other = RequestInfo(experiment: "exp", variant: "treatment", userID: "bob", conversationID: "conv-2", requestID: "req_2")
        let mismatch = try #require(Self.decide(#"{"request_id":"req_1","name":"csat","value":5,"feedback_token":"\#(Self.token(for: other))"}"#,
                                                known: [Fixture.served, other]).failure)
        #expect(mismatch.status == 403 && mismatch.code == "feedback_token_mismatch")
        // A token whose request the gateway never served.
        let unknown = try #require(Self.decide(#"{"request_id":"req_1","name":"csat","value":5,"feedback_token":"\#(Self.token(for: other))"}"#).failure)
        #expect(unknown.status == 403 && unknown.code == "feedback_token_mismatch")
    }

    /// The cap: the ledger counts from what the store holds, and a failed write gives its place back.
    @Test func theCapCountsFromTheStore() throws {
        let admission = try #require(Self.decide(#"{"request_id":"req_1","user":"alice","name":"csat","value":4}"#).success)
        let ledger = FeedbackLedger(limit: Fixture.standard.access.feedbackLimit)
        let stored = { admission.stored.evaluate { target, name in target == .request("req_1") && name == "csat" ? 2 : 0 } }
        #expect(ledger.take(admission.ledgerKey, stored: stored))
        #expect(!ledger.take(admission.ledgerKey, stored: stored))
        ledger.giveBack(admission.ledgerKey)
        #expect(ledger.take(admission.ledgerKey, stored: stored))
    }
}
