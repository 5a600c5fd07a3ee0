import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools
import BakeoffStatistics
import Foundation

let planSpec = CommandSpec(
    "plan",
    summary: "Users needed per group for a metric and effect (sample size)",
    usage: ["--baseline B --mde D [options]", "--win-rate P [--tie-rate T] [options]", "--paired --mde D --sd-difference S [options]"],
    about: "Users needed per group (Student t-test power, noncentral t, solved exactly; equals statsmodels TTestIndPower). With --looks, beside it a group-sequential design with that many equally spaced looks (Lan-DeMets alpha spending): its maximum users (the fixed sample times the inflation factor), the users it expects to use with and without the effect, and the boundary at each look; and, for comparison, the users the always-valid confidence sequence needs. For an offline eval, the requests needed in a paired design: --win-rate for a pairwise judge (the exact sign test), --paired for a difference of per-request means (the paired t test).",
    options: [
        .single("--baseline", "B", "Control's current value: a rate in (0,1), or a mean with --std"),
        .single("--mde", "D", "Smallest difference to detect (absolute; see --mde-relative)"),
        .flag("--mde-relative", "Read --mde as a fraction of the baseline"),
        .single("--std", "S", "Standard deviation of a mean metric (effect size = mde/std)"),
        .single("--alpha", "A", "Significance level", default: "0.05"),
        .single("--power", "P", "Power", default: "0.8"),
        .single("--split", "S", "Treatment's share of traffic; the article's case study ran 0.2", default: "0.5"),
        .flag("--one-sided", "One-sided test"),
        .single("--daily-users", "N", "Users per day, to print the days needed"),
        .single("--looks", "K", "Group-sequential: K equally spaced looks up to the design's maximum users (1 to \(SampleSize.maximumLooks))"),
        .choice("--spending", spendingNames, accepts: { AlphaSpending(name: $0) != nil },
                "Group-sequential alpha spending: O'Brien-Fleming-type, Pocock-type, or the power family alpha t^RHO (RHO above 0, at most 20; power is RHO 1)",
                default: "obrien-fleming"),
        .single("--win-rate", "P", "Offline eval: the win rate to detect among requests not tied (e.g. 0.55)"),
        .single("--tie-rate", "T", "Offline eval: the share of requests the judge ties", default: "0"),
        .flag("--paired", "Offline eval: a difference of per-request means (--mde), paired by request"),
        .single("--sd-difference", "S", "With --paired, the standard deviation of the per-request differences"),
        .single("--correlation", "R", "With --paired and --std, the correlation of the two variants' scores over requests"),
        .choice("--format", PlanFormat.self, "Output format", default: "table"),
    ]
)

enum PlanFormat: String, CaseIterable { case table, json }

/// The spellings `--spending` advertises (AlphaSpending(name:) also reads "obf" and "power:2.5").
let spendingNames = ["obrien-fleming", "pocock", "power", "power:RHO"]

@Sendable func runPlan(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    if args.string("--win-rate") != nil || args.flag("--paired") { return try runPairedPlan(args, console) }
    guard let baseline = try args.double("--baseline") else { throw UsageError("--baseline is required (the control's current rate, e.g. 0.75)") }
    guard let mde = try args.double("--mde") else { throw UsageError("--mde is required (the smallest difference to detect, e.g. 0.05)") }
    var q = SampleSizeQuestion(baseline: baseline, minimumDetectableEffect: mde)
    q.relative = args.flag("--mde-relative")
    q.standardDeviation = try args.double("--std")
    if let a = try args.double("--alpha") { q.alpha = a }
    if let p = try args.double("--power") { q.power = p }
    if let s = try args.double("--split") { q.treatmentShare = s }
    q.oneSided = args.flag("--one-sided")
    q.dailyUsers = try args.double("--daily-users")
    q.looks = try args.int("--looks", in: 1...SampleSize.maximumLooks, rule: "from 1 to \(SampleSize.maximumLooks) (e.g. 5: a look after each fifth of the users)")
    if args.string("--spending") != nil, q.looks == nil {
        throw UsageError("--spending goes with --looks K (the group-sequential design's looks)")
    }
    // The parser has checked the name.
    if let spending = args.string("--spending").flatMap(AlphaSpending.init(name:)) { q.spending = spending }
    let format = args.choice("--format", PlanFormat.self) ?? .table
    let result: SampleSize
    do { result = try SampleSize.solve(q) } catch { throw UsageError(error.message + (BakeoffCLI.remedyHint(error).map { " (\($0))" } ?? "")) }
    switch format {
    case .json:
        var w = JSONWriter()
        w.object { w in
            w.value("control_n", result.controlN)
            w.value("treatment_n", result.treatmentN)
            w.value("total_n", result.totalN)
            w.value("effect_size", result.effectSize)
            w.value("exact_control_n", result.exactControlN)
            w.value("absolute_effect", result.absoluteEffect)
            w.value("alpha", q.alpha)
            w.value("power", q.power)
            w.value("treatment_share", q.treatmentShare)
            w.value("alternative", q.oneSided ? "larger" : "two-sided")
            if let days = result.days { w.value("days", days) }
            if let gs = result.groupSequential {
                w.object("group_sequential") { w in
                    w.value("looks", gs.looks)
                    w.value("spending", gs.spending.name)
                    w.value("alternative", gs.oneSided ? "larger" : "two-sided")
                    w.value("inflation_factor", gs.design.inflationFactor)
                    w.value("maximum_control_n", gs.maximumControlN)
                    w.value("maximum_treatment_n", gs.maximumTreatmentN)
                    w.value("maximum_total_n", gs.maximumTotalN)
                    w.value("expected_total_n_alternative", gs.expectedTotalNAlternative)
                    w.value("expected_total_n_null", gs.expectedTotalNNull)
                    if let days = gs.maximumDays { w.value("maximum_days", days) }
                    w.array("boundaries") { w in
                        for k in gs.boundaries.indices {
                            w.object { w in
                                w.value("look", k + 1)
                                w.value("total_n", gs.usersAtLooks[k])
                                w.value("z", gs.boundaries[k])
                                w.value("nominal_p", gs.nominalPValues[k])
                            }
                        }
                    }
                }
                w.object("confidence_sequence") { w in
                    w.value("total_n", result.confidenceSequenceTotalN)
                    w.value("tuning_parameter", SequentialTest.defaultTuningParameter)
                    w.value("alternative", "two-sided")
                }
            }
        }
        try console.print(w.text)
    case .table:
        let kind = q.standardDeviation == nil ? "rate" : "mean"
        var lines = ["Sample size for a \(kind) of \(q.baseline), detecting a difference of \(result.absoluteEffect) (effect size d = \(fixedString(result.effectSize, 4)))"]
        lines.append("alpha \(q.alpha) \(q.oneSided ? "one-sided" : "two-sided"), power \(q.power), treatment share \(q.treatmentShare)")
        lines.append("")
        var rows = [("control", result.controlN), ("treatment", result.treatmentN), ("total", result.totalN)]
        if q.treatmentShare == 0.5 { rows = [("per group", result.controlN), ("total", result.totalN)] }
        for (label, n) in rows { lines.append(label.padding(toLength: 12, withPad: " ", startingAt: 0) + String(n).leftPadded(10) + " users") }
        if let days = result.days { lines.append("days".padding(toLength: 12, withPad: " ", startingAt: 0) + String(days).leftPadded(10) + " at \(q.dailyUsers!) users per day") }
        if let gs = result.groupSequential { lines += groupSequentialLines(gs, result, q) }
        try console.print(lines.joined(separator: "\n"))
    }
    return .ok
}

/// The table's group-sequential part: the design, its boundary at each look, and the users of the three ways of
/// testing side by side.
func groupSequentialLines(_ gs: GroupSequentialUsers, _ result: SampleSize, _ q: SampleSizeQuestion) -> [String] {
    let sides = gs.oneSided ? "one-sided" : "two-sided"
    var lines = ["", "Group-sequential: \(gs.looks) equally spaced look\(gs.looks == 1 ? "" : "s"), \(gs.spending.title) spending, \(sides)"]
    lines.append("inflation factor \(fixedString(gs.design.inflationFactor, 4)) (the maximum sample over the fixed horizon's)")
    lines.append("")
    let header = ["look", "users", gs.oneSided ? "z boundary" : "|z| boundary", "nominal p (\(sides))"]
    let rows = gs.boundaries.indices.map { k in
        [String(k + 1), String(gs.usersAtLooks[k]), gs.boundaries[k].isFinite ? fixedString(gs.boundaries[k], 4) : "none",
         gs.boundaries[k].isFinite ? formatP(gs.nominalPValues[k]) : "-"]
    }
    lines += renderTable(header, rows, leftAligned: []).split(separator: "\n").map(String.init)
    lines.append("")
    lines.append("Users over both groups for power \(formatNumber(q.power)):")
    var comparison: [(String, String, String)] = [
        ("fixed horizon", String(result.totalN), "one look at the end"),
        ("group-sequential", String(gs.maximumTotalN), "at most; \(gs.expectedTotalNAlternative) expected with the effect, \(gs.expectedTotalNNull) without"),
        ("confidence sequence", result.confidenceSequenceTotalN.map(String.init) ?? "over 1e9",
         "always valid, any number of looks (two-sided, N* \(formatNumber(SequentialTest.defaultTuningParameter)))"),
    ]
    if let days = gs.maximumDays, let daily = q.dailyUsers {
        comparison[1].2 += "; at most \(days) day\(days == 1 ? "" : "s") at \(formatNumber(daily)) a day"
    }
    let width = comparison.map(\.1.count).max() ?? 0
    for (label, users, note) in comparison {
        lines.append(label.padding(toLength: 20, withPad: " ", startingAt: 0) + users.leftPadded(max(width, 10)) + "  " + note)
    }
    return lines
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

/// `bakeoff plan --win-rate P` and `--paired`: requests an offline eval needs (BakeoffStatistics.PairedSampleSize).
func runPairedPlan(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    let alpha = try args.double("--alpha", in: 1e-9...0.5, rule: "between 0 and 0.5") ?? 0.05
    let power = try args.double("--power", in: 0.01...0.999999, rule: "between 0 and 1") ?? 0.8
    let format = args.choice("--format", PlanFormat.self) ?? .table
    for option in ["--baseline", "--split", "--daily-users", "--looks", "--spending"] where args.string(option) != nil {
        throw UsageError("\(option) is for the live test's users; the paired plan (--win-rate, --paired) counts requests")
    }
    if args.flag("--mde-relative") { throw UsageError("--mde-relative is for the live test; the paired plan takes an absolute --mde") }
    if args.flag("--one-sided") { throw UsageError("--one-sided: the paired plan is two-sided") }
    if let p = try args.double("--win-rate") {
        guard !args.flag("--paired") else { throw UsageError("give either --win-rate (a pairwise judge) or --paired (a difference of means)") }
        guard p > 0, p < 1, p != 0.5 else { throw UsageError("--win-rate must be between 0 and 1 and not 0.5, got \(formatNumber(p))") }
        let tie = try args.double("--tie-rate", in: 0...0.99, rule: "a share from 0 to 0.99") ?? 0
        guard let plan = PairedSampleSize.requests(winRate: p, tieRate: tie, alpha: alpha, power: power) else {
            throw UsageError("a win rate of \(formatNumber(p)) is too close to 0.5 to detect with fewer than a million requests")
        }
        if format == .json {
            var w = JSONWriter()
            w.object { w in
                w.value("design", "paired, sign test"); w.value("win_rate", p); w.value("tie_rate", tie)
                w.value("alpha", alpha); w.value("power", power); w.value("requests", plan.requests)
                w.value("decisive_requests", plan.decisiveRequests); w.value("achieved_power", plan.power); w.value("critical_count", plan.criticalCount)
            }
            try console.print(w.text)
        } else {
            try console.print("""
                Requests for an offline eval judged pairwise: detecting a win rate of \(formatNumber(p)) among requests not tied
                (exact sign test, alpha \(formatNumber(alpha)) two-sided, power \(formatNumber(power)); \(formatNumber(tie * 100))% of requests tied)

                requests        \(String(plan.requests).leftPadded(8))
                not tied        \(String(plan.decisiveRequests).leftPadded(8))  (significant with \(plan.decisiveRequests - plan.criticalCount) or more wins, or as many losses)
                power           \(fixedString(plan.power, 3).leftPadded(8))
                """)
        }
        return .ok
    }
    if args.string("--tie-rate") != nil { throw UsageError("--tie-rate goes with --win-rate") }
    guard let mde = try args.double("--mde"), mde != 0 else { throw UsageError("--paired needs --mde: the difference of per-request means to detect") }
    let sd: Double
    if let s = try args.double("--sd-difference") {
        guard args.string("--std") == nil, args.string("--correlation") == nil else { throw UsageError("give either --sd-difference or --std with --correlation") }
        sd = s
    } else if let s = try args.double("--std"), let r = try args.double("--correlation") {
        guard r >= -1, r <= 1 else { throw UsageError("--correlation must be between -1 and 1, got \(formatNumber(r))") }
        sd = PairedSampleSize.standardDeviationOfDifferences(sdA: s, sdB: s, correlation: r)
    } else {
        throw UsageError("--paired needs --sd-difference S (the standard deviation of the per-request differences), or --std S with --correlation R")
    }
    guard sd >= 0, sd.isFinite else { throw UsageError("the standard deviation must not be negative, got \(formatNumber(sd))") }
    guard let plan = PairedSampleSize.requests(difference: mde, standardDeviation: sd, alpha: alpha, power: power) else {
        throw UsageError("a difference of \(formatNumber(mde)) cannot be planned with a standard deviation of \(formatNumber(sd))")
    }
    if format == .json {
        var w = JSONWriter()
        w.object { w in
            w.value("design", "paired, t test"); w.value("mde", mde); w.value("sd_difference", sd)
            w.value("alpha", alpha); w.value("power", power); w.value("requests", plan.requests)
            w.value("effect_size", plan.effectSize); w.value("achieved_power", plan.power)
        }
        try console.print(w.text)
    } else {
        try console.print("""
            Requests for an offline eval scored per request: detecting a mean difference of \(formatNumber(mde)) paired by request
            (paired t test, sd of the differences \(formatNumber(sd)), effect size \(fixedString(plan.effectSize, 4)), alpha \(formatNumber(alpha)) two-sided, power \(formatNumber(power)))

            requests        \(String(plan.requests).leftPadded(8))
            power           \(fixedString(plan.power, 3).leftPadded(8))
            """)
    }
    return .ok
}
