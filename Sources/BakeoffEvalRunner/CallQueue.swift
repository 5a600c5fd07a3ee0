import Foundation
/// Which calls may start, as pure decisions: at most `limit` calls in flight per upstream, first come first
/// served within one; and when a failed call is tried again.
///
/// The runner feeds it what happens (a call submitted, a call finished) and starts what it returns.
package struct CallQueue {
    let limit: Int
    private var waiting: [String: [Int]] = [:]
    private var heads: [String: Int] = [:]
    private var inFlight: [String: Int] = [:]
    /// Upstreams in the order they first got work, so starts go round them fairly.
    private var order: [String] = []

    package init(limit: Int) { self.limit = max(1, limit) }

    /// Calls waiting to start.
    package private(set) var waitingCount = 0
    /// Calls started and not finished.
    package private(set) var inFlightCount = 0

    /// Queues call `id` for `upstream`; returns the calls that may start now.
    package mutating func submit(_ id: Int, upstream: String) -> [Int] {
        if waiting[upstream] == nil { order.append(upstream); waiting[upstream] = []; heads[upstream] = 0 }
        waiting[upstream]!.append(id)
        waitingCount += 1
        return startable(upstream)
    }

    /// Call `id` on `upstream` is over; returns the calls that may start now.
    package mutating func finished(upstream: String) -> [Int] {
        inFlight[upstream, default: 0] -= 1
        inFlightCount -= 1
        return startable(upstream)
    }

    /// Drops every waiting call (returned), e.g. when the run is stopped.
    package mutating func drain() -> [Int] {
        var out: [Int] = []
        for u in order {
            out += waiting[u]![heads[u]!...]
            waiting[u] = []
            heads[u] = 0
        }
        waitingCount = 0
        return out
    }

    private mutating func startable(_ upstream: String) -> [Int] {
        var out: [Int] = []
        while inFlight[upstream, default: 0] < limit, let head = heads[upstream], head < waiting[upstream]!.count {
            out.append(waiting[upstream]![head])
            heads[upstream] = head + 1
            inFlight[upstream, default: 0] += 1
            inFlightCount += 1
            waitingCount -= 1
        }
        // Compact now and then so a long run does not keep every started id.
        if let head = heads[upstream], head > 1024, head * 2 > waiting[upstream]!.count {
            waiting[upstream]!.removeFirst(head)
            heads[upstream] = 0
        }
        return out
    }

    /// Whether a call that ended this way is worth trying again: rate limited, the upstream's error, no
    /// connection, a timeout or a broken stream. A 4xx other than 429 would fail the same way again.
    package static func isRetryable(httpStatus: Int?, status: String) -> Bool {
        if status == "timeout" { return true }
        guard status == "upstream_error" else { return false }
        guard let httpStatus else { return true }
        return httpStatus == 429 || httpStatus >= 500
    }

    /// Seconds to wait before attempt `attempt + 1` (`attempt` >= 1 made so far): what `retry-after` asks
    /// (at most two minutes), else exponential backoff from half a second, capped at 30 s, with "full
    /// jitter" (`unit` uniform in [0, 1)) so that many calls refused together do not come back together.
    package static func retryDelay(attempt: Int, retryAfter: String?, unit: Double) -> Double {
        if let retryAfter, let seconds = Double(retryAfter.trimmingCharacters(in: .whitespaces)), seconds >= 0, seconds.isFinite {
            return min(seconds, 120)
        }
        let cap = min(30, 0.5 * Double(1 << min(attempt - 1, 10)))
        return cap * (0.5 + 0.5 * unit)
    }
}
