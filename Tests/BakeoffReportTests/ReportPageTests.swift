import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

/// The report pages as a product owner reads them: every view on a page agrees with the others or says why
/// not, too little data reads "too few users yet", empty rows are folded, and the HTML fits and parses.
@Suite("Report pages tell one story")
struct ReportPageTests {
    // MARK: Reports

    static func caseStudy() throws -> Report { try Simulated.report(try SimulationSpec.preset("seed-case-study")) }

    /// The case study's rates with a handful of users over one day: the live page's first hours.
    static func early(users: Int, seed: UInt64 = 3, plan: AnalysisPlan? = nil) throws -> Report {
        var spec = try SimulationSpec.preset("seed-case-study")
        spec.users = users
        spec.days = 1
        spec.seed = seed
        return try Simulated.report(spec, plan: plan)
    }

    /// Users over a few hours of one day, no TTFT, no CSAT or thumbs, everyone on one request: several
    /// metrics have nothing to compare.
    static func fewHours(users: Int = 24) throws -> Report {
        var events: [EventRecord] = []
        for i in 0..<users {
            let variant = i % 2 == 0 ? "control" : "treatment"
            let t = Make.t0 + Int64(i) * 5 * 60_000_000
            events.append(Make.request("u\(i)", variant, "r\(i)", conversation: "c\(i)", at: t, latency: 100 + Double(i % 7) * 10))
            events.append(Make.feedback("task_completed", i % 3 == 0 ? 0 : 1, conversation: "c\(i)", at: t))
        }
        return try Analysis.run(try Make.aggregate(events), plan: AnalysisPlan())
    }

    // MARK: HTML helpers

    /// The chart of the first treatment: its `<figure>` (or, on the old page, its `<svg>`).
    static func chart(_ html: String) throws -> String {
        let (open, close) = html.contains("<figure") ? ("<figure", "</figure>") : ("<svg", "</svg>")
        let start = try #require(html.range(of: open))
        let end = try #require(html.range(of: close, range: start.upperBound..<html.endIndex))
        return String(html[start.lowerBound..<end.upperBound])
    }

    /// The table row of a metric (with its explanation row, up to the next metric's row).
    static func row(_ html: String, _ metric: String, variant: String = "treatment") throws -> String {
        let start = try #require(html.range(of: "data-metric=\"\(metric)\" data-variant=\"\(variant)\""), "no row for \(metric)")
        let rest = html[start.upperBound...]
        let end = [rest.range(of: "data-metric=")?.lowerBound, rest.range(of: "</tbody>")?.lowerBound].compactMap { $0 }.min() ?? rest.endIndex
        return String(html[start.lowerBound..<end])
    }

    /// Visible text: tags removed, entities of the escaper read back.
    static func text(_ html: String) -> String {
        var out = "", inTag = false
        for c in html {
            if c == "<" { inTag = true } else if c == ">" { inTag = false } else if !inTag { out.append(c) }
        }
        return out.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'").replacingOccurrences(of: "&amp;", with: "&")
    }

    /// Unbalanced tags of a page, or nil when every element that is opened is closed in order.
    static func unbalancedTag(_ html: String) -> String? {
        let void: Set<String> = ["meta", "br", "hr", "img", "input", "link", "wbr", "col"]
        var stack: [String] = []
        var i = html.startIndex
        while let open = html[i...].firstIndex(of: "<") {
            guard let close = html[open...].firstIndex(of: ">") else { return "unterminated tag" }
            let tag = html[html.index(after: open)..<close]
            i = html.index(after: close)
            if tag.hasPrefix("!") { continue }
            if tag.hasSuffix("/") { continue }
            let name = tag.split(whereSeparator: { $0 == " " || $0 == "\n" }).first.map { String($0).lowercased() } ?? ""
            if name.hasPrefix("/") {
                let n = String(name.dropFirst())
                guard stack.last == n else { return "</\(n)> closes <\(stack.last ?? "nothing")>" }
                stack.removeLast()
            } else if !void.contains(name) {
                stack.append(name)
            }
        }
        return stack.isEmpty ? nil : "unclosed <\(stack.joined(separator: "> <"))>"
    }

    // MARK: The chart

    @Test func theCaseStudyChartShowsLatencyAndTTFT() throws {
        let r = try Self.caseStudy()
        // The premise: the table marks these worse.
        #expect(r.quantiles.contains { $0.metric.name == "latency_p50" && $0.verdict == .worse })
        let chart = try Self.chart(r.render(.html))
        for title in ["Latency P50", "Latency P95", "TTFT P50", "TTFT P95"] {
            #expect(chart.contains(">\(title)"), "\(title) missing from the chart")
        }
    }

    @Test func theChartSaysSignificanceInWordsWithALegendAndMarksGuardrails() throws {
        let html = try Self.caseStudy().render(.html)
        let chart = try Self.chart(html)
        // Words, not colour only: each drawn row says its result.
        #expect(chart.contains("worse"))
        #expect(chart.contains("better"))
        #expect(chart.contains("no clear difference"))
        // Colour-blind-safe palette: no red/green pair.
        #expect(!html.contains("#cf222e") && !html.contains("#1a7f37"))
        // A legend, and guardrails marked (Escalation rate and Error rate are guardrails).
        #expect(html.contains("class=\"legend\""))
        #expect(chart.contains("guardrail") || chart.contains("⚑"))
    }

    // MARK: The table

    @Test func theTableScrollsInsteadOfOverflowingAndIntervalsDoNotBreak() throws {
        let html = try Self.early(users: 60).render(.html)
        #expect(html.contains("overflow-x:auto"))
        // No whole cell is kept on one line; the interval spans are.
        #expect(!html.contains("td{white-space:nowrap}"))
        #expect(html.contains(".ci{white-space:nowrap"))
        #expect(html.contains("<span class=\"ci\""))
    }

    @Test func longNotesLeaveTheNumericCells() throws {
        // Quantiles of a few users cannot be tested: their note used to fill the p-value cell.
        let r = try Self.early(users: 8)
        #expect(r.quantiles.contains { $0.note != nil })
        let html = r.render(.html)
        let body = try #require(html.range(of: "<tbody>"))
        let table = html[body.lowerBound...]
        var i = table.startIndex
        while let open = table[i...].range(of: "<td") {
            let close = try #require(table[open.upperBound...].range(of: "</td>"))
            let cell = String(table[open.lowerBound..<close.upperBound])
            i = close.upperBound
            if cell.contains("colspan") || cell.contains("class=\"metric\"") { continue }
            let visible = Self.text(cell)
            #expect(visible.count <= 40, "a numeric cell holds prose: \(visible)")
        }
    }

    @Test func absurdProportionIntervalsSayTooFewUsersYet() throws {
        let r = try Self.early(users: 8)
        let absurd = r.results.filter {
            $0.metric.kind == .proportion && ($0.absoluteInterval.map { $0.lower < -1 || $0.upper > 1 } ?? false)
        }
        try #require(!absurd.isEmpty, "the premise: a rate's interval wider than ±100 pp")
        for format in [ReportFormat.html, .markdown, .table] {
            let text = r.render(format)
            for a in absurd {
                let interval = formatInterval(a.absoluteInterval, a.metric)
                #expect(!text.contains(interval), "\(format) shows \(interval)")
            }
            #expect(text.contains("too few users"), "\(format)")
        }
        for a in absurd {
            #expect(Self.text(try Self.row(r.render(.html), a.metric.name)).contains("too few users yet"))
        }
    }

    @Test func unboundedIntervalsAreNeverPrinted() throws {
        let r = try Self.early(users: 8)
        #expect(r.results.contains { if case .unbounded? = $0.relativeInterval { true } else { false } })
        for format in [ReportFormat.html, .markdown, .table] {
            #expect(!r.render(format).contains("unbounded]"), "\(format)")
        }
    }

    @Test func anIntervalExcludingZeroBesideANonSignificantPIsExplained() throws {
        // The issue's row: "Latency P50 -39.7% [-69.2, -10.1], p 0.088, no".
        var r = try Self.caseStudy()
        let i = try #require(r.quantiles.firstIndex { $0.metric.name == "latency_p50" })
        r.quantiles[i].relativeInterval = ConfidenceInterval(lower: -0.692, upper: -0.101)
        r.quantiles[i].treatmentValue = r.quantiles[i].control.map { $0 * 0.603 }
        r.quantiles[i].absoluteInterval = ConfidenceInterval(lower: -700, upper: 40)
        r.quantiles[i].pValue = 0.011
        r.quantiles[i].adjustedPValue = 0.088
        r.quantiles[i].significant = false
        r.quantiles[i].verdict = .none
        let html = r.render(.html)
        let row = Self.text(try Self.row(html, "latency_p50"))
        #expect(row.contains("0.088"))
        #expect(row.contains("delta method"), "\(row)")
        #expect(row.contains("correction"), "\(row)")
        for format in [ReportFormat.markdown, .table] {
            #expect(r.render(format).contains("delta method"), "\(format)")
        }
    }

    @Test func aSignificantPBesideALiftIntervalThroughZeroIsExplained() throws {
        // Few users: the quantile's delta-method lift interval and its test of the difference disagree.
        let r = try Self.early(users: 20)
        let disagreeing = r.quantiles.filter { q in
            guard let ci = q.relativeInterval, q.pValue != nil else { return false }
            return (ci.lower > 0 || ci.upper < 0) != q.significant
        }
        try #require(!disagreeing.isEmpty, "the premise: a quantile whose lift interval and p-value disagree")
        let html = r.render(.html)
        for q in disagreeing {
            #expect(Self.text(try Self.row(html, q.metric.name)).contains("delta method"), "\(q.metric.name)")
        }
    }

    @Test func aBayesianChanceBesideANonSignificantPSaysWhy() throws {
        // The live page's default: the sequential test, with a Bayesian chance computed as one look.
        var plan = AnalysisPlan()
        plan.method = .sequential
        var spec = try SimulationSpec.preset("seed-case-study")
        spec.users = 300
        spec.days = 3
        spec.seed = 4
        let r = try Simulated.report(spec, plan: plan)
        let p = try #require(r.results.first { $0.metric.name == "task_completion" })
        let chance = try #require(p.bayesian?.chanceToWin)
        try #require(chance >= 0.95 && !p.significant, "the premise: chance \(chance), p \(p.pValue ?? -1)")
        let row = Self.text(try Self.row(r.render(.html), "task_completion"))
        #expect(row.contains("sequential"), "\(row)")
        #expect(row.contains("decision follows the p-value"), "\(row)")
        for format in [ReportFormat.markdown, .table] {
            #expect(r.render(format).contains("sequential test"), "\(format)")
        }
    }

    @Test func rowsWithNothingToShowAreFoldedNotDropped() throws {
        let r = try Self.fewHours()
        let html = r.render(.html)
        let details = try #require(html.range(of: "<details"), "no fold")
        let fold = Self.text(String(html[details.lowerBound...]))
        for title in ["TTFT P50", "CSAT", "Error rate"] {
            #expect(fold.contains(title), "\(title) not in the fold")
        }
        #expect(!html.contains("data-metric=\"ttft_p50\""))
        #expect(!html.contains("n/a"))
        for format in [ReportFormat.markdown, .table] {
            let text = r.render(format)
            #expect(!text.contains("n/a"), "\(format)")
            #expect(text.contains("TTFT P50"), "\(format): folded rows are listed")
        }
    }

    @Test func lessThanADayIsSaidInWords() throws {
        let r = try Self.fewHours()
        for format in [ReportFormat.html, .markdown, .table] {
            let text = r.render(format)
            #expect(!text.contains("0.0 days"), "\(format)")
        }
        #expect(r.render(.table).contains("less than a day"))
    }

    // MARK: The DOM against the JSON

    @Test func numericCellsCarryTheJSONNumbers() throws {
        let r = try Self.caseStudy()
        let html = r.render(.html)
        // JSONSerialization rounds on Linux: compare the texts, as the JSON report prints each number.
        let json = r.render(.json)
        func expectSame(_ row: String, _ key: String, _ value: Double?, _ what: String) {
            guard let value else { return }
            let text = JSONWriter.number(value)
            #expect(json.contains("\"\(key)\": \(text)"), "\(what): \(text) not in the JSON report")
            #expect(row.contains("data-value=\"\(text)\""), "\(what): \(text) not on the page")
        }
        for m in r.results where m.treatment == "treatment" {
            let row = try Self.row(html, m.metric.name)
            expectSame(row, "mean", m.control.mean, "\(m.metric.name) control")
            expectSame(row, "mean", m.treatmentGroup.mean, "\(m.metric.name) treatment")
            expectSame(row, "absolute_diff", m.absoluteDifference, "\(m.metric.name) difference")
            expectSame(row, "relative_lift", m.relativeLift, "\(m.metric.name) lift")
            expectSame(row, m.adjustedPValue == nil ? "p_value" : "adjusted_p_value", m.decisionPValue, "\(m.metric.name) p")
            if m.metric.goal != .none { expectSame(row, "chance_to_win", m.bayesian?.chanceToWin, "\(m.metric.name) chance") }
        }
        for q in r.quantiles where q.treatment == "treatment" {
            let row = try Self.row(html, q.metric.name)
            expectSame(row, "value", q.control, "\(q.metric.name) control")
            expectSame(row, "value", q.treatmentValue, "\(q.metric.name) treatment")
            expectSame(row, "relative_change", q.relativeChange, "\(q.metric.name) lift")
            expectSame(row, q.adjustedPValue == nil ? "p_value" : "adjusted_p_value", q.adjustedPValue ?? q.pValue, "\(q.metric.name) p")
        }
    }

    // MARK: Well-formed

    @Test func everyPageIsWellFormed() throws {
        var three = SimulationSpec(allocation: try Allocation(parsing: "control=0.5,a=0.25,b=0.25"))
        three.users = 600
        var reports = [try Self.caseStudy(), try Self.early(users: 8), try Self.early(users: 60), try Self.fewHours(),
                       try Simulated.report(three)]
        var sequential = AnalysisPlan()
        sequential.method = .sequential
        reports.append(try Self.early(users: 300, plan: sequential))
        for (i, r) in reports.enumerated() {
            let html = r.render(.html)
            #expect(Self.unbalancedTag(html) == nil, "report \(i): \(Self.unbalancedTag(html) ?? "")")
        }
    }

    @Test func theTextTableStillFitsEightyColumnsWithFewUsers() throws {
        for users in [8, 20, 60] {
            for line in try Self.early(users: users).render(.table).split(separator: "\n") {
                #expect(line.count <= 80, "\(users) users, \(line.count) columns: \(line)")
            }
        }
    }
}
