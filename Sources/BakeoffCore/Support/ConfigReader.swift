import Foundation

/// A configuration problem, located by its JSON path (`metrics[2].goal`).
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var path: String
    public var message: String
    public var description: String { "\(source): \(path.isEmpty ? "" : path + ": ")\(message)" }
}

/// Reads a JSON object field by field, naming the JSON path in every error and rejecting unknown keys.
struct ConfigObject {
    let source: String
    let path: String
    let values: [String: Any]
    private(set) var used: Set<String> = []

    init(source: String, path: String, values: [String: Any]) {
        self.source = source
        self.path = path
        self.values = values
    }

    /// Parses `data` as a JSON object.
    static func parse(_ data: Data, source: String) throws(ConfigError) -> ConfigObject {
        if data.isEmpty { throw ConfigError(source: source, path: "", message: "the file is empty; expected a JSON object") }
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data, options: []) } catch {
            let nsError = error as NSError
            let detail = (nsError.userInfo[NSDebugDescriptionErrorKey] as? String) ?? nsError.localizedDescription
            throw ConfigError(source: source, path: "", message: "not valid JSON: \(detail)")
        }
        guard let dict = any as? [String: Any] else {
            throw ConfigError(source: source, path: "", message: "expected a JSON object at the top level")
        }
        return ConfigObject(source: source, path: "", values: dict)
    }

    func fail(_ key: String?, _ message: String) -> ConfigError {
        ConfigError(source: source, path: key.map(childPath) ?? path, message: message)
    }

    func childPath(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    func has(_ key: String) -> Bool { values[key] != nil && !(values[key] is NSNull) }

    mutating func double(_ key: String) throws(ConfigError) -> Double? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let n = v as? NSNumber, !isBoolean(v) else { throw fail(key, "must be a number, got \(describe(v))") }
        return n.doubleValue
    }

    mutating func double(_ key: String, in range: ClosedRange<Double>) throws(ConfigError) -> Double? {
        guard let v = try double(key) else { return nil }
        guard range.contains(v) else { throw fail(key, "must be between \(range.lowerBound) and \(range.upperBound), got \(v)") }
        return v
    }

    mutating func int(_ key: String, minimum: Int = 0) throws(ConfigError) -> Int? {
        guard let v = try double(key) else { return nil }
        guard v == v.rounded(), v >= Double(minimum), v < 1e15 else { throw fail(key, "must be a whole number of at least \(minimum), got \(v)") }
        return Int(v)
    }

    mutating func string(_ key: String) throws(ConfigError) -> String? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let s = v as? String else { throw fail(key, "must be a string, got \(describe(v))") }
        return s
    }

    mutating func bool(_ key: String) throws(ConfigError) -> Bool? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard isBoolean(v), let b = v as? Bool else { throw fail(key, "must be true or false, got \(describe(v))") }
        return b
    }

    mutating func enumValue<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type) throws(ConfigError) -> E? where E.RawValue == String {
        guard let s = try string(key) else { return nil }
        guard let e = E(rawValue: s) else {
            throw fail(key, "\"\(s)\" is not one of \(E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))")
        }
        return e
    }

    mutating func object(_ key: String) throws(ConfigError) -> ConfigObject? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let d = v as? [String: Any] else { throw fail(key, "must be an object, got \(describe(v))") }
        return ConfigObject(source: source, path: childPath(key), values: d)
    }

    mutating func objects(_ key: String) throws(ConfigError) -> [ConfigObject]? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let a = v as? [Any] else { throw fail(key, "must be an array of objects, got \(describe(v))") }
        var out: [ConfigObject] = []
        for (i, item) in a.enumerated() {
            guard let d = item as? [String: Any] else {
                throw ConfigError(source: source, path: "\(childPath(key))[\(i)]", message: "must be an object, got \(describe(item))")
            }
            out.append(ConfigObject(source: source, path: "\(childPath(key))[\(i)]", values: d))
        }
        return out
    }

    /// The keys of a nested object in file order is not available from JSONSerialization, so callers that
    /// need an order use arrays; this lists the keys sorted.
    var keys: [String] { values.keys.sorted() }

    /// Fails on any key that was not read.
    func finish() throws(ConfigError) {
        let unknown = Set(values.keys).subtracting(used).sorted()
        if let first = unknown.first {
            throw fail(first, "unknown key (known keys here: \(used.sorted().joined(separator: ", ")))")
        }
    }

    private func describe(_ v: Any) -> String {
        if v is NSNull { return "null" }
        if isBoolean(v), let b = v as? Bool { return b ? "true" : "false" }
        if let s = v as? String { return "\"\(s)\"" }
        if v is [Any] { return "an array" }
        if v is [String: Any] { return "an object" }
        return "\(v)"
    }
}

/// JSONSerialization gives booleans as NSNumber subclasses that also cast to numbers; tell them apart.
func isBoolean(_ v: Any) -> Bool {
    String(describing: type(of: v)).contains("Boolean") || type(of: v) == Bool.self
}
