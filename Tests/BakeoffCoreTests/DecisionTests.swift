import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

/// The plan-driven decision: runtime bounds, guardrail margins, correction and sequential method.
@Suite("Plan-driven decisions")
struct DecisionTests {
    static func spec(_ t: VariantBehaviour, users: Int = 3000, days: Int = 14, seed: UInt64 = 5) -> SimulationSpec {
        var spec = Simulated.spec(control: VariantBehaviour(), treatment: t, users: users, seed: seed)
        spec.days = days
        return spec
    }

    static var better: VariantBehaviour {
        var t = VariantBehaviour()
        t.completion = 0.85
        t.escalation = 0.15
        return t
    }

    @Test func shipWaitsForTheMinimumRuntimeInFullWeeks() throws {
        var plan = AnalysisPlan()
        plan.minimumRuntimeDays = 10  // rounded up to 14
        let early = try Simulated.report(Self.spec(Self.better, days: 9), plan: plan)
        #expect(early.decision.action == .keepRunning)
        #expect(early.decision.reason.contains("minimum runtime of 14 days"), "\(early.decision.reason)")
        let left = try #require(early.decision.additionalDays)
        #expect(left > 4 && left < 6, "\(left) days left")
        plan.fullWeeks = false
        let partial = try Simulated.report(Self.spec(Self.better, days: 12), plan: plan)
        #expect(partial.decision.action == .ship, "\(partial.decision.reason)")
    }

    @Test func harmDoesNotWaitForTheMinimumRuntime() throws {
        var t = VariantBehaviour()
        t.completion = 0.6
        t.escalation = 0.4
        var plan = AnalysisPlan()
        plan.minimumRuntimeDays = 28
        let r = try Simulated.report(Self.spec(t, days: 3), plan: plan)
        #expect(r.decision.action == .rollBack)
    }

    @Test func stopsAsInconclusiveAtTheMaximumRuntime() throws {
        var plan = AnalysisPlan()
        plan.maximumRuntimeDays = 13  // the last event of a 14-day run is shortly before day 14
        plan.minimumRuntimeDays = 7
        let r = try Simulated.report(Self.spec(VariantBehaviour(), users: 1500, days: 14), plan: plan)
        #expect(r.decision.action == .stopInconclusive, "\(r.decision.reason)")
        #expect(r.decision.reason.contains("maximum runtime"))
        plan.maximumRuntimeDays = 30
        let running = try Simulated.report(Self.spec(VariantBehaviour(), users: 1500, days: 14), plan: plan)
        #expect(running.decision.action == .keepRunning)
    }

    @Test func stopsAsInconclusiveAtThePlannedSampleWithFixedHorizon() throws {
        var plan = AnalysisPlan()
        plan.minimumDetectableEffect = 0.1  // ten points: 3000 users are plenty
        let r = try Simulated.report(Self.spec(VariantBehaviour(), users: 3000), plan: plan)
        #expect(r.decision.action == .stopInconclusive, "\(r.decision.reason)")
        plan.method = .sequential  // a sequential test may keep going: no planned sample
        let s = try Simulated.report(Self.spec(VariantBehaviour(), users: 3000), plan: plan)
        #expect(s.decision.action == .keepRunning)
    }

    static func metrics(escalationMargin: GuardrailMargin?, latencyMargin: GuardrailMargin?) -> [Metric] {
        Metric.builtIn.map { m in
            var m = m
            if m.name == "escalation_rate" { m.margin = escalationMargin }
            if m.name == "latency_p95" {
                m.role = .guardrail
                m.margin = latencyMargin
            }
            return m
        }
    }

    static func report(_ spec: SimulationSpec, metrics: [Metric], plan: AnalysisPlan = AnalysisPlan()) throws -> Report {
        var aggregator = EventAggregator(metrics: metrics)
        try Simulator.run(spec) { e in try e.withView { try aggregator.add($0) } }
        var p = plan
        p.allocation = spec.allocation
        return try Analysis.run(aggregator.finish(), plan: p)
    }

    @Test func aGuardrailWithAMarginMustBeShownWithinItBeforeShipping() throws {
        // Treatment improves completion but escalates slightly more often (+1 point): with a 5-point margin
        // that is within, with a 0.5-point margin it is beyond or unclear.
        var t = VariantBehaviour()
        t.completion = 0.85
        t.escalation = 0.26
        let spec = Self.spec(t, users: 6000)
        let wide = try Self.report(spec, metrics: Self.metrics(escalationMargin: GuardrailMargin(value: 0.05, isRelative: false), latencyMargin: nil))
        let escalation = try #require(wide.results.first { $0.metric.name == "escalation_rate" }?.guardrail)
        #expect(escalation.status == .withinMargin)
        #expect(escalation.bound < 0.05)
        #expect(wide.decision.action == .ship, "\(wide.decision.reason)")
        let tight = try Self.report(spec, metrics: Self.metrics(escalationMargin: GuardrailMargin(value: 0.001, isRelative: false), latencyMargin: nil))
        let check = try #require(tight.results.first { $0.metric.name == "escalation_rate" }?.guardrail)
        #expect(check.status != .withinMargin)
        #expect(tight.decision.action != .ship, "\(tight.decision.reason)")
    }

    @Test func noninferiorityAgreesWithItsBound() throws {
        let spec = Self.spec(Self.better, users: 3000)
        for margin in [0.0, 0.005, 0.02, 0.1] {
            let r = try Self.report(spec, metrics: Self.metrics(escalationMargin: GuardrailMargin(value: margin, isRelative: false), latencyMargin: nil))
            let g = try #require(r.results.first { $0.metric.name == "escalation_rate" }?.guardrail)
            #expect((g.status == .withinMargin) == (g.bound < margin), "margin \(margin): \(g)")
            #expect((g.status == .withinMargin) == (g.pValue < 0.05), "margin \(margin): \(g)")
        }
    }

    @Test func correctionAdjustsSecondaryMetricsAndIntervalsAgree() throws {
        for correction in Correction.allCases {
            for method in TestMethod.allCases {
                var plan = AnalysisPlan()
                plan.correction = correction
                plan.method = method
                // A horizon, so that group-sequential (and auto) run as such.
                plan.maximumRuntimeDays = 28
                let r = try Simulated.report(Self.spec(Self.better, users: 2500), plan: plan)
                #expect(r.plan.method == (method == .auto ? .groupSequential : method))
                let secondary = r.results.filter { $0.metric.role == .secondary && $0.pValue != nil }
                let raw = secondary.map(\.pValue)
                // The family also holds quantile metrics that were tested.
                let quantileRaw = r.quantiles.filter { $0.metric.role == .secondary && $0.pValue != nil }.map(\.pValue)
                let expected = MultipleComparisons.adjustedPValues(raw + quantileRaw, correction: correction)
                for (i, result) in secondary.enumerated() {
                    #expect(result.adjustedPValue == expected[i], "\(correction) \(method) \(result.metric.name)")
                    let ci = try #require(result.absoluteInterval)
                    #expect((ci.lower > 0 || ci.upper < 0) == (result.adjustedPValue! < plan.alpha),
                            "\(correction) \(method) \(result.metric.name): \(ci) adjusted p \(result.adjustedPValue!)")
                    #expect(result.significant == (result.adjustedPValue! < plan.alpha))
                }
                let guardrails = r.results.filter { $0.metric.role == .guardrail }
                #expect(guardrails.allSatisfy { $0.adjustedPValue == nil && $0.intervalAlpha == plan.alpha })
                let primary = try #require(r.results.first { $0.metric.name == r.primaryMetric })
                #expect(primary.adjustedPValue == primary.pValue, "one treatment: the primary's family has one member")
            }
        }
    }

    @Test func sequentialIntervalsAreWiderAndContainTheFixedOnes() throws {
        var plan = AnalysisPlan()
        plan.correction = .none
        let fixed = try Simulated.report(Self.spec(Self.better), plan: plan)
        plan.method = .sequential
        let sequential = try Simulated.report(Self.spec(Self.better), plan: plan)
        for f in fixed.results {
            guard let s = sequential.results.first(where: { $0.metric.name == f.metric.name }),
                  let a = f.absoluteInterval, let b = s.absoluteInterval else { continue }
            #expect(b.lower <= a.lower && b.upper >= a.upper, "\(f.metric.name): \(b) vs \(a)")
            #expect((s.pValue ?? 1) >= (f.pValue ?? 1) * 0.999, "\(f.metric.name)")
        }
    }

    @Test func bayesianViewAndPowerNowAreReportedForThePrimary() throws {
        let r = try Simulated.report(Self.spec(Self.better))
        let p = try #require(r.results.first { $0.metric.name == r.primaryMetric })
        let b = try #require(p.bayesian)
        #expect(b.chanceToWin > 0.99)
        let mde = try #require(p.detectableEffect)
        #expect(mde > 0 && mde < 0.1)
        let text = r.render(.table)
        #expect(text.contains("Bayesian view"))
        #expect(text.contains("Power now"))
    }
}

@Suite("Plan snapshots and changes after the start")
struct PlanHistoryTests {
    static func config(_ json: String) throws -> ExperimentConfig {
        try ExperimentConfig.parse(Data(json.utf8), source: "plan.json")
    }

    @Test func snapshotsRoundTripThroughText() throws {
        let c = try Self.config(#"{"alpha": 0.1, "method": "sequential", "correction": "bh", "max_runtime_days": 28, "metrics": [{"name": "escalation_rate", "margin": 0.01}]}"#)
        let s = PlanSnapshot(config: c, allocation: try Allocation(split: 0.2), control: "control", defaultMethod: .fixed)
        #expect(PlanSnapshot(text: s.text) == s)
        #expect(s.settings.contains { $0.key == "alpha" && $0.value == "0.1" })
        #expect(s.settings.contains { $0.key == "metric escalation_rate" && $0.value.contains("margin 0.01") })
    }

    /// A store read without the gateway's config is analysed with the plan recorded in it: every setting the
    /// snapshot holds comes back.
    @Test func theRecordedPlanComesBackFromItsText() throws {
        let c = try Self.config(#"{"alpha": 0.1, "power": 0.9, "method": "sequential", "correction": "bh", "min_runtime_days": 10, "max_runtime_days": 28, "start": "2026-11-02T12:00:00Z", "mde": 0.03, "primary_metric": "csat"}"#)
        let plan = PlanSnapshot(text: PlanSnapshot(config: c, allocation: try Allocation(split: 0.2), control: "control", defaultMethod: .fixed).text).livePlan
        #expect(plan.alpha == 0.1 && plan.power == 0.9 && plan.method == .sequential && plan.correction == c.plan.correction)
        #expect(plan.minimumRuntimeDays == 10 && plan.fullWeeks == c.plan.fullWeeks && plan.maximumRuntimeDays == 28)
        #expect(plan.start == parseTime("2026-11-02T12:00:00Z") && plan.minimumDetectableEffect == 0.03 && !plan.minimumDetectableEffectIsRelative)
        #expect(plan.primaryMetric == "csat" && plan.control == "control")
        #expect(plan.allocation?.arms.map(\.name).sorted() == ["control", "treatment"])
        // Nothing recorded: the live default, auto.
        #expect(PlanSnapshot(settings: []).livePlan.method == .auto)
        let fixed = PlanSnapshot(config: try Self.config(#"{"method": "fixed"}"#), allocation: nil, control: nil, defaultMethod: .sequential)
        #expect(PlanSnapshot(text: fixed.text).livePlan.method == .fixed)
    }

    @Test func changesAfterTheStartAreListedSettingBySetting() throws {
        let a = PlanSnapshot(config: try Self.config(#"{"alpha": 0.05}"#), allocation: nil, control: nil, defaultMethod: .fixed)
        let b = PlanSnapshot(config: try Self.config(#"{"alpha": 0.1, "max_runtime_days": 21}"#), allocation: nil, control: nil, defaultMethod: .fixed)
        #expect(b.changes(from: a) == ["alpha: 0.05 → 0.1", "max_runtime_days: added (21)"])
        #expect(a.changes(from: b) == ["alpha: 0.1 → 0.05", "max_runtime_days: removed (was 21)"])
        // Before the start: not a change. After: listed. An identical snapshot: nothing.
        let history = [(timestamp: Int64(10), snapshot: a), (timestamp: 20, snapshot: b), (timestamp: 30, snapshot: b)]
        #expect(PlanSnapshot.changesAfterStart(history, start: 25).isEmpty)
        let changes = PlanSnapshot.changesAfterStart(history, start: 15)
        #expect(changes.count == 1)
        #expect(changes.first?.timestamp == 20)
        #expect(PlanSnapshot.changesAfterStart(history, start: nil).isEmpty)
    }

    @Test func reportShowsPlanChanges() throws {
        var r = try Simulated.report(DecisionTests.spec(DecisionTests.better))
        r.planChanges = [PlanChange(timestamp: 1_764_000_000_000_000, changes: ["alpha: 0.05 → 0.1"])]
        for format in [ReportFormat.table, .markdown, .html, .json] {
            #expect(r.render(format).contains("0.05 → 0.1"), "\(format)")
        }
    }

    @Test(arguments: [
        (#"{"method": "bayes"}"#, "method"),
        (#"{"correction": "bonferroni"}"#, "correction"),
        (#"{"min_runtime_days": -1}"#, "min_runtime_days"),
        (#"{"min_runtime_days": 14, "max_runtime_days": 7}"#, "shorter than"),
        (#"{"start": "yesterday"}"#, "RFC 3339"),
        (#"{"prior": {"mean": 0}}"#, "variance"),
        (#"{"metrics": [{"name": "csat", "margin": 0.1}]}"#, "guardrail"),
        (#"{"metrics": [{"name": "escalation_rate", "margin": 0.1, "margin_relative": 0.1}]}"#, "either"),
        (#"{"metrics": [{"name": "latency_p95", "rank_test": "mann_whitney"}]}"#, "quantile"),
        (#"{"sequential_tuning": 0}"#, "sequential_tuning"),
    ])
    func badPlansAreRefusedWithTheirPlace(json: String, fragment: String) {
        do {
            _ = try Self.config(json)
            Issue.record("accepted \(json)")
        } catch {
            #expect("\(error)".contains(fragment), "\(error)")
            #expect("\(error)".contains("plan.json"), "\(error)")
        }
    }
}

/// Regressions from the review of the issue-4 analysis: each case once printed a wrong or unsafe result.
@Suite("Decisions on hostile inputs")
struct HostileDecisionTests {
    static func summary(_ csv: String, plan: AnalysisPlan = AnalysisPlan(), metrics: [Metric] = Metric.builtIn) throws -> Report {
        var p = plan
        p.minimumRuntimeDays = 0
        return try Analysis.run(try SummaryInput.parse(Array(csv.utf8), source: "s.csv", metrics: metrics), plan: p)
    }

    static let better = """
        variant,metric,assigned_users,users,sum,sum_squares
        control,task_completion,1000,1000,600,600
        treatment,task_completion,1000,1000,700,700
        """

    @Test func neverShipsOnASampleRatioMismatch() throws {
        var plan = AnalysisPlan()
        plan.allocation = try Allocation(split: 0.2)
        let r = try Self.summary(Self.better, plan: plan)
        #expect(r.sampleRatio.status == .mismatch)
        #expect(r.decision.action == .keepRunning)
        #expect(r.decision.reason.contains("sample ratio mismatch"))
        plan.allocation = try Allocation(split: 0.5)
        #expect(try Self.summary(Self.better, plan: plan).decision.action == .ship)
    }

    @Test func aMarginThatCannotBeTestedBlocksShipping() throws {
        let metrics = Metric.builtIn.map { m -> Metric in
            var m = m
            if m.name == "escalation_rate" { m.margin = GuardrailMargin(value: 0.01, isRelative: false) }
            return m
        }
        let r = try Self.summary(Self.better + "\ncontrol,escalation_rate,1000,1000,300,300\ntreatment,escalation_rate,1000,1,1,1",
                                 metrics: metrics)
        #expect(r.decision.action == .keepRunning)
        #expect(r.decision.reason.contains("not testable"), "\(r.decision.reason)")
    }

    @Test func theMaximumRuntimeEndsTheExperiment() throws {
        var plan = AnalysisPlan()
        plan.runtimeDays = 30
        plan.maximumRuntimeDays = 28
        let flat = """
            variant,metric,assigned_users,users,sum,sum_squares
            control,task_completion,1000,1000,600,600
            treatment,task_completion,1000,1000,602,602
            """
        #expect(try Self.summary(flat, plan: plan).decision.action == .stopInconclusive)
    }

    @Test func tinyDifferencesAreFormattedNotTrapped() throws {
        let csv = """
            variant,metric,assigned_users,users,sum,sum_squares
            control,task_completion,40,40,20,20
            treatment,task_completion,40,40,20,20
            control,csat,40,2,0.02,0.001
            treatment,csat,40,29,0.29,0.01
            control,avg_turns,40,40,1e-300,1e-300
            treatment,avg_turns,40,40,2e-300,2e-300
            """
        let r = try Self.summary(csv)
        for format in ReportFormat.allCases {
            let text = r.render(format)
            #expect(!text.lowercased().contains("nan"), "\(format)")
        }
    }

    @Test func theBayesianViewOfACUPEDMetricAgreesWithItsLift() throws {
        let url = Bundle.module.url(forResource: "cuped_csat", withExtension: "csv", subdirectory: "Fixtures/review")!
        var plan = AnalysisPlan()
        plan.primaryMetric = "csat"
        let r = try Self.summary(String(decoding: try Data(contentsOf: url), as: UTF8.self), plan: plan)
        let csat = try #require(r.results.first { $0.metric.name == "csat" })
        #expect(csat.varianceReduction != nil)
        let lift = try #require(csat.relativeLift)
        let b = try #require(csat.bayesian)
        #expect(abs(b.mean - lift) < 1e-9, "posterior mean \(b.mean) vs lift \(lift) (flat prior)")
        #expect(csat.verdict == .better && b.chanceToWin > 0.99)
    }

    @Test func everyTreatmentsDecisionIsPrinted() throws {
        let csv = """
            variant,metric,assigned_users,users,sum,sum_squares
            control,task_completion,1000,1000,600,600
            a,task_completion,1000,1000,520,520
            b,task_completion,1000,1000,610,610
            """
        let r = try Self.summary(csv)
        #expect(r.decisions.map(\.action) == [.rollBack, .keepRunning])
        for format in [ReportFormat.table, .markdown, .html] {
            let text = r.render(format)
            #expect(text.contains("ROLL BACK"), "\(format)")
        }
    }
}

extension HostileDecisionTests {
    @Test func aTreatedPrePeriodTurnsCUPEDOff() throws {
        // The simulator assigns from the first request, so a start in the middle leaves treated users before it.
        var spec = DecisionTests.spec(DecisionTests.better, users: 1500)
        spec.days = 14
        var aggregator = EventAggregator(metrics: Metric.builtIn, experiment: nil, experimentStart: spec.start + 7 * 86_400_000_000)
        try Simulator.run(spec) { e in try e.withView { try aggregator.add($0) } }
        var plan = AnalysisPlan()
        plan.allocation = spec.allocation
        let data = aggregator.finish()
        #expect(data.metrics.contains { $0.covariates != nil })
        let r = try Analysis.run(data, plan: plan)
        #expect(r.warnings.contains { $0.contains("pre-period") && $0.contains("CUPED is off") }, "\(r.warnings)")
        #expect(r.results.allSatisfy { $0.varianceReduction == nil })
    }
}

/// Metric value bounds in a plan (issue 9): a rating scale, numeric bounds, and the mistakes people make.
@Suite("Metric value bounds in the plan")
struct MetricBoundsConfigTests {
    static func plan(_ metrics: String) throws -> ExperimentConfig {
        try ExperimentConfig.parse(Data("{\"metrics\": [\(metrics)]}".utf8), source: "plan.json")
    }

    @Test func scalesAndBoundsAreRead() throws {
        let c = try Self.plan(#"{"name": "nps", "feedback": "nps", "kind": "mean", "scale": [0, 10]}, {"name": "saved", "feedback": "saved", "kind": "mean", "min": 0}, {"name": "csat", "scale": [1, 7]}"#)
        #expect(c.metrics.first { $0.name == "nps" }?.acceptedValues == ValueBounds(lower: 0, upper: 10, integers: true))
        #expect(c.metrics.first { $0.name == "saved" }?.acceptedValues == ValueBounds(lower: 0, upper: 1e12, integers: false))
        #expect(c.metrics.first { $0.name == "csat" }?.acceptedValues == ValueBounds(lower: 1, upper: 7, integers: true))
        #expect(Metric.builtIn.first { $0.name == "csat" }?.acceptedValues == .csat)
        #expect(Metric.builtIn.first { $0.name == "task_completion" }?.acceptedValues == .yesNo)
    }

    @Test(arguments: [
        (#"{"name": "x", "feedback": "x", "kind": "mean", "scale": [5, 1]}"#, "metrics[0].scale: must be [lowest, highest]"),
        (#"{"name": "x", "feedback": "x", "kind": "mean", "scale": [1.5, 5]}"#, "metrics[0].scale: must be [lowest, highest]"),
        (#"{"name": "x", "feedback": "x", "kind": "mean", "scale": [1, "5"]}"#, "metrics[0].scale[1]: must be a number"),
        (#"{"name": "x", "feedback": "x", "kind": "mean", "scale": [1, 5], "max": 3}"#, "give either \"scale\""),
        (#"{"name": "x", "feedback": "x", "kind": "mean", "min": 3, "max": 1}"#, "\"min\" must be below \"max\""),
        (#"{"name": "x", "feedback": "x", "kind": "proportion", "max": 3}"#, "yes/no metric takes 0 or 1"),
        (#"{"name": "t", "field": "output_tokens", "max": 3}"#, "value bounds apply to feedback metrics"),
    ])
    func mistakesNameTheirPath(_ metrics: String, _ expected: String) {
        do {
            _ = try Self.plan(metrics)
            Issue.record("no error for \(metrics)")
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }
}
