#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The one JSON scanner of Bakeoff (RFC 8259). Everything that reads JSON goes through `JSONCursor`: the event
// parser and the OpenAI protocol readers use it directly (no tree, nothing allocated per field); configs,
// summaries and feedback bodies use the tree built on it (`JSONValue.parse`).
//
// Strict where JSON is strict: UTF-8 inside strings is validated, lone UTF-16 surrogates in `\u` escapes are
// errors (unless the cursor is told to decode them as U+FFFD), numbers that do not fit a double are errors,
// nesting is bounded and never recursive. Errors are structured (`JSONError`: what and the byte offset), so each
// reader words them for its users.

/// A JSON problem: what is wrong (`kind`), the 0-based byte offset where it is (`offset`), and where the
/// construct it belongs to starts (`start`: a string's opening quote, a number's or literal's first byte;
/// `offset` for structural problems).
package struct JSONError: Error, Sendable, Equatable {
    package enum Kind: Sendable, Equatable {
        /// No value can start here (or the input ended where one is needed).
        case expectedValue
        /// An object key (a string) is needed here.
        case expectedKey
        /// The `:` after a key is missing.
        case expectedColon
        /// After a member or element: neither a comma nor the closing bracket.
        case expectedCommaOrClose(object: Bool)
        /// A misspelled `true`, `false` or `null`; `offset` is the first byte that differs.
        case invalidLiteral
        /// A number without the digits it needs in its integer part, after its decimal point or in its exponent.
        case invalidNumber(NumberPart)
        /// `01`, `-00.5`: a number with a leading zero.
        case leadingZero
        /// A number whose value is too large for a double.
        case numberOutOfRange
        /// The input ends inside a string (`start` is its opening quote).
        case unterminatedString
        /// A raw control character (below U+0020) inside a string; `afterEscape` when an escape came before it.
        case controlCharacter(UInt8, afterEscape: Bool)
        /// `\x` for a byte `x` JSON does not define; `offset` is the backslash.
        case invalidEscape(UInt8)
        /// `\u` without four hex digits: `offset` is the first byte that is not one (or, `truncated`, where the
        /// input ends too early).
        case invalidHexEscape(backslash: Int, truncated: Bool)
        /// A `\u` escape of one half of a UTF-16 surrogate pair without the other half; `offset` is after it.
        case loneSurrogate(UInt32, backslash: Int)
        /// A high surrogate followed by a `\u` escape that is not a low one; `offset` is after the second.
        case invalidSurrogatePair(backslash: Int)
        /// Bytes inside a string that are not UTF-8.
        case invalidUTF8
        /// More nested arrays and objects than the limit.
        case tooDeep(limit: Int)
        /// Something after the value that should end the input.
        case trailingData
    }

    package enum NumberPart: Sendable, Equatable {
        case integer, fraction, exponent
    }

    package var kind: Kind
    package var offset: Int
    package var start: Int

    @inlinable package init(_ kind: Kind, offset: Int, start: Int? = nil) {
        self.kind = kind
        self.offset = offset
        self.start = start ?? offset
    }
}

/// A string's content (between the quotes) as offsets into the scanned bytes.
package struct JSONStringSpan: Sendable, Equatable {
    package var start: Int
    package var end: Int
    /// Whether the content holds a backslash escape (and so must be decoded before use).
    package var escaped: Bool

    @inlinable package init(start: Int, end: Int, escaped: Bool) {
        self.start = start
        self.end = end
        self.escaped = escaped
    }

    @inlinable package var isEmpty: Bool { start == end }
}

/// A forward-only JSON cursor over raw bytes. It never copies the input and never recurses: containers are
/// skipped with a bit stack, at most `maxDepth` (≤ 512) deep.
///
/// The caller walks the structure: `skipSpace`, look at `current`, then `scanString`/`readString`,
/// `readNumber`, `consume("null")`, `scanKey` and `nextItem` for objects and arrays, `skipValue` for what it
/// does not need.
package struct JSONCursor {
    package let base: UnsafeRawPointer
    package let end: Int
    package var pos: Int
    /// How many arrays and objects `skipValue` accepts around a value (at most 512).
    package var maxDepth: Int
    /// Whether a lone surrogate escape is an error; when false it decodes as U+FFFD (a proxy passing bodies on
    /// must accept what its upstreams accept).
    package var strictSurrogates: Bool
    /// Whether `skipValue` converts numbers to check that they fit a double (else it checks their grammar only).
    package var checkSkippedNumbers: Bool

    package static let depthLimit = 512

    @inlinable
    package init(base: UnsafeRawPointer, count: Int, maxDepth: Int = JSONCursor.depthLimit, strictSurrogates: Bool = true,
                 checkSkippedNumbers: Bool = true) {
        self.base = base
        self.end = count
        self.pos = 0
        self.maxDepth = min(maxDepth, JSONCursor.depthLimit)
        self.strictSurrogates = strictSurrogates
        self.checkSkippedNumbers = checkSkippedNumbers
    }

    /// A cursor over `buffer` (which may be empty).
    package init(_ buffer: UnsafeRawBufferPointer, maxDepth: Int = JSONCursor.depthLimit, strictSurrogates: Bool = true,
                 checkSkippedNumbers: Bool = true) {
        self.init(base: buffer.baseAddress ?? UnsafeRawPointer(emptyInput), count: buffer.baseAddress == nil ? 0 : buffer.count,
                  maxDepth: maxDepth, strictSurrogates: strictSurrogates, checkSkippedNumbers: checkSkippedNumbers)
    }

    @inlinable @inline(__always) package func byte(_ i: Int) -> UInt8 { base.load(fromByteOffset: i, as: UInt8.self) }

    @inlinable package var atEnd: Bool { pos >= end }

    /// The byte at `pos`, or 0 at the end (0 is never valid outside a string, so it compares unequal to every
    /// structural character).
    @inlinable package var current: UInt8 { pos < end ? byte(pos) : 0 }

    @inlinable @inline(__always)
    package mutating func skipSpace() {
        while pos < end {
            let c = byte(pos)
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { return }
        }
    }

    /// The bytes `[from, to)` of the input.
    @inlinable package func bytes(_ from: Int, _ to: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + from, count: to - from)
    }

    // MARK: Literals

    /// Consumes `word` (`true`, `false`, `null`) when the input has it at `pos`.
    @inlinable @inline(__always)
    package mutating func consume(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard pos + n <= end else { return false }
        let p = word.utf8Start
        for i in 0..<n where byte(pos + i) != p[i] { return false }
        pos += n
        return true
    }

    /// Reads `word` at `pos`, or fails at the first byte that differs.
    @inlinable
    package mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        let p = word.utf8Start
        for i in 0..<n {
            guard pos + i < end, byte(pos + i) == p[i] else { throw JSONError(.invalidLiteral, offset: pos + i, start: pos) }
        }
        pos += n
    }

    // MARK: Strings

    /// Validates the string whose opening quote is at `pos` and leaves `pos` after its closing quote.
    @inlinable
    package mutating func scanString() throws(JSONError) -> JSONStringSpan {
        try scanString(decodingInto: nil).span
    }

    /// Reads the string whose opening quote is at `pos`: a view of the input when it has no escapes, else its
    /// decoded UTF-8 written at `out` (which needs room for as many bytes as the string's content: decoding
    /// never lengthens it). Valid as long as the input and `out` are.
    @inlinable @inline(__always)
    package mutating func readString(into out: UnsafeMutablePointer<UInt8>) throws(JSONError) -> UnsafeRawBufferPointer {
        let (span, written) = try scanString(decodingInto: out)
        if !span.escaped { return UnsafeRawBufferPointer(start: base + span.start, count: span.end - span.start) }
        return UnsafeRawBufferPointer(start: out, count: written)
    }

    /// The string scanner: validates, and with `out` decodes escapes there (then returns the decoded length).
    @inlinable @inline(__always)
    package mutating func scanString(decodingInto out: UnsafeMutablePointer<UInt8>?) throws(JSONError) -> (span: JSONStringSpan, written: Int) {
        let open = pos
        pos += 1
        let start = pos
        while true {
            // Eight bytes at a time while none is a quote, a backslash, a control character or non-ASCII; then
            // straight to the first such byte (the lowest flag is exact: borrows only run upwards from a hit).
            while pos + 8 <= end {
                let w = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: UInt64.self))
                let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
                let quote = w ^ (ones &* 0x22), backslash = w ^ (ones &* 0x5C)
                let special = (((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | (w &- ones &* 0x20) | w) & highs
                if special != 0 {
                    pos += special.trailingZeroBitCount >> 3
                    break
                }
                pos += 8
            }
            guard pos < end else { throw JSONError(.unterminatedString, offset: open) }
            let c = byte(pos)
            if c == 0x22 {
                pos += 1
                return (JSONStringSpan(start: start, end: pos - 1, escaped: false), 0)
            }
            if c == 0x5C { break }
            if c < 0x20 { throw JSONError(.controlCharacter(c, afterEscape: false), offset: pos, start: open) }
            if c >= 0x80 { pos += try utf8SequenceLength(at: pos) } else { pos += 1 }
        }
        return try scanEscapedString(open: open, decodingInto: out)
    }

    /// The rest of a string from its first backslash (at `pos`).
    @inlinable
    package mutating func scanEscapedString(open: Int, decodingInto out: UnsafeMutablePointer<UInt8>?) throws(JSONError) -> (span: JSONStringSpan, written: Int) {
        let start = open + 1
        var n = 0
        if let out {
            for i in start..<pos { out[n] = byte(i); n += 1 }
        }
        @inline(__always) func put(_ b: UInt8) {
            if let out { out[n] = b; n += 1 }
        }
        while true {
            guard pos < end else { throw JSONError(.unterminatedString, offset: open) }
            let c = byte(pos)
            if c == 0x22 {
                pos += 1
                return (JSONStringSpan(start: start, end: pos - 1, escaped: true), n)
            }
            if c < 0x20 { throw JSONError(.controlCharacter(c, afterEscape: true), offset: pos, start: open) }
            if c >= 0x80 {
                let k = try utf8SequenceLength(at: pos)
                for i in 0..<k { put(byte(pos + i)) }
                pos += k
                continue
            }
            if c != 0x5C { put(c); pos += 1; continue }
            guard pos + 1 < end else { throw JSONError(.unterminatedString, offset: open) }
            let e = byte(pos + 1)
            switch e {
            case 0x22, 0x5C, 0x2F: put(e); pos += 2
            case 0x62: put(0x08); pos += 2
            case 0x66: put(0x0C); pos += 2
            case 0x6E: put(0x0A); pos += 2
            case 0x72: put(0x0D); pos += 2
            case 0x74: put(0x09); pos += 2
            case 0x75:
                let backslash = pos
                pos += 2
                var scalar = try hex4(backslash: backslash, open: open)
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    if pos + 1 < end, byte(pos) == 0x5C, byte(pos + 1) == 0x75 {
                        if strictSurrogates {
                            let second = pos
                            pos += 2
                            let low = try hex4(backslash: second, open: open)
                            guard low >= 0xDC00 && low < 0xE000 else {
                                throw JSONError(.invalidSurrogatePair(backslash: backslash), offset: pos, start: open)
                            }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if pos + 6 <= end, let low = peekHex4(at: pos + 2), low >= 0xDC00 && low < 0xE000 {
                            pos += 6
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            scalar = 0xFFFD
                        }
                    } else if strictSurrogates {
                        throw JSONError(.loneSurrogate(scalar, backslash: backslash), offset: pos, start: open)
                    } else {
                        scalar = 0xFFFD
                    }
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    if strictSurrogates { throw JSONError(.loneSurrogate(scalar, backslash: backslash), offset: pos, start: open) }
                    scalar = 0xFFFD
                }
                if out != nil {
                    // UTF-8 of a scalar is never longer than its escape, so `out` cannot overrun.
                    if scalar < 0x80 {
                        put(UInt8(scalar))
                    } else if scalar < 0x800 {
                        put(UInt8(0xC0 | (scalar >> 6)))
                        put(UInt8(0x80 | (scalar & 0x3F)))
                    } else if scalar < 0x10000 {
                        put(UInt8(0xE0 | (scalar >> 12)))
                        put(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
                        put(UInt8(0x80 | (scalar & 0x3F)))
                    } else {
                        put(UInt8(0xF0 | (scalar >> 18)))
                        put(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
                        put(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
                        put(UInt8(0x80 | (scalar & 0x3F)))
                    }
                }
            default:
                throw JSONError(.invalidEscape(e), offset: pos, start: open)
            }
        }
    }

    /// The four hex digits at `pos` (after `\u`), consumed.
    @inlinable
    package mutating func hex4(backslash: Int, open: Int) throws(JSONError) -> UInt32 {
        guard pos + 4 <= end else { throw JSONError(.invalidHexEscape(backslash: backslash, truncated: true), offset: pos, start: open) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let d = hexValue(byte(pos)) else {
                throw JSONError(.invalidHexEscape(backslash: backslash, truncated: false), offset: pos, start: open)
            }
            v = v << 4 | UInt32(d)
            pos += 1
        }
        return v
    }

    @inlinable package func peekHex4(at i: Int) -> UInt32? {
        var v: UInt32 = 0
        for k in 0..<4 {
            guard let d = hexValue(byte(i + k)) else { return nil }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// The length of the valid UTF-8 sequence starting at `i` (whose first byte is >= 0x80).
    @inlinable
    package func utf8SequenceLength(at i: Int) throws(JSONError) -> Int {
        guard let n = validUTF8SequenceLength(base + i, available: end - i) else { throw JSONError(.invalidUTF8, offset: i) }
        return n
    }

    /// A key and its colon; leaves `pos` at the start of the value.
    @inlinable
    package mutating func scanKey() throws(JSONError) -> JSONStringSpan {
        guard pos < end, byte(pos) == 0x22 else { throw JSONError(.expectedKey, offset: pos) }
        let key = try scanString()
        skipSpace()
        guard pos < end, byte(pos) == 0x3A else { throw JSONError(.expectedColon, offset: pos) }
        pos += 1
        skipSpace()
        return key
    }

    // MARK: Containers

    /// After a container's opening bracket (or after an item): whether another item follows. Consumes the
    /// comma (and the space after it), or the closing bracket when it returns false. `first` is true before
    /// the first item.
    @inlinable @inline(__always)
    package mutating func nextItem(_ first: inout Bool, close: UInt8) throws(JSONError) -> Bool {
        skipSpace()
        guard pos < end else {
            throw JSONError(first ? (close == 0x7D ? .expectedKey : .expectedValue) : .expectedCommaOrClose(object: close == 0x7D), offset: pos)
        }
        let c = byte(pos)
        if first {
            first = false
            if c == close { pos += 1; return false }
            return true
        }
        if c == 0x2C { pos += 1; skipSpace(); return true }
        if c == close { pos += 1; return false }
        throw JSONError(.expectedCommaOrClose(object: close == 0x7D), offset: pos)
    }

    // MARK: Values

    /// Skips the value at `pos` (leading space allowed), validating it. `depth` is the number of arrays and
    /// objects already open around it; one more than `maxDepth` is an error.
    @inlinable
    package mutating func skipValue(depth: Int) throws(JSONError) {
        var isObject = InlineArray<8, UInt64>(repeating: 0)  // one bit per open container: 1 for an object
        var level = 0
        value: while true {
            skipSpace()
            guard pos < end else { throw JSONError(.expectedValue, offset: pos) }
            let c = byte(pos)
            switch c {
            case 0x22:
                _ = try scanString()
            case 0x7B, 0x5B:
                if depth + level >= maxDepth { throw JSONError(.tooDeep(limit: maxDepth), offset: pos) }
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
            case 0x2D, 0x30...0x39:
                if checkSkippedNumbers { _ = try readNumber() } else { try skipNumber() }
            default: throw JSONError(.expectedValue, offset: pos)
            }
            // After a value: close what ends here, or go on with the next item.
            while level > 0 {
                skipSpace()
                let l = level - 1
                let object = isObject[l >> 6] & (1 << UInt64(l & 63)) != 0
                guard pos < end else { throw JSONError(.expectedCommaOrClose(object: object), offset: pos) }
                let d = byte(pos)
                if d == 0x2C {
                    pos += 1
                    skipSpace()
                    if object { _ = try scanKey() }
                    continue value
                }
                guard d == (object ? 0x7D : 0x5D) else { throw JSONError(.expectedCommaOrClose(object: object), offset: pos) }
                pos += 1
                level -= 1
            }
            return
        }
    }

    // MARK: Numbers

    /// Checks the number at `pos` against JSON's grammar and moves past it.
    @inlinable
    package mutating func skipNumber() throws(JSONError) {
        _ = try scanNumber(convert: false)
    }

    /// The number at `pos`, correctly rounded to a double; an error when it does not fit one.
    @inlinable
    package mutating func readNumber() throws(JSONError) -> Double {
        try scanNumber(convert: true)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. Plain decimals of up to 15 significant digits take an
    /// exact fast path (both operands of the one division are exact doubles); anything else goes to `strtod`.
    @inlinable @inline(__always)
    package mutating func scanNumber(convert: Bool) throws(JSONError) -> Double {
        let start = pos
        var negative = false
        if pos < end && byte(pos) == 0x2D { negative = true; pos += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        var fractionDigits = 0
        let intStart = pos
        while pos < end, case let c = byte(pos), c &- 0x30 < 10 {
            mantissa = mantissa &* 10 &+ UInt64(c &- 0x30)
            pos += 1
        }
        digits = pos - intStart
        if digits == 0 { throw JSONError(.invalidNumber(.integer), offset: pos, start: start) }
        if digits > 1 && byte(intStart) == 0x30 { throw JSONError(.leadingZero, offset: start) }
        var plain = true
        if pos < end && byte(pos) == 0x2E {
            pos += 1
            let fracStart = pos
            while pos < end, case let c = byte(pos), c &- 0x30 < 10 {
                mantissa = mantissa &* 10 &+ UInt64(c &- 0x30)
                pos += 1
            }
            fractionDigits = pos - fracStart
            if fractionDigits == 0 { throw JSONError(.invalidNumber(.fraction), offset: pos, start: start) }
            digits += fractionDigits
        }
        if pos < end && (byte(pos) == 0x65 || byte(pos) == 0x45) {
            plain = false
            pos += 1
            if pos < end && (byte(pos) == 0x2B || byte(pos) == 0x2D) { pos += 1 }
            let expStart = pos
            while pos < end, byte(pos) &- 0x30 < 10 { pos += 1 }
            if pos == expStart { throw JSONError(.invalidNumber(.exponent), offset: pos, start: start) }
        }
        guard convert else { return 0 }
        if plain && digits <= 15 {
            // fractionDigits <= 15 < 23: the power of ten is exact too.
            let v = Double(mantissa) / powersOfTen[fractionDigits]
            return negative ? -v : v
        }
        // Correctly rounded conversion of anything else.
        let v = decimalToDouble(base + start, count: pos - start)
        if !v.isFinite { throw JSONError(.numberOutOfRange, offset: start) }
        return v
    }

    /// The number at `pos` as an integer: its integer part when it has a fraction, exponents applied; nil when
    /// the value is not a number (then skipped) or out of the range of `Int`. Leaves `pos` after the value.
    @inlinable
    package mutating func scanInt() throws(JSONError) -> Int? {
        let start = pos
        guard current == 0x2D || current &- 0x30 < 10 else { try skipValue(depth: 1); return nil }
        try skipNumber()
        var v = 0
        var i = start
        let negative = byte(i) == 0x2D
        if negative { i += 1 }
        var plain = true
        while i < pos {
            let c = byte(i)
            guard c &- 0x30 < 10 else { plain = false; break }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(c - 0x30))
            if o1 || o2 { plain = false; break }
            v = a
            i += 1
        }
        if plain { return negative ? -v : v }
        let d = decimalToDouble(base + start, count: pos - start)
        guard d.isFinite, abs(d) < 9.0e18 else { return nil }
        return Int(d)
    }

    // MARK: Reading strings

    /// Whether the string equals `literal` (comparing decoded text when it has escapes).
    @inlinable
    package func equals(_ s: JSONStringSpan, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        let p = literal.utf8Start
        if !s.escaped {
            guard s.end - s.start == n else { return false }
            for i in 0..<n where byte(s.start + i) != p[i] { return false }
            return true
        }
        return decodeBytes(s).elementsEqual(UnsafeBufferPointer(start: p, count: n))
    }

    /// Whether the string equals `text`.
    @inlinable
    package func equals(_ s: JSONStringSpan, _ text: String) -> Bool {
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

    /// The string's text (a validated span; lone surrogates become U+FFFD when the cursor allows them).
    package func decode(_ s: JSONStringSpan) -> String {
        if !s.escaped { return String(decoding: bytes(s.start, s.end), as: UTF8.self) }
        return String(decoding: decodeBytes(s), as: UTF8.self)
    }

    /// Appends the string's text to `out`.
    package func decode(_ s: JSONStringSpan, appendingTo out: inout String) {
        if !s.escaped {
            out += String(decoding: bytes(s.start, s.end), as: UTF8.self)
        } else {
            out += String(decoding: decodeBytes(s), as: UTF8.self)
        }
    }

    /// The UTF-8 of a validated string with its escapes decoded (by the same scanner that validated it).
    package func decodeBytes(_ s: JSONStringSpan) -> [UInt8] {
        if !s.escaped { return Array(bytes(s.start, s.end)) }
        let capacity = s.end - s.start
        return [UInt8](unsafeUninitializedCapacity: max(capacity, 1)) { buffer, count in
            var t = self
            t.pos = s.start - 1
            count = (try? t.scanString(decodingInto: buffer.baseAddress!).written) ?? 0
        }
    }

    /// What kind of value starts with byte `c`, for messages: "a string", "an array"...
    package static func kind(_ c: UInt8) -> String {
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

/// What an empty buffer's cursor points at (never read: its `end` is 0).
nonisolated(unsafe) private let emptyInput = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)

/// 10⁰ … 10²², all exact doubles.
package let powersOfTen: [Double] = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
                                     1e17, 1e18, 1e19, 1e20, 1e21, 1e22]

@inlinable @inline(__always) package func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x41...0x46: return c - 0x41 + 10
    case 0x61...0x66: return c - 0x61 + 10
    default: return nil
    }
}

/// The length of the well-formed UTF-8 sequence at `p` (first byte >= 0x80), or nil: no overlong forms, no
/// surrogates, nothing above U+10FFFF (RFC 3629).
@inlinable
package func validUTF8SequenceLength(_ p: UnsafeRawPointer, available: Int) -> Int? {
    let c = p.load(as: UInt8.self)
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
    default: return nil
    }
    guard n <= available else { return nil }
    let second = p.load(fromByteOffset: 1, as: UInt8.self)
    guard second >= low && second <= high else { return nil }
    for k in 2..<n where p.load(fromByteOffset: k, as: UInt8.self) & 0xC0 != 0x80 { return nil }
    return n
}

/// Whether `bytes` are well-formed UTF-8.
package func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    guard let p = bytes.baseAddress else { return true }
    let n = bytes.count
    var i = 0
    while i < n {
        // ASCII eight bytes at a time.
        while i + 8 <= n, p.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 { i += 8 }
        guard i < n else { break }
        if p.load(fromByteOffset: i, as: UInt8.self) < 0x80 { i += 1; continue }
        guard let k = validUTF8SequenceLength(p + i, available: n - i) else { return false }
        i += k
    }
    return true
}

/// The double nearest to the decimal number text at `p` (JSON's grammar, already checked), ±infinity when it
/// is too large.
@inlinable
package func decimalToDouble(_ p: UnsafeRawPointer, count: Int) -> Double {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + 1) { buffer in
        for i in 0..<count { buffer[i] = CChar(bitPattern: p.load(fromByteOffset: i, as: UInt8.self)) }
        buffer[count] = 0
        return strtod(buffer.baseAddress!, nil)
    }
}
