import BakeoffCore
import BakeoffHTTP

/// What the gateway needs to know of a client's request body; `parse` validates that the body is one JSON
/// object with the fields the endpoint requires.
///
/// The body is kept as received: `upstreamBody` makes exact, minimal edits to it (numbers, whitespace and escapes
/// elsewhere are never rewritten).
public struct ClientRequest: Sendable {
    public var endpoint: Endpoint
    /// The model alias the client asked for: a non-empty string.
    public var model: String
    /// The `user` field, when it is a string.
    public var user: String?
    /// The `safety_identifier` field (OpenAI's successor of `user`, which LiteLLM's SDK sends instead), when
    /// it is a string.
    public var safetyIdentifier: String?
    /// `"stream": true`.
    public var stream: Bool
    /// `stream_options.include_usage == true`.
    public var clientWantsUsage: Bool

    /// The body as received.
    public let body: [UInt8]
    /// Top-level members in order, duplicates included.
    let members: [Member]

    struct Member: Sendable {
        var key: Range<Int>
        var keyEscaped: Bool
        var value: Range<Int>
        var field: Field
    }

    enum Field: UInt8, Sendable {
        case other, model, messages, prompt, stream, streamOptions, user, safetyIdentifier
    }

    /// Keys that `upstreamBody`'s `parameters` may not set: the gateway itself controls them.
    public static let reservedParameterKeys: Set<String> = ["model", "messages", "prompt", "stream", "stream_options"]

    // MARK: Parsing

    /// Validates `body` and extracts what the gateway needs. Throws a 400 with a precise message.
    ///
    /// Duplicate top-level keys are allowed and the last one wins (as in most JSON parsers). `null` is accepted
    /// for the optional `user`, `stream`, `stream_options` and `prompt` and means absent.
    public static func parse(_ body: [UInt8], endpoint: Endpoint) throws(OpenAIError) -> ClientRequest {
        let parsed: Result<ClientRequest, OpenAIError> = body.withUnsafeBytes { raw in
            guard var s = JSONCursor.openAI(raw) else { return .failure(.badRequest("request body is empty")) }
            do throws(JSONError) {
                return try parse(&s, body: body, endpoint: endpoint)
            } catch {
                return .failure(.badRequest("request body is not valid JSON: \(error.protocolMessage(s))"))
            }
        }
        return try parsed.get()
    }

    /// Syntax errors are thrown; problems with fields are returned as the failure (syntax comes first).
    private static func parse(_ s: inout JSONCursor, body: [UInt8], endpoint: Endpoint) throws(JSONError) -> Result<ClientRequest, OpenAIError> {
        s.skipSpace()
        if s.atEnd { return .failure(.badRequest("request body is empty")) }
        let first = s.byte(s.pos)
        guard first == 0x7B else {
            try s.skipValue(depth: 0)
            s.skipSpace()
            if !s.atEnd { throw JSONError(.trailingData, offset: s.pos) }
            return .failure(.badRequest("request body must be a JSON object, got \(JSONCursor.kind(first))"))
        }
        s.pos += 1
        var members: [Member] = []
        members.reserveCapacity(12)
        // The last occurrence of each field decides; a problem with it is kept until the whole body is read.
        var model: String?, modelProblem: OpenAIError? = .badRequest("'model' is required", param: "model")
        var user: String?, userProblem: OpenAIError?
        var safetyIdentifier: String?, safetyProblem: OpenAIError?
        var stream = false, streamProblem: OpenAIError?
        var wantsUsage = false, optionsProblem: OpenAIError?
        var messagesProblem: OpenAIError? = endpoint == .chatCompletions ? .badRequest("'messages' is required", param: "messages") : nil
        var promptProblem: OpenAIError?

        var firstMember = true
        while try s.nextItem(&firstMember, close: 0x7D) {
            let key = try s.scanKey()
            let field = classify(key, s)
            let valueStart = s.pos
            let c = s.current
            switch field {
            case .model:
                model = nil
                if c == 0x22 {
                    let span = try s.scanString()
                    if span.start == span.end {
                        modelProblem = .badRequest("'model' must not be empty", param: "model")
                    } else {
                        model = s.decode(span)
                        modelProblem = nil
                    }
                } else {
                    try s.skipValue(depth: 1)
                    modelProblem = .badRequest("'model' must be a string, got \(JSONCursor.kind(c))", param: "model")
                }
            case .user:
                user = nil
                userProblem = nil
                if c == 0x22 {
                    user = s.decode(try s.scanString())
                } else {
                    try s.skipValue(depth: 1)
                    if c != 0x6E { userProblem = .badRequest("'user' must be a string, got \(JSONCursor.kind(c))", param: "user") }
                }
            case .safetyIdentifier:
                safetyIdentifier = nil
                safetyProblem = nil
                if c == 0x22 {
                    safetyIdentifier = s.decode(try s.scanString())
                } else {
                    try s.skipValue(depth: 1)
                    if c != 0x6E { safetyProblem = .badRequest("'safety_identifier' must be a string, got \(JSONCursor.kind(c))", param: "safety_identifier") }
                }
            case .stream:
                try s.skipValue(depth: 1)
                stream = c == 0x74
                streamProblem = c == 0x74 || c == 0x66 || c == 0x6E
                    ? nil : .badRequest("'stream' must be a boolean, got \(JSONCursor.kind(c))", param: "stream")
            case .streamOptions:
                wantsUsage = false
                optionsProblem = nil
                if c == 0x7B {
                    s.pos += 1
                    var firstOption = true
                    while try s.nextItem(&firstOption, close: 0x7D) {
                        let optionKey = try s.scanKey()
                        let v = s.current
                        try s.skipValue(depth: 2)
                        if s.equals(optionKey, "include_usage") {
                            wantsUsage = v == 0x74
                            if v != 0x74 && v != 0x66 && v != 0x6E {
                                optionsProblem = .badRequest("'stream_options.include_usage' must be a boolean, got \(JSONCursor.kind(v))",
                                                             param: "stream_options.include_usage")
                            } else {
                                optionsProblem = nil
                            }
                        }
                    }
                } else {
                    try s.skipValue(depth: 1)
                    if c != 0x6E {
                        optionsProblem = .badRequest("'stream_options' must be an object, got \(JSONCursor.kind(c))", param: "stream_options")
                    }
                }
            case .messages:
                if endpoint != .chatCompletions { try s.skipValue(depth: 1); break }
                if c == 0x5B {
                    s.pos += 1
                    var firstElement = true
                    var count = 0
                    messagesProblem = nil
                    while try s.nextItem(&firstElement, close: 0x5D) {
                        let e = s.current
                        try s.skipValue(depth: 2)
                        if e != 0x7B && messagesProblem == nil {
                            messagesProblem = .badRequest("'messages[\(count)]' must be an object, got \(JSONCursor.kind(e))", param: "messages")
                        }
                        count += 1
                    }
                    if count == 0 { messagesProblem = .badRequest("'messages' must not be empty", param: "messages") }
                } else {
                    try s.skipValue(depth: 1)
                    messagesProblem = .badRequest("'messages' must be an array, got \(JSONCursor.kind(c))", param: "messages")
                }
            case .prompt:
                try s.skipValue(depth: 1)
                if endpoint == .completions {
                    promptProblem = c == 0x22 || c == 0x5B || c == 0x6E
                        ? nil : .badRequest("'prompt' must be a string or an array, got \(JSONCursor.kind(c))", param: "prompt")
                }
            case .other:
                try s.skipValue(depth: 1)
            }
            members.append(Member(key: (key.start)..<(key.end), keyEscaped: key.escaped, value: valueStart..<s.pos, field: field))
        }
        s.skipSpace()
        if !s.atEnd { throw JSONError(.trailingData, offset: s.pos) }

        for problem in [modelProblem, messagesProblem, promptProblem, streamProblem, optionsProblem, userProblem, safetyProblem] {
            if let problem { return .failure(problem) }
        }
        return .success(ClientRequest(endpoint: endpoint, model: model ?? "", user: user, safetyIdentifier: safetyIdentifier, stream: stream,
                                      clientWantsUsage: wantsUsage, body: body, members: members))
    }

    private static func classify(_ key: JSONStringSpan, _ s: JSONCursor) -> Field {
        switch key.end - key.start {
        case 4 where s.equals(key, "user"): return .user
        case 5 where s.equals(key, "model"): return .model
        case 6 where s.equals(key, "stream"): return .stream
        case 6 where s.equals(key, "prompt"): return .prompt
        case 8 where s.equals(key, "messages"): return .messages
        case 14 where s.equals(key, "stream_options"): return .streamOptions
        case 17 where s.equals(key, "safety_identifier"): return .safetyIdentifier
        default:
            // A key written with escapes ("\u006dodel") is rare but must not slip past.
            guard key.escaped else { return .other }
            switch s.decode(key) {
            case "user": return .user
            case "model": return .model
            case "stream": return .stream
            case "prompt": return .prompt
            case "messages": return .messages
            case "stream_options": return .streamOptions
            case "safety_identifier": return .safetyIdentifier
            default: return .other
            }
        }
    }

    // MARK: The upstream body

    private struct Edit {
        var start: Int
        var end: Int
        var bytes: [UInt8]
        var order: Int
    }

    /// The body for the upstream, with exact edits and every other byte as received:
    ///
    /// - every `"model"` value becomes `model`;
    /// - with a `systemPrompt`, for chat: the first message, when its role is "system" or "developer", is replaced
    ///   by `{"role":"system","content":systemPrompt}`, otherwise that message is prepended to `messages`; for
    ///   completions: each prompt string (the string, or each string of an array) gets `systemPrompt + "\n\n"`
    ///   in front (token-id prompts are left alone);
    /// - `parameters` (raw JSON values, which must be valid JSON) replace the values of members with the same
    ///   key, or are appended after the last member; keys in `reservedParameterKeys` are ignored, and of a key
    ///   given twice the last wins;
    /// - when the request streams and `forceUsage` is true, `stream_options` ends up with
    ///   `"include_usage":true` (added, inserted into the client's object keeping its other keys, or set).
    ///
    /// When the client repeated a key, every occurrence gets the same edit.
    public func upstreamBody(model: String, systemPrompt: String?, parameters: [(key: String, json: String)], forceUsage: Bool) -> [UInt8] {
        var edits: [Edit] = []
        body.withUnsafeBytes { raw in
            guard let s = JSONCursor.openAI(raw), let last = members.last else { return }
            func add(_ start: Int, _ end: Int, _ bytes: [UInt8]) {
                edits.append(Edit(start: start, end: end, bytes: bytes, order: edits.count))
            }
            let appendAt = last.value.upperBound

            // model
            let quotedModel = jsonQuoted(model)
            for m in members where m.field == .model { add(m.value.lowerBound, m.value.upperBound, quotedModel) }

            // system prompt
            if let systemPrompt {
                switch endpoint {
                case .chatCompletions:
                    var message: [UInt8] = Array(#"{"role":"system","content":"#.utf8)
                    message += jsonQuoted(systemPrompt)
                    message.append(0x7D)
                    for m in members where m.field == .messages {
                        if let e = systemPromptEdit(s, m.value.lowerBound, message) { add(e.start, e.end, e.bytes) }
                    }
                case .completions:
                    var prefix: [UInt8] = []
                    jsonEscape(systemPrompt + "\n\n", into: &prefix)
                    for m in members where m.field == .prompt {
                        for at in promptStringStarts(s, m.value.lowerBound) { add(at, at, prefix) }
                    }
                }
            }

            // parameters: the last of each key
            var seen = Set<String>()
            var chosen: [(key: String, json: String)] = []
            for p in parameters.reversed() where !ClientRequest.reservedParameterKeys.contains(p.key) && seen.insert(p.key).inserted {
                chosen.append(p)
            }
            for p in chosen.reversed() {
                let value = Array(p.json.utf8)
                var found = false
                for m in members where m.field == .other || m.field == .user || m.field == .safetyIdentifier {
                    if s.equals(JSONStringSpan(start: m.key.lowerBound, end: m.key.upperBound, escaped: m.keyEscaped), p.key) {
                        add(m.value.lowerBound, m.value.upperBound, value)
                        found = true
                    }
                }
                if !found {
                    var member: [UInt8] = [0x2C]
                    member += jsonQuoted(p.key)
                    member.append(0x3A)
                    member += value
                    add(appendAt, appendAt, member)
                }
            }

            // stream_options.include_usage
            if stream && forceUsage {
                let options: [UInt8] = Array(#"{"include_usage":true}"#.utf8)
                var found = false
                for m in members where m.field == .streamOptions {
                    found = true
                    var t = s
                    t.pos = m.value.lowerBound
                    guard t.current == 0x7B else { add(m.value.lowerBound, m.value.upperBound, options); continue }
                    t.pos += 1
                    let afterBrace = t.pos
                    var first = true
                    var set = false
                    var empty = true
                    while (try? t.nextItem(&first, close: 0x7D)) == true {
                        empty = false
                        guard let key = try? t.scanKey() else { break }
                        let v = t.pos
                        guard (try? t.skipValue(depth: 2)) != nil else { break }
                        if t.equals(key, "include_usage") {
                            set = true
                            if !(t.pos - v == 4 && t.byte(v) == 0x74) { add(v, t.pos, Array("true".utf8)) }
                        }
                    }
                    if !set { add(afterBrace, afterBrace, Array((empty ? #""include_usage":true"# : #""include_usage":true,"#).utf8)) }
                }
                if !found { add(appendAt, appendAt, Array(#","stream_options":{"include_usage":true}"#.utf8)) }
            }
        }
        if edits.isEmpty { return body }
        edits.sort { ($0.start, $0.order) < ($1.start, $1.order) }
        var out: [UInt8] = []
        out.reserveCapacity(body.count + edits.reduce(0) { $0 + $1.bytes.count })
        var cursor = 0
        for e in edits {
            out += body[cursor..<e.start]
            out += e.bytes
            cursor = e.end
        }
        out += body[cursor...]
        return out
    }

    /// The edit that puts the system message first in the `messages` array at `at`.
    private func systemPromptEdit(_ s: JSONCursor, _ at: Int, _ message: [UInt8]) -> (start: Int, end: Int, bytes: [UInt8])? {
        var t = s
        t.pos = at
        guard t.current == 0x5B else { return nil }
        t.pos += 1
        t.skipSpace()
        let start = t.pos
        if t.current == 0x5D { return (start, start, message) }
        var role: JSONStringSpan?
        if t.current == 0x7B {
            t.pos += 1
            var first = true
            while (try? t.nextItem(&first, close: 0x7D)) == true {
                guard let key = try? t.scanKey() else { return nil }
                let isRole = t.equals(key, "role")
                if isRole && t.current == 0x22 {
                    role = try? t.scanString()
                } else {
                    if isRole { role = nil }
                    guard (try? t.skipValue(depth: 3)) != nil else { return nil }
                }
            }
        } else {
            guard (try? t.skipValue(depth: 2)) != nil else { return nil }
        }
        if let role, t.equals(role, "system") || t.equals(role, "developer") {
            return (start, t.pos, message)
        }
        return (start, start, message + [0x2C])
    }

    /// Offsets just after the opening quote of the prompt string at `at`, or of each string of the prompt array.
    private func promptStringStarts(_ s: JSONCursor, _ at: Int) -> [Int] {
        var t = s
        t.pos = at
        if t.current == 0x22 { return [at + 1] }
        guard t.current == 0x5B else { return [] }
        t.pos += 1
        var starts: [Int] = []
        var first = true
        while (try? t.nextItem(&first, close: 0x5D)) == true {
            if t.current == 0x22 { starts.append(t.pos + 1) }
            guard (try? t.skipValue(depth: 2)) != nil else { break }
        }
        return starts
    }

    // MARK: Prompt text

    /// A top-level integer member such as "max_tokens" (the last one when repeated); nil when absent or not
    /// an integer.
    public func integer(_ name: String) -> Int? {
        body.withUnsafeBytes { raw -> Int? in
            guard let s = JSONCursor.openAI(raw) else { return nil }
            for member in members.reversed() {
                let key = JSONStringSpan(start: member.key.lowerBound, end: member.key.upperBound, escaped: member.keyEscaped)
                guard s.decode(key) == name else { continue }
                let text = String(decoding: body[member.value], as: UTF8.self)
                if let n = Int(text) { return n }
                if let d = Double(text), d.isFinite, d == d.rounded(), abs(d) < 9.0e18 { return Int(d) }
                return nil
            }
            return nil
        }
    }

    /// The prompt as text, for content logging. Chat: the messages' text contents joined with "\n" (string
    /// content, or the "text" of each part of array content); completions: the prompt (strings of an array
    /// prompt joined with "\n"; token ids give "").
    public func promptText() -> String {
        body.withUnsafeBytes { raw -> String in
            guard let s = JSONCursor.openAI(raw) else { return "" }
            var out = ""
            var any = false
            func add(_ t: JSONCursor, _ span: JSONStringSpan) {
                if any { out += "\n" }
                any = true
                t.decode(span, appendingTo: &out)
            }
            switch endpoint {
            case .chatCompletions:
                guard let m = members.last(where: { $0.field == .messages }) else { return "" }
                var t = s
                t.pos = m.value.lowerBound
                guard t.current == 0x5B else { return "" }
                t.pos += 1
                var first = true
                while (try? t.nextItem(&first, close: 0x5D)) == true {
                    guard t.current == 0x7B else { if (try? t.skipValue(depth: 2)) == nil { break }; continue }
                    t.pos += 1
                    var firstKey = true
                    var content: JSONStringSpan?
                    var parts: [JSONStringSpan] = []
                    while (try? t.nextItem(&firstKey, close: 0x7D)) == true {
                        guard let key = try? t.scanKey() else { return out }
                        if t.equals(key, "content") {
                            content = nil
                            parts = []
                            if t.current == 0x22 {
                                content = try? t.scanString()
                            } else if t.current == 0x5B {
                                parts = textParts(&t)
                            } else if (try? t.skipValue(depth: 3)) == nil { return out }
                        } else if (try? t.skipValue(depth: 3)) == nil { return out }
                    }
                    if let content { add(t, content) }
                    for p in parts { add(t, p) }
                }
            case .completions:
                guard let m = members.last(where: { $0.field == .prompt }) else { return "" }
                var t = s
                t.pos = m.value.lowerBound
                if t.current == 0x22 {
                    if let span = try? t.scanString() { add(t, span) }
                } else if t.current == 0x5B {
                    t.pos += 1
                    var first = true
                    while (try? t.nextItem(&first, close: 0x5D)) == true {
                        if t.current == 0x22, let span = try? t.scanString() { add(t, span) } else if (try? t.skipValue(depth: 2)) == nil { break }
                    }
                }
            }
            return out
        }
    }

    /// The `messages` array (the last one when repeated) as compact JSON text, for content logging of chat
    /// requests: the client's bytes without the whitespace between tokens (strings, escapes and numbers exactly as
    /// sent); nil for completions or when there is no array.
    ///
    /// Also nil when the event reader would refuse the array: requests are read leniently (lone surrogates,
    /// numbers beyond Double's range), stored events strictly, and an event must stay readable.
    public func messagesJSON() -> String? {
        guard endpoint == .chatCompletions, let m = members.last(where: { $0.field == .messages }),
              body[m.value.lowerBound] == 0x5B else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(m.value.count)
        var inString = false, escaped = false
        for c in body[m.value] {
            if inString {
                if escaped { escaped = false } else if c == 0x5C { escaped = true } else if c == 0x22 { inString = false }
            } else if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 {
                continue
            } else if c == 0x22 {
                inString = true
            }
            out.append(c)
        }
        let readable = out.withUnsafeBytes { raw -> Bool in
            var strict = JSONCursor(raw, maxDepth: EventParser.maxDepth)
            guard (try? strict.skipValue(depth: 0)) != nil else { return false }
            return strict.atEnd
        }
        return readable ? String(decoding: out, as: UTF8.self) : nil
    }

    /// The "text" strings of the content parts array at `t.pos`; leaves `t` after the array.
    private func textParts(_ t: inout JSONCursor) -> [JSONStringSpan] {
        var parts: [JSONStringSpan] = []
        t.pos += 1
        var first = true
        while (try? t.nextItem(&first, close: 0x5D)) == true {
            guard t.current == 0x7B else { if (try? t.skipValue(depth: 4)) == nil { break }; continue }
            t.pos += 1
            var firstKey = true
            var text: JSONStringSpan?
            while (try? t.nextItem(&firstKey, close: 0x7D)) == true {
                guard let key = try? t.scanKey() else { return parts }
                if t.equals(key, "text") && t.current == 0x22 {
                    text = try? t.scanString()
                } else if (try? t.skipValue(depth: 5)) == nil { return parts }
            }
            if let text { parts.append(text) }
        }
        return parts
    }
}
