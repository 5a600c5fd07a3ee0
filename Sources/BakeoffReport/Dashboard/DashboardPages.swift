import Foundation
import BakeoffCore

/// What the dashboard shows of one experiment, gathered by the server from the store.
public struct DashboardExperiment: Sendable {
    public var name: String
    /// The model alias clients call, when served by the gateway.
    public var model: String?
    /// The report as of the read; nil with `unavailable` saying why.
    public var report: Report?
    public var unavailable: String?
    public var series: TimeSeries?
    public var daily: [DayRequests]
    /// Problems of the store's writes (the gateway's; none when read-only).
    public var storeProblems: [String]
    /// When the data was read (microseconds since 1970).
    public var readAt: Int64
    /// True while a newer read runs (a large store): the page shows the last one and says so.
    public var updating = false
    /// Read from a store nobody writes through this server (`bakeoff dashboard`): no word on its writes.
    public var readOnly = false

    public init(name: String, model: String? = nil, report: Report? = nil, unavailable: String? = nil, series: TimeSeries? = nil,
                daily: [DayRequests] = [], storeProblems: [String] = [], readAt: Int64) {
        self.name = name
        self.model = model
        self.report = report
        self.unavailable = unavailable
        self.series = series
        self.daily = daily
        self.storeProblems = storeProblems
        self.readAt = readAt
    }

    /// running, decided or stopped, from the decision.
    public var status: String {
        guard let report else { return "waiting for data" }
        switch report.decision.action {
        case .ship, .rollBack: return "decided"
        case .stopInconclusive: return "stopped"
        case .keepRunning: return "running"
        }
    }
}

/// An offline eval report kept by `bakeoff eval`, as the dashboard lists it.
public struct DashboardEval: Sendable {
    public var experiment: String
    public var summary: String
    /// Microseconds since 1970.
    public var createdAt: Int64
    /// Where its page is.
    public var path: String
    public init(experiment: String, summary: String, createdAt: Int64, path: String) {
        self.experiment = experiment
        self.summary = summary
        self.createdAt = createdAt
        self.path = path
    }
}

/// The dashboard's pages as HTML, from values: no I/O. Each page is whole (for the first load) and its `<main>`
/// alone is what a refresh swaps in.
public enum DashboardPages {
    /// Where the pages live on the server.
    public static let root = "/dashboard"

    /// The path of an experiment's page.
    public static func experimentPath(_ name: String) -> String { root + "/experiments/" + percentEncode(name) }

    /// The sign-in form; `error` says why the last try failed.
    public static func signIn(error: String? = nil, next: String? = nil, note: String? = nil) -> String {
        var main = "<section class=\"signin\"><h1>Sign in</h1><p class=\"muted\">The dashboard shows live experiment data: it needs the gateway's admin key.</p>"
        if let error { main += "<p class=\"error\" role=\"alert\">\(escapeHTML(error))</p>" }
        if let note { main += "<p class=\"muted\">\(escapeHTML(note))</p>" }
        main += "<form method=\"post\" action=\"\(root)/sign-in\">"
        main += "<label for=\"key\">Admin key</label><input type=\"password\" id=\"key\" name=\"key\" autocomplete=\"current-password\" required autofocus>"
        if let next, next.hasPrefix(root) { main += "<input type=\"hidden\" name=\"next\" value=\"\(escapeHTML(next))\">" }
        main += "<button type=\"submit\">Sign in</button></form></section>"
        return page(title: "Sign in", main: main, signedIn: false, refreshSeconds: nil)
    }

    /// A page that only says something (dashboard off, not found).
    public static func message(title: String, text: String, signedIn: Bool) -> String {
        page(title: title, main: "<h1>\(escapeHTML(title))</h1><p>\(escapeHTML(text))</p>", signedIn: signedIn, refreshSeconds: nil)
    }

    /// The list of experiments.
    public static func experiments(_ list: [DashboardExperiment], evals: [DashboardEval], readOnly: Bool, refreshSeconds: Int?, open: Bool = false) -> String {
        page(title: "Experiments", main: experimentsMain(list, evals: evals, readOnly: readOnly), signedIn: true, refreshSeconds: refreshSeconds, open: open)
    }

    /// The list's `<main>` content.
    public static func experimentsMain(_ list: [DashboardExperiment], evals: [DashboardEval], readOnly: Bool) -> String {
        var html = "<h1>Experiments</h1>"
        html += "<p class=\"muted\">\(readOnly ? "Read-only view of the store" : "Live from the gateway") · read \(escapeHTML(clock(list.first?.readAt))) UTC</p>"
        if list.isEmpty {
            return html + "<p>No experiment yet.</p>" + evalList(evals)
        }
        html += "<div class=\"scroll\"><table class=\"list\"><thead><tr><th>Experiment</th><th>Status</th><th>Days running</th><th>Users per variant</th><th>Decision</th><th>Health</th></tr></thead><tbody>"
        for e in list {
            html += "<tr data-experiment=\"\(escapeHTML(e.name))\"><td><a href=\"\(experimentPath(e.name))\">\(escapeHTML(e.name))</a>"
            if let model = e.model { html += "<div class=\"muted small\">model \(escapeHTML(model))</div>" }
            html += "</td><td>\(escapeHTML(e.status))</td>"
            if let r = e.report {
                html += "<td>\(r.elapsedDays.map { escapeHTML(formatDays($0)) } ?? "—")</td>"
                html += "<td>" + r.variants.map { "<span class=\"nowrap\">\(escapeHTML($0.name)) <b data-users=\"\($0.users)\">\(group($0.users))</b></span>" }.joined(separator: "<br>") + "</td>"
                html += "<td>\(badge(r.decision))</td><td>\(healthBadge(e))</td>"
            } else {
                html += "<td>—</td><td>—</td><td>—</td><td>\(escapeHTML(e.unavailable ?? "no data yet"))</td>"
            }
            html += "</tr>"
        }
        html += "</tbody></table></div>"
        return html + evalList(evals)
    }

    /// The offline evals kept by `bakeoff eval`, newest first.
    static func evalList(_ evals: [DashboardEval]) -> String {
        guard !evals.isEmpty else { return "" }
        var html = "<h2>Offline evals</h2><div class=\"scroll\"><table class=\"evals\"><thead><tr><th>Experiment</th><th>Run</th><th style=\"text-align:left\">Result</th></tr></thead><tbody>"
        for e in evals {
            html += "<tr data-eval=\"\(escapeHTML(e.path))\"><td><a href=\"\(escapeHTML(e.path))\">\(escapeHTML(e.experiment))</a></td><td class=\"nowrap\">\(escapeHTML(shortDate(e.createdAt))) \(escapeHTML(clock(e.createdAt)))</td><td style=\"text-align:left\">\(escapeHTML(e.summary))</td></tr>"
        }
        return html + "</tbody></table></div>"
    }

    /// A kept eval report's own page (self-contained HTML) with the dashboard's way back added at its top.
    public static func evalPage(_ html: String) -> String {
        let bar = "<div style=\"font:14px system-ui,sans-serif;padding:.5rem 0;border-bottom:1px solid #d0d7de;margin-bottom:1rem\"><a href=\"\(root)\">← Experiments and evals</a></div>"
        guard let body = html.range(of: "<body>") else { return bar + html }
        return html.replacingCharacters(in: body, with: "<body>" + bar)
    }

    /// One experiment's page.
    public static func experiment(_ e: DashboardExperiment, refreshSeconds: Int?, open: Bool = false) -> String {
        page(title: e.name, main: experimentMain(e), signedIn: true, refreshSeconds: refreshSeconds, open: open)
    }

    /// The experiment page's `<main>` content.
    public static func experimentMain(_ e: DashboardExperiment) -> String {
        var html = "<p class=\"crumbs\"><a href=\"\(root)\">Experiments</a> /</p>"
        html += "<h1>\(escapeHTML(e.name))</h1>"
        guard let r = e.report else {
            return html + "<p class=\"banner keep\">No report yet: \(escapeHTML(e.unavailable ?? "no data"))</p>"
        }
        var facts: [String] = []
        if let model = e.model { facts.append("model \(escapeHTML(model))") }
        facts.append(r.elapsedDays.map { "running \(escapeHTML(formatDays($0)))" } ?? "")
        facts.append(r.variants.map { "\(escapeHTML($0.name)) \(group($0.users)) users" }.joined(separator: " · "))
        facts.append("\(group(r.requestEvents)) requests · \(group(r.feedbackEvents)) feedback events")
        facts.append("data as of \(escapeHTML(clock(e.readAt))) UTC" + (e.updating ? " (newer events are being read)" : ""))
        html += "<p class=\"muted\">\(facts.filter { !$0.isEmpty }.joined(separator: " · "))</p>"
        html += health(e, r)
        html += decision(r)
        if let text = r.monitoringText { html += "<p class=\"muted\" data-method=\"\(r.plan.method.rawValue)\">\(escapeHTML(text))</p>" }
        for treatment in r.variants.dropFirst().map(\.name) {
            let card = Scorecard(report: r, treatment: treatment)
            html += "<section><h2>Scorecard: \(escapeHTML(treatment)) vs \(escapeHTML(r.control))</h2>"
            html += scorecard(card, r)
            html += "</section>"
            html += "<section><h2>Lift over time: \(escapeHTML(treatment)) vs \(escapeHTML(r.control))</h2>"
            html += "<p class=\"muted small\">Each point is the analysis of every event up to the end of that day; the band is its \(formatNumber((1 - r.alpha) * 100))% interval\(bandText(r)).</p>"
            html += liftCharts(e, r, treatment: treatment, rows: card.rows)
            html += boundaryChart(e, r, treatment: treatment)
            html += "</section>"
        }
        html += traffic(e, r)
        html += latency(e, r)
        html += progress(r)
        return html
    }

    // MARK: - Sections

    /// What the health banner lists (empty: healthy) and what it notes; the list's badge says the same.
    static func healthProblems(_ e: DashboardExperiment, _ r: Report) -> (problems: [String], notes: [String]) {
        var problems: [String] = [], notes: [String] = []
        switch r.sampleRatio.status {
        case .mismatch:
            problems.append("Sample ratio mismatch: " + r.sampleRatio.observed.map { "\($0.name) \(group($0.count))" }.joined(separator: ", ") + " against the planned " + r.sampleRatio.expectedShares.map { significant($0 * 100, 3) + "%" }.joined(separator: "/") + " (\(formatPEquals(r.sampleRatio.pValue ?? 0))). The assignment or the logging is broken: do not trust the results until it is explained.")
        case .ok:
            notes.append("Sample ratio as planned (\(formatPEquals(r.sampleRatio.pValue ?? 1)))")
        case .notRun:
            notes.append("Sample ratio not checked: \(r.sampleRatio.reason ?? "")")
        }
        let q = r.dataQuality
        var quality: [String] = []
        if q.usersInSeveralVariants > 0 { quality.append("\(group(q.usersInSeveralVariants)) users seen in several variants") }
        if q.duplicateRequestIDs > 0 { quality.append("\(group(q.duplicateRequestIDs)) duplicate request ids") }
        if q.feedbackWithMissingTarget > 0 { quality.append("\(group(q.feedbackWithMissingTarget)) feedback events naming no known request") }
        if q.conversationsOfSeveralUsers > 0 { quality.append("\(group(q.conversationsOfSeveralUsers)) conversations shared by several users") }
        if q.implausibleRequestValues > 0 { quality.append("\(group(q.implausibleRequestValues)) requests with impossible values left out") }
        if q.linesSkipped > 0 { quality.append("\(group(q.linesSkipped)) events skipped as invalid") }
        let unusable = q.unusableFeedback.reduce(0) { $0 + $1.count }
        if unusable > 0 { quality.append("\(group(unusable)) feedback events unusable") }
        if !quality.isEmpty { problems.append("Data quality: " + quality.joined(separator: "; ") + ".") }
        for p in e.storeProblems { problems.append("Store: " + p) }
        for w in r.warnings { problems.append(w) }
        if !r.planChanges.isEmpty {
            problems.append("The plan changed after the start \(r.planChanges.count == 1 ? "once" : "\(r.planChanges.count) times"): " + r.planChanges.map { "\(shortDate($0.timestamp)): \($0.changes.joined(separator: "; "))" }.joined(separator: " · "))
        }
        if quality.isEmpty { notes.append("no data-quality problems") }
        if e.storeProblems.isEmpty && !e.readOnly { notes.append("store writing") }
        return (problems, notes)
    }

    static func health(_ e: DashboardExperiment, _ r: Report) -> String {
        let (problems, notes) = healthProblems(e, r)
        var html = "<section class=\"health \(problems.isEmpty ? "healthy" : "unhealthy")\" data-health=\"\(problems.isEmpty ? "ok" : "problems")\" aria-label=\"Health\">"
        html += "<strong>\(problems.isEmpty ? "✓ Healthy" : "⚠ Check before trusting the numbers")</strong>"
        if !problems.isEmpty { html += "<ul>" + problems.map { "<li>\(escapeHTML($0))</li>" }.joined() + "</ul>" }
        html += "<div class=\"muted small\">\(escapeHTML(notes.joined(separator: " · ")))</div></section>"
        return html
    }

    static func decision(_ r: Report) -> String {
        let d = r.decision
        let tone = d.action == .ship ? "ship" : d.action == .rollBack ? "rollback" : "keep"
        var html = "<section class=\"banner \(tone)\" data-decision=\"\(d.action.rawValue)\"><strong>\(escapeHTML(actionWords(d.action)))\(d.treatment.isEmpty ? "" : " " + escapeHTML(d.treatment))</strong> — \(escapeHTML(d.reason))</section>"
        if r.decisions.count > 1 {
            html += "<ul>" + r.decisions.map { "<li><strong>\(escapeHTML($0.treatment))</strong>: \(escapeHTML(actionWords($0.action))) — \(escapeHTML($0.reason))</li>" }.joined() + "</ul>"
        }
        return html
    }

    static func scorecard(_ card: Scorecard, _ r: Report) -> String {
        var html = "<div class=\"scroll\"><table class=\"scorecard\" data-treatment=\"\(escapeHTML(card.treatment))\"><thead><tr><th>Metric</th><th>\(escapeHTML(card.control))</th><th>\(escapeHTML(card.treatment))</th><th>Lift [\(formatNumber((1 - r.alpha) * 100))% CI]</th><th>p (adjusted)</th><th>Chance to win</th><th>Guardrail</th><th>Status</th></tr></thead><tbody>"
        for row in card.rows {
            let cls = row.status == .better ? "better" : row.status == .worse ? "worse" : "neutral"
            html += "<tr data-metric=\"\(escapeHTML(row.metric.name))\" data-status=\"\(row.status.rawValue)\">"
            html += "<td>\(escapeHTML(row.metric.title))\(row.isPrimary ? " <span class=\"tag\">primary</span>" : "")\(row.guardrail != nil ? " <span class=\"tag\">guardrail</span>" : "")"
            if let explanation = row.explanation { html += "<div class=\"why\">\(escapeHTML(explanation))</div>" }
            html += "</td><td>\(escapeHTML(row.control))</td><td>\(escapeHTML(row.treatment))</td>"
            html += "<td\(row.liftValue.map { " data-value=\"\(JSONWriter.number($0))\"" } ?? "")><span class=\"nowrap\">\(escapeHTML(row.lift))</span>"
            if let ci = row.liftInterval { html += " <span class=\"nowrap muted\"\(row.liftBounds.map { " data-lower=\"\(JSONWriter.number($0.lower))\" data-upper=\"\(JSONWriter.number($0.upper))\"" } ?? "")>\(escapeHTML(ci))</span>" }
            html += "</td><td class=\"p\"\(row.numbers.pValue.map { " data-value=\"\(JSONWriter.number($0))\"" } ?? "")><span class=\"nowrap\">\(escapeHTML(row.pValue))</span>\(row.rawPValue.map { "<div class=\"muted small nowrap\">raw \(escapeHTML($0))</div>" } ?? "")</td>"
            html += "<td>\(escapeHTML(row.chanceToWin ?? "—"))</td><td>\(escapeHTML(row.guardrail ?? "—"))</td>"
            html += "<td class=\"\(cls)\">\(statusMark(row.status)) \(escapeHTML(row.statusText))</td></tr>"
        }
        html += "</tbody></table></div>"
        if !card.folded.isEmpty {
            html += "<details><summary>\(card.folded.count) metric\(card.folded.count == 1 ? "" : "s") with no data yet</summary><p>\(escapeHTML(card.folded.map(\.metric.title).joined(separator: ", ")))</p></details>"
        }
        return html
    }

    static func liftCharts(_ e: DashboardExperiment, _ r: Report, treatment: String, rows: [Scorecard.Row]) -> String {
        guard let series = e.series, !series.points.isEmpty else {
            return "<p class=\"muted\">The first daily point appears after the first midnight (UTC) of the experiment.</p>"
        }
        let cards = series.points.map { (cut: $0.cut, card: Scorecard(report: $0.report, treatment: treatment)) }
        let markers = r.planChanges.map { (x: Double($0.timestamp), label: $0.changes.joined(separator: "; ")) }
        var html = "<div class=\"charts\">"
        for row in rows {
            var points: [(x: Double, y: Double?)] = [], band: [(x: Double, lower: Double, upper: Double)] = []
            for c in cards {
                let match = c.card.rows.first { $0.metric.name == row.metric.name }
                let x = Double(c.cut - TimeSeries.Builder.day)
                points.append((x, match?.liftValue.map { $0 * 100 }))
                if let b = match?.liftBounds { band.append((x, b.lower * 100, b.upper * 100)) }
            }
            guard points.contains(where: { $0.y != nil }) else { continue }
            let color = row.status == .worse ? Palette.worse : row.status == .better ? Palette.better : Palette.neutral
            var lines = [LineChart.Series(name: "\(treatment) vs \(r.control) (\(row.statusText))", color: color, points: points, band: band)]
            if row.isPrimary, r.plan.method == .groupSequential {
                let (upper, lower) = liftBoundary(series, primary: row.metric.name, treatment: treatment)
                if upper.contains(where: { $0.y != nil }) {
                    lines.append(LineChart.Series(name: "group-sequential boundary (significant beyond)", color: Palette.worse, dashed: true, points: upper))
                    lines.append(LineChart.Series(name: "", color: Palette.worse, dashed: true, points: lower))
                }
            }
            var chart = LineChart(title: row.metric.title, xLabel: "day (UTC)", yLabel: "lift, %", yFormat: { fixedTrim($0) + "%" },
                                  xFormat: { shortDate(Int64($0)) }, series: lines)
            chart.zeroLine = true
            chart.markers = markers
            html += "<figure data-metric=\"\(escapeHTML(row.metric.name))\"><figcaption>\(escapeHTML(row.metric.title))\(row.isPrimary ? " (primary)" : "")</figcaption>\(chart.render())</figure>"
        }
        return html + "</div>"
    }

    /// What the lift chart's band is under the report's method.
    static func bandText(_ r: Report) -> String {
        switch r.plan.method {
        case .sequential: return ", an always-valid confidence sequence: it stays valid however often you look"
        case .groupSequential, .auto: return ", a repeated confidence interval of the group-sequential test: valid at each of its looks up to the horizon"
        case .fixed: return " (fixed horizon: valid at the planned look only)"
        }
    }

    /// The lift (%) at which the primary metric crosses the group-sequential boundary each day: ± boundary × standard
    /// error over the control mean, so the lift line leaving the dashed pair is the day it became significant.
    package static func liftBoundary(_ series: TimeSeries, primary: String, treatment: String) -> (upper: [(x: Double, y: Double?)], lower: [(x: Double, y: Double?)]) {
        var upper: [(x: Double, y: Double?)] = [], lower: [(x: Double, y: Double?)] = []
        for p in primaryPoints(series, primary: primary, treatment: treatment) {
            var y: Double?
            if let r = p.result, let se = r.standardError, let base = r.control.mean, base != 0, let c = p.boundary, c.isFinite {
                y = c * se / abs(base) * 100
            }
            upper.append((p.x, y))
            lower.append((p.x, y.map { -$0 }))
        }
        return (upper, lower)
    }

    /// Each daily point's day, the primary metric's result for `treatment` and the group-sequential boundary at that
    /// result's level: what the lift chart's boundary and the z chart draw.
    static func primaryPoints(_ series: TimeSeries, primary: String, treatment: String) -> [(x: Double, result: MetricResult?, boundary: Double?)] {
        series.points.map { point in
            let result = point.report.results.first { $0.metric.name == primary && $0.treatment == treatment }
            return (Double(point.cut - TimeSeries.Builder.day), result,
                    point.report.plan.monitoring?.boundary(alpha: result?.intervalAlpha ?? point.report.alpha))
        }
    }

    /// The primary metric's z statistic at each daily look against the group-sequential boundary (±): the result is
    /// significant on the day the line leaves the boundaries. Empty unless the report is group-sequential.
    static func boundaryChart(_ e: DashboardExperiment, _ r: Report, treatment: String) -> String {
        guard r.plan.method == .groupSequential, let series = e.series, !series.points.isEmpty else { return "" }
        var z: [(x: Double, y: Double?)] = [], upper: [(x: Double, y: Double?)] = [], lower: [(x: Double, y: Double?)] = []
        for p in primaryPoints(series, primary: r.primaryMetric, treatment: treatment) {
            let statistic = p.result.flatMap { r in r.absoluteDifference.flatMap { d in r.standardError.map { d / $0 } } }
            z.append((p.x, statistic.flatMap { $0.isFinite ? $0 : nil }))
            let shown = p.boundary.flatMap { $0.isFinite ? min($0, 8) : nil }
            upper.append((p.x, shown))
            lower.append((p.x, shown.map { -$0 }))
        }
        guard z.contains(where: { $0.y != nil }) else { return "" }
        let title = r.results.first { $0.metric.name == r.primaryMetric }?.metric.title ?? r.primaryMetric
        var chart = LineChart(title: "\(title): z against the boundary", xLabel: "day (UTC)", yLabel: "z statistic", yFormat: { fixedTrim($0) },
                              xFormat: { shortDate(Int64($0)) },
                              series: [LineChart.Series(name: "z of \(treatment) vs \(r.control)", color: Palette.better, points: z),
                                       LineChart.Series(name: "boundary (significant beyond)", color: Palette.worse, dashed: true, points: upper),
                                       LineChart.Series(name: "", color: Palette.worse, dashed: true, points: lower)])
        chart.zeroLine = true
        return "<figure class=\"boundary\" data-metric=\"\(escapeHTML(r.primaryMetric))\"><figcaption>\(escapeHTML(title)): group-sequential boundary (boundaries above 8 are drawn at 8)</figcaption>\(chart.render())</figure>"
    }

    static func traffic(_ e: DashboardExperiment, _ r: Report) -> String {
        guard let series = e.series, !series.points.isEmpty else { return "" }
        let names = r.variants.map(\.name)
        var previous = Dictionary(uniqueKeysWithValues: names.map { ($0, 0) })
        var bars: [(x: Double, values: [Double])] = []
        var shares: [[(x: Double, y: Double?)]] = names.map { _ in [] }
        for p in series.points {
            let users = Dictionary(p.report.variants.map { ($0.name, $0.users) }, uniquingKeysWith: { a, _ in a })
            let x = Double(p.cut - TimeSeries.Builder.day)
            bars.append((x, names.map { Double((users[$0] ?? 0) - (previous[$0] ?? 0)) }))
            let total = users.values.reduce(0, +)
            for (i, n) in names.enumerated() { shares[i].append((x, total > 0 ? Double(users[n] ?? 0) / Double(total) * 100 : nil)) }
            previous = users
        }
        let groups = names.enumerated().map { (name: $0.element, color: Palette.variant($0.offset)) }
        var html = "<section><h2>Exposures</h2><div class=\"charts\">"
        html += "<figure><figcaption>New users per day</figcaption>" + BarChart(title: "New users per day", xLabel: "day (UTC)", yLabel: "new users", xFormat: { shortDate(Int64($0)) }, bars: bars, groups: groups).render() + "</figure>"
        // The planned shares, by name (the check lists them in its own order).
        var planned: [String: Double] = [:]
        for (k, o) in r.sampleRatio.observed.enumerated() where k < r.sampleRatio.expectedShares.count {
            planned[o.name] = r.sampleRatio.expectedShares[k]
        }
        for (i, n) in names.enumerated().dropFirst() {
            var chart = LineChart(title: "Share of users in \(n)", xLabel: "day (UTC)", yLabel: "cumulative share, %", yFormat: { fixedTrim($0) + "%" },
                                  xFormat: { shortDate(Int64($0)) },
                                  series: [LineChart.Series(name: "\(n), observed", color: Palette.variant(i), points: shares[i])])
            if let share = planned[n] { chart.reference = (share * 100, "planned \(significant(share * 100, 3))%") }
            html += "<figure><figcaption>Cumulative share of users in \(escapeHTML(n))</figcaption>\(chart.render())</figure>"
        }
        return html + "</div></section>"
    }

    static func latency(_ e: DashboardExperiment, _ r: Report) -> String {
        guard !e.daily.isEmpty else { return "" }
        let names = r.variants.map(\.name)
        var html = "<section><h2>Latency per day</h2><p class=\"muted small\">Quantiles of each day's requests alone (not cumulative), P50 solid and P95 dashed.</p><div class=\"charts\">"
        for (title, p50, p95) in [("Latency", \DayRequests.latencyP50, \DayRequests.latencyP95), ("Time to first token", \DayRequests.ttftP50, \DayRequests.ttftP95)] {
            var lines: [LineChart.Series] = []
            for (i, n) in names.enumerated() {
                let rows = e.daily.filter { $0.variant == n }
                lines.append(LineChart.Series(name: "\(n) P50", color: Palette.variant(i), points: rows.map { (Double($0.day), $0[keyPath: p50]) }))
                lines.append(LineChart.Series(name: "\(n) P95", color: Palette.variant(i), dashed: true, points: rows.map { (Double($0.day), $0[keyPath: p95]) }))
            }
            guard lines.contains(where: { $0.points.contains { $0.y != nil } }) else { continue }
            let chart = LineChart(title: title, xLabel: "day (UTC)", yLabel: "milliseconds", yFormat: { group(Int($0.rounded())) + " ms" },
                                  xFormat: { shortDate(Int64($0)) }, series: lines)
            html += "<figure><figcaption>\(title)</figcaption>\(chart.render())</figure>"
        }
        return html + "</div></section>"
    }

    static func progress(_ r: Report) -> String {
        var html = "<section><h2>Progress</h2>"
        let users = r.variants.reduce(0) { $0 + $1.users }
        let d = r.decision
        if let more = d.additionalUsers, more > 0 {
            let planned = users + more
            let done = Double(users) / Double(planned)
            html += "<p>\(group(users)) of about \(group(planned)) users the primary metric needs for the planned power (\(Int((done * 100).rounded(.down)))%).</p>"
            html += "<div class=\"bar\" role=\"progressbar\" aria-valuemin=\"0\" aria-valuemax=\"\(planned)\" aria-valuenow=\"\(users)\"><span style=\"width:\(fixed(min(1, done) * 100, 1))%\"></span></div>"
            if let days = d.additionalDays { html += "<p class=\"muted\">About \(escapeHTML(formatDays(days))) left at the rate users have been arriving.</p>" }
        } else {
            html += "<p>\(group(users)) users so far.</p>"
        }
        if let primary = r.results.first(where: { $0.metric.name == r.primaryMetric }), let mde = primary.detectableEffect {
            html += "<p>Smallest effect on \(escapeHTML(primary.metric.title)) detectable now: \(escapeHTML(formatMagnitude(mde, primary.metric))).</p>"
        }
        if let elapsed = r.elapsedDays {
            let minimum = r.plan.effectiveMinimumRuntimeDays
            if elapsed < minimum {
                html += "<p class=\"muted\">Minimum runtime: \(escapeHTML(formatDays(minimum))); \(escapeHTML(formatDays(minimum - elapsed))) to go before shipping.</p>"
            }
        }
        return html + "</section>"
    }

    // MARK: - Shell

    /// The whole page: CSS inline, the refresh script from the same server, nothing from elsewhere.
    static func page(title: String, main: String, signedIn: Bool, refreshSeconds: Int?, open: Bool = false) -> String {
        var html = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escapeHTML(title)) · Bakeoff</title>
        <link rel="icon" href="data:,">
        <style>\(css)</style>
        <script src="\(root)/app.js" defer></script>
        </head><body\(refreshSeconds.map { " data-refresh=\"\($0)\"" } ?? "")>
        <header><a class="brand" href="\(root)">Bakeoff</a>
        """
        if signedIn {
            html += "<span class=\"live\"><button type=\"button\" id=\"refresh\">Refresh</button> <span id=\"refreshed\" class=\"muted small\" aria-live=\"polite\"></span></span>"
            if !open { html += "<form method=\"post\" action=\"\(root)/sign-out\" class=\"signout\"><button type=\"submit\">Sign out</button></form>" }
        }
        html += "</header>\n<main>\(main)</main>\n</body></html>\n"
        return html
    }

    /// The refresh script: every `data-refresh` seconds (and on the button), fetches the page's `<main>` and
    /// swaps it in; a page that is hidden waits; a lost session reloads into the sign-in form.
    public static let script = """
    (function () {
      "use strict";
      var body = document.body, seconds = parseInt(body.getAttribute("data-refresh") || "0", 10);
      var button = document.getElementById("refresh"), label = document.getElementById("refreshed");
      var busy = false;
      function stamp(text) { if (label) { label.textContent = text; } }
      function refresh() {
        if (busy) { return; }
        busy = true;
        stamp("refreshing…");
        fetch(location.pathname + location.search, { headers: { "X-Bakeoff-Fragment": "1" }, credentials: "same-origin", cache: "no-store" })
          .then(function (r) {
            if (r.status === 401) { location.reload(); return null; }
            if (!r.ok) { throw new Error("HTTP " + r.status); }
            return r.text();
          })
          .then(function (html) {
            if (html === null) { return; }
            var main = document.querySelector("main");
            var doc = new DOMParser().parseFromString("<main>" + html + "</main>", "text/html");
            var fresh = doc.querySelector("main");
            if (main && fresh) { main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes)); }
            stamp("updated " + new Date().toLocaleTimeString());
          })
          .catch(function (e) { stamp("refresh failed (" + e.message + "); retrying"); })
          .then(function () { busy = false; });
      }
      if (button) { button.addEventListener("click", refresh); }
      if (seconds > 0) {
        setInterval(function () { if (!document.hidden) { refresh(); } }, seconds * 1000);
      }
    })();

    """

    static let css = """
    :root{--ink:#1b1f24;--muted:#57606a;--line:#d0d7de;--better:\(Palette.better);--worse:\(Palette.worse)}
    *{box-sizing:border-box} body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:var(--ink);background:#fff}
    header{display:flex;gap:1rem;align-items:center;flex-wrap:wrap;padding:.6rem 1rem;border-bottom:1px solid var(--line);background:#f6f8fa}
    header .brand{font-weight:700;color:var(--ink);text-decoration:none;margin-right:auto} header form{margin:0}
    main{max-width:1240px;margin:0 auto;padding:1rem}
    h1{font-size:1.5rem;margin:.25rem 0} h2{font-size:1.15rem;margin:1.6rem 0 .5rem}
    a{color:#0550ae} .muted{color:var(--muted)} .small{font-size:13px} .nowrap{white-space:nowrap} .crumbs{margin:0;font-size:13px}
    button{font:inherit;padding:.3rem .8rem;border:1px solid var(--line);border-radius:6px;background:#fff;cursor:pointer}
    .banner{border-radius:8px;padding:.8rem 1rem;margin:1rem 0;font-size:1.05rem}
    .ship{background:#ddf4ff;border:1px solid var(--better)} .rollback{background:#fff1e5;border:1px solid var(--worse)} .keep{background:#f6f8fa;border:1px solid #8c959f}
    .health{border-radius:8px;padding:.6rem 1rem;margin:.75rem 0} .healthy{background:#f6f8fa;border:1px solid var(--line)} .unhealthy{background:#fff1e5;border:2px solid var(--worse)}
    .health ul{margin:.3rem 0;padding-left:1.2rem}
    .scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
    table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:14px}
    th,td{padding:.4rem .5rem;border-bottom:1px solid var(--line);text-align:right;vertical-align:top} th:first-child,td:first-child{text-align:left}
    th{background:#f6f8fa;white-space:nowrap} td:first-child{min-width:11rem}
    .better{color:var(--better);font-weight:600} .worse{color:var(--worse);font-weight:600} .neutral{color:var(--muted)}
    .why{font-size:12.5px;color:var(--muted);margin-top:.2rem;max-width:34rem;text-align:left}
    .tag{font-size:11px;border:1px solid var(--line);border-radius:10px;padding:0 .4rem;color:var(--muted)}
    .badge{display:inline-block;border-radius:10px;padding:.05rem .55rem;font-size:13px;border:1px solid}
    .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,460px),1fr));gap:1rem}
    figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:.5rem} figcaption{font-weight:600;font-size:14px;margin-bottom:.25rem}
    svg{width:100%;height:auto;display:block} svg .tick{font-size:12px;fill:var(--muted)} svg .axis{font-size:12.5px;fill:var(--ink)} svg .muted{fill:var(--muted)}
    .bar{height:14px;background:#eaeef2;border-radius:7px;overflow:hidden;max-width:520px} .bar span{display:block;height:100%;background:var(--better)}
    .signin{max-width:380px;margin:3rem auto} .signin form{display:grid;gap:.5rem} .signin input{font:inherit;padding:.45rem;border:1px solid #8c959f;border-radius:6px}
    .error{color:var(--worse);font-weight:600}
    @media (max-width:600px){main{padding:.6rem} h1{font-size:1.25rem} table{font-size:13px} td:first-child{min-width:8rem}}
    """

    // MARK: - Small pieces

    static func badge(_ d: Decision) -> String {
        let color = d.action == .ship ? Palette.better : d.action == .rollBack ? Palette.worse : Palette.neutral
        return "<span class=\"badge\" data-decision=\"\(d.action.rawValue)\" style=\"color:\(color);border-color:\(color)\">\(escapeHTML(actionWords(d.action)))\(d.treatment.isEmpty || d.action == .keepRunning ? "" : " " + escapeHTML(d.treatment))</span>"
    }

    static func healthBadge(_ e: DashboardExperiment) -> String {
        guard let r = e.report else { return "—" }
        let problems = healthProblems(e, r).problems
        return problems.isEmpty ? "<span class=\"neutral\">✓ healthy</span>"
            : "<span class=\"worse\" title=\"\(escapeHTML(problems.joined(separator: " · ")))\">⚠ \(problems.count) to check</span>"
    }

    static func actionWords(_ a: DecisionAction) -> String {
        switch a {
        case .ship: "Ship"
        case .rollBack: "Roll back"
        case .keepRunning: "Keep running"
        case .stopInconclusive: "Stop: inconclusive"
        }
    }

    static func statusMark(_ s: Scorecard.Status) -> String {
        switch s {
        case .better: "▲"
        case .worse: "▼"
        default: "•"
        }
    }

    static func clock(_ micros: Int64?) -> String {
        guard let micros else { return "—" }
        let t = formatTimestamp(micros)  // 2026-12-07T10:11:12.123456Z
        guard let tIndex = t.firstIndex(of: "T") else { return t }
        return String(t[t.index(after: tIndex)...].prefix(8))
    }
}

/// "Dec 3" for a time in microseconds since 1970 (UTC).
func shortDate(_ micros: Int64) -> String {
    let days = Int((micros >= 0 ? micros : micros - 86_399_999_999) / 86_400_000_000)
    let c = civilFromDays(days)
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return "\(months[(c.month - 1) % 12]) \(c.day)"
}

/// A number with at most one decimal, without a trailing ".0".
func fixedTrim(_ x: Double) -> String {
    let r = (x * 10).rounded() / 10
    return r == r.rounded() ? String(Int(r)) : fixed(r, 1)
}

/// Percent-encodes a path segment: RFC 3986's unreserved characters stay, every other byte is %XX.
package func percentEncode(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: unreservedCharacters) ?? s
}

private let unreservedCharacters = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
