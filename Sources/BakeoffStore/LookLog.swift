/// When an experiment's results were looked at, kept in the event store's `looks` table (made by the "looks"
/// migration): a group-sequential test's boundary at each look depends on the looks before it, so the gateway and
/// the dashboard record each read of the live report, and a plan with recorded looks analyses with them.
public enum LookLog {
    /// Records a look at `experiment` at `timestamp` (microseconds since the epoch), from `source` ("dashboard",
    /// "report").
    public static func record(path: String, experiment: String, timestamp: Int64, source: String) throws(StoreError) {
        if PostgresLocation.isURL(path) {
            let db = try PostgresStoreReading.open(path, answerTimeout: 10)
            try db.query("INSERT INTO looks (ts, experiment, source) VALUES ($1, $2, $3)", [String(timestamp), experiment, source])
            return
        }
        let connection = try Connection(path: path, readOnly: false)
        try connection.inWriteTransaction { () throws(StoreError) in
            let insert = try connection.prepare("INSERT INTO looks (ts, experiment, source) VALUES (?1, ?2, ?3)")
            insert.bind(1, timestamp)
            insert.bind(2, experiment)
            insert.bind(3, source)
            _ = try insert.step()
        }
    }

    /// The times `experiment` was looked at, oldest first (empty for a store from before looks were recorded).
    public static func times(path: String, experiment: String) throws(StoreError) -> [Int64] {
        if PostgresLocation.isURL(path) {
            let db = try PostgresStoreReading.open(path)
            guard try db.query("SELECT to_regclass('looks') IS NOT NULL").rows.first?[0] == "t" else { return [] }
            return try db.query("SELECT ts FROM looks WHERE experiment = $1 ORDER BY ts", [experiment]).rows.compactMap { $0[0].flatMap { Int64($0) } }
        }
        let connection = try Connection(path: path, readOnly: true)
        guard try connection.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'looks'") > 0 else { return [] }
        let select = try connection.prepare("SELECT ts FROM looks WHERE experiment = ?1 ORDER BY ts")
        select.bind(1, experiment)
        var out: [Int64] = []
        while try select.step() { out.append(select.int(0)) }
        return out
    }
}
