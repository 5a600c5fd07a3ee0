import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

/// The group-sequential method in the analysis: choosing it, its looks, intervals, guardrails and decisions.
@Suite("Group-sequential analysis")
struct GroupSequentialAnalysisTests {
    static func spec(_ t: VariantBehaviour = VariantBehaviour(), users: Int = 3000, days: Int = 14, seed: UInt64 = 5) -> SimulationSpec {
        DecisionTests.spec(t, users: users, days: days, seed: seed)
    }

    static var better: VariantBehaviour {
        var t = VariantBehaviour()
        t.completion = 0.8
        t.escalation = 0.2
        return t
    }

    static func plan(_ method: TestMethod, maximumDays: Double? = nil, plannedUsers: Double? = nil) -> AnalysisPlan {
        var plan = AnalysisPlan()
        plan.method = method
        plan.maximumRuntimeDays = maximumDays
        plan.groupSequential.plannedUsers = plannedUsers
        plan.minimumRuntimeDays = 0
        return plan
    }

    @Test("auto: group-sequential with a horizon (days or users), the confidence sequence without one, and says why")
    func autoChooses() throws {
        let none = try Simulated.report(Self.spec(days: 7), plan: Self.plan(.auto))
        #expect(none.plan.method == .sequential)
        #expect(none.methodChoice.requested == .auto)
        #expect(none.methodChoice.reason.contains("no horizon"), "\(none.methodChoice.reason)")
        let days = try Simulated.report(Self.spec(days: 7), plan: Self.plan(.auto, maximumDays: 28))
        #expect(days.plan.method == .groupSequential)
        #expect(days.methodChoice.reason.contains("28 planned days"), "\(days.methodChoice.reason)")
        let users = try Simulated.report(Self.spec(days: 7), plan: Self.plan(.auto, plannedUsers: 10_000))
        #expect(users.plan.method == .groupSequential)
        let m = try #require(users.plan.monitoring)
        #expect(m.horizon == .users(10_000))
        #expect(abs(m.fraction - Double(users.variants.reduce(0) { $0 + $1.users }) / 10_000) < 1e-12)
        // The text report says which method and why.
        let text = users.render(.table)
        #expect(text.contains("Method auto: the plan has a horizon (10,000 planned users)"), "\(text.prefix(900))")
    }

    @Test("group-sequential without a horizon is an error that says what to give")
    func needsAHorizon() {
        #expect(throws: AnalysisError.self) { try Simulated.report(Self.spec(days: 3), plan: Self.plan(.groupSequential)) }
        do {
            _ = try Simulated.report(Self.spec(days: 3), plan: Self.plan(.groupSequential))
        } catch {
            #expect("\(error)".contains("planned users"))
            #expect(!"\(error)".contains("--"), "no CLI flag below the CLI: \(error)")
        }
    }

    @Test("daily looks: one per day with the users of that day, the report's look last; weekdays skip weekends")
    func looks() throws {
        let daily = try #require(try Simulated.report(Self.spec(days: 14), plan: Self.plan(.groupSequential, maximumDays: 28)).plan.monitoring)
        #expect(daily.looks.count == 14, "\(daily.looks.map(\.spendingTime))")
        for k in 1..<daily.looks.count {
            #expect(daily.looks[k].information > daily.looks[k - 1].information)
            #expect(daily.looks[k].spendingTime > daily.looks[k - 1].spendingTime)
        }
        #expect(abs(daily.looks[0].spendingTime - 1.0 / 28) < 1e-9)
        var weekdays = Self.plan(.groupSequential, maximumDays: 28)
        weekdays.groupSequential.looks = .weekdays
        let w = try #require(try Simulated.report(Self.spec(days: 14), plan: weekdays).plan.monitoring)
        // 13 day ends in two weeks, 3 or 4 of them on a weekend, plus the report's look.
        #expect(w.looks.count >= 10 && w.looks.count <= 11, "\(w.looks.count)")
        #expect(w.boundaries.last! < daily.boundaries.last!, "fewer looks, lower boundary now")
        // Declared looks: only those before the report count.
        var declared = Self.plan(.groupSequential, maximumDays: 28)
        let start = try #require(parseTime("2026-11-01T00:00:00Z"))
        declared.groupSequential.looks = .times([start + 3 * 86_400_000_000, start + 10 * 86_400_000_000, start + 40 * 86_400_000_000])
        let d = try #require(try Simulated.report(Self.spec(days: 14), plan: declared).plan.monitoring)
        #expect(d.looks.count == 3, "\(d.looks)")
    }

    @Test("an interval excludes zero exactly when the boundary is crossed (p < its level)", arguments: [3, 5, 9, 14])
    func intervalMatchesBoundary(days: Int) throws {
        for seed: UInt64 in [1, 2, 3] {
            let r = try Simulated.report(Self.spec(Self.better, users: 2000, days: days, seed: seed), plan: Self.plan(.groupSequential, maximumDays: 14))
            let m = try #require(r.plan.monitoring)
            for result in r.results where result.varianceReduction == nil {
                guard let ci = result.absoluteInterval, let p = result.pValue, let d = result.absoluteDifference,
                      let se = result.standardError, se > 0 else { continue }
                let excludes = ci.lower > 0 || ci.upper < 0
                let crossed = abs(d / se) >= m.boundary(alpha: result.intervalAlpha)
                #expect(excludes == crossed, "\(result.metric.name) day \(days)")
                #expect(excludes == (p < result.intervalAlpha), "\(result.metric.name) day \(days): p \(p) level \(result.intervalAlpha)")
                if case .bounded(let lo, let hi)? = result.relativeInterval {
                    #expect((lo > 0 || hi < 0) == excludes, "Fieller's set agrees: \(result.metric.name)")
                }
            }
        }
    }

    @Test("the repeated interval is wider than the fixed-horizon one before the horizon and nearly as narrow at it")
    func widthAgainstFixed() throws {
        let spec = Self.spec(Self.better, days: 14)
        let fixed = try Simulated.report(spec, plan: Self.plan(.fixed))
        let gs = try Simulated.report(spec, plan: Self.plan(.groupSequential, maximumDays: 14))
        let cs = try Simulated.report(spec, plan: Self.plan(.sequential))
        func width(_ r: Report) -> Double {
            let ci = r.results.first { $0.metric.name == r.primaryMetric }!.absoluteInterval!
            return ci.upper - ci.lower
        }
        #expect(gs.plan.monitoring?.isFinal == true)
        #expect(width(gs) > width(fixed))
        #expect(width(gs) < width(fixed) * 1.15, "final look of O'Brien-Fleming: little wider than fixed")
        #expect(width(gs) < width(cs), "narrower than the confidence sequence")
    }

    @Test("past the horizon the design is spent: the confidence sequence, with a warning")
    func pastTheHorizon() throws {
        let r = try Simulated.report(Self.spec(days: 14), plan: Self.plan(.groupSequential, maximumDays: 7))
        #expect(r.plan.method == .sequential)
        #expect(r.methodChoice.reason.contains("spent"), "\(r.methodChoice.reason)")
        #expect(r.warnings.contains { $0.contains("past its planned horizon") }, "\(r.warnings)")
    }

    @Test("at the final look without a significant result the experiment stops as inconclusive")
    func finalLookInconclusive() throws {
        let r = try Simulated.report(Self.spec(users: 1500, days: 14), plan: Self.plan(.groupSequential, plannedUsers: 1000))
        // Every user is in by day 14: the last look is past 1000 users ... the first look at or past it is the final one.
        let m = r.plan.monitoring
        if let m {
            #expect(m.isFinal)
            #expect(r.decision.action == .stopInconclusive, "\(r.decision.reason)")
            #expect(r.decision.reason.contains("final look"))
        } else {
            #expect(r.plan.method == .sequential, "the horizon was reached at an earlier look")
        }
        // Before the horizon: keep running with what is left of it.
        let early = try Simulated.report(Self.spec(users: 1500, days: 5), plan: Self.plan(.groupSequential, plannedUsers: 100_000))
        #expect(early.decision.action == .keepRunning)
        #expect(early.decision.reason.contains("horizon of 100,000 planned users"), "\(early.decision.reason)")
    }

    @Test("an early crossing shows the median-unbiased estimate, between zero and the observed difference")
    func earlyStopEstimate() throws {
        var t = VariantBehaviour()
        t.completion = 0.9
        t.escalation = 0.1
        let r = try Simulated.report(Self.spec(t, days: 5), plan: Self.plan(.groupSequential, maximumDays: 28))
        let p = try #require(r.results.first { $0.metric.name == r.primaryMetric })
        #expect(p.significant)
        let b = try #require(p.biasAdjusted)
        let d = try #require(p.absoluteDifference)
        #expect(b.difference > 0 && b.difference < d, "\(b.difference) vs \(d)")
        let json = r.render(.json)
        #expect(json.contains("\"bias_adjusted\""))
        #expect(r.render(.table).contains("median-unbiased"))
    }

    @Test("a guardrail's margin is tested one-sided over the same looks: p < alpha exactly when the bound is inside the margin")
    func guardrail() throws {
        var plan = Self.plan(.groupSequential, maximumDays: 14)
        plan.alpha = 0.05
        var data = try Self.data(Self.spec(days: 10))
        for i in data.metrics.indices where data.metrics[i].metric.name == "escalation_rate" {
            data.metrics[i].metric.role = .guardrail
            data.metrics[i].metric.margin = GuardrailMargin(value: 0.05, isRelative: false)
        }
        let r = try Analysis.run(data, plan: plan)
        let g = try #require(r.results.first { $0.metric.name == "escalation_rate" }?.guardrail)
        let inside = g.bound < 0.05
        #expect(inside == (g.pValue < 0.05), "bound \(g.bound) p \(g.pValue)")
        #expect((g.status == .withinMargin) == inside)
    }

    @Test("futility: no effect at a mid look crosses the boundary and advises stopping; a real effect does not")
    func futility() throws {
        var plan = Self.plan(.groupSequential, plannedUsers: 12_000)
        plan.groupSequential.futility = true
        plan.minimumDetectableEffect = 0.05
        let none = try Simulated.report(Self.spec(users: 3000, days: 7), plan: plan)
        let f = try #require(none.results.first { $0.metric.name == none.primaryMetric }?.futility)
        #expect(f.plannedEffect == 0.05)
        if f.crossed {
            #expect(none.decision.action == .stopInconclusive, "\(none.decision.reason)")
            #expect(none.decision.reason.contains("futility boundary"), "\(none.decision.reason)")
        }
        #expect(none.render(.table).contains("Futility (non-binding"))
        #expect(none.render(.json).contains("\"futility\""))
        let real = try Simulated.report(Self.spec(Self.better, users: 3000, days: 7), plan: plan)
        let g = try #require(real.results.first { $0.metric.name == real.primaryMetric }?.futility)
        #expect(!g.crossed, "a true effect of the planned size or more is not futile: z \(g.statistic), boundary \(g.boundary)")
        // The statistic is in the direction of the goal; the boundary rises toward efficacy as the looks go on.
        let later = try Simulated.report(Self.spec(users: 9000, days: 12), plan: plan)
        let h = try #require(later.results.first { $0.metric.name == later.primaryMetric }?.futility)
        #expect(h.boundary > f.boundary, "\(h.boundary) after \(f.boundary)")
        // Without a planned effect there is no futility boundary, and the report says why.
        plan.minimumDetectableEffect = nil
        let without = try Simulated.report(Self.spec(users: 3000, days: 7), plan: plan)
        #expect(without.results.allSatisfy { $0.futility == nil })
        #expect(without.warnings.contains { $0.contains("futility boundary") })
    }

    @Test("the JSON report carries the design, its looks and boundaries")
    func json() throws {
        let r = try Simulated.report(Self.spec(days: 6), plan: Self.plan(.auto, plannedUsers: 5000))
        let text = r.render(.json)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let plan = try #require(object["plan"] as? [String: Any])
        #expect(plan["method"] as? String == "group-sequential")
        #expect(plan["method_requested"] as? String == "auto")
        let gs = try #require(plan["group_sequential"] as? [String: Any])
        #expect(gs["spending"] as? String == "obrien-fleming")
        #expect(gs["planned_users"] as? Double == 5000)
        let history = try #require(gs["history"] as? [[String: Any]])
        #expect(history.count == 6)
        #expect(history.allSatisfy { $0["boundary_z"] is Double && $0["users"] is Double })
    }

    @Test("users arrive by the hour of their first request; pieces of a log add up")
    func arrivals() throws {
        let data = try Self.data(Self.spec(days: 4))
        #expect(data.newUsersByHour.reduce(0) { $0 + $1.users } == data.variants.reduce(0) { $0 + $1.users })
        #expect(data.newUsersByHour.allSatisfy { $0.hour % HourCount.hour == 0 })
        let last = try #require(data.lastTimestamp)
        #expect(data.users(before: last + 1) == Double(data.variants.reduce(0) { $0 + $1.users }))
        #expect(data.users(before: HourCount.start(of: data.firstTimestamp!)) == 0)
        #expect(HourCount.start(of: -1) == -HourCount.hour)
    }

    static func data(_ spec: SimulationSpec) throws -> ExperimentData {
        var aggregator = EventAggregator()
        try Simulator.run(spec) { e in try e.withView { try aggregator.add($0) } }
        return aggregator.finish()
    }
}

/// The config's group-sequential settings and their errors.
@Suite("Group-sequential config")
struct GroupSequentialConfigTests {
    static func parse(_ json: String) throws -> ExperimentConfig {
        try ExperimentConfig.parse(Data(json.utf8), source: "plan.json")
    }

    @Test("planned users, spending and looks are read")
    func reads() throws {
        let c = try Self.parse(#"{"method": "group-sequential", "planned_users": 12000, "group_sequential": {"spending": "power:3", "looks": "weekdays", "futility": true}}"#)
        #expect(c.method == .groupSequential)
        #expect(c.plan.groupSequential.futility)
        #expect(c.plan.groupSequential.plannedUsers == 12000)
        #expect(c.plan.groupSequential.spending == .power(rho: 3))
        #expect(c.plan.groupSequential.looks == .weekdays)
        let times = try Self.parse(#"{"method": "auto", "group_sequential": {"looks": ["2026-11-08T00:00:00Z", "2026-11-01T00:00:00Z"]}}"#)
        #expect(times.plan.groupSequential.looks == .times([parseTime("2026-11-01T00:00:00Z")!, parseTime("2026-11-08T00:00:00Z")!]))
    }

    @Test("errors name their JSON path", arguments: [
        (#"{"group_sequential": {"spending": "fast"}}"#, "group_sequential.spending"),
        (#"{"group_sequential": {"looks": "hourly"}}"#, "group_sequential.looks"),
        (#"{"group_sequential": {"looks": ["2026-11-08", 3]}}"#, "group_sequential.looks[0]"),
        (#"{"group_sequential": {"spend": "pocock"}}"#, "group_sequential.spend"),
        (#"{"group_sequential": {"futility": "yes"}}"#, "group_sequential.futility"),
        (#"{"planned_users": -3}"#, "planned_users"),
        (#"{"method": "groupsequential"}"#, "method"),
    ])
    func errors(_ json: String, _ path: String) {
        do {
            _ = try Self.parse(json)
            Issue.record("accepted \(json)")
        } catch let error as ConfigError {
            #expect(error.path == path, "\(error)")
        } catch {
            Issue.record("not a ConfigError: \(error)")
        }
    }

    @Test("the recorded plan keeps the design, and a store reader gets it back")
    func snapshot() throws {
        let c = try Self.parse(#"{"planned_users": 8000, "group_sequential": {"spending": "pocock", "looks": "weekdays"}}"#)
        let snapshot = PlanSnapshot(config: c, allocation: nil, control: "control", defaultMethod: .auto)
        let keys = snapshot.settings.map(\.key)
        #expect(keys.contains("spending") && keys.contains("planned_users") && keys.contains("looks"))
        let live = snapshot.livePlan
        #expect(live.method == .auto)
        #expect(live.groupSequential.spending == .pocock)
        #expect(live.groupSequential.plannedUsers == 8000)
        #expect(live.groupSequential.looks == .weekdays)
    }
}
