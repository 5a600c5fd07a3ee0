#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether a difference is reported as treatment - control or as (treatment - control) / control.
public enum DifferenceScale: String, Sendable, Equatable, CaseIterable {
    /// treatment.mean - control.mean.
    case absolute
    /// (treatment.mean - control.mean) / control.mean, with delta-method variance.
    case relative
}

extension DifferenceScale {
    /// The delta-method variance of (t − c) / c from the variances of the two means (not per user):
    /// Var(t)/c² + Var(c)·t²/c⁴ (gbstats frequentist_variance). One formula for every relative test.
    public static func relativeVariance(controlMean c: Double, treatmentMean t: Double,
                                        varianceOfControlMean vc: Double, varianceOfTreatmentMean vt: Double) -> Double {
        let c2 = c * c
        return vt / c2 + vc * (t * t) / (c2 * c2)
    }

    /// The difference on this scale and the variance of that estimate, from the two groups.
    public func estimate(control: GroupEstimate, treatment: GroupEstimate) -> (difference: Double, variance: Double) {
        let vc = control.variance / control.n, vt = treatment.variance / treatment.n
        switch self {
        case .absolute:
            return (treatment.mean - control.mean, vt + vc)
        case .relative:
            return ((treatment.mean - control.mean) / control.mean,
                    DifferenceScale.relativeVariance(controlMean: control.mean, treatmentMean: treatment.mean,
                                                     varianceOfControlMean: vc, varianceOfTreatmentMean: vt))
        }
    }
}

/// The result of a sequential (always-valid) two-sided test of treatment versus control.
public struct SequentialDifferenceTest: Sendable, Equatable {
    /// The point estimate on the requested scale (absolute difference or relative lift).
    public var difference: Double
    public var scale: DifferenceScale
    /// Standard error of `difference` (delta method when relative).
    public var standardError: Double
    /// difference / standardError.
    public var statistic: Double
    /// Always-valid p-value, min(1, 1 / e-value).
    public var pValue: Double
    /// Always-valid interval, difference -/+ criticalValue * standardError.
    public var interval: ConfidenceInterval
    /// Half-width / standardError: the multiplier that replaces the fixed-horizon t quantile.
    public var criticalValue: Double

    public init(
        difference: Double, scale: DifferenceScale, standardError: Double, statistic: Double, pValue: Double,
        interval: ConfidenceInterval, criticalValue: Double
    ) {
        self.difference = difference
        self.scale = scale
        self.standardError = standardError
        self.statistic = statistic
        self.pValue = pValue
        self.interval = interval
        self.criticalValue = criticalValue
    }
}

/// Asymptotic confidence sequences (Waudby-Smith et al. 2023), as gbstats SequentialTwoSidedTTest.
///
/// The interval and p-value stay valid however often they are looked at and whenever the
/// experiment is stopped, at the price of a wider interval than the fixed-horizon test's.
public enum SequentialTest {
    /// gbstats' default tuning parameter N*: the total sample size at which the interval is tightest.
    public static let defaultTuningParameter = 5000.0

    /// Two-sided always-valid interval and p-value from the two groups' estimates.
    ///
    /// Matches gbstats SequentialTwoSidedTTest (difference_type "absolute" or "relative", test value 0)
    /// given GroupEstimates built as gbstats builds them: SampleMoments or RatioMoments mean and
    /// variance, or for a proportion p the variance p (1 - p). N is control.n + treatment.n.
    /// Degenerate inputs (zero variance, control mean 0 when relative) give NaN or infinite fields.
    ///
    /// `tuningAlpha` (default `alpha`) is the alpha rho is tuned for. An interval at another level with
    /// the same rho excludes a value exactly when the p-value (which depends on rho, not on the level) is
    /// below that level: what multiple-comparison corrections need.
    public static func twoSided(
        control: GroupEstimate, treatment: GroupEstimate, alpha: Double, scale: DifferenceScale,
        tuningParameter: Double = defaultTuningParameter, tuningAlpha: Double? = nil
    ) -> SequentialDifferenceTest {
        let (difference, variance) = scale.estimate(control: control, treatment: treatment)
        return fromEstimate(difference: difference, variance: variance, scale: scale, n: control.n + treatment.n,
                            alpha: alpha, tuningParameter: tuningParameter, tuningAlpha: tuningAlpha)
    }

    /// The always-valid interval and p-value of an estimate with variance `variance` (of the estimate, not
    /// per user) from `n` users in all: what `twoSided` does after forming the difference. For estimates
    /// made differently, such as a CUPED-adjusted difference over the unadjusted control mean.
    public static func fromEstimate(
        difference: Double, variance: Double, scale: DifferenceScale, n: Double, alpha: Double,
        tuningParameter: Double = defaultTuningParameter, tuningAlpha: Double? = nil
    ) -> SequentialDifferenceTest {
        let standardError = variance.squareRoot()
        let rho2 = rhoSquared(alpha: tuningAlpha ?? alpha, tuningParameter: tuningParameter)
        let nRho2Plus1 = n * rho2 + 1
        let critical = criticalValue(n: n, alpha: alpha, rhoSquared: rho2)
        let half = critical * standardError
        // Eq. 155: e-value exp(rho^2 S / (2 (N rho^2 + 1))) / sqrt(N rho^2 + 1) with S = N difference^2 / var.
        let s = difference * difference * n / variance
        let exponent = rho2 * s / (2 * nRho2Plus1)
        let inverseE = nRho2Plus1.squareRoot() * exp(-exponent)
        let pValue = inverseE > 1 ? 1 : inverseE  // NaN stays NaN
        return SequentialDifferenceTest(
            difference: difference, scale: scale, standardError: standardError, statistic: difference / standardError,
            pValue: pValue, interval: ConfidenceInterval(lower: difference - half, upper: difference + half),
            criticalValue: critical)
    }

    /// The half-width of the sequence in standard errors at `n` users in all: eq. 9 of arXiv:2103.06476v7,
    /// half-width = sqrt(var N) sqrt(2 (N rho^2 + 1) log(sqrt(N rho^2 + 1) / alpha) / (N rho)^2).
    public static func criticalValue(n: Double, alpha: Double, rhoSquared rho2: Double) -> Double {
        let nRho2Plus1 = n * rho2 + 1
        return (2 * nRho2Plus1 * log(nRho2Plus1.squareRoot() / alpha) / (n * rho2)).squareRoot()
    }

    /// The total users at which the sequential test has `power` for an absolute `effect`, when a user's
    /// value has variance `variance` and the treatment gets `ratio` users per control user (normal
    /// approximation: effect / se(N) = criticalValue(N) + z_power). Nil when not reached below 1e9 users.
    public static func users(effect: Double, variance: Double, ratio: Double, alpha: Double, power: Double,
                             tuningParameter: Double = defaultTuningParameter) -> Double? {
        guard effect != 0, variance > 0, ratio > 0, alpha > 0, alpha < 1, power > 0, power < 1 else { return nil }
        let rho2 = rhoSquared(alpha: alpha, tuningParameter: tuningParameter)
        let zPower = Normal.quantile(power)
        let shareControl = 1 / (1 + ratio), shareTreatment = ratio / (1 + ratio)
        func enough(_ n: Double) -> Bool {
            let se = (variance / (n * shareControl) + variance / (n * shareTreatment)).squareRoot()
            return abs(effect) / se >= criticalValue(n: n, alpha: alpha, rhoSquared: rho2) + zPower
        }
        var high = 4.0
        while !enough(high) {
            high *= 2
            if high > 1e9 { return nil }
        }
        var low = high / 2
        while high - low > 1 {
            let mid = ((low + high) / 2).rounded(.down)
            if enough(mid) { high = mid } else { low = mid }
        }
        return high
    }

    /// rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / N* (eq. 161), tuning the sequence to be tightest at N*.
    public static func rhoSquared(alpha: Double, tuningParameter: Double) -> Double {
        let l = -2 * log(alpha)
        return (l + log(l + 1)) / tuningParameter
    }
}
