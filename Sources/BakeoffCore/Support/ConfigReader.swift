import Foundation

/// A configuration problem, located by its JSON path (`metrics[2].goal`).
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var path: String
    public var message: String
    public var description: String { "\(source): \(path.isEmpty ? "" : path + ": ")\(message)" }

    package init(source: String, path: String, message: String) {
        self.source = source
        self.path = path
        self.message = message
    }
}

/// A parsed JSON value. Decoded with JSONDecoder, which reads numbers exactly (JSONSerialization on Linux
/// rounds some of them).
package indirect enum JSONValue: Decodable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    package init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let n = try? c.decode(Double.self) { self = .number(n); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        self = .object(try c.decode([String: JSONValue].self))
    }

    package var described: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return JSONWriter.number(n)
        case .string(let s): return "\"\(s)\""
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// Reads a JSON object field by field, naming the JSON path in every error and rejecting unknown keys.
package struct ConfigObject {
    package let source: String
    package let path: String
    package let values: [String: JSONValue]
    package private(set) var used: Set<String> = []

    package init(source: String, path: String, values: [String: JSONValue]) {
        self.source = source
        self.path = path
        self.values = values
    }

    /// Parses `data` as a JSON object.
    package static func parse(_ data: Data, source: String) throws(ConfigError) -> ConfigObject {
        if data.isEmpty { throw ConfigError(source: source, path: "", message: "the file is empty; expected a JSON object") }
        let value: JSONValue
        do { value = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            var detail = "check for a missing comma, quote or bracket, invalid UTF-8, or a number out of range"
            if case DecodingError.dataCorrupted(let context) = error, let underlying = context.underlyingError {
                let text = "\(underlying)"
                if text.count < 200 { detail = text }
            }
            throw ConfigError(source: source, path: "", message: "not valid JSON: \(detail)")
        }
        guard case .object(let dict) = value else {
            throw ConfigError(source: source, path: "", message: "expected a JSON object at the top level, got \(value.described)")
        }
        return ConfigObject(source: source, path: "", values: dict)
    }

    package func fail(_ key: String?, _ message: String) -> ConfigError {
        ConfigError(source: source, path: key.map(childPath) ?? path, message: message)
    }

    package func childPath(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    /// Marks `key` as read and returns its value (nil when absent or null).
    package mutating func take(_ key: String) -> JSONValue? {
        used.insert(key)
        guard let v = values[key] else { return nil }
        if case .null = v { return nil }
        return v
    }

    package mutating func double(_ key: String) throws(ConfigError) -> Double? {
        guard let v = take(key) else { return nil }
        guard case .number(let n) = v else { throw fail(key, "must be a number, got \(v.described)") }
        return n
    }

    package mutating func double(_ key: String, in range: ClosedRange<Double>) throws(ConfigError) -> Double? {
        guard let v = try double(key) else { return nil }
        guard range.contains(v) else { throw fail(key, "must be between \(formatNumber(range.lowerBound)) and \(formatNumber(range.upperBound)), got \(JSONWriter.number(v))") }
        return v
    }

    package mutating func int(_ key: String, minimum: Int = 0) throws(ConfigError) -> Int? {
        guard let v = try double(key) else { return nil }
        guard v == v.rounded(), v >= Double(minimum), v < 1e15 else { throw fail(key, "must be a whole number of at least \(minimum), got \(JSONWriter.number(v))") }
        return Int(v)
    }

    /// An array of numbers.
    package mutating func doubles(_ key: String) throws(ConfigError) -> [Double]? {
        guard let v = take(key) else { return nil }
        guard case .array(let a) = v else { throw fail(key, "must be an array of numbers, got \(v.described)") }
        var out: [Double] = []
        for (i, item) in a.enumerated() {
            guard case .number(let n) = item else {
                throw ConfigError(source: source, path: "\(childPath(key))[\(i)]", message: "must be a number, got \(item.described)")
            }
            out.append(n)
        }
        return out
    }

    package mutating func string(_ key: String) throws(ConfigError) -> String? {
        guard let v = take(key) else { return nil }
        guard case .string(let s) = v else { throw fail(key, "must be a string, got \(v.described)") }
        return s
    }

    package mutating func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let v = take(key) else { return nil }
        guard case .bool(let b) = v else { throw fail(key, "must be true or false, got \(v.described)") }
        return b
    }

    package mutating func enumValue<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type) throws(ConfigError) -> E? where E.RawValue == String {
        guard let s = try string(key) else { return nil }
        guard let e = E(rawValue: s) else {
            throw fail(key, "\"\(s)\" is not one of \(E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))")
        }
        return e
    }

    package mutating func object(_ key: String) throws(ConfigError) -> ConfigObject? {
        guard let v = take(key) else { return nil }
        guard case .object(let d) = v else { throw fail(key, "must be an object, got \(v.described)") }
        return ConfigObject(source: source, path: childPath(key), values: d)
    }

    package mutating func objects(_ key: String) throws(ConfigError) -> [ConfigObject]? {
        guard let v = take(key) else { return nil }
        guard case .array(let a) = v else { throw fail(key, "must be an array of objects, got \(v.described)") }
        var out: [ConfigObject] = []
        for (i, item) in a.enumerated() {
            guard case .object(let d) = item else {
                throw ConfigError(source: source, path: "\(childPath(key))[\(i)]", message: "must be an object, got \(item.described)")
            }
            out.append(ConfigObject(source: source, path: "\(childPath(key))[\(i)]", values: d))
        }
        return out
    }

    /// Fails on any key that was not read.
    package func finish() throws(ConfigError) {
        let unknown = Set(values.keys).subtracting(used).sorted()
        if let first = unknown.first {
            throw fail(first, "unknown key (known keys here: \(used.sorted().joined(separator: ", ")))")
        }
    }
}
