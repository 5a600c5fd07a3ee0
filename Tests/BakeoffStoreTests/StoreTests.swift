import BakeoffCore
import BakeoffStore
import CSQLite
import Foundation
import Synchronization
import Testing
import BakeoffReport
import BakeoffSimulation

@Test func sqliteIsLinked() { #expect(sqliteVersion.hasPrefix("3.")) }

/// A fresh directory for one test's database.
func temporaryStorePath(_ name: String = "events.db") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-store-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

func request(_ n: Int, experiment: String = "e", user: String? = nil, conversation: String = "", variant: String = "control") -> EventRecord {
    var e = EventRecord(kind: .request, timestamp: 1_793_491_200_000_000 + Int64(n) * 1000, experiment: experiment)
    e.variant = variant
    e.userID = user ?? "u\(n % 97)"
    e.requestID = "r\(n)"
    e.conversationID = conversation
    e.latencyMs = Double(n % 1000)
    return e
}

func storedLines(_ path: String, experiment: String? = nil, includeQA: Bool = false) throws -> [String] {
    var lines: [String] = []
    try StoreReader.forEachLine(path: path, experiment: experiment, includeQA: includeQA) { lines.append(String(decoding: $0, as: UTF8.self)) }
    return lines
}

/// What the CLI and the gateway do to analyse a store (`StoreAnalysis.aggregate`, outside this module): the
/// experiment chosen by the store, its lines (QA included) fed to the log's aggregator.
func aggregateStore(path: String, options: EventLog.Options) throws -> ExperimentData {
    var selected = options
    selected.experiment = try StoreReader.selectExperiment(path: path, named: options.experiment)
    var lines = EventLog.LineAggregator(source: path, options: selected)
    var number = 0
    try StoreReader.forEachLine(path: path, experiment: selected.experiment, includeQA: true) { line in
        number += 1
        try lines.add(line, number: number)
    }
    return try lines.finish()
}

/// Counts completions from any thread.
final class Completions: Sendable {
    let state = Mutex<(ok: Int, failed: [String])>((0, []))
    func record(_ error: StoreError?) {
        state.withLock { if let error { $0.failed.append(error.message) } else { $0.ok += 1 } }
    }
}

@Suite("Event store", .serialized)
struct StoreTests {
    @Test func concurrentAppendsAreAllWrittenInOrderPerThread() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path, options: StoreOptions(flushIntervalMs: 5))
        let threads = 8, perThread = 2_000
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<perThread {
                #expect(store.append(request(t * perThread + i, user: "t\(t)")))
            }
        }
        store.flush()
        #expect(store.queueDepth == 0)
        #expect(store.eventsWritten == threads * perThread)
        #expect(store.eventsDropped == 0)
        let lines = try storedLines(path)
        #expect(lines.count == threads * perThread)
        #expect(Set(lines).count == lines.count)
        // Each thread's events are stored in the order that thread appended them.
        for t in 0..<threads {
            let mine = lines.filter { $0.contains("\"user_id\":\"t\(t)\"") }
            #expect(mine == (0..<perThread).map { request(t * perThread + $0, user: "t\(t)").jsonLine() })
        }
        store.close()
    }

    @Test func durableCompletionComesAfterTheCommit() throws {
        let path = try temporaryStorePath()
        // A long flush interval: only the durable append can make the writer commit this soon.
        let store = try EventStore(path: path, options: StoreOptions(flushIntervalMs: 60_000))
        defer { store.close() }
        let seen = Mutex<[Int]>([])
        let done = DispatchSemaphore(value: 0)
        let start = Date()
        var feedback = EventRecord(kind: .feedback, timestamp: 1_793_491_200_000_000, experiment: "e")
        feedback.name = "thumbs_up"
        feedback.value = 1
        feedback.requestID = "r1"
        store.append(request(1))
        store.appendDurably(feedback) { error in
            #expect(error == nil)
            // A separate reader sees both the durable event and the plain one queued before it.
            let lines = (try? storedLines(path)) ?? []
            seen.withLock { $0 = [lines.count] }
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(seen.withLock { $0 } == [2])
        #expect(store.request(id: "r1") == RequestInfo(experiment: "e", variant: "control", userID: "u1", conversationID: "r1", requestID: "r1"))
    }

    @Test func aFullQueueDropsNewEventsAndKeepsAcceptedOnes() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path, options: StoreOptions(flushIntervalMs: 60_000, queueCapacity: 100))
        defer { store.close() }
        var accepted = 0, refused = 0
        for i in 0..<1000 {
            if store.append(request(i)) { accepted += 1 } else { refused += 1 }
        }
        // The writer may drain the queue once it is half full, so at least the capacity is accepted.
        #expect(accepted >= 100)
        #expect(refused > 0)
        #expect(store.eventsDropped == refused)
        let failures = Completions()
        let done = DispatchSemaphore(value: 0)
        for i in 0..<200 {
            store.appendDurably(request(10_000 + i)) { error in failures.record(error); done.signal() }
        }
        for _ in 0..<200 { #expect(done.wait(timeout: .now() + 10) == .success) }
        store.flush()
        let (ok, failed) = failures.state.withLock { ($0.ok, $0.failed) }
        #expect(ok + failed.count == 200)
        #expect(failed.allSatisfy { $0.contains("queue is full") && $0.contains(path) })
        #expect(store.eventsWritten == accepted + ok)
        #expect(store.eventsDropped == refused + failed.count)
        #expect(try storedLines(path).count == accepted + ok)
    }

    @Test func closeIsIdempotentAndRefusesLaterAppends() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        for i in 0..<10 { store.append(request(i)) }
        store.close()  // flushes
        store.close()
        #expect(store.eventsWritten == 10)
        #expect(!store.append(request(11)))
        #expect(store.eventsDropped == 1)
        let error = Mutex<String?>(nil)
        store.appendDurably(request(12)) { e in error.withLock { $0 = e?.message } }
        #expect(error.withLock { $0 }?.contains("closed") == true)
        #expect(store.request(id: "r1") == nil)
        store.flush()  // returns at once
        #expect(try storedLines(path).count == 10)
        // Reopening appends after what is there.
        let again = try EventStore(path: path)
        again.append(request(20))
        again.close()
        #expect(try storedLines(path).count == 11)
    }

    @Test func groupCommitsWriteManyEventsPerTransaction() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        defer { store.close() }
        let n = 100_000
        let start = Date()
        for i in 0..<n { store.append(request(i)) }
        let appendSeconds = Date().timeIntervalSince(start)
        store.flush()
        #expect(store.eventsWritten == n)
        #expect(store.commits >= 1)
        #expect(store.commits <= 200, "commits: \(store.commits)")
        #expect(appendSeconds < 5)
        #expect(try StoreReader.experiments(path: path) == ["e"])
    }

    @Test func requestsAreFoundByIdAndConversation() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        defer { store.close() }
        store.append(request(1, user: "a", conversation: "c1"))
        store.append(request(2, user: "a", conversation: "c1", variant: "treatment"))
        store.append(request(3, experiment: "f", user: "b"))
        #expect(store.request(id: "r1") == nil || store.eventsWritten > 0)  // not committed yet, or committed
        store.flush()
        #expect(store.request(id: "r2")?.variant == "treatment")
        #expect(store.request(id: "r3") == RequestInfo(experiment: "f", variant: "control", userID: "b", conversationID: "r3", requestID: "r3"))
        #expect(store.latestRequest(conversation: "c1")?.requestID == "r2")
        #expect(store.latestRequest(conversation: "r3")?.requestID == "r3")
        #expect(store.request(id: "nope") == nil)
        #expect(try StoreReader.experiments(path: path) == ["e", "f"])
        #expect(try storedLines(path, experiment: "f").count == 1)
    }

    @Test func qaEventsAreStoredAndExportedOnlyWhenAsked() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        var qa = request(2)
        qa.qa = true
        qa.prompt = "hello"
        store.append(request(1))
        store.append(qa)
        store.close()
        #expect(try storedLines(path) == [request(1).jsonLine()])
        #expect(try storedLines(path, includeQA: true) == [request(1).jsonLine(), qa.jsonLine()])
        let data = try aggregateStore(path: path, options: EventLog.Options())
        #expect(data.requestEvents == 1)
        #expect(data.dataQuality.qaRequestsExcluded == 1)
    }

    @Test func badPathsGiveClearErrors() throws {
        func message(_ path: String) -> String {
            do { _ = try EventStore(path: path); return "" } catch { return error.message }
        }
        let notSQLite = try temporaryStorePath("notes.txt")
        try String(repeating: "not a database\n", count: 100).write(toFile: notSQLite, atomically: true, encoding: .utf8)
        #expect(message(notSQLite).contains(notSQLite))
        #expect(message(notSQLite).contains("not an event store"))
        #expect(throws: StoreError.self) { try StoreReader.experiments(path: notSQLite) }

        let dir = FileManager.default.temporaryDirectory.path
        #expect(message(dir).contains("\(dir): is a directory"))
        #expect(message("").contains("no database path"))
        #expect(message("/nonexistent-dir/x.db").contains("/nonexistent-dir/x.db"))
        do { _ = try StoreReader.experiments(path: "/nonexistent-dir/x.db"); Issue.record("no error") } catch {
            #expect(error.message.contains("/nonexistent-dir/x.db: cannot open"))
        }
    }

    @Test func aNewerSchemaOrAForeignDatabaseIsRefused() throws {
        let path = try temporaryStorePath()
        try EventStore(path: path).close()
        try sqliteShell(path, "PRAGMA user_version = 7;")
        do { _ = try EventStore(path: path); Issue.record("no error") } catch {
            #expect(error.message.contains(path))
            #expect(error.message.contains("schema version 7"))
            #expect(error.kind == .newerSchema(version: 7, supported: StoreSchema.version))
        }
        let foreign = try temporaryStorePath()
        try sqliteShell(foreign, "CREATE TABLE t(x);")
        do { _ = try EventStore(path: foreign); Issue.record("no error") } catch {
            #expect(error.message.contains("\(foreign): a database that is not an event store (it has other tables"))
            #expect(error.kind == .notAStore)
        }
    }

    @Test func readersWorkWhileTheGatewayWrites() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path, options: StoreOptions(flushIntervalMs: 1))
        defer { store.close() }
        let writing = Atomic<Bool>(true)
        let writer = Thread {
            var i = 0
            while writing.load(ordering: .relaxed) { store.append(request(i)); i += 1; if i % 100 == 0 { usleep(100) } }
        }
        writer.start()
        var last = 0
        for _ in 0..<20 {
            let n = try storedLines(path).count
            #expect(n >= last)
            last = n
            usleep(2000)
        }
        writing.store(false, ordering: .relaxed)
        store.flush()
        #expect(try storedLines(path).count >= last)
    }

    @Test func importKeepsLinesAndAnalysisMatchesTheLog() throws {
        var spec = SimulationSpec(allocation: try Allocation(split: 0.3))
        spec.users = 120
        var text = ""
        Simulator.run(spec) { text += $0.jsonLine() + "\n" }
        // A line with microseconds and extra keys survives as it is.
        text += #"{"event":"request","ts":"2026-11-01T10:00:00.123456Z","experiment":"\#(spec.experiment)","variant":"control","user_id":"x","request_id":"rx","latency_ms":1,"extra":[1]}"# + "\n\n"
        let log = try temporaryStorePath("log.jsonl")
        try text.write(toFile: log, atomically: true, encoding: .utf8)
        let path = try temporaryStorePath()
        let store = try EventStore(path: path, options: StoreOptions(queueCapacity: 1000))
        let count = try store.importLog(path: log)
        store.close()
        let expected = text.split(separator: "\n").map(String.init)
        #expect(count == expected.count)
        #expect(try storedLines(path) == expected)
        let fromLog = try EventLog.aggregate(path: log, options: EventLog.Options())
        let fromStore = try aggregateStore(path: path, options: EventLog.Options())
        #expect(try Analysis.run(fromLog, plan: AnalysisPlan()).render(.json) == Analysis.run(fromStore, plan: AnalysisPlan()).render(.json))
    }

    @Test func importStopsAtABadLineWithoutAddingAnything() throws {
        let log = try temporaryStorePath("bad.jsonl")
        try (request(1).jsonLine() + "\n{\"event\":\n").write(toFile: log, atomically: true, encoding: .utf8)
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        defer { store.close() }
        #expect { try store.importLog(path: log) } throws: { "\($0)".contains("\(log):2:") }
        store.flush()
        #expect(store.eventsWritten == 0)
    }

    @Test func analysisNamesTheExperimentsOfAStore() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        store.append(request(1))
        store.append(request(2, experiment: "f"))
        store.close()
        #expect { try aggregateStore(path: path, options: EventLog.Options()) } throws: {
            "\($0)".contains("several experiments: e (1 events), f (1 events)") && "\($0)".contains(path)
        }
        var options = EventLog.Options()
        options.experiment = "g"
        #expect { try aggregateStore(path: path, options: options) } throws: { "\($0)".contains("experiment \"g\" not found") }
        options.experiment = "f"
        #expect(try aggregateStore(path: path, options: options).requestEvents == 1)
        let empty = try temporaryStorePath()
        try EventStore(path: empty).close()
        #expect { try aggregateStore(path: empty, options: EventLog.Options()) } throws: { "\($0)".contains("empty") }
    }

    /// The names by seeking the index equal the names by counting every event.
    @Test func experimentNamesBySeekingEqualThoseByCounting() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        for (i, name) in ["b", "a", "", "a b", "é", "b", "z<>"].enumerated() { store.append(request(i + 1, experiment: name)) }
        store.close()
        #expect(try StoreReader.experimentNames(path: path) == StoreReader.experiments(path: path).sorted())
        let empty = try temporaryStorePath()
        try EventStore(path: empty).close()
        #expect(try StoreReader.experimentNames(path: empty).isEmpty)
    }

    @Test func choosingAnExperimentGivesErrorsCallersCanMatchAndNoOptionNames() throws {
        let path = try temporaryStorePath()
        let empty = try temporaryStorePath()
        try EventStore(path: empty).close()
        func error(_ path: String, _ name: String?) -> StoreError? {
            do { _ = try StoreReader.selectExperiment(path: path, named: name); return nil } catch { return error }
        }
        let isEmpty = try #require(error(empty, nil))
        #expect(isEmpty.kind == .empty)
        #expect(isEmpty.path == empty)
        #expect(isEmpty == StoreError.empty(path: empty))
        #expect(error(empty, "e")?.kind == .empty)

        let store = try EventStore(path: path)
        store.append(request(1))
        store.append(request(2))
        store.append(request(3, experiment: "f"))
        store.close()
        let counts = [ExperimentCount(name: "e", count: 2), ExperimentCount(name: "f", count: 1)]
        #expect(try StoreReader.experimentCounts(path: path) == counts)
        let several = try #require(error(path, nil))
        #expect(several.kind == .severalExperiments(counts))
        #expect(several.message == "\(path): the store holds several experiments: e (2 events), f (1 events)")
        let missing = try #require(error(path, "g"))
        #expect(missing.kind == .experimentNotFound(name: "g", available: counts))
        #expect(missing.message == "\(path): experiment \"g\" not found; the store holds: e (2 events), f (1 events)")
        #expect(try StoreReader.selectExperiment(path: path, named: "f") == "f")
        // The library names no command-line option: the tool adds its own hints.
        for e in [isEmpty, several, missing] { #expect(!e.message.contains("--"), "\(e.message)") }
    }
}

/// Runs SQL on a database with SQLite directly (to make files the store must refuse).
func sqliteShell(_ path: String, _ sql: String) throws {
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK else { throw StoreError("cannot open \(path)") }
    defer { sqlite3_close(db) }
    guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw StoreError("\(path): \(String(cString: sqlite3_errmsg(db)))") }
}
