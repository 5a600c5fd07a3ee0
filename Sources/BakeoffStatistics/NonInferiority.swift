/// Which direction of a guardrail metric is harmful.
public enum HarmfulDirection: String, Sendable, Equatable, CaseIterable {
    /// Higher values are worse (latency, escalation rate, cost): harm is treatment - control > 0.
    case higherIsWorse
    /// Lower values are worse (completion, satisfaction): harm is treatment - control < 0.
    case lowerIsWorse
}

/// The result of a one-sided non-inferiority test of a guardrail.
///
/// With `d` the difference on `scale` (treatment.mean - control.mean, or the relative lift
/// (treatment.mean - control.mean) / control.mean) and margin `m`:
///
/// - higherIsWorse: H0 d >= +m against H1 d < +m; `boundary` = +m, `bound` is the one-sided
///   (1 - alpha) upper confidence bound d + t_{1-alpha} se, and non-inferiority is shown when
///   bound < boundary.
/// - lowerIsWorse: H0 d <= -m against H1 d > -m; `boundary` = -m, `bound` is the one-sided
///   (1 - alpha) lower confidence bound d - t_{1-alpha} se, and non-inferiority is shown when
///   bound > boundary.
///
/// In both cases `isNonInferior` is pValue < alpha, which is the same decision as the bound lying
/// strictly inside the margin.
public struct NonInferiorityTest: Sendable, Equatable {
    /// The point estimate on `scale`.
    public var difference: Double
    public var scale: DifferenceScale
    public var direction: HarmfulDirection
    /// The margin as given (a magnitude on `scale`).
    public var margin: Double
    /// The null boundary on the difference: +margin (higherIsWorse) or -margin (lowerIsWorse).
    public var boundary: Double
    /// Standard error of `difference` (delta method when relative).
    public var standardError: Double
    /// Welch–Satterthwaite df of the absolute difference (used on both scales).
    public var degreesOfFreedom: Double
    /// (difference - boundary) / standardError.
    public var statistic: Double
    /// One-sided p-value for H0 "treatment is worse than control by at least the margin":
    /// P(T <= statistic) for higherIsWorse, P(T >= statistic) for lowerIsWorse.
    public var pValue: Double
    /// The one-sided (1 - alpha) confidence bound on the difference: upper for higherIsWorse,
    /// lower for lowerIsWorse.
    public var bound: Double
    /// t_{1 - alpha, degreesOfFreedom}.
    public var criticalValue: Double
    public var alpha: Double
    /// pValue < alpha (false when pValue is NaN).
    public var isNonInferior: Bool

    public init(
        difference: Double, scale: DifferenceScale, direction: HarmfulDirection, margin: Double, boundary: Double,
        standardError: Double, degreesOfFreedom: Double, statistic: Double, pValue: Double, bound: Double,
        criticalValue: Double, alpha: Double, isNonInferior: Bool
    ) {
        self.difference = difference
        self.scale = scale
        self.direction = direction
        self.margin = margin
        self.boundary = boundary
        self.standardError = standardError
        self.degreesOfFreedom = degreesOfFreedom
        self.statistic = statistic
        self.pValue = pValue
        self.bound = bound
        self.criticalValue = criticalValue
        self.alpha = alpha
        self.isNonInferior = isNonInferior
    }
}

/// One-sided Welch non-inferiority tests for guardrail metrics (issue 4).
///
/// Degenerate groups (zero variance, n < 2, control mean 0 when relative) give NaN or infinite
/// fields and isNonInferior false (unless the statistic is infinite in the right direction)
/// rather than trapping.
public enum NonInferiority {
    /// Welch's one-sided non-inferiority test of treatment versus control.
    ///
    /// - margin: the tolerated harm as a magnitude on `scale`; 0.01 with `.absolute` is one point
    ///   on a proportion, 0.15 with `.relative` is 15% of the control mean. A margin of 0 is a
    ///   one-sided test of "no harm"; a negative margin demands an improvement of |margin|.
    /// - Absolute: d = treatment.mean - control.mean, se^2 = var_t / n_t + var_c / n_c. Equals
    ///   statsmodels CompareMeans(DescrStatsW(treatment), DescrStatsW(control)).ttest_ind(
    ///   usevar="unequal", alternative="smaller", value=+margin) for higherIsWorse and
    ///   alternative="larger", value=-margin for lowerIsWorse; `bound` is the finite end of
    ///   tconfint_diff(alpha, alternative=same, usevar="unequal").
    /// - Relative: d = (m_t - m_c) / m_c with the delta-method variance
    ///   var_t / (m_c^2 n_t) + var_c m_t^2 / (m_c^4 n_c) (gbstats frequentist_variance, as in
    ///   SequentialTest.twoSided and CUPED.welch), and t quantiles with the Welch–Satterthwaite df
    ///   of the absolute difference (gbstats TwoSidedTTest's choice for relative differences).
    public static func welch(
        control: GroupEstimate, treatment: GroupEstimate, margin: Double, scale: DifferenceScale,
        direction: HarmfulDirection, alpha: Double
    ) -> NonInferiorityTest {
        let vc = control.variance / control.n
        let vt = treatment.variance / treatment.n
        let absoluteVariance = vc + vt
        let df = absoluteVariance * absoluteVariance / (vt * vt / (treatment.n - 1) + vc * vc / (control.n - 1))
        let (difference, variance) = scale.estimate(control: control, treatment: treatment)
        return oneSided(difference: difference, standardError: variance.squareRoot(), degreesOfFreedom: df, margin: margin,
                        scale: scale, direction: direction, alpha: alpha)
    }

    /// The one-sided test of an estimate already made (difference, standard error, t df) against the
    /// margin: what `welch` does after forming the difference, for estimates made differently (CUPED).
    public static func oneSided(
        difference: Double, standardError: Double, degreesOfFreedom df: Double, margin: Double, scale: DifferenceScale,
        direction: HarmfulDirection, alpha: Double
    ) -> NonInferiorityTest {
        let boundary = direction == .higherIsWorse ? margin : -margin
        let statistic = (difference - boundary) / standardError
        // t_{1-alpha} as the negated lower quantile: no rounding of 1 - alpha.
        let critical = -StudentT.quantile(alpha, df: df)
        let pValue: Double
        let bound: Double
        switch direction {
        case .higherIsWorse:
            pValue = StudentT.cdf(statistic, df: df)
            bound = difference + critical * standardError
        case .lowerIsWorse:
            pValue = StudentT.sf(statistic, df: df)
            bound = difference - critical * standardError
        }
        return NonInferiorityTest(
            difference: difference, scale: scale, direction: direction, margin: margin, boundary: boundary,
            standardError: standardError, degreesOfFreedom: df, statistic: statistic, pValue: pValue, bound: bound,
            criticalValue: critical, alpha: alpha, isNonInferior: pValue < alpha)
    }
}
