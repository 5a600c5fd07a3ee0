import BakeoffCore
import CLibPQ
#if canImport(Glibc)
import Glibc
#endif

/// Where a PostgreSQL store is: a `postgresql://` (or `postgres://`) URL whose password, if the server wants one,
/// comes from an environment variable, never from the URL (which sits in config files and process lists).
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public var url: String
    /// The variable holding the password (libpq's own `PGPASSWORD` applies when nil).
    public var passwordVariable: String?

    /// Whether `text` names a PostgreSQL store rather than an SQLite file.
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
    }

    /// Refuses a URL that holds a password (`user:secret@host`, or `password=` in its query).
    public init(url: String, passwordVariable: String? = nil) throws(StoreError) {
        guard Self.isURL(url) else {
            throw StoreError(.invalidOptions, path: url, "\(url): not a PostgreSQL URL (postgresql://USER@HOST:PORT/DATABASE)")
        }
        let afterScheme = url[url.range(of: "://")!.upperBound...]
        let authority = afterScheme.prefix { $0 != "/" && $0 != "?" }
        let inUserInfo = authority.lastIndex(of: "@").map { authority[..<$0].contains(":") } ?? false
        let inQuery = url.split(separator: "?", maxSplits: 1).dropFirst().first.map { query in
            query.split(separator: "&").contains { Self.isSecret(Self.decoded($0)) }
        } ?? false
        if inUserInfo || inQuery {
            throw StoreError(.invalidOptions, path: Self.redact(url),
                             "\(Self.redact(url)): the URL holds a password; leave it out of the URL and put it in the environment variable PGPASSWORD")
        }
        self.url = url
        self.passwordVariable = passwordVariable
    }

    public var description: String { Self.redact(url) }

    /// Whether a URL parameter holds a secret: the password, or the passphrase of the client's TLS key.
    static func isSecret(_ parameter: String) -> Bool {
        let lower = parameter.lowercased()
        return lower.hasPrefix("password=") || lower.hasPrefix("sslpassword=")
    }

    /// A URL parameter with its %-escapes decoded, as libpq reads it.
    static func decoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var i = text.utf8.startIndex
        let u = text.utf8
        while i < u.endIndex {
            if u[i] == 0x25, let a = u.index(i, offsetBy: 1, limitedBy: u.endIndex), a < u.endIndex,
               let b = u.index(a, offsetBy: 1, limitedBy: u.endIndex), b < u.endIndex,
               let byte = UInt8(String(decoding: [u[a], u[b]], as: UTF8.self), radix: 16) {
                bytes.append(byte)
                i = u.index(after: b)
            } else {
                bytes.append(u[i])
                i = u.index(after: i)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The URL with any password replaced by `***`, for messages.
    static func redact(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = String(rest[..<authorityEnd])
        if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
            authority.replaceSubrange(authority.index(after: colon)..<at, with: "***")
        }
        var tail = String(rest[authorityEnd...])
        if let q = tail.firstIndex(of: "?") {
            let params = tail[tail.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false).map { p in
                isSecret(decoded(p)) ? String(decoded(p).prefix { $0 != "=" }) + "=***" : String(p)
            }
            tail = String(tail[..<q]) + "?" + params.joined(separator: "&")
        }
        return String(url[..<scheme.upperBound]) + authority + tail
    }
}

/// One PostgreSQL connection through libpq, used by one thread at a time (not `Sendable`, as `Connection` for
/// SQLite). Statements take their parameters as text; results come back as text.
public final class PostgresConnection {
    public let location: PostgresLocation
    private let handle: OpaquePointer
    /// Seconds a statement's answer may take (nil: no limit): a server that stops answering (stopped, hung, cut
    /// off by the network without a reset) must not hold the gateway's writer or its look-ups for good.
    /// Changed between statements as a statement needs (non-blocking once set at the start).
    public var answerTimeout: Double?
    /// Set when an answer did not come in time: what the server does with the statement is unknown, so the
    /// connection is not used again.
    private var abandoned = false

    /// Connects (within `timeout` seconds). A failure says where and why, as libpq reports it. With
    /// `answerTimeout`, every statement fails after that many seconds without an answer and the connection is
    /// then broken (`isBroken`).
    public init(_ location: PostgresLocation, applicationName: String = "bakeoff", timeout: Int = 10,
                answerTimeout: Double? = nil) throws(StoreError) {
        self.location = location
        self.answerTimeout = answerTimeout
        // TCP keepalives first, so that the URL's own settings win: a server cut off without a reset is noticed in
        // about 25 s instead of the system's 2 hours (Unix sockets ignore them).
        var keywords = ["keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                        "dbname", "application_name", "connect_timeout", "client_encoding"]
        var values = ["1", "10", "5", "3", location.url, applicationName, String(timeout), "UTF8"]
        if let variable = location.passwordVariable {
            guard let password = getenv(variable).map({ String(cString: $0) }) else {
                throw StoreError(.cannotOpen, path: location.description,
                                 "\(location): the password variable \(variable) is not set")
            }
            keywords.append("password")
            values.append(password)
        }
        let connection: OpaquePointer? = Self.withCStrings(keywords) { k in
            Self.withCStrings(values) { v in PQconnectdbParams(k, v, 1) }
        }
        guard let connection else {
            throw StoreError(.cannotOpen, path: location.description, "\(location): cannot connect: out of memory")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let reason = Self.message(PQerrorMessage(connection))
            PQfinish(connection)
            throw StoreError(.cannotOpen, path: location.description, "\(location): cannot connect: \(reason)")
        }
        handle = connection
        // The server's notices ("relation already exists, skipping") are not the user's business.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        // With a time limit nothing may block in a send either (a server that stopped reading fills the socket).
        if answerTimeout != nil { PQsetnonblocking(handle, 1) }
    }

    deinit { PQfinish(handle) }

    /// Whether the connection to the server is lost (a server restarted or gone, or one that did not answer in
    /// time): make a new one.
    public var isBroken: Bool { abandoned || PQstatus(handle) != CONNECTION_OK }

    /// Runs statements without parameters (several, separated by semicolons, in one round trip).
    public func execute(_ sql: String) throws(StoreError) {
        PQclear(try run(sql, nil))
    }

    /// Runs one statement with text parameters (`$1`, `$2`, ...; nil is NULL) and gives its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws(StoreError) -> PostgresRows {
        if parameters.contains(where: { $0?.utf8.contains(0) == true }) {
            throw StoreError(.postgres(sqlState: ""), path: location.description,
                             "\(location): a value holds a NUL byte, which PostgreSQL's text cannot store")
        }
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        return PostgresRows(result)
    }

    /// Sends `sql` (one statement with `parameters`, or any number without) and gives its last result, each
    /// result checked, waiting at most `answerTimeout` for all of it; the caller clears the result. A COPY's
    /// start ends the wait (the caller sends the data).
    private func run(_ sql: String, _ parameters: [String?]?) throws(StoreError) -> OpaquePointer {
        guard !abandoned else { throw connectionError(sql) }
        let deadline = answerTimeout.map { MonotonicClock.now() &+ UInt64($0 * 1e9) }
        let sent: Int32
        if let parameters {
            let copies = parameters.map { $0.map { strdup($0)! } }
            defer { for c in copies { free(c) } }
            let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
            sent = pointers.withUnsafeBufferPointer { p in
                PQsendQueryParams(handle, sql, Int32(parameters.count), nil, p.baseAddress, nil, nil, 0)
            }
        } else {
            sent = PQsendQuery(handle, sql)
        }
        guard sent == 1 else { throw connectionError(sql) }
        var last: OpaquePointer?
        var failure: StoreError?
        do throws(StoreError) {
            try flushOutput(until: deadline, sql)
            while let result = try nextResult(until: deadline, sql) {
                if failure == nil {
                    do throws(StoreError) { try check(result, sql) } catch { failure = error }
                }
                PQclear(last)
                last = result
                if PQresultStatus(result) == PGRES_COPY_IN { break }
            }
        } catch {
            PQclear(last)
            throw error
        }
        if let failure {
            PQclear(last)
            throw failure
        }
        guard let last else { throw connectionError(sql) }
        return last
    }

    /// Waits until the socket is ready for `events`, or throws at `deadline` (and abandons the connection).
    private func waitForSocket(_ events: Int32, until deadline: UInt64?, _ sql: String) throws(StoreError) {
        var p = pollfd(fd: PQsocket(handle), events: Int16(events), revents: 0)
        guard p.fd >= 0 else { throw connectionError(sql) }
        while true {
            var milliseconds: Int32 = -1
            if let deadline {
                let now = MonotonicClock.now()
                guard now < deadline else {
                    abandoned = true
                    let statement = Self.firstLine(sql)
                    throw StoreError(.postgres(sqlState: ""), path: location.description,
                                     "\(location): no answer from the server within \(JSONWriter.number(answerTimeout ?? 0)) s (in: \(statement)); the connection is dropped")
                }
                milliseconds = Int32(clamping: (deadline - now) / 1_000_000 + 1)
            }
            let ready = poll(&p, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw connectionError(sql) }
        }
    }

    /// Sends what libpq holds for the server (all of it at once unless the connection is non-blocking).
    private func flushOutput(until deadline: UInt64?, _ sql: String) throws(StoreError) {
        while true {
            let left = PQflush(handle)
            if left == 0 { return }
            if left < 0 { throw connectionError(sql) }
            try waitForSocket(POLLOUT | POLLIN, until: deadline, sql)
            // Reading what the server sent meanwhile keeps it from blocking on a full socket of its own.
            if PQconsumeInput(handle) == 0 { throw connectionError(sql) }
        }
    }

    /// The next result of the statement in progress (nil when there are no more), waiting for it no later than
    /// `deadline`.
    private func nextResult(until deadline: UInt64?, _ sql: String) throws(StoreError) -> OpaquePointer? {
        while PQisBusy(handle) == 1 {
            try waitForSocket(POLLIN, until: deadline, sql)
            if PQconsumeInput(handle) == 0 { break }  // the connection failed: PQgetResult says how
        }
        return PQgetResult(handle)
    }

    private func connectionError(_ sql: String) -> StoreError {
        let statement = Self.firstLine(sql)
        return StoreError(.postgres(sqlState: ""), path: location.description, "\(location): \(Self.message(PQerrorMessage(handle))) (in: \(statement))")
    }

    /// Copies rows into `table` (`COPY ... FROM STDIN`, the fastest way in): each row has a text or nil (NULL)
    /// per column. Text may not hold a NUL byte (PostgreSQL's text cannot). Gives the rows copied.
    @discardableResult
    public func copy(into table: String, columns: [String], rows: [[String?]]) throws(StoreError) -> Int {
        let statement = "COPY \(table) (\(columns.joined(separator: ", "))) FROM STDIN"
        let deadline = answerTimeout.map { MonotonicClock.now() &+ UInt64($0 * 1e9) }
        let start = try run(statement, nil)
        let status = PQresultStatus(start)
        PQclear(start)
        if status != PGRES_COPY_IN {
            throw StoreError(.postgres(sqlState: ""), path: location.description, "\(location): COPY \(table) did not start")
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        var failure: String?
        var timedOut: StoreError?
        func flush() {
            guard !buffer.isEmpty, failure == nil, timedOut == nil else { return }
            while true {
                let sent = buffer.withUnsafeBufferPointer { b in
                    b.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32($0.count)) }
                }
                if sent == 1 { break }
                if sent < 0 {
                    failure = Self.message(PQerrorMessage(handle))
                    break
                }
                // Non-blocking and libpq's buffer full: wait for room.
                do throws(StoreError) { try flushOutput(until: deadline, statement) } catch {
                    timedOut = error
                    break
                }
            }
            buffer.removeAll(keepingCapacity: true)
        }
        rowLoop: for row in rows {
            precondition(row.count == columns.count, "a row of \(row.count) values for \(columns.count) columns")
            for (i, value) in row.enumerated() {
                if i > 0 { buffer.append(0x09) }
                guard let value else { buffer.append(contentsOf: [0x5C, 0x4E]); continue }  // \N
                for byte in value.utf8 {
                    switch byte {
                    case 0x00: failure = "a value holds a NUL byte, which PostgreSQL's text cannot store"; break rowLoop
                    case 0x5C: buffer.append(contentsOf: [0x5C, 0x5C])
                    case 0x0A: buffer.append(contentsOf: [0x5C, 0x6E])
                    case 0x0D: buffer.append(contentsOf: [0x5C, 0x72])
                    case 0x09: buffer.append(contentsOf: [0x5C, 0x74])
                    default: buffer.append(byte)
                    }
                }
            }
            buffer.append(0x0A)
            if buffer.count >= 1 << 20 { flush() }
            if failure != nil { break }
        }
        flush()
        if let timedOut { throw timedOut }
        while true {
            let ended = PQputCopyEnd(handle, failure)
            if ended == 1 { break }
            if ended < 0 {
                if failure == nil { failure = Self.message(PQerrorMessage(handle)) }
                break
            }
            try flushOutput(until: deadline, statement)
        }
        try flushOutput(until: deadline, statement)
        var copied = 0
        var firstError: StoreError?
        while let result = try nextResult(until: deadline, statement) {
            if PQresultStatus(result) == PGRES_COPY_IN {
                // The end of the copy did not reach the server: nothing more will come.
                PQclear(result)
                firstError = firstError ?? StoreError(.postgres(sqlState: ""), path: location.description,
                                                      "\(location): COPY \(table): the connection failed: \(Self.message(PQerrorMessage(handle)))")
                break
            }
            if PQresultStatus(result) == PGRES_COMMAND_OK {
                copied = Int(String(cString: PQcmdTuples(result))) ?? 0
            } else if firstError == nil {
                do throws(StoreError) { try check(result, "COPY \(table)") } catch { firstError = error }
            }
            PQclear(result)
        }
        if let firstError { throw firstError }
        if let failure {
            throw StoreError(.postgres(sqlState: ""), path: location.description, "\(location): COPY \(table): \(failure)")
        }
        return copied
    }

    /// Calls `body` with each row of a query, fetched through a cursor `batch` rows at a time (a table of
    /// millions of rows never sits in memory at once), all of them from one snapshot of the database.
    public func forEachRow(_ sql: String, _ parameters: [String?] = [], batch: Int = 10_000,
                           _ body: (PostgresRow) throws -> Void) throws {
        try execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            try forEachRowInTransaction(sql, parameters, batch: batch, body)
            try execute("COMMIT")
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// `forEachRow` inside a transaction the caller has begun (and ends): the rows come from its snapshot.
    public func forEachRowInTransaction(_ sql: String, _ parameters: [String?] = [], batch: Int = 10_000,
                                        _ body: (PostgresRow) throws -> Void) throws {
        try query("DECLARE bakeoff_rows NO SCROLL CURSOR FOR " + sql, parameters)
        while true {
            let result = try run("FETCH FORWARD \(batch) FROM bakeoff_rows", nil)
            defer { PQclear(result) }
            let n = Int(PQntuples(result))
            for r in 0..<n { try body(PostgresRow(result: result, row: Int32(r))) }
            if n < batch { break }
        }
        try execute("CLOSE bakeoff_rows")
    }

    /// Calls `body` with each row of a query's result, read in place (for a few rows; `forEachRow` for many).
    public func withRows(_ sql: String, _ parameters: [String?] = [], _ body: (PostgresRow) throws -> Void) throws {
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        for r in 0..<PQntuples(result) { try body(PostgresRow(result: result, row: r)) }
    }

    private func check(_ result: OpaquePointer?, _ sql: String) throws(StoreError) {
        guard let result else {
            throw StoreError(.postgres(sqlState: ""), path: location.description, "\(location): \(Self.message(PQerrorMessage(handle)))")
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_COPY_IN:
            return
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
            let text = Self.message(PQresultErrorMessage(result))
            let statement = Self.firstLine(sql)
            throw StoreError(.postgres(sqlState: state), path: location.description, "\(location): \(text) (SQLSTATE \(state), in: \(statement))")
        }
    }

    /// A statement's first line, at most 80 characters: where an error happened, for its message.
    private static func firstLine(_ sql: String) -> Substring {
        sql.split(separator: "\n").first.map { $0.count > 80 ? $0.prefix(80) + "…" : $0 } ?? ""
    }

    private static func message(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "unknown error" }
        return String(cString: text).split(separator: "\n").map { $0.trimmingPrefix("ERROR:").trimmingPrefix(" ") }
            .filter { !$0.isEmpty }.joined(separator: "; ")
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0)! }
        defer { for c in copies { free(c) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// The rows of a query, as text (nil for NULL).
public struct PostgresRows: Sendable {
    public let columns: [String]
    public let rows: [[String?]]

    init(_ result: OpaquePointer) {
        let n = Int(PQntuples(result)), m = Int(PQnfields(result))
        columns = (0..<m).map { String(cString: PQfname(result, Int32($0))) }
        rows = (0..<n).map { r in
            (0..<m).map { c in
                PQgetisnull(result, Int32(r), Int32(c)) == 1 ? nil : String(cString: PQgetvalue(result, Int32(r), Int32(c)))
            }
        }
    }

    public var count: Int { rows.count }

    /// The value at a row and a column as an integer (nil for NULL or not a number).
    public func int(_ row: Int, _ column: Int) -> Int64? { rows[row][column].flatMap { Int64($0) } }
}

/// One row of `PostgresConnection.forEachRow`, valid during the call: its values read in place.
public struct PostgresRow {
    let result: OpaquePointer
    let row: Int32

    public func isNull(_ column: Int) -> Bool { PQgetisnull(result, row, Int32(column)) == 1 }

    /// The value's bytes (its text), without a copy.
    public func bytes(_ column: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: PQgetvalue(result, row, Int32(column)), count: Int(PQgetlength(result, row, Int32(column))))
    }

    public func string(_ column: Int) -> String { String(decoding: bytes(column), as: UTF8.self) }

    /// The value as an integer (0 for NULL or not a number).
    public func int(_ column: Int) -> Int64 {
        var value: Int64 = 0, negative = false
        for (i, b) in bytes(column).enumerated() {
            if i == 0 && b == 0x2D { negative = true; continue }
            guard b >= 0x30 && b <= 0x39 else { return 0 }
            value = value &* 10 &+ Int64(b - 0x30)
        }
        return negative ? -value : value
    }
}
