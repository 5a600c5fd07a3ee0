import Foundation
import BakeoffStatistics
import BakeoffCore

/// Output formats of `bakeoff analyze`.
public enum ReportFormat: String, Sendable, CaseIterable {
    case table, markdown, json, html
}

extension Report {
    public func render(_ format: ReportFormat) -> String {
        switch format {
        case .table: return safeForText(name: ClientText.terminal, prose: ClientText.terminal).renderText(markdown: false)
        case .markdown: return safeForText(name: ClientText.markdownName, prose: ClientText.markdownProse).renderText(markdown: true)
        case .json: return renderJSON()
        case .html: return renderHTML()
        }
    }

    /// This report with every name and sentence that may hold client text passed through `name` or `prose`
    /// (the same name always maps to the same text, so variants still match their results).
    func safeForText(name: (String) -> String, prose: (String) -> String) -> Report {
        var r = self
        r.experiment = name(experiment)
        r.control = name(control)
        for i in r.variants.indices { r.variants[i].name = name(variants[i].name) }
        for i in r.results.indices { r.results[i].treatment = name(results[i].treatment) }
        for i in r.quantiles.indices { r.quantiles[i].treatment = name(quantiles[i].treatment) }
        for i in r.decisions.indices {
            r.decisions[i].treatment = name(decisions[i].treatment)
            r.decisions[i].reason = prose(decisions[i].reason)
        }
        r.warnings = warnings.map(prose)
        r.sampleRatio.observed = sampleRatio.observed.map { NamedCount(name: name($0.name), count: $0.count) }
        r.sampleRatio.reason = sampleRatio.reason.map(prose)
        for i in r.planChanges.indices { r.planChanges[i].changes = planChanges[i].changes.map(prose) }
        var q = dataQuality
        q.otherExperiments = q.otherExperiments.map { NamedCount(name: name($0.name), count: $0.count) }
        q.unusedFeedbackNames = q.unusedFeedbackNames.map { NamedCount(name: name($0.name), count: $0.count) }
        q.preExperimentVariants = q.preExperimentVariants.map { NamedCount(name: name($0.name), count: $0.count) }
        q.skippedExamples = q.skippedExamples.map(prose)
        q.unusableFeedback = q.unusableFeedback.map {
            UnusableFeedback(name: name($0.name), reason: prose($0.reason), count: $0.count, example: prose($0.example))
        }
        r.dataQuality = q
        return r
    }

    private var periodText: String {
        guard let a = firstTimestamp, let b = lastTimestamp else { return "" }
        let days = Double(b - a) / 86_400_000_000
        return "\(formatTimestamp(a).prefix(10)) to \(formatTimestamp(b).prefix(10)) (\(formatDays(days)))"
    }

    /// The experiment's name for titles ("unnamed experiment" for summaries without one).
    var displayName: String { experiment.isEmpty ? "unnamed experiment" : experiment }

    var methodText: String {
        var text: String
        switch (unit, plan.method) {
        case (.user, .fixed): text = "fixed-horizon user-level Welch t-tests (delta method)"
        case (.user, .sequential): text = "sequential user-level tests (asymptotic confidence sequences, N* \(formatNumber(plan.sequentialTuning)); valid at every look)"
        case (.event, .fixed): text = "NAIVE event-level Student t-tests (units treated as independent)"
        case (.event, .sequential): text = "NAIVE event-level sequential tests (units treated as independent)"
        case (.user, .groupSequential), (.user, .auto):
            text = "group-sequential user-level tests (\(plan.groupSequential.spending.title) alpha spending\(plan.monitoring.map { " over \($0.horizon.text)" } ?? ""); valid at each look)"
        case (.event, .groupSequential), (.event, .auto): text = "NAIVE event-level group-sequential tests (units treated as independent)"
        }
        text += ", alpha \(formatNumber(alpha))"
        if plan.correction != .none && (results.contains { $0.familySize > 1 } || quantiles.contains { $0.familySize > 1 }) {
            text += "; \(plan.correction == .holm ? "Holm" : "Benjamini-Hochberg") correction of the secondary metrics across metrics and arms"
        }
        if results.contains(where: { $0.varianceReduction != nil }) { text += "; CUPED with pre-experiment data" }
        return text
    }

    /// Why the method, and where a group-sequential test stands: looks, share of the horizon, alpha spent, the
    /// boundary now. Nil when the plan named the method and it is not group-sequential.
    var monitoringText: String? {
        var text = ""
        if methodChoice.requested == .auto || methodChoice.requested != methodChoice.method {
            text = "Method \(methodChoice.requested == .auto ? "auto" : methodChoice.requested.rawValue): \(methodChoice.reason)."
        }
        if let m = plan.monitoring {
            let c = m.boundaries.last ?? .infinity
            let look = m.looks.count
            text += (text.isEmpty ? "" : " ") + "Look \(look)\(m.isFinal ? " (final)" : ""): \(formatPercentBare(min(m.fraction, 1)).dropFirst())% of the horizon (\(m.horizon.text)); alpha spent \(significant(m.alphaSpent, 3)) of \(formatNumber(m.design.alpha)); a difference is significant now when |z| >= \(fixed(c, 2)) (nominal p < \(significant(2 * Normal.sf(c), 3)))."
            if let note = m.note { text += " Note: \(note)." }
        }
        return text.isEmpty ? nil : text
    }

    /// Runtime and plan bounds in one line: "9.0 of at least 14 days (at most 28)".
    var runtimeText: String? {
        let minimum = plan.effectiveMinimumRuntimeDays
        guard elapsedDays != nil || minimum > 0 || plan.maximumRuntimeDays != nil else { return nil }
        var text = "Runtime: " + (elapsedDays.map(formatDays) ?? "unknown (no timestamps)")
        var bounds: [String] = []
        if minimum > 0 { bounds.append("at least \(formatDays(minimum))\(plan.fullWeeks && minimum != plan.minimumRuntimeDays ? " (full weeks)" : "")") }
        if let maximum = plan.maximumRuntimeDays { bounds.append("at most \(formatDays(maximum))") }
        if !bounds.isEmpty { text += "; plan: " + bounds.joined(separator: ", ") }
        return text + "."
    }

    /// The lines under the tables: guardrail margins, rank tests, CUPED, power now, Bayesian view.
    func analysisNotes(_ treatment: String) -> [String] {
        var lines: [String] = []
        for r in results where r.treatment == treatment {
            if let g = r.guardrail { lines.append("Guardrail \(r.metric.title): \(Analysis.guardrailText(g, r.metric)): \(guardrailStatus(g)).") }
        }
        for q in quantiles where q.treatment == treatment {
            if let g = q.guardrail { lines.append("Guardrail \(q.metric.title): \(Analysis.guardrailText(g, q.metric)): \(guardrailStatus(g)).") }
        }
        for r in results where r.treatment == treatment {
            if let v = r.varianceReduction {
                lines.append("CUPED \(r.metric.title): variance \(v.reduction >= 0 ? "reduced" : "changed") by \(fixed(abs(v.reduction) * 100, 1))% (theta \(significant(v.theta, 3))).")
            }
            if let m = r.rankTest {
                lines.append("Mann-Whitney \(r.metric.title): P(\(treatment) > \(control)) = \(fixed(m.probabilityOfSuperiority, 3)), \(formatPEquals(m.pValue)).")
            }
        }
        if let p = results.first(where: { $0.treatment == treatment && $0.metric.name == primaryMetric }) {
            // As the scorecard shows it: no chance to win for a row with too few users yet.
            let row = Scorecard(report: self, treatment: treatment).rows.first { $0.isPrimary }
            if let b = p.bayesian, b.issue == nil, row?.chanceToWin != nil {
                lines.append("Bayesian view of \(p.metric.title): chance \(treatment) is better \(fixed(b.chanceToWin * 100, 1))%, relative lift \(formatPercent(b.mean)) [\(formatPercentBare(b.interval.lower)), \(formatPercentBare(b.interval.upper))] credible, expected loss if shipped \(fixed(b.riskOfTreatment * 100, 2))% of control\(plan.prior == nil ? " (flat prior)" : "").")
            }
            if let f = p.futility {
                lines.append("Futility (non-binding, for \(Int(plan.power * 100))% power at \(formatMagnitude(f.plannedEffect, p.metric))): z \(fixed(f.statistic, 2)) against the boundary \(fixed(f.boundary, 2)): \(f.crossed ? "crossed, the planned effect is unlikely by the horizon" : "not crossed").")
            }
            if let b = p.biasAdjusted {
                lines.append("The boundary is crossed before the horizon: a result that stops here overstates the difference. If this is the first look at which \(p.metric.title) crossed, the \(BiasAdjustedEstimate.method) is \(formatSigned(b.difference, p.metric))\(b.relative.map { " (\(formatPercent($0)))" } ?? ""), against \(formatSigned(p.absoluteDifference, p.metric)) observed.")
            }
            if let mde = p.detectableEffect, let c = p.control.mean {
                lines.append("Power now: the current sample detects a change of \(p.metric.title) of \(formatMagnitude(mde, p.metric))\(c != 0 ? " (\(formatPercentBare(mde / abs(c)).dropFirst())% of control)" : "") with \(Int(plan.power * 100))% power\(plan.method == .sequential ? " at one look (the sequential test needs somewhat more)" : plan.method == .groupSequential ? " at one look (the group-sequential test needs a little more)" : "").")
            }
        }
        return lines
    }

    private func guardrailStatus(_ g: GuardrailCheck) -> String {
        switch g.status {
        case .withinMargin: return "within the margin"
        case .beyondMargin: return "BEYOND the margin"
        case .unclear: return "not yet shown within the margin"
        }
    }

    /// The summary table of a scorecard: the terminal's short result words (a legend spells them out),
    /// Markdown's full ones.
    private func summaryRows(_ card: Scorecard, markdown: Bool) -> [[String]] {
        var rows: [[String]] = []
        for row in card.rows {
            let title = row.isPrimary ? row.metric.title + " *" : row.metric.title
            let lift = row.lift + (row.liftInterval.map { " " + $0 } ?? "")
            rows.append([title, row.control, row.treatment, lift, row.pValue, markdown ? row.statusText : row.status.shortText])
        }
        if markdown { return rows.map { $0.map { $0.replacingOccurrences(of: "|", with: "\\|") } } }
        return rows
    }

    /// The detail table: users, units and the absolute difference with its interval (too few users: none).
    private func detailRows(_ card: Scorecard) -> [[String]] {
        var rows: [[String]] = []
        for row in card.rows where !row.isQuantile {
            guard let r = results.first(where: { $0.treatment == card.treatment && $0.metric.name == row.metric.name }) else { continue }
            let ci = row.interval.map { $0 + (row.intervalLevel.map { " (\($0))" } ?? "") }
                ?? (row.status == .tooFewUsers ? "too few users" : "—")
            rows.append([row.metric.title,
                         "\(group(r.control.users))/\(group(r.treatmentGroup.users))",
                         "\(group(Int(r.control.units)))/\(group(Int(r.treatmentGroup.units)))",
                         row.difference, ci])
        }
        return rows
    }

    /// Under the tables: each row's explanation, then the folded rows with the reason.
    private func scorecardNotes(_ card: Scorecard, markdown: Bool) -> String {
        // Rows with the same explanation (too few users, early on) share one line.
        var lines: [String] = []
        var titles: [String: [String]] = [:]
        var order: [String] = []
        for row in card.rows {
            guard let text = row.explanation else { continue }
            if titles[text] == nil { order.append(text) }
            titles[text, default: []].append(row.metric.title)
        }
        for text in order { lines.append("\(titles[text]!.joined(separator: ", ")): \(text)") }
        if !card.folded.isEmpty {
            lines.append("Nothing to compare yet: " + card.folded.map { row in
                var reason = row.explanation ?? row.statusText
                if reason.hasSuffix(".") { reason.removeLast() }
                return "\(row.metric.title) (\(reason.lowercasedFirst))"
            }.joined(separator: "; ") + ".")
        }
        guard !lines.isEmpty else { return "" }
        return lines.map { markdown ? "- " + $0 : wrap("  " + $0, indent: "    ") }.joined(separator: "\n") + "\n\n"
    }

    private func renderText(markdown: Bool) -> String {
        var out = ""
        let h1 = markdown ? "## " : ""
        let bold = markdown ? "**" : ""
        out += "\(h1)Bakeoff report: \(displayName)\n"
        if !markdown { out += String(repeating: "=", count: min(78, 17 + displayName.count)) + "\n" }
        if markdown { out += "\n" }
        let prose: (String) -> String = { markdown ? $0 : wrap($0) }
        let variantText = variants.map { "\($0.name) \(group($0.users)) users" }.joined(separator: ", ")
        var summary = hasEvents ? "\(variantText); \(group(requestEvents)) requests, \(group(feedbackEvents)) feedback events"
            : "\(variantText); from per-variant sums"
        if !periodText.isEmpty { summary += "; \(periodText)" }
        out += prose(summary + ".") + "\n" + (markdown ? "\n" : "") + prose("Method: \(methodText). Control: \(control).") + "\n\n"
        if let text = monitoringText { out += prose(text) + "\n\n" }
        for w in warnings {
            out += markdown ? "> **Warning:** \(w)\n\n" : wrap("!! \(w)", indent: "   ") + "\n\n"
        }

        let decision = self.decision
        let action = actionName(decision.action)
        out += prose("\(bold)Decision: \(action)\(decision.treatment.isEmpty ? "" : " \(decision.treatment)")\(bold) — \(decision.reason)") + "\n\n"
        if decisions.count > 1 {
            for d in decisions {
                out += (markdown ? "- " : "") + wrap("\(markdown ? "" : "  ")\(d.treatment): \(actionName(d.action)) — \(d.reason)", indent: "    ") + "\n"
            }
            out += "\n"
        }

        for card in scorecards {
            let treatment = card.treatment
            if variants.count > 2 { out += "\(markdown ? "### " : "")\(treatment) vs \(control)\n\n" }
            let header = ["Metric", control, treatment, "lift [\(formatNumber((1 - alpha) * 100))% CI]", "p-value", markdown ? "result" : "signif."]
            let rows = summaryRows(card, markdown: markdown)
            out += markdown ? markdownTable(header, rows, leftAligned: [0, 5]) : renderTable(header, rows)
            if !markdown && card.rows.contains(where: { $0.status == .tooFewUsers || $0.status == .noDifference }) {
                out += wrap("signif.: no = no clear difference; too few = too few users yet (no interval shown).") + "\n"
            }
            out += "\n"
            out += scorecardNotes(card, markdown: markdown)
            let detailHeader = ["Metric", "users c/t", "units c/t", "difference", "\(formatNumber((1 - alpha) * 100))% CI"]
            let details = detailRows(card)
            if markdown {
                out += "<details><summary>Users, units and absolute differences</summary>\n\n" + markdownTable(detailHeader, details) + "\n</details>\n\n"
            } else {
                out += renderTable(detailHeader, details) + "\n"
            }
            let notes = analysisNotes(treatment)
            if !notes.isEmpty {
                out += notes.map { markdown ? "- " + $0 : wrap("  " + $0, indent: "    ") }.joined(separator: "\n") + "\n\n"
            }
        }
        out += prose(footnoteText) + "\n\n"
        if let runtime = runtimeText { out += prose(runtime) + "\n\n" }
        if !planChanges.isEmpty {
            out += "\(markdown ? "### " : "")Plan changes after the start\n" + (markdown ? "\n" : "")
            for change in planChanges {
                let line = "\(formatTimestamp(change.timestamp)): " + change.changes.joined(separator: "; ")
                out += (markdown ? "- " + line : wrap("  " + line, indent: "    ")) + "\n"
            }
            out += "\n"
        }

        out += "\(markdown ? "### " : "")Sample ratio\n" + (markdown ? "\n" : "")
        switch sampleRatio.status {
        case .notRun:
            out += prose("Not run: \(sampleRatio.reason ?? "").") + "\n"
        case .ok, .mismatch:
            let observed = sampleRatio.observed.map { "\($0.name) \(group($0.count))" }.joined(separator: ", ")
            let planned = sampleRatio.expectedShares.map { significant($0 * 100, 3) + "%" }.joined(separator: "/")
            out += prose("Users \(observed) against the planned \(planned): \(formatPEquals(sampleRatio.pValue ?? 0)), "
                + (sampleRatio.status == .ok ? "consistent with the plan." : "MISMATCH (threshold p < 0.001)\(sampleRatio.reason.map { ": \($0)" } ?? "")).")) + "\n"
        }
        guard hasEvents else { return out }
        out += "\n\(markdown ? "### " : "")Data quality\n" + (markdown ? "\n" : "")
        let q = dataQuality
        var lines: [String] = []
        lines.append("users seen in more than one variant: \(q.usersInSeveralVariants)")
        lines.append("feedback whose request or conversation is missing: \(q.feedbackWithMissingTarget)")
        lines.append("duplicate request ids (later copies ignored): \(q.duplicateRequestIDs)")
        if q.conversationsOfSeveralUsers > 0 {
            lines.append("conversation ids used by several users: \(q.conversationsOfSeveralUsers)")
        }
        if q.eventsAfterCut > 0 {
            lines.append("events at or after the cut left out (the analysis as it stood then): \(group(q.eventsAfterCut))")
        }
        if q.qaRequestsExcluded > 0 || q.qaFeedbackExcluded > 0 {
            lines.append("QA requests left out (forced into a variant): \(q.qaRequestsExcluded), with \(q.qaFeedbackExcluded) feedback events")
        }
        if q.preExperimentRequests > 0 || q.preExperimentFeedback > 0 {
            lines.append("pre-experiment events (before the start; used for CUPED only): \(q.preExperimentRequests) requests, \(q.preExperimentFeedback) feedback")
        }
        if q.covariateUsersNotInExperiment > 0 {
            lines.append("users in the covariate file who are not in the experiment: \(q.covariateUsersNotInExperiment)")
        }
        if !q.ordinalMetricsOverLevelLimit.isEmpty {
            lines.append("metrics with too many distinct values for the rank test: " + q.ordinalMetricsOverLevelLimit.joined(separator: ", "))
        }
        lines.append("lines skipped as invalid: \(q.linesSkipped)")
        for example in q.skippedExamples.prefix(3) { lines.append("  e.g. \(example)") }
        if !q.otherExperiments.isEmpty {
            lines.append("events of other experiments ignored: " + q.otherExperiments.prefix(5).map { "\($0.name) (\($0.count))" }.joined(separator: ", "))
        }
        if !q.unusedFeedbackNames.isEmpty {
            lines.append("feedback names no metric uses: " + q.unusedFeedbackNames.prefix(5).map { "\($0.name) (\($0.count))" }.joined(separator: ", "))
        }
        for u in q.unusableFeedback.prefix(5) {
            lines.append("feedback left out, \(u.name) \(u.reason): \(u.count), e.g. \(u.example)")
        }
        if q.implausibleRequestValues > 0 {
            lines.append("requests with a negative time or an implausible token count (those values left out): \(q.implausibleRequestValues)")
        }
        out += lines.map { markdown ? "- " + $0 : wrap("  " + $0, indent: "    ") }.joined(separator: "\n") + "\n"
        return out
    }

    /// What the table's lift, interval and p-value columns mean under this plan.
    var footnoteText: String {
        var text = "* primary metric. "
        switch plan.method {
        case .fixed:
            text += "Lift is the relative change with Fieller's interval; it excludes 0 exactly when p < \(formatNumber(alpha)). Fixed-horizon results are valid at one planned look: to watch results as they come in, use the sequential method."
        case .sequential:
            text += "Intervals and p-values are always valid (confidence sequences): they stay correct however often the report is looked at. Lift intervals are Fieller's sets at the sequence's width, so they exclude 0 exactly when p < \(formatNumber(alpha))."
        case .groupSequential, .auto:
            text += "Intervals are repeated confidence intervals and p-values repeated p-values of the group-sequential design: valid at every look it spends for, up to its horizon. An interval excludes 0 exactly when its boundary is crossed (p < \(formatNumber(alpha)))."
        }
        if results.contains(where: { $0.varianceReduction != nil }) || quantiles.contains(where: { $0.relativeInterval != nil }) {
            text += " With CUPED, and for quantiles, the lift interval is the delta method's (as gbstats), which can differ from the p-value right at the boundary."
        }
        if results.contains(where: { $0.familySize > 1 }) || quantiles.contains(where: { $0.familySize > 1 }) {
            text += " P-values are adjusted (\(plan.correction == .holm ? "Holm" : "Benjamini-Hochberg")) and intervals are made at the matching level, so they agree; guardrails are not corrected."
        }
        if !quantiles.isEmpty { text += " Quantile intervals come from order statistics clustered by user." }
        return text
    }

    private func renderJSON() -> String {
        var w = JSONWriter()
        w.object { w in
            w.value("schema", "bakeoff.report/2")
            w.value("experiment", experiment)
            w.value("alpha", alpha)
            w.value("unit", unit.rawValue)
            w.object("plan") { w in
                w.value("method", plan.method.rawValue)
                w.value("sequential_tuning", plan.method == .sequential ? plan.sequentialTuning : nil)
                w.value("method_requested", methodChoice.requested.rawValue)
                w.value("method_reason", methodChoice.reason)
                if let m = plan.monitoring {
                    w.object("group_sequential") { w in
                        w.value("spending", m.design.spending.name)
                        switch m.horizon {
                        case .users(let n): w.value("planned_users", n)
                        case .days(let d): w.value("planned_days", d)
                        }
                        w.value("looks", plan.groupSequential.looks.name)
                        w.value("fraction", m.fraction)
                        w.value("alpha_spent", m.alphaSpent)
                        w.value("final", m.isFinal)
                        w.value("note", m.note)
                        w.array("history") { w in
                            for (k, look) in m.looks.enumerated() {
                                w.object { w in
                                    w.value("ts", m.times[k].map(formatTimestamp))
                                    w.value("users", look.information)
                                    w.value("fraction", look.spendingTime)
                                    w.value("boundary_z", m.boundaries[k].isFinite ? m.boundaries[k] : nil)
                                }
                            }
                        }
                    }
                }
                w.value("correction", plan.correction.configName)
                w.value("power", plan.power)
                w.value("mde", plan.minimumDetectableEffect)
                w.value("mde_is_relative", plan.minimumDetectableEffect == nil ? nil : plan.minimumDetectableEffectIsRelative)
                w.value("min_runtime_days", plan.effectiveMinimumRuntimeDays)
                w.value("max_runtime_days", plan.maximumRuntimeDays)
                w.value("start", plan.start.map(formatTimestamp))
                w.value("elapsed_days", elapsedDays)
                if let prior = plan.prior {
                    w.object("prior") { w in
                        w.value("mean", prior.mean)
                        w.value("variance", prior.variance)
                    }
                }
                w.array("changes") { w in
                    for c in planChanges {
                        w.object { w in
                            w.value("ts", formatTimestamp(c.timestamp))
                            w.array("changes") { w in for x in c.changes { w.value(nil, x) } }
                        }
                    }
                }
            }
            w.value("control", control)
            w.value("primary_metric", primaryMetric)
            w.object("period") { w in
                w.value("first", firstTimestamp.map(formatTimestamp))
                w.value("last", lastTimestamp.map(formatTimestamp))
                w.value("days", firstTimestamp.flatMap { a in lastTimestamp.map { Double($0 - a) / 86_400_000_000 } })
            }
            w.object("events") { w in
                // Per-variant sums carry no event counts.
                w.value("requests", hasEvents ? requestEvents : nil)
                w.value("feedback", hasEvents ? feedbackEvents : nil)
            }
            w.array("variants") { w in
                for v in variants {
                    w.object { w in
                        w.value("name", v.name)
                        w.value("users", v.users)
                        w.value("requests", v.requests)
                    }
                }
            }
            w.object("srm") { w in
                w.value("status", sampleRatio.status.rawValue)
                w.value("p_value", sampleRatio.pValue)
                w.value("statistic", sampleRatio.statistic)
                w.object("observed") { w in for o in sampleRatio.observed { w.value(o.name, o.count) } }
                w.array("expected_shares") { w in for s in sampleRatio.expectedShares { w.value(nil, s) } }
                w.value("reason", sampleRatio.reason)
            }
            w.array("metrics") { w in
                for r in results { writeMetric(&w, r) }
            }
            w.array("quantiles") { w in
                for q in quantiles {
                    w.object { w in
                        w.value("name", q.metric.name)
                        w.value("variant", q.treatment)
                        w.value("quantile", q.metric.quantile)
                        w.object("control") { w in
                            w.value("value", q.control)
                            w.value("count", q.controlCount)
                        }
                        w.object("treatment") { w in
                            w.value("value", q.treatmentValue)
                            w.value("count", q.treatmentCount)
                        }
                        w.value("relative_change", q.relativeChange)
                        w.value("role", q.metric.role.rawValue)
                        writeInterval(&w, "absolute_ci", q.absoluteInterval)
                        writeInterval(&w, "relative_ci", q.relativeInterval)
                        w.value("p_value", q.pValue)
                        w.value("adjusted_p_value", q.adjustedPValue)
                        w.value("interval_alpha", q.intervalAlpha)
                        w.value("family_size", q.familySize)
                        w.value("significant", q.significant)
                        w.value("verdict", q.verdict.rawValue)
                        if let g = q.guardrail { writeGuardrail(&w, g) }
                        w.value("note", q.note)
                    }
                }
            }
            w.object("decision") { w in writeDecision(&w, decision) }
            w.array("decisions") { w in for d in decisions { w.object { w in writeDecision(&w, d) } } }
            w.object("data_quality") { w in
                let q = dataQuality
                w.value("users_in_several_variants", q.usersInSeveralVariants)
                w.value("feedback_missing_target", q.feedbackWithMissingTarget)
                w.value("duplicate_request_ids", q.duplicateRequestIDs)
                w.value("conversations_of_several_users", q.conversationsOfSeveralUsers)
                w.value("qa_requests_excluded", q.qaRequestsExcluded)
                w.value("events_after_cut", q.eventsAfterCut)
                w.value("qa_feedback_excluded", q.qaFeedbackExcluded)
                w.value("pre_experiment_requests", q.preExperimentRequests)
                w.value("pre_experiment_feedback", q.preExperimentFeedback)
                w.value("covariate_users_not_in_experiment", q.covariateUsersNotInExperiment)
                w.array("ordinal_metrics_over_level_limit") { w in for m in q.ordinalMetricsOverLevelLimit { w.value(nil, m) } }
                w.value("lines_skipped", q.linesSkipped)
                w.array("skipped_examples") { w in for e in q.skippedExamples { w.value(nil, e) } }
                w.object("other_experiments") { w in for o in q.otherExperiments { w.value(o.name, o.count) } }
                w.object("unused_feedback_names") { w in for o in q.unusedFeedbackNames { w.value(o.name, o.count) } }
                w.array("unusable_feedback") { w in
                    for u in q.unusableFeedback {
                        w.object { w in
                            w.value("name", u.name)
                            w.value("reason", u.reason)
                            w.value("count", u.count)
                            w.value("example", u.example)
                        }
                    }
                }
                w.value("implausible_request_values", q.implausibleRequestValues)
            }
            w.array("warnings") { w in for x in warnings { w.value(nil, x) } }
        }
        return w.text + "\n"
    }

    func writeMetric(_ w: inout JSONWriter, _ r: MetricResult) {
        w.object { w in
            w.value("name", r.metric.name)
            w.value("title", r.metric.title)
            w.value("variant", r.treatment)
            w.value("level", r.metric.level.rawValue)
            w.value("kind", r.metric.kind.rawValue)
            w.value("goal", r.metric.goal.rawValue)
            w.value("role", r.metric.name == primaryMetric ? MetricRole.primary.rawValue
                        : r.metric.role == .primary ? MetricRole.secondary.rawValue : r.metric.role.rawValue)
            for (key, g) in [("control", r.control), ("treatment", r.treatmentGroup)] {
                w.object(key) { w in
                    w.value("mean", g.mean)
                    w.value("users", g.users)
                    w.value("units", g.units)
                }
            }
            w.value("absolute_diff", r.absoluteDifference)
            if let ci = r.absoluteInterval {
                w.array("absolute_ci") { w in w.value(nil, ci.lower); w.value(nil, ci.upper) }
            } else {
                w.value("absolute_ci", nil as Double?)
            }
            w.value("relative_lift", r.relativeLift)
            switch r.relativeInterval {
            case .bounded(let lo, let hi)?:
                w.array("relative_ci") { w in w.value(nil, lo); w.value(nil, hi) }
                w.value("relative_ci_kind", "bounded")
            case .exclusive(let lo, let hi)?:
                w.value("relative_ci", nil as Double?)
                w.value("relative_ci_kind", "exclusive")
                w.array("relative_ci_excludes") { w in w.value(nil, lo); w.value(nil, hi) }
            case .unbounded?:
                w.value("relative_ci", nil as Double?)
                w.value("relative_ci_kind", "unbounded")
            case nil:
                w.value("relative_ci", nil as Double?)
                w.value("relative_ci_kind", nil as String?)
            }
            w.value("p_value", r.pValue)
            w.value("significant", r.significant)
            w.value("verdict", r.verdict.rawValue)
            w.value("std_error", r.standardError)
            w.value("df", r.degreesOfFreedom)
            w.value("adjusted_p_value", r.adjustedPValue)
            w.value("interval_alpha", r.intervalAlpha)
            w.value("family_size", r.familySize)
            w.value("detectable_effect", r.detectableEffect)
            if let f = r.futility {
                w.object("futility") { w in
                    w.value("z", f.statistic)
                    w.value("boundary", f.boundary)
                    w.value("crossed", f.crossed)
                    w.value("planned_effect", f.plannedEffect)
                }
            }
            if let b = r.biasAdjusted {
                w.object("bias_adjusted") { w in
                    w.value("difference", b.difference)
                    w.value("relative", b.relative)
                    w.value("method", "median-unbiased")
                }
            }
            if let b = r.bayesian {
                w.object("bayesian") { w in
                    w.value("scale", b.scale.rawValue)
                    w.value("chance_to_win", b.chanceToWin)
                    w.value("mean", b.mean)
                    w.value("std_dev", b.standardDeviation)
                    writeInterval(&w, "credible_interval", b.interval)
                    w.value("risk_control", b.riskOfControl)
                    w.value("risk_treatment", b.riskOfTreatment)
                    w.value("issue", b.issue.map { "\($0)" })
                }
            }
            if let g = r.guardrail { writeGuardrail(&w, g) }
            if let v = r.varianceReduction {
                w.object("cuped") { w in
                    w.value("theta", v.theta)
                    w.value("variance_reduction", v.reduction)
                }
            }
            if let m = r.rankTest {
                w.object("mann_whitney") { w in
                    w.value("u", m.u)
                    w.value("z", m.z)
                    w.value("p_value", m.pValue)
                    w.value("probability_of_superiority", m.probabilityOfSuperiority)
                }
            }
            w.value("note", r.note)
        }
    }

    private func writeInterval(_ w: inout JSONWriter, _ key: String, _ ci: ConfidenceInterval?) {
        if let ci {
            w.array(key) { w in w.value(nil, ci.lower); w.value(nil, ci.upper) }
        } else {
            w.value(key, nil as Double?)
        }
    }

    private func writeGuardrail(_ w: inout JSONWriter, _ g: GuardrailCheck) {
        w.object("guardrail") { w in
            w.value("margin", g.margin.value)
            w.value("margin_is_relative", g.margin.isRelative)
            w.value("estimate", g.estimate)
            w.value("bound", g.bound)
            w.value("p_value", g.pValue)
            w.value("status", g.status.rawValue)
        }
    }

    private func writeDecision(_ w: inout JSONWriter, _ d: Decision) {
        w.value("action", d.action.rawValue)
        w.value("treatment", d.treatment)
        w.value("reason", d.reason)
        w.value("additional_users", d.additionalUsers)
        w.value("additional_days", d.additionalDays)
    }
}

/// The decision's action as the report prints it.
func actionName(_ action: DecisionAction) -> String {
    switch action {
    case .ship: return "SHIP"
    case .rollBack: return "ROLL BACK"
    case .keepRunning: return "KEEP RUNNING"
    case .stopInconclusive: return "STOP: INCONCLUSIVE"
    }
}

extension StringProtocol {
    /// The text with its first letter in lower case ("No data" → "no data"), for a reason inside a sentence.
    var lowercasedFirst: String { prefix(1).lowercased() + dropFirst() }
}
