import BakeoffCore
import BakeoffEval
import BakeoffGateway
import BakeoffStore

/// What the live experiment says beside the offline eval: its primary metric's result when the gateway's
/// store holds the experiment, and the sample size a live test of the candidate needs.
public enum LiveExperiment {
    /// The live analysis of the experiment (nil when the store does not hold it).
    public static func report(storePath: String, experiment: GatewayExperiment) throws -> Report? {
        let data: ExperimentData
        do { data = try StoreAnalysis.aggregate(path: storePath, options: experiment.storeAnalysisOptions()) } catch let error as StoreError {
            switch error.kind {
            case .experimentNotFound, .empty: return nil
            default: throw error
            }
        }
        return try Analysis.run(data, plan: experiment.livePlan)
    }

    /// The live primary metric of `variant` against the control, for the report.
    public static func comparison(_ report: Report, variant: String) -> LiveComparison? {
        let primary = report.primaryMetric
        guard let result = report.results.first(where: { $0.metric.name == primary && $0.treatment == variant }) else { return nil }
        var low: Double?, high: Double?
        if case .bounded(let l, let h) = result.relativeInterval { (low, high) = (l, h) }
        let users = report.variants.reduce(0) { $0 + $1.users }
        let note = "Offline scores estimate what the live metric may show; lab metrics do not always predict real value, so compare the two before trusting the next offline result."
        return LiveComparison(metric: primary, variant: variant, relativeLift: result.relativeLift, ciLow: low, ciHigh: high,
                              pValue: result.decisionPValue, users: users, note: note)
    }

    /// Users per group a live test of `variant` needs on the live primary metric (as `bakeoff plan` computes it),
    /// or what is missing to say. `baseline`: the control's current value of that metric, if known.
    public static func plan(experiment: GatewayExperiment, variant: String, baseline: Double?) -> (usersPerGroup: Int?, hint: String?) {
        let analysis = experiment.analysis
        let primary = analysis.primaryMetric ?? "task_completion"
        guard let metric = analysis.metrics.first(where: { $0.name == primary }) else { return (nil, nil) }
        guard let mde = analysis.minimumDetectableEffect else {
            return (nil, "to plan the live test, give the experiment's analysis an \"mde\" for \(primary), or run bakeoff plan --baseline B --mde D")
        }
        guard metric.kind == .proportion else {
            return (nil, "\(primary) is a mean: plan the live test with bakeoff plan --baseline B --std S --mde \(formatNumber(mde))\(analysis.minimumDetectableEffectIsRelative ? " --mde-relative" : "")")
        }
        guard let baseline, baseline > 0, baseline < 1 else {
            return (nil, "for the live sample size, give the eval a \"live_baseline\" (the control's current \(primary) rate) or point --db at the gateway's store, or run bakeoff plan --baseline B --mde \(formatNumber(mde))")
        }
        var q = SampleSizeQuestion(baseline: baseline, minimumDetectableEffect: mde)
        q.relative = analysis.minimumDetectableEffectIsRelative
        if let a = analysis.alpha { q.alpha = a }
        if let p = analysis.power { q.power = p }
        let arms = experiment.allocation.arms
        if let c = arms.first(where: { $0.name == experiment.control })?.weight, let t = arms.first(where: { $0.name == variant })?.weight, c + t > 0 {
            q.treatmentShare = t / (c + t)
        }
        guard let size = try? SampleSize.solve(q) else { return (nil, nil) }
        let hint = "sample size for \(primary) from \(formatNumber(baseline)), detecting \(q.relative ? formatNumber(mde * 100) + "% relative" : formatNumber(mde)) at alpha \(formatNumber(q.alpha)), power \(formatNumber(q.power)): \(size.controlN) control and \(size.treatmentN) \(variant) users"
        return (max(size.controlN, size.treatmentN), hint)
    }
}
