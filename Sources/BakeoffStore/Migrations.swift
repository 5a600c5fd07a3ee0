/// What migrations need of a database connection: SQLite's today (`Connection`); another database's (e.g.
/// PostgreSQL, whose version would live in a one-row table) can implement it and reuse `Migrator`.
public protocol MigrationDatabase: AnyObject {
    /// The database's name in messages (the store's path).
    var name: String { get }
    /// What the database is, in messages ("event store", "eval cache").
    var label: String { get }
    /// Runs SQL: one statement or several.
    func execute(_ sql: String) throws(StoreError)
    /// Runs `body` in one write transaction that keeps other writers out until it ends (SQLite: BEGIN
    /// IMMEDIATE); commits when `body` returns, rolls back when it throws.
    func inWriteTransaction(_ body: () throws(StoreError) -> Void) throws(StoreError)
    /// The schema version recorded in the database: the number of migrations applied; 0 for a new database.
    func schemaVersion() throws(StoreError) -> Int
    /// Records the schema version (called inside the migration's transaction).
    func setSchemaVersion(_ version: Int) throws(StoreError)
    /// Whether the database holds any table (at version 0 it then belongs to something else).
    func hasTables() throws(StoreError) -> Bool
}

/// One step of a schema: an identifier (for messages and to tell steps apart) and what it does.
public struct Migration: Sendable {
    public enum Body: Sendable {
        /// SQL run as it is (several statements allowed).
        case sql(String)
        /// Code, for what SQL alone cannot say.
        case run(@Sendable (any MigrationDatabase) throws(StoreError) -> Void)
    }

    public let id: String
    public let body: Body

    public init(_ id: String, sql: String) {
        self.id = id
        body = .sql(sql)
    }

    public init(_ id: String, _ run: @escaping @Sendable (any MigrationDatabase) throws(StoreError) -> Void) {
        self.id = id
        body = .run(run)
    }

    func apply(to db: any MigrationDatabase) throws(StoreError) {
        switch body {
        case .sql(let sql): try db.execute(sql)
        case .run(let run): try run(db)
        }
    }
}

extension MigrationDatabase {
    public var label: String { "event store" }
}

/// Applies an ordered list of migrations, as GRDB's `DatabaseMigrator` does: each one once, in its own write
/// transaction that also records the new version (the number of migrations applied), so a database is always
/// at a version some list of this program has. A database newer than the list is refused.
///
/// Never edit or reorder a migration that has shipped: append one.
public struct Migrator: Sendable {
    public let migrations: [Migration]

    public init(_ migrations: [Migration]) {
        precondition(Set(migrations.map(\.id)).count == migrations.count, "migration identifiers must be unique")
        self.migrations = migrations
    }

    /// The version of a database with every migration applied.
    public var latestVersion: Int { migrations.count }

    /// Brings `db` to `latestVersion`, one migration at a time; returns the identifiers applied (none when it
    /// was up to date).
    ///
    /// Another process may migrate the same database at the same time: each step reads the version inside its
    /// transaction and applies the migration after it, so no migration runs twice.
    @discardableResult
    public func migrate(_ db: any MigrationDatabase) throws(StoreError) -> [String] {
        var applied: [String] = []
        while true {
            var done = false
            try db.inWriteTransaction { () throws(StoreError) in
                let version = try db.schemaVersion()
                try checkReadable(version, db)
                if version == latestVersion {
                    done = true
                    return
                }
                if version == 0, try db.hasTables() {
                    throw StoreError(.notAStore, path: db.name, "\(db.name): a database that is not an \(db.label) (it has other tables but no schema version); give a new path")
                }
                let migration = migrations[version]
                do throws(StoreError) {
                    try migration.apply(to: db)
                    try db.setSchemaVersion(version + 1)
                } catch {
                    throw StoreError(.migrationFailed(id: migration.id, version: version + 1), path: db.name,
                                     "\(error.message) (while upgrading the store's schema to version \(version + 1), \"\(migration.id)\"; the store stays at version \(version))")
                }
                applied.append(migration.id)
            }
            if done { return applied }
        }
    }

    /// Refuses a version newer than this list (readers take every older one: migrations only add).
    public func checkReadable(_ version: Int, _ db: any MigrationDatabase) throws(StoreError) {
        if version > latestVersion {
            throw StoreError(.newerSchema(version: version, supported: latestVersion), path: db.name,
                             "\(db.name): the \(db.label) has schema version \(version), newer than this bakeoff reads (\(latestVersion)); use a newer bakeoff")
        }
    }
}
