import BakeoffStore
import BakeoffTestSupport
import Dispatch
import Foundation
import Synchronization
import Testing

/// The PostgreSQL schema through the same `Migrator` as SQLite's: applied once however many gateways start at once,
/// refused on a database of something else or of a newer version; events partitioned by day, retention dropping
/// whole days.
@Suite("PostgreSQL schema", .serialized)
final class PostgresSchemaTests {
    let server: ThrowawayPostgres

    init() throws { server = try ThrowawayPostgres() }
    deinit { server.stop() }

    func connect() throws -> PostgresConnection { try PostgresConnection(PostgresLocation(url: server.url)) }

    @Test func aNewDatabaseIsMigratedOnceAndThenLeftAlone() throws {
        let db = try connect()
        #expect(try PostgresSchema.migrator.migrate(db) == PostgresSchema.migrations.map(\.id))
        #expect(try db.schemaVersion() == PostgresSchema.version)
        #expect(try PostgresSchema.migrator.migrate(db).isEmpty)
        #expect(try db.query("SELECT count(*) FROM events").int(0, 0) == 0)
    }

    @Test func gatewaysStartingAtOnceMigrateOneAfterAnother() throws {
        let applied = Mutex<[[String]]>([])
        let failures = Mutex<[String]>([])
        let url = server.url
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            do {
                let db = try PostgresConnection(PostgresLocation(url: url))
                let ids = try PostgresSchema.migrator.migrate(db)
                applied.withLock { $0.append(ids) }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        let all = applied.withLock { $0 }
        #expect(all.count == 6)
        #expect(all.flatMap { $0 }.sorted() == PostgresSchema.migrations.map(\.id).sorted())
    }

    @Test func aDatabaseOfSomethingElseOrNewerIsRefused() throws {
        let db = try connect()
        try db.execute("CREATE TABLE customers (id INT)")
        #expect {
            try PostgresSchema.migrator.migrate(db)
        } throws: { ($0 as? StoreError)?.kind == .notAStore }
        try db.execute("DROP TABLE customers")
        try PostgresSchema.migrator.migrate(db)
        try db.setSchemaVersion(PostgresSchema.version + 1)
        #expect {
            try PostgresSchema.migrator.migrate(db)
        } throws: { ($0 as? StoreError)?.kind == .newerSchema(version: PostgresSchema.version + 1, supported: PostgresSchema.version) }
    }

    @Test func eventsLandInTheirDaysPartitionAndRetentionDropsWholeDays() throws {
        let db = try connect()
        try PostgresSchema.migrator.migrate(db)
        let day: Int64 = 86_400_000_000
        let t0: Int64 = 1_796_083_200_000_000  // 2026-12-01T00:00:00Z
        // A row of a day before its partition exists goes to the default partition, and stays readable.
        func insert(_ ts: Int64) throws {
            try db.query("""
                INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line)
                VALUES ($1, 'e', 'request', 'control', 'u', 'c', 'r', 'ok', 0, '{}')
                """, [String(ts)])
        }
        try insert(t0 + 5)
        try PostgresSchema.ensurePartitions(db, for: [t0, t0 + 1, t0 + day + 7, t0 + 2 * day, -5, 9_000_000_000_000_000_000])
        try PostgresSchema.ensurePartitions(db, for: [t0 + day])  // again: nothing to do
        for ts in [t0 + day + 1, t0 + 2 * day + 3, t0 + 2 * day + 4, -5] { try insert(ts) }
        let placed = try db.query("SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1 ORDER BY 1").rows
        #expect(placed.map { "\($0[0] ?? "") \($0[1] ?? "")" } == ["events_20261202 1", "events_20261203 2", "events_default 2"])
        // Retention: the day before the cut goes whole; the default partition's rows before it go too.
        #expect(try PostgresSchema.dropPartitions(db, before: t0 + 2 * day) == ["events_20261202"])
        #expect(try db.query("SELECT ts FROM events ORDER BY ts").rows.map { $0[0] } == [String(t0 + 2 * day + 3), String(t0 + 2 * day + 4)])
        #expect(try PostgresSchema.dropPartitions(db, before: t0 + 2 * day).isEmpty)
    }
}
