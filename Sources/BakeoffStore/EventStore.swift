import BakeoffCore
import CSQLite
import Foundation

/// The SQLite library version the store is linked against.
public var sqliteVersion: String { String(cString: sqlite3_libversion()) }

/// How the store batches its writes.
public struct StoreOptions: Sendable {
    /// Plain events are committed at least this often (milliseconds); at most this much is lost on kill -9.
    public var flushIntervalMs: Int = 50
    /// Events waiting for the writer; beyond it plain events are dropped (and counted).
    public var queueCapacity: Int = 100_000

    public init(flushIntervalMs: Int = 50, queueCapacity: Int = 100_000) {
        self.flushIntervalMs = flushIntervalMs
        self.queueCapacity = queueCapacity
    }
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
public final class EventStore: @unchecked Sendable {
    public let path: String
    public let options: StoreOptions
    private let writer: Writer
    private let readLock = NSLock()
    private var reader: Connection?
    private var requestByID: Statement?
    private var requestByConversation: Statement?

    /// Opens or creates the store (SQLite, WAL, synchronous=NORMAL which survives kill -9 of the process).
    public init(path: String, options: StoreOptions = StoreOptions()) throws(StoreError) {
        guard options.flushIntervalMs >= 0, options.queueCapacity >= 1 else {
            throw StoreError("\(path): invalid store options (flushIntervalMs \(options.flushIntervalMs), queueCapacity \(options.queueCapacity))")
        }
        self.path = path
        self.options = options
        let connection = try Connection(path: path, readOnly: false)
        try connection.execute("PRAGMA synchronous=NORMAL")
        let insert = try connection.prepare("""
            INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
            """)
        let read = try Connection(path: path, readOnly: true)
        let columns = "experiment, variant, user_id, conversation_id, request_id, qa"
        requestByID = try read.prepare("SELECT \(columns) FROM events WHERE request_id = ?1 AND kind = 'request' ORDER BY id LIMIT 1")
        requestByConversation = try read.prepare("SELECT \(columns) FROM events WHERE conversation_id = ?1 AND kind = 'request' ORDER BY id DESC LIMIT 1")
        reader = read
        writer = Writer(connection: connection, insert: insert, begin: try connection.prepare("BEGIN IMMEDIATE"),
                        commit: try connection.prepare("COMMIT"), options: options)
        writer.start()
    }

    deinit { close() }

    /// Enqueues without ever waiting for the disk; false (and counted as dropped) when the queue is full or the store is closed.
    @discardableResult
    public func append(_ event: EventRecord) -> Bool {
        writer.enqueue(.record(event), completion: nil)
    }

    /// Enqueues and calls `completion` only after the transaction holding the event has committed, with
    /// nil, or with an error (queue full, disk error, closed).
    ///
    /// The completion runs on the writer thread (keep it short; never call `flush` or `close` from it),
    /// except for a closed store, where it runs on the calling thread before this returns. A durable append
    /// makes the writer commit right away rather than wait for the flush interval.
    public func appendDurably(_ event: EventRecord, completion: @escaping @Sendable (StoreError?) -> Void) {
        writer.enqueue(.record(event), completion: completion)
    }

    /// Events waiting for the writer.
    public var queueDepth: Int { writer.counters.queued }
    /// Events committed.
    public var eventsWritten: Int { writer.counters.written }
    /// Events refused (queue full, closed) or lost to a failed write.
    public var eventsDropped: Int { writer.counters.dropped }
    /// Transactions committed (group commits: far fewer than events).
    public var commits: Int { writer.counters.commits }
    /// The last write error, if any write failed.
    public var lastError: StoreError? { writer.counters.lastError }

    /// Blocks until everything enqueued before the call is committed (or has failed).
    public func flush() { writer.flush() }

    /// Flushes, stops the writer thread, closes the database; idempotent. Called on SIGTERM.
    public func close() {
        // The read connection goes first, so that the writer's connection is the last one and SQLite
        // checkpoints the WAL into the database when it closes.
        readLock.lock()
        requestByID = nil
        requestByConversation = nil
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
            flush()
            if let error = writer.counters.lastError { throw error }
            return rows.count
        }
        var count = 0
        try Self.readRows(logPath) { _ in count += 1 }
        try Self.readRows(logPath) { row throws(StoreError) in try writer.enqueueWaiting(row) }
        flush()
        if let error = writer.counters.lastError { throw error }
        return count
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
        var lastError: StoreError?
    }

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var queue: [Pending] = []
    private var refused: [@Sendable (StoreError?) -> Void] = []
    private var urgent = false
    private var closed = false
    private var exited = false
    private var accepted = 0   // items ever queued
    private var processed = 0  // items written or failed
    private var stats = Counters()
    private var thread: pthread_t?

    // Used only by the writer thread:
    private var connection: Connection?
    private var insert: Statement?
    private var begin: Statement?
    private var commit: Statement?
    private let capacity: Int
    private let interval: TimeInterval
    private let path: String

    init(connection: Connection, insert: Statement, begin: Statement, commit: Statement, options: StoreOptions) {
        self.connection = connection
        self.insert = insert
        self.begin = begin
        self.commit = commit
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
        c.queued = queue.count
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
        if queue.count >= capacity {
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

    /// Enqueues, waiting while the queue is full (for bulk loads, never for the request path).
    func enqueueWaiting(_ row: Row) throws(StoreError) {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity && !closed {
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

    func flush() {
        condition.lock()
        defer { condition.unlock() }
        if onWriterThread { return }  // from a completion: waiting would deadlock
        let target = accepted
        while processed < target && !exited {
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

    private func run() {
        condition.lock()
        thread = pthread_self()
        condition.broadcast()
        var spare: [Pending] = []
        spare.reserveCapacity(min(capacity, 4096))
        while true {
            let deadline = Date(timeIntervalSinceNow: interval)
            while !urgent && !closed && refused.isEmpty {
                if !condition.wait(until: deadline) { break }
            }
            urgent = false
            let stopping = closed
            var batch = spare
            swap(&batch, &queue)
            let rejected = refused
            refused = []
            condition.broadcast()  // room in the queue for waiting bulk loads
            condition.unlock()

            let queueFull = StoreError("\(path): the event store's queue is full (\(capacity) events)")
            for completion in rejected { completion(queueFull) }
            var error: StoreError?
            if !batch.isEmpty { error = write(batch) }

            condition.lock()
            processed += batch.count
            if let error {
                stats.dropped += batch.count
                stats.lastError = error
            } else if !batch.isEmpty {
                stats.written += batch.count
                stats.commits += 1
            }
            condition.broadcast()
            condition.unlock()
            for p in batch { p.completion?(error) }
            batch.removeAll(keepingCapacity: true)
            spare = batch

            condition.lock()
            if stopping && queue.isEmpty && refused.isEmpty { break }
        }
        insert = nil
        begin = nil
        commit = nil
        connection = nil
        exited = true
        condition.broadcast()
        condition.unlock()
    }

    /// Writes a batch in one transaction; nil on success.
    private func write(_ batch: [Pending]) -> StoreError? {
        guard let insert, let connection, let begin, let commit else { return StoreError("\(path): the event store is closed") }
        do throws(StoreError) {
            _ = try begin.step()
            begin.reset()
            do throws(StoreError) {
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
                    _ = try insert.step()
                    insert.reset()
                }
                _ = try commit.step()
                commit.reset()
            } catch {
                insert.reset()
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
}
