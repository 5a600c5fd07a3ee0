import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools
import BakeoffStore

let exportSpec = CommandSpec(
    "export",
    summary: "Write an event store's events as a JSON Lines log",
    usage: ["--db PATH [options]"],
    about: "Writes the events of an event store (the gateway's SQLite file) as a JSON Lines log, in the order they were committed, each line exactly as stored. Works while a gateway writes to the store.",
    options: [
        .single("--db", "PATH", "The event store: the gateway's SQLite file, or a postgresql:// URL (password in PGPASSWORD)"),
        .single("--experiment", "NAME", "Only this experiment's events", default: "all"),
        .single("--output", "FILE", "Write to FILE instead of stdout (- is stdout)"),
        .flag("--include-qa", "Include QA requests (forced into a variant by an admin; \"qa\":true)"),
    ]
)

let importSpec = CommandSpec(
    "import",
    summary: "Load a JSON Lines event log into an event store",
    usage: ["--db PATH EVENTS.jsonl"],
    about: """
    Loads a JSON Lines event log (or - for stdin) into an event store, creating it if needed. Every line is checked first; a malformed one stops the import with its place and problem, and nothing is added. Lines are stored exactly as they are, so `bakeoff export` gives them back.
    """,
    arguments: [Argument("EVENTS.jsonl", "The event log; - reads standard input")],
    options: [
        .single("--db", "PATH", "The event store, created if needed: an SQLite file, or a postgresql:// URL (password in PGPASSWORD; the schema is created there)"),
    ]
)

@Sendable func runExport(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    guard let db = args.string("--db") else { throw UsageError("--db PATH is required (the event store)") }
    let experiment = args.string("--experiment")
    let output = args.string("--output")
    let includeQA = args.flag("--include-qa")
    if let experiment { _ = try StoreReader.selectExperiment(path: db, named: experiment) }
    let file = try output.flatMap { $0 == "-" ? nil : try OutputFile(creating: $0) }
    defer { file?.close() }
    let out = file ?? console.output
    let capacity = 1 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    defer { buffer.deallocate() }
    var used = 0
    func drain() throws(OutputError) {
        try out.write(UnsafeRawBufferPointer(start: buffer, count: used))
        used = 0
    }
    try StoreReader.forEachLine(path: db, experiment: experiment, includeQA: includeQA) { line in
        if used + line.count + 1 > capacity { try drain() }
        if line.count + 1 > capacity {  // a line longer than the buffer goes out on its own
            try out.write(line)
            buffer.storeBytes(of: 0x0A, as: UInt8.self)
            used = 1
            return
        }
        if let base = line.baseAddress { (buffer + used).copyMemory(from: base, byteCount: line.count) }
        used += line.count
        (buffer + used).storeBytes(of: 0x0A, as: UInt8.self)
        used += 1
    }
    try drain()
    try file?.finish()
    return .ok
}

@Sendable func runImport(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    guard let db = args.string("--db") else { throw UsageError("--db PATH is required (the event store)") }
    let paths = args.positionals
    guard paths.count == 1 else {
        throw UsageError(paths.isEmpty ? "give the event log to import: bakeoff import --db PATH EVENTS.jsonl" : "import takes one event log, got \(paths.count)")
    }
    if PostgresLocation.isURL(db) {
        let count = try PostgresImport.importLog(url: db, path: console.inputPath(paths[0]))
        console.printError("imported \(count) events into \(try PostgresLocation(url: db))")
        return .ok
    }
    let store = try EventStore(path: db)
    defer { store.close() }
    let count = try store.importLog(path: console.inputPath(paths[0]))
    console.printError("imported \(count) events into \(db)")
    return .ok
}
