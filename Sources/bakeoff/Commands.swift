#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif
import BakeoffCore
import BakeoffGateway
import BakeoffStatistics
import BakeoffStore
import Foundation

let usageText = """
bakeoff — A/B testing for fine-tuned LLMs

USAGE: bakeoff <command> [options]

COMMANDS:
  analyze    Analyse an experiment's event log: lift, CI, p-value, decision
  plan       Users needed per group for a metric and effect (sample size)
  assign     Deterministic assignment of user IDs (stdin) to variants
  simulate   Generate an event log with known truth (presets or a spec)
  calibrate  Simulate many experiments: false positives, power and coverage of each method
  serve      Run the A/B gateway: OpenAI-compatible, sticky per user, logs and takes feedback
  export     Write an event store's events as a JSON Lines log
  import     Load a JSON Lines event log into an event store
  mock-upstream  An OpenAI-compatible model server for tests, demos and benchmarks
  load       Send load to an OpenAI-compatible endpoint and report latency percentiles
  traffic    Simulated users chat with a gateway and leave feedback (live demo traffic)
  help       Show help for a command: bakeoff help analyze

Run 'bakeoff <command> --help' for a command's options.
"""

let analyzeHelp = """
USAGE: bakeoff analyze EVENTS.jsonl [options]
       bakeoff analyze --db PATH [options]
       bakeoff analyze --summary FILE [options]

Reads a JSON Lines event log (or - for stdin), or an event store, and prints the experiment report.

OPTIONS:
  --db PATH             Analyse the event store (the gateway's SQLite file) instead of a log
  --summary FILE        Analyse per-variant, per-metric sufficient statistics (CSV or JSON) aggregated in
                        your warehouse (README: "Sufficient statistics from your warehouse")
  --experiment NAME     Experiment to analyse (required when the log holds several)
  --config FILE         Experiment config: split, control, metrics, roles, alpha, power, MDE
  --alpha A             Significance level (default 0.05, or the config's)
  --power P             Planned power for the keep-running estimate (default 0.8)
  --split S             Planned treatment share, for the sample-ratio check
  --variants a=0.5,b=0.5  Planned split of several variants (instead of --split)
  --control NAME        Control variant (default "control", else the first planned arm)
  --primary METRIC      Primary metric (default task_completion)
  --mde D               Planned minimum detectable effect of the primary metric (absolute)
  --mde-relative R      ... or relative to the control mean
  --unit user|event     user (default): user-level test; event: the seed's naive test
  --method fixed|sequential  fixed (default): valid at one planned look; sequential: always-valid
                        confidence sequences, valid however often you look (the live report's default)
  --tuning N            N* of the sequential test: the total sample where it is tightest (default 5000)
  --correction holm|bh|none  Multiple-comparison correction of the secondary metrics across metrics and
                        arms, and of the primary across arms (default holm; guardrails are not corrected)
  --min-runtime DAYS    Shortest run before shipping, rounded up to full weeks (default 7; 0 = none)
  --max-runtime DAYS    Longest run: after it an undecided experiment stops as inconclusive
  --start TIME          Experiment start (RFC 3339); runtime counts from it (default: the first request)
  --runtime-days D      Days the experiment has run, for --summary input (it has no timestamps)
  --benchmark N         With --summary: also time N in-process runs (parse, statistics, output); median on stderr
  --covariates FILE     CUPED: each user's pre-experiment value of a metric, CSV user_id,metric,value[,units]
                        (without it, events before --start or the config's "start" are the pre-period)
  --format table|markdown|json|html   Output format (default table; html is a page with charts)
  --skip-invalid        Count and report malformed lines instead of stopping
  --partitions N        Read the log in N pieces through temporary files, so memory stays fixed
                        (default: in memory below 512 MB, then one piece per 128 MB; 1 = in memory)
"""

let planHelp = """
USAGE: bakeoff plan --baseline B --mde D [options]

Users needed per group (Student t-test power, noncentral t, solved exactly; equals statsmodels TTestIndPower).

OPTIONS:
  --baseline B          Control's current value: a rate in (0,1), or a mean with --std
  --mde D               Smallest difference to detect (absolute; see --mde-relative)
  --mde-relative        Read --mde as a fraction of the baseline
  --std S               Standard deviation of a mean metric (effect size = mde/std)
  --alpha A             Significance level (default 0.05)
  --power P             Power (default 0.8)
  --split S             Treatment's share of traffic (default 0.5; the seed's case study ran 0.2)
  --one-sided           One-sided test
  --daily-users N       Users per day, to print the days needed
  --format table|json   Output format (default table)
"""

let assignHelp = """
USAGE: bakeoff assign --experiment NAME (--split S | --variants a=0.5,b=0.3,c=0.2) < ids.txt

Reads user IDs, one per line, from stdin and writes each one's variant, one per line, in order.
Same result as the seed's ABRouter: md5("{experiment}:{user_id}") as an integer, % 10000 / 10000,
treatment when below the split. With --variants, consecutive ranges in the order given.
"""

let simulateHelp = """
USAGE: bakeoff simulate (--preset seed-case-study|aa | --spec FILE) [options]

Writes a simulated event log (JSON Lines) with known truth.

OPTIONS:
  --preset NAME         seed-case-study (80/20, 14 days, the seed's rates) or aa (no difference)
  --spec FILE           A JSON spec (see README); a "preset" key inside starts from a preset
  --users N             Number of users
  --days N              Duration in days
  --seed N              Random seed (default 1)
  --experiment NAME     Experiment name
  --output FILE         Write to FILE instead of stdout
"""

enum ExitCode: Int32 {
    case ok = 0
    case failure = 1
    case usage = 2
}

func runAnalyze(_ args: inout Arguments) throws -> ExitCode {
    if args.wantsHelp { print(analyzeHelp); return .ok }
    let configPath = try args.option("--config")
    var config = ExperimentConfig()
    if let configPath { config = try ExperimentConfig.load(path: configPath) }
    var plan = config.plan
    let experiment = try args.option("--experiment") ?? config.experiment
    if let a = try args.double("--alpha") {
        guard a > 0 && a < 1 else { throw UsageError("--alpha must be between 0 and 1, got \(a)") }
        plan.alpha = a
    }
    if let p = try args.double("--power") {
        guard p > 0 && p < 1 else { throw UsageError("--power must be between 0 and 1, got \(p)") }
        plan.power = p
    }
    if let allocation = try allocationOption(&args) { plan.allocation = allocation }
    if let c = try args.option("--control") { plan.control = c }
    if let primary = try args.option("--primary") {
        if let m = config.metrics.first(where: { $0.name == primary }), m.goal == .none {
            throw UsageError("--primary: \"\(primary)\" has no goal direction (up or down); set one in the config's \"metrics\"")
        }
        guard config.metrics.contains(where: { $0.name == primary && $0.kind != .quantile }) else {
            throw UsageError("--primary: \"\(primary)\" is not a metric (metrics: \(config.metrics.filter { $0.kind != .quantile }.map(\.name).joined(separator: ", ")))")
        }
        plan.primaryMetric = primary
    }
    if let mde = try args.double("--mde") { plan.minimumDetectableEffect = mde; plan.minimumDetectableEffectIsRelative = false }
    if let mde = try args.double("--mde-relative") { plan.minimumDetectableEffect = mde; plan.minimumDetectableEffectIsRelative = true }
    if let unit = try args.choice("--unit", AnalysisUnit.self) { plan.unit = unit }
    if let method = try args.choice("--method", TestMethod.self) { plan.method = method }
    if let tuning = try args.double("--tuning", in: 1...1e12, rule: "between 1 and 1e12") { plan.sequentialTuning = tuning }
    if let name = try args.option("--correction") {
        guard let correction = Correction(configName: name) else { throw UsageError("--correction must be holm, bh or none, got \"\(name)\"") }
        plan.correction = correction
    }
    if let days = try args.double("--min-runtime", in: 0...3650, rule: "days from 0 to 3650") { plan.minimumRuntimeDays = days }
    if let days = try args.double("--max-runtime", in: 1e-9...3650, rule: "days from 0 to 3650") { plan.maximumRuntimeDays = days }
    if let text = try args.option("--start") {
        guard let start = parseTime(text) else {
            throw UsageError("--start: \"\(text)\" is not an RFC 3339 time such as 2026-11-01T00:00:00Z")
        }
        plan.start = start
    }
    if let days = try args.double("--runtime-days", in: 0...3650, rule: "days from 0 to 3650") { plan.runtimeDays = days }
    let format = try args.choice("--format", ReportFormat.self) ?? .table
    var options = EventLog.Options()
    options.experiment = experiment
    options.metrics = config.metrics
    options.skipInvalid = args.flag("--skip-invalid")
    options.experimentStart = plan.start
    let covariatesFlag = try args.option("--covariates")
    if let effective = plan.maximumRuntimeDays, effective < plan.effectiveMinimumRuntimeDays {
        throw UsageError("the maximum runtime (\(formatDaysPlain(effective)) days) is shorter than the minimum runtime (\(formatDaysPlain(plan.effectiveMinimumRuntimeDays)) days\(plan.fullWeeks ? ", rounded up to full weeks" : ""))")
    }
    if let pieces = try args.int("--partitions") {
        guard pieces >= 1 && pieces <= 4096 else { throw UsageError("--partitions must be between 1 and 4096, got \(pieces)") }
        options.partitions = pieces
    }
    let db = try args.option("--db")
    let summary = try args.option("--summary")
    let benchmarkRuns = try args.int("--benchmark", in: 1...100_000, rule: "a number of runs")
    if benchmarkRuns != nil && summary == nil { throw UsageError("--benchmark times --summary input only") }
    let paths = try args.positionals()
    if let summary {
        guard db == nil && paths.isEmpty else { throw UsageError("give one input: --summary, --db or an event log") }
        guard options.partitions == nil else { throw UsageError("--partitions applies to event logs, not to --summary") }
        guard covariatesFlag == nil else { throw UsageError("--covariates applies to events; a summary carries CUPED as its pre_* columns") }
        guard plan.start == nil || plan.runtimeDays != nil else {
            throw UsageError("a start (--start or the config's \"start\") needs timestamps, and a summary has none: give --runtime-days")
        }
        guard plan.unit == .user else { throw UsageError("--unit event needs the events; a summary holds per-user sums only") }
        let metrics = config.metrics, variants = plan.allocation?.names
        let data = try SummaryInput.read(path: summary, metrics: metrics, experiment: experiment, variants: variants)
        let report = try Analysis.run(data, plan: plan)
        if let runs = benchmarkRuns {
            try benchmarkSummary(summary, runs: runs, metrics: metrics, experiment: experiment, variants: variants, plan: plan, format: format)
        }
        printReport(report, format)
        return .ok
    }
    if let path = covariatesFlag ?? config.covariatesPath {
        options.covariates = try CovariateTable.load(path: path, metrics: config.metrics)
    }
    if db != nil {
        guard paths.isEmpty else { throw UsageError("give either --db or an event log, not both") }
        guard options.partitions == nil else { throw UsageError("--partitions applies to event logs, not to --db") }
    } else if paths.count != 1 {
        throw UsageError(paths.isEmpty ? "give the event log to analyse: bakeoff analyze EVENTS.jsonl (or --db PATH)" : "analyze takes one event log, got \(paths.count)")
    }
    let bar = ProgressBar(label: "reading \(db ?? paths[0])")
    options.progress = { bar.update(done: $0, total: $1) }
    let data: ExperimentData
    do {
        data = try db.map { try StoreAnalysis.aggregate(path: $0, options: options) } ?? EventLog.aggregate(path: paths[0], options: options)
        bar.finish()
    } catch {
        bar.finish()
        throw error
    }
    var report = try Analysis.run(data, plan: plan)
    if let db {
        report.planChanges = try StoreAnalysis.planChangesAfterStart(path: db, experiment: data.experiment, data: data, plan: plan)
    }
    printReport(report, format)
    return .ok
}

func printReport(_ report: Report, _ format: ReportFormat) {
    let out = OutputBuffer()
    out.write(report.render(format))
    out.flush()
}

/// `--benchmark N` for `make bench`: the summary's bytes parsed, analysed and rendered N times in process;
/// the median and minimum go to stderr.
func benchmarkSummary(_ path: String, runs: Int, metrics: [Metric], experiment: String?, variants: [String]?,
                      plan: AnalysisPlan, format: ReportFormat) throws {
    let bytes = Array(FileManager.default.contents(atPath: path) ?? Data())
    var times: [UInt64] = []
    for _ in 0..<runs {
        let start = DispatchTime.now().uptimeNanoseconds
        let data = try SummaryInput.parse(bytes, source: path, metrics: metrics, experiment: experiment, variants: variants)
        let text = try Analysis.run(data, plan: plan).render(format)
        precondition(!text.isEmpty)
        times.append(DispatchTime.now().uptimeNanoseconds - start)
    }
    times.sort()
    printError("benchmark: parse + statistics + \(format.rawValue) of \(path): median \(fixedString(Double(times[times.count / 2]) / 1e6, 3)) ms over \(runs) runs (min \(fixedString(Double(times[0]) / 1e6, 3)) ms)")
}

func allocationOption(_ args: inout Arguments) throws -> Allocation? {
    let split = try args.double("--split")
    let variants = try args.option("--variants")
    if split != nil && variants != nil { throw UsageError("give either --split or --variants, not both") }
    do {
        if let split { return try Allocation(split: split) }
        if let variants { return try Allocation(parsing: variants) }
    } catch {
        throw UsageError(split != nil ? "--split: \(error)" : "\(error)")
    }
    return nil
}

func runPlan(_ args: inout Arguments) throws -> ExitCode {
    if args.wantsHelp { print(planHelp); return .ok }
    guard let baseline = try args.double("--baseline") else { throw UsageError("--baseline is required (the control's current rate, e.g. 0.75)") }
    guard let mde = try args.double("--mde") else { throw UsageError("--mde is required (the smallest difference to detect, e.g. 0.05)") }
    var q = SampleSizeQuestion(baseline: baseline, minimumDetectableEffect: mde)
    q.relative = args.flag("--mde-relative")
    q.standardDeviation = try args.double("--std")
    if let a = try args.double("--alpha") { q.alpha = a }
    if let p = try args.double("--power") { q.power = p }
    if let s = try args.double("--split") { q.treatmentShare = s }
    q.oneSided = args.flag("--one-sided")
    q.dailyUsers = try args.double("--daily-users")
    let format = try args.choice("--format", PlanFormat.self) ?? .table
    try args.finish()
    let result: SampleSize
    do { result = try SampleSize.solve(q) } catch { throw UsageError(error.message) }
    switch format {
    case .json:
        var w = JSONWriter()
        w.object { w in
            w.value("control_n", result.controlN)
            w.value("treatment_n", result.treatmentN)
            w.value("total_n", result.totalN)
            w.value("effect_size", result.effectSize)
            w.value("exact_control_n", result.exactControlN)
            w.value("absolute_effect", result.absoluteEffect)
            w.value("alpha", q.alpha)
            w.value("power", q.power)
            w.value("treatment_share", q.treatmentShare)
            w.value("alternative", q.oneSided ? "larger" : "two-sided")
            if let days = result.days { w.value("days", days) }
        }
        print(w.text)
    case .table:
        let kind = q.standardDeviation == nil ? "rate" : "mean"
        print("Sample size for a \(kind) of \(q.baseline), detecting a difference of \(result.absoluteEffect) (effect size d = \(fixedString(result.effectSize, 4)))")
        print("alpha \(q.alpha) \(q.oneSided ? "one-sided" : "two-sided"), power \(q.power), treatment share \(q.treatmentShare)")
        print("")
        var rows = [("control", result.controlN), ("treatment", result.treatmentN), ("total", result.totalN)]
        if q.treatmentShare == 0.5 { rows = [("per group", result.controlN), ("total", result.totalN)] }
        for (label, n) in rows { print(label.padding(toLength: 12, withPad: " ", startingAt: 0) + String(n).leftPadded(10) + " users") }
        if let days = result.days { print("days".padding(toLength: 12, withPad: " ", startingAt: 0) + String(days).leftPadded(10) + " at \(q.dailyUsers!) users per day") }
    }
    return .ok
}

enum PlanFormat: String, CaseIterable { case table, json }

/// 14 or 10.5: days without trailing zeros.
func formatDaysPlain(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(d) }

func fixedString(_ x: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", x) }

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

func runAssign(_ args: inout Arguments) throws -> ExitCode {
    if args.wantsHelp { print(assignHelp); return .ok }
    guard let experiment = try args.option("--experiment") else { throw UsageError("--experiment is required") }
    guard let allocation = try allocationOption(&args) else { throw UsageError("give --split S or --variants a=0.5,b=0.5") }
    try args.finish()
    let assigner = Assigner(experiment: experiment, allocation: allocation)
    var reader = try LineReader(path: "-")
    // Output goes through one raw buffer; each arm's "name\n" is copied from a table. No arrays or
    // captured-and-boxed state on the per-ID path.
    let capacity = 1 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity + 4096, alignment: 16)
    defer { buffer.deallocate() }
    var lines: [[UInt8]] = allocation.names.map { Array(($0 + "\n").utf8) }
    let longest = lines.map(\.count).max() ?? 1
    guard longest < 4096 else { throw UsageError("variant names must be shorter than 4 KB") }
    let table = UnsafeMutableRawPointer.allocate(byteCount: lines.count * 4096, alignment: 16)
    defer { table.deallocate() }
    var lengths: [Int] = []
    for (i, line) in lines.enumerated() {
        line.withUnsafeBytes { (table + i * 4096).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        lengths.append(line.count)
    }
    lines = []
    var used = 0
    var batch = Assigner.Batch(assigner)
    do {
        try lengths.withUnsafeBufferPointer { lengths throws(ReadError<Never>) in
            try reader.forEachLine { (line, _) throws(Never) in
                batch.add(utf8: line) { (_, _, arm) throws(Never) in
                    (buffer + used).copyMemory(from: table + arm * 4096, byteCount: lengths[arm])
                    used += lengths[arm]
                }
                if used >= capacity {
                    writeAll(buffer, used)
                    used = 0
                }
            }
            batch.flush { (_, _, arm) throws(Never) in
                (buffer + used).copyMemory(from: table + arm * 4096, byteCount: lengths[arm])
                used += lengths[arm]
            }
        }
    } catch {
        if case .file(let e) = error { throw e }
    }
    writeAll(buffer, used)
    return .ok
}

func runSimulate(_ args: inout Arguments) throws -> ExitCode {
    if args.wantsHelp { print(simulateHelp); return .ok }
    let preset = try args.option("--preset")
    let specPath = try args.option("--spec")
    var spec: SimulationSpec
    switch (preset, specPath) {
    case (let p?, nil): spec = try SimulationSpec.preset(p)
    case (nil, let path?):
        guard let data = FileManager.default.contents(atPath: path) else { throw FileError(path: path, message: "cannot be read") }
        spec = try SimulationSpec.parse(data, source: path)
    case (nil, nil): throw UsageError("give --preset seed-case-study|aa or --spec FILE")
    default: throw UsageError("give either --preset or --spec, not both")
    }
    if let users = try args.int("--users") {
        guard users > 0 else { throw UsageError("--users must be positive") }
        spec.users = users
    }
    if let days = try args.int("--days") {
        guard days > 0 else { throw UsageError("--days must be positive") }
        spec.days = days
    }
    if let seed = try args.int("--seed") { spec.seed = UInt64(bitPattern: Int64(seed)) }
    if let e = try args.option("--experiment") { spec.experiment = e }
    let output = try args.option("--output")
    try args.finish()
    var fd: Int32 = 1
    if let output {
        fd = open(output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { throw FileError(path: output, message: String(cString: strerror(errno))) }
    }
    let out = OutputBuffer(fd: fd)
    let bar = ProgressBar(label: "simulating", unit: "k events", scale: 1000)
    var count: Int64 = 0
    let expected = Int64(Double(spec.users) * spec.conversationsPerUser * 5)
    Simulator.run(spec) { e in
        out.writeLine(e.jsonLine())
        count += 1
        if count & 0xFFFF == 0 { bar.update(done: count, total: max(expected, count)) }
    }
    out.flush()
    bar.finish()
    if fd != 1 { close(fd) }
    return .ok
}

/// Writes all bytes to standard output; a closed pipe ends the program quietly.
func writeAll(_ bytes: UnsafeRawPointer, _ count: Int) {
    var offset = 0
    while offset < count {
        let n = write(1, bytes + offset, count - offset)
        if n < 0 {
            if errno == EINTR { continue }
            exit(errno == EPIPE ? 0 : 1)
        }
        offset += n
    }
}
