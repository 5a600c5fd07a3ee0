import CSQLite
#if canImport(Glibc)
import Glibc
#endif

/// The C macro does not import: tells SQLite to copy bound bytes before `bind` returns.
let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// The store's schema version, kept in `PRAGMA user_version`.
let storeSchemaVersion: Int64 = 1

/// A problem with the event store; the message names the database path and the problem.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One SQLite connection, used by one thread at a time (callers serialize access).
final class Connection {
    let path: String
    let db: OpaquePointer

    /// Opens `path`; `readOnly` connections never create the file or its schema.
    init(path: String, readOnly: Bool) throws(StoreError) {
        self.path = path
        guard !path.isEmpty else { throw StoreError("event store: no database path given") }
        var st = stat()
        if stat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { throw StoreError("\(path): is a directory, not an event store") }
        } else if readOnly {
            throw StoreError("\(path): cannot open the event store: \(String(cString: strerror(errno)))")
        }
        var handle: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let handle { sqlite3_close_v2(handle) }
            throw StoreError("\(path): cannot open the event store: \(message)")
        }
        db = handle
        sqlite3_busy_timeout(db, 5000)
        try checkSchema(create: !readOnly)
    }

    deinit { sqlite3_close_v2(db) }

    /// Checks (and for a writer creates) the schema: a newer version or a file that is not an event store
    /// is an error naming the path.
    private func checkSchema(create: Bool) throws(StoreError) {
        let version: Int64
        do { version = try scalar("PRAGMA user_version") } catch {
            throw StoreError("\(path): not an event store (\(sqlite3_errcode(db) == SQLITE_NOTADB ? "not an SQLite database" : String(cString: sqlite3_errmsg(db)))")
        }
        if version > storeSchemaVersion {
            throw StoreError("\(path): the event store has schema version \(version), newer than this bakeoff reads (\(storeSchemaVersion)); use a newer bakeoff")
        }
        if version == storeSchemaVersion { return }
        if !create { throw StoreError("\(path): not an event store (an SQLite database without the events table)") }
        try execute("PRAGMA journal_mode=WAL")
        // Another process may create the schema at the same time: decide inside one write transaction.
        try execute("BEGIN IMMEDIATE")
        do throws(StoreError) {
            if try scalar("PRAGMA user_version") == 0 {
                if try scalar("SELECT count(*) FROM sqlite_master") > 0 {
                    throw StoreError("\(path): an SQLite database that is not an event store (it has other tables); give a new path")
                }
                try execute("""
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
                    PRAGMA user_version = \(storeSchemaVersion);
                    """)
            }
            try execute("COMMIT")
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    func execute(_ sql: String) throws(StoreError) {
        var message: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &message) != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(message)
            throw StoreError("\(path): \(text)")
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
        StoreError("\(path): \(what): \(String(cString: sqlite3_errmsg(db)))")
    }
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

    /// Steps once: true when a row is ready, false when done.
    func step() throws(StoreError) -> Bool {
        switch sqlite3_step(stmt) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.failure("cannot read or write the events table")
        }
    }

    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }

    func string(_ column: Int32) -> String { String(decoding: bytes(column), as: UTF8.self) }

    /// A column's bytes, valid until the next step or reset.
    func bytes(_ column: Int32) -> UnsafeRawBufferPointer {
        guard let p = sqlite3_column_text(stmt, column) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: p, count: Int(sqlite3_column_bytes(stmt, column)))
    }
}
