import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools
/// A command-line mistake: reported with the command's usage, exit status 2.
struct UsageError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// The arguments of one subcommand, consumed option by option so that anything left over is an error.
struct Arguments {
    let command: String
    private var items: [String]

    init(command: String, _ items: [String]) {
        self.command = command
        self.items = items
    }

    var wantsHelp: Bool { items.contains("--help") || items.contains("-h") }

    /// The value of `--name VALUE` or `--name=VALUE` (the last one wins), removing it.
    mutating func option(_ name: String) throws(UsageError) -> String? {
        var value: String?
        var i = 0
        while i < items.count {
            if items[i] == name {
                guard i + 1 < items.count else { throw UsageError("\(name) needs a value") }
                value = items[i + 1]
                items.removeSubrange(i...(i + 1))
            } else if items[i].hasPrefix(name + "=") {
                value = String(items[i].dropFirst(name.count + 1))
                items.remove(at: i)
            } else {
                i += 1
            }
        }
        return value
    }

    mutating func double(_ name: String) throws(UsageError) -> Double? {
        guard let s = try option(name) else { return nil }
        guard let v = Double(s), v.isFinite else { throw UsageError("\(name) needs a number, got \"\(s)\"") }
        return v
    }

    /// A number option that must lie in `range`; the error says so in `rule`'s words ("0 or more").
    mutating func double(_ name: String, in range: ClosedRange<Double>, rule: String) throws(UsageError) -> Double? {
        guard let v = try double(name) else { return nil }
        guard range.contains(v) else { throw UsageError("\(name) must be \(rule), got \(JSONWriter.number(v))") }
        return v
    }

    /// A whole-number option that must lie in `range`.
    mutating func int(_ name: String, in range: ClosedRange<Int>, rule: String) throws(UsageError) -> Int? {
        guard let v = try int(name) else { return nil }
        guard range.contains(v) else { throw UsageError("\(name) must be \(rule), got \(v)") }
        return v
    }

    mutating func int(_ name: String) throws(UsageError) -> Int? {
        guard let s = try option(name) else { return nil }
        guard let v = Int(s) else { throw UsageError("\(name) needs a whole number, got \"\(s)\"") }
        return v
    }

    mutating func choice<E: RawRepresentable & CaseIterable>(_ name: String, _ type: E.Type) throws(UsageError) -> E? where E.RawValue == String {
        guard let s = try option(name) else { return nil }
        guard let v = E(rawValue: s) else {
            throw UsageError("\(name) must be one of \(E.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(s)\"")
        }
        return v
    }

    /// Whether `--name` is present, removing it.
    mutating func flag(_ name: String) -> Bool {
        let had = items.contains(name)
        items.removeAll { $0 == name }
        return had
    }

    /// The remaining positional arguments; any remaining `--option` is an error.
    mutating func positionals() throws(UsageError) -> [String] {
        if let unknown = items.first(where: { $0.hasPrefix("--") || ($0.hasPrefix("-") && $0 != "-") }) {
            throw UsageError("unknown option \(unknown) for 'bakeoff \(command)'")
        }
        defer { items = [] }
        return items
    }

    mutating func finish() throws(UsageError) {
        let rest = try positionals()
        if let first = rest.first { throw UsageError("unexpected argument \"\(first)\" for 'bakeoff \(command)'") }
    }
}
