import BakeoffStore
import BakeoffTestSupport
import Foundation
import Testing

/// `PostgresConnection` against a real PostgreSQL server started by the suite (`ThrowawayPostgres`): statements
/// with parameters, COPY with every character a log line may hold, errors callers can match, and URLs that would
/// leak a password refused before anything connects.
@Suite("PostgreSQL connection", .serialized)
final class PostgresConnectionTests {
    let server: ThrowawayPostgres

    init() throws { server = try ThrowawayPostgres() }
    deinit { server.stop() }

    func connect() throws -> PostgresConnection {
        try PostgresConnection(PostgresLocation(url: server.url))
    }

    @Test func statementsTakeParametersAndGiveRows() throws {
        let db = try connect()
        try db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT); CREATE INDEX t_name ON t(name)")
        try db.query("INSERT INTO t VALUES ($1, $2), ($3, $4)", ["1", "ünïcode 🎉 'quoted' \\ back", "2", nil])
        let rows = try db.query("SELECT id, name FROM t ORDER BY id")
        #expect(rows.columns == ["id", "name"])
        #expect(rows.count == 2 && rows.int(0, 0) == 1 && rows.rows[0][1] == "ünïcode 🎉 'quoted' \\ back")
        #expect(rows.rows[1][1] == nil)
        // A parameter is never read as SQL.
        try db.query("INSERT INTO t VALUES (3, $1)", ["x'); DROP TABLE t; --"])
        #expect(try db.query("SELECT count(*) FROM t").int(0, 0) == 3)
        // A NUL byte would be cut off silently by C strings: refused instead.
        #expect(throws: StoreError.self) { try db.query("INSERT INTO t VALUES (4, $1)", ["a\u{0}b"]) }
    }

    @Test func copyCarriesTabsNewlinesAndBackslashes() throws {
        let db = try connect()
        try db.execute("CREATE TABLE lines (id BIGINT, line TEXT)")
        let tricky = "tab\there\nnewline\r\\N not null \\ backslash {\"json\": \"a\\\"b\"}"
        var rows: [[String?]] = (0..<20_000).map { i in [String(i), "{\"event\":\"request\",\"n\":\(i)}"] }
        rows.append(["20000", tricky])
        rows.append(["20001", nil])
        #expect(try db.copy(into: "lines", columns: ["id", "line"], rows: rows) == 20_002)
        let back = try db.query("SELECT line FROM lines WHERE id = $1", ["20000"])
        #expect(back.rows[0][0] == tricky)
        #expect(try db.query("SELECT line IS NULL FROM lines WHERE id = 20001").rows[0][0] == "t")
        #expect(try db.query("SELECT count(*) FROM lines").int(0, 0) == 20_002)
    }

    @Test func aCopyThatFailsCopiesNothingAndSaysWhy() throws {
        let db = try connect()
        try db.execute("CREATE TABLE strict (id BIGINT NOT NULL)")
        #expect {
            try db.copy(into: "strict", columns: ["id"], rows: [["1"], ["not a number"]])
        } throws: { error in
            guard let e = error as? StoreError, case .postgres(let state) = e.kind else { return false }
            return state == "22P02" && e.message.contains("not a number")
        }
        #expect {
            try db.copy(into: "strict", columns: ["id"], rows: [["1"], ["2\u{0}"]])
        } throws: { error in (error as? StoreError)?.message.contains("NUL byte") == true }
        #expect(try db.query("SELECT count(*) FROM strict").int(0, 0) == 0)
        // The connection is usable after both.
        try db.query("INSERT INTO strict VALUES (7)")
        #expect(try db.query("SELECT id FROM strict").int(0, 0) == 7)
    }

    @Test func errorsCarryTheirSQLState() throws {
        let db = try connect()
        try db.execute("CREATE TABLE u (k TEXT PRIMARY KEY)")
        try db.query("INSERT INTO u VALUES ($1)", ["a"])
        #expect {
            try db.query("INSERT INTO u VALUES ($1)", ["a"])
        } throws: { error in
            guard let e = error as? StoreError, case .postgres(let state) = e.kind else { return false }
            return state == "23505" && e.message.contains("duplicate key") && e.path == server.url
        }
        #expect {
            try db.execute("SELEC 1")
        } throws: { error in
            guard let e = error as? StoreError, case .postgres(let state) = e.kind else { return false }
            return state == "42601" && e.message.contains("SELEC 1")
        }
    }

    @Test(arguments: ["postgresql://bakeoff:s3cret@db.example:5432/bakeoff", "postgres://db.example/bakeoff?sslmode=require&password=s3cret",
                      "postgres://db.example/bakeoff?pass%77ord=s3cret", "postgresql://db.example/bakeoff?sslmode=verify-full&sslpassword=s3cret"])
    func aURLWithAPasswordIsRefused(url: String) {
        #expect {
            _ = try PostgresLocation(url: url)
        } throws: { error in
            guard let e = error as? StoreError else { return false }
            return e.kind == .invalidOptions && e.message.contains("environment variable") && !e.message.contains("s3cret") && !e.path.contains("s3cret")
        }
    }

    @Test func aServerThatIsNotThereIsNamedInTheError() throws {
        let missing = try PostgresLocation(url: "postgresql://postgres@/postgres?host=/tmp/no-such-postgres-dir")
        #expect {
            _ = try PostgresConnection(missing, timeout: 2)
        } throws: { error in
            guard let e = error as? StoreError else { return false }
            return e.kind == .cannotOpen && e.message.contains("cannot connect") && e.message.contains("/tmp/no-such-postgres-dir")
        }
        let unset = try PostgresLocation(url: server.url, passwordVariable: "BAKEOFF_TEST_NO_SUCH_VARIABLE")
        #expect {
            _ = try PostgresConnection(unset)
        } throws: { error in (error as? StoreError)?.message.contains("BAKEOFF_TEST_NO_SUCH_VARIABLE is not set") == true }
    }

    @Test func aRestartedServerIsReachedAgain() throws {
        let db = try connect()
        try db.execute("CREATE TABLE kept (n INT); INSERT INTO kept VALUES (42)")
        server.stop(removing: false)
        #expect(throws: StoreError.self) { try db.query("SELECT 1") }
        try server.start()
        let again = try connect()
        #expect(try again.query("SELECT n FROM kept").int(0, 0) == 42)
    }
}
