import BakeoffCore
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The gateway's writer for a PostgreSQL store: each batch in one transaction, through COPY, with the schema
/// migrated at open and each day's partition made before its first event.
///
/// Why a write lock: ids come from one identity shared by every gateway, but a transaction takes its ids when it
/// inserts, not when it commits, so without it a reader that has read up to id N could later see a smaller id
/// commit (another gateway's slower transaction) and skip it for good. Each batch takes an advisory lock before
/// it inserts and keeps it to its commit, so ids are committed in order: whatever a snapshot shows below its
/// largest id is all there will ever be (`StoreReader`'s incremental reads rely on it). The rows are copied into a
/// temporary table first, without the lock; the lock is held only while the server moves them into the events and
/// commits, in one message it runs without waiting for the gateway, so a gateway that freezes holds no one up and
/// several gateways still write thousands of events a second.
///
/// A lost connection (the server restarted, a network cut) is dropped and made again on the next attempt; the
/// writer's backoff spaces them. A COMMIT whose answer never came may or may not have happened: each batch also
/// inserts a token, and the batch counts as written when the token is found after reconnecting, so a batch is
/// never written twice and a durable event is never reported failed after it was committed, unless the server
/// stays away longer than the check waits (see `resolveUncertainCommit`).
final class PostgresEventWriter: StoreBackend {
    /// The advisory lock that orders the commits of events (see above).
    static let writeLock: Int64 = 7305712846113

    let location: PostgresLocation
    let options: StoreOptions
    private var db: PostgresConnection?
    /// Days whose partition this writer made or found (since its last connection).
    private var madeDays = Set<Int64>()
    /// A batch whose COMMIT got no answer: its token and how many of its events were plain (kept for a retry).
    private var uncertain: (token: String, plainEvents: Int)?
    private var nextRetention: UInt64 = 0
    private var nextCleanup: UInt64 = 0
    private var nextHeartbeat: UInt64 = 0
    private var nextIdleCheck: UInt64 = 0
    /// Whether this connection has made its `bakeoff_batch` table (a temporary table: one per session).
    private var hasBatchTable = false
    private var generator = SystemRandomNumberGenerator()

    var integrity: IntegrityCheck { .skipped }

    init(location: PostgresLocation, options: StoreOptions) throws(StoreError) {
        self.location = location
        self.options = options
        let db = try connection()
        try PostgresSchema.migrator.migrate(db)
        if let replica = options.replica { try replica.heartbeat(db) }
        nextHeartbeat = MonotonicClock.now() &+ (options.replica?.heartbeatNanoseconds ?? 0)
    }

    /// The open connection, or a new one when there is none or it broke.
    private func connection() throws(StoreError) -> PostgresConnection {
        if let db, !db.isBroken { return db }
        db = nil
        madeDays = []
        hasBatchTable = false
        let fresh = try PostgresConnection(location, applicationName: "bakeoff serve", timeout: 2, answerTimeout: options.answerTimeoutSeconds)
        // A gateway that freezes (stopped, or cut off without a reset) inside a batch must not hold the write lock,
        // and so every other gateway's writes, for long: the server ends its session after 1 s of silence in a
        // transaction (a batch sends its statements back to back; one cut short is retried), and each batch's
        // statements have a time limit (below). No statement waits more than 3 s for a lock: another gateway's
        // batch holds the write lock for milliseconds.
        try fresh.execute("SET idle_in_transaction_session_timeout = '1s'; SET lock_timeout = '3s'")
        db = fresh
        return fresh
    }

    func execute(_ sql: String) throws(StoreError) { try connection().execute(sql) }

    func write(_ batch: [Writer.Pending]) -> StoreError? {
        var rows: [[String?]] = []
        rows.reserveCapacity(batch.count)
        var days = Set<Int64>()
        for p in batch {
            let row: Row
            switch p.item {
            case .record(let e): row = Row(e)
            case .row(let r): row = r
            }
            rows.append(PostgresImport.values(row))
            days.insert(PostgresSchema.dayStart(row.ts))
        }
        do throws(StoreError) {
            let db = try connection()
            // A large batch (a backlog written after an outage) may take longer than a small one.
            db.answerTimeout = options.answerTimeoutSeconds + Double(rows.count) / 10_000
            if let uncertain {
                // The plain events of the batch whose commit went unanswered come first in this one (the writer
                // keeps them in order): when that commit happened, they are written already.
                let found = try db.query("SELECT 1 FROM committed_batches WHERE token = $1", [uncertain.token]).rows.isEmpty == false
                self.uncertain = nil
                if found { rows.removeFirst(min(uncertain.plainEvents, rows.count)) }
            }
            if rows.isEmpty { return nil }
            let newDays = days.subtracting(madeDays)
            if !newDays.isEmpty {
                try withShortLockWait(db) { () throws(StoreError) in try PostgresSchema.ensurePartitions(db, for: newDays) }
                madeDays.formUnion(newDays)
            }
            let token = newToken()
            // The rows go first into a table of this session's own, with no lock held: a gateway that freezes while
            // it sends them (stopped, or cut off without a reset: the server waits for the data and cancels
            // nothing meanwhile) holds up no one. Then one message moves them into the events under the write lock
            // and commits: the server runs it through without waiting for this gateway.
            if !hasBatchTable {
                try db.execute("""
                    CREATE TEMP TABLE IF NOT EXISTS bakeoff_batch AS SELECT \(PostgresImport.columns.joined(separator: ", ")) FROM events WITH NO DATA;
                    ALTER TABLE bakeoff_batch ADD COLUMN IF NOT EXISTS seq bigserial
                    """)
                hasBatchTable = true
            }
            try db.execute("TRUNCATE bakeoff_batch")
            try db.copy(into: "bakeoff_batch", columns: PostgresImport.columns, rows: rows)
            let columns = PostgresImport.columns.joined(separator: ", ")
            do throws(StoreError) {
                try db.execute("""
                    BEGIN; SELECT pg_advisory_xact_lock(\(Self.writeLock));
                    INSERT INTO committed_batches (token, ts) VALUES ('\(token)', \(WallClock.microseconds()));
                    INSERT INTO events (\(columns)) SELECT \(columns) FROM bakeoff_batch ORDER BY seq;
                    COMMIT
                    """)
            } catch {
                // Lost with the connection: the COMMIT may have happened. Refused by the server: it did not.
                guard db.isBroken else {
                    try? db.execute("ROLLBACK")
                    throw error
                }
                return resolveUncertainCommit(token: token, plainEvents: batch.count { $0.completion == nil }, error: error)
            }
            return nil
        } catch {
            if db?.isBroken == true { db = nil }
            return error
        }
    }

    /// Runs DDL on the events table (a day's partition made or dropped) waiting at most half a second for its
    /// lock: it needs the table to itself, so while it waits behind a long reader (an export, `analyze --db`)
    /// every gateway's writes and look-ups wait behind it. Not granted in time, the day's events go to the default
    /// partition (a new day) or the drop waits for the next round (retention).
    private func withShortLockWait<T>(_ db: PostgresConnection, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try db.execute("SET lock_timeout = '500ms'")
        defer { try? db.execute("SET lock_timeout = '3s'") }
        return try body()
    }

    /// After a COMMIT lost with its connection: reconnects (a few times over about two seconds) to see whether
    /// the batch's token is there. Found: the batch is written (nil). Not found: it is not, and never will be
    /// (the error). No answer: the error, and the next write looks first, so the plain events retried are not
    /// written twice; durable events are reported failed then although they may have been committed.
    private func resolveUncertainCommit(token: String, plainEvents: Int, error: StoreError) -> StoreError? {
        db = nil
        for attempt in 0..<4 {
            if attempt > 0 { usleep(UInt32(200_000 * attempt)) }
            guard let db = try? connection() else { continue }
            guard let rows = try? db.query("SELECT 1 FROM committed_batches WHERE token = $1", [token]) else { continue }
            return rows.rows.isEmpty ? error : nil
        }
        uncertain = (token, plainEvents)
        return error
    }

    private func newToken() -> String {
        let a = generator.next(), b = generator.next()
        return String(a, radix: 16) + "-" + String(b, radix: 16)
    }

    /// Every 2 s without batches: one round trip, so that an idle gateway sees the server go away (and its
    /// health turns failing) as a busy one does.
    func idleCheck() -> StoreError? {
        let now = MonotonicClock.now()
        guard now >= nextIdleCheck else { return nil }
        nextIdleCheck = now &+ 2_000_000_000
        return writeProbe()
    }

    func writeProbe() -> StoreError? {
        do throws(StoreError) {
            let db = try connection()
            db.answerTimeout = options.answerTimeoutSeconds
            try db.execute("SELECT 1")
            return nil
        } catch {
            if db?.isBroken == true { db = nil }
            return error
        }
    }

    /// A gateway that stops takes its plans out of `replicas`, so the others stop reporting a difference at
    /// their next heartbeat instead of when it is gone for good.
    func leave() {
        guard let replica = options.replica, let db, !db.isBroken else { return }
        try? replica.leave(db)
    }

    /// Housekeeping between batches: the replica heartbeat (every few seconds), tokens older than a day (every
    /// ten minutes), and with `retentionDays` the partitions of old days (every `retentionIntervalSeconds`).
    /// Failures are left for the next round; a server that is down shows on the next batch.
    func retainOnce(_ state: inout RetentionState, options: StoreOptions) -> Int? {
        let now = MonotonicClock.now()
        guard let db, !db.isBroken else { return nil }
        if let replica = options.replica, now >= nextHeartbeat {
            nextHeartbeat = now &+ replica.heartbeatNanoseconds
            try? replica.heartbeat(db)
        }
        if now >= nextCleanup {
            nextCleanup = now &+ 600_000_000_000
            _ = try? db.query("DELETE FROM committed_batches WHERE ts < $1", [String(WallClock.microseconds() - 86_400_000_000)])
        }
        guard let days = options.retentionDays, now >= nextRetention else { return nil }
        nextRetention = now &+ UInt64(max(options.retentionIntervalSeconds, 0) * 1e9)
        let cutoff = RetentionState.cutoff(days: days)
        do throws(StoreError) {
            // Only whole days go: a partition is dropped once its last microsecond is older than the cutoff.
            let gone = try withShortLockWait(db) { () throws(StoreError) in try PostgresSchema.dropOldEvents(db, before: PostgresSchema.dayStart(cutoff)) }
            madeDays.subtract(gone.partitions.compactMap(PostgresSchema.dayOfPartition))
            return gone.events
        } catch {
            return nil
        }
    }
}

/// Look-ups in a PostgreSQL store, safe from any thread: a few connections of their own (one per look-up at a
/// time, made as needed), so that one slow answer does not hold the others.
///
/// Why a breaker: look-ups run on the threads that answer clients, and a server that stops answering must not
/// hold them. After a look-up fails (no answer within `answerTimeout`, a lost connection, no connection), every
/// look-up is answered "unavailable" at once for a second, then one is let through to try the server again while
/// the others keep being answered at once. `isFailing` tells the caller that "not found" may mean "not reachable".
final class PostgresLookups: Sendable {
    let location: PostgresLocation
    /// Seconds a look-up may wait for its answer (and a new connection for the server's).
    let answerTimeout: Double
    static let maximumConnections = 4

    /// A connection handed from thread to thread: one uses it at a time (taken out of the pool under the lock).
    private struct Pooled: @unchecked Sendable {
        let db: PostgresConnection
    }

    private struct State {
        var idle: [Pooled] = []
        var open = 0
        /// While failing: when the next try may go (monotonic ns).
        var failingUntil: UInt64?
        var trying = false
        var closed = false
    }
    private let state = Mutex<State>(State())
    /// Woken when a connection is given back.
    private let returned = DispatchSemaphore(value: 0)

    init(location: PostgresLocation, answerTimeout: Double = 2) {
        self.location = location
        self.answerTimeout = answerTimeout
    }

    /// Whether the last look-up could not reach the server (its "not found" means "unavailable").
    var isFailing: Bool { state.withLock { $0.failingUntil != nil } }

    func close() {
        state.withLock { s in
            s.closed = true
            s.idle = []
        }
    }

    private enum Take {
        case connection(Pooled, trial: Bool)
        case make(trial: Bool)
        case unavailable
        case wait
    }

    /// Runs `sql` on a connection of the pool, waiting at most `timeout` (else `answerTimeout`) for its answer;
    /// nil when the server could not answer.
    private func run(_ sql: String, _ parameters: [String?], timeout: Double? = nil) -> PostgresRows? {
        let limit = timeout ?? answerTimeout
        let deadline = MonotonicClock.now() &+ UInt64(limit * 1e9)
        while true {
            let take = state.withLock { s -> Take in
                if s.closed { return .unavailable }
                var trial = false
                if let until = s.failingUntil {
                    guard !s.trying, MonotonicClock.now() >= until else { return .unavailable }
                    s.trying = true
                    trial = true
                }
                if let db = s.idle.popLast() { return .connection(db, trial: trial) }
                if s.open < Self.maximumConnections {
                    s.open += 1
                    return .make(trial: trial)
                }
                if trial { s.trying = false }
                return .wait
            }
            var connection: PostgresConnection?
            var trial = false
            switch take {
            case .unavailable:
                return nil
            case .wait:
                let now = MonotonicClock.now()
                guard now < deadline, returned.wait(timeout: .now() + .nanoseconds(Int(deadline - now))) == .success else { return nil }
                continue
            case .connection(let pooled, let t):
                connection = pooled.db
                trial = t
            case .make(let t):
                trial = t
                connection = try? PostgresConnection(location, applicationName: "bakeoff serve", timeout: max(2, Int(answerTimeout.rounded(.up))),
                                                     answerTimeout: answerTimeout)
            }
            var rows: PostgresRows?
            if let connection {
                connection.answerTimeout = limit
                rows = try? connection.query(sql, parameters)
            }
            let reusable = connection.map { !$0.isBroken } ?? false
            let failed = rows == nil && !reusable
            state.withLock { s in
                if trial { s.trying = false }
                if let connection, reusable, !s.closed { s.idle.append(Pooled(db: connection)) } else { s.open -= 1 }
                if failed {
                    s.failingUntil = MonotonicClock.now() &+ 1_000_000_000
                } else {
                    s.failingUntil = nil
                }
            }
            returned.signal()
            return rows
        }
    }

    private static let columns = "experiment, variant, user_id, conversation_id, request_id, qa"

    private func info(_ rows: PostgresRows?) -> RequestInfo? {
        guard let row = rows?.rows.first else { return nil }
        return RequestInfo(experiment: row[0] ?? "", variant: row[1] ?? "", userID: row[2] ?? "", conversationID: row[3] ?? "",
                           requestID: row[4] ?? "", qa: row[5] != "0")
    }

    func request(id: String) -> RequestInfo? {
        info(run("SELECT \(Self.columns) FROM events WHERE request_id = $1 AND kind = 'request' ORDER BY id LIMIT 1", [id]))
    }

    func latestRequest(conversation: String, timeout: Double? = nil) -> RequestInfo? {
        info(run("SELECT \(Self.columns) FROM events WHERE conversation_id = $1 AND kind = 'request' ORDER BY id DESC LIMIT 1", [conversation],
                 timeout: timeout))
    }

    func feedbackCount(requestID: String, name: String) -> Int {
        Int(run("SELECT count(*) FROM events WHERE kind = 'feedback' AND request_id = $1 AND ($2 = '' OR name = $2)", [requestID, name])?.int(0, 0) ?? 0)
    }

    func feedbackCount(conversationID: String, name: String) -> Int {
        Int(run("SELECT count(*) FROM events WHERE kind = 'feedback' AND request_id = '' AND conversation_id = $1 AND ($2 = '' OR name = $2)",
                [conversationID, name])?.int(0, 0) ?? 0)
    }
}

/// What one gateway tells the others of a shared store: the plan it runs for each experiment, refreshed every
/// few seconds in the `replicas` table, so that each can see when another runs a different one.
public final class ReplicaPlans: Sendable {
    /// How often this gateway says it is alive (5 s); one silent for three times as long is gone.
    let heartbeatNanoseconds: UInt64
    var goneAfterMicroseconds: Int64 { Int64(heartbeatNanoseconds / 1000) * 3 }

    /// This gateway's name among the replicas (host, process id and start).
    public let gateway: String
    /// The plan text per experiment name.
    public let plans: [String: String]
    private let others = Mutex<[OtherPlan]>([])
    /// Called (on the writer thread) when the set of differing gateways changes.
    private let changed: (@Sendable ([OtherPlan]) -> Void)?

    /// Another live gateway running a different plan for one of this gateway's experiments.
    public struct OtherPlan: Sendable, Equatable {
        public var experiment: String
        public var gateway: String
        public var plan: String

        public init(experiment: String, gateway: String, plan: String) {
            self.experiment = experiment
            self.gateway = gateway
            self.plan = plan
        }
    }

    public init(gateway: String, plans: [String: String], heartbeatSeconds: Double = 5,
                changed: (@Sendable ([OtherPlan]) -> Void)? = nil) {
        self.gateway = gateway
        heartbeatNanoseconds = UInt64(max(heartbeatSeconds, 0.01) * 1e9)
        self.plans = plans
        self.changed = changed
    }

    /// The other live gateways whose plans differ from this one's, as of the last heartbeat.
    public var differing: [OtherPlan] { others.withLock { $0 } }

    func leave(_ db: PostgresConnection) throws(StoreError) {
        try db.query("DELETE FROM replicas WHERE gateway = $1", [gateway])
    }

    /// Says this gateway is alive with its plans, and reads the other live gateways' plans.
    func heartbeat(_ db: PostgresConnection) throws(StoreError) {
        let now = WallClock.microseconds()
        for (experiment, plan) in plans.sorted(by: { $0.key < $1.key }) {
            try db.query("""
                INSERT INTO replicas (gateway, experiment, plan, seen_at) VALUES ($1, $2, $3, $4)
                ON CONFLICT (gateway, experiment) DO UPDATE SET plan = EXCLUDED.plan, seen_at = EXCLUDED.seen_at
                """, [gateway, experiment, plan, String(now)])
        }
        let rows = try db.query("SELECT experiment, gateway, plan FROM replicas WHERE gateway <> $1 AND seen_at >= $2 ORDER BY experiment, gateway",
                                [gateway, String(now - goneAfterMicroseconds)])
        var found: [OtherPlan] = []
        for row in rows.rows {
            guard let experiment = row[0], let other = row[1], let plan = row[2], let mine = plans[experiment], mine != plan else { continue }
            found.append(OtherPlan(experiment: experiment, gateway: other, plan: plan))
        }
        // Gateways gone for a day are forgotten.
        try db.query("DELETE FROM replicas WHERE seen_at < $1", [String(now - 86_400_000_000)])
        let before = others.withLock { others in
            defer { others = found }
            return others
        }
        if before != found { changed?(found) }
    }
}
