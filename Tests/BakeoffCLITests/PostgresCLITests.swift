import BakeoffTestSupport
import Foundation
import Testing

/// A PostgreSQL store through the commands, against a server the suite starts: `import --db postgresql://...`,
/// then `export`, `analyze` and `analyze --timeseries` give what the log gives, byte for byte.
@Suite("PostgreSQL store from the command line", .serialized)
final class PostgresCLITests {
    let server: ThrowawayPostgres

    init() throws { server = try ThrowawayPostgres() }
    deinit { server.stop() }

    @Test func importExportAndAnalysisEqualTheLogs() throws {
        let log = try CLI.temporaryFile("")
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: log).deletingLastPathComponent().path) }
        #expect(try CLI.run(["simulate", "--preset", "seed-case-study", "--output", log]).status == 0)
        let imported = try CLI.run(["import", "--db", server.url, log])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr.contains("imported"))
        // The stored lines are the log's, in its order.
        let exported = try CLI.run(["export", "--db", server.url])
        #expect(exported.status == 0, "\(exported.stderr)")
        #expect(exported.stdout == (try String(contentsOfFile: log, encoding: .utf8)))
        for extra in [["--format", "json"], ["--format", "json", "--split", "0.2", "--primary", "csat"], ["--timeseries", "--format", "json"]] {
            let fromStore = try CLI.run(["analyze", "--db", server.url] + extra)
            let fromLog = try CLI.run(["analyze", log] + extra)
            #expect(fromStore.status == 0, "\(fromStore.stderr)")
            #expect(fromStore.stdout == fromLog.stdout, "\(extra)")
        }
    }

    @Test func aURLWithAPasswordOrADatabaseWithoutAStoreIsRefusedPlainly() throws {
        let secret = try CLI.run(["analyze", "--db", "postgresql://bakeoff:s3cret@127.0.0.1:1/bakeoff"])
        #expect(secret.status == 1)
        #expect(secret.stderr.contains("environment variable") && !secret.stderr.contains("s3cret"), "\(secret.stderr)")
        let empty = try CLI.run(["analyze", "--db", server.url])
        #expect(empty.status == 1)
        #expect(empty.stderr.contains("no Bakeoff event store in this database"), "\(empty.stderr)")
        // A log with a bad line adds nothing.
        let bad = try CLI.temporaryFile(#"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"control","user_id":"u1","request_id":"r1","latency_ms":5}"# + "\n{oops\n")
        let refused = try CLI.run(["import", "--db", server.url, bad])
        #expect(refused.status != 0 && refused.stderr.contains(":2:"), "\(refused.stderr)")
        #expect(try CLI.run(["analyze", "--db", server.url]).stderr.contains("empty"))
    }
}
