import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools

/// A command-line mistake: reported with the command's usage, exit status 2.
package struct UsageError: Error, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// The exit status of a command.
package enum ExitCode: Int32 {
    case ok = 0
    case failure = 1
    case usage = 2
}

/// One option of a command, declared once: the parser and the help are both made from it.
package struct Option: Sendable {
    package enum Kind: Sendable {
        /// Present or not: `--stream`.
        case flag
        /// `--name VALUE` or `--name=VALUE`; when given twice, the last one counts.
        case single
        /// As `.single`, and every one given counts, in order: `--header 'A: b' --header 'C: d'`.
        case repeatable
        /// One of `allowed`, which the help shows as the value; `accepts` may take more (spellings kept for
        /// compatibility, not advertised).
        case choice(allowed: [String], accepts: @Sendable (String) -> Bool)
        /// A random seed, as a decimal whole number: 0 ... 2^64-1, or a negative one taken as its 64-bit pattern.
        case seed
    }

    /// With its dashes: "--alpha".
    package var name: String
    /// A one-letter alias, used with one dash: "h" for -h.
    package var short: Character?
    /// What the help shows after the name: "A", "FILE" (choices show their values).
    package var valueName: String?
    package var help: String
    package var kind: Kind
    /// Shown at the end of the help line: "(default: 0.05)".
    package var defaultValue: String?
    /// Accepted but left out of the help and of suggestions: internal and benchmark options.
    package var hidden: Bool

    package init(_ name: String, short: Character? = nil, value valueName: String? = nil, _ help: String, kind: Kind,
                 default defaultValue: String? = nil, hidden: Bool = false) {
        precondition(name.hasPrefix("--"), "an option's name starts with --: \(name)")
        self.name = name
        self.short = short
        self.valueName = valueName
        self.help = help
        self.kind = kind
        self.defaultValue = defaultValue
        self.hidden = hidden
    }

    /// `--check`
    package static func flag(_ name: String, short: Character? = nil, _ help: String, hidden: Bool = false) -> Option {
        Option(name, short: short, help, kind: .flag, hidden: hidden)
    }

    /// `--config FILE`
    package static func single(_ name: String, _ valueName: String, _ help: String, default defaultValue: String? = nil,
                               hidden: Bool = false) -> Option {
        Option(name, value: valueName, help, kind: .single, default: defaultValue, hidden: hidden)
    }

    /// `--header 'Name: value'`, as often as needed.
    package static func repeatable(_ name: String, _ valueName: String, _ help: String) -> Option {
        Option(name, value: valueName, help, kind: .repeatable)
    }

    /// `--format table|json`, the values from an enumeration.
    package static func choice<E: RawRepresentable & CaseIterable>(_ name: String, _ type: E.Type, _ help: String,
                                                                   default defaultValue: String? = nil) -> Option
    where E.RawValue == String {
        choice(name, E.allCases.map(\.rawValue), help, default: defaultValue)
    }

    /// `--correction holm|bh|none`; `accepts` may take other spellings too.
    package static func choice(_ name: String, _ allowed: [String], accepts: (@Sendable (String) -> Bool)? = nil,
                               _ help: String, default defaultValue: String? = nil) -> Option {
        Option(name, help, kind: .choice(allowed: allowed, accepts: accepts ?? { allowed.contains($0) }), default: defaultValue)
    }

    /// `--seed N`
    package static func seed(_ help: String, default defaultValue: String? = "1") -> Option {
        Option("--seed", value: "N", help, kind: .seed, default: defaultValue)
    }

    /// Whether it is written `--name VALUE`.
    package var takesValue: Bool {
        if case .flag = kind { return false }
        return true
    }

    /// The left column of the help: "--alpha A", "--format table|json", "--help, -h".
    package var label: String {
        var text = name
        if let short { text += ", -\(short)" }
        switch kind {
        case .flag: break
        case .choice(let allowed, _): text += " " + allowed.joined(separator: "|")
        default: text += " " + (valueName ?? "VALUE")
        }
        return text
    }

    /// The seed of `text`, or nil when it is not one (see `Kind.seed`).
    package static func parseSeed(_ text: String) -> UInt64? {
        UInt64(text) ?? Int64(text).map { UInt64(bitPattern: $0) }
    }
}

/// A positional argument, for the help (the command checks how many it got and says what is missing).
package struct Argument: Sendable {
    package var name: String
    package var help: String
    package init(_ name: String, _ help: String) {
        self.name = name
        self.help = help
    }
}

/// What a command is and takes, declared once: its parser, its help and the command list are made from it.
package struct CommandSpec: Sendable {
    package var name: String
    /// One line for `bakeoff --help`.
    package var summary: String
    /// The usage forms after "bakeoff NAME": ["EVENTS.jsonl [options]", "--db PATH [options]"].
    package var usage: [String]
    /// Paragraphs between the usage and the arguments (blank lines separate paragraphs; lines indented by two
    /// spaces are kept as they are).
    package var about: String
    package var arguments: [Argument]
    package var options: [Option]
    /// Paragraphs after the options: examples, notes.
    package var notes: String

    package init(_ name: String, summary: String, usage: [String], about: String, arguments: [Argument] = [],
                 options: [Option], notes: String = "") {
        self.name = name
        self.summary = summary
        self.usage = usage
        self.about = about
        self.arguments = arguments
        self.options = options + [Option.help]
        self.notes = notes
    }

    /// The option named `name` ("--alpha" or "-h").
    package func option(named name: String) -> Option? {
        options.first { $0.name == name || ($0.short.map { "-\($0)" } == name) }
    }
}

extension Option {
    /// Every command's `--help, -h`.
    package static let help = Option.flag("--help", short: "h", "Show this help")
}

/// A command's arguments, parsed by its `CommandSpec`: options by name, the rest in order.
package struct ParsedArguments {
    package let spec: CommandSpec
    /// Each option's values in the order given (a flag's are empty strings).
    private var values: [String: [String]] = [:]
    package private(set) var positionals: [String] = []

    /// Whether `--help` or `-h` comes before any `--`: then the help is all the command does, whatever else was
    /// given (even a mistake).
    package static func wantsHelp(_ arguments: [String]) -> Bool {
        for argument in arguments {
            if argument == "--" { return false }
            if argument == "--help" || argument == "-h" { return true }
        }
        return false
    }

    /// Parses `arguments`: `--name VALUE`, `--name=VALUE`, flags, repeatable options, and positionals; `--` ends
    /// the options.
    package init(_ arguments: [String], spec: CommandSpec) throws(UsageError) {
        self.spec = spec
        var optionsEnded = false
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            i += 1
            if optionsEnded || argument == "-" || !argument.hasPrefix("-") {
                guard !spec.arguments.isEmpty else {
                    throw UsageError("unexpected argument \"\(argument)\" for 'bakeoff \(spec.name)'")
                }
                positionals.append(argument)
                continue
            }
            if argument == "--" {
                optionsEnded = true
                continue
            }
            var name = argument, inline: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inline = String(argument[argument.index(after: equals)...])
            }
            guard let option = spec.option(named: name) else {
                let visible = spec.options.filter { !$0.hidden }.map(\.name)
                throw UsageError("unknown option \(name) for 'bakeoff \(spec.name)'"
                                 + (closestName(name, among: visible).map { "; did you mean \($0)?" } ?? ""))
            }
            guard option.takesValue else {
                if inline != nil { throw UsageError("\(option.name) takes no value, got \"\(argument)\"") }
                values[option.name, default: []].append("")
                continue
            }
            let value: String
            if let inline {
                value = inline
            } else {
                guard i < arguments.count else { throw UsageError("\(option.name) needs a value") }
                value = arguments[i]
                i += 1
            }
            switch option.kind {
            case .choice(let allowed, let accepts):
                guard accepts(value) else {
                    let guess = closestName(value, among: allowed).map { "; did you mean \"\($0)\"?" } ?? ""
                    throw UsageError("\(option.name) must be one of \(allowed.joined(separator: ", ")), got \"\(value)\"\(guess)")
                }
            case .seed:
                guard Option.parseSeed(value) != nil else {
                    throw UsageError("\(option.name) needs a whole number, got \"\(value)\"")
                }
            default: break
            }
            values[option.name, default: []].append(value)
        }
    }

    /// The declaration of `name`, which must be one of the command's (a typo in a command is a bug, caught by its
    /// first test).
    private func declared(_ name: String) -> Option {
        guard let option = spec.options.first(where: { $0.name == name }) else {
            preconditionFailure("bakeoff \(spec.name) reads \(name), which it does not declare")
        }
        return option
    }

    /// Whether the flag `name` was given.
    package func flag(_ name: String) -> Bool {
        precondition(!declared(name).takesValue, "\(name) is not a flag")
        return values[name] != nil
    }

    /// The value of `name`, the last one when it was given several times.
    package func string(_ name: String) -> String? {
        precondition(declared(name).takesValue, "\(name) is a flag")
        return values[name]?.last
    }

    /// Every value of the repeatable `name`, in order.
    package func strings(_ name: String) -> [String] {
        guard case .repeatable = declared(name).kind else { preconditionFailure("\(name) is not repeatable") }
        return values[name] ?? []
    }

    package func double(_ name: String) throws(UsageError) -> Double? {
        guard let s = string(name) else { return nil }
        guard let v = Double(s), v.isFinite else { throw UsageError("\(name) needs a number, got \"\(s)\"") }
        return v
    }

    /// A number option that must lie in `range`; the error says so in `rule`'s words ("0 or more").
    package func double(_ name: String, in range: ClosedRange<Double>, rule: String) throws(UsageError) -> Double? {
        guard let v = try double(name) else { return nil }
        guard range.contains(v) else { throw UsageError("\(name) must be \(rule), got \(JSONWriter.number(v))") }
        return v
    }

    package func int(_ name: String) throws(UsageError) -> Int? {
        guard let s = string(name) else { return nil }
        guard let v = Int(s) else { throw UsageError("\(name) needs a whole number, got \"\(s)\"") }
        return v
    }

    /// A whole-number option that must lie in `range`.
    package func int(_ name: String, in range: ClosedRange<Int>, rule: String) throws(UsageError) -> Int? {
        guard let v = try int(name) else { return nil }
        guard range.contains(v) else { throw UsageError("\(name) must be \(rule), got \(v)") }
        return v
    }

    /// A choice option's value (checked while parsing).
    package func choice<E: RawRepresentable>(_ name: String, _ type: E.Type) -> E? where E.RawValue == String {
        guard case .choice = declared(name).kind else { preconditionFailure("\(name) is not a choice") }
        return string(name).flatMap(E.init(rawValue:))
    }

    /// A seed option's value (checked while parsing).
    package func seed(_ name: String) -> UInt64? {
        guard case .seed = declared(name).kind else { preconditionFailure("\(name) is not a seed") }
        return string(name).flatMap(Option.parseSeed)
    }
}
