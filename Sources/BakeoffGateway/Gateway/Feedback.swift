import BakeoffCore
import BakeoffStore
import Foundation
import Synchronization
import BakeoffHTTP

/// The body of `POST /v1/feedback`.
struct FeedbackBody: Decodable {
    var requestID: String?
    var conversationID: String?
    var name: String?
    var value: FeedbackValue?
    /// The user the feedback comes from: it must be the request's or conversation's user.
    var user: String?
    /// Instead of the user: the `x-bakeoff-feedback-token` of the response it is about.
    var feedbackToken: String?

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id", conversationID = "conversation_id", name, value, user, feedbackToken = "feedback_token"
    }
}

/// A feedback value: a number, or true/false (1/0).
struct FeedbackValue: Decodable {
    var number: Double
    /// Sent as true or false (which only yes/no metrics take).
    var isBoolean = false
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { number = b ? 1 : 0; isBoolean = true; return }
        number = try c.decode(Double.self)
    }
}

extension FeedbackBody {
    /// The body of a feedback request, or the 400 to answer.
    static func decode(_ bytes: [UInt8]) throws(OpenAIError) -> FeedbackBody {
        func bad(_ message: String, param: String? = nil) -> OpenAIError {
            OpenAIError(status: 400, message: message, type: "invalid_request_error", code: "invalid_feedback", param: param)
        }
        do {
            return try JSONDecoder().decode(FeedbackBody.self, from: Data(bytes))
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw bad("feedback \"\(path)\" has the wrong type: \(path == "value" ? "a number or true/false" : "a string") is expected", param: path)
        } catch {
            throw bad(bytes.isEmpty
                ? "the feedback body is empty: send {\"request_id\": ..., \"user\": ..., \"name\": ..., \"value\": ...}"
                : "the feedback body must be one JSON object such as {\"request_id\": ..., \"user\": ..., \"name\": ..., \"value\": ...} (valid JSON, numbers within the range of a double)")
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
