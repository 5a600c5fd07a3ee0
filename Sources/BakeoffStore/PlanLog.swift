/// The plans an experiment ran under, kept in the event store's `plans` table (made by the "plans" migration):
/// the gateway records a plan's text when it starts with a plan that differs from the last one recorded, so
/// that the report can show what changed after the start. The store keeps the text as it is given; what it
/// means is the caller's business.
public enum PlanLog {
    /// One recorded plan.
    public struct Entry: Sendable, Equatable {
        /// When it was recorded, in microseconds since the epoch.
        public var timestamp: Int64
        /// The plan, as recorded.
        public var plan: String

        public init(timestamp: Int64, plan: String) {
            self.timestamp = timestamp
            self.plan = plan
        }
    }

    /// Records `plan` at `timestamp` (microseconds since the epoch) unless it equals the experiment's last
    /// recorded plan. Returns whether a row was added.
    @discardableResult
    public static func record(path: String, experiment: String, plan: String, timestamp: Int64) throws(StoreError) -> Bool {
        if PostgresLocation.isURL(path) {
            // Gateways starting together take turns (the lock), so one plan is recorded once however many start.
            // A server that stops answering fails the start instead of holding it.
            let db = try PostgresStoreReading.open(path, answerTimeout: 30)
            var added = false
            try db.inWriteTransaction { () throws(StoreError) in
                let last = try db.query("SELECT plan FROM plans WHERE experiment = $1 ORDER BY ts DESC, id DESC LIMIT 1", [experiment])
                if last.rows.first?[0] == plan { return }
                try db.query("INSERT INTO plans (ts, experiment, plan) VALUES ($1, $2, $3)", [String(timestamp), experiment, plan])
                added = true
            }
            return added
        }
        let connection = try Connection(path: path, readOnly: false)
        var added = false
        try connection.inWriteTransaction { () throws(StoreError) in
            let last = try connection.prepare("SELECT plan FROM plans WHERE experiment = ?1 ORDER BY ts DESC, id DESC LIMIT 1")
            last.bind(1, experiment)
            if try last.step(), last.string(0) == plan { return }
            let insert = try connection.prepare("INSERT INTO plans (ts, experiment, plan) VALUES (?1, ?2, ?3)")
            insert.bind(1, timestamp)
            insert.bind(2, experiment)
            insert.bind(3, plan)
            _ = try insert.step()
            added = true
        }
        return added
    }

    /// The experiment's recorded plans, oldest first (empty for a store without plans).
    public static func history(path: String, experiment: String) throws(StoreError) -> [Entry] {
        if PostgresLocation.isURL(path) {
            let rows = try PostgresStoreReading.open(path).query("SELECT ts, plan FROM plans WHERE experiment = $1 ORDER BY ts, id", [experiment])
            return rows.rows.map { Entry(timestamp: Int64($0[0] ?? "0") ?? 0, plan: $0[1] ?? "") }
        }
        let connection = try Connection(path: path, readOnly: true)
        // Readers take stores of every version; before version 3 the table exists only once a plan was recorded.
        guard try connection.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'plans'") > 0 else { return [] }
        let select = try connection.prepare("SELECT ts, plan FROM plans WHERE experiment = ?1 ORDER BY ts, id")
        select.bind(1, experiment)
        var out: [Entry] = []
        while try select.step() { out.append(Entry(timestamp: select.int(0), plan: select.string(1))) }
        return out
    }

    /// The experiments with a recorded plan (a gateway records its experiments' plans when it starts).
    public static func experiments(path: String) throws(StoreError) -> [String] {
        if PostgresLocation.isURL(path) {
            return try PostgresStoreReading.open(path).query("SELECT DISTINCT experiment FROM plans ORDER BY experiment").rows.compactMap { $0[0] }
        }
        let connection = try Connection(path: path, readOnly: true)
        guard try connection.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'plans'") > 0 else { return [] }
        let select = try connection.prepare("SELECT DISTINCT experiment FROM plans ORDER BY experiment")
        var out: [String] = []
        while try select.step() { out.append(select.string(0)) }
        return out
    }
}
