import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

@Suite("Decisions and report output")
struct ReportTests {
    @Test func rollsBackWhenAGuardrailIsWorseEvenIfThePrimaryImproves() throws {
        var c = VariantBehaviour(), t = VariantBehaviour()
        t.completion = 0.85
        t.escalation = 0.1
        t.errorRate = 0.08
        let r = try Simulated.report(Simulated.spec(control: c, treatment: t))
        #expect(r.decision.action == .rollBack)
        #expect(r.decision.reason.contains("Error rate"))
        c.errorRate = 0.08
        let fine = try Simulated.report(Simulated.spec(control: c, treatment: t))
        #expect(fine.decision.action == .ship)
    }

    @Test func rollsBackWhenThePrimaryIsWorse() throws {
        var t = VariantBehaviour()
        t.completion = 0.65
        t.escalation = 0.3
        let r = try Simulated.report(Simulated.spec(control: VariantBehaviour(), treatment: t))
        #expect(r.decision.action == .rollBack)
        #expect(r.decision.reason.contains("Task completion"))
    }

    @Test func keepsRunningWithAnEstimateOfUsersAndDays() throws {
        var t = VariantBehaviour()
        t.completion = 0.76
        var plan = AnalysisPlan()
        plan.minimumDetectableEffect = 0.02
        let r = try Simulated.report(Simulated.spec(control: VariantBehaviour(), treatment: t, users: 400), plan: plan)
        #expect(r.decision.action == .keepRunning)
        let more = try #require(r.decision.additionalUsers)
        #expect(more > 5000)
        #expect(r.decision.additionalDays != nil)
        #expect(r.decision.reason.contains("more users"))
    }

    @Test func tableFitsEightyColumnsAndNeverPrintsNaN() throws {
        let spec = try SimulationSpec.preset("seed-case-study")
        let r = try Simulated.report(spec)
        for format in ReportFormat.allCases {
            let text = r.render(format)
            #expect(!text.lowercased().contains("nan"), "\(format)")
            #expect(!text.contains("inf"), "\(format)")
        }
        let table = r.render(.table)
        for line in table.split(separator: "\n") {
            #expect(line.count <= 80, "\(line.count) columns: \(line)")
        }
    }

    @Test func jsonCarriesTheDocumentedSchemaAtFullPrecision() throws {
        let r = try Simulated.report(try SimulationSpec.preset("seed-case-study"))
        let json = try JSONSerialization.jsonObject(with: Data(r.render(.json).utf8)) as! [String: Any]
        let variants = json["variants"] as! [[String: Any]]
        #expect(variants.map { $0["name"] as! String } == ["control", "treatment"])
        #expect((json["srm"] as! [String: Any])["p_value"] is Double)
        let metrics = json["metrics"] as! [[String: Any]]
        let task = metrics.first { $0["name"] as? String == "task_completion" }!
        for key in ["control", "treatment", "absolute_diff", "absolute_ci", "relative_lift", "relative_ci", "p_value", "significant"] {
            #expect(task[key] != nil && !(task[key] is NSNull), "missing \(key)")
        }
        for key in ["mean", "users", "units"] { #expect((task["control"] as! [String: Any])[key] != nil) }
        let decision = json["decision"] as! [String: Any]
        #expect(decision["action"] as? String == "ship")
        let result = r.results.first { $0.metric.name == "task_completion" }!
        // Full precision: the shortest text that reads back as the same Double (JSONSerialization itself
        // rounds on Linux, so compare the text).
        let text = r.render(.json)
        #expect(text.contains("\"mean\": \(result.control.mean!)"))
        #expect(text.contains("\"p_value\": \(result.pValue!)"))
    }

    @Test func htmlIsSelfContainedAndEscapesNames() throws {
        var spec = Simulated.spec(control: VariantBehaviour(), treatment: VariantBehaviour(), users: 300)
        spec.experiment = "<script>alert(1)</script>"
        let html = try Simulated.report(spec).render(.html)
        #expect(html.hasPrefix("<!doctype html>"))
        // The chart (HTML positioned in percent, no SVG: it reflows on a phone).
        #expect(html.contains("<figure class=\"chart\">"))
        #expect(!html.contains("<script>"))
        #expect(html.contains("&lt;script&gt;"))
        #expect(!html.contains("http://") && !html.contains("https://"), "no external resources")
    }

    @Test func edgeCasesGiveClearAnswers() throws {
        // One user per variant: means, but no test.
        let tiny = try Make.aggregate([
            Make.request("u1", "control", "r1", conversation: "c1", at: Make.t0),
            Make.request("u2", "treatment", "r2", conversation: "c2", at: Make.t0),
            Make.feedback("task_completed", 1, conversation: "c1", at: Make.t0),
            Make.feedback("task_completed", 0, conversation: "c2", at: Make.t0),
        ])
        let r = try Analysis.run(tiny, plan: AnalysisPlan())
        let task = r.results.first { $0.metric.name == "task_completion" }!
        #expect(task.pValue == nil)
        #expect(task.note?.contains("at least 2") == true)
        #expect(r.decision.action == .keepRunning)
        #expect(r.sampleRatio.status == .notRun)

        // Zero variance on both sides with equal means: p = 1, not NaN.
        var same: [EventRecord] = []
        for i in 0..<6 {
            let v = i % 2 == 0 ? "control" : "treatment"
            same.append(Make.request("u\(i)", v, "r\(i)", conversation: "c\(i)", at: Make.t0))
            same.append(Make.feedback("task_completed", 1, conversation: "c\(i)", at: Make.t0))
        }
        let flat = try Analysis.run(try Make.aggregate(same), plan: AnalysisPlan())
        let result = flat.results.first { $0.metric.name == "task_completion" }!
        #expect(result.pValue == 1)
        #expect(!flat.render(.table).lowercased().contains("nan"))

        // One variant only.
        let one = try Make.aggregate([Make.request("u1", "control", "r1", at: Make.t0)])
        let single = try Analysis.run(one, plan: AnalysisPlan())
        #expect(single.results.isEmpty)
        #expect(single.warnings.contains { $0.contains("Only one variant") })
        #expect(single.decision.action == .keepRunning)
    }

    @Test func sampleRatioMismatchIsALoudWarning() throws {
        var spec = Simulated.spec(control: VariantBehaviour(), treatment: VariantBehaviour(), users: 2000)
        spec.allocation = try Allocation(split: 0.5)
        var plan = AnalysisPlan()
        plan.allocation = try Allocation(split: 0.4)  // planned 40% but the data has 50%
        let r = try Simulated.report(spec, plan: plan)
        #expect(r.sampleRatio.status == .mismatch)
        #expect(r.render(.table).contains("SAMPLE RATIO MISMATCH"))
        #expect((r.sampleRatio.pValue ?? 1) < 0.001)
    }

    @Test func theBestTreatmentIsJudgedByTheGoalOfThePrimaryMetric() throws {
        // Primary escalation_rate (goal down): the arm that lowers it most is the one to ship.
        var spec = SimulationSpec(allocation: try Allocation(parsing: "control=0.4,t1=0.3,t2=0.3"))
        spec.users = 3000
        var base = VariantBehaviour()
        base.escalation = 0.3
        var t1 = base, t2 = base
        t1.escalation = 0.1
        t2.escalation = 0.22
        spec.behaviours = ["control": base, "t1": t1, "t2": t2]
        var plan = AnalysisPlan()
        plan.primaryMetric = "escalation_rate"
        let r = try Simulated.report(spec, plan: plan)
        #expect(r.decisions.allSatisfy { $0.action == .ship })
        #expect(r.decision.treatment == "t1")
    }

    @Test func aControlMustBeNamedWhenNoVariantIsCalledControl() throws {
        let data = try Make.aggregate([
            Make.request("u1", "finetuned", "r1", at: Make.t0),
            Make.request("u2", "baseline", "r2", at: Make.t0),
        ])
        #expect(throws: AnalysisError.self) { _ = try Analysis.run(data, plan: AnalysisPlan()) }
        var plan = AnalysisPlan()
        plan.control = "baseline"
        #expect(try Analysis.run(data, plan: plan).control == "baseline")
    }

    @Test func severalTreatmentsEachGetADecision() throws {
        var spec = SimulationSpec(allocation: try Allocation(parsing: "control=0.5,a=0.25,b=0.25"))
        spec.users = 3000
        var better = VariantBehaviour()
        better.completion = 0.86
        better.escalation = 0.1
        spec.behaviours = ["control": VariantBehaviour(), "a": VariantBehaviour(), "b": better]
        let r = try Simulated.report(spec)
        #expect(r.decisions.map(\.treatment) == ["a", "b"])
        #expect(r.decision.treatment == "b")
        #expect(r.decision.action == .ship)
        #expect(r.render(.table).contains("b vs control"))
    }
}
