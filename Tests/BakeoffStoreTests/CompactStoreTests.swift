import BakeoffCore
import BakeoffStore
import CSQLite
import Foundation
import Testing

/// The compact layout (schema version 5): small on disk, and every reader gets back the very lines it got before.
@Suite("Event store: compact rows", .serialized)
struct CompactStoreTests {
    /// Writes `events` through a store's writer and closes it (the WAL checkpointed into the file).
    static func store(_ events: [EventRecord], at path: String) throws {
        let store = try EventStore(path: path, options: StoreOptions(queueCapacity: events.count + 1))
        for e in events { #expect(store.append(e)) }
        store.close()
        #expect(store.eventsWritten == events.count)
    }

    static func lines(_ path: String) throws -> [String] { try storedLines(path, includeQA: true) }

    static func ids(_ path: String, experiment: String) throws -> [Int64] {
        var ids: [Int64] = []
        try StoreReader.forEachEvent(path: path, experiment: experiment) { id, _, _ in ids.append(id) }
        return ids
    }

    @Test func aGatewaysRequestEventTakesAtMost250BytesAndEveryLineComesBack() throws {
        let events = StoreWorkload.events(requests: 100_000, users: 10_000)
        #expect(events.filter { $0.kind == .request }.count == 100_000)
        let path = try temporaryStorePath()
        try Self.store(events, at: path)
        let perEvent = Double(fileSize(path)) / Double(events.count)
        print("compact store: \(events.count) events, \(fileSize(path)) bytes, \(String(format: "%.1f", perEvent)) bytes per event")
        #expect(perEvent <= 250)
        #expect(try sqliteScalar(path, "SELECT count(*) FROM event_rows WHERE line IS NOT NULL") == 0)
        let read = try Self.lines(path)
        #expect(read.count == events.count)
        #expect(read == events.map { $0.jsonLine() })
        // Per experiment, in commit order, with the event's own microseconds.
        var times: [Int64] = []
        try StoreReader.forEachEvent(path: path, experiment: "router-small") { _, ts, _ in times.append(ts) }
        #expect(times == events.filter { $0.experiment == "router-small" }.map(\.timestamp))
    }

    /// Events whose lines are odd in every way a record allows.
    static func oddEvents() -> [EventRecord] {
        let gatewayID = "req_0123456789abcdef01234567"
        var events: [EventRecord] = []
        func add(_ kind: EventKind = .request, ts: Int64 = 1_780_000_000_123_456, _ change: (inout EventRecord) -> Void) {
            var e = EventRecord(kind: kind, timestamp: ts, experiment: "odd")
            if kind == .request {
                e.variant = "control"
                e.userID = "u"
                e.requestID = "req_\(String(format: "%024x", events.count))"
                e.conversationID = e.requestID
                e.latencyMs = 12.5
            } else {
                e.requestID = gatewayID
                e.name = "thumbs_up"
                e.value = 1
            }
            change(&e)
            events.append(e)
        }
        add { $0.requestID = gatewayID; $0.conversationID = gatewayID; $0.userID = gatewayID }
        add { $0.conversationID = "" }                                   // no conversation id in the line
        add { $0.conversationID = "named \"conversation\"" }
        add { $0.conversationID = "req_ffffffffffffffffffffffff" }         // a request id's shape, another request's
        add { $0.requestID = "req_0123456789ABCDEF01234567" }              // upper case: kept as text
        add { $0.requestID = "req_0123456789abcdef0123456" }               // 23 digits
        add { $0.requestID = "req_0123456789abcdef0123456g" }
        add { $0.requestID = "r-7"; $0.conversationID = "" }
        add { $0.userID = "" }
        add { $0.userID = "quote \" backslash \\ tab \t newline \n nul \u{0} bell \u{7} del \u{7F}" }
        add { $0.userID = "caf\u{E9}" }                                   // é composed ...
        add { $0.userID = "cafe\u{301}" }                                 // ... and not: two users
        add { $0.userID = "用户 👩‍💻"; $0.experiment = "实验 ü"; $0.variant = "vариант" }
        add { $0.latencyMs = nil; $0.ttftMs = nil }
        add { $0.latencyMs = .nan; $0.ttftMs = .infinity }
        add { $0.latencyMs = -0.0; $0.ttftMs = 5 }
        add { $0.latencyMs = 1e300; $0.ttftMs = 1e-7 }
        add { $0.latencyMs = 0.1; $0.ttftMs = 1e15 }
        add { $0.latencyMs = 123.456789012; $0.ttftMs = 9_007_199_254.740993 }
        add { $0.inputTokens = 0; $0.outputTokens = Int.max }
        add { $0.inputTokens = -3; $0.outputTokens = nil; $0.usageMissing = true }
        add { $0.status = "upstream_error" }
        add { $0.status = "" }
        add { $0.status = "état \"x\"" }
        add { $0.qa = true }
        add(ts: 0) { _ in }
        add(ts: -1) { _ in }
        add(ts: -999) { _ in }
        add(ts: -1000) { _ in }
        add(ts: -86_400_000_001) { _ in }
        add(ts: -62_167_219_200_000_001) { _ in }                          // before year 0
        add(ts: 253_402_300_800_000_000) { _ in }                           // year 10000
        add(ts: 1_780_000_000_999_999) { _ in }
        add { $0.prompt = "Hello \"there\"\n\u{1F600}"; $0.response = "" }
        add { $0.messages = #"[{"role":"system","content":"Be brief"},{"role":"user","content":[{"type":"text","text":"hé"}]}]"#; $0.prompt = "hé"; $0.response = "ok" }
        add(.feedback) { _ in }
        add(.feedback) { $0.conversationID = gatewayID; $0.userID = "u" }
        add(.feedback) { $0.requestID = ""; $0.conversationID = "named \"conversation\""; $0.name = "csat"; $0.value = 4.5 }
        add(.feedback) { $0.variant = "treatment"; $0.value = -0.25 }       // a feedback's variant is not in its line
        add(.feedback) { $0.value = .nan; $0.name = "" }
        add(.feedback) { $0.value = 1e-300; $0.name = "naïve\u{0}" }
        add(.feedback) { $0.qa = true; $0.value = 0 }
        add(.feedback) { $0.requestID = "not-a-gateway-id"; $0.userID = "not-a-gateway-id" }
        return events
    }

    @Test func oddEventsComeBackByteForByteAndAreFound() throws {
        let events = Self.oddEvents()
        let path = try temporaryStorePath()
        try Self.store(events, at: path)
        let read = try Self.lines(path)
        #expect(read.count == events.count)
        for (got, e) in zip(read, events) { #expect(got == e.jsonLine()) }
        #expect(try storedLines(path, experiment: "odd").count == events.filter { $0.experiment == "odd" && !$0.qa }.count)
        #expect(try StoreReader.experiments(path: path) == ["odd", "实验 ü"])
        #expect(try StoreReader.experimentCounts(path: path).map(\.count) == [events.count - 1, 1])
        #expect(try StoreReader.experimentNames(path: path) == ["odd", "实验 ü"])

        let store = try EventStore(path: path)
        defer { store.close() }
        let gateway = try #require(store.request(id: "req_0123456789abcdef01234567"))
        #expect(gateway == RequestInfo(experiment: "odd", variant: "control", userID: "req_0123456789abcdef01234567",
                                       conversationID: "req_0123456789abcdef01234567", requestID: "req_0123456789abcdef01234567"))
        #expect(store.request(id: "req_0123456789ABCDEF01234567")?.requestID == "req_0123456789ABCDEF01234567")
        #expect(store.request(id: "r-7")?.conversationID == "r-7")
        #expect(store.latestRequest(conversation: "r-7")?.requestID == "r-7")
        #expect(store.latestRequest(conversation: "req_0123456789abcdef01234567")?.requestID == "req_0123456789abcdef01234567")
        #expect(store.latestRequest(conversation: "named \"conversation\"")?.requestID == events[2].requestID)
        #expect(store.latestRequest(conversation: "req_ffffffffffffffffffffffff")?.requestID == events[3].requestID)
        #expect(store.request(id: "req_ffffffffffffffffffffffff") == nil)
        #expect(store.request(id: events[11].requestID)?.userID == "cafe\u{301}")
        #expect(store.request(id: events[11].requestID)?.userID.utf8.count == 6)
        #expect(store.request(id: events[24].requestID)?.qa == true)
        #expect(store.feedbackCount(requestID: "req_0123456789abcdef01234567", name: "thumbs_up") == 4)
        #expect(store.feedbackCount(requestID: "req_0123456789abcdef01234567", name: "") == 6)
        #expect(store.feedbackCount(requestID: "req_0123456789abcdef01234567", name: "never") == 0)
        #expect(store.feedbackCount(requestID: "not-a-gateway-id", name: "thumbs_up") == 1)
        #expect(store.feedbackCount(conversationID: "named \"conversation\"", name: "csat") == 1)
        #expect(store.feedbackCount(conversationID: "named \"conversation\"", name: "thumbs_up") == 0)
        #expect(store.feedbackCount(conversationID: "req_0123456789abcdef01234567", name: "") == 0)
    }

    /// Lines as other tools write them: each is kept whole where the columns cannot give it back.
    static let importedLines = [
        #"{"event":"request","ts":"2026-11-01T10:00:00.000Z","experiment":"imp","variant":"a","user_id":"u1","request_id":"r1","latency_ms":10,"status":"ok"}"#,
        #"{"event":"request","ts":"2026-11-01T10:00:00.001Z","experiment":"imp","variant":"a","user_id":"u1","conversation_id":"c1","request_id":"r2","latency_ms":10.25,"status":"ok","usage_missing":true}"#,
        #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"imp","variant":"a","user_id":"u1","request_id":"r3","latency_ms":10}"#,
        #"{"event":"request","ts":"2026-11-01T10:00:00.123456Z","experiment":"imp","variant":"a","user_id":"u1","request_id":"r4","latency_ms":10,"status":"ok"}"#,
        #"{"event":"request","ts":"2026-11-01T11:00:00+01:00","experiment":"imp","variant":"a","user_id":"u1","request_id":"r5","latency_ms":10,"status":"ok"}"#,
        #"{ "event": "request", "ts": "2026-11-01T10:00:01.000Z", "experiment": "imp", "variant": "a", "user_id": "u2", "request_id": "r6", "latency_ms": 1.0e1, "status": "ok" }"#,
        #"{"experiment":"imp","event":"request","ts":"2026-11-01T10:00:02.000Z","variant":"a","user_id":"u2","request_id":"r7","latency_ms":10,"status":"ok"}"#,
        #"{"event":"request","ts":"2026-11-01T10:00:03.000Z","experiment":"imp","variant":"a","user_id":"u2","request_id":"r8","latency_ms":10,"status":"ok","region":"eu","tags":["x",{"y":null}]}"#,
        #"{"event":"request","ts":"2026-11-01T10:00:04.000Z","experiment":"imp","variant":"a","user_id":"\u00e9\/","request_id":"r9","latency_ms":10,"status":"ok"}"#,
        #"{"event":"request","ts":"2026-11-01T10:00:05.000Z","experiment":"imp","variant":"a","user_id":"u3","request_id":"r10","latency_ms":10,"input_tokens":12.5,"status":"ok"}"#,
        #"{"event":"request","ts":"2026-11-01T10:00:06.000Z","experiment":"imp","variant":"a","user_id":"u3","request_id":"r11","latency_ms":10,"status":"ok","qa":false}"#,
        #"{"event":"feedback","ts":"2026-11-01T10:00:07.000Z","experiment":"imp","user_id":"u1","request_id":"r1","name":"thumbs_up","value":true}"#,
        #"{"event":"feedback","ts":"2026-11-01T10:00:08.000Z","experiment":"imp","user_id":"u1","request_id":"r1","name":"thumbs_up","value":1}"#,
        #"{"event":"feedback","ts":"2026-11-01T10:00:09.000Z","experiment":"imp","variant":"a","user_id":"u1","conversation_id":"c1","name":"csat","value":5}"#,
        #"{"event":"request","ts":"2026-11-01T10:00:10.000Z","experiment":"imp","variant":"a","user_id":"u4","conversation_id":"c9","request_id":"req_00000000000000000000000a","latency_ms":10,"ttft_ms":2.5,"input_tokens":3,"output_tokens":4,"status":"ok","qa":true,"prompt":"p","messages":[{"role":"user","content":"p"}],"response":"r"}"#,
    ]

    /// Which of `importedLines` the columns give back (the rest are kept whole).
    static let rebuiltLines: Set<Int> = [0, 1, 12, 14]

    @Test func importedLinesComeBackByteForByteAndOnlyOddOnesAreKeptWhole() throws {
        let path = try temporaryStorePath()
        let log = (path as NSString).deletingLastPathComponent + "/import.jsonl"
        try (Self.importedLines.joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        let store = try EventStore(path: path)
        #expect(try store.importLog(path: log) == Self.importedLines.count)
        #expect(store.feedbackCount(requestID: "r1", name: "thumbs_up") == 2)
        #expect(store.feedbackCount(conversationID: "c1", name: "csat") == 1)
        #expect(store.latestRequest(conversation: "r1")?.requestID == "r1")
        #expect(store.latestRequest(conversation: "c1")?.requestID == "r2")
        store.close()
        #expect(try Self.lines(path) == Self.importedLines)
        #expect(try sqliteScalar(path, "SELECT count(*) FROM event_rows WHERE line IS NULL") == Int64(Self.rebuiltLines.count))
    }

    @Test func aVersion4StoreIsConvertedInPlaceKeepingIdsLinesAndLookUps() throws {
        let path = try temporaryStorePath()
        var events = StoreWorkload.events(requests: 3000, users: 300, seed: 7) + Self.oddEvents()
        var random = Seeded(3)
        events.shuffle(using: &random)
        try LegacyStore.write(events, path: path, batch: 500)
        try LegacyStore.importLines(Self.importedLines, path: path)
        // A row a tool wrote with SQL, whose line is not an event's: kept as it is.
        try sqliteShell(path, """
            INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line, name)
            VALUES (5, 'odd', 'feedback', 'control', 'u', 'c', 'r', '', 0, '{"event":"feedback","name":"thumbs_up"}', 'thumbs_up');
            """)
        #expect(try sqliteScalar(path, "PRAGMA user_version") == 4)
        let before = try Self.lines(path)
        #expect(before.count == events.count + Self.importedLines.count + 1)
        #expect(Array(before.prefix(events.count)) == events.map { $0.jsonLine() })
        let idsBefore = try Self.ids(path, experiment: "support-bot-v2")
        let sizeBefore = fileSize(path)

        let store = try EventStore(path: path)
        #expect(try sqliteScalar(path, "PRAGMA user_version") == 5)
        let gatewayRequest = try #require(events.first { $0.kind == .request && $0.requestID.hasPrefix("req_") && $0.experiment == "support-bot-v2" })
        #expect(store.request(id: gatewayRequest.requestID)?.userID == gatewayRequest.userID)
        let feedback = try #require(events.first { $0.kind == .feedback && !$0.requestID.isEmpty })
        let sameTarget = events.filter { $0.kind == .feedback && $0.requestID == feedback.requestID && $0.name == feedback.name }.count
        #expect(store.feedbackCount(requestID: feedback.requestID, name: feedback.name) == sameTarget)
        #expect(store.feedbackCount(requestID: "r", name: "thumbs_up") == 1)
        #expect(store.feedbackCount(conversationID: "c1", name: "csat") == 1)
        store.append(request(1))
        store.close()
        #expect(try Self.lines(path) == before + [request(1).jsonLine()])
        #expect(try Self.ids(path, experiment: "support-bot-v2") == idsBefore)
        #expect(fileSize(path) < sizeBefore / 2, "\(fileSize(path)) bytes after, \(sizeBefore) before")
        // SQL written against the old table reads the view.
        #expect(try sqliteScalar(path, "SELECT count(*) FROM events WHERE kind = 'feedback' AND name = 'thumbs_up' AND request_id = '\(feedback.requestID)'")
                == Int64(events.filter { $0.kind == .feedback && $0.requestID == feedback.requestID && $0.name == "thumbs_up" }.count))
        // Every line but the one that is no event's.
        #expect(try sqliteScalar(path, "SELECT count(*) FROM events WHERE json_extract(line, '$.experiment') = experiment") == Int64(before.count))
        // Opening again changes nothing.
        try EventStore(path: path).close()
        #expect(try sqliteScalar(path, "PRAGMA user_version") == 5)
    }

    @Test func rowsInsertedIntoTheViewAreReadAsTheyWereAndDeletedThroughIt() throws {
        let path = try temporaryStorePath()
        try Self.store([request(1)], at: path)
        let line = #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"wh","variant":"a","user_id":"w1","request_id":"wh-1","latency_ms":3,"output_tokens":7,"status":"ok","source":"warehouse"}"#
        try sqliteShell(path, """
            INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line, name)
            VALUES (1793527200000000, 'wh', 'request', 'a', 'w1', 'wh-1', 'wh-1', 'ok', 0, '\(line)', ''),
                   (1793527201000000, 'wh', 'feedback', '', 'w1', 'wh-1', 'wh-1', '', 1, '{"x":1}', 'thumbs_up');
            """)
        #expect(try Self.lines(path) == [request(1).jsonLine(), line, #"{"x":1}"#])
        #expect(try sqliteRows(path, "SELECT kind, variant, user_id, conversation_id, request_id, status, qa, name FROM events WHERE experiment = 'wh'")
                == [["request", "a", "w1", "wh-1", "wh-1", "ok", "0", ""], ["feedback", "", "w1", "wh-1", "wh-1", "", "1", "thumbs_up"]])
        let store = try EventStore(path: path)
        #expect(store.request(id: "wh-1")?.userID == "w1")
        #expect(store.latestRequest(conversation: "wh-1")?.requestID == "wh-1")
        #expect(store.feedbackCount(requestID: "wh-1", name: "thumbs_up") == 1)
        store.close()
        try sqliteShell(path, "DELETE FROM events WHERE experiment = 'wh'")
        #expect(try Self.lines(path) == [request(1).jsonLine()])
    }

    @Test func theViewShowsTheOldColumnsAndLinesWithTheSameValues() throws {
        // SQLite's dates end at the years 0 and 9999, its JSON strings at a NUL; -0 is written 0 by one side only.
        let events = Self.oddEvents().filter {
            (0..<253_402_300_800_000_000).contains($0.timestamp) && !$0.userID.contains("\u{0}") && !$0.name.contains("\u{0}")
                && $0.latencyMs?.sign != .minus
        }
        let path = try temporaryStorePath()
        try Self.store(events, at: path)
        let legacy = try temporaryStorePath()
        try LegacyStore.write(events, path: legacy)
        // Every old column, and the values of each line's fields.
        let columns = "id, ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, name"
        let fields = ["event", "ts", "experiment", "variant", "user_id", "conversation_id", "request_id", "latency_ms", "ttft_ms",
                      "input_tokens", "output_tokens", "status", "usage_missing", "name", "value", "qa", "prompt", "messages", "response"]
            .map { "json_extract(line, '$.\($0)')" }.joined(separator: ", ")
        let sql = "SELECT \(columns), \(fields) FROM events WHERE json_valid(line) ORDER BY id"
        #expect(try sqliteRows(path, sql) == sqliteRows(legacy, sql))
        #expect(try sqliteRows(path, sql).count == events.count)
    }
}

/// Every row of a query, each value as text (nil for NULL).
func sqliteRows(_ path: String, _ sql: String) throws -> [[String?]] {
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK else { throw StoreError("cannot open \(path)") }
    defer { sqlite3_close(db) }
    var stmt: OpaquePointer?
    guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else { throw StoreError("\(path): \(String(cString: sqlite3_errmsg(db)))") }
    defer { sqlite3_finalize(stmt) }
    var rows: [[String?]] = []
    while sqlite3_step(stmt) == SQLITE_ROW {
        rows.append((0..<sqlite3_column_count(stmt)).map { i in sqlite3_column_text(stmt, i).map { String(cString: $0) } })
    }
    return rows
}

/// A seeded generator for shuffles.
struct Seeded: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
