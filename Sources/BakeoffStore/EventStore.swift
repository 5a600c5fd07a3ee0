import CSQLite
import BakeoffCore

/// The SQLite library version the store is linked against.
public var sqliteVersion: String { String(cString: sqlite3_libversion()) }
