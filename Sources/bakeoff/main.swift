#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif
import BakeoffCore
import Foundation
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools

signal(SIGPIPE, SIG_IGN)

let argv = Array(CommandLine.arguments.dropFirst())
guard let command = argv.first else {
    print(usageText)
    exit(ExitCode.usage.rawValue)
}
var args = Arguments(command: command, Array(argv.dropFirst()))
let commands = ["analyze", "plan", "assign", "simulate", "serve", "export", "import", "mock-upstream", "load", "traffic", "calibrate", "help"]
let helps = ["analyze": analyzeHelp, "plan": planHelp, "assign": assignHelp, "simulate": simulateHelp,
             "export": exportHelp, "import": importHelp, "serve": serveHelp,
             "mock-upstream": mockUpstreamHelp, "load": loadHelp, "traffic": trafficHelp,
             "calibrate": calibrateHelp]

do {
    let code: ExitCode
    switch command {
    case "analyze": code = try runAnalyze(&args)
    case "plan": code = try runPlan(&args)
    case "assign": code = try runAssign(&args)
    case "simulate": code = try runSimulate(&args)
    case "export": code = try runExport(&args)
    case "import": code = try runImport(&args)
    case "serve": code = try runServe(&args)
    case "mock-upstream": code = try runMockUpstream(&args)
    case "load": code = try runLoad(&args, raw: Array(argv.dropFirst()))
    case "traffic": code = try runTraffic(&args)
    case "calibrate": code = try runCalibrate(&args)
    case "help", "--help", "-h":
        if let topic = argv.dropFirst().first {
            guard let text = helps[topic] else {
                throw UsageError("no help on \"\(topic)\"\(closestName(topic, among: commands).map { "; did you mean \"\($0)\"?" } ?? "") (commands: \(commands.joined(separator: ", ")))")
            }
            print(text)
        } else {
            print(usageText)
        }
        code = .ok
    case "--version", "version":
        print("bakeoff 0.1.0")
        code = .ok
    default:
        throw UsageError("unknown command \"\(command)\"\(closestName(command, among: commands).map { "; did you mean \"\($0)\"?" } ?? "") (commands: \(commands.joined(separator: ", ")))")
    }
    exit(code.rawValue)
} catch let error as UsageError {
    // The mistake, a suggestion for a mistyped option, the usage line and where the rest is: the one useful
    // line must not scroll away under the whole help.
    var message = error.message
    if let help = helps[command] {
        if let range = message.range(of: "unknown option "), let option = message[range.upperBound...].split(separator: " ").first {
            let known = Set(help.split(whereSeparator: { " ,|[]()=\n".contains($0) }).filter { $0.hasPrefix("--") && $0.count > 2 }.map(String.init))
            if let guess = closestName(String(option), among: known.sorted()) { message += "; did you mean \(guess)?" }
        }
        printError(message)
        if let usage = help.split(separator: "\n").first(where: { $0.hasPrefix("USAGE:") || $0.hasPrefix("usage:") }) {
            printError(usage.trimmingCharacters(in: .whitespaces))
        }
        printError("see 'bakeoff \(command) --help'")
    } else {
        printError(message)
    }
    exit(ExitCode.usage.rawValue)
} catch {
    printError("\(error)")
    exit(ExitCode.failure.rawValue)
}
