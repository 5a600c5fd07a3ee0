#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a family of p-values (several metrics, several treatment arms) is corrected for multiplicity.
public enum Correction: String, Sendable, CaseIterable {
    /// No correction: adjusted p-values are the raw ones (capped at 1), intervals are marginal.
    case none
    /// Holm–Bonferroni step-down; controls the family-wise error rate. The default.
    case holm
    /// Benjamini–Hochberg step-up; controls the false discovery rate (independent or PRDS tests).
    case benjaminiHochberg
}

/// One test of a family, as an estimate with a standard error and a z or t reference distribution.
public struct Comparison: Sendable, Equatable {
    public var estimate: Double
    public var standardError: Double
    /// Degrees of freedom of the t reference distribution; nil for the standard normal.
    public var degreesOfFreedom: Double?

    public init(estimate: Double, standardError: Double, degreesOfFreedom: Double?) {
        self.estimate = estimate
        self.standardError = standardError
        self.degreesOfFreedom = degreesOfFreedom
    }

    /// A t test's difference, standard error and degrees of freedom.
    public init(_ test: DifferenceTest) {
        self.init(estimate: test.difference, standardError: test.standardError, degreesOfFreedom: test.degreesOfFreedom)
    }

    /// estimate / standardError.
    public var statistic: Double { estimate / standardError }

    /// Two-sided p-value 2 P(T > |statistic|), capped at 1 (NaN stays NaN), as TTest computes it.
    public var pValue: Double {
        let t = abs(statistic)
        let twoTails: Double
        if let df = degreesOfFreedom { twoTails = 2 * StudentT.sf(t, df: df) } else { twoTails = 2 * Normal.sf(t) }
        return twoTails > 1 ? 1 : twoTails
    }

    /// The two-sided critical value for a (1 - alpha) interval: the negated alpha/2 quantile.
    public func criticalValue(alpha: Double) -> Double {
        if let df = degreesOfFreedom { return -StudentT.quantile(0.5 * alpha, df: df) }
        return -Normal.quantile(0.5 * alpha)
    }

    /// estimate -/+ criticalValue(alpha) * standardError.
    public func interval(alpha: Double) -> ConfidenceInterval {
        let half = criticalValue(alpha: alpha) * standardError
        return ConfidenceInterval(lower: estimate - half, upper: estimate + half)
    }
}

/// One test of a family after correction.
public struct AdjustedComparison: Sendable, Equatable {
    /// The unadjusted two-sided p-value.
    public var pValue: Double
    /// The multiplicity-adjusted p-value (== statsmodels multipletests pvals_corrected).
    public var adjustedPValue: Double
    /// The per-test (marginal) level the interval is built at: the interval is a marginal
    /// 1 - perTestAlpha interval, and a 1 - alpha interval for the family in the correction's sense.
    public var perTestAlpha: Double
    public var criticalValue: Double
    /// The adjusted interval; it excludes 0 exactly when adjustedPValue < alpha (up to rounding).
    public var interval: ConfidenceInterval
    /// adjustedPValue < alpha.
    public var rejected: Bool

    public init(
        pValue: Double, adjustedPValue: Double, perTestAlpha: Double, criticalValue: Double,
        interval: ConfidenceInterval, rejected: Bool
    ) {
        self.pValue = pValue
        self.adjustedPValue = adjustedPValue
        self.perTestAlpha = perTestAlpha
        self.criticalValue = criticalValue
        self.interval = interval
        self.rejected = rejected
    }
}

/// Multiplicity corrections for a family of tests, with intervals that agree with them.
///
/// Missing values: nil or NaN p-values are left out of the family (they do not count in m) and come
/// back as nil. The family size m is the number of usable p-values. Input order does not matter.
///
/// Decision rule: a test is rejected at level alpha when its adjusted p-value is < alpha (strict),
/// the rule under which a closed two-sided interval excludes 0. statsmodels' `reject` uses <=;
/// the two differ only when an adjusted p-value equals alpha exactly.
public enum MultipleComparisons {
    /// Adjusted p-values in input order, identical to statsmodels
    /// `multipletests(p, method='holm' | 'fdr_bh')[1]` on the usable p-values (same floating-point
    /// operations: Holm p_(i) * (m - i + 1) with a running maximum; BH p_(i) / (i / m) with a
    /// running minimum from the top; both capped at 1). `.none` returns the p-values unchanged.
    public static func adjustedPValues(_ pValues: [Double?], correction: Correction) -> [Double?] {
        var result = [Double?](repeating: nil, count: pValues.count)
        let order = sortedUsable(pValues)
        let m = order.count
        if m == 0 { return result }
        switch correction {
        case .none:
            for i in order { result[i] = pValues[i]! }
        case .holm:
            var running = -Double.infinity
            for (k, i) in order.enumerated() {
                let raw = pValues[i]! * Double(m - k)
                if raw > running { running = raw }
                result[i] = running > 1 ? 1 : running
            }
        case .benjaminiHochberg:
            var running = Double.infinity
            for k in stride(from: m - 1, through: 0, by: -1) {
                let i = order[k]
                let raw = pValues[i]! / (Double(k + 1) / Double(m))
                if raw < running { running = raw }
                result[i] = running > 1 ? 1 : running
            }
        }
        return result
    }

    /// Non-optional convenience: NaN in, NaN out (left out of the family).
    public static func adjustedPValues(_ pValues: [Double], correction: Correction) -> [Double] {
        adjustedPValues(pValues.map { Optional($0) }, correction: correction).map { $0 ?? .nan }
    }

    /// The per-test levels alpha_i whose marginal 1 - alpha_i intervals agree with the adjusted
    /// p-values at family level alpha: p_i < alpha_i exactly when adjusted p_i < alpha.
    ///
    /// - none: alpha.
    /// - holm: with r the step-down rank (ties share the rank of the first of the tie group) and k the
    ///   rank of the first non-rejected test (m + 1 if all are rejected), alpha_i = alpha / (m - min(r, k) + 1):
    ///   rejected tests get their own Holm threshold, every other test the threshold at which the
    ///   procedure stopped (monotone in p, like Holm's adjusted p-values).
    /// - benjaminiHochberg: Benjamini–Yekutieli (2005) FCR-adjusted level alpha_i = max(R, 1) * alpha / m
    ///   for every test, R = number of BH rejections. With R = 0 we use R = 1 (alpha / m, Bonferroni
    ///   width) instead of an infinite interval; agreement still holds since then p_(1) >= alpha / m.
    ///
    /// nil/NaN p-values are left out and give nil.
    public static func perTestAlphas(_ pValues: [Double?], correction: Correction, alpha: Double) -> [Double?] {
        var result = [Double?](repeating: nil, count: pValues.count)
        let order = sortedUsable(pValues)
        let m = order.count
        if m == 0 { return result }
        switch correction {
        case .none:
            for i in order { result[i] = alpha }
        case .holm:
            let adjusted = adjustedPValues(pValues, correction: .holm)
            var stopped: Double? = nil  // alpha_k once the procedure has stopped
            var tieRank = 0
            for (k, i) in order.enumerated() {
                if k == 0 || pValues[i]! != pValues[order[k - 1]]! { tieRank = k }
                let threshold = alpha / Double(m - tieRank)
                if stopped == nil && !(adjusted[i]! < alpha) { stopped = threshold }
                result[i] = stopped ?? threshold
            }
        case .benjaminiHochberg:
            let adjusted = adjustedPValues(pValues, correction: .benjaminiHochberg)
            let rejections = order.reduce(0) { $0 + (adjusted[$1]! < alpha ? 1 : 0) }
            let level = alpha * (Double(max(rejections, 1)) / Double(m))  // <= alpha even when R = m
            for i in order { result[i] = level }
        }
        return result
    }

    /// Adjusted p-values and adjusted two-sided intervals for a family of z or t tests, in input order.
    ///
    /// A comparison whose p-value is NaN (NaN estimate or standard error, zero standard error with
    /// zero estimate, bad df) is left out of the family and gives nil.
    public static func adjust(_ comparisons: [Comparison], correction: Correction, alpha: Double) -> [AdjustedComparison?] {
        let raw: [Double?] = comparisons.map { c in
            let p = c.pValue
            return p.isNaN ? nil : p
        }
        let adjusted = adjustedPValues(raw, correction: correction)
        let levels = perTestAlphas(raw, correction: correction, alpha: alpha)
        return comparisons.indices.map { i in
            guard let p = raw[i], let q = adjusted[i], let level = levels[i] else { return nil }
            let c = comparisons[i]
            let critical = c.criticalValue(alpha: level)
            let half = critical * c.standardError
            return AdjustedComparison(
                pValue: p, adjustedPValue: q, perTestAlpha: level, criticalValue: critical,
                interval: ConfidenceInterval(lower: c.estimate - half, upper: c.estimate + half),
                rejected: q < alpha)
        }
    }

    /// Indices of the usable (non-nil, non-NaN) p-values, sorted by p (stable).
    private static func sortedUsable(_ pValues: [Double?]) -> [Int] {
        let usable = pValues.indices.filter { pValues[$0].map { !$0.isNaN } ?? false }
        return usable.sorted { a, b in
            let pa = pValues[a]!, pb = pValues[b]!
            return pa < pb || (pa == pb && a < b)
        }
    }
}
