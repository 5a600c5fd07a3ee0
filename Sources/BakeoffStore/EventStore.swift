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
    /// In a store several gateways share (PostgreSQL): this gateway's plans, told to the others and compared
    /// with theirs every few seconds (see `ReplicaPlans.differing`). SQLite stores ignore it.
    public var replica: ReplicaPlans?
    /// PostgreSQL: seconds a statement may go without an answer before the write counts as failed (and the
    /// connection is made again), and a second more per 10,000 events of a large batch; look-ups wait at most
    /// 2 s. A server that stops answering must not hold the writer, and feedback waiting on it, for long.
    public var answerTimeoutSeconds: Double = 5

    /// Refuses options no store can work with.
    func check(path: String) throws(StoreError) {
        guard flushIntervalMs >= 0, queueCapacity >= 1, retentionBatch >= 1, walLimitBytes >= 0, retentionDays.map({ $0 > 0 }) ?? true,
              answerTimeoutSeconds > 0 else {
            throw StoreError(.invalidOptions, path: path, "\(path): invalid store options (flushIntervalMs \(flushIntervalMs), queueCapacity \(queueCapacity), retentionDays \(retentionDays.map { "\($0)" } ?? "none"), answerTimeoutSeconds \(answerTimeoutSeconds))")
        }
    }

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
public final class EventStore: Sendable {
    /// Whether a store could be opened for writing at `path`, without creating or opening it: an existing file
    /// must be writable, a new one's folder must exist and be writable (what `serve --check` checks).
    public static func checkLocation(_ path: String) throws(StoreError) {
        if access(path, F_OK) == 0 {
            if access(path, W_OK) != 0 { throw Connection.cannotCreate(path, errno: errno) }
            return
        }
        let folder = folderOf(path)
        if access(folder, W_OK) != 0 { throw Connection.cannotCreate(path, errno: errno) }
    }

    public let path: String
    public let options: StoreOptions
    /// How the check at open went (`PRAGMA quick_check`, bounded in time).
    public let integrityCheck: IntegrityCheck
    private let writer: Writer
    /// The read connection and its prepared look-ups, used by one caller at a time; nil once closed.
    private let reads: Mutex<Reads?>
    /// A shared store's look-ups (PostgreSQL), safe from any thread on their own.
    private let shared: PostgresLookups?
    /// Whether other gateways may write to the same store (PostgreSQL): a request this gateway has not seen may
    /// be another's, and may reach the store a flush interval after its answer.
    public let isShared: Bool

    /// Opens or creates the store (SQLite, WAL, synchronous=NORMAL which survives kill -9 of the process); a
    /// damaged store is refused, an older schema upgraded.
    public init(path: String, options: StoreOptions = StoreOptions()) throws(StoreError) {
        try options.check(path: path)
        self.path = path
        self.options = options
        isShared = false
        shared = nil
        let writer = Writer(path: path, options: options) { () throws(StoreError) in try WriterConnection(path: path, options: options) }
        self.writer = writer
        // The writer thread opens (checks, creates or upgrades) the store first: readers need the schema.
        integrityCheck = try writer.start()
        do throws(StoreError) {
            reads = Mutex(try Reads(path: path))
        } catch {
            writer.stop()
            throw error
        }
    }

    /// Opens a PostgreSQL store (creating or upgrading its schema) that any number of gateways may share. The
    /// writer commits batches (see `PostgresEventWriter`) and reconnects with backoff when the server goes away;
    /// look-ups go to the server on a few connections of their own (`PostgresLookups`).
    public init(postgres location: PostgresLocation, options: StoreOptions = StoreOptions()) throws(StoreError) {
        let path = location.description
        try options.check(path: path)
        self.path = path
        self.options = options
        isShared = true
        let writer = Writer(path: path, options: options) { () throws(StoreError) in try PostgresEventWriter(location: location, options: options) }
        self.writer = writer
        integrityCheck = try writer.start()
        reads = Mutex(nil)
        shared = PostgresLookups(location: location, answerTimeout: min(2, options.answerTimeoutSeconds))
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
    public var queueDepth: Int { writer.queueDepth }
    /// Events committed.
    public var eventsWritten: Int { writer.written.load(ordering: .relaxed) }
    /// Events refused (queue full, closed, durable while failing) or given up (a durable event whose write
    /// failed; plain events still held when the store closes).
    public var eventsDropped: Int { writer.dropped.load(ordering: .relaxed) }
    /// Transactions committed (group commits: far fewer than events).
    public var commits: Int { writer.commits.load(ordering: .relaxed) }
    /// The last write error, if any write failed.
    public var lastError: StoreError? { writer.lastError }
    /// Failed write attempts (each is retried while its events fit in the queue).
    public var writeErrors: Int { writer.writeErrors.load(ordering: .relaxed) }
    /// Write attempts made while the store was failing.
    public var writeRetries: Int { writer.retries.load(ordering: .relaxed) }
    /// Events deleted by retention.
    public var eventsDeleted: Int { writer.deleted.load(ordering: .relaxed) }
    /// Retention transactions that deleted events (each deletes at most `options.retentionBatch`).
    public var retentionBatches: Int { writer.retentionBatches.load(ordering: .relaxed) }
    /// Whether the store can write now.
    public var health: StoreHealth { writer.health }
    /// Whether the last look-up could not reach a shared store (PostgreSQL): a request not found then may exist.
    public var lookupsFailing: Bool { shared?.isFailing ?? false }

    /// Runs `sql` on the writer's own connection, between batches (for tests: e.g. `PRAGMA max_page_count`
    /// makes writes fail with SQLITE_FULL as a full disk would).
    package func executeOnWriter(_ sql: String) throws(StoreError) {
        let result = Mutex<StoreError?>(nil)
        let done = DispatchSemaphore(value: 0)
        let submitted = writer.submit { backend in
            do throws(StoreError) { try backend.execute(sql) } catch { result.withLock { $0 = error } }
            done.signal()
        }
        guard submitted else { throw StoreError(.closed, path: path, "\(path): the event store is closed") }
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
        reads.withLock { $0 = nil }
        shared?.close()
        writer.stop()
    }

    /// A committed request event by request id (a separate read connection; safe from any thread).
    public func request(id: String) -> RequestInfo? {
        if let shared { return shared.request(id: id) }
        return reads.withLock { reads in reads?.request(id: id) }
    }

    /// The most recent committed request event of a conversation.
    public func latestRequest(conversation: String) -> RequestInfo? {
        if let shared { return shared.latestRequest(conversation: conversation) }
        return reads.withLock { reads in reads?.latestRequest(conversation: conversation) }
    }

    /// `latestRequest(conversation:)` for a caller that must not wait: a shared store's answer is waited for
    /// `seconds` at most (nil then, and `lookupsFailing`).
    public func latestRequest(conversation: String, answerWithin seconds: Double) -> RequestInfo? {
        if let shared { return shared.latestRequest(conversation: conversation, timeout: seconds) }
        return latestRequest(conversation: conversation)
    }

    /// Committed feedback events named `name` (any name for "") given for the request `requestID` (an index look-up).
    public func feedbackCount(requestID: String, name: String) -> Int {
        if let shared { return shared.feedbackCount(requestID: requestID, name: name) }
        return reads.withLock { reads in reads?.feedbackCount(requestID: requestID, name: name) ?? 0 }
    }

    /// Committed feedback events named `name` (any name for "") given for the conversation `conversationID` as a whole (by
    /// `conversation_id`; feedback on one of its requests counts for that request, not here).
    public func feedbackCount(conversationID: String, name: String) -> Int {
        if let shared { return shared.feedbackCount(conversationID: conversationID, name: name) }
        return reads.withLock { reads in reads?.feedbackCount(conversationID: conversationID, name: name) ?? 0 }
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
            var error = lastError ?? StoreError(.other, path: path, reason)
            error.message = "\(reason) (the import stopped; the events committed before stay in the store)"
            throw error
        }
    }

    static func readRows(_ logPath: String, _ body: (Row) throws(StoreError) -> Void) throws {
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

/// The SQLite store's read connection and its prepared look-ups (a PostgreSQL store's: `PostgresLookups`). Not
/// `Sendable`: it lives in `EventStore.reads`, whose lock serializes its use. A look-up that fails finds nothing.
///
/// The writer has upgraded the store before this opens, so the events are in compact rows (`EventRows`).
private struct Reads {
    let events: EventRowReader
    let requestByID: Statement
    let requestByConversation: Statement
    let requestWithoutConversation: Statement
    let feedbackByRequest: Statement
    let feedbackByConversation: Statement

    init(path: String) throws(StoreError) {
        events = try EventRowReader(Connection(path: path, readOnly: true))
        // Each uses an index: `event_rows_request`, or `event_rows_conversation` (its condition repeated).
        requestByID = try events.select(["request_id = ?1", "flags & 1 = 0"], limit: 1)
        requestByConversation = try events.select(["conversation = ?1", "conversation <> ''", "flags & 1 = 0"], newestFirst: true, limit: 1)
        // A request whose conversation is itself: no conversation id, or its own.
        requestWithoutConversation = try events.select(["request_id = ?1", "(conversation IS NULL OR conversation = '')", "flags & 1 = 0"],
                                                       newestFirst: true, limit: 1)
        feedbackByRequest = try events.connection.prepare("SELECT count(*) FROM event_rows WHERE request_id = ?1 AND flags & 1 = 1 AND (?2 IS NULL OR name = ?2)")
        feedbackByConversation = try events.connection.prepare("SELECT count(*) FROM event_rows WHERE conversation = ?1 AND conversation <> '' AND request_id IS NULL AND flags & 1 = 1 AND (?2 IS NULL OR name = ?2)")
    }

    func request(id: String) -> RequestInfo? {
        guard !id.isEmpty else { return nil }
        return info(requestByID, id)?.info
    }

    /// The newer of the conversation's latest request that names it and the request that is it.
    func latestRequest(conversation: String) -> RequestInfo? {
        guard !conversation.isEmpty else { return nil }
        let named = info(requestByConversation, conversation)
        let own = info(requestWithoutConversation, conversation)
        return ((named?.id ?? -1) > (own?.id ?? -1) ? named : own)?.info
    }

    func feedbackCount(requestID: String, name: String) -> Int {
        guard !requestID.isEmpty else { return 0 }
        return count(feedbackByRequest, requestID, name)
    }

    func feedbackCount(conversationID: String, name: String) -> Int {
        guard !conversationID.isEmpty else { return 0 }
        return count(feedbackByConversation, conversationID, name)
    }

    private func count(_ s: Statement, _ key: String, _ name: String) -> Int {
        defer { s.reset() }
        events.bindID(s, 1, key)
        if !name.isEmpty {
            guard (try? events.bindString(s, 2, name)) == true else { return 0 }
        }
        guard (try? s.step()) == true else { return 0 }
        return Int(s.int(0))
    }

    private func info(_ s: Statement, _ key: String) -> (id: Int64, info: RequestInfo)? {
        defer { s.reset() }
        events.bindID(s, 1, key)
        guard (try? s.step()) == true else { return nil }
        do throws(StoreError) {
            let info = RequestInfo(experiment: try events.text(s, EventRowReader.Column.experiment),
                                   variant: try events.text(s, EventRowReader.Column.variant), userID: try events.userID(s),
                                   conversationID: events.conversationID(s), requestID: events.requestID(s), qa: events.isQA(s))
            return (s.int(EventRowReader.Column.id), info)
        } catch {
            return nil
        }
    }
}

/// What the writer thread writes through: an SQLite file (`WriterConnection`) or a PostgreSQL server
/// (`PostgresEventWriter`). Not `Sendable`: the writer thread makes it, uses it and drops it.
protocol StoreBackend: AnyObject {
    /// How the check at open went.
    var integrity: IntegrityCheck { get }
    /// Writes a batch in one transaction; nil on success.
    func write(_ batch: [Writer.Pending]) -> StoreError?
    /// A write that tells whether the store can write again when no events wait for a retry.
    func writeProbe() -> StoreError?
    /// One step of retention, between batches; how many events it deleted (nil when no step was due).
    func retainOnce(_ state: inout RetentionState, options: StoreOptions) -> Int?
    /// Runs statements (tests use it to make writes fail).
    func execute(_ sql: String) throws(StoreError)
    /// The writer's last act, after its last batch: says goodbye to whoever shares the store.
    func leave()
    /// With nothing to write and nothing failing: whether the store is still there (a server that went away
    /// must show on an idle gateway's health too); nil when it is, or when no check is due.
    func idleCheck() -> StoreError?
}

extension StoreBackend {
    func leave() {}
    func idleCheck() -> StoreError? { nil }
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
    /// Latency, TTFT, input and output tokens of a request, the value of a feedback (NaN: none), for the
    /// columns PostgreSQL's analysis reads.
    var numbers: [Double]
    /// The time as the line has it (the line keeps milliseconds; `ts`, a record's microseconds).
    var lineTimestamp: Int64

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
        lineTimestamp = (e.timestamp >= 0 ? e.timestamp / 1000 : (e.timestamp - 999) / 1000) * 1000  // as formatTimestamp writes it
        name = e.kind == .feedback ? e.name : ""
        numbers = e.kind == .request
            ? [e.latencyMs ?? .nan, e.ttftMs ?? .nan, e.inputTokens.map(Double.init) ?? .nan, e.outputTokens.map(Double.init) ?? .nan, .nan]
            : [.nan, .nan, .nan, .nan, e.value]
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
        lineTimestamp = e.timestamp
        name = e.kind == .feedback ? s(e.name) : ""
        numbers = e.kind == .request ? [e.latencyMs, e.ttftMs, e.inputTokens, e.outputTokens, .nan] : [.nan, .nan, .nan, .nan, e.value]
    }
}

/// The writer thread, its queue and counters. Separate from `EventStore` so the thread does not keep the
/// store alive: the store's deinit closes it.
///
/// The queue and everything that goes with it are in one `Mutex`; threads that wait (the writer for work,
/// `flush`, `close` and bulk loads for the writer) sleep on semaphores, which the side that changes the state
/// signals after unlocking. The counters are atomics. The SQLite connection never leaves the writer thread:
/// the thread opens it, owns it and closes it (`WriterConnection` is not `Sendable`).
final class Writer: Sendable {
    enum Item: Sendable {
        case record(EventRecord)
        case row(Row)
    }
    struct Pending: Sendable {
        var item: Item
        var completion: (@Sendable (StoreError?) -> Void)?
    }

    struct State: Sendable {
        var queue: [Pending] = []
        var refused: [@Sendable (StoreError?) -> Void] = []
        var urgent = false
        var closed = false
        /// The writer takes no more tasks (it is closing its connection).
        var tasksClosed = false
        var exited = false
        var accepted = 0   // items ever queued
        var processed = 0  // items written or given up
        var held = 0       // plain items the writer keeps for a retry (they count toward the capacity)
        var failedAttempts = 0
        var tasks: [@Sendable (any StoreBackend) -> Void] = []
        var health = StoreHealth.ok
        var lastError: StoreError?
        /// Threads waiting for the writer to make progress (`flush`, `stop`, a bulk load at a full queue).
        var waiters: [DispatchSemaphore] = []
        var writerThread: pthread_t?

        /// Whether the writer has something to do before its flush interval ends (or, while `retrying`, its backoff).
        func writerHasWork(retrying: Bool) -> Bool {
            closed || !refused.isEmpty || !tasks.isEmpty || (urgent && !retrying)
        }

        /// Asks the writer to write now; true when it must be woken (it was not asked already).
        mutating func makeUrgent() -> Bool {
            defer { urgent = true }
            return !urgent
        }

        var onWriterThread: Bool {
            writerThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        }
    }

    /// The first retry waits this long; each further one twice as long, up to `maxBackoff`.
    static let minBackoff = 0.05, maxBackoff = 5.0

    private let state = Mutex(State())
    /// Wakes the writer thread from its wait for work.
    private let wake = DispatchSemaphore(value: 0)
    let written = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let commits = Atomic<Int>(0)
    let writeErrors = Atomic<Int>(0)
    let retries = Atomic<Int>(0)
    let deleted = Atomic<Int>(0)
    let retentionBatches = Atomic<Int>(0)
    private let capacity: Int
    private let intervalNanoseconds: UInt64
    private let path: String
    private let options: StoreOptions
    /// Opens the store on the writer thread.
    private let open: @Sendable () throws(StoreError) -> any StoreBackend

    init(path: String, options: StoreOptions, open: @escaping @Sendable () throws(StoreError) -> any StoreBackend) {
        self.options = options
        self.path = path
        self.open = open
        capacity = options.queueCapacity
        intervalNanoseconds = UInt64(max(options.flushIntervalMs, 1)) * 1_000_000
        state.withLock { $0.queue.reserveCapacity(min(options.queueCapacity, 4096)) }
    }

    /// Starts the writer thread, which opens the store (checking, creating or upgrading it) and keeps the
    /// connection to itself; returns how the check went, or throws why the store could not be opened (the
    /// thread has then ended).
    func start() throws(StoreError) -> IntegrityCheck {
        let opened = Mutex<Result<IntegrityCheck, StoreError>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        let t = Thread { [self] in
            state.withLock { $0.writerThread = pthread_self() }
            Thread.current.name = "bakeoff-store"
            // Behind the request threads when the cores are busy: a commit must not delay the requests in flight
            // (the writer catches up between them; its queue holds the events meanwhile).
            Writer.lowerThisThreadsPriority(by: 5)
            do {
                let db: any StoreBackend
                do throws(StoreError) { db = try open() } catch {
                    opened.withLock { $0 = .failure(error) }
                    ready.signal()
                    return finish()
                }
                opened.withLock { $0 = .success(db.integrity) }
                ready.signal()
                run(db)
                db.leave()
            }
            // The connection is closed now (the last one of this process, so SQLite has checkpointed the WAL).
            finish()
        }
        t.name = "bakeoff-store-writer"
        t.start()
        ready.wait()
        switch opened.withLock({ $0 })! {
        case .success(let check): return check
        case .failure(let error): throw error
        }
    }

    var queueDepth: Int { state.withLock { $0.queue.count + $0.held } }
    var lastError: StoreError? { state.withLock { $0.lastError } }
    var health: StoreHealth { state.withLock { $0.health } }

    @discardableResult
    func enqueue(_ item: Item, completion: (@Sendable (StoreError?) -> Void)?) -> Bool {
        enum Outcome {
            case queued(wakeWriter: Bool)
            case closed
            case failing(since: Date, reason: String)
            case full(wakeWriter: Bool)
        }
        let outcome = state.withLock { s -> Outcome in
            if s.closed { return .closed }
            if completion != nil, case .failing(let since, let reason) = s.health { return .failing(since: since, reason: reason) }
            if s.queue.count + s.held >= capacity {
                guard let completion else { return .full(wakeWriter: false) }
                // The writer calls the completion (not the request thread, which holds its own locks).
                s.refused.append(completion)
                return .full(wakeWriter: s.refused.count == 1)
            }
            s.queue.append(Pending(item: item, completion: completion))
            s.accepted += 1
            return .queued(wakeWriter: (completion != nil || s.queue.count == capacity / 2) && s.makeUrgent())
        }
        switch outcome {
        case .queued(let wakeWriter):
            if wakeWriter { wake.signal() }
            return true
        case .closed:
            dropped.add(1, ordering: .relaxed)
            completion?(StoreError(.closed, path: path, "\(path): the event store is closed"))
            return false
        case .failing(let since, let reason):
            dropped.add(1, ordering: .relaxed)
            completion?(StoreError(.failing, path: path, "\(reason) (the event store cannot write since \(Self.timestamp(since)); retrying)"))
            return false
        case .full(let wakeWriter):
            dropped.add(1, ordering: .relaxed)
            if wakeWriter { wake.signal() }
            return false
        }
    }

    /// Runs `task` on the writer thread with its connection, before the next batch (after the store closed: not at all).
    func submit(_ task: @escaping @Sendable (any StoreBackend) -> Void) -> Bool {
        let submitted = state.withLock { s -> Bool in
            guard !s.tasksClosed else { return false }
            s.tasks.append(task)
            return true
        }
        if submitted { wake.signal() }
        return submitted
    }

    /// Enqueues, waiting while the queue is full (for bulk loads, never for the request path); an error when
    /// the store is closed or cannot write.
    func enqueueWaiting(_ row: Row) throws(StoreError) {
        enum Outcome {
            case queued
            case closed
            case failing(String)
            case wait(DispatchSemaphore, wakeWriter: Bool)
        }
        while true {
            let outcome = state.withLock { s -> Outcome in
                if s.closed { return .closed }
                if s.queue.count + s.held < capacity {
                    s.queue.append(Pending(item: .row(row), completion: nil))
                    s.accepted += 1
                    return .queued
                }
                if case .failing(_, let reason) = s.health { return .failing(reason) }
                let waiter = DispatchSemaphore(value: 0)
                s.waiters.append(waiter)
                return .wait(waiter, wakeWriter: s.makeUrgent())
            }
            switch outcome {
            case .queued: return
            case .closed: throw StoreError(.closed, path: path, "\(path): the event store is closed")
            case .failing(let reason): throw lastError ?? StoreError(.other, path: path, reason)
            case .wait(let waiter, let wakeWriter):
                if wakeWriter { wake.signal() }
                waiter.wait()
            }
        }
    }

    /// Waits until what is queued now is written, or `failures + 1` write attempts have failed meanwhile.
    func flush(throughFailures failures: Int = 0) {
        var target: Int?
        var failuresBefore = 0
        while true {
            let waiter: DispatchSemaphore? = state.withLock { s in
                if target == nil {
                    if s.onWriterThread { return nil }  // from a completion: waiting would deadlock
                    target = s.accepted
                    failuresBefore = s.failedAttempts
                }
                guard s.processed < target!, !s.exited, s.failedAttempts - failuresBefore <= failures else { return nil }
                let waiter = DispatchSemaphore(value: 0)
                s.waiters.append(waiter)
                if s.makeUrgent() { wake.signal() }
                return waiter
            }
            guard let waiter else { return }
            waiter.wait()
        }
    }

    /// Closes the queue and waits until the writer has written what it holds, closed its connection and ended
    /// (from the writer thread itself, e.g. a completion: does not wait).
    func stop() {
        let onWriterThread = state.withLock { s in
            s.closed = true
            s.urgent = true
            return s.onWriterThread
        }
        wake.signal()
        if onWriterThread { return }
        // Woken after each batch, and when the thread ends.
        while let waiter = state.withLock({ s -> DispatchSemaphore? in
            if s.exited { return nil }
            let waiter = DispatchSemaphore(value: 0)
            s.waiters.append(waiter)
            return waiter
        }) {
            waiter.wait()
        }
    }

    /// Wakes the threads waiting for the writer's progress (taken from the state under the lock).
    private static func signal(_ waiters: [DispatchSemaphore]) {
        for waiter in waiters { waiter.signal() }
    }

    /// Lowers the calling thread's scheduling priority alone (Linux: a thread is a task of its own for
    /// setpriority; its id read from /proc/thread-self, as Glibc's module has no gettid).
    static func lowerThisThreadsPriority(by nice: Int32) {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard n > 0 else { return }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let tid = path.split(separator: "/").last.flatMap({ UInt32($0) }) else { return }
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), tid, nice)
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    /// Sleeps until the writer has work (see `State.writerHasWork`) or `deadline` (monotonic ns) passes.
    private func sleep(until deadline: UInt64, retrying: Bool) {
        while !state.withLock({ $0.writerHasWork(retrying: retrying) }) {
            let now = MonotonicClock.now()
            guard now < deadline else { return }
            _ = wake.wait(timeout: .now() + .nanoseconds(Int(min(deadline - now, UInt64(Int.max)))))
        }
    }

    /// The writer thread's loop: waits for events (at most a flush interval), writes them in one transaction,
    /// retries after failures, runs retention between batches; returns once the store is closed and drained.
    private func run(_ db: any StoreBackend) {
        var spare: [Pending] = []
        spare.reserveCapacity(min(capacity, 4096))
        var kept: [Pending] = []          // plain events of failed attempts, oldest first (`held` counts them)
        var retryAt: UInt64?              // while failing: when to try again (monotonic ns)
        var backoff = Self.minBackoff
        var lastReport: UInt64 = 0
        var retention = RetentionState(next: options.retentionDays == nil ? nil : 0)
        while true {
            if let retryAt {
                sleep(until: retryAt, retrying: true)
            } else if !retention.running {
                sleep(until: MonotonicClock.now() &+ intervalNanoseconds, retrying: false)
            }
            let retryDue = retryAt.map { MonotonicClock.now() >= $0 } ?? true
            var stopping = false, due = false
            var chores: [@Sendable (any StoreBackend) -> Void] = []
            var rejected: [@Sendable (StoreError?) -> Void] = []
            let roomMade = state.withLock { s -> [DispatchSemaphore] in
                stopping = s.closed
                swap(&chores, &s.tasks)
                due = stopping || retryDue
                if due {
                    s.urgent = false
                    // The queue gets the emptied buffer of the last batch (no allocation on the request path).
                    swap(&spare, &s.queue)
                }
                swap(&rejected, &s.refused)
                // Room in the queue for waiting bulk loads.
                defer { s.waiters = [] }
                return s.waiters
            }
            Self.signal(roomMade)
            var batch: [Pending] = []
            if due { swap(&batch, &spare) }
            if due && !kept.isEmpty {
                batch = kept + batch
                kept = []
            }

            let queueFull = StoreError(.queueFull(capacity: capacity), path: path, "\(path): the event store's queue is full (\(capacity) events)")
            for completion in rejected { completion(queueFull) }
            for task in chores { task(db) }
            if !due { continue }
            var error: StoreError?
            if !batch.isEmpty {
                error = db.write(batch)
            } else if retryAt != nil {
                error = db.writeProbe()
            } else if !stopping {
                error = db.idleCheck()
            }
            let now = MonotonicClock.now()
            var line: String?
            var failed: [@Sendable (StoreError?) -> Void] = []
            if retryAt != nil { retries.add(1, ordering: .relaxed) }
            if error != nil {
                for p in batch {
                    if let completion = p.completion { failed.append(completion) } else if !stopping { kept.append(p) }
                }
            }
            let progressed = state.withLock { s -> [DispatchSemaphore] in
                if let error {
                    s.failedAttempts += 1
                    let failures = writeErrors.add(1, ordering: .relaxed).newValue
                    s.lastError = error
                    // Durable events are given up (their callers hear of it now); plain ones wait for the retry.
                    let givenUp = batch.count - kept.count
                    s.processed += givenUp
                    let droppedSoFar = dropped.add(givenUp, ordering: .relaxed).newValue
                    s.held = kept.count
                    if case .failing(let since, _) = s.health {
                        s.health = .failing(since: since, reason: error.message)
                        backoff = min(backoff * 2, Self.maxBackoff)
                        if Double(now &- lastReport) / 1e9 >= options.reportIntervalSeconds {
                            lastReport = now
                            line = "\(error.message); still failing since \(Self.timestamp(since)) (\(failures) failed writes), \(s.held) events held for the next retry, \(droppedSoFar) dropped so far"
                        }
                    } else {
                        s.health = .failing(since: Date(), reason: error.message)
                        backoff = Self.minBackoff
                        lastReport = now
                        line = "\(error.message); the event store cannot write: keeping up to \(capacity) events queued and retrying (durable appends, i.e. feedback, are refused until a write succeeds)"
                    }
                    retryAt = now &+ UInt64(backoff * 1e9)
                    if stopping && givenUp > 0 {
                        // The last attempt at close: what it could not write is gone, and says so.
                        line = "\(error.message); closing: \(givenUp) events that could not be written are dropped (\(droppedSoFar) dropped in all)"
                    }
                } else {
                    if case .failing(let since, _) = s.health {
                        line = "\(path): the event store writes again after \(Int(Date().timeIntervalSince(since).rounded())) s of failures; \(batch.count) held events written, \(dropped.load(ordering: .relaxed)) dropped in all"
                        s.health = .ok
                    }
                    retryAt = nil
                    backoff = Self.minBackoff
                    s.processed += batch.count
                    s.held = 0
                    if !batch.isEmpty {
                        written.add(batch.count, ordering: .relaxed)
                        commits.add(1, ordering: .relaxed)
                    }
                }
                defer { s.waiters = [] }
                return s.waiters
            }
            Self.signal(progressed)
            if let line { options.report?(line) }
            if error == nil {
                for p in batch { p.completion?(nil) }
            } else {
                for completion in failed { completion(error) }
            }
            batch.removeAll(keepingCapacity: true)
            spare = batch
            if error == nil && !stopping, let deleted = db.retainOnce(&retention, options: options) {
                self.deleted.add(deleted, ordering: .relaxed)
                if deleted > 0 { retentionBatches.add(1, ordering: .relaxed) }
            }
            if stopping && state.withLock({ $0.queue.isEmpty && $0.refused.isEmpty }) { break }
        }
        // Tasks submitted until now still run; later ones are refused.
        while true {
            let chores = state.withLock { s -> [@Sendable (any StoreBackend) -> Void] in
                defer { s.tasks = [] }
                if s.tasks.isEmpty { s.tasksClosed = true }
                return s.tasks
            }
            if chores.isEmpty { break }
            for task in chores { task(db) }
        }
    }

    /// The thread's last act, after its connection is closed: wakes everyone waiting for it.
    private func finish() {
        let waiters = state.withLock { s -> [DispatchSemaphore] in
            s.exited = true
            s.tasksClosed = true
            s.writerThread = nil
            defer { s.waiters = [] }
            return s.waiters
        }
        Self.signal(waiters)
    }
}

/// Where retention is: `next` is when the next round starts (monotonic ns; nil without retention),
/// `cursor` the last id a running round has looked at.
struct RetentionState {
    var next: UInt64?
    var cursor: Int64?
    var running: Bool { cursor != nil }

    /// Events before this time (microseconds since 1970, from the wall clock now) are older than `days`.
    static func cutoff(days: Double) -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000 - Int64(days * 86_400_000_000)
    }
}

/// The writer thread's connection and statements. Not `Sendable`: the writer thread makes it, uses it and
/// closes it (when it goes out of scope at the end of the thread), so no other thread can reach it.
final class WriterConnection: StoreBackend {
    let connection: Connection
    let rows: EventRowWriter
    let begin: Statement
    let commit: Statement
    let probe: Statement
    let chunkEnd: Statement
    let delete: Statement
    let path: String

    init(path: String, options: StoreOptions) throws(StoreError) {
        self.path = path
        connection = try Connection(path: path, readOnly: false, checkSeconds: options.integrityCheckSeconds)
        try Self.configure(connection, options: options)
        rows = try EventRowWriter(connection)
        begin = try connection.prepare("BEGIN IMMEDIATE")
        commit = try connection.prepare("COMMIT")
        // A write that changes nothing but the header: tells whether the store can write when no events wait.
        probe = try connection.prepare("PRAGMA user_version = \(StoreSchema.version)")
        chunkEnd = try connection.prepare("SELECT max(id) FROM (SELECT id FROM event_rows WHERE id > ?1 ORDER BY id LIMIT ?2)")
        delete = try connection.prepare("DELETE FROM event_rows WHERE id > ?1 AND id <= ?2 AND ts < ?3")
    }

    /// The writer's settings: `synchronous=NORMAL` (a commit survives kill -9), the WAL checkpointed and cut
    /// back at `walLimitBytes`.
    static func configure(_ connection: Connection, options: StoreOptions) throws(StoreError) {
        try connection.execute("PRAGMA synchronous=NORMAL")
        let pageSize = max(try connection.scalar("PRAGMA page_size"), 512)
        try connection.execute("PRAGMA journal_size_limit=\(options.walLimitBytes)")
        try connection.execute("PRAGMA wal_autocheckpoint=\(max(Int64(options.walLimitBytes) / pageSize, 1))")
    }

    var integrity: IntegrityCheck { connection.integrity }

    func execute(_ sql: String) throws(StoreError) { try connection.execute(sql) }

    /// One step of retention, between batches: deletes the old events among the next `retentionBatch` events in
    /// commit order, in one transaction, then frees the pages; returns how many were deleted (nil when no step
    /// was due). A round starts every `retentionIntervalSeconds` from the oldest events and walks the whole
    /// table: events are not always committed in time order (an imported log, a clock stepped back), so an old
    /// one may follow newer ones.
    func retainOnce(_ state: inout RetentionState, options: StoreOptions) -> Int? {
        guard let days = options.retentionDays, let next = state.next else { return nil }
        let now = MonotonicClock.now()
        if state.cursor == nil {
            guard now >= next else { return nil }
            state.cursor = 0
        }
        let cursor = state.cursor!
        func endRound() -> Int? {
            state.cursor = nil
            state.next = now &+ UInt64(max(options.retentionIntervalSeconds, 0) * 1e9)
            return nil
        }
        chunkEnd.bind(1, cursor)
        chunkEnd.bind(2, Int64(options.retentionBatch))
        defer { chunkEnd.reset() }
        guard (try? chunkEnd.step()) == true, sqlite3_column_type(chunkEnd.stmt, 0) != SQLITE_NULL else { return endRound() }
        let end = chunkEnd.int(0)
        chunkEnd.reset()
        let cutoffMicros = RetentionState.cutoff(days: days)
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
        state.cursor = end
        // Gives the freed pages back to the file system (a store without auto_vacuum keeps them for reuse).
        if deleted > 0 { try? connection.execute("PRAGMA incremental_vacuum") }
        return deleted
    }

    /// A write that tells whether the store can write again when no events wait for a retry.
    func writeProbe() -> StoreError? {
        transaction { () throws(StoreError) in
            defer { probe.reset() }
            _ = try probe.step()
        }
    }

    /// Runs `body` in one write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back when it throws); nil on success.
    private func transaction(_ body: () throws(StoreError) -> Void) -> StoreError? {
        // A store deleted or replaced under the gateway would take every write without a trace: fail loudly.
        if connection.fileHasMoved {
            return StoreError(.fileMoved, path: path, "\(path): the store file was deleted, moved or replaced while the gateway ran; nothing more can be written to it: restart the gateway (it creates or opens the store at its path again); events already written to the moved file stay in it, if it still exists")
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

    /// Writes a batch in one transaction; nil on success. The gateway's events go in as columns, with no JSON
    /// made on this thread (readers rebuild the lines); imported lines are kept whole when the columns cannot
    /// give them back.
    func write(_ batch: [Writer.Pending]) -> StoreError? {
        let error = transaction { () throws(StoreError) in
            for p in batch {
                switch p.item {
                case .record(let e): try rows.insert(e)
                case .row(let r): try rows.insert(LegacyColumns(r))
                }
            }
        }
        if error == nil { rows.committed() } else { rows.rolledBack() }
        return error
    }
}
