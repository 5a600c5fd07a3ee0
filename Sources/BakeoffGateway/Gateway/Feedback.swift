import BakeoffCore
import BakeoffStore
import Foundation
import Synchronization
import BakeoffHTTP

/// The body of `POST /v1/feedback`.
package struct FeedbackBody: Sendable, Equatable {
    package var requestID: String?
    package var conversationID: String?
    package var name: String?
    package var value: FeedbackValue?
    /// The user the feedback comes from: it must be the request's or conversation's user.
    package var user: String?
    /// Instead of the user: the `x-bakeoff-feedback-token` of the response it is about.
    package var feedbackToken: String?

    package init(requestID: String? = nil, conversationID: String? = nil, name: String? = nil, value: FeedbackValue? = nil,
                 user: String? = nil, feedbackToken: String? = nil) {
        self.requestID = requestID
        self.conversationID = conversationID
        self.name = name
        self.value = value
        self.user = user
        self.feedbackToken = feedbackToken
    }

    /// Why a body cannot be read.
    package enum Problem: Error, Equatable {
        /// Not one JSON object (but valid JSON).
        case notAnObject
        /// Not valid JSON: where and why (a number beyond a double, invalid UTF-8, nesting too deep...).
        case invalidJSON(offset: Int, message: String)
        /// A known key with a value of the wrong type (null is absent).
        case wrongType(key: String)
        /// A key given twice: which one counts would depend on the parser, so neither does.
        case repeatedKey(String)
    }

    /// Reads a body: one JSON object; unknown keys are ignored. A wrong type is reported for the first key in
    /// the order request_id, conversation_id, name, value, user, feedback_token.
    package static func parse(_ bytes: [UInt8]) throws(Problem) -> FeedbackBody {
        let document: JSONDocument
        do throws(JSONSyntaxError) { document = try JSONValue.parse(bytes) } catch {
            throw .invalidJSON(offset: error.offset, message: error.message)
        }
        guard let object = document.root.object else { throw .notAnObject }
        if let repeated = object.repeatedMembers.first { throw .repeatedKey(repeated.key) }
        func string(_ key: String) throws(Problem) -> String? {
            guard let v = object[key], !v.isNull else { return nil }
            guard let s = v.string else { throw .wrongType(key: key) }
            return s
        }
        var body = FeedbackBody()
        body.requestID = try string("request_id")
        body.conversationID = try string("conversation_id")
        body.name = try string("name")
        if let v = object["value"], !v.isNull {
            if let b = v.bool {
                body.value = FeedbackValue(number: b ? 1 : 0, isBoolean: true)
            } else if let n = v.number {
                body.value = FeedbackValue(number: n)
            } else {
                throw .wrongType(key: "value")
            }
        }
        body.user = try string("user")
        body.feedbackToken = try string("feedback_token")
        return body
    }
}

/// A feedback value: a number, or true/false (1/0).
package struct FeedbackValue: Sendable, Equatable {
    package var number: Double
    /// Sent as true or false (which only yes/no metrics take).
    package var isBoolean = false

    package init(number: Double, isBoolean: Bool = false) {
        self.number = number
        self.isBoolean = isBoolean
    }
}

extension FeedbackBody {
    /// The body of a feedback request, or the 400 to answer.
    static func decode(_ bytes: [UInt8]) throws(OpenAIError) -> FeedbackBody {
        func bad(_ message: String, param: String? = nil) -> OpenAIError {
            OpenAIError(status: 400, message: message, type: "invalid_request_error", code: "invalid_feedback", param: param)
        }
        do throws(Problem) {
            return try parse(bytes)
        } catch {
            switch error {
            case .wrongType(let key):
                throw bad("feedback \"\(key)\" has the wrong type: \(key == "value" ? "a number or true/false" : "a string") is expected", param: key)
            case .repeatedKey(let key):
                throw bad("feedback \"\(key)\" appears twice in the body; send each key once", param: key)
            case .invalidJSON(let offset, let message) where !bytes.isEmpty:
                throw bad("the feedback body is not valid JSON: \(message) at byte \(offset)")
            case .notAnObject, .invalidJSON:
                throw bad(bytes.isEmpty
                    ? "the feedback body is empty: send {\"request_id\": ..., \"user\": ..., \"name\": ..., \"value\": ...}"
                    : "the feedback body must be one JSON object such as {\"request_id\": ..., \"user\": ..., \"name\": ..., \"value\": ...} (valid JSON, numbers within the range of a double)")
            }
        }
    }
}

/// Feedback accepted per target (request or conversation) and name, so one valid id cannot add rows without
/// end. A key's count starts from what the store holds the first time it is seen; accepted feedback counts
/// at once (a failed commit gives its place back).
package final class FeedbackLedger: Sendable {
    let limit: Int
    /// Keys kept before the ledger starts afresh (counts are then read from the store again).
    static let capacity = 1 << 20
    private let counts = Mutex<[String: Int]>([:])

    package init(limit: Int) { self.limit = limit }

    /// Takes a place for one more feedback on `key`; false when the limit is reached. `stored` gives the
    /// committed count when the key is new here.
    package func take(_ key: String, stored: () -> Int) -> Bool {
        if let taken = counts.withLock({ c -> Bool? in
            guard let n = c[key] else { return nil }
            guard n < limit else { return false }
            c[key] = n + 1
            return true
        }) { return taken }
        let committed = stored()
        return counts.withLock { c in
            if c.count >= Self.capacity { c.removeAll(keepingCapacity: true) }
            let n = max(c[key] ?? 0, committed)
            guard n < limit else { c[key] = n; return false }
            c[key] = n + 1
            return true
        }
    }

    package func giveBack(_ key: String) {
        counts.withLock { c in if let n = c[key], n > 0 { c[key] = n - 1 } }
    }
}

extension Gateway {
    /// Feedback names: letters, digits, `_`, `.` and `-`, at most this many bytes.
    static let maxFeedbackNameBytes = 64

    package static func isFeedbackName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= maxFeedbackNameBytes && name.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D
        }
    }
}
