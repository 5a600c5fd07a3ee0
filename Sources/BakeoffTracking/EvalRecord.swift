import BakeoffCore
import BakeoffEval
import BakeoffReport
import BakeoffStatistics

/// What makes a variant's answers what they are, as the config says: recorded beside its results.
public struct VariantSetup: Sendable, Equatable {
    public var name: String
    public var model: String
    public var systemPrompt: String?
    /// The sampling overrides as "key=json" pairs ("temperature=0.3,top_p=0.9"), nil when none.
    public var parameters: String?

    public init(name: String, model: String, systemPrompt: String?, parameters: String?) {
        self.name = name
        self.model = model
        self.systemPrompt = systemPrompt
        self.parameters = parameters
    }
}

extension TrackingRecord {
    /// An offline eval as a run (README, "Recording runs in MLflow", has every key).
    ///
    /// Params hold the plan, the dataset and each variant's setup; metrics every scorer's and call metric's
    /// result per variant against the control (`SCORER/VARIANT/lift`, ...), the judges' win rates and the calls;
    /// tags the decision.
    public static func eval(_ report: EvalReport, plan: EvalPlan, variants: [VariantSetup], source: RunSource) -> TrackingRecord {
        let decision = report.decision
        var b = RecordBuilder(runName: "\(report.experiment) eval of \(lastPathComponent(report.dataset))", experiment: report.experiment)
        b.standardTags(source, command: "eval", schema: "bakeoff.eval/1",
                       note: "**\(decision.action.rawValue)** \(decision.variant): \(decision.reasons.joined(separator: " "))")

        b.param(["experiment"], report.experiment)
        b.param(["dataset"], report.dataset)
        b.param(["control"], report.controlName)
        b.param(["variants"], report.variants.joined(separator: ","))
        b.param(["requests"], report.requests)
        b.param(["repetitions"], report.repetitions)
        b.param(["alpha"], report.alpha)
        b.param(["power"], report.power)
        b.param(["primary_scorer"], report.primary)
        b.param(["scorers"], plan.scorers.map(\.name).joined(separator: ","))
        b.param(["guardrails"], plan.guardrails.isEmpty ? nil : plan.guardrails.map(\.name).joined(separator: ","))
        b.param(["minimum_effect"], plan.minimumEffect)
        for v in variants {
            b.param(["model", v.name], v.model)
            b.param(["system_prompt", v.name], v.systemPrompt)
            b.param(["parameters", v.name], v.parameters)
        }

        for c in report.scores + report.metrics {
            b.metric([c.name, report.controlName, "mean"], c.controlMean)
            b.metric([c.name, c.variant, "mean"], c.variantMean)
            b.comparison(c.name, c.variant, lift: c.difference, interval: ConfidenceInterval(lower: c.ciLow, upper: c.ciHigh),
                         relative: c.relativeDifference, relativeInterval: nil, p: c.pValue, adjustedP: c.adjustedPValue)
        }
        for w in report.winRates {
            b.metric([w.scorer, w.variant, "win_rate"], w.winRate)
            b.metric([w.scorer, w.variant, "win_rate_ci_low"], w.ciLow)
            b.metric([w.scorer, w.variant, "win_rate_ci_high"], w.ciHigh)
            b.metric([w.scorer, w.variant, "p_value"], w.pValue)
            b.metric([w.scorer, w.variant, "adjusted_p_value"], w.adjustedPValue)
            b.metric([w.scorer, w.variant, "wins"], w.wins)
            b.metric([w.scorer, w.variant, "ties"], w.ties)
            b.metric([w.scorer, w.variant, "losses"], w.losses)
        }
        for r in report.rankings {
            for e in r.entries where e.variant != report.controlName {
                b.metric([r.scorer, e.variant, "strength"], e.strength)
                b.metric([r.scorer, e.variant, "win_probability"], e.winProbability)
            }
        }
        for g in report.guardrails {
            b.metric([g.name, g.variant, "guardrail_worsening"], g.worsening)
            b.metric([g.name, g.variant, "guardrail_worst_case"], g.worstCase)
            b.tag(["bakeoff.guardrail", g.name, g.variant], g.state.rawValue)
        }
        for c in report.calls {
            b.metric(["calls", c.variant, "answers"], c.answers)
            b.metric(["calls", c.variant, "failed"], c.failed)
            b.metric(["calls", c.variant, "cached"], c.cached)
            b.metric(["calls", c.variant, "retries"], c.retries)
            b.metric(["calls", c.variant, "mean_latency_ms"], c.meanLatencyMs)
            b.metric(["calls", c.variant, "p95_latency_ms"], c.p95LatencyMs)
            b.metric(["calls", c.variant, "mean_ttft_ms"], c.meanTTFTMs)
            b.metric(["calls", c.variant, "mean_input_tokens"], c.meanInputTokens)
            b.metric(["calls", c.variant, "mean_output_tokens"], c.meanOutputTokens)
            b.metric(["calls", c.variant, "mean_cost_usd"], c.meanCostUSD)
        }
        if let live = report.live {
            b.metric(["live", live.metric, live.variant, "relative_lift"], live.relativeLift)
            b.metric(["live", live.metric, live.variant, "relative_lift_ci_low"], live.ciLow)
            b.metric(["live", live.metric, live.variant, "relative_lift_ci_high"], live.ciHigh)
            b.metric(["live", live.metric, live.variant, "p_value"], live.pValue)
            b.metric(["live", live.metric, live.variant, "users"], live.users)
        }
        b.metric(["decision", "requests_needed"], decision.requestsNeeded)
        b.metric(["decision", "live_users_per_group"], decision.liveUsersPerGroup)

        b.tag(["bakeoff.decision"], decisionSlug(decision.action))
        b.tag(["bakeoff.decision_variant"], decision.variant)
        b.tag(["bakeoff.decision_reason"], decision.reasons.joined(separator: " "))

        b.record.artifacts = [
            Artifact(name: "report.json", contentType: "application/json", text: report.render(.json)),
            Artifact(name: "report.html", contentType: "text/html; charset=utf-8", text: report.render(.html)),
        ]
        return b.record
    }

    /// The decision as a tag value that stays the same when the report's wording changes.
    static func decisionSlug(_ action: EvalDecision.Action) -> String {
        switch action {
        case .promote: return "promote"
        case .doNotPromote: return "do_not_promote"
        case .needsMoreRequests: return "needs_more_requests"
        }
    }

    static func lastPathComponent(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}
