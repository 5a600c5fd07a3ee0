import BakeoffCore
import BakeoffStatistics

/// An experiment's analysis data computed inside PostgreSQL: the per-user sums of every metric (and, with a
/// start, of the pre-experiment period for CUPED) are made by SQL from the store's events, and only what the
/// statistics need comes back (per-variant sums, counts per rank-test level, the quantile metrics' values in
/// buckets, the data-quality counts), instead of every event.
///
/// The SQL follows `EventAggregator`'s rules, rule for rule, so that the data is the same as the event path's:
/// a request id counts once per period (the first stored copy); a user's variant is that of their first request
/// by time (ties by store order); a conversation belongs to the user of its first stored request and counts its
/// requests as turns; feedback belongs to the period of the request or conversation it names when only one
/// period had read it by then (else to the period of its own time); a feedback value outside the bounds of a
/// metric reading its name is left out, as is per-request feedback without a request id; for each target and
/// name the latest feedback counts (by time, ties by store order); conversation-level feedback that names a
/// request counts for that request's conversation; request-level feedback goes to the user of the request's
/// conversation, request fields and errors to the request's own user; a negative time or a token count below 0
/// or above `EventAggregator.maximumTokenCount` is no value. QA events are left out, and events at or after
/// `until`.
///
/// Sums of fractional values are added in another order than the event path adds them, so they agree with its
/// to about 1e-15 relative, not to the last bit. A quantile metric whose variant has more values than
/// `QuantileSketch.exactLimit` comes back in the sketch's buckets, numbered by the database with its `ln`
/// (the C library's `log`, as the sketch's).
///
/// The intermediate tables are temporary tables of the transaction: the database must accept writes to
/// temporary tables (a hot standby does not, nor a role without the `TEMPORARY` privilege: `StoreError.refusesTemporaryTables`).
public enum PostgresAnalysis {
    /// The analysis data of `options.experiment` (which the store must hold), for `options.metrics`, with
    /// `experimentStart` and `until` applied; `covariates` from a file are not read here (the caller reads
    /// the events for those).
    ///
    /// `valuesLimit`: while no variant has more values of a quantile metric's field than this, the values come
    /// back with their users and are ranked here (the exact quantiles need every value); beyond, each variant's
    /// values are ranked by the database and come back per value up to `QuantileSketch.exactLimit`, per bucket
    /// above (tests lower it to take that path on small data).
    public static func aggregate(url: String, options: EventLog.Options,
                                 valuesLimit: Int = QuantileSketch.exactLimit) throws -> ExperimentData {
        precondition(options.covariates == nil, "covariates from a file need the events")
        let experiment = options.experiment ?? ""
        let metrics = options.metrics
        let start = options.experimentStart, until = options.until
        let sql = PostgresAnalysisSQL(metrics: metrics, start: start)
        let tables = sql.tables(experiment: experiment, until: until)
        // Progress in steps: each table made, then the sums, the rank-test counts, the quantiles and the counts.
        let steps = Int64(tables.count + 4)
        options.progress?(0, steps)
        let db = try PostgresStoreReading.open(url)
        // The temporary tables in the session's memory rather than written out 8 MB at a time (a limit, not an
        // allocation; settable only before the session's first temporary table).
        try db.execute("SET temp_buffers = '1GB'")
        // Not READ ONLY: the intermediate tables are temporary tables, dropped with the transaction.
        try db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        defer { try? db.execute("ROLLBACK") }
        // The planner cannot estimate the sizes of grouped intermediate results, and nested loops over them are
        // quadratic (42 s instead of 0.3 s on 20,000 events).
        try db.execute("SET LOCAL enable_nestloop = off")
        // Room for the sorts and hash tables of millions of rows in memory (the default, 4 MB, spills them to
        // temporary files); for this transaction only.
        try db.execute("SET LOCAL work_mem = '256MB'")
        // Compiling these statements (JIT, on by default from PostgreSQL 12 above a plan cost they all pass) took
        // longer than running them: 1 to 2 s each on a million events.
        try db.execute("SET LOCAL jit = off")
        for (i, statement) in tables.enumerated() {
            try db.execute(statement)
            options.progress?(Int64(i + 1), steps)
        }

        // Variants, in the order of their first stored request.
        var variants: [VariantData] = []
        try db.withRows(PostgresAnalysisSQL.variantsQuery) { row in
            variants.append(VariantData(name: row.string(0), users: Int(row.int(1)), requests: Int(row.int(2))))
        }
        try checkVariants(variants.map(\.name), url: db.name, experiment: experiment)
        let index = Dictionary(variants.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })

        // Sums of the non-quantile metrics.
        var data: [MetricData?] = metrics.map { _ in nil }
        for k in metrics.indices where metrics[k].kind != .quantile {
            data[k] = MetricData(metric: metrics[k], perVariant: variants.map { _ in RatioMoments() },
                                 unitMoments: variants.map { _ in SampleMoments(n: 0, sum: 0, sumOfSquares: 0) })
            if start != nil && metrics[k].varianceReduction {
                data[k]!.covariates = variants.map { _ in RatioCUPEDMoments() }
                data[k]!.usersWithCovariate = variants.map { _ in 0 }
            }
        }
        try db.withRows(sql.sumsQuery) { row in
            let k = Int(row.int(0))
            guard let v = index[row.string(1)], data[k] != nil else { return }
            func number(_ column: Int) -> Double { Double(row.string(column)) ?? 0 }
            let n = number(2), m = number(3), mm = number(4), d = number(5), dd = number(6), md = number(7), q = number(8)
            let numerator = SampleMoments(n: n, sum: m, sumOfSquares: mm), denominator = SampleMoments(n: n, sum: d, sumOfSquares: dd)
            data[k]!.perVariant[v] = RatioMoments(n: n, numerator: numerator, denominator: denominator, sumOfProducts: md)
            data[k]!.unitMoments[v] = SampleMoments(n: d, sum: m, sumOfSquares: q)
            if data[k]!.covariates != nil {
                data[k]!.covariates![v] = RatioCUPEDMoments(
                    n: n, numerator: numerator, denominator: denominator,
                    preNumerator: SampleMoments(n: n, sum: number(9), sumOfSquares: number(10)),
                    preDenominator: SampleMoments(n: n, sum: number(11), sumOfSquares: number(12)),
                    numeratorDenominator: md, preNumeratorPreDenominator: number(13), numeratorPreNumerator: number(14),
                    denominatorPreDenominator: number(15), numeratorPreDenominator: number(16), denominatorPreNumerator: number(17))
                data[k]!.usersWithCovariate![v] = Int(row.int(18))
            }
        }
        options.progress?(steps - 3, steps)

        // Rank tests: units per distinct value and variant, for metrics with at most `ordinalLevelLimit` values.
        var overLevelLimit: [String] = []
        let ranked = metrics.indices.filter { metrics[$0].kind != .quantile && metrics[$0].rankTest != nil }
        if !ranked.isEmpty {
            var levels: [Int: Int] = [:]
            try db.withRows(sql.levelsQuery(ranked)) { row in levels[Int(row.int(0))] = Int(row.int(1)) }
            let counted = ranked.filter { (levels[$0] ?? 0) <= EventAggregator.ordinalLevelLimit }
            overLevelLimit = ranked.filter { !counted.contains($0) }.map { metrics[$0].name }
            var counts: [Int: [Double: [Int]]] = [:]
            for k in counted { counts[k] = [:] }
            if !counted.isEmpty {
                try db.withRows(sql.ordinalQuery(counted)) { row in
                    guard let v = index[row.string(1)], let x = Double(row.string(2)) else { return }
                    counts[Int(row.int(0)), default: [:]][x, default: variants.map { _ in 0 }][v] += Int(row.int(3))
                }
            }
            for k in counted {
                let byLevel = counts[k] ?? [:]
                let ascending = byLevel.keys.sorted()
                data[k]!.ordinal = OrdinalCounts(levels: ascending, counts: variants.indices.map { v in ascending.map { byLevel[$0]![v] } })
            }
        }
        options.progress?(steps - 2, steps)

        // Quantile metrics: each request field's values per variant, with their users' steps.
        let users = variants.map(\.users)
        var fields: [RequestField] = []
        for m in metrics where m.kind == .quantile {
            if case .field(let field) = m.source, !fields.contains(field) { fields.append(field) }
        }
        var sketches: [RequestField: ([QuantileSketch], [ClusteredQuantileSketch])] = [:]
        if !fields.isEmpty {
            var largest = 0
            try db.withRows(PostgresAnalysisSQL.valueCounts(fields)) { row in
                for j in fields.indices { largest = max(largest, Int(row.int(j))) }
            }
            if largest <= valuesLimit {
                sketches = try rankedHere(db, fields: fields, variants: variants.map(\.name))
            } else {
                for field in fields { sketches[field] = try rankedByDatabase(db, field: field, variants: variants.map(\.name)) }
            }
        }
        for k in metrics.indices where metrics[k].kind == .quantile {
            guard case .field(let field) = metrics[k].source, let (plain, clustered) = sketches[field] else { continue }
            data[k] = MetricData(quantileMetric: metrics[k], sketches: plain, clustered: clustered, users: users)
        }
        options.progress?(steps - 1, steps)

        // Counts, and what looked wrong.
        let counts = try db.query(sql.countsQuery(experiment: experiment, until: until))
        func count(_ c: Int) -> Int { Int(counts.int(0, c) ?? 0) }
        var quality = DataQuality()
        let requestEvents = count(0), feedbackEvents = count(1)
        quality.duplicateRequestIDs = count(4) - requestEvents
        quality.usersInSeveralVariants = count(5)
        quality.conversationsOfSeveralUsers = count(6)
        quality.implausibleRequestValues = count(7)
        quality.eventsAfterCut = count(8)
        quality.qaRequestsExcluded = count(9)
        quality.qaFeedbackExcluded = count(10)
        quality.feedbackWithMissingTarget = count(11)
        if start != nil {
            quality.preExperimentRequests = count(12)
            quality.preExperimentFeedback = count(13)
            try db.withRows("SELECT variant, count(*) FROM usr WHERE post = 0 GROUP BY variant") { row in
                quality.preExperimentVariants.append(NamedCount(name: row.string(0), count: Int(row.int(1))))
            }
            quality.preExperimentVariants.sort { $0.name < $1.name }
        }
        // Users by the hour of their first request, for the looks of a group-sequential test.
        var arrivals: [HourCount] = []
        try db.withRows("SELECT first_ts - ((first_ts % \(HourCount.hour)) + \(HourCount.hour)) % \(HourCount.hour) AS hour, count(*) FROM usr WHERE post = 1 GROUP BY 1 ORDER BY 1") { row in
            arrivals.append(HourCount(hour: row.int(0), users: Int(row.int(1))))
        }
        try db.withRows(sql.unusedNamesQuery) { row in
            quality.unusedFeedbackNames.append(NamedCount(name: row.string(0), count: Int(row.int(1))))
        }
        var unusable: [UnusableFeedback] = []
        for rules in sql.periods {
            try db.withRows(rules.unusableQuery) { row in
                let reason = rules.reasons[Int(row.int(1))]
                let value = Double(row.string(3)) ?? .nan
                let target = row.string(4).isEmpty ? "conversation \(row.string(5))" : "request \(row.string(4))"
                unusable.append(UnusableFeedback(name: row.string(0), reason: reason, count: Int(row.int(2)),
                                                 example: "\(row.string(0)) = \(JSONWriter.number(value)) for \(target)"))
            }
        }
        quality.unusableFeedback = UnusableFeedback.combine(unusable)
        quality.ordinalMetricsOverLevelLimit = overLevelLimit
        options.progress?(steps, steps)
        // The checks every way of reading shares (no request after the start, nothing of the experiment).
        var result = ExperimentData(
            experiment: experiment, variants: variants, metrics: data.compactMap { $0 },
            requestEvents: requestEvents, feedbackEvents: feedbackEvents,
            firstTimestamp: requestEvents > 0 ? counts.int(0, 2) : nil, lastTimestamp: requestEvents > 0 ? counts.int(0, 3) : nil,
            dataQuality: quality)
        result.newUsersByHour = arrivals
        return try EventLog.check(result, path: url, options: options, empty: false)
    }

    /// The event path's limits on variants: at most 64, names that differ beyond their Unicode normalization.
    static func checkVariants(_ names: [String], url: String, experiment: String) throws(StoreError) {
        if names.count > 64 {
            throw StoreError("\(url): experiment \"\(experiment)\": more than 64 variants in one experiment (new variant \"\(names[64])\")")
        }
        for (i, name) in names.enumerated() {
            if let twin = names[..<i].first(where: { $0 == name }) {
                throw StoreError("\(url): experiment \"\(experiment)\": variant \"\(name)\" differs from variant \"\(twin)\" only in its Unicode normalization; spell it one way")
            }
        }
    }

    /// The request fields' values per variant (indexed like `variants`), from one read of every value with its
    /// user and the user's variant, ranked as the event path ranks them (`FieldQuantiles`).
    static func rankedHere(_ db: PostgresConnection, fields: [RequestField], variants: [String])
        throws -> [RequestField: ([QuantileSketch], [ClusteredQuantileSketch])] {
        let index = Dictionary(variants.enumerated().map { ($1, UInt8($0)) }, uniquingKeysWith: { a, _ in a })
        var userIndex: [String: Int] = [:]
        var firstVariant: [UInt8] = []
        var values = fields.map { _ in FieldQuantiles() }
        try db.forEachRowInTransaction(PostgresAnalysisSQL.fieldValuesWithUsers(fields), batch: 50_000) { row in
            let name = row.string(1)
            let user: Int
            if let known = userIndex[name] {
                user = known
            } else {
                user = firstVariant.count
                userIndex[name] = user
                firstVariant.append(index[row.string(0)] ?? 0)
            }
            for j in fields.indices where !row.isNull(2 + j) {
                if let x = Double(row.string(2 + j)) { values[j].add(x, user: user) }
            }
        }
        var out: [RequestField: ([QuantileSketch], [ClusteredQuantileSketch])] = [:]
        for (j, field) in fields.enumerated() {
            let (plain, clustered) = values[j].perVariant(firstVariant, variantCount: variants.count)
            out[field] = (plain, clustered)
        }
        return out
    }

    /// One request field's values per variant (indexed like `variants`), ranked by the database, as the event
    /// path's sketches hold them: every value with its user's step while a variant has at most
    /// `QuantileSketch.exactLimit`, counts and step sums per bucket beyond.
    static func rankedByDatabase(_ db: PostgresConnection, field: RequestField, variants: [String])
        throws -> ([QuantileSketch], [ClusteredQuantileSketch]) {
        try db.execute("DROP TABLE IF EXISTS field_values")
        try db.execute(PostgresAnalysisSQL.fieldValues(field))
        var sizes: [String: (count: Int, squares: Double)] = [:]
        try db.withRows("SELECT variant, count(*), sum(c * c) FILTER (WHERE step = 1) FROM field_values GROUP BY variant") { row in
            sizes[row.string(0)] = (Int(row.int(1)), Double(row.string(2)) ?? 0)
        }
        var plain: [QuantileSketch] = [], clustered: [ClusteredQuantileSketch] = []
        for name in variants {
            let (count, squares) = sizes[name] ?? (0, 0)
            if count <= QuantileSketch.exactLimit {
                var values: [Double] = [], entries: [ClusteredQuantileSketch.Entry] = []
                values.reserveCapacity(count)
                entries.reserveCapacity(count)
                if count > 0 {
                    try db.forEachRowInTransaction("SELECT x, step, c FROM field_values WHERE variant = $1 ORDER BY x", [name], batch: 50_000) { row in
                        let x = Double(row.string(0)) ?? .nan
                        values.append(x)
                        entries.append(.init(value: x, squareStep: UInt32(truncatingIfNeeded: row.int(1)), userCount: UInt32(truncatingIfNeeded: row.int(2))))
                    }
                }
                plain.append(QuantileSketch(sorted: values))
                clustered.append(ClusteredQuantileSketch(sorted: entries, countSumSquares: squares))
            } else {
                var rows: [(index: Int, count: Int, squareSteps: UInt64, userCounts: UInt64)] = []
                try db.withRows(PostgresAnalysisSQL.bucketsQuery, [name]) { row in
                    rows.append((Int(row.int(0)), Int(row.int(1)), UInt64(row.int(2)), UInt64(row.int(3))))
                }
                plain.append(QuantileSketch(bucketCounts: rows.map { ($0.index, $0.count) }))
                clustered.append(ClusteredQuantileSketch(buckets: rows, countSumSquares: squares))
            }
        }
        return (plain, clustered)
    }
}

extension StoreError {
    /// The database takes no temporary tables from this session: a hot standby (read-only transaction) or a role
    /// without the `TEMPORARY` privilege (insufficient privilege).
    public var refusesTemporaryTables: Bool { kind == .postgres(sqlState: "25006") || kind == .postgres(sqlState: "42501") }
}

/// The SQL of `PostgresAnalysis`: temporary tables of the experiment's events and their per-period units, then
/// the queries over them. Period 1 is the experiment (from the start on), 0 the pre-experiment period.
package struct PostgresAnalysisSQL {
    let metrics: [Metric]
    let start: Int64?
    /// The feedback rules of each period: the experiment's metrics, and with a start the pre-period's (metrics
    /// with variance reduction only, as `EventAggregator`'s pre-period aggregator).
    let periods: [FeedbackRules]

    init(metrics: [Metric], start: Int64?) {
        self.metrics = metrics
        self.start = start
        var periods = [FeedbackRules(id: 1, metrics: metrics.filter { $0.kind != .quantile })]
        if start != nil { periods.append(FeedbackRules(id: 0, metrics: metrics.filter { $0.kind != .quantile && $0.varianceReduction })) }
        self.periods = periods
    }

    /// Text as a SQL string literal.
    static func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    static func number(_ x: Double) -> String { x.isFinite ? "CAST('\(x)' AS float8)" : (x > 0 ? "'Infinity'::float8" : "'-Infinity'::float8") }

    /// An event's time as its line has it, which the event path reads (`ts` keeps the gateway's microseconds):
    /// from its column, or parsed from the line for rows written before it.
    static let lineTime = "CASE WHEN numbers = 1 THEN line_ts ELSE CAST(extract(epoch FROM CAST(CAST(line AS jsonb) ->> 'ts' AS timestamptz)) * 1000000 AS bigint) END"

    /// A text column compared byte by byte (collation "C") in the temporary tables: their sorts, groupings and joins
    /// of ids are 3 to 5 times as fast as in a database's linguistic collation (equality is the same).
    static func bytewise(_ column: String) -> String { "\(column) COLLATE \"C\" AS \(column)" }

    /// When a request's value of `field` is one (`EventAggregator` leaves out a negative time and a token count
    /// beyond its maximum).
    static func plausible(_ field: RequestField, _ column: String) -> String {
        switch field {
        case .latencyMs, .ttftMs: return "\(column) >= 0"
        case .inputTokens, .outputTokens: return "\(column) >= 0 AND \(column) <= \(number(EventAggregator.maximumTokenCount))"
        }
    }

    /// The statements that make the temporary tables: `req` (each request id's first copy per period, with its
    /// period; `req_counts` counts every copy), `fb` (feedback with its period: requests by their time, feedback
    /// by what had been read of its target by then), `conv` (per period, each conversation's user, of its first
    /// stored request, and turns), `usr` (per period, each user's variant, of the first request by time, and
    /// days), `fbu` (feedback the rules can use), `unit` (the unit values of the metrics of feedback, turns and
    /// repeat usage) and `per_user` (every metric's per-user sums; those of the request metrics straight from the
    /// requests, which are most of the units).
    func tables(experiment: String, until: Int64?) -> [String] {
        let e = Self.literal(experiment)
        let cut = until.map { "line_time < \($0)" } ?? "TRUE"
        let period = start.map { "CASE WHEN line_time >= \($0) THEN 1 ELSE 0 END" } ?? "1"
        // The numbers from their columns; rows written before those (migration 4) from their lines.
        let fields = RequestField.allCases.map {
            "CASE WHEN numbers = 1 THEN \($0.rawValue) ELSE CAST(CAST(line AS jsonb) ->> \(Self.literal($0.rawValue)) AS float8) END AS \($0.rawValue)"
        }.joined(separator: ", ")
        var s: [String] = []
        s.append("""
            CREATE TEMP TABLE req ON COMMIT DROP AS
            SELECT id, line_time AS ts, \(Self.bytewise("variant")), \(Self.bytewise("user_id")), \(Self.bytewise("conversation_id")),
                   \(Self.bytewise("request_id")), status, \(fields), \(period) AS post
            FROM (SELECT events.*, \(Self.lineTime) AS line_time FROM events WHERE experiment = \(e) AND qa = 0 AND kind = 'request') events
            WHERE \(cut)
            """)
        let implausible = RequestField.allCases.map { "NOT (\($0.rawValue) IS NULL OR (\(Self.plausible($0, $0.rawValue))))" }.joined(separator: " OR ")
        s.append("""
            CREATE TEMP TABLE req_counts ON COMMIT DROP AS
            SELECT count(*) FILTER (WHERE post = 1) AS copies, count(*) FILTER (WHERE \(implausible)) AS implausible FROM req
            """)
        // Each request id's first copy per period: the later copies of the (few) ids stored more than once go.
        s.append("""
            CREATE TEMP TABLE duplicates ON COMMIT DROP AS
            SELECT post, request_id, MIN(id) AS first FROM req GROUP BY post, request_id HAVING COUNT(*) > 1
            """)
        s.append("DELETE FROM req r USING duplicates d WHERE r.post = d.post AND r.request_id = d.request_id AND r.id <> d.first")
        s.append("ANALYZE req")
        let value = """
            CASE WHEN numbers = 1 THEN value
                 WHEN jsonb_typeof(CAST(line AS jsonb) -> 'value') = 'boolean' THEN CAST(CAST(CAST(line AS jsonb) ->> 'value' AS boolean) AS integer)
                 ELSE CAST(CAST(line AS jsonb) ->> 'value' AS float8) END
            """
        let feedback = """
            SELECT id, line_time AS ts, \(Self.bytewise("name")), \(Self.bytewise("request_id")), \(Self.bytewise("conversation_id")), \(value) AS value
            FROM (SELECT events.*, \(Self.lineTime) AS line_time FROM events WHERE experiment = \(e) AND qa = 0 AND kind = 'feedback') events
            WHERE \(cut)
            """
        if let start {
            // What had been read of a feedback's target by then, per period: the first stored request naming it.
            s.append("CREATE TEMP TABLE fb_all ON COMMIT DROP AS \(feedback)")
            s.append("CREATE TEMP TABLE known_request ON COMMIT DROP AS SELECT post, request_id AS target, MIN(id) AS first FROM req GROUP BY post, request_id")
            s.append("CREATE TEMP TABLE known_conversation ON COMMIT DROP AS SELECT post, conversation_id AS target, MIN(id) AS first FROM req GROUP BY post, conversation_id")
            s.append("ANALYZE fb_all, known_request, known_conversation")
            s.append("""
                CREATE TEMP TABLE fb ON COMMIT DROP AS
                SELECT f.id, f.ts, f.name, f.request_id, f.conversation_id, f.value,
                       CASE WHEN f.ts < \(start) THEN (CASE WHEN f.pre_knows OR NOT f.post_knows THEN 0 ELSE 1 END)
                            ELSE (CASE WHEN f.post_knows OR NOT f.pre_knows THEN 1 ELSE 0 END) END AS post
                FROM (
                    SELECT e.id, e.ts, e.name, e.request_id, e.conversation_id, e.value,
                           COALESCE(CASE WHEN e.request_id <> '' THEN r0.first ELSE c0.first END < e.id, FALSE) AS pre_knows,
                           COALESCE(CASE WHEN e.request_id <> '' THEN r1.first ELSE c1.first END < e.id, FALSE) AS post_knows
                    FROM fb_all e
                    LEFT JOIN known_request r0 ON r0.post = 0 AND r0.target = e.request_id
                    LEFT JOIN known_request r1 ON r1.post = 1 AND r1.target = e.request_id
                    LEFT JOIN known_conversation c0 ON c0.post = 0 AND c0.target = e.conversation_id
                    LEFT JOIN known_conversation c1 ON c1.post = 1 AND c1.target = e.conversation_id
                ) f
                """)
        } else {
            s.append("CREATE TEMP TABLE fb ON COMMIT DROP AS SELECT id, ts, name, request_id, conversation_id, value, 1 AS post FROM (\(feedback)) f")
        }
        s.append("""
            CREATE TEMP TABLE conv ON COMMIT DROP AS
            SELECT g.post, g.conversation_id, r.user_id, g.turns, g.shared
            FROM (SELECT post, conversation_id, MIN(id) AS first, COUNT(*) AS turns,
                         MIN(user_id) <> MAX(user_id) AS shared
                  FROM req GROUP BY post, conversation_id) g
            JOIN req r ON r.id = g.first
            """)
        s.append("""
            CREATE TEMP TABLE usr ON COMMIT DROP AS
            SELECT post, user_id, MIN(variant) AS variant, CASE WHEN MIN(day) <> MAX(day) THEN 2 ELSE 1 END AS days,
                   MIN(variant) <> MAX(variant) AS mixed, MIN(ts) AS first_ts
            FROM (SELECT post, user_id, variant, ts, (ts - ((ts % \(PostgresSchema.day)) + \(PostgresSchema.day)) % \(PostgresSchema.day)) / \(PostgresSchema.day) AS day
                  FROM req) r
            GROUP BY post, user_id
            """)
        // A user seen in several variants (rare) is in that of their first request by time (ties: stored first).
        s.append("""
            UPDATE usr u SET variant = f.variant FROM (
                SELECT DISTINCT ON (r.post, r.user_id) r.post, r.user_id, r.variant
                FROM req r JOIN usr m ON m.mixed AND m.post = r.post AND m.user_id = r.user_id
                ORDER BY r.post, r.user_id, r.ts, r.id) f
            WHERE u.mixed AND u.post = f.post AND u.user_id = f.user_id
            """)
        s.append("ANALYZE fb, conv, usr")
        s.append("CREATE TEMP TABLE fbu ON COMMIT DROP AS \(periods.map { $0.usable() }.joined(separator: "\nUNION ALL\n"))")
        s.append("ANALYZE fbu")
        s.append(unitTable)
        s.append(perUserTable)
        return s
    }

    /// The request metrics (errors and request fields, quantiles aside) with their periods: in the experiment,
    /// and before it for those with variance reduction.
    private var requestMetrics: [(index: Int, metric: Metric, period: Int)] {
        var out: [(Int, Metric, Int)] = []
        for (k, m) in metrics.enumerated() where m.kind != .quantile {
            switch m.source {
            case .errors, .field:
                out.append((k, m, 1))
                if start != nil && m.varianceReduction { out.append((k, m, 0)) }
            default:
                break
            }
        }
        return out
    }

    /// A request metric's unit value and when a request has one.
    static func requestUnit(_ metric: Metric) -> (x: String, has: String) {
        switch metric.source {
        case .errors: return ("CASE WHEN status = 'ok' THEN 0.0 ELSE 1.0 END", "TRUE")
        case .field(let field): return (field.rawValue, "\(field.rawValue) IS NOT NULL AND \(plausible(field, field.rawValue))")
        default: preconditionFailure("not a request metric")
        }
    }

    /// Per metric, period and user with units: Σ unit values (m), units (d), Σ unit values² (q). The request
    /// metrics in one pass over the requests, grouped by user; the others from `unit`.
    private var perUserTable: String {
        var branches = ["SELECT metric, post, user_id, SUM(x) AS m, CAST(COUNT(*) AS float8) AS d, SUM(x * x) AS q FROM unit GROUP BY metric, post, user_id"]
        let request = requestMetrics
        if !request.isEmpty {
            var columns: [String] = []
            for (i, r) in request.enumerated() {
                let (x, has) = Self.requestUnit(r.metric)
                let when = "post = \(r.period) AND \(has)"
                columns.append("SUM(\(x)) FILTER (WHERE \(when)) AS m\(i), CAST(COUNT(*) FILTER (WHERE \(when)) AS float8) AS d\(i), SUM(\(x) * \(x)) FILTER (WHERE \(when)) AS q\(i)")
            }
            let rows = request.enumerated().map { i, r in "(\(r.index), \(r.period), g.m\(i), g.d\(i), g.q\(i))" }.joined(separator: ", ")
            branches.append("""
                SELECT v.metric, g.post, g.user_id, v.m, v.d, v.q
                FROM (SELECT post, user_id, \(columns.joined(separator: ",\n    ")) FROM req GROUP BY post, user_id) g
                CROSS JOIN LATERAL (VALUES \(rows)) AS v(metric, period, m, d, q)
                WHERE v.period = g.post AND v.d > 0
                """)
        }
        return "CREATE TEMP TABLE per_user ON COMMIT DROP AS\n" + branches.joined(separator: "\nUNION ALL\n")
    }

    /// A rank-tested metric's units in the experiment: (user_id, x).
    func rankedUnits(_ k: Int) -> String {
        let m = metrics[k]
        switch m.source {
        case .errors, .field:
            let (x, has) = Self.requestUnit(m)
            return "SELECT \(k) AS metric, user_id, CAST(\(x) AS float8) AS x FROM req WHERE post = 1 AND \(has)"
        default:
            return "SELECT metric, user_id, x FROM unit WHERE post = 1 AND metric = \(k)"
        }
    }

    /// The unit values of every non-quantile metric (metric, post, user_id, x): in both periods for metrics with
    /// variance reduction when there is a start, else in the experiment's.
    private var unitTable: String {
        let post = periods[0], pre = periods.count > 1 ? periods[1] : nil
        var unitSQL: [String] = []
        for (k, m) in metrics.enumerated() where m.kind != .quantile {
            if let sql = Self.units(m, index: k, period: 1, rules: post) { unitSQL.append(sql) }
            if let pre, m.varianceReduction, let sql = Self.units(m, index: k, period: 0, rules: pre) { unitSQL.append(sql) }
        }
        let rows = unitSQL.isEmpty ? "SELECT 0 AS metric, 0 AS post, ''::text AS user_id, 0::float8 AS x WHERE FALSE" : unitSQL.joined(separator: "\nUNION ALL\n")
        let conversationNames = { (rules: FeedbackRules) in "f.rules = \(rules.id) AND f.name IN (\(rules.conversationNameList()))" }
        let requestNames = { (rules: FeedbackRules) in "f.rules = \(rules.id) AND f.name IN (\(rules.requestNameList()))" }
        return """
            CREATE TEMP TABLE unit ON COMMIT DROP AS
            WITH
            conv_slot AS (  -- the latest feedback per conversation and name (naming a request: its conversation)
                SELECT DISTINCT ON (g.rules, g.post, g.conversation_id, g.name) g.rules, g.post, g.conversation_id, g.name, g.value
                FROM (
                    SELECT f.rules, f.post, f.id, f.ts, f.name, f.value,
                           CASE WHEN f.request_id <> '' THEN r.conversation_id ELSE f.conversation_id END AS conversation_id
                    FROM fbu f LEFT JOIN req r ON r.post = f.post AND r.request_id = f.request_id AND f.request_id <> ''
                    WHERE \(periods.map { "(\(conversationNames($0)))" }.joined(separator: " OR "))
                ) g
                WHERE g.conversation_id IS NOT NULL
                ORDER BY g.rules, g.post, g.conversation_id, g.name, g.ts DESC, g.id DESC
            ),
            request_slot AS (  -- the latest feedback per request and name
                SELECT DISTINCT ON (f.rules, f.post, f.request_id, f.name) f.rules, f.post, f.request_id, f.name, f.value
                FROM fbu f
                WHERE \(periods.map { "(\(requestNames($0)))" }.joined(separator: " OR "))
                ORDER BY f.rules, f.post, f.request_id, f.name, f.ts DESC, f.id DESC
            )
            \(rows)
            """
    }

    /// The unit values of one metric of feedback, turns or repeat usage in one period's rules: rows (metric, post,
    /// user_id, x).
    static func units(_ metric: Metric, index k: Int, period: Int, rules: FeedbackRules) -> String? {
        let head = "SELECT \(k) AS metric, \(period) AS post"
        switch metric.source {
        case .feedback(let name):
            // A name read at both levels is read per conversation: a per-request metric of it has no units.
            if metric.level != .request {
                guard rules.conversationNames.contains(name) else { return nil }
                return """
                    \(head), c.user_id, s.value AS x FROM conv_slot s
                    JOIN conv c ON c.post = s.post AND c.conversation_id = s.conversation_id
                    WHERE s.post = \(period) AND s.name = \(literal(name)) AND s.rules = \(rules.id)
                    """
            }
            guard rules.requestNames.contains(name) else { return nil }
            return """
                \(head), c.user_id, s.value AS x FROM request_slot s
                JOIN req r ON r.post = s.post AND r.request_id = s.request_id
                JOIN conv c ON c.post = r.post AND c.conversation_id = r.conversation_id
                WHERE s.post = \(period) AND s.name = \(literal(name)) AND s.rules = \(rules.id)
                """
        case .turns:
            return "\(head), user_id, CAST(turns AS float8) AS x FROM conv WHERE post = \(period)"
        case .repeatUsage:
            return "\(head), user_id, CASE WHEN days >= 2 THEN 1.0 ELSE 0.0 END AS x FROM usr WHERE post = \(period)"
        case .errors, .field:
            return nil  // summed per user straight from the requests (`perUserTable`)
        }
    }

    /// Which feedback names a period's metrics read, at which level, and the values they take (as
    /// `EventAggregator` sets them up from its metrics: a name read at both levels is read per conversation).
    struct FeedbackRules {
        /// The period the rules are for (1 the experiment, 0 the pre-experiment period).
        var id: Int
        var conversationNames: [String] = []
        var requestNames: [String] = []
        /// Per name, the distinct values its metrics accept, in the order of the metrics.
        var bounds: [(name: String, bounds: ValueBounds)] = []

        init(id: Int, metrics: [Metric]) {
            self.id = id
            for m in metrics {
                guard case .feedback(let name) = m.source else { continue }
                if m.level == .request {
                    if !requestNames.contains(name) { requestNames.append(name) }
                } else if !conversationNames.contains(name) {
                    conversationNames.append(name)
                }
                if !bounds.contains(where: { $0.name == name && $0.bounds == m.acceptedValues }) { bounds.append((name, m.acceptedValues)) }
            }
            requestNames.removeAll { conversationNames.contains($0) }
        }

        var names: [String] { conversationNames + requestNames }

        static func within(_ b: ValueBounds, _ value: String) -> String {
            "(\(value) >= \(number(b.lower)) AND \(value) <= \(number(b.upper))\(b.integers ? " AND \(value) = round(\(value))" : ""))"
        }

        /// Why the rules cannot use a feedback event, as an index into `reasons` (NULL when they can), as the
        /// event path decides: the first bounds of its name it is outside, else a per-request name without a
        /// request id.
        var reasonColumn: String {
            var cases: [String] = []
            for (i, b) in bounds.enumerated() {
                cases.append("WHEN f.name = \(literal(b.name)) AND NOT \(Self.within(b.bounds, "f.value")) THEN \(i)")
            }
            if !requestNames.isEmpty {
                cases.append("WHEN f.request_id = '' AND f.name IN (\(requestNames.map(literal).joined(separator: ", "))) THEN \(bounds.count)")
            }
            return cases.isEmpty ? "NULL::integer" : "CASE \(cases.joined(separator: " ")) END"
        }

        /// The words of `reasonColumn`'s values.
        var reasons: [String] { bounds.map { "value not \($0.bounds.requirement)" } + ["per request, but names no request_id"] }

        /// Feedback of the rules' period that they can use: (rules, post, id, ts, name, value, request_id,
        /// conversation_id).
        func usable() -> String {
            guard !names.isEmpty else { return "SELECT \(id) AS rules, 0 AS post, 0::bigint AS id, 0::bigint AS ts, ''::text AS name, 0::float8 AS value, ''::text AS request_id, ''::text AS conversation_id WHERE FALSE" }
            return """
                SELECT \(id) AS rules, f.post, f.id, f.ts, f.name, f.value, f.request_id, f.conversation_id FROM fb f
                WHERE f.post = \(id) AND f.name IN (\(names.map(literal).joined(separator: ", "))) AND \(reasonColumn) IS NULL
                """
        }

        /// Feedback of the rules' period they cannot use, per name and reason: (name, reason, count, and the
        /// first one's value, request id and conversation id).
        var unusableQuery: String {
            guard !names.isEmpty else { return "SELECT ''::text, 0, 0, '', '', '' WHERE FALSE" }
            return """
                SELECT name, reason, count(*), (array_agg(value ORDER BY id))[1], (array_agg(request_id ORDER BY id))[1],
                       (array_agg(conversation_id ORDER BY id))[1]
                FROM (SELECT f.*, \(reasonColumn) AS reason FROM fb f
                      WHERE f.post = \(id) AND f.name IN (\(names.map(literal).joined(separator: ", ")))) g
                WHERE reason IS NOT NULL GROUP BY name, reason
                """
        }

        func conversationNameList() -> String { conversationNames.isEmpty ? "NULL" : conversationNames.map(literal).joined(separator: ", ") }
        func requestNameList() -> String { requestNames.isEmpty ? "NULL" : requestNames.map(literal).joined(separator: ", ") }
    }

    /// Per metric and variant: users, Σm, Σm², Σd, Σd², Σmd, Σ unit values²; with a start the pre-period
    /// sums Σmp, Σmp², Σdp, Σdp², Σmp·dp, Σm·mp, Σd·dp, Σm·dp, Σd·mp and the users with pre-period units.
    var sumsQuery: String {
        """
        WITH
        joined AS (
            SELECT p.metric, u.variant, p.m, p.d, p.q, COALESCE(b.m, 0) AS mp, COALESCE(b.d, 0) AS dp
            FROM per_user p
            JOIN usr u ON u.post = 1 AND u.user_id = p.user_id
            LEFT JOIN per_user b ON b.metric = p.metric AND b.post = 0 AND b.user_id = p.user_id
            WHERE p.post = 1
        )
        SELECT metric, variant, COUNT(*), SUM(m), SUM(m * m), SUM(d), SUM(d * d), SUM(m * d), SUM(q),
               SUM(mp), SUM(mp * mp), SUM(dp), SUM(dp * dp), SUM(mp * dp), SUM(m * mp), SUM(d * dp), SUM(m * dp), SUM(d * mp),
               COUNT(*) FILTER (WHERE dp > 0)
        FROM joined GROUP BY metric, variant ORDER BY metric, variant
        """
    }

    /// The variants in the order of their first stored request from the start on, with their users and the
    /// requests of their users' conversations.
    static let variantsQuery = """
        SELECT v.variant, COALESCE(u.users, 0), COALESCE(t.requests, 0)
        FROM (SELECT variant, MIN(id) AS first FROM req WHERE post = 1 GROUP BY variant) v
        LEFT JOIN (SELECT variant, COUNT(*) AS users FROM usr WHERE post = 1 GROUP BY variant) u ON u.variant = v.variant
        LEFT JOIN (SELECT u.variant, SUM(c.turns) AS requests FROM conv c JOIN usr u ON u.post = 1 AND u.user_id = c.user_id
                   WHERE c.post = 1 GROUP BY u.variant) t ON t.variant = v.variant
        ORDER BY v.first
        """

    /// Distinct unit values of each of `metrics` (indices) in the experiment.
    func levelsQuery(_ metrics: [Int]) -> String {
        "SELECT metric, COUNT(DISTINCT x) FROM (\(metrics.map(rankedUnits).joined(separator: " UNION ALL "))) u GROUP BY metric"
    }

    /// Units per metric (of `metrics`), variant and value.
    func ordinalQuery(_ metrics: [Int]) -> String {
        """
        SELECT n.metric, u.variant, n.x, SUM(n.units)
        FROM (SELECT metric, user_id, x, COUNT(*) AS units FROM (\(metrics.map(rankedUnits).joined(separator: " UNION ALL "))) u
              GROUP BY metric, user_id, x) n
        JOIN usr u ON u.post = 1 AND u.user_id = n.user_id
        GROUP BY n.metric, u.variant, n.x
        """
    }

    /// One row: requests, feedback, first and last request time, request copies, users in several variants,
    /// conversations of several users, requests with implausible values (every copy, both periods), events
    /// after the cut, QA requests and feedback, usable feedback whose target was never read, and the
    /// pre-period's requests and feedback.
    func countsQuery(experiment: String, until: Int64?) -> String {
        let before = until.map { "ts < \($0)" } ?? "TRUE"
        let after = until.map { "ts >= \($0)" } ?? "FALSE"
        return """
            SELECT
                q.requests, f.feedback, q.first, q.last, a.copies,
                (SELECT count(*) FROM usr WHERE post = 1 AND mixed),
                (SELECT count(*) FROM conv WHERE post = 1 AND shared),
                a.implausible,
                e.after, e.qa_requests, e.qa_feedback,
                (SELECT count(*) FROM fbu f WHERE f.post = 1 AND f.request_id <> ''
                   AND NOT EXISTS (SELECT 1 FROM req r WHERE r.post = 1 AND r.request_id = f.request_id))
                + (SELECT count(*) FROM fbu f WHERE f.post = 1 AND f.request_id = ''
                   AND NOT EXISTS (SELECT 1 FROM req r WHERE r.post = 1 AND r.conversation_id = f.conversation_id)),
                q.pre_requests, f.pre_feedback
            FROM (SELECT count(*) FILTER (WHERE post = 1) AS requests, min(ts) FILTER (WHERE post = 1) AS first,
                         max(ts) FILTER (WHERE post = 1) AS last, count(*) FILTER (WHERE post = 0) AS pre_requests FROM req) q,
                 (SELECT count(*) FILTER (WHERE post = 1) AS feedback, count(*) FILTER (WHERE post = 0) AS pre_feedback FROM fb) f,
                 req_counts a,
                 (SELECT count(*) FILTER (WHERE \(after)) AS after,
                         count(*) FILTER (WHERE \(before) AND qa = 1 AND kind = 'request') AS qa_requests,
                         count(*) FILTER (WHERE \(before) AND qa = 1 AND kind = 'feedback') AS qa_feedback
                  FROM (SELECT kind, qa, \(Self.lineTime) AS ts FROM events WHERE experiment = \(Self.literal(experiment))) events) e
            """
    }

    /// Feedback names of the experiment's period that no metric reads, most first (ties in store order).
    var unusedNamesQuery: String {
        let names = periods[0].names
        let unread = names.isEmpty ? "" : " AND name NOT IN (\(names.map(Self.literal).joined(separator: ", ")))"
        return "SELECT name, count(*) FROM fb WHERE post = 1\(unread) GROUP BY name ORDER BY count(*) DESC, min(id)"
    }

    /// Per variant, how many values of each of `fields` its users have (plausible ones, as the event path keeps).
    static func valueCounts(_ fields: [RequestField]) -> String {
        let counts = fields.map { "count(*) FILTER (WHERE r.\($0.rawValue) IS NOT NULL AND \(plausible($0, "r.\($0.rawValue)")))" }
        return "SELECT \(counts.joined(separator: ", ")) FROM req r JOIN usr u ON u.post = 1 AND u.user_id = r.user_id WHERE r.post = 1 GROUP BY u.variant"
    }

    /// The experiment's requests with their user's variant and user, and the value of each of `fields` (NULL when
    /// it has none the event path keeps).
    static func fieldValuesWithUsers(_ fields: [RequestField]) -> String {
        let values = fields.map { "CASE WHEN \(plausible($0, "r.\($0.rawValue)")) THEN r.\($0.rawValue) END" }
        return "SELECT u.variant, r.user_id, \(values.joined(separator: ", ")) FROM req r JOIN usr u ON u.post = 1 AND u.user_id = r.user_id WHERE r.post = 1"
    }

    /// The temporary table `field_values`: the experiment's values of `field` (variant, x, step, c), each with
    /// the step 2k + 1 of its rank k among its user's values and the user's number of values c.
    static func fieldValues(_ field: RequestField) -> String {
        let x = field.rawValue
        return """
            CREATE TEMP TABLE field_values ON COMMIT DROP AS
            SELECT u.variant, r.\(x) AS x, 2 * ROW_NUMBER() OVER (PARTITION BY r.user_id ORDER BY r.\(x)) - 1 AS step,
                   COUNT(*) OVER (PARTITION BY r.user_id) AS c
            FROM req r JOIN usr u ON u.post = 1 AND u.user_id = r.user_id
            WHERE r.post = 1 AND r.\(x) IS NOT NULL AND \(plausible(field, "r.\(x)"))
            """
    }

    /// Per bucket (`QuantileSketch.bucketNumber`) of variant $1's values: count, Σ steps, Σ c.
    static var bucketsQuery: String {
        "SELECT b, count(*), sum(step), sum(c) FROM (SELECT \(bucket(of: "x")) AS b, step, c FROM field_values WHERE variant = $1) v GROUP BY b"
    }

    /// `QuantileSketch.bucketNumber` of a float8 column, in SQL (PostgreSQL's `ln` is the C library's `log`).
    package static func bucket(of x: String) -> String {
        let minimum = number(QuantileSketch.minimum), base = number(QuantileSketch.logBase)
        return "CASE WHEN \(x) >= \(minimum) THEN 1 + LEAST(CAST(floor(ln(\(x) / \(minimum)) / \(base)) AS bigint), \(QuantileSketch.bucketCount - 1)) ELSE 0 END"
    }
}
