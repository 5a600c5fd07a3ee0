import Synchronization

/// Lines on standard error, at most one per topic every `interval` seconds; the lines held back are counted
/// and their number told with the next one. Why: a failing upstream fails every request, and one line per
/// request would bury everything else (and cost a write each).
package final class RateLimitedLog: Sendable {
    struct Topic {
        var lastWritten: UInt64
        var held: Int
    }

    let interval: Double
    private let write: @Sendable (String) -> Void
    private let topics = Mutex<[String: Topic]>([:])

    package init(interval: Double = 10, write: @escaping @Sendable (String) -> Void) {
        self.interval = interval
        self.write = write
    }

    /// Writes `line` unless a line of `topic` was written less than `interval` ago (then it is counted).
    package func note(_ topic: String, _ line: @autoclosure () -> String, now: UInt64 = MonotonicClock.now()) {
        let held = topics.withLock { t -> Int? in
            if let last = t[topic], Double(now &- last.lastWritten) / 1e9 < interval {
                t[topic]!.held += 1
                return nil
            }
            if t.count >= 10_000 { t.removeAll() }  // bounded: topics come from the config, but stay safe
            let held = t[topic]?.held ?? 0
            t[topic] = Topic(lastWritten: now, held: 0)
            return held
        }
        guard let held else { return }
        write(line() + (held > 0 ? " (\(held) more like it in the last \(Int(interval)) s)" : ""))
    }
}
