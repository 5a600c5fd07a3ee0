import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools
import BakeoffStatistics
import Foundation
import Synchronization

let calibrateSpec = CommandSpec(
    "calibrate",
    summary: "Each method's false positives, power and coverage, simulated",
    usage: ["[options]"],
    about: "Runs many simulated experiments and prints, per method: the false-positive rate on A/A experiments, the power at a known effect and the coverage of 95% intervals, each with its Monte-Carlo interval and PASS/FAIL against its target (FPR 0.04-0.06 at alpha 0.05; sequential FPR at most 0.05 under daily peeking while naive daily peeking exceeds 0.15; coverage 0.93-0.97; group-sequential FPR 0.04-0.05 under daily, weekday-only and twice-daily looks, coverage of its repeated intervals at least 0.95 and power at least 0.9 of the fixed-horizon test's, within three Monte-Carlo standard errors). Exit status 1 when a target is missed.",
    options: [
        .single("--simulations", "N", "Simulations per row, each one A/A experiment and one with the effect", default: "4000"),
        .single("--days", "D", "Days per experiment; peeking and sequential look at the end of each, and group-sequential plans its last look there", default: "14"),
        .single("--users-per-day", "U", "New users per day over both arms, assigned 50/50", default: "400"),
        .single("--effect", "E", "Known relative effect on every metric for power and coverage", default: "0.04"),
        .single("--tuning", "N", "The sequential test's tuning parameter N*", default: "5000"),
        .single("--alpha", "A", "Significance level; the targets scale with it", default: "0.05"),
        .single("--methods", "LIST", "Comma-separated: \(CalibrationMethod.allCases.map(\.rawValue).joined(separator: ", "))", default: "all"),
        .seed("Seed; the same seed gives the same numbers"),
        .single("--threads", "N", "Threads to simulate on; the results do not depend on it", default: "the cores"),
        .choice("--format", CalibrationFormat.self, "Output format", default: "table"),
    ]
)

@Sendable func runCalibrate(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    var settings = CalibrationSettings()
    if let v = try args.int("--simulations", in: 1...10_000_000, rule: "between 1 and 10000000") { settings.simulations = v }
    if let v = try args.int("--days", in: 1...365, rule: "between 1 and 365") { settings.days = v }
    if let v = try args.int("--users-per-day", in: 4...1_000_000, rule: "between 4 and 1000000") { settings.usersPerDay = v }
    if let v = try args.double("--effect", in: -0.99...10, rule: "a relative change between -0.99 and 10") { settings.effect = v }
    if let v = try args.double("--tuning", in: 1...1e12, rule: "between 1 and 1e12") { settings.tuningParameter = v }
    if let v = try args.double("--alpha", in: 1e-6...0.49, rule: "between 0.000001 and 0.49") { settings.alpha = v }
    if let list = args.string("--methods") {
        var methods = Set<CalibrationMethod>()
        for name in list.split(separator: ",", omittingEmptySubsequences: true).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let method = CalibrationMethod(rawValue: name) else {
                throw UsageError("--methods: unknown method \"\(name)\" (methods: \(CalibrationMethod.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            methods.insert(method)
        }
        settings.methods = methods
    }
    if let seed = args.seed("--seed") { settings.seed = seed }
    let threads = try args.int("--threads", in: 1...256, rule: "between 1 and 256") ?? ProcessInfo.processInfo.activeProcessorCount
    let format = args.choice("--format", CalibrationFormat.self) ?? .table
    do { try settings.validate() } catch { throw UsageError(error.description) }

    let bar = Mutex(ProgressBar(label: "simulating", unit: "simulations", scale: 1, console: console))
    let total = Int64(settings.simulations)
    let start = ProgressBar.now()
    let result = try Calibration.run(settings, threads: threads) { done in
        bar.withLock { $0.update(done: Int64(done), total: total) }
    }
    bar.withLock { $0.finish() }
    let seconds = ProgressBar.now() - start
    try console.output.write(result.render(format))
    console.printError("calibrate: \(settings.simulations) simulations in \(fixedString(seconds, 1)) s on \(threads) thread\(threads == 1 ? "" : "s")")
    return result.passed ? .ok : .failure
}
