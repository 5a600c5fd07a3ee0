import BakeoffCore
import BakeoffStatistics

/// One treatment's metrics against control as rows to show: values in the metric's units, the result in
/// words, and a plain-words explanation wherever two numbers on a row seem to disagree.
///
/// Why: every view of a report (the HTML page, the gateway's live dashboard, the Markdown and terminal
/// tables) turns a `Report` into rows through this one model, so two pages can never tell different stories
/// about the same numbers. Pure: a report in, strings and numbers out; the statistics are not touched.
///
/// **Too few users yet.** One rule, the same for every row and every view. A row that is not significant
/// reads "too few users yet", and shows no interval and no chance to win, when any of these holds:
/// 1. a variant has no data for the metric yet, or fewer than `minimumUsers` users with data (a quantile:
///    fewer than `minimumUsers` users in the variant or requests with a value), or the analysis could not
///    test it for lack of data (fewer than 2 users, a degenerate quantile estimate);
/// 2. its interval reaches past what the metric can change: a rate's difference beyond ±100 pp, a bounded
///    score's beyond its range (CSAT ±4), or the lift of a value that cannot be negative below −100%;
/// 3. its lift has no bounded interval (Fieller's set is unbounded: control's value is not yet told apart
///    from zero).
///
/// A significant row keeps its result, because the decision acts on it; it still hides an interval of
/// rule 2 or 3 and says why. Rows with nothing to compare (no data in either variant, or every user with
/// the same value in both) are `folded`; the primary metric is always a row.
public struct Scorecard: Sendable {
    public struct Row: Sendable {
        public var metric: Metric
        public var isPrimary: Bool
        public var isQuantile: Bool
        /// A guardrail other than the primary metric (the decision judges the primary on its own).
        public var isGuardrail: Bool
        /// Formatted value, "—" when none.
        public var control: String
        public var treatment: String
        /// Absolute difference, formatted with unit, "—" when none.
        public var difference: String
        /// "[lo, hi]" formatted, nil when not shown (too few users, past the metric's range, no test).
        public var interval: String?
        /// The interval's confidence level when it is not the plan's ("99.6%": made at the level the
        /// multiple-comparison correction asks for, so that it agrees with the adjusted p-value).
        public var intervalLevel: String?
        /// Relative lift "+3.2%" or "—".
        public var lift: String
        public var liftInterval: String?
        /// The p the decision uses (adjusted when corrected), formatted; "—" when there is no test.
        public var pValue: String
        /// Unadjusted, when it differs.
        public var rawPValue: String?
        /// Bayesian chance that treatment is better, when the report has it (not for metrics with no
        /// better direction, nor for rows with too few users).
        public var chanceToWin: String?
        /// "within the margin of +1.0 pp" etc., nil for non-guardrails.
        public var guardrail: String?
        public var status: Status
        /// Words, never colour only: "better", "worse", "no clear difference", "too few users yet", ...
        public var statusText: String
        /// Plain words when two views on the row seem to disagree, or why a number is missing.
        public var explanation: String?
        /// Who the numbers come from: "2,476 / 624 users", "19,649 / 4,421 requests" (control / treatment).
        public var sampleSize: String
        /// For charts: relative lift and its interval as fractions, nil when not drawable (no data,
        /// unbounded, too few users).
        public var liftValue: Double?
        public var liftBounds: (lower: Double, upper: Double)?
        /// The numbers behind the strings at full precision, as the JSON report has them.
        public var numbers: Numbers
    }

    /// A row's numbers at full precision (for `data-value` attributes and tests against the JSON report).
    public struct Numbers: Sendable {
        /// Means (quantiles: the quantile values).
        public var control: Double?
        public var treatment: Double?
        public var difference: Double?
        public var interval: (lower: Double, upper: Double)?
        public var lift: Double?
        public var liftInterval: (lower: Double, upper: Double)?
        /// The p-value the decision uses, and the unadjusted one.
        public var pValue: Double?
        public var rawPValue: Double?
        public var chanceToWin: Double?
        /// Users with data (quantiles: requests with a value).
        public var controlCount: Int
        public var treatmentCount: Int
    }

    public enum Status: String, Sendable {
        case better, worse
        case noDifference = "no_difference"
        case tooFewUsers = "too_few_users"
        case notTested = "not_tested"
        /// Significant, for a metric with no better direction (output tokens).
        case changed

        /// The words of the status.
        public var text: String {
            switch self {
            case .better: return "better"
            case .worse: return "worse"
            case .noDifference: return "no clear difference"
            case .tooFewUsers: return "too few users yet"
            case .notTested: return "not tested"
            case .changed: return "changed"
            }
        }

        /// At most 7 characters, for the 80-column terminal table, whose legend spells them out.
        public var shortText: String {
            switch self {
            case .better: return "better"
            case .worse: return "WORSE"
            case .noDifference: return "no"
            case .tooFewUsers: return "too few"
            case .notTested: return "—"
            case .changed: return "changed"
            }
        }
    }

    /// Fewer users than this in a variant (with data for the metric) and a result that is not significant
    /// reads "too few users yet": below it the t-test's intervals are too wide to say anything.
    public static let minimumUsers = 10
    /// A Bayesian chance to win at least this (or a chance to lose) reads as a clear result, as dashboards
    /// such as GrowthBook colour it; a row whose p-value says otherwise explains why.
    public static let clearChance = 0.95

    public var treatment: String
    public var control: String
    /// Shown rows: mean/proportion metrics, then quantile metrics; the primary first.
    public var rows: [Row]
    /// Rows with nothing to show (no data in either variant, or every user with the same value in both),
    /// listed in a fold; their `explanation` says which.
    public var folded: [Row]

    public init(report: Report, treatment: String) {
        self.treatment = treatment
        self.control = report.control
        let facts = report.results.filter { $0.treatment == treatment }.map { Facts($0, report) }
            + report.quantiles.filter { $0.treatment == treatment }.map { Facts($0, report) }
        let ordered = facts.filter(\.isPrimary) + facts.filter { !$0.isPrimary }
        var rows: [Row] = [], folded: [Row] = []
        for f in ordered {
            if !f.isPrimary, let reason = f.nothingToShow {
                folded.append(Scorecard.foldedRow(f, reason: reason))
            } else {
                rows.append(Scorecard.row(f, report: report, treatment: treatment))
            }
        }
        self.rows = rows
        self.folded = folded
    }
}

extension Report {
    /// One scorecard per treatment, in the report's order.
    public var scorecards: [Scorecard] { variants.dropFirst().map { Scorecard(report: self, treatment: $0.name) } }
}

// MARK: - One row

extension Scorecard {
    /// What a row is made of, the same for a mean, a proportion and a quantile.
    struct Facts {
        var metric: Metric
        var isPrimary: Bool
        var isQuantile: Bool
        var control: Double?
        var treatment: Double?
        var difference: Double?
        var interval: ConfidenceInterval?
        var lift: Double?
        var liftInterval: RelativeInterval?
        var pValue: Double?
        var adjustedPValue: Double?
        var familySize: Int
        var intervalAlpha: Double
        var significant: Bool
        var verdict: Verdict
        var note: String?
        /// Users with data (quantiles: requests with a value).
        var controlCount: Int
        var treatmentCount: Int
        /// Users behind the numbers (quantiles: the variant's users).
        var controlUsers: Int
        var treatmentUsers: Int
        var bayesian: BayesianEffect?
        var guardrail: GuardrailCheck?
        var degreesOfFreedom: Double?
        var cuped: Bool
        /// Both variants with every user at one and the same value: no variation, nothing to compare.
        var allTheSame: Bool

        init(_ r: MetricResult, _ report: Report) {
            metric = r.metric
            isPrimary = r.metric.name == report.primaryMetric
            isQuantile = false
            control = r.control.mean
            treatment = r.treatmentGroup.mean
            difference = r.absoluteDifference
            interval = r.absoluteInterval
            lift = r.relativeLift
            liftInterval = r.relativeInterval
            pValue = r.pValue
            adjustedPValue = r.adjustedPValue
            familySize = r.familySize
            intervalAlpha = r.intervalAlpha
            significant = r.significant
            verdict = r.verdict
            note = r.note
            controlCount = r.control.users
            treatmentCount = r.treatmentGroup.users
            controlUsers = r.control.users
            treatmentUsers = r.treatmentGroup.users
            bayesian = r.bayesian
            guardrail = r.guardrail
            degreesOfFreedom = r.degreesOfFreedom
            cuped = r.varianceReduction != nil
            // The analysis's no-variation branch with equal means: p = 1 without a test (no standard error).
            allTheSame = r.pValue == 1 && r.standardError == nil && r.control.mean == r.treatmentGroup.mean
        }

        init(_ q: QuantileResult, _ report: Report) {
            metric = q.metric
            isPrimary = q.metric.name == report.primaryMetric
            isQuantile = true
            control = q.control
            treatment = q.treatmentValue
            difference = q.control.flatMap { c in q.treatmentValue.map { $0 - c } }
            interval = q.absoluteInterval
            lift = q.relativeChange
            liftInterval = q.relativeInterval.map { .bounded(lower: $0.lower, upper: $0.upper) }
            pValue = q.pValue
            adjustedPValue = q.adjustedPValue
            familySize = q.familySize
            intervalAlpha = q.intervalAlpha
            significant = q.significant
            verdict = q.verdict
            note = q.note
            controlCount = q.controlCount
            treatmentCount = q.treatmentCount
            let users = { (name: String) in report.variants.first { $0.name == name }?.users ?? 0 }
            controlUsers = users(report.control)
            treatmentUsers = users(q.treatment)
            bayesian = nil
            guardrail = q.guardrail
            degreesOfFreedom = nil
            cuped = false
            allTheSame = false
        }

        /// The p-value the decision uses.
        var decisionPValue: Double? { adjustedPValue ?? pValue }

        /// Why the row has nothing to show, or nil when it has something.
        var nothingToShow: String? {
            if control == nil && treatment == nil { return "no data in either variant yet" }
            if allTheSame, let c = control { return "every user has the same value in both variants, \(formatValue(c, metric))" }
            return nil
        }

        /// Which way is good: up, down, or neither.
        var hasDirection: Bool { metric.goal != .none }
    }

    /// A folded row: values as they are, status "not tested", the reason as its explanation.
    static func foldedRow(_ f: Facts, reason: String) -> Row {
        Row(metric: f.metric, isPrimary: f.isPrimary, isQuantile: f.isQuantile, isGuardrail: f.metric.role == .guardrail,
            control: f.control.map { formatValue($0, f.metric) } ?? "—", treatment: f.treatment.map { formatValue($0, f.metric) } ?? "—",
            difference: "—", interval: nil, intervalLevel: nil, lift: "—", liftInterval: nil, pValue: "—", rawPValue: nil,
            chanceToWin: nil, guardrail: nil, status: .notTested, statusText: "nothing to compare",
            explanation: reason.prefix(1).uppercased() + reason.dropFirst() + ".", sampleSize: sampleSize(f), liftValue: nil, liftBounds: nil,
            numbers: Numbers(control: f.control, treatment: f.treatment, difference: nil, interval: nil, lift: nil, liftInterval: nil,
                             pValue: f.decisionPValue, rawPValue: f.pValue, chanceToWin: nil,
                             controlCount: f.controlCount, treatmentCount: f.treatmentCount))
    }

    static func sampleSize(_ f: Facts) -> String {
        "\(group(f.controlCount)) / \(group(f.treatmentCount)) \(f.isQuantile ? "requests" : "users")"
    }

    static func row(_ f: Facts, report: Report, treatment: String) -> Row {
        let alpha = report.alpha
        let control = report.control
        let title = f.metric.title
        var why: [String] = []

        // The "too few users yet" rule (see the type's documentation).
        let empty = f.control == nil ? control : f.treatment == nil ? treatment : nil
        let fewest = f.isQuantile ? min(f.controlUsers, f.treatmentUsers, f.controlCount, f.treatmentCount)
            : min(f.controlCount, f.treatmentCount)
        let fewUsers = empty == nil && fewest < minimumUsers
        // The analysis's own "too few" notes (a quantile whose estimate is degenerate, fewer than 2 users).
        let testNeedsMoreData = f.pValue == nil && (f.note.map { $0.hasPrefix("too few") || $0.hasPrefix("needs at least") } ?? false)
        let absoluteRange = differenceRange(f.metric)
        let intervalPastRange = f.interval.map { ci in absoluteRange.map { ci.lower < -$0 - 1e-9 || ci.upper > $0 + 1e-9 } ?? false } ?? false
        var liftBounds: (lower: Double, upper: Double)?
        var liftUnbounded = false
        switch f.liftInterval {
        case .bounded(let lo, let hi)?: liftBounds = (lo, hi)
        case .exclusive?, .unbounded?: liftUnbounded = true
        case nil: break
        }
        let possibleLifts = liftRange(f.metric)
        let liftPastRange = liftBounds.map { b in possibleLifts.map { b.lower < $0.lower - 1e-9 || b.upper > $0.upper + 1e-9 } ?? false } ?? false

        let status: Status
        switch f.verdict {
        case .better: status = .better
        case .worse: status = .worse
        case .changed: status = .changed
        case .none:
            if empty != nil || fewUsers || testNeedsMoreData || intervalPastRange || liftPastRange || liftUnbounded {
                status = .tooFewUsers
            } else if f.pValue == nil {
                status = .notTested
            } else {
                status = .noDifference
            }
        }
        let tooFew = status == .tooFewUsers

        // Why numbers are missing or not to be read yet: the first reason of the rule that holds (an
        // interval past the metric's range is not printed, not even here).
        let rangeText = absoluteRange.map { "±" + formatMagnitude($0, f.metric) } ?? ""
        let what = f.metric.kind == .proportion ? "a rate" : title
        if f.control == nil && f.treatment == nil {
            why.append("No \(title) data yet.")
        } else if let empty {
            why.append("No \(title) data in \(empty) yet.")
        } else if fewUsers {
            let requests = f.isQuantile && min(f.controlCount, f.treatmentCount) < min(f.controlUsers, f.treatmentUsers)
            let counts = f.isQuantile && !requests ? (f.controlUsers, f.treatmentUsers) : (f.controlCount, f.treatmentCount)
            let have = "Only \(group(counts.0)) \(requests ? "requests" : "users") in \(control) and \(group(counts.1)) in \(treatment) so far"
            why.append(tooFew ? "\(have); a comparison needs at least \(minimumUsers) users in each."
                : "\(have): an early result, which may not hold as more users arrive.")
        } else if testNeedsMoreData, let note = f.note {
            why.append(note.prefix(1).uppercased() + note.dropFirst() + ".")
        } else if intervalPastRange {
            why.append(tooFew ? "Its interval reaches past what \(what) can change (\(rangeText)): too few users to measure it yet."
                : "Its interval is not shown: it reaches past what \(what) can change (\(rangeText)), so there are too few users to tell the size of the change yet, though its direction is significant.")
        } else if liftPastRange, let range = possibleLifts {
            let past = range.upper.isInfinite ? "reaches below −100%, impossible for a value that cannot be negative"
                : "reaches past what \(title) can change (\(formatPercent(range.lower)) to \(formatPercent(range.upper)))"
            why.append(tooFew ? "Its lift interval \(past): too few users to measure it yet."
                : "Its lift interval is not shown: it \(past), so there are too few users to tell the size of the change yet.")
        } else if liftUnbounded {
            why.append(tooFew ? "The lift cannot be bounded yet: \(control)'s value is not yet told apart from 0, so too few users to measure it."
                : "The lift has no interval yet: \(control)'s value is not yet told apart from 0; read the difference instead.")
        }
        if f.lift == nil, f.control == 0 {
            why.append("No lift: \(control)'s value is 0.")
        }

        // What is shown.
        let showInterval = !tooFew && !intervalPastRange
        let shownInterval = showInterval ? f.interval : nil
        let shownLift: (lower: Double, upper: Double)? = tooFew || liftPastRange ? nil : liftBounds
        let bayesian = f.bayesian.flatMap { $0.issue == nil && f.hasDirection && !tooFew ? $0 : nil }

        // Two views of the same row that seem to disagree.
        if !tooFew, f.pValue != nil {
            why += disagreements(f, interval: shownInterval, lift: shownLift, report: report, treatment: treatment)
            if let b = bayesian, let text = bayesianDisagreement(f, b, report: report, treatment: treatment) { why.append(text) }
        }
        if let note = f.note, empty == nil, !fewUsers, !testNeedsMoreData {
            why.append(note.prefix(1).uppercased() + note.dropFirst() + ".")
        }

        let rawDiffers = f.adjustedPValue.map { formatP($0) != f.pValue.map(formatP) } ?? false
        return Row(
            metric: f.metric, isPrimary: f.isPrimary, isQuantile: f.isQuantile,
            isGuardrail: f.metric.role == .guardrail && !f.isPrimary,
            control: f.control.map { formatValue($0, f.metric) } ?? "—",
            treatment: f.treatment.map { formatValue($0, f.metric) } ?? "—",
            difference: f.difference.map { formatSigned($0, f.metric) } ?? "—",
            interval: shownInterval.map { formatInterval($0, f.metric) },
            intervalLevel: shownInterval != nil && abs(f.intervalAlpha - alpha) > 1e-12 ? levelText(f.intervalAlpha) : nil,
            lift: f.lift.map(formatPercent) ?? "—",
            liftInterval: shownLift.map { "[\(formatPercentBare($0.lower)), \(formatPercentBare($0.upper))]" },
            pValue: f.decisionPValue.map(formatP) ?? "—",
            rawPValue: rawDiffers ? f.pValue.map(formatP) : nil,
            chanceToWin: bayesian.map { fixed($0.chanceToWin * 100, 1) + "%" },
            guardrail: f.metric.role == .guardrail && !f.isPrimary ? guardrailText(f) : nil,
            status: status, statusText: status.text,
            explanation: why.isEmpty ? nil : why.joined(separator: " "),
            sampleSize: sampleSize(f),
            liftValue: tooFew ? nil : f.lift.flatMap { $0.isFinite ? $0 : nil },
            liftBounds: shownLift,
            numbers: Numbers(control: f.control, treatment: f.treatment, difference: f.difference,
                             interval: shownInterval.map { ($0.lower, $0.upper) }, lift: f.lift, liftInterval: shownLift,
                             pValue: f.decisionPValue, rawPValue: f.pValue, chanceToWin: bayesian?.chanceToWin,
                             controlCount: f.controlCount, treatmentCount: f.treatmentCount))
    }

    /// "99.6%": the confidence of an interval made at `alpha`.
    static func levelText(_ alpha: Double) -> String {
        let level = (1 - alpha) * 100
        var digits = 1
        while digits < 4 && fixed(level, digits - 1).hasPrefix("100") { digits += 1 }
        var text = fixed(level, max(0, digits - 1))
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text + "%"
    }

    /// How far a difference of the metric can go either way, when the metric is bounded (a rate: 1).
    static func differenceRange(_ metric: Metric) -> Double? {
        switch metric.kind {
        case .proportion: return 1
        case .quantile: return nil
        case .mean:
            let b = metric.acceptedValues
            return b == .defaultNumeric ? nil : b.upper - b.lower
        }
    }

    /// The lifts the metric can take: from −100% for a value that cannot be negative, and for a score with
    /// a positive floor (CSAT 1-5) from floor/ceiling − 1 to ceiling/floor − 1.
    static func liftRange(_ metric: Metric) -> (lower: Double, upper: Double)? {
        let nonNegative: Bool
        switch metric.source {
        case .turns, .repeatUsage, .errors, .field: nonNegative = true
        case .feedback: nonNegative = metric.kind == .proportion || (metric.bounds.map { $0.lower >= 0 } ?? false)
        }
        guard nonNegative else { return nil }
        if metric.kind == .mean, let b = metric.bounds, b.lower > 0 {
            return (b.lower / b.upper - 1, b.upper / b.lower - 1)
        }
        return (-1, .infinity)
    }

    /// The guardrail in words, as the decision reads it.
    static func guardrailText(_ f: Facts) -> String {
        if let g = f.guardrail {
            let sign = f.metric.goal == .down ? 1.0 : -1.0
            let margin = g.margin.isRelative ? formatPercent(sign * g.margin.value) : formatSigned(sign * g.margin.value, f.metric)
            switch g.status {
            case .withinMargin: return "within the margin of \(margin)"
            case .beyondMargin: return "beyond the margin of \(margin): harmed"
            case .unclear: return "not yet shown within the margin of \(margin)"
            }
        }
        if let margin = f.metric.margin {
            let sign = f.metric.goal == .down ? 1.0 : -1.0
            let text = margin.isRelative ? formatPercent(sign * margin.value) : formatSigned(sign * margin.value, f.metric)
            return "margin of \(text) not testable yet, which holds shipping back"
        }
        return f.verdict == .worse ? "harmed: significantly worse" : "no significant harm"
    }

    /// Intervals on the row that exclude 0 while the p-value is not significant, or the other way round,
    /// and why.
    static func disagreements(_ f: Facts, interval: ConfidenceInterval?, lift: (lower: Double, upper: Double)?,
                              report: Report, treatment: String) -> [String] {
        var out: [String] = []
        let p = "the p-value, " + (f.decisionPValue.map(formatP) ?? "—") + ","
        let significant = f.significant
        let correction = report.plan.correction == .holm ? "Holm" : "Benjamini-Hochberg"
        let corrected = f.adjustedPValue != nil && f.familySize > 1
        func excludesZero(_ lo: Double, _ hi: Double) -> Bool { lo > 0 || hi < 0 }
        var absoluteDisagrees = false
        if let ci = interval, excludesZero(ci.lower, ci.upper) != significant {
            absoluteDisagrees = true
            let reason = corrected && abs(f.intervalAlpha - report.alpha) < 1e-12
                ? "the interval is unadjusted while the p-value is adjusted (\(correction), \(f.familySize) comparisons)"
                : "the two come from slightly different approximations and this result sits right at the line"
            out.append(significant
                ? "The interval \(formatInterval(ci, f.metric)) includes 0 but \(p) is significant: \(reason). The decision follows the p-value."
                : "The interval \(formatInterval(ci, f.metric)) excludes 0 but \(p) is not significant: \(reason). The decision follows the p-value.")
        }
        if let b = lift, excludesZero(b.lower, b.upper) != significant, !absoluteDisagrees {
            let liftText = "[\(formatPercentBare(b.lower)), \(formatPercentBare(b.upper))]"
            let method = f.isQuantile || f.cuped
                ? "the lift interval is the delta method's approximation on the relative change, while the p-value tests the difference"
                : "the lift interval is Fieller's and the p-value Welch's, which can part right at the line"
            let difference = interval.map { ci in ", whose interval \(formatInterval(ci, f.metric)) \(excludesZero(ci.lower, ci.upper) ? "excludes" : "includes") 0" } ?? ""
            out.append(significant
                ? "The lift interval \(liftText) includes 0 but \(p) is significant: \(method)\(difference). The decision follows the p-value."
                : "The lift interval \(liftText) excludes 0 but \(p) is not significant: \(method)\(difference). The decision follows the p-value.")
        }
        if !significant, corrected, let raw = f.pValue, raw < report.alpha {
            out.append("On its own the change is significant (\(formatPEquals(raw))), but not after the \(correction) correction for \(f.familySize) comparisons (\(formatPEquals(f.decisionPValue ?? raw))).")
        }
        return out
    }

    /// The Bayesian chance against the p-value, when one reads as a clear result and the other does not.
    static func bayesianDisagreement(_ f: Facts, _ b: BayesianEffect, report: Report, treatment: String) -> String? {
        let chance = b.chanceToWin
        let clear = chance >= clearChance || chance <= 1 - clearChance
        guard clear != f.significant, let p = f.decisionPValue else { return nil }
        var reasons: [String] = []
        if report.plan.method == .sequential {
            reasons.append("the p-value is the sequential test's, valid however often the report is looked at, so it needs more evidence than the Bayesian view, which reads the data as a single look")
        } else if report.plan.method == .groupSequential {
            reasons.append("the p-value is the group-sequential test's repeated p-value, valid at each of its looks, so it needs more evidence before the horizon than the Bayesian view, which reads the data as a single look")
        }
        if f.adjustedPValue != nil, f.familySize > 1, let raw = f.pValue, (f.adjustedPValue ?? raw) > raw {
            reasons.append("the p-value is adjusted for \(f.familySize) comparisons (\(report.plan.correction == .holm ? "Holm" : "Benjamini-Hochberg")) and the Bayesian chance is not")
        }
        if report.plan.prior != nil {
            reasons.append("the Bayesian view starts from the plan's prior, which pulls it toward its mean")
        }
        if let df = f.degreesOfFreedom, df < 30 {
            reasons.append("with so few users the t-test allows for the small sample and the Bayesian view's normal approximation does not")
        }
        if reasons.isEmpty {
            reasons.append("a chance is one-sided, while the two-sided test at alpha \(formatNumber(report.alpha)) needs a chance of about \(fixed((1 - report.alpha / 2) * 100, 1))% either way, and the two are computed on different scales (the relative change and the difference)")
        }
        let better = chance >= 0.5
        let chanceText = "the Bayesian chance that \(treatment) is \(better ? "better" : "worse") is \(fixed((better ? chance : 1 - chance) * 100, 1))%"
        let head = "The p-value, \(formatP(p)), is \(f.significant ? "" : "not ")significant but \(chanceText)"
        return head + ": " + reasons.joined(separator: "; ") + ". The decision follows the p-value."
    }
}
