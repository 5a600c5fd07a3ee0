/// Reads an event store through its own read-only connection, which works while a gateway writes (WAL).
public enum StoreReader {
    /// The experiments in the store, by name.
    public static func experiments(path: String) throws(StoreError) -> [String] {
        try experimentCounts(path: path).map(\.name).sorted()
    }

    /// Events (QA events included) per experiment, most first.
    public static func experimentCounts(path: String) throws(StoreError) -> [ExperimentCount] {
        if PostgresLocation.isURL(path) {
            let db = try PostgresStoreReading.open(path)
            let rows = try db.query("SELECT experiment, count(*) FROM events GROUP BY experiment")
            return rows.rows.map { ExperimentCount(name: $0[0] ?? "", count: Int($0[1] ?? "0") ?? 0) }
                .sorted { ($0.count, $1.name) > ($1.count, $0.name) }
        }
        let events = try EventRowReader(Connection(path: path, readOnly: true))
        let s = try events.connection.prepare("SELECT experiment, count(*) FROM \(events.layout.table) GROUP BY experiment")
        var counts: [ExperimentCount] = []
        while try s.step() { counts.append(ExperimentCount(name: try events.text(s, 0), count: Int(s.int(1)))) }
        return counts.sorted { ($0.count, $1.name) > ($1.count, $0.name) }
    }

    /// The experiment to read: `name` when the store has it, or the store's only experiment when `name` is nil.
    ///
    /// Throws `StoreError` of kind `.empty` (no events), `.experimentNotFound` or `.severalExperiments` (with
    /// the store's experiments, most events first).
    public static func selectExperiment(path: String, named name: String?) throws(StoreError) -> String {
        // The usual cases by index seeks; the counts (a scan of every event) only for the message of an error.
        if let name, try hasExperiment(path: path, name) { return name }
        if name == nil {
            let names: [String]
            do { names = try experimentNames(path: path) } catch let error as StoreError { throw error } catch { throw StoreError("\(path): \(error)") }
            if names.count == 1 { return names[0] }
        }
        let counts = try experimentCounts(path: path)
        guard !counts.isEmpty else { throw StoreError.empty(path: path) }
        if let name {
            guard counts.contains(where: { $0.name == name }) else { throw StoreError.experimentNotFound(path: path, name: name, counts: counts) }
            return name
        }
        guard counts.count == 1 else { throw StoreError.severalExperiments(path: path, counts: counts) }
        return counts[0].name
    }

    /// Whether the store holds an event of `experiment` (one index seek).
    static func hasExperiment(path: String, _ experiment: String) throws(StoreError) -> Bool {
        if PostgresLocation.isURL(path) {
            return try !PostgresStoreReading.open(path).query("SELECT 1 FROM events WHERE experiment = $1 LIMIT 1", [experiment]).rows.isEmpty
        }
        let events = try EventRowReader(Connection(path: path, readOnly: true))
        let s = try events.connection.prepare("SELECT 1 FROM \(events.layout.table) WHERE experiment = ?1 LIMIT 1")
        guard try events.bindString(s, 1, experiment) else { return false }
        return try s.step()
    }

    /// Calls `body` with each stored log line (exactly as `EventRecord.jsonLine()` wrote it, or as imported),
    /// in the order they were committed; one experiment's or all, QA events only when `includeQA`.
    ///
    /// The lines are one snapshot: events committed while this runs are not included. The place of a line
    /// among those of one experiment (QA events included) is its line number in the log that
    /// `bakeoff export --include-qa` writes of that experiment.
    public static func forEachLine(path: String, experiment: String? = nil, includeQA: Bool = false,
                                   _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if PostgresLocation.isURL(path) {
            var conditions: [String] = []
            if experiment != nil { conditions.append("experiment = $1") }
            if !includeQA { conditions.append("qa = 0") }
            try PostgresStoreReading.open(path).forEachRow(
                "SELECT line FROM events" + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")) + " ORDER BY id",
                experiment.map { [$0] } ?? []) { row in try body(row.bytes(0)) }
            return
        }
        let events = try EventRowReader(Connection(path: path, readOnly: true))
        var conditions: [String] = []
        if experiment != nil { conditions.append("experiment = ?1") }
        if !includeQA { conditions.append(events.layout.notQA) }
        let s = try events.select(conditions)
        if let experiment, try !events.bindString(s, 1, experiment) { return }
        while try s.step() { try events.withLine(s, body) }
    }

    /// Calls `body` with the id, timestamp and line of each event of `experiment` (QA events included) written
    /// after the event numbered `after`, in the order they were committed; returns the last id read (`after`
    /// when there is none). Ids only grow, so the last id read is where the next call takes up.
    @discardableResult
    public static func forEachEvent(path: String, experiment: String, after: Int64 = 0,
                                    _ body: (_ id: Int64, _ timestamp: Int64, _ line: UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        if PostgresLocation.isURL(path) {
            var last = after
            try PostgresStoreReading.open(path).forEachRow("SELECT id, ts, line FROM events WHERE experiment = $1 AND id > $2 ORDER BY id",
                                                          [experiment, String(after)]) { row in
                last = row.int(0)
                try body(last, row.int(1), row.bytes(2))
            }
            return last
        }
        let events = try EventRowReader(Connection(path: path, readOnly: true))
        let s = try events.select(["experiment = ?1", "id > ?2"])
        guard try events.bindString(s, 1, experiment) else { return after }
        s.bind(2, after)
        var last = after
        while try s.step() {
            last = s.int(EventRowReader.Column.id)
            let ts = s.int(EventRowReader.Column.ts)
            try events.withLine(s) { try body(last, ts, $0) }
        }
        return last
    }

    /// The id of the last event of `experiment` (0 when none): whether anything was written since a read.
    public static func lastEventID(path: String, experiment: String) throws -> Int64 {
        if PostgresLocation.isURL(path) {
            return try PostgresStoreReading.open(path).query("SELECT max(id) FROM events WHERE experiment = $1", [experiment]).int(0, 0) ?? 0
        }
        let events = try EventRowReader(Connection(path: path, readOnly: true))
        let s = try events.connection.prepare("SELECT max(id) FROM \(events.layout.table) WHERE experiment = ?1")
        guard try events.bindString(s, 1, experiment), try s.step() else { return 0 }
        return s.int(0)
    }

    /// The experiments in the store, by name, found by seeking the experiment index once per name (not a scan
    /// of every event, as `experimentCounts` does): quick on a store of millions of events.
    public static func experimentNames(path: String) throws -> [String] {
        if PostgresLocation.isURL(path) {
            // A loose index scan, one seek per name.
            let rows = try PostgresStoreReading.open(path).query("""
                WITH RECURSIVE names(name) AS (
                    (SELECT experiment FROM events ORDER BY experiment LIMIT 1)
                    UNION ALL
                    SELECT (SELECT experiment FROM events WHERE experiment > names.name ORDER BY experiment LIMIT 1)
                    FROM names WHERE names.name IS NOT NULL)
                SELECT name FROM names WHERE name IS NOT NULL
                """)
            return rows.rows.compactMap { $0[0] }
        }
        let events = try EventRowReader(Connection(path: path, readOnly: true))
        let table = events.layout.table
        let first = try events.connection.prepare("SELECT experiment FROM \(table) ORDER BY experiment LIMIT 1")
        let next = try events.connection.prepare("SELECT experiment FROM \(table) WHERE experiment > ?1 ORDER BY experiment LIMIT 1")
        guard try first.step() else { return [] }
        // Text in an older store, string ids in a compact one: the keys are walked as they are stored.
        var keys = [first.value(0)]
        while true {
            next.reset()
            next.bind(1, keys[keys.count - 1])
            guard try next.step() else { break }
            keys.append(next.value(0))
        }
        var names: [String] = []
        for key in keys {
            switch key {
            case .int(let id): names.append(try events.string(id: id))
            case .text(let text): names.append(text)
            }
        }
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
}

/// Reading a PostgreSQL store: a connection to it, checked to hold a Bakeoff schema this program reads.
enum PostgresStoreReading {
    static func open(_ url: String, answerTimeout: Double? = nil) throws(StoreError) -> PostgresConnection {
        let db = try PostgresConnection(PostgresLocation(url: url, passwordVariable: nil), answerTimeout: answerTimeout)
        let version = try db.schemaVersion()
        if version == 0 {
            throw StoreError(.notAStore, path: db.name, "\(db.name): no Bakeoff event store in this database (no bakeoff_schema table); import events into it first")
        }
        try PostgresSchema.migrator.checkReadable(version, db)
        return db
    }
}
