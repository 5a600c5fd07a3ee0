#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The result of a Mann–Whitney U (Wilcoxon rank-sum) test of sample x against sample y.
public struct MannWhitneyResult: Sendable, Equatable {
    /// U1, the U statistic of x: the number of pairs (x_i, y_j) with x_i > y_j plus half the ties
    /// (scipy's `statistic`).
    public var u: Double
    /// The standardized statistic scipy uses for the p-value: (U - n1 n2 / 2 [- 0.5]) / sigma, with
    /// U = U1 (larger), U2 (smaller) or max(U1, U2) (two-sided). -inf/NaN when every value is equal.
    public var z: Double
    /// Normal-approximation p-value with tie correction, as scipy `method='asymptotic'`.
    public var pValue: Double
    /// The common-language effect size U1 / (n1 n2) = P(X > Y) + P(X = Y) / 2; 0.5 means no shift.
    public var probabilityOfSuperiority: Double
    public var n1: Double
    public var n2: Double

    public init(u: Double, z: Double, pValue: Double, probabilityOfSuperiority: Double, n1: Double, n2: Double) {
        self.u = u
        self.z = z
        self.pValue = pValue
        self.probabilityOfSuperiority = probabilityOfSuperiority
        self.n1 = n1
        self.n2 = n2
    }
}

/// The Mann–Whitney U test with the normal approximation, for ordinal scores such as CSAT 1–5.
///
/// Equals scipy.stats.mannwhitneyu(x, y, use_continuity=continuity, alternative=...,
/// method='asymptotic'): `.larger` is scipy's 'greater' (x tends to be larger than y), `.smaller`
/// is 'less'. All-equal data (sigma = 0) gives p = 1 with the continuity correction (z = -inf) and
/// p = NaN without it (z = 0/0), as scipy does. An empty sample gives NaN everywhere (scipy warns
/// and returns NaN). NaN values in the raw data are not allowed (scipy's default nan_policy
/// propagates them to a NaN result; here they make the result NaN too).
public enum MannWhitney {
    /// From raw values. x is the sample whose U is reported (the treatment, say).
    public static func test(_ x: [Double], _ y: [Double], alternative: Alternative, continuity: Bool = true) -> MannWhitneyResult {
        if x.contains(where: \.isNaN) || y.contains(where: \.isNaN) {
            return MannWhitneyResult(u: .nan, z: .nan, pValue: .nan, probabilityOfSuperiority: .nan,
                                     n1: Double(x.count), n2: Double(y.count))
        }
        // Reduce to counts per distinct value, so both entry points share one computation.
        let levels = Array(Set(x + y)).sorted()
        var index: [Double: Int] = [:]
        for (i, v) in levels.enumerated() { index[v] = i }
        var xCounts = [Int](repeating: 0, count: levels.count)
        var yCounts = [Int](repeating: 0, count: levels.count)
        for v in x { xCounts[index[v]!] += 1 }
        for v in y { yCounts[index[v]!] += 1 }
        return test(xCounts: xCounts, yCounts: yCounts, alternative: alternative, continuity: continuity)
    }

    /// From counts per ordered level (for CSAT 1..5, xCounts[k] is how many x rated k + 1).
    ///
    /// Gives exactly the same result as the raw-data version on the expanded data. Levels must be in
    /// increasing order; both arrays must have the same length; counts must be non-negative.
    public static func test(xCounts: [Int], yCounts: [Int], alternative: Alternative, continuity: Bool = true) -> MannWhitneyResult {
        precondition(xCounts.count == yCounts.count, "xCounts and yCounts must cover the same levels")
        precondition(!xCounts.contains { $0 < 0 } && !yCounts.contains { $0 < 0 }, "counts must be non-negative")
        let n1 = Double(xCounts.reduce(0, +))
        let n2 = Double(yCounts.reduce(0, +))
        if n1 == 0 || n2 == 0 {
            return MannWhitneyResult(u: .nan, z: .nan, pValue: .nan, probabilityOfSuperiority: .nan, n1: n1, n2: n2)
        }
        // Rank sum of x with average ranks, and the tie term sum(t^3 - t). Average ranks are
        // half-integers and the sums integers or half-integers, exact in Double below 2^52.
        var below = 0.0  // values ranked before this level
        var rankSum = 0.0
        var tieTerm = 0.0
        for k in xCounts.indices {
            let t = Double(xCounts[k] + yCounts[k])
            if t == 0 { continue }
            let averageRank = below + (t + 1) / 2
            rankSum += Double(xCounts[k]) * averageRank
            tieTerm += t * t * t - t
            below += t
        }
        let u1 = rankSum - n1 * (n1 + 1) / 2
        let u2 = n1 * n2 - u1
        let u: Double
        let factor: Double
        switch alternative {
        case .larger: (u, factor) = (u1, 1)
        case .smaller: (u, factor) = (u2, 1)
        case .twoSided: (u, factor) = (max(u1, u2), 2)
        }
        // scipy _get_mwu_z, term by term.
        let mu = n1 * n2 / 2
        let n = n1 + n2
        let sigma = (n1 * n2 / 12 * ((n + 1) - tieTerm / (n * (n - 1)))).squareRoot()
        var numerator = u - mu
        if continuity { numerator -= 0.5 }
        let z = numerator / sigma
        let twoTails = Normal.cdf(-z) * factor
        let p = twoTails > 1 ? 1 : (twoTails < 0 ? 0 : twoTails)  // NaN stays NaN, as np.clip
        return MannWhitneyResult(u: u1, z: z, pValue: p,
                                 probabilityOfSuperiority: u1 / (n1 * n2), n1: n1, n2: n2)
    }
}
