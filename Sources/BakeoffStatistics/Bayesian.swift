#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A proper Gaussian prior N(mean, variance) on the effect, stated on its own scale.
///
/// A prior stated on the other scale than the test's is converted with the control mean m:
/// relative -> absolute multiplies the mean by |m| and the variance by m^2 (as gbstats' prior_type).
public struct GaussianPrior: Sendable, Equatable {
    public var mean: Double
    /// Must be positive.
    public var variance: Double
    public var scale: DifferenceScale

    public init(mean: Double, variance: Double, scale: DifferenceScale = .relative) {
        self.mean = mean
        self.variance = variance
        self.scale = scale
    }
}

/// The posterior of the effect under a normal-normal model, with the decision summaries drawn from it.
public struct BayesianEffect: Sendable, Equatable {
    /// Why the test could not be run; the other fields then hold gbstats' uninformative output
    /// (chance to win 0.5, everything else 0).
    public enum Issue: Sendable, Equatable {
        /// A relative effect needs a nonzero control mean.
        case zeroControlMean
        /// A group has no units.
        case emptyGroup
        /// A group's variance is zero or negative.
        case nonPositiveVariance
    }

    /// The scale of mean, standardDeviation, the risks and the interval.
    public var scale: DifferenceScale
    /// Posterior mean of the effect (gbstats expected).
    public var mean: Double
    /// Posterior standard deviation of the effect (gbstats uplift.stddev).
    public var standardDeviation: Double
    /// Posterior probability that treatment is better: P(effect > 0), or P(effect < 0) when lower is better.
    public var chanceToWin: Double
    /// Expected loss of shipping control: E[max(effect, 0)], or E[max(-effect, 0)] when lower is better.
    public var riskOfControl: Double
    /// Expected loss of shipping treatment: E[max(-effect, 0)], or E[max(effect, 0)] when lower is better.
    public var riskOfTreatment: Double
    /// Equal-tailed credible interval with 1 - alpha posterior probability.
    public var interval: ConfidenceInterval
    /// nil when the test ran.
    public var issue: Issue?

    public init(
        scale: DifferenceScale, mean: Double, standardDeviation: Double, chanceToWin: Double, riskOfControl: Double,
        riskOfTreatment: Double, interval: ConfidenceInterval, issue: Issue? = nil
    ) {
        self.scale = scale
        self.mean = mean
        self.standardDeviation = standardDeviation
        self.chanceToWin = chanceToWin
        self.riskOfControl = riskOfControl
        self.riskOfTreatment = riskOfTreatment
        self.interval = interval
        self.issue = issue
    }
}

/// Bayesian A/B effect test with a normal likelihood and a flat or Gaussian prior (gbstats EffectBayesianABTest).
///
/// The likelihood is the fixed-horizon one: the difference of means (relative differences through
/// the delta method) with variance var_t/n_t + var_c/n_c, so with a flat prior the credible interval
/// is the normal (z) confidence interval. Groups come as GroupEstimate: SampleMoments and RatioMoments
/// give mean and per-unit variance; a proportion p is mean p with variance p(1 - p) as in gbstats.
public enum BayesianEffectTest {
    /// Posterior of the treatment-vs-control effect, chance to win, risks and credible interval.
    ///
    /// - Parameters:
    ///   - prior: nil for the flat (improper) prior, gbstats' default.
    ///   - inverse: true when lower values of the metric are better.
    ///   - alpha: the credible interval holds 1 - alpha posterior probability.
    public static func compute(
        control: GroupEstimate, treatment: GroupEstimate, scale: DifferenceScale = .relative,
        prior: GaussianPrior? = nil, inverse: Bool = false, alpha: Double = 0.05
    ) -> BayesianEffect {
        let mc = control.mean
        // gbstats' checks, in its order.
        if scale == .relative && mc == 0 { return uninformative(scale, .zeroControlMean) }
        if control.n == 0 || treatment.n == 0 { return uninformative(scale, .emptyGroup) }
        if !(control.variance > 0) || !(treatment.variance > 0) { return uninformative(scale, .nonPositiveVariance) }

        let (dataMean, dataVariance) = scale.estimate(control: control, treatment: treatment)

        return posterior(dataMean: dataMean, dataVariance: dataVariance, controlMean: mc, scale: scale, prior: prior,
                         inverse: inverse, alpha: alpha)
    }

    /// The posterior from an effect estimate already made (its mean and variance on `scale`), for
    /// estimates formed differently, such as a CUPED-adjusted difference over the unadjusted control
    /// mean. `controlMean` converts a prior given on the other scale.
    public static func posterior(
        dataMean: Double, dataVariance: Double, controlMean mc: Double, scale: DifferenceScale,
        prior: GaussianPrior? = nil, inverse: Bool = false, alpha: Double = 0.05
    ) -> BayesianEffect {
        let relative = scale == .relative
        if !(dataVariance > 0) || !dataVariance.isFinite { return uninformative(scale, .nonPositiveVariance) }
        var mean = dataMean
        var precision = 1 / dataVariance
        if let prior {
            var priorMean = prior.mean, priorVariance = prior.variance
            if prior.scale != scale {
                if relative {
                    priorMean /= abs(mc)
                    priorVariance /= mc * mc
                } else {
                    priorMean *= abs(mc)
                    priorVariance *= mc * mc
                }
            }
            precision += 1 / priorVariance
            mean = (dataMean / dataVariance + priorMean / priorVariance) / precision
        }
        let sd = (1 / precision).squareRoot()

        let z = mean / sd
        // E[max(X, 0)] and E[max(-X, 0)] for X ~ N(mean, sd^2); their difference is exactly mean.
        let gain = sd * positivePartMean(z)
        let loss = sd * positivePartMean(-z)
        let half = -Normal.quantile(0.5 * alpha) * sd
        return BayesianEffect(
            scale: scale, mean: mean, standardDeviation: sd,
            chanceToWin: inverse ? Normal.sf(z) : Normal.cdf(z),
            riskOfControl: inverse ? loss : gain,
            riskOfTreatment: inverse ? gain : loss,
            interval: ConfidenceInterval(lower: mean - half, upper: mean + half))
    }

    /// E[max(Z + t, 0)] for standard normal Z: t Phi(t) + phi(t).
    ///
    /// For t < 0 the two terms cancel to about phi(t) / t^2; Phi through erfc keeps relative
    /// accuracy, so the loss is about t^2 ulps (1e-13 at t = -37, where the value underflows).
    static func positivePartMean(_ t: Double) -> Double {
        let value = t * Normal.cdf(t) + Normal.pdf(t)
        return value > 0 ? value : 0
    }

    private static func uninformative(_ scale: DifferenceScale, _ issue: BayesianEffect.Issue) -> BayesianEffect {
        BayesianEffect(
            scale: scale, mean: 0, standardDeviation: 0, chanceToWin: 0.5, riskOfControl: 0, riskOfTreatment: 0,
            interval: ConfidenceInterval(lower: 0, upper: 0), issue: issue)
    }
}
