import BakeoffCore
import CSQLite
import Foundation
import Synchronization

/// The SQLite library version the store is linked against.
public var sqliteVersion: String { String(cString: sqlite3_libversion()) }

/// How the store batches its writes, retries them, checks the file and keeps it bounded.
public struct StoreOptions: Sendable {
    /// Plain events are committed at least this often (milliseconds); at most this much is lost on kill -9.
    public var flushIntervalMs: Int = 50
    /// Events waiting for the writer, counting those held for a retry; beyond it plain events are dropped (and counted).
    public var queueCapacity: Int = 100_000
    /// Events older than this many days are deleted, in small batches on the writer thread; nil keeps everything.
    public var retentionDays: Double?
    /// How often (seconds) retention looks for old events; the first look is right after opening.
    public var retentionIntervalSeconds: Double = 600
    /// Events deleted per retention transaction.
    public var retentionBatch: Int = 1000
    /// The write-ahead log is checkpointed once it holds this many bytes and cut back to this size after a
    /// checkpoint (`wal_autocheckpoint`, `journal_size_limit`).
    public var walLimitBytes: Int = 1 << 20
    /// `PRAGMA quick_check` at open stops after this many seconds (a large store is then opened unchecked for the rest).
    public var integrityCheckSeconds: Double = 10
    /// Receives one line when writes start failing, at most one per `reportIntervalSeconds` while they keep
    /// failing, and one when they succeed again (called on the writer thread; keep it short).
    public var report: (@Sendable (String) -> Void)?
    public var reportIntervalSeconds: Double = 60

    public init(flushIntervalMs: Int = 50, queueCapacity: Int = 100_000, retentionDays: Double? = nil,
                report: (@Sendable (String) -> Void)? = nil) {
        self.flushIntervalMs = flushIntervalMs
        self.queueCapacity = queueCapacity
        self.retentionDays = retentionDays
        self.report = report
    }
}

/// Whether the store can write.
public enum StoreHealth: Sendable, Equatable {
    case ok
    /// Writes have failed since `since` (and are retried); `reason` is the last failure.
    case failing(since: Date, reason: String)
}

/// What the gateway needs to know about an earlier request (to attribute feedback to its variant).
public struct RequestInfo: Sendable, Equatable {
    public var experiment: String
    public var variant: String
    public var userID: String
    public var conversationID: String
    public var requestID: String
    /// A QA request (forced into its variant by an admin): its feedback is QA too.
    public var qa: Bool

    public init(experiment: String, variant: String, userID: String, conversationID: String, requestID: String, qa: Bool = false) {
        self.qa = qa
        self.experiment = experiment
        self.variant = variant
        self.userID = userID
        self.conversationID = conversationID
        self.requestID = requestID
    }
}

/// The live gateway's embedded event store: SQLite in WAL mode, written by one thread in group commits.
///
/// Why one writer thread: request threads must never wait for the disk, and one transaction per batch
/// (not per event) is what makes thousands of events per second cheap. `append` is a lock and an array
/// append; the writer wakes every `flushIntervalMs` (or at once for a durable append, `flush` or `close`),
/// takes everything queued and writes it with one prepared INSERT in one transaction.
///
/// Durability: the database runs with `synchronous=NORMAL` in WAL mode, so a committed transaction
/// survives the process being killed (kill -9); plain events still in the queue are lost then, at most
/// one flush interval's worth. A durable append's completion reports success only after its COMMIT.
///
/// No silent loss: a failed write (disk full, I/O error) keeps its plain events and is retried with
/// exponential backoff (50 ms doubling to 5 s) while they fit in the queue; `health` says `failing` with the
/// reason until a write succeeds, `options.report` gets a line, and the counters show it. While failing,
/// durable appends fail at once (the gateway answers 503 and the client retries) rather than wait: a
/// durable event is never committed after its caller was told it failed.
public final class EventStore: @unchecked Sendable {
    public let path: String
    public let options: StoreOptions
    /// How the check at open went (`PRAGMA quick_check`, bounded in time).
    public let integrityCheck: IntegrityCheck
    private let writer: Writer
    private let readLock = NSLock()
    private var reader: Connection?
    private var requestByID: Statement?
    private var requestByConversation: Statement?
    private var feedbackByRequest: Statement?
    private var feedbackByConversation: Statement?

    /// Opens or creates the store (SQLite, WAL, synchronous=NORMAL which survives kill -9 of the process); a
    /// damaged store is refused, an older schema upgraded.
    public init(path: String, options: StoreOptions = StoreOptions()) throws(StoreError) {
        guard options.flushIntervalMs >= 0, options.queueCapacity >= 1, options.retentionBatch >= 1, options.walLimitBytes >= 0,
              options.retentionDays.map({ $0 > 0 }) ?? true else {
            throw StoreError("\(path): invalid store options (flushIntervalMs \(options.flushIntervalMs), queueCapacity \(options.queueCapacity), retentionDays \(options.retentionDays.map { "\($0)" } ?? "none"))")
        }
        self.path = path
        self.options = options
        let connection = try Connection(path: path, readOnly: false, checkSeconds: options.integrityCheckSeconds)
        integrityCheck = connection.integrity
        try connection.execute("PRAGMA synchronous=NORMAL")
        let pageSize = max(try connection.scalar("PRAGMA page_size"), 512)
        try connection.execute("PRAGMA journal_size_limit=\(options.walLimitBytes)")
        try connection.execute("PRAGMA wal_autocheckpoint=\(max(Int64(options.walLimitBytes) / pageSize, 1))")
        let insert = try connection.prepare("""
            INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line, name)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
            """)
        let read = try Connection(path: path, readOnly: true)
        let columns = "experiment, variant, user_id, conversation_id, request_id, qa"
        requestByID = try read.prepare("SELECT \(columns) FROM events WHERE request_id = ?1 AND kind = 'request' ORDER BY id LIMIT 1")
        requestByConversation = try read.prepare("SELECT \(columns) FROM events WHERE conversation_id = ?1 AND kind = 'request' ORDER BY id DESC LIMIT 1")
        // These match the partial indexes' conditions word for word, so SQLite uses them.
        feedbackByRequest = try read.prepare("SELECT count(*) FROM events WHERE kind = 'feedback' AND request_id = ?1 AND (?2 = '' OR name = ?2)")
        feedbackByConversation = try read.prepare("SELECT count(*) FROM events WHERE kind = 'feedback' AND request_id = '' AND conversation_id = ?1 AND (?2 = '' OR name = ?2)")
        reader = read
        writer = try Writer(connection: connection, insert: insert, options: options)
        writer.start()
    }

    deinit { close() }

    /// Enqueues without ever waiting for the disk; false (and counted as dropped) when the queue is full or the store is closed.
    @discardableResult
    public func append(_ event: EventRecord) -> Bool {
        writer.enqueue(.record(event), completion: nil)
    }

    /// Enqueues and calls `completion` only after the transaction holding the event has committed, with
    /// nil, or with an error (queue full, disk error, closed, store failing).
    ///
    /// The completion runs on the writer thread (keep it short; never call `flush` or `close` from it),
    /// except for a closed or failing store, where it runs on the calling thread before this returns. A
    /// durable append makes the writer commit right away rather than wait for the flush interval.
    public func appendDurably(_ event: EventRecord, completion: @escaping @Sendable (StoreError?) -> Void) {
        writer.enqueue(.record(event), completion: completion)
    }

    /// Events waiting for the writer (held for a retry included).
    public var queueDepth: Int { writer.counters.queued }
    /// Events committed.
    public var eventsWritten: Int { writer.counters.written }
    /// Events refused (queue full, closed, durable while failing) or given up (a durable event whose write
    /// failed; plain events still held when the store closes).
    public var eventsDropped: Int { writer.counters.dropped }
    /// Transactions committed (group commits: far fewer than events).
    public var commits: Int { writer.counters.commits }
    /// The last write error, if any write failed.
    public var lastError: StoreError? { writer.counters.lastError }
    /// Failed write attempts (each is retried while its events fit in the queue).
    public var writeErrors: Int { writer.counters.writeErrors }
    /// Write attempts made while the store was failing.
    public var writeRetries: Int { writer.counters.retries }
    /// Events deleted by retention.
    public var eventsDeleted: Int { writer.counters.deleted }
    /// Retention transactions that deleted events (each deletes at most `options.retentionBatch`).
    public var retentionBatches: Int { writer.counters.retentionBatches }
    /// Whether the store can write now.
    public var health: StoreHealth { writer.counters.health }

    /// Runs `sql` on the writer's own connection, between batches (for tests: e.g. `PRAGMA max_page_count`
    /// makes writes fail with SQLITE_FULL as a full disk would).
    package func executeOnWriter(_ sql: String) throws(StoreError) {
        let result = Mutex<StoreError?>(nil)
        let done = DispatchSemaphore(value: 0)
        let submitted = writer.submit { connection in
            do throws(StoreError) { try connection.execute(sql) } catch { result.withLock { $0 = error } }
            done.signal()
        }
        guard submitted else { throw StoreError("\(path): the event store is closed") }
        done.wait()
        if let error = result.withLock({ $0 }) { throw error }
    }

    /// Blocks until everything enqueued before the call is committed, or has failed, or a write attempt after
    /// the call failed (the events are then held for a retry: see `health`).
    public func flush() { writer.flush() }

    /// Flushes, stops the writer thread, closes the database; idempotent. Called on SIGTERM. While the store
    /// is failing, one last attempt is made and what it cannot write is dropped (and counted).
    public func close() {
        // The read connection goes first, so that the writer's connection is the last one and SQLite
        // checkpoints the WAL into the database when it closes.
        readLock.lock()
        requestByID = nil
        requestByConversation = nil
        feedbackByRequest = nil
        feedbackByConversation = nil
        reader = nil
        readLock.unlock()
        writer.stop()
    }

    /// A committed request event by request id (a separate read connection; safe from any thread).
    public func request(id: String) -> RequestInfo? {
        readLock.lock()
        defer { readLock.unlock() }
        return requestByID.flatMap { Self.info($0, id) }
    }

    /// The most recent committed request event of a conversation.
    public func latestRequest(conversation: String) -> RequestInfo? {
        readLock.lock()
        defer { readLock.unlock() }
        return requestByConversation.flatMap { Self.info($0, conversation) }
    }

    /// Committed feedback events named `name` (any name for "") given for the request `requestID` (an index look-up).
    public func feedbackCount(requestID: String, name: String) -> Int {
        readLock.lock()
        defer { readLock.unlock() }
        return feedbackByRequest.map { Self.count($0, requestID, name) } ?? 0
    }

    /// Committed feedback events named `name` (any name for "") given for the conversation `conversationID` as a whole (by
    /// `conversation_id`; feedback on one of its requests counts for that request, not here).
    public func feedbackCount(conversationID: String, name: String) -> Int {
        readLock.lock()
        defer { readLock.unlock() }
        return feedbackByConversation.map { Self.count($0, conversationID, name) } ?? 0
    }

    private static func count(_ s: Statement, _ key: String, _ name: String) -> Int {
        s.bind(1, key)
        s.bind(2, name)
        defer { s.reset() }
        guard (try? s.step()) == true else { return 0 }
        return Int(s.int(0))
    }

    private static func info(_ s: Statement, _ key: String) -> RequestInfo? {
        s.bind(1, key)
        defer { s.reset() }
        guard (try? s.step()) == true else { return nil }
        return RequestInfo(experiment: s.string(0), variant: s.string(1), userID: s.string(2), conversationID: s.string(3), requestID: s.string(4), qa: s.int(5) != 0)
    }

    /// Loads an event log (JSON Lines, or "-" for standard input) into the store, keeping each line as it is;
    /// returns the number of events added.
    ///
    /// Every line is checked first (a malformed one is an error naming the file and line, and nothing is
    /// added); then the lines go through the writer's queue, waiting when it is full, and are flushed.
    public func importLog(path logPath: String) throws -> Int {
        if logPath == "-" {
            // Standard input can be read once: keep the lines of the check for the import.
            var rows: [Row] = []
            try Self.readRows(logPath) { rows.append($0) }
            for row in rows { try writer.enqueueWaiting(row) }
            try flushImport()
            return rows.count
        }
        var count = 0
        try Self.readRows(logPath) { _ in count += 1 }
        try Self.readRows(logPath) { row throws(StoreError) in try writer.enqueueWaiting(row) }
        try flushImport()
        return count
    }

    /// Flushes an import; a store that cannot write ends it with the reason.
    private func flushImport() throws(StoreError) {
        // A passing problem is retried a few times (about 1.5 s) before the import gives up.
        writer.flush(throughFailures: 5)
        if case .failing(_, let reason) = health {
            throw StoreError("\(reason) (the import stopped; the events committed before stay in the store)")
        }
    }

    private static func readRows(_ logPath: String, _ body: (Row) throws(StoreError) -> Void) throws {
        var reader = try LineReader(path: logPath)
        var parser = EventParser()
        do throws(ReadError<EventLogError>) {
            try reader.forEachLine { (line, number) throws(EventLogError) in
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
                let event: EventView
                do throws(EventParseError) { event = try parser.parse(line) } catch {
                    throw EventLogError(path: logPath, line: number, column: error.column, message: error.message)
                }
                do throws(StoreError) { try body(Row(event, line: line)) } catch {
                    throw EventLogError(path: logPath, line: number, message: error.message)
                }
            }
        } catch {
            switch error {
            case .file(let f): throw f
            case .body(let e): throw e
            }
        }
    }
}

/// One row of the events table.
struct Row: Sendable {
    var ts: Int64
    var experiment: String
    var kind: EventKind
    var variant: String
    var userID: String
    var conversationID: String
    var requestID: String
    var status: String
    var qa: Bool
    var line: String
    /// The feedback name; empty for requests.
    var name: String

    init(_ e: EventRecord) {
        ts = e.timestamp
        experiment = e.experiment
        kind = e.kind
        variant = e.variant
        userID = e.userID
        conversationID = e.conversationID.isEmpty && e.kind == .request ? e.requestID : e.conversationID
        requestID = e.requestID
        status = e.kind == .request ? e.status : ""
        qa = e.qa
        line = e.jsonLine()
        name = e.kind == .feedback ? e.name : ""
    }

    init(_ e: EventView, line: UnsafeRawBufferPointer) {
        func s(_ b: UnsafeRawBufferPointer) -> String { String(decoding: b, as: UTF8.self) }
        ts = e.timestamp
        experiment = s(e.experiment)
        kind = e.kind
        variant = s(e.variant)
        userID = s(e.userID)
        conversationID = s(e.conversationID)
        requestID = s(e.requestID)
        status = e.kind == .request ? (e.status.count == 0 ? "ok" : s(e.status)) : ""
        qa = e.qa
        self.line = s(line)
        name = e.kind == .feedback ? s(e.name) : ""
    }
}

/// The writer thread, its queue and counters. Separate from `EventStore` so the thread does not keep the
/// store alive: the store's deinit closes it.
private final class Writer: @unchecked Sendable {
    enum Item {
        case record(EventRecord)
        case row(Row)
    }
    struct Pending {
        var item: Item
        var completion: (@Sendable (StoreError?) -> Void)?
    }
    struct Counters {
        var queued = 0, written = 0, dropped = 0, commits = 0
        var writeErrors = 0, retries = 0, deleted = 0, retentionBatches = 0
        var lastError: StoreError?
        var health = StoreHealth.ok
    }

    /// The first retry waits this long; each further one twice as long, up to `maxBackoff`.
    static let minBackoff = 0.05, maxBackoff = 5.0

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var queue: [Pending] = []
    private var refused: [@Sendable (StoreError?) -> Void] = []
    private var urgent = false
    private var closed = false
    private var exited = false
    private var accepted = 0   // items ever queued
    private var processed = 0  // items written or given up
    private var held = 0       // plain items the writer keeps for a retry (they count toward the capacity)
    private var failedAttempts = 0
    private var tasks: [(Connection) -> Void] = []
    private var stats = Counters()
    private var thread: pthread_t?

    // Used only by the writer thread:
    private var connection: Connection?
    private var insert: Statement?
    private var begin: Statement?
    private var commit: Statement?
    private var probe: Statement?
    private var chunkEnd: Statement?
    private var delete: Statement?
    private let capacity: Int
    private let interval: TimeInterval
    private let path: String
    private let options: StoreOptions

    init(connection: Connection, insert: Statement, options: StoreOptions) throws(StoreError) {
        self.connection = connection
        self.insert = insert
        begin = try connection.prepare("BEGIN IMMEDIATE")
        commit = try connection.prepare("COMMIT")
        // A write that changes nothing but the header: tells whether the store can write when no events wait.
        probe = try connection.prepare("PRAGMA user_version = \(storeSchemaVersion)")
        chunkEnd = try connection.prepare("SELECT max(id) FROM (SELECT id FROM events WHERE id > ?1 ORDER BY id LIMIT ?2)")
        delete = try connection.prepare("DELETE FROM events WHERE id > ?1 AND id <= ?2 AND ts < ?3")
        self.options = options
        capacity = options.queueCapacity
        interval = Double(max(options.flushIntervalMs, 1)) / 1000
        path = connection.path
        queue.reserveCapacity(min(capacity, 4096))
    }

    func start() {
        let t = Thread { [self] in run() }
        t.name = "bakeoff-store-writer"
        t.start()
    }

    var counters: Counters {
        condition.lock()
        defer { condition.unlock() }
        var c = stats
        c.queued = queue.count + held
        return c
    }

    @discardableResult
    func enqueue(_ item: Item, completion: (@Sendable (StoreError?) -> Void)?) -> Bool {
        condition.lock()
        if closed {
            stats.dropped += 1
            condition.unlock()
            completion?(StoreError("\(path): the event store is closed"))
            return false
        }
        if let completion, case .failing(let since, let reason) = stats.health {
            stats.dropped += 1
            condition.unlock()
            completion(StoreError("\(reason) (the event store cannot write since \(Self.timestamp(since)); retrying)"))
            return false
        }
        if queue.count + held >= capacity {
            stats.dropped += 1
            if let completion {
                refused.append(completion)
                condition.signal()
            }
            condition.unlock()
            return false
        }
        queue.append(Pending(item: item, completion: completion))
        accepted += 1
        if completion != nil || queue.count == capacity / 2 {
            urgent = true
            condition.signal()
        }
        condition.unlock()
        return true
    }

    /// Runs `task` on the writer thread with its connection, before the next batch (after the store closed: not at all).
    func submit(_ task: @escaping (Connection) -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !exited else { return false }
        tasks.append(task)
        condition.signal()
        return true
    }

    /// Enqueues, waiting while the queue is full (for bulk loads, never for the request path); an error when
    /// the store is closed or cannot write.
    func enqueueWaiting(_ row: Row) throws(StoreError) {
        condition.lock()
        defer { condition.unlock() }
        while queue.count + held >= capacity && !closed {
            if case .failing(_, let reason) = stats.health { throw StoreError(reason) }
            urgent = true
            condition.signal()
            condition.wait()
        }
        if closed { throw StoreError("\(path): the event store is closed") }
        queue.append(Pending(item: .row(row), completion: nil))
        accepted += 1
    }

    private var onWriterThread: Bool {
        guard let thread else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    /// Waits until what is queued now is written, or `failures + 1` write attempts have failed meanwhile.
    func flush(throughFailures failures: Int = 0) {
        condition.lock()
        defer { condition.unlock() }
        if onWriterThread { return }  // from a completion: waiting would deadlock
        let target = accepted
        let failuresBefore = failedAttempts
        while processed < target && !exited && failedAttempts - failuresBefore <= failures {
            urgent = true
            condition.signal()
            condition.wait()
        }
    }

    func stop() {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        urgent = true
        condition.broadcast()
        if onWriterThread { return }
        while !exited { condition.wait() }
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    private func run() {
        condition.lock()
        thread = pthread_self()
        condition.broadcast()
        var spare: [Pending] = []
        spare.reserveCapacity(min(capacity, 4096))
        var kept: [Pending] = []          // plain events of failed attempts, oldest first (`held` counts them)
        var retryAt: UInt64?              // while failing: when to try again (monotonic ns)
        var backoff = Self.minBackoff
        var lastReport: UInt64 = 0
        var retention = RetentionState(next: options.retentionDays == nil ? nil : 0)
        while true {
            if let retryAt {
                while !closed && refused.isEmpty && tasks.isEmpty && storeMonotonicNanoseconds() < retryAt {
                    _ = condition.wait(until: Date(timeIntervalSinceNow: Double(retryAt &- storeMonotonicNanoseconds()) / 1e9))
                }
            } else if !retention.running {
                let deadline = Date(timeIntervalSinceNow: interval)
                while !urgent && !closed && refused.isEmpty && tasks.isEmpty {
                    if !condition.wait(until: deadline) { break }
                }
            }
            let stopping = closed
            let chores = tasks
            tasks = []
            let due = stopping || retryAt.map { storeMonotonicNanoseconds() >= $0 } ?? true
            var batch = spare
            if due {
                urgent = false
                swap(&batch, &queue)
                if !kept.isEmpty {
                    batch = kept + batch
                    kept = []
                }
            }
            let rejected = refused
            refused = []
            condition.broadcast()  // room in the queue for waiting bulk loads
            condition.unlock()

            let queueFull = StoreError("\(path): the event store's queue is full (\(capacity) events)")
            for completion in rejected { completion(queueFull) }
            if let connection { for task in chores { task(connection) } }
            if !due {
                condition.lock()
                continue
            }
            var error: StoreError?
            if !batch.isEmpty {
                error = write(batch)
            } else if retryAt != nil {
                error = writeProbe()
            }
            let now = storeMonotonicNanoseconds()
            var line: String?
            var failed: [@Sendable (StoreError?) -> Void] = []

            condition.lock()
            if retryAt != nil { stats.retries += 1 }
            if let error {
                failedAttempts += 1
                stats.writeErrors += 1
                stats.lastError = error
                for p in batch {
                    if let completion = p.completion { failed.append(completion) } else if !stopping { kept.append(p) }
                }
                // Durable events are given up (their callers hear of it now); plain ones wait for the retry.
                let givenUp = batch.count - kept.count
                processed += givenUp
                stats.dropped += givenUp
                held = kept.count
                if case .failing(let since, _) = stats.health {
                    stats.health = .failing(since: since, reason: error.message)
                    backoff = min(backoff * 2, Self.maxBackoff)
                    if Double(now &- lastReport) / 1e9 >= options.reportIntervalSeconds {
                        lastReport = now
                        line = "\(error.message); still failing since \(Self.timestamp(since)) (\(stats.writeErrors) failed writes), \(held) events held for the next retry, \(stats.dropped) dropped so far"
                    }
                } else {
                    stats.health = .failing(since: Date(), reason: error.message)
                    backoff = Self.minBackoff
                    lastReport = now
                    line = "\(error.message); the event store cannot write: keeping up to \(capacity) events queued and retrying (durable appends, i.e. feedback, are refused until a write succeeds)"
                }
                retryAt = now &+ UInt64(backoff * 1e9)
            } else {
                if case .failing(let since, _) = stats.health {
                    line = "\(path): the event store writes again after \(Int(Date().timeIntervalSince(since).rounded())) s of failures; \(batch.count) held events written, \(stats.dropped) dropped in all"
                    stats.health = .ok
                }
                retryAt = nil
                backoff = Self.minBackoff
                processed += batch.count
                held = 0
                if !batch.isEmpty {
                    stats.written += batch.count
                    stats.commits += 1
                }
            }
            condition.broadcast()
            condition.unlock()
            if let line { options.report?(line) }
            if error == nil {
                for p in batch { p.completion?(nil) }
            } else {
                for completion in failed { completion(error) }
            }
            batch.removeAll(keepingCapacity: true)
            spare = batch
            if error == nil && !stopping { retainOnce(&retention) }

            condition.lock()
            if stopping && queue.isEmpty && refused.isEmpty { break }
        }
        if let connection { for task in tasks { task(connection) } }
        tasks = []
        insert = nil
        begin = nil
        commit = nil
        probe = nil
        chunkEnd = nil
        delete = nil
        connection = nil
        exited = true
        condition.broadcast()
        condition.unlock()
    }

    /// Where retention is: `next` is when the next round starts (monotonic ns; nil without retention),
    /// `cursor` the last id a running round has looked at.
    struct RetentionState {
        var next: UInt64?
        var cursor: Int64?
        var running: Bool { cursor != nil }
    }

    /// One step of retention, between batches: deletes the old events among the next `retentionBatch` events in
    /// commit order, in one transaction, then frees the pages. A round starts every `retentionIntervalSeconds`
    /// from the oldest events and walks the whole table: events are not always committed in time order (an
    /// imported log, a clock stepped back), so an old one may follow newer ones.
    private func retainOnce(_ state: inout RetentionState) {
        guard let days = options.retentionDays, let next = state.next, let connection, let chunkEnd, let delete,
              let begin, let commit else { return }
        let now = storeMonotonicNanoseconds()
        if state.cursor == nil {
            guard now >= next else { return }
            state.cursor = 0
        }
        let cursor = state.cursor!
        func endRound() {
            state.cursor = nil
            state.next = now &+ UInt64(max(options.retentionIntervalSeconds, 0) * 1e9)
        }
        chunkEnd.bind(1, cursor)
        chunkEnd.bind(2, Int64(options.retentionBatch))
        defer { chunkEnd.reset() }
        guard (try? chunkEnd.step()) == true, sqlite3_column_type(chunkEnd.stmt, 0) != SQLITE_NULL else { return endRound() }
        let end = chunkEnd.int(0)
        chunkEnd.reset()
        var cutoff = timespec()
        clock_gettime(CLOCK_REALTIME, &cutoff)
        let cutoffMicros = Int64(cutoff.tv_sec) * 1_000_000 + Int64(cutoff.tv_nsec) / 1000 - Int64(days * 86_400_000_000)
        var deleted = 0
        do throws(StoreError) {
            _ = try begin.step()
            begin.reset()
            delete.bind(1, cursor)
            delete.bind(2, end)
            delete.bind(3, cutoffMicros)
            do throws(StoreError) {
                _ = try delete.step()
                deleted = connection.changes
                delete.reset()
                _ = try commit.step()
                commit.reset()
            } catch {
                delete.reset()
                commit.reset()
                try? connection.execute("ROLLBACK")
                throw error
            }
        } catch {
            // Retention is tried again next round; a store that cannot write shows it on the next batch.
            begin.reset()
            return endRound()
        }
        condition.lock()
        stats.deleted += deleted
        if deleted > 0 { stats.retentionBatches += 1 }
        condition.unlock()
        state.cursor = end
        // Gives the freed pages back to the file system (a store without auto_vacuum keeps them for reuse).
        if deleted > 0 { try? connection.execute("PRAGMA incremental_vacuum") }
    }

    /// A write that tells whether the store can write again when no events wait for a retry.
    private func writeProbe() -> StoreError? {
        guard let probe else { return StoreError("\(path): the event store is closed") }
        return transaction { () throws(StoreError) in
            defer { probe.reset() }
            _ = try probe.step()
        }
    }

    /// Runs `body` in one write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back when it throws); nil on success.
    private func transaction(_ body: () throws(StoreError) -> Void) -> StoreError? {
        guard let connection, let begin, let commit else { return StoreError("\(path): the event store is closed") }
        // A store deleted or replaced under the gateway would take every write without a trace: fail loudly.
        if connection.fileHasMoved {
            return StoreError("\(path): the store file was deleted, moved or replaced while the gateway ran; nothing more can be written to it: restart the gateway (it creates or opens the store at its path again); events already written to the moved file stay in it, if it still exists")
        }
        do throws(StoreError) {
            _ = try begin.step()
            begin.reset()
            do throws(StoreError) {
                try body()
                _ = try commit.step()
                commit.reset()
            } catch {
                commit.reset()
                try? connection.execute("ROLLBACK")
                throw error
            }
            return nil
        } catch {
            begin.reset()
            return error
        }
    }

    /// Writes a batch in one transaction; nil on success.
    private func write(_ batch: [Pending]) -> StoreError? {
        guard let insert else { return StoreError("\(path): the event store is closed") }
        return transaction { () throws(StoreError) in
            defer { insert.reset() }
            for p in batch {
                let row: Row
                switch p.item {
                case .record(let e): row = Row(e)
                case .row(let r): row = r
                }
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
                _ = try insert.step()
                insert.reset()
            }
        }
    }
}
