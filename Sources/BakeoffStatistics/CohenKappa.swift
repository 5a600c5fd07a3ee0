import Foundation

/// Cohen's kappa: how much two raters (a judge and a person, two people) agree on nominal categories beyond
/// what their margins alone would give, with its asymptotic standard error and a normal interval, as statsmodels
/// `statsmodels.stats.inter_rater.cohens_kappa` computes them (kappa, std_kappa, kappa_low/kappa_upp,
/// std_kappa0, z_value, p-values, kappa_max).
///
/// Weighted kappa (ordered categories) uses the category scores 0, 1, ..., k-1: linear weights |i - j| / (k - 1),
/// quadratic (i - j)^2 / (k - 1)^2 (statsmodels `wt="linear"` / `wt="quadratic"`); its variance is statsmodels'
/// (the SAS manual's formulas).
///
/// Undefined (`nil`): an empty table, or one where both raters used one and the same category only. The
/// expected agreement is then 1 and kappa 0/0; the raters may agree perfectly, but there is nothing to tell
/// agreement from chance with (report the percent agreement instead). When only one rater used a single
/// category, kappa is defined (0 when they never match beyond chance) and so are its errors.
///
/// A variance that rounds below zero (it is exactly zero for some tables, e.g. perfect agreement) is taken as 0
/// where statsmodels gives nan.
public struct CohenKappa: Sendable, Equatable {
    /// How disagreements between ordered categories are weighted.
    public enum Weights: String, Sendable, CaseIterable {
        /// Every disagreement counts the same (nominal categories).
        case none
        /// Disagreement weight |i - j| / (k - 1).
        case linear
        /// Disagreement weight (i - j)^2 / (k - 1)^2.
        case quadratic
    }

    public var weights: Weights
    /// Ratings counted (the table's total).
    public var count: Int
    public var kappa: Double
    /// Asymptotic standard error of kappa (statsmodels `std_kappa`).
    public var standardError: Double
    /// Standard error under kappa = 0 (statsmodels `std_kappa0`), for the test of no agreement beyond chance.
    public var nullStandardError: Double
    /// Share of ratings on the diagonal (unweighted, whatever `weights` is).
    public var observedAgreement: Double
    /// Diagonal agreement expected from the margins alone (unweighted).
    public var expectedAgreement: Double
    /// The largest unweighted kappa the margins allow (statsmodels `kappa_max`).
    public var maximum: Double
    /// Two-sided level of the interval: `ciLow ... ciHigh` is a (1 - alpha) interval. statsmodels' `alpha` is
    /// one-sided: its default 0.025 is this 0.05.
    public var alpha: Double
    /// kappa -/+ z(1 - alpha/2) standardError.
    public var ciLow: Double
    public var ciHigh: Double
    /// kappa / nullStandardError; nil when that error is 0.
    public var zValue: Double?
    /// P(Z > z), the test of no agreement beyond chance against more.
    public var pValueOneSided: Double?
    /// 2 P(Z > |z|).
    public var pValue: Double?

    /// Kappa of a k x k contingency table of counts: `table[i][j]` ratings put in category i by the first rater
    /// and j by the second. Nil when undefined (see the type's notes).
    public init?(table: [[Int]], weights: Weights = .none, alpha: Double = 0.05) {
        let k = table.count
        precondition(table.allSatisfy { $0.count == k }, "Cohen's kappa needs a square table")
        precondition(table.allSatisfy { $0.allSatisfy { $0 >= 0 } }, "Cohen's kappa needs counts of 0 or more")
        precondition(alpha > 0 && alpha < 1, "alpha must lie between 0 and 1")
        let total = table.reduce(0) { $0 + $1.reduce(0, +) }
        guard total > 0 else { return nil }
        let rowCounts = table.map { $0.reduce(0, +) }
        let columnCounts = (0..<k).map { j in table.reduce(0) { $0 + $1[j] } }
        // Both raters in one and the same category: expected agreement 1, kappa 0/0.
        if (0..<k).contains(where: { rowCounts[$0] == total && columnCounts[$0] == total }) { return nil }

        let n = Double(total)
        let p = table.map { $0.map { Double($0) / n } }
        let row = rowCounts.map { Double($0) / n }
        let col = columnCounts.map { Double($0) / n }
        var agree = 0.0, agreeExpected = 0.0
        for i in 0..<k {
            agree += Double(table[i][i])
            agreeExpected += row[i] * col[i]
        }
        agree /= n

        var kappa: Double, variance: Double, nullVariance: Double
        switch weights {
        case .none:
            kappa = (agree - agreeExpected) / (1 - agreeExpected)
            var a = 0.0, b = 0.0, c0 = 0.0
            for i in 0..<k {
                let t = 1 - (row[i] + col[i]) * (1 - kappa)
                a += p[i][i] * t * t
                for j in 0..<k where j != i {
                    let s = col[i] + row[j]
                    b += p[i][j] * s * s
                }
                c0 += col[i] * row[i] * (col[i] + row[i])
            }
            b *= (1 - kappa) * (1 - kappa)
            let c = kappa - agreeExpected * (1 - kappa)
            variance = (a + b - c * c) / ((1 - agreeExpected) * (1 - agreeExpected)) / n
            nullVariance = (agreeExpected + agreeExpected * agreeExpected - c0) / ((1 - agreeExpected) * (1 - agreeExpected) * n)
        case .linear, .quadratic:
            // Disagreement weights (Wikipedia's), then agreement weights w = 1 - W (the SAS manual's).
            let span = Double(k - 1)
            let disagreement: [[Double]] = (0..<k).map { i in
                (0..<k).map { j in
                    let d = Double(abs(i - j))
                    return weights == .linear ? d / span : d * d / (span * span)
                }
            }
            var observed = 0.0, expected = 0.0
            for i in 0..<k {
                for j in 0..<k {
                    observed += disagreement[i][j] * Double(table[i][j])
                    expected += disagreement[i][j] * row[i] * col[j]
                }
            }
            kappa = 1 - observed / n / expected
            let w = disagreement.map { $0.map { 1 - $0 } }
            let wRow = (0..<k).map { i in (0..<k).reduce(0.0) { $0 + col[$1] * w[i][$1] } }
            let wCol = (0..<k).map { j in (0..<k).reduce(0.0) { $0 + row[$1] * w[$1][j] } }
            var agreeW = 0.0
            for i in 0..<k { for j in 0..<k { agreeW += w[i][j] * col[j] * row[i] } }
            var a = 0.0, a0 = 0.0
            for i in 0..<k {
                for j in 0..<k {
                    let t = w[i][j] - (wCol[j] + wRow[i]) * (1 - kappa)
                    a += p[i][j] * t * t
                    let t0 = w[i][j] - (wCol[j] + wRow[i])
                    a0 += col[j] * row[i] * t0 * t0
                }
            }
            let factor = 1 / ((1 - agreeW) * (1 - agreeW) * n)
            let c = kappa - agreeW * (1 - kappa)
            variance = (a - c * c) * factor
            nullVariance = (a0 - agreeW * agreeW) * factor
        }

        var largest = 0.0
        for i in 0..<k { largest += min(row[i], col[i]) }

        self.weights = weights
        count = total
        self.kappa = kappa
        standardError = max(0, variance).squareRoot()
        nullStandardError = max(0, nullVariance).squareRoot()
        observedAgreement = agree
        expectedAgreement = agreeExpected
        maximum = (largest - agreeExpected) / (1 - agreeExpected)
        self.alpha = alpha
        let q = Normal.quantile(1 - alpha / 2)
        ciLow = kappa - q * standardError
        ciHigh = kappa + q * standardError
        if nullStandardError > 0 {
            let z = kappa / nullStandardError
            zValue = z
            pValueOneSided = Normal.sf(z)
            pValue = min(1, 2 * Normal.sf(abs(z)))
        }
    }

    /// Kappa of paired ratings: `first[i]` and `second[i]` are the two raters' categories (0 ..< categories) of
    /// item i. Nil when undefined or there are no ratings.
    public init?(first: [Int], second: [Int], categories: Int, weights: Weights = .none, alpha: Double = 0.05) {
        self.init(table: Self.table(first, second, categories: categories), weights: weights, alpha: alpha)
    }

    /// The contingency table of paired ratings: `table[i][j]` items rated i by the first rater and j by the second.
    public static func table(_ first: [Int], _ second: [Int], categories: Int) -> [[Int]] {
        precondition(first.count == second.count, "two raters rate the same items")
        var table = [[Int]](repeating: [Int](repeating: 0, count: categories), count: categories)
        for (a, b) in zip(first, second) {
            precondition((0..<categories).contains(a) && (0..<categories).contains(b), "a rating outside the categories")
            table[a][b] += 1
        }
        return table
    }

    /// The (1 - alpha) interval at another level.
    public func interval(alpha: Double) -> (low: Double, high: Double) {
        let q = Normal.quantile(1 - alpha / 2)
        return (kappa - q * standardError, kappa + q * standardError)
    }
}
