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
/// It accepts standard JSON (escapes, `\u` surrogate pairs, exponents, nested values under keys it does not
/// know, which are skipped) and rejects with a precise message anything that is not an event: a missing or
/// mistyped field, a bad timestamp, trailing data.
public struct EventParser: ~Copyable {
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
        var cursor = Cursor(base: base, end: line.count, scratch: scratch)
        return try cursor.parseEvent()
    }
}

private let powersOfTen: [Double] = (0...22).map { pow(10.0, Double($0)) }

private struct Seen: OptionSet {
    let rawValue: UInt16
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
}

private struct Cursor {
    let base: UnsafeRawPointer
    let end: Int
    var pos = 0
    let scratch: UnsafeMutablePointer<UInt8>
    var scratchUsed = 0

    init(base: UnsafeRawPointer, end: Int, scratch: UnsafeMutablePointer<UInt8>) {
        self.base = base
        self.end = end
        self.scratch = scratch
    }

    @inline(__always) func byte(_ i: Int) -> UInt8 { base.load(fromByteOffset: i, as: UInt8.self) }

    func fail(_ message: String, at column: Int? = nil) -> EventParseError {
        EventParseError(column: (column ?? pos) + 1, message: message)
    }

    @inline(__always) mutating func skipSpace() {
        while pos < end {
            let c = byte(pos)
            if c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A { pos += 1 } else { return }
        }
    }

    func describeHere() -> String {
        if pos >= end { return "the end of the line" }
        let c = byte(pos)
        if c >= 0x20 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x\(String(c, radix: 16))"
    }

    mutating func expect(_ c: UInt8, _ what: @autoclosure () -> String) throws(EventParseError) {
        skipSpace()
        guard pos < end, byte(pos) == c else { throw fail("expected \(what()), found \(describeHere())") }
        pos += 1
    }

    mutating func parseEvent() throws(EventParseError) -> EventView {
        var event = EventView()
        var seen: Seen = []
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
                try parseField(key, keyColumn: keyStart, into: &event, seen: &seen)
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

    mutating func parseField(_ key: UnsafeRawBufferPointer, keyColumn: Int, into e: inout EventView, seen: inout Seen) throws(EventParseError) {
        switch key.count {
        case 2 where matches(key, "ts"):
            e.timestamp = try parseTimestamp()
            seen.insert(.ts)
        case 2 where matches(key, "qa"):
            let start = pos
            guard let qa = try? parseBool("qa") else {
                pos = start
                throw fail("\"qa\" must be true or false, found \(describeHere())")
            }
            e.qa = qa
        case 4 where matches(key, "name"):
            e.name = try parseRequiredString("name")
            seen.insert(.name)
        case 5 where matches(key, "event"):
            let s = try parseRequiredString("event")
            if matches(s, "request") { e.kind = .request } else if matches(s, "feedback") { e.kind = .feedback } else {
                throw fail("\"event\" must be \"request\" or \"feedback\", got \"\(preview(s))\"", at: keyColumn)
            }
            seen.insert(.event)
        case 5 where matches(key, "value"):
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
            e.status = try parseRequiredString("status")
        case 7 where matches(key, "variant"):
            e.variant = try parseRequiredString("variant")
            seen.insert(.variant)
        case 7 where matches(key, "user_id"):
            e.userID = try parseRequiredString("user_id")
            seen.insert(.user)
        case 7 where matches(key, "ttft_ms"):
            e.ttftMs = try parseOptionalNumber("ttft_ms")
        case 10 where matches(key, "experiment"):
            e.experiment = try parseRequiredString("experiment")
            seen.insert(.experiment)
        case 10 where matches(key, "request_id"):
            if isNull() { e.requestID = UnsafeRawBufferPointer(start: nil, count: 0) } else {
                e.requestID = try parseRequiredString("request_id")
                seen.insert(.request)
            }
        case 10 where matches(key, "latency_ms"):
            e.latencyMs = try parseNumber("latency_ms")
            seen.insert(.latency)
        case 12 where matches(key, "input_tokens"):
            e.inputTokens = try parseOptionalNumber("input_tokens")
        case 13 where matches(key, "output_tokens"):
            e.outputTokens = try parseOptionalNumber("output_tokens")
        case 15 where matches(key, "conversation_id"):
            if isNull() { e.conversationID = UnsafeRawBufferPointer(start: nil, count: 0) } else {
                e.conversationID = try parseRequiredString("conversation_id")
                seen.insert(.conversation)
            }
        default:
            try skipValue(depth: 0)
        }
    }

    @inline(__always) func matches(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        bytes.count == literal.utf8CodeUnitCount
            && (bytes.count == 0 || memcmp(bytes.baseAddress!, literal.utf8Start, bytes.count) == 0)
    }

    mutating func isNull() -> Bool {
        if pos + 4 <= end, byte(pos) == 0x6E, byte(pos + 1) == 0x75, byte(pos + 2) == 0x6C, byte(pos + 3) == 0x6C {
            pos += 4
            return true
        }
        return false
    }

    mutating func parseRequiredString(_ key: String) throws(EventParseError) -> UnsafeRawBufferPointer {
        guard pos < end, byte(pos) == 0x22 else { throw fail("\"\(key)\" must be a string, found \(describeHere())") }
        let s = try parseString()
        if s.count == 0 { throw fail("\"\(key)\" must not be empty", at: pos - 2) }
        return s
    }

    mutating func parseOptionalNumber(_ key: String) throws(EventParseError) -> Double {
        if isNull() { return .nan }
        return try parseNumber(key)
    }

    mutating func parseBool(_ key: String) throws(EventParseError) -> Bool {
        if pos + 4 <= end, byte(pos) == 0x74, byte(pos + 1) == 0x72, byte(pos + 2) == 0x75, byte(pos + 3) == 0x65 {
            pos += 4
            return true
        }
        if pos + 5 <= end, byte(pos) == 0x66, byte(pos + 1) == 0x61, byte(pos + 2) == 0x6C, byte(pos + 3) == 0x73, byte(pos + 4) == 0x65 {
            pos += 5
            return false
        }
        throw fail("\"\(key)\" must be a number or true/false, found \(describeHere())")
    }

    /// A JSON string at `pos` (which holds the opening quote); escapes are decoded into the scratch buffer.
    mutating func parseString() throws(EventParseError) -> UnsafeRawBufferPointer {
        let open = pos
        pos += 1
        let start = pos
        // Skip 8 bytes at a time while none is a quote, a backslash or a control character.
        while pos + 8 <= end {
            let w = base.loadUnaligned(fromByteOffset: pos, as: UInt64.self)
            let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
            let quote = w ^ (ones &* 0x22), backslash = w ^ (ones &* 0x5C)
            let special = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((w &- ones &* 0x20) & ~w)
            if special & highs != 0 { break }
            pos += 8
        }
        while pos < end {
            let c = byte(pos)
            if c == 0x22 {
                pos += 1
                return UnsafeRawBufferPointer(start: base + start, count: pos - 1 - start)
            }
            if c == 0x5C { return try parseEscapedString(from: start) }
            if c < 0x20 { throw fail("control character inside a string (escape it as \\u00\(c < 16 ? "0" : "")\(String(c, radix: 16)))") }
            pos += 1
        }
        throw fail("string not closed: missing '\"'", at: open)
    }

    mutating func parseEscapedString(from start: Int) throws(EventParseError) -> UnsafeRawBufferPointer {
        let out = scratch + scratchUsed
        var n = 0
        for i in start..<pos { out[n] = byte(i); n += 1 }
        while pos < end {
            let c = byte(pos)
            if c == 0x22 {
                pos += 1
                scratchUsed += n
                return UnsafeRawBufferPointer(start: out, count: n)
            }
            if c < 0x20 { throw fail("control character inside a string") }
            if c != 0x5C { out[n] = c; n += 1; pos += 1; continue }
            guard pos + 1 < end else { break }
            let e = byte(pos + 1)
            pos += 2
            switch e {
            case 0x22, 0x5C, 0x2F: out[n] = e; n += 1
            case 0x62: out[n] = 0x08; n += 1
            case 0x66: out[n] = 0x0C; n += 1
            case 0x6E: out[n] = 0x0A; n += 1
            case 0x72: out[n] = 0x0D; n += 1
            case 0x74: out[n] = 0x09; n += 1
            case 0x75:
                var scalar = try parseHex4()
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    guard pos + 1 < end, byte(pos) == 0x5C, byte(pos + 1) == 0x75 else {
                        throw fail("lone high surrogate \\u\(String(scalar, radix: 16)) without its low half")
                    }
                    pos += 2
                    let low = try parseHex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw fail("invalid surrogate pair") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw fail("lone low surrogate \\u\(String(scalar, radix: 16))")
                }
                // UTF-8 of a scalar is never longer than the 6+ bytes of its escape, so `out` cannot overrun.
                for b in UTF8.encode(Unicode.Scalar(scalar)!)! { out[n] = b; n += 1 }
            default:
                pos -= 1
                throw fail("invalid escape '\\\(describeHere())' in a string")
            }
        }
        throw fail("string not closed: missing '\"'", at: start - 1)
    }

    mutating func parseHex4() throws(EventParseError) -> UInt32 {
        guard pos + 4 <= end else { throw fail("\\u needs four hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = byte(pos)
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("\\u needs four hex digits, found \(describeHere())")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    /// A JSON number. Plain decimals of up to 15 significant digits take an exact fast path.
    mutating func parseNumber(_ key: String) throws(EventParseError) -> Double {
        let start = pos
        var negative = false
        if pos < end && byte(pos) == 0x2D { negative = true; pos += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        var fractionDigits = 0
        let intStart = pos
        while pos < end, case let c = byte(pos), c >= 0x30 && c <= 0x39 {
            mantissa = mantissa &* 10 &+ UInt64(c - 0x30)
            digits += 1
            pos += 1
        }
        if pos == intStart {
            pos = start
            if pos < end && byte(pos) == 0x22 {
                throw fail("\"\(key)\" must be a number, got a string")
            }
            throw fail("\"\(key)\" must be a number, found \(describeHere())")
        }
        if pos - intStart > 1 && byte(intStart) == 0x30 { throw fail("\"\(key)\": leading zeros are not valid JSON", at: start) }
        var slow = false
        if pos < end && byte(pos) == 0x2E {
            pos += 1
            let fracStart = pos
            while pos < end, case let c = byte(pos), c >= 0x30 && c <= 0x39 {
                mantissa = mantissa &* 10 &+ UInt64(c - 0x30)
                digits += 1
                fractionDigits += 1
                pos += 1
            }
            if pos == fracStart { throw fail("\"\(key)\": a digit must follow the decimal point") }
        }
        if pos < end && (byte(pos) == 0x65 || byte(pos) == 0x45) {
            slow = true
            pos += 1
            if pos < end && (byte(pos) == 0x2B || byte(pos) == 0x2D) { pos += 1 }
            let expStart = pos
            while pos < end, case let c = byte(pos), c >= 0x30 && c <= 0x39 { pos += 1 }
            if pos == expStart { throw fail("\"\(key)\": the exponent has no digits") }
        }
        if !slow && digits <= 15 && fractionDigits <= 22 {
            let v = Double(mantissa) / powersOfTen[fractionDigits]
            return negative ? -v : v
        }
        // Correctly rounded conversion of anything else.
        var buffer = [CChar](repeating: 0, count: pos - start + 1)
        for i in start..<pos { buffer[i - start] = CChar(bitPattern: byte(i)) }
        let v = strtod(buffer, nil)
        if !v.isFinite { throw fail("\"\(key)\": number out of range", at: start) }
        return v
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

    mutating func skipValue(depth: Int) throws(EventParseError) {
        guard depth < 64 else { throw fail("values nested more than 64 deep") }
        skipSpace()
        guard pos < end else { throw fail("expected a value, found the end of the line") }
        let c = byte(pos)
        switch c {
        case 0x22: _ = try parseString()
        case 0x7B, 0x5B:
            let close: UInt8 = c == 0x7B ? 0x7D : 0x5D
            pos += 1
            skipSpace()
            if pos < end && byte(pos) == close { pos += 1; return }
            while true {
                if c == 0x7B {
                    skipSpace()
                    guard pos < end, byte(pos) == 0x22 else { throw fail("expected a key in double quotes, found \(describeHere())") }
                    _ = try parseString()
                    try expect(0x3A, "':'")
                }
                try skipValue(depth: depth + 1)
                skipSpace()
                guard pos < end else { throw fail("unclosed \(c == 0x7B ? "object" : "array")") }
                let d = byte(pos)
                pos += 1
                if d == 0x2C { continue }
                if d == close { return }
                pos -= 1
                throw fail("expected ',' or '\(Character(Unicode.Scalar(close)))', found \(describeHere())")
            }
        case 0x74, 0x66: _ = try parseBool("value")
        case 0x6E:
            if !isNull() { throw fail("unexpected \(describeHere())") }
        default: _ = try parseNumber("value")
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
func civilFromDays(_ z0: Int) -> (year: Int, month: Int, day: Int) {
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
