#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The sufficient statistics of one arm for a quantile metric (latency P50/P95/P99, TTFT),
/// following Deng, Knoblich and Yu (2018), "Applying the Delta Method in Metric Analytics", and
/// gbstats' `QuantileClusteredStatistic` / `QuantileStatistic` (which take exactly these fields).
///
/// Conventions (n events sorted x₍₁₎ ≤ … ≤ x₍ₙ₎, z = Φ⁻¹(0.975), rank r ↦ x₍⌈r⌉₎ clamped to [1, n]):
/// - `quantile` = x₍⌈n·p⌉₎ (inverted-CDF sample quantile);
/// - `lower`/`upper` = the order statistics at ranks n·p ∓ z·√(n·p(1−p)) (the "outer CI");
/// - per user i, sᵢ = events ≤ `quantile`, cᵢ = events; the five sums over users of sᵢ, sᵢ², cᵢ, cᵢ², sᵢcᵢ.
///
/// The naive (i.i.d.) variance of the quantile estimate is ((n−1)/n)·((upper − lower)/(2z))²; the
/// clustered variance multiplies it by Var(Σs/Σc) / (p(1−p)/n), the delta-method variance of the
/// proportion of events below the quantile over users' (sᵢ, cᵢ) pairs relative to its binomial value.
/// z is fixed at the 95% level whatever the test's alpha (it only estimates the density).
public struct QuantileEstimate: Sendable, Equatable {
    /// The quantile level p in (0, 1), e.g. 0.95 for P95.
    public var level: Double
    /// Number of events.
    public var n: Double
    /// Number of users (clusters), including users with no events.
    public var users: Double
    public var quantile: Double
    public var lower: Double
    public var upper: Double
    public var belowSum: Double
    public var belowSumSquares: Double
    public var countSum: Double
    public var countSumSquares: Double
    public var belowCountSumProduct: Double

    public init(
        level: Double, n: Double, users: Double, quantile: Double, lower: Double, upper: Double,
        belowSum: Double, belowSumSquares: Double, countSum: Double, countSumSquares: Double,
        belowCountSumProduct: Double
    ) {
        self.level = level
        self.n = n
        self.users = users
        self.quantile = quantile
        self.lower = lower
        self.upper = upper
        self.belowSum = belowSum
        self.belowSumSquares = belowSumSquares
        self.countSum = countSum
        self.countSumSquares = countSumSquares
        self.belowCountSumProduct = belowCountSumProduct
    }

    /// Summarizes one arm from per-user event values (one inner array per user; empty arrays count
    /// as users with no events). NaN values are not allowed. With no events every field but
    /// `level` and `users` is 0 and `quantile`, `lower`, `upper` are NaN.
    public init(users perUser: [[Double]], level: Double) {
        var all: [Double] = []
        all.reserveCapacity(perUser.reduce(0) { $0 + $1.count })
        for values in perUser { all.append(contentsOf: values) }
        all.sort()
        let n = Double(all.count)
        let z = QuantileEstimate.z
        func orderStatistic(_ rank: Double) -> Double {
            if all.isEmpty { return .nan }
            let index = min(max(Int(rank.rounded(.up)), 1), all.count)
            return all[index - 1]
        }
        let half = z * (n * level * (1 - level)).squareRoot()
        let q = orderStatistic(n * level)
        var s1 = 0.0, s2 = 0.0, c1 = 0.0, c2 = 0.0, sc = 0.0
        for values in perUser {
            var below = 0.0
            for v in values where v <= q { below += 1 }
            let count = Double(values.count)
            s1 += below
            s2 += below * below
            c1 += count
            c2 += count * count
            sc += below * count
        }
        self.init(
            level: level, n: n, users: Double(perUser.count), quantile: q,
            lower: orderStatistic(n * level - half), upper: orderStatistic(n * level + half),
            belowSum: s1, belowSumSquares: s2, countSum: c1, countSumSquares: c2, belowCountSumProduct: sc)
    }

    /// Φ⁻¹(0.975), the rank multiplier of the outer CI (fixed, as in gbstats).
    public static let z = -Normal.quantile(0.025)

    /// True when a rank bound falls outside [1, n] (n ≤ z²·p/(1−p) or n ≤ z²·(1−p)/p, gbstats'
    /// zero-variance rule): too few events for this level; the variances are then NaN.
    public var isDegenerate: Bool {
        let z2 = QuantileEstimate.z * QuantileEstimate.z
        return !(n > z2 * level / (1 - level)) || !(n > z2 * (1 - level) / level)
    }

    /// Variance of `quantile` assuming independent events: ((n−1)/n)·((upper − lower)/(2z))².
    public var naiveVariance: Double {
        if isDegenerate { return .nan }
        let width = (upper - lower) / (2 * QuantileEstimate.z)
        return (n - 1) * width * width / n
    }

    /// Delta-method variance of the proportion of events ≤ `quantile`, over users.
    public var proportionVariance: Double {
        let k = users
        let muS = belowSum / k
        let muN = countSum / k
        let varS = (belowSumSquares / k - muS * muS) * k / (k - 1)
        let varN = (countSumSquares / k - muN * muN) * k / (k - 1)
        let cov = (belowCountSumProduct / k - muS * muN) * k / (k - 1)
        return (varS - 2 * muS * cov / muN + muS * muS * varN / (muN * muN)) / (k * muN * muN)
    }

    /// Variance of `quantile` corrected for several events per user: `naiveVariance` scaled by
    /// `proportionVariance` / (p(1−p)/n). NaN when degenerate or with fewer than 2 users.
    public var variance: Double {
        if isDegenerate || !(users > 1) || !(countSum > 0) { return .nan }
        return naiveVariance * proportionVariance / (level * (1 - level) / n)
    }
}

/// Tests of treatment quantile against control quantile with a normal interval and p-value.
///
/// The estimates and standard errors equal gbstats' TwoSidedTTest on QuantileClusteredStatistic
/// (or QuantileStatistic when `clustered` is false); gbstats then uses a Welch t, this uses the
/// normal (`degreesOfFreedom` is +infinity). Degenerate arms give NaN fields.
public enum QuantileTest {
    /// treatment.quantile − control.quantile.
    public static func difference(
        control: QuantileEstimate, treatment: QuantileEstimate, alpha: Double, clustered: Bool = true
    ) -> DifferenceTest {
        let vc = clustered ? control.variance : control.naiveVariance
        let vt = clustered ? treatment.variance : treatment.naiveVariance
        return make(difference: treatment.quantile - control.quantile, variance: vt + vc, alpha: alpha)
    }

    /// (treatment.quantile − control.quantile) / control.quantile, with the delta-method variance
    /// Var(t)/c² + Var(c)·t²/c⁴.
    public static func relativeChange(
        control: QuantileEstimate, treatment: QuantileEstimate, alpha: Double, clustered: Bool = true
    ) -> DifferenceTest {
        let vc = clustered ? control.variance : control.naiveVariance
        let vt = clustered ? treatment.variance : treatment.naiveVariance
        let c = control.quantile, t = treatment.quantile
        let variance = DifferenceScale.relativeVariance(controlMean: c, treatmentMean: t, varianceOfControlMean: vc,
                                                        varianceOfTreatmentMean: vt)
        return make(difference: (t - c) / c, variance: variance, alpha: alpha)
    }

    private static func make(difference: Double, variance: Double, alpha: Double) -> DifferenceTest {
        let se = variance.squareRoot()
        let statistic = difference / se
        let pValue = min(2 * Normal.sf(abs(statistic)), 1)
        let critical = -Normal.quantile(0.5 * alpha)
        let half = critical * se
        return DifferenceTest(
            difference: difference, standardError: se, degreesOfFreedom: .infinity, statistic: statistic,
            pValue: statistic.isNaN ? .nan : pValue,
            interval: ConfidenceInterval(lower: difference - half, upper: difference + half),
            criticalValue: critical)
    }
}
