/// CUPED for ratio metrics (Σm / Σd over users, e.g. completed conversations / conversations) with the
/// same metric before the experiment (Σmp / Σdp) as the covariate.
///
/// The method of GrowthBook's RegressionAdjustedRatioStatistic (gbstats after 0.8.0; 0.8.0 has no ratio
/// adjustment): each ratio is linearized per user by the delta method, u_i = (m_i − R d_i) / mean(d) for
/// the post ratio R = Σm/Σd and v_i = (mp_i − Rp dp_i) / mean(dp) for the pre ratio Rp = Σmp/Σdp, so
/// Var(R) ≈ var(u) / n, Var(Rp) ≈ var(v) / n and Cov(R, Rp) ≈ cov(u, v) / n. Each arm's adjusted estimate
/// is R − θ Rp with per-user variance var(u) + θ² var(v) − 2θ cov(u, v).
///
/// θ = cov(u, v) / var(v) with both arms' users pooled into one sample (the ratios R and Rp and the means
/// of the pooled sample), exactly as gbstats compute_theta pools the users for mean metrics, so that with
/// d_i = dp_i = 1 everything equals `CUPED` on the same values. (GrowthBook's ratio version instead sums
/// the within-arm covariances and variances; the two agree up to the between-arm term, which is
/// O(1/n) under randomization.)
public enum RatioCUPED {
    /// Relative size below which a pooled variance counts as zero: what is left of constant data after the
    /// cancellation in (Σx² − (Σx)²/n), far above rounding noise and far below any real spread.
    static let negligibleVariance = 1e-9

    /// Pooled θ = cov(u, v) / var(v) over both arms' users, or 0 when it is undefined: fewer than two users,
    /// an arm without post or pre units (Σd = 0 or Σdp = 0: a pre ratio missing in one arm would bias the
    /// adjusted difference), or a pooled pre or post ratio with (numerically) zero variance.
    public static func theta(control: RatioCUPEDMoments, treatment: RatioCUPEDMoments) -> Double {
        for arm in [control, treatment] where arm.denominator.sum == 0 || arm.preDenominator.sum == 0 { return 0 }
        var joint = control
        joint += treatment
        guard joint.n > 1 else { return 0 }
        let pre = joint.pre, post = joint.post
        let preVariance = pre.variance
        if isNegligible(preVariance, of: pre) || isNegligible(post.variance, of: post) { return 0 }
        return joint.postPreCovariance / preVariance
    }

    /// Both arms adjusted with the pooled θ: GroupEstimate(mean: R − θ Rp, variance: var(u) + θ² var(v) −
    /// 2θ cov(u, v), n); the unadjusted estimates are the post ratios alone.
    public static func adjust(control: RatioCUPEDMoments, treatment: RatioCUPEDMoments) -> CUPEDAdjustment {
        let theta = theta(control: control, treatment: treatment)
        return CUPEDAdjustment(
            theta: theta, control: control.adjusted(theta: theta), treatment: treatment.adjusted(theta: theta),
            unadjustedControl: control.unadjusted, unadjustedTreatment: treatment.unadjusted)
    }

    /// adjust then CUPED.welch: the adjusted test of treatment versus control on either scale.
    public static func test(
        control: RatioCUPEDMoments, treatment: RatioCUPEDMoments, alpha: Double, scale: DifferenceScale
    ) -> (adjustment: CUPEDAdjustment, test: DifferenceTest) {
        let adjustment = adjust(control: control, treatment: treatment)
        return (adjustment, CUPED.welch(adjustment, alpha: alpha, scale: scale))
    }

    /// Whether a delta-method variance is rounding noise: below `negligibleVariance` times the size of
    /// the terms that cancel in it.
    static func isNegligible(_ variance: Double, of ratio: RatioMoments) -> Bool {
        let muD = ratio.denominator.mean
        if !(ratio.n > 1) || muD == 0 { return true }
        let r = ratio.mean
        let terms = (ratio.numerator.sumOfSquares + 2 * abs(r * ratio.sumOfProducts) + r * r * ratio.denominator.sumOfSquares)
            / ((ratio.n - 1) * muD * muD)
        return !(variance > negligibleVariance * terms)
    }
}

extension RatioCUPEDMoments {
    /// Per-user delta-method covariance of the post and pre ratios, cov(u, v) with
    /// u = (m − R d) / mean(d) and v = (mp − Rp dp) / mean(dp); 0 when n ≤ 1 or a denominator mean is 0.
    public var postPreCovariance: Double {
        let muD = denominator.mean, muDp = preDenominator.mean
        if n <= 1 || muD == 0 || muDp == 0 { return 0 }
        let r = post.mean, rp = pre.mean
        func covariance(_ sumOfProducts: Double, _ a: SampleMoments, _ b: SampleMoments) -> Double {
            (sumOfProducts - a.sum * b.sum / n) / (n - 1)
        }
        let mMp = covariance(numeratorPreNumerator, numerator, preNumerator)
        let mDp = covariance(numeratorPreDenominator, numerator, preDenominator)
        let dMp = covariance(denominatorPreNumerator, denominator, preNumerator)
        let dDp = covariance(denominatorPreDenominator, denominator, preDenominator)
        return (mMp - rp * mDp - r * dMp + r * rp * dDp) / (muD * muDp)
    }

    /// The post ratio alone: mean Σm/Σd and its per-user delta-method variance.
    public var unadjusted: GroupEstimate { post.estimate }

    /// The regression-adjusted estimate for a given θ: mean R − θ Rp, per-user variance
    /// var(u) + θ² var(v) − 2θ cov(u, v) (0 when n ≤ 1), as CUPEDMoments.adjusted for means.
    public func adjusted(theta: Double) -> GroupEstimate {
        let ratio = post, preRatio = pre
        let variance = n <= 1 ? 0 : ratio.variance + theta * theta * preRatio.variance - 2 * theta * postPreCovariance
        return GroupEstimate(mean: ratio.mean - theta * preRatio.mean, variance: variance, n: n)
    }
}
