#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif
import BakeoffCore
import BakeoffStore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools

let exportHelp = """
USAGE: bakeoff export --db PATH [--experiment NAME] [--output FILE|-] [--include-qa]

Writes the events of an event store (the gateway's SQLite file) as a JSON Lines log, in the order they
were committed, each line exactly as stored. Works while a gateway writes to the store.

OPTIONS:
  --db PATH             The event store
  --experiment NAME     Only this experiment's events (default: all)
  --output FILE         Write to FILE instead of stdout (- is stdout)
  --include-qa          Include QA requests (forced into a variant by an admin; "qa":true)
"""

let importHelp = """
USAGE: bakeoff import --db PATH EVENTS.jsonl

Loads a JSON Lines event log (or - for stdin) into an event store, creating it if needed. Every line is
checked first; a malformed one stops the import with its place and problem, and nothing is added.
Lines are stored exactly as they are, so `bakeoff export` gives them back.
"""

func runExport(_ args: inout Arguments) throws -> ExitCode {
    if args.wantsHelp { print(exportHelp); return .ok }
    guard let db = try args.option("--db") else { throw UsageError("--db PATH is required (the event store)") }
    let experiment = try args.option("--experiment")
    let output = try args.option("--output")
    let includeQA = args.flag("--include-qa")
    try args.finish()
    if let experiment, case let counts = try StoreReader.experimentCounts(path: db), !counts.contains(where: { $0.name == experiment }) {
        let held = counts.prefix(5).map { "\($0.name) (\($0.count) events)" }.joined(separator: ", ")
        throw StoreError("\(db): experiment \"\(experiment)\" not found" + (held.isEmpty ? "; the store is empty" : "; the store holds: \(held)"))
    }
    var fd: Int32 = 1
    if let output, output != "-" {
        fd = open(output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { throw FileError(path: output, message: String(cString: strerror(errno))) }
    }
    let capacity = 1 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    defer { buffer.deallocate() }
    var used = 0
    func drain() throws {
        var offset = 0
        while offset < used {
            let n = write(fd, buffer + offset, used - offset)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE && fd == 1 { exit(0) }
                throw FileError(path: output ?? "standard output", message: "cannot write: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        used = 0
    }
    try StoreReader.forEachLine(path: db, experiment: experiment, includeQA: includeQA) { line in
        if used + line.count + 1 > capacity { try drain() }
        if line.count + 1 > capacity {  // a line longer than the buffer goes out on its own
            var offset = 0
            while offset < line.count {
                let n = write(fd, line.baseAddress! + offset, line.count - offset)
                if n < 0 { if errno == EINTR { continue }; throw FileError(path: output ?? "standard output", message: String(cString: strerror(errno))) }
                offset += n
            }
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
    if fd != 1 && close(fd) != 0 { throw FileError(path: output ?? "", message: String(cString: strerror(errno))) }
    return .ok
}

func runImport(_ args: inout Arguments) throws -> ExitCode {
    if args.wantsHelp { print(importHelp); return .ok }
    guard let db = try args.option("--db") else { throw UsageError("--db PATH is required (the event store)") }
    let paths = try args.positionals()
    guard paths.count == 1 else {
        throw UsageError(paths.isEmpty ? "give the event log to import: bakeoff import --db PATH EVENTS.jsonl" : "import takes one event log, got \(paths.count)")
    }
    let store = try EventStore(path: db)
    defer { store.close() }
    let count = try store.importLog(path: paths[0])
    printError("imported \(count) events into \(db)")
    return .ok
}

