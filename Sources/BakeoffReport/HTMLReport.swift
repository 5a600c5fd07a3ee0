import BakeoffCore
import BakeoffStatistics
/// A self-contained HTML page of the report: decision banner, the metrics table, and a chart of each
/// metric's relative lift with its confidence interval (inline SVG, no scripts, no external files).
extension Report {
    func renderHTML() -> String {
        let decision = self.decision
        let action: String, tone: String
        switch decision.action {
        case .ship: (action, tone) = ("Ship", "ship")
        case .rollBack: (action, tone) = ("Roll back", "rollback")
        case .keepRunning: (action, tone) = ("Keep running", "keep")
        case .stopInconclusive: (action, tone) = ("Stop: inconclusive", "keep")
        }
        var html = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Bakeoff report: \(escape(displayName))</title>
        <style>
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:980px;padding:0 1rem;color:#1b1f24}
        h1{font-size:1.5rem;margin:0 0 .25rem} h2{font-size:1.1rem;margin:2rem 0 .5rem}
        .muted{color:#57606a} .banner{border-radius:8px;padding:.9rem 1.1rem;margin:1rem 0;font-size:1.05rem}
        .ship{background:#dafbe1;border:1px solid #4ac26b} .rollback{background:#ffebe9;border:1px solid #ff8182}
        .keep{background:#fff8c5;border:1px solid #d4a72c} .warn{background:#ffebe9;border:1px solid #cf222e;border-radius:8px;padding:.6rem 1rem;margin:.5rem 0}
        table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
        th,td{padding:.35rem .5rem;border-bottom:1px solid #d0d7de;text-align:right} th:first-child,td:first-child{text-align:left} td{white-space:nowrap} td:nth-child(4),td:nth-child(5){white-space:normal}
        table{font-size:14px}
        th{background:#f6f8fa} .better{color:#1a7f37;font-weight:600} .worse{color:#cf222e;font-weight:600}
        svg text{font:12px system-ui,sans-serif;fill:#1b1f24}
        </style></head><body>
        <h1>Bakeoff report: \(escape(displayName))</h1>
        <div class="muted">\(escape(variants.map { "\($0.name): \(group($0.users)) users" }.joined(separator: " · "))) · \(group(requestEvents)) requests · \(group(feedbackEvents)) feedback events\(periodHTML)</div>
        <div class="muted">\(escape(methodText.prefix(1).uppercased() + String(methodText.dropFirst()))) · control: \(escape(control))\(runtimeText.map { " · " + escape($0) } ?? "")</div>

        """
        for w in warnings { html += "<div class=\"warn\">\(escape(w))</div>\n" }
        html += "<div class=\"banner \(tone)\"><strong>\(action)\(decision.treatment.isEmpty ? "" : " " + escape(decision.treatment))</strong> — \(escape(decision.reason))</div>\n"
        if decisions.count > 1 {
            html += "<ul>" + decisions.map { "<li><strong>\(escape($0.treatment))</strong>: \(escape(actionName($0.action))) — \(escape($0.reason))</li>" }.joined() + "</ul>\n"
        }

        for treatment in variants.dropFirst().map(\.name) {
            html += "<h2>\(escape(treatment)) vs \(escape(control))</h2>\n"
            html += liftChart(treatment)
            html += "<table><thead><tr><th>Metric</th><th>\(escape(control))</th><th>\(escape(treatment))</th><th>difference [\(formatNumber((1 - alpha) * 100))% CI]</th><th>lift [CI]</th><th>p-value</th><th>users c/t</th></tr></thead><tbody>\n"
            for r in results where r.treatment == treatment {
                let cls = r.verdict == .better ? " class=\"better\"" : r.verdict == .worse ? " class=\"worse\"" : ""
                let title = r.metric.name == primaryMetric ? "\(escape(r.metric.title)) <span class=\"muted\">(primary)</span>" : escape(r.metric.title)
                let difference = (r.absoluteDifference.map { formatSigned($0, r.metric) } ?? "n/a") + " " + (r.absoluteInterval.map { formatInterval($0, r.metric) } ?? "")
                html += "<tr><td>\(title)</td><td>\(formatValue(r.control.mean, r.metric))</td><td>\(formatValue(r.treatmentGroup.mean, r.metric))</td>"
                html += "<td>\(escape(difference))</td><td\(cls)>\(escape(formatLift(r)))</td><td\(cls)>\(r.decisionPValue.map(formatP) ?? escape(r.note ?? "—"))</td>"
                html += "<td>\(group(r.control.users))/\(group(r.treatmentGroup.users))</td></tr>\n"
            }
            for q in quantiles where q.treatment == treatment {
                let cls = q.verdict == .better ? " class=\"better\"" : q.verdict == .worse ? " class=\"worse\"" : ""
                var lift = formatPercent(q.relativeChange)
                if let ci = q.relativeInterval { lift += " [\(formatPercentBare(ci.lower)), \(formatPercentBare(ci.upper))]" }
                let difference = q.control.flatMap { c in q.treatmentValue.map { formatSigned($0 - c, q.metric) } } ?? "n/a"
                html += "<tr><td>\(escape(q.metric.title))</td><td>\(formatValue(q.control, q.metric))</td><td>\(formatValue(q.treatmentValue, q.metric))</td>"
                html += "<td>\(escape(difference + " " + formatInterval(q.absoluteInterval, q.metric)))</td><td\(cls)>\(escape(lift))</td>"
                html += "<td\(cls)>\((q.adjustedPValue ?? q.pValue).map(formatP) ?? escape(q.note ?? "—"))</td><td>\(group(q.controlCount))/\(group(q.treatmentCount)) req.</td></tr>\n"
            }
            html += "</tbody></table>\n"
            let notes = analysisNotes(treatment)
            if !notes.isEmpty { html += "<ul>" + notes.map { "<li>\(escape($0))</li>" }.joined() + "</ul>\n" }
        }
        if !planChanges.isEmpty {
            html += "<h2>Plan changes after the start</h2><ul>"
            for c in planChanges { html += "<li>\(escape(formatTimestamp(c.timestamp))): \(escape(c.changes.joined(separator: "; ")))</li>" }
            html += "</ul>\n"
        }

        html += "<h2>Sample ratio</h2><p>"
        switch sampleRatio.status {
        case .notRun: html += "Not run: \(escape(sampleRatio.reason ?? ""))."
        case .ok, .mismatch:
            html += escape(sampleRatio.observed.map { "\($0.name) \(group($0.count))" }.joined(separator: ", "))
            html += " against the planned " + sampleRatio.expectedShares.map { significant($0 * 100, 3) + "%" }.joined(separator: "/")
            html += ": \(formatPEquals(sampleRatio.pValue ?? 0)), " + (sampleRatio.status == .ok ? "consistent with the plan." : "<strong>mismatch</strong>.")
        }
        let q = dataQuality
        html += "</p><h2>Data quality</h2><ul>"
        html += "<li>users seen in more than one variant: \(q.usersInSeveralVariants)</li>"
        html += "<li>feedback whose request or conversation is missing: \(q.feedbackWithMissingTarget)</li>"
        html += "<li>duplicate request ids: \(q.duplicateRequestIDs)</li>"
        html += "<li>conversation ids used by several users: \(q.conversationsOfSeveralUsers)</li>"
        if q.eventsAfterCut > 0 {
            html += "<li>Events at or after the cut left out (the analysis as it stood then): \(group(q.eventsAfterCut))</li>"
        }
        if q.qaRequestsExcluded > 0 || q.qaFeedbackExcluded > 0 {
            html += "<li>QA requests left out (forced into a variant): \(q.qaRequestsExcluded), with \(q.qaFeedbackExcluded) feedback events</li>"
        }
        html += "<li>lines skipped as invalid: \(q.linesSkipped)</li></ul>\n"
        html += "<p class=\"muted\">\(escape(String(footnoteText.dropFirst(18)))) Generated by bakeoff.</p>\n</body></html>\n"
        return html
    }

    private var periodHTML: String {
        guard let a = firstTimestamp, let b = lastTimestamp else { return "" }
        return " · \(formatTimestamp(a).prefix(10)) to \(formatTimestamp(b).prefix(10))"
    }

    /// A forest plot: one row per metric, the point at the relative lift, the bar spanning its interval,
    /// green where the change is significantly better, red where significantly worse.
    private func liftChart(_ treatment: String) -> String {
        let rows = results.filter { $0.treatment == treatment && $0.relativeLift != nil }
        guard !rows.isEmpty else { return "" }
        var extent = 0.05
        for r in rows {
            extent = max(extent, abs(r.relativeLift!))
            if case .bounded(let lo, let hi)? = r.relativeInterval { extent = max(extent, abs(lo), abs(hi)) }
        }
        extent = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5].first { $0 >= extent * 1.05 } ?? 5
        let width = 900.0, labelWidth = 170.0, rowHeight = 26.0
        let plotWidth = width - labelWidth - 90
        let height = Double(rows.count) * rowHeight + 30
        func x(_ v: Double) -> Double { labelWidth + (max(-extent, min(extent, v)) + extent) / (2 * extent) * plotWidth }
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"100%\" role=\"img\" aria-label=\"Relative lift with confidence intervals\">\n"
        let zero = x(0)
        svg += "<line x1=\"\(fixed(zero, 1))\" y1=\"4\" x2=\"\(fixed(zero, 1))\" y2=\"\(fixed(height - 22, 1))\" stroke=\"#8c959f\" stroke-dasharray=\"3 3\"/>\n"
        for tick in [-extent, -extent / 2, extent / 2, extent] {
            svg += "<text x=\"\(fixed(x(tick), 1))\" y=\"\(fixed(height - 6, 1))\" text-anchor=\"middle\" fill=\"#57606a\">\(escape(formatPercent(tick)))</text>\n"
        }
        svg += "<text x=\"\(fixed(zero, 1))\" y=\"\(fixed(height - 6, 1))\" text-anchor=\"middle\">0%</text>\n"
        for (i, r) in rows.enumerated() {
            let y = Double(i) * rowHeight + 16
            let color = r.verdict == .better ? "#1a7f37" : r.verdict == .worse ? "#cf222e" : "#57606a"
            svg += "<text x=\"0\" y=\"\(fixed(y + 4, 1))\">\(escape(r.metric.title))</text>\n"
            if case .bounded(let lo, let hi)? = r.relativeInterval {
                svg += "<line x1=\"\(fixed(x(lo), 1))\" y1=\"\(fixed(y, 1))\" x2=\"\(fixed(x(hi), 1))\" y2=\"\(fixed(y, 1))\" stroke=\"\(color)\" stroke-width=\"3\" stroke-linecap=\"round\"/>\n"
            } else if r.relativeInterval != nil {
                svg += "<line x1=\"\(fixed(labelWidth, 1))\" y1=\"\(fixed(y, 1))\" x2=\"\(fixed(labelWidth + plotWidth, 1))\" y2=\"\(fixed(y, 1))\" stroke=\"\(color)\" stroke-width=\"1\" stroke-dasharray=\"2 4\"/>\n"
            }
            svg += "<circle cx=\"\(fixed(x(r.relativeLift!), 1))\" cy=\"\(fixed(y, 1))\" r=\"5\" fill=\"\(color)\"/>\n"
            svg += "<text x=\"\(fixed(labelWidth + plotWidth + 10, 1))\" y=\"\(fixed(y + 4, 1))\" fill=\"\(color)\">\(escape(formatPercent(r.relativeLift)))</text>\n"
        }
        return svg + "</svg>\n"
    }
}

/// Escapes text for HTML element content and attribute values.
func escape(_ s: String) -> String { escapeHTML(s) }
