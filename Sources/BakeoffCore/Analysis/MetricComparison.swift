import BakeoffStatistics

/// One metric's test of one treatment against control, at a given alpha: the plan's method, CUPED when
/// pre-experiment data exist, the Bayesian view, the guardrail margin and the optional rank test.
///
/// Pure: sums in, numbers out. `Analysis.run` calls it once at the plan's alpha and again at the
/// corrected per-test alpha for the intervals.
enum MetricComparison {
    static func compare(_ data: MetricData, _ c: Int, _ t: Int, treatment: String, plan: AnalysisPlan, alpha: Double) -> MetricResult {
        let rc = data.perVariant[c], rt = data.perVariant[t]
        let uc = data.unitMoments[c], ut = data.unitMoments[t]
        // From events the unit moments hold every unit; from per-user sums (--summary) the ratio moments do.
        func summary(_ u: SampleMoments, _ r: RatioMoments) -> GroupSummary {
            if u.n > 0 { return GroupSummary(mean: u.sum / u.n, users: Int(r.n), units: u.n) }
            return GroupSummary(mean: r.denominator.sum > 0 ? r.mean : nil, users: Int(r.n), units: r.denominator.sum)
        }
        let controlGroup = summary(uc, rc)
        let treatmentGroup = summary(ut, rt)
        var result = MetricResult(metric: data.metric, treatment: treatment, control: controlGroup, treatmentGroup: treatmentGroup,
                                  significant: false, verdict: .none, intervalAlpha: alpha)
        if let a = controlGroup.mean, let b = treatmentGroup.mean {
            result.absoluteDifference = b - a
            if a != 0 { result.relativeLift = b / a - 1 }
        }

        var ec: GroupEstimate, et: GroupEstimate
        let minimum: Double
        switch plan.unit {
        case .user:
            ec = rc.estimate
            et = rt.estimate
            minimum = min(rc.n, rt.n)
        case .event:
            ec = GroupEstimate(mean: uc.mean, variance: uc.variance, n: uc.n)
            et = GroupEstimate(mean: ut.mean, variance: ut.variance, n: ut.n)
            minimum = min(uc.n, ut.n)
        }
        if data.metric.rankTest == .mannWhitney, let ordinal = data.ordinal,
           ordinal.counts[c].reduce(0, +) > 0, ordinal.counts[t].reduce(0, +) > 0 {
            // x = treatment, so the probability of superiority reads P(treatment > control).
            result.rankTest = MannWhitney.test(xCounts: ordinal.counts[t], yCounts: ordinal.counts[c], alternative: .twoSided)
        }
        guard minimum >= 2 else {
            result.note = minimum == 0 ? "no data in \(controlGroup.users == 0 ? "control" : "treatment")"
                : "needs at least 2 \(plan.unit == .user ? "users" : "units") per variant"
            return result
        }
        // A ratio's delta-method variance of constant data is rounding noise, not zero: treat it as zero.
        func cleaned(_ g: GroupEstimate) -> GroupEstimate {
            var g = g
            if g.variance <= 1e-12 * g.mean * g.mean { g.variance = 0 }
            return g
        }
        ec = cleaned(ec)
        et = cleaned(et)
        // CUPED: the same metric before the experiment, with a theta pooled over both arms.
        var cuped: CUPEDAdjustment?
        if plan.unit == .user, data.metric.varianceReduction, let covariates = data.covariates,
           covariates[c].n >= 2, covariates[t].n >= 2 {
            let adjustment = RatioCUPED.adjust(control: covariates[c], treatment: covariates[t])
            if adjustment.theta != 0, adjustment.control.variance + adjustment.treatment.variance > 0,
               adjustment.control.variance.isFinite, adjustment.treatment.variance.isFinite {
                cuped = adjustment
                ec = adjustment.control
                et = adjustment.treatment
                result.varianceReduction = VarianceReductionSummary(theta: adjustment.theta, reduction: adjustment.varianceReduction)
                result.absoluteDifference = et.mean - ec.mean
                let ma = adjustment.unadjustedControl.mean
                result.relativeLift = ma != 0 ? (et.mean - ec.mean) / ma : nil
            }
        }
        result.controlVariance = ec.variance
        result.treatmentVariance = et.variance
        guard ec.variance.isFinite, et.variance.isFinite, ec.variance + et.variance > 0 else {
            result.note = "no variation within either variant (every user has the same value), so no test applies"
            if ec.mean == et.mean {
                result.pValue = 1
                result.absoluteInterval = ConfidenceInterval(lower: 0, upper: 0)
                if result.relativeLift != nil { result.relativeInterval = .bounded(lower: 0, upper: 0) }
                result.note = nil
            }
            return result
        }

        let difference: Double
        switch plan.method {
        case .fixed:
            let test = plan.unit == .user
                ? TTest.welch(control: ec, treatment: et, alpha: alpha)
                : TTest.student(control: ec, treatment: et, alpha: alpha)
            difference = test.difference
            result.pValue = test.pValue
            result.standardError = test.standardError
            result.degreesOfFreedom = test.degreesOfFreedom
            result.absoluteInterval = test.interval
            if let cuped, result.relativeLift != nil {
                // gbstats' CUPED lift: adjusted difference over the unadjusted control mean, delta method.
                let relative = CUPED.welch(cuped, alpha: alpha, scale: .relative)
                result.relativeInterval = .bounded(lower: relative.interval.lower, upper: relative.interval.upper)
            } else if result.relativeLift != nil {
                let varianceOfMean: (GroupEstimate) -> Double
                if plan.unit == .event {
                    // Student's test pools the variance; Fieller uses the same pooled standard error split by group.
                    let pooled = ((ec.n - 1) * ec.variance + (et.n - 1) * et.variance) / (ec.n + et.n - 2)
                    varianceOfMean = { pooled / $0.n }
                } else {
                    varianceOfMean = { $0.variance / $0.n }
                }
                result.relativeInterval = fiellerLift(treatment: et, control: ec, criticalValue: test.criticalValue,
                                                      varianceOfMean: varianceOfMean)
            }
        case .groupSequential where plan.monitoring != nil:
            let m = plan.monitoring!
            let (d, variance) = DifferenceScale.absolute.estimate(control: ec, treatment: et)
            let se = variance.squareRoot()
            let c = m.boundary(alpha: alpha)
            difference = d
            result.pValue = m.design.repeatedPValue(z: d / se, looks: m.looks)
            result.standardError = se
            result.absoluteInterval = ConfidenceInterval(lower: d - c * se, upper: d + c * se)
            if let cuped, result.relativeLift != nil {
                let relative = CUPED.welch(cuped, alpha: alpha, scale: .relative)
                result.relativeInterval = .bounded(lower: relative.difference - c * relative.standardError,
                                                   upper: relative.difference + c * relative.standardError)
            } else if result.relativeLift != nil {
                // Fieller's set with the boundary as multiplier: it excludes 0 exactly when the boundary is crossed.
                result.relativeInterval = fiellerLift(treatment: et, control: ec, criticalValue: c)
            }
            if (result.pValue ?? 1) < alpha, !m.isFinal, data.metric.name == plan.primaryMetric {
                // The primary metric's only: the decision stops on it, and each estimate costs a search.
                // Stopped early at a crossing: the estimate is biased away from zero.
                let unbiased = m.design(alpha: alpha).medianUnbiasedZ(z: d / se, looks: m.looks) * se
                let base = cuped?.unadjustedControl.mean ?? ec.mean
                result.biasAdjusted = BiasAdjustedEstimate(difference: unbiased, relative: base != 0 ? unbiased / base : nil)
            }
        case .sequential, .groupSequential, .auto:
            let test = SequentialTest.twoSided(control: ec, treatment: et, alpha: alpha, scale: .absolute,
                                               tuningParameter: plan.sequentialTuning, tuningAlpha: plan.alpha)
            difference = test.difference
            result.pValue = test.pValue
            result.standardError = test.standardError
            result.absoluteInterval = test.interval
            if let cuped, result.relativeLift != nil {
                let fixed = CUPED.welch(cuped, alpha: alpha, scale: .relative)
                let relative = SequentialTest.fromEstimate(difference: fixed.difference, variance: fixed.standardError * fixed.standardError,
                                                           scale: .relative, n: ec.n + et.n, alpha: alpha,
                                                           tuningParameter: plan.sequentialTuning, tuningAlpha: plan.alpha)
                result.relativeInterval = .bounded(lower: relative.interval.lower, upper: relative.interval.upper)
            } else if result.relativeLift != nil {
                // Fieller's set with the sequence's multiplier: it excludes 0 exactly when the sequence does.
                result.relativeInterval = fiellerLift(treatment: et, control: ec, criticalValue: test.criticalValue)
            }
        }
        result.significant = (result.pValue ?? 1) < alpha
        result.verdict = verdict(significant: result.significant, up: difference > 0, goal: data.metric.goal)
        if ec.mean != 0 {
            // A posterior needs no multiplicity correction: the credible interval is at the plan's alpha.
            if let cuped {
                // As the lift: the adjusted difference over the unadjusted control mean.
                let relative = CUPED.welch(cuped, alpha: plan.alpha, scale: .relative)
                result.bayesian = BayesianEffectTest.posterior(
                    dataMean: relative.difference, dataVariance: relative.standardError * relative.standardError,
                    controlMean: cuped.unadjustedControl.mean, scale: .relative, prior: plan.prior,
                    inverse: data.metric.goal == .down, alpha: plan.alpha)
            } else {
                result.bayesian = BayesianEffectTest.compute(control: ec, treatment: et, scale: .relative, prior: plan.prior,
                                                             inverse: data.metric.goal == .down, alpha: plan.alpha)
            }
        }
        if data.metric.role == .guardrail, let margin = data.metric.margin, data.metric.goal != .none,
           !(margin.isRelative && ec.mean == 0) {
            var test = NonInferiority.welch(control: ec, treatment: et, margin: margin.value,
                                            scale: margin.isRelative ? .relative : .absolute,
                                            direction: data.metric.goal == .down ? .higherIsWorse : .lowerIsWorse, alpha: alpha)
            if let cuped, margin.isRelative {
                // With CUPED the relative change is over the unadjusted control mean, as the reported lift.
                let relative = CUPED.welch(cuped, alpha: alpha, scale: .relative)
                test = NonInferiority.oneSided(difference: relative.difference, standardError: relative.standardError,
                                               degreesOfFreedom: relative.degreesOfFreedom, margin: margin.value, scale: .relative,
                                               direction: test.direction, alpha: alpha)
            }
            if plan.method == .groupSequential, let m = plan.monitoring {
                result.guardrail = groupSequentialGuardrail(margin: margin, estimate: test.difference, standardError: test.standardError,
                                                            significantlyWorse: result.verdict == .worse, goal: data.metric.goal,
                                                            plan: plan, monitoring: m)
            } else if plan.method.isSequential {
                result.guardrail = sequentialGuardrail(margin: margin, estimate: test.difference,
                                                       variance: test.standardError * test.standardError, n: ec.n + et.n,
                                                       significantlyWorse: result.verdict == .worse, goal: data.metric.goal, plan: plan)
            } else {
                result.guardrail = guardrailCheck(margin: margin, estimate: test.difference, bound: test.bound,
                                                  pValue: test.pValue, nonInferior: test.isNonInferior,
                                                  significantlyWorse: result.verdict == .worse, goal: data.metric.goal)
            }
        }
        return result
    }

    /// A quantile metric's test: difference and relative change of the quantile, clustered by user.
    static func compareQuantile(_ data: MetricData, _ c: Int, _ t: Int, treatment: String, plan: AnalysisPlan, alpha: Double) -> QuantileResult {
        var result = QuantileResult(metric: data.metric, treatment: treatment,
                                    control: data.quantiles?[c] ?? nil, treatmentValue: data.quantiles?[t] ?? nil,
                                    controlCount: data.quantileCounts?[c] ?? 0, treatmentCount: data.quantileCounts?[t] ?? 0,
                                    intervalAlpha: alpha)
        guard let estimates = data.quantileEstimates, let ec = estimates[c], let et = estimates[t] else { return result }
        result.control = ec.quantile
        result.treatmentValue = et.quantile
        result.controlCount = Int(ec.n)
        result.treatmentCount = Int(et.n)
        guard ec.n >= 2, et.n >= 2, !ec.isDegenerate, !et.isDegenerate else {
            result.note = "too few requests for a test of the quantile"
            return result
        }
        let absolute = QuantileTest.difference(control: ec, treatment: et, alpha: alpha)
        let relative = ec.quantile > 0 ? QuantileTest.relativeChange(control: ec, treatment: et, alpha: alpha) : nil
        guard absolute.standardError.isFinite, absolute.standardError > 0 else {
            result.note = "no variation around the quantile, so no test applies"
            return result
        }
        result.differenceError = absolute.standardError
        result.relativeError = relative?.standardError
        switch plan.method {
        case .fixed:
            result.pValue = absolute.pValue
            result.absoluteInterval = absolute.interval
            result.relativeInterval = relative?.interval
        case .groupSequential where plan.monitoring != nil:
            let m = plan.monitoring!
            let c = m.boundary(alpha: alpha)
            result.pValue = m.design.repeatedPValue(z: absolute.difference / absolute.standardError, looks: m.looks)
            result.absoluteInterval = ConfidenceInterval(lower: absolute.difference - c * absolute.standardError,
                                                         upper: absolute.difference + c * absolute.standardError)
            result.relativeInterval = relative.map {
                ConfidenceInterval(lower: $0.difference - c * $0.standardError, upper: $0.difference + c * $0.standardError)
            }
        case .sequential, .groupSequential, .auto:
            // The sequence needs per-user variances: Var(quantile) times the users behind it.
            let gc = GroupEstimate(mean: ec.quantile, variance: ec.variance * ec.users, n: ec.users)
            let gt = GroupEstimate(mean: et.quantile, variance: et.variance * et.users, n: et.users)
            let s = SequentialTest.twoSided(control: gc, treatment: gt, alpha: alpha, scale: .absolute, tuningParameter: plan.sequentialTuning, tuningAlpha: plan.alpha)
            result.pValue = s.pValue
            result.absoluteInterval = s.interval
            if relative != nil {
                result.relativeInterval = SequentialTest.twoSided(control: gc, treatment: gt, alpha: alpha, scale: .relative,
                                                                  tuningParameter: plan.sequentialTuning, tuningAlpha: plan.alpha).interval
            }
        }
        result.significant = (result.pValue ?? 1) < alpha
        result.verdict = verdict(significant: result.significant, up: absolute.difference > 0, goal: data.metric.goal)
        if data.metric.role == .guardrail, let margin = data.metric.margin, data.metric.goal != .none {
            let test = margin.isRelative ? relative : absolute
            if let test, plan.method == .groupSequential, let m = plan.monitoring {
                result.guardrail = groupSequentialGuardrail(margin: margin, estimate: test.difference, standardError: test.standardError,
                                                            significantlyWorse: result.verdict == .worse, goal: data.metric.goal,
                                                            plan: plan, monitoring: m)
            } else if let test, plan.method.isSequential {
                result.guardrail = sequentialGuardrail(margin: margin, estimate: test.difference,
                                                       variance: test.standardError * test.standardError, n: ec.users + et.users,
                                                       significantlyWorse: result.verdict == .worse, goal: data.metric.goal, plan: plan)
            } else if let test {
                // One-sided normal test of H0: harm >= margin.
                let harmful = data.metric.goal == .down
                let boundary = harmful ? margin.value : -margin.value
                let z = -Normal.quantile(alpha)
                let bound = harmful ? test.difference + z * test.standardError : test.difference - z * test.standardError
                let statistic = (test.difference - boundary) / test.standardError
                let p = harmful ? Normal.cdf(statistic) : Normal.sf(statistic)
                result.guardrail = guardrailCheck(margin: margin, estimate: test.difference, bound: bound, pValue: p,
                                                  nonInferior: p < alpha, significantlyWorse: result.verdict == .worse,
                                                  goal: data.metric.goal)
            }
        }
        return result
    }

    /// The always-valid non-inferiority check: the one-sided bound of the confidence sequence at level
    /// 2 alpha (rho tuned at the plan's alpha), and half the sequential p-value of estimate − boundary when
    /// the estimate lies on the harmless side, so that p < alpha exactly when the bound is inside the margin.
    static func sequentialGuardrail(margin: GuardrailMargin, estimate: Double, variance: Double, n: Double,
                                    significantlyWorse: Bool, goal: Goal, plan: AnalysisPlan) -> GuardrailCheck {
        let higherIsWorse = goal == .down
        let boundary = higherIsWorse ? margin.value : -margin.value
        let shifted = SequentialTest.fromEstimate(difference: estimate - boundary, variance: variance, scale: .absolute, n: n,
                                                  alpha: min(2 * plan.alpha, 0.999), tuningParameter: plan.sequentialTuning,
                                                  tuningAlpha: plan.alpha)
        let half = shifted.interval.upper - shifted.difference
        let bound = higherIsWorse ? estimate + half : estimate - half
        let harmlessSide = higherIsWorse ? estimate < boundary : estimate > boundary
        let p = harmlessSide ? shifted.pValue / 2 : 1 - shifted.pValue / 2
        return guardrailCheck(margin: margin, estimate: estimate, bound: bound, pValue: p, nonInferior: p < plan.alpha,
                              significantlyWorse: significantlyWorse, goal: goal)
    }

    /// The group-sequential non-inferiority check: the one-sided design at the plan's alpha (spending as the plan's)
    /// over the same looks; the repeated p-value of the distance from the margin is below alpha exactly when the
    /// one-sided bound is inside the margin.
    static func groupSequentialGuardrail(margin: GuardrailMargin, estimate: Double, standardError: Double, significantlyWorse: Bool,
                                         goal: Goal, plan: AnalysisPlan, monitoring m: GroupSequentialMonitoring) -> GuardrailCheck {
        let higherIsWorse = goal == .down
        let boundary = higherIsWorse ? margin.value : -margin.value
        let oneSided = m.design(alpha: plan.alpha, twoSided: false)
        let c = oneSided.currentBoundary(m.looks)
        let harmless = (higherIsWorse ? boundary - estimate : estimate - boundary) / standardError
        let p = oneSided.repeatedPValue(z: harmless, looks: m.looks)
        let bound = higherIsWorse ? estimate + c * standardError : estimate - c * standardError
        return guardrailCheck(margin: margin, estimate: estimate, bound: bound, pValue: p, nonInferior: p < plan.alpha,
                              significantlyWorse: significantlyWorse, goal: goal)
    }

    /// Fieller's confidence set for treatment / control - 1 at the given critical value.
    static func fiellerLift(treatment et: GroupEstimate, control ec: GroupEstimate, criticalValue: Double,
                            varianceOfMean: (GroupEstimate) -> Double = { $0.variance / $0.n }) -> RelativeInterval {
        switch Fieller.ratioSet(treatmentMean: et.mean, varianceOfTreatmentMean: varianceOfMean(et),
                                controlMean: ec.mean, varianceOfControlMean: varianceOfMean(ec), criticalValue: criticalValue) {
        case .bounded(let ci): return .bounded(lower: ci.lower - 1, upper: ci.upper - 1)
        case .exclusive(let lo, let hi): return .exclusive(below: lo - 1, above: hi - 1)
        case .unbounded: return .unbounded
        }
    }

    static func verdict(significant: Bool, up: Bool, goal: Goal) -> Verdict {
        guard significant else { return .none }
        switch goal {
        case .up: return up ? .better : .worse
        case .down: return up ? .worse : .better
        case .none: return .changed
        }
    }

    static func guardrailCheck(margin: GuardrailMargin, estimate: Double, bound: Double, pValue: Double, nonInferior: Bool,
                               significantlyWorse: Bool, goal: Goal) -> GuardrailCheck {
        let harm = goal == .down ? estimate : -estimate
        let status: GuardrailCheck.Status
        if nonInferior { status = .withinMargin } else if significantlyWorse && harm > margin.value { status = .beyondMargin } else { status = .unclear }
        return GuardrailCheck(margin: margin, bound: bound, estimate: estimate, pValue: pValue, status: status)
    }
}
