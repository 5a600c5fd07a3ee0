import BakeoffStatistics

/// Which units the test treats as independent.
public enum AnalysisUnit: String, Sendable, CaseIterable {
    /// Users (the randomization unit): ratio of per-user sums, delta method, Welch's t. The default.
    case user
    /// Every conversation or request as an independent sample, Student's t: the seed's naive test, kept
    /// for comparison; it overstates significance when users have several units.
    case event
}

/// How to analyse: the plan fixed before looking at the data.
public struct AnalysisPlan: Sendable {
    public var alpha: Double = 0.05
    public var power: Double = 0.8
    /// The control variant; default "control" when present, else the first arm of the allocation.
    public var control: String?
    /// The expected split, for the sample-ratio check.
    public var allocation: Allocation?
    public var unit: AnalysisUnit = .user
    /// The primary metric's name; default the metric whose role is primary.
    public var primaryMetric: String?
    /// The smallest difference of the primary metric worth detecting, absolute or relative to control.
    public var minimumDetectableEffect: Double?
    public var minimumDetectableEffectIsRelative = false

    public init() {}
}

/// A plan or data problem that makes an analysis impossible.
public struct AnalysisError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One variant's side of a metric.
public struct GroupSummary: Sendable, Equatable {
    /// Nil when the variant has no units for the metric.
    public var mean: Double?
    public var users: Int
    public var units: Double
}

/// Fieller's confidence set for the relative lift (treatment / control - 1).
public enum RelativeInterval: Sendable, Equatable {
    case bounded(lower: Double, upper: Double)
    /// Everything outside (lower, upper): the control mean is not significantly different from zero.
    case exclusive(below: Double, above: Double)
    case unbounded
}

/// Which way a significant change went, judged by the metric's goal.
public enum Verdict: String, Sendable {
    case better, worse, changed, none
}

/// One metric, one treatment against control.
public struct MetricResult: Sendable {
    public var metric: Metric
    public var treatment: String
    public var control: GroupSummary
    public var treatmentGroup: GroupSummary
    public var absoluteDifference: Double?
    public var absoluteInterval: ConfidenceInterval?
    public var relativeLift: Double?
    public var relativeInterval: RelativeInterval?
    public var pValue: Double?
    public var standardError: Double?
    public var degreesOfFreedom: Double?
    public var significant: Bool
    public var verdict: Verdict
    /// Why a number is missing (too few users, no variance, ...).
    public var note: String?
    /// Per-user variances of the two means (delta method), for power.
    var controlVariance: Double?
    var treatmentVariance: Double?
}

/// The chi-square check of users per variant against the planned split.
public struct SampleRatioCheck: Sendable {
    public enum Status: String, Sendable { case ok, mismatch, notRun = "not_run" }
    public var status: Status
    public var pValue: Double?
    public var statistic: Double?
    public var observed: [NamedCount]
    public var expectedShares: [Double]
    public var reason: String?
    public static let threshold = 0.001
}

/// What to do with the experiment.
public enum DecisionAction: String, Sendable {
    case ship
    case rollBack = "roll_back"
    case keepRunning = "keep_running"
}

/// The decision for one treatment, with the reason in one sentence.
public struct Decision: Sendable {
    public var action: DecisionAction
    public var treatment: String
    public var reason: String
    /// For keep running: more users the experiment needs for the planned power on the primary metric.
    public var additionalUsers: Int?
    /// ... and the days that takes at the observed rate of new users.
    public var additionalDays: Double?
}

/// The full analysis of an experiment: what every output format prints.
public struct Report: Sendable {
    public var experiment: String
    public var alpha: Double
    public var unit: AnalysisUnit
    public var control: String
    public var variants: [VariantData]
    public var sampleRatio: SampleRatioCheck
    public var results: [MetricResult]
    public var quantiles: [QuantileResult]
    public var decisions: [Decision]
    public var primaryMetric: String
    public var requestEvents: Int
    public var feedbackEvents: Int
    public var firstTimestamp: Int64?
    public var lastTimestamp: Int64?
    public var dataQuality: DataQuality
    public var warnings: [String]

    /// The overall decision: the one treatment's, or for several treatments ship the best shippable one.
    public var decision: Decision {
        if decisions.count == 1 { return decisions[0] }
        if let best = decisions.filter({ $0.action == .ship }).max(by: { liftOfPrimary($0.treatment) < liftOfPrimary($1.treatment) }) {
            return best
        }
        if !decisions.isEmpty && decisions.allSatisfy({ $0.action == .rollBack }) {
            return Decision(action: .rollBack, treatment: decisions.map(\.treatment).joined(separator: ", "),
                            reason: "every treatment is worse than control on the primary metric or a guardrail")
        }
        if let keep = decisions.first(where: { $0.action == .keepRunning }) { return keep }
        return Decision(action: .keepRunning, treatment: "", reason: "there is nothing to compare yet")
    }

    /// The primary metric's improvement for a treatment: its difference signed so that better is larger.
    private func liftOfPrimary(_ treatment: String) -> Double {
        guard let r = results.first(where: { $0.metric.name == primaryMetric && $0.treatment == treatment }) else { return 0 }
        let d = r.absoluteDifference ?? 0
        return r.metric.goal == .down ? -d : d
    }
}

/// A quantile metric per variant with its relative change (no test yet).
public struct QuantileResult: Sendable {
    public var metric: Metric
    public var treatment: String
    public var control: Double?
    public var treatmentValue: Double?
    public var controlCount: Int
    public var treatmentCount: Int
    public var relativeChange: Double? {
        guard let c = control, let t = treatmentValue, c > 0 else { return nil }
        return t / c - 1
    }
}

/// Turns per-variant sums into the report: tests, intervals, sample-ratio check, decision.
///
/// Pure: it takes `ExperimentData` and a plan and returns values.
public enum Analysis {
    public static func run(_ data: ExperimentData, plan: AnalysisPlan) throws(AnalysisError) -> Report {
        guard data.requestEvents > 0 else {
            throw AnalysisError("experiment \"\(data.experiment)\" has no request events, so no user is assigned to a variant")
        }
        guard plan.alpha > 0 && plan.alpha < 1 else { throw AnalysisError("alpha must be between 0 and 1, got \(plan.alpha)") }
        guard plan.power > 0 && plan.power < 1 else { throw AnalysisError("power must be between 0 and 1, got \(plan.power)") }
        let names = data.variants.map(\.name)
        let control = try chooseControl(names, plan)
        guard let controlIndex = names.firstIndex(of: control) else {
            throw AnalysisError("control variant \"\(control)\" does not appear in the data (variants: \(names.joined(separator: ", ")))")
        }
        var order = plan.allocation?.names.filter { names.contains($0) && $0 != control } ?? []
        order += names.filter { $0 != control && !order.contains($0) }.sorted()
        let treatments = order.map { names.firstIndex(of: $0)! }

        var warnings: [String] = []
        let srm = sampleRatio(data, plan.allocation, order: [controlIndex] + treatments)
        if srm.status == .mismatch {
            warnings.append("SAMPLE RATIO MISMATCH: users per variant do not match the planned split (\(formatPEquals(srm.pValue ?? 0))). Assignment or logging is broken; do not trust these results until it is explained.")
        }
        if treatments.isEmpty {
            warnings.append("Only one variant (\(control)) is in the data: there is nothing to compare.")
        }
        if data.dataQuality.conversationsOfSeveralUsers > 0 {
            warnings.append("\(data.dataQuality.conversationsOfSeveralUsers) conversation ids are used by more than one user; conversation ids must be unique across users (each such conversation counts only for its first user).")
        }
        if data.dataQuality.usersInSeveralVariants > 0 {
            warnings.append("\(data.dataQuality.usersInSeveralVariants) users were seen in more than one variant; each is analysed in the variant of their first request.")
        }

        let primaryName = plan.primaryMetric ?? data.metrics.first { $0.metric.role == .primary }?.metric.name ?? data.metrics.first?.metric.name ?? ""
        guard data.metrics.contains(where: { $0.metric.name == primaryName }) else {
            throw AnalysisError("primary metric \"\(primaryName)\" is not among the metrics (\(data.metrics.map(\.metric.name).joined(separator: ", ")))")
        }

        var results: [MetricResult] = []
        var quantiles: [QuantileResult] = []
        for metricData in data.metrics {
            for t in treatments {
                if metricData.metric.kind == .quantile {
                    quantiles.append(QuantileResult(metric: metricData.metric, treatment: names[t],
                                                    control: metricData.quantiles?[controlIndex] ?? nil,
                                                    treatmentValue: metricData.quantiles?[t] ?? nil,
                                                    controlCount: metricData.quantileCounts?[controlIndex] ?? 0,
                                                    treatmentCount: metricData.quantileCounts?[t] ?? 0))
                } else {
                    results.append(compare(metricData, controlIndex, t, treatment: names[t], plan: plan))
                }
            }
        }

        var decisions: [Decision] = []
        for t in treatments {
            decisions.append(decide(treatment: names[t], control: control, results: results.filter { $0.treatment == names[t] },
                                    primary: primaryName, data: data, plan: plan))
        }

        return Report(experiment: data.experiment, alpha: plan.alpha, unit: plan.unit, control: control,
                      variants: [data.variants[controlIndex]] + treatments.map { data.variants[$0] },
                      sampleRatio: srm, results: results, quantiles: quantiles, decisions: decisions,
                      primaryMetric: primaryName, requestEvents: data.requestEvents, feedbackEvents: data.feedbackEvents,
                      firstTimestamp: data.firstTimestamp, lastTimestamp: data.lastTimestamp,
                      dataQuality: data.dataQuality, warnings: warnings)
    }

    static func chooseControl(_ names: [String], _ plan: AnalysisPlan) throws(AnalysisError) -> String {
        if let c = plan.control { return c }
        if names.contains("control") { return "control" }
        if let first = plan.allocation?.arms.first?.name { return first }
        guard let first = names.first else { throw AnalysisError("no variants in the data") }
        if names.count > 1 {
            throw AnalysisError("no variant is named \"control\": say which one is the control with --control (variants: \(names.sorted().joined(separator: ", ")))")
        }
        return first
    }

    /// Chi-square of users per variant against the planned shares (scipy `chisquare`).
    /// `order` lists variant indices in the report's order (control first), so the result does not depend
    /// on the order variants happened to appear in the data.
    public static func sampleRatio(_ data: ExperimentData, _ allocation: Allocation?, order: [Int]? = nil) -> SampleRatioCheck {
        let observed = (order ?? Array(data.variants.indices)).map { NamedCount(name: data.variants[$0].name, count: data.variants[$0].users) }
        guard let allocation else {
            return SampleRatioCheck(status: .notRun, observed: observed, expectedShares: [],
                                    reason: "no planned split given (use --split, --variants or the config's \"variants\")")
        }
        let unexpected = data.variants.filter { !allocation.names.contains($0.name) }.map(\.name).sorted()
        if !unexpected.isEmpty {
            return SampleRatioCheck(status: .mismatch, pValue: 0, observed: observed, expectedShares: allocation.arms.map(\.weight),
                                    reason: "variants not in the planned split: \(unexpected.joined(separator: ", "))")
        }
        let counts = allocation.names.map { name in Double(data.variants.first { $0.name == name }?.users ?? 0) }
        let arms = zip(counts, allocation.arms).filter { $0.1.weight > 0 }
        guard arms.count >= 2 else {
            return SampleRatioCheck(status: .notRun, observed: observed, expectedShares: allocation.arms.map(\.weight),
                                    reason: "the planned split has fewer than two arms with traffic")
        }
        let fit = ChiSquareTest.goodnessOfFit(observed: arms.map(\.0), expectedProportions: arms.map(\.1.weight))
        let zeroWeightUsed = zip(counts, allocation.arms).contains { $0.0 > 0 && $0.1.weight == 0 }
        let mismatch = fit.pValue < SampleRatioCheck.threshold || zeroWeightUsed
        return SampleRatioCheck(status: mismatch ? .mismatch : .ok, pValue: zeroWeightUsed ? 0 : fit.pValue, statistic: fit.statistic,
                                observed: allocation.names.map { n in NamedCount(name: n, count: data.variants.first { $0.name == n }?.users ?? 0) },
                                expectedShares: allocation.arms.map(\.weight),
                                reason: zeroWeightUsed ? "users in an arm planned with weight 0" : nil)
    }

    static func compare(_ data: MetricData, _ c: Int, _ t: Int, treatment: String, plan: AnalysisPlan) -> MetricResult {
        let rc = data.perVariant[c], rt = data.perVariant[t]
        let uc = data.unitMoments[c], ut = data.unitMoments[t]
        let controlGroup = GroupSummary(mean: uc.n > 0 ? uc.sum / uc.n : nil, users: Int(rc.n), units: uc.n)
        let treatmentGroup = GroupSummary(mean: ut.n > 0 ? ut.sum / ut.n : nil, users: Int(rt.n), units: ut.n)
        var result = MetricResult(metric: data.metric, treatment: treatment, control: controlGroup, treatmentGroup: treatmentGroup,
                                  significant: false, verdict: .none)
        if let a = controlGroup.mean, let b = treatmentGroup.mean {
            result.absoluteDifference = b - a
            if a != 0 { result.relativeLift = b / a - 1 }
        }

        let ec: GroupEstimate, et: GroupEstimate
        let minimum: Double
        switch plan.unit {
        case .user:
            ec = GroupEstimate(mean: rc.mean, variance: rc.variance, n: rc.n)
            et = GroupEstimate(mean: rt.mean, variance: rt.variance, n: rt.n)
            minimum = min(rc.n, rt.n)
        case .event:
            ec = GroupEstimate(mean: uc.mean, variance: uc.variance, n: uc.n)
            et = GroupEstimate(mean: ut.mean, variance: ut.variance, n: ut.n)
            minimum = min(uc.n, ut.n)
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
        let cc = cleaned(ec), ct = cleaned(et)
        result.controlVariance = cc.variance
        result.treatmentVariance = ct.variance
        guard cc.variance.isFinite, ct.variance.isFinite, cc.variance + ct.variance > 0 else {
            result.note = "no variation within either variant (every user has the same value), so no test applies"
            if ec.mean == et.mean {
                result.pValue = 1
                result.absoluteInterval = ConfidenceInterval(lower: 0, upper: 0)
                if result.relativeLift != nil { result.relativeInterval = .bounded(lower: 0, upper: 0) }
                result.note = nil
            }
            return result
        }
        let test = plan.unit == .user
            ? TTest.welch(control: ec, treatment: et, alpha: plan.alpha)
            : TTest.student(control: ec, treatment: et, alpha: plan.alpha)
        result.pValue = test.pValue
        result.standardError = test.standardError
        result.degreesOfFreedom = test.degreesOfFreedom
        result.absoluteInterval = test.interval
        result.significant = test.pValue < plan.alpha
        let varianceOfMean: (GroupEstimate) -> Double
        if plan.unit == .event {
            // Student's test pools the variance; Fieller uses the same pooled standard error split by group.
            let pooled = ((ec.n - 1) * ec.variance + (et.n - 1) * et.variance) / (ec.n + et.n - 2)
            varianceOfMean = { pooled / $0.n }
        } else {
            varianceOfMean = { $0.variance / $0.n }
        }
        if result.relativeLift != nil {
            switch Fieller.ratioSet(treatmentMean: et.mean, varianceOfTreatmentMean: varianceOfMean(et),
                                    controlMean: ec.mean, varianceOfControlMean: varianceOfMean(ec),
                                    criticalValue: test.criticalValue) {
            case .bounded(let ci): result.relativeInterval = .bounded(lower: ci.lower - 1, upper: ci.upper - 1)
            case .exclusive(let lo, let hi): result.relativeInterval = .exclusive(below: lo - 1, above: hi - 1)
            case .unbounded: result.relativeInterval = .unbounded
            }
        }
        if result.significant {
            let up = test.difference > 0
            switch data.metric.goal {
            case .up: result.verdict = up ? .better : .worse
            case .down: result.verdict = up ? .worse : .better
            case .none: result.verdict = .changed
            }
        }
        return result
    }

    static func decide(treatment: String, control: String, results: [MetricResult], primary: String, data: ExperimentData, plan: AnalysisPlan) -> Decision {
        let worseGuardrails = results.filter { $0.metric.role == .guardrail && $0.verdict == .worse && $0.metric.name != primary }
        let p = results.first { $0.metric.name == primary }
        let guardrailText = worseGuardrails.map { "\($0.metric.title) (\(formatSigned($0.absoluteDifference, $0.metric)))" }.joined(separator: ", ")
        if let p, p.verdict == .worse {
            return Decision(action: .rollBack, treatment: treatment,
                            reason: "\(p.metric.title) is significantly worse in \(treatment) (\(formatPEquals(p.pValue ?? 0)))"
                                + (worseGuardrails.isEmpty ? "." : " and guardrails are worse: \(guardrailText)."))
        }
        if !worseGuardrails.isEmpty {
            return Decision(action: .rollBack, treatment: treatment,
                            reason: "guardrail\(worseGuardrails.count > 1 ? "s" : "") significantly worse in \(treatment): \(guardrailText).")
        }
        if let p, p.verdict == .better {
            return Decision(action: .ship, treatment: treatment,
                            reason: "\(p.metric.title) is significantly better in \(treatment) (\(formatSigned(p.absoluteDifference, p.metric)), \(formatPEquals(p.pValue ?? 0))) and no guardrail is significantly worse.")
        }
        guard let p else {
            return Decision(action: .keepRunning, treatment: treatment, reason: "the primary metric \(primary) has no data yet.")
        }
        let status = p.pValue.map { "shows no significant difference yet (\(formatPEquals($0)))" }
            ?? "cannot be tested yet" + (p.note.map { " (\($0))" } ?? "")
        var decision = Decision(action: .keepRunning, treatment: treatment, reason: "\(p.metric.title) \(status).")
        if let estimate = additionalUsers(p, control: control, data: data, plan: plan) {
            decision.additionalUsers = estimate.users
            decision.additionalDays = estimate.days
            decision.reason += " " + estimate.sentence
        }
        return decision
    }

    /// Users still needed for the planned power on the primary metric, at its observed per-user variance.
    static func additionalUsers(_ r: MetricResult, control: String, data: ExperimentData, plan: AnalysisPlan) -> (users: Int?, days: Double?, sentence: String)? {
        guard let vc = r.controlVariance, let vt = r.treatmentVariance, r.control.users >= 2, r.treatmentGroup.users >= 2,
              let controlMean = r.control.mean else { return nil }
        let effect: Double
        let what: String
        if let mde = plan.minimumDetectableEffect {
            effect = plan.minimumDetectableEffectIsRelative ? abs(mde * controlMean) : abs(mde)
            what = "the planned effect of \(formatMagnitude(effect, r.metric))"
        } else if let d = r.absoluteDifference, d != 0 {
            effect = abs(d)
            what = "the observed difference of \(formatMagnitude(effect, r.metric))"
        } else {
            return nil
        }
        let nc = Double(r.control.users), nt = Double(r.treatmentGroup.users)
        let pooled = ((nc - 1) * vc + (nt - 1) * vt) / (nc + nt - 2)
        guard pooled > 0, effect > 0 else { return nil }
        var ratio = nt / nc
        if let a = plan.allocation,
           let wt = a.arms.first(where: { $0.name == r.treatment })?.weight,
           let wc = a.arms.first(where: { $0.name == control })?.weight, wt > 0, wc > 0 {
            ratio = wt / wc
        }
        let nobs1 = TTestIndependentPower.solveNobs1(effectSize: effect / pooled.squareRoot(), alpha: plan.alpha, power: plan.power,
                                                     ratio: ratio, alternative: .twoSided)
        guard nobs1.isFinite else { return nil }
        let neededMetricUsers = nobs1.rounded(.up) + (nobs1 * ratio).rounded(.up)
        guard neededMetricUsers < 1e9 else {
            return (nil, nil, "Detecting \(what) would need more than a billion users: it is not detectable at a practical size.")
        }
        let haveMetricUsers = nc + nt
        let totalUsers = Double(data.variants.reduce(0) { $0 + $1.users })
        let coverage = totalUsers > 0 ? haveMetricUsers / totalUsers : 1
        let more = max(0, (neededMetricUsers - haveMetricUsers) / max(coverage, 1e-9))
        let users = Int(more.rounded(.up))
        var days: Double?
        if let observed = data.observedDays, totalUsers > 0 { days = more / (totalUsers / observed) }
        if users == 0 {
            return (0, 0, "The sample already has \(Int(plan.power * 100))% power for \(what); the difference is likely small.")
        }
        var sentence = "About \(group(users)) more users (\(group(Int(neededMetricUsers))) with this metric in all) give \(Int(plan.power * 100))% power for \(what)"
        if let days { sentence += ", about \(formatDays(days)) at the current rate" }
        return (users, days, sentence + ".")
    }

}

func formatDays(_ d: Double) -> String {
    if d < 1 { return "less than a day" }
    if d < 10 { return String(format1(d)) + " days" }
    return "\(Int(d.rounded())) days"
}

func format1(_ x: Double) -> String {
    let r = (x * 10).rounded() / 10
    return r == r.rounded() ? "\(Int(r)).0" : "\(r)"
}
