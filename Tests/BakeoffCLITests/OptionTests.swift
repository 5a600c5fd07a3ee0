import BakeoffCLI
import Foundation
import Testing

/// A command declared for these tests only: one option of every kind, a hidden one and a positional argument.
let demoSpec = CommandSpec(
    "demo",
    summary: "A command for the option tests",
    usage: ["[options] FILE..."],
    about: "Does nothing.",
    arguments: [Argument("FILE", "Files")],
    options: [
        .flag("--check", "A flag"),
        .single("--name", "NAME", "A value", default: "none"),
        .repeatable("--header", "'Name: value'", "May be repeated"),
        .choice("--format", ["table", "json"], "A choice", default: "table"),
        .seed("A seed"),
        .single("--secret", "N", "Internal", hidden: true),
    ]
)

/// The same without positional arguments.
let bareSpec = CommandSpec("bare", summary: "", usage: ["[options]"], about: "", options: [.flag("--check", "A flag")])

/// What a parse found, in one line to compare.
func describe(_ parsed: ParsedArguments) -> String {
    var parts: [String] = []
    if parsed.flag("--check") { parts.append("check") }
    if let name = parsed.string("--name") { parts.append("name=\(name)") }
    let headers = parsed.strings("--header")
    if !headers.isEmpty { parts.append("header=[\(headers.joined(separator: "|"))]") }
    if let format = parsed.string("--format") { parts.append("format=\(format)") }
    if let seed = parsed.seed("--seed") { parts.append("seed=\(seed)") }
    if let secret = parsed.string("--secret") { parts.append("secret=\(secret)") }
    if !parsed.positionals.isEmpty { parts.append("args=[\(parsed.positionals.joined(separator: "|"))]") }
    return parts.joined(separator: " ")
}

/// Where the help starts on a line of a two-column table (nil for a label alone on its line).
func helpColumn(_ line: String) -> Int? {
    let characters = Array(line)
    var i = 2
    while i + 1 < characters.count && !(characters[i] == " " && characters[i + 1] == " ") { i += 1 }
    guard i + 1 < characters.count else { return nil }
    while i < characters.count && characters[i] == " " { i += 1 }
    return i
}

@Suite("Options: declared once, parsed and documented from the declaration")
struct OptionTests {
    @Test(arguments: [
        (["--check"], "check"),
        (["--name", "a"], "name=a"),
        (["--name=a"], "name=a"),
        (["--name=a=b"], "name=a=b"),
        (["--name="], "name="),
        (["--name", "a", "--name", "b"], "name=b"),
        (["--header", "A: 1", "--header=B: 2", "--header", "C: 3"], "header=[A: 1|B: 2|C: 3]"),
        (["f1", "--check", "f2"], "check args=[f1|f2]"),
        (["-", "--format", "json"], "format=json args=[-]"),
        (["--", "--name", "x", "-h"], "args=[--name|x|-h]"),
        (["--name", "--check"], "name=--check"),
        (["--seed", "7"], "seed=7"),
        (["--seed=18446744073709551615"], "seed=18446744073709551615"),
        (["--seed", "-1"], "seed=18446744073709551615"),
        (["--secret", "3"], "secret=3"),
        ([], ""),
    ])
    func parses(_ arguments: [String], _ expected: String) throws {
        #expect(describe(try ParsedArguments(arguments, spec: demoSpec)) == expected)
    }

    @Test(arguments: [
        (["--name"], "--name needs a value"),
        (["--check", "--header"], "--header needs a value"),
        (["--nmae", "x"], "unknown option --nmae for 'bakeoff demo'; did you mean --name?"),
        (["--nmae=x"], "unknown option --nmae for 'bakeoff demo'; did you mean --name?"),
        (["--secrte"], "unknown option --secrte for 'bakeoff demo'"),
        (["--zzzzzzzz"], "unknown option --zzzzzzzz for 'bakeoff demo'"),
        (["-x"], "unknown option -x for 'bakeoff demo'"),
        (["--check=yes"], "--check takes no value, got \"--check=yes\""),
        (["--format", "xml"], "--format must be one of table, json, got \"xml\""),
        (["--seed", "1.5"], "--seed needs a whole number, got \"1.5\""),
        (["--seed", "0x10"], "--seed needs a whole number, got \"0x10\""),
        (["--seed", "18446744073709551616"], "--seed needs a whole number, got \"18446744073709551616\""),
    ])
    func rejects(_ arguments: [String], _ message: String) {
        do {
            _ = try ParsedArguments(arguments, spec: demoSpec)
            Issue.record("\(arguments) parsed")
        } catch {
            #expect(error.message == message)
        }
    }

    @Test func aCommandWithoutArgumentsRejectsOne() {
        do {
            _ = try ParsedArguments(["--check", "stray"], spec: bareSpec)
            Issue.record("parsed")
        } catch {
            #expect(error.message == "unexpected argument \"stray\" for 'bakeoff bare'")
        }
    }

    @Test(arguments: [
        (["--help"], true), (["-h"], true), (["x", "--frob", "-h"], true), (["--", "--help"], false), (["--name", "h"], false),
    ])
    func helpIsAskedBeforeAnyDoubleDash(_ arguments: [String], _ wanted: Bool) {
        #expect(ParsedArguments.wantsHelp(arguments) == wanted)
    }

    @Test func theHelpShowsWhatIsDeclared() {
        let help = Help.text(for: demoSpec)
        #expect(help.hasPrefix("USAGE: bakeoff demo [options] FILE...\n\nDoes nothing.\n\nARGUMENTS:\n  FILE"))
        for label in ["--check", "--name NAME", "--header 'Name: value'", "--format table|json", "--seed N", "--help, -h"] {
            #expect(help.contains("\n  \(label) "), "\(label) missing from\n\(help)")
        }
        #expect(help.contains("A value (default: none)"))
        #expect(!help.contains("--secret"))
    }

    @Test func helpColumnsAlignAndWrapAt80() {
        var spec = demoSpec
        spec.options.append(.single("--long", "X", String(repeating: "word ", count: 40)))
        let lines = Help.text(for: spec).split(separator: "\n").map(String.init)
        #expect(lines.allSatisfy { $0.count <= 80 })
        // Arguments and options: the help of each starts in the same column, its wrapped lines too.
        let rows = lines.drop { $0 != "ARGUMENTS:" }.filter { $0.hasPrefix("  ") }
        let starts = Set(rows.compactMap(helpColumn))
        #expect(rows.count > 8)
        #expect(starts.count == 1, "help text starts in several columns: \(starts)")
    }

    // MARK: The real commands

    @Test(arguments: BakeoffCLI.commands.map(\.spec.name))
    func everyCommandsHelpShowsEveryOptionWithin80Columns(_ name: String) throws {
        let spec = try #require(BakeoffCLI.command(named: name)).spec
        let help = Help.text(for: spec)
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false)
        for line in lines { #expect(line.count <= 80, "\(name): \(line.count) columns: \(line)") }
        #expect(help.hasPrefix("USAGE: bakeoff \(name) "))
        for option in spec.options where !option.hidden {
            #expect(help.contains("\n  \(option.label)"), "\(name): \(option.name) missing from its help")
        }
        for option in spec.options where option.hidden {
            #expect(!help.contains(option.name), "\(name): the hidden \(option.name) shows")
        }
        // Every option the help mentions (usage, prose) is one the command takes.
        let mentioned = help.split(whereSeparator: { " ,|[]()=\n\"'`".contains($0) }).filter { $0.hasPrefix("--") && $0.count > 2 }
        for option in Set(mentioned.map(String.init)) {
            #expect(spec.option(named: option) != nil, "\(name)'s help mentions \(option), which it does not take")
        }
        // The help through the tool is the same text.
        let viaFlag = try CLI.run([name, "--help"]), viaCommand = try CLI.run(["help", name])
        #expect(viaFlag.status == 0 && viaCommand.status == 0)
        #expect(viaFlag.stdout == help + "\n" && viaCommand.stdout == viaFlag.stdout)
        // Help wins over mistakes on the same line.
        #expect(try CLI.run([name, "--no-such-option", "-h"]).stdout == viaFlag.stdout)
    }

    @Test func theGeneralHelpListsEveryCommandAligned() throws {
        for arguments in [["--help"], ["-h"], ["help"], ["help", "help"]] {
            let r = try CLI.run(arguments)
            #expect(r.status == 0)
            #expect(r.stdout == BakeoffCLI.help + "\n")
        }
        let lines = BakeoffCLI.help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.allSatisfy { $0.count <= 80 })
        let commands = lines.drop { $0 != "COMMANDS:" }.dropFirst().prefix { !$0.isEmpty }
        #expect(commands.map { String($0.dropFirst(2).prefix { $0 != " " }) } == BakeoffCLI.commands.map(\.spec.name).filter { !$0.contains(" ") } + ["help"])
        // One line each, the summaries in one column.
        let columns = Set(commands.map(helpColumn))
        #expect(columns.count == 1, "summaries start in several columns:\n\(commands.joined(separator: "\n"))")
        #expect(lines.contains { $0.hasPrefix("  --help, -h ") })
        #expect(lines.contains { $0.hasPrefix("  --version, -V ") })
        // Without a command: the help, as a mistake.
        let none = try CLI.run([])
        #expect(none.status == 2 && none.stdout == BakeoffCLI.help + "\n")
    }

    @Test(arguments: [["--version"], ["-V"], ["version"]])
    func versionIsPrinted(_ arguments: [String]) throws {
        let r = try CLI.run(arguments)
        #expect(r.status == 0 && r.stdout == "bakeoff \(BakeoffCLI.version)\n" && r.stderr.isEmpty)
    }

    @Test func helpOnAnUnknownCommandSuggestsOne() throws {
        let r = try CLI.run(["help", "anlyze"])
        #expect(r.status == 2)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.hasPrefix("bakeoff: no help on \"anlyze\"; did you mean \"analyze\"? (commands: analyze, plan,"))
        let far = try CLI.run(["help", "zzzzzz"])
        #expect(far.status == 2 && !far.stderr.contains("did you mean"))
        let option = try CLI.run(["--verison"])
        #expect(option.status == 2 && option.stderr.contains("did you mean --version?"), "\(option.stderr)")
    }

    @Test func aUsageErrorIsTheMistakeTheUsageAndWhereTheHelpIs() throws {
        let r = try CLI.run(["plan", "--baseline", "0.75", "--mde", "0.05", "--fromat", "json"])
        #expect(r.status == 2)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr == """
            bakeoff: unknown option --fromat for 'bakeoff plan'; did you mean --format?
            bakeoff: USAGE: bakeoff plan --baseline B --mde D [options]
            bakeoff: see 'bakeoff plan --help'

            """)
        let missing = try CLI.run(["load", "--url"])
        #expect(missing.status == 2 && missing.stderr.hasPrefix("bakeoff: --url needs a value\nbakeoff: USAGE: bakeoff load --url URL"))
    }

    @Test func hiddenOptionsAreAccepted() throws {
        let r = try CLI.run(["analyze", "x.jsonl", "--benchmark", "3"])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("bakeoff: --benchmark times --summary input only\n"), "\(r.stderr)")
        #expect(!Help.text(for: try #require(BakeoffCLI.command(named: "analyze")).spec).contains("--benchmark"))
        let summary = try CLI.temporaryFile("variant,metric,assigned_users,users,sum,sum_squares\ncontrol,task_completion,100,100,70,70\ntreatment,task_completion,100,100,75,75\n", name: "summary.csv")
        let timed = try CLI.run(["analyze", "--summary", summary, "--benchmark=2", "--format", "json"])
        #expect(timed.status == 0, "\(timed.stderr)")
        #expect(timed.stderr.hasPrefix("bakeoff: benchmark: parse + statistics + json of \(summary): median "))
        // The same summary on standard input ("-").
        let piped = try CLI.run(["analyze", "--summary", "-", "--format", "json"], stdin: try String(contentsOfFile: summary, encoding: .utf8))
        #expect(piped.status == 0 && piped.stdout == timed.stdout, "\(piped.stderr)")
    }

    @Test func repeatedHeadersReachTheLoadCommand() throws {
        // The second header is malformed: proof that every --header is read, in both forms.
        let r = try CLI.run(["load", "--url", "http://127.0.0.1:1/v1/chat/completions", "--header", "A: b", "--header=bad header: x"])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("bakeoff: --header needs 'Name: value', got \"bad header: x\""), "\(r.stderr)")
    }

    @Test func aSeedIsReadOneWayEverywhere() throws {
        for command in BakeoffCLI.commands {
            for option in command.spec.options where option.name == "--seed" {
                guard case .seed = option.kind else { Issue.record("\(command.spec.name): --seed is not a seed"); continue }
            }
        }
        let a = try CLI.run(["simulate", "--preset", "aa", "--users", "20", "--seed", "7"])
        let b = try CLI.run(["simulate", "--preset", "aa", "--users", "20", "--seed=7"])
        let c = try CLI.run(["simulate", "--preset", "aa", "--users", "20", "--seed", "8"])
        #expect(a.status == 0 && !a.stdout.isEmpty)
        #expect(a.stdout == b.stdout && a.stdout != c.stdout)
        // A negative seed, which `simulate` always took, is its 64-bit pattern.
        let negative = try CLI.run(["simulate", "--preset", "aa", "--users", "20", "--seed", "-1"])
        let pattern = try CLI.run(["simulate", "--preset", "aa", "--users", "20", "--seed", "18446744073709551615"])
        #expect(negative.status == 0 && negative.stdout == pattern.stdout)
        for command in ["simulate", "calibrate", "traffic", "mock-upstream"] {
            let bad = try CLI.run([command, "--seed", "many"])
            #expect(bad.status == 2 && bad.stderr.hasPrefix("bakeoff: --seed needs a whole number, got \"many\"\n"), "\(command): \(bad.stderr)")
        }
    }
}

@Suite("Commands read what they declare")
struct DeclarationTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/BakeoffCLI")

    /// Every option a command's file reads (`args.double("--alpha")`) is declared by a command of that file, and
    /// every declared option is read: no option in the help that does nothing, none read that the parser rejects.
    @Test func declarationsAndReadsAgree() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.sources.path).filter { $0.hasSuffix(".swift") }
        var checked = 0
        var readAnywhere = Set<String>(), declaredAnywhere = Set<String>()
        for file in files {
            let text = try String(contentsOf: Self.sources.appendingPathComponent(file), encoding: .utf8)
            let specs = BakeoffCLI.commands.map(\.spec).filter { text.contains("CommandSpec(\n    \"\($0.name)\",") }
            let read = Set(text.matches(of: #/args\.(?:string|strings|flag|double|int|choice|seed)\("(--[a-z0-9-]+)"/#).map { String($0.1) })
            if specs.isEmpty {
                #expect(read.isEmpty, "\(file) reads \(read.sorted()) but declares no command")
                continue
            }
            let declared = Set(specs.flatMap(\.options).map(\.name)).subtracting(["--help"])
            #expect(read.subtracting(declared).isEmpty, "\(file) reads undeclared \(read.subtracting(declared).sorted())")
            readAnywhere.formUnion(read)
            declaredAnywhere.formUnion(declared)
            checked += specs.count
        }
        // (Shared helpers read some options for several commands: `allocationOption` reads --split for assign.)
        #expect(declaredAnywhere.subtracting(readAnywhere).isEmpty, "declared, never read: \(declaredAnywhere.subtracting(readAnywhere).sorted())")
        #expect(checked == BakeoffCLI.commands.count)
    }

    @Test func serveCheckRunsInProcess() throws {
        let dir = URL(fileURLWithPath: try CLI.temporaryFile("", name: "placeholder")).deletingLastPathComponent()
        let config = dir.appendingPathComponent("gateway.json").path
        try """
        {"store": {"path": "\(dir.path)/store.db"},
         "experiments": [{"name": "check-exp", "model": "check-bot", "split": 0.5, "variants": [
           {"name": "control", "upstream": {"base_url": "http://127.0.0.1:9001/v1", "model": "v1"}},
           {"name": "treatment", "upstream": {"base_url": "http://127.0.0.1:9002/v1", "model": "v2"}}]}]}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let r = try CLI.run(["serve", "--check", "--config", config, "--listen", "127.0.0.1:0", "--store", dir.path + "/other.db", "--grace", "5"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("check-bot") && r.stdout.hasSuffix("\(config): valid\n"))
        #expect(r.stdout.contains("other.db"))
        let bad = try CLI.run(["serve", "--check", "--config", config, "--listen", "nowhere"])
        #expect(bad.status == 2 && bad.stderr.hasPrefix("bakeoff: --listen must be HOST:PORT, got \"nowhere\"\n"))
    }
}
