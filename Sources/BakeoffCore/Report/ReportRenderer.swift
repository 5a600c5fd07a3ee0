import Foundation
import BakeoffStatistics

/// Output formats of `bakeoff analyze`.
public enum ReportFormat: String, Sendable, CaseIterable {
    case table, markdown, json, html
}

extension Report {
    public func render(_ format: ReportFormat) -> String {
        switch format {
        case .table: return renderText(markdown: false)
        case .markdown: return renderText(markdown: true)
        case .json: return renderJSON()
        case .html: return renderHTML()
        }
    }

    private var periodText: String {
        guard let a = firstTimestamp, let b = lastTimestamp else { return "" }
        let days = Double(b - a) / 86_400_000_000
        return "\(formatTimestamp(a).prefix(10)) to \(formatTimestamp(b).prefix(10)) (\(format1(days)) days)"
    }

    private var methodText: String {
        unit == .user
            ? "user-level Welch t-tests (delta method), alpha \(formatNumber(alpha))"
            : "NAIVE event-level Student t-tests (units treated as independent), alpha \(formatNumber(alpha))"
    }

    private func summaryRows(_ treatment: String, markdown: Bool) -> [[String]] {
        var rows: [[String]] = []
        for r in results where r.treatment == treatment {
            let title = r.metric.name == primaryMetric ? r.metric.title + " *" : r.metric.title
            let sig: String
            if r.pValue == nil { sig = "—" } else if !r.significant { sig = "no" } else {
                sig = r.verdict == .better ? "better" : r.verdict == .worse ? "WORSE" : "yes"
            }
            rows.append([title, formatValue(r.control.mean, r.metric), formatValue(r.treatmentGroup.mean, r.metric),
                         formatLift(r), r.pValue.map(formatP) ?? "—", sig])
        }
        for q in quantiles where q.treatment == treatment {
            rows.append([q.metric.title, formatValue(q.control, q.metric), formatValue(q.treatmentValue, q.metric),
                         formatPercent(q.relativeChange), "—", "—"])
        }
        if markdown { return rows.map { $0.map { $0.replacingOccurrences(of: "|", with: "\\|") } } }
        return rows
    }

    /// The detail table; notes too long for a cell (in an 80-column table) become numbered footnotes.
    private func detailRows(_ treatment: String, footnotes: inout [String], longNotes: Bool) -> [[String]] {
        var rows: [[String]] = []
        for r in results where r.treatment == treatment {
            var ci = r.absoluteInterval.map { formatInterval($0, r.metric) } ?? (r.note ?? "")
            if !longNotes, r.absoluteInterval == nil, let note = r.note, note.count > 24 {
                footnotes.append("\(r.metric.title): \(note)")
                ci = "see note \(footnotes.count)"
            }
            rows.append([r.metric.title,
                         "\(group(r.control.users))/\(group(r.treatmentGroup.users))",
                         "\(group(Int(r.control.units)))/\(group(Int(r.treatmentGroup.units)))",
                         r.absoluteDifference.map { formatSigned($0, r.metric) } ?? "n/a",
                         ci])
        }
        return rows
    }

    private func renderText(markdown: Bool) -> String {
        var out = ""
        let h1 = markdown ? "## " : ""
        let bold = markdown ? "**" : ""
        out += "\(h1)Bakeoff report: \(experiment)\n"
        if !markdown { out += String(repeating: "=", count: min(78, 17 + experiment.count)) + "\n" }
        if markdown { out += "\n" }
        let prose: (String) -> String = { markdown ? $0 : wrap($0) }
        let variantText = variants.map { "\($0.name) \(group($0.users)) users" }.joined(separator: ", ")
        var summary = "\(variantText); \(group(requestEvents)) requests, \(group(feedbackEvents)) feedback events"
        if !periodText.isEmpty { summary += "; \(periodText)" }
        out += prose(summary + ".") + "\n" + (markdown ? "\n" : "") + prose("Method: \(methodText). Control: \(control).") + "\n\n"
        for w in warnings {
            out += markdown ? "> **Warning:** \(w)\n\n" : wrap("!! \(w)", indent: "   ") + "\n\n"
        }

        let decision = self.decision
        let action = decision.action == .ship ? "SHIP" : decision.action == .rollBack ? "ROLL BACK" : "KEEP RUNNING"
        out += prose("\(bold)Decision: \(action)\(decision.treatment.isEmpty ? "" : " \(decision.treatment)")\(bold) — \(decision.reason)") + "\n\n"

        for treatment in variants.dropFirst().map(\.name) {
            if variants.count > 2 { out += "\(markdown ? "### " : "")\(treatment) vs \(control)\n\n" }
            let header = ["Metric", control, treatment, "lift [\(formatNumber((1 - alpha) * 100))% CI]", "p-value", "signif."]
            let rows = summaryRows(treatment, markdown: markdown)
            out += markdown ? markdownTable(header, rows) : renderTable(header, rows)
            out += "\n"
            let detailHeader = ["Metric", "users c/t", "units c/t", "difference", "\(formatNumber((1 - alpha) * 100))% CI"]
            var footnotes: [String] = []
            let details = detailRows(treatment, footnotes: &footnotes, longNotes: markdown)
            if markdown {
                out += "<details><summary>Users, units and absolute differences</summary>\n\n" + markdownTable(detailHeader, details) + "\n</details>\n\n"
            } else {
                out += renderTable(detailHeader, details) + "\n"
                for (i, note) in footnotes.enumerated() { out += wrap("\(i + 1). \(note)", indent: "   ") + "\n" }
                if !footnotes.isEmpty { out += "\n" }
            }
        }
        out += prose("* primary metric. Lift is the relative change with Fieller's interval; it excludes 0 exactly when p < \(formatNumber(alpha)). Quantiles are shown with their relative change only.") + "\n\n"

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
        out += "\n\(markdown ? "### " : "")Data quality\n" + (markdown ? "\n" : "")
        let q = dataQuality
        var lines: [String] = []
        lines.append("users seen in more than one variant: \(q.usersInSeveralVariants)")
        lines.append("feedback whose request or conversation is missing: \(q.feedbackWithMissingTarget)")
        lines.append("duplicate request ids (later copies ignored): \(q.duplicateRequestIDs)")
        if q.conversationsOfSeveralUsers > 0 {
            lines.append("conversation ids used by several users: \(q.conversationsOfSeveralUsers)")
        }
        if q.qaRequestsExcluded > 0 || q.qaFeedbackExcluded > 0 {
            lines.append("QA requests left out (forced into a variant): \(q.qaRequestsExcluded), with \(q.qaFeedbackExcluded) feedback events")
        }
        lines.append("lines skipped as invalid: \(q.linesSkipped)")
        for example in q.skippedExamples.prefix(3) { lines.append("  e.g. \(example)") }
        if !q.otherExperiments.isEmpty {
            lines.append("events of other experiments ignored: " + q.otherExperiments.prefix(5).map { "\($0.name) (\($0.count))" }.joined(separator: ", "))
        }
        if !q.unusedFeedbackNames.isEmpty {
            lines.append("feedback names no metric uses: " + q.unusedFeedbackNames.prefix(5).map { "\($0.name) (\($0.count))" }.joined(separator: ", "))
        }
        out += lines.map { markdown ? "- " + $0 : wrap("  " + $0, indent: "    ") }.joined(separator: "\n") + "\n"
        return out
    }

    private func markdownTable(_ header: [String], _ rows: [[String]]) -> String {
        var out = "| " + header.joined(separator: " | ") + " |\n"
        out += "|" + header.enumerated().map { i, _ in i == 0 ? "---|" : "---:|" }.joined() + "\n"
        for r in rows { out += "| " + r.joined(separator: " | ") + " |\n" }
        return out
    }

    private func renderJSON() -> String {
        var w = JSONWriter()
        w.object { w in
            w.value("schema", "bakeoff.report/1")
            w.value("experiment", experiment)
            w.value("alpha", alpha)
            w.value("unit", unit.rawValue)
            w.value("control", control)
            w.value("primary_metric", primaryMetric)
            w.object("period") { w in
                w.value("first", firstTimestamp.map(formatTimestamp))
                w.value("last", lastTimestamp.map(formatTimestamp))
                w.value("days", firstTimestamp.flatMap { a in lastTimestamp.map { Double($0 - a) / 86_400_000_000 } })
            }
            w.object("events") { w in
                w.value("requests", requestEvents)
                w.value("feedback", feedbackEvents)
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
                w.value("qa_feedback_excluded", q.qaFeedbackExcluded)
                w.value("lines_skipped", q.linesSkipped)
                w.array("skipped_examples") { w in for e in q.skippedExamples { w.value(nil, e) } }
                w.object("other_experiments") { w in for o in q.otherExperiments { w.value(o.name, o.count) } }
                w.object("unused_feedback_names") { w in for o in q.unusedFeedbackNames { w.value(o.name, o.count) } }
            }
            w.array("warnings") { w in for x in warnings { w.value(nil, x) } }
        }
        return w.text + "\n"
    }

    private func writeMetric(_ w: inout JSONWriter, _ r: MetricResult) {
        w.object { w in
            w.value("name", r.metric.name)
            w.value("title", r.metric.title)
            w.value("variant", r.treatment)
            w.value("level", r.metric.level.rawValue)
            w.value("kind", r.metric.kind.rawValue)
            w.value("goal", r.metric.goal.rawValue)
            w.value("role", r.metric.role.rawValue)
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
            w.value("note", r.note)
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

/// 12,345 with thousands separators.
func group(_ n: Int) -> String {
    let s = String(abs(n))
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return n < 0 ? "-" + out : out
}
