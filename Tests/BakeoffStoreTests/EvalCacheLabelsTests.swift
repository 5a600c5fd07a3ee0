import BakeoffStore
import CSQLite
import Foundation
import Testing

private func label(_ key: String, _ labeler: String, _ verdict: EvalCache.Label.Verdict, experiment: String = "support",
                   note: String? = nil, left: Bool? = true) -> EvalCache.Label {
    EvalCache.Label(key: key, labeler: labeler, source: "/tmp/\(labeler).csv", experiment: experiment, requestID: "req-\(key)",
                    variant: "treatment", control: "control", verdict: verdict, variantWasLeft: left, item: "i\(key)",
                    note: note, createdAt: 1_700_000_000_000_000)
}

private func temporaryCache() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("eval-labels-\(UUID().uuidString).db").path
}

private func remove(_ path: String) {
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
}

@Suite("Eval cache: human labels")
struct EvalCacheLabelsTests {
    @Test func theLabelsMigrationIsAppended() {
        #expect(EvalCache.migrator.migrations.map(\.id) == ["eval-calls", "eval-labels", "eval-reports"])
    }

    @Test func labelsAreKeptPerKeyAndLabelerAndReplacedOnImportAgain() throws {
        let path = temporaryCache()
        defer { remove(path) }
        do {
            let cache = try EvalCache(path: path)
            try cache.saveLabels([label("a", "ann", .win, note: "clearer, \"shorter\""), label("b", "ann", .loss, left: nil), label("a", "bob", .tie)])
            try cache.saveLabels([label("a", "ann", .loss), label("c", "ann", .win, experiment: "other")])
            try cache.close()
        }
        let cache = try EvalCache(path: path)
        defer { try? cache.close() }
        let all = try cache.labels()
        #expect(all.map { "\($0.key)/\($0.labeler)/\($0.verdict.rawValue)" } == ["a/ann/loss", "a/bob/tie", "b/ann/loss", "c/ann/win"])
        #expect(all[0].note == nil)  // replaced by the later import
        #expect(all[2].variantWasLeft == nil && all[1].variantWasLeft == true)
        #expect(all[1] == label("a", "bob", .tie))
        #expect(try cache.labels(experiment: "support").count == 3)
        #expect(try cache.labels(experiment: "other").map(\.key) == ["c"])
        #expect(try cache.labels(keys: ["a", "zzz"]).map(\.labeler) == ["ann", "bob"])
        #expect(try cache.labels(experiment: "other", keys: ["a"]).isEmpty)
        // Labels are not calls: the calls count is unchanged.
        #expect(cache.entriesAtOpen == 0)
    }

    @Test func aCacheFromBeforeTheLabelsKeepsItsCallsAndGainsTheTable() throws {
        let path = temporaryCache()
        defer { remove(path) }
        do {
            // The cache as the release without labels made it: the first migration only.
            let old = try Connection(path: path, readOnly: false, label: "eval cache", migrator: Migrator([EvalCache.migrator.migrations[0]]))
            try old.execute("INSERT INTO calls (key, text, latency_ms, created_at) VALUES ('k', 'an answer', 12.5, 1)")
            #expect(try old.schemaVersion() == 1)
        }
        let cache = try EvalCache(path: path)
        defer { try? cache.close() }
        #expect(cache.entriesAtOpen == 1)
        #expect(try cache.entry("k")?.text == "an answer")
        try cache.saveLabels([label("x", "ann", .win)])
        #expect(try cache.labels().count == 1)
        #expect(try sqliteScalar(path, "PRAGMA user_version") == 3)
    }

    @Test func aVerdictOutsideWinTieLossIsRefusedByTheSchema() throws {
        let path = temporaryCache()
        defer { remove(path) }
        let cache = try EvalCache(path: path)
        try cache.close()
        let db = try Connection(path: path, readOnly: false, label: "eval cache", migrator: EvalCache.migrator)
        #expect(throws: StoreError.self) {
            try db.execute("INSERT INTO labels (key, labeler, source, experiment, request_id, variant, control, verdict, item, created_at) VALUES ('k', 'l', 's', 'e', 'r', 'v', 'c', 'maybe', 'i', 0)")
        }
    }

    @Test func reportsAreKeptNewestFirstAndACacheFromBeforeHasNone() throws {
        let path = temporaryCache()
        defer { remove(path) }
        do {
            // A cache of the release before reports were kept: it opens read-only and lists none.
            let old = try Connection(path: path, readOnly: false, label: "eval cache", migrator: Migrator(Array(EvalCache.migrator.migrations.prefix(2))))
            #expect(try old.schemaVersion() == 2)
        }
        #expect(try EvalCache.savedReports(path: path).isEmpty)
        try EvalCache.saveReport(path: path, experiment: "e", createdAt: 1, summary: "first", json: "{}", html: "<p>1</p>")
        try EvalCache.saveReport(path: path, experiment: "e", createdAt: 2, summary: "second", json: "{}", html: "<p>2</p>")
        let all = try EvalCache.savedReports(path: path)
        #expect(all.map(\.summary) == ["second", "first"])
        #expect(try EvalCache.savedReports(path: path, id: all[1].id).map(\.html) == ["<p>1</p>"])
        #expect(try EvalCache.savedReports(path: path, id: 99).isEmpty)
    }
}
