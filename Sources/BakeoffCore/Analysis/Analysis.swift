import BakeoffStatistics

/// Which units the test treats as independent.
public enum AnalysisUnit: String, Sendable, CaseIterable {
    /// Users (the randomization unit): ratio of per-user sums, delta method, Welch's t. The default.
    case user
    /// Every conversation or request as an independent sample, Student's t: the article's naive test, kept
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
    /// Fixed-horizon tests (valid at one planned look), always-valid confidence sequences, a group-sequential
    /// design (valid at the looks it spends for, up to its horizon) or `auto` (group-sequential when the plan has a
    /// horizon, else the confidence sequence).
    public var method: TestMethod = .fixed
    /// N* of the asymptotic confidence sequences: the total sample at which they are tightest.
    public var sequentialTuning: Double = SequentialTest.defaultTuningParameter
    /// The group-sequential design: spending function, planned users and when the looks happen.
    public var groupSequential = GroupSequentialPlan()
    /// Set by the analysis when the method resolves to group-sequential: the looks so far and the design.
    public internal(set) var monitoring: GroupSequentialMonitoring?
    /// How the secondary metrics (across metrics and arms) and the primary metric (across arms) are corrected.
    public var correction: Correction = .holm
    /// The prior of the Bayesian view (relative effect); nil is the flat prior.
    public var prior: GaussianPrior?
    /// The shortest run before a ship decision, in days; rounded up to full weeks when `fullWeeks`.
    public var minimumRuntimeDays: Double = 7
    public var fullWeeks = true
    /// The longest run: past it an undecided experiment stops as inconclusive.
    public var maximumRuntimeDays: Double?
    /// When the experiment started (microseconds since the epoch); default its first request.
    public var start: Int64?
    /// The time the report is made for (microseconds since the epoch); default the last request.
    public var asOf: Int64?
    /// Days the experiment has run, for data without timestamps (per-variant sums); overrides start/asOf.
    public var runtimeDays: Double?

    public init() {}

    /// The minimum runtime the decision waits for: `minimumRuntimeDays` rounded up to full weeks.
    public var effectiveMinimumRuntimeDays: Double {
        guard fullWeeks, minimumRuntimeDays > 0 else { return max(0, minimumRuntimeDays) }
        return (minimumRuntimeDays / 7).rounded(.up) * 7
    }
}

/// How p-values and intervals are made.
public enum TestMethod: String, Sendable, CaseIterable {
    /// Welch's t-test and Fieller's interval: valid when the data are looked at once, at the planned sample.
    case fixed
    /// Asymptotic confidence sequences (Waudby-Smith et al., gbstats' SequentialTwoSidedTTest): valid
    /// however often the results are looked at, at the price of wider intervals.
    case sequential
    /// Group-sequential boundaries with Lan-DeMets alpha spending over a planned horizon: valid at every look
    /// that happened, nearly the fixed-horizon test's power at the horizon.
    case groupSequential = "group-sequential"
    /// Group-sequential when the plan has a horizon (planned users or a maximum runtime), else sequential.
    case auto

    /// Whether the method's p-values stay valid when the results are looked at more than once.
    public var isSequential: Bool { self != .fixed }
}

extension Correction {
    /// The name used in configs and on the command line.
    public var configName: String {
        switch self {
        case .none: return "none"
        case .holm: return "holm"
        case .benjaminiHochberg: return "bh"
        }
    }

    public init?(configName: String) {
        switch configName {
        case "none": self = .none
        case "holm", "holm-bonferroni", "holm_bonferroni": self = .holm
        case "bh", "benjamini-hochberg", "benjamini_hochberg", "fdr": self = .benjaminiHochberg
        default: return nil
        }
    }
}

/// A plan or data problem that makes an analysis impossible.
public struct AnalysisError: RemedyCarrying, Sendable, CustomStringConvertible {
    public var message: String
    public var remedy: Remedy?
    public init(_ message: String, remedy: Remedy? = nil) {
        self.message = message
        self.remedy = remedy
    }
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
    /// Whether the change is significant after the multiple-comparison correction.
    public var significant: Bool
    public var verdict: Verdict
    /// Why a number is missing (too few users, no variance, ...).
    public var note: String?
    /// Per-user variances of the two means (delta method, after CUPED when it applies), for power.
    var controlVariance: Double?
    var treatmentVariance: Double?
    /// The p-value after the multiple-comparison correction of the metric's family (nil for guardrails,
    /// which are not corrected: a correction would make harm harder to see).
    public var adjustedPValue: Double?
    /// The alpha the shown intervals are made at (alpha itself without a correction).
    public var intervalAlpha: Double
    /// How many comparisons share the correction (1 when uncorrected).
    public var familySize: Int = 1
    /// The variance reduction of CUPED, when pre-experiment data were used.
    public var varianceReduction: VarianceReductionSummary?
    /// The Bayesian view of the relative effect.
    public var bayesian: BayesianEffect?
    /// For guardrails with a margin: the one-sided non-inferiority check.
    public var guardrail: GuardrailCheck?
    /// Mann-Whitney U on the per-unit values, when the metric asks for it.
    public var rankTest: MannWhitneyResult?
    /// The smallest absolute difference the current sample detects with the planned power (primary metric).
    public var detectableEffect: Double?
    /// After a group-sequential test stopped early at a crossing: the median-unbiased estimate, since the
    /// observed difference is biased away from zero.
    public var biasAdjusted: BiasAdjustedEstimate?
    /// The primary metric's non-binding futility check, when the plan asks for one.
    public var futility: FutilityCheck?
    /// The p-value the decision uses: adjusted when corrected.
    public var decisionPValue: Double? { adjustedPValue ?? pValue }
}

/// The estimate after an early stop, corrected for the bias of stopping at a crossing.
public struct BiasAdjustedEstimate: Sendable, Equatable {
    /// The absolute difference, median-unbiased under the stage-wise ordering.
    public var difference: Double
    /// The same over the control mean.
    public var relative: Double?
    /// How it is made, for the report.
    public static let method = "median-unbiased estimate (stage-wise ordering, Jennison and Turnbull 8.4)"
}

/// What the multiple-comparison correction sets on a result, metric or quantile alike.
protocol CorrectedResult {
    var metric: Metric { get }
    var absoluteInterval: ConfidenceInterval? { get }
    var adjustedPValue: Double? { get set }
    var intervalAlpha: Double { get set }
    var familySize: Int { get set }
    var significant: Bool { get set }
    var verdict: Verdict { get set }
}

extension MetricResult: CorrectedResult {}
extension QuantileResult: CorrectedResult {}

/// What CUPED bought for one metric.
public struct VarianceReductionSummary: Sendable, Equatable {
    /// The pooled regression coefficient on the pre-experiment value.
    public var theta: Double
    /// 1 - Var(adjusted difference) / Var(unadjusted difference).
    public var reduction: Double
}

/// The one-sided test of a guardrail against its margin.
public struct GuardrailCheck: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// The harm is shown to be smaller than the margin (non-inferior).
        case withinMargin = "within_margin"
        /// The harm is significant and its estimate exceeds the margin.
        case beyondMargin = "beyond_margin"
        /// Neither yet: the interval still reaches past the margin.
        case unclear
    }
    public var margin: GuardrailMargin
    /// The one-sided (1 - alpha) bound of the harm-side change, on the margin's scale.
    public var bound: Double
    /// The estimate on the margin's scale.
    public var estimate: Double
    /// p-value of the non-inferiority test (H0: harm at least the margin).
    public var pValue: Double
    public var status: Status
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
    /// The maximum runtime or the planned sample is reached without a clear result.
    case stopInconclusive = "stop_inconclusive"
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
    /// The plan the report follows (method, correction, runtime bounds, ...).
    public var plan: AnalysisPlan
    /// Days from the start to the report time, when there are timestamps.
    public var elapsedDays: Double?
    /// Changes made to the plan after the experiment started, oldest first.
    public var planChanges: [PlanChange] = []
    /// Which test method the plan asked for, which one the report uses, and why.
    public var methodChoice: MethodChoice = MethodChoice(requested: .fixed, method: .fixed, reason: "")
    /// False when the report comes from per-variant sums: no event counts or data-quality section.
    public var hasEvents = true

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
        if let stop = decisions.first(where: { $0.action == .stopInconclusive }) { return stop }
        return Decision(action: .keepRunning, treatment: "", reason: "there is nothing to compare yet")
    }

    /// The primary metric's improvement for a treatment: its difference signed so that better is larger.
    private func liftOfPrimary(_ treatment: String) -> Double {
        guard let r = results.first(where: { $0.metric.name == primaryMetric && $0.treatment == treatment }) else { return 0 }
        let d = r.absoluteDifference ?? 0
        return r.metric.goal == .down ? -d : d
    }
}

/// A quantile metric (latency P95, ...) per variant, with the order-statistic test of its change.
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
    /// Difference of the quantiles with its interval (clustered by user), when the estimates exist.
    public var absoluteInterval: ConfidenceInterval?
    /// Relative change with its delta-method interval.
    public var relativeInterval: ConfidenceInterval?
    public var pValue: Double?
    public var adjustedPValue: Double?
    public var intervalAlpha: Double
    public var familySize: Int = 1
    public var significant = false
    public var verdict: Verdict = .none
    public var guardrail: GuardrailCheck?
    public var note: String?
    /// Standard errors of the difference and of the relative change, for the family correction.
    var differenceError: Double?
    var relativeError: Double?
}

/// One change of the plan after the experiment started, as recorded by the gateway.
public struct PlanChange: Sendable, Equatable {
    /// When the changed plan took effect (microseconds since the epoch).
    public var timestamp: Int64
    /// What changed, one entry per setting: "alpha: 0.05 → 0.1".
    public var changes: [String]
    public init(timestamp: Int64, changes: [String]) {
        self.timestamp = timestamp
        self.changes = changes
    }
}

/// Turns per-variant sums into the report: tests, intervals, sample-ratio check, decision.
///
/// Pure: it takes `ExperimentData` and a plan and returns values.
public enum Analysis {
    public static func run(_ input: ExperimentData, plan: AnalysisPlan) throws(AnalysisError) -> Report {
        var data = input
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
        let treatedPrePeriod = data.dataQuality.preExperimentVariants.filter { $0.name != control && $0.count > 0 }
        if !treatedPrePeriod.isEmpty && data.metrics.contains(where: { $0.covariates != nil }) {
            // A covariate that carries the treatment effect would remove part of it: no CUPED from such data.
            for i in data.metrics.indices { data.metrics[i].covariates = nil }
            warnings.append("The pre-period (before the start) has users in treatment arms (\(treatedPrePeriod.map { "\($0.name) \(group($0.count))" }.joined(separator: ", "))): their pre-experiment values carry the treatment effect, so CUPED is off. Keep all traffic on control until the start, or give a covariate file.")
        }
        if data.dataQuality.usersInSeveralVariants > 0 {
            warnings.append("\(data.dataQuality.usersInSeveralVariants) users were seen in more than one variant; each is analysed in the variant of their first request.")
        }

        let choice = try MethodChoice.resolve(plan, data: data)
        var plan = plan
        plan.method = choice.method
        plan.monitoring = choice.monitoring
        if let warning = choice.warning { warnings.append(warning) }

        let primaryName = plan.primaryMetric ?? data.metrics.first { $0.metric.role == .primary }?.metric.name ?? data.metrics.first?.metric.name ?? ""
        guard data.metrics.contains(where: { $0.metric.name == primaryName }) else {
            throw AnalysisError("primary metric \"\(primaryName)\" is not among the metrics (\(data.metrics.map(\.metric.name).joined(separator: ", ")))")
        }
        plan.primaryMetric = primaryName

        var results: [MetricResult] = []
        var quantiles: [QuantileResult] = []
        for metricData in data.metrics {
            for t in treatments {
                if metricData.metric.kind == .quantile {
                    quantiles.append(MetricComparison.compareQuantile(metricData, controlIndex, t, treatment: names[t], plan: plan, alpha: plan.alpha))
                } else {
                    results.append(MetricComparison.compare(metricData, controlIndex, t, treatment: names[t], plan: plan, alpha: plan.alpha))
                }
            }
        }
        correct(&results, &quantiles, data: data, controlIndex: controlIndex, names: names, primary: primaryName, plan: plan)
        for j in results.indices where results[j].metric.name == primaryName {
            results[j].detectableEffect = detectableEffect(results[j], plan: plan)
            if plan.groupSequential.futility, let m = plan.monitoring {
                results[j].futility = futilityCheck(results[j], monitoring: m, plan: plan)
            }
        }
        if plan.groupSequential.futility, plan.method == .groupSequential, plan.minimumDetectableEffect == nil {
            warnings.append("The plan asks for a futility boundary, which is made for the plan's minimum detectable effect, and the plan has none: give one (mde or mde_relative) to see it.")
        }

        let elapsed = elapsedDays(data, plan)
        var decisions: [Decision] = []
        for t in treatments {
            var decision = decide(treatment: names[t], control: control, results: results.filter { $0.treatment == names[t] },
                                  quantiles: quantiles.filter { $0.treatment == names[t] },
                                  primary: primaryName, data: data, plan: plan, elapsedDays: elapsed)
            if srm.status == .mismatch && decision.action == .ship {
                // Broken assignment or logging makes every number suspect: never ship on it.
                decision = Decision(action: .keepRunning, treatment: names[t],
                                    reason: decision.reason.dropLast() + ", but the sample ratio mismatch (\(formatPEquals(srm.pValue ?? 0))) must be explained before shipping.")
            }
            decisions.append(decision)
        }

        return Report(experiment: data.experiment, alpha: plan.alpha, unit: plan.unit, control: control,
                      variants: [data.variants[controlIndex]] + treatments.map { data.variants[$0] },
                      sampleRatio: srm, results: results, quantiles: quantiles, decisions: decisions,
                      primaryMetric: primaryName, requestEvents: data.requestEvents, feedbackEvents: data.feedbackEvents,
                      firstTimestamp: data.firstTimestamp, lastTimestamp: data.lastTimestamp,
                      dataQuality: data.dataQuality, warnings: warnings, plan: plan, elapsedDays: elapsed,
                      methodChoice: choice, hasEvents: data.hasEvents)
    }

    /// Days from the start (the plan's, or the first request) to the report time (the plan's, or the last event).
    static func elapsedDays(_ data: ExperimentData, _ plan: AnalysisPlan) -> Double? {
        if let days = plan.runtimeDays { return days }
        guard let start = plan.start ?? data.firstTimestamp, let end = plan.asOf ?? data.lastTimestamp else { return nil }
        return max(0, Double(end - start) / 86_400_000_000)
    }

    /// Applies the multiple-comparison correction: the primary metric across treatment arms, the secondary
    /// metrics (quantiles included) across metrics and arms; guardrails stay uncorrected. Intervals are
    /// remade at each test's corrected level so that they exclude 0 exactly when the adjusted p < alpha.
    static func correct(_ results: inout [MetricResult], _ quantiles: inout [QuantileResult], data: ExperimentData,
                        controlIndex: Int, names: [String], primary: String, plan: AnalysisPlan) {
        enum Member { case metric(Int), quantile(Int) }
        var families: [[Member]] = [[], []]
        for i in results.indices {
            let m = results[i].metric
            if m.name == primary { families[0].append(.metric(i)) } else if m.role != .guardrail { families[1].append(.metric(i)) }
        }
        for i in quantiles.indices where quantiles[i].metric.role != .guardrail && quantiles[i].metric.name != primary {
            families[1].append(.quantile(i))
        }
        let metricData = Dictionary(data.metrics.map { ($0.metric.name, $0) }, uniquingKeysWith: { a, _ in a })
        func index(_ treatment: String) -> Int { names.firstIndex(of: treatment)! }
        for family in families where !family.isEmpty {
            let pValues: [Double?] = family.map { member in
                switch member {
                case .metric(let i): return results[i].pValue
                case .quantile(let i): return quantiles[i].pValue
                }
            }
            let adjusted = MultipleComparisons.adjustedPValues(pValues, correction: plan.correction)
            let levels = MultipleComparisons.perTestAlphas(pValues, correction: plan.correction, alpha: plan.alpha)
            let size = pValues.compactMap { $0 }.count
            /// The correction's outcome, the same for a metric and a quantile result.
            func apply<R: CorrectedResult>(_ r: inout R, _ k: Int) {
                r.adjustedPValue = adjusted[k]
                r.intervalAlpha = levels[k] ?? plan.alpha
                r.familySize = size
                r.significant = (r.adjustedPValue ?? 1) < plan.alpha
                r.verdict = MetricComparison.verdict(significant: r.significant, up: (r.absoluteInterval.map { $0.lower + $0.upper } ?? 0) > 0,
                                                     goal: r.metric.goal)
            }
            for (k, member) in family.enumerated() {
                // Intervals are remade at the test's corrected level.
                let level = levels[k].flatMap { $0 != plan.alpha ? $0 : nil }
                switch member {
                case .metric(let i):
                    if let level, let d = metricData[results[i].metric.name] {
                        results[i] = MetricComparison.compare(d, controlIndex, index(results[i].treatment), treatment: results[i].treatment,
                                                              plan: plan, alpha: level)
                    }
                    apply(&results[i], k)
                case .quantile(let i):
                    if let level, let d = metricData[quantiles[i].metric.name] {
                        quantiles[i] = MetricComparison.compareQuantile(d, controlIndex, index(quantiles[i].treatment),
                                                                        treatment: quantiles[i].treatment, plan: plan, alpha: level)
                    }
                    apply(&quantiles[i], k)
                }
            }
        }
    }

    /// The non-binding futility check of the primary metric: beta (1 - power) spent by the plan's spending function
    /// over the looks, under the drift the planned effect has at the horizon (its standard error extrapolated from
    /// now: the horizon's users, or the users now over the share of the planned days gone).
    static func futilityCheck(_ r: MetricResult, monitoring m: GroupSequentialMonitoring, plan: AnalysisPlan) -> FutilityCheck? {
        guard let mde = plan.minimumDetectableEffect, let d = r.absoluteDifference, let se = r.standardError, se > 0,
              let now = m.looks.last, now.spendingTime > 0, r.metric.goal != .none else { return nil }
        let effect = plan.minimumDetectableEffectIsRelative ? abs(mde * (r.control.mean ?? 0)) : abs(mde)
        guard effect > 0 else { return nil }
        let horizon: Double
        switch m.horizon {
        case .users(let n): horizon = n
        case .days: horizon = now.information / min(now.spendingTime, 1)
        }
        let drift = effect / (se * (now.information / horizon).squareRoot())
        let bounds = m.design(alpha: r.intervalAlpha).futilityBoundaries(m.looks, beta: 1 - plan.power, spending: plan.groupSequential.spending,
                                                                          drift: drift, horizonInformation: horizon)
        guard let b = bounds.last, b.isFinite else { return nil }
        let z = (r.metric.goal == .down ? -d : d) / se
        return FutilityCheck(statistic: z, boundary: b, plannedEffect: effect)
    }

    /// The smallest absolute change of a metric the current sample detects with the planned power
    /// (two-sided, at the pooled per-user variance): the MDE reachable now.
    static func detectableEffect(_ r: MetricResult, plan: AnalysisPlan) -> Double? {
        guard let vc = r.controlVariance, let vt = r.treatmentVariance, r.control.users >= 2, r.treatmentGroup.users >= 2 else { return nil }
        let nc = Double(r.control.users), nt = Double(r.treatmentGroup.users)
        let pooled = ((nc - 1) * vc + (nt - 1) * vt) / (nc + nt - 2)
        guard pooled > 0 else { return nil }
        let d = TTestIndependentPower.solveEffectSize(nobs1: nc, alpha: plan.alpha, power: plan.power, ratio: nt / nc, alternative: .twoSided)
        guard d.isFinite else { return nil }
        return abs(d) * pooled.squareRoot()
    }

    static func chooseControl(_ names: [String], _ plan: AnalysisPlan) throws(AnalysisError) -> String {
        if let c = plan.control { return c }
        if names.contains("control") { return "control" }
        if let first = plan.allocation?.arms.first?.name { return first }
        guard let first = names.first else { throw AnalysisError("no variants in the data") }
        if names.count > 1 {
            throw AnalysisError("no variant is named \"control\": say which one is the control (variants: \(names.sorted().joined(separator: ", ")))", remedy: .nameControl)
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
                                    reason: "no planned split given: the plan names no variants' shares")
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
}

package func formatDays(_ d: Double) -> String {
    if d < 1 { return "less than a day" }
    if d < 10 { return String(format1(d)) + " days" }
    return "\(Int(d.rounded())) days"
}

package func format1(_ x: Double) -> String {
    let r = (x * 10).rounded() / 10
    return r == r.rounded() ? "\(Int(r)).0" : "\(r)"
}
