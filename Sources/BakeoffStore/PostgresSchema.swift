import BakeoffCore

/// The event store's schema in PostgreSQL, applied by the same `Migrator` as SQLite's (`StoreSchema`): the same
/// tables and columns, in PostgreSQL's types, with the version in a one-row table `bakeoff_schema`.
///
/// Events are partitioned by day of `ts` (microseconds since 1970), so that retention drops whole partitions
/// instead of deleting rows; `PostgresSchema.ensurePartitions` makes a day's partition before its first event,
/// and the default partition takes what no day partition covers (a timestamp decades off).
public enum PostgresSchema {
    public static let migrations: [Migration] = [
        // 1: the events, partitioned by day; ids from one sequence shared by every gateway (write order).
        Migration("events", sql: """
            CREATE TABLE events (
                id BIGINT GENERATED ALWAYS AS IDENTITY,
                ts BIGINT NOT NULL,
                experiment TEXT NOT NULL,
                kind TEXT NOT NULL,
                variant TEXT NOT NULL,
                user_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL,
                request_id TEXT NOT NULL,
                status TEXT NOT NULL,
                qa INTEGER NOT NULL,
                line TEXT NOT NULL,
                name TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (id, ts)
            ) PARTITION BY RANGE (ts);
            CREATE TABLE events_default PARTITION OF events DEFAULT;
            CREATE INDEX events_experiment ON events (experiment, id);
            CREATE INDEX events_request ON events (request_id);
            CREATE INDEX events_conversation ON events (conversation_id);
            CREATE INDEX events_feedback_request ON events (request_id, name) WHERE kind = 'feedback';
            CREATE INDEX events_feedback_conversation ON events (conversation_id, name) WHERE kind = 'feedback' AND request_id = '';
            """),
        // 2: the plans an experiment ran under (see `PlanLog`), recorded once however many gateways start.
        Migration("plans", sql: """
            CREATE TABLE plans (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                ts BIGINT NOT NULL,
                experiment TEXT NOT NULL,
                plan TEXT NOT NULL);
            CREATE INDEX plans_experiment ON plans (experiment, id);
            """),
        // 3: what gateways sharing the store need of each other: the token of each committed batch (to tell
        // after a lost connection whether its COMMIT happened) and each live gateway's plans (to see replicas
        // that run different ones).
        Migration("replicas", sql: """
            CREATE TABLE committed_batches (
                token TEXT PRIMARY KEY,
                ts BIGINT NOT NULL);
            CREATE TABLE replicas (
                gateway TEXT NOT NULL,
                experiment TEXT NOT NULL,
                plan TEXT NOT NULL,
                seen_at BIGINT NOT NULL,
                PRIMARY KEY (gateway, experiment));
            """),
        // 4: what the analysis reads, as columns (`PostgresAnalysis` parsed every line as JSON for them): the
        // time as the line has it (`ts` keeps the gateway's microseconds, the line milliseconds), a request's
        // fields, a feedback's value. `numbers` is 1 on rows written with them; rows written before (or by an
        // older gateway) have NULL and are read from their line.
        Migration("numbers", sql: """
            ALTER TABLE events ADD COLUMN numbers SMALLINT, ADD COLUMN line_ts BIGINT, ADD COLUMN latency_ms DOUBLE PRECISION,
                ADD COLUMN ttft_ms DOUBLE PRECISION, ADD COLUMN input_tokens DOUBLE PRECISION,
                ADD COLUMN output_tokens DOUBLE PRECISION, ADD COLUMN value DOUBLE PRECISION;
            """),
        // 5: when each experiment's results were looked at (see `LookLog`), for group-sequential boundaries.
        Migration("looks", sql: """
            CREATE TABLE looks (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                ts BIGINT NOT NULL,
                experiment TEXT NOT NULL,
                source TEXT NOT NULL);
            CREATE INDEX looks_experiment ON looks (experiment, ts);
            """),
    ]

    public static let migrator = Migrator(migrations)

    /// The version of a store with every migration applied.
    public static var version: Int { migrator.latestVersion }

    static let day: Int64 = 86_400_000_000

    /// The first microsecond (midnight UTC) of the day that holds `ts`.
    static func dayStart(_ ts: Int64) -> Int64 { ts - ((ts % day) + day) % day }

    /// The name of the partition of the day that holds `ts`.
    static func partitionName(day start: Int64) -> String {
        let days = start / day
        let (y, m, d) = civilFromDays(Int(days))
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "events_\(y)\(two(m))\(two(d))"
    }

    /// Makes the partitions of the days that `timestamps` fall in (those after 1970 and before 2200; the
    /// default partition keeps the others). Another gateway making the same one at the same time is fine. Call it
    /// outside a transaction (a refused CREATE would end it).
    public static func ensurePartitions(_ db: PostgresConnection, for timestamps: some Sequence<Int64>) throws(StoreError) {
        let days = Set(timestamps.filter { $0 >= 0 && $0 < 7_258_118_400_000_000 }.map(dayStart))
        for start in days.sorted() {
            let name = partitionName(day: start)
            do throws(StoreError) {
                try db.execute("CREATE TABLE IF NOT EXISTS \(name) PARTITION OF events FOR VALUES FROM (\(start)) TO (\(start + day))")
            } catch {
                // Two gateways creating it at once (42P07), or rows of that day already in the default partition
                // (23514): the day's events stay in the default partition, which every query reads too.
                // Or the parent table's lock not granted in time (55P03: a long reader in front of it): the same.
                guard case .postgres(let state) = error.kind, ["42P07", "23514", "23505", "55P03"].contains(state) else { throw error }
            }
        }
    }

    /// Drops the day partitions that end before `cutoff` (retention) and deletes the default partition's rows
    /// before it; gives the names of the partitions dropped.
    @discardableResult
    public static func dropPartitions(_ db: PostgresConnection, before cutoff: Int64) throws(StoreError) -> [String] {
        try dropOldEvents(db, before: cutoff).partitions
    }

    /// The day a partition named by `partitionName` holds (its first microsecond), nil for another name.
    static func dayOfPartition(_ name: String) -> Int64? {
        let digits = name.dropFirst("events_".count)
        guard name.hasPrefix("events_"), digits.count == 8, let number = Int(digits) else { return nil }
        let days = daysFromCivil(year: number / 10_000, month: number / 100 % 100, day: number % 100)
        return Int64(days) * day
    }

    /// Drops the day partitions that end before `cutoff` and deletes the default partition's rows before it;
    /// gives the partitions dropped and the events they and the deletion held.
    static func dropOldEvents(_ db: PostgresConnection, before cutoff: Int64) throws(StoreError) -> (partitions: [String], events: Int) {
        let rows = try db.query("""
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'events'::regclass ORDER BY c.relname
            """)
        var dropped: [String] = []
        var events = 0
        for row in rows.rows {
            guard let name = row[0], let bound = row[1], name != "events_default",
                  let to = bound.range(of: "TO ('"), let end = Int64(bound[to.upperBound...].prefix { $0 != "'" }),
                  end <= cutoff else { continue }
            let quoted = "\"\(name.replacingOccurrences(of: "\"", with: "\"\""))\""
            // Counted and dropped in one transaction, so the count is what went.
            try db.execute("BEGIN")
            do throws(StoreError) {
                events += Int(try db.query("SELECT count(*) FROM \(quoted)").int(0, 0) ?? 0)
                try db.execute("DROP TABLE IF EXISTS \(quoted); COMMIT")
            } catch {
                if !db.isBroken { try? db.execute("ROLLBACK") }
                throw error
            }
            dropped.append(name)
        }
        // The default partition's old rows (days that had no partition of their own) go row by row.
        let deleted = try db.query("WITH gone AS (DELETE FROM events_default WHERE ts < $1 RETURNING 1) SELECT count(*) FROM gone", [String(cutoff)])
        events += Int(deleted.int(0, 0) ?? 0)
        return (dropped, events)
    }
}

extension PostgresConnection: MigrationDatabase {
    public var name: String { location.description }

    /// One transaction that also holds an advisory lock, so gateways starting at once migrate one after another.
    public func inWriteTransaction(_ body: () throws(StoreError) -> Void) throws(StoreError) {
        try execute("BEGIN")
        do throws(StoreError) {
            try execute("SELECT pg_advisory_xact_lock(7305712846112)")
            try body()
            try execute("COMMIT")
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    public func schemaVersion() throws(StoreError) -> Int {
        guard try query("SELECT to_regclass('bakeoff_schema') IS NOT NULL").rows.first?[0] == "t" else { return 0 }
        return Int(try query("SELECT version FROM bakeoff_schema").int(0, 0) ?? 0)
    }

    public func setSchemaVersion(_ version: Int) throws(StoreError) {
        try execute("CREATE TABLE IF NOT EXISTS bakeoff_schema (only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row), version INTEGER NOT NULL)")
        try query("INSERT INTO bakeoff_schema (version) VALUES ($1) ON CONFLICT (only_row) DO UPDATE SET version = EXCLUDED.version", [String(version)])
    }

    public func hasTables() throws(StoreError) -> Bool {
        let rows = try query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'bakeoff_schema'")
        return (rows.int(0, 0) ?? 0) > 0
    }
}
