import BakeoffCore
import BakeoffHTTP
import BakeoffStore

/// What feedback is about: one request, or a conversation as a whole.
package enum FeedbackTarget: Equatable, Sendable {
    case request(String)
    case conversation(String)
}

/// The config's rules for feedback, fixed at start.
package struct FeedbackRules: Sendable {
    package let config: GatewayConfig
    /// Per experiment, the feedback names its metrics read (the others are counted as "other" in /metrics).
    package let namesRead: [String: Set<String>]

    package init(config: GatewayConfig) {
        self.config = config
        namesRead = Dictionary(uniqueKeysWithValues: config.experiments.map { experiment in
            (experiment.name, Set(experiment.analysis.metrics.compactMap { metric -> String? in
                if case .feedback(let name) = metric.source { return name }
                return nil
            }))
        })
    }
}

/// How many feedback events the store holds for a ledger key: the count for `name`, or (for the names no
/// metric reads, which share one allowance) the count of all names less those of `namesRead`.
package struct StoredFeedbackCount: Equatable, Sendable {
    package var target: FeedbackTarget
    package var name: String?
    package var namesRead: [String]

    package init(target: FeedbackTarget, name: String?, namesRead: [String]) {
        self.target = target
        self.name = name
        self.namesRead = namesRead
    }

    /// The count, with `count(target, name)` giving the store's count for one name ("" for all).
    package func evaluate(_ count: (FeedbackTarget, String) -> Int) -> Int {
        if let name { return count(target, name) }
        return count(target, "") - namesRead.reduce(0) { $0 + count(target, $1) }
    }
}

/// Feedback that passed every check: what to write, what to answer, and its place under the cap.
package struct FeedbackAdmission: Sendable {
    /// The cap's key (`FeedbackLedger`): the target and the name (or "" for names no metric reads).
    package var ledgerKey: String
    /// What the store holds for that key, for a key the ledger has not seen.
    package var stored: StoredFeedbackCount
    /// 429, when the cap is reached.
    package var limitRefusal: OpenAIError
    package var event: EventRecord
    /// The 200 answer, once the event is committed.
    package var reply: String
    /// The name /metrics counts it under ("other" for names no metric reads).
    package var metricName: String

    /// 503 with Retry-After: the store did not commit the event.
    package static func storeFailure(_ error: any Error) -> (error: OpenAIError, headers: [(String, String)]) {
        (OpenAIError(status: 503, message: "feedback not recorded: \(error); retry the request", type: "server_error", code: "store_unavailable"), [("Retry-After", "1")])
    }
}

/// The checks of `POST /v1/feedback`, as steps without I/O: each takes what the gateway looked up and says
/// what to look up next, or the error to answer, or what to write.
///
/// 1. `tokenRequestID`: the request a feedback token names, to look up.
/// 2. `target(signed:...)`: the token and the client key checked, the name and value present: the target to
///    look up.
/// 3. `admit(_:now:)`: the target found (or not), the sender its user (token, user or admin key), the value one
///    the experiment's metrics take: the event, the reply and the cap's key.
///
/// Feedback must come from the request's user (the body's `user` or the user header, or the response's
/// signed feedback token, or the admin key), and is capped per target and name.
package struct FeedbackDecision {
    package let rules: FeedbackRules
    let body: FeedbackBody
    /// The response's feedback token (body `feedback_token` or the x-bakeoff-feedback-token header).
    package let token: String?
    /// Nil when the request carries a client key (or none is needed), else the 401 to answer without a valid token.
    package let clientRefusal: OpenAIError?
    package let isAdmin: Bool
    package let headerUser: String?
    /// After step 2: the token's request, and what its check found (nil: valid; nil outside: no token).
    private(set) var signed: RequestInfo?
    private(set) var tokenFailure: FeedbackTokenSigner.Failure??
    private(set) var name = ""
    private(set) var value = 0.0

    /// The body read (the 400 to answer when it cannot be), and what the request says of its sender.
    package static func read(_ request: HTTPRequest, rules: FeedbackRules, access: AccessCheck) -> Result<FeedbackDecision, OpenAIError> {
        do {
            return .success(FeedbackDecision(body: try FeedbackBody.decode(request.body), request: request, rules: rules, access: access))
        } catch {
            return .failure(error)
        }
    }

    init(body: FeedbackBody, request: HTTPRequest, rules: FeedbackRules, access: AccessCheck) {
        self.rules = rules
        self.body = body
        token = (body.feedbackToken ?? request.header("x-bakeoff-feedback-token")).flatMap { $0.isEmpty ? nil : $0 }
        clientRefusal = access.isClient(request) ? nil : access.clientRefusal(request)
        isAdmin = access.isAdmin(request)
        headerUser = request.header(rules.config.userHeader).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// 400 `invalid_feedback`.
    package static func bad(_ message: String, param: String? = nil) -> OpenAIError {
        OpenAIError(status: 400, message: message, type: "invalid_request_error", code: "invalid_feedback", param: param)
    }

    /// Step 1: the request the token names (nil without a token, or for one that names none).
    package var tokenRequestID: String? { token.flatMap(FeedbackTokenSigner.requestID(of:)) }

    /// Step 2: with the token's request looked up (`signed`) and the time (seconds since 1970): the target
    /// to look up, or why not.
    package mutating func target(signed: RequestInfo?, signer: FeedbackTokenSigner, now: Int64) -> Result<FeedbackTarget, OpenAIError> {
        self.signed = signed
        tokenFailure = token.map { t in
            guard let signed else { return .malformed }
            return signer.verify(t, user: signed.userID, now: now)
        }
        // A browser holds a feedback token, not a client key: a valid token stands in for the key (checked
        // before anything else is looked up, so a made-up token tells an outsider nothing).
        if let clientRefusal {
            guard token != nil, tokenFailure == .some(nil) else { return .failure(clientRefusal) }
        }
        guard let name = body.name, !name.isEmpty else {
            return .failure(Self.bad("feedback needs a \"name\" (task_completed, escalated, csat, thumbs_up or your own)", param: "name"))
        }
        guard Gateway.isFeedbackName(name) else {
            return .failure(Self.bad("feedback \"name\" must be 1 to \(Gateway.maxFeedbackNameBytes) letters, digits, \"_\", \".\" or \"-\"", param: "name"))
        }
        guard let value = body.value?.number else {
            return .failure(Self.bad("feedback needs a \"value\": a number (e.g. CSAT 4) or true/false", param: "value"))
        }
        self.name = name
        self.value = value
        if let id = requestID { return .success(.request(id)) }
        if let id = conversationID { return .success(.conversation(id)) }
        return .failure(Self.bad("feedback needs \"request_id\" (the x-bakeoff-request-id of a response) or \"conversation_id\"", param: "request_id"))
    }

    package var requestID: String? { body.requestID.flatMap { $0.isEmpty ? nil : $0 } }
    package var conversationID: String? { body.conversationID.flatMap { $0.isEmpty ? nil : $0 } }

    /// Step 3: with the target looked up (nil: not found) and the time (microseconds since 1970): the
    /// feedback to write, or why not.
    package func admit(_ found: RequestInfo?, now: Int64) -> Result<FeedbackAdmission, OpenAIError> {
        let config = rules.config
        let onRequest = requestID != nil
        guard let target = found else {
            if let id = requestID {
                return .failure(OpenAIError(status: 404, message: "no request with id \"\(id)\": use the x-bakeoff-request-id header of a response", type: "invalid_request_error", code: "request_not_found", param: "request_id"))
            }
            return .failure(OpenAIError(status: 404, message: "no conversation with id \"\(conversationID ?? "")\": send X-Bakeoff-Conversation with its requests first", type: "invalid_request_error", code: "conversation_not_found", param: "conversation_id"))
        }
        if let refusal = checkSender(target) { return .failure(refusal) }

        // A value the experiment's metrics cannot take would skew or stop its analysis: refuse it here.
        let experiment = config.experiment(named: target.experiment)
        let readers = experiment?.analysis.metrics.filter { $0.source == .feedback(name) } ?? []
        if !onRequest, let perRequest = readers.first(where: { $0.level == .request }) {
            return .failure(Self.bad("feedback \"\(name)\" feeds the per-request metric \(perRequest.name): send the response's \"request_id\", not a conversation_id", param: "request_id"))
        }
        if body.value?.isBoolean == true, let numeric = readers.first(where: { $0.acceptedValues != .yesNo }) {
            return .failure(Self.bad("feedback \"\(name)\" feeds the metric \(numeric.name): \"value\" must be \(numeric.acceptedValues.requirement), not true or false", param: "value"))
        }
        for bounds in (readers.isEmpty ? [ValueBounds.defaultNumeric] : readers.map(\.acceptedValues)) where !bounds.contains(value) {
            let metric = readers.first { $0.acceptedValues == bounds }
            return .failure(Self.bad("feedback \"\(name)\"\(metric.map { " feeds the \($0.kind == .proportion ? "yes/no " : "")metric \($0.name):" } ?? ":") \"value\" must be \(bounds.requirement), got \(JSONWriter.number(value))", param: "value"))
        }

        // One target cannot take feedback without end: each name a metric reads has its own allowance; the
        // names no metric reads share one (so new names cannot add rows without end either).
        let namesRead = experiment.flatMap { rules.namesRead[$0.name] } ?? []
        let bucket = readers.isEmpty ? "" : name
        let ledgerKey = "\(target.experiment)\u{0}\(onRequest ? "r" : "c")\u{0}\(requestID ?? target.conversationID)\u{0}\(bucket)"
        let countTarget: FeedbackTarget = onRequest ? .request(target.requestID) : .conversation(target.conversationID)
        let stored = StoredFeedbackCount(target: countTarget, name: bucket.isEmpty ? nil : bucket, namesRead: namesRead.sorted())
        let kind = readers.isEmpty ? "feedback events of names no metric reads" : "\"\(name)\" feedback events"
        let limitRefusal = OpenAIError(status: 429, message: "\(describe(target)) already has \(config.access.feedbackLimit) \(kind), the most one target takes; the latest one of a name counts in the analysis", type: "rate_limit_error", code: "feedback_limit_reached")

        var event = EventRecord(kind: .feedback, timestamp: now, experiment: target.experiment)
        event.userID = target.userID
        event.conversationID = target.conversationID
        if onRequest { event.requestID = target.requestID }
        event.name = name
        event.value = value
        event.qa = target.qa
        var reply = "{\"status\":\"recorded\",\"experiment\":\(JSONWriter.quote(target.experiment)),"
        if experiment.map(config.exposesVariant) ?? false { reply += "\"variant\":\(JSONWriter.quote(target.variant)),"}
        reply += "\"conversation_id\":\(JSONWriter.quote(target.conversationID)),\"name\":\(JSONWriter.quote(name)),\"value\":\(JSONWriter.number(value))}"
        // Metric labels stay bounded: names no metric uses are counted as "other".
        let metricName = namesRead.contains(name) ? name : "other"
        return .success(FeedbackAdmission(ledgerKey: ledgerKey, stored: stored, limitRefusal: limitRefusal, event: event, reply: reply, metricName: metricName))
    }

    /// `request "ID"` or `conversation "ID"`, for messages.
    private func describe(_ target: RequestInfo) -> String {
        requestID != nil ? "request \"\(target.requestID)\"" : "conversation \"\(target.conversationID)\""
    }

    /// Feedback comes from the user it is about: the token of one of the target's responses, the target's
    /// own id for an anonymous request, the admin key, or the target's user. Nil when it does.
    private func checkSender(_ target: RequestInfo) -> OpenAIError? {
        if let token, let tokenFailure {
            guard FeedbackTokenSigner.requestID(of: token) != nil else {
                return OpenAIError(status: 403, message: "the feedback token is malformed: send the x-bakeoff-feedback-token header of the response as it is", type: "permission_error", code: "invalid_feedback_token")
            }
            // The token's request must be the target itself, or a request of the target conversation.
            guard let signed, signed.experiment == target.experiment,
                  requestID != nil ? signed.requestID == target.requestID : signed.conversationID == target.conversationID else {
                return OpenAIError(status: 403, message: "the feedback token is for another request: send it with feedback on its own request or conversation", type: "permission_error", code: "feedback_token_mismatch")
            }
            switch tokenFailure {
            case nil: return nil
            case .expired:
                return OpenAIError(status: 403, message: "the feedback token has expired (tokens last \(rules.config.access.feedbackTokenLifetimeSeconds / 3600) h)", type: "permission_error", code: "feedback_token_expired")
            case .malformed, .badSignature:
                return OpenAIError(status: 403, message: "the feedback token was not signed by this gateway for this request (was it changed, or signed with another BAKEOFF feedback key?)", type: "permission_error", code: "invalid_feedback_token")
            }
        }
        if requestID != nil && target.userID == target.requestID {
            // An anonymous request (per-request assignment, no user): its id, a 96-bit secret only its caller
            // got, is the proof.
            return nil
        }
        if isAdmin { return nil }
        let userHeader = rules.config.userHeader
        guard let user = body.user.flatMap({ $0.isEmpty ? nil : $0 }) ?? headerUser else {
            return OpenAIError(status: 403, message: "feedback must name its user: send \"user\" (the same as in the request) or the \(userHeader) header, or the response's x-bakeoff-feedback-token as \"feedback_token\"", type: "permission_error", code: "feedback_user_required", param: "user")
        }
        guard constantTimeEqual(user, target.userID) else {
            return OpenAIError(status: 403, message: "feedback on \(describe(target)) must come from its user: \"\(user)\" is not the user of that \(requestID != nil ? "request" : "conversation")", type: "permission_error", code: "feedback_user_mismatch", param: "user")
        }
        return nil
    }
}
