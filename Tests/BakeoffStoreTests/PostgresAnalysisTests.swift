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
    deinit { server.stop() }

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
        // A boolean written as true/false in the line.
        feedback("escalated", 1, at: s + 40 * h, request: "x-r9")
        return out
    }

    func load(_ events: [EventRecord]) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-pganalysis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("events.jsonl").path
        try (events.map { $0.jsonLine() }.joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        #expect(try PostgresImport.importLog(url: server.url, path: log) == events.count)
    }

    static func close(_ a: Double, _ b: Double) -> Bool { a == b || abs(a - b) <= 1e-9 * max(abs(a), abs(b)) }
    static func close(_ a: SampleMoments, _ b: SampleMoments) -> Bool {
        close(a.n, b.n) && close(a.sum, b.sum) && close(a.sumOfSquares, b.sumOfSquares)
    }

    func check(_ events: [EventRecord], start: Int64?, until: Int64? = nil, metrics: [Metric] = Metric.builtIn) throws {
        let got = try PostgresAnalysis.aggregate(url: server.url, experiment: Self.experiment, metrics: metrics,
                                                 experimentStart: start, until: until)
        var aggregator = EventAggregator(metrics: metrics, experiment: Self.experiment, experimentStart: start, until: until)
        for e in events { try e.withView { try aggregator.add($0) } }
        let want = aggregator.finish()
        #expect(got.variants.map(\.name) == want.variants.map(\.name))
        #expect(got.variants.map(\.users) == want.variants.map(\.users))
        #expect(got.variants.map(\.requests) == want.variants.map(\.requests))
        let expected = want.metrics.filter { $0.metric.kind != .quantile }
        #expect(got.metrics.map(\.metric.name) == expected.map(\.metric.name))
        for (g, w) in zip(got.metrics, expected) {
            for v in w.perVariant.indices {
                let a = g.perVariant[v], b = w.perVariant[v]
                #expect(a.n == b.n && Self.close(a.numerator, b.numerator) && Self.close(a.denominator, b.denominator)
                        && Self.close(a.sumOfProducts, b.sumOfProducts), "\(w.metric.name) \(want.variants[v].name): \(a) vs \(b)")
                #expect(Self.close(g.unitMoments[v], w.unitMoments[v]), "\(w.metric.name) units: \(g.unitMoments[v]) vs \(w.unitMoments[v])")
            }
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
        try check(events, start: Self.start)
        try check(events, start: nil)
        try check(events, start: Self.start, until: Self.start + 5 * Make.day)
    }

    @Test func theEdgeCasesAloneGiveTheAggregatorsSums() throws {
        let events = Self.edgeCases()
        try load(events)
        try check(events, start: Self.start)
        try check(events, start: nil)
    }
}
