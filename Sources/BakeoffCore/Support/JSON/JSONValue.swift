/// A place in a text: 1-based line and column (columns count characters, as editors do).
package struct JSONPosition: Sendable, Equatable, CustomStringConvertible {
    package var line: Int
    package var column: Int

    package init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    package var description: String { "line \(line), column \(column)" }

    /// The line and column of byte `offset` of `bytes` (lines end with LF).
    package static func of(_ offset: Int, in bytes: UnsafeRawBufferPointer) -> JSONPosition {
        let end = min(max(offset, 0), bytes.count)
        var line = 1, lineStart = 0
        for i in 0..<end where bytes[i] == 0x0A {
            line += 1
            lineStart = i + 1
        }
        let column = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[lineStart..<end]), as: UTF8.self).count + 1
        return JSONPosition(line: line, column: column)
    }
}

/// A JSON value read by `JSONValue.parse`, with where it starts in the document.
package struct JSONValue: Sendable {
    package enum Content: Sendable {
        case null
        case bool(Bool)
        case number(Double)
        case string(String)
        case array([JSONValue])
        case object(JSONObject)
    }

    package var content: Content
    /// The byte offset of the value's first byte in the document.
    package var offset: Int
    /// The 1-based line the value starts on.
    package var line: Int

    package init(_ content: Content, offset: Int = 0, line: Int = 1) {
        self.content = content
        self.offset = offset
        self.line = line
    }

    package var isNull: Bool { if case .null = content { return true } else { return false } }
    package var bool: Bool? { if case .bool(let b) = content { return b } else { return nil } }
    package var number: Double? { if case .number(let n) = content { return n } else { return nil } }
    package var string: String? { if case .string(let s) = content { return s } else { return nil } }
    package var array: [JSONValue]? { if case .array(let a) = content { return a } else { return nil } }
    package var object: JSONObject? { if case .object(let o) = content { return o } else { return nil } }

    /// The value for messages: `null`, `true`, `3.5`, `"text"`, or "an array" / "an object".
    package var described: String {
        switch content {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return JSONWriter.number(n)
        case .string(let s): return "\"\(s)\""
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Compact JSON text of the value: numbers as `JSONWriter.number` (shortest round trip), object keys in
    /// document order (a repeated key once, with its last value).
    package var jsonText: String {
        switch content {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return JSONWriter.number(n)
        case .string(let s): return JSONWriter.quote(s)
        case .array(let items): return "[" + items.map(\.jsonText).joined(separator: ",") + "]"
        case .object(let object):
            return "{" + object.keys.map { JSONWriter.quote($0) + ":" + object[$0]!.jsonText }.joined(separator: ",") + "}"
        }
    }
}

/// One `"key": value` of an object.
package struct JSONMember: Sendable {
    package var key: String
    /// The byte offset of the key's opening quote.
    package var keyOffset: Int
    package var value: JSONValue
}

/// An object's members in document order (a repeated key included each time); a key looks up its last value.
package struct JSONObject: Sendable {
    package private(set) var members: [JSONMember] = []
    /// Each key's last member.
    private var index: [String: Int] = [:]

    package init() {}

    /// Adds a member; false when the key was there already.
    @discardableResult
    package mutating func append(_ member: JSONMember) -> Bool {
        let isNew = index.updateValue(members.count, forKey: member.key) == nil
        members.append(member)
        return isNew
    }

    package subscript(key: String) -> JSONValue? { index[key].map { members[$0].value } }

    /// The last member with `key`.
    package func member(_ key: String) -> JSONMember? { index[key].map { members[$0] } }

    package func contains(_ key: String) -> Bool { index[key] != nil }

    /// Distinct keys.
    package var count: Int { index.count }
    package var isEmpty: Bool { members.isEmpty }

    /// The keys in the order they first appear.
    package var keys: [String] {
        if members.count == index.count { return members.map(\.key) }
        var seen = Set<String>()
        return members.compactMap { seen.insert($0.key).inserted ? $0.key : nil }
    }

    /// Members whose key appeared before in this object.
    package var repeatedMembers: [JSONMember] {
        guard members.count != index.count else { return [] }
        var seen = Set<String>()
        return members.filter { !seen.insert($0.key).inserted }
    }

    /// The object without `key`.
    package func removing(_ key: String) -> JSONObject {
        guard index[key] != nil else { return self }
        var out = JSONObject()
        for m in members where m.key != key { out.append(m) }
        return out
    }
}

/// A key that appears twice in one object.
package struct JSONDuplicateKey: Sendable, Equatable {
    /// The JSON path of the repeated member, `experiments[0].name`.
    package var path: String
    package var key: String
    /// The byte offset and line of its second (or later) occurrence.
    package var offset: Int
    package var line: Int
}

/// A parsed document: the value and the keys repeated within an object (which the tree keeps, so each reader
/// decides: configs refuse them).
package struct JSONDocument: Sendable {
    package var root: JSONValue
    package var duplicateKeys: [JSONDuplicateKey]
}

/// Why a document is not JSON, and where: `line 3, column 5: expected ',' or '}' after the value of "threads"
/// (a missing comma?)`.
package struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 0-based byte offset.
    package var offset: Int
    package var position: JSONPosition
    /// The JSON path of the value being read (empty at the top level).
    package var path: String
    package var message: String

    package var description: String { "\(position): \(message)" }
}

extension JSONValue {
    /// The deepest nesting a document may have.
    package static let maxDepth = 512

    /// Parses a whole document (an optional UTF-8 byte order mark, one value, white space). A comma before a
    /// closing bracket is accepted when `trailingCommas` is true (as JSONDecoder accepted it in config files).
    /// Never recursive: any nesting depth fails cleanly at `maxDepth`.
    package static func parse(_ bytes: [UInt8], trailingCommas: Bool = true) throws(JSONSyntaxError) -> JSONDocument {
        let result: Result<JSONDocument, JSONSyntaxError> = bytes.withUnsafeBytes { raw in
            do throws(JSONSyntaxError) { return .success(try parse(raw, trailingCommas: trailingCommas)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    package static func parse(_ raw: UnsafeRawBufferPointer, trailingCommas: Bool = true) throws(JSONSyntaxError) -> JSONDocument {
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: max(raw.count, 1))
        defer { scratch.deallocate() }
        var parser = TreeParser(cursor: JSONCursor(raw), raw: raw, scratch: scratch, trailingCommas: trailingCommas)
        let root = try parser.document()
        return JSONDocument(root: root, duplicateKeys: parser.duplicates)
    }
}

/// Builds the tree with an explicit stack of open containers.
private struct TreeParser {
    struct Frame {
        var isObject: Bool
        var offset: Int
        var line: Int
        var object = JSONObject()
        var elements: [JSONValue] = []
        /// The key of the member being read.
        var key = ""
        var keyOffset = 0
        var hasKey = false
    }

    var c: JSONCursor
    let raw: UnsafeRawBufferPointer
    let scratch: UnsafeMutablePointer<UInt8>
    let trailingCommas: Bool
    var line = 1
    var frames: [Frame] = []
    var duplicates: [JSONDuplicateKey] = []

    init(cursor: JSONCursor, raw: UnsafeRawBufferPointer, scratch: UnsafeMutablePointer<UInt8>, trailingCommas: Bool) {
        c = cursor
        self.raw = raw
        self.scratch = scratch
        self.trailingCommas = trailingCommas
    }

    mutating func space() {
        while c.pos < c.end {
            let b = c.byte(c.pos)
            if b == 0x0A {
                line += 1
            } else if b != 0x20 && b != 0x09 && b != 0x0D {
                return
            }
            c.pos += 1
        }
    }

    /// The JSON path of the value being read.
    func path() -> String {
        var p = ""
        for f in frames {
            if f.isObject {
                guard f.hasKey else { break }
                p = p.isEmpty ? f.key : p + "." + f.key
            } else {
                p += "[\(f.elements.count)]"
            }
        }
        return p
    }

    func fail(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
        let at = offset ?? c.pos
        return JSONSyntaxError(offset: at, position: .of(at, in: raw), path: path(), message: message)
    }

    mutating func document() throws(JSONSyntaxError) -> JSONValue {
        if c.end >= 3, c.byte(0) == 0xEF, c.byte(1) == 0xBB, c.byte(2) == 0xBF { c.pos = 3 }
        var value: JSONValue
        parse: while true {
            // A value starts here.
            space()
            guard c.pos < c.end else { throw fail("unexpected end of the file: a value is missing (or a closing bracket)") }
            guard frames.count < JSONValue.maxDepth else { throw fail("nested too deeply (more than \(JSONValue.maxDepth) arrays and objects inside each other)") }
            let start = c.pos, startLine = line
            switch c.byte(c.pos) {
            case 0x7B, 0x5B:
                let isObject = c.byte(c.pos) == 0x7B
                c.pos += 1
                frames.append(Frame(isObject: isObject, offset: start, line: startLine))
                space()
                if c.current == (isObject ? 0x7D : 0x5D) {
                    c.pos += 1
                    value = closeFrame()
                } else {
                    if isObject { try key() }
                    continue parse
                }
            case 0x22:
                value = JSONValue(.string(try string()), offset: start, line: startLine)
            default:
                value = try scalar()
            }
            // A value is complete: it goes into its container, and closes what ends after it.
            while let last = frames.indices.last {
                if frames[last].isObject {
                    let member = JSONMember(key: frames[last].key, keyOffset: frames[last].keyOffset, value: value)
                    frames[last].object.append(member)
                    frames[last].hasKey = false
                } else {
                    frames[last].elements.append(value)
                }
                let isObject = frames[last].isObject
                let close: UInt8 = isObject ? 0x7D : 0x5D
                space()
                if c.current == 0x2C {
                    c.pos += 1
                    space()
                    if trailingCommas && c.current == close {
                        c.pos += 1
                        value = closeFrame()
                        continue
                    }
                    if isObject { try key() }
                    continue parse
                }
                if c.current == close {
                    c.pos += 1
                    value = closeFrame()
                    continue
                }
                if isObject {
                    let key = frames[last].object.members.last?.key ?? ""
                    throw fail("expected ',' or '}' after the value of \"\(key)\" (a missing comma?)")
                }
                throw fail("expected ',' or ']' after an array element (a missing comma?)")
            }
            break
        }
        space()
        guard c.pos == c.end else { throw fail("unexpected text after the end of the top-level value") }
        return value
    }

    mutating func closeFrame() -> JSONValue {
        let f = frames.removeLast()
        return JSONValue(f.isObject ? .object(f.object) : .array(f.elements), offset: f.offset, line: f.line)
    }

    /// A member's key and its colon.
    mutating func key() throws(JSONSyntaxError) {
        space()
        guard c.current == 0x22 else { throw fail("expected a key in double quotes") }
        let keyOffset = c.pos, keyLine = line
        let key = try string()
        space()
        guard c.current == 0x3A else { throw fail("expected ':' after the key \"\(key)\"") }
        c.pos += 1
        let last = frames.count - 1
        frames[last].key = key
        frames[last].keyOffset = keyOffset
        frames[last].hasKey = true
        if frames[last].object.contains(key) {
            duplicates.append(JSONDuplicateKey(path: path(), key: key, offset: keyOffset, line: keyLine))
        }
    }

    mutating func string() throws(JSONSyntaxError) -> String {
        do throws(JSONError) {
            let (span, written) = try c.scanString(decodingInto: scratch)
            if span.escaped { return String(decoding: UnsafeRawBufferPointer(start: scratch, count: written), as: UTF8.self) }
            return String(decoding: c.bytes(span.start, span.end), as: UTF8.self)
        } catch {
            switch error.kind {
            case .unterminatedString:
                throw fail("unclosed string (a missing double quote?)", at: error.start)
            case .controlCharacter(let b, _):
                throw fail(b == 0x0A ? "a line break inside a string (unclosed quote? write \\n for a line break)" : "a control character inside a string", at: error.offset)
            case .invalidEscape(let b):
                throw fail("invalid escape \\\(Character(Unicode.Scalar(b))) in a string", at: error.offset)
            case .invalidHexEscape(let backslash, _):
                throw fail("\\u must be followed by four hex digits", at: backslash)
            case .loneSurrogate(let unit, let backslash):
                throw fail("\\u\(hex4(unit)) is half of a UTF-16 surrogate pair without the other half (a character above U+FFFF is written as two \\u escapes, high then low)", at: backslash)
            case .invalidSurrogatePair(let backslash):
                throw fail("\\u\(hex4(unit(at: backslash))) must be followed by the \\u escape of a low surrogate (\\udc00 to \\udfff)", at: backslash)
            case .invalidUTF8:
                throw fail("invalid UTF-8 in a string (save the file as UTF-8)", at: error.offset)
            default:
                throw fail("invalid string", at: error.offset)
            }
        }
    }

    func unit(at backslash: Int) -> UInt32 { c.peekHex4(at: backslash + 2) ?? 0 }

    func hex4(_ unit: UInt32) -> String {
        let s = String(unit, radix: 16)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    /// `true`, `false`, `null` or a number: a word up to the next delimiter, so that `nope` or `1x` is named whole.
    mutating func scalar() throws(JSONSyntaxError) -> JSONValue {
        let start = c.pos
        var wordEnd = start
        while wordEnd < c.end {
            let b = c.byte(wordEnd)
            if b == 0x2C || b == 0x5D || b == 0x7D || b == 0x3A || b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { break }
            wordEnd += 1
        }
        guard wordEnd > start else { throw fail("expected a value") }
        let word = String(decoding: c.bytes(start, wordEnd), as: UTF8.self)
        let content: JSONValue.Content?
        switch c.byte(start) {
        case 0x74: content = wordEnd - start == 4 && c.consume("true") ? .bool(true) : nil
        case 0x66: content = wordEnd - start == 5 && c.consume("false") ? .bool(false) : nil
        case 0x6E: content = wordEnd - start == 4 && c.consume("null") ? .null : nil
        case 0x2D, 0x30...0x39:
            do throws(JSONError) {
                let n = try c.readNumber()
                content = c.pos == wordEnd ? .number(n) : nil
            } catch {
                if error.kind == .numberOutOfRange {
                    throw fail("\(word.prefix(40)) is out of the range of numbers (a double)", at: start)
                }
                content = nil
            }
        default: content = nil
        }
        guard let content else { throw fail("\(word.prefix(20)) is not a JSON value (strings need double quotes)", at: start) }
        c.pos = wordEnd
        return JSONValue(content, offset: start, line: line)
    }
}
