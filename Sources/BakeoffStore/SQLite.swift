import BakeoffCore
import CSQLite
#if canImport(Glibc)
import Glibc
#endif

/// The C macro does not import: tells SQLite to copy bound bytes before `bind` returns.
let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// The event store's schema, its version kept in `PRAGMA user_version` (the number of migrations applied).
///
/// Every table is made by a migration, applied in order by `Migrator` when a writer opens the store, so an
/// older store is upgraded in place. Readers accept any version from 1 to the latest: migrations 1 to 4 only
/// add (a reader of an older store may find no `plans` table, and then no plans), and the events of versions 1
/// to 4 are read in their layout (`EventLayout`) until a writer converts them (migration 5).
public enum StoreSchema {
    public static let migrations: [Migration] = [
        // 1: the events table.
        Migration("events", sql: """
            CREATE TABLE events (
                id INTEGER PRIMARY KEY,
                ts INTEGER NOT NULL,
                experiment TEXT NOT NULL,
                kind TEXT NOT NULL,
                variant TEXT NOT NULL,
                user_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL,
                request_id TEXT NOT NULL,
                status TEXT NOT NULL,
                qa INTEGER NOT NULL,
                line TEXT NOT NULL);
            CREATE INDEX events_experiment ON events(experiment, id);
            CREATE INDEX events_request ON events(request_id);
            CREATE INDEX events_conversation ON events(conversation_id);
            """),
        // 2: the feedback name, and partial indexes (feedback rows only) for counting feedback per target and name.
        Migration("feedback-names", sql: """
            ALTER TABLE events ADD COLUMN name TEXT NOT NULL DEFAULT '';
            UPDATE events SET name = coalesce(CASE WHEN json_valid(line) THEN CAST(json_extract(line, '$.name') AS TEXT) END, '')
                WHERE kind = 'feedback';
            CREATE INDEX events_feedback_request ON events(request_id, name) WHERE kind = 'feedback';
            CREATE INDEX events_feedback_conversation ON events(conversation_id, name) WHERE kind = 'feedback' AND request_id = '';
            """),
        // 3: the plans an experiment ran under (see `PlanLog`). A store of version 2 may have the table already:
        // it was created outside the schema version, with this definition, when the first plan was recorded.
        Migration("plans", sql: """
            CREATE TABLE IF NOT EXISTS plans (
                id INTEGER PRIMARY KEY,
                ts INTEGER NOT NULL,
                experiment TEXT NOT NULL,
                plan TEXT NOT NULL);
            """),
        // 4: when each experiment's results were looked at (see `LookLog`), for group-sequential boundaries.
        Migration("looks", sql: """
            CREATE TABLE looks (
                id INTEGER PRIMARY KEY,
                ts INTEGER NOT NULL,
                experiment TEXT NOT NULL,
                source TEXT NOT NULL);
            CREATE INDEX looks_experiment ON looks(experiment, ts);
            """),
        // 5: the events in compact rows (see `EventRows`): interned strings, numbers as numbers, no line unless
        // it cannot be rebuilt; `events` becomes a view with the columns and lines of versions 1 to 4.
        Migration("compact-events", EventRows.convert),
    ]

    public static let migrator = Migrator(migrations)

    /// The version of a store with every migration applied.
    public static var version: Int { migrator.latestVersion }
}

/// What to do about a damaged store file: the shell pipeline copies every readable row into a new store
/// (`.dump` ends a damaged file's dump with ROLLBACK, which the sed turns into COMMIT).
func damagedStoreAdvice(_ path: String, version: Int?) -> String {
    "restore it from a backup, or copy what is readable into a new store with the sqlite3 shell: " +
        "sqlite3 \(path) .dump | sed '$s/^ROLLBACK.*/COMMIT;/' | sqlite3 NEW.db && " +
        "sqlite3 NEW.db 'PRAGMA user_version=\(version ?? StoreSchema.version)', then use NEW.db " +
        "(or move the damaged file aside to start an empty store)"
}

/// How the open-time check of a store went.
public enum IntegrityCheck: Sendable, Equatable {
    /// `PRAGMA quick_check` found no problem.
    case passed
    /// The check ran out of its time (a large store) without finding a problem in what it read.
    case stoppedAfter(seconds: Double)
    /// Not checked (read-only connections).
    case skipped
}

/// One SQLite connection (opened with SQLITE_OPEN_NOMUTEX), used by one thread at a time: it is not `Sendable`,
/// so the compiler keeps it on the thread that made it, or in a `Mutex` (the store's read connection).
package final class Connection {
    let path: String
    /// What the database is, in messages ("event store", "eval cache").
    package let label: String
    /// Its schema.
    let migrator: Migrator
    let db: OpaquePointer
    private(set) var integrity = IntegrityCheck.skipped

    /// Opens `path`; `readOnly` connections never create the file or its schema. A writer creates a new store
    /// file readable by its owner only (0600; SQLite gives its -wal and -shm files the same mode) and, with
    /// `checkSeconds`, runs `PRAGMA quick_check` (stopped after that many seconds) before touching the schema.
    package init(path: String, readOnly: Bool, checkSeconds: Double? = nil,
                 label: String = "event store", migrator: Migrator = StoreSchema.migrator) throws(StoreError) {
        self.path = path
        self.label = label
        self.migrator = migrator
        guard !path.isEmpty else { throw StoreError(.noPath, path: path, "\(label): no database path given") }
        var st = stat()
        if stat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { throw StoreError(.isDirectory, path: path, "\(path): is a directory, not an \(label)") }
        } else if readOnly {
            throw StoreError(.cannotOpen, path: path, "\(path): cannot open the \(label): \(String(cString: strerror(errno)))")
        } else {
            try Self.createFile(path, label: label)
        }
        var handle: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let handle { sqlite3_close_v2(handle) }
            throw StoreError(.cannotOpen, path: path, "\(path): cannot open the \(label): \(message)")
        }
        db = handle
        sqlite3_busy_timeout(db, 5000)
        if let checkSeconds { integrity = try check(seconds: checkSeconds) }
        try checkSchema(create: !readOnly)
    }

    deinit { sqlite3_close_v2(db) }

    /// Creates an empty store file with mode 0600 (SQLite would create it 0644: it may hold prompts and answers).
    private static func createFile(_ path: String, label: String) throws(StoreError) {
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd); return }
        let code = errno
        if code == EEXIST { return }  // created meanwhile by another process
        throw cannotCreate(path, errno: code, label: label)
    }

    /// Why a store cannot be created at `path`, said the same way by `createFile` and `EventStore.checkLocation`.
    static func cannotCreate(_ path: String, errno code: Int32, label: String = "event store") -> StoreError {
        let folder = folderOf(path)
        if code == ENOENT || code == ENOTDIR {
            return StoreError(.cannotCreate, path: path, "\(path): cannot create the \(label): the folder \(folder) does not exist; create it or choose another path")
        }
        return StoreError(.cannotCreate, path: path, "\(path): cannot create the \(label): \(String(cString: strerror(code)))")
    }

    /// The open-time check: `PRAGMA quick_check`, interrupted after `seconds`; a damaged store is an error
    /// that says what to do.
    private func check(seconds: Double) throws(StoreError) -> IntegrityCheck {
        let started = MonotonicClock.now()
        var deadline = started &+ UInt64(max(seconds, 0) * 1e9)
        var problems: [String] = []
        let rc = withUnsafeMutablePointer(to: &deadline) { pointer -> Int32 in
            sqlite3_progress_handler(db, 1000, { context in
                MonotonicClock.now() > context!.load(as: UInt64.self) ? 1 : 0
            }, pointer)
            defer { sqlite3_progress_handler(db, 0, nil, nil) }
            var stmt: OpaquePointer?
            var rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(5)", -1, &stmt, nil)
            defer { sqlite3_finalize(stmt) }
            guard rc == SQLITE_OK else { return rc }
            while true {
                rc = sqlite3_step(stmt)
                guard rc == SQLITE_ROW else { break }
                if let text = sqlite3_column_text(stmt, 0) { problems.append(String(cString: text)) }
            }
            return rc == SQLITE_DONE ? SQLITE_OK : rc
        }
        switch rc {
        case SQLITE_OK where problems == ["ok"]:
            return .passed
        case SQLITE_OK:
            let version = try? schemaVersion()
            let found = problems.flatMap { $0.split(separator: "\n") }.filter { !$0.hasPrefix("*** in database") }
            throw StoreError(.damaged, path: path, "\(path): the \(label) is damaged (\(found.prefix(3).joined(separator: "; "))); it was not opened: \(damagedStoreAdvice(path, version: version))")
        case SQLITE_INTERRUPT:
            return .stoppedAfter(seconds: Double(MonotonicClock.now() &- started) / 1e9)
        case SQLITE_NOTADB:
            throw StoreError(.notAStore, path: path, "\(path): not an \(label) (not an SQLite database, or its header is damaged); give another path, or restore the file from a backup")
        case SQLITE_CORRUPT:
            throw StoreError(.damaged, path: path, "\(path): the \(label) is damaged (\(String(cString: sqlite3_errmsg(db)))); it was not opened: \(damagedStoreAdvice(path, version: nil))")
        default:
            throw failure("cannot check the \(label)")
        }
    }

    /// Checks (and for a writer creates or upgrades) the schema: a newer version or a file that is not an event
    /// store is an error naming the path.
    private func checkSchema(create: Bool) throws(StoreError) {
        let version: Int
        do { version = try schemaVersion() } catch {
            throw StoreError(.notAStore, path: path, "\(path): not an \(label) (\(sqlite3_errcode(db) == SQLITE_NOTADB ? "not an SQLite database, or its header is damaged" : String(cString: sqlite3_errmsg(db)))); give another path, or restore the file from a backup")
        }
                try migrator.checkReadable(version, self)
        if version == migrator.latestVersion { return }
        if !create {
            // Readers work on every version (see `StoreSchema`).
            if version >= 1 { return }
            throw StoreError(.notAStore, path: path, "\(path): not an \(label) (an SQLite database without its tables)")
        }
        // A new store frees the pages of deleted events (retention) with `PRAGMA incremental_vacuum`; SQLite
        // takes this only before the first table exists, so it does nothing on an existing store.
        if version == 0 { try execute("PRAGMA auto_vacuum=INCREMENTAL") }
        try execute("PRAGMA journal_mode=WAL")
        let applied = try migrator.migrate(self)
        // The pages of the converted events' old table go back to the file system (with auto_vacuum).
        if applied.contains("compact-events") { try? execute("PRAGMA incremental_vacuum") }
    }

    /// Whether the database file was deleted, renamed or replaced since it was opened: writes would then go to
    /// a file nobody can find again.
    var fileHasMoved: Bool {
        var moved: Int32 = 0
        return sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK && moved != 0
    }

    package func execute(_ sql: String) throws(StoreError) {
        var message: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &message) != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(message)
            throw StoreError(errorKind(), path: path, "\(path): \(text)")
        }
    }

    func prepare(_ sql: String) throws(StoreError) -> Statement {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil) == SQLITE_OK, let stmt else {
            throw failure("cannot prepare a statement")
        }
        return Statement(stmt, connection: self)
    }

    /// The first column of the first row of `sql`, as an integer.
    func scalar(_ sql: String) throws(StoreError) -> Int64 {
        let s = try prepare(sql)
        guard try s.step() else { return 0 }
        return s.int(0)
    }

    /// An error with SQLite's message for the last call on this connection.
    func failure(_ what: String) -> StoreError {
        let kind = errorKind()
        let advice = kind == .damaged ? "; the store is damaged: \(damagedStoreAdvice(path, version: nil))" : ""
        return StoreError(kind, path: path, "\(path): \(what): \(String(cString: sqlite3_errmsg(db)))\(advice)")
    }

    /// The kind of error of the last call on this connection: damaged, or SQLite's extended result code.
    private func errorKind() -> StoreError.Kind {
        let code = sqlite3_errcode(db)
        return code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? .damaged : .sqlite(code: sqlite3_extended_errcode(db))
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { Int(sqlite3_changes(db)) }
}

extension Connection: MigrationDatabase {
    package var name: String { path }

    package func inWriteTransaction(_ body: () throws(StoreError) -> Void) throws(StoreError) {
        try execute("BEGIN IMMEDIATE")
        do throws(StoreError) {
            try body()
            try execute("COMMIT")
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    package func schemaVersion() throws(StoreError) -> Int { Int(try scalar("PRAGMA user_version")) }

    package func setSchemaVersion(_ version: Int) throws(StoreError) { try execute("PRAGMA user_version = \(version)") }

    package func hasTables() throws(StoreError) -> Bool { try scalar("SELECT count(*) FROM sqlite_master") > 0 }
}

/// A prepared statement; finalized when released.
final class Statement {
    let stmt: OpaquePointer
    let connection: Connection

    init(_ stmt: OpaquePointer, connection: Connection) {
        self.stmt = stmt
        self.connection = connection
    }

    deinit { sqlite3_finalize(stmt) }

    func bind(_ index: Int32, _ value: String) {
        var value = value
        value.withUTF8 { bytes in
            guard let base = bytes.baseAddress, bytes.count > 0 else {
                _ = sqlite3_bind_text(stmt, index, "", 0, SQLITE_TRANSIENT)
                return
            }
            _ = UnsafeRawPointer(base).withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                sqlite3_bind_text(stmt, index, $0, Int32(bytes.count), SQLITE_TRANSIENT)
            }
        }
    }

    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(stmt, index, value) }

    /// A column's value where it may be an integer or text (a string's id, or the string).
    enum Key {
        case int(Int64)
        case text(String)
    }

    func value(_ column: Int32) -> Key {
        sqlite3_column_type(stmt, column) == SQLITE_INTEGER ? .int(int(column)) : .text(string(column))
    }

    func bind(_ index: Int32, _ key: Key) {
        switch key {
        case .int(let v): bind(index, v)
        case .text(let t): bind(index, t)
        }
    }

    func bindBlob(_ index: Int32, _ bytes: UnsafeRawBufferPointer) {
        _ = sqlite3_bind_blob(stmt, index, bytes.baseAddress, Int32(bytes.count), SQLITE_TRANSIENT)
    }

    func bind(_ index: Int32, _ value: Double?) {
        if let value { sqlite3_bind_double(stmt, index, value) } else { sqlite3_bind_null(stmt, index) }
    }

    func bind(_ index: Int32, _ value: Int?) {
        if let value { sqlite3_bind_int64(stmt, index, Int64(value)) } else { sqlite3_bind_null(stmt, index) }
    }

    /// Steps once: true when a row is ready, false when done.
    func step() throws(StoreError) -> Bool {
        switch sqlite3_step(stmt) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.failure("cannot read or write the \(connection.label)")
        }
    }

    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }

    func double(_ column: Int32) -> Double { sqlite3_column_double(stmt, column) }

    func string(_ column: Int32) -> String { String(decoding: bytes(column), as: UTF8.self) }

    /// A column's bytes, valid until the next step or reset.
    func bytes(_ column: Int32) -> UnsafeRawBufferPointer {
        guard let p = sqlite3_column_text(stmt, column) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: p, count: Int(sqlite3_column_bytes(stmt, column)))
    }
}
