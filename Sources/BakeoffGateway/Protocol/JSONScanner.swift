import BakeoffHTTP
/// A syntax error: what went wrong and the 0-based byte offset where it did.
struct JSONSyntaxError: Error {
    var offset: Int
    /// The whole description, with the offset: `unexpected '}' at byte 57`.
    var message: String
}

/// A string's content (without the quotes) as offsets into the scanned buffer.
struct StringSpan {
    var start: Int
    var end: Int
    /// Whether the content holds a backslash escape (and so must be decoded before use).
    var escaped: Bool
}

/// A forward-only JSON scanner over raw bytes: validates strictly (RFC 8259, UTF-8 inside strings, nesting at
/// most `maxDepth` deep) and hands out offsets, never copies. Containers are skipped without recursion, so no
/// input can overflow the stack.
struct JSONScanner {
    static let maxDepth = 512

    let base: UnsafeRawPointer
    let end: Int
    var pos = 0

    /// Nil for an empty buffer.
    init?(_ buffer: UnsafeRawBufferPointer) {
        guard let b = buffer.baseAddress, buffer.count > 0 else { return nil }
        base = b
        end = buffer.count
    }

    @inline(__always) func byte(_ i: Int) -> UInt8 { base.load(fromByteOffset: i, as: UInt8.self) }

    @inline(__always) var atEnd: Bool { pos >= end }

    /// The byte at `pos`, or 0 at the end (0 is never valid outside a string, so it compares unequal to all
    /// structural characters).
    @inline(__always) var current: UInt8 { pos < end ? byte(pos) : 0 }

    @inline(__always) mutating func skipSpace() {
        while pos < end {
            let c = byte(pos)
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { return }
        }
    }

    // MARK: Errors

    func fail(_ what: String, at offset: Int) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset, message: "\(what) at byte \(offset)")
    }

    func unexpected(at offset: Int) -> JSONSyntaxError {
        if offset >= end { return fail("unexpected end of input", at: offset) }
        let c = byte(offset)
        if c >= 0x20 && c < 0x7F { return fail("unexpected '\(Character(Unicode.Scalar(c)))'", at: offset) }
        return fail("unexpected byte 0x\(hex2(c))", at: offset)
    }

    // MARK: Strings

    /// Scans the string whose opening quote is at `pos`; leaves `pos` after the closing quote.
    mutating func scanString() throws(JSONSyntaxError) -> StringSpan {
        let open = pos
        pos += 1
        let start = pos
        var escaped = false
        while true {
            // Eight bytes at a time while none is a quote, a backslash, a control character or non-ASCII.
            while pos + 8 <= end {
                let w = base.loadUnaligned(fromByteOffset: pos, as: UInt64.self)
                let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
                let quote = w ^ (ones &* 0x22), backslash = w ^ (ones &* 0x5C)
                let special = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | (w &- ones &* 0x20) | w
                if special & highs != 0 { break }
                pos += 8
            }
            guard pos < end else { throw fail("unterminated string starting", at: open) }
            let c = byte(pos)
            if c == 0x22 {
                pos += 1
                return StringSpan(start: start, end: pos - 1, escaped: escaped)
            } else if c == 0x5C {
                escaped = true
                guard pos + 1 < end else { throw fail("unterminated string starting", at: open) }
                switch byte(pos + 1) {
                case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74: pos += 2
                case 0x75:
                    guard pos + 6 <= end else { throw fail("unterminated string starting", at: open) }
                    for i in (pos + 2)..<(pos + 6) where hexValue(byte(i)) == nil {
                        throw fail("invalid \\u escape", at: pos)
                    }
                    pos += 6
                default:
                    throw fail("invalid escape '\\\(printable(byte(pos + 1)))'", at: pos)
                }
            } else if c < 0x20 {
                throw fail("unescaped control character 0x\(hex2(c)) in a string", at: pos)
            } else if c >= 0x80 {
                pos += try utf8SequenceLength(at: pos)
            } else {
                pos += 1
            }
        }
    }

    /// The length of the valid UTF-8 sequence starting at `i` (whose first byte is >= 0x80).
    func utf8SequenceLength(at i: Int) throws(JSONSyntaxError) -> Int {
        let c = byte(i)
        let n: Int
        var low: UInt8 = 0x80, high: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: n = 2
        case 0xE0: n = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE, 0xEF: n = 3
        case 0xED: n = 3; high = 0x9F
        case 0xF0: n = 4; low = 0x90
        case 0xF1...0xF3: n = 4
        case 0xF4: n = 4; high = 0x8F
        default: throw fail("invalid UTF-8", at: i)
        }
        guard i + n <= end else { throw fail("invalid UTF-8", at: i) }
        let second = byte(i + 1)
        guard second >= low && second <= high else { throw fail("invalid UTF-8", at: i) }
        for k in 2..<n where byte(i + k) & 0xC0 != 0x80 { throw fail("invalid UTF-8", at: i) }
        return n
    }

    /// A key and its colon; leaves `pos` at the start of the value.
    mutating func scanKey() throws(JSONSyntaxError) -> StringSpan {
        guard pos < end, byte(pos) == 0x22 else { throw unexpected(at: pos) }
        let key = try scanString()
        skipSpace()
        guard pos < end, byte(pos) == 0x3A else { throw unexpected(at: pos) }
        pos += 1
        skipSpace()
        return key
    }

    // MARK: Containers

    /// After a container's opening bracket (or a member's value): whether another item follows. Consumes the
    /// comma, or the closing bracket when it returns false. `first` is true before the first item.
    @inline(__always)
    mutating func nextItem(_ first: inout Bool, close: UInt8) throws(JSONSyntaxError) -> Bool {
        skipSpace()
        guard pos < end else { throw unexpected(at: pos) }
        let c = byte(pos)
        if first {
            first = false
            if c == close { pos += 1; return false }
            return true
        }
        if c == 0x2C { pos += 1; skipSpace(); return true }
        if c == close { pos += 1; return false }
        throw unexpected(at: pos)
    }

    // MARK: Values

    /// Skips the value at `pos` (leading whitespace allowed), validating it. `depth` is the number of containers
    /// already open around it.
    mutating func skipValue(depth: Int) throws(JSONSyntaxError) {
        var isObject = InlineArray<8, UInt64>(repeating: 0)  // one bit per open container: 1 for an object
        var level = 0
        value: while true {
            skipSpace()
            guard pos < end else { throw unexpected(at: pos) }
            let c = byte(pos)
            switch c {
            case 0x22:
                _ = try scanString()
            case 0x7B, 0x5B:
                if depth + level >= JSONScanner.maxDepth {
                    throw fail("nesting deeper than \(JSONScanner.maxDepth) levels", at: pos)
                }
                let object = c == 0x7B
                if object { isObject[level >> 6] |= 1 << UInt64(level & 63) } else { isObject[level >> 6] &= ~(1 << UInt64(level & 63)) }
                level += 1
                pos += 1
                skipSpace()
                if current == (object ? 0x7D : 0x5D) {
                    pos += 1
                    level -= 1
                } else {
                    if object { _ = try scanKey() }
                    continue value
                }
            case 0x74: try literal("true")
            case 0x66: try literal("false")
            case 0x6E: try literal("null")
            case 0x2D, 0x30...0x39: try skipNumber()
            default: throw unexpected(at: pos)
            }
            // After a value: close what ends here, or go on with the next item.
            while level > 0 {
                skipSpace()
                guard pos < end else { throw unexpected(at: pos) }
                let l = level - 1
                let object = isObject[l >> 6] & (1 << UInt64(l & 63)) != 0
                let d = byte(pos)
                if d == 0x2C {
                    pos += 1
                    skipSpace()
                    if object { _ = try scanKey() }
                    continue value
                }
                guard d == (object ? 0x7D : 0x5D) else { throw unexpected(at: pos) }
                pos += 1
                level -= 1
            }
            return
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        let p = word.utf8Start
        for i in 0..<n {
            guard pos + i < end, byte(pos + i) == p[i] else { throw unexpected(at: pos + i) }
        }
        pos += n
    }

    mutating func skipNumber() throws(JSONSyntaxError) {
        let start = pos
        if current == 0x2D { pos += 1 }
        guard isDigit(current) else { throw unexpected(at: pos) }
        if current == 0x30 {
            pos += 1
            if isDigit(current) { throw fail("leading zero in a number", at: start) }
        } else {
            while isDigit(current) { pos += 1 }
        }
        if current == 0x2E {
            pos += 1
            guard isDigit(current) else { throw unexpected(at: pos) }
            while isDigit(current) { pos += 1 }
        }
        if current == 0x65 || current == 0x45 {
            pos += 1
            if current == 0x2B || current == 0x2D { pos += 1 }
            guard isDigit(current) else { throw unexpected(at: pos) }
            while isDigit(current) { pos += 1 }
        }
    }

    /// A number's value as an integer (the integer part when it has a fraction; exponents applied), or nil when
    /// the value at `pos` is not a number. Leaves `pos` after the number.
    mutating func scanInt() throws(JSONSyntaxError) -> Int? {
        let start = pos
        guard current == 0x2D || isDigit(current) else { try skipValue(depth: 1); return nil }
        try skipNumber()
        var v = 0
        var i = start
        let negative = byte(i) == 0x2D
        if negative { i += 1 }
        var plain = true
        while i < pos {
            let c = byte(i)
            guard isDigit(c) else { plain = false; break }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(c - 0x30))
            if o1 || o2 { plain = false; break }
            v = a
            i += 1
        }
        if plain { return negative ? -v : v }
        guard let d = Double(String(decoding: UnsafeRawBufferPointer(start: base + start, count: pos - start), as: UTF8.self)),
              d.isFinite, abs(d) < 9.0e18 else { return nil }
        return Int(d)
    }

    // MARK: Reading strings

    /// Whether the string equals `literal` (comparing decoded text when it has escapes).
    func equals(_ s: StringSpan, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        if !s.escaped {
            guard s.end - s.start == n else { return false }
            let p = literal.utf8Start
            for i in 0..<n where byte(s.start + i) != p[i] { return false }
            return true
        }
        return decodeBytes(s) == Array(UnsafeBufferPointer(start: literal.utf8Start, count: n))
    }

    /// Whether the string equals `text`.
    func equals(_ s: StringSpan, _ text: String) -> Bool {
        if !s.escaped {
            var i = s.start
            for u in text.utf8 {
                guard i < s.end, byte(i) == u else { return false }
                i += 1
            }
            return i == s.end
        }
        return decodeBytes(s).elementsEqual(text.utf8)
    }

    func decode(_ s: StringSpan) -> String {
        if !s.escaped { return String(decoding: UnsafeRawBufferPointer(start: base + s.start, count: s.end - s.start), as: UTF8.self) }
        return String(decoding: decodeBytes(s), as: UTF8.self)
    }

    /// Appends the decoded string to `out` (lone surrogates become U+FFFD).
    func decode(_ s: StringSpan, appendingTo out: inout String) {
        if !s.escaped {
            out += String(decoding: UnsafeRawBufferPointer(start: base + s.start, count: s.end - s.start), as: UTF8.self)
        } else {
            out += String(decoding: decodeBytes(s), as: UTF8.self)
        }
    }

    /// The UTF-8 of a validated string with its escapes decoded.
    func decodeBytes(_ s: StringSpan) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.end - s.start)
        var i = s.start
        while i < s.end {
            let c = byte(i)
            if c != 0x5C { out.append(c); i += 1; continue }
            let e = byte(i + 1)
            i += 2
            switch e {
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var scalar = hex4(at: i)
                i += 4
                if scalar >= 0xD800 && scalar < 0xDC00, i + 6 <= s.end, byte(i) == 0x5C, byte(i + 1) == 0x75 {
                    let low = hex4(at: i + 2)
                    if low >= 0xDC00 && low < 0xE000 {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                }
                let u = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                out.append(contentsOf: UTF8.encode(u)!)
            default: out.append(e)  // " \ /
            }
        }
        return out
    }

    private func hex4(at i: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 4 | UInt32(hexValue(byte(i + k)) ?? 0) }
        return v
    }

    /// What kind of value starts with byte `c`, for messages: "a string", "an array"...
    static func kind(_ c: UInt8) -> String {
        switch c {
        case 0x22: return "a string"
        case 0x7B: return "an object"
        case 0x5B: return "an array"
        case 0x74, 0x66: return "a boolean"
        case 0x6E: return "null"
        default: return "a number"
        }
    }
}

@inline(__always) func isDigit(_ c: UInt8) -> Bool { c &- 0x30 < 10 }

@inline(__always) func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x41...0x46: return c - 0x41 + 10
    case 0x61...0x66: return c - 0x61 + 10
    default: return nil
    }
}

func hex2(_ c: UInt8) -> String {
    let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F"]
    return String([digits[Int(c >> 4)], digits[Int(c & 15)]])
}

func printable(_ c: UInt8) -> String {
    c >= 0x20 && c < 0x7F ? String(Character(Unicode.Scalar(c))) : "x" + hex2(c)
}

/// The JSON string literal of `s`, as UTF-8 (with the quotes).
func jsonQuoted(_ s: String) -> [UInt8] {
    var out: [UInt8] = [0x22]
    jsonEscape(s, into: &out)
    out.append(0x22)
    return out
}

/// Appends `s` escaped for the inside of a JSON string.
func jsonEscape(_ s: String, into out: inout [UInt8]) {
    out.reserveCapacity(out.count + s.utf8.count + 2)
    for u in s.utf8 {
        switch u {
        case 0x22: out += [0x5C, 0x22]
        case 0x5C: out += [0x5C, 0x5C]
        case 0x0A: out += [0x5C, 0x6E]
        case 0x0D: out += [0x5C, 0x72]
        case 0x09: out += [0x5C, 0x74]
        case 0..<0x20: out += [0x5C, 0x75, 0x30, 0x30] + Array(hex2(u).lowercased().utf8)
        default: out.append(u)
        }
    }
}
