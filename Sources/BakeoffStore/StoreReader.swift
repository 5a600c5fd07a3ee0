import BakeoffCore

/// Reads an event store through its own read-only connection, which works while a gateway writes (WAL).
public enum StoreReader {
    /// The experiments in the store, by name.
    public static func experiments(path: String) throws(StoreError) -> [String] {
        try experimentCounts(path: path).map(\.name).sorted()
    }

    /// Events (QA events included) per experiment, most first.
    public static func experimentCounts(path: String) throws(StoreError) -> [NamedCount] {
        let connection = try Connection(path: path, readOnly: true)
        let s = try connection.prepare("SELECT experiment, count(*) FROM events GROUP BY experiment")
        var counts: [NamedCount] = []
        while try s.step() { counts.append(NamedCount(name: s.string(0), count: Int(s.int(1)))) }
        return counts.sorted { ($0.count, $1.name) > ($1.count, $0.name) }
    }

    /// Calls `body` with each stored log line (exactly as `EventRecord.jsonLine()` wrote it, or as imported),
    /// in the order they were committed; one experiment's or all, QA events only when `includeQA`.
    ///
    /// The lines are one snapshot: events committed while this runs are not included.
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

    /// Aggregates one experiment straight from the store, exactly as `EventLog.aggregate` reads the log that
    /// `bakeoff export --include-qa` writes of it (the same parser and aggregator; QA events are counted
    /// and left out).
    ///
    /// Every option of the log's analysis applies (`experimentStart` and `covariates` for variance
    /// reduction included) but `partitions`: the store is read in one pass.
    ///
    /// Without `options.experiment` the store must hold one experiment; otherwise the error lists them. A
    /// problem in an event names the store and the event's place among the experiment's events, which is its
    /// line number in that exported log.
    public static func aggregate(path: String, options: EventLog.Options) throws -> ExperimentData {
        let counts = try experimentCounts(path: path)
        func listing(_ all: [NamedCount]) -> String {
            let listed = all.prefix(5).map { "\($0.name) (\($0.count) events)" }.joined(separator: ", ")
            return listed + (all.count > 5 ? " and \(all.count - 5) more with \(all.dropFirst(5).reduce(0) { $0 + $1.count }) events" : "")
        }
        guard !counts.isEmpty else { throw StoreError("\(path): no events: the event store is empty; point --db at the gateway's store path, or load a log with bakeoff import") }
        let experiment: String
        if let wanted = options.experiment {
            guard counts.contains(where: { $0.name == wanted }) else {
                throw StoreError("\(path): experiment \"\(wanted)\" not found; the store holds: \(listing(counts))")
            }
            experiment = wanted
        } else if counts.count == 1 {
            experiment = counts[0].name
        } else {
            throw StoreError("\(path): the store holds several experiments: \(listing(counts)); choose one with --experiment")
        }
        var selected = options
        selected.experiment = experiment
        var lines = EventLog.LineAggregator(source: path, options: selected)
        var number = 0
        var bytes: Int64 = 0, reported: Int64 = 0
        let progress = options.progress
        try forEachLine(path: path, experiment: experiment, includeQA: true) { line in
            number += 1
            try lines.add(line, number: number)
            bytes += Int64(line.count + 1)
            if let progress, bytes - reported >= 4 << 20 {
                reported = bytes
                progress(bytes, nil)
            }
        }
        progress?(bytes, nil)
        return try lines.finish()
    }
}
