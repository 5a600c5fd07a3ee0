import BakeoffCore
import CSQLite
#if canImport(Glibc)
import Glibc
#endif

/// The layout of version 4 (one row per event with its JSON line and text columns), kept to make stores as
/// releases before the compact rows left them (tests of the upgrade) and to measure against (`bakeoff
/// store-bench`).
package enum LegacyStore {
    /// The migrations up to version 4.
    static let migrator = Migrator(Array(StoreSchema.migrations.prefix(EventLayout.compactVersion - 1)))

    /// Creates a version 4 store at `path` and writes `events` as that release's writer did (`Row(e)`, the line
    /// made on the writer thread), in transactions of `batch`; returns the time the writes took.
    @discardableResult
    package static func write(_ events: [EventRecord], path: String, batch: Int = 1000) throws(StoreError) -> BenchTime {
        let connection = try Connection(path: path, readOnly: false, migrator: migrator)
        try WriterConnection.configure(connection, options: StoreOptions())
        let insert = try connection.prepare("""
            INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line, name)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
            """)
        return try timedBatches(events, connection, batch) { e throws(StoreError) in
            let row = Row(e)
            insert.bind(1, row.ts)
            insert.bind(2, row.experiment)
            insert.bind(3, row.kind == .request ? "request" : "feedback")
            insert.bind(4, row.variant)
            insert.bind(5, row.userID)
            insert.bind(6, row.conversationID)
            insert.bind(7, row.requestID)
            insert.bind(8, row.status)
            insert.bind(9, row.qa ? 1 : 0)
            insert.bind(10, row.line)
            insert.bind(11, row.name)
            defer { insert.reset() }
            _ = try insert.step()
        }
    }

    /// Adds lines to a version 4 store as its import did (each line kept as it is, its columns parsed).
    package static func importLines(_ lines: [String], path: String) throws(StoreError) {
        let connection = try Connection(path: path, readOnly: false, migrator: migrator)
        let insert = try connection.prepare("""
            INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line, name)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
            """)
        var parser = EventParser()
        try connection.inWriteTransaction { () throws(StoreError) in
            for var line in lines {
                let parsed = line.withUTF8 { bytes -> Result<Row, EventParseError> in
                    let raw = UnsafeRawBufferPointer(bytes)
                    do throws(EventParseError) { return .success(Row(try parser.parse(raw), line: raw)) } catch { return .failure(error) }
                }
                guard case .success(let row) = parsed else { throw StoreError(.other, path: path, "\(path): cannot import \(line)") }
                insert.bind(1, row.ts)
                insert.bind(2, row.experiment)
                insert.bind(3, row.kind == .request ? "request" : "feedback")
                insert.bind(4, row.variant)
                insert.bind(5, row.userID)
                insert.bind(6, row.conversationID)
                insert.bind(7, row.requestID)
                insert.bind(8, row.status)
                insert.bind(9, row.qa ? 1 : 0)
                insert.bind(10, row.line)
                insert.bind(11, row.name)
                defer { insert.reset() }
                _ = try insert.step()
            }
        }
    }
}

/// Measures the store's writer alone: events written in transactions of a batch, as the writer thread does
/// (with its settings).
package enum StoreWriteBench {
    /// Writes `events` into a new compact store at `path` in transactions of `batch` (the writer's statements,
    /// without its queue); returns the time the writes took.
    package static func writeCompact(_ events: [EventRecord], path: String, batch: Int = 1000) throws(StoreError) -> BenchTime {
        let connection = try Connection(path: path, readOnly: false)
        try WriterConnection.configure(connection, options: StoreOptions())
        let rows = try EventRowWriter(connection)
        return try timedBatches(events, connection, batch, committed: rows.committed) { e throws(StoreError) in try rows.insert(e) }
    }
}

/// Wall-clock and CPU time (of the whole process: with one thread at work, that thread's) of a benchmark step.
package struct BenchTime: Sendable {
    package var wallSeconds: Double
    package var cpuSeconds: Double

    /// Starts measuring.
    package static func start() -> BenchTime { BenchTime(wallSeconds: now(CLOCK_MONOTONIC), cpuSeconds: now(CLOCK_PROCESS_CPUTIME_ID)) }

    /// The time since `start()` gave `self`.
    package func elapsed() -> BenchTime {
        BenchTime(wallSeconds: Self.now(CLOCK_MONOTONIC) - wallSeconds, cpuSeconds: Self.now(CLOCK_PROCESS_CPUTIME_ID) - cpuSeconds)
    }

    private static func now(_ clock: clockid_t) -> Double {
        var t = timespec()
        clock_gettime(clock, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}

/// Writes `events` with `insert` in transactions of `batch`; the time it took.
private func timedBatches(_ events: [EventRecord], _ connection: Connection, _ batch: Int, committed: () -> Void = {},
                          _ insert: (EventRecord) throws(StoreError) -> Void) throws(StoreError) -> BenchTime {
    let started = BenchTime.start()
    var start = 0
    while start < events.count {
        let end = min(start + max(batch, 1), events.count)
        try connection.inWriteTransaction { () throws(StoreError) in
            for i in start..<end { try insert(events[i]) }
        }
        committed()
        start = end
    }
    return started.elapsed()
}

/// Events as a gateway logs them, for tests and benchmarks of the store: requests of `users` users over a few
/// experiments and variants, with the gateway's request ids (`req_` + 24 hex digits), latencies measured in
/// nanoseconds, token counts, mostly `ok`; most requests are their own conversation (the gateway's default), a
/// fifth named conversations of a few turns; about one request in five gets feedback on it, and some
/// conversations a conversation-level rating.
package enum StoreWorkload {
    /// `timeOrderedIDs`: request ids as the gateway makes them now (the time in milliseconds, then random
    /// digits); else 24 random digits, as it made them before.
    package static func events(requests: Int, users: Int = 10_000, seed: UInt64 = 1, timeOrderedIDs: Bool = true,
                               start: Int64 = 1_780_000_000_000_000) -> [EventRecord] {
        var random = Random(seed)
        var events: [EventRecord] = []
        events.reserveCapacity(requests + requests / 4)
        let experiments = ["support-bot-v2", "summarizer-ft-7", "router-small"]
        let statuses = ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "upstream_error", "timeout"]
        var ts = start
        var conversations = 0
        for n in 0..<requests {
            ts += Int64(random.below(200)) + 1
            let experiment = experiments[Int(random.below(100)) < 70 ? 0 : Int(random.below(2)) + 1]
            var e = EventRecord(kind: .request, timestamp: ts, experiment: experiment)
            e.variant = random.below(2) == 0 ? "control" : "treatment"
            let a = random.next(), b = random.next()  // the same draws either way: the same events but their ids
            e.requestID = "req_" + (timeOrderedIDs ? hex(UInt64(ts / 1000), 12) + hex(a & 0xFFFF_FFFF_FFFF, 12)
                                                   : hex(a, 16) + hex(b & 0xFFFF_FFFF, 8))
            e.userID = "user-\(random.below(UInt64(users)))"
            if random.below(5) == 0 {
                if random.below(3) == 0 { conversations += 1 }
                e.conversationID = "conv-\(conversations)"
            } else {
                e.conversationID = e.requestID
            }
            let ns = 150_000_000 + random.below(2_500_000_000)
            e.latencyMs = Double(ns) / 1e6
            if random.below(2) == 0 { e.ttftMs = Double(ns / 3 + random.below(1_000_000)) / 1e6 }
            e.status = statuses[Int(random.below(UInt64(statuses.count)))]
            if e.status == "ok" {
                e.inputTokens = Int(20 + random.below(2000))
                e.outputTokens = Int(10 + random.below(800))
            }
            e.qa = n % 1000 == 999
            events.append(e)
            if random.below(5) == 0 {
                var f = EventRecord(kind: .feedback, timestamp: ts + 1_000 + Int64(random.below(1_000_000)), experiment: experiment)
                f.userID = e.userID
                f.conversationID = e.conversationID
                f.requestID = e.requestID
                f.name = random.below(3) == 0 ? "task_completed" : "thumbs_up"
                f.value = Double(random.below(2))
                f.qa = e.qa
                events.append(f)
            } else if e.conversationID != e.requestID && random.below(10) == 0 {
                var f = EventRecord(kind: .feedback, timestamp: ts + 2_000, experiment: experiment)
                f.userID = e.userID
                f.conversationID = e.conversationID
                f.name = "csat"
                f.value = Double(1 + random.below(5))
                events.append(f)
            }
        }
        return events
    }

    private static func hex(_ v: UInt64, _ digits: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }

    /// SplitMix64: the same events for the same seed.
    private struct Random {
        var state: UInt64
        init(_ seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: UInt64) -> UInt64 { next() % n }
    }
}
