import BakeoffCore
import BakeoffStore
import CSQLite
import Foundation
import Synchronization
import Testing
import BakeoffReport
import BakeoffSimulation

/// Polls `condition` until it holds or `seconds` pass (waiting, not a timing assertion).
func eventually(_ seconds: Double = 30, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(5_000)
    }
    return condition()
}

/// Microseconds since 1970, now.
func nowMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

/// A request event with content (about 1 KB), at `ts`.
func bulkyRequest(_ n: Int, ts: Int64) -> EventRecord {
    var e = request(n)
    e.timestamp = ts
    e.prompt = String(repeating: "prompt \(n) ", count: 60)
    return e
}

/// One integer (the first column of the first row) from a database, through its own connection.
func sqliteScalar(_ path: String, _ sql: String) throws -> Int64 {
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK else { throw StoreError("cannot open \(path)") }
    defer { sqlite3_close(db) }
    var stmt: OpaquePointer?
    guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else { throw StoreError("\(path): \(String(cString: sqlite3_errmsg(db)))") }
    defer { sqlite3_finalize(stmt) }
    guard sqlite3_step(stmt) == SQLITE_ROW else { throw StoreError("\(path): no row for \(sql)") }
    return sqlite3_column_int64(stmt, 0)
}

/// The text of EXPLAIN QUERY PLAN for `sql` (its `?` bound to nothing).
func queryPlan(_ path: String, _ sql: String) throws -> String {
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK else { throw StoreError("cannot open \(path)") }
    defer { sqlite3_close(db) }
    var stmt: OpaquePointer?
    guard sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN " + sql, -1, &stmt, nil) == SQLITE_OK else { throw StoreError("\(path): \(String(cString: sqlite3_errmsg(db)))") }
    defer { sqlite3_finalize(stmt) }
    var lines: [String] = []
    while sqlite3_step(stmt) == SQLITE_ROW { lines.append(String(cString: sqlite3_column_text(stmt, 3))) }
    return lines.joined(separator: "\n")
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
}

func fileMode(_ path: String) -> Int {
    var st = stat()
    guard stat(path, &st) == 0 else { return -1 }
    return Int(st.st_mode & 0o777)
}

/// Lines reported by a store, from its writer thread.
final class Reports: Sendable {
    let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func options(_ base: StoreOptions = StoreOptions()) -> StoreOptions {
        var o = base
        o.report = { line in self.lines.withLock { $0.append(line) } }
        return o
    }
}

@Suite("Event store: write failures are retried", .serialized)
struct StoreWriteFailureTests {
    /// Makes every write that grows the file fail with SQLITE_FULL, as a full disk does.
    static func fillUp(_ store: EventStore, _ path: String) throws {
        store.flush()
        let pages = try sqliteScalar(path, "PRAGMA page_count")
        try store.executeOnWriter("PRAGMA max_page_count = \(pages)")
    }

    @Test func aTransientFailureIsRetriedAndLosesNothing() throws {
        let path = try temporaryStorePath()
        let reports = Reports()
        var base = StoreOptions(flushIntervalMs: 5)
        base.reportIntervalSeconds = 3600
        let store = try EventStore(path: path, options: reports.options(base))
        defer { store.close() }
        #expect(store.health == .ok)
        for i in 0..<100 { store.append(request(i)) }
        store.flush()
        try Self.fillUp(store, path)
        let held = (100..<2100).map { bulkyRequest($0, ts: nowMicros()) }
        for e in held { #expect(store.append(e)) }
        // The writes fail and are retried with backoff; the events wait in the queue.
        #expect(eventually { store.writeErrors >= 3 })
        guard case .failing(_, let reason) = store.health else { Issue.record("health: \(store.health)"); return }
        #expect(reason.contains(path) && reason.contains("full"), "\(reason)")
        #expect(store.queueDepth == held.count)
        #expect(store.eventsDropped == 0)
        // Feedback is refused at once while the store cannot write: it is never committed after a 503.
        let refusal = Mutex<String?>(nil)
        var feedback = EventRecord(kind: .feedback, timestamp: nowMicros(), experiment: "e")
        feedback.name = "thumbs_up"
        feedback.requestID = "r1"
        store.appendDurably(feedback) { error in refusal.withLock { $0 = error?.message } }
        #expect(refusal.withLock { $0 }?.contains("cannot write since") == true)
        // One line when the failures start; the rest are rate-limited (one an hour here).
        #expect(reports.all.count == 1)
        #expect(reports.all.first?.contains("cannot write") == true)

        try store.executeOnWriter("PRAGMA max_page_count = 1073741823")
        #expect(eventually { store.health == .ok })
        store.flush()
        #expect(store.writeRetries >= 1)
        #expect(store.queueDepth == 0)
        #expect(store.eventsWritten == 100 + held.count)
        #expect(try storedLines(path) == (0..<100).map { request($0).jsonLine() } + held.map { $0.jsonLine() })
        #expect(reports.all.count == 2)
        #expect(reports.all.last?.contains("writes again") == true)
    }

    @Test func healthFailsAndRecoversWithOnlyDurableAppends() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path, options: StoreOptions(flushIntervalMs: 5))
        defer { store.close() }
        try Self.fillUp(store, path)
        func durable(_ n: Int) -> String? {
            let result = Mutex<String??>(nil)
            let done = DispatchSemaphore(value: 0)
            store.appendDurably(bulkyRequest(n, ts: nowMicros())) { error in result.withLock { $0 = .some(error?.message) }; done.signal() }
            _ = done.wait(timeout: .now() + 30)
            return result.withLock { $0 } ?? "no completion"
        }
        var failures = 0
        for i in 0..<20 where durable(i) != nil { failures += 1 }
        #expect(failures > 0)
        #expect(store.health != .ok)
        // Nothing is held: the writer probes the store until it can write, so health comes back by itself.
        try store.executeOnWriter("PRAGMA max_page_count = 1073741823")
        #expect(eventually { store.health == .ok })
        #expect(durable(100) == nil)
        #expect(store.eventsWritten + store.eventsDropped == 21)
        #expect(try storedLines(path).count == store.eventsWritten)
    }

    @Test func plainEventsBeyondTheQueueAreDroppedAndCountedWhileFailing() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path, options: StoreOptions(flushIntervalMs: 5, queueCapacity: 500))
        defer { store.close() }
        try Self.fillUp(store, path)
        var accepted = 0
        for i in 0..<400 where store.append(bulkyRequest(i, ts: nowMicros())) { accepted += 1 }
        #expect(eventually { store.writeErrors >= 1 })
        for i in 400..<1000 where store.append(bulkyRequest(i, ts: nowMicros())) { accepted += 1 }
        #expect(accepted == 500)
        #expect(store.eventsDropped == 500)
        try store.executeOnWriter("PRAGMA max_page_count = 1073741823")
        #expect(eventually { store.health == .ok && store.queueDepth == 0 })
        #expect(store.eventsWritten == 500)
    }
}

@Suite("Event store: opening", .serialized)
struct StoreOpeningTests {
    @Test func aNewStoreAndItsWalAndShmAreReadableByTheOwnerOnly() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        store.append(request(1))
        store.flush()
        for file in [path, path + "-wal", path + "-shm"] {
            #expect(FileManager.default.fileExists(atPath: file), "\(file)")
            #expect(fileMode(file) == 0o600, "\(file): \(String(fileMode(file), radix: 8))")
        }
        store.close()
        #expect(try sqliteScalar(path, "PRAGMA auto_vacuum") == 2)  // incremental
    }

    @Test func garbageInTheMiddleIsRefusedWithAdvice() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        for i in 0..<3000 { store.append(bulkyRequest(i, ts: nowMicros())) }
        store.close()
        let size = fileSize(path)
        #expect(size > 1 << 20)
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: UInt64(size / 2 / 4096 * 4096))
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var garbage = [UInt8](repeating: 0, count: 8192)
        for i in garbage.indices {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            garbage[i] = UInt8(truncatingIfNeeded: state >> 33)
        }
        try handle.write(contentsOf: garbage)
        try handle.close()
        do { _ = try EventStore(path: path); Issue.record("a damaged store was opened") } catch {
            #expect(error.message.contains("\(path): the event store is damaged"), "\(error.message)")
            #expect(error.message.contains("backup") && error.message.contains(".dump"), "\(error.message)")
        }
    }

    @Test func filesThatAreNoStoreGiveErrorsThatSayWhy() throws {
        func message(_ path: String) -> String {
            do { _ = try EventStore(path: path); return "" } catch { return error.message }
        }
        let dir = try temporaryStorePath("folder")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        #expect(message(dir) == "\(dir): is a directory, not an event store")
        let missing = try temporaryStorePath("missing/x.db")
        #expect(message(missing).contains("\(missing): cannot create the event store: the folder"))
        #expect(message(missing).contains("does not exist"))
        let text = try temporaryStorePath("notes.txt")
        try String(repeating: "a line of text\n", count: 1000).write(toFile: text, atomically: true, encoding: .utf8)
        #expect(message(text).contains("\(text): not an event store (not an SQLite database"))
        // A store whose first page (the header) is overwritten.
        let header = try temporaryStorePath()
        let store = try EventStore(path: header)
        for i in 0..<100 { store.append(request(i)) }
        store.close()
        let handle = try #require(FileHandle(forUpdatingAtPath: header))
        try handle.write(contentsOf: [UInt8](repeating: 0x5A, count: 100))
        try handle.close()
        #expect(message(header).contains("\(header): not an event store"), "\(message(header))")
        #expect(throws: StoreError.self) { try StoreReader.experiments(path: header) }
    }
}

@Suite("Event store: schema migrations", .serialized)
struct StoreMigrationTests {
    /// The version 1 schema as the first release created it.
    static let version1 = """
        PRAGMA journal_mode=WAL;
        CREATE TABLE events (
            id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, experiment TEXT NOT NULL, kind TEXT NOT NULL,
            variant TEXT NOT NULL, user_id TEXT NOT NULL, conversation_id TEXT NOT NULL, request_id TEXT NOT NULL,
            status TEXT NOT NULL, qa INTEGER NOT NULL, line TEXT NOT NULL);
        CREATE INDEX events_experiment ON events(experiment, id);
        CREATE INDEX events_request ON events(request_id);
        CREATE INDEX events_conversation ON events(conversation_id);
        PRAGMA user_version = 1;
        """

    static func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }

    /// Exported bytes: what `bakeoff export --include-qa` writes.
    static func exported(_ path: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try StoreReader.forEachLine(path: path, includeQA: true) { bytes += $0; bytes.append(0x0A) }
        return bytes
    }

    @Test func aVersion1StoreIsReadAndUpgradedInPlaceKeepingEveryLine() throws {
        var spec = SimulationSpec(allocation: try Allocation(split: 0.5))
        spec.users = 150
        var events: [EventRecord] = []
        Simulator.run(spec) { events.append($0) }
        var convFeedback = EventRecord(kind: .feedback, timestamp: events[0].timestamp + 1, experiment: spec.experiment)
        convFeedback.conversationID = events[0].conversationID
        convFeedback.userID = events[0].userID
        convFeedback.name = "csat \"quoted\" é"
        convFeedback.value = 4
        events.append(convFeedback)
        let path = try temporaryStorePath()
        var sql = Self.version1 + "\nBEGIN;\n"
        for e in events {
            let kind = e.kind == .request ? "request" : "feedback"
            let conversation = e.conversationID.isEmpty && e.kind == .request ? e.requestID : e.conversationID
            sql += "INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line) VALUES ("
            sql += "\(e.timestamp), \(Self.quoted(e.experiment)), '\(kind)', \(Self.quoted(e.variant)), \(Self.quoted(e.userID)), "
            sql += "\(Self.quoted(conversation)), \(Self.quoted(e.requestID)), \(Self.quoted(e.kind == .request ? e.status : "")), 0, \(Self.quoted(e.jsonLine())));\n"
        }
        sql += "COMMIT;"
        try sqliteShell(path, sql)
        let feedbackEvents = events.filter { $0.kind == .feedback }
        #expect(feedbackEvents.count > 10)

        // This bakeoff reads a version 1 store as it is.
        let before = try Self.exported(path)
        #expect(before == Array(events.map { $0.jsonLine() + "\n" }.joined().utf8))
        let analysisBefore = try Analysis.run(aggregateStore(path: path, options: EventLog.Options()), plan: AnalysisPlan()).render(.json)
        #expect(try sqliteScalar(path, "PRAGMA user_version") == 1)

        // A writer upgrades it in place.
        let store = try EventStore(path: path)
        #expect(try sqliteScalar(path, "PRAGMA user_version") == Int64(StoreSchema.version))
        #expect(try sqliteScalar(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'plans'") == 1)
        let first = try #require(feedbackEvents.first { !$0.requestID.isEmpty })
        let sameTarget = feedbackEvents.filter { $0.requestID == first.requestID && $0.name == first.name }.count
        #expect(store.feedbackCount(requestID: first.requestID, name: first.name) == sameTarget)
        #expect(store.feedbackCount(conversationID: convFeedback.conversationID, name: convFeedback.name) == 1)
        store.append(request(1))
        store.close()
        #expect(try Self.exported(path) == before + Array((request(1).jsonLine() + "\n").utf8))
        #expect(try sqliteScalar(path, "SELECT count(*) FROM events WHERE kind = 'feedback' AND name = ''") == 0)
        #expect(try sqliteScalar(path, "SELECT count(*) FROM events WHERE kind = 'request' AND name != ''") == 0)
        var options = EventLog.Options()
        options.experiment = spec.experiment
        #expect(try Analysis.run(aggregateStore(path: path, options: options), plan: AnalysisPlan()).render(.json) == analysisBefore)
        // Opening again changes nothing.
        try EventStore(path: path).close()
        #expect(try sqliteScalar(path, "PRAGMA user_version") == Int64(StoreSchema.version))
    }

    @Test func feedbackIsCountedPerTargetAndNameThroughAnIndex() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        defer { store.close() }
        store.append(request(1, conversation: "c1"))
        store.append(request(2, conversation: "c1"))
        func feedback(request: String = "", conversation: String, name: String) -> EventRecord {
            var e = EventRecord(kind: .feedback, timestamp: nowMicros(), experiment: "e")
            e.requestID = request
            e.conversationID = conversation
            e.name = name
            e.value = 1
            return e
        }
        for _ in 0..<3 { store.append(feedback(request: "r1", conversation: "c1", name: "thumbs_up")) }
        store.append(feedback(request: "r1", conversation: "c1", name: "csat"))
        store.append(feedback(request: "r2", conversation: "c1", name: "thumbs_up"))
        for _ in 0..<2 { store.append(feedback(conversation: "c1", name: "thumbs_up")) }
        #expect(store.feedbackCount(requestID: "r1", name: "thumbs_up") == 0 || store.eventsWritten > 0)  // committed only
        store.flush()
        #expect(store.feedbackCount(requestID: "r1", name: "thumbs_up") == 3)
        #expect(store.feedbackCount(requestID: "r1", name: "csat") == 1)
        #expect(store.feedbackCount(requestID: "r2", name: "thumbs_up") == 1)
        #expect(store.feedbackCount(requestID: "r3", name: "thumbs_up") == 0)
        #expect(store.feedbackCount(conversationID: "c1", name: "thumbs_up") == 2)
        #expect(store.feedbackCount(conversationID: "c1", name: "csat") == 0)
        // The look-ups' own statements (Reads in EventStore.swift).
        let byRequest = try queryPlan(path, "SELECT count(*) FROM event_rows WHERE request_id = ?1 AND flags & 1 = 1 AND (?2 IS NULL OR name = ?2)")
        #expect(byRequest.contains("event_rows_request"), "\(byRequest)")
        let byConversation = try queryPlan(path, "SELECT count(*) FROM event_rows WHERE conversation = ?1 AND conversation <> '' AND request_id IS NULL AND flags & 1 = 1 AND (?2 IS NULL OR name = ?2)")
        #expect(byConversation.contains("event_rows_conversation"), "\(byConversation)")
        let latest = try queryPlan(path, "SELECT id FROM event_rows WHERE conversation = ?1 AND conversation <> '' AND flags & 1 = 0 ORDER BY id DESC LIMIT 1")
        #expect(latest.contains("event_rows_conversation"), "\(latest)")
        let own = try queryPlan(path, "SELECT id FROM event_rows WHERE request_id = ?1 AND (conversation IS NULL OR conversation = '') AND flags & 1 = 0 ORDER BY id DESC LIMIT 1")
        #expect(own.contains("event_rows_request"), "\(own)")
        let experiment = try queryPlan(path, "SELECT id FROM event_rows WHERE experiment = ?1 AND id > ?2 ORDER BY id")
        #expect(experiment.contains("event_rows_experiment") && !experiment.contains("TEMP B-TREE"), "\(experiment)")
    }
}

@Suite("Event store: bounded growth", .serialized)
struct StoreGrowthTests {
    @Test func retentionDeletesOldEventsInBatchesAndTheFileStopsGrowing() throws {
        let path = try temporaryStorePath()
        var options = StoreOptions(flushIntervalMs: 5, retentionDays: 1)
        options.retentionIntervalSeconds = 0
        options.retentionBatch = 100
        let store = try EventStore(path: path, options: options)
        defer { store.close() }
        let old = nowMicros() - 3 * 86_400_000_000
        var sizes: [Int] = []
        var deleted = 0
        for round in 0..<5 {
            for i in 0..<1000 { store.append(bulkyRequest(round * 1000 + i, ts: old + Int64(i))) }
            store.append(bulkyRequest(100_000 + round, ts: nowMicros()))
            store.flush()
            deleted += 1000
            #expect(eventually { store.eventsDeleted == deleted }, "deleted \(store.eventsDeleted) of \(deleted)")
            sizes.append(fileSize(path))
        }
        #expect(store.retentionBatches >= 50)
        let kept = try storedLines(path)
        #expect(kept.count == 5)
        #expect(kept.allSatisfy { $0.contains("\"request_id\":\"r1000") })
        // The pages of deleted events are reused (and freed): the file does not grow round after round. Each round
        // writes about 1 MB, so without reuse it would grow by 4 MB; a slow machine (suites in parallel) may leave
        // a few batches more in the file at the moment it is measured, hence 256 KB of slack.
        #expect(sizes[4] <= sizes[0] + 256 * 1024, "sizes: \(sizes)")
    }

    /// Review finding: old events committed after newer ones (an imported log) were never deleted, because a
    /// round stopped at the first batch without an old event.
    @Test func retentionFindsOldEventsCommittedAfterNewerOnes() throws {
        let path = try temporaryStorePath()
        var options = StoreOptions(flushIntervalMs: 5, retentionDays: 1)
        options.retentionIntervalSeconds = 0
        options.retentionBatch = 100
        let store = try EventStore(path: path, options: options)
        defer { store.close() }
        for i in 0..<500 { store.append(bulkyRequest(i, ts: nowMicros())) }
        for i in 0..<50 { store.append(bulkyRequest(10_000 + i, ts: nowMicros() - 30 * 86_400_000_000)) }
        store.flush()
        #expect(eventually { store.eventsDeleted == 50 }, "deleted \(store.eventsDeleted) of 50")
        #expect(try storedLines(path).count == 500)
    }

    @Test func theWalIsCutBackAfterACheckpointEvenAfterALongReader() throws {
        let path = try temporaryStorePath()
        var options = StoreOptions(flushIntervalMs: 5)
        options.walLimitBytes = 256 * 1024
        let store = try EventStore(path: path, options: options)
        defer { store.close() }
        store.append(request(0))
        store.flush()
        // A reader inside a transaction keeps the WAL from being checkpointed, so it grows meanwhile.
        var db: OpaquePointer?
        #expect(sqlite3_open(path, &db) == SQLITE_OK)
        #expect(sqlite3_exec(db, "BEGIN; SELECT count(*) FROM events;", nil, nil, nil) == SQLITE_OK)
        for batch in 0..<20 {
            for i in 0..<200 { store.append(bulkyRequest(batch * 200 + i + 1, ts: nowMicros())) }
            store.flush()
        }
        let grown = fileSize(path + "-wal")
        #expect(grown > 2 * options.walLimitBytes, "wal: \(grown)")
        sqlite3_exec(db, "COMMIT", nil, nil, nil)
        sqlite3_close(db)
        // The next commits checkpoint it and start it over, cut back to the limit.
        for n in 0..<5 {
            store.append(request(10_000 + n))
            store.flush()
        }
        #expect(fileSize(path + "-wal") <= options.walLimitBytes, "wal: \(fileSize(path + "-wal"))")
    }
}
