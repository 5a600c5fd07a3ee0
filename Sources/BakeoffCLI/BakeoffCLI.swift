import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools

/// A command: its declaration and what it does with the parsed arguments.
package struct Command: Sendable {
    package var spec: CommandSpec
    package var run: @Sendable (ParsedArguments, Console) throws -> ExitCode
}

/// The `bakeoff` command-line tool, runnable in process: arguments in, text on the console, exit status out.
public enum BakeoffCLI {
    public static let version = BakeoffVersion.current

    /// Every command, in the order `bakeoff --help` lists them.
    package static let commands: [Command] = [
        Command(spec: analyzeSpec, run: runAnalyze),
        Command(spec: planSpec, run: runPlan),
        Command(spec: assignSpec, run: runAssign),
        Command(spec: simulateSpec, run: runSimulate),
        Command(spec: calibrateSpec, run: runCalibrate),
        Command(spec: evalSpec, run: runEval),
        Command(spec: evalExportLabelsSpec, run: runEvalExportLabels),
        Command(spec: evalImportLabelsSpec, run: runEvalImportLabels),
        Command(spec: serveSpec, run: runServe),
        Command(spec: dashboardSpec, run: runDashboard),
        Command(spec: exportSpec, run: runExport),
        Command(spec: importSpec, run: runImport),
        Command(spec: sampleSpec, run: runSample),
        Command(spec: mockUpstreamSpec, run: runMockUpstream),
        Command(spec: mockDatasetSpec, run: runMockDataset),
        Command(spec: loadSpec, run: runLoad),
        Command(spec: storeBenchSpec, run: runStoreBench),
        Command(spec: trafficSpec, run: runTraffic),
    ]

    /// The tool's own options, before any command.
    package static let options: [Option] = [
        .flag("--help", short: "h", "Show this help, or a command's: bakeoff help analyze"),
        .flag("--version", short: "V", "Print the version"),
    ]

    /// The names `bakeoff` takes as a command (suggested for a typo).
    static var commandNames: [String] { commands.map(\.spec.name) + ["help"] }

    package static func command(named name: String) -> Command? {
        commands.first { $0.spec.name == name }
    }

    /// The general help (`bakeoff --help`). Commands of two words ("eval export-labels", which `main` looks up
    /// before the one-word command of their first word) are in a table of their own before the options, so
    /// their long names do not narrow the others' summaries.
    package static var help: String {
        let (single, double) = (commands.filter { !$0.spec.name.contains(" ") }, commands.filter { $0.spec.name.contains(" ") })
        let general = Help.general(commands: single.map(\.spec), options: options)
        guard !double.isEmpty else { return general }
        let more = ["", "MORE COMMANDS:"] + Help.columns(double.map { ($0.spec.name, $0.spec.summary) })
        return general.replacingOccurrences(of: "\n\nOPTIONS:", with: "\n" + more.joined(separator: "\n") + "\n\nOPTIONS:")
    }

    /// Runs `bakeoff ARGUMENTS` (without the program's name) and returns its exit status: 0 done, 1 failed,
    /// 2 a usage mistake (reported with the usage line). Never exits; `serve` and `mock-upstream` run until the
    /// process gets SIGTERM or SIGINT.
    public static func main(arguments: some Sequence<String>, console: Console = .standard) -> Int32 {
        let arguments = Array(arguments)
        guard let name = arguments.first else {
            try? console.print(help)
            return ExitCode.usage.rawValue
        }
        var rest = Array(arguments.dropFirst())
        // A two-word command ("eval export-labels") before the one-word one.
        var command = Self.command(named: name)
        var twoWords = false
        if let word = rest.first, let subcommand = Self.command(named: name + " " + word) {
            command = subcommand
            rest.removeFirst()
            twoWords = true
        }
        do {
            let code: ExitCode
            if let command {
                if !twoWords, let word = rest.first, !word.hasPrefix("-"), command.spec.arguments.isEmpty,
                   let guess = closestName(name + " " + word, among: commandNames.filter { $0.hasPrefix(name + " ") }) {
                    throw UsageError("unknown command \"\(name) \(word)\"; did you mean \"\(guess)\"?")
                }
                if ParsedArguments.wantsHelp(rest) {
                    try console.print(Help.text(for: command.spec))
                    return ExitCode.ok.rawValue
                }
                code = try command.run(ParsedArguments(rest, spec: command.spec), console)
            } else {
                code = try runTopLevel(name, rest, console)
            }
            return code.rawValue
        } catch let error as UsageError {
            // The mistake, the usage line and where the rest is: the one useful line must not scroll away under
            // the whole help.
            console.printError(error.message)
            if let command {
                console.printError(Help.usageLines(command.spec)[0])
                console.printError("see 'bakeoff \(command.spec.name) --help'")
            }
            return ExitCode.usage.rawValue
        } catch let error as OutputError {
            if case .closed = error { return ExitCode.ok.rawValue }
            console.printError(error.description)
            return ExitCode.failure.rawValue
        } catch {
            console.printError("\(error)" + (remedyHint(error).map { " (\($0))" } ?? ""))
            return ExitCode.failure.rawValue
        }
    }

    /// How to carry out, on the command line, what a library error says the user can do.
    static func remedyHint(_ error: any Error) -> String? {
        guard let remedy = (error as? any RemedyCarrying)?.remedy else { return nil }
        switch remedy {
        case .chooseExperiment: return "--experiment NAME"
        case .nameControl: return "--control NAME"
        case .readInOnePiece: return "--partitions 1"
        case .pointAtTheGatewayStore: return "point --db at the gateway's store, or load a log with bakeoff import"
        case .planAHorizon: return "--planned-users N or --max-runtime DAYS; in a config, planned_users or max_runtime_days"
        case .correctPlanInput(let input):
            switch input {
            case .alpha: return "--alpha"
            case .power: return "--power"
            case .treatmentShare: return "--split"
            case .standardDeviation: return "--std"
            case .baseline: return "--baseline; for a mean metric also --std"
            case .minimumDetectableEffect: return "--mde or --mde-relative"
            case .dailyUsers: return "--daily-users"
            case .looks: return "--looks"
            }
        }
    }

    /// `help`, `--help`, `--version` and unknown commands.
    static func runTopLevel(_ name: String, _ rest: [String], _ console: Console) throws -> ExitCode {
        switch name {
        case "help", "--help", "-h":
            guard var topic = rest.first, !["help", "--help", "-h"].contains(topic) else {
                try console.print(help)
                return .ok
            }
            if rest.count > 1, commandNames.contains(where: { $0.hasPrefix(topic + " ") }) {
                topic += " " + rest[1]  // a two-word command
            }
            guard let command = command(named: topic) else {
                throw UsageError("no help on \"\(topic)\"\(suggestion(topic)) (commands: \(commandNames.joined(separator: ", ")))")
            }
            try console.print(Help.text(for: command.spec))
            return .ok
        case "--version", "-V", "version":
            try console.print("bakeoff \(version)")
            return .ok
        default:
            throw UsageError("unknown \(name.hasPrefix("-") ? "option" : "command") \"\(name)\"\(suggestion(name)) (commands: \(commandNames.joined(separator: ", ")))")
        }
    }

    static func suggestion(_ name: String) -> String {
        if name.hasPrefix("-") {
            return closestName(name, among: options.map(\.name)).map { "; did you mean \($0)?" } ?? ""
        }
        return closestName(name, among: commandNames).map { "; did you mean \"\($0)\"?" } ?? ""
    }
}
