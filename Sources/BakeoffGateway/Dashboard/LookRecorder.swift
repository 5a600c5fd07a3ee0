import BakeoffCore
import BakeoffStore
import Foundation
import Synchronization

/// Records the reads of an experiment's live report and dashboard page as looks in the event store (`LookLog`), at
/// most one per experiment every `interval`: a page that refreshes itself every 30 seconds is one reader looking,
/// and the group-sequential analysis merges looks closer than half a percent of its horizon anyway.
public final class LookRecorder: Sendable {
    let path: String
    let interval: Int64
    private let last = Mutex<[String: Int64]>([:])
    private let log: RateLimitedLog

    /// - Parameter interval: microseconds between two recorded looks at one experiment (default ten minutes).
    public init(path: String, interval: Int64 = 600_000_000, write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.path = path
        self.interval = interval
        log = RateLimitedLog(interval: 60, write: write)
    }

    /// Records a look at `experiment` at `now` unless one was recorded less than `interval` before. A store that
    /// cannot take it (read-only, full, older than the looks table) is said on standard error; the read goes on.
    public func record(_ experiment: String, now: Int64, source: String) {
        let due = last.withLock { seen -> Bool in
            if let t = seen[experiment], now - t < interval, now >= t { return false }
            if seen.count >= 10_000 { seen.removeAll() }
            seen[experiment] = now
            return true
        }
        guard due else { return }
        do {
            try LookLog.record(path: path, experiment: experiment, timestamp: now, source: source)
        } catch {
            log.note("look", "bakeoff: could not record a look at \(experiment)'s results in \(path): \(error) (a group-sequential plan with recorded looks then misses it)")
        }
    }
}
