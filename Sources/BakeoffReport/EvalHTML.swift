import BakeoffCore
import BakeoffEval

extension EvalReport {
    /// One self-contained page: the decision, win rates and differences as interval charts, tables, and the
    /// requests where the variants differ most, side by side. Every text from a dataset, a model or a config
    /// is escaped.
    func renderHTML() -> String {
        let tone: String
        switch decision.action {
        case .promote: tone = "ship"
        case .doNotPromote: tone = "rollback"
        case .needsMoreRequests: tone = "keep"
        }
        var html = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Bakeoff offline eval: \(escape(experiment))</title>
        <style>
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1080px;padding:0 1rem;color:#1b1f24}
        h1{font-size:1.5rem;margin:0 0 .25rem} h2{font-size:1.1rem;margin:2rem 0 .5rem}
        .muted{color:#57606a} .banner{border-radius:8px;padding:.9rem 1.1rem;margin:1rem 0;font-size:1.05rem}
        .ship{background:#dafbe1;border:1px solid #4ac26b} .rollback{background:#ffebe9;border:1px solid #ff8182}
        .keep{background:#fff8c5;border:1px solid #d4a72c}
        table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:14px}
        th,td{padding:.35rem .5rem;border-bottom:1px solid #d0d7de;text-align:right;vertical-align:top} th:first-child,td:first-child{text-align:left}
        th{background:#f6f8fa} .better{color:#1a7f37;font-weight:600} .worse{color:#cf222e;font-weight:600}
        .side{display:grid;grid-template-columns:1fr 1fr;gap:.75rem;margin:.5rem 0 1.5rem}
        .side div{border:1px solid #d0d7de;border-radius:6px;padding:.5rem .75rem;white-space:pre-wrap;overflow-wrap:anywhere}
        .q{background:#f6f8fa;border-radius:6px;padding:.5rem .75rem;white-space:pre-wrap;overflow-wrap:anywhere}
        svg text{font:12px system-ui,sans-serif;fill:#1b1f24}
        </style></head><body>
        <h1>Bakeoff offline eval: \(escape(experiment))</h1>
        <div class="muted">\(group(requests)) requests from \(escape(dataset)) · variants \(escape(variants.joined(separator: ", "))) · control \(escape(variants[control]))\(repetitions > 1 ? " · \(repetitions) answers per request and variant" : "") · paired by request · \(confidenceLabel)s · \(holmText)</div>
        <div class="banner \(tone)" id="decision"><strong>Decision: \(escape(decision.action.rawValue))\(decision.action == .needsMoreRequests ? "" : " " + escape(decision.variant))</strong><ul>
        """
        for r in decision.reasons { html += "<li>\(escape(r))</li>" }
        if let n = decision.requestsNeeded { html += "<li>about \(group(n)) requests in all would detect it (\(formatNumber(power * 100))% power)</li>" }
        if let users = decision.liveUsersPerGroup { html += "<li>the live A/B needs \(group(users)) users per group</li>" }
        if let hint = decision.livePlanHint { html += "<li>\(escape(hint))</li>" }
        html += "</ul></div>\n"

        if !winRates.isEmpty {
            html += "<h2>Pairwise judge: win rate against \(escape(variants[control]))</h2>\n"
            html += intervalChart(winRates.map { ("\($0.scorer): \($0.variant)", $0.winRate, $0.ciLow, $0.ciHigh) }, center: 0.5, percent: true)
            html += "<table id=\"win-rates\"><tr><th>Judge</th><th>variant</th><th>win rate</th><th>\(confidenceLabel)</th><th>wins / ties / losses</th><th>sign test p</th><th>Holm p</th><th>first position</th><th>flips</th></tr>\n"
            for w in winRates {
                let cls = w.verdict(alpha: alpha) > 0 ? "better" : w.verdict(alpha: alpha) < 0 ? "worse" : ""
                html += "<tr><td>\(escape(w.scorer))</td><td>\(escape(w.variant))</td><td class=\"\(cls)\">\(evalPercent(w.winRate))</td><td>\(evalPercent(w.ciLow)) to \(evalPercent(w.ciHigh))</td><td>\(w.wins) / \(w.ties) / \(w.losses)</td><td>\(escapedP(w.pValue))</td><td>\(w.adjustedPValue.map(formatP) ?? "")</td><td>\(w.firstPositionRate.map(evalPercent) ?? "n/a")</td><td>\(w.flipRate.map(evalPercent) ?? "n/a")</td></tr>\n"
            }
            html += "</table>\n"
        }
        for r in rankings {
            html += "<h2>Bradley-Terry ranking by \(escape(r.scorer))</h2>\n<table><tr><th>Variant</th><th>strength (log-odds against the control)</th><th>\(confidenceLabel)</th><th>beats the control</th></tr>\n"
            for e in r.entries.sorted(by: { $0.strength > $1.strength }) {
                html += "<tr><td>\(escape(e.variant))</td><td>\(evalSigned(e.strength))</td><td>\(e.ciLow.map { "\(evalSigned($0)) to \(evalSigned(e.ciHigh!))" } ?? "")</td><td>\(evalPercent(e.winProbability))</td></tr>\n"
            }
            html += "</table>\n"
        }
        if !humanAgreement.isEmpty {
            html += "<h2>People against the judge</h2>\n<table id=\"human-agreement\"><tr><th>Judge</th><th>variant</th><th>labels</th><th>people's win rate</th><th>\(confidenceLabel)</th><th>judge's, same requests</th><th>agreement</th><th>Cohen's kappa</th><th>\(confidenceLabel)</th></tr>\n"
            for h in humanAgreement {
                html += "<tr><td>\(escape(h.scorer ?? "people"))</td><td>\(escape(h.variant))</td><td>\(group(h.labels)) by \(h.labelers)</td><td>\(h.human.map { evalPercent($0.winRate) } ?? "n/a")</td><td>\(h.human.map { "\(evalPercent($0.ciLow)) to \(evalPercent($0.ciHigh))" } ?? "")</td><td>\(h.judge.map { evalPercent($0.winRate) } ?? "n/a")</td><td>\(h.percentAgreement.map(evalPercent) ?? "n/a")</td><td>\(h.kappa.map { fixed($0.kappa, 2) } ?? "n/a")</td><td>\(h.kappa.map { "\(fixed($0.ciLow, 2)) to \(fixed($0.ciHigh, 2))" } ?? "")</td></tr>\n"
            }
            html += "</table>\n"
        }
        if !scores.isEmpty {
            html += "<h2>Scorers: difference from \(escape(variants[control])), paired by request</h2>\n"
            html += intervalChart(scores.map { ("\($0.name): \($0.variant)", $0.difference, $0.ciLow, $0.ciHigh) }, center: 0, percent: false)
            html += "<table id=\"scores\"><tr><th>Scorer</th><th>variant</th><th>\(escape(variants[control]))</th><th>variant</th><th>difference</th><th>\(confidenceLabel)</th><th>test</th><th>p</th><th>Holm p</th><th>Wilcoxon p</th></tr>\n"
            for c in scores {
                let v = c.verdict(alpha: alpha)
                html += "<tr><td>\(escape(c.name))</td><td>\(escape(c.variant))</td><td>\(evalNumber(c.controlMean))</td><td>\(evalNumber(c.variantMean))</td><td class=\"\(v > 0 ? "better" : v < 0 ? "worse" : "")\">\(evalSigned(c.difference))</td><td>\(evalSigned(c.ciLow)) to \(evalSigned(c.ciHigh))</td><td>\(c.binary ? "McNemar \(c.onlyVariant!)/\(c.onlyControl!)" : "paired t")</td><td>\(escapedP(c.pValue))</td><td>\(c.adjustedPValue.map(formatP) ?? "")</td><td>\(c.wilcoxonP.map(formatP) ?? "")</td></tr>\n"
            }
            html += "</table>\n"
        }
        if !guardrails.isEmpty {
            html += "<h2>Guardrails</h2>\n<table id=\"guardrails\"><tr><th>Guardrail</th><th>variant</th><th>state</th><th>worse by</th><th>worst case</th><th>margin</th></tr>\n"
            for g in guardrails {
                html += "<tr><td>\(escape(g.name))</td><td>\(escape(g.variant))</td><td class=\"\(g.state == .holds ? "better" : g.state == .breached ? "worse" : "")\">\(g.state.rawValue)</td><td>\(evalSigned(g.worsening))</td><td>\(evalSigned(g.worstCase))</td><td>\(escape(g.marginText))</td></tr>\n"
            }
            html += "</table>\n"
        }
        html += "<h2>Calls</h2>\n<table id=\"calls\"><tr><th>Variant</th><th>answers</th><th>failed</th><th>cached</th><th>retries</th><th>latency ms</th><th>p95 ms</th><th>TTFT ms</th><th>tokens in</th><th>tokens out</th>\(hasCost ? "<th>$ per 1k requests</th>" : "")</tr>\n"
        for c in calls {
            func n(_ x: Double?) -> String { x.map { evalNumber($0) } ?? "n/a" }
            html += "<tr><td>\(escape(c.variant))</td><td>\(group(c.answers))</td><td>\(group(c.failed))</td><td>\(group(c.cached))</td><td>\(group(c.retries))</td><td>\(n(c.meanLatencyMs))</td><td>\(n(c.p95LatencyMs))</td><td>\(n(c.meanTTFTMs))</td><td>\(n(c.meanInputTokens))</td><td>\(n(c.meanOutputTokens))</td>\(hasCost ? "<td>\(n(c.meanCostUSD.map { $0 * 1000 }))</td>" : "")</tr>\n"
        }
        html += "</table>\n"
        if !metrics.isEmpty {
            html += "<table id=\"metrics\"><tr><th>Metric (lower is better)</th><th>variant</th><th>\(escape(variants[control]))</th><th>variant</th><th>difference</th><th>\(confidenceLabel)</th><th>p</th></tr>\n"
            for c in metrics {
                html += "<tr><td>\(escape(c.name))</td><td>\(escape(c.variant))</td><td>\(evalNumber(c.controlMean))</td><td>\(evalNumber(c.variantMean))</td><td>\(evalSigned(c.difference))</td><td>\(evalSigned(c.ciLow)) to \(evalSigned(c.ciHigh))</td><td>\(escapedP(c.pValue))</td></tr>\n"
            }
            html += "</table>\n"
        }
        if let live {
            html += "<h2>Live experiment</h2>\n<p id=\"live\">\(escape(live.metric)) of \(escape(live.variant)) live: \(live.relativeLift.map { formatPercent($0) } ?? "n/a") relative lift\(live.ciLow.map { " (\(formatPercent($0)) to \(formatPercent(live.ciHigh)))" } ?? ""), \(live.pValue.map(escapedPEquals) ?? "p n/a"), \(group(live.users)) users. \(escape(live.note))</p>\n"
        }
        if !differences.isEmpty {
            html += "<h2>Where they differ most on \(escape(primary))</h2>\n<div id=\"differences\">\n"
            for x in differences {
                html += "<h3>\(escape(x.item)) <span class=\"muted\">\(escape(x.variant)) \(evalSigned(x.difference))</span></h3>\n<div class=\"q\">\(escape(x.question))</div>\n"
                if let reference = x.reference { html += "<div class=\"muted\">Reference: \(escape(reference))</div>\n" }
                html += "<div class=\"side\"><div><strong>\(escape(variants[control]))</strong>\n\(escape(x.controlAnswer))</div><div><strong>\(escape(x.variant))</strong>\n\(escape(x.variantAnswer))</div></div>\n"
            }
            html += "</div>\n"
        }
        html += "</body></html>\n"
        return html
    }

    private func escapedP(_ p: Double) -> String { escape(formatP(p)) }
    private func escapedPEquals(_ p: Double) -> String { escape(formatPEquals(p)) }

    /// Horizontal interval bars around `center`.
    private func intervalChart(_ rows: [(String, Double, Double, Double)], center: Double, percent: Bool) -> String {
        guard !rows.isEmpty else { return "" }
        let finite = rows.flatMap { [$0.1, $0.2, $0.3] }.filter(\.isFinite)
        var low = min(center, finite.min() ?? center), high = max(center, finite.max() ?? center)
        if high - low < 1e-9 { low -= 1; high += 1 }
        let pad = (high - low) * 0.08
        low -= pad; high += pad
        let width = 640.0, left = 220.0, rowHeight = 26.0
        let height = Double(rows.count) * rowHeight + 24
        func x(_ v: Double) -> Double { left + (min(max(v, low), high) - low) / (high - low) * (width - left - 10) }
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\">"
        svg += "<line x1=\"\(x(center))\" y1=\"0\" x2=\"\(x(center))\" y2=\"\(height - 18)\" stroke=\"#8c959f\" stroke-dasharray=\"3,3\"/>"
        for (i, r) in rows.enumerated() {
            let y = Double(i) * rowHeight + 14
            let color = r.2 > center ? "#1a7f37" : r.3 < center ? "#cf222e" : "#57606a"
            let label = r.0.count > 32 ? String(r.0.prefix(31)) + "…" : r.0
            svg += "<text x=\"0\" y=\"\(y + 4)\">\(escape(label))</text>"
            if r.2.isFinite && r.3.isFinite {
                svg += "<line x1=\"\(x(r.2))\" y1=\"\(y)\" x2=\"\(x(r.3))\" y2=\"\(y)\" stroke=\"\(color)\" stroke-width=\"3\"/>"
            }
            svg += "<circle cx=\"\(x(r.1))\" cy=\"\(y)\" r=\"5\" fill=\"\(color)\"/>"
        }
        let fmt: (Double) -> String = { percent ? evalPercent($0) : evalNumber($0) }
        svg += "<text x=\"\(x(center) - 10)\" y=\"\(height - 4)\">\(fmt(center))</text></svg>\n"
        return svg
    }
}
