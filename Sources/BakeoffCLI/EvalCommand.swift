import BakeoffCore
import BakeoffEval
import BakeoffEvalRunner
import BakeoffGateway
import BakeoffHTTP
import BakeoffReport
import BakeoffStore
import BakeoffTracking
import Foundation
import Synchronization

let evalSpec = CommandSpec(
    "eval",
    summary: "Offline A/B: requests through every variant, scored and judged",
    usage: ["--config FILE --dataset REQUESTS.jsonl [--experiment NAME] [options]"],
    about: "Sends every request of the dataset to every variant of the experiment exactly as `bakeoff serve` would (same upstream, model, system prompt, parameters), scores the answers with the scorers of the experiment's \"eval\" in the config (exact match, JSON, ROUGE-L, an LLM judge pairwise in both orders, ...), and reports which variant is better, by how much, how sure, and whether it should go live. Calls already made are kept in a cache, so an interrupted run resumes without paying twice.",
    options: [
        .single("--config", "FILE", "The gateway config; the experiment's \"eval\" holds the scorers and the plan"),
        .single("--dataset", "FILE", "Requests as JSON Lines: id, messages (or prompt), optional reference and metadata"),
        .single("--experiment", "NAME", "The experiment to evaluate", default: "the config's only experiment with an \"eval\""),
        .single("--cache", "FILE", "The results cache (SQLite)", default: "bakeoff-eval.db"),
        .flag("--no-cache", "Call everything again and keep nothing"),
        .single("--repetitions", "K", "Answers per request and variant (overrides the config's)"),
        .single("--concurrency", "N", "Calls in flight per upstream (overrides the config's)"),
        .single("--limit", "N", "Only the first N requests of the dataset"),
        .single("--db", "STORE", "The gateway's store (its SQLite file, or a postgresql:// URL): the live experiment's result goes beside the offline one, and its control sizes the live test"),
        .choice("--format", ReportFormat.self, "Output format; html is a page with charts and the answers side by side", default: "table"),
        .single("--output", "FILE", "Write the report there instead of standard output"),
        .single("--calls", "FILE", "Also write every answer and every judge verdict (its raw text included) as JSON Lines"),
    ] + mlflowOptions
)

@Sendable func runEval(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    var (experiment, eval, _, datasetPath) = try readEvalSetup(args, command: "eval")
    if let k = try args.int("--repetitions", in: 1...100, rule: "from 1 to 100") { eval.plan.repetitions = k }
    if let n = try args.int("--concurrency", in: 1...1024, rule: "from 1 to 1024") { eval.plan.concurrency = n }
    let limit = try args.int("--limit", in: 1...Int.max, rule: "at least 1")
    let format = args.choice("--format", ReportFormat.self) ?? .table
    let outputPath = args.string("--output")

    let callsPath = args.string("--calls")
    // Where the report goes is checked before any call is paid for.
    for (option, outputPath) in [("--output", outputPath), ("--calls", callsPath)] {
        guard let outputPath else { continue }
        let folder = folderOf(outputPath)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw UsageError("\(option) \(outputPath): the folder \(folder) does not exist")
        }
        guard FileManager.default.isWritableFile(atPath: folder) else {
            throw UsageError("\(option) \(outputPath): the folder \(folder) is not writable")
        }
        if FileManager.default.fileExists(atPath: outputPath, isDirectory: &isDirectory), isDirectory.boolValue {
            throw UsageError("\(option) \(outputPath) is a directory; give a file name")
        }
    }
    // So is the live store: a store that cannot be read is said now, not after the calls.
    let db = args.string("--db")
    if let db, PostgresLocation.isURL(db) {
        _ = try StoreReader.experimentNames(path: db)  // reachable, and a store
    } else if let db {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: db, isDirectory: &isDirectory), !isDirectory.boolValue,
              FileManager.default.isReadableFile(atPath: db) else {
            throw UsageError("--db \(db): no such readable event store (the gateway's SQLite file, \"store\" in its config)")
        }
    }
    let items = try readEvalItems(datasetPath, limit: limit, console)
    // And MLflow: a server that cannot take the run is said before the calls are paid for.
    let mlflow = try MLflowTarget(uri: args.string("--mlflow"), experiment: args.string("--mlflow-experiment"))
    var mlflowExperimentID: String?
    do throws(TrackingError) {
        mlflowExperimentID = try mlflow?.experimentID(default: experiment.name)
    } catch {
        var stopped = error
        stopped.message += " (nothing was called: the eval stops before paying for calls it could not record)"
        throw stopped
    }
    var cachePath: String?

    var cache: EvalCache?
    if !args.flag("--no-cache") {
        let path = args.string("--cache") ?? "bakeoff-eval.db"
        cache = try EvalCache(path: path)
        cachePath = path
        if cache!.entriesAtOpen > 0 { console.printError("cache \(path): \(group(cache!.entriesAtOpen)) calls kept from earlier runs are not made again") }
    } else if args.string("--cache") != nil {
        throw UsageError("give either --cache or --no-cache")
    }

    let (observations, stats) = try runEvalCalls(experiment: experiment, eval: eval, items: items, cache: cache,
                                                 label: "eval \(experiment.name)", console)
    // From here on the calls are paid for: a problem writing is said loudly, and the report still comes.
    var failures: [String] = []
    if let error = stats.cacheError { failures.append("the cache could not keep every call (they are made again next time): \(error)") }
    var labels: [HumanLabel] = []
    if let cache {
        do {
            labels = try storedHumanLabels(cache, experiment: experiment, items: items)
            try cache.close()
        } catch { failures.append("the cache: \(error)") }
    }

    var summary = "\(group(stats.calls)) calls in \(fixedString(stats.seconds, 1)) s (\(group(stats.retries)) retries)"
    if stats.cachedAnswers + stats.cachedJudgments > 0 { summary += "; \(group(stats.cachedAnswers)) answers and \(group(stats.cachedJudgments)) verdicts from the cache" }
    if stats.failedAnswers > 0 { summary += "; \(group(stats.failedAnswers)) answers failed after their retries (left out; run again to retry them)" }
    if stats.failedJudgments > 0 { summary += "; \(group(stats.failedJudgments)) judge calls failed" }
    if stats.unparseableJudgments > 0 { summary += "; \(group(stats.unparseableJudgments)) judge answers had no verdict" }
    console.printError(summary)
    let answered = observations.answers.filter(\.ok).count
    if answered == 0 {
        let reason = observations.answers.first?.error ?? "no answer"
        console.printError("no variant answered any request: \(reason)")
        return .failure
    }

    var report = EvalAnalysis.run(observations, EvalAnalysis.Context(experiment: experiment.name, dataset: datasetPath, plan: eval.plan))
    report.humanAgreement = EvalAnalysis.humanAgreement(observations, plan: eval.plan, labels: labels)
    // The live side: the experiment's live result when the store has it, and the live test's size.
    var baseline = eval.plan.liveBaseline
    if let db {
        // A store that turns out damaged costs the live side only: the paid-for report still comes.
        do {
            if let live = try LiveExperiment.report(storePath: db, experiment: experiment) {
                report.live = LiveExperiment.comparison(live, variant: report.decision.variant)
                if let control = live.results.first(where: { $0.metric.name == live.primaryMetric })?.control.mean { baseline = control }
            } else {
                console.printError("\(db) holds no live data of \(experiment.name) yet: the report shows the offline result alone")
            }
        } catch { failures.append("the live experiment could not be read, so the report shows the offline result alone: \(error)") }
    }
    if report.decision.action == .promote {
        let (users, hint) = LiveExperiment.plan(experiment: experiment, variant: report.decision.variant, baseline: baseline)
        report.decision.liveUsersPerGroup = users
        report.decision.livePlanHint = hint
    }
    if let callsPath {
        do {
            try callsLines(observations, plan: eval.plan).write(toFile: callsPath, atomically: true, encoding: .utf8)
            console.printError("every call written to \(callsPath)")
        } catch { failures.append("\(callsPath): cannot write the calls: \(error.localizedDescription)") }
    }
    // Kept in the cache for the dashboard's offline evals (`bakeoff dashboard --evals`).
    if let cachePath {
        let d = report.decision
        let summary = "\(d.action.rawValue.prefix(1).uppercased() + d.action.rawValue.dropFirst()): \(d.variant) — \(d.reasons.first ?? "")"
        do {
            try EvalCache.saveReport(path: cachePath, experiment: experiment.name, createdAt: Int64(Date().timeIntervalSince1970 * 1_000_000),
                                     summary: summary, json: report.render(.json), html: report.render(.html))
        } catch { failures.append("\(cachePath): the report could not be kept for the dashboard: \(error)") }
    }
    let text = report.render(format)
    var written = false
    if let outputPath {
        do {
            try text.write(toFile: outputPath, atomically: true, encoding: .utf8)
            console.printError("report written to \(outputPath)")
            written = true
        } catch { failures.append("\(outputPath): cannot write the report (\(error.localizedDescription)); it follows on standard output") }
    }
    if !written { try console.output.write(text) }
    var recorded = true
    if let mlflow {
        let setups = experiment.variants.map {
            VariantSetup(name: $0.name, model: $0.upstream.model, systemPrompt: $0.systemPrompt,
                         parameters: $0.parameters.isEmpty ? nil : $0.parameters.map { "\($0.key)=\($0.json)" }.joined(separator: ","))
        }
        let source = RunSource(command: "bakeoff eval", input: datasetPath, version: BakeoffCLI.version, user: MLflowTarget.user)
        recorded = mlflow.record(.eval(report, plan: eval.plan, variants: setups, source: source), experimentID: mlflowExperimentID, console)
    }
    // A variant without a single answer was not evaluated: the run failed, whatever the report says.
    for calls in report.calls where calls.answers > 0 && calls.failed == calls.answers {
        failures.append("\(calls.variant) answered none of its \(calls.answers) calls\(calls.commonError.map { " (most often: \($0))" } ?? "")")
    }
    for failure in failures { console.printError(failure) }
    return failures.isEmpty && recorded ? .ok : .failure
}

/// The experiment `bakeoff eval` evaluates: the one named, or the only one with an "eval".
func chooseEvalExperiment(_ config: GatewayConfig, named name: String?) throws -> GatewayExperiment {
    if let name {
        guard let e = config.experiment(named: name) else {
            let names = config.experiments.map(\.name)
            var message = "no experiment \"\(name)\" in \(config.source) (experiments: \(names.joined(separator: ", ")))"
            if let guess = closestName(name, among: names) { message += "; did you mean \"\(guess)\"?" }
            throw UsageError(message)
        }
        return e
    }
    let withEval = config.experiments.filter { $0.eval != nil }
    if withEval.count == 1 { return withEval[0] }
    if config.experiments.count == 1 { return config.experiments[0] }
    throw UsageError("\(config.source) has \(withEval.isEmpty ? "no experiment with an \"eval\"" : "several experiments with an \"eval\""): choose one with --experiment (\((withEval.isEmpty ? config.experiments : withEval).map(\.name).joined(separator: ", ")))")
}

/// What `bakeoff eval` and `eval export-labels` start from: the experiment and its eval from the config, and
/// where the requests are.
func readEvalSetup(_ args: ParsedArguments, command: String) throws -> (GatewayExperiment, GatewayEval, String, String) {
    guard let configPath = args.string("--config") else { throw UsageError("give the config: bakeoff \(command) --config bakeoff.json --dataset requests.jsonl") }
    guard let datasetPath = args.string("--dataset") else { throw UsageError("give the requests: --dataset requests.jsonl (JSON Lines with id and messages; bakeoff sample draws one from the gateway's store)") }
    let config = try GatewayConfig.load(path: configPath)
    let experiment = try chooseEvalExperiment(config, named: args.string("--experiment"))
    guard let eval = experiment.eval else {
        throw UsageError("experiment \(experiment.name) has no \"eval\" in \(configPath): add one with its scorers, e.g. \"eval\": {\"judge\": {\"upstream\": {...}}, \"scorers\": [{\"type\": \"judge_pairwise\"}]} (README, \"Offline evals\")")
    }
    return (experiment, eval, configPath, datasetPath)
}

/// The dataset's requests, the first `limit` of them.
func readEvalItems(_ path: String, limit: Int?, _ console: Console) throws -> [EvalItem] {
    let items = try EvalDataset.read(path: console.inputPath(path), limit: limit)
    guard !items.isEmpty else { throw UsageError("\(path) holds no requests") }
    return items
}

/// Makes the eval's calls with a progress bar on stderr (when it is a terminal).
func runEvalCalls(experiment: GatewayExperiment, eval: GatewayEval, items: [EvalItem], cache: EvalCache?, label: String,
                  _ console: Console) throws -> (EvalObservations, EvalRunStats) {
    let transport = UpstreamClient()
    defer { transport.shutdown() }
    // Progress comes from the upstream client's threads: the bar is drawn under a lock.
    let bar = Mutex(ProgressBar(label: label, unit: "calls", scale: 1, console: console))
    let runner = EvalRunner(experiment: experiment, eval: eval, items: items, transport: transport, cache: cache,
                            progress: { p in bar.withLock { $0.update(done: Int64(p.done), total: Int64(p.total)) } })
    defer { bar.withLock { $0.finish() } }
    return runner.run()
}

/// Every answer and verdict of a run as JSON Lines (`--calls`): what the report was computed from, so any
/// number can be traced to the calls behind it.
func callsLines(_ o: EvalObservations, plan: EvalPlan) -> String {
    var out = ""
    for a in o.answers {
        var w = JSONWriter(pretty: false)
        w.object { w in
            w.value("kind", "answer"); w.value("id", o.items[a.item].id); w.value("variant", o.variants[a.variant])
            w.value("repetition", a.repetition); w.value("status", a.status); w.value("text", a.text)
            w.value("latency_ms", a.latencyMs); w.value("ttft_ms", a.ttftMs); w.value("input_tokens", a.inputTokens)
            w.value("output_tokens", a.outputTokens); w.value("attempts", a.attempts); w.value("cached", a.cached); w.value("error", a.error)
        }
        out += w.text + "\n"
    }
    for j in o.judgments {
        var w = JSONWriter(pretty: false)
        w.object { w in
            w.value("kind", "judgment"); w.value("scorer", plan.scorers[j.scorer].name); w.value("id", o.items[j.item].id)
            w.value("repetition", j.repetition); w.value("first", o.variants[j.first]); w.value("second", j.second.map { o.variants[$0] })
            w.value("verdict", j.verdict?.rawValue); w.value("score", j.score); w.value("raw", j.raw); w.value("error", j.error)
            w.value("attempts", j.attempts)
        }
        out += w.text + "\n"
    }
    return out
}
