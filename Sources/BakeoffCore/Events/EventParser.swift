#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What an event records: a model request, or feedback on a request or conversation.
public enum EventKind: UInt8, Sendable {
    case request
    case feedback
}

/// One event as read from a log line. Its strings point into the reader's buffers and are valid only
/// during the call that hands the view over.
///
/// Why views and not `String`s: making three or four strings per line costs more than parsing it.
public struct EventView {
    public var kind: EventKind = .request
    /// Microseconds since 1970-01-01T00:00:00Z.
    public var timestamp: Int64 = 0
    public var experiment = UnsafeRawBufferPointer(start: nil, count: 0)
    public var variant = UnsafeRawBufferPointer(start: nil, count: 0)
    public var userID = UnsafeRawBufferPointer(start: nil, count: 0)
    public var conversationID = UnsafeRawBufferPointer(start: nil, count: 0)
    public var requestID = UnsafeRawBufferPointer(start: nil, count: 0)
    /// NaN when absent (for optional numbers).
    public var latencyMs: Double = .nan
    public var ttftMs: Double = .nan
    public var inputTokens: Double = .nan
    public var outputTokens: Double = .nan
    /// Empty when absent, which means `ok`.
    public var status = UnsafeRawBufferPointer(start: nil, count: 0)
    public var name = UnsafeRawBufferPointer(start: nil, count: 0)
    public var value: Double = .nan
    /// A QA request (or its feedback) forced by an admin: `"qa": true`; left out of the analysis.
    public var qa = false
    /// Content logging (the analysis ignores it; empty when absent): `messages`, the JSON text of the array as
    /// it is in the line; `prompt` and `response`, the decoded strings (values that are not strings are skipped).
    public var messages = UnsafeRawBufferPointer(start: nil, count: 0)
    public var prompt = UnsafeRawBufferPointer(start: nil, count: 0)
    public var response = UnsafeRawBufferPointer(start: nil, count: 0)

    public init() {}

    /// Whether the request succeeded: `status` absent or exactly `ok`.
    @inlinable public var isOK: Bool {
        status.count == 0 || (status.count == 2 && status[0] == 0x6F && status[1] == 0x6B)
    }

    /// The request's value of a numeric field (NaN when absent).
    @inlinable public func value(of field: RequestField) -> Double {
        switch field {
        case .latencyMs: return latencyMs
        case .ttftMs: return ttftMs
        case .inputTokens: return inputTokens
        case .outputTokens: return outputTokens
        }
    }
}

/// A line the parser does not accept, with the 1-based column where the problem starts.
public struct EventParseError: Error, Sendable, Equatable {
    public var column: Int
    public var message: String
}

/// Parses one flat JSON object per line into an `EventView`, without building any Swift objects.
///
/// It reads JSON with the shared scanner (`JSONCursor`: escapes, `\u` surrogate pairs, exponents, UTF-8
/// checked, nested values under keys it does not know skipped up to 64 deep) and rejects with a precise message
/// anything that is not an event: a missing, mistyped or repeated field, a bad timestamp, trailing data.
public struct EventParser: ~Copyable {
    /// Nesting accepted in `messages` and in values under keys the parser does not know (which it skips).
    public static let maxDepth = 64

    /// Holds strings that had escapes, decoded; never reallocated while a line is being parsed.
    private var scratch: UnsafeMutablePointer<UInt8>
    private var scratchCapacity: Int

    public init() {
        scratchCapacity = 4096
        scratch = .allocate(capacity: scratchCapacity)
    }

    deinit { scratch.deallocate() }

    public mutating func parse(_ line: UnsafeRawBufferPointer) throws(EventParseError) -> EventView {
        if line.count > scratchCapacity {
            scratch.deallocate()
            scratchCapacity = max(line.count, scratchCapacity * 2)
            scratch = .allocate(capacity: scratchCapacity)
        }
        guard let base = line.baseAddress, line.count > 0 else {
            throw EventParseError(column: 1, message: "expected a JSON object starting with '{', found an empty line")
        }
        var parser = LineParser(json: JSONCursor(base: base, count: line.count, maxDepth: LineParser.maxDepth), scratch: scratch)
        return try parser.parseEvent()
    }
}

private struct Seen: OptionSet {
    let rawValue: UInt32
    static let event = Seen(rawValue: 1 << 0)
    static let ts = Seen(rawValue: 1 << 1)
    static let experiment = Seen(rawValue: 1 << 2)
    static let variant = Seen(rawValue: 1 << 3)
    static let user = Seen(rawValue: 1 << 4)
    static let request = Seen(rawValue: 1 << 5)
    static let latency = Seen(rawValue: 1 << 6)
    static let name = Seen(rawValue: 1 << 7)
    static let value = Seen(rawValue: 1 << 8)
    static let conversation = Seen(rawValue: 1 << 9)
    // Keys that need not be there (for `Seen` as the set of keys read).
    static let status = Seen(rawValue: 1 << 10)
    static let ttft = Seen(rawValue: 1 << 11)
    static let inputTokens = Seen(rawValue: 1 << 12)
    static let outputTokens = Seen(rawValue: 1 << 13)
    static let qa = Seen(rawValue: 1 << 14)
    static let messages = Seen(rawValue: 1 << 15)
    static let prompt = Seen(rawValue: 1 << 16)
    static let response = Seen(rawValue: 1 << 17)
}

/// One line's event, read with the shared `JSONCursor`; JSON errors are worded for event logs here.
private struct LineParser {
    static let maxDepth = EventParser.maxDepth

    var json: JSONCursor
    /// Where strings with escapes are decoded; they never take more room than the line.
    let scratch: UnsafeMutablePointer<UInt8>
    var scratchUsed = 0

    init(json: JSONCursor, scratch: UnsafeMutablePointer<UInt8>) {
        self.json = json
        self.scratch = scratch
    }

    var pos: Int {
        @inline(__always) get { json.pos }
        @inline(__always) set { json.pos = newValue }
    }
    var end: Int { json.end }

    @inline(__always) func byte(_ i: Int) -> UInt8 { json.byte(i) }

    func fail(_ message: String, at column: Int? = nil) -> EventParseError {
        EventParseError(column: (column ?? pos) + 1, message: message)
    }

    @inline(__always) mutating func skipSpace() { json.skipSpace() }

    func describe(_ at: Int) -> String {
        if at >= end { return "the end of the line" }
        let c = byte(at)
        if c >= 0x20 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x\(String(c, radix: 16))"
    }

    func describeHere() -> String { describe(pos) }

    mutating func expect(_ c: UInt8, _ what: @autoclosure () -> String) throws(EventParseError) {
        skipSpace()
        guard pos < end, byte(pos) == c else { throw fail("expected \(what()), found \(describeHere())") }
        pos += 1
    }

    mutating func parseEvent() throws(EventParseError) -> EventView {
        var event = EventView()
        var seen: Seen = []
        var keys: Seen = []
        skipSpace()
        guard pos < end, byte(pos) == 0x7B else {
            throw fail("expected a JSON object starting with '{', found \(describeHere())")
        }
        pos += 1
        skipSpace()
        if pos < end && byte(pos) == 0x7D {
            pos += 1
        } else {
            while true {
                skipSpace()
                let keyStart = pos
                guard pos < end, byte(pos) == 0x22 else { throw fail("expected a key in double quotes, found \(describeHere())") }
                let key = try parseString()
                try expect(0x3A, "':' after key \"\(preview(key))\"")
                skipSpace()
                try parseField(key, keyColumn: keyStart, into: &event, seen: &seen, keys: &keys)
                skipSpace()
                guard pos < end else { throw fail("the object is not closed: expected ',' or '}'") }
                let c = byte(pos)
                pos += 1
                if c == 0x2C { continue }
                if c == 0x7D { break }
                pos -= 1
                throw fail("expected ',' or '}' after the value of \"\(preview(key))\", found \(describeHere())")
            }
        }
        skipSpace()
        if pos < end { throw fail("unexpected data after the closing '}': \(describeHere())") }
        try validate(&event, seen)
        return event
    }

    func validate(_ event: inout EventView, _ seen: Seen) throws(EventParseError) {
        guard seen.contains(.event) else { throw fail("missing \"event\" (\"request\" or \"feedback\")", at: 0) }
        guard seen.contains(.ts) else { throw fail("missing \"ts\" (an RFC 3339 time such as \"2026-11-01T10:00:00Z\")", at: 0) }
        guard seen.contains(.experiment) else { throw fail("missing \"experiment\"", at: 0) }
        switch event.kind {
        case .request:
            guard seen.contains(.variant) else { throw fail("request without \"variant\"", at: 0) }
            guard seen.contains(.user) else { throw fail("request without \"user_id\"", at: 0) }
            guard seen.contains(.request) else { throw fail("request without \"request_id\"", at: 0) }
            guard seen.contains(.latency) else { throw fail("request without \"latency_ms\"", at: 0) }
            if event.conversationID.count == 0 { event.conversationID = event.requestID }
        case .feedback:
            guard seen.contains(.name) else { throw fail("feedback without \"name\"", at: 0) }
            guard seen.contains(.value) else { throw fail("feedback without \"value\" (a number or true/false)", at: 0) }
            guard event.requestID.count > 0 || event.conversationID.count > 0 else {
                throw fail("feedback needs a target: \"request_id\" or \"conversation_id\"", at: 0)
            }
        }
    }

    /// Every field the parser reads may appear once: a repeated one could be read differently elsewhere (SQL
    /// over the stored line, another JSON library).
    @inline(__always)
    func once(_ field: Seen, _ keys: inout Seen, _ key: UnsafeRawBufferPointer, _ keyColumn: Int) throws(EventParseError) {
        if keys.contains(field) { throw fail("\"\(preview(key))\" appears twice; give each field once", at: keyColumn) }
        keys.insert(field)
    }

    mutating func parseField(_ key: UnsafeRawBufferPointer, keyColumn: Int, into e: inout EventView, seen: inout Seen,
                             keys: inout Seen) throws(EventParseError) {
        switch key.count {
        case 2 where matches(key, "ts"):
            try once(.ts, &keys, key, keyColumn)
            e.timestamp = try parseTimestamp()
            seen.insert(.ts)
        case 2 where matches(key, "qa"):
            try once(.qa, &keys, key, keyColumn)
            let start = pos
            guard let qa = try? parseBool("qa") else {
                pos = start
                throw fail("\"qa\" must be true or false, found \(describeHere())")
            }
            e.qa = qa
        case 4 where matches(key, "name"):
            try once(.name, &keys, key, keyColumn)
            e.name = try parseRequiredString("name")
            seen.insert(.name)
        case 5 where matches(key, "event"):
            try once(.event, &keys, key, keyColumn)
            let s = try parseRequiredString("event")
            if matches(s, "request") { e.kind = .request } else if matches(s, "feedback") { e.kind = .feedback } else {
                throw fail("\"event\" must be \"request\" or \"feedback\", got \"\(preview(s))\"", at: keyColumn)
            }
            seen.insert(.event)
        case 5 where matches(key, "value"):
            try once(.value, &keys, key, keyColumn)
            let valueColumn = pos
            if pos < end, byte(pos) == 0x74 || byte(pos) == 0x66 {
                e.value = try parseBool("value") ? 1 : 0
            } else if pos < end, byte(pos) == 0x6E || byte(pos) == 0x22 {
                throw fail("\"value\" must be a number or true/false, found \(describeHere())")
            } else {
                e.value = try parseNumber("value")
            }
            if !e.value.isFinite { throw fail("\"value\" must be a finite number", at: valueColumn) }
            seen.insert(.value)
        case 6 where matches(key, "status"):
            try once(.status, &keys, key, keyColumn)
            e.status = try parseRequiredString("status")
        case 7 where matches(key, "variant"):
            try once(.variant, &keys, key, keyColumn)
            e.variant = try parseRequiredString("variant")
            seen.insert(.variant)
        case 7 where matches(key, "user_id"):
            try once(.user, &keys, key, keyColumn)
            e.userID = try parseRequiredString("user_id")
            seen.insert(.user)
        case 6 where matches(key, "prompt"):
            try once(.prompt, &keys, key, keyColumn)
            e.prompt = try parseContentString()
        case 8 where matches(key, "response"):
            try once(.response, &keys, key, keyColumn)
            e.response = try parseContentString()
        case 8 where matches(key, "messages"):
            try once(.messages, &keys, key, keyColumn)
            if json.consume("null") { e.messages = UnsafeRawBufferPointer(start: nil, count: 0); break }
            guard pos < end, byte(pos) == 0x5B else {
                throw fail("\"messages\" must be an array of messages, found \(describeHere())")
            }
            let start = pos
            do throws(JSONError) { try json.skipValue(depth: 0) } catch { throw skipError(error) }
            e.messages = json.bytes(start, pos)
        case 7 where matches(key, "ttft_ms"):
            try once(.ttft, &keys, key, keyColumn)
            e.ttftMs = try parseOptionalNumber("ttft_ms")
        case 10 where matches(key, "experiment"):
            try once(.experiment, &keys, key, keyColumn)
            e.experiment = try parseRequiredString("experiment")
            seen.insert(.experiment)
        case 10 where matches(key, "request_id"):
            try once(.request, &keys, key, keyColumn)
            if json.consume("null") { e.requestID = UnsafeRawBufferPointer(start: nil, count: 0) } else {
                e.requestID = try parseRequiredString("request_id")
                seen.insert(.request)
            }
        case 10 where matches(key, "latency_ms"):
            try once(.latency, &keys, key, keyColumn)
            e.latencyMs = try parseNumber("latency_ms")
            seen.insert(.latency)
        case 12 where matches(key, "input_tokens"):
            try once(.inputTokens, &keys, key, keyColumn)
            e.inputTokens = try parseOptionalNumber("input_tokens")
        case 13 where matches(key, "output_tokens"):
            try once(.outputTokens, &keys, key, keyColumn)
            e.outputTokens = try parseOptionalNumber("output_tokens")
        case 15 where matches(key, "conversation_id"):
            try once(.conversation, &keys, key, keyColumn)
            if json.consume("null") { e.conversationID = UnsafeRawBufferPointer(start: nil, count: 0) } else {
                e.conversationID = try parseRequiredString("conversation_id")
                seen.insert(.conversation)
            }
        default:
            do throws(JSONError) { try json.skipValue(depth: 0) } catch { throw skipError(error) }
        }
    }

    @inline(__always) func matches(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        bytes.count == literal.utf8CodeUnitCount
            && (bytes.count == 0 || memcmp(bytes.baseAddress!, literal.utf8Start, bytes.count) == 0)
    }

    mutating func parseRequiredString(_ key: String) throws(EventParseError) -> UnsafeRawBufferPointer {
        guard pos < end, byte(pos) == 0x22 else { throw fail("\"\(key)\" must be a string, found \(describeHere())") }
        let s = try parseString()
        if s.count == 0 { throw fail("\"\(key)\" must not be empty", at: pos - 2) }
        return s
    }

    /// `prompt` or `response`: a string, or anything else skipped as absent (content is not checked, so logs
    /// that stored other values there stay readable).
    mutating func parseContentString() throws(EventParseError) -> UnsafeRawBufferPointer {
        if pos < end, byte(pos) == 0x22 { return try parseString() }
        do throws(JSONError) { try json.skipValue(depth: 0) } catch { throw skipError(error) }
        return UnsafeRawBufferPointer(start: nil, count: 0)
    }

    mutating func parseOptionalNumber(_ key: String) throws(EventParseError) -> Double {
        if json.consume("null") { return .nan }
        return try parseNumber(key)
    }

    mutating func parseBool(_ key: String) throws(EventParseError) -> Bool {
        if json.consume("true") { return true }
        if json.consume("false") { return false }
        throw fail("\"\(key)\" must be a number or true/false, found \(describeHere())")
    }

    /// A JSON string at `pos` (which holds the opening quote); escapes are decoded into the scratch buffer.
    @inline(__always)
    mutating func parseString() throws(EventParseError) -> UnsafeRawBufferPointer {
        do throws(JSONError) {
            let out = scratch + scratchUsed
            let (span, written) = try json.scanString(decodingInto: out)
            if !span.escaped { return json.bytes(span.start, span.end) }
            scratchUsed += written
            return UnsafeRawBufferPointer(start: out, count: written)
        } catch {
            throw stringError(error)
        }
    }

    /// A JSON number at `pos`.
    @inline(__always)
    mutating func parseNumber(_ key: String) throws(EventParseError) -> Double {
        do throws(JSONError) { return try json.readNumber() } catch { throw numberError(error, key) }
    }

    /// An RFC 3339 time (`2026-11-01T10:00:00.123Z`, offset or `Z`) or a number of seconds since 1970.
    mutating func parseTimestamp() throws(EventParseError) -> Int64 {
        if pos < end, case let c = byte(pos), c == 0x2D || (c >= 0x30 && c <= 0x39) {
            let seconds = try parseNumber("ts")
            // Years 0001 to 9999, as for RFC 3339 times.
            guard seconds >= -62_135_596_800, seconds < 253_402_300_800 else {
                throw fail("\"ts\": \(seconds) seconds since 1970 is outside the years 0001 to 9999")
            }
            return Int64((seconds * 1_000_000).rounded())
        }
        guard pos < end, byte(pos) == 0x22 else { throw fail("\"ts\" must be a time string such as \"2026-11-01T10:00:00Z\"") }
        let column = pos
        let s = try parseString()
        guard let t = parseRFC3339(s) else {
            throw fail("\"ts\": \"\(preview(s))\" is not an RFC 3339 time such as \"2026-11-01T10:00:00.123Z\"", at: column)
        }
        return t
    }

    // MARK: JSON errors in event-log words

    func stringError(_ e: JSONError) -> EventParseError {
        switch e.kind {
        case .unterminatedString:
            return fail("string not closed: missing '\"'", at: e.start)
        case .controlCharacter(let c, let afterEscape):
            if afterEscape { return fail("control character inside a string", at: e.offset) }
            return fail("control character inside a string (escape it as \\u00\(c < 16 ? "0" : "")\(String(c, radix: 16)))", at: e.offset)
        case .invalidEscape:
            return fail("invalid escape '\\\(describe(e.offset + 1))' in a string", at: e.offset + 1)
        case .invalidHexEscape(_, let truncated):
            return truncated ? fail("\\u needs four hex digits", at: e.offset)
                : fail("\\u needs four hex digits, found \(describe(e.offset))", at: e.offset)
        case .loneSurrogate(let unit, _):
            return unit < 0xDC00 ? fail("lone high surrogate \\u\(String(unit, radix: 16)) without its low half", at: e.offset)
                : fail("lone low surrogate \\u\(String(unit, radix: 16))", at: e.offset)
        case .invalidSurrogatePair:
            return fail("invalid surrogate pair", at: e.offset)
        case .invalidUTF8:
            return fail("invalid UTF-8 inside a string", at: e.offset)
        default:
            return fail("invalid string", at: e.offset)
        }
    }

    func numberError(_ e: JSONError, _ key: String) -> EventParseError {
        switch e.kind {
        case .invalidNumber(.integer):
            if byte(e.start) == 0x22 { return fail("\"\(key)\" must be a number, got a string", at: e.start) }
            return fail("\"\(key)\" must be a number, found \(describe(e.start))", at: e.start)
        case .invalidNumber(.fraction): return fail("\"\(key)\": a digit must follow the decimal point", at: e.offset)
        case .invalidNumber(.exponent): return fail("\"\(key)\": the exponent has no digits", at: e.offset)
        case .leadingZero: return fail("\"\(key)\": leading zeros are not valid JSON", at: e.start)
        case .numberOutOfRange: return fail("\"\(key)\": number out of range", at: e.start)
        default: return fail("\"\(key)\" must be a number, found \(describe(e.start))", at: e.start)
        }
    }

    /// A problem inside a value skipped under a key the parser does not know.
    func skipError(_ e: JSONError) -> EventParseError {
        switch e.kind {
        case .expectedValue:
            if e.offset >= end { return fail("expected a value, found the end of the line", at: e.offset) }
            return fail("\"value\" must be a number, found \(describe(e.offset))", at: e.offset)
        case .expectedKey:
            return fail("expected a key in double quotes, found \(describe(e.offset))", at: e.offset)
        case .expectedColon:
            return fail("expected ':', found \(describe(e.offset))", at: e.offset)
        case .expectedCommaOrClose(let object):
            if e.offset >= end { return fail("unclosed \(object ? "object" : "array")", at: e.offset) }
            return fail("expected ',' or '\(object ? "}" : "]")', found \(describe(e.offset))", at: e.offset)
        case .invalidLiteral:
            if byte(e.start) == 0x6E { return fail("unexpected \(describe(e.start))", at: e.start) }
            return fail("\"value\" must be a number or true/false, found \(describe(e.start))", at: e.start)
        case .invalidNumber, .leadingZero, .numberOutOfRange:
            return numberError(e, "value")
        case .tooDeep:
            return fail("values nested more than \(LineParser.maxDepth) deep", at: e.offset)
        case .trailingData:
            return fail("unexpected data: \(describe(e.offset))", at: e.offset)
        default:
            return stringError(e)
        }
    }
}

/// Microseconds since the epoch for an RFC 3339 time (`2026-11-01T00:00:00Z`), or nil when the text is not one.
public func parseTime(_ text: String) -> Int64? {
    Array(text.utf8).withUnsafeBytes { parseRFC3339($0) }
}

/// Microseconds since the epoch for an RFC 3339 time, or nil when the text is not one.
package func parseRFC3339(_ s: UnsafeRawBufferPointer) -> Int64? {
    let n = s.count
    guard n >= 19 else { return nil }
    func digits(_ at: Int, _ count: Int) -> Int? {
        var v = 0
        for i in at..<(at + count) {
            let c = s[i]
            guard c >= 0x30 && c <= 0x39 else { return nil }
            v = v * 10 + Int(c - 0x30)
        }
        return v
    }
    guard let year = digits(0, 4), s[4] == 0x2D, let month = digits(5, 2), s[7] == 0x2D, let day = digits(8, 2),
          s[10] == 0x54 || s[10] == 0x74 || s[10] == 0x20,
          let hour = digits(11, 2), s[13] == 0x3A, let minute = digits(14, 2), s[16] == 0x3A, let second = digits(17, 2)
    else { return nil }
    guard year >= 1, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour < 24, minute < 60, second <= 60
    else { return nil }
    var i = 19
    var micros = 0
    if i < n && s[i] == 0x2E {
        i += 1
        var scale = 100_000
        let fracStart = i
        while i < n, s[i] >= 0x30 && s[i] <= 0x39 {
            micros += Int(s[i] - 0x30) * scale
            scale /= 10
            i += 1
        }
        if i == fracStart { return nil }
    }
    var offsetSeconds = 0
    guard i < n else { return nil }  // RFC 3339 requires a zone
    if s[i] == 0x5A || s[i] == 0x7A {
        i += 1
    } else if s[i] == 0x2B || s[i] == 0x2D {
        guard i + 6 == n, let oh = digits(i + 1, 2), s[i + 3] == 0x3A, let om = digits(i + 4, 2), oh < 24, om < 60 else { return nil }
        offsetSeconds = (oh * 3600 + om * 60) * (s[i] == 0x2D ? -1 : 1)
        i += 6
    } else {
        return nil
    }
    guard i == n else { return nil }
    let days = daysFromCivil(year: year, month: month, day: day)
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
    return Int64(seconds) * 1_000_000 + Int64(micros)
}

private func daysIn(month: Int, year: Int) -> Int {
    switch month {
    case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
package func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

/// The civil date of a day number since 1970-01-01 (inverse of `daysFromCivil`).
package func civilFromDays(_ z0: Int) -> (year: Int, month: Int, day: Int) {
    let z = z0 + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let y = yoe + era * 400
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (m <= 2 ? y + 1 : y, m, d)
}

/// `2026-11-01T10:00:00.123Z` for microseconds since the epoch (millisecond precision).
public func formatTimestamp(_ micros: Int64) -> String {
    let totalMillis = micros >= 0 ? micros / 1000 : (micros - 999) / 1000
    let millis = Int(((totalMillis % 1000) + 1000) % 1000)
    let totalSeconds = (totalMillis - Int64(millis)) / 1000
    let days = Int(totalSeconds >= 0 ? totalSeconds / 86_400 : (totalSeconds - 86_399) / 86_400)
    let secOfDay = Int(totalSeconds - Int64(days) * 86_400)
    let (y, m, d) = civilFromDays(days)
    func pad(_ v: Int, _ w: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, w - s.count)) + s
    }
    return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secOfDay / 3600, 2)):\(pad(secOfDay / 60 % 60, 2)):\(pad(secOfDay % 60, 2)).\(pad(millis, 3))Z"
}

/// The start of a string from the input, for error messages.
private func preview(_ bytes: UnsafeRawBufferPointer) -> String {
    let s = String(decoding: bytes, as: UTF8.self)
    return s.count > 40 ? String(s.prefix(40)) + "…" : s
}
