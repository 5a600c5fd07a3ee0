#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The result of a paired t test of the per-request differences d_i = variant_i - control_i.
public struct PairedTTestResult: Sendable, Equatable {
    /// How many differences were tested.
    public var count: Int
    /// The mean difference (0 by convention when there are none).
    public var meanDifference: Double
    /// The sample standard deviation of the differences (n - 1 in the denominator); +infinity when n < 2.
    public var standardDeviation: Double
    /// standardDeviation / sqrt(n); +infinity when n < 2, 0 when every difference is the same.
    public var standardError: Double
    /// n - 1 (0 when n < 2).
    public var degreesOfFreedom: Double
    /// meanDifference / standardError: ±infinity for equal non-zero differences, 0 when n < 2 or all are 0.
    public var statistic: Double
    /// The p-value for `alternative`.
    public var pValue: Double
    public var alternative: Alternative
    /// The (1 - alpha) interval of the mean difference; one-sided alternatives give a half-line
    /// ([lower, +infinity) for `.larger`, (-infinity, upper] for `.smaller`). The whole line when n < 2.
    public var interval: ConfidenceInterval
    /// The t quantile the interval uses: t_{1 - alpha/2} two-sided, t_{1 - alpha} one-sided (+infinity when n < 2).
    public var criticalValue: Double

    public init(
        count: Int, meanDifference: Double, standardDeviation: Double, standardError: Double, degreesOfFreedom: Double,
        statistic: Double, pValue: Double, alternative: Alternative, interval: ConfidenceInterval, criticalValue: Double
    ) {
        self.count = count
        self.meanDifference = meanDifference
        self.standardDeviation = standardDeviation
        self.standardError = standardError
        self.degreesOfFreedom = degreesOfFreedom
        self.statistic = statistic
        self.pValue = pValue
        self.alternative = alternative
        self.interval = interval
        self.criticalValue = criticalValue
    }
}

/// The paired t test: a one-sample t test of the per-request differences against 0.
///
/// Equals scipy `ttest_1samp(d, 0, alternative=...)` and `ttest_rel(variant, control)` (statistic, pvalue, df,
/// `confidence_interval(1 - alpha)`), `.larger` being scipy's 'greater' and `.smaller` its 'less'. Where scipy gives
/// NaN this gives the limit or the "nothing known" answer instead:
/// * n < 2: the spread is unknown, so standardDeviation, standardError and criticalValue are +infinity, the
///   statistic 0, the p-value 1 and the interval the whole line (for n = 0 the mean is 0 by convention);
/// * every difference equal (checked exactly, so rounding cannot fake a tiny spread): standardError 0 and the
///   interval the single point; a non-zero value gives statistic ±infinity and p-value 0 (1 for the one-sided
///   alternative pointing the other way), as scipy; all zeros give statistic 0 and p-value 1 (scipy: NaN).
/// NaN among the differences makes every computed field NaN.
public enum PairedTTest {
    /// The test of the differences d_i (variant minus control).
    public static func test(differences d: [Double], alpha: Double = 0.05, alternative: Alternative = .twoSided) -> PairedTTestResult {
        precondition(alpha > 0 && alpha < 1, "alpha must be in (0, 1)")
        let n = d.count
        if d.contains(where: \.isNaN) {
            return PairedTTestResult(
                count: n, meanDifference: .nan, standardDeviation: .nan, standardError: .nan,
                degreesOfFreedom: Double(max(n - 1, 0)), statistic: .nan, pValue: .nan, alternative: alternative,
                interval: ConfidenceInterval(lower: .nan, upper: .nan), criticalValue: .nan)
        }
        if n < 2 {
            return PairedTTestResult(
                count: n, meanDifference: n == 1 ? d[0] : 0, standardDeviation: .infinity, standardError: .infinity,
                degreesOfFreedom: 0, statistic: 0, pValue: 1, alternative: alternative,
                interval: ConfidenceInterval(lower: -.infinity, upper: .infinity), criticalValue: .infinity)
        }
        let mean: Double
        let sd: Double
        if d.allSatisfy({ $0 == d[0] }) {
            mean = d[0]
            sd = 0
        } else {
            mean = Summation.sum(d) / Double(n)
            // Two-pass variance with the compensating term sum(d - mean)^2 / n (Chan, Golub and LeVeque).
            var squares = Summation()
            var deviations = Summation()
            for x in d {
                let e = x - mean
                squares.add(e * e)
                deviations.add(e)
            }
            let variance = (squares.value - deviations.value * deviations.value / Double(n)) / Double(n - 1)
            sd = max(0, variance).squareRoot()
        }
        let df = Double(n - 1)
        let se = sd / Double(n).squareRoot()
        let statistic: Double
        if se == 0 {
            statistic = mean == 0 ? 0 : (mean > 0 ? .infinity : -.infinity)
        } else {
            statistic = mean / se
        }
        let pValue: Double
        switch alternative {
        case .twoSided: pValue = statistic == 0 ? 1 : min(1, 2 * StudentT.sf(abs(statistic), df: df))
        case .larger: pValue = statistic.isInfinite ? (statistic > 0 ? 0 : 1) : StudentT.sf(statistic, df: df)
        case .smaller: pValue = statistic.isInfinite ? (statistic > 0 ? 1 : 0) : StudentT.cdf(statistic, df: df)
        }
        // The negated lower quantile: exact symmetry, and no rounding of 1 - alpha/2.
        let critical = -StudentT.quantile(alternative == .twoSided ? 0.5 * alpha : alpha, df: df)
        let half = critical * se
        let interval: ConfidenceInterval
        switch alternative {
        case .twoSided: interval = ConfidenceInterval(lower: mean - half, upper: mean + half)
        case .larger: interval = ConfidenceInterval(lower: mean - half, upper: .infinity)
        case .smaller: interval = ConfidenceInterval(lower: -.infinity, upper: mean + half)
        }
        return PairedTTestResult(
            count: n, meanDifference: mean, standardDeviation: sd, standardError: se, degreesOfFreedom: df,
            statistic: statistic, pValue: pValue, alternative: alternative, interval: interval, criticalValue: critical)
    }

    /// The test of variant_i - control_i over paired values (the same request answered by both); the arrays must
    /// have the same length. == scipy `ttest_rel(variant, control)`.
    public static func test(variant: [Double], control: [Double], alpha: Double = 0.05, alternative: Alternative = .twoSided) -> PairedTTestResult {
        precondition(variant.count == control.count, "paired arrays must have the same length")
        return test(differences: zip(variant, control).map { $0 - $1 }, alpha: alpha, alternative: alternative)
    }
}

/// Neumaier's compensated sum: the rounding error of a long sum stays at one ulp of the result.
struct Summation {
    private var sum = 0.0
    private var compensation = 0.0

    mutating func add(_ x: Double) {
        let t = sum + x
        if abs(sum) >= abs(x) {
            compensation += (sum - t) + x
        } else {
            compensation += (x - t) + sum
        }
        sum = t
    }

    var value: Double { sum + compensation }

    static func sum(_ values: [Double]) -> Double {
        var s = Summation()
        for x in values { s.add(x) }
        return s.value
    }
}
