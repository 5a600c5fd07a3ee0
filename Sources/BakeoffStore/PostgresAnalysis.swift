import BakeoffCore
import BakeoffStatistics

/// The analysis's per-variant sums computed inside PostgreSQL: the per-user sums of every metric (and, with a
/// start, of the pre-experiment period for CUPED) are made by SQL from the store's events, and only the
/// per-variant sufficient statistics come back, instead of every event.
///
/// The SQL follows `EventAggregator`'s rules, rule for rule, so that the sums are the same as the event path's:
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
/// Not yet computed here (the event path gives them): quantile metrics, rank-test counts, data-quality counts,
/// covariates from a file.
public enum PostgresAnalysis {
    /// What the database computed: the variants, and each non-quantile metric's per-variant sums.
    public struct Sums: Sendable {
        /// Name, users (by their first request) and the requests of their conversations, in the order of each
        /// variant's first stored request, as the event path has them.
        public var variants: [(name: String, users: Int, requests: Int)]
        /// Indexed like `variants`.
        public var metrics: [MetricData]
    }

    /// The per-variant sums of each non-quantile metric of `metrics` for `experiment`.
    public static func aggregate(url: String, experiment: String, metrics: [Metric], experimentStart: Int64? = nil,
                                 until: Int64? = nil) throws -> Sums {
        let db = try PostgresStoreReading.open(url)
        let computed = metrics.filter { $0.kind != .quantile }
        let sql = PostgresAnalysisSQL.query(metrics: computed, withStart: experimentStart != nil)
        let parameters = [experiment, experimentStart.map(String.init), until.map(String.init)]
        // The planner cannot estimate the CTEs' sizes (often one row), and nested loops over them are quadratic:
        // 42 s instead of 0.3 s on 20,000 events.
        try db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL enable_nestloop = off")
        defer { try? db.execute("COMMIT") }
        var variants: [(name: String, users: Int, requests: Int)] = []
        try db.withRows(PostgresAnalysisSQL.variantsQuery(withStart: experimentStart != nil), parameters) { row in
            variants.append((row.string(0), Int(row.int(1)), Int(row.int(2))))
        }
        let index = Dictionary(uniqueKeysWithValues: variants.enumerated().map { ($1.name, $0) })
        var data = computed.map { metric in
            MetricData(metric: metric, perVariant: variants.map { _ in RatioMoments() },
                       unitMoments: variants.map { _ in SampleMoments(n: 0, sum: 0, sumOfSquares: 0) })
        }
        let reduces = computed.map { experimentStart != nil && $0.varianceReduction }
        for k in data.indices where reduces[k] {
            data[k].covariates = variants.map { _ in RatioCUPEDMoments() }
            data[k].usersWithCovariate = variants.map { _ in 0 }
        }
        try db.withRows(sql, parameters) { row in
            let k = Int(row.int(0))
            guard let v = index[row.string(1)] else { return }
            func number(_ column: Int) -> Double { Double(row.string(column)) ?? 0 }
            let n = number(2), m = number(3), mm = number(4), d = number(5), dd = number(6), md = number(7), q = number(8)
            let numerator = SampleMoments(n: n, sum: m, sumOfSquares: mm), denominator = SampleMoments(n: n, sum: d, sumOfSquares: dd)
            data[k].perVariant[v] = RatioMoments(n: n, numerator: numerator, denominator: denominator, sumOfProducts: md)
            data[k].unitMoments[v] = SampleMoments(n: d, sum: m, sumOfSquares: q)
            if reduces[k] {
                data[k].covariates![v] = RatioCUPEDMoments(
                    n: n, numerator: numerator, denominator: denominator,
                    preNumerator: SampleMoments(n: n, sum: number(9), sumOfSquares: number(10)),
                    preDenominator: SampleMoments(n: n, sum: number(11), sumOfSquares: number(12)),
                    numeratorDenominator: md, preNumeratorPreDenominator: number(13), numeratorPreNumerator: number(14),
                    denominatorPreDenominator: number(15), numeratorPreDenominator: number(16), denominatorPreNumerator: number(17))
                data[k].usersWithCovariate![v] = Int(row.int(18))
            }
        }
        return Sums(variants: variants, metrics: data)
    }
}

/// The SQL of `PostgresAnalysis`. Parameters: $1 the experiment, $2 the start (microseconds, or NULL), $3 the
/// end (`until`, or NULL).
enum PostgresAnalysisSQL {
    /// Text as a SQL string literal.
    static func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    static func number(_ x: Double) -> String { x.isFinite ? "\(x)" : (x > 0 ? "'Infinity'::float8" : "'-Infinity'::float8") }

    /// The events of the experiment, each with its period (1 from the start on, 0 before it): requests by their
    /// time, feedback by what had been read of its target by then.
    static func events(withStart: Bool) -> String {
        let period = withStart ? "CASE WHEN ts >= (SELECT start_us FROM params) THEN 1 ELSE 0 END" : "1"
        // What had been read of a feedback's target by then, per period: the first stored request naming it.
        let knowing = withStart ? """
            known_request AS (SELECT post, request_id AS target, MIN(id) AS first FROM req_all GROUP BY post, request_id),
            known_conversation AS (SELECT post, conversation_id AS target, MIN(id) AS first FROM req_all GROUP BY post, conversation_id),
            """ : ""
        let feedback = withStart ? """
            SELECT f.id, f.ts, f.name, f.request_id, f.conversation_id, f.value,
                   CASE WHEN f.ts < (SELECT start_us FROM params) THEN (CASE WHEN f.pre_knows OR NOT f.post_knows THEN 0 ELSE 1 END)
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
            """ : "SELECT id, ts, name, request_id, conversation_id, value, 1 AS post FROM fb_all"
        return """
            params AS (SELECT CAST($1 AS text) AS experiment, CAST($2 AS bigint) AS start_us, CAST($3 AS bigint) AS until_us),
            ev AS (
                SELECT id, ts, kind, variant, user_id, conversation_id, request_id, status, name, CAST(line AS jsonb) AS j
                FROM events WHERE experiment = (SELECT experiment FROM params) AND qa = 0
                  AND ((SELECT until_us FROM params) IS NULL OR ts < (SELECT until_us FROM params))
            ),
            req_all AS (
                SELECT ev.*, \(period) AS post FROM ev WHERE kind = 'request'
            ),
            req AS (
                SELECT * FROM (
                    SELECT r.*, ROW_NUMBER() OVER (PARTITION BY post, request_id ORDER BY id) AS copy FROM req_all r
                ) numbered WHERE copy = 1
            ),
            fb_all AS (
                SELECT id, ts, name, request_id, conversation_id,
                       CASE jsonb_typeof(j -> 'value') WHEN 'boolean' THEN CAST(CAST(j ->> 'value' AS boolean) AS integer)
                            ELSE CAST(j ->> 'value' AS float8) END AS value
                FROM ev WHERE kind = 'feedback'
            ),
            \(knowing)
            fb AS (
            \(feedback)
            ),
            conv AS (  -- per period: each conversation's user (of its first stored request) and turns
                SELECT post, conversation_id, (array_agg(user_id ORDER BY id))[1] AS user_id, COUNT(*) AS turns
                FROM req GROUP BY post, conversation_id
            ),
            usr AS (  -- per period: each user's variant (first request by time, ties by store order), days
                SELECT post, user_id, (array_agg(variant ORDER BY ts, id))[1] AS variant,
                       COUNT(DISTINCT floor(ts / 86400000000.0)) AS days
                FROM req GROUP BY post, user_id
            )
            """
    }

    /// The unit values of one metric in one period's rules: rows (metric, post, user_id, x).
    static func units(_ metric: Metric, index k: Int, period: Int, rules: FeedbackRules) -> String? {
        let head = "SELECT \(k) AS metric, \(period) AS post"
        switch metric.source {
        case .feedback(let name):
            if rules.conversationNames.contains(name) {
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
        case .errors:
            return "\(head), user_id, CASE WHEN status = 'ok' THEN 0.0 ELSE 1.0 END AS x FROM req WHERE post = \(period)"
        case .field(let field):
            let x = "CAST(j ->> \(literal(field.rawValue)) AS float8)"
            let plausible: String
            switch field {
            case .latencyMs, .ttftMs: plausible = "\(x) >= 0"
            case .inputTokens, .outputTokens: plausible = "\(x) >= 0 AND \(x) <= \(number(EventAggregator.maximumTokenCount))"
            }
            return "\(head), user_id, \(x) AS x FROM req WHERE post = \(period) AND \(x) IS NOT NULL AND \(plausible)"
        }
    }

    /// Which feedback names a period's metrics read, at which level, and the values they take (as
    /// `EventAggregator` sets them up from its metrics: a name read at both levels is read per conversation).
    struct FeedbackRules {
        var id: Int
        var conversationNames: [String] = []
        var requestNames: [String] = []
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
                bounds.append((name, m.acceptedValues))
            }
            requestNames.removeAll { conversationNames.contains($0) }
        }

        /// Feedback of one period that these rules can use: (rules, post, id, ts, name, value, request_id,
        /// conversation_id).
        func usable(period: Int) -> String {
            let names = conversationNames + requestNames
            guard !names.isEmpty else { return "SELECT \(id) AS rules, 0 AS post, 0::bigint AS id, 0::bigint AS ts, ''::text AS name, 0::float8 AS value, ''::text AS request_id, ''::text AS conversation_id WHERE FALSE" }
            let outOfBounds = bounds.map { b in
                "(f.name = \(literal(b.name)) AND NOT (f.value >= \(number(b.bounds.lower)) AND f.value <= \(number(b.bounds.upper))\(b.bounds.integers ? " AND f.value = round(f.value)" : "")))"
            }.joined(separator: " OR ")
            let perRequestWithout = requestNames.isEmpty ? "FALSE" : "(f.request_id = '' AND f.name IN (\(requestNames.map(literal).joined(separator: ", "))))"
            return """
                SELECT \(id) AS rules, f.post, f.id, f.ts, f.name, f.value, f.request_id, f.conversation_id FROM fb f
                WHERE f.post = \(period) AND f.name IN (\(names.map(literal).joined(separator: ", ")))
                  AND NOT (\(outOfBounds.isEmpty ? "FALSE" : outOfBounds)) AND NOT \(perRequestWithout)
                """
        }

        func conversationNameList() -> String { conversationNames.isEmpty ? "NULL" : conversationNames.map(literal).joined(separator: ", ") }
        func requestNameList() -> String { requestNames.isEmpty ? "NULL" : requestNames.map(literal).joined(separator: ", ") }
    }

    /// Per metric and variant: users, Σm, Σm², Σd, Σd², Σmd, Σ unit values²; with a start the pre-period
    /// sums Σmp, Σmp², Σdp, Σdp², Σmp·dp, Σm·mp, Σd·dp, Σm·dp, Σd·mp and the users with pre-period units.
    static func query(metrics: [Metric], withStart: Bool) -> String {
        let post = FeedbackRules(id: 1, metrics: metrics)
        let reduced = metrics.filter { $0.varianceReduction }
        let pre = FeedbackRules(id: 0, metrics: reduced)
        var unitSQL: [String] = []
        for (k, m) in metrics.enumerated() {
            if let sql = units(m, index: k, period: 1, rules: post) { unitSQL.append(sql) }
            if withStart, m.varianceReduction, let sql = units(m, index: k, period: 0, rules: pre) { unitSQL.append(sql) }
        }
        var usable = [post.usable(period: 1)]
        if withStart { usable.append(pre.usable(period: 0)) }
        let unitRows = unitSQL.isEmpty ? "SELECT 0 AS metric, 0 AS post, ''::text AS user_id, 0::float8 AS x WHERE FALSE" : unitSQL.joined(separator: "\nUNION ALL\n")
        return """
            WITH
            \(events(withStart: withStart)),
            fbu AS (
            \(usable.joined(separator: "\nUNION ALL\n"))
            ),
            conv_slot AS (  -- the latest feedback per conversation and name (naming a request: its conversation)
                SELECT DISTINCT ON (g.rules, g.post, g.conversation_id, g.name) g.rules, g.post, g.conversation_id, g.name, g.value
                FROM (
                    SELECT f.rules, f.post, f.id, f.ts, f.name, f.value,
                           CASE WHEN f.request_id <> '' THEN r.conversation_id ELSE f.conversation_id END AS conversation_id
                    FROM fbu f LEFT JOIN req r ON r.post = f.post AND r.request_id = f.request_id AND f.request_id <> ''
                    WHERE (f.rules = 1 AND f.name IN (\(post.conversationNameList()))) OR (f.rules = 0 AND f.name IN (\(pre.conversationNameList())))
                ) g
                WHERE g.conversation_id IS NOT NULL
                ORDER BY g.rules, g.post, g.conversation_id, g.name, g.ts DESC, g.id DESC
            ),
            request_slot AS (  -- the latest feedback per request and name
                SELECT DISTINCT ON (f.rules, f.post, f.request_id, f.name) f.rules, f.post, f.request_id, f.name, f.value
                FROM fbu f
                WHERE (f.rules = 1 AND f.name IN (\(post.requestNameList()))) OR (f.rules = 0 AND f.name IN (\(pre.requestNameList())))
                ORDER BY f.rules, f.post, f.request_id, f.name, f.ts DESC, f.id DESC
            ),
            unit AS (
            \(unitRows)
            ),
            per_user AS (
                SELECT metric, post, user_id, SUM(x) AS m, CAST(COUNT(*) AS float8) AS d, SUM(x * x) AS q
                FROM unit GROUP BY metric, post, user_id
            ),
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
    static func variantsQuery(withStart: Bool) -> String {
        """
        WITH
        \(events(withStart: withStart))
        SELECT v.variant, COALESCE(u.users, 0), COALESCE(t.requests, 0)
        FROM (SELECT variant, MIN(id) AS first FROM req WHERE post = 1 GROUP BY variant) v
        LEFT JOIN (SELECT variant, COUNT(*) AS users FROM usr WHERE post = 1 GROUP BY variant) u ON u.variant = v.variant
        LEFT JOIN (SELECT u.variant, SUM(c.turns) AS requests FROM conv c JOIN usr u ON u.post = 1 AND u.user_id = c.user_id
                   WHERE c.post = 1 GROUP BY u.variant) t ON t.variant = v.variant
        ORDER BY v.first
        """
    }
}
