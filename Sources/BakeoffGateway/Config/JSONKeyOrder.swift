import Foundation
import BakeoffCore
import BakeoffHTTP

/// The order of keys in a JSON document, which `JSONDecoder` does not keep (it decodes objects into
/// dictionaries). Used where order matters to the gateway: upstream headers and sampling parameters are
/// sent in the order the config gives them.
///
/// The document has already been decoded by `JSONDecoder`; this scanner follows its structure, and on
/// anything unexpected gives up (nil) and callers fall back to sorted keys. It also notes keys that appear
/// twice in one object, which the decoder silently resolves to one of them, and, since `JSONDecoder` on Linux
/// says only "not valid JSON", locates syntax errors by line and column.
indirect enum JSONKeyOrder: Sendable {
    case scalar
    case array([JSONKeyOrder])
    case object([(key: String, value: JSONKeyOrder)])

    /// The child under `key` of an object.
    func child(_ key: String) -> JSONKeyOrder? {
        guard case .object(let entries) = self else { return nil }
        return entries.last { $0.key == key }?.value
    }

    /// The element at `index` of an array.
    func element(_ index: Int) -> JSONKeyOrder? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }

    /// The keys of an object in document order, without repeats (nil when not an object).
    var keys: [String]? {
        guard case .object(let entries) = self else { return nil }
        var seen: Set<String> = []
        return entries.map(\.key).filter { seen.insert($0).inserted }
    }

    /// Scans `data`; returns the structure and the JSON paths of keys repeated within one object.
    static func scan(_ data: Data) -> (order: JSONKeyOrder, duplicates: [String])? {
        var scanner = Scanner(bytes: [UInt8](data))
        guard let order = scanner.document() else { return nil }
        return (order, scanner.duplicates)
    }

    /// Where `data` stops being JSON: `line L, column C: what was expected`, or nil if the scanner finds no
    /// syntax error (the problem is then elsewhere, e.g. invalid UTF-8 or a number out of range).
    static func syntaxError(_ data: Data) -> String? {
        var scanner = Scanner(bytes: [UInt8](data))
        guard scanner.document() == nil, let (offset, message) = scanner.error else { return nil }
        let bytes = scanner.bytes
        let before = bytes[..<min(offset, bytes.count)]
        let line = before.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        let lineStart = before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        let column = String(decoding: bytes[lineStart..<min(offset, bytes.count)], as: UTF8.self).count + 1
        return "line \(line), column \(column): \(message)"
    }

    private struct Scanner {
        let bytes: [UInt8]
        var i = 0
        var duplicates: [String] = []
        var depth = 0
        /// The first syntax error: byte offset and what was expected.
        var error: (Int, String)?

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func fail<T>(_ message: String, at offset: Int? = nil) -> T? {
            if error == nil { error = (offset ?? i, message) }
            return nil
        }

        mutating func document() -> JSONKeyOrder? {
            // A UTF-8 byte order mark, which JSONDecoder accepts.
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
            guard let order = value(path: "") else { return nil }
            skipSpace()
            guard i == bytes.count else { return fail("unexpected text after the end of the top-level value") }
            return order
        }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        func at(_ c: Unicode.Scalar) -> Bool { i < bytes.count && bytes[i] == UInt8(ascii: c) }

        mutating func value(path: String) -> JSONKeyOrder? {
            skipSpace()
            guard i < bytes.count else { return fail("unexpected end of the file: a value is missing (or a closing bracket)") }
            guard depth < 512 else { return fail("nested too deeply") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                depth += 1
                defer { depth -= 1 }
                var entries: [(key: String, value: JSONKeyOrder)] = []
                var seen: Set<String> = []
                skipSpace()
                if at("}") { i += 1; return .object(entries) }
                while true {
                    skipSpace()
                    guard at("\"") else { return fail("expected a key in double quotes") }
                    guard let key = string() else { return nil }
                    skipSpace()
                    guard at(":") else { return fail("expected ':' after the key \"\(key)\"") }
                    i += 1
                    let childPath = path.isEmpty ? key : path + "." + key
                    if !seen.insert(key).inserted { duplicates.append(childPath) }
                    guard let v = value(path: childPath) else { return nil }
                    entries.append((key, v))
                    skipSpace()
                    if at(",") {
                        i += 1
                        skipSpace()
                        if at("}") { i += 1; return .object(entries) }  // a trailing comma, which JSONDecoder accepts
                        continue
                    }
                    if at("}") { i += 1; return .object(entries) }
                    return fail("expected ',' or '}' after the value of \"\(key)\" (a missing comma?)")
                }
            case UInt8(ascii: "["):
                i += 1
                depth += 1
                defer { depth -= 1 }
                var items: [JSONKeyOrder] = []
                skipSpace()
                if at("]") { i += 1; return .array(items) }
                while true {
                    guard let v = value(path: "\(path)[\(items.count)]") else { return nil }
                    items.append(v)
                    skipSpace()
                    if at(",") {
                        i += 1
                        skipSpace()
                        if at("]") { i += 1; return .array(items) }
                        continue
                    }
                    if at("]") { i += 1; return .array(items) }
                    return fail("expected ',' or ']' after an array element (a missing comma?)")
                }
            case UInt8(ascii: "\""):
                return string() == nil ? nil : .scalar
            default:
                // A number, true, false or null: up to the next delimiter.
                let start = i
                while i < bytes.count, !isDelimiter(bytes[i]) { i += 1 }
                let word = String(decoding: bytes[start..<i], as: UTF8.self)
                guard word == "true" || word == "false" || word == "null" || isNumber(bytes[start..<i]) else {
                    return fail(word.isEmpty ? "expected a value" : "\(word.prefix(20)) is not a JSON value (strings need double quotes)", at: start)
                }
                return .scalar
            }
        }

        func isDelimiter(_ b: UInt8) -> Bool {
            b == UInt8(ascii: ",") || b == UInt8(ascii: "]") || b == UInt8(ascii: "}") || b == UInt8(ascii: ":")
                || b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09
        }

        /// JSON's number grammar: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
        func isNumber(_ s: ArraySlice<UInt8>) -> Bool {
            var j = s.startIndex
            func digits() -> Int {
                let from = j
                while j < s.endIndex, (0x30...0x39).contains(s[j]) { j += 1 }
                return j - from
            }
            if j < s.endIndex, s[j] == UInt8(ascii: "-") { j += 1 }
            guard j < s.endIndex else { return false }
            if s[j] == UInt8(ascii: "0") { j += 1 } else if digits() == 0 { return false }
            if j < s.endIndex, s[j] == UInt8(ascii: ".") {
                j += 1
                guard digits() > 0 else { return false }
            }
            if j < s.endIndex, s[j] == UInt8(ascii: "e") || s[j] == UInt8(ascii: "E") {
                j += 1
                if j < s.endIndex, s[j] == UInt8(ascii: "+") || s[j] == UInt8(ascii: "-") { j += 1 }
                guard digits() > 0 else { return false }
            }
            return j == s.endIndex
        }

        /// A string starting at `i` (which must be a quote), decoded.
        mutating func string() -> String? {
            let start = i
            i += 1
            var out: [UInt8] = []
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\"") {
                    i += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if b < 0x20 { return fail(b == 0x0A ? "a line break inside a string (unclosed quote? write \\n for a line break)" : "a control character inside a string") }
                if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
                guard i + 1 < bytes.count else { break }
                let e = bytes[i + 1]
                i += 2
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var unit = hex4() else { return fail("\\u must be followed by four hex digits", at: i - 2) }
                    if (0xD800..<0xDC00).contains(unit), i + 5 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        guard let low = hex4() else { return fail("\\u must be followed by four hex digits", at: i - 2) }
                        if (0xDC00..<0xE000).contains(low) { unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00) }
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(unit) ?? "\u{FFFD}")).utf8))
                default:
                    return fail("invalid escape \\\(Character(Unicode.Scalar(e))) in a string", at: i - 2)
                }
            }
            return fail("unclosed string (a missing double quote?)", at: start)
        }

        mutating func hex4() -> UInt32? {
            guard i + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for b in bytes[i..<(i + 4)] {
                guard let d = hexDigit(b) else { return nil }
                v = v * 16 + d
            }
            i += 4
            return v
        }

        func hexDigit(_ b: UInt8) -> UInt32? {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(b - UInt8(ascii: "A") + 10)
            default: return nil
            }
        }
    }
}

extension JSONValue {
    /// Compact JSON text of this value: numbers as `JSONWriter.number` (shortest round-trip), object keys in
    /// the order `order` gives (sorted where it gives none).
    func jsonText(order: JSONKeyOrder?) -> String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return JSONWriter.number(n)
        case .string(let s): return JSONWriter.quote(s)
        case .array(let items):
            return "[" + items.enumerated().map { $0.element.jsonText(order: order?.element($0.offset)) }.joined(separator: ",") + "]"
        case .object(let dict):
            let keys = orderedKeys(dict, order)
            return "{" + keys.map { JSONWriter.quote($0) + ":" + dict[$0]!.jsonText(order: order?.child($0)) }.joined(separator: ",") + "}"
        }
    }
}

/// The keys of `dict` in document order where `order` knows it, any others after them sorted.
func orderedKeys(_ dict: [String: JSONValue], _ order: JSONKeyOrder?) -> [String] {
    var keys = (order?.keys ?? []).filter { dict[$0] != nil }
    let known = Set(keys)
    keys += dict.keys.filter { !known.contains($0) }.sorted()
    return keys
}
