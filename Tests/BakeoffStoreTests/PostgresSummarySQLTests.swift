import BakeoffCore
import BakeoffSimulation
import BakeoffStore
import BakeoffTestSupport
import Foundation
import Testing

/// The README's warehouse SQL for PostgreSQL (scripts/sql/summary.postgres.sql) on a PostgreSQL store filled by
/// `bakeoff import`, against a server the suite starts: the per-variant sums it gives are `EventAggregator`'s on
/// the same events (as scripts/sql/summary.sql's are on SQLite: SummaryInputTests).
@Suite("PostgreSQL warehouse SQL", .serialized)
final class PostgresSummarySQLTests {
    let server: ThrowawayPostgres

    init() throws { server = try ThrowawayPostgres() }
    deinit { server.stop() }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theSummarySQLGivesTheAggregatorsSums() throws {
        var spec = try SimulationSpec.preset("seed-case-study")
        spec.users = 1500
        spec.seed = 11
        var events: [EventRecord] = []
        Simulator.run(spec) { events.append($0) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-pgsql-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("events.jsonl").path
        try (events.map { $0.jsonLine() }.joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        #expect(try PostgresImport.importLog(url: server.url, path: log) == events.count)

        // psql's variables become parameters; the rows become the CSV `psql --csv` writes.
        let sql = try String(contentsOf: Self.root.appendingPathComponent("scripts/sql/summary.postgres.sql"), encoding: .utf8)
            .replacingOccurrences(of: ":'experiment'", with: "$1").replacingOccurrences(of: ":'start'", with: "$2")
        let db = try PostgresConnection(PostgresLocation(url: server.url))
        let rows = try db.query(sql, [spec.experiment, "2026-11-08T00:00:00Z"])
        let csv = ([rows.columns] + rows.rows.map { $0.map { $0 ?? "" } }).map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n"
        let summary = dir.appendingPathComponent("summary.csv").path
        try csv.write(toFile: summary, atomically: true, encoding: .utf8)
        let names = ["task_completion", "output_tokens"]
        let metrics = Metric.builtIn.filter { names.contains($0.name) }
        let data = try SummaryInput.read(path: summary, metrics: metrics)
        #expect(data.metrics.map(\.metric.name) == names)

        let start = Make.t0 + 7 * Make.day  // 2026-11-08T00:00:00Z
        var aggregator = EventAggregator(metrics: metrics, experiment: spec.experiment)
        for e in events where e.timestamp >= start { try e.withView { try aggregator.add($0) } }
        let expected = aggregator.finish()
        #expect(Set(data.variants.map(\.name)) == Set(expected.variants.map(\.name)))
        for (v, variant) in data.variants.enumerated() {
            let w = try #require(expected.variants.firstIndex { $0.name == variant.name })
            #expect(variant.users == expected.variants[w].users, "\(variant.name)")
            for (k, name) in names.enumerated() {
                let want = try #require(expected.metrics.first { $0.metric.name == name }).perVariant[w]
                #expect(data.metrics[k].perVariant[v] == want, "\(name) \(variant.name)")
                // The pre-period is there (the same users before the start), as on SQLite.
                #expect((data.metrics[k].covariates?[v].preDenominator.sum ?? 0) > 0, "\(name) \(variant.name)")
            }
        }
    }
}
