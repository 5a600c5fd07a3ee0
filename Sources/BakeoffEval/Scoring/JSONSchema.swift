import BakeoffCore

/// A JSON Schema (draft 2020-12) of the `json_schema` scorer, compiled once from the config, in the subset below.
/// A keyword outside it is a config error naming the keyword and its path, never silently ignored: an answer
/// must not pass a check that was not made. Results agree with Python's `jsonschema` `Draft202012Validator`
/// (Tests/BakeoffEvalTests/Fixtures/scorers.json).
///
/// - Any type: `type` (a name or an array of names: `null`, `boolean`, `object`, `array`, `number`, `string`,
///   `integer`, which is any number with no fractional part, `1.0` included), `enum`, `const`, `allOf`, `anyOf`,
///   `oneOf`, `not`, `$ref`. `true` and `false` are schemas (anything, nothing).
/// - Objects: `properties`, `required`, `additionalProperties` (a schema or a boolean; applies to the members not
///   named in `properties`), `minProperties`, `maxProperties`.
/// - Arrays: `prefixItems`, `items` (a schema for the elements after `prefixItems`; the array form of older drafts
///   is refused), `minItems`, `maxItems`, `uniqueItems`.
/// - Strings: `minLength`, `maxLength` (in code points, as the specification and Python count), `pattern` (searched
///   anywhere in the string, not anchored; the dialect of the `regex` scorer: Swift Regex, not ECMA-262).
/// - Numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numbers, as in 2020-12), `multipleOf`
///   (as `jsonschema`: for a whole divisor the remainder is 0; otherwise the floating-point quotient is whole, so
///   0.5 is a multiple of 0.1 but 0.3 is not).
/// - `$ref`: `"#"` (the whole schema) or `"#/$defs/<name>"`; `$defs` only at the schema's root. A `$ref` applies
///   together with the keywords beside it (2020-12). A cycle of references that never descends into the instance
///   (`{"$ref": "#"}`) is a config error.
/// - Annotations, accepted and without effect: `title`, `description`, `default`, `examples`, `$comment`,
///   `deprecated`, `readOnly`, `writeOnly`, and `$schema` if it names draft 2020-12.
///
/// Not supported (config errors): `format` (which `jsonschema` does not check by default either: use `pattern`),
/// `patternProperties`, `propertyNames`, `dependentRequired`, `dependentSchemas`, `if`/`then`/`else`, `contains`,
/// `minContains`, `maxContains`, `unevaluatedItems`, `unevaluatedProperties`, `$id`, `$anchor`,
/// `$dynamicRef`, and any other keyword.
///
/// Values: JSON numbers are doubles (as the package's JSON reader gives them); equality in `enum`, `const` and
/// `uniqueItems` is JSON equality: `1` equals `1.0`, `true` does not equal `1`, object members in any order.
public struct JSONSchema: Sendable {
    enum JSONType: String, CaseIterable, Sendable {
        case null, boolean, object, array, number, string, integer
    }

    struct Node: Sendable {
        /// A boolean schema: true accepts everything, false nothing.
        var always: Bool?
        var types: [JSONType]?
        var enumValues: [JSONValue]?
        var constValue: JSONValue?
        var properties: [String: Int] = [:]
        var required: [String] = []
        var additionalProperties: Int?
        var minProperties: Int?
        var maxProperties: Int?
        var prefixItems: [Int] = []
        var items: Int?
        var minItems: Int?
        var maxItems: Int?
        var uniqueItems = false
        var minLength: Int?
        var maxLength: Int?
        var pattern: ScorerRegex?
        var minimum: Double?
        var maximum: Double?
        var exclusiveMinimum: Double?
        var exclusiveMaximum: Double?
        var multipleOf: Double?
        var allOf: [Int] = []
        var anyOf: [Int] = []
        var oneOf: [Int] = []
        var not: Int?
        var ref: Int?
    }

    /// The compiled schemas; 0 is the root, `$ref`s are indices.
    var nodes: [Node]
    /// The schema as written (compact JSON), for reports and cache keys.
    public let jsonText: String

    /// The keywords that are checked, and those accepted without effect.
    public static let supportedKeywords: [String] = [
        "type", "enum", "const", "allOf", "anyOf", "oneOf", "not", "$ref", "$defs",
        "properties", "required", "additionalProperties", "minProperties", "maxProperties",
        "prefixItems", "items", "minItems", "maxItems", "uniqueItems",
        "minLength", "maxLength", "pattern",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    ]
    public static let annotationKeywords: [String] = [
        "title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly", "$schema",
    ]
    static let metaSchemas: Set<String> = ["https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2020-12/schema#"]

    init(nodes: [Node], jsonText: String) {
        self.nodes = nodes
        self.jsonText = jsonText
    }

    /// Compiles a schema given as JSON text (for tests and tools); errors are located under `path`.
    public init(json: String, source: String = "schema", path: String = "") throws(ConfigError) {
        let document: JSONDocument
        do throws(JSONSyntaxError) { document = try JSONValue.parse(Array(json.utf8), trailingCommas: false) } catch {
            throw ConfigError(source: source, path: path, message: "not valid JSON: \(error)")
        }
        self = try JSONSchema.compile(document.root, source: source, path: path)
    }

    /// Compiles `schema` (a config's value at `path`).
    package static func compile(_ schema: JSONValue, source: String, path: String) throws(ConfigError) -> JSONSchema {
        var compiler = Compiler(source: source)
        try compiler.compileRoot(schema, path: path)
        return JSONSchema(nodes: compiler.nodes, jsonText: schema.jsonText)
    }

    // MARK: Validation

    /// Whether `instance` is valid.
    package func accepts(_ instance: JSONValue) -> Bool { valid(instance, 0) }

    func valid(_ value: JSONValue, _ index: Int) -> Bool {
        let node = nodes[index]
        if let always = node.always { return always }
        if let types = node.types, !types.contains(where: { Self.has(value, type: $0) }) { return false }
        if let values = node.enumValues, !values.contains(where: { Self.equal($0, value) }) { return false }
        if let constant = node.constValue, !Self.equal(constant, value) { return false }
        switch value.content {
        case .object(let object):
            let count = object.count
            if let m = node.minProperties, count < m { return false }
            if let m = node.maxProperties, count > m { return false }
            for name in node.required where !object.contains(name) { return false }
            if !node.properties.isEmpty || node.additionalProperties != nil {
                for key in object.keys {
                    let member = object[key]!
                    if let schema = node.properties[key] {
                        if !valid(member, schema) { return false }
                    } else if let schema = node.additionalProperties, !valid(member, schema) {
                        return false
                    }
                }
            }
        case .array(let elements):
            if let m = node.minItems, elements.count < m { return false }
            if let m = node.maxItems, elements.count > m { return false }
            for (element, schema) in zip(elements, node.prefixItems) where !valid(element, schema) { return false }
            if let schema = node.items {
                for element in elements.dropFirst(node.prefixItems.count) where !valid(element, schema) { return false }
            }
            if node.uniqueItems {
                for i in elements.indices {
                    for j in elements.indices where j > i && Self.equal(elements[i], elements[j]) { return false }
                }
            }
        case .string(let text):
            if node.minLength != nil || node.maxLength != nil {
                let length = text.unicodeScalars.count
                if let m = node.minLength, length < m { return false }
                if let m = node.maxLength, length > m { return false }
            }
            if let pattern = node.pattern, !pattern.matches(text) { return false }
        case .number(let x):
            if let m = node.minimum, x < m { return false }
            if let m = node.maximum, x > m { return false }
            if let m = node.exclusiveMinimum, x <= m { return false }
            if let m = node.exclusiveMaximum, x >= m { return false }
            if let d = node.multipleOf, !Self.isMultiple(x, of: d) { return false }
        case .null, .bool:
            break
        }
        for schema in node.allOf where !valid(value, schema) { return false }
        if !node.anyOf.isEmpty && !node.anyOf.contains(where: { valid(value, $0) }) { return false }
        if !node.oneOf.isEmpty {
            var passed = 0
            for schema in node.oneOf where valid(value, schema) {
                passed += 1
                if passed > 1 { return false }
            }
            if passed != 1 { return false }
        }
        if let schema = node.not, valid(value, schema) { return false }
        if let schema = node.ref, !valid(value, schema) { return false }
        return true
    }

    static func has(_ value: JSONValue, type: JSONType) -> Bool {
        switch (type, value.content) {
        case (.null, .null), (.boolean, .bool), (.object, .object), (.array, .array), (.number, .number), (.string, .string): return true
        case (.integer, .number(let x)): return x.isFinite && x == x.rounded(.towardZero)
        default: return false
        }
    }

    /// JSON equality as `jsonschema` has it: numbers by value (1 == 1.0), booleans apart from numbers, arrays in
    /// order, objects by their members in any order.
    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a.content, b.content) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.object(let x), .object(let y)):
            guard x.count == y.count else { return false }
            return x.keys.allSatisfy { key in y[key].map { equal(x[key]!, $0) } ?? false }
        default: return false
        }
    }

    /// `jsonschema`'s multipleOf: a whole divisor leaves no remainder; otherwise the quotient is a whole number,
    /// and where it overflows, exactly.
    static func isMultiple(_ x: Double, of d: Double) -> Bool {
        if d == d.rounded() && abs(d) < 9007199254740992 { return x.truncatingRemainder(dividingBy: d) == 0 }
        let quotient = x / d
        if quotient.isFinite { return quotient == quotient.rounded(.towardZero) }
        // x / d is a whole number when d's odd significand divides x's and no power of two is left in the divisor.
        func split(_ v: Double) -> (odd: UInt64, exponent: Int) {
            var significand = UInt64(v.significandBitPattern) | (v.isNormal ? 1 << 52 : 0)
            var exponent = Int(v.exponent) - 52
            if !v.isNormal { exponent = -1074 }
            let zeros = significand.trailingZeroBitCount
            significand >>= UInt64(zeros)
            exponent += zeros
            return (significand, exponent)
        }
        let (xOdd, xExponent) = split(abs(x)), (dOdd, dExponent) = split(abs(d))
        return xOdd % dOdd == 0 && xExponent >= dExponent
    }

    // MARK: Compilation

    struct Compiler {
        let source: String
        var nodes: [Node] = []
        var paths: [String] = []
        /// The root's `$defs`: name to node index.
        var definitions: [String: Int] = [:]
        /// Where each `$ref` is written, and what it points to.
        var references: [(from: Int, path: String)] = []

        init(source: String) { self.source = source }

        func fail(_ path: String, _ message: String) -> ConfigError { ConfigError(source: source, path: path, message: message) }

        mutating func reserve(_ path: String) -> Int {
            nodes.append(Node())
            paths.append(path)
            return nodes.count - 1
        }

        mutating func compileRoot(_ schema: JSONValue, path: String) throws(ConfigError) {
            let root = reserve(path)
            if let object = schema.object, let defs = object["$defs"] {
                let defsPath = Self.child(path, "$defs")
                guard let members = defs.object else { throw fail(defsPath, "must be an object of schemas, got \(defs.described)") }
                for key in members.keys { definitions[key] = reserve(Self.child(defsPath, key)) }
                for key in members.keys {
                    let index = definitions[key]!
                    try compile(members[key]!, into: index, path: paths[index], isRoot: false)
                }
            }
            try compile(schema, into: root, path: path, isRoot: true)
            try checkCycles()
        }

        static func child(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }

        mutating func compile(_ schema: JSONValue, path: String) throws(ConfigError) -> Int {
            let index = reserve(path)
            try compile(schema, into: index, path: path, isRoot: false)
            return index
        }

        mutating func compile(_ schema: JSONValue, into index: Int, path: String, isRoot: Bool) throws(ConfigError) {
            if let b = schema.bool {
                nodes[index].always = b
                return
            }
            guard let object = schema.object else { throw fail(path, "a schema must be an object or true/false, got \(schema.described)") }
            var node = Node()
            func at(_ key: String) -> String { Self.child(path, key) }
            for key in object.keys {
                let value = object[key]!
                let here = at(key)
                switch key {
                case "type":
                    node.types = try types(value, path: here)
                case "enum":
                    guard let values = value.array else { throw fail(here, "must be an array of the allowed values, got \(value.described)") }
                    node.enumValues = values
                case "const":
                    node.constValue = value
                case "properties":
                    guard let members = value.object else { throw fail(here, "must be an object of schemas, got \(value.described)") }
                    for name in members.keys { node.properties[name] = try compile(members[name]!, path: Self.child(here, name)) }
                case "required":
                    guard let names = value.array else { throw fail(here, "must be an array of property names, got \(value.described)") }
                    for (i, name) in names.enumerated() {
                        guard let s = name.string else { throw fail("\(here)[\(i)]", "must be a string, got \(name.described)") }
                        guard !node.required.contains(s) else { throw fail("\(here)[\(i)]", "\"\(s)\" is listed twice") }
                        node.required.append(s)
                    }
                case "additionalProperties": node.additionalProperties = try compile(value, path: here)
                case "minProperties": node.minProperties = try count(value, path: here)
                case "maxProperties": node.maxProperties = try count(value, path: here)
                case "prefixItems":
                    node.prefixItems = try schemaList(value, path: here)
                case "items":
                    if value.array != nil { throw fail(here, "must be a schema; for a schema per position use \"prefixItems\" (draft 2020-12)") }
                    node.items = try compile(value, path: here)
                case "minItems": node.minItems = try count(value, path: here)
                case "maxItems": node.maxItems = try count(value, path: here)
                case "uniqueItems":
                    guard let b = value.bool else { throw fail(here, "must be true or false, got \(value.described)") }
                    node.uniqueItems = b
                case "minLength": node.minLength = try count(value, path: here)
                case "maxLength": node.maxLength = try count(value, path: here)
                case "pattern":
                    guard let text = value.string else { throw fail(here, "must be a regular expression in a string, got \(value.described)") }
                    do throws(ScorerRegex.PatternError) { node.pattern = try ScorerRegex(pattern: text) } catch {
                        throw fail(here, "not a valid regular expression: \(error.message)")
                    }
                case "minimum": node.minimum = try number(value, path: here)
                case "maximum": node.maximum = try number(value, path: here)
                case "exclusiveMinimum": node.exclusiveMinimum = try number(value, path: here)
                case "exclusiveMaximum": node.exclusiveMaximum = try number(value, path: here)
                case "multipleOf":
                    let d = try number(value, path: here)
                    guard d > 0 else { throw fail(here, "must be greater than 0, got \(value.described)") }
                    node.multipleOf = d
                case "allOf": node.allOf = try schemaList(value, path: here)
                case "anyOf": node.anyOf = try schemaList(value, path: here)
                case "oneOf": node.oneOf = try schemaList(value, path: here)
                case "not": node.not = try compile(value, path: here)
                case "$ref":
                    guard let text = value.string else { throw fail(here, "must be a string such as \"#/$defs/name\", got \(value.described)") }
                    node.ref = try resolve(text, path: here)
                    references.append((index, here))
                case "$defs":
                    // Compiled before the root (compileRoot).
                    guard isRoot else { throw fail(here, "is supported at the schema's root only") }
                case "$schema":
                    guard let uri = value.string, JSONSchema.metaSchemas.contains(uri) else {
                        throw fail(here, "only draft 2020-12 is supported (\"https://json-schema.org/draft/2020-12/schema\"), got \(value.described)")
                    }
                case "title", "description", "$comment":
                    guard value.string != nil else { throw fail(here, "must be a string, got \(value.described)") }
                case "deprecated", "readOnly", "writeOnly":
                    guard value.bool != nil else { throw fail(here, "must be true or false, got \(value.described)") }
                case "examples":
                    guard value.array != nil else { throw fail(here, "must be an array, got \(value.described)") }
                case "default":
                    break
                case "format":
                    throw fail(here, "\"format\" is not supported: it would not be checked (use \"pattern\")")
                default:
                    let guess = closestName(key, among: JSONSchema.supportedKeywords + JSONSchema.annotationKeywords)
                    throw fail(here, "the keyword \"\(key)\" is not supported" + (guess.map { "; did you mean \"\($0)\"?" } ?? "")
                               + " (supported: \(JSONSchema.supportedKeywords.joined(separator: ", ")))")
                }
            }
            if let a = node.minItems, let b = node.maxItems, a > b { throw fail(at("maxItems"), "is smaller than \"minItems\" (\(a)): no array is valid") }
            if let a = node.minLength, let b = node.maxLength, a > b { throw fail(at("maxLength"), "is smaller than \"minLength\" (\(a)): no string is valid") }
            if let a = node.minProperties, let b = node.maxProperties, a > b {
                throw fail(at("maxProperties"), "is smaller than \"minProperties\" (\(a)): no object is valid")
            }
            nodes[index] = node
        }

        func types(_ value: JSONValue, path: String) throws(ConfigError) -> [JSONType] {
            let names = JSONType.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            func one(_ v: JSONValue, _ p: String) throws(ConfigError) -> JSONType {
                guard let s = v.string else { throw fail(p, "must be a type name (\(names)), got \(v.described)") }
                guard let t = JSONType(rawValue: s) else {
                    throw fail(p, "\"\(s)\" is not a JSON Schema type" + (closestName(s, among: JSONType.allCases.map(\.rawValue)).map { "; did you mean \"\($0)\"?" } ?? "")
                               + " (types: \(names))")
                }
                return t
            }
            guard let list = value.array else { return [try one(value, path)] }
            guard !list.isEmpty else { throw fail(path, "must not be an empty array") }
            var out: [JSONType] = []
            for (i, v) in list.enumerated() {
                let t = try one(v, "\(path)[\(i)]")
                guard !out.contains(t) else { throw fail("\(path)[\(i)]", "\"\(t.rawValue)\" is listed twice") }
                out.append(t)
            }
            return out
        }

        func count(_ value: JSONValue, path: String) throws(ConfigError) -> Int {
            guard let n = value.number, n >= 0, n == n.rounded(), n < 1e15 else {
                throw fail(path, "must be a whole number of at least 0, got \(value.described)")
            }
            return Int(n)
        }

        func number(_ value: JSONValue, path: String) throws(ConfigError) -> Double {
            guard let n = value.number else { throw fail(path, "must be a number, got \(value.described)") }
            return n
        }

        mutating func schemaList(_ value: JSONValue, path: String) throws(ConfigError) -> [Int] {
            guard let list = value.array, !list.isEmpty else { throw fail(path, "must be a non-empty array of schemas, got \(value.described)") }
            var out: [Int] = []
            for (i, schema) in list.enumerated() { out.append(try compile(schema, path: "\(path)[\(i)]")) }
            return out
        }

        func resolve(_ reference: String, path: String) throws(ConfigError) -> Int {
            if reference == "#" { return 0 }
            let prefix = "#/$defs/"
            guard reference.hasPrefix(prefix) else {
                throw fail(path, "\"\(reference)\" is not supported: only local references, \"#\" or \"#/$defs/<name>\"")
            }
            let escaped = String(reference.dropFirst(prefix.count))
            guard !escaped.contains("/") else {
                throw fail(path, "\"\(reference)\" is not supported: only local references, \"#\" or \"#/$defs/<name>\"")
            }
            let name = escaped.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            guard let index = definitions[name] else {
                let known = definitions.keys.sorted()
                throw fail(path, "\"\(reference)\": there is no \"\(name)\" in the root's \"$defs\""
                           + (closestName(name, among: known).map { "; did you mean \"#/$defs/\($0)\"?" } ?? "")
                           + (known.isEmpty ? "" : " (defined: \(known.joined(separator: ", ")))"))
            }
            return index
        }

        /// Refuses references that lead back to where they started without looking inside the instance: the
        /// validation would never end.
        func checkCycles() throws(ConfigError) {
            func inPlace(_ i: Int) -> [Int] {
                let n = nodes[i]
                return n.allOf + n.anyOf + n.oneOf + (n.not.map { [$0] } ?? []) + (n.ref.map { [$0] } ?? [])
            }
            // 0: unvisited, 1: on the path, 2: done.
            var state = [UInt8](repeating: 0, count: nodes.count)
            for start in nodes.indices where state[start] == 0 {
                var stack: [(node: Int, next: Int)] = [(start, 0)]
                state[start] = 1
                while let (node, next) = stack.last {
                    let successors = inPlace(node)
                    if next == successors.count {
                        state[node] = 2
                        stack.removeLast()
                        continue
                    }
                    stack[stack.count - 1].next += 1
                    let s = successors[next]
                    if state[s] == 1 {
                        let cycle = Set(stack.map(\.node).drop(while: { $0 != s }))
                        let at = references.first { cycle.contains($0.from) && nodes[$0.from].ref.map(cycle.contains) == true }?.path ?? paths[s]
                        throw fail(at, "this \"$ref\" leads back to itself without descending into the instance (the check would never end)")
                    }
                    if state[s] == 0 {
                        state[s] = 1
                        stack.append((s, 0))
                    }
                }
            }
        }
    }
}
