import BakeoffCore
import CSQLite

/// The plans an experiment ran under, kept in the event store's `plans` table: the gateway records a
/// snapshot when it starts with a plan that differs from the last one recorded, so that the report can
/// show what changed after the start.
public enum PlanLog {
    static let createTable = """
        CREATE TABLE IF NOT EXISTS plans (
            id INTEGER PRIMARY KEY,
            ts INTEGER NOT NULL,
            experiment TEXT NOT NULL,
            plan TEXT NOT NULL)
        """

    /// Records `snapshot` at `timestamp` (microseconds since the epoch) unless it equals the experiment's
    /// last recorded plan. Returns whether a row was added.
    @discardableResult
    public static func record(path: String, experiment: String, snapshot: PlanSnapshot, timestamp: Int64) throws(StoreError) -> Bool {
        let connection = try Connection(path: path, readOnly: false)
        try connection.execute(createTable)
        try connection.execute("BEGIN IMMEDIATE")
        do throws(StoreError) {
            let last = try connection.prepare("SELECT plan FROM plans WHERE experiment = ?1 ORDER BY ts DESC, id DESC LIMIT 1")
            last.bind(1, experiment)
            let text = snapshot.text
            if try last.step(), last.string(0) == text {
                try connection.execute("COMMIT")
                return false
            }
            let insert = try connection.prepare("INSERT INTO plans (ts, experiment, plan) VALUES (?1, ?2, ?3)")
            insert.bind(1, timestamp)
            insert.bind(2, experiment)
            insert.bind(3, text)
            _ = try insert.step()
            try connection.execute("COMMIT")
            return true
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    /// The plan changes made after the experiment's first request (or `start` when it has none), for the report.
    public static func changesAfterStart(path: String, experiment: String, data: ExperimentData, plan: AnalysisPlan) throws(StoreError) -> [PlanChange] {
        PlanSnapshot.changesAfterStart(try history(path: path, experiment: experiment), start: data.firstTimestamp ?? plan.start)
    }

    /// The experiment's recorded plans, oldest first (empty for stores without plans).
    public static func history(path: String, experiment: String) throws(StoreError) -> [(timestamp: Int64, snapshot: PlanSnapshot)] {
        let connection = try Connection(path: path, readOnly: true)
        guard try connection.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'plans'") > 0 else { return [] }
        let select = try connection.prepare("SELECT ts, plan FROM plans WHERE experiment = ?1 ORDER BY ts, id")
        select.bind(1, experiment)
        var out: [(timestamp: Int64, snapshot: PlanSnapshot)] = []
        while try select.step() { out.append((select.int(0), PlanSnapshot(text: select.string(1)))) }
        return out
    }
}
