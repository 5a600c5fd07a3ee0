import BakeoffCore
import BakeoffStore
import Foundation

let storeBenchSpec = CommandSpec(
    "store-bench",
    summary: "Measure the event store: bytes per event, writer events/s",
    usage: ["[options]"],
    about: "Writes the same gateway-like events (request ids in the gateway's shape, users, latencies, tokens, statuses, feedback on a fifth of the requests) into fresh SQLite stores of two layouts: schema version 4's (a JSON line and text columns per event) and the compact rows of version 5, with request ids of 24 random hex digits (the gateway's before) and time-ordered ones (the gateway's now). For each: bytes per event (the file after close, its WAL checkpointed, over the events) the writer's throughput (events committed per second in transactions of --batch events, the writer's statements without its queue) and the readers' (every line read back, rebuilt where it is not stored). The last row writes the compact store through the gateway's path (EventStore.append from one thread, then flush).",
    options: [
        .single("--events", "N", "Request events; feedback events come on top", default: "100000"),
        .single("--users", "N", "Distinct users", default: "10000"),
        .single("--batch", "N", "Events per transaction", default: "1000"),
        .single("--dir", "DIR", "Folder for the stores (a temporary one by default); the stores are removed after"),
        .seed("Seed of the events"),
        .choice("--format", LoadFormat.self, "Output format", default: "table"),
    ]
)

/// One layout's figures.
private struct StoreBenchRow {
    var layout: String
    var events: Int
    var bytes: Int
    var write: BenchTime
    /// Every line read back (`StoreReader.forEachLine`).
    var read: BenchTime
    var bytesPerEvent: Double { Double(bytes) / Double(max(events, 1)) }
    var eventsPerSecond: Double { Double(events) / max(write.wallSeconds, 1e-9) }
    var eventsPerCPUSecond: Double { Double(events) / max(write.cpuSeconds, 1e-9) }
    var linesPerSecond: Double { Double(events) / max(read.wallSeconds, 1e-9) }
    var linesPerCPUSecond: Double { Double(events) / max(read.cpuSeconds, 1e-9) }
}

@Sendable func runStoreBench(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    let requests = try args.int("--events", in: 1...100_000_000, rule: "between 1 and 100000000") ?? 100_000
    let users = try args.int("--users", in: 1...100_000_000, rule: "between 1 and 100000000") ?? 10_000
    let batch = try args.int("--batch", in: 1...10_000_000, rule: "between 1 and 10000000") ?? 1000
    let seed = args.seed("--seed") ?? 1
    let format = args.choice("--format", LoadFormat.self) ?? .table
    let parent = args.string("--dir") ?? NSTemporaryDirectory()
    let dir = (parent as NSString).appendingPathComponent("bakeoff-store-bench-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }

    // The gateway's request ids before (24 random hex digits) and now (the time first).
    let randomIDs = StoreWorkload.events(requests: requests, users: users, seed: seed, timeOrderedIDs: false)
    let events = StoreWorkload.events(requests: requests, users: users, seed: seed)
    func size(_ path: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0 }
    /// Reads every line (the rebuilt ones made, each one's bytes summed).
    func readAll(_ path: String) throws -> BenchTime {
        let started = BenchTime.start()
        var lines = 0, bytes = 0
        try StoreReader.forEachLine(path: path, includeQA: true) { line in
            lines += 1
            bytes &+= line.count
        }
        guard lines == events.count else { throw StoreError("store-bench: \(lines) of \(events.count) lines read from \(path)") }
        return started.elapsed()
    }
    var rows: [StoreBenchRow] = []

    let legacy = dir + "/v4.db"
    let legacyWrite = try LegacyStore.write(randomIDs, path: legacy, batch: batch)
    rows.append(StoreBenchRow(layout: "version 4 (JSON line per row), random ids", events: events.count, bytes: size(legacy),
                              write: legacyWrite, read: try readAll(legacy)))

    let random = dir + "/random.db"
    let randomWrite = try StoreWriteBench.writeCompact(randomIDs, path: random, batch: batch)
    rows.append(StoreBenchRow(layout: "version 5 (compact rows), random ids", events: events.count, bytes: size(random),
                              write: randomWrite, read: try readAll(random)))

    let compact = dir + "/compact.db"
    let compactWrite = try StoreWriteBench.writeCompact(events, path: compact, batch: batch)
    rows.append(StoreBenchRow(layout: "version 5, time-ordered ids", events: events.count, bytes: size(compact), write: compactWrite,
                              read: try readAll(compact)))

    // The gateway's path: appends (from this thread) and the writer thread's group commits, in the process's CPU time.
    let queued = dir + "/queued.db"
    let store = try EventStore(path: queued, options: StoreOptions(queueCapacity: events.count + 1))
    let started = BenchTime.start()
    for e in events { store.append(e) }
    store.flush()
    let queuedWrite = started.elapsed()
    let written = store.eventsWritten
    store.close()
    guard written == events.count else { throw StoreError("store-bench: \(written) of \(events.count) events written through the queue") }
    rows.append(StoreBenchRow(layout: "version 5, time-ordered ids, through EventStore.append", events: events.count, bytes: size(queued), write: queuedWrite,
                              read: try readAll(queued)))

    if format == .json {
        var w = JSONWriter(pretty: false)
        w.object { w in
            w.value("events", events.count)
            w.value("requests", requests)
            w.value("users", users)
            w.value("batch", batch)
            w.array("layouts") { w in
                for row in rows {
                    w.object { w in
                        w.value("layout", row.layout)
                        w.value("bytes", row.bytes)
                        w.value("bytes_per_event", (row.bytesPerEvent * 10).rounded() / 10)
                        w.value("write_seconds", (row.write.wallSeconds * 1000).rounded() / 1000)
                        w.value("write_cpu_seconds", (row.write.cpuSeconds * 1000).rounded() / 1000)
                        w.value("events_per_second", row.eventsPerSecond.rounded())
                        w.value("events_per_cpu_second", row.eventsPerCPUSecond.rounded())
                        w.value("lines_read_per_second", row.linesPerSecond.rounded())
                        w.value("lines_read_per_cpu_second", row.linesPerCPUSecond.rounded())
                    }
                }
            }
        }
        try console.print(w.text)
    } else {
        var lines = ["\(events.count) events (\(requests) requests, \(users) users), transactions of \(batch)", "",
                     "| layout | bytes/event | events/s written | per CPU second | lines/s read | per CPU second |",
                     "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for row in rows {
            let figures = [row.eventsPerSecond, row.eventsPerCPUSecond, row.linesPerSecond, row.linesPerCPUSecond].map { String(Int($0.rounded())) }
            lines.append("| \(row.layout) | \(String(format: "%.1f", row.bytesPerEvent)) | " + figures.joined(separator: " | ") + " |")
        }
        try console.print(lines.joined(separator: "\n"))
    }
    return .ok
}
