/// An event with owned fields: what the simulator (and later the gateway) produces.
public struct EventRecord: Sendable, Equatable {
    public var kind: EventKind
    /// Microseconds since 1970-01-01T00:00:00Z.
    public var timestamp: Int64
    public var experiment: String
    public var variant: String = ""
    public var userID: String = ""
    public var conversationID: String = ""
    public var requestID: String = ""
    public var latencyMs: Double?
    public var ttftMs: Double?
    public var inputTokens: Int?
    public var outputTokens: Int?
    public var status: String = "ok"
    public var name: String = ""
    public var value: Double = 0
    /// A QA request an admin forced into a variant: stored and exported, but left out of the analysis.
    public var qa: Bool = false
    /// A request answered without token usage (an upstream that reports none, e.g. in streams): its missing
    /// counts are unknown, not zero.
    public var usageMissing: Bool = false
    /// Content logging: the conversation's text, when the gateway records it (the analysis ignores it).
    public var prompt: String?
    public var response: String?
    /// Content logging of chat requests: the client's `messages` array as compact JSON text (roles, the system
    /// message and content parts kept), written into the line as it is, so it must be a valid JSON array.
    public var messages: String?

    public init(kind: EventKind, timestamp: Int64, experiment: String) {
        self.kind = kind
        self.timestamp = timestamp
        self.experiment = experiment
    }

    /// The event as one line of the log format (no trailing newline).
    public func jsonLine() -> String {
        var s = "{\"event\":\"" + (kind == .request ? "request" : "feedback") + "\",\"ts\":\"" + formatTimestamp(timestamp) + "\""
        s += ",\"experiment\":" + JSONWriter.quote(experiment)
        if kind == .request { s += ",\"variant\":" + JSONWriter.quote(variant) }
        if !userID.isEmpty { s += ",\"user_id\":" + JSONWriter.quote(userID) }
        if !conversationID.isEmpty { s += ",\"conversation_id\":" + JSONWriter.quote(conversationID) }
        if !requestID.isEmpty { s += ",\"request_id\":" + JSONWriter.quote(requestID) }
        switch kind {
        case .request:
            if let latencyMs { s += ",\"latency_ms\":" + JSONWriter.number(latencyMs) }
            if let ttftMs { s += ",\"ttft_ms\":" + JSONWriter.number(ttftMs) }
            if let inputTokens { s += ",\"input_tokens\":" + String(inputTokens) }
            if let outputTokens { s += ",\"output_tokens\":" + String(outputTokens) }
            s += ",\"status\":" + JSONWriter.quote(status)
            if usageMissing { s += ",\"usage_missing\":true" }
        case .feedback:
            s += ",\"name\":" + JSONWriter.quote(name) + ",\"value\":" + JSONWriter.number(value)
        }
        if qa { s += ",\"qa\":true" }
        if let prompt { s += ",\"prompt\":" + JSONWriter.quote(prompt) }
        if let messages { s += ",\"messages\":" + messages }
        if let response { s += ",\"response\":" + JSONWriter.quote(response) }
        return s + "}"
    }

    /// Calls `body` with a view of this event, as the parser would produce it.
    public func withView<R>(_ body: (EventView) throws -> R) rethrows -> R {
        var experiment = self.experiment, variant = self.variant, user = userID
        var conversation = conversationID.isEmpty && kind == .request ? requestID : conversationID
        var request = requestID, status = self.status, name = self.name
        var messages = self.messages ?? "", prompt = self.prompt ?? "", response = self.response ?? ""
        return try experiment.withUTF8 { e in try variant.withUTF8 { v in try user.withUTF8 { u in
            try conversation.withUTF8 { c in try request.withUTF8 { r in try status.withUTF8 { st in try name.withUTF8 { n in
            try messages.withUTF8 { m in try prompt.withUTF8 { p in try response.withUTF8 { a in
                var view = EventView()
                view.kind = kind
                view.timestamp = timestamp
                view.experiment = UnsafeRawBufferPointer(e)
                view.variant = UnsafeRawBufferPointer(v)
                view.userID = UnsafeRawBufferPointer(u)
                view.conversationID = UnsafeRawBufferPointer(c)
                view.requestID = UnsafeRawBufferPointer(r)
                view.latencyMs = latencyMs ?? .nan
                view.ttftMs = ttftMs ?? .nan
                view.inputTokens = inputTokens.map(Double.init) ?? .nan
                view.outputTokens = outputTokens.map(Double.init) ?? .nan
                view.status = UnsafeRawBufferPointer(st)
                view.name = UnsafeRawBufferPointer(n)
                view.value = value
                view.qa = qa
                view.messages = UnsafeRawBufferPointer(m)
                view.prompt = UnsafeRawBufferPointer(p)
                view.response = UnsafeRawBufferPointer(a)
                return try body(view)
            } } } } } } } } }
        }
    }
}
