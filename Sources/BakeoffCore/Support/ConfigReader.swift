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

/// Reads a JSON object field by field, naming the JSON path in every error and rejecting unknown keys.
package struct ConfigObject {
    package let source: String
    package let path: String
    /// The object's members (keys in document order).
    package let members: JSONObject
    package private(set) var used: Set<String> = []

    package init(source: String, path: String, members: JSONObject) {
        self.source = source
        self.path = path
        self.members = members
    }

    /// Parses `data` as a JSON object; a key repeated within an object is an error.
    package static func parse(_ data: Data, source: String) throws(ConfigError) -> ConfigObject {
        let (root, duplicates) = try parseDocument(data, source: source)
        if let first = duplicates.first {
            throw ConfigError(source: source, path: first.path, message: ConfigObject.duplicateKeyMessage)
        }
        return root
    }

    /// Parses `data` as a JSON object and returns it with the keys repeated within an object (where a reader
    /// lists every problem rather than stopping at the first).
    package static func parseDocument(_ data: Data, source: String) throws(ConfigError) -> (root: ConfigObject, duplicates: [JSONDuplicateKey]) {
        if data.isEmpty { throw ConfigError(source: source, path: "", message: "the file is empty; expected a JSON object") }
        let document: JSONDocument
        do { document = try JSONValue.parse([UInt8](data)) } catch {
            throw ConfigError(source: source, path: "", message: "not valid JSON: \(error)")
        }
        guard let object = document.root.object else {
            throw ConfigError(source: source, path: "", message: "expected a JSON object at the top level, got \(document.root.described)")
        }
        return (ConfigObject(source: source, path: "", members: object), document.duplicateKeys)
    }

    /// What a repeated key is told.
    package static let duplicateKeyMessage = "this key appears twice in the same object; keep one"

    /// The value of `key` as written (null included), nil when absent; not marked as read.
    package subscript(key: String) -> JSONValue? { members[key] }

    package func fail(_ key: String?, _ message: String) -> ConfigError {
        ConfigError(source: source, path: key.map(childPath) ?? path, message: message)
    }

    package func childPath(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    /// Marks `key` as read and returns its value (nil when absent or null).
    package mutating func take(_ key: String) -> JSONValue? {
        used.insert(key)
        guard let v = members[key], !v.isNull else { return nil }
        return v
    }

    package mutating func double(_ key: String) throws(ConfigError) -> Double? {
        guard let v = take(key) else { return nil }
        guard let n = v.number else { throw fail(key, "must be a number, got \(v.described)") }
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
        guard let a = v.array else { throw fail(key, "must be an array of numbers, got \(v.described)") }
        var out: [Double] = []
        for (i, item) in a.enumerated() {
            guard let n = item.number else {
                throw ConfigError(source: source, path: "\(childPath(key))[\(i)]", message: "must be a number, got \(item.described)")
            }
            out.append(n)
        }
        return out
    }

    package mutating func string(_ key: String) throws(ConfigError) -> String? {
        guard let v = take(key) else { return nil }
        guard let s = v.string else { throw fail(key, "must be a string, got \(v.described)") }
        return s
    }

    package mutating func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let v = take(key) else { return nil }
        guard let b = v.bool else { throw fail(key, "must be true or false, got \(v.described)") }
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
        guard let d = v.object else { throw fail(key, "must be an object, got \(v.described)") }
        return ConfigObject(source: source, path: childPath(key), members: d)
    }

    package mutating func objects(_ key: String) throws(ConfigError) -> [ConfigObject]? {
        guard let v = take(key) else { return nil }
        guard let a = v.array else { throw fail(key, "must be an array of objects, got \(v.described)") }
        var out: [ConfigObject] = []
        for (i, item) in a.enumerated() {
            guard let d = item.object else {
                throw ConfigError(source: source, path: "\(childPath(key))[\(i)]", message: "must be an object, got \(item.described)")
            }
            out.append(ConfigObject(source: source, path: "\(childPath(key))[\(i)]", members: d))
        }
        return out
    }

    /// Fails on any key that was not read.
    package func finish() throws(ConfigError) {
        let unknown = Set(members.keys).subtracting(used).sorted()
        if let first = unknown.first {
            throw fail(first, "unknown key (known keys here: \(used.sorted().joined(separator: ", ")))")
        }
    }
}
