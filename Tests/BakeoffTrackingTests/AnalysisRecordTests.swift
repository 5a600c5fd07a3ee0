import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffTestSupport
import BakeoffTracking
import Testing

@Suite("An analysis as an MLflow run")
struct AnalysisRecordTests {
    static let source = RunSource(command: "bakeoff analyze", input: "events.jsonl", version: "9.9.9", user: "ana")

    static func threeArms() throws -> Report {
        var spec = SimulationSpec(allocation: try Allocation(parsing: "control=0.4,t1=0.3,t2=0.3"))
        spec.users = 3000
        var t1 = VariantBehaviour(), t2 = VariantBehaviour()
        t1.completion = 0.85
        t2.completion = 0.76
        spec.behaviours = ["control": VariantBehaviour(), "t1": t1, "t2": t2]
        var plan = AnalysisPlan()
        plan.minimumDetectableEffect = 0.03
        return try Simulated.report(spec, plan: plan)
    }

    static func param(_ r: TrackingRecord, _ key: String) -> String? { r.params.first { $0.key == key }?.value }
    static func metric(_ r: TrackingRecord, _ key: String) -> Double? { r.metrics.first { $0.key == key }?.value }
    static func tag(_ r: TrackingRecord, _ key: String) -> String? { r.tags.first { $0.key == key }?.value }

    @Test func thePlanAndTheDataAreParams() throws {
        let report = try Self.threeArms()
        let r = TrackingRecord.analysis(report, source: Self.source)
        #expect(Self.param(r, "alpha") == "0.05")
        #expect(Self.param(r, "power") == "0.8")
        #expect(Self.param(r, "method") == "fixed")
        #expect(Self.param(r, "correction") == "holm")
        #expect(Self.param(r, "control") == "control")
        #expect(Self.param(r, "primary_metric") == report.primaryMetric)
        #expect(Self.param(r, "allocation") == "control=0.4,t1=0.3,t2=0.3")
        #expect(Self.param(r, "mde") == "0.03")
        #expect(Self.param(r, "mde_relative") == "false")
        #expect(Self.param(r, "input") == "events.jsonl")
        #expect(Self.param(r, "period_first") == report.firstTimestamp.map(formatTimestamp))
        #expect(Self.param(r, "period_last") == report.lastTimestamp.map(formatTimestamp))
        for v in report.variants {
            #expect(Self.param(r, "users/\(v.name)") == String(v.users))
            #expect(Self.param(r, "requests/\(v.name)") == String(v.requests))
        }
        #expect(r.experiment == report.experiment)
    }

    @Test func everyMetricOfEveryArmAgainstTheControlIsAMetric() throws {
        let report = try Self.threeArms()
        let r = TrackingRecord.analysis(report, source: Self.source)
        for x in report.results {
            let k = "\(x.metric.name)/\(x.treatment)/"
            #expect(Self.metric(r, k + "lift") == x.absoluteDifference)
            #expect(Self.metric(r, k + "lift_ci_low") == x.absoluteInterval?.lower)
            #expect(Self.metric(r, k + "lift_ci_high") == x.absoluteInterval?.upper)
            #expect(Self.metric(r, k + "relative_lift") == x.relativeLift)
            #expect(Self.metric(r, k + "p_value") == x.pValue)
            #expect(Self.metric(r, k + "adjusted_p_value") == x.adjustedPValue)
            #expect(Self.metric(r, k + "mean") == x.treatmentGroup.mean)
            #expect(Self.metric(r, "\(x.metric.name)/control/mean") == x.control.mean)
            if case .bounded(let lo, let hi)? = x.relativeInterval {
                #expect(Self.metric(r, k + "relative_lift_ci_low") == lo && Self.metric(r, k + "relative_lift_ci_high") == hi)
            }
        }
        for q in report.quantiles {
            #expect(Self.metric(r, "\(q.metric.name)/\(q.treatment)/value") == q.treatmentValue)
            #expect(Self.metric(r, "\(q.metric.name)/\(q.treatment)/p_value") == q.pValue)
        }
        #expect(Self.metric(r, "srm/p_value") == report.sampleRatio.pValue)
        #expect(Self.metric(r, "events/requests") == Double(report.requestEvents))
        // Keys are unique: MLflow would keep one value of a repeated key as a series.
        #expect(Set(r.metrics.map(\.key)).count == r.metrics.count)
    }

    @Test func theDecisionIsTagged() throws {
        let report = try Self.threeArms()
        let r = TrackingRecord.analysis(report, source: Self.source)
        #expect(Self.tag(r, "bakeoff.decision") == report.decision.action.rawValue)
        #expect(Self.tag(r, "bakeoff.decision_variant") == report.decision.treatment)
        #expect(Self.tag(r, "bakeoff.decision_reason") == report.decision.reason)
        for d in report.decisions {
            #expect(Self.tag(r, "bakeoff.decision/\(d.treatment)") == d.action.rawValue)
            #expect(Self.tag(r, "bakeoff.decision_reason/\(d.treatment)") == d.reason)
        }
        #expect(Self.tag(r, "mlflow.runName") == r.runName)
        #expect(Self.tag(r, "mlflow.source.name") == "bakeoff analyze")
        #expect(Self.tag(r, "mlflow.source.type") == "LOCAL")
        #expect(Self.tag(r, "mlflow.user") == "ana")
        #expect(Self.tag(r, "bakeoff.version") == "9.9.9")
        #expect(Self.tag(r, "bakeoff.srm") == report.sampleRatio.status.rawValue)
    }

    @Test func theReportsAreTheArtifacts() throws {
        let report = try Self.threeArms()
        let r = TrackingRecord.analysis(report, source: Self.source)
        #expect(r.artifacts.map(\.name) == ["report.json", "report.html"])
        #expect(r.artifacts[0].bytes == Array(report.render(.json).utf8))
        #expect(r.artifacts[1].bytes == Array(report.render(.html).utf8))
    }

    @Test func aSequentialPlanRecordsItsTuning() throws {
        var plan = AnalysisPlan()
        plan.method = .sequential
        plan.sequentialTuning = 4000
        let report = try Simulated.report(Simulated.spec(control: VariantBehaviour(), treatment: VariantBehaviour(), users: 500), plan: plan)
        let r = TrackingRecord.analysis(report, source: Self.source)
        #expect(Self.param(r, "method") == "sequential")
        #expect(Self.param(r, "sequential_tuning") == "4000")
        #expect(Self.param(r, "mde") == nil)
    }
}
