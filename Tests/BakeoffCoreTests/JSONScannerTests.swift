import BakeoffCore
import Foundation
import Testing

// The one JSON scanner (`JSONCursor`) and the tree on it (`JSONValue.parse`). Foundation's JSONSerialization is
// the reference for values (used here only).

/// Parses with the tree, or nil.
private func tree(_ text: String, trailingCommas: Bool = true) -> JSONDocument? {
    try? JSONValue.parse(Array(text.utf8), trailingCommas: trailingCommas)
}

private func treeError(_ bytes: [UInt8]) -> JSONSyntaxError? {
    do {
        _ = try JSONValue.parse(bytes)
        return nil
    } catch {
        return error
    }
}

/// Skips the whole document with the cursor: nil when valid, else the error.
private func cursorError(_ bytes: [UInt8], strictSurrogates: Bool = true, maxDepth: Int = 512) -> JSONError? {
    bytes.withUnsafeBytes { raw -> JSONError? in
        var c = JSONCursor(raw, maxDepth: maxDepth, strictSurrogates: strictSurrogates)
        do throws(JSONError) {
            try c.skipValue(depth: 0)
            c.skipSpace()
            if !c.atEnd { throw JSONError(.trailingData, offset: c.pos) }
            return nil
        } catch {
            return error
        }
    }
}

/// Whether a tree value equals what JSONSerialization made of the same text (numbers to the last bit,
/// except integers too large for a double, which Foundation keeps as decimals).
private func same(_ v: JSONValue, _ f: Any, _ path: String = "$") -> String? {
    switch v.content {
    case .null:
        return f is NSNull ? nil : "\(path): null vs \(f)"
    case .bool(let b):
        guard let n = f as? NSNumber, String(cString: n.objCType) == "c", n.boolValue == b else { return "\(path): \(b) vs \(f)" }
        return nil
    case .number(let x):
        guard let n = f as? NSNumber, String(cString: n.objCType) != "c" else { return "\(path): \(x) vs \(f)" }
        let y = n.doubleValue
        if x == y || (f is NSDecimalNumber && abs(x - y) <= 1e-15 * abs(x)) { return nil }
        return "\(path): \(x) vs \(y)"
    case .string(let s):
        return (f as? String) == s ? nil : "\(path): \(s.debugDescription) vs \(f)"
    case .array(let items):
        guard let a = f as? [Any], a.count == items.count else { return "\(path): array vs \(f)" }
        for (k, item) in items.enumerated() {
            if let problem = same(item, a[k], "\(path)[\(k)]") { return problem }
        }
        return nil
    case .object(let o):
        guard let d = f as? [String: Any], d.count == o.count else { return "\(path): object vs \(f)" }
        for key in o.keys {
            guard let fv = d[key] else { return "\(path).\(key) missing in Foundation's" }
            if let problem = same(o[key]!, fv, "\(path).\(key)") { return problem }
        }
        return nil
    }
}

/// Random valid JSON text: every kind of value, escapes (surrogate pairs included), number forms, white space.
private struct DocumentGenerator {
    var rng: SplitMix

    mutating func below(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
    mutating func space() -> String { ["", "", " ", "\n", "\t", "\r\n  "][below(6)] }

    mutating func number() -> String {
        switch below(9) {
        case 0: return String(Int64(bitPattern: rng.next()) >> Int64(below(60)))
        case 1: return "-0"
        case 2: return "\(below(1000)).\(String(below(1_000_000)))"
        case 3: return "\(below(10))e\(["", "+", "-"][below(3)])\(below(300))"
        case 4: return "-\(below(100)).\(below(100))E-\(below(20))"
        case 5: return "123456789012345678901234567890"
        case 6: return String(Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF))  // any finite double, shortest form
        case 7: return ["5e-324", "1.7976931348623157e308", "2.2250738585072014e-308", "0.1", "1e-400"][below(5)]
        default: return String(below(100))
        }
    }

    mutating func string() -> String {
        var out = "\""
        for _ in 0..<below(12) {
            switch below(14) {
            case 0: out += "\\\""
            case 1: out += "\\\\"
            case 2: out += ["\\n", "\\r", "\\t", "\\b", "\\f", "\\/"][below(6)]
            case 3: out += "\\u00\(String(format: "%02x", below(32)))"
            case 4: out += "é"
            case 5: out += "中"
            case 6: out += "😀"
            case 7: out += "\\ud83d\\ude00"  // the same, escaped
            case 8: out += "\\u00E9\\u4e2D"
            case 9: out += "\u{7F}"
            default:
                let pool = Array("abcXYZ019 ,:{}[]-+.#'<>~")
                out.append(pool[below(pool.count)])
            }
        }
        return out + "\""
    }

    mutating func value(depth: Int) -> String {
        switch below(depth > 4 ? 5 : 8) {
        case 0: return ["null", "true", "false"][below(3)]
        case 1, 2: return number()
        case 3, 4: return string()
        case 5:
            let items = (0..<below(5)).map { _ in space() + value(depth: depth + 1) + space() }
            return "[" + items.joined(separator: ",") + (items.isEmpty ? space() : "") + "]"
        default:
            let members = (0..<below(5)).map { k in space() + String(string().dropLast()) + "#\(k)\"" + space() + ":" + space() + value(depth: depth + 1) + space() }
            return "{" + members.joined(separator: ",") + (members.isEmpty ? space() : "") + "}"
        }
    }
}

@Suite("JSON scanner")
struct JSONScannerTests {
    static let documents: [String] = {
        var generator = DocumentGenerator(rng: SplitMix(seed: 2026))
        var docs = [
            "{}", "[]", "0", "-0", "\"\"", "null", " true ", "[1, -2.5e3, 1E-7, 12345678901234567890123, 0.1]",
            #"{"a": {"b": [1, {"c": null}], "d": "x"}, "e": [[], {}], "f": "\ud83d\ude00 \u00e9 \" \\ \/ \b\f\n\r\t"}"#,
            "[\"" + String(repeating: "abcdefgh", count: 20) + "é\"]",
        ]
        for _ in 0..<300 { docs.append(generator.space() + generator.value(depth: 0) + generator.space()) }
        return docs
    }()

    @Test("valid documents give Foundation's values", arguments: documents)
    func validDocumentsMatchFoundation(text: String) throws {
        let document = try JSONValue.parse(Array(text.utf8))
        let reference = try JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)
        let problem = same(document.root, reference)
        #expect(problem == nil, "\(problem ?? "") in \(text)")
        #expect(cursorError(Array(text.utf8)) == nil)
        // Written back compactly and read again: the same values.
        let again = try JSONValue.parse(Array(document.root.jsonText.utf8))
        #expect(same(again.root, reference) == nil)
    }

    @Test func randomMutationsNeverCrashAndAgreeWithFoundation() throws {
        var rng = SplitMix(seed: 7)
        let alphabet = Array(#"{}[]":,\ 0123456789.eE+-truefalsnlu"#.utf8) + [0x00, 0x0A, 0x1F, 0x7F, 0x80, 0xBF, 0xC3, 0xED, 0xA0, 0xF4, 0xFF]
        var accepted = 0, rejected = 0
        for text in Self.documents {
            let bytes = Array(text.utf8)
            for round in 0..<40 {
                var b = bytes
                if round % 10 == 0 {
                    b = Array(b.prefix(Int(rng.next() % UInt64(b.count + 1))))
                } else {
                    for _ in 0..<(1 + Int(rng.next() % 3)) where !b.isEmpty {
                        let i = Int(rng.next() % UInt64(b.count))
                        let c = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                        switch rng.next() % 3 {
                        case 0: b[i] = c
                        case 1: b.remove(at: i)
                        default: b.insert(c, at: i)
                        }
                    }
                }
                let treeResult = try? JSONValue.parse(b, trailingCommas: false)
                let cursorResult = cursorError(b)
                // The tree and the cursor accept the same documents.
                #expect((treeResult != nil) == (cursorResult == nil), "tree and cursor disagree on \(String(decoding: b, as: UTF8.self))")
                let reference = try? JSONSerialization.jsonObject(with: Data(b), options: .fragmentsAllowed)
                if let treeResult {
                    accepted += 1
                    let problem = reference.map { same(treeResult.root, $0) } ?? "Foundation refuses it"
                    #expect(problem == nil, "\(problem ?? "") in \(String(decoding: b, as: UTF8.self))")
                } else {
                    rejected += 1
                    // What Foundation accepts and the scanner refuses: only a comma before a closing bracket, and
                    // text with a NUL byte (which Foundation takes as the end of the text, "9\0" or "\09\"" alike).
                    if reference != nil && !b.contains(0) {
                        #expect((try? JSONValue.parse(b, trailingCommas: true)) != nil, "refused what Foundation reads: \(b)")
                    }
                }
                // Lenient surrogates never crash either.
                _ = cursorError(b, strictSurrogates: false)
            }
        }
        #expect(accepted > 100 && rejected > 100)
    }

    @Test(arguments: [
        (#"[1 2]"#, JSONError.Kind.expectedCommaOrClose(object: false), 3),
        (#"{"a" 1}"#, .expectedColon, 5),
        (#"{"a":1,}"#, .expectedKey, 7),
        (#"{1:2}"#, .expectedKey, 1),
        (#"[1,]"#, .expectedValue, 3),
        (#"["#, .expectedValue, 1),
        (#"{"a":1"#, .expectedCommaOrClose(object: true), 6),
        (#"[tru]"#, .invalidLiteral, 4),
        (#"[nul"#, .invalidLiteral, 4),
        (#"[-]"#, .invalidNumber(.integer), 2),
        (#"[1.]"#, .invalidNumber(.fraction), 3),
        (#"[1e+]"#, .invalidNumber(.exponent), 4),
        (#"[01]"#, .leadingZero, 1),
        (#"[-01]"#, .leadingZero, 1),
        (#"[1e309]"#, .numberOutOfRange, 1),
        (#"[-1e999]"#, .numberOutOfRange, 1),
        (#"["abc"#, .unterminatedString, 1),
        (#"["a\"#, .unterminatedString, 1),
        ("[\"a\u{1}\"]", .controlCharacter(1, afterEscape: false), 3),
        ("[\"\\n\n\"]", .controlCharacter(10, afterEscape: true), 4),
        (#"["\x"]"#, .invalidEscape(UInt8(ascii: "x")), 2),
        (#"["\u12G4"]"#, .invalidHexEscape(backslash: 2, truncated: false), 6),
        (#"["\u12"#, .invalidHexEscape(backslash: 2, truncated: true), 4),
        (#"["\ud800"]"#, .loneSurrogate(0xD800, backslash: 2), 8),
        (#"["\ud800x"]"#, .loneSurrogate(0xD800, backslash: 2), 8),
        (#"["\udfff"]"#, .loneSurrogate(0xDFFF, backslash: 2), 8),
        (#"["\ud800\u0041"]"#, .invalidSurrogatePair(backslash: 2), 14),
        (#"[1] 2"#, .trailingData, 4),
    ])
    func cursorErrors(text: String, kind: JSONError.Kind, offset: Int) {
        let error = cursorError(Array(text.utf8))
        #expect(error?.kind == kind, "\(String(describing: error))")
        #expect(error?.offset == offset)
    }

    @Test("invalid UTF-8 inside strings", arguments: [[0xFF], [0x80], [0xC0, 0xAF], [0xC3], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80]] as [[UInt8]])
    func invalidUTF8(bad: [UInt8]) {
        for prefix in ["[\"", "[\"\\n", "[\"abcdefghijklmnop"] {
            let bytes = Array(prefix.utf8) + bad + Array("\"]".utf8)
            #expect(cursorError(bytes) == JSONError(.invalidUTF8, offset: prefix.utf8.count))
            #expect(treeError(bytes)?.message == "invalid UTF-8 in a string (save the file as UTF-8)")
        }
        let good = Array("[\"é中😀\u{7F}\"]".utf8)
        #expect(cursorError(good) == nil)
    }

    @Test(arguments: [1, 2, 100, 10_000])
    func deepNestingFailsCleanlyAtTheLimit(extra: Int) throws {
        for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
            let ok = String(repeating: open, count: 512) + "0" + String(repeating: close, count: 512)
            #expect(cursorError(Array(ok.utf8)) == nil)
            let deep = String(repeating: open, count: 512 + extra) + "0" + String(repeating: close, count: 512 + extra)
            #expect(cursorError(Array(deep.utf8))?.kind == .tooDeep(limit: 512))
            let error = treeError(Array(deep.utf8))
            #expect(error?.message.hasPrefix("nested too deeply") == true, "\(String(describing: error))")
            // The tree takes 511 containers around a value.
            let treeOK = String(repeating: open, count: 511) + "0" + String(repeating: close, count: 511)
            #expect(treeError(Array(treeOK.utf8)) == nil)
        }
        #expect(cursorError(Array(String(repeating: "[", count: 65).utf8), maxDepth: 64)?.kind == .tooDeep(limit: 64))
    }

    @Test(arguments: [
        ("{\"threads\": 2 \"listen\": 1}", "line 1, column 15: expected ',' or '}' after the value of \"threads\" (a missing comma?)", ""),
        ("{\"a\": 2,\n \"b\": [1 2]}", "line 2, column 10: expected ',' or ']' after an array element (a missing comma?)", "b[1]"),
        ("{\"a\": {\"b\": [1, tru]}}", "line 1, column 17: tru is not a JSON value (strings need double quotes)", "a.b[1]"),
        ("{\"a\": \"x\ny\"}", "line 1, column 9: a line break inside a string (unclosed quote? write \\n for a line break)", "a"),
        ("[\"é\", \"\\ud83d\"]", "line 1, column 8: \\ud83d is half of a UTF-16 surrogate pair without the other half (a character above U+FFFF is written as two \\u escapes, high then low)", "[1]"),
        ("[\"\\ud83d\\u0041\"]", "line 1, column 3: \\ud83d must be followed by the \\u escape of a low surrogate (\\udc00 to \\udfff)", "[0]"),
        ("{\n  \"n\": 1e400\n}", "line 2, column 8: 1e400 is out of the range of numbers (a double)", "n"),
        ("\"é\" x", "line 1, column 5: unexpected text after the end of the top-level value", ""),
        ("[1,\n", "line 2, column 1: unexpected end of the file: a value is missing (or a closing bracket)", "[1]"),
        ("{\"a\": }", "line 1, column 7: expected a value", "a"),
        ("{\"a\" 1}", "line 1, column 6: expected ':' after the key \"a\"", ""),
        ("[\"\\x\"]", "line 1, column 3: invalid escape \\x in a string", "[0]"),
        ("[\"\\u12\"]", "line 1, column 3: \\u must be followed by four hex digits", "[0]"),
        ("{\"a\": \"b}", "line 1, column 7: unclosed string (a missing double quote?)", "a"),
        ("", "line 1, column 1: unexpected end of the file: a value is missing (or a closing bracket)", ""),
    ])
    func treeErrorsSayWhere(text: String, expected: String, path: String) {
        let error = treeError(Array(text.utf8))
        #expect(error?.description == expected)
        #expect(error?.path == path)
    }

    @Test func objectsKeepKeyOrderPositionsAndRepeats() throws {
        let text = "{\"z\": 1,\n \"a\": [true, {\"k\": 1, \"k\": 2}],\n \"m\": null, \"z\": \"again\"}"
        let document = try #require(tree(text))
        let root = try #require(document.root.object)
        #expect(root.keys == ["z", "a", "m"])
        #expect(root.members.map(\.key) == ["z", "a", "m", "z"])
        #expect(root["z"]?.string == "again")  // a repeated key looks up its last value
        #expect(document.duplicateKeys.map(\.path) == ["a[1].k", "z"])
        #expect(document.duplicateKeys.map(\.line) == [2, 3])
        let inner = try #require(root["a"]?.array)
        #expect(inner[1].line == 2 && inner[1].offset == 22)
        #expect(root["m"]?.line == 3 && root["m"]?.isNull == true)
        let position = Array(text.utf8).withUnsafeBytes { JSONPosition.of(root.member("m")!.keyOffset, in: $0) }
        #expect(position == JSONPosition(line: 3, column: 2))
        #expect(document.root.jsonText == "{\"z\":\"again\",\"a\":[true,{\"k\":2}],\"m\":null}")
    }

    @Test func trailingCommasAndByteOrderMark() {
        #expect(tree("[1, 2,]")?.root.array?.count == 2)
        #expect(tree("{\"a\": 1,}")?.root.object?.keys == ["a"])
        #expect(tree("[1, 2,]", trailingCommas: false) == nil)
        #expect(tree("[,]") == nil)
        #expect(tree("\u{FEFF}{\"a\": 1}")?.root.object?.keys == ["a"])
    }

    @Test(arguments: [
        (#""plain""#, "plain"), (#""a\"b\\c\/d""#, "a\"b\\c/d"), (#""\ud83d\ude00""#, "😀"), (#""\u00e9\u4E2D""#, "é中"),
        (#""tab\tnl\ncr\rbs\bff\f""#, "tab\tnl\ncr\rbs\u{8}ff\u{C}"), (#""\u0000""#, "\u{0}"),
    ])
    func stringsDecode(text: String, expected: String) throws {
        let bytes = Array(text.utf8)
        let out = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count)
        defer { out.deallocate() }
        let decoded = try bytes.withUnsafeBytes { raw in
            var c = JSONCursor(raw)
            return String(decoding: try c.readString(into: out), as: UTF8.self)
        }
        #expect(decoded == expected)
        #expect(tree(text)?.root.string == expected)
    }

    @Test func lenientSurrogatesDecodeAsReplacementCharacters() {
        let text = #""a\ud800b\udc00c\ud800\u0041\ud83d\ude00""#
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { raw in
            var c = JSONCursor(raw, strictSurrogates: false)
            let span = try? c.scanString()
            #expect(span != nil && c.atEnd)
            #expect(span.map { c.decode($0) } == "a\u{FFFD}b\u{FFFD}c\u{FFFD}A😀")
        }
        #expect(cursorError(bytes)?.kind == .loneSurrogate(0xD800, backslash: 2))
    }

    @Test("numbers convert exactly", arguments: [
        "0", "-0", "1", "0.1", "0.30000000000000004", "123456789012345", "1234567890123456789", "9007199254740993",
        "3.14159265358979323846", "1e22", "1e23", "1.7976931348623157e308", "2.2250738585072011e-308", "4.9e-324",
        "1e-400", "-2.5E+3", "100000000000000000000000", "0.000001", "8.589973e9",
    ])
    func numbersConvertExactly(text: String) throws {
        let value = try Array(text.utf8).withUnsafeBytes { raw throws(JSONError) -> Double in
            var c = JSONCursor(raw)
            return try c.readNumber()
        }
        let expected = try #require(Double(text))
        #expect(value == expected && value.sign == expected.sign)
    }

    @Test func randomNumbersConvertExactly() throws {
        var rng = SplitMix(seed: 11)
        for _ in 0..<20_000 {
            let d = Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF)
            let digits = Int(rng.next() % 17) + 1
            for text in ["\(d)", String(format: "%.\(digits)g", d), String(format: "%.\(digits)f", d.truncatingRemainder(dividingBy: 1e6))] {
                let parsed = Array(text.utf8).withUnsafeBytes { raw -> Double? in
                    var c = JSONCursor(raw)
                    guard let v = try? c.readNumber(), c.atEnd else { return nil }
                    return v
                }
                guard let parsed else { continue }  // "1e+300" forms JSON does allow; "inf", "nan" it does not
                #expect(parsed == Double(text)!, "\(text)")
            }
        }
    }

    @Test func integersAndLiteralsThroughTheCursor() throws {
        let text = #"{"n": 42, "big": 1e3, "frac": -7.9, "s": "x", "t": true, "huge": 1e30}"#
        var found: [String: Int?] = [:]
        Array(text.utf8).withUnsafeBytes { raw in
            var c = JSONCursor(raw)
            c.skipSpace()
            c.pos += 1
            var first = true
            while (try? c.nextItem(&first, close: 0x7D)) == true {
                guard let key = try? c.scanKey() else { return }
                let value: Int? = (try? c.scanInt()) ?? nil
                found.updateValue(value, forKey: c.decode(key))
            }
        }
        let expected: [String: Int?] = ["n": 42, "big": 1000, "frac": -7, "s": Int?.none, "t": Int?.none, "huge": Int?.none]
        #expect(found == expected)
    }
}

/// The event parser reads with the same cursor and words its errors for event logs.
extension JSONScannerTests {
    static let head = #"{"event":"feedback","ts":"2026-11-01T10:00:00Z","experiment":"e","request_id":"r","name":"csat","value":1"#

    @Test("the event parser's words for scanner errors", arguments: [
        (head + #","variant":"a","variant":"b"}"#, #""variant" appears twice; give each field once"#, 121),
        (head + #","status":"ok","status":"error"}"#, #""status" appears twice; give each field once"#, 121),
        (head + #","extra":"# + String(repeating: "[", count: 65) + "}", "values nested more than 64 deep", 179),
        (head + #","extra":1e999}"#, #""value": number out of range"#, 115),
        (head + #","extra":"a\ud800"}"#, #"lone high surrogate \ud800 without its low half"#, 123),
        (head + #","extra":{"a" 1}}"#, "expected ':', found '1'", 120),
        (head + #","extra":[1,]}"#, #""value" must be a number, found ']'"#, 118),
        (head + ",\"extra\":\"a\u{1}\"}", "control character inside a string (escape it as \\u0001)", 117),
    ])
    func eventParserMessages(line: String, message: String, column: Int) {
        let error = eventParseError(Array(line.utf8))
        #expect(error?.message == message)
        #expect(error?.column == column)
    }

    @Test func eventParserRefusesInvalidUTF8() {
        let bytes = Array(#"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e"#.utf8) + [0xC3, 0x28]
            + Array(#"","variant":"a","user_id":"u","request_id":"r","latency_ms":1}"#.utf8)
        let error = eventParseError(bytes)
        #expect(error?.message == "invalid UTF-8 inside a string" && error?.column == 63)
        let good = Array(#"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"é中😀","variant":"a","user_id":"u","request_id":"r","latency_ms":1}"#.utf8)
        #expect(eventParseError(good) == nil)
    }

    private func eventParseError(_ bytes: [UInt8]) -> EventParseError? {
        var parser = EventParser()
        return bytes.withUnsafeBytes { raw -> EventParseError? in
            do throws(EventParseError) {
                _ = try parser.parse(raw)
                return nil
            } catch {
                return error
            }
        }
    }
}
