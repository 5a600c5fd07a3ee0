import Foundation
import Testing

@Suite("bakeoff import, export and analyze --db", .serialized)
struct StoreCLITests {
    static func directory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-store-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The store names the problem; the command line adds which option fixes it.
    @Test func storeErrorsGainTheirCommandLineRemedy() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("empty.db").path
        let line = #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"control","user_id":"u1","request_id":"r1","latency_ms":5}"#
        let log = dir.appendingPathComponent("two.jsonl").path
        try (line + "\n" + line.replacingOccurrences(of: "\"e\"", with: "\"f\"").replacingOccurrences(of: "r1", with: "r2") + "\n")
            .write(toFile: log, atomically: true, encoding: .utf8)
        #expect(try CLI.run(["import", "--db", dir.appendingPathComponent("two.db").path, log]).status == 0)
        let several = try CLI.run(["analyze", "--db", dir.appendingPathComponent("two.db").path])
        #expect(several.status == 1)
        #expect(several.stderr.contains("several experiments") && several.stderr.contains("(--experiment NAME)"), "\(several.stderr)")
        #expect(try CLI.run(["import", "--db", db, "/dev/null"]).status != 2)
        let empty = try CLI.run(["analyze", "--db", db])
        #expect(empty.status == 1)
        #expect(empty.stderr.contains("point --db at the gateway's store"), "\(empty.stderr)")
    }

    @Test func theStoreTheExportAndTheLogGiveIdenticalReports() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("log.jsonl").path, db = dir.appendingPathComponent("events.db").path
        let exported = dir.appendingPathComponent("exported.jsonl").path
        #expect(try CLI.run(["simulate", "--preset", "seed-case-study", "--output", log]).status == 0)
        let imported = try CLI.run(["import", "--db", db, log])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr.contains("imported"))
        let export = try CLI.run(["export", "--db", db, "--output", exported])
        #expect(export.status == 0, "\(export.stderr)")
        // The stored lines are the log's lines, byte for byte.
        #expect(FileManager.default.contents(atPath: exported) == FileManager.default.contents(atPath: log))
        #expect(try CLI.run(["export", "--db", db]).stdout == String(contentsOfFile: log, encoding: .utf8))
        for extra in [[], ["--split", "0.2", "--primary", "csat"]] {
            let fromStore = try CLI.run(["analyze", "--db", db, "--format", "json"] + extra)
            let fromExport = try CLI.run(["analyze", exported, "--format", "json"] + extra)
            let fromLog = try CLI.run(["analyze", log, "--format", "json"] + extra)
            #expect(fromStore.status == 0, "\(fromStore.stderr)")
            #expect(fromStore.stdout.contains("\"schema\""))
            #expect(fromStore.stdout == fromExport.stdout)
            #expect(fromExport.stdout == fromLog.stdout)
        }
    }

    @Test func severalExperimentsAreNamedAndQAEventsExportedOnlyWhenAsked() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("events.db").path
        let e1 = goodRequest
        let qa = goodRequest.replacingOccurrences(of: "r1", with: "r2").replacingOccurrences(of: "}", with: #","qa":true,"prompt":"hi"}"#)
        let f = goodRequest.replacingOccurrences(of: "\"e\"", with: "\"f\"").replacingOccurrences(of: "r1", with: "r9")
        let log = try CLI.temporaryFile([e1, qa, f].joined(separator: "\n") + "\n")
        #expect(try CLI.run(["import", "--db", db, log]).status == 0)

        let ambiguous = try CLI.run(["analyze", "--db", db])
        #expect(ambiguous.status == 1)
        #expect(ambiguous.stderr.contains("several experiments: e (2 events), f (1 events)"), "\(ambiguous.stderr)")
        #expect(ambiguous.stderr.contains(db))
        let missing = try CLI.run(["analyze", "--db", db, "--experiment", "g"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("experiment \"g\" not found"))

        #expect(try CLI.run(["export", "--db", db]).stdout == e1 + "\n" + f + "\n")
        #expect(try CLI.run(["export", "--db", db, "--include-qa"]).stdout == [e1, qa, f].joined(separator: "\n") + "\n")
        #expect(try CLI.run(["export", "--db", db, "--experiment", "f", "--output", "-"]).stdout == f + "\n")
        let report = try CLI.run(["analyze", "--db", db, "--experiment", "e", "--format", "json"])
        #expect(report.status == 0, "\(report.stderr)")
        #expect(report.stdout.contains("\"qa_requests_excluded\": 1"))
        let table = try CLI.run(["analyze", "--db", db, "--experiment", "e"])
        #expect(table.stdout.contains("QA requests left out"))
    }

    @Test func mistakesAreExplained() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("events.db").path
        let absent = dir.appendingPathComponent("absent.db").path
        let r = try CLI.run(["analyze", "--db", absent])
        #expect(r.status == 1)
        #expect(r.stderr.contains(absent))
        #expect(try CLI.run(["export"]).status == 2)
        #expect(try CLI.run(["analyze", "--db", db, "some.jsonl"]).status == 2)
        let bad = try CLI.temporaryFile(goodRequest + "\n{\"event\":\"request\"\n")
        let imported = try CLI.run(["import", "--db", db, bad])
        #expect(imported.status == 1)
        #expect(imported.stderr.contains("\(bad):2:"))
        let notStore = try CLI.run(["export", "--db", bad])
        #expect(notStore.status == 1)
        #expect(notStore.stderr.contains("\(bad): not an event store"), "\(notStore.stderr)")
        #expect(try CLI.run(["help", "export"]).stdout.contains("--include-qa"))
    }
}
