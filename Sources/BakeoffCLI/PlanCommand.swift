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
    usage: ["--baseline B --mde D [options]"],
    about: "Users needed per group (Student t-test power, noncentral t, solved exactly; equals statsmodels TTestIndPower).",
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
        .choice("--format", PlanFormat.self, "Output format", default: "table"),
    ]
)

enum PlanFormat: String, CaseIterable { case table, json }

@Sendable func runPlan(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
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
        try console.print(lines.joined(separator: "\n"))
    }
    return .ok
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
