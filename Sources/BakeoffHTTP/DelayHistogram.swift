import Synchronization

/// A histogram of short delays (seconds) with lock-free buckets, for delays measured on the server's threads
/// at a high rate (one per streamed chunk): how long a chunk waited between its arrival and its hand-off to
/// the client's socket.
public final class DelayHistogram: Sendable {
    /// Upper bounds of the buckets, in seconds.
    public static let bounds: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]
    private static let boundsNs: [UInt64] = bounds.map { UInt64($0 * 1e9) }
    private final class Counter: Sendable { let value = Atomic<Int>(0) }
    private let buckets: [Counter]
    private let sumNs = Atomic<Int>(0)

    public init() {
        buckets = (0...Self.bounds.count).map { _ in Counter() }
    }

    /// Counts one delay.
    public func observe(nanoseconds: UInt64) {
        var i = 0
        while i < Self.boundsNs.count && nanoseconds > Self.boundsNs[i] { i += 1 }
        buckets[i].value.add(1, ordering: .relaxed)
        sumNs.add(Int(truncatingIfNeeded: min(nanoseconds, UInt64(Int.max))), ordering: .relaxed)
    }

    /// The counts per bucket (the last one above every bound), the sum in seconds and the count.
    public var snapshot: (counts: [Int], sumSeconds: Double, count: Int) {
        let counts = buckets.map { $0.value.load(ordering: .relaxed) }
        return (counts, Double(sumNs.load(ordering: .relaxed)) / 1e9, counts.reduce(0, +))
    }

    /// The Prometheus text of the histogram under `name`.
    public func prometheus(name: String, help: String) -> String {
        let (counts, sum, count) = snapshot
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative = 0
        for (i, bound) in Self.bounds.enumerated() {
            cumulative += counts[i]
            out += "\(name)_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        out += "\(name)_bucket{le=\"+Inf\"} \(count)\n\(name)_sum \(sum)\n\(name)_count \(count)\n"
        return out
    }
}
