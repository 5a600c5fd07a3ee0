/// Writes JSON text with keys in the order given and numbers at full precision.
///
/// Why not JSONEncoder: reports need a fixed key order and `null` (never NaN) for missing numbers, and the
/// simulator writes millions of lines.
public struct JSONWriter {
    public private(set) var text = ""
    private var needsComma: [Bool] = [false]
    private let indentUnit: String?

    public init(pretty: Bool = true) { indentUnit = pretty ? "  " : nil }

    private mutating func separator() {
        if needsComma[needsComma.count - 1] { text += "," }
        needsComma[needsComma.count - 1] = true
        if let unit = indentUnit, needsComma.count > 1 {
            text += "\n" + String(repeating: unit, count: needsComma.count - 1)
        }
    }

    private mutating func keyPrefix(_ key: String?) {
        separator()
        if let key {
            text += JSONWriter.quote(key) + (indentUnit == nil ? ":" : ": ")
        }
    }

    public mutating func object(_ key: String? = nil, _ body: (inout JSONWriter) -> Void) {
        keyPrefix(key)
        text += "{"
        needsComma.append(false)
        body(&self)
        close("}")
    }

    public mutating func array(_ key: String? = nil, _ body: (inout JSONWriter) -> Void) {
        keyPrefix(key)
        text += "["
        needsComma.append(false)
        body(&self)
        close("]")
    }

    private mutating func close(_ bracket: String) {
        let hadItems = needsComma.removeLast()
        if hadItems, let unit = indentUnit {
            text += "\n" + String(repeating: unit, count: needsComma.count - 1)
        }
        text += bracket
    }

    public mutating func value(_ key: String? = nil, _ v: String?) {
        keyPrefix(key)
        text += v.map(JSONWriter.quote) ?? "null"
    }

    public mutating func value(_ key: String? = nil, _ v: Double?) {
        keyPrefix(key)
        text += JSONWriter.number(v)
    }

    public mutating func value(_ key: String? = nil, _ v: Int?) {
        keyPrefix(key)
        text += v.map { String($0) } ?? "null"
    }

    public mutating func value(_ key: String? = nil, _ v: Bool?) {
        keyPrefix(key)
        text += v.map { $0 ? "true" : "false" } ?? "null"
    }

    /// Shortest round-trip decimal; integers without ".0"; null for NaN and infinities.
    public static func number(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "null" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    public static func quote(_ s: String) -> String {
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
