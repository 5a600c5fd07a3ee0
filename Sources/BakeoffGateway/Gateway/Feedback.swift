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
        /// Not one JSON object (or JSON with a number beyond a double).
        case notAnObject
        /// A known key with a value of the wrong type (null is absent).
        case wrongType(key: String)
        /// A key given twice: which one counts would depend on the parser, so neither does.
        case repeatedKey(String)
    }

    /// Reads a body: one JSON object; unknown keys are ignored. A wrong type is reported for the first key in
    /// the order request_id, conversation_id, name, value, user, feedback_token.
    package static func parse(_ bytes: [UInt8]) throws(Problem) -> FeedbackBody {
        guard let document = try? JSONValue.parse(bytes), let object = document.root.object else { throw .notAnObject }
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

    /// Records feedback for a request or conversation; answers 200 only once the event is committed.
    ///
    /// Feedback is checked against what its name means (the experiment's metrics), must come from the
    /// request's user (the body's `user` or the user header, or the response's signed feedback token, or the
    /// admin key), and is capped per target and name.
    func feedback(_ exchange: HTTPExchange) {
        let request = exchange.request
        func bad(_ message: String, param: String? = nil) {
            fail(exchange, OpenAIError(status: 400, message: message, type: "invalid_request_error", code: "invalid_feedback", param: param))
        }
        let body: FeedbackBody
        do throws(FeedbackBody.Problem) {
            body = try FeedbackBody.parse(request.body)
        } catch {
            switch error {
            case .wrongType(let key):
                return bad("feedback \"\(key)\" has the wrong type: \(key == "value" ? "a number or true/false" : "a string") is expected", param: key)
            case .repeatedKey(let key):
                return bad("feedback \"\(key)\" appears twice in the body; send each key once", param: key)
            case .notAnObject:
                return bad(request.body.isEmpty
                    ? "the feedback body is empty: send {\"request_id\": ..., \"user\": ..., \"name\": ..., \"value\": ...}"
                    : "the feedback body must be one JSON object such as {\"request_id\": ..., \"user\": ..., \"name\": ..., \"value\": ...} (valid JSON, numbers within the range of a double)")
            }
        }
        let token = (body.feedbackToken ?? request.header("x-bakeoff-feedback-token")).flatMap { $0.isEmpty ? nil : $0 }
        // The token's request and its check, looked up once: nil request for a token that names none.
        let signed = token.flatMap(FeedbackTokenSigner.requestID(of:)).flatMap { recent.request($0) ?? store.request(id: $0) }
        let tokenFailure: FeedbackTokenSigner.Failure?? = token.map { t in
            guard let signed else { return .malformed }
            return feedbackTokens.verify(t, user: signed.userID, now: WallClock.microseconds() / 1_000_000)
        }
        // A browser holds a feedback token, not a client key: a valid token stands in for the key (checked
        // before anything else is looked up, so a made-up token tells an outsider nothing).
        if !isClient(request) {
            guard token != nil, tokenFailure == .some(nil) else { return fail(exchange, clientRefusal(request)) }
        }
        guard let name = body.name, !name.isEmpty else {
            return bad("feedback needs a \"name\" (task_completed, escalated, csat, thumbs_up or your own)", param: "name")
        }
        guard Self.isFeedbackName(name) else {
            return bad("feedback \"name\" must be 1 to \(Self.maxFeedbackNameBytes) letters, digits, \"_\", \".\" or \"-\"", param: "name")
        }
        guard let value = body.value?.number else {
            return bad("feedback needs a \"value\": a number (e.g. CSAT 4) or true/false", param: "value")
        }
        let requestID = body.requestID.flatMap { $0.isEmpty ? nil : $0 }
        let conversationID = body.conversationID.flatMap { $0.isEmpty ? nil : $0 }
        let target: RecentRequests.Entry
        if let id = requestID {
            guard let t = recent.request(id) ?? store.request(id: id) else {
                return fail(exchange, OpenAIError(status: 404, message: "no request with id \"\(id)\": use the x-bakeoff-request-id header of a response", type: "invalid_request_error", code: "request_not_found", param: "request_id"))
            }
            target = t
        } else if let id = conversationID {
            guard let t = recent.conversation(id) ?? store.latestRequest(conversation: id) else {
                return fail(exchange, OpenAIError(status: 404, message: "no conversation with id \"\(id)\": send X-Bakeoff-Conversation with its requests first", type: "invalid_request_error", code: "conversation_not_found", param: "conversation_id"))
            }
            target = t
        } else {
            return bad("feedback needs \"request_id\" (the x-bakeoff-request-id of a response) or \"conversation_id\"", param: "request_id")
        }
        let what = requestID != nil ? "request \"\(target.requestID)\"" : "conversation \"\(target.conversationID)\""

        // Feedback comes from the user it is about.
        if let token, let tokenFailure {
            guard FeedbackTokenSigner.requestID(of: token) != nil else {
                return fail(exchange, OpenAIError(status: 403, message: "the feedback token is malformed: send the x-bakeoff-feedback-token header of the response as it is", type: "permission_error", code: "invalid_feedback_token"))
            }
            // The token's request must be the target itself, or a request of the target conversation.
            guard let signed, signed.experiment == target.experiment,
                  requestID != nil ? signed.requestID == target.requestID : signed.conversationID == target.conversationID else {
                return fail(exchange, OpenAIError(status: 403, message: "the feedback token is for another request: send it with feedback on its own request or conversation", type: "permission_error", code: "feedback_token_mismatch"))
            }
            switch tokenFailure {
            case nil: break
            case .expired:
                return fail(exchange, OpenAIError(status: 403, message: "the feedback token has expired (tokens last \(config.access.feedbackTokenLifetimeSeconds / 3600) h)", type: "permission_error", code: "feedback_token_expired"))
            case .malformed, .badSignature:
                return fail(exchange, OpenAIError(status: 403, message: "the feedback token was not signed by this gateway for this request (was it changed, or signed with another BAKEOFF feedback key?)", type: "permission_error", code: "invalid_feedback_token"))
            }
        } else if requestID != nil && target.userID == target.requestID {
            // An anonymous request (per-request assignment, no user): its id, a 96-bit secret only its caller
            // got, is the proof.
        } else if !isAdmin(request) {
            let bodyUser = body.user.flatMap { $0.isEmpty ? nil : $0 }
            guard let user = bodyUser ?? request.header(config.userHeader).flatMap({ $0.isEmpty ? nil : $0 }) else {
                return fail(exchange, OpenAIError(status: 403, message: "feedback must name its user: send \"user\" (the same as in the request) or the \(config.userHeader) header, or the response's x-bakeoff-feedback-token as \"feedback_token\"", type: "permission_error", code: "feedback_user_required", param: "user"))
            }
            guard constantTimeEqual(user, target.userID) else {
                return fail(exchange, OpenAIError(status: 403, message: "feedback on \(what) must come from its user: \"\(user)\" is not the user of that \(requestID != nil ? "request" : "conversation")", type: "permission_error", code: "feedback_user_mismatch", param: "user"))
            }
        }

        // A value the experiment's metrics cannot take would skew or stop its analysis: refuse it here.
        let experiment = config.experiment(named: target.experiment)
        let readers = experiment?.analysis.metrics.filter { $0.source == .feedback(name) } ?? []
        if requestID == nil, let perRequest = readers.first(where: { $0.level == .request }) {
            return bad("feedback \"\(name)\" feeds the per-request metric \(perRequest.name): send the response's \"request_id\", not a conversation_id", param: "request_id")
        }
        if body.value?.isBoolean == true, let numeric = readers.first(where: { $0.acceptedValues != .yesNo }) {
            return bad("feedback \"\(name)\" feeds the metric \(numeric.name): \"value\" must be \(numeric.acceptedValues.requirement), not true or false", param: "value")
        }
        for bounds in (readers.isEmpty ? [ValueBounds.defaultNumeric] : readers.map(\.acceptedValues)) where !bounds.contains(value) {
            let metric = readers.first { $0.acceptedValues == bounds }
            return bad("feedback \"\(name)\"\(metric.map { " feeds the \($0.kind == .proportion ? "yes/no " : "")metric \($0.name):" } ?? ":") \"value\" must be \(bounds.requirement), got \(JSONWriter.number(value))", param: "value")
        }

        // One target cannot take feedback without end: each name a metric reads has its own allowance; the
        // names no metric reads share one (so new names cannot add rows without end either).
        let bucket = readers.isEmpty ? "" : name
        let ledgerKey = "\(target.experiment)\u{0}\(requestID != nil ? "r" : "c")\u{0}\(requestID ?? target.conversationID)\u{0}\(bucket)"
        let admitted = feedbackLedger.take(ledgerKey) {
            func stored(_ name: String) -> Int {
                requestID != nil ? store.feedbackCount(requestID: target.requestID, name: name)
                    : store.feedbackCount(conversationID: target.conversationID, name: name)
            }
            guard bucket.isEmpty else { return stored(bucket) }
            // All names, less those metrics read.
            return stored("") - (experiment.flatMap { feedbackNames[$0.name] } ?? []).reduce(0) { $0 + stored($1) }
        }
        guard admitted else {
            let kind = readers.isEmpty ? "feedback events of names no metric reads" : "\"\(name)\" feedback events"
            return fail(exchange, OpenAIError(status: 429, message: "\(what) already has \(config.access.feedbackLimit) \(kind), the most one target takes; the latest one of a name counts in the analysis", type: "rate_limit_error", code: "feedback_limit_reached"))
        }

        var event = EventRecord(kind: .feedback, timestamp: WallClock.microseconds(), experiment: target.experiment)
        event.userID = target.userID
        event.conversationID = target.conversationID
        if requestID != nil { event.requestID = target.requestID }
        event.name = name
        event.value = value
        event.qa = target.qa
        // Metric labels stay bounded: names no metric uses are counted as "other".
        let label = (experiment.flatMap { feedbackNames[$0.name] } ?? []).contains(name) ? name : "other"
        var reply = "{\"status\":\"recorded\",\"experiment\":\(JSONWriter.quote(target.experiment)),"
        if experiment.map(config.exposesVariant) ?? false { reply += "\"variant\":\(JSONWriter.quote(target.variant)),"}
        reply += "\"conversation_id\":\(JSONWriter.quote(target.conversationID)),\"name\":\(JSONWriter.quote(name)),\"value\":\(JSONWriter.number(value))}"
        store.appendDurably(event) { [self, reply] error in
            if let error {
                feedbackLedger.giveBack(ledgerKey)
                fail(exchange, OpenAIError(status: 503, message: "feedback not recorded: \(error); retry the request", type: "server_error", code: "store_unavailable"), headers: [("Retry-After", "1")])
            } else {
                metrics.recordFeedback(experiment: target.experiment, name: label)
                respondJSON(exchange, 200, reply)
            }
        }
    }
}
