import BakeoffCore
import BakeoffReport
import BakeoffStatistics

extension TrackingRecord {
    /// An experiment's analysis as a run (README, "Recording runs in MLflow", has every key).
    ///
    /// Params hold the plan and the data analysed; metrics every metric's result per treatment arm against the
    /// control (`METRIC/ARM/lift`, ...) and every variant's mean (`METRIC/VARIANT/mean`); tags the decision.
    /// `report` is the report as printed, so report.json equals `--format json`.
    public static func analysis(_ report: Report, source: RunSource) -> TrackingRecord {
        let decision = report.decision
        var b = RecordBuilder(runName: "\(report.experiment.isEmpty ? "analysis" : report.experiment) to \(report.lastTimestamp.map { String(formatTimestamp($0).prefix(10)) } ?? "now")",
                              experiment: report.experiment)
        b.standardTags(source, command: "analyze", schema: "bakeoff.report/2",
                       note: "**\(decision.action.rawValue)** \(decision.treatment): \(decision.reason)")

        let plan = report.plan
        b.param(["experiment"], report.experiment)
        b.param(["input"], source.input)
        b.param(["alpha"], report.alpha)
        b.param(["power"], plan.power)
        b.param(["unit"], report.unit.rawValue)
        b.param(["method"], plan.method.rawValue)
        if plan.method == .sequential { b.param(["sequential_tuning"], plan.sequentialTuning) }
        if let m = plan.monitoring {
            b.param(["spending"], m.design.spending.name)
            switch m.horizon {
            case .users(let n): b.param(["planned_users"], n)
            case .days(let d): b.param(["planned_days"], d)
            }
            b.param(["looks"], m.looks.count)
        }
        b.param(["correction"], plan.correction.configName)
        b.param(["control"], report.control)
        b.param(["primary_metric"], report.primaryMetric)
        b.param(["allocation"], plan.allocation.map { $0.arms.map { "\($0.name)=\(RecordBuilder.number($0.weight))" }.joined(separator: ",") })
        b.param(["mde"], plan.minimumDetectableEffect)
        if plan.minimumDetectableEffect != nil { b.param(["mde_relative"], String(plan.minimumDetectableEffectIsRelative)) }
        b.param(["min_runtime_days"], plan.effectiveMinimumRuntimeDays)
        b.param(["max_runtime_days"], plan.maximumRuntimeDays)
        b.param(["start"], plan.start.map(formatTimestamp))
        b.param(["period_first"], report.firstTimestamp.map(formatTimestamp))
        b.param(["period_last"], report.lastTimestamp.map(formatTimestamp))
        b.param(["metrics"], (report.results.map(\.metric.name) + report.quantiles.map(\.metric.name)).uniqued().joined(separator: ","))
        for v in report.variants {
            b.param(["users", v.name], v.users)
            if report.hasEvents { b.param(["requests", v.name], v.requests) }
        }

        for r in report.results {
            b.metric([r.metric.name, report.control, "mean"], r.control.mean)
            b.metric([r.metric.name, r.treatment, "mean"], r.treatmentGroup.mean)
            b.comparison(r.metric.name, r.treatment, lift: r.absoluteDifference, interval: r.absoluteInterval,
                         relative: r.relativeLift, relativeInterval: r.relativeInterval, p: r.pValue, adjustedP: r.adjustedPValue)
        }
        for q in report.quantiles {
            b.metric([q.metric.name, report.control, "value"], q.control)
            b.metric([q.metric.name, q.treatment, "value"], q.treatmentValue)
            let lift = q.control.flatMap { c in q.treatmentValue.map { $0 - c } }
            b.comparison(q.metric.name, q.treatment, lift: lift, interval: q.absoluteInterval, relative: q.relativeChange,
                         relativeInterval: q.relativeInterval.map { .bounded(lower: $0.lower, upper: $0.upper) },
                         p: q.pValue, adjustedP: q.adjustedPValue)
        }
        b.metric(["srm", "p_value"], report.sampleRatio.pValue)
        b.metric(["elapsed_days"], report.elapsedDays)
        if report.hasEvents {
            b.metric(["events", "requests"], report.requestEvents)
            b.metric(["events", "feedback"], report.feedbackEvents)
        }

        b.tag(["bakeoff.decision"], decision.action.rawValue)
        b.tag(["bakeoff.decision_variant"], decision.treatment)
        b.tag(["bakeoff.decision_reason"], decision.reason)
        for d in report.decisions {
            b.tag(["bakeoff.decision", d.treatment], d.action.rawValue)
            b.tag(["bakeoff.decision_reason", d.treatment], d.reason)
        }
        b.tag(["bakeoff.srm"], report.sampleRatio.status.rawValue)
        if !report.warnings.isEmpty { b.tag(["bakeoff.warnings"], report.warnings.joined(separator: "\n")) }

        b.record.artifacts = [
            Artifact(name: "report.json", contentType: "application/json", text: report.render(.json)),
            Artifact(name: "report.html", contentType: "text/html; charset=utf-8", text: report.render(.html)),
        ]
        return b.record
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
