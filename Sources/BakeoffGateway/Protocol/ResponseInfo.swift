import BakeoffCore
import BakeoffHTTP
/// Token counts of one completion: `prompt_tokens` and `completion_tokens`.
public struct TokenUsage: Sendable, Equatable {
    public var input: Int
    public var output: Int

    /// Whether both counts could be real: not negative, and below a billion (no model reads or writes that
    /// many tokens in one request). The gateway ignores (and counts) any other usage.
    public var isPlausible: Bool {
        (0...Self.maximum).contains(input) && (0...Self.maximum).contains(output)
    }
    /// The same bound as the analysis (`EventAggregator.maximumTokenCount`), so the two agree on what is real.
    public static let maximum = Int(EventAggregator.maximumTokenCount)

    public init(input: Int, output: Int) {
        self.input = input
        self.output = output
    }
}

/// What one streamed chunk (an SSE data payload) says.
public struct ChunkInfo: Sendable, Equatable {
    /// The payload is exactly `[DONE]` (surrounding whitespace allowed).
    public var isDone = false
    /// Chat: some `choices[i].delta.content` (or `reasoning_content`/`reasoning`) is a non-empty string, or
    /// `delta.tool_calls` is a non-empty array; completions: some `choices[i].text` is non-empty. A role-only
    /// first chunk has no content.
    public var hasContent = false
    /// From a non-null `usage` object.
    public var usage: TokenUsage?
    /// `choices` is an empty array and `usage` is non-null (OpenAI's final usage chunk).
    public var isUsageOnly = false
    /// The message when the payload is an error: `{"error":{"message":...}}`, `{"error":"..."}` (TGI) or
    /// `{"object":"error","message":...}` (vLLM).
    public var error: String?
    /// The chunk's content (`delta.content` or `text` of every choice, concatenated), for content logging;
    /// nil when none.
    public var text: String?
    /// What the answer says of itself (`id`, `model`, each choice's `finish_reason`), read only when asked.
    public var response = ResponseFacts()
    /// Some choice has a `finish_reason` (a string): its answer is complete.
    public var finishes = false

    public init(isDone: Bool = false, hasContent: Bool = false, usage: TokenUsage? = nil, isUsageOnly: Bool = false,
                error: String? = nil, text: String? = nil) {
        self.isDone = isDone
        self.hasContent = hasContent
        self.usage = usage
        self.isUsageOnly = isUsageOnly
        self.error = error
        self.text = text
    }

    /// Never throws: an unparsable payload gives all false/nil. With `includeText: false` no string is built;
    /// `response` is read with `includeResponse` only.
    public static func inspect(_ payload: UnsafeRawBufferPointer, endpoint: Endpoint, includeText: Bool = true,
                               includeResponse: Bool = false) -> ChunkInfo {
        var info = ChunkInfo()
        guard var s = JSONCursor.openAI(payload) else { return info }
        s.skipSpace()
        if s.current == 0x5B {
            // [DONE]
            var e = s.end
            while e > s.pos, case let c = s.byte(e - 1), c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { e -= 1 }
            let done: StaticString = "[DONE]"
            if e - s.pos == 6 && s.equals(JSONStringSpan(start: s.pos, end: e, escaped: false), done) { info.isDone = true }
            return info
        }
        do {
            try info.read(&s, endpoint: endpoint, includeText: includeText, includeResponse: includeResponse)
            return info
        } catch {
            return ChunkInfo()
        }
    }

    private mutating func read(_ s: inout JSONCursor, endpoint: Endpoint, includeText: Bool, includeResponse: Bool) throws(JSONError) {
        guard s.current == 0x7B else { throw JSONError(.expectedValue, offset: s.pos) }
        s.pos += 1
        var first = true
        var choicesEmpty = false
        var content = ""
        var hasText = false
        var errorObject = false
        var topMessage: String?
        while try s.nextItem(&first, close: 0x7D) {
            let key = try s.scanKey()
            switch key.end - key.start {
            case 7 where s.equals(key, "choices"):
                guard s.current == 0x5B else { try s.skipValue(depth: 1); break }
                s.pos += 1
                var firstChoice = true
                choicesEmpty = true
                while try s.nextItem(&firstChoice, close: 0x5D) {
                    choicesEmpty = false
                    try readChoice(&s, endpoint: endpoint, includeText: includeText, includeResponse: includeResponse, content: &content, hasText: &hasText)
                }
            case 2 where includeResponse && s.equals(key, "id") && s.current == 0x22:
                response.id = s.decode(try s.scanString())
            case 5 where includeResponse && s.equals(key, "model") && s.current == 0x22:
                response.model = s.decode(try s.scanString())
            case 5 where s.equals(key, "usage"):
                usage = try readUsage(&s)
            case 5 where s.equals(key, "error"):
                error = try readError(&s)
            case 6 where s.equals(key, "object"):
                if s.current == 0x22 {
                    let v = try s.scanString()
                    errorObject = s.equals(v, "error")
                } else {
                    try s.skipValue(depth: 1)
                }
            case 7 where s.equals(key, "message"):
                if s.current == 0x22 { topMessage = s.decode(try s.scanString()) } else { try s.skipValue(depth: 1) }
            default:
                try s.skipValue(depth: 1)
            }
        }
        s.skipSpace()
        if !s.atEnd { throw JSONError(.trailingData, offset: s.pos) }
        if errorObject && error == nil { error = topMessage ?? "" }
        isUsageOnly = choicesEmpty && usage != nil
        if hasText { text = content }
    }

    private mutating func readChoice(_ s: inout JSONCursor, endpoint: Endpoint, includeText: Bool, includeResponse: Bool,
                                     content: inout String, hasText: inout Bool) throws(JSONError) {
        guard s.current == 0x7B else { try s.skipValue(depth: 2); return }
        s.pos += 1
        var first = true
        while try s.nextItem(&first, close: 0x7D) {
            let key = try s.scanKey()
            if s.current == 0x22, s.equals(key, "finish_reason") {
                let reason = try s.scanString()
                finishes = true
                if includeResponse { response.finishReasons.append(s.decode(reason)) }
                continue
            }
            switch endpoint {
            case .chatCompletions:
                guard s.equals(key, "delta"), s.current == 0x7B else { try s.skipValue(depth: 3); continue }
                s.pos += 1
                var firstField = true
                while try s.nextItem(&firstField, close: 0x7D) {
                    let field = try s.scanKey()
                    let c = s.current
                    if c == 0x22 && s.equals(field, "content") {
                        let v = try s.scanString()
                        if v.end > v.start {
                            hasContent = true
                            if includeText { s.decode(v, appendingTo: &content); hasText = true }
                        }
                    } else if c == 0x22 && (s.equals(field, "reasoning_content") || s.equals(field, "reasoning")) {
                        let v = try s.scanString()
                        if v.end > v.start { hasContent = true }
                    } else if c == 0x5B && s.equals(field, "tool_calls") {
                        s.pos += 1
                        s.skipSpace()
                        if s.current != 0x5D { hasContent = true }
                        s.pos -= 1
                        try s.skipValue(depth: 4)
                    } else {
                        try s.skipValue(depth: 4)
                    }
                }
            case .completions:
                if s.current == 0x22 && s.equals(key, "text") {
                    let v = try s.scanString()
                    if v.end > v.start {
                        hasContent = true
                        if includeText { s.decode(v, appendingTo: &content); hasText = true }
                    }
                } else {
                    try s.skipValue(depth: 3)
                }
            }
        }
    }
}

/// What a non-streamed completion response says.
public struct CompletionInfo: Sendable, Equatable {
    public var usage: TokenUsage?
    /// `choices[0].message.content` (chat) or `choices[0].text` (completions).
    public var text: String?
    /// The message of an error body: `{"error":{"message":...}}`, `{"error":"..."}` or `{"object":"error","message":...}`.
    public var error: String?
    /// What the answer says of itself (`id`, `model`, each choice's `finish_reason`).
    public var response = ResponseFacts()

    public init(usage: TokenUsage? = nil, text: String? = nil, error: String? = nil) {
        self.usage = usage
        self.text = text
        self.error = error
    }

    /// Never throws: an unparsable body gives all nil.
    public static func inspect(_ body: UnsafeRawBufferPointer, endpoint: Endpoint) -> CompletionInfo {
        guard var s = JSONCursor.openAI(body) else { return CompletionInfo() }
        var info = CompletionInfo()
        do {
            s.skipSpace()
            guard s.current == 0x7B else { return info }
            s.pos += 1
            var first = true
            var errorObject = false
            var topMessage: String?
            while try s.nextItem(&first, close: 0x7D) {
                let key = try s.scanKey()
                if s.equals(key, "usage") {
                    info.usage = try readUsage(&s)
                } else if s.equals(key, "error") {
                    info.error = try readError(&s)
                } else if s.equals(key, "choices") && s.current == 0x5B {
                    s.pos += 1
                    var firstChoice = true
                    var index = 0
                    while try s.nextItem(&firstChoice, close: 0x5D) {
                        let (text, finish) = try readChoice(&s, endpoint: endpoint, wantsText: index == 0)
                        if index == 0 { info.text = text }
                        if let finish { info.response.finishReasons.append(finish) }
                        index += 1
                    }
                } else if s.equals(key, "id") && s.current == 0x22 {
                    info.response.id = s.decode(try s.scanString())
                } else if s.equals(key, "model") && s.current == 0x22 {
                    info.response.model = s.decode(try s.scanString())
                } else if s.equals(key, "object") && s.current == 0x22 {
                    errorObject = s.equals(try s.scanString(), "error")
                } else if s.equals(key, "message") && s.current == 0x22 {
                    topMessage = s.decode(try s.scanString())
                } else {
                    try s.skipValue(depth: 1)
                }
            }
            s.skipSpace()
            if !s.atEnd { return CompletionInfo() }
            if errorObject && info.error == nil { info.error = topMessage ?? "" }
            return info
        } catch {
            return CompletionInfo()
        }
    }

    /// A choice's text (when `wantsText`) and finish reason.
    private static func readChoice(_ s: inout JSONCursor, endpoint: Endpoint, wantsText: Bool) throws(JSONError) -> (String?, String?) {
        guard s.current == 0x7B else { try s.skipValue(depth: 2); return (nil, nil) }
        s.pos += 1
        var text: String?, finish: String?
        var first = true
        while try s.nextItem(&first, close: 0x7D) {
            let key = try s.scanKey()
            if s.current == 0x22 && s.equals(key, "finish_reason") {
                finish = s.decode(try s.scanString())
                continue
            }
            if !wantsText { try s.skipValue(depth: 3); continue }
            switch endpoint {
            case .completions:
                if s.equals(key, "text") { text = s.current == 0x22 ? s.decode(try s.scanString()) : nil; if text == nil { try s.skipValue(depth: 3) } } else { try s.skipValue(depth: 3) }
            case .chatCompletions:
                guard s.equals(key, "message"), s.current == 0x7B else { try s.skipValue(depth: 3); continue }
                s.pos += 1
                var firstField = true
                while try s.nextItem(&firstField, close: 0x7D) {
                    let field = try s.scanKey()
                    if s.equals(field, "content") && s.current == 0x22 {
                        text = s.decode(try s.scanString())
                    } else {
                        try s.skipValue(depth: 4)
                    }
                }
            }
        }
        return (text, finish)
    }
}

/// What an answer says of itself: its id, the model that answered, why each choice ended.
public struct ResponseFacts: Sendable, Equatable {
    public var id: String?
    public var model: String?
    public var finishReasons: [String] = []
    public init(id: String? = nil, model: String? = nil, finishReasons: [String] = []) {
        self.id = id
        self.model = model
        self.finishReasons = finishReasons
    }
}

/// A `usage` value: nil for null or anything without token counts; a missing count is 0.
private func readUsage(_ s: inout JSONCursor) throws(JSONError) -> TokenUsage? {
    guard s.current == 0x7B else { try s.skipValue(depth: 1); return nil }
    s.pos += 1
    var first = true
    var input: Int?, output: Int?
    while try s.nextItem(&first, close: 0x7D) {
        let key = try s.scanKey()
        if s.equals(key, "prompt_tokens") {
            input = try s.scanInt()
        } else if s.equals(key, "completion_tokens") {
            output = try s.scanInt()
        } else {
            try s.skipValue(depth: 2)
        }
    }
    if input == nil && output == nil { return nil }
    return TokenUsage(input: input ?? 0, output: output ?? 0)
}

/// An `error` value: the message of an object (its "message", or "" when it has none), or a string itself.
private func readError(_ s: inout JSONCursor) throws(JSONError) -> String? {
    switch s.current {
    case 0x22:
        return s.decode(try s.scanString())
    case 0x7B:
        s.pos += 1
        var first = true
        var message = ""
        while try s.nextItem(&first, close: 0x7D) {
            let key = try s.scanKey()
            if s.equals(key, "message") && s.current == 0x22 { message = s.decode(try s.scanString()) } else { try s.skipValue(depth: 2) }
        }
        return message
    default:
        try s.skipValue(depth: 1)
        return nil
    }
}
