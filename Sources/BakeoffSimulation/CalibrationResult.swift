import BakeoffStatistics
import BakeoffCore

/// One row of the calibration report: a method applied to a metric.
public enum CalibrationRowID: String, Sendable, CaseIterable, Comparable {
    case fixedMean = "fixed-mean"
    case fixedRatio = "fixed-ratio"
    case naiveRatio = "naive-conversations"
    case peekingMean = "peeking-mean"
    case peekingRatio = "peeking-ratio"
    case sequentialMean = "sequential-mean"
    case sequentialRatio = "sequential-ratio"
    case groupSequentialMean = "group-sequential-mean"
    case groupSequentialRatio = "group-sequential-ratio"
    case groupSequentialWeekdaysMean = "group-sequential-weekdays-mean"
    case groupSequentialWeekdaysRatio = "group-sequential-weekdays-ratio"
    case groupSequentialTwiceDailyMean = "group-sequential-twice-daily-mean"
    case groupSequentialTwiceDailyRatio = "group-sequential-twice-daily-ratio"
    case relativeMean = "relative-mean"
    case relativeRatio = "relative-ratio"
    case quantileP50 = "quantile-p50"
    case quantileP95 = "quantile-p95"
    case naiveQuantileP50 = "naive-quantile-p50"
    case naiveQuantileP95 = "naive-quantile-p95"
    case cuped = "cuped-mean"
    case evalWinRate = "eval-win-rate"
    case evalPairedDifference = "eval-paired-difference"
    case evalMcNemar = "eval-mcnemar"

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// The `--methods` family the row belongs to.
    public var method: CalibrationMethod {
        switch self {
        case .fixedMean, .fixedRatio, .naiveRatio: return .fixed
        case .peekingMean, .peekingRatio: return .peeking
        case .sequentialMean, .sequentialRatio: return .sequential
        case .groupSequentialMean, .groupSequentialRatio, .groupSequentialWeekdaysMean, .groupSequentialWeekdaysRatio,
             .groupSequentialTwiceDailyMean, .groupSequentialTwiceDailyRatio: return .groupSequential
        case .relativeMean, .relativeRatio: return .relative
        case .quantileP50, .quantileP95, .naiveQuantileP50, .naiveQuantileP95: return .quantile
        case .cuped: return .cuped
        case .evalWinRate, .evalPairedDifference, .evalMcNemar: return .offline
        }
    }

    /// How the row tests, for the report's first column.
    public var methodTitle: String {
        switch self {
        case .fixedMean, .fixedRatio: return "fixed horizon"
        case .naiveRatio: return "naive per conversation"
        case .peekingMean, .peekingRatio: return "naive daily peeking"
        case .sequentialMean, .sequentialRatio: return "sequential, daily looks"
        case .groupSequentialMean, .groupSequentialRatio: return "group-sequential, daily looks"
        case .groupSequentialWeekdaysMean, .groupSequentialWeekdaysRatio: return "group-sequential, weekday looks"
        case .groupSequentialTwiceDailyMean, .groupSequentialTwiceDailyRatio: return "group-sequential, 2 looks a day"
        case .relativeMean, .relativeRatio: return "relative lift, Fieller"
        case .quantileP50, .quantileP95: return "quantile, clustered"
        case .naiveQuantileP50, .naiveQuantileP95: return "quantile, naive"
        case .cuped: return "CUPED"
        case .evalWinRate: return "offline, judge in both orders"
        case .evalPairedDifference: return "offline, paired t"
        case .evalMcNemar: return "offline, McNemar exact"
        }
    }

    /// The metric tested.
    public var metricTitle: String {
        switch self {
        case .fixedMean, .peekingMean, .sequentialMean, .groupSequentialMean, .groupSequentialWeekdaysMean,
             .groupSequentialTwiceDailyMean, .relativeMean, .cuped: return "minutes/user"
        case .fixedRatio, .naiveRatio, .peekingRatio, .sequentialRatio, .groupSequentialRatio, .groupSequentialWeekdaysRatio,
             .groupSequentialTwiceDailyRatio, .relativeRatio: return "completion"
        case .quantileP50, .naiveQuantileP50: return "latency P50"
        case .quantileP95, .naiveQuantileP95: return "latency P95"
        case .evalWinRate: return "win rate (biased judge)"
        case .evalPairedDifference: return "accuracy, 2 answers"
        case .evalMcNemar: return "accuracy, 1 answer"
        }
    }

    /// The quantities the row measures.
    var quantities: [CalibrationQuantity] {
        switch self {
        case .fixedMean, .fixedRatio, .quantileP50, .quantileP95, .cuped: return [.falsePositive, .power, .coverage]
        case .naiveRatio, .naiveQuantileP50, .naiveQuantileP95: return [.falsePositive, .coverage]
        case .peekingMean, .peekingRatio: return [.falsePositive]
        case .sequentialMean, .sequentialRatio: return [.falsePositive, .power, .coverage, .coverageAtEnd]
        case .groupSequentialMean, .groupSequentialRatio: return [.falsePositive, .power, .fixedHorizonPower, .coverage, .coverageAtEnd]
        case .groupSequentialWeekdaysMean, .groupSequentialWeekdaysRatio, .groupSequentialTwiceDailyMean,
             .groupSequentialTwiceDailyRatio: return [.falsePositive]
        case .relativeMean, .relativeRatio: return [.coverage]
        case .evalWinRate, .evalPairedDifference: return [.falsePositive, .power, .coverage]
        case .evalMcNemar: return [.falsePositive, .power]
        }
    }

    /// The row's targets at significance level `alpha` from `simulations` simulations (at 0.05: FPR in
    /// [0.04, 0.06], coverage in [0.93, 0.97], sequential FPR at most 0.05, naive peeking above 0.15).
    ///
    /// The group-sequential targets are the issue's: FPR in [0.8 alpha, alpha], coverage of the repeated intervals at
    /// least 1 - alpha, power at least 0.9 of the fixed-horizon test's on the same data. A correct design meets the
    /// first two exactly at alpha, so half of all runs would miss them by Monte-Carlo noise alone: they get an
    /// allowance of three standard errors of a rate of alpha from `simulations` simulations (about 0.01 at 4,000,
    /// the margin the other rows' 0.2 alpha gives there).
    public func checks(alpha: Double, simulations: Int) -> [CalibrationCheck] {
        let fpr = CalibrationCheck(.falsePositive, .within(0.8 * alpha, 1.2 * alpha))
        let coverage = CalibrationCheck(.coverage, .within(1 - 1.4 * alpha, 1 - 0.6 * alpha))
        let allowance = 3 * (alpha * (1 - alpha) / Double(max(simulations, 1))).squareRoot()
        let groupSequentialFPR = CalibrationCheck(.falsePositive, .within(0.8 * alpha, alpha), allowance: allowance)
        switch self {
        case .fixedMean, .fixedRatio, .quantileP50, .quantileP95, .cuped: return [fpr, coverage]
        case .naiveRatio: return [CalibrationCheck(.falsePositive, .above(1.2 * alpha))]
        case .peekingMean, .peekingRatio: return [CalibrationCheck(.falsePositive, .above(3 * alpha))]
        case .sequentialMean, .sequentialRatio:
            return [CalibrationCheck(.falsePositive, .atMost(alpha)), CalibrationCheck(.coverage, .atLeast(1 - alpha))]
        case .groupSequentialMean, .groupSequentialRatio:
            return [groupSequentialFPR, CalibrationCheck(.powerVersusFixed, .atLeast(0.9)),
                    CalibrationCheck(.coverage, .atLeast(1 - alpha), allowance: allowance)]
        case .groupSequentialWeekdaysMean, .groupSequentialWeekdaysRatio, .groupSequentialTwiceDailyMean,
             .groupSequentialTwiceDailyRatio: return [groupSequentialFPR]
        case .relativeMean, .relativeRatio: return [coverage]
        case .naiveQuantileP50, .naiveQuantileP95: return [CalibrationCheck(.coverage, .below(1 - 1.4 * alpha))]
        // Exact tests (the sign test, McNemar's) are conservative: at most alpha.
        case .evalWinRate: return [CalibrationCheck(.falsePositive, .atMost(1.2 * alpha)), coverage]
        case .evalPairedDifference: return [fpr, coverage]
        case .evalMcNemar: return [CalibrationCheck(.falsePositive, .atMost(1.2 * alpha))]
        }
    }
}

/// What a row counts over the simulations.
public enum CalibrationQuantity: Int, Sendable, CaseIterable {
    /// A/A experiments declared significant.
    case falsePositive
    /// Experiments with the effect declared significant.
    case power
    /// Experiments with the effect whose interval covers the true difference (sequential and group-sequential: at
    /// every look).
    case coverage
    /// Sequential and group-sequential only: the interval at the last look covers the truth.
    case coverageAtEnd
    /// Group-sequential only: experiments with the effect where the fixed-horizon test of the same data at the
    /// last look is significant, the power the group-sequential test is compared with.
    case fixedHorizonPower
    /// Group-sequential only: power over the fixed-horizon power of the same experiments (derived, not counted).
    case powerVersusFixed

    /// The short name used in targets.
    var label: String {
        switch self {
        case .falsePositive: return "FPR"
        case .power: return "power"
        case .coverage: return "cov"
        case .coverageAtEnd: return "cov at end"
        case .fixedHorizonPower: return "fixed-horizon power"
        case .powerVersusFixed: return "power vs fixed"
        }
    }
}

/// A target one quantity of a row must meet.
public struct CalibrationCheck: Sendable, Equatable {
    public enum Rule: Sendable, Equatable {
        case within(Double, Double)
        case atMost(Double)
        case atLeast(Double)
        case above(Double)
        case below(Double)
    }

    public var quantity: CalibrationQuantity
    public var rule: Rule
    /// How far beyond the rule's bounds an estimate may fall and still meet the target: the Monte-Carlo noise
    /// allowed for a target a correct method meets exactly (0: judged on the bounds themselves).
    public var allowance: Double

    /// Bounds are rounded to 12 decimals, so that 0.8 × 0.05 is the 0.04 a reader sees.
    public init(_ quantity: CalibrationQuantity, _ rule: Rule, allowance: Double = 0) {
        func r(_ x: Double) -> Double { (x * 1e12).rounded() / 1e12 }
        self.quantity = quantity
        self.allowance = allowance
        switch rule {
        case .within(let lo, let hi): self.rule = .within(r(lo), r(hi))
        case .atMost(let x): self.rule = .atMost(r(x))
        case .atLeast(let x): self.rule = .atLeast(r(x))
        case .above(let x): self.rule = .above(r(x))
        case .below(let x): self.rule = .below(r(x))
        }
    }

    /// Whether the estimate meets the target (judged on the point estimate, with the allowance).
    public func isMet(by value: Double) -> Bool {
        let a = allowance
        switch rule {
        case .within(let lo, let hi): return lo - a <= value && value <= hi + a
        case .atMost(let x): return value <= x + a
        case .atLeast(let x): return value >= x - a
        case .above(let x): return value > x - a
        case .below(let x): return value < x + a
        }
    }

    /// "FPR 0.04-0.06", "cov >= 0.95", "FPR > 0.15", "FPR 0.04-0.05 ±0.0103".
    public var text: String {
        let name = quantity.label
        func n(_ x: Double) -> String { formatNumber((x * 10_000).rounded() / 10_000) }
        let bounds: String
        switch rule {
        case .within(let lo, let hi): bounds = "\(name) \(n(lo))-\(n(hi))"
        case .atMost(let x): bounds = "\(name) <= \(n(x))"
        case .atLeast(let x): bounds = "\(name) >= \(n(x))"
        case .above(let x): bounds = "\(name) > \(n(x))"
        case .below(let x): bounds = "\(name) < \(n(x))"
        }
        return allowance > 0 ? bounds + " ±" + n(allowance) : bounds
    }
}

/// A rate estimated from simulations, with its Monte-Carlo uncertainty.
public struct MonteCarloRate: Sendable, Equatable {
    public var count: Int
    public var trials: Int

    public init(count: Int, trials: Int) {
        self.count = count
        self.trials = trials
    }

    /// count / trials.
    public var estimate: Double { trials == 0 ? .nan : Double(count) / Double(trials) }

    /// Wilson's score interval at the given level (default 95%): stays inside [0, 1] and is honest near 0 and 1.
    public func interval(level: Double = 0.95) -> ConfidenceInterval {
        guard trials > 0 else { return ConfidenceInterval(lower: .nan, upper: .nan) }
        let n = Double(trials), p = estimate
        let z = -Normal.quantile((1 - level) / 2)
        let z2n = z * z / n
        let center = (p + z2n / 2) / (1 + z2n)
        let half = z / (1 + z2n) * (p * (1 - p) / n + z2n / (4 * n)).squareRoot()
        return ConfidenceInterval(lower: max(0, center - half), upper: min(1, center + half))
    }
}

/// Counts of every row's quantities over some simulations; tallies of disjoint simulations add up.
struct CalibrationTally: Sendable, Equatable {
    var counts = [Int](repeating: 0, count: CalibrationRowID.allCases.count * CalibrationQuantity.allCases.count)
    /// Sum and number of CUPED's variance reductions (1 − adjusted / unadjusted variance of the difference).
    var varianceReductionSum = 0.0
    var varianceReductionCount = 0

    private static func slot(_ row: CalibrationRowID, _ quantity: CalibrationQuantity) -> Int {
        CalibrationRowID.allCases.firstIndex(of: row)! * CalibrationQuantity.allCases.count + quantity.rawValue
    }

    mutating func count(_ row: CalibrationRowID, _ quantity: CalibrationQuantity) {
        counts[Self.slot(row, quantity)] += 1
    }

    func count(of row: CalibrationRowID, _ quantity: CalibrationQuantity) -> Int {
        counts[Self.slot(row, quantity)]
    }

    static func += (lhs: inout CalibrationTally, rhs: CalibrationTally) {
        for i in lhs.counts.indices { lhs.counts[i] += rhs.counts[i] }
        lhs.varianceReductionSum += rhs.varianceReductionSum
        lhs.varianceReductionCount += rhs.varianceReductionCount
    }
}

/// One row's measured rates, targets and verdict.
public struct CalibrationRow: Sendable, Equatable {
    public var id: CalibrationRowID
    /// Rejections over A/A experiments.
    public var falsePositiveRate: MonteCarloRate?
    /// Rejections over experiments with the effect.
    public var power: MonteCarloRate?
    /// Intervals covering the true difference (sequential: at every look).
    public var coverage: MonteCarloRate?
    /// Sequential and group-sequential only: coverage at the last look.
    public var coverageAtEnd: MonteCarloRate?
    /// Group-sequential only: the fixed-horizon test's power on the same experiments.
    public var fixedHorizonPower: MonteCarloRate?
    public var checks: [CalibrationCheck]
    /// Extra context for a reader (CUPED's variance reduction, the sequential coverage at the end).
    public var note: String?

    /// The counted rate of `quantity` (nil for one the row does not count, and for the derived power vs fixed).
    public func rate(_ quantity: CalibrationQuantity) -> MonteCarloRate? {
        switch quantity {
        case .falsePositive: return falsePositiveRate
        case .power: return power
        case .coverage: return coverage
        case .coverageAtEnd: return coverageAtEnd
        case .fixedHorizonPower: return fixedHorizonPower
        case .powerVersusFixed: return nil
        }
    }

    /// The estimate of `quantity`: a counted rate, or the power over the fixed-horizon power.
    public func value(_ quantity: CalibrationQuantity) -> Double? {
        guard quantity == .powerVersusFixed else { return rate(quantity)?.estimate }
        guard let power, let fixedHorizonPower else { return nil }
        return power.estimate / fixedHorizonPower.estimate
    }

    /// The checks the row misses.
    public var failedChecks: [CalibrationCheck] {
        checks.filter { check in !(value(check.quantity).map { check.isMet(by: $0) } ?? false) }
    }

    /// Every check met.
    public var passed: Bool { failedChecks.isEmpty }
}

/// The outcome of `Calibration.run`: one row per method and metric, in report order.
public struct CalibrationResult: Sendable, Equatable {
    public var settings: CalibrationSettings
    public var rows: [CalibrationRow]
    /// CUPED's mean reduction of the variance of the difference, over the simulations (nil without CUPED).
    public var meanVarianceReduction: Double?

    init(settings: CalibrationSettings, tally: CalibrationTally) {
        self.settings = settings
        let n = settings.simulations
        meanVarianceReduction = tally.varianceReductionCount > 0
            ? tally.varianceReductionSum / Double(tally.varianceReductionCount) : nil
        rows = CalibrationRowID.allCases.filter { settings.methods.contains($0.method) }.map { id in
            var row = CalibrationRow(id: id, checks: id.checks(alpha: settings.alpha, simulations: n))
            for quantity in id.quantities {
                let rate = MonteCarloRate(count: tally.count(of: id, quantity), trials: n)
                switch quantity {
                case .falsePositive: row.falsePositiveRate = rate
                case .power: row.power = rate
                case .coverage: row.coverage = rate
                case .coverageAtEnd: row.coverageAtEnd = rate
                case .fixedHorizonPower: row.fixedHorizonPower = rate
                case .powerVersusFixed: break
                }
            }
            return row
        }
        let fixedPower = rows.first { $0.id == .fixedMean }?.power
        for i in rows.indices {
            switch rows[i].id {
            case .sequentialMean, .sequentialRatio:
                if let end = rows[i].coverageAtEnd { rows[i].note = "coverage is at every look; at the last look \(fixed(end.estimate, 3))" }
            case .groupSequentialMean, .groupSequentialRatio:
                guard let power = rows[i].power, let fixedPower = rows[i].fixedHorizonPower, let end = rows[i].coverageAtEnd else { break }
                let ratio = rows[i].value(.powerVersusFixed) ?? .nan
                rows[i].note = "\(Self.looks(.groupSequentialMean, settings.days)) looks; power \(fixed(power.estimate, 3)) vs \(fixed(fixedPower.estimate, 3)) for the fixed-horizon test of the same data (\(fixed(ratio, 3)) of it); coverage of the repeated intervals is at every look; at the last look \(fixed(end.estimate, 3))"
            case .groupSequentialWeekdaysMean, .groupSequentialWeekdaysRatio:
                rows[i].note = "\(Self.looks(rows[i].id, settings.days)) looks: the end of every Monday to Friday, the last day a Friday"
            case .groupSequentialTwiceDailyMean, .groupSequentialTwiceDailyRatio:
                rows[i].note = "\(Self.looks(rows[i].id, settings.days)) looks: after half of each day's users and at the end of the day"
            case .cuped:
                guard let reduction = meanVarianceReduction else { break }
                var note = "variance of the difference \(fixed(reduction * 100, 1))% lower on average"
                if let fixedPower { note += "; power \(fixed(rows[i].power!.estimate, 3)) vs \(fixed(fixedPower.estimate, 3)) unadjusted" }
                rows[i].note = note
            default: break
            }
        }
    }

    /// Every row meets its targets.
    public var passed: Bool { rows.allSatisfy(\.passed) }

    /// How many looks a group-sequential row takes over `days` days.
    static func looks(_ row: CalibrationRowID, _ days: Int) -> Int {
        switch row {
        case .groupSequentialWeekdaysMean, .groupSequentialWeekdaysRatio: return (1...days).count(where: { CalibrationCalendar.isWeekday(day: $0, of: days) })
        case .groupSequentialTwiceDailyMean, .groupSequentialTwiceDailyRatio: return 2 * days
        default: return days
        }
    }
}

/// Output formats of `bakeoff calibrate`.
public enum CalibrationFormat: String, Sendable, CaseIterable {
    case table, markdown, json
}

extension CalibrationResult {
    public func render(_ format: CalibrationFormat) -> String {
        switch format {
        case .table: return renderText(markdown: false)
        case .markdown: return renderText(markdown: true)
        case .json: return renderJSON()
        }
    }

    private static func formatRate(_ rate: MonteCarloRate?, withInterval: Bool) -> String {
        guard let rate else { return "-" }
        guard withInterval else { return fixed(rate.estimate, 3) }
        let ci = rate.interval()
        return "\(fixed(rate.estimate, 3)) [\(fixed(ci.lower, 3)), \(fixed(ci.upper, 3))]"
    }

    private var headerLines: [String] {
        let s = settings
        let effect = (s.effect > 0 ? "+" : "") + formatNumber(s.effect * 100) + "%"
        return [
            "\(s.simulations) simulations of \(s.days) day\(s.days == 1 ? "" : "s") x \(s.usersPerDay) new users a day (assigned 50/50), seed \(s.seed).",
            "Each simulation: one A/A experiment (for the FPR) and one with a \(effect) effect on every metric (power, coverage); alpha \(formatNumber(s.alpha)), sequential N* \(formatNumber(s.tuningParameter))\(s.methods.contains(.groupSequential) ? ", group-sequential: O'Brien-Fleming-type spending over the \(s.days) days, two-sided" : "").",
            "Metrics: minutes/user is a per-user mean (CUPED's covariate: the same user's minutes before the experiment); completion is completed conversations over conversations, a ratio of per-user sums (delta method); latency P50/P95 are over requests, several per user.",
        ]
    }

    private func renderText(markdown: Bool) -> String {
        let header = ["method", "metric", "FPR [95% MC]", "power", "coverage [95% MC]", "target", "result"]
        let rows = self.rows.map { row in
            [row.id.methodTitle, row.id.metricTitle, Self.formatRate(row.falsePositiveRate, withInterval: true),
             Self.formatRate(row.power, withInterval: false), Self.formatRate(row.coverage, withInterval: true),
             row.checks.map(\.text).joined(separator: ", "), row.passed ? "PASS" : "FAIL"]
        }
        var out = markdown ? "## Calibration by simulation\n\n" : "Calibration by simulation\n=========================\n"
        out += headerLines.map { markdown ? $0 : wrap($0) }.joined(separator: markdown ? "\n\n" : "\n") + "\n\n"
        out += markdown ? markdownTable(header, rows, leftAligned: [0, 1, 5]) : renderTable(header, rows, leftAligned: [0, 1, 5])
        let notes = self.rows.compactMap { row in row.note.map { "\(row.id.methodTitle), \(row.id.metricTitle): \($0)" } }
        if !notes.isEmpty {
            out += "\n" + notes.map { markdown ? "- " + $0 : wrap("* " + $0, indent: "  ") }.joined(separator: "\n") + "\n"
        }
        let sample = MonteCarloRate(count: Int((settings.alpha * Double(settings.simulations)).rounded()), trials: settings.simulations).interval()
        var explanation = "FPR: share of A/A experiments declared significant; power: share of experiments with the effect declared significant; coverage: share of 95% intervals containing the true difference. [95% MC] is the Wilson interval of the estimate from \(settings.simulations) simulations (an FPR of \(formatNumber(settings.alpha)) reads as [\(fixed(sample.lower, 3)), \(fixed(sample.upper, 3))]); PASS judges the estimate itself against the target."
        if self.rows.contains(where: { $0.checks.contains { $0.allowance > 0 } }) {
            explanation += " A target with ± is one a correct method meets exactly; the estimate may miss it by that much, three Monte-Carlo standard errors."
        }
        out += "\n" + (markdown ? explanation : wrap(explanation)) + "\n\n"
        let failed = self.rows.filter { !$0.passed }
        if failed.isEmpty {
            out += "\(markdown ? "**PASS**" : "PASS"): all \(self.rows.count) rows meet their targets.\n"
        } else {
            let list = failed.map { row in
                "\(row.id.methodTitle), \(row.id.metricTitle) (\(row.failedChecks.map(\.text).joined(separator: ", ")))"
            }
            let text = "FAIL: \(failed.count) of \(self.rows.count) rows miss their target: " + list.joined(separator: "; ") + "."
            out += (markdown ? "**FAIL**" + text.dropFirst(4) : wrap(text)) + "\n"
        }
        return out
    }

    private func renderJSON() -> String {
        var w = JSONWriter()
        w.object { w in
            w.value("schema", "bakeoff.calibration/1")
            w.object("settings") { w in
                w.value("simulations", settings.simulations)
                w.value("days", settings.days)
                w.value("users_per_day", settings.usersPerDay)
                if let seed = Int(exactly: settings.seed) { w.value("seed", seed) } else { w.value("seed", String(settings.seed)) }
                w.value("effect", settings.effect)
                w.value("tuning_parameter", settings.tuningParameter)
                w.value("alpha", settings.alpha)
                w.array("methods") { w in for m in settings.methods.sorted() { w.value(nil, m.rawValue) } }
            }
            w.array("rows") { w in
                for row in rows {
                    w.object { w in
                        w.value("id", row.id.rawValue)
                        w.value("method", row.id.method.rawValue)
                        w.value("title", row.id.methodTitle)
                        w.value("metric", row.id.metricTitle)
                        for (key, quantity) in [("false_positive_rate", CalibrationQuantity.falsePositive), ("power", .power),
                                                ("coverage", .coverage), ("coverage_at_end", .coverageAtEnd),
                                                ("fixed_horizon_power", .fixedHorizonPower)] {
                            guard let rate = row.rate(quantity) else { w.value(key, nil as Double?); continue }
                            let ci = rate.interval()
                            w.object(key) { w in
                                w.value("estimate", rate.estimate)
                                w.value("count", rate.count)
                                w.value("simulations", rate.trials)
                                w.value("mc_lower", ci.lower)
                                w.value("mc_upper", ci.upper)
                            }
                        }
                        w.value("power_vs_fixed", row.value(.powerVersusFixed))
                        w.array("targets") { w in for check in row.checks { w.value(nil, check.text) } }
                        w.value("passed", row.passed)
                        w.value("note", row.note)
                    }
                }
            }
            w.value("cuped_variance_reduction", meanVarianceReduction)
            w.value("passed", passed)
        }
        return w.text + "\n"
    }
}
