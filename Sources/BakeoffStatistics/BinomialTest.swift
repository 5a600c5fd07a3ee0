import Foundation

/// The exact binomial test: `successes` out of `trials` against a probability `p` (scipy `binomtest`).
///
/// Why here: a paired comparison of two variants (an offline eval's wins and losses over requests, McNemar's
/// test of discordant yes/no pairs) comes down to it, and with tens of requests the normal approximation is
/// not good enough.
public enum BinomialTest {
    public enum Alternative: String, Sendable { case twoSided = "two-sided", greater, less }

    /// The probability of exactly `k` successes in `n` trials.
    public static func pmf(_ k: Int, _ n: Int, _ p: Double) -> Double {
        guard k >= 0, k <= n else { return 0 }
        if p == 0 { return k == 0 ? 1 : 0 }
        if p == 1 { return k == n ? 1 : 0 }
        // 1 / ((n + 1) B(n - k + 1, k + 1)) is the binomial coefficient; logBeta stays accurate for huge n.
        let logCoefficient = -log(Double(n) + 1) - Special.logBeta(Double(n - k) + 1, Double(k) + 1)
        return exp(logCoefficient + Double(k) * log(p) + Double(n - k) * log1p(-p))
    }

    /// The p-value, as scipy computes it: two-sided sums the probabilities of every outcome no more likely than
    /// the one observed (with scipy's relative tolerance of 1e-7); one-sided sums one tail.
    public static func pValue(successes k: Int, trials n: Int, p: Double = 0.5, alternative: Alternative = .twoSided) -> Double {
        precondition(n >= 0 && k >= 0 && k <= n && p >= 0 && p <= 1, "binomial test needs 0 <= k <= n and 0 <= p <= 1")
        if n == 0 { return 1 }
        switch alternative {
        case .less: return min(1, (0...k).reduce(0) { $0 + pmf($1, n, p) })
        case .greater: return min(1, (k...n).reduce(0) { $0 + pmf($1, n, p) })
        case .twoSided:
            if Double(k) == p * Double(n) { return 1 }
            let observed = pmf(k, n, p) * (1 + 1e-7)
            var total = 0.0
            for i in 0...n {
                let q = pmf(i, n, p)
                if q <= observed { total += q }
            }
            return min(1, total)
        }
    }
}

/// McNemar's test of paired yes/no outcomes, exact: only the discordant pairs count (statsmodels `mcnemar`
/// with `exact=True`: twice the smaller tail of Binomial(b + c, 1/2), at most 1).
public enum McNemarTest {
    /// `onlyFirst`: pairs where the first variant succeeded and the second did not; `onlySecond` the reverse.
    public static func exactPValue(onlyFirst b: Int, onlySecond c: Int) -> Double {
        let n = b + c
        guard n > 0 else { return 1 }
        return min(1, 2 * BinomialTest.pValue(successes: min(b, c), trials: n, alternative: .less))
    }
}
