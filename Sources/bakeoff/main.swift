#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif
import BakeoffCore

signal(SIGPIPE, SIG_IGN)

let argv = Array(CommandLine.arguments.dropFirst())
guard let command = argv.first else {
    print(usageText)
    exit(ExitCode.usage.rawValue)
}
var args = Arguments(command: command, Array(argv.dropFirst()))
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
        if let topic = argv.dropFirst().first, let text = helps[topic] { print(text) } else { print(usageText) }
        code = .ok
    case "--version", "version":
        print("bakeoff 0.1.0")
        code = .ok
    default:
        throw UsageError("unknown command \"\(command)\" (commands: analyze, plan, assign, simulate, serve, export, import, mock-upstream, load, traffic, calibrate, help)")
    }
    exit(code.rawValue)
} catch let error as UsageError {
    printError(error.message)
    if let help = helps[command] { printError("usage:\n" + help) }
    exit(ExitCode.usage.rawValue)
} catch {
    printError("\(error)")
    exit(ExitCode.failure.rawValue)
}
