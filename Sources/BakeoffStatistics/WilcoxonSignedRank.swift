#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The result of a Wilcoxon signed-rank test of per-request differences.
public struct WilcoxonSignedRankResult: Sendable, Equatable {
    /// scipy's `statistic`: min(r+, r-) for the two-sided test, r+ for one-sided ones.
    public var statistic: Double
    /// r+, the sum of the ranks of |d| over positive differences (with `.zsplit`, plus half the zeros' ranks).
    public var positiveRankSum: Double
    /// r-, the same over negative differences.
    public var negativeRankSum: Double
    /// The p-value for the alternative (1 when no difference is non-zero; see `WilcoxonSignedRank`).
    public var pValue: Double
    /// The standardized statistic of the normal approximation (after the continuity correction), nil for the exact
    /// and permutation methods. As scipy's `zstatistic`: -|z| for the two-sided test.
    public var z: Double?
    /// The method that produced the p-value: `.exact`, `.permutation` or `.approx` (what `.auto` chose).
    public var method: WilcoxonSignedRank.Method
    /// How many differences were ranked: the non-zero ones with `.wilcox`, all of them otherwise.
    public var ranked: Int
    /// How many differences were exactly 0.
    public var zeros: Int
    /// The Hodges-Lehmann estimate of the shift (`WilcoxonSignedRank.hodgesLehmann`, zeros included).
    public var hodgesLehmann: Double

    public init(
        statistic: Double, positiveRankSum: Double, negativeRankSum: Double, pValue: Double, z: Double?,
        method: WilcoxonSignedRank.Method, ranked: Int, zeros: Int, hodgesLehmann: Double
    ) {
        self.statistic = statistic
        self.positiveRankSum = positiveRankSum
        self.negativeRankSum = negativeRankSum
        self.pValue = pValue
        self.z = z
        self.method = method
        self.ranked = ranked
        self.zeros = zeros
        self.hodgesLehmann = hodgesLehmann
    }
}

/// The Wilcoxon signed-rank test of paired differences (variant minus control), with scipy 1.17.1's semantics.
///
/// Why: judge scores and other per-request differences are ordinal and heavy-tailed, where the t test's mean says
/// little; the signed-rank test asks whether the variant tends to score higher on the same request.
///
/// == scipy `wilcoxon(d, zero_method, correction, alternative, method)`, `.larger` being 'greater' and `.smaller`
/// 'less'. `.auto` chooses as scipy does: the normal approximation when there are more than 50 differences (zeros
/// counted), otherwise the exact distribution when there are neither ties nor zeros, otherwise the exact
/// permutation distribution (scipy's `PermutationMethod`, exhaustive at that size) for up to 13 differences and the
/// normal approximation beyond. `.exact` with ties or zeros is scipy's conservative use of the tie-free
/// distribution (r+ rounded up for the lower tail, down for the upper); `.permutation` is exact given the ties and
/// zeros, == `PermutationMethod(n_resamples=inf)`, and costs O(n^3) (use it for tens of differences, not
/// thousands; `.exact` costs the same).
///
/// Where scipy gives NaN this does not: with no non-zero difference (or none at all) the p-value is 1 and z is 0
/// (scipy: NaN for the normal approximation with `.wilcox` and `.pratt`). NaN among the differences makes the
/// statistic, p-value and estimate NaN.
public enum WilcoxonSignedRank {
    /// How exact zero differences are treated (scipy's `zero_method`).
    public enum ZeroMethod: String, Sendable, CaseIterable {
        /// Drop them (Wilcoxon's original, scipy's default).
        case wilcox
        /// Rank them with the others but count them in neither sum (Pratt 1959; the normal approximation is
        /// adjusted as Cureton 1967).
        case pratt
        /// Rank them and split their ranks evenly between r+ and r-.
        case zsplit
    }

    /// How the p-value is computed.
    public enum Method: String, Sendable, CaseIterable {
        /// As scipy's 'auto' (see the type's documentation).
        case auto
        /// The exact null distribution of r+ without ties.
        case exact
        /// The exact distribution of r+ over all 2^n sign flips of the observed differences (ties and zeros kept).
        case permutation
        /// The normal approximation with the tie correction (scipy 'asymptotic').
        case approx
    }

    /// The test of the differences d_i (variant minus control). scipy's default has no continuity correction.
    public static func test(
        differences d: [Double], zeroMethod: ZeroMethod = .wilcox, correction: Bool = false,
        alternative: Alternative = .twoSided, method: Method = .auto
    ) -> WilcoxonSignedRankResult {
        let n = d.count
        let zeros = d.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
        if d.contains(where: \.isNaN) {
            return WilcoxonSignedRankResult(
                statistic: .nan, positiveRankSum: .nan, negativeRankSum: .nan, pValue: .nan, z: nil, method: method,
                ranked: n, zeros: zeros, hodgesLehmann: .nan)
        }
        let ranking = rank(d, zeroMethod: zeroMethod)
        let used: Method
        switch method {
        case .auto:
            if n > 50 {
                used = .approx
            } else if !ranking.hasTies && zeros == 0 {
                used = .exact
            } else if n <= 13 {
                used = .permutation
            } else {
                used = .approx
            }
        default:
            used = method
        }
        let rPlus = ranking.positive, rMinus = ranking.negative
        let statistic = alternative == .twoSided ? min(rPlus, rMinus) : rPlus
        let estimate = hodgesLehmann(d)
        if zeros == n {
            return WilcoxonSignedRankResult(
                statistic: statistic, positiveRankSum: rPlus, negativeRankSum: rMinus, pValue: 1,
                z: used == .approx ? 0 : nil, method: used, ranked: ranking.count, zeros: zeros, hodgesLehmann: estimate)
        }
        var z: Double? = nil
        let p: Double
        switch used {
        case .approx, .auto:
            let (value, zValue) = normalApproximation(
                ranking, zeros: zeros, zeroMethod: zeroMethod, correction: correction, alternative: alternative)
            p = value
            z = zValue
        case .exact:
            p = exactPValue(rPlus: rPlus, count: ranking.count, alternative: alternative)
        case .permutation:
            p = permutationPValue(ranking, alternative: alternative)
        }
        return WilcoxonSignedRankResult(
            statistic: statistic, positiveRankSum: rPlus, negativeRankSum: rMinus, pValue: p, z: z, method: used,
            ranked: ranking.count, zeros: zeros, hodgesLehmann: estimate)
    }

    /// The test of variant_i - control_i over paired values; the arrays must have the same length.
    /// == scipy `wilcoxon(variant, control, ...)`.
    public static func test(
        variant: [Double], control: [Double], zeroMethod: ZeroMethod = .wilcox, correction: Bool = false,
        alternative: Alternative = .twoSided, method: Method = .auto
    ) -> WilcoxonSignedRankResult {
        precondition(variant.count == control.count, "paired arrays must have the same length")
        return test(differences: zip(variant, control).map { $0 - $1 }, zeroMethod: zeroMethod,
                    correction: correction, alternative: alternative, method: method)
    }

    /// The Hodges-Lehmann estimate of the shift: the median of the n (n + 1) / 2 Walsh averages (d_i + d_j) / 2,
    /// i <= j, over all differences (zeros included: they are requests on which the variants tied).
    ///
    /// Why: the location estimate that goes with the signed-rank test, robust where the mean is not. Found by
    /// selection in O(n log^2 n) time and O(n) memory, without listing the averages. 0 by convention for no
    /// differences; NaN if any difference is NaN.
    public static func hodgesLehmann(_ d: [Double]) -> Double {
        if d.isEmpty { return 0 }
        if d.contains(where: \.isNaN) { return .nan }
        let x = d.sorted()
        let n = x.count
        let total = n * (n + 1) / 2
        if total % 2 == 1 {
            return 0.5 * walshSum(x, rank: (total + 1) / 2)
        }
        // As numpy's median: the mean of the two middle averages.
        return (0.5 * walshSum(x, rank: total / 2) + 0.5 * walshSum(x, rank: total / 2 + 1)) / 2
    }

    // MARK: Internals

    /// Ranks of |d| (average ranks for ties) and what the statistics need from them.
    struct Ranking {
        var positive = 0.0
        var negative = 0.0
        /// The number of ranked differences (scipy's count).
        var count = 0
        var hasTies = false
        /// sum(t^3 - t) over tie groups (Pratt: without the zeros' group).
        var tieTerm = 0.0
        /// Twice the ranks of the non-zero differences, with their signs (for the permutation distribution).
        var doubledRanks: [Int] = []
        var doubledPositive = 0
    }

    static func rank(_ d: [Double], zeroMethod: ZeroMethod) -> Ranking {
        let values = zeroMethod == .wilcox ? d.filter { $0 != 0 } : d
        let order = values.indices.sorted { abs(values[$0]) < abs(values[$1]) }
        var r = Ranking()
        r.count = values.count
        var zeroRanks = 0.0
        var start = 0
        while start < order.count {
            let a = abs(values[order[start]])
            var end = start + 1
            while end < order.count && abs(values[order[end]]) == a { end += 1 }
            let t = end - start
            // Ranks start..<end (1-based start + 1 ... end) share their average; twice it is an integer.
            let doubled = start + 1 + end
            let average = Double(doubled) / 2
            if t > 1 {
                r.hasTies = true
                if !(a == 0 && zeroMethod == .pratt) {
                    let dt = Double(t)
                    r.tieTerm += dt * dt * dt - dt
                }
            }
            for k in start..<end {
                let v = values[order[k]]
                if v > 0 {
                    r.positive += average
                    r.doubledRanks.append(doubled)
                    r.doubledPositive += doubled
                } else if v < 0 {
                    r.negative += average
                    r.doubledRanks.append(doubled)
                } else {
                    zeroRanks += average
                }
            }
            start = end
        }
        if zeroMethod == .zsplit {
            r.positive += zeroRanks / 2
            r.negative += zeroRanks / 2
        }
        return r
    }

    /// scipy's normal approximation, operation for operation: (p, reported z).
    static func normalApproximation(
        _ r: Ranking, zeros: Int, zeroMethod: ZeroMethod, correction: Bool, alternative: Alternative
    ) -> (Double, Double) {
        let count = Double(r.count)
        var mean = count * (count + 1) * 0.25
        var se = count * (count + 1) * (2 * count + 1)
        if zeroMethod == .pratt {
            let nz = Double(zeros)
            mean -= nz * (nz + 1) * 0.25
            se -= nz * (nz + 1) * (2 * nz + 1)
        }
        se = ((se - r.tieTerm / 2) / 24).squareRoot()
        var z = (r.positive - mean) / se
        if correction {
            let sign: Double
            switch alternative {
            case .larger: sign = 1
            case .smaller: sign = -1
            case .twoSided: sign = z > 0 ? 1 : (z < 0 ? -1 : 0)
            }
            z -= sign * 0.5 / se
        }
        switch alternative {
        case .larger: return (Normal.sf(z), z)
        case .smaller: return (Normal.cdf(z), z)
        case .twoSided: return (2 * Normal.sf(abs(z)), -abs(z))
        }
    }

    /// P(R+ = k) for k = 0 ... n (n + 1) / 2 without ties, by scipy's recursion (each rank in or out, halving).
    static func nullDistribution(_ n: Int) -> [Double] {
        var c = [1.0]
        if n == 0 { return c }
        for k in 1...n {
            var next = [Double](repeating: 0, count: k * (k + 1) / 2 + 1)
            for i in c.indices {
                next[i] += 0.5 * c[i]
                next[i + k] += 0.5 * c[i]
            }
            c = next
        }
        return c
    }

    /// scipy's WilcoxonDistribution: each tail summed directly up to the mean, as one minus the other beyond.
    static func exactPValue(rPlus: Double, count: Int, alternative: Alternative) -> Double {
        let pmf = nullDistribution(count)
        let mean = Double(count) * Double(count + 1) / 4
        // Compensated sums: beyond the mean scipy takes one minus the other tail, which magnifies their error.
        func rawCdf(_ k: Int) -> Double {
            if k < 0 { return 0 }
            var s = Summation()
            for i in 0...min(k, pmf.count - 1) { s.add(pmf[i]) }
            return s.value
        }
        func rawSf(_ k: Int) -> Double {
            if k >= pmf.count { return 0 }
            var s = Summation()
            for i in max(k, 0)..<pmf.count { s.add(pmf[i]) }
            return s.value
        }
        func cdf(_ k: Int) -> Double { Double(k) <= mean ? rawCdf(k) : 1 - rawSf(k + 1) }
        func sf(_ k: Int) -> Double { Double(k) <= mean ? rawSf(k) : 1 - rawCdf(k - 1) }
        let up = Int(rPlus.rounded(.up)), down = Int(rPlus.rounded(.down))
        switch alternative {
        case .smaller: return cdf(up)
        case .larger: return sf(down)
        case .twoSided: return min(1, max(0, 2 * min(sf(down), cdf(up))))
        }
    }

    /// The exact distribution of r+ over the 2^n sign flips (zeros flip to themselves), on twice the ranks so that
    /// every sum is an integer and every probability a dyadic fraction, as exact as scipy's enumeration.
    static func permutationPValue(_ r: Ranking, alternative: Alternative) -> Double {
        let total = r.doubledRanks.reduce(0, +)
        var pmf = [Double](repeating: 0, count: total + 1)
        pmf[0] = 1
        var reach = 0
        for rank in r.doubledRanks {
            var i = reach
            while i >= 0 {
                let half = 0.5 * pmf[i]
                pmf[i] = half
                pmf[i + rank] += half
                i -= 1
            }
            reach += rank
        }
        let observed = r.doubledPositive
        var less = 0.0, greater = 0.0
        for s in 0...observed { less += pmf[s] }
        for s in observed...total { greater += pmf[s] }
        switch alternative {
        case .smaller: return min(1, less)
        case .larger: return min(1, greater)
        case .twoSided: return min(1, 2 * min(less, greater))
        }
    }

    /// The k-th smallest (1-based) of the sums x_i + x_j, i <= j, of sorted x.
    ///
    /// Selection in the implicit matrix whose rows (fixed i, j = i ... n-1) are sorted: each round takes the
    /// weighted median of the remaining rows' middle elements as the pivot, counts the sums below and equal to it
    /// with one pass of two pointers, and drops the side that cannot hold the answer (at least a quarter of what
    /// remains); the last few thousand candidates are sorted.
    static func walshSum(_ x: [Double], rank k: Int) -> Double {
        let n = x.count
        var lo = Array(0..<n)
        var hi = [Int](repeating: n - 1, count: n)
        var below = 0
        var lessEnd = [Int](repeating: 0, count: n)
        var leqEnd = [Int](repeating: 0, count: n)
        while true {
            var candidates = 0
            for i in 0..<n where lo[i] <= hi[i] { candidates += hi[i] - lo[i] + 1 }
            if candidates <= max(4 * n, 4096) {
                var sums: [Double] = []
                sums.reserveCapacity(candidates)
                for i in 0..<n where lo[i] <= hi[i] {
                    for j in lo[i]...hi[i] { sums.append(x[i] + x[j]) }
                }
                sums.sort()
                return sums[k - below - 1]
            }
            var medians: [(value: Double, weight: Int)] = []
            for i in 0..<n where lo[i] <= hi[i] {
                medians.append((x[i] + x[(lo[i] + hi[i]) / 2], hi[i] - lo[i] + 1))
            }
            medians.sort { $0.value < $1.value }
            var pivot = medians[medians.count - 1].value
            var cumulative = 0
            for m in medians {
                cumulative += m.weight
                if 2 * cumulative >= candidates {
                    pivot = m.value
                    break
                }
            }
            // The first column with x_i + x_j >= pivot (and > pivot) never moves right as i grows.
            var j = n, jStrict = n
            var less = 0, equal = 0
            for i in 0..<n {
                while j > 0 && x[i] + x[j - 1] >= pivot { j -= 1 }
                while jStrict > 0 && x[i] + x[jStrict - 1] > pivot { jStrict -= 1 }
                lessEnd[i] = min(max(j, lo[i]), hi[i] + 1)
                leqEnd[i] = min(max(jStrict, lo[i]), hi[i] + 1)
                less += lessEnd[i] - lo[i]
                equal += leqEnd[i] - lessEnd[i]
            }
            if k <= below + less {
                for i in 0..<n { hi[i] = lessEnd[i] - 1 }
            } else if k <= below + less + equal {
                return pivot
            } else {
                below += less + equal
                for i in 0..<n { lo[i] = leqEnd[i] }
            }
        }
    }
}
