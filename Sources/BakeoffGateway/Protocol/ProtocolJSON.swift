import BakeoffCore

// How the OpenAI protocol readers use the shared JSON scanner (`JSONCursor`, in BakeoffCore).

extension JSONCursor {
    /// A cursor over a body or payload of the OpenAI protocol, nil when it is empty. The gateway passes bodies
    /// upstream as sent, so it accepts what upstream servers accept: a lone surrogate escape decodes as U+FFFD,
    /// and numbers are checked against JSON's grammar, not converted.
    static func openAI(_ buffer: UnsafeRawBufferPointer) -> JSONCursor? {
        guard buffer.count > 0 else { return nil }
        return JSONCursor(buffer, strictSurrogates: false, checkSkippedNumbers: false)
    }
}

extension JSONError {
    /// The problem in the words of the endpoints' 400s: `unexpected '}' at byte 57`.
    func protocolMessage(_ s: JSONCursor) -> String {
        switch kind {
        case .unterminatedString, .invalidHexEscape(_, truncated: true):
            return "unterminated string starting at byte \(start)"
        case .controlCharacter(let c, _):
            return "unescaped control character 0x\(hex2(c)) in a string at byte \(offset)"
        case .invalidEscape(let e):
            return "invalid escape '\\\(printable(e))' at byte \(offset)"
        case .invalidHexEscape(let backslash, _), .loneSurrogate(_, let backslash), .invalidSurrogatePair(let backslash):
            return "invalid \\u escape at byte \(backslash)"
        case .invalidUTF8:
            return "invalid UTF-8 at byte \(offset)"
        case .leadingZero:
            return "leading zero in a number at byte \(start)"
        case .numberOutOfRange:
            return "number out of range at byte \(start)"
        case .tooDeep(let limit):
            return "nesting deeper than \(limit) levels at byte \(offset)"
        case .expectedValue, .expectedKey, .expectedColon, .expectedCommaOrClose, .invalidLiteral, .invalidNumber, .trailingData:
            if offset >= s.end { return "unexpected end of input at byte \(offset)" }
            let c = s.byte(offset)
            if c >= 0x20 && c < 0x7F { return "unexpected '\(Character(Unicode.Scalar(c)))' at byte \(offset)" }
            return "unexpected byte 0x\(hex2(c)) at byte \(offset)"
        }
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
