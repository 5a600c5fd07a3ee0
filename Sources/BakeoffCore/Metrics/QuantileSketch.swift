#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import BakeoffStatistics

/// Quantiles of a stream of non-negative values in bounded memory.
///
/// Exact (numpy's default linear interpolation) while it holds at most `exactLimit` values; beyond that it
/// moves to log-spaced buckets 0.01% wide, so a reported quantile is within 0.005% of the exact one and
/// memory stays fixed however long the log is.
public struct QuantileSketch: Sendable {
    public static let exactLimit = 1 << 20
    static let bucketWidth = 1e-4
    package static let minimum = 1e-3
    package static let logBase = log1p(bucketWidth)

    private var values: [Double] = []
    private var buckets: [UInt32] = []
    private var zeros = 0
    public private(set) var count = 0

    public init() {}

    /// Values sorted ascending, as adding them one by one and then `prepare()` gives, without sorting again
    /// (the daily cuts of the dashboard build one per variant and field).
    package init(sorted ascending: [Double]) {
        var builder = SortedBuilder(count: ascending.reduce(0) { $1.isFinite ? $0 + 1 : $0 })
        for x in ascending where x.isFinite { builder.add(x) }
        self = builder.sketch()
    }

    /// A sketch in buckets from counts per bucket computed elsewhere (a database), numbered as
    /// `ClusteredQuantileSketch`'s: 0 for values below `minimum`, i ≥ 1 for this sketch's bucket i − 1.
    package init(bucketCounts: [(index: Int, count: Int)]) {
        buckets = Array(repeating: 0, count: Self.bucketCount)
        for (i, n) in bucketCounts {
            count += n
            if i == 0 { zeros += n } else { buckets[min(i - 1, buckets.count - 1)] &+= UInt32(truncatingIfNeeded: n) }
        }
        sorted = true
    }

    /// The bucket of `x` numbered as in `init(bucketCounts:)` (what a database computing the counts must match).
    package static func bucketNumber(_ x: Double) -> Int { ClusteredQuantileSketch.Buckets.index(x) }

    /// A sketch of finite values given in ascending order, one at a time: `init(sorted:)` without holding the
    /// values when there are more than `exactLimit` (then the logarithm once per distinct value).
    struct SortedBuilder {
        private var built = QuantileSketch()
        private var last = Double.nan, index = 0

        /// `count`: how many values will come.
        init(count: Int) {
            if count > QuantileSketch.exactLimit {
                built.buckets = Array(repeating: 0, count: QuantileSketch.bucketCount)
            } else {
                built.values.reserveCapacity(count)
            }
        }

        @inline(__always)
        mutating func add(_ x: Double) {
            built.count += 1
            if built.buckets.isEmpty {
                built.values.append(x)
                return
            }
            if x < QuantileSketch.minimum { built.zeros += 1; return }
            if x != last {
                last = x
                index = min(Int(log(x / QuantileSketch.minimum) / QuantileSketch.logBase), built.buckets.count - 1)
            }
            built.buckets[index] &+= 1
        }

        func sketch() -> QuantileSketch {
            var s = built
            s.sorted = s.buckets.isEmpty
            return s
        }
    }

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

    package static var bucketCount: Int { Int(log(1e9 / minimum) / logBase) + 2 }

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

    static func representative(_ i: Int) -> Double {
        minimum * exp((Double(i) + 0.5) * logBase)
    }

    /// Sorts the exact values once, so later quantile calls need no copy.
    public mutating func prepare() {
        if buckets.isEmpty && !sorted {
            values = RadixSort.sorted(values, carrying: values).payload
            sorted = true
        }
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

/// One variant's values of a request field, each with what the clustered quantile test (Deng, Knoblich
/// and Yu 2018; `QuantileEstimate`) needs from its user, so that the test's sums can be computed for any
/// quantile level and merged over pieces of a log that hold disjoint users.
///
/// Why per value: the quantile test needs, per user i, sᵢ = values ≤ q and cᵢ = values, through Σsᵢ,
/// Σsᵢ², Σsᵢcᵢ (and Σcᵢ, Σcᵢ²). With a user's values ranked 0, 1, … ascending, the value of rank k adds
/// 1 to sᵢ, 2k + 1 to sᵢ² and cᵢ to sᵢcᵢ as the threshold q passes it; the values ≤ q are a prefix of the
/// user's sorted values, so the sums at q are the sums of these steps over all values ≤ q, whatever user
/// they belong to. So the sketch keeps (value, 2k + 1, cᵢ) per value and no user ids, and sketches of
/// disjoint users merge by combining their values.
///
/// Exact (16 bytes per value, sorted) while it holds at most `exactLimit` values; beyond, the values go
/// into `QuantileSketch`'s log-spaced buckets 0.01% wide, each with its count and step sums, and memory
/// stays at a few MB per variant however many values come. Then an order statistic is placed inside its
/// bucket by its rank there (within 0.01% of the exact value), and the steps of the values of q's bucket
/// count in proportion to the values up to q's rank. What suffers most is the estimate's variance, from
/// the width of the outer interval (upper − lower) when that is only a few buckets wide: ±2% or so at the
/// P99 of 10⁶ latencies.
public struct ClusteredQuantileSketch: Sendable {
    public static let exactLimit = 1 << 19

    /// A value with its steps of sᵢ² (2k + 1) and sᵢcᵢ (cᵢ).
    package struct Entry: Sendable {
        package var value: Double
        var squareStep: UInt32
        var userCount: UInt32

        package init(value: Double, squareStep: UInt32, userCount: UInt32) {
            self.value = value
            self.squareStep = squareStep
            self.userCount = userCount
        }
    }

    /// Ascending by value while exact.
    private var entries: [Entry] = []
    private var buckets: Buckets?
    /// Number of values.
    public private(set) var count = 0
    /// Σcᵢ² over the users with values.
    public private(set) var countSumSquares: Double = 0

    public init() {}

    /// From entries sorted by value, with Σcᵢ² of their users.
    package init(sorted: [Entry], countSumSquares: Double) {
        entries = sorted
        count = sorted.count
        self.countSumSquares = countSumSquares
        if count > Self.exactLimit { spill() }
    }

    /// From its parts (see `SortedBuilder`).
    private init(entries: [Entry], buckets: Buckets?, count: Int, countSumSquares: Double) {
        self.entries = entries
        self.buckets = buckets
        self.count = count
        self.countSumSquares = countSumSquares
    }

    /// A sketch of entries given in ascending order of value, one at a time: `init(sorted:countSumSquares:)`
    /// without holding the entries when there are more than `exactLimit`.
    package struct SortedBuilder {
        private let total: Int
        private var entries: [Entry] = []
        private var buckets: Buckets
        private var last = Double.nan, index = 0

        /// `count`: how many entries will come; `lowest` and `highest`: bounds of their values.
        package init(count: Int, lowest: Double, highest: Double) {
            total = count
            if count > ClusteredQuantileSketch.exactLimit {
                buckets = Buckets(lowest: lowest, highest: highest)
            } else {
                buckets = Buckets(lowest: 1, highest: 1)
                entries.reserveCapacity(count)
            }
        }

        @inline(__always)
        package mutating func add(_ e: Entry) {
            guard total > ClusteredQuantileSketch.exactLimit else {
                entries.append(e)
                return
            }
            if !(e.value == last) {
                last = e.value
                index = Buckets.index(e.value)
            }
            buckets.add(e, index: index)
        }

        package func sketch(countSumSquares: Double) -> ClusteredQuantileSketch {
            if total > ClusteredQuantileSketch.exactLimit {
                return ClusteredQuantileSketch(entries: [], buckets: buckets, count: total, countSumSquares: countSumSquares)
            }
            return ClusteredQuantileSketch(sorted: entries, countSumSquares: countSumSquares)
        }
    }

    /// A sketch in buckets from counts and step sums per bucket computed elsewhere (a database), numbered as
    /// `QuantileSketch.bucketNumber`, with Σcᵢ² of the users.
    package init(buckets rows: [(index: Int, count: Int, squareSteps: UInt64, userCounts: UInt64)], countSumSquares: Double) {
        var b = Buckets(lowest: 1, highest: 1)
        for r in rows where r.count > 0 { b.add(index: r.index, count: r.count, squareSteps: r.squareSteps, products: r.userCounts) }
        self.init(entries: [], buckets: b, count: rows.reduce(0) { $0 + $1.count }, countSumSquares: countSumSquares)
    }

    /// Summarizes one variant from per-user values (one array per user), the way the aggregator does:
    /// for tests and for callers that hold the values.
    public init<C: Collection>(users perUser: C) where C.Element == [Double] {
        var all: [Entry] = []
        var squares = 0.0
        for values in perUser {
            let finite = values.filter(\.isFinite).sorted()
            let c = UInt32(finite.count)
            squares += Double(c) * Double(c)
            for (k, v) in finite.enumerated() {
                all.append(Entry(value: v, squareStep: UInt32(2 * k + 1), userCount: c))
            }
        }
        all.sort { $0.value < $1.value }
        self.init(sorted: all, countSumSquares: squares)
    }

    /// Whether the values are held exactly (not yet spilled into buckets).
    public var isExact: Bool { buckets == nil }

    /// Adds the values of disjoint users.
    public mutating func merge(_ other: ClusteredQuantileSketch) {
        countSumSquares += other.countSumSquares
        if buckets == nil, other.buckets == nil, count + other.count <= Self.exactLimit {
            entries = Self.mergeSorted(entries, other.entries)
            count = entries.count
            return
        }
        if buckets == nil { spill() }
        count += other.count
        if let b = other.buckets {
            buckets!.add(b)
        } else {
            for e in other.entries { buckets!.add(e) }
        }
    }

    private static func mergeSorted(_ a: [Entry], _ b: [Entry]) -> [Entry] {
        if a.isEmpty { return b }
        if b.isEmpty { return a }
        var out: [Entry] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0, j = 0
        while i < a.count && j < b.count {
            if b[j].value < a[i].value { out.append(b[j]); j += 1 } else { out.append(a[i]); i += 1 }
        }
        out.append(contentsOf: a[i...])
        out.append(contentsOf: b[j...])
        return out
    }

    private mutating func spill() {
        var b = Buckets(lowest: entries.first?.value ?? 1, highest: entries.last?.value ?? 1)
        // Sorted: equal values share a bucket, so the logarithm once per distinct value.
        var last = Double.nan, index = 0
        for e in entries {
            if !(e.value == last) {
                last = e.value
                index = Buckets.index(e.value)
            }
            b.add(e, index: index)
        }
        buckets = b
        entries = []
    }

    /// The clustered quantile summary at `level` for a variant of `users` users (users without values
    /// included), as `QuantileEstimate(users:level:)` computes it from the values; nil without values.
    public func estimate(level: Double, users: Int) -> QuantileEstimate? {
        guard count > 0 else { return nil }
        let n = Double(count)
        let half = QuantileEstimate.z * (n * level * (1 - level)).squareRoot()
        /// The 0-based index of the order statistic at `rank` (rounded up, clamped to [1, n]).
        func index(_ rank: Double) -> Int { min(max(Int(rank.rounded(.up)), 1), count) - 1 }
        let iq = index(n * level), il = index(n * level - half), iu = index(n * level + half)
        var below = 0.0, squares = 0.0, products = 0.0
        let q: Double, lower: Double, upper: Double
        if let buckets {
            q = buckets.orderStatistic(iq)
            lower = buckets.orderStatistic(il)
            upper = buckets.orderStatistic(iu)
            (below, squares, products) = buckets.sums(through: iq)
        } else {
            q = entries[iq].value
            lower = entries[il].value
            upper = entries[iu].value
            var last = iq
            while last + 1 < count && entries[last + 1].value <= q { last += 1 }
            var s: UInt64 = 0, p: UInt64 = 0
            for e in entries[...last] {
                s += UInt64(e.squareStep)
                p += UInt64(e.userCount)
            }
            below = Double(last + 1)
            squares = Double(s)
            products = Double(p)
        }
        return QuantileEstimate(
            level: level, n: n, users: Double(users), quantile: q, lower: lower, upper: upper,
            belowSum: below, belowSumSquares: squares, countSum: n, countSumSquares: countSumSquares,
            belowCountSumProduct: products)
    }

    /// Counts and step sums per bucket over the range of buckets seen; bucket 0 holds values below
    /// `QuantileSketch.minimum` (represented by 0), bucket i ≥ 1 is `QuantileSketch`'s bucket i − 1.
    struct Buckets: Sendable {
        private var base: Int
        private var counts: [UInt32]
        private var squareSteps: [UInt64]
        private var products: [UInt64]

        static func index(_ x: Double) -> Int {
            if !(x >= QuantileSketch.minimum) { return 0 }
            return 1 + min(Int(log(x / QuantileSketch.minimum) / QuantileSketch.logBase), QuantileSketch.bucketCount - 1)
        }

        static func representative(_ i: Int) -> Double { i == 0 ? 0 : QuantileSketch.representative(i - 1) }

        init(lowest: Double, highest: Double) {
            base = Self.index(lowest)
            let size = Self.index(highest) - base + 1
            counts = Array(repeating: 0, count: size)
            squareSteps = Array(repeating: 0, count: size)
            products = Array(repeating: 0, count: size)
        }

        /// Widens the range to hold buckets `lo...hi`, with room to spare on the side that grew.
        private mutating func cover(_ lo: Int, _ hi: Int) {
            let end = base + counts.count
            guard lo < base || hi >= end else { return }
            let slack = max(counts.count / 4, 64)
            let newBase = lo < base ? max(lo - slack, 0) : base
            let newEnd = hi >= end ? min(hi + 1 + slack, QuantileSketch.bucketCount + 1) : end
            var c = Array(repeating: UInt32(0), count: newEnd - newBase)
            var s = Array(repeating: UInt64(0), count: newEnd - newBase)
            var p = Array(repeating: UInt64(0), count: newEnd - newBase)
            for i in 0..<counts.count {
                c[base - newBase + i] = counts[i]
                s[base - newBase + i] = squareSteps[i]
                p[base - newBase + i] = products[i]
            }
            base = newBase
            counts = c
            squareSteps = s
            products = p
        }

        mutating func add(_ e: Entry) { add(e, index: Self.index(e.value)) }

        /// Adds `e` to bucket `i` (`index(e.value)`).
        mutating func add(_ e: Entry, index i: Int) {
            cover(i, i)
            counts[i - base] &+= 1
            squareSteps[i - base] &+= UInt64(e.squareStep)
            products[i - base] &+= UInt64(e.userCount)
        }

        /// Adds `count` values of bucket `i` with their step sums.
        mutating func add(index i: Int, count: Int, squareSteps: UInt64, products: UInt64) {
            cover(i, i)
            counts[i - base] &+= UInt32(truncatingIfNeeded: count)
            self.squareSteps[i - base] &+= squareSteps
            self.products[i - base] &+= products
        }

        mutating func add(_ other: Buckets) {
            guard !other.counts.isEmpty else { return }
            cover(other.base, other.base + other.counts.count - 1)
            for i in 0..<other.counts.count where other.counts[i] > 0 {
                counts[other.base + i - base] &+= other.counts[i]
                squareSteps[other.base + i - base] &+= other.squareSteps[i]
                products[other.base + i - base] &+= other.products[i]
            }
        }

        /// The bucket holding the value of 0-based `index` in ascending order (an offset into the arrays),
        /// with the number of values in the buckets before it.
        private func locate(_ index: Int) -> (offset: Int, before: Int) {
            var seen = 0
            for i in 0..<counts.count {
                let next = seen + Int(counts[i])
                if next > index { return (i, seen) }
                seen = next
            }
            return (counts.count - 1, seen - Int(counts[counts.count - 1]))
        }

        /// The value of 0-based `index` in ascending order, placed inside its bucket as if the bucket's
        /// values were spread evenly over it (in log scale); 0 in the bucket below the minimum.
        func orderStatistic(_ index: Int) -> Double {
            let (i, before) = locate(index)
            let bucket = base + i
            if bucket == 0 { return 0 }
            let position = (Double(index - before) + 0.5) / Double(max(counts[i], 1))
            return QuantileSketch.minimum * exp((Double(bucket - 1) + position) * QuantileSketch.logBase)
        }

        /// Values ≤ the value of 0-based `index`, with Σ(2k + 1) and Σcᵢ over them: the buckets below in
        /// full and, of its own bucket, the values up to `index` with their share of the bucket's step sums
        /// (the whole bucket below the minimum, whose values all tie at 0).
        func sums(through index: Int) -> (Double, Double, Double) {
            let (offset, before) = locate(index)
            var s: UInt64 = 0, p: UInt64 = 0
            for i in 0..<offset {
                s += squareSteps[i]
                p += products[i]
            }
            let inBucket = base + offset == 0 ? Int(counts[offset]) : index - before + 1
            let share = Double(inBucket) / Double(max(counts[offset], 1))
            return (Double(before + inBucket), Double(s) + share * Double(squareSteps[offset]),
                    Double(p) + share * Double(products[offset]))
        }
    }
}
