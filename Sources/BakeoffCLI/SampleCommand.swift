import BakeoffCore
import BakeoffEval
import BakeoffStore

let sampleSpec = CommandSpec(
    "sample",
    summary: "Draw an eval dataset from logged traffic, uniformly over users",
    usage: ["--db PATH --size N [options]"],
    about: """
    Draws requests that the gateway logged with their content ("log_content" in its config) from an event store, and writes them as a dataset for offline evals (JSON Lines). The draw is uniform over users, so heavy users do not dominate: the users are shuffled with the seed and each gives one request, chosen at random among theirs; only when --size exceeds the number of users does the draw go round again. The same seed and events give the same sample, whatever the order of the store's rows. QA requests and failed ones are left out unless asked for.
    """,
    options: [
        .single("--db", "PATH", "The event store: the gateway's SQLite file, or a postgresql:// URL (password in PGPASSWORD)"),
        .single("--experiment", "NAME", "The experiment (required when the store holds several)"),
        .single("--size", "N", "Requests to draw"),
        .seed("Random seed"),
        .choice("--stratify", ["variant", "day", "none"], "Split --size over the arms that served the requests live, or over UTC days, in proportion to their users, and draw uniformly over users within each", default: "none"),
        .single("--output", "FILE", "Write the dataset to FILE instead of stdout (- is stdout)"),
        .flag("--keep-duplicates", "Also take requests whose content (messages, or prompt) a drawn request has already; by default each content is taken once"),
        .flag("--include-qa", "Include QA requests (forced into a variant by an admin)"),
        .flag("--include-failed", "Include failed requests (status other than ok)"),
    ],
    notes: """
    Each line: {"id": REQUEST_ID, "messages": [...], "metadata": {"live_variant": ARM, "day": "YYYY-MM-DD"}}, with "prompt" instead of "messages" for completions (and for chat requests logged before events carried their messages). User ids are not written; the live answer is not either (one arm's answer is no reference). Requests that the dataset reader would refuse (such as a message with no content) are passed over.

    Example:
      bakeoff sample --db events.db --experiment support-bot --size 500 > eval.jsonl
    """
)

@Sendable func runSample(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    guard let db = args.string("--db") else { throw UsageError("--db PATH is required (the event store)") }
    guard let size = try args.int("--size", in: 1...10_000_000, rule: "a whole number from 1 to 10,000,000") else {
        throw UsageError("--size N is required (the number of requests to draw)")
    }
    let seed = args.seed("--seed") ?? 1
    let stratify = args.string("--stratify").flatMap(SampleStratification.init(rawValue:))
    let distinct = !args.flag("--keep-duplicates")
    let output = args.string("--output")

    let experiment: String
    do {
        experiment = try StoreReader.selectExperiment(path: db, named: args.string("--experiment"))
    } catch {
        var error = error
        if case .experimentNotFound(let name, let available) = error.kind, let guess = closestName(name, among: available.map(\.name)) {
            error.message += "; did you mean \"\(guess)\"?"
        }
        throw error
    }

    let reader = try LoggedRequests(path: db, experiment: experiment)
    var candidates: [SampleCandidate] = []
    let counts = try reader.forEach(includeQA: args.flag("--include-qa"), includeFailed: args.flag("--include-failed")) { r in
        candidates.append(SampleCandidate(requestID: r.requestID, user: r.userID, variant: r.variant, timestamp: r.timestamp,
                                          contentKey: RequestSample.contentKey(messagesJSON: r.messagesJSON, prompt: r.prompt), source: r.row))
    }
    let leftOut = [(counts.qaSkipped, "QA", "--include-qa"), (counts.failedSkipped, "failed", "--include-failed")].filter { $0.0 > 0 }
    guard !candidates.isEmpty else {
        var message = "\(db): experiment \"\(experiment)\" has no requests with logged content to sample"
        if counts.requests == 0 {
            message += " (it has feedback events only)"
        } else {
            var parts: [String] = []
            if counts.withoutContent > 0 {
                parts.append("\(group(counts.withoutContent)) of its \(group(counts.requests)) requests were logged without content: turn on \"log_content\" in the gateway's config (top level or the experiment's) and sample once new traffic is logged")
            }
            if !leftOut.isEmpty {
                parts.append("left out: " + leftOut.map { "\(count($0.0, $0.1 + " request")) (\($0.2))" }.joined(separator: ", "))
            }
            message += ": " + parts.joined(separator: "; ")
        }
        console.printError(message)
        return .failure
    }

    // The draw asks for each request's line as it goes, so a request the dataset reader would refuse is replaced.
    var lines: [Int64: String] = [:]
    var firstRefusal: String?
    var promptOnly = 0
    let sample = try RequestSample.draw(candidates, size: size, seed: seed, stratify: stratify, distinct: distinct) { c in
        guard let request = try reader.request(row: c.source) else { return false }
        let line = datasetLine(request)
        do throws(EvalDatasetError) {
            _ = try EvalDataset.parse(Array(line.utf8), source: "request \(request.requestID)")
        } catch {
            if firstRefusal == nil { firstRefusal = error.description }
            return false
        }
        if request.messagesJSON == nil { promptOnly += 1 }
        lines[c.source] = line
        return true
    }

    let file = try output.flatMap { $0 == "-" ? nil : try OutputFile(creating: $0) }
    defer { file?.close() }
    let out = OutputBuffer(file ?? console.output)
    for request in sample.requests { try out.writeLine(lines[request.source]!) }
    try out.flush()
    try file?.finish()

    let destination = file.map(\.path) ?? "stdout"
    console.printError("sampled \(count(sample.requests.count, "request")) from \(group(sample.usersDrawn)) of \(count(sample.users, "user")) (experiment \(experiment), \(count(sample.candidates, "request")) with content) -> \(destination)")
    if sample.requests.count < size {
        console.printError("asked for \(group(size)): the experiment has no more requests" + (distinct ? " with distinct content" : ""))
    }
    if sample.mostPerUser > 1 {
        console.printError("--size exceeds the number of users\(stratify == nil ? "" : " of a stratum"): the draw went round again, up to \(sample.mostPerUser) requests per user")
    }
    if let stratify {
        console.printError("by \(stratify.rawValue): " + sample.strata.map { "\($0.name) \(group($0.drawn)) (\(count($0.users, "user")))" }.joined(separator: ", "))
    }
    if sample.duplicatesPassedOver > 0 {
        console.printError("passed over \(count(sample.duplicatesPassedOver, "request")) whose content was drawn already (--keep-duplicates takes them)")
    }
    if sample.refused > 0 {
        console.printError("passed over \(count(sample.refused, "request")) the dataset reader would refuse, such as: \(firstRefusal ?? "")")
    }
    if promptOnly > 0 {
        console.printError("\(count(promptOnly, "sampled request")) \(promptOnly == 1 ? "has" : "have") their prompt text only (completions, or chat requests logged before events carried their messages): written as \"prompt\"")
    }
    if !leftOut.isEmpty {
        console.printError("left out: " + leftOut.map { "\(count($0.0, $0.1 + " request")) (\($0.2))" }.joined(separator: ", "))
    }
    if sample.repeatedRequestIDs > 0 {
        console.printError("\(count(sample.repeatedRequestIDs, "request")) repeated an earlier request id and \(sample.repeatedRequestIDs == 1 ? "was" : "were") left out")
    }
    return .ok
}

/// "1 request", "1,234 requests".
private func count(_ n: Int, _ noun: String) -> String { "\(group(n)) \(noun)\(n == 1 ? "" : "s")" }

/// A dataset line of a logged request: its request id, its messages (or prompt), and where it came from.
func datasetLine(_ r: LoggedRequest) -> String {
    var line = "{\"id\":" + JSONWriter.quote(r.requestID)
    if let messages = r.messagesJSON {
        line += ",\"messages\":" + messages
    } else {
        line += ",\"prompt\":" + JSONWriter.quote(r.prompt ?? "")
    }
    return line + ",\"metadata\":{\"live_variant\":" + JSONWriter.quote(r.variant) + ",\"day\":" + JSONWriter.quote(RequestSample.day(of: r.timestamp)) + "}}"
}
