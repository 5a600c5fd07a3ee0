import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

/// The display model every report view shares: its rows, its one "too few users yet" rule, and that the
/// views print what it says.
@Suite("Scorecard")
struct ScorecardTests {
    /// The case study with margins on its guardrails: escalation absolute (5 pp), errors relative (50%).
    static func withMargins() throws -> Report {
        var metrics = Metric.builtIn
        metrics[metrics.firstIndex { $0.name == "escalation_rate" }!].margin = GuardrailMargin(value: 0.05, isRelative: false)
        metrics[metrics.firstIndex { $0.name == "error_rate" }!].margin = GuardrailMargin(value: 0.5, isRelative: true)
        let spec = try SimulationSpec.preset("seed-case-study")
        var aggregator = EventAggregator(metrics: metrics)
        try Simulator.run(spec) { e in try e.withView { try aggregator.add($0) } }
        var plan = AnalysisPlan()
        plan.allocation = spec.allocation
        return try Analysis.run(aggregator.finish(), plan: plan)
    }

    @Test func rowsPutThePrimaryFirstThenMetricsThenQuantiles() throws {
        let r = try ReportPageTests.caseStudy()
        let card = Scorecard(report: r, treatment: "treatment")
        #expect(card.control == "control" && card.treatment == "treatment")
        #expect(card.rows.first?.isPrimary == true)
        #expect(card.rows.first?.metric.name == r.primaryMetric)
        let firstQuantile = try #require(card.rows.firstIndex { $0.isQuantile })
        #expect(card.rows[firstQuantile...].allSatisfy { $0.isQuantile })
        #expect(card.rows.count + card.folded.count == r.results.count + r.quantiles.count)
        #expect(card.folded.isEmpty)
        #expect(r.scorecards.map(\.treatment) == ["treatment"])
    }

    @Test func statusesFollowTheVerdictsOfAFullExperiment() throws {
        let r = try ReportPageTests.caseStudy()
        let card = Scorecard(report: r, treatment: "treatment")
        func row(_ name: String) throws -> Scorecard.Row { try #require(card.rows.first { $0.metric.name == name }) }
        #expect(try row("task_completion").status == .better)
        #expect(try row("latency_p50").status == .worse)
        #expect(try row("latency_p50").statusText == "worse")
        #expect(try row("repeat_usage").status == .noDifference)
        #expect(try row("repeat_usage").statusText == "no clear difference")
        // Output tokens has no better direction: significant reads "changed", with no chance "better".
        #expect(try row("output_tokens").status == .changed)
        #expect(try row("output_tokens").chanceToWin == nil)
        #expect(try row("task_completion").chanceToWin == "100.0%")
        // Every row of a full experiment has its interval and is drawable; no contradiction to explain.
        for row in card.rows {
            #expect(row.interval != nil && row.liftInterval != nil && row.liftValue != nil && row.liftBounds != nil, "\(row.metric.name)")
            #expect(row.explanation == nil, "\(row.metric.name): \(row.explanation ?? "")")
        }
        // Corrected secondaries say the level of their interval and their unadjusted p.
        let csat = try row("csat")
        #expect(csat.intervalLevel != nil && csat.intervalLevel != "95%")
        #expect(csat.rawPValue != nil)
        #expect(try row("task_completion").intervalLevel == nil)
        #expect(try row("escalation_rate").isGuardrail)
        #expect(try row("escalation_rate").guardrail == "no significant harm")
        #expect(try row("csat").guardrail == nil)
    }

    @Test func tooFewUsersIsOneRuleForEveryRow() throws {
        let r = try ReportPageTests.early(users: 8)
        let card = Scorecard(report: r, treatment: "treatment")
        let significant = Set(r.results.filter(\.significant).map(\.metric.name) + r.quantiles.filter(\.significant).map(\.metric.name))
        #expect(!significant.isEmpty, "the premise: a significant row with few users")
        for row in card.rows {
            if significant.contains(row.metric.name) {
                // The decision acts on a significant result: the row keeps it, and says it is early.
                #expect(row.status != .tooFewUsers, "\(row.metric.name)")
                #expect(row.explanation?.contains("early result") == true, "\(row.metric.name)")
            } else {
                #expect(row.status == .tooFewUsers, "\(row.metric.name)")
                #expect(row.statusText == "too few users yet")
                #expect(row.interval == nil && row.liftInterval == nil && row.chanceToWin == nil, "\(row.metric.name)")
                #expect(row.liftValue == nil && row.liftBounds == nil, "\(row.metric.name): not drawn")
                #expect(row.explanation?.contains("at least \(Scorecard.minimumUsers) users") == true, "\(row.metric.name): \(row.explanation ?? "")")
            }
        }
        // The Bayesian line of the notes follows the row: no chance to win for too few users.
        #expect(!r.render(.table).contains("Bayesian view"))
    }

    @Test func anIntervalPastTheMetricsRangeReadsTooFewUsersWhateverTheUsers() throws {
        var r = try ReportPageTests.caseStudy()
        let i = try #require(r.results.firstIndex { $0.metric.name == "thumbs_up_rate" })
        r.results[i].absoluteInterval = ConfidenceInterval(lower: -3.405, upper: 3.321)
        r.results[i].significant = false
        r.results[i].verdict = .none
        let row = try #require(Scorecard(report: r, treatment: "treatment").rows.first { $0.metric.name == "thumbs_up_rate" })
        #expect(row.status == .tooFewUsers)
        #expect(row.interval == nil)
        #expect(row.explanation?.contains("±100.0 pp") == true, "\(row.explanation ?? "")")
        #expect(!(row.explanation ?? "").contains("340.5"), "the absurd interval is not printed, not even in the note")

        // A lift below -100% of a value that cannot be negative: the same.
        var q = try ReportPageTests.caseStudy()
        let k = try #require(q.quantiles.firstIndex { $0.metric.name == "latency_p95" })
        q.quantiles[k].relativeInterval = ConfidenceInterval(lower: -2.34, upper: 3.1)
        q.quantiles[k].significant = false
        q.quantiles[k].verdict = .none
        let latency = try #require(Scorecard(report: q, treatment: "treatment").rows.first { $0.metric.name == "latency_p95" })
        #expect(latency.status == .tooFewUsers)
        #expect(latency.liftInterval == nil && latency.liftValue == nil)
    }

    @Test func anUnboundedLiftIsNeverShownAsAnInterval() throws {
        var r = try ReportPageTests.caseStudy()
        let i = try #require(r.results.firstIndex { $0.metric.name == "error_rate" })
        r.results[i].relativeInterval = .unbounded
        var row = try #require(Scorecard(report: r, treatment: "treatment").rows.first { $0.metric.name == "error_rate" })
        #expect(row.status == .tooFewUsers)
        #expect(row.liftInterval == nil && row.liftBounds == nil)
        #expect(row.explanation?.contains("cannot be bounded yet") == true)
        // Significant: the result stays, the lift has no interval, the note says to read the difference.
        r.results[i].significant = true
        r.results[i].verdict = .worse
        row = try #require(Scorecard(report: r, treatment: "treatment").rows.first { $0.metric.name == "error_rate" })
        #expect(row.status == .worse)
        #expect(row.liftInterval == nil && row.interval != nil)
        #expect(row.explanation?.contains("read the difference instead") == true)
    }

    @Test func emptyRowsAreFoldedButThePrimaryStays() throws {
        let r = try ReportPageTests.fewHours()
        let card = Scorecard(report: r, treatment: "treatment")
        let folded = Set(card.folded.map(\.metric.name))
        #expect(folded.isSuperset(of: ["csat", "escalation_rate", "thumbs_up_rate", "ttft_p50", "ttft_p95", "error_rate", "repeat_usage"]))
        #expect(card.folded.first { $0.metric.name == "csat" }?.explanation == "No data in either variant yet.")
        #expect(card.folded.first { $0.metric.name == "error_rate" }?.explanation == "Every user has the same value in both variants, 0.0%.")
        #expect(Set(card.rows.map(\.metric.name)).isDisjoint(with: folded))

        // A primary metric without data is still the first row, saying so.
        var plan = AnalysisPlan()
        plan.primaryMetric = "csat"
        let noPrimaryData = try Analysis.run(try Make.aggregate([
            Make.request("u1", "control", "r1", conversation: "c1", at: Make.t0),
            Make.request("u2", "treatment", "r2", conversation: "c2", at: Make.t0),
        ]), plan: plan)
        let primary = try #require(Scorecard(report: noPrimaryData, treatment: "treatment").rows.first)
        #expect(primary.metric.name == "csat" && primary.isPrimary)
        #expect(primary.status == .tooFewUsers)
        #expect(primary.control == "—" && primary.treatment == "—" && primary.pValue == "—")
        #expect(primary.explanation == "No CSAT data yet.")
    }

    @Test func guardrailsSayWhereTheyStandAgainstTheirMargin() throws {
        let r = try Self.withMargins()
        let card = Scorecard(report: r, treatment: "treatment")
        let escalation = try #require(card.rows.first { $0.metric.name == "escalation_rate" })
        #expect(escalation.guardrail == "within the margin of +5.0 pp")
        let errors = try #require(card.rows.first { $0.metric.name == "error_rate" })
        let g = try #require(errors.guardrail)
        #expect(g.hasSuffix("the margin of +50.0%"), "\(g)")
        // The page marks the relative margin on the chart and names the guardrails.
        let html = r.render(.html)
        let chart = try ReportPageTests.chart(html)
        #expect(chart.contains("class=\"margin\""))
        #expect(chart.contains("(guardrail)"))
    }

    @Test func everyViewPrintsTheScorecardsWords() throws {
        for r in [try ReportPageTests.caseStudy(), try ReportPageTests.early(users: 20), try ReportPageTests.early(users: 300)] {
            let card = Scorecard(report: r, treatment: "treatment")
            let html = r.render(.html), markdown = r.render(.markdown), table = r.render(.table)
            let chart = html.contains("<figure") ? try ReportPageTests.chart(html) : ""
            for row in card.rows {
                // The chart draws every row with a lift and names the others with the reason.
                if row.liftValue != nil {
                    #expect(chart.contains("data-chart-metric=\"\(row.metric.name)\""), "\(row.metric.name) not drawn")
                } else {
                    #expect(!chart.contains("data-chart-metric=\"\(row.metric.name)\""), "\(row.metric.name)")
                    #expect(ReportPageTests.text(html).contains("\(row.metric.title) (\(row.status == .tooFewUsers ? row.statusText : "no lift")"), "\(row.metric.name)")
                }
                let dom = try ReportPageTests.row(html, row.metric.name)
                #expect(dom.contains("data-status=\"\(row.status.rawValue)\""), "\(row.metric.name)")
                #expect(ReportPageTests.text(dom).contains(row.statusText), "\(row.metric.name)")
                if let ci = row.interval { #expect(ReportPageTests.text(dom).contains(ci), "\(row.metric.name)") }
                let line = try #require(markdown.split(separator: "\n").first { $0.hasPrefix("| \(row.metric.title.replacingOccurrences(of: "_", with: "\\_"))") })
                #expect(line.hasSuffix("| \(row.statusText) |"), "\(line)")
                let text = try #require(table.split(separator: "\n").first { $0.hasPrefix(row.metric.title + " ") })
                #expect(text.hasSuffix(row.status.shortText), "\(text)")
                if let explanation = row.explanation {
                    #expect(ReportPageTests.text(dom).contains(explanation), "\(row.metric.name)")
                    #expect(markdown.contains(explanation), "\(row.metric.name)")
                }
            }
        }
    }
}
