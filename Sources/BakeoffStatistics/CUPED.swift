/// Per-user sufficient statistics of a metric's post-exposure value y and its pre-experiment
/// value x (the covariate) for one arm: gbstats RegressionAdjustedStatistic with
/// SampleMeanStatistic parts.
///
/// Sums rather than raw values, so arms can be accumulated in one pass and merged. Users without
/// pre-experiment data should enter with x = 0 (as gbstats does).
public struct CUPEDMoments: Sendable, Equatable {
    /// Users.
    public var n: Double
    /// Post-exposure values y_i.
    public var post: SampleMoments
    /// Pre-experiment values x_i.
    public var pre: SampleMoments
    /// Sum of y_i * x_i.
    public var sumOfProducts: Double

    public init(n: Double, post: SampleMoments, pre: SampleMoments, sumOfProducts: Double) {
        self.n = n
        self.post = post
        self.pre = pre
        self.sumOfProducts = sumOfProducts
    }

    /// All zero.
    public init() {
        self.init(
            n: 0, post: SampleMoments(n: 0, sum: 0, sumOfSquares: 0), pre: SampleMoments(n: 0, sum: 0, sumOfSquares: 0),
            sumOfProducts: 0)
    }

    /// Adds one user with post-exposure value y and pre-experiment value x.
    public mutating func add(post y: Double, pre x: Double) {
        n += 1
        post.add(y)
        pre.add(x)
        sumOfProducts += y * x
    }

    /// Sample covariance of y and x: (sumOfProducts - sum y * sum x / n) / (n - 1); 0 when n <= 1.
    public var covariance: Double {
        if n <= 1 { return 0 }
        return (sumOfProducts - post.sum * pre.sum / n) / (n - 1)
    }

    /// The post-exposure metric alone: mean and variance of y (what the test sees without CUPED).
    public var unadjusted: GroupEstimate {
        GroupEstimate(mean: post.mean, variance: post.variance, n: n)
    }

    /// The regression-adjusted estimate for a given theta, exactly gbstats RegressionAdjustedStatistic:
    /// mean = mean y - theta mean x, variance = var y + theta^2 var x - 2 theta cov (0 when n <= 1).
    public func adjusted(theta: Double) -> GroupEstimate {
        let variance = n <= 1 ? 0 : post.variance + theta * theta * pre.variance - 2 * theta * covariance
        return GroupEstimate(mean: post.mean - theta * pre.mean, variance: variance, n: n)
    }

    /// The moments of two disjoint sets of users together.
    public static func += (lhs: inout CUPEDMoments, rhs: CUPEDMoments) {
        lhs.n += rhs.n
        lhs.post += rhs.post
        lhs.pre += rhs.pre
        lhs.sumOfProducts += rhs.sumOfProducts
    }
}

/// Both arms' regression-adjusted estimates under one pooled theta, and what the adjustment bought.
public struct CUPEDAdjustment: Sendable, Equatable {
    /// The pooled regression coefficient of y on x (0 means no adjustment).
    public var theta: Double
    /// Adjusted estimates: feed these to TTest.welch (absolute) or CUPED.welch (either scale).
    public var control: GroupEstimate
    public var treatment: GroupEstimate
    /// Post-only estimates, for the unadjusted comparison.
    public var unadjustedControl: GroupEstimate
    public var unadjustedTreatment: GroupEstimate

    public init(
        theta: Double, control: GroupEstimate, treatment: GroupEstimate, unadjustedControl: GroupEstimate,
        unadjustedTreatment: GroupEstimate
    ) {
        self.theta = theta
        self.control = control
        self.treatment = treatment
        self.unadjustedControl = unadjustedControl
        self.unadjustedTreatment = unadjustedTreatment
    }

    /// 1 - adjusted variance / unadjusted variance of the control arm's per-user values.
    public var controlVarianceReduction: Double {
        1 - control.variance / unadjustedControl.variance
    }

    /// 1 - adjusted variance / unadjusted variance of the treatment arm's per-user values.
    public var treatmentVarianceReduction: Double {
        1 - treatment.variance / unadjustedTreatment.variance
    }

    /// 1 - Var(adjusted difference) / Var(unadjusted difference), for the absolute difference of
    /// means, Var = var_t / n_t + var_c / n_c. About rho^2 when x and y have correlation rho in both arms.
    ///
    /// (For the relative scale gbstats divides both by the same unadjusted control mean, so the
    /// reduction is the same up to the treatment-mean factor in the delta method.)
    public var varianceReduction: Double {
        let adjusted = treatment.variance / treatment.n + control.variance / control.n
        let unadjusted = unadjustedTreatment.variance / unadjustedTreatment.n + unadjustedControl.variance / unadjustedControl.n
        return 1 - adjusted / unadjusted
    }
}

/// CUPED (Deng et al. 2013) variance reduction with a pre-experiment covariate, as gbstats'
/// RegressionAdjustedStatistic under TwoSidedTTest.
public enum CUPED {
    /// gbstats compute_theta: cov(y, x) / var(x) over both arms' users pooled into one sample
    /// (the total, not the within-arm, covariance), or 0 when the pooled x or y has zero variance.
    public static func theta(control: CUPEDMoments, treatment: CUPEDMoments) -> Double {
        var joint = control
        joint += treatment
        let n = joint.n
        // Unclamped, as gbstats SampleMeanStatistic.variance, so the zero test is the same.
        let preVariance = n <= 1 ? 0 : (joint.pre.sumOfSquares - joint.pre.sum * joint.pre.sum / n) / (n - 1)
        let postVariance = n <= 1 ? 0 : (joint.post.sumOfSquares - joint.post.sum * joint.post.sum / n) / (n - 1)
        if preVariance == 0 || postVariance == 0 { return 0 }
        return joint.covariance / preVariance
    }

    /// Both arms adjusted with the pooled theta.
    public static func adjust(control: CUPEDMoments, treatment: CUPEDMoments) -> CUPEDAdjustment {
        let theta = theta(control: control, treatment: treatment)
        return CUPEDAdjustment(
            theta: theta, control: control.adjusted(theta: theta), treatment: treatment.adjusted(theta: theta),
            unadjustedControl: control.unadjusted, unadjustedTreatment: treatment.unadjusted)
    }

    /// Welch's test on the adjusted estimates, exactly gbstats TwoSidedTTest on
    /// RegressionAdjustedStatistic (test value 0).
    ///
    /// Absolute: TTest.welch(control: adjustment.control, treatment: adjustment.treatment).
    /// Relative: difference (adjusted mean_t - adjusted mean_c) / unadjusted mean_c, with the
    /// delta-method variance var_t / (m_c^2 n_t) + var_c m_t^2 / (m_c^4 n_c) from the adjusted
    /// variances and the unadjusted means m; df is Welch–Satterthwaite from the adjusted variances
    /// in both cases. `difference` is then the relative lift. A zero unadjusted control mean or
    /// zero variance gives NaN or infinite fields (gbstats reports its default result instead).
    public static func welch(_ adjustment: CUPEDAdjustment, alpha: Double, scale: DifferenceScale) -> DifferenceTest {
        let absolute = TTest.welch(control: adjustment.control, treatment: adjustment.treatment, alpha: alpha)
        guard scale == .relative else { return absolute }
        let c = adjustment.control, t = adjustment.treatment
        let ma = adjustment.unadjustedControl.mean, mb = adjustment.unadjustedTreatment.mean
        // gbstats frequentist_diff / frequentist_variance, term for term.
        let difference = (t.mean - c.mean) / ma
        let variance = DifferenceScale.relativeVariance(controlMean: ma, treatmentMean: mb, varianceOfControlMean: c.variance / c.n,
                                                        varianceOfTreatmentMean: t.variance / t.n)
        return TTest.make(difference: difference, standardError: variance.squareRoot(), df: absolute.degreesOfFreedom, alpha: alpha)
    }

    /// adjust then welch: the CUPED-adjusted test of treatment versus control.
    public static func test(
        control: CUPEDMoments, treatment: CUPEDMoments, alpha: Double, scale: DifferenceScale
    ) -> (adjustment: CUPEDAdjustment, test: DifferenceTest) {
        let adjustment = adjust(control: control, treatment: treatment)
        return (adjustment, welch(adjustment, alpha: alpha, scale: scale))
    }
}
