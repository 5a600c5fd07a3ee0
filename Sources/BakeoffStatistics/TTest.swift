#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A closed interval [lower, upper].
public struct ConfidenceInterval: Sendable, Equatable {
    public var lower: Double
    public var upper: Double

    public init(lower: Double, upper: Double) {
        self.lower = lower
        self.upper = upper
    }
}

/// The result of a two-sided test of treatment mean minus control mean.
public struct DifferenceTest: Sendable, Equatable {
    /// treatment.mean - control.mean.
    public var difference: Double
    public var standardError: Double
    public var degreesOfFreedom: Double
    /// difference / standardError.
    public var statistic: Double
    /// Two-sided p-value, 2 P(T > |statistic|).
    public var pValue: Double
    /// difference -/+ criticalValue * standardError.
    public var interval: ConfidenceInterval
    /// t_{1 - alpha/2, degreesOfFreedom}.
    public var criticalValue: Double

    public init(
        difference: Double, standardError: Double, degreesOfFreedom: Double, statistic: Double,
        pValue: Double, interval: ConfidenceInterval, criticalValue: Double
    ) {
        self.difference = difference
        self.standardError = standardError
        self.degreesOfFreedom = degreesOfFreedom
        self.statistic = statistic
        self.pValue = pValue
        self.interval = interval
        self.criticalValue = criticalValue
    }
}

/// Two-sample t tests of treatment mean minus control mean from group summaries.
///
/// Degenerate groups (zero variance, n < 2) give NaN or infinite fields rather than trapping.
public enum TTest {
    /// Welch's unequal-variance test with Welch–Satterthwaite df.
    ///
    /// With per-unit values this equals scipy ttest_ind(equal_var=False); with RatioMoments-derived
    /// GroupEstimates it equals gbstats TwoSidedTTest (difference_type="absolute").
    public static func welch(control: GroupEstimate, treatment: GroupEstimate, alpha: Double) -> DifferenceTest {
        let vc = control.variance / control.n
        let vt = treatment.variance / treatment.n
        let v = vc + vt
        let df = v * v / (vt * vt / (treatment.n - 1) + vc * vc / (control.n - 1))
        return make(difference: treatment.mean - control.mean, standardError: v.squareRoot(), df: df, alpha: alpha)
    }

    /// Student's pooled-variance test, df = n1 + n2 - 2 (scipy ttest_ind default).
    public static func student(control: GroupEstimate, treatment: GroupEstimate, alpha: Double) -> DifferenceTest {
        let df = control.n + treatment.n - 2
        let pooled = ((control.n - 1) * control.variance + (treatment.n - 1) * treatment.variance) / df
        let se = (pooled * (1 / control.n + 1 / treatment.n)).squareRoot()
        return make(difference: treatment.mean - control.mean, standardError: se, df: df, alpha: alpha)
    }

    /// The two-sided t test of an estimate with its standard error and df: p-value, interval, critical value.
    static func make(difference: Double, standardError: Double, df: Double, alpha: Double) -> DifferenceTest {
        let statistic = difference / standardError
        let twoTails = 2 * StudentT.sf(abs(statistic), df: df)
        let pValue = twoTails > 1 ? 1 : twoTails  // NaN stays NaN
        // t_{1-alpha/2} as the negated lower quantile: exact symmetry, and no rounding of 1 - alpha/2.
        let critical = -StudentT.quantile(0.5 * alpha, df: df)
        let half = critical * standardError
        return DifferenceTest(
            difference: difference, standardError: standardError, degreesOfFreedom: df, statistic: statistic,
            pValue: pValue, interval: ConfidenceInterval(lower: difference - half, upper: difference + half),
            criticalValue: critical)
    }
}
