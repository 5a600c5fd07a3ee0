import BakeoffCore
import BakeoffHTTP
import BakeoffStore

/// Who a model request is for and which variant serves it: the first step of `ProxyDecision`.
package struct ProxyAssignment: Sendable {
    package var client: ClientRequest
    package var experiment: GatewayExperiment
    package var variantIndex: Int
    /// The user the request names (body `user`, `safety_identifier`, then the user header), if any.
    package var user: String?
    /// Forced into its variant by the admin key (X-Bakeoff-Force-Variant).
    package var qa: Bool
    /// The conversation the client named (X-Bakeoff-Conversation), if any.
    package var namedConversation: String?
    /// The named conversation, or the request's own id.
    package var conversation: String

    package var variant: GatewayVariant { experiment.variants[variantIndex] }
    /// The owner a conversation of this request has: its user, or "" without one.
    package var owner: String { user ?? "" }
}

/// What the gateway does with a model request: send it upstream, with the event it will write and the
/// headers the client gets.
package struct ProxyPlan: Sendable {
    package var upstream: UpstreamRequest
    /// The request's event so far (the answer fills in status, latency, tokens).
    package var record: EventRecord
    /// What feedback finds of the request before the store has it.
    package var entry: RequestInfo
    /// Whether the request names its conversation (and so claims it for its user).
    package var claimsConversation: Bool
    /// How the answer is relayed.
    package var reply: UpstreamReply.Context
}

/// The decisions on a model request, as pure functions: the request, the config and what was looked up in,
/// a refusal or a plan out.
package enum ProxyDecision {
    /// User and conversation ids longer than this are refused: they are kept in memory and in every event.
    package static let maxIDBytes = 512

    /// Step 1: the client key, the body, the experiment, the user and the variant, the conversation.
    /// `draw` gives a uniform number in [0, 1) for per-request assignment (called only then).
    package static func assign(_ request: HTTPRequest, endpoint: Endpoint, config: GatewayConfig, access: AccessCheck,
                       requestID: String, draw: () -> Double) -> Result<ProxyAssignment, OpenAIError> {
        guard access.isClient(request) else { return .failure(access.clientRefusal(request)) }
        let client: ClientRequest
        do { client = try ClientRequest.parse(request.body, endpoint: endpoint) } catch { return .failure(error) }
        guard let experiment = config.experiment(forModel: client.model) else {
            let aliases = config.experiments.map(\.model).joined(separator: ", ")
            return .failure(OpenAIError(status: 404, message: "The model `\(client.model)` does not exist on this gateway (models: \(aliases))", type: "invalid_request_error", code: "model_not_found", param: "model"))
        }
        // The body's "user" wins, then "safety_identifier" (OpenAI's successor of "user"), then the header.
        let bodyUser = client.user.flatMap { $0.isEmpty ? nil : $0 }
        let safetyUser = client.safetyIdentifier.flatMap { $0.isEmpty ? nil : $0 }
        let headerUser = request.header(config.userHeader).flatMap { $0.isEmpty ? nil : $0 }
        let user = bodyUser ?? safetyUser ?? headerUser
        if let user, user.utf8.count > maxIDBytes {
            return .failure(OpenAIError(status: 400, message: "the user id is \(user.utf8.count) bytes; at most \(maxIDBytes) are allowed", type: "invalid_request_error", code: "user_too_long", param: bodyUser != nil ? "user" : safetyUser != nil ? "safety_identifier" : nil))
        }
        var variantIndex: Int
        if let user {
            variantIndex = experiment.assigner.armIndex(for: user)
        } else if experiment.perRequestAssignment {
            variantIndex = experiment.allocation.armIndex(forNormalized: draw())
        } else {
            return .failure(OpenAIError(status: 400, message: "no user to assign: send the OpenAI \"user\" (or \"safety_identifier\") field or the \(config.userHeader) header (experiment \(experiment.name) assigns per user). LiteLLM's SDK drops user= for model names outside OpenAI's catalogue: pass safety_identifier=, extra_headers={\"\(config.userHeader)\": ...} or allowed_openai_params=[\"user\"]", type: "invalid_request_error", code: "user_required", param: "user"))
        }
        var qa = false
        if let forced = request.header("x-bakeoff-force-variant") {
            guard access.isAdmin(request) else { return .failure(access.adminRefusal()) }
            guard let i = experiment.variants.firstIndex(where: { $0.name == forced }) else {
                return .failure(OpenAIError(status: 400, message: "X-Bakeoff-Force-Variant: no variant \"\(forced)\" in \(experiment.name) (variants: \(experiment.variants.map(\.name).joined(separator: ", ")))", type: "invalid_request_error", code: "unknown_variant"))
            }
            variantIndex = i
            qa = true
        }
        let namedConversation = request.header("x-bakeoff-conversation").flatMap { $0.isEmpty ? nil : $0 }
        let conversation = namedConversation ?? requestID
        guard conversation.utf8.count <= maxIDBytes else {
            return .failure(OpenAIError(status: 400, message: "X-Bakeoff-Conversation is \(conversation.utf8.count) bytes; at most \(maxIDBytes) are allowed", type: "invalid_request_error", code: "conversation_too_long"))
        }
        return .success(ProxyAssignment(client: client, experiment: experiment, variantIndex: variantIndex, user: user, qa: qa,
                                        namedConversation: namedConversation, conversation: conversation))
    }

    /// Step 2, for a named conversation the gateway has not seen lately: whether the request may join it,
    /// given the owner of its latest stored request (nil: none stored).
    ///
    /// A conversation belongs to the user who first used it: another user's request naming it would mix
    /// two users' turns and feedback (and let one user's feedback land on another's conversation).
    /// Requests without a user count as one anonymous owner, who cannot join a named user's conversation.
    package static func join(_ assignment: ProxyAssignment, storedOwner: String?) -> OpenAIError? {
        guard assignment.namedConversation != nil, let storedOwner, storedOwner != assignment.owner else { return nil }
        return conversationConflict(assignment.conversation)
    }

    /// 409: the conversation is another user's.
    package static func conversationConflict(_ conversation: String) -> OpenAIError {
        OpenAIError(status: 409, message: "conversation \"\(conversation)\" belongs to another user: each user needs conversation ids of their own (X-Bakeoff-Conversation)", type: "invalid_request_error", code: "conversation_of_another_user")
    }

    /// Step 3: the upstream request (the body rewritten for the variant), the event, the client's headers.
    /// `trace`: how the request joins a trace (its headers go upstream; a recorded span reads the answer's id,
    /// model and finish reasons).
    package static func plan(_ a: ProxyAssignment, endpoint: Endpoint, config: GatewayConfig, requestID: String,
                     wallClock: Int64, started: UInt64, tokens: FeedbackTokenSigner, trace: RequestTrace? = nil) -> ProxyPlan {
        let variant = a.variant
        let client = a.client
        var upstream = upstreamRequest(client, variant: variant, endpoint: endpoint)
        upstream.headers += trace?.upstreamHeaders ?? []
        var record = EventRecord(kind: .request, timestamp: wallClock, experiment: a.experiment.name)
        record.variant = variant.name
        record.userID = a.user ?? requestID
        record.conversationID = a.conversation
        record.requestID = requestID
        record.qa = a.qa
        let logContent = a.experiment.logContent
        if logContent { record.prompt = client.promptText() }
        if logContent { record.messages = client.messagesJSON() }
        let entry = RequestInfo(experiment: a.experiment.name, variant: variant.name, userID: record.userID,
                                         conversationID: a.conversation, requestID: requestID, qa: a.qa)
        var responseHeaders = [("x-bakeoff-experiment", a.experiment.name)]
        if config.exposesVariant(a.experiment) { responseHeaders.append(("x-bakeoff-variant", variant.name)) }
        responseHeaders.append(("x-bakeoff-request-id", requestID))
        responseHeaders.append(("x-bakeoff-feedback-token", tokens.token(requestID: requestID, user: record.userID, now: wallClock / 1_000_000)))
        let reply = UpstreamReply.Context(endpoint: endpoint, stream: client.stream, clientWantsUsage: client.clientWantsUsage,
                                          logContent: logContent, responseHeaders: responseHeaders, started: started,
                                          budgetLimit: config.limits.memoryBudgetBytes, record: record,
                                          readsResponseFacts: trace?.recorded ?? false)
        return ProxyPlan(upstream: upstream, record: record, entry: entry, claimsConversation: a.namedConversation != nil, reply: reply)
    }

    /// The request a variant's upstream gets for a client's request: the body rewritten for the variant (its
    /// model, system prompt and parameters; usage asked for on streams), its key and headers. `bakeoff eval`
    /// sends its requests through here too, so what was tested offline is exactly what goes live.
    package static func upstreamRequest(_ client: ClientRequest, variant: GatewayVariant, endpoint: Endpoint) -> UpstreamRequest {
        let body = client.upstreamBody(model: variant.upstream.model, systemPrompt: variant.systemPrompt, parameters: variant.parameters, forceUsage: client.stream)
        var headers = ["Content-Type: application/json"]
        if let key = variant.upstream.apiKey { headers.append("Authorization: Bearer \(key)") }
        for h in variant.upstream.headers { headers.append("\(h.name): \(h.value)") }
        if client.stream { headers.append("Accept: text/event-stream") }
        // Rate-limit headers (retry-after, x-ratelimit-*) go back to the client, whose SDK backs off by them.
        var request = UpstreamRequest(url: variant.upstream.url(endpoint == .chatCompletions ? "/chat/completions" : "/completions"),
                                      headers: headers, body: body, timeoutMs: variant.upstream.timeoutMs,
                                      connectTimeoutMs: variant.upstream.connectTimeoutMs, capturesHeaders: true)
        request.caFile = variant.upstream.tls?.caFile
        return request
    }
}
