#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import BakeoffCore
import BakeoffEval
import BakeoffEvalRunner
import BakeoffGateway
import BakeoffHTTP
import BakeoffStore
import Foundation
import Synchronization

let evalExportLabelsSpec = CommandSpec(
    "eval export-labels",
    summary: "A blind side-by-side sheet of an eval's answers for people to label (HTML and CSV)",
    usage: ["--config FILE --dataset REQUESTS.jsonl [--experiment NAME] [--output-dir DIR] [options]"],
    about: """
        Gets every variant's answer to every request of the dataset as `bakeoff eval` does (the first repetition; answers in the cache are not asked for again, and no judge is called), then writes for people to label:

          DIR/labels.html      the answers side by side, to choose in a browser
          DIR/labels.csv       the same as CSV, to fill in a spreadsheet instead
          DIR/labels.key.json  which variant is on which side (mode 0600)

        Each item pairs a candidate variant's answer with the control's, on sides drawn at random per item, under an opaque code, in a shuffled order; the variants' names are nowhere in the page or the CSV. Labelers fill label with left, right or tie; `bakeoff eval import-labels` reads their files back with the key. Keep the key, and do not show it to labelers.
        """,
    options: [
        .single("--config", "FILE", "The gateway config"),
        .single("--dataset", "FILE", "Requests as JSON Lines: id, messages (or prompt), optional reference and metadata"),
        .single("--experiment", "NAME", "The experiment", default: "the config's only experiment with an \"eval\""),
        .single("--cache", "FILE", "The results cache (SQLite), the one bakeoff eval uses", default: "bakeoff-eval.db"),
        .single("--output-dir", "DIR", "Where the three files go (made when missing)", default: "."),
        .seed("Seed of the item codes, sides and order", default: "a random one, kept in the key"),
        .single("--limit", "N", "Only the first N requests of the dataset"),
        .flag("--force", "Replace an existing labels.key.json (sheets made with it can then no longer be imported)"),
    ],
    notes: "Example:\n  bakeoff eval export-labels --config bakeoff.json --dataset requests.jsonl \\\n      --limit 100 --output-dir labels"
)

let evalImportLabelsSpec = CommandSpec(
    "eval import-labels",
    summary: "Read people's filled label sheets back into the eval cache",
    usage: ["--key DIR/labels.key.json --labels FILLED.csv [--cache FILE] [--labeler NAME]"],
    about: "Reads a filled label sheet (the CSV of `bakeoff eval export-labels`, or the one its page downloads) with the key that made it, and keeps each label in the eval cache as the candidate variant's verdict against the control (win, tie or loss) on that request's answers. Labels are left, right or tie (also l, r, t; any case); a blank label is skipped. An unknown item code, an item labelled twice or an unreadable label rejects the file: nothing is stored until it is corrected. Importing a file again replaces that labeler's earlier labels.",
    options: [
        .single("--key", "FILE", "The labels.key.json written with the sheet"),
        .single("--labels", "FILE", "The filled CSV"),
        .single("--cache", "FILE", "The results cache (SQLite), the one bakeoff eval uses", default: "bakeoff-eval.db"),
        .single("--labeler", "NAME", "Who labelled (one label per item and labeler)", default: "the CSV's file name"),
    ]
)

@Sendable func runEvalExportLabels(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    var (experiment, eval, _, datasetPath) = try readEvalSetup(args, command: "eval export-labels")
    guard experiment.variants.count >= 2 else { throw UsageError("experiment \(experiment.name) has one variant: there is nothing to compare") }
    let limit = try args.int("--limit", in: 1...Int.max, rule: "at least 1")
    let directory = args.string("--output-dir") ?? "."
    var generator = SystemRandomNumberGenerator()
    let seed = args.seed("--seed") ?? generator.next()

    let keyPath = (directory as NSString).appendingPathComponent("labels.key.json")
    let csvPath = (directory as NSString).appendingPathComponent("labels.csv")
    let htmlPath = (directory as NSString).appendingPathComponent("labels.html")
    if FileManager.default.fileExists(atPath: keyPath) && !args.flag("--force") {
        throw UsageError("\(keyPath) exists: the sheets made with it can only be imported with it. Give another --output-dir, or --force to replace it")
    }

    let items = try readEvalItems(datasetPath, limit: limit, console)

    // Answers only: no judge, one repetition (the first, which the eval's own cache keys share).
    eval.plan.scorers = eval.plan.scorers.filter { if case .judge = $0 { return false } else { return true } }
    eval.judge = nil
    eval.plan.repetitions = 1
    let cachePath = args.string("--cache") ?? "bakeoff-eval.db"
    let cache = try EvalCache(path: cachePath)
    if cache.entriesAtOpen > 0 { console.printError("cache \(cachePath): \(group(cache.entriesAtOpen)) calls kept from earlier runs are not made again") }
    let (observations, stats) = try runEvalCalls(experiment: experiment, eval: eval, items: items, cache: cache,
                                                 label: "answers \(experiment.name)", console)
    try cache.close()
    var summary = "\(group(stats.calls)) calls in \(fixedString(stats.seconds, 1)) s"
    if stats.cachedAnswers > 0 { summary += "; \(group(stats.cachedAnswers)) answers from the cache" }
    if stats.failedAnswers > 0 { summary += "; \(group(stats.failedAnswers)) answers failed after their retries (run again to retry them)" }
    console.printError(summary)

    let variants = Dictionary(experiment.variants.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let sheet = LabelSheet.build(observations, experiment: experiment.name, dataset: datasetPath, seed: seed) { item, variant, control in
        evalLabelKey(experiment: experiment.name, item: item, variant: variants[variant]!, control: variants[control]!)
    }
    guard !sheet.items.isEmpty else {
        let reason = observations.answers.first { !$0.ok }?.error ?? "no answer"
        console.printError("no request has answers from both a candidate and the control (\(reason)): nothing to label")
        return .failure
    }

    do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
        throw UsageError("--output-dir \(directory): cannot create it: \(error.localizedDescription)")
    }
    try writeLabelFile(keyPath, sheet.key.json(), mode: 0o600)
    try writeLabelFile(csvPath, sheet.csv(), mode: 0o644)
    try writeLabelFile(htmlPath, sheet.html(), mode: 0o644)
    let candidates = experiment.variants.count - 1
    var written = "\(group(sheet.items.count)) items (\(group(items.count)) requests x \(candidates) candidate\(candidates == 1 ? "" : "s") against \(experiment.control)) in \(htmlPath) and \(csvPath)"
    if sheet.missingAnswers > 0 { written += "; \(group(sheet.missingAnswers)) pairs left out, a variant having no answer" }
    console.printError(written)
    console.printError("\(keyPath) says which variant is on which side: keep it to import the labels, and do not show it to labelers")
    return .ok
}

@Sendable func runEvalImportLabels(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    guard let keyPath = args.string("--key") else { throw UsageError("give the key the sheet was made with: --key DIR/labels.key.json") }
    guard let labelsPath = args.string("--labels") else { throw UsageError("give the filled sheet: --labels FILLED.csv") }
    let key = try LabelKey.parse(try readLabelFile(keyPath, option: "--key"), source: keyPath)
    let filled = try FilledLabels.parse(try readLabelFile(console.inputPath(labelsPath), option: "--labels"), source: labelsPath, key: key)
    let labeler = args.string("--labeler") ?? (labelsPath == "-" ? "stdin" : (labelsPath as NSString).lastPathComponent)
    guard !labeler.isEmpty else { throw UsageError("--labeler needs a name") }

    for problem in filled.problems.prefix(20) { console.printError(problem.description) }
    if filled.problems.count > 20 { console.printError("... and \(filled.problems.count - 20) more") }
    let counts = "\(group(filled.rows.count)) labels read, \(group(filled.blank)) blank skipped, \(group(filled.problems.count)) rejected"
    guard filled.problems.isEmpty else {
        console.printError("\(labelsPath): \(counts): nothing stored; correct the rejected rows and import again")
        return .failure
    }
    guard !filled.rows.isEmpty else {
        console.printError("\(labelsPath): \(counts): no labels to store")
        return .failure
    }
    let cachePath = args.string("--cache") ?? "bakeoff-eval.db"
    let cache = try EvalCache(path: cachePath)
    let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
    let labels = key.humanLabels(filled, labeler: labeler).map { entry, label in
        EvalCache.Label(key: entry.labelKey, labeler: labeler, source: labelsPath, experiment: key.experiment, requestID: entry.requestID,
                        variant: entry.variant, control: entry.control, verdict: EvalCache.Label.Verdict(rawValue: label.verdict.rawValue)!,
                        variantWasLeft: entry.variantIsLeft, item: entry.code, note: label.note, createdAt: now)
    }
    try cache.saveLabels(labels)
    try cache.close()
    console.printError("\(labelsPath): \(counts); stored as \(labeler)'s labels of \(key.experiment) in \(cachePath)")
    return .ok
}

// MARK: - Labels and the cache

/// Where a request's pair of answers (a candidate's and the control's) keeps its human labels in the eval cache:
/// a hash of the experiment's name, the request's content and both variants' definitions (what makes their
/// answers what they are: renaming a variant keeps its labels, changing its model or prompt does not).
package func evalLabelKey(experiment: String, item: EvalItem, variant: GatewayVariant, control: GatewayVariant) -> String {
    let request = item.messagesJSON.map { "messages=" + $0 } ?? "prompt=" + (item.prompt ?? "")
    return EvalRunner.key("label/1", experiment, request, variant.definition, control.definition)
}

/// The human labels kept in `cache` for these requests of `experiment`, named as the experiment names its
/// variants now: what `EvalAnalysis.humanAgreement` takes.
package func storedHumanLabels(_ cache: EvalCache, experiment: GatewayExperiment, items: [EvalItem]) throws -> [HumanLabel] {
    guard let control = experiment.variants.first(where: { $0.name == experiment.control }) ?? experiment.variants.first else { return [] }
    var pairs: [String: (request: String, variant: String)] = [:]
    for item in items {
        for v in experiment.variants where v.name != control.name {
            pairs[evalLabelKey(experiment: experiment.name, item: item, variant: v, control: control)] = (item.id, v.name)
        }
    }
    return try cache.labels(keys: Set(pairs.keys)).compactMap { l in
        guard let pair = pairs[l.key], let verdict = LabelVerdict(rawValue: l.verdict.rawValue) else { return nil }
        return HumanLabel(requestID: pair.request, variant: pair.variant, control: control.name, verdict: verdict,
                          labeler: l.labeler, variantWasLeft: l.variantWasLeft, note: l.note)
    }
}

/// Writes `text` to `path` with `mode` (set even when the file was there with another).
func writeLabelFile(_ path: String, _ text: String, mode: mode_t) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw OutputError.failed(name: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    guard fchmod(fd, mode) == 0 else { throw OutputError.failed(name: path, reason: "cannot set its mode: " + String(cString: strerror(errno))) }
    let bytes = Array(text.utf8)
    switch bytes.withUnsafeBytes({ writeAll(fd, $0) }) {
    case .written: break
    case .closed: throw OutputError.failed(name: path, reason: "closed")
    case .failed(let code): throw OutputError.failed(name: path, reason: String(cString: strerror(code)))
    }
}

/// A file's bytes, or a usage error naming the option.
func readLabelFile(_ path: String, option: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        throw UsageError("\(option) \(path): \(!exists ? "no such file" : isDirectory.boolValue ? "is a directory" : "cannot be read")")
    }
    return Array(data)
}
