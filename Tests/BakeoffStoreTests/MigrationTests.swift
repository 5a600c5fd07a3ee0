import BakeoffCore
import BakeoffStore
import Foundation
import Synchronization
import Testing

/// Every store that exists in the field opens and ends at the latest version, with every table made by a migration.
@Suite("Event store: every version opens and upgrades", .serialized)
struct StoreUpgradeTests {
    /// The version 2 schema as the release before the plans migration created it: version 1 and the feedback names.
    static let version2 = StoreMigrationTests.version1.replacingOccurrences(of: "PRAGMA user_version = 1;", with: "") + """
        ALTER TABLE events ADD COLUMN name TEXT NOT NULL DEFAULT '';
        CREATE INDEX events_feedback_request ON events(request_id, name) WHERE kind = 'feedback';
        CREATE INDEX events_feedback_conversation ON events(conversation_id, name) WHERE kind = 'feedback' AND request_id = '';
        PRAGMA user_version = 2;
        """

    /// The `plans` table as that release created it, outside the schema version, when a gateway first recorded a plan.
    static let plansOutsideTheVersion = """
        CREATE TABLE IF NOT EXISTS plans (
            id INTEGER PRIMARY KEY,
            ts INTEGER NOT NULL,
            experiment TEXT NOT NULL,
            plan TEXT NOT NULL);
        INSERT INTO plans (ts, experiment, plan) VALUES (100, 'e', 'alpha: 0.05'), (200, 'e', 'alpha: 0.1'), (150, 'f', 'split: 0.5');
        """

    static func version(_ path: String) throws -> Int64 { try sqliteScalar(path, "PRAGMA user_version") }

    static func hasPlansTable(_ path: String) throws -> Bool {
        try sqliteScalar(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'plans'") == 1
    }

    @Test func theMigrationsAreNamedInOrder() {
        #expect(StoreSchema.migrations.map(\.id) == ["events", "feedback-names", "plans", "looks", "compact-events"])
        #expect(StoreSchema.version == 5)
        #expect(StoreSchema.migrator.latestVersion == StoreSchema.version)
    }

    @Test func aFreshStoreHasThePlansTableAndTheLatestVersionBeforeAnyPlanIsRecorded() throws {
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        #expect(try Self.hasPlansTable(path))
        #expect(try Self.version(path) == Int64(StoreSchema.version))
        #expect(try sqliteScalar(path, "SELECT count(*) FROM plans") == 0)
        store.close()
        #expect(try PlanLog.history(path: path, experiment: "e") == [])
        // Opening again changes nothing.
        try EventStore(path: path).close()
        #expect(try Self.version(path) == Int64(StoreSchema.version))
    }

    @Test func aVersion2StoreWithThePlansTableMadeOutsideTheVersionKeepsItsPlans() throws {
        let path = try temporaryStorePath()
        try sqliteShell(path, Self.version2 + Self.plansOutsideTheVersion)
        try sqliteShell(path, "INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line) VALUES (1, 'e', 'request', 'control', 'u', 'r', 'r', 'ok', 0, '{}');")
        let recorded = [PlanLog.Entry(timestamp: 100, plan: "alpha: 0.05"), PlanLog.Entry(timestamp: 200, plan: "alpha: 0.1")]
        // A reader takes it as it is (and does not upgrade it).
        #expect(try PlanLog.history(path: path, experiment: "e") == recorded)
        #expect(try StoreReader.experiments(path: path) == ["e"])
        #expect(try Self.version(path) == 2)

        let store = try EventStore(path: path)
        #expect(try Self.version(path) == Int64(StoreSchema.version))
        store.append(request(2))
        store.close()
        #expect(try PlanLog.history(path: path, experiment: "e") == recorded)
        #expect(try PlanLog.history(path: path, experiment: "f") == [PlanLog.Entry(timestamp: 150, plan: "split: 0.5")])
        #expect(try storedLines(path).count == 2)
        // Recording goes on after the plans that were there.
        #expect(try PlanLog.record(path: path, experiment: "e", plan: "alpha: 0.1", timestamp: 300) == false)
        #expect(try PlanLog.record(path: path, experiment: "e", plan: "alpha: 0.2", timestamp: 300))
        #expect(try PlanLog.history(path: path, experiment: "e").map(\.plan) == ["alpha: 0.05", "alpha: 0.1", "alpha: 0.2"])
    }

    @Test func aVersion2StoreWithoutThePlansTableGetsIt() throws {
        let path = try temporaryStorePath()
        try sqliteShell(path, Self.version2)
        #expect(try !Self.hasPlansTable(path))
        #expect(try PlanLog.history(path: path, experiment: "e") == [])
        try EventStore(path: path).close()
        #expect(try Self.hasPlansTable(path))
        #expect(try Self.version(path) == Int64(StoreSchema.version))
        #expect(try PlanLog.history(path: path, experiment: "e") == [])
    }

    @Test func aVersion1StoreGetsEveryMigrationAfterIt() throws {
        let path = try temporaryStorePath()
        try sqliteShell(path, StoreMigrationTests.version1)
        try sqliteShell(path, """
            INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line)
            VALUES (1, 'e', 'feedback', 'control', 'u', 'c', 'r', '', 0, '{"event":"feedback","name":"thumbs_up"}');
            """)
        #expect(try Self.version(path) == 1)
        let store = try EventStore(path: path)
        #expect(store.feedbackCount(requestID: "r", name: "thumbs_up") == 1)
        store.close()
        #expect(try Self.version(path) == Int64(StoreSchema.version))
        #expect(try Self.hasPlansTable(path))
    }

    @Test func recordingAPlanKeepsOnlyChanges() throws {
        let path = try temporaryStorePath()
        #expect(try PlanLog.record(path: path, experiment: "e", plan: "a", timestamp: 10))
        #expect(try PlanLog.record(path: path, experiment: "e", plan: "a", timestamp: 20) == false)
        #expect(try PlanLog.record(path: path, experiment: "f", plan: "a", timestamp: 20))
        #expect(try PlanLog.record(path: path, experiment: "e", plan: "b", timestamp: 30))
        #expect(try PlanLog.history(path: path, experiment: "e") == [PlanLog.Entry(timestamp: 10, plan: "a"), PlanLog.Entry(timestamp: 30, plan: "b")])
        #expect(try Self.version(path) == Int64(StoreSchema.version))
    }

    @Test func aStoreNewerThanThisBinaryIsRefusedByWritersAndReaders() throws {
        let path = try temporaryStorePath()
        try EventStore(path: path).close()
        try sqliteShell(path, "PRAGMA user_version = \(StoreSchema.version + 1);")
        let newer = StoreError.Kind.newerSchema(version: StoreSchema.version + 1, supported: StoreSchema.version)
        #expect { try EventStore(path: path) } throws: { ($0 as? StoreError)?.kind == newer }
        #expect { try StoreReader.experiments(path: path) } throws: { ($0 as? StoreError)?.kind == newer }
        #expect { try PlanLog.record(path: path, experiment: "e", plan: "a", timestamp: 1) } throws: {
            ($0 as? StoreError)?.kind == newer && "\($0)".contains("use a newer bakeoff") && "\($0)".contains(path)
        }
        #expect(try Self.version(path) == Int64(StoreSchema.version + 1))
    }
}

/// A database that is not SQLite (as a PostgreSQL connection would be): it keeps the statements run and the
/// version in memory, and a transaction is a copy put back when it fails.
final class RecordingDatabase: MigrationDatabase {
    let name = "memory"
    var statements: [String] = []
    var version = 0
    var tables = false
    var transactions = 0
    /// A statement that fails when run.
    var failing: String?

    func execute(_ sql: String) throws(StoreError) {
        if sql == failing { throw StoreError(.sqlite(code: 1), path: name, "\(name): \(sql) failed") }
        statements.append(sql)
    }

    func inWriteTransaction(_ body: () throws(StoreError) -> Void) throws(StoreError) {
        let before = (statements, version)
        transactions += 1
        do throws(StoreError) { try body() } catch {
            (statements, version) = before
            throw error
        }
    }

    func schemaVersion() throws(StoreError) -> Int { version }
    func setSchemaVersion(_ version: Int) throws(StoreError) { self.version = version }
    func hasTables() throws(StoreError) -> Bool { tables || !statements.isEmpty }
}

@Suite("Migrator")
struct MigratorTests {
    static let migrations = [
        Migration("one", sql: "CREATE one"),
        Migration("two") { db throws(StoreError) in
            try db.execute("CREATE two")
            try db.execute("FILL two")
        },
        Migration("three", sql: "CREATE three"),
    ]

    @Test func eachMigrationRunsOnceInItsOwnTransactionAndRecordsItsVersion() throws {
        let db = RecordingDatabase()
        let migrator = Migrator(Self.migrations)
        #expect(try migrator.migrate(db) == ["one", "two", "three"])
        #expect(db.statements == ["CREATE one", "CREATE two", "FILL two", "CREATE three"])
        #expect(db.version == 3)
        #expect(db.transactions == 4)  // three migrations, then one that finds nothing to do
        #expect(try migrator.migrate(db) == [])
        #expect(db.statements.count == 4)
        // A longer list applies only what is new.
        #expect(try Migrator(Self.migrations + [Migration("four", sql: "CREATE four")]).migrate(db) == ["four"])
        #expect(db.version == 4)
    }

    @Test func aFailedMigrationLeavesTheOnesBeforeItAndIsRetriedNextTime() throws {
        let db = RecordingDatabase()
        db.failing = "FILL two"
        let migrator = Migrator(Self.migrations)
        do { try migrator.migrate(db); Issue.record("no error") } catch {
            #expect(error.kind == .migrationFailed(id: "two", version: 2))
            #expect(error.message.contains("memory: FILL two failed"))
            #expect(error.message.contains("the store stays at version 1"))
        }
        #expect(db.version == 1)
        #expect(db.statements == ["CREATE one"])
        db.failing = nil
        #expect(try migrator.migrate(db) == ["two", "three"])
        #expect(db.version == 3)
    }

    @Test func aNewerOrForeignDatabaseIsRefused() throws {
        let migrator = Migrator(Self.migrations)
        let newer = RecordingDatabase()
        newer.version = 4
        #expect { try migrator.migrate(newer) } throws: { ($0 as? StoreError)?.kind == .newerSchema(version: 4, supported: 3) }
        let foreign = RecordingDatabase()
        foreign.tables = true
        #expect { try migrator.migrate(foreign) } throws: { ($0 as? StoreError)?.kind == .notAStore }
        #expect(foreign.statements.isEmpty)
    }
}
