import BakeoffCore
import BakeoffSimulation
import BakeoffStatistics
import BakeoffStore
import BakeoffTestSupport
import Foundation
import Testing

/// The per-variant sums computed inside PostgreSQL (`PostgresAnalysis`) against `EventAggregator`'s on the same
/// events: a simulated experiment with a pre-period, plus events made to hit each of the aggregator's rules.
@Suite("PostgreSQL analysis in SQL", .serialized)
final class PostgresAnalysisTests {
    let server: ThrowawayPostgres

    init() throws { server = try ThrowawayPostgres() }
    deinit {
        server.stop()
        try? FileManager.default.removeItem(at: dir)
    }

    static let experiment = "support-bot-v2"
    static let start = Make.t0 + 7 * Make.day

    /// Events that each pin down one rule (users x-...; the simulation's users are u-...).
    static func edgeCases() -> [EventRecord] {
        let s = start
        var out: [EventRecord] = []
        func request(_ id: String, user: String, variant: String, at ts: Int64, conversation: String = "",
                     latency: Double? = 100, output: Int? = 10, status: String = "ok", qa: Bool = false) {
            var e = EventRecord(kind: .request, timestamp: ts, experiment: experiment)
            e.requestID = id
            e.userID = user
            e.variant = variant
            e.conversationID = conversation
            e.latencyMs = latency
            e.outputTokens = output
            e.status = status
            e.qa = qa
            out.append(e)
        }
        func feedback(_ name: String, _ value: Double, at ts: Int64, request: String = "", conversation: String = "", user: String = "", qa: Bool = false) {
            var e = EventRecord(kind: .feedback, timestamp: ts, experiment: experiment)
            e.name = name
            e.value = value
            e.requestID = request
            e.conversationID = conversation
            e.userID = user
            e.qa = qa
            out.append(e)
        }
        let h: Int64 = 3_600_000_000
        // Feedback before its request (resolved at the end), then the request, then a later value that wins.
        feedback("task_completed", 0, at: s + 10 * h, request: "x-r1", user: "x-a")
        request("x-r1", user: "x-a", variant: "control", at: s + 9 * h, conversation: "x-c1")
        feedback("task_completed", 1, at: s + 11 * h, conversation: "x-c1", user: "x-a")
        // A duplicate request id (another variant and user): counted once, as first stored.
        request("x-r1", user: "x-b", variant: "treatment", at: s + 12 * h, conversation: "x-c9")
        // A user stored first in control but earlier in treatment by time: in treatment.
        request("x-r2", user: "x-switch", variant: "control", at: s + 30 * h, conversation: "x-c2")
        request("x-r3", user: "x-switch", variant: "treatment", at: s + 20 * h, conversation: "x-c3")
        // Two users in one conversation: it is the first's; turns count both requests.
        request("x-r4", user: "x-c", variant: "control", at: s + 5 * h, conversation: "x-shared")
        request("x-r5", user: "x-d", variant: "treatment", at: s + 6 * h, conversation: "x-shared")
        feedback("csat", 4, at: s + 7 * h, conversation: "x-shared")
        // Values out of bounds (CSAT 7, 3.5) are left out; the in-bounds one counts.
        request("x-r6", user: "x-e", variant: "control", at: s + 5 * h, conversation: "x-c6")
        feedback("csat", 7, at: s + 6 * h, conversation: "x-c6")
        feedback("csat", 3.5, at: s + 6 * h, conversation: "x-c6")
        feedback("csat", 2, at: s + 5 * h + 1, conversation: "x-c6")
        // Ties in time: the later stored wins.
        feedback("escalated", 1, at: s + 8 * h, conversation: "x-c6")
        feedback("escalated", 0, at: s + 8 * h, conversation: "x-c6")
        // Per-request feedback: on a request; without a request id (left out); on an unknown request.
        feedback("thumbs_up", 1, at: s + 6 * h, request: "x-r6")
        feedback("thumbs_up", 0, at: s + 6 * h, conversation: "x-c6")
        feedback("thumbs_up", 1, at: s + 6 * h, request: "x-nowhere")
        // Request-level feedback on x-r5 goes to the user of its conversation (x-c), not to x-d.
        feedback("thumbs_up", 1, at: s + 7 * h, request: "x-r5")
        // Errors, implausible values (left out of their field), a request on a second day.
        request("x-r7", user: "x-e", variant: "control", at: s + 30 * h, conversation: "x-c7", latency: -5, output: 2_000_000_000, status: "upstream_error")
        request("x-r8", user: "x-e", variant: "control", at: s + 31 * h, conversation: "x-c7", latency: 50, output: nil)
        // QA events are left out.
        request("x-qa", user: "x-admin", variant: "treatment", at: s + 5 * h, qa: true)
        feedback("task_completed", 1, at: s + 5 * h + 5, request: "x-qa", qa: true)
        // A pre-period conversation whose completion is reported after the start: it counts before it.
        request("x-p1", user: "x-a", variant: "control", at: s - 2 * h, conversation: "x-pc1")
        feedback("task_completed", 1, at: s + 1 * h, request: "x-p1")
        // Feedback stamped before the start for a conversation only read after it (stored later): after it.
        request("x-r9", user: "x-f", variant: "treatment", at: s + 2 * h, conversation: "x-c10")
        feedback("task_completed", 1, at: s - 1 * h, conversation: "x-c10")
        // Feedback before the start for a target nobody has read: before it (and missing there).
        feedback("task_completed", 0, at: s - 1 * h, conversation: "x-never")
        // Feedback no metric reads, and a CSAT the per-request metric's bounds refuse (so every metric leaves it out).
        feedback("mood", 3, at: s + 8 * h, conversation: "x-c6")
        feedback("mood", 2, at: s - 3 * h, conversation: "x-pc1")
        feedback("csat", 3, at: s + 9 * h, request: "x-r6")
        // A boolean written as true/false in the line.
        feedback("escalated", 1, at: s + 40 * h, request: "x-r9")
        return out
    }

    /// Where `load` wrote the log it imported: the event path's input.
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-pganalysis-\(UUID().uuidString)")
    var log: String { dir.appendingPathComponent("events.jsonl").path }

    func load(_ events: [EventRecord]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try (events.map { $0.jsonLine() }.joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        #expect(try PostgresImport.importLog(url: server.url, path: log) == events.count)
    }

    static func close(_ a: Double, _ b: Double) -> Bool { a == b || abs(a - b) <= 1e-9 * max(abs(a), abs(b)) }
    static func close(_ a: SampleMoments, _ b: SampleMoments) -> Bool {
        close(a.n, b.n) && close(a.sum, b.sum) && close(a.sumOfSquares, b.sumOfSquares)
    }

    /// The built-in metrics with rank tests on CSAT, turns, errors and output tokens, a rank test on latency (too
    /// many levels), CSAT read with other bounds, and an output-token quantile.
    static let metrics: [Metric] = {
        var metrics = Metric.builtIn
        for k in metrics.indices where ["csat", "avg_turns", "error_rate", "output_tokens"].contains(metrics[k].name) {
            metrics[k].rankTest = .mannWhitney
        }
        var latency = Metric(name: "latency_mean", level: .request, kind: .mean, goal: .down, source: .field(.latencyMs))
        latency.rankTest = .mannWhitney
        metrics.append(latency)
        metrics.append(Metric(name: "csat_top", level: .conversation, kind: .mean, goal: .up, source: .feedback("csat"),
                              bounds: ValueBounds(lower: 4, upper: 5, integers: true)))
        metrics.append(Metric(name: "output_p90", level: .request, kind: .quantile, goal: .none, source: .field(.outputTokens), quantile: 0.9))
        return metrics
    }()

    static func close(_ a: Double?, _ b: Double?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return close(a, b)
    }

    /// The database's sums against `EventLog.aggregate` of the log `load` wrote.
    func check(start: Int64?, until: Int64? = nil, metrics: [Metric] = PostgresAnalysisTests.metrics,
               valuesLimit: Int = QuantileSketch.exactLimit) throws {
        var options = EventLog.Options()
        options.experiment = Self.experiment
        options.metrics = metrics
        options.experimentStart = start
        options.until = until
        let got = try PostgresAnalysis.aggregate(url: server.url, options: options, valuesLimit: valuesLimit)
        let want = try EventLog.aggregate(path: log, options: options)
        #expect(got.experiment == want.experiment)
        #expect(got.variants == want.variants)
        #expect(got.requestEvents == want.requestEvents)
        #expect(got.feedbackEvents == want.feedbackEvents)
        #expect(got.firstTimestamp == want.firstTimestamp)
        #expect(got.lastTimestamp == want.lastTimestamp)
        #expect(got.dataQuality == want.dataQuality)
        #expect(got.newUsersByHour == want.newUsersByHour, "users by the hour of their first request (group-sequential looks)")
        #expect(want.newUsersByHour.reduce(0) { $0 + $1.users } == want.variants.reduce(0) { $0 + $1.users })
        #expect(got.metrics.map(\.metric.name) == want.metrics.map(\.metric.name))
        for (g, w) in zip(got.metrics, want.metrics) {
            for v in w.perVariant.indices {
                let a = g.perVariant[v], b = w.perVariant[v]
                #expect(a.n == b.n && Self.close(a.numerator, b.numerator) && Self.close(a.denominator, b.denominator)
                        && Self.close(a.sumOfProducts, b.sumOfProducts), "\(w.metric.name) \(want.variants[v].name): \(a) vs \(b)")
                #expect(Self.close(g.unitMoments[v], w.unitMoments[v]), "\(w.metric.name) units: \(g.unitMoments[v]) vs \(w.unitMoments[v])")
            }
            #expect(g.ordinal == w.ordinal, "\(w.metric.name) rank-test counts")
            #expect(g.quantiles == w.quantiles, "\(w.metric.name) quantiles")
            #expect(g.quantileCounts == w.quantileCounts, "\(w.metric.name) quantile counts")
            #expect(g.quantileEstimates == w.quantileEstimates, "\(w.metric.name) quantile estimates")
            #expect((g.covariates == nil) == (w.covariates == nil), "\(w.metric.name)")
            if let gc = g.covariates, let wc = w.covariates {
                for v in wc.indices {
                    let a = gc[v], b = wc[v]
                    let same = a.n == b.n && Self.close(a.preNumerator, b.preNumerator) && Self.close(a.preDenominator, b.preDenominator)
                        && Self.close(a.preNumeratorPreDenominator, b.preNumeratorPreDenominator) && Self.close(a.numeratorPreNumerator, b.numeratorPreNumerator)
                        && Self.close(a.denominatorPreDenominator, b.denominatorPreDenominator) && Self.close(a.numeratorPreDenominator, b.numeratorPreDenominator)
                        && Self.close(a.denominatorPreNumerator, b.denominatorPreNumerator)
                    #expect(same, "\(w.metric.name) \(want.variants[v].name) CUPED: \(a) vs \(b)")
                }
                #expect(g.usersWithCovariate == w.usersWithCovariate, "\(w.metric.name)")
            }
        }
    }

    @Test func theSumsAreTheAggregatorsOnASimulatedExperimentAndEveryRule() throws {
        var spec = try SimulationSpec.preset("seed-case-study")
        spec.users = 1200
        spec.seed = 5
        var events: [EventRecord] = []
        Simulator.run(spec) { events.append($0) }
        events += Self.edgeCases()
        try load(events)
        try check(start: Self.start)
        try check(start: nil)
        try check(start: Self.start, until: Self.start + 5 * Make.day)
        // The quantile fields' values ranked by the database instead of here.
        try check(start: Self.start, valuesLimit: 0)
    }

    @Test func anExperimentWithoutARequestToAnalyseGivesWhatTheEventsGive() throws {
        var qa = EventRecord(kind: .request, timestamp: Self.start, experiment: Self.experiment)
        qa.requestID = "q-1"
        qa.userID = "q-admin"
        qa.variant = "treatment"
        qa.qa = true
        qa.latencyMs = 80
        qa.outputTokens = 3
        var feedback = EventRecord(kind: .feedback, timestamp: Self.start + 5, experiment: Self.experiment)
        feedback.name = "csat"
        feedback.value = 4
        feedback.conversationID = "q-nowhere"
        let events = [qa, feedback]
        try load(events)
        try check(start: nil)
        try check(start: Self.start - 1)
        try check(start: nil, until: Self.start + 1)
    }

    /// A gateway's rows keep its microseconds in `ts` while their lines have milliseconds, which is what the event
    /// path reads (a user's first request, the first and last times, the cut and the start all follow them).
    @Test func eventsWrittenByAGatewayAreAnalysedAtTheTimesOfTheirLines() throws {
        var spec = try SimulationSpec.preset("seed-case-study")
        spec.users = 300
        spec.seed = 9
        var events: [EventRecord] = []
        Simulator.run(spec) { events.append($0) }
        // Microseconds that the lines round down: two requests of one user 400 µs apart in the same millisecond,
        // stored in the other order, decide the user's variant by store order, as the line says.
        for k in events.indices { events[k].timestamp += Int64(k % 997) }
        var late = EventRecord(kind: .request, timestamp: Self.start + 1_000_900, experiment: Self.experiment)
        late.requestID = "m-2"; late.userID = "m-user"; late.variant = "treatment"; late.latencyMs = 10; late.outputTokens = 1
        var early = late
        early.timestamp = Self.start + 1_000_500; early.requestID = "m-1"; early.variant = "control"
        events += [late, early]
        let store = try EventStore(postgres: PostgresLocation(url: server.url), options: StoreOptions(flushIntervalMs: 10))
        for e in events { store.append(e) }
        store.flush()
        store.close()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var lines: [String] = []
        try StoreReader.forEachLine(path: server.url, experiment: Self.experiment, includeQA: true) { lines.append(String(decoding: $0, as: UTF8.self)) }
        try (lines.joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        try check(start: nil)
        try check(start: Self.start)
        try check(start: nil, until: Self.start + 1_000_700)
    }

    @Test func theEdgeCasesAloneGiveTheAggregatorsSums() throws {
        let events = Self.edgeCases()
        try load(events)
        try check(start: Self.start)
        try check(start: nil)
        // Rows written before the number columns (or by an older gateway) are read from their lines.
        _ = try PostgresConnection(PostgresLocation(url: server.url)).query(
            "UPDATE events SET numbers = NULL, latency_ms = NULL, output_tokens = NULL, value = NULL WHERE id % 2 = 0")
        try check(start: Self.start)
        try check(start: nil)
    }
}

/// What the bucketed quantiles (a variant with more values than `QuantileSketch.exactLimit`) rest on.
@Suite("PostgreSQL analysis: quantile buckets", .serialized)
final class PostgresQuantileBucketTests {
    /// Values at and beside bucket borders, tiny, zero, huge, and random ones.
    static let values: [Double] = {
        var xs: [Double] = [0, 1e-9, 1e-4, 0.000999, 0.001, 0.0010001, 1, 1.5, 100, 123.456, 999.999, 1e9, 2e9, 1e12, 1e300]
        for i in stride(from: 0, to: QuantileSketch.bucketCount + 10, by: 97) {
            let border = QuantileSketch.minimum * exp(Double(i) * QuantileSketch.logBase)
            xs += [border, border.nextDown, border.nextUp]
        }
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20_000 { xs.append(exp(Double.random(in: -8...20, using: &random))) }
        for _ in 0..<5_000 { xs.append(Double(Int.random(in: 0...50_000, using: &random)) / 1000) }
        return xs
    }()

    @Test func theDatabaseNumbersEveryValuesBucketAsTheSketchDoes() throws {
        let server = try ThrowawayPostgres()
        defer { server.stop() }
        let db = try PostgresConnection(PostgresLocation(url: server.url))
        let array = "{" + Self.values.map { "\($0)" }.joined(separator: ",") + "}"
        var mismatches: [String] = []
        var seen = 0
        try db.withRows("SELECT x, \(PostgresAnalysisSQL.bucket(of: "x")) FROM unnest(CAST($1 AS float8[])) AS t(x)", [array]) { row in
            let x = Double(row.string(0))!
            seen += 1
            if Int(row.int(1)) != QuantileSketch.bucketNumber(x) { mismatches.append("\(x): \(row.int(1)) vs \(QuantileSketch.bucketNumber(x))") }
        }
        #expect(seen == Self.values.count)
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
    }

    /// Sketches rebuilt from per-bucket counts and step sums equal sketches that spilled their values into buckets.
    @Test func sketchesFromBucketRowsEqualSketchesThatSpilled() {
        var random = SystemRandomNumberGenerator()
        var perUser: [[Double]] = []
        var total = 0
        while total <= QuantileSketch.exactLimit + 1000 {
            let n = Int.random(in: 1...40, using: &random)
            perUser.append((0..<n).map { _ in Double(Int.random(in: 0...200_000, using: &random)) / 100 })
            total += n
        }
        var plain = QuantileSketch()
        for v in perUser { for x in v { plain.add(x) } }
        let clustered = ClusteredQuantileSketch(users: perUser)
        #expect(!plain.isExact && !clustered.isExact)
        var rows: [Int: (count: Int, squareSteps: UInt64, userCounts: UInt64)] = [:]
        var squares = 0.0
        for v in perUser {
            squares += Double(v.count * v.count)
            for (k, x) in v.sorted().enumerated() {
                let b = QuantileSketch.bucketNumber(x)
                let r = rows[b] ?? (0, 0, 0)
                rows[b] = (r.count + 1, r.squareSteps + UInt64(2 * k + 1), r.userCounts + UInt64(v.count))
            }
        }
        let bucketRows = rows.map { (index: $0.key, count: $0.value.count, squareSteps: $0.value.squareSteps, userCounts: $0.value.userCounts) }
        let fromRows = QuantileSketch(bucketCounts: bucketRows.map { ($0.index, $0.count) })
        let clusteredFromRows = ClusteredQuantileSketch(buckets: bucketRows, countSumSquares: squares)
        for level in [0.01, 0.5, 0.9, 0.95, 0.99, 0.999] {
            #expect(fromRows.quantile(level) == plain.quantile(level), "P\(level)")
            #expect(clusteredFromRows.estimate(level: level, users: perUser.count + 10) == clustered.estimate(level: level, users: perUser.count + 10), "P\(level)")
        }
        #expect(fromRows.count == plain.count && clusteredFromRows.count == clustered.count)
    }
}
