/// Writes JSON text with keys in the order given and numbers at full precision.
///
/// Why not JSONEncoder: reports need a fixed key order and `null` (never NaN) for missing numbers, and the
/// simulator writes millions of lines.
public struct JSONWriter {
    /// The bytes written so far (UTF-8): appending to a byte buffer is several times faster than to a String.
    public private(set) var bytes: [UInt8] = []
    public var text: String { String(decoding: bytes, as: UTF8.self) }
    private var needsComma: [Bool] = [false]
    private let indentUnit: String?

    public init(pretty: Bool = true) { indentUnit = pretty ? "  " : nil }

    private mutating func separator() {
        if needsComma[needsComma.count - 1] { bytes.append(UInt8(ascii: ",")) }
        needsComma[needsComma.count - 1] = true
        if let unit = indentUnit, needsComma.count > 1 {
            bytes.append(0x0A)
            for _ in 1..<needsComma.count { bytes.append(contentsOf: unit.utf8) }
        }
    }

    private mutating func keyPrefix(_ key: String?) {
        separator()
        if let key {
            appendQuoted(key)
            bytes.append(UInt8(ascii: ":"))
            if indentUnit != nil { bytes.append(0x20) }
        }
    }

    public mutating func object(_ key: String? = nil, _ body: (inout JSONWriter) -> Void) {
        keyPrefix(key)
        bytes.append(UInt8(ascii: "{"))
        needsComma.append(false)
        body(&self)
        close("}")
    }

    public mutating func array(_ key: String? = nil, _ body: (inout JSONWriter) -> Void) {
        keyPrefix(key)
        bytes.append(UInt8(ascii: "["))
        needsComma.append(false)
        body(&self)
        close("]")
    }

    private mutating func close(_ bracket: String) {
        let hadItems = needsComma.removeLast()
        if hadItems, let unit = indentUnit {
            bytes.append(0x0A)
            for _ in 0..<(needsComma.count - 1) { bytes.append(contentsOf: unit.utf8) }
        }
        bytes.append(contentsOf: bracket.utf8)
    }

    public mutating func value(_ key: String? = nil, _ v: String?) {
        keyPrefix(key)
        if let v { appendQuoted(v) } else { bytes.append(contentsOf: "null".utf8) }
    }

    public mutating func value(_ key: String? = nil, _ v: Double?) {
        keyPrefix(key)
        bytes.append(contentsOf: JSONWriter.number(v).utf8)
    }

    public mutating func value(_ key: String? = nil, _ v: Int?) {
        keyPrefix(key)
        bytes.append(contentsOf: (v.map { String($0) } ?? "null").utf8)
    }

    public mutating func value(_ key: String? = nil, _ v: Bool?) {
        keyPrefix(key)
        bytes.append(contentsOf: (v.map { $0 ? "true" : "false" } ?? "null").utf8)
    }

    /// Shortest round-trip decimal; integers without ".0"; null for NaN and infinities.
    public static func number(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "null" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    private mutating func appendQuoted(_ s: String) {
        if !JSONWriter.needsEscaping(s) {
            bytes.append(0x22)
            bytes.append(contentsOf: s.utf8)
            bytes.append(0x22)
        } else {
            bytes.append(contentsOf: JSONWriter.quote(s).utf8)
        }
    }

    /// Whether `s` has a control character, quote or backslash.
    static func needsEscaping(_ s: String) -> Bool {
        s.utf8.contains { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }
    }

    public static func quote(_ s: String) -> String {
        // Most keys and names need no escape: copy them whole.
        if !needsEscaping(s) { return "\"" + s + "\"" }
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
