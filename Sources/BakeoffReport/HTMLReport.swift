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
        .ship{background:#dafbe1;border:1px solid #4ac26b} .rollback{background:#fff1e5;border:1px solid #bc4c00}
        .keep{background:#fff8c5;border:1px solid #d4a72c} .warn{background:#fff1e5;border:1px solid #bc4c00;border-radius:8px;padding:.6rem 1rem;margin:.5rem 0}
        .table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch}
        figure.chart{margin:.5rem 0 1rem} .legend{font-size:13px;color:#57606a;margin-top:.5rem}
        .forest{font-size:13px} .fr{display:grid;grid-template-columns:12rem 1fr 12rem;gap:0 .75rem;align-items:center;min-height:1.7rem}
        .fl{overflow-wrap:anywhere} .role{color:#57606a} .fv{white-space:nowrap} .fr.axis{color:#57606a;font-size:12px}
        .fp{position:relative;height:1.4rem} .zero,.margin{position:absolute;top:0;bottom:0;border-left:1px dashed #8c959f}
        .margin{border-left:2px dotted #1b1f24} .tick{position:absolute;transform:translateX(-50%);white-space:nowrap}
        .bar{position:absolute;top:calc(50% - 2px);height:4px;border-radius:2px;background:currentColor}
        .bar.cl::before,.bar.cr::after{content:"";position:absolute;top:-4px;border:6px solid transparent}
        .bar.cl::before{left:-8px;border-right-color:currentColor;border-left:0} .bar.cr::after{right:-8px;border-left-color:currentColor;border-right:0}
        .pt{position:absolute;top:calc(50% - 6px);width:12px;height:12px;margin-left:-6px;box-sizing:border-box}
        .pt.key{position:relative;display:inline-block;top:1px;margin:0} .forest,.legend{print-color-adjust:exact;-webkit-print-color-adjust:exact}
        .s-better .fp,.s-better .pt{color:#0072B2} .s-better .pt{background:#0072B2;border-radius:50%}
        .s-worse .fp{color:#D55E00} .s-worse .pt{background:#D55E00}
        .s-changed .fp{color:#CC79A7} .s-changed .pt{background:#CC79A7;clip-path:polygon(50% 0,100% 100%,0 100%)}
        .s-no_difference .fp,.s-too_few_users .fp,.s-not_tested .fp{color:#8c959f} .s-no_difference .pt,.s-not_tested .pt{background:#fff;border:2px solid #6e7781;border-radius:50%}
        .s-better .fv .word{color:#005a8c;font-weight:600} .s-worse .fv .word{color:#a33f00;font-weight:600} .s-changed .fv .word{color:#7a3d6b;font-weight:600}
        @media (max-width:600px){.fr{grid-template-columns:1fr auto;margin-bottom:.3rem} .fr .fp{grid-column:1/-1;grid-row:2} .fr.axis .fl,.fr.axis .fv{display:none} .tick:first-child{transform:none} .tick:last-child{transform:translateX(-100%)}}
        table.scorecard{border-collapse:collapse;width:100%;min-width:640px;font-size:14px;font-variant-numeric:tabular-nums}
        .scorecard th,.scorecard td{padding:.35rem .45rem;border-bottom:1px solid #d0d7de;text-align:right;vertical-align:top}
        .scorecard th{background:#f6f8fa;font-weight:600} .scorecard th:first-child,.scorecard td.metric,.scorecard td.status{text-align:left}
        .scorecard tr.has-note td{border-bottom:none} .scorecard tr.explain td{text-align:left;font-size:13px;color:#3d444d;padding-top:0}
        .scorecard th:first-child,.scorecard td.metric{position:sticky;left:0;background:#fff} .scorecard th:first-child{background:#f6f8fa}
        .explain .why{position:sticky;left:.45rem;max-width:calc(100vw - 4rem)}
        .v,.lvl,.raw,.tag{white-space:nowrap} .ci{white-space:nowrap;color:#57606a} .lvl,.raw,.sub{font-size:12px;color:#57606a} .raw{display:block} .guard{overflow-wrap:anywhere}
        .tag{font-size:11px;border:1px solid #d0d7de;border-radius:4px;padding:0 .3em;color:#57606a}
        .s-better .status{color:#005a8c;font-weight:600} .s-worse .status{color:#a33f00;font-weight:600} .s-changed .status{color:#7a3d6b;font-weight:600}
        .s-too_few_users .status,.s-not_tested .status,.s-no_difference .status{color:#57606a}
        details.folded{margin:.5rem 0;color:#57606a} details.folded summary{cursor:pointer}
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

        for card in scorecards {
            html += "<h2>\(escape(card.treatment)) vs \(escape(card.control))</h2>\n"
            html += liftChart(card)
            html += scorecardTable(card)
            let notes = analysisNotes(card.treatment)
            if !notes.isEmpty { html += "<ul class=\"notes\">" + notes.map { "<li>\(escape($0))</li>" }.joined() + "</ul>\n" }
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
            html += ": \(escape(formatPEquals(sampleRatio.pValue ?? 0))), " + (sampleRatio.status == .ok ? "consistent with the plan." : "<strong>mismatch</strong>.")
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

    /// The scorecard as a table: one row per metric, its explanation on a line of its own beneath, the
    /// folded rows in a `<details>`.
    ///
    /// Why this shape: numbers stay in narrow cells (values and intervals never break inside, the cells
    /// themselves may wrap), prose gets the table's full width, and the table scrolls sideways inside its
    /// own box on a phone instead of widening the page. Every number carries `data-value` (the JSON
    /// report's text of it) and every row `data-metric`/`data-variant`, so a browser test can compare the
    /// page with the JSON report.
    func scorecardTable(_ card: Scorecard) -> String {
        let showChance = card.rows.contains { $0.chanceToWin != nil }
        let columns = showChance ? 8 : 7
        var html = "<div class=\"table-wrap\"><table class=\"scorecard\"><thead><tr><th scope=\"col\">Metric</th>"
        html += "<th scope=\"col\">\(escape(card.control))</th><th scope=\"col\">\(escape(card.treatment))</th>"
        html += "<th scope=\"col\">difference [\(formatNumber((1 - alpha) * 100))% CI]</th><th scope=\"col\">lift [CI]</th><th scope=\"col\">p-value</th>"
        if showChance { html += "<th scope=\"col\">chance better</th>" }
        html += "<th scope=\"col\">result</th></tr></thead><tbody>\n"
        for row in card.rows {
            let explained = row.explanation != nil
            html += "<tr class=\"s-\(row.status.rawValue)\(explained ? " has-note" : "")\" data-metric=\"\(escape(row.metric.name))\" data-variant=\"\(escape(card.treatment))\" data-status=\"\(row.status.rawValue)\">"
            html += "<td class=\"metric\">\(escape(row.metric.title))"
            if row.isPrimary { html += " <span class=\"tag\">primary</span>" }
            html += "<div class=\"sub\">\(escape(row.sampleSize))</div>"
            if let g = row.guardrail { html += "<div class=\"sub guard\">guardrail: \(escape(g))</div>" }
            html += "</td>"
            html += numberCell(row.control, row.numbers.control)
            html += numberCell(row.treatment, row.numbers.treatment)
            var difference = "<span class=\"v\">\(escape(row.difference))</span>"
            if let ci = row.interval, let b = row.numbers.interval {
                let level = row.intervalLevel.map { " <span class=\"lvl\" title=\"a \($0) interval: the level the multiple-comparison correction asks for\">\(escape($0))</span>" } ?? ""
                difference += " " + intervalSpan(ci, b, suffix: level)
            }
            html += "<td class=\"num\"\(dataValue(row.numbers.difference))>\(difference)</td>"
            var lift = "<span class=\"v\">\(escape(row.lift))</span>"
            if let ci = row.liftInterval, let b = row.numbers.liftInterval { lift += " " + intervalSpan(ci, b) }
            html += "<td class=\"num\"\(dataValue(row.numbers.lift))>\(lift)</td>"
            var p = "<span class=\"v\">\(escape(row.pValue))</span>"
            if let raw = row.rawPValue { p += " <span class=\"raw\"\(dataValue(row.numbers.rawPValue))>unadjusted \(escape(raw))</span>" }
            html += "<td class=\"num\"\(dataValue(row.numbers.pValue))>\(p)</td>"
            if showChance { html += numberCell(row.chanceToWin ?? "—", row.numbers.chanceToWin) }
            html += "<td class=\"status\"><span class=\"mark\" aria-hidden=\"true\">\(Self.statusMark(row.status))</span> \(escape(row.statusText))</td></tr>\n"
            if let text = row.explanation {
                html += "<tr class=\"explain\" data-explains=\"\(escape(row.metric.name))\"><td colspan=\"\(columns)\"><div class=\"why\">\(escape(text))</div></td></tr>\n"
            }
        }
        html += "</tbody></table></div>\n"
        if !card.folded.isEmpty {
            html += "<details class=\"folded\"><summary>\(card.folded.count) metric\(card.folded.count == 1 ? "" : "s") with nothing to compare yet</summary><ul>"
            for row in card.folded {
                html += "<li data-folded=\"\(escape(row.metric.name))\"><strong>\(escape(row.metric.title))</strong>: \(escape(row.explanation ?? row.statusText))</li>"
            }
            html += "</ul></details>\n"
        }
        return html
    }

    /// A cell of one number: its text, and the number as the JSON report prints it.
    private func numberCell(_ text: String, _ value: Double?) -> String {
        "<td class=\"num\"\(dataValue(value))><span class=\"v\">\(escape(text))</span></td>"
    }

    private func dataValue(_ value: Double?) -> String {
        value.map { " data-value=\"\(JSONWriter.number($0))\"" } ?? ""
    }

    /// An interval that never breaks inside; `suffix` (its level) stays on its line.
    private func intervalSpan(_ text: String, _ bounds: (lower: Double, upper: Double), suffix: String = "") -> String {
        "<span class=\"ci\" data-lower=\"\(JSONWriter.number(bounds.lower))\" data-upper=\"\(JSONWriter.number(bounds.upper))\">\(escape(text))\(suffix)</span>"
    }

    /// The mark beside a result's words: a shape as well as a colour.
    static func statusMark(_ status: Scorecard.Status) -> String {
        switch status {
        case .better: return "●"
        case .worse: return "■"
        case .changed: return "▲"
        case .noDifference: return "○"
        case .tooFewUsers: return "…"
        case .notTested: return "–"
        }
    }

    /// A forest plot of every row with a lift, quantiles included: the mark at the relative lift (its
    /// shape and words say the result), the bar its interval, guardrails named and their relative margins
    /// marked; a legend beneath, and the rows it cannot draw named with the reason.
    ///
    /// Why: a chart that leaves out the rows the table marks worse tells a different story than the table.
    /// It is HTML positioned in percent rather than one SVG, so that on a phone the label and the words
    /// go above the bar and the text keeps its size, instead of a whole picture shrinking to illegible.
    func liftChart(_ card: Scorecard) -> String {
        let rows = card.rows.filter { $0.liftValue != nil }
        let undrawn = card.rows.filter { $0.liftValue == nil }
        var html = ""
        if !rows.isEmpty {
            var extent = 0.05
            for r in rows {
                extent = max(extent, abs(r.liftValue!))
                if let b = r.liftBounds { extent = max(extent, abs(b.lower), abs(b.upper)) }
                if let m = Self.relativeMargin(r) { extent = max(extent, abs(m)) }
            }
            extent = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5].first { $0 >= extent * 1.05 } ?? 5
            /// Percent from the plot's left edge.
            func x(_ v: Double) -> Double { (max(-extent, min(extent, v)) + extent) / (2 * extent) * 100 }
            func left(_ v: Double) -> String { "left:\(fixed(x(v), 2))%" }
            html += "<figure class=\"chart\"><div class=\"forest\" role=\"list\" aria-label=\"Relative lift of each metric with its confidence interval and result\">\n"
            for r in rows {
                let role = r.isPrimary ? " <span class=\"role\">(primary)</span>" : r.isGuardrail ? " <span class=\"role\">(guardrail)</span>" : ""
                html += "<div class=\"fr s-\(r.status.rawValue)\" role=\"listitem\" data-chart-metric=\"\(escape(r.metric.name))\" title=\"\(escape(Self.chartTitle(r)))\">"
                html += "<span class=\"fl\">\(escape(r.metric.title))\(role)</span><span class=\"fp\"><span class=\"zero\" style=\"\(left(0))\"></span>"
                if let m = Self.relativeMargin(r) {
                    html += "<span class=\"margin\" style=\"\(left(m))\" title=\"guardrail margin \(escape(formatPercent(m)))\"></span>"
                }
                if let b = r.liftBounds {
                    let clipped = (b.lower < -extent ? " cl" : "") + (b.upper > extent ? " cr" : "")
                    html += "<span class=\"bar\(clipped)\" style=\"\(left(b.lower));width:\(fixed(x(b.upper) - x(b.lower), 2))%\"></span>"
                }
                html += "<span class=\"pt\" style=\"\(left(r.liftValue!))\"></span></span>"
                html += "<span class=\"fv\">\(escape(r.lift)) <span class=\"word\">\(escape(r.statusText))</span>\(r.explanation != nil ? " †" : "")</span></div>\n"
            }
            html += "<div class=\"fr axis\" aria-hidden=\"true\"><span class=\"fl\"></span><span class=\"fp\">"
            for tick in [-extent, -extent / 2, 0, extent / 2, extent] {
                html += "<span class=\"tick\" style=\"\(left(tick))\">\(escape(tick == 0 ? "0%" : formatPercent(tick)))</span>"
            }
            html += "</span><span class=\"fv\"></span></div>\n</div>\n" + chartLegend(rows) + "</figure>\n"
        }
        if !undrawn.isEmpty {
            html += "<p class=\"muted\">Not drawn: " + undrawn.map { "\(escape($0.metric.title)) (\(escape(Self.undrawnReason($0))))" }.joined(separator: ", ") + ".</p>\n"
        }
        return html
    }

    /// The legend: each mark in words, what the bars are, and the guardrail margin when one is drawn.
    private func chartLegend(_ rows: [Scorecard.Row]) -> String {
        func swatch(_ status: Scorecard.Status) -> String { "<span class=\"s-\(status.rawValue)\"><span class=\"pt key\"></span></span>" }
        var items = ["\(swatch(.better)) better (significant)", "\(swatch(.worse)) worse (significant)"]
        if rows.contains(where: { $0.status == .changed }) { items.append("\(swatch(.changed)) changed (significant; the metric has no better direction)") }
        items.append("\(swatch(.noDifference)) no clear difference")
        let adjusted = rows.contains { $0.intervalLevel != nil }
        items.append("bar: the lift's \(formatNumber((1 - alpha) * 100))% interval\(adjusted ? " (wider where the multiple-comparison correction asks)" : "")")
        if rows.contains(where: { Self.relativeMargin($0) != nil }) { items.append("dotted tick: a guardrail's margin") }
        if rows.contains(where: { $0.explanation != nil }) { items.append("†: see the note under the row in the table") }
        return "<figcaption class=\"legend\">" + items.joined(separator: " · ") + "</figcaption>\n"
    }

    /// A guardrail's relative margin on the chart's scale (the harmful side), when it has one.
    static func relativeMargin(_ row: Scorecard.Row) -> Double? {
        guard row.isGuardrail, let m = row.metric.margin, m.isRelative else { return nil }
        return row.metric.goal == .down ? m.value : -m.value
    }

    /// The chart row's tooltip: every number of the row in one line.
    static func chartTitle(_ r: Scorecard.Row) -> String {
        var text = "\(r.metric.title): lift \(r.lift)"
        if let ci = r.liftInterval { text += " \(ci)" }
        text += ", p \(r.pValue), \(r.statusText)"
        if let g = r.guardrail { text += "; guardrail \(g)" }
        return text
    }

    /// Why a row has no mark on the chart.
    static func undrawnReason(_ r: Scorecard.Row) -> String {
        if r.status == .tooFewUsers { return r.statusText }
        if r.numbers.lift == nil, r.numbers.control == 0 { return "no lift: control is 0" }
        return "no lift"
    }
}

/// Escapes text for HTML element content and attribute values.
func escape(_ s: String) -> String { escapeHTML(s) }
