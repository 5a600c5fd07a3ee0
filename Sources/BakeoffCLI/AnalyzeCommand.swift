#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif
import BakeoffCore
import BakeoffGateway
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools
import BakeoffStatistics
import BakeoffStore
import BakeoffTracking
import Dispatch
import Foundation

let analyzeSpec = CommandSpec(
    "analyze",
    summary: "Analyse an experiment's event log: lift, CI, p-value, decision",
    usage: ["EVENTS.jsonl [options]", "--db PATH [options]", "--summary FILE [options]"],
    about: "Reads a JSON Lines event log (or - for stdin), or an event store, and prints the experiment report.",
    arguments: [Argument("EVENTS.jsonl", "The event log; - reads standard input")],
    options: [
        .single("--db", "PATH", "Analyse the event store (the gateway's SQLite file, or a postgresql:// URL) instead of a log"),
        .single("--summary", "FILE", "Analyse per-variant, per-metric sufficient statistics (CSV or JSON) aggregated in your warehouse (README: \"Sufficient statistics from your warehouse\")"),
        .single("--experiment", "NAME", "Experiment to analyse (required when the log holds several)"),
        .single("--config", "FILE", "Experiment config: split, control, metrics, roles, alpha, power, MDE"),
        .single("--alpha", "A", "Significance level", default: "0.05, or the config's"),
        .single("--power", "P", "Planned power for the keep-running estimate", default: "0.8"),
        .single("--split", "S", "Planned treatment share, for the sample-ratio check"),
        .single("--variants", "a=0.5,b=0.5", "Planned split of several variants (instead of --split)"),
        .single("--control", "NAME", "Control variant", default: "\"control\", else the first planned arm"),
        .single("--primary", "METRIC", "Primary metric", default: "task_completion"),
        .single("--mde", "D", "Planned minimum detectable effect of the primary metric (absolute)"),
        .single("--mde-relative", "R", "... or relative to the control mean"),
        .choice("--unit", AnalysisUnit.self, "user: user-level test; event: the article's naive test (comparison only)", default: "user"),
        .choice("--method", TestMethod.self, "fixed: valid at one planned look; sequential: always-valid confidence sequences, valid however often you look; group-sequential: alpha-spending boundaries at each look up to a horizon (--planned-users or --max-runtime), nearly a fixed test's power; auto (the live report's default): group-sequential when there is a horizon, else sequential", default: "fixed"),
        .single("--planned-users", "N", "Group-sequential horizon: the users over all arms the experiment plans to reach", default: "the config's, else --max-runtime as the horizon"),
        .choice("--spending", ["obrien-fleming", "pocock", "power:RHO"], accepts: { AlphaSpending(name: $0) != nil },
                "Group-sequential alpha spending: O'Brien-Fleming-type (spends little early), Pocock-type (evenly), or the power family alpha*t^RHO (spotify-confidence's)", default: "obrien-fleming"),
        .flag("--futility", "Group-sequential: a non-binding futility boundary on the primary metric, for the planned power at --mde (beta spending)"),
        .choice("--looks", ["daily", "weekdays", "recorded"], "Group-sequential: when the results are looked at (the boundary depends on the looks before); recorded: the reads of the live report and dashboard a gateway's store (--db) kept", default: "daily"),
        .single("--tuning", "N", "N* of the sequential test: the total sample where it is tightest", default: "5000"),
        .choice("--correction", ["holm", "bh", "none"], accepts: { Correction(configName: $0) != nil },
                "Multiple-comparison correction of the secondary metrics across metrics and arms, and of the primary across arms; guardrails are not corrected", default: "holm"),
        .single("--min-runtime", "DAYS", "Shortest run before shipping, rounded up to full weeks; 0 = none", default: "7"),
        .single("--max-runtime", "DAYS", "Longest run: after it an undecided experiment stops as inconclusive"),
        .single("--start", "TIME", "Experiment start (RFC 3339); runtime counts from it", default: "the first request"),
        .single("--until", "TIME", "Only events before TIME (RFC 3339): the analysis as it stood then", default: "every event"),
        .flag("--timeseries", "The report at the end of every day, as JSON (bakeoff.timeseries/1): each point equals --until at its cut"),
        .single("--runtime-days", "D", "Days the experiment has run, for --summary input (it has no timestamps)"),
        .single("--covariates", "FILE", "CUPED: each user's pre-experiment value of a metric, CSV user_id,metric,value[,units] (without it, events before --start or the config's \"start\" are the pre-period)"),
        .choice("--format", ReportFormat.self, "Output format; html is a page with charts", default: "table"),
        .flag("--skip-invalid", "Count and report malformed lines instead of stopping"),
        .flag("--read-events", "With a postgresql:// store: read its events out and analyse them here, instead of computing the sums inside the database (faster on a small database server near you; README: \"Analysis inside PostgreSQL\")"),
        .single("--partitions", "N", "Read the log in N pieces through temporary files, so memory stays fixed; 1 = in memory", default: "in memory below 512 MB, then one piece per 128 MB"),
        // `make bench`: with --summary, also time N in-process runs (parse, statistics, output); median on stderr.
        .single("--benchmark", "N", "Time N in-process runs of --summary input", hidden: true),
    ] + mlflowOptions
)

@Sendable func runAnalyze(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    let configPath = args.string("--config")
    var config = ExperimentConfig()
    if let configPath { config = try ExperimentConfig.load(path: configPath) }
    var plan = config.plan
    let experiment = args.string("--experiment") ?? config.experiment
    if let a = try args.double("--alpha") {
        guard a > 0 && a < 1 else { throw UsageError("--alpha must be between 0 and 1, got \(a)") }
        plan.alpha = a
    }
    if let p = try args.double("--power") {
        guard p > 0 && p < 1 else { throw UsageError("--power must be between 0 and 1, got \(p)") }
        plan.power = p
    }
    if let allocation = try allocationOption(args) { plan.allocation = allocation }
    if let c = args.string("--control") { plan.control = c }
    if let primary = args.string("--primary") {
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
    if let unit = args.choice("--unit", AnalysisUnit.self) { plan.unit = unit }
    if let method = args.choice("--method", TestMethod.self) { plan.method = method }
    if let tuning = try args.double("--tuning", in: 1...1e12, rule: "between 1 and 1e12") { plan.sequentialTuning = tuning }
    if let users = try args.double("--planned-users", in: 2...1e12, rule: "users from 2 to 1e12") { plan.groupSequential.plannedUsers = users }
    if let spending = args.string("--spending").flatMap(AlphaSpending.init(name:)) { plan.groupSequential.spending = spending }
    if args.flag("--futility") { plan.groupSequential.futility = true }
    if let looks = args.string("--looks") { plan.groupSequential.looks = looks == "weekdays" ? .weekdays : looks == "recorded" ? .recorded : .daily }
    if let correction = args.string("--correction").flatMap(Correction.init(configName:)) { plan.correction = correction }
    if let days = try args.double("--min-runtime", in: 0...3650, rule: "days from 0 to 3650") { plan.minimumRuntimeDays = days }
    if let days = try args.double("--max-runtime", in: 1e-9...3650, rule: "days from 0 to 3650") { plan.maximumRuntimeDays = days }
    if let text = args.string("--start") {
        guard let start = parseTime(text) else {
            throw UsageError("--start: \"\(text)\" is not an RFC 3339 time such as 2026-11-01T00:00:00Z")
        }
        plan.start = start
    }
    if let days = try args.double("--runtime-days", in: 0...3650, rule: "days from 0 to 3650") { plan.runtimeDays = days }
    var until: Int64?
    if let text = args.string("--until") {
        guard let time = parseTime(text) else {
            throw UsageError("--until: \"\(text)\" is not an RFC 3339 time such as 2026-11-08T00:00:00Z")
        }
        if let start = plan.start, time <= start { throw UsageError("--until must be after the start (--start or the config's \"start\")") }
        until = time
    }
    let format = args.choice("--format", ReportFormat.self) ?? .table
    let mlflow = try MLflowTarget(uri: args.string("--mlflow"), experiment: args.string("--mlflow-experiment"))
    if mlflow != nil && (args.flag("--timeseries") || args.string("--benchmark") != nil) {
        throw UsageError("--mlflow records one report; leave out \(args.flag("--timeseries") ? "--timeseries" : "--benchmark")")
    }
    var options = EventLog.Options()
    options.experiment = experiment
    options.metrics = config.metrics
    options.skipInvalid = args.flag("--skip-invalid")
    options.experimentStart = plan.start
    options.until = until
    let covariatesFlag = args.string("--covariates")
    if let effective = plan.maximumRuntimeDays, effective < plan.effectiveMinimumRuntimeDays {
        throw UsageError("the maximum runtime (\(formatDaysPlain(effective)) days) is shorter than the minimum runtime (\(formatDaysPlain(plan.effectiveMinimumRuntimeDays)) days\(plan.fullWeeks ? ", rounded up to full weeks" : ""))")
    }
    if let pieces = try args.int("--partitions") {
        guard pieces >= 1 && pieces <= 4096 else { throw UsageError("--partitions must be between 1 and 4096, got \(pieces)") }
        options.partitions = pieces
    }
    let db = args.string("--db")
    let summary = args.string("--summary")
    let benchmarkRuns = try args.int("--benchmark", in: 1...100_000, rule: "a number of runs")
    if benchmarkRuns != nil && summary == nil { throw UsageError("--benchmark times --summary input only") }
    let paths = args.positionals
    if let summary {
        guard db == nil && paths.isEmpty else { throw UsageError("give one input: --summary, --db or an event log") }
        guard options.partitions == nil else { throw UsageError("--partitions applies to event logs, not to --summary") }
        guard covariatesFlag == nil else { throw UsageError("--covariates applies to events; a summary carries CUPED as its pre_* columns") }
        guard plan.start == nil || plan.runtimeDays != nil else {
            throw UsageError("a start (--start or the config's \"start\") needs timestamps, and a summary has none: give --runtime-days")
        }
        guard plan.unit == .user else { throw UsageError("--unit event needs the events; a summary holds per-user sums only") }
        guard until == nil else { throw UsageError("--until needs timestamps, and a summary has none") }
        let metrics = config.metrics, variants = plan.allocation?.names
        let data = try SummaryInput.read(path: console.inputPath(summary), metrics: metrics, experiment: experiment, variants: variants)
        let report = try Analysis.run(data, plan: plan)
        if let runs = benchmarkRuns {
            try benchmarkSummary(summary, runs: runs, console: console, metrics: metrics, experiment: experiment, variants: variants, plan: plan, format: format)
        }
        return try finishAnalysis(report, format, input: summary, mlflow: mlflow, console)
    }
    if let path = covariatesFlag ?? config.covariatesPath {
        options.covariates = try CovariateTable.load(path: path, metrics: config.metrics)
    }
    if args.flag("--read-events") && db.map(PostgresLocation.isURL) != true {
        throw UsageError("--read-events applies to a PostgreSQL store (--db postgresql://...); other inputs are read as events anyway")
    }
    if db != nil {
        guard paths.isEmpty else { throw UsageError("give either --db or an event log, not both") }
        guard options.partitions == nil else { throw UsageError("--partitions applies to event logs, not to --db") }
    } else if paths.count != 1 {
        throw UsageError(paths.isEmpty ? "give the event log to analyse: bakeoff analyze EVENTS.jsonl (or --db PATH)" : "analyze takes one event log, got \(paths.count)")
    }
    if args.flag("--timeseries") {
        guard until == nil else { throw UsageError("--timeseries makes a point at every day's end; leave out --until") }
        let series: TimeSeries
        if let db {
            series = try StoreAnalysis.timeSeries(path: db, options: options, plan: plan)
        } else {
            guard paths[0] != "-" else { throw UsageError("--timeseries reads the log once per day: give a file, not standard input") }
            series = try TimeSeries.build(plan: plan) { until in
                var o = options
                o.until = until
                return try EventLog.aggregate(path: paths[0], options: o)
            }
        }
        try console.output.write(series.renderJSON())
        return .ok
    }
    // A PostgreSQL store analyses inside the database and says how far it is in steps.
    let inDatabase = db.map(PostgresLocation.isURL) == true && options.covariates == nil && !args.flag("--read-events")
    let bar = inDatabase ? ProgressBar(label: "analysing in PostgreSQL", unit: "steps", scale: 1, console: console)
        : ProgressBar(label: "reading \(db ?? paths[0])", console: console)
    options.progress = { bar.update(done: $0, total: $1) }
    let data: ExperimentData
    do {
        data = try db.map { try StoreAnalysis.aggregate(path: $0, options: options, inDatabase: inDatabase) } ?? EventLog.aggregate(path: console.inputPath(paths[0]), options: options)
        bar.finish()
    } catch {
        bar.finish()
        throw error
    }
    if let db { plan = try StoreAnalysis.withRecordedLooks(plan, path: db, experiment: data.experiment) }
    var report = try Analysis.run(data, plan: plan)
    if let db {
        report.planChanges = try StoreAnalysis.planChangesAfterStart(path: db, experiment: data.experiment, data: data, plan: plan)
    }
    return try finishAnalysis(report, format, input: db ?? paths[0], mlflow: mlflow, console)
}

/// Prints the report and, with `--mlflow`, records it there: exit status 1 when that failed (the report is
/// printed first all the same).
func finishAnalysis(_ report: Report, _ format: ReportFormat, input: String, mlflow: MLflowTarget?, _ console: Console) throws -> ExitCode {
    var report = report
    // The analysis says no split was planned; on the command line, say which options plan one.
    if report.sampleRatio.status == .notRun, report.sampleRatio.expectedShares.isEmpty, let reason = report.sampleRatio.reason {
        report.sampleRatio.reason = reason + " (give --split, --variants or the config's \"variants\")"
    }
    try console.output.write(report.render(format))
    guard let mlflow else { return .ok }
    let source = RunSource(command: "bakeoff analyze", input: input, version: BakeoffCLI.version, user: MLflowTarget.user)
    return mlflow.record(.analysis(report, source: source), console) ? .ok : .failure
}

/// `--benchmark N` for `make bench`: the summary's bytes parsed, analysed and rendered N times in process;
/// the median and minimum go to stderr.
func benchmarkSummary(_ path: String, runs: Int, console: Console, metrics: [Metric], experiment: String?, variants: [String]?,
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
    console.printError("benchmark: parse + statistics + \(format.rawValue) of \(path): median \(fixedString(Double(times[times.count / 2]) / 1e6, 3)) ms over \(runs) runs (min \(fixedString(Double(times[0]) / 1e6, 3)) ms)")
}

/// `--split S` or `--variants a=0.5,b=0.5` (analyze, assign).
func allocationOption(_ args: ParsedArguments) throws -> Allocation? {
    let split = try args.double("--split")
    let variants = args.string("--variants")
    if split != nil && variants != nil { throw UsageError("give either --split or --variants, not both") }
    do {
        if let split { return try Allocation(split: split) }
        if let variants { return try Allocation(parsing: variants, context: "--variants") }
    } catch {
        throw UsageError(split != nil ? "--split: \(error)" : "\(error)")
    }
    return nil
}

/// 14 or 10.5: days without trailing zeros.
func formatDaysPlain(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(d) }

func fixedString(_ x: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", x) }
