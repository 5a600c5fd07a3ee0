/// Reads an event store through its own read-only connection, which works while a gateway writes (WAL).
public enum StoreReader {
    /// The experiments in the store, by name.
    public static func experiments(path: String) throws(StoreError) -> [String] {
        try experimentCounts(path: path).map(\.name).sorted()
    }

    /// Events (QA events included) per experiment, most first.
    public static func experimentCounts(path: String) throws(StoreError) -> [ExperimentCount] {
        let connection = try Connection(path: path, readOnly: true)
        let s = try connection.prepare("SELECT experiment, count(*) FROM events GROUP BY experiment")
        var counts: [ExperimentCount] = []
        while try s.step() { counts.append(ExperimentCount(name: s.string(0), count: Int(s.int(1)))) }
        return counts.sorted { ($0.count, $1.name) > ($1.count, $0.name) }
    }

    /// The experiment to read: `name` when the store has it, or the store's only experiment when `name` is nil.
    ///
    /// Throws `StoreError` of kind `.empty` (no events), `.experimentNotFound` or `.severalExperiments` (with
    /// the store's experiments, most events first).
    public static func selectExperiment(path: String, named name: String?) throws(StoreError) -> String {
        let counts = try experimentCounts(path: path)
        guard !counts.isEmpty else { throw StoreError.empty(path: path) }
        if let name {
            guard counts.contains(where: { $0.name == name }) else { throw StoreError.experimentNotFound(path: path, name: name, counts: counts) }
            return name
        }
        guard counts.count == 1 else { throw StoreError.severalExperiments(path: path, counts: counts) }
        return counts[0].name
    }

    /// Calls `body` with each stored log line (exactly as `EventRecord.jsonLine()` wrote it, or as imported),
    /// in the order they were committed; one experiment's or all, QA events only when `includeQA`.
    ///
    /// The lines are one snapshot: events committed while this runs are not included. The place of a line
    /// among those of one experiment (QA events included) is its line number in the log that
    /// `bakeoff export --include-qa` writes of that experiment.
    public static func forEachLine(path: String, experiment: String? = nil, includeQA: Bool = false,
                                   _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let connection = try Connection(path: path, readOnly: true)
        var conditions: [String] = []
        if experiment != nil { conditions.append("experiment = ?1") }
        if !includeQA { conditions.append("qa = 0") }
        let s = try connection.prepare("SELECT line FROM events" + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")) + " ORDER BY id")
        if let experiment { s.bind(1, experiment) }
        while try s.step() { try body(s.bytes(0)) }
    }

    /// Calls `body` with the id, timestamp and line of each event of `experiment` (QA events included) written
    /// after the event numbered `after`, in the order they were committed; returns the last id read (`after`
    /// when there is none). Ids only grow, so the last id read is where the next call takes up.
    @discardableResult
    public static func forEachEvent(path: String, experiment: String, after: Int64 = 0,
                                    _ body: (_ id: Int64, _ timestamp: Int64, _ line: UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        let connection = try Connection(path: path, readOnly: true)
        let s = try connection.prepare("SELECT id, ts, line FROM events WHERE experiment = ?1 AND id > ?2 ORDER BY id")
        s.bind(1, experiment)
        s.bind(2, after)
        var last = after
        while try s.step() {
            last = s.int(0)
            try body(last, s.int(1), s.bytes(2))
        }
        return last
    }

    /// The id of the last event of `experiment` (0 when none): whether anything was written since a read.
    public static func lastEventID(path: String, experiment: String) throws -> Int64 {
        let connection = try Connection(path: path, readOnly: true)
        let s = try connection.prepare("SELECT max(id) FROM events WHERE experiment = ?1")
        s.bind(1, experiment)
        guard try s.step() else { return 0 }
        return s.int(0)
    }

    /// The experiments in the store, by name, found by seeking the experiment index once per name (not a scan
    /// of every event, as `experimentCounts` does): quick on a store of millions of events.
    public static func experimentNames(path: String) throws -> [String] {
        let connection = try Connection(path: path, readOnly: true)
        let first = try connection.prepare("SELECT experiment FROM events ORDER BY experiment LIMIT 1")
        let next = try connection.prepare("SELECT experiment FROM events WHERE experiment > ?1 ORDER BY experiment LIMIT 1")
        guard try first.step() else { return [] }
        var names = [first.string(0)]
        while true {
            next.reset()
            next.bind(1, names[names.count - 1])
            guard try next.step() else { break }
            names.append(next.string(0))
        }
        return names
    }
}
