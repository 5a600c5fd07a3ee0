import BakeoffStatistics

/// The plan-driven decision for one treatment: ship, roll back, keep running (with days left) or stop
/// as inconclusive, each with the one-sentence reason the report prints.
///
/// The rules, in order:
/// 1. Roll back when the primary metric is significantly worse, or a guardrail is harmed: beyond its
///    margin (significantly worse and the estimate past the margin) or, without a margin, significantly
///    worse. Harm does not wait for the minimum runtime.
/// 2. Ship when the primary metric is significantly better, every guardrail with a margin is shown within
///    it, and the minimum runtime (full weeks by default) has passed; otherwise keep running.
/// 3. Without a significant primary result: stop as inconclusive once the maximum runtime or (fixed
///    horizon) the planned sample is reached, else keep running with the days left.
extension Analysis {
    static func decide(treatment: String, control: String, results: [MetricResult], quantiles: [QuantileResult],
                       primary: String, data: ExperimentData, plan: AnalysisPlan, elapsedDays: Double?) -> Decision {
        let p = results.first { $0.metric.name == primary }
        var harmed: [String] = []
        var pending: [String] = []
        /// Sorts one guardrail into harmed or pending; `change` is how its change reads without a margin.
        func judge(_ metric: Metric, _ check: GuardrailCheck?, worse: Bool, note: String?, change: String) {
            if let g = check {
                if g.status == .beyondMargin { harmed.append("\(metric.title) (\(guardrailText(g, metric)))") }
                if g.status == .unclear { pending.append("\(metric.title) (\(guardrailText(g, metric)))") }
            } else if worse {
                harmed.append("\(metric.title) (\(change))")
            } else if metric.margin != nil {
                // A margin that could not be tested is not shown: it blocks shipping.
                pending.append("\(metric.title) (not testable: \(note ?? "no estimate"))")
            }
        }
        for r in results where r.metric.role == .guardrail && r.metric.name != primary {
            judge(r.metric, r.guardrail, worse: r.verdict == .worse, note: r.note, change: formatSigned(r.absoluteDifference, r.metric))
        }
        for q in quantiles where q.metric.role == .guardrail {
            judge(q.metric, q.guardrail, worse: q.verdict == .worse, note: q.note, change: formatPercent(q.relativeChange))
        }
        let harmText = harmed.joined(separator: ", ")
        if let p, p.verdict == .worse {
            return Decision(action: .rollBack, treatment: treatment,
                            reason: "\(p.metric.title) is significantly worse in \(treatment) (\(formatPEquals(p.decisionPValue ?? 0)))"
                                + (harmed.isEmpty ? "." : " and guardrails are harmed: \(harmText)."))
        }
        if !harmed.isEmpty {
            return Decision(action: .rollBack, treatment: treatment,
                            reason: "guardrail\(harmed.count > 1 ? "s" : "") harmed in \(treatment): \(harmText).")
        }
        let minimumDays = plan.effectiveMinimumRuntimeDays
        let daysToMinimum = max(0, minimumDays - (elapsedDays ?? 0))
        let runtimeKnown = elapsedDays != nil || minimumDays == 0
        let pastMaximum = plan.maximumRuntimeDays.map { maximum in (elapsedDays ?? 0) >= maximum } ?? false
        if let p, p.verdict == .better {
            let gain = "\(p.metric.title) is significantly better in \(treatment) (\(formatSigned(p.absoluteDifference, p.metric)), \(formatPEquals(p.decisionPValue ?? 0)))"
            if pastMaximum && (!pending.isEmpty || daysToMinimum > 0) {
                return Decision(action: .stopInconclusive, treatment: treatment,
                                reason: "\(gain), but the planned maximum runtime of \(formatDays(plan.maximumRuntimeDays!)) is reached before "
                                    + (pending.isEmpty ? "the minimum runtime" : "every guardrail was shown within its margin: \(pending.joined(separator: ", "))") + ".")
            }
            if !pending.isEmpty {
                return Decision(action: .keepRunning, treatment: treatment,
                                reason: "\(gain), but \(pending.count > 1 ? "guardrails are" : "a guardrail is") not yet shown within \(pending.count > 1 ? "their margins" : "its margin"): \(pending.joined(separator: ", ")).")
            }
            if daysToMinimum > 0 || !runtimeKnown {
                var d = Decision(action: .keepRunning, treatment: treatment,
                                 reason: "\(gain), but the planned minimum runtime of \(formatDays(minimumDays)) is not reached\(runtimeKnown ? " (\(formatDays(daysToMinimum)) left)" : " (the data have no timestamps)").")
                d.additionalDays = runtimeKnown ? daysToMinimum : nil
                return d
            }
            return Decision(action: .ship, treatment: treatment,
                            reason: "\(gain) and no guardrail is harmed\(results.contains { $0.guardrail != nil } || quantiles.contains { $0.guardrail != nil } ? " (each with a margin is shown within it)" : "").")
        }
        guard let p else {
            return Decision(action: .keepRunning, treatment: treatment, reason: "the primary metric \(primary) has no data yet.")
        }
        let status = p.decisionPValue.map { "shows no significant difference\(p.familySize > 1 ? " after the \(plan.correction == .holm ? "Holm" : "Benjamini-Hochberg") correction" : "") (\(formatPEquals($0)))" }
            ?? "cannot be tested yet" + (p.note.map { " (\($0))" } ?? "")
        if let maximum = plan.maximumRuntimeDays, let elapsed = elapsedDays, elapsed >= maximum {
            return Decision(action: .stopInconclusive, treatment: treatment,
                            reason: "\(p.metric.title) \(status) after the planned maximum runtime of \(formatDays(maximum)): the effect, if any, is smaller than this experiment can show.")
        }
        if let f = p.futility, f.crossed, !(plan.monitoring?.isFinal ?? false) {
            return Decision(action: .stopInconclusive, treatment: treatment,
                            reason: "\(p.metric.title) \(status), and its z of \(fixed(f.statistic, 2)) is below the futility boundary of \(fixed(f.boundary, 2)) at this look: the planned effect of \(formatMagnitude(f.plannedEffect, p.metric)) is unlikely to show by the horizon. Stopping is advised, not required: the boundary is non-binding, so running on keeps the error rate.")
        }
        if plan.method == .groupSequential, let m = plan.monitoring, m.isFinal {
            return Decision(action: .stopInconclusive, treatment: treatment,
                            reason: "\(p.metric.title) \(status) at the final look of the group-sequential test (its horizon of \(m.horizon.text)): the effect, if any, is smaller than this experiment can show.")
        }
        let estimate = additionalUsers(p, control: control, data: data, plan: plan)
        if plan.method == .fixed, plan.minimumDetectableEffect != nil, let e = estimate, e.users == 0, daysToMinimum == 0 {
            return Decision(action: .stopInconclusive, treatment: treatment,
                            reason: "\(p.metric.title) \(status) at the planned sample: the difference is likely smaller than the planned effect.")
        }
        var decision = Decision(action: .keepRunning, treatment: treatment, reason: "\(p.metric.title) \(status).")
        if let estimate {
            decision.additionalUsers = estimate.users
            decision.additionalDays = estimate.days
            decision.reason += " " + estimate.sentence
        }
        if daysToMinimum > 0 && runtimeKnown {
            decision.additionalDays = max(decision.additionalDays ?? 0, daysToMinimum)
            if estimate?.days ?? 0 < daysToMinimum {
                decision.reason += " The planned minimum runtime of \(formatDays(minimumDays)) needs \(formatDays(daysToMinimum)) more."
            }
        }
        if let maximum = plan.maximumRuntimeDays, let elapsed = elapsedDays, let days = decision.additionalDays, elapsed + days > maximum {
            decision.reason += " That is past the planned maximum runtime of \(formatDays(maximum)) (\(formatDays(maximum - elapsed)) left)."
        }
        return decision
    }

    /// What remains of a group-sequential test's horizon: its users or days, at the current rate of new users.
    static func horizonLeft(_ m: GroupSequentialMonitoring, data: ExperimentData, plan: AnalysisPlan) -> (users: Int?, days: Double?, sentence: String) {
        let users = Double(data.variants.reduce(0) { $0 + $1.users })
        let observed = data.observedDays ?? plan.runtimeDays
        let rate = observed.map { $0 > 0 ? users / $0 : 0 } ?? 0
        let more: Double, days: Double?
        switch m.horizon {
        case .users(let planned):
            more = max(0, planned - users)
            days = rate > 0 ? more / rate : nil
        case .days(let planned):
            let elapsed = Analysis.elapsedDays(data, plan) ?? 0
            days = max(0, planned - elapsed)
            more = (days ?? 0) * rate
        }
        let count = Int(more.rounded(.up))
        var sentence = "The group-sequential test looks again until its horizon of \(m.horizon.text)"
        switch m.horizon {
        case .users: sentence += ": \(group(count)) more users"
        case .days: sentence += ": \(formatDays(days ?? 0)) more"
        }
        if case .users = m.horizon, let days { sentence += ", \(days < 1 ? "" : "about ")\(formatDays(days)) at the current rate" }
        return (count, days, sentence + ".")
    }

    /// "+12.3% (bound +17.0% vs margin +15%)".
    package static func guardrailText(_ g: GuardrailCheck, _ metric: Metric) -> String {
        let value: (Double) -> String = { g.margin.isRelative ? formatPercent($0) : formatSigned($0, metric) }
        let sign = metric.goal == .down ? 1.0 : -1.0
        return "\(value(g.estimate)), bound \(value(g.bound)) vs margin \(value(sign * g.margin.value))"
    }

    /// Users still needed for the planned power on the primary metric, at its observed per-user variance.
    static func additionalUsers(_ r: MetricResult, control: String, data: ExperimentData, plan: AnalysisPlan) -> (users: Int?, days: Double?, sentence: String)? {
        if plan.method == .groupSequential, let m = plan.monitoring { return horizonLeft(m, data: data, plan: plan) }
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
        let neededMetricUsers: Double
        switch plan.method {
        case .fixed:
            let nobs1 = TTestIndependentPower.solveNobs1(effectSize: effect / pooled.squareRoot(), alpha: plan.alpha, power: plan.power,
                                                         ratio: ratio, alternative: .twoSided)
            guard nobs1.isFinite else { return nil }
            neededMetricUsers = nobs1.rounded(.up) + (nobs1 * ratio).rounded(.up)
        case .sequential, .groupSequential, .auto:
            // The confidence sequence is wider than the fixed-horizon interval: solve for its own sample.
            neededMetricUsers = SequentialTest.users(effect: effect, variance: pooled, ratio: ratio, alpha: plan.alpha,
                                                     power: plan.power, tuningParameter: plan.sequentialTuning) ?? 2e9
        }
        guard neededMetricUsers < 1e9 else {
            return (nil, nil, "Detecting \(what) would need more than a billion users: it is not detectable at a practical size.")
        }
        let haveMetricUsers = nc + nt
        let totalUsers = Double(data.variants.reduce(0) { $0 + $1.users })
        let coverage = totalUsers > 0 ? haveMetricUsers / totalUsers : 1
        let more = max(0, (neededMetricUsers - haveMetricUsers) / max(coverage, 1e-9))
        let users = Int(more.rounded(.up))
        var days: Double?
        if let observed = data.observedDays ?? plan.runtimeDays, observed > 0, totalUsers > 0 {
            days = DaysLeft.days(currentUsers: 0, plannedUsers: more, usersPerDay: totalUsers / observed)
        }
        if users == 0 {
            return (0, 0, "The sample already has \(Int(plan.power * 100))% power for \(what); the difference is likely small.")
        }
        let arms = data.variants.filter { $0.users > 0 }.count
        var sentence = "About \(group(users)) more users\(arms > 2 ? " over all arms" : "") (\(group(Int(neededMetricUsers))) with this metric in \(control) and \(r.treatment) in all) give \(Int(plan.power * 100))% power for \(what)"
        if let days { sentence += ", \(days < 1 ? "" : "about ")\(formatDays(days)) at the current rate" }
        return (users, days, sentence + ".")
    }
}
