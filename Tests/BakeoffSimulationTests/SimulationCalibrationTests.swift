import BakeoffCore
import BakeoffStatistics
import Testing
import BakeoffTestSupport
import BakeoffSimulation

/// Simulation checks where no reference implementation exists: false-positive rate and coverage.
@Suite("Calibration by simulation")
struct SimulationCalibrationTests {
    /// A small experiment whose users have several strongly correlated conversations.
    static func clusteredSpec(seed: UInt64, treatmentCompletion: Double = 0.7) -> SimulationSpec {
        var spec = SimulationSpec(allocation: try! Allocation(split: 0.5))
        spec.experiment = "calibration-\(seed)"
        spec.users = 200
        spec.days = 7
        spec.conversationsPerUser = 3
        spec.userConcentration = 1  // intra-user correlation 0.5
        spec.seed = seed
        var b = VariantBehaviour()
        b.completion = 0.7
        b.escalation = 0.2
        b.turns = 1
        b.thumbsRate = 0
        b.csatResponseRate = 0
        var t = b
        t.completion = treatmentCompletion
        spec.behaviours = ["control": b, "treatment": t]
        return spec
    }

    static func analyse(_ spec: SimulationSpec, unit: AnalysisUnit) throws -> MetricResult {
        let metrics = Metric.builtIn.filter { $0.name == "task_completion" }
        var aggregator = EventAggregator(metrics: metrics)
        try Simulator.run(spec) { e in try e.withView { try aggregator.add($0) } }
        var plan = AnalysisPlan()
        plan.unit = unit
        plan.allocation = spec.allocation
        let report = try Analysis.run(aggregator.finish(), plan: plan)
        return report.results[0]
    }

    @Test func userLevelTestHoldsItsFalsePositiveRateWhileTheNaiveTestDoesNot() throws {
        let runs = 3000
        var userLevel = 0, naive = 0
        for seed in 1...runs {
            let spec = Self.clusteredSpec(seed: UInt64(seed))
            if try Self.analyse(spec, unit: .user).significant { userLevel += 1 }
            if try Self.analyse(spec, unit: .event).significant { naive += 1 }
        }
        let fpr = Double(userLevel) / Double(runs)
        let naiveFPR = Double(naive) / Double(runs)
        print("A/A over \(runs) simulated experiments: user-level false-positive rate \(fpr), naive \(naiveFPR)")
        #expect(fpr >= 0.04 && fpr <= 0.06, "user-level A/A false-positive rate \(fpr)")
        #expect(naiveFPR > 0.10, "naive A/A false-positive rate \(naiveFPR) should be inflated")
    }

    @Test func intervalsCoverTheTrueDifference() throws {
        let runs = 1500
        var covered = 0, relativeCovered = 0
        let truth = 0.78 - 0.7
        for seed in 1...runs {
            let r = try Self.analyse(Self.clusteredSpec(seed: UInt64(100_000 + seed), treatmentCompletion: 0.78), unit: .user)
            if let ci = r.absoluteInterval, ci.lower <= truth, truth <= ci.upper { covered += 1 }
            if case .bounded(let lo, let hi)? = r.relativeInterval, lo <= truth / 0.7, truth / 0.7 <= hi { relativeCovered += 1 }
        }
        let coverage = Double(covered) / Double(runs)
        let relative = Double(relativeCovered) / Double(runs)
        print("Coverage over \(runs) simulated experiments: absolute CI \(coverage), Fieller relative CI \(relative)")
        #expect(coverage >= 0.93 && coverage <= 0.97, "absolute CI coverage \(coverage)")
        #expect(relative >= 0.93 && relative <= 0.97, "relative (Fieller) CI coverage \(relative)")
    }

    @Test func seedCaseStudyRecoversItsTruth() throws {
        let spec = try SimulationSpec.preset("seed-case-study")
        var aggregator = EventAggregator()
        var conversations = Set<String>()
        try Simulator.run(spec) { e in
            if e.kind == .request { conversations.insert(e.conversationID) }
            try e.withView { try aggregator.add($0) }
        }
        let data = aggregator.finish()
        let control = data.metric("task_completion").unitMoments[data.index("control")]
        let treatment = data.metric("task_completion").unitMoments[data.index("treatment")]
        // ~6,200 and ~1,550 dialogs, 71.3% vs 78.9%.
        #expect(abs(control.n - 6200) < 400)
        #expect(abs(treatment.n - 1550) < 200)
        #expect(abs(control.mean - 0.713) < 0.03)
        #expect(abs(treatment.mean - 0.789) < 0.04)
        var plan = AnalysisPlan()
        plan.allocation = spec.allocation
        let report = try Analysis.run(data, plan: plan)
        #expect(report.decision.action == .ship)
        #expect(report.sampleRatio.status == .ok)
        let p95 = report.quantiles.first { $0.metric.name == "latency_p95" }!
        #expect(abs(p95.control! - 2100) < 150)
        #expect(abs(p95.treatmentValue! - 2300) < 250)
    }
}

