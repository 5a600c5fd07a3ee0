import BakeoffCore

/// Loading an event log into a PostgreSQL store (`bakeoff import --db postgresql://...`), as `EventStore.importLog`
/// does for SQLite: every line is checked first (a malformed one is an error naming the file and line, and
/// nothing is added), then the events go in with COPY, in one transaction, in the order of the log.
public enum PostgresImport {
    /// Imports the log at `logPath` ("-": standard input) into the store at `url` (created or upgraded first);
    /// gives the events imported.
    public static func importLog(url: String, passwordVariable: String? = nil, path logPath: String) throws -> Int {
        let db = try PostgresConnection(PostgresLocation(url: url, passwordVariable: passwordVariable))
        try PostgresSchema.migrator.migrate(db)
        // The check, which also finds the days to make partitions for (standard input is kept: it reads once).
        // Days are collected as their first microsecond, which `ensurePartitions` maps to itself.
        var kept: [Row]? = logPath == "-" ? [] : nil
        var days = Set<Int64>()
        var count = 0
        try EventStore.readRows(logPath) { row in
            count += 1
            days.insert(PostgresSchema.dayStart(row.ts))
            kept?.append(row)
        }
        try PostgresSchema.ensurePartitions(db, for: days)
        try db.execute("BEGIN")
        do {
            var batch: [[String?]] = []
            batch.reserveCapacity(10_000)
            func send() throws {
                try db.copy(into: "events", columns: columns, rows: batch)
                batch.removeAll(keepingCapacity: true)
            }
            func add(_ row: Row) throws {
                batch.append(values(row))
                if batch.count == 10_000 { try send() }
            }
            if let kept {
                for row in kept { try add(row) }
            } else {
                try EventStore.readRows(logPath) { row throws(StoreError) in
                    do { try add(row) } catch let e as StoreError { throw e } catch { throw StoreError("\(error)") }
                }
            }
            if !batch.isEmpty { try send() }
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
        return count
    }

    static let columns = ["ts", "experiment", "kind", "variant", "user_id", "conversation_id", "request_id", "status", "qa", "line", "name",
                          "numbers", "line_ts", "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "value"]

    /// A row's column values. PostgreSQL's text cannot hold a NUL byte, which a client may put in a user id (JSON's
    /// `\u0000`): in the look-up columns it becomes U+FFFD, so that one such event cannot stop every write; the
    /// line, which the analysis reads, keeps it escaped as JSON has it.
    static func values(_ row: Row) -> [String?] {
        [String(row.ts), clean(row.experiment), row.kind == .request ? "request" : "feedback", clean(row.variant), clean(row.userID),
         clean(row.conversationID), clean(row.requestID), clean(row.status), row.qa ? "1" : "0", clean(row.line), clean(row.name),
         "1", String(row.lineTimestamp)] + row.numbers.map { $0.isFinite ? "\($0)" : nil }
    }

    static func clean(_ text: String) -> String {
        text.utf8.contains(0) ? text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : text
    }
}
