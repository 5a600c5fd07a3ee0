import BakeoffGateway
import Testing

/// `POST /v1/feedback` bodies, read with the shared JSON scanner (they were decoded with JSONDecoder).
@Suite("Feedback bodies")
struct FeedbackBodyTests {
    @Test func readsTheFieldsAndIgnoresOthers() throws {
        let body = try FeedbackBody.parse(Array(#"{"request_id": "r-1", "user": "u", "name": "csat", "value": 4.5, "extra": [1, {"x": null}], "feedback_token": null}"#.utf8))
        #expect(body == FeedbackBody(requestID: "r-1", name: "csat", value: FeedbackValue(number: 4.5), user: "u"))
        let yes = try FeedbackBody.parse(Array(#"{"conversation_id": "c", "name": "thumbs_up", "value": true,}"#.utf8))
        #expect(yes.value == FeedbackValue(number: 1, isBoolean: true) && yes.conversationID == "c")
        #expect(try FeedbackBody.parse(Array(#"{"value": null}"#.utf8)).value == nil)
    }

    @Test(arguments: [
        (#"{"name": 5}"#, FeedbackBody.Problem.wrongType(key: "name")),
        (#"{"value": "5"}"#, .wrongType(key: "value")),
        (#"{"value": [1]}"#, .wrongType(key: "value")),
        // The first wrong key in the order request_id, conversation_id, name, value, user, feedback_token.
        (#"{"user": 1, "name": 2}"#, .wrongType(key: "name")),
        (#"{"user": "a", "name": "csat", "user": "b"}"#, .repeatedKey("user")),
        ("[]", .notAnObject), ("null", .notAnObject),
    ])
    func refusals(text: String, problem: FeedbackBody.Problem) {
        #expect(throws: problem) { try FeedbackBody.parse(Array(text.utf8)) }
    }

    /// Invalid JSON says where and why (the chat endpoints do too), so a client can find its mistake.
    @Test(arguments: [
        ("", 0), ("{not json", 1), (#"{"value": 1e400}"#, 10), (#"{"name": "\ud800"}"#, 10),
        (String(repeating: "[", count: 600), 512),
    ])
    func invalidJSONSaysWhere(text: String, offset: Int) {
        do {
            _ = try FeedbackBody.parse(Array(text.utf8))
            Issue.record("accepted \(text.prefix(20))")
        } catch {
            guard case .invalidJSON(let at, let message) = error else { Issue.record("\(error)"); return }
            #expect(at == offset, "\(message)")
            #expect(!message.isEmpty)
        }
    }
}
