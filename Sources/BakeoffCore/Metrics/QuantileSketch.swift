#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Quantiles of a stream of non-negative values in bounded memory.
///
/// Exact (numpy's default linear interpolation) while it holds at most `exactLimit` values; beyond that it
/// moves to log-spaced buckets 0.01% wide, so a reported quantile is within 0.005% of the exact one and
/// memory stays fixed however long the log is.
public struct QuantileSketch: Sendable {
    public static let exactLimit = 1 << 20
    static let bucketWidth = 1e-4
    static let minimum = 1e-3
    static let logBase = log1p(bucketWidth)

    private var values: [Double] = []
    private var buckets: [UInt32] = []
    private var zeros = 0
    public private(set) var count = 0

    public init() {}

    public mutating func add(_ x: Double) {
        guard x.isFinite else { return }
        count += 1
        sorted = false
        if buckets.isEmpty {
            values.append(x)
            if values.count > Self.exactLimit { spill() }
        } else {
            insertBucket(x)
        }
    }

    public mutating func merge(_ other: QuantileSketch) {
        if other.buckets.isEmpty {
            for v in other.values { add(v) }
            return
        }
        if buckets.isEmpty { spill() }
        zeros += other.zeros
        count += other.count
        for i in 0..<other.buckets.count where other.buckets[i] > 0 {
            buckets[i] &+= other.buckets[i]
        }
    }

    /// Whether quantiles are exact (the sketch has not spilled into buckets).
    public var isExact: Bool { buckets.isEmpty }

    private static var bucketCount: Int { Int(log(1e9 / minimum) / logBase) + 2 }

    private mutating func spill() {
        buckets = Array(repeating: 0, count: Self.bucketCount)
        for v in values { insertBucket(v) }
        values = []
    }

    private mutating func insertBucket(_ x: Double) {
        if x < Self.minimum { zeros += 1; return }
        let i = min(Int(log(x / Self.minimum) / Self.logBase), buckets.count - 1)
        buckets[i] &+= 1
    }

    private static func representative(_ i: Int) -> Double {
        minimum * exp((Double(i) + 0.5) * logBase)
    }

    /// Sorts the exact values once, so later quantile calls need no copy.
    public mutating func prepare() {
        if buckets.isEmpty { values.sort() ; sorted = true }
    }
    private var sorted = false

    /// The q-quantile (numpy `quantile`, method "linear"), or nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        let h = Double(count - 1) * q
        let lo = Int(h.rounded(.down))
        let hi = min(lo + 1, count - 1)
        let frac = h - Double(lo)
        if buckets.isEmpty {
            if self.sorted { return values[lo] + (values[hi] - values[lo]) * frac }
            var copy = values
            copy.sort()
            return copy[lo] + (copy[hi] - copy[lo]) * frac
        }
        let a = orderStatistic(lo), b = orderStatistic(hi)
        return a + (b - a) * frac
    }

    /// The k-th smallest value (0-based), approximated by its bucket.
    private func orderStatistic(_ k: Int) -> Double {
        if k < zeros { return 0 }
        var seen = zeros
        for i in 0..<buckets.count {
            seen += Int(buckets[i])
            if seen > k { return Self.representative(i) }
        }
        return Self.representative(buckets.count - 1)
    }
}
